"""Recovery of damaged logs and the durable seq high-water mark, on the
real binary.

- A flipped byte in record 50 of 100, in the segment header or in the
  first record, after SIGKILL: the intact records stay readable from
  ?from=1 with a sluice.gap for what was damaged, the cut bytes sit in a
  quarantine file, /health counts the damage and the next publish gets
  seq 101 (no seq reused).
- The same flip after a clean SIGTERM (the manifest vouches for the file):
  a reader resyncs past the damage instead of retrying forever.
- `sluiced --check` lists segments and damage, changes nothing without
  --repair, and with it quarantines what recovery would.
- Ephemeral seqs are never reissued after SIGKILL.
- After a restart whose last event was ephemeral, a ?from=1 reader gets
  the logged events at once.
"""

import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sluice_harness as H  # noqa: E402
import test_sessions_durability as D  # noqa: E402

SID = "dmg"
EVENTS = 100
READ_TIMEOUT_S = 8.0


def data_of(seq):
    return "event-%03d-%s" % (seq, "y" * (seq % 5))


def publish(srv, sid, data, query="durable=1"):
    r = H.http1_request(srv.host, srv.port, "POST", "/v1/sessions/%s/events?%s" % (sid, query),
                        body=data.encode())
    H.check_eq(r.status, 200, "publish to %s" % sid)
    return r.json()["seq"]


def read_all(srv, sid, count):
    """Events and gaps of sid from seq 1 until count items arrived; fails
    when they do not within READ_TIMEOUT_S (a reader that spins never
    finishes)."""
    s = D.SseStream(srv.host, srv.port, "/v1/sessions/%s/events?from=1" % sid)
    try:
        s.read_until(count, time.monotonic() + READ_TIMEOUT_S * H.slow_factor())
        s.read_until(count + 1, time.monotonic() + 0.3)
        return list(s.events)
    finally:
        s.close()


def storage(srv):
    return srv.health()["storage"]


def kill(srv):
    srv.send_signal(signal.SIGKILL)
    H.check_eq(srv.wait(10), -signal.SIGKILL, "killed")


def flip(path, offset):
    with open(path, "rb") as f:
        before = f.read()
    D.flip_bit(path, offset)
    return before


def quarantine(data_dir, first_seq, offset):
    return os.path.join(data_dir, SID, "%020d.seg.quarantine-%d" % (first_seq, offset))


def expect_log(srv, got, gap, what):
    """got holds seqs 1..EVENTS but gap, and one sluice.gap naming gap."""
    want_seqs = [s for s in range(1, EVENTS + 1) if s not in gap]
    seqs = [e[0] for e in got if e[1] != "sluice.gap"]
    H.check_eq(seqs, want_seqs, what + ": intact records served")
    for e in got:
        if e[1] != "sluice.gap":
            H.check_eq(e[2], data_of(e[0]), what + ": data of seq %d" % e[0])
    gaps = [json.loads(e[2]) for e in got if e[1] == "sluice.gap"]
    if gap:
        H.check_eq(gaps, [{"from": min(gap), "to": max(gap)}], what + ": gap for the damage")
    else:
        H.check_eq(gaps, [], what + ": no gap")


