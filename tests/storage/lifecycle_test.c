/*
 * Record extension trailers, the lifecycle TLVs they carry, the attributes
 * file and manifest entry extensions: round trips, damage, and that a
 * record without a trailer reads as before.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/base.h"
#include "storage/attrs.h"
#include "storage/lifecycle.h"
#include "storage/manifest.h"
#include "storage/record.h"
#include "tests/check.h"

static void test_trailer_round_trip(void)
{
    sl_lifecycle_ext_t x = {.close = true, .has_producer = true, .producer_id_len = 3,
                            .producer_epoch = 7, .producer_seq = (1ull << 53) - 1,
                            .stream_seq_len = 5};
    memcpy(x.producer_id, "p-1", 3);
    memcpy(x.stream_seq, "00042", 5);
    uint8_t ext[SL_LIFECYCLE_EXT_MAX];
    size_t en = sl_lifecycle_ext_encode(&x, ext, sizeof ext);
    CHECK(en > 0 && en <= SL_RECORD_EXT_MAX);
    const char *data = "hello";
    sl_record_view_t in = {.seq = 9, .ts_ns = 123456789, .type = (const uint8_t *)"message",
                           .type_len = 7, .data = (const uint8_t *)data, .data_len = 5,
                           .ext = ext, .ext_len = (uint32_t)en};
    uint32_t size = sl_record_size_ext(7, 5, (uint32_t)en);
    CHECK(size == sl_record_size(7, 5) + en + 2);
    uint8_t buf[1024];
    CHECK(sl_record_encode(buf, sizeof buf, &in) == (int)size);
    sl_record_view_t out;
    CHECK(sl_record_decode(buf, size, 1 << 20, &out) == 0);
    CHECK(out.size == size && out.seq == 9 && out.ts_ns == 123456789);
    CHECK(out.data_len == 5 && memcmp(out.data, data, 5) == 0); /* the trailer is not data */
    CHECK(out.ext_len == en && memcmp(out.ext, ext, en) == 0);
    sl_lifecycle_ext_t y;
    CHECK(sl_lifecycle_ext_decode(out.ext, out.ext_len, &y) == 0);
    CHECK(y.close && !y.control && y.has_producer && y.producer_epoch == 7 &&
          y.producer_seq == (1ull << 53) - 1 && y.producer_id_len == 3 &&
          memcmp(y.producer_id, "p-1", 3) == 0 && y.stream_seq_len == 5 &&
          memcmp(y.stream_seq, "00042", 5) == 0);
    /* Every flipped bit is damage, never a different trailer. */
    for (uint32_t i = 0; i < size * 8; i++) {
        buf[i / 8] ^= (uint8_t)(1u << (i % 8));
        CHECK(sl_record_decode(buf, size, 1 << 20, &out) != 0);
        buf[i / 8] ^= (uint8_t)(1u << (i % 8));
    }
    /* A record without a trailer is unchanged by the format's extension. */
    in.ext = NULL;
    in.ext_len = 0;
    CHECK(sl_record_encode(buf, sizeof buf, &in) == (int)sl_record_size(7, 5));
    CHECK(sl_record_decode(buf, sizeof buf, 1 << 20, &out) == 0);
    CHECK(out.ext_len == 0 && out.ext == NULL && out.data_len == 5);
    /* A clock value with the trailer bit is refused on encode. */
    in.ts_ns = SL_RECORD_TS_EXT | 1;
    CHECK(sl_record_encode(buf, sizeof buf, &in) == SL_EINVAL);
}

