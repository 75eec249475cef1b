/*
 * fd cache tests: hits and misses, LRU order and eviction, pinning (counted
 * pins, never evicted, SL_EFULL when all are pinned), duplicate inserts,
 * removal and draining, and a randomized run against a simple model.
 * The "fds" are plain integers: the cache never touches them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/fdcache.h"

#include "tests/check.h"

static void drain(sl_fdcache_t *c)
{
    while (sl_fdcache_pop_lru(c) >= 0) {
    }
}

static void test_fdcache_hit_and_miss(void)
{
    sl_fdcache_t *c;
    CHECK(sl_fdcache_create(4, &c) == 0);
    int cl;
    CHECK(sl_fdcache_lookup(c, 1, 1, false) == SL_ENOTFOUND);
    CHECK(sl_fdcache_insert(c, 1, 1, 10, false, &cl) == 10 && cl == -1);
    CHECK(sl_fdcache_lookup(c, 1, 1, false) == 10);
    CHECK(sl_fdcache_lookup(c, 1, 2, false) == SL_ENOTFOUND); /* other segment */
    CHECK(sl_fdcache_lookup(c, 2, 1, false) == SL_ENOTFOUND); /* other session */
    sl_fdcache_stats_t st;
    sl_fdcache_stats(c, &st);
    CHECK(st.capacity == 4 && st.open == 1 && st.pinned == 0);
    CHECK(st.hits == 1 && st.misses == 3 && st.evictions == 0);
    drain(c);
    sl_fdcache_destroy(c);
}

static void test_fdcache_lru_order_and_eviction(void)
{
    sl_fdcache_t *c;
    CHECK(sl_fdcache_create(3, &c) == 0);
    int cl;
    CHECK(sl_fdcache_insert(c, 7, 1, 101, false, &cl) == 101 && cl == -1);
    CHECK(sl_fdcache_insert(c, 7, 2, 102, false, &cl) == 102 && cl == -1);
    CHECK(sl_fdcache_insert(c, 7, 3, 103, false, &cl) == 103 && cl == -1);
    CHECK(sl_fdcache_lookup(c, 7, 1, false) == 101); /* 1 becomes most recent */
    CHECK(sl_fdcache_insert(c, 7, 4, 104, false, &cl) == 104);
    CHECK(cl == 102); /* 2 was least recently used */
    CHECK(sl_fdcache_lookup(c, 7, 2, false) == SL_ENOTFOUND);
    CHECK(sl_fdcache_insert(c, 7, 5, 105, false, &cl) == 105 && cl == 103);
    CHECK(sl_fdcache_insert(c, 7, 6, 106, false, &cl) == 106 && cl == 101);
    /* Remaining, least recent first: 4, 5, 6. */
    CHECK(sl_fdcache_pop_lru(c) == 104);
    CHECK(sl_fdcache_pop_lru(c) == 105);
    CHECK(sl_fdcache_pop_lru(c) == 106);
    CHECK(sl_fdcache_pop_lru(c) == SL_ENOTFOUND);
    sl_fdcache_stats_t st;
    sl_fdcache_stats(c, &st);
    CHECK(st.open == 0 && st.evictions == 3);
    sl_fdcache_destroy(c);
}

static void test_fdcache_pinned_never_evicted(void)
{
    sl_fdcache_t *c;
    CHECK(sl_fdcache_create(2, &c) == 0);
    int cl;
    CHECK(sl_fdcache_insert(c, 1, 1, 11, true, &cl) == 11); /* pinned, oldest */
    CHECK(sl_fdcache_insert(c, 1, 2, 12, false, &cl) == 12);
    CHECK(sl_fdcache_insert(c, 1, 3, 13, false, &cl) == 13 && cl == 12);
    CHECK(sl_fdcache_insert(c, 1, 4, 14, false, &cl) == 14 && cl == 13);
    CHECK(sl_fdcache_lookup(c, 1, 1, false) == 11);
    /* Pin the other one too: the cache is full of pinned fds. */
    CHECK(sl_fdcache_lookup(c, 1, 4, true) == 14);
    CHECK(sl_fdcache_insert(c, 1, 5, 15, false, &cl) == SL_EFULL && cl == -1);
    CHECK(sl_fdcache_lookup(c, 1, 5, false) == SL_ENOTFOUND); /* fd not taken */
    CHECK(sl_fdcache_pop_lru(c) == SL_ENOTFOUND);
    sl_fdcache_stats_t st;
    sl_fdcache_stats(c, &st);
    CHECK(st.open == 2 && st.pinned == 2);
    /* An unpin makes room again; the unpinned one is the victim. */
    sl_fdcache_unpin(c, 1, 4);
    CHECK(sl_fdcache_insert(c, 1, 5, 15, false, &cl) == 15 && cl == 14);
    CHECK(sl_fdcache_lookup(c, 1, 1, false) == 11);
    sl_fdcache_unpin(c, 1, 1);
    drain(c);
    sl_fdcache_destroy(c);
}

