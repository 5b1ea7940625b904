#!/usr/bin/env bash
# Builds the edge application (deploy/edge/spin.toml) into target/edge/:
# - image_classify.wasm, text_embed.wasm: the self-contained functions (built
#   by `cargo build --release`, into target/functions/self-contained/),
#   pre-initialised with their models: EfficientNet-Lite0 and the
#   Fashion-MNIST CNN, all-MiniLM-L6-v2 (other models in models/ still load on
#   their first request, from /models);
# - app.tar: the manifest, both components and the models as one bundle;
#   BUNDLE_PRECOMPILE=1 adds the components compiled for this machine.
set -euo pipefail
cd "$(dirname "$0")/../.."

# As the README's first command builds it. WASI_INFER_BUILT=1 says the caller
# has built target/release/wasi-infer already (tests/run.sh, after building
# the whole workspace): building the default member alone would resolve
# other features and compile wasmtime, tract and the host a second time
# (15 minutes of a CI run on 2 cores).
if [ "${WASI_INFER_BUILT:-}" != 1 ]; then
    cargo build --release --quiet
fi
bin=target/release/wasi-infer
built=target/functions/self-contained
out=target/edge
mkdir -p "$out"

"$bin" preinit "$built/image_classify.wasm" -o "$out/image_classify.wasm" \
    --models models --model efficientnet-lite0 --model fashion-mnist-cnn
"$bin" preinit "$built/text_embed.wasm" -o "$out/text_embed.wasm" \
    --models models --model all-minilm-l6-v2

precompile=()
if [ "${BUNDLE_PRECOMPILE:-}" = 1 ]; then
    precompile=(--precompile)
fi
"$bin" bundle --manifest deploy/edge/spin.toml "${precompile[@]}" -o "$out/app.tar"
