/*
 * msgpack-RPC on an sl_load_conn: request framing, response matching by
 * msgid, notification routing by subscription id, and the codecs of the
 * calls a run makes. See load_rpc.h for how requests map onto calls.
 *
 * Received bytes are decoded in place when a recv holds whole messages;
 * only the tail of a message cut by the recv boundary is carried over
 * (copied) to be completed by the next recv, bounded by
 * SL_LOAD_RPC_MESSAGE_MAX.
 */
#include "tools/load/load_rpc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/base.h"
#include "tools/load/load_rpc_int.h"
#include "tools/load/load_rpc_wire.h"

/* A stream slot of the open-addressing table; req NULL = empty. */
typedef struct stream_slot {
    uint64_t id;
    sl_load_req_t *req;
} stream_slot_t;

struct sl_load_rpc_conn {
    uint32_t next_msgid;
    char *carry; /* bytes of a message cut short by a recv */
    size_t carry_len;
    size_t carry_cap;
    stream_slot_t *slots; /* subscription id -> stream request */
    uint32_t slots_cap;   /* a power of two, or 0 */
    uint32_t slots_used;
};

/* Smallest stream table; it doubles when half full, so a connection with
 * N streams holds at most 4N slots. */
#define STREAMS_MIN 16

/* ---- stream table ---- */

static uint32_t slot_of(uint64_t id, uint32_t cap)
{
    return (uint32_t)((id * 0x9e3779b97f4a7c15ull) >> 32) & (cap - 1);
}

static sl_load_req_t *streams_get(const struct sl_load_rpc_conn *rc, uint64_t id)
{
    if (rc->slots_cap == 0)
        return NULL;
    /* Bounded by cap: the table is never full (at most half). */
    for (uint32_t i = slot_of(id, rc->slots_cap);; i = (i + 1) & (rc->slots_cap - 1)) {
        if (!rc->slots[i].req)
            return NULL;
        if (rc->slots[i].id == id)
            return rc->slots[i].req;
    }
}

static void slot_put(stream_slot_t *slots, uint32_t cap, uint64_t id, sl_load_req_t *req)
{
    uint32_t i = slot_of(id, cap);
    while (slots[i].req && slots[i].id != id)
        i = (i + 1) & (cap - 1);
    slots[i].id = id;
    slots[i].req = req;
}

static int streams_put(struct sl_load_rpc_conn *rc, uint64_t id, sl_load_req_t *req)
{
    if ((rc->slots_used + 1) * 2 > rc->slots_cap) {
        uint32_t cap = rc->slots_cap ? rc->slots_cap * 2 : STREAMS_MIN;
        stream_slot_t *slots = calloc(cap, sizeof(*slots));
        if (!slots)
            return SL_ENOMEM;
        for (uint32_t i = 0; i < rc->slots_cap; i++) {
            if (rc->slots[i].req)
                slot_put(slots, cap, rc->slots[i].id, rc->slots[i].req);
        }
        free(rc->slots);
        rc->slots = slots;
        rc->slots_cap = cap;
    }
    if (!streams_get(rc, id))
        rc->slots_used++;
    slot_put(rc->slots, rc->slots_cap, id, req);
    return 0;
}

/* Removes id, shifting later members of its probe run back so lookups
 * never stop early at the hole (linear-probing deletion). */
static void streams_del(struct sl_load_rpc_conn *rc, uint64_t id)
{
    uint32_t mask = rc->slots_cap - 1;
    uint32_t i = slot_of(id, rc->slots_cap);
    while (rc->slots[i].req && rc->slots[i].id != id)
        i = (i + 1) & mask;
    if (!rc->slots[i].req)
        return;
    rc->slots[i].req = NULL;
    rc->slots_used--;
    for (uint32_t j = (i + 1) & mask; rc->slots[j].req; j = (j + 1) & mask) {
        uint32_t home = slot_of(rc->slots[j].id, rc->slots_cap);
        /* Move j into the hole unless its home lies cyclically in (i, j]. */
        bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (stays)
            continue;
        rc->slots[i] = rc->slots[j];
        rc->slots[j].req = NULL;
        i = j;
    }
}

