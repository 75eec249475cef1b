/*
 * GET /debug/connections?sort=sendq|unacked|age|lag&limit=N: the worst
 * connections, as JSON, so an operator can name the client that is wedged
 * and tell "busy" (acked bytes advancing) from "wedged" (nothing acked,
 * queue stuck) from "paused" (live peer, closed window).
 *
 * Cost: one pass over the registry under conns_lock reading per-connection
 * figures that are already published (no syscall under that lock: it also
 * guards accepts), a bounded min-heap of the N worst (N <= 1000), then two
 * syscalls per listed connection, each under the watchdog lock that guards
 * against probing a closed fd. The ranking by sendq/unacked uses the
 * watchdog's last tick (a connection the watchdog does not track has
 * nothing unacked); the rows show fresh figures.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actors/conn_int.h"
#include "net/http.h"
#include "runtime/clock.h"
#include "runtime/limits.h"

typedef enum sort_key { SORT_SENDQ, SORT_UNACKED, SORT_AGE, SORT_LAG } sort_key_t;

typedef struct ranked {
    uint64_t key;
    uint64_t age_ns;
    sl_conn_t *c;
} ranked_t;

/* Bytes of one row at most (fixed fields, a 64-byte peer). */
#define ROW_BYTES_MAX 640

static const char *const sort_names[] = {"sendq", "unacked", "age", "lag"};

static bool parse_query(const sl_http_req_t *req, sort_key_t *sort, uint32_t *limit)
{
    sl_http_str_t v;
    char buf[16];
    *sort = SORT_SENDQ;
    *limit = SL_DEBUG_CONNS_LIMIT_DEFAULT;
    int q = sl_conn__query(req, "sort", buf, sizeof buf, &v);
    if (q < 0)
        return false;
    if (q > 0) {
        bool found = false;
        for (int i = 0; i < 4 && !found; i++) {
            if (v.len == strlen(sort_names[i]) && memcmp(v.ptr, sort_names[i], v.len) == 0) {
                *sort = (sort_key_t)i;
                found = true;
            }
        }
        if (!found)
            return false;
    }
    q = sl_conn__query(req, "limit", buf, sizeof buf, &v);
    if (q < 0)
        return false;
    if (q > 0) {
        uint64_t n = 0;
        if (v.len == 0 || v.len > 7)
            return false;
        for (size_t i = 0; i < v.len; i++) {
            if (v.ptr[i] < '0' || v.ptr[i] > '9')
                return false;
            n = n * 10 + (uint64_t)(v.ptr[i] - '0');
        }
        *limit = n < 1 ? 1 : n > SL_DEBUG_CONNS_LIMIT_MAX ? SL_DEBUG_CONNS_LIMIT_MAX : (uint32_t)n;
    }
    return true;
}

static uint64_t key_of(sl_conn_t *c, sort_key_t sort, uint64_t age_ns)
{
    switch (sort) {
    case SORT_SENDQ: return atomic_load_explicit(&c->wd.sendq_last, memory_order_relaxed);
    case SORT_UNACKED: return atomic_load_explicit(&c->wd.unacked_last, memory_order_relaxed);
    case SORT_AGE: return age_ns;
    case SORT_LAG: return atomic_load_explicit(&c->pub_lag_events, memory_order_relaxed);
    }
    return 0;
}

static bool worse(const ranked_t *a, const ranked_t *b)
{
    return a->key != b->key ? a->key > b->key : a->age_ns > b->age_ns;
}

