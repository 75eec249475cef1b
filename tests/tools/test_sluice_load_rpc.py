"""sluice-load's msgpack-RPC mode (--proto rpc) end to end.

Against the real sluiced (TCP and unix-socket RPC listeners): a fan-out run
(2 publishers, 12 subscribers, 4 subscriptions per connection) where every
subscriber receives exactly every published event, in order, with no gap;
a pipelined, durable publish run whose exact count the server's own stats
confirm; the server's RPC health map read into the samples.

Against a tiny msgpack-RPC server written here (asyncio): the client copes
with responses out of order, messages split at arbitrary byte boundaries,
notifications it does not know and every integer width; and it catches a
server that drops one event (a gap) or reports one lost (a gap notice).
Exit statuses: 2 for RPC flag misuse, 3 when the RPC target is unreachable.

Env (set by ctest): SLUICED, SLUICE_BUILD_DIR, SLUICE_SOURCE_DIR."""

import asyncio
import os
import shutil
import socket
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import sluice_harness as H  # noqa: E402

BUILD = os.environ.get("SLUICE_BUILD_DIR", os.path.join(HERE, "..", "..", "build"))
LOAD = os.path.join(BUILD, "tools", "sluice-load")
RUN_TIMEOUT_S = 90  # every run is bounded by its own flags; this guards the test

suite = H.Suite("test_sluice_load_rpc")
tmp = tempfile.mkdtemp(prefix="sluice-load-rpc-")


def run_load(args):
    """Runs sluice-load; returns (exit status, parsed JSON or None, output)."""
    return H.run_sluice_load(LOAD, args, os.path.join(tmp, "result.json"), RUN_TIMEOUT_S)


def check_exact(doc, out, subscribers, events):
    """Every subscriber got every event, in order, no gap, no error."""
    H.check(doc is not None, "no JSON result; output:\n" + out)
    H.check_eq(doc["exit_code"], 0, "exit code (verdict %s)\n%s" % (doc["verdict"], out))
    H.check_eq(doc["config"]["proto"], "rpc", "proto in the result")
    H.check_eq(doc["published"], events, "published")
    H.check_eq(doc["delivered"], subscribers * events, "delivered")
    H.check_eq(len(doc["subscribers"]), subscribers, "subscriber results")
    for s in doc["subscribers"]:
        H.check_eq((s["received"], s["expected"], s["gaps"], s["out_of_order"], s["bad"],
                    s["gap_events"], s["last_id"], s["ok"]),
                   (events, events, 0, 0, 0, 0, events, True), "subscriber %d" % s["index"])
    for k in ("conn_errors", "stream_errors", "subscribe_errors", "publish_errors", "gaps",
              "count_mismatches", "bad_payloads", "gap_events"):
        H.check_eq(doc[k], 0, k)
    lat = doc["latency"]
    H.check_eq(lat["count"], subscribers * events, "latency samples")
    H.check(0 < lat["p50_ns"] <= lat["p99_ns"] <= lat["max_ns"], "latency order %r" % lat)


def fanout_args(target, subs, events, extra=()):
    return ["--proto", "rpc", "--rpc-target", target, "--scenario", "fanout", "--publishers", "2",
            "--subscribers", str(subs), "--rate", "2000", "--events", str(events),
            "--duration", "10", "--drain", "10"] + list(extra)


# -- the real server -----------------------------------------------------------

real = {}


@suite.case
def test_fanout_exact_against_sluiced():
    srv = real["srv"]
    rc, doc, out = run_load(fanout_args(real["tcp"], 12, 600,
                                        ["--streams-per-conn", "4", "--target-pid", str(srv.pid)]))
    H.check_eq(rc, 0, "sluice-load exit\n" + out)
    check_exact(doc, out, 12, 600)
    H.check(doc["target_cpu_s"] >= 0, "server CPU sampled")


@suite.case
def test_durable_pipelined_publish_against_sluiced():
    srv = real["srv"]
    rc, doc, out = run_load(["--proto", "rpc", "--rpc-target", real["unix"], "--scenario", "publish",
                             "--publishers", "2", "--pipeline", "16", "--durable",
                             "--events", "3000", "--rate", "2500", "--duration", "20",
                             "--session-prefix", "dur"])
    H.check_eq(rc, 0, "sluice-load exit\n" + out)
    H.check_eq((doc["published"], doc["publish_errors"], doc["conn_errors"]), (3000, 0, 0),
               "published, errors")
    # The server agrees: exactly 3,000 events, and they were synced.
    st = H.http1_request(srv.host, srv.port, "GET", "/v1/sessions/dur-0").json()
    H.check_eq((st["events"], st["first_seq"], st["last_seq"]), (3000, 1, 3000), "server stats")
    storage = srv.health()["storage"]
    H.check(storage["fsyncs"] > 0, "durable publishes were fsynced: %r" % storage)
    # The run lasts over a second, so it sampled the server; with no
    # --target-pid the RSS can only have come from the RPC health map.
    H.check(any(s["rss_bytes"] > (1 << 20) for s in doc["series"]),
            "RSS from the RPC health map: %r" % doc["series"])


