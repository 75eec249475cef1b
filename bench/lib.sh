# Shared helpers of the bench/ shell scripts; sourced after BENCH_NAME is set
# (and, for start_sluiced, build: the build directory).

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

# Runs CMD pinned to CPU with taskset ("-": unpinned). A CPU the machine
# lacks (or no taskset) runs unpinned, said once in the log, so a small
# machine still gets numbers, marked as such.
pin() {  # pin CPU|- CMD...
  local cpu="$1"; shift
  [ "$cpu" = "-" ] && exec "$@"
  if command -v taskset >/dev/null && [ "$(nproc)" -gt "$cpu" ]; then
    exec taskset -c "$cpu" "$@"
  fi
  log "CPU $cpu not available: $1 runs unpinned"
  exec "$@"
}

# After a server was started in the background ($pid) with --ready-file
# FILE: waits (bounded, 10 s) for the file and sets addr to its http= line
# (HOST:PORT). Returns 1, the server stopped, when it exits or stays
# silent.
await_ready() {  # await_ready FILE -> addr
  addr=""
  for _ in $(seq 100); do
    if [ -s "$1" ]; then
      addr=$(sed -n 's/^http=//p' "$1" | head -1)
      [ -n "$addr" ] && return 0
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  log "server $pid did not become ready ($1)"
  stop_server
  return 1
}

# Starts BUILD/sluiced pinned to CPU on a free loopback port with its data
# and ready file under DIR (log: DIR/server.log), plus FLAGS. Sets pid and
# addr; returns 1 when it does not become ready.
start_sluiced() {  # start_sluiced DIR CPU|- FLAGS... -> pid, addr
  local dir="$1" cpu="$2"; shift 2
  mkdir -p "$dir/data"
  rm -f "$dir/ready"
  (pin "$cpu" "$build/sluiced" --listen 127.0.0.1:0 --data-dir "$dir/data" \
     --ready-file "$dir/ready" "$@") >"$dir/server.log" 2>&1 &
  pid=$!
  await_ready "$dir/ready"
}

# Stops the server $pid: SIGTERM, then SIGKILL after 10 s; reaps it.
stop_server() {
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
}