def run_kill_case(tmp, name, where):
    """where(spans) -> (offset to flip, seqs lost, quarantine (first_seq,
    offset, bytes) or None)."""
    data_dir = os.path.join(tmp, name)
    srv = D.server_on(data_dir, name="sluiced-%s-1" % name, expect_clean_exit=False)
    with srv:
        for seq in range(1, EVENTS + 1):
            H.check_eq(publish(srv, SID, data_of(seq)), seq, "publish %d" % seq)
        kill(srv)
    path = D.segment_path(data_dir, SID)
    spans = D.record_spans(path)
    off, lost, q = where(spans)
    before = flip(path, off)
    with D.server_on(data_dir, name="sluiced-%s-2" % name) as srv:
        got = read_all(srv, SID, EVENTS - len(lost) + (1 if lost else 0))
        expect_log(srv, got, lost, name)
        st = storage(srv)
        H.check(st.get("damaged_segments", 0) >= 1, name + ": damage in /health: %r" % st)
        qpath = quarantine(data_dir, *q[:2])
        H.check(os.path.exists(qpath), name + ": quarantine file %s" % qpath)
        with open(qpath, "rb") as f:
            cut = f.read()
        want = bytearray(before[q[1]:q[1] + q[2]])
        want[off - q[1]] ^= 0x10
        H.check_eq(cut, bytes(want), name + ": quarantine holds the cut bytes")
        H.check_eq(st.get("quarantined_bytes"), q[2], name + ": quarantined_bytes")
        H.check(srv.log_lines("segment damage quarantined"), name + ": damage logged")
        H.check_eq(publish(srv, SID, "after"), EVENTS + 1, name + ": next seq, none reused")
    return data_dir


def test_kill_flip_record_50(tmp):
    def where(spans):
        off, size = spans[49]
        return off + 14, [50], (1, off, size)
    run_kill_case(tmp, "kill-rec50", where)


def test_kill_flip_header(tmp):
    def where(spans):
        return 20, [], (1, 0, D.SEGMENT_HEADER_BYTES)
    run_kill_case(tmp, "kill-header", where)


def test_kill_flip_first_record(tmp):
    def where(spans):
        off, size = spans[0]
        return off + 20, [1], (1, off, size)
    run_kill_case(tmp, "kill-first", where)


def check_cmd(data_dir, *extra):
    r = H.run([H.sluiced_path(), "--check", data_dir] + list(extra), timeout=30 * H.slow_factor())
    return r.returncode, r.stdout.decode(), r.stderr.decode()


def test_check_lists_and_repairs(tmp):
    data_dir = os.path.join(tmp, "check")
    with D.server_on(data_dir, name="sluiced-check-1") as srv:
        for seq in range(1, EVENTS + 1):
            H.check_eq(publish(srv, SID, data_of(seq)), seq, "publish %d" % seq)
    code, out, _ = check_cmd(data_dir)
    H.check_eq(code, 0, "--check of a clean dir: " + out)
    H.check("segment session=%s file=%020d.seg records=%d first_seq=1 last_seq=%d"
            % (SID, 1, EVENTS, EVENTS) in out, "--check lists the segment: " + out)
    path = D.segment_path(data_dir, SID)
    off, size = D.record_spans(path)[49]
    flip(path, off + 14)
    code, out, _ = check_cmd(data_dir)
    H.check_eq(code, 1, "--check finds the damage: " + out)
    H.check("damage session=%s file=%020d.seg offset=%d bytes=%d reason=corrupt"
            % (SID, 1, off, size) in out, "--check names the damage: " + out)
    H.check("action=rewrite" in out, "--check says what a repair does: " + out)
    H.check(not os.path.exists(quarantine(data_dir, 1, off)), "--check alone changes nothing")
    code, out, _ = check_cmd(data_dir, "--repair")
    H.check_eq(code, 0, "--check --repair: " + out)
    H.check(os.path.exists(quarantine(data_dir, 1, off)), "--repair quarantined the damage")
    code, out, _ = check_cmd(data_dir)
    H.check_eq(code, 0, "--check after --repair: " + out)
    H.check("records=%d" % (EVENTS - 1) in out, "the other records are kept: " + out)
    H.check_eq(check_cmd(os.path.join(tmp, "none"))[0], 2, "--check of a missing dir")
    H.check_eq(check_cmd(data_dir, "--bogus")[0], 2, "--check with a bad flag")
    with D.server_on(data_dir, name="sluiced-check-2") as srv:
        got = read_all(srv, SID, EVENTS)
        expect_log(srv, got, [50], "after --repair")


