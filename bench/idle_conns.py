#!/usr/bin/python3
"""Idle connections up to the limit: opens N plain TCP connections to a
running sluiced (they send nothing), then samples /health 20 times and
reports RSS per connection, open fds and /health latency; closes them and
checks that RSS, fds and connections come back.

    build/sluiced --listen 127.0.0.1:0 --ready-file /tmp/r --max-connections 19000 \\
        --max-connections-per-ip 0 --idle-timeout 600 --header-timeout 600 &
    bench/idle_conns.py 18000 /tmp/r

N is bounded by this process's and the server's RLIMIT_NOFILE.
"""
import json
import resource
import socket
import sys
import time
import urllib.request


def main():
    n, ready = int(sys.argv[1]), sys.argv[2]
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(n + 1000, hard), hard))
    http = [l.split("=", 1)[1] for l in open(ready).read().split() if l.startswith("http=")][0]

    def health():
        t = time.monotonic()
        d = json.load(urllib.request.urlopen("http://%s/health" % http, timeout=10))
        return d, (time.monotonic() - t) * 1000

    d, ms = health()
    base = d["rss_bytes"]
    print("before: rss %.1f MiB, fds %d, /health %.1f ms" % (base / 2**20, d["open_fds"], ms))
    host, port = http.rsplit(":", 1)
    socks, t = [], time.monotonic()
    for _ in range(n):
        s = socket.socket()
        s.connect((host, int(port)))
        socks.append(s)
    print("connected %d in %.1f s" % (n, time.monotonic() - t))
    time.sleep(1.0)
    lat = []
    for _ in range(20):
        d, ms = health()
        lat.append(ms)
        time.sleep(0.05)
    lat.sort()
    print("with %d idle: rss %.1f MiB (+%.1f KiB per connection), fds %d, connections %d, "
          "/health p50 %.1f ms, max %.1f ms" % (n, d["rss_bytes"] / 2**20,
                                                 (d["rss_bytes"] - base) / 1024 / n,
                                                 d["open_fds"], d["connections"], lat[10], lat[-1]))
    for s in socks:
        s.close()
    time.sleep(2)
    d, ms = health()
    print("after close: rss %.1f MiB, fds %d, connections %d" % (d["rss_bytes"] / 2**20,
                                                                 d["open_fds"], d["connections"]))


if __name__ == "__main__":
    main()
