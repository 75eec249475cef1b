/*
 * Session actor. See session.h.
 *
 * The event path inside a session:
 *
 *   PUBLISH ─▶ seq ─▶ ring (SSE bytes, encoded once) ─┐
 *                └──▶ journal write buffer ─▶ WRITE ─▶ written_seq ─▶ FSYNC ─▶ synced_seq
 *                                                   │
 *                          ring visible up to ◀─────┘   (subscribers never see an
 *                                                         event a crash could take back)
 *
 * A publish is answered when its last event is written (page cache:
 * survives a process crash) or, for `durable`, synced. Ephemeral events
 * skip the journal; they become visible in seq order behind the durable
 * events before them.
 *
 * Bounds: the journal's two write buffers (a publish that finds both taken
 * is parked; at most SESSION_PARKED_MAX publishes or SESSION_PARKED_BYTES
 * of their events parked, beyond that the answer is
 * 503), the ring (--session-ring-bytes), subscribers per session
 * (--max-subscribers-per-session, beyond: 503), catch-up jobs (one per subscriber).
 */
#include "actors/session.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actors/server.h"
#include "net/rpc.h"
#include "net/sse.h"
#include "runtime/clock.h"
#include "runtime/fault.h"
#include "runtime/log.h"
#include "actors/lifecycle.h"
#include "storage/attrs.h"
#include "storage/journal.h"
#include "storage/lifecycle.h"
#include "storage/seqmark.h"

#define NOTIFY_FLUSH 1ull
/* Publishes waiting for a write buffer. Large enough that one RPC
 * connection at its --rpc-max-inflight default never meets it (it is
 * slowed by TCP instead); many producers together get 503/overloaded. */
#define SESSION_PARKED_MAX 1024
#define SESSION_PARKED_BYTES (8u << 20)
#define CATCHUP_CHUNK_MIN 4096
/* Catch-up reads running at once per session; each holds a reader buffer
 * (>= one largest record). Policy at the bound: further requests wait in
 * a FIFO (bounded by the subscribers, one request each). */
#define SESSION_CATCHUP_JOBS_MAX 8

enum { MSG_STOP = SL_MSG_KIND_USER + 64 };

/* Durable state kept in the directory entry across session actors. */
typedef struct persist {
    sl_segment_index_t *recovered; /* from startup, until a journal takes it */
    sl_segment_t *segs;            /* segment list for the manifest */
    uint32_t nsegs;
    uint64_t seq_reserved; /* durable reservation mark written by an
                              earlier actor of this process (0: none) */
    bool damaged;          /* a catch-up read skipped damaged bytes */
    sl_lifecycle_t *life;  /* producers and Stream-Seq (NULL until first used) */
    bool attrs_durable;    /* the attributes file is written (or was recovered) */
    bool life_dirty;       /* life changed since the manifest last took it */
} persist_t;

/* Steps of writing the seq reservation mark (storage/seqmark.h). */
enum {
    RES_IDLE = 0,
    RES_OPEN,
    RES_WRITE,
    RES_FSYNC,
    RES_CLOSE,
    RES_DIR_OPEN,
    RES_DIR_FSYNC,
    RES_DIR_CLOSE,
};

typedef struct catchup_job {
    struct catchup_job *next;
    sl_catchup_t *cu;
    sl_journal_reader_t *reader;
    bool replied;
} catchup_job_t;

struct sl_session {
    sl_actor_t a;
    sl_server_t *srv;
    sl_entry_t *e;        /* reference */
    sl_reactor_t *r;
    sl_ring_t *ring;      /* SSE wire bytes */
    sl_ring_t *rpc_ring;  /* msgpack-RPC event bodies; created by the first RPC subscriber */
    sl_journal_t *j;      /* NULL when the journal could not start */
    uint64_t next_seq;
    /* Seq reservation: seqs up to seq_reserved may be issued (durably
     * marked); seq_reserving is being written while res_step != RES_IDLE.
     * One op at a time on res_op. */
    uint64_t seq_reserved, seq_reserving;
    sl_op_t res_op;
    uint8_t res_step;
    bool res_dir_synced, res_failed;
    bool res_wanted; /* an ephemeral seq is or was issued: keep a mark ahead */
    int res_fd;
    int32_t res_err;
    uint8_t res_buf[SL_SEQMARK_BYTES];
    char res_path[SL_SESSION_ID_MAX + sizeof "/" SL_SEQMARK_NAME];
    /* The same machine writes the attributes file (storage/attrs.h) once,
     * before any publish of this session is acknowledged. */
    const uint8_t *res_wbuf;
    uint32_t res_wlen;
    bool res_attrs;         /* the write in flight is the attributes file */
    bool attrs_pending;     /* attributes to write; acks wait for them */
    bool attrs_failed;      /* their write failed: publishes are answered -EIO */
    uint8_t *attrs_file;    /* its bytes while pending */
    uint32_t attrs_file_len;
    sl_sub_t **subs;      /* live subscriptions, unordered */
    uint32_t nsubs, subs_cap;
    sl_pub_t *parked_head, *parked_tail; /* waiting for a write buffer */
    uint32_t parked;
    uint64_t parked_bytes; /* event bytes of the parked publishes */
    uint32_t parked_done; /* events of parked_head already appended */
    sl_pub_t *acks_head, *acks_tail;     /* appended, waiting for write/sync */
    catchup_job_t *jobs;
    uint32_t njobs;
    sl_catchup_t *cu_wait_head, *cu_wait_tail; /* requests over the job bound */
    sl_op_t timer;
    bool timer_armed;
    sl_op_t idle_timer;     /* hibernation check */
    bool idle_armed;
    sl_op_t cancel_idle;    /* ends the idle timer when the session ends */
    sl_op_t ret_timer;      /* the next age-retention expiry */
    sl_op_t cancel_ret;
    bool ret_armed;
    uint64_t seen_events_removed, seen_payload_removed, seen_segments_removed;
    uint64_t seen_bytes_written, seen_fsyncs; /* journal counters already counted */
    uint64_t seen_syncfs_rounds, seen_fsyncs_overlapped;
    uint64_t seen_damage_skips;
    sl_op_t fanout_timer;   /* linger before the next wake-up of subscribers */
    bool fanout_armed, fanout_pending;
    uint64_t last_fanout_ns;
    uint64_t active_ns;     /* monotonic time of the last request */
    uint64_t timer_deadline;
    uint32_t ops_inflight;
    bool deleting, stopping, released, journal_ending;
    uint64_t marker_seq;    /* seq of the close marker record (0: none) */
    bool close_deferred;    /* fault point slow_hibernate: close at the idle timer */
    /* Requests that arrived while this actor was ending: answered
     * SL_ECLOSED once it has left the entry, so the requester's retry
     * reaches a successor, not this actor again (at most
     * SL_SESSION_HELD_MAX; beyond, answered at once). */
    sl_pub_t *held_pubs, *held_pubs_tail;
    sl_sub_t *held_subs;
    uint32_t nheld;
    sl_msg_t delete_msg, stop_msg; /* CONTROL, sent at most once each */
    bool delete_sent, stop_sent;   /* guarded by e->lock */
};

static void drive(sl_session_t *s);

static void reply(sl_msg_t *m, sl_actor_t *to, uint16_t kind)
{
    m->kind = kind;
    m->mclass = SL_MSG_COMPLETION; /* one outstanding request per record */
    int rc = sl_actor_send(to, m);
    sl_assert(rc == 0);
}

static void stat_add(_Atomic uint64_t *v, uint64_t d)
{
    atomic_fetch_add_explicit(v, d, memory_order_relaxed);
}

static void reply_pub(sl_pub_t *p)
{
    reply(&p->h, p->reply_to, SL_CONN_MSG_PUBLISHED);
}

/* ---- persistence kept in the entry ---- */

static persist_t *persist_of(sl_entry_t *e)
{
    if (!e->persist)
        e->persist = calloc(1, sizeof(persist_t));
    return e->persist;
}

/* Copies the journal's segment list into the entry (for the manifest).
 * Out of memory, the old list stays but is marked stale, so the manifest
 * does not vouch for it and the next start scans the folder instead. */
static void save_segments(sl_session_t *s)
{
    if (!s->j)
        return;
    persist_t *ps = sl_fault("save_segments") ? NULL : persist_of(s->e);
    const sl_segment_index_t *ix = sl_journal_index(s->j);
    uint32_t n = sl_segment_index_count(ix);
    sl_segment_t *segs = ps && n ? malloc(n * sizeof *segs) : NULL;
    if (!ps || (n && !segs)) {
        /* release: pairs with the manifest writer's acquire load */
        atomic_store_explicit(&s->e->persist_stale, true, memory_order_release);
        return;
    }
    for (uint32_t i = 0; i < n; i++) {
        segs[i] = *sl_segment_index_at(ix, i);
        segs[i]._sparse = NULL;
        segs[i]._sparse_count = segs[i]._sparse_cap = 0;
    }
    pthread_mutex_lock(&s->e->lock);
    free(ps->segs);
    ps->segs = segs;
    ps->nsegs = n;
    atomic_store_explicit(&s->e->persist_stale, false, memory_order_release);
    pthread_mutex_unlock(&s->e->lock);
}

void sl_session_entry_free(sl_entry_t *e)
{
    persist_t *ps = e->persist;
    if (!ps)
        return;
    if (ps->recovered)
        sl_segment_index_destroy(ps->recovered);
    sl_lifecycle_free(ps->life);
    free(ps->segs);
    free(ps);
    e->persist = NULL;
}

uint8_t *sl_session_life_snapshot(sl_entry_t *e, size_t *len)
{
    persist_t *ps = e->persist;
    *len = 0;
    return ps && ps->life ? sl_lifecycle_snapshot(ps->life, len) : NULL;
}

