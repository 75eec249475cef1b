/*
 * Helpers shared by the net/ tests: a CHECK macro, a server connection
 * wired to an output queue with a request recorder, and draining the
 * queue into a byte string.
 */
#ifndef SL_TESTS_NET_TEST_UTIL_H
#define SL_TESTS_NET_TEST_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/http.h"
#include "runtime/limits.h"

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
            exit(1);                                                                 \
        }                                                                            \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                                \
    do {                                                                                  \
        long long a_ = (long long)(a), b_ = (long long)(b);                               \
        if (a_ != b_) {                                                                   \
            fprintf(stderr, "%s:%d: CHECK failed: %s == %s (%lld vs %lld)\n", __FILE__,   \
                    __LINE__, #a, #b, a_, b_);                                            \
            exit(1);                                                                      \
        }                                                                                 \
    } while (0)

#define CHECK_STR(s, lit) CHECK(str_is((s), (lit)))

/* Byte string that grows (test-side memory, not bounded). */
typedef struct tbuf {
    char *p;
    size_t len, cap;
} tbuf_t;

static inline void tbuf_add(tbuf_t *b, const void *p, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->p = realloc(b->p, b->cap);
        CHECK(b->p != NULL);
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static inline void tbuf_clear(tbuf_t *b)
{
    b->len = 0;
    if (b->p != NULL)
        b->p[0] = '\0';
}

static inline void tbuf_free(tbuf_t *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}

static inline bool str_is(sl_http_str_t s, const char *lit)
{
    if (s.ptr == NULL)
        return lit == NULL;
    return lit != NULL && s.len == strlen(lit) && memcmp(s.ptr, lit, s.len) == 0 &&
           s.ptr[s.len] == '\0';
}

/* Moves every pending byte of q into out (appending) and consumes it, as
 * the reactor would after a complete send. Returns the bytes moved. */
static inline size_t drain_outq(sl_outq_t *q, tbuf_t *out)
{
    size_t total = 0;
    for (int guard = 0; guard < 1000 && q->bytes_pending > 0; guard++) {
        struct iovec iov[64];
        uint32_t n = sl_outq_iov(q, iov, 64, SIZE_MAX);
        size_t sum = 0;
        for (uint32_t i = 0; i < n; i++) {
            tbuf_add(out, iov[i].iov_base, iov[i].iov_len);
            sum += iov[i].iov_len;
        }
        sl_outq_consume(q, sum);
        total += sum;
    }
    return total;
}

/* A copy of what on_request saw, kept after the callback returns. */
typedef struct rec_req {
    uint32_t stream_id;
    uint8_t version;
    sl_http_method_t method;
    char method_raw[16];
    char path[256], query[256], host[128], accept[128], last_event_id[64];
    char content_type[128], event_type[64], durable[16];
    bool has_query;
    int64_t content_length;
    uint32_t header_count;
    char header0_name[64], header0_value[128];
    tbuf_t body;
} rec_req_t;

static inline void rec_copy(char *dst, size_t cap, sl_http_str_t s)
{
    size_t n = s.ptr == NULL ? 0 : (s.len < cap - 1 ? s.len : cap - 1);
    if (n > 0)
        memcpy(dst, s.ptr, n);
    dst[n] = '\0';
}

static inline void rec_fill(rec_req_t *r, const sl_http_req_t *req)
{
    memset(r, 0, sizeof(*r));
    r->stream_id = req->stream_id;
    r->version = req->version;
    r->method = req->method;
    rec_copy(r->method_raw, sizeof(r->method_raw), req->method_raw);
    rec_copy(r->path, sizeof(r->path), req->path);
    rec_copy(r->query, sizeof(r->query), req->query);
    r->has_query = req->query.ptr != NULL;
    rec_copy(r->host, sizeof(r->host), req->host);
    rec_copy(r->accept, sizeof(r->accept), req->accept);
    rec_copy(r->last_event_id, sizeof(r->last_event_id), req->last_event_id);
    rec_copy(r->content_type, sizeof(r->content_type), req->content_type);
    rec_copy(r->event_type, sizeof(r->event_type), req->event_type);
    rec_copy(r->durable, sizeof(r->durable), req->durable);
    r->content_length = req->content_length;
    r->header_count = req->header_count;
    if (req->header_count > 0) {
        sl_http_str_t n = {req->headers[0].name, req->headers[0].name_len};
        sl_http_str_t v = {req->headers[0].value, req->headers[0].value_len};
        rec_copy(r->header0_name, sizeof(r->header0_name), n);
        rec_copy(r->header0_value, sizeof(r->header0_value), v);
    }
    if (req->body_len > 0)
        tbuf_add(&r->body, req->body, req->body_len);
}

#endif
