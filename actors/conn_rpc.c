/*
 * Connection actor, msgpack-RPC side (API.md "msgpack-RPC"): decodes
 * requests with net/rpc's bounded decoder, runs them, and writes responses
 * and subscription notifications into the connection's output queue.
 *
 * Requests are handled in arrival order, but answers go out as soon as each
 * is ready: a publish is answered when its session says the event is
 * written (or synced), everything else at once, so responses may overtake
 * one another (clients match msgid).
 *
 * Bounds and their policies:
 * - --max-rpc-message-bytes and the decoder's depth/array/map/object limits:
 *   a message over them closes the connection with a logged reason (the
 *   framing cannot be trusted past it).
 * - --rpc-max-inflight publishes awaiting their session per connection, and
 *   RPC_REQUEST_ROOM bytes of output room: while either is exhausted no
 *   request is decoded and the socket is not read, so a client that sends
 *   faster than sluice accepts is slowed by TCP, not by our memory. At most
 *   one receive buffer of input (RPC_STASH_BYTES) waits beside the decoder.
 * - Subscriptions per connection: --max-streams (beyond: overloaded). Their
 *   notifications use the output queue up to RPC_REQUEST_ROOM below its
 *   bound, so answers always have room to go out.
 *
 * Event notifications are the session's per-event msgpack body (encoded
 * once into its RPC ring, shared by every subscriber) behind a few bytes of
 * per-subscription prefix.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "actors/conn_int.h"
#include "actors/sessops.h"
#include "actors/json.h"
#include "actors/monitor.h"
#include "actors/server.h"
#include "net/rpc.h"
#include "runtime/clock.h"
#include "runtime/log.h"
#include "storage/session_id.h"

/* Input held beside the decoder while requests wait (one receive). */
#define RPC_STASH_BYTES SL_RECV_BUFFER_BYTES
/* Requests decoded per turn before yielding to other actors. */
#define RPC_REQUESTS_PER_TURN 256
/* Output room a request needs before it is decoded (the largest ordinary
 * answer is a 1,000-entry sessions page, about 300 KB). */
#define RPC_REQUEST_ROOM (512u * 1024)
/* Segment slots kept free for answers; notifications stop short of them. */
#define RPC_REQUEST_SEGS 16
/* Events per ring read of one subscription. */
#define RPC_EVENTS_PER_PULL 64
/* Notifications up to this size are copied (prefix and shared body) into
 * the output queue's scratch chunk, where consecutive ones merge into one
 * iovec; larger bodies are referenced. For token-sized events a 100-byte
 * copy costs less than a reference count and an iovec per event. */
#define RPC_COPY_EVENT_BYTES 512
#define RPC_ERROR_MAX 256
/* Output kept for the answer of each publish in flight (an error answer
 * with its message fits). */
#define RPC_PUBLISH_ANSWER_MAX 128
/* Consecutive `publish` requests to one session with the same options are
 * sent to it as one batch (one message, one answer, one allocation), at
 * most this many events or bytes; each request still gets its own answer
 * with its own seq. */
#define RPC_COALESCE_EVENTS 256
#define RPC_COALESCE_BYTES (256u * 1024)

/* Publishes gathered for one session, not yet sent. */
typedef struct rpc_batch {
    uint32_t n;
    char id[SL_SESSION_ID_MAX];
    uint32_t id_len;
    bool durable, ephemeral;
    uint32_t msgids[RPC_COALESCE_EVENTS];
    sl_pub_event_t ev[RPC_COALESCE_EVENTS];
    uint8_t *buf;          /* types and data, grown as needed */
    size_t len, cap;
} rpc_batch_t;

struct sl_conn_rpc {
    sl_rpc_decoder_t *dec;
    uint8_t *stash;        /* input the decoder could not take yet */
    uint32_t stash_len;
    uint32_t next_sub_id;
    uint32_t answers;      /* publish requests sent to sessions, not answered */
    bool failed;           /* framing lost: no more input */
    rpc_batch_t batch;
};

/* ---- output helpers ---- */

/* Output room kept free for answers: one ordinary answer plus the answers
 * of every publish in flight, which are written whenever sessions reply. */
static uint64_t request_room(const sl_conn_t *c)
{
    uint64_t max = c->outq.bytes_max;
    uint64_t one = RPC_REQUEST_ROOM < max / 4 ? RPC_REQUEST_ROOM : max / 4;
    uint64_t pending = (uint64_t)c->rpc->answers + c->rpc->batch.n;
    return one + pending * RPC_PUBLISH_ANSWER_MAX;
}

/* An answer that cannot be queued would leave its client waiting forever:
 * close the connection instead (never expected: room is kept for it). */
static void put_failed(sl_conn_t *c, uint32_t msgid, int rc)
{
    sl_warn("rpc answer does not fit the output queue; closing", "peer=%s msgid=%u error=\"%s\"",
            c->peer, msgid, sl_strerror(rc));
    c->proto_failed = true;
}

static void put_error(sl_conn_t *c, uint32_t msgid, const char *code, const char *msg)
{
    uint8_t buf[RPC_ERROR_MAX];
    int n = sl_rpc_error_encode(buf, sizeof buf, msgid, code, msg);
    sl_assert(n > 0);
    atomic_fetch_add_explicit(&c->srv->counters.responses_4xx, 1, memory_order_relaxed);
    int rc = sl_rpc_outq_put(&c->outq, buf, (size_t)n);
    if (rc != 0)
        put_failed(c, msgid, rc);
}

static void put_packed(sl_conn_t *c, uint32_t msgid, const msgpack_sbuffer *sb)
{
    if (sl_rpc_outq_response_packed(&c->outq, msgid, sb->data, sb->size) != 0)
        put_error(c, msgid, "overloaded", "answer does not fit the output queue now; retry");
}

static void put_uint(sl_conn_t *c, uint32_t msgid, uint64_t v)
{
    uint8_t buf[32];
    int n = sl_rpc_response_uint(buf, sizeof buf, msgid, v);
    int rc = sl_rpc_outq_put(&c->outq, buf, (size_t)n);
    if (rc != 0)
        put_failed(c, msgid, rc);
}

static void put_true(sl_conn_t *c, uint32_t msgid)
{
    uint8_t buf[16];
    int n = sl_rpc_response_bool(buf, sizeof buf, msgid, true);
    int rc = sl_rpc_outq_put(&c->outq, buf, (size_t)n);
    if (rc != 0)
        put_failed(c, msgid, rc);
}

