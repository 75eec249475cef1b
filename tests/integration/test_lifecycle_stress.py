"""Randomized subscription-lifecycle stress, reproducible from its seed.

One single-threaded event loop drives a churning population of clients
against one sluiced (with an RPC listener and --session-idle short, so
sessions hibernate whenever they go quiet):

- HTTP/1.1 SSE subscribers (raw sockets): subscribe from seq 1, from a
  seq, or live; leave politely, by RST, or right after sending the request;
- HTTP/2 clients (python h2): several subscription streams per connection,
  RST_STREAM of open streams, HEADERS + RST_STREAM in one write, GOAWAY,
  abrupt close;
- msgpack-RPC clients (raw python3-msgpack): subscribe, unsubscribe,
  subscribe + unsubscribe pipelined in one write, subscribe then close;
- per session, a controller publishing over RPC (every answer's seq is
  recorded per session incarnation), pausing (the session hibernates; one
  "cold" session is rarely subscribed, so it hibernates mid-run),
  deleting the session (DELETE /v1/sessions/{id}, with subscribes and
  publishes sent to race it) and recreating it (PUT or first publish).

Invariants:
- every request is answered: each publish (also one racing a DELETE, which
  may get a seq or an error), subscribe, PUT and DELETE;
- the server never dies; on SIGTERM at the end it exits 0 and its stderr
  holds no sanitizer report (the harness checks both);
- every event any subscription receives belongs to the subscribed session
  and one incarnation only, its seq is the one the publish was answered
  with, and seqs arrive in order, each once, without holes; no gap notice
  (nothing is ephemeral and nothing is retired);
- a surviving subscriber (subscribed while its session existed and stayed,
  still subscribed when its session is about to be deleted or the run
  ends) has every acknowledged event of its incarnation from its start
  position up to the last one: from=1 all of them, from=K exactly K..last,
  live at least every event published after its subscription was answered;
  it is never ended by the server while its session exists (a 503 /
  "overloaded" refusal is a documented, retryable answer: that subscriber
  never joined);
- a subscription whose incarnation was deleted ends cleanly (last chunk,
  END_STREAM, RPC "end");
- when every client has left: /health connections, streams and
  subscribers return to the starting values, every session hibernates,
  the process's open fds return to the starting count (+FD_TOLERANCE),
  memory.chunk_bytes_live returns to its starting value (+CHUNK_TOLERANCE)
  and, in non-sanitizer builds, RSS stays within RSS_TOLERANCE of the
  start (receive buffers are touched in rotation, so RSS legitimately
  grows by up to --recv-buffers x 16 KiB).

Env: SLUICE_STRESS_SEED (replay), SLUICE_STRESS_DURATION (seconds of
churn, default 12), SLUICE_STRESS_CLIENTS (clients over the run, default
180), SLUICE_STRESS_CONCURRENCY (clients at once, default 60),
SLUICE_STRESS_SESSIONS (default 6), SLUICE_STRESS_SKIP (moves to leave
out when narrowing a failure down; listed at SKIP below).
"""

import collections
import heapq
import json
import os
import random
import selectors
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sluice_harness as H  # noqa: E402
import stress_lib as L  # noqa: E402

H.require_rpc()
H.h2_modules()
import h2.config  # noqa: E402
import h2.connection  # noqa: E402
import h2.events  # noqa: E402
import h2.exceptions  # noqa: E402
import msgpack  # noqa: E402

SEED = L.seed("SLUICE_STRESS_SEED")
DURATION_S = L.env_float("SLUICE_STRESS_DURATION", 12.0)
TOTAL_CLIENTS = L.env_int("SLUICE_STRESS_CLIENTS", 180)
CONCURRENCY = L.env_int("SLUICE_STRESS_CONCURRENCY", 60)
NSESSIONS = L.env_int("SLUICE_STRESS_SESSIONS", 6)
SESSION_IDLE_S = 0.3        # --session-idle: quiet sessions hibernate quickly
PUBLISH_INFLIGHT = 4        # unanswered publishes per session
PUBLISH_GAP_S = (0.005, 0.05)
QUIET_S = (0.5, 1.2)        # a pause longer than SESSION_IDLE_S
DELETE_EVERY_S = 3.0        # mean time between a session's deletes
CATCHUP_TIMEOUT_S = 20.0    # surviving subscribers must catch up within this
ANSWER_TIMEOUT_S = 10.0     # a publish sent with a DELETE must be answered within this
SETTLE_TIMEOUT_S = 30.0     # resources must return to baseline within this
FD_TOLERANCE = 2
CHUNK_TOLERANCE = 64 * 1024
RSS_TOLERANCE = 64 << 20
MAX_ERRORS_SHOWN = 25
# SLUICE_STRESS_SKIP: comma-separated moves to leave out when narrowing a
# failure down: h2_hdr_rst (HEADERS + RST_STREAM in one write), rpc_pipe
# (subscribe + unsubscribe in one write), race_delete (subscribes sent with
# a DELETE), early_close (leaving a subscription before its answer),
# unstable (subscribing while the session is being deleted or created),
# race_publish (publishes sent with a DELETE), delete, quiet; "known"
# stands for the first five.
SKIP = set(filter(None, os.environ.get("SLUICE_STRESS_SKIP", "").split(",")))
if "known" in SKIP:
    SKIP |= {"h2_hdr_rst", "rpc_pipe", "race_delete", "early_close", "unstable"}
FINAL = [False]             # set when every client is told to leave at once


