"""A segment list the server could not save is never vouched for.

When a session hibernates it copies its segment list into the directory
entry, and SIGTERM writes those lists to the manifest, marking each
session clean: a clean entry is trusted at the next start without looking
at the folder. If that copy runs out of memory the entry keeps the list it
had, which may lack segments written since. Such a list must not be
written as clean (it used to be: the segments rolled after the last good
save, and every event in them, were lost at the next start).

The allocation failure is made with the fault point `save_segments`
(runtime/fault.h), which only Debug builds have: a Release binary skips.
"""

import os
import shutil
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sluice_harness as H  # noqa: E402
import test_sessions_durability as D  # noqa: E402

EVENT = "x" * 1000  # 64 KiB segments hold ~60 of these


def server(data_dir, faults=None):
    srv = D.server_on(data_dir, ["--segment-bytes", "64k", "--session-idle", "0.3"],
                      name="sluiced")
    if faults:
        srv.extra_env["SLUICE_FAULTS"] = faults
    return srv


def wait_hibernated(srv, what):
    deadline = time.monotonic() + 10 * H.slow_factor()
    while srv.health()["sessions"]["live"] != 0:
        if time.monotonic() > deadline:
            raise H.TestFailure("no %s within the deadline" % what)
        time.sleep(0.05)


def main():
    tmp = tempfile.mkdtemp(prefix="sluice-stale-")
    data_dir = os.path.join(tmp, "data")
    srv = server(data_dir, "save_segments:2").start()
    try:
        for i in range(50):
            D.publish(srv, "s1", "%d %s" % (i + 1, EVENT))
        wait_hibernated(srv, "hibernation after 50 events (save 1 succeeds)")
        for i in range(50, 200):
            D.publish(srv, "s1", "%d %s" % (i + 1, EVENT))
        wait_hibernated(srv, "hibernation after 200 events (save 2 fails)")
        srv.send_signal(signal.SIGTERM)
        H.check_eq(srv.wait(30), 0, "exit code after SIGTERM")
        if "fault points armed" not in srv.stderr_text():
            print("SKIP: %s has no fault points (a Release build)" % srv.binary)
            return H.SKIP_EXIT
    finally:
        srv.close()
    srv = server(data_dir).start()
    try:
        evs = D.read_events(srv, "s1", 200)
        H.check_eq(len(evs), 200, "events after restart")
        H.check_eq([e[0] for e in evs], list(range(1, 201)), "seqs after restart")
        H.check_eq(evs[-1][2], "200 " + EVENT, "last event's data")
    finally:
        srv.close()
    shutil.rmtree(tmp, ignore_errors=True)
    print("test_manifest_stale: 1 passed, 0 failed")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except H.TestFailure as e:
        print("FAIL test_manifest_stale: %s" % e)
        print("test_manifest_stale: 0 passed, 1 failed")
        sys.exit(1)
