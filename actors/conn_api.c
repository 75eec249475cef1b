/*
 * Connection actor, the sessions API (API.md "HTTP"):
 *   POST   /v1/sessions/{id}/events   publish (single or NDJSON batch)
 *   GET    /v1/sessions/{id}/events   SSE subscribe
 *   GET    /v1/sessions               list (id order, cursor paging)
 *   GET    /v1/sessions/{id}          stats
 *   PUT    /v1/sessions/{id}          create (201 / 200)
 *   DELETE /v1/sessions/{id}          delete (204), ends its streams
 * Listing and stats read the directory's incrementally kept figures; no
 * file is opened and no session actor is asked.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actors/conn_int.h"
#include "actors/json.h"
#include "actors/server.h"
#include "net/http.h"
#include "net/sse.h"
#include "runtime/clock.h"
#include "runtime/log.h"
#include "actors/sessops.h"
#include "storage/session_id.h"

#define LIST_LIMIT_DEFAULT 100
#define LIST_LIMIT_MAX 1000
#define STATS_JSON_MAX 512

static const sl_http_header_t json_hdr[] = {SL_HTTP_HEADER_LIT("content-type", "application/json")};

static void err(sl_conn_t *c, uint32_t sid, int status, const char *code, const char *msg)
{
    if (status >= 500)
        atomic_fetch_add_explicit(&c->srv->counters.responses_5xx, 1, memory_order_relaxed);
    else
        atomic_fetch_add_explicit(&c->srv->counters.responses_4xx, 1, memory_order_relaxed);
    sl_http_respond_error(c->http, sid, status, code, msg, NULL, 0);
}

static void not_allowed(sl_conn_t *c, uint32_t sid, const char *allow)
{
    sl_http_header_t h = {"allow", 5, allow, strlen(allow)};
    atomic_fetch_add_explicit(&c->srv->counters.responses_4xx, 1, memory_order_relaxed);
    sl_http_respond_error(c->http, sid, 405, "method_not_allowed", "method not allowed here", &h, 1);
}

bool sl_conn__type_valid(const char *t, size_t n)
{
    if (n < 1 || n > SL_EVENT_TYPE_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = t[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == ':' || ch == '-'))
            return false;
    }
    return true;
}

static sl_http_str_t header_str(const sl_http_req_t *req, const char *name)
{
    const sl_http_header_t *h = sl_http_req_header(req, name);
    return h ? (sl_http_str_t){h->value, h->value_len} : (sl_http_str_t){NULL, 0};
}

static bool truthy(sl_http_str_t v)
{
    return v.ptr && ((v.len == 1 && v.ptr[0] == '1') || (v.len == 4 && memcmp(v.ptr, "true", 4) == 0));
}

int sl_conn__query(const sl_http_req_t *req, const char *name, char *buf, size_t cap,
                   sl_http_str_t *v)
{
    int n = sl_http_query_get(req->query, name, buf, cap);
    if (n == SL_ENOTFOUND)
        return 0;
    if (n < 0)
        return -1;
    *v = (sl_http_str_t){buf, (size_t)n};
    return 1;
}

/* A boolean query flag: absent or any other value is false. */
static bool query_truthy(const sl_http_req_t *req, const char *name)
{
    char buf[8];
    sl_http_str_t v;
    return sl_conn__query(req, name, buf, sizeof buf, &v) == 1 && truthy(v);
}

size_t sl_conn__stats_json(const sl_entry_t *e, char *out, size_t cap)
{
    return sl_sessops_stats_json(e, out, cap);
}

/* ---- publish ---- */

sl_pub_t *sl_conn__pub_alloc(uint32_t nevents, size_t buf_bytes)
{
    return sl_sessops_pub_alloc(nevents, buf_bytes);
}

bool sl_conn__event_sse_fits(const sl_config_t *cfg, size_t type_len, const uint8_t *data,
                             size_t data_len)
{
    size_t bound = sl_sse_encoded_bound(cfg->max_event_bytes);
    /* Most events are far below the bound even if every byte were a line
     * break: they need no scan. */
    if (sl_sse_encoded_max(type_len, data_len) <= bound)
        return true;
    return sl_sse_encoded_size(UINT64_MAX, type_len, data, data_len) <= bound;
}

/* The events of a batch being parsed, gathered apart from their bytes
 * (which go straight into the publish's buffer) so that the array grows
 * with the events found, not with a count made beforehand. */
