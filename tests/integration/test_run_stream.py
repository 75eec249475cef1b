"""Runs: a process's output streamed into its session. Ten consumers of one
run over h2c (curl --http2-prior-knowledge), HTTP/1.1 (curl) and
msgpack-RPC (python msgpack) get identical, complete output and the exit;
stdin over HTTP and RPC; non-zero exits; output floods end at the limit;
the HTTP and RPC error answers."""

import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import runs_lib as R  # noqa: E402
import sluice_harness as H  # noqa: E402

suite = H.Suite("test_run_stream")
H.require_tools("curl")
H.require_rpc()

LINES = 200


def rpc_follow(addr, session, out, idx):
    """Follows session from seq 1 until its closed notification."""
    try:
        c = H.RpcClient(addr, timeout=30)
        sub = c.ok("subscribe", session, 1)
        c.wait_until(lambda: any(n[2][0] == sub for n in c.notifications("closed")),
                     "the closed notification", timeout=30)
        evs = []
        for (_sess, seq, typ, data) in c.events(sub):
            if isinstance(data, bytes):
                data = data.decode("utf-8", "replace")
            evs.append((seq, typ, data))
        out[idx] = evs
    except Exception as e:  # reported by the main thread
        out[idx] = e


@suite.case
def test_run_ten_consumers_identical():
    with R.rpc_server() as srv:
        session = R.unique("fan")
        marker = R.unique("MFAN")
        r = H.http1_request(srv.host, srv.port, "PUT", "/v1/sessions/%s" % session)
        H.check(r.status in (200, 201), "PUT session: %r" % r.status)
        curls = [R.curl_sse(srv, session, h2=(i < 4)) for i in range(7)]
        rpc_out = [None] * 3
        threads = [threading.Thread(target=rpc_follow, args=(srv.rpc_addrs()[0], session, rpc_out, i))
                   for i in range(3)]
        for t in threads:
            t.start()
        time.sleep(0.5)  # every consumer is subscribed before the run starts
        run = R.start_run(srv, session, "lines", [marker, str(LINES), "0.002"])
        H.check(run["pid"] > 1 and run["run"], "start answer %r" % run)
        results = [R.finish_curl(p) for p in curls]
        for t in threads:
            t.join(40)
        for i, v in enumerate(rpc_out):
            H.check(not isinstance(v, Exception) and v is not None, "rpc consumer %d: %r" % (i, v))
        ref = results[0]
        H.check_eq(ref[-1][1], "sluice.closed", "h2 stream ends with sluice.closed")
        body = [e for e in ref if e[1] != "sluice.closed"]
        H.check_eq(body[0][1], "run.start", "first event")
        start = json.loads(body[0][2])
        H.check_eq((start["runner"], start["pid"], start["args"]),
                   ("lines", run["pid"], [marker, str(LINES), "0.002"]), "run.start data")
        outs = [e[2] for e in body if e[1] == "run.stdout"]
        H.check_eq(outs, ["%s line %d" % (marker, i) for i in range(1, LINES + 1)], "stdout lines")
        H.check_eq([e[2] for e in body if e[1] == "run.stderr"], ["%s done" % marker], "stderr")
        ex = R.exit_event(body)
        H.check_eq((ex["code"], ex["signal"], ex["reason"]), (0, None, "exit"), "run.exit")
        for k in ("wall_ms", "cpu_ms", "max_rss_kb"):
            H.check(isinstance(ex[k], int) and ex[k] >= 0, "run.exit %s=%r" % (k, ex[k]))
        H.check_eq([e[0] for e in body], list(range(1, len(body) + 1)), "seqs without gaps")
        for i, res in enumerate(results[1:], 1):
            H.check_eq(res, ref, "curl consumer %d (%s) output" % (i, "h2" if i < 4 else "h1"))
        for i, evs in enumerate(rpc_out):
            H.check_eq(evs, body, "rpc consumer %d output" % i)
        st, state = R.run_state(srv, session)
        H.check_eq((st, state["state"], state["exit"]["reason"]), (200, "exited", "exit"), "GET run")
        R.assert_tree_gone(marker, run["run"], srv.pid, what="after exit")
        # The session is closed: a new run there is refused.
        r = R.post_json(srv, "/v1/sessions/%s/run" % session, {"runner": "lines"})
        H.check_eq((r.status, r.json()["error"]), (409, "closed"), "run on a closed session")


