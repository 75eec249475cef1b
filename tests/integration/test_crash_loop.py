"""Crash loop: kill -9 at random moments, damage segment tails, restart.

Each cycle starts sluiced on the same data dir, has PUBLISHERS threads
publish over keep-alive HTTP/1.1 to a few sessions (mostly `?durable=1`,
some `?ephemeral=1`; every answer's seq is recorded), and SIGKILLs the
server at a random moment. Between some cycles random bytes inside the
last records of some segment files are changed (XOR with a non-zero value,
so each changed byte differs; the record that holds each changed byte is
known from the file's record lengths, read before the damage). After
every restart:

- the server becomes ready (generous timeout: recovery may scan);
- every acknowledged durable event whose record bytes were not damaged is
  served by `?from=1` at its acknowledged seq with its exact data; none is
  served at another seq (renumbered) or twice;
- the served seqs strictly increase, and every served event is one that
  was sent (a publish whose answer the crash swallowed may or may not be
  there, at most once);
- when the damage of the last injection hit an acknowledged durable
  record, the server reports it: a numeric /health storage key naming
  damage or quarantine is non-zero, or a log line's msg names quarantine
  or damage. A damaged event may be missing (reported), never replaced;
- no seq is reissued: every publish answered after the restart has a seq
  above every seq answered before it for that session (durable and
  ephemeral alike).

The last cycle stops the server with SIGTERM: exit 0, no sanitizer report.

Env: SLUICE_CRASH_SEED (replay), SLUICE_CRASH_CYCLES (default 5),
SLUICE_CRASH_PUBLISHERS (default 3), SLUICE_CRASH_DAMAGE (probability that
a cycle ends with damage, default 0.5; one cycle always does).
"""

import collections
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sluice_harness as H  # noqa: E402
import stress_lib as L  # noqa: E402

SEED = L.seed("SLUICE_CRASH_SEED")
CYCLES = L.env_int("SLUICE_CRASH_CYCLES", 5)
PUBLISHERS = L.env_int("SLUICE_CRASH_PUBLISHERS", 3)
DAMAGE_P = L.env_float("SLUICE_CRASH_DAMAGE", 0.5)
SESSIONS = ("cl-a", "cl-b", "cl-c")
RUN_S = (0.3, 1.5)          # publishing time before the kill, per cycle
EPHEMERAL_P = 0.1
PUBLISH_CAP = 5000          # per publisher and cycle: bounds the loop
DAMAGE_TAIL_BYTES = 600     # damage lands within this many bytes of a segment's end
READY_TIMEOUT_S = 60.0      # recovery of a damaged data dir under ASan

RNG = random.Random(SEED)


class Ledger:
    """What the clients know, per session: acknowledged seqs (durable with
    data, ephemeral without), data sent whose answer never came, and the
    seqs whose records were damaged."""

    def __init__(self):
        self.lock = threading.Lock()
        self.durable = {s: {} for s in SESSIONS}        # seq -> data
        self.ephemeral = {s: set() for s in SESSIONS}
        self.unanswered = {s: set() for s in SESSIONS}  # data
        self.damaged = {s: set() for s in SESSIONS}
        self.high = {s: 0 for s in SESSIONS}            # highest seq answered before this run
        self.errors = []

    def answered(self, sid, seq, data, ephemeral):
        with self.lock:
            if seq <= self.high[sid]:
                self.errors.append("%s: seq %d answered after a restart, but seq %d was answered "
                                   "before it (reissued)" % (sid, seq, self.high[sid]))
            elif seq in self.durable[sid] or seq in self.ephemeral[sid]:
                self.errors.append("%s: seq %d answered twice" % (sid, seq))
            if ephemeral:
                self.ephemeral[sid].add(seq)
            else:
                self.durable[sid][seq] = data

    def restart_mark(self):
        for sid in SESSIONS:
            self.high[sid] = max([self.high[sid]] + list(self.durable[sid]) + list(self.ephemeral[sid]))


LEDGER = Ledger()


def server_on(data_dir, name):
    srv = H.Server(bare=True, name=name, expect_clean_exit=False)
    srv.args = ["--listen", "127.0.0.1:0", "--data-dir", data_dir, "--ready-file", srv.ready_file,
                "--workers", "2", "--session-idle", "5"]
    return srv