typedef struct batch {
    sl_pub_event_t *ev;
    uint32_t count, cap; /* count <= cap <= SL_BATCH_EVENTS_MAX */
    size_t out;          /* bytes used in the publish's buffer */
} batch_t;

static bool line_blank(const char *b, size_t n)
{
    for (size_t k = 0; k < n; k++)
        if (b[k] != ' ' && b[k] != '\t' && b[k] != '\r')
            return false;
    return true;
}

/* Decodes one non-blank line into buf (cap bytes) and bt. Returns 0, or
 * the status with *code set (nothing of the batch is appended then). */
static int batch_line(const sl_config_t *cfg, const char *line, size_t len, uint8_t *buf, size_t cap,
                      batch_t *bt, const char **code)
{
    if (bt->count == SL_BATCH_EVENTS_MAX)
        return *code = "too_large", 413;
    if (bt->count == bt->cap) {
        uint32_t ncap = bt->cap ? bt->cap * 2 : 16;
        ncap = ncap > SL_BATCH_EVENTS_MAX ? SL_BATCH_EVENTS_MAX : ncap;
        sl_pub_event_t *ev = realloc(bt->ev, ncap * sizeof *ev);
        if (!ev)
            return *code = "overloaded", 503;
        bt->ev = ev, bt->cap = ncap;
    }
    uint8_t *o = buf + bt->out;
    uint32_t tlen, doff, dlen;
    int rc = sl_json_event_line(line, len, o, cap - bt->out, &tlen, &doff, &dlen);
    if (rc != 0)
        return *code = "bad_request", 400;
    if (tlen && !sl_conn__type_valid((const char *)o, tlen))
        return *code = "invalid_type", 400;
    if (dlen > cfg->max_event_bytes ||
        !sl_conn__event_sse_fits(cfg, tlen ? tlen : 7, o + doff, dlen))
        return *code = "too_large", 413;
    uint32_t at = (uint32_t)bt->out;
    if (!tlen) { /* the default type goes after the data */
        memcpy(o + doff + dlen, "message", 7);
        bt->ev[bt->count++] = (sl_pub_event_t){at + doff + dlen, 7, at + doff, dlen, false};
        bt->out += doff + dlen + 7;
    } else {
        bt->ev[bt->count++] = (sl_pub_event_t){at, tlen, at + doff, dlen, false};
        bt->out += doff + dlen;
    }
    return 0;
}

/* Parses an NDJSON body into a publish request, in one pass bounded by the
 * body and SL_BATCH_EVENTS_MAX. Returns NULL with *status and *code set on
 * bad input (the whole batch is rejected). */
sl_pub_t *sl_conn__parse_batch(const sl_http_req_t *req, const sl_config_t *cfg, int *status,
                               const char **code)
{
    const char *b = (const char *)req->body;
    size_t n = req->body_len;
    /* Decoding never grows a string; +7 per event for a default type is
     * covered by the quotes and key every line spends. */
    size_t cap = n + 16;
    sl_pub_t *p = sl_conn__pub_alloc(0, cap);
    batch_t bt = {0};
    int st = p ? 0 : 503;
    *code = "overloaded";
    for (size_t start = 0; start < n && st == 0;) {
        const char *nl = memchr(b + start, '\n', n - start);
        size_t end = nl ? (size_t)(nl - b) : n;
        if (!line_blank(b + start, end - start))
            st = batch_line(cfg, b + start, end - start, p->buf, cap, &bt, code);
        start = end + 1;
    }
    if (st == 0 && bt.count == 0)
        st = 400, *code = "bad_request";
    if (st == 0) {
        /* The events go behind the bytes: one allocation, as pub_alloc. */
        size_t at =
            (sizeof *p + bt.out + _Alignof(sl_pub_event_t) - 1) & ~(_Alignof(sl_pub_event_t) - 1);
        sl_pub_t *q = realloc(p, at + bt.count * sizeof *bt.ev);
        if (q) {
            p = q;
            p->buf = (uint8_t *)(p + 1);
            p->events = (sl_pub_event_t *)(void *)((uint8_t *)p + at);
            memcpy(p->events, bt.ev, bt.count * sizeof *bt.ev);
            p->nevents = bt.count;
        } else {
            st = 503, *code = "overloaded";
        }
    }
    free(bt.ev);
    if (st != 0) {
        free(p);
        *status = st;
        return NULL;
    }
    return p;
}

