"""Input limits against the real binary: flags checked against the compiled
caps at start, query values percent-decoded, the empty session id, SSE
keepalive timing, Content-Length overflow (HTTP/1.1 and HTTP/2), the NDJSON
batch event cap, the bound on SSE line-break expansion, and the RPC unix
socket's mode and liveness check. Clients: httpx, curl and raw sockets."""

import json
import os
import socket
import stat
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sluice_harness as H  # noqa: E402

suite = H.Suite("test_input_limits")

MAX_EVENT = 64 * 1024
BATCH_EVENTS_MAX = 10000          # SL_BATCH_EVENTS_MAX in runtime/limits.h
REPLY_TIMEOUT_S = 5.0 * H.slow_factor()
SERVER = None


def req(method, path, headers=(), body=b""):
    return H.http1_request(SERVER.host, SERVER.port, method, path, headers=headers, body=body,
                           timeout=REPLY_TIMEOUT_S)


def error_of(r):
    try:
        return r.json().get("error")
    except ValueError:
        return None


def start_exit_code(args, timeout=10.0):
    """Runs sluiced with args on a fresh data dir; returns (exit code,
    stderr). A server that starts instead of refusing is stopped and fails."""
    with tempfile.TemporaryDirectory(prefix="sluice-limits-") as tmp:
        cmd = [H.sluiced_path(), "--listen", "127.0.0.1:0", "--data-dir",
               os.path.join(tmp, "data")] + list(args)
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             stdin=subprocess.DEVNULL, env=H.default_sanitizer_env(dict(os.environ)))
        try:
            _, err = p.communicate(timeout=timeout * H.slow_factor())
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            raise H.TestFailure("sluiced %s started instead of exiting 2" % " ".join(args))
        return p.returncode, err.decode("utf-8", "replace")


@suite.case
def test_flags_checked_against_compiled_caps():
    for args, flag in ((["--max-event-bytes", "17m", "--max-body-bytes", "64m"], "--max-event-bytes"),
                       (["--max-event-bytes", "64m", "--max-body-bytes", "64m"], "--max-event-bytes")):
        code, err = start_exit_code(args)
        H.check_eq(code, 2, "exit code of %s (stderr %r)" % (args, err[-300:]))
        H.check(flag in err, "message names %s: %r" % (flag, err[-300:]))
    # At the cap itself the server runs, publishes, and restarts on its data.
    srv = H.Server(args=["--max-event-bytes", "16m", "--max-body-bytes", "64m"], name="cap")
    with srv:
        r = H.http1_request(srv.host, srv.port, "POST", "/v1/sessions/cap/events", body=b"x")
        H.check_eq(r.status, 200, "publish at --max-event-bytes 16m")
        # A body within --max-body-bytes but above the connection allocator's
        # default cap (32 MiB) is accepted, not cut off by a refused allocation.
        line = b'{"data":"' + b"a" * (11 << 20) + b'"}\n'
        r = H.http1_request(srv.host, srv.port, "POST", "/v1/sessions/cap2/events",
                            headers=[("Content-Type", "application/x-ndjson")], body=line * 3,
                            timeout=30)
        H.check_eq((r.status, r.json()), (200, {"first_seq": 1, "last_seq": 3}), "33 MiB batch")
        H.check_eq(srv.stop()[0], 0, "clean stop")
        os.unlink(srv.ready_file)
        srv.start()
        r = H.http1_request(srv.host, srv.port, "GET", "/v1/sessions/cap")
        H.check_eq((r.status, r.json()["last_seq"]), (200, 1), "restart at the cap")


def first_sse_block(path, want, timeout=REPLY_TIMEOUT_S):
    """Subscribes over HTTP/1.1 and reads until `want` arrived (or the
    timeout); returns what was read."""
    s = H.connect(SERVER.host, SERVER.port, timeout)
    data = b""
    try:
        s.sendall(H.build_http1("GET", path))
        deadline = time.monotonic() + timeout
        while want not in data and time.monotonic() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except socket.timeout:
        pass
    finally:
        s.close()
    return data