@suite.case
def test_run_exit_code_and_stdin():
    with R.rpc_server() as srv:
        s1 = R.unique("fail")
        run = R.start_run(srv, s1, "fail", ["MF", "7"])
        ex = R.wait_exited(srv, s1)
        H.check_eq((ex["code"], ex["signal"], ex["reason"]), (7, None, "exit"), "non-zero exit")
        evs = R.sse_events(srv, s1)
        types = [e[1] for e in evs]
        H.check("run.stderr" in types and "run.stdout" in types, "both streams: %r" % types)
        H.check_eq(types[-2:], ["run.exit", "sluice.closed"], "ends with exit then closed")
        # stdin over HTTP: initial stdin, two writes, the last closes it.
        s2 = R.unique("echo")
        me = R.unique("MECHO")
        run = R.start_run(srv, s2, "echo", [me], stdin="hello\n")
        r = H.http1_request(srv.host, srv.port, "POST", "/v1/sessions/%s/run/stdin" % s2,
                            body=b"more\n", timeout=10)
        H.check_eq((r.status, r.json()["written"]), (200, 5), "stdin write")
        r = H.http1_request(srv.host, srv.port, "POST", "/v1/sessions/%s/run/stdin" % s2,
                            headers=[("Sluice-Close", "1")], body=b"last\n", timeout=10)
        H.check_eq((r.status, r.json()["closed"]), (200, True), "stdin close")
        ex = R.wait_exited(srv, s2)
        H.check_eq(ex["reason"], "exit", "echo ends at EOF")
        outs = [e[2] for e in R.sse_events(srv, s2) if e[1] == "run.stdout"]
        H.check_eq(outs, ["hello", "more", "last", "eof"], "echoed stdin")
        r = H.http1_request(srv.host, srv.port, "POST", "/v1/sessions/%s/run/stdin" % s2,
                            body=b"x", timeout=10)
        H.check_eq(r.status, 409, "stdin without a run")
        # stdin over RPC.
        c = H.RpcClient(srv.rpc_addrs()[0])
        s3 = R.unique("rpcecho")
        res = c.ok("run", s3, "echo", ["MR"])
        H.check(res["pid"] > 1 and res["run"].startswith("r"), "rpc run answer %r" % res)
        H.check_eq(c.ok("stdin", s3, b"abc\n"), {"written": 4, "closed": False}, "rpc stdin")
        H.check_eq(c.ok("stdin", s3, b"def\n", True)["closed"], True, "rpc stdin close")
        R.wait_exited(srv, s3)
        outs = [e[2] for e in R.sse_events(srv, s3) if e[1] == "run.stdout"]
        H.check_eq(outs, ["abc", "def", "eof"], "rpc-fed stdin echoed")
        # Pipelined: stdin sent before the start is answered waits for the child.
        s4 = R.unique("rpcpipe")
        m_run = c.send("run", s4, "echo", ["MP"])
        m_in = c.send("stdin", s4, b"early\n", True)
        err, res = c.wait_response(m_run)
        H.check(err is None and res["pid"] > 1, "pipelined run: %r %r" % (err, res))
        err, res = c.wait_response(m_in)
        H.check(err is None and res["written"] == 6, "pipelined stdin: %r %r" % (err, res))
        R.wait_exited(srv, s4)
        outs = [e[2] for e in R.sse_events(srv, s4) if e[1] == "run.stdout"]
        H.check_eq(outs, ["early", "eof"], "stdin sent while spawning reached the child")
        H.check_eq(c.error_code("cancel", s3), "conflict", "rpc cancel without a run")
        H.check_eq(c.error_code("run", s3 + "x", "nope"), "not_found", "rpc unknown runner")
        R.assert_tree_gone(me, run["run"], srv.pid, what="after the echo runs")


