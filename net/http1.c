/*
 * HTTP/1.x server side on http-parser. Requests are handled strictly in
 * order: when one is complete the parser pauses, the request goes to
 * on_request, and nothing further is parsed until its response has ended
 * (pipelined bytes wait in a bounded backlog). Responses are framed into a
 * connection-owned pending queue (status line and headers copied, streamed
 * payload referenced between copied chunk-size lines) which flush moves
 * into the caller's outq without copying.
 */
#include "net/net_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "runtime/limits.h"

/* Segments kept free in the pending queue: a complete response needs at
 * most 3 (head, body, next head), so streaming writes stop this early and
 * the response that ends the stream always fits. */
#define H1_SEG_RESERVE 8
/* Segments one chunked write takes: size line, payload, CRLF. */
#define H1_WRITE_SEGS 3
/* Chunked framing around one chunk: up to 8 hex digits, CRLF, CRLF. */
#define H1_CHUNK_OVERHEAD 12
/* Scratch chunk size for heads and chunk-size lines. */
#define H1_COPY_CHUNK_BYTES 4096

_Static_assert(H1_SEG_RESERVE + H1_WRITE_SEGS <= 16, "fits the smallest stream_buffer_segs");

static sl_http_conn_t *conn_of(http_parser *p)
{
    return p->data;
}

/* Stops the parser with an answer to send (or -1: the allocator refused). */
static int stop(sl_http__h1_t *h, int rc)
{
    h->err_status = rc == SL_ETOOBIG ? 431 : rc == SL_EINVAL ? 400 : -1;
    return -1;
}

static int on_message_begin(http_parser *p)
{
    sl_http_conn_t *c = conn_of(p);
    sl_http__h1_t *h = &c->h1;
    sl_http__hdrs_reset(c, &h->hdrs);
    h->cb_state = H1_CB_NONE;
    h->body_len = 0;
    h->err_status = 0;
    h->in_head = true; /* the header timeout runs until headers complete */
    return 0;
}

/* Terminates the header piece the parser was inside with a NUL. A name
 * without a value gets the empty string at its own terminator. */
static int end_piece(sl_http_conn_t *c)
{
    sl_http__h1_t *h = &c->h1;
    sl_http__hdrs_t *hd = &h->hdrs;
    uint8_t state = h->cb_state;
    h->cb_state = H1_CB_NONE;
    if (state == H1_CB_NONE)
        return 0;
    if (state == H1_CB_VALUE) {
        /* http-parser drops the leading whitespace of a value but keeps the
         * trailing one, which is not part of the value either (RFC 9110
         * 5.5). The value is the last thing in the buffer. */
        sl_http__hent_t *e = &hd->ent[hd->count - 1];
        while (e->value_len > 0 && (hd->buf[hd->len - 1] == ' ' || hd->buf[hd->len - 1] == '\t')) {
            e->value_len--;
            hd->len--;
        }
    }
    int rc = sl_http__hdrs_put(c, hd, "", 1, false, false);
    if (rc == 0 && state == H1_CB_FIELD) {
        sl_http__hent_t *e = &hd->ent[hd->count - 1];
        e->value_off = hd->len - 1;
        e->value_len = 0;
    }
    return rc;
}

static int on_url(http_parser *p, const char *at, size_t n)
{
    sl_http_conn_t *c = conn_of(p);
    sl_http__h1_t *h = &c->h1;
    if (h->cb_state != H1_CB_URL) {
        h->hdrs.target = (sl_http__span_t){h->hdrs.len, 0, true};
        h->cb_state = H1_CB_URL;
    }
    int rc = sl_http__hdrs_put(c, &h->hdrs, at, n, false, true);
    if (rc != 0)
        return stop(h, rc);
    h->hdrs.target.len += (uint32_t)n;
    return 0;
}

/* A trailer field (after a chunked body; headers are complete) is
 * discarded, not merged into the request's headers, which were already
 * built and handed out (RFC 9110 6.5.1 allows discarding). Its bytes still
 * count against max_header_bytes (431 beyond). */
