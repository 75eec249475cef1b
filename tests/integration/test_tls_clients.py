"""TLS on the HTTP port, with real clients against one server that has a
certificate from a CA this test makes (openssl CLI):

- curl --http2 and --http1.1 over https:// (--cacert: the chain verifies)
  get the protocol they asked for; nghttp and Node's http2.connect speak h2;
  httpx with http2=True gets HTTP/2; h2load completes every request;
- ALPN: h2 when offered (even second), http/1.1 when only that is offered,
  nothing for an unknown protocol or none (then the bytes are sniffed);
- the same port still serves cleartext h2c and HTTP/1.1;
- SSE over TLS is byte-exact: curl h2, curl HTTP/1.1 and httpx h2 over TLS
  receive exactly the bytes a cleartext h2c subscriber receives, whose
  start is the documented wire form, across a 200 KB event (many records);
- session resumption: openssl s_client -sess_out / -sess_in says "Reused"
  for TLS 1.3 (tickets) and TLS 1.2 (session cache); /health counts it;
- TLS 1.1 and a non-AEAD TLS 1.2 suite are refused.
"""

import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sluice_harness as H  # noqa: E402
import tls_lib as T  # noqa: E402

SESSION = "tls.fan"


def curl(pki, *args, timeout=20):
    r = H.run(["curl", "-sS", "--cacert", pki.ca] + list(args), timeout=timeout)
    H.check(r.returncode == 0, "curl %r: %s" % (args, r.stderr.decode(errors="replace")))
    return r.stdout


def case_curl_versions(srv, pki):
    for flag, want in (("--http2", "2"), ("--http1.1", "1.1")):
        out = curl(pki, flag, "-o", "/dev/null", "-w", "%{http_version} %{http_code}",
                   T.https_url(srv, "/health")).decode()
        H.check_eq(out, want + " 200", "curl %s over TLS" % flag)
    body = json.loads(curl(pki, "--http2", T.https_url(srv, "/health")))
    H.check_eq(body["tls"]["enabled"], True, "/health tls.enabled")
    H.check_eq(body["tls"]["ktls"], False, "/health tls.ktls")
    H.check(body["tls"]["handshakes"] >= 2, "handshakes counted: %r" % body["tls"])


def case_cleartext_same_port(srv, pki):
    r = H.http1_request(srv.host, srv.port, "GET", "/health")
    H.check_eq(r.status, 200, "cleartext HTTP/1.1 on the TLS port")
    r = H.run(["curl", "-sS", "--http2-prior-knowledge", "-o", "/dev/null", "-w",
               "%{http_version}", srv.url("/health")], timeout=20)
    H.check_eq(r.stdout.decode(), "2", "cleartext h2c on the TLS port")


def case_nghttp_node(srv, pki):
    r = H.run(["nghttp", "-s", T.https_url(srv, "/health")], timeout=20)
    H.check(r.returncode == 0 and b"uptime_s" in r.stdout, "nghttp over TLS: %r %r"
            % (r.stdout[-300:], r.stderr[-300:]))
    js = ("const h=require('http2'),fs=require('fs');"
          "const s=h.connect('https://localhost:%d',{ca:fs.readFileSync('%s')});"
          "const r=s.request({':path':'/health'});let b='',st=0;"
          "r.on('response',x=>st=x[':status']);r.setEncoding('utf8');r.on('data',d=>b+=d);"
          "r.on('end',()=>{console.log(JSON.stringify({st,alpn:s.alpnProtocol,"
          "up:'uptime_s' in JSON.parse(b)}));s.close();});" % (srv.port, pki.ca))
    r = H.run(["node", "-e", js], timeout=20)
    H.check(r.returncode == 0, "node: %s" % r.stderr.decode(errors="replace"))
    H.check_eq(json.loads(r.stdout), {"st": 200, "alpn": "h2", "up": True}, "node http2 over TLS")


