#!/usr/bin/env bash
# Runs one sluice-load scenario against several servers in one go — sluiced
# and the Node reference peer by default — each server pinned to one CPU and
# the load generator to another (taskset), then prints a ratio table.
#
# usage: bench/compare.sh [--servers "sluiced node"] [--out DIR] [--build DIR]
#                         [--server-cpu N] [--load-cpu N] [--] SLUICE-LOAD-FLAGS...
# e.g.   bench/compare.sh -- --scenario fanout --subscribers 100 --rate 10000 --duration 30
# SLUICED_FLAGS (default: none, the defaults are measured) adds flags to sluiced.
#
# Per server it writes OUT/NAME.json (sluice-load's result), OUT/NAME.txt
# (its table) and OUT/NAME.png (when gnuplot is installed). Each run is
# bounded by sluice-load's own flags; servers are stopped with SIGTERM, then
# SIGKILL after 10 s.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
BENCH_NAME=compare
. "$here/lib.sh"
servers="sluiced node"
out="$root/bench/out/compare-$(date +%Y%m%d-%H%M%S)"
build="${SLUICE_BUILD_DIR:-$root/build}"
server_cpu=0
load_cpu=1
while [ $# -gt 0 ]; do
  case "$1" in
    --servers) servers="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --build) build="$2"; shift 2 ;;
    --server-cpu) server_cpu="$2"; shift 2 ;;
    --load-cpu) load_cpu="$2"; shift 2 ;;
    --) shift; break ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) break ;;
  esac
done
load="$build/tools/sluice-load"
[ -x "$load" ] || { echo "compare: $load not built (cmake --build $build --target sluice-load)" >&2; exit 2; }
mkdir -p "$out"

start_server() {  # start_server NAME DIR -> sets pid, addr
  local name="$1" dir="$2"
  case "$name" in
    node) rm -f "$dir/ready"
          (pin "$server_cpu" node "$root/bench/peers/node-sse/server.js" --port 0 \
             --ready-file "$dir/ready") >"$dir/server.log" 2>&1 &
          pid=$!
          await_ready "$dir/ready" ;;
    sluiced) # One core for the server: one worker beside the reactor thread.
             # shellcheck disable=SC2086
             start_sluiced "$dir" "$server_cpu" --max-connections-per-ip 0 ${SLUICED_FLAGS:-} ;;
    *) log "unknown server $name"; return 1 ;;
  esac
}

for name in $servers; do
  dir="$out/$name.d"
  mkdir -p "$dir"
  echo "== $name" >&2
  if ! start_server "$name" "$dir"; then
    continue
  fi
  (pin "$load_cpu" "$load" --target "$addr" --target-pid "$pid" --json "$out/$name.json" \
     --plot "$out/$name.png" --progress plain "$@") >"$out/$name.txt"
  echo "sluice-load exit $? against $name" >&2
  cat "$out/$name.txt"
  stop_server
done

/usr/bin/python3 - "$out" $servers <<'PY'
import json, os, sys
out, names = sys.argv[1], sys.argv[2:]
docs = {}
for n in names:
    p = os.path.join(out, n + ".json")
    if os.path.exists(p):
        with open(p) as f:
            docs[n] = json.load(f)
if not docs:
    print("compare: no results"); sys.exit(1)
def lat(k):
    return lambda d: (d["latency"] or {}).get(k, 0) / 1e6
rows = [  # label, getter, higher is better
    ("deliveries/s", lambda d: d["delivered_per_s"], True),
    ("published/s", lambda d: d["published_per_s"], True),
    ("behind schedule", lambda d: d["behind_schedule"], False),
    ("latency p50 ms", lat("p50_ns"), False),
    ("latency p99 ms", lat("p99_ns"), False),
    ("latency p99.9 ms", lat("p999_ns"), False),
    ("latency max ms", lat("max_ns"), False),
    ("server CPU s / M deliveries", lambda d: d["target_cpu_s_per_million_deliveries"], False),
    ("server RSS max MiB", lambda d: d["target_rss_max_bytes"] / 1048576, False),
    ("errors+gaps", lambda d: d["conn_errors"] + d["stream_errors"] + d["gaps"], False),
]
cols = [n for n in names if n in docs]
print("\n%-30s" % "metric" + "".join("%16s" % c for c in cols) +
      ("%16s" % ("%s/%s" % (cols[0], cols[1])) if len(cols) > 1 else ""))
for label, get, hib in rows:
    vals = [get(docs[c]) for c in cols]
    line = "%-30s" % label + "".join("%16.3f" % v for v in vals)
    if len(vals) > 1:
        a, b = vals[0], vals[1]
        line += "%16s" % (("%.2fx" % (a / b)) if b else "-")
    print(line)
print("\nexit codes: " + ", ".join("%s=%d (%s)" % (c, docs[c]["exit_code"], docs[c]["verdict"])
                                   for c in cols))
print("results in " + out)
PY
