"""Fan-out budget: a connection that follows many sessions sends their
events together, at most once per --fanout-budget, not once per session.

One HTTP/2 connection follows SESSIONS sessions (one SSE stream each). A
second connection publishes one event into each session, GAP_S apart. With
a 200 ms budget the subscriber's socket delivers all of them in at most
three bursts (the first event at once, the rest when the budget is spent),
and the last event arrives within the budget plus slack. With the budget
off (0) every publish is its own burst, which shows the test can tell the
two apart.

Busy sessions share the connection's sends: a connection following
BUSY_SESSIONS sessions, each published to several times per budget, gets
about one burst per budget (the sessions' wake-ups fall on one grid of
budget ticks), and every event still within the budget. (With each
session's timer on its own phase, the connection sent once per session
per budget.)

The budget is a bound on latency, spent once: one session publishing
steadily to one subscriber that started right before it, every event
arrives within the budget of its publish (plus slack), and half of them
within 0.7 of it. (The connection used to hold each wake-up of the session
for a budget of its own: phase-locked with the session's timer, events
waited up to two budgets.)
"""

import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sluice_harness as H  # noqa: E402

SESSIONS = 10
GAP_S = 0.008
BUDGET_S = 0.2


def open_streams(srv, h2, count=SESSIONS, prefix="bud"):
    """A raw HTTP/2 connection with one live SSE stream per session
    (prefix-0 .. prefix-(count-1)); returns (socket, connection,
    {stream_id: session index})."""
    cfg = h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
    conn = h2.connection.H2Connection(config=cfg)
    s = H.connect(srv.host, srv.port, 10.0)
    conn.initiate_connection()
    streams = {}
    for i in range(count):
        sid = conn.get_next_available_stream_id()
        conn.send_headers(sid, [(":method", "GET"),
                                (":path", "/v1/sessions/%s-%d/events" % (prefix, i)),
                                (":scheme", "http"), (":authority", srv.authority())],
                          end_stream=True)
        streams[sid] = i
    s.sendall(conn.data_to_send())
    ok = set()
    deadline = time.monotonic() + 10
    while len(ok) < count:
        H.check(time.monotonic() < deadline, "all streams answered 200")
        for ev in conn.receive_data(s.recv(65536)):
            if isinstance(ev, h2.events.ResponseReceived):
                H.check_eq(dict(ev.headers).get(":status"), "200", "stream status")
                ok.add(ev.stream_id)
        out = conn.data_to_send()
        if out:
            s.sendall(out)
    return s, conn, streams


def publish_spread(srv):
    """Publishes one event per session, GAP_S apart, on one keep-alive
    HTTP/1.1 connection; returns the monotonic time of the last publish."""
    p = H.connect(srv.host, srv.port, 10.0)
    rd = H.Http1Reader(p)
    for i in range(SESSIONS):
        p.sendall(H.build_http1("POST", "/v1/sessions/bud-%d/events" % i, body=b"ev-%d" % i))
        H.check_eq(rd.read_response().status, 200, "publish status")
        last = time.monotonic()
        time.sleep(GAP_S)
    p.close()
    return last


def bursts(srv, h2):
    """Returns (number of socket reads that carried events, seconds from the
    last publish to the last event's arrival)."""
    s, conn, streams = open_streams(srv, h2)
    time.sleep(BUDGET_S * 1.5)  # the stream headers' send is older than the budget
    box = {}
    pub = threading.Thread(target=lambda: box.update(last=publish_spread(srv)))
    pub.start()
    got, reads, t_last = set(), 0, None
    s.settimeout(5.0)
    while len(got) < SESSIONS:
        try:
            data = s.recv(65536)
        except socket.timeout:
            raise H.TestFailure("events missing after 5 s: got %s" % sorted(got))
        H.check(data, "connection open")
        carried = False
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.DataReceived):
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                if b"id: " in ev.data:
                    H.check(streams[ev.stream_id] not in got, "no duplicate event")
                    got.add(streams[ev.stream_id])
                    carried = True
        if carried:
            reads += 1
            t_last = time.monotonic()
        out = conn.data_to_send()
        if out:
            s.sendall(out)
    s.close()
    pub.join(10)
    H.check("last" in box, "publisher finished")
    return reads, t_last - box["last"]


def create_sessions(srv):
    for i in range(SESSIONS):
        r = H.http1_request(srv.host, srv.port, "PUT", "/v1/sessions/bud-%d" % i)
        H.check(r.status in (200, 201), "PUT session: %d" % r.status)


def test_budget_coalesces_sessions(tmp):
    h2 = H.h2_modules()
    with H.Server(args=["--fanout-budget", str(BUDGET_S)]) as srv:
        create_sessions(srv)
        reads, lag = bursts(srv, h2)
        H.check(reads <= 3, "%d sessions' events in <= 3 bursts, got %d" % (SESSIONS, reads))
        slack = 0.3 * H.slow_factor()
        H.check(lag <= BUDGET_S + slack,
                "last event %.3f s after its publish, budget %.3f s" % (lag, BUDGET_S))
        srv.assert_healthy("budget 0.2")


