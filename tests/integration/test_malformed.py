"""Malformed and hostile input: garbage, truncated prefaces, oversized
headers and bodies, bad request lines, silent clients and byte-at-a-time
writers. Each gets a defined answer (a 4xx, an HTTP/2 reset/GOAWAY, or a
close) within a timeout, and the server keeps serving /health afterwards."""

import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sluice_harness as H  # noqa: E402

suite = H.Suite("test_malformed")
H.h2_modules()

REPLY_TIMEOUT_S = 5.0
HEADER_LIMIT = 16 * 1024          # sluiced's default --max-header-bytes
BODY_LIMIT = 8 * 1024 * 1024      # sluiced's default --max-body-bytes
H2_GOAWAY_OR_RESET = "RST_STREAM, GOAWAY, a 431 or a close"

SERVER = None


def server():
    return SERVER


def read_all(s, timeout=REPLY_TIMEOUT_S, limit=1 << 20):
    """Reads until EOF/RST or limit; a silent open socket past the timeout
    fails (the server must answer or close, never leave the client hanging)."""
    s.settimeout(timeout)
    data = b""
    try:
        while len(data) < limit:
            chunk = s.recv(65536)
            if not chunk:
                return data, "eof"
            data += chunk
            if b"\r\n\r\n" in data and data.startswith(b"HTTP/"):
                return data, "response"
    except ConnectionResetError:
        return data, "reset"
    except socket.timeout:
        raise H.TestFailure("no reply and no close within %.0fs (got %r)" % (timeout, data[:200]))
    return data, "limit"


def status_of(data):
    if not data.startswith(b"HTTP/1."):
        return None
    return int(data.split(b" ", 2)[1])


def json_error(data):
    import json
    body = data.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in data else b""
    try:
        return json.loads(body).get("error")
    except ValueError:
        return None


def after(what):
    """The server must still answer /health over both protocols."""
    srv = server()
    srv.assert_healthy(what)
    r = H.h2_request(srv.host, srv.port, "GET", "/health")
    H.check_eq(r.status, 200, "h2 /health after %s" % what)


@suite.case
def test_garbage_bytes():
    srv = server()
    payloads = (
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(256)),  # a TLS hello
        b"\x00" * 64 + b"\r\n\r\n",
        b"\xff\xfe\xfd garbage \x80\x81\r\n\r\n",
        b"HELLO\r\n\r\n",
        b"GET\r\n\r\n",
    )
    for p in payloads:
        s = H.connect(srv.host, srv.port)
        try:
            s.sendall(p)
            data, how = read_all(s)
        finally:
            s.close()
        st = status_of(data)
        H.check(st == 400 or (not data and how in ("eof", "reset")),
                "garbage %r: expected 400 or a close, got %s %r" % (p[:16], how, data[:120]))
        after("garbage %r" % p[:16])


@suite.case
def test_truncated_h2_preface_then_close():
    srv = server()
    for cut in (1, 10, 16, 23):
        s = H.connect(srv.host, srv.port)
        s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"[:cut])
        s.close()
    after("truncated h2 prefaces")


@suite.case
def test_bad_h2_preface():
    srv = server()
    s = H.connect(srv.host, srv.port)
    try:
        s.sendall(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n" + b"\x00" * 9)
        data, how = read_all(s)
    finally:
        s.close()
    # Either side of the fork may catch it: h1 (400) or h2 (GOAWAY), or a close.
    H.check(status_of(data) == 400 or how in ("eof", "reset"),
            "bad preface: expected 400 or close, got %s %r" % (how, data[:120]))
    after("bad h2 preface")


@suite.case
def test_h2_invalid_frame_gets_goaway():
    srv = server()
    s = H.connect(srv.host, srv.port)
    try:
        # Valid preface and SETTINGS, then DATA on stream 0 (a connection error).
        s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
                  + b"\x00\x00\x04\x00\x00\x00\x00\x00\x00" + b"abcd")
        s.settimeout(REPLY_TIMEOUT_S)
        buf, goaway, closed = b"", None, False
        deadline = time.monotonic() + REPLY_TIMEOUT_S
        while goaway is None and not closed and time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                closed = True
                break
            frames, buf = H.h2_frames(buf + chunk)
            for ftype, flags, sid, payload in frames:
                if ftype == H.H2_FRAME_GOAWAY:
                    goaway = int.from_bytes(payload[4:8], "big")
    finally:
        s.close()
    H.check(goaway is not None or closed, "DATA on stream 0: no GOAWAY and no close")
    if goaway is not None:
        H.check_eq(goaway, 1, "GOAWAY error code (PROTOCOL_ERROR)")
    after("h2 DATA on stream 0")


