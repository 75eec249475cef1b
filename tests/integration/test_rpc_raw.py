"""msgpack-RPC contract over raw sockets (python3-msgpack), TCP and unix.

Every method of the wire contract with exact results: publish (str data
stays str, bin stays bin, CR/LF/NUL and non-UTF-8 bytes round-trip),
publish_batch, subscribe from a seq or live (the response comes before any
notification of it), unsubscribe (nothing for that id after its response),
sessions with paging, session stats (identical to the HTTP stats), create
and delete (delete ends subscriptions with `end`), ephemeral events (a
replay from the log names them with one `gap`), health (the /health keys),
and every error code a client can provoke: unknown_method, bad_params,
invalid_session_id, invalid_type, not_found, too_large.
Each case gets a fresh server with --max-event-bytes 1024 and a small ring.
"""

import json
import os
import stat
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sluice_harness as H  # noqa: E402

MAX_EVENT = 1024
STATS_KEYS = {"id", "events", "bytes", "first_seq", "last_seq", "subscribers", "created_ns",
              "last_activity_ns"}
HEALTH_KEYS = {"uptime_s", "rss_bytes", "open_fds", "fd_limit", "connections", "streams",
               "sessions", "busy", "reactors", "scheduler", "mailboxes", "events", "storage",
               "watchdog"}

# (type, data): str data must come back str, bytes must come back bin.
DATA_CASES = [
    ("message", "hello"),
    ("tok", "h\u00e9llo \u20ac \U0001F600"),
    ("bin", b"\x00\x01\xff\xfe"),
    ("crlf.b", b"a\r\nb\rc\nd\x00e\r"),
    ("crlf.s", "x\r\ny\rz\n\x00"),
    ("utf8:bin", "caf\u00e9".encode()),
    ("full", b"\x80" * MAX_EVENT),
    ("nl", b"\n"),
    ("empty-ish", " "),
]


def nbytes(data):
    return len(data.encode() if isinstance(data, str) else data)


def http_json(srv, method, path):
    r = H.http1_request(srv.host, srv.port, method, path)
    return r.status, (json.loads(r.body) if r.body else None)


def tcp(srv):
    return H.RpcClient(srv.rpc_addrs()[0])


def unix(srv):
    return H.RpcClient(srv.rpc_addrs()[1])


def check_events(got, session, first, cases, what):
    want = [(session, first + i, t, d) for i, (t, d) in enumerate(cases)]
    H.check_eq(len(got), len(want), "%s: event count" % what)
    for g, w in zip(got, want):
        H.check_eq(g, w, "%s: event seq %d" % (what, w[1]))
        H.check(type(g[3]) is type(w[3]), "%s: seq %d data kind %s, want %s"
                % (what, w[1], type(g[3]).__name__, type(w[3]).__name__))


def subscribe_first(c, session, *start):
    """Subscribes on a connection with nothing else in flight and checks the
    response is the first message that arrives after the request."""
    before = len(c.messages)
    msgid = c.send("subscribe", session, *start)
    err, sub = c.wait_response(msgid)
    H.check_eq(err, None, "subscribe %s %r error" % (session, start))
    H.check(isinstance(sub, int) and sub >= 0, "subscription id is a uint: %r" % sub)
    H.check_eq(c.messages[before], [1, msgid, None, sub],
               "the subscribe response precedes its notifications")
    return sub


def test_listeners(srv):
    addrs = srv.rpc_addrs()
    H.check_eq(len(addrs), 2, "ready file rpc= lines: %r" % addrs)
    host, _, port = addrs[0].rpartition(":")
    H.check(host == "127.0.0.1" and port.isdigit() and int(port) > 0, "bound TCP address %r" % addrs[0])
    sock_path = os.path.join(srv.tmp, "rpc.sock")
    H.check_eq(addrs[1], "unix:" + sock_path, "unix listener")
    H.check(stat.S_ISSOCK(os.stat(sock_path).st_mode), "unix socket exists")
    lines = [l for l in srv.log_lines("listening") if ("rpc=%s,%s" % tuple(addrs)) in l]
    H.check(len(lines) == 1, "msg=listening names rpc=%s,%s: %r"
            % (addrs[0], addrs[1], srv.log_lines("listening")))