/* Answers with the msgpack form of a JSON document sluice rendered. */
static void put_json(sl_conn_t *c, uint32_t msgid, const char *json, size_t len)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (sl_json_to_msgpack(json, len, &pk) != 0)
        put_error(c, msgid, "internal", "cannot encode the answer");
    else
        put_packed(c, msgid, &sb);
    msgpack_sbuffer_destroy(&sb);
}

/* ---- params ---- */

/* The session id of params[i]; answers and returns false when it is bad. */
static bool param_session(sl_conn_t *c, uint32_t msgid, const msgpack_object_array *a, uint32_t i,
                          const char **id, size_t *len)
{
    if (i >= a->size || !sl_rpc_obj_bytes(&a->ptr[i], id, len)) {
        put_error(c, msgid, "bad_params", "expected a session id (str)");
        return false;
    }
    if (!sl_session_id_valid(*id, *len)) {
        put_error(c, msgid, "invalid_session_id",
                  "session ids are 1-128 bytes of [A-Za-z0-9._-], not starting with '.'");
        return false;
    }
    return true;
}

/* Access control (API.md): the connection's principal, set by `auth`,
 * must allow action on the session; otherwise the request gets
 * unauthorized or forbidden. */
static bool allowed(sl_conn_t *c, uint32_t msgid, sl_auth_action_t action, const char *id,
                    size_t id_len, const char *method)
{
    sl_auth_verdict_t v = sl_conn__auth_check(c, action, id, id_len, method);
    if (v == SL_AUTH_OK)
        return true;
    if (v == SL_AUTH_FORBIDDEN)
        put_error(c, msgid, "forbidden", "the token does not grant this");
    else
        put_error(c, msgid, "unauthorized",
                  c->principal ? "the token expired; send auth [token]"
                               : "a token is needed; send auth [token]");
    return false;
}

/* Publish options (API.md): durable, ephemeral, close (booleans) and
 * producer [id, epoch, seq]. */
typedef struct pub_opts {
    bool durable, ephemeral, close, has_producer;
    uint8_t producer_id_len;
    char producer_id[SL_PRODUCER_ID_MAX];
    uint64_t producer_epoch, producer_seq;
} pub_opts_t;

static bool obj_u53(const msgpack_object *o, uint64_t *v)
{
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER || o->via.u64 > SL_PRODUCER_NUM_MAX)
        return false;
    *v = o->via.u64;
    return true;
}

static bool opt_producer(sl_conn_t *c, uint32_t msgid, const msgpack_object *v, pub_opts_t *o)
{
    const char *id;
    size_t n;
    if (v->type == MSGPACK_OBJECT_NIL)
        return true;
    if (v->type != MSGPACK_OBJECT_ARRAY || v->via.array.size != 3 ||
        !sl_rpc_obj_bytes(&v->via.array.ptr[0], &id, &n) || !sl_sessops_producer_id_valid(id, n) ||
        !obj_u53(&v->via.array.ptr[1], &o->producer_epoch) ||
        !obj_u53(&v->via.array.ptr[2], &o->producer_seq)) {
        put_error(c, msgid, "bad_params",
                  "producer is [id (1-128 bytes of [A-Za-z0-9._:-]), epoch, seq] (integers 0..2^53-1)");
        return false;
    }
    o->has_producer = true;
    o->producer_id_len = (uint8_t)n;
    memcpy(o->producer_id, id, n);
    return true;
}

/* Reads the options map at a[i] (absent or nil: defaults; unknown keys
 * ignored). */
static bool param_opts(sl_conn_t *c, uint32_t msgid, const msgpack_object_array *a, uint32_t i,
                       pub_opts_t *o)
{
    memset(o, 0, sizeof *o);
    if (i >= a->size || a->ptr[i].type == MSGPACK_OBJECT_NIL)
        return true;
    if (a->ptr[i].type != MSGPACK_OBJECT_MAP) {
        put_error(c, msgid, "bad_params", "options must be a map");
        return false;
    }
    const msgpack_object_map *m = &a->ptr[i].via.map;
    for (uint32_t k = 0; k < m->size; k++) {
        const msgpack_object *v = &m->ptr[k].val;
        if (sl_rpc_obj_is(&m->ptr[k].key, "producer")) {
            if (!opt_producer(c, msgid, v, o))
                return false;
            continue;
        }
        bool *dst = sl_rpc_obj_is(&m->ptr[k].key, "durable")     ? &o->durable
                    : sl_rpc_obj_is(&m->ptr[k].key, "ephemeral") ? &o->ephemeral
                    : sl_rpc_obj_is(&m->ptr[k].key, "close")     ? &o->close
                                                          : NULL;
        if (!dst)
            continue;
        if (v->type != MSGPACK_OBJECT_BOOLEAN && v->type != MSGPACK_OBJECT_NIL) {
            put_error(c, msgid, "bad_params", "durable, ephemeral and close take booleans");
            return false;
        }
        *dst = v->type == MSGPACK_OBJECT_BOOLEAN && v->via.boolean;
    }
    if (o->durable && o->ephemeral) {
        put_error(c, msgid, "bad_params", "an event cannot be both durable and ephemeral");
        return false;
    }
    if (o->close && o->ephemeral) {
        put_error(c, msgid, "bad_params", "a closing publish cannot be ephemeral");
        return false;
    }
    return true;
}

static void apply_opts(sl_pub_t *p, const pub_opts_t *o)
{
    p->durable = o->durable;
    p->ephemeral = o->ephemeral;
    p->close = o->close;
    p->has_producer = o->has_producer;
    p->producer_id_len = o->producer_id_len;
    memcpy(p->producer_id, o->producer_id, o->producer_id_len);
    p->producer_epoch = o->producer_epoch;
    p->producer_seq = o->producer_seq;
}

/* Checks one [type, data] pair; adds its byte needs to *bytes. */
static bool check_event(sl_conn_t *c, uint32_t msgid, const msgpack_object *type,
                        const msgpack_object *data, size_t *bytes)
{
    const char *t = "message", *d;
    size_t tn = 7, dn;
    if (type->type != MSGPACK_OBJECT_NIL && !sl_rpc_obj_bytes(type, &t, &tn)) {
        put_error(c, msgid, "bad_params", "type must be a str");
        return false;
    }
    if (!sl_conn__type_valid(t, tn)) {
        put_error(c, msgid, "invalid_type", "types are 1-64 bytes of [A-Za-z0-9._:-]");
        return false;
    }
    if (!sl_rpc_obj_bytes(data, &d, &dn)) {
        put_error(c, msgid, "bad_params", "data must be bin or str");
        return false;
    }
    if (dn > c->srv->cfg.max_event_bytes ||
        !sl_conn__event_sse_fits(&c->srv->cfg, tn, (const uint8_t *)d, dn)) {
        put_error(c, msgid, "too_large", "event data exceeds --max-event-bytes");
        return false;
    }
    *bytes += tn + dn;
    return true;
}