def publisher(srv, idx, cycle, stop, rng):
    """Publishes until the server goes away or stop is set."""
    try:
        sock = H.connect(srv.host, srv.port, timeout=10.0 * H.slow_factor())
    except OSError:
        return
    reader = H.Http1Reader(sock)
    try:
        for n in range(PUBLISH_CAP):
            if stop.is_set():
                return
            sid = rng.choice(SESSIONS)
            eph = rng.random() < EPHEMERAL_P
            data = "c%d-p%d-%d-%s" % (cycle, idx, n, "z" * rng.randrange(0, 300))
            path = "/v1/sessions/%s/events?%s=1" % (sid, "ephemeral" if eph else "durable")
            with LEDGER.lock:
                if not eph:
                    LEDGER.unanswered[sid].add(data)
            try:
                sock.sendall(H.build_http1("POST", path, srv.authority(), body=data.encode()))
                r = reader.read_response()
            except (OSError, H.ConnectionClosed, H.TestFailure):
                return                      # the kill: this answer is lost
            if r.status == 503:
                time.sleep(0.05)            # overloaded: retryable, not acknowledged
                continue
            if r.status != 200:
                with LEDGER.lock:
                    LEDGER.errors.append("publish to %s: status %d %r" % (sid, r.status, r.body[:200]))
                return
            seq = r.json()["seq"]
            with LEDGER.lock:
                LEDGER.unanswered[sid].discard(data)
            LEDGER.answered(sid, seq, data, eph)
    finally:
        sock.close()


def run_publishers(srv, cycle):
    stop = threading.Event()
    threads = [threading.Thread(target=publisher,
                                args=(srv, i, cycle, stop, random.Random(RNG.random())))
               for i in range(PUBLISHERS)]
    for t in threads:
        t.start()
    return stop, threads


def inject_damage(data_dir):
    """Changes 1-3 bytes near the end of the last segment of 1-2 sessions;
    returns {session: seqs of the complete records hit} (a byte in a torn
    tail hits no complete record)."""
    hit = {}
    for sid in RNG.sample(SESSIONS, RNG.randrange(1, 3)):
        segs = L.session_segments(data_dir, sid)
        if not segs:
            continue
        path = segs[-1]
        size = os.path.getsize(path)
        lo = max(L.SEGMENT_HEADER_BYTES, size - DAMAGE_TAIL_BYTES)
        if size <= lo:
            continue
        records = L.segment_records(path, full_from=lo)
        offsets = sorted(RNG.sample(range(lo, size), min(size - lo, RNG.randrange(1, 4))))
        L.damage_bytes(path, offsets, RNG)
        seqs = {seq for off, n, seq in records for o in offsets if off <= o < off + n}
        hit[sid] = seqs
        print("  damaged %s at %s (file %d bytes): records %s"
              % (os.path.relpath(path, data_dir), offsets, size, sorted(seqs) or "none (torn tail)"))
    return hit


