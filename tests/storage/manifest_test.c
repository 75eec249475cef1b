/*
 * Manifest tests: encode/decode round trip, writer bounds, every kind of
 * damage is SL_ECORRUPT (bit flips, truncation, trailing bytes, bad
 * structure under valid CRCs), and the startup load/store file operations.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/crc32c.h"
#include "storage/manifest.h"

#include "tests/check.h"

static const sl_segment_t segs_b[1] = {
    {.first_seq = 1, .last_seq = 9, .bytes = 600, .events = 9, .payload_bytes = 90}};
static const sl_segment_t segs_c[3] = {
    {.first_seq = 1, .last_seq = 100, .bytes = 70000, .events = 100, .payload_bytes = 60000},
    {.first_seq = 102, .last_seq = 200, .bytes = 65000, .events = 90, .payload_bytes = 55000},
    {.first_seq = 201, .last_seq = 201, .bytes = 100, .events = 1, .payload_bytes = 20}};

static sl_manifest_entry_t entry(const char *id, uint64_t base, uint32_t flags, uint32_t nseg)
{
    return (sl_manifest_entry_t){.id = id,
                                 .id_len = (uint32_t)strlen(id),
                                 .epoch = base + 1,
                                 .first_seq = base + 2,
                                 .last_seq = base + 3,
                                 .events = base + 4,
                                 .bytes = base + 5,
                                 .created_ns = base + 6,
                                 .last_activity_ns = base + 7,
                                 .flags = flags,
                                 .segment_count = nseg};
}

/* Builds the three-entry manifest used by most tests; returns its size. */
static size_t build(uint8_t *buf, size_t cap)
{
    sl_manifest_writer_t w;
    sl_manifest_writer_init(&w, buf, cap);
    sl_manifest_entry_t a = entry("empty-session", 1000, 0, 0);
    sl_manifest_entry_t b = entry("b", 2000, SL_MANIFEST_ENTRY_CLEAN, 1);
    sl_manifest_entry_t c = entry("agent.run-7_x", 0xfffffffffff0ull, 0, 3);
    CHECK(sl_manifest_writer_add(&w, &a, NULL) == 0);
    CHECK(sl_manifest_writer_add(&w, &b, segs_b) == 0);
    CHECK(sl_manifest_writer_add(&w, &c, segs_c) == 0);
    size_t n = sl_manifest_writer_finish(&w);
    CHECK(n == SL_MANIFEST_HEADER_BYTES + sl_manifest_entry_size(13, 0) +
                   sl_manifest_entry_size(1, 1) + sl_manifest_entry_size(13, 3));
    return n;
}

static void check_entry(const sl_manifest_entry_t *got, const sl_manifest_entry_t *want,
                        const sl_segment_t *segs)
{
    CHECK(got->id_len == want->id_len && memcmp(got->id, want->id, want->id_len) == 0);
    CHECK(got->epoch == want->epoch && got->first_seq == want->first_seq);
    CHECK(got->last_seq == want->last_seq && got->events == want->events);
    CHECK(got->bytes == want->bytes && got->created_ns == want->created_ns);
    CHECK(got->last_activity_ns == want->last_activity_ns && got->flags == want->flags);
    CHECK(got->segment_count == want->segment_count);
    for (uint32_t i = 0; i < want->segment_count; i++) {
        sl_segment_t s;
        sl_manifest_entry_segment(got, i, &s);
        CHECK(s.first_seq == segs[i].first_seq && s.last_seq == segs[i].last_seq);
        CHECK(s.bytes == segs[i].bytes && s.events == segs[i].events);
        CHECK(s.payload_bytes == segs[i].payload_bytes);
        CHECK(s._sparse == NULL && s._placed == 0);
    }
}

static void test_manifest_round_trip(void)
{
    uint8_t buf[2048];
    size_t n = build(buf, sizeof buf);
    sl_manifest_reader_t r;
    CHECK(sl_manifest_reader_init(&r, buf, n) == 0);
    CHECK(sl_manifest_reader_count(&r) == 3);
    sl_manifest_entry_t e;
    sl_manifest_entry_t a = entry("empty-session", 1000, 0, 0);
    sl_manifest_entry_t b = entry("b", 2000, SL_MANIFEST_ENTRY_CLEAN, 1);
    sl_manifest_entry_t c = entry("agent.run-7_x", 0xfffffffffff0ull, 0, 3);
    CHECK(sl_manifest_reader_next(&r, &e) == 1);
    check_entry(&e, &a, NULL);
    CHECK(sl_manifest_reader_next(&r, &e) == 1);
    check_entry(&e, &b, segs_b);
    CHECK(sl_manifest_reader_next(&r, &e) == 1);
    check_entry(&e, &c, segs_c);
    CHECK(sl_manifest_reader_next(&r, &e) == 0);
    CHECK(sl_manifest_reader_next(&r, &e) == 0);
}

