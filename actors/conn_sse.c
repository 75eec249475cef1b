/*
 * Connection actor, subscriber side: streams that follow sessions (the
 * subscription records, catch-up, pumping), written through the
 * protocol's stream hooks (c->proto: SSE below, msgpack-RPC in
 * conn_rpc.c).
 *
 * A stream pulls from its session's ring whatever fits the stream's room
 * (HTTP/2 window, stream and connection buffers), in whole events, as
 * referenced slices: one reference per ring page per pull, no payload
 * copy. Pulls happen when the session notifies (coalesced: one wake-up
 * per batch of events) and when room grows (output sent, WINDOW_UPDATE).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actors/conn_int.h"
#include "actors/sessops.h"
#include "actors/server.h"
#include "net/http.h"
#include "net/sse.h"
#include "runtime/clock.h"
#include "runtime/log.h"

#define PULLS_PER_PUMP 16 /* ring reads per stream per pump (then yield) */

static void request_catchup(sl_conn_t *c, sl_conn_stream_t *st, size_t room);
static bool apply_catchup(sl_conn_t *c, sl_conn_stream_t *st);

static sl_conn_stream_t *find_stream(sl_conn_t *c, uint32_t stream_id)
{
    for (sl_conn_stream_t *st = c->streams; st; st = st->next)
        if (st->stream_id == stream_id)
            return st;
    return NULL;
}

static void unlink_stream(sl_conn_t *c, sl_conn_stream_t *st)
{
    if (st->prev)
        st->prev->next = st->next;
    else
        c->streams = st->next;
    if (st->next)
        st->next->prev = st->prev;
    c->nstreams--;
}

static void free_stream(sl_conn_t *c, sl_conn_stream_t *st)
{
    unlink_stream(c, st);
    if (st->counted) {
        atomic_fetch_sub_explicit(c->proto->gauge(&c->srv->counters), 1, memory_order_relaxed);
        atomic_fetch_sub_explicit(&c->srv->counters.subscribers, 1, memory_order_relaxed);
    }
    if (st->e)
        sl_entry_release(st->e);
    if (st->cu.chunk)
        sl_chunk_release(st->cu.chunk);
    free(st);
}

/* Stops following the session: sends UNSUBSCRIBE when the record is home
 * and registered, remembers the wish while SUBSCRIBE is still away, and
 * does nothing once leaving has begun (see sl_conn__sub_state_t). */
static void leave(sl_conn_t *c, sl_conn_stream_t *st)
{
    (void)c;
    switch ((sl_conn__sub_state_t)st->sub_state) {
    case SL_CONN__SUB_SUBSCRIBING:
        st->unsub_wanted = true; /* acted on in on_subscribed */
        return;
    case SL_CONN__SUB_ACTIVE:
        st->sub_state = SL_CONN__SUB_UNSUBSCRIBING;
        st->sub.h.kind = SL_SESSION_MSG_UNSUBSCRIBE;
        st->sub.h.mclass = SL_MSG_CONTROL; /* the record's one outstanding request */
        int rc = sl_actor_send(st->session, &st->sub.h);
        sl_assert(rc == 0);
        return;
    case SL_CONN__SUB_UNSUBSCRIBING:
    case SL_CONN__SUB_DONE:
        return;
    }
}

/* How a refused or failed subscribe is answered: a deleted session is
 * not_found; anything else (subscriber table full, memory, the session
 * or the server ending) is overloaded, which a client retries. */
static bool refusal_is_not_found(int status) { return status == SL_ENOTFOUND; }

static void respond_refused(sl_conn_t *c, uint32_t stream_id, int status)
{
    static const sl_http_header_t ra[] = {SL_HTTP_HEADER_LIT("retry-after", "1")};
    if (refusal_is_not_found(status))
        sl_http_respond_error(c->http, stream_id, 404, "not_found", "no such session", NULL, 0);
    else
        sl_http_respond_error(c->http, stream_id, 503, "overloaded",
                              status == SL_EFULL ? "too many subscribers on this session"
                                                 : "session unavailable, retry",
                              ra, SL_ARRAY_LEN(ra));
}

