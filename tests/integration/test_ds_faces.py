"""Durable Streams face: what sluice adds around the protocol.

- One storage, two faces: a stream made with PUT /v1/stream/{name} is a
  session (/v1/sessions/{name} shows its content type; an event published
  natively is read back by the stream face, JSON mode included).
- HTTP/2 (prior knowledge, curl) serves create / append / read the same.
- SSE control events carry id: lines holding the offset; a read that
  sends Last-Event-ID (what a browser EventSource does on reconnect)
  starts there: it gets only what came after.
- A slow SSE reader (a socket that is not read for a while, with a small
  receive buffer) is not disconnected: once it reads again it gets every
  byte, in order.
- Forks across a restart: a fork still reads its parent's part after the
  server restarts, and deleting the parent then is a soft delete (410)
  that leaves the fork readable.
"""

import base64
import json
import os
import re
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sluice_harness as H  # noqa: E402


def dechunk(raw):
    """The body of a chunked HTTP/1.1 response read so far."""
    body = raw.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in raw else b""
    out = b""
    while body:
        line, sep, rest = body.partition(b"\r\n")
        if not sep:
            break
        n = int(line.split(b";")[0] or b"0", 16)
        if n == 0 or len(rest) < n:
            out += rest[:n] if n else b""
            break
        out += rest[:n]
        body = rest[n + 2:]
    return out


def sse_read(host, port, path, headers=(), want=b"", timeout=5.0):
    """Reads an SSE response until want appears; returns the bytes."""
    s = H.connect(host, port, timeout)
    try:
        s.sendall(H.build_http1("GET", path, host, headers))
        buf = b""
        deadline = time.monotonic() + timeout
        while want not in buf and time.monotonic() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
        return dechunk(buf)
    finally:
        s.close()


def two_faces(srv):
    host, port = srv.host, srv.port
    r = H.http1_request(host, port, "PUT", "/v1/stream/faces",
                        [("Content-Type", "application/json")], b'[{"a":1},{"b":2}]')
    H.check_eq(r.status, 201, "create")
    st = H.http1_request(host, port, "GET", "/v1/sessions/faces")
    H.check_eq(st.status, 200, "session stats of the stream")
    stats = json.loads(st.body)
    H.check_eq(stats["content_type"], "application/json", "content type in the stats")
    H.check_eq(stats["last_seq"], 2, "one event per JSON message")
    p = H.http1_request(host, port, "POST", "/v1/sessions/faces/events",
                        [("Sluice-Event-Type", "message")], b'{"c":3}')
    H.check_eq(p.status, 200, "native publish into the stream")
    g = H.http1_request(host, port, "GET", "/v1/stream/faces?offset=-1")
    H.check_eq(g.status, 200, "catch-up read")
    H.check_eq(json.loads(g.body), [{"a": 1}, {"b": 2}, {"c": 3}], "both faces' events, one array")
    H.check_eq(g.header("stream-next-offset"), "0000000000000000_0000000000000003", "tail offset")


def http2(srv):
    base = "http://%s:%d/v1/stream/h2" % (srv.host, srv.port)
    body, code, ver, _, rc, err = H.curl(["--http2-prior-knowledge", "-X", "PUT", "-H",
                                          "Content-Type: text/plain", "--data-binary", "one ", base])
    H.check_eq((code, ver), (201, "2"), "h2 create (%s)" % err)
    body, code, ver, _, rc, err = H.curl(["--http2-prior-knowledge", "-X", "POST", "-H",
                                          "Content-Type: text/plain", "--data-binary", "two", base])
    H.check_eq((code, ver), (204, "2"), "h2 append")
    body, code, ver, _, rc, err = H.curl(["--http2-prior-knowledge", base + "?offset=-1"])
    H.check_eq((code, body), (200, b"one two"), "h2 read")


def eventsource_resume(srv):
    host, port = srv.host, srv.port
    H.check_eq(H.http1_request(host, port, "PUT", "/v1/stream/es", [("Content-Type", "text/plain")],
                               b"first").status, 201, "create")
    first = sse_read(host, port, "/v1/stream/es?offset=-1&live=sse", want=b"upToDate")
    H.check(b"data:first" in first, "first SSE read has the data: %r" % first)
    ids = [l.split(b":", 1)[1].strip() for l in first.split(b"\n") if l.startswith(b"id:")]
    H.check_eq(ids, [b"0000000000000000_0000000000000001"], "control event id: line")
    H.check_eq(H.http1_request(host, port, "POST", "/v1/stream/es", [("Content-Type", "text/plain")],
                               b"second").status, 204, "append")
    # The browser reconnects to the same URL (offset=-1) with Last-Event-ID.
    again = sse_read(host, port, "/v1/stream/es?offset=-1&live=sse",
                     [("Last-Event-ID", ids[0].decode())], want=b"upToDate")
    H.check(b"data:second" in again and b"data:first" not in again,
            "resumed after the last id: %r" % again)


