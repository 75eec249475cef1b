"""msgpack-RPC with Neovim's Python client session layer (Debian's
python3-pynvim: pynvim.msgpack_rpc), over TCP and over the unix socket.

pynvim is a client nobody here wrote: it sends its own client-info
notification on connect (which sluice must ignore), encodes str as str and
bytes as bin, numbers its own msgids, and decodes with raw=False. The cases
check request/response (publish, publish_batch, sessions, session, an error
surfacing as the [code, message] pair), subscription notifications through
the blocking next_message() path, and the callback path of Session.run()
with requests issued from inside the event loop. Each pynvim call runs
under an alarm: a silent server fails the case instead of hanging it.
"""

import importlib.util
import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sluice_harness as H  # noqa: E402

CALL_TIMEOUT_S = 10
suite = H.Suite("test_rpc_pynvim")
srv = None  # created in main


class RpcError(Exception):
    pass


class Deadline:
    """Raises TestFailure in the main thread after `seconds` (SIGALRM):
    pynvim's blocking calls have no timeout of their own."""

    def __init__(self, what, seconds=CALL_TIMEOUT_S):
        self.what, self.seconds = what, seconds * H.slow_factor()

    def _fire(self, signum, frame):
        raise H.TestFailure("pynvim: %s did not finish within %.0fs" % (self.what, self.seconds))

    def __enter__(self):
        self.old = signal.signal(signal.SIGALRM, self._fire)
        signal.setitimer(signal.ITIMER_REAL, self.seconds)
        return self

    def __exit__(self, *exc):
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, self.old)
        return False


def open_session(unix):
    from pynvim.msgpack_rpc import socket_session, tcp_session
    addr = srv.rpc_addrs()[1 if unix else 0]
    with Deadline("connect to %s" % addr):
        if unix:
            s = socket_session(addr[5:])
        else:
            host, _, port = addr.rpartition(":")
            s = tcp_session(host, int(port))
    # Session leaves the error type to its owner (pynvim's Nvim sets it).
    s.error_wrapper = lambda err: RpcError(err)
    return s


def request(s, method, *args):
    with Deadline(method):
        return s.request(method, *args)


def request_error(s, method, *args):
    try:
        with Deadline(method):
            s.request(method, *args)
    except RpcError as e:
        err = e.args[0]
        H.check(isinstance(err, list) and len(err) == 2 and all(isinstance(x, str) for x in err),
                "error is [code, message]: %r" % (err,))
        return err[0]
    raise H.TestFailure("%s %r succeeded, expected an error" % (method, args))


def next_notification(s):
    with Deadline("next_message"):
        msg = s.next_message()
    H.check(msg is not None, "session ended while waiting for a notification")
    return msg


def request_reply(unix):
    sess = "nv-%s" % ("unix" if unix else "tcp")
    s = open_session(unix)
    try:
        H.check_eq(request(s, "publish", sess, "message", "h\u00e9llo"), 1, "publish str")
        H.check_eq(request(s, "publish", sess, "bin", b"\x00\xff\r\n"), 2, "publish bytes")
        H.check_eq(request(s, "publish_batch", sess, [["a", "x"], ["b", b"y"]]), [3, 4], "publish_batch")
        H.check_eq(request(s, "publish", sess, "d", "z", {"durable": True}), 5, "durable publish")
        listing = request(s, "sessions")
        H.check(sess in [e["id"] for e in listing["sessions"]], "sessions lists %s" % sess)
        r = H.http1_request(srv.host, srv.port, "GET", "/v1/sessions?limit=1000")
        H.check_eq(listing, json.loads(r.body), "sessions equals GET /v1/sessions")
        page = request(s, "sessions", 1)
        H.check_eq(len(page["sessions"]), 1, "limit 1")
        st = request(s, "session", sess)
        H.check_eq((st["id"], st["events"], st["last_seq"], st["bytes"]), (sess, 5, 5, 6 + 4 + 2 + 1),
                   "session stats")
        H.check_eq(request_error(s, "publish", ".bad", "message", "x"), "invalid_session_id", "bad id")
        H.check_eq(request_error(s, "session", "nv-none"), "not_found", "unknown session")
        H.check_eq(request_error(s, "nvim_get_api_info"), "unknown_method", "a Neovim method")
        H.check_eq(request(s, "session", sess)["last_seq"], 5, "usable after errors")
    finally:
        s.close()