void sl_conn__subscribe(sl_conn_t *c, uint32_t stream_id, sl_entry_t *e, uint64_t from_seq,
                        uint64_t wait_seq, bool reset)
{
    int rc = sl_conn__subscribe_ex(c, stream_id, e, from_seq, wait_seq, reset, false, 0);
    if (rc != 0)
        respond_refused(c, stream_id, rc);
}

int sl_conn__subscribe_ex(sl_conn_t *c, uint32_t stream_id, sl_entry_t *e, uint64_t from_seq,
                          uint64_t wait_seq, bool reset, bool rpc, uint32_t rpc_msgid)
{
    sl_conn_stream_t *st = calloc(1, sizeof *st);
    sl_actor_t *session = st ? sl_session_acquire(c->srv, e) : NULL;
    if (!session) {
        /* No actor: the session was deleted (not found), or it exists and
         * could not start (unavailable, retry: as for a publish). */
        int rc = st ? sl_session_unavailable(e) : -ENOMEM;
        free(st);
        sl_entry_release(e);
        return rc;
    }
    st->rpc = rpc;
    st->rpc_msgid = rpc_msgid;
    st->sub.rpc = rpc;
    st->stream_id = stream_id;
    st->e = e;
    st->session = session;
    st->wait_seq = wait_seq;
    st->reset = reset;
    /* The principal the caller was just checked against (HTTP: this
     * request's; RPC: the connection's): the stream ends when it expires. */
    st->auth_expires_ns = sl_auth_principal_expires_ns(c->principal);
    if (st->auth_expires_ns &&
        (!c->auth_expiry_min_ns || st->auth_expires_ns < c->auth_expiry_min_ns))
        c->auth_expiry_min_ns = st->auth_expires_ns;
    st->sub.conn = &c->a;
    sl_actor_retain(&c->a); /* released when the UNSUBSCRIBED reply is handled */
    st->sub.stream_id = stream_id;
    st->sub.from_seq = from_seq;
    st->sub.h.kind = SL_SESSION_MSG_SUBSCRIBE;
    st->sub.h.mclass = SL_MSG_CONTROL;
    st->sub_state = SL_CONN__SUB_SUBSCRIBING;
    st->next = c->streams;
    if (c->streams)
        c->streams->prev = st;
    c->streams = st;
    c->nstreams++;
    int rc = sl_actor_send(session, &st->sub.h);
    sl_assert(rc == 0);
    return 0;
}

/* The session actor was ending (hibernating) when our SUBSCRIBE arrived:
 * subscribe again with its successor. Returns true when resent. */
static bool resubscribe(sl_conn_t *c, sl_conn_stream_t *st)
{
    if (st->sub.status != SL_ECLOSED || st->dead || st->unsub_wanted ||
        c->state >= SL_CONN__CLOSING || atomic_load(&c->srv->draining) ||
        st->resubscribes >= SL_CONN_RESUBSCRIBES_MAX)
        return false;
    sl_actor_t *next = sl_session_acquire(c->srv, st->e);
    if (!next)
        return false;
    st->resubscribes++;
    sl_actor_release(st->session);
    st->session = next;
    st->sub.h.kind = SL_SESSION_MSG_SUBSCRIBE;
    st->sub.h.mclass = SL_MSG_CONTROL;
    int rc = sl_actor_send(next, &st->sub.h);
    sl_assert(rc == 0);
    return true;
}

/* SUBSCRIBE was refused: the session holds no pointer to the record, so
 * it is ours to free (after the client got its answer, if it still
 * listens). */
static void on_refused(sl_conn_t *c, sl_conn_stream_t *st)
{
    st->sub_state = SL_CONN__SUB_DONE;
    if (!st->dead && c->state < SL_CONN__CLOSING)
        c->proto->subscribed(c, st, st->sub.status);
    sl_actor_release(st->session);
    st->session = NULL;
    free_stream(c, st);
    sl_actor_release(&c->a); /* the subscription's reference */
}

