/*
 * HTTP/2 server side on an nghttp2 server session.
 *
 * Input goes through nghttp2_session_mem_recv; requests are assembled per
 * stream (header store + body) and handed to on_request when END_STREAM
 * arrives. Output uses nghttp2_session_send: control frames and HEADERS
 * reach send_cb, which copies them into the caller's outq; DATA frames use
 * NGHTTP2_DATA_FLAG_NO_COPY, so send_data_cb appends the 9-byte frame
 * header as a copy and moves the payload slices from the stream's pending
 * queue into the outq as references. When the outq is full both callbacks
 * return NGHTTP2_ERR_WOULDBLOCK and nghttp2 retries the same bytes on the
 * next flush.
 *
 * nghttp2 enforces the peer's flow-control windows when it asks for DATA;
 * a stream's pending queue is bounded by the window plus a slack and by
 * the stream and connection buffer limits (sl_http_stream_room), so the
 * server never buffers much beyond what the peer allows.
 */
#include "net/net_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "runtime/clock.h"
#include "runtime/limits.h"

enum {
    S_RECV = 0,   /* request arriving */
    S_REJECTED,   /* answered with an error before the request completed */
    S_DISPATCHED, /* passed to on_request, awaiting the response */
    S_STREAMING,  /* streaming response begun */
    S_ENDED,      /* response complete (payload may still be pending) */
};

struct sl_http__h2_stream {
    sl_http__h2_stream_t *prev, *next;
    int32_t id;
    uint8_t state;
    bool head;      /* HEAD request */
    bool nobody;    /* streaming writes are dropped (HEAD, 204, 304) */
    bool eof;       /* no more payload will be queued */
    bool deferred;  /* read_cb returned NGHTTP2_ERR_DEFERRED */
    bool out_ready; /* out is initialised */
    bool head_done; /* the request's header block is complete */
    int reject;     /* status to answer when the header block ends */
    uint32_t cors;  /* the request's origin grant (net/cors.h) */
    int64_t content_length;
    sl_http__hdrs_t hdrs;
    uint8_t *body;
    size_t body_len, body_cap;
    sl_outq_t out; /* payload not yet framed */
};

/* Scratch chunk size for write_copy payload in a stream's queue. */
#define H2_COPY_CHUNK_BYTES 1024
/* A DATA frame is shrunk to fit the outq only if it still carries this
 * much; otherwise it waits for the outq to drain (no 1-byte frames). */
#define H2_FRAME_MIN_BYTES 1024
/* Every HTTP/2 frame starts with a 9-byte header (RFC 9113 4.1). */
#define H2_FRAME_HEADER_BYTES 9
/* Largest DATA payload we produce (the protocol's default frame size). */
#define H2_FRAME_PAYLOAD_MAX 16384
_Static_assert(H2_FRAME_HEADER_BYTES + H2_FRAME_PAYLOAD_MAX < SL_HTTP_OUTQ_MIN_BYTES,
               "a whole DATA frame always fits an empty outq");
/* Response headers (besides :status and content-length). */
#define H2_RESPONSE_HEADERS_MAX 64

static sl_http__h2_stream_t *stream_get(const sl_http_conn_t *c, uint32_t id)
{
    if (id == 0 || id > INT32_MAX || c->h2.fatal)
        return NULL;
    return nghttp2_session_get_stream_user_data(c->h2.session, (int32_t)id);
}

static void release_body(sl_http_conn_t *c, sl_http__h2_stream_t *s)
{
    c->h2.body_bytes -= s->body_cap;
    sl_http__free(c, s->body);
    s->body = NULL;
    s->body_len = s->body_cap = 0;
}

static void drop_pending(sl_http_conn_t *c, sl_http__h2_stream_t *s)
{
    if (!s->out_ready)
        return;
    c->h2.pending_bytes -= s->out.bytes_pending;
    sl_outq_consume(&s->out, (size_t)s->out.bytes_pending);
}

static void stream_free(sl_http_conn_t *c, sl_http__h2_stream_t *s)
{
    if (!s->head_done)
        c->h2.heads_pending--;
    if (s->prev != NULL)
        s->prev->next = s->next;
    else
        c->h2.streams = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    release_body(c, s);
    sl_http__hdrs_free(c, &s->hdrs);
    if (s->out_ready) {
        drop_pending(c, s);
        sl_outq_deinit(&s->out);
    }
    sl_http__free(c, s);
}

