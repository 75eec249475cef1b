"""sluicectl end to end against the real sluiced (TCP and unix-socket RPC
listeners, temporary data dir, addresses from the ready file).

Every command and exit status: publish (argument, whole stdin, --lines
pipelined, --durable, --ephemeral, --str, --type) printing exact seqs;
tail --from 1 --count N printing exactly the published events, human and
--json (parsed here; non-UTF-8 data as base64 that decodes to the exact
bytes), gaps and the `end` of a deleted session; tail live stopped by
SIGINT/SIGTERM with exit 0 and the subscription released; sessions
(paging, --all, --json), stat (equal to the HTTP stats), health, create,
rm; exit 1 with the server's code for server errors, 4 for not_found, 3
with no server / no answer / a dropped connection, 2 for bad usage.

Env (set by ctest): SLUICED, SLUICE_BUILD_DIR, SLUICE_SOURCE_DIR."""

import base64
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import sluice_harness as H  # noqa: E402

BUILD = os.environ.get("SLUICE_BUILD_DIR", os.path.join(HERE, "..", "..", "build"))
CTL = os.path.join(BUILD, "tools", "sluicectl")
MAX_EVENT = 65536
CMD_TIMEOUT_S = 30 * H.slow_factor()

# Valid UTF-8 that the human tail format must escape onto one line.
CONTROL_TEXT = "cr\rtab\tback\\slash\x01del\x7f\u00e9"

suite = H.Suite("test_sluicectl")
srv = None   # the fixture server
TCP = None   # its RPC addresses
UNIX = None


def ctl(*args, stdin=b"", env=None, addr=None, timeout=None):
    """Runs sluicectl --rpc ADDR ARGS...; returns (exit code, stdout, stderr)
    as bytes, bytes, str."""
    e = H.default_sanitizer_env(dict(os.environ))
    e = {k: v for k, v in e.items() if not k.startswith("SLUICE_")}
    e.update(env or {})
    cmd = [CTL] + (["--rpc", addr or TCP] if addr is not False else []) + list(args)
    p = H.run(cmd, timeout or CMD_TIMEOUT_S, env=e, input_bytes=stdin)
    err = p.stderr.decode("utf-8", "replace")
    H.check(not H.sanitizer_reports(err), "sanitizer report from sluicectl:\n" + err)
    return p.returncode, p.stdout, err


def ok(*args, **kw):
    code, out, err = ctl(*args, **kw)
    H.check_eq(code, 0, "exit of sluicectl %s (stderr %r)" % (" ".join(args), err))
    return out


def http_stats(sid):
    r = H.http1_request(srv.host, srv.port, "GET", "/v1/sessions/" + sid)
    H.check_eq(r.status, 200, "HTTP stats of %s" % sid)
    return r.json()


def wait_subscribers(sid, n, timeout=10.0):
    """Waits until the session's stats show n subscribers."""
    deadline = time.monotonic() + timeout * H.slow_factor()
    while time.monotonic() < deadline:
        r = H.http1_request(srv.host, srv.port, "GET", "/v1/sessions/" + sid)
        if r.status == 200 and r.json()["subscribers"] == n:
            return
        time.sleep(0.02)
    raise H.TestFailure("%s never had %d subscribers" % (sid, n))


def json_lines(out):
    return [json.loads(line) for line in out.decode().splitlines()]


# -- usage and connection failures -----------------------------------------

