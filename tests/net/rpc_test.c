/*
 * msgpack-RPC framing tests: decoder round trips (whole, byte by byte, split
 * at every offset, pipelined, partial feeds), method as str and bin,
 * out-of-order responses, wrong shapes (recoverable, with msgid), truncated
 * frames, hostile declared lengths and nesting, the encoders checked by
 * decoding with msgpack-c, prefix+body event notifications through an
 * output queue, and a seeded garbage fuzz loop.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/rpc.h"

#if defined(SLUICE_SANITIZER) && !defined(SLUICE_TSAN)
/* From the sanitizer runtime (sanitizer/allocator_interface.h, whose header
 * is not always installed). */
size_t __sanitizer_get_current_allocated_bytes(void);
/* Live heap bytes, from whichever allocator is in use. */
static size_t heap_bytes(void)
{
    return __sanitizer_get_current_allocated_bytes();
}
#else
#include <malloc.h>
static size_t heap_bytes(void)
{
    return mallinfo2().uordblks;
}
#endif

#define CHECK(c)                                                                    \
    do {                                                                            \
        if (!(c)) {                                                                 \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #c); \
            exit(1);                                                                \
        }                                                                           \
    } while (0)

/* ---- helpers ---- */

typedef struct pk {
    msgpack_sbuffer sb;
    msgpack_packer p;
} pk_t;

static void pk_init(pk_t *k)
{
    msgpack_sbuffer_init(&k->sb);
    msgpack_packer_init(&k->p, &k->sb, msgpack_sbuffer_write);
}

static void pk_str(pk_t *k, const char *s)
{
    msgpack_pack_str_with_body(&k->p, s, strlen(s));
}

/* [0, msgid, method(str|bin), [arg_str, n]] */
static void pk_request(pk_t *k, uint32_t msgid, const char *method, bool bin, const char *arg,
                       uint64_t n)
{
    msgpack_pack_array(&k->p, 4);
    msgpack_pack_uint8(&k->p, 0);
    msgpack_pack_uint32(&k->p, msgid);
    if (bin)
        msgpack_pack_bin_with_body(&k->p, method, strlen(method));
    else
        pk_str(k, method);
    msgpack_pack_array(&k->p, 2);
    pk_str(k, arg);
    msgpack_pack_uint64(&k->p, n);
}

/* [2, method, [arg_str]] */
static void pk_notify(pk_t *k, const char *method, bool bin, const char *arg)
{
    msgpack_pack_array(&k->p, 3);
    msgpack_pack_uint8(&k->p, 2);
    if (bin)
        msgpack_pack_bin_with_body(&k->p, method, strlen(method));
    else
        pk_str(k, method);
    msgpack_pack_array(&k->p, 1);
    pk_str(k, arg);
}

static sl_rpc_decoder_t *dec_new(void)
{
    sl_rpc_limits_t lim;
    sl_rpc_limits_default(&lim);
    sl_rpc_decoder_t *d = NULL;
    CHECK(sl_rpc_decoder_create(&lim, &d) == 0);
    return d;
}

static sl_rpc_decoder_t *dec_small(uint32_t max_bytes)
{
    sl_rpc_limits_t lim;
    sl_rpc_limits_default(&lim);
    lim.max_message_bytes = max_bytes;
    lim.max_str_bytes = max_bytes;
    sl_rpc_decoder_t *d = NULL;
    CHECK(sl_rpc_decoder_create(&lim, &d) == 0);
    return d;
}

static bool raw_eq(const msgpack_object *o, const char *s)
{
    size_t n = strlen(s);
    if (o->type == MSGPACK_OBJECT_STR)
        return o->via.str.size == n && memcmp(o->via.str.ptr, s, n) == 0;
    if (o->type == MSGPACK_OBJECT_BIN)
        return o->via.bin.size == n && memcmp(o->via.bin.ptr, s, n) == 0;
    return false;
}

/* What a decoded message looked like, copied out (the msg itself dies at
 * the next decoder call). */
typedef struct seen {
    int type;
    uint32_t msgid;
    char method[32];
    bool method_is_bin;
    char arg[32];
    uint64_t n;
} seen_t;

static void record(const sl_rpc_msg_t *m, seen_t *s)
{
    memset(s, 0, sizeof(*s));
    s->type = m->type;
    s->msgid = m->msgid;
    CHECK(m->method_len < sizeof(s->method));
    memcpy(s->method, m->method, m->method_len);
    s->method_is_bin = m->method_is_bin;
    CHECK(m->params.type == MSGPACK_OBJECT_ARRAY);
    const msgpack_object *a = m->params.via.array.ptr;
    CHECK(m->params.via.array.size >= 1);
    CHECK(a[0].type == MSGPACK_OBJECT_STR);
    CHECK(a[0].via.str.size < sizeof(s->arg));
    memcpy(s->arg, a[0].via.str.ptr, a[0].via.str.size);
    if (m->params.via.array.size == 2) {
        CHECK(a[1].type == MSGPACK_OBJECT_POSITIVE_INTEGER);
        s->n = a[1].via.u64;
    }
}

/* Feeds n bytes with the documented loop (feed what fits, drain, repeat),
 * appending decoded messages to out. Returns the count; fails on error. */
static size_t feed_drain(sl_rpc_decoder_t *d, const uint8_t *p, size_t n, seen_t *out,
                         size_t count, size_t out_max)
{
    unsigned guard = 0;
    do {
        CHECK(++guard < 100000);
        int k = sl_rpc_decoder_feed(d, p, n);
        CHECK(k >= 0);
        p += k;
        n -= (size_t)k;
        sl_rpc_msg_t m;
        int r;
        while ((r = sl_rpc_decoder_next(d, &m)) == 1) {
            CHECK(count < out_max);
            record(&m, &out[count++]);
        }
        CHECK(r == 0);
    } while (n > 0);
    return count;
}

/* Three messages: request (str method), request (bin method), notification. */
static void build_mix(pk_t *k)
{
    pk_init(k);
    pk_request(k, 7, "publish", false, "sess-a", 300);
    pk_request(k, 4000000000u, "subscribe", true, "sess-b", 1);
    pk_notify(k, "ping", false, "x");
}