static void resume(sl_http_conn_t *c, sl_http__h2_stream_t *s)
{
    if (s->deferred) {
        s->deferred = false;
        nghttp2_session_resume_data(c->h2.session, s->id);
    }
}

/* ---- output callbacks ------------------------------------------------- */

static ssize_t send_cb(nghttp2_session *session, const uint8_t *data, size_t length, int flags,
                       void *ud)
{
    sl_http_conn_t *c = ud;
    uint64_t room = sl_outq_room(c->outq);
    size_t n = length < room ? length : (size_t)room;
    int rc = n == 0 ? SL_EFULL : sl_outq_append_copy(c->outq, data, n);
    if (rc == SL_EFULL) {
        c->h2.blocked = true;
        return NGHTTP2_ERR_WOULDBLOCK;
    }
    if (rc != 0)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    if (n < length)
        c->h2.blocked = true;
    return (ssize_t)n;
}

/* Shrinks a DATA frame to what the outq takes now (bytes and segments),
 * unless that leaves a tiny frame: then the frame waits for the outq. */
static size_t fit_outq(const sl_http_conn_t *c, const sl_http__h2_stream_t *s, size_t n)
{
    const sl_outq_t *q = c->outq;
    uint64_t room = sl_outq_room(q);
    uint32_t segs = sl_outq_segs_free(q);
    if (room <= H2_FRAME_HEADER_BYTES || segs < 2)
        return n;
    size_t fit = (size_t)(room - H2_FRAME_HEADER_BYTES);
    size_t seg_fit = sl_outq_head_bytes(&s->out, segs - 1);
    if (fit > seg_fit)
        fit = seg_fit;
    if (fit >= n || fit < H2_FRAME_MIN_BYTES)
        return n;
    return fit;
}

