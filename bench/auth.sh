#!/usr/bin/env bash
# Access control's cost (bench/RESULTS.md "Access control"): the same loads
# against sluiced without keys ("off") and with an HS256 key, every request
# carrying a token whose patterns match ("on"), in one run, alternating
# off/on (and which goes first) so drift on a shared machine hits both alike:
#   publish  h2load POSTs of 64-byte events over HTTP/2 (C connections, M
#            streams each), the token on every request (verified once per
#            connection) in Authorization: Bearer -- which nghttp2's HPACK
#            encoder never indexes, so its bytes are Huffman-decoded by the
#            server on every request -- and in the cookie sluice_token
#            (indexed) -> req/s and server CPU-s per million requests,
#            medians of REPEAT runs
#   fanout   sluice-load fan-out (RATE events/s into one session, SUBS SSE
#            subscribers, each stream opened with the token) -> server CPU-s
#            per million deliveries, median of REPEAT runs
# The server is pinned to SERVER_CPU, the clients to CLIENT_CPU (taskset).
# With CALLGRIND=1, the publish load (CG_N requests) also runs against the
# server under valgrind --tool=callgrind in each mode and the instructions
# executed are printed: a count other load on the machine cannot blur (each
# run takes minutes: the server starts slowly under valgrind).
#
# usage: bench/auth.sh   (env: BUILD=build N=20000 C=8 M=16 RATE=2000 SUBS=100
#                         DURATION=5 REPEAT=3 SERVER_CPU=1 CLIENT_CPU=0
#                         CALLGRIND=0 CG_N=5000 OUT=bench/out/auth-STAMP)
# Prints a markdown table on stdout; raw output under OUT.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
BENCH_NAME=auth
. "$here/lib.sh"
build="${BUILD:-$root/build}"
n="${N:-20000}"
c="${C:-8}"
m="${M:-16}"
rate="${RATE:-2000}"
subs="${SUBS:-100}"
duration="${DURATION:-5}"
repeat="${REPEAT:-3}"
server_cpu="${SERVER_CPU:-1}"
client_cpu="${CLIENT_CPU:-0}"
out="${OUT:-$root/bench/out/auth-$(date +%Y%m%d-%H%M%S)}"
for tool in h2load taskset; do
  command -v "$tool" >/dev/null || { log "$tool not installed"; exit 2; }
done
for bin in sluiced tools/sluice-load tools/sluicectl; do
  [ -x "$build/$bin" ] || { log "$build/$bin not built"; exit 2; }
done
mkdir -p "$out"
head -c 48 /dev/zero | tr '\0' 'x' >"$out/secret"
head -c 64 /dev/zero | tr '\0' 'e' >"$out/body"
token=$("$build/tools/sluicectl" token --secret-file "$out/secret" --pub 'bench-*' \
          --sub 'bench-*' --ttl 3600) || exit 2
pid=""

start_server() {  # start_server MODE DIR -> pid, addr
  local dir="$2" ready="$2/ready" keys=()
  mkdir -p "$dir/data"
  [ "$1" = on ] && keys=(--auth-hs256-secret-file "$out/secret")
  (exec taskset -c "$server_cpu" "$build/sluiced" --listen 127.0.0.1:0 --data-dir "$dir/data" \
     --ready-file "$ready" "${keys[@]}") >"$dir/server.log" 2>&1 &
  pid=$!
  wait_file "$ready" || return 1
  addr=$(sed -n 's/^http=//p' "$ready")
}

stop_server() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  pid=""
}
trap stop_server EXIT

publish_rps() {  # publish_rps off|on|cookie DIR
  local hdr=() keys=off
  [ "$1" = on ] && hdr=(-H "authorization: Bearer $token") && keys=on
  [ "$1" = cookie ] && hdr=(-H "cookie: sluice_token=$token") && keys=on
  start_server "$keys" "$2" || { log "server did not start"; return 1; }
  local c0 c1
  c0=$(cpu_s "$pid")
  timeout 120 taskset -c "$client_cpu" h2load -n "$n" -c "$c" -m "$m" -t 1 -d "$out/body" \
    "${hdr[@]}" "http://$addr/v1/sessions/bench-pub/events" >"$2/h2load.txt" 2>&1
  c1=$(cpu_s "$pid")
  stop_server
  grep -q "succeeded, 0 failed, 0 errored" "$2/h2load.txt" || {
    log "h2load failures in $2: $(grep '^requests:' "$2/h2load.txt")"; return 1; }
  # req/s, and server CPU-s per million requests (less sensitive than
  # req/s to other load on a shared machine)
  echo "$(sed -n 's/^finished in [^,]*, \([0-9.]*\) req\/s.*/\1/p' "$2/h2load.txt")" \
       "$(awk -v a="$c0" -v b="$c1" -v n="$n" 'BEGIN { printf "%.3f", (b - a) / (n / 1e6) }')"
}

fanout_cpu() {  # fanout_cpu MODE DIR
  local tok=()
  [ "$1" = on ] && tok=(--token "$token")
  start_server "$1" "$2" || { log "server did not start"; return 1; }
  taskset -c "$client_cpu" "$build/tools/sluice-load" --target "$addr" --target-pid "$pid" \
    --json "$2/load.json" --progress off --proto h2 --scenario fanout --size 64 \
    --subscribers "$subs" --rate "$rate" --duration "$duration" --drain 2 \
    --session-prefix bench- "${tok[@]}" >"$2/load.txt" 2>&1
  local rc=$?
  stop_server
  [ "$rc" = 0 ] || { log "sluice-load failed in $2 (exit $rc)"; return 1; }
  /usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["target_cpu_s_per_million_deliveries"])' "$2/load.json"
}

