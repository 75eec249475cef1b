"""Runs under load: many runs, several at a time, with random client
disconnects (orphan timeout), cancels, output floods, failures and plain
runs, while /health is probed. Afterwards: no leaked process, no zombie,
fds and RSS back near the baseline, /health fast throughout. Prints the
per-run overhead (spawn and spawn-to-first-output latency, sluiced CPU per
run).

Sized by environment (bench/runs.sh runs the long version):
RUNS_TOTAL (default 120), RUNS_PARALLEL (default 16), RUNS_MIN_SECONDS
(spread the runs over at least this long; default 0)."""

import json
import os
import random
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import runs_lib as R  # noqa: E402
import sluice_harness as H  # noqa: E402

suite = H.Suite("test_run_load")

TOTAL = int(os.environ.get("RUNS_TOTAL", "120"))
PARALLEL = int(os.environ.get("RUNS_PARALLEL", "16"))
MIN_SECONDS = float(os.environ.get("RUNS_MIN_SECONDS", "0"))
KINDS = ["lines"] * 4 + ["cancel"] * 2 + ["disconnect"] * 2 + ["flood"] + ["fail"]


class Subscriber:
    """A raw HTTP/1.1 SSE reader of one session from seq 1."""

    def __init__(self, srv, session):
        self.sock = socket.create_connection((srv.host, srv.port), timeout=20)
        self.sock.sendall(("GET /v1/sessions/%s/events?from=1 HTTP/1.1\r\nHost: x\r\n\r\n"
                           % session).encode())
        self.buf = b""

    def read_until(self, needle, timeout):
        deadline = time.monotonic() + timeout
        while needle not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                return False
            if not data:
                return needle in self.buf
            self.buf += data
            if len(self.buf) > (1 << 20):  # keep the tail only (floods)
                self.buf = self.buf[-4096:]
        return True

    def close(self):
        self.sock.close()


def one_run(srv, i, rng, stats):
    session = "load-%d-%d" % (os.getpid(), i)
    kind = rng.choice(KINDS)
    r = H.http1_request(srv.host, srv.port, "PUT", "/v1/sessions/%s" % session, timeout=20)
    H.check(r.status in (200, 201), "PUT %s" % session)
    sub = Subscriber(srv, session)
    try:
        t0 = time.monotonic()
        if kind == "lines":
            run = R.start_run(srv, session, "lines", ["L%d" % i, "20", "0.01"])
        elif kind in ("cancel", "disconnect"):
            run = R.start_run(srv, session, "df", ["D%d" % i])
        elif kind == "flood":
            run = R.start_run(srv, session, "flood", ["F%d" % i])
        else:
            run = R.start_run(srv, session, "fail", ["X%d" % i, "3"])
        H.check(sub.read_until(b"event: run.start", 20), "%s: no run.start" % session)
        stats["first_event_ms"].append((time.monotonic() - t0) * 1000)
        if kind == "cancel":
            time.sleep(rng.uniform(0, 0.3))
            H.http1_request(srv.host, srv.port, "DELETE", "/v1/sessions/%s/run" % session,
                            timeout=20)
        elif kind == "disconnect":
            time.sleep(rng.uniform(0, 0.3))
            sub.close()
        ex = R.wait_exited(srv, session, timeout=30)
        want = {"lines": "exit", "cancel": "cancelled", "disconnect": "orphaned",
                "flood": "output_limit", "fail": "exit"}[kind]
        H.check_eq(ex["reason"], want, "%s (%s) reason" % (session, kind))
        if kind == "fail":
            H.check_eq(ex["code"], 3, "exit code")
        if kind != "disconnect":
            H.check(sub.read_until(b"event: sluice.closed", 20), "%s: no close seen" % session)
        stats["run_ids"].append(run["run"])
        stats["kinds"][kind] = stats["kinds"].get(kind, 0) + 1
    finally:
        sub.close()


def health_probe(srv, stop, lat):
    while not stop.is_set():
        t0 = time.monotonic()
        r = H.http1_request(srv.host, srv.port, "GET", "/health", timeout=10)
        lat.append((time.monotonic() - t0) * 1000)
        H.check_eq(r.status, 200, "/health during load")
        stop.wait(0.1)


def tsan_build():
    """ThreadSanitizer builds run everything about ten times slower (the
    harness's slow_factor is sized for ASan)."""
    cache = os.path.join(os.environ.get("SLUICE_BUILD_DIR", ""), "CMakeCache.txt")
    try:
        with open(cache) as f:
            return "SLUICE_TSAN:BOOL=ON" in f.read()
    except OSError:
        return False


def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return int(rest[11]) + int(rest[12])  # utime + stime