/* ---- connection hooks ---- */

int sl_load__rpc_init(sl_load_conn_t *c)
{
    c->rpc = calloc(1, sizeof(*c->rpc));
    if (!c->rpc)
        return SL_ENOMEM;
    if (!c->token)
        return 0;
    /* auth [token] goes out first; the server runs requests in order, so
     * every later one is made under the token. Nobody waits for its
     * answer (responses nobody waits for are dropped); a refused token
     * shows as unauthorized answers to what follows. */
    size_t tlen = strlen(c->token);
    if (tlen + 32 > c->out_cap)
        return SL_ETOOBIG;
    sl_load_mpw_t w;
    sl_load_mpw_init(&w, c->out + c->out_len, c->out_cap - c->out_len);
    sl_load_mpw_array(&w, 4);
    sl_load_mpw_uint(&w, 0);
    sl_load_mpw_uint(&w, c->rpc->next_msgid++);
    sl_load_mpw_str(&w, "auth", 4);
    sl_load_mpw_array(&w, 1);
    sl_load_mpw_str(&w, c->token, tlen);
    sl_assert(!w.overflow);
    c->out_len += w.len;
    return 0;
}

void sl_load__rpc_deinit(sl_load_conn_t *c)
{
    if (!c->rpc)
        return;
    free(c->rpc->carry);
    free(c->rpc->slots);
    free(c->rpc);
    c->rpc = NULL;
}

int sl_load__rpc_submit(sl_load_conn_t *c, sl_load_req_t *req)
{
    size_t mlen = strlen(req->method);
    if (mlen > 255)
        return SL_ETOOBIG;
    /* array(4) + 0 + msgid (<= 5 bytes) + str header (<= 2) + method + params */
    size_t need = 1 + 1 + 5 + 2 + mlen + (req->body ? req->body_len : 1);
    if (need > c->out_cap - c->out_len)
        return SL_EFULL;
    uint32_t id = c->rpc->next_msgid++;
    sl_load_mpw_t w;
    sl_load_mpw_init(&w, c->out + c->out_len, c->out_cap - c->out_len);
    sl_load_mpw_array(&w, 4);
    sl_load_mpw_uint(&w, 0);
    sl_load_mpw_uint(&w, id);
    sl_load_mpw_str(&w, req->method, mlen);
    if (req->body)
        sl_load_mpw_raw(&w, req->body, req->body_len);
    else
        sl_load_mpw_array(&w, 0);
    sl_assert(!w.overflow);
    c->out_len += w.len;
    req->_rpc_id = id;
    sl_load__req_link(c, req);
    return 0;
}

static int status_of(const char *code, uint32_t len)
{
    static const struct {
        const char *code;
        int status;
    } map[] = {
        {"bad_request", 400},    {"bad_params", 400}, {"invalid_session_id", 400},
        {"invalid_type", 400},   {"not_found", 404},  {"too_large", 413},
        {"unknown_method", 501}, {"overloaded", 503},  {"unauthorized", 401},
        {"forbidden", 403},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(map); i++) {
        if (strlen(map[i].code) == len && memcmp(map[i].code, code, len) == 0)
            return map[i].status;
    }
    return 500;
}

/* The status an error object gives: 200 for nil, else by its code. */
static int read_error(sl_load_mp_t *r, const uint8_t **start, const uint8_t **end)
{
    *start = r->p;
    if (sl_load_mp_nil(r)) {
        *end = r->p;
        return 200;
    }
    sl_load_mp_t e = *r;
    uint32_t n;
    const char *code;
    uint32_t len;
    int status = 500;
    if (sl_load_mp_array(&e, &n) == 0 && n >= 1 && sl_load_mp_bytes(&e, &code, &len) == 0)
        status = status_of(code, len);
    if (sl_load_mp_skip(r) < 0)
        return -1;
    *end = r->p;
    return status;
}

