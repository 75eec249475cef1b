"""TLS handshake limits, certificate reload and start-up refusals.

- a stalled handshake (half a record) is closed at --header-timeout;
- garbage after a handshake record header gets an alert and a close, and
  40 seeded variants (any record length, random bytes, a ClientHello cut
  short or followed by junk, some closed with RST) leave the server healthy;
- clients that send a real ClientHello and never read are closed by the
  header timeout too; open fds return to the baseline;
- a TLS h2 subscriber that stops reading holds a bounded amount of output
  while 6 MB are published, then gets every event in order when it reads;
- SIGHUP with new certificate files: a new connection gets the new
  certificate while an h2 connection opened before keeps working; a reload
  of a broken file logs an error and keeps the current certificate;
- a key that does not match the certificate, a missing file, a
  certificate without a key and --tls-ktls on (no kTLS in this kernel, and
  no offload implemented) each exit 2 with a clear message.
"""

import os
import random
import signal
import socket
import ssl
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sluice_harness as H  # noqa: E402
import tls_lib as T  # noqa: E402

HEADER_TIMEOUT = 1.0


def client_hello():
    """A real ClientHello, from an in-memory python ssl client."""
    ctx = ssl.create_default_context()
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


def closed_within(sock, timeout):
    """Reads until EOF; returns the seconds it took (fails at timeout)."""
    t0 = time.monotonic()
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    except socket.timeout:
        raise H.TestFailure("connection still open after %.1fs" % timeout)
    return time.monotonic() - t0


def case_stalled_and_garbage(srv, pki):
    base = srv.fd_count()
    hello = client_hello()
    s = socket.create_connection((srv.host, srv.port))
    s.sendall(hello[: len(hello) // 2])
    took = closed_within(s, 10 * H.slow_factor())
    H.check(took >= HEADER_TIMEOUT * 0.7, "stalled handshake closed by the timeout, not at once (%.2fs)"
            % took)
    s.close()
    g = socket.create_connection((srv.host, srv.port))
    g.sendall(b"\x16\x03\x01\x00\x40" + b"\x41" * 64)
    g.settimeout(5)
    first = g.recv(7)
    H.check(first[:1] == b"\x15", "garbage ClientHello answered with an alert: %r" % first)
    closed_within(g, 5)
    g.close()
    # Seeded garbage: record headers with any length, then random bytes, a
    # real ClientHello cut short or followed by junk; each ends in a close.
    rnd = random.Random(1234)
    for i in range(40):
        if i % 4 == 0:
            payload = hello[: rnd.randrange(1, len(hello))]
        elif i % 4 == 1:
            payload = hello + bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 600)))
        else:
            payload = (b"\x16\x03" + bytes([rnd.randrange(5)]) + rnd.randrange(65536).to_bytes(2, "big")
                       + bytes(rnd.randrange(256) for _ in range(rnd.randrange(0, 3000))))
        z = socket.create_connection((srv.host, srv.port))
        try:
            z.sendall(payload)
        except OSError:
            pass
        if i % 2:
            z.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        z.close()
    # Clients that never read: a real ClientHello, then silence.
    quiet = []
    for _ in range(20):
        q = socket.socket()
        q.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        q.connect((srv.host, srv.port))
        q.sendall(hello)
        quiet.append(q)
    time.sleep(HEADER_TIMEOUT * 2.5)
    for q in quiet:
        closed_within(q, 5 * H.slow_factor())
        q.close()
    h = srv.assert_healthy("handshake abuse")
    H.check(h["tls"]["handshake_failures"] >= 1, "failures counted: %r" % h["tls"])
    H.check(h["http"]["closed_header_timeout"] >= 21, "header timeouts counted: %r" % h["http"])
    deadline = time.monotonic() + 5
    while srv.fd_count() > base and time.monotonic() < deadline:
        time.sleep(0.05)
    H.check_eq(srv.fd_count(), base, "open fds back to the baseline")


