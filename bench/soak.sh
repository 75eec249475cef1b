#!/usr/bin/env bash
# Soak: a long streaming run with churn and periodic hostile clients, then a
# check that resources return to where they started.
#
# sluiced runs in its own network namespace; sluice-load (fan-out streaming
# over HTTP/2 into 4 sessions, steady subscribers plus churn plus stalled
# connections that resume) and bench/soak_faults.py (a half-open client
# every 40 s -- its packets dropped by nft -- and a stalled one every 40 s,
# plus a /health sample every 2 s) run in a second namespace over a veth
# pair. The watchdog runs with a compressed grace (5 s).
#
# After the load, the run waits SETTLE seconds (idle sessions hibernate),
# then compares the last /health sample with the first one taken before
# the load: fds, connections, subscribers and live sessions must be back to
# their baseline. RSS cannot return to the pre-load figure (the provided
# receive buffers, 16 MiB, are touched in rotation under load, and malloc
# keeps freed arenas), so it must end within RSS_SLACK_MIB of its plateau:
# the highest sample of the first quarter of the load -- a leak shows as
# growth beyond it. Every half-open client must have been reaped
# (reaped_send_stall == half-open clients) and no stalled one
# (reaped_paused == 0). Exit 0 when all hold, 1 otherwise.
#
# usage (root): bench/soak.sh [--long]
#   default: 240 s of load (about 5 minutes in all); --long: 1200 s (20 min)
#   env: BUILD=build (Release build dir with sluiced and tools/sluice-load),
#        DURATION, RATE (events/s, default 2000), SUBS (default 200),
#        SETTLE (default 40), RSS_SLACK_MIB (default 24), OUT (result dir)
# writes OUT/{health.tsv,load.json,load.txt,sluiced.log,soak.png,summary.txt}
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
duration="${DURATION:-240}"
[ "${1:-}" = "--long" ] && duration="${DURATION:-1200}"
build="${BUILD:-$root/build}"
rate="${RATE:-2000}"
subs="${SUBS:-200}"
settle="${SETTLE:-40}"
rss_slack="${RSS_SLACK_MIB:-24}"
out="${OUT:-$root/bench/out/soak-$(date +%Y%m%d-%H%M%S)}"
grace=5
[ "$(id -u)" = 0 ] || { echo "soak: needs root (network namespaces)" >&2; exit 2; }
for b in "$build/sluiced" "$build/tools/sluice-load"; do
  [ -x "$b" ] || { echo "soak: $b missing (cmake --build $build)" >&2; exit 2; }
done
mkdir -p "$out"
ns_s="slsoak$$s"; ns_c="slsoak$$c"
srv_pid=""
cleanup() {
  [ -n "$srv_pid" ] && kill "$srv_pid" 2>/dev/null && wait "$srv_pid" 2>/dev/null
  ip netns del "$ns_c" 2>/dev/null; ip netns del "$ns_s" 2>/dev/null
}
trap cleanup EXIT
ip netns add "$ns_s" && ip netns add "$ns_c" || exit 2
ip link add "sk$$a" netns "$ns_s" type veth peer name "sk$$b" netns "$ns_c"
ip -n "$ns_s" addr add 10.78.0.1/24 dev "sk$$a"; ip -n "$ns_c" addr add 10.78.0.2/24 dev "sk$$b"
for ns in "$ns_s" "$ns_c"; do ip -n "$ns" link set lo up; done
ip -n "$ns_s" link set "sk$$a" up; ip -n "$ns_c" link set "sk$$b" up

data="$out/data"; rm -rf "$data"; rm -f "$out/ready"
ip netns exec "$ns_s" "$build/sluiced" --listen 10.78.0.1:0 --data-dir "$data" \
  --ready-file "$out/ready" --dead-peer-grace "$grace" --watchdog-interval 1 \
  --session-idle 10 --max-connections 20000 --max-connections-per-ip 0 2> "$out/sluiced.log" &