@suite.case
def test_usage_exit_2():
    code, out, _ = ctl("--help", addr=False)
    H.check_eq(code, 0, "--help")
    text = out.decode()
    for word in ("publish", "tail", "sessions", "stat", "health", "create", "rm", "SLUICE_RPC",
                 "not_found", "base64"):
        H.check(word in text, "--help mentions %s" % word)
    for cmd in ("publish", "tail", "sessions", "stat", "health", "create", "rm"):
        code, out, _ = ctl(cmd, "--help")
        H.check(code == 0 and out.startswith(b"usage: sluicectl " + cmd.encode()),
                "%s --help: %d %r" % (cmd, code, out[:80]))
    bad = [
        (), ("frobnicate",), ("--bogus", "health"), ("health", "--bogus"), ("publish",),
        ("publish", "s", "a", "b"), ("stat",), ("stat", "a", "b"), ("health", "extra"),
        ("tail", "s", "--count", "x"), ("tail", "s", "--count", "0"), ("tail", "s", "--from", "0"),
        ("tail", "s", "--from", "soon"), ("sessions", "--limit", "0"), ("sessions", "--limit", "1001"),
        ("--timeout", "0", "health"), ("--timeout", "x", "health"), ("tail", "s", "--count"),
        ("publish", "s", "a", "--durable", "--ephemeral"), ("publish", "s", "a", "--lines"),
    ]
    for args in bad:
        code, _, err = ctl(*args)
        H.check_eq(code, 2, "exit of sluicectl %s (stderr %r)" % (" ".join(args), err))
        H.check(err.startswith("sluicectl: ") or err.startswith("usage:"),
                "usage error explained: %r" % err)
    code, _, err = ctl("health", addr="no-port-here")
    H.check_eq(code, 2, "an address without a port")
    code, _, err = ctl("health", addr=False, env={"SLUICE_TIMEOUT": "-1"})
    H.check_eq(code, 2, "bad SLUICE_TIMEOUT")
    code, _, err = ctl("health", addr=False, env={"SLUICE_JSON": "maybe"})
    H.check_eq(code, 2, "bad SLUICE_JSON")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@suite.case
def test_no_server_exit_3():
    t0 = time.monotonic()
    code, _, err = ctl("health", addr="127.0.0.1:%d" % free_port())
    H.check_eq(code, 3, "nothing listening: exit (stderr %r)" % err)
    H.check("cannot connect" in err, "says it cannot connect: %r" % err)
    code, _, err = ctl("stat", "x", addr="unix:/nonexistent/sluice.sock")
    H.check_eq(code, 3, "no unix socket: exit (stderr %r)" % err)
    H.check(time.monotonic() - t0 < 10, "fails fast")


class SilentServer:
    """Accepts connections and then either says nothing or closes at once."""

    def __init__(self, close):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.close_at_once = close
        self.stop = False
        self.held = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.sock.getsockname()[1]

    def _run(self):
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            if self.close_at_once:
                c.recv(1024)
                c.close()
            else:
                self.held.append(c)

    def shut(self):
        self.stop = True
        self.thread.join(5)
        for c in self.held:
            c.close()
        self.sock.close()


@suite.case
def test_timeout_and_lost_connection_exit_3():
    silent = SilentServer(close=False)
    try:
        t0 = time.monotonic()
        code, _, err = ctl("--timeout", "0.5", "health", addr=silent.addr)
        took = time.monotonic() - t0
        H.check_eq(code, 3, "no answer: exit (stderr %r)" % err)
        H.check("no answer within 0.5 s" in err, "says it timed out: %r" % err)
        H.check(took < 5 * H.slow_factor(), "gave up after the timeout (%.1fs)" % took)
        # The environment twin of --timeout.
        code, _, err = ctl("health", addr=silent.addr, env={"SLUICE_TIMEOUT": "0.3"})
        H.check_eq(code, 3, "SLUICE_TIMEOUT: exit")
    finally:
        silent.shut()
    closer = SilentServer(close=True)
    try:
        for args in (("health",), ("publish", "s", "x"), ("tail", "s")):
            code, _, err = ctl(*args, addr=closer.addr)
            H.check_eq(code, 3, "%s on a dropped connection: exit (stderr %r)" % (args[0], err))
            H.check("closed the connection" in err or "reset" in err.lower(),
                    "says the connection was lost: %r" % err)
    finally:
        closer.shut()


# -- publish and tail ----------------------------------------------------------

