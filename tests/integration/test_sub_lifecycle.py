"""Subscription lifecycle: every transition of a stream's subscription
record (actors/conn_int.h, sl_conn__sub_state_t), driven by real clients.

- subscribe -> subscribed -> events -> unsubscribe (the plain path);
- closed early: an RPC subscribe and its unsubscribe in one write, and an
  HTTP/2 HEADERS + RST_STREAM in one write, so the leave arrives while the
  SUBSCRIBE is still at the session (this used to re-queue the record and
  crash the server: use-after-free in the mailbox);
- refused: subscribes racing DELETE + recreate of their session (a refused
  record used to be queued as UNSUBSCRIBE and freed at once), and the
  subscriber cap (--max-subscribers-per-session) answered 503 / overloaded;
- session deleted: streams end cleanly;
- session hibernated: a subscribe reaches the successor actor;
- shutdown: SIGTERM while subscribes and unsubscribes are in flight exits 0.
Each case runs on its own server and checks it is healthy afterwards (the
harness fails on any sanitizer report in the server's stderr).
"""

import os
import signal
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sluice_harness as H  # noqa: E402


def publish(srv, sid, data):
    r = H.http1_request(srv.host, srv.port, "POST", "/v1/sessions/%s/events" % sid, body=data)
    return r


def test_plain_subscribe_unsubscribe(srv):
    with H.RpcClient(srv.rpc_addrs()[0]) as c:
        c.ok("create", "s1")
        sub = c.ok("subscribe", "s1", "live")
        for i in range(5):
            H.check_eq(c.ok("publish", "s1", "message", "e%d" % i), i + 1, "publish seq")
        evs = c.wait_events(sub, 5)
        H.check_eq([e[1] for e in evs], [1, 2, 3, 4, 5], "seqs delivered")
        H.check_eq(c.ok("unsubscribe", sub), True, "unsubscribe answer")
        c.ok("publish", "s1", "message", "after")
        c.ok("health")  # a round trip after the publish: nothing more for sub
        H.check_eq(len(c.events(sub)), 5, "no event after unsubscribe")
    H.check_eq(srv.health()["streams"], 0, "streams after close")


def test_rpc_subscribe_unsubscribe_one_write(srv):
    """Repro: [subscribe, unsubscribe] in one write, over and over."""
    with H.RpcClient(srv.rpc_addrs()[0]) as c:
        c.ok("create", "s1")
        pairs = []
        for k in range(1, 201):  # under --max-streams (256) in flight
            a, b = c.take_msgid(), c.take_msgid()
            # Subscription ids count from 1 per connection: pair k
            # subscribes id k and unsubscribes it in the same write.
            c.send_raw(H.rpc_request_bytes(a, "subscribe", ["s1", "live"]) +
                       H.rpc_request_bytes(b, "unsubscribe", [k]))
            pairs.append((a, b))
        for k, (a, b) in enumerate(pairs, 1):
            err, res = c.wait_response(a)
            H.check(err is None and res == k, "subscribe %d answered %r %r" % (k, err, res))
            err, res = c.wait_response(b)
            H.check(err is None and res is True, "unsubscribe %d answered %r %r" % (k, err, res))
        c.ok("publish", "s1", "message", "x")
        c.ok("health")
        H.check_eq(c.notifications("event"), [], "events for unsubscribed ids")
    wait_no_subscribers(srv, "s1")


def wait_no_subscribers(srv, sid):
    deadline = time.monotonic() + 10
    while True:
        subs = H.http1_request(srv.host, srv.port, "GET", "/v1/sessions/" + sid).json()["subscribers"]
        if subs == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    H.check_eq(subs, 0, "subscribers of %s left behind" % sid)


def h2_get_then_reset(authority, sids, path):
    h2 = H.h2_modules()
    cfg = h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
    conn = h2.connection.H2Connection(config=cfg)
    conn.initiate_connection()
    for sid in sids:
        conn.send_headers(sid, [(":method", "GET"), (":path", path), (":scheme", "http"),
                                (":authority", authority)], end_stream=True)
        conn.reset_stream(sid, error_code=8)  # CANCEL
    return conn.data_to_send()


def test_h2_headers_and_rst_one_write(srv):
    """Repro: HEADERS (GET events) and RST_STREAM(CANCEL) in one write, 20
    streams per connection (under the rapid-reset limit), 10 connections."""
    H.check_eq(publish(srv, "s1", b"x").status, 200, "publish")
    for _ in range(10):
        s = H.connect(srv.host, srv.port)
        s.sendall(h2_get_then_reset(srv.authority(), range(1, 41, 2), "/v1/sessions/s1/events"))
        # The server answers the preface; read until it has settled.
        s.settimeout(0.5)
        try:
            while s.recv(65536):
                pass
        except (socket.timeout, ConnectionResetError):
            pass
        s.close()
    H.check_eq(publish(srv, "s1", b"y").status, 200, "publish after resets")
    wait_no_subscribers(srv, "s1")


