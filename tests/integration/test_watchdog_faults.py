"""Watchdog against real faults: reap the half-open peer, never a live one.

The server runs in its own network namespace (--dead-peer-grace 3,
--watchdog-interval 0.5); five HTTP/1.1 SSE subscribers of one session
connect from a second namespace over a veth pair while a publisher
streams ~100 events/s:

  active     reads everything as it comes;
  paused     SO_RCVBUF 4096, reads nothing for 3x grace (its kernel acks
             what fits, then advertises a zero window and answers probes);
  trickle    SO_RCVBUF 4096, reads 512 bytes every 0.25 s (the send queue
             plateaus while acked bytes advance);
  half-open  reads normally, then an nft rule in its namespace drops all
             its packets both ways: no FIN, no RST, no ack ever again;
  clean      closes its connection normally.

Checked: the half-open one is reaped -- once, reason send_stall, within
grace + 2 intervals of the drop (from the server's log line), its
session seat released (subscribers 5 -> 3 with the clean one) -- and
/debug/connections named it as stalled before that, with the paused one
as paused; over 3x grace nothing else is reaped (send_stall 1,
peer_closed 0, paused 0); /health answers within a second throughout;
afterwards active, paused and trickle each receive every event 1..last in
order, with no gap.
"""

import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import netns_harness as N  # noqa: E402
import sluice_harness as H  # noqa: E402

GRACE = 3.0
INTERVAL = 0.5
SID = "wd-faults"
SERVER_ARGS = ["--dead-peer-grace", str(GRACE), "--watchdog-interval", str(INTERVAL),
               "--workers", "2", "--session-ring-bytes", "256k", "--ring-page-bytes", "16384",
               "--max-conn-output-bytes", "64k"]
BATCH = 5
BATCH_EVERY = 0.05
HEALTH_LIMIT_S = 1.0 * H.slow_factor()


def event_data(seq):
    head = "ev%d-" % seq
    return head + chr(ord("a") + seq % 26) * (200 - len(head))


class Publisher(threading.Thread):
    """NDJSON batches on one keep-alive connection from the client namespace."""

    def __init__(self, pair, srv):
        super().__init__(daemon=True)
        self.sock = pair.connect(srv.port, timeout=10)
        self.reader = H.Http1Reader(self.sock)
        self.stop = threading.Event()
        self.last = 0
        self.error = None

    def run(self):
        try:
            while not self.stop.is_set():
                first = self.last + 1
                lines = [json.dumps({"data": event_data(s)}) for s in range(first, first + BATCH)]
                self.sock.sendall(H.build_http1(
                    "POST", "/v1/sessions/%s/events" % SID, N.SERVER_IP,
                    headers=[("Content-Type", "application/x-ndjson")],
                    body=("\n".join(lines) + "\n").encode()))
                r = self.reader.read_response()
                H.check_eq(r.status, 200, "publish status")
                H.check_eq(r.json(), {"first_seq": first, "last_seq": first + BATCH - 1}, "seqs")
                self.last = first + BATCH - 1
                time.sleep(BATCH_EVERY)
        except Exception as e:  # reported by the main thread
            self.error = repr(e)
        finally:
            self.sock.close()


class Subscriber(threading.Thread):
    def __init__(self, pair, srv, mode):
        super().__init__(daemon=True)
        self.mode = mode
        rcvbuf = 4096 if mode in ("paused", "trickle") else None
        sock = pair.connect(srv.port, rcvbuf=rcvbuf, timeout=10)
        self.sse = N.SseReader(sock, "/v1/sessions/%s/events?from=1" % SID)
        self.peer = "%s:%d" % (N.CLIENT_IP, self.sse.local_port())
        self.release = threading.Event()  # read at full speed from now on
        self.halt = threading.Event()     # stop touching the socket
        self.error = None

    def run(self):
        try:
            while not self.halt.is_set():
                if self.release.is_set() or self.mode in ("active", "halfopen"):
                    self.sse.pump(65536, 0.2)
                elif self.mode == "trickle":
                    self.sse.pump(512, 0.25)
                    self.halt.wait(0.25)
                else:  # paused
                    self.halt.wait(0.1)
        except H.ConnectionClosed:
            if self.mode != "halfopen":
                self.error = "connection closed by the server"
        except Exception as e:  # reported by the main thread
            self.error = repr(e)


def wait_subscribers(srv, n, timeout):
    deadline = time.monotonic() + timeout
    got = None
    while time.monotonic() < deadline:
        got = srv.session(SID)["subscribers"]
        if got == n:
            return
        time.sleep(0.05)
    raise H.TestFailure("session subscribers did not reach %d (last %r)" % (n, got))


def row_of(rows, peer):
    for r in rows:
        if r["peer"] == peer:
            return r
    return None


