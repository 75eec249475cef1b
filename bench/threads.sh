#!/usr/bin/env bash
# Thread modes under fan-out (bench/RESULTS.md "Thread-per-core"): the same
# sluice-load fan-out rows against
#   old   sluiced --workers 2 --reactors 1 (a worker pool beside one reactor)
#   new   sluiced with its defaults (thread-per-core; pinned to one CPU that
#         is one reactor running its own actors)
#   tuned sluiced defaults plus TUNED_FLAGS (default: --fanout-budget 0.02)
#   node  the Node reference peer (bench/peers/node-sse)
#   nats  nats-server (Debian's, core NATS) with bench/peers/nats/natsload.c
#         as publisher and subscribers (one subject, one subscription per
#         connection); its CPU is read from /proc around the load
# each server pinned to SERVER_CPU and sluice-load to LOAD_CPU (taskset), one
# publisher, 64-byte events, one session, DURATION s of publishing. Per run
# it records the server's CPU-s per million deliveries (sluice-load), p50/p99
# latency and the voluntary context switches of all the server's threads
# (/proc/PID/task/*/status, from server start to load end) per delivery.
# Then, unless SCALING=0, sluiced unpinned with --reactors 1 and 2 (load
# unpinned too) at the maximum publish rate into 4 sessions.
#
# usage: bench/threads.sh     (env: BUILD=build ROWS="1000x100 1000x1000 10000x100"
#                              MODES="old new tuned node nats" DURATION=10 DRAIN=2 PROTO=h2
#                              SERVER_CPU=1 LOAD_CPU=0 SCALING=1 OUT=bench/out/threads-STAMP)
# Prints markdown tables on stdout; raw output (JSON, tables, logs) under OUT.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
BENCH_NAME=threads
. "$here/lib.sh"
build="${BUILD:-$root/build}"
rows="${ROWS:-1000x100 1000x1000 10000x100}"
modes="${MODES:-old new tuned node nats}"
tuned_flags="${TUNED_FLAGS:---fanout-budget 0.02}"
duration="${DURATION:-10}"
drain="${DRAIN:-2}"
proto="${PROTO:-h2}"
server_cpu="${SERVER_CPU:-1}"
load_cpu="${LOAD_CPU:-0}"
scaling="${SCALING:-1}"
out="${OUT:-$root/bench/out/threads-$(date +%Y%m%d-%H%M%S)}"
load="$build/tools/sluice-load"
# Every subscriber connection comes from the one load generator (127.0.0.1),
# which the per-address bound exempts by default (--per-ip-exempt loopback);
# off as well, so the rows hold whatever --per-ip-exempt says.
one_client="--max-connections-per-ip 0"
[ -x "$load" ] || { log "$load not built"; exit 2; }
mkdir -p "$out"
natsload="$out/natsload"
case " $modes " in
  *" nats "*) command -v nats-server >/dev/null || { log "nats-server not installed (apt-get install nats-server)"; exit 2; }
              cc -O2 -o "$natsload" "$here/peers/nats/natsload.c" || exit 2 ;;
esac

