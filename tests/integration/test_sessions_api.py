"""Sessions API contract: create/stat/list/delete, validation answers, the
NDJSON batch rules, start positions, and incarnations (delete then
recreate starts at seq 1 with a new epoch)."""

import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sluice_harness as H  # noqa: E402


def req(srv, method, path, body=b"", headers=()):
    return H.http1_request(srv.host, srv.port, method, path, headers=headers, body=body)


def publish(srv, sid, data, qs=""):
    r = req(srv, "POST", "/v1/sessions/%s/events%s" % (sid, qs), body=data)
    H.check_eq(r.status, 200, "publish to %s" % sid)
    return r.json()["seq"]


def test_create_stat_delete(srv):
    r = req(srv, "GET", "/v1/sessions/nope")
    H.check_eq(r.status, 404, "unknown session stat")
    H.check_eq(r.json()["error"], "not_found", "error code")
    r = req(srv, "PUT", "/v1/sessions/a1")
    H.check_eq(r.status, 201, "PUT new")
    st = r.json()
    H.check_eq((st["events"], st["first_seq"], st["last_seq"]), (0, 0, 0), "empty stats")
    r = req(srv, "PUT", "/v1/sessions/a1")
    H.check_eq(r.status, 200, "PUT existing")
    epoch1 = r.json()["epoch"]
    H.check_eq(publish(srv, "a1", b"abc"), 1, "first seq")
    H.check_eq(publish(srv, "a1", b"de"), 2, "second seq")
    st = req(srv, "GET", "/v1/sessions/a1").json()
    H.check_eq((st["events"], st["bytes"], st["first_seq"], st["last_seq"]), (2, 5, 1, 2), "stats")
    H.check(st["created_ns"] > 0 and st["last_activity_ns"] >= st["created_ns"], "timestamps")
    r = req(srv, "DELETE", "/v1/sessions/a1")
    H.check_eq(r.status, 204, "DELETE")
    H.check_eq(r.body, b"", "204 has no body")
    H.check_eq(req(srv, "DELETE", "/v1/sessions/a1").status, 404, "DELETE again")
    H.check_eq(req(srv, "GET", "/v1/sessions/a1/events").status, 404, "subscribe to deleted")
    # A new incarnation: seq from 1, another epoch.
    H.check_eq(publish(srv, "a1", b"x"), 1, "seq restarts after delete")
    H.check(req(srv, "GET", "/v1/sessions/a1").json()["epoch"] != epoch1, "new epoch")
    # A subscriber resuming with an id from the earlier incarnation is told.
    out = subprocess.run(["curl", "-sS", "-N", "--max-time", "1", "-H", "Last-Event-ID: 2",
                          srv.url("/v1/sessions/a1/events")], capture_output=True, timeout=10).stdout
    H.check(out.startswith(b"event: sluice.reset\ndata: {\"epoch\":"), "sluice.reset first: %r" % out)
    H.check(b"id: 1\nevent: message\ndata: x\n\n" in out, "then this incarnation from 1: %r" % out)