static void test_fdcache_pins_are_counted(void)
{
    sl_fdcache_t *c;
    CHECK(sl_fdcache_create(2, &c) == 0);
    int cl;
    CHECK(sl_fdcache_insert(c, 3, 9, 30, true, &cl) == 30);
    CHECK(sl_fdcache_lookup(c, 3, 9, true) == 30); /* two reads in flight */
    CHECK(sl_fdcache_remove(c, 3, 9) == SL_EAGAIN);
    sl_fdcache_unpin(c, 3, 9);
    CHECK(sl_fdcache_remove(c, 3, 9) == SL_EAGAIN);
    sl_fdcache_unpin(c, 3, 9);
    sl_fdcache_stats_t st;
    sl_fdcache_stats(c, &st);
    CHECK(st.pinned == 0);
    CHECK(sl_fdcache_remove(c, 3, 9) == 30);
    CHECK(sl_fdcache_remove(c, 3, 9) == SL_ENOTFOUND);
    sl_fdcache_destroy(c);
}

static void test_fdcache_duplicate_insert_returns_cached(void)
{
    sl_fdcache_t *c;
    CHECK(sl_fdcache_create(2, &c) == 0);
    int cl;
    CHECK(sl_fdcache_insert(c, 1, 1, 40, false, &cl) == 40);
    /* A second opener raced for the same file: keep the cached fd. */
    CHECK(sl_fdcache_insert(c, 1, 1, 41, true, &cl) == 40 && cl == 41);
    CHECK(sl_fdcache_remove(c, 1, 1) == SL_EAGAIN); /* the pin was applied */
    sl_fdcache_unpin(c, 1, 1);
    sl_fdcache_stats_t st;
    sl_fdcache_stats(c, &st);
    CHECK(st.open == 1);
    CHECK(sl_fdcache_remove(c, 1, 1) == 40);
    sl_fdcache_destroy(c);
}

static void test_fdcache_many_keys(void)
{
    enum { N = 5000 };
    sl_fdcache_t *c;
    CHECK(sl_fdcache_create(N, &c) == 0);
    int cl;
    for (int i = 0; i < N; i++)
        CHECK(sl_fdcache_insert(c, (uint64_t)(i % 50), (uint64_t)i, 1000 + i, false, &cl) ==
                  1000 + i &&
              cl == -1);
    for (int i = 0; i < N; i++)
        CHECK(sl_fdcache_lookup(c, (uint64_t)(i % 50), (uint64_t)i, false) == 1000 + i);
    for (int i = 0; i < N; i += 2)
        CHECK(sl_fdcache_remove(c, (uint64_t)(i % 50), (uint64_t)i) == 1000 + i);
    for (int i = 0; i < N; i++)
        CHECK(sl_fdcache_lookup(c, (uint64_t)(i % 50), (uint64_t)i, false) ==
              (i % 2 ? 1000 + i : SL_ENOTFOUND));
    drain(c);
    sl_fdcache_destroy(c);
}

/* ---- randomized, against a model ------------------------------------- */

enum { CAP = 6, KEYS = 16 };
typedef struct model {
    bool present[KEYS];
    int fd[KEYS];
    int pins[KEYS];
    uint64_t used[KEYS]; /* logical time of last use */
    int count;
} model_t;

static uint64_t rng_state = 88172645463325252ull;
static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static int model_victim(const model_t *m)
{
    int v = -1;
    for (int k = 0; k < KEYS; k++)
        if (m->present[k] && m->pins[k] == 0 && (v < 0 || m->used[k] < m->used[v]))
            v = k;
    return v;
}