def pick_session(ctls):
    """A session to subscribe to (a stable one when "unstable" is skipped)."""
    if "unstable" in SKIP:
        ctls = [c for c in ctls if c.stable()] or ctls[:1]
    # the last session is a cold one: rarely subscribed, so it hibernates
    # during the run and subscribes meet it waking up
    return RNG.choices(ctls, weights=[0.1 if c.cold else 1.0 for c in ctls])[0]


def later(delay, fn):
    """fn() after delay; retried while it answers False (not yet)."""
    def attempt():
        if fn() is False:
            LOOP.at(0.05, attempt)
    LOOP.at(delay, attempt)


def must_wait(subs):
    """With early_close skipped: a client waits for its subscribe answers
    before it leaves."""
    return "early_close" in SKIP and not FINAL[0] and any(s.confirm_t is None for s in subs)
CANCEL = 8                  # HTTP/2 CANCEL error code

RNG = random.Random(SEED)
ERRORS = []
STATS = collections.Counter()


TRACE = collections.deque(maxlen=20000)   # actions: the last ones are shown when the server
                                          # dies, a failing subscription's connection's ones
                                          # with its failure
T0 = time.monotonic()


def error(what):
    ERRORS.append(what)


def trace(what):
    TRACE.append("%8.3f %s" % (time.monotonic() - T0, what))


def note(key, what):
    STATS[key] += 1
    trace(what)


# -- the loop ---------------------------------------------------------------------

class Loop:
    """selectors + a timer heap; everything runs on this one thread."""

    def __init__(self):
        self.sel = selectors.DefaultSelector()
        self.timers = []
        self.tick = 0

    def at(self, delay, fn):
        self.tick += 1
        heapq.heappush(self.timers, (time.monotonic() + delay, self.tick, fn))

    def run_once(self, max_wait=0.02):
        now = time.monotonic()
        wait = max_wait
        if self.timers:
            wait = max(0.0, min(wait, self.timers[0][0] - now))
        for key, mask in self.sel.select(wait):
            conn = key.data
            if mask & selectors.EVENT_WRITE:
                conn.flush()
            if mask & selectors.EVENT_READ and not conn.closed:
                conn.readable()
        now = time.monotonic()
        while self.timers and self.timers[0][0] <= now:
            _, _, fn = heapq.heappop(self.timers)
            fn()


LOOP = Loop()


class Conn:
    """A non-blocking client socket registered with the loop."""
    ids = 0

    def __init__(self, addr, rcvbuf=None):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.settimeout(10.0)
        s.connect(addr)
        s.setblocking(False)
        self.sock = s
        Conn.ids += 1
        self.label = "c%d" % Conn.ids
        self.out = b""
        self.closed = False
        self.eof = False
        self.events = selectors.EVENT_READ
        LOOP.sel.register(s, self.events, self)

    def _want(self, events):
        if events != self.events and not self.closed:
            self.events = events
            LOOP.sel.modify(self.sock, events, self)

    def send(self, data):
        if self.closed:
            return
        self.out += data
        self.flush()

    def flush(self):
        while self.out and not self.closed:
            try:
                n = self.sock.send(self.out)
            except BlockingIOError:
                break
            except OSError:
                self.out = b""
                break
            self.out = self.out[n:]
        self._want(selectors.EVENT_READ | (selectors.EVENT_WRITE if self.out else 0))

    def readable(self):
        try:
            data = self.sock.recv(1 << 16)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.eof = True
            self.close("eof")
            self.on_eof()
            return
        self.on_data(data)

    def close(self, how="polite"):
        """polite: FIN; rst: SO_LINGER 0 so the server sees a reset."""
        if self.closed:
            return
        self.closed = True
        try:
            LOOP.sel.unregister(self.sock)
        except (KeyError, ValueError):
            pass
        if how == "rst":
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
        self.sock.close()

    def on_data(self, data):
        raise NotImplementedError

    def on_eof(self):
        pass


# -- sessions and their incarnations -------------------------------------------

class Incarnation:
    def __init__(self, number):
        self.number = number
        self.acks = {}          # idx -> seq
        self.sent_at = {}       # idx -> monotonic time the publish was sent
        self.next_idx = 0
        self.deleted = False


