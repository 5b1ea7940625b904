#!/usr/bin/env bash
# Writes each classifier's evaluation into its model card (models/NAME/README.md,
# between its `wasi-infer eval` markers) and its confusion matrix beside it
# (models/NAME/confusion-matrix.png), with `wasi-infer eval` against the real
# server: models/ is served once per backend (ONNX Runtime, OpenVINO, tract),
# and each model is evaluated on each, one after another, so the card has its
# latency per backend.
#
# Datasets: the Fashion-MNIST test split (tests/data/fashion-mnist, 10,000
# images) for the Fashion-MNIST models; for EfficientNet-Lite0, the five
# photos of tests/data/images/labelled.csv labelled by hand with their
# ImageNet class (a tiny set: it shows the pipeline, not the model's accuracy).
#
# usage: train/scripts/model-cards.sh [MODEL...]   (default: every classifier)
set -euo pipefail
cd "$(dirname "$0")/../.."

cargo build --release -p wasi-infer
bin=target/release/wasi-infer
host/scripts/fetch-onnxruntime.sh >/dev/null
host/scripts/fetch-openvino.sh >/dev/null

models=("$@")
[ ${#models[@]} -gt 0 ] || models=(fashion-mnist-cnn fashion-mnist-cnn-int8 fashion-mnist-cnn-pruned efficientnet-lite0 efficientnet-lite0-int8)

pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
urls=()
port=3100
for backend in onnxruntime openvino tract; do
    port=$((port + 1))
    "$bin" serve --models models --backend "$backend" --listen "127.0.0.1:$port" \
        >"target/model-cards-$backend.log" 2>&1 &
    pids+=($!)
    urls+=(--url "http://127.0.0.1:$port")
done
for ((p = 3101; p <= port; p++)); do
    for _ in $(seq 1 120); do
        curl -sf "http://127.0.0.1:$p/v2/health/ready" >/dev/null && break
        sleep 1
    done
    curl -sf "http://127.0.0.1:$p/v2/health/ready" >/dev/null ||
        { echo "the server on port $p did not get ready: see target/model-cards-*.log" >&2; exit 1; }
done

mkdir -p target/model-cards
for model in "${models[@]}"; do
    case "$model" in
        efficientnet-*) dataset=tests/data/images/labelled.csv ;;
        *) dataset=tests/data/fashion-mnist ;;
    esac
    "$bin" eval --compare "${urls[@]}" --model "$model" --dataset "$dataset" -c 4 \
        --png "models/$model/confusion-matrix.png" --card "models/$model/README.md" \
        --json "target/model-cards/$model.json"
    # One picture a card, the first backend's: --compare draws one for each
    # deployment, and the card's table shows how far the backends agree.
    rm -f "models/$model"/confusion-matrix-[0-9]*.png
done
