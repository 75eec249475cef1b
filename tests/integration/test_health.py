"""/health, /metrics, error statuses, HTTP/1.1 connection reuse and the
command line of sluiced, exercised over h2c (curl, nghttp, h2) and
HTTP/1.1 (curl, httpx, raw sockets)."""

import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sluice_harness as H  # noqa: E402

suite = H.Suite("test_health")
H.require_tools("curl", "nghttp")

HEALTH_KEYS = ("uptime_s", "rss_bytes", "open_fds", "fd_limit", "connections", "streams",
               "sessions", "busy", "reactors", "scheduler", "mailboxes", "events", "storage",
               "watchdog")


def is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def check_health(h, srv, via):
    """Asserts the documented shape and sane values of a /health body."""
    H.check(isinstance(h, dict), "%s: /health is not a JSON object" % via)
    missing = [k for k in HEALTH_KEYS if k not in h]
    H.check(not missing, "%s: /health lacks keys %s" % (via, missing))
    H.check(is_num(h["uptime_s"]) and h["uptime_s"] >= 0, "%s: uptime_s=%r" % (via, h["uptime_s"]))
    H.check(is_num(h["rss_bytes"]) and h["rss_bytes"] > 1 << 20,
            "%s: rss_bytes=%r (expected > 1 MiB)" % (via, h["rss_bytes"]))
    H.check(is_num(h["open_fds"]) and h["open_fds"] > 0, "%s: open_fds=%r" % (via, h["open_fds"]))
    H.check(is_num(h["fd_limit"]) and h["fd_limit"] > 0, "%s: fd_limit=%r" % (via, h["fd_limit"]))
    H.check(h["open_fds"] < h["fd_limit"], "%s: open_fds %r >= fd_limit %r"
            % (via, h["open_fds"], h["fd_limit"]))
    H.check(is_num(h["connections"]) and h["connections"] >= 0,
            "%s: connections=%r" % (via, h["connections"]))
    H.check(is_num(h["streams"]) and h["streams"] >= 0, "%s: streams=%r" % (via, h["streams"]))
    H.check(isinstance(h["busy"], bool), "%s: busy=%r is not a bool" % (via, h["busy"]))
    check_reactors(h["reactors"], via)
    ev = h["events"]
    H.check(isinstance(ev, dict), "%s: events=%r is not an object" % (via, ev))
    for k in ("published", "delivered"):
        H.check(is_num(ev.get(k)) and ev[k] >= 0, "%s: events.%s=%r" % (via, k, ev.get(k)))
    wd = h["watchdog"]
    H.check(isinstance(wd, dict), "%s: watchdog=%r is not an object" % (via, wd))
    for k in ("reaped_send_stall", "reaped_peer_closed"):
        H.check(is_num(wd.get(k)) and wd[k] >= 0, "%s: watchdog.%s=%r" % (via, k, wd.get(k)))
    # The snapshot is refreshed periodically; it must track the kernel's view.
    real = srv.fd_count()
    H.check(abs(h["open_fds"] - real) <= 8, "%s: open_fds=%d but /proc/PID/fd has %d"
            % (via, h["open_fds"], real))


def check_reactors(reactors, via):
    H.check(isinstance(reactors, list) and len(reactors) >= 1,
            "%s: reactors=%r is not a non-empty array" % (via, reactors))
    for i, r in enumerate(reactors):
        for k in ("loop_lag_ms_max", "loop_lag_ms_recent"):
            H.check(is_num(r.get(k)) and r[k] >= 0, "%s: reactors[%d].%s=%r" % (via, i, k, r.get(k)))


def check_json_content_type(ct, via):
    H.check(ct is not None and ct.split(";")[0].strip().lower() == "application/json",
            "%s: content-type %r, expected application/json" % (via, ct))


@suite.case
def test_health_h2c_curl():
    with H.Server() as srv:
        body, code, ver, ct, rc, err = H.curl(["--http2-prior-knowledge", srv.url("/health")])
        H.check_eq(rc, 0, "curl exit code (stderr %r)" % err)
        H.check_eq(code, 200, "status")
        H.check_eq(ver, "2", "negotiated HTTP version")
        check_json_content_type(ct, "curl h2c")
        check_health(json.loads(body), srv, "curl h2c")


