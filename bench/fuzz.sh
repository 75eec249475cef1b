#!/bin/sh
# Builds the libFuzzer harnesses of tests/fuzz (clang, SLUICE_FUZZ=ON, in
# build-fuzz) and runs each one in turn, one process at a time, from its
# seed corpus. Usage:
#   bench/fuzz.sh [SECONDS | -runs=N] [HARNESS...]
# SECONDS (default 60) is per harness; HARNESS is a name such as http1 or
# fuzz_http1 (default: all of them). Prints execs, execs/s, corpus size and
# findings per harness. Inputs the fuzzer found go to a work directory
# (OUT, default a fresh temp dir) with any crash/leak/timeout artifacts,
# never into the source tree; the exit status is 1 when anything was found.
# Env: BUILD (build-fuzz), OUT, SEED (1), MAX_LEN (libFuzzer default),
# EXTRA (more libFuzzer flags).
set -eu
BENCH_NAME=fuzz
cd "$(dirname "$0")/.."
. bench/lib.sh

limit=${1:-60}
[ $# -gt 0 ] && shift
case "$limit" in
  -runs=*) budget="$limit" ;;
  *[!0-9]*|'') echo "usage: $0 [SECONDS | -runs=N] [HARNESS...]" >&2; exit 2 ;;
  *) budget="-max_total_time=$limit" ;;
esac
BUILD=${BUILD:-build-fuzz}
SEED=${SEED:-1}
OUT=${OUT:-$(mktemp -d /tmp/sluice-fuzz.XXXXXX)}

command -v clang >/dev/null 2>&1 || { log "clang is missing (tools/install-deps.sh test)"; exit 1; }
CC=clang cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSLUICE_FUZZ=ON \
  -DSLUICE_BUILD_TESTS=OFF -DSLUICE_WERROR=ON >/dev/null
cmake --build "$BUILD" -j "${JOBS:-2}" --target fuzz >/dev/null

if [ $# -eq 0 ]; then
  set -- $(ls tests/fuzz/fuzz_*.c | sed 's|.*/fuzz_||; s|\.c$||')
fi

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
printf '%-8s %10s %12s %9s %8s %8s\n' harness seconds execs execs/s corpus findings
total_found=0
for h in "$@"; do
  h=${h#fuzz_}
  bin="$BUILD/tests/fuzz/fuzz_$h"
  [ -x "$bin" ] || { log "no harness $h"; exit 2; }
  dir="$OUT/$h"
  mkdir -p "$dir/corpus"
  start=$(date +%s)
  set +e
  "$bin" $budget -seed="$SEED" -timeout=10 -print_final_stats=1 ${MAX_LEN:+-max_len=$MAX_LEN} \
    -artifact_prefix="$dir/" ${EXTRA:-} "$dir/corpus" "tests/fuzz/corpus/$h" >"$dir/log" 2>&1
  rc=$?
  set -e
  secs=$(( $(date +%s) - start ))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" | tail -1)
  # A crash ends the run before the final stats: take the last status line.
  [ -n "$execs" ] || execs=$(sed -n 's/^#\([0-9]*\).*/\1/p' "$dir/log" | tail -1)
  execs=${execs:-0}
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$dir/log" | tail -1)
  [ "${rate:-0}" -gt 0 ] || rate=$(( execs / (secs > 0 ? secs : 1) ))
  found=$(ls "$dir" | grep -c -E '^(crash|leak|timeout|oom|slow-unit)-' || true)
  [ "$rc" -ne 0 ] && [ "$found" -eq 0 ] && found=1
  total_found=$((total_found + found))
  printf '%-8s %10s %12s %9s %8s %8s\n' "$h" "$secs" "$execs" "$rate" \
    "$(ls "$dir/corpus" | wc -l)" "$found"
  if [ "$found" -gt 0 ]; then
    log "$h: exit $rc; artifacts and log in $dir:"
    ls "$dir" | grep -E '^(crash|leak|timeout|oom|slow-unit)-' | sed "s|^|  $dir/|" >&2 || true
    grep -m1 -E 'ERROR|invariant failed|runtime error' "$dir/log" >&2 || true
  fi
done
log "work directory: $OUT"
[ "$total_found" -eq 0 ]
