"""Sessions: durability of the event log across crashes and damaged files.

- crash: four keep-alive HTTP/1.1 publishers make durable publishes
  (`?durable=1` and `Sluice-Durable: 1`) on two sessions under
  --fsync batch; the server is SIGKILLed at a random moment and restarted
  on the same data dir, three times over. After each restart every
  acknowledged event is served from seq 1 at its acknowledged seq with its
  exact data, seqs are 1..last_seq with no gap or duplicate, events whose
  answer was lost in the crash are ones that were sent (each at most once),
  the stats agree with the log, and publishing continues at last_seq + 1.
- damaged tail: after a stop, the last segment gets garbage appended, its
  last record cut short, or a bit flipped in its last or a middle record
  (and the manifest is removed so the folder is scanned); one more case
  cuts the tail after a SIGKILL with a dirty manifest entry. The server
  starts, logs `msg="segment damage quarantined"` with the exact offset,
  cut byte count and quarantine file, serves exactly the intact records
  (those after a damaged middle record included), and the next publish
  takes the seq after the last intact record.
- large batch: a durable NDJSON batch bigger than the log's write buffers
  is answered and its events read back.

Set SLUICE_TEST_SEED to replay the random kill moments.
"""

import os
import random
import re
import signal
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sluice_harness as H  # noqa: E402

SEGMENT_HEADER_BYTES = 48   # storage/segment.h
RECORD_LEN_FIELD = 4        # storage/record.h: `len` counts the bytes after it
RECORD_MIN = 30             # storage/record.h: the smallest record
PUBLISHERS = 4
CRASH_SESSIONS = ("dur-a", "dur-b")
CRASH_CYCLES = 3
PUBLISH_CAP = 20000         # per publisher and cycle: bounds the loop


# -- servers, streams, requests ------------------------------------------------

def server_on(data_dir, extra=(), name="sluiced", expect_clean_exit=True):
    """A Server whose data dir outlives it: bare, so every flag is ours."""
    srv = H.Server(bare=True, name=name, expect_clean_exit=expect_clean_exit)
    srv.args = ["--listen", "127.0.0.1:0", "--data-dir", data_dir,
                "--ready-file", srv.ready_file, "--workers", "2"] + list(extra)
    return srv


class SseStream(H.ChunkedSseParser):
    """An SSE subscription over one raw HTTP/1.1 socket: undoes the chunked
    framing and parses events incrementally, so a caller can stop after
    exactly the events it expects."""

    def __init__(self, host, port, path, timeout=5.0, rcvbuf=None):
        if rcvbuf is None:
            self.sock = H.connect(host, port, timeout)
        else:
            # Set before connect, so the window the peer sees stays small.
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            self.sock.settimeout(timeout)
            self.sock.connect((host, port))
        self.sock.sendall(H.build_http1("GET", path, host))
        self._init_parser()         # events: (id int, type, data str)
        self._read_head()

    def _read_head(self):
        while b"\r\n\r\n" not in self.raw:
            self._recv()
        head, _, rest = bytes(self.raw).partition(b"\r\n\r\n")
        self.raw = bytearray(rest)
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        hdrs = dict((k.strip().lower(), v.strip()) for k, _, v in
                    (l.partition(":") for l in lines[1:]))
        H.check_eq(self.status, 200, "SSE status")
        H.check("chunked" in hdrs.get("transfer-encoding", ""), "SSE over HTTP/1.1 is chunked")

    def _recv(self, size=65536):
        data = self.sock.recv(size)
        if not data:
            raise H.ConnectionClosed("SSE stream closed")
        self.raw += data

    def read_until(self, count, deadline):
        """Reads until `count` events arrived, the stream ended or deadline."""
        self.pump(0, 0)                     # bytes that came with the head
        while len(self.events) < count and not self.ended and time.monotonic() < deadline:
            self.pump(65536, max(0.05, min(1.0, deadline - time.monotonic())))
        return self.events

    def pump(self, size, timeout):
        """One recv of at most size bytes (none when size is 0), waiting up
        to timeout; parses what is complete. Returns the bytes received."""
        n = 0
        if size:
            self.sock.settimeout(timeout)
            before = len(self.raw)
            try:
                self._recv(size)
            except socket.timeout:
                pass
            n = len(self.raw) - before
        self._parse(self._dechunk())
        return n

    def close(self):
        self.sock.close()


