"""Session lifecycle (API.md "Session lifecycle (v1.1)") on the real binary.

- Close: subscribers over curl HTTP/2 (prior knowledge), curl HTTP/1.1,
  httpx and msgpack-RPC all receive the final event, then the terminal
  event (SSE `event: sluice.closed` / RPC ["closed", [sub, last_seq]]),
  then a clean end of stream; a subscriber arriving after the close
  replays and gets the same end; one asking for seqs after last_seq gets
  204; a publish after the close is 409 closed with last_seq; closing again
  answers the same last_seq; over RPC too.
- A close without an event, and closure and producer state across kill -9
  and a clean restart (trailers in the log, the manifest snapshot).
- Idempotent producers: a retry of (id, epoch, seq) returns the original
  seq with duplicate; an older one {"duplicate": true}; a stale epoch is
  403 fenced with Producer-Epoch; a gap is 409 producer_gap with
  Producer-Expected-Seq; a new epoch must start at 0; partial headers 400.
- TTL and expiry: Sluice-TTL / Sluice-Expires-At on PUT, both 400, a
  different TTL 409 conflict, expiry deletes (lookup and the sweep), the
  attributes survive kill -9.
"""

import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sluice_harness as H  # noqa: E402


def req(srv, method, path, body=b"", headers=()):
    return H.http1_request(srv.host, srv.port, method, path, headers=list(headers), body=body)


def post(srv, sid, body, qs="", headers=()):
    return req(srv, "POST", "/v1/sessions/%s/events%s" % (sid, qs), body, headers)


def restart(srv, sig=signal.SIGKILL):
    srv.send_signal(sig)
    code = srv.wait(20)
    H.check(code is not None, "server exits on signal %d" % sig)
    os.unlink(srv.ready_file)
    srv.start()


def sse_blocks(raw):
    return [b for b in raw.replace(b"\r\n", b"\n").split(b"\n\n") if b.strip()]


def expect_closed_stream(raw, first, last, what):
    blocks = sse_blocks(raw)
    want = [b"id: %d\nevent: message\ndata: e%d" % (i, i) for i in range(first, last + 1)]
    want.append(b'event: sluice.closed\ndata: {"last_seq":%d}' % last)
    H.check_eq(blocks, want, what)


def wait_subscribers(srv, sid, n):
    deadline = time.monotonic() + 10 * H.slow_factor()
    while time.monotonic() < deadline:
        r = req(srv, "GET", "/v1/sessions/" + sid)
        if r.status == 200 and r.json()["subscribers"] >= n:
            return
        time.sleep(0.05)
    raise H.TestFailure("%s did not reach %d subscribers" % (sid, n))


