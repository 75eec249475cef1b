/*
 * Connection actor, the Durable Streams face (README "Durable Streams";
 * the protocol is PROTOCOL.md of durable-streams):
 *   PUT    {prefix}/{name}   create (content type, TTL / expiry, closed, fork)
 *   POST   {prefix}/{name}   append (JSON arrays flattened), close, producers
 *   GET    {prefix}/{name}   catch-up, live=long-poll, live=sse
 *   HEAD   {prefix}/{name}   metadata
 *   DELETE {prefix}/{name}   delete (a stream forks still read: soft delete)
 *
 * A stream is a session: the same log, ring, limits and lifecycle, so it is
 * listed by /v1/sessions and readable over RPC. Each append's message (each
 * element of a JSON-mode array) is one event of type "message"; the offset
 * after event seq is seq in a fixed-width form ("0000000000000000_" and 16
 * decimal digits), so offsets sort like seqs and "-1" / "now" cannot occur.
 * Reads ask the session for raw records from the log (session.h
 * sl_raw_event_t) and frame them here: bytes, one JSON array, or SSE data
 * and control events. Live reads hold a subscription only for its
 * wake-ups; the data always comes from the log, so a slow SSE reader is
 * never dropped: it reads on from where it is whenever its stream has room.
 *
 * Forks: seqs up to a fork's fork_seq are its parent's, read from the
 * parent's log (a chain of forks is walked). Deleting a stream that forks
 * still read keeps its session (and log) and marks it soft-deleted: 410 to
 * clients, 409 to a re-create, until its last fork is deleted.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "actors/conn_int.h"
#include "actors/ds_json.h"
#include "actors/server.h"
#include "actors/sessops.h"
#include "net/http.h"
#include "runtime/clock.h"
#include "runtime/log.h"
#include "storage/session_id.h"

/* Bytes of data one catch-up or long-poll response carries at most (more
 * is left for the next request: Stream-Up-To-Date is then absent). */
#define DS_READ_BYTES_MAX (1u << 20)
/* An SSE stream reads the log only when its stream has this much room. */
#define DS_SSE_ROOM_MIN 4096u
/* Resends of a request whose session actor was ending (hibernating). */
#define DS_RETRIES_MAX 3
/* Forks a read walks up to find who holds a seq (policy: deeper is 400
 * at create, so reads never meet it). */
#define DS_FORK_DEPTH_MAX 32
/* While a live read waits, the stream's closure is looked at this often
 * (a close that appends nothing wakes no subscriber). */
#define DS_CLOSE_POLL_NS (200ull * 1000 * 1000)
/* Cursor intervals (PROTOCOL.md 10.1): 20 s from 2024-10-09T00:00:00Z. */
#define DS_CURSOR_EPOCH_S 1728432000ull
#define DS_CURSOR_INTERVAL_S 20ull
/* Soft-deleted streams remembered at once (policy: beyond, a delete of a
 * forked stream is refused with 503). */
#define DS_SOFT_DELETED_MAX 4096u
#define DS_EVENT_TYPE "message"
#define DS_OFFSET_LEN 33

enum { DS_WRITE = 1, DS_READ, DS_POLL, DS_SSE, DS_FORK };
/* Marks a binary sub-offset fork's content type (stripped when shown): a
 * re-create with another sub-offset then differs in attributes (409). */
#define DS_SUB_PARAM ";ds-fork-sub="
enum { SUB_NONE = 0, SUB_AWAY, SUB_ACTIVE, SUB_LEAVING };

typedef struct sl_ds_req {
    struct sl_ds_req *next, *prev;
    uint32_t sid;
    uint8_t kind;
    bool dead;             /* the peer went away: nothing more is written */
    bool finished;         /* the response is complete */
    sl_entry_t *e;         /* the stream (reference) */
    /* writes */
    sl_pub_t *pub;         /* the session's while away */
    int put_status;        /* PUT: 201, else 0 (POST) */
    bool put_closed;       /* PUT asked for a closed stream */
    bool close_only;
    bool has_producer;
    uint64_t producer_epoch, producer_seq;
    uint8_t retries;
    /* reads */
    uint64_t next_seq;     /* the first seq not yet read */
    uint64_t start_seq;
    bool json, b64;
    bool up_to_date, waiting;
    bool has_cursor;
    uint64_t cursor_in;
    uint64_t deadline_ns, close_check_ns;
    char inm[128];         /* If-None-Match */
    uint32_t inm_len;
    uint8_t *body;         /* catch-up / long-poll body being assembled */
    size_t body_len, body_cap;
    uint64_t body_events;
    bool sse_begun;
    bool end_pending;      /* end the SSE stream once pend is out */
    char *pend;            /* SSE bytes waiting for room (nothing is dropped) */
    size_t pend_len;
    /* the catch-up record (one outstanding) */
    sl_catchup_t cu;
    bool cu_out;
    bool cu_ancestor;      /* asked a parent (fork) for its seqs */
    sl_actor_t *cu_actor;
    uint8_t cu_retries;
    /* wake-ups (long-poll, SSE) */
    sl_sub_t sub;
    uint8_t sub_state;
    bool unsub_wanted;
    uint8_t resubs;
    sl_actor_t *sub_actor;
    /* a binary sub-offset fork: reads its inherited prefix, then creates */
    sl_session_attrs_t *fork_attrs; /* owned */
    uint64_t fork_k;
    bool fork_close;
    uint32_t fork_id_len;
    char fork_id[SL_SESSION_ID_MAX + 1];
} ds_req_t;

static const char ds_cache_public[] = "public, max-age=60, stale-while-revalidate=300";

/* ---- soft-deleted streams (process-wide) ---- */

typedef struct soft_del {
    sl_entry_t *e; /* reference */
} soft_del_t;

static pthread_mutex_t soft_lock = PTHREAD_MUTEX_INITIALIZER;
static soft_del_t soft_tab[DS_SOFT_DELETED_MAX];
static uint32_t soft_n;

static bool soft_deleted(const sl_entry_t *e)
{
    bool found = false;
    pthread_mutex_lock(&soft_lock);
    for (uint32_t i = 0; i < soft_n && !found; i++)
        found = soft_tab[i].e == e;
    pthread_mutex_unlock(&soft_lock);
    return found;
}

static bool soft_add(sl_entry_t *e)
{
    pthread_mutex_lock(&soft_lock);
    bool ok = soft_n < DS_SOFT_DELETED_MAX;
    if (ok) {
        sl_entry_retain(e);
        soft_tab[soft_n++].e = e;
    }
    pthread_mutex_unlock(&soft_lock);
    return ok;
}

/* Removes e from the table; returns true when it was there (the caller
 * then owns the table's reference). */
static bool soft_take(sl_entry_t *e)
{
    bool found = false;
    pthread_mutex_lock(&soft_lock);
    for (uint32_t i = 0; i < soft_n; i++) {
        if (soft_tab[i].e == e) {
            soft_tab[i] = soft_tab[--soft_n];
            found = true;
            break;
        }
    }
    pthread_mutex_unlock(&soft_lock);
    return found;
}

/* ---- small helpers ---- */

static void count_status(sl_conn_t *c, int status)
{
    if (status >= 500)
        atomic_fetch_add_explicit(&c->srv->counters.responses_5xx, 1, memory_order_relaxed);
    else if (status >= 400)
        atomic_fetch_add_explicit(&c->srv->counters.responses_4xx, 1, memory_order_relaxed);
}

/* Response headers under construction. */
typedef struct hdrs {
    sl_http_header_t h[16];
    size_t n;
    char store[512]; /* values formatted here */
    size_t used;
} hdrs_t;

static void hdr(hdrs_t *h, const char *name, const char *value, size_t len)
{
    if (h->n < SL_ARRAY_LEN(h->h))
        h->h[h->n++] = (sl_http_header_t){name, strlen(name), value, len};
}

static void hdr_s(hdrs_t *h, const char *name, const char *value) { hdr(h, name, value, strlen(value)); }

static void hdr_u64(hdrs_t *h, const char *name, uint64_t v)
{
    char *p = h->store + h->used;
    int n = snprintf(p, sizeof h->store - h->used, "%" PRIu64, v);
    if (n <= 0 || (size_t)n >= sizeof h->store - h->used)
        return;
    h->used += (size_t)n + 1;
    hdr(h, name, p, (size_t)n);
}

/* Seqs stay below 10^16 (a stream would need 10^16 events). */
static void offset_fmt(char *out, uint64_t seq)
{
    char tmp[48];
    snprintf(tmp, sizeof tmp, "0000000000000000_%016" PRIu64, seq % (uint64_t)10000000000000000ull);
    memcpy(out, tmp, DS_OFFSET_LEN + 1);
}

static void hdr_offset(hdrs_t *h, const char *name, uint64_t seq)
{
    if (sizeof h->store - h->used < DS_OFFSET_LEN + 1)
        return;
    char *p = h->store + h->used;
    offset_fmt(p, seq);
    h->used += DS_OFFSET_LEN + 1;
    hdr(h, name, p, DS_OFFSET_LEN);
}

/* net/http adds the security headers (nosniff, resource policy) itself. */
static void hdr_common(hdrs_t *h)
{
    h->n = 0;
    h->used = 0;
}

static void respond(sl_conn_t *c, uint32_t sid, int status, hdrs_t *h, const void *body,
                    size_t len)
{
    count_status(c, status);
    sl_http_respond(c->http, sid, status, h->h, h->n, body, len);
}

/* An error answer: the security headers, a short JSON body. */
static void fail(sl_conn_t *c, uint32_t sid, int status, const char *code, const char *msg)
{
    hdrs_t h;
    hdr_common(&h);
    count_status(c, status);
    sl_http_respond_error(c->http, sid, status, code, msg, h.h, h.n);
}

static const sl_http_header_t *req_hdr(const sl_http_req_t *req, const char *name)
{
    return sl_http_req_header(req, name);
}