class SessionCtl:
    """Publishes to one session and deletes / recreates / idles it.

    States: gone (no incarnation; subscribes are 404), creating (first
    publish or PUT in flight), active, quiet (active, publishing paused so
    it hibernates), draining (no new publishes; waits for answers), verify
    (waits for surviving subscribers), deleting (DELETE in flight)."""

    def __init__(self, name, publisher, srv, cold=False):
        self.name = name
        self.cold = cold        # often quiet and rarely subscribed: hibernates mid-run
        self.publisher = publisher
        self.srv = srv
        self.incs = [Incarnation(0)]
        self.state = "gone"
        self.inflight = 0
        self.until = 0.0
        self.next_delete = time.monotonic() + RNG.expovariate(1.0 / DELETE_EVERY_S)
        self.verify_deadline = 0.0
        self.subs = []          # every Sub ever sent to this session

    @property
    def inc(self):
        return self.incs[-1]

    def stable(self):
        """Subscribes sent now surely reach the current incarnation."""
        return self.state in ("active", "quiet")

    def last_seq(self):
        return max(self.inc.acks.values(), default=0)

    def step(self, now, churning):
        st = self.state
        if st == "gone":
            if churning and now >= self.until:
                self._recreate()
        elif st in ("active", "quiet"):
            if churning and now >= self.next_delete and "delete" not in SKIP:
                self.state = "draining"
            elif st == "quiet":
                if now >= self.until:
                    self.state = "active"
            elif churning and RNG.random() < (0.05 if self.cold else 0.01) and "quiet" not in SKIP:
                self.state, self.until = "quiet", now + RNG.uniform(*QUIET_S)
                note("quiet_periods", "%s quiet" % self.name)
            elif self.inflight < PUBLISH_INFLIGHT and now >= self.until and churning:
                self.publish()
                self.until = now + RNG.uniform(*PUBLISH_GAP_S)
        if self.state == "draining" and self.inflight == 0:
            self.state = "verify"
            self.verify_deadline = now + CATCHUP_TIMEOUT_S * H.slow_factor()
        if self.state == "verify" and verify_survivors(self, now >= self.verify_deadline):
            self._delete()
        if self.state == "race_wait":
            self._race_settle(now)

    def publish(self):
        inc = self.inc
        idx = inc.next_idx
        inc.next_idx += 1
        data = "%s:%d:%d:%s" % (self.name, inc.number, idx, "x" * RNG.randrange(0, 200))
        inc.sent_at[idx] = time.monotonic()
        self.inflight += 1
        STATS["publishes"] += 1

        def answered(err, res):
            self.inflight -= 1
            if err is not None or not isinstance(res, int):
                error("publish %s inc %d idx %d: error %r result %r" % (self.name, inc.number, idx, err, res))
                return
            if res in inc.acks.values():
                error("publish %s inc %d: seq %d answered twice" % (self.name, inc.number, res))
            inc.acks[idx] = res
            if self.state == "creating":
                self.state = "active"
        self.publisher.call("publish", [self.name, "t", data], answered)

    def _recreate(self):
        self.incs.append(Incarnation(len(self.incs)))
        self.state = "creating"
        trace("%s recreate inc %d" % (self.name, self.inc.number))
        if RNG.random() < 0.5:
            def created(status, body):
                if status not in (200, 201):
                    error("PUT %s: status %r %r" % (self.name, status, body[:200]))
                self.state = "active"
            HttpCall(self.srv, "PUT", "/v1/sessions/" + self.name, created)
        else:
            self.publish()

    def _delete(self):
        self.state = "deleting"
        note("deletes", "%s DELETE inc %d" % (self.name, self.inc.number))
        inc = self.inc

        def deleted(status, body):
            if status != 204:
                error("DELETE %s: status %r %r" % (self.name, status, body[:200]))
            inc.deleted = True
            trace("%s DELETE answered %r" % (self.name, status))
            self.state = "race_wait"
        HttpCall(self.srv, "DELETE", "/v1/sessions/" + self.name, deleted)
        race_subscribes(self)
        self._race_publishes()

    def _race_publishes(self):
        """Publishes sent together with the DELETE. Each must be answered
        (a seq, or an error); one that lands after the DELETE creates a
        short-lived incarnation, removed by a second DELETE once every
        answer is in. Their events carry R for the incarnation."""
        self.racing = set()
        self.race_deadline = time.monotonic() + ANSWER_TIMEOUT_S * H.slow_factor()
        if "race_publish" in SKIP:
            return
        for k in range(RNG.randrange(0, 4)):
            data = "%s:R:%d:%s" % (self.name, k, "r" * RNG.randrange(0, 50))

            def answered(err, res, k=k):
                self.racing.discard(k)
                STATS["publishes_racing_delete_" + ("answered_seq" if err is None else "refused")] += 1
            self.racing.add(k)
            self.publisher.call("publish", [self.name, "t", data], answered)
            note("publishes_racing_delete", "%s publish racing DELETE" % self.name)

    def _race_settle(self, now):
        """After the DELETE: waits for the racing publishes' answers, then
        deletes whatever incarnation they made."""
        if self.racing and now < self.race_deadline:
            return
        if self.racing:
            error("%s: %d publish(es) sent with a DELETE never answered (%.0fs)"
                  % (self.name, len(self.racing), ANSWER_TIMEOUT_S * H.slow_factor()))
            self.racing = set()
            SKIP.add("race_publish")        # reported once; later DELETEs go without, to stay short
        self.state = "deleting"

        def cleaned(status, body):
            if status not in (204, 404):
                error("second DELETE %s: status %r %r" % (self.name, status, body[:200]))
            self.state = "gone"
            self.until = time.monotonic() + RNG.uniform(0.0, 0.5)
            self.next_delete = time.monotonic() + RNG.expovariate(1.0 / DELETE_EVERY_S)
        HttpCall(self.srv, "DELETE", "/v1/sessions/" + self.name, cleaned)


# -- subscriptions ---------------------------------------------------------------

