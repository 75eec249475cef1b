"""msgpack-RPC and HTTP see one log.

- Events published over RPC reach SSE subscribers (curl over HTTP/2 prior
  knowledge and over HTTP/1.1, replaying from seq 1 and then live) as the
  exact SSE bytes of API.md: id, event, data lines split at CR, LF and
  CRLF, a trailing break as an empty data line, NUL kept as text, and data
  that is not UTF-8 sent base64 after `: sluice-encoding: base64`.
- Events published over HTTP (POST over HTTP/1.1 and HTTP/2, and an NDJSON
  batch) reach RPC subscribers as bin with the exact body bytes (for NDJSON:
  the UTF-8 of the decoded string), live and replayed.
"""

import os
import random
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sluice_harness as H  # noqa: E402

# (type, data published over RPC, exact SSE block after "id: N\n").
RPC_EVENTS = [
    ("message", "plain text", b"event: message\ndata: plain text\n\n"),
    ("multi", "a\nb\r\nc\rd", b"event: multi\ndata: a\ndata: b\ndata: c\ndata: d\n\n"),
    ("blob", b"\xff\xfe\x00\x80", b": sluice-encoding: base64\nevent: blob\ndata: //4AgA==\n\n"),
    ("utf8", "caf\u00e9\u2713".encode(), "event: utf8\ndata: caf\u00e9\u2713\n\n".encode()),
    ("nul", "nul\x00inside", b"event: nul\ndata: nul\x00inside\n\n"),
    ("trail", "end\n", b"event: trail\ndata: end\ndata: \n\n"),
    ("crlf", b"\r\n", b"event: crlf\ndata: \ndata: \n\n"),
    ("b64.pad1", b"\xc3\x28\x41\x42", b": sluice-encoding: base64\nevent: b64.pad1\ndata: wyhBQg==\n\n"),
]
REPLAYED = 4  # published before the SSE subscribers connect; the rest live


def sse_block(seq, block):
    return b"id: %d\n" % seq + block


def wait_subscribers(c, session, n):
    deadline = time.monotonic() + 10 * H.slow_factor()
    got = None
    while time.monotonic() < deadline:
        got = c.ok("session", session)["subscribers"]
        if got == n:
            return
        time.sleep(0.05)
    raise H.TestFailure("subscribers of %s did not reach %d (last %r)" % (session, n, got))


def test_rpc_publish_seen_by_sse(srv):
    H.require_tools("curl")
    session = "bridge.rpc"
    url = srv.url("/v1/sessions/%s/events?from=1" % session)
    secs = str(int(4 * H.slow_factor()))
    with H.RpcClient(srv.rpc_addrs()[0]) as c:
        for i, (t, d, _) in enumerate(RPC_EVENTS[:REPLAYED]):
            H.check_eq(c.ok("publish", session, t, d), i + 1, "publish %s" % t)
        curls = {name: subprocess.Popen(["curl", "-sS", "-N", flag, "--max-time", secs, url],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                 for name, flag in (("h2", "--http2-prior-knowledge"), ("h1", "--http1.1"))}
        try:
            wait_subscribers(c, session, 2)
            for i, (t, d, _) in enumerate(RPC_EVENTS[REPLAYED:], REPLAYED):
                H.check_eq(c.ok("publish", session, t, d), i + 1, "live publish %s" % t)
            outs = {name: p.communicate(timeout=30 * H.slow_factor()) for name, p in curls.items()}
        finally:
            for p in curls.values():
                if p.poll() is None:
                    p.kill()
                    p.wait()
        want = b"".join(sse_block(i + 1, blk) for i, (_, _, blk) in enumerate(RPC_EVENTS))
        for name, (out, err) in outs.items():
            H.check(curls[name].returncode in (0, 28), "curl %s: exit %d %r" % (name, curls[name].returncode, err))
            H.check_eq(out, want, "SSE bytes over %s" % name)
        sub = c.ok("subscribe", session, 1)
        got = c.wait_events(sub, len(RPC_EVENTS))
        H.check_eq(got, [(session, i + 1, t, d) for i, (t, d, _) in enumerate(RPC_EVENTS)],
                   "RPC replay keeps str as str and bin as bin")


def post(srv, session, body, qs="", headers=()):
    r = H.http1_request(srv.host, srv.port, "POST", "/v1/sessions/%s/events%s" % (session, qs),
                        headers=headers, body=body)
    H.check_eq(r.status, 200, "POST %r" % body[:40])
    return r.json()


def test_http_publish_seen_by_rpc(srv):
    session = "bridge.http"
    rng = random.Random(7)
    big = bytes(rng.getrandbits(8) for _ in range(100000))
    with H.RpcClient(srv.rpc_addrs()[0]) as live, H.RpcClient(srv.rpc_addrs()[1]) as later:
        H.check_eq(live.ok("create", session), True, "create")
        sub = live.ok("subscribe", session, "live")
        want = []
        for body, qs, hdrs, typ in ((b"line1\r\nline2\x00\xff", "?type=raw", (), "raw"),
                                    (b'{"json": true}', "", [("Sluice-Event-Type", "hdr.t")], "hdr.t"),
                                    ("caf\u00e9".encode(), "", (), "message"),
                                    (big, "?type=big", (), "big")):
            seq = post(srv, session, body, qs, hdrs)["seq"]
            want.append((session, seq, typ, body))
        nd = ('{"type":"nd","data":"one"}\n{"data":"two \\u00e9 \\ud83d\\ude00"}\n\n'
              '{"data":"l1\\nl2\\r"}\n').encode()
        r = post(srv, session, nd, headers=[("Content-Type", "application/x-ndjson")])
        H.check_eq(r, {"first_seq": 5, "last_seq": 7}, "NDJSON batch")
        want += [(session, 5, "nd", b"one"), (session, 6, "message", "two \u00e9 \U0001F600".encode()),
                 (session, 7, "message", b"l1\nl2\r")]
        h2body = b"\x00over h2\n\xfe"
        path = os.path.join(srv.tmp, "h2body")
        with open(path, "wb") as f:
            f.write(h2body)
        out, code, _, _, rc, err = H.curl(["--http2-prior-knowledge", "--data-binary", "@" + path,
                                           srv.url("/v1/sessions/%s/events?type=h2" % session)])
        H.check_eq((rc, code, out), (0, 200, b'{"seq":8}'), "POST over HTTP/2 (%s)" % err)
        want.append((session, 8, "h2", h2body))
        got = live.wait_events(sub, len(want), timeout=10 * H.slow_factor())
        H.check_eq(got, want, "live RPC subscriber: exact bytes and types")
        H.check(all(type(e[3]) is bytes for e in got), "HTTP-published data arrives as bin")
        sub2 = later.ok("subscribe", session, 1)
        H.check_eq(later.wait_events(sub2, len(want)), want, "replayed to a later RPC subscriber")


def main():
    H.require_rpc()
    return H.run_cases_each_server("test_rpc_sse_bridge",
                                   [test_rpc_publish_seen_by_sse, test_http_publish_seen_by_rpc],
                                   factory=H.rpc_server)


if __name__ == "__main__":
    sys.exit(main())
