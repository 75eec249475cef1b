/*
 * The protocol-neutral half of the HTTP server side: configuration,
 * protocol sniffing, the dispatch from the public API to HTTP/1.x
 * (net/http1.c) or HTTP/2 (net/http2.c), the counted allocator every
 * allocation of a connection goes through (nghttp2's included), and the
 * request header store both protocols fill.
 */
#include "net/net_int.h"
#include "net/cors.h"

#include <errno.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Live bytes over all connections' counted allocators (for /health).
 * Relaxed: a statistic. */
static _Atomic uint64_t http_mem_live;

void sl_http_config_default(sl_http_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->proto = SL_HTTP_PROTO_AUTO;
    cfg->max_header_bytes = SL_HTTP_MAX_HEADER_BYTES_DEFAULT;
    cfg->max_header_count = SL_HTTP_MAX_HEADER_COUNT_DEFAULT;
    /* One maximal event (1 MiB) plus framing (NDJSON, JSON escapes). */
    cfg->max_body_bytes = SL_HTTP_MAX_BODY_BYTES_DEFAULT;
    /* SSE subscribers keep streams open for hours; a browser or a tool
     * multiplexing many sessions over one connection needs far more than
     * the usual 100. 256 open streams cost a few hundred KiB of nghttp2
     * state at most. */
    cfg->max_concurrent_streams = SL_HTTP_MAX_CONCURRENT_STREAMS_DEFAULT;
    /* Receive windows only pace request bodies (publishes); SSE traffic
     * flows the other way. 1 MiB per stream lets one maximal event arrive
     * in a single round trip; 16 MiB per connection lets 16 such publishes
     * proceed in parallel. Windows are refilled as data arrives, so memory
     * is bounded by max_body_bytes and conn_body_bytes_max, not by them. */
    cfg->stream_window_bytes = SL_HTTP_STREAM_WINDOW_DEFAULT;
    cfg->conn_window_bytes = SL_HTTP_CONN_WINDOW_DEFAULT;
    cfg->conn_body_bytes_max = SL_HTTP_CONN_BODY_BYTES_DEFAULT;
    /* Output held per stream before the caller must stop pulling events:
     * enough for many small events per flush, small enough that 256
     * streams stay within conn_buffer_bytes (references, mostly). */
    cfg->stream_buffer_bytes = SL_HTTP_STREAM_BUFFER_BYTES_DEFAULT;
    cfg->stream_buffer_segs = SL_HTTP_STREAM_BUFFER_SEGS_DEFAULT;
    cfg->conn_buffer_bytes = SL_HTTP_CONN_BUFFER_BYTES_DEFAULT;
    cfg->pipeline_bytes_max = SL_HTTP_PIPELINE_BYTES_DEFAULT;
    cfg->mem_max_bytes = SL_HTTP_MEM_MAX_BYTES_DEFAULT;
    cfg->mem_fail_nth = 0;
}

static bool config_valid(const sl_http_config_t *cfg, const sl_outq_t *outq)
{
    if (cfg->proto > SL_HTTP_PROTO_H2)
        return false;
    if (cfg->max_header_bytes < 256 || cfg->max_header_bytes > (1u << 20))
        return false;
    if (cfg->max_header_count < 8 || cfg->max_header_count > 10000)
        return false;
    if (cfg->max_body_bytes > cfg->conn_body_bytes_max || cfg->max_body_bytes > UINT32_MAX)
        return false;
    if (cfg->max_concurrent_streams < 1)
        return false;
    if (cfg->stream_window_bytes > NGHTTP2_MAX_WINDOW_SIZE)
        return false;
    if (cfg->conn_window_bytes < NGHTTP2_INITIAL_CONNECTION_WINDOW_SIZE ||
        cfg->conn_window_bytes > NGHTTP2_MAX_WINDOW_SIZE)
        return false;
    if (cfg->stream_buffer_bytes < 1024 || cfg->stream_buffer_segs < 16)
        return false;
    if (cfg->conn_buffer_bytes < cfg->stream_buffer_bytes)
        return false;
    if (cfg->pipeline_bytes_max < 1024 || cfg->mem_max_bytes < 64 * 1024)
        return false;
    if (outq->bytes_max < SL_HTTP_OUTQ_MIN_BYTES || outq->_seg_capacity < SL_HTTP_OUTQ_MIN_SEGS)
        return false;
    /* A DATA frame's slices (one stream's whole queue at most) plus its
     * header must fit the outq's ring, or the frame could never be sent. */
    return cfg->stream_buffer_segs < outq->_seg_capacity;
}