static bool ieq(const char *a, size_t n, const char *lit)
{
    size_t m = strlen(lit);
    if (n != m)
        return false;
    for (size_t i = 0; i < n; i++) {
        char x = a[i];
        if (x >= 'A' && x <= 'Z')
            x = (char)(x - 'A' + 'a');
        if (x != lit[i])
            return false;
    }
    return true;
}

/* Stream-Closed counts only when it is exactly "true" (any case). */
static bool closed_header(const sl_http_req_t *req)
{
    const sl_http_header_t *h = req_hdr(req, "stream-closed");
    return h && ieq(h->value, h->value_len, "true");
}

/* A decimal without sign, leading zeros or fraction, <= max. */
static bool parse_dec(const char *s, size_t n, uint64_t max, uint64_t *out)
{
    if (n == 0 || n > 20 || (n > 1 && s[0] == '0'))
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        if (v > (UINT64_MAX - 9) / 10)
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > max)
        return false;
    *out = v;
    return true;
}

/* Offsets: "-1" (start) -> 0, opaque "0000000000000000_%016llu" -> seq.
 * Returns 0, 1 for "now", -1 malformed. */
static int parse_offset(const char *s, size_t n, uint64_t *seq)
{
    if (n == 2 && s[0] == '-' && s[1] == '1') {
        *seq = 0;
        return 0;
    }
    if (n == 3 && memcmp(s, "now", 3) == 0)
        return 1;
    if (n != DS_OFFSET_LEN || s[16] != '_')
        return -1;
    for (size_t i = 0; i < 16; i++)
        if (s[i] != '0')
            return -1;
    uint64_t v = 0;
    for (size_t i = 17; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *seq = v;
    return 0;
}

/* RFC 3339 date-time to wall ns; false when malformed. */
static bool parse_rfc3339(const char *s, size_t n, uint64_t *out)
{
    char buf[64];
    if (n < 20 || n >= sizeof buf)
        return false;
    memcpy(buf, s, n);
    buf[n] = 0;
    struct tm tm = {0};
    const char *p = strptime(buf, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!p)
        p = strptime(buf, "%Y-%m-%dt%H:%M:%S", &tm);
    if (!p)
        return false;
    uint64_t frac_ns = 0;
    if (*p == '.') {
        p++;
        uint64_t scale = 100000000;
        if (*p < '0' || *p > '9')
            return false;
        while (*p >= '0' && *p <= '9') {
            frac_ns += (uint64_t)(*p - '0') * scale;
            scale /= 10;
            p++;
        }
    }
    int64_t off_s = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':') {
        int hh = (p[1] - '0') * 10 + (p[2] - '0'), mm = (p[4] - '0') * 10 + (p[5] - '0');
        if (hh > 23 || mm > 59)
            return false;
        off_s = (int64_t)(hh * 3600 + mm * 60) * (*p == '+' ? 1 : -1);
        p += 6;
    } else {
        return false;
    }
    if (*p)
        return false;
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return false;
    int64_t secs = (int64_t)t - off_s;
    if (secs < 0)
        return false;
    *out = (uint64_t)secs * SL_NS_PER_S + frac_ns;
    return true;
}

