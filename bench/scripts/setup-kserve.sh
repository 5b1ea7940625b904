#!/usr/bin/env bash
# Sets up the KServe contender of the benchmark: a venv at .deps/bench-kserve with
# the pinned packages of bench/python/kserve-requirements.txt (kserve, ONNX
# Runtime, numpy and kserve's FastAPI/uvicorn stack). Idempotent: a stamp file
# holding the requirements' hash skips the install when nothing changed.
# Usage: bench/scripts/setup-kserve.sh   (then .deps/bench-kserve/bin/python)
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="$root/.deps/bench-kserve"
req="$root/bench/python/kserve-requirements.txt"
stamp="$venv/.requirements.sha256"
# kserve 0.21 needs Python >= 3.10 and < 3.14.
python="${PYTHON:-python3}"

want="$( { "$python" --version 2>&1; cat "$req"; } | sha256sum | cut -d' ' -f1)"
if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    echo "bench-kserve: up to date ($venv)"
    exit 0
fi

echo "bench-kserve: installing into $venv"
rm -f "$stamp"
[[ -x "$venv/bin/python" ]] || "$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
# Fail here, not in the benchmark, if a package is broken.
"$venv/bin/python" -c 'import kserve, kserve.model_server, fastapi, uvicorn, uvloop, httptools, numpy, onnxruntime'
echo "$want" > "$stamp"
echo "bench-kserve: ready ($venv)"
