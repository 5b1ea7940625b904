#!/usr/bin/env bash
# Triton's perf_analyzer, for tests/e2e/oip_extensions.rs: it reads a model's
# configuration before it sends anything and the server's statistics after,
# so it fails on a server without either extension. Put in
# target/perf-analyzer/ (perf_analyzer and the two libraries it links), from
# where the registries publish it, checked against these digests:
# - tritonclient 2.39.0's manylinux wheel on PyPI, the last to ship the
#   perf_analyzer binary (later ones leave it to Triton's SDK container);
# - libcudart.so.12, which it links even for HTTP to a CPU server, from
#   NVIDIA's nvidia-cuda-runtime-cu12 wheel on PyPI;
# - libb64.so.0d from Debian's libb64-0d package (apt-get download: nothing
#   is installed on the system).
# Usage: tests/oip/fetch-perf-analyzer.sh [PYTHON]   (a Python with pip)
set -euo pipefail
cd "$(dirname "$0")/../.."

python=${1:-python3}
dest=target/perf-analyzer
[ -x "$dest/perf_analyzer" ] && [ -f "$dest/lib/libcudart.so.12" ] && [ -f "$dest/lib/libb64.so.0d" ] && exit 0

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/requirements.txt" <<'PINS'
tritonclient==2.39.0 --hash=sha256:9bbbf5731e62da943ab16929960f57189bfe59700c20a865fdb287abfb1baf33
nvidia-cuda-runtime-cu12==12.9.79 --hash=sha256:25bba2dfb01d48a9b59ca474a1ac43c6ebf7011f1b0b8cc44f54eb6ac48a96c3
PINS
"$python" -m pip download --quiet --disable-pip-version-check --no-deps \
    --only-binary=:all: --platform manylinux2014_x86_64 --require-hashes \
    -r "$work/requirements.txt" -d "$work/wheels"

deb_sha256=b0e1d6fde8bdccc18c3884144aede064dc82464dd4777275fa80e74c05583e82
(cd "$work" && { apt-get download -qq libb64-0d=1.2-5+b1 2>/dev/null ||
    { apt-get update -qq && apt-get download -qq libb64-0d=1.2-5+b1; }; })
echo "$deb_sha256  $(ls "$work"/libb64-0d_*.deb)" | sha256sum --check --quiet

rm -rf "$dest"
mkdir -p "$dest/lib"
python3 - "$work" "$dest" <<'PY'
import sys, zipfile, glob, os
work, dest = sys.argv[1], sys.argv[2]
picks = {
    "tritonclient-*.whl": ("tritonclient-2.39.0.data/data/bin/perf_analyzer", "perf_analyzer"),
    "nvidia_cuda_runtime_cu12-*.whl": ("nvidia/cuda_runtime/lib/libcudart.so.12", "lib/libcudart.so.12"),
}
for pattern, (member, to) in picks.items():
    (wheel,) = glob.glob(os.path.join(work, "wheels", pattern))
    with zipfile.ZipFile(wheel) as z, open(os.path.join(dest, to), "wb") as out:
        out.write(z.read(member))
os.chmod(os.path.join(dest, "perf_analyzer"), 0o755)
PY
dpkg-deb -x "$work"/libb64-0d_*.deb "$work/b64"
cp -L "$work"/b64/usr/lib/x86_64-linux-gnu/libb64.so.0d "$dest/lib/"
LD_LIBRARY_PATH="$dest/lib" "$dest/perf_analyzer" --version >/dev/null 2>&1 || {
    echo "fetch-perf-analyzer.sh: $dest/perf_analyzer does not run:" >&2
    LD_LIBRARY_PATH="$dest/lib" ldd "$dest/perf_analyzer" >&2
    exit 1
}
echo "perf_analyzer in $dest"