static void on_subscribed(sl_conn_t *c, sl_conn_stream_t *st)
{
    sl_sub_t *sub = &st->sub;
    sl_assert(st->sub_state == SL_CONN__SUB_SUBSCRIBING);
    if (sub->status != 0) {
        if (!resubscribe(c, st))
            on_refused(c, st);
        return;
    }
    st->sub_state = SL_CONN__SUB_ACTIVE;
    if (st->dead || st->unsub_wanted || c->state >= SL_CONN__CLOSING) {
        /* Left before the answer: a client that unsubscribed on a live
         * connection (RPC) is still owed the subscribe's answer. */
        if (st->unsub_wanted && !st->dead && c->state < SL_CONN__CLOSING)
            c->proto->subscribed(c, st, 0);
        leave(c, st);
        return;
    }
    /* The subscribe's answer goes out before any event of it. */
    if (c->proto->subscribed(c, st, 0) != 0) {
        st->dead = true;
        leave(c, st);
        return;
    }
    st->begun = true;
    st->counted = true;
    atomic_fetch_add_explicit(c->proto->gauge(&c->srv->counters), 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&c->srv->counters.subscribers, 1, memory_order_relaxed);
    st->next_seq = sub->start_seq;
    st->catching_up = sub->catch_up;
    if (st->wait_seq && (st->wait_seq <= sub->start_seq || sub->catch_up))
        st->wait_seq = 0; /* already positioned */
    st->last_write_ns = sl_clock_now_ns();
}

/* The session closed for good (not deleted). */
static bool closed_for_good(const sl_conn_stream_t *st, uint64_t *last_seq)
{
    return !atomic_load_explicit(&st->e->deleted, memory_order_acquire) &&
           sl_sessops_closed(st->e, last_seq);
}

static void end_stream(sl_conn_t *c, sl_conn_stream_t *st)
{
    if (!st->ended && !st->dead) {
        uint64_t last = 0;
        bool closed = closed_for_good(st, &last);
        c->proto->end(c, st, closed, last);
    }
    st->ended = true;
    leave(c, st);
}

static size_t stream_room(sl_conn_t *c, sl_conn_stream_t *st) { return c->proto->room(c, st); }

/* One pull from the ring into the stream. Returns true to pull again. */
static bool pull_once(sl_conn_t *c, sl_conn_stream_t *st)
{
    sl_sub_t *sub = &st->sub;
    if (st->wait_seq) {
        uint64_t pos;
        int rc = sl_ring_seek(sub->ring, st->wait_seq, &pos);
        if (rc == SL_EAGAIN)
            return false;
        if (rc == 0) {
            sub->pos = pos;
            st->next_seq = st->wait_seq;
        }
        st->wait_seq = 0;
    }
    if (st->cu_ready && !apply_catchup(c, st))
        return false;
    if (st->catching_up) {
        request_catchup(c, st, stream_room(c, st));
        return false;
    }
    uint64_t limit = UINT64_MAX;
    bool ended = atomic_load_explicit(&sub->ended, memory_order_acquire);
    if (ended)
        limit = atomic_load_explicit(&sub->end_pos, memory_order_relaxed);
    int rc = c->proto->pull(c, st, limit);
    if (rc == SL_ENOTFOUND) {
        /* Fell behind the ring: the session serves what was missed. */
        st->catching_up = true;
        request_catchup(c, st, stream_room(c, st));
    }
    return rc == 1;
}

static void pump_stream(sl_conn_t *c, sl_conn_stream_t *st)
{
    if (!st->begun || st->dead || st->ended || st->sub_state != SL_CONN__SUB_ACTIVE)
        return;
    for (int i = 0; i < PULLS_PER_PUMP && pull_once(c, st); i++) {
    }
    sl_sub_t *sub = &st->sub;
    if (atomic_load_explicit(&sub->ended, memory_order_acquire) &&
        sub->pos >= atomic_load_explicit(&sub->end_pos, memory_order_relaxed)) {
        if (closed_for_good(st, NULL)) {
            /* Every event first (a late subscriber replays from the log),
             * and room for the terminal event. */
            if (st->catching_up || st->cu_ready || st->cu_outstanding)
                return;
            if (stream_room(c, st) < c->proto->end_room)
                return;
        }
        end_stream(c, st);
    }
}

void sl_conn__pump_streams(sl_conn_t *c)
{
    if (!c->proto->started(c) || c->state >= SL_CONN__CLOSING)
        return;
    for (sl_conn_stream_t *st = c->streams; st; st = st->next)
        pump_stream(c, st);
    sl_conn__ds_pump(c);
}

