"""Shared pieces of the randomized stress and crash-loop tests.

- seeds: every randomized test prints its seed first and takes it back from
  an env var, so a failure is replayed with the same decisions;
- sizes from env with short defaults (ctest) that bench/ scripts raise;
- reading sluiced's segment files (storage/segment.h, storage/record.h)
  to map a byte offset to the event whose record holds it, so a test that
  damages bytes knows exactly which acknowledged events it hit;
- finding the server's report of damage in /health or in its log, without
  depending on the exact counter names.
"""

import os
import random
import re
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sluice_harness as H  # noqa: E402

SEGMENT_HEADER_BYTES = 48   # storage/segment.h
SEGMENT_MAGIC = b"SLUICESG"
RECORD_PREFIX_BYTES = 8     # storage/record.h: len + len_crc
RECORD_FIXED_BYTES = 25     # seq, ts_ns, type_len after len/len_crc/crc
RECORD_SEQ_OFFSET = 12


def seed(env_name):
    """The run's seed: env_name when set (replay), else a fresh one. Printed
    first so every failure report carries it."""
    text = os.environ.get(env_name)
    value = int(text) if text else random.SystemRandom().randrange(1, 2 ** 31)
    print("seed %d (replay with %s=%d)" % (value, env_name, value))
    sys.stdout.flush()
    return value


def env_int(name, default):
    text = os.environ.get(name)
    return int(text) if text else default


def env_float(name, default):
    text = os.environ.get(name)
    return float(text) if text else default


def logfmt(line):
    """The key=value pairs of one logfmt line, quotes removed."""
    out = {}
    for k, v in re.findall(r'([\w.]+)=("(?:[^"\\]|\\.)*"|\S*)', line):
        out[k] = v[1:-1] if v.startswith('"') else v
    return out


# -- segment files -------------------------------------------------------------

def session_segments(data_dir, session):
    """Paths of a session's segment files in seq order ([] when none)."""
    folder = os.path.join(data_dir, session)
    try:
        names = sorted(n for n in os.listdir(folder) if n.endswith(".seg"))
    except OSError:
        return []
    return [os.path.join(folder, n) for n in names]


def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


CRC32C_TABLE = _crc32c_table()