static void check_mix(const seen_t *s, size_t count)
{
    CHECK(count == 3);
    CHECK(s[0].type == SL_RPC_REQUEST && s[0].msgid == 7);
    CHECK(strcmp(s[0].method, "publish") == 0 && !s[0].method_is_bin);
    CHECK(strcmp(s[0].arg, "sess-a") == 0 && s[0].n == 300);
    CHECK(s[1].type == SL_RPC_REQUEST && s[1].msgid == 4000000000u);
    CHECK(strcmp(s[1].method, "subscribe") == 0 && s[1].method_is_bin);
    CHECK(strcmp(s[1].arg, "sess-b") == 0 && s[1].n == 1);
    CHECK(s[2].type == SL_RPC_NOTIFICATION);
    CHECK(strcmp(s[2].method, "ping") == 0 && !s[2].method_is_bin);
    CHECK(strcmp(s[2].arg, "x") == 0);
}

/* ---- decoder ---- */

static void test_rpc_roundtrip_whole(void)
{
    pk_t k;
    build_mix(&k);
    sl_rpc_decoder_t *d = dec_new();
    seen_t s[8];
    size_t c = feed_drain(d, (const uint8_t *)k.sb.data, k.sb.size, s, 0, 8);
    check_mix(s, c);
    CHECK(sl_rpc_decoder_pending(d) == 0);
    sl_rpc_decoder_destroy(d);
    msgpack_sbuffer_destroy(&k.sb);
}

static void test_rpc_roundtrip_byte_by_byte(void)
{
    pk_t k;
    build_mix(&k);
    sl_rpc_decoder_t *d = dec_new();
    seen_t s[8];
    size_t c = 0;
    for (size_t i = 0; i < k.sb.size; i++)
        c = feed_drain(d, (const uint8_t *)k.sb.data + i, 1, s, c, 8);
    check_mix(s, c);
    sl_rpc_decoder_destroy(d);
    msgpack_sbuffer_destroy(&k.sb);
}

static void test_rpc_roundtrip_split_every_offset(void)
{
    pk_t k;
    build_mix(&k);
    const uint8_t *p = (const uint8_t *)k.sb.data;
    for (size_t cut = 0; cut <= k.sb.size; cut++) {
        sl_rpc_decoder_t *d = dec_new();
        seen_t s[8];
        size_t c = feed_drain(d, p, cut, s, 0, 8);
        c = feed_drain(d, p + cut, k.sb.size - cut, s, c, 8);
        check_mix(s, c);
        sl_rpc_decoder_destroy(d);
    }
    msgpack_sbuffer_destroy(&k.sb);
}

static void test_rpc_truncated_needs_more(void)
{
    pk_t k;
    pk_init(&k);
    pk_request(&k, 99, "publish", false, "a-session-name-of-some-length", 1u << 20);
    for (size_t cut = 0; cut < k.sb.size; cut++) {
        sl_rpc_decoder_t *d = dec_new();
        CHECK(sl_rpc_decoder_feed(d, (const uint8_t *)k.sb.data, cut) == (int)cut);
        sl_rpc_msg_t m;
        CHECK(sl_rpc_decoder_next(d, &m) == 0);
        CHECK(sl_rpc_decoder_next(d, &m) == 0); /* resumable, still waiting */
        CHECK(sl_rpc_decoder_pending(d) == cut);
        sl_rpc_decoder_destroy(d);
    }
    msgpack_sbuffer_destroy(&k.sb);
}

static void test_rpc_pipelined(void)
{
    pk_t k;
    pk_init(&k);
    enum { N = 500 };
    for (uint32_t i = 0; i < N; i++)
        pk_request(&k, i, (i & 1) ? "publish" : "health", (i % 3) == 0, "s", i * 1000ull);
    sl_rpc_decoder_t *d = dec_new();
    seen_t *s = calloc(N, sizeof(*s));
    size_t c = feed_drain(d, (const uint8_t *)k.sb.data, k.sb.size, s, 0, N);
    CHECK(c == N);
    for (uint32_t i = 0; i < N; i++) {
        CHECK(s[i].msgid == i && s[i].n == i * 1000ull);
        CHECK(strcmp(s[i].method, (i & 1) ? "publish" : "health") == 0);
        CHECK(s[i].method_is_bin == ((i % 3) == 0));
    }
    free(s);
    sl_rpc_decoder_destroy(d);
    msgpack_sbuffer_destroy(&k.sb);
}

/* A small max_message_bytes: feed takes at most that many undecoded bytes,
 * and the feed/drain loop still delivers every message. */
static void test_rpc_feed_partial_take(void)
{
    pk_t k;
    pk_init(&k);
    enum { N = 40 };
    for (uint32_t i = 0; i < N; i++)
        pk_request(&k, i, "publish", false, "sess", i);
    sl_rpc_decoder_t *d = dec_small(64);
    int taken = sl_rpc_decoder_feed(d, (const uint8_t *)k.sb.data, k.sb.size);
    CHECK(taken == 64);
    CHECK(sl_rpc_decoder_feed(d, (const uint8_t *)k.sb.data + 64, 1) == 0);
    CHECK(sl_rpc_decoder_buffer_bytes(d) <= 64);
    sl_rpc_msg_t m;
    CHECK(sl_rpc_decoder_next(d, &m) == 1 && m.msgid == 0);
    seen_t s[N];
    /* Re-run from a fresh decoder through the loop helper. */
    sl_rpc_decoder_destroy(d);
    d = dec_small(64);
    size_t c = feed_drain(d, (const uint8_t *)k.sb.data, k.sb.size, s, 0, N);
    CHECK(c == N);
    for (uint32_t i = 0; i < N; i++)
        CHECK(s[i].msgid == i && s[i].n == i);
    CHECK(sl_rpc_decoder_buffer_bytes(d) <= 64);
    sl_rpc_decoder_destroy(d);
    msgpack_sbuffer_destroy(&k.sb);
}