static void test_manifest_empty(void)
{
    uint8_t buf[SL_MANIFEST_HEADER_BYTES];
    sl_manifest_writer_t w;
    sl_manifest_writer_init(&w, buf, sizeof buf);
    CHECK(sl_manifest_writer_finish(&w) == SL_MANIFEST_HEADER_BYTES);
    sl_manifest_reader_t r;
    sl_manifest_entry_t e;
    CHECK(sl_manifest_reader_init(&r, buf, sizeof buf) == 0);
    CHECK(sl_manifest_reader_count(&r) == 0);
    CHECK(sl_manifest_reader_next(&r, &e) == 0);
}

static void test_manifest_writer_bounds(void)
{
    uint8_t buf[200];
    sl_manifest_writer_t w;
    sl_manifest_writer_init(&w, buf, sizeof buf);
    sl_manifest_entry_t bad = entry(".hidden", 1, 0, 0);
    CHECK(sl_manifest_writer_add(&w, &bad, NULL) == SL_EINVAL);
    bad = entry("a/b", 1, 0, 0);
    CHECK(sl_manifest_writer_add(&w, &bad, NULL) == SL_EINVAL);
    sl_manifest_entry_t big = entry("s", 1, 0, SL_SEGMENTS_PER_SESSION_MAX + 1);
    CHECK(sl_manifest_writer_add(&w, &big, NULL) == SL_ETOOBIG);
    sl_manifest_entry_t b = entry("b", 2000, 0, 1);
    CHECK(sl_manifest_writer_add(&w, &b, segs_b) == 0);
    sl_manifest_entry_t c = entry("c", 3000, 0, 3);
    CHECK(sl_manifest_writer_add(&w, &c, segs_c) == SL_EFULL); /* needs 186 more */
    /* The failed add left the writer intact: one valid entry. */
    size_t n = sl_manifest_writer_finish(&w);
    sl_manifest_reader_t r;
    sl_manifest_entry_t e;
    CHECK(sl_manifest_reader_init(&r, buf, n) == 0);
    CHECK(sl_manifest_reader_next(&r, &e) == 1);
    check_entry(&e, &b, segs_b);
    CHECK(sl_manifest_reader_next(&r, &e) == 0);
}

static void test_manifest_damage_is_corrupt(void)
{
    uint8_t buf[2048];
    size_t n = build(buf, sizeof buf);
    sl_manifest_reader_t r;
    for (size_t bit = 0; bit < n * 8; bit += 3) {
        buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        CHECK(sl_manifest_reader_init(&r, buf, n) == SL_ECORRUPT);
        buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    }
    for (size_t k = 0; k < n; k++)
        CHECK(sl_manifest_reader_init(&r, buf, k) == SL_ECORRUPT);
    CHECK(sl_manifest_reader_init(&r, buf, n + 1) == SL_ECORRUPT);
    CHECK(sl_manifest_reader_init(&r, buf, n) == 0);
}

/* Rewrites count and both CRCs so only the structure is wrong. */
static void reseal(uint8_t *buf, size_t n, uint32_t count)
{
    uint64_t body = n - SL_MANIFEST_HEADER_BYTES;
    memcpy(buf + 12, &count, 4);
    memcpy(buf + 16, &body, 8);
    uint32_t bc = sl_crc32c(0, buf + SL_MANIFEST_HEADER_BYTES, body);
    memcpy(buf + 24, &bc, 4);
    uint32_t hc = sl_crc32c(0, buf, 28);
    memcpy(buf + 28, &hc, 4);
}

static int read_all_entries(const uint8_t *buf, size_t n)
{
    sl_manifest_reader_t r;
    sl_manifest_entry_t e;
    int rc = sl_manifest_reader_init(&r, buf, n);
    /* Each entry consumes >= SL_MANIFEST_ENTRY_FIXED bytes, so this ends. */
    while (rc == 0 || rc == 1) {
        rc = sl_manifest_reader_next(&r, &e);
        if (rc == 0)
            return 0;
    }
    return rc;
}