@suite.case
def test_query_values_percent_decoded():
    import httpx
    url = SERVER.url("/v1/sessions/pct/events")
    with httpx.Client(timeout=REPLY_TIMEOUT_S) as cl:
        r = cl.post(url, params={"type": "a:b"}, content=b"hello")
        H.check("type=a%3Ab" in str(r.request.url), "httpx encodes ':' (%s)" % r.request.url)
        H.check_eq(r.status_code, 200, "?type=a%%3Ab (%s)" % r.text)
        # %31 is "1": ephemeral, so asking for durable too is refused.
        r = cl.post(url + "?ephemeral=%31&durable=1", content=b"x")
        H.check_eq((r.status_code, r.json()["error"]), (400, "bad_request"), "?ephemeral=%31")
        r = cl.post(url + "?ephemeral=tru%65&durable=%31", content=b"x")
        H.check_eq(r.status_code, 400, "?ephemeral=tru%65&durable=%31")
    # Raw bytes: httpx would re-encode a malformed escape.
    for q, code in (("type=%zz", "bad_request"), ("type=a%3", "bad_request"),
                    ("type=a%0Ab", "bad_request"), ("type=a+b", "invalid_type"),
                    ("x=%G0&type=ok", "bad_request")):
        r = req("POST", "/v1/sessions/pct/events?" + q, body=b"x")
        H.check_eq((r.status, error_of(r)), (400, code), "?" + q)
    want = b"id: 1\nevent: a:b\ndata: hello\n"
    block = first_sse_block("/v1/sessions/pct/events?from=%31", want)
    H.check(want in block, "?from=%%31 replays seq 1: %r" % block[-300:])
    r = req("GET", "/v1/sessions?limit=%31")
    H.check_eq((r.status, len(r.json()["sessions"])), (200, 1), "?limit=%31")
    p = H.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST",
               "--data-binary", "x", SERVER.url("/v1/sessions/pct/events?type=c%3Ad")], timeout=10)
    H.check_eq(p.stdout, b"200", "curl ?type=c%3Ad")


@suite.case
def test_empty_session_id_is_400():
    for method in ("GET", "HEAD", "PUT", "DELETE", "POST", "PATCH"):
        for path in ("/v1/sessions/", "/v1/sessions//events"):
            r = req(method, path)
            H.check_eq(r.status, 400, "%s %s" % (method, path))
            if method != "HEAD":
                H.check_eq(error_of(r), "invalid_session_id", "%s %s error" % (method, path))
    r = req("GET", "/v1/sessions")
    H.check_eq(r.status, 200, "the list is still /v1/sessions")


@suite.case
def test_sse_keepalive_follows_flag():
    H.check_eq(req("PUT", "/v1/sessions/ka").status, 201, "create")
    s = H.connect(SERVER.host, SERVER.port, REPLY_TIMEOUT_S)
    try:
        s.sendall(H.build_http1("GET", "/v1/sessions/ka/events"))
        data, t0 = b"", None
        deadline = time.monotonic() + 8
        while b": keepalive" not in data and time.monotonic() < deadline:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
            if t0 is None and b"\r\n\r\n" in data:
                t0 = time.monotonic()
        took = time.monotonic() - (t0 or 0)
    finally:
        s.close()
    H.check(b": keepalive" in data, "no keepalive within 8 s: %r" % data[-200:])
    # --sse-keepalive 1: the first comment within 1..1.5 s (timer at half
    # the interval), not after the idle/header timer's 5 s.
    H.check(took < 2.5 * H.slow_factor(), "first keepalive after %.2fs" % took)


@suite.case
def test_content_length_overflow_http1():
    for cl in ("9223372036854775808", "18446744073709551615", "9223372036854775807"):
        s = H.connect(SERVER.host, SERVER.port, REPLY_TIMEOUT_S)
        try:
            s.sendall(("POST /v1/sessions/cl/events HTTP/1.1\r\nHost: x\r\nContent-Length: %s\r\n"
                       "\r\nabc" % cl).encode())
            r = H.Http1Reader(s).read_response()
        except socket.timeout:
            raise H.TestFailure("Content-Length %s: no early 413 (waits for the body)" % cl)
        finally:
            s.close()
        # 2^64-1 is refused by the parser itself (400); below it, 413.
        H.check(r.status == 413 or (r.status == 400 and cl == "18446744073709551615"),
                "Content-Length %s: status %d" % (cl, r.status))