def verify(srv, cycle, hit):
    """Checks the restarted server against the ledger; returns errors."""
    errors = []
    health = srv.health(timeout=10.0 * H.slow_factor())
    counters = L.storage_damage_counters(health)
    logs = L.damage_log_lines(srv.stderr_text())
    for sid in SESSIONS:
        with LEDGER.lock:
            acked = dict(LEDGER.durable[sid])
            sent = set(LEDGER.unanswered[sid])
            damaged = set(LEDGER.damaged[sid])
        if not acked and not sent:
            continue
        want_last = max([s for s in acked if s not in damaged], default=0)
        events = L.read_session(srv, sid, want_last)
        got = {}
        prev = 0
        for ident, etype, data in events:
            if etype != "message":
                continue            # sluice.gap naming a quarantined range, for instance
            if ident is None or ident <= prev:
                errors.append("%s: seq %r served after %d" % (sid, ident, prev))
            prev = ident if ident is not None else prev
            got[ident] = data
        by_data = collections.defaultdict(list)
        for seq, data in got.items():
            by_data[data].append(seq)
        for seq, data in sorted(acked.items()):
            if got.get(seq) == data:
                continue
            elsewhere = [s for s in by_data.get(data, []) if s != seq]
            if elsewhere:
                errors.append("%s: acknowledged seq %d served as seq %s (renumbered)" % (sid, seq, elsewhere))
            elif seq in damaged:
                continue            # its bytes were damaged: may be missing, reported below
            elif seq in got:
                errors.append("%s: seq %d holds %r, acknowledged with %r" % (sid, seq, got[seq][:40], data[:40]))
            else:
                errors.append("%s: acknowledged durable seq %d (undamaged) is missing" % (sid, seq))
        known = set(acked.values()) | sent
        for seq, data in got.items():
            if data not in known:
                errors.append("%s: seq %d holds data nobody sent: %r" % (sid, seq, data[:60]))
            if len(by_data[data]) > 1:
                errors.append("%s: data %r served at seqs %s" % (sid, data[:40], by_data[data]))
        with LEDGER.lock:
            for seq, data in got.items():
                if data in LEDGER.unanswered[sid]:
                    LEDGER.unanswered[sid].discard(data)   # kept: now it counts as written
                    LEDGER.durable[sid][seq] = data
        print("  %s: %d events served, %d acknowledged, %d damaged"
              % (sid, len(got), len(acked), len(damaged)))
    acked_hit = {sid: seqs for sid, seqs in hit.items() if seqs & set(LEDGER.durable[sid])}
    if acked_hit:
        reported = {k: v for k, v in counters.items() if v}
        print("  damage report: /health %s, %d log line(s)%s"
              % (reported or "none", len(logs), (": " + logs[0][:300]) if logs else ""))
        if not reported and not logs:
            errors.append("acknowledged records %s were damaged but the server reported nothing "
                          "(/health storage %s, no log line naming quarantine or damage)"
                          % (acked_hit, health.get("storage")))
    return errors


def cycle_once(data_dir, cycle, hit, last):
    name = "sluiced#%d" % cycle
    srv = server_on(data_dir, name)
    failed = []
    t0 = time.monotonic()
    with srv:
        print("cycle %d: ready in %.1fs" % (cycle, time.monotonic() - t0))
        if cycle:
            failed += verify(srv, cycle, hit)
        LEDGER.restart_mark()
        stop, threads = run_publishers(srv, cycle)
        time.sleep(RNG.uniform(*RUN_S))
        if last:
            stop.set()
            for t in threads:
                t.join(30 * H.slow_factor())
            code, took = srv.stop(signal.SIGTERM)
            if code != 0:
                failed.append("SIGTERM: exit %r after %.1fs; stderr tail:\n%s"
                              % (code, took, srv.stderr_text()[-3000:]))
        else:
            srv.proc.kill()
            srv.proc.wait(30)
            stop.set()
            for t in threads:
                t.join(30 * H.slow_factor())
        with LEDGER.lock:
            failed += LEDGER.errors
            LEDGER.errors = []
        if failed:
            print("%s stderr tail:\n%s" % (name, srv.stderr_text()[-3000:]))
    return failed


def main():
    H.READY_TIMEOUT_S = READY_TIMEOUT_S
    tmp = tempfile.mkdtemp(prefix="sluice-crash-")
    data_dir = os.path.join(tmp, "data")
    damage_cycles = {c for c in range(1, CYCLES) if RNG.random() < DAMAGE_P}
    if CYCLES > 1 and not damage_cycles:
        damage_cycles.add(RNG.randrange(1, CYCLES))
    failed = []
    hit = {}
    try:
        for cycle in range(CYCLES + 1):
            last = cycle == CYCLES
            errs = cycle_once(data_dir, cycle, hit, last)
            for e in errs:
                print("  FAIL cycle %d: %s" % (cycle, e))
            failed += ["cycle %d: %s" % (cycle, e) for e in errs]
            if errs:
                break
            hit = {}
            if cycle + 1 in damage_cycles and not last:
                hit = inject_damage(data_dir)
                with LEDGER.lock:
                    for sid, seqs in hit.items():
                        LEDGER.damaged[sid] |= seqs
            sys.stdout.flush()
    except H.TestFailure as e:
        failed.append(str(e))
    if failed:
        print("data dir kept in %s" % data_dir)
        print("FAIL test_crash_loop (seed %d): %d problem(s); first: %s" % (SEED, len(failed), failed[0]))
        sys.exit(1)
    shutil.rmtree(tmp, ignore_errors=True)
    print("test_crash_loop: ok, %d kill -9 cycles, damage after cycles %s (seed %d)"
          % (CYCLES, sorted(c - 1 for c in damage_cycles), SEED))


if __name__ == "__main__":
    main()