def publish_replay_live(srv, pub, sub_conn, other, session):
    for i, (t, d) in enumerate(DATA_CASES):
        H.check_eq(pub.ok("publish", session, t, d), i + 1, "publish %s seq" % t)
    n = len(DATA_CASES)
    sub = subscribe_first(sub_conn, session, 1)
    check_events(sub_conn.wait_events(sub, n), session, 1, DATA_CASES, "replay from 1")
    live = [("live.s", "after\r\n"), ("live.b", b"\xc3\x28 invalid")]
    H.check_eq(other.ok("publish", session, live[0][0], live[0][1], {"durable": True}), n + 1,
               "durable publish")
    H.check_eq(pub.ok("publish", session, live[1][0], live[1][1], {"ephemeral": False}), n + 2,
               "publish with opts")
    check_events(sub_conn.wait_events(sub, n + 2), session, 1, DATA_CASES + live, "replay + live")
    st = pub.ok("session", session)
    want_bytes = sum(nbytes(d) for _, d in DATA_CASES + live)
    H.check_eq((st["events"], st["bytes"], st["first_seq"], st["last_seq"], st["subscribers"]),
               (n + 2, want_bytes, 1, n + 2, 1), "stats after publishes")


def test_publish_subscribe_tcp(srv):
    with tcp(srv) as pub, tcp(srv) as sub, unix(srv) as other:
        publish_replay_live(srv, pub, sub, other, "raw.tcp")


def test_publish_subscribe_unix(srv):
    with unix(srv) as pub, unix(srv) as sub, tcp(srv) as other:
        publish_replay_live(srv, pub, sub, other, "raw-unix_1")


def test_publish_batch(srv):
    with tcp(srv) as c, unix(srv) as s:
        b1 = [["a", "x"], ["b", b"\x00\xff"], ["c", "z\n"]]
        H.check_eq(c.ok("publish_batch", "bt", b1), [1, 3], "first batch")
        b2 = [["d", b"\r"], ["e", "\u00e9"]]
        H.check_eq(c.ok("publish_batch", "bt", b2, {"durable": True}), [4, 5], "second batch (durable)")
        H.check_eq(c.ok("publish", "bt", "f", "single"), 6, "publish after batches")
        H.check_eq(c.ok("publish_batch", "bt", [["g", "only"]]), [7, 7], "one-event batch")
        sub = subscribe_first(s, "bt", 4)
        want = [tuple(x) for x in b2] + [("f", "single"), ("g", "only")]
        check_events(s.wait_events(sub, 4), "bt", 4, want, "subscribe from 4")
        st = c.ok("session", "bt")
        H.check_eq((st["events"], st["last_seq"]), (7, 7), "batch stats")


def test_subscribe_live(srv):
    with tcp(srv) as pub, unix(srv) as c:
        for i in range(3):
            pub.ok("publish", "lv", "old", "o%d" % i)
        implicit = subscribe_first(c, "lv")
        explicit = subscribe_first(c, "lv", "live")
        ahead = subscribe_first(c, "lv", 5)
        H.check(len({implicit, explicit, ahead}) == 3, "distinct subscription ids")
        H.check_eq(c.events(implicit) + c.events(explicit) + c.events(ahead), [],
                   "live subscriptions replay nothing")
        for i in range(3):
            H.check_eq(pub.ok("publish", "lv", "new", b"n%d" % i), 4 + i, "live publish")
        want = [("new", b"n0"), ("new", b"n1"), ("new", b"n2")]
        check_events(c.wait_events(implicit, 3), "lv", 4, want, "default start (live)")
        check_events(c.wait_events(explicit, 3), "lv", 4, want, "from live")
        check_events(c.wait_events(ahead, 2), "lv", 5, want[1:], "from beyond the end waits")
        H.check_eq(pub.ok("session", "lv")["subscribers"], 3, "three subscriptions counted")