static ssize_t read_cb(nghttp2_session *session, int32_t id, uint8_t *buf, size_t length,
                       uint32_t *data_flags, nghttp2_data_source *source, void *ud)
{
    sl_http_conn_t *c = ud;
    sl_http__h2_stream_t *s = source->ptr;
    uint64_t pending = s->out.bytes_pending;
    if (pending == 0) {
        if (s->eof) {
            *data_flags |= NGHTTP2_DATA_FLAG_EOF;
            return 0;
        }
        s->deferred = true; /* sl_http_stream_write/end resumes it */
        return NGHTTP2_ERR_DEFERRED;
    }
    /* nghttp2 already caps length at 16 KiB; the cap here keeps a frame
     * (and its wait for outq room) bounded whatever the peer's
     * SETTINGS_MAX_FRAME_SIZE. */
    size_t n = pending < length ? (size_t)pending : length;
    if (n > H2_FRAME_PAYLOAD_MAX)
        n = H2_FRAME_PAYLOAD_MAX;
    n = fit_outq(c, s, n);
    *data_flags |= NGHTTP2_DATA_FLAG_NO_COPY;
    if (n == pending && s->eof)
        *data_flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

static int send_data_cb(nghttp2_session *session, nghttp2_frame *frame, const uint8_t *framehd,
                        size_t length, nghttp2_data_source *source, void *ud)
{
    sl_http_conn_t *c = ud;
    sl_http__h2_stream_t *s = source->ptr;
    sl_outq_t *q = c->outq;
    /* No select_padding callback is installed, so frames carry no padding. */
    sl_assert(frame->data.padlen == 0);
    uint32_t segs = 1 + sl_outq_segs_for(&s->out, length);
    if (sl_outq_room(q) < H2_FRAME_HEADER_BYTES + length || sl_outq_segs_free(q) < segs) {
        c->h2.blocked = true;
        return NGHTTP2_ERR_WOULDBLOCK; /* nothing written; retried as is */
    }
    int rc = sl_outq_append_copy(q, framehd, H2_FRAME_HEADER_BYTES);
    if (rc != 0)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    size_t moved = sl_outq_transfer(q, &s->out, length);
    c->h2.pending_bytes -= moved;
    /* A partial frame in the byte stream cannot be repaired. */
    return moved == length ? 0 : NGHTTP2_ERR_CALLBACK_FAILURE;
}

/* ---- responses -------------------------------------------------------- */

static nghttp2_nv make_nv(const char *name, size_t nlen, const char *value, size_t vlen)
{
    return (nghttp2_nv){(uint8_t *)(uintptr_t)name, (uint8_t *)(uintptr_t)value, nlen, vlen,
                        NGHTTP2_NV_FLAG_NONE};
}

static int ensure_out(sl_http_conn_t *c, sl_http__h2_stream_t *s)
{
    if (s->out_ready)
        return 0;
    int rc = sl_outq_init(&s->out, c->cfg.stream_buffer_segs, UINT64_MAX);
    if (rc != 0)
        return rc;
    s->out.copy_chunk_bytes = H2_COPY_CHUNK_BYTES;
    s->out_ready = true;
    return 0;
}

/* Submits HEADERS (and, through read_cb, DATA) for s. A complete response
 * queues body as the stream's whole payload; a streaming one starts empty. */
static int submit(sl_http_conn_t *c, sl_http__h2_stream_t *s, int status,
                  const sl_http_header_t *hdrs, size_t n, const void *body, size_t len,
                  bool streaming)
{
    if (n > H2_RESPONSE_HEADERS_MAX)
        return SL_EINVAL;
    nghttp2_nv nva[H2_RESPONSE_HEADERS_MAX + SL_HTTP__STD_HEADERS_MAX + 2];
    size_t k = 0;
    char st[8], cl[24];
    snprintf(st, sizeof(st), "%03d", status);
    nva[k++] = make_nv(":status", 7, st, 3);
    /* Every response, errors and fail-safe answers included (net/cors.h).
     * Their strings are static or the configuration's, alive until exit,
     * so nghttp2 need not copy them (it copies the caller's). */
    sl_http_header_t std[SL_HTTP__STD_HEADERS_MAX];
    size_t nstd = sl_http__std_headers(c, s->cors, std);
    for (size_t i = 0; i < nstd; i++) {
        nva[k] = make_nv(std[i].name, std[i].name_len, std[i].value, std[i].value_len);
        nva[k++].flags = NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE;
    }
    for (size_t i = 0; i < n; i++)
        nva[k++] = make_nv(hdrs[i].name, hdrs[i].name_len, hdrs[i].value, hdrs[i].value_len);
    bool has_body = sl_http__status_has_body(status);
    if (!streaming && has_body) {
        int w = snprintf(cl, sizeof(cl), "%zu", len);
        nva[k++] = make_nv("content-length", 14, cl, (size_t)w);
    }
    bool with_data = streaming || (has_body && !s->head && len > 0);
    if (with_data) {
        int rc = ensure_out(c, s);
        if (rc == 0 && !streaming)
            rc = sl_http__put(&s->out, body, len);
        if (rc != 0)
            return rc;
        c->h2.pending_bytes += s->out.bytes_pending;
    }
    nghttp2_data_provider prd = {.source.ptr = s, .read_callback = read_cb};
    int rv = nghttp2_submit_response(c->h2.session, s->id, nva, k, with_data ? &prd : NULL);
    if (rv != 0) {
        drop_pending(c, s);
        return rv == NGHTTP2_ERR_NOMEM ? sl_http__nomem(c) : SL_EINVAL;
    }
    s->eof = !streaming;
    s->nobody = streaming && (!has_body || s->head);
    s->state = streaming ? S_STREAMING : S_ENDED;
    return 0;
}

static const char *reject_message(int status)
{
    switch (status) {
    case 413: return "request body too large";
    case 431: return "request header fields too large";
    default: return "malformed HTTP request";
    }
}

/* Answers a request that cannot be served before it completes. Once the
 * response's END_STREAM is out, on_frame_send resets the stream with
 * NO_ERROR so the client stops sending the rest (RFC 9113 8.1). */
static void reject(sl_http_conn_t *c, sl_http__h2_stream_t *s, int status)
{
    s->state = S_REJECTED;
    release_body(c, s);
    char body[160];
    const char *code = status == 400 ? "bad_request" : "too_large";
    int len = sl_http_error_json(body, sizeof(body), code, reject_message(status));
    static const sl_http_header_t ct = SL_HTTP_HEADER_LIT("content-type", "application/json");
    if (len < 0 || submit(c, s, status, &ct, 1, body, (size_t)len, false) != 0)
        nghttp2_submit_rst_stream(c->h2.session, NGHTTP2_FLAG_NONE, s->id,
                                  NGHTTP2_INTERNAL_ERROR);
    s->state = S_REJECTED; /* submit marked it ended; keep it quiet */
}

/* ---- input callbacks -------------------------------------------------- */

static int on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *ud)
{
    sl_http_conn_t *c = ud;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    sl_http__h2_stream_t *s = sl_http__calloc(c, 1, sizeof(*s));
    if (s == NULL)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* RST_STREAM this one */
    s->id = frame->hd.stream_id;
    s->content_length = -1;
    s->next = c->h2.streams;
    if (s->next != NULL)
        s->next->prev = s;
    c->h2.streams = s;
    c->h2.heads_pending++; /* until headers_done: the header timeout runs */
    nghttp2_session_set_stream_user_data(session, s->id, s);
    return 0;
}

