"""Shared pieces of the runs tests (test_run_*.py): a server with the test
runners declared, starting runs over HTTP, reading a session's events over
HTTP/1.1, h2c (curl) and msgpack-RPC, and walking /proc for what is left of
a run's process tree."""

import json
import os
import signal
import subprocess
import time

import sluice_harness as H

RUNNERS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "runners")


def runner_flags(grace="0.5", extra=()):
    """--runner declarations of the five test runners (tests/runners)."""
    flags = []
    for decl in ("lines=%s/lines.sh" % RUNNERS,
                 "df=%s/doublefork.sh" % RUNNERS,
                 "flood=%s/flood.sh | mode=chunk max-output=256k" % RUNNERS,
                 "echo=%s/echo.sh" % RUNNERS,
                 "fail=%s/fail.sh" % RUNNERS):
        flags += ["--runner", decl]
    return flags + ["--run-kill-grace", grace] + list(extra)


def server(args=(), grace="0.5", **kw):
    return H.Server(args=runner_flags(grace) + list(args), **kw)


def rpc_server(args=(), grace="0.5", **kw):
    return H.rpc_server(args=runner_flags(grace) + list(args), unix=False, **kw)


def post_json(srv, path, obj, headers=()):
    body = json.dumps(obj).encode()
    return H.http1_request(srv.host, srv.port, "POST", path,
                           headers=[("content-type", "application/json")] + list(headers),
                           body=body, timeout=10)


def start_run(srv, session, runner, args=(), stdin=None, close_stdin=False, want=201):
    obj = {"runner": runner, "args": list(args)}
    if stdin is not None:
        obj["stdin"] = stdin
    if close_stdin:
        obj["close_stdin"] = True
    r = post_json(srv, "/v1/sessions/%s/run" % session, obj)
    H.check_eq(r.status, want, "POST run %s %s: %r" % (runner, args, r.body[:300]))
    return r.json() if r.body else None


def run_state(srv, session):
    r = H.http1_request(srv.host, srv.port, "GET", "/v1/sessions/%s/run" % session, timeout=10)
    return r.status, (r.json() if r.status == 200 else None)


def wait_exited(srv, session, timeout=15.0):
    """Waits until GET run says exited; returns its exit object."""
    deadline = time.monotonic() + timeout * H.slow_factor()
    last = None
    while time.monotonic() < deadline:
        st, body = run_state(srv, session)
        last = (st, body)
        if st == 200 and body["state"] == "exited":
            return body["exit"]
        time.sleep(0.05)
    raise H.TestFailure("run of %s did not exit in time: %r" % (session, last))


def parse_sse(text):
    """[(seq, type, data)] of an SSE body (comment lines skipped)."""
    out = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        lines = [l for l in block.split("\n") if l and not l.startswith(":")]
        if not lines:
            continue
        seq, typ, data = None, "message", []
        for line in lines:
            if line.startswith("id: "):
                seq = int(line[4:])
            elif line.startswith("event: "):
                typ = line[7:]
            elif line.startswith("data:"):
                data.append(line[6:] if line.startswith("data: ") else line[5:])
        out.append((seq, typ, "\n".join(data)))
    return out


def curl_sse(srv, session, h2=False, from_seq=1, timeout=30):
    """Starts curl following the session from from_seq; returns the Popen
    (read it with finish_curl). The stream ends when the session closes."""
    cmd = ["curl", "-sN", "--max-time", str(timeout)]
    if h2:
        cmd.append("--http2-prior-knowledge")
    else:
        cmd.append("--http1.1")
    cmd.append(srv.url("/v1/sessions/%s/events?from=%d" % (session, from_seq)))
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish_curl(p, timeout=40):
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        raise H.TestFailure("curl did not end: %r" % out[-300:])
    return parse_sse(out.decode("utf-8", "replace"))


def sse_events(srv, session, timeout=10):
    """Everything the session holds, read to its close over HTTP/1.1."""
    return finish_curl(curl_sse(srv, session, timeout=timeout), timeout=timeout + 5)


def exit_event(events):
    ex = [e for e in events if e[1] == "run.exit"]
    H.check(len(ex) == 1, "expected one run.exit, got %r" % (events[-5:],))
    return json.loads(ex[0][2])


def tree_pids(marker=None, run_id=None):
    """Pids (not zombies) whose command line holds marker (a unique one:
    see unique()) or whose environment holds SLUICE_RUN_ID=run_id."""
    if marker:
        assert len(marker) >= 12, "markers must be unique strings (runs_lib.unique)"
    found = []
    want_env = ("SLUICE_RUN_ID=%s" % run_id).encode() if run_id else None
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        pid = int(name)
        try:
            with open("/proc/%d/stat" % pid, "rb") as f:
                stat = f.read()
            if stat[stat.rindex(b")") + 2:][:1] == b"Z":
                continue
            hit = False
            if marker:
                with open("/proc/%d/cmdline" % pid, "rb") as f:
                    hit = marker.encode() in f.read()
            if not hit and want_env:
                with open("/proc/%d/environ" % pid, "rb") as f:
                    hit = want_env in f.read().split(b"\0")
            if hit:
                found.append(pid)
        except (OSError, ValueError):
            continue
    return found


def zombies_of(pid):
    """Zombie children of pid."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name, "rb") as f:
                stat = f.read()
            rest = stat[stat.rindex(b")") + 2:].split()
            if rest[0] == b"Z" and int(rest[1]) == pid:
                out.append(int(name))
        except (OSError, ValueError, IndexError):
            continue
    return out


def assert_tree_gone(marker, run_id, srv_pid=None, timeout=5.0, what=""):
    """Waits (bounded) until nothing of the run's tree lives; fails naming
    what is left. Also: no zombie children of sluiced."""
    deadline = time.monotonic() + timeout * H.slow_factor()
    left = tree_pids(marker, run_id)
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = tree_pids(marker, run_id)
    if left:
        names = []
        for p in left:
            try:
                with open("/proc/%d/cmdline" % p, "rb") as f:
                    names.append((p, f.read().replace(b"\0", b" ")[:80]))
            except OSError:
                pass
        for p in tree_pids(None, run_id):  # only what surely is the run's
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        raise H.TestFailure("%s: processes of run %s (%s) still alive: %r"
                            % (what, run_id, marker, names))
    if srv_pid:
        z = zombies_of(srv_pid)
        deadline = time.monotonic() + 1.0
        while z and time.monotonic() < deadline:
            time.sleep(0.05)
            z = zombies_of(srv_pid)
        H.check(not z, "%s: zombie children of sluiced: %r" % (what, z))


def wait_for(pred, what, timeout=10.0):
    deadline = time.monotonic() + timeout * H.slow_factor()
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise H.TestFailure("timed out waiting for %s" % what)


def unique(tag):
    return "%s-%d-%d" % (tag, os.getpid(), int(time.monotonic() * 1000) % 1000000)