/* ---- counted allocator ------------------------------------------------ */

/* Each block carries its size in front so free and realloc can count. */
typedef union mem_hdr {
    size_t size;
    max_align_t _align;
} mem_hdr_t;

static bool mem_admit(sl_http_conn_t *c, size_t add)
{
    sl_http__mem_t *m = &c->mem;
    m->allocs++;
    if (m->fail_nth != 0 && m->allocs == m->fail_nth) {
        m->refused = true;
        return false;
    }
    if (add > m->bytes_max || m->bytes > m->bytes_max - add) {
        m->refused = true;
        return false;
    }
    return true;
}

static void mem_count(sl_http_conn_t *c, size_t add, size_t sub)
{
    c->mem.bytes = c->mem.bytes + add - sub;
    if (add > 0) {
        atomic_fetch_add_explicit(&http_mem_live, add, memory_order_relaxed);
        sl_budget_add(SL_BUDGET_HTTP, add);
    }
    if (sub > 0) {
        atomic_fetch_sub_explicit(&http_mem_live, sub, memory_order_relaxed);
        sl_budget_sub(SL_BUDGET_HTTP, sub);
    }
}

void *sl_http__alloc(sl_http_conn_t *c, size_t size)
{
    if (size > SIZE_MAX - sizeof(mem_hdr_t) || !mem_admit(c, size))
        return NULL;
    mem_hdr_t *h = malloc(sizeof(*h) + size);
    if (h == NULL)
        return NULL;
    h->size = size;
    mem_count(c, size, 0);
    return h + 1;
}

void *sl_http__calloc(sl_http_conn_t *c, size_t n, size_t size)
{
    if (size != 0 && n > SIZE_MAX / size)
        return NULL;
    void *p = sl_http__alloc(c, n * size);
    if (p != NULL)
        memset(p, 0, n * size);
    return p;
}

void sl_http__free(sl_http_conn_t *c, void *p)
{
    if (p == NULL)
        return;
    mem_hdr_t *h = (mem_hdr_t *)p - 1;
    mem_count(c, 0, h->size);
    free(h);
}

void *sl_http__realloc(sl_http_conn_t *c, void *p, size_t size)
{
    if (p == NULL)
        return sl_http__alloc(c, size);
    mem_hdr_t *h = (mem_hdr_t *)p - 1;
    size_t old = h->size;
    size_t grow = size > old ? size - old : 0;
    if (size > SIZE_MAX - sizeof(mem_hdr_t) || !mem_admit(c, grow))
        return NULL;
    mem_hdr_t *n = realloc(h, sizeof(*n) + size);
    if (n == NULL)
        return NULL;
    n->size = size;
    mem_count(c, size, old);
    return n + 1;
}

int sl_http__nomem(sl_http_conn_t *c)
{
    return c->mem.refused ? SL_ENOMEM : -ENOMEM;
}

uint64_t sl_http_conn_mem_bytes(const sl_http_conn_t *conn)
{
    return conn->mem.bytes;
}

uint64_t sl_http_mem_bytes_live(void)
{
    return atomic_load_explicit(&http_mem_live, memory_order_relaxed);
}

/* ---- sniffing ----------------------------------------------------------- */

static const char h2_preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/* The preface's request line: enough to commit to HTTP/2 (nghttp2 checks
 * the rest and answers a mismatch with GOAWAY). */
#define H2_PREFACE_LINE_BYTES 16
/* Longest method token accepted before the first space. */
#define HTTP1_METHOD_BYTES_MAX 20