/* [1, msgid, error, result], with r after the msgid's type. */
static int on_response(sl_load_conn_t *c, sl_load_mp_t *r)
{
    uint64_t msgid;
    if (sl_load_mp_uint(r, &msgid) < 0)
        return SL_EPROTO;
    const uint8_t *es, *ee;
    int status = read_error(r, &es, &ee);
    const uint8_t *rs = r->p;
    if (status < 0 || sl_load_mp_skip(r) < 0)
        return SL_EPROTO;
    sl_load_req_t *req = c->head;
    /* Bounded by the pending list; answered streams (status set) are
     * passed over. Responses nobody waits for are dropped. */
    while (req && (req->status != 0 || req->_rpc_id != msgid))
        req = req->_next;
    if (!req)
        return 0;
    req->status = status;
    if (req->cbs->on_headers)
        req->cbs->on_headers(req);
    if (req->sse && status == 200) {
        sl_load_mp_t res = {rs, r->p};
        uint64_t id;
        if (sl_load_mp_uint(&res, &id) < 0) {
            sl_load__req_finish(c, req, SL_EPROTO);
            return 0;
        }
        req->_rpc_id = id;
        if (streams_put(c->rpc, id, req) < 0)
            sl_load__req_finish(c, req, SL_ENOMEM);
        return 0;
    }
    if (req->cbs->on_body) {
        const uint8_t *b = status == 200 ? rs : es;
        const uint8_t *e = status == 200 ? r->p : ee;
        req->cbs->on_body(req, (const char *)b, (size_t)(e - b));
    }
    sl_load__req_finish(c, req, 0);
    return 0;
}

static int on_notify(sl_load_conn_t *c, const char *msg, size_t len)
{
    sl_load_rpc_note_t note;
    if (sl_load_rpc_parse_note(msg, len, &note) < 0)
        return SL_EPROTO;
    if (note.kind == SL_LOAD_RPC_NOTE_OTHER)
        return 0;
    sl_load_req_t *req = streams_get(c->rpc, note.sub_id);
    if (!req)
        return 0; /* a stream we no longer (or never) had */
    if (note.kind == SL_LOAD_RPC_NOTE_END) {
        streams_del(c->rpc, note.sub_id);
        sl_load__req_finish(c, req, 0);
        return 0;
    }
    if (req->cbs->on_body)
        req->cbs->on_body(req, msg, len);
    return 0;
}

static int dispatch(sl_load_conn_t *c, const char *msg, size_t len)
{
    sl_load_mp_t r = {(const uint8_t *)msg, (const uint8_t *)msg + len};
    uint32_t n;
    uint64_t type;
    if (sl_load_mp_array(&r, &n) < 0 || sl_load_mp_uint(&r, &type) < 0)
        return SL_EPROTO;
    if (type == 1 && n == 4)
        return on_response(c, &r);
    if (type == 2 && n == 3)
        return on_notify(c, msg, len);
    return SL_EPROTO; /* a request, or no message kind at all */
}

/* Dispatches the whole messages at the front of p[0..n); *used is how
 * many bytes they took. */
static int dispatch_all(sl_load_conn_t *c, const char *p, size_t n, size_t *used)
{
    size_t off = 0;
    int rc = 0;
    /* Bounded by n: each pass consumes one message or stops. A close
     * asked for by a callback stops the rest from being dispatched. */
    while (off < n && !c->close_requested) {
        size_t len;
        rc = sl_load_mp_measure(p + off, n - off, SL_LOAD_RPC_MESSAGE_MAX, &len);
        if (rc == SL_EAGAIN) {
            rc = 0;
            break;
        }
        if (rc < 0 || (rc = dispatch(c, p + off, len)) < 0)
            break;
        off += len;
    }
    *used = off;
    return rc < 0 ? SL_EPROTO : 0;
}

static int carry_append(struct sl_load_rpc_conn *rc, const char *data, size_t len)
{
    if (rc->carry_len + len > rc->carry_cap) {
        size_t cap = rc->carry_cap ? rc->carry_cap : 4096;
        while (cap < rc->carry_len + len)
            cap *= 2;
        char *nc = realloc(rc->carry, cap);
        if (!nc)
            return SL_ENOMEM;
        rc->carry = nc;
        rc->carry_cap = cap;
    }
    memcpy(rc->carry + rc->carry_len, data, len);
    rc->carry_len += len;
    return 0;
}

