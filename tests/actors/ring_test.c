/*
 * Event ring tests: seek/read arithmetic, completed-event accounting across
 * pages, eviction at the byte bound (readers told to catch up), oversized
 * events, and a writer racing two readers that reassemble the stream
 * byte-exactly (run under TSan in CI).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actors/ring.h"

#include "tests/check.h"

/* Event seq's bytes: "<seq>:" then filler to a length that varies. */
static uint32_t event_bytes(uint64_t seq, uint8_t *out)
{
    int n = sprintf((char *)out, "%llu:", (unsigned long long)seq);
    uint32_t len = (uint32_t)n + (uint32_t)(seq * 7 % 50);
    for (uint32_t i = (uint32_t)n; i < len - 1; i++)
        out[i] = (uint8_t)('a' + seq % 26);
    out[len - 1] = '\n';
    return len;
}

static void append(sl_ring_t *r, uint64_t seq)
{
    uint8_t buf[128];
    uint32_t n = event_bytes(seq, buf);
    uint8_t *dst = sl_ring_reserve(r, n);
    CHECK(dst != NULL);
    memcpy(dst, buf, n);
    sl_ring_commit(r, seq, n);
}

static void release_all(sl_ring_slice_t *s, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        sl_chunk_release(s[i].chunk);
}

static void test_ring_seek_read_count(void)
{
    sl_ring_t *r;
    CHECK(sl_ring_create(1 << 20, 256, 1, &r) == 0);
    uint64_t pos = 99;
    CHECK(sl_ring_seek(r, 1, &pos) == SL_EAGAIN && pos == 0);
    uint64_t expect_pos[101] = {0};
    uint64_t total = 0;
    for (uint64_t s = 1; s <= 100; s++) {
        uint8_t tmp[128];
        expect_pos[s] = total;
        total += event_bytes(s, tmp);
        append(r, s);
    }
    CHECK(sl_ring_tail_pos(r) == total);
    CHECK(sl_ring_next_seq(r) == 101);
    for (uint64_t s = 1; s <= 100; s++) {
        CHECK(sl_ring_seek(r, s, &pos) == 0);
        CHECK(pos == expect_pos[s]);
    }
    /* Read everything in one go: many pages, all 100 events complete. */
    sl_ring_slice_t sl[64];
    sl_ring_read_t res;
    CHECK(sl_ring_read(r, 0, UINT64_MAX, false, sl, 64, &res) == 0);
    CHECK(res.end_pos == total);
    CHECK(res.events_completed == 100 && res.last_seq_completed == 100);
    uint64_t sum = 0;
    for (uint32_t i = 0; i < res.nslices; i++)
        sum += sl[i].len;
    CHECK(sum == total);
    release_all(sl, res.nslices);
    /* A read that stops mid-event completes only the events before. */
    CHECK(sl_ring_read(r, expect_pos[10], expect_pos[12] - expect_pos[10] + 1, false, sl, 64, &res) == 0);
    CHECK(res.events_completed == 2 && res.last_seq_completed == 11);
    release_all(sl, res.nslices);
    /* Whole events: a budget ending mid-event stops at the boundary. */
    CHECK(sl_ring_read(r, expect_pos[10], expect_pos[12] - expect_pos[10] + 1, true, sl, 64, &res) == 0);
    CHECK(res.end_pos == expect_pos[12] && res.last_seq_completed == 11);
    release_all(sl, res.nslices);
    /* ... and a first event bigger than the budget comes whole. */
    CHECK(sl_ring_read(r, expect_pos[20], 1, true, sl, 64, &res) == 0);
    CHECK(res.end_pos == expect_pos[21] && res.events_completed == 1);
    release_all(sl, res.nslices);
    /* Nothing new at the tail. */
    CHECK(sl_ring_read(r, total, 1000, false, sl, 64, &res) == 0);
    CHECK(res.nslices == 0 && res.end_pos == total);
    sl_ring_destroy(r);
}

static void test_ring_evicts_at_bound(void)
{
    sl_ring_t *r;
    CHECK(sl_ring_create(1024, 256, 5, &r) == 0);
    for (uint64_t s = 5; s < 505; s++)
        append(r, s);
    CHECK(sl_ring_bytes(r) <= 1024);
    uint64_t first = sl_ring_first_seq(r);
    CHECK(first > 5);
    uint64_t pos;
    CHECK(sl_ring_seek(r, 5, &pos) == SL_ENOTFOUND);
    CHECK(sl_ring_seek(r, first, &pos) == 0);
    sl_ring_slice_t sl[8];
    sl_ring_read_t res;
    CHECK(sl_ring_read(r, 0, 100, false, sl, 8, &res) == SL_ENOTFOUND);
    CHECK(sl_ring_read(r, pos, 100000, false, sl, 8, &res) == 0);
    CHECK(res.last_seq_completed == 504);
    /* Held slices stay valid after further eviction. */
    for (uint64_t s = 505; s < 1000; s++)
        append(r, s);
    char head[32];
    int n = sprintf(head, "%llu:", (unsigned long long)first);
    CHECK(memcmp(sl[0].chunk->data + sl[0].off, head, (size_t)n) == 0);
    release_all(sl, res.nslices);
    sl_ring_destroy(r);
}