@suite.case
def test_publish_forms_print_exact_seqs():
    H.check_eq(ok("publish", "p1", "hello"), b"1\n", "argument")
    H.check_eq(ok("publish", "p1", "durable one", "--durable"), b"2\n", "--durable")
    blob = b"\xff\x00bin\r\nary\n"
    H.check_eq(ok("publish", "p1", "-", stdin=blob), b"3\n", "whole stdin with '-'")
    H.check_eq(ok("publish", "p1", stdin=b"no dash\n"), b"4\n", "whole stdin without DATA")
    lines = b"".join(b"line %d\n" % i for i in range(100)) + b"crlf\r\n\nlast"
    out = ok("publish", "p1", "--lines", stdin=lines)
    H.check_eq(out, b"".join(b"%d\n" % s for s in range(5, 108)), "--lines seqs in input order")
    H.check_eq(ok("publish", "p1", "--type", "tok", "--str", "typed"), b"108\n", "--type --str")
    H.check_eq(ok("--json", "publish", "p1", "j"), b'{"seq":109}\n', "--json publish")
    H.check_eq(ok("publish", "p1", "--", "-dash"), b"110\n", "data after --")
    H.check_eq(ok("publish", "p1", CONTROL_TEXT), b"111\n", "text with control characters")
    st = http_stats("p1")
    H.check_eq((st["events"], st["first_seq"], st["last_seq"]), (111, 1, 111), "HTTP sees them")


def expected_p1():
    """(seq, type, data bytes) of what test_publish_forms_print_exact_seqs published."""
    ev = [(1, "message", b"hello"), (2, "message", b"durable one"),
          (3, "message", b"\xff\x00bin\r\nary\n"), (4, "message", b"no dash\n")]
    lines = [b"line %d" % i for i in range(100)] + [b"crlf", b"", b"last"]
    ev += [(5 + i, "message", l) for i, l in enumerate(lines)]
    ev += [(108, "tok", b"typed"), (109, "message", b"j"), (110, "message", b"-dash"),
           (111, "message", CONTROL_TEXT.encode())]
    return ev


def escape(b):
    """sluicectl's human escaping of UTF-8 text."""
    out = b.decode().replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
    out = out.replace("\t", "\\t")
    return "".join(c if ord(c) >= 0x20 and ord(c) != 0x7f else "\\x%02x" % ord(c) for c in out)


@suite.case
def test_tail_from_1_prints_exactly_what_was_published():
    want = expected_p1()
    out = ok("tail", "p1", "--from", "1", "--count", str(len(want)))
    lines = out.decode().split("\n")
    H.check_eq(lines[-1], "", "output ends with a newline")
    H.check_eq(len(lines) - 1, len(want), "one line per event")
    for line, (seq, typ, data) in zip(lines, want):
        try:
            text = "%d %s %s" % (seq, typ, escape(data))
        except UnicodeDecodeError:
            text = "%d %s base64:%s" % (seq, typ, base64.b64encode(data).decode())
        H.check_eq(line, text, "human line of seq %d" % seq)
    docs = json_lines(ok("--json", "tail", "p1", "--from", "1", "--count", str(len(want))))
    H.check_eq(len(docs), len(want), "one JSON object per event")
    for d, (seq, typ, data) in zip(docs, want):
        H.check_eq((d["session"], d["seq"], d["type"]), ("p1", seq, typ), "JSON event %d" % seq)
        got = base64.b64decode(d["data"]) if d["encoding"] == "base64" else d["data"].encode()
        H.check_eq(got, data, "JSON data of seq %d (encoding %s)" % (seq, d["encoding"]))
    H.check_eq(docs[2]["encoding"], "base64", "non-UTF-8 data is base64")
    H.check_eq(docs[0]["encoding"], "utf-8", "text is text")
    H.check_eq(lines[110], "111 message cr\\rtab\\tback\\\\slash\\x01del\\x7f\u00e9",
               "escapes spelled out")
    # --count stops early; --type filters (and counts only matches).
    H.check_eq(ok("tail", "p1", "--from", "100", "--count", "2"), b"100 message line 95\n"
               b"101 message line 96\n", "--from 100 --count 2")
    H.check_eq(ok("tail", "p1", "--from", "1", "--count", "1", "--type", "tok"),
               b"108 tok typed\n", "--type")
    # SLUICE_JSON and the unix socket (SLUICE_RPC) give the same result.
    out = ok("tail", "p1", "--from", "109", "--count", "1", addr=False,
             env={"SLUICE_RPC": UNIX, "SLUICE_JSON": "1"})
    H.check_eq(json.loads(out)["data"], "j", "over the unix socket, env twins")