class Sub:
    """One subscription on any of the three faces."""
    ids = 0

    def __init__(self, ctl, kind, from_mode, conn):
        Sub.ids += 1
        self.id = Sub.ids
        self.ctl = ctl
        self.kind = kind
        self.conn = conn.label
        self.from_mode = from_mode          # 1, K or "live"
        self.tracked = ctl.stable()
        self.inc_at_send = ctl.inc.number if self.tracked else None
        self.sent_t = time.monotonic()
        self.confirm_t = None
        self.status = None                  # 200 / 404 / "ok" / error code
        self.events = []                    # (seq, inc, idx)
        self.inc_seen = None
        self.ended = False                  # the server ended it cleanly
        self.broken = None                  # reset / connection lost, with why
        self.left = False                   # the client left it
        ctl.subs.append(self)
        note("subscribes_" + kind, "%s sent" % self.desc())

    def desc(self):
        return "sub#%d %s@%s %s from=%s%s" % (self.id, self.kind, self.conn, self.ctl.name, self.from_mode,
                                           " tracked inc %d" % self.inc_at_send if self.tracked else "")

    def live(self):
        return not (self.ended or self.broken or self.left)

    def confirmed(self, status):
        self.status = status
        self.confirm_t = time.monotonic()
        trace("%s answered %r" % (self.desc(), status))
        if status not in (200, "ok"):
            self.ended = True
            if status in (503, "overloaded"):
                # documented and retryable (a full mailbox or subscriber
                # table, a session ending as the SUBSCRIBE arrived): the
                # subscriber never joined, so it is no survivor
                STATS["subscribes_overloaded"] += 1
                self.tracked = False
            elif self.tracked:
                error("%s: subscribe refused (%r) while its session existed" % (self.desc(), status))

    def event(self, seq, etype, data):
        STATS["events_received"] += 1
        if etype in ("sluice.gap", "gap"):
            error("%s: gap notice %r (nothing is ephemeral or retired)" % (self.desc(), data))
            return
        try:
            name, inc, idx, _ = data.split(":", 3)
            inc, idx = (None if inc == "R" else int(inc)), int(idx)
        except ValueError:
            error("%s: event %r has foreign data %r" % (self.desc(), seq, data[:80]))
            return
        if name != self.ctl.name:
            error("%s: event seq %d of session %s" % (self.desc(), seq, name))
            return
        if inc is None:
            pass                            # a publish that raced a DELETE
        elif self.inc_seen is None:
            self.inc_seen = inc
            if self.tracked and inc != self.inc_at_send:
                error("%s: first event from incarnation %d" % (self.desc(), inc))
        elif inc != self.inc_seen:
            error("%s: events of incarnations %d and %d on one stream" % (self.desc(), self.inc_seen, inc))
        if not self.events and isinstance(self.from_mode, int) and seq != self.from_mode:
            error("%s: first event is seq %d" % (self.desc(), seq))
        if self.events and seq != self.events[-1][0] + 1:
            error("%s: seq %d after %d (hole, repeat or reorder)" % (self.desc(), seq, self.events[-1][0]))
        self.events.append((seq, inc, idx))

    def end(self):
        self.ended = True
        trace("%s ended" % self.desc())

    def lost(self, why):
        if self.live():
            self.broken = why
            trace("%s lost: %s" % (self.desc(), why))

    def history(self):
        """How the subscription went, for failure reports."""
        if self.confirm_t is None:
            return "its subscribe was sent %.1fs ago and never answered" % (time.monotonic() - self.sent_t)
        return "subscribe answered %r %.2fs after it was sent%s" % (
            self.status, self.confirm_t - self.sent_t,
            " (subscription id %r)" % self.rpc_id if getattr(self, "rpc_id", None) else "")

    def incarnation(self):
        if self.inc_seen is not None:
            return self.inc_seen
        return self.inc_at_send


def expected_range(sub, inc):
    """(first, last) seqs a surviving subscriber must hold now."""
    last = max(inc.acks.values(), default=0)
    if sub.from_mode == "live":
        after = [inc.acks[i] for i, t in inc.sent_at.items()
                 if i in inc.acks and sub.confirm_t is not None and t > sub.confirm_t]
        first = min(after) if after else last + 1
        if sub.events:
            first = min(first, sub.events[0][0])
        return first, last
    return sub.from_mode, last


def verify_survivors(ctl, give_up):
    """True once every surviving subscriber of ctl's current incarnation
    holds what it must (or give_up, which records what is missing)."""
    inc = ctl.inc
    pending = []
    for sub in ctl.subs:
        if not sub.tracked or sub.inc_at_send != inc.number or sub.left:
            continue
        if sub.ended or sub.broken:
            if not sub.__dict__.get("reported"):
                sub.reported = True
                error("%s: ended by the server (%s) while its session existed"
                      % (sub.desc(), sub.broken or "clean end"))
            continue
        if sub.confirm_t is None:
            pending.append(sub)
            continue
        first, last = expected_range(sub, inc)
        got = [s for s, _, _ in sub.events]
        if last < first:
            continue
        if got and got[-1] == last and got[0] <= first:
            continue
        pending.append(sub)
    if not pending:
        STATS["verified_incarnations"] += 1
        STATS["verified_subscribers"] += sum(1 for s in ctl.subs if s.tracked and s.inc_at_send == inc.number and s.live())
        return True
    if give_up:
        for sub in pending[:10]:
            first, last = expected_range(sub, inc)
            got = [s for s, _, _ in sub.events]
            error("%s: after %.0fs holds %d events (%s..%s), expected %d..%d; %s; "
                  "its connection's actions:\n      %s"
                  % (sub.desc(), CATCHUP_TIMEOUT_S * H.slow_factor(), len(got),
                     got[0] if got else "-", got[-1] if got else "-", first, last,
                     sub.history(), "\n      ".join(
                         [t for t in TRACE if "@%s " % sub.conn in t][-30:])))
        return True
    return False


def pick_from(ctl):
    r = RNG.random()
    last = ctl.last_seq() if ctl.stable() else 0
    if r < 0.45:
        return 1
    if r < 0.7 and last > 1:
        return RNG.randrange(1, last + 1)
    return "live"


def sse_path(ctl, from_mode):
    q = "" if from_mode == "live" and RNG.random() < 0.5 else "?from=%s" % from_mode
    return "/v1/sessions/%s/events%s" % (ctl.name, q)