def test_unsubscribe(srv):
    with tcp(srv) as pub, tcp(srv) as c:
        pub.ok("create", "un")
        a = subscribe_first(c, "un", 1)
        b = subscribe_first(c, "un", 1)
        pub.ok("publish", "un", "t", "one")
        c.wait_events(a, 1)
        c.wait_events(b, 1)
        msgid = c.send("unsubscribe", a)
        H.check_eq(c.wait_response(msgid), (None, True), "unsubscribe")
        cut = next(i for i, m in enumerate(c.messages) if m[:2] == [1, msgid])
        # The count follows the session actor, which learns of the unsubscribe
        # just after the connection answered it.
        H.check_eq(wait_subscribers(srv, "un", 1), 1, "subscribers after unsubscribe")
        for i in range(5):
            pub.ok("publish", "un", "t", "later %d" % i)
        check_events(c.wait_events(b, 6), "un", 1,
                     [("t", "one")] + [("t", "later %d" % i) for i in range(5)], "kept subscription")
        after = [m for m in c.messages[cut:] if m[0] == 2 and m[2][0] == a]
        H.check_eq(after, [], "notifications for the unsubscribed id after its response")
        H.check_eq(c.events(a), [("un", 1, "t", "one")], "unsubscribed id saw only seq 1")
        H.check_eq(c.ok("unsubscribe", a), True, "unsubscribe twice")
        H.check_eq(c.ok("unsubscribe", 987654321), True, "unsubscribe unknown id")
    H.check_eq(wait_subscribers(srv, "un", 0), 0, "closing the connection releases its subscription")


def wait_subscribers(srv, session, want, timeout=5.0):
    import time
    deadline = time.monotonic() + timeout * H.slow_factor()
    got = None
    while time.monotonic() < deadline:
        got = http_json(srv, "GET", "/v1/sessions/" + session)[1]["subscribers"]
        if got == want:
            break
        time.sleep(0.05)
    return got


def test_sessions_paging(srv):
    ids = ["p%02d" % i for i in range(23)]
    with unix(srv) as c:
        for i in reversed(ids):
            H.check_eq(c.ok("create", i), True, "create " + i)
        H.check_eq(c.ok("publish", "p03", "t", "abc"), 1, "publish into p03")
        H.check_eq(c.ok("publish", "p03", "t", b"\x00\x01"), 2, "publish into p03")
        whole = c.ok("sessions")
        H.check("next" not in whole, "one page without a limit: %r" % whole.keys())
        H.check_eq([s["id"] for s in whole["sessions"]], ids, "every session in id order")
        for s in whole["sessions"]:
            H.check(STATS_KEYS <= set(s), "list entry keys %r" % sorted(s))
        p03 = whole["sessions"][3]
        H.check_eq((p03["events"], p03["bytes"], p03["first_seq"], p03["last_seq"]), (2, 5, 1, 2),
                   "p03 entry")
        H.check_eq(whole["sessions"][0]["last_seq"], 0, "empty session last_seq")
        status, hj = http_json(srv, "GET", "/v1/sessions?limit=1000")
        H.check_eq(whole["sessions"], hj["sessions"], "RPC list equals the HTTP list")
        got, cursor, sizes = [], None, []
        for _ in range(10):
            page = c.ok("sessions", 5, cursor) if cursor is not None else c.ok("sessions", 5)
            sizes.append(len(page["sessions"]))
            got += [s["id"] for s in page["sessions"]]
            if "next" not in page:
                break
            cursor = page["next"]
        H.check_eq(sizes, [5, 5, 5, 5, 3], "page sizes with limit 5")
        H.check_eq(got, ids, "paging visits every session once, in order")
        H.check_eq(len(c.ok("sessions", 0)["sessions"]), 1, "limit 0 clamps to 1")
        H.check_eq(len(c.ok("sessions", 5000)["sessions"]), 23, "limit 5000 clamps to 1000")