static sl_lifecycle_t *entry_life(sl_entry_t *e)
{
    persist_t *ps = persist_of(e);
    if (ps && !ps->life)
        ps->life = sl_lifecycle_new();
    return ps ? ps->life : NULL;
}

int sl_session_life_load(sl_entry_t *e, const uint8_t *snap, size_t len)
{
    sl_lifecycle_t *l = entry_life(e);
    return l ? sl_lifecycle_load(l, snap, len) : -ENOMEM;
}

void sl_session_life_apply(sl_entry_t *e, const sl_lifecycle_ext_t *x, uint64_t seq)
{
    sl_lifecycle_t *l = (x->has_producer || x->stream_seq_len) ? entry_life(e) : NULL;
    if (l)
        sl_lifecycle_apply(l, x, seq);
}

void sl_session_attrs_durable(sl_entry_t *e)
{
    persist_t *ps = persist_of(e);
    if (ps)
        ps->attrs_durable = true;
}

void sl_session_recovered(sl_entry_t *e, sl_segment_index_t *index)
{
    persist_t *ps = persist_of(e);
    if (!ps) {
        atomic_store_explicit(&e->persist_stale, true, memory_order_release);
        sl_segment_index_destroy(index);
        return;
    }
    ps->recovered = index;
    uint32_t n = sl_segment_index_count(index);
    ps->segs = n ? calloc(n, sizeof *ps->segs) : NULL;
    for (uint32_t i = 0; ps->segs && i < n; i++) {
        ps->segs[i] = *sl_segment_index_at(index, i);
        ps->segs[i]._sparse = NULL;
        ps->segs[i]._sparse_count = ps->segs[i]._sparse_cap = 0;
    }
    ps->nsegs = ps->segs ? n : 0;
    if (n && !ps->segs)
        atomic_store_explicit(&e->persist_stale, true, memory_order_release);
}

int sl_session_segments(sl_entry_t *e, sl_segment_t **out, uint32_t *count)
{
    *out = NULL;
    *count = 0;
    /* acquire: pairs with save_segments' release store */
    if (atomic_load_explicit(&e->persist_stale, memory_order_acquire))
        return SL_EAGAIN;
    persist_t *ps = e->persist;
    if (!ps)
        return 0;
    int rc = 0;
    pthread_mutex_lock(&e->lock);
    if (ps->damaged) {
        rc = SL_ECORRUPT;
    } else if (ps->nsegs) {
        *out = malloc(ps->nsegs * sizeof **out);
        if (*out) {
            memcpy(*out, ps->segs, ps->nsegs * sizeof **out);
            *count = ps->nsegs;
        } else {
            rc = -ENOMEM;
        }
    }
    pthread_mutex_unlock(&e->lock);
    return rc;
}

/* ---- lifecycle ---- */

static bool busy(const sl_session_t *s)
{
    return s->nsubs > 0 || s->jobs || s->cu_wait_head || s->ops_inflight > 0 || s->parked ||
           s->acks_head;
}

/* Keeps a request that reached this actor while it is ending (hibernating
 * or stopping) until it has left the entry. Returns false at the bound:
 * the caller answers at once. */
static bool hold_pub(sl_session_t *s, sl_pub_t *p)
{
    if (s->nheld >= SL_SESSION_HELD_MAX)
        return false;
    p->_next = NULL;
    if (s->held_pubs_tail)
        s->held_pubs_tail->_next = p;
    else
        s->held_pubs = p;
    s->held_pubs_tail = p;
    s->nheld++;
    return true;
}

static bool hold_sub(sl_session_t *s, sl_sub_t *sub)
{
    if (s->nheld >= SL_SESSION_HELD_MAX)
        return false;
    sub->_held_next = s->held_subs;
    s->held_subs = sub;
    s->nheld++;
    return true;
}

/* The entry no longer names this actor: held requests are answered
 * SL_ECLOSED (a deleted session's subscribes SL_ENOTFOUND), and the
 * requesters' retries start or find the successor. */
static void release_held(sl_session_t *s)
{
    while (s->held_pubs) {
        sl_pub_t *p = s->held_pubs;
        s->held_pubs = p->_next;
        p->status = SL_ECLOSED;
        reply_pub(p);
    }
    s->held_pubs_tail = NULL;
    while (s->held_subs) {
        sl_sub_t *sub = s->held_subs;
        s->held_subs = sub->_held_next;
        sub->status = s->deleting ? SL_ENOTFOUND : SL_ECLOSED;
        reply(&sub->h, sub->conn, SL_CONN_MSG_SUBSCRIBED);
    }
    s->nheld = 0;
}

/* Leaves the directory entry and drops the actor's own reference once
 * nothing depends on it any more. */
static void maybe_exit(sl_session_t *s)
{
    if (s->released || !(s->deleting || s->stopping) || busy(s))
        return;
    if (s->j && !sl_journal_done(s->j))
        return;
    s->released = true;
    if (!s->deleting)
        save_segments(s);
    pthread_mutex_lock(&s->e->lock);
    if (s->e->session == s)
        s->e->session = NULL;
    pthread_mutex_unlock(&s->e->lock);
    release_held(s);
    sl_actor_release(&s->a);
}

/* ---- publish ---- */

static int append_event(sl_session_t *s, const uint8_t *type, uint32_t type_len,
                        const uint8_t *data, uint32_t data_len, bool ephemeral, bool str,
                        const uint8_t *ext, uint32_t ext_len)
{
    uint64_t seq = s->next_seq;
    /* A logged seq is covered by its own record (visible only once
     * written); an ephemeral one leaves no trace, so it is issued only
     * under a durable reservation mark: the publish waits (parked) for
     * the mark in flight. */
    if (ephemeral && seq > s->seq_reserved) {
        s->res_wanted = true;
        bool can = !s->res_failed && s->j && sl_journal_status(s->j) == 0;
        return can ? SL_EFULL : -EIO; /* a failed log cannot hold a mark */
    }
    /* Ring space first: a reservation that is not committed costs nothing,
     * whereas an event logged but not sequenced here would reuse its seq. */
    size_t size = sl_sse_encoded_size(seq, type_len, data, data_len);
    uint8_t *dst = sl_ring_reserve(s->ring, (uint32_t)size);
    if (!dst)
        return -ENOMEM;
    size_t rsize = 0;
    uint8_t *rdst = NULL;
    if (s->rpc_ring) {
        rsize = sl_rpc_event_body_size(s->e->id_len, seq, type_len, data_len, str);
        rdst = sl_ring_reserve(s->rpc_ring, (uint32_t)rsize);
        if (!rdst)
            return -ENOMEM;
    }
    if (!ephemeral) {
        if (!s->j)
            return -EIO;
        int rc = sl_journal_append_ext(s->j, seq, sl_clock_wall_ns(), type, type_len,
                                       str ? SL_RECORD_F_STR : 0, data, data_len, ext, ext_len);
        if (rc != 0)
            return rc;
    }
    size_t n = sl_sse_encode(dst, size, seq, (const char *)type, type_len, data, data_len);
    sl_assert(n == size);
    sl_ring_commit(s->ring, seq, (uint32_t)size);
    if (rdst) {
        int m = sl_rpc_event_body_encode(rdst, rsize, s->e->id, s->e->id_len, seq,
                                         (const char *)type, type_len, data, data_len, str);
        sl_assert(m == (int)rsize);
        sl_ring_commit(s->rpc_ring, seq, (uint32_t)rsize);
    }
    s->next_seq = seq + 1;
    sl_session_stats_t *st = &s->e->stats;
    uint64_t zero = 0;
    atomic_compare_exchange_strong(&st->first_seq, &zero, seq);
    atomic_store_explicit(&st->last_seq, seq, memory_order_relaxed);
    stat_add(&st->events, 1);
    stat_add(&st->bytes, data_len);
    return 0;
}

/* Appends what it can of p. Returns 0 when all of p is in, SL_EFULL when
 * the journal's buffers are taken (p keeps its progress), or an error. */
static int append_pub(sl_session_t *s, sl_pub_t *p, uint32_t *done)
{
    /* The last event carries what must be durable with it: the producer,
     * the Stream-Seq, the closure (storage/lifecycle.h). */
    uint8_t ext[SL_LIFECYCLE_EXT_MAX];
    size_t ext_len = 0;
    if (p->has_producer || p->stream_seq_len || p->close) {
        sl_lifecycle_ext_t x = {.close = p->close,
                                .has_producer = p->has_producer,
                                .producer_id_len = p->producer_id_len,
                                .producer_epoch = p->producer_epoch,
                                .producer_seq = p->producer_seq,
                                .stream_seq_len = p->stream_seq_len};
        memcpy(x.producer_id, p->producer_id, p->producer_id_len);
        memcpy(x.stream_seq, p->stream_seq, p->stream_seq_len);
        ext_len = sl_lifecycle_ext_encode(&x, ext, sizeof ext);
    }
    for (; *done < p->nevents; (*done)++) {
        const sl_pub_event_t *ev = &p->events[*done];
        bool last = *done + 1 == p->nevents;
        int rc = append_event(s, p->buf + ev->type_off, ev->type_len, p->buf + ev->data_off,
                              ev->data_len, p->ephemeral, ev->data_str, last ? ext : NULL,
                              last ? (uint32_t)ext_len : 0);
        if (rc != 0)
            return rc;
        if (*done == 0)
            p->first_seq = s->next_seq - 1;
        p->last_seq = s->next_seq - 1;
    }
    return 0;
}

static void queue_ack(sl_session_t *s, sl_pub_t *p)
{
    p->_next = NULL;
    if (s->acks_tail)
        s->acks_tail->_next = p;
    else
        s->acks_head = p;
    s->acks_tail = p;
    if (p->durable && s->j && !p->ephemeral)
        sl_journal_want_sync(s->j, p->last_seq);
}

/* ---- lifecycle: closure, idempotent producers, Stream-Seq ---- */

