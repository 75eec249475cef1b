"""Network-namespace fixtures for the watchdog and abuse tests.

A NetnsPair is two fresh network namespaces joined by a veth pair: the
server's (10.77.0.1) and the clients' (10.77.0.2). Faults are real: an nft
rule in the client namespace drops a chosen connection's packets in both
directions (no FIN, no RST -- a truly half-open peer), a stopped process
stops reading while its kernel keeps acking. Each test owns its pair
(names carry the pid), so tests run in parallel; the addresses repeat but
never meet outside their namespaces.

Client sockets are created by a short-lived thread that joined the client
namespace with setns(2); a socket stays in the namespace it was created in,
so the test uses it from any thread afterwards. The server runs under
`ip netns exec`.

Tests using this need root and `ip netns`; without them they exit 77
(skipped), with them they must run (CI is root).
"""

import ctypes
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sluice_harness as H  # noqa: E402

CLONE_NEWNET = 0x40000000
SERVER_IP = "10.77.0.1"
CLIENT_IP = "10.77.0.2"
_libc = ctypes.CDLL(None, use_errno=True)


def require_netns():
    """Exits 77 unless we are root and `ip netns` works."""
    if os.geteuid() != 0:
        print("SKIP: needs root (network namespaces)")
        sys.exit(H.SKIP_EXIT)
    probe = "slwdprobe%d" % os.getpid()
    try:
        ok = subprocess.run(["ip", "netns", "add", probe], capture_output=True,
                            timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    if not ok:
        print("SKIP: `ip netns` is unavailable")
        sys.exit(H.SKIP_EXIT)
    subprocess.run(["ip", "netns", "del", probe], capture_output=True, timeout=10)
    # Root with namespaces means CI: a missing tool is a failure, not a skip.
    missing = [t for t in ("nft", "ss", "curl") if shutil.which(t) is None]
    if missing:
        print("FAIL: missing %s (tools/install-deps.sh test installs them)" % " ".join(missing))
        sys.exit(1)


def sh(cmd, timeout=10):
    p = subprocess.run(cmd, capture_output=True, timeout=timeout)
    if p.returncode != 0:
        raise H.TestFailure("%s failed: %s" % (" ".join(cmd), p.stderr.decode(errors="replace")))
    return p.stdout.decode()


class NetnsPair:
    def __init__(self, tag):
        pid = os.getpid()
        self.srv_ns = "sl%s%ds" % (tag, pid)
        self.cli_ns = "sl%s%dc" % (tag, pid)
        self.veth_s = "sv%d" % pid
        self.veth_c = "cv%d" % pid
        self.rules = 0

    def __enter__(self):
        try:
            self.up()
        except BaseException:
            self.down()
            raise
        return self

    def __exit__(self, *exc):
        self.down()
        return False

    def up(self):
        for ns in (self.srv_ns, self.cli_ns):
            sh(["ip", "netns", "add", ns])
            sh(["ip", "-n", ns, "link", "set", "lo", "up"])
        sh(["ip", "link", "add", self.veth_s, "netns", self.srv_ns, "type", "veth",
            "peer", "name", self.veth_c, "netns", self.cli_ns])
        sh(["ip", "-n", self.srv_ns, "addr", "add", SERVER_IP + "/24", "dev", self.veth_s])
        sh(["ip", "-n", self.cli_ns, "addr", "add", CLIENT_IP + "/24", "dev", self.veth_c])
        sh(["ip", "-n", self.srv_ns, "link", "set", self.veth_s, "up"])
        sh(["ip", "-n", self.cli_ns, "link", "set", self.veth_c, "up"])
        # Filter chains in the client namespace, empty until a fault needs a rule.
        self.nft("add table inet slwd")
        self.nft("add chain inet slwd out { type filter hook output priority 0 ; }")
        self.nft("add chain inet slwd in { type filter hook input priority 0 ; }")

    def down(self):
        for ns in (self.cli_ns, self.srv_ns):  # deleting a namespace removes its veth end
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)

    def nft(self, rule):
        sh(["ip", "netns", "exec", self.cli_ns, "nft"] + rule.split())

    def drop_connection(self, local_port):
        """Silently drops every packet of the client's connection from
        local_port, both ways: the server sees a peer that vanished."""
        self.nft("add rule inet slwd out tcp sport %d drop" % local_port)
        self.nft("add rule inet slwd in tcp dport %d drop" % local_port)

    def exec_prefix(self, side="client"):
        return ["ip", "netns", "exec", self.cli_ns if side == "client" else self.srv_ns]

    def in_client(self, fn, *args):
        """Runs fn(*args) on a thread inside the client namespace; returns its
        result or raises its exception."""
        out = {}

        def body():
            try:
                fd = os.open("/run/netns/" + self.cli_ns, os.O_RDONLY)
                try:
                    if _libc.setns(fd, CLONE_NEWNET) != 0:
                        raise OSError(ctypes.get_errno(), "setns")
                finally:
                    os.close(fd)
                out["v"] = fn(*args)
            except BaseException as e:  # handed to the caller
                out["e"] = e
        t = threading.Thread(target=body, daemon=True)
        t.start()
        t.join(30)
        if "e" in out:
            raise out["e"]
        if "v" not in out:
            raise H.TestFailure("client-namespace call did not finish")
        return out["v"]

    def connect(self, port, rcvbuf=None, timeout=5.0):
        """A TCP socket from the client namespace to the server."""
        def make():
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            if rcvbuf is not None:  # before connect: the window the peer sees stays small
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            s.settimeout(timeout)
            s.connect((SERVER_IP, port))
            return s
        return self.in_client(make)

    def http1(self, port, method, path, body=b"", headers=(), timeout=5.0):
        s = self.connect(port, timeout=timeout)
        try:
            s.sendall(H.build_http1(method, path, SERVER_IP, headers, body, close=True))
            return H.Http1Reader(s).read_response(head_request=(method == "HEAD"))
        finally:
            s.close()