static void fmt_rfc3339(char *out, size_t cap, uint64_t ns)
{
    time_t t = (time_t)(ns / SL_NS_PER_S);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* The media type of a content type, lower case, parameters kept but
 * spaces around them dropped: "Text/Plain; charset=UTF-8" and
 * "text/plain;charset=UTF-8" name the same stream type. */
static size_t norm_ctype(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    bool in_type = true;
    for (size_t i = 0; i < n && o + 1 < cap; i++) {
        char ch = s[i];
        if (ch == ' ' || ch == '\t')
            continue;
        if (ch == ';')
            in_type = false;
        if (in_type && ch >= 'A' && ch <= 'Z')
            ch = (char)(ch - 'A' + 'a');
        out[o++] = ch;
    }
    out[o] = 0;
    return o;
}

/* The media type part (before ';') of a normalized content type. */
static size_t media_len(const char *s, size_t n)
{
    const char *semi = memchr(s, ';', n);
    return semi ? (size_t)(semi - s) : n;
}

static bool ctype_json(const char *s, size_t n)
{
    return media_len(s, n) == 16 && memcmp(s, "application/json", 16) == 0;
}

/* SSE carries text/... and application/json natively, the rest base64. */
static bool ctype_text(const char *s, size_t n)
{
    return (n >= 5 && memcmp(s, "text/", 5) == 0) || ctype_json(s, n);
}

/* The stream's content type ("application/octet-stream" for a session
 * made by the native API). */
static void entry_ctype(const sl_entry_t *e, const char **s, size_t *n)
{
    if (e->attrs.content_type_len) {
        *s = e->attrs.content_type;
        *n = e->attrs.content_type_len;
        const char *mark = strstr(e->attrs.content_type, DS_SUB_PARAM);
        if (mark)
            *n = (size_t)(mark - e->attrs.content_type);
    } else {
        *s = "application/octet-stream";
        *n = 24;
    }
}

static uint64_t tail_seq(const sl_entry_t *e)
{
    return atomic_load_explicit(&e->stats.last_seq, memory_order_acquire);
}

/* The cursor of a live response (PROTOCOL.md 10.1): the current interval,
 * or beyond the client's when it is not behind (never backwards). */
static uint64_t cursor_next(const ds_req_t *r)
{
    uint64_t now_s = sl_clock_wall_ns() / SL_NS_PER_S;
    uint64_t cur = now_s > DS_CURSOR_EPOCH_S ? (now_s - DS_CURSOR_EPOCH_S) / DS_CURSOR_INTERVAL_S : 0;
    if (r->has_cursor && r->cursor_in >= cur) {
        /* 1..3600 s of jitter, in intervals, from the clock's low bits. */
        uint64_t jitter = 1 + (sl_clock_now_ns() / 1000) % (3600 / DS_CURSOR_INTERVAL_S);
        cur = r->cursor_in + jitter;
    }
    return cur;
}

static bool entry_closed(const sl_entry_t *e, uint64_t *last)
{
    return sl_sessops_closed(e, last);
}

/* Stream-TTL / Stream-Expires-At of e, for HEAD and create answers. */
static void hdr_expiry(hdrs_t *h, const sl_entry_t *e)
{
    if (e->attrs.ttl_ns)
        hdr_u64(h, "stream-ttl", e->attrs.ttl_ns / SL_NS_PER_S);
    if (e->attrs.expires_at_ns && sizeof h->store - h->used > 32) {
        char *p = h->store + h->used;
        fmt_rfc3339(p, 32, e->attrs.expires_at_ns);
        size_t n = strlen(p);
        h->used += n + 1;
        hdr(h, "stream-expires-at", p, n);
    }
}

/* ---- request records ---- */

static ds_req_t *req_new(sl_conn_t *c, uint32_t sid, uint8_t kind, sl_entry_t *e)
{
    ds_req_t *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->sid = sid;
    r->kind = kind;
    r->e = e;
    r->next = c->ds_reqs;
    if (c->ds_reqs)
        c->ds_reqs->prev = r;
    c->ds_reqs = r;
    c->nstreams++; /* keeps the connection busy (not idle) and the timer short */
    return r;
}

/* Frees r once nothing of it is away (publish, catch-up, subscription)
 * and its response is over. */
static void req_maybe_free(sl_conn_t *c, ds_req_t *r)
{
    if (!(r->finished || r->dead) || r->pub || r->cu_out || r->sub_state != SUB_NONE ||
        (r->pend && !r->dead))
        return;
    if (r->prev)
        r->prev->next = r->next;
    else
        c->ds_reqs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    c->nstreams--;
    if (r->sse_begun)
        atomic_fetch_sub_explicit(&c->srv->counters.streams_open, 1, memory_order_relaxed);
    if (r->e)
        sl_entry_release(r->e);
    if (r->cu.chunk)
        sl_chunk_release(r->cu.chunk);
    free(r->body);
    free(r->pend);
    free(r->fork_attrs);
    free(r);
}

/* Stream path -> session id (percent-decoded, validated). Returns the id
 * length or 0 when the name is not a valid session id. */
static size_t stream_name(const sl_conn_t *c, const char *path, size_t len, char *id, size_t cap)
{
    size_t plen = strlen(c->srv->cfg.ds_prefix);
    if (len <= plen + 1 || memcmp(path, c->srv->cfg.ds_prefix, plen) != 0 || path[plen] != '/')
        return 0;
    const char *p = path + plen + 1;
    size_t n = len - plen - 1;
    if (n > SL_SESSION_ID_MAX * 3)
        return 0;
    int k = sl_http_pct_decode(p, n, id, cap, 0);
    if (k <= 0 || !sl_session_id_valid(id, (size_t)k))
        return 0;
    return (size_t)k;
}

bool sl_conn__ds_path(const sl_conn_t *c, const sl_http_req_t *req)
{
    const char *pre = c->srv->cfg.ds_prefix;
    size_t plen = pre ? strlen(pre) : 0;
    return plen > 0 && req->path.len > plen && memcmp(req->path.ptr, pre, plen) == 0 &&
           req->path.ptr[plen] == '/';
}

/* ---- writes ---- */

/* The messages of a body (n bytes, borrowed): one for bytes, the flattened
 * elements for JSON, after an optional first message pre (a binary
 * sub-offset fork's inherited prefix). Returns an owned publish (events
 * of type DS_EVENT_TYPE), or NULL with *status / *msg set. empty_ok: an
 * empty JSON array is no message (PUT) rather than an error (POST). */
static sl_pub_t *build_pub(sl_conn_t *c, const uint8_t *b, size_t n, bool json, bool empty_ok,
                           const uint8_t *pre, size_t pre_len, int *status, const char **msg)
{
    const size_t tl = sizeof DS_EVENT_TYPE - 1;
    uint64_t max_ev = c->srv->cfg.max_event_bytes;
    uint32_t extra = pre_len ? 1 : 0;
    int count = 0;
    sl_ds_span_t *spans = NULL, one = {0, (uint32_t)n};
    *status = 400;
    if (n > 0 && !json) {
        count = 1;
        spans = &one;
    } else if (n > 0) {
        count = sl_ds_json_split(b, n, NULL, 0);
        if (count < 0) {
            *msg = "body is not valid JSON";
            return NULL;
        }
        if (count == 0 && !empty_ok) {
            *msg = "empty JSON array";
            return NULL;
        }
        if (count > SL_BATCH_EVENTS_MAX - 1) {
            *status = 413, *msg = "too many messages in one append";
            return NULL;
        }
        spans = count ? malloc((size_t)count * sizeof *spans) : NULL;
        if (count && !spans) {
            *status = 503, *msg = "out of memory";
            return NULL;
        }
        sl_ds_json_split(b, n, spans, (uint32_t)count);
    }
    size_t bytes = extra ? tl + pre_len : 0;
    for (int i = 0; i < count; i++) {
        if (spans[i].len > max_ev) {
            if (spans != &one)
                free(spans);
            *status = 413, *msg = "message larger than --max-event-bytes";
            return NULL;
        }
        bytes += tl + spans[i].len;
    }
    sl_pub_t *p = sl_sessops_pub_alloc((uint32_t)count + extra, bytes);
    if (!p) {
        if (spans != &one)
            free(spans);
        *status = 503, *msg = "out of memory";
        return NULL;
    }
    size_t o = 0;
    for (int i = -(int)extra; i < count; i++) {
        const uint8_t *d = i < 0 ? pre : b + spans[i].off;
        uint32_t len = i < 0 ? (uint32_t)pre_len : spans[i].len;
        memcpy(p->buf + o, DS_EVENT_TYPE, tl);
        memcpy(p->buf + o + tl, d, len);
        p->events[i + (int)extra] = (sl_pub_event_t){(uint32_t)o, (uint32_t)tl, (uint32_t)(o + tl),
                                                     len, false};
        o += tl + len;
    }
    if (spans != &one)
        free(spans);
    return p;
}

/* Producer-Id / -Epoch / -Seq: all or none. Returns 0 (none), 1 (set on
 * p), -1 (400). */
static int parse_producer(const sl_http_req_t *req, sl_pub_t *p)
{
    const sl_http_header_t *id = req_hdr(req, "producer-id");
    const sl_http_header_t *ep = req_hdr(req, "producer-epoch");
    const sl_http_header_t *sq = req_hdr(req, "producer-seq");
    if (!id && !ep && !sq)
        return 0;
    if (!id || !ep || !sq)
        return -1;
    const uint64_t max = (1ull << 53) - 1;
    if (!sl_sessops_producer_id_valid(id->value, id->value_len) ||
        !parse_dec(ep->value, ep->value_len, max, &p->producer_epoch) ||
        !parse_dec(sq->value, sq->value_len, max, &p->producer_seq))
        return -1;
    p->has_producer = true;
    p->producer_id_len = (uint8_t)id->value_len;
    memcpy(p->producer_id, id->value, id->value_len);
    return 1;
}

static int send_pub(sl_conn_t *c, ds_req_t *r)
{
    sl_pub_t *p = r->pub;
    p->stream_id = r->sid;
    p->durable = true; /* acknowledged appends survive a power cut (README) */
    int rc = sl_sessops_publish(c->srv, &c->a, r->e->id, r->e->id_len, p, false);
    if (rc != 0)
        r->pub = NULL; /* freed by sessops */
    return rc;
}

static void publish_failed(sl_conn_t *c, ds_req_t *r, int rc)
{
    if (rc == SL_ENOTFOUND) {
        fail(c, r->sid, 404, "not_found", "no such stream");
    } else {
        static const sl_http_header_t ra[] = {SL_HTTP_HEADER_LIT("retry-after", "1")};
        count_status(c, 503);
        sl_http_respond_error(c->http, r->sid, 503, "overloaded", "stream busy; retry", ra, 1);
    }
    r->finished = true;
}

/* The answer to an append / create once the session has it. */
static void on_published(sl_conn_t *c, ds_req_t *r, sl_pub_t *p)
{
    r->pub = NULL;
    if (p->status == SL_ECLOSED && p->first_seq == 0 && r->retries < DS_RETRIES_MAX && !r->dead &&
        c->state < SL_CONN__CLOSING) {
        r->retries++;
        r->pub = p;
        int rc = send_pub(c, r);
        sl_actor_release(&c->a);
        if (rc != 0)
            publish_failed(c, r, rc);
        req_maybe_free(c, r);
        return;
    }
    sl_actor_release(&c->a); /* the publish's reference */
    if (r->dead || c->state >= SL_CONN__CLOSING) {
        free(p);
        r->finished = true;
        req_maybe_free(c, r);
        return;
    }
    hdrs_t h;
    hdr_common(&h);
    uint64_t last = 0;
    bool closed = p->closed || entry_closed(r->e, &last);
    uint64_t tail = p->status == 0 ? p->last_seq : tail_seq(r->e);
    if (p->status == 0 && p->last_seq == 0)
        tail = tail_seq(r->e); /* nothing appended (a close, a duplicate) */
    if (closed && entry_closed(r->e, &last))
        tail = last;
    int status;
    switch (p->status) {
    case 0:
        hdr_offset(&h, "stream-next-offset", tail);
        if (closed)
            hdr_s(&h, "stream-closed", "true");
        if (r->has_producer) {
            hdr_u64(&h, "producer-epoch", r->producer_epoch);
            /* A duplicate answers the highest seq accepted so far. */
            hdr_u64(&h, "producer-seq", p->duplicate ? p->producer_seq : r->producer_seq);
        }
        if (r->put_status) {
            const char *ct;
            size_t ctn;
            entry_ctype(r->e, &ct, &ctn);
            hdr(&h, "content-type", ct, ctn);
            hdr_expiry(&h, r->e);
            status = r->put_status;
        } else {
            status = r->has_producer && !p->duplicate && !r->close_only ? 200 : 204;
        }
        respond(c, r->sid, status, &h, NULL, 0);
        break;
    case SL_EENDED:
        hdr_s(&h, "stream-closed", "true");
        hdr_offset(&h, "stream-next-offset", p->last_seq ? p->last_seq : tail);
        if (r->close_only) {
            respond(c, r->sid, 204, &h, NULL, 0);
        } else {
            count_status(c, 409);
            sl_http_respond_error(c->http, r->sid, 409, "closed", "stream is closed", h.h, h.n);
        }
        break;
    case SL_EFENCED:
        hdr_u64(&h, "producer-epoch", p->producer_epoch);
        count_status(c, 403);
        sl_http_respond_error(c->http, r->sid, 403, "fenced", "stale producer epoch", h.h, h.n);
        break;
    case SL_EGAP:
        hdr_u64(&h, "producer-expected-seq", p->producer_seq);
        hdr_u64(&h, "producer-received-seq", r->producer_seq);
        count_status(c, 409);
        sl_http_respond_error(c->http, r->sid, 409, "producer_gap", "producer seq gap", h.h, h.n);
        break;
    case SL_EINVAL:
        count_status(c, 400);
        sl_http_respond_error(c->http, r->sid, 400, "bad_request",
                              "a new producer epoch starts at seq 0", h.h, h.n);
        break;
    case SL_ECONFLICT:
        count_status(c, 409);
        sl_http_respond_error(c->http, r->sid, 409, "conflict", "Stream-Seq regression", h.h,
                              h.n);
        break;
    default:
        publish_failed(c, r, p->status == SL_ENOTFOUND ? SL_ENOTFOUND : SL_EAGAIN);
        break;
    }
    free(p);
    r->finished = true;
    req_maybe_free(c, r);
}

/* Sends the publish of a new request record for e (reference taken). */
static void start_write(sl_conn_t *c, uint32_t sid, sl_entry_t *e, sl_pub_t *p, int put_status)
{
    ds_req_t *r = req_new(c, sid, DS_WRITE, e);
    if (!r) {
        free(p);
        sl_entry_release(e);
        fail(c, sid, 503, "overloaded", "out of memory");
        return;
    }
    r->put_status = put_status;
    r->close_only = p->nevents == 0;
    r->has_producer = p->has_producer;
    r->producer_epoch = p->producer_epoch;
    r->producer_seq = p->producer_seq;
    r->pub = p;
    int rc = send_pub(c, r);
    if (rc != 0) {
        publish_failed(c, r, rc);
        req_maybe_free(c, r);
    }
}

static bool ctype_matches(const sl_entry_t *e, const sl_http_req_t *req)
{
    if (!req->content_type.ptr)
        return false;
    char norm[SL_CONTENT_TYPE_MAX + 1];
    size_t n = norm_ctype(req->content_type.ptr, req->content_type.len, norm, sizeof norm);
    const char *ct;
    size_t ctn;
    entry_ctype(e, &ct, &ctn);
    size_t a = media_len(norm, n), b = media_len(ct, ctn);
    return a == b && memcmp(norm, ct, a) == 0;
}

static void handle_post(sl_conn_t *c, const sl_http_req_t *req, sl_entry_t *e)
{
    uint32_t sid = req->stream_id;
    bool close = closed_header(req);
    if (req->body_len == 0 && !close) {
        sl_entry_release(e);
        return fail(c, sid, 400, "bad_request", "empty append");
    }
    uint64_t last = 0;
    bool has_prod = req_hdr(req, "producer-id") != NULL;
    if (req->body_len > 0 && entry_closed(e, &last) && !has_prod) {
        hdrs_t h;
        hdr_common(&h);
        hdr_s(&h, "stream-closed", "true");
        hdr_offset(&h, "stream-next-offset", last);
        sl_entry_release(e);
        count_status(c, 409);
        sl_http_respond_error(c->http, sid, 409, "closed", "stream is closed", h.h, h.n);
        return;
    }
    if (req->body_len > 0 && !req->content_type.ptr) {
        sl_entry_release(e);
        return fail(c, sid, 400, "bad_request", "Content-Type is required");
    }
    if (req->body_len > 0 && !ctype_matches(e, req)) {
        sl_entry_release(e);
        return fail(c, sid, 409, "conflict", "Content-Type does not match the stream's");
    }
    const char *ct;
    size_t ctn;
    entry_ctype(e, &ct, &ctn);
    int status;
    const char *msg = NULL;
    sl_pub_t *p = build_pub(c, req->body, req->body_len, ctype_json(ct, ctn), false, NULL, 0,
                             &status, &msg);
    if (!p) {
        sl_entry_release(e);
        return fail(c, sid, status, status == 400 ? "bad_request" : "too_large", msg);
    }
    const sl_http_header_t *seq = req_hdr(req, "stream-seq");
    if (parse_producer(req, p) < 0 || (seq && (seq->value_len == 0 || seq->value_len > SL_STREAM_SEQ_MAX))) {
        free(p);
        sl_entry_release(e);
        return fail(c, sid, 400, "bad_request", "malformed producer or Stream-Seq headers");
    }
    if (seq) {
        p->stream_seq_len = (uint8_t)seq->value_len;
        memcpy(p->stream_seq, seq->value, seq->value_len);
    }
    p->close = close;
    sl_sessops_touch(e);
    start_write(c, sid, e, p, 0);
}

/* ---- create, metadata, delete ---- */

/* The parent of fork e (a new reference), or NULL when it is gone. */
static sl_entry_t *parent_of(sl_conn_t *c, const sl_entry_t *e)
{
    if (!e->attrs.parent_len)
        return NULL;
    sl_entry_t *p = sl_registry_get(c->srv->registry, e->attrs.parent, e->attrs.parent_len);
    if (p && p->epoch != e->attrs.parent_epoch) {
        sl_entry_release(p);
        p = NULL;
    }
    return p;
}

/* Fork headers of a PUT into a (the parent must exist, not soft-deleted).
 * Returns 0, or an HTTP status with *msg. */
static int fork_attrs(sl_conn_t *c, const sl_http_req_t *req, const sl_http_header_t *from,
                      sl_session_attrs_t *a, bool ctype_given, uint64_t *bin_k, const char **msg)
{
    char pid[SL_SESSION_ID_MAX * 3 + 1];
    size_t pn = stream_name(c, from->value, from->value_len, pid, sizeof pid);
    if (!pn) /* a bare name is accepted too */
        pn = from->value_len <= SL_SESSION_ID_MAX && sl_session_id_valid(from->value, from->value_len)
                 ? (memcpy(pid, from->value, from->value_len), from->value_len)
                 : 0;
    if (!pn)
        return *msg = "no such source stream", 404;
    sl_entry_t *p = sl_sessops_lookup(c->srv, pid, pn);
    if (!p)
        return *msg = "no such source stream", 404;
    if (soft_deleted(p)) {
        sl_entry_release(p);
        return *msg = "the source stream was deleted", 409;
    }
    uint64_t tail = tail_seq(p), fork_seq = tail;
    int status = 0;
    const sl_http_header_t *off = req_hdr(req, "stream-fork-offset");
    const sl_http_header_t *sub = req_hdr(req, "stream-fork-sub-offset");
    uint64_t k = 0;
    if (off && parse_offset(off->value, off->value_len, &fork_seq) != 0)
        status = 400, *msg = "malformed Stream-Fork-Offset";
    else if (sub && !parse_dec(sub->value, sub->value_len, UINT32_MAX, &k))
        status = 400, *msg = "malformed Stream-Fork-Sub-Offset";
    else if (fork_seq > tail)
        status = 400, *msg = "Stream-Fork-Offset beyond the source's tail";
    const char *pct;
    size_t pctn;
    entry_ctype(p, &pct, &pctn);
    if (!status && k) {
        /* JSON: k more messages (each is one event). Bytes: only whole
         * appends can be inherited. */
        if (fork_seq + (ctype_json(pct, pctn) ? k : 1) > tail)
            status = 400, *msg = "Stream-Fork-Sub-Offset beyond the next message boundary";
        else if (ctype_json(pct, pctn))
            fork_seq += k;
        else
            *bin_k = k; /* part of the next append: copied into the fork */
    }
    if (!status && ctype_given &&
        (media_len(a->content_type, a->content_type_len) != media_len(pct, pctn) ||
         memcmp(a->content_type, pct, media_len(pct, pctn)) != 0))
        status = 409, *msg = "Content-Type differs from the source's";
    if (!status) {
        if (!ctype_given) {
            memcpy(a->content_type, pct, pctn);
            a->content_type_len = (uint8_t)pctn;
        }
        if (!a->ttl_ns && !a->expires_at_ns) {
            a->ttl_ns = p->attrs.ttl_ns;
            a->expires_at_ns = p->attrs.expires_at_ns;
        }
        memcpy(a->parent, pid, pn);
        a->parent_len = (uint8_t)pn;
        a->fork_seq = fork_seq;
        /* Fork chains are walked by reads: bounded depth. */
        int depth = 0;
        sl_entry_t *q = p;
        sl_entry_retain(q);
        while (q && q->attrs.parent_len && depth < DS_FORK_DEPTH_MAX) {
            sl_entry_t *up = parent_of(c, q);
            sl_entry_release(q);
            q = up;
            depth++;
        }
        if (q)
            sl_entry_release(q);
        if (depth >= DS_FORK_DEPTH_MAX)
            status = 400, *msg = "fork chain too deep";
    }
    sl_entry_release(p);
    return status;
}

static void read_step(sl_conn_t *c, ds_req_t *r);

/* A binary sub-offset fork: the first k bytes of the source's append after
 * the fork offset become the fork's own first message, so the prefix is
 * read before the fork is made (a copy of at most one append). */
static void start_fork_prefix(sl_conn_t *c, const sl_http_req_t *req, const char *id,
                              size_t id_len, const sl_session_attrs_t *a, uint64_t k, bool close)
{
    uint32_t sid = req->stream_id;
    sl_entry_t *p = sl_sessops_lookup(c->srv, a->parent, a->parent_len);
    if (!p)
        return fail(c, sid, 404, "not_found", "no such source stream");
    ds_req_t *r = req_new(c, sid, DS_FORK, p);
    if (!r || !(r->fork_attrs = malloc(sizeof *a)) ||
        (req->body_len && !(r->body = malloc(req->body_len)))) {
        if (r) {
            r->finished = true;
            req_maybe_free(c, r);
        } else {
            sl_entry_release(p);
        }
        return fail(c, sid, 503, "overloaded", "out of memory");
    }
    *r->fork_attrs = *a;
    r->fork_k = k;
    r->fork_close = close;
    memcpy(r->fork_id, id, id_len);
    r->fork_id_len = (uint32_t)id_len;
    if (req->body_len)
        memcpy(r->body, req->body, req->body_len);
    r->body_len = req->body_len;
    r->next_seq = r->start_seq = a->fork_seq + 1;
    read_step(c, r);
}

static void start_write(sl_conn_t *c, uint32_t sid, sl_entry_t *e, sl_pub_t *p, int put_status);

/* The prefix arrived (chunk: the raw records from fork_seq + 1). */
static void fork_prefix_done(sl_conn_t *c, ds_req_t *r, const sl_chunk_t *chunk)
{
    sl_raw_event_t h = {0};
    const uint8_t *data = NULL;
    r->finished = true;
    if (chunk && chunk->len >= SL_RAW_EVENT_BYTES) {
        memcpy(&h, chunk->data, SL_RAW_EVENT_BYTES);
        data = chunk->data + SL_RAW_EVENT_BYTES + h.type_len;
    }
    if (!data || h.seq != r->fork_attrs->fork_seq + 1 || r->fork_k > h.data_len)
        return fail(c, r->sid, 400, "bad_request",
                    "Stream-Fork-Sub-Offset beyond the next message boundary");
    const char *ct;
    size_t ctn;
    entry_ctype(r->e, &ct, &ctn);
    int status;
    const char *msg = NULL;
    sl_pub_t *p = build_pub(c, r->body, r->body_len, ctype_json(ct, ctn), true, data, r->fork_k,
                            &status, &msg);
    if (!p)
        return fail(c, r->sid, status, status == 400 ? "bad_request" : "too_large", msg);
    sl_entry_t *e;
    bool created;
    int rc = sl_sessops_create(c->srv, r->fork_id, r->fork_id_len, r->fork_attrs, &e, &created);
    if (rc != 0 || !created) {
        free(p);
        if (rc == 0)
            sl_entry_release(e);
        if (rc == SL_ENOTFOUND)
            return fail(c, r->sid, 404, "not_found", "no such source stream");
        if (rc == 0 || rc == SL_ECONFLICT) /* made meanwhile: let the client ask again */
            return fail(c, r->sid, 409, "conflict", "stream exists with another configuration");
        return fail(c, r->sid, 503, "overloaded", "too many streams");
    }
    p->close = r->fork_close;
    start_write(c, r->sid, e, p, 201);
}

/* The create-time attributes a PUT asks for (content type, TTL or expiry,
 * fork); *bin_k > 0 for a binary sub-offset fork. Returns 0, or an HTTP
 * status with *msg. */
static int put_attrs(sl_conn_t *c, const sl_http_req_t *req, sl_session_attrs_t *a,
                     uint64_t *bin_k, const char **msg)
{
    memset(a, 0, sizeof *a);
    bool ctype_given = req->content_type.ptr && req->content_type.len > 0;
    if (ctype_given) {
        if (req->content_type.len > SL_CONTENT_TYPE_MAX)
            return *msg = "Content-Type too long", 400;
        a->content_type_len = (uint8_t)norm_ctype(req->content_type.ptr, req->content_type.len,
                                                  a->content_type, sizeof a->content_type);
    } else {
        memcpy(a->content_type, "application/octet-stream", 24);
        a->content_type_len = 24;
    }
    const sl_http_header_t *ttl = req_hdr(req, "stream-ttl");
    const sl_http_header_t *exp = req_hdr(req, "stream-expires-at");
    uint64_t v;
    if (ttl && exp)
        return *msg = "Stream-TTL and Stream-Expires-At together", 400;
    if (ttl) {
        if (!parse_dec(ttl->value, ttl->value_len, UINT64_MAX / SL_NS_PER_S, &v) || v == 0)
            return *msg = "malformed Stream-TTL", 400;
        a->ttl_ns = v * SL_NS_PER_S;
    }
    if (exp) {
        if (!parse_rfc3339(exp->value, exp->value_len, &v))
            return *msg = "malformed Stream-Expires-At", 400;
        a->expires_at_ns = v ? v : 1;
    }
    const sl_http_header_t *from = req_hdr(req, "stream-forked-from");
    *bin_k = 0;
    if (!from && (req_hdr(req, "stream-fork-offset") || req_hdr(req, "stream-fork-sub-offset")))
        return *msg = "fork headers without Stream-Forked-From", 400;
    if (from) {
        int st = fork_attrs(c, req, from, a, ctype_given, bin_k, msg);
        if (st)
            return st;
    }
    if (*bin_k) {
        size_t room = sizeof a->content_type - a->content_type_len;
        int n = snprintf(a->content_type + a->content_type_len, room, DS_SUB_PARAM "%" PRIu64,
                         *bin_k);
        if (n <= 0 || (size_t)n >= room)
            return *msg = "Content-Type too long", 400;
        a->content_type_len = (uint8_t)(a->content_type_len + n);
    }
    return 0;
}

/* The headers that describe a stream (create answers, HEAD): content
 * type, next offset, closure, expiry. */
static void stream_headers(hdrs_t *h, sl_entry_t *e)
{
    hdr_common(h);
    const char *ct;
    size_t ctn;
    entry_ctype(e, &ct, &ctn);
    hdr(h, "content-type", ct, ctn);
    uint64_t last = tail_seq(e);
    bool closed = entry_closed(e, &last);
    hdr_offset(h, "stream-next-offset", closed ? last : tail_seq(e));
    if (closed)
        hdr_s(h, "stream-closed", "true");
    hdr_expiry(h, e);
}

/* 201 / 200 for a create that appends nothing: the stream's headers
 * (and Location when created). Takes e. */
static void respond_stream(sl_conn_t *c, const sl_http_req_t *req, sl_entry_t *e, bool created)
{
    hdrs_t h;
    stream_headers(&h, e);
    char loc[SL_SESSION_ID_MAX * 3 + 320];
    if (created && req->host.ptr) {
        int n = snprintf(loc, sizeof loc, "%.*s://%.*s%.*s", (int)req->scheme.len, req->scheme.ptr,
                         (int)req->host.len, req->host.ptr, (int)req->path.len, req->path.ptr);
        if (n > 0 && (size_t)n < sizeof loc)
            hdr(&h, "location", loc, (size_t)n);
    }
    sl_entry_release(e);
    respond(c, req->stream_id, created ? 201 : 200, &h, NULL, 0);
}

static void handle_put(sl_conn_t *c, const sl_http_req_t *req, const char *id, size_t id_len)
{
    uint32_t sid = req->stream_id;
    sl_session_attrs_t a;
    uint64_t bin_k;
    const char *msg = "";
    int st = put_attrs(c, req, &a, &bin_k, &msg);
    if (st)
        return fail(c, sid, st, st == 404 ? "not_found" : st == 409 ? "conflict" : "bad_request",
                    msg);
    bool close = closed_header(req);
    sl_entry_t *old = sl_registry_get(c->srv->registry, id, id_len);
    if (old) {
        bool soft = soft_deleted(old);
        sl_entry_release(old);
        if (soft)
            return fail(c, sid, 409, "conflict", "stream was deleted while forks read it");
    }
    sl_entry_t *e = NULL;
    bool created = false;
    int rc = 0;
    if (bin_k && !(e = sl_sessops_lookup(c->srv, id, id_len)))
        return start_fork_prefix(c, req, id, id_len, &a, bin_k, close);
    if (e && !sl_sessops_attrs_match(e, &a)) {
        sl_entry_release(e);
        rc = SL_ECONFLICT;
    } else if (!e) {
        rc = sl_sessops_create(c->srv, id, id_len, &a, &e, &created);
    }
    if (rc == SL_ECONFLICT)
        return fail(c, sid, 409, "conflict", "stream exists with another configuration");
    if (rc == SL_ENOTFOUND)
        return fail(c, sid, 404, "not_found", "no such source stream");
    if (rc != 0)
        return fail(c, sid, 503, "overloaded", "too many streams");
    if (created && (req->body_len > 0 || close)) {
        const char *ct;
        size_t ctn;
        entry_ctype(e, &ct, &ctn);
        sl_pub_t *p = build_pub(c, req->body, req->body_len, ctype_json(ct, ctn), true, NULL, 0,
                                &st, &msg);
        if (!p) {
            sl_sessops_delete(c->srv, id, id_len);
            sl_entry_release(e);
            return fail(c, sid, st, st == 400 ? "bad_request" : "too_large", msg);
        }
        p->close = close;
        return start_write(c, sid, e, p, 201);
    }
    if (!created && entry_closed(e, NULL) != close) {
        sl_entry_release(e);
        return fail(c, sid, 409, "conflict", "stream exists with another closed state");
    }
    respond_stream(c, req, e, created);
}

static void handle_head(sl_conn_t *c, const sl_http_req_t *req, sl_entry_t *e)
{
    hdrs_t h;
    stream_headers(&h, e);
    hdr_s(&h, "cache-control", "no-store");
    sl_entry_release(e);
    respond(c, req->stream_id, 200, &h, NULL, 0);
}

void sl_ds_recount_forks(sl_server_t *srv)
{
    sl_entry_t *page[128];
    char after[SL_SESSION_ID_MAX + 1];
    size_t after_len = 0;
    bool more = true;
    while (more) {
        uint32_t got = sl_registry_list(srv->registry, after_len ? after : NULL, after_len,
                                        SL_ARRAY_LEN(page), page, &more);
        for (uint32_t i = 0; i < got; i++) {
            sl_entry_t *e = page[i];
            sl_entry_t *p = e->attrs.parent_len
                                ? sl_registry_get(srv->registry, e->attrs.parent, e->attrs.parent_len)
                                : NULL;
            if (p && p->epoch == e->attrs.parent_epoch)
                atomic_fetch_add(&p->forks, 1);
            if (p)
                sl_entry_release(p);
            if (i + 1 == got) {
                memcpy(after, e->id, e->id_len);
                after_len = e->id_len;
            }
            sl_entry_release(e);
        }
        if (got == 0)
            break;
    }
}

void sl_ds_session_removed(sl_server_t *srv, sl_entry_t *e)
{
    if (!e->attrs.parent_len)
        return;
    sl_entry_t *p = sl_registry_get(srv->registry, e->attrs.parent, e->attrs.parent_len);
    if (p && p->epoch == e->attrs.parent_epoch) {
        uint32_t n = atomic_load(&p->forks);
        while (n > 0 && !atomic_compare_exchange_weak(&p->forks, &n, n - 1)) {
        }
        if (n <= 1 && soft_take(p)) {
            /* The last reader of a soft-deleted stream: it goes for good
             * (which repeats this for its own parent, up the chain). */
            sl_entry_release(p); /* the table's reference */
            sl_sessops_delete(srv, p->id, p->id_len);
        }
    }
    if (p)
        sl_entry_release(p);
}

static void handle_delete(sl_conn_t *c, const sl_http_req_t *req, sl_entry_t *e)
{
    uint32_t sid = req->stream_id;
    hdrs_t h;
    hdr_common(&h);
    if (atomic_load(&e->forks) > 0) {
        /* Forks still read its log: keep the session, hide the stream. */
        bool ok = soft_add(e);
        sl_entry_release(e);
        if (!ok)
            return fail(c, sid, 503, "overloaded", "too many soft-deleted streams");
        return respond(c, sid, 204, &h, NULL, 0);
    }
    sl_sessops_delete(c->srv, e->id, e->id_len); /* its parent: sl_ds_session_removed */
    sl_entry_release(e);
    respond(c, sid, 204, &h, NULL, 0);
}

/* ---- reads ---- */

static void read_step(sl_conn_t *c, ds_req_t *r);

/* The entry that holds seq r->next_seq (a new reference; a fork's parent
 * for seqs up to its fork_seq), and the last seq to read there (0: no
 * limit). NULL when a parent is gone. */
static sl_entry_t *source_for(sl_conn_t *c, const ds_req_t *r, uint64_t *limit)
{
    sl_entry_t *src = r->e;
    sl_entry_retain(src);
    *limit = 0;
    for (int d = 0; d < DS_FORK_DEPTH_MAX && src->attrs.parent_len &&
                    r->next_seq <= src->attrs.fork_seq;
         d++) {
        if (*limit == 0 || src->attrs.fork_seq < *limit)
            *limit = src->attrs.fork_seq;
        sl_entry_t *p = parent_of(c, src);
        sl_entry_release(src);
        if (!p)
            return NULL;
        src = p;
    }
    return src;
}

static bool closed_at(const ds_req_t *r, uint64_t *last)
{
    return entry_closed(r->e, last) && r->next_seq > *last;
}

static bool body_reserve(ds_req_t *r, size_t more)
{
    if (r->body_len + more <= r->body_cap)
        return true;
    size_t cap = r->body_cap ? r->body_cap : 4096;
    while (cap < r->body_len + more)
        cap *= 2;
    uint8_t *b = realloc(r->body, cap);
    if (!b)
        return false;
    r->body = b;
    r->body_cap = cap;
    return true;
}

static bool body_put(ds_req_t *r, const void *p, size_t n)
{
    if (!body_reserve(r, n))
        return false;
    if (n)
        memcpy(r->body + r->body_len, p, n);
    r->body_len += n;
    return true;
}

/* Sluice's own notices ("sluice.*" types) are no stream data. */
static bool is_data_record(const sl_raw_event_t *h, const uint8_t *type)
{
    return !(h->type_len >= 7 && memcmp(type, "sluice.", 7) == 0);
}

/* Appends the data records of a raw chunk to r->body: bytes as they are,
 * JSON messages comma-separated (the brackets are added at the end).
 * Returns false out of memory. */
static bool absorb_body(ds_req_t *r, const sl_chunk_t *chunk)
{
    for (uint32_t o = 0; chunk && o + SL_RAW_EVENT_BYTES <= chunk->len;) {
        sl_raw_event_t h;
        memcpy(&h, chunk->data + o, SL_RAW_EVENT_BYTES);
        const uint8_t *type = chunk->data + o + SL_RAW_EVENT_BYTES;
        const uint8_t *data = type + h.type_len;
        o += SL_RAW_EVENT_BYTES + h.type_len + h.data_len;
        if (!is_data_record(&h, type))
            continue;
        if (r->json && r->body_events > 0 && !body_put(r, ",", 1))
            return false;
        if (!body_put(r, data, h.data_len))
            return false;
        r->body_events++;
    }
    return true;
}

static void etag_fmt(char *out, size_t cap, const ds_req_t *r, bool closed)
{
    snprintf(out, cap, "\"%" PRIu64 ":%" PRIu64 ":%" PRIu64 "%s\"", r->e->epoch,
             r->start_seq ? r->start_seq - 1 : 0, r->next_seq - 1, closed ? ":c" : "");
}

/* Answers a catch-up or long-poll read with what r->body holds. */
static void respond_read(sl_conn_t *c, ds_req_t *r, int status)
{
    hdrs_t h;
    hdr_common(&h);
    const char *ct;
    size_t ctn;
    entry_ctype(r->e, &ct, &ctn);
    uint64_t last = 0;
    bool closed = closed_at(r, &last);
    if (closed)
        r->up_to_date = true;
    hdr_offset(&h, "stream-next-offset", r->next_seq - 1);
    if (r->up_to_date)
        hdr_s(&h, "stream-up-to-date", "true");
    if (closed)
        hdr_s(&h, "stream-closed", "true");
    if (r->kind == DS_POLL)
        hdr_u64(&h, "stream-cursor", cursor_next(r));
    char etag[96];
    if (status == 200) {
        hdr(&h, "content-type", ct, ctn);
        etag_fmt(etag, sizeof etag, r, closed);
        hdr_s(&h, "etag", etag);
        hdr_s(&h, "cache-control", ds_cache_public);
        if (r->inm_len && r->inm_len == strlen(etag) && memcmp(r->inm, etag, r->inm_len) == 0)
            status = 304;
    } else {
        hdr_s(&h, "cache-control", "no-store");
    }
    if (status == 200 && r->json) {
        if (!body_reserve(r, 2)) {
            fail(c, r->sid, 503, "overloaded", "out of memory");
            r->finished = true;
            return;
        }
        memmove(r->body + 1, r->body, r->body_len);
        r->body[0] = '[';
        r->body[r->body_len + 1] = ']';
        r->body_len += 2;
    }
    respond(c, r->sid, status, &h, status == 200 ? r->body : NULL, status == 200 ? r->body_len : 0);
    r->finished = true;
}

/* ---- SSE framing ---- */

/* Writes what waits for room; true when nothing waits any more (then a
 * pending end is done too). */
static bool sse_flush(sl_conn_t *c, ds_req_t *r)
{
    if (r->pend) {
        if (sl_http_stream_write_copy(c->http, r->sid, r->pend, r->pend_len) == SL_EFULL)
            return false;
        free(r->pend);
        r->pend = NULL;
        r->pend_len = 0;
    }
    if (r->end_pending) {
        r->end_pending = false;
        sl_http_stream_end(c->http, r->sid);
    }
    return true;
}

/* Queues out (owned, n bytes) on the SSE stream, or keeps it until the
 * stream has room: a slow reader is slowed, never skipped. Returns false
 * out of memory. */
static bool sse_write(sl_conn_t *c, ds_req_t *r, char *out, size_t n)
{
    if (!r->pend && sl_http_stream_write_copy(c->http, r->sid, out, n) != SL_EFULL) {
        free(out);
        return true;
    }
    if (!r->pend) {
        r->pend = out;
        r->pend_len = n;
        return true;
    }
    char *m = realloc(r->pend, r->pend_len + n);
    if (!m) {
        free(out);
        return false;
    }
    memcpy(m + r->pend_len, out, n);
    r->pend = m;
    r->pend_len += n;
    free(out);
    return true;
}

/* Queues text as one SSE event of the given name, one data: line per
 * line of text. Returns false out of memory. */
static bool sse_event(sl_conn_t *c, ds_req_t *r, const char *name, const char *text, size_t n,
                      const char *id)
{
    size_t lines = 1;
    for (size_t i = 0; i < n; i++)
        lines += text[i] == '\n' || text[i] == '\r';
    size_t cap = strlen(name) + 16 + n + lines * 8 + (id ? strlen(id) + 6 : 0);
    char *out = malloc(cap);
    if (!out)
        return false;
    size_t o = (size_t)snprintf(out, cap, "event: %s\n", name);
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && text[i] != '\n' && text[i] != '\r')
            continue;
        /* "data:" then the line; a line that starts with a space gets one
         * more (a reader strips exactly one after the colon). */
        memcpy(out + o, "data:", 5);
        o += 5;
        if (i > start && text[start] == ' ')
            out[o++] = ' ';
        memcpy(out + o, text + start, i - start);
        o += i - start;
        out[o++] = '\n';
        if (i < n && text[i] == '\r' && i + 1 < n && text[i + 1] == '\n')
            i++;
        start = i + 1;
    }
    if (id)
        o += (size_t)snprintf(out + o, cap - o, "id: %s\n", id);
    out[o++] = '\n';
    return sse_write(c, r, out, o);
}

