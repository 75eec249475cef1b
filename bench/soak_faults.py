#!/usr/bin/env python3
"""Fault injector and /health sampler for bench/soak.sh.

Runs inside the client network namespace (soak.sh starts it with
`ip netns exec`), next to sluice-load. For --seconds it:
- samples GET /health every --sample-every seconds into a TSV (one row per
  sample: time, RSS, fds, connections, streams, subscribers, sessions,
  loop and scheduler lag, watchdog figures, events);
- every --fault-every seconds opens an HTTP/1.1 SSE subscriber to one of
  the load's sessions and alternates two faults on it:
    half-open: reads for 2 s, then an nft rule drops all its packets (both
      ways, no FIN or RST): the watchdog must reap it after the grace;
    stalled:   SO_RCVBUF 8 KiB, stops reading for --stall-for seconds (its
      window closes: paused, never reaped), then reads 3 s and closes.
Prints one JSON line at the end: faults injected, by kind.
"""

import argparse
import json
import socket
import subprocess
import sys
import threading
import time


def http_get(host, port, path, timeout=5.0):
    s = socket.create_connection((host, port), timeout=timeout)
    try:
        s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path).encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return json.loads(body)


def nft(rule):
    subprocess.run(["nft"] + rule.split(), check=True, capture_output=True, timeout=10)


class Sampler(threading.Thread):
    COLS = ("t_s rss_mib open_fds connections streams subscribers sessions_live "
            "sessions_hibernated loop_lag_ms sched_lag_ms wd_tracked wd_paused "
            "reaped_send_stall reaped_peer_closed reaped_paused events_published "
            "events_delivered wd_tick_ms_max").split()

    def __init__(self, a, t0):
        super().__init__(daemon=True)
        self.a, self.t0 = a, t0
        self.stop = threading.Event()
        self.out = open(a.tsv, "w")
        self.out.write("\t".join(self.COLS) + "\n")
        self.health_ms_max = 0.0

    def row(self, h):
        wd = h["watchdog"]
        lag = max(r["loop_lag_ms_max"] for r in h["reactors"])
        return [round(time.monotonic() - self.t0, 1), round(h["rss_bytes"] / 2**20, 1),
                h["open_fds"], h["connections"], h["streams"], h["subscribers"],
                h["sessions"]["live"], h["sessions"]["hibernated"], round(lag, 2),
                round(h["scheduler"]["lag_ms_max"], 2), wd["tracked"], wd["paused"],
                wd["reaped_send_stall"], wd["reaped_peer_closed"], wd["reaped_paused"],
                h["events"]["published"], h["events"]["delivered"], wd["tick_ms_max"]]

    def run(self):
        while not self.stop.is_set():
            t = time.monotonic()
            try:
                h = http_get(self.a.host, self.a.port, "/health")
                self.health_ms_max = max(self.health_ms_max, (time.monotonic() - t) * 1e3)
                self.out.write("\t".join(str(v) for v in self.row(h)) + "\n")
                self.out.flush()
            except (OSError, ValueError) as e:
                print("soak_faults: /health failed: %r" % e, file=sys.stderr)
            self.stop.wait(max(0.0, self.a.sample_every - (time.monotonic() - t)))


def subscribe(a, session, rcvbuf=None):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(5)
    s.connect((a.host, a.port))
    s.sendall(("GET /v1/sessions/%s/events HTTP/1.1\r\nHost: x\r\n\r\n" % session).encode())
    return s


def read_for(s, seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        s.settimeout(max(0.05, end - time.monotonic()))
        try:
            if not s.recv(65536):
                return False
        except socket.timeout:
            pass
        except OSError:
            return False
    return True


def half_open(a, session, held):
    s = subscribe(a, session)
    read_for(s, 2.0)
    port = s.getsockname()[1]
    nft("add rule inet soak out tcp sport %d drop" % port)
    nft("add rule inet soak in tcp dport %d drop" % port)
    held.append(s)  # kept open on our side: the server alone must notice


def stalled(a, session):
    s = subscribe(a, session, rcvbuf=8192)
    read_for(s, 1.0)
    time.sleep(a.stall_for)  # reads nothing: the window closes
    read_for(s, 3.0)
    s.close()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("--faults-for", type=float, required=True, help="inject only this long")
    p.add_argument("--tsv", required=True)
    p.add_argument("--sessions", default="soak-0")
    p.add_argument("--fault-every", type=float, default=20)
    p.add_argument("--stall-for", type=float, default=30)
    p.add_argument("--sample-every", type=float, default=2)
    a = p.parse_args()
    nft("add table inet soak")
    nft("add chain inet soak out { type filter hook output priority 0 ; }")
    nft("add chain inet soak in { type filter hook input priority 0 ; }")
    t0 = time.monotonic()
    sampler = Sampler(a, t0)
    sampler.start()
    sessions = a.sessions.split(",")
    held, threads, counts = [], [], {"half_open": 0, "stalled": 0}
    k = 0
    next_fault = t0 + a.fault_every / 2
    while time.monotonic() < t0 + a.seconds:
        now = time.monotonic()
        if now >= next_fault and now < t0 + a.faults_for:
            kind = "half_open" if k % 2 == 0 else "stalled"
            fn = half_open if kind == "half_open" else stalled
            args = (a, sessions[k % len(sessions)]) + ((held,) if kind == "half_open" else ())
            t = threading.Thread(target=fn, args=args, daemon=True)
            t.start()
            threads.append(t)
            counts[kind] += 1
            k += 1
            next_fault += a.fault_every
        time.sleep(0.2)
    for t in threads:
        t.join(a.stall_for + 10)
    sampler.stop.set()
    sampler.join(10)
    for s in held:
        s.close()
    subprocess.run(["nft", "delete", "table", "inet", "soak"], capture_output=True, timeout=10)
    counts["health_ms_max"] = round(sampler.health_ms_max, 1)
    print(json.dumps(counts))


if __name__ == "__main__":
    main()