def case_httpx_h2(srv, pki):
    import httpx
    with httpx.Client(http2=True, verify=pki.ca, timeout=10) as c:
        r = c.get(T.https_url(srv, "/health"))
        H.check_eq((r.status_code, r.http_version), (200, "HTTP/2"), "httpx http2=True")
        r = c.put(T.https_url(srv, "/v1/sessions/hx"))
        H.check_eq(r.status_code, 201, "httpx PUT over TLS")
        r = c.post(T.https_url(srv, "/v1/sessions/hx/events"), content=b"x" * 300000)
        H.check_eq(r.status_code, 200, "httpx 300 KB publish over TLS")


def case_h2load(srv, pki):
    r = H.run(["h2load", "-n", "2000", "-c", "4", "-m", "10", T.https_url(srv, "/health")],
              timeout=60)
    out = r.stdout.decode(errors="replace")
    H.check("2000 succeeded, 0 failed, 0 errored" in out, "h2load over TLS:\n%s" % out[-1500:])
    H.check("Application protocol: h2" in out, "h2load negotiated h2:\n%s" % out[-1500:])


def case_alpn(srv, pki):
    for offer, want in ((("http/1.1", "h2"), "h2"), (("http/1.1",), "http/1.1"),
                        (("spdy/3",), None), ((), None)):
        s = T.tls_connect(pki, srv.host, srv.port, alpn=offer)
        H.check_eq(s.selected_alpn_protocol(), want, "ALPN for offer %r" % (offer,))
        if want != "h2":  # http/1.1 or sniffed: an HTTP/1.1 request works
            s.sendall(H.build_http1("GET", "/health", close=True))
            r = H.Http1Reader(s).read_response()
            H.check_eq(r.status, 200, "HTTP/1.1 over TLS after ALPN %r" % want)
        s.close()


def sse_subscribers(srv, pki, tmp):
    url = T.https_url(srv, "/v1/sessions/%s/events" % SESSION)
    procs = {
        "clear": ["curl", "-sS", "-N", "--http2-prior-knowledge", "-o", tmp + "/clear",
                  srv.url("/v1/sessions/%s/events" % SESSION)],
        "tls-h2": ["curl", "-sS", "-N", "--http2", "--cacert", pki.ca, "-o", tmp + "/tls-h2", url],
        "tls-h1": ["curl", "-sS", "-N", "--http1.1", "--cacert", pki.ca, "-o", tmp + "/tls-h1", url],
    }
    return {k: subprocess.Popen(v) for k, v in procs.items()}


def httpx_sse(pki, url, out):
    import httpx
    with httpx.Client(http2=True, verify=pki.ca, timeout=30) as c:
        with c.stream("GET", url) as r:
            out["version"] = r.http_version
            for chunk in r.iter_raw():
                out["body"] = out.get("body", b"") + chunk


