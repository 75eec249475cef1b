/*
 * Tests for runtime/buf.c: chunk reference counts and live bytes, the
 * output queue's byte and segment bounds, copy coalescing, iovec filling,
 * partial consumption across segments and transfers between queues, and
 * the per-thread pool of dead chunks.
 */
#include "runtime/buf.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
            exit(1);                                                                 \
        }                                                                            \
    } while (0)

/* Concatenates the queue's pending bytes through sl_outq_iov. */
static size_t drain_copy(const sl_outq_t *q, char *out, size_t cap)
{
    struct iovec iov[64];
    uint32_t n = sl_outq_iov(q, iov, 64, cap);
    size_t total = 0;
    for (uint32_t i = 0; i < n; i++) {
        memcpy(out + total, iov[i].iov_base, iov[i].iov_len);
        total += iov[i].iov_len;
    }
    return total;
}

static void test_buf_chunk_refcount_frees(void)
{
    uint64_t before = sl_chunk_bytes_live();
    sl_chunk_t *c = sl_chunk_create(100);
    CHECK(c != NULL);
    CHECK(c->len == 0 && c->cap == 100);
    CHECK(sl_chunk_refs(c) == 1);
    CHECK(sl_chunk_bytes_live() == before + 100);
    sl_chunk_retain(c);
    CHECK(sl_chunk_refs(c) == 2);
    sl_chunk_release(c);
    CHECK(sl_chunk_refs(c) == 1);
    CHECK(sl_chunk_bytes_live() == before + 100);
    sl_chunk_release(c);
    CHECK(sl_chunk_bytes_live() == before);

    sl_chunk_t *d = sl_chunk_from_copy("hello", 5);
    CHECK(d != NULL && d->len == 5 && d->cap == 5);
    CHECK(memcmp(d->data, "hello", 5) == 0);
    sl_chunk_release(d);
    CHECK(sl_chunk_bytes_live() == before);
}

static void test_buf_outq_byte_bound(void)
{
    sl_outq_t q;
    CHECK(sl_outq_init(&q, 16, 10) == 0);
    CHECK(sl_outq_room(&q) == 10);
    CHECK(sl_outq_append_copy(&q, "0123456", 7) == 0);
    CHECK(sl_outq_room(&q) == 3);
    /* Would exceed the bound: refused whole, nothing appended. */
    CHECK(sl_outq_append_copy(&q, "abcd", 4) == SL_EFULL);
    CHECK(q.bytes_pending == 7);
    sl_chunk_t *c = sl_chunk_from_copy("wxyz", 4);
    CHECK(sl_outq_append_ref(&q, c, 0, 4) == SL_EFULL);
    CHECK(sl_chunk_refs(c) == 1);
    CHECK(sl_outq_append_ref(&q, c, 1, 3) == 0);
    CHECK(sl_chunk_refs(c) == 2);
    CHECK(sl_outq_room(&q) == 0);
    char out[32];
    CHECK(drain_copy(&q, out, sizeof(out)) == 10);
    CHECK(memcmp(out, "0123456xyz", 10) == 0);
    sl_outq_deinit(&q);
    CHECK(sl_chunk_refs(c) == 1);
    sl_chunk_release(c);
}

static void test_buf_outq_segment_bound(void)
{
    sl_outq_t q;
    CHECK(sl_outq_init(&q, 3, 1000) == 0);
    sl_chunk_t *a = sl_chunk_from_copy("aaaa", 4);
    sl_chunk_t *b = sl_chunk_from_copy("bbbb", 4);
    CHECK(sl_outq_append_ref(&q, a, 0, 1) == 0);
    CHECK(sl_outq_append_ref(&q, b, 0, 1) == 0);
    CHECK(sl_outq_append_ref(&q, a, 2, 1) == 0); /* not contiguous: new seg */
    CHECK(sl_outq_segs_free(&q) == 0);
    CHECK(sl_outq_append_ref(&q, b, 2, 1) == SL_EFULL);
    /* Contiguous with the tail slice of the same chunk: extends it. */
    CHECK(sl_outq_append_ref(&q, a, 3, 1) == 0);
    CHECK(q.bytes_pending == 4);
    /* A copy needs a scratch chunk and no slot is free. */
    CHECK(sl_outq_append_copy(&q, "x", 1) == SL_EFULL);
    CHECK(sl_chunk_refs(a) == 3 && sl_chunk_refs(b) == 2);
    char out[8];
    CHECK(drain_copy(&q, out, sizeof(out)) == 4);
    CHECK(memcmp(out, "abaa", 4) == 0);
    sl_outq_deinit(&q);
    CHECK(sl_chunk_refs(a) == 1 && sl_chunk_refs(b) == 1);
    sl_chunk_release(a);
    sl_chunk_release(b);
}