@suite.case
def test_run_flood_output_limit():
    with R.server() as srv:
        s = R.unique("flood")
        run = R.start_run(srv, s, "flood", ["MFLOOD"])
        ex = R.wait_exited(srv, s)
        H.check_eq(ex["reason"], "output_limit", "flood ends at the limit")
        evs = R.sse_events(srv, s)
        got = sum(len(e[2]) for e in evs if e[1] == "run.stdout")
        H.check_eq(got, 256 * 1024, "stdout bytes published = max-output exactly")
        H.check_eq(evs[-1][1], "sluice.closed", "closed after the exit")
        R.assert_tree_gone(None, run["run"], srv.pid, what="after the flood")


@suite.case
def test_run_errors():
    with R.server(args=["--max-runs", "2", "--runner", "missing=/nonexistent/bin/tool"]) as srv:
        s = R.unique("err")
        r = R.post_json(srv, "/v1/sessions/%s/run" % (s + "m"), {"runner": "missing"})
        H.check_eq((r.status, r.json()["error"]), (500, "internal"), "a program that cannot run")
        H.check("No such file" in r.json()["message"], "the reason: %r" % r.json())
        R.wait_for(lambda: srv.health()["runs"]["spawn_failed"] == 1, "spawn_failed counted")
        r = R.post_json(srv, "/v1/sessions/%s/run" % s, {"runner": "nope"})
        H.check_eq((r.status, r.json()["error"]), (404, "not_found"), "unknown runner")
        r = R.post_json(srv, "/v1/sessions/%s/run" % s, {"args": []})
        H.check_eq((r.status, r.json()["error"]), (400, "bad_request"), "no runner")
        r = R.post_json(srv, "/v1/sessions/%s/run" % s, {"runner": "lines", "args": ["x"] * 65})
        H.check_eq(r.status, 400, "65 args")
        r = R.post_json(srv, "/v1/sessions/%s/run" % s, {"runner": "lines", "args": ["x" * 4097]})
        H.check_eq(r.status, 400, "an arg over 4 KiB")
        m1, m2 = R.unique("MERR1"), R.unique("MERR2")
        a = R.start_run(srv, s, "df", [m1])
        r = R.post_json(srv, "/v1/sessions/%s/run" % s, {"runner": "lines"})
        H.check_eq((r.status, r.json()["error"]), (409, "conflict"), "second run on a session")
        b = R.start_run(srv, s + "b", "df", [m2])
        r = R.post_json(srv, "/v1/sessions/%s/run" % (s + "c"), {"runner": "lines"})
        H.check_eq((r.status, r.json()["error"], r.header("retry-after")), (429, "overloaded", "1"),
                   "beyond --max-runs")
        R.wait_for(lambda: (lambda h: h["runs"]["active"] == 2 and h["busy"] is True)(srv.health()),
                   "/health showing two active runs and busy")
        r = H.http1_request(srv.host, srv.port, "GET", "/metrics", timeout=10)
        H.check(b"sluice_runs_active 2" in r.body, "metrics show the active runs")
        for sess in (s, s + "b"):
            r = H.http1_request(srv.host, srv.port, "DELETE", "/v1/sessions/%s/run" % sess, timeout=10)
            H.check_eq(r.status, 202, "cancel")
        R.wait_exited(srv, s)
        R.wait_exited(srv, s + "b")
        R.assert_tree_gone(m1, a["run"], srv.pid, what="after cancel")
        R.assert_tree_gone(m2, b["run"], srv.pid, what="after cancel")
        h = R.wait_for(lambda: (lambda x: x if x["runs"]["active"] == 0 else None)(srv.health()),
                       "no active run in /health")
        H.check_eq((h["zombies"], h["runs"]["by_reason"]["cancelled"]), (0, 2), "health after")


