"""Process lifecycle: port-0 discovery through the ready file and the
msg=listening line, and graceful stop on SIGTERM/SIGINT — under load,
with idle connections open — exiting 0 within --shutdown-grace with a
clean sanitizer report."""

import os
import re
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sluice_harness as H  # noqa: E402

suite = H.Suite("test_shutdown")
H.require_tools("h2load")

GRACE_S = 5
# Exiting "within the grace" leaves this much for process teardown (thread
# joins, sanitizer leak check) after the last connection is gone.
EXIT_SLACK_S = 1.5


def grace_server():
    return H.Server(args=["--shutdown-grace", str(GRACE_S)])


def check_stopped(srv, code, took, what):
    print("  %s: exit %r after %.2fs" % (what, code, took))
    H.check(code is not None, "%s: server still running %.0fs after the signal (killed)"
            % (what, took))
    H.check_eq(code, 0, "%s: exit code" % what)
    limit = GRACE_S + EXIT_SLACK_S * H.slow_factor()
    H.check(took <= limit, "%s: exit took %.2fs, grace %ds (+%.1fs slack)"
            % (what, took, GRACE_S, limit - GRACE_S))
    H.check(srv.log_lines("stopped"), "%s: no msg=stopped line; stderr tail:\n%s"
            % (what, srv.stderr_text()[-1500:]))
    err = srv.stderr_text()
    H.check(not H.sanitizer_reports(err), "%s: sanitizer report:\n%s" % (what, err[-6000:]))
    if H.sanitizer_build():
        print("  sanitizer build: stderr checked for ASan/UBSan/LSan reports")


@suite.case
def test_ready_file_and_listening_line():
    with H.Server() as a, H.Server() as b:
        for srv in (a, b):
            with open(srv.ready_file) as f:
                text = f.read()
            H.check(re.fullmatch(r"http=127\.0\.0\.1:\d+\n?", text) is not None,
                    "ready file content %r" % text)
            H.check(srv.port > 0, "ready file port %d" % srv.port)
            lines = srv.log_lines("listening")
            H.check_eq(len(lines), 1, "msg=listening lines")
            m = re.search(r"(^|\s)http=(\S+)", lines[0])
            H.check(m is not None, "listening line lacks http=: %r" % lines[0])
            H.check_eq(m.group(2), "127.0.0.1:%d" % srv.port, "listening http= vs ready file")
            H.check(not os.path.exists(srv.ready_file + ".tmp"), "ready file temp left behind")
            srv.health()
        H.check(a.port != b.port, "two port-0 servers got the same port %d" % a.port)


@suite.case
def test_sigterm_idle():
    with grace_server() as srv:
        srv.health()
        code, took = srv.stop(signal.SIGTERM, timeout=GRACE_S + 15)
        check_stopped(srv, code, took, "SIGTERM idle")
        H.check(took < 2.0 * H.slow_factor(), "idle server took %.2fs to stop" % took)


@suite.case
def test_sigint_idle():
    with grace_server() as srv:
        srv.health()
        code, took = srv.stop(signal.SIGINT, timeout=GRACE_S + 15)
        check_stopped(srv, code, took, "SIGINT idle")


@suite.case
def test_sigterm_under_h2load():
    with grace_server() as srv:
        load = subprocess.Popen(["h2load", "-n", "2000000", "-c", "50", "-m", "10", "-t", "1",
                                 srv.url("/health")], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)
        try:
            time.sleep(1.0)
            H.check(load.poll() is None, "h2load finished before the signal; raise -n")
            h = srv.health()
            H.check(h["connections"] >= 50, "connections=%r during load" % h["connections"])
            code, took = srv.stop(signal.SIGTERM, timeout=GRACE_S + 15)
            out, _ = load.communicate(timeout=30)
        finally:
            if load.poll() is None:
                load.kill()
                load.wait(timeout=10)
        check_stopped(srv, code, took, "SIGTERM under h2load")
        text = out.decode("utf-8", "replace")
        res = H.parse_h2load(text) if "requests:" in text else {}
        print("  h2load at shutdown: %s" % {k: res.get(k) for k in ("done", "succeeded", "failed", "errored")})
        # Responses the server did send must be whole: no 5xx, and everything done succeeded.
        if res:
            H.check_eq(res.get("5xx", 0), 0, "5xx responses during shutdown")
            H.check(res["succeeded"] > 0, "no request succeeded before the signal")


@suite.case
def test_sigterm_finishes_accepted_h2_streams():
    # A client keeps 10 streams in flight while SIGTERM arrives. Every stream
    # the server accepted (id <= GOAWAY's last_stream_id) must end with a
    # whole 200 response; later ones must not have been processed.
    h2 = H.h2_modules()
    with grace_server() as srv:
        cfg = h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        conn = h2.connection.H2Connection(config=cfg)
        s = H.connect(srv.host, srv.port, timeout=GRACE_S + 10)
        streams = {}  # id -> {"status", "body", "ended", "reset"}
        conn.initiate_connection()
        t_signal = time.monotonic() + 0.5
        signalled, last_sid, closed = False, None, False
        deadline = time.monotonic() + GRACE_S + 10
        try:
            while not closed and time.monotonic() < deadline:
                if last_sid is None:
                    top_up(conn, streams, srv.authority(), 10)
                try:
                    s.sendall(conn.data_to_send())
                except OSError:
                    pass  # the server closed its side; read what it sent first
                if not signalled and time.monotonic() >= t_signal:
                    srv.send_signal(signal.SIGTERM)
                    signalled = True
                data = recv_or_empty(s)
                closed = not data
                for ev in (conn.receive_data(data) if data else []):
                    last_sid = on_event(conn, ev, streams, last_sid)
        finally:
            s.close()
        code = srv.wait(GRACE_S + 15)
        srv.stop_result = (code, 0.0)
        H.check(signalled, "SIGTERM was never sent")
        H.check(last_sid is not None, "no GOAWAY before the connection closed")
        accepted = [sid for sid in streams if sid <= last_sid]
        H.check(len(accepted) > 0, "no stream accepted before GOAWAY")
        bad = [(sid, st) for sid, st in streams.items() if sid <= last_sid
               and not (st["ended"] and st["status"] == 200 and st["reset"] is None)]
        H.check(not bad, "%d of %d accepted streams not answered in full, e.g. %s"
                % (len(bad), len(accepted), bad[:3]))
        late = [sid for sid, st in streams.items() if sid > last_sid and st["status"]]
        H.check(not late, "streams above last_stream_id %d were answered: %s" % (last_sid, late[:5]))
        print("  %d streams answered before GOAWAY(last_stream_id=%d)" % (len(accepted), last_sid))
        H.check_eq(code, 0, "exit code")