@suite.case
def test_run_load_no_leaks():
    # Sessions hibernate after 1 s idle, so their log files close too and
    # every fd count must return to the baseline.
    args = ["--run-orphan-timeout", "0.5", "--max-runs", str(max(64, PARALLEL * 2)),
            "--session-idle", "1"]
    with R.server(args=args) as srv:
        time.sleep(0.5)
        base_fds = srv.fd_count()
        base_rss = srv.proc_status("VmRSS")
        cpu0 = cpu_ticks(srv.pid)
        stats = {"first_event_ms": [], "run_ids": [], "kinds": {}, "errors": []}
        lat, stop = [], threading.Event()
        probe = threading.Thread(target=health_probe, args=(srv, stop, lat))
        probe.start()
        next_i = [0]
        lock = threading.Lock()
        t_start = time.monotonic()

        def worker(w):
            rng = random.Random(w * 7919 + TOTAL)
            while True:
                with lock:
                    i = next_i[0]
                    next_i[0] += 1
                if i >= TOTAL:
                    return
                due = t_start + MIN_SECONDS * i / TOTAL
                if due > time.monotonic():
                    time.sleep(due - time.monotonic())
                try:
                    one_run(srv, i, rng, stats)
                except Exception as e:  # counted and reported below
                    stats["errors"].append("run %d: %s" % (i, e))

        workers = [threading.Thread(target=worker, args=(w,)) for w in range(PARALLEL)]
        for t in workers:
            t.start()
        for t in workers:
            t.join(MIN_SECONDS + 600)
        elapsed = time.monotonic() - t_start
        stop.set()
        probe.join(20)
        H.check(not stats["errors"], "%d failed runs, e.g. %s" % (len(stats["errors"]),
                                                                   stats["errors"][:3]))
        H.check_eq(len(stats["run_ids"]), TOTAL, "runs completed")
        h = R.wait_for(lambda: (lambda x: x if x["runs"]["active"] == 0 and x["children"] == 0
                                else None)(srv.health()), "no active run and no child", 15)
        cpu1 = cpu_ticks(srv.pid)
        leaked = [p for rid in stats["run_ids"] for p in R.tree_pids(None, rid)]
        H.check_eq(leaked, [], "processes left by the runs")
        H.check_eq(R.zombies_of(srv.pid), [], "zombie children")
        H.check_eq(h["zombies"], 0, "zombies in /health")
        try:
            R.wait_for(lambda: srv.fd_count() <= base_fds + 2, "fds back to the baseline", 10)
        except H.TestFailure:
            fds = {}
            for fd in os.listdir("/proc/%d/fd" % srv.pid):
                try:
                    t = os.readlink("/proc/%d/fd/%s" % (srv.pid, fd)).split(":")[0]
                except OSError:
                    continue
                fds[t] = fds.get(t, 0) + 1
            raise H.TestFailure("fds: base %d, now %d: %r" % (base_fds, srv.fd_count(), fds))
        rss = srv.proc_status("VmRSS")
        lat.sort()
        p99 = lat[int(len(lat) * 0.99) - 1] if lat else 0
        fe = sorted(stats["first_event_ms"])
        hz = os.sysconf("SC_CLK_TCK")
        print("runs=%d parallel=%d elapsed_s=%.1f kinds=%s" % (TOTAL, PARALLEL, elapsed,
                                                               json.dumps(stats["kinds"])))
        print("health probes=%d p50_ms=%.2f p99_ms=%.2f max_ms=%.2f"
              % (len(lat), lat[len(lat) // 2] if lat else 0, p99, lat[-1] if lat else 0))
        print("post_to_run.start p50_ms=%.1f p99_ms=%.1f; server spawn_ms_avg=%.3f "
              "first_output_ms_avg=%.3f" % (fe[len(fe) // 2], fe[int(len(fe) * 0.99) - 1],
                                            h["runs"]["spawn_ms_avg"],
                                            h["runs"]["first_output_ms_avg"]))
        print("sluiced cpu_ms_per_run=%.2f fds base=%d now=%d rss_kb base=%d now=%d "
              "reaped_orphans=%d killed_leftovers=%d"
              % ((cpu1 - cpu0) * 1000.0 / hz / TOTAL, base_fds, srv.fd_count(), base_rss, rss,
                 h["runs"]["reaped_orphans"], h["runs"]["killed_leftovers"]))
        H.check(p99 < 250 * (12 if tsan_build() else H.slow_factor()), "/health p99 %.1f ms" % p99)
        # (ASan keeps freed memory in its quarantine: a looser bound there)
        slack_kb = 64 * 1024 * (4 if H.sanitizer_build() else 1)
        H.check(rss < base_rss + slack_kb, "RSS grew from %d to %d kB" % (base_rss, rss))


suite.run()
