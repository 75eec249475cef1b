/*
 * The driver the HTTP/1.1 and HTTP/2 harnesses share: one server
 * connection of net/http fed the fuzzer's bytes in chunks, answered the way
 * the connection actor answers (complete responses, errors, SSE-style
 * streams left open, deferred answers, resets), with its output drained as
 * if the socket took everything. Input layout: byte 0 seeds the PRNG that
 * picks chunk sizes and answer kinds; the rest is the client's bytes
 * (after `prefix`, which the HTTP/2 harness uses for the preface).
 *
 * Checks besides the sanitizers: every string of a request is inside its
 * buffer and NUL-terminated as http.h promises, answers to a live stream
 * never fail for a reason other than the documented ones, and a destroyed
 * connection gives back every byte of its counted allocator.
 */
#ifndef SL_TESTS_FUZZ_HTTP_DRIVER_H
#define SL_TESTS_FUZZ_HTTP_DRIVER_H

#include <errno.h>
#include <string.h>
#include <sys/uio.h>

#include "net/http.h"
#include "runtime/base.h"
#include "runtime/buf.h"

#include "tests/fuzz/fuzz_util.h"

#define FZ_HTTP_OPEN_MAX 32

typedef struct fz_http {
    sl_outq_t q;
    sl_http_conn_t *conn;
    fz_rng_t rng;
    uint32_t deferred[FZ_HTTP_OPEN_MAX]; /* awaiting an answer */
    uint32_t ndeferred;
    uint32_t streaming[FZ_HTTP_OPEN_MAX]; /* begun, not ended */
    uint32_t nstreaming;
    uint64_t requests;
} fz_http_t;

static const sl_http_header_t fz_json_hdr[] = {
    SL_HTTP_HEADER_LIT("content-type", "application/json")};
static const sl_http_header_t fz_sse_hdr[] = {
    SL_HTTP_HEADER_LIT("content-type", "text/event-stream")};

static void fz_list_drop(uint32_t *ids, uint32_t *n, uint32_t id)
{
    for (uint32_t i = 0; i < *n; i++) {
        if (ids[i] == id) {
            ids[i] = ids[--*n];
            return;
        }
    }
}

/* An answer call on a stream the driver believes live may only fail for
 * reasons a peer can cause (it reset the stream) or memory. */
static void fz_answer_rc(int rc)
{
    FZ_CHECK(rc == 0 || rc == SL_ENOTFOUND || rc == SL_ENOMEM || rc == -ENOMEM ||
             rc == SL_EFULL || rc == SL_ECLOSED);
}

static void fz_check_str(sl_http_str_t s)
{
    if (s.ptr == NULL)
        return;
    fz_touch(s.ptr, s.len);
    FZ_CHECK(s.ptr[s.len] == '\0');
}

static void fz_check_req(const sl_http_req_t *req)
{
    fz_check_str(req->method_raw);
    fz_check_str(req->target);
    fz_check_str(req->path);
    fz_check_str(req->query);
    fz_check_str(req->host);
    fz_check_str(req->content_type);
    fz_check_str(req->accept);
    fz_check_str(req->last_event_id);
    fz_check_str(req->event_type);
    fz_check_str(req->durable);
    for (uint32_t i = 0; i < req->header_count; i++) {
        fz_touch(req->headers[i].name, req->headers[i].name_len);
        fz_touch(req->headers[i].value, req->headers[i].value_len);
    }
    FZ_CHECK(req->body_len == 0 || req->body != NULL);
    fz_touch(req->body, req->body_len);
    if (req->content_length >= 0)
        FZ_CHECK((uint64_t)req->content_length == req->body_len);
    /* What the API layer does with every request's query and path. */
    sl_http_str_t v;
    char out[256];
    if (req->query.ptr != NULL && sl_http_query_param(req->query, "from", &v))
        sl_http_pct_decode(v.ptr, v.len, out, sizeof out, SL_HTTP_PCT_PLUS_SPACE);
    if (req->path.ptr != NULL)
        sl_http_pct_decode(req->path.ptr, req->path.len, out, sizeof out, 0);
}

/* Starts a stream and writes one event; ends it now or leaves it open. */
static void fz_stream(fz_http_t *f, uint32_t sid, bool end)
{
    int rc = sl_http_stream_begin(f->conn, sid, 200, fz_sse_hdr, 1);
    fz_answer_rc(rc);
    if (rc != 0)
        return;
    static const char ev[] = "id: 1\nevent: message\ndata: x\n\n";
    fz_answer_rc(sl_http_stream_write_copy(f->conn, sid, ev, sizeof ev - 1));
    if (end) {
        fz_answer_rc(sl_http_stream_end(f->conn, sid));
    } else if (f->nstreaming < FZ_HTTP_OPEN_MAX) {
        f->streaming[f->nstreaming++] = sid;
    } else {
        fz_answer_rc(sl_http_stream_reset(f->conn, sid));
    }
}

static void fz_answer(fz_http_t *f, uint32_t sid, uint32_t kind)
{
    static const char body[] = "{\"ok\":true}";
    switch (kind % 6) {
    case 0:
        fz_answer_rc(sl_http_respond(f->conn, sid, 200, fz_json_hdr, 1, body, sizeof body - 1));
        break;
    case 1:
        fz_answer_rc(sl_http_respond_error(f->conn, sid, 404, "not_found", "no such thing",
                                           NULL, 0));
        break;
    case 2:
        fz_stream(f, sid, true);
        break;
    case 3:
        fz_stream(f, sid, false);
        break;
    case 4:
        fz_answer_rc(sl_http_stream_reset(f->conn, sid));
        break;
    default:
        fz_answer_rc(sl_http_respond(f->conn, sid, 204, NULL, 0, NULL, 0));
        break;
    }
}

