"""Retention: --retention-bytes keeps a session's log near its bound by
deleting the oldest segments; --retention-age deletes segments whose newest
event is too old. Stats follow (first_seq, events), subscribers from before
the retained history get one sluice.gap then the oldest retained event, and
a restart keeps what retention left."""

import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sluice_harness as H  # noqa: E402

ND = [("Content-Type", "application/x-ndjson")]


def req(srv, method, path, body=b"", headers=()):
    return H.http1_request(srv.host, srv.port, method, path, headers=headers, body=body, timeout=20)


def batch(srv, sid, first, n, size=200):
    body = "\n".join(json.dumps({"data": "event %d %s" % (first + i, "x" * size)}) for i in range(n))
    r = req(srv, "POST", "/v1/sessions/%s/events" % sid, body=body.encode(), headers=ND)
    H.check_eq(r.status, 200, "batch publish")
    return r.json()


def folder_bytes(path):
    """Bytes of the files in path; a file retention unlinks meanwhile counts 0."""
    total = 0
    for f in os.listdir(path):
        try:
            total += os.path.getsize(os.path.join(path, f))
        except FileNotFoundError:
            pass
    return total


def read_from(srv, sid, frm):
    out = subprocess.run(["curl", "-sS", "-N", "--max-time", "1.5",
                          srv.url("/v1/sessions/%s/events?from=%d" % (sid, frm))],
                         capture_output=True, timeout=15).stdout.decode()
    return out


def server_on(data_dir, extra):
    """A Server on a data dir that outlives it."""
    srv = H.Server(bare=True)
    srv.args = ["--listen", "127.0.0.1:0", "--data-dir", data_dir, "--ready-file", srv.ready_file] + extra
    return srv


def test_retention_bytes(srv, data_dir):
    bound = 200 * 1024
    for k in range(4):
        batch(srv, "rb", k * 3000 + 1, 3000)
        H.check(folder_bytes(os.path.join(data_dir, "rb")) <= bound + 64 * 1024,
                "log within bound + one segment")
    # Removals finish after the last write's sync round: wait until stable.
    st, prev = None, None
    for _ in range(50):
        st = req(srv, "GET", "/v1/sessions/rb").json()
        if st == prev:
            break
        prev = st
        time.sleep(0.3)
    H.check_eq(st["last_seq"], 12000, "last seq")
    H.check(st["first_seq"] > 1, "first_seq moved: %r" % st)
    H.check_eq(st["events"], st["last_seq"] - st["first_seq"] + 1, "events counts what is retained")
    segs = sorted(os.listdir(os.path.join(data_dir, "rb")))
    H.check_eq(int(segs[0].split(".")[0]), st["first_seq"], "oldest file is first_seq")
    out = read_from(srv, "rb", 1)
    want = 'event: sluice.gap\ndata: {"from":1,"to":%d}\n\nid: %d\n' % (st["first_seq"] - 1, st["first_seq"])
    H.check(out.startswith(want), "gap then the oldest retained: %r" % out[:120])
    ids = [int(l[4:]) for l in out.splitlines() if l.startswith("id: ")]
    H.check_eq(ids, list(range(st["first_seq"], 12001)), "every retained event once, in order")
    return st


def test_retention_age(srv):
    batch(srv, "ra", 1, 3000)
    time.sleep(2.5)
    batch(srv, "ra", 3001, 300)  # new records; the old segments are now past the age
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        st = req(srv, "GET", "/v1/sessions/ra").json()
        if st["first_seq"] > 1:
            break
        time.sleep(0.2)
    H.check(st["first_seq"] > 1, "age retention removed old segments: %r" % st)
    H.check(st["first_seq"] <= 3001, "recent events kept: %r" % st)
    out = read_from(srv, "ra", st["first_seq"])
    ids = [int(l[4:]) for l in out.splitlines() if l.startswith("id: ")]
    H.check_eq(ids[-1], 3300, "newest kept")


def main():
    H.require_tools("curl")
    passed = failed = 0
    keep = H.tempfile.mkdtemp(prefix="sluice-ret-")
    data = os.path.join(keep, "data")
    flags = ["--segment-bytes", "64k", "--retention-bytes", "200k"]
    try:
        with server_on(data, flags) as srv:
            st = test_retention_bytes(srv, data)
            srv.assert_healthy("retention")
        # Restart on the same files: retention's result survives.
        with server_on(data, flags) as srv2:
            st2 = req(srv2, "GET", "/v1/sessions/rb").json()
            H.check_eq((st2["first_seq"], st2["last_seq"], st2["events"]),
                       (st["first_seq"], st["last_seq"], st["events"]), "stats after restart")
        passed += 1
        print("ok   test_retention_bytes")
    except H.TestFailure as e:
        failed += 1
        print("FAIL test_retention_bytes: %s" % e)
    finally:
        H.shutil.rmtree(keep, ignore_errors=True)
    with H.Server(args=["--segment-bytes", "64k", "--retention-age", "2"]) as srv:
        try:
            test_retention_age(srv)
            passed += 1
            print("ok   test_retention_age")
        except H.TestFailure as e:
            failed += 1
            print("FAIL test_retention_age: %s" % e)
    print("test_sessions_retention: %d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