/* The data event of a chunk (none when it holds no data record). */
static bool sse_data(sl_conn_t *c, ds_req_t *r, const sl_chunk_t *chunk)
{
    r->body_len = 0;
    r->body_events = 0;
    if (!absorb_body(r, chunk))
        return false;
    if (r->body_events == 0)
        return true;
    if (r->json) {
        if (!body_reserve(r, 2))
            return false;
        memmove(r->body + 1, r->body, r->body_len);
        r->body[0] = '[';
        r->body[r->body_len + 1] = ']';
        r->body_len += 2;
    }
    bool ok;
    if (r->b64) {
        char *t = malloc(sl_ds_b64_len(r->body_len) + 1);
        if (!t)
            return false;
        size_t n = sl_ds_b64_encode(r->body, r->body_len, t);
        ok = sse_event(c, r, "data", t, n, NULL);
        free(t);
    } else {
        ok = sse_event(c, r, "data", (const char *)r->body, r->body_len, NULL);
    }
    atomic_fetch_add_explicit(&c->srv->counters.events_delivered, r->body_events,
                              memory_order_relaxed);
    r->body_len = 0;
    return ok;
}

/* The control event after data (and the first one): offset, cursor,
 * up-to-date, closed; its id: line lets an EventSource resume by itself.
 * Returns true when the stream is closed and ended here. */
