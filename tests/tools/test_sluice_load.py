"""sluice-load end to end: short fan-out runs against the Node reference peer
(bench/peers/node-sse, h2c and HTTP/1.1) and against a tiny asyncio
HTTP/1.1 SSE server written here, asserting the exact number of events each
subscriber received and zero gaps; a server that drops one event must be
caught; and the exit statuses (usage 2, unreachable 3) hold.

Env (set by ctest): SLUICE_BUILD_DIR, SLUICE_SOURCE_DIR."""

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

BUILD = os.environ.get("SLUICE_BUILD_DIR", os.path.join(os.path.dirname(__file__), "../../build"))
SOURCE = os.environ.get("SLUICE_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "../.."))
LOAD = os.path.join(BUILD, "tools", "sluice-load")
PEER = os.path.join(SOURCE, "bench", "peers", "node-sse", "server.js")
NODE = shutil.which("node")

# Every run is bounded by its own flags; this only guards the test itself.
RUN_TIMEOUT_S = 60


def run_load(args, json_path=None):
    """Runs sluice-load; returns (exit status, parsed JSON or None, output)."""
    cmd = [LOAD, "--progress", "off"] + args
    if json_path:
        cmd += ["--json", json_path]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=RUN_TIMEOUT_S, text=True)
    doc = None
    if json_path and os.path.exists(json_path):
        with open(json_path) as f:
            doc = json.load(f)
    return p.returncode, doc, p.stdout


class TinySSE:
    """A minimal HTTP/1.1 implementation of the publish/subscribe subset,
    on asyncio in a background thread. drop=(sub_index, seq) makes the
    server skip one event for the sub_index-th subscriber, to prove that
    sluice-load notices."""

    def __init__(self, drop=None):
        self.drop = drop
        self.sessions = {}
        self.sub_count = 0
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._main, daemon=True)
        self.thread.start()
        if not self.ready.wait(10):
            raise RuntimeError("tiny server did not start")

    def _main(self):
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(
            asyncio.start_server(self._conn, "127.0.0.1", 0))
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

    @staticmethod
    def _reply(w, status, body, ctype="application/json"):
        w.write(b"HTTP/1.1 %d X\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n"
                % (status, ctype.encode(), len(body)) + body)

    async def _conn(self, r, w):
        try:
            while True:
                head = await r.readuntil(b"\r\n\r\n")
                lines = head.decode().split("\r\n")
                method, target, _ = lines[0].split(" ")
                hdrs = {k.lower(): v.strip() for k, _, v in
                        (ln.partition(":") for ln in lines[1:] if ln)}
                body = await r.readexactly(int(hdrs.get("content-length", "0")))
                if not await self._route(method, target, body, r, w):
                    return
                await w.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            w.close()

    async def _route(self, method, target, body, r, w):
        path, _, query = target.partition("?")
        parts = path.split("/")
        if len(parts) < 4 or parts[1:3] != ["v1", "sessions"]:
            self._reply(w, 404, b'{"error":"not_found"}')
            return True
        sid = parts[3]
        if len(parts) == 4 and method == "PUT":
            created = sid not in self.sessions
            self.sessions.setdefault(sid, {"log": [], "subs": []})
            self._reply(w, 201 if created else 200, b"{}")
            return True
        s = self.sessions.get(sid)
        if s is None:
            self._reply(w, 404, b'{"error":"not_found"}')
            return True
        if method == "POST":
            seq = len(s["log"]) + 1
            block = b"id: %d\nevent: message\ndata: %s\n\n" % (seq, body)
            s["log"].append(block)
            for idx, sw in s["subs"]:
                if self.drop != (idx, seq):
                    sw.write(b"%x\r\n%s\r\n" % (len(block), block))
            self._reply(w, 200, b'{"seq":%d}' % seq)
            return True
        # GET: an SSE stream; ?from=N replays from N.
        first = len(s["log"]) + 1
        if query.startswith("from="):
            first = int(query[5:])
        w.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n")
        idx = self.sub_count
        self.sub_count += 1
        for block in s["log"][first - 1:]:
            w.write(b"%x\r\n%s\r\n" % (len(block), block))
        entry = (idx, w)
        s["subs"].append(entry)
        try:
            await r.read()  # until the client goes away
        finally:
            s["subs"].remove(entry)
        return False