static void on_unsubscribed(sl_conn_t *c, sl_conn_stream_t *st)
{
    sl_assert(st->sub_state == SL_CONN__SUB_UNSUBSCRIBING);
    st->sub_state = SL_CONN__SUB_DONE;
    if (!st->ended && !st->dead && !st->unsub_wanted && c->state < SL_CONN__CLOSING)
        c->proto->end(c, st, false, 0);
    st->ended = true;
    if (!st->cu_outstanding) {
        sl_actor_release(st->session);
        free_stream(c, st);
    }
    sl_actor_release(&c->a); /* the subscription's reference */
}

/* Asks the session for what this stream missed (one request at a time). */
static void request_catchup(sl_conn_t *c, sl_conn_stream_t *st, size_t room)
{
    if (st->cu_outstanding || st->cu_ready || st->sub_state != SL_CONN__SUB_ACTIVE || room == 0)
        return;
    /* Over the memory budget (runtime/budget.h) only a connection that
     * drained its output reads the log, in small steps, and none beyond
     * the catch-up headroom (the connection's timer pumps again); one that
     * does not read pins nothing more. */
    bool over = sl_budget_over();
    if (over && (c->outq.bytes_pending > 0 || sl_budget_over_headroom()))
        return;
    st->cu_outstanding = true;
    st->cu.h.kind = SL_SESSION_MSG_CATCHUP;
    st->cu.h.mclass = SL_MSG_CONTROL; /* the record's one outstanding request */
    st->cu.conn = &c->a;
    st->cu.from_seq = st->next_seq;
    st->cu.rpc = st->rpc;
    st->cu.rpc_sub_id = st->stream_id;
    st->cu.max_bytes = room > (1u << 20) ? (1u << 20) : (uint32_t)room;
    if (over && st->cu.max_bytes > SL_BUDGET_CATCHUP_OVER_BYTES)
        st->cu.max_bytes = SL_BUDGET_CATCHUP_OVER_BYTES;
    /* Counted from the request on (one event goes whole, so at least an
     * event's size): requests waiting at a busy session are memory too. */
    uint64_t ev_max = c->srv->cfg.max_event_bytes;
    st->cu_reserved = st->cu.max_bytes > ev_max ? st->cu.max_bytes : ev_max;
    sl_budget_add(SL_BUDGET_CATCHUP, st->cu_reserved);
    sl_actor_retain(&c->a); /* released when the answer is handled */
    int rc = sl_actor_send(st->session, &st->cu.h);
    sl_assert(rc == 0);
}

/* Writes a caught-up chunk into the stream and moves the cursor past it.
 * Returns false while the stream has no room for it (kept for the next
 * pump: nothing is skipped). */
static bool apply_catchup(sl_conn_t *c, sl_conn_stream_t *st)
{
    sl_catchup_t *cu = &st->cu;
    if (cu->chunk && cu->chunk->len &&
        c->proto->write_chunk(c, st, cu->chunk) != 0)
        return false;
    sl_server_counters_t *ctr = &c->srv->counters;
    atomic_fetch_add_explicit(&ctr->events_caught_up, cu->events, memory_order_relaxed);
    atomic_fetch_add_explicit(&ctr->events_delivered, cu->events, memory_order_relaxed);
    atomic_fetch_add_explicit(&ctr->events_gapped, cu->gapped, memory_order_relaxed);
    st->next_seq = cu->next_seq;
    st->last_write_ns = sl_clock_now_ns();
    if (cu->chunk)
        sl_chunk_release(cu->chunk);
    cu->chunk = NULL;
    st->cu_ready = false;
    uint64_t pos;
    if (sl_ring_seek(st->sub.ring, st->next_seq, &pos) != SL_ENOTFOUND) {
        st->sub.pos = pos; /* in the ring again (or at its tail): live */
        st->catching_up = false;
    }
    return true;
}