static void test_rpc_responses_out_of_order(void)
{
    uint8_t buf[256];
    size_t n = 0;
    int r = sl_rpc_response_uint(buf + n, sizeof(buf) - n, 5, 42);
    CHECK(r > 0);
    n += (size_t)r;
    r = sl_rpc_error_encode(buf + n, sizeof(buf) - n, 3, "not_found", "no such session");
    CHECK(r > 0);
    n += (size_t)r;
    r = sl_rpc_response_bool(buf + n, sizeof(buf) - n, 4, true);
    CHECK(r > 0);
    n += (size_t)r;
    sl_rpc_decoder_t *d = dec_new();
    CHECK(sl_rpc_decoder_feed(d, buf, n) == (int)n);
    sl_rpc_msg_t m;
    CHECK(sl_rpc_decoder_next(d, &m) == 1);
    CHECK(m.type == SL_RPC_RESPONSE && m.msgid == 5 && m.has_msgid);
    CHECK(m.error.type == MSGPACK_OBJECT_NIL);
    CHECK(m.result.type == MSGPACK_OBJECT_POSITIVE_INTEGER && m.result.via.u64 == 42);
    CHECK(sl_rpc_decoder_next(d, &m) == 1);
    CHECK(m.type == SL_RPC_RESPONSE && m.msgid == 3);
    CHECK(m.error.type == MSGPACK_OBJECT_ARRAY && m.error.via.array.size == 2);
    CHECK(raw_eq(&m.error.via.array.ptr[0], "not_found"));
    CHECK(raw_eq(&m.error.via.array.ptr[1], "no such session"));
    CHECK(m.result.type == MSGPACK_OBJECT_NIL);
    CHECK(sl_rpc_decoder_next(d, &m) == 1);
    CHECK(m.msgid == 4 && m.result.type == MSGPACK_OBJECT_BOOLEAN && m.result.via.boolean);
    CHECK(sl_rpc_decoder_next(d, &m) == 0);
    sl_rpc_decoder_destroy(d);
}

typedef struct bad_case {
    const char *name;
    const uint8_t *bytes;
    size_t len;
    bool has_msgid;
    uint32_t msgid;
} bad_case_t;

#define BAD(n, h, id, ...)                                                          \
    {                                                                               \
        n, (const uint8_t[]){__VA_ARGS__}, sizeof((const uint8_t[]){__VA_ARGS__}), h, \
            id                                                                      \
    }

/* Each wrong shape is SL_EINVAL, names the msgid when one was readable, and
 * leaves the decoder usable: a valid request after it still decodes. */
static void test_rpc_wrong_shapes(void)
{
    const bad_case_t cases[] = {
        BAD("root not array", false, 0, 0x05),
        BAD("empty array", false, 0, 0x90),
        BAD("kind 3", false, 0, 0x94, 0x03, 0x01, 0xa1, 'm', 0x90),
        BAD("kind str", false, 0, 0x94, 0xa1, 'x', 0x01, 0xa1, 'm', 0x90),
        BAD("request len 3", true, 9, 0x93, 0x00, 0x09, 0xa1, 'm'),
        BAD("request len 5", true, 9, 0x95, 0x00, 0x09, 0xa1, 'm', 0x90, 0xc0),
        BAD("method int", true, 9, 0x94, 0x00, 0x09, 0x05, 0x90),
        BAD("params not array", true, 9, 0x94, 0x00, 0x09, 0xa1, 'm', 0x05),
        BAD("params map", true, 77, 0x94, 0x00, 0x4d, 0xa1, 'm', 0x80),
        BAD("msgid negative", false, 0, 0x94, 0x00, 0xff, 0xa1, 'm', 0x90),
        BAD("msgid 2^32", false, 0, 0x94, 0x00, 0xcf, 0, 0, 0, 1, 0, 0, 0, 0, 0xa1, 'm', 0x90),
        BAD("msgid str", false, 0, 0x94, 0x00, 0xa1, '1', 0xa1, 'm', 0x90),
        BAD("response len 3", true, 4, 0x93, 0x01, 0x04, 0xc0),
        BAD("notification len 2", false, 0, 0x92, 0x02, 0xa1, 'm'),
        BAD("notification params str", false, 0, 0x93, 0x02, 0xa1, 'm', 0xa1, 'p'),
    };
    pk_t ok;
    pk_init(&ok);
    pk_request(&ok, 1234, "health", false, "z", 0);
    for (size_t i = 0; i < SL_ARRAY_LEN(cases); i++) {
        const bad_case_t *c = &cases[i];
        sl_rpc_decoder_t *d = dec_new();
        CHECK(sl_rpc_decoder_feed(d, c->bytes, c->len) == (int)c->len);
        CHECK(sl_rpc_decoder_feed(d, (const uint8_t *)ok.sb.data, ok.sb.size) ==
              (int)ok.sb.size);
        sl_rpc_msg_t m;
        int r = sl_rpc_decoder_next(d, &m);
        if (r != SL_EINVAL || m.has_msgid != c->has_msgid || m.msgid != c->msgid) {
            fprintf(stderr, "case %s: r=%d has_msgid=%d msgid=%u\n", c->name, r, m.has_msgid,
                    m.msgid);
            exit(1);
        }
        CHECK(sl_rpc_decoder_next(d, &m) == 1);
        CHECK(m.type == SL_RPC_REQUEST && m.msgid == 1234 && m.method_len == 6);
        CHECK(memcmp(m.method, "health", 6) == 0);
        CHECK(sl_rpc_decoder_next(d, &m) == 0);
        sl_rpc_decoder_destroy(d);
    }
    msgpack_sbuffer_destroy(&ok.sb);
}

/* Declared 4 GiB lengths are refused as soon as their header is complete:
 * nothing is waited for and the buffer never grows past its first block. */
