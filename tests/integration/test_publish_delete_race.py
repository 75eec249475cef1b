"""Publishes racing DELETE of their session are all answered.

A publish whose events were appended but not yet written when its
session was deleted waited for a write the removal had dropped: it was
never answered (the client hung) and the session actor, still owing the
answer, never ended. Now such a publish is answered 503 (its events were
not stored: the delete came first) and the session ends.

Several keep-alive publishers (durable, so answers wait for the sync) and
one client that deletes the session over and over; every request must be
answered within the deadline, and afterwards every session hibernates.
"""

import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sluice_harness as H  # noqa: E402

PUBLISHERS = 4
DURATION_S = 3.0


def publisher(srv, idx, stop, out):
    s = H.connect(srv.host, srv.port, timeout=10 * H.slow_factor())
    reader = H.Http1Reader(s)
    n = 0
    try:
        while not stop.is_set():
            q = "durable=1" if n % 2 == 0 else "ephemeral=1" if n % 5 == 0 else "x=1"
            s.sendall(H.build_http1("POST", "/v1/sessions/race/events?" + q,
                                    body=b"p%d-%d" % (idx, n)))
            r = reader.read_response()  # raises on a timeout: an unanswered publish
            out.append(r.status)
            n += 1
    except Exception as e:  # noqa: BLE001 - reported by the test
        out.append(repr(e))
    finally:
        s.close()


def main():
    with H.Server(args=["--session-idle", "0.3"]) as srv:
        stop = threading.Event()
        results = [[] for _ in range(PUBLISHERS)]
        threads = [threading.Thread(target=publisher, args=(srv, i, stop, results[i]))
                   for i in range(PUBLISHERS)]
        for t in threads:
            t.start()
        deletes = 0
        end = time.monotonic() + DURATION_S
        while time.monotonic() < end:
            r = H.http1_request(srv.host, srv.port, "DELETE", "/v1/sessions/race")
            H.check(r.status in (200, 204, 404), "DELETE answered %d" % r.status)
            deletes += 1
            time.sleep(0.005)
        stop.set()
        for t in threads:
            t.join(30)
        flat = [x for r in results for x in r]
        bad = [x for x in flat if x not in (200, 503)]
        H.check(not bad, "publishes not answered 200/503: %r" % bad[:5])
        H.check(flat.count(200) > 0, "no publish succeeded")
        deadline = time.monotonic() + 10 * H.slow_factor()
        while srv.health()["sessions"]["live"] != 0:
            H.check(time.monotonic() < deadline, "a session actor never ended: %r"
                    % srv.health()["sessions"])
            time.sleep(0.05)
        srv.assert_healthy("after the race")
        print("publishes: %d answered (%d ok, %d 503), %d deletes"
              % (len(flat), flat.count(200), flat.count(503), deletes))
    print("test_publish_delete_race: 1 passed, 0 failed")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except H.TestFailure as e:
        print("FAIL test_publish_delete_race: %s" % e)
        print("test_publish_delete_race: 0 passed, 1 failed")
        sys.exit(1)
