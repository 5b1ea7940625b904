#!/usr/bin/env bash
# Sets up the Python contender of the benchmark: a venv at .deps/bench-python
# with the pinned packages of bench/python/requirements.txt (FastAPI, uvicorn,
# Pillow, numpy, onnxruntime, openvino); skipped when up to date (venv.sh).
# Usage: bench/scripts/setup-python.sh   (then .deps/bench-python/bin/python)
set -euo pipefail
here="$(dirname "$0")"
source "$here/venv.sh"
setup_venv bench-python "$here/../python/requirements.txt" \
    fastapi,uvicorn,uvloop,httptools,PIL,numpy,onnxruntime,openvino
