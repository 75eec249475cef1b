#!/bin/sh
# HTTP/2 requests per second: sluiced's GET /health against Debian's
# nghttpd (--no-tls) serving a static file of the same size, driven by the
# same h2load command. Server pinned to CPU 0, client to CPU 1. Also
# measures, for a shorter run, syscalls per request (strace -c -f) and
# context switches per request (/proc/PID/task/*/status) of each server.
#
# Usage: bench/http2_rps.sh            (env knobs below)
#   SLUICED=build/sluiced  N=1000000 C=100 M=10  SHORT_N=100000
#   SLUICE_FLAGS="" (extra sluiced flags; the defaults are measured)   SERVER_CPU=0 CLIENT_CPU=1
# Prints a markdown table for bench/RESULTS.md on stdout; progress on stderr.
set -eu

SLUICED=${SLUICED:-build/sluiced}
N=${N:-1000000}
C=${C:-100}
M=${M:-10}
SHORT_N=${SHORT_N:-100000}
SLUICE_FLAGS=${SLUICE_FLAGS:-}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
H2LOAD_TIMEOUT=${H2LOAD_TIMEOUT:-300}

for tool in h2load nghttpd taskset curl; do
  command -v "$tool" >/dev/null 2>&1 || { echo "http2_rps: missing $tool (tools/install-deps.sh bench)" >&2; exit 1; }
done
[ -x "$SLUICED" ] || { echo "http2_rps: no sluiced at $SLUICED (make release, or set SLUICED)" >&2; exit 1; }
HAVE_STRACE=1
command -v strace >/dev/null 2>&1 || HAVE_STRACE=0