class H2Tls:
    """A python-h2 client on one TLS connection (ALPN h2)."""

    def __init__(self, srv, pki):
        import h2.config
        import h2.connection
        self.sock = T.tls_connect(pki, srv.host, srv.port, alpn=("h2",))
        H.check_eq(self.sock.selected_alpn_protocol(), "h2", "ALPN h2")
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        self.sock.sendall(self.conn.data_to_send())
        self.authority = "localhost:%d" % srv.port

    def get(self, path):
        import h2.events
        sid = self.conn.get_next_available_stream_id()
        self.conn.send_headers(sid, [(":method", "GET"), (":scheme", "https"),
                                     (":authority", self.authority), (":path", path)],
                               end_stream=True)
        self.sock.sendall(self.conn.data_to_send())
        status, body = None, b""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            data = self.sock.recv(65536)
            H.check(data, "h2 connection closed")
            for ev in self.conn.receive_data(data):
                if isinstance(ev, h2.events.ResponseReceived) and ev.stream_id == sid:
                    status = int(dict(ev.headers)[b":status"])
                elif isinstance(ev, h2.events.DataReceived) and ev.stream_id == sid:
                    body += ev.data
                    self.conn.acknowledge_received_data(ev.flow_controlled_length, sid)
                elif isinstance(ev, h2.events.StreamEnded) and ev.stream_id == sid:
                    self.sock.sendall(self.conn.data_to_send())
                    return status, body
            self.sock.sendall(self.conn.data_to_send())
        raise H.TestFailure("no h2 response for %s" % path)


def serial_of_new_connection(srv, pki):
    s = T.tls_connect(pki, srv.host, srv.port)
    n = T.peer_serial(s)
    s.close()
    return n


def wait_log(srv, msg, count):
    deadline = time.monotonic() + 10
    while len(srv.log_lines(msg)) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    H.check(len(srv.log_lines(msg)) >= count, "log %r seen %d times" % (msg, count))


