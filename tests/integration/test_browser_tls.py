"""The console over TLS in a real browser: with --tls-cert/--tls-key the
same port speaks HTTP/2 by ALPN, so one page tails 20 sessions at once
over one connection (over HTTP/1.1 the browser stops at 6, see
test_browser.py). Every tail receives every event exactly once, in order;
then the server restarts (SIGTERM, same port and data dir) and every
EventSource reconnects with Last-Event-ID and receives the rest with no
gap and no duplicate.

The node side is the same driver as test_browser.py, only the URL and
chromium's flags differ."""

import os
import shutil
import signal
import socket
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sluice_harness as H  # noqa: E402
import browser_lib as B  # noqa: E402

B.require_browser()
H.require_tools("openssl")
suite = H.Suite("test_browser_tls")
SESSIONS = ["tls%02d" % i for i in range(20)]
BEFORE = 25  # events per session before the restart
AFTER = 15   # and after it


def make_cert(d):
    """A test CA and a server certificate for 127.0.0.1 / localhost signed
    by it, with the openssl CLI. Returns (cert, key) paths."""
    def ossl(*args):
        p = H.run(["openssl"] + list(args), timeout=60, cwd=d)
        H.check(p.returncode == 0, "openssl %s: %s" % (args[0], p.stderr[-500:]))
    ossl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=sluice test CA")
    ossl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    with open(os.path.join(d, "ext.cnf"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    ossl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
         "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf")
    return os.path.join(d, "server.pem"), os.path.join(d, "server.key")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(tmp, port, cert, key):
    """sluiced with TLS on a fixed port and data dir (so a restart finds
    both); the harness checks its exit code and sanitizer output."""
    ready = os.path.join(tmp, "ready")
    if os.path.exists(ready):
        os.unlink(ready)
    return H.Server(args=["--listen", "127.0.0.1:%d" % port, "--data-dir", os.path.join(tmp, "data"),
                          "--ready-file", ready, "--tls-cert", cert, "--tls-key", key],
                    env={"SLUICE_READY_FILE": ready}, bare=True)


def publish(srv, sid, first, count):
    """count events to sid over cleartext HTTP/1.1 on the same port (TLS
    is chosen by the first byte); their data names their seq."""
    for k in range(first, first + count):
        r = H.http1_request(srv.host, srv.port, "POST", "/v1/sessions/%s/events" % sid,
                            body=("%s #%d" % (sid, k)).encode())
        H.check_eq((r.status, r.json()["seq"]), (200, k), "publish %s #%d" % (sid, k))


def all_have(n):
    return ("Object.values(window.sluiceConsole.tails).every((t) => t.events.length >= %d)" % n)


@suite.case
def test_twenty_tails_over_h2_survive_a_restart():
    tmp = tempfile.mkdtemp(prefix="sluice-browser-tls-")
    try:
        cert, key = make_cert(tmp)
        port = free_port()
        with B.Browser(["--ignore-certificate-errors"]) as br:
            with start_server(tmp, port, cert, key) as srv:
                for sid in SESSIONS:
                    H.check(H.http1_request(srv.host, srv.port, "PUT", "/v1/sessions/" + sid).status
                            in (200, 201), "create " + sid)
                br.page(B.console_url("https://127.0.0.1:%d" % port, SESSIONS))
                H.check_eq(br.eval("window.sluiceConsole.protocol"), "h2", "page protocol")
                br.wait("Object.values(window.sluiceConsole.tails).every((t) => t.state === 'open')",
                        15, "all 20 tails open over HTTP/2")
                for sid in SESSIONS:
                    publish(srv, sid, 1, BEFORE)
                br.wait(all_have(BEFORE), 30, "every tail receives %d events" % BEFORE)
                B.check_exactly_once(br.tails(), SESSIONS, BEFORE)
                H.check(not br.eval("document.querySelector('#warning').hidden === false"),
                        "no HTTP/1.1 warning over h2")
                code, took = srv.stop(signal.SIGTERM)
                H.check_eq(code, 0, "SIGTERM exit code")
                print("server stopped in %.2fs" % took)
            t_down = time.monotonic()
            with start_server(tmp, port, cert, key) as srv:
                # Each EventSource reconnects by itself (its retry delay) with Last-Event-ID.
                br.wait("Object.values(window.sluiceConsole.tails).every((t) => t.opens >= 2 && "
                        "t.state === 'open')", 30, "every tail reconnects")
                print("all 20 tails reconnected %.1fs after the old server exited"
                      % (time.monotonic() - t_down))
                for sid in SESSIONS:
                    publish(srv, sid, BEFORE + 1, AFTER)
                br.wait(all_have(BEFORE + AFTER), 30, "every tail receives the rest")
                time.sleep(0.5 * H.slow_factor())  # a duplicate would arrive now
                tails = br.tails()
                B.check_exactly_once(tails, SESSIONS, BEFORE + AFTER)
                for sid in SESSIONS:
                    H.check_eq(tails[sid]["data"][-1], "%s #%d" % (sid, BEFORE + AFTER),
                               "%s last data" % sid)
                # The console's own view caught up: every row at the last seq, subscribed.
                br.wait("""(() => { const rows = [...document.querySelectorAll('#sessions tbody tr')];
                    return rows.length === %d && rows.every((tr) => tr.children[3].textContent === '%d'
                        && tr.children[4].textContent === '1'); })()""" % (len(SESSIONS), BEFORE + AFTER),
                        10, "the sessions table shows every session at its last seq, subscribed")
                path = os.path.join(B.artifact_dir(), "console-tls.png")
                br.screenshot(path)
                print("20 tails over h2: %d events each, exactly once across a restart; "
                      "screenshot %s" % (BEFORE + AFTER, path))
                problems = [p for p in br.problems() if "net::ERR_" not in p]
                H.check(not problems, "console errors: %r" % problems)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


suite.run()
