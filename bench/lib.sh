# Shared helpers of the bench/ shell scripts; sourced after BENCH_NAME is set.

log() { echo "$BENCH_NAME: $*" >&2; }

# Waits (bounded, 10 s) until a file exists and is non-empty.
wait_file() {
  i=0
  while [ ! -s "$1" ]; do
    i=$((i + 1))
    [ $i -gt 200 ] && { log "timed out waiting for $1"; return 1; }
    sleep 0.05
  done
}

# CPU seconds (user + system, all threads) a process has used so far.
cpu_s() {
  awk -v hz="$(getconf CLK_TCK)" '{ sub(/.*\) /, ""); printf "%.2f\n", ($12 + $13) / hz }' "/proc/$1/stat"
}
