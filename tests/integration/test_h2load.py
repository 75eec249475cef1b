"""Load with h2load: many multiplexed HTTP/2 requests (and an HTTP/1.1
run) to /health must all succeed, and the server must be healthy and back
to its idle resource use afterwards."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sluice_harness as H  # noqa: E402

suite = H.Suite("test_h2load")
H.require_tools("h2load")


def h2load(args, timeout):
    p = H.run(["h2load"] + args, timeout=timeout)
    text = p.stdout.decode("utf-8", "replace")
    H.check_eq(p.returncode, 0, "h2load exit code (stderr %r)" % p.stderr[-500:])
    return H.parse_h2load(text), text


def check_all_ok(res, n, text, what):
    H.check_eq(res["total"], n, "%s total" % what)
    H.check_eq(res["failed"], 0, "%s failed requests:\n%s" % (what, text[-1500:]))
    H.check_eq(res["errored"], 0, "%s errored requests:\n%s" % (what, text[-1500:]))
    H.check_eq(res["timeout"], 0, "%s timed out requests" % what)
    H.check_eq(res["succeeded"], n, "%s succeeded" % what)
    H.check_eq(res.get("2xx"), n, "%s 2xx responses" % what)


def wait_idle(srv, baseline_fds, timeout=5.0):
    """Polls until the fd count is back near baseline; returns the last count."""
    deadline = time.monotonic() + timeout
    n = srv.fd_count()
    while n > baseline_fds + 2 and time.monotonic() < deadline:
        time.sleep(0.05)
        n = srv.fd_count()
    return n


@suite.case
def test_h2load_200k_multiplexed():
    n = 200000
    with H.Server() as srv:
        srv.health()
        base = srv.fd_count()
        res, text = h2load(["-n", str(n), "-c", "100", "-m", "10", "-t", "1",
                            srv.url("/health")], timeout=240)
        check_all_ok(res, n, text, "h2load -n %d -c 100 -m 10" % n)
        print("  h2 /health: %.0f req/s" % res.get("req_per_s", 0))
        h = srv.assert_healthy("h2load")
        fds = wait_idle(srv, base)
        H.check(fds <= base + 2, "fds after load %d, baseline %d" % (fds, base))
        H.check(h["connections"] <= 101, "connections=%r after the load ended" % h["connections"])


@suite.case
def test_h2load_http1_keepalive():
    n = 20000
    with H.Server() as srv:
        srv.health()
        base = srv.fd_count()
        res, text = h2load(["--h1", "-n", str(n), "-c", "20", "-t", "1", srv.url("/health")],
                           timeout=120)
        check_all_ok(res, n, text, "h2load --h1 -n %d -c 20" % n)
        srv.assert_healthy("h2load --h1")
        fds = wait_idle(srv, base)
        H.check(fds <= base + 2, "fds after load %d, baseline %d" % (fds, base))


@suite.case
def test_h2load_many_short_connections():
    # 500 connections with 10 requests each: connection setup and teardown
    # dominate instead of request handling.
    n = 5000
    with H.Server(args=["--max-connections-per-ip", "0"]) as srv:  # 500 from loopback
        srv.health()
        base = srv.fd_count()
        res, text = h2load(["-n", str(n), "-c", "500", "-m", "1", "-t", "1", srv.url("/health")],
                           timeout=120)
        check_all_ok(res, n, text, "h2load -n %d -c 500" % n)
        srv.assert_healthy("500 connections")
        fds = wait_idle(srv, base)
        H.check(fds <= base + 2, "fds after load %d, baseline %d" % (fds, base))


suite.run()
