"""Sessions: slow and stalled subscribers do not hold the server back and
still get every event, from the log once they fell out of the ring.

One session, three HTTP/1.1 SSE subscribers from seq 1: a fast one reading
as fast as it can, a slow one (SO_RCVBUF 4096, reads 1 KiB per second) and
a stalled one (SO_RCVBUF 4096, reads the response head, then nothing). The
server keeps a small ring (--session-ring-bytes 256k, --ring-page-bytes
16384) and little output per connection (--max-conn-output-bytes 64k), so
the slow and stalled streams fall behind the ring.

One publisher sends EVENTS events of ~200 bytes as NDJSON batches at a
steady rate over ~PUBLISH_SECONDS. Checked:
- the fast subscriber's last seq trails the last acknowledged seq by at
  most FAST_LAG_MAX events at every sample (about 10 per second);
- the server's VmRSS stays below baseline + RSS_GROWTH_MAX throughout,
  baseline taken with every subscriber connected, before publishing;
- once publishing stopped, the slow and stalled subscribers read at full
  speed and each receives exactly seqs 1..EVENTS in order with the exact
  data and no sluice.gap, within CATCHUP_SECONDS;
- /health: events.caught_up > 0 (the log served them), events.gapped 0.
"""

import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sluice_harness as H  # noqa: E402
from test_sessions_durability import SseStream  # noqa: E402

SID = "slow-1"
EVENTS = 20000
BATCH = 100
PUBLISH_SECONDS = 10.0
FAST_LAG_MAX = 500
RSS_GROWTH_MAX = 64 << 20
CATCHUP_SECONDS = 30.0
SMALL_RCVBUF = 4096
SERVER_ARGS = ["--session-ring-bytes", "256k", "--ring-page-bytes", "16384",
               "--max-conn-output-bytes", "64k", "--workers", "2"]
# A sanitizer's quarantine keeps freed memory resident by design; a bounded
# one keeps the RSS check meaningful on such builds.
SANITIZER_ENV = {"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=1:quarantine_size_mb=16"}


def event_data(seq):
    """~200 bytes, unique per seq."""
    head = "e%d-" % seq
    return head + chr(ord("a") + seq % 26) * (200 - len(head))


def seq_runs(seqs, limit=12):
    """Compact description of a seq list: "1-2006, 18903-20000"."""
    runs = []
    for q in seqs:
        if runs and q == runs[-1][1] + 1:
            runs[-1][1] = q
        else:
            runs.append([q, q])
    text = ", ".join("%s-%s" % (a, b) if a != b else str(a) for a, b in runs[:limit])
    return text + (", ... (%d runs)" % len(runs) if len(runs) > limit else "")


class Subscriber(threading.Thread):
    """Reads one SSE stream until EVENTS events or its deadline. mode:
    fast (full speed), slow (1 KiB per second), stalled (nothing); slow and
    stalled read at full speed once `release` is set."""

    def __init__(self, srv, mode, release, deadline):
        super().__init__(daemon=True)
        self.mode, self.release, self.deadline = mode, release, deadline
        self.error = None
        self.done_at = None
        self.last_seq = 0
        rcvbuf = None if mode == "fast" else SMALL_RCVBUF
        self.stream = SseStream(srv.host, srv.port, "/v1/sessions/%s/events?from=1" % SID,
                                timeout=10.0, rcvbuf=rcvbuf)

    def run(self):
        s = self.stream
        try:
            while (self.last_seq < EVENTS and not s.ended
                   and time.monotonic() < self.deadline):
                if self.mode == "fast" or self.release.is_set():
                    s.pump(65536, 0.5)
                elif self.mode == "slow":
                    t0 = time.monotonic()
                    s.pump(1024, 1.0)
                    self.release.wait(max(0.0, 1.0 - (time.monotonic() - t0)))
                else:
                    self.release.wait(0.5)
                if s.events and s.events[-1][0] is not None:
                    self.last_seq = s.events[-1][0]
            self.done_at = time.monotonic()
        except Exception as e:  # reported by the main thread
            self.error = repr(e)
        finally:
            s.close()

    def check_all(self):
        H.check(self.error is None, "%s subscriber: %s" % (self.mode, self.error))
        evs = self.stream.events
        gaps = [e for e in evs if e[1] == "sluice.gap"]
        H.check_eq(gaps, [], "%s subscriber: gap notices" % self.mode)
        seqs = [e[0] for e in evs]
        missing = sorted(set(range(1, EVENTS + 1)) - set(seqs))
        H.check(not missing, "%s subscriber: %d of %d events missing; received seq runs %s"
                % (self.mode, len(missing), EVENTS, seq_runs(seqs)))
        H.check_eq(len(evs), EVENTS, "%s subscriber: events received" % self.mode)
        for i, (seq, etype, data) in enumerate(evs, 1):
            if (seq, etype, data) != (i, "message", event_data(i)):
                raise H.TestFailure("%s subscriber: event %d is %r, expected seq %d"
                                    % (self.mode, i, (seq, etype, data[:40]), i))


class RssWatch:
    def __init__(self, srv):
        self.srv = srv
        self.base = srv.proc_status("VmRSS") * 1024
        self.peak = self.base

    def sample(self, what):
        rss = self.srv.proc_status("VmRSS") * 1024
        self.peak = max(self.peak, rss)
        H.check(rss <= self.base + RSS_GROWTH_MAX,
                "server RSS %d MiB during %s exceeds baseline %d MiB + %d MiB"
                % (rss >> 20, what, self.base >> 20, RSS_GROWTH_MAX >> 20))


