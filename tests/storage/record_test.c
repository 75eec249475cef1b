/*
 * Record codec tests: round trips (text, binary, empty, maximal), the
 * documented byte layout, encode errors, and the corruption classes: every
 * single-bit flip is SL_ECORRUPT, every truncation is SL_EAGAIN with the
 * right size hint, garbage is SL_ECORRUPT.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/crc32c.h"
#include "storage/record.h"

#include "tests/check.h"

static sl_record_view_t rec_of(uint64_t seq, const char *type, const void *data, uint32_t len)
{
    return (sl_record_view_t){.seq = seq,
                              .ts_ns = 1700000000123456789ull + seq,
                              .type = (const uint8_t *)type,
                              .type_len = (uint32_t)strlen(type),
                              .data = data,
                              .data_len = len};
}

static void round_trip(const sl_record_view_t *in, uint32_t data_max)
{
    uint32_t size = sl_record_size(in->type_len, in->data_len);
    uint8_t *buf = malloc(size + 16);
    CHECK(buf != NULL);
    CHECK(sl_record_encode(buf, size + 16, in) == (int)size);
    sl_record_view_t out;
    memset(&out, 0xa5, sizeof out);
    /* Extra bytes after the record must not matter. */
    CHECK(sl_record_decode(buf, size + 16, data_max, &out) == 0);
    CHECK(out.size == size);
    CHECK(out.seq == in->seq);
    CHECK(out.ts_ns == in->ts_ns);
    CHECK(out.type_len == in->type_len);
    CHECK(memcmp(out.type, in->type, in->type_len) == 0);
    CHECK(out.data_len == in->data_len);
    CHECK(out.flags == in->flags);
    CHECK(in->data_len == 0 || memcmp(out.data, in->data, in->data_len) == 0);
    CHECK(out.type == buf + SL_RECORD_OVERHEAD); /* views borrow, never copy */
    CHECK(out.data == buf + SL_RECORD_OVERHEAD + in->type_len);
    free(buf);
}

static void test_record_round_trip_text(void)
{
    const char *d = "hello, world\nsecond line";
    sl_record_view_t r = rec_of(1, "message", d, (uint32_t)strlen(d));
    round_trip(&r, SL_EVENT_BYTES_DEFAULT);
}

static void test_record_round_trip_binary(void)
{
    uint8_t d[512];
    for (int i = 0; i < 512; i++)
        d[i] = (uint8_t)(i * 7 + 3); /* every byte value, NULs included */
    sl_record_view_t r = rec_of(0xfffffffffffffff0ull, "bin.x:y-z_1", d, sizeof d);
    round_trip(&r, SL_EVENT_BYTES_DEFAULT);
}

/* The string flag shares the type_len byte and survives a round trip; an
 * unknown flag bit is refused. */
static void test_record_round_trip_str_flag(void)
{
    const char *d = "text";
    sl_record_view_t r = rec_of(7, "message", d, 4);
    r.flags = SL_RECORD_F_STR;
    round_trip(&r, SL_EVENT_BYTES_DEFAULT);
    r.flags = 0x40;
    uint8_t buf[64];
    CHECK(sl_record_encode(buf, sizeof buf, &r) == SL_EINVAL);
}

static void test_record_round_trip_empty_data(void)
{
    sl_record_view_t r = rec_of(42, "t", NULL, 0);
    CHECK(sl_record_size(1, 0) == SL_RECORD_OVERHEAD + 1);
    round_trip(&r, 0);
}