static void end_all(sl_session_t *s);

static sl_lifecycle_t *life_of(sl_session_t *s)
{
    persist_t *ps = persist_of(s->e);
    if (ps && !ps->life)
        ps->life = sl_lifecycle_new();
    return ps ? ps->life : NULL;
}

/* The session is closed for good after last_seq: streams end after it
 * with the terminal event (their connection sees e->closed). */
static void mark_closed(sl_session_t *s, uint64_t last_seq)
{
    atomic_store_explicit(&s->e->closed_seq, last_seq, memory_order_relaxed);
    atomic_store_explicit(&s->e->closed, true, memory_order_release);
    stat_add(&s->srv->counters.sessions_closed, 1);
    sl_info("session closed", "session=%s last_seq=%llu", s->e->id, (unsigned long long)last_seq);
    end_all(s);
}

/* A close without an event: a marker record (not an event; readers skip
 * it) makes the closure durable. Returns 0 or an append error. */
static int append_marker(sl_session_t *s)
{
    if (!s->j)
        return -EIO;
    sl_lifecycle_ext_t x = {.close = true, .control = true};
    uint8_t ext[SL_LIFECYCLE_EXT_MAX];
    size_t n = sl_lifecycle_ext_encode(&x, ext, sizeof ext);
    uint64_t seq = s->next_seq;
    int rc = sl_journal_append_ext(s->j, seq, sl_clock_wall_ns(), SL_LIFECYCLE_MARKER_TYPE,
                                   sizeof SL_LIFECYCLE_MARKER_TYPE - 1, 0, NULL, 0, ext,
                                   (uint32_t)n);
    if (rc != 0)
        return rc;
    s->next_seq = seq + 1;
    s->marker_seq = seq;
    return 0;
}

/* Decides a publish before its first event is appended (publishes run in
 * order, so the state seen here includes every earlier one). Returns true
 * when p was answered here. */
static bool gate_pub(sl_session_t *s, sl_pub_t *p)
{
    uint64_t closed_seq = 0;
    bool closed = atomic_load_explicit(&s->e->closed, memory_order_acquire);
    if (closed)
        closed_seq = atomic_load_explicit(&s->e->closed_seq, memory_order_relaxed);
    int rc = 0;
    if (p->has_producer || p->stream_seq_len) {
        sl_lifecycle_t *l = life_of(s);
        rc = l ? sl_lifecycle_check(l, p) : -ENOMEM;
    }
    if (rc == 1) { /* a producer's retry: the original answer, nothing appended */
        stat_add(&s->srv->counters.producer_duplicates, 1);
        p->closed = closed;
        p->status = 0;
        reply_pub(p);
        return true;
    }
    if (rc == 0 && closed) {
        /* Closing a closed session again is answered like the first close. */
        rc = p->close && p->nevents == 0 ? 0 : SL_EENDED;
        p->last_seq = closed_seq;
        p->closed = true;
        p->status = rc;
        reply_pub(p);
        return true;
    }
    if (rc == 0 && p->close && p->ephemeral)
        rc = SL_EINVAL; /* a closure is logged: it must outlive a restart */
    if (rc != 0) {
        if (rc == SL_EFENCED)
            stat_add(&s->srv->counters.producer_fenced, 1);
        p->status = rc;
        reply_pub(p);
        return true;
    }
    if (p->close)
        p->durable = true; /* "closed for good" is acknowledged once synced */
    return false;
}

/* After every event of p is in: the close marker when p closes without an
 * event, the producer state, the closure. Returns 0 or SL_EFULL (the
 * marker must wait for a buffer; p is parked with all its events in). */
static int finish_pub(sl_session_t *s, sl_pub_t *p)
{
    if (p->close && p->nevents == 0 && !s->marker_seq) {
        int rc = append_marker(s);
        if (rc != 0)
            return rc;
    }
    if (p->has_producer || p->stream_seq_len) {
        sl_lifecycle_t *l = life_of(s);
        if (!l || !sl_lifecycle_commit(l, p, p->first_seq, p->last_seq))
            sl_warn("producer state not kept (out of memory)", "session=%s", s->e->id);
        persist_t *ps = persist_of(s->e);
        if (ps)
            ps->life_dirty = true;
    }
    if (p->close) {
        uint64_t last = p->nevents ? p->last_seq : s->marker_seq - 1;
        p->closed = true;
        mark_closed(s, last);
        if (p->nevents == 0)
            p->last_seq = s->marker_seq; /* waits for the marker's sync; answered as last */
    }
    return 0;
}

/* Runs one publish as far as the journal allows. Returns false when it
 * had to stop (buffers taken): the caller parks it. */
static bool run_pub(sl_session_t *s, sl_pub_t *p, uint32_t *done)
{
    if (*done == 0 && !p->_gated) {
        if (gate_pub(s, p))
            return true;
        p->_gated = true;
    }
    int rc = append_pub(s, p, done);
    if (rc == 0 && *done == p->nevents)
        rc = finish_pub(s, p); /* SL_EFULL only for a close without an event */
    if (rc == SL_EFULL) {
        /* Write the full buffers. While a journal op is away its
         * completion drives again: a notify now would only spin this
         * actor (on a reactor thread, ahead of the completion it waits on). */
        if (!s->j || sl_journal_inflight(s->j) == 0)
            sl_actor_notify(&s->a, NOTIFY_FLUSH);
        return false;
    }
    if (p->last_seq) {
        atomic_store_explicit(&s->e->stats.last_activity_ns, sl_clock_wall_ns(),
                              memory_order_relaxed);
        sl_actor_notify(&s->a, NOTIFY_FLUSH); /* drive the journal once per batch */
    }
    if (rc != 0 && *done == 0) {
        p->status = rc;
        reply_pub(p);
        return true;
    }
    p->status = rc; /* a partial batch reports the error after its prefix lands */
    stat_add(&s->srv->counters.events_published, *done);
    queue_ack(s, p);
    return true;
}

static uint64_t pub_bytes(const sl_pub_t *p)
{
    uint64_t n = 0;
    for (uint32_t i = 0; i < p->nevents; i++)
        n += p->events[i].type_len + p->events[i].data_len;
    return n;
}

static void park(sl_session_t *s, sl_pub_t *p)
{
    s->parked_bytes += pub_bytes(p);
    p->_next = NULL;
    if (s->parked_tail)
        s->parked_tail->_next = p;
    else
        s->parked_head = p;
    s->parked_tail = p;
    s->parked++;
}

static void on_publish(sl_session_t *s, sl_pub_t *p)
{
    p->status = 0;
    p->first_seq = p->last_seq = 0;
    p->closed = p->duplicate = p->dup_known = p->_gated = false;
    if (s->deleting || s->stopping) {
        if (s->released || s->deleting || !hold_pub(s, p)) {
            p->status = SL_ECLOSED;
            reply_pub(p);
        }
        return;
    }
    if (s->parked) { /* keep seq order behind the parked ones */
        if (s->parked >= SESSION_PARKED_MAX || s->parked_bytes >= SESSION_PARKED_BYTES) {
            p->status = SL_EFULL; /* policy: explicit overload answer */
            reply_pub(p);
        } else {
            park(s, p);
        }
        return;
    }
    uint32_t done = 0;
    if (!run_pub(s, p, &done)) {
        park(s, p);
        s->parked_done = done;
    }
}

static void resume_parked(sl_session_t *s)
{
    while (s->parked_head) {
        sl_pub_t *p = s->parked_head;
        sl_pub_t *next = p->_next; /* run_pub reuses _next for the ack queue */
        uint64_t bytes = pub_bytes(p); /* p may be answered (gone) once it ran */
        uint32_t done = s->parked_done;
        if (!run_pub(s, p, &done)) {
            s->parked_done = done;
            return;
        }
        s->parked_head = next;
        if (!s->parked_head)
            s->parked_tail = NULL;
        s->parked--;
        s->parked_bytes -= bytes;
        s->parked_done = 0;
    }
}

/* Answers the publishes whose events reached the disk as they asked. Once
 * the session is being deleted, the rest never will: they are answered
 * SL_ECLOSED (not stored; the delete came first) instead of waiting on
 * writes the removal dropped. */
static void ack_ready(sl_session_t *s)
{
    /* Nothing is acknowledged before the attributes it was appended under
     * are on disk (storage/attrs.h). */
    if (s->attrs_pending && !s->attrs_failed && s->acks_head && !s->deleting)
        return;
    uint64_t written = s->j ? sl_journal_written_seq(s->j) : UINT64_MAX;
    uint64_t synced = s->j ? sl_journal_synced_seq(s->j) : UINT64_MAX;
    int jstatus = s->j ? sl_journal_status(s->j) : 0;
    if (jstatus == 0 && s->deleting)
        jstatus = SL_ECLOSED;
    bool attrs_bad = s->attrs_pending && s->attrs_failed;
    if (jstatus == 0 && attrs_bad)
        jstatus = -EIO;
    while (s->acks_head) {
        sl_pub_t *p = s->acks_head;
        uint64_t need = p->ephemeral ? 0 : p->last_seq;
        bool ok = need <= (p->durable ? synced : written);
        if (!ok && jstatus == 0)
            break;
        if (!ok || attrs_bad)
            p->status = jstatus;
        s->acks_head = p->_next;
        if (!s->acks_head)
            s->acks_tail = NULL;
        if (p->close && p->nevents == 0) /* it waited for the marker; answers the last event */
            p->last_seq = atomic_load_explicit(&s->e->closed_seq, memory_order_relaxed);
        reply_pub(p);
    }
}

/* ---- seq reservation ---- */

static void submit(sl_session_t *s, sl_op_t *op);

static bool fsync_on(const sl_session_t *s)
{
    return strcmp(s->srv->cfg.fsync, "never") != 0;
}