/* The type (nil: "message") and data of a checked event. */
static void event_bytes(const msgpack_object *type, const msgpack_object *data, const char **t,
                        size_t *tn, const char **d, size_t *dn)
{
    *t = "message", *tn = 7, *d = NULL, *dn = 0;
    if (type->type != MSGPACK_OBJECT_NIL)
        sl_rpc_obj_bytes(type, t, tn);
    sl_rpc_obj_bytes(data, d, dn);
}

/* Copies a checked event's type then data to buf + off (room checked by
 * the caller) and returns its descriptor. */
static sl_pub_event_t put_event_bytes(uint8_t *buf, size_t off, const msgpack_object *type,
                                      const msgpack_object *data)
{
    const char *t, *d;
    size_t tn, dn;
    event_bytes(type, data, &t, &tn, &d, &dn);
    memcpy(buf + off, t, tn);
    if (dn)
        memcpy(buf + off + tn, d, dn);
    return (sl_pub_event_t){(uint32_t)off, (uint32_t)tn, (uint32_t)(off + tn), (uint32_t)dn,
                            data->type == MSGPACK_OBJECT_STR};
}

/* ---- methods ---- */

static uint32_t pub_answers(const sl_pub_t *p) { return p->rpc_msgids ? p->nevents : 1; }

/* Sends p to its session; answers (every request it carries) when that
 * fails. resend: a retry of a publish already counted in `answers`. */
static void send_pub(sl_conn_t *c, uint32_t msgid, sl_pub_t *p, bool resend)
{
    uint32_t n = pub_answers(p), ids[RPC_COALESCE_EVENTS];
    bool coalesced = p->rpc_msgids != NULL;
    if (coalesced)
        memcpy(ids, p->rpc_msgids, n * sizeof ids[0]); /* p is freed on failure */
    int rc = sl_conn__send_publish(c, msgid, p->id, p->id_len, p);
    if (rc == 0) {
        if (!resend)
            c->rpc->answers += n;
        return;
    }
    if (resend)
        c->rpc->answers -= n;
    const char *msg = sl_conn__publish_error_text(rc);
    if (!coalesced)
        put_error(c, msgid, "overloaded", msg);
    for (uint32_t i = 0; coalesced && i < n; i++)
        put_error(c, ids[i], "overloaded", msg);
}

/* publish_batch: all events (each [type, data]) in one publish, or none. */
static void start_batch(sl_conn_t *c, uint32_t msgid, const msgpack_object_array *a,
                        const char *id, size_t id_len, const msgpack_object_array *evs)
{
    uint32_t n = evs->size;
    size_t bytes = 0;
    for (uint32_t i = 0; i < n; i++)
        if (!check_event(c, msgid, &evs->ptr[i].via.array.ptr[0], &evs->ptr[i].via.array.ptr[1],
                         &bytes))
            return;
    pub_opts_t o;
    if (!param_opts(c, msgid, a, 2, &o))
        return;
    sl_pub_t *p = sl_conn__pub_alloc(n, bytes);
    if (!p) {
        put_error(c, msgid, "overloaded", "out of memory");
        return;
    }
    apply_opts(p, &o);
    size_t off = 0;
    for (uint32_t i = 0; i < n; i++) {
        p->events[i] = put_event_bytes(p->buf, off, &evs->ptr[i].via.array.ptr[0],
                                       &evs->ptr[i].via.array.ptr[1]);
        off += p->events[i].type_len + p->events[i].data_len;
    }
    p->aux_batch = true;
    memcpy(p->id, id, id_len);
    p->id_len = (uint32_t)id_len;
    send_pub(c, msgid, p, false);
}

/* Sends the gathered publishes as one batch. */
static void flush_batch(sl_conn_t *c)
{
    rpc_batch_t *b = &c->rpc->batch;
    if (b->n == 0)
        return;
    size_t ids_off = (b->len + 3) & ~(size_t)3;
    sl_pub_t *p = sl_conn__pub_alloc(b->n, ids_off + b->n * sizeof(uint32_t));
    if (!p) {
        for (uint32_t i = 0; i < b->n; i++)
            put_error(c, b->msgids[i], "overloaded", "out of memory");
    } else {
        memcpy(p->buf, b->buf, b->len);
        memcpy(p->events, b->ev, b->n * sizeof b->ev[0]);
        p->rpc_msgids = (uint32_t *)(void *)(p->buf + ids_off);
        memcpy(p->rpc_msgids, b->msgids, b->n * sizeof b->msgids[0]);
        p->durable = b->durable;
        p->ephemeral = b->ephemeral;
        memcpy(p->id, b->id, b->id_len);
        p->id_len = b->id_len;
        b->n = 0; /* before send_pub: its answers are counted there */
        send_pub(c, b->msgids[0], p, false);
    }
    b->n = 0;
    b->len = 0;
    if (b->cap > RPC_COALESCE_BYTES / 4) { /* a burst's buffer is not kept */
        free(b->buf);
        b->buf = NULL;
        b->cap = 0;
    }
}

/* Adds one checked publish to the batch, flushing first when it belongs
 * to another session or options, or would overflow the batch. */
static void batch_add(sl_conn_t *c, uint32_t msgid, const char *id, size_t id_len,
                      const msgpack_object *type, const msgpack_object *data, bool durable,
                      bool ephemeral)
{
    rpc_batch_t *b = &c->rpc->batch;
    const char *t, *d;
    size_t tn, dn;
    event_bytes(type, data, &t, &tn, &d, &dn);
    if (b->n && (b->id_len != id_len || memcmp(b->id, id, id_len) != 0 ||
                 b->durable != durable || b->ephemeral != ephemeral ||
                 b->n == RPC_COALESCE_EVENTS || b->len + tn + dn > RPC_COALESCE_BYTES))
        flush_batch(c);
    if (b->len + tn + dn > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + tn + dn)
            cap *= 2;
        uint8_t *nb = realloc(b->buf, cap);
        if (!nb) {
            put_error(c, msgid, "overloaded", "out of memory");
            return;
        }
        b->buf = nb;
        b->cap = cap;
    }
    if (b->n == 0) {
        memcpy(b->id, id, id_len);
        b->id_len = (uint32_t)id_len;
        b->durable = durable;
        b->ephemeral = ephemeral;
    }
    b->ev[b->n] = put_event_bytes(b->buf, b->len, type, data);
    b->msgids[b->n++] = msgid;
    b->len += tn + dn;
}