def read_events(srv, sid, count, timeout=10.0, linger=0.3):
    """Events of sid from seq 1: waits for `count`, then `linger` seconds
    more so that an event beyond the expected ones would be seen."""
    s = SseStream(srv.host, srv.port, "/v1/sessions/%s/events?from=1" % sid)
    try:
        s.read_until(count, time.monotonic() + timeout * H.slow_factor())
        s.read_until(count + 1, time.monotonic() + linger)
        return list(s.events)
    finally:
        s.close()


def session_stats(srv, sid):
    r = H.http1_request(srv.host, srv.port, "GET", "/v1/sessions/" + sid)
    H.check_eq(r.status, 200, "GET /v1/sessions/%s" % sid)
    return r.json()


def publish(srv, sid, data):
    r = H.http1_request(srv.host, srv.port, "POST", "/v1/sessions/%s/events?durable=1" % sid,
                        body=data.encode())
    H.check_eq(r.status, 200, "publish to %s" % sid)
    return r.json()["seq"]


def logfmt(line):
    """The key=value pairs of one logfmt line, quotes removed."""
    out = {}
    for k, v in re.findall(r'([\w.]+)=("(?:[^"\\]|\\.)*"|\S*)', line):
        out[k] = v[1:-1] if v.startswith('"') else v
    return out


# -- crash and restart ---------------------------------------------------------

class Publisher(threading.Thread):
    """Durable publishes on one keep-alive connection until the connection
    dies. Records what was acknowledged and what was sent unanswered."""

    def __init__(self, srv, idx, cycle, stop):
        super().__init__(daemon=True)
        self.srv, self.idx, self.cycle, self.stop = srv, idx, cycle, stop
        self.sid = CRASH_SESSIONS[idx % len(CRASH_SESSIONS)]
        self.acked = []         # (seq, data)
        self.unanswered = None  # data sent whose answer never came
        self.error = None       # a wrong answer (not a dropped connection)

    def run(self):
        try:
            sock = H.connect(self.srv.host, self.srv.port, timeout=10)
        except OSError as e:
            self.error = "connect: %r" % e
            return
        reader = H.Http1Reader(sock)
        # Half the publishers ask by query, half by header: both must wait.
        path, hdrs = "/v1/sessions/%s/events" % self.sid, [("Sluice-Durable", "1")]
        if self.idx % 2 == 0:
            path, hdrs = path + "?durable=1", []
        try:
            for k in range(PUBLISH_CAP):
                if self.stop.is_set():
                    break
                data = "c%d-t%d-n%d" % (self.cycle, self.idx, k)
                self.unanswered = data
                sock.sendall(H.build_http1("POST", path, headers=hdrs, body=data.encode()))
                r = reader.read_response()
                if r.status != 200:
                    self.error = "publish %s: status %d %r" % (data, r.status, r.body)
                    return
                self.acked.append((r.json()["seq"], data))
                self.unanswered = None
        except (OSError, H.ConnectionClosed):
            pass                # the server was killed mid-request
        finally:
            sock.close()


def publish_until_killed(srv, cycle, rng):
    """Publishes until a SIGKILL; returns (acked {sid: {seq: data}},
    unanswered {sid: set(data)})."""
    stop = threading.Event()
    pubs = [Publisher(srv, i, cycle, stop) for i in range(PUBLISHERS)]
    for p in pubs:
        p.start()
    delay = rng.uniform(0.5, 2.0)
    time.sleep(delay)
    srv.send_signal(signal.SIGKILL)
    code = srv.wait(10)
    stop.set()
    for p in pubs:
        p.join(15)
        H.check(not p.is_alive(), "publisher %d did not end after the kill" % p.idx)
    H.check_eq(code, -signal.SIGKILL, "server killed by SIGKILL")
    acked = {sid: {} for sid in CRASH_SESSIONS}
    unanswered = {sid: set() for sid in CRASH_SESSIONS}
    for p in pubs:
        H.check(p.error is None, "publisher %d: %s" % (p.idx, p.error))
        H.check(len(p.acked) > 0, "publisher %d got no answer in %.2fs" % (p.idx, delay))
        for seq, data in p.acked:
            H.check(seq not in acked[p.sid], "%s: seq %d acknowledged twice" % (p.sid, seq))
            acked[p.sid][seq] = data
        if p.unanswered is not None:
            unanswered[p.sid].add(p.unanswered)
    print("  cycle %d: killed after %.2fs; acknowledged %s"
          % (cycle, delay, {s: len(a) for s, a in acked.items()}))
    return acked, unanswered