static void res_submit(sl_session_t *s, uint8_t kind, uint8_t step, int fd)
{
    sl_op_t *op = &s->res_op;
    memset(op, 0, sizeof *op);
    op->kind = kind;
    op->fd = fd;
    s->res_step = step;
    submit(s, op);
}

/* Writes the attributes file (fresh, whole, fsynced; then the folder). */
static void start_attrs_write(sl_session_t *s)
{
    if (!s->attrs_file) {
        uint8_t payload[SL_LIFECYCLE_ATTRS_MAX];
        size_t n = sl_lifecycle_attrs_encode(&s->e->attrs, payload, sizeof payload);
        s->attrs_file = malloc(SL_ATTRS_HEADER_BYTES + n);
        if (!s->attrs_file)
            return; /* retried at the next drive */
        s->attrs_file_len = (uint32_t)sl_attrs_encode(s->attrs_file, SL_ATTRS_HEADER_BYTES + n,
                                                      s->e->epoch, payload, n);
    }
    s->res_wlen = s->attrs_file_len;
    s->res_wbuf = s->attrs_file;
    s->res_attrs = true;
    s->res_err = 0;
    snprintf(s->res_path, sizeof s->res_path, "%s/%s", s->e->id, SL_ATTRS_NAME);
    sl_op_t *op = &s->res_op;
    memset(op, 0, sizeof *op);
    op->kind = SL_OP_OPENAT;
    op->fd = s->srv->data_dir_fd;
    op->path = s->res_path;
    op->flags = O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC;
    op->mode = 0644;
    s->res_step = RES_OPEN;
    submit(s, op);
}

/* Once the session issued an ephemeral seq, starts writing a higher mark
 * whenever less than half a block is left, so a steady publisher never
 * waits for it. Sessions that never publish ephemeral events write no
 * mark: their log is their high-water mark, and a restart after a crash
 * continues right after the last record. */
static void reserve_ahead(sl_session_t *s)
{
    if (s->res_step != RES_IDLE || s->deleting || s->stopping || !s->j ||
        !sl_journal_ready(s->j))
        return;
    if (s->attrs_pending && !s->attrs_failed) {
        start_attrs_write(s);
        return;
    }
    if (s->res_failed)
        return;
    if (!s->res_wanted || s->next_seq + SL_SEQ_RESERVE_BLOCK / 2 <= s->seq_reserved)
        return;
    s->seq_reserving = s->next_seq - 1 + SL_SEQ_RESERVE_BLOCK;
    sl_seqmark_encode(s->res_buf, s->e->epoch, s->seq_reserving);
    snprintf(s->res_path, sizeof s->res_path, "%s/%s", s->e->id, SL_SEQMARK_NAME);
    s->res_wbuf = s->res_buf;
    s->res_wlen = SL_SEQMARK_BYTES;
    s->res_attrs = false;
    sl_op_t *op = &s->res_op;
    memset(op, 0, sizeof *op);
    op->kind = SL_OP_OPENAT;
    op->fd = s->srv->data_dir_fd;
    op->path = s->res_path;
    op->flags = O_WRONLY | O_CREAT | O_CLOEXEC;
    op->mode = 0644;
    s->res_step = RES_OPEN;
    submit(s, op);
}

static void res_done(sl_session_t *s)
{
    s->res_step = RES_IDLE;
    if (s->res_attrs) {
        s->res_attrs = false;
        if (s->res_err != 0) {
            sl_error("cannot write session attributes", "session=%s error=\"%s\"", s->e->id,
                     sl_strerror(s->res_err));
            stat_add(&s->srv->journal_failures, 1);
            s->attrs_failed = true; /* policy: its publishes are answered -EIO */
            s->res_err = 0;
        } else {
            s->res_dir_synced = true;
            s->attrs_pending = false;
            persist_t *ps = persist_of(s->e);
            if (ps)
                ps->attrs_durable = true;
        }
        free(s->attrs_file);
        s->attrs_file = NULL;
        return;
    }
    if (s->res_err != 0) {
        sl_error("seq reservation failed", "session=%s reserved=%llu error=\"%s\"", s->e->id,
                 (unsigned long long)s->seq_reserved, sl_strerror(s->res_err));
        stat_add(&s->srv->journal_failures, 1);
        s->res_failed = true; /* policy: publishes past the mark fail (-EIO) */
        return;
    }
    s->res_dir_synced = true;
    s->seq_reserved = s->seq_reserving;
    persist_t *ps = persist_of(s->e);
    if (ps)
        ps->seq_reserved = s->seq_reserved;
}

/* One step of the mark's write: open, write, fsync, close, then (once
 * per session actor, unless fsync=never) the folder's fsync so the file's
 * directory entry survives too. */
static void res_complete(sl_session_t *s)
{
    int32_t res = s->res_op.res;
    switch (s->res_step) {
    case RES_OPEN:
    case RES_DIR_OPEN:
        if (res < 0) {
            s->res_err = res;
            res_done(s);
            return;
        }
        s->res_fd = res;
        if (s->res_step == RES_DIR_OPEN) {
            res_submit(s, SL_OP_FSYNC, RES_DIR_FSYNC, s->res_fd);
            return;
        }
        memset(&s->res_op, 0, sizeof s->res_op);
        s->res_op.kind = SL_OP_WRITE;
        s->res_op.fd = s->res_fd;
        s->res_op.buf = (void *)s->res_wbuf;
        s->res_op.len = s->res_wlen;
        s->res_op.offset = 0;
        s->res_step = RES_WRITE;
        submit(s, &s->res_op);
        return;
    case RES_WRITE:
        if (res != (int32_t)s->res_wlen)
            s->res_err = res < 0 ? res : -EIO;
        if (s->res_err == 0 && fsync_on(s))
            res_submit(s, SL_OP_FSYNC, RES_FSYNC, s->res_fd);
        else
            res_submit(s, SL_OP_CLOSE, RES_CLOSE, s->res_fd);
        return;
    case RES_FSYNC:
    case RES_DIR_FSYNC:
        if (res < 0)
            s->res_err = res;
        res_submit(s, SL_OP_CLOSE, s->res_step == RES_FSYNC ? RES_CLOSE : RES_DIR_CLOSE,
                   s->res_fd);
        return;
    case RES_CLOSE:
        s->res_fd = -1;
        if (s->res_err == 0 && !s->res_dir_synced && fsync_on(s)) {
            memset(&s->res_op, 0, sizeof s->res_op);
            s->res_op.kind = SL_OP_OPENAT;
            s->res_op.fd = s->srv->data_dir_fd;
            s->res_op.path = s->e->id;
            s->res_op.flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC;
            s->res_step = RES_DIR_OPEN;
            submit(s, &s->res_op);
            return;
        }
        res_done(s);
        return;
    case RES_DIR_CLOSE:
        s->res_fd = -1;
        res_done(s);
        return;
    }
    sl_assert(!"seq reservation completion without a step");
}

/* due: the budget timer fired (the oldest event waited a budget here). */
static void wake_subscribers(sl_session_t *s, bool due)
{
    s->last_fanout_ns = sl_clock_now_ns();
    s->fanout_pending = false;
    uint64_t bits = due ? SL_CONN_NOTIFY_DUE : SL_CONN_NOTIFY_DATA;
    for (uint32_t i = 0; i < s->nsubs; i++)
        sl_actor_notify(s->subs[i]->conn, bits);
}

static void submit(sl_session_t *s, sl_op_t *op);

/* Wakes subscribers at once when it has not for a --fanout-budget (fresh
 * events), else at the next tick of the fan-out grid (session.h): events
 * within a budget ride the same wake-up, so each subscriber takes many
 * events per pull and per send (one syscall's worth of work for many
 * events) at the price of at most one budget of added latency. */
static void fan_out(sl_session_t *s)
{
    if (s->nsubs == 0)
        return;
    uint64_t linger = s->srv->cfg.fanout_budget_ns, now = sl_clock_now_ns();
    if (!linger || now - s->last_fanout_ns >= linger) {
        wake_subscribers(s, false);
        return;
    }
    s->fanout_pending = true;
    if (!s->fanout_armed) {
        s->fanout_timer.kind = SL_OP_TIMEOUT;
        s->fanout_timer.flags = SL_TIMEOUT_ABS;
        s->fanout_timer.timeout_ns = sl_fanout_next_tick(now, linger);
        s->fanout_armed = true;
        submit(s, &s->fanout_timer);
    }
}

/* Readers may see every event up to the last one written, plus the
 * ephemeral events after it when nothing durable is still unwritten. */
static void advance_visible(sl_session_t *s)
{
    /* The close marker is not an event: the rings end before it. */
    uint64_t last = s->marker_seq ? s->marker_seq - 1 : s->next_seq - 1, v = last;
    if (s->j && sl_journal_status(s->j) == 0) {
        uint64_t written = sl_journal_written_seq(s->j);
        if (written < sl_journal_appended_seq(s->j) && written < last)
            v = written;
    }
    bool moved = false;
    if (v >= sl_ring_first_seq(s->ring) && v > sl_ring_visible_seq(s->ring)) {
        sl_ring_set_visible(s->ring, v);
        moved = true;
    }
    if (s->rpc_ring && v >= sl_ring_first_seq(s->rpc_ring) &&
        v > sl_ring_visible_seq(s->rpc_ring)) {
        sl_ring_set_visible(s->rpc_ring, v);
        moved = true;
    }
    if (moved)
        fan_out(s);
}

/* ---- subscribers ---- */

static int subs_reserve(sl_session_t *s)
{
    if (s->nsubs >= s->srv->cfg.max_subs_per_session)
        return SL_EFULL;
    if (s->nsubs < s->subs_cap)
        return 0;
    uint32_t cap = s->subs_cap ? s->subs_cap * 2 : 8;
    if (cap > s->srv->cfg.max_subs_per_session)
        cap = s->srv->cfg.max_subs_per_session;
    sl_sub_t **n = realloc(s->subs, cap * sizeof *n);
    if (!n)
        return -ENOMEM;
    s->subs = n;
    s->subs_cap = cap;
    return 0;
}