class SseText(H.ChunkedSseParser):
    def __init__(self):
        self._init_parser()
        self.taken = 0

    def feed_text(self, data):
        self._parse(data)
        return self._new()

    def feed_chunked(self, data):
        self.raw += data
        self._parse(self._dechunk())
        return self._new()

    def _new(self):
        out = self.events[self.taken:]
        self.taken = len(self.events)
        return out


# -- HTTP/1.1 ------------------------------------------------------------------------

class HttpCall(Conn):
    """One request with Connection: close; fn(status, body) on completion."""

    def __init__(self, srv, method, path, fn, body=b""):
        super().__init__((srv.host, srv.port))
        self.fn = fn
        self.buf = b""
        self.send(H.build_http1(method, path, srv.authority(), body=body, close=True))

    def on_data(self, data):
        self.buf += data

    def on_eof(self):
        head, _, body = self.buf.partition(b"\r\n\r\n")
        try:
            status = int(head.split(b" ", 2)[1])
        except (IndexError, ValueError):
            status = None
        self.fn(status, body)


class SseClient(Conn):
    """One HTTP/1.1 SSE subscription per connection."""
    kind = "h1"

    def __init__(self, srv, ctl):
        super().__init__((srv.host, srv.port))
        self.sub = Sub(ctl, "h1", pick_from(ctl), self)
        self.head = b""
        self.parser = None
        self.send(H.build_http1("GET", sse_path(ctl, self.sub.from_mode), srv.authority()))
        flavor = RNG.random()
        if flavor < 0.15 and "early_close" not in SKIP:
            self.leave("rst" if RNG.random() < 0.5 else "polite")
            note("h1_close_at_once", "%s closed at once" % self.sub.desc())
        else:
            how = "rst" if RNG.random() < 0.4 else "polite"
            later(RNG.uniform(0.05, 3.0), lambda: self.leave(how))

    def leave(self, how):
        if must_wait([self.sub]) and not self.closed:
            return False
        if not self.closed:
            self.sub.left = self.sub.left or self.sub.live()
            self.close(how)

    def on_data(self, data):
        if self.parser is None:
            self.head += data
            if b"\r\n\r\n" not in self.head:
                return
            head, _, rest = self.head.partition(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            self.sub.confirmed(status)
            self.parser = SseText()
            if status != 200:
                return
            data = rest
        if self.sub.status != 200:
            return
        for ident, etype, text in self.parser.feed_chunked(data):
            self.sub.event(ident, etype, text)
        if self.parser.ended:
            self.sub.end()

    def on_eof(self):
        if self.sub.status == 200 and not (self.parser and self.parser.ended):
            self.sub.lost("connection closed without the last chunk")


# -- HTTP/2 --------------------------------------------------------------------------

class H2Client(Conn):
    """Several subscription streams on one HTTP/2 connection."""
    kind = "h2"

    def __init__(self, srv, sessions):
        super().__init__((srv.host, srv.port))
        self.srv = srv
        self.sessions = sessions
        cfg = h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        self.h2 = h2.connection.H2Connection(config=cfg)
        self.h2.initiate_connection()
        self.streams = {}       # stream id -> (Sub, SseText)
        self.push()
        t = 0.0
        for _ in range(RNG.randrange(1, 7)):
            t += RNG.uniform(0.0, 0.6)
            op = RNG.choice(("sub", "sub", "sub", "rst", "hdr_rst", "hdr_rst_burst"))
            if "h2_hdr_rst" in SKIP and op.startswith("hdr_rst"):
                op = "sub"
            LOOP.at(t, lambda op=op: self.op(op))
        end = RNG.choice(("goaway", "rst", "polite"))
        later(t + RNG.uniform(0.05, 2.0), lambda: self.leave(end))

    def push(self):
        out = self.h2.data_to_send()
        if out:
            self.send(out)

    def _headers(self, sid, ctl, from_mode):
        self.h2.send_headers(sid, [(":method", "GET"), (":path", sse_path(ctl, from_mode)),
                                   (":scheme", "http"), (":authority", self.srv.authority())],
                             end_stream=True)

    def op(self, op):
        if self.closed:
            return
        try:
            if op == "sub":
                ctl = pick_session(self.sessions)
                sid = self.h2.get_next_available_stream_id()
                sub = Sub(ctl, "h2", pick_from(ctl), self)
                self._headers(sid, ctl, sub.from_mode)
                self.streams[sid] = (sub, SseText())
            elif op == "rst":
                live = [sid for sid, (s, _) in self.streams.items() if s.live()
                        and (s.confirm_t is not None or "early_close" not in SKIP)]
                if live:
                    sid = RNG.choice(live)
                    self.streams[sid][0].left = True
                    self.h2.reset_stream(sid, CANCEL)
                    note("h2_rst", "%s RST_STREAM %d" % (self.streams[sid][0].desc(), sid))
            else:
                for _ in range(1 if op == "hdr_rst" else RNG.randrange(2, 6)):
                    ctl = pick_session(self.sessions)
                    sid = self.h2.get_next_available_stream_id()
                    sub = Sub(ctl, "h2", pick_from(ctl), self)
                    sub.left = True
                    self._headers(sid, ctl, sub.from_mode)
                    self.h2.reset_stream(sid, CANCEL)
                    self.streams[sid] = (sub, SseText())
                    note("h2_headers_rst_one_write", "%s HEADERS+RST_STREAM %d" % (sub.desc(), sid))
        except (h2.exceptions.ProtocolError, h2.exceptions.StreamClosedError):
            return
        self.push()

    def leave(self, how):
        if must_wait([s for s, _ in self.streams.values()]) and not self.closed:
            return False
        if self.closed:
            return
        for sub, _ in self.streams.values():
            sub.left = sub.left or sub.live()
        if how == "goaway":
            try:
                self.h2.close_connection()
                self.push()
            except h2.exceptions.ProtocolError:
                pass
        note("h2_leave_" + how, "h2@%s with %d streams leaves: %s" % (self.label, len(self.streams), how))
        self.close("rst" if how == "rst" else "polite")

    def on_data(self, data):
        try:
            evs = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError as e:
            error("h2: server sent invalid HTTP/2: %s" % e)
            self.close("rst")
            return
        E = h2.events
        for ev in evs:
            st = self.streams.get(getattr(ev, "stream_id", None))
            if isinstance(ev, E.ResponseReceived) and st:
                status = int(dict(ev.headers)[":status"])
                st[0].confirmed(status)
            elif isinstance(ev, E.DataReceived):
                self.h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                if st and st[0].status == 200:
                    for ident, etype, text in st[1].feed_text(ev.data):
                        st[0].event(ident, etype, text)
            elif isinstance(ev, E.StreamEnded) and st:
                st[0].end()
            elif isinstance(ev, E.StreamReset) and st:
                st[0].lost("RST_STREAM %d" % ev.error_code)
            elif isinstance(ev, E.ConnectionTerminated):
                for sub, _ in self.streams.values():
                    sub.lost("GOAWAY %d" % ev.error_code)
        self.push()

    def on_eof(self):
        for sub, _ in self.streams.values():
            sub.lost("connection closed")


# -- msgpack-RPC ---------------------------------------------------------------------

class RpcConn(Conn):
    """msgpack-RPC client: calls with callbacks, notifications to subs."""

    def __init__(self, addr, name="rpc"):
        super().__init__(addr)
        self.name = name
        self.unpacker = msgpack.Unpacker(raw=False)
        self.next_msgid = 1
        self.pending = {}
        self.subs = {}          # subscription id (from the answer) -> Sub

    def request(self, method, params):
        msgid = self.next_msgid
        self.next_msgid += 1
        return msgid, msgpack.packb([0, msgid, method, params], use_bin_type=True)

    def call(self, method, params, fn):
        msgid, data = self.request(method, params)
        self.pending[msgid] = fn
        self.send(data)
        return msgid

    def on_data(self, data):
        self.unpacker.feed(data)
        for msg in self.unpacker:
            if msg[0] == 1:
                fn = self.pending.pop(msg[1], None)
                if fn is None:
                    error("%s: answer to unknown msgid %r" % (self.name, msg[1]))
                else:
                    fn(msg[2], msg[3])
            elif msg[0] == 2:
                self.notification(msg[1], msg[2])

    def notification(self, method, params):
        sub = self.subs.get(params[0])
        if sub is None:
            error("%s: notification %r for unknown subscription %r" % (self.name, method, params[0]))
            return
        if method == "event":
            data = params[4]
            sub.event(params[2], params[3], data.decode("utf-8") if isinstance(data, bytes) else data)
        elif method == "gap":
            sub.event(None, "gap", repr(params[1:]))
        elif method == "end":
            sub.end()

    def on_eof(self):
        for sub in self.subs.values():
            sub.lost("connection closed")
        if self.pending and self.name == "publisher":
            error("publisher connection closed with %d answers pending" % len(self.pending))


class RpcClient(RpcConn):
    kind = "rpc"

    def __init__(self, addr, sessions):
        super().__init__(addr, "rpc client")
        self.sessions = sessions
        self.open_subscribes = 0    # subscribe answers not yet in
        self.sent_subs = []         # every Sub sent here, answered or not
        self.sub_count = 0          # the highest subscription id answered: the next is
                                    # (usually) one above, which a pipelined unsubscribe
                                    # names; a wrong guess only unsubscribes nothing
        t = 0.0
        for _ in range(RNG.randrange(1, 7)):
            t += RNG.uniform(0.0, 0.6)
            op = RNG.choice(("sub", "sub", "sub", "unsub", "pipe", "pipe", "pipe_close"))
            if "rpc_pipe" in SKIP and op.startswith("pipe"):
                op = "sub"
            LOOP.at(t, lambda op=op: self.op(op))
        end = RNG.choice(("rst", "polite"))
        later(t + RNG.uniform(0.05, 2.0), lambda: self.leave(end))

    def subscribe(self, ctl, from_mode=None, sub=None):
        sub = sub or Sub(ctl, "rpc", from_mode if from_mode is not None else pick_from(ctl), self)
        self.sent_subs.append(sub)
        self.open_subscribes += 1

        def answered(err, res):
            self.open_subscribes -= 1
            if err is None:
                self.sub_count = max(self.sub_count, res)
                self.subs[res] = sub
                sub.rpc_id = res
                sub.confirmed("ok")
            else:
                sub.confirmed(err[0] if isinstance(err, list) and err else repr(err))
        frm = "live" if sub.from_mode == "live" else sub.from_mode
        return sub, self.request("subscribe", [ctl.name, frm]), answered

    def op(self, op):
        if self.closed:
            return
        ctl = pick_session(self.sessions)
        if op in ("pipe", "pipe_close") and self.open_subscribes == 0:
            # subscribe and unsubscribe of the id it will get, in one write
            sub, (msgid, data), fn = self.subscribe(ctl)
            sub.left = True
            self.pending[msgid] = fn
            umsgid, udata = self.request("unsubscribe", [self.sub_count + 1])
            self.pending[umsgid] = lambda err, res: None
            self.send(data + udata)
            note("rpc_pipelined_sub_unsub", "%s + unsubscribe %d in one write" % (sub.desc(), self.sub_count + 1))
            if op == "pipe_close":
                self.leave(RNG.choice(("rst", "polite")))
            return
        if op == "unsub":
            live = [s for s in self.subs.items() if s[1].live()]
            if live:
                rid, sub = RNG.choice(live)
                sub.left = True
                self.call("unsubscribe", [rid], lambda err, res: None)
                note("rpc_unsub", "%s unsubscribe %d" % (sub.desc(), rid))
                return
        sub, (msgid, data), fn = self.subscribe(ctl)
        self.pending[msgid] = fn
        self.send(data)

    def leave(self, how):
        if "early_close" in SKIP and not FINAL[0] and self.open_subscribes and not self.closed:
            return False
        if self.closed:
            return
        for sub in self.sent_subs:
            sub.left = sub.left or sub.live()
        note("rpc_leave_" + how, "rpc@%s with %d subs leaves: %s" % (self.label, len(self.subs), how))
        self.close(how)

    def on_eof(self):
        for sub in self.sent_subs:
            sub.lost("connection closed")


def race_subscribes(ctl):
    """Subscribes sent together with a DELETE of their session."""
    if "race_delete" in SKIP:
        return
    for c in list(CLIENTS):
        if c.closed or RNG.random() > 0.3:
            continue
        if isinstance(c, RpcClient):
            sub, (msgid, data), fn = c.subscribe(ctl, 1)
            c.pending[msgid] = fn
            c.send(data)
        elif isinstance(c, H2Client):
            try:
                sid = c.h2.get_next_available_stream_id()
                sub = Sub(ctl, "h2", 1, c)
                c._headers(sid, ctl, 1)
                c.streams[sid] = (sub, SseText())
                c.push()
            except h2.exceptions.ProtocolError:
                continue
        note("subscribes_racing_delete", "racing subscribe")


CLIENTS = []


# -- resources -------------------------------------------------------------------------

def snapshot(srv):
    h = srv.health(timeout=10.0)
    return {"connections": h["connections"], "streams": h["streams"],
            "subscribers": h["subscribers"], "live_sessions": h["sessions"]["live"],
            "fds": srv.fd_count(), "rss": srv.proc_status("VmRSS") * 1024,
            "chunk_bytes_live": h["memory"]["chunk_bytes_live"]}


def settled(srv, base):
    """Which resources are not back at the baseline yet ([] when all are)."""
    now = snapshot(srv)
    bad = []
    for key in ("connections", "streams", "subscribers"):
        if now[key] > base[key]:
            bad.append("%s %d (baseline %d)" % (key, now[key], base[key]))
    if now["live_sessions"]:
        bad.append("%d sessions not hibernated" % now["live_sessions"])
    if now["fds"] > base["fds"] + FD_TOLERANCE:
        bad.append("fds %d (baseline %d + %d)" % (now["fds"], base["fds"], FD_TOLERANCE))
    if now["chunk_bytes_live"] > base["chunk_bytes_live"] + CHUNK_TOLERANCE:
        bad.append("chunk_bytes_live %d (baseline %d + %d)"
                   % (now["chunk_bytes_live"], base["chunk_bytes_live"], CHUNK_TOLERANCE))
    if not H.sanitizer_build() and now["rss"] > base["rss"] + RSS_TOLERANCE:
        bad.append("rss %d (baseline %d + %d)" % (now["rss"], base["rss"], RSS_TOLERANCE))
    return bad, now


# -- the run -----------------------------------------------------------------------------

def check_alive(srv):
    if not srv.alive():
        raise H.TestFailure("sluiced died (exit %r) during the run; the last client actions:\n  %s\n"
                            "stderr tail:\n%s" % (srv.proc.returncode, "\n  ".join(list(TRACE)[-80:]),
                                                   srv.stderr_text()[-6000:]))


def spawn(srv, rpc_addr, ctls):
    r = RNG.random()
    if r < 0.35:
        c = SseClient(srv, pick_session(ctls))
    elif r < 0.65:
        c = H2Client(srv, ctls)
    else:
        c = RpcClient(rpc_addr, ctls)
    CLIENTS.append(c)
    STATS["clients"] += 1


def churn(srv, rpc_addr, ctls):
    try:
        _churn(srv, rpc_addr, ctls)
    except OSError as e:      # a refused connect: the server is gone
        check_alive(srv)
        raise H.TestFailure("connecting to sluiced failed: %r" % e)


def _churn(srv, rpc_addr, ctls):
    start = time.monotonic()
    end = start + DURATION_S
    spawned = 0
    next_alive_check = 0.0
    while True:
        now = time.monotonic()
        churning = now < end
        CLIENTS[:] = [c for c in CLIENTS if not c.closed]
        if churning and spawned < TOTAL_CLIENTS:
            due = min(TOTAL_CLIENTS, int(TOTAL_CLIENTS * (now - start) / (DURATION_S * 0.8)) + 1)
            while spawned < due and len(CLIENTS) < CONCURRENCY:
                spawn(srv, rpc_addr, ctls)
                spawned += 1
        for ctl in ctls:
            ctl.step(now, churning)
        if now >= next_alive_check:
            check_alive(srv)
            sessions = srv.health(timeout=10.0 * H.slow_factor())["sessions"]
            STATS["hibernated_max"] = max(STATS["hibernated_max"], sessions["hibernated"])
            next_alive_check = now + 0.5
        if not churning and all(c.state in ("active", "quiet", "gone") and c.inflight == 0 for c in ctls):
            return
        if now > end + 60 * H.slow_factor():
            raise H.TestFailure("sessions did not come to rest: %s"
                                % [(c.name, c.state, c.inflight) for c in ctls])
        LOOP.run_once()


def final_verify(srv, ctls):
    """Every still-open surviving subscriber holds its incarnation's events."""
    for ctl in ctls:
        if ctl.state == "gone":
            continue
        ctl.state = "verify"
        ctl.verify_deadline = time.monotonic() + CATCHUP_TIMEOUT_S * H.slow_factor()
    while any(c.state == "verify" for c in ctls):
        for ctl in ctls:
            if ctl.state == "verify" and verify_survivors(ctl, time.monotonic() >= ctl.verify_deadline):
                ctl.state = "active"
        check_alive(srv)
        LOOP.run_once()


def check_deleted_streams_ended(ctls):
    """Subscriptions on a deleted incarnation that the client kept must have
    been ended by the server. Runs after every client connection had time
    to read what was sent."""
    for ctl in ctls:
        for sub in ctl.subs:
            inc = sub.incarnation()
            if inc is None or sub.status not in (200, "ok") or not sub.live():
                continue
            if ctl.incs[inc].deleted:
                error("%s: incarnation %d deleted, but the stream did not end" % (sub.desc(), inc))


def check_acks(ctls):
    """Per incarnation: answered seqs are 1..n, each once; every received
    event carries the seq its publish was answered with."""
    for ctl in ctls:
        for inc in ctl.incs:
            seqs = sorted(inc.acks.values())
            if seqs != list(range(1, len(seqs) + 1)):
                error("%s inc %d: answered seqs are not 1..%d: %s" % (ctl.name, inc.number, len(seqs), seqs[:40]))
        for sub in ctl.subs:
            for seq, inc, idx in sub.events:
                if inc is None:
                    continue                # raced a DELETE: its incarnation is unknown
                want = ctl.incs[inc].acks.get(idx) if inc < len(ctl.incs) else None
                if want != seq:
                    error("%s: event %s:%d:%d delivered as seq %d, its publish was answered %r"
                          % (sub.desc(), ctl.name, inc, idx, seq, want))


def main():
    t0 = time.monotonic()
    print("duration %.0fs, %d clients (%d at once), %d sessions, --session-idle %.1f"
          % (DURATION_S, TOTAL_CLIENTS, CONCURRENCY, NSESSIONS, SESSION_IDLE_S))
    sys.stdout.flush()
    srv = H.rpc_server(args=["--session-idle", str(SESSION_IDLE_S), "--workers", "2"], unix=False)
    with srv:
        rpc_host, _, rpc_port = srv.rpc_addrs()[0].rpartition(":")
        rpc_addr = (rpc_host, int(rpc_port))
        time.sleep(1.0 * H.slow_factor())   # lazily made pools (health rendering) exist by now
        base = snapshot(srv)
        print("baseline: %s" % json.dumps(base))
        publisher = RpcConn(rpc_addr, "publisher")
        ctls = [SessionCtl("st%d" % i, publisher, srv, cold=i == NSESSIONS - 1) for i in range(NSESSIONS)]
        hib_seen = 0
        churn(srv, rpc_addr, ctls)
        final_verify(srv, ctls)
        check_acks(ctls)
        # linger so that ends of deleted streams are read, then leave
        deadline = time.monotonic() + 1.0 * H.slow_factor()
        while time.monotonic() < deadline:
            LOOP.run_once()
        check_deleted_streams_ended(ctls)
        FINAL[0] = True
        for c in list(CLIENTS):
            c.leave(RNG.choice(("rst", "polite")) if not isinstance(c, H2Client)
                    else RNG.choice(("rst", "polite", "goaway")))
        publisher.close("polite")
        check_alive(srv)
        h = srv.health()
        hib_seen = h["sessions"]["hibernated"]
        bad, now = settled(srv, base)
        # already failing: a short wait says what else is held, without
        # stretching a failing run
        settle = (SETTLE_TIMEOUT_S if not ERRORS else 5.0) * (1 if not H.sanitizer_build() else 2)
        deadline = time.monotonic() + settle
        while bad and time.monotonic() < deadline:
            time.sleep(0.25)
            bad, now = settled(srv, base)
        print("after: %s" % json.dumps(now))
        if bad:
            error("resources did not return to the baseline within %.0fs: %s"
                  % (settle, "; ".join(bad)))
        STATS["hibernated_at_end"] = hib_seen
        print("stats: %s" % json.dumps(dict(sorted(STATS.items()))))
        sys.stdout.flush()
        if ERRORS:
            srv.stop()
            # The server's own warnings and errors say which path refused.
            worse = [l for l in srv.stderr_text().splitlines()
                     if "level=error" in l or "level=warn" in l][-40:]
            raise H.TestFailure("%d invariant violation(s), seed %d:\n  %s%s\nserver warnings and "
                                "errors (last %d):\n  %s"
                                % (len(ERRORS), SEED, "\n  ".join(ERRORS[:MAX_ERRORS_SHOWN]),
                                   "\n  ..." if len(ERRORS) > MAX_ERRORS_SHOWN else "",
                                   len(worse), "\n  ".join(worse) or "(none)"))
    print("test_lifecycle_stress: ok in %.1fs (seed %d)" % (time.monotonic() - t0, SEED))


if __name__ == "__main__":
    try:
        main()
    except H.TestFailure as e:
        print("FAIL test_lifecycle_stress (seed %d): %s" % (SEED, e))
        sys.exit(1)
