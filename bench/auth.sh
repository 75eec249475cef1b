#!/usr/bin/env bash
# Access control's cost (bench/RESULTS.md "Access control"): the same loads
# against sluiced without keys ("off") and with an HS256 key, every request
# carrying a token whose patterns match ("on"), in one run, alternating
# off/on (and which goes first) so drift on a shared machine hits both alike:
#   publish  h2load POSTs of 64-byte events over HTTP/2 (C connections, M
#            streams each; Authorization: Bearer on every request, verified
#            once per connection) -> req/s and server CPU-s per million
#            requests, medians of REPEAT runs
#   fanout   sluice-load fan-out (RATE events/s into one session, SUBS SSE
#            subscribers, each stream opened with the token) -> server CPU-s
#            per million deliveries, median of REPEAT runs
# The server is pinned to SERVER_CPU, the clients to CLIENT_CPU (taskset).
#
# usage: bench/auth.sh   (env: BUILD=build N=20000 C=8 M=16 RATE=2000 SUBS=100
#                         DURATION=5 REPEAT=3 SERVER_CPU=1 CLIENT_CPU=0
#                         OUT=bench/out/auth-STAMP)
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

publish_rps() {  # publish_rps MODE DIR
  local hdr=()
  [ "$1" = on ] && hdr=(-H "authorization: Bearer $token")
  start_server "$1" "$2" || { log "server did not start"; return 1; }
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
  order="off on"
  [ $((i % 2)) = 0 ] && order="on off"  # neither mode always runs second
  for mode in $order; do
    r=$(publish_rps "$mode" "$out/publish-$mode-$i") || exit 1
    echo "${r% *}" >>"$out/publish-$mode"
    echo "${r#* }" >>"$out/publish-cpu-$mode"
    log "publish $mode run $i: ${r% *} req/s, ${r#* } server CPU-s per million requests"
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
po, pn = runs("publish-off"), runs("publish-on")
pco, pcn = runs("publish-cpu-off"), runs("publish-cpu-on")
fo, fn = runs("fanout-off"), runs("fanout-on")
mpo, mpn, mpco, mpcn, mfo, mfn = (statistics.median(x) for x in (po, pn, pco, pcn, fo, fn))
print("| load | auth off | auth on | on / off |")
print("|---|---|---|---|")
print("| publish, h2load -n %s -c %s -m %s, req/s (median of %d) | %.0f | %.0f | %.3f |"
      % (n, c, m, len(po), mpo, mpn, mpn / mpo))
print("| the same, server CPU-s per 10^6 requests | %.2f | %.2f | %.3f (throughput-equivalent %.3f) |"
      % (mpco, mpcn, mpcn / mpco, mpco / mpcn))
print("| fan-out %s ev/s x %s subscribers, %s s, server CPU-s per 10^6 deliveries (median of %d) | %.2f | %.2f | %.3f (throughput-equivalent %.3f) |"
      % (rate, subs, dur, len(fo), mfo, mfn, mfn / mfo, mfo / mfn))
print()
print("runs: publish req/s off %s on %s; publish CPU off %s on %s; fan-out off %s on %s"
      % (po, pn, pco, pcn, fo, fn))
PY
