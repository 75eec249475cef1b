"""msgpack-RPC hostile input: the server survives, answers what it can, and
never allocates what a peer merely declares.

One server (--max-rpc-message-bytes 64k) takes, in turn: truncated frames,
requests of the wrong shape (bad_request when a msgid is readable), headers
declaring gigabyte strings, binaries, arrays, maps and extensions (closed at
once; no address-space or RSS growth), deep nesting, seeded random garbage,
and a message over the size limit (closed, with a logged reason). After
every case a fresh TCP and unix connection publish and read stats, and
/health answers. Under the ASan build (ctest's ASan run) the same input
also proves the decoder reads nothing out of bounds.
"""

import os
import random
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sluice_harness as H  # noqa: E402

MAX_MESSAGE = 64 * 1024
GIB = 1 << 30

suite = H.Suite("test_rpc_bad_input")
srv = None  # the one server every case runs against (created in main)
state = {"seq": 0}


def pack(obj):
    import msgpack
    return msgpack.packb(obj, use_bin_type=True)


def client(unix=False, timeout=10.0):
    return H.RpcClient(srv.rpc_addrs()[1 if unix else 0], timeout=timeout)


def still_serving(what):
    """A fresh connection on each listener publishes and reads stats;
    /health answers; the process is alive."""
    H.check(srv.alive(), "server died after %s; stderr:\n%s" % (what, srv.stderr_text()[-4000:]))
    for unix in (False, True):
        with client(unix) as c:
            state["seq"] += 1
            H.check_eq(c.ok("publish", "alive", "t", "after %s" % what), state["seq"],
                       "publish after %s" % what)
            H.check_eq(c.ok("session", "alive")["last_seq"], state["seq"], "stats after %s" % what)
    srv.assert_healthy(what)


def outcome_after(c, follow_msgid):
    """What a connection does after bad input and one valid request:
    "answered" (the follow-up got its response) or "closed"."""
    try:
        c.wait_until(lambda: follow_msgid in c.responses, "the follow-up response")
    except H.TestFailure:
        if c.eof:
            return "closed"
        raise
    return "answered"


