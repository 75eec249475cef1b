"""Sessions: many sessions under a small open-file bound, listing, and a
startup time that does not grow with the data.

- 5,000 sessions of 3 events each are published (one NDJSON batch per
  session over PUBLISHERS keep-alive connections) with --max-open-files 64;
  the server's /proc/PID/fd count, sampled every few ms, never exceeds
  64 + FD_SLACK, during and after.
- GET /v1/sessions pages through all 5,000 exactly once, in id order, with
  each session's stats.
- SIGTERM and start again on the same data dir: startup time (spawn to
  ready file) t1. Then ~50 MB more go to BIG_SESSIONS sessions, SIGTERM,
  start again: t2 <= max(2 * t1, t1 + 1 s) -- startup must not read the
  data. After each restart every session's stats are as before and reading
  sessions from seq 1 gives their exact events.
"""

import calendar
import json
import os
import shutil
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sluice_harness as H  # noqa: E402
from test_sessions_durability import logfmt, read_events, server_on  # noqa: E402

SESSIONS = 5000
EVENTS_EACH = 3
MAX_OPEN_FILES = 64
FD_SLACK = 40   # stdio, listeners, io_uring, eventfds, data dir, connections
PUBLISHERS = 4
BIG_SESSIONS = ("m00007", "m02500", "m04999")
BIG_EVENT_BYTES = 60000
BIG_BATCH = 4                        # events per NDJSON request (~240 KB)
BIG_BYTES_TOTAL = 50 * 1000 * 1000
SHUTDOWN_GRACE = 10.0
SERVER_ARGS = ["--max-open-files", str(MAX_OPEN_FILES), "--segment-bytes", "4m",
               "--shutdown-grace", "%g" % SHUTDOWN_GRACE]


def sid(i):
    return "m%05d" % i


def small_data(i, k):
    return "%s-e%d" % (sid(i), k)


def big_data(name, seq):
    head = "%s-%d-" % (name, seq)
    return head + chr(ord("A") + seq % 26) * (BIG_EVENT_BYTES - len(head))


class FdWatch(threading.Thread):
    """Samples the server's open fd count until stopped; keeps the max."""

    def __init__(self, srv):
        super().__init__(daemon=True)
        self.srv, self.stop, self.max, self.samples = srv, threading.Event(), 0, 0

    def run(self):
        while not self.stop.is_set():
            try:
                n = self.srv.fd_count()
            except OSError:
                return
            self.max = max(self.max, n)
            self.samples += 1
            self.stop.wait(0.005)

    def finish(self, what):
        self.stop.set()
        self.join(5)
        limit = MAX_OPEN_FILES + FD_SLACK
        print("  %s: fd count max %d over %d samples (limit %d)" % (what, self.max, self.samples, limit))
        H.check(self.max <= limit, "%s: server had %d fds open, more than %d + %d"
                % (what, self.max, MAX_OPEN_FILES, FD_SLACK))


def post_batches(srv, bodies, errors):
    """POSTs (path, body, expected reply) on one keep-alive connection."""
    try:
        sock = H.connect(srv.host, srv.port, timeout=30)
        reader = H.Http1Reader(sock)
        for path, body, want in bodies:
            sock.sendall(H.build_http1("POST", path, headers=[("Content-Type", "application/x-ndjson")],
                                       body=body))
            r = reader.read_response()
            if r.status != 200 or r.json() != want:
                errors.append("%s: %d %r, expected %r" % (path, r.status, r.body[:200], want))
                return
        sock.close()
    except Exception as e:  # reported by the main thread
        errors.append("publisher: %r" % e)


