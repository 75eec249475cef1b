"""Group commit across sessions: durable publishes into many sessions at
once, with every round a shared syncfs (--fsync-scope fs) and with auto
(a syncfs when another session's round runs). Every durable
publish is answered 200 with its seq in order; after kill -9 and a restart
each session holds exactly what was acknowledged, byte for byte; /health
counts the syncfs rounds. In Debug builds (fault points compiled in) a
failing syncfs fails the waiting publishes with 5xx instead of
acknowledging them, and the server stays healthy. One session's durable
publishes from many connections at once: by default one sync is in flight
at a time (none beside a round); with --fsync-overlap 3 extra fdatasyncs run
beside it; either way every publish is answered in order and survives
kill -9. --fsync-overlap beyond 3 is refused at start.
"""

import json
import os
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sluice_harness as H  # noqa: E402

SESSIONS = 12
EVENTS = 30


def durable_publishers(srv, conns, events, target):
    """conns keep-alive HTTP/1.1 connections at once, each publishing events
    durable events; target(i, k) gives connection i's k-th (session, body).
    Returns {(i, k): seq}; every publish must be answered 200."""
    got, errors = {}, []

    def one(i):
        s = H.connect(srv.host, srv.port, 20.0)
        rd = H.Http1Reader(s)
        try:
            for k in range(events):
                sid, body = target(i, k)
                s.sendall(H.build_http1("POST", "/v1/sessions/%s/events?durable=1" % sid,
                                        body=body))
                r = rd.read_response()
                if r.status != 200:
                    errors.append("%s #%d: %d %s" % (sid, k, r.status, r.body[:120]))
                    return
                got[(i, k)] = r.json()["seq"]
        except Exception as e:  # noqa: BLE001 - reported as a failure below
            errors.append("connection %d: %r" % (i, e))
        finally:
            s.close()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    H.check(not errors, "durable publishes answered 200: %s" % errors[:3])
    return got


def publish_all(srv, prefix):
    """Each session gets EVENTS durable publishes from its own connection,
    all sessions at once; each session's seqs are 1..EVENTS in order."""
    def target(i, k):
        sid = "%s-%d" % (prefix, i)
        return sid, b"%s:%d" % (sid.encode(), k)

    got = durable_publishers(srv, SESSIONS, EVENTS, target)
    for i in range(SESSIONS):
        H.check_eq([got.get((i, k)) for k in range(EVENTS)], list(range(1, EVENTS + 1)),
                   "%s-%d seqs" % (prefix, i))


def read_back(srv, sid, n):
    """The session's events from seq 1 over SSE (HTTP/1.1), n of them."""
    s = H.connect(srv.host, srv.port, 10.0)
    s.sendall(H.build_http1("GET", "/v1/sessions/%s/events?from=1" % sid))
    buf = b""
    while buf.count(b"\n\n") < n:
        chunk = s.recv(65536)
        H.check(chunk, "stream open while reading %s back" % sid)
        buf += chunk
    s.close()
    return [line[6:] for line in buf.split(b"\n") if line.startswith(b"data: ")][:n]


def server_on(data_dir, extra, name, expect_clean_exit=True):
    """A Server whose data dir outlives it: bare, so every flag is ours."""
    srv = H.Server(bare=True, name=name, expect_clean_exit=expect_clean_exit)
    srv.args = ["--listen", "127.0.0.1:0", "--data-dir", data_dir,
                "--ready-file", srv.ready_file] + list(extra)
    return srv


def check_restart(tmp, args, name):
    data_dir = os.path.join(tmp, name)
    with server_on(data_dir, args, name + "-1", expect_clean_exit=False) as srv:
        publish_all(srv, name)
        deadline = time.monotonic() + 10
        while True:  # /health is a snapshot the monitor renders every interval
            storage = srv.health()["storage"]
            if storage["fsyncs"] > 0 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        srv.send_signal(signal.SIGKILL)
        H.check_eq(srv.wait(10), -signal.SIGKILL, "server killed by SIGKILL")
    with server_on(data_dir, args, name + "-2") as srv2:
        for i in range(SESSIONS):
            sid = "%s-%d" % (name, i)
            data = read_back(srv2, sid, EVENTS)
            H.check_eq(data, [b"%s:%d" % (sid.encode(), k) for k in range(EVENTS)],
                       "%s after kill -9" % sid)
    return storage


def test_scope_fs(tmp):
    storage = check_restart(tmp, ["--fsync-scope", "fs"], "gcfs")
    H.check(storage["syncfs_rounds"] > 0, "rounds served by syncfs: %s" % json.dumps(storage))
    H.check(0 < storage["syncfs_calls"] <= storage["syncfs_rounds"],
            "one syncfs serves one or more rounds: %s" % json.dumps(storage))