@suite.case
def test_truncated_frames():
    req = pack([0, 1, "publish", ["trunc", "t", b"\x01" * 300]])
    for cut in (1, 2, 3, 5, 12, len(req) // 2, len(req) - 1):
        with client(unix=cut % 2 == 1) as c:
            c.send_raw(req[:cut])
            time.sleep(0.02)
        with client() as c:  # complete requests then a truncated one in one write
            two = pack([0, 1, "publish", ["trunc", "t", "a"]]) + pack([0, 2, "health", []])
            c.send_raw(two + req[:cut])
            c.wait_until(lambda: 1 in c.responses and 2 in c.responses, "two responses before the cut")
            H.check_eq(c.responses[1][0], None, "publish before the cut")
            c.sock.shutdown(socket.SHUT_WR)
            time.sleep(0.02)
            H.check_eq(sorted(m[1] for m in c.messages), [1, 2], "nothing answers a truncated frame")
    still_serving("truncated frames")


WRONG_SHAPE_WITH_MSGID = [
    ([0, 7, 42, []], 7),
    ([0, 8, "publish", {"a": 1}], 8),
    ([0, 9, "publish"], 9),
    ([0, 10, "publish", [], 5], 10),
    ([0, 11, "publish", "notarray"], 11),
    ([0, 12, None, []], 12),
    ([0, 13, ["publish"], []], 13),
]

WRONG_SHAPE_NO_MSGID = [
    {"a": 1},
    5,
    "hello",
    b"\x00\x01",
    None,
    [],
    [0],
    [0, "abc", "health", []],
    [0, -1, "health", []],
    [0, 1 << 32, "health", []],
    [0, 1.5, "health", []],
    [7, 1, "health", []],
    [1, 5, None, None],
]


@suite.case
def test_wrong_shapes_with_msgid():
    with client() as c:
        c.next_msgid = 1000  # the follow-up calls' msgids stay clear of the ones below
        for msg, msgid in WRONG_SHAPE_WITH_MSGID:
            c.send_raw(pack(msg))
            err, res = c.wait_response(msgid)
            H.check(isinstance(err, list) and len(err) == 2, "error for %r: %r" % (msg, err))
            H.check_eq((err[0], res), ("bad_request", None), "answer to %r" % (msg,))
            H.check("uptime_s" in c.ok("health"), "connection usable after %r" % (msg,))
    still_serving("wrong shapes")


@suite.case
def test_wrong_shapes_without_msgid():
    """No msgid to answer: the server may answer bad_request (with whatever
    msgid it can) or close, but a later request on a still-open connection
    is answered, and nothing else is sent."""
    outcomes = []
    for msg in WRONG_SHAPE_NO_MSGID:
        with client() as c:
            c.send_raw(pack(msg) + H.rpc_request_bytes(900, "health", []))
            got = outcome_after(c, 900)
            outcomes.append(got)
            others = [m for m in c.messages if m[:2] != [1, 900]]
            for m in others:
                H.check(m[0] == 1 and isinstance(m[2], list) and m[2][0] == "bad_request",
                        "after %r only a bad_request answer may come: %r" % (msg, m))
            if got == "answered":
                H.check_eq(c.responses[900][0], None, "follow-up after %r" % (msg,))
    print("    outcomes: %s" % ", ".join("%r:%s" % (m, o) for m, o in zip(WRONG_SHAPE_NO_MSGID, outcomes)))
    still_serving("messages without a msgid")


def huge_headers():
    """(name, bytes): a request whose last object declares far more than the
    message limit, and bare top-level containers claiming 4G entries."""
    prefix = b"\x94\x00\x01\xa7publish\x93\xa1s\xa1t"
    out = []
    for name, tag in (("str32", 0xdb), ("bin32", 0xc6), ("array32", 0xdd), ("map32", 0xdf)):
        for n in (0xFFFFFFFF, 0x7FFFFFFF, 0x40000000):
            out.append(("%s/%#x" % (name, n), prefix + struct.pack(">BI", tag, n) + b"\x00" * 64))
    out.append(("ext32", prefix + b"\xc9\xff\xff\xff\xf0\x01" + b"\x00" * 64))
    out.append(("str16 in a map32 key", b"\xdf\xff\xff\xff\xff\xda\xff\xff"))
    out.append(("top array32", b"\xdd\xff\xff\xff\xff"))
    out.append(("top map32", b"\xdf\xff\xff\xff\xff"))
    out.append(("nested array32s", b"\x94\x00\x01\xa4ping" + b"\xdd\x7f\xff\xff\xff" * 8))
    return out


@suite.case
def test_huge_declared_lengths():
    base_peak = srv.proc_status("VmPeak")
    base_rss = srv.proc_status("VmRSS")
    for name, data in huge_headers():
        with client(unix=len(name) % 2 == 0, timeout=5 * H.slow_factor()) as c:
            c.send_raw(data)
            try:
                c.expect_closed(timeout=5 * H.slow_factor())
            except H.TestFailure as e:
                raise H.TestFailure("%s: %s" % (name, e))
            H.check_eq(c.messages, [], "%s: no answer before the close" % name)
    peak = srv.proc_status("VmPeak")
    rss = srv.proc_status("VmRSS")
    print("    VmPeak %d -> %d kB, VmRSS %d -> %d kB" % (base_peak, peak, base_rss, rss))
    H.check((peak - base_peak) * 1024 < GIB, "address space grew by %d MB: a declared length was allocated"
            % ((peak - base_peak) >> 10))
    H.check((rss - base_rss) * 1024 < 64 << 20, "RSS grew by %d MB" % ((rss - base_rss) >> 10))
    time.sleep(0.6)  # /health's snapshot refreshes every 0.25 s
    h = srv.health()
    H.check(h["rss_bytes"] < base_rss * 1024 + (64 << 20), "/health rss_bytes %d (base %d kB)"
            % (h["rss_bytes"], base_rss))
    still_serving("huge declared lengths")


def nested(depth, leaf, kind):
    if kind == "array":
        return b"\x91" * depth + leaf
    return b"\x81\xa1k" * depth + leaf


@suite.case
def test_deep_nesting():
    outcomes = []
    for depth, kind in ((20, "array"), (33, "array"), (100, "array"), (100, "map"), (20000, "array")):
        with client() as c:
            c.send_raw(b"\x94\x00\x01\xa7publish\x91" + nested(depth, b"\xa1x", kind)
                       + H.rpc_request_bytes(2, "health", []))
            got = outcome_after(c, 2)
            if got == "answered":
                err, res = c.responses[1]
                H.check(isinstance(err, list) and err[0] in ("bad_request", "bad_params"),
                        "depth %d %s: error %r" % (depth, kind, err))
            outcomes.append("%s %d: %s" % (kind, depth, got))
    print("    " + "; ".join(outcomes))
    still_serving("deep nesting")


@suite.case
def test_random_garbage():
    rng = random.Random(0x51_1CE)
    for i in range(40):
        blob = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 6000)))
        with client(unix=i % 2 == 1, timeout=2.0) as c:
            if i % 4 == 3:  # a valid request first: its answer comes before any fallout
                c.send_raw(H.rpc_request_bytes(1, "health", []) + blob)
                c.wait_until(lambda: 1 in c.responses or c.eof, "the response before garbage")
                H.check(1 in c.responses, "garbage #%d: the valid request before it was answered" % i)
            else:
                c.send_raw(blob)
            try:
                c.sock.shutdown(socket.SHUT_WR)
                deadline = time.monotonic() + 1.0
                while time.monotonic() < deadline and c.read_some(deadline + 0.5, "garbage fallout"):
                    pass
            except (H.TestFailure, OSError):
                pass  # still open after a second, or reset: both fine for garbage
    still_serving("random garbage")


