#!/bin/sh
# Durable Streams: sluice's /v1/stream face against the Node reference
# server (@durable-streams/server, pinned in tests/ds), the same work
# driven by tests/ds/bench_load.mjs over HTTP/1.1 keep-alive:
#   appends/s acknowledged after fsync (1 stream and 1,000 streams, 256 B),
#   SSE tail latency p50/p99 at 64, 512 and 2,048 readers (20, 10, 4 appends/s),
#   catch-up read MB/s of a large stream, next to dd of the disk.
# Server on CPU 1, load on CPU 0 (taskset). Short runs (SECS, default 5).
# Usage: bench/ds.sh [OUT_DIR]   env: SECS, MIB (catch-up size)
set -eu
ulimit -n 65536 2>/dev/null || true
BENCH_NAME=ds
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/bench/lib.sh"
OUT=${1:-$ROOT/bench/out/ds}
SECS=${SECS:-5}
MIB=${MIB:-256}
SLUICED=${SLUICED:-$ROOT/build/sluiced}
DS="$ROOT/tests/ds"
mkdir -p "$OUT"
WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/sluice-ds-bench.XXXXXX")
PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT INT TERM

start_sluice() {
  rm -rf "$WORK/data"
  taskset -c 1 "$SLUICED" --listen 127.0.0.1:0 --data-dir "$WORK/data" \
    --ready-file "$WORK/ready" --max-body-bytes 16m --max-connections-per-ip 0 >"$WORK/sluiced.log" 2>&1 &
  PID=$!
  wait_file "$WORK/ready"
  BASE="http://$(sed -n 's/^http=//p' "$WORK/ready" | head -1)/v1/stream"
  rm -f "$WORK/ready"
}

start_ref() {
  rm -rf "$WORK/ref"
  mkdir -p "$WORK/ref"
  # File-backed (LMDB + append-only logs), the reference's durable mode.
  (cd "$DS" && exec taskset -c 1 node refserver.mjs 0 "$WORK/ref" 30000) >"$WORK/ref.url" 2>"$WORK/ref.log" &
  PID=$!
  i=0
  until grep -q '^http' "$WORK/ref.url" 2>/dev/null; do
    i=$((i + 1)); [ $i -gt 200 ] && { log "reference server did not start"; return 1; }
    sleep 0.05
  done
  BASE="$(grep -m1 '^http' "$WORK/ref.url")/v1/stream"
}

stop() { kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; PID=; }

load() { (cd "$DS" && taskset -c 0 node bench_load.mjs "$@"); }

run_all() {
  name=$1
  log "$name: appends, 1 stream"
  load append "$BASE" 1 "$SECS" 16 256 | tee -a "$OUT/$name.jsonl"
  log "$name: appends, 1000 streams"
  load append "$BASE" 1000 "$SECS" 64 256 | tee -a "$OUT/$name.jsonl"
  # Appends/s per reader count, so the deliveries (readers x rate: 1,280,
  # 5,120, 8,192 per s) stay well below what the one-core load driver parses.
  for nr in 64:20 512:10 2048:4; do
    n=${nr%%:*} rate=${nr##*:}
    log "$name: SSE tail, $n readers at $rate appends/s"
    load sse "$BASE" "$n" "$rate" "$SECS" | tee -a "$OUT/$name.jsonl"
  done
  log "$name: catch-up of $MIB MiB"
  load catchup "$BASE" "$MIB" | tee -a "$OUT/$name.jsonl"
}

: >"$OUT/sluice.jsonl"
: >"$OUT/reference.jsonl"
start_sluice
run_all sluice
stop
start_ref
run_all reference
stop

# The disk itself: a sequential read of a file as large, past the page cache.
dd if=/dev/zero of="$WORK/dd.bin" bs=1M count="$MIB" conv=fsync status=none
log "dd (O_DIRECT) sequential read of $MIB MiB"
dd if="$WORK/dd.bin" of=/dev/null bs=1M iflag=direct 2>&1 | tail -1 | tee "$OUT/dd.txt"