@suite.case
def test_health_h2c_nghttp():
    with H.Server() as srv:
        p = H.run(["nghttp", "-v", "-t", "5", srv.url("/health")], timeout=15)
        H.check_eq(p.returncode, 0, "nghttp exit code (stderr %r)" % p.stderr[-500:])
        text = p.stdout.decode("utf-8", "replace")
        # nghttp opens priority-anchor streams first, so the request's id varies.
        H.check(re.search(r"recv \(stream_id=\d+\) :status: 200", text) is not None,
                "nghttp saw no :status 200:\n%s" % text[-2000:])
        ct = re.search(r"recv \(stream_id=\d+\) content-type: (\S+)", text)
        check_json_content_type(ct.group(1) if ct else None, "nghttp")
        p = H.run(["nghttp", "-t", "5", srv.url("/health")], timeout=15)
        H.check_eq(p.returncode, 0, "nghttp exit code")
        check_health(json.loads(p.stdout), srv, "nghttp")


@suite.case
def test_health_h2_library_streams():
    with H.Server() as srv:
        r = H.h2_request(srv.host, srv.port, "GET", "/health")
        H.check_eq(r.status, 200, "h2 /health status")
        H.check(r.ended, "h2 /health stream did not end cleanly: %r" % r)
        check_health(r.json(), srv, "h2")


@suite.case
def test_health_counts_the_asking_connection():
    # The asking connection is open while /health is answered, so it must be
    # counted — right after start too, not only after the next refresh.
    with H.Server() as srv:
        h = srv.health()
        H.check(h["connections"] >= 1, "first /health after start: connections=%r while a "
                "client is asking" % h["connections"])
        r = H.h2_request(srv.host, srv.port, "GET", "/health")
        H.check(r.json()["connections"] >= 1, "h2 /health: connections=%r while asking"
                % r.json()["connections"])
        held = [H.connect(srv.host, srv.port) for _ in range(3)]
        try:
            time.sleep(0.6)  # longer than the default --monitor-interval
            h = srv.health()
            H.check(h["connections"] >= 4, "3 held + 1 asking: connections=%r" % h["connections"])
        finally:
            for s in held:
                s.close()


@suite.case
def test_health_http1_curl_and_httpx():
    import httpx
    with H.Server() as srv:
        body, code, ver, ct, rc, err = H.curl(["--http1.1", srv.url("/health")])
        H.check_eq(rc, 0, "curl exit code (stderr %r)" % err)
        H.check_eq(code, 200, "status")
        H.check_eq(ver, "1.1", "HTTP version")
        check_json_content_type(ct, "curl http/1.1")
        check_health(json.loads(body), srv, "curl http/1.1")
        with httpx.Client(http2=False, timeout=5.0) as c:
            r = c.get(srv.url("/health"))
            H.check_eq(r.status_code, 200, "httpx status")
            H.check_eq(r.http_version, "HTTP/1.1", "httpx version")
            check_json_content_type(r.headers.get("content-type"), "httpx")
            check_health(r.json(), srv, "httpx")
            # httpx reuses the connection: a second request rides the same one.
            r2 = c.get(srv.url("/health"))
            H.check_eq(r2.status_code, 200, "httpx second status")


@suite.case
def test_health_uptime_advances():
    with H.Server() as srv:
        a = srv.health()["uptime_s"]
        time.sleep(1.2)
        b = srv.health()["uptime_s"]
        H.check(b > a, "uptime_s did not advance: %r then %r" % (a, b))


@suite.case
def test_metrics_prometheus_text():
    with H.Server() as srv:
        srv.health()  # at least one request counted
        for via, args in (("http/1.1", ["--http1.1"]), ("h2c", ["--http2-prior-knowledge"])):
            body, code, ver, ct, rc, err = H.curl(args + [srv.url("/metrics")])
            H.check_eq(rc, 0, "%s curl exit (stderr %r)" % (via, err))
            H.check_eq(code, 200, "%s /metrics status" % via)
            H.check(ct.lower().startswith("text/plain") and "version=0.0.4" in ct.replace(" ", ""),
                    "%s /metrics content-type %r" % (via, ct))
            text = body.decode("utf-8")
            H.check(text.endswith("\n"), "%s: /metrics does not end with a newline" % via)
            samples = H.parse_prometheus(text)
            H.check(len(samples) >= 5, "%s: only %d metric families" % (via, len(samples)))
            bad = [n for n in samples if not n.startswith("sluice_")]
            H.check(not bad, "%s: metric names without sluice_ prefix: %s" % (via, bad[:5]))


def check_error(status, body, ct, want_status, want_code, via):
    H.check_eq(status, want_status, "%s status" % via)
    check_json_content_type(ct, via)
    j = json.loads(body)
    H.check_eq(j.get("error"), want_code, "%s error code" % via)
    H.check(isinstance(j.get("message"), str) and j["message"],
            "%s: error message missing: %r" % (via, j))