static void random_op(sl_fdcache_t *c, model_t *m, uint64_t now, int *next_fd)
{
    int k = (int)(rng() % KEYS);
    bool pin = rng() % 3 == 0;
    int cl, r;
    switch (rng() % 4) {
    case 0: /* lookup */
        r = sl_fdcache_lookup(c, 5, (uint64_t)k, pin);
        CHECK(r == (m->present[k] ? m->fd[k] : SL_ENOTFOUND));
        if (m->present[k]) {
            m->used[k] = now;
            m->pins[k] += pin;
        }
        break;
    case 1: { /* insert */
        int fd = (*next_fd)++;
        int victim = m->present[k] || m->count < CAP ? -2 : model_victim(m);
        r = sl_fdcache_insert(c, 5, (uint64_t)k, fd, pin, &cl);
        if (m->present[k]) {
            CHECK(r == m->fd[k] && cl == fd);
        } else if (victim == -1) {
            CHECK(r == SL_EFULL && cl == -1);
            break;
        } else {
            CHECK(r == fd);
            if (victim >= 0) {
                CHECK(cl == m->fd[victim]);
                m->present[victim] = false;
                m->count--;
            } else {
                CHECK(cl == -1);
            }
            m->present[k] = true;
            m->fd[k] = fd;
            m->pins[k] = 0;
            m->count++;
        }
        m->used[k] = now;
        m->pins[k] += pin;
        break;
    }
    case 2: /* unpin */
        if (m->present[k] && m->pins[k] > 0) {
            sl_fdcache_unpin(c, 5, (uint64_t)k);
            if (--m->pins[k] == 0)
                m->used[k] = now;
        }
        break;
    default: /* remove */
        r = sl_fdcache_remove(c, 5, (uint64_t)k);
        if (!m->present[k])
            CHECK(r == SL_ENOTFOUND);
        else if (m->pins[k] > 0)
            CHECK(r == SL_EAGAIN);
        else {
            CHECK(r == m->fd[k]);
            sl_fdcache_release(c); /* its close completed */
            m->present[k] = false;
            m->count--;
        }
    }
}

static void test_fdcache_randomized_against_model(void)
{
    sl_fdcache_t *c;
    CHECK(sl_fdcache_create(CAP, &c) == 0);
    model_t m;
    memset(&m, 0, sizeof m);
    int next_fd = 100;
    for (uint64_t now = 1; now <= 200000; now++) {
        random_op(c, &m, now, &next_fd);
        sl_fdcache_stats_t st;
        sl_fdcache_stats(c, &st);
        CHECK(st.open == (uint32_t)m.count);
    }
    for (int k = 0; k < KEYS; k++)
        while (m.present[k] && m.pins[k] > 0) {
            sl_fdcache_unpin(c, 5, (uint64_t)k);
            m.pins[k]--;
        }
    drain(c);
    sl_fdcache_destroy(c);
}

/* Opening and closing fds count against the bound: held + reserved +
 * closing never exceeds capacity. */
static void test_fdcache_reserve_counts_outside(void)
{
    sl_fdcache_t *c;
    CHECK(sl_fdcache_create(2, &c) == 0);
    sl_fdcache_stats_t st;
    int closefd = 0;
    CHECK(sl_fdcache_reserve(c, &closefd) == 0 && closefd == -1);
    CHECK(sl_fdcache_reserve(c, &closefd) == 0);
    CHECK(sl_fdcache_reserve(c, &closefd) == SL_EFULL); /* two opens in flight, none held */
    CHECK(sl_fdcache_insert_reserved(c, 1, 1, 10, false, &closefd) == 10 && closefd == -1);
    CHECK(sl_fdcache_insert_reserved(c, 1, 2, 11, true, &closefd) == 11 && closefd == -1);
    sl_fdcache_stats(c, &st);
    CHECK(st.open == 2);
    /* At the bound: the unpinned LRU (fd 10) is evicted and stays counted
     * until its close completes. */
    CHECK(sl_fdcache_reserve(c, &closefd) == SL_EAGAIN && closefd == 10);
    sl_fdcache_stats(c, &st);
    CHECK(st.open == 2);
    CHECK(sl_fdcache_reserve(c, &closefd) == SL_EFULL); /* fd 11 is pinned */
    sl_fdcache_release(c); /* fd 10 closed */
    CHECK(sl_fdcache_reserve(c, &closefd) == 0);
    /* A lost race: the key is present, the new fd comes back and stays
     * counted until closed. */
    CHECK(sl_fdcache_insert_reserved(c, 1, 2, 12, false, &closefd) == 11 && closefd == 12);
    sl_fdcache_stats(c, &st);
    CHECK(st.open == 2);
    sl_fdcache_release(c);
    sl_fdcache_unpin(c, 1, 2);
    CHECK(sl_fdcache_remove(c, 1, 2) == 11);
    sl_fdcache_stats(c, &st);
    CHECK(st.open == 1); /* closing */
    sl_fdcache_release(c);
    sl_fdcache_stats(c, &st);
    CHECK(st.open == 0);
    sl_fdcache_destroy(c);
}

int main(void)
{
    test_fdcache_reserve_counts_outside();
    test_fdcache_hit_and_miss();
    test_fdcache_lru_order_and_eviction();
    test_fdcache_pinned_never_evicted();
    test_fdcache_pins_are_counted();
    test_fdcache_duplicate_insert_returns_cached();
    test_fdcache_many_keys();
    test_fdcache_randomized_against_model();
    printf("fdcache_test: ok\n");
    return 0;
}