/* Min-heap on "worse": h[0] is the best of the kept, replaced first. */
static void sift_down(ranked_t *h, uint32_t n, uint32_t i)
{
    for (;;) {
        uint32_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && worse(&h[m], &h[l]))
            m = l;
        if (r < n && worse(&h[m], &h[r]))
            m = r;
        if (m == i)
            return;
        ranked_t t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

static void sift_up(ranked_t *h, uint32_t i)
{
    while (i > 0 && worse(&h[(i - 1) / 2], &h[i])) {
        ranked_t t = h[i];
        h[i] = h[(i - 1) / 2];
        h[(i - 1) / 2] = t;
        i = (i - 1) / 2;
    }
}

/* Keeps the `limit` worst connections, each with a reference taken.
 * Returns how many; *total counts every registered connection. */
static uint32_t rank(sl_server_t *srv, sort_key_t sort, ranked_t *h, uint32_t limit,
                     uint64_t *total)
{
    uint64_t now = sl_clock_now_ns();
    uint32_t n = 0;
    *total = 0;
    pthread_mutex_lock(&srv->conns_lock);
    for (sl_conn_t *c = srv->conns_head; c; c = sl_conn_next(c)) {
        (*total)++;
        ranked_t r = {0, now - c->accepted_ns, c};
        r.key = key_of(c, sort, r.age_ns);
        if (n < limit) {
            h[n] = r;
            sift_up(h, n++);
        } else if (worse(&r, &h[0])) {
            h[0] = r;
            sift_down(h, n, 0);
        }
    }
    /* A registered connection holds its own reference until it left the
     * registry, so these cannot be the last ones. */
    for (uint32_t i = 0; i < n; i++)
        sl_actor_retain(&h[i].c->a);
    pthread_mutex_unlock(&srv->conns_lock);
    return n;
}

static int by_worse(const void *a, const void *b)
{
    return worse(a, b) ? -1 : worse(b, a) ? 1 : 0;
}

static const char *tcp_state_name(uint8_t s)
{
    static const char *const names[] = {"?", "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1",
                                        "FIN_WAIT2", "TIME_WAIT", "CLOSE", "CLOSE_WAIT",
                                        "LAST_ACK", "LISTEN", "CLOSING"};
    return s < SL_ARRAY_LEN(names) ? names[s] : "?";
}

static int render_row(sl_server_t *srv, const ranked_t *r, char *out, size_t cap)
{
    sl_conn_t *c = r->c;
    uint8_t proto = atomic_load_explicit(&c->pub_proto, memory_order_relaxed);
    int n = snprintf(out, cap,
                     "{\"peer\":\"%s\",\"proto\":\"%s\",\"age_s\":%.3f,\"streams\":%u,"
                     "\"outq_bytes\":%" PRIu64 ",\"lag_events\":%" PRIu64,
                     c->peer, proto == SL_CONN_KIND_RPC ? "rpc" : proto == SL_HTTP_PROTO_H2 ? "h2" : proto ? "h1" : "-",
                     (double)r->age_ns / 1e9,
                     atomic_load_explicit(&c->pub_streams, memory_order_relaxed),
                     atomic_load_explicit(&c->pub_outq_bytes, memory_order_relaxed),
                     atomic_load_explicit(&c->pub_lag_events, memory_order_relaxed));
    sl_watchdog_probe_t p;
    sl_watchdog_verdict_t v;
    uint64_t stuck_ns = 0;
    if (n > 0 && (size_t)n < cap && srv->watchdog && sl_watchdog_probe_link(srv->watchdog, &c->wd, &p, &v, &stuck_ns) == 0) {
        uint32_t unacked = p.sendq > p.notsent ? p.sendq - p.notsent : 0;
        n += snprintf(out + n, cap - (size_t)n,
                      ",\"tcp_state\":\"%s\",\"sendq\":%u,\"unacked_bytes\":%u,"
                      "\"unacked_segs\":%u,\"notsent\":%u,\"snd_wnd\":%u,\"rtt_ms\":%.3f,"
                      "\"last_ack_ms\":%u,\"probes\":%u,\"bytes_acked\":%" PRIu64
                      ",\"watchdog\":\"%s\",\"no_progress_s\":%.3f",
                      tcp_state_name(p.state), p.sendq, unacked, p.unacked, p.notsent, p.snd_wnd,
                      (double)p.rtt_us / 1000.0, p.last_ack_recv_ms, p.probes, p.bytes_acked,
                      sl_watchdog_verdict_name(v), (double)stuck_ns / 1e9);
    }
    n += snprintf(out + n, cap - (size_t)n, "}");
    return n < (int)cap ? n : (int)cap - 1; /* bounded by construction; never past cap */
}

static void respond_json(sl_conn_t *c, uint32_t sid, int status, const char *body, size_t len)
{
    static const sl_http_header_t h[] = {
        SL_HTTP_HEADER_LIT("content-type", "application/json"),
        SL_HTTP_HEADER_LIT("cache-control", "no-store"),
    };
    sl_http_respond(c->http, sid, status, h, SL_ARRAY_LEN(h), body, len);
}

static void render_and_respond(sl_conn_t *c, uint32_t sid, sort_key_t sort, ranked_t *h,
                               uint32_t n, uint32_t limit, uint64_t total)
{
    size_t cap = 256 + (size_t)n * ROW_BYTES_MAX;
    char *buf = malloc(cap);
    if (!buf) {
        sl_http_respond_error(c->http, sid, 503, "overloaded", "out of memory", NULL, 0);
        return;
    }
    size_t len = (size_t)snprintf(buf, cap,
                                  "{\"connections\":%" PRIu64 ",\"sort\":\"%s\",\"limit\":%u,"
                                  "\"watchdog\":%s,\"rows\":[",
                                  total, sort_names[sort], limit,
                                  sl_watchdog_enabled(c->srv->watchdog) ? "true" : "false");
    for (uint32_t i = 0; i < n; i++) {
        if (i)
            buf[len++] = ',';
        len += (size_t)render_row(c->srv, &h[i], buf + len, cap - len - 4);
    }
    len += (size_t)snprintf(buf + len, cap - len, "]}\n");
    respond_json(c, sid, 200, buf, len);
    free(buf);
}

void sl_conn__debug_connections(sl_conn_t *c, const sl_http_req_t *req)
{
    if (req->method != SL_HTTP_METHOD_GET && req->method != SL_HTTP_METHOD_HEAD) {
        static const sl_http_header_t allow[] = {SL_HTTP_HEADER_LIT("allow", "GET, HEAD")};
        sl_http_respond_error(c->http, req->stream_id, 405, "method_not_allowed",
                              "this resource supports GET and HEAD", allow, 1);
        return;
    }
    sort_key_t sort;
    uint32_t limit;
    if (!parse_query(req, &sort, &limit)) {
        sl_http_respond_error(c->http, req->stream_id, 400, "bad_request",
                              "sort is sendq|unacked|age|lag; limit is 1..1000", NULL, 0);
        return;
    }
    ranked_t *h = malloc(sizeof *h * limit);
    if (!h) {
        sl_http_respond_error(c->http, req->stream_id, 503, "overloaded", "out of memory", NULL, 0);
        return;
    }
    uint64_t total;
    uint32_t n = rank(c->srv, sort, h, limit, &total);
    qsort(h, n, sizeof *h, by_worse);
    render_and_respond(c, req->stream_id, sort, h, n, limit, total);
    for (uint32_t i = 0; i < n; i++)
        sl_actor_release(&h[i].c->a);
    free(h);
}
