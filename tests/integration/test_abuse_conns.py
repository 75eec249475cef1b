"""Hostile connection patterns: slowloris and connection floods.

- Slowloris: 200 HTTP/1.1 clients dribble one header byte every 0.3 s and
  20 HTTP/2 clients send a HEADERS frame whose block never ends; with
  --header-timeout 2 every one is closed by the server within a few
  seconds (counted in http.closed_header_timeout), although each keeps
  sending -- the idle timer alone would never fire.
- Idle flood: with --max-connections 2000, 2100 clients connect and say
  nothing. Exactly 2000 are held (one of them our /health connection,
  opened first) and exactly the 100 beyond are accepted and closed at once
  (rejected_max_connections 100, each of those sees EOF); /health stays
  fast on the connection we hold; busy turns true near the bound.
Throughout, /health answers within HEALTH_LIMIT_S; RSS stays bounded;
afterwards the server's fds return to their baseline.
"""

import os
import resource
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sluice_harness as H  # noqa: E402
from test_abuse_h2 import HealthWatch, RawH2, frame, get_block, settle_fds  # noqa: E402

HEALTH_LIMIT_S = 0.5 * H.slow_factor()
RSS_GROWTH_MAX = 96 << 20
MAX_CONNS = 2000
EXTRA = 100


def raise_nofile(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(n, soft), hard), hard))
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    H.check(soft >= n, "RLIMIT_NOFILE %d < %d needed" % (soft, n))


def case_slowloris(srv):
    base = srv.fd_count()
    rss0 = srv.proc_status("VmRSS") * 1024
    before = srv.health()["http"]["closed_header_timeout"]
    watch = HealthWatch(srv)
    watch.start()
    h1 = []
    for i in range(200):
        s = H.connect(srv.host, srv.port, timeout=10)
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        h1.append(s)
    h2 = []
    for i in range(20):
        c = RawH2(srv)
        c.send(frame(1, 0x1, 1, get_block(srv.authority(), "/health")[:3]))  # no END_HEADERS
        h2.append(c)
    t0 = time.monotonic()
    open_h1 = set(range(len(h1)))
    deadline = t0 + 10 * H.slow_factor()
    while open_h1 and time.monotonic() < deadline:
        for i in list(open_h1):
            try:
                h1[i].sendall(b"a")  # keeps dribbling: never idle
                h1[i].settimeout(0.001)
                if h1[i].recv(4096) == b"":
                    open_h1.discard(i)
            except socket.timeout:
                pass
            except OSError:
                open_h1.discard(i)
        time.sleep(0.3)
    took = time.monotonic() - t0
    for c in h2:
        H.check(c.wait_closed(5 * H.slow_factor()), "an HTTP/2 slowloris stayed open")
    watch.finish("slowloris")
    H.check(not open_h1, "%d of 200 slowloris clients still open after %.1fs"
            % (len(open_h1), took))
    closed = srv.health()["http"]["closed_header_timeout"] - before
    print("  220 slowloris clients closed within %.1fs (closed_header_timeout +%d)" % (took, closed))
    H.check_eq(closed, 220, "closed_header_timeout")
    H.check(srv.proc_status("VmRSS") * 1024 <= rss0 + RSS_GROWTH_MAX, "RSS bounded")
    for s in h1:
        s.close()
    for c in h2:
        c.close()
    settle_fds(srv, base, "slowloris")


def connect_many(srv, n):
    socks = []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect((srv.host, srv.port))
        socks.append(s)
    return socks


def count_eof(socks, wait_s):
    """How many of socks the server closed (EOF) within wait_s."""
    deadline = time.monotonic() + wait_s
    closed = set()
    while time.monotonic() < deadline:
        for i, s in enumerate(socks):
            if i in closed:
                continue
            s.settimeout(0.0)
            try:
                if s.recv(1) == b"":
                    closed.add(i)
            except BlockingIOError:
                pass
            except OSError:
                closed.add(i)
        time.sleep(0.2)
    return len(closed)


def keepalive_health(sock, reader):
    t0 = time.monotonic()
    sock.sendall(H.build_http1("GET", "/health"))
    r = reader.read_response()
    H.check_eq(r.status, 200, "/health on the held connection")
    return r.json(), time.monotonic() - t0


def case_idle_flood(srv):
    raise_nofile(MAX_CONNS + EXTRA + 256)
    hs = H.connect(srv.host, srv.port, timeout=10)  # our seat, taken first
    reader = H.Http1Reader(hs)
    h0, _ = keepalive_health(hs, reader)
    base_fds = srv.fd_count()
    rss0 = srv.proc_status("VmRSS") * 1024
    rejected0 = h0["http"]["rejected_max_connections"]
    t0 = time.monotonic()
    socks = connect_many(srv, MAX_CONNS - 1 + EXTRA)
    print("  %d idle connections opened in %.1fs" % (len(socks), time.monotonic() - t0))
    eof = count_eof(socks, 2.0 * H.slow_factor())
    worst = 0.0
    busy_seen = False
    for _ in range(10):
        h, took = keepalive_health(hs, reader)
        worst = max(worst, took)
        busy_seen |= h["busy"]
        time.sleep(0.1)
    rss = srv.proc_status("VmRSS") * 1024
    print("  held %d, rejected %d (EOF seen by %d); /health slowest %.1f ms; RSS %d -> %d MiB"
          % (h["connections"], h["http"]["rejected_max_connections"] - rejected0, eof,
             worst * 1e3, rss0 >> 20, rss >> 20))
    H.check_eq(h["connections"], MAX_CONNS, "connections held at the bound")
    H.check_eq(h["http"]["rejected_max_connections"] - rejected0, EXTRA, "rejected connections")
    H.check_eq(eof, EXTRA, "clients closed at once by the server")
    H.check(busy_seen, "/health never said busy at the connection bound")
    H.check(worst <= HEALTH_LIMIT_S, "/health took %.3fs at the bound" % worst)
    H.check(rss <= rss0 + RSS_GROWTH_MAX, "RSS grew from %d to %d MiB" % (rss0 >> 20, rss >> 20))
    for s in socks:
        s.close()
    deadline = time.monotonic() + 10 * H.slow_factor()
    while time.monotonic() < deadline:
        h, _ = keepalive_health(hs, reader)
        if h["connections"] == 1:
            break
        time.sleep(0.1)
    H.check_eq(h["connections"], 1, "connections after the clients left")
    settle_fds(srv, base_fds, "idle flood")
    hs.close()


def main():
    suite = H.Suite("test_abuse_conns")

    @suite.case
    def test_abuse_slowloris():
        with H.Server(args=["--header-timeout", "2", "--workers", "2"]) as srv:
            case_slowloris(srv)
            srv.assert_healthy("slowloris")

    @suite.case
    def test_abuse_idle_flood_max_connections():
        args = ["--max-connections", str(MAX_CONNS), "--max-connections-per-ip", "0",
                "--header-timeout", "60",
                "--idle-timeout", "60", "--workers", "2"]
        with H.Server(args=args) as srv:
            case_idle_flood(srv)
            srv.assert_healthy("idle flood")

    suite.run()


if __name__ == "__main__":
    main()
