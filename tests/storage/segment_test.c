/*
 * Segment tests: id validation, names and paths, the segment header, and
 * the segment index driving appends (placement, rolling, commit, failure)
 * and catch-up reads (cursor plans and consumption, sparse index) against
 * an in-memory stand-in for the files.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/segment.h"
#include "storage/session_id.h"

#include "tests/check.h"

static void test_session_id_valid_rule(void)
{
    char max[SL_SESSION_ID_MAX + 1];
    memset(max, 'a', sizeof max);
    CHECK(sl_session_id_valid("a", 1));
    CHECK(sl_session_id_valid("Agent-7_run.2", 13));
    CHECK(sl_session_id_valid("a..", 3));
    CHECK(sl_session_id_valid(max, SL_SESSION_ID_MAX));
    CHECK(!sl_session_id_valid(max, SL_SESSION_ID_MAX + 1));
    CHECK(!sl_session_id_valid("", 0));
    CHECK(!sl_session_id_valid(".", 1));
    CHECK(!sl_session_id_valid("..", 2));
    CHECK(!sl_session_id_valid(".hidden", 7));
    CHECK(!sl_session_id_valid("a/b", 3));
    CHECK(!sl_session_id_valid("a b", 3));
    CHECK(!sl_session_id_valid("a:b", 3));
    CHECK(!sl_session_id_valid("a\0b", 3));
    CHECK(!sl_session_id_valid("caf\xc3\xa9", 5));
}

static void test_segment_name_format_and_parse(void)
{
    char n[64];
    uint64_t v = 0;
    CHECK(sl_segment_name(n, sizeof n, 1) == 24);
    CHECK(strcmp(n, "00000000000000000001.seg") == 0);
    CHECK(sl_segment_name_parse(n, strlen(n), &v) && v == 1);
    CHECK(sl_segment_name(n, sizeof n, UINT64_MAX) == 24);
    CHECK(strcmp(n, "18446744073709551615.seg") == 0);
    CHECK(sl_segment_name_parse(n, strlen(n), &v) && v == UINT64_MAX);
    CHECK(sl_segment_name(n, 24, 5) == SL_EFULL);
    /* Lexical order is numeric order. */
    char a[32], b[32];
    sl_segment_name(a, sizeof a, 99);
    sl_segment_name(b, sizeof b, 100);
    CHECK(strcmp(a, b) < 0);
    const char *bad[] = {"00000000000000000000.seg",
                         "18446744073709551616.seg",
                         "99999999999999999999.seg",
                         "0000000000000000001.seg",
                         "000000000000000000001.seg",
                         "0000000000000000000a.seg",
                         "00000000000000000001.sex",
                         "00000000000000000001.seg.tmp",
                         ".manifest",
                         ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK(!sl_segment_name_parse(bad[i], strlen(bad[i]), &v));
}

static void test_segment_path_validates_id(void)
{
    char p[256];
    CHECK(sl_segment_path(p, sizeof p, "/data", "s1", 2, 7) > 0);
    CHECK(strcmp(p, "/data/s1/00000000000000000007.seg") == 0);
    CHECK(sl_segment_path(p, sizeof p, NULL, "s1", 2, 7) > 0);
    CHECK(strcmp(p, "s1/00000000000000000007.seg") == 0);
    CHECK(sl_segment_path(p, sizeof p, "/data", "s1", 2, 0) == 8);
    CHECK(strcmp(p, "/data/s1") == 0);
    /* Only the first id_len bytes count. */
    CHECK(sl_segment_path(p, sizeof p, "/d", "abc/../x", 3, 0) > 0);
    CHECK(strcmp(p, "/d/abc") == 0);
    CHECK(sl_segment_path(p, sizeof p, "/d", "..", 2, 0) == SL_EINVAL);
    CHECK(sl_segment_path(p, sizeof p, "/d", "a/b", 3, 1) == SL_EINVAL);
    CHECK(sl_segment_path(p, sizeof p, "/d", ".manifest", 9, 0) == SL_EINVAL);
    CHECK(sl_segment_path(p, sizeof p, "/d", "", 0, 0) == SL_EINVAL);
    CHECK(sl_segment_path(p, 10, "/data", "s1", 2, 7) == SL_ETOOBIG);
}

