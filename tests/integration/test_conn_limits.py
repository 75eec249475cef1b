"""Per-client bounds at the connection: addresses and stalled bodies.

- --max-connections-per-ip 8 --per-ip-exempt none: eight idle connections
  from 127.0.0.1 are held and keep working; the ninth is accepted and
  closed at once (guard.rejected_per_ip counts it) while 127.0.0.2 --
  another address -- is served; once one of the eight closes, 127.0.0.1
  may connect again.
- By default loopback is not counted (a reverse proxy on the same host
  brings every client from 127.0.0.1): with --max-connections-per-ip 2,
  six connections from 127.0.0.1 are all served. --per-ip-exempt
  127.0.0.2 exempts that address only; a bad range is refused at start.
- --body-timeout 1: an HTTP/1.1 POST that sends half its body and stalls
  gets 408 and is closed within a few seconds, an HTTP/2 one is closed;
  a body that trickles (a byte every 0.4 s) is not a stall and succeeds;
  a partial msgpack-RPC
  message that sits incomplete closes the RPC connection. Both count in
  guard.closed_body_timeout.
"""

import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sluice_harness as H  # noqa: E402

PER_IP = 8
CLOSE_WITHIN_S = 4.0 * H.slow_factor()


def connect_from(srv, source):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(5)
    s.bind((source, 0))
    s.connect((srv.host, srv.port))
    return s


def health_from(srv, source):
    s = connect_from(srv, source)
    try:
        s.sendall(H.build_http1("GET", "/health", close=True))
        r = H.Http1Reader(s).read_response()
    finally:
        s.close()
    H.check_eq(r.status, 200, "/health from %s" % source)
    return r.json()


def wait_guard(health, key, want, what):
    """/health is a snapshot refreshed every --monitor-interval: polls."""
    deadline = time.monotonic() + 3 * H.slow_factor()
    while True:
        got = health()["guard"][key]
        if got == want or time.monotonic() > deadline:
            H.check_eq(got, want, what)
            return
        time.sleep(0.1)


def closed_at_once(s, timeout=2.0):
    """True when the server closes s (EOF or reset) within timeout."""
    s.settimeout(timeout)
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def case_per_ip(srv):
    held = [connect_from(srv, "127.0.0.1") for _ in range(PER_IP)]
    # Each reactor accepts from its own socket, in its own time: a request
    # answered on every held connection means all of them were counted.
    for i, s in enumerate(held):
        s.sendall(H.build_http1("GET", "/health"))
        H.check_eq(H.Http1Reader(s).read_response().status, 200, "held connection %d" % i)
    extra = connect_from(srv, "127.0.0.1")
    H.check(closed_at_once(extra), "connection %d from 127.0.0.1 closed at accept" % (PER_IP + 1))
    extra.close()
    wait_guard(lambda: health_from(srv, "127.0.0.2"), "rejected_per_ip", 1, "rejected_per_ip")
    h = health_from(srv, "127.0.0.2")
    H.check_eq(h["guard"]["max_connections_per_ip"], PER_IP, "max_connections_per_ip")
    for i, s in enumerate(held):  # the held ones are served
        s.sendall(H.build_http1("GET", "/health"))
        H.check_eq(H.Http1Reader(s).read_response().status, 200, "held connection %d" % i)
    held.pop().close()
    deadline = time.monotonic() + 5 * H.slow_factor()
    while True:  # the server sees the close, then the address has room
        s = connect_from(srv, "127.0.0.1")
        if not closed_at_once(s, 0.3):
            break
        s.close()
        H.check(time.monotonic() < deadline, "127.0.0.1 has room again after a close")
    s.sendall(H.build_http1("GET", "/health", close=True))
    H.check_eq(H.Http1Reader(s).read_response().status, 200, "new connection after a close")
    s.close()
    for s in held:
        s.close()


def read_all(s, timeout):
    s.settimeout(timeout)
    out = b""
    try:
        while True:
            d = s.recv(4096)
            if not d:
                return out, True
            out += d
    except ConnectionResetError:
        return out, True
    except socket.timeout:
        return out, False