static void test_buf_outq_copy_coalesces(void)
{
    uint64_t before = sl_chunk_bytes_live();
    sl_outq_t q;
    CHECK(sl_outq_init(&q, 8, 1 << 20) == 0);
    q.copy_chunk_bytes = 16;
    CHECK(sl_outq_append_copy(&q, "abc", 3) == 0);
    CHECK(sl_outq_append_copy(&q, "def", 3) == 0);
    CHECK(q._count == 1); /* second copy extended the same segment */
    CHECK(sl_chunk_bytes_live() == before + 16);
    /* A referenced slice in between: the next copy takes a new segment but
     * still lands in the same scratch chunk (no allocation). */
    sl_chunk_t *r = sl_chunk_from_copy("REF", 3);
    CHECK(sl_outq_append_ref(&q, r, 0, 3) == 0);
    CHECK(sl_outq_append_copy(&q, "ghi", 3) == 0);
    CHECK(q._count == 3);
    CHECK(sl_chunk_bytes_live() == before + 16 + 3);
    CHECK(q._segs[(q._head + 2) % 8].chunk == q._segs[q._head].chunk);
    /* As large as copy_chunk_bytes: a chunk of its own size. */
    char big[40];
    memset(big, 'z', sizeof(big));
    CHECK(sl_outq_append_copy(&q, big, sizeof(big)) == 0);
    CHECK(q._count == 4);
    CHECK(sl_chunk_bytes_live() == before + 16 + 3 + 40);
    /* Scratch room exhausted (9 of 16 used): a fresh scratch chunk. */
    CHECK(sl_outq_append_copy(&q, "0123456789", 10) == 0);
    CHECK(q._count == 5);
    CHECK(sl_chunk_bytes_live() == before + 16 + 3 + 40 + 16);
    char out[80];
    CHECK(drain_copy(&q, out, sizeof(out)) == 62);
    CHECK(memcmp(out, "abcdefREFghi", 12) == 0);
    CHECK(out[12] == 'z' && out[51] == 'z');
    CHECK(memcmp(out + 52, "0123456789", 10) == 0);
    /* Draining the queue drops the scratch chunk too: nothing stays
     * allocated for an idle queue. */
    sl_outq_consume(&q, 62);
    CHECK(q._scratch == NULL);
    CHECK(sl_chunk_bytes_live() == before + 3);
    sl_outq_deinit(&q);
    sl_chunk_release(r);
    CHECK(sl_chunk_bytes_live() == before);
}

