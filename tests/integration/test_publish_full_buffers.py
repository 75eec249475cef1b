"""A publish that fills the session's journal buffers waits for the write
instead of spinning.

A 3000-event NDJSON batch into a 64k-segment session outruns the journal's
two write buffers many times over. The session parks the rest until a write
completes; it must not re-run itself meanwhile. Re-running ran it hundreds
of times per event (on a reactor thread, ahead of the very completion it
waited on: seconds per batch). Checked through /health's scheduler message
count: a few per buffer's worth of events, far below one per event.
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sluice_harness as H  # noqa: E402

ND = [("Content-Type", "application/x-ndjson")]
EVENTS = 3000
MONITOR_S = 0.05


def messages(srv):
    time.sleep(4 * MONITOR_S)  # a fresh snapshot
    return srv.health()["scheduler"]["messages"]


def case_batch_does_not_spin(srv):
    for k in range(2):
        body = "\n".join(json.dumps({"data": "event %d %s" % (k * EVENTS + i, "x" * 200)})
                         for i in range(EVENTS))
        m0 = messages(srv)
        t0 = time.monotonic()
        r = H.http1_request(srv.host, srv.port, "POST", "/v1/sessions/full/events",
                            headers=ND, body=body.encode(), timeout=60)
        took = time.monotonic() - t0
        H.check_eq(r.status, 200, "batch publish")
        H.check_eq(r.json()["last_seq"], (k + 1) * EVENTS, "every event sequenced")
        delta = messages(srv) - m0
        print("  batch %d: %.2fs, %d actor messages" % (k, took, delta))
        H.check(delta < EVENTS, "%d actor messages for %d events: the session spun" % (delta, EVENTS))


def main():
    suite = H.Suite("test_publish_full_buffers")
    for mode in (["--workers", "0"], ["--workers", "2"]):
        def case(mode=mode):
            args = ["--segment-bytes", "64k", "--monitor-interval", str(MONITOR_S)] + mode
            with H.Server(args=args) as srv:
                case_batch_does_not_spin(srv)
                srv.assert_healthy("batches")
        case.__name__ = "test_full_buffers_%s" % "_".join(m.strip("-") for m in mode)
        suite.case(case)
    suite.run()


if __name__ == "__main__":
    main()
