"""Shared harness for sluice's integration tests.

Each tests/integration/test_*.py is one ctest case run as
`/usr/bin/python3 test_x.py` with SLUICED (the server binary),
SLUICE_BUILD_DIR and SLUICE_SOURCE_DIR in the environment. This module
starts the real binary on port 0 with a temporary data dir, discovers the
port through the ready file, speaks HTTP/1.1 and HTTP/2 to it, and always
stops it, failing the test when the server's stderr holds a sanitizer
report.

Every subprocess and socket here has a timeout: a hung server fails the
test, it never hangs it.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

SKIP_EXIT = 77  # the conventional "skipped" exit code (automake, ctest SKIP_RETURN_CODE)

SANITIZER_MARKERS = (
    "ERROR: AddressSanitizer",
    "ERROR: LeakSanitizer",
    "LeakSanitizer",
    "runtime error:",
    "WARNING: ThreadSanitizer",
    "ThreadSanitizer:",
)

READY_TIMEOUT_S = 20.0   # sanitizer builds start slowly
STOP_TIMEOUT_S = 20.0
# SLUICE_* variables of the test's environment that reach sluiced; every
# other one is dropped so a developer's shell cannot change a test. The
# thread-mode twins let ctest re-run a test in another mode
# (tests/CMakeLists.txt: the *_pool variants).
PASS_ENV = ("SLUICE_SANITIZER", "SLUICE_WORKERS", "SLUICE_REACTORS")


class TestFailure(AssertionError):
    pass


def check(cond, what):
    """Fails the current case with `what` unless cond holds."""
    if not cond:
        raise TestFailure(what)


def check_eq(got, want, what):
    if got != want:
        raise TestFailure("%s: expected %r, got %r" % (what, want, got))


def sluiced_path():
    path = os.environ.get("SLUICED")
    if not path:
        build = os.environ.get("SLUICE_BUILD_DIR", "")
        path = os.path.join(build, "sluiced") if build else ""
    if not path or not os.access(path, os.X_OK):
        print("SLUICED is not set to an executable sluiced binary (got %r)" % path)
        sys.exit(1)
    return path


def sanitizer_build():
    """True when the binary under test is a sanitizer build: named so, told
    so (SLUICE_SANITIZER), or configured so in its build dir's CMake cache."""
    if "asan" in sluiced_path() or os.environ.get("SLUICE_SANITIZER"):
        return True
    cache = os.path.join(os.environ.get("SLUICE_BUILD_DIR", ""), "CMakeCache.txt")
    try:
        with open(cache) as f:
            text = f.read()
    except OSError:
        return False
    return "SLUICE_ASAN:BOOL=ON" in text or "SLUICE_TSAN:BOOL=ON" in text


def slow_factor():
    """Sanitizer builds are several times slower; scale waits, not loads."""
    return 3.0 if sanitizer_build() else 1.0


def run_sluice_load(load, args, json_path, timeout):
    """Runs the sluice-load binary at load with args, its JSON result in
    json_path, under the sanitizer settings and without SLUICE_* (the flags
    are the test's own); a sanitizer report fails the test. Returns (exit
    status, parsed JSON or None, output)."""
    if os.path.exists(json_path):
        os.unlink(json_path)
    env = default_sanitizer_env(dict(os.environ))
    env = {k: v for k, v in env.items() if not k.startswith("SLUICE_")}
    p = run([load, "--progress", "off", "--json", json_path] + list(args), timeout, env=env)
    out = (p.stdout + p.stderr).decode("utf-8", "replace")
    check(not sanitizer_reports(out), "sanitizer report from sluice-load:\n" + out)
    doc = None
    if os.path.exists(json_path):
        with open(json_path) as f:
            doc = json.load(f)
    return p.returncode, doc, out


def require_tools(*names):
    """Exits with SKIP_EXIT naming the missing tool(s) when any is absent."""
    missing = [n for n in names if shutil.which(n) is None]
    if missing:
        print("SKIP: missing tool(s): %s (install with tools/install-deps.sh test)"
              % " ".join(missing))
        sys.exit(SKIP_EXIT)


def run(cmd, timeout, env=None, input_bytes=None, cwd=None):
    """Runs cmd with a hard timeout; returns CompletedProcess (text output).
    A timeout is a test failure, not a hang."""
    try:
        return subprocess.run(cmd, capture_output=True, timeout=timeout, env=env,
                              input=input_bytes, cwd=cwd)
    except subprocess.TimeoutExpired as e:
        raise TestFailure("command timed out after %.0fs: %s" % (timeout, " ".join(cmd))) from e