static sl_pub_t *parse_single(sl_conn_t *c, const sl_http_req_t *req, int *status, const char **code)
{
    sl_http_str_t t = {"message", 7}, q;
    char tbuf[SL_EVENT_TYPE_MAX + 1];
    if (req->event_type.ptr)
        t = req->event_type;
    int found = sl_conn__query(req, "type", tbuf, sizeof tbuf, &q);
    if (found > 0)
        t = q;
    if (found < 0 || !sl_conn__type_valid(t.ptr, t.len)) {
        *status = 400, *code = "invalid_type";
        return NULL;
    }
    if (req->body_len > c->srv->cfg.max_event_bytes ||
        !sl_conn__event_sse_fits(&c->srv->cfg, t.len, req->body, req->body_len)) {
        *status = 413, *code = "too_large";
        return NULL;
    }
    sl_pub_t *p = sl_conn__pub_alloc(1, t.len + req->body_len);
    if (!p) {
        *status = 503, *code = "overloaded";
        return NULL;
    }
    memcpy(p->buf, t.ptr, t.len);
    if (req->body_len)
        memcpy(p->buf + t.len, req->body, req->body_len);
    p->events[0] = (sl_pub_event_t){0, (uint32_t)t.len, (uint32_t)t.len, (uint32_t)req->body_len, false};
    return p;
}

int sl_conn__send_publish(sl_conn_t *c, uint32_t sid, const char *id, size_t id_len, sl_pub_t *p)
{
    p->stream_id = sid;
    int rc = sl_sessops_publish(c->srv, &c->a, id, id_len, p, true);
    if (rc == 0)
        c->pubs_inflight++;
    return rc;
}

const char *sl_conn__publish_error_text(int rc)
{
    return rc == SL_EFULL     ? "too many sessions"
           : rc == SL_ECLOSED ? "session unavailable; retry"
                              : "session is busy; retry";
}

/* Sends p to the session of id (creating it), or answers the failure. */
static void send_publish(sl_conn_t *c, uint32_t sid, const char *id, size_t id_len, sl_pub_t *p)
{
    int rc = sl_conn__send_publish(c, sid, id, id_len, p);
    if (rc == SL_EAGAIN) {
        static const sl_http_header_t ra[] = {SL_HTTP_HEADER_LIT("retry-after", "1")};
        atomic_fetch_add_explicit(&c->srv->counters.responses_5xx, 1, memory_order_relaxed);
        sl_http_respond_error(c->http, sid, 503, "overloaded", sl_conn__publish_error_text(rc),
                              ra, 1);
    } else if (rc != 0) {
        err(c, sid, 503, "overloaded", sl_conn__publish_error_text(rc));
    }
}

static int parse_u64(const char *s, size_t n, uint64_t *out);

/* Idempotent producer headers (API.md): all three or none. Returns 0 or
 * answers 400 and returns -1. */
static int producer_headers(sl_conn_t *c, const sl_http_req_t *req, sl_pub_t *p)
{
    sl_http_str_t pid = header_str(req, "producer-id"), ep = header_str(req, "producer-epoch"),
                  sq = header_str(req, "producer-seq");
    int have = (pid.ptr != NULL) + (ep.ptr != NULL) + (sq.ptr != NULL);
    if (have == 0)
        return 0;
    const char *why = NULL;
    if (have != 3)
        why = "Producer-Id, Producer-Epoch and Producer-Seq go together";
    else if (!sl_sessops_producer_id_valid(pid.ptr, pid.len))
        why = "Producer-Id must be 1-128 bytes of [A-Za-z0-9._:-]";
    else if (parse_u64(ep.ptr, ep.len, &p->producer_epoch) != 0 ||
             parse_u64(sq.ptr, sq.len, &p->producer_seq) != 0 ||
             p->producer_epoch > SL_PRODUCER_NUM_MAX || p->producer_seq > SL_PRODUCER_NUM_MAX)
        why = "Producer-Epoch and Producer-Seq must be integers 0..2^53-1";
    if (why) {
        err(c, req->stream_id, 400, "bad_request", why);
        return -1;
    }
    p->has_producer = true;
    p->producer_id_len = (uint8_t)pid.len;
    memcpy(p->producer_id, pid.ptr, pid.len);
    return 0;
}