static void test_rpc_huge_declared_rejected(void)
{
    static const struct {
        uint8_t hdr[6];
        size_t hdr_len;
        const char *reason;
    } cases[] = {
        {{0xdb, 0xff, 0xff, 0xff, 0xff}, 5, "str_bytes"},
        {{0xc6, 0xff, 0xff, 0xff, 0xff}, 5, "str_bytes"},
        {{0xc9, 0xff, 0xff, 0xff, 0xff, 0x01}, 6, "str_bytes"}, /* ext32 + type */
        {{0xdd, 0xff, 0xff, 0xff, 0xff}, 5, "array"},
        {{0xdf, 0xff, 0xff, 0xff, 0xff}, 5, "map"},
        {{0xdb, 0x00, 0x30, 0x00, 0x00}, 5, "str_bytes"}, /* 3 MiB > 2 MiB */
        {{0xdd, 0x00, 0x01, 0x00, 0x01}, 5, "array"},     /* 65537 > 65536 */
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(cases); i++) {
        sl_rpc_decoder_t *d = dec_new();
        size_t heap0 = heap_bytes();
        const uint8_t head[] = {0x94, 0x00, 0x01, 0xa1, 'm', 0x91};
        CHECK(sl_rpc_decoder_feed(d, head, sizeof(head)) == (int)sizeof(head));
        CHECK(sl_rpc_decoder_feed(d, cases[i].hdr, cases[i].hdr_len) == (int)cases[i].hdr_len);
        sl_rpc_msg_t m;
        CHECK(sl_rpc_decoder_next(d, &m) == SL_ETOOBIG);
        /* Only the first input block was allocated on the decoder's behalf. */
        size_t heap1 = heap_bytes();
        CHECK(heap1 <= heap0 + SL_RPC_BUF_START_BYTES + 1024);
        CHECK(strcmp(sl_rpc_decoder_reason(d), cases[i].reason) == 0);
        CHECK(sl_rpc_decoder_buffer_bytes(d) <= SL_RPC_BUF_START_BYTES);
        /* Sticky: the connection is to be closed. */
        CHECK(sl_rpc_decoder_next(d, &m) == SL_ETOOBIG);
        CHECK(sl_rpc_decoder_feed(d, head, 1) == SL_ETOOBIG);
        sl_rpc_decoder_destroy(d);
    }
}

/* The message bound is exact: max bytes decode, max + 1 close. */
static void test_rpc_message_bytes_bound(void)
{
    for (uint32_t extra = 0; extra <= 1; extra++) {
        /* [0, 1, "m", [str]] = 6 bytes + str (2-byte header + n). */
        uint32_t max = 200;
        uint32_t n = max - 8 + extra;
        uint8_t *b = malloc(max + 1);
        memcpy(b, (const uint8_t[]){0x94, 0x00, 0x01, 0xa1, 'm', 0x91, 0xd9, (uint8_t)n}, 8);
        memset(b + 8, 'x', n);
        sl_rpc_decoder_t *d = dec_small(max);
        int k = sl_rpc_decoder_feed(d, b, 8 + n);
        CHECK(k == (int)(8 + n) - (int)extra);
        sl_rpc_msg_t m;
        int r = sl_rpc_decoder_next(d, &m);
        if (extra == 0) {
            CHECK(r == 1);
            CHECK(m.params.via.array.ptr[0].via.str.size == n);
        } else {
            CHECK(r == SL_ETOOBIG);
            CHECK(strcmp(sl_rpc_decoder_reason(d), "message_bytes") == 0);
        }
        sl_rpc_decoder_destroy(d);
        free(b);
    }
    /* Many small elements, no large declared length, still bounded. */
    sl_rpc_decoder_t *d = dec_small(100);
    uint8_t b[100];
    memset(b, 0x91, sizeof(b)); /* depth stops it first... */
    sl_rpc_msg_t m;
    CHECK(sl_rpc_decoder_feed(d, b, sizeof(b)) == 100);
    CHECK(sl_rpc_decoder_next(d, &m) == SL_ETOOBIG);
    CHECK(strcmp(sl_rpc_decoder_reason(d), "depth") == 0);
    sl_rpc_decoder_destroy(d);
    /* A count larger than the bytes left is refused at its header. */
    d = dec_small(100);
    const uint8_t big[] = {0x94, 0x00, 0x01, 0xa1, 'm', 0xdc, 0x00, 0xc8}; /* 200 elems */
    CHECK(sl_rpc_decoder_feed(d, big, sizeof(big)) == (int)sizeof(big));
    CHECK(sl_rpc_decoder_next(d, &m) == SL_ETOOBIG);
    CHECK(strcmp(sl_rpc_decoder_reason(d), "message_bytes") == 0);
    sl_rpc_decoder_destroy(d);
    /* 48 two-byte elements fit the count check, but the message outgrows
     * the bound while streaming in: refused once it reaches it. */
    d = dec_small(100);
    uint8_t pairs[3 + 96 * 2] = {0xdc, 0x00, 0x60};
    for (size_t i = 0; i < 96; i++)
        pairs[3 + 2 * i] = 0x91, pairs[4 + 2 * i] = 0xc0;
    size_t off = 0;
    int r = 0;
    for (unsigned guard = 0; guard < 1000 && r == 0; guard++) {
        int k = sl_rpc_decoder_feed(d, pairs + off, 1);
        CHECK(k == 0 || k == 1);
        off += (size_t)k;
        r = sl_rpc_decoder_next(d, &m);
    }
    CHECK(r == SL_ETOOBIG);
    CHECK(strcmp(sl_rpc_decoder_reason(d), "message_bytes") == 0);
    CHECK(off == 100);
    sl_rpc_decoder_destroy(d);
}

static uint8_t *nested(size_t depth, size_t *len)
{
    /* [0, 1, "m", [[[...nil...]]]]: params is level 2, so depth-1 arrays
     * below the root. */
    uint8_t *b = malloc(depth + 8);
    size_t n = 0;
    b[n++] = 0x94, b[n++] = 0x00, b[n++] = 0x01, b[n++] = 0xa1, b[n++] = 'm';
    for (size_t i = 1; i < depth; i++)
        b[n++] = 0x91;
    b[n++] = 0xc0;
    *len = n;
    return b;
}

