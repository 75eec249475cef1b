/*
 * Tests for the liveness and abuse parts of net/http (http_liveness.c and
 * the accounting in http2.c), fed hand-built frames: rapid reset,
 * CONTINUATION floods (by frame count and by bytes), PING/SETTINGS floods,
 * unread ACK floods -- each must end in GOAWAY(ENHANCE_YOUR_CALM) and name
 * its kind -- while the same frames below the bounds pass; server PINGs and
 * their ACKs; and head_pending, which the header timeout measures.
 */
#include <nghttp2/nghttp2.h>

#include "net/http.h"

#include "tests/net/net_test_util.h"

typedef struct fx {
    sl_outq_t q;
    sl_http_conn_t *conn;
    int requests;
    tbuf_t raw; /* what the server produced */
    tbuf_t in;  /* frames to feed */
} fx_t;

static void on_req(void *ctx, sl_http_conn_t *conn, const sl_http_req_t *req)
{
    fx_t *f = ctx;
    f->requests++;
    (void)conn;
    (void)req; /* left unanswered: the client resets it */
}

static void fx_init(fx_t *f)
{
    memset(f, 0, sizeof *f);
    CHECK(sl_outq_init(&f->q, SL_OUTQ_SEGS, 1 << 20) == 0);
    sl_http_config_t cfg;
    sl_http_config_default(&cfg);
    sl_http_callbacks_t cbs = {on_req, NULL};
    CHECK_EQ_INT(sl_http_conn_create(&f->conn, &cfg, &cbs, f, &f->q), 0);
}

static void fx_free(fx_t *f)
{
    sl_http_conn_destroy(f->conn);
    CHECK(sl_http_mem_bytes_live() == 0);
    sl_outq_deinit(&f->q);
    tbuf_free(&f->raw);
    tbuf_free(&f->in);
}

static void frame(tbuf_t *b, uint8_t type, uint8_t flags, uint32_t sid, const void *p,
                  uint32_t len)
{
    uint8_t h[9] = {(uint8_t)(len >> 16), (uint8_t)(len >> 8), (uint8_t)len, type, flags,
                    (uint8_t)(sid >> 24), (uint8_t)(sid >> 16), (uint8_t)(sid >> 8), (uint8_t)sid};
    tbuf_add(b, h, 9);
    if (len)
        tbuf_add(b, p, len);
}

static void preface(tbuf_t *b)
{
    tbuf_add(b, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24);
    frame(b, NGHTTP2_SETTINGS, 0, 0, NULL, 0);
}

/* HPACK for GET / with :authority "a": static-table indexes and one
 * literal without indexing (RFC 7541 6.1, 6.2.2). */
static const uint8_t get_block[] = {0x82, 0x84, 0x86, 0x01, 0x01, 'a'};

static void get_request(tbuf_t *b, uint32_t sid)
{
    frame(b, NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS | NGHTTP2_FLAG_END_STREAM, sid, get_block,
          sizeof get_block);
}

static void rst(tbuf_t *b, uint32_t sid)
{
    static const uint8_t cancel[4] = {0, 0, 0, NGHTTP2_CANCEL};
    frame(b, NGHTTP2_RST_STREAM, 0, sid, cancel, 4);
}

static int feed(fx_t *f)
{
    int rc = sl_http_conn_feed(f->conn, (const uint8_t *)f->in.p, f->in.len);
    tbuf_clear(&f->in);
    return rc;
}

