"""Access control over HTTP/1.1 and HTTP/2 (API.md "Access control").

A server with an HS256 secret, an RSA and an EC P-256 public key. Every
route is asked with no token, an expired one, a not-yet-valid one, one
signed with an unknown key, alg none, HS256 keyed with the RSA public key
(algorithm confusion), one without the pattern, and the right one minted
HS256, RS256 and ES256 by PyJWT: 401 with `WWW-Authenticate: Bearer`
(error `unauthorized`), 403 `forbidden`, or the route's own success, over
both protocols. Then: the token from ?access_token= and the cookie
sluice_token, GET /v1/sessions lists only what the token may sub, /health
without admin shows only status and uptime_s, and refusals are counted in
/health and /metrics and logged.
"""

import json
import os
import re
import shutil
import sys
import tempfile
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sluice_harness as H  # noqa: E402
from auth_tokens import Keys  # noqa: E402

try:
    import httpx
except ImportError:
    print("SKIP: python3-httpx is not installed (tools/install-deps.sh test)")
    sys.exit(H.SKIP_EXIT)


def request(srv, proto, method, path, token=None, body=None, headers=None):
    """(status, headers, body head) of one request on a fresh client; an SSE
    answer is read only up to its head."""
    hdrs = dict(headers or {})
    if token:
        hdrs["authorization"] = "Bearer " + token
    kw = {"http1": proto == 1, "http2": proto == 2}
    with httpx.Client(timeout=5.0, **kw) as c:
        with c.stream(method, srv.url(path), headers=hdrs, content=body) as r:
            H.check_eq(r.http_version, "HTTP/2" if proto == 2 else "HTTP/1.1", "protocol")
            if r.headers.get("content-type", "").startswith("text/event-stream"):
                return r.status_code, r.headers, b""
            return r.status_code, r.headers, r.read()