static void test_ring_oversized_event_own_page(void)
{
    sl_ring_t *r;
    CHECK(sl_ring_create(1 << 20, 256, 1, &r) == 0);
    append(r, 1);
    uint8_t *dst = sl_ring_reserve(r, 5000);
    CHECK(dst != NULL);
    memset(dst, 'z', 5000);
    sl_ring_commit(r, 2, 5000);
    append(r, 3);
    uint64_t p2, p3;
    CHECK(sl_ring_seek(r, 2, &p2) == 0 && sl_ring_seek(r, 3, &p3) == 0);
    CHECK(p3 - p2 == 5000);
    sl_ring_slice_t sl[8];
    sl_ring_read_t res;
    CHECK(sl_ring_read(r, p2, 5000, false, sl, 8, &res) == 0);
    CHECK(res.nslices == 1 && sl[0].len == 5000 && res.last_seq_completed == 2);
    release_all(sl, res.nslices);
    sl_ring_destroy(r);
}

/* ---- writer vs readers ---- */

#define RACE_EVENTS 200000u

typedef struct race {
    sl_ring_t *r;
    _Atomic int done;
} race_t;

static void *writer_main(void *p)
{
    race_t *rc = p;
    for (uint64_t s = 1; s <= RACE_EVENTS; s++)
        append(rc->r, s);
    atomic_store(&rc->done, 1);
    return NULL;
}

/* Reassembles the stream; on eviction jumps to the oldest kept event.
 * Verifies every event byte-exactly and seqs increase by one except at
 * counted jumps. */
static void *reader_main(void *p)
{
    race_t *rc = p;
    uint64_t pos = 0, expect_seq = 1, jumps = 0;
    uint8_t partial[256];
    uint32_t have = 0;
    while (expect_seq <= RACE_EVENTS) {
        sl_ring_slice_t sl[16];
        sl_ring_read_t res;
        if (sl_ring_read(rc->r, pos, 700, false, sl, 16, &res) == SL_ENOTFOUND) {
            uint64_t first = sl_ring_first_seq(rc->r);
            if (sl_ring_seek(rc->r, first, &pos) != 0)
                continue;
            expect_seq = first;
            have = 0;
            jumps++;
            continue;
        }
        for (uint32_t i = 0; i < res.nslices; i++) {
            for (uint32_t k = 0; k < sl[i].len; k++) {
                uint8_t b = sl[i].chunk->data[sl[i].off + k];
                CHECK(have < sizeof partial);
                partial[have++] = b;
                if (b != '\n')
                    continue;
                uint8_t want[128];
                uint32_t n = event_bytes(expect_seq, want);
                CHECK(have == n && memcmp(partial, want, n) == 0);
                expect_seq++;
                have = 0;
            }
            sl_chunk_release(sl[i].chunk);
        }
        pos = res.end_pos;
    }
    (void)jumps;
    return NULL;
}

static void test_ring_writer_races_readers(void)
{
    race_t rc = {0};
    CHECK(sl_ring_create(64 * 1024, 4096, 1, &rc.r) == 0);
    pthread_t w, rd[2];
    CHECK(pthread_create(&w, NULL, writer_main, &rc) == 0);
    for (int i = 0; i < 2; i++)
        CHECK(pthread_create(&rd[i], NULL, reader_main, &rc) == 0);
    pthread_join(w, NULL);
    for (int i = 0; i < 2; i++)
        pthread_join(rd[i], NULL);
    sl_ring_destroy(rc.r);
}

static void test_ring_visibility_prefix(void)
{
    sl_ring_t *r;
    CHECK(sl_ring_create(1 << 20, 256, 1, &r) == 0);
    sl_ring_set_auto_visible(r, false);
    for (uint64_t s = 1; s <= 50; s++)
        append(r, s);
    sl_ring_slice_t sl[64];
    sl_ring_read_t res;
    CHECK(sl_ring_read(r, 0, UINT64_MAX, false, sl, 64, &res) == 0);
    CHECK(res.nslices == 0 && res.end_pos == 0); /* nothing visible yet */
    sl_ring_set_visible(r, 20);
    CHECK(sl_ring_visible_seq(r) == 20);
    CHECK(sl_ring_read(r, 0, UINT64_MAX, false, sl, 64, &res) == 0);
    CHECK(res.last_seq_completed == 20 && res.events_completed == 20);
    uint64_t p21;
    CHECK(sl_ring_seek(r, 21, &p21) == 0 && res.end_pos == p21);
    release_all(sl, res.nslices);
    sl_ring_set_visible(r, 50);
    CHECK(sl_ring_read(r, p21, UINT64_MAX, false, sl, 64, &res) == 0);
    CHECK(res.last_seq_completed == 50 && res.end_pos == sl_ring_tail_pos(r));
    release_all(sl, res.nslices);
    sl_ring_destroy(r);
}