int sl_load__rpc_recv(sl_load_conn_t *c, const char *data, size_t len)
{
    struct sl_load_rpc_conn *rc = c->rpc;
    size_t used;
    if (rc->carry_len == 0) {
        if (dispatch_all(c, data, len, &used) < 0)
            return SL_EPROTO;
        return used < len ? carry_append(rc, data + used, len - used) : 0;
    }
    /* A message is being completed: it was measured as not yet whole, and
     * measuring bounds it by SL_LOAD_RPC_MESSAGE_MAX, so the carry stays
     * below that plus one recv. */
    if (carry_append(rc, data, len) < 0 || dispatch_all(c, rc->carry, rc->carry_len, &used) < 0)
        return SL_EPROTO;
    memmove(rc->carry, rc->carry + used, rc->carry_len - used);
    rc->carry_len -= used;
    return 0;
}

/* ---- codecs ---- */

int sl_load_rpc_session_id(const sl_load_opts_t *o, uint32_t s, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s-%u", o->session_prefix, s);
    return n > 0 && (size_t)n < cap ? n : SL_ETOOBIG;
}

int sl_load_rpc_encode_publish(char *out, size_t cap, const char *session, size_t session_len,
                               size_t data_len, bool durable, size_t *data_off)
{
    sl_load_mpw_t w;
    sl_load_mpw_init(&w, out, cap);
    sl_load_mpw_array(&w, durable ? 4 : 3);
    sl_load_mpw_str(&w, session, session_len);
    sl_load_mpw_str(&w, SL_LOAD_RPC_EVENT_TYPE, sizeof(SL_LOAD_RPC_EVENT_TYPE) - 1);
    sl_load_mpw_bin_head(&w, data_len);
    *data_off = w.len;
    sl_load_mpw_reserve(&w, data_len);
    if (durable) {
        sl_load_mpw_map(&w, 1);
        sl_load_mpw_str(&w, "durable", 7);
        sl_load_mpw_bool(&w, true);
    }
    return w.overflow || w.len > INT32_MAX ? SL_ETOOBIG : (int)w.len;
}

int sl_load_rpc_encode_subscribe(char *out, size_t cap, const char *session, size_t session_len,
                                 bool from_first)
{
    sl_load_mpw_t w;
    sl_load_mpw_init(&w, out, cap);
    sl_load_mpw_array(&w, 2);
    sl_load_mpw_str(&w, session, session_len);
    if (from_first)
        sl_load_mpw_uint(&w, 1);
    else
        sl_load_mpw_str(&w, "live", 4);
    return w.overflow ? SL_ETOOBIG : (int)w.len;
}

int sl_load_rpc_encode_session(char *out, size_t cap, const char *session, size_t session_len)
{
    sl_load_mpw_t w;
    sl_load_mpw_init(&w, out, cap);
    sl_load_mpw_array(&w, 1);
    sl_load_mpw_str(&w, session, session_len);
    return w.overflow ? SL_ETOOBIG : (int)w.len;
}

static bool is(const char *s, uint32_t len, const char *want)
{
    return strlen(want) == len && memcmp(s, want, len) == 0;
}

/* event params [sub_id, session, seq, type, data] with r at the first. */
static int parse_event(sl_load_mp_t *r, uint32_t n, sl_load_rpc_note_t *out)
{
    const char *session;
    uint32_t session_len;
    if (n < 5 || sl_load_mp_uint(r, &out->sub_id) < 0 ||
        sl_load_mp_bytes(r, &session, &session_len) < 0 || sl_load_mp_uint(r, &out->seq) < 0 ||
        sl_load_mp_bytes(r, &out->type, &out->type_len) < 0 ||
        sl_load_mp_bytes(r, &out->data, &out->data_len) < 0)
        return SL_EPROTO;
    out->kind = SL_LOAD_RPC_NOTE_EVENT;
    return 0;
}

