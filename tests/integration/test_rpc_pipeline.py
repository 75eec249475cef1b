"""msgpack-RPC pipelining and backpressure.

1. 1,000 requests written in one go on one connection (publishes to four
   sessions, sessions/session/health calls, and subscriptions from seq 1 in
   the middle of the stream): every msgid is answered exactly once with the
   right result, every session's publishes got exactly the seqs 1..n, and
   every subscription delivers exactly those events, in order, with the data
   of the publish that got that seq, after its own response.
2. A publisher that writes far faster than it reads (50,000 publishes of
   2 KB plus stats calls, not reading at all) is slowed by TCP: its socket
   send buffer fills and stays full while the server's peak RSS stays far
   below what buffering the stream would cost. When it then reads, every
   response arrives and the seqs are exact.
"""

import os
import select
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sluice_harness as H  # noqa: E402

SESSIONS = ["pl0", "pl1", "pl2", "pl3"]
SUBSCRIBE_AT = {100: "pl0", 400: "pl1", 700: "pl2"}


def pipeline_plan():
    """[(msgid, method, params)] for 1,000 requests."""
    plan = []
    for i in range(1000):
        msgid = i + 1
        if i in SUBSCRIBE_AT:
            plan.append((msgid, "subscribe", [SUBSCRIBE_AT[i], 1]))
        elif i % 10 == 3:
            plan.append((msgid, "sessions", []))
        elif i % 10 == 6:
            plan.append((msgid, "session", ["fixed"]))
        elif i % 50 == 9:
            plan.append((msgid, "health", []))
        else:
            text = "%d:%s" % (i, "x" * (i % 37))
            data = text if i % 2 else text.encode() + b"\xff\r\n"
            plan.append((msgid, "publish", [SESSIONS[i % 4], "t", data]))
    return plan


def check_pipeline_results(c, plan, fixed_stats):
    """Returns {session: {seq: data}} from the publish results."""
    by_seq = {s: {} for s in SESSIONS}
    for msgid, method, params in plan:
        err, res = c.responses.pop(msgid)
        H.check(err is None, "msgid %d (%s) failed: %r" % (msgid, method, err))
        if method == "publish":
            H.check(isinstance(res, int), "publish result %r" % res)
            H.check(res not in by_seq[params[0]], "seq %d of %s given twice" % (res, params[0]))
            by_seq[params[0]][res] = params[2]
        elif method == "sessions":
            H.check_eq([s["id"] for s in res["sessions"]], ["fixed"] + SESSIONS, "sessions ids (msgid %d)" % msgid)
            H.check("next" not in res, "single page")
        elif method == "session":
            H.check_eq(res, fixed_stats, "session stats (msgid %d)" % msgid)
        elif method == "health":
            H.check("uptime_s" in res and "events" in res, "health map (msgid %d)" % msgid)
    for s, seqs in by_seq.items():
        H.check_eq(sorted(seqs), list(range(1, len(seqs) + 1)), "seqs of %s" % s)
    return by_seq