for i in $(seq "$repeat"); do
  order="off on cookie"
  [ $((i % 2)) = 0 ] && order="cookie on off"  # no mode always runs last
  for mode in $order; do
    r=$(publish_rps "$mode" "$out/publish-$mode-$i") || exit 1
    echo "${r% *}" >>"$out/publish-$mode"
    echo "${r#* }" >>"$out/publish-cpu-$mode"
    log "publish $mode run $i: ${r% *} req/s, ${r#* } server CPU-s per million requests"
    [ "$mode" = cookie ] && continue
    f=$(fanout_cpu "$mode" "$out/fanout-$mode-$i") || exit 1
    echo "$f" >>"$out/fanout-$mode"
    log "fanout $mode run $i: $f CPU-s per million deliveries"
  done
done

/usr/bin/python3 - "$out" "$n" "$c" "$m" "$rate" "$subs" "$duration" <<'PY'
import statistics, sys
out, n, c, m, rate, subs, dur = sys.argv[1:]
def runs(name):
    return [float(x) for x in open("%s/%s" % (out, name)).read().split()]
po, pn, pk = runs("publish-off"), runs("publish-on"), runs("publish-cookie")
pco, pcn, pck = runs("publish-cpu-off"), runs("publish-cpu-on"), runs("publish-cpu-cookie")
fo, fn = runs("fanout-off"), runs("fanout-on")
med = statistics.median
print("| load | auth off | auth on | on / off |")
print("|---|---|---|---|")
for name, a, b in (("`Authorization: Bearer`", po, pn), ("cookie `sluice_token`", po, pk)):
    print("| publish, h2load -n %s -c %s -m %s, token in %s: req/s (median of %d) | %.0f | %.0f | %.3f |"
          % (n, c, m, name, len(a), med(a), med(b), med(b) / med(a)))
for name, a, b in (("`Authorization: Bearer`", pco, pcn), ("cookie `sluice_token`", pco, pck)):
    print("| the same, token in %s: server CPU-s per 10^6 requests | %.2f | %.2f | %.3f (throughput-equivalent %.3f) |"
          % (name, med(a), med(b), med(b) / med(a), med(a) / med(b)))
mfo, mfn = med(fo), med(fn)
print("| fan-out %s ev/s x %s subscribers, %s s, server CPU-s per 10^6 deliveries (median of %d) | %.2f | %.2f | %.3f (throughput-equivalent %.3f) |"
      % (rate, subs, dur, len(fo), mfo, mfn, mfn / mfo, mfo / mfn))
print()
print("runs: publish req/s off %s bearer %s cookie %s; publish CPU off %s bearer %s cookie %s; "
      "fan-out off %s on %s" % (po, pn, pk, pco, pcn, pck, fo, fn))
PY

[ "${CALLGRIND:-0}" = 1 ] || exit 0
command -v valgrind >/dev/null || { log "valgrind not installed"; exit 2; }
cg_n="${CG_N:-5000}"
echo
echo "| callgrind, h2load -n $cg_n -c 4 -m 16 | server instructions (Ir) | over off, per request | sl_conn__auth_http, per request |"
echo "|---|---|---|---|"
base=""
for mode in off on cookie; do
  dir="$out/callgrind-$mode"
  mkdir -p "$dir/data"
  keys=()
  [ "$mode" != off ] && keys=(--auth-hs256-secret-file "$out/secret")
  hdr=()
  [ "$mode" = on ] && hdr=(-H "authorization: Bearer $token")
  [ "$mode" = cookie ] && hdr=(-H "cookie: sluice_token=$token")
  valgrind --tool=callgrind --callgrind-out-file="$dir/cg.out" "$build/sluiced" \
    --listen 127.0.0.1:0 --data-dir "$dir/data" --ready-file "$dir/ready" --reactors 1 \
    --shutdown-grace 1 \
    "${keys[@]}" >"$dir/server.log" 2>&1 &
  pid=$!
  for _ in $(seq 6000); do [ -s "$dir/ready" ] && break; sleep 0.1; done
  addr=$(sed -n 's/^http=//p' "$dir/ready")
  timeout 600 h2load -n "$cg_n" -c 4 -m 16 -t 1 -d "$out/body" "${hdr[@]}" \
    "http://$addr/v1/sessions/bench-pub/events" >"$dir/h2load.txt" 2>&1
  stop_server
  ir=$(sed -n 's/.*I   refs: *//p' "$dir/server.log" | tr -d ,)
  own=$(callgrind_annotate --inclusive=yes "$dir/cg.out" 2>/dev/null |
        awk '/conn_auth.c:sl_conn__auth_http / { gsub(",", "", $1); print $1 }' | head -1)
  verify=$(callgrind_annotate --inclusive=yes "$dir/cg.out" 2>/dev/null |
           awk '/auth.c:sl_auth_verify / { gsub(",", "", $1); print $1 }' | head -1)
  [ -z "$base" ] && base="$ir"
  awk -v m="$mode" -v ir="$ir" -v b="$base" -v n="$cg_n" -v own="${own:-0}" -v v="${verify:-0}" \
    'BEGIN { printf "| %s | %d | %+.0f | %.0f (+ %.0f once: first verifications) |\n",
             m, ir, (ir - b) / n, (own - v) / n, v }'
done