def publish_steady(srv, fast, rss):
    """Publishes EVENTS at a steady rate; samples the fast subscriber's lag
    and the RSS about 10 times a second. Returns the largest lag seen."""
    sock = H.connect(srv.host, srv.port, timeout=10)
    reader = H.Http1Reader(sock)
    batches = EVENTS // BATCH
    interval = PUBLISH_SECONDS / batches
    t0 = time.monotonic()
    lag_max, next_sample = 0, t0
    try:
        for b in range(batches):
            first = b * BATCH + 1
            lines = [json.dumps({"data": event_data(s)}) for s in range(first, first + BATCH)]
            sock.sendall(H.build_http1("POST", "/v1/sessions/%s/events" % SID,
                                       headers=[("Content-Type", "application/x-ndjson")],
                                       body=("\n".join(lines) + "\n").encode()))
            r = reader.read_response()
            H.check_eq(r.status, 200, "batch %d status" % b)
            H.check_eq(r.json(), {"first_seq": first, "last_seq": first + BATCH - 1},
                       "batch %d seqs" % b)
            now = time.monotonic()
            if now >= next_sample:
                lag = first + BATCH - 1 - fast.last_seq
                lag_max = max(lag_max, lag)
                H.check(lag <= FAST_LAG_MAX, "fast subscriber at seq %d, %d behind the last "
                        "published %d at %.1fs" % (fast.last_seq, lag, first + BATCH - 1, now - t0))
                rss.sample("publishing")
                next_sample = now + 0.1
            time.sleep(max(0.0, t0 + (b + 1) * interval - time.monotonic()))
    finally:
        sock.close()
    print("  published %d events in %.2fs; fast subscriber lag max %d"
          % (EVENTS, time.monotonic() - t0, lag_max))
    return lag_max


def wait_subscribers(srv, n, timeout=10.0):
    deadline = time.monotonic() + timeout
    got = None
    while time.monotonic() < deadline:
        r = H.http1_request(srv.host, srv.port, "GET", "/v1/sessions/" + SID)
        got = r.json().get("subscribers")
        if got == n:
            return
        time.sleep(0.05)
    raise H.TestFailure("subscribers did not reach %d (last %r)" % (n, got))


def test_slow_and_stalled_subscribers(srv):
    H.check_eq(H.http1_request(srv.host, srv.port, "PUT", "/v1/sessions/" + SID).status, 201,
               "PUT session")
    release = threading.Event()
    deadline = time.monotonic() + PUBLISH_SECONDS * 3 + CATCHUP_SECONDS * H.slow_factor()
    subs = {m: Subscriber(srv, m, release, deadline) for m in ("fast", "slow", "stalled")}
    for s in subs.values():
        s.start()
    wait_subscribers(srv, 3)
    rss = RssWatch(srv)
    publish_steady(srv, subs["fast"], rss)
    t_fast = time.monotonic()
    subs["fast"].join(10 * H.slow_factor())
    H.check(not subs["fast"].is_alive(), "fast subscriber still reading 10s after publishing")
    subs["fast"].check_all()
    print("  fast subscriber complete %.2fs after publishing; slow had seq %d, stalled %d"
          % (time.monotonic() - t_fast, subs["slow"].last_seq, subs["stalled"].last_seq))
    H.check(subs["slow"].last_seq < EVENTS // 2, "the slow subscriber was not slow")
    release.set()
    t_rel = time.monotonic()
    catchup_deadline = t_rel + CATCHUP_SECONDS * H.slow_factor()
    while time.monotonic() < catchup_deadline and any(s.is_alive() for s in subs.values()):
        rss.sample("catch-up")
        time.sleep(0.1)
    ev = srv.health()["events"]
    print("  rss baseline %d MiB, peak %d MiB; /health events %s"
          % (rss.base >> 20, rss.peak >> 20, ev))
    problems = []
    for m in ("slow", "stalled"):
        try:
            H.check(not subs[m].is_alive(), "%s subscriber at seq %d after %.0fs of full-speed "
                    "reading" % (m, subs[m].last_seq, CATCHUP_SECONDS * H.slow_factor()))
            subs[m].check_all()
            print("  %s subscriber complete %.2fs after release" % (m, subs[m].done_at - t_rel))
        except H.TestFailure as e:
            problems.append(str(e))
    H.check(not problems, "; ".join(problems))
    rss.sample("the end")
    H.check(ev["caught_up"] > 0, "events.caught_up is %r: no catch-up from the log" % ev["caught_up"])
    H.check_eq(ev["gapped"], 0, "events.gapped")


def main():
    env = SANITIZER_ENV if H.sanitizer_build() else None
    t0 = time.monotonic()
    try:
        with H.Server(args=SERVER_ARGS, env=env) as srv:
            test_slow_and_stalled_subscribers(srv)
            srv.assert_healthy("slow subscribers")
    except H.TestFailure as e:
        print("FAIL test_slow_and_stalled_subscribers (%.2fs): %s" % (time.monotonic() - t0, e))
        print("test_sessions_slow: 0 passed, 1 failed")
        return 1
    print("ok   test_slow_and_stalled_subscribers (%.2fs)" % (time.monotonic() - t0))
    print("test_sessions_slow: 1 passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