def test_session_stats(srv):
    with tcp(srv) as c:
        H.check_eq(c.error_code("session", "st"), "not_found", "unknown session")
        H.check_eq(c.ok("create", "st"), True, "create")
        st = c.ok("session", "st")
        H.check_eq((st["id"], st["events"], st["bytes"], st["first_seq"], st["last_seq"],
                    st["subscribers"]), ("st", 0, 0, 0, 0, 0), "empty stats")
        status, hj = http_json(srv, "GET", "/v1/sessions/st")
        H.check_eq(st, hj, "RPC stats equal the HTTP stats")
        c.ok("publish", "st", "a", "12345")
        c.ok("publish_batch", "st", [["b", b"678"], ["c", "9"]])
        sub = subscribe_first(c, "st", 1)
        c.wait_events(sub, 3)
        st = c.ok("session", "st")
        H.check_eq((st["events"], st["bytes"], st["first_seq"], st["last_seq"], st["subscribers"]),
                   (3, 9, 1, 3, 1), "stats after publishes with one subscriber")
        H.check(st["created_ns"] > 0 and st["last_activity_ns"] >= st["created_ns"], "timestamps")
        H.check_eq(st, http_json(srv, "GET", "/v1/sessions/st")[1], "RPC stats equal the HTTP stats")


def test_create_delete(srv):
    with tcp(srv) as c, unix(srv) as s:
        H.check_eq(c.ok("create", "cd"), True, "create")
        H.check_eq(c.ok("create", "cd"), True, "create again (idempotent)")
        c.ok("publish", "cd", "t", "a")
        c.ok("publish", "cd", "t", b"b")
        sub = subscribe_first(s, "cd", 1)
        s.wait_events(sub, 2)
        H.check_eq(c.ok("delete", "cd"), True, "delete")
        s.wait_until(lambda: any(m[:2] == [2, "end"] for m in s.messages), "the end notification")
        ends = s.notifications("end")
        H.check_eq(ends, [[2, "end", [sub]]], "one end notification naming the subscription")
        H.check_eq(c.error_code("session", "cd"), "not_found", "deleted session stats")
        H.check_eq(c.error_code("delete", "cd"), "not_found", "delete again")
        H.check_eq(c.error_code("subscribe", "cd", 1), "not_found", "subscribe to deleted")
        H.check_eq(http_json(srv, "GET", "/v1/sessions/cd")[0], 404, "HTTP agrees")
        H.check_eq(c.ok("publish", "cd", "t", "new"), 1, "a new incarnation starts at seq 1")
        sub2 = subscribe_first(s, "cd", 1)
        check_events(s.wait_events(sub2, 1), "cd", 1, [("t", "new")], "new incarnation")
        end_at = next(i for i, m in enumerate(s.messages) if m[:2] == [2, "end"])
        later = [m for m in s.messages[end_at + 1:] if m[0] == 2 and m[2][0] == sub]
        H.check_eq(later, [], "nothing for the ended subscription")
        H.check_eq(s.events(sub), [("cd", 1, "t", "a"), ("cd", 2, "t", b"b")], "events before end")


def test_publish_right_after_delete(srv):
    """delete answers once the session is gone: a publish sent right after
    its answer (not waiting for the subscribers' `end`) starts the next
    incarnation at seq 1; so does an HTTP POST."""
    with tcp(srv) as c, unix(srv) as s:
        for i in range(20):
            sid = "rd%d" % i
            H.check_eq(c.ok("publish", sid, "t", "old"), 1, "first incarnation")
            s.ok("subscribe", sid, 1)
            H.check_eq(c.ok("delete", sid), True, "delete")
            if i % 2:
                r = H.http1_request(srv.host, srv.port, "POST", "/v1/sessions/%s/events" % sid, body=b"new")
                H.check_eq((r.status, r.body), (200, b'{"seq":1}'), "HTTP POST right after delete (%d)" % i)
            else:
                H.check_eq(c.call("publish", sid, "t", "new"), (None, 1), "publish right after delete (%d)" % i)


def test_health(srv):
    with unix(srv) as c:
        h = c.ok("health")
        j = srv.health()
        H.check(isinstance(h, dict), "health is a map: %r" % type(h))
        H.check_eq(sorted(h), sorted(j), "RPC health keys equal GET /health keys")
        H.check(HEALTH_KEYS <= set(h), "documented keys missing: %r" % sorted(HEALTH_KEYS - set(h)))
        H.check(isinstance(h["busy"], bool), "busy is a bool")
        H.check(isinstance(h["reactors"], list) and h["reactors"], "reactors is a non-empty array")
        H.check(all("loop_lag_ms_max" in r for r in h["reactors"]), "each reactor has loop_lag_ms_max")
        H.check(isinstance(h["events"], dict) and "published" in h["events"], "events.published")
        H.check(isinstance(h["rss_bytes"], int) and h["rss_bytes"] > 0, "rss_bytes")
        H.check_eq(sorted(h["events"]), sorted(j["events"]), "events keys")
        H.check_eq(sorted(h["watchdog"]), sorted(j["watchdog"]), "watchdog keys")