static void test_buf_outq_scratch_never_rewrites_shared_bytes(void)
{
    sl_outq_t q;
    CHECK(sl_outq_init(&q, 8, 1 << 20) == 0);
    CHECK(sl_outq_append_copy(&q, "abc", 3) == 0);
    /* Another holder (a queue it was transferred to, the kernel) refers to
     * the first bytes: later copies only go past them. */
    sl_chunk_t *c = q._segs[q._head].chunk;
    sl_chunk_retain(c);
    CHECK(sl_outq_append_copy(&q, "def", 3) == 0);
    CHECK(c->len == 6 && memcmp(c->data, "abcdef", 6) == 0);
    sl_outq_consume(&q, 6);
    CHECK(sl_chunk_refs(c) == 1); /* queue dropped segments and scratch */
    sl_chunk_release(c);
    /* Caller chunks are never appended to, even with spare capacity and
     * the queue holding the only reference. */
    sl_outq_t q2;
    CHECK(sl_outq_init(&q2, 8, 1 << 20) == 0);
    sl_chunk_t *own = sl_chunk_create(64);
    memcpy(own->data, "xy", 2);
    own->len = 2;
    CHECK(sl_outq_append_ref(&q2, own, 0, 2) == 0);
    sl_chunk_release(own);
    CHECK(sl_outq_append_copy(&q2, "zz", 2) == 0);
    CHECK(q2._count == 2 && own->len == 2);
    char out[8];
    CHECK(drain_copy(&q2, out, sizeof(out)) == 4);
    CHECK(memcmp(out, "xyzz", 4) == 0);
    sl_outq_deinit(&q);
    sl_outq_deinit(&q2);
}

static void test_buf_outq_iov_bytes_max(void)
{
    sl_outq_t q;
    CHECK(sl_outq_init(&q, 8, 1 << 20) == 0);
    sl_chunk_t *a = sl_chunk_from_copy("AAAAA", 5);
    sl_chunk_t *b = sl_chunk_from_copy("BBBBB", 5);
    sl_chunk_t *c = sl_chunk_from_copy("CCCCC", 5);
    CHECK(sl_outq_append_ref(&q, a, 0, 5) == 0);
    CHECK(sl_outq_append_ref(&q, b, 0, 5) == 0);
    CHECK(sl_outq_append_ref(&q, c, 0, 5) == 0);
    struct iovec iov[8];
    /* bytes_max cuts the second iovec short. */
    CHECK(sl_outq_iov(&q, iov, 8, 7) == 2);
    CHECK(iov[0].iov_len == 5 && iov[1].iov_len == 2);
    CHECK(iov[0].iov_base == a->data && iov[1].iov_base == b->data);
    /* iov_max bounds the count. */
    CHECK(sl_outq_iov(&q, iov, 2, 100) == 2);
    CHECK(iov[1].iov_len == 5);
    CHECK(sl_outq_iov(&q, iov, 8, 100) == 3);
    CHECK(sl_outq_iov(&q, iov, 8, 0) == 0);
    sl_outq_deinit(&q);
    sl_chunk_release(a);
    sl_chunk_release(b);
    sl_chunk_release(c);
}

static void test_buf_outq_partial_consume(void)
{
    uint64_t before = sl_chunk_bytes_live();
    sl_outq_t q;
    CHECK(sl_outq_init(&q, 4, 1 << 20) == 0);
    sl_chunk_t *a = sl_chunk_from_copy("01234", 5);
    sl_chunk_t *b = sl_chunk_from_copy("56789", 5);
    CHECK(sl_outq_append_ref(&q, a, 0, 5) == 0);
    CHECK(sl_outq_append_ref(&q, b, 0, 5) == 0);
    sl_chunk_release(a); /* the queue now holds the only references */
    sl_chunk_release(b);
    CHECK(sl_chunk_bytes_live() == before + 10);
    sl_outq_consume(&q, 3);
    CHECK(q.bytes_pending == 7 && q._count == 2);
    char out[16];
    CHECK(drain_copy(&q, out, sizeof(out)) == 7);
    CHECK(memcmp(out, "3456789", 7) == 0);
    /* Across the segment boundary: a is freed, b partly consumed. */
    sl_outq_consume(&q, 4);
    CHECK(q._count == 1 && q.bytes_pending == 3);
    CHECK(sl_chunk_bytes_live() == before + 5);
    CHECK(drain_copy(&q, out, sizeof(out)) == 3);
    CHECK(memcmp(out, "789", 3) == 0);
    sl_outq_consume(&q, 3);
    CHECK(q._count == 0 && q.bytes_pending == 0);
    CHECK(sl_chunk_bytes_live() == before);
    /* The ring wraps: many append/consume rounds on 4 slots. */
    for (int i = 0; i < 10; i++) {
        sl_chunk_t *c = sl_chunk_from_copy("abc", 3);
        CHECK(sl_outq_append_ref(&q, c, 0, 3) == 0);
        CHECK(sl_outq_append_copy(&q, "d", 1) == 0);
        sl_chunk_release(c);
        CHECK(drain_copy(&q, out, sizeof(out)) == 4);
        CHECK(memcmp(out, "abcd", 4) == 0);
        sl_outq_consume(&q, 4);
    }
    CHECK(sl_chunk_bytes_live() == before);
    sl_outq_deinit(&q);
}