def crc32c(data):
    """CRC32C (Castagnoli), as storage/crc32c.h computes it from crc 0."""
    c = 0xFFFFFFFF
    t = CRC32C_TABLE
    for b in data:
        c = t[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def _record_at(buf, off, full):
    """(size, seq) of a record that checks at off (storage/record.h), or
    None. Without `full` only the length guard is checked (cheap)."""
    if off + RECORD_PREFIX_BYTES + RECORD_FIXED_BYTES > len(buf):
        return None
    length, len_crc, crc = struct.unpack_from("<III", buf, off)
    if crc32c(buf[off:off + 4]) != len_crc or length < RECORD_FIXED_BYTES or off + 4 + length > len(buf):
        return None
    if full and crc32c(buf[off + RECORD_SEQ_OFFSET:off + 4 + length]) != crc:
        return None
    (seq,) = struct.unpack_from("<Q", buf, off + RECORD_SEQ_OFFSET)
    return 4 + length, seq


def segment_records(path, full_from=0):
    """[(offset, size, seq)] of the records of one segment that check (length
    guard and CRC, as storage/record.h defines them), in file order. Past a
    record that fails, the walk looks for the next one that checks byte by
    byte, so records behind damage from an earlier injection are still
    found, and a byte changed now is attributed to the record that holds it.
    The data CRC is checked for records that end after full_from (the
    region about to be damaged); before it the length guard suffices."""
    with open(path, "rb") as f:
        buf = f.read()
    out = []
    if len(buf) < SEGMENT_HEADER_BYTES or buf[:8] != SEGMENT_MAGIC:
        return out
    off = SEGMENT_HEADER_BYTES
    while off + RECORD_PREFIX_BYTES + RECORD_FIXED_BYTES <= len(buf):
        rec = _record_at(buf, off, full=False)
        if rec is not None and off + rec[0] > full_from:
            rec = _record_at(buf, off, full=True)
        if rec is None:
            off += 1
            continue
        out.append((off, rec[0], rec[1]))
        off += rec[0]
    return out


def damage_bytes(path, offsets, rng):
    """XORs the byte at each offset with a random non-zero value (so it
    always changes); the file keeps its size."""
    with open(path, "r+b") as f:
        for off in offsets:
            f.seek(off)
            b = f.read(1)
            f.seek(off)
            f.write(bytes([b[0] ^ rng.randrange(1, 256)]))
        f.flush()
        os.fsync(f.fileno())


# -- damage reports ------------------------------------------------------------

DAMAGE_KEY_RE = re.compile(r"damage|quarantin|corrupt", re.I)


def storage_damage_counters(health):
    """{key: value} of the numeric /health storage keys that name damage or
    quarantine (e.g. damaged_records, quarantined_bytes), whatever their
    exact names; nested objects are searched with dotted keys."""
    out = {}

    def walk(obj, prefix):
        for k, v in obj.items():
            name = prefix + k
            if isinstance(v, dict):
                walk(v, name + ".")
            elif isinstance(v, (int, float)) and not isinstance(v, bool) and DAMAGE_KEY_RE.search(name):
                out[name] = v
    storage = health.get("storage") if isinstance(health, dict) else None
    if isinstance(storage, dict):
        walk(storage, "storage.")
    return out


def damage_log_lines(stderr_text):
    """Log lines whose msg names quarantine or damage."""
    out = []
    for line in stderr_text.splitlines():
        msg = logfmt(line).get("msg", "")
        if re.search(r"quarantin|damage", msg, re.I):
            out.append(line)
    return out


def wait_for(pred, timeout, interval=0.1):
    """Polls pred() until it returns a true value or timeout passes; returns
    its last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)


# -- reading a session back ----------------------------------------------------

class SseReader(H.ChunkedSseParser):
    """A blocking HTTP/1.1 SSE subscription; events are (id, type, data)."""

    def __init__(self, srv, path, timeout=10.0):
        self.sock = H.connect(srv.host, srv.port, timeout)
        self.sock.sendall(H.build_http1("GET", path, srv.authority()))
        self._init_parser()
        head = b""
        while b"\r\n\r\n" not in head:
            data = self.sock.recv(65536)
            if not data:
                raise H.TestFailure("%s: closed before the response head" % path)
            head += data
        head, _, rest = head.partition(b"\r\n\r\n")
        self.status = int(head.split(b" ", 2)[1])
        self.raw += rest

    def read(self, done, timeout, linger):
        """Reads until done(events) holds (then `linger` seconds more, so an
        extra event would show), the stream ends, or timeout passes."""
        deadline = time.monotonic() + timeout
        stop_at = None
        while not self.ended:
            self._parse(self._dechunk())
            now = time.monotonic()
            if stop_at is None and done(self.events):
                stop_at = now + linger
            if now >= (stop_at if stop_at is not None else deadline):
                break
            self.sock.settimeout(max(0.01, min(0.2, (stop_at or deadline) - now)))
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            if not data:
                break
            self.raw += data
        self._parse(self._dechunk())
        return self.events

    def close(self):
        self.sock.close()


def read_session(srv, sid, last_seq, timeout=15.0, linger=0.3):
    """Every event of sid from seq 1 as [(id, type, data)], reading until
    one with id >= last_seq arrived (or timeout)."""
    r = SseReader(srv, "/v1/sessions/%s/events?from=1" % sid, timeout)
    try:
        if r.status != 200:
            raise H.TestFailure("GET %s events?from=1: status %d" % (sid, r.status))
        return r.read(lambda evs: last_seq == 0 or any((e[0] or 0) >= last_seq for e in evs),
                      timeout * H.slow_factor(), linger)
    finally:
        r.close()