def test_budget_off_sends_each(tmp):
    h2 = H.h2_modules()
    with H.Server(args=["--fanout-budget", "0"]) as srv:
        create_sessions(srv)
        reads, _ = bursts(srv, h2)
        H.check(reads >= SESSIONS // 2, "budget 0: events in >= %d bursts, got %d"
                % (SESSIONS // 2, reads))


STEADY_BUDGET_S = 0.5
STEADY_GAP_S = 0.05
STEADY_EVENTS = 60
BUSY_SESSIONS = 5
BUSY_BUDGET_S = 0.2
BUSY_GAP_S = 0.004  # round-robin: each session gets an event every 20 ms
BUSY_EVENTS = 500


def start_publisher(srv, prefix, sessions, events, gap_s, tag):
    """A thread publishing events round-robin into prefix-0 .. prefix-(sessions-1),
    gap_s apart, bodies tag-K, on one keep-alive HTTP/1.1 connection; returns
    (thread, {K: monotonic send time})."""
    sent = {}

    def publish():
        p = H.connect(srv.host, srv.port, 10.0)
        rd = H.Http1Reader(p)
        t0 = time.monotonic()
        for k in range(events):
            sent[k] = time.monotonic()
            p.sendall(H.build_http1("POST", "/v1/sessions/%s-%d/events" % (prefix, k % sessions),
                                    body=b"%s-%d" % (tag, k)))
            H.check_eq(rd.read_response().status, 200, "publish status")
            time.sleep(max(0.0, t0 + (k + 1) * gap_s - time.monotonic()))
        p.close()

    t = threading.Thread(target=publish)
    t.start()
    return t, sent


def receive_events(s, conn, h2, events, tag):
    """Reads the SSE streams of conn until events bodies tag-K arrived;
    returns ({K: monotonic arrival time}, socket reads that carried events)."""
    arrived, bufs, reads = {}, {}, 0
    prefix = b"data: " + tag + b"-"
    s.settimeout(10.0)
    while len(arrived) < events:
        data = s.recv(65536)
        H.check(data, "connection open")
        now, carried = time.monotonic(), False
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.DataReceived):
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                buf = bufs.get(ev.stream_id, b"") + ev.data
                while b"\n\n" in buf:
                    block, buf = buf.split(b"\n\n", 1)
                    for line in block.split(b"\n"):
                        if line.startswith(prefix):
                            arrived[int(line[len(prefix):])] = now
                            carried = True
                bufs[ev.stream_id] = buf
        reads += carried
        out = conn.data_to_send()
        if out:
            s.sendall(out)
    return arrived, reads


def put_sessions(srv, prefix, n):
    for i in range(n):
        r = H.http1_request(srv.host, srv.port, "PUT", "/v1/sessions/%s-%d" % (prefix, i))
        H.check(r.status in (200, 201), "PUT session: %d" % r.status)


def test_budget_spent_once(tmp):
    h2 = H.h2_modules()
    with H.Server(args=["--fanout-budget", str(STEADY_BUDGET_S)]) as srv:
        put_sessions(srv, "steady", 1)
        s, conn, _ = open_streams(srv, h2, 1, "steady")
        pub, sent = start_publisher(srv, "steady", 1, STEADY_EVENTS, STEADY_GAP_S, b"st")
        arrived, _ = receive_events(s, conn, h2, STEADY_EVENTS, b"st")
        s.close()
        pub.join(10)
        lat = sorted(arrived[k] - sent[k] for k in range(STEADY_EVENTS))
        worst, median = lat[-1], lat[len(lat) // 2]
        print("     budget %.2f s: latency median %.3f s, max %.3f s" % (STEADY_BUDGET_S, median,
                                                                     worst))
        H.check(worst <= STEADY_BUDGET_S + 0.1 * H.slow_factor(),
                "every event within the budget of its publish: max %.3f s" % worst)
        H.check(median <= 0.7 * STEADY_BUDGET_S,
                "half the events well within the budget: median %.3f s" % median)
        srv.assert_healthy("steady budget")


def test_budget_busy_sessions_share_sends(tmp):
    h2 = H.h2_modules()
    with H.Server(args=["--fanout-budget", str(BUSY_BUDGET_S)]) as srv:
        put_sessions(srv, "busy", BUSY_SESSIONS)
        s, conn, _ = open_streams(srv, h2, BUSY_SESSIONS, "busy")
        time.sleep(BUSY_BUDGET_S * 1.5)
        pub, sent = start_publisher(srv, "busy", BUSY_SESSIONS, BUSY_EVENTS, BUSY_GAP_S, b"bz")
        arrived, reads = receive_events(s, conn, h2, BUSY_EVENTS, b"bz")
        s.close()
        pub.join(10)
        span = max(arrived.values()) - min(sent.values())
        ticks = span / BUSY_BUDGET_S
        worst = max(arrived[k] - sent[k] for k in range(BUSY_EVENTS))
        print("     %d sessions: %d bursts over %.2f s (%.1f budgets), latency max %.3f s"
              % (BUSY_SESSIONS, reads, span, ticks, worst))
        H.check(reads <= ticks + 4,
                "about one burst per budget for %d busy sessions: %d bursts in %.1f budgets"
                % (BUSY_SESSIONS, reads, ticks))
        H.check(worst <= BUSY_BUDGET_S + 0.1 * H.slow_factor(),
                "every event within the budget of its publish: max %.3f s" % worst)
        srv.assert_healthy("busy sessions")


def test_budget_flag_range(tmp):
    r = H.run([H.sluiced_path(), "--fanout-budget", "2"], timeout=10)
    H.check_eq(r.returncode, 2, "--fanout-budget 2 s is out of range: exit code")
    H.check(b"fanout-budget" in r.stderr, "the message names the flag")


if __name__ == "__main__":
    sys.exit(H.run_cases_in_tmp("test_fanout_budget", (
        test_budget_coalesces_sessions, test_budget_off_sends_each, test_budget_spent_once,
        test_budget_busy_sessions_share_sends,
        test_budget_flag_range)))