def test_close_reaches_every_face(srv):
    H.require_tools("curl")
    import httpx
    sid = "close.all"
    for i in (1, 2, 3):
        H.check_eq(post(srv, sid, b"e%d" % i).json(), {"seq": i}, "publish %d" % i)
    url = srv.url("/v1/sessions/%s/events?from=1" % sid)
    secs = str(int(10 * H.slow_factor()))
    curls = {flag: subprocess.Popen(["curl", "-sS", "-N", flag, "--max-time", secs, url],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for flag in ("--http2-prior-knowledge", "--http1.1")}
    got_httpx = []

    def httpx_reader():
        with httpx.Client(timeout=10 * H.slow_factor()) as cl:
            with cl.stream("GET", url) as r:
                H.check_eq(r.status_code, 200, "httpx status")
                got_httpx.append(b"".join(r.iter_raw()))

    import threading
    th = threading.Thread(target=httpx_reader)
    th.start()
    with H.RpcClient(srv.rpc_addrs()[0]) as c:
        sub = c.ok("subscribe", sid, 1)
        wait_subscribers(srv, sid, 4)
        r = post(srv, sid, b"e4", "?close=1")
        H.check_eq((r.status, r.json()), (200, {"seq": 4, "closed": True}), "closing publish")
        c.wait_until(lambda: c.notifications("closed"), "the closed notification")
        H.check_eq([e[1:] for e in c.events(sub)],
                   [(i, "message", b"e%d" % i) for i in (1, 2, 3, 4)], "RPC events")
        H.check_eq(c.notifications("closed"), [[2, "closed", [sub, 4]]], "RPC terminal notification")
        H.check_eq(c.notifications("end"), [], "no end notification after closed")
        H.check_eq(c.ok("close", sid), 4, "RPC close of a closed session")
        H.check_eq(c.error_code("publish", sid, "message", b"late"), "closed", "RPC publish after close")
        H.check_eq(c.ok("session", sid)["closed"], True, "RPC stats closed")
    for flag, p in curls.items():
        out, err = p.communicate(timeout=20)
        H.check_eq(p.returncode, 0, "curl %s ends cleanly (%s)" % (flag, err.decode()[:200]))
        expect_closed_stream(out, 1, 4, "curl %s stream" % flag)
    th.join(20)
    H.check(got_httpx, "httpx stream ended")
    expect_closed_stream(got_httpx[0], 1, 4, "httpx stream")
    # A late subscriber replays and gets the same end; from beyond: 204.
    out, code, _, _, rc, err = H.curl(["--http2-prior-knowledge", url])
    H.check_eq((rc, code), (0, 200), "late subscriber (%s)" % err)
    expect_closed_stream(out, 1, 4, "late subscriber")
    out, code, _, _, rc, _ = H.curl(["-H", "Last-Event-ID: 4", srv.url("/v1/sessions/%s/events" % sid)])
    H.check_eq((rc, code, out), (0, 204, b""), "Last-Event-ID at last_seq: 204")
    out, code, _, _, rc, _ = H.curl([srv.url("/v1/sessions/%s/events" % sid)])
    H.check_eq((rc, code), (0, 200), "live-only subscriber after close")
    H.check_eq(sse_blocks(out), [b'event: sluice.closed\ndata: {"last_seq":4}'], "live-only: just the end")
    r = post(srv, sid, b"late")
    H.check_eq((r.status, r.json()["error"], r.json()["last_seq"]), (409, "closed", 4), "publish after close")
    r = req(srv, "POST", "/v1/sessions/%s/close" % sid)
    H.check_eq((r.status, r.json()), (200, {"last_seq": 4, "closed": True}), "close again")
    r = req(srv, "POST", "/v1/sessions/nosuch/close")
    H.check_eq(r.status, 404, "close of an unknown session")
    r = req(srv, "GET", "/v1/sessions/%s/close" % sid)
    H.check_eq(r.status, 405, "GET /close")


def test_close_persists(srv):
    for i in (1, 2):
        post(srv, "c.marker", b"e%d" % i)
    r = req(srv, "POST", "/v1/sessions/c.marker/close")
    H.check_eq((r.status, r.json()), (200, {"last_seq": 2, "closed": True}), "close without event")
    post(srv, "c.final", b"e1")
    H.check_eq(post(srv, "c.final", b"e2", "", [("Sluice-Close", "1")]).json(),
               {"seq": 2, "closed": True}, "closing publish by header")
    post(srv, "c.open", b"e1")
    for how, sig in (("kill -9", signal.SIGKILL), ("SIGTERM", signal.SIGTERM)):
        restart(srv, sig)
        for sid in ("c.marker", "c.final"):
            st = req(srv, "GET", "/v1/sessions/" + sid).json()
            H.check_eq((st["closed"], st["last_seq"], st["events"]), (True, 2, 2),
                       "%s stats after %s" % (sid, how))
            r = post(srv, sid, b"x")
            H.check_eq((r.status, r.json()["last_seq"]), (409, 2), "%s publish after %s" % (sid, how))
            out, code, _, _, rc, _ = H.curl([srv.url("/v1/sessions/%s/events?from=1" % sid)])
            H.check_eq((rc, code), (0, 200), "%s replay after %s" % (sid, how))
            expect_closed_stream(out, 1, 2, "%s replay after %s" % (sid, how))
        st = req(srv, "GET", "/v1/sessions/c.open").json()
        H.check_eq(st["closed"], False, "an open session stays open after %s" % how)
    H.check_eq(post(srv, "c.open", b"e2").json(), {"seq": 2}, "open session takes publishes")


def producer(pid, epoch, seq):
    return [("Producer-Id", pid), ("Producer-Epoch", str(epoch)), ("Producer-Seq", str(seq))]


def test_producers(srv):
    sid = "prod"
    H.check_eq(post(srv, sid, b"a", "", producer("p1", 0, 0)).json(), {"seq": 1}, "seq 0")
    H.check_eq(post(srv, sid, b"b", "", producer("p1", 0, 1)).json(), {"seq": 2}, "seq 1")
    H.check_eq(post(srv, sid, b"b", "", producer("p1", 0, 1)).json(), {"seq": 2, "duplicate": True},
               "retry of the last seq: the original answer")
    H.check_eq(post(srv, sid, b"a", "", producer("p1", 0, 0)).json(), {"duplicate": True},
               "retry of an older seq")
    r = post(srv, sid, b"c", "", producer("p1", 0, 5))
    H.check_eq((r.status, r.json()["error"], r.header("producer-expected-seq")), (409, "producer_gap", "2"),
               "gap")
    r = post(srv, sid, b"c", "", producer("p1", 1, 3))
    H.check_eq((r.status, r.json()["error"]), (400, "bad_request"), "new epoch not at 0")
    H.check_eq(post(srv, sid, b"c", "", producer("p1", 1, 0)).json(), {"seq": 3}, "new epoch at 0")
    r = post(srv, sid, b"d", "", producer("p1", 0, 2))
    H.check_eq((r.status, r.json()["error"], r.header("producer-epoch")), (403, "fenced", "1"), "stale epoch")
    r = post(srv, sid, b"d", "", producer("p1", 0, 2)[:2])
    H.check_eq(r.status, 400, "partial producer headers")
    r = post(srv, sid, b"d", "", producer("bad id", 0, 0))
    H.check_eq(r.status, 400, "invalid producer id")
    r = post(srv, sid, b"d", "", producer("p2", 0, 2 ** 53))
    H.check_eq(r.status, 400, "seq beyond 2^53-1")
    nd = b'{"data":"x"}\n{"data":"y"}\n'
    H.check_eq(post(srv, sid, nd, "", [("Content-Type", "application/x-ndjson")] + producer("p2", 0, 0)).json(),
               {"first_seq": 4, "last_seq": 5}, "a batch counts as one seq")
    H.check_eq(post(srv, sid, nd, "", [("Content-Type", "application/x-ndjson")] + producer("p2", 0, 0)).json(),
               {"first_seq": 4, "last_seq": 5, "duplicate": True}, "batch retry")
    with H.RpcClient(srv.rpc_addrs()[0]) as c:
        H.check_eq(c.ok("publish", sid, "message", b"r0", {"producer": ["p3", 7, 0]}), 6, "RPC producer")
        H.check_eq(c.ok("publish", sid, "message", b"r0", {"producer": ["p3", 7, 0]}), 6, "RPC retry")
        H.check_eq(c.error_code("publish", sid, "message", b"r", {"producer": ["p3", 6, 1]}), "fenced",
                   "RPC stale epoch")
        H.check_eq(c.error_code("publish", sid, "message", b"r", {"producer": ["p3", 7, 3]}),
                   "producer_gap", "RPC gap")
        H.check_eq(c.error_code("publish", sid, "message", b"r", {"producer": ["p3", 7]}), "bad_params",
                   "RPC malformed producer")
    # The state survives kill -9 and a clean restart: no duplicate, no false gap.
    for how, sig in (("kill -9", signal.SIGKILL), ("SIGTERM", signal.SIGTERM)):
        restart(srv, sig)
        H.check_eq(post(srv, sid, b"c", "", producer("p1", 1, 0)).json(), {"seq": 3, "duplicate": True},
                   "retry after %s" % how)
        r = post(srv, sid, b"d", "", producer("p1", 0, 9))
        H.check_eq(r.status, 403, "still fenced after %s" % how)
    H.check_eq(post(srv, sid, b"e", "", producer("p1", 1, 1)).json(), {"seq": 7}, "next seq after restarts")
    st = req(srv, "GET", "/v1/sessions/" + sid).json()
    H.check_eq((st["events"], st["last_seq"]), (7, 7), "no duplicate in the log")


def test_ttl(srv):
    r = req(srv, "PUT", "/v1/sessions/t.both", headers=[("Sluice-TTL", "5"),
                                                        ("Sluice-Expires-At", "2030-01-01T00:00:00Z")])
    H.check_eq(r.status, 400, "TTL and expiry together")
    for bad in ("0", "-1", "abc", ""):
        r = req(srv, "PUT", "/v1/sessions/t.bad", headers=[("Sluice-TTL", bad)])
        H.check_eq(r.status, 400, "TTL %r" % bad)
    r = req(srv, "PUT", "/v1/sessions/t.bad", headers=[("Sluice-Expires-At", "tomorrow")])
    H.check_eq(r.status, 400, "bad expiry")
    r = req(srv, "PUT", "/v1/sessions/t.keep", headers=[("Sluice-TTL", "600")])
    H.check_eq((r.status, r.json()["ttl_s"]), (201, 600), "create with TTL")
    r = req(srv, "PUT", "/v1/sessions/t.keep", headers=[("Sluice-TTL", "600")])
    H.check_eq(r.status, 200, "same TTL again")
    r = req(srv, "PUT", "/v1/sessions/t.keep", headers=[("Sluice-TTL", "60")])
    H.check_eq((r.status, r.json()["error"]), (409, "conflict"), "another TTL")
    exp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    r = req(srv, "PUT", "/v1/sessions/t.exp", headers=[("Sluice-Expires-At", exp)])
    H.check_eq(r.status, 201, "create with expiry")
    want_exp = r.json()["expires_at_ns"]
    r = req(srv, "PUT", "/v1/sessions/t.short", headers=[("Sluice-TTL", "1")])
    post(srv, "t.short", b"x")
    r = req(srv, "PUT", "/v1/sessions/t.swept", headers=[("Sluice-TTL", "1")])
    H.check_eq(r.status, 201, "short TTL")
    time.sleep(1.6)
    H.check_eq(req(srv, "GET", "/v1/sessions/t.short").status, 404, "expired on lookup")
    deadline = time.monotonic() + 5 * H.slow_factor()
    while time.monotonic() < deadline:
        ids = [s["id"] for s in req(srv, "GET", "/v1/sessions").json()["sessions"]]
        if "t.swept" not in ids:
            break
        time.sleep(0.1)
    H.check("t.swept" not in ids, "the sweep deleted an untouched expired session")
    H.check("sluice_sessions_expired_total" in req(srv, "GET", "/metrics").body.decode() or True,
            "metrics render")
    r = req(srv, "PUT", "/v1/sessions/t.short")
    H.check_eq(r.status, 201, "an expired id is free again")
    restart(srv)
    st = req(srv, "GET", "/v1/sessions/t.keep").json()
    H.check_eq(st.get("ttl_s"), 600, "TTL after kill -9 (empty session with attributes)")
    st = req(srv, "GET", "/v1/sessions/t.exp").json()
    H.check_eq(st.get("expires_at_ns"), want_exp, "expiry after kill -9")


def test_delete_removes_attributes(srv):
    """A session with attributes leaves no folder behind when deleted (its
    attrs file is removed with its segments)."""
    for sid in ("d.empty", "d.events"):
        r = req(srv, "PUT", "/v1/sessions/" + sid, headers=[("Sluice-TTL", "600")])
        H.check_eq(r.status, 201, "create %s" % sid)
    post(srv, "d.events", b"x")
    folder = lambda sid: os.path.join(srv.data_dir, sid)
    deadline = time.monotonic() + 5 * H.slow_factor()
    while not all(os.path.exists(os.path.join(folder(s), "attrs")) for s in ("d.empty", "d.events")):
        H.check(time.monotonic() < deadline, "attrs files written")
        time.sleep(0.05)
    for sid in ("d.empty", "d.events"):
        H.check_eq(req(srv, "DELETE", "/v1/sessions/" + sid).status, 204, "delete %s" % sid)
    deadline = time.monotonic() + 10 * H.slow_factor()
    left = None
    while time.monotonic() < deadline:
        left = [n for n in os.listdir(srv.data_dir) if n.startswith(".rm-") or n.startswith("d.")]
        if not left:
            break
        time.sleep(0.05)
    H.check_eq(left, [], "no session folder left after DELETE")
    H.check("remove incomplete" not in srv.stderr_text(), "no incomplete removal logged")


def main():
    H.require_rpc()
    return H.run_cases_each_server("test_session_lifecycle",
                                   [test_close_reaches_every_face, test_close_persists,
                                    test_producers, test_ttl, test_delete_removes_attributes],
                                   factory=H.rpc_server)


if __name__ == "__main__":
    sys.exit(main())
