#!/bin/sh
# Pipelined publish throughput over msgpack-RPC with durable acks: sluiced
# (--fsync batch, every publish {"durable": true}) against Debian's
# redis-server (appendonly yes, appendfsync everysec) taking XADD, 64-byte
# events, the same number of connections and the same pipeline depth (16 and
# 128 by default), one run each. Server pinned to CPU 0, client to CPU 1.
#
#   sluiced:  sluice-load --proto rpc --scenario publish --publishers C
#             --pipeline P --durable --events N --size 64   (one session)
#   redis:    redis-benchmark -c C -P P -n N XADD s '*' d <64 bytes>   (one stream)
#
# The two acks do not promise the same thing, and the table says so:
#   - sluiced answers a durable publish only after its record is fsynced;
#     --fsync batch groups the fsyncs of every publish waiting at that moment
#     (group commit), so pipelining is what lets it batch.
#   - redis with appendfsync everysec answers once the command is applied in
#     memory and queued for the AOF; a background fsync runs once a second, so
#     up to a second of acknowledged XADDs can be lost on a crash.
# sluiced's first figure is for the stronger guarantee. A second sluiced run
# without {"durable": true} gives the guarantee redis everysec gives: the
# publish is acknowledged once written to the page cache (it survives a
# process crash) and fsynced within --fsync-interval (1 s).
#
# Usage: bench/rpc_publish.sh            (env knobs below)
#   SLUICED=build/sluiced LOAD=build/tools/sluice-load N=500000 C=4
#   DEPTHS="16 128" SLUICE_FLAGS="" (defaults; extra sluiced flags)
#   SERVER_CPU=0 CLIENT_CPU=1 OUT=bench/out/rpc_publish-STAMP
# Prints a markdown table for bench/RESULTS.md on stdout; progress on stderr;
# raw output (sluice-load JSON and tables, redis-benchmark CSV, server logs)
# under OUT.
set -eu

SLUICED=${SLUICED:-build/sluiced}
LOAD=${LOAD:-build/tools/sluice-load}
N=${N:-500000}
C=${C:-4}
DEPTHS=${DEPTHS:-16 128}
SIZE=64
SLUICE_FLAGS=${SLUICE_FLAGS:-}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
RUN_TIMEOUT=${RUN_TIMEOUT:-600}
OUT=${OUT:-bench/out/rpc_publish-$(date +%Y%m%d-%H%M%S)}

for tool in redis-server redis-benchmark redis-cli taskset curl; do
  command -v "$tool" >/dev/null 2>&1 || { echo "rpc_publish: missing $tool (tools/install-deps.sh bench)" >&2; exit 1; }