class NsServer(H.Server):
    """sluiced inside the pair's server namespace, on SERVER_IP:0."""

    def __init__(self, pair, args=(), env=None):
        super().__init__(args=args, env=env, bare=True)
        self.pair = pair

    def command(self):
        return (self.pair.exec_prefix("server") +
                [self.binary, "--listen", SERVER_IP + ":0", "--data-dir", self.data_dir,
                 "--ready-file", self.ready_file,
                 # Not loopback, but the namespace pair is this test's own:
                 # nobody else can reach it (protected mode would refuse).
                 "--allow-anonymous"] + self.args)

    def request(self, method, path, body=b"", headers=(), timeout=5.0):
        return self.pair.http1(self.port, method, path, body, headers, timeout)

    def health(self, timeout=5.0):
        r = self.request("GET", "/health", timeout=timeout)
        H.check_eq(r.status, 200, "GET /health status")
        return json.loads(r.body)

    def diagnose(self):
        """Socket and thread states of both sides, for a failure message."""
        out = []
        for side in ("server", "client"):
            p = subprocess.run(self.pair.exec_prefix(side) + ["ss", "-tnoi"], capture_output=True,
                               timeout=10)
            out.append("-- ss (%s namespace) --\n%s" % (side, p.stdout.decode()[-3000:]))
        try:
            states = []
            for tid in os.listdir("/proc/%d/task" % self.pid):
                with open("/proc/%d/task/%s/stat" % (self.pid, tid)) as f:
                    st = f.read().split(") ")[1].split()[0]
                with open("/proc/%d/task/%s/comm" % (self.pid, tid)) as f:
                    states.append("%s:%s" % (f.read().strip(), st))
            out.append("-- server threads: %s" % " ".join(states))
        except OSError:
            pass
        if os.environ.get("SLUICE_TEST_GDB"):  # full stacks, when chasing a hang
            p = subprocess.run(["gdb", "-q", "-batch", "-p", str(self.pid), "-ex",
                                "thread apply all bt 12"], capture_output=True, timeout=60)
            out.append(p.stdout.decode(errors="replace")[-12000:])
        return "\n".join(out)

    def timed_health(self, limit_s, what):
        """/health, which must answer within limit_s."""
        t0 = time.monotonic()
        try:
            h = self.health(timeout=limit_s + 5)
        except (OSError, H.ConnectionClosed) as e:
            raise H.TestFailure("/health failed after %.2fs %s: %r\n%s"
                                % (time.monotonic() - t0, what, e, self.diagnose()))
        took = time.monotonic() - t0
        H.check(took <= limit_s, "/health took %.2fs (limit %.2fs) %s" % (took, limit_s, what))
        return h

    def session(self, sid):
        r = self.request("GET", "/v1/sessions/" + sid)
        H.check_eq(r.status, 200, "GET /v1/sessions/%s" % sid)
        return r.json()

    def debug_connections(self, sort="sendq", limit=20):
        r = self.request("GET", "/debug/connections?sort=%s&limit=%d" % (sort, limit))
        H.check_eq(r.status, 200, "GET /debug/connections")
        return r.json()

    def reap_lines(self):
        return [logfmt(l) for l in self.log_lines("watchdog reaped peer")]


