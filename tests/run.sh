#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what the tests need (the
# wasm32-wasip2 target, the ONNX Runtime and OpenVINO libraries from their PyPI
# wheels, tritonclient for the Open Inference Protocol tests), then runs the
# host's unit and end-to-end tests (every model on every backend) and the
# functions' unit tests.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target add wasm32-wasip2
host/scripts/fetch-onnxruntime.sh
host/scripts/fetch-openvino.sh

# tests/e2e/open_inference.rs talks to the Open Inference Protocol with
# NVIDIA's own client (tritonclient[http], in tests/oip/tritonclient_check.py),
# from a venv of its own. The venv keeps a copy of the requirements it was
# made from, so it is made and installed again only when they change (a fresh
# venv, so no package of an older pin lingers; the copy is written last, so a
# failed install is retried next time).
oip_venv=target/oip-venv
if ! cmp -s tests/oip/requirements.txt "$oip_venv/requirements.txt"; then
    rm -rf "$oip_venv"
    python3 -m venv "$oip_venv"
    "$oip_venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        -r tests/oip/requirements.txt
    cp tests/oip/requirements.txt "$oip_venv/requirements.txt"
fi
export WASI_INFER_TEST_PYTHON="$PWD/$oip_venv/bin/python"

# One profile for the server binary and the tests, so wasmtime is built once.
cargo test --release --workspace
# The functions' own logic (preprocessing, softmax, top-k), natively.
cargo test --manifest-path functions/Cargo.toml --target-dir target/functions-native --lib