static int put_pseudo(sl_http_conn_t *c, sl_http__h2_stream_t *s, const uint8_t *name,
                      size_t nlen, const uint8_t *value, size_t vlen)
{
    sl_http__span_t *span = NULL;
    if (nlen == 7 && memcmp(name, ":method", 7) == 0)
        span = &s->hdrs.method;
    else if (nlen == 5 && memcmp(name, ":path", 5) == 0)
        span = &s->hdrs.target;
    else if (nlen == 10 && memcmp(name, ":authority", 10) == 0)
        span = &s->hdrs.authority;
    else if (nlen == 7 && memcmp(name, ":scheme", 7) == 0)
        span = &s->hdrs.scheme;
    if (span == NULL) /* other pseudo-headers: counted, not kept */
        return sl_http__hdrs_put(c, &s->hdrs, (const char *)value, vlen, false, true);
    return sl_http__hdrs_put_span(c, &s->hdrs, span, (const char *)value, vlen, true);
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
                     size_t nlen, const uint8_t *value, size_t vlen, uint8_t flags, void *ud)
{
    sl_http_conn_t *c = ud;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0; /* trailers are ignored */
    sl_http__h2_stream_t *s = stream_get(c, (uint32_t)frame->hd.stream_id);
    if (s == NULL || s->reject != 0)
        return 0;
    int rc;
    if (nlen > 0 && name[0] == ':')
        rc = put_pseudo(c, s, name, nlen, value, vlen);
    else
        rc = sl_http__hdrs_add(c, &s->hdrs, (const char *)name, nlen, (const char *)value, vlen);
    if (rc == SL_ETOOBIG)
        s->reject = 431;
    else if (rc != 0)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    return 0;
}

static void headers_done(sl_http_conn_t *c, sl_http__h2_stream_t *s)
{
    if (!s->head_done) {
        s->head_done = true;
        c->h2.heads_pending--;
    }
    if (s->reject != 0) {
        reject(c, s, s->reject);
        return;
    }
    const sl_http__hdrs_t *h = &s->hdrs;
    s->head = h->method.set && h->method.len == 4 && memcmp(h->buf + h->method.off, "HEAD", 4) == 0;
    for (uint32_t i = 0; i < h->count; i++) {
        const sl_http__hent_t *e = &h->ent[i];
        if (e->name_len == 14 && memcmp(h->buf + e->name_off, "content-length", 14) == 0) {
            /* nghttp2 already checked it is all digits (and below 2^63);
             * the value is still compared unsigned and saturated, so no
             * length can wrap past the early 413. */
            errno = 0;
            unsigned long long v = strtoull(h->buf + e->value_off, NULL, 10);
            if (errno != 0 || v > c->cfg.max_body_bytes) {
                reject(c, s, 413);
                return;
            }
            s->content_length = (int64_t)v;
            break;
        }
    }
}

static void request_done(sl_http_conn_t *c, sl_http__h2_stream_t *s)
{
    if (s->state != S_RECV)
        return;
    sl_http_req_t req;
    memset(&req, 0, sizeof(req));
    int rc = sl_http__req_build(c, &s->hdrs, &req);
    if (rc == SL_EINVAL) {
        reject(c, s, 400);
        return;
    }
    if (rc != 0) {
        s->state = S_REJECTED;
        nghttp2_submit_rst_stream(c->h2.session, NGHTTP2_FLAG_NONE, s->id,
                                  NGHTTP2_INTERNAL_ERROR);
        return;
    }
    req.stream_id = (uint32_t)s->id;
    req.version = 20;
    req.content_length = s->content_length;
    req.body = s->body_len > 0 ? s->body : NULL;
    req.body_len = s->body_len;
    s->cors = sl_http__grant(c, &req);
    s->state = S_DISPATCHED;
    c->cbs.on_request(c->ctx, c, &req);
    /* Streams are closed only inside nghttp2 calls, never by a submit from
     * the callback, so s is still valid. */
    release_body(c, s);
    sl_http__hdrs_free(c, &s->hdrs);
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *ud)
{
    sl_http_conn_t *c = ud;
    if (frame->hd.type == NGHTTP2_PING && (frame->hd.flags & NGHTTP2_FLAG_ACK))
        c->h2.pings_acked++;
    if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA)
        return 0;
    sl_http__h2_stream_t *s = stream_get(c, (uint32_t)frame->hd.stream_id);
    if (s == NULL)
        return 0;
    if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST)
        headers_done(c, s);
    if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)
        request_done(c, s);
    return 0;
}