static void handle_publish(sl_conn_t *c, const sl_http_req_t *req, const char *id, size_t id_len)
{
    int status = 0;
    const char *code = NULL;
    bool batch = req->content_type.ptr && req->content_type.len >= 20 &&
                 strncmp(req->content_type.ptr, "application/x-ndjson", 20) == 0;
    sl_pub_t *p = batch ? sl_conn__parse_batch(req, &c->srv->cfg, &status, &code)
                        : parse_single(c, req, &status, &code);
    if (!p) {
        err(c, req->stream_id, status, code,
            status == 413   ? "event data exceeds --max-event-bytes (or its SSE form the bound "
                              "for one event), or the batch exceeds its event cap"
            : status == 503 ? "out of memory"
                            : "invalid event");
        return;
    }
    p->durable = truthy(req->durable) || query_truthy(req, "durable");
    /* Extension: ephemeral events are sequenced and streamed but not
     * logged (a lagging subscriber gets a sluice.gap for them). */
    p->ephemeral = query_truthy(req, "ephemeral") || truthy(header_str(req, "sluice-ephemeral"));
    if (p->ephemeral && p->durable) {
        free(p);
        err(c, req->stream_id, 400, "bad_request", "an event cannot be both durable and ephemeral");
        return;
    }
    p->close = query_truthy(req, "close") || truthy(header_str(req, "sluice-close"));
    if (p->close && p->ephemeral) {
        free(p);
        err(c, req->stream_id, 400, "bad_request", "a closing publish cannot be ephemeral");
        return;
    }
    if (producer_headers(c, req, p) != 0) {
        free(p);
        return;
    }
    p->aux_batch = batch;
    memcpy(p->id, id, id_len);
    p->id_len = (uint32_t)id_len;
    send_publish(c, req->stream_id, id, id_len, p);
}

/* The 200 body of a publish (API.md): {"seq"} or {"first_seq","last_seq"},
 * a close's {"last_seq","closed":true}, "closed" and "duplicate" marks. */
static size_t publish_answer(const sl_pub_t *p, char *body, size_t cap)
{
    int n;
    if (p->duplicate && !p->dup_known)
        n = snprintf(body, cap, "{\"duplicate\":true");
    else if (p->nevents == 0)
        n = snprintf(body, cap, "{\"last_seq\":%" PRIu64, p->last_seq);
    else if (p->aux_batch)
        n = snprintf(body, cap, "{\"first_seq\":%" PRIu64 ",\"last_seq\":%" PRIu64, p->first_seq,
                     p->last_seq);
    else
        n = snprintf(body, cap, "{\"seq\":%" PRIu64, p->last_seq);
    size_t o = (size_t)n;
    if (p->closed)
        o += (size_t)snprintf(body + o, cap - o, ",\"closed\":true");
    if (p->duplicate && p->dup_known)
        o += (size_t)snprintf(body + o, cap - o, ",\"duplicate\":true");
    o += (size_t)snprintf(body + o, cap - o, "}");
    return o;
}

/* A publish the session's lifecycle refused: closed, fenced, gap, a new
 * epoch not at seq 0, a Stream-Seq out of order. */
static void lifecycle_refused(sl_conn_t *c, const sl_pub_t *p)
{
    char body[200], val[24];
    sl_http_header_t h[2];
    size_t nh = 1, n;
    int status;
    h[0] = json_hdr[0];
    switch (p->status) {
    case SL_EENDED:
        status = 409;
        n = (size_t)snprintf(body, sizeof body,
                             "{\"error\":\"closed\",\"message\":\"the session is closed\",\"last_seq\":%" PRIu64 "}",
                             p->last_seq);
        break;
    case SL_EFENCED:
        status = 403;
        n = (size_t)snprintf(body, sizeof body,
                             "{\"error\":\"fenced\",\"message\":\"a newer producer epoch is active\",\"epoch\":%" PRIu64 "}",
                             p->producer_epoch);
        snprintf(val, sizeof val, "%" PRIu64, p->producer_epoch);
        h[nh++] = (sl_http_header_t){"producer-epoch", 14, val, strlen(val)};
        break;
    case SL_EGAP:
        status = 409;
        n = (size_t)snprintf(body, sizeof body,
                             "{\"error\":\"producer_gap\",\"message\":\"producer seq skipped\",\"expected_seq\":%" PRIu64 "}",
                             p->producer_seq);
        snprintf(val, sizeof val, "%" PRIu64, p->producer_seq);
        h[nh++] = (sl_http_header_t){"producer-expected-seq", 21, val, strlen(val)};
        break;
    case SL_ECONFLICT:
        status = 409;
        n = (size_t)snprintf(body, sizeof body,
                             "{\"error\":\"conflict\",\"message\":\"sequence not above the last one\"}");
        break;
    default:
        status = 400;
        n = (size_t)snprintf(body, sizeof body,
                             "{\"error\":\"bad_request\",\"message\":\"a new producer epoch starts at seq 0; a closing publish cannot be ephemeral\"}");
        break;
    }
    atomic_fetch_add_explicit(&c->srv->counters.responses_4xx, 1, memory_order_relaxed);
    sl_http_respond(c->http, p->stream_id, status, h, nh, body, n);
}