static void test_record_round_trip_max(void)
{
    uint32_t max = 1u << 16;
    uint8_t *d = malloc(max);
    CHECK(d != NULL);
    for (uint32_t i = 0; i < max; i++)
        d[i] = (uint8_t)(i ^ (i >> 8));
    char type[SL_EVENT_TYPE_MAX + 1];
    memset(type, 'x', SL_EVENT_TYPE_MAX);
    type[SL_EVENT_TYPE_MAX] = '\0';
    sl_record_view_t r = rec_of(7, type, d, max);
    round_trip(&r, max);
    /* One byte more data than the reader accepts is damage, not a record. */
    uint32_t size = sl_record_size(SL_EVENT_TYPE_MAX, max);
    uint8_t *buf = malloc(size);
    CHECK(buf != NULL);
    CHECK(sl_record_encode(buf, size, &r) == (int)size);
    sl_record_view_t out;
    CHECK(sl_record_decode(buf, size, max - 1, &out) == SL_ECORRUPT);
    free(buf);
    free(d);
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void test_record_layout_matches_header_doc(void)
{
    uint8_t buf[64];
    sl_record_view_t r = rec_of(0x0102030405060708ull, "ab", "xyz", 3);
    int n = sl_record_encode(buf, sizeof buf, &r);
    CHECK(n == 29 + 2 + 3);
    CHECK(le32(buf) == (uint32_t)n - 4);
    CHECK(le32(buf + 4) == sl_crc32c(0, buf, 4));
    CHECK(le32(buf + 8) == sl_crc32c(0, buf + 12, (size_t)n - 12));
    CHECK(buf[12] == 0x08 && buf[19] == 0x01); /* seq little-endian */
    CHECK(buf[28] == 2);
    CHECK(memcmp(buf + 29, "abxyz", 5) == 0);
}

static void test_record_encode_errors(void)
{
    uint8_t buf[128], before[128];
    memset(buf, 0x5a, sizeof buf);
    memcpy(before, buf, sizeof buf);
    sl_record_view_t r = rec_of(0, "m", "d", 1);
    CHECK(sl_record_encode(buf, sizeof buf, &r) == SL_EINVAL);
    r = rec_of(1, "", "d", 1);
    CHECK(sl_record_encode(buf, sizeof buf, &r) == SL_EINVAL);
    char longtype[SL_EVENT_TYPE_MAX + 2];
    memset(longtype, 't', SL_EVENT_TYPE_MAX + 1);
    longtype[SL_EVENT_TYPE_MAX + 1] = '\0';
    r = rec_of(1, longtype, "d", 1);
    CHECK(sl_record_encode(buf, sizeof buf, &r) == SL_EINVAL);
    r = rec_of(1, "m", "d", SL_EVENT_BYTES_MAX + 1);
    CHECK(sl_record_encode(buf, sizeof buf, &r) == SL_ETOOBIG);
    r = rec_of(1, "m", "data", 4);
    CHECK(sl_record_encode(buf, sl_record_size(1, 4) - 1, &r) == SL_EFULL);
    CHECK(sl_record_encode_header(buf, SL_RECORD_OVERHEAD, &r) == SL_EFULL);
    CHECK(memcmp(buf, before, sizeof buf) == 0); /* unchanged on failure */
    CHECK(sl_record_encode(buf, sl_record_size(1, 4), &r) == (int)sl_record_size(1, 4));
}

static void test_record_encode_header_matches_encode(void)
{
    uint8_t whole[256], split[256];
    const char *d = "payload kept in its own buffer";
    sl_record_view_t r = rec_of(99, "message", d, (uint32_t)strlen(d));
    int n = sl_record_encode(whole, sizeof whole, &r);
    int h = sl_record_encode_header(split, sizeof split, &r);
    CHECK(h == (int)(SL_RECORD_OVERHEAD + 7));
    memcpy(split + h, d, strlen(d));
    CHECK(memcmp(whole, split, (size_t)n) == 0);
}

static void test_record_bit_flip_anywhere_is_corrupt(void)
{
    uint8_t buf[96];
    sl_record_view_t r = rec_of(5, "message", "some data bytes!", 16);
    int n = sl_record_encode(buf, sizeof buf, &r);
    CHECK(n > 0);
    sl_record_view_t out;
    for (int bit = 0; bit < n * 8; bit++) {
        buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        /* Given exactly the record's bytes, or with trailing bytes. */
        CHECK(sl_record_decode(buf, (size_t)n, SL_EVENT_BYTES_DEFAULT, &out) == SL_ECORRUPT);
        CHECK(sl_record_decode(buf, sizeof buf, SL_EVENT_BYTES_DEFAULT, &out) == SL_ECORRUPT);
        buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    }
    CHECK(sl_record_decode(buf, (size_t)n, SL_EVENT_BYTES_DEFAULT, &out) == 0);
}

static void test_record_truncation_every_offset_is_eagain(void)
{
    uint8_t buf[96];
    sl_record_view_t r = rec_of(5, "message", "some data bytes!", 16);
    int n = sl_record_encode(buf, sizeof buf, &r);
    for (int k = 0; k < n; k++) {
        sl_record_view_t out;
        CHECK(sl_record_decode(buf, (size_t)k, SL_EVENT_BYTES_DEFAULT, &out) == SL_EAGAIN);
        CHECK(out.size ==
              (k >= (int)SL_RECORD_PREFIX_BYTES ? (uint32_t)n : SL_RECORD_PREFIX_BYTES));
    }
}

static void test_record_garbage_is_corrupt(void)
{
    uint8_t buf[64];
    sl_record_view_t out;
    memset(buf, 0, sizeof buf); /* a zero-filled hole after a crash */
    CHECK(sl_record_decode(buf, sizeof buf, SL_EVENT_BYTES_DEFAULT, &out) == SL_ECORRUPT);
    CHECK(sl_record_decode(buf, 4, SL_EVENT_BYTES_DEFAULT, &out) == SL_ECORRUPT);
    memset(buf, 0xff, sizeof buf);
    CHECK(sl_record_decode(buf, sizeof buf, SL_EVENT_BYTES_DEFAULT, &out) == SL_ECORRUPT);
    /* A plausible length with a matching guard but nonsense content. */
    uint32_t len = 40;
    memcpy(buf, &len, 4);
    uint32_t g = sl_crc32c(0, buf, 4);
    memcpy(buf + 4, &g, 4);
    CHECK(sl_record_decode(buf, sizeof buf, SL_EVENT_BYTES_DEFAULT, &out) == SL_ECORRUPT);
}

static void test_record_stream_of_records(void)
{
    uint8_t buf[1024];
    size_t off = 0;
    for (uint64_t s = 1; s <= 20; s++) {
        char d[32];
        int dl = snprintf(d, sizeof d, "event-%llu", (unsigned long long)s);
        sl_record_view_t r = rec_of(s, s % 2 ? "a" : "type.b", d, (uint32_t)dl);
        int n = sl_record_encode(buf + off, sizeof buf - off, &r);
        CHECK(n > 0);
        off += (size_t)n;
    }
    size_t pos = 0;
    for (uint64_t s = 1; s <= 20; s++) {
        sl_record_view_t out;
        CHECK(sl_record_decode(buf + pos, off - pos, SL_EVENT_BYTES_DEFAULT, &out) == 0);
        CHECK(out.seq == s);
        char d[32];
        int dl = snprintf(d, sizeof d, "event-%llu", (unsigned long long)s);
        CHECK(out.data_len == (uint32_t)dl && memcmp(out.data, d, (size_t)dl) == 0);
        pos += out.size;
    }
    CHECK(pos == off);
}

int main(void)
{
    test_record_round_trip_text();
    test_record_round_trip_binary();
    test_record_round_trip_str_flag();
    test_record_round_trip_empty_data();
    test_record_round_trip_max();
    test_record_layout_matches_header_doc();
    test_record_encode_errors();
    test_record_encode_header_matches_encode();
    test_record_bit_flip_anywhere_is_corrupt();
    test_record_truncation_every_offset_is_eagain();
    test_record_garbage_is_corrupt();
    test_record_stream_of_records();
    printf("record_test: ok\n");
    return 0;
}
