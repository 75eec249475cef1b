"""Headless Chromium for sluice's browser tests: starts
tests/integration/browser/driver.mjs (puppeteer-core over Debian's
chromium) and talks to it one JSON line at a time, so a test can load the
console, read what its EventSource tails received (window.sluiceConsole),
and meanwhile publish, restart the server, or change nothing at all.

Also the scenarios the tests share: the console's tails as seen by the
page, and the exactly-once-in-order check over them. Every wait here is
bounded; the driver is killed when the test ends.
"""

import json
import os
import queue
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sluice_harness as H  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DRIVER_DIR = os.path.join(HERE, "browser")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
COMMAND_TIMEOUT_S = 60.0


def require_browser():
    """Skips (exit 77) naming what is missing: chromium, node, or the
    driver's modules (tools/install-deps.sh test installs all three)."""
    if not os.access(CHROMIUM, os.X_OK):
        print("SKIP: %s missing (tools/install-deps.sh test)" % CHROMIUM)
        sys.exit(H.SKIP_EXIT)
    H.require_tools("node")
    if not os.path.isdir(os.path.join(DRIVER_DIR, "node_modules", "puppeteer-core")):
        print("SKIP: tests/integration/browser/node_modules missing (tools/install-deps.sh test)")
        sys.exit(H.SKIP_EXIT)


def artifact_dir():
    d = os.path.join(os.environ.get("SLUICE_BUILD_DIR") or os.getcwd(), "test-artifacts")
    os.makedirs(d, exist_ok=True)
    return d


class Browser:
    """One chromium under driver.mjs. Use as a context manager."""

    def __init__(self, chromium_args=()):
        self.args = list(chromium_args)
        self.proc = None
        self.lines = queue.Queue()
        self.stderr = []

    def __enter__(self):
        env = dict(os.environ, CHROMIUM=CHROMIUM)
        self.proc = subprocess.Popen(["node", os.path.join(DRIVER_DIR, "driver.mjs")] + self.args,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, cwd=DRIVER_DIR, env=env, text=True)
        threading.Thread(target=self._pump, args=(self.proc.stdout, self.lines), daemon=True).start()
        threading.Thread(target=self._drain_err, daemon=True).start()
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write('{"cmd":"quit"}\n')
                self.proc.stdin.flush()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(timeout=10)
        return False

    @staticmethod
    def _pump(f, q):
        for line in f:
            q.put(line)
        q.put(None)

    def _drain_err(self):
        for line in self.proc.stderr:
            self.stderr.append(line)

    def call(self, cmd, timeout=COMMAND_TIMEOUT_S, **kw):
        """Sends one command; returns its value or raises TestFailure."""
        msg = dict(kw, cmd=cmd)
        self.proc.stdin.write(json.dumps(msg) + "\n")
        self.proc.stdin.flush()
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise H.TestFailure("browser: no answer to %s within %.0fs" % (cmd, timeout))
        if line is None:
            raise H.TestFailure("browser driver exited; stderr:\n%s" % "".join(self.stderr)[-3000:])
        answer = json.loads(line)
        if not answer["ok"]:
            raise H.TestFailure("browser: %s failed: %s" % (cmd, answer["error"]))
        return answer["value"]

    def page(self, url):
        return self.call("page", url=url)

    def eval(self, expr):
        return self.call("eval", expr=expr)

    def wait(self, expr, timeout_s, what):
        """Waits until expr is truthy in the page; fails naming `what`."""
        try:
            return self.call("wait", expr=expr, timeout_ms=int(timeout_s * 1000),
                             timeout=timeout_s + 15)
        except H.TestFailure as e:
            raise H.TestFailure("%s: %s; tails: %s" % (what, e, self.tails_summary())) from e

    def screenshot(self, path):
        return self.call("screenshot", path=path)

    def problems(self):
        return self.call("problems")

    # -- the console's tails ----------------------------------------------

    def tails(self):
        """{id: {state, opens, errors, ids: [seq...], types: [...]}} from
        window.sluiceConsole."""
        return self.eval("""(() => {
            const out = {};
            for (const [id, t] of Object.entries(window.sluiceConsole.tails))
                out[id] = {state: t.state, opens: t.opens, errors: t.errors, dropped: t.dropped,
                           ids: t.events.map((e) => e.id), data: t.events.map((e) => e.data)};
            return out;
        })()""")

    def tails_summary(self):
        try:
            return {k: (v["state"], v["opens"], len(v["ids"])) for k, v in self.tails().items()}
        except Exception as e:  # the page may be gone; the summary is only for messages
            return "unavailable (%s)" % e


def console_url(base, sessions, start="1"):
    return "%s/console#tail=%s&from=%s" % (base, ",".join(sessions), start)


def check_exactly_once(tails, sessions, last_seq):
    """Every tail received seqs 1..last_seq exactly once, in order."""
    want = list(range(1, last_seq + 1))
    for sid in sessions:
        got = tails[sid]["ids"]
        if got != want:
            dups = len(got) - len(set(got))
            missing = sorted(set(want) - set(got))[:10]
            raise H.TestFailure("%s: received %d events (%d duplicates, missing %s...), "
                                "expected seqs 1..%d in order; head %r"
                                % (sid, len(got), dups, missing, last_seq, got[:12]))