static void on_published(sl_conn_t *c, sl_pub_t *p)
{
    c->pubs_inflight--;
    /* The session actor ended (hibernated) between our lookup and its turn:
     * nothing was appended, so send the same request to its successor. */
    if (p->status == SL_ECLOSED && p->first_seq == 0 && p->retries < 3 &&
        c->state < SL_CONN__CLOSING && c->proto->started(c)) {
        p->retries++;
        sl_actor_release(&c->a);
        c->proto->resend(c, p);
        return;
    }
    c->proto->published(c, p);
}

/* The publish hooks of sl_conn__http_ops (conn_int.h). */
void sl_conn__http_resend(sl_conn_t *c, sl_pub_t *p)
{
    send_publish(c, p->stream_id, p->id, p->id_len, p);
}

void sl_conn__http_published(sl_conn_t *c, sl_pub_t *p)
{
    if (c->state < SL_CONN__CLOSING && c->http) {
        if (p->status == SL_EENDED || p->status == SL_EFENCED || p->status == SL_EGAP ||
            p->status == SL_EINVAL || p->status == SL_ECONFLICT) {
            lifecycle_refused(c, p);
        } else if (p->status != 0) {
            static const sl_http_header_t ra[] = {SL_HTTP_HEADER_LIT("retry-after", "1")};
            atomic_fetch_add_explicit(&c->srv->counters.responses_5xx, 1, memory_order_relaxed);
            sl_http_respond_error(c->http, p->stream_id, 503, "overloaded",
                                  p->status == SL_ECLOSED  ? "session is closing; retry"
                                  : p->status == SL_EFULL ? "session is busy; retry"
                                                          : "publish failed",
                                  ra, 1);
        } else {
            char body[160];
            size_t n = publish_answer(p, body, sizeof body);
            sl_http_respond(c->http, p->stream_id, 200, json_hdr, 1, body, n);
        }
    }
    free(p);
    sl_actor_release(&c->a); /* the request's reference */
}

/* POST /v1/sessions/{id}/close: a publish of no event that closes. */
static void handle_close(sl_conn_t *c, const sl_http_req_t *req, const char *id, size_t id_len)
{
    sl_pub_t *p = sl_sessops_pub_alloc(0, 0);
    if (!p)
        return err(c, req->stream_id, 503, "overloaded", "out of memory");
    p->close = true;
    p->durable = true;
    p->stream_id = req->stream_id;
    memcpy(p->id, id, id_len);
    p->id_len = (uint32_t)id_len;
    int rc = sl_sessops_publish(c->srv, &c->a, id, id_len, p, false);
    if (rc == 0) {
        c->pubs_inflight++;
    } else if (rc == SL_ENOTFOUND) {
        err(c, req->stream_id, 404, "not_found", "no such session");
    } else {
        static const sl_http_header_t ra[] = {SL_HTTP_HEADER_LIT("retry-after", "1")};
        atomic_fetch_add_explicit(&c->srv->counters.responses_5xx, 1, memory_order_relaxed);
        sl_http_respond_error(c->http, req->stream_id, 503, "overloaded",
                              sl_conn__publish_error_text(rc), ra, 1);
    }
}

/* ---- subscribe, stats, admin ---- */

static int parse_u64(const char *s, size_t n, uint64_t *out)
{
    if (n == 0 || n > 20)
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        uint64_t nv = v * 10 + (uint64_t)(s[i] - '0');
        if (nv < v)
            return -1;
        v = nv;
    }
    *out = v;
    return 0;
}