class NodePeer:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="sluice-load-peer-")
        ready = os.path.join(self.dir, "ready")
        self.proc = subprocess.Popen([NODE, PEER, "--port", "0", "--ready-file", ready],
                                     stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while not self._read(ready).endswith("\n"):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("node peer did not start")
            time.sleep(0.05)
        self.addr = self._read(ready).strip().split("=", 1)[1]

    @staticmethod
    def _read(path):
        try:
            with open(path) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


class SluiceLoadTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="sluice-load-test-")
        self.json = os.path.join(self.tmp, "result.json")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def assert_exact(self, doc, subscribers, events):
        self.assertEqual(doc["exit_code"], 0, doc["verdict"])
        self.assertEqual(doc["published"], events)
        self.assertEqual(doc["delivered"], subscribers * events)
        self.assertEqual(len(doc["subscribers"]), subscribers)
        for s in doc["subscribers"]:
            self.assertEqual(s["received"], events, s)
            self.assertEqual(s["expected"], events, s)
            self.assertEqual(s["gaps"], 0, s)
            self.assertEqual(s["out_of_order"], 0, s)
            self.assertEqual(s["last_id"], events, s)
            self.assertTrue(s["ok"], s)
        lat = doc["latency"]
        self.assertEqual(lat["count"], subscribers * events)
        self.assertTrue(0 < lat["p50_ns"] <= lat["p99_ns"] <= lat["max_ns"], lat)
        for k in ("conn_errors", "stream_errors", "subscribe_errors", "publish_errors",
                  "count_mismatches", "bad_payloads"):
            self.assertEqual(doc[k], 0, k)

    def fanout(self, target, proto, subs, events, extra=()):
        args = ["--target", target, "--proto", proto, "--scenario", "fanout",
                "--publishers", "2", "--subscribers", str(subs), "--rate", "2000",
                "--events", str(events), "--duration", "5", "--drain", "5"] + list(extra)
        return run_load(args, self.json)

    @unittest.skipIf(NODE is None, "node is not installed")
    def test_fanout_against_node_peer(self):
        peer = NodePeer()
        try:
            for proto, extra in (("h2", ["--streams-per-conn", "4"]), ("h1", [])):
                with self.subTest(proto=proto):
                    rc, doc, out = self.fanout(peer.addr, proto, 12, 300,
                                               ["--target-pid", str(peer.proc.pid)])
                    self.assertEqual(rc, 0, out)
                    self.assert_exact(doc, 12, 300)
                    # The peer has /health and a pid: both were sampled.
                    self.assertGreater(doc["target_rss_max_bytes"], 1 << 20)
                    self.assertGreaterEqual(doc["target_cpu_s"], 0)
                    self.assertGreaterEqual(len(doc["series"]), 1)
        finally:
            peer.stop()

    def test_fanout_against_tiny_server(self):
        srv = TinySSE()
        try:
            rc, doc, out = self.fanout("127.0.0.1:%d" % srv.port, "h1", 5, 200)
            self.assertEqual(rc, 0, out)
            self.assert_exact(doc, 5, 200)
        finally:
            srv.stop()

    def test_dropped_event_is_a_gap(self):
        srv = TinySSE(drop=(3, 50))
        try:
            rc, doc, out = self.fanout("127.0.0.1:%d" % srv.port, "h1", 5, 100,
                                       ["--drain", "1"])
            self.assertEqual(rc, 1, out)
            bad = [s for s in doc["subscribers"] if not s["ok"]]
            self.assertEqual(len(bad), 1, doc["subscribers"])
            self.assertEqual(bad[0]["gaps"], 1)
            self.assertEqual(bad[0]["received"], 99)
            self.assertEqual(doc["gaps"], 1)
            self.assertEqual(doc["count_mismatches"], 1)
            good = [s for s in doc["subscribers"] if s["ok"]]
            self.assertTrue(all(s["received"] == 100 for s in good))
        finally:
            srv.stop()

    def test_exit_statuses(self):
        rc, _, out = run_load(["--help"])
        self.assertEqual(rc, 0)
        self.assertIn("--subscribers", out)
        self.assertIn("SLUICE_LOAD_RATE", out)
        self.assertEqual(run_load(["--no-such-flag", "1"])[0], 2)
        self.assertEqual(run_load(["--rate", "fast"])[0], 2)
        self.assertEqual(run_load(["--proto", "h1", "--streams-per-conn", "2"])[0], 2)
        env_bad = subprocess.run([LOAD], env=dict(os.environ, SLUICE_LOAD_SIZE="3"),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 timeout=RUN_TIMEOUT_S)
        self.assertEqual(env_bad.returncode, 2)
        # A port nobody listens on: exit 3, quickly.
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        t0 = time.monotonic()
        rc, doc, out = run_load(["--target", "127.0.0.1:%d" % port, "--duration", "1"],
                                self.json)
        self.assertEqual(rc, 3, out)
        self.assertEqual(doc["exit_code"], 3)
        self.assertLess(time.monotonic() - t0, 10)

    def test_scenario_file_sets_flags(self):
        srv = TinySSE()
        try:
            cfg = os.path.join(self.tmp, "fanout.conf")
            with open(cfg, "w") as f:
                f.write("# three subscribers, 50 events\nscenario = fanout\nproto h1\n"
                        "subscribers = 3\n--events=50\nrate = 1000\n")
            rc, doc, out = run_load(["--config", cfg, "--target", "127.0.0.1:%d" % srv.port],
                                    self.json)
            self.assertEqual(rc, 0, out)
            self.assert_exact(doc, 3, 50)
        finally:
            srv.stop()


if __name__ == "__main__":
    if not os.access(LOAD, os.X_OK):
        print("sluice-load not built at %s" % LOAD, file=sys.stderr)
        sys.exit(1)
    unittest.main(verbosity=2)