@suite.case
def test_not_found_json():
    with H.Server() as srv:
        for path in ("/nope", "/health/extra", "/v1/nothing-here", "/healthz"):
            r = H.http1_request(srv.host, srv.port, "GET", path)
            check_error(r.status, r.body, r.header("content-type"), 404, "not_found",
                        "http/1.1 GET %s" % path)
            r2 = H.h2_request(srv.host, srv.port, "GET", path)
            check_error(r2.status, r2.body, r2.header("content-type"), 404, "not_found",
                        "h2 GET %s" % path)


@suite.case
def test_method_not_allowed():
    with H.Server() as srv:
        for method in ("POST", "DELETE", "PUT"):
            for path in ("/health", "/metrics"):
                r = H.http1_request(srv.host, srv.port, method, path)
                via = "http/1.1 %s %s" % (method, path)
                check_error(r.status, r.body, r.header("content-type"), 405,
                            "method_not_allowed", via)
                allow = r.header("allow") or ""
                H.check("GET" in [m.strip() for m in allow.split(",")],
                        "%s: Allow header %r lacks GET" % (via, allow))
        r2 = H.h2_request(srv.host, srv.port, "POST", "/health", body=b"x")
        check_error(r2.status, r2.body, r2.header("content-type"), 405, "method_not_allowed",
                    "h2 POST /health")
        H.check("GET" in (r2.header("allow") or ""), "h2 405 Allow header %r" % r2.header("allow"))
        srv.assert_healthy("405s")


@suite.case
def test_http1_keep_alive():
    with H.Server() as srv:
        s = H.connect(srv.host, srv.port)
        try:
            rd = H.Http1Reader(s)
            for i in range(3):
                s.sendall(H.build_http1("GET", "/health", srv.host))
                r = rd.read_response()
                H.check_eq(r.status, 200, "request %d on one connection" % (i + 1))
                json.loads(r.body)
                H.check((r.header("connection") or "").lower() != "close",
                        "server asked to close a keep-alive connection")
        finally:
            s.close()


@suite.case
def test_http1_pipelining_in_order():
    with H.Server() as srv:
        s = H.connect(srv.host, srv.port)
        try:
            reqs = (H.build_http1("GET", "/health", srv.host)
                    + H.build_http1("GET", "/nope", srv.host)
                    + H.build_http1("GET", "/metrics", srv.host)
                    + H.build_http1("GET", "/health", srv.host))
            s.sendall(reqs)  # one write: the server sees them back to back
            rd = H.Http1Reader(s)
            got = [rd.read_response() for _ in range(4)]
            H.check_eq([r.status for r in got], [200, 404, 200, 200], "pipelined statuses in order")
            json.loads(got[0].body)
            H.check_eq(got[1].json().get("error"), "not_found", "second response body")
            H.check(got[2].body.startswith(b"#") or got[2].body.startswith(b"sluice_"),
                    "third response is not /metrics: %r" % got[2].body[:80])
            json.loads(got[3].body)
        finally:
            s.close()


@suite.case
def test_http1_connection_close_honoured():
    with H.Server() as srv:
        s = H.connect(srv.host, srv.port)
        try:
            s.sendall(H.build_http1("GET", "/health", srv.host, close=True))
            rd = H.Http1Reader(s)
            r = rd.read_response()
            H.check_eq(r.status, 200, "status")
            s.settimeout(5)
            tail = s.recv(1)
            H.check_eq(tail, b"", "server must close after Connection: close")
        finally:
            s.close()


@suite.case
def test_help_lists_flags():
    p = H.run([H.sluiced_path(), "--help"], timeout=10)
    H.check_eq(p.returncode, 0, "--help exit code")
    out = p.stdout.decode()
    for needle in ("--listen", "SLUICE_LISTEN", "127.0.0.1:8080", "--data-dir", "SLUICE_DATA_DIR",
                   "--ready-file", "--shutdown-grace", "SLUICE_SHUTDOWN_GRACE"):
        H.check(needle in out, "--help output lacks %r" % needle)


@suite.case
def test_bad_flags_exit_2():
    cases = (
        (["--no-such-flag"], {}, "no-such-flag"),
        (["--listen"], {}, "listen"),
        (["--reactors", "abc"], {}, "reactors"),
        (["--reactors", "0"], {}, "reactors"),
        (["--shutdown-grace", "-1"], {}, "shutdown-grace"),
        (["--listen", "127.0.0.1:0", "stray-argument"], {}, "stray-argument"),
        ([], {"SLUICE_REACTORS": "abc"}, "reactors"),
        ([], {"SLUICE_SHUTDOWN_GRACE": "soon"}, "shutdown"),
    )
    for args, env, needle in cases:
        full_env = dict(os.environ, **env)
        p = H.run([H.sluiced_path()] + args, timeout=10, env=full_env, cwd="/tmp")
        what = "sluiced %s %s" % (" ".join("%s=%s" % kv for kv in env.items()), " ".join(args))
        H.check_eq(p.returncode, 2, "%s exit code (stderr %r)" % (what, p.stderr[-300:]))
        err = p.stderr.decode("utf-8", "replace")
        H.check(needle.lower() in err.lower(), "%s: stderr %r does not name %r" % (what, err, needle))
        H.check(not H.sanitizer_reports(err), "%s: sanitizer report on stderr:\n%s" % (what, err))