/* Places a new subscriber: at from_seq when the ring holds it, at the
 * tail for live-only or future seqs (the subscriber waits), and in
 * catch-up mode when from_seq is older than the ring. */
static void place_sub(sl_session_t *s, sl_sub_t *sub)
{
    uint64_t pos = 0;
    sub->catch_up = false;
    if (sub->from_seq == 0) {
        sub->pos = sl_ring_tail_pos(sub->ring);
        sub->start_seq = s->next_seq;
        return;
    }
    sub->start_seq = sub->from_seq;
    /* History before the retained log is gone even when the ring still
     * holds some of it: the subscriber catches up from the log, which
     * names the lost range with a sluice.gap. */
    uint64_t retained = s->j && s->seen_segments_removed ? sl_journal_first_seq(s->j) : 0;
    if (retained && sub->from_seq < retained && sub->from_seq < s->next_seq) {
        sub->catch_up = true;
        sub->pos = 0;
        return;
    }
    int rc = sl_ring_seek(sub->ring, sub->from_seq, &pos);
    if (rc == SL_ENOTFOUND)
        sub->catch_up = true;
    if (rc == SL_EAGAIN)
        sub->start_seq = s->next_seq; /* pos is the tail; the subscriber waits */
    sub->pos = pos;
}

/* The RPC ring starts empty at the next seq, visible up to where the SSE
 * ring is: older events reach RPC subscribers through catch-up. */
static int ensure_rpc_ring(sl_session_t *s)
{
    if (s->rpc_ring)
        return 0;
    const sl_config_t *cfg = &s->srv->cfg;
    int rc = sl_ring_create(cfg->session_ring_bytes, cfg->ring_page_bytes, s->next_seq,
                            &s->rpc_ring);
    if (rc == 0)
        sl_ring_set_auto_visible(s->rpc_ring, false);
    return rc;
}

/* Answers SUBSCRIBE: status 0 (registered), SL_ENOTFOUND (deleted),
 * SL_ECLOSED (this actor is ending; the connection asks its successor),
 * SL_EFULL (--max-subscribers-per-session) or -ENOMEM. A refused record is
 * not kept: the connection frees it when the answer arrives. */
static void on_subscribe(sl_session_t *s, sl_sub_t *sub)
{
    if (s->stopping && !s->deleting && !s->released && hold_sub(s, sub))
        return; /* answered SL_ECLOSED once this actor has left the entry */
    int rc = s->deleting ? SL_ENOTFOUND : s->stopping ? SL_ECLOSED : subs_reserve(s);
    if (rc == 0 && sub->rpc)
        rc = ensure_rpc_ring(s);
    if (rc != 0) {
        sub->status = rc;
        reply(&sub->h, sub->conn, SL_CONN_MSG_SUBSCRIBED);
        return;
    }
    sub->status = 0;
    sub->ring = sub->rpc ? s->rpc_ring : s->ring;
    atomic_store_explicit(&sub->ended, false, memory_order_relaxed);
    place_sub(s, sub);
    sub->_index = s->nsubs;
    s->subs[s->nsubs++] = sub;
    atomic_fetch_add_explicit(&s->e->stats.subscribers, 1, memory_order_relaxed);
    if (atomic_load_explicit(&s->e->closed, memory_order_acquire)) {
        /* Closed for good: replay what it asked for, then the end. */
        atomic_store_explicit(&sub->end_pos, sl_ring_tail_pos(sub->ring), memory_order_relaxed);
        atomic_store_explicit(&sub->ended, true, memory_order_release);
    }
    reply(&sub->h, sub->conn, SL_CONN_MSG_SUBSCRIBED);
}

static void on_unsubscribe(sl_session_t *s, sl_sub_t *sub)
{
    uint32_t i = sub->_index;
    if (i < s->nsubs && s->subs[i] == sub) {
        s->subs[i] = s->subs[--s->nsubs];
        s->subs[i]->_index = i;
        atomic_fetch_sub_explicit(&s->e->stats.subscribers, 1, memory_order_relaxed);
    }
    reply(&sub->h, sub->conn, SL_CONN_MSG_UNSUBSCRIBED);
    maybe_exit(s);
}

/* Ends every stream once it has everything up to the current tail. */
static void end_all(sl_session_t *s)
{
    for (uint32_t i = 0; i < s->nsubs; i++) {
        uint64_t tail = sl_ring_tail_pos(s->subs[i]->ring);
        atomic_store_explicit(&s->subs[i]->end_pos, tail, memory_order_relaxed);
        atomic_store_explicit(&s->subs[i]->ended, true, memory_order_release);
        sl_actor_notify(s->subs[i]->conn, SL_CONN_NOTIFY_DATA);
    }
}

/* ---- catch-up from the journal ---- */

/* Appends SSE bytes to the job's chunk. Returns false when they do not fit. */
static bool chunk_put(sl_catchup_t *cu, const uint8_t *bytes, size_t n)
{
    sl_chunk_t *c = cu->chunk;
    if (c->len + n > c->cap)
        return false;
    memcpy(c->data + c->len, bytes, n);
    c->len += (uint32_t)n;
    return true;
}

static bool put_gap(sl_session_t *s, sl_catchup_t *cu, uint64_t from, uint64_t to)
{
    if (cu->raw) {
        /* A raw reader learns of lost seqs from the jump in seq. */
        cu->gapped += to - from + 1;
        cu->next_seq = to + 1;
        return true;
    }
    uint8_t g[96];
    _Static_assert(sizeof g >= SL_RPC_GAP_MAX, "gap buffer fits both forms");
    size_t n = cu->rpc ? (size_t)sl_rpc_gap_encode(g, cu->rpc_sub_id, from, to)
                       : sl_sse_encode_gap(g, sizeof g, from, to);
    if (!chunk_put(cu, g, n))
        return false;
    cu->gapped += to - from + 1;
    stat_add(&s->srv->storage_gaps_served, 1);
    cu->next_seq = to + 1;
    return true;
}

/* The first event of an answer always fits: a chunk too small for it is
 * replaced by one of its size (like a ring read, a big event passes a
 * small window whole). Later events that do not fit wait for the next
 * request. Returns false when need bytes do not fit (or memory ran out). */
static bool make_room(sl_catchup_t *cu, size_t need)
{
    sl_chunk_t *c = cu->chunk;
    if (c->len + need <= c->cap)
        return true;
    if (cu->events > 0 || c->len + need > UINT32_MAX)
        return false;
    sl_chunk_t *n = sl_chunk_create_as((uint32_t)(c->len + need), SL_BUDGET_CATCHUP);
    if (!n)
        return false;
    memcpy(n->data, c->data, c->len);
    n->len = c->len;
    sl_chunk_release(c);
    cu->chunk = n;
    return true;
}

/* A whole RPC notification (this subscriber's prefix + the event body)
 * for a record read from the log. */
static bool put_rpc_record(sl_catchup_t *cu, const sl_record_view_t *rec)
{
    bool str = (rec->flags & SL_RECORD_F_STR) != 0;
    size_t body = sl_rpc_event_body_size(cu->session_len, rec->seq, rec->type_len,
                                         rec->data_len, str);
    if (!make_room(cu, SL_RPC_EVENT_PREFIX_MAX + body))
        return false;
    sl_chunk_t *c = cu->chunk;
    c->len += (uint32_t)sl_rpc_event_prefix_encode(c->data + c->len, cu->rpc_sub_id);
    int n = sl_rpc_event_body_encode(c->data + c->len, body, cu->session, cu->session_len,
                                     rec->seq, (const char *)rec->type, rec->type_len,
                                     rec->data, rec->data_len, str);
    sl_assert(n == (int)body);
    c->len += (uint32_t)n;
    return true;
}

/* A raw record (session.h sl_raw_event_t) for the Durable Streams face. */
static bool put_raw_record(sl_catchup_t *cu, const sl_record_view_t *rec)
{
    sl_raw_event_t h = {.seq = rec->seq, .data_len = rec->data_len,
                        .type_len = (uint8_t)rec->type_len, .flags = rec->flags};
    if (!make_room(cu, SL_RAW_EVENT_BYTES + rec->type_len + rec->data_len))
        return false;
    sl_chunk_t *c = cu->chunk;
    memcpy(c->data + c->len, &h, SL_RAW_EVENT_BYTES);
    memcpy(c->data + c->len + SL_RAW_EVENT_BYTES, rec->type, rec->type_len);
    if (rec->data_len)
        memcpy(c->data + c->len + SL_RAW_EVENT_BYTES + rec->type_len, rec->data, rec->data_len);
    c->len += SL_RAW_EVENT_BYTES + rec->type_len + rec->data_len;
    return true;
}

/* Encodes one record read from the log. Returns false when the chunk is
 * full (the record is left for the subscriber's next request). */
static bool put_record(sl_session_t *s, sl_catchup_t *cu, const sl_record_view_t *rec)
{
    if (rec->seq < cu->next_seq)
        return true;
    if (cu->raw && rec->seq > cu->raw_last)
        return true; /* beyond what the reader may see */
    if (rec->seq > cu->next_seq && !put_gap(s, cu, cu->next_seq, rec->seq - 1))
        return false;
    if (cu->raw || cu->rpc) {
        if (!(cu->raw ? put_raw_record(cu, rec) : put_rpc_record(cu, rec)))
            return false;
        cu->events++;
        cu->next_seq = rec->seq + 1;
        return true;
    }
    size_t need = sl_sse_encoded_size(rec->seq, rec->type_len, rec->data, rec->data_len);
    if (!make_room(cu, need))
        return false;
    sl_chunk_t *c = cu->chunk;
    c->len += (uint32_t)sl_sse_encode(c->data + c->len, need, rec->seq, (const char *)rec->type,
                                      rec->type_len, rec->data, rec->data_len);
    cu->events++;
    cu->next_seq = rec->seq + 1;
    return true;
}