@suite.case
def test_tail_reports_gaps():
    ok("publish", "g1", "a")
    ok("publish", "g1", "lost", "--ephemeral")
    ok("publish", "g1", "c")
    # A subscriber from seq 1 after the fact: the ephemeral event is gone.
    code, out, err = ctl("tail", "g1", "--from", "1", "--count", "2")
    H.check_eq(code, 0, "tail across a gap")
    H.check_eq(out, b"1 message a\n3 message c\n", "events around the gap")
    H.check("gap: events 2..2 are lost" in err, "gap on stderr: %r" % err)
    docs = json_lines(ok("--json", "tail", "g1", "--from", "1", "--count", "2"))
    H.check_eq(docs[1], {"gap": {"from": 2, "to": 2}}, "JSON gap line")
    H.check_eq([d.get("seq") for d in docs], [1, None, 3], "JSON lines in order")


def start_tail(*args):
    e = H.default_sanitizer_env(dict(os.environ))
    e = {k: v for k, v in e.items() if not k.startswith("SLUICE_")}
    return subprocess.Popen([CTL, "--rpc", TCP, "tail"] + list(args), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=e)


def read_lines(p, n, timeout=10.0):
    """Reads n lines of p's stdout as they come (bounded wait)."""
    got = b""
    deadline = time.monotonic() + timeout * H.slow_factor()
    fd = p.stdout.fileno()
    while got.count(b"\n") < n:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise H.TestFailure("tail printed %r, not %d lines" % (got, n))
        chunk = os.read(fd, 65536)
        if not chunk:
            raise H.TestFailure("tail ended early after %r" % got)
        got += chunk
    return got