/* Buffers request body bytes, bounded per stream (413) and per connection
 * (REFUSED_STREAM: the client may retry; nothing was processed). */
static int on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t id,
                         const uint8_t *data, size_t len, void *ud)
{
    sl_http_conn_t *c = ud;
    sl_http__h2_stream_t *s = stream_get(c, (uint32_t)id);
    if (s == NULL || s->state != S_RECV)
        return 0;
    if (len > c->cfg.max_body_bytes - s->body_len) {
        reject(c, s, 413);
        return 0;
    }
    if (s->body_len + len > s->body_cap) {
        size_t cap = s->body_cap == 0 ? 4096 : s->body_cap * 2;
        if (s->content_length > 0 && (size_t)s->content_length > cap)
            cap = (size_t)s->content_length;
        while (cap < s->body_len + len)
            cap *= 2;
        if (cap > c->cfg.max_body_bytes)
            cap = c->cfg.max_body_bytes;
        uint8_t *b = NULL;
        /* Refused (REFUSED_STREAM: safe to retry) at the per-connection
         * bound and while the memory budget is over (runtime/budget.h). */
        if (c->h2.body_bytes - s->body_cap + cap <= c->cfg.conn_body_bytes_max && !sl_budget_over())
            b = sl_http__realloc(c, s->body, cap);
        if (b == NULL) {
            if (sl_budget_over())
                sl_budget_count_refused_body();
            s->state = S_REJECTED;
            release_body(c, s);
            nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, id, NGHTTP2_REFUSED_STREAM);
            return 0;
        }
        c->h2.body_bytes += cap - s->body_cap;
        s->body = b;
        s->body_cap = cap;
    }
    memcpy(s->body + s->body_len, data, len);
    s->body_len += len;
    return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t id, uint32_t error_code, void *ud)
{
    sl_http_conn_t *c = ud;
    sl_http__h2_stream_t *s = stream_get(c, (uint32_t)id);
    if (s == NULL)
        return 0;
    bool notify = s->state == S_DISPATCHED || s->state == S_STREAMING;
    nghttp2_session_set_stream_user_data(session, id, NULL);
    stream_free(c, s);
    if (notify && c->cbs.on_stream_close != NULL)
        c->cbs.on_stream_close(c->ctx, c, (uint32_t)id, error_code);
    return 0;
}

static int on_frame_send(nghttp2_session *session, const nghttp2_frame *frame, void *ud)
{
    bool ends = (frame->hd.type == NGHTTP2_DATA || frame->hd.type == NGHTTP2_HEADERS) &&
                (frame->hd.flags & NGHTTP2_FLAG_END_STREAM);
    if (ends && nghttp2_session_get_stream_remote_close(session, frame->hd.stream_id) == 0)
        nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                                  NGHTTP2_NO_ERROR);
    return 0;
}

/* ---- abuse accounting ------------------------------------------------- */

/* Counts one frame of a rate-limited kind in the current one-second
 * window. Returns true when the window's bound is exceeded. */
static bool over_rate(sl_http_conn_t *c, uint32_t *count, uint32_t max)
{
    uint64_t now = sl_clock_now_ns();
    if (now - c->h2.window_start_ns >= SL_NS_PER_S) {
        c->h2.window_start_ns = now;
        c->h2.rst_in_window = 0;
        c->h2.control_in_window = 0;
    }
    return ++*count > max;
}

/* Tracks the header block being received: frames and bytes. nghttp2 only
 * delivers a block's fields once it is complete, and a client that sends
 * CONTINUATIONs forever (empty ones included) would cost decoding work
 * and memory without end. */