@suite.case
def test_bad_listen_address_fails_cleanly():
    # An unparsable, out-of-range or unbindable address is a startup
    # failure that names the address — never a silent bind elsewhere.
    import shutil
    import tempfile
    tmp = tempfile.mkdtemp(prefix="sluice-it-addr-")
    wrong = []
    try:
        for addr in ("not-an-address", "127.0.0.1:99999", "127.0.0.1:65536", "127.0.0.1:-1",
                     "256.1.1.1:80", "127.0.0.1:"):
            problem = bad_listen_problem(addr, tmp)
            if problem:
                wrong.append(problem)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    H.check(not wrong, "bad --listen values:\n    " + "\n    ".join(wrong))


def bad_listen_problem(addr, tmp):
    """Returns None when sluiced refuses addr properly, else what went wrong."""
    try:
        p = H.run([H.sluiced_path(), "--listen", addr, "--data-dir", os.path.join(tmp, "d")],
                  timeout=3 * H.slow_factor(), cwd=tmp)
    except H.TestFailure:
        return "--listen %s: the server started (and was killed) instead of refusing it" % addr
    err = p.stderr.decode("utf-8", "replace")
    if H.sanitizer_reports(err):
        return "--listen %s: sanitizer report:\n%s" % (addr, err)
    if p.returncode not in (1, 2):
        return "--listen %s: exit code %d, expected 1 or 2" % (addr, p.returncode)
    if addr not in err:
        return "--listen %s: stderr does not name the address: %r" % (addr, err[-300:])
    return None


@suite.case
def test_env_twins():
    import tempfile
    tmp = tempfile.mkdtemp(prefix="sluice-it-env-")
    ready = os.path.join(tmp, "ready")
    env = {"SLUICE_LISTEN": "127.0.0.1:0", "SLUICE_DATA_DIR": os.path.join(tmp, "d"),
           "SLUICE_READY_FILE": ready}
    with H.Server(env=env, bare=True) as srv:
        h = srv.health()
        H.check(srv.port != 0 and srv.port != 8080, "env SLUICE_LISTEN port 0 gave %d" % srv.port)
        H.check("uptime_s" in h, "health via env-configured server")
        H.check(os.path.isdir(os.path.join(tmp, "d")), "SLUICE_DATA_DIR was not used/created")
    import shutil
    shutil.rmtree(tmp, ignore_errors=True)
    # A flag beats its env twin.
    with H.Server(env={"SLUICE_LISTEN": "192.0.2.1:1"}) as srv:
        srv.health()


def read_syscalls(pid):
    with open("/proc/%d/io" % pid) as f:
        return int(next(l for l in f if l.startswith("syscr:")).split()[1])


def reactor_wakeups(pid):
    """Voluntary context switches of each reactor thread, by name."""
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
                name = f.read().strip()
            with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
                n = int(next(l for l in f if l.startswith("voluntary_ctxt_switches")).split()[1])
        except (OSError, StopIteration):
            continue
        if name.startswith("sl-reactor-"):
            out[name] = n
    return out


@suite.case
def test_idle_server_stays_idle():
    """An idle server neither reads nor wakes much. The runs' housekeeping
    used to walk every process's /proc/PID/stat four times a second,
    forever, whether or not a run had ever existed; each reactor woke 100
    times a second for its loop-lag probe."""
    with H.Server(["--reactors", "2"]) as srv:
        srv.health()
        nprocs = sum(1 for d in os.listdir("/proc") if d.isdigit())
        time.sleep(0.5)
        reads0, wakes0 = read_syscalls(srv.pid), reactor_wakeups(srv.pid)
        time.sleep(3.0)
        reads = read_syscalls(srv.pid) - reads0
        wakes1 = reactor_wakeups(srv.pid)
        # Twelve walks in 3 s would read every process's stat file each time.
        H.check(reads < 2 * nprocs + 30,
                "idle server made %d read syscalls in 3 s (%d processes on the machine)"
                % (reads, nprocs))
        H.check_eq(len(wakes1), 2, "reactor threads")
        for name, n in wakes1.items():
            woke = n - wakes0.get(name, 0)
            # The probe (10 a second) and the monitor's ticks; 300 before.
            H.check(woke < 120, "%s woke %d times in 3 s idle" % (name, woke))

suite.run()