def test_refused_subscribe_races_delete(srv):
    """Repro: pipelined RPC subscribers on s1 while another client loops
    DELETE + publish (recreate): every subscribe is answered with an id or
    not_found/overloaded, and the server survives."""
    stop = threading.Event()
    errors = []

    def churn():
        try:
            while not stop.is_set():
                H.http1_request(srv.host, srv.port, "DELETE", "/v1/sessions/s1")
                publish(srv, "s1", b"x")
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    t = threading.Thread(target=churn)
    t.start()
    answered = 0
    try:
        end = time.monotonic() + 3 * H.slow_factor()
        clients = [H.RpcClient(srv.rpc_addrs()[0]) for _ in range(3)]
        while time.monotonic() < end:
            for c in clients:
                ids = [c.take_msgid() for _ in range(8)]
                c.send_raw(b"".join(H.rpc_request_bytes(i, "subscribe", ["s1", 1]) for i in ids))
                for i in ids:
                    err, res = c.wait_response(i)
                    H.check(err is None and isinstance(res, int) or
                            isinstance(err, list) and err[0] in ("not_found", "overloaded"),
                            "subscribe answered %r %r" % (err, res))
                    answered += 1
                    if err is None:
                        c.send("unsubscribe", res)
        for c in clients:
            c.ok("health")
            c.close()
    finally:
        stop.set()
        t.join()
    H.check(not errors, "churn client failed: %s" % errors[:3])
    H.check(answered > 0, "no subscribe answered")


def test_subscriber_cap(srv):
    """--max-subscribers-per-session 4: the 5th is 503 overloaded with
    Retry-After (HTTP) / "overloaded" (RPC); a freed seat is reusable."""
    with H.RpcClient(srv.rpc_addrs()[0]) as c:
        c.ok("create", "s1")
        subs = [c.ok("subscribe", "s1", "live") for _ in range(4)]
        H.check_eq(c.error_code("subscribe", "s1", "live"), "overloaded", "RPC 5th subscriber")
        s = H.connect(srv.host, srv.port)
        s.sendall(H.build_http1("GET", "/v1/sessions/s1/events"))
        r = H.Http1Reader(s).read_response()
        s.close()
        H.check_eq(r.status, 503, "HTTP 5th subscriber")
        H.check_eq(r.json()["error"], "overloaded", "HTTP 5th subscriber error")
        H.check(r.header("retry-after") is not None, "Retry-After on 503")
        c.ok("unsubscribe", subs[0])
        deadline = time.monotonic() + 5
        while True:
            err, res = c.call("subscribe", "s1", "live")
            if err is None or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        H.check(err is None, "subscribe after a seat was freed: %r" % (err,))
        c.ok("publish", "s1", "message", "z")
        c.wait_events(res, 1)


def test_session_deleted_ends_streams(srv):
    with H.RpcClient(srv.rpc_addrs()[0]) as c:
        c.ok("create", "s1")
        sub = c.ok("subscribe", "s1", "live")
        c.ok("publish", "s1", "message", "a")
        c.wait_events(sub, 1)
        c.ok("delete", "s1")
        c.wait_until(lambda: any(m[2] == [sub] for m in c.notifications("end")), "end notification")
        H.check_eq(c.ok("unsubscribe", sub), True, "unsubscribe after end")
    H.check_eq(srv.health()["streams"], 0, "streams after delete")


def test_session_hibernated_resubscribes(srv):
    """--session-idle 0.2: the session actor hibernates between requests;
    subscribes and publishes that reach it while it is ending are answered
    once it has left, and their retry finds the successor: none is refused.
    The pauses straddle the idle limit so some land mid-hibernation."""
    with H.RpcClient(srv.rpc_addrs()[0]) as c:
        c.ok("publish", "s1", "message", "a")
        last = 1
        for i in range(24):
            time.sleep(0.17 + 0.01 * (i % 8))
            sub = c.ok("subscribe", "s1", 1)
            last = c.ok("publish", "s1", "message", "p%d" % i)
            evs = c.wait_events(sub, last)
            H.check_eq([e[1] for e in evs], list(range(1, last + 1)),
                       "replay after hibernation %d" % i)
            c.ok("unsubscribe", sub)
        H.check_eq(last, 25, "publishes all took a seq")