static void handle_subscribe(sl_conn_t *c, const sl_http_req_t *req, const char *id, size_t id_len)
{
    uint64_t from = 0; /* 0: live only */
    sl_http_str_t q = {NULL, 0};
    char qbuf[32];
    int found = sl_conn__query(req, "from", qbuf, sizeof qbuf, &q);
    if (req->last_event_id.ptr) {
        uint64_t k;
        if (parse_u64(req->last_event_id.ptr, req->last_event_id.len, &k) != 0) {
            err(c, req->stream_id, 400, "bad_request", "Last-Event-ID must be a seq");
            return;
        }
        from = k + 1;
    } else if (found != 0 && !(q.len == 4 && memcmp(q.ptr, "live", 4) == 0)) {
        if (found < 0 || parse_u64(q.ptr, q.len, &from) != 0 || from == 0) {
            err(c, req->stream_id, 400, "bad_request", "from must be a seq >= 1 or live");
            return;
        }
    }
    sl_entry_t *e = sl_sessops_lookup(c->srv, id, id_len);
    if (!e) {
        err(c, req->stream_id, 404, "not_found", "no such session");
        return;
    }
    uint64_t closed_seq;
    if (from && sl_sessops_closed(e, &closed_seq) && from > closed_seq) {
        /* Nothing will ever come: 204 tells an EventSource to stop. */
        sl_entry_release(e);
        sl_http_respond(c->http, req->stream_id, 204, NULL, 0, NULL, 0);
        return;
    }
    sl_sessops_touch(e);
    /* A Last-Event-ID beyond anything this incarnation has issued can only
     * come from an earlier incarnation (deleted and recreated): say so with
     * sluice.reset and replay this incarnation from its start, instead of
     * silently skipping events. */
    bool reset = req->last_event_id.ptr &&
                 from - 1 > atomic_load_explicit(&e->stats.last_seq, memory_order_relaxed);
    if (reset)
        from = 1;
    sl_conn__subscribe(c, req->stream_id, e, from, from, reset);
}

static void handle_list(sl_conn_t *c, const sl_http_req_t *req)
{
    sl_http_str_t q;
    char qbuf[32];
    uint64_t limit = LIST_LIMIT_DEFAULT;
    int found = sl_conn__query(req, "limit", qbuf, sizeof qbuf, &q);
    if (found < 0 || (found > 0 && parse_u64(q.ptr, q.len, &limit) != 0)) {
        err(c, req->stream_id, 400, "bad_request", "limit must be an integer");
        return;
    }
    limit = limit < 1 ? 1 : limit > LIST_LIMIT_MAX ? LIST_LIMIT_MAX : limit;
    char cursor[SL_SESSION_ID_MAX + 1];
    int clen = 0;
    found = sl_conn__query(req, "cursor", cursor, sizeof cursor, &q);
    if (found < 0) {
        err(c, req->stream_id, 400, "bad_request", "bad cursor");
        return;
    }
    clen = found > 0 ? (int)q.len : 0;
    size_t o;
    char *body = sl_conn__list_json(c, clen ? cursor : NULL, (size_t)clen, limit, &o);
    if (!body) {
        err(c, req->stream_id, 503, "overloaded", "out of memory");
        return;
    }
    sl_http_respond(c->http, req->stream_id, 200, json_hdr, 1, body, o);
    free(body);
}

/* sl_registry_list, keeping only the sessions the caller may sub
 * (API.md "Access control"). Registry pages are read until limit ids are
 * kept, the registry ends, or SL_AUTH_LIST_SCAN_MAX entries were looked
 * at (policy: a shorter page, with `next`, so one request's work stays
 * bounded whatever the caller's patterns). */
