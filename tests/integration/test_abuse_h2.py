"""Hostile HTTP/2 clients: the server calms them down and stays responsive.

Raw frames over real sockets (loopback):
- rapid reset (open a stream and RST_STREAM it, over and over) ends in
  GOAWAY(ENHANCE_YOUR_CALM) and a closed connection, counted as
  guard.h2_rapid_reset;
- a CONTINUATION flood (a header block that never ends) the same,
  counted as h2_continuation_flood;
- a PING flood and a SETTINGS flood from clients that never read;
- 20 clients that never open their HTTP/2 window follow a session while
  ~16 MB of events are published: a normal subscriber still gets every
  event, their output stays bounded (/debug/connections), RSS stays
  bounded, the watchdog reaps nobody (their kernels ack everything).
Throughout, /health answers within HEALTH_LIMIT_S on a separate
connection; afterwards the server's fds are back to their baseline.
"""

import os
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sluice_harness as H  # noqa: E402

H.h2_modules()
import hpack  # noqa: E402  (ships with python3-h2)

HEALTH_LIMIT_S = 0.5 * H.slow_factor()
RSS_GROWTH_MAX = 96 << 20
SANITIZER_ENV = {"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=1:quarantine_size_mb=16"}
ENHANCE_YOUR_CALM = 0xB
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = 1, 3, 4, 6, 7, 8, 9
END_STREAM, END_HEADERS, ACK = 0x1, 0x4, 0x1


