"""The operator's side of the watchdog: /debug/connections, /health and
/metrics figures, and the liveness flags' validation.

- /debug/connections ranks by age (oldest first), by lag (the subscriber
  that stopped reading a busy session first), clamps limit to 1..1000,
  answers 400 for an unknown sort or a bad limit and 405 for POST, and
  shows the kernel's figures for every row;
- /health has the watchdog and guard objects; /metrics is valid
  Prometheus text with the watchdog and abuse series;
- bad flag combinations exit 2 with a message naming the flags;
  --watchdog-interval 0 turns the watchdog off (and says so).
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sluice_harness as H  # noqa: E402
from test_sessions_durability import SseStream  # noqa: E402

suite = H.Suite("test_watchdog_api")


def debug(srv, query, status=200):
    r = H.http1_request(srv.host, srv.port, "GET", "/debug/connections" + query)
    H.check_eq(r.status, status, "GET /debug/connections%s status" % query)
    return r.json()


def publish(srv, sid, n, size):
    body = "".join('{"data":"%s"}\n' % ("q" * size) for _ in range(n)).encode()
    r = H.http1_request(srv.host, srv.port, "POST", "/v1/sessions/%s/events" % sid,
                        headers=[("Content-Type", "application/x-ndjson")], body=body)
    H.check_eq(r.status, 200, "publish")


@suite.case
def test_debug_connections_ranks_and_validates():
    # A small output bound: the lazy subscriber's stream stops pulling and
    # its lag shows in events, not only in queued bytes.
    with H.Server(args=["--workers", "2", "--max-conn-output-bytes", "64k",
                        "--watchdog-interval", "0.2"]) as srv:
        sid = "dbg"
        H.check_eq(H.http1_request(srv.host, srv.port, "PUT", "/v1/sessions/" + sid).status,
                   201, "PUT")
        old = H.connect(srv.host, srv.port)  # the oldest connection: idle, silent
        time.sleep(0.3)
        readers = [SseStream(srv.host, srv.port, "/v1/sessions/%s/events" % sid)
                   for _ in range(3)]
        lazy = SseStream(srv.host, srv.port, "/v1/sessions/%s/events" % sid, rcvbuf=4096)
        time.sleep(0.2)
        for _ in range(10):
            publish(srv, sid, 100, 1000)  # ~1 MB: far more than the lazy one's buffers
        last = H.http1_request(srv.host, srv.port, "GET", "/v1/sessions/" + sid).json()["last_seq"]
        deadline = time.monotonic() + 20 * H.slow_factor()
        for r in readers:  # the readers catch up completely
            while (not r.events or r.events[-1][0] < last) and time.monotonic() < deadline:
                r.pump(1 << 20, 0.2)
            H.check_eq(r.events[-1][0], last, "a reader's last seq")
        time.sleep(0.3)

        by_age = debug(srv, "?sort=age&limit=2")
        H.check_eq((by_age["sort"], by_age["limit"], len(by_age["rows"])), ("age", 2, 2),
                   "sort, limit, rows")
        H.check(by_age["connections"] >= 6, "connections counted: %r" % by_age["connections"])
        H.check_eq(by_age["rows"][0]["peer"], "127.0.0.1:%d" % old.getsockname()[1],
                   "oldest connection first")
        H.check(by_age["rows"][0]["age_s"] >= by_age["rows"][1]["age_s"], "age order")
        row = by_age["rows"][0]
        for k in ("tcp_state", "sendq", "unacked_bytes", "rtt_ms", "last_ack_ms", "bytes_acked",
                  "watchdog", "outq_bytes", "lag_events", "streams"):
            H.check(k in row, "row has %s: %r" % (k, row))
        H.check_eq(row["tcp_state"], "ESTABLISHED", "tcp_state")

        by_lag = debug(srv, "?sort=lag&limit=10")
        top = by_lag["rows"][0]
        H.check_eq(top["peer"], "127.0.0.1:%d" % lazy.sock.getsockname()[1],
                   "the subscriber that does not read ranks first by lag")
        H.check(top["lag_events"] > 500, "its lag: %r" % top)
        H.check(top["lag_events"] > by_lag["rows"][1]["lag_events"], "lag order")
        # The sendq ranking and the verdict are the watchdog's last tick:
        # give it ticks until the peer's window has closed (on a loaded
        # machine that takes a few).
        deadline = time.monotonic() + 10 * H.slow_factor()
        while time.monotonic() < deadline:
            by_q = debug(srv, "?sort=sendq")
            if by_q["rows"][0]["peer"] == top["peer"] and by_q["rows"][0]["watchdog"] == "paused":
                break
            time.sleep(0.1)
        H.check_eq(by_q["limit"], 20, "default limit")
        H.check_eq(by_q["rows"][0]["peer"], top["peer"], "the lazy one ranks first by sendq")
        H.check(by_q["rows"][0]["sendq"] > 0, "its kernel send queue: %r" % by_q["rows"][0])
        H.check_eq(by_q["rows"][0]["watchdog"], "paused", "its watchdog verdict")
        H.check_eq(debug(srv, "?limit=0")["limit"], 1, "limit clamped up")
        H.check_eq(debug(srv, "?limit=5000")["limit"], 1000, "limit clamped down")
        H.check_eq(debug(srv, "?sort=bogus", 400)["error"], "bad_request", "unknown sort")
        H.check_eq(debug(srv, "?limit=ten", 400)["error"], "bad_request", "bad limit")
        r = H.http1_request(srv.host, srv.port, "POST", "/debug/connections", body=b"")
        H.check_eq(r.status, 405, "POST status")
        H.check_eq(r.header("allow"), "GET, HEAD", "Allow")
        res = H.h2_request(srv.host, srv.port, "GET", "/debug/connections?sort=unacked&limit=3")
        H.check_eq(res.status, 200, "over HTTP/2")
        H.check_eq(res.json()["sort"], "unacked", "HTTP/2 sort")
        for s in readers + [lazy]:
            s.close()
        old.close()


@suite.case
def test_health_and_metrics_figures():
    with H.Server(args=["--watchdog-interval", "0.5", "--dead-peer-grace", "5"]) as srv:
        time.sleep(1.2)
        h = srv.health()
        wd = h["watchdog"]
        H.check_eq((wd["enabled"], wd["interval_ms"], wd["dead_peer_grace_ms"],
                    wd["paused_peer_limit_ms"]), (True, 500, 5000, 0), "watchdog config")
        H.check(wd["ticks"] >= 1, "the watchdog ticks: %r" % wd)
        for k in ("tracked", "paused", "stalled", "probes", "tick_ms_max", "reaped_send_stall",
                  "reaped_peer_closed", "reaped_paused"):
            H.check(k in wd, "/health watchdog has %s" % k)
        for k in ("closed_ping_timeout", "h2_rapid_reset", "h2_control_flood",
                  "h2_continuation_flood", "h2_ack_flood"):
            H.check_eq(h["guard"][k], 0, "guard.%s" % k)
        r = H.http1_request(srv.host, srv.port, "GET", "/metrics")
        m = H.parse_prometheus(r.body.decode())
        H.check_eq(m["sluice_watchdog_enabled"], [("", 1.0)], "watchdog_enabled")
        reasons = sorted(l for l, _ in m["sluice_watchdog_reaped_total"])
        H.check_eq(reasons, ['{reason="paused"}', '{reason="peer_closed"}',
                             '{reason="send_stall"}'], "reap reasons")
        H.check_eq(len(m["sluice_h2_abuse_total"]), 4, "abuse kinds")
        H.check("sluice_connections_closed_ping_timeout_total" in m, "ping timeout counter")


@suite.case
def test_liveness_flags():
    bad = [
        (["--tcp-user-timeout", "5", "--paused-peer-limit", "10"], "--tcp-user-timeout"),
        (["--dead-peer-grace", "0.5", "--watchdog-interval", "1"], "--dead-peer-grace"),
        (["--watchdog-interval", "0.001"], "--watchdog-interval"),
    ]
    for args, name in bad:
        p = H.run([H.sluiced_path()] + args, timeout=20)
        H.check_eq(p.returncode, 2, "exit code for %s" % args)
        H.check(name in p.stderr.decode(), "message for %s names %s: %r" % (args, name, p.stderr))
    with H.Server(args=["--watchdog-interval", "0"]) as srv:
        H.check_eq(srv.health()["watchdog"]["enabled"], False, "watchdog off")
        H.check(srv.log_lines("watchdog off"), "a log line says the watchdog is off")
    with H.Server(args=["--tcp-user-timeout", "20", "--paused-peer-limit", "10"]) as srv:
        H.check_eq(srv.health()["watchdog"]["paused_peer_limit_ms"], 10000, "paused limit")


if __name__ == "__main__":
    suite.run()