def top_up(conn, streams, authority, depth):
    open_now = sum(1 for st in streams.values() if not st["ended"] and st["reset"] is None)
    for _ in range(depth - open_now):
        sid = conn.get_next_available_stream_id()
        conn.send_headers(sid, [(":method", "GET"), (":path", "/health"), (":scheme", "http"),
                                (":authority", authority)], end_stream=True)
        streams[sid] = {"status": None, "body": b"", "ended": False, "reset": None}


def recv_or_empty(s):
    try:
        return s.recv(65536)
    except (ConnectionResetError, socket.timeout):
        return b""


def on_event(conn, ev, streams, last_sid):
    """Records one h2 event; returns the GOAWAY last_stream_id seen so far."""
    E = H.h2_modules().events
    st = streams.get(getattr(ev, "stream_id", None))
    if isinstance(ev, E.ResponseReceived) and st is not None:
        st["status"] = int(dict(ev.headers)[":status"])
    elif isinstance(ev, E.DataReceived) and st is not None:
        st["body"] += ev.data
        conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
    elif isinstance(ev, E.StreamEnded) and st is not None:
        st["ended"] = True
    elif isinstance(ev, E.StreamReset) and st is not None:
        st["reset"] = int(ev.error_code)
    elif isinstance(ev, E.ConnectionTerminated):
        return ev.last_stream_id if ev.last_stream_id is not None else 0
    return last_sid


@suite.case
def test_sigterm_with_idle_keepalive_connections():
    # Idle keep-alive (HTTP/1.1) and idle h2 connections must not hold the
    # process past the grace, and h2 clients should learn of it by GOAWAY.
    with grace_server() as srv:
        h1 = H.connect(srv.host, srv.port, timeout=GRACE_S + 10)
        h1.sendall(H.build_http1("GET", "/health", srv.host))
        H.check_eq(H.Http1Reader(h1).read_response().status, 200, "h1 keep-alive warm-up")
        h2s = H.connect(srv.host, srv.port, timeout=GRACE_S + 10)
        h2s.sendall(H.h2_prebuilt_get("/health", srv.authority()))
        time.sleep(0.3)
        srv.send_signal(signal.SIGTERM)
        t0 = time.monotonic()
        goaway, h2_closed = watch_h2(h2s, GRACE_S + 5)
        h1_closed = wait_closed(h1, GRACE_S + 5)
        code = srv.wait(GRACE_S + 15)
        took = time.monotonic() - t0
        h1.close()
        h2s.close()
        srv.stop_result = (code, took)
        check_stopped(srv, code, took, "SIGTERM with idle connections")
        H.check(h1_closed, "idle HTTP/1.1 connection was not closed by the server")
        H.check(h2_closed, "idle h2 connection was not closed by the server")
        H.check(goaway is not None, "idle h2 connection got no GOAWAY before the close")
        H.check_eq(goaway, 0, "GOAWAY error code on shutdown (NO_ERROR)")


def watch_h2(s, timeout):
    """Reads h2 frames until close; returns (last GOAWAY code or None, closed)."""
    s.settimeout(timeout)
    buf, goaway = b"", None
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return goaway, True
            frames, buf = H.h2_frames(buf + chunk)
            for ftype, _, _, payload in frames:
                if ftype == H.H2_FRAME_GOAWAY:
                    goaway = int.from_bytes(payload[4:8], "big")
    except ConnectionResetError:
        return goaway, True
    except socket.timeout:
        return goaway, False


def wait_closed(s, timeout):
    s.settimeout(timeout)
    try:
        while s.recv(65536):
            pass
        return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


@suite.case
def test_no_accept_after_sigterm():
    # While draining (a connection keeps it busy), new connections are refused.
    with grace_server() as srv:
        hold = H.connect(srv.host, srv.port, timeout=GRACE_S + 10)
        hold.sendall(H.build_http1("GET", "/health", srv.host))
        H.Http1Reader(hold).read_response()
        port = srv.port
        srv.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        refused = False
        if srv.alive():
            try:
                c = socket.create_connection((srv.host, port), timeout=2)
                c.settimeout(2)
                c.sendall(H.build_http1("GET", "/health", srv.host, close=True))
                data = c.recv(100)
                c.close()
                refused = not data.startswith(b"HTTP/1.1 200")
            except OSError:
                refused = True
        else:
            refused = True
        hold.close()
        code = srv.wait(GRACE_S + 15)
        srv.stop_result = (code, 0.0)
        H.check(refused, "a new connection was served after SIGTERM")
        H.check_eq(code, 0, "exit code")


suite.run()