static uint32_t list_visible(sl_conn_t *c, const char *cursor, size_t clen, uint32_t limit,
                             sl_entry_t **out, bool *more, char *next)
{
    sl_registry_t *reg = c->srv->registry;
    if (!sl_auth_enabled(c->srv->cfg.auth)) {
        uint32_t n = sl_registry_list(reg, clen ? cursor : NULL, clen, limit, out, more);
        if (n > 0)
            snprintf(next, SL_SESSION_ID_MAX + 1, "%s", out[n - 1]->id);
        return n;
    }
    uint64_t now = sl_clock_wall_ns();
    char after[SL_SESSION_ID_MAX + 1];
    size_t alen = clen;
    memcpy(after, cursor ? cursor : "", clen);
    uint32_t kept = 0, scanned = 0;
    *more = true;
    while (kept < limit && *more && scanned < SL_AUTH_LIST_SCAN_MAX) {
        uint32_t n = sl_registry_list(reg, alen ? after : NULL, alen, limit - kept, out + kept, more);
        scanned += n;
        uint32_t k = kept;
        for (uint32_t i = kept; i < kept + n; i++) {
            sl_entry_t *e = out[i];
            if (i + 1 == kept + n) { /* the next page starts after the last one looked at */
                memcpy(after, e->id, e->id_len);
                alen = e->id_len;
            }
            if (sl_conn__auth_may_list(c, e->id, e->id_len, now))
                out[k++] = e;
            else
                sl_entry_release(e);
        }
        kept = k;
        if (n == 0)
            *more = false;
    }
    memcpy(next, after, alen); /* continue after the last entry looked at */
    next[alen] = '\0';
    return kept;
}

char *sl_conn__list_json(sl_conn_t *c, const char *cursor, size_t clen, uint64_t limit,
                         size_t *len)
{
    limit = limit < 1 ? 1 : limit > LIST_LIMIT_MAX ? LIST_LIMIT_MAX : limit;
    sl_entry_t **list = malloc(limit * sizeof *list);
    char *body = malloc(limit * STATS_JSON_MAX + 256);
    if (!list || !body) {
        free(list);
        free(body);
        return NULL;
    }
    bool more;
    char next[SL_SESSION_ID_MAX + 1] = "";
    uint32_t n = list_visible(c, cursor, clen, (uint32_t)limit, list, &more, next);
    size_t o = (size_t)sprintf(body, "{\"sessions\":[");
    for (uint32_t i = 0; i < n; i++) {
        if (i)
            body[o++] = ',';
        o += sl_conn__stats_json(list[i], body + o, STATS_JSON_MAX);
    }
    o += (size_t)sprintf(body + o, "]");
    if (more && next[0])
        o += (size_t)sprintf(body + o, ",\"next\":\"%s\"", next);
    o += (size_t)sprintf(body + o, "}");
    for (uint32_t i = 0; i < n; i++)
        sl_entry_release(list[i]);
    free(list);
    *len = o;
    return body;
}

/* Sluice-TTL / Sluice-Expires-At of a PUT (API.md). Returns 0 or answers
 * 400 and returns -1. */
static int ttl_headers(sl_conn_t *c, const sl_http_req_t *req, sl_session_attrs_t *a)
{
    sl_http_str_t ttl = header_str(req, "sluice-ttl"), exp = header_str(req, "sluice-expires-at");
    const char *why = NULL;
    if (ttl.ptr && exp.ptr)
        why = "Sluice-TTL and Sluice-Expires-At exclude each other";
    else if (ttl.ptr && sl_sessops_parse_ttl(ttl.ptr, ttl.len, &a->ttl_ns) != 0)
        why = "Sluice-TTL must be seconds > 0";
    else if (exp.ptr && sl_sessops_parse_rfc3339(exp.ptr, exp.len, &a->expires_at_ns) != 0)
        why = "Sluice-Expires-At must be an RFC 3339 time";
    if (why) {
        err(c, req->stream_id, 400, "bad_request", why);
        return -1;
    }
    return 0;
}

static void handle_session(sl_conn_t *c, const sl_http_req_t *req, const char *id, size_t id_len)
{
    char body[STATS_JSON_MAX];
    uint32_t sid = req->stream_id;
    if (req->method == SL_HTTP_METHOD_GET || req->method == SL_HTTP_METHOD_HEAD) {
        sl_entry_t *e = sl_sessops_lookup(c->srv, id, id_len);
        if (!e)
            return err(c, sid, 404, "not_found", "no such session");
        size_t n = sl_conn__stats_json(e, body, sizeof body);
        sl_entry_release(e);
        sl_http_respond(c->http, sid, 200, json_hdr, 1, body, n);
    } else if (req->method == SL_HTTP_METHOD_PUT) {
        sl_session_attrs_t a = {0};
        if (ttl_headers(c, req, &a) != 0)
            return;
        sl_entry_t *e;
        bool created;
        int rc = sl_sessops_create(c->srv, id, id_len, &a, &e, &created);
        if (rc == SL_ECONFLICT)
            return err(c, sid, 409, "conflict", "the session exists with another TTL, expiry or state");
        if (rc != 0)
            return err(c, sid, 503, "overloaded", "too many sessions");
        size_t n = sl_conn__stats_json(e, body, sizeof body);
        sl_entry_release(e);
        sl_http_respond(c->http, sid, created ? 201 : 200, json_hdr, 1, body, n);
    } else if (req->method == SL_HTTP_METHOD_DELETE) {
        if (sl_sessops_delete(c->srv, id, id_len) != 0)
            return err(c, sid, 404, "not_found", "no such session");
        sl_http_respond(c->http, sid, 204, NULL, 0, NULL, 0);
    } else {
        not_allowed(c, sid, "GET, HEAD, PUT, DELETE");
    }
}

