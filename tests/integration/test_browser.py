"""The console in a real browser (headless Chromium driven by
puppeteer-core, tests/integration/browser/): over HTTP/1.1 cleartext a page
asking for 20 EventSource tails gets at most 6 -- the browser's connection
limit per origin, which is why browsers need sluice over TLS (HTTP/2) --
and the console loads with its strict CSP, lists the sessions, draws its
charts and live-tails a session; a screenshot is kept in
<build>/test-artifacts/console.png."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sluice_harness as H  # noqa: E402
import browser_lib as B  # noqa: E402

B.require_browser()
suite = H.Suite("test_browser")
BROWSER = B.Browser()  # one chromium for every case (suite fixture); each case opens its page
SESSIONS = ["t%02d" % i for i in range(20)]
H1_LIMIT = 6  # Chromium's connections per origin (scheme, host, port) over HTTP/1.x


def publish(srv, sid, text):
    r = H.http1_request(srv.host, srv.port, "POST", "/v1/sessions/%s/events" % sid,
                        body=text.encode())
    H.check_eq(r.status, 200, "publish to %s" % sid)


def server_subscribers(srv, prefix):
    r = H.http1_request(srv.host, srv.port, "GET", "/v1/sessions?limit=1000")
    return sum(s["subscribers"] for s in r.json()["sessions"] if s["id"].startswith(prefix))


@suite.case
def test_http1_caps_eventsources_at_six():
    br = BROWSER
    with H.Server() as srv:
        for sid in SESSIONS:
            H.check(H.http1_request(srv.host, srv.port, "PUT", "/v1/sessions/" + sid).status
                    in (200, 201), "create " + sid)
        br.page(B.console_url("http://" + srv.authority(), SESSIONS))
        H.check_eq(br.eval("window.sluiceConsole.protocol"), "http/1.1", "page protocol")
        H.check_eq(br.eval("Object.keys(window.sluiceConsole.tails).length"), 20, "tails asked")
        br.wait("Object.values(window.sluiceConsole.tails).some((t) => t.state === 'open')", 10,
                "a first tail opens")
        time.sleep(1.0 * H.slow_factor())  # the rest would open now if they could
        for sid in SESSIONS:
            publish(srv, sid, "to " + sid)
        br.wait("Object.values(window.sluiceConsole.tails).some((t) => t.events.length > 0)",
                10, "a tail receives")
        time.sleep(0.5 * H.slow_factor())
        tails = br.tails()
        opened = [k for k, t in tails.items() if t["opens"] > 0]
        receiving = [k for k, t in tails.items() if t["ids"]]
        waiting = [k for k, t in tails.items() if t["state"] == "connecting"]
        subs = server_subscribers(srv, "t")
        print("HTTP/1.1: 20 tails asked, %d opened, %d receiving, %d waiting; server sees %d "
              "subscribers" % (len(opened), len(receiving), len(waiting), subs))
        H.check(1 <= len(opened) <= H1_LIMIT, "opened %d tails over HTTP/1.1 (limit %d)"
                % (len(opened), H1_LIMIT))
        H.check(1 <= len(receiving) <= H1_LIMIT, "%d tails received" % len(receiving))
        H.check_eq(len(waiting), 20 - len(opened), "the others wait for a connection")
        H.check(subs <= H1_LIMIT, "the server holds %d subscriptions of this page" % subs)
        warning = br.eval("document.querySelector('#warning').hidden")
        H.check(warning is False, "the console warns about the HTTP/1.1 limit")


@suite.case
def test_console_loads_and_tails():
    br = BROWSER
    with H.Server() as srv:
        for i, sid in enumerate(("orders", "billing", "audit")):
            for k in range(i + 2):
                publish(srv, sid, "%s event %d" % (sid, k + 1))
        base = "http://" + srv.authority()
        head = br.page(base + "/console#tail=orders")
        H.check_eq(head["status"], 200, "/console status")
        H.check(head["headers"].get("content-type", "").startswith("text/html"), "content type")
        H.check_eq(head["headers"].get("cache-control"), "no-store", "cache-control")
        csp = head["headers"].get("content-security-policy", "")
        H.check("default-src 'none'" in csp and "script-src 'self'" in csp, "CSP: %r" % csp)
        H.check_eq(head["headers"].get("x-content-type-options"), "nosniff", "nosniff")
        br.wait("document.querySelectorAll('#sessions tbody tr').length === 3", 10,
                "the sessions table lists 3 sessions")
        rows = br.eval("""[...document.querySelectorAll('#sessions tbody tr')].map(
            (tr) => [...tr.children].slice(0, 5).map((td) => td.textContent))""")
        H.check_eq([r[0] for r in rows], ["audit", "billing", "orders"], "session ids")
        H.check_eq([r[1] for r in rows], ["4", "3", "2"], "event counts")
        br.wait("window.sluiceConsole.tails.orders.state === 'open'", 10, "the tail opens")
        for k in range(3):
            publish(srv, "orders", "live order %d" % k)
        br.wait("window.sluiceConsole.tails.orders.events.length === 3", 10,
                "the tail receives three live events")
        H.check_eq(br.tails()["orders"]["ids"], [3, 4, 5], "live tail seqs (from live)")
        shown = br.eval("document.querySelector('.tail[data-session=orders] ol').textContent")
        H.check("live order 2" in shown, "the tail shows the data: %r" % shown[-200:])
        br.wait("window.sluiceConsole.health && window.sluiceConsole.connections && "
                "document.querySelector('#v-rss').textContent !== ''", 10, "health and watchdog")
        br.wait("document.querySelectorAll('#conns tbody tr').length >= 1", 10,
                "worst connections listed")
        # The charts are drawn: the RSS canvas has painted pixels.
        br.wait("""(() => { const c = document.querySelector('#c-rss');
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            for (let i = 3; i < d.length; i += 4) if (d[i]) return true; return false; })()""",
                10, "the RSS chart is drawn")
        # Clicking "tail" on another session opens a second tail.
        br.eval("document.querySelector('#sessions tr[data-session=audit] button').click()")
        br.wait("window.sluiceConsole.tails.audit && window.sluiceConsole.tails.audit.state === 'open'",
                10, "a second tail opens from the table")
        # The server's view reaches the table: each tailed session has its subscriber.
        br.wait("""['orders', 'audit'].every((id) => { const tr = document.querySelector(
            '#sessions tr[data-session=' + id + ']'); return tr && tr.children[4].textContent === '1'; })""",
                10, "the sessions table shows the tails' subscriptions")
        path = os.path.join(B.artifact_dir(), "console.png")
        br.screenshot(path)
        H.check(os.path.getsize(path) > 10000, "screenshot written")
        print("console screenshot: %s" % path)
        problems = br.problems()
        H.check(not problems, "console errors or CSP violations: %r" % problems)


suite.run(fixture=BROWSER)
