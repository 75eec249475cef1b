/*
 * Bounded LRU fd table. See fdcache.h for the contract. Entries live in one
 * array allocated at create; indices (not pointers) link the hash chains,
 * the free list and the LRU list, with NIL as the end marker.
 */
#include "storage/fdcache.h"

#include <errno.h>
#include <stdlib.h>

#define NIL UINT32_MAX

typedef struct entry {
    uint64_t session;
    uint64_t segment;
    int fd;
    uint32_t pins;
    uint32_t hnext; /* hash chain, or free list when unused */
    uint32_t prev;  /* LRU list (unpinned entries only) */
    uint32_t next;
} entry_t;

struct sl_fdcache {
    entry_t *e;
    uint32_t *buckets;
    uint32_t mask; /* buckets - 1 */
    uint32_t capacity;
    uint32_t count;
    uint32_t outside; /* reserved for an open, or out of the table and closing */
    uint32_t pinned;
    uint32_t free_head;
    uint32_t mru; /* LRU list head (most recent) */
    uint32_t lru; /* LRU list tail (eviction victim) */
    uint64_t hits;
    uint64_t misses;
    uint64_t evictions;
};

static uint32_t hash(const sl_fdcache_t *c, uint64_t session, uint64_t segment)
{
    /* splitmix64 finaliser over both keys: sequential seqs and epochs
     * spread over all buckets. */
    uint64_t x = session * 0x9e3779b97f4a7c15ull ^ segment;
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return (uint32_t)x & c->mask;
}

int sl_fdcache_create(uint32_t capacity, sl_fdcache_t **out)
{
    sl_assert(capacity >= 1);
    sl_assert(capacity <= SL_OPEN_FILES_MAX);
    uint32_t nb = 1;
    while (nb < 2 * capacity) /* load factor <= 1/2 keeps chains short */
        nb <<= 1;
    sl_fdcache_t *c = calloc(1, sizeof *c);
    entry_t *e = calloc(capacity, sizeof *e);
    uint32_t *b = malloc((size_t)nb * sizeof *b);
    if (!c || !e || !b) {
        free(c);
        free(e);
        free(b);
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < nb; i++)
        b[i] = NIL;
    for (uint32_t i = 0; i < capacity; i++)
        e[i].hnext = i + 1 < capacity ? i + 1 : NIL;
    c->e = e;
    c->buckets = b;
    c->mask = nb - 1;
    c->capacity = capacity;
    c->free_head = 0;
    c->mru = c->lru = NIL;
    *out = c;
    return 0;
}

void sl_fdcache_destroy(sl_fdcache_t *c)
{
    if (!c)
        return;
    sl_assert(c->count == 0);
    free(c->e);
    free(c->buckets);
    free(c);
}

static uint32_t find(const sl_fdcache_t *c, uint64_t session, uint64_t segment)
{
    for (uint32_t i = c->buckets[hash(c, session, segment)]; i != NIL; i = c->e[i].hnext)
        if (c->e[i].session == session && c->e[i].segment == segment)
            return i;
    return NIL;
}

static void lru_unlink(sl_fdcache_t *c, uint32_t i)
{
    entry_t *x = &c->e[i];
    if (x->prev != NIL)
        c->e[x->prev].next = x->next;
    else
        c->mru = x->next;
    if (x->next != NIL)
        c->e[x->next].prev = x->prev;
    else
        c->lru = x->prev;
    x->prev = x->next = NIL;
}

static void lru_push_mru(sl_fdcache_t *c, uint32_t i)
{
    entry_t *x = &c->e[i];
    x->prev = NIL;
    x->next = c->mru;
    if (c->mru != NIL)
        c->e[c->mru].prev = i;
    else
        c->lru = i;
    c->mru = i;
}

/* One more use of entry i: pinned or moved to the MRU end. */
static void touch(sl_fdcache_t *c, uint32_t i, bool pin)
{
    entry_t *x = &c->e[i];
    if (x->pins == 0)
        lru_unlink(c, i);
    if (pin) {
        if (x->pins++ == 0)
            c->pinned++;
    } else if (x->pins == 0) {
        lru_push_mru(c, i);
    }
}

/* Unlinks entry i (unpinned) from the hash and the LRU and frees it;
 * returns its fd. */
