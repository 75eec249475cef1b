"""Protected mode (API.md "Access control", "Anonymous").

Without a key, a listener beyond loopback refuses to start: exit 2 with a
message naming how to add a key or --allow-anonymous (HTTP and RPC
listeners alike). With --allow-anonymous it starts, warns, and every
client is admin. With a key the same listener starts and anonymous
callers get 401. Unreadable or unsuitable key files exit 2 with the file
named. On loopback without a key, anonymous callers are admin.
"""

import json
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sluice_harness as H  # noqa: E402
from auth_tokens import Keys  # noqa: E402


def refused(args, want, what):
    with tempfile.TemporaryDirectory(prefix="sluice-prot-") as d:
        p = H.run([H.sluiced_path(), "--data-dir", os.path.join(d, "data")] + args, timeout=20)
    err = p.stderr.decode("utf-8", "replace")
    H.check_eq(p.returncode, 2, "%s: exit code (stderr %s)" % (what, err[-1000:]))
    for w in want:
        H.check(w in err, "%s: %r in the message: %s" % (what, w, err[-1000:]))


def main():
    d = tempfile.mkdtemp(prefix="sluice-auth-prot-")
    try:
        keys = Keys(d)
        hint = ["--auth-hs256-secret-file", "--allow-anonymous"]
        refused(["--listen", "0.0.0.0:0"], hint + ["0.0.0.0:0"], "public HTTP listener")
        refused(["--listen", ":0"], hint, "wildcard HTTP listener")
        refused(["--listen", "127.0.0.1:0", "--rpc-listen", "0.0.0.0:0"], hint + ["--rpc-listen"],
                "public RPC listener")
        refused(["--listen", "127.0.0.1:0", "--auth-hs256-secret-file", os.path.join(d, "missing")],
                ["--auth-hs256-secret-file", "missing"], "missing secret file")
        short = os.path.join(d, "short")
        with open(short, "w") as f:
            f.write("short")
        refused(["--listen", "127.0.0.1:0", "--auth-hs256-secret-file", short], ["32 to 4096"],
                "short secret")
        refused(["--listen", "127.0.0.1:0", "--auth-public-key-file", keys.secret_path], ["PEM"],
                "a secret given as a public key")

        # --allow-anonymous: starts, warns, everyone is admin.
        with H.Server(args=["--allow-anonymous"], bare=True, env={
                "SLUICE_LISTEN": "0.0.0.0:0", "SLUICE_DATA_DIR": os.path.join(d, "data1"),
                "SLUICE_READY_FILE": os.path.join(d, "ready1")}) as srv:
            H.check(srv.log_lines("anonymous access on a non-loopback listener: every client is admin"),
                    "the warning: %s" % srv.stderr_text()[-1000:])
            r = H.http1_request("127.0.0.1", srv.port, "GET", "/metrics")
            H.check_eq(r.status, 200, "anonymous /metrics with --allow-anonymous")
        # A key: the public listener starts and anonymous callers get 401.
        with H.Server(args=keys.flags(), bare=True, env={
                "SLUICE_LISTEN": "0.0.0.0:0", "SLUICE_DATA_DIR": os.path.join(d, "data2"),
                "SLUICE_READY_FILE": os.path.join(d, "ready2")}) as srv:
            H.check_eq(H.http1_request("127.0.0.1", srv.port, "GET", "/metrics").status, 401,
                       "anonymous /metrics with a key")
            h = json.loads(H.http1_request("127.0.0.1", srv.port, "GET", "/health").body)
            H.check_eq(set(h), {"status", "uptime_s"}, "anonymous /health with a key")
        # Loopback, no key: anonymous is admin, the full /health.
        with H.Server() as srv:
            H.check_eq(H.http1_request(srv.host, srv.port, "GET", "/metrics").status, 200,
                       "anonymous /metrics on loopback")
            h = srv.health()
            H.check(h["auth"]["enabled"] is False and "sessions" in h, "open /health: %r" % h.get("auth"))
    finally:
        shutil.rmtree(d, ignore_errors=True)
    print("test_auth_protected: ok")


if __name__ == "__main__":
    main()