def test_session_that_cannot_start(srv):
    """Debug builds (fault point session_start: a session's log never
    opens, as when the process is out of fds): a session that exists but
    cannot start is unavailable, not missing -- a subscribe is 503
    overloaded with Retry-After (HTTP), "overloaded" (RPC), a Durable
    Streams long-poll 503 -- and still 404 / not_found once deleted."""
    r = H.http1_request(srv.host, srv.port, "PUT", "/v1/sessions/nostart")
    H.check(r.status in (200, 201), "PUT (the registry entry only): %d" % r.status)
    r = H.http1_request(srv.host, srv.port, "GET", "/v1/sessions/nostart/events",
                        headers=[("Accept", "text/event-stream")])
    H.check_eq(r.status, 503, "HTTP subscribe to a session that cannot start")
    H.check_eq(r.json()["error"], "overloaded", "HTTP error code")
    H.check_eq(r.header("retry-after"), "1", "Retry-After")
    with H.RpcClient(srv.rpc_addrs()[0]) as c:
        H.check_eq(c.error_code("subscribe", "nostart"), "overloaded", "RPC subscribe")
    r = H.http1_request(srv.host, srv.port, "GET", "/v1/stream/nostart?offset=-1&live=long-poll")
    H.check_eq(r.status, 503, "Durable Streams long-poll of a session that cannot start")
    r = H.http1_request(srv.host, srv.port, "DELETE", "/v1/sessions/nostart")
    H.check(r.status in (200, 204), "DELETE: %d" % r.status)
    r = H.http1_request(srv.host, srv.port, "GET", "/v1/sessions/nostart/events",
                        headers=[("Accept", "text/event-stream")])
    H.check_eq(r.status, 404, "HTTP subscribe once deleted")
    with H.RpcClient(srv.rpc_addrs()[0]) as c:
        H.check_eq(c.error_code("subscribe", "nostart"), "not_found", "RPC subscribe once deleted")
    H.check(srv.log_lines("cannot start session log"), "the failed start is logged")


def test_sigterm_with_subscribes_in_flight(srv):
    """SIGTERM while clients pipeline subscribe/unsubscribe pairs: exit 0."""
    H.check_eq(publish(srv, "s1", b"x").status, 200, "publish")
    clients = [H.RpcClient(srv.rpc_addrs()[0]) for _ in range(4)]
    for c in clients:
        data = b""
        for k in range(1, 200):
            data += H.rpc_request_bytes(2 * k, "subscribe", ["s1", 1])
            if k % 2:
                data += H.rpc_request_bytes(2 * k + 1, "unsubscribe", [k])
        c.send_raw(data)
    srv.send_signal(signal.SIGTERM)
    code = srv.wait(30)
    H.check_eq(code, 0, "exit code after SIGTERM with subscribes in flight")
    for c in clients:
        c.close()


def main():
    H.require_rpc()
    base = ["--max-event-bytes", "64k"]
    cases = [
        (test_plain_subscribe_unsubscribe, base),
        (test_rpc_subscribe_unsubscribe_one_write, base),
        (test_h2_headers_and_rst_one_write, base),
        (test_refused_subscribe_races_delete, base),
        (test_subscriber_cap, base + ["--max-subscribers-per-session", "4"]),
        (test_session_deleted_ends_streams, base),
        (test_session_hibernated_resubscribes, base + ["--session-idle", "0.2"]),
    ]
    # Debug builds: the log of a hibernating session takes 300 ms to close
    # (fault point slow_hibernate), so requests reach the ending actor.
    slow_hibernate = {"SLUICE_FAULTS": "slow_hibernate"}
    if H.sanitizer_build():  # fault points are compiled into Debug builds only
        cases.append((test_session_that_cannot_start, base))
    failed = passed = 0
    only = os.environ.get("SLUICE_TEST_ONLY")
    for fn, args in cases:
        if only and only not in fn.__name__:
            continue
        env = (slow_hibernate if fn is test_session_hibernated_resubscribes
               else {"SLUICE_FAULTS": "session_start"} if fn is test_session_that_cannot_start
               else None)
        with H.rpc_server(args=args, unix=False, env=env) as srv:
            try:
                fn(srv)
                srv.assert_healthy(fn.__name__)
                passed += 1
                print("ok   %s" % fn.__name__)
            except Exception as e:  # noqa: BLE001 - one case must not hide the others
                failed += 1
                print("FAIL %s: %r" % (fn.__name__, e))
        sys.stdout.flush()
    if not only or only in "test_sigterm_with_subscribes_in_flight":
        try:
            with H.rpc_server(args=base, unix=False) as srv:
                test_sigterm_with_subscribes_in_flight(srv)
            passed += 1
            print("ok   test_sigterm_with_subscribes_in_flight")
        except Exception as e:  # noqa: BLE001
            failed += 1
            print("FAIL test_sigterm_with_subscribes_in_flight: %r" % e)
    print("test_sub_lifecycle: %d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