def test_sigterm_flip_record_50_reader_never_spins(tmp):
    data_dir = os.path.join(tmp, "term")
    with D.server_on(data_dir, name="sluiced-term-1") as srv:
        for seq in range(1, EVENTS + 1):
            H.check_eq(publish(srv, SID, data_of(seq)), seq, "publish %d" % seq)
    path = D.segment_path(data_dir, SID)
    off, _ = D.record_spans(path)[49]
    flip(path, off + 14)
    with D.server_on(data_dir, name="sluiced-term-2") as srv:
        t0 = time.monotonic()
        got = read_all(srv, SID, EVENTS)
        expect_log(srv, got, [50], "sigterm")
        reads = storage(srv)["catchup_reads"]
        H.check(reads < 50, "sigterm: %d catch-up reads for one reader" % reads)
        st = storage(srv)
        H.check(st.get("damage_resyncs", 0) >= 1, "sigterm: damage in /health: %r" % st)
        H.check_eq(publish(srv, SID, "after"), EVENTS + 1, "sigterm: next seq")
        print("  sigterm: read in %.2fs with %d catch-up reads" % (time.monotonic() - t0, reads))
    # The damage seen at run time keeps the manifest from vouching for the
    # file again: the next start scans it and quarantines the record.
    with D.server_on(data_dir, name="sluiced-term-3") as srv:
        H.check(srv.log_lines("segment damage quarantined"), "sigterm: repaired at the next start")
        H.check(os.path.exists(quarantine(data_dir, 1, off)), "sigterm: quarantine file")
        got = read_all(srv, SID, EVENTS + 1)
        H.check_eq([e[0] for e in got if e[1] != "sluice.gap"][-2:], [EVENTS, EVENTS + 1],
                   "sigterm: the log after the repair")


def test_ephemeral_seqs_not_reused_after_kill(tmp):
    data_dir = os.path.join(tmp, "eph")
    with D.server_on(data_dir, name="sluiced-eph-1", expect_clean_exit=False) as srv:
        H.check_eq([publish(srv, "e", "l%d" % i) for i in (1, 2)], [1, 2], "logged")
        H.check_eq([publish(srv, "e", "x%d" % i, "ephemeral=1") for i in (3, 4, 5)], [3, 4, 5],
                   "ephemeral")
        kill(srv)
    with D.server_on(data_dir, name="sluiced-eph-2") as srv:
        seq = publish(srv, "e", "next")
        H.check(seq > 5, "after SIGKILL the next seq is %d: an ephemeral seq reused" % seq)
        got = read_all(srv, "e", 4)
        H.check_eq([(e[0], e[2]) for e in got if e[1] != "sluice.gap"],
                   [(1, "l1"), (2, "l2"), (seq, "next")], "logged events around the skip")
        H.check_eq([json.loads(e[2]) for e in got if e[1] == "sluice.gap"],
                   [{"from": 3, "to": seq - 1}], "the skipped seqs are one gap")


def test_logged_event_not_withheld_after_ephemeral_last(tmp):
    for how in ("term", "kill"):
        data_dir = os.path.join(tmp, "withheld-" + how)
        with D.server_on(data_dir, name="sluiced-wh-1", expect_clean_exit=how == "term") as srv:
            H.check_eq(publish(srv, "w", "logged"), 1, "logged")
            H.check_eq(publish(srv, "w", "eph", "ephemeral=1"), 2, "ephemeral")
            if how == "kill":
                kill(srv)
        with D.server_on(data_dir, name="sluiced-wh-2") as srv:
            got = read_all(srv, "w", 1)
            H.check_eq([(e[0], e[2]) for e in got if e[1] != "sluice.gap"], [(1, "logged")],
                       how + ": the logged event, without a new publish")


def main():
    cases = (test_kill_flip_record_50, test_kill_flip_header, test_kill_flip_first_record,
             test_sigterm_flip_record_50_reader_never_spins, test_check_lists_and_repairs,
             test_ephemeral_seqs_not_reused_after_kill,
             test_logged_event_not_withheld_after_ephemeral_last)
    return H.run_cases_in_tmp("test_recovery_damage", cases)


if __name__ == "__main__":
    sys.exit(main())