static void test_rpc_depth(void)
{
    size_t len;
    uint8_t *b = nested(1000, &len);
    sl_rpc_decoder_t *d = dec_new();
    CHECK(sl_rpc_decoder_feed(d, b, len) == (int)len);
    sl_rpc_msg_t m;
    CHECK(sl_rpc_decoder_next(d, &m) == SL_ETOOBIG);
    CHECK(strcmp(sl_rpc_decoder_reason(d), "depth") == 0);
    sl_rpc_decoder_destroy(d);
    free(b);

    /* Exactly the limit decodes, including the hard cap msgpack_unpack's
     * fixed stack must hold; one more is refused. */
    uint32_t limits[] = {SL_RPC_DEPTH_DEFAULT, SL_RPC_DEPTH_MAX};
    for (size_t i = 0; i < SL_ARRAY_LEN(limits); i++) {
        for (uint32_t extra = 0; extra <= 1; extra++) {
            sl_rpc_limits_t lim;
            sl_rpc_limits_default(&lim);
            lim.max_depth = limits[i];
            CHECK(sl_rpc_decoder_create(&lim, &d) == 0);
            b = nested(limits[i] + extra, &len);
            CHECK(sl_rpc_decoder_feed(d, b, len) == (int)len);
            int r = sl_rpc_decoder_next(d, &m);
            CHECK(r == (extra ? SL_ETOOBIG : 1));
            if (r == 1) {
                const msgpack_object *o = &m.params;
                uint32_t levels = 1;
                while (o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size == 1) {
                    o = &o->via.array.ptr[0];
                    levels++;
                }
                CHECK(o->type == MSGPACK_OBJECT_NIL && levels == limits[i]);
            }
            sl_rpc_decoder_destroy(d);
            free(b);
        }
    }
}

static void test_rpc_invalid_byte(void)
{
    const uint8_t b[] = {0x94, 0x00, 0x01, 0xc1};
    sl_rpc_decoder_t *d = dec_new();
    CHECK(sl_rpc_decoder_feed(d, b, sizeof(b)) == 4);
    sl_rpc_msg_t m;
    CHECK(sl_rpc_decoder_next(d, &m) == SL_EPROTO);
    CHECK(strcmp(sl_rpc_decoder_reason(d), "invalid_byte") == 0);
    CHECK(sl_rpc_decoder_next(d, &m) == SL_EPROTO);
    sl_rpc_decoder_destroy(d);
}

static void test_rpc_limits_validated(void)
{
    sl_rpc_limits_t lim;
    sl_rpc_decoder_t *d = NULL;
    sl_rpc_limits_default(&lim);
    lim.max_depth = SL_RPC_DEPTH_MAX + 1;
    CHECK(sl_rpc_decoder_create(&lim, &d) == SL_EINVAL && d == NULL);
    sl_rpc_limits_default(&lim);
    lim.max_depth = 1;
    CHECK(sl_rpc_decoder_create(&lim, &d) == SL_EINVAL);
    sl_rpc_limits_default(&lim);
    lim.max_message_bytes = SL_RPC_MESSAGE_BYTES_MAX + 1;
    CHECK(sl_rpc_decoder_create(&lim, &d) == SL_EINVAL);
    sl_rpc_limits_default(&lim);
    lim.max_message_bytes = 0;
    CHECK(sl_rpc_decoder_create(&lim, &d) == SL_EINVAL);
    CHECK(d == NULL);
}

static void test_rpc_objects_limit(void)
{
    sl_rpc_limits_t lim;
    sl_rpc_limits_default(&lim);
    lim.max_objects = 10;
    sl_rpc_decoder_t *d = NULL;
    CHECK(sl_rpc_decoder_create(&lim, &d) == 0);
    /* [0, 1, "m", [nil x 6]] = 4 + 1 + 6 objects = 11 */
    const uint8_t b[] = {0x94, 0x00, 0x01, 0xa1, 'm', 0x96, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0};
    CHECK(sl_rpc_decoder_feed(d, b, sizeof(b)) == (int)sizeof(b));
    sl_rpc_msg_t m;
    CHECK(sl_rpc_decoder_next(d, &m) == SL_ETOOBIG);
    CHECK(strcmp(sl_rpc_decoder_reason(d), "objects") == 0);
    sl_rpc_decoder_destroy(d);
    /* 10 objects decode. */
    CHECK(sl_rpc_decoder_create(&lim, &d) == 0);
    const uint8_t ok[] = {0x94, 0x00, 0x01, 0xa1, 'm', 0x95, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0};
    CHECK(sl_rpc_decoder_feed(d, ok, sizeof(ok)) == (int)sizeof(ok));
    CHECK(sl_rpc_decoder_next(d, &m) == 1 && m.params.via.array.size == 5);
    sl_rpc_decoder_destroy(d);
}