def sanitizer_reports(text):
    return [m for m in SANITIZER_MARKERS if m in text]


def default_sanitizer_env(env):
    """Mirrors `make test`'s sanitizer options unless the caller set them."""
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=1")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    env.setdefault("TSAN_OPTIONS", "halt_on_error=1")
    return env


class Server:
    """One sluiced process on 127.0.0.1:0 with its own temp dir.

    Use as a context manager: on exit the process is stopped (SIGTERM, then
    SIGKILL), the temp dir removed, and TestFailure raised if stderr holds a
    sanitizer report. `args` are extra flags; `env` extra environment;
    `listen`/`data_dir`/`ready_file` flags are added unless `bare` is set
    (then the caller supplies everything, e.g. through env twins)."""

    def __init__(self, args=(), env=None, bare=False, name="sluiced", expect_clean_exit=True):
        self.binary = sluiced_path()
        self.tmp = tempfile.mkdtemp(prefix="sluice-it-")
        self.data_dir = os.path.join(self.tmp, "data")
        self.ready_file = os.path.join(self.tmp, "ready")
        self.stderr_path = os.path.join(self.tmp, "stderr.log")
        self.stdout_path = os.path.join(self.tmp, "stdout.log")
        self.args = list(args)
        self.extra_env = dict(env or {})
        self.bare = bare
        self.name = name
        self.proc = None
        self.host = None
        self.port = None
        self.exit_code = None
        self.expect_clean_exit = expect_clean_exit
        self.stop_result = None

    # -- lifecycle -------------------------------------------------------

    def command(self):
        cmd = [self.binary]
        if not self.bare:
            cmd += ["--listen", "127.0.0.1:0", "--data-dir", self.data_dir,
                    "--ready-file", self.ready_file]
        return cmd + self.args

    def start(self):
        env = default_sanitizer_env(dict(os.environ))
        env = {k: v for k, v in env.items() if not k.startswith("SLUICE_") or k in PASS_ENV}
        env.update(self.extra_env)
        self._err = open(self.stderr_path, "wb")
        self._out = open(self.stdout_path, "wb")
        self.proc = subprocess.Popen(self.command(), stdout=self._out, stderr=self._err,
                                     stdin=subprocess.DEVNULL, cwd=self.tmp, env=env)
        self._wait_ready()
        return self

    def _wait_ready(self):
        deadline = time.monotonic() + READY_TIMEOUT_S
        ready = self.extra_env.get("SLUICE_READY_FILE", self.ready_file)
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise TestFailure("%s exited with %d before ready; stderr:\n%s"
                                  % (self.name, self.proc.returncode, self.stderr_text()[-4000:]))
            addr = read_ready_file(ready)
            if addr:
                self.host, self.port = addr
                return
            time.sleep(0.02)
        raise TestFailure("%s not ready within %.0fs; stderr:\n%s"
                          % (self.name, READY_TIMEOUT_S, self.stderr_text()[-4000:]))

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def send_signal(self, sig):
        if self.alive():
            self.proc.send_signal(sig)

    def wait(self, timeout):
        """Waits for exit; returns the exit code or None on timeout."""
        try:
            self.exit_code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.exit_code

    def stop(self, sig=signal.SIGTERM, timeout=STOP_TIMEOUT_S):
        """Signals and waits; SIGKILL after timeout. Returns (code, seconds);
        code None when it had to be killed."""
        if self.proc is None:
            return (None, 0.0)
        if self.proc.poll() is not None:
            self.exit_code = self.proc.returncode
            return (self.exit_code, 0.0)
        t0 = time.monotonic()
        self.proc.send_signal(sig)
        code = self.wait(timeout)
        took = time.monotonic() - t0
        if code is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        return (code, took)

    def close(self):
        """Stops the process if it still runs; records how it ended."""
        if self.proc is None:
            pass
        elif self.proc.poll() is None:
            self.stop_result = self.stop()
        elif self.stop_result is None:
            self.stop_result = (self.proc.returncode, 0.0)
        for f in (getattr(self, "_err", None), getattr(self, "_out", None)):
            if f:
                f.close()

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise

    def __exit__(self, et, ev, tb):
        self.close()
        text = self.stderr_text()
        if et is not None:
            self._note_foreign_signal()
        reports = sanitizer_reports(text)
        keep = os.environ.get("SLUICE_KEEP_TMP")
        if reports or (et is not None and et is not TestFailure):
            keep = True
        if reports:
            sys.stdout.write("---- %s stderr (sanitizer report) ----\n%s\n" % (self.name, text[-20000:]))
        if not keep:
            shutil.rmtree(self.tmp, ignore_errors=True)
        else:
            sys.stdout.write("%s: logs and data kept in %s\n" % (self.name, self.tmp))
        if reports and et is None:
            raise TestFailure("%s stderr contains sanitizer report(s): %s (log kept in %s)"
                              % (self.name, ", ".join(reports), self.tmp))
        code, took = self.stop_result or (None, 0.0)
        if self.expect_clean_exit and et is None and code != 0:
            raise TestFailure("%s did not exit 0 when stopped: code %r after %.1fs; stderr tail:\n%s"
                              % (self.name, code, took, text[-3000:]))
        return False

    def _note_foreign_signal(self):
        """A failing test whose server was told to stop by another process
        (sluiced logs the sender's pid) says so: that failure is not the
        server's."""
        for line in self.log_lines("shutting down"):
            m = re.search(r"from_pid=(\d+)", line)
            if m and int(m.group(1)) not in (0, os.getpid()):
                sys.stdout.write("NOTE: %s was signalled by pid %s, not by this test: %s\n"
                                 % (self.name, m.group(1), line))

    # -- observation -----------------------------------------------------

    def stderr_text(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_lines(self, msg):
        """Logfmt lines whose msg= equals msg (quoted or not)."""
        pat = re.compile(r'(^|\s)msg=("%s"|%s)(\s|$)' % (re.escape(msg), re.escape(msg)))
        return [l for l in self.stderr_text().splitlines() if pat.search(l)]

    def url(self, path="/"):
        return "http://%s:%d%s" % (self.host, self.port, path)

    def authority(self):
        return "%s:%d" % (self.host, self.port)

    def fd_count(self):
        return len(os.listdir("/proc/%d/fd" % self.pid))

    def proc_status(self, key):
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
        return None

    def health(self, timeout=5.0):
        """GET /health over HTTP/1.1; returns the decoded JSON (asserts 200)."""
        r = http1_request(self.host, self.port, "GET", "/health", timeout=timeout)
        check_eq(r.status, 200, "GET /health status")
        return json.loads(r.body)

    def assert_healthy(self, what=""):
        check(self.alive(), "server died%s; stderr tail:\n%s"
              % (" after " + what if what else "", self.stderr_text()[-4000:]))
        h = self.health()
        check(isinstance(h, dict) and "uptime_s" in h, "/health is not the expected JSON after %s" % what)
        return h

    def rpc_addrs(self):
        """The `rpc=` lines of the ready file, in flag order: "HOST:PORT" or
        "unix:PATH" each. The file is written whole (renamed into place), so
        an empty list means the server has no RPC listener."""
        ready = self.extra_env.get("SLUICE_READY_FILE", self.ready_file)
        with open(ready) as f:
            return [l[4:].strip() for l in f.read().splitlines() if l.startswith("rpc=")]


def read_ready_file(path):
    """Returns (host, port) from an `http=HOST:PORT` line, or None."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("http="):
            host, _, port = line[5:].strip().rpartition(":")
            if host and port.isdigit():
                return (host.strip("[]"), int(port))
    return None


# -- HTTP/1.1 over raw sockets ---------------------------------------------

class Response:
    def __init__(self, status, reason, headers, body, version):
        self.status = status
        self.reason = reason
        self.headers = headers      # list of (lowercase name, value)
        self.body = body
        self.version = version

    def header(self, name):
        name = name.lower()
        for k, v in self.headers:
            if k == name:
                return v
        return None

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "<Response %s %d %r>" % (self.version, self.status, self.body[:200])


class ConnectionClosed(Exception):
    pass


class Http1Reader:
    """Incremental HTTP/1.1 response parser over a blocking socket with a
    timeout. Handles Content-Length, chunked, and close-delimited bodies."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionClosed("peer closed after %d buffered bytes" % len(self.buf))
        self.buf += data

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def _exact(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_response(self, head_request=False):
        status_line = self._line().decode("latin-1")
        m = re.match(r"^(HTTP/\d\.\d) (\d{3})(?: (.*))?$", status_line)
        if not m:
            raise TestFailure("bad status line %r" % status_line)
        headers = []
        while True:
            line = self._line()
            if not line:
                break
            k, _, v = line.decode("latin-1").partition(":")
            headers.append((k.strip().lower(), v.strip()))
        r = Response(int(m.group(2)), m.group(3) or "", headers, b"", m.group(1))
        r.body = self._body(r, head_request)
        return r

    def _body(self, r, head_request):
        if head_request or r.status in (204, 304) or 100 <= r.status < 200:
            return b""
        te = (r.header("transfer-encoding") or "").lower()
        if "chunked" in te:
            out = b""
            while True:
                size = int(self._line().split(b";")[0], 16)
                if size == 0:
                    while self._line():
                        pass
                    return out
                out += self._exact(size)
                self._line()
        cl = r.header("content-length")
        if cl is not None:
            return self._exact(int(cl))
        try:
            while True:
                self._fill()
        except ConnectionClosed:
            out, self.buf = self.buf, b""
            return out


def connect(host, port, timeout=5.0):
    s = socket.create_connection((host, port), timeout=timeout)
    s.settimeout(timeout)
    return s


def build_http1(method, path, host="localhost", headers=(), body=b"", close=False):
    lines = ["%s %s HTTP/1.1" % (method, path), "Host: %s" % host]
    for k, v in headers:
        lines.append("%s: %s" % (k, v))
    if body or method in ("POST", "PUT"):
        lines.append("Content-Length: %d" % len(body))
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def http1_request(host, port, method, path, headers=(), body=b"", timeout=5.0):
    """One request on a fresh connection; returns Response."""
    s = connect(host, port, timeout)
    try:
        s.sendall(build_http1(method, path, host, headers, body, close=True))
        return Http1Reader(s).read_response(head_request=(method == "HEAD"))
    finally:
        s.close()


# -- HTTP/2 with the h2 library --------------------------------------------

def h2_modules():
    try:
        import h2.config
        import h2.connection
        import h2.events
        import h2.exceptions
        import h2.settings
    except ImportError:
        print("SKIP: python3-h2 is not installed (tools/install-deps.sh test)")
        sys.exit(SKIP_EXIT)
    return h2


class H2Result:
    def __init__(self):
        self.status = None
        self.headers = []
        self.body = b""
        self.ended = False
        self.reset_code = None      # RST_STREAM error code for our stream
        self.goaway_code = None     # GOAWAY error code
        self.closed = False         # TCP closed by the server

    def header(self, name):
        for k, v in self.headers:
            if k == name:
                return v
        return None

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return ("<H2Result status=%s ended=%s reset=%s goaway=%s closed=%s body=%r>"
                % (self.status, self.ended, self.reset_code, self.goaway_code, self.closed,
                   self.body[:200]))


def h2_request(host, port, method, path, headers=(), body=None, timeout=5.0,
               validate=True):
    """One HTTP/2 (prior knowledge) request on a fresh connection. Returns
    H2Result, which also records a reset, GOAWAY or close instead of a
    response. `validate=False` lets tests send headers h2 would refuse."""
    h2 = h2_modules()
    cfg = h2.config.H2Configuration(client_side=True, header_encoding="utf-8",
                                    validate_outbound_headers=validate,
                                    normalize_outbound_headers=validate)
    conn = h2.connection.H2Connection(config=cfg)
    s = connect(host, port, timeout)
    res = H2Result()
    try:
        conn.initiate_connection()
        sid = conn.get_next_available_stream_id()
        hdrs = [(":method", method), (":path", path), (":scheme", "http"),
                (":authority", "%s:%d" % (host, port))] + list(headers)
        conn.send_headers(sid, hdrs, end_stream=body is None)
        sender = _H2BodySender(conn, sid, body)
        sender.send_more()
        s.sendall(conn.data_to_send())
        _h2_pump(conn, s, sid, res, timeout, sender)
    finally:
        s.close()
    return res


class _H2BodySender:
    """Sends a request body as the peer's flow-control window allows, so a
    server that reads (and only then refuses) a large body sees all of it."""

    def __init__(self, conn, sid, body):
        self.conn, self.sid, self.body, self.off = conn, sid, body, 0
        self.done = body is None

    def send_more(self):
        if self.done:
            return
        try:
            while self.off < len(self.body):
                n = min(self.conn.local_flow_control_window(self.sid),
                        self.conn.max_outbound_frame_size, len(self.body) - self.off)
                if n <= 0:
                    return
                end = self.off + n == len(self.body)
                self.conn.send_data(self.sid, self.body[self.off:self.off + n], end_stream=end)
                self.off += n
            if not self.body:
                self.conn.end_stream(self.sid)
        except Exception:  # the stream was closed or reset by the server: stop sending
            pass
        self.done = True


def _h2_pump(conn, s, sid, res, timeout, sender):
    h2 = h2_modules()
    deadline = time.monotonic() + timeout
    while not (res.ended or res.reset_code is not None or res.goaway_code is not None):
        if time.monotonic() > deadline:
            raise TestFailure("HTTP/2 response not complete within %.1fs: %r" % (timeout, res))
        try:
            data = s.recv(65536)
        except ConnectionResetError:
            data = b""
        if not data:
            res.closed = True
            return
        try:
            events = conn.receive_data(data)
        except h2.exceptions.ProtocolError as e:
            raise TestFailure("server sent invalid HTTP/2: %s" % e)
        for ev in events:
            _h2_event(conn, ev, sid, res)
        sender.send_more()
        out = conn.data_to_send()
        if out:
            try:
                s.sendall(out)
            except OSError:
                pass


def _h2_event(conn, ev, sid, res):
    h2 = h2_modules()
    E = h2.events
    if isinstance(ev, E.ResponseReceived) and ev.stream_id == sid:
        for k, v in ev.headers:
            if k == ":status":
                res.status = int(v)
            else:
                res.headers.append((k, v))
    elif isinstance(ev, E.DataReceived) and ev.stream_id == sid:
        res.body += ev.data
        conn.acknowledge_received_data(ev.flow_controlled_length, sid)
    elif isinstance(ev, E.StreamEnded) and ev.stream_id == sid:
        res.ended = True
    elif isinstance(ev, E.StreamReset) and ev.stream_id == sid:
        res.reset_code = int(ev.error_code)
    elif isinstance(ev, E.ConnectionTerminated):
        res.goaway_code = int(ev.error_code)


def h2_prebuilt_get(path, authority):
    """Bytes of a complete prior-knowledge h2 request (preface, SETTINGS,
    HEADERS with END_STREAM on stream 1) for GET path."""
    h2 = h2_modules()
    cfg = h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
    conn = h2.connection.H2Connection(config=cfg)
    conn.initiate_connection()
    conn.send_headers(1, [(":method", "GET"), (":path", path), (":scheme", "http"),
                          (":authority", authority)], end_stream=True)
    return conn.data_to_send()


H2_FRAME_DATA = 0x0
H2_FRAME_HEADERS = 0x1
H2_FRAME_RST_STREAM = 0x3
H2_FRAME_GOAWAY = 0x7
H2_FLAG_END_STREAM = 0x1


def h2_frames(buf):
    """Splits complete frames off buf: returns ([(type, flags, sid, payload)], rest)."""
    frames = []
    while len(buf) >= 9:
        n = int.from_bytes(buf[0:3], "big")
        if len(buf) < 9 + n:
            break
        ftype, flags = buf[3], buf[4]
        sid = int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF
        frames.append((ftype, flags, sid, buf[9:9 + n]))
        buf = buf[9 + n:]
    return frames, buf


# -- msgpack-RPC -------------------------------------------------------------

def require_node_modules(folder, *modules):
    """Exits unless node and each npm module (a path under
    folder/node_modules, e.g. "@durable-streams/client") are installed:
    under CI (CI=true) a missing one fails the test (exit 1: the project's
    install script puts them there), elsewhere the test is skipped."""
    missing = [] if shutil.which("node") else ["node"]
    missing += ["npm module %s in %s (npm ci)" % (m, folder) for m in modules
                if not os.path.isdir(os.path.join(folder, "node_modules", m))]
    if not missing:
        return
    if os.environ.get("CI") == "true":
        print("FAIL: missing under CI: %s (tools/install-deps.sh test installs them)"
              % ", ".join(missing))
        sys.exit(1)
    print("SKIP: missing %s (run tools/install-deps.sh test)" % ", ".join(missing))
    sys.exit(SKIP_EXIT)


def rpc_supported():
    """True when the binary under test lists --rpc-listen in --help."""
    p = run([sluiced_path(), "--help"], timeout=30)
    return b"--rpc-listen" in p.stdout + p.stderr


def require_rpc():
    """Exits with SKIP_EXIT when the server binary has no msgpack-RPC."""
    if not rpc_supported():
        print("SKIP: %s has no --rpc-listen" % sluiced_path())
        sys.exit(SKIP_EXIT)


def rpc_server(args=(), unix=True, **kw):
    """A Server with a TCP RPC listener on 127.0.0.1:0 and, when `unix`, one
    on a unix socket in its temp dir; rpc_addrs() lists them in that order."""
    srv = Server(args=args, **kw)
    rpc = ["--rpc-listen", "127.0.0.1:0"]
    if unix:
        rpc += ["--rpc-listen", "unix:" + os.path.join(srv.tmp, "rpc.sock")]
    srv.args = rpc + srv.args
    return srv


def rpc_request_bytes(msgid, method, params):
    """One encoded request [0, msgid, method, params] (python3-msgpack:
    str stays str, bytes become bin)."""
    import msgpack
    return msgpack.packb([0, msgid, method, list(params)], use_bin_type=True)


class RpcClient:
    """A blocking msgpack-RPC client (python3-msgpack) over TCP ("HOST:PORT")
    or a unix socket ("unix:PATH").

    Every decoded message is kept in arrival order in `messages`, so tests
    can assert ordering; responses are also indexed by msgid until claimed,
    and a second response to one msgid fails the test. Every wait has a
    deadline: a silent server fails the test, it never hangs it."""

    def __init__(self, addr, timeout=10.0, rcvbuf=None):
        import msgpack
        if addr.startswith("unix:"):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            target = addr[5:]
        else:
            host, _, port = addr.rpartition(":")
            host = host.strip("[]")
            s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
            target = (host, int(port))
        if rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.settimeout(timeout)
        s.connect(target)
        self.sock = s
        self.addr = addr
        self.timeout = timeout
        self.unpacker = msgpack.Unpacker(raw=False, max_buffer_size=256 << 20)
        self.messages = []
        self.responses = {}
        self.answered = set()
        self.next_msgid = 1
        self.eof = False

    # -- sending ---------------------------------------------------------

    def take_msgid(self):
        msgid = self.next_msgid
        self.next_msgid = (self.next_msgid + 1) & 0xFFFFFFFF
        return msgid

    def send(self, method, *params):
        """Sends one request; returns its msgid."""
        msgid = self.take_msgid()
        self.sock.sendall(rpc_request_bytes(msgid, method, params))
        return msgid

    def send_raw(self, data):
        self.sock.sendall(data)

    # -- receiving -------------------------------------------------------

    def _store(self, msg):
        self.messages.append(msg)
        if isinstance(msg, list) and len(msg) == 4 and msg[0] == 1:
            check(msg[1] not in self.answered, "second response for msgid %r: %r" % (msg[1], msg))
            self.answered.add(msg[1])
            self.responses[msg[1]] = (msg[2], msg[3])

    def read_some(self, deadline, what="a message"):
        """Reads once and decodes every complete message. Returns False at
        EOF (or reset); fails the test at the deadline."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TestFailure("no %s from %s within the deadline" % (what, self.addr))
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(1 << 16)
        except socket.timeout:
            raise TestFailure("no %s from %s within %.1fs" % (what, self.addr, remaining))
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
            return False
        self.unpacker.feed(data)
        for msg in self.unpacker:
            self._store(msg)
        return True

    def wait_until(self, pred, what, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while not pred():
            if not self.read_some(deadline, what):
                raise TestFailure("%s closed the connection while waiting for %s"
                                  % (self.addr, what))

    def wait_response(self, msgid, timeout=None):
        """Returns (error, result) of msgid, claiming it."""
        self.wait_until(lambda: msgid in self.responses, "the response to msgid %d" % msgid, timeout)
        return self.responses.pop(msgid)

    def call(self, method, *params, timeout=None):
        return self.wait_response(self.send(method, *params), timeout)

    def ok(self, method, *params, timeout=None):
        """The result of a call that must succeed."""
        err, res = self.call(method, *params, timeout=timeout)
        if err is not None:
            raise TestFailure("%s %s: unexpected error %r" % (method, repr(params)[:200], err))
        return res

    def error_code(self, method, *params, timeout=None):
        """The error code of a call that must fail; checks the error shape
        [code_string, message_string] and a nil result."""
        err, res = self.call(method, *params, timeout=timeout)
        check(isinstance(err, list) and len(err) == 2 and isinstance(err[0], str)
              and isinstance(err[1], str),
              "%s %s: error must be [code, message], got %r (result %r)"
              % (method, repr(params)[:200], err, res))
        check_eq(res, None, "result of a failed %s" % method)
        return err[0]

    def notifications(self, method=None):
        return [m for m in self.messages
                if isinstance(m, list) and len(m) == 3 and m[0] == 2
                and (method is None or m[1] == method)]

    def events(self, sub_id):
        """[(session, seq, type, data)] of `event` notifications for sub_id."""
        return [tuple(m[2][1:]) for m in self.notifications("event") if m[2][0] == sub_id]

    def wait_events(self, sub_id, count, timeout=None):
        self.wait_until(lambda: len(self.events(sub_id)) >= count,
                        "%d events for subscription %r" % (count, sub_id), timeout)
        return self.events(sub_id)

    def expect_closed(self, timeout=5.0):
        """Reads (keeping what decodes) until the server closes; fails the
        test when it is still open after timeout."""
        deadline = time.monotonic() + timeout
        while self.read_some(deadline, "connection close"):
            pass

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


# -- tools -------------------------------------------------------------------

def curl(args, timeout=10.0):
    """Runs curl -sS with args; returns (body bytes, http_code, http_version,
    content_type, returncode, stderr)."""
    marker = "\n__SLUICE_CURL__ %{http_code} %{http_version} %{content_type}"
    p = run(["curl", "-sS", "--max-time", str(int(timeout)), "-w", marker] + list(args),
            timeout=timeout + 5)
    out = p.stdout
    i = out.rfind(b"\n__SLUICE_CURL__ ")
    if i < 0:
        return (out, 0, "", "", p.returncode, p.stderr.decode("utf-8", "replace"))
    tail = out[i + len("\n__SLUICE_CURL__ "):].decode("latin-1").split(" ", 2)
    tail += [""] * (3 - len(tail))
    return (out[:i], int(tail[0] or 0), tail[1], tail[2].strip(), p.returncode,
            p.stderr.decode("utf-8", "replace"))


H2LOAD_REQ_RE = re.compile(
    r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
    r"(\d+) errored, (\d+) timeout")
H2LOAD_STATUS_RE = re.compile(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx")
H2LOAD_FINISHED_RE = re.compile(r"finished in ([\d.]+)(m?s), ([\d.]+) req/s")


def parse_h2load(text):
    """Returns a dict of h2load's summary figures, or raises TestFailure."""
    m = H2LOAD_REQ_RE.search(text)
    if not m:
        raise TestFailure("h2load output has no requests summary:\n%s" % text[-2000:])
    keys = ("total", "started", "done", "succeeded", "failed", "errored", "timeout")
    out = dict(zip(keys, (int(x) for x in m.groups())))
    s = H2LOAD_STATUS_RE.search(text)
    if s:
        out.update(zip(("2xx", "3xx", "4xx", "5xx"), (int(x) for x in s.groups())))
    f = H2LOAD_FINISHED_RE.search(text)
    if f:
        out["req_per_s"] = float(f.group(3))
    return out


PROM_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
PROM_LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
PROM_SAMPLE_RE = re.compile(
    r"^(%s)(\{(?:%s)(?:,(?:%s))*,?\}|\{\})? ([-+]?(?:[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?|Inf|NaN))"
    r"( -?[0-9]+)?$" % (PROM_NAME, PROM_LABEL, PROM_LABEL))
PROM_META_RE = re.compile(r"^# (HELP|TYPE) (%s)(?: (.*))?$" % PROM_NAME)
PROM_TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


def parse_prometheus(text):
    """Validates Prometheus text exposition 0.0.4; returns {name: [(labels, value)]}.
    Raises TestFailure naming the first bad line."""
    samples = {}
    for i, line in enumerate(text.split("\n"), 1):
        if not line:
            continue
        if line.startswith("#"):
            m = PROM_META_RE.match(line)
            if line.startswith("# TYPE") or line.startswith("# HELP"):
                check(m is not None, "metrics line %d: bad comment %r" % (i, line))
                if m.group(1) == "TYPE":
                    check(m.group(3) in PROM_TYPES, "metrics line %d: bad type %r" % (i, line))
            continue
        m = PROM_SAMPLE_RE.match(line)
        check(m is not None, "metrics line %d is not `name{labels} value`: %r" % (i, line))
        samples.setdefault(m.group(1), []).append((m.group(2) or "", float(m.group(3))))
    return samples


# -- test runner -------------------------------------------------------------

def run_cases_each_server(name, cases, server_args=(), factory=Server):
    """Runs each case fn(srv) against a fresh factory(args=server_args)
    (a Server, or e.g. rpc_server),
    checks the server is still healthy after it, prints one line per case
    and `<name>: N passed, M failed`; returns the exit code."""
    passed = failed = 0
    only = os.environ.get("SLUICE_TEST_ONLY")
    for fn in cases:
        if only and only not in fn.__name__:
            continue
        with factory(args=list(server_args)) as srv:
            try:
                fn(srv)
                srv.assert_healthy(fn.__name__)
                passed += 1
                print("ok   %s" % fn.__name__)
            except TestFailure as e:
                failed += 1
                print("FAIL %s: %s" % (fn.__name__, e))
        sys.stdout.flush()
    print("%s: %d passed, %d failed" % (name, passed, failed))
    return 1 if failed else 0


def run_cases_in_tmp(name, cases):
    """Runs each case fn(tmp) with one shared temp dir (cases make their
    own data dirs in it), prints one line per case and `<name>: N passed,
    M failed`; keeps the dir when a case failed (or SLUICE_KEEP_TMP is
    set). Returns the exit code."""
    tmp = tempfile.mkdtemp(prefix="sluice-%s-" % name)
    failed = ran = 0
    only = os.environ.get("SLUICE_TEST_ONLY")
    for fn in cases:
        if only and only not in fn.__name__:
            continue
        t0 = time.monotonic()
        ran += 1
        try:
            fn(tmp)
            print("ok   %s (%.2fs)" % (fn.__name__, time.monotonic() - t0))
        except TestFailure as e:
            failed += 1
            print("FAIL %s (%.2fs): %s" % (fn.__name__, time.monotonic() - t0, e))
        sys.stdout.flush()
    if failed or os.environ.get("SLUICE_KEEP_TMP"):
        print("data dirs kept in %s" % tmp)
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    print("%s: %d passed, %d failed" % (name, ran - failed, failed))
    return 1 if failed else 0


class Suite:
    """Runs named cases in order; prints one line per case and a final
    `<name>: N passed, M failed` line; exits 1 on any failure."""

    def __init__(self, name):
        self.name = name
        self.cases = []
        self.passed = 0
        self.failed = []

    def case(self, fn):
        self.cases.append(fn)
        return fn

    def run(self, fixture=None):
        """Runs every case, then exits. `fixture`, a context manager, is
        entered before the first case and left after the last; a failure
        while leaving it (e.g. a sanitizer report) counts as a failed case."""
        if fixture is not None:
            try:
                with fixture:
                    self._run_cases()
            except Exception as e:
                self.failed.append("fixture")
                print("FAIL fixture teardown: %s" % e)
        else:
            self._run_cases()
        self._finish()

    def _run_cases(self):
        only = os.environ.get("SLUICE_TEST_ONLY")
        for fn in self.cases:
            if only and only not in fn.__name__:
                continue
            t0 = time.monotonic()
            try:
                fn()
            except Exception as e:  # a failure in one case must not hide the others
                self.failed.append(fn.__name__)
                print("FAIL %s (%.2fs): %s" % (fn.__name__, time.monotonic() - t0, e))
                if not isinstance(e, TestFailure):
                    traceback.print_exc(file=sys.stdout)
            else:
                self.passed += 1
                print("ok   %s (%.2fs)" % (fn.__name__, time.monotonic() - t0))
            sys.stdout.flush()

    def _finish(self):
        print("%s: %d passed, %d failed%s" % (self.name, self.passed, len(self.failed),
              (" (" + ", ".join(self.failed) + ")") if self.failed else ""))
        sys.exit(1 if self.failed else 0)


class ChunkedSseParser:
    """Incremental parsing of an SSE body sent with HTTP/1.1 chunked
    framing: feed raw bytes into self.raw, then call self._parse(
    self._dechunk()); events accumulate in self.events as
    (id int or None, type, data str). Used by the raw-socket SSE readers."""

    def _init_parser(self):
        self.raw = bytearray()
        self.chunk_left = 0
        self.need_crlf = False
        self.ended = False
        self.text = ""
        self.cur = {"id": None, "event": None, "data": []}
        self.events = []

    def _dechunk(self):
        out = bytearray()
        while not self.ended:
            if self.chunk_left:
                n = min(self.chunk_left, len(self.raw))
                if n == 0:
                    break
                out += self.raw[:n]
                del self.raw[:n]
                self.chunk_left -= n
                self.need_crlf = self.chunk_left == 0
            elif self.need_crlf:
                if len(self.raw) < 2:
                    break
                check_eq(bytes(self.raw[:2]), b"\r\n", "chunk terminator")
                del self.raw[:2]
                self.need_crlf = False
            else:
                i = self.raw.find(b"\r\n")
                if i < 0:
                    break
                size = int(bytes(self.raw[:i]).split(b";")[0], 16)
                del self.raw[:i + 2]
                self.ended = size == 0
                self.chunk_left = size
        return bytes(out)

    def _parse(self, data):
        self.text += data.decode("utf-8")
        *lines, self.text = self.text.split("\n")
        for line in lines:
            if line == "":
                c = self.cur
                if c["data"] or c["event"]:
                    ident = int(c["id"]) if c["id"] is not None else None
                    self.events.append((ident, c["event"] or "message", "\n".join(c["data"])))
                self.cur = {"id": None, "event": None, "data": []}
            elif not line.startswith(":"):
                field, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if field == "data":
                    self.cur["data"].append(value)
                elif field in ("id", "event"):
                    self.cur[field] = value
