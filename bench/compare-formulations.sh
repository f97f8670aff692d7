#!/usr/bin/env bash
# Compares the three formulations (DDPM with ε-prediction, EDM, flow matching) at the same training budget, as
# docs/results.md reports them: on 2-D sets the KDE score of samples at 10 and 20 network evaluations (bench-samplers,
# several samplers each), and on Fashion-MNIST (a reduced run) the Fréchet distance on the shipped classifier's
# features at 10 and 20 evaluations. Every run is seeded and single-threaded, so the figures repeat exactly.
#
#   bench/compare-formulations.sh [2d|images|all]     (default all; the results land in runs/formulations/)
#
# Budget on this 2-core machine: the 2-D part is 6 trainings of 2,000 MLP steps (about 1 minute of CPU each) and 6
# benchmarks; the image part is 3 trainings of 800 U-Net steps (base 32, no attention, batch 32: about 6 minutes of CPU
# each) and 6 evaluations of 500 samples. THREADS=2 runs libtorch on two threads (the figures then differ in rounding).
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
out=runs/formulations
mkdir -p "$out"
d() { nice -n 5 ./diffuse "$@" --threads "${THREADS:-1}"; }

if [[ "$what" == 2d || "$what" == all ]]; then
  for data in moons 8gaussians; do
    for f in ddpm edm flow; do
      m="$out/$data-$f"
      [[ -f "$m/model.safetensors" ]] || d train --data "$data" --formulation "$f" --steps 2000 --out "$m" --seed 0 > "$m.train.log" 2>&1
      d bench-samplers --model "$m" --budgets 10,20 --samplers ddim,euler,heun,dpm++2m,dpm++3m,unipc --count 2000 \
        --reference-steps 200 --fresh > "$m.bench.txt" 2>"$m.bench.err"
      echo "== $data $f"; cat "$m.bench.txt"
    done
  done
fi

if [[ "$what" == images || "$what" == all ]]; then
  for f in ddpm edm flow; do
    m="$out/fashion-mnist-$f"
    [[ -f "$m/model.safetensors" ]] || d train --data fashion-mnist --out "$m" --formulation "$f" --steps 800 --batch 32 --lr 1e-3 --warmup 100 \
      --ema 0.995 --channels 32 --channel-mult 1,2,2 --blocks 1 --attention none --checkpoint-every 400 --preview-every 800 --seed 0 \
      > "$m.train.log" 2>&1
    for steps in 10 20; do
      for sampler in dpm++2m euler; do
        d eval --model "$m" --count 500 --guidance 1 --sampler "$sampler" --steps "$steps" --json "$m.$sampler-$steps.json" \
          > "$m.$sampler-$steps.txt" 2>"$m.$sampler-$steps.err"
        echo "== fashion-mnist $f $sampler $steps steps"; grep -iE "Fréchet|FD|accuracy" "$m.$sampler-$steps.txt" | head -4
      done
    done
  done
fi