/* publish [session, type, data, opts?] */
static void m_publish(sl_conn_t *c, uint32_t msgid, const msgpack_object_array *a)
{
    const char *id;
    size_t id_len, bytes = 0;
    pub_opts_t o;
    if (a->size < 3 || a->size > 4) {
        put_error(c, msgid, "bad_params", "expected [session, type, data, opts?]");
        return;
    }
    if (!param_session(c, msgid, a, 0, &id, &id_len) ||
        !allowed(c, msgid, SL_AUTH_PUB, id, id_len, "publish") ||
        !check_event(c, msgid, &a->ptr[1], &a->ptr[2], &bytes) || !param_opts(c, msgid, a, 3, &o))
        return;
    if (!o.close && !o.has_producer) {
        batch_add(c, msgid, id, id_len, &a->ptr[1], &a->ptr[2], o.durable, o.ephemeral);
        return;
    }
    /* A lifecycle publish is its own request (its answer is its own). */
    flush_batch(c);
    sl_pub_t *p = sl_conn__pub_alloc(1, bytes);
    if (!p) {
        put_error(c, msgid, "overloaded", "out of memory");
        return;
    }
    apply_opts(p, &o);
    p->events[0] = put_event_bytes(p->buf, 0, &a->ptr[1], &a->ptr[2]);
    memcpy(p->id, id, id_len);
    p->id_len = (uint32_t)id_len;
    send_pub(c, msgid, p, false);
}

/* publish_batch [session, [[type, data], ...], opts?] */
static void m_publish_batch(sl_conn_t *c, uint32_t msgid, const msgpack_object_array *a)
{
    const char *id;
    size_t id_len;
    if (a->size < 2 || a->size > 3 || a->ptr[1].type != MSGPACK_OBJECT_ARRAY ||
        a->ptr[1].via.array.size == 0) {
        put_error(c, msgid, "bad_params", "expected [session, [[type, data], ...], opts?]");
        return;
    }
    const msgpack_object_array *evs = &a->ptr[1].via.array;
    if (evs->size > SL_BATCH_EVENTS_MAX) {
        put_error(c, msgid, "too_large", "too many events in one batch");
        return;
    }
    for (uint32_t i = 0; i < evs->size; i++) {
        if (evs->ptr[i].type != MSGPACK_OBJECT_ARRAY || evs->ptr[i].via.array.size != 2) {
            put_error(c, msgid, "bad_params", "each event is [type, data]");
            return;
        }
    }
    if (param_session(c, msgid, a, 0, &id, &id_len) &&
        allowed(c, msgid, SL_AUTH_PUB, id, id_len, "publish_batch"))
        start_batch(c, msgid, a, id, id_len, evs);
}

