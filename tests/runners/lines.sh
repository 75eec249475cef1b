#!/bin/sh
# Prints COUNT lines ("MARKER line I"), one every INTERVAL seconds, then exits 0.
# Usage: lines.sh MARKER COUNT INTERVAL
marker=$1 count=${2:-10} interval=${3:-0}
i=1
while [ "$i" -le "$count" ]; do
    echo "$marker line $i"
    if [ "$interval" != 0 ]; then sleep "$interval"; fi
    i=$((i + 1))
done
echo "$marker done" >&2