static void on_caught_up(sl_conn_t *c, sl_conn_stream_t *st)
{
    sl_catchup_t *cu = &st->cu;
    st->cu_outstanding = false;
    sl_budget_sub(SL_BUDGET_CATCHUP, st->cu_reserved); /* the chunk counts itself now */
    st->cu_reserved = 0;
    bool live = st->sub_state == SL_CONN__SUB_ACTIVE && !st->dead && !st->ended &&
                c->state < SL_CONN__CLOSING;
    if (live && cu->status == 0) {
        st->cu_ready = true;
        apply_catchup(c, st);
    } else {
        if (live)
            end_stream(c, st); /* session ending: the client resumes by id */
        if (cu->chunk)
            sl_chunk_release(cu->chunk);
        cu->chunk = NULL;
    }
    if (st->sub_state == SL_CONN__SUB_DONE) { /* unsubscribed meanwhile: ours to free */
        sl_actor_release(st->session);
        free_stream(c, st);
    }
    sl_actor_release(&c->a); /* the request's reference */
}

void sl_conn__stream_closed(sl_conn_t *c, uint32_t stream_id)
{
    sl_conn__ds_stream_closed(c, stream_id);
    sl_conn_stream_t *st = find_stream(c, stream_id);
    if (!st)
        return;
    st->dead = true;
    leave(c, st);
}

bool sl_conn__stream_leave(sl_conn_t *c, uint32_t stream_id)
{
    sl_conn_stream_t *st = find_stream(c, stream_id);
    if (!st)
        return false;
    st->unsub_wanted = true;
    leave(c, st);
    return true;
}

void sl_conn__streams_close_all(sl_conn_t *c)
{
    sl_conn__ds_close_all(c);
    for (sl_conn_stream_t *st = c->streams; st; st = st->next) {
        st->dead = true;
        leave(c, st);
    }
}

void sl_conn__stream_expire(sl_conn_t *c, sl_conn_stream_t *st)
{
    if (st->ended || st->dead || !c->proto->expired(c, st))
        return;
    st->ended = true;
    leave(c, st);
}

void sl_conn__streams_tick(sl_conn_t *c, uint64_t now_ns)
{
    sl_conn__auth_tick(c);
    sl_conn__ds_tick(c, now_ns);
    uint64_t ka = c->srv->cfg.sse_keepalive_ns;
    for (sl_conn_stream_t *st = c->streams; st; st = st->next) {
        if (!st->begun || st->dead || st->ended || now_ns - st->last_write_ns < ka)
            continue;
        c->proto->keepalive(c, st, now_ns);
    }
}

void sl_conn__streams_free(sl_conn_t *c)
{
    sl_conn__ds_free(c);
    while (c->streams) {
        sl_conn_stream_t *st = c->streams;
        /* replies arrive first */
        sl_assert(st->sub_state == SL_CONN__SUB_DONE);
        sl_assert(!st->cu_outstanding);
        free_stream(c, st);
    }
}

void sl_conn__session_msg(sl_conn_t *c, sl_msg_t *m)
{
    if (m->kind == SL_CONN_MSG_CAUGHT_UP) {
        sl_catchup_t *cu = (sl_catchup_t *)(void *)m;
        on_caught_up(c, sl_container_of(cu, sl_conn_stream_t, cu));
        return;
    }
    if (m->kind == SL_CONN_MSG_SUBSCRIBED || m->kind == SL_CONN_MSG_UNSUBSCRIBED) {
        sl_sub_t *sub = (sl_sub_t *)(void *)m;
        sl_conn_stream_t *st = sl_container_of(sub, sl_conn_stream_t, sub);
        if (m->kind == SL_CONN_MSG_SUBSCRIBED)
            on_subscribed(c, st);
        else
            on_unsubscribed(c, st);
    }
}

/* ---- SSE: the stream hooks of sl_conn__http_ops (conn_int.h) ---- */