BAD_PARAMS = [
    ("publish", ["s", "message"]),
    ("publish", ["s", "message", "x", {}, 1]),
    ("publish", [5, "message", "x"]),
    ("publish", ["s", 5, "x"]),
    ("publish", ["s", "message", 5]),
    ("publish", ["s", "message", None]),
    ("publish", ["s", "message", ["x"]]),
    ("publish", ["s", "message", "x", "durable"]),
    ("publish", ["s", "message", "x", {"durable": "yes"}]),
    ("publish_batch", ["s"]),
    ("publish_batch", ["s", "notalist"]),
    ("publish_batch", ["s", [["message"]]]),
    ("publish_batch", ["s", [["message", 5]]]),
    ("publish_batch", ["s", ["message", "x"]]),
    ("subscribe", []),
    ("subscribe", ["s", "yesterday"]),
    ("subscribe", ["s", -1]),
    ("subscribe", ["s", 1, 2]),
    ("unsubscribe", []),
    ("unsubscribe", ["x"]),
    ("sessions", ["x"]),
    ("sessions", [1, 2, 3]),
    ("session", []),
    ("session", [5]),
    ("create", []),
    ("delete", [1]),
]

BAD_IDS = [".hidden", "a/b", "x" * 129, "", "sp ace", "caf\u00e9", "a%2Fb"]
BAD_TYPES = ["bad type", "t" * 65, "", "a/b", "caf\u00e9"]


