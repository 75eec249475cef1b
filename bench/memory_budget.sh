#!/usr/bin/env bash
# Memory budget under stalled subscribers: SUBS raw HTTP/1.1 SSE
# subscribers that ask for the whole log (?from=1: each one's catch-up is
# its own memory) and never read (4 KiB receive buffers), while one
# publisher floods 1 MiB events, against --memory-limit LIMIT. Samples the
# server's RSS, the budget's used bytes and /health latency every 0.25 s,
# then drops the subscribers and times how long the budget takes to come
# back and a publish to succeed again. Stops by itself.
#
# usage: bench/memory_budget.sh
#   SLUICED=build/sluiced SUBS=2000 SUB_RATE=400 LIMIT=64m PRELOAD=40 DURATION=20 OUT=bench/out
# (SUB_RATE: subscribers connected per second, so later ones meet the limit)
set -euo pipefail
BENCH_NAME=memory_budget
. "$(dirname "$0")/lib.sh"

SLUICED=${SLUICED:-build/sluiced}
SUBS=${SUBS:-2000}
LIMIT=${LIMIT:-64m}
PRELOAD=${PRELOAD:-40}
DURATION=${DURATION:-20}
SUB_RATE=${SUB_RATE:-400}
OUT=${OUT:-bench/out}
[ -x "$SLUICED" ] || { log "no sluiced at $SLUICED (make release, or set SLUICED)"; exit 1; }
ulimit -n "$((SUBS + 1024))" 2>/dev/null || log "cannot raise RLIMIT_NOFILE to $((SUBS + 1024))"

TMP=$(mktemp -d)
SL_PID=""
cleanup() { [ -n "$SL_PID" ] && kill "$SL_PID" 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT
mkdir -p "$OUT"
"$SLUICED" --listen 127.0.0.1:0 --data-dir "$TMP/data" --ready-file "$TMP/ready" \
  --memory-limit "$LIMIT" --max-connections-per-ip 0 --log-level warn 2>"$OUT/memory_budget.server.log" &
SL_PID=$!
wait_file "$TMP/ready"
ADDR=$(sed -n 's/^http=//p' "$TMP/ready")
log "sluiced pid $SL_PID at $ADDR, limit $LIMIT, $SUBS stalled subscribers, $PRELOAD MiB preloaded"

/usr/bin/python3 - "$ADDR" "$SL_PID" "$SUBS" "$PRELOAD" "$DURATION" "$SUB_RATE" <<'PY' | tee "$OUT/memory_budget.txt"
import http.client, json, socket, struct, sys, threading, time
addr, pid, subs, preload, duration = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
rate = float(sys.argv[6])
host, port = addr.rsplit(":", 1); port = int(port)
EV = b"x" * (1 << 20)
PATH = "/v1/sessions/flood/events"

def rss():
    with open("/proc/%d/status" % pid) as f:
        for l in f:
            if l.startswith("VmRSS:"):
                return int(l.split()[1]) * 1024

def req(method, path, body=None):
    c = http.client.HTTPConnection(host, port, timeout=30)
    c.request(method, path, body=body)
    r = c.getresponse(); data = r.read(); c.close()
    return r.status, r.getheader("retry-after"), data

for _ in range(preload):
    assert req("POST", PATH, EV)[0] == 200
rss0 = rss()
stop = threading.Event()
stats = {"pub": {}, "health": [], "rss": [], "used": [], "over_at": None}
t_start = time.monotonic()

def flood():
    while not stop.is_set():
        s, ra, _ = req("POST", PATH, EV)
        stats["pub"][s] = stats["pub"].get(s, 0) + 1
        if s == 503:
            stop.wait(0.05)

def sample():
    while not stop.is_set():
        t0 = time.monotonic()
        _, _, body = req("GET", "/health")
        stats["health"].append(time.monotonic() - t0)
        b = json.loads(body)["budget"]
        stats["rss"].append(rss()); stats["used"].append(b["used_bytes"])
        if b["over"] and stats["over_at"] is None:
            stats["over_at"] = time.monotonic() - t_start
        stop.wait(0.25)

ths = [threading.Thread(target=flood, daemon=True), threading.Thread(target=sample, daemon=True)]
for t in ths: t.start()
socks, refused_early = [], 0
for i in range(subs):
    if i % 100 == 99:
        time.sleep(100 / rate)  # paced: later ones arrive once the budget is over
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(10); s.connect((host, port))
    s.sendall(("GET %s?from=1 HTTP/1.1\r\nHost: x\r\n\r\n" % PATH).encode())
    socks.append(s)
t_conn = time.monotonic() - t_start
time.sleep(duration)
stop.set()
for t in ths: t.join(60)
h = json.loads(req("GET", "/health")[2])
for s in socks:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)); s.close()
t0 = time.monotonic()
while json.loads(req("GET", "/health")[2])["budget"]["over"] and time.monotonic() - t0 < 60:
    time.sleep(0.1)
back = time.monotonic() - t0
ok = req("POST", PATH, EV)[0]
hl = sorted(stats["health"])
pct = lambda p: hl[min(len(hl) - 1, int(p * len(hl)))] * 1e3
M = 1 << 20
print("subscribers            %d (connected over %.1f s)" % (subs, t_conn))
print("memory limit           %.0f MiB" % (h["budget"]["limit_bytes"] / M))
print("budget over after      %s s" % ("%.1f" % stats["over_at"] if stats["over_at"] is not None else "never"))
print("budget used max        %.1f MiB" % (max(stats["used"]) / M))
print("RSS idle / max         %.1f / %.1f MiB" % (rss0 / M, max(stats["rss"]) / M))
print("held at the end        %s" % json.dumps({k: round(v / M, 1) for k, v in h["budget"]["held"].items()}))
print("publishes 200 / 503    %d / %d" % (stats["pub"].get(200, 0), stats["pub"].get(503, 0)))
print("subscribes refused     %d" % h["budget"]["refused_subscribe"])
print("/health samples        %d, p50 %.1f ms, p99 %.1f ms, max %.1f ms" % (len(hl), pct(0.5), pct(0.99), hl[-1] * 1e3))
print("budget back after drop %.2f s (polled every 0.1 s); publish then: %d" % (back, ok))
PY