def case_body_timeout_http1(srv):
    before = srv.health()["guard"]["closed_body_timeout"]
    s = H.connect(srv.host, srv.port)
    head = ("POST /v1/sessions/bt/events HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
    s.sendall(head.encode() + b"a" * 500)
    t0 = time.monotonic()
    out, closed = read_all(s, CLOSE_WITHIN_S)
    took = time.monotonic() - t0
    s.close()
    H.check(closed, "stalled body: connection closed within %.1fs (got %r)" % (CLOSE_WITHIN_S, out[:80]))
    H.check(out.startswith(b"HTTP/1.1 408"), "stalled body answered 408: %r" % out[:80])
    H.check(took >= 0.9, "not closed before the timeout (%.2fs)" % took)
    # A body that trickles keeps making progress: not a stall.
    s = H.connect(srv.host, srv.port, timeout=10)
    s.sendall(b"POST /v1/sessions/bt/events HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\n")
    for ch in b"trickl":
        time.sleep(0.4)
        s.sendall(bytes([ch]))
    r = H.Http1Reader(s).read_response()
    s.close()
    H.check_eq(r.status, 200, "trickled body published")
    wait_guard(srv.health, "closed_body_timeout", before + 1, "closed_body_timeout")


def case_body_timeout_h2(srv):
    """An HTTP/2 POST whose HEADERS has no END_STREAM and whose DATA stops
    half way: the connection is closed (no 408 on HTTP/2)."""
    from test_abuse_h2 import RawH2, frame  # needs python3-h2's hpack
    import hpack
    before = srv.health()["guard"]["closed_body_timeout"]
    c = RawH2(srv)
    block = hpack.Encoder().encode([(":method", "POST"), (":path", "/v1/sessions/bt/events"),
                                    (":scheme", "http"), (":authority", srv.authority()),
                                    ("content-length", "1000")])
    c.send(frame(0x1, 0x4, 1, block) + frame(0x0, 0x0, 1, b"h" * 500))  # END_HEADERS only
    t0 = time.monotonic()
    H.check(c.wait_closed(CLOSE_WITHIN_S), "stalled HTTP/2 body: connection closed")
    took = time.monotonic() - t0
    c.close()
    H.check(took >= 0.9, "not closed before the timeout (%.2fs)" % took)
    wait_guard(srv.health, "closed_body_timeout", before + 1, "closed_body_timeout (h2)")


def case_body_timeout_rpc(srv):
    H.require_rpc()
    before = srv.health()["guard"]["closed_body_timeout"]
    addr = srv.rpc_addrs()[0]
    with H.RpcClient(addr) as c:
        c.ok("health")
        req = H.rpc_request_bytes(7, "publish", ["bt", "t", b"z" * 4000])
        c.send_raw(req[: len(req) // 2])
        t0 = time.monotonic()
        c.expect_closed(timeout=CLOSE_WITHIN_S)
        took = time.monotonic() - t0
    H.check(took >= 0.9, "not closed before the timeout (%.2fs)" % took)
    wait_guard(srv.health, "closed_body_timeout", before + 1, "closed_body_timeout (rpc)")


EXEMPT_CONNS = 6


def hold_and_ask(srv, source, count):
    """Opens count connections from source and asks /health on each;
    returns them open."""
    held = [connect_from(srv, source) for _ in range(count)]
    for i, s in enumerate(held):
        s.sendall(H.build_http1("GET", "/health"))
        H.check_eq(H.Http1Reader(s).read_response().status, 200,
                   "connection %d from %s served" % (i, source))
    return held


def case_loopback_exempt(srv):
    held = hold_and_ask(srv, "127.0.0.1", EXEMPT_CONNS)
    h = health_from(srv, "127.0.0.1")
    H.check_eq(h["guard"]["rejected_per_ip"], 0, "no loopback connection refused")
    H.check_eq(h["guard"]["max_connections_per_ip"], 2, "max_connections_per_ip")
    for s in held:
        s.close()


def case_listed_exempt(srv):
    held = hold_and_ask(srv, "127.0.0.2", EXEMPT_CONNS)  # listed: not counted
    held += hold_and_ask(srv, "127.0.0.1", 2)  # counted: two fit ...
    extra = connect_from(srv, "127.0.0.1")  # ... the third does not
    H.check(closed_at_once(extra), "third connection from 127.0.0.1 closed at accept")
    extra.close()
    wait_guard(lambda: health_from(srv, "127.0.0.2"), "rejected_per_ip", 1, "rejected_per_ip")
    for s in held:
        s.close()


def main():
    suite = H.Suite("test_conn_limits")

    @suite.case
    def test_conn_limits_per_ip():
        with H.Server(args=["--max-connections-per-ip", str(PER_IP),
                            "--per-ip-exempt", "none"]) as srv:
            case_per_ip(srv)

    @suite.case
    def test_conn_limits_loopback_exempt():
        with H.Server(args=["--max-connections-per-ip", "2"]) as srv:
            case_loopback_exempt(srv)

    @suite.case
    def test_conn_limits_listed_exempt():
        with H.Server(args=["--max-connections-per-ip", "2",
                            "--per-ip-exempt", " 127.0.0.2/32, ::1"]) as srv:
            case_listed_exempt(srv)
        for bad in ("127.0.0.0/33", "localhost", "10.0.0.0/8,"):
            r = H.run([H.sluiced_path(), "--per-ip-exempt", bad], timeout=10)
            H.check_eq(r.returncode, 2, "--per-ip-exempt %r refused: exit code" % bad)
            H.check(b"per-ip-exempt" in r.stderr, "the message names the flag: %r" % r.stderr)

    @suite.case
    def test_conn_limits_body_timeout():
        with H.rpc_server(args=["--body-timeout", "1"], unix=False) as srv:
            case_body_timeout_http1(srv)
            case_body_timeout_h2(srv)
            case_body_timeout_rpc(srv)
            srv.assert_healthy("body timeouts")

    suite.run()


if __name__ == "__main__":
    main()