static bool sse_control(sl_conn_t *c, ds_req_t *r)
{
    uint64_t last = 0;
    bool closed = closed_at(r, &last);
    char off[DS_OFFSET_LEN + 1], js[192];
    offset_fmt(off, r->next_seq - 1);
    int n;
    if (closed)
        n = snprintf(js, sizeof js, "{\"streamNextOffset\":\"%s\",\"upToDate\":true,\"streamClosed\":true}", off);
    else
        n = snprintf(js, sizeof js, "{\"streamNextOffset\":\"%s\",\"streamCursor\":\"%" PRIu64 "\"%s}",
                     off, cursor_next(r), r->up_to_date ? ",\"upToDate\":true" : "");
    sse_event(c, r, "control", js, (size_t)n, off);
    if (closed) {
        r->end_pending = true; /* after what still waits for room */
        sse_flush(c, r);
        r->finished = true;
    }
    return closed;
}

static void sse_begin(sl_conn_t *c, ds_req_t *r)
{
    hdrs_t h;
    hdr_common(&h);
    hdr_s(&h, "content-type", "text/event-stream");
    hdr_s(&h, "cache-control", "no-cache");
    hdr_s(&h, "x-accel-buffering", "no");
    if (r->b64)
        hdr_s(&h, "stream-sse-data-encoding", "base64");
    count_status(c, 200);
    if (sl_http_stream_begin(c->http, r->sid, 200, h.h, h.n) != 0) {
        r->dead = true;
        return;
    }
    r->sse_begun = true;
    r->close_check_ns = sl_clock_now_ns();
    atomic_fetch_add_explicit(&c->srv->counters.streams_open, 1, memory_order_relaxed);
}

