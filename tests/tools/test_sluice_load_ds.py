"""sluice-load's Durable Streams mode (--ds) end to end, against the real
sluiced: fan-out runs over HTTP/2 (three streams per connection) and
HTTP/1.1 where every SSE reader (live=sse, from offset -1) receives exactly
every append, in order, with no gap and a latency sample each -- at a
publish rate where the server sends many appends in one data event (the
reader once refused any event over twice the payload size and dropped the
connection); the
appends' count is confirmed by the server's own session stats; and --ds
with --proto rpc is a usage error (exit 2).

Env (set by ctest): SLUICED, SLUICE_BUILD_DIR, SLUICE_SOURCE_DIR."""

import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import sluice_harness as H  # noqa: E402

BUILD = os.environ.get("SLUICE_BUILD_DIR", os.path.join(HERE, "..", "..", "build"))
LOAD = os.path.join(BUILD, "tools", "sluice-load")
RUN_TIMEOUT_S = 90  # every run is bounded by its own flags; this guards the test
SUBSCRIBERS = 6
EVENTS = 600
RATE = 20000

suite = H.Suite("test_sluice_load_ds")
tmp = tempfile.mkdtemp(prefix="sluice-load-ds-")


def run_load(args):
    """Runs sluice-load; returns (exit status, parsed JSON or None, output)."""
    return H.run_sluice_load(LOAD, args, os.path.join(tmp, "result.json"), RUN_TIMEOUT_S)


def check_exact(doc, out):
    H.check(doc is not None, "no JSON result; output:\n" + out)
    H.check_eq(doc["exit_code"], 0, "exit code (verdict %s)\n%s" % (doc["verdict"], out))
    H.check_eq(doc["published"], EVENTS, "published")
    H.check_eq(doc["delivered"], SUBSCRIBERS * EVENTS, "delivered")
    for s in doc["subscribers"]:
        H.check_eq((s["received"], s["expected"], s["gaps"], s["out_of_order"], s["bad"],
                    s["last_id"], s["ok"]),
                   (EVENTS, EVENTS, 0, 0, 0, EVENTS, True), "reader %d" % s["index"])
    for k in ("conn_errors", "stream_errors", "subscribe_errors", "publish_errors", "gaps",
              "count_mismatches", "bad_payloads"):
        H.check_eq(doc[k], 0, k)
    H.check_eq(doc["latency"]["count"], SUBSCRIBERS * EVENTS, "latency samples")


@suite.case
def test_ds_fanout_h2_and_h1():
    with H.Server() as srv:
        for proto, extra in (("h2", ["--streams-per-conn", "3"]), ("h1", [])):
            prefix = "lds" + proto
            rc, doc, out = run_load(
                ["--target", srv.authority(), "--proto", proto, "--ds", "--scenario", "fanout",
                 "--publishers", "2", "--subscribers", str(SUBSCRIBERS), "--rate", str(RATE),
                 "--events", str(EVENTS), "--duration", "20", "--drain", "10",
                 "--session-prefix", prefix] + extra)
            H.check_eq(rc, 0, "%s exit status\n%s" % (proto, out))
            check_exact(doc, out)
            # The appends are in the log, counted by the server itself.
            r = H.http1_request(srv.host, srv.port, "GET", "/v1/sessions/%s-0" % prefix)
            H.check_eq(r.status, 200, "session stats")
            H.check_eq(r.json()["events"], EVENTS, "%s: events in the session" % proto)
        srv.assert_healthy("after the --ds runs")


@suite.case
def test_ds_with_rpc_is_a_usage_error():
    rc, _, out = run_load(["--ds", "--proto", "rpc", "--rpc-target", "127.0.0.1:1"])
    H.check_eq(rc, 2, "exit status")
    H.check("--ds" in out, "the message names --ds: %r" % out)


if __name__ == "__main__":
    suite.run()
