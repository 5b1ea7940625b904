#!/usr/bin/env bash
# Sets up the Python contender of the benchmark: a venv at .deps/bench-python
# with the pinned packages of bench/python/requirements.txt (FastAPI, uvicorn,
# Pillow, numpy, onnxruntime, openvino). Idempotent: a stamp file holding the
# requirements' hash skips the install when nothing changed.
# Usage: bench/scripts/setup-python.sh   (then .deps/bench-python/bin/python)
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="$root/.deps/bench-python"
req="$root/bench/python/requirements.txt"
stamp="$venv/.requirements.sha256"
python="${PYTHON:-python3}"

want="$( { "$python" --version 2>&1; cat "$req"; } | sha256sum | cut -d' ' -f1)"
if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    echo "bench-python: up to date ($venv)"
    exit 0
fi

echo "bench-python: installing into $venv"
rm -f "$stamp"
[[ -x "$venv/bin/python" ]] || "$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
# Fail here, not in the benchmark, if a package is broken.
"$venv/bin/python" -c 'import fastapi, uvicorn, uvloop, httptools, PIL, numpy, onnxruntime, openvino'
echo "$want" > "$stamp"
echo "bench-python: ready ($venv)"
