#!/usr/bin/env bash
# Compares two ONNX Runtime releases on every model of models/, in one run:
# bench/python/compare_onnxruntime.py (inference only, one thread, the host's
# trial inputs) under each release's PyPI wheel, alternating ROUNDS times so
# that both see the same machine over the same minutes; prints a Markdown
# table of the medians. The host itself loads 1.31 or newer only (ort
# rc.15), so the old release is timed through its Python wheel: the same
# C++ kernels, and the same small call overhead on both sides.
#   bench/scripts/compare-onnxruntime.sh [OLD] [NEW]   (default 1.22.1 1.32.0)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
old="${1:-1.22.1}"
new="${2:-1.32.0}"
rounds="${ROUNDS:-3}"
seconds="${SECONDS_PER_MODEL:-2}"

venv() {
    local dir="$root/target/onnxruntime-$1-venv"
    if [ ! -x "$dir/bin/python" ] || ! "$dir/bin/python" -c "import onnxruntime" 2>/dev/null; then
        python3 -m venv "$dir"
        "$dir/bin/python" -m pip install --quiet --disable-pip-version-check "onnxruntime==$1" numpy
    fi
    echo "$dir/bin/python"
}
old_python="$(venv "$old")"
new_python="$(venv "$new")"
results="$(mktemp)"
trap 'rm -f "$results"' EXIT
for round in $(seq "$rounds"); do
    for python in "$old_python" "$new_python"; do
        "$python" bench/python/compare_onnxruntime.py "$root" "$seconds" >>"$results"
    done
done
python3 - "$results" "$old" "$new" <<'PY'
import json, statistics, sys
runs = [json.loads(line) for line in open(sys.argv[1])]
old, new = sys.argv[2], sys.argv[3]
def median(version, model):
    return statistics.median(r["models"][model] for r in runs if r["version"] == version)
models = sorted(runs[0]["models"])
print(f"| model | ONNX Runtime {old} | ONNX Runtime {new} | new / old |")
print("|---|---|---|---|")
for m in models:
    a, b = median(old, m), median(new, m)
    print(f"| {m} | {a:.2f} ms | {b:.2f} ms | {b / a:.2f}x |")
print(f"\nMedian of {len(runs) // 2} alternating runs each; one thread; inference only.")
PY