static bool header_block_abuse(sl_http_conn_t *c, const nghttp2_frame_hd *hd)
{
    if (hd->type == NGHTTP2_HEADERS) {
        c->h2.block_frames = 0;
        c->h2.block_bytes = hd->length;
    } else {
        c->h2.block_frames++;
        c->h2.block_bytes += hd->length;
    }
    uint64_t bytes_max = 2ull * c->cfg.max_header_bytes + H2_FRAME_PAYLOAD_MAX;
    return c->h2.block_frames > SL_H2_CONTINUATIONS_MAX || c->h2.block_bytes > bytes_max;
}

/* Runs for every frame header received, before its payload. Refusing here
 * stops nghttp2 at once; sl_http__h2_feed then queues
 * GOAWAY(ENHANCE_YOUR_CALM). */
static int on_begin_frame(nghttp2_session *session, const nghttp2_frame_hd *hd, void *ud)
{
    sl_http_conn_t *c = ud;
    sl_http_abuse_t a = SL_HTTP_ABUSE_NONE;
    switch (hd->type) {
    case NGHTTP2_HEADERS:
    case NGHTTP2_CONTINUATION:
        if (header_block_abuse(c, hd))
            a = SL_HTTP_ABUSE_CONTINUATION_FLOOD;
        break;
    case NGHTTP2_RST_STREAM:
        if (over_rate(c, &c->h2.rst_in_window, SL_H2_RST_PER_S_MAX))
            a = SL_HTTP_ABUSE_RESET_FLOOD;
        break;
    case NGHTTP2_PING:
    case NGHTTP2_SETTINGS:
        if (hd->flags & NGHTTP2_FLAG_ACK)
            break;
        /* fall through */
    case NGHTTP2_PRIORITY:
        if (over_rate(c, &c->h2.control_in_window, SL_H2_CONTROL_PER_S_MAX))
            a = SL_HTTP_ABUSE_CONTROL_FLOOD;
        break;
    default:
        break;
    }
    if (a == SL_HTTP_ABUSE_NONE)
        return 0;
    c->h2.abuse = (uint8_t)a;
    return NGHTTP2_ERR_CALLBACK_FAILURE;
}

bool sl_http__h2_body_pending(const sl_http_conn_t *c)
{
    for (const sl_http__h2_stream_t *s = c->h2.streams; s != NULL; s = s->next)
        if (s->state == S_RECV && s->head_done)
            return true;
    return false;
}

int sl_http__h2_ping(sl_http_conn_t *c)
{
    static const uint8_t opaque[8] = {'s', 'l', 'u', 'i', 'c', 'e', 0, 1};
    int rv = nghttp2_submit_ping(c->h2.session, NGHTTP2_FLAG_NONE, opaque);
    return rv == 0 ? 0 : sl_http__nomem(c);
}

/* ---- allocator glue --------------------------------------------------- */

static void *mem_malloc(size_t size, void *ud)
{
    return sl_http__alloc(ud, size);
}

static void mem_free(void *p, void *ud)
{
    sl_http__free(ud, p);
}

static void *mem_calloc(size_t n, size_t size, void *ud)
{
    return sl_http__calloc(ud, n, size);
}

static void *mem_realloc(void *p, size_t size, void *ud)
{
    return sl_http__realloc(ud, p, size);
}

/* ---- lifecycle -------------------------------------------------------- */

static int new_session(sl_http_conn_t *c)
{
    nghttp2_session_callbacks *cbs;
    if (nghttp2_session_callbacks_new(&cbs) != 0)
        return -ENOMEM;
    nghttp2_session_callbacks_set_send_callback(cbs, send_cb);
    nghttp2_session_callbacks_set_send_data_callback(cbs, send_data_cb);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
    nghttp2_session_callbacks_set_on_begin_frame_callback(cbs, on_begin_frame);
    nghttp2_option *opt = NULL;
    if (nghttp2_option_new(&opt) != 0) {
        nghttp2_session_callbacks_del(cbs);
        return -ENOMEM;
    }
    /* A peer that floods PINGs or SETTINGS without reading the ACKs is
     * cut off when this many ACKs wait unsent (NGHTTP2_ERR_FLOODED). */
    nghttp2_option_set_max_outbound_ack(opt, SL_H2_OUTBOUND_ACK_MAX);
    nghttp2_option_set_max_settings(opt, SL_H2_SETTINGS_ENTRIES_MAX);
    nghttp2_mem mem = {c, mem_malloc, mem_free, mem_calloc, mem_realloc};
    int rv = nghttp2_session_server_new3(&c->h2.session, cbs, c, opt, &mem);
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cbs);
    if (rv != 0) {
        c->h2.session = NULL;
        return rv == NGHTTP2_ERR_NOMEM ? sl_http__nomem(c) : -EINVAL;
    }
    return 0;
}