done
[ -x "$SLUICED" ] || { echo "rpc_publish: no sluiced at $SLUICED (make release, or set SLUICED)" >&2; exit 1; }
[ -x "$LOAD" ] || { echo "rpc_publish: no sluice-load at $LOAD (set LOAD)" >&2; exit 1; }
"$SLUICED" --help 2>&1 | grep -q -- --rpc-listen || { echo "rpc_publish: $SLUICED has no --rpc-listen" >&2; exit 1; }

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd) # absolute: redis-server resolves its logfile after chdir to --dir
TMP=$(mktemp -d /tmp/sluice-bench-XXXXXX)
SL_PID=""
RD_PID=""
cleanup() {
  [ -n "$SL_PID" ] && kill "$SL_PID" 2>/dev/null && wait "$SL_PID" 2>/dev/null
  [ -n "$RD_PID" ] && kill "$RD_PID" 2>/dev/null && wait "$RD_PID" 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

BENCH_NAME=rpc_publish
. "$(dirname "$0")/lib.sh"

# A TCP port nothing listens on right now (redis has no port-0 ready file).
free_port() {
  /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# 64 bytes of payload, printable so both servers store the same bytes.
DATA=$(printf '%064d' 0 | tr 0 x)

# --- sluiced: one fresh server per depth ------------------------------------
# The run functions set RESULT rather than print it: they start servers in
# the background, which must belong to this shell (for cleanup), not to a
# command substitution's subshell.
sluice_run() {  # sluice_run DEPTH [nodurable] -> RESULT=events/s
  dur=--durable tag=P$1
  [ "${2:-}" = nodurable ] && dur="" tag=P$1-written
  d="$TMP/sluiced-$tag"
  mkdir -p "$d"
  # shellcheck disable=SC2086
  taskset -c "$SERVER_CPU" "$SLUICED" --listen 127.0.0.1:0 --rpc-listen 127.0.0.1:0 \
    --data-dir "$d/data" --ready-file "$d/ready" --fsync batch --log-level warn \
    $SLUICE_FLAGS >/dev/null 2>"$OUT/sluiced-$tag.log" &
  SL_PID=$!
  wait_file "$d/ready"
  rpc=$(sed -n 's/^rpc=//p' "$d/ready" | head -n1)
  http=$(sed -n 's/^http=//p' "$d/ready" | head -n1)
  cpu0=$(cpu_s "$SL_PID")
  log "sluice-load -> sluiced rpc=$rpc: $C connections, pipeline $1, $N durable publishes"
  timeout "$RUN_TIMEOUT" taskset -c "$CLIENT_CPU" "$LOAD" --proto rpc --rpc-target "$rpc" \
    --scenario publish --publishers "$C" --pipeline "$1" $dur --events "$N" \
    --size "$SIZE" --rate 0 --duration 300 --drain 10 --target-pid "$SL_PID" \
    --progress off --session-prefix bench --json "$OUT/sluiced-$tag.json" \
    >"$OUT/sluiced-$tag.txt" 2>&1 || { log "sluice-load failed:"; tail -n 20 "$OUT/sluiced-$tag.txt" >&2; return 1; }
  CPU=$(awk -v a="$cpu0" -v b="$(cpu_s "$SL_PID")" 'BEGIN { printf "%.2f", b - a }')
  sleep 0.3 # /health is a snapshot refreshed every 250 ms
  curl -sS "http://$http/health" >"$OUT/sluiced-$tag.health.json"
  kill "$SL_PID"; wait "$SL_PID" 2>/dev/null || true; SL_PID=""
  FSYNCS=$(/usr/bin/python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["storage"]["fsyncs"])' \
    "$OUT/sluiced-$tag.health.json")
  RESULT=$(/usr/bin/python3 - "$OUT/sluiced-$tag.json" "$N" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
if d["exit_code"] != 0 or d["published"] != int(sys.argv[2]) or d["publish_errors"]:
    sys.exit("sluice-load: exit %d, published %d, errors %d (%s)"
             % (d["exit_code"], d["published"], d["publish_errors"], d["verdict"]))
print("%.0f" % d["published_per_s"])
PY
)
}

# --- redis: one fresh server per depth --------------------------------------
redis_run() {  # redis_run DEPTH -> RESULT=XADD/s
  d="$TMP/redis-$1"
  mkdir -p "$d"
  port=$(free_port)
  taskset -c "$SERVER_CPU" redis-server --bind 127.0.0.1 --port "$port" --dir "$d" \
    --appendonly yes --appendfsync everysec --save '' --daemonize no \
    --logfile "$OUT/redis-P$1.log" >/dev/null 2>&1 &
  RD_PID=$!
  i=0
  until redis-cli -p "$port" ping 2>/dev/null | grep -q PONG; do
    i=$((i + 1))
    [ $i -gt 200 ] && { log "redis-server did not answer PING"; return 1; }
    sleep 0.05
  done
  log "redis-benchmark -> redis:$port: $C connections, pipeline $1, $N XADDs"
  cpu0=$(cpu_s "$RD_PID")
  timeout "$RUN_TIMEOUT" taskset -c "$CLIENT_CPU" redis-benchmark -p "$port" -c "$C" -P "$1" \
    -n "$N" --threads 1 --csv XADD s '*' d "$DATA" >"$OUT/redis-P$1.csv" 2>&1 || {
    log "redis-benchmark failed:"; tail -n 20 "$OUT/redis-P$1.csv" >&2; return 1; }
  CPU=$(awk -v a="$cpu0" -v b="$(cpu_s "$RD_PID")" 'BEGIN { printf "%.2f", b - a }')
  len=$(redis-cli -p "$port" XLEN s)
  redis-cli -p "$port" INFO persistence >"$OUT/redis-P$1.info" 2>&1 || true
  kill "$RD_PID"; wait "$RD_PID" 2>/dev/null || true; RD_PID=""
  # redis-benchmark sends whole pipelines, so the last batch of each client
  # may overshoot N by less than one pipeline.
  if [ "$len" -lt "$N" ] || [ "$len" -ge $((N + C * $1)) ]; then
    log "redis stream holds $len entries, expected $N"; return 1
  fi
  # CSV: "test","rps","avg_latency_ms",...; the data row is the last line.
  RESULT=$(tail -n 1 "$OUT/redis-P$1.csv" | awk -F'","' '{ printf "%.0f\n", $2 }')
}

ROWS=""
for depth in $DEPTHS; do
  sluice_run "$depth"
  sl=$RESULT sl_cpu=$CPU
  per_fsync=$(awk -v n="$N" -v f="$FSYNCS" 'BEGIN { printf "%.1f", (f > 0 ? n / f : 0) }')
  fsyncs=$FSYNCS
  sluice_run "$depth" nodurable
  slw=$RESULT slw_cpu=$CPU
  redis_run "$depth"
  rd=$RESULT rd_cpu=$CPU
  ratio=$(awk -v a="$sl" -v b="$rd" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
  ratiow=$(awk -v a="$slw" -v b="$rd" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
  ROWS="$ROWS| $depth | $sl | $slw | $rd | $ratio | $ratiow | $sl_cpu / $slw_cpu | $rd_cpu | $fsyncs ($per_fsync) |
"
done

CPU=$(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -n1)
cat <<EOF
### Pipelined durable publish over msgpack-RPC — sluiced vs redis XADD

$N events of $SIZE bytes, $C connections, one session / one stream, server on CPU $SERVER_CPU,
client on CPU $CLIENT_CPU (\`taskset\`), one run per depth. sluiced: \`--fsync batch $SLUICE_FLAGS\`,
every publish \`{"durable": true}\` (acknowledged after its fsync, group commit); driven by
\`sluice-load --proto rpc --scenario publish --pipeline P --durable\`. redis-server $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p'):
\`appendonly yes, appendfsync everysec\` (acknowledged before the fsync, which runs once a
second); driven by \`redis-benchmark -c $C -P P -n $N XADD s '*' d <$SIZE bytes>\`.
Machine: $(nproc) CPUs, $CPU, Linux $(uname -r). Raw output: \`$OUT\`.

| pipeline depth | sluiced durable/s (ack after fsync) | sluiced written/s (ack after write, fsync ≤ 1 s) | redis XADD/s (everysec) | durable / redis | written / redis | sluiced CPU-s (durable / written) | redis CPU-s | sluiced fsyncs, durable run (events per fsync) |
|---:|---:|---:|---:|---:|---:|---:|---:|---:|
$(printf '%s' "$ROWS")
EOF