static void test_buf_outq_transfer(void)
{
    uint64_t before = sl_chunk_bytes_live();
    sl_outq_t src, dst;
    CHECK(sl_outq_init(&src, 8, 1 << 20) == 0);
    CHECK(sl_outq_init(&dst, 8, 6) == 0);
    sl_chunk_t *a = sl_chunk_from_copy("payload", 7);
    CHECK(sl_outq_append_copy(&src, "hd", 2) == 0);
    CHECK(sl_outq_append_ref(&src, a, 0, 7) == 0);
    CHECK(sl_outq_append_copy(&src, "\r\n", 2) == 0);
    CHECK(sl_outq_head_bytes(&src, 2) == 9);
    CHECK(sl_outq_head_bytes(&src, 99) == 11);
    CHECK(sl_outq_segs_for(&src, 2) == 1);
    CHECK(sl_outq_segs_for(&src, 3) == 2);
    CHECK(sl_outq_segs_for(&src, 10) == 3);
    CHECK(sl_outq_segs_for(&src, 0) == 0);
    /* dst's byte bound (6) splits the payload slice. */
    CHECK(sl_outq_transfer(&dst, &src, 100) == 6);
    CHECK(src.bytes_pending == 5 && dst.bytes_pending == 6);
    char out[32];
    CHECK(drain_copy(&dst, out, sizeof(out)) == 6);
    CHECK(memcmp(out, "hdpayl", 6) == 0);
    sl_outq_consume(&dst, 6);
    CHECK(sl_outq_transfer(&dst, &src, 2) == 2);
    CHECK(sl_outq_transfer(&dst, &src, 100) == 3);
    CHECK(src.bytes_pending == 0 && src._count == 0);
    CHECK(drain_copy(&dst, out, sizeof(out)) == 5);
    CHECK(memcmp(out, "oad\r\n", 5) == 0);
    sl_outq_deinit(&src);
    sl_outq_deinit(&dst);
    CHECK(sl_chunk_refs(a) == 1);
    sl_chunk_release(a);
    CHECK(sl_chunk_bytes_live() == before);
}

enum { THREADS = 4, ROUNDS = 20000 };

static void *refcount_worker(void *arg)
{
    sl_chunk_t *shared = arg;
    for (int i = 0; i < ROUNDS; i++) {
        sl_chunk_retain(shared);
        sl_chunk_t *own = sl_chunk_create(64);
        CHECK(own != NULL);
        own->data[0] = shared->data[0]; /* reads stay valid while retained */
        sl_chunk_release(own);
        sl_chunk_release(shared);
    }
    /* The last reference this thread was handed: whoever drops the final
     * one frees the chunk, here or on the main thread. */
    sl_chunk_release(shared);
    return NULL;
}

static void test_buf_chunk_refcount_threads(void)
{
    uint64_t before = sl_chunk_bytes_live();
    sl_chunk_t *c = sl_chunk_from_copy("shared", 6);
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) {
        sl_chunk_retain(c); /* one reference handed to each thread */
        CHECK(pthread_create(&t[i], NULL, refcount_worker, c) == 0);
    }
    sl_chunk_release(c); /* the creator's; a worker frees it at the end */
    for (int i = 0; i < THREADS; i++)
        CHECK(pthread_join(t[i], NULL) == 0);
    CHECK(sl_chunk_bytes_live() == before);
}


/* The chunk pool: a dead chunk of a power-of-two capacity is kept by the
 * releasing thread and handed to the next chunk of that capacity made
 * there; other capacities are freed; both bounds hold; pooled bytes are not
 * live; another thread's pool is freed when it exits. */