TMP=$(mktemp -d /tmp/sluice-bench-XXXXXX)
SL_PID=""
NG_PID=""
cleanup() {
  [ -n "$SL_PID" ] && kill "$SL_PID" 2>/dev/null && wait "$SL_PID" 2>/dev/null
  [ -n "$NG_PID" ] && kill "$NG_PID" 2>/dev/null && wait "$NG_PID" 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

BENCH_NAME=http2_rps
. "$(dirname "$0")/lib.sh"

# The TCP port a pid listens on (for nghttpd, which has no ready file).
listen_port() {
  i=0
  while :; do
    p=$(ss -Hltnp 2>/dev/null | grep "pid=$1," | awk '{print $4}' | sed 's/.*://' | head -n1)
    [ -n "$p" ] && { echo "$p"; return 0; }
    i=$((i + 1))
    [ $i -gt 200 ] && return 1
    sleep 0.05
  done
}

# Sum of a /proc status counter over every thread of a process.
ctx_switches() {
  cat /proc/"$1"/task/*/status 2>/dev/null | awk -v k="$2:" '$1 == k { s += $2 } END { print s + 0 }'
}

# Runs h2load pinned to the client CPU; prints req/s; fails unless all succeeded.
h2load_rps() {
  out="$TMP/h2load.$$.$(date +%s%N)"
  timeout "$H2LOAD_TIMEOUT" taskset -c "$CLIENT_CPU" h2load -n "$2" -c "$C" -m "$M" -t 1 "$1" >"$out" 2>&1 || {
    log "h2load failed:"; tail -n 20 "$out" >&2; return 1; }
  req=$(sed -n 's/^requests: .* \([0-9]*\) succeeded, \([0-9]*\) failed, \([0-9]*\) errored.*/\1 \2 \3/p' "$out")
  # shellcheck disable=SC2086  # split "succeeded failed errored" on purpose
  set -- $req
  if [ "${2:-1}" != 0 ] || [ "${3:-1}" != 0 ]; then
    log "h2load reported failures: $(grep '^requests:' "$out")"; return 1
  fi
  sed -n 's/^finished in [^,]*, \([0-9.]*\) req\/s.*/\1/p' "$out" | awk '{ printf "%.0f\n", $1 }'
}

# Syscalls per request: strace -c -f over a SHORT_N run. Prints the total
# per request, then the top three syscalls with their per-request rates.
syscalls_per_req() {
  [ "$HAVE_STRACE" = 1 ] || { echo "n/a n/a"; return 0; }
  st="$TMP/strace.$1"
  strace -c -f -q -S calls -p "$1" -o "$st" 2>/dev/null &
  spid=$!
  sleep 1
  h2load_rps "$2" "$SHORT_N" >/dev/null || true
  kill -INT "$spid" 2>/dev/null; wait "$spid" 2>/dev/null || true
  # strace -c rows: %time seconds usecs/call calls [errors] name.
  awk -v n="$SHORT_N" '
    $1 ~ /^[0-9.]+$/ && $NF == "total" { total = $4 }
    $1 ~ /^[0-9.]+$/ && $NF != "total" && shown < 3 { top = top sprintf("%s %.2f; ", $NF, $4 / n); shown++ }
    END { sub(/; $/, "", top); printf "%.2f %s\n", total / n, top }' "$st"
}

# ctx switches per request over a SHORT_N run (no tracer attached).
ctx_per_req() {
  v0=$(ctx_switches "$1" voluntary_ctxt_switches)
  n0=$(ctx_switches "$1" nonvoluntary_ctxt_switches)
  h2load_rps "$2" "$SHORT_N" >/dev/null
  v1=$(ctx_switches "$1" voluntary_ctxt_switches)
  n1=$(ctx_switches "$1" nonvoluntary_ctxt_switches)
  awk -v v=$((v1 - v0)) -v nv=$((n1 - n0)) -v n="$SHORT_N" 'BEGIN { printf "%.4f %.4f\n", v / n, nv / n }'
}

# --- sluiced ------------------------------------------------------------
log "starting sluiced ($SLUICED $SLUICE_FLAGS) on CPU $SERVER_CPU"
# shellcheck disable=SC2086
taskset -c "$SERVER_CPU" "$SLUICED" --listen 127.0.0.1:0 --data-dir "$TMP/data" \
  --ready-file "$TMP/ready" --log-level warn --max-connections-per-ip 0 $SLUICE_FLAGS 2>"$TMP/sluiced.log" &
SL_PID=$!
wait_file "$TMP/ready"
SL_ADDR=$(sed -n 's/^http=//p' "$TMP/ready")
SL_URL="http://$SL_ADDR/health"
mkdir -p "$TMP/www"
curl -sS --http2-prior-knowledge "$SL_URL" >"$TMP/www/health"
SIZE=$(wc -c <"$TMP/www/health")
log "sluiced at $SL_ADDR; /health is $SIZE bytes"

log "h2load -n $N -c $C -m $M against sluiced"
SL_RPS=$(h2load_rps "$SL_URL" "$N")
SL_CTX=$(ctx_per_req "$SL_PID" "$SL_URL")
SL_SYS=$(syscalls_per_req "$SL_PID" "$SL_URL")
SL_RSS=$(awk '/^VmHWM:/ { print $2 }' /proc/"$SL_PID"/status)
SL_THREADS=$(awk '/^Threads:/ { print $2 }' /proc/"$SL_PID"/status)
kill "$SL_PID"; wait "$SL_PID" 2>/dev/null || true; SL_PID=""

# --- nghttpd --------------------------------------------------------------
log "starting nghttpd --no-tls on CPU $SERVER_CPU serving a $SIZE-byte file"
taskset -c "$SERVER_CPU" nghttpd --no-tls -a 127.0.0.1 -d "$TMP/www" 0 >"$TMP/nghttpd.log" 2>&1 &
NG_PID=$!
NG_PORT=$(listen_port "$NG_PID") || { log "nghttpd did not listen"; exit 1; }
NG_URL="http://127.0.0.1:$NG_PORT/health"
log "h2load -n $N -c $C -m $M against nghttpd"
NG_RPS=$(h2load_rps "$NG_URL" "$N")
NG_CTX=$(ctx_per_req "$NG_PID" "$NG_URL")
NG_SYS=$(syscalls_per_req "$NG_PID" "$NG_URL")
NG_RSS=$(awk '/^VmHWM:/ { print $2 }' /proc/"$NG_PID"/status)
kill "$NG_PID"; wait "$NG_PID" 2>/dev/null || true; NG_PID=""

# --- report -----------------------------------------------------------------
RATIO=$(awk -v a="$SL_RPS" -v b="$NG_RPS" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
# shellcheck disable=SC2086  # "voluntary involuntary" pairs split on purpose
set -- $SL_CTX; SL_VCTX=$1; SL_NVCTX=$2
# shellcheck disable=SC2086
set -- $NG_CTX; NG_VCTX=$1; NG_NVCTX=$2
SL_SPR=${SL_SYS%% *}; SL_TOP=${SL_SYS#* }
NG_SPR=${NG_SYS%% *}; NG_TOP=${NG_SYS#* }
CPU=$(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -n1)

cat <<EOF
### HTTP/2 requests per second — GET /health vs nghttpd static file

\`h2load -n $N -c $C -m $M -t 1\` (h2c prior knowledge), server on CPU $SERVER_CPU, client on
CPU $CLIENT_CPU (\`taskset\`); response body $SIZE bytes. Syscalls via \`strace -c -f\` and context
switches (all threads, /proc/PID/task/*/status) over separate $SHORT_N-request runs.
Machine: $(nproc) CPUs, $CPU, Linux $(uname -r). sluiced flags: \`$SLUICE_FLAGS\` ($SL_THREADS threads).

| server | req/s | ratio | syscalls/req | top syscalls | vol. ctx sw/req | invol. ctx sw/req | peak RSS KiB |
|---|---:|---:|---:|---|---:|---:|---:|
| sluiced | $SL_RPS | $RATIO | $SL_SPR | $SL_TOP | $SL_VCTX | $SL_NVCTX | $SL_RSS |
| nghttpd --no-tls | $NG_RPS | 1.00 | $NG_SPR | $NG_TOP | $NG_VCTX | $NG_NVCTX | $NG_RSS |
EOF
