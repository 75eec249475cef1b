/*
 * Session actor. See session.h.
 */
#include "actors/session.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "actors/server.h"
#include "net/sse.h"
#include "runtime/clock.h"
#include "runtime/log.h"

#define NOTIFY_FLUSH 1ull

enum { MSG_STOP = SL_MSG_KIND_USER + 64 };

struct sl_session {
    sl_actor_t a;
    sl_server_t *srv;
    sl_entry_t *e;        /* reference */
    sl_ring_t *ring;
    uint64_t next_seq;
    sl_sub_t **subs;      /* live subscriptions, unordered */
    uint32_t nsubs, subs_cap;
    bool deleting, stopping, released;
    sl_msg_t delete_msg, stop_msg; /* CONTROL, sent at most once each */
    bool delete_sent, stop_sent;   /* guarded by e->lock */
};

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

/* Leaves the directory entry and drops the actor's own reference once
 * nothing depends on it any more. */
static void maybe_exit(sl_session_t *s)
{
    if (s->released || !(s->deleting || s->stopping) || s->nsubs > 0)
        return;
    s->released = true;
    pthread_mutex_lock(&s->e->lock);
    if (s->e->session == s)
        s->e->session = NULL;
    pthread_mutex_unlock(&s->e->lock);
    sl_actor_release(&s->a);
}

/* Sequences and encodes one event into the ring. Returns 0 or -ENOMEM. */
static int append_event(sl_session_t *s, const uint8_t *type, uint32_t type_len,
                        const uint8_t *data, uint32_t data_len)
{
    uint64_t seq = s->next_seq;
    size_t size = sl_sse_encoded_size(seq, type_len, data, data_len);
    uint8_t *dst = sl_ring_reserve(s->ring, (uint32_t)size);
    if (!dst)
        return -ENOMEM;
    size_t n = sl_sse_encode(dst, size, seq, (const char *)type, type_len, data, data_len);
    sl_assert(n == size);
    sl_ring_commit(s->ring, seq, (uint32_t)size);
    s->next_seq = seq + 1;
    sl_session_stats_t *st = &s->e->stats;
    uint64_t zero = 0;
    atomic_compare_exchange_strong(&st->first_seq, &zero, seq);
    atomic_store_explicit(&st->last_seq, seq, memory_order_relaxed);
    stat_add(&st->events, 1);
    stat_add(&st->bytes, data_len);
    return 0;
}

static void on_publish(sl_session_t *s, sl_pub_t *p)
{
    p->status = 0;
    p->first_seq = p->last_seq = 0;
    if (s->deleting || s->stopping) {
        p->status = SL_ECLOSED;
    } else {
        for (uint32_t i = 0; i < p->nevents; i++) {
            const sl_pub_event_t *ev = &p->events[i];
            int rc = append_event(s, p->buf + ev->type_off, ev->type_len, p->buf + ev->data_off,
                                  ev->data_len);
            if (rc != 0) {
                p->status = rc;
                break;
            }
            if (i == 0)
                p->first_seq = s->next_seq - 1;
            p->last_seq = s->next_seq - 1;
        }
        if (p->last_seq) {
            atomic_store_explicit(&s->e->stats.last_activity_ns, sl_clock_wall_ns(),
                                  memory_order_relaxed);
            stat_add(&s->srv->counters.events_published, p->last_seq - p->first_seq + 1);
            sl_actor_notify(&s->a, NOTIFY_FLUSH); /* fan out once per batch */
        }
    }
    reply(&p->h, p->reply_to, SL_CONN_MSG_PUBLISHED);
}

static void fan_out(sl_session_t *s)
{
    for (uint32_t i = 0; i < s->nsubs; i++)
        sl_actor_notify(s->subs[i]->conn, SL_CONN_NOTIFY_DATA);
}

static int subs_reserve(sl_session_t *s)
{
    if (s->nsubs < s->subs_cap)
        return 0;
    uint32_t cap = s->subs_cap ? s->subs_cap * 2 : 8;
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
        sub->pos = sl_ring_tail_pos(s->ring);
        sub->start_seq = s->next_seq;
        return;
    }
    sub->start_seq = sub->from_seq;
    int rc = sl_ring_seek(s->ring, sub->from_seq, &pos);
    if (rc == SL_ENOTFOUND)
        sub->catch_up = true;
    if (rc == SL_EAGAIN)
        sub->start_seq = s->next_seq; /* pos is the tail; the subscriber waits */
    sub->pos = pos;
}

/* Catch-up without a durable copy: what the ring no longer holds is lost,
 * and the subscriber is told so with one gap notice. */