static bool is_method_char(uint8_t ch)
{
    return (ch >= 'A' && ch <= 'Z') || ch == '-' || ch == '_';
}

sl_http_sniff_t sl_http_sniff(const uint8_t *p, size_t n)
{
    if (n == 0)
        return SL_HTTP_SNIFF_NEED_MORE;
    if (p[0] == 0x16) {
        if (n < 2)
            return SL_HTTP_SNIFF_NEED_MORE;
        return p[1] == 0x03 ? SL_HTTP_SNIFF_TLS : SL_HTTP_SNIFF_GARBAGE;
    }
    size_t m = n < H2_PREFACE_LINE_BYTES ? n : H2_PREFACE_LINE_BYTES;
    if (memcmp(p, h2_preface, m) == 0)
        return m == H2_PREFACE_LINE_BYTES ? SL_HTTP_SNIFF_H2 : SL_HTTP_SNIFF_NEED_MORE;
    for (size_t i = 0; i < n && i <= HTTP1_METHOD_BYTES_MAX; i++) {
        if (p[i] == ' ')
            return i > 0 ? SL_HTTP_SNIFF_HTTP1 : SL_HTTP_SNIFF_GARBAGE;
        if (!is_method_char(p[i]))
            return SL_HTTP_SNIFF_GARBAGE;
    }
    return n > HTTP1_METHOD_BYTES_MAX ? SL_HTTP_SNIFF_GARBAGE : SL_HTTP_SNIFF_NEED_MORE;
}

_Static_assert(sizeof(h2_preface) - 1 == 24, "HTTP/2 client preface");
_Static_assert(HTTP1_METHOD_BYTES_MAX < 24, "sniff decides within the sniff buffer");

/* ---- connection ------------------------------------------------------- */

static int start_proto(sl_http_conn_t *c, sl_http_proto_t proto)
{
    c->proto = proto;
    return proto == SL_HTTP_PROTO_H2 ? sl_http__h2_init(c) : sl_http__h1_init(c);
}

int sl_http_conn_create(sl_http_conn_t **out, const sl_http_config_t *cfg,
                        const sl_http_callbacks_t *cbs, void *ctx, sl_outq_t *outq)
{
    sl_assert(out != NULL && cfg != NULL && cbs != NULL && outq != NULL);
    sl_assert(cbs->on_request != NULL);
    if (!config_valid(cfg, outq))
        return SL_EINVAL;
    sl_http_conn_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return -ENOMEM;
    c->cfg = *cfg;
    c->cbs = *cbs;
    c->ctx = ctx;
    c->outq = outq;
    c->mem.bytes_max = cfg->mem_max_bytes;
    c->mem.fail_nth = cfg->mem_fail_nth;
    if (cfg->proto != SL_HTTP_PROTO_AUTO) {
        int rc = start_proto(c, cfg->proto);
        if (rc != 0) {
            sl_http_conn_destroy(c);
            return rc;
        }
    }
    *out = c;
    return 0;
}

void sl_http_conn_destroy(sl_http_conn_t *conn)
{
    if (conn == NULL)
        return;
    if (conn->proto == SL_HTTP_PROTO_H2)
        sl_http__h2_deinit(conn);
    else if (conn->proto == SL_HTTP_PROTO_HTTP1)
        sl_http__h1_deinit(conn);
    sl_assert(conn->mem.bytes == 0); /* every counted block was returned */
    free(conn);
}

static int proto_feed(sl_http_conn_t *c, const uint8_t *data, size_t len)
{
    if (c->proto == SL_HTTP_PROTO_H2)
        return sl_http__h2_feed(c, data, len);
    return sl_http__h1_feed(c, data, len);
}

/* Collects the first bytes until the protocol is known, then replays them
 * into the chosen protocol followed by the rest of this input. */
