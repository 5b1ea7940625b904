#!/usr/bin/env bash
# What the edge contenders need (see docs/edge.md):
# - target/edge/: the self-contained, pre-initialised functions and their
#   bundle with precompiled code (deploy/edge/build.sh);
# - target/bench/preinit/: the default (wasi-nn) builds pre-initialised with
#   the same models, served by bench/edge/spin-preinit.toml;
# - the wasmtime CLI.
# Needs `cargo build --release` first.
set -euo pipefail
cd "$(dirname "$0")/../.."

host/scripts/fetch-wasmtime-cli.sh
BUNDLE_PRECOMPILE=1 deploy/edge/build.sh
bin=target/release/wasi-infer
built=target/functions/wasm32-wasip2/release
out=target/bench/preinit
mkdir -p "$out"
"$bin" preinit "$built/image_classify.wasm" -o "$out/image_classify.wasm" \
    --model efficientnet-lite0 --model fashion-mnist-cnn
"$bin" preinit "$built/text_embed.wasm" -o "$out/text_embed.wasm" --model all-minilm-l6-v2
