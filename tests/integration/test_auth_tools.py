"""The clients under access control: `sluicectl token` mints an HS256 token
that PyJWT verifies with the same secret file and that sluiced accepts;
sluicectl --token / SLUICE_TOKEN authenticates its RPC connection (without
it: exit 1, unauthorized; with a token lacking the pattern: forbidden);
sluice-load --token / SLUICE_TOKEN publishes and follows over HTTP/1.1,
HTTP/2 and msgpack-RPC with every event delivered, and without a token its
publishes are refused."""

import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sluice_harness as H  # noqa: E402
from auth_tokens import SECRET, Keys  # noqa: E402
import jwt  # noqa: E402  (auth_tokens skips when it is missing)

BUILD = os.environ.get("SLUICE_BUILD_DIR",
                       os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../build"))
CTL = os.path.join(BUILD, "tools", "sluicectl")
LOAD = os.path.join(BUILD, "tools", "sluice-load")


def ctl(*args, env=None):
    e = dict(os.environ)
    e.pop("SLUICE_TOKEN", None)
    e.update(env or {})
    p = subprocess.run([CTL] + list(args), capture_output=True, timeout=30, env=e)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def load(args, json_path, env=None):
    e = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_")}
    e.update(env or {})
    p = subprocess.run([LOAD, "--progress", "off", "--json", json_path] + args,
                       capture_output=True, timeout=60, env=e)
    with open(json_path) as f:
        return p.returncode, json.load(f), p.stdout.decode() + p.stderr.decode()


def main():
    d = tempfile.mkdtemp(prefix="sluice-auth-tools-")
    try:
        keys = Keys(d)
        rc, tok, err = ctl("token", "--secret-file", keys.secret_path, "--pub", "tools-*",
                           "--sub", "tools-*", "--ttl", "600", "--subject", "ci")
        H.check_eq(rc, 0, "sluicectl token: %s" % err)
        tok = tok.strip()
        claims = jwt.decode(tok, SECRET, algorithms=["HS256"])
        H.check_eq(claims["sluice"], {"pub": ["tools-*"], "sub": ["tools-*"], "admin": False},
                   "minted capabilities")
        H.check(590 <= claims["exp"] - claims["iat"] <= 600 and claims["sub"] == "ci", "claims")
        rc, admin, _ = ctl("token", "--secret-file", keys.secret_path, "--admin")
        admin = admin.strip()
        H.check_eq(rc, 0, "admin token")
        H.check_eq(ctl("token", "--secret-file", keys.secret_path, "--pub", "a b")[0], 2,
                   "bad pattern is a usage error")
        with H.Server(args=keys.flags() + ["--rpc-listen", "127.0.0.1:0"]) as srv:
            rpc = srv.rpc_addrs()[0]
            rc, _, err = ctl("--rpc", rpc, "create", "tools-a")
            H.check(rc == 1 and "unauthorized" in err, "no token: %d %s" % (rc, err))
            H.check_eq(ctl("--rpc", rpc, "--token", tok, "create", "tools-a")[0], 0, "--token")
            rc, _, err = ctl("--rpc", rpc, "publish", "tools-a", "hi", env={"SLUICE_TOKEN": tok})
            H.check_eq(rc, 0, "SLUICE_TOKEN: %s" % err)
            rc, _, err = ctl("--rpc", rpc, "--token", tok, "create", "other")
            H.check(rc == 1 and "forbidden" in err, "wrong pattern: %d %s" % (rc, err))
            rc, _, err = ctl("--rpc", rpc, "--token", "x.y.z", "health")
            H.check(rc == 1 and "unauthorized" in err, "bad token: %d %s" % (rc, err))

            jp = os.path.join(d, "load.json")
            for proto, extra in (("h1", []), ("h2", []), ("rpc", ["--rpc-target", rpc])):
                args = ["--target", srv.authority(), "--proto", proto, "--scenario", "fanout",
                        "--publishers", "1", "--subscribers", "3", "--rate", "500", "--events",
                        "50", "--duration", "5", "--drain", "5", "--health=0",
                        ] + extra
                rc, doc, out = load(args + ["--token", tok, "--session-prefix", "tools-%s-1-" % proto], jp)
                H.check_eq(rc, 0, "sluice-load %s with --token: %s" % (proto, out[-2000:]))
                H.check_eq(doc["delivered"], 150, "%s: every event to every subscriber" % proto)
                rc, doc, out = load(args + ["--session-prefix", "tools-%s-2-" % proto], jp,
                                    env={"SLUICE_TOKEN": tok})
                H.check_eq(rc, 0, "sluice-load %s with SLUICE_TOKEN: %s" % (proto, out[-2000:]))
                rc, doc, out = load(args + ["--subscribers", "0", "--session-prefix",
                                            "tools-%s-3-" % proto], jp)
                H.check(rc != 0 and doc["publish_errors"] > 0, "%s without a token is refused: %s"
                        % (proto, out[-500:]))
    finally:
        shutil.rmtree(d, ignore_errors=True)
    print("test_auth_tools: ok")


if __name__ == "__main__":
    main()
