"""A stopped (SIGSTOP) subscriber is a paused peer, not a dead one.

The rule (README "Peers and liveness"): a stopped process's kernel keeps
acking until its receive buffer is full, then advertises a zero window
and answers the window probes -- exactly a live client that is not
reading. The watchdog keeps it (nothing is lost: it catches up from the
log when it runs again) unless --paused-peer-limit is set, which reaps it
after that long paused. Separately, an HTTP/2 connection whose PING the
peer's kernel took (nothing of ours queued) but whose HTTP/2 layer never
answered is closed by the PING backstop: that is a stopped process on an
idle stream.

Each case runs sluiced in its own network namespace and curl (HTTP/2,
prior knowledge) in a second one:

1. default flags (grace 3 s): curl stopped for 3x grace while ~500 KB/s
   of events flow: /debug/connections shows it paused, nothing is reaped;
   after SIGCONT it receives every event 1..last, no gap;
2. --paused-peer-limit 3: the same stop is reaped (reason paused_limit),
   its session seat released;
3. --h2-ping-interval 1 --h2-ping-timeout 1.5 on an idle session: the
   stopped curl is closed (closed_ping_timeout 1), a running one stays.
"""

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import netns_harness as N  # noqa: E402
import sluice_harness as H  # noqa: E402

GRACE = 3.0
INTERVAL = 0.5
BASE_ARGS = ["--dead-peer-grace", str(GRACE), "--watchdog-interval", str(INTERVAL),
             "--workers", "2", "--session-ring-bytes", "1m", "--ring-page-bytes", "65536"]
EVENT_BYTES = 1000


def event_data(seq):
    head = "s%d-" % seq
    return head + "x" * (EVENT_BYTES - len(head))


class Publisher(threading.Thread):
    """Batches of `batch` events every `every` seconds into sid."""

    def __init__(self, pair, srv, sid, batch=50, every=0.1):
        super().__init__(daemon=True)
        self.sock = pair.connect(srv.port, timeout=10)
        self.reader = H.Http1Reader(self.sock)
        self.sid, self.batch, self.every = sid, batch, every
        self.stop = threading.Event()
        self.last = 0
        self.error = None

    def run(self):
        try:
            while not self.stop.is_set():
                first = self.last + 1
                lines = [json.dumps({"data": event_data(s)})
                         for s in range(first, first + self.batch)]
                self.sock.sendall(H.build_http1(
                    "POST", "/v1/sessions/%s/events" % self.sid, N.SERVER_IP,
                    headers=[("Content-Type", "application/x-ndjson")],
                    body=("\n".join(lines) + "\n").encode()))
                r = self.reader.read_response()
                H.check_eq(r.status, 200, "publish status")
                self.last = first + self.batch - 1
                time.sleep(self.every)
        except Exception as e:  # reported by the main thread
            self.error = repr(e)
        finally:
            self.sock.close()


class Curl:
    """curl --http2-prior-knowledge streaming one SSE URL into a file, in the
    client namespace."""

    def __init__(self, pair, srv, path):
        self.out = tempfile.NamedTemporaryFile(prefix="sluice-curl-", delete=False)
        self.proc = subprocess.Popen(
            pair.exec_prefix("client") +
            ["curl", "-sSN", "--http2-prior-knowledge", "--max-time", "120",
             "http://%s:%d%s" % (N.SERVER_IP, srv.port, path)],
            stdout=self.out, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)

    def seqs(self):
        with open(self.out.name, "rb") as f:
            text = f.read().decode("utf-8", "replace")
        return [int(x) for x in re.findall(r"^id: (\d+)$", text, re.M)]

    def stop(self):
        self.proc.send_signal(signal.SIGSTOP)

    def cont(self):
        self.proc.send_signal(signal.SIGCONT)

    def close(self):
        self.cont()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self.out.close()
        os.unlink(self.out.name)