@suite.case
def test_content_length_overflow_h2():
    h2 = H.h2_modules()
    for cl in ("9223372036854775808", "18446744073709551615", "9223372036854775807"):
        cfg = h2.config.H2Configuration(client_side=True, header_encoding="utf-8",
                                        validate_outbound_headers=False,
                                        normalize_outbound_headers=False)
        conn = h2.connection.H2Connection(config=cfg)
        s = H.connect(SERVER.host, SERVER.port, REPLY_TIMEOUT_S)
        try:
            conn.initiate_connection()
            conn.send_headers(1, [(":method", "POST"), (":path", "/v1/sessions/cl/events"),
                                  (":scheme", "http"), (":authority", SERVER.authority()),
                                  ("content-length", cl)], end_stream=False)
            s.sendall(conn.data_to_send())
            outcome = None
            deadline = time.monotonic() + REPLY_TIMEOUT_S
            while outcome is None and time.monotonic() < deadline:
                try:
                    chunk = s.recv(65536)
                except socket.timeout:
                    break
                if not chunk:
                    outcome = "close"
                    break
                try:
                    events = conn.receive_data(chunk)
                except h2.exceptions.ProtocolError:
                    outcome = "protocol error"
                    break
                for ev in events:
                    if isinstance(ev, h2.events.ResponseReceived):
                        outcome = dict(ev.headers).get(":status")
                    elif isinstance(ev, (h2.events.StreamReset, h2.events.ConnectionTerminated)):
                        outcome = type(ev).__name__
                s.sendall(conn.data_to_send())
        finally:
            s.close()
        H.check(outcome in ("413", "StreamReset"), "h2 content-length %s: %r" % (cl, outcome))


def ndjson(lines):
    return ("\n".join(json.dumps(x) for x in lines) + "\n").encode()


@suite.case
def test_ndjson_event_cap():
    hdr = [("Content-Type", "application/x-ndjson")]
    r = req("POST", "/v1/sessions/nd/events", hdr, ndjson([{"data": ""}] * (BATCH_EVENTS_MAX + 1)))
    H.check_eq((r.status, error_of(r)), (413, "too_large"), "one event beyond the cap")
    r = req("POST", "/v1/sessions/nd/events", hdr, ndjson([{"data": ""}] * BATCH_EVENTS_MAX))
    H.check_eq((r.status, r.json()), (200, {"first_seq": 1, "last_seq": BATCH_EVENTS_MAX}),
               "a batch at the cap")
    # Blank lines are not events and do not count.
    r = req("POST", "/v1/sessions/nd/events", hdr, b"\n" * (BATCH_EVENTS_MAX + 5) + ndjson([{"data": "z"}]))
    H.check_eq(r.status, 200, "blank lines")


