"""A browser-style client across a token expiry (API.md "Access control").

Node's `eventsource` follows a session with a 3-second token (minted by
`jose`, HS256) in ?access_token=, while events are published across the
expiry. The server ends the stream with `event: sluice.expired`; the client
reconnects with a fresh token and Last-Event-ID and must get every event
exactly once, in order.
"""

import json
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sluice_harness as H  # noqa: E402

NODE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "node")
SCRIPT = os.path.join(NODE_DIR, "sse_expiry.mjs")
SECRET = "node-test-secret-0123456789abcdefghijkl"
COUNT = 30
TTL_S = 3


def main():
    H.require_node_modules(NODE_DIR, "jose", "eventsource")
    d = tempfile.mkdtemp(prefix="sluice-auth-node-")
    try:
        secret = os.path.join(d, "secret")
        with open(secret, "w") as f:
            f.write(SECRET)
        with H.Server(args=["--auth-hs256-secret-file", secret, "--auth-leeway", "0"]) as srv:
            p = H.run(["node", SCRIPT, srv.url("").rstrip("/"), SECRET, "expiring", str(COUNT),
                       str(TTL_S)], timeout=40 * H.slow_factor(), cwd=NODE_DIR)
            out = p.stdout.decode("utf-8", "replace")
            err = p.stderr.decode("utf-8", "replace")
            H.check_eq(p.returncode, 0, "node exit code (stdout %s stderr %s)" % (out[-2000:], err[-2000:]))
            got = json.loads([l for l in out.splitlines() if l.startswith("{")][-1])
            H.check_eq(got["seen"], list(range(1, COUNT + 1)), "every event once, in order")
            H.check(got["expired"] >= 1, "the stream ended with sluice.expired: %r" % got)
            H.check(got["connects"] >= 2, "the client reconnected with a fresh token: %r" % got)
            H.check_eq(got["state"], "done", "final state")
            srv.assert_healthy("node client")
    finally:
        shutil.rmtree(d, ignore_errors=True)
    print("test_auth_node: ok")


if __name__ == "__main__":
    main()
