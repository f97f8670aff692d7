#!/usr/bin/env bash
# Measures a Fashion-MNIST model as docs/results.md reports it (default: the shipped models/fashion-mnist):
# sample quality on our classifier's features beside the noise floor, class accuracy, memorisation, and the
# test-split bound in bits/dim. Writes the report JSON and pictures into docs/images/ only when asked (--docs).
#
#   bench/evaluate-fashion-mnist.sh [model] [--docs]
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-fashion-mnist}
out=runs/fashion-mnist-eval
mkdir -p "$out"
for w in 1 2 3; do
  ./diffuse eval --model "$model" --count 1000 --guidance "$w" --json "$out/quality-w$w.json"
done
./diffuse eval --model "$model" --count 1000 --guidance 2 --memorization "$out/memorization.png" \
  --nll --nll-count 200 --nll-timesteps 100
./diffuse sample --model "$model" --out "$out/grid.png" --animation "$out/reverse.gif"
./diffuse sample --model "$model" --class 7 --count 16 --out "$out/sneakers.png"
if [[ "${2:-}" == "--docs" ]]; then cp "$out"/{grid.png,reverse.gif,sneakers.png,memorization.png} docs/images/; fi