static void test_manifest_bad_structure_under_valid_crc(void)
{
    uint8_t buf[2048], copy[2048];
    size_t n = build(buf, sizeof buf);
    CHECK(read_all_entries(buf, n) == 0);
    /* Count says more entries than the body holds. */
    memcpy(copy, buf, n);
    reseal(copy, n, 4);
    CHECK(read_all_entries(copy, n) == SL_ECORRUPT);
    /* Count says fewer: trailing bytes. */
    memcpy(copy, buf, n);
    reseal(copy, n, 2);
    CHECK(read_all_entries(copy, n) == SL_ECORRUPT);
    /* An id that is not a valid session id. */
    memcpy(copy, buf, n);
    copy[SL_MANIFEST_HEADER_BYTES + 1] = '.';
    reseal(copy, n, 3);
    CHECK(read_all_entries(copy, n) == SL_ECORRUPT);
    /* A segment count running past the end. */
    memcpy(copy, buf, n);
    size_t first = SL_MANIFEST_HEADER_BYTES + sl_manifest_entry_size(13, 0);
    uint32_t huge = 1000;
    memcpy(copy + first + 1 + 1 + 60, &huge, 4);
    reseal(copy, n, 3);
    CHECK(read_all_entries(copy, n) == SL_ECORRUPT);
    /* Segments out of order. */
    memcpy(copy, buf, n);
    size_t third = first + sl_manifest_entry_size(1, 1);
    size_t seg2 = third + SL_MANIFEST_ENTRY_FIXED + 13 + SL_MANIFEST_SEGMENT_BYTES;
    uint64_t early = 50;
    memcpy(copy + seg2, &early, 8);
    reseal(copy, n, 3);
    CHECK(read_all_entries(copy, n) == SL_ECORRUPT);
}

static char tmpdir[64];

static void make_tmpdir(void)
{
    strcpy(tmpdir, "/tmp/sl-manifest-XXXXXX");
    CHECK(mkdtemp(tmpdir) != NULL);
}

static void rm_tmpdir(void)
{
    char p[256];
    snprintf(p, sizeof p, "%s/%s", tmpdir, SL_MANIFEST_NAME);
    unlink(p);
    snprintf(p, sizeof p, "%s/%s", tmpdir, SL_MANIFEST_TMP_NAME);
    unlink(p);
    CHECK(rmdir(tmpdir) == 0);
}

static void test_manifest_store_and_load(void)
{
    make_tmpdir();
    void *got = NULL;
    size_t len = 0;
    CHECK(sl_manifest_load(tmpdir, &got, &len) == -ENOENT);
    CHECK(got == NULL);
    uint8_t buf[2048];
    size_t n = build(buf, sizeof buf);
    CHECK(sl_manifest_store(tmpdir, buf, n) == 0);
    char p[256];
    snprintf(p, sizeof p, "%s/%s", tmpdir, SL_MANIFEST_TMP_NAME);
    CHECK(access(p, F_OK) != 0); /* renamed away */
    CHECK(sl_manifest_load(tmpdir, &got, &len) == 0);
    CHECK(len == n && memcmp(got, buf, n) == 0);
    free(got);
    /* Replacing it: the new content wins, atomically. */
    sl_manifest_writer_t w;
    uint8_t small[SL_MANIFEST_HEADER_BYTES];
    sl_manifest_writer_init(&w, small, sizeof small);
    size_t sn = sl_manifest_writer_finish(&w);
    CHECK(sl_manifest_store(tmpdir, small, sn) == 0);
    CHECK(sl_manifest_load(tmpdir, &got, &len) == 0);
    CHECK(len == sn);
    free(got);
    /* A damaged file is reported as corrupt, never half-used. */
    buf[100] ^= 1;
    CHECK(sl_manifest_store(tmpdir, buf, n) == 0);
    got = NULL;
    CHECK(sl_manifest_load(tmpdir, &got, &len) == SL_ECORRUPT);
    CHECK(got == NULL);
    /* As is a file shorter than a header. */
    CHECK(sl_manifest_store(tmpdir, buf, 10) == 0);
    CHECK(sl_manifest_load(tmpdir, &got, &len) == SL_ECORRUPT);
    /* A missing data dir is an errno. */
    CHECK(sl_manifest_store("/nonexistent/sluice/dir", small, sn) == -ENOENT);
    rm_tmpdir();
}

int main(void)
{
    test_manifest_round_trip();
    test_manifest_empty();
    test_manifest_writer_bounds();
    test_manifest_damage_is_corrupt();
    test_manifest_bad_structure_under_valid_crc();
    test_manifest_store_and_load();
    printf("manifest_test: ok\n");
    return 0;
}