static int trailer_piece(sl_http_conn_t *c, size_t n)
{
    sl_http__hdrs_t *hd = &c->h1.hdrs;
    if (n > c->cfg.max_header_bytes - hd->counted)
        return stop(&c->h1, SL_ETOOBIG);
    hd->counted += (uint32_t)n;
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t n)
{
    sl_http_conn_t *c = conn_of(p);
    sl_http__h1_t *h = &c->h1;
    if (!h->in_head)
        return trailer_piece(c, n);
    int rc = 0;
    if (h->cb_state != H1_CB_FIELD) {
        rc = end_piece(c);
        if (rc == 0)
            rc = sl_http__hdrs_begin_entry(c, &h->hdrs);
        h->cb_state = H1_CB_FIELD;
    }
    if (rc == 0)
        rc = sl_http__hdrs_put(c, &h->hdrs, at, n, true, true);
    if (rc != 0)
        return stop(h, rc);
    h->hdrs.ent[h->hdrs.count - 1].name_len += (uint32_t)n;
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
    sl_http_conn_t *c = conn_of(p);
    sl_http__h1_t *h = &c->h1;
    sl_http__hdrs_t *hd = &h->hdrs;
    if (!h->in_head)
        return trailer_piece(c, n);
    if (h->cb_state != H1_CB_VALUE) {
        int rc = end_piece(c);
        if (rc != 0)
            return stop(h, rc);
        hd->ent[hd->count - 1].value_off = hd->len;
        h->cb_state = H1_CB_VALUE;
    }
    int rc = sl_http__hdrs_put(c, hd, at, n, false, true);
    if (rc != 0)
        return stop(h, rc);
    hd->ent[hd->count - 1].value_len += (uint32_t)n;
    return 0;
}

static bool wants_continue(const sl_http__hdrs_t *hd)
{
    for (uint32_t i = 0; i < hd->count; i++) {
        const sl_http__hent_t *e = &hd->ent[i];
        if (e->name_len == 6 && memcmp(hd->buf + e->name_off, "expect", 6) == 0)
            return e->value_len == 12 && strncasecmp(hd->buf + e->value_off, "100-continue", 12) == 0;
    }
    return false;
}

static int on_headers_complete(http_parser *p)
{
    sl_http_conn_t *c = conn_of(p);
    sl_http__h1_t *h = &c->h1;
    h->in_head = false;
    int rc = end_piece(c);
    if (rc != 0)
        return stop(h, rc);
    if (p->http_major != 1) {
        h->err_status = 505;
        return -1;
    }
    const char *m = http_method_str((enum http_method)p->method);
    rc = sl_http__hdrs_put_span(c, &h->hdrs, &h->hdrs.method, m, strlen(m), false);
    if (rc != 0)
        return stop(h, rc);
    h->req_version = p->http_minor == 0 ? 10 : 11;
    /* Compared unsigned before the narrowing: a length of 2^63 or more
     * would turn negative as int64_t and skip the early 413. */
    if ((p->flags & F_CONTENTLENGTH) && p->content_length > c->cfg.max_body_bytes) {
        h->err_status = 413;
        return -1;
    }
    h->req_content_length = (p->flags & F_CONTENTLENGTH) ? (int64_t)p->content_length : -1;
    bool body_follows = h->req_content_length > 0 || (p->flags & F_CHUNKED);
    if (body_follows && h->req_version == 11 && wants_continue(&h->hdrs)) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        if (sl_http__put(&h->out, cont, sizeof(cont) - 1) != 0)
            return stop(h, SL_ENOMEM);
    }
    h->in_body = body_follows; /* the body timeout runs until the message completes */
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t n)
{
    sl_http_conn_t *c = conn_of(p);
    sl_http__h1_t *h = &c->h1;
    if (n > c->cfg.max_body_bytes - h->body_len) {
        h->err_status = 413;
        return -1;
    }
    if (h->body_len + n > h->body_cap) {
        if (sl_budget_over()) { /* runtime/budget.h: no body grows over the budget */
            sl_budget_count_refused_body();
            h->err_status = 503;
            return -1;
        }
        size_t cap = h->body_cap == 0 ? 4096 : h->body_cap * 2;
        if (h->req_content_length > 0 && (size_t)h->req_content_length > cap)
            cap = (size_t)h->req_content_length;
        while (cap < h->body_len + n)
            cap *= 2;
        if (cap > c->cfg.max_body_bytes)
            cap = c->cfg.max_body_bytes;
        uint8_t *b = sl_http__realloc(c, h->body, cap);
        if (b == NULL)
            return stop(h, SL_ENOMEM);
        h->body = b;
        h->body_cap = cap;
    }
    memcpy(h->body + h->body_len, at, n);
    h->body_len += n;
    return 0;
}