static uint32_t be32(const char *p)
{
    const uint8_t *u = (const uint8_t *)p;
    return (uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 | (uint32_t)u[2] << 8 | u[3];
}

/* Flushes and returns the GOAWAY error code the server sent, or -1. */
static long goaway_code(fx_t *f)
{
    int rc = sl_http_conn_flush(f->conn);
    CHECK(rc == 0 || rc == SL_EPROTO);
    drain_outq(&f->q, &f->raw);
    long found = -1;
    for (size_t off = 0; off + 9 <= f->raw.len;) {
        const uint8_t *h = (const uint8_t *)f->raw.p + off;
        uint32_t len = (uint32_t)h[0] << 16 | (uint32_t)h[1] << 8 | h[2];
        if (h[3] == NGHTTP2_GOAWAY && len >= 8 && off + 9 + len <= f->raw.len)
            found = (long)be32(f->raw.p + off + 9 + 4);
        off += 9 + len;
    }
    return found;
}

static void expect_calm(fx_t *f, sl_http_abuse_t kind)
{
    CHECK_EQ_INT(feed(f), SL_EPROTO);
    CHECK_EQ_INT(sl_http_conn_abuse(f->conn), kind);
    CHECK_EQ_INT(goaway_code(f), NGHTTP2_ENHANCE_YOUR_CALM);
    CHECK(sl_http_conn_want_close(f->conn));
}

static void test_h2_abuse_rapid_reset(void)
{
    fx_t f;
    fx_init(&f);
    preface(&f.in);
    /* Below the bound: a page cancelling its requests is fine. */
    for (uint32_t i = 0; i < SL_H2_RST_PER_S_MAX / 2; i++) {
        get_request(&f.in, 2 * i + 1);
        rst(&f.in, 2 * i + 1);
    }
    CHECK_EQ_INT(feed(&f), 0);
    CHECK_EQ_INT(f.requests, SL_H2_RST_PER_S_MAX / 2);
    CHECK_EQ_INT(sl_http_conn_abuse(f.conn), SL_HTTP_ABUSE_NONE);
    /* Open-and-reset beyond it within the second: calm down. */
    for (uint32_t i = SL_H2_RST_PER_S_MAX / 2; i < 2 * SL_H2_RST_PER_S_MAX; i++) {
        get_request(&f.in, 2 * i + 1);
        rst(&f.in, 2 * i + 1);
    }
    expect_calm(&f, SL_HTTP_ABUSE_RESET_FLOOD);
    CHECK(f.requests <= SL_H2_RST_PER_S_MAX + 1); /* work stopped at the bound */
    CHECK(sl_http_abuse_name(SL_HTTP_ABUSE_RESET_FLOOD)[0] == 'r');
    fx_free(&f);
}

static void test_h2_abuse_continuation_frames(void)
{
    fx_t f;
    fx_init(&f);
    preface(&f.in);
    frame(&f.in, NGHTTP2_HEADERS, NGHTTP2_FLAG_END_STREAM, 1, get_block, 3);
    CHECK_EQ_INT(feed(&f), 0);
    CHECK(sl_http_conn_head_pending(f.conn));
    for (int i = 0; i <= SL_H2_CONTINUATIONS_MAX; i++)
        frame(&f.in, NGHTTP2_CONTINUATION, 0, 1, NULL, 0); /* empty: the CVE's shape */
    expect_calm(&f, SL_HTTP_ABUSE_CONTINUATION_FLOOD);
    CHECK_EQ_INT(f.requests, 0);
    fx_free(&f);

    /* A block split in a few CONTINUATIONs is normal. */
    fx_init(&f);
    preface(&f.in);
    frame(&f.in, NGHTTP2_HEADERS, NGHTTP2_FLAG_END_STREAM, 1, get_block, 2);
    frame(&f.in, NGHTTP2_CONTINUATION, 0, 1, get_block + 2, 2);
    frame(&f.in, NGHTTP2_CONTINUATION, NGHTTP2_FLAG_END_HEADERS, 1, get_block + 4, 2);
    CHECK_EQ_INT(feed(&f), 0);
    CHECK_EQ_INT(f.requests, 1);
    CHECK(!sl_http_conn_head_pending(f.conn));
    fx_free(&f);
}

static void test_h2_abuse_continuation_bytes(void)
{
    /* A header block of ~64 KiB (four times --max-header-bytes) in a few
     * frames: each header stays below nghttp2's own per-field bound, so
     * only the block's byte bound can stop it. */
    fx_t f;
    fx_init(&f);
    preface(&f.in);
    enum { FIELDS = 8, VALUE = 8000, FRAME = 16384 };
    tbuf_t block = {0};
    tbuf_add(&block, get_block, sizeof get_block);
    char *val = malloc(VALUE);
    CHECK(val != NULL);
    memset(val, 'v', VALUE);
    for (int i = 0; i < FIELDS; i++) {
        /* literal without indexing, new name "x<i>", value VALUE bytes:
         * HPACK integer with a 7-bit prefix (RFC 7541 5.1). */
        uint8_t lit[8] = {0x00, 0x02, 'x', (uint8_t)('0' + i), 0x7f};
        size_t n = 5;
        uint32_t v = VALUE - 127;
        for (; v >= 128; v >>= 7)
            lit[n++] = (uint8_t)(0x80 | (v & 0x7f));
        lit[n++] = (uint8_t)v;
        tbuf_add(&block, lit, n);
        tbuf_add(&block, val, VALUE);
    }
    free(val);
    uint32_t frames = 0;
    for (size_t off = 0; off < block.len; off += FRAME, frames++) {
        uint32_t len = block.len - off < FRAME ? (uint32_t)(block.len - off) : FRAME;
        bool last = off + len == block.len;
        frame(&f.in, off == 0 ? NGHTTP2_HEADERS : NGHTTP2_CONTINUATION,
              (uint8_t)((off == 0 ? NGHTTP2_FLAG_END_STREAM : 0) |
                        (last ? NGHTTP2_FLAG_END_HEADERS : 0)),
              1, block.p + off, len);
    }
    CHECK(frames - 1 <= SL_H2_CONTINUATIONS_MAX); /* the byte bound, not the count */
    tbuf_free(&block);
    expect_calm(&f, SL_HTTP_ABUSE_CONTINUATION_FLOOD);
    fx_free(&f);
}

static void test_h2_abuse_ping_flood(void)
{
    static const uint8_t opaque[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    fx_t f;
    fx_init(&f);
    preface(&f.in);
    CHECK_EQ_INT(feed(&f), 0);
    /* Read as they come (the ACKs drain): bounded by the rate. */
    for (int i = 0; i < SL_H2_CONTROL_PER_S_MAX - 10; i++) {
        frame(&f.in, NGHTTP2_PING, 0, 0, opaque, 8);
        CHECK_EQ_INT(feed(&f), 0);
        CHECK_EQ_INT(goaway_code(&f), -1);
    }
    for (int i = 0; i < 20; i++)
        frame(&f.in, NGHTTP2_PING, 0, 0, opaque, 8);
    expect_calm(&f, SL_HTTP_ABUSE_CONTROL_FLOOD);
    fx_free(&f);
}

static void test_h2_abuse_unread_acks(void)
{
    /* PINGs whose ACKs the peer never lets us send: nghttp2's own bound
     * (SL_H2_OUTBOUND_ACK_MAX) trips before the rate does. */
    static const uint8_t opaque[8] = {0};
    fx_t f;
    fx_init(&f);
    preface(&f.in);
    for (int i = 0; i < SL_H2_OUTBOUND_ACK_MAX + 20; i++)
        frame(&f.in, NGHTTP2_PING, 0, 0, opaque, 8);
    _Static_assert(SL_H2_OUTBOUND_ACK_MAX + 20 < SL_H2_CONTROL_PER_S_MAX, "below the rate");
    expect_calm(&f, SL_HTTP_ABUSE_ACK_FLOOD);
    fx_free(&f);
}

static void test_h2_ping_and_ack(void)
{
    fx_t f;
    fx_init(&f);
    preface(&f.in);
    CHECK_EQ_INT(feed(&f), 0);
    CHECK_EQ_INT(sl_http_conn_pings_acked(f.conn), 0);
    CHECK_EQ_INT(sl_http_conn_ping(f.conn), 0);
    CHECK_EQ_INT(sl_http_conn_flush(f.conn), 0);
    drain_outq(&f.q, &f.raw);
    /* Find our PING (not an ACK) and echo it back as the ACK. */
    const char *opaque = NULL;
    for (size_t off = 0; off + 9 <= f.raw.len;) {
        const uint8_t *h = (const uint8_t *)f.raw.p + off;
        uint32_t len = (uint32_t)h[0] << 16 | (uint32_t)h[1] << 8 | h[2];
        if (h[3] == NGHTTP2_PING && !(h[4] & NGHTTP2_FLAG_ACK) && len == 8)
            opaque = f.raw.p + off + 9;
        off += 9 + len;
    }
    CHECK(opaque != NULL);
    frame(&f.in, NGHTTP2_PING, NGHTTP2_FLAG_ACK, 0, opaque, 8);
    CHECK_EQ_INT(feed(&f), 0);
    CHECK_EQ_INT(sl_http_conn_pings_acked(f.conn), 1);
    fx_free(&f);

    /* HTTP/1.x has no PING. */
    fx_init(&f);
    tbuf_add(&f.in, "GET / HTTP/1.1\r\nHost: a\r\n\r\n", 27);
    CHECK_EQ_INT(feed(&f), 0);
    CHECK_EQ_INT(sl_http_conn_ping(f.conn), SL_ENOTFOUND);
    fx_free(&f);
}

static void test_http_head_pending(void)
{
    fx_t f;
    fx_init(&f);
    CHECK(!sl_http_conn_head_pending(f.conn));
    tbuf_add(&f.in, "GE", 2); /* protocol not known yet */
    CHECK_EQ_INT(feed(&f), 0);
    CHECK(sl_http_conn_head_pending(f.conn));
    tbuf_add(&f.in, "T / HTTP/1.1\r\nHo", 16);
    CHECK_EQ_INT(feed(&f), 0);
    CHECK(sl_http_conn_head_pending(f.conn));
    tbuf_add(&f.in, "st: a\r\n\r\n", 9);
    CHECK_EQ_INT(feed(&f), 0);
    CHECK(!sl_http_conn_head_pending(f.conn));
    CHECK_EQ_INT(f.requests, 1);
    fx_free(&f);
}

int main(void)
{
    test_h2_abuse_rapid_reset();
    test_h2_abuse_continuation_frames();
    test_h2_abuse_continuation_bytes();
    test_h2_abuse_ping_flood();
    test_h2_abuse_unread_acks();
    test_h2_ping_and_ack();
    test_http_head_pending();
    printf("h2_abuse_test: ok\n");
    return 0;
}