/* ---- wake-ups ---- */

static void sub_leave(ds_req_t *r)
{
    if (r->sub_state == SUB_AWAY) {
        r->unsub_wanted = true;
    } else if (r->sub_state == SUB_ACTIVE) {
        r->sub_state = SUB_LEAVING;
        r->sub.h.kind = SL_SESSION_MSG_UNSUBSCRIBE;
        r->sub.h.mclass = SL_MSG_CONTROL;
        int rc = sl_actor_send(r->sub_actor, &r->sub.h);
        sl_assert(rc == 0);
    }
}

static int sub_start(sl_conn_t *c, ds_req_t *r)
{
    sl_actor_t *a = sl_session_acquire(c->srv, r->e);
    if (!a)
        return sl_session_unavailable(r->e);
    r->sub_actor = a;
    r->sub.conn = &c->a;
    sl_actor_retain(&c->a); /* released with the UNSUBSCRIBED (or refusal) */
    r->sub.stream_id = r->sid;
    r->sub.from_seq = 0; /* wake-ups only: the data comes from the log */
    r->sub.rpc = false;
    r->sub.h.kind = SL_SESSION_MSG_SUBSCRIBE;
    r->sub.h.mclass = SL_MSG_CONTROL;
    r->sub_state = SUB_AWAY;
    int rc = sl_actor_send(a, &r->sub.h);
    sl_assert(rc == 0);
    return 0;
}