static void fz_on_request(void *ctx, sl_http_conn_t *conn, const sl_http_req_t *req)
{
    fz_http_t *f = ctx;
    fz_check_req(req);
    f->requests++;
    uint32_t r = fz_next(&f->rng);
    if (r % 4 == 0 && f->ndeferred < FZ_HTTP_OPEN_MAX) {
        f->deferred[f->ndeferred++] = req->stream_id;
        return;
    }
    fz_answer(f, req->stream_id, r >> 8);
}

static void fz_on_stream_close(void *ctx, sl_http_conn_t *conn, uint32_t stream_id,
                               uint32_t error_code)
{
    fz_http_t *f = ctx;
    fz_list_drop(f->deferred, &f->ndeferred, stream_id);
    fz_list_drop(f->streaming, &f->nstreaming, stream_id);
}

/* Flushes into the outq and drains it, as the socket would. */
static int fz_pump(fz_http_t *f)
{
    int rc = 0;
    for (int guard = 0; guard < 10000; guard++) {
        rc = sl_http_conn_flush(f->conn);
        while (f->q.bytes_pending > 0) {
            struct iovec iov[64];
            uint32_t n = sl_outq_iov(&f->q, iov, 64, SIZE_MAX);
            size_t sum = 0;
            for (uint32_t i = 0; i < n; i++)
                sum += iov[i].iov_len;
            sl_outq_consume(&f->q, sum);
        }
        if (rc != SL_EFULL)
            return rc;
    }
    FZ_CHECK(!"flush keeps reporting a full outq that was drained");
    return rc;
}

/* Answers what was deferred and ends or writes to the open streams. */
static void fz_settle(fz_http_t *f)
{
    while (f->ndeferred > 0) {
        uint32_t sid = f->deferred[--f->ndeferred];
        fz_answer(f, sid, fz_next(&f->rng));
    }
    for (uint32_t i = 0; i < f->nstreaming;) {
        uint32_t sid = f->streaming[i], r = fz_next(&f->rng);
        if (r % 3 == 0) {
            f->streaming[i] = f->streaming[--f->nstreaming];
            fz_answer_rc(sl_http_stream_end(f->conn, sid));
            continue;
        }
        if (sl_http_stream_room(f->conn, sid) > 16)
            fz_answer_rc(sl_http_stream_write_copy(f->conn, sid, "data: y\n\n", 9));
        i++;
    }
}

/* Feeds one chunk and everything held back behind it. Returns the first
 * error of feed (the connection then takes no more input). */
static int fz_feed(fz_http_t *f, const uint8_t *p, size_t n)
{
    int rc = sl_http_conn_feed(f->conn, p, n);
    fz_pump(f);
    for (int guard = 0; rc == 0 && guard < 1000 && sl_http_conn_has_input(f->conn); guard++) {
        fz_settle(f);
        fz_pump(f);
        rc = sl_http_conn_feed(f->conn, NULL, 0);
        fz_pump(f);
    }
    return rc;
}

/* Runs one input through a connection of protocol proto. */
static void fz_http_run(sl_http_proto_t proto, const uint8_t *prefix, size_t prefix_len,
                        const uint8_t *data, size_t size)
{
    if (size < 1)
        return;
    fz_http_t f;
    memset(&f, 0, sizeof f);
    f.rng.s = data[0];
    data++, size--;
    uint64_t live_before = sl_http_mem_bytes_live();
    sl_outq_init(&f.q, SL_HTTP_OUTQ_MIN_SEGS, SL_HTTP_OUTQ_MIN_BYTES);
    sl_http_config_t cfg;
    sl_http_config_default(&cfg);
    cfg.proto = proto;
    /* Small caps so the fuzzer reaches every bound with short inputs. */
    cfg.max_body_bytes = 4096;
    cfg.max_header_bytes = 2048;
    cfg.max_header_count = 16;
    cfg.max_concurrent_streams = 16;
    cfg.conn_body_bytes_max = 16384;
    cfg.stream_buffer_bytes = 4096;
    cfg.conn_buffer_bytes = 16384;
    cfg.pipeline_bytes_max = 4096;
    cfg.stream_buffer_segs = 32;
    cfg.mem_max_bytes = 1u << 20;
    sl_http_callbacks_t cbs = {fz_on_request, fz_on_stream_close};
    FZ_CHECK(sl_http_conn_create(&f.conn, &cfg, &cbs, &f, &f.q) == 0);
    fz_pump(&f);
    int rc = prefix_len > 0 ? fz_feed(&f, prefix, prefix_len) : 0;
    for (size_t off = 0; rc == 0 && off < size;) {
        size_t n = 1 + fz_next(&f.rng) % 512;
        n = n > size - off ? size - off : n;
        rc = fz_feed(&f, data + off, n);
        off += n;
        fz_settle(&f);
        fz_pump(&f);
    }
    if (rc == 0) {
        sl_http_conn_shutdown(f.conn);
        fz_settle(&f);
        fz_pump(&f);
    }
    (void)sl_http_conn_want_close(f.conn);
    sl_http_conn_destroy(f.conn);
    sl_outq_deinit(&f.q);
    FZ_CHECK(sl_http_mem_bytes_live() == live_before);
}

#endif
