"""No descriptor leaks: 10,000 connect/request/close cycles in a mix of
HTTP/1.1 and HTTP/2 client behaviours (polite, abrupt, silent) must leave
the server's open fds and connection count where they started."""

import os
import socket
import struct
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sluice_harness as H  # noqa: E402

suite = H.Suite("test_fd_baseline")
H.h2_modules()
import hpack  # noqa: E402  (ships with python3-h2)

CYCLES = 10000
THREADS = 16
SETTLE_S = 5.0

# Client behaviours; the ones marked True read and check a 200 response.
MODES = (
    ("h1_close_read_eof", True),    # Connection: close, read until the server closes
    ("h1_keepalive_read", True),    # read the response, then the client closes first
    ("h2_read_response", True),     # full h2 exchange, then close
    ("h2_close_unread", False),     # send the request, close without reading
    ("h1_reset_unread", False),     # send, then RST (SO_LINGER 0) at once
    ("connect_close", False),       # connect and close without a byte
    ("h2_preface_only", False),     # preface + SETTINGS, then close
)


class Client:
    def __init__(self, srv):
        self.host, self.port = srv.host, srv.port
        auth = srv.authority()
        self.h1_close = H.build_http1("GET", "/health", auth, close=True)
        self.h1_keep = H.build_http1("GET", "/health", auth)
        self.h2_get = H.h2_prebuilt_get("/health", auth)
        self.h2_preface = self.h2_get[:24 + 9 + int.from_bytes(self.h2_get[24:27], "big")]
        self.lock = threading.Lock()
        self.ok = {m: 0 for m, _ in MODES}
        self.errors = []

    def cycle(self, i):
        mode, checked = MODES[i % len(MODES)]
        try:
            getattr(self, mode)()
        except Exception as e:  # counted and reported; one bad cycle must not stop the rest
            with self.lock:
                if len(self.errors) < 20:
                    self.errors.append("%s #%d: %r" % (mode, i, e))
                else:
                    self.errors.append(None)
            return
        with self.lock:
            self.ok[mode] += 1

    def _sock(self):
        return H.connect(self.host, self.port, timeout=10)

    def h1_close_read_eof(self):
        with self._sock() as s:
            s.sendall(self.h1_close)
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            H.check(data.startswith(b"HTTP/1.1 200 "), "response %r" % data[:60])

    def h1_keepalive_read(self):
        with self._sock() as s:
            s.sendall(self.h1_keep)
            r = H.Http1Reader(s).read_response()
            H.check_eq(r.status, 200, "status")

    def h2_read_response(self):
        with self._sock() as s:
            s.sendall(self.h2_get)
            status = read_h2_status(s)
            H.check_eq(status, 200, "h2 status")

    def h2_close_unread(self):
        with self._sock() as s:
            s.sendall(self.h2_get)

    def h1_reset_unread(self):
        s = self._sock()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.sendall(self.h1_keep)
        s.close()

    def connect_close(self):
        self._sock().close()

    def h2_preface_only(self):
        with self._sock() as s:
            s.sendall(self.h2_preface)


def read_h2_status(s):
    """Reads frames until stream 1 ends; returns its :status."""
    buf, status = b"", None
    dec = hpack.Decoder()
    while True:
        chunk = s.recv(65536)
        if not chunk:
            raise H.TestFailure("server closed before stream 1 ended (status %r)" % status)
        frames, buf = H.h2_frames(buf + chunk)
        for ftype, flags, sid, payload in frames:
            if ftype == H.H2_FRAME_HEADERS and sid == 1:
                status = int(dict(dec.decode(header_block(flags, payload)))[":status"])
            elif ftype == H.H2_FRAME_RST_STREAM and sid == 1:
                raise H.TestFailure("stream 1 reset")
            elif ftype == H.H2_FRAME_GOAWAY:
                raise H.TestFailure("GOAWAY %r" % payload[4:8])
            if sid == 1 and flags & H.H2_FLAG_END_STREAM and ftype in (0, 1):
                return status


def header_block(flags, payload):
    """Strips padding and priority fields from a HEADERS payload."""
    start, end = 0, len(payload)
    if flags & 0x8:  # PADDED
        end -= payload[0]
        start = 1
    if flags & 0x20:  # PRIORITY
        start += 5
    return payload[start:end]


def settle(srv, base):
    """Waits until fds return to base+2; returns the last count."""
    deadline = time.monotonic() + SETTLE_S * H.slow_factor()
    n = srv.fd_count()
    while n > base + 2 and time.monotonic() < deadline:
        time.sleep(0.05)
        n = srv.fd_count()
    return n


def health_settle(srv, base_health):
    """Polls /health until connections <= 1 and open_fds <= base+2 (its fd
    figure comes from a periodic snapshot); returns the last body."""
    deadline = time.monotonic() + SETTLE_S * H.slow_factor()
    while True:
        h = srv.health()
        if h["connections"] <= 1 and h["open_fds"] <= base_health + 2:
            return h
        if time.monotonic() > deadline:
            return h
        time.sleep(0.1)


@suite.case
def test_fd_baseline_after_10k_cycles():
    with H.Server() as srv:
        # A first request warms up whatever is allocated lazily (buffers, …).
        srv.health()
        time.sleep(0.3)
        base = srv.fd_count()
        base_health = srv.health()["open_fds"]
        print("  baseline: /proc fds %d, /health open_fds %d" % (base, base_health))
        cl = Client(srv)
        t0 = time.monotonic()
        with ThreadPoolExecutor(THREADS) as pool:
            list(pool.map(cl.cycle, range(CYCLES), chunksize=64))
        took = time.monotonic() - t0
        print("  %d cycles in %.1fs; per mode ok: %s" % (CYCLES, took, cl.ok))
        H.check(not cl.errors, "%d cycles failed, first: %s"
                % (len(cl.errors), [e for e in cl.errors if e][:5]))
        srv.assert_healthy("10k cycles")
        n = settle(srv, base)
        H.check(n <= base + 2, "open fds %d after cycles, baseline %d (allowed +2); fds: %s"
                % (n, base, fd_targets(srv)))
        h = health_settle(srv, base_health)
        H.check(h["connections"] <= 1, "/health connections=%r after all clients left"
                % h["connections"])
        H.check(h["open_fds"] <= base_health + 2, "/health open_fds %d, baseline %d"
                % (h["open_fds"], base_health))


def fd_targets(srv):
    """A short summary of what the fds point at, for the failure message."""
    kinds = {}
    d = "/proc/%d/fd" % srv.pid
    for name in os.listdir(d):
        try:
            t = os.readlink(os.path.join(d, name)).split(":")[0]
        except OSError:
            continue
        kinds[t] = kinds.get(t, 0) + 1
    return kinds


suite.run()