def test_pipeline_1000(srv):
    addr = srv.rpc_addrs()[0]
    with H.RpcClient(srv.rpc_addrs()[1]) as setup:
        for s in SESSIONS:
            H.check_eq(setup.ok("create", s), True, "create " + s)
        for i in range(5):
            setup.ok("publish", "fixed", "f", "fixed %d" % i)
        fixed_stats = setup.ok("session", "fixed")
    with H.RpcClient(addr, timeout=30) as c:
        plan = pipeline_plan()
        c.next_msgid = len(plan) + 1
        c.send_raw(b"".join(H.rpc_request_bytes(m, meth, p) for m, meth, p in plan))
        c.wait_until(lambda: all(m in c.answered for m, _, _ in plan), "1,000 responses",
                     timeout=30 * H.slow_factor())
        H.check_eq(sorted(c.answered), list(range(1, 1001)), "exactly the 1,000 msgids answered")
        by_seq = check_pipeline_results(c, plan, fixed_stats)
        subs = {}
        for i, s in SUBSCRIBE_AT.items():
            sub = next(m[3] for m in c.messages if m[:2] == [1, i + 1])
            subs[s] = sub
            first_resp = next(k for k, m in enumerate(c.messages) if m[:2] == [1, i + 1])
            notes = [k for k, m in enumerate(c.messages) if m[0] == 2 and m[2][0] == sub]
            H.check(not notes or notes[0] > first_resp, "subscribe response of %s precedes its events" % s)
        for s, sub in subs.items():
            n = len(by_seq[s])
            got = c.wait_events(sub, n, timeout=20 * H.slow_factor())
            want = [(s, q, "t", by_seq[s][q]) for q in range(1, n + 1)]
            H.check_eq(got, want, "subscription to %s: every event once, in order" % s)
            for g, w in zip(got, want):
                H.check(type(g[3]) is type(w[3]), "%s seq %d: data kind" % (s, w[1]))
        # Live after the replay: one more publish each arrives once.
        for s, sub in subs.items():
            n = len(by_seq[s])
            H.check_eq(c.ok("publish", s, "t", "tail"), n + 1, "tail publish to " + s)
            got = c.wait_events(sub, n + 1)
            H.check_eq(got[n:], [(s, n + 1, "t", "tail")], "live tail on " + s)
        total = sum(len(by_seq[s]) + 1 for s in subs)
        notes = c.notifications()
        H.check_eq(len(notes), total, "notifications: only the expected events (no gap, no end, no extra)")


# -- backpressure ------------------------------------------------------------

PUBLISHES = 50000
DATA_BYTES = 2000
STATS_EVERY = 2          # one `session` call after every 2 publishes: answers (~7 MB) outgrow every buffer
RSS_GROWTH_MAX = 48 << 20  # the stream is over 100 MB; buffering it would cost more than this
STALL_S = 1.5


def backpressure_requests():
    """(bytes of the whole pipelined stream, number of requests in it)."""
    out, msgid = [], 0
    for i in range(PUBLISHES):
        msgid += 1
        data = (b"%08d" % i) + bytes([65 + i % 26]) * (DATA_BYTES - 8)
        out.append(H.rpc_request_bytes(msgid, "publish", ["bp%d" % (i % 2), "b", data]))
        if i % STATS_EVERY == STATS_EVERY - 1:
            msgid += 1
            out.append(H.rpc_request_bytes(msgid, "session", ["bp%d" % (i % 2)]))
    return b"".join(out), msgid


def vm_kb(srv, key):
    v = srv.proc_status(key)
    H.check(v is not None, "%s readable" % key)
    return v


def write_without_reading(srv, sock, stream, base_rss_kb):
    """Writes as much of stream as the socket takes without ever reading.
    Returns (bytes written, EAGAIN count, stalled, peak RSS kB): stalled
    means no byte could be written for STALL_S with bytes left."""
    off, eagain, peak = 0, 0, base_rss_kb
    last_progress = time.monotonic()
    deadline = last_progress + 40 * H.slow_factor()
    while off < len(stream) and time.monotonic() < deadline:
        try:
            n = sock.send(memoryview(stream)[off:off + (1 << 20)])
            off += n
            last_progress = time.monotonic()
        except BlockingIOError:
            eagain += 1
            if time.monotonic() - last_progress > STALL_S:
                break
            select.select([], [sock], [], 0.05)
        peak = max(peak, vm_kb(srv, "VmRSS"))
    stalled = off < len(stream) and time.monotonic() - last_progress > STALL_S
    return off, eagain, stalled, peak


def drain(srv, sock, stream, off, nresponses):
    """Reads every response while writing the rest; returns the decoded
    responses {msgid: (error, result)}."""
    import msgpack
    unpacker = msgpack.Unpacker(raw=False, max_buffer_size=256 << 20)
    got = {}
    deadline = time.monotonic() + 60 * H.slow_factor()
    while len(got) < nresponses:
        H.check(time.monotonic() < deadline, "only %d of %d responses arrived (%d of %d bytes written)"
                % (len(got), nresponses, off, len(stream)))
        want_w = [sock] if off < len(stream) else []
        r, w, _ = select.select([sock], want_w, [], 1.0)
        if w:
            try:
                off += sock.send(memoryview(stream)[off:off + (1 << 20)])
            except BlockingIOError:
                pass
        if r:
            data = sock.recv(1 << 20)
            H.check(data != b"", "server closed the connection after %d responses" % len(got))
            unpacker.feed(data)
            for m in unpacker:
                H.check(m[0] == 1 and m[1] not in got, "unexpected message %r" % (m,))
                got[m[1]] = (m[2], m[3])
    return got