def test_validation(srv):
    for bad in ("/v1/sessions/.hidden", "/v1/sessions/a%2Fb", "/v1/sessions/" + "x" * 129,
                "/v1/sessions/sp%20ace", "/v1/sessions/%zz"):
        r = req(srv, "PUT", bad)
        H.check_eq(r.status, 400, "invalid id %s" % bad[:40])
        H.check_eq(r.json()["error"], "invalid_session_id", "error code for %s" % bad[:40])
    ok = "A-z_0.9" + "y" * 120
    H.check_eq(req(srv, "PUT", "/v1/sessions/" + ok).status, 201, "128-byte id")
    H.check_eq(req(srv, "PUT", "/v1/sessions/%61bc").status, 201, "percent-decoded id")
    H.check_eq(req(srv, "GET", "/v1/sessions/abc").status, 200, "decoded id is abc")
    r = req(srv, "POST", "/v1/sessions/v/events?type=bad%20type", body=b"x")
    H.check_eq((r.status, r.json()["error"]), (400, "invalid_type"), "bad type")
    r = req(srv, "POST", "/v1/sessions/v/events", body=b"x", headers=[("Sluice-Event-Type", "t" * 65)])
    H.check_eq(r.status, 400, "type too long")
    # ?type= wins over the header.
    r = req(srv, "POST", "/v1/sessions/v/events?type=q", body=b"x", headers=[("Sluice-Event-Type", "h")])
    H.check_eq(r.status, 200, "type precedence publish")
    out = subprocess.run(["curl", "-sS", "-N", "--max-time", "1", srv.url("/v1/sessions/v/events?from=1")],
                         capture_output=True, timeout=10).stdout
    H.check(b"event: q\n" in out, "query type wins: %r" % out[:200])
    r = req(srv, "POST", "/v1/sessions/v/events", body=b"z" * (64 * 1024 + 1))
    H.check_eq((r.status, r.json()["error"]), (413, "too_large"), "event over --max-event-bytes")
    r = req(srv, "PATCH", "/v1/sessions/v")
    H.check_eq(r.status, 405, "PATCH session")
    H.check(r.header("allow") is not None, "405 names Allow")
    r = req(srv, "PUT", "/v1/sessions/v/events")
    H.check_eq(r.status, 405, "PUT events")
    r = req(srv, "GET", "/v1/sessions/v/events?from=abc")
    H.check_eq(r.status, 400, "bad from")
    r = req(srv, "GET", "/v1/sessions/v/events", headers=[("Last-Event-ID", "x1")])
    H.check_eq(r.status, 400, "bad Last-Event-ID")


def test_ndjson_batch(srv):
    nd = [("Content-Type", "application/x-ndjson")]
    body = b'{"type":"a","data":"one"}\n\n{"data":"two \\u00e9 \\ud83d\\ude00"}\n  \n{"data":"x","type":"b"}'
    r = req(srv, "POST", "/v1/sessions/b/events", body=body, headers=nd)
    H.check_eq(r.status, 200, "batch")
    H.check_eq(r.json(), {"first_seq": 1, "last_seq": 3}, "batch seqs")
    for bad in (b'{"data":"ok"}\n{"data":5}\n', b'{"data":"ok"}\nnot json\n', b'{"type":"a"}\n',
                b'{"data":"ok","extra":"x"}\n', b'{"type":"bad type","data":"x"}\n'):
        r = req(srv, "POST", "/v1/sessions/b/events", body=bad, headers=nd)
        H.check_eq(r.status, 400, "bad batch %r" % bad)
    big = ('{"data":"%s"}\n' % ("q" * (64 * 1024 + 1))).encode()
    r = req(srv, "POST", "/v1/sessions/b/events", body=b'{"data":"fine"}\n' + big, headers=nd)
    H.check_eq(r.status, 413, "oversized line rejects the batch")
    st = req(srv, "GET", "/v1/sessions/b").json()
    H.check_eq(st["last_seq"], 3, "rejected batches appended nothing")
    out = subprocess.run(["curl", "-sS", "-N", "--max-time", "1", srv.url("/v1/sessions/b/events?from=1")],
                         capture_output=True, timeout=10).stdout.decode()
    H.check("data: two \u00e9 \U0001F600\n" in out, "unicode escapes decoded: %r" % out)
    H.check("event: b\n" in out and "event: a\n" in out and "event: message\n" in out, "types")


def test_list_paging(srv):
    ids = ["s%03d" % i for i in range(250)]
    for i in reversed(ids):
        H.check_eq(req(srv, "PUT", "/v1/sessions/" + i).status, 201, "create " + i)
    got, cursor, pages = [], None, 0
    while True:
        path = "/v1/sessions?limit=100" + ("&cursor=" + cursor if cursor else "")
        r = req(srv, "GET", path)
        H.check_eq(r.status, 200, "list")
        j = r.json()
        got += [s["id"] for s in j["sessions"]]
        pages += 1
        if "next" not in j:
            break
        cursor = j["next"]
    H.check_eq(got, ids, "every session once, in id order")
    H.check_eq(pages, 3, "pages of 100")
    j = req(srv, "GET", "/v1/sessions?limit=5000").json()
    H.check_eq(len(j["sessions"]), 250, "limit clamps to 1000 (all 250 here)")
    j = req(srv, "GET", "/v1/sessions?limit=0").json()
    H.check_eq(len(j["sessions"]), 1, "limit clamps to 1")
    H.check_eq(req(srv, "GET", "/v1/sessions?limit=x").status, 400, "bad limit")