/* subscribe [session, from?]: from = seq or "live" */
static void m_subscribe(sl_conn_t *c, uint32_t msgid, const msgpack_object_array *a)
{
    const char *id;
    size_t id_len;
    uint64_t from = 0;
    if (a->size < 1 || a->size > 2) {
        put_error(c, msgid, "bad_params", "expected [session, from?]");
        return;
    }
    if (a->size == 2) {
        const msgpack_object *f = &a->ptr[1];
        if (f->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
            from = f->via.u64 ? f->via.u64 : 1;
        else if (f->type != MSGPACK_OBJECT_NIL && !sl_rpc_obj_is(f, "live")) {
            put_error(c, msgid, "bad_params", "from must be a seq or \"live\"");
            return;
        }
    }
    if (!param_session(c, msgid, a, 0, &id, &id_len) ||
        !allowed(c, msgid, SL_AUTH_SUB, id, id_len, "subscribe"))
        return;
    if (c->nstreams >= c->srv->cfg.max_streams) {
        put_error(c, msgid, "overloaded", "too many subscriptions on this connection");
        return;
    }
    sl_entry_t *e = sl_sessops_lookup(c->srv, id, id_len);
    if (!e) {
        put_error(c, msgid, "not_found", "no such session");
        return;
    }
    sl_sessops_touch(e);
    uint32_t sub_id = ++c->rpc->next_sub_id;
    int rc = sl_conn__subscribe_ex(c, sub_id, e, from, from, false, true, msgid);
    if (rc != 0)
        put_error(c, msgid, rc == SL_ENOTFOUND ? "not_found" : "overloaded",
                  rc == SL_ENOTFOUND ? "no such session"
                  : rc == -ENOMEM    ? "out of memory"
                                     : "session unavailable, retry");
}

static void m_unsubscribe(sl_conn_t *c, uint32_t msgid, const msgpack_object_array *a)
{
    if (a->size != 1 || a->ptr[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
        put_error(c, msgid, "bad_params", "expected [subscription_id]");
        return;
    }
    if (a->ptr[0].via.u64 <= UINT32_MAX)
        sl_conn__stream_leave(c, (uint32_t)a->ptr[0].via.u64);
    put_true(c, msgid);
}

static void m_sessions(sl_conn_t *c, uint32_t msgid, const msgpack_object_array *a)
{
    uint64_t limit = 100;
    const char *cur = NULL;
    size_t cur_len = 0;
    if (a->size > 2 ||
        (a->size >= 1 && a->ptr[0].type != MSGPACK_OBJECT_NIL &&
         a->ptr[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER) ||
        (a->size == 2 && a->ptr[1].type != MSGPACK_OBJECT_NIL &&
         !sl_rpc_obj_bytes(&a->ptr[1], &cur, &cur_len))) {
        put_error(c, msgid, "bad_params", "expected [limit?, cursor?]");
        return;
    }
    if (!allowed(c, msgid, SL_AUTH_LIST, NULL, 0, "sessions"))
        return;
    if (a->size >= 1 && a->ptr[0].type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        limit = a->ptr[0].via.u64;
    if (cur_len > SL_SESSION_ID_MAX) {
        put_error(c, msgid, "bad_params", "bad cursor");
        return;
    }
    size_t len;
    char *body = sl_conn__list_json(c, cur_len ? cur : NULL, cur_len, limit, &len);
    if (!body) {
        put_error(c, msgid, "overloaded", "out of memory");
        return;
    }
    put_json(c, msgid, body, len);
    free(body);
}

enum { ONE_GET, ONE_CREATE, ONE_DELETE };

/* session / create / delete [session] */
static void m_one(sl_conn_t *c, uint32_t msgid, const msgpack_object_array *a, int what)
{
    const char *id;
    size_t id_len;
    if (a->size != 1) {
        put_error(c, msgid, "bad_params", "expected [session]");
        return;
    }
    if (!param_session(c, msgid, a, 0, &id, &id_len) ||
        !allowed(c, msgid, what == ONE_GET ? SL_AUTH_SUB : SL_AUTH_PUB, id, id_len,
                 what == ONE_GET ? "session" : what == ONE_CREATE ? "create" : "delete"))
        return;
    sl_entry_t *e = NULL;
    if (what == ONE_CREATE) {
        bool created;
        int rc = sl_sessops_create(c->srv, id, id_len, NULL, &e, &created);
        if (rc == SL_ECONFLICT) {
            put_error(c, msgid, "conflict", "the session exists with a TTL or expiry");
            return;
        }
        if (rc != 0) {
            put_error(c, msgid, "overloaded", "too many sessions");
            return;
        }
        sl_entry_release(e);
        put_true(c, msgid);
        return;
    }
    if (what == ONE_DELETE) {
        if (sl_sessops_delete(c->srv, id, id_len) != 0)
            put_error(c, msgid, "not_found", "no such session");
        else
            put_true(c, msgid);
        return;
    }
    if (!(e = sl_sessops_lookup(c->srv, id, id_len))) {
        put_error(c, msgid, "not_found", "no such session");
        return;
    }
    {
        char body[512];
        size_t n = sl_conn__stats_json(e, body, sizeof body);
        put_json(c, msgid, body, n);
    }
    sl_entry_release(e);
}

/* close [session] -> last_seq: closes the session for good. */
static void m_close(sl_conn_t *c, uint32_t msgid, const msgpack_object_array *a)
{
    const char *id;
    size_t id_len;
    if (a->size != 1) {
        put_error(c, msgid, "bad_params", "expected [session]");
        return;
    }
    if (!param_session(c, msgid, a, 0, &id, &id_len) ||
        !allowed(c, msgid, SL_AUTH_PUB, id, id_len, "close"))
        return;
    sl_pub_t *p = sl_conn__pub_alloc(0, 0);
    if (!p) {
        put_error(c, msgid, "overloaded", "out of memory");
        return;
    }
    p->close = p->durable = true;
    p->stream_id = msgid;
    memcpy(p->id, id, id_len);
    p->id_len = (uint32_t)id_len;
    int rc = sl_sessops_publish(c->srv, &c->a, id, id_len, p, false);
    if (rc == 0) {
        c->pubs_inflight++;
        c->rpc->answers++;
    } else {
        put_error(c, msgid, rc == SL_ENOTFOUND ? "not_found" : "overloaded",
                  rc == SL_ENOTFOUND ? "no such session" : sl_conn__publish_error_text(rc));
    }
}

/* auth [token] -> true: the token becomes the connection's principal
 * (again: a refresh). */
static void m_auth(sl_conn_t *c, uint32_t msgid, const msgpack_object_array *a)
{
    const char *tok;
    size_t len;
    if (a->size != 1 || !sl_rpc_obj_bytes(&a->ptr[0], &tok, &len)) {
        put_error(c, msgid, "bad_params", "expected [token]");
        return;
    }
    const char *why = NULL;
    if (!sl_auth_enabled(c->srv->cfg.auth)) {
        put_true(c, msgid); /* no key configured: everyone is admin already */
        return;
    }
    if (sl_conn__auth_set(c, tok, len, &why) != SL_AUTH_OK) {
        sl_auth_audit(c->srv->cfg.auth, 401, c->peer, "auth", NULL, why);
        char msg[96];
        snprintf(msg, sizeof msg, "token refused (%s)", why ? why : "invalid");
        put_error(c, msgid, "unauthorized", msg);
        return;
    }
    put_true(c, msgid);
}

static void m_health(sl_conn_t *c, uint32_t msgid)
{
    if (sl_auth_allow(c->srv->cfg.auth, c->principal, SL_AUTH_ADMIN, NULL, 0,
                      sl_clock_wall_ns()) != SL_AUTH_OK) {
        /* Without admin rights: only that the server is up. */
        char doc[96];
        int n = snprintf(doc, sizeof doc, "{\"status\":\"ok\",\"uptime_s\":%.3f}",
                         (double)(sl_clock_now_ns() - c->srv->start_ns) / 1e9);
        put_json(c, msgid, doc, (size_t)n);
        return;
    }
    sl_chunk_t *snap = sl_monitor_health_json(c->srv->monitor);
    if (!snap) {
        put_error(c, msgid, "overloaded", "snapshot not available");
        return;
    }
    char *doc = malloc(snap->len + SL_HEALTH_HEAD_BYTES);
    if (!doc) {
        sl_chunk_release(snap);
        put_error(c, msgid, "overloaded", "out of memory");
        return;
    }
    size_t n = sl_monitor_health_head(c->srv, doc, SL_HEALTH_HEAD_BYTES);
    memcpy(doc + n, snap->data, snap->len);
    n += snap->len;
    sl_chunk_release(snap);
    put_json(c, msgid, doc, n);
    free(doc);
}

static bool method_is(const sl_rpc_msg_t *m, const char *name)
{
    size_t n = strlen(name);
    return m->method_len == n && memcmp(m->method, name, n) == 0;
}

/* Methods whose access is checked where they read their session id
 * (after its validation) or that need none. Any other method is checked
 * in dispatch before it runs -- pub on its first parameter when that is a
 * session id, else admin -- so a method added later is never open by
 * omission. */
static bool checks_itself(const sl_rpc_msg_t *m)
{
    static const char *const names[] = {"publish", "publish_batch", "subscribe", "unsubscribe",
                                        "sessions", "session", "create", "delete", "health",
                                        "auth", "close"};
    for (size_t i = 0; i < SL_ARRAY_LEN(names); i++)
        if (method_is(m, names[i]))
            return true;
    return false;
}

static bool allowed_other(sl_conn_t *c, const sl_rpc_msg_t *m)
{
    if (checks_itself(m) || !sl_auth_enabled(c->srv->cfg.auth))
        return true;
    const msgpack_object_array *a = &m->params.via.array;
    const char *id = NULL;
    size_t n = 0;
    bool has_id = a->size >= 1 && sl_rpc_obj_bytes(&a->ptr[0], &id, &n) && sl_session_id_valid(id, n);
    char what[48];
    snprintf(what, sizeof what, "%.*s", (int)(m->method_len > 40 ? 40 : m->method_len), m->method);
    return allowed(c, m->msgid, has_id ? SL_AUTH_PUB : SL_AUTH_ADMIN, has_id ? id : NULL,
                   has_id ? n : 0, what);
}

static void dispatch(sl_conn_t *c, const sl_rpc_msg_t *m)
{
    const msgpack_object_array *a = &m->params.via.array;
    uint32_t id = m->msgid;
    atomic_fetch_add_explicit(&c->srv->counters.rpc_requests, 1, memory_order_relaxed);
    bool pub = method_is(m, "publish") || method_is(m, "publish_batch");
    if ((pub || method_is(m, "subscribe")) && sl_conn__budget_refused(c, pub)) {
        put_error(c, id, "overloaded", SL_CONN_BUDGET_MESSAGE);
        return;
    }
    if (method_is(m, "publish")) {
        m_publish(c, id, a);
        return;
    }
    if (!allowed_other(c, m))
        return;
    flush_batch(c); /* every other request sees the publishes before it sent */
    if (method_is(m, "publish_batch"))
        m_publish_batch(c, id, a);
    else if (method_is(m, "subscribe"))
        m_subscribe(c, id, a);
    else if (method_is(m, "unsubscribe"))
        m_unsubscribe(c, id, a);
    else if (method_is(m, "sessions"))
        m_sessions(c, id, a);
    else if (method_is(m, "session"))
        m_one(c, id, a, ONE_GET);
    else if (method_is(m, "create"))
        m_one(c, id, a, ONE_CREATE);
    else if (method_is(m, "delete"))
        m_one(c, id, a, ONE_DELETE);
    else if (method_is(m, "health"))
        m_health(c, id);
    else if (method_is(m, "auth"))
        m_auth(c, id, a);
    else if (method_is(m, "close"))
        m_close(c, id, a);
    else if (sl_conn__run_rpc(c, m->method, m->method_len, id, &m->params))
        ; /* run, cancel, stdin (conn_run.c) */
    else
        put_error(c, id, "unknown_method", "no such method");
}

/* ---- input ---- */

static bool can_take_request(const sl_conn_t *c)
{
    uint64_t pending = (uint64_t)c->rpc->answers + c->rpc->batch.n;
    return c->state == SL_CONN__OPEN && pending < c->srv->cfg.rpc_max_inflight &&
           sl_outq_room(&c->outq) >= request_room(c) &&
           sl_outq_segs_free(&c->outq) >= RPC_REQUEST_SEGS;
}

static void fail(sl_conn_t *c, int rc)
{
    struct sl_conn_rpc *r = c->rpc;
    r->failed = true;
    c->proto_failed = true;
    atomic_fetch_add_explicit(&c->srv->counters.rpc_protocol_errors, 1, memory_order_relaxed);
    const char *why = sl_rpc_decoder_reason(r->dec);
    if (rc == SL_ETOOBIG)
        sl_warn("rpc connection closed: message over a limit", "peer=%s reason=%s "
                "max_rpc_message_bytes=%llu hint=\"see --max-rpc-message-bytes\"",
                c->peer, why ? why : "limit",
                (unsigned long long)c->srv->cfg.max_rpc_message_bytes);
    else
        sl_warn("rpc connection closed: not msgpack-RPC", "peer=%s reason=%s error=\"%s\"",
                c->peer, why ? why : "decoder", sl_strerror(rc));
}

/* Moves stashed input into the decoder. Returns false on a fatal error. */
static bool feed_stash(sl_conn_t *c)
{
    struct sl_conn_rpc *r = c->rpc;
    if (!r->stash_len)
        return true;
    int n = sl_rpc_decoder_feed(r->dec, r->stash, r->stash_len);
    if (n < 0) {
        fail(c, n);
        return false;
    }
    memmove(r->stash, r->stash + n, r->stash_len - (uint32_t)n);
    r->stash_len -= (uint32_t)n;
    return true;
}

/* Decodes and runs requests while the bounds allow. */
static void process_some(sl_conn_t *c)
{
    struct sl_conn_rpc *r = c->rpc;
    for (int i = 0; i < RPC_REQUESTS_PER_TURN; i++) {
        if (r->failed || !can_take_request(c))
            return;
        sl_rpc_msg_t m;
        int rc = sl_rpc_decoder_next(r->dec, &m);
        if (rc == 0) {
            if (!r->stash_len)
                return;
            if (!feed_stash(c))
                return;
            continue;
        }
        if (rc == 1) {
            if (m.type == SL_RPC_REQUEST)
                dispatch(c, &m);
            continue; /* notifications and responses from a client: ignored */
        }
        if (rc == SL_EINVAL) {
            if (m.type == SL_RPC_REQUEST && m.has_msgid)
                put_error(c, m.msgid, "bad_request",
                          "expected [0, msgid, method, params] with params an array");
            continue;
        }
        fail(c, rc);
        return;
    }
    sl_actor_notify(&c->a, SL_CONN_NOTIFY_WORK); /* more to do: after others ran */
}

static void process(sl_conn_t *c)
{
    process_some(c);
    flush_batch(c); /* what a read brought goes out at once */
}

int sl_conn__rpc_feed(sl_conn_t *c, const uint8_t *data, size_t len)
{
    struct sl_conn_rpc *r = c->rpc;
    if (r->failed)
        return 0;
    sl_assert(r->stash_len == 0); /* no read is armed while input is stashed */
    while (len > 0 && !r->failed) {
        int n = sl_rpc_decoder_feed(r->dec, data, len);
        if (n < 0) {
            fail(c, n);
            break;
        }
        data += n, len -= (size_t)n;
        if (len > 0 && (n == 0 || !can_take_request(c))) {
            /* The decoder is full of waiting requests: keep the rest. */
            sl_assert(len <= RPC_STASH_BYTES);
            memcpy(r->stash, data, len);
            r->stash_len = (uint32_t)len;
            break;
        }
        process(c);
    }
    process(c);
    return r->failed ? SL_EPROTO : 0;
}

void sl_conn__rpc_flush(sl_conn_t *c)
{
    if (c->rpc && !c->rpc->failed)
        process(c);
}

bool sl_conn__rpc_want_read(sl_conn_t *c)
{
    struct sl_conn_rpc *r = c->rpc;
    size_t partial = sl_rpc_decoder_pending(r->dec);
    /* Over the memory budget a partial message does not grow: the socket
     * waits (TCP backpressure) until memory returns (the timer re-arms). */
    return !r->failed && r->stash_len == 0 && c->state == SL_CONN__OPEN &&
           (partial == 0 || (can_take_request(c) && !sl_budget_over()));
}

bool sl_conn__rpc_partial(const sl_conn_t *c)
{
    return c->rpc && !c->rpc->failed && sl_rpc_decoder_pending(c->rpc->dec) > 0;
}

bool sl_conn__rpc_idle(sl_conn_t *c)
{
    /* A partial message does not keep a connection busy: a client that
     * stops mid-message is closed as idle. */
    return c->nstreams == 0 && c->pubs_inflight == 0 && c->rpc->stash_len == 0;
}

int sl_conn__rpc_create(sl_conn_t *c)
{
    /* Output bound: at least one largest event notification beside the
     * room kept for answers, so every event can go out whole. */
    const sl_config_t *cfg = &c->srv->cfg;
    uint64_t need = cfg->max_event_bytes + SL_EVENT_TYPE_MAX + SL_SESSION_ID_MAX + 64 +
                    RPC_REQUEST_ROOM + (uint64_t)cfg->rpc_max_inflight * RPC_PUBLISH_ANSWER_MAX;
    if (c->outq.bytes_max < need)
        c->outq.bytes_max = need;
    struct sl_conn_rpc *r = calloc(1, sizeof *r);
    if (!r)
        return -ENOMEM;
    sl_rpc_limits_t lim;
    sl_rpc_limits_default(&lim);
    lim.max_message_bytes = (uint32_t)c->srv->cfg.max_rpc_message_bytes;
    lim.max_str_bytes = lim.max_message_bytes;
    r->stash = malloc(RPC_STASH_BYTES);
    int rc = r->stash ? sl_rpc_decoder_create(&lim, &r->dec) : -ENOMEM;
    if (rc != 0) {
        free(r->stash);
        free(r);
        return rc;
    }
    c->rpc = r;
    atomic_fetch_add_explicit(&c->srv->counters.rpc_connections, 1, memory_order_relaxed);
    return 0;
}

void sl_conn__rpc_destroy(sl_conn_t *c)
{
    if (!c->rpc)
        return;
    atomic_fetch_sub_explicit(&c->srv->counters.rpc_connections, 1, memory_order_relaxed);
    sl_rpc_decoder_destroy(c->rpc->dec);
    free(c->rpc->batch.buf);
    free(c->rpc->stash);
    free(c->rpc);
    c->rpc = NULL;
}

/* ---- session answers ---- */

/* Answers each request a coalesced publish carried: its own seq, or the
 * error for the ones after a failure. */
static void answer_coalesced(sl_conn_t *c, const sl_pub_t *p)
{
    for (uint32_t i = 0; i < p->nevents; i++) {
        uint64_t seq = p->first_seq + i;
        if (p->first_seq && seq <= p->last_seq)
            put_uint(c, p->rpc_msgids[i], seq);
        else
            put_error(c, p->rpc_msgids[i], p->status == SL_EENDED ? "closed" : "overloaded",
                      p->status == SL_EENDED   ? "the session is closed"
                      : p->status == SL_ECLOSED ? "session is closing; retry"
                      : p->status == SL_EFULL ? "session is busy; retry"
                                              : "publish failed");
    }
}

void sl_conn__rpc_published(sl_conn_t *c, sl_pub_t *p)
{
    uint32_t msgid = p->stream_id;
    c->rpc->answers -= pub_answers(p);
    if (c->state < SL_CONN__CLOSING && p->rpc_msgids) {
        answer_coalesced(c, p);
    } else if (c->state < SL_CONN__CLOSING) {
        char msg[96];
        if (p->status == SL_EENDED) {
            snprintf(msg, sizeof msg, "the session is closed; last_seq %" PRIu64, p->last_seq);
            put_error(c, msgid, "closed", msg);
        } else if (p->status == SL_EFENCED) {
            snprintf(msg, sizeof msg, "a newer producer epoch is active: %" PRIu64, p->producer_epoch);
            put_error(c, msgid, "fenced", msg);
        } else if (p->status == SL_EGAP) {
            snprintf(msg, sizeof msg, "producer seq skipped; expected %" PRIu64, p->producer_seq);
            put_error(c, msgid, "producer_gap", msg);
        } else if (p->status == SL_EINVAL) {
            put_error(c, msgid, "bad_params", "a new producer epoch starts at seq 0");
        } else if (p->status == SL_ECONFLICT) {
            put_error(c, msgid, "conflict", "sequence not above the last one");
        } else if (p->duplicate && !p->dup_known) {
            put_json(c, msgid, "{\"duplicate\":true}", 18);
        } else if (p->nevents == 0 && p->close) {
            put_uint(c, msgid, p->last_seq);
        } else if (p->status != 0) {
            put_error(c, msgid, "overloaded",
                      p->status == SL_ECLOSED  ? "session is closing; retry"
                      : p->status == SL_EFULL ? "session is busy; retry"
                                              : "publish failed");
        } else if (p->aux_batch) {
            uint8_t buf[48];
            int n = sl_rpc_response_uint_pair(buf, sizeof buf, msgid, p->first_seq, p->last_seq);
            int rc = sl_rpc_outq_put(&c->outq, buf, (size_t)n);
            if (rc != 0)
                put_failed(c, msgid, rc);
        } else {
            put_uint(c, msgid, p->last_seq);
        }
    }
    free(p);
    sl_actor_release(&c->a); /* the request's reference */
}

void sl_conn__rpc_resend(sl_conn_t *c, sl_pub_t *p) { send_pub(c, p->stream_id, p, true); }

/* ---- subscriptions (called from conn_sse.c) ---- */

void sl_conn__rpc_subscribed(sl_conn_t *c, sl_conn_stream_t *st, int status)
{
    if (status == 0)
        put_uint(c, st->rpc_msgid, st->stream_id);
    else if (status == SL_ENOTFOUND)
        put_error(c, st->rpc_msgid, "not_found", "no such session");
    else
        put_error(c, st->rpc_msgid, "overloaded",
                  status == SL_EFULL ? "too many subscribers on this session"
                                     : "session unavailable, retry");
}

uint64_t sl_conn__rpc_room(const sl_conn_t *c)
{
    uint64_t room = sl_outq_room(&c->outq), keep = request_room(c);
    if (sl_outq_segs_free(&c->outq) < RPC_REQUEST_SEGS + 2)
        return 0;
    return room > keep ? room - keep : 0;
}

int sl_conn__rpc_write_chunk(sl_conn_t *c, sl_chunk_t *chunk)
{
    if (sl_outq_room(&c->outq) < chunk->len || sl_outq_segs_free(&c->outq) < RPC_REQUEST_SEGS)
        return SL_EFULL;
    return sl_outq_append_ref(&c->outq, chunk, 0, chunk->len);
}

/* [2, name, [subscription_id]]: a notification that ends a subscription
 * (name is at most 15 bytes: a fixstr). */
static void put_sub_notification(sl_conn_t *c, const char *name, uint32_t sub_id)
{
    uint8_t buf[32];
    size_t n = 0, len = strlen(name);
    sl_assert(len < 16);
    buf[n++] = 0x93; /* fixarray 3 */
    buf[n++] = 0x02;
    buf[n++] = (uint8_t)(0xa0 | len); /* fixstr */
    memcpy(buf + n, name, len);
    n += len;
    buf[n++] = 0x91; /* fixarray 1 */
    buf[n++] = 0xce; /* uint32 */
    buf[n++] = (uint8_t)(sub_id >> 24);
    buf[n++] = (uint8_t)(sub_id >> 16);
    buf[n++] = (uint8_t)(sub_id >> 8);
    buf[n++] = (uint8_t)sub_id;
    sl_rpc_outq_put(&c->outq, buf, n);
}

void sl_conn__rpc_end(sl_conn_t *c, sl_conn_stream_t *st)
{
    /* The session was deleted or the server is stopping; nothing more
     * will come for this id. */
    put_sub_notification(c, "end", st->stream_id);
}

void sl_conn__rpc_closed(sl_conn_t *c, sl_conn_stream_t *st, uint64_t last_seq)
{
    /* The session was closed for good after last_seq (API.md): the
     * subscription sends nothing more. */
    uint8_t buf[40];
    size_t n = 0;
    uint32_t sub_id = st->stream_id;
    buf[n++] = 0x93; /* fixarray 3 */
    buf[n++] = 0x02;
    buf[n++] = 0xa6; /* fixstr 6 */
    memcpy(buf + n, "closed", 6);
    n += 6;
    buf[n++] = 0x92; /* fixarray 2 */
    buf[n++] = 0xce; /* uint32 */
    buf[n++] = (uint8_t)(sub_id >> 24);
    buf[n++] = (uint8_t)(sub_id >> 16);
    buf[n++] = (uint8_t)(sub_id >> 8);
    buf[n++] = (uint8_t)sub_id;
    buf[n++] = 0xcf; /* uint64 */
    for (int i = 7; i >= 0; i--)
        buf[n++] = (uint8_t)(last_seq >> (8 * i));
    sl_rpc_outq_put(&c->outq, buf, n);
}

void sl_conn__rpc_expired(sl_conn_t *c, sl_conn_stream_t *st)
{
    /* The token this subscription was made under expired; nothing more
     * comes for this id. The client sends `auth` with a fresh token and
     * subscribes again from the seq after the last one it got. */
    put_sub_notification(c, "expired", st->stream_id);
}

static int put_event(sl_conn_t *c, const sl_conn_stream_t *st, const sl_ring_event_t *ev)
{
    if (ev->len > RPC_COPY_EVENT_BYTES)
        return sl_rpc_outq_event(&c->outq, st->stream_id, ev->chunk, ev->off, ev->len);
    uint8_t msg[SL_RPC_EVENT_PREFIX_MAX + RPC_COPY_EVENT_BYTES];
    int pl = sl_rpc_event_prefix_encode(msg, st->stream_id);
    memcpy(msg + pl, ev->chunk->data + ev->off, ev->len);
    return sl_outq_append_copy(&c->outq, msg, (size_t)pl + ev->len);
}

/* One pull of whole events from the subscription's ring, each framed as a
 * notification. Returns 1 to pull again, 0 when done for now, SL_ENOTFOUND
 * when the position fell out of the ring (catch up from the log). */
int sl_conn__rpc_pull(sl_conn_t *c, sl_conn_stream_t *st, uint64_t limit)
{
    sl_sub_t *sub = &st->sub;
    uint64_t max = limit > sub->pos ? limit - sub->pos : 0, avail;
    if (max == 0 || (sl_ring_readable(sub->ring, sub->pos, &avail) == 0 && avail == 0))
        return 0; /* nothing new: no need to work out the room */
    uint64_t room = sl_conn__rpc_room(c);
    uint32_t free_segs = sl_outq_segs_free(&c->outq);
    /* Two segments per notification at most; the reserve stays for answers. */
    uint32_t segs = free_segs > RPC_REQUEST_SEGS ? (free_segs - RPC_REQUEST_SEGS) / 2 : 0;
    uint32_t want = segs < RPC_EVENTS_PER_PULL ? segs : RPC_EVENTS_PER_PULL;
    if (room < max)
        max = room;
    if (max == 0 || want == 0)
        return 0;
    sl_ring_event_t ev[RPC_EVENTS_PER_PULL];
    uint32_t n;
    int rc = sl_ring_read_events(sub->ring, sub->pos, max, ev, want, &n);
    if (rc != 0)
        return rc;
    uint32_t done = 0;
    for (; done < n; done++) {
        if (sub->pos + ev[done].len > limit || put_event(c, st, &ev[done]) != 0)
            break;
        sub->pos += ev[done].len;
        st->next_seq = ev[done].seq + 1;
    }
    for (uint32_t i = 0; i < n; i++)
        sl_chunk_release(ev[i].chunk);
    if (done) {
        atomic_fetch_add_explicit(&c->srv->counters.events_delivered, done, memory_order_relaxed);
        st->last_write_ns = sl_clock_now_ns();
    }
    return done == n && n == want ? 1 : 0;
}
