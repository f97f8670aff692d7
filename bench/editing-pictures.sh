#!/usr/bin/env bash
# The pictures of docs/results.md for issue 13 (editing) on the shipped Fashion-MNIST model, one thread each.
# Usage: bench/editing-pictures.sh [out-folder]   (default docs/images)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$root/docs/images}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
d() { "$root/diffuse" "$@" --threads 1; }
mkdir -p "$out"
# Two test images as PNG files (encode → decode reproduces them to about a pixel level).
d encode --model fashion-mnist --images fashion-mnist:test --count 10 --out "$work/ten.safetensors"
d decode --model fashion-mnist --latents "$work/ten.safetensors" --out "$work/ten"
a="$(ls "$work"/ten/*.png | sed -n 1p)"; b="$(ls "$work"/ten/*.png | sed -n 2p)"
d interpolate --model fashion-mnist --seeds 1,2 --class 7 --frames 9 --out "$out/editing-interpolation-seeds.png"
d interpolate --model fashion-mnist --seeds 1,2 --class 7 --frames 9 --linear --out "$out/editing-interpolation-seeds-linear.png"
d interpolate --model fashion-mnist --images "$a,$b" --frames 9 --out "$out/editing-interpolation-images.png"
d interpolate --model fashion-mnist --images "$a,$b" --frames 12 --out "$out/editing-interpolation-images.gif"
# Class edits: the first ten test images decoded as sneakers (inversion), and SDEdit towards dresses.
d decode --model fashion-mnist --latents "$work/ten.safetensors" --class 7 --out "$out/editing-decode-as-sneakers.png"
d edit --model fashion-mnist --image fashion-mnist:test --count 10 --strength 0.5 --class 3 --out "$out/editing-sdedit-dress-0.5.png"
d edit --model fashion-mnist --image fashion-mnist:test --count 10 --strength 0.7 --class 3 --out "$out/editing-sdedit-dress-0.7.png"
# Inpainting: centre and lower half, replacement and RePaint.
d inpaint --model fashion-mnist --image fashion-mnist:test --count 10 --mask-rect 7,7,14,14 --sampler euler-ancestral --sigmas logsnr --out "$out/editing-inpaint-centre-replacement.png"
d inpaint --model fashion-mnist --image fashion-mnist:test --count 10 --mask-rect 7,7,14,14 --sampler euler-ancestral --sigmas logsnr --resample 5 --jump 5 --out "$out/editing-inpaint-centre-repaint.png"
d inpaint --model fashion-mnist --image fashion-mnist:test --count 10 --mask-rect 0,14,28,14 --sampler euler-ancestral --sigmas logsnr --resample 5 --jump 5 --out "$out/editing-inpaint-lower-repaint.png"
d noise --model fashion-mnist --spectrum "$out/fashion-mnist-spectrum.png"