def wait_for(what, fn, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(0.1)
    raise H.TestFailure("timed out after %.1fs waiting for %s" % (timeout, what))


def subscribers(srv, sid):
    return srv.session(sid)["subscribers"]


def curl_row(srv):
    rows = srv.debug_connections("sendq", 50)["rows"]
    return [r for r in rows if r["streams"] > 0 and r["proto"] == "h2"]


def case_stopped_is_kept(pair):
    sid = "stop-kept"
    with N.NsServer(pair, args=BASE_ARGS) as srv:
        H.check_eq(srv.request("PUT", "/v1/sessions/" + sid).status, 201, "PUT")
        curl = Curl(pair, srv, "/v1/sessions/%s/events?from=1" % sid)
        try:
            wait_for("curl subscribed", lambda: subscribers(srv, sid) == 1, 10)
            pub = Publisher(pair, srv, sid)
            pub.start()
            wait_for("events reaching curl", lambda: len(curl.seqs()) > 100, 10)
            curl.stop()
            # Its buffers fill, then it is paused: answered window probes.
            row = wait_for("the stopped curl judged paused",
                           lambda: [r for r in curl_row(srv) if r.get("watchdog") == "paused"],
                           10)[0]
            print("  stopped curl: %s" % {k: row[k] for k in (
                "sendq", "unacked_bytes", "snd_wnd", "probes", "watchdog", "outq_bytes")})
            t_paused = time.monotonic()
            while time.monotonic() < t_paused + 3 * GRACE:
                h = srv.timed_health(1.0 * H.slow_factor(), "while curl is stopped")
                wd = h["watchdog"]
                H.check_eq((wd["reaped_send_stall"], wd["reaped_peer_closed"],
                            wd["reaped_paused"]), (0, 0, 0), "reaps while curl is stopped")
                time.sleep(0.3)
            H.check_eq(subscribers(srv, sid), 1, "curl's subscription while stopped")
            pub.stop.set()
            pub.join(10)
            H.check(pub.error is None, "publisher: %s" % pub.error)
            curl.cont()
            last = pub.last
            wait_for("curl to receive seq %d" % last,
                     lambda: curl.seqs() and curl.seqs()[-1] >= last, 30 * H.slow_factor())
            seqs = curl.seqs()
            H.check_eq(seqs, list(range(1, last + 1)), "curl's seqs after SIGCONT")
            print("  stopped %.1fs, resumed: seqs 1..%d, no gap, nothing reaped"
                  % (3 * GRACE, last))
            H.check_eq(srv.reap_lines(), [], "reap log lines")
        finally:
            curl.close()


def case_paused_limit_reaps(pair):
    sid = "stop-limit"
    limit = 3.0
    with N.NsServer(pair, args=BASE_ARGS + ["--paused-peer-limit", str(limit)]) as srv:
        H.check_eq(srv.request("PUT", "/v1/sessions/" + sid).status, 201, "PUT")
        curl = Curl(pair, srv, "/v1/sessions/%s/events?from=1" % sid)
        pub = None
        try:
            wait_for("curl subscribed", lambda: subscribers(srv, sid) == 1, 10)
            pub = Publisher(pair, srv, sid)
            pub.start()
            wait_for("events reaching curl", lambda: len(curl.seqs()) > 100, 10)
            curl.stop()
            t_stop = time.monotonic()
            wait_for("the paused curl reaped",
                     lambda: srv.health()["watchdog"]["reaped_paused"] == 1, 15 * H.slow_factor())
            took = time.monotonic() - t_stop
            lines = srv.reap_lines()
            H.check_eq(len(lines), 1, "reap lines")
            H.check_eq(lines[0].get("reason"), "paused_limit", "reap reason")
            wd = srv.health()["watchdog"]
            H.check_eq((wd["reaped_send_stall"], wd["reaped_peer_closed"]), (0, 0), "other reaps")
            wait_for("its seat released", lambda: subscribers(srv, sid) == 0, 5)
            print("  stopped curl reaped %.1fs after SIGSTOP with --paused-peer-limit %.0f"
                  % (took, limit))
            H.check(took >= limit, "reaped before the paused limit")
        finally:
            if pub:
                pub.stop.set()
                pub.join(10)
            curl.close()


def case_ping_closes_stopped_idle(pair):
    sid = "stop-ping"
    args = BASE_ARGS + ["--h2-ping-interval", "1", "--h2-ping-timeout", "1.5"]
    with N.NsServer(pair, args=args) as srv:
        H.check_eq(srv.request("PUT", "/v1/sessions/" + sid).status, 201, "PUT")
        stopped = Curl(pair, srv, "/v1/sessions/%s/events" % sid)
        running = Curl(pair, srv, "/v1/sessions/%s/events" % sid)
        try:
            wait_for("both subscribed", lambda: subscribers(srv, sid) == 2, 10)
            stopped.stop()
            t0 = time.monotonic()
            wait_for("the stopped curl closed by the PING backstop",
                     lambda: srv.health()["guard"]["closed_ping_timeout"] == 1,
                     10 * H.slow_factor())
            took = time.monotonic() - t0
            wait_for("one subscriber left", lambda: subscribers(srv, sid) == 1, 5)
            time.sleep(3)  # several more PING rounds: the running one answers them
            h = srv.health()
            H.check_eq(h["guard"]["closed_ping_timeout"], 1, "PING closes")
            H.check_eq(subscribers(srv, sid), 1, "the running curl still subscribed")
            H.check(running.proc.poll() is None, "the running curl exited")
            H.check_eq(h["watchdog"]["reaped_paused"] + h["watchdog"]["reaped_send_stall"], 0,
                       "watchdog reaps")
            print("  idle stopped curl closed %.1fs after SIGSTOP; the running one stays" % took)
        finally:
            stopped.close()
            running.close()


def main():
    N.require_netns()
    suite = H.Suite("test_watchdog_sigstop")
    pair = N.NetnsPair("ws")

    @suite.case
    def test_sigstop_paused_is_kept_and_catches_up():
        case_stopped_is_kept(pair)

    @suite.case
    def test_sigstop_reaped_at_paused_peer_limit():
        case_paused_limit_reaps(pair)

    @suite.case
    def test_sigstop_idle_h2_closed_by_ping():
        case_ping_closes_stopped_idle(pair)

    suite.run(fixture=pair)


if __name__ == "__main__":
    main()