static int feed_sniff(sl_http_conn_t *c, const uint8_t *data, size_t len)
{
    size_t take = sizeof(c->sniff) - c->sniff_len;
    if (take > len)
        take = len;
    memcpy(c->sniff + c->sniff_len, data, take);
    c->sniff_len += (uint32_t)take;
    sl_http_sniff_t kind = sl_http_sniff(c->sniff, c->sniff_len);
    int rc;
    switch (kind) {
    case SL_HTTP_SNIFF_NEED_MORE:
        sl_assert(take == len);
        return 0;
    case SL_HTTP_SNIFF_TLS:
        return SL_EPROTO; /* no TLS here yet: nothing we can answer */
    case SL_HTTP_SNIFF_GARBAGE:
        rc = start_proto(c, SL_HTTP_PROTO_HTTP1);
        return rc != 0 ? rc : sl_http__h1_fail(c, 400);
    case SL_HTTP_SNIFF_H2:
    case SL_HTTP_SNIFF_HTTP1:
        break;
    }
    rc = start_proto(c, kind == SL_HTTP_SNIFF_H2 ? SL_HTTP_PROTO_H2 : SL_HTTP_PROTO_HTTP1);
    if (rc == 0)
        rc = proto_feed(c, c->sniff, c->sniff_len);
    if (rc == 0 && len > take)
        rc = proto_feed(c, data + take, len - take);
    return rc;
}

int sl_http_conn_feed(sl_http_conn_t *conn, const uint8_t *data, size_t len)
{
    if (conn->dead)
        return SL_ECLOSED;
    int rc;
    if (conn->proto == SL_HTTP_PROTO_AUTO)
        rc = len == 0 ? 0 : feed_sniff(conn, data, len);
    else
        rc = proto_feed(conn, data, len);
    if (rc != 0)
        conn->dead = true;
    return rc;
}

int sl_http_conn_flush(sl_http_conn_t *conn)
{
    if (conn->proto == SL_HTTP_PROTO_H2)
        return sl_http__h2_flush(conn);
    if (conn->proto == SL_HTTP_PROTO_HTTP1)
        return sl_http__h1_flush(conn);
    return 0;
}

bool sl_http_conn_want_read(const sl_http_conn_t *conn)
{
    if (conn->dead)
        return false;
    if (conn->proto == SL_HTTP_PROTO_H2)
        return sl_http__h2_want_read(conn);
    if (conn->proto == SL_HTTP_PROTO_HTTP1)
        return sl_http__h1_want_read(conn);
    return !conn->shutdown;
}

bool sl_http_conn_has_input(const sl_http_conn_t *conn)
{
    return !conn->dead && conn->proto == SL_HTTP_PROTO_HTTP1 && sl_http__h1_has_input(conn);
}

bool sl_http_conn_want_close(const sl_http_conn_t *conn)
{
    if (conn->proto == SL_HTTP_PROTO_H2)
        return sl_http__h2_want_close(conn);
    if (conn->proto == SL_HTTP_PROTO_HTTP1)
        return sl_http__h1_want_close(conn);
    return conn->dead || conn->shutdown;
}

void sl_http_conn_shutdown(sl_http_conn_t *conn)
{
    if (conn->shutdown)
        return;
    conn->shutdown = true;
    if (conn->proto == SL_HTTP_PROTO_H2)
        sl_http__h2_shutdown(conn);
    else if (conn->proto == SL_HTTP_PROTO_HTTP1)
        sl_http__h1_shutdown(conn);
}

sl_http_proto_t sl_http_conn_proto(const sl_http_conn_t *conn)
{
    return conn->proto;
}

/* ---- responses -------------------------------------------------------- */

/* Bounds what a response may carry (an nghttp2_nv array on the stack). */
#define RESPONSE_HEADERS_MAX 64