static void test_segment_header_round_trip_and_damage(void)
{
    uint8_t h[SL_SEGMENT_HEADER_BYTES];
    sl_segment_header_t in = {.epoch = 0xabcdef0123456789ull, .first_seq = 77, .created_ns = 5};
    sl_segment_header_encode(h, &in);
    CHECK(memcmp(h, "SLUICESG", 8) == 0);
    sl_segment_header_t out;
    CHECK(sl_segment_header_decode(h, sizeof h, &out) == 0);
    CHECK(out.epoch == in.epoch && out.first_seq == 77 && out.created_ns == 5);
    CHECK(sl_segment_header_decode(h, sizeof h - 1, &out) == SL_EAGAIN);
    for (size_t bit = 0; bit < sizeof h * 8; bit++) {
        h[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        CHECK(sl_segment_header_decode(h, sizeof h, &out) == SL_ECORRUPT);
        h[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    }
}

/* ---- an in-memory stand-in for the segment files --------------------- */

#define FILES_MAX 64
typedef struct disk {
    uint64_t first[FILES_MAX];
    uint8_t *data[FILES_MAX];
    size_t len[FILES_MAX];
    int count;
} disk_t;

static int disk_file(disk_t *d, uint64_t first)
{
    for (int i = 0; i < d->count; i++)
        if (d->first[i] == first)
            return i;
    return -1;
}

static void disk_free(disk_t *d)
{
    for (int i = 0; i < d->count; i++)
        free(d->data[i]);
    d->count = 0;
}

/* Writes len bytes at off of file i, growing it. */
static void disk_write(disk_t *d, int i, uint64_t off, const void *p, size_t len)
{
    if (off + len > d->len[i]) {
        d->data[i] = realloc(d->data[i], off + len);
        CHECK(d->data[i] != NULL);
        d->len[i] = off + len;
    }
    memcpy(d->data[i] + off, p, len);
}

/* What the session actor will do: place, write (header first for a new
 * segment), commit once the write "completed". */
static int append(disk_t *d, sl_segment_index_t *ix, uint64_t seq, const char *type,
                  const void *data, uint32_t len, bool commit)
{
    sl_record_view_t r = {.seq = seq,
                          .ts_ns = seq * 1000,
                          .type = (const uint8_t *)type,
                          .type_len = (uint32_t)strlen(type),
                          .data = data,
                          .data_len = len};
    uint32_t size = sl_record_size(r.type_len, len);
    sl_segment_place_t pl;
    int rc = sl_segment_index_place(ix, seq, size, &pl);
    if (rc != 0)
        return rc;
    int f = disk_file(d, pl.segment);
    CHECK(pl.created == (f < 0));
    if (f < 0) {
        CHECK(d->count < FILES_MAX);
        f = d->count++;
        d->first[f] = pl.segment;
        d->data[f] = NULL;
        d->len[f] = 0;
        uint8_t h[SL_SEGMENT_HEADER_BYTES];
        sl_segment_header_encode(h, &(sl_segment_header_t){.epoch = 1, .first_seq = pl.segment});
        disk_write(d, f, 0, h, sizeof h);
    }
    CHECK(pl.offset == d->len[f]); /* appends only */
    uint8_t *buf = malloc(size);
    CHECK(buf != NULL);
    CHECK(sl_record_encode(buf, size, &r) == (int)size);
    disk_write(d, f, pl.offset, buf, size);
    free(buf);
    if (commit)
        CHECK(sl_segment_index_commit(ix, seq, size, len) == pl.offset);
    return 0;
}

static void test_segment_place_rolls_at_bound(void)
{
    disk_t d = {0};
    sl_segment_index_t *ix;
    CHECK(sl_segment_index_create(SL_SEGMENT_BYTES_MIN, 1u << 20, &ix) == 0);
    static uint8_t data[100000];
    /* 1000-byte records: 65 fit after the 48-byte header in 64 KiB. */
    uint32_t dl = 1000 - SL_RECORD_OVERHEAD - 1;
    for (uint64_t s = 1; s <= 66; s++)
        CHECK(append(&d, ix, s, "m", data, dl, true) == 0);
    CHECK(sl_segment_index_count(ix) == 2);
    CHECK(sl_segment_index_at(ix, 0)->first_seq == 1);
    CHECK(sl_segment_index_at(ix, 0)->last_seq == 65);
    CHECK(sl_segment_index_at(ix, 0)->bytes == SL_SEGMENT_HEADER_BYTES + 65 * 1000);
    CHECK(sl_segment_index_at(ix, 1)->first_seq == 66);
    /* A record larger than the bound goes alone into its own segment, and
     * the next record starts another one. */
    CHECK(append(&d, ix, 67, "m", data, sizeof data, true) == 0);
    CHECK(append(&d, ix, 68, "m", data, 10, true) == 0);
    CHECK(sl_segment_index_count(ix) == 4);
    CHECK(sl_segment_index_at(ix, 2)->first_seq == 67 && sl_segment_index_at(ix, 2)->events == 1);
    CHECK(sl_segment_index_at(ix, 3)->first_seq == 68);
    CHECK(sl_segment_index_events(ix) == 68);
    CHECK(sl_segment_index_payload_bytes(ix) == 66ull * dl + sizeof data + 10);
    for (int f = 0; f < d.count; f++) /* the index and the files agree */
        CHECK(sl_segment_index_at(ix, (uint32_t)f)->bytes == d.len[f]);
    sl_segment_index_destroy(ix);
    disk_free(&d);
}

static void test_segment_commit_makes_readable_in_order(void)
{
    disk_t d = {0};
    sl_segment_index_t *ix;
    CHECK(sl_segment_index_create(SL_SEGMENT_BYTES_MIN, 4096, &ix) == 0);
    CHECK(append(&d, ix, 1, "m", "a", 1, false) == 0);
    CHECK(append(&d, ix, 3, "m", "bb", 2, false) == 0); /* 2 was ephemeral */
    CHECK(sl_segment_index_last_seq(ix) == 0);          /* nothing readable yet */
    CHECK(sl_segment_index_at(ix, 0)->bytes == 0);
    sl_segment_cursor_t c;
    sl_segment_read_t rd;
    sl_segment_cursor_init(&c, 1);
    CHECK(sl_segment_cursor_plan(&c, ix, 8192, &rd) == SL_EAGAIN);
    CHECK(sl_segment_index_commit(ix, 1, sl_record_size(1, 1), 1) == SL_SEGMENT_HEADER_BYTES);
    CHECK(sl_segment_index_last_seq(ix) == 1);
    CHECK(sl_segment_index_at(ix, 0)->bytes == SL_SEGMENT_HEADER_BYTES + sl_record_size(1, 1));
    CHECK(sl_segment_cursor_plan(&c, ix, 8192, &rd) == 0);
    CHECK(rd.len == sl_record_size(1, 1)); /* the uncommitted record is not offered */
    sl_segment_index_commit(ix, 3, sl_record_size(1, 2), 2);
    CHECK(sl_segment_index_last_seq(ix) == 3);
    CHECK(sl_segment_index_events(ix) == 2 && sl_segment_index_payload_bytes(ix) == 3);
    sl_segment_index_destroy(ix);
    disk_free(&d);
}

static void test_segment_fail_drops_placements(void)
{
    disk_t d = {0};
    sl_segment_index_t *ix;
    CHECK(sl_segment_index_create(SL_SEGMENT_BYTES_MIN, 1u << 20, &ix) == 0);
    static uint8_t data[70000];
    CHECK(append(&d, ix, 1, "m", "x", 1, true) == 0);
    CHECK(append(&d, ix, 2, "m", "y", 1, false) == 0);
    CHECK(append(&d, ix, 3, "m", data, sizeof data, false) == 0); /* opens segment 3 */
    CHECK(sl_segment_index_count(ix) == 2);
    sl_segment_index_fail(ix);
    CHECK(sl_segment_index_count(ix) == 1);
    CHECK(sl_segment_index_last_seq(ix) == 1);
    sl_segment_place_t pl;
    CHECK(sl_segment_index_place(ix, 4, 40, &pl) == SL_ECLOSED);
    /* Readable records stay readable. */
    sl_segment_cursor_t c;
    sl_segment_read_t rd;
    sl_segment_cursor_init(&c, 1);
    CHECK(sl_segment_cursor_plan(&c, ix, 1u << 21, &rd) == 0);
    CHECK(rd.segment == 1 && rd.len == sl_record_size(1, 1));
    sl_segment_index_destroy(ix);
    disk_free(&d);
}

static void test_segment_add_checks_consistency(void)
{
    sl_segment_index_t *ix;
    CHECK(sl_segment_index_create(SL_SEGMENT_BYTES_MIN, 4096, &ix) == 0);
    sl_segment_t s = {.first_seq = 1, .last_seq = 10, .bytes = 48 + 10 * 30, .events = 10};
    CHECK(sl_segment_index_add(ix, &s) == 0);
    sl_segment_t overlap = {.first_seq = 10, .last_seq = 12, .bytes = 1000, .events = 2};
    CHECK(sl_segment_index_add(ix, &overlap) == SL_ECORRUPT);
    sl_segment_t empty = {.first_seq = 20, .last_seq = 20, .bytes = 48, .events = 0};
    CHECK(sl_segment_index_add(ix, &empty) == SL_ECORRUPT);
    sl_segment_t small = {.first_seq = 20, .last_seq = 25, .bytes = 48 + 30, .events = 2};
    CHECK(sl_segment_index_add(ix, &small) == SL_ECORRUPT);
    sl_segment_t many = {.first_seq = 20, .last_seq = 21, .bytes = 4800, .events = 3};
    CHECK(sl_segment_index_add(ix, &many) == SL_ECORRUPT);
    CHECK(sl_segment_index_count(ix) == 1);
    sl_segment_t next = {
        .first_seq = 11, .last_seq = 11, .bytes = 48 + 31, .events = 1, .payload_bytes = 1};
    CHECK(sl_segment_index_add(ix, &next) == 0);
    CHECK(sl_segment_index_events(ix) == 11 && sl_segment_index_last_seq(ix) == 11);
    /* Appends continue in the last segment, after its readable end. */
    sl_segment_place_t pl;
    CHECK(sl_segment_index_place(ix, 12, 31, &pl) == 0);
    CHECK(pl.segment == 11 && pl.offset == 48 + 31 && !pl.created);
    sl_segment_index_destroy(ix);
}

/* ---- catch-up reads --------------------------------------------------- */

typedef struct collected {
    uint64_t seqs[4096];
    int count;
    int stop_after; /* 0: never stop */
} collected_t;

static int collect(const sl_record_view_t *rec, void *ctx)
{
    collected_t *c = ctx;
    char want[32];
    int n = snprintf(want, sizeof want, "e%llu", (unsigned long long)rec->seq);
    CHECK(rec->data_len == (uint32_t)n && memcmp(rec->data, want, (size_t)n) == 0);
    CHECK(c->count < 4096);
    c->seqs[c->count++] = rec->seq;
    return c->stop_after && c->count >= c->stop_after;
}

/* Runs a cursor from `from` until caught up; returns rounds (reads). */
static int read_all(disk_t *d, sl_segment_index_t *ix, sl_segment_cursor_t *c, uint32_t cap,
                    collected_t *out)
{
    uint8_t *buf = malloc(cap);
    CHECK(buf != NULL);
    int rounds = 0;
    sl_segment_read_t rd;
    while (sl_segment_cursor_plan(c, ix, cap, &rd) == 0) {
        CHECK(++rounds < 100000); /* bounded */
        int f = disk_file(d, rd.segment);
        CHECK(f >= 0 && rd.offset + rd.len <= d->len[f]);
        memcpy(buf, d->data[f] + rd.offset, rd.len);
        CHECK(sl_segment_cursor_consume(c, ix, &rd, buf, rd.len, collect, out) >= 0);
        if (out->stop_after && out->count >= out->stop_after)
            break;
    }
    free(buf);
    return rounds;
}

static sl_segment_index_t *build_log(disk_t *d, uint64_t last, uint64_t skip_mod)
{
    sl_segment_index_t *ix;
    CHECK(sl_segment_index_create(SL_SEGMENT_BYTES_MIN, 2048, &ix) == 0);
    for (uint64_t s = 1; s <= last; s++) {
        if (skip_mod && s % skip_mod == 0)
            continue; /* ephemeral: takes a seq, not logged */
        char data[32];
        int n = snprintf(data, sizeof data, "e%llu", (unsigned long long)s);
        CHECK(append(d, ix, s, "message", data, (uint32_t)n, true) == 0);
    }
    return ix;
}

static void test_segment_cursor_reads_whole_log(void)
{
    disk_t d = {0};
    sl_segment_index_t *ix = build_log(&d, 3000, 7);
    CHECK(sl_segment_index_count(ix) > 1);
    sl_segment_cursor_t c;
    sl_segment_cursor_init(&c, 1);
    static collected_t got;
    memset(&got, 0, sizeof got);
    uint32_t cap = (uint32_t)SL_RECORD_MAX_SIZE(2048); /* the minimum */
    read_all(&d, ix, &c, cap, &got);
    int k = 0;
    for (uint64_t s = 1; s <= 3000; s++)
        if (s % 7 != 0)
            CHECK(got.seqs[k++] == s);
    CHECK(got.count == k);
    CHECK(c.next_seq == 3001);
    /* Caught up: nothing to plan until more is committed. */
    sl_segment_read_t rd;
    CHECK(sl_segment_cursor_plan(&c, ix, cap, &rd) == SL_EAGAIN);
    CHECK(append(&d, ix, 3001, "message", "e3001", 5, true) == 0);
    memset(&got, 0, sizeof got);
    read_all(&d, ix, &c, cap, &got);
    CHECK(got.count == 1 && got.seqs[0] == 3001);
    sl_segment_index_destroy(ix);
    disk_free(&d);
}

static void test_segment_cursor_starts_mid_log_and_at_gaps(void)
{
    disk_t d = {0};
    sl_segment_index_t *ix = build_log(&d, 3000, 7);
    static collected_t got;
    uint64_t starts[] = {1, 2, 7, 8, 500, 1001, 1400, 2999, 3000};
    for (size_t i = 0; i < sizeof starts / sizeof starts[0]; i++) {
        memset(&got, 0, sizeof got);
        sl_segment_cursor_t c;
        sl_segment_cursor_init(&c, starts[i]);
        read_all(&d, ix, &c, 1u << 16, &got);
        uint64_t first = starts[i] % 7 == 0 ? starts[i] + 1 : starts[i];
        CHECK(got.count > 0 && got.seqs[0] == first);
        CHECK(got.seqs[got.count - 1] == 3000); /* 3000 is not a multiple of 7 */
    }
    /* Beyond the end: caught up. */
    sl_segment_cursor_t c;
    sl_segment_read_t rd;
    sl_segment_cursor_init(&c, 3001);
    CHECK(sl_segment_cursor_plan(&c, ix, 1u << 16, &rd) == SL_EAGAIN);
    sl_segment_index_destroy(ix);
    disk_free(&d);
}

static int first_seq_cb(const sl_record_view_t *rec, void *ctx)
{
    uint64_t *first = ctx;
    if (*first == 0)
        *first = rec->seq;
    return 0;
}

static void test_segment_cursor_skips_gap_between_segments(void)
{
    disk_t d = {0};
    sl_segment_index_t *ix;
    CHECK(sl_segment_index_create(SL_SEGMENT_BYTES_MIN, 1u << 20, &ix) == 0);
    static uint8_t big[70000];
    CHECK(append(&d, ix, 1, "m", "a", 1, true) == 0);
    CHECK(append(&d, ix, 2, "m", big, sizeof big, true) == 0); /* segment 2 */
    CHECK(append(&d, ix, 9, "m", "b", 1, true) == 0);          /* segment 9 */
    CHECK(sl_segment_index_count(ix) == 3);
    for (uint64_t from = 3; from <= 9; from++) {
        sl_segment_cursor_t c;
        sl_segment_read_t rd;
        sl_segment_cursor_init(&c, from);
        CHECK(sl_segment_cursor_plan(&c, ix, 1u << 21, &rd) == 0);
        CHECK(rd.segment == 9 && rd.offset == SL_SEGMENT_HEADER_BYTES);
        uint64_t first = 0;
        int f = disk_file(&d, 9);
        CHECK(sl_segment_cursor_consume(&c, ix, &rd, d.data[f] + rd.offset, rd.len, first_seq_cb,
                                        &first) == 1);
        CHECK(first == 9);
    }
    sl_segment_index_destroy(ix);
    disk_free(&d);
}

static void test_segment_sparse_index_shortens_reads(void)
{
    disk_t d = {0};
    sl_segment_index_t *ix = build_log(&d, 3000, 0);
    const sl_segment_t *s0 = sl_segment_index_at(ix, 0);
    /* Appends noted offsets as they were committed. */
    CHECK(s0->_sparse_count > 0);
    CHECK(s0->_sparse_count <= SL_SEGMENT_SPARSE_MAX);
    uint64_t stride = sl_segment_index_sparse_stride(ix);
    CHECK(stride == SL_SEGMENT_SPARSE_STRIDE_MIN);
    uint64_t prev = SL_SEGMENT_HEADER_BYTES;
    for (uint32_t i = 0; i < s0->_sparse_count; i++) {
        CHECK(s0->_sparse[i].offset - prev >= stride);
        prev = s0->_sparse[i].offset;
    }
    /* A cursor for the last record of segment 0 starts within one stride
     * of it, not at the start of the file. */
    sl_segment_cursor_t c;
    sl_segment_read_t rd;
    sl_segment_cursor_init(&c, s0->last_seq);
    CHECK(sl_segment_cursor_plan(&c, ix, 1u << 16, &rd) == 0);
    CHECK(rd.segment == s0->first_seq);
    CHECK(rd.offset > SL_SEGMENT_HEADER_BYTES);
    CHECK(s0->bytes - rd.offset <= stride + 2048);
    sl_segment_index_destroy(ix);
    disk_free(&d);
}

static void test_segment_sparse_index_is_bounded(void)
{
    sl_segment_index_t *ix;
    CHECK(sl_segment_index_create(SL_SEGMENT_BYTES_MIN, 4096, &ix) == 0);
    sl_segment_t s = {.first_seq = 1, .last_seq = 5000, .bytes = 1ull << 30, .events = 5000};
    CHECK(sl_segment_index_add(ix, &s) == 0);
    uint64_t stride = sl_segment_index_sparse_stride(ix);
    uint64_t off = SL_SEGMENT_HEADER_BYTES;
    for (uint64_t q = 1; q <= 3000; q++) {
        sl_segment_index_note(ix, 0, q, off, (uint32_t)stride);
        off += stride;
    }
    CHECK(sl_segment_index_at(ix, 0)->_sparse_count == SL_SEGMENT_SPARSE_MAX);
    /* A note that does not continue the covered prefix is ignored. */
    sl_segment_index_note(ix, 0, 4000, off + 100, 64);
    CHECK(sl_segment_index_at(ix, 0)->_scanned == off);
    sl_segment_index_destroy(ix);
}

static void test_segment_cursor_stops_when_callback_says(void)
{
    disk_t d = {0};
    sl_segment_index_t *ix = build_log(&d, 100, 0);
    static collected_t got;
    memset(&got, 0, sizeof got);
    got.stop_after = 3;
    sl_segment_cursor_t c;
    sl_segment_cursor_init(&c, 10);
    read_all(&d, ix, &c, 1u << 16, &got);
    CHECK(got.count == 3 && got.seqs[2] == 12);
    CHECK(c.next_seq == 13);
    got.stop_after = 0;
    read_all(&d, ix, &c, 1u << 16, &got);
    CHECK(got.seqs[3] == 13 && got.seqs[got.count - 1] == 100);
    sl_segment_index_destroy(ix);
    disk_free(&d);
}

static int count_cb(const sl_record_view_t *rec, void *ctx)
{
    (void)rec;
    (*(int *)ctx)++;
    return 0;
}

static void test_segment_cursor_resyncs_past_corruption(void)
{
    disk_t d = {0};
    sl_segment_index_t *ix = build_log(&d, 50, 0);
    /* Damage record 20's data inside the readable range. */
    uint8_t *p = d.data[0];
    size_t off = SL_SEGMENT_HEADER_BYTES;
    for (int k = 1; k < 20; k++)
        off += sl_record_size(7, (uint32_t)snprintf(NULL, 0, "e%d", k));
    p[off + SL_RECORD_OVERHEAD + 7] ^= 0x40;
    sl_segment_cursor_t c;
    sl_segment_read_t rd;
    sl_segment_cursor_init(&c, 1);
    CHECK(sl_segment_cursor_plan(&c, ix, 1u << 16, &rd) == 0);
    int n = 0;
    /* Every record but 20: the reader does not stop at the damage. */
    CHECK(sl_segment_cursor_consume(&c, ix, &rd, d.data[0] + rd.offset, rd.len, count_cb, &n) ==
          49);
    CHECK(n == 49 && c.next_seq == 51);
    CHECK(sl_segment_index_damage_skips(ix) == 1);
    CHECK(sl_segment_cursor_plan(&c, ix, 1u << 16, &rd) == SL_EAGAIN);
    /* Damage in the last record: the cursor moves past the segment. */
    sl_segment_cursor_init(&c, 45);
    p[d.len[0] - 1] ^= 0x01;
    CHECK(sl_segment_cursor_plan(&c, ix, 1u << 16, &rd) == 0);
    n = 0;
    CHECK(sl_segment_cursor_consume(&c, ix, &rd, d.data[0] + rd.offset, rd.len, count_cb, &n) == 5);
    CHECK(c.next_seq == 51);
    CHECK(sl_segment_cursor_plan(&c, ix, 1u << 16, &rd) == SL_EAGAIN);
    sl_segment_index_destroy(ix);
    disk_free(&d);
}

static void test_segment_cursor_rereads_cut_record(void)
{
    disk_t d = {0};
    sl_segment_index_t *ix = build_log(&d, 10, 0);
    sl_segment_cursor_t c;
    sl_segment_read_t rd;
    sl_segment_cursor_init(&c, 1);
    CHECK(sl_segment_cursor_plan(&c, ix, 1u << 16, &rd) == 0);
    /* A short read that ends inside record 2. */
    size_t cut = sl_record_size(7, 2) + 5;
    int n = 0;
    CHECK(sl_segment_cursor_consume(&c, ix, &rd, d.data[0] + rd.offset, cut, count_cb, &n) == 1);
    CHECK(c.next_seq == 2);
    CHECK(sl_segment_cursor_plan(&c, ix, 1u << 16, &rd) == 0);
    CHECK(rd.offset == SL_SEGMENT_HEADER_BYTES + sl_record_size(7, 2));
    CHECK(sl_segment_cursor_consume(&c, ix, &rd, d.data[0] + rd.offset, rd.len, count_cb, &n) == 9);
    sl_segment_index_destroy(ix);
    disk_free(&d);
}

/* ---- retention: dropping the oldest segment -------------------------- */

/* The totals equal the sums over the segments, positions are ordered, and
 * every segment but the last holds readable records. */
static void check_index_sums(const sl_segment_index_t *ix)
{
    uint64_t events = 0, payload = 0, bytes = 0, prev = 0;
    uint32_t n = sl_segment_index_count(ix);
    for (uint32_t i = 0; i < n; i++) {
        const sl_segment_t *s = sl_segment_index_at(ix, i);
        CHECK(s->first_seq > prev);
        CHECK(i + 1 == n || s->events > 0);
        prev = s->last_seq ? s->last_seq : s->first_seq;
        events += s->events;
        payload += s->payload_bytes;
        bytes += s->bytes;
    }
    CHECK(sl_segment_index_events(ix) == events);
    CHECK(sl_segment_index_payload_bytes(ix) == payload);
    CHECK(sl_segment_index_bytes(ix) == bytes);
}

static void test_segment_drop_first_keeps_totals(void)
{
    disk_t d = {0};
    sl_segment_index_t *ix = build_log(&d, 6000, 7);
    CHECK(sl_segment_index_count(ix) >= 3);
    check_index_sums(ix);
    CHECK(sl_segment_index_first_seq(ix) == 1);
    uint64_t last = sl_segment_index_last_seq(ix);
    while (sl_segment_index_count(ix) > 1) {
        sl_segment_t want = *sl_segment_index_at(ix, 0);
        uint64_t next_first = sl_segment_index_at(ix, 1)->first_seq;
        uint64_t ev = sl_segment_index_events(ix), pb = sl_segment_index_payload_bytes(ix);
        uint64_t by = sl_segment_index_bytes(ix);
        CHECK(sl_segment_index_can_drop_first(ix));
        sl_segment_t out;
        memset(&out, 0xab, sizeof out);
        CHECK(sl_segment_index_drop_first(ix, &out) == 0);
        CHECK(out.first_seq == want.first_seq && out.last_seq == want.last_seq);
        CHECK(out.bytes == want.bytes && out.events == want.events);
        CHECK(out.payload_bytes == want.payload_bytes && out.last_ts_ns == want.last_ts_ns);
        CHECK(out._sparse == NULL && out._sparse_count == 0);
        CHECK(sl_segment_index_events(ix) == ev - want.events);
        CHECK(sl_segment_index_payload_bytes(ix) == pb - want.payload_bytes);
        CHECK(sl_segment_index_bytes(ix) == by - want.bytes);
        CHECK(sl_segment_index_first_seq(ix) == next_first);
        CHECK(sl_segment_index_last_seq(ix) == last);
        CHECK(sl_segment_index_dropped(ix, want.first_seq));
        CHECK(!sl_segment_index_dropped(ix, next_first));
        check_index_sums(ix);
    }
    /* The last segment takes the appends: never dropped. */
    sl_segment_t out = {.first_seq = 42};
    CHECK(!sl_segment_index_can_drop_first(ix));
    CHECK(sl_segment_index_drop_first(ix, &out) == SL_EAGAIN);
    CHECK(out.first_seq == 42); /* untouched */
    CHECK(sl_segment_index_count(ix) == 1);
    CHECK(sl_segment_index_at(ix, 0)->last_seq == last);
    /* Appends continue in it after the drops. */
    CHECK(append(&d, ix, 6001, "message", "e6001", 5, true) == 0);
    CHECK(sl_segment_index_last_seq(ix) == 6001);
    check_index_sums(ix);
    sl_segment_index_destroy(ix);
    disk_free(&d);
}

/* A segment with a record still in flight is not dropped; once it is
 * committed the segment goes, and the commit of the record placed in the
 * next segment lands there. */
static void test_segment_drop_first_waits_for_commits(void)
{
    disk_t d = {0};
    sl_segment_index_t *ix;
    CHECK(sl_segment_index_create(SL_SEGMENT_BYTES_MIN, 1u << 20, &ix) == 0);
    static uint8_t big[70000];
    CHECK(append(&d, ix, 1, "m", "a", 1, false) == 0);
    CHECK(append(&d, ix, 2, "m", big, sizeof big, false) == 0); /* segment 2 */
    CHECK(sl_segment_index_count(ix) == 2);
    CHECK(sl_segment_index_first_seq(ix) == 0); /* nothing readable */
    CHECK(!sl_segment_index_can_drop_first(ix));
    sl_segment_t out;
    CHECK(sl_segment_index_drop_first(ix, &out) == SL_EAGAIN);
    CHECK(sl_segment_index_commit(ix, 1, sl_record_size(1, 1), 1) == SL_SEGMENT_HEADER_BYTES);
    CHECK(sl_segment_index_first_seq(ix) == 1);
    CHECK(sl_segment_index_drop_first(ix, &out) == 0);
    CHECK(out.first_seq == 1 && out.events == 1);
    CHECK(sl_segment_index_first_seq(ix) == 0); /* segment 2 is not readable yet */
    CHECK(sl_segment_index_commit(ix, 2, sl_record_size(1, sizeof big), sizeof big) ==
          SL_SEGMENT_HEADER_BYTES);
    CHECK(sl_segment_index_first_seq(ix) == 2 && sl_segment_index_last_seq(ix) == 2);
    CHECK(sl_segment_index_events(ix) == 1);
    check_index_sums(ix);
    sl_segment_index_destroy(ix);
    disk_free(&d);
}

/* Retention at steady state: one segment in, one out, for many more
 * segments than the array ever held. The entries slide inside their
 * allocation and move back now and then; nothing is lost or reordered. */
static void test_segment_drop_first_churn(void)
{
    sl_segment_index_t *ix;
    CHECK(sl_segment_index_create(SL_SEGMENT_BYTES_MIN, 1u << 20, &ix) == 0);
    /* Two records per segment. */
    uint32_t size = (uint32_t)((SL_SEGMENT_BYTES_MIN - SL_SEGMENT_HEADER_BYTES) / 2);
    uint32_t dl = size - SL_RECORD_OVERHEAD - 1;
    uint64_t seq = 0, dropped = 0;
    for (int round = 0; round < 5000; round++) {
        sl_segment_place_t pl;
        seq++;
        CHECK(sl_segment_index_place(ix, seq, size, &pl) == 0);
        CHECK(pl.segment == (seq + 1) / 2 * 2 - 1); /* odd seqs open segments */
        sl_segment_index_commit_ts(ix, seq, size, dl, seq);
        /* Keep between 3 and 9 segments, like a bytes bound would. */
        uint32_t keep = 3 + (uint32_t)(round % 7);
        while (sl_segment_index_count(ix) > keep) {
            sl_segment_t out;
            uint64_t first = sl_segment_index_at(ix, 0)->first_seq;
            CHECK(sl_segment_index_drop_first(ix, &out) == 0);
            CHECK(out.first_seq == first && out.last_ts_ns == first + 1);
            dropped += out.events;
        }
    }
    check_index_sums(ix);
    CHECK(dropped + sl_segment_index_events(ix) == seq);
    uint32_t n = sl_segment_index_count(ix);
    CHECK(sl_segment_index_at(ix, n - 1)->last_seq == seq);
    CHECK(sl_segment_index_first_seq(ix) == sl_segment_index_at(ix, 0)->first_seq);
    sl_segment_index_destroy(ix);
}

/* placed_bytes counts what the files will hold: readable bytes plus the
 * records (and headers of new segments) still in flight; a failure forgets
 * the latter, a drop takes its segment's share. */
static void test_segment_placed_bytes(void)
{
    disk_t d = {0};
    sl_segment_index_t *ix;
    CHECK(sl_segment_index_create(SL_SEGMENT_BYTES_MIN, 1u << 20, &ix) == 0);
    static uint8_t big[70000];
    uint64_t small = sl_record_size(1, 1), large = sl_record_size(1, sizeof big);
    CHECK(append(&d, ix, 1, "m", "a", 1, true) == 0);
    CHECK(append(&d, ix, 2, "m", "b", 1, false) == 0);
    CHECK(sl_segment_index_bytes(ix) == SL_SEGMENT_HEADER_BYTES + small);
    CHECK(sl_segment_index_placed_bytes(ix) == SL_SEGMENT_HEADER_BYTES + 2 * small);
    CHECK(append(&d, ix, 3, "m", big, sizeof big, false) == 0); /* segment 3 */
    CHECK(sl_segment_index_placed_bytes(ix) == 2 * SL_SEGMENT_HEADER_BYTES + 2 * small + large);
    sl_segment_index_commit(ix, 2, (uint32_t)small, 1);
    sl_segment_index_commit(ix, 3, (uint32_t)large, sizeof big);
    CHECK(sl_segment_index_placed_bytes(ix) == sl_segment_index_bytes(ix));
    CHECK(append(&d, ix, 4, "m", "c", 1, false) == 0); /* segment 4, in flight */
    CHECK(append(&d, ix, 5, "m", "d", 1, false) == 0);
    sl_segment_t out;
    CHECK(sl_segment_index_drop_first(ix, &out) == 0 && out.first_seq == 1);
    CHECK(sl_segment_index_placed_bytes(ix) ==
          SL_SEGMENT_HEADER_BYTES + large + SL_SEGMENT_HEADER_BYTES + 2 * small);
    sl_segment_index_fail(ix);
    CHECK(sl_segment_index_count(ix) == 1);
    CHECK(sl_segment_index_placed_bytes(ix) == sl_segment_index_bytes(ix));
    CHECK(sl_segment_index_bytes(ix) == SL_SEGMENT_HEADER_BYTES + large);
    sl_segment_index_destroy(ix);
    disk_free(&d);
}

/* Readers and drops: a cursor from before the retained history starts at
 * the oldest retained record; one positioned in a dropped segment (between
 * reads, or with a read in hand) continues at the new first segment; one at
 * the end of a dropped segment loses nothing. */
static void test_segment_cursor_survives_drops(void)
{
    disk_t d = {0};
    sl_segment_index_t *ix = build_log(&d, 6000, 0);
    CHECK(sl_segment_index_count(ix) >= 4);
    uint32_t cap = 1u << 16;
    static collected_t got;
    sl_segment_read_t rd;
    sl_segment_t out;

    /* In the middle of segment 0 between reads. */
    sl_segment_cursor_t mid;
    sl_segment_cursor_init(&mid, 1);
    memset(&got, 0, sizeof got);
    got.stop_after = 5;
    read_all(&d, ix, &mid, cap, &got);
    CHECK(mid.next_seq == 6);
    /* With a planned read in hand. */
    sl_segment_cursor_t held;
    sl_segment_cursor_init(&held, 10);
    CHECK(sl_segment_cursor_plan(&held, ix, cap, &rd) == 0);
    CHECK(rd.segment == 1);
    /* Exactly at the end of segment 0. */
    uint64_t s1 = sl_segment_index_at(ix, 1)->first_seq;
    sl_segment_cursor_t edge;
    sl_segment_cursor_init(&edge, s1 - 1);
    memset(&got, 0, sizeof got);
    got.stop_after = 1;
    read_all(&d, ix, &edge, cap, &got);
    CHECK(got.seqs[0] == s1 - 1 && edge.next_seq == s1);

    CHECK(sl_segment_index_drop_first(ix, &out) == 0 && out.first_seq == 1);

    /* The held read's bytes are not looked at: the segment's bounds are gone. */
    int n = 0;
    CHECK(sl_segment_cursor_consume(&held, ix, &rd, "junk", 4, count_cb, &n) == 0);
    CHECK(n == 0 && held.next_seq == 10);
    sl_segment_cursor_t *cs[] = {&mid, &held, &edge};
    for (int k = 0; k < 3; k++) {
        memset(&got, 0, sizeof got);
        got.stop_after = 1;
        read_all(&d, ix, cs[k], cap, &got);
        CHECK(got.count == 1 && got.seqs[0] == s1);
    }
    /* A new cursor from before the retained history, and from 0. */
    uint64_t s2 = sl_segment_index_at(ix, 1)->first_seq;
    CHECK(sl_segment_index_drop_first(ix, &out) == 0 && out.first_seq == s1);
    uint64_t froms[] = {0, 1, s1, s2 - 1, s2};
    for (size_t k = 0; k < sizeof froms / sizeof froms[0]; k++) {
        sl_segment_cursor_t c;
        sl_segment_cursor_init(&c, froms[k]);
        CHECK(sl_segment_cursor_plan(&c, ix, cap, &rd) == 0);
        CHECK(rd.segment == s2 && rd.offset == SL_SEGMENT_HEADER_BYTES);
        memset(&got, 0, sizeof got);
        read_all(&d, ix, &c, cap, &got);
        CHECK(got.seqs[0] == s2 && got.seqs[got.count - 1] == 6000);
        CHECK((uint64_t)got.count == 6000 - s2 + 1);
    }
    sl_segment_index_destroy(ix);
    disk_free(&d);
}

/* last_ts_ns keeps the newest commit time; segments added without one take
 * the time of the first record committed after them; an added time stays. */
static void test_segment_last_ts(void)
{
    disk_t d = {0};
    sl_segment_index_t *ix;
    CHECK(sl_segment_index_create(SL_SEGMENT_BYTES_MIN, 4096, &ix) == 0);
    sl_segment_t a = {.first_seq = 1, .last_seq = 10, .bytes = 48 + 10 * 30, .events = 10};
    sl_segment_t b = {
        .first_seq = 11, .last_seq = 20, .bytes = 48 + 10 * 30, .events = 10, .last_ts_ns = 500};
    sl_segment_t c = {.first_seq = 21, .last_seq = 30, .bytes = 48 + 10 * 30, .events = 10};
    CHECK(sl_segment_index_add(ix, &a) == 0);
    CHECK(sl_segment_index_at(ix, 0)->last_ts_ns == 0);
    CHECK(sl_segment_index_add(ix, &b) == 0);
    CHECK(sl_segment_index_add(ix, &c) == 0);
    /* Segment 1 takes the time of segment 11, added after it. */
    CHECK(sl_segment_index_at(ix, 0)->last_ts_ns == 500);
    CHECK(sl_segment_index_at(ix, 1)->last_ts_ns == 500);
    CHECK(sl_segment_index_at(ix, 2)->last_ts_ns == 0);
    CHECK(sl_segment_index_bytes(ix) == 3 * (48 + 10 * 30));
    /* The next record goes into segment 21 with a time of 9000: segment 21
     * takes it, segments 11 and 1 keep 500. */
    uint32_t size = sl_record_size(1, 1);
    sl_segment_place_t pl;
    CHECK(sl_segment_index_place(ix, 31, size, &pl) == 0 && pl.segment == 21);
    sl_segment_index_commit_ts(ix, 31, size, 1, 9000);
    CHECK(sl_segment_index_at(ix, 2)->last_ts_ns == 9000);
    CHECK(sl_segment_index_at(ix, 1)->last_ts_ns == 500);
    CHECK(sl_segment_index_at(ix, 0)->last_ts_ns == 500);
    /* Times only grow; a commit without one records nothing. */
    CHECK(sl_segment_index_place(ix, 32, size, &pl) == 0);
    sl_segment_index_commit_ts(ix, 32, size, 1, 7000);
    CHECK(sl_segment_index_place(ix, 33, size, &pl) == 0);
    sl_segment_index_commit(ix, 33, size, 1);
    CHECK(sl_segment_index_at(ix, 2)->last_ts_ns == 9000);
    CHECK(sl_segment_index_bytes(ix) == 3 * (48 + 10 * 30) + 3 * size);
    sl_segment_index_destroy(ix);

    /* Unknown segments before the one a commit lands in all take its time. */
    CHECK(sl_segment_index_create(SL_SEGMENT_BYTES_MIN, 1u << 20, &ix) == 0);
    CHECK(sl_segment_index_add(ix, &a) == 0);
    sl_segment_t c2 = c;
    c2.first_seq = 11;
    c2.last_seq = 20;
    CHECK(sl_segment_index_add(ix, &c2) == 0);
    CHECK(sl_segment_index_place(ix, 21, size, &pl) == 0 && pl.segment == 11);
    sl_segment_index_commit_ts(ix, 21, size, 1, 1234);
    CHECK(sl_segment_index_at(ix, 0)->last_ts_ns == 1234);
    CHECK(sl_segment_index_at(ix, 1)->last_ts_ns == 1234);
    static uint8_t big[70000];
    CHECK(append(&d, ix, 22, "m", big, sizeof big, false) == 0); /* opens segment 22 */
    sl_segment_index_commit_ts(ix, 22, sl_record_size(1, sizeof big), sizeof big, 99);
    CHECK(sl_segment_index_at(ix, 2)->last_ts_ns == 99);
    CHECK(sl_segment_index_at(ix, 1)->last_ts_ns == 1234); /* known: kept */
    sl_segment_index_destroy(ix);
    disk_free(&d);
}

int main(void)
{
    test_session_id_valid_rule();
    test_segment_name_format_and_parse();
    test_segment_path_validates_id();
    test_segment_header_round_trip_and_damage();
    test_segment_place_rolls_at_bound();
    test_segment_commit_makes_readable_in_order();
    test_segment_fail_drops_placements();
    test_segment_add_checks_consistency();
    test_segment_cursor_reads_whole_log();
    test_segment_cursor_starts_mid_log_and_at_gaps();
    test_segment_cursor_skips_gap_between_segments();
    test_segment_sparse_index_shortens_reads();
    test_segment_sparse_index_is_bounded();
    test_segment_cursor_stops_when_callback_says();
    test_segment_cursor_resyncs_past_corruption();
    test_segment_cursor_rereads_cut_record();
    test_segment_drop_first_keeps_totals();
    test_segment_drop_first_waits_for_commits();
    test_segment_drop_first_churn();
    test_segment_placed_bytes();
    test_segment_cursor_survives_drops();
    test_segment_last_ts();
    printf("segment_test: ok\n");
    return 0;
}
