#!/usr/bin/env bash
# Sets up the KServe contender of the benchmark: a venv at .deps/bench-kserve
# with the pinned packages of bench/python/kserve-requirements.txt (kserve,
# ONNX Runtime, numpy and kserve's FastAPI/uvicorn stack); skipped when up to
# date (venv.sh). kserve 0.21 needs Python >= 3.10 and < 3.14.
# Usage: bench/scripts/setup-kserve.sh   (then .deps/bench-kserve/bin/python)
set -euo pipefail
here="$(dirname "$0")"
source "$here/venv.sh"
setup_venv bench-kserve "$here/../python/kserve-requirements.txt" \
    kserve,kserve.model_server,fastapi,uvicorn,uvloop,httptools,numpy,onnxruntime