def run_publishers(srv, work):
    """Spreads `work` over PUBLISHERS connections; fails on any error."""
    errors = []
    threads = [threading.Thread(target=post_batches, args=(srv, work[i::PUBLISHERS], errors))
               for i in range(PUBLISHERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
        H.check(not t.is_alive(), "a publisher did not finish")
    H.check(not errors, "; ".join(errors[:5]))


def create_sessions(srv):
    work = []
    for i in range(SESSIONS):
        lines = [json.dumps({"data": small_data(i, k)}) for k in range(1, EVENTS_EACH + 1)]
        work.append(("/v1/sessions/%s/events" % sid(i), ("\n".join(lines) + "\n").encode(),
                     {"first_seq": 1, "last_seq": EVENTS_EACH}))
    run_publishers(srv, work)


def append_big(srv, stats):
    """~BIG_BYTES_TOTAL of data spread over BIG_SESSIONS."""
    per = BIG_BYTES_TOTAL // len(BIG_SESSIONS) // BIG_EVENT_BYTES
    work = []
    for name in BIG_SESSIONS:
        seq = stats[name]["last_seq"] + 1
        end = seq + per
        while seq < end:
            n = min(BIG_BATCH, end - seq)
            lines = [json.dumps({"data": big_data(name, s)}) for s in range(seq, seq + n)]
            work.append(("/v1/sessions/%s/events" % name, ("\n".join(lines) + "\n").encode(),
                         {"first_seq": seq, "last_seq": seq + n - 1}))
            seq += n
    # One connection per session keeps each session's batches in order.
    errors = []
    threads = [threading.Thread(target=post_batches,
                                args=(srv, [w for w in work if "/%s/" % n in w[0]], errors))
               for n in BIG_SESSIONS]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
        H.check(not t.is_alive(), "a big publisher did not finish")
    H.check(not errors, "; ".join(errors[:5]))
    return per


def list_all(srv, limit=1000):
    """Pages through GET /v1/sessions; returns (list of stats, pages)."""
    sock = H.connect(srv.host, srv.port, timeout=30)
    reader = H.Http1Reader(sock)
    out, cursor, pages = [], None, 0
    try:
        for _ in range(SESSIONS // limit + 2):
            path = "/v1/sessions?limit=%d" % limit + ("&cursor=" + cursor if cursor else "")
            sock.sendall(H.build_http1("GET", path))
            r = reader.read_response()
            H.check_eq(r.status, 200, "GET " + path)
            j = r.json()
            out += j["sessions"]
            pages += 1
            if "next" not in j:
                return out, pages
            cursor = j["next"]
    finally:
        sock.close()
    raise H.TestFailure("listing did not end after %d pages" % pages)


def check_listing(srv, want):
    """Every session once, in id order, with the stats in `want` {id: st}."""
    got, pages = list_all(srv)
    H.check_eq(pages, (SESSIONS + 999) // 1000, "pages of 1000")
    ids = [s["id"] for s in got]
    H.check_eq(len(ids), SESSIONS, "sessions listed")
    H.check(ids == sorted(want), "listing is not every id once in order (first diff at %r)"
            % next(((i, a, b) for i, (a, b) in enumerate(zip(ids, sorted(want))) if a != b), None))
    for s in got:
        w = want[s["id"]]
        for k in ("events", "first_seq", "last_seq", "bytes"):
            if s[k] != w[k]:
                raise H.TestFailure("%s: %s is %r, expected %r" % (s["id"], k, s[k], w[k]))
    return {s["id"]: s for s in got}


def expected_small():
    return {sid(i): {"events": EVENTS_EACH, "first_seq": 1, "last_seq": EVENTS_EACH,
                     "bytes": sum(len(small_data(i, k)) for k in range(1, EVENTS_EACH + 1))}
            for i in range(SESSIONS)}


def log_ts(line):
    """Seconds since the epoch from a log line's ts=2026-01-02T03:04:05.678901Z."""
    ts = logfmt(line)["ts"]
    whole, _, frac = ts.rstrip("Z").partition(".")
    return calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S")) + float("0." + (frac or "0"))


class Started:
    """Context manager for a Server already started (its __enter__ would
    start it again): stops it and checks its logs on exit."""

    def __init__(self, srv):
        self.srv = srv

    def __enter__(self):
        return self.srv

    def __exit__(self, et, ev, tb):
        return self.srv.__exit__(et, ev, tb)


def timed_start(data_dir, name):
    """Starts a server on data_dir; returns (Started, seconds to ready)."""
    srv = server_on(data_dir, SERVER_ARGS, name=name)
    t0 = time.monotonic()
    srv.__enter__()             # stops the process itself if start fails
    took = time.monotonic() - t0
    try:
        rec = srv.log_lines("recovered")
        H.check_eq(len(rec), 1, "%s: one msg=recovered line" % name)
        f = logfmt(rec[0])
        H.check_eq((f.get("sessions"), f.get("failed")), (str(SESSIONS), "0"),
                   "%s: recovered sessions, failed: %s" % (name, rec[0]))
    except BaseException:
        srv.__exit__(*sys.exc_info())
        raise
    listening = srv.log_lines("listening")
    gap = log_ts(listening[0]) - log_ts(rec[0]) if listening else float("nan")
    print("  %s: ready %.3fs after spawn (recovered -> listening %.3fs); %s"
          % (name, took, gap, rec[0].split("msg=recovered ")[-1]))
    return Started(srv), took


def stop_timed(srv, what):
    """SIGTERM: the server must exit 0 within --shutdown-grace (plus 1 s
    for the process to go)."""
    code, took = srv.stop(timeout=SHUTDOWN_GRACE * 3)
    srv.stop_result = (code, took)
    print("  %s: SIGTERM to exit %.2fs, code %r" % (what, took, code))
    H.check(code == 0 and took <= SHUTDOWN_GRACE + 1.0,
            "%s: SIGTERM ended with code %r after %.2fs; --shutdown-grace is %gs; last log "
            "lines:\n%s" % (what, code, took, SHUTDOWN_GRACE,
                            "\n".join(srv.stderr_text().splitlines()[-3:])))


def check_small_session(srv, i):
    want = [(k, "message", small_data(i, k)) for k in range(1, EVENTS_EACH + 1)]
    H.check_eq(read_events(srv, sid(i), EVENTS_EACH, linger=0.1), want, "events of " + sid(i))


def check_big_session(srv, name, stats):
    last = stats[name]["last_seq"]
    evs = read_events(srv, name, last, timeout=30, linger=0.1)
    H.check_eq([e[0] for e in evs], list(range(1, last + 1)), name + ": seqs from 1")
    i = int(name[1:])
    for seq, etype, data in evs:
        want = small_data(i, seq) if seq <= EVENTS_EACH else big_data(name, seq)
        if data != want:
            raise H.TestFailure("%s: data of seq %d differs (%d bytes, expected %d)"
                                % (name, seq, len(data), len(want)))


def test_many_sessions(tmp):
    data_dir = os.path.join(tmp, "data")
    want = expected_small()
    with server_on(data_dir, SERVER_ARGS, name="sluiced-create") as srv:
        fds = FdWatch(srv)
        fds.start()
        t0 = time.monotonic()
        create_sessions(srv)
        print("  created %d sessions in %.2fs" % (SESSIONS, time.monotonic() - t0))
        check_listing(srv, want)
        for i in (0, 1234, SESSIONS - 1):
            check_small_session(srv, i)
        time.sleep(0.2)
        fds.finish("creating and listing")
        h = srv.assert_healthy("creating sessions")
        H.check(h["storage"]["open_files"] <= MAX_OPEN_FILES, "storage.open_files %r above %d"
                % (h["storage"]["open_files"], MAX_OPEN_FILES))
        stop_timed(srv, "stop with %d live sessions" % SESSIONS)
    started, t1 = timed_start(data_dir, "sluiced-restart-1")
    with started as srv:
        fds = FdWatch(srv)
        fds.start()
        check_listing(srv, want)
        check_small_session(srv, 4321)
        per = append_big(srv, want)
        for name in BIG_SESSIONS:
            w = want[name]
            w["events"] += per
            w["last_seq"] += per
            w["bytes"] += sum(len(big_data(name, s)) for s in range(EVENTS_EACH + 1, w["last_seq"] + 1))
        stats = check_listing(srv, want)
        fds.finish("appending %d MB" % (BIG_BYTES_TOTAL // 1000000))
        stop_timed(srv, "stop after appending")
    on_disk = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(data_dir) for f in fs)
    print("  data dir holds %.1f MB" % (on_disk / 1e6))
    started, t2 = timed_start(data_dir, "sluiced-restart-2")
    with started as srv:
        fds = FdWatch(srv)
        fds.start()
        check_listing(srv, want)
        check_big_session(srv, BIG_SESSIONS[1], stats)
        check_small_session(srv, 99)
        fds.finish("after the second restart")
    print("  startup: %.3fs before, %.3fs after adding %d MB" % (t1, t2, BIG_BYTES_TOTAL // 1000000))
    H.check(t2 <= max(2 * t1, t1 + 1.0), "startup grew from %.3fs to %.3fs with %d MB more data"
            % (t1, t2, BIG_BYTES_TOTAL // 1000000))


def main():
    tmp = tempfile.mkdtemp(prefix="sluice-many-")
    t0 = time.monotonic()
    ok = True
    try:
        test_many_sessions(tmp)
        print("ok   test_many_sessions (%.2fs)" % (time.monotonic() - t0))
    except H.TestFailure as e:
        ok = False
        print("FAIL test_many_sessions (%.2fs): %s" % (time.monotonic() - t0, e))
    if ok and not os.environ.get("SLUICE_KEEP_TMP"):
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        print("data dir kept in %s" % tmp)
    print("test_sessions_many: %d passed, %d failed" % (int(ok), int(not ok)))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
