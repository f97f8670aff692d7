#!/usr/bin/env bash
# Measures a Fashion-MNIST model as docs/results.md reports it (default: the shipped models/fashion-mnist):
# sample quality on our classifier's features beside the noise floor and class accuracy (the defaults: 1,000 samples,
# guidance 1.5, 50 DPM-Solver++ steps; then guidance 1 and 2 with 20 steps), memorisation, the test-split bound in
# bits/dim, and the pictures. With --docs the pictures are copied into docs/images/.
#
#   bench/evaluate-fashion-mnist.sh [model] [--docs]
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-fashion-mnist}
out=runs/fashion-mnist-eval
mkdir -p "$out"
./diffuse eval --model "$model" --json "$out/quality.json"
for w in 1 2; do
  ./diffuse eval --model "$model" --guidance "$w" --sampler dpm++2m --sigmas logsnr --steps 20 --json "$out/quality-w$w-20.json"
done
./diffuse eval --model "$model" --guidance 2 --sampler dpm++2m --sigmas logsnr --steps 20 --memorization "$out/memorization.png" \
  --nll --nll-count 200 --nll-timesteps 100
./diffuse sample --model "$model" --out "$out/grid.png"
./diffuse sample --model "$model" --count 10 --out "$out/grid-10.png" --animation "$out/reverse.gif"
./diffuse sample --model "$model" --class 7 --out "$out/sneakers.png"
if [[ "${2:-}" == "--docs" ]]; then
  for f in grid.png reverse.gif sneakers.png memorization.png; do cp "$out/$f" "docs/images/fashion-mnist-$f"; done
fi
