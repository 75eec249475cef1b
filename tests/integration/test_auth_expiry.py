"""SSE streams across a token expiry, over HTTP/1.1 and HTTP/2 (httpx).

A stream opened with a 2-second token (leeway 0) gets its events, then
`event: sluice.expired` and a clean end of stream (no reset) within a
second of the expiry; the old token no longer opens one (401); a new
request with a fresh token and Last-Event-ID resumes exactly after the last
event seen.
"""

import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sluice_harness as H  # noqa: E402
from auth_tokens import Keys  # noqa: E402

try:
    import httpx
except ImportError:
    print("SKIP: python3-httpx is not installed (tools/install-deps.sh test)")
    sys.exit(H.SKIP_EXIT)


def read_stream(client, url, token, last_id=None, until_expired=True, count=None):
    """(ids, expired?, seconds until the end) of one SSE response."""
    hdrs = {"authorization": "Bearer " + token}
    if last_id is not None:
        hdrs["last-event-id"] = str(last_id)
    ids, expired, t0 = [], False, time.monotonic()
    with client.stream("GET", url, headers=hdrs) as r:
        H.check_eq(r.status_code, 200, "SSE status")
        for line in r.iter_lines():
            line = line.rstrip("\r\n")  # this httpx keeps the line ends
            if line.startswith("id: "):
                H.check(not expired, "nothing after sluice.expired")
                ids.append(int(line[4:]))
            elif line == "event: sluice.expired":
                expired = True
            if count is not None and len(ids) >= count and not until_expired:
                break
    return ids, expired, time.monotonic() - t0


def one_proto(srv, keys, proto):
    sid = "exp-h%d" % proto
    admin = {"authorization": "Bearer " + keys.hs256(keys.claims(admin=True))}
    kw = {"http1": proto == 1, "http2": proto == 2}
    with httpx.Client(timeout=10.0, **kw) as c:
        for i in range(3):
            H.check_eq(c.post(srv.url("/v1/sessions/%s/events" % sid), headers=admin,
                              content=b"e%d" % i).status_code, 200, "publish")
        short = keys.hs256(keys.claims(sub=[sid], exp_in=2))
        url = srv.url("/v1/sessions/%s/events?from=1" % sid)
        ids, expired, took = read_stream(c, url, short)
        H.check_eq(ids, [1, 2, 3], "h%d: events before the expiry" % proto)
        H.check(expired, "h%d: the stream ended with sluice.expired" % proto)
        H.check(took < 4.0, "h%d: ended %.1fs after opening (token lived 1-2 s)" % (proto, took))
        H.check_eq(c.get(url, headers={"authorization": "Bearer " + short}).status_code, 401,
                   "h%d: the expired token opens nothing" % proto)
        for i in range(3, 5):
            c.post(srv.url("/v1/sessions/%s/events" % sid), headers=admin, content=b"e%d" % i)
        fresh = keys.hs256(keys.claims(sub=[sid], exp_in=300))
        ids, expired, _ = read_stream(c, url, fresh, last_id=3, until_expired=False, count=2)
        H.check_eq(ids, [4, 5], "h%d: resumed after Last-Event-ID" % proto)


def main():
    d = tempfile.mkdtemp(prefix="sluice-auth-exp-")
    try:
        keys = Keys(d)
        with H.Server(args=keys.flags() + ["--auth-leeway", "0"]) as srv:
            one_proto(srv, keys, 1)
            one_proto(srv, keys, 2)
            srv.assert_healthy("expiring streams")
    finally:
        shutil.rmtree(d, ignore_errors=True)
    print("test_auth_expiry: ok")


if __name__ == "__main__":
    main()