/* The ring a catch-up hands over to: the one its subscriber reads. */
static sl_ring_t *ring_of(sl_session_t *s, const sl_catchup_t *cu)
{
    return cu->rpc && s->rpc_ring ? s->rpc_ring : s->ring;
}

/* The last seq below the ring that a catch-up may name lost. Records
 * appended but not written yet may still fill seqs above written_seq;
 * otherwise every seq below the ring that the log does not hold is gone
 * for good -- an ephemeral event from before a restart included, which is
 * in neither the log nor the new ring (naming it lost is what lets the
 * reader reach the ring instead of asking again for ever). */
static uint64_t gap_limit(sl_session_t *s, uint64_t ring_first)
{
    uint64_t to = ring_first - 1;
    if (!s->j)
        return to;
    uint64_t written = sl_journal_written_seq(s->j);
    if (sl_journal_appended_seq(s->j) > written && written < to)
        to = written; /* not written yet is not lost */
    return to;
}

static void job_reply(sl_session_t *s, catchup_job_t *job, int status)
{
    if (job->replied)
        return;
    job->replied = true;
    sl_catchup_t *cu = job->cu;
    cu->status = status;
    /* Nothing the log holds lies between here and the ring: name what was
     * lost (ephemeral events, retention) and hand over to the ring. */
    uint64_t gap_to = gap_limit(s, sl_ring_first_seq(ring_of(s, cu)));
    if (status == 0 && !cu->raw && cu->next_seq <= gap_to && cu->chunk && job->reader &&
        sl_journal_reader_status(job->reader) == SL_EAGAIN)
        put_gap(s, cu, cu->next_seq, gap_to);
    if (cu->chunk && cu->chunk->len == 0) {
        sl_chunk_release(cu->chunk);
        cu->chunk = NULL;
    }
    if (job->reader)
        sl_journal_reader_stop(job->reader);
    reply(&cu->h, cu->conn, SL_CONN_MSG_CAUGHT_UP);
}

/* Moves decoded records into the job's chunk; replies when the chunk is
 * full, the reader reached the ring, or the reader stopped. */
static bool record_is_marker(const sl_record_view_t *rec)
{
    sl_lifecycle_ext_t x;
    return rec->ext_len && sl_lifecycle_ext_decode(rec->ext, rec->ext_len, &x) == 0 && x.control;
}

static void job_consume(sl_session_t *s, catchup_job_t *job)
{
    sl_catchup_t *cu = job->cu;
    uint64_t ring_first = sl_ring_first_seq(ring_of(s, cu));
    sl_record_view_t rec;
    int rc;
    while (!job->replied && (rc = sl_journal_reader_next(job->reader, &rec)) == 1) {
        if (!cu->raw && rec.seq >= ring_first && cu->events > 0) {
            job_reply(s, job, 0); /* the ring has the rest */
            return;
        }
        if (record_is_marker(&rec)) { /* the close marker is not an event */
            if (!cu->raw) /* raw readers stay at the last event's offset */
                cu->next_seq = rec.seq + 1;
            continue;
        }
        if (!put_record(s, cu, &rec)) {
            job_reply(s, job, 0);
            return;
        }
    }
    if (job->replied)
        return;
    /* Hand over to the ring only past the retained history: what retention
     * removed must be named by a gap even if the ring still holds it. */
    uint64_t handoff = ring_first;
    if (s->seen_segments_removed && sl_journal_first_seq(s->j) > handoff)
        handoff = sl_journal_first_seq(s->j);
    if (cu->raw) /* raw readers read the log up to the end they may see */
        handoff = cu->raw_last + 1;
    int st = sl_journal_reader_status(job->reader);
    if (rc < 0 || (st != 0 && st != SL_EAGAIN)) {
        /* The log cannot be read past here (a file shorter than the index
         * says): what lies between here and the ring is a gap, so the
         * subscriber moves on instead of asking again for ever. */
        uint64_t gap_to = gap_limit(s, ring_first);
        if (cu->raw && gap_to > cu->raw_last)
            gap_to = cu->raw_last;
        if (cu->next_seq <= gap_to && cu->chunk)
            put_gap(s, cu, cu->next_seq, gap_to);
        job_reply(s, job, 0);
    } else if (cu->next_seq >= handoff) {
        job_reply(s, job, 0);
    } else if (st == SL_EAGAIN) {
        /* Caught up with what was readable at the last read; records
         * written since are read before anything is called lost. */
        sl_op_t *op = sl_journal_reader_next_op(job->reader, sl_clock_now_ns());
        if (op)
            submit(s, op);
        else
            job_reply(s, job, 0);
    }
}

static void submit(sl_session_t *s, sl_op_t *op)
{
    op->owner = &s->a;
    s->ops_inflight++;
    sl_reactor_submit(s->r, op);
}

static void drive_job(sl_session_t *s, catchup_job_t *job)
{
    if (!job->replied)
        job_consume(s, job);
    sl_op_t *op;
    bool submitted = false;
    while ((op = sl_journal_reader_next_op(job->reader, sl_clock_now_ns())) != NULL) {
        submit(s, op);
        submitted = true;
    }
    /* Planning found the reader caught up below the ring (the seqs in
     * between were ephemeral): answer now, not at the next publish. */
    if (!job->replied && !submitted && sl_journal_reader_status(job->reader) == SL_EAGAIN)
        job_consume(s, job);
}

static void reap_jobs(sl_session_t *s)
{
    catchup_job_t **pp = &s->jobs;
    while (*pp) {
        catchup_job_t *job = *pp;
        if (job->replied && sl_journal_reader_idle(job->reader)) {
            *pp = job->next;
            sl_journal_reader_destroy(job->reader);
            free(job);
            s->njobs--;
        } else {
            pp = &job->next;
        }
    }
}

static void start_catchup(sl_session_t *s, sl_catchup_t *cu);

static void refuse_catchup(sl_catchup_t *cu)
{
    cu->status = SL_ECLOSED; /* the stream ends; the client resumes by id */
    cu->chunk = NULL;
    cu->events = cu->gapped = 0;
    cu->next_seq = cu->from_seq;
    reply(&cu->h, cu->conn, SL_CONN_MSG_CAUGHT_UP);
}

static void on_catchup(sl_session_t *s, sl_catchup_t *cu)
{
    if (s->stopping || s->deleting) {
        refuse_catchup(cu);
        return;
    }
    if (s->njobs >= SESSION_CATCHUP_JOBS_MAX) {
        cu->_next = NULL;
        if (s->cu_wait_tail)
            s->cu_wait_tail->_next = cu;
        else
            s->cu_wait_head = cu;
        s->cu_wait_tail = cu;
        return;
    }
    start_catchup(s, cu);
}

static void start_waiting_catchups(sl_session_t *s)
{
    while (s->cu_wait_head && s->njobs < SESSION_CATCHUP_JOBS_MAX) {
        sl_catchup_t *cu = s->cu_wait_head;
        s->cu_wait_head = cu->_next;
        if (!s->cu_wait_head)
            s->cu_wait_tail = NULL;
        start_catchup(s, cu);
    }
}

static void start_catchup(sl_session_t *s, sl_catchup_t *cu)
{
    cu->status = 0;
    cu->events = cu->gapped = 0;
    cu->next_seq = cu->from_seq;
    cu->session = s->e->id;
    cu->session_len = s->e->id_len;
    if (cu->raw) {
        /* What a reader may see now (written, so a crash cannot take it
         * back), clipped to the requester's limit (a fork's base). */
        uint64_t visible = sl_ring_visible_seq(s->ring);
        if (cu->raw_limit && cu->raw_limit < visible)
            visible = cu->raw_limit;
        cu->raw_last = visible;
    }
    /* No bigger than what the whole log could encode to: a subscriber of a
     * short session does not cost a room-sized (up to 1 MiB) chunk. SSE
     * and RPC forms stay within twice the data plus SL_CATCHUP_EVENT_OVERHEAD
     * per event (base64 is 4/3, an event's line-break expansion is bounded
     * the same way); a short chunk only makes the answer partial. */
    uint64_t hint = 2 * atomic_load_explicit(&s->e->stats.bytes, memory_order_relaxed) +
                    SL_CATCHUP_EVENT_OVERHEAD *
                        (atomic_load_explicit(&s->e->stats.events, memory_order_relaxed) + 2);
    uint32_t cap = cu->max_bytes < hint ? cu->max_bytes : (uint32_t)hint;
    if (cap < CATCHUP_CHUNK_MIN)
        cap = CATCHUP_CHUNK_MIN;
    cu->chunk = sl_chunk_create_as(cap, SL_BUDGET_CATCHUP);
    catchup_job_t *job = cu->chunk ? calloc(1, sizeof *job) : NULL;
    if (!job || !s->j || sl_journal_reader_create(s->j, cu->from_seq, &job->reader) != 0) {
        /* No log to read: what the ring lost is gone. */
        uint64_t first = sl_ring_first_seq(ring_of(s, cu));
        if (cu->chunk && cu->from_seq < first)
            put_gap(s, cu, cu->from_seq, first - 1);
        free(job);
        catchup_job_t tmp = {.cu = cu};
        job_reply(s, &tmp, cu->chunk ? 0 : -ENOMEM);
        return;
    }
    job->cu = cu;
    job->next = s->jobs;
    s->jobs = job;
    s->njobs++;
    stat_add(&s->srv->journal_reads, 1);
    drive_job(s, job);
    reap_jobs(s);
}

/* ---- the journal pipeline ---- */

