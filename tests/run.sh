#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what the tests need (the
# wasm32-wasip2 target, the ONNX Runtime and OpenVINO libraries from their PyPI
# wheels, tritonclient for the Open Inference Protocol tests), then runs the
# host's unit and end-to-end tests (every model on every backend; the
# self-contained functions on our host and on stock wasmtime serve; bundles),
# the functions' unit tests, the model lifecycle in short (train, quantise,
# prune), a short benchmark, the Kubernetes manifests and
# the container image.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target add wasm32-wasip2
host/scripts/fetch-onnxruntime.sh
host/scripts/fetch-openvino.sh
# Stock wasmtime, to run the self-contained functions on (tests/e2e/edge.rs).
host/scripts/fetch-wasmtime-cli.sh
export WASI_INFER_TEST_WASMTIME="$PWD/.deps/wasmtime/wasmtime"

# wasi-infer-train's tests (train/tests/lifecycle.rs) train on Fashion-MNIST's
# training split: Debian's dataset-fashion-mnist package, installed with
# apt-get when missing (as root, as deploy/container/test.sh installs podman),
# unless FASHION_MNIST_DIR names a folder of its IDX files.
if [ -z "${FASHION_MNIST_DIR:-}" ] && [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
    apt-get install -y -qq --no-install-recommends dataset-fashion-mnist >/dev/null 2>&1 ||
        { apt-get update -qq && apt-get install -y -qq --no-install-recommends dataset-fashion-mnist; }
fi

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
# Triton's perf_analyzer (tests/e2e/oip_extensions.rs), into target/perf-analyzer.
tests/oip/fetch-perf-analyzer.sh "$WASI_INFER_TEST_PYTHON"

# One profile for the server binary and the tests, so wasmtime is built once.
cargo test --release --workspace
# The functions' own logic (preprocessing, softmax, top-k), natively.
cargo test --manifest-path functions/Cargo.toml --target-dir target/functions-native --lib

# A short benchmark, so that it cannot silently break: every contender it
# compares (wasi-infer, the native baseline, wasmtime serve, the Python
# service), one model and photo, c=1 and c=4, a second per cell, one cold
# start. Its figures are not checked here (a shared CI machine is no place for
# speed targets); bench/run.sh runs the full one (docs/benchmarks.md).
bench/scripts/setup-python.sh
bench/scripts/setup-wasmtime.sh
# The same profile and features as the tests: this only links the bench binaries.
cargo build --release --workspace
target/release/wasi-infer-bench \
    --contenders wasi-infer:onnxruntime,native,wasmtime-serve,python:reuseport \
    --models efficientnet-lite0 --images tests/data/images/grace_hopper.jpg \
    --concurrency 1,4 --duration 1 --warmup 0.5 --cold-starts 1 --out target/bench-ci
# The protocol path the same way: the photo's tensor by the Open Inference
# Protocol (binary data), on our /v2 and on KServe's own Python server.
bench/scripts/setup-kserve.sh
target/release/wasi-infer-bench --workload oip \
    --contenders wasi-infer:onnxruntime,kserve \
    --models efficientnet-lite0 --images tests/data/images/grace_hopper.jpg \
    --concurrency 1,4 --duration 1 --warmup 0.5 --cold-starts 0 --out target/bench-ci-oip

# The edge the same way: the self-contained, pre-initialised functions and
# the default builds pre-initialised (bench/scripts/setup-edge.sh, which runs
# deploy/edge/build.sh: its bundle, precompiled), on our host, from the
# bundle, and on stock wasmtime serve.
# The server binary is the one just built (the workspace's features), not
# built again for the default member's.
WASI_INFER_BUILT=1 bench/scripts/setup-edge.sh
target/release/wasi-infer-bench \
    --contenders edge:wasi-nn,edge:wasi-nn-preinit,edge:self-contained,edge:wasmtime,edge:wasmtime-raw \
    --baseline edge:wasi-nn --models efficientnet-lite0 --images tests/data/images/grace_hopper.jpg \
    --concurrency 1 --duration 1 --warmup 0.5 --cold-starts 0 --out target/bench-ci-edge

# The deployment, checked as a user would use it: every Kubernetes and KServe
# manifest rendered (kubectl kustomize) and validated, then the container
# image built from what the tests above built, and run (podman, installed
# with apt-get when missing, as root). WASI_INFER_SKIP_CONTAINER=1 skips the
# image on a machine where containers cannot run; CI never sets it.
deploy/kubernetes/validate.sh
if [ "${WASI_INFER_SKIP_CONTAINER:-}" = 1 ]; then
    echo "tests/run.sh: WASI_INFER_SKIP_CONTAINER=1: the container image was NOT tested" >&2
else
    deploy/container/test.sh
fi