int sl_http__check_headers(const sl_http_header_t *hdrs, size_t n)
{
    if (n > RESPONSE_HEADERS_MAX)
        return SL_EINVAL;
    for (size_t i = 0; i < n; i++) {
        const sl_http_header_t *h = &hdrs[i];
        if (h->name_len == 0)
            return SL_EINVAL;
        for (size_t k = 0; k < h->name_len; k++) {
            char ch = h->name[k];
            bool ok = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' ||
                      ch == '_' || ch == '.';
            if (!ok)
                return SL_EINVAL;
        }
        for (size_t k = 0; k < h->value_len; k++) {
            char ch = h->value[k];
            if (ch == '\r' || ch == '\n' || ch == '\0')
                return SL_EINVAL;
        }
    }
    return 0;
}

size_t sl_http__std_headers(const sl_http_conn_t *c, uint32_t grant, sl_http_header_t *out)
{
    return sl_cors_response_headers(c->cfg.cors, grant, out);
}

uint32_t sl_http__grant(const sl_http_conn_t *c, const sl_http_req_t *req)
{
    return sl_cors_grant(c->cfg.cors, req->origin);
}

bool sl_http__status_has_body(int status)
{
    return status >= 200 && status != 204 && status != 304;
}

static bool status_valid(int status)
{
    return status >= 200 && status <= 599;
}

int sl_http__put(sl_outq_t *q, const void *data, size_t len)
{
    uint64_t saved = q->bytes_max;
    q->bytes_max = UINT64_MAX;
    int rc = sl_outq_append_copy(q, data, len);
    q->bytes_max = saved;
    return rc;
}

int sl_http__put_ref(sl_outq_t *q, sl_chunk_t *chunk, uint32_t off, uint32_t len)
{
    uint64_t saved = q->bytes_max;
    q->bytes_max = UINT64_MAX;
    int rc = sl_outq_append_ref(q, chunk, off, len);
    q->bytes_max = saved;
    return rc;
}

/* A request is never left unanswered, whatever refused its response (a
 * client would wait forever): when the caller's response could not be
 * queued (rc: no memory, or bytes the protocol cannot carry), the stream
 * ends another way, each step needing less than the one before -- a bare
 * 503 (500 for unusable arguments) with no header and no body, else
 * sl_http_stream_reset (HTTP/2 RST_STREAM; HTTP/1.x closes after what was
 * queued), else, HTTP/2 only, the session is marked fatal so the
 * connection closes. SL_ENOTFOUND means there is nothing to answer (or an
 * HTTP/1.x response broke and the connection is already closing). Returns
 * rc unchanged. */
static int answer_anyway(sl_http_conn_t *conn, uint32_t stream_id, int rc)
{
    if (rc == 0 || rc == SL_ENOTFOUND)
        return rc;
    int status = rc == SL_EINVAL ? 500 : 503;
    int frc = SL_ENOTFOUND;
    if (conn->proto == SL_HTTP_PROTO_H2)
        frc = sl_http__h2_respond(conn, stream_id, status, NULL, 0, NULL, 0);
    else if (conn->proto == SL_HTTP_PROTO_HTTP1)
        frc = sl_http__h1_respond(conn, stream_id, status, NULL, 0, NULL, 0);
    if (frc == 0 || frc == SL_ENOTFOUND)
        return rc;
    if (sl_http_stream_reset(conn, stream_id) != 0 && conn->proto == SL_HTTP_PROTO_H2)
        conn->h2.fatal = true;
    return rc;
}

static int respond_once(sl_http_conn_t *conn, uint32_t stream_id, int status,
                        const sl_http_header_t *hdrs, size_t n, const void *body, size_t len)
{
    if (!status_valid(status) || sl_http__check_headers(hdrs, n) != 0)
        return SL_EINVAL;
    if (conn->proto == SL_HTTP_PROTO_H2)
        return sl_http__h2_respond(conn, stream_id, status, hdrs, n, body, len);
    if (conn->proto == SL_HTTP_PROTO_HTTP1)
        return sl_http__h1_respond(conn, stream_id, status, hdrs, n, body, len);
    return SL_ENOTFOUND;
}

int sl_http_respond(sl_http_conn_t *conn, uint32_t stream_id, int status,
                    const sl_http_header_t *hdrs, size_t n, const void *body, size_t len)
{
    int rc = respond_once(conn, stream_id, status, hdrs, n, body, len);
    return answer_anyway(conn, stream_id, rc);
}

