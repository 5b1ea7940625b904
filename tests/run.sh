#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what the tests need (the
# wasm32-wasip2 target, the ONNX Runtime and OpenVINO libraries from their PyPI
# wheels), then runs the host's unit and end-to-end tests (every model on every
# backend) and the functions' unit tests.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target add wasm32-wasip2
host/scripts/fetch-onnxruntime.sh
host/scripts/fetch-openvino.sh

# One profile for the server binary and the tests, so wasmtime is built once.
cargo test --release --workspace
# The functions' own logic (preprocessing, softmax, top-k), natively.
cargo test --manifest-path functions/Cargo.toml --target-dir target/functions-native --lib
