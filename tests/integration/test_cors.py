"""Browser-facing HTTP: the security headers on every response (errors,
streams and parse failures included), CORS grants for --cors-origin, the
preflight, and the Origin check that keeps a page of another origin from
publishing or deleting through a user's browser. Each case runs over
HTTP/1.1 and over h2c (prior knowledge) with httpx, against the real
sluiced."""

import json
import os
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sluice_harness as H  # noqa: E402
import httpx  # noqa: E402

suite = H.Suite("test_cors")

ALLOWED = "https://app.test"
OTHER_ALLOWED = "http://b.test:81"
EVIL = "https://evil.test"
PROTOS = ("HTTP/1.1", "HTTP/2")


def client(proto):
    if proto == "HTTP/2":
        transport = httpx.HTTPTransport(http1=False, http2=True)  # h2c, prior knowledge
    else:
        transport = httpx.HTTPTransport()
    return httpx.Client(transport=transport, timeout=10.0)


def check_security(r, what, corp="same-origin"):
    H.check_eq(r.headers.get("x-content-type-options"), "nosniff", "%s nosniff" % what)
    H.check_eq(r.headers.get("cross-origin-resource-policy"), corp, "%s CORP" % what)


def used(r, proto, what):
    H.check_eq(r.http_version, proto, "%s protocol" % what)


def stream_head(c, url, headers):
    """Opens an SSE stream, returns its status and headers, closes it."""
    with c.stream("GET", url, headers=headers) as r:
        return r.status_code, dict(r.headers)


@suite.case
def test_security_headers_everywhere():
    with H.Server() as srv:
        for proto in PROTOS:
            sid = "sec-" + proto[-1]
            with client(proto) as c:
                cases = [
                    ("GET", "/health", 200), ("GET", "/nope", 404), ("POST", "/health", 405),
                    ("GET", "/v1/sessions?limit=%zz", 400), ("GET", "/v1/sessions/unknown", 404),
                    ("PUT", "/v1/sessions/" + sid, 201), ("POST", "/v1/sessions/%s/events" % sid, 200),
                    ("GET", "/metrics", 200), ("HEAD", "/health", 200),
                ]
                for method, path, want in cases:
                    r = c.request(method, srv.url(path), content=b"x" if method == "POST" else None)
                    what = "%s %s %s" % (proto, method, path)
                    used(r, proto, what)
                    H.check_eq(r.status_code, want, "%s status" % what)
                    check_security(r, what)
                    H.check("access-control-allow-origin" not in r.headers,
                            "%s: no CORS grant without --cors-origin" % what)
                    H.check("vary" not in r.headers, "%s: no Vary without a list" % what)
                st, hd = stream_head(c, srv.url("/v1/sessions/%s/events?from=1" % sid), {})
                H.check_eq(st, 200, "%s stream status" % proto)
                H.check_eq(hd.get("x-content-type-options"), "nosniff", "%s stream nosniff" % proto)
        # A request that never parsed still gets them (HTTP/1.1 parse error).
        with socket.create_connection((srv.host, srv.port), timeout=5) as s:
            s.sendall(b"GET / HTTP/1.1\r\nBad Header\r\n\r\n")
            r = H.Http1Reader(s).read_response()
        H.check_eq(r.status, 400, "malformed request status")
        H.check_eq(r.header("x-content-type-options"), "nosniff", "parse error nosniff")
        H.check_eq(r.header("cross-origin-resource-policy"), "same-origin", "parse error CORP")


@suite.case
def test_no_policy_refuses_other_origins():
    with H.Server() as srv:
        own = "http://%s" % srv.authority()
        for proto in PROTOS:
            sid = "np-" + proto[-1]
            with client(proto) as c:
                r = c.post(srv.url("/v1/sessions/%s/events" % sid), content=b"a",
                           headers={"origin": EVIL})
                used(r, proto, "evil POST")
                H.check_eq(r.status_code, 403, "%s POST from another origin" % proto)
                H.check_eq(r.json()["error"], "forbidden_origin", "%s error code" % proto)
                check_security(r, "%s 403" % proto)
                H.check_eq(c.get(srv.url("/v1/sessions/" + sid)).status_code, 404,
                           "%s: the refused POST created nothing" % proto)
                for origin in (own, None):
                    hdrs = {"origin": origin} if origin else {}
                    r = c.post(srv.url("/v1/sessions/%s/events" % sid), content=b"b", headers=hdrs)
                    H.check_eq(r.status_code, 200, "%s POST with Origin %r" % (proto, origin))
                r = c.put(srv.url("/v1/sessions/%s" % sid), headers={"origin": "null"})
                H.check_eq(r.status_code, 403, "%s PUT from an opaque origin" % proto)
                r = c.delete(srv.url("/v1/sessions/%s" % sid), headers={"origin": EVIL})
                H.check_eq(r.status_code, 403, "%s DELETE from another origin" % proto)
                st = c.get(srv.url("/v1/sessions/" + sid), headers={"origin": EVIL})
                H.check_eq(st.status_code, 200, "%s GET from another origin still reads" % proto)
                H.check_eq(st.json()["last_seq"], 2, "%s: only the two allowed POSTs landed" % proto)
                H.check("access-control-allow-origin" not in st.headers,
                        "%s: no grant without --cors-origin" % proto)
                r = c.options(srv.url("/v1/sessions/%s/events" % sid),
                              headers={"origin": EVIL, "access-control-request-method": "POST"})
                H.check_eq(r.status_code, 403, "%s preflight without a policy" % proto)
                r = c.options(srv.url("/v1/sessions/%s/events" % sid))
                H.check_eq(r.status_code, 204, "%s plain OPTIONS" % proto)
                H.check("POST" in r.headers.get("allow", ""), "%s OPTIONS Allow" % proto)