def case_sse_byte_exact(srv, pki):
    import threading
    r = H.http1_request(srv.host, srv.port, "PUT", "/v1/sessions/" + SESSION)
    H.check_eq(r.status, 201, "PUT")
    procs = sse_subscribers(srv, pki, srv.tmp)
    hx = {}
    t = threading.Thread(target=httpx_sse, args=(pki, T.https_url(
        srv, "/v1/sessions/%s/events" % SESSION), hx))
    t.start()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        st = H.http1_request(srv.host, srv.port, "GET", "/v1/sessions/" + SESSION).json()
        if st.get("subscribers") == 4:
            break
        time.sleep(0.05)
    H.check_eq(st.get("subscribers"), 4, "subscribers over TLS and cleartext")
    lines = [json.dumps({"type": "message", "data": "a"}), json.dumps({"type": "t", "data": "b\nc"})]
    lines += [json.dumps({"data": "ev-%d \u00e9" % i}) for i in range(300)]
    body = ("\n".join(lines) + "\n").encode()
    r = H.run(["curl", "-sS", "--cacert", pki.ca, "--http2", "-X", "POST", "-H",
               "content-type: application/x-ndjson", "--data-binary", "@-",
               T.https_url(srv, "/v1/sessions/%s/events" % SESSION)], timeout=20, input_bytes=body)
    H.check(r.returncode == 0 and b"first_seq" in r.stdout, "publish over TLS: %r" % r.stdout)
    big = "z" * 200000
    r = H.http1_request(srv.host, srv.port, "POST", "/v1/sessions/%s/events" % SESSION,
                        body=big.encode())
    H.check_eq(r.status, 200, "200 KB publish")
    time.sleep(0.3)
    r = H.http1_request(srv.host, srv.port, "DELETE", "/v1/sessions/" + SESSION)
    H.check(r.status in (200, 204), "DELETE ends the streams: %d" % r.status)
    for name, p in procs.items():
        H.check_eq(p.wait(timeout=20), 0, "subscriber %s exit" % name)
    t.join(timeout=20)
    H.check(not t.is_alive(), "httpx subscriber ended")
    with open(srv.tmp + "/clear", "rb") as f:
        clear = f.read()
    want_start = b"id: 1\nevent: message\ndata: a\n\nid: 2\nevent: t\ndata: b\ndata: c\n\n"
    H.check(clear.startswith(want_start), "cleartext wire form: %r" % clear[:120])
    H.check(("data: %s\n\n" % big).encode() in clear, "the 200 KB event whole")
    for name in ("tls-h2", "tls-h1"):
        with open(srv.tmp + "/" + name, "rb") as f:
            got = f.read()
        H.check(got == clear, "%s: %d bytes, cleartext %d; first difference at %d" % (
            name, len(got), len(clear),
            next((i for i, (a, b) in enumerate(zip(got, clear)) if a != b), min(len(got), len(clear)))))
    H.check_eq(hx.get("version"), "HTTP/2", "httpx SSE over TLS is HTTP/2")
    H.check(hx.get("body") == clear, "httpx h2 over TLS byte-exact (%d vs %d bytes)"
            % (len(hx.get("body", b"")), len(clear)))


def case_resumption(srv, pki):
    sess = os.path.join(srv.tmp, "sess")
    for ver in ("-tls1_3", "-tls1_2"):
        outs = []
        for flag in ("-sess_out", "-sess_in"):
            r = H.run(["openssl", "s_client", ver, "-connect", "127.0.0.1:%d" % srv.port,
                       "-servername", "localhost", "-CAfile", pki.ca, "-ign_eof", flag, sess],
                      timeout=20, input_bytes=b"GET /health HTTP/1.0\r\n\r\n")
            outs.append(r.stdout.decode(errors="replace"))
        H.check("\nNew, " in outs[0], "%s first handshake is new:\n%s" % (ver, outs[0][-800:]))
        H.check("\nReused, " in outs[1], "%s second handshake reused:\n%s" % (ver, outs[1][-800:]))
        H.check("Verify return code: 0 (ok)" in outs[0], "%s chain verifies" % ver)
    H.check(srv.health()["tls"]["resumed"] >= 2, "/health counts resumed handshakes")
    m = H.http1_request(srv.host, srv.port, "GET", "/metrics").body.decode()
    H.check("\nsluice_tls_resumed_total " in m and "\nsluice_tls_handshakes_total " in m,
            "/metrics has the TLS counters")


def case_old_protocols_refused(srv, pki):
    for args in (["-tls1_1"], ["-tls1_2", "-cipher", "AES128-SHA"]):
        r = H.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % srv.port] + args,
                  timeout=20, input_bytes=b"")
        out = (r.stdout + r.stderr).decode(errors="replace")
        H.check(r.returncode != 0 and "alert" in out, "%r refused:\n%s" % (args, out[-600:]))
    srv.assert_healthy("refused handshakes")


def main():
    H.require_tools("curl", "nghttp", "h2load", "node", "openssl")
    pki = T.Pki()
    cases = [case_curl_versions, case_cleartext_same_port, case_nghttp_node, case_httpx_h2,
             case_h2load, case_alpn, case_sse_byte_exact, case_resumption,
             case_old_protocols_refused]
    failed = 0
    with T.tls_server(pki) as srv:
        for fn in cases:
            t0 = time.monotonic()
            try:
                fn(srv, pki)
                print("ok   %s (%.1fs)" % (fn.__name__, time.monotonic() - t0))
            except H.TestFailure as e:
                failed += 1
                print("FAIL %s: %s" % (fn.__name__, e))
        srv.assert_healthy("all cases")
    print("test_tls_clients: %d passed, %d failed" % (len(cases) - failed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