def verify_log(srv, sid, old, acked, unanswered, cycle):
    """Checks what the restarted server serves for sid; returns the data
    list (index = seq - 1) as the new ground truth."""
    st = session_stats(srv, sid)
    last = st["last_seq"]
    evs = read_events(srv, sid, last)
    what = "%s after crash %d" % (sid, cycle)
    H.check_eq([e[0] for e in evs], list(range(1, last + 1)), what + ": seqs served from 1")
    data = [e[2] for e in evs]
    H.check_eq(data[:len(old)], old, what + ": events from before this cycle")
    if acked:
        H.check_eq(min(acked), len(old) + 1, what + ": first seq after the restart")
        H.check(max(acked) <= last, "%s: acknowledged seq %d beyond last_seq %d"
                % (what, max(acked), last))
    for seq, d in sorted(acked.items()):
        H.check_eq(data[seq - 1], d, "%s: data of acknowledged seq %d" % (what, seq))
    extra = [d for i, d in enumerate(data[len(old):], len(old) + 1) if i not in acked]
    for d in extra:
        H.check(d in unanswered, "%s: event %r was never sent unanswered" % (what, d))
    H.check_eq(len(extra), len(set(extra)), what + ": unanswered events appear at most once")
    got = (st["first_seq"], st["events"], st["bytes"])
    H.check_eq(got, (1 if last else 0, last, sum(len(d) for d in data)),
               what + ": stats (first_seq, events, bytes) for last_seq %d" % last)
    print("  %s: last_seq %d, %d acknowledged, %d unanswered written"
          % (what, last, len(acked), len(extra)))
    return data


def verify_restart(srv, history, acked, unanswered, cycle):
    recovered = srv.log_lines("recovered")
    H.check_eq(len(recovered), 1, "msg=recovered lines")
    rec = logfmt(recovered[0])
    H.check_eq((rec.get("sessions"), rec.get("failed")), (str(len(CRASH_SESSIONS)), "0"),
               "recovered sessions, failed: " + recovered[0])
    for sid in CRASH_SESSIONS:
        history[sid] = verify_log(srv, sid, history[sid], acked[sid], unanswered[sid], cycle)


def test_crash_restart(tmp):
    seed = int(os.environ.get("SLUICE_TEST_SEED", random.randrange(1 << 30)))
    print("  seed %d" % seed)
    rng = random.Random(seed)
    data_dir = os.path.join(tmp, "crash")
    history = {sid: [] for sid in CRASH_SESSIONS}
    acked = unanswered = None
    # Each start verifies what the previous crash left, then publishes more
    # and is killed; the last one publishes once and stops cleanly.
    for cycle in range(CRASH_CYCLES + 1):
        last = cycle == CRASH_CYCLES
        with server_on(data_dir, ["--fsync", "batch"], name="sluiced-%d" % cycle,
                       expect_clean_exit=last) as srv:
            if cycle > 0:
                verify_restart(srv, history, acked, unanswered, cycle - 1)
            if not last:
                acked, unanswered = publish_until_killed(srv, cycle, rng)
                continue
            for sid in CRASH_SESSIONS:
                n = len(history[sid])
                H.check_eq(publish(srv, sid, "final"), n + 1, "%s: publish after the last restart" % sid)
                H.check_eq([e[2] for e in read_events(srv, sid, n + 1)], history[sid] + ["final"],
                           "%s: whole log after the last restart" % sid)


# -- damaged tails ---------------------------------------------------------------

TAIL = "tail"
OTHER = "other"
TAIL_EVENTS = 20


def tail_data(seq):
    return "ev%d-%s" % (seq, "x" * (seq % 7))


def segment_path(data_dir, sid, first_seq=1):
    return os.path.join(data_dir, sid, "%020d.seg" % first_seq)


