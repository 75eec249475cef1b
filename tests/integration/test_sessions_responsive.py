"""While sluice-load saturates the server with a fan-out (one publisher as
fast as it can go, 100 subscribers), GET /health and GET /v1/sessions keep
answering quickly: neither waits on a busy session actor. The bound
asserted here is generous (shared 2-core machines, sanitizer builds); the
benchmark reports the real p99."""

import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sluice_harness as H  # noqa: E402


def sluice_load_path():
    build = os.environ.get("SLUICE_BUILD_DIR", "")
    p = os.path.join(build, "tools", "sluice-load")
    return p if os.path.exists(p) else None


def poll(srv, path, until, out, errors):
    while time.monotonic() < until:
        t0 = time.monotonic()
        try:
            r = H.http1_request(srv.host, srv.port, "GET", path, timeout=10)
            if r.status != 200:
                errors.append("%s: status %d" % (path, r.status))
        except Exception as e:  # a timeout is a failure of the property
            errors.append("%s: %r" % (path, e))
        out.append(time.monotonic() - t0)
        time.sleep(0.02)


def test_admin_fast_under_fanout(srv):
    load = sluice_load_path()
    if not load:
        print("SKIP: sluice-load not built")
        sys.exit(H.SKIP_EXIT)
    for i in range(50):
        H.http1_request(srv.host, srv.port, "PUT", "/v1/sessions/other-%02d" % i)
    dur = 6
    cmd = [load, "--target", srv.authority(), "--scenario", "fanout", "--subscribers", "100",
           "--rate", "0", "--pub-inflight", "64", "--size", "64", "--duration", str(dur),
           "--drain", "5", "--progress", "off", "--session-prefix", "busy"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    time.sleep(1.0)  # let it connect and start publishing
    until = time.monotonic() + dur - 2
    lat_h, lat_l, errors = [], [], []
    ts = [threading.Thread(target=poll, args=(srv, "/health", until, lat_h, errors)),
          threading.Thread(target=poll, args=(srv, "/v1/sessions?limit=1000", until, lat_l, errors))]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=60)
    out = p.communicate(timeout=120)[0].decode(errors="replace")
    H.check(p.returncode == 0, "sluice-load failed (%d):\n%s" % (p.returncode, out[-2000:]))
    H.check(not errors, "; ".join(errors[:5]))
    for name, lat in (("/health", lat_h), ("/v1/sessions", lat_l)):
        lat.sort()
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        print("  %s under load: n=%d p50=%.1fms p99=%.1fms max=%.1fms"
              % (name, len(lat), lat[len(lat) // 2] * 1e3, p99 * 1e3, lat[-1] * 1e3))
        H.check(len(lat) >= 20, "%s polled only %d times" % (name, len(lat)))
        bound = 0.5 * H.slow_factor()
        H.check(p99 < bound, "%s p99 %.0f ms >= %.0f ms under load" % (name, p99 * 1e3, bound * 1e3))
    published = [l for l in out.splitlines() if "published" in l]
    print("  load: %s" % (published[0].strip() if published else "?"))


def main():
    return H.run_cases_each_server("test_sessions_responsive", (test_admin_fast_under_fanout,))


if __name__ == "__main__":
    sys.exit(main())