static int on_message_complete(http_parser *p)
{
    sl_http__h1_t *h = &conn_of(p)->h1;
    h->req_keep_alive = http_should_keep_alive(p) != 0;
    h->msg_done = true;
    h->in_body = false;
    /* Stop here: the request is handled before the next one is parsed. */
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings h1_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---- response framing ------------------------------------------------- */

static int put_str(sl_http__h1_t *h, int rc, const char *s, size_t n)
{
    return rc != 0 ? rc : sl_http__put(&h->out, s, n);
}

#define PUT_LIT(h, rc, lit) put_str((h), (rc), (lit), sizeof(lit) - 1)

/* Status line and headers. clen < 0: no content-length. */
static int put_head(sl_http_conn_t *c, int status, const sl_http_header_t *hdrs, size_t n,
                    int64_t clen, bool chunked)
{
    sl_http__h1_t *h = &c->h1;
    char line[96];
    int k = snprintf(line, sizeof(line), "HTTP/1.1 %d %s\r\n", status,
                     sl_http_status_reason(status));
    int rc = put_str(h, 0, line, (size_t)k);
    /* Every response, errors and fail-safe answers included (net/cors.h). */
    sl_http_header_t std[SL_HTTP__STD_HEADERS_MAX];
    size_t nstd = sl_http__std_headers(c, h->cur_cors, std);
    for (size_t i = 0; i < nstd + n; i++) {
        const sl_http_header_t *hd = i < nstd ? &std[i] : &hdrs[i - nstd];
        rc = put_str(h, rc, hd->name, hd->name_len);
        rc = PUT_LIT(h, rc, ": ");
        rc = put_str(h, rc, hd->value, hd->value_len);
        rc = PUT_LIT(h, rc, "\r\n");
    }
    if (clen >= 0) {
        k = snprintf(line, sizeof(line), "content-length: %" PRId64 "\r\n", clen);
        rc = put_str(h, rc, line, (size_t)k);
    }
    if (chunked)
        rc = PUT_LIT(h, rc, "transfer-encoding: chunked\r\n");
    if (h->close_after)
        rc = PUT_LIT(h, rc, "connection: close\r\n");
    else if (h->cur_version == 10)
        rc = PUT_LIT(h, rc, "connection: keep-alive\r\n");
    return PUT_LIT(h, rc, "\r\n");
}

/* A response was only partly queued (allocation failure): the byte stream
 * is unusable, so the connection ends after what was queued. */
static int broken(sl_http_conn_t *c, int rc)
{
    c->dead = true;
    c->h1.close_after = true;
    c->h1.cur = H1_IDLE;
    return rc == SL_EFULL ? rc : sl_http__nomem(c);
}

static const char *fail_message(int status)
{
    switch (status) {
    case 413: return "request body too large";
    case 431: return "request header fields too large";
    case 505: return "HTTP version not supported";
    case 503: return "server memory budget is full; retry later";
    default: return "malformed HTTP request";
    }
}

int sl_http__h1_fail(sl_http_conn_t *c, int status)
{
    sl_http__h1_t *h = &c->h1;
    h->close_after = true;
    h->cur = H1_IDLE;
    h->cur_version = 11;
    h->cur_cors = SL_CORS_NONE;
    const char *code = (status == 413 || status == 431) ? "too_large"
                       : status == 503                  ? "overloaded"
                                                        : "bad_request";
    char body[160];
    int len = sl_http_error_json(body, sizeof(body), code, fail_message(status));
    sl_assert(len > 0);
    static const sl_http_header_t hdrs[] = {
        SL_HTTP_HEADER_LIT("content-type", "application/json"),
        SL_HTTP_HEADER_LIT("retry-after", SL_BUDGET_RETRY_AFTER)}; /* for 503 only */
    int rc = put_head(c, status, hdrs, status == 503 ? 2 : 1, len, false);
    rc = put_str(h, rc, body, (size_t)len);
    return rc != 0 ? broken(c, rc) : SL_EPROTO;
}

/* ---- input ------------------------------------------------------------ */

static int parse_error(sl_http_conn_t *c, enum http_errno e)
{
    int status = c->h1.err_status;
    if (status == 0)
        /* HPE_INVALID_VERSION also covers a request line that is simply
         * malformed ("GET / HTTP/1.1 extra"): that is a 400. A well-formed
         * but unsupported version is caught after parsing (505 above). */
        status = e == HPE_HEADER_OVERFLOW ? 431 : 400;
    if (status < 0)
        return sl_http__nomem(c);
    return sl_http__h1_fail(c, status);
}

static void release_request(sl_http_conn_t *c)
{
    sl_http__h1_t *h = &c->h1;
    sl_http__free(c, h->body);
    h->body = NULL;
    h->body_len = h->body_cap = 0;
    sl_http__hdrs_reset(c, &h->hdrs);
}

static int dispatch(sl_http_conn_t *c)
{
    sl_http__h1_t *h = &c->h1;
    sl_http_req_t req;
    memset(&req, 0, sizeof(req));
    int rc = sl_http__req_build(c, &h->hdrs, &req);
    if (rc != 0) {
        release_request(c);
        return rc == SL_EINVAL ? sl_http__h1_fail(c, 400) : sl_http__nomem(c);
    }
    req.stream_id = ++h->next_id;
    req.version = h->req_version;
    req.content_length = h->req_content_length;
    req.body = h->body_len > 0 ? h->body : NULL;
    req.body_len = h->body_len;
    h->cur = H1_WAITING;
    h->cur_id = req.stream_id;
    h->cur_version = h->req_version;
    h->cur_head = req.method == SL_HTTP_METHOD_HEAD;
    h->cur_cors = sl_http__grant(c, &req);
    if (!h->req_keep_alive || c->shutdown)
        h->close_after = true;
    c->cbs.on_request(c->ctx, c, &req);
    release_request(c);
    if (h->parser.upgrade) {
        /* We never switch protocols: what follows is parsed as HTTP. */
        http_parser_init(&h->parser, HTTP_REQUEST);
        h->parser.data = c;
    }
    return 0;
}

/* The next request may be parsed: none in progress, the connection stays
 * open, and the pending output of earlier responses is below its bound
 * (so a burst of pipelined requests cannot queue unbounded output). */
static bool can_parse(const sl_http_conn_t *c)
{
    const sl_http__h1_t *h = &c->h1;
    return h->cur == H1_IDLE && !h->close_after &&
           h->out.bytes_pending < c->cfg.stream_buffer_bytes &&
           sl_outq_segs_free(&h->out) >= H1_SEG_RESERVE + H1_WRITE_SEGS;
}

static int parse(sl_http_conn_t *c, const uint8_t *p, size_t n, size_t *used)
{
    sl_http__h1_t *h = &c->h1;
    *used = 0;
    while (*used < n && can_parse(c)) {
        size_t k = http_parser_execute(&h->parser, &h1_settings, (const char *)p + *used,
                                       n - *used);
        *used += k;
        if (h->msg_done) {
            h->msg_done = false;
            http_parser_pause(&h->parser, 0);
            int rc = dispatch(c);
            if (rc != 0)
                return rc;
            continue;
        }
        enum http_errno e = HTTP_PARSER_ERRNO(&h->parser);
        if (e != HPE_OK || k == 0)
            return parse_error(c, e);
    }
    return 0;
}

static int hold(sl_http_conn_t *c, const uint8_t *data, size_t len)
{
    sl_http__h1_t *h = &c->h1;
    if (len > c->cfg.pipeline_bytes_max - h->backlog_len)
        return SL_ETOOBIG;
    if (h->backlog_len + len > h->backlog_cap) {
        size_t cap = h->backlog_cap == 0 ? 4096 : h->backlog_cap;
        while (cap < h->backlog_len + len)
            cap *= 2;
        if (cap > c->cfg.pipeline_bytes_max)
            cap = c->cfg.pipeline_bytes_max;
        uint8_t *b = sl_http__realloc(c, h->backlog, cap);
        if (b == NULL)
            return sl_http__nomem(c);
        h->backlog = b;
        h->backlog_cap = cap;
    }
    memcpy(h->backlog + h->backlog_len, data, len);
    h->backlog_len += len;
    return 0;
}

static int parse_backlog(sl_http_conn_t *c)
{
    sl_http__h1_t *h = &c->h1;
    size_t used;
    int rc = parse(c, h->backlog, h->backlog_len, &used);
    if (rc != 0)
        return rc;
    memmove(h->backlog, h->backlog + used, h->backlog_len - used);
    h->backlog_len -= used;
    if (h->backlog_len == 0) {
        sl_http__free(c, h->backlog);
        h->backlog = NULL;
        h->backlog_cap = 0;
    }
    return 0;
}

int sl_http__h1_feed(sl_http_conn_t *c, const uint8_t *data, size_t len)
{
    sl_http__h1_t *h = &c->h1;
    if (h->close_after)
        return 0; /* no request after the last one is read */
    if (h->backlog_len > 0) {
        int rc = parse_backlog(c);
        if (rc != 0)
            return rc;
    }
    if (len == 0 || h->close_after)
        return 0;
    if (h->backlog_len == 0) {
        size_t used;
        int rc = parse(c, data, len, &used);
        if (rc != 0)
            return rc;
        data += used;
        len -= used;
    }
    if (len == 0 || h->close_after)
        return 0;
    return hold(c, data, len);
}

/* ---- public operations -------------------------------------------------- */

int sl_http__h1_init(sl_http_conn_t *c)
{
    sl_http__h1_t *h = &c->h1;
    http_parser_init(&h->parser, HTTP_REQUEST);
    h->parser.data = c;
    int rc = sl_outq_init(&h->out, c->cfg.stream_buffer_segs, c->cfg.stream_buffer_bytes);
    if (rc != 0)
        return rc;
    h->out.copy_chunk_bytes = H1_COPY_CHUNK_BYTES;
    return 0;
}

void sl_http__h1_deinit(sl_http_conn_t *c)
{
    sl_http__h1_t *h = &c->h1;
    release_request(c);
    sl_http__hdrs_free(c, &h->hdrs);
    sl_http__free(c, h->backlog);
    h->backlog = NULL;
    h->backlog_len = h->backlog_cap = 0;
    sl_outq_deinit(&h->out);
}

int sl_http__h1_flush(sl_http_conn_t *c)
{
    sl_http__h1_t *h = &c->h1;
    sl_outq_transfer(c->outq, &h->out, SIZE_MAX);
    return h->out.bytes_pending > 0 ? SL_EFULL : 0;
}

bool sl_http__h1_want_close(const sl_http_conn_t *c)
{
    const sl_http__h1_t *h = &c->h1;
    if (h->out.bytes_pending > 0)
        return false;
    return c->dead || (h->close_after && h->cur == H1_IDLE);
}

bool sl_http__h1_want_read(const sl_http_conn_t *c)
{
    return !c->h1.close_after && c->h1.backlog_len == 0;
}

bool sl_http__h1_has_input(const sl_http_conn_t *c)
{
    return c->h1.backlog_len > 0 && can_parse(c);
}

void sl_http__h1_shutdown(sl_http_conn_t *c)
{
    c->h1.close_after = true;
}

int sl_http__h1_respond(sl_http_conn_t *c, uint32_t id, int status, const sl_http_header_t *hdrs,
                        size_t n, const void *body, size_t len)
{
    sl_http__h1_t *h = &c->h1;
    if (h->cur != H1_WAITING || id != h->cur_id)
        return SL_ENOTFOUND;
    bool has_body = sl_http__status_has_body(status);
    int rc = put_head(c, status, hdrs, n, has_body ? (int64_t)len : -1, false);
    if (rc == 0 && has_body && !h->cur_head && len > 0)
        rc = sl_http__put(&h->out, body, len);
    if (rc != 0)
        return broken(c, rc);
    h->cur = H1_IDLE;
    return 0;
}

int sl_http__h1_begin(sl_http_conn_t *c, uint32_t id, int status, const sl_http_header_t *hdrs,
                      size_t n)
{
    sl_http__h1_t *h = &c->h1;
    if (h->cur != H1_WAITING || id != h->cur_id)
        return SL_ENOTFOUND;
    bool body_ok = sl_http__status_has_body(status) && !h->cur_head;
    bool chunked = body_ok && h->cur_version >= 11;
    if (body_ok && !chunked)
        h->close_after = true; /* HTTP/1.0: the body ends with the connection */
    int rc = put_head(c, status, hdrs, n, -1, chunked);
    if (rc != 0)
        return broken(c, rc);
    h->cur = H1_STREAMING;
    h->cur_chunked = chunked;
    h->cur_nobody = !body_ok;
    return 0;
}

static size_t room_of(const sl_http_conn_t *c)
{
    const sl_http__h1_t *h = &c->h1;
    if (sl_outq_segs_free(&h->out) < H1_SEG_RESERVE + H1_WRITE_SEGS)
        return 0;
    uint64_t used = h->out.bytes_pending + (h->cur_chunked ? H1_CHUNK_OVERHEAD : 0);
    uint64_t max = c->cfg.stream_buffer_bytes;
    return used >= max ? 0 : (size_t)(max - used);
}

int sl_http__h1_write(sl_http_conn_t *c, uint32_t id, sl_chunk_t *chunk, const void *data,
                      uint32_t off, size_t len)
{
    sl_http__h1_t *h = &c->h1;
    if (h->cur != H1_STREAMING || id != h->cur_id)
        return SL_ENOTFOUND;
    if (len == 0 || h->cur_nobody)
        return 0;
    if (h->out.bytes_pending > 0 && len > room_of(c))
        return SL_EFULL;
    int rc = 0;
    if (h->cur_chunked) {
        char line[24];
        int k = snprintf(line, sizeof(line), "%zx\r\n", len);
        rc = put_str(h, rc, line, (size_t)k);
    }
    if (rc == 0)
        rc = chunk != NULL ? sl_http__put_ref(&h->out, chunk, off, (uint32_t)len)
                           : sl_http__put(&h->out, data, len);
    if (h->cur_chunked)
        rc = PUT_LIT(h, rc, "\r\n");
    return rc != 0 ? broken(c, rc) : 0;
}

int sl_http__h1_end(sl_http_conn_t *c, uint32_t id)
{
    sl_http__h1_t *h = &c->h1;
    if (h->cur != H1_STREAMING || id != h->cur_id)
        return SL_ENOTFOUND;
    if (h->cur_chunked) {
        int rc = PUT_LIT(h, 0, "0\r\n\r\n");
        if (rc != 0)
            return broken(c, rc);
    }
    h->cur = H1_IDLE;
    return 0;
}

int sl_http__h1_reset(sl_http_conn_t *c, uint32_t id)
{
    sl_http__h1_t *h = &c->h1;
    if (h->cur == H1_IDLE || id != h->cur_id)
        return SL_ENOTFOUND;
    /* The byte stream cannot carry an abort: end the connection after what
     * is already queued. A response not started yet is never started. */
    h->cur = H1_IDLE;
    h->close_after = true;
    c->dead = true;
    return 0;
}

size_t sl_http__h1_room(const sl_http_conn_t *c, uint32_t id)
{
    const sl_http__h1_t *h = &c->h1;
    if (h->cur != H1_STREAMING || id != h->cur_id)
        return 0;
    return room_of(c);
}