@suite.case
def test_listed_origins():
    with H.Server(args=["--cors-origin", "%s, %s" % (ALLOWED, OTHER_ALLOWED)]) as srv:
        for proto in PROTOS:
            sid = "lo-" + proto[-1]
            url = srv.url("/v1/sessions/%s/events" % sid)
            with client(proto) as c:
                for origin in (ALLOWED, OTHER_ALLOWED):
                    r = c.post(url, content=b"x", headers={"origin": origin})
                    used(r, proto, "granted POST")
                    H.check_eq(r.status_code, 200, "%s POST from %s" % (proto, origin))
                    H.check_eq(r.headers.get("access-control-allow-origin"), origin,
                               "%s Allow-Origin echoes %s" % (proto, origin))
                    H.check_eq(r.headers.get("vary"), "origin", "%s Vary" % proto)
                    exposed = [h.strip() for h in
                               r.headers.get("access-control-expose-headers", "").split(",")]
                    for name in ("retry-after", "producer-epoch", "producer-expected-seq"):
                        H.check(name in exposed, "%s exposes %s: %r" % (proto, name, exposed))
                    check_security(r, "%s granted POST" % proto)
                r = c.post(url, content=b"x", headers={"origin": EVIL})
                H.check_eq(r.status_code, 403, "%s POST from an unlisted origin" % proto)
                H.check("access-control-allow-origin" not in r.headers, "%s 403 no grant" % proto)
                H.check_eq(r.headers.get("vary"), "origin", "%s 403 Vary" % proto)
                # Errors to a granted origin are readable by its script too.
                r = c.get(srv.url("/v1/sessions/missing"), headers={"origin": ALLOWED})
                H.check_eq((r.status_code, r.headers.get("access-control-allow-origin")),
                           (404, ALLOWED), "%s 404 to a granted origin" % proto)
                # The preflight.
                r = c.options(url, headers={
                    "origin": ALLOWED, "access-control-request-method": "POST",
                    "access-control-request-headers": "content-type, sluice-event-type, producer-id"})
                H.check_eq(r.status_code, 204, "%s preflight" % proto)
                H.check_eq(r.headers.get("access-control-allow-origin"), ALLOWED,
                           "%s preflight Allow-Origin" % proto)
                methods = r.headers.get("access-control-allow-methods", "")
                for m in ("GET", "HEAD", "POST", "PUT", "DELETE"):
                    H.check(m in methods, "%s preflight allows %s: %r" % (proto, m, methods))
                H.check_eq(r.headers.get("access-control-allow-headers"),
                           "content-type, sluice-event-type, producer-id",
                           "%s preflight Allow-Headers" % proto)
                H.check(int(r.headers.get("access-control-max-age", "0")) > 0,
                        "%s preflight Max-Age" % proto)
                check_security(r, "%s preflight" % proto)
                r = c.options(url, headers={"origin": ALLOWED,
                                            "access-control-request-method": "POST",
                                            "access-control-request-headers": "x-other"})
                H.check_eq(r.status_code, 403, "%s preflight asking for x-other" % proto)
                r = c.options(url, headers={"origin": EVIL, "access-control-request-method": "GET"})
                H.check_eq(r.status_code, 403, "%s preflight from an unlisted origin" % proto)
                # An EventSource of a granted origin needs the grant on the stream.
                st, hd = stream_head(c, srv.url("/v1/sessions/%s/events?from=1" % sid),
                                     {"origin": ALLOWED, "accept": "text/event-stream"})
                H.check_eq((st, hd.get("access-control-allow-origin")), (200, ALLOWED),
                           "%s stream grant" % proto)
                r = c.delete(srv.url("/v1/sessions/" + sid), headers={"origin": ALLOWED})
                H.check_eq(r.status_code, 204, "%s DELETE from a granted origin" % proto)


@suite.case
def test_any_origin():
    with H.Server(args=["--cors-origin", "*"]) as srv:
        for proto in PROTOS:
            with client(proto) as c:
                r = c.post(srv.url("/v1/sessions/any/events"), content=b"x",
                           headers={"origin": EVIL})
                used(r, proto, "POST under *")
                H.check_eq(r.status_code, 200, "%s POST from any origin under *" % proto)
                H.check_eq(r.headers.get("access-control-allow-origin"), "*", "%s Allow *" % proto)
                H.check("vary" not in r.headers, "%s: * needs no Vary" % proto)
                check_security(r, "%s under *" % proto, corp="cross-origin")
                r = c.get(srv.url("/health"))
                check_security(r, "%s no Origin under *" % proto, corp="cross-origin")
                H.check("access-control-allow-origin" not in r.headers,
                        "%s: no Origin, no grant" % proto)


@suite.case
def test_bad_flag_exits_2():
    for bad in ("ftp://x.test", "https://x.test/path", "*,https://x.test"):
        p = H.run([H.sluiced_path(), "--listen", "127.0.0.1:0", "--cors-origin", bad], timeout=20)
        H.check_eq(p.returncode, 2, "--cors-origin %r exit code" % bad)
        H.check(b"--cors-origin" in p.stderr, "--cors-origin %r: stderr names the flag: %r"
                % (bad, p.stderr[-200:]))


suite.run()