srv_pid=$!
for _ in $(seq 100); do [ -s "$out/ready" ] && break; sleep 0.1; done
addr=$(sed -n 's/^http=//p' "$out/ready")
[ -n "$addr" ] || { echo "soak: sluiced did not start" >&2; cat "$out/sluiced.log" >&2; exit 1; }
host=${addr%:*}; port=${addr##*:}
echo "soak: sluiced pid $srv_pid at $addr; load ${duration}s at ${rate} events/s, $subs subscribers" >&2

# Faults and sampling span the load and the settle time; faults stop when
# the load does, so the end state is judged without new ones.
total=$((duration + 45 + settle))
ip netns exec "$ns_c" python3 "$here/soak_faults.py" --host "$host" --port "$port" \
  --seconds "$total" --faults-for "$duration" --tsv "$out/health.tsv" \
  --sessions soak-0,soak-1,soak-2,soak-3 --fault-every 20 --stall-for 30 \
  > "$out/faults.json" &
faults_pid=$!
sleep 4  # baseline samples before any load
ip netns exec "$ns_c" "$build/tools/sluice-load" --target "$addr" --proto h2 \
  --scenario churn --session-prefix soak --sessions 4 --publishers 2 --subscribers "$subs" \
  --rate "$rate" --size 200 --duration "$duration" --drain 30 \
  --churn-rate 20 --churn-hold 5 --churn-max 200 \
  --stall-fraction 0.05 --stall-after 30 --stall-for 60 --stall-then resume --rcvbuf 65536 \
  --allow-gaps --target-pid "$srv_pid" --json "$out/load.json" --progress plain \
  > "$out/load.txt" 2>&1
load_rc=$?
echo "soak: sluice-load exit $load_rc; settling ${settle}s" >&2
wait "$faults_pid"

python3 - "$out" "$rss_slack" "$load_rc" "$duration" <<'EOF'
import json, sys
out, slack, load_rc, duration = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
rows = [l.rstrip("\n").split("\t") for l in open(out + "/health.tsv")]
cols, rows = rows[0], [dict(zip(rows[0], map(float, r))) for r in rows[1:]]
faults = json.loads(open(out + "/faults.json").read().strip().splitlines()[-1])
base, end = rows[0], rows[-1]
peak = {k: max(r[k] for r in rows) for k in cols}
plateau = max(r["rss_mib"] for r in rows if r["t_s"] <= 4 + duration / 4)
checks = [
    ("open fds back to baseline", end["open_fds"] <= base["open_fds"]),
    ("connections back to baseline", end["connections"] <= base["connections"]),
    ("subscribers back to 0", end["subscribers"] == 0),
    ("live sessions back to 0 (hibernated)", end["sessions_live"] == 0),
    ("RSS within %g MiB of its early plateau (%.1f MiB)" % (slack, plateau),
     end["rss_mib"] <= plateau + slack),
    ("every half-open client reaped", end["reaped_send_stall"] == faults["half_open"]),
    ("no stalled (paused) client reaped", end["reaped_paused"] == 0),
    ("sluice-load exact on steady subscribers (exit 0)", load_rc == 0),
]
lines = ["samples %d over %.0f s" % (len(rows), end["t_s"]),
         "faults injected: %s" % faults,
         "%-22s %12s %12s %12s" % ("figure", "baseline", "peak", "end")]
for k in ("rss_mib", "open_fds", "connections", "streams", "subscribers", "sessions_live",
          "loop_lag_ms", "sched_lag_ms", "wd_tracked", "wd_paused", "reaped_send_stall",
          "reaped_peer_closed", "reaped_paused", "events_published", "events_delivered",
          "wd_tick_ms_max"):
    lines.append("%-22s %12g %12g %12g" % (k, base[k], peak[k], end[k]))
ok = all(c for _, c in checks)
lines += ["%s %s" % ("ok  " if c else "FAIL", what) for what, c in checks]
open(out + "/summary.txt", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
sys.exit(0 if ok else 1)
EOF
rc=$?

if command -v gnuplot >/dev/null; then
  gnuplot <<EOF 2>/dev/null
set terminal pngcairo size 1200,900 noenhanced
set output "$out/soak.png"
set datafile separator "\t"
set key autotitle columnhead top left
set multiplot layout 2,2 title "sluiced soak: ${duration}s load, half-open + stalled clients"
set xlabel "seconds"
set title "RSS (MiB)"; plot "$out/health.tsv" using 1:2 with lines
set title "fds, connections, subscribers"; plot "$out/health.tsv" using 1:3 with lines, "" using 1:4 with lines, "" using 1:6 with lines
set title "loop and scheduler lag (ms, max per sample)"; plot "$out/health.tsv" using 1:9 with lines, "" using 1:10 with lines
set title "watchdog: tracked, paused (left); reaps (right)"; set y2tics; set ytics nomirror
plot "$out/health.tsv" using 1:11 with lines, "" using 1:12 with lines, "" using 1:13 axes x1y2 with steps lw 2, "" using 1:15 axes x1y2 with steps lw 2
unset multiplot
EOF
  [ -s "$out/soak.png" ] && echo "soak: plot $out/soak.png" >&2
fi
echo "soak: results in $out" >&2
exit $rc