/* Ends a live read whose stream was deleted. */
static void live_gone(sl_conn_t *c, ds_req_t *r)
{
    if (r->finished || r->dead)
        return;
    if (r->kind == DS_SSE)
        sl_http_stream_end(c->http, r->sid);
    else
        fail(c, r->sid, 404, "not_found", "stream deleted");
    r->finished = true;
}

/* A waiting live read: new data visible, the stream closed or deleted. */
static void live_check(sl_conn_t *c, ds_req_t *r)
{
    if (!r->waiting || r->finished || r->dead || r->cu_out)
        return;
    uint64_t last;
    if (r->sub_state == SUB_ACTIVE && atomic_load_explicit(&r->sub.ended, memory_order_acquire) &&
        !entry_closed(r->e, &last)) {
        r->waiting = false;
        live_gone(c, r);
        sub_leave(r);
        return;
    }
    bool fresh = r->sub_state == SUB_ACTIVE && sl_ring_visible_seq(r->sub.ring) >= r->next_seq;
    if (!fresh && !closed_at(r, &last))
        return;
    r->waiting = false;
    read_step(c, r);
}

static void on_subscribed(sl_conn_t *c, ds_req_t *r)
{
    if (r->sub.status == SL_ECLOSED && r->resubs < DS_RETRIES_MAX && !r->dead && !r->finished &&
        !r->unsub_wanted) {
        sl_actor_t *a = sl_session_acquire(c->srv, r->e);
        if (a) {
            r->resubs++;
            sl_actor_release(r->sub_actor);
            r->sub_actor = a;
            r->sub.h.kind = SL_SESSION_MSG_SUBSCRIBE;
            r->sub.h.mclass = SL_MSG_CONTROL;
            int rc = sl_actor_send(a, &r->sub.h);
            sl_assert(rc == 0);
            return;
        }
    }
    if (r->sub.status != 0) {
        r->sub_state = SUB_NONE;
        sl_actor_release(r->sub_actor);
        r->sub_actor = NULL;
        if (r->sub.status == SL_ENOTFOUND)
            live_gone(c, r);
        else if (!r->finished && !r->dead) {
            if (r->kind == DS_SSE)
                sl_http_stream_end(c->http, r->sid); /* the client resumes from its offset */
            else
                fail(c, r->sid, 503, "overloaded", "stream busy; retry");
            r->finished = true;
        }
        sl_actor_release(&c->a);
        return;
    }
    r->sub_state = SUB_ACTIVE;
    if (r->unsub_wanted || r->finished || r->dead) {
        sub_leave(r);
        return;
    }
    live_check(c, r);
}

static void on_unsubscribed(sl_conn_t *c, ds_req_t *r)
{
    r->sub_state = SUB_NONE;
    sl_actor_release(r->sub_actor);
    r->sub_actor = NULL;
    sl_actor_release(&c->a);
}

/* ---- the read loop ---- */

static void read_failed(sl_conn_t *c, ds_req_t *r, int status)
{
    if (r->finished || r->dead)
        return;
    if (r->kind == DS_SSE && r->sse_begun)
        sl_http_stream_end(c->http, r->sid); /* the client resumes from its last offset */
    else if (status == 404)
        fail(c, r->sid, 404, "not_found", "stream deleted");
    else
        fail(c, r->sid, 503, "overloaded", "stream busy; retry");
    r->finished = true;
}

/* Asks the session that holds r->next_seq for the records from there. */
static void read_step(sl_conn_t *c, ds_req_t *r)
{
    uint64_t limit;
    sl_entry_t *src = source_for(c, r, &limit);
    sl_actor_t *a = src ? sl_session_acquire(c->srv, src) : NULL;
    int why = a || !src ? SL_ENOTFOUND : sl_session_unavailable(src);
    r->cu_ancestor = src && src != r->e;
    if (src)
        sl_entry_release(src);
    if (!a) {
        read_failed(c, r, why == SL_ENOTFOUND ? 404 : 503);
        return;
    }
    uint32_t max = DS_READ_BYTES_MAX;
    if (r->kind == DS_SSE) {
        size_t room = sl_http_stream_room(c->http, r->sid);
        size_t fit = room / 4 * 3; /* base64 grows data by 4/3 */
        max = fit < max ? (uint32_t)fit : max;
    } else {
        max = r->body_len < max ? (uint32_t)(max - r->body_len) : 0;
    }
    if (max < DS_SSE_ROOM_MIN)
        max = DS_SSE_ROOM_MIN;
    sl_catchup_t *cu = &r->cu;
    cu->h.kind = SL_SESSION_MSG_CATCHUP;
    cu->h.mclass = SL_MSG_CONTROL; /* the record's one outstanding request */
    cu->conn = &c->a;
    cu->from_seq = r->next_seq;
    cu->max_bytes = max;
    cu->rpc = false;
    cu->raw = true;
    cu->raw_limit = limit;
    cu->chunk = NULL;
    r->cu_out = true;
    r->cu_actor = a;
    sl_actor_retain(&c->a); /* released when the answer is handled */
    int rc = sl_actor_send(a, &cu->h);
    sl_assert(rc == 0);
}

/* What a read does once an answer was taken in. */
static void after_read(sl_conn_t *c, ds_req_t *r, bool more)
{
    uint64_t last;
    bool full = r->body_len >= DS_READ_BYTES_MAX;
    switch (r->kind) {
    case DS_READ:
        if (more && !full)
            read_step(c, r);
        else
            respond_read(c, r, 200);
        return;
    case DS_POLL:
        if (more && !full) {
            read_step(c, r);
        } else if (r->body_events > 0 || full) {
            respond_read(c, r, 200);
            sub_leave(r);
        } else if (closed_at(r, &last)) {
            respond_read(c, r, 204);
            sub_leave(r);
        } else {
            r->waiting = true;
            live_check(c, r);
        }
        return;
    case DS_SSE:
        if (sse_control(c, r)) {
            sub_leave(r);
            return;
        }
        if (more) {
            if (!r->pend && sl_http_stream_room(c->http, r->sid) >= DS_SSE_ROOM_MIN)
                read_step(c, r); /* else the pump goes on once room is back */
        } else {
            r->waiting = true;
            live_check(c, r);
        }
        return;
    }
}

static void on_caught_up(sl_conn_t *c, ds_req_t *r)
{
    sl_catchup_t *cu = &r->cu;
    sl_chunk_t *chunk = cu->chunk;
    cu->chunk = NULL;
    r->cu_out = false;
    sl_actor_release(r->cu_actor);
    r->cu_actor = NULL;
    if (r->dead || r->finished || c->state >= SL_CONN__CLOSING) {
        if (chunk)
            sl_chunk_release(chunk);
        return;
    }
    if (cu->status != 0) {
        if (chunk)
            sl_chunk_release(chunk);
        if (r->cu_retries++ < DS_RETRIES_MAX)
            read_step(c, r);
        else
            read_failed(c, r, 503);
        return;
    }
    r->cu_retries = 0;
    if (r->kind == DS_FORK) {
        fork_prefix_done(c, r, chunk);
        if (chunk)
            sl_chunk_release(chunk);
        return;
    }
    bool ok = r->kind == DS_SSE ? sse_data(c, r, chunk) : absorb_body(r, chunk);
    if (chunk)
        sl_chunk_release(chunk);
    if (!ok) {
        read_failed(c, r, 503);
        return;
    }
    uint64_t to = cu->next_seq;
    bool more;
    if (r->cu_ancestor) {
        /* A parent holds no more below the fork point: the fork's own
         * seqs come next. */
        if (cu->events == 0 && cu->gapped == 0 && to <= cu->raw_limit)
            to = cu->raw_limit + 1;
        more = true;
        r->up_to_date = false;
    } else {
        more = to <= cu->raw_last;
        r->up_to_date = !more;
    }
    r->next_seq = to > r->next_seq ? to : r->next_seq;
    sl_sessops_touch(r->e);
    after_read(c, r, more);
}

/* The mode and start of a read: *kind, *off (the offset: seqs after it
 * are read) and *now (offset=now). Returns NULL or the 400 message. */
static const char *read_params(const sl_http_req_t *req, const sl_entry_t *e, uint8_t *kind,
                               uint64_t *off, bool *now)
{
    char val[64];
    sl_http_str_t v;
    *kind = DS_READ;
    *off = 0;
    int q = sl_conn__query(req, "live", val, sizeof val, &v);
    if (q < 0 || (q == 1 && !(v.len == 9 && memcmp(v.ptr, "long-poll", 9) == 0) &&
                  !(v.len == 3 && memcmp(v.ptr, "sse", 3) == 0)))
        return "live is long-poll or sse";
    if (q == 1)
        *kind = v.ptr[0] == 'l' ? DS_POLL : DS_SSE;
    int o = 0;
    const sl_http_header_t *lei = *kind == DS_SSE ? req_hdr(req, "last-event-id") : NULL;
    if (lei && lei->value_len) {
        o = parse_offset(lei->value, lei->value_len, off); /* an EventSource resuming */
    } else {
        q = sl_conn__query(req, "offset", val, sizeof val, &v);
        if (q == 0 && *kind != DS_READ)
            return "live reads need an offset";
        o = q == 1 ? parse_offset(v.ptr, v.len, off) : 0;
        if (q < 0 || (q == 1 && v.len == 0))
            o = -1;
    }
    if (o < 0)
        return "malformed offset";
    uint64_t last = tail_seq(e);
    entry_closed(e, &last);
    *now = o == 1;
    if (*now)
        *off = last;
    else if (*off > last)
        return "offset beyond the stream's tail";
    return NULL;
}

