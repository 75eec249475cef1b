#!/bin/sh
# Fan-out over msgpack-RPC against fan-out over HTTP/2 SSE, same server, same
# sluice-load scenario as bench/fanout.sh: 1 publisher scheduling RATE events/s
# of 64-byte events into one session, fanned out to N subscribers (one
# subscription per connection) for DURATION s, then up to DRAIN s of drain.
# The only difference between the two runs of a row is --proto: h2 (SSE
# streams, publishes as POSTs) or rpc (`subscribe` with `event`
# notifications, publishes as RPC `publish`). A fresh sluiced per run, pinned
# to CPU 0 with one worker (as bench/compare.sh runs it), sluice-load pinned
# to CPU 1.
#
# Usage: bench/rpc_fanout.sh            (env knobs below)
#   SLUICED=build/sluiced LOAD=build/tools/sluice-load SUBS="100 1000"
#   RATE=10000 DURATION=30 DRAIN=10 SLUICE_FLAGS=""
#   SERVER_CPU=0 CLIENT_CPU=1 OUT=bench/out/rpc_fanout-STAMP
# Prints a markdown table for bench/RESULTS.md on stdout; progress on stderr;
# raw output (sluice-load JSON and tables, server logs) under OUT.
set -eu

SLUICED=${SLUICED:-build/sluiced}
LOAD=${LOAD:-build/tools/sluice-load}
SUBS=${SUBS:-100 1000}
RATE=${RATE:-10000}
DURATION=${DURATION:-30}
DRAIN=${DRAIN:-10}
SIZE=64
SLUICE_FLAGS=${SLUICE_FLAGS:-}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
OUT=${OUT:-bench/out/rpc_fanout-$(date +%Y%m%d-%H%M%S)}

command -v taskset >/dev/null 2>&1 || { echo "rpc_fanout: missing taskset" >&2; exit 1; }
[ -x "$SLUICED" ] || { echo "rpc_fanout: no sluiced at $SLUICED (make release, or set SLUICED)" >&2; exit 1; }
[ -x "$LOAD" ] || { echo "rpc_fanout: no sluice-load at $LOAD (set LOAD)" >&2; exit 1; }
"$SLUICED" --help 2>&1 | grep -q -- --rpc-listen || { echo "rpc_fanout: $SLUICED has no --rpc-listen" >&2; exit 1; }

mkdir -p "$OUT"
TMP=$(mktemp -d /tmp/sluice-bench-XXXXXX)
SL_PID=""
cleanup() {
  [ -n "$SL_PID" ] && kill "$SL_PID" 2>/dev/null && wait "$SL_PID" 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

BENCH_NAME=rpc_fanout
. "$(dirname "$0")/lib.sh"

# run PROTO SUBS: one fresh server, one sluice-load run. sluice-load's own
# exit status (1 = errors, gaps or an unfinished drain) is kept in the JSON
# and shown in the table, not treated as a failure of the script.
run() {
  name="$1-$2"
  d="$TMP/$name"
  mkdir -p "$d"
  # shellcheck disable=SC2086
  taskset -c "$SERVER_CPU" "$SLUICED" --listen 127.0.0.1:0 --rpc-listen 127.0.0.1:0 \
    --data-dir "$d/data" --ready-file "$d/ready" --log-level warn --max-connections-per-ip 0 $SLUICE_FLAGS \
    >/dev/null 2>"$OUT/$name.server.log" &
  SL_PID=$!
  wait_file "$d/ready"
  http=$(sed -n 's/^http=//p' "$d/ready" | head -n1)
  rpc=$(sed -n 's/^rpc=//p' "$d/ready" | head -n1)
  log "fanout proto=$1 subscribers=$2 rate=$RATE duration=$DURATION (http=$http rpc=$rpc)"
  taskset -c "$CLIENT_CPU" "$LOAD" --proto "$1" --target "$http" --rpc-target "$rpc" \
    --target-pid "$SL_PID" --json "$OUT/$name.json" --progress plain \
    --scenario fanout --publishers 1 --subscribers "$2" --rate "$RATE" --size "$SIZE" \
    --duration "$DURATION" --drain "$DRAIN" >"$OUT/$name.txt" 2>"$OUT/$name.progress" ||
    log "sluice-load exit $? for $name (see $OUT/$name.txt)"
  kill "$SL_PID"; wait "$SL_PID" 2>/dev/null || true; SL_PID=""
  [ -s "$OUT/$name.json" ] || { log "no result for $name"; return 1; }
}

for subs in $SUBS; do
  run h2 "$subs"
  run rpc "$subs"
done

CPU=$(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -n1)
cat <<EOF
### Fan-out: msgpack-RPC subscriptions vs HTTP/2 SSE streams (sluiced)

\`sluice-load --scenario fanout --publishers 1 --subscribers N --rate $RATE --size $SIZE
--duration $DURATION --drain $DRAIN --proto h2|rpc\`, a fresh \`sluiced $SLUICE_FLAGS\` per run on CPU
$SERVER_CPU, sluice-load on CPU $CLIENT_CPU, one run each. Machine: $(nproc) CPUs, $CPU, Linux $(uname -r).
Raw output: \`$OUT\`.

EOF
# shellcheck disable=SC2086  # one argument per subscriber count, on purpose
/usr/bin/python3 - "$OUT" $SUBS <<'PY'
import json, os, sys
out, subs = sys.argv[1], sys.argv[2:]
def load(name):
    with open(os.path.join(out, name + ".json")) as f:
        return json.load(f)
def ms(d, k):
    return "%.1f" % ((d["latency"] or {}).get(k, 0) / 1e6)
print("| subscribers | proto | deliveries/s | rpc / h2 | published/s | p50 / p99 latency ms | "
      "server CPU-s per 1M deliveries | server RSS max MiB | load CPU-s | verdict |")
print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---|")
for n in subs:
    h2, rpc = load("h2-" + n), load("rpc-" + n)
    ratio = rpc["delivered_per_s"] / h2["delivered_per_s"] if h2["delivered_per_s"] else 0
    for proto, d in (("h2", h2), ("rpc", rpc)):
        print("| %s | %s | %.0f | %s | %.0f | %s / %s | %.3f | %.1f | %.1f | %s (exit %d) |" % (
            n, proto, d["delivered_per_s"], "%.2f" % ratio if proto == "rpc" else "",
            d["published_per_s"], ms(d, "p50_ns"), ms(d, "p99_ns"),
            d["target_cpu_s_per_million_deliveries"], d["target_rss_max_bytes"] / 1048576.0,
            d["load_cpu_s"], d["verdict"], d["exit_code"]))
PY