@suite.case
def test_several_sessions_and_live_start_against_sluiced():
    rc, doc, out = run_load(fanout_args(real["tcp"], 6, 300, ["--sessions", "3"]))
    H.check_eq(rc, 0, "sluice-load exit\n" + out)
    H.check_eq(doc["published"], 300, "published")
    H.check_eq(doc["delivered"], 6 * 100, "each subscriber gets its session's third")
    for s in doc["subscribers"]:
        H.check_eq((s["received"], s["expected"], s["gaps"], s["ok"]), (100, 100, 0, True),
                   "subscriber %d" % s["index"])


# -- a tiny RPC server ---------------------------------------------------------

FAKE_RSS = 123456789


def pack(obj):
    import msgpack
    return msgpack.packb(obj, use_bin_type=True)


class TinyRpc:
    """publish / subscribe / create / health over asyncio.

    drop=(sub_index, seq): that subscriber (in order of subscription here)
    never gets that event. gap=(sub_index, seq): it gets a gap notice
    instead.
    awkward: answers publishes in reversed pairs, sends every byte stream in
    7-byte pieces, sends unknown notifications, and encodes seqs and ids in
    wider integer forms than needed."""

    def __init__(self, drop=None, gap=None, awkward=False):
        self.drop, self.gap, self.awkward = drop, gap, awkward
        self.sessions = {}
        self.sub_count = 0
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._main, daemon=True)
        self.thread.start()
        H.check(self.ready.wait(10), "tiny RPC server started")

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.port

    def _main(self):
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(asyncio.start_server(self._conn, "127.0.0.1", 0))
        self.port = self.server.sockets[0].getsockname()[1]
        self.ready.set()
        self.loop.run_forever()
        tasks = asyncio.all_tasks(self.loop)
        for t in tasks:
            t.cancel()
        self.loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        self.loop.close()

    def stop(self):
        def _close():
            self.server.close()
            self.loop.stop()
        self.loop.call_soon_threadsafe(_close)
        self.thread.join(10)

    def uint(self, v):
        """v packed as a uint64 when awkward (valid msgpack, just wider)."""
        return b"\xcf" + v.to_bytes(8, "big") if self.awkward else pack(v)

    def event_bytes(self, sub_id, sid, seq, data):
        if not self.awkward:
            return pack([2, "event", [sub_id, sid, seq, "message", data]])
        return (b"\x93\x02" + pack("event") + b"\x95" + self.uint(sub_id) + pack(sid) +
                self.uint(seq) + pack("message") + b"\xc6" + len(data).to_bytes(4, "big") + data)

    def write(self, w, data):
        if not self.awkward:
            w.write(data)
            return
        for i in range(0, len(data), 7):
            w.write(data[i:i + 7])

    def deliver(self, s, seq, data):
        for idx, sub_id, w in s["subs"]:
            if self.drop == (idx, seq):
                continue
            if self.gap == (idx, seq):
                self.write(w, pack([2, "gap", [sub_id, seq, seq]]))
            else:
                self.write(w, self.event_bytes(sub_id, s["id"], seq, data))

    def answer(self, w, msgid, result, held):
        msg = pack([1, msgid, None, result])
        if self.awkward:
            self.write(w, pack([2, "sluice.hello", ["ignore me", {"x": 1}]]))
            held.append(msg)
            if len(held) == 2:  # reversed pairs: the client must match msgids
                self.write(w, held.pop() + held.pop())
        else:
            w.write(msg)

    def call(self, w, msgid, method, params, held):
        if method == "health":
            self.answer(w, msgid, {"uptime_s": 1.5, "rss_bytes": FAKE_RSS, "open_fds": 7,
                                   "reactors": [{"loop_lag_ms_max": 1.5},
                                                {"loop_lag_ms_max": 2.25}]}, held)
            return
        sid = params[0]
        s = self.sessions.setdefault(sid, {"id": sid, "log": [], "subs": []})
        if method == "create":
            self.answer(w, msgid, True, held)
        elif method == "publish":
            s["log"].append(params[2])
            seq = len(s["log"])
            self.answer(w, msgid, seq, held)
            self.deliver(s, seq, params[2])
        elif method == "subscribe":
            if held:  # a subscribe answer must come before its events
                self.write(w, held.pop())
            self.sub_count += 1
            sub_id = 1000 + self.sub_count
            w.write(pack([1, msgid, None, sub_id]))
            for seq, data in enumerate(s["log"][params[1] - 1:] if params[1] != "live" else [],
                                       start=params[1] if params[1] != "live" else 1):
                self.write(w, self.event_bytes(sub_id, sid, seq, data))
            s["subs"].append((self.sub_count - 1, sub_id, w))
        else:
            w.write(pack([1, msgid, ["unknown_method", method], None]))

    async def _conn(self, r, w):
        import msgpack
        up = msgpack.Unpacker(raw=False)
        held = []
        try:
            while True:
                data = await r.read(65536)
                if not data:
                    break
                up.feed(data)
                for msg in up:
                    self.call(w, msg[1], msg[2], msg[3], held)
                if held and self.awkward:
                    self.write(w, held.pop())
                await w.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            for s in self.sessions.values():
                s["subs"] = [e for e in s["subs"] if e[2] is not w]
            w.close()


