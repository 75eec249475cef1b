"""Access control over msgpack-RPC (API.md "Access control").

Before `auth`, every method that needs a token answers `unauthorized`
(health answers only status and uptime_s). `auth` refuses expired,
not-yet-valid, wrongly keyed, alg none and algorithm-confused tokens with
`unauthorized`; a token without the pattern gets `forbidden` on publish,
subscribe, create, delete and session; the right one works, and `sessions`
lists only what it may sub. Expiry: a subscription made under a 2-second
token gets ["expired", [id]] and nothing more; `auth` with a fresh token
and a subscribe from the next seq misses nothing; an `auth` refresh before
the expiry keeps a subscription going.
"""

import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sluice_harness as H  # noqa: E402
from auth_tokens import Keys  # noqa: E402


def check_refusals(srv, keys):
    c = H.RpcClient(srv.rpc_addrs()[0])
    for method, params in [("publish", ["team-a", "message", "x"]), ("subscribe", ["team-a", 1]),
                           ("sessions", []), ("session", ["team-a"]), ("create", ["team-x"]),
                           ("delete", ["team-a"]), ("publish_batch", ["team-a", [["m", "x"]]])]:
        H.check_eq(c.error_code(method, *params), "unauthorized", "%s before auth" % method)
    H.check_eq(set(c.ok("health")), {"status", "uptime_s"}, "health before auth")
    # A method this server does not know is still not open: pub on its
    # session, else admin, before it can even say unknown_method.
    H.check_eq(c.error_code("frobnicate", "team-a"), "unauthorized", "other method before auth")
    for name, tok, want in keys.cases(["team-*"], ["team-*"]):
        if tok is None:
            H.check_eq(c.error_code("auth"), "bad_params", "auth without a token")
            continue
        if want == 401:
            H.check_eq(c.error_code("auth", tok), "unauthorized", "auth with %s" % name)
            H.check_eq(c.error_code("publish", "team-a", "message", "x"), "unauthorized",
                       "publish after a refused auth (%s)" % name)
            continue
        H.check_eq(c.ok("auth", tok), True, "auth with %s" % name)
        for method, params in [("publish", ["team-a", "message", "x"]),
                               ("subscribe", ["team-a", 1]), ("session", ["team-a"]),
                               ("create", ["team-y"]), ("delete", ["team-z"]),
                               ("publish_batch", ["team-a", [["m", "x"]]])]:
            if want == 403:
                H.check_eq(c.error_code(method, *params), "forbidden", "%s with %s" % (method, name))
            else:
                err, _ = c.call(method, *params)
                H.check(err is None or err[0] == "not_found",
                        "%s with %s: %r" % (method, name, err))
        H.check_eq(c.error_code("frobnicate", "team-a"),
                   "forbidden" if want == 403 else "unknown_method", "other method with %s" % name)
        H.check_eq(c.error_code("frobnicate"), "forbidden", "other method, no session, %s" % name)
        if want == 403:
            H.check_eq(c.ok("sessions")["sessions"], [], "sessions with %s" % name)
            H.check_eq(set(c.ok("health")), {"status", "uptime_s"}, "health without admin")
        else:
            ids = [s["id"] for s in c.ok("sessions")["sessions"]]
            H.check(ids and all(i.startswith("team-") for i in ids), "sessions: %r" % ids)
    c.close()


def check_expiry(srv, keys):
    admin = H.RpcClient(srv.rpc_addrs()[0])
    H.check_eq(admin.ok("auth", keys.hs256(keys.claims(admin=True))), True, "admin auth")
    admin.ok("create", "exp-a")
    c = H.RpcClient(srv.rpc_addrs()[1])  # the unix socket: same rules
    H.check_eq(c.ok("auth", keys.es256(keys.claims(sub=["exp-*"], exp_in=2))), True, "short auth")
    sub = c.ok("subscribe", "exp-a", 1)
    for i in range(5):
        admin.ok("publish", "exp-a", "message", "e%d" % i)
    got = c.wait_events(sub, 5)
    c.wait_until(lambda: c.notifications("expired"), "the expired notification", timeout=10)
    H.check_eq(c.notifications("expired")[0][2], [sub], "expired names the subscription")
    H.check_eq(c.error_code("session", "exp-a"), "unauthorized", "requests after expiry")
    for i in range(5, 8):
        admin.ok("publish", "exp-a", "message", "e%d" % i)
    time.sleep(0.3)
    H.check_eq(len(c.events(sub)), 5, "nothing more for an expired subscription")
    last = got[-1][1]
    H.check_eq(c.ok("auth", keys.hs256(keys.claims(sub=["exp-*"]))), True, "fresh auth")
    sub2 = c.ok("subscribe", "exp-a", last + 1)
    H.check_eq([e[1] for e in c.wait_events(sub2, 3)], [6, 7, 8], "resumed without a loss")
    # A refresh before the expiry keeps the subscription.
    H.check_eq(c.ok("auth", keys.hs256(keys.claims(sub=["exp-*"], exp_in=2))), True, "short again")
    sub3 = c.ok("subscribe", "exp-a", 9)
    H.check_eq(c.ok("auth", keys.hs256(keys.claims(sub=["exp-*"], exp_in=300))), True, "refresh")
    time.sleep(3)
    admin.ok("publish", "exp-a", "message", "after")
    H.check_eq([e[1] for e in c.wait_events(sub3, 1)], [9], "refreshed subscription still live")
    H.check_eq(len(c.notifications("expired")), 1, "no second expiry")
    c.close()
    admin.close()


def main():
    d = tempfile.mkdtemp(prefix="sluice-auth-rpc-")
    try:
        keys = Keys(d)
        sock = os.path.join(d, "rpc.sock")
        args = keys.flags() + ["--auth-leeway", "0", "--rpc-listen", "127.0.0.1:0",
                               "--rpc-listen", "unix:" + sock]
        with H.Server(args=args) as srv:
            check_refusals(srv, keys)
            check_expiry(srv, keys)
            srv.assert_healthy("rpc auth")
    finally:
        shutil.rmtree(d, ignore_errors=True)
    print("test_auth_rpc: ok")


if __name__ == "__main__":
    main()
