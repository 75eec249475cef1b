#!/usr/bin/env bash
# TLS cost (bench/RESULTS.md "TLS"), in one run:
#   1. fan-out over h2c and over TLS (h2 by ALPN): the sluice-load fan-out
#      rows of bench/threads.sh (default 1000 events/s -> 100 subscribers,
#      one publisher, 64-byte events), sluiced pinned to SERVER_CPU and
#      sluice-load to LOAD_CPU; server CPU-s per 1M deliveries, p50/p99.
#   2. h2load over TLS against sluiced (GET /health) and Debian's h2o
#      (TLS, one thread, a static file of the same size as that /health
#      body), each pinned to SERVER_CPU with h2load on LOAD_CPU; requests/s
#      and server CPU-s per 1M requests.
# A throwaway CA and server certificate are made with the openssl CLI.
#
# usage: bench/tls_fanout.sh  (env: BUILD=build ROWS="1000x100" DURATION=10 DRAIN=2
#                              H2LOAD_N=100000 H2LOAD_C=10 H2LOAD_M=10
#                              SERVER_CPU=1 LOAD_CPU=0 OUT=bench/out/tls-STAMP)
# Prints markdown tables on stdout; raw output under OUT.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
BENCH_NAME=tls_fanout
. "$here/lib.sh"
build="${BUILD:-$root/build}"
rows="${ROWS:-1000x100}"
duration="${DURATION:-10}"
drain="${DRAIN:-2}"
h2n="${H2LOAD_N:-100000}"
h2c="${H2LOAD_C:-10}"
h2m="${H2LOAD_M:-10}"
server_cpu="${SERVER_CPU:-1}"
load_cpu="${LOAD_CPU:-0}"
out="${OUT:-$root/bench/out/tls-$(date +%Y%m%d-%H%M%S)}"
load="$build/tools/sluice-load"
[ -x "$load" ] || { log "$load not built"; exit 2; }
for t in openssl h2load h2o taskset; do
  command -v "$t" >/dev/null || { log "$t not installed (tools/install-deps.sh bench)"; exit 2; }
done
mkdir -p "$out/pki"
pki="$out/pki"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$pki/ca.key" \
  -out "$pki/ca.pem" -days 2 -subj "/CN=bench CA" 2>/dev/null || exit 2
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$pki/srv.key" \
  -out "$pki/srv.csr" -subj /CN=localhost 2>/dev/null || exit 2
echo "subjectAltName=DNS:localhost,IP:127.0.0.1" >"$pki/ext"
openssl x509 -req -in "$pki/srv.csr" -CA "$pki/ca.pem" -CAkey "$pki/ca.key" -set_serial 1 \
  -out "$pki/srv.pem" -days 2 -extfile "$pki/ext" 2>/dev/null || exit 2

pid=""
tls_flags=(--tls-cert "$pki/srv.pem" --tls-key "$pki/srv.key")

