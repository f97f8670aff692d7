#!/usr/bin/env bash
# Trains the class-conditional Fashion-MNIST model shipped in models/fashion-mnist, then measures it.
#
#   bench/train-fashion-mnist.sh [run-folder]        (default runs/fashion-mnist)
#
# The recipe was chosen to fit a 2-core CPU in about 1.5 hours: a U-Net of base 32 channels, multipliers 1,2,2, one
# residual block per level, attention at 7×7 and in the middle (1.0 M parameters); batch 64, AdamW lr 1e-3 with 200
# warm-up steps and cosine decay, EMA 0.999, 3,000 steps (3.2 epochs), label dropout 0.1, ε-prediction on the linear
# schedule with T = 1000. One thread, because the machine was shared while it trained; with the machine to itself,
# leave out --threads (every core is used for images). The run is deterministic for a given thread count.
set -euo pipefail
cd "$(dirname "$0")/.."
run=${1:-runs/fashion-mnist}

./diffuse train --data fashion-mnist --out "$run" --steps 3000 --batch 64 --lr 1e-3 --warmup 200 --ema 0.999 \
  --blocks 1 --checkpoint-every 250 --preview-every 500 --threads 1 --seed 0

# Quality beside the noise floor (1,000 samples; guidance 1.5 with 50 DPM-Solver++ steps, then 1 and 2 with 20) and the
# test-split bound (200 images, 100 sampled terms per batch of 10); see the script.
bench/evaluate-fashion-mnist.sh "$run"

# What models/fashion-mnist holds: the EMA weights and the config (the resume state stays in the run folder).
mkdir -p models/fashion-mnist
cp "$run/config.json" "$run/model.safetensors" "$run/loss.csv" models/fashion-mnist/