/* Splits /v1/sessions/{id}[/events]; decodes and validates the id. */
void sl_conn__api_request(sl_conn_t *c, const sl_http_req_t *req)
{
    const char *p = req->path.ptr + 12; /* after "/v1/sessions" */
    size_t n = req->path.len - 12;
    uint32_t sid = req->stream_id;
    if (n == 0) {
        if (req->method == SL_HTTP_METHOD_GET || req->method == SL_HTTP_METHOD_HEAD) {
            /* Any valid token may list; the list holds what it may sub. */
            if (sl_conn__auth_http(c, req, SL_AUTH_LIST, NULL, 0))
                handle_list(c, req);
            return;
        }
        return not_allowed(c, sid, "GET, HEAD");
    }
    if (p[0] != '/')
        return err(c, sid, 404, "not_found", "no such resource");
    p++, n--;
    const char *slash = memchr(p, '/', n);
    size_t raw_len = slash ? (size_t)(slash - p) : n;
    char id[SL_SESSION_ID_MAX * 3 + 1];
    int id_len = raw_len <= SL_SESSION_ID_MAX * 3
                     ? sl_http_pct_decode(p, raw_len, id, sizeof id, 0)
                     : SL_ETOOBIG;
    if (id_len <= 0 || !sl_session_id_valid(id, (size_t)id_len))
        return err(c, sid, 400, "invalid_session_id",
                   "session ids are 1-128 bytes of [A-Za-z0-9._-], not starting with '.'");
    /* Reads need sub, every write (PUT, DELETE, POST) pub. */
    bool read = req->method == SL_HTTP_METHOD_GET || req->method == SL_HTTP_METHOD_HEAD;
    if (!sl_conn__auth_http(c, req, read ? SL_AUTH_SUB : SL_AUTH_PUB, id, (size_t)id_len))
        return;
    if (!slash)
        return handle_session(c, req, id, (size_t)id_len);
    if (n - raw_len >= 4 && memcmp(slash, "/run", 4) == 0 && (n - raw_len == 4 || slash[4] == '/'))
        return sl_conn__run_http(c, req, id, (size_t)id_len, slash + 4, n - raw_len - 4);
    if (n - raw_len == 6 && memcmp(slash, "/close", 6) == 0) {
        if (req->method != SL_HTTP_METHOD_POST)
            return not_allowed(c, sid, "POST");
        return handle_close(c, req, id, (size_t)id_len);
    }
    if (n - raw_len != 7 || memcmp(slash, "/events", 7) != 0)
        return err(c, sid, 404, "not_found", "no such resource");
    bool pub = req->method == SL_HTTP_METHOD_POST;
    if ((pub || req->method == SL_HTTP_METHOD_GET) && sl_conn__budget_refused(c, pub))
        return sl_conn__budget_respond(c, sid);
    if (req->method == SL_HTTP_METHOD_POST)
        return handle_publish(c, req, id, (size_t)id_len);
    if (req->method == SL_HTTP_METHOD_GET)
        return handle_subscribe(c, req, id, (size_t)id_len);
    not_allowed(c, sid, "GET, POST");
}

void sl_conn__session_reply(sl_conn_t *c, sl_msg_t *m)
{
    if (sl_conn__ds_msg(c, m))
        return; /* a Durable Streams request's (conn_ds.c) */
    if (m->kind == SL_CONN_MSG_PUBLISHED)
        on_published(c, (sl_pub_t *)(void *)m);
    else
        sl_conn__session_msg(c, m);
}