@suite.case
def test_oversized_message():
    with client() as c:
        H.check_eq(c.ok("publish", "big", "t", b"q" * (MAX_MESSAGE - 200)), 1, "a message under the limit")
    for unix in (False, True):
        before = srv.stderr_text()
        with client(unix) as c:
            try:
                c.send_raw(H.rpc_request_bytes(1, "publish", ["big", "t", b"q" * (MAX_MESSAGE + 1)]))
            except (BrokenPipeError, ConnectionResetError):
                pass  # closed before it read everything: the expected outcome
            c.expect_closed(timeout=5 * H.slow_factor())
            H.check(1 not in c.responses, "no answer to an oversized message")
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and srv.stderr_text() == before:
            time.sleep(0.05)
        new = srv.stderr_text()[len(before):]
        H.check(any("closed" in l and "reason=" in l for l in new.splitlines()),
                "closing logs a line with its reason; new log text: %r" % new[-1000:])
    with client() as c:  # small objects, too many bytes in all
        batch = [["t", b"s" * 1000] for _ in range(100)]
        try:
            c.send_raw(H.rpc_request_bytes(1, "publish_batch", ["big", batch]))
        except (BrokenPipeError, ConnectionResetError):
            pass
        c.expect_closed(timeout=5 * H.slow_factor())
        H.check(1 not in c.responses, "no answer to an oversized batch")
    with client() as c:  # a slow writer crossing the limit is closed too
        req = H.rpc_request_bytes(1, "publish", ["big", "t", b"r" * (4 * MAX_MESSAGE)])
        closed = False
        for off in range(0, len(req), 16384):
            try:
                c.send_raw(req[off:off + 16384])
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            time.sleep(0.01)
        if not closed:
            c.expect_closed(timeout=5 * H.slow_factor())
    with client() as c:
        H.check_eq(c.ok("session", "big")["last_seq"], 1, "the oversized publishes appended nothing")
    still_serving("oversized messages")


def main():
    global srv
    H.require_rpc()
    srv = H.rpc_server(args=["--max-rpc-message-bytes", "64k"])
    suite.run(fixture=srv)


if __name__ == "__main__":
    main()
