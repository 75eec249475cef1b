#!/usr/bin/env bash
# Crash loop, longer than its ctest form (tests/integration/test_crash_loop.py):
# durable and ephemeral publishers, kill -9 at a random moment, random byte
# damage in segment tails between some cycles, restart on the same data dir;
# after every restart each undamaged acknowledged event must be served at
# its seq, damage must be reported, and no seq may be handed out twice.
#
# usage: bench/crash_loop.sh [CYCLES]          (default 100)
#   env: BUILD=build (dir with sluiced), PUBLISHERS (default 4),
#        DAMAGE (probability a cycle ends with damage, default 0.3),
#        SEED (replay), OUT (result dir)
# Exit 0 when every cycle held; the log (OUT/crash_loop.log) starts with
# the seed (replay: SEED=that).
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
BENCH_NAME=crash_loop
. "$here/lib.sh"

BUILD=${BUILD:-build}
case $BUILD in /*) bdir=$BUILD ;; *) bdir=$root/$BUILD ;; esac
OUT=${OUT:-$here/out/crash_loop-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
[ -x "$bdir/sluiced" ] || { log "no $bdir/sluiced (make release)"; exit 2; }

export SLUICED=$bdir/sluiced SLUICE_BUILD_DIR=$bdir
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export SLUICE_CRASH_CYCLES=${1:-100}
export SLUICE_CRASH_PUBLISHERS=${PUBLISHERS:-4}
export SLUICE_CRASH_DAMAGE=${DAMAGE:-0.3}
[ -n "${SEED:-}" ] && export SLUICE_CRASH_SEED=$SEED

t0=$(date +%s)
/usr/bin/python3 "$root/tests/integration/test_crash_loop.py" >"$OUT/crash_loop.log" 2>&1
rc=$?
log "$(tail -1 "$OUT/crash_loop.log") ($(( $(date +%s) - t0 ))s; log in $OUT/crash_loop.log)"
exit $rc