int sl_conn__sse_subscribed(sl_conn_t *c, sl_conn_stream_t *st, int status)
{
    if (status != 0) {
        if (c->http)
            respond_refused(c, st->stream_id, status);
        return 0;
    }
    static const sl_http_header_t h[] = {
        SL_HTTP_HEADER_LIT("content-type", "text/event-stream"),
        SL_HTTP_HEADER_LIT("cache-control", "no-store"),
        SL_HTTP_HEADER_LIT("x-accel-buffering", "no"),
    };
    int rc = sl_http_stream_begin(c->http, st->stream_id, 200, h, SL_ARRAY_LEN(h));
    if (rc != 0)
        return rc;
    if (st->reset) {
        char buf[160];
        int n = snprintf(buf, sizeof buf,
                         "event: sluice.reset\ndata: {\"epoch\":%llu,\"last_seq\":%llu}\n\n",
                         (unsigned long long)st->e->epoch,
                         (unsigned long long)atomic_load(&st->e->stats.last_seq));
        sl_http_stream_write_copy(c->http, st->stream_id, buf, (size_t)n);
    }
    return 0;
}

size_t sl_conn__sse_room(sl_conn_t *c, sl_conn_stream_t *st)
{
    return sl_http_stream_room(c->http, st->stream_id);
}

int sl_conn__sse_write_chunk(sl_conn_t *c, sl_conn_stream_t *st, sl_chunk_t *chunk)
{
    return sl_http_stream_write_ref(c->http, st->stream_id, chunk, 0, chunk->len);
}

/* A pull is one referenced slice of the ring (whole events, one
 * reference per ring page, no payload copy), sized to the stream's room. */
int sl_conn__sse_pull(sl_conn_t *c, sl_conn_stream_t *st, uint64_t limit)
{
    sl_sub_t *sub = &st->sub;
    uint64_t max = limit > sub->pos ? limit - sub->pos : 0, avail;
    /* Nothing new (most pulls: a send completing, a WINDOW_UPDATE) is
     * answered before the stream's room is worked out. */
    if (max == 0 || (sl_ring_readable(sub->ring, sub->pos, &avail) == 0 && avail == 0))
        return 0;
    size_t room = sl_http_stream_room(c->http, st->stream_id);
    if (room < max)
        max = room;
    if (max == 0)
        return 0;
    sl_ring_slice_t sl;
    sl_ring_read_t res;
    if (sl_ring_read(sub->ring, sub->pos, max, true, &sl, 1, &res) == SL_ENOTFOUND)
        return SL_ENOTFOUND;
    if (res.nslices == 0)
        return 0;
    int rc = sl_http_stream_write_ref(c->http, st->stream_id, sl.chunk, sl.off, sl.len);
    sl_chunk_release(sl.chunk);
    if (rc != 0)
        return 0; /* SL_EFULL: wait for room; nothing advanced */
    sub->pos = res.end_pos;
    if (res.events_completed) {
        st->next_seq = res.last_seq_completed + 1;
        atomic_fetch_add_explicit(&c->srv->counters.events_delivered, res.events_completed,
                                  memory_order_relaxed);
    }
    st->last_write_ns = sl_clock_now_ns();
    return 1;
}

void sl_conn__sse_end(sl_conn_t *c, sl_conn_stream_t *st, bool closed, uint64_t last_seq)
{
    if (!c->http)
        return;
    if (closed) {
        char buf[SL_CONN_SSE_CLOSED_BYTES];
        int n = snprintf(buf, sizeof buf, "event: sluice.closed\ndata: {\"last_seq\":%llu}\n\n",
                         (unsigned long long)last_seq);
        sl_http_stream_write_copy(c->http, st->stream_id, buf, (size_t)n);
    }
    sl_http_stream_end(c->http, st->stream_id);
}

bool sl_conn__sse_expired(sl_conn_t *c, sl_conn_stream_t *st)
{
    /* Only whole events were written, so the client resumes exactly with
     * Last-Event-ID and a fresh token; a stream not yet begun (its
     * subscribe still away) is ended the same way once it begins. */
    if (!st->begun)
        return false;
    static const char ev[] = "event: sluice.expired\ndata: {}\n\n";
    sl_http_stream_write_copy(c->http, st->stream_id, ev, sizeof ev - 1);
    sl_http_stream_end(c->http, st->stream_id);
    return true;
}

void sl_conn__sse_keepalive(sl_conn_t *c, sl_conn_stream_t *st, uint64_t now_ns)
{
    if (sl_http_stream_write_copy(c->http, st->stream_id, sl_sse_keepalive,
                                  SL_SSE_KEEPALIVE_LEN) == 0)
        st->last_write_ns = now_ns;
}
