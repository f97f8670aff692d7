#!/usr/bin/env bash
# Trains the class-conditional colour emoji model shipped in models/emoji (Twemoji, 32×32 RGB), then measures it.
#
#   bench/train-emoji.sh [run-folder] [steps]        (defaults: runs/emoji, 1100)
#
# Budget: planned as about an hour of one CPU core; a step of batch 32 costs about 1.0 s of CPU, so the 1,100 steps of
# the shipped model are about 20 minutes of CPU (on the shared machine they took about 1.5 hours of wall time: see
# docs/results.md, which also says how that run was shortened and continued with --resume). The recipe: a U-Net of base 32
# channels, multipliers 1,2,2 (32×32, 16×16, 8×8), one residual block per level, no self-attention (for speed), dropout
# 0.1 (about 1.1 M parameters); batch 32, AdamW lr 1e-3 with 200 warm-up steps and cosine decay, EMA 0.998, random
# horizontal flips, label dropout 0.1, ε-prediction on the linear schedule with T = 1000; 9 classes (the emoji
# categories). On a shared machine the wall time is several times the CPU time (docs/results.md says what the shipped
# run took). One thread; the run is deterministic for a given thread count.
set -euo pipefail
cd "$(dirname "$0")/.."
run=${1:-runs/emoji}
steps=${2:-1100}

./diffuse train --data emoji --out "$run" --steps "$steps" --batch 32 --lr 1e-3 --warmup 200 --ema 0.998 \
  --channels 32 --channel-mult 1,2,2 --blocks 1 --attention none --flip \
  --checkpoint-every 200 --preview-every 500 --threads 1 --seed 0

# What models/emoji holds: the EMA weights, the config and the loss (the resume state stays in the run folder), and the
# graphics' licence (CC-BY 4.0 requires the attribution to travel with the model).
mkdir -p models/emoji
cp "$run/config.json" "$run/model.safetensors" "$run/loss.csv" models/emoji/

bench/evaluate-emoji.sh emoji