def frame(ftype, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + \
        struct.pack(">I", sid) + payload


def get_block(authority, path):
    return hpack.Encoder().encode([(":method", "GET"), (":path", path), (":scheme", "http"),
                                   (":authority", authority)])


class RawH2:
    """A prior-knowledge HTTP/2 connection speaking raw frames."""

    def __init__(self, srv, settings=b""):
        self.sock = H.connect(srv.host, srv.port, timeout=10)
        self.sock.sendall(PREFACE + frame(SETTINGS, 0, 0, settings))
        self.buf = b""
        self.goaway = None
        self.closed = False
        self.data_bytes = 0

    def send(self, data):
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            self.closed = True
            return False

    def poll(self, timeout=0.0, ack_settings=True, window_update=False):
        """Reads what is there (waiting up to timeout); records GOAWAY and
        close; acks SETTINGS unless told not to."""
        self.sock.settimeout(timeout if timeout > 0 else 0.001)
        try:
            data = self.sock.recv(1 << 20)
        except socket.timeout:
            return
        except OSError:
            data = b""
        if not data:
            self.closed = True
            return
        frames, self.buf = H.h2_frames(self.buf + data)
        out = b""
        for ftype, flags, sid, payload in frames:
            if ftype == GOAWAY and len(payload) >= 8:
                self.goaway = struct.unpack(">I", payload[4:8])[0]
            elif ftype == SETTINGS and not flags & ACK and ack_settings:
                out += frame(SETTINGS, ACK, 0)
            elif ftype == 0:  # DATA
                self.data_bytes += len(payload)
                if window_update and payload:
                    inc = struct.pack(">I", len(payload))
                    out += frame(WINDOW_UPDATE, 0, 0, inc) + frame(WINDOW_UPDATE, 0, sid, inc)
        if out:
            self.send(out)

    def wait_closed(self, timeout):
        deadline = time.monotonic() + timeout
        while not self.closed and time.monotonic() < deadline:
            self.poll(0.2)
        return self.closed

    def close(self):
        self.sock.close()


class HealthWatch(threading.Thread):
    """Polls /health on its own connections; records the slowest answer."""

    def __init__(self, srv, every=0.05):
        super().__init__(daemon=True)
        self.srv, self.every = srv, every
        self.stop = threading.Event()
        self.worst = 0.0
        self.count = 0
        self.error = None

    def run(self):
        while not self.stop.is_set():
            t0 = time.monotonic()
            try:
                r = H.http1_request(self.srv.host, self.srv.port, "GET", "/health", timeout=10)
                H.check_eq(r.status, 200, "/health status")
            except Exception as e:  # reported by the main thread
                self.error = repr(e)
                return
            self.worst = max(self.worst, time.monotonic() - t0)
            self.count += 1
            self.stop.wait(self.every)

    def finish(self, what):
        self.stop.set()
        self.join(15)
        H.check(self.error is None, "/health during %s: %s" % (what, self.error))
        H.check(self.count > 0, "/health never answered during %s" % what)
        H.check(self.worst <= HEALTH_LIMIT_S, "/health took %.3fs during %s (limit %.2fs)"
                % (self.worst, what, HEALTH_LIMIT_S))
        print("  /health answered %d times during %s, slowest %.1f ms"
              % (self.count, what, self.worst * 1e3))


def guard(srv):
    return srv.health()["guard"]


def wait_guard(srv, keys, want, what):
    """Waits (the snapshot refreshes every --monitor-interval) until the sum
    of guard counters `keys` reaches want; checks it is exactly want."""
    deadline = time.monotonic() + 3 * H.slow_factor()
    got = None
    while time.monotonic() < deadline:
        g = guard(srv)
        got = sum(g[k] for k in keys)
        if got >= want:
            break
        time.sleep(0.05)
    H.check_eq(got, want, what)
    return g


def settle_fds(srv, baseline, what):
    deadline = time.monotonic() + 10 * H.slow_factor()
    n = srv.fd_count()
    while n > baseline and time.monotonic() < deadline:
        time.sleep(0.1)
        n = srv.fd_count()
    H.check(n <= baseline, "server fds %d after %s, baseline %d" % (n, what, baseline))


def case_rapid_reset(srv):
    base = srv.fd_count()
    watch = HealthWatch(srv)
    watch.start()
    c = RawH2(srv)
    block = get_block(srv.authority(), "/health")
    sid, pairs = 1, 0
    while not c.closed and c.goaway is None and pairs < 20000:
        burst = b""
        for _ in range(50):
            burst += frame(HEADERS, END_STREAM | END_HEADERS, sid, block)
            burst += frame(RST_STREAM, 0, sid, struct.pack(">I", 0x8))  # CANCEL
            sid += 2
            pairs += 1
        c.send(burst)
        c.poll()
    c.wait_closed(5 * H.slow_factor())
    watch.finish("rapid reset")
    print("  rapid reset: %d open+reset pairs sent; GOAWAY %r; closed %s"
          % (pairs, c.goaway, c.closed))
    H.check_eq(c.goaway, ENHANCE_YOUR_CALM, "GOAWAY error code")
    H.check(c.closed, "connection closed after GOAWAY")
    c.close()
    wait_guard(srv, ["h2_rapid_reset"], 1, "guard.h2_rapid_reset")
    settle_fds(srv, base, "rapid reset")


def case_continuation_flood(srv):
    base = srv.fd_count()
    watch = HealthWatch(srv)
    watch.start()
    c = RawH2(srv)
    block = get_block(srv.authority(), "/health")
    c.send(frame(HEADERS, END_STREAM, 1, block[:4]))  # no END_HEADERS: the block goes on
    sent = 0
    while not c.closed and c.goaway is None and sent < 100000:
        if not c.send(frame(CONTINUATION, 0, 1) * 500):
            break
        sent += 500
        c.poll()
    c.wait_closed(5 * H.slow_factor())
    watch.finish("CONTINUATION flood")
    print("  CONTINUATION flood: %d frames sent; GOAWAY %r" % (sent, c.goaway))
    H.check_eq(c.goaway, ENHANCE_YOUR_CALM, "GOAWAY error code")
    c.close()
    wait_guard(srv, ["h2_continuation_flood"], 1, "guard.h2_continuation_flood")
    settle_fds(srv, base, "CONTINUATION flood")


def case_ping_and_settings_floods(srv):
    """Clients that flood control frames and never read what comes back."""
    base = srv.fd_count()
    watch = HealthWatch(srv)
    watch.start()
    conns = []
    for kind in ("ping", "settings"):
        c = RawH2(srv)
        f = frame(PING, 0, 0, b"12345678") if kind == "ping" else \
            frame(SETTINGS, 0, 0, struct.pack(">HI", 0x3, 100))
        for _ in range(40):
            if not c.send(f * 250):
                break
        conns.append((kind, c))
    for kind, c in conns:
        H.check(c.wait_closed(10 * H.slow_factor()), "%s flood: connection not closed" % kind)
        c.close()
    watch.finish("PING and SETTINGS floods")
    g = wait_guard(srv, ["h2_control_flood", "h2_ack_flood"], 2,
                   "flooding connections ended with ENHANCE_YOUR_CALM")
    print("  floods calmed: control %d, unread ACKs %d" % (g["h2_control_flood"],
                                                           g["h2_ack_flood"]))
    settle_fds(srv, base, "floods")


def publish_bulk(srv, sid, events, size):
    sock = H.connect(srv.host, srv.port, timeout=20)
    reader = H.Http1Reader(sock)
    data = "z" * size
    batch = min(50, events)
    try:
        for first in range(1, events + 1, batch):
            body = "".join('{"data":"%s"}\n' % data for _ in range(batch)).encode()
            sock.sendall(H.build_http1("POST", "/v1/sessions/%s/events" % sid,
                                       headers=[("Content-Type", "application/x-ndjson")],
                                       body=body))
            r = reader.read_response()
            H.check_eq(r.status, 200, "publish status")
    finally:
        sock.close()


def case_closed_window(srv):
    """Clients that never send WINDOW_UPDATE: their streams stop at the
    initial 64 KiB window; nothing else grows."""
    sid, events, size = "zero-window", 1000, 6000
    publish_bulk(srv, sid, 1, size)  # the session and its log file exist before the baseline
    base = srv.fd_count()
    rss0 = srv.proc_status("VmRSS") * 1024
    stuck = []
    for _ in range(20):
        c = RawH2(srv)
        c.send(frame(HEADERS, END_STREAM | END_HEADERS, 1,
                     get_block(srv.authority(), "/v1/sessions/%s/events?from=1" % sid)))
        stuck.append(c)
    big = 1 << 30  # the normal subscriber opens its windows wide
    sub = RawH2(srv, settings=struct.pack(">HI", 0x4, big))
    sub.send(frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", big)))
    sub.send(frame(HEADERS, END_STREAM | END_HEADERS, 1,
                   get_block(srv.authority(), "/v1/sessions/%s/events?from=1" % sid)))
    watch = HealthWatch(srv, every=0.1)
    watch.start()
    pub = threading.Thread(target=publish_bulk, args=(srv, sid, events, size), daemon=True)
    pub.start()
    rss_peak = rss0
    deadline = time.monotonic() + 60 * H.slow_factor()
    want = (events + 1) * size
    next_stuck = 0.0
    while (pub.is_alive() or sub.data_bytes < want) and time.monotonic() < deadline:
        sub.poll(0.05)
        if time.monotonic() >= next_stuck:
            for c in stuck:
                c.poll()  # read (the kernel acks), never open the window
            rss_peak = max(rss_peak, srv.proc_status("VmRSS") * 1024)
            next_stuck = time.monotonic() + 0.3
    pub.join(5)
    watch.finish("20 closed-window clients")
    H.check(sub.data_bytes >= want, "normal subscriber got %d of >= %d payload bytes"
            % (sub.data_bytes, want))
    rows = H.http1_request(srv.host, srv.port, "GET",
                           "/debug/connections?sort=lag&limit=30").json()["rows"]
    lagging = [r for r in rows if r["lag_events"] > events // 2]
    H.check(len(lagging) >= 20, "closed-window clients not shown lagging: %r" % rows[:3])
    outq_max = max(r["outq_bytes"] for r in lagging)
    stuck_bytes = max(c.data_bytes for c in stuck)
    h = srv.health()
    print("  closed-window clients: %d bytes each at most (window 65535); outq max %d; "
          "lag %d events; RSS %d -> peak %d MiB"
          % (stuck_bytes, outq_max, min(r["lag_events"] for r in lagging), rss0 >> 20,
             rss_peak >> 20))
    H.check(stuck_bytes <= 65535 + 16384, "a closed-window client got %d bytes" % stuck_bytes)
    H.check(outq_max <= 4 << 20, "closed-window output %d beyond the connection bound" % outq_max)
    H.check(rss_peak <= rss0 + RSS_GROWTH_MAX, "RSS grew from %d to %d MiB"
            % (rss0 >> 20, rss_peak >> 20))
    wd = h["watchdog"]
    H.check_eq(wd["reaped_send_stall"] + wd["reaped_paused"] + wd["reaped_peer_closed"], 0,
               "watchdog reaps of closed-window clients")
    for c in stuck + [sub]:
        c.close()
    settle_fds(srv, base, "closed-window clients")


def main():
    suite = H.Suite("test_abuse_h2")
    env = SANITIZER_ENV if H.sanitizer_build() else None
    # --session-idle 1: once the clients left, the session hibernates and
    # closes its log files, so fds can return to the baseline.
    args = ["--workers", "2", "--watchdog-interval", "0.5", "--dead-peer-grace", "3",
            "--session-idle", "1"]
    for fn in (case_rapid_reset, case_continuation_flood, case_ping_and_settings_floods,
               case_closed_window):
        def case(fn=fn):
            with H.Server(args=args, env=env) as srv:
                fn(srv)
                srv.assert_healthy(fn.__name__)
        case.__name__ = "test_abuse_" + fn.__name__[5:]
        suite.case(case)
    suite.run()


if __name__ == "__main__":
    main()