int sl_http__h2_init(sl_http_conn_t *c)
{
    /* Until the session is fully set up every operation sees it fatal. */
    c->h2.fatal = true;
    int rc = new_session(c);
    if (rc != 0)
        return rc;
    /* MAX_HEADER_LIST_SIZE counts 32 bytes per field on top of names and
     * values (RFC 9113 6.5.2); ours counts names and values only. */
    uint64_t list = (uint64_t)c->cfg.max_header_bytes + 32ull * c->cfg.max_header_count;
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, c->cfg.max_concurrent_streams},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, c->cfg.stream_window_bytes},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, (uint32_t)list},
    };
    int rv = nghttp2_submit_settings(c->h2.session, NGHTTP2_FLAG_NONE, iv, SL_ARRAY_LEN(iv));
    if (rv == 0)
        rv = nghttp2_session_set_local_window_size(c->h2.session, NGHTTP2_FLAG_NONE, 0,
                                                   (int32_t)c->cfg.conn_window_bytes);
    if (rv != 0)
        return rv == NGHTTP2_ERR_NOMEM ? sl_http__nomem(c) : -EINVAL;
    c->h2.fatal = false;
    return 0;
}

void sl_http__h2_deinit(sl_http_conn_t *c)
{
    /* nghttp2_session_del calls no stream callback; our streams go after. */
    if (c->h2.session != NULL)
        nghttp2_session_del(c->h2.session);
    c->h2.session = NULL;
    while (c->h2.streams != NULL)
        stream_free(c, c->h2.streams);
}

int sl_http__h2_feed(sl_http_conn_t *c, const uint8_t *data, size_t len)
{
    if (c->h2.fatal)
        return SL_EPROTO;
    if (len == 0)
        return 0;
    ssize_t rv = nghttp2_session_mem_recv(c->h2.session, data, len);
    if (rv >= 0)
        return 0;
    if (rv == NGHTTP2_ERR_NOMEM) {
        c->h2.fatal = true;
        return sl_http__nomem(c);
    }
    /* Bad client magic, flooding, a failed callback: nghttp2 stopped
     * reading. Queue GOAWAY so the peer learns why; abuse we detected
     * (on_begin_frame) is told to calm down like nghttp2's own floods. */
    if (rv == NGHTTP2_ERR_FLOODED && c->h2.abuse == SL_HTTP_ABUSE_NONE)
        c->h2.abuse = SL_HTTP_ABUSE_ACK_FLOOD;
    /* NGHTTP2_ERR_TOO_MANY_CONTINUATIONS exists only in patched builds;
     * its value is stable. */
    if (rv == -905 && c->h2.abuse == SL_HTTP_ABUSE_NONE)
        c->h2.abuse = SL_HTTP_ABUSE_CONTINUATION_FLOOD;
    uint32_t code = c->h2.abuse != SL_HTTP_ABUSE_NONE       ? NGHTTP2_ENHANCE_YOUR_CALM
                    : rv == NGHTTP2_ERR_CALLBACK_FAILURE ? NGHTTP2_INTERNAL_ERROR
                                                         : NGHTTP2_PROTOCOL_ERROR;
    if (nghttp2_session_terminate_session(c->h2.session, code) != 0)
        c->h2.fatal = true;
    return SL_EPROTO;
}

int sl_http__h2_flush(sl_http_conn_t *c)
{
    if (c->h2.fatal)
        return SL_EPROTO;
    c->h2.blocked = false;
    int rv = nghttp2_session_send(c->h2.session);
    if (rv != 0) {
        c->h2.fatal = true;
        return rv == NGHTTP2_ERR_NOMEM ? sl_http__nomem(c) : SL_EPROTO;
    }
    return c->h2.blocked ? SL_EFULL : 0;
}

bool sl_http__h2_want_close(const sl_http_conn_t *c)
{
    if (c->h2.fatal)
        return true;
    return !nghttp2_session_want_read(c->h2.session) &&
           !nghttp2_session_want_write(c->h2.session);
}

bool sl_http__h2_want_read(const sl_http_conn_t *c)
{
    return !c->h2.fatal && nghttp2_session_want_read(c->h2.session);
}