/* Per-event reads: each event whole with its seq, across pages, bounded by
 * visibility, max_events and max_bytes (a first event over max_bytes comes
 * alone), and SL_ENOTFOUND once the position was evicted. */
static void test_ring_read_events(void)
{
    sl_ring_t *r;
    CHECK(sl_ring_create(4096, 256, 1, &r) == 0);
    sl_ring_set_auto_visible(r, false);
    for (uint64_t s = 1; s <= 30; s++)
        append(r, s);
    sl_ring_event_t ev[64];
    uint32_t n;
    CHECK(sl_ring_read_events(r, 0, UINT64_MAX, ev, 64, &n) == 0 && n == 0); /* none visible */
    sl_ring_set_visible(r, 30);
    uint64_t pos = 0, want = 1;
    while (want <= 30) {
        CHECK(sl_ring_read_events(r, pos, UINT64_MAX, ev, 4, &n) == 0);
        CHECK(n >= 1 && n <= 4);
        for (uint32_t i = 0; i < n; i++, want++) {
            uint8_t tmp[128];
            uint32_t len = event_bytes(want, tmp);
            CHECK(ev[i].seq == want && ev[i].len == len);
            CHECK(memcmp(ev[i].chunk->data + ev[i].off, tmp, len) == 0);
            pos += len;
            sl_chunk_release(ev[i].chunk);
        }
    }
    CHECK(pos == sl_ring_tail_pos(r));
    CHECK(sl_ring_read_events(r, pos, UINT64_MAX, ev, 4, &n) == 0 && n == 0);
    /* max_bytes 1: still one whole event. */
    CHECK(sl_ring_read_events(r, 0, 1, ev, 64, &n) == 0 && n == 1 && ev[0].seq == 1);
    sl_chunk_release(ev[0].chunk);
    /* Evict the start: the old position must catch up elsewhere. */
    for (uint64_t s = 31; s <= 300; s++)
        append(r, s);
    sl_ring_set_visible(r, 300);
    CHECK(sl_ring_read_events(r, 0, UINT64_MAX, ev, 64, &n) == SL_ENOTFOUND);
    sl_ring_destroy(r);
}

/* sl_ring_readable answers what sl_ring_read would take, without taking
 * it: nothing on an empty ring or before visibility, the visible bytes
 * after, and SL_ENOTFOUND for an evicted position, like a read. */
static void test_ring_readable(void)
{
    sl_ring_t *r;
    uint64_t avail = 99;
    CHECK(sl_ring_create(4096, 256, 1, &r) == 0);
    CHECK(sl_ring_readable(r, 0, &avail) == 0 && avail == 0); /* empty */
    sl_ring_set_auto_visible(r, false);
    for (uint64_t s = 1; s <= 10; s++)
        append(r, s);
    CHECK(sl_ring_readable(r, 0, &avail) == 0 && avail == 0); /* none visible */
    sl_ring_set_visible(r, 4);
    uint64_t p5;
    CHECK(sl_ring_seek(r, 5, &p5) == 0);
    CHECK(sl_ring_readable(r, 0, &avail) == 0 && avail == p5);
    CHECK(sl_ring_readable(r, p5, &avail) == 0 && avail == 0);
    sl_ring_set_visible(r, 10);
    CHECK(sl_ring_readable(r, p5, &avail) == 0 && avail == sl_ring_tail_pos(r) - p5);
    CHECK(sl_ring_readable(r, sl_ring_tail_pos(r), &avail) == 0 && avail == 0);
    CHECK(sl_ring_readable(r, sl_ring_tail_pos(r) + 1, &avail) == SL_ENOTFOUND);
    for (uint64_t s = 11; s <= 300; s++)
        append(r, s);
    sl_ring_set_visible(r, 300);
    sl_ring_slice_t sl[4];
    sl_ring_read_t res;
    CHECK(sl_ring_read(r, 0, UINT64_MAX, false, sl, 4, &res) == SL_ENOTFOUND);
    CHECK(sl_ring_readable(r, 0, &avail) == SL_ENOTFOUND && avail == 0);
    sl_ring_destroy(r);
}

int main(void)
{
    test_ring_readable();
    test_ring_read_events();
    test_ring_visibility_prefix();
    test_ring_seek_read_count();
    test_ring_evicts_at_bound();
    test_ring_oversized_event_own_page();
    test_ring_writer_races_readers();
    printf("ring_test: ok\n");
    return 0;
}