def test_errors(srv):
    with tcp(srv) as c:
        H.check_eq(c.ok("publish", "s", "message", "base"), 1, "setup publish")
        for name in ("nope", "Publish", "", "publish "):
            H.check_eq(c.error_code(name), "unknown_method", "method %r" % name)
        for method, params in BAD_PARAMS:
            H.check_eq(c.error_code(method, *params), "bad_params", "%s %r" % (method, params))
        for bad in BAD_IDS:
            for method, params in (("publish", [bad, "message", "x"]), ("publish_batch", [bad, [["m", "x"]]]),
                                   ("subscribe", [bad, 1]), ("session", [bad]), ("create", [bad]),
                                   ("delete", [bad])):
                H.check_eq(c.error_code(method, *params), "invalid_session_id", "%s id %r" % (method, bad))
        ok_id = "A-z_0.9" + "y" * 120
        H.check_eq(c.ok("create", ok_id), True, "128-byte id")
        for bad in BAD_TYPES:
            H.check_eq(c.error_code("publish", "s", bad, "x"), "invalid_type", "type %r" % bad)
            H.check_eq(c.error_code("publish_batch", "s", [["ok", "x"], [bad, "y"]]), "invalid_type",
                       "batch type %r" % bad)
        H.check_eq(c.ok("publish", "s", "t" * 64, "x"), 2, "64-byte type")
        H.check_eq(c.ok("publish", "s", "a:b.c-d_E9", "x"), 3, "type charset")
        for method, params in (("session", ["nope"]), ("delete", ["nope"]), ("subscribe", ["nope", 1]),
                               ("subscribe", ["nope"])):
            H.check_eq(c.error_code(method, *params), "not_found", "%s %r" % (method, params))
        too_big = [b"z" * (MAX_EVENT + 1), "z" * (MAX_EVENT + 1), "\u00e9" * (MAX_EVENT // 2) + "z"]
        for data in too_big:
            H.check_eq(c.error_code("publish", "s", "message", data), "too_large", "event of %d bytes" % nbytes(data))
        H.check_eq(c.error_code("publish_batch", "s", [["m", "ok"], ["m", too_big[0]]]), "too_large",
                   "batch with one oversized event")
        H.check_eq(c.ok("publish", "s", "message", b"z" * MAX_EVENT), 4, "an event of exactly the limit")
        st = c.ok("session", "s")
        H.check_eq((st["events"], st["last_seq"]), (4, 4), "failed calls appended nothing")


def test_ephemeral_gap(srv):
    """Ephemeral events take seqs but are not logged: a live subscriber gets
    them; one that must read from the log once the ring no longer holds
    them gets one `gap` naming the lost range, then the next event."""
    with tcp(srv) as pub, unix(srv) as live, tcp(srv) as late:
        pub.ok("create", "eph")
        lsub = subscribe_first(live, "eph", 1)
        H.check_eq(pub.ok("publish", "eph", "t", "a"), 1, "durable 1")
        H.check_eq(pub.ok("publish", "eph", "t", "b", {"ephemeral": True}), 2, "ephemeral 2")
        H.check_eq(pub.ok("publish", "eph", "t", b"c", {"ephemeral": True, "durable": False}), 3, "ephemeral 3")
        H.check_eq(pub.ok("publish", "eph", "t", "d"), 4, "durable 4")
        check_events(live.wait_events(lsub, 4), "eph", 1, [("t", "a"), ("t", "b"), ("t", b"c"), ("t", "d")],
                     "live subscriber gets ephemeral events")
        H.check_eq(live.notifications("gap"), [], "no gap for a live subscriber")
        filler = [["f", "filler %d %s" % (i, "x" * 100)] for i in range(1500)]
        for k in range(2):  # push seqs 1-4 out of the small ring
            H.check_eq(pub.ok("publish_batch", "eph", filler), [5 + 1500 * k, 4 + 1500 * (k + 1)], "filler")
        sub = subscribe_first(late, "eph", 1)
        late.wait_until(lambda: len(late.events(sub)) >= 3002, "the late subscriber's replay")
        notes = [m for m in late.messages if m[0] == 2]
        H.check_eq(notes[:3], [[2, "event", [sub, "eph", 1, "t", "a"]], [2, "gap", [sub, 2, 3]],
                               [2, "event", [sub, "eph", 4, "t", "d"]]],
                   "from the log: the ephemeral 2-3 are one gap")
        H.check_eq([e[1] for e in late.events(sub)], [1] + list(range(4, 3005)), "every durable event once")
        H.check_eq(len(late.notifications("gap")), 1, "one gap")


def test_method_bin_and_notifications(srv):
    """Method names may arrive as bin; unknown client notifications are
    ignored (no response, connection stays usable)."""
    import msgpack
    with unix(srv) as c:
        c.send_raw(msgpack.packb([2, "hello", [1, 2]], use_bin_type=True))
        c.send_raw(msgpack.packb([2, b"no.such", []], use_bin_type=True))
        c.send_raw(H.rpc_request_bytes(77, b"publish", ["mb", b"message", "by bin"]))
        H.check_eq(c.wait_response(77), (None, 1), "publish with a bin method name")
        H.check_eq(c.messages, [[1, 77, None, 1]], "nothing answers a client notification")
        H.check_eq(c.ok("session", "mb")["events"], 1, "stats")
        c.send_raw(H.rpc_request_bytes(0xFFFFFFFF, "sessions", []))
        err, res = c.wait_response(0xFFFFFFFF)
        H.check_eq((err, [s["id"] for s in res["sessions"]]), (None, ["mb"]), "msgid 2^32-1")


def main():
    H.require_rpc()
    cases = (test_listeners, test_publish_subscribe_tcp, test_publish_subscribe_unix, test_publish_batch,
             test_subscribe_live, test_unsubscribe, test_sessions_paging, test_session_stats,
             test_create_delete, test_publish_right_after_delete, test_health, test_errors, test_ephemeral_gap,
             test_method_bin_and_notifications)
    # A small ring (64 KiB of 4 KiB pages) so replays reach the log quickly.
    args = ["--max-event-bytes", str(MAX_EVENT), "--session-ring-bytes", "64k", "--ring-page-bytes", "4096"]
    return H.run_cases_each_server("test_rpc_raw", cases, args, factory=H.rpc_server)


if __name__ == "__main__":
    sys.exit(main())