def observe(srv, subs, t_drop):
    """Watches 3x grace after the faults: health latency, the reap, what
    /debug/connections says. Returns (reap_seen_at, seen_stalled, seen_paused)."""
    half, paused = subs["halfopen"], subs["paused"]
    reap_seen = None
    seen_stalled = seen_paused = False
    end = t_drop + 3 * GRACE
    while time.time() < end:
        h = srv.timed_health(HEALTH_LIMIT_S, "while faults are in place")
        wd = h["watchdog"]
        H.check(wd["enabled"], "watchdog enabled")
        if wd["reaped_send_stall"] and reap_seen is None:
            reap_seen = time.time()
        rows = srv.debug_connections("sendq", 50)["rows"]
        r = row_of(rows, half.peer)
        if r is not None and r.get("watchdog") == "stalled" and r["sendq"] > 0:
            seen_stalled = True
        r = row_of(rows, paused.peer)
        if r is not None and r.get("watchdog") == "paused":
            seen_paused = True
        time.sleep(0.2)
    return reap_seen, seen_stalled, seen_paused


def check_reap_line(srv, subs, t_drop):
    lines = srv.reap_lines()
    H.check_eq(len(lines), 1, "watchdog reap log lines: %r" % lines)
    line = lines[0]
    H.check_eq(line.get("peer"), subs["halfopen"].peer, "reaped peer")
    H.check_eq(line.get("reason"), "send_stall", "reap reason")
    H.check(int(line.get("sendq", "0")) > 0, "reap line carries the send queue: %r" % line)
    took = N.log_time(line["ts"]) - t_drop
    limit = GRACE + 2 * INTERVAL
    print("  half-open peer reaped %.2fs after its packets were dropped (limit %.1fs): %s"
          % (took, limit, {k: line[k] for k in ("no_progress_ms", "sendq", "unacked", "probes")
                           if k in line}))
    H.check(GRACE - 0.1 <= took <= limit, "reaped %.2fs after the drop; expected within "
            "[grace, grace + 2 intervals] = [%.1f, %.1f]" % (took, GRACE, limit))


def run_faults(pair, srv):
    H.check_eq(srv.request("PUT", "/v1/sessions/" + SID).status, 201, "PUT session")
    subs = {m: Subscriber(pair, srv, m) for m in ("active", "paused", "trickle", "halfopen",
                                                  "clean")}
    for s in subs.values():
        s.start()
    wait_subscribers(srv, 5, 10)
    pub = Publisher(pair, srv)
    pub.start()
    time.sleep(1.5)
    # Faults: the half-open peer vanishes; the clean one says goodbye.
    t_drop = time.time()
    pair.drop_connection(subs["halfopen"].sse.local_port())
    subs["halfopen"].halt.set()
    subs["clean"].halt.set()
    subs["clean"].join(2)
    subs["clean"].sse.close()
    reap_seen, seen_stalled, seen_paused = observe(srv, subs, t_drop)
    h = srv.health()
    wd = h["watchdog"]
    print("  after 3x grace: watchdog %s" % {k: wd[k] for k in (
        "tracked", "paused", "stalled", "ticks", "tick_ms_max", "reaped_send_stall",
        "reaped_peer_closed", "reaped_paused")})
    H.check(reap_seen is not None, "the half-open subscriber was not reaped within 3x grace")
    H.check_eq((wd["reaped_send_stall"], wd["reaped_peer_closed"], wd["reaped_paused"]),
               (1, 0, 0), "reaps (send_stall, peer_closed, paused) over 3x grace")
    check_reap_line(srv, subs, t_drop)
    H.check(seen_stalled, "/debug/connections never showed the half-open peer as stalled")
    H.check(seen_paused, "/debug/connections never showed the paused peer as paused")
    H.check_eq(srv.session(SID)["subscribers"], 3, "session subscribers after the reap")
    # The live ones: no error, then every event.
    pub.stop.set()
    pub.join(10)
    H.check(pub.error is None, "publisher: %s" % pub.error)
    last = pub.last
    for m in ("active", "paused", "trickle"):
        H.check(subs[m].error is None, "%s subscriber: %s" % (m, subs[m].error))
        subs[m].release.set()
    deadline = time.monotonic() + 30 * H.slow_factor()
    for m in ("active", "paused", "trickle"):
        subs[m].halt.set()
        subs[m].join(5)
        got = subs[m].sse.read_to(last, deadline)
        H.check_eq(got, last, "%s subscriber's last seq" % m)
        subs[m].sse.check_complete(1, last, "%s subscriber" % m)
        subs[m].sse.close()
    print("  active, paused and trickle subscribers each got seqs 1..%d, no gap" % last)
    subs["halfopen"].sse.close()
    h = srv.timed_health(HEALTH_LIMIT_S, "at the end")
    H.check_eq(h["watchdog"]["reaped_send_stall"], 1, "send_stall reaps at the end")


def main():
    N.require_netns()
    suite = H.Suite("test_watchdog_faults")

    @suite.case
    def test_watchdog_reaps_half_open_only():
        with N.NetnsPair("wf") as pair:
            with N.NsServer(pair, args=SERVER_ARGS) as srv:
                run_faults(pair, srv)

    suite.run()


if __name__ == "__main__":
    main()