def logfmt(line):
    out = {}
    for k, v in re.findall(r'([\w.]+)=("(?:[^"\\]|\\.)*"|\S*)', line):
        out[k] = v[1:-1] if v.startswith('"') else v
    return out


def log_time(ts):
    """Seconds since the epoch of a logfmt ts= value (UTC, microseconds)."""
    return datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=timezone.utc).timestamp()


class SseReader(H.ChunkedSseParser):
    """An HTTP/1.1 SSE subscription over a given socket: undoes chunked
    framing, parses events, records (seq, type, data)."""

    def __init__(self, sock, path):
        self.sock = sock
        self.sock.sendall(H.build_http1("GET", path, SERVER_IP))
        self._init_parser()
        self.closed = False
        while b"\r\n\r\n" not in self.raw:
            self._recv(65536)
        head, _, rest = bytes(self.raw).partition(b"\r\n\r\n")
        self.raw = bytearray(rest)
        status = int(head.split(b" ", 2)[1])
        H.check_eq(status, 200, "SSE status")

    def local_port(self):
        return self.sock.getsockname()[1]

    def _recv(self, size):
        data = self.sock.recv(size)
        if not data:
            self.closed = True
            raise H.ConnectionClosed("SSE stream closed")
        self.raw += data

    def pump(self, size, timeout):
        """One recv of at most size bytes within timeout; parses. Returns
        bytes received (0 on timeout)."""
        self.sock.settimeout(timeout)
        before = len(self.raw)
        try:
            self._recv(size)
        except socket.timeout:
            pass
        n = len(self.raw) - before
        self._parse(self._dechunk())
        return n

    def last_seq(self):
        for e in reversed(self.events):
            if e[0] is not None:
                return e[0]
        return 0

    def read_to(self, seq, deadline):
        while self.last_seq() < seq and time.monotonic() < deadline and not self.ended:
            self.pump(65536, 0.5)
        return self.last_seq()

    def check_complete(self, first, last, what):
        """Exactly seqs first..last in order, no gap notice."""
        gaps = [e for e in self.events if e[1] == "sluice.gap"]
        H.check_eq(gaps, [], "%s: gap notices" % what)
        seqs = [e[0] for e in self.events]
        want = list(range(first, last + 1))
        if seqs != want:
            missing = sorted(set(want) - set(seqs))
            raise H.TestFailure("%s: %d events, expected %d..%d; %d missing (first %r)"
                                % (what, len(seqs), first, last, len(missing), missing[:5]))

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