@suite.case
def test_request_reply_tcp():
    request_reply(unix=False)


@suite.case
def test_request_reply_unix():
    request_reply(unix=True)


def wait_subscribers(s, sess, want):
    """The session's subscriber count once it reaches want (or the last
    value seen): the session actor learns of an unsubscribe just after the
    connection answered it."""
    got = None
    for _ in range(100):
        got = request(s, "session", sess)["subscribers"]
        if got == want:
            break
        time.sleep(0.05)
    return got


def notifications_next_message(unix):
    sess = "nvn-%s" % ("unix" if unix else "tcp")
    pub, s = open_session(not unix), open_session(unix)
    try:
        sent = [("message", "one"), ("bin", b"\x00\r\n\xfe"), ("tok", "\u20ac\n")]
        for i, (t, d) in enumerate(sent):
            H.check_eq(request(pub, "publish", sess, t, d), i + 1, "publish")
        sub = request(s, "subscribe", sess, 1)
        H.check(isinstance(sub, int), "subscription id %r" % (sub,))
        got = [next_notification(s) for _ in sent]
        want = [["notification", "event", [sub, sess, i + 1, t, d]] for i, (t, d) in enumerate(sent)]
        H.check_eq([list(m) for m in got], want, "replayed notifications")
        H.check(type(got[1][2][4]) is bytes and type(got[0][2][4]) is str, "bin stays bytes, str stays str")
        H.check_eq(request(pub, "publish", sess, "live", b"\xff"), 4, "live publish")
        H.check_eq(list(next_notification(s)), ["notification", "event", [sub, sess, 4, "live", b"\xff"]],
                   "live notification")
        H.check_eq(request(s, "unsubscribe", sub), True, "unsubscribe")
        H.check_eq(wait_subscribers(s, sess, 0), 0, "no subscribers left")
    finally:
        pub.close()
        s.close()


@suite.case
def test_notifications_tcp():
    notifications_next_message(unix=False)


@suite.case
def test_notifications_unix():
    notifications_next_message(unix=True)


def run_loop(unix):
    """Session.run(): requests from inside the loop (greenlets), events
    delivered to the notification callback, stop() from the callback."""
    sess = "nvr-%s" % ("unix" if unix else "tcp")
    s = open_session(unix)
    seen, requests, state = [], [], {}

    def setup():
        state["sub"] = s.request("subscribe", sess, "live")
        for i in range(3):
            state.setdefault("seqs", []).append(s.request("publish", sess, "loop", "ev%d" % i))

    def on_request(name, args):
        requests.append((name, args))

    def on_notification(name, args):
        seen.append((name, args))
        if len([n for n in seen if n[0] == "event"]) == 3:
            s.stop()

    try:
        H.check_eq(request(s, "create", sess), True, "create")
        with Deadline("Session.run"):
            s.run(on_request, on_notification, setup)
        sub = state.get("sub")
        H.check(isinstance(sub, int), "subscribe inside the loop returned %r" % (sub,))
        H.check_eq(seen, [("event", [sub, sess, i + 1, "loop", "ev%d" % i]) for i in range(3)],
                   "notification callback saw every event once, in order")
        H.check_eq(requests, [], "sluice sends no requests to clients")
        H.check_eq(state.get("seqs", [])[:2], [1, 2], "publishes inside the loop")
    finally:
        s.close()


@suite.case
def test_run_loop_tcp():
    run_loop(unix=False)


@suite.case
def test_run_loop_unix():
    run_loop(unix=True)


def main():
    global srv
    H.require_rpc()
    if importlib.util.find_spec("pynvim") is None:
        print("FAIL: python3-pynvim is missing (tools/install-deps.sh test installs it)")
        sys.exit(1)
    srv = H.rpc_server()
    suite.run(fixture=srv)


if __name__ == "__main__":
    main()