/* A large message grows the buffer; once drained it is freed. */
static void test_rpc_idle_buffer_freed(void)
{
    size_t n = 100000;
    uint8_t *b = malloc(n + 16);
    size_t h = 0;
    const uint8_t head[] = {0x94, 0x00, 0x02, 0xa1, 'm', 0x91, 0xc6, 0,
                            (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n};
    memcpy(b, head, sizeof(head));
    h = sizeof(head);
    memset(b + h, 0xab, n);
    sl_rpc_decoder_t *d = dec_new();
    CHECK(sl_rpc_decoder_feed(d, b, h + n) == (int)(h + n));
    CHECK(sl_rpc_decoder_buffer_bytes(d) >= h + n);
    sl_rpc_msg_t m;
    CHECK(sl_rpc_decoder_next(d, &m) == 1);
    const msgpack_object *o = &m.params.via.array.ptr[0];
    CHECK(o->type == MSGPACK_OBJECT_BIN && o->via.bin.size == n);
    CHECK(((const uint8_t *)o->via.bin.ptr)[n - 1] == 0xab);
    CHECK(sl_rpc_decoder_next(d, &m) == 0);
    CHECK(sl_rpc_decoder_buffer_bytes(d) == 0);
    sl_rpc_decoder_destroy(d);
    free(b);
}

/* ---- encoders ---- */

static msgpack_object unpack_one(const uint8_t *p, size_t n, msgpack_zone *z)
{
    msgpack_object o;
    size_t off = 0;
    CHECK(msgpack_unpack((const char *)p, n, &off, z, &o) == MSGPACK_UNPACK_SUCCESS);
    CHECK(off == n);
    return o;
}

static void check_event(const msgpack_object *o, uint64_t sub, const char *session, uint64_t seq,
                        const char *type, const char *data, bool data_is_str)
{
    CHECK(o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size == 3);
    const msgpack_object *e = o->via.array.ptr;
    CHECK(e[0].type == MSGPACK_OBJECT_POSITIVE_INTEGER && e[0].via.u64 == 2);
    CHECK(e[1].type == MSGPACK_OBJECT_STR && raw_eq(&e[1], "event"));
    CHECK(e[2].type == MSGPACK_OBJECT_ARRAY && e[2].via.array.size == 5);
    const msgpack_object *p = e[2].via.array.ptr;
    CHECK(p[0].type == MSGPACK_OBJECT_POSITIVE_INTEGER && p[0].via.u64 == sub);
    CHECK(p[1].type == MSGPACK_OBJECT_STR && raw_eq(&p[1], session));
    CHECK(p[2].type == MSGPACK_OBJECT_POSITIVE_INTEGER && p[2].via.u64 == seq);
    CHECK(p[3].type == MSGPACK_OBJECT_STR && raw_eq(&p[3], type));
    CHECK(p[4].type == (data_is_str ? MSGPACK_OBJECT_STR : MSGPACK_OBJECT_BIN));
    CHECK(raw_eq(&p[4], data));
}

static void test_rpc_event_prefix_body(void)
{
    static const uint64_t subs[] = {0, 1, 127, 128, 255, 256, 65535, 65536, UINT32_MAX,
                                    (uint64_t)UINT32_MAX + 1, UINT64_MAX};
    static const uint64_t seqs[] = {1, 200, 70000, 5000000000ull};
    char longdata[300];
    memset(longdata, 'd', sizeof(longdata) - 1);
    longdata[sizeof(longdata) - 1] = 0;
    const char *datas[] = {"", "hello\r\nworld", longdata};
    msgpack_zone z;
    msgpack_zone_init(&z, 4096);
    for (size_t di = 0; di < SL_ARRAY_LEN(datas); di++) {
        for (int as_str = 0; as_str <= 1; as_str++) {
            for (size_t si = 0; si < SL_ARRAY_LEN(seqs); si++) {
                const char *data = datas[di];
                size_t want = sl_rpc_event_body_size(7, seqs[si], 5, strlen(data), as_str);
                uint8_t body[512];
                int bl = sl_rpc_event_body_encode(body, sizeof(body), "agent-7", 7, seqs[si],
                                                  "token", 5, data, strlen(data), as_str);
                CHECK(bl > 0 && (size_t)bl == want);
                CHECK(sl_rpc_event_body_encode(body, want - 1, "agent-7", 7, seqs[si], "token",
                                               5, data, strlen(data), as_str) == SL_EFULL);
                for (size_t i = 0; i < SL_ARRAY_LEN(subs); i++) {
                    uint8_t msg[SL_RPC_EVENT_PREFIX_MAX + 512];
                    int pl = sl_rpc_event_prefix_encode(msg, subs[i]);
                    CHECK(pl > 0 && pl <= SL_RPC_EVENT_PREFIX_MAX);
                    memcpy(msg + pl, body, (size_t)bl);
                    msgpack_object o = unpack_one(msg, (size_t)(pl + bl), &z);
                    check_event(&o, subs[i], "agent-7", seqs[si], "token", data, as_str);
                    msgpack_zone_clear(&z);
                }
            }
        }
    }
    msgpack_zone_destroy(&z);
}

/* One body chunk shared by three subscribers' queues; each queue's bytes
 * decode (with our decoder) to that subscriber's notification. */
static void test_rpc_event_outq_shared_body(void)
{
    const char *data = "\x00\x01\xff binary";
    size_t dl = 10;
    size_t bsz = sl_rpc_event_body_size(3, 42, 7, dl, false);
    sl_chunk_t *c = sl_chunk_create((uint32_t)bsz);
    CHECK(c != NULL);
    int bl = sl_rpc_event_body_encode(c->data, c->cap, "s-1", 3, 42, "message", 7, data, dl,
                                      false);
    CHECK(bl > 0 && (size_t)bl == bsz);
    c->len = (uint32_t)bl;
    static const uint64_t subs[] = {3, 1000, 1ull << 40};
    sl_outq_t q[3];
    for (int i = 0; i < 3; i++) {
        CHECK(sl_outq_init(&q[i], 16, 1 << 16) == 0);
        CHECK(sl_rpc_outq_event(&q[i], subs[i], c, 0, c->len) == 0);
        CHECK(sl_rpc_outq_event(&q[i], subs[i], c, 0, c->len) == 0); /* twice */
    }
    CHECK(sl_chunk_refs(c) == 1 + 6);
    for (int i = 0; i < 3; i++) {
        struct iovec iov[8];
        uint32_t n = sl_outq_iov(&q[i], iov, 8, SIZE_MAX);
        sl_rpc_decoder_t *d = dec_new();
        for (uint32_t j = 0; j < n; j++)
            CHECK(sl_rpc_decoder_feed(d, iov[j].iov_base, iov[j].iov_len) ==
                  (int)iov[j].iov_len);
        for (int rep = 0; rep < 2; rep++) {
            sl_rpc_msg_t m;
            CHECK(sl_rpc_decoder_next(d, &m) == 1);
            CHECK(m.type == SL_RPC_NOTIFICATION && m.method_len == 5);
            CHECK(memcmp(m.method, "event", 5) == 0);
            const msgpack_object *p = m.params.via.array.ptr;
            CHECK(m.params.via.array.size == 5);
            CHECK(p[0].via.u64 == subs[i] && raw_eq(&p[1], "s-1") && p[2].via.u64 == 42);
            CHECK(raw_eq(&p[3], "message"));
            CHECK(p[4].type == MSGPACK_OBJECT_BIN && p[4].via.bin.size == dl);
            CHECK(memcmp(p[4].via.bin.ptr, data, dl) == 0);
        }
        sl_rpc_msg_t m;
        CHECK(sl_rpc_decoder_next(d, &m) == 0);
        sl_rpc_decoder_destroy(d);
        sl_outq_deinit(&q[i]);
    }
    CHECK(sl_chunk_refs(c) == 1);
    /* A full queue takes nothing. */
    sl_outq_t small;
    CHECK(sl_outq_init(&small, 16, (uint64_t)bl + 3) == 0);
    CHECK(sl_rpc_outq_event(&small, 1, c, 0, c->len) == SL_EFULL);
    CHECK(small.bytes_pending == 0);
    sl_outq_deinit(&small);
    sl_chunk_release(c);
}

static void test_rpc_gap(void)
{
    uint8_t b[SL_RPC_GAP_MAX];
    msgpack_zone z;
    msgpack_zone_init(&z, 1024);
    int n = sl_rpc_gap_encode(b, UINT64_MAX, UINT64_MAX - 1, UINT64_MAX);
    CHECK(n == SL_RPC_GAP_MAX);
    n = sl_rpc_gap_encode(b, 9, 100, 250);
    msgpack_object o = unpack_one(b, (size_t)n, &z);
    CHECK(o.type == MSGPACK_OBJECT_ARRAY && o.via.array.size == 3);
    CHECK(o.via.array.ptr[0].via.u64 == 2 && raw_eq(&o.via.array.ptr[1], "gap"));
    const msgpack_object *p = o.via.array.ptr[2].via.array.ptr;
    CHECK(o.via.array.ptr[2].via.array.size == 3);
    CHECK(p[0].via.u64 == 9 && p[1].via.u64 == 100 && p[2].via.u64 == 250);
    msgpack_zone_destroy(&z);
}

static void test_rpc_responses_encode(void)
{
    uint8_t b[128];
    msgpack_zone z;
    msgpack_zone_init(&z, 1024);
    /* exact bytes for the common small cases */
    CHECK(sl_rpc_response_nil(b, sizeof(b), 1) == 5);
    CHECK(memcmp(b, "\x94\x01\x01\xc0\xc0", 5) == 0);
    CHECK(sl_rpc_response_bool(b, sizeof(b), 2, true) == 5);
    CHECK(memcmp(b, "\x94\x01\x02\xc0\xc3", 5) == 0);
    int n = sl_rpc_response_uint(b, sizeof(b), 300, 1ull << 40);
    CHECK(n == 1 + 1 + 3 + 1 + 9);
    msgpack_object o = unpack_one(b, (size_t)n, &z);
    CHECK(o.via.array.ptr[1].via.u64 == 300 && o.via.array.ptr[3].via.u64 == (1ull << 40));
    n = sl_rpc_response_uint_pair(b, sizeof(b), UINT32_MAX, 5, 9);
    o = unpack_one(b, (size_t)n, &z);
    CHECK(o.via.array.ptr[1].via.u64 == UINT32_MAX);
    CHECK(o.via.array.ptr[2].type == MSGPACK_OBJECT_NIL);
    const msgpack_object *r = &o.via.array.ptr[3];
    CHECK(r->type == MSGPACK_OBJECT_ARRAY && r->via.array.size == 2);
    CHECK(r->via.array.ptr[0].via.u64 == 5 && r->via.array.ptr[1].via.u64 == 9);
    n = sl_rpc_error_encode(b, sizeof(b), 8, "bad_params", "params must be an array");
    o = unpack_one(b, (size_t)n, &z);
    CHECK(o.via.array.size == 4 && o.via.array.ptr[1].via.u64 == 8);
    CHECK(raw_eq(&o.via.array.ptr[2].via.array.ptr[0], "bad_params"));
    CHECK(raw_eq(&o.via.array.ptr[2].via.array.ptr[1], "params must be an array"));
    CHECK(o.via.array.ptr[3].type == MSGPACK_OBJECT_NIL);
    /* too small buffers */
    CHECK(sl_rpc_response_uint(b, 5, 300, 1) == SL_EFULL);
    CHECK(sl_rpc_error_encode(b, 10, 8, "bad_params", "x") == SL_EFULL);
    CHECK(sl_rpc_response_head(b, SL_RPC_RESPONSE_HEAD_MAX, UINT32_MAX) ==
          SL_RPC_RESPONSE_HEAD_MAX);
    msgpack_zone_destroy(&z);
}

/* Pre-packed results through the queue, small (stack copy) and large (own
 * chunk); decoded back with our decoder. */
static void test_rpc_outq_response_packed(void)
{
    size_t sizes[] = {10, 5000};
    for (size_t i = 0; i < SL_ARRAY_LEN(sizes); i++) {
        pk_t k;
        pk_init(&k);
        msgpack_pack_map(&k.p, 1);
        pk_str(&k, "sessions");
        char *s = malloc(sizes[i] + 1);
        memset(s, 'q', sizes[i]);
        s[sizes[i]] = 0;
        pk_str(&k, s);
        sl_outq_t q;
        CHECK(sl_outq_init(&q, 8, 1 << 20) == 0);
        CHECK(sl_rpc_outq_response_packed(&q, 77, k.sb.data, k.sb.size) == 0);
        CHECK(sl_rpc_outq_put(&q, "\x94\x01\x4e\xc0\xc2", 5) == 0);
        struct iovec iov[8];
        uint32_t n = sl_outq_iov(&q, iov, 8, SIZE_MAX);
        sl_rpc_decoder_t *d = dec_new();
        for (uint32_t j = 0; j < n; j++)
            CHECK(sl_rpc_decoder_feed(d, iov[j].iov_base, iov[j].iov_len) ==
                  (int)iov[j].iov_len);
        sl_rpc_msg_t m;
        CHECK(sl_rpc_decoder_next(d, &m) == 1);
        CHECK(m.type == SL_RPC_RESPONSE && m.msgid == 77);
        CHECK(m.result.type == MSGPACK_OBJECT_MAP && m.result.via.map.size == 1);
        CHECK(raw_eq(&m.result.via.map.ptr[0].key, "sessions"));
        CHECK(raw_eq(&m.result.via.map.ptr[0].val, s));
        CHECK(sl_rpc_decoder_next(d, &m) == 1);
        CHECK(m.msgid == 78 && m.result.type == MSGPACK_OBJECT_BOOLEAN && !m.result.via.boolean);
        sl_rpc_decoder_destroy(d);
        sl_outq_deinit(&q);
        /* A bound too small takes nothing. */
        CHECK(sl_outq_init(&q, 8, k.sb.size) == 0);
        CHECK(sl_rpc_outq_response_packed(&q, 77, k.sb.data, k.sb.size) == SL_EFULL);
        CHECK(q.bytes_pending == 0);
        sl_outq_deinit(&q);
        free(s);
        msgpack_sbuffer_destroy(&k.sb);
    }
}

/* ---- fuzz ---- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

/* Reads every byte a decoded object refers to (ASan checks the borrows). */
static unsigned walk(const msgpack_object *o, unsigned depth)
{
    unsigned sum = 0;
    CHECK(depth <= SL_RPC_DEPTH_MAX);
    switch (o->type) {
    case MSGPACK_OBJECT_STR:
    case MSGPACK_OBJECT_BIN:
        for (uint32_t i = 0; i < o->via.str.size; i++)
            sum += (uint8_t)o->via.str.ptr[i];
        break;
    case MSGPACK_OBJECT_ARRAY:
        for (uint32_t i = 0; i < o->via.array.size; i++)
            sum += walk(&o->via.array.ptr[i], depth + 1);
        break;
    case MSGPACK_OBJECT_MAP:
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            sum += walk(&o->via.map.ptr[i].key, depth + 1);
            sum += walk(&o->via.map.ptr[i].val, depth + 1);
        }
        break;
    default:
        break;
    }
    return sum;
}