static int drop(sl_fdcache_t *c, uint32_t i)
{
    entry_t *x = &c->e[i];
    sl_assert(x->pins == 0);
    lru_unlink(c, i);
    uint32_t *link = &c->buckets[hash(c, x->session, x->segment)];
    while (*link != i)
        link = &c->e[*link].hnext;
    *link = x->hnext;
    x->hnext = c->free_head;
    c->free_head = i;
    c->count--;
    return x->fd;
}

int sl_fdcache_lookup(sl_fdcache_t *c, uint64_t session, uint64_t segment, bool pin)
{
    uint32_t i = find(c, session, segment);
    if (i == NIL) {
        c->misses++;
        return SL_ENOTFOUND;
    }
    c->hits++;
    touch(c, i, pin);
    return c->e[i].fd;
}

int sl_fdcache_reserve(sl_fdcache_t *c, int *close_fd)
{
    *close_fd = -1;
    if (c->count + c->outside < c->capacity) {
        c->outside++;
        return 0;
    }
    if (c->lru == NIL || c->count == 0)
        return SL_EFULL;
    *close_fd = drop(c, c->lru);
    c->outside++; /* closing */
    c->evictions++;
    return SL_EAGAIN;
}

int sl_fdcache_insert_reserved(sl_fdcache_t *c, uint64_t session, uint64_t segment, int fd,
                               bool pin, int *close_fd)
{
    sl_assert(c->outside > 0);
    if (find(c, session, segment) != NIL)
        return sl_fdcache_insert(c, session, segment, fd, pin, close_fd); /* fd stays counted */
    c->outside--; /* the reservation becomes the entry: never over capacity */
    int rc = sl_fdcache_insert(c, session, segment, fd, pin, close_fd);
    if (rc == SL_EFULL)
        c->outside++; /* not taken: counted until the caller closed it */
    return rc;
}

void sl_fdcache_release(sl_fdcache_t *c)
{
    sl_assert(c->outside > 0);
    c->outside--;
}

int sl_fdcache_insert(sl_fdcache_t *c, uint64_t session, uint64_t segment, int fd, bool pin,
                      int *close_fd)
{
    sl_assert(fd >= 0);
    *close_fd = -1;
    uint32_t i = find(c, session, segment);
    if (i != NIL) {
        touch(c, i, pin);
        *close_fd = fd;
        return c->e[i].fd;
    }
    if (c->count == c->capacity) {
        if (c->lru == NIL)
            return SL_EFULL;
        *close_fd = drop(c, c->lru);
        c->evictions++;
    }
    i = c->free_head;
    entry_t *x = &c->e[i];
    c->free_head = x->hnext;
    uint32_t b = hash(c, session, segment);
    *x = (entry_t){.session = session,
                   .segment = segment,
                   .fd = fd,
                   .pins = 0,
                   .hnext = c->buckets[b],
                   .prev = NIL,
                   .next = NIL};
    c->buckets[b] = i;
    c->count++;
    lru_push_mru(c, i);
    if (pin)
        touch(c, i, true);
    return fd;
}

void sl_fdcache_unpin(sl_fdcache_t *c, uint64_t session, uint64_t segment)
{
    uint32_t i = find(c, session, segment);
    sl_assert(i != NIL);
    entry_t *x = &c->e[i];
    sl_assert(x->pins > 0);
    if (--x->pins == 0) {
        c->pinned--;
        lru_push_mru(c, i);
    }
}

int sl_fdcache_remove(sl_fdcache_t *c, uint64_t session, uint64_t segment)
{
    uint32_t i = find(c, session, segment);
    if (i == NIL)
        return SL_ENOTFOUND;
    if (c->e[i].pins > 0)
        return SL_EAGAIN;
    c->outside++; /* closing */
    return drop(c, i);
}

int sl_fdcache_pop_lru(sl_fdcache_t *c)
{
    if (c->lru == NIL)
        return SL_ENOTFOUND;
    return drop(c, c->lru);
}

void sl_fdcache_stats(const sl_fdcache_t *c, sl_fdcache_stats_t *out)
{
    *out = (sl_fdcache_stats_t){.capacity = c->capacity,
                                .open = c->count + c->outside,
                                .pinned = c->pinned,
                                .hits = c->hits,
                                .misses = c->misses,
                                .evictions = c->evictions};
}
