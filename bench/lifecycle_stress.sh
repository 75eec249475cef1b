#!/usr/bin/env bash
# Lifecycle stress, longer and wider than its ctest form
# (tests/integration/test_lifecycle_stress.py): HTTP/1.1 SSE, HTTP/2 and
# msgpack-RPC clients subscribing, unsubscribing, resetting and leaving
# abruptly while sessions are published to, deleted, recreated and left to
# hibernate; every delivered event is checked against the publish answers,
# and resources must return to the baseline before SIGTERM.
#
# usage: bench/lifecycle_stress.sh [RUNS]       (default 3 runs, new seed each)
#   env: BUILD=build (dir with sluiced; build-asan for the sanitizer build),
#        DURATION (s of churn per run, default 120), CLIENTS (default 3000),
#        CONCURRENCY (default 250), SESSIONS (default 12),
#        SEED (first run's seed; later runs use SEED+1, ...), OUT (result dir)
#   A run stops by itself: DURATION plus catch-up and settle bounds.
# Exit 0 when every run passed; each run's output is in OUT/run-N.log with
# its seed on the first line (replay: SLUICE_STRESS_SEED=that).
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
BENCH_NAME=lifecycle_stress
. "$here/lib.sh"

runs=${1:-3}
BUILD=${BUILD:-build}
case $BUILD in /*) bdir=$BUILD ;; *) bdir=$root/$BUILD ;; esac
OUT=${OUT:-$here/out/lifecycle_stress-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
[ -x "$bdir/sluiced" ] || { log "no $bdir/sluiced (make release)"; exit 2; }

export SLUICED=$bdir/sluiced SLUICE_BUILD_DIR=$bdir
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export SLUICE_STRESS_DURATION=${DURATION:-120}
export SLUICE_STRESS_CLIENTS=${CLIENTS:-3000}
export SLUICE_STRESS_CONCURRENCY=${CONCURRENCY:-250}
export SLUICE_STRESS_SESSIONS=${SESSIONS:-12}

failed=0
for i in $(seq 1 "$runs"); do
  if [ -n "${SEED:-}" ]; then export SLUICE_STRESS_SEED=$((SEED + i - 1)); fi
  t0=$(date +%s)
  if /usr/bin/python3 "$root/tests/integration/test_lifecycle_stress.py" >"$OUT/run-$i.log" 2>&1; then
    verdict=ok
  else
    verdict=FAIL; failed=$((failed + 1))
  fi
  seed=$(sed -n 's/^seed \([0-9]*\).*/\1/p' "$OUT/run-$i.log" | head -1)
  stats=$(sed -n 's/^stats: //p' "$OUT/run-$i.log")
  log "run $i: $verdict seed=$seed $(( $(date +%s) - t0 ))s $stats"
  [ $verdict = FAIL ] && grep -m 5 -E 'FAIL|fatal|ERROR: ' "$OUT/run-$i.log" >&2
done
log "$((runs - failed))/$runs runs passed; logs in $OUT"
[ $failed -eq 0 ]