int sl_load_rpc_parse_note(const char *msg, size_t len, sl_load_rpc_note_t *out)
{
    sl_load_mp_t r = {(const uint8_t *)msg, (const uint8_t *)msg + len};
    uint32_t n, pn;
    uint64_t type;
    const char *method;
    uint32_t mlen;
    memset(out, 0, sizeof(*out));
    if (sl_load_mp_array(&r, &n) < 0 || n != 3 || sl_load_mp_uint(&r, &type) < 0 || type != 2 ||
        sl_load_mp_bytes(&r, &method, &mlen) < 0 || sl_load_mp_array(&r, &pn) < 0)
        return SL_EPROTO;
    if (is(method, mlen, "event"))
        return parse_event(&r, pn, out);
    if (is(method, mlen, "gap")) {
        if (pn < 3 || sl_load_mp_uint(&r, &out->sub_id) < 0 ||
            sl_load_mp_uint(&r, &out->gap_from) < 0 || sl_load_mp_uint(&r, &out->gap_to) < 0)
            return SL_EPROTO;
        out->kind = SL_LOAD_RPC_NOTE_GAP;
        return 0;
    }
    if (is(method, mlen, "end")) {
        if (pn < 1 || sl_load_mp_uint(&r, &out->sub_id) < 0)
            return SL_EPROTO;
        out->kind = SL_LOAD_RPC_NOTE_END;
        return 0;
    }
    out->kind = SL_LOAD_RPC_NOTE_OTHER;
    return 0;
}

/* The largest loop_lag_ms_max over an array of reactor maps. */
static int reactor_lags(sl_load_mp_t *r, double *max, int *found)
{
    uint32_t n;
    if (sl_load_mp_array(r, &n) < 0)
        return sl_load_mp_skip(r);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t m;
        if (sl_load_mp_map(r, &m) < 0) {
            if (sl_load_mp_skip(r) < 0)
                return SL_EPROTO;
            continue;
        }
        for (uint32_t k = 0; k < m; k++) {
            const char *key;
            uint32_t klen;
            double v;
            if (sl_load_mp_bytes(r, &key, &klen) < 0)
                return SL_EPROTO;
            if (is(key, klen, "loop_lag_ms_max") && sl_load_mp_number(r, &v) == 0) {
                *max = *found && *max > v ? *max : v;
                *found = 1;
            } else if (sl_load_mp_skip(r) < 0) {
                return SL_EPROTO;
            }
        }
    }
    return 0;
}

/* Reads a number into *v when it is one; skips the value otherwise. */
static int take_int(sl_load_mp_t *r, int64_t *v, int *found)
{
    double d;
    if (sl_load_mp_number(r, &d) == 0) {
        *v = (int64_t)d;
        (*found)++;
        return 0;
    }
    return sl_load_mp_skip(r);
}

int sl_load_rpc_health_parse(const char *msg, size_t len, sl_load_health_t *out)
{
    sl_load_mp_t r = {(const uint8_t *)msg, (const uint8_t *)msg + len};
    uint32_t n;
    int found = 0, lag_found = 0;
    *out = (sl_load_health_t){-1, -1, -1, -1, -1};
    if (sl_load_mp_map(&r, &n) < 0)
        return SL_EPROTO;
    for (uint32_t i = 0; i < n; i++) {
        const char *key;
        uint32_t klen;
        int rc;
        if (sl_load_mp_bytes(&r, &key, &klen) < 0)
            return SL_EPROTO;
        if (is(key, klen, "rss_bytes"))
            rc = take_int(&r, &out->rss_bytes, &found);
        else if (is(key, klen, "open_fds"))
            rc = take_int(&r, &out->open_fds, &found);
        else if (is(key, klen, "connections"))
            rc = take_int(&r, &out->connections, &found);
        else if (is(key, klen, "streams"))
            rc = take_int(&r, &out->streams, &found);
        else if (is(key, klen, "reactors"))
            rc = reactor_lags(&r, &out->loop_lag_ms_max, &lag_found);
        else
            rc = sl_load_mp_skip(&r);
        if (rc < 0)
            return SL_EPROTO;
    }
    return found + lag_found ? 0 : SL_EPROTO;
}