int sl_http_respond_error(sl_http_conn_t *conn, uint32_t stream_id, int status,
                          const char *code, const char *message,
                          const sl_http_header_t *hdrs, size_t n)
{
    char body[512];
    int len = sl_http_error_json(body, sizeof(body), code, message);
    if (len < 0)
        len = sl_http_error_json(body, sizeof(body), code, "");
    if (len < 0 || n >= RESPONSE_HEADERS_MAX)
        return answer_anyway(conn, stream_id, SL_EINVAL);
    sl_http_header_t all[RESPONSE_HEADERS_MAX];
    all[0] = (sl_http_header_t)SL_HTTP_HEADER_LIT("content-type", "application/json");
    if (n > 0)
        memcpy(&all[1], hdrs, n * sizeof(*hdrs));
    return sl_http_respond(conn, stream_id, status, all, n + 1, body, (size_t)len);
}

int sl_http_stream_begin(sl_http_conn_t *conn, uint32_t stream_id, int status,
                         const sl_http_header_t *hdrs, size_t n)
{
    int rc;
    if (!status_valid(status) || sl_http__check_headers(hdrs, n) != 0)
        rc = SL_EINVAL;
    else if (conn->proto == SL_HTTP_PROTO_H2)
        rc = sl_http__h2_begin(conn, stream_id, status, hdrs, n);
    else if (conn->proto == SL_HTTP_PROTO_HTTP1)
        rc = sl_http__h1_begin(conn, stream_id, status, hdrs, n);
    else
        rc = SL_ENOTFOUND;
    return answer_anyway(conn, stream_id, rc);
}

int sl_http_stream_write_ref(sl_http_conn_t *conn, uint32_t stream_id, sl_chunk_t *chunk,
                             uint32_t off, uint32_t len)
{
    sl_assert(chunk != NULL);
    sl_assert(off <= chunk->len && len <= chunk->len - off);
    if (conn->proto == SL_HTTP_PROTO_H2)
        return sl_http__h2_write(conn, stream_id, chunk, NULL, off, len);
    if (conn->proto == SL_HTTP_PROTO_HTTP1)
        return sl_http__h1_write(conn, stream_id, chunk, NULL, off, len);
    return SL_ENOTFOUND;
}

int sl_http_stream_write_copy(sl_http_conn_t *conn, uint32_t stream_id, const void *data,
                              size_t len)
{
    if (len > UINT32_MAX)
        return SL_EFULL;
    if (conn->proto == SL_HTTP_PROTO_H2)
        return sl_http__h2_write(conn, stream_id, NULL, data, 0, len);
    if (conn->proto == SL_HTTP_PROTO_HTTP1)
        return sl_http__h1_write(conn, stream_id, NULL, data, 0, len);
    return SL_ENOTFOUND;
}

int sl_http_stream_end(sl_http_conn_t *conn, uint32_t stream_id)
{
    if (conn->proto == SL_HTTP_PROTO_H2)
        return sl_http__h2_end(conn, stream_id);
    if (conn->proto == SL_HTTP_PROTO_HTTP1)
        return sl_http__h1_end(conn, stream_id);
    return SL_ENOTFOUND;
}

int sl_http_stream_reset(sl_http_conn_t *conn, uint32_t stream_id)
{
    if (conn->proto == SL_HTTP_PROTO_H2)
        return sl_http__h2_reset(conn, stream_id);
    if (conn->proto == SL_HTTP_PROTO_HTTP1)
        return sl_http__h1_reset(conn, stream_id);
    return SL_ENOTFOUND;
}

size_t sl_http_stream_room(const sl_http_conn_t *conn, uint32_t stream_id)
{
    if (conn->proto == SL_HTTP_PROTO_H2)
        return sl_http__h2_room(conn, stream_id);
    if (conn->proto == SL_HTTP_PROTO_HTTP1)
        return sl_http__h1_room(conn, stream_id);
    return 0;
}