def test_scope_auto(tmp):
    check_restart(tmp, ["--fsync-scope", "auto"], "gcauto")


def test_shutdown_closes_fs_rounds(tmp):
    """Every session's last round at SIGTERM is a syncfs: each log must
    still close (the round's end is seen by the close that waits on it),
    so the server stops at once and a restart finds every event."""
    data_dir = os.path.join(tmp, "gcstop")
    with server_on(data_dir, ["--fsync-scope", "fs"], "gcstop-1") as srv:
        for i in range(20):
            r = H.http1_request(srv.host, srv.port, "POST", "/v1/sessions/gcstop-%d/events" % i,
                                body=b"stop-%d" % i)
            H.check_eq(r.status, 200, "publish")
        t0 = time.monotonic()
        srv.send_signal(signal.SIGTERM)
        H.check_eq(srv.wait(15), 0, "exit code after SIGTERM")
        took = time.monotonic() - t0
        H.check(not srv.log_lines("sessions still closing their logs at shutdown"),
                "every session closed its log (took %.2fs)" % took)
    with server_on(data_dir, [], "gcstop-2") as srv2:
        for i in range(20):
            H.check_eq(read_back(srv2, "gcstop-%d" % i, 1), [b"stop-%d" % i], "after restart")


def test_syncfs_failure(tmp):
    if not H.sanitizer_build():
        print("     (fault points are compiled into Debug builds only)")
        return
    with H.Server(args=["--fsync-scope", "fs"], env={"SLUICE_FAULTS": "syncfs"}) as srv:
        r = H.http1_request(srv.host, srv.port, "POST", "/v1/sessions/gcfail/events?durable=1",
                            body=b"x")
        H.check(r.status >= 500, "a publish whose syncfs failed is not acknowledged: %d" % r.status)
        H.check(srv.log_lines("syncfs failed"), "the failure is logged")
        srv.assert_healthy("after a failed syncfs")


OVERLAP_CONNS = 8
OVERLAP_EVENTS = 40


def publish_one_session(srv, sid):
    """OVERLAP_CONNS connections publish OVERLAP_EVENTS durable events each
    into one session, all at once. Returns the bodies in seq order."""
    def target(i, k):
        return sid, b"c%d:%d" % (i, k)

    got = durable_publishers(srv, OVERLAP_CONNS, OVERLAP_EVENTS, target)
    n = OVERLAP_CONNS * OVERLAP_EVENTS
    H.check_eq(sorted(got.values()), list(range(1, n + 1)), "seqs of %d publishes" % n)
    body = {seq: target(*ik)[1] for ik, seq in got.items()}
    return [body[q] for q in range(1, n + 1)]


def check_overlap(tmp, extra, name):
    """Publishes, kills -9, restarts: every acknowledged event is there.
    Returns the storage figures of the first run."""
    data_dir = os.path.join(tmp, name)
    n = OVERLAP_CONNS * OVERLAP_EVENTS
    with server_on(data_dir, extra, name + "-1", expect_clean_exit=False) as srv:
        bodies = publish_one_session(srv, name)
        time.sleep(0.4)  # /health is a snapshot the monitor renders every interval
        storage = srv.health()["storage"]
        srv.send_signal(signal.SIGKILL)
        H.check_eq(srv.wait(10), -signal.SIGKILL, "server killed by SIGKILL")
    with server_on(data_dir, extra, name + "-2") as srv2:
        H.check_eq(read_back(srv2, name, n), bodies, "%s after kill -9" % name)
    return storage


def test_one_sync_in_flight_by_default(tmp):
    storage = check_overlap(tmp, [], "ovdefault")
    H.check(storage["fsyncs"] > 0, "durable publishes were fsynced: %s" % json.dumps(storage))
    H.check_eq(storage["fsyncs_overlapped"], 0,
               "no fdatasync beside a running round by default: %s" % json.dumps(storage))


def test_fsync_overlap(tmp):
    storage = check_overlap(tmp, ["--fsync-overlap", "3"], "ovthree")
    H.check(storage["fsyncs_overlapped"] > 0,
            "extra fdatasyncs beside the rounds with --fsync-overlap 3: %s" % json.dumps(storage))
    r = H.run([H.sluiced_path(), "--fsync-overlap", "4"], timeout=10)
    H.check_eq(r.returncode, 2, "--fsync-overlap 4 is out of range: exit code")
    H.check(b"fsync-overlap" in r.stderr, "the error names the flag: %r" % r.stderr[-300:])


if __name__ == "__main__":
    sys.exit(H.run_cases_in_tmp("test_group_commit",
                                (test_scope_fs, test_scope_auto, test_shutdown_closes_fs_rounds,
                                 test_syncfs_failure, test_one_sync_in_flight_by_default,
                                 test_fsync_overlap)))