def case_reload(srv, pki):
    old = H2Tls(srv, pki)
    H.check_eq(T.peer_serial(old.sock), 1, "first certificate")
    H.check_eq(old.get("/health")[0], 200, "h2 over TLS before the reload")
    chain, key = pki.server_cert("second", 2)
    for src, dst in ((chain, srv.tls_cert), (key, srv.tls_key)):
        with open(src, "rb") as f, open(dst + ".new", "wb") as o:
            o.write(f.read())
        os.rename(dst + ".new", dst)
    srv.send_signal(signal.SIGHUP)
    wait_log(srv, "tls reloaded", 1)
    H.check_eq(serial_of_new_connection(srv, pki), 2, "a new connection gets the new certificate")
    status, body = old.get("/health")
    H.check_eq(status, 200, "the old h2 connection still works after the reload")
    H.check(b'"reloads":1' in body, "reload counted: %r" % body[:300])
    with open(srv.tls_cert, "wb") as f:
        f.write(b"-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
    srv.send_signal(signal.SIGHUP)
    wait_log(srv, "tls reload failed, keeping the current certificate", 1)
    H.check_eq(serial_of_new_connection(srv, pki), 2, "a failed reload keeps the certificate")
    H.check_eq(old.get("/health")[0], 200, "the old connection after a failed reload")
    H.check_eq(srv.health()["tls"]["reload_failures"], 1, "reload failure counted")
    old.sock.close()


def case_stalled_reader(srv, pki):
    """A TLS h2 subscriber that stops reading pins a bounded amount of
    output (plaintext queue + ciphertext queue + stream buffer), publishers
    go on, and once it reads again it gets every event in order."""
    import h2.config
    import h2.connection
    import h2.events
    import h2.settings
    n_events, size = 300, 20000
    r = H.http1_request(srv.host, srv.port, "PUT", "/v1/sessions/slow")
    H.check_eq(r.status, 201, "PUT")
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.connect((srv.host, srv.port))
    s = T.client_context(pki, ("h2",)).wrap_socket(raw, server_hostname="localhost")
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: (1 << 31) - 1})
    conn.increment_flow_control_window((1 << 31) - 1 - 65535)
    conn.send_headers(1, [(":method", "GET"), (":scheme", "https"),
                          (":authority", "localhost"), (":path", "/v1/sessions/slow/events")],
                      end_stream=True)
    s.sendall(conn.data_to_send())
    deadline = time.monotonic() + 10
    while H.http1_request(srv.host, srv.port, "GET", "/v1/sessions/slow").json()["subscribers"] != 1:
        H.check(time.monotonic() < deadline, "subscriber registered")
        time.sleep(0.05)
    port = s.getsockname()[1]
    for i in range(n_events):
        r = H.http1_request(srv.host, srv.port, "POST", "/v1/sessions/slow/events",
                            body=(b"%06d" % i) * (size // 6))
        H.check_eq(r.status, 200, "publish %d while the TLS reader is stalled" % i)
    time.sleep(0.5)
    rows = H.http1_request(srv.host, srv.port, "GET", "/debug/connections?limit=1000").json()
    rows = rows["rows"]
    mine = [c for c in rows if c.get("peer", "").endswith(":%d" % port)]
    H.check(len(mine) == 1, "the stalled reader in /debug/connections: %r" % rows)
    held = mine[0]["outq_bytes"]
    H.check(0 < held <= 1536 * 1024, "output held for the stalled TLS reader is bounded: %d "
            "bytes of %d published" % (held, n_events * size))
    print("     stalled TLS reader holds %d bytes of output; %d published" % (held, n_events * size))
    body = b""
    seen = 0
    deadline = time.monotonic() + 30
    s.settimeout(10)
    while seen < n_events and time.monotonic() < deadline:
        data = s.recv(65536)
        H.check(data, "connection open while catching up")
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.DataReceived):
                body += ev.data
                conn.acknowledge_received_data(ev.flow_controlled_length, 1)
        s.sendall(conn.data_to_send())
        seen = body.count(b"\n\n")
    ids = [int(l[4:]) for l in body.split(b"\n") if l.startswith(b"id: ")]
    H.check_eq(ids, list(range(1, n_events + 1)), "every event once, in order, after the stall")
    s.close()


def case_refused_at_start(pki):
    chain, key = pki.server_cert("third", 3)
    _, other_key = pki.server_cert("fourth", 4)
    bad = [
        (["--tls-cert", chain, "--tls-key", other_key], "does not match"),
        (["--tls-cert", pki.path("missing.pem"), "--tls-key", key], "No such file"),
        (["--tls-cert", chain], "--tls-cert and --tls-key go together"),
        (["--tls-cert", key, "--tls-key", key], "--tls-cert"),
        (["--tls-cert", chain, "--tls-key", key, "--tls-ktls", "on"], "kTLS"),
    ]
    for args, want in bad:
        r = H.run([H.sluiced_path(), "--listen", "127.0.0.1:0", "--data-dir",
                   pki.path("data")] + args, timeout=20)
        err = r.stderr.decode(errors="replace")
        H.check_eq(r.returncode, 2, "exit code for %r (stderr %r)" % (args, err))
        H.check(want in err, "message for %r names %r: %r" % (args, want, err))


def main():
    H.require_tools("openssl")
    pki = T.Pki()
    failed = 0
    t0 = time.monotonic()
    try:
        case_refused_at_start(pki)
        print("ok   case_refused_at_start (%.1fs)" % (time.monotonic() - t0))
    except H.TestFailure as e:
        failed += 1
        print("FAIL case_refused_at_start: %s" % e)
    for fn in (case_stalled_and_garbage, case_reload, case_stalled_reader):
        t0 = time.monotonic()
        args = ["--header-timeout", str(HEADER_TIMEOUT), "--max-conn-output-bytes", "256k",
                "--tcp-notsent-lowat", "16k"]
        with T.tls_server(pki, args=args) as srv:
            try:
                fn(srv, pki)
                print("ok   %s (%.1fs)" % (fn.__name__, time.monotonic() - t0))
            except H.TestFailure as e:
                failed += 1
                print("FAIL %s: %s" % (fn.__name__, e))
    print("test_tls_limits: %d failed" % failed)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