# 1. Fan-out: the same server flags, h2c then TLS.
for row in $rows; do
  rate=${row%x*}
  subs=${row#*x}
  for mode in h2c tls; do
    dir="$out/fanout-$rate-$subs-$mode"
    mkdir -p "$dir"
    start_sluiced "$dir" "$server_cpu" "${tls_flags[@]}" || { log "$dir: server did not start"; continue; }
    port=${addr##*:}
    target="127.0.0.1:$port"
    extra=()
    [ "$mode" = tls ] && { target="https://localhost:$port"; extra=(--cacert "$pki/ca.pem"); }
    log "fanout $row $mode: pid $pid"
    (pin "$load_cpu" "$load" --target "$target" "${extra[@]}" --target-pid "$pid" \
       --json "$dir/load.json" --progress off --proto h2 --size 64 --duration "$duration" \
       --drain "$drain" --scenario fanout --publishers 1 --subscribers "$subs" --rate "$rate") \
      >"$dir/load.txt" 2>&1
    echo "$?" >"$dir/exit"
    stop_server
  done
done

# h2load on LOAD_CPU against URL; the server's ($pid) CPU-s before and after
# go to DIR/cpu, h2load's report to DIR/h2load.txt.
h2load_run() {  # h2load_run DIR URL
  local c0 c1
  c0=$(cpu_s "$pid")
  taskset -c "$load_cpu" h2load -n "$h2n" -c "$h2c" -m "$h2m" "$2" >"$1/h2load.txt" 2>&1
  c1=$(cpu_s "$pid")
  echo "$c0 $c1" >"$1/cpu"
}

# 2. h2load over TLS: sluiced /health and h2o with a file of that size.
dir="$out/h2load-sluiced"
mkdir -p "$dir"
if start_sluiced "$dir" "$server_cpu" "${tls_flags[@]}"; then
  port=${addr##*:}
  curl -sS --cacert "$pki/ca.pem" "https://localhost:$port/health" >"$out/health.json"
  h2load_run "$dir" "https://localhost:$port/health"
  stop_server
fi
dir="$out/h2load-h2o"
mkdir -p "$dir/www"
head -c "$(wc -c <"$out/health.json")" /dev/zero | tr '\0' 'x' >"$dir/www/health"
h2o_port=$((20000 + RANDOM % 20000))
cat >"$dir/h2o.conf" <<EOF
num-threads: 1
listen:
  host: 127.0.0.1
  port: $h2o_port
  ssl:
    certificate-file: $pki/srv.pem
    key-file: $pki/srv.key
hosts:
  default:
    paths:
      /:
        file.dir: $dir/www
access-log: /dev/null
EOF
(pin "$server_cpu" h2o -c "$dir/h2o.conf") >"$dir/server.log" 2>&1 &
pid=$!
for _ in $(seq 100); do
  curl -sS -k -o /dev/null "https://localhost:$h2o_port/health" 2>/dev/null && break
  sleep 0.1
done
h2load_run "$dir" "https://localhost:$h2o_port/health"
stop_server

/usr/bin/python3 - "$out" <<'PY'
import json, os, re, sys
out = sys.argv[1]
print("| row (events/s -> subscribers) | transport | deliveries/s | CPU-s / 1M deliveries"
      " | p50 ms | p99 ms | p99 from send ms | publisher lateness p99 ms | load CPU-s | exit |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
for n in sorted(x for x in os.listdir(out) if x.startswith("fanout-")):
    d = os.path.join(out, n)
    try:
        j = json.load(open(os.path.join(d, "load.json")))
        code = int(open(os.path.join(d, "exit")).read())
    except (OSError, ValueError):
        continue
    _, rate, subs, mode = n.split("-")
    lat = j.get("latency") or {}
    sent = j.get("latency_from_send") or {}
    late = j.get("publish_lateness") or {}
    print("| %s -> %s | %s | %.0f | %.3f | %.2f | %.2f | %.2f | %.2f | %.2f | %d |" % (
        rate, subs, "h2 over TLS" if mode == "tls" else "h2c", j["delivered_per_s"],
        j["target_cpu_s_per_million_deliveries"], lat.get("p50_ns", 0) / 1e6,
        lat.get("p99_ns", 0) / 1e6, sent.get("p99_ns", 0) / 1e6, late.get("p99_ns", 0) / 1e6,
        j.get("load_cpu_s", 0), code))
print("\n| h2load over TLS (-n/-c/-m as run) | requests/s | succeeded | failed | server CPU-s / 1M requests |")
print("|---|---:|---:|---:|---:|")
for name, what in (("h2load-sluiced", "sluiced GET /health"), ("h2load-h2o", "h2o 2.2.5, static file")):
    d = os.path.join(out, name)
    try:
        text = open(os.path.join(d, "h2load.txt")).read()
        c0, c1 = map(float, open(os.path.join(d, "cpu")).read().split())
    except (OSError, ValueError):
        continue
    rps = re.search(r"finished in [^,]+, ([0-9.]+) req/s", text)
    req = re.search(r"requests: (\d+) total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed", text)
    if not rps or not req:
        continue
    ok = int(req.group(2))
    print("| %s | %.0f | %d | %s | %.2f |" % (what, float(rps.group(1)), ok, req.group(3),
                                             (c1 - c0) / (ok / 1e6) if ok else 0))
print("\nraw output: " + out)
PY
