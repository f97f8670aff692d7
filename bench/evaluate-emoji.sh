#!/usr/bin/env bash
# Measures an emoji model as docs/results.md reports it (default: the shipped models/emoji): sample quality on the
# emoji classifier's features beside the noise floor and class accuracy (guidance 1.5, 50 DPM-Solver++ steps; 86
# samples, the most the test split allows class-balanced: its smallest category, Activities, has 9 test images, and
# sample i has category i % 9), memorisation, the test-split bound in bits/dim, and the pictures
# (a grid with a row per category, the reverse process, the forward process). With --docs the pictures are copied
# into docs/images/.
#
#   bench/evaluate-emoji.sh [model] [--docs]
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-emoji}
out=runs/emoji-eval
mkdir -p "$out"
./diffuse eval --model "$model" --count 86 --threads 1 --memorization "$out/memorization.png" \
  --nll --nll-count 86 --nll-timesteps 50 --json "$out/quality.json"
./diffuse sample --model "$model" --out "$out/grid.png" --threads 1
./diffuse sample --model "$model" --count 18 --out "$out/grid-2.png" --animation "$out/reverse.gif" --scale 2 --threads 1
./diffuse noise --data emoji --out "$out/forward.png" --count 6
if [[ "${2:-}" == "--docs" ]]; then
  for f in grid.png reverse.gif forward.png memorization.png; do cp "$out/$f" "docs/images/emoji-$f"; done
fi
