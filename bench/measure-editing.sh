#!/usr/bin/env bash
# The editing measurements of docs/results.md (issue 13) on the shipped Fashion-MNIST model, one thread, in turn.
# Usage: bench/measure-editing.sh [inversion-per-class] [edits-per-class] [inpaint-per-class]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
dotnet build bench/Diffuse.Bench -c Release -nologo -v q
bin="$(ls -d bench/Diffuse.Bench/bin/Release/*/ | head -1)"
echo "commit $(git rev-parse --short HEAD)"
"$bin/Diffuse.Bench" editing-inversion "${1:-5}"
"$bin/Diffuse.Bench" editing-class "${2:-10}"
"$bin/Diffuse.Bench" editing-inpaint "${3:-10}"