def test_from_future_waits(srv):
    for i in range(3):
        publish(srv, "f", b"e%d" % i)
    p = subprocess.Popen(["curl", "-sS", "-N", "--max-time", "3", srv.url("/v1/sessions/f/events?from=5")],
                         stdout=subprocess.PIPE)
    import time
    time.sleep(0.5)
    publish(srv, "f", b"e3")  # seq 4: not wanted
    publish(srv, "f", b"e4")  # seq 5: first wanted
    out = p.communicate(timeout=10)[0].decode()
    H.check(out.startswith("id: 5\n"), "from beyond the end waits for seq 5: %r" % out)
    H.check("id: 4\n" not in out, "seq 4 not sent")


def test_ephemeral_gap(srv):
    """Ephemeral events take seqs but are not logged: a subscriber that has
    to read from the log (the ring no longer holds them) is told with one
    sluice.gap; a live subscriber gets them."""
    live = subprocess.Popen(["curl", "-sS", "-N", "--max-time", "3", srv.url("/v1/sessions/eph/events?from=1")],
                            stdout=subprocess.PIPE)
    import time
    H.check_eq(publish(srv, "eph", b"a"), 1, "durable 1")
    time.sleep(0.3)
    H.check_eq(publish(srv, "eph", b"b", "?ephemeral=1"), 2, "ephemeral 2")
    r = req(srv, "POST", "/v1/sessions/eph/events", body=b"c", headers=[("Sluice-Ephemeral", "1")])
    H.check_eq(r.json()["seq"], 3, "ephemeral 3 (header)")
    H.check_eq(publish(srv, "eph", b"d"), 4, "durable 4")
    r = req(srv, "POST", "/v1/sessions/eph/events?ephemeral=1&durable=1", body=b"x")
    H.check_eq(r.status, 400, "durable and ephemeral together")
    # Push the early events out of the small ring.
    nd = [("Content-Type", "application/x-ndjson")]
    body = "\n".join('{"data":"filler %d %s"}' % (i, "x" * 100) for i in range(3000)).encode()
    H.check_eq(req(srv, "POST", "/v1/sessions/eph/events", body=body, headers=nd).status, 200, "filler")
    out = live.communicate(timeout=10)[0].decode()
    H.check(out.startswith("id: 1\nevent: message\ndata: a\n\nid: 2\nevent: message\ndata: b\n\n"
                           "id: 3\nevent: message\ndata: c\n\nid: 4\n"), "live subscriber gets all: %r" % out[:200])
    out = subprocess.run(["curl", "-sS", "-N", "--max-time", "1", srv.url("/v1/sessions/eph/events?from=1")],
                         capture_output=True, timeout=10).stdout.decode()
    want = ("id: 1\nevent: message\ndata: a\n\nevent: sluice.gap\ndata: {\"from\":2,\"to\":3}\n\n"
            "id: 4\nevent: message\ndata: d\n\n")
    H.check(out.startswith(want), "from the log: ephemeral 2-3 named by one gap: %r" % out[:200])


def main():
    H.require_tools("curl")
    cases = (test_create_stat_delete, test_validation, test_ndjson_batch, test_list_paging,
             test_from_future_waits, test_ephemeral_gap)
    return H.run_cases_each_server("test_sessions_api", cases,
                                   ["--max-event-bytes", "64k", "--session-ring-bytes", "64k",
                                    "--ring-page-bytes", "4096"])


if __name__ == "__main__":
    sys.exit(main())