def check_backpressure_responses(got, nresponses):
    H.check_eq(sorted(got), list(range(1, nresponses + 1)), "every msgid answered once")
    seqs = {"bp0": [], "bp1": []}
    msgid = 0
    for i in range(PUBLISHES):
        msgid += 1
        err, res = got[msgid]
        H.check(err is None, "publish %d failed: %r" % (i, err))
        seqs["bp%d" % (i % 2)].append(res)
        if i % STATS_EVERY == STATS_EVERY - 1:
            msgid += 1
            H.check(got[msgid][0] is None, "session call failed: %r" % (got[msgid][0],))
    for s, v in seqs.items():
        H.check_eq(sorted(v), list(range(1, PUBLISHES // 2 + 1)), "seqs of %s" % s)


def test_fast_writer_slowed_by_tcp(srv):
    addr = srv.rpc_addrs()[0]
    with H.RpcClient(addr) as warm:
        for s in ("bp0", "bp1"):
            warm.ok("create", s)
            warm.ok("publish", s, "warm", b"w" * DATA_BYTES)
    stream, nresponses = backpressure_requests()
    time.sleep(0.3)
    base = vm_kb(srv, "VmRSS")
    host, _, port = addr.rpartition(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32768)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
    sock.connect((host, int(port)))
    sock.setblocking(False)
    try:
        off, eagain, stalled, peak = write_without_reading(srv, sock, stream, base)
        hwm = vm_kb(srv, "VmHWM")
        print("    wrote %d of %d bytes without reading; EAGAIN %d; stalled %s; RSS %d -> peak %d kB"
              % (off, len(stream), eagain, stalled, base, peak))
        H.check(eagain > 0, "the writer's socket never filled")
        H.check(stalled, "the server kept reading (%d of %d bytes taken) while its responses were unread"
                % (off, len(stream)))
        H.check((peak - base) * 1024 < RSS_GROWTH_MAX,
                "server RSS grew by %d kB while a %d MB stream waited" % (peak - base, len(stream) >> 20))
        got = drain(srv, sock, stream, off, nresponses)
    finally:
        sock.close()
    check_backpressure_responses(shift_seqs(got, {"bp0": 1, "bp1": 1}), nresponses)
    H.check((vm_kb(srv, "VmHWM") - hwm) * 1024 < RSS_GROWTH_MAX, "peak RSS while draining")
    h = srv.health()
    H.check(h["rss_bytes"] < base * 1024 + RSS_GROWTH_MAX, "/health rss_bytes %d" % h["rss_bytes"])


def shift_seqs(got, offset):
    """Publish results minus the warm-up seqs (each session had one)."""
    out = dict(got)
    msgid = 0
    for i in range(PUBLISHES):
        msgid += 1
        err, res = out[msgid]
        if err is None:
            out[msgid] = (err, res - offset["bp%d" % (i % 2)])
        if i % STATS_EVERY == STATS_EVERY - 1:
            msgid += 1
    return out


def main():
    H.require_rpc()
    rc = H.run_cases_each_server("test_rpc_pipeline/pipeline", [test_pipeline_1000], factory=H.rpc_server)
    args = ["--session-ring-bytes", "64k", "--recv-buffers", "64", "--max-conn-output-bytes", "64k"]
    # ASan keeps freed memory in a quarantine (256 MB by default) that would
    # show as RSS; a small one keeps the measurement about live memory.
    env = {"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=1:quarantine_size_mb=4"}

    def factory(args):
        return H.rpc_server(args=args, unix=False, env=env)
    rc |= H.run_cases_each_server("test_rpc_pipeline/backpressure", [test_fast_writer_slowed_by_tcp],
                                  args, factory=factory)
    return rc


if __name__ == "__main__":
    sys.exit(main())