static void arm_timer(sl_session_t *s)
{
    uint64_t deadline = s->j ? sl_journal_deadline(s->j) : 0;
    for (catchup_job_t *job = s->jobs; job; job = job->next) {
        uint64_t d = sl_journal_reader_deadline(job->reader);
        if (d && (!deadline || d < deadline))
            deadline = d;
    }
    if (!deadline || s->timer_armed)
        return;
    uint64_t now = sl_clock_now_ns();
    s->timer.kind = SL_OP_TIMEOUT;
    s->timer.timeout_ns = deadline > now ? deadline - now : 1000;
    s->timer_armed = true;
    submit(s, &s->timer);
}

/* Submits whatever the journal and the readers have due, answers what
 * became durable, and moves the visible edge. */
/* Folds the journal's counters into the server's (once per drive, from
 * the last figures seen), what retention removed into the session's stats
 * and, when a segment went, into the saved segment list (a clean manifest must never
 * list a deleted file). Arms the age timer for idle sessions. */
static void account_journal(sl_session_t *s)
{
    sl_journal_stats_t st;
    sl_journal_stats(s->j, &st);
    stat_add(&s->srv->journal_bytes_written, st.bytes_written - s->seen_bytes_written);
    stat_add(&s->srv->journal_fsyncs, st.fsyncs - s->seen_fsyncs);
    s->seen_bytes_written = st.bytes_written;
    s->seen_fsyncs = st.fsyncs;
    stat_add(&s->srv->journal_syncfs_rounds, st.syncfs_rounds - s->seen_syncfs_rounds);
    s->seen_syncfs_rounds = st.syncfs_rounds;
    stat_add(&s->srv->journal_fsyncs_overlapped, st.fsyncs_overlapped - s->seen_fsyncs_overlapped);
    s->seen_fsyncs_overlapped = st.fsyncs_overlapped;

    if (st.segments_removed != s->seen_segments_removed) {
        sl_session_stats_t *ss = &s->e->stats;
        uint64_t ev = st.events_removed - s->seen_events_removed;
        uint64_t by = st.payload_bytes_removed - s->seen_payload_removed;
        uint64_t cur = atomic_load_explicit(&ss->events, memory_order_relaxed);
        atomic_store_explicit(&ss->events, cur > ev ? cur - ev : 0, memory_order_relaxed);
        cur = atomic_load_explicit(&ss->bytes, memory_order_relaxed);
        atomic_store_explicit(&ss->bytes, cur > by ? cur - by : 0, memory_order_relaxed);
        uint64_t first = sl_journal_first_seq(s->j);
        if (first > atomic_load_explicit(&ss->first_seq, memory_order_relaxed))
            atomic_store_explicit(&ss->first_seq, first, memory_order_relaxed);
        s->seen_events_removed = st.events_removed;
        s->seen_payload_removed = st.payload_bytes_removed;
        s->seen_segments_removed = st.segments_removed;
        save_segments(s);
    }
    uint64_t at = sl_journal_retention_deadline(s->j);
    if (at && !s->ret_armed && !s->stopping && !s->deleting) {
        uint64_t now = sl_clock_now_ns();
        s->ret_timer.kind = SL_OP_TIMEOUT;
        s->ret_timer.timeout_ns = at > now ? at - now : 1000;
        s->ret_armed = true;
        submit(s, &s->ret_timer);
    }
}

/* Catch-up resyncs past damaged log bytes, into /health. */
static void account_damage(sl_session_t *s)
{
    uint64_t n = sl_segment_index_damage_skips(sl_journal_index(s->j));
    if (n == s->seen_damage_skips)
        return;
    stat_add(&s->srv->storage_damage_resyncs, n - s->seen_damage_skips);
    s->seen_damage_skips = n;
    persist_t *ps = persist_of(s->e);
    if (ps) { /* the next start must scan (and repair) this session's files */
        pthread_mutex_lock(&s->e->lock);
        ps->damaged = true;
        pthread_mutex_unlock(&s->e->lock);
    }
}

static void drive(sl_session_t *s)
{
    if (s->j) {
        sl_op_t *op;
        while ((op = sl_journal_next_op(s->j, sl_clock_now_ns())) != NULL)
            submit(s, op);
        account_journal(s);
    }
    for (catchup_job_t *job = s->jobs; job; job = job->next)
        drive_job(s, job);
    if (s->j)
        account_damage(s);
    reap_jobs(s);
    start_waiting_catchups(s);
    reserve_ahead(s);
    resume_parked(s);
    ack_ready(s);
    advance_visible(s);
    arm_timer(s);
    maybe_exit(s);
}

/* Idle: nothing to serve and nothing in flight but the idle timer. */
static bool idle(const sl_session_t *s)
{
    return !s->deleting && !s->stopping && s->nsubs == 0 && !s->jobs && !s->parked &&
           !s->acks_head && s->ops_inflight == (s->idle_armed ? 1u : 0u) + (s->ret_armed ? 1u : 0u) &&
           (!s->j || sl_journal_inflight(s->j) == 0);
}

static void arm_idle(sl_session_t *s)
{
    uint64_t after = s->srv->cfg.session_idle_ns;
    if (!after || s->idle_armed || s->deleting || s->stopping)
        return;
    s->idle_timer.kind = SL_OP_TIMEOUT;
    s->idle_timer.timeout_ns = after;
    s->idle_armed = true;
    submit(s, &s->idle_timer);
}

/* Hibernation: an idle session closes its log and its actor exits; the
 * entry keeps the stats and the segment list, and the next request starts
 * a new actor on the same files. */
static void on_idle_timer(sl_session_t *s)
{
    s->idle_armed = false;
    if (s->close_deferred) { /* fault point slow_hibernate: the close is due */
        s->close_deferred = false;
        sl_journal_close(s->j);
        maybe_exit(s);
        return;
    }
    uint64_t after = s->srv->cfg.session_idle_ns;
    if (idle(s) && sl_clock_now_ns() - s->active_ns >= after) {
        s->stopping = true;
        if (s->j && sl_fault("slow_hibernate")) {
            /* Tests: the log takes SL_SESSION_SLOW_HIBERNATE_MS to close,
             * as it may on a loaded machine; requests arrive meanwhile. */
            s->close_deferred = true;
            s->idle_timer.kind = SL_OP_TIMEOUT;
            s->idle_timer.timeout_ns = SL_SESSION_SLOW_HIBERNATE_MS * SL_NS_PER_MS;
            s->idle_armed = true;
            submit(s, &s->idle_timer);
        } else if (s->j) {
            sl_journal_close(s->j);
        }
        if (s->ret_armed) { /* retention resumes when the session wakes */
            s->cancel_ret.kind = SL_OP_CANCEL;
            s->cancel_ret.target = &s->ret_timer;
            submit(s, &s->cancel_ret);
        }
        return;
    }
    arm_idle(s);
}

static void on_io(sl_session_t *s, sl_op_t *op)
{
    s->ops_inflight--;
    if (op == &s->ret_timer) {
        s->ret_armed = false; /* drive() below runs the removal */
    } else if (op == &s->fanout_timer) {
        s->fanout_armed = false;
        if (s->fanout_pending)
            wake_subscribers(s, true);
    } else if (op == &s->idle_timer) {
        on_idle_timer(s);
    } else if (op == &s->cancel_idle || op == &s->cancel_ret) {
        /* the idle timer completes on its own (-ECANCELED) */
    } else if (op == &s->timer) {
        s->timer_armed = false;
    } else if (op == &s->res_op) {
        res_complete(s);
    } else if (s->j && sl_journal_owns_op(s->j, op)) {
        sl_journal_complete(s->j, op);
        if (sl_journal_status(s->j) != 0 && !s->journal_ending) {
            sl_error("session log failed", "session=%s error=\"%s\"", s->e->id,
                     sl_strerror(sl_journal_status(s->j)));
            stat_add(&s->srv->journal_failures, 1);
            s->journal_ending = true;
        }
    } else {
        for (catchup_job_t *job = s->jobs; job; job = job->next) {
            if (sl_journal_reader_owns_op(job->reader, op)) {
                sl_journal_reader_complete(job->reader, op);
                break;
            }
        }
    }
    drive(s);
}

static void begin_end(sl_session_t *s, bool del)
{
    if (del)
        s->deleting = true;
    else
        s->stopping = true;
    end_all(s);
    /* Parked publishes never got a seq: refuse them now. */
    while (s->parked_head) {
        sl_pub_t *p = s->parked_head;
        s->parked_head = p->_next;
        if (s->parked_done == 0) {
            p->status = SL_ECLOSED;
            reply_pub(p);
        } else {
            queue_ack(s, p); /* its prefix is in: answer with what landed */
        }
        s->parked_done = 0;
    }
    s->parked_tail = NULL;
    s->parked = 0;
    s->parked_bytes = 0;
    while (s->cu_wait_head) {
        sl_catchup_t *cu = s->cu_wait_head;
        s->cu_wait_head = cu->_next;
        refuse_catchup(cu);
    }
    s->cu_wait_tail = NULL;
    if (s->j) {
        if (del)
            sl_journal_remove(s->j);
        else
            sl_journal_close(s->j);
    }
    if (s->idle_armed) {
        s->cancel_idle.kind = SL_OP_CANCEL;
        s->cancel_idle.target = &s->idle_timer;
        submit(s, &s->cancel_idle);
    }
    if (s->ret_armed) {
        s->cancel_ret.kind = SL_OP_CANCEL;
        s->cancel_ret.target = &s->ret_timer;
        submit(s, &s->cancel_ret);
    }
    drive(s);
}

