#!/usr/bin/env bash
# The fan-out benchmark of bench/RESULTS.md: 1 publisher at 10,000 events/s
# of 64-byte events into one session, fanned out to 100 and to 1,000 SSE
# subscribers for 30 s, per protocol, each server pinned to CPU 0 and
# sluice-load to CPU 1 (bench/compare.sh).
#
# usage: bench/fanout.sh            (SERVERS="node" SUBS="100 1000" PROTOS="h2 h1"
#                                    DURATION=30 RATE=10000 BUILD=build)
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
servers="${SERVERS:-node}"
subs_list="${SUBS:-100 1000}"
protos="${PROTOS:-h2 h1}"
duration="${DURATION:-30}"
rate="${RATE:-10000}"
build="${BUILD:-$root/build}"
stamp=$(date +%Y%m%d-%H%M%S)
for proto in $protos; do
  for subs in $subs_list; do
    out="$root/bench/out/fanout-$stamp/$proto-$subs"
    echo "### fanout proto=$proto subscribers=$subs rate=$rate duration=$duration" >&2
    "$here/compare.sh" --servers "$servers" --build "$build" --out "$out" -- \
      --scenario fanout --proto "$proto" --publishers 1 --subscribers "$subs" \
      --rate "$rate" --size 64 --duration "$duration" --drain 10
  done
done