static void test_trailer_empty_data_and_marker(void)
{
    sl_lifecycle_ext_t x = {.close = true, .control = true};
    uint8_t ext[SL_LIFECYCLE_EXT_MAX];
    size_t en = sl_lifecycle_ext_encode(&x, ext, sizeof ext);
    CHECK(en == 4);
    sl_record_view_t in = {.seq = 3, .ts_ns = 1, .type = (const uint8_t *)SL_LIFECYCLE_MARKER_TYPE,
                           .type_len = sizeof SL_LIFECYCLE_MARKER_TYPE - 1, .ext = ext,
                           .ext_len = (uint32_t)en};
    uint8_t buf[256];
    int n = sl_record_encode(buf, sizeof buf, &in);
    CHECK(n > 0);
    sl_record_view_t out;
    CHECK(sl_record_decode(buf, (size_t)n, 1 << 20, &out) == 0);
    CHECK(out.data_len == 0 && out.ext_len == en);
    sl_lifecycle_ext_t y;
    CHECK(sl_lifecycle_ext_decode(out.ext, out.ext_len, &y) == 0 && y.close && y.control);
}

static void test_tlv_damage(void)
{
    uint8_t b[8] = {3, 40, 0, 0}; /* a producer TLV longer than the bytes */
    sl_lifecycle_ext_t y;
    CHECK(sl_lifecycle_ext_decode(b, 4, &y) == SL_ECORRUPT);
    uint8_t unknown[6] = {99, 2, 'x', 'y', 1, 0}; /* unknown tag skipped, then CLOSE */
    CHECK(sl_lifecycle_ext_decode(unknown, 6, &y) == 0 && y.close);
}

static void test_attrs_file(void)
{
    uint8_t file[SL_ATTRS_BYTES_MAX];
    size_t n = sl_attrs_encode(file, sizeof file, 77, "abc", 3);
    uint64_t epoch;
    const uint8_t *pl;
    size_t len;
    CHECK(sl_attrs_decode(file, n, &epoch, &pl, &len) == 0);
    CHECK(epoch == 77 && len == 3 && memcmp(pl, "abc", 3) == 0);
    file[n - 1] ^= 1;
    CHECK(sl_attrs_decode(file, n, &epoch, &pl, &len) == SL_ECORRUPT);
    CHECK(sl_attrs_decode(file, n - 1, &epoch, &pl, &len) == SL_ECORRUPT);
}

static void test_manifest_extension(void)
{
    static uint8_t buf[4096];
    sl_manifest_writer_t w;
    sl_manifest_writer_init(&w, buf, sizeof buf);
    sl_segment_t seg = {.first_seq = 1, .last_seq = 4, .bytes = 200, .events = 4};
    sl_manifest_entry_t a = {.id = "plain", .id_len = 5, .epoch = 1, .segment_count = 1};
    sl_manifest_entry_t b = {.id = "withext", .id_len = 7, .epoch = 2, .segment_count = 1,
                             .ext = (const uint8_t *)"lifecycle", .ext_len = 9};
    CHECK(sl_manifest_writer_add(&w, &a, &seg) == 0);
    CHECK(sl_manifest_writer_add(&w, &b, &seg) == 0);
    size_t len = sl_manifest_writer_finish(&w);
    CHECK(len == SL_MANIFEST_HEADER_BYTES + sl_manifest_entry_size(5, 1) +
                     sl_manifest_entry_size_ext(7, 1, 9));
    sl_manifest_reader_t r;
    CHECK(sl_manifest_reader_init(&r, buf, len) == 0);
    sl_manifest_entry_t e;
    CHECK(sl_manifest_reader_next(&r, &e) == 1);
    CHECK(e.id_len == 5 && e.ext == NULL && e.ext_len == 0);
    CHECK(sl_manifest_reader_next(&r, &e) == 1);
    CHECK(e.id_len == 7 && e.ext_len == 9 && memcmp(e.ext, "lifecycle", 9) == 0);
    CHECK((e.flags & SL_MANIFEST_ENTRY_EXT) != 0);
    CHECK(sl_manifest_reader_next(&r, &e) == 0);
}

int main(void)
{
    test_trailer_round_trip();
    test_trailer_empty_data_and_marker();
    test_tlv_damage();
    test_attrs_file();
    test_manifest_extension();
    printf("lifecycle_test: ok\n");
    return 0;
}