@suite.case
def test_sse_line_break_expansion_bounded():
    # Every byte a line break: each becomes "\ndata: " (7x) on the wire.
    breaks = b"\n" * (MAX_EVENT - 100)
    r = req("POST", "/v1/sessions/exp/events", body=breaks)
    H.check_eq((r.status, error_of(r)), (413, "too_large"), "64k of line breaks")
    r = req("POST", "/v1/sessions/exp/events", [("Content-Type", "application/x-ndjson")],
            ndjson([{"data": "\r" * (MAX_EVENT // 2)}]))
    H.check_eq((r.status, error_of(r)), (413, "too_large"), "NDJSON line of CRs")
    # Ordinary text and binary at the event bound still pass: the bound is
    # a maximal binary event's base64 form.
    text = (b"a line of ordinary text that goes on for a while\n" * 2000)[:MAX_EVENT]
    H.check_eq(req("POST", "/v1/sessions/exp/events", body=text).status, 200, "text at the bound")
    H.check_eq(req("POST", "/v1/sessions/exp/events", body=os.urandom(MAX_EVENT)).status, 200,
               "binary at the bound")
    h = SERVER.health()
    H.check(SERVER.alive(), "server alive: %r" % h.get("busy"))


def rpc_reachable(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(2)
    try:
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


def check_live_socket(path):
    mode = stat.S_IMODE(os.stat(path).st_mode)
    H.check_eq(oct(mode), oct(0o660), "default --rpc-socket-mode")
    code, err = start_exit_code(["--rpc-listen", "unix:" + path])
    H.check_eq(code, 2, "second server on a live socket (stderr %r)" % err[-300:])
    H.check("in use" in err or "serving" in err, "clear message: %r" % err[-300:])
    H.check(rpc_reachable(path), "the first server still owns its socket")
    # The same event bounds on the RPC front end.
    cl = H.RpcClient("unix:" + path)
    try:
        H.check_eq(cl.error_code("publish", "r", "t", b"\n" * 600000), "too_large",
                   "RPC publish of line breaks")
        H.check_eq(cl.error_code("publish_batch", "r", [["t", b""]] * (BATCH_EVENTS_MAX + 1)),
                   "too_large", "RPC batch beyond the cap")
        H.check_eq(cl.ok("publish_batch", "r", [["t", b"x"]] * BATCH_EVENTS_MAX),
                   [1, BATCH_EVENTS_MAX], "RPC batch at the cap")
    finally:
        cl.sock.close()


@suite.case
def test_rpc_socket_of_a_server_just_gone():
    """A unix socket that still answers for a moment after its server died
    (the kernel tears a killed server's io_uring and listening socket down
    after the process is gone) does not stop a restart: the probe asks
    again for up to a second before it says "in use"."""
    if not H.rpc_supported():
        print("SKIP: no --rpc-listen")
        return
    import threading
    srv = H.Server(name="rpc-restart")
    path = os.path.join(srv.tmp, "rpc.sock")
    ghost = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ghost.bind(path)
    ghost.listen(8)
    gone = threading.Timer(0.3, ghost.close)
    gone.start()
    srv.args = ["--rpc-listen", "unix:" + path]
    try:
        with srv:
            H.check(rpc_reachable(path), "the new server owns the socket")
    finally:
        gone.cancel()
        ghost.close()


@suite.case
def test_rpc_socket_mode_and_liveness():
    if not H.rpc_supported():
        print("SKIP part: no --rpc-listen")
        return
    a = H.Server(name="rpc-a")
    path = os.path.join(a.tmp, "rpc.sock")
    a.args = ["--rpc-listen", "unix:" + path]
    old = os.umask(0o000)  # the mode must not depend on the umask
    try:
        a.__enter__()
    finally:
        os.umask(old)
    try:
        check_live_socket(path)
    except BaseException:
        a.__exit__(*sys.exc_info())
        raise
    a.__exit__(None, None, None)
    # A stale socket file (nobody listening) is replaced.
    with tempfile.TemporaryDirectory(prefix="sluice-limits-") as tmp:
        stale = os.path.join(tmp, "stale.sock")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(stale)
        s.close()
        b = H.Server(args=["--rpc-listen", "unix:" + stale, "--rpc-socket-mode", "0600"], name="rpc-b")
        with b:
            H.check(rpc_reachable(stale), "stale socket replaced")
            H.check_eq(oct(stat.S_IMODE(os.stat(stale).st_mode)), oct(0o600), "--rpc-socket-mode 0600")
        code, err = start_exit_code(["--rpc-socket-mode", "0778"])
        H.check_eq(code, 2, "bad --rpc-socket-mode (stderr %r)" % err[-300:])


class SharedServer:
    def __enter__(self):
        global SERVER
        SERVER = H.Server(args=["--sse-keepalive", "1", "--max-event-bytes", str(MAX_EVENT),
                                "--session-ring-bytes", "64k", "--ring-page-bytes", "4096"])
        SERVER.__enter__()
        return SERVER

    def __exit__(self, et, ev, tb):
        return SERVER.__exit__(et, ev, tb)


H.require_tools("curl")
suite.run(fixture=SharedServer())