def finish(p, what):
    try:
        out, err = p.communicate(timeout=CMD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        raise H.TestFailure("%s did not end" % what)
    err = err.decode("utf-8", "replace")
    H.check(not H.sanitizer_reports(err), "sanitizer report from sluicectl:\n" + err)
    return p.returncode, out, err


@suite.case
def test_tail_live_stops_on_signals():
    ok("create", "live1")
    for sig in (signal.SIGINT, signal.SIGTERM):
        p = start_tail("live1")
        try:
            wait_subscribers("live1", 1)
            seqs = [int(ok("publish", "live1", "ev-%d" % i)) for i in range(3)]
            head = read_lines(p, 3)
            p.send_signal(sig)
            code, out, err = finish(p, "tail after %s" % sig.name)
            out = head + out
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        H.check_eq(code, 0, "tail exit after %s (stderr %r)" % (sig.name, err))
        want = "".join("%d message ev-%d\n" % (s, i) for i, s in enumerate(seqs)).encode()
        H.check_eq(out, want, "live events printed before %s" % sig.name)
        wait_subscribers("live1", 0)


@suite.case
def test_tail_ends_when_session_is_deleted():
    ok("publish", "gone1", "x")
    p = start_tail("gone1", "--from", "1", "--json")
    try:
        wait_subscribers("gone1", 1)
        H.check_eq(ok("rm", "gone1"), b"deleted gone1\n", "rm output")
        code, out, err = finish(p, "tail of a deleted session")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    H.check_eq(code, 0, "tail exit at the end of the session (stderr %r)" % err)
    docs = json_lines(out)
    H.check_eq(docs[0]["seq"], 1, "the event before the delete")
    H.check_eq(docs[-1], {"end": True}, "the end line")


# -- info commands -----------------------------------------------------------

@suite.case
def test_create_stat_sessions_health():
    H.check_eq(ok("create", "ls-b"), b"created ls-b\n", "create")
    H.check_eq(ok("--json", "create", "ls-b"), b"true\n", "create again (idempotent), --json")
    for sid in ("ls-a", "ls-c", "ls-d"):
        ok("publish", sid, "x" * 10)
    st = json.loads(ok("--json", "stat", "ls-a"))
    http = http_stats("ls-a")
    for k in ("id", "events", "bytes", "first_seq", "last_seq", "subscribers", "created_ns"):
        H.check_eq(st[k], http[k], "stat %s vs HTTP" % k)
    human = ok("stat", "ls-a").decode().splitlines()
    rows = {l.split()[0]: l.split()[1] for l in human}
    H.check_eq((rows["id"], rows["events"], rows["bytes"], rows["last_seq"]), ("ls-a", "1", "10", "1"),
               "human stat lines")
    H.check("T" in human[[l.split()[0] for l in human].index("created_ns")], "times in UTC too")
    # Every session, by following the cursor two at a time.
    everything = H.http1_request(srv.host, srv.port, "GET", "/v1/sessions?limit=1000").json()
    ids = [s["id"] for s in everything["sessions"]]
    H.check(len(ids) >= 6, "several sessions exist: %r" % ids)
    doc = json.loads(ok("--json", "sessions", "--limit", "2", "--all"))
    H.check_eq([s["id"] for s in doc["sessions"]], ids, "sessions --all --json")
    page = json.loads(ok("--json", "sessions", "--limit", "2"))
    H.check_eq([s["id"] for s in page["sessions"]], ids[:2], "first page")
    H.check("next" in page, "a next cursor on the first page")
    page2 = json.loads(ok("--json", "sessions", "--limit", "2", "--cursor", page["next"]))
    H.check_eq([s["id"] for s in page2["sessions"]], ids[2:4], "--cursor page")
    code, out, err = ctl("sessions", "--limit", "2")
    table = out.decode().splitlines()
    H.check_eq(code, 0, "sessions")
    H.check_eq(table[0].split()[:6], ["ID", "EVENTS", "BYTES", "FIRST", "LAST", "SUBS"], "header")
    H.check_eq([l.split()[0] for l in table[1:]], ids[:2], "table rows")
    H.check("more sessions follow" in err, "the rest is pointed at: %r" % err)
    H.check_eq(len(ok("sessions", "--all").decode().splitlines()), len(ids) + 1, "--all table")
    # Health: the /health keys over RPC, and a few human lines.
    h = json.loads(ok("--json", "health"))
    for k in ("uptime_s", "rss_bytes", "open_fds", "fd_limit", "connections", "sessions", "busy",
              "reactors", "events", "storage", "watchdog"):
        H.check(k in h, "health has %s" % k)
    text = ok("health").decode()
    for label in ("status", "uptime", "rss", "open fds", "connections", "events", "loop lag max"):
        H.check(any(l.startswith(label + " ") for l in text.splitlines()),
                "health line %r in %r" % (label, text))


@suite.case
def test_server_errors_exit_1_and_not_found_exit_4():
    for args in (("stat", "nope"), ("rm", "nope"), ("tail", "nope"), ("tail", "nope", "--from", "1")):
        code, out, err = ctl(*args)
        H.check_eq(code, 4, "%s: exit (stderr %r)" % (" ".join(args), err))
        H.check("not_found" in err, "the code is printed: %r" % err)
        H.check_eq(out, b"", "nothing on stdout")
    cases = [(("publish", ".hidden", "x"), "invalid_session_id"),
             (("publish", "ok1", "x", "--type", "bad type"), "invalid_type"),
             (("publish", "ok1", "-"), "too_large")]
    for args, want in cases:
        stdin = b"y" * (MAX_EVENT + 1) if args[-1] == "-" else b""
        code, out, err = ctl(*args, stdin=stdin)
        H.check_eq(code, 1, "%s: exit (stderr %r)" % (want, err))
        H.check("server error: %s: " % want in err, "code and message printed: %r" % err)
    # A --lines run that hits an error names the line, after the good seqs.
    code, out, err = ctl("publish", "ok2", "--lines", stdin=b"a\n" + b"z" * (MAX_EVENT + 1) + b"\nc\n")
    H.check_eq(code, 1, "--lines with a too large line")
    H.check_eq(out, b"1\n", "the first line's seq")
    H.check("line 2: " in err and "too_large" in err, "the failing line is named: %r" % err)


class Fixture:
    """The server every case shares, with its RPC addresses published to
    the module globals."""

    def __enter__(self):
        global srv, TCP, UNIX
        srv = H.rpc_server(args=["--max-event-bytes", str(MAX_EVENT)])
        srv.__enter__()
        TCP, UNIX = srv.rpc_addrs()
        H.check(UNIX.startswith("unix:"), "a unix listener: %r" % UNIX)
        return self

    def __exit__(self, *exc):
        return srv.__exit__(*exc)


def main():
    if not os.access(CTL, os.X_OK):
        print("sluicectl not built at %s" % CTL)
        sys.exit(1)
    H.require_rpc()
    suite.run(Fixture())


if __name__ == "__main__":
    main()