@suite.case
def test_awkward_but_valid_server():
    srv = TinyRpc(awkward=True)
    try:
        rc, doc, out = run_load(fanout_args(srv.addr, 5, 300, ["--rate", "200"]))
        H.check_eq(rc, 0, "sluice-load exit\n" + out)
        check_exact(doc, out, 5, 300)
        # The health map's figures reached the samples.
        rss = [s["rss_bytes"] for s in doc["series"]]
        H.check(FAKE_RSS in rss, "RSS from the RPC health map: %r" % rss)
        lags = [s["lag_ms"] for s in doc["series"] if s["rss_bytes"] == FAKE_RSS]
        H.check(all(abs(l - 2.25) < 1e-9 for l in lags), "largest reactor lag: %r" % lags)
    finally:
        srv.stop()


@suite.case
def test_dropped_event_is_a_gap():
    srv = TinyRpc(drop=(3, 50))
    try:
        rc, doc, out = run_load(fanout_args(srv.addr, 5, 100, ["--drain", "1"]))
        H.check_eq(rc, 1, "exit with a dropped event\n" + out)
        bad = [s for s in doc["subscribers"] if not s["ok"]]
        H.check_eq([(s["gaps"], s["received"], s["last_id"]) for s in bad], [(1, 99, 100)],
                   "the one subscriber that missed seq 50")
        H.check_eq((doc["gaps"], doc["count_mismatches"]), (1, 1), "gaps, count mismatches")
        H.check(all(s["received"] == 100 for s in doc["subscribers"] if s["ok"]), "others whole")
    finally:
        srv.stop()


@suite.case
def test_gap_notice_is_counted():
    srv = TinyRpc(gap=(1, 20))
    try:
        rc, doc, out = run_load(fanout_args(srv.addr, 3, 60, ["--drain", "1"]))
        H.check_eq(rc, 1, "exit with a gap notice\n" + out)
        bad = [s for s in doc["subscribers"] if not s["ok"]]
        H.check_eq([(s["gap_events"], s["gaps"], s["received"], s["last_id"]) for s in bad],
                   [(1, 0, 59, 60)], "the gap notice stands for seq 20, order continues")
        H.check_eq(doc["gap_events"], 1, "gap notices")
    finally:
        srv.stop()


@suite.case
def test_exit_statuses():
    for args in (["--proto", "rpc", "--churn-rate", "5"],
                 ["--proto", "rpc", "--rpc-target", "unix:"],
                 ["--proto", "rpc", "--rpc-target", "no-port"],
                 ["--proto", "rpc", "--pipeline", "0"]):
        rc, _, out = run_load(args)
        H.check_eq(rc, 2, "usage exit for %r\n%s" % (args, out))
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    t0 = time.monotonic()
    rc, doc, out = run_load(["--proto", "rpc", "--rpc-target", "127.0.0.1:%d" % port,
                             "--duration", "1"])
    H.check_eq(rc, 3, "unreachable RPC target\n" + out)
    H.check_eq(doc["exit_code"], 3, "exit code in the JSON")
    H.check(time.monotonic() - t0 < 15, "fails fast")
    rc, _, out = run_load(["--proto", "rpc", "--rpc-target", "unix:" + os.path.join(tmp, "none.sock"),
                           "--duration", "1"])
    H.check_eq(rc, 3, "unreachable unix socket\n" + out)
    rc, _, out = run_load(["--help"])
    H.check(rc == 0 and "--rpc-target" in out and "--pipeline" in out and "--durable" in out,
            "--help lists the RPC flags")


class RealServer:
    def __enter__(self):
        real["srv"] = H.rpc_server(args=["--fsync", "batch"])
        real["srv"].__enter__()
        real["tcp"], real["unix"] = real["srv"].rpc_addrs()
        return self

    def __exit__(self, *exc):
        try:
            return real["srv"].__exit__(*exc)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def main():
    if not os.access(LOAD, os.X_OK):
        print("sluice-load not built at %s" % LOAD)
        sys.exit(1)
    H.require_rpc()
    suite.run(RealServer())


if __name__ == "__main__":
    main()
