"""--max-connections is exact with several reactors accepting at once.

Every reactor accepts on its own SO_REUSEPORT socket, so two of them can
reach the bound together. In 20 rounds, 8 threads open 240 connections at once
against --max-connections 40 and --reactors 2: exactly 40 are held (one of
them our /health seat) and every other one is accepted and closed.
"""

import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sluice_harness as H  # noqa: E402

MAX_CONNS = 40
BURST = 240
THREADS = 8
ROUNDS = 20


def burst(srv):
    socks, lock = [], threading.Lock()

    def opener(n):
        mine = []
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(10)
            s.connect((srv.host, srv.port))
            mine.append(s)
        with lock:
            socks.extend(mine)

    ts = [threading.Thread(target=opener, args=(BURST // THREADS,)) for _ in range(THREADS)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return socks


def held_health(sock, reader):
    sock.sendall(H.build_http1("GET", "/health"))
    r = reader.read_response()
    H.check_eq(r.status, 200, "/health on the held connection")
    return r.json()


def wait_connections(sock, reader, want):
    deadline = time.monotonic() + 10 * H.slow_factor()
    while True:
        h = held_health(sock, reader)
        if h["connections"] == want or time.monotonic() >= deadline:
            return h
        time.sleep(0.05)


def case_exact_bound(srv):
    hs = H.connect(srv.host, srv.port, timeout=10)  # our seat
    reader = H.Http1Reader(hs)
    for rnd in range(ROUNDS):
        before = held_health(hs, reader)["http"]["rejected_max_connections"]
        socks = burst(srv)
        # Every burst connection is either held or rejected: wait until the
        # server has seen them all.
        deadline = time.monotonic() + 10 * H.slow_factor()
        while True:
            h = held_health(hs, reader)
            seen = h["connections"] - 1 + h["http"]["rejected_max_connections"] - before
            if seen >= BURST or time.monotonic() >= deadline:
                break
            time.sleep(0.05)
        rejected = h["http"]["rejected_max_connections"] - before
        H.check_eq(h["connections"], MAX_CONNS, "round %d: connections held at the bound" % rnd)
        H.check_eq(rejected, BURST - (MAX_CONNS - 1), "round %d: rejected" % rnd)
        for s in socks:
            s.close()
        H.check_eq(wait_connections(hs, reader, 1)["connections"], 1,
                   "round %d: connections after the burst left" % rnd)
    hs.close()


def main():
    suite = H.Suite("test_max_conns_reactors")

    @suite.case
    def test_max_connections_exact_with_two_reactors():
        args = ["--reactors", "2", "--max-connections", str(MAX_CONNS),
                "--header-timeout", "60", "--idle-timeout", "60"]
        with H.Server(args=args) as srv:
            case_exact_bound(srv)
            srv.assert_healthy("bursts at the bound")

    suite.run()


if __name__ == "__main__":
    main()