/* Input: valid messages, then mutated (flipped, dropped, inserted bytes) or
 * replaced by pure noise biased towards msgpack header bytes. */
static size_t fuzz_input(uint8_t *b, size_t cap)
{
    pk_t k;
    pk_init(&k);
    unsigned msgs = 1 + (unsigned)(rng() % 4);
    for (unsigned i = 0; i < msgs; i++)
        pk_request(&k, (uint32_t)rng(), "publish", rng() & 1, "sess", rng());
    size_t n = k.sb.size < cap ? k.sb.size : cap;
    memcpy(b, k.sb.data, n);
    msgpack_sbuffer_destroy(&k.sb);
    unsigned mode = (unsigned)(rng() % 4);
    if (mode == 3) {
        n = (size_t)(rng() % cap);
        for (size_t i = 0; i < n; i++)
            b[i] = (rng() & 1) ? (uint8_t)(0x80 + rng() % 0x80) : (uint8_t)rng();
        return n;
    }
    unsigned edits = 1 + (unsigned)(rng() % 6);
    for (unsigned e = 0; e < edits && n > 0; e++) {
        size_t at = (size_t)(rng() % n);
        if (mode == 0)
            b[at] = (uint8_t)rng();
        else if (mode == 1 && n > 1)
            memmove(b + at, b + at + 1, --n - at);
        else if (n < cap) {
            memmove(b + at + 1, b + at, n - at);
            b[at] = (uint8_t)rng();
            n++;
        }
    }
    return n;
}