def main():
    keydir = tempfile.mkdtemp(prefix="sluice-auth-")
    try:
        keys = Keys(keydir)
        admin = keys.hs256(keys.claims(admin=True))
        with H.Server(args=keys.flags()) as srv:
            # Sessions the matrix works on, made by an admin.
            for sid in ["team-a"] + ["team-del-%d" % i for i in range(64)]:
                st, _, _ = request(srv, 1, "PUT", "/v1/sessions/" + sid, admin)
                H.check(st in (200, 201), "admin PUT %s: %d" % (sid, st))
            st, _, _ = request(srv, 1, "POST", "/v1/sessions/team-a/events", admin, b"x")
            H.check_eq(st, 200, "admin publish")
            dels = iter(range(64))
            routes = [
                # (method, path (fn of case index), body, pub?, sub?, admin?, success)
                ("POST", lambda i: "/v1/sessions/team-a/events", b"hello", 200),
                ("GET", lambda i: "/v1/sessions/team-a/events?from=1", None, 200),
                ("GET", lambda i: "/v1/sessions/team-a", None, 200),
                ("PUT", lambda i: "/v1/sessions/team-new", None, (200, 201)),
                ("DELETE", lambda i: "/v1/sessions/team-del-%d" % next(dels), None, 204),
            ]
            for proto in (1, 2):
                for name, tok, want in keys.cases(["team-*"], ["team-*"]):
                    for method, path, body, ok in routes:
                        p = path(0)
                        st, hd, b = request(srv, proto, method, p, tok, body)
                        what = "h%d %s %s with %s" % (proto, method, p, name)
                        if want is None:
                            H.check(st in (ok if isinstance(ok, tuple) else (ok,)),
                                    "%s: status %d, want %s; body %r" % (what, st, ok, b))
                            continue
                        H.check_eq(st, want, what)
                        err = json.loads(b)
                        H.check_eq(err["error"], "unauthorized" if want == 401 else "forbidden", what)
                        if want == 401:
                            H.check(hd.get("www-authenticate", "").startswith("Bearer"),
                                    "%s: WWW-Authenticate %r" % (what, hd.get("www-authenticate")))
                    # Admin routes: even the right session patterns are 403.
                    for p in ("/metrics", "/debug/connections"):
                        st, hd, _ = request(srv, proto, "GET", p, tok)
                        H.check_eq(st, 403 if want is None else want, "h%d %s with %s" % (proto, p, name))
                    st, _, b = request(srv, proto, "GET", "/health", tok)
                    H.check_eq(st, 200, "/health with %s" % name)
                    H.check_eq(set(json.loads(b)), {"status", "uptime_s"},
                               "h%d /health keys without admin (%s)" % (proto, name))
                # The admin token gets everything.
                for p in ("/metrics", "/debug/connections"):
                    st, _, _ = request(srv, proto, "GET", p, admin)
                    H.check_eq(st, 200, "h%d %s as admin" % (proto, p))
                st, _, b = request(srv, proto, "GET", "/health", admin)
                H.check("sessions" in json.loads(b) and "auth" in json.loads(b),
                        "full /health for admin: %r" % b[:200])

            # Other ways to carry the token.
            sub_tok = keys.hs256(keys.claims(sub=["team-a"]))
            q = "/v1/sessions/team-a?access_token=" + urllib.parse.quote(sub_tok)
            H.check_eq(request(srv, 1, "GET", q)[0], 200, "?access_token=")
            H.check_eq(request(srv, 2, "GET", q)[0], 200, "?access_token= over h2")
            ck = {"cookie": "theme=dark; sluice_token=%s; x=1" % sub_tok}
            H.check_eq(request(srv, 1, "GET", "/v1/sessions/team-a", headers=ck)[0], 200, "cookie")
            H.check_eq(request(srv, 2, "GET", "/v1/sessions/team-a", headers=ck)[0], 200,
                       "cookie over h2")
            st, hd, _ = request(srv, 1, "GET", "/v1/sessions/team-a",
                                headers={"authorization": "Basic dXNlcjpwYXNz"})
            H.check_eq(st, 401, "Basic credentials")

            # Lists hold only what the token may sub.
            st, _, b = request(srv, 1, "GET", "/v1/sessions?limit=1000", sub_tok)
            H.check_eq([s["id"] for s in json.loads(b)["sessions"]], ["team-a"], "filtered list")
            st, _, b = request(srv, 2, "GET", "/v1/sessions?limit=5",
                               keys.hs256(keys.claims(sub=["team-del-*"])))
            page = json.loads(b)
            H.check_eq(len(page["sessions"]), 5, "a full page of visible ids")
            H.check("next" in page, "more visible ids: next")
            st, _, b = request(srv, 1, "GET", "/v1/sessions", keys.hs256(keys.claims(sub=["zzz"])))
            H.check_eq(json.loads(b)["sessions"], [], "nothing visible")
            H.check_eq(request(srv, 1, "GET", "/v1/sessions")[0], 401, "list without a token")

            # Refusals are counted and logged (rate-limited lines): a burst on
            # one keep-alive connection goes past the per-second line budget.
            with httpx.Client(timeout=5.0) as burst:
                for _ in range(60):
                    H.check_eq(burst.get(srv.url("/metrics")).status_code, 401, "burst")
            time.sleep(0.6)  # the /health snapshot is refreshed every 0.25 s
            h = json.loads(request(srv, 1, "GET", "/health", admin)[2])
            H.check(h["auth"]["refused_401"] >= 140 and h["auth"]["refused_403"] >= 20,
                    "refusal counters: %r" % h["auth"])
            m = request(srv, 1, "GET", "/metrics", admin)[2].decode()
            H.check("sluice_auth_refused_total{status=\"401\"}" in m, "401 counter in /metrics")
            lines = srv.log_lines("access refused")
            H.check(0 < len(lines) < h["auth"]["refused_401"], "audit lines are rate-limited: %d"
                    % len(lines))
            H.check(any("status=401" in l for l in lines), "audit fields")
            H.check(any(re.search(r"suppressed=[1-9]", l) for l in lines),
                    "a burst beyond the line budget is counted as suppressed")
    finally:
        shutil.rmtree(keydir, ignore_errors=True)
    print("test_auth_http: ok")


if __name__ == "__main__":
    main()
