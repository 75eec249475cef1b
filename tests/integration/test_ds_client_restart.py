"""Durable Streams client (@durable-streams/client, npm) across a kill -9.

tests/ds/producer_restart.mjs creates a JSON stream, starts two live readers
(SSE and long-poll) and has an idempotent producer append 10,000 messages
{"i": n}, each batch a (Producer-Id, Epoch, Seq) POST that the client
retries on its own (fetch backoff on refused connections). When the
producer has half of them acknowledged it prints HALF; this test then
kills sluiced with SIGKILL and restarts it on the same port and data
directory. The producer closes the stream at the end. Asserted: both live
readers and a final catch-up read hold exactly the 10,000 messages, each
once and in order, and both readers saw the stream close.

Skips (77) when node or the npm modules are missing, except under CI=true.
"""

import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sluice_harness as H  # noqa: E402

DS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "ds")
N = 10000


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def server(data_dir, port, expect_clean_exit=True):
    srv = H.Server(bare=True, expect_clean_exit=expect_clean_exit)
    srv.args = ["--listen", "127.0.0.1:%d" % port, "--data-dir", data_dir,
                "--ready-file", srv.ready_file, "--long-poll-timeout", "2"]
    return srv.start()


def main():
    H.require_node_modules(DS_DIR, "@durable-streams/client")
    tmp = tempfile.mkdtemp(prefix="sluice-ds-restart-")
    data_dir = os.path.join(tmp, "data")
    port = free_port()
    first = server(data_dir, port, expect_clean_exit=False)
    second = None
    node = subprocess.Popen(["node", "producer_restart.mjs", "http://127.0.0.1:%d" % port,
                             "restart-%d" % os.getpid(), str(N)], cwd=DS_DIR,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60 * H.slow_factor()
        line = b""
        while b"HALF" not in line and time.monotonic() < deadline:
            r, _, _ = select.select([node.stdout], [], [], 1.0)
            if r:
                line = node.stdout.readline()
                H.check(line != b"" or node.poll() is None, "node ended early: %s" %
                        node.stderr.read().decode()[-2000:])
        H.check(b"HALF" in line, "the producer reached half way")
        first.send_signal(signal.SIGKILL)
        H.check_eq(first.wait(10), -signal.SIGKILL, "server killed by SIGKILL")
        first.close()
        time.sleep(0.3)  # the producer and readers meet refused connections
        second = server(data_dir, port)
        out, err = node.communicate(timeout=120 * H.slow_factor())
        text = out.decode("utf-8", "replace")
        H.check_eq(node.returncode, 0, "node exit code (stderr: %s)" % err.decode()[-2000:])
        res = json.loads([l for l in text.splitlines() if l.startswith("{")][-1])
        print("client results:", json.dumps(res))
        want = {"count": N, "distinct": N, "ordered": True, "first": 0, "last": N - 1}
        for name in ("sse", "longpoll"):
            got = dict(res[name])
            closed = got.pop("closed")
            H.check_eq(got, want, "%s reader's messages" % name)
            H.check_eq(closed, True, "%s reader saw the stream close" % name)
        H.check_eq(res["catchup"], want, "catch-up read after the close")
        second.assert_healthy("after the restart")
    finally:
        if node.poll() is None:
            node.kill()
            node.wait()
        for s in (first, second):
            if s is not None:
                s.close()
        shutil.rmtree(tmp, ignore_errors=True)
    print("ok")


if __name__ == "__main__":
    main()