def slow_reader(srv):
    host, port = srv.host, srv.port
    H.check_eq(H.http1_request(host, port, "PUT", "/v1/stream/slow",
                               [("Content-Type", "application/octet-stream")]).status, 201, "create")
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(10)
    s.connect((host, port))
    s.sendall(H.build_http1("GET", "/v1/stream/slow?offset=-1&live=sse", host))
    chunk = bytes(range(256)) * 256  # 64 KiB, base64 on the wire
    total = 64
    for i in range(total):
        r = H.http1_request(host, port, "POST", "/v1/stream/slow",
                            [("Content-Type", "application/octet-stream")], chunk)
        H.check_eq(r.status, 204, "append %d" % i)
    time.sleep(1.0)  # the reader is far behind and not reading
    H.check_eq(H.http1_request(host, port, "POST", "/v1/stream/slow", [("Stream-Closed", "true")]).status,
               204, "close")
    buf = b""
    while b"streamClosed" not in buf:
        c = s.recv(1 << 16)
        H.check(c, "the slow reader's stream ended early (%d bytes)" % len(buf))
        buf += c
    s.close()
    text = dechunk(buf)
    data = b"".join(base64.b64decode(m) for m in re.findall(rb"event: data\ndata:([A-Za-z0-9+/=]*)\n", text))
    H.check_eq(len(data), total * len(chunk), "every byte reached the slow reader")
    H.check(data == chunk * total, "bytes in order")
    srv.assert_healthy("after the slow reader")


def fork_restart():
    import shutil
    import tempfile
    tmp = tempfile.mkdtemp(prefix="sluice-ds-fork-")
    data_dir = os.path.join(tmp, "data")

    def start():
        srv = H.Server(bare=True)
        srv.args = ["--listen", "127.0.0.1:0", "--data-dir", data_dir, "--ready-file", srv.ready_file]
        return srv  # started by the with statement
    try:
        with start() as srv:
            host, port = srv.host, srv.port
            H.check_eq(H.http1_request(host, port, "PUT", "/v1/stream/src", [("Content-Type", "text/plain")],
                                       b"ab").status, 201, "source")
            H.check_eq(H.http1_request(host, port, "POST", "/v1/stream/src", [("Content-Type", "text/plain")],
                                       b"cd").status, 204, "source append")
            H.check_eq(H.http1_request(host, port, "PUT", "/v1/stream/fork",
                                       [("Stream-Forked-From", "/v1/stream/src"),
                                        ("Stream-Fork-Offset", "0000000000000000_0000000000000001")]).status,
                       201, "fork at the first append")
            H.check_eq(H.http1_request(host, port, "POST", "/v1/stream/fork", [("Content-Type", "text/plain")],
                                       b"XY").status, 204, "fork append")
        with start() as srv:
            host, port = srv.host, srv.port
            r = H.http1_request(host, port, "GET", "/v1/stream/fork?offset=-1")
            H.check_eq((r.status, r.body), (200, b"abXY"), "fork read after a restart")
            H.check_eq(H.http1_request(host, port, "DELETE", "/v1/stream/src").status, 204, "delete source")
            H.check_eq(H.http1_request(host, port, "GET", "/v1/stream/src?offset=-1").status, 410,
                       "a source forks read is soft-deleted")
            r = H.http1_request(host, port, "GET", "/v1/stream/fork?offset=-1")
            H.check_eq((r.status, r.body), (200, b"abXY"), "fork read after its source's delete")
            H.check_eq(H.http1_request(host, port, "DELETE", "/v1/stream/fork").status, 204, "delete fork")
            H.check_eq(H.http1_request(host, port, "GET", "/v1/stream/src?offset=-1").status, 404,
                       "the source goes with its last fork")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    fork_restart()
    with H.Server() as srv:
        two_faces(srv)
        http2(srv)
        eventsource_resume(srv)
        slow_reader(srv)
    print("ok")


if __name__ == "__main__":
    main()