static void behavior(sl_actor_t *self, sl_msg_t *m)
{
    sl_session_t *s = (sl_session_t *)self;
    if (m->kind != SL_MSG_KIND_IO && m->kind != SL_MSG_KIND_NOTIFY)
        s->active_ns = sl_clock_now_ns();
    arm_idle(s);
    switch (m->kind) {
    case SL_SESSION_MSG_PUBLISH:
        on_publish(s, (sl_pub_t *)(void *)m);
        break;
    case SL_SESSION_MSG_SUBSCRIBE:
        on_subscribe(s, (sl_sub_t *)(void *)m);
        break;
    case SL_SESSION_MSG_UNSUBSCRIBE:
        on_unsubscribe(s, (sl_sub_t *)(void *)m);
        break;
    case SL_SESSION_MSG_CATCHUP:
        on_catchup(s, (sl_catchup_t *)(void *)m);
        break;
    case SL_SESSION_MSG_DELETE:
        begin_end(s, true);
        break;
    case MSG_STOP:
        begin_end(s, false);
        break;
    case SL_MSG_KIND_IO:
        on_io(s, sl_op_from_msg(m));
        break;
    case SL_MSG_KIND_NOTIFY:
        if (sl_actor_take_notify(self) & NOTIFY_FLUSH)
            drive(s);
        break;
    default:
        sl_msg_release(m);
        break;
    }
}

static void destroy(sl_actor_t *self)
{
    sl_session_t *s = (sl_session_t *)self;
    sl_assert(s->nheld == 0); /* answered when the actor left its entry */
    atomic_fetch_sub_explicit(&s->srv->counters.sessions_live, 1, memory_order_relaxed);
    sl_ring_destroy(s->ring);
    sl_ring_destroy(s->rpc_ring);
    sl_journal_destroy(s->j);
    free(s->subs);
    free(s->attrs_file);
    sl_entry_release(s->e);
    free(s);
}

/* Rebuilds a segment index from the list saved when the session last
 * hibernated (no file is opened; sparse offsets refill as reads happen). */
static sl_segment_index_t *index_from_segments(const sl_journal_config_t *jc, persist_t *ps)
{
    sl_segment_index_t *ix;
    if (sl_segment_index_create(jc->segment_bytes_max, jc->data_max, &ix) != 0)
        return NULL;
    for (uint32_t i = 0; i < ps->nsegs; i++) {
        if (ps->segs[i].events == 0)
            continue;
        if (sl_segment_index_add(ix, &ps->segs[i]) != 0) {
            sl_segment_index_destroy(ix);
            return NULL;
        }
    }
    return ix;
}

/* The syncer thread finished a syncfs this session's journal waits on. */
static void journal_wake(void *ctx)
{
    sl_session_t *s = ctx;
    sl_actor_notify(&s->a, NOTIFY_FLUSH);
}

static sl_journal_t *journal_start(sl_server_t *srv, sl_session_t *s, sl_entry_t *e)
{
    const sl_config_t *cfg = &srv->cfg;
    sl_journal_config_t jc = {
        .data_dir_fd = srv->data_dir_fd,
        .fdcache = srv->fdcache,
        .fdcache_lock = &srv->fdcache_lock,
        .segment_bytes_max = cfg->segment_bytes,
        .data_max = (uint32_t)cfg->max_event_bytes,
        .buffer_bytes = (uint32_t)cfg->journal_buffer_bytes,
        .read_bytes = 0,
        .fsync = strcmp(cfg->fsync, "always") == 0  ? SL_JOURNAL_FSYNC_ALWAYS
                 : strcmp(cfg->fsync, "never") == 0 ? SL_JOURNAL_FSYNC_NEVER
                                                    : SL_JOURNAL_FSYNC_BATCH,
        .fsync_interval_ns = cfg->fsync_interval_ns,
        .fsync_overlap = cfg->fsync_overlap,
        .syncer = srv->syncer,
        .rounds_active = &srv->rounds_active,
        .fsync_scope = strcmp(cfg->fsync_scope, "file") == 0 ? SL_JOURNAL_SCOPE_FILE
                       : strcmp(cfg->fsync_scope, "fs") == 0 ? SL_JOURNAL_SCOPE_FS
                                                             : SL_JOURNAL_SCOPE_AUTO,
        .sync_wake = journal_wake,
        .sync_wake_ctx = s,
        /* A session deleted and at once published to again: the new
         * incarnation waits for the old folder's removal. */
        .mkdir_wait_ns = (uint64_t)SL_JOURNAL_MKDIR_WAIT_MS * SL_NS_PER_MS,
    };
    sl_journal_t *j = NULL;
    persist_t *ps = e->persist;
    int rc;
    if (ps && !ps->recovered && ps->nsegs > 0)
        ps->recovered = index_from_segments(&jc, ps); /* waking from hibernation */
    if (sl_fault("session_start")) {
        rc = -EMFILE; /* as when the process is out of file descriptors */
    } else if (ps && ps->recovered) {
        rc = sl_journal_open_recovered(&jc, e->id, e->id_len, e->epoch, ps->recovered, &j);
        if (rc == 0)
            ps->recovered = NULL; /* the journal owns it now */
    } else {
        rc = sl_journal_create(&jc, e->id, e->id_len, e->epoch, &j);
    }
    if (rc != 0) {
        sl_error("cannot start session log", "session=%s error=\"%s\"", e->id, sl_strerror(rc));
        return NULL;
    }
    sl_journal_set_retention(j, cfg->retention_bytes, cfg->retention_age_ns);
    return j;
}

/* The reactor a new session lives on (its actor and its journal I/O).
 * Thread-per-core: the reactor of the connection that starts it, usually
 * the producer's, so each publish reaches the session and its journal
 * without a thread hand-off; sessions spread over reactors as connections
 * do (SO_REUSEPORT). A worker pool or a start from outside any reactor
 * (the main thread) takes the next reactor in turn. */
static sl_reactor_t *session_reactor(sl_server_t *srv)
{
    sl_reactor_t *self = sl_reactor_self();
    if (srv->cfg.workers == 0 && self && sl_reactor_index(self) < srv->nreactors &&
        srv->reactors[sl_reactor_index(self)] == self)
        return self;
    return srv->reactors[atomic_fetch_add(&srv->next_reactor, 1) % srv->nreactors];
}

static sl_session_t *session_create(sl_server_t *srv, sl_entry_t *e)
{
    sl_session_t *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    uint64_t next = atomic_load_explicit(&e->stats.last_seq, memory_order_relaxed) + 1;
    persist_t *ps = e->persist;
    if (ps && ps->recovered) {
        uint64_t hwm = sl_segment_index_last_seq(ps->recovered);
        if (hwm + 1 > next)
            next = hwm + 1;
    }
    if (sl_ring_create(srv->cfg.session_ring_bytes, srv->cfg.ring_page_bytes, next, &s->ring) != 0) {
        free(s);
        return NULL;
    }
    s->j = journal_start(srv, s, e);
    if (!s->j) {
        sl_ring_destroy(s->ring);
        free(s);
        return NULL;
    }
    sl_ring_set_auto_visible(s->ring, false);
    s->srv = srv;
    s->e = e;
    sl_entry_retain(e);
    s->next_seq = next;
    s->res_fd = -1;
    const sl_session_attrs_t *a = &e->attrs;
    if ((a->ttl_ns || a->expires_at_ns || a->content_type_len || a->parent_len) &&
        !(ps && ps->attrs_durable))
        s->attrs_pending = true;
    if (ps && ps->seq_reserved >= next) { /* waking from hibernation */
        s->seq_reserved = ps->seq_reserved;
        s->res_dir_synced = true;
        s->res_wanted = true;
    }
    s->active_ns = sl_clock_now_ns();
    s->r = session_reactor(srv);
    s->delete_msg = (sl_msg_t){.kind = SL_SESSION_MSG_DELETE, .mclass = SL_MSG_CONTROL};
    s->stop_msg = (sl_msg_t){.kind = MSG_STOP, .mclass = SL_MSG_CONTROL};
    sl_actor_init(&s->a, sl_server_sched_of(srv, s->r), "session", srv->cfg.mailbox_capacity, behavior, destroy);
    if (srv->cfg.urgent_sessions)
        sl_actor_set_urgent(&s->a); /* publishes are not queued behind fan-out */
    atomic_fetch_add_explicit(&srv->counters.sessions_live, 1, memory_order_relaxed);
    /* A new journal has ops due at once (its folder); drive it. */
    sl_actor_notify(&s->a, NOTIFY_FLUSH);
    return s;
}

static sl_actor_t *acquire(sl_server_t *srv, sl_entry_t *e, bool even_deleted)
{
    sl_actor_t *a = NULL;
    pthread_mutex_lock(&e->lock);
    if (!e->session && (even_deleted || !atomic_load_explicit(&e->deleted, memory_order_acquire)))
        e->session = session_create(srv, e);
    if (e->session) {
        a = &((sl_session_t *)e->session)->a;
        sl_actor_retain(a);
    }
    pthread_mutex_unlock(&e->lock);
    return a;
}

sl_actor_t *sl_session_acquire(sl_server_t *srv, sl_entry_t *e) { return acquire(srv, e, false); }

int sl_session_unavailable(const sl_entry_t *e)
{
    return atomic_load_explicit(&e->deleted, memory_order_acquire) ? SL_ENOTFOUND : SL_ECLOSED;
}

static void send_once(sl_entry_t *e, bool del)
{
    pthread_mutex_lock(&e->lock);
    sl_session_t *s = e->session;
    if (s) {
        bool *sent = del ? &s->delete_sent : &s->stop_sent;
        if (!*sent) {
            *sent = true;
            sl_actor_send(&s->a, del ? &s->delete_msg : &s->stop_msg);
        }
    }
    pthread_mutex_unlock(&e->lock);
}

void sl_session_delete(sl_server_t *srv, sl_entry_t *e)
{
    /* A session that is not running still has files: start it to remove
     * them (its actor exits once they are gone). */
    sl_actor_t *a = acquire(srv, e, true);
    send_once(e, true);
    if (a)
        sl_actor_release(a);
}

void sl_session_stop(sl_entry_t *e) { send_once(e, false); }