@suite.case
def test_oversized_headers_http1_431():
    srv = server()
    for size in (HEADER_LIMIT + 1024, 4 * HEADER_LIMIT):
        req = H.build_http1("GET", "/health", srv.host, headers=[("X-Big", "a" * size)])
        s = H.connect(srv.host, srv.port)
        try:
            try:
                s.sendall(req)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the server may answer and close before reading it all
            data, how = read_all(s)
        finally:
            s.close()
        H.check_eq(status_of(data), 431, "%d-byte header: status (got %s %r)"
                   % (size, how, data[:120]))
        after("oversized HTTP/1.1 header")
    # Many small headers add up to the same limit.
    hdrs = [("X-H%d" % i, "v" * 100) for i in range(HEADER_LIMIT // 100 + 20)]
    s = H.connect(srv.host, srv.port)
    try:
        s.sendall(H.build_http1("GET", "/health", srv.host, headers=hdrs))
        data, how = read_all(s)
    finally:
        s.close()
    H.check_eq(status_of(data), 431, "many headers: status (got %s %r)" % (how, data[:120]))
    after("many HTTP/1.1 headers")


@suite.case
def test_oversized_headers_http2():
    srv = server()
    r = H.h2_request(srv.host, srv.port, "GET", "/health",
                     headers=[("x-big", "a" * (HEADER_LIMIT + 1024))], timeout=REPLY_TIMEOUT_S)
    refused = (r.status == 431 or r.reset_code is not None or r.goaway_code is not None
               or r.closed)
    H.check(refused, "h2 oversized header: expected %s, got %r" % (H2_GOAWAY_OR_RESET, r))
    H.check(r.status != 200, "h2 oversized header was served: %r" % r)
    after("oversized HTTP/2 header")


@suite.case
def test_oversized_body_http1_413():
    srv = server()
    # Announced length above the limit: refused without reading the body.
    head = (b"POST /v1/sessions/limits/events HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: text/plain\r\nContent-Length: %d\r\n\r\n" % (BODY_LIMIT + 1))
    s = H.connect(srv.host, srv.port)
    try:
        s.sendall(head + b"x" * 4096)
        data, how = read_all(s)
    finally:
        s.close()
    H.check_eq(status_of(data), 413, "Content-Length %d: status (got %s %r)"
               % (BODY_LIMIT + 1, how, data[:160]))
    H.check_eq(json_error(data), "too_large", "413 error code")
    after("oversized HTTP/1.1 body")
    # Chunked body that grows past the limit.
    s = H.connect(srv.host, srv.port)
    try:
        s.sendall(b"POST /v1/sessions/limits/events HTTP/1.1\r\nHost: x\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n")
        chunk = b"%x\r\n%s\r\n" % (1 << 20, b"y" * (1 << 20))
        data, how = send_until_answer(s, chunk, BODY_LIMIT // (1 << 20) + 4)
    finally:
        s.close()
    H.check_eq(status_of(data), 413, "chunked body past the limit: status (got %s %r)"
               % (how, data[:160]))
    after("oversized chunked body")


def send_until_answer(s, chunk, count):
    """Sends chunk up to count times, stopping when the server answers or
    closes; then reads the answer."""
    s.settimeout(REPLY_TIMEOUT_S)
    for _ in range(count):
        try:
            s.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            break
        except socket.timeout:
            break  # the server stopped reading: it should be answering
    return read_all(s)


@suite.case
def test_oversized_body_http2():
    srv = server()
    # Announced by content-length, then streamed without one: both refused.
    for hdrs in ([("content-length", str(BODY_LIMIT + 1))], []):
        r = H.h2_request(srv.host, srv.port, "POST", "/v1/sessions/limits/events",
                         headers=hdrs, body=b"z" * (BODY_LIMIT + 1),
                         timeout=REPLY_TIMEOUT_S * 2)
        what = "h2 oversized body (%s)" % ("content-length" if hdrs else "streamed")
        H.check(r.status == 413 or r.reset_code is not None or r.goaway_code is not None,
                "%s: expected 413 or a reset, got %r" % (what, r))
        if r.status is not None:
            H.check_eq(r.status, 413, "%s status" % what)
        after(what)


@suite.case
def test_invalid_request_line_400():
    srv = server()
    lines = (
        b"GET /health XTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /health HTTP/1.1 extra\r\nHost: x\r\n\r\n",
        b"G\x01T /health HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /he\x00alth HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /health HTTP/1.1\r\nBad Header Without Colon\r\n\r\n",
        b"GET /health HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
    )
    wrong = []  # every line is tried, so one report names all mismatches
    for line in lines:
        s = H.connect(srv.host, srv.port)
        try:
            s.sendall(line)
            data, how = read_all(s)
        finally:
            s.close()
        got = (status_of(data), json_error(data))
        if got != (400, "bad_request"):
            wrong.append("%r -> %s %r" % (line[:40], how, data[:100]))
        after("bad request %r" % line[:24])
    H.check(not wrong, "expected 400 bad_request for each; got:\n    " + "\n    ".join(wrong))


@suite.case
def test_silent_client_then_close():
    srv = server()
    socks = [H.connect(srv.host, srv.port) for _ in range(20)]
    time.sleep(0.2)
    after("20 silent clients (still open)")
    for s in socks:
        s.close()
    after("20 silent clients closed")


@suite.case
def test_tiny_writes_still_work():
    srv = server()
    for req in (H.build_http1("GET", "/health", srv.host, headers=[("X-Pad", "p" * 200)]),
                H.build_http1("GET", "/metrics", srv.host)):
        s = H.connect(srv.host, srv.port, timeout=20)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            for i in range(len(req)):
                s.sendall(req[i:i + 1])
                time.sleep(0.001)
            r = H.Http1Reader(s).read_response()
        finally:
            s.close()
        H.check_eq(r.status, 200, "byte-at-a-time request status")
    after("byte-at-a-time requests")


@suite.case
def test_tiny_writes_h2():
    srv = server()
    req = H.h2_prebuilt_get("/health", srv.authority())
    s = H.connect(srv.host, srv.port, timeout=20)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        for i in range(0, len(req), 3):
            s.sendall(req[i:i + 3])
            time.sleep(0.001)
        buf, ended = b"", False
        while not ended:
            chunk = s.recv(65536)
            H.check(chunk, "server closed before answering a slowly written h2 request")
            frames, buf = H.h2_frames(buf + chunk)
            ended = any(sid == 1 and fl & H.H2_FLAG_END_STREAM and t in (0, 1)
                        for t, fl, sid, _ in frames)
    finally:
        s.close()
    after("3-byte-at-a-time h2 request")


@suite.case
def test_server_still_counts_after_abuse():
    srv = server()
    h = srv.health()
    H.check(h["connections"] >= 1, "connections=%r" % h["connections"])
    H.check(srv.alive(), "server died")


class SharedServer:
    """One server for every case: abuse accumulates, as in production."""

    def __enter__(self):
        global SERVER
        SERVER = H.Server()
        SERVER.__enter__()
        SERVER.health()
        return SERVER

    def __exit__(self, et, ev, tb):
        return SERVER.__exit__(et, ev, tb)


suite.run(fixture=SharedServer())