static void on_catchup(sl_session_t *s, sl_catchup_t *cu)
{
    cu->status = 0;
    cu->chunk = NULL;
    cu->events = cu->gapped = 0;
    uint64_t first = sl_ring_first_seq(s->ring);
    cu->next_seq = cu->from_seq;
    if (cu->from_seq < first) {
        sl_chunk_t *c = sl_chunk_create(96);
        if (c) {
            c->len = (uint32_t)sl_sse_encode_gap(c->data, c->cap, cu->from_seq, first - 1);
            cu->chunk = c;
            cu->gapped = first - cu->from_seq;
            cu->next_seq = first;
        } else {
            cu->status = -ENOMEM;
        }
    }
    reply(&cu->h, cu->conn, SL_CONN_MSG_CAUGHT_UP);
}

static void on_subscribe(sl_session_t *s, sl_sub_t *sub)
{
    if (s->deleting || s->stopping || subs_reserve(s) != 0) {
        sub->status = s->deleting ? SL_ENOTFOUND : SL_ECLOSED;
        reply(&sub->h, sub->conn, SL_CONN_MSG_SUBSCRIBED);
        return;
    }
    sub->status = 0;
    sub->ring = s->ring;
    atomic_store_explicit(&sub->ended, false, memory_order_relaxed);
    place_sub(s, sub);
    sub->_index = s->nsubs;
    s->subs[s->nsubs++] = sub;
    atomic_fetch_add_explicit(&s->e->stats.subscribers, 1, memory_order_relaxed);
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

/* Ends every stream after what it has been sent so far can be completed:
 * the subscriber finishes up to the current tail, then ends cleanly. */
static void end_all(sl_session_t *s)
{
    uint64_t tail = sl_ring_tail_pos(s->ring);
    for (uint32_t i = 0; i < s->nsubs; i++) {
        atomic_store_explicit(&s->subs[i]->end_pos, tail, memory_order_relaxed);
        atomic_store_explicit(&s->subs[i]->ended, true, memory_order_release);
        sl_actor_notify(s->subs[i]->conn, SL_CONN_NOTIFY_DATA);
    }
}

static void behavior(sl_actor_t *self, sl_msg_t *m)
{
    sl_session_t *s = (sl_session_t *)self;
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
    case MSG_STOP:
        if (m->kind == SL_SESSION_MSG_DELETE)
            s->deleting = true;
        else
            s->stopping = true;
        end_all(s);
        maybe_exit(s);
        break;
    case SL_MSG_KIND_NOTIFY:
        if (sl_actor_take_notify(self) & NOTIFY_FLUSH)
            fan_out(s);
        break;
    default:
        sl_msg_release(m);
        break;
    }
}

static void destroy(sl_actor_t *self)
{
    sl_session_t *s = (sl_session_t *)self;
    atomic_fetch_sub_explicit(&s->srv->counters.sessions_live, 1, memory_order_relaxed);
    sl_ring_destroy(s->ring);
    free(s->subs);
    sl_entry_release(s->e);
    free(s);
}

static sl_session_t *session_create(sl_server_t *srv, sl_entry_t *e)
{
    sl_session_t *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    uint64_t next = atomic_load_explicit(&e->stats.last_seq, memory_order_relaxed) + 1;
    if (sl_ring_create(srv->cfg.session_ring_bytes, srv->cfg.ring_page_bytes, next, &s->ring) != 0) {
        free(s);
        return NULL;
    }
    s->srv = srv;
    s->e = e;
    sl_entry_retain(e);
    s->next_seq = next;
    s->delete_msg = (sl_msg_t){.kind = SL_SESSION_MSG_DELETE, .mclass = SL_MSG_CONTROL};
    s->stop_msg = (sl_msg_t){.kind = MSG_STOP, .mclass = SL_MSG_CONTROL};
    sl_actor_init(&s->a, srv->sched, "session", srv->cfg.mailbox_capacity, behavior, destroy);
    atomic_fetch_add_explicit(&srv->counters.sessions_live, 1, memory_order_relaxed);
    return s;
}

sl_actor_t *sl_session_acquire(sl_server_t *srv, sl_entry_t *e)
{
    sl_actor_t *a = NULL;
    pthread_mutex_lock(&e->lock);
    if (!e->session && !atomic_load_explicit(&e->deleted, memory_order_acquire))
        e->session = session_create(srv, e);
    if (e->session) {
        a = &((sl_session_t *)e->session)->a;
        sl_actor_retain(a);
    }
    pthread_mutex_unlock(&e->lock);
    return a;
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
    (void)srv;
    send_once(e, true);
}

void sl_session_stop(sl_entry_t *e) { send_once(e, false); }