static void test_rpc_fuzz_garbage(void)
{
    enum { ITERS = 20000, CAP = 512 };
    uint8_t b[CAP];
    unsigned decoded = 0, fatal = 0, invalid = 0;
    for (unsigned it = 0; it < ITERS; it++) {
        size_t n = fuzz_input(b, CAP);
        sl_rpc_decoder_t *d = (it & 1) ? dec_new() : dec_small(32 + (uint32_t)(rng() % 200));
        size_t off = 0;
        bool dead = false;
        while (off < n && !dead) {
            size_t piece = 1 + (size_t)(rng() % 64);
            if (piece > n - off)
                piece = n - off;
            int k = sl_rpc_decoder_feed(d, b + off, piece);
            CHECK(k >= 0 || k == SL_ETOOBIG || k == SL_EPROTO);
            if (k < 0)
                break;
            off += (size_t)k;
            bool progress = k > 0;
            for (;;) {
                sl_rpc_msg_t m;
                int r = sl_rpc_decoder_next(d, &m);
                /* A full buffer must always yield a message or an error,
                 * or the connection would stall forever. */
                CHECK(r != 0 || progress);
                if (r == 0)
                    break;
                progress = true;
                CHECK(sl_rpc_decoder_pending(d) <= sl_rpc_decoder_buffer_bytes(d));
                if (r == 1) {
                    decoded++;
                    (void)walk(&m.params, 1);
                    (void)walk(&m.result, 1);
                    (void)walk(&m.error, 1);
                    continue;
                }
                if (r == SL_EINVAL) {
                    invalid++;
                    continue;
                }
                CHECK(r == SL_ETOOBIG || r == SL_EPROTO);
                fatal++;
                dead = true;
                break;
            }
        }
        sl_rpc_decoder_destroy(d);
    }
    /* The corpus must exercise every outcome, or the loop proves little. */
    fprintf(stderr, "fuzz: decoded=%u invalid=%u fatal=%u\n", decoded, invalid, fatal);
    CHECK(decoded > 1000 && invalid > 100 && fatal > 100);
}

int main(void)
{
    test_rpc_roundtrip_whole();
    test_rpc_roundtrip_byte_by_byte();
    test_rpc_roundtrip_split_every_offset();
    test_rpc_truncated_needs_more();
    test_rpc_pipelined();
    test_rpc_feed_partial_take();
    test_rpc_responses_out_of_order();
    test_rpc_wrong_shapes();
    test_rpc_huge_declared_rejected();
    test_rpc_message_bytes_bound();
    test_rpc_depth();
    test_rpc_invalid_byte();
    test_rpc_limits_validated();
    test_rpc_objects_limit();
    test_rpc_idle_buffer_freed();
    test_rpc_event_prefix_body();
    test_rpc_event_outq_shared_body();
    test_rpc_gap();
    test_rpc_responses_encode();
    test_rpc_outq_response_packed();
    test_rpc_fuzz_garbage();
    printf("rpc_test: ok\n");
    return 0;
}