def record_spans(path):
    """[(offset, size)] of the records in a segment (record.h layout)."""
    with open(path, "rb") as f:
        buf = f.read()
    spans, off = [], SEGMENT_HEADER_BYTES
    while off + RECORD_LEN_FIELD <= len(buf):
        size = RECORD_LEN_FIELD + int.from_bytes(buf[off:off + 4], "little")
        spans.append((off, size))
        off += size
    H.check_eq(off, len(buf), "segment %s parses into whole records" % path)
    return spans


def fill(srv, first, last):
    for seq in range(first, last + 1):
        H.check_eq(publish(srv, TAIL, tail_data(seq)), seq, "publish %d" % seq)


def damage_garbage(path, spans):
    with open(path, "ab") as f:
        f.write(b"\xde\xad\xbe\xef" * 16)
    # Damaged bytes after the last record may have held records: their
    # seqs (at most one per 30 bytes) are skipped, never reissued.
    return (list(range(1, TAIL_EVENTS + 1)), spans[-1][0] + spans[-1][1], 64, "corrupt",
            TAIL_EVENTS + 64 // RECORD_MIN + 1)


def damage_cut_last(path, spans):
    off, size = spans[-1]
    os.truncate(path, off + size - 7)
    return list(range(1, TAIL_EVENTS)), off, size - 7, "torn", TAIL_EVENTS


def flip_bit(path, offset, bit=0x10):
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([b ^ bit]))


def damage_flip_last(path, spans):
    off, size = spans[-1]
    flip_bit(path, off + size - 2)      # inside the data
    return list(range(1, TAIL_EVENTS)), off, size, "corrupt", TAIL_EVENTS + size // RECORD_MIN


def damage_flip_middle(path, spans):
    k = TAIL_EVENTS // 2                # the record of seq k + 1
    off, size = spans[k]
    flip_bit(path, off + 14)            # inside its seq field
    # The records after it are intact and kept; seq k + 1 is a gap.
    return ([s for s in range(1, TAIL_EVENTS + 1) if s != k + 1], off, size, "corrupt",
            TAIL_EVENTS + 1)


def check_cut_line(srv, off, dropped, reason, what):
    lines = srv.log_lines("segment damage quarantined")
    H.check_eq(len(lines), 1, what + ": one segment damage quarantined line (stderr:\n%s)"
               % srv.stderr_text()[-2000:])
    f = logfmt(lines[0])
    got = (f.get("session"), f.get("offset"), f.get("bytes"), f.get("reason"))
    H.check_eq(got, (TAIL, str(off), str(dropped), reason), what + ": cut line " + lines[0])
    qfile = f.get("file", "")
    H.check(qfile.endswith(".quarantine-%d" % off), what + ": quarantine file " + qfile)


def check_kept(srv, seqs, next_seq, what):
    """Serves exactly seqs of TAIL (a sluice.gap for each hole), then
    appends at next_seq."""
    last = max(seqs)
    st = session_stats(srv, TAIL)
    want_bytes = sum(len(tail_data(s)) for s in seqs)
    H.check_eq((st["first_seq"], st["last_seq"], st["events"], st["bytes"]),
               (1, next_seq - 1, len(seqs), want_bytes),
               what + ": (first_seq, last_seq, events, bytes)")
    want = [(s, "message", tail_data(s)) for s in seqs]
    got = [e for e in read_events(srv, TAIL, len(seqs)) if e[1] != "sluice.gap"]
    H.check_eq(got, want, what + ": intact records served")
    H.check_eq(publish(srv, TAIL, "after"), next_seq, what + ": seq of the next publish")
    got = [e for e in read_events(srv, TAIL, len(seqs) + 1) if e[1] != "sluice.gap"]
    H.check_eq(got, want + [(next_seq, "message", "after")], what + ": records and the new event")
    H.check_eq([e[2] for e in read_events(srv, OTHER, 5)], ["o%d" % i for i in range(1, 6)],
               what + ": the undamaged session")
    return want + [(next_seq, "message", "after")]