@suite.case
def test_run_access_control():
    """Runs and stdin need pub on the session; reading a run's state, sub."""
    import tempfile
    from auth_tokens import Keys
    keys = Keys(tempfile.mkdtemp(prefix="sluice-it-keys-"))
    with R.rpc_server(args=keys.flags()) as srv:
        s = R.unique("team-7-acl")
        reader = keys.hs256(keys.claims(pub=[], sub=["team-7-*"]))
        writer = keys.hs256(keys.claims(pub=["team-7-*"], sub=["team-7-*"]))
        body = {"runner": "echo", "args": ["MACL"]}
        r = R.post_json(srv, "/v1/sessions/%s/run" % s, body)
        H.check_eq(r.status, 401, "run without a token")
        r = R.post_json(srv, "/v1/sessions/%s/run" % s, body,
                        headers=[("Authorization", "Bearer " + reader)])
        H.check_eq(r.status, 403, "run with sub only")
        r = R.post_json(srv, "/v1/sessions/%s/run" % s, body,
                        headers=[("Authorization", "Bearer " + writer)])
        H.check_eq(r.status, 201, "run with pub")
        r = H.http1_request(srv.host, srv.port, "POST", "/v1/sessions/%s/run/stdin" % s,
                            headers=[("Authorization", "Bearer " + reader)], body=b"x", timeout=10)
        H.check_eq(r.status, 403, "stdin with sub only")
        r = H.http1_request(srv.host, srv.port, "GET", "/v1/sessions/%s/run" % s,
                            headers=[("Authorization", "Bearer " + reader)], timeout=10)
        H.check_eq(r.status, 200, "GET run with sub")
        c = H.RpcClient(srv.rpc_addrs()[0])
        H.check_eq(c.error_code("cancel", s), "unauthorized", "rpc cancel before auth")
        c.ok("auth", reader)
        H.check_eq(c.error_code("stdin", s, b"x", True), "forbidden", "rpc stdin with sub only")
        c.ok("auth", writer)
        H.check_eq(c.ok("stdin", s, b"x\n", True)["closed"], True, "rpc stdin with pub")
        ex = None
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            r = H.http1_request(srv.host, srv.port, "GET", "/v1/sessions/%s/run" % s,
                                headers=[("Authorization", "Bearer " + writer)], timeout=10)
            if r.json()["state"] == "exited":
                ex = r.json()["exit"]
                break
            time.sleep(0.05)
        H.check(ex is not None and ex["reason"] == "exit", "the run ended: %r" % ex)


@suite.case
def test_run_exited_once_its_exit_was_read():
    """Whoever has read run.exit and asks at once finds the run exited, with
    its exit: the state turns when run.exit is sent, not when the run's
    actor has finished winding down (a GET served between the two said
    "running"). Forty short runs, the GET on a connection already open,
    sent the moment the stream's end arrives."""
    with R.server() as srv:
        for i in range(40):
            session = R.unique("exited%d" % i)
            r = H.http1_request(srv.host, srv.port, "PUT", "/v1/sessions/%s" % session)
            H.check(r.status in (200, 201), "PUT session: %r" % r.status)
            sse = H.connect(srv.host, srv.port, timeout=15)
            ask = H.connect(srv.host, srv.port, timeout=15)
            try:
                sse.sendall(H.build_http1("GET", "/v1/sessions/%s/events?from=1" % session))
                time.sleep(0.05)
                R.start_run(srv, session, "lines", [R.unique("MEX"), "1", "0"])
                got = b""
                while b"event: sluice.closed" not in got:
                    chunk = sse.recv(65536)
                    H.check(chunk, "stream ended before sluice.closed: %r" % got[-300:])
                    got += chunk
                ask.sendall(H.build_http1("GET", "/v1/sessions/%s/run" % session, close=True))
                resp = H.Http1Reader(ask).read_response()
            finally:
                sse.close()
                ask.close()
            H.check(b"event: run.exit" in got, "run.exit before the end")
            H.check_eq(resp.status, 200, "GET run")
            state = resp.json()
            H.check_eq((state["state"], state.get("exit", {}).get("reason")), ("exited", "exit"),
                       "GET run right after run.exit (run %d)" % i)


suite.run()