static void *pool_thread(void *arg)
{
    (void)arg;
    sl_chunk_release(sl_chunk_create(8192));
    return NULL;
}

static void test_buf_chunk_pool(void)
{
    sl_chunk_pool_drain();
    uint64_t live = sl_chunk_bytes_live(), pooled = sl_chunk_bytes_pooled();
    CHECK(pooled == 0);
    sl_chunk_t *c = sl_chunk_create_as(4096, SL_BUDGET_OUTPUT);
    CHECK(c != NULL && c->cap == 4096 && c->len == 0);
    c->len = 10;
    sl_chunk_release(c);
    CHECK(sl_chunk_bytes_live() == live);
    CHECK(sl_chunk_bytes_pooled() == sizeof(sl_chunk_t) + 4096);
    sl_chunk_t *d = sl_chunk_create(4096);
    CHECK(d == c); /* reused: no malloc, no page faults */
    CHECK(d->len == 0 && d->cap == 4096 && sl_chunk_refs(d) == 1);
    CHECK(sl_chunk_bytes_pooled() == 0);
    CHECK(sl_chunk_bytes_live() == live + 4096);
    sl_chunk_release(d);

    /* Not a pool size: freed. */
    sl_chunk_pool_drain();
    sl_chunk_release(sl_chunk_create(3000));
    sl_chunk_release(sl_chunk_create(512));
    sl_chunk_release(sl_chunk_create(2u * SL_CHUNK_POOL_MAX_BYTES));
    CHECK(sl_chunk_bytes_pooled() == 0);

    /* The per-capacity bound. */
    enum { N = SL_CHUNK_POOL_SLOTS + 8 };
    static sl_chunk_t *many[N];
    for (int i = 0; i < N; i++)
        CHECK((many[i] = sl_chunk_create(1024)) != NULL);
    for (int i = 0; i < N; i++)
        sl_chunk_release(many[i]);
    CHECK(sl_chunk_bytes_pooled() == SL_CHUNK_POOL_SLOTS * (sizeof(sl_chunk_t) + 1024));
    sl_chunk_pool_drain();

    /* The per-thread byte bound. */
    uint32_t big = SL_CHUNK_POOL_MAX_BYTES;
    uint32_t fit = (uint32_t)(SL_CHUNK_POOL_THREAD_BYTES / (sizeof(sl_chunk_t) + big));
    static sl_chunk_t *bigs[64];
    CHECK(fit + 2 <= 64);
    for (uint32_t i = 0; i < fit + 2; i++)
        CHECK((bigs[i] = sl_chunk_create(big)) != NULL);
    for (uint32_t i = 0; i < fit + 2; i++)
        sl_chunk_release(bigs[i]);
    CHECK(sl_chunk_bytes_pooled() == fit * (sizeof(sl_chunk_t) + big));
    CHECK(sl_chunk_bytes_pooled() <= SL_CHUNK_POOL_THREAD_BYTES);
    sl_chunk_pool_drain();
    CHECK(sl_chunk_bytes_pooled() == 0);

    /* A thread's pool goes with the thread. */
    pthread_t t;
    CHECK(pthread_create(&t, NULL, pool_thread, NULL) == 0);
    CHECK(pthread_join(t, NULL) == 0);
    CHECK(sl_chunk_bytes_pooled() == 0);
    CHECK(sl_chunk_bytes_live() == live);
}

int main(void)
{
    test_buf_chunk_refcount_frees();
    test_buf_outq_byte_bound();
    test_buf_outq_segment_bound();
    test_buf_outq_copy_coalesces();
    test_buf_outq_scratch_never_rewrites_shared_bytes();
    test_buf_outq_iov_bytes_max();
    test_buf_outq_partial_consume();
    test_buf_outq_transfer();
    test_buf_chunk_refcount_threads();
    test_buf_chunk_pool();
    sl_chunk_pool_drain();
    printf("buf_test: ok\n");
    return 0;
}
