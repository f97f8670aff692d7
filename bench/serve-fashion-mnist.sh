#!/usr/bin/env bash
# Load on `diffuse serve` with the shipped Fashion-MNIST model: throughput and latency at concurrency 1, 4, 16 and 64,
# with dynamic batching and one request at a time (--no-batching); then the server's memory over 10,000 requests to a
# small table model. Prints Markdown tables for docs/benchmarks.md. Usage: bench/serve-fashion-mnist.sh [requests per level]
# Environment: DIFFUSE_THREADS (default 1), REQUEST (the JSON body, default dpm++2m 20 steps; serve-load adds a seed and
# class per request), LEVELS (default "1 4 16 64"), MEMORY=0 skips the memory run.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/setup.sh"
cd "$diffuse_root"
per_level="${1:-16}"
threads="${DIFFUSE_THREADS:-1}"
export DIFFUSE_THREADS="$threads"
dotnet build src/Diffuse.Cli -c Release -nologo -v q >/dev/null
dotnet build bench/Diffuse.Bench -c Release -nologo -v q >/dev/null
cli=src/Diffuse.Cli/bin/Release/net10.0/Diffuse.Cli.dll
bench=bench/Diffuse.Bench/bin/Release/net10.0/Diffuse.Bench
port=18080
request="${REQUEST:-{\"count\":1,\"sampler\":\"dpm++2m\",\"steps\":20\}}"
levels="${LEVELS:-1 4 16 64}"
echo "commit $(git rev-parse --short HEAD), $(nproc) cores, DIFFUSE_THREADS=$threads, request $request, load average $(cut -d' ' -f1-3 /proc/loadavg)"

serve() {   # serve <port> <args...>: starts a server in the background (its pid in $server), waits for it to answer
  local port="$1"; shift
  dotnet "$cli" serve --port "$port" "$@" >"/tmp/diffuse-serve-bench-$port.log" 2>&1 &
  server=$!
  for _ in $(seq 1 120); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && return 0; sleep 0.5; done
  echo "the server did not start:"; cat "/tmp/diffuse-serve-bench-$port.log"; exit 1
}

# Both servers stay up; each concurrency level is measured with batching, then one request at a time, so that the two
# see the same machine load (it is shared and its load drifts).
serve "$port" --model fashion-mnist; batched=$server
serve $((port + 1)) --model fashion-mnist --no-batching; sequential=$server
for c in $levels; do
  for mode in batching no-batching; do
    p=$port; [ "$mode" = no-batching ] && p=$((port + 1))
    echo; echo "### concurrency $c, $mode (load average $(cut -d' ' -f1 /proc/loadavg))"
    "$bench" serve-load "http://127.0.0.1:$p" fashion-mnist "$per_level" "$c" "$request" | tail -1
  done
done
kill -TERM "$batched" "$sequential"; wait "$batched" "$sequential" || true

[ "${MEMORY:-1}" = 0 ] && exit 0
echo; echo "## memory over 10,000 requests (moons table model, count 64, euler 10 steps, 4 clients)"
model="$(mktemp -d)/moons"
dotnet "$cli" train --data moons --out "$model" --steps 300 --width 64 --depth 2 --timesteps 100 >/dev/null
serve "$port" --model "$model"
"$bench" serve-memory "http://127.0.0.1:$port" moons 10000 "$server" 4 '{"count":64,"sampler":"euler","steps":10}'
kill -TERM "$server"; wait "$server" || true
rm -rf "$(dirname "$model")"
echo "load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