# Voluntary context switches of every thread of a process.
vcs() {
  awk '/^voluntary_ctxt_switches/ { s += $2 } END { print s + 0 }' /proc/"$1"/task/*/status 2>/dev/null
}

start_server() {  # start_server MODE DIR CPU -> pid, addr
  local mode="$1" dir="$2" cpu="$3"
  mkdir -p "$dir"
  case "$mode" in
    node) rm -f "$dir/ready"
          (pin "$cpu" node "$root/bench/peers/node-sse/server.js" --port 0 \
             --ready-file "$dir/ready") >"$dir/server.log" 2>&1 &
          pid=$!
          await_ready "$dir/ready" ;;
    old)  start_sluiced "$dir" "$cpu" $one_client --workers 2 --reactors 1 ;;
    new)  start_sluiced "$dir" "$cpu" $one_client ;;
    tuned) # shellcheck disable=SC2086
           start_sluiced "$dir" "$cpu" $one_client $tuned_flags ;;
    nats) # nats-server takes a port, not 0: a random one, another if it was taken.
          for _ in 1 2 3 4 5; do
            port=$((20000 + RANDOM % 20000))
            (pin "$cpu" nats-server -a 127.0.0.1 -p "$port") >"$dir/server.log" 2>&1 &
            pid=$!
            for _ in $(seq 100); do
              kill -0 "$pid" 2>/dev/null || break  # exited: the port was in use
              (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && { addr="127.0.0.1:$port"; return 0; }
              sleep 0.1
            done
            wait "$pid" 2>/dev/null
          done
          return 1 ;;
    r[0-9]*) start_sluiced "$dir" "$cpu" $one_client --reactors "${mode#r}" ;;
    *) log "unknown mode $mode"; return 1 ;;
  esac
}

# natsload takes RATE SUBS from the sluice-load flags of the row.
run_nats() {  # run_nats DIR LOAD_CPU --scenario fanout --publishers 1 --subscribers N --rate R
  local dir="$1" lcpu="$2" subs="" rate=""; shift 2
  while [ $# -gt 0 ]; do
    case "$1" in --subscribers) subs="$2"; shift 2 ;; --rate) rate="$2"; shift 2 ;; *) shift ;; esac
  done
  local c0 c1
  c0=$(cpu_s "$pid")
  (pin "$lcpu" "$natsload" 127.0.0.1 "${addr#*:}" "$rate" "$subs" "$duration" 64 "$drain") \
    >"$dir/natsload.json" 2>"$dir/load.txt"
  echo "$?" >"$dir/exit"
  c1=$(cpu_s "$pid")
  vcs "$pid" >"$dir/vcs"
  /usr/bin/python3 - "$dir" "$c0" "$c1" <<'PY'
import json, sys
d, c0, c1 = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
j = json.load(open(d + "/natsload.json"))
j["target_cpu_s"] = c1 - c0
j["target_cpu_s_per_million_deliveries"] = (c1 - c0) / (j["delivered"] / 1e6) if j["delivered"] else 0
json.dump(j, open(d + "/load.json", "w"))
PY
}

run_one() {  # run_one NAME MODE SERVER_CPU LOAD_CPU SLUICE-LOAD-FLAGS...
  local name="$1" mode="$2" scpu="$3" lcpu="$4"; shift 4
  local dir="$out/$name"
  mkdir -p "$dir"
  start_server "$mode" "$dir" "$scpu" || { log "$name: server did not start"; return 1; }
  log "$name: pid $pid at $addr"
  if [ "$mode" = nats ]; then run_nats "$dir" "$lcpu" "$@"; stop_server; return; fi
  (pin "$lcpu" "$load" --target "$addr" --target-pid "$pid" --json "$dir/load.json" \
     --progress off --proto "$proto" --size 64 --duration "$duration" --drain "$drain" "$@") \
     >"$dir/load.txt" 2>&1
  echo "$?" >"$dir/exit"
  vcs "$pid" >"$dir/vcs"
  [ "$mode" = node ] || curl -s -m 5 "http://$addr/health" >"$dir/health.json" 2>/dev/null
  stop_server
}

for row in $rows; do
  rate=${row%x*}
  subs=${row#*x}
  for mode in $modes; do
    run_one "fanout-$rate-$subs-$mode" "$mode" "$server_cpu" "$load_cpu" \
      --scenario fanout --publishers 1 --subscribers "$subs" --rate "$rate"
  done
done
if [ "$scaling" = 1 ]; then
  for mode in r1 r2; do
    run_one "scaling-$mode" "$mode" - - --scenario fanout --sessions 4 --publishers 4 \
      --subscribers 400 --rate 0
  done
fi

/usr/bin/python3 - "$out" <<'PY'
import json, os, sys
out = sys.argv[1]
def load(name):
    d = os.path.join(out, name)
    try:
        with open(os.path.join(d, "load.json")) as f:
            j = json.load(f)
        with open(os.path.join(d, "vcs")) as f:
            j["vcs"] = int(f.read().strip() or 0)
        with open(os.path.join(d, "exit")) as f:
            j["exit"] = int(f.read().strip())
        return j
    except (OSError, ValueError):
        return None
def ms(j, k):
    return (j.get("latency") or {}).get(k, 0) / 1e6
def health(name):
    try:
        with open(os.path.join(out, name, "health.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None
def per(h, j, key):
    if not h or not j["delivered"]:
        return "-"
    if key == "enter_calls":
        v = sum(x.get("enter_calls", 0) for x in h.get("reactors", []))
    else:
        v = h.get("http", {}).get(key, 0)
    return "%.4f" % (v / j["delivered"])
def hmax(j):
    v = (j.get("health_latency") or {}).get("max_ns")
    return "%.2f" % (v / 1e6) if v else "-"
print("| row (events/s -> subscribers) | server | deliveries/s | published/s | CPU-s / 1M deliveries"
      " | p50 ms | p99 ms | p99.9 ms | voluntary cs / delivery | io_uring_enter / delivery"
      " | sends / delivery | RSS max MiB | /health max ms | exit |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
names = sorted(n for n in os.listdir(out) if n.startswith("fanout-"))
ORDER = ["old", "new", "tuned", "node", "nats"]
key = lambda n: (int(n.split("-")[1]), int(n.split("-")[2]), ORDER.index(n.split("-")[3]) if n.split("-")[3] in ORDER else 9)
for n in sorted(names, key=key):
    j = load(n)
    if not j:
        continue
    _, rate, subs, mode = n.split("-")
    cs = j["vcs"] / j["delivered"] if j["delivered"] else 0
    h = health(n) if mode not in ("node", "nats") else None
    rss = j.get("target_rss_max_bytes") or 0
    print("| %s -> %s | %s | %.0f | %.0f | %.3f | %.2f | %.2f | %.2f | %.4f | %s | %s | %s | %s | %d |" % (
        rate, subs, mode, j["delivered_per_s"], j["published_per_s"],
        j["target_cpu_s_per_million_deliveries"], ms(j, "p50_ns"), ms(j, "p99_ns"),
        ms(j, "p999_ns"), cs, per(h, j, "enter_calls"), per(h, j, "sends"),
        "%.1f" % (rss / 1048576) if rss else "-", hmax(j), j["exit"]))
sc = [(m, load("scaling-" + m)) for m in ("r1", "r2")]
if all(j for _, j in sc):
    print("\n| sluiced unpinned | deliveries/s | published/s | CPU-s / 1M deliveries | p99 ms"
          " | voluntary cs / delivery | exit |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for m, j in sc:
        per = j["vcs"] / j["delivered"] if j["delivered"] else 0
        print("| --reactors %s | %.0f | %.0f | %.3f | %.2f | %.4f | %d |" % (
            m[1:], j["delivered_per_s"], j["published_per_s"],
            j["target_cpu_s_per_million_deliveries"], ms(j, "p99_ns"), per, j["exit"]))
    a, b = sc[0][1]["delivered_per_s"], sc[1][1]["delivered_per_s"]
    print("\nscaling ratio (deliveries/s, --reactors 2 / --reactors 1): %.2f" % (b / a if a else 0))
print("\nraw output: " + out)
PY