void sl_http__h2_shutdown(sl_http_conn_t *c)
{
    nghttp2_session *s = c->h2.session;
    if (c->h2.fatal)
        return;
    nghttp2_submit_goaway(s, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(s),
                          NGHTTP2_NO_ERROR, NULL, 0);
}

int sl_http__h2_respond(sl_http_conn_t *c, uint32_t id, int status, const sl_http_header_t *hdrs,
                        size_t n, const void *body, size_t len)
{
    sl_http__h2_stream_t *s = stream_get(c, id);
    if (s == NULL || s->state != S_DISPATCHED)
        return SL_ENOTFOUND;
    return submit(c, s, status, hdrs, n, body, len, false);
}

int sl_http__h2_begin(sl_http_conn_t *c, uint32_t id, int status, const sl_http_header_t *hdrs,
                      size_t n)
{
    sl_http__h2_stream_t *s = stream_get(c, id);
    if (s == NULL || s->state != S_DISPATCHED)
        return SL_ENOTFOUND;
    return submit(c, s, status, hdrs, n, NULL, 0, true);
}

static uint64_t sub0(uint64_t a, uint64_t b)
{
    return a > b ? a - b : 0;
}

static size_t room_of(const sl_http_conn_t *c, const sl_http__h2_stream_t *s)
{
    if (sl_outq_segs_free(&s->out) == 0)
        return 0;
    uint64_t pending = s->out.bytes_pending;
    uint64_t room = sub0(c->cfg.stream_buffer_bytes, pending);
    uint64_t conn_room = sub0(c->cfg.conn_buffer_bytes, c->h2.pending_bytes);
    if (room > conn_room)
        room = conn_room;
    int32_t sw = nghttp2_session_get_stream_remote_window_size(c->h2.session, s->id);
    int32_t cw = nghttp2_session_get_remote_window_size(c->h2.session);
    int64_t win = sw < cw ? sw : cw;
    if (win < 0)
        win = 0;
    uint64_t flow = sub0((uint64_t)win + SL_HTTP_H2_WINDOW_SLACK_BYTES, pending);
    if (room > flow)
        room = flow;
    return (size_t)room;
}

int sl_http__h2_write(sl_http_conn_t *c, uint32_t id, sl_chunk_t *chunk, const void *data,
                      uint32_t off, size_t len)
{
    sl_http__h2_stream_t *s = stream_get(c, id);
    if (s == NULL || s->state != S_STREAMING)
        return SL_ENOTFOUND;
    if (len == 0 || s->nobody)
        return 0;
    if (s->out.bytes_pending > 0 && len > room_of(c, s))
        return SL_EFULL;
    int rc = chunk != NULL ? sl_outq_append_ref(&s->out, chunk, off, (uint32_t)len)
                           : sl_outq_append_copy(&s->out, data, len);
    if (rc != 0)
        return rc;
    c->h2.pending_bytes += len;
    resume(c, s);
    return 0;
}

int sl_http__h2_end(sl_http_conn_t *c, uint32_t id)
{
    sl_http__h2_stream_t *s = stream_get(c, id);
    if (s == NULL || s->state != S_STREAMING)
        return SL_ENOTFOUND;
    s->eof = true;
    s->state = S_ENDED;
    resume(c, s);
    return 0;
}

int sl_http__h2_reset(sl_http_conn_t *c, uint32_t id)
{
    sl_http__h2_stream_t *s = stream_get(c, id);
    if (s == NULL || (s->state != S_DISPATCHED && s->state != S_STREAMING && s->state != S_ENDED))
        return SL_ENOTFOUND;
    /* Quiet: the caller asked for it, on_stream_close must not report it.
     * Pending payload stays until the stream closes: a DATA frame already
     * handed to nghttp2 may still have to be completed before RST_STREAM. */
    s->state = S_REJECTED;
    int rv = nghttp2_submit_rst_stream(c->h2.session, NGHTTP2_FLAG_NONE, s->id,
                                       NGHTTP2_INTERNAL_ERROR);
    return rv == 0 ? 0 : sl_http__nomem(c);
}

size_t sl_http__h2_room(const sl_http_conn_t *c, uint32_t id)
{
    const sl_http__h2_stream_t *s = stream_get(c, id);
    if (s == NULL || s->state != S_STREAMING)
        return 0;
    if (s->nobody)
        return c->cfg.stream_buffer_bytes;
    return room_of(c, s);
}