static void handle_get(sl_conn_t *c, const sl_http_req_t *req, sl_entry_t *e)
{
    uint32_t sid = req->stream_id;
    uint8_t kind;
    uint64_t off;
    bool now;
    const char *bad = read_params(req, e, &kind, &off, &now);
    if (bad) {
        sl_entry_release(e);
        return fail(c, sid, 400, "bad_request", bad);
    }
    uint64_t tail = off;
    char val[64];
    sl_http_str_t v;
    int q;
    ds_req_t *r = req_new(c, sid, kind, e);
    if (!r) {
        sl_entry_release(e);
        return fail(c, sid, 503, "overloaded", "out of memory");
    }
    const char *ct;
    size_t ctn;
    entry_ctype(e, &ct, &ctn);
    r->json = ctype_json(ct, ctn);
    r->b64 = !ctype_text(ct, ctn);
    r->next_seq = r->start_seq = off + 1;
    q = sl_conn__query(req, "cursor", val, sizeof val, &v);
    r->has_cursor = q == 1 && parse_dec(v.ptr, v.len, UINT64_MAX, &r->cursor_in);
    const sl_http_header_t *inm = req_hdr(req, "if-none-match");
    if (inm && inm->value_len < sizeof r->inm) {
        memcpy(r->inm, inm->value, inm->value_len);
        r->inm_len = (uint32_t)inm->value_len;
    }
    sl_sessops_touch(e);
    if (now && kind == DS_READ) {
        /* offset=now: the tail, no data, not cacheable. */
        hdrs_t h;
        hdr_common(&h);
        uint64_t last;
        bool closed = entry_closed(e, &last);
        hdr(&h, "content-type", ct, ctn);
        hdr_offset(&h, "stream-next-offset", closed ? last : tail);
        hdr_s(&h, "stream-up-to-date", "true");
        if (closed)
            hdr_s(&h, "stream-closed", "true");
        hdr_s(&h, "cache-control", "no-store");
        respond(c, sid, 200, &h, r->json ? "[]" : NULL, r->json ? 2 : 0);
        r->finished = true;
        req_maybe_free(c, r);
        return;
    }
    if (kind == DS_POLL)
        r->deadline_ns = sl_clock_now_ns() + c->srv->cfg.long_poll_timeout_ns;
    if (kind == DS_SSE) {
        sse_begin(c, r);
        if (r->dead) {
            req_maybe_free(c, r);
            return;
        }
    }
    int rc;
    if (kind != DS_READ && (rc = sub_start(c, r)) != 0) {
        read_failed(c, r, rc == SL_ENOTFOUND ? 404 : 503);
        req_maybe_free(c, r);
        return;
    }
    read_step(c, r);
}

/* ---- routing and hooks ---- */

void sl_conn__ds_request(sl_conn_t *c, const sl_http_req_t *req)
{
    uint32_t sid = req->stream_id;
    char id[SL_SESSION_ID_MAX * 3 + 1];
    size_t id_len = stream_name(c, req->path.ptr, req->path.len, id, sizeof id);
    if (!id_len)
        return fail(c, sid, 400, "bad_request",
                    "stream names are 1-128 bytes of [A-Za-z0-9._-], not starting with '.'");
    bool read = req->method == SL_HTTP_METHOD_GET || req->method == SL_HTTP_METHOD_HEAD;
    if (!sl_conn__auth_http(c, req, read ? SL_AUTH_SUB : SL_AUTH_PUB, id, id_len))
        return;
    if (req->method == SL_HTTP_METHOD_PUT)
        return handle_put(c, req, id, id_len);
    bool known = req->method == SL_HTTP_METHOD_GET || req->method == SL_HTTP_METHOD_HEAD ||
                 req->method == SL_HTTP_METHOD_POST || req->method == SL_HTTP_METHOD_DELETE;
    if (!known) {
        hdrs_t h;
        hdr_common(&h);
        hdr_s(&h, "allow", "GET, HEAD, POST, PUT, DELETE");
        count_status(c, 405);
        sl_http_respond_error(c->http, sid, 405, "method_not_allowed", "method not allowed here",
                              h.h, h.n);
        return;
    }
    sl_entry_t *e = sl_sessops_lookup(c->srv, id, id_len);
    if (!e)
        return fail(c, sid, 404, "not_found", "no such stream");
    if (soft_deleted(e)) {
        sl_entry_release(e);
        return fail(c, sid, 410, "gone", "stream deleted");
    }
    if ((req->method == SL_HTTP_METHOD_POST || req->method == SL_HTTP_METHOD_GET) &&
        sl_conn__budget_refused(c, req->method == SL_HTTP_METHOD_POST)) {
        sl_entry_release(e);
        return sl_conn__budget_respond(c, sid);
    }
    switch (req->method) {
    case SL_HTTP_METHOD_GET:
        return handle_get(c, req, e);
    case SL_HTTP_METHOD_HEAD:
        return handle_head(c, req, e);
    case SL_HTTP_METHOD_POST:
        return handle_post(c, req, e);
    default:
        return handle_delete(c, req, e);
    }
}

bool sl_conn__ds_msg(sl_conn_t *c, sl_msg_t *m)
{
    if (m->kind == SL_CONN_MSG_CAUGHT_UP) {
        sl_catchup_t *cu = (sl_catchup_t *)(void *)m;
        if (!cu->raw)
            return false;
        ds_req_t *r = sl_container_of(cu, ds_req_t, cu);
        on_caught_up(c, r);
        sl_actor_release(&c->a); /* the request's reference */
        req_maybe_free(c, r);
        return true;
    }
    for (ds_req_t *r = c->ds_reqs; r; r = r->next) {
        if (m->kind == SL_CONN_MSG_PUBLISHED && (sl_msg_t *)r->pub == m) {
            on_published(c, r, r->pub);
            return true;
        }
        if (&r->sub.h == m && m->kind == SL_CONN_MSG_SUBSCRIBED) {
            on_subscribed(c, r);
            req_maybe_free(c, r);
            return true;
        }
        if (&r->sub.h == m && m->kind == SL_CONN_MSG_UNSUBSCRIBED) {
            on_unsubscribed(c, r);
            req_maybe_free(c, r);
            return true;
        }
    }
    return false;
}

void sl_conn__ds_pump(sl_conn_t *c)
{
    if (!c->http || c->state >= SL_CONN__CLOSING)
        return;
    for (ds_req_t *r = c->ds_reqs, *next; r; r = next) {
        next = r->next;
        if (r->dead)
            continue;
        if ((r->pend || r->end_pending) && !sse_flush(c, r))
            continue; /* still no room */
        if (r->finished) {
            req_maybe_free(c, r);
            continue;
        }
        if (r->waiting) {
            live_check(c, r);
        } else if (r->kind == DS_SSE && !r->cu_out && r->sse_begun && r->sub_state != SUB_NONE &&
                   sl_http_stream_room(c->http, r->sid) >= DS_SSE_ROOM_MIN) {
            read_step(c, r); /* a reader behind: room is back */
        }
        req_maybe_free(c, r);
    }
}

void sl_conn__ds_tick(sl_conn_t *c, uint64_t now_ns)
{
    if (!c->http || c->state >= SL_CONN__CLOSING)
        return;
    for (ds_req_t *r = c->ds_reqs, *next; r; r = next) {
        next = r->next;
        if (r->finished || r->dead || !r->waiting)
            continue;
        if (r->kind == DS_POLL && now_ns >= r->deadline_ns) {
            r->waiting = false;
            r->up_to_date = true;
            respond_read(c, r, 204);
            sub_leave(r);
        } else {
            live_check(c, r);
            if (r->kind == DS_SSE && r->waiting && !r->finished && !r->pend &&
                now_ns - r->close_check_ns >= c->srv->cfg.sse_keepalive_ns) {
                r->close_check_ns = now_ns;
                sl_http_stream_write_copy(c->http, r->sid, ": keepalive\n\n", 13);
            }
        }
        req_maybe_free(c, r);
    }
}

uint64_t sl_conn__ds_period(const sl_conn_t *c, uint64_t p)
{
    uint64_t now = sl_clock_now_ns();
    for (const ds_req_t *r = c->ds_reqs; r; r = r->next) {
        if (!r->waiting || r->finished || r->dead)
            continue;
        uint64_t want = 2 * DS_CLOSE_POLL_NS;
        if (r->kind == DS_POLL) {
            uint64_t left = r->deadline_ns > now ? r->deadline_ns - now : 0;
            want = 2 * left < want ? 2 * left : want;
        }
        if (want < 2 * 1000 * 1000)
            want = 2 * 1000 * 1000;
        if (want < p)
            p = want;
    }
    return p;
}

void sl_conn__ds_stream_closed(sl_conn_t *c, uint32_t stream_id)
{
    for (ds_req_t *r = c->ds_reqs, *next; r; r = next) {
        next = r->next;
        if (r->sid != stream_id || r->dead)
            continue;
        r->dead = true;
        r->waiting = false;
        sub_leave(r);
        req_maybe_free(c, r);
    }
}

void sl_conn__ds_close_all(sl_conn_t *c)
{
    for (ds_req_t *r = c->ds_reqs, *next; r; r = next) {
        next = r->next;
        r->dead = true;
        r->waiting = false;
        sub_leave(r);
        req_maybe_free(c, r);
    }
}

void sl_conn__ds_free(sl_conn_t *c)
{
    while (c->ds_reqs) {
        ds_req_t *r = c->ds_reqs;
        sl_assert(!r->pub && !r->cu_out && r->sub_state == SUB_NONE);
        r->dead = true;
        req_maybe_free(c, r);
    }
}