def run_tail_case(tmp, name, damage):
    data_dir = os.path.join(tmp, name)
    with server_on(data_dir, name="sluiced-%s-1" % name) as srv:
        fill(srv, 1, TAIL_EVENTS)
        for i in range(1, 6):
            publish(srv, OTHER, "o%d" % i)
    path = segment_path(data_dir, TAIL)
    seqs, off, dropped, reason, next_seq = damage(path, record_spans(path))
    os.unlink(os.path.join(data_dir, ".manifest"))  # a clean entry would not be scanned
    with server_on(data_dir, name="sluiced-%s-2" % name) as srv:
        check_cut_line(srv, off, dropped, reason, name)
        want = check_kept(srv, seqs, next_seq, name)
    with server_on(data_dir, name="sluiced-%s-3" % name) as srv:
        H.check_eq(srv.log_lines("segment damage quarantined"), [], name + ": nothing to cut again")
        got = [e for e in read_events(srv, TAIL, len(want)) if e[1] != "sluice.gap"]
        H.check_eq(got, want, name + ": log after one more restart")


def test_tail_garbage(tmp):
    run_tail_case(tmp, "garbage", damage_garbage)


def test_tail_cut_last_record(tmp):
    run_tail_case(tmp, "cut", damage_cut_last)


def test_tail_flip_last_record(tmp):
    run_tail_case(tmp, "flip-last", damage_flip_last)


def test_tail_flip_middle_record(tmp):
    run_tail_case(tmp, "flip-middle", damage_flip_middle)


def test_tail_cut_after_kill_dirty_manifest(tmp):
    """The manifest entry is dirty (written at the second start) and knows
    a shorter segment: the size differs, so the segment is scanned."""
    data_dir = os.path.join(tmp, "killed")
    half = TAIL_EVENTS // 2
    with server_on(data_dir, name="sluiced-killed-1") as srv:
        fill(srv, 1, half)
        for i in range(1, 6):
            publish(srv, OTHER, "o%d" % i)
    with server_on(data_dir, name="sluiced-killed-2", expect_clean_exit=False) as srv:
        fill(srv, half + 1, TAIL_EVENTS)
        srv.send_signal(signal.SIGKILL)
        H.check_eq(srv.wait(10), -signal.SIGKILL, "killed")
    path = segment_path(data_dir, TAIL)
    seqs, off, dropped, reason, next_seq = damage_cut_last(path, record_spans(path))
    with server_on(data_dir, name="sluiced-killed-3") as srv:
        check_cut_line(srv, off, dropped, reason, "killed")
        check_kept(srv, seqs, next_seq, "killed")


def test_large_batch_answered(tmp):
    """An NDJSON batch bigger than the log's write buffers (2 x 256 KiB by
    default) but within --max-body-bytes is answered, not left hanging."""
    nd = [("Content-Type", "application/x-ndjson")]
    with server_on(os.path.join(tmp, "large"), name="sluiced-large") as srv:
        sock = H.connect(srv.host, srv.port, timeout=10 * H.slow_factor())
        reader = H.Http1Reader(sock)
        sent = []
        try:
            for b in range(3):
                batch = ["L%d-%d-" % (b, k) + "z" * 60000 for k in range(16)]
                body = "\n".join('{"data":"%s"}' % d for d in batch).encode()
                sock.sendall(H.build_http1("POST", "/v1/sessions/large/events?durable=1",
                                           headers=nd, body=body))
                try:
                    r = reader.read_response()
                except socket.timeout:
                    raise H.TestFailure("batch %d of 16 x 60000 bytes: no answer within %.0fs"
                                        % (b, 10 * H.slow_factor()))
                H.check_eq((r.status, r.json()), (200, {"first_seq": 16 * b + 1,
                                                        "last_seq": 16 * b + 16}),
                           "batch %d answer" % b)
                sent += batch
        finally:
            sock.close()
        H.check_eq([e[2] for e in read_events(srv, "large", len(sent))], sent, "large events")


def main():
    cases = (test_crash_restart, test_tail_garbage, test_tail_cut_last_record,
             test_tail_flip_last_record, test_tail_flip_middle_record,
             test_tail_cut_after_kill_dirty_manifest, test_large_batch_answered)
    return H.run_cases_in_tmp("test_sessions_durability", cases)


if __name__ == "__main__":
    sys.exit(main())
