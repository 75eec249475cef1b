/*
 * The open-file bound: an LRU table of open segment fds keyed by
 * (session, segment), holding at most --max-open-files of them.
 *
 * The cache never opens or closes anything itself (storage submits all I/O
 * through the reactor). Its contract with the caller:
 * - sl_fdcache_lookup: a hit returns the fd; a miss means "open the file
 *   through the reactor, then sl_fdcache_insert the new fd".
 * - sl_fdcache_insert may hand back an fd in *close_fd — the least recently
 *   used one it evicted, or the caller's own fd when another opener won the
 *   race for the same key — which the caller closes through the reactor.
 * - An fd with I/O in flight is pinned (lookup/insert with pin = true, then
 *   one sl_fdcache_unpin per pin when the I/O completed). A pinned fd is
 *   never evicted or removed, so no close can overtake a read or write. When
 *   every cached fd is pinned, insert returns SL_EFULL and takes nothing:
 *   the caller closes its new fd and retries after an unpin (policy at the
 *   bound: wait, never exceed it).
 *
 * Fds outside the table count against the bound too: an opener reserves
 * room before its open (sl_fdcache_reserve), and an fd leaving the table
 * (evicted, removed, or an opener's fd that lost a race) stays counted
 * until its close completed (sl_fdcache_release). So held + opening +
 * closing never exceeds capacity, not only the held ones.
 *
 * Keys: session is any u64 that names one session incarnation (its epoch
 * serves); segment is the segment's first_seq.
 *
 * Every operation is O(1): a chained hash table over a fixed entry array
 * and an intrusive doubly linked LRU list of the unpinned entries (pinned
 * ones leave the list, so eviction takes the tail without searching).
 * Memory is allocated once, at create.
 *
 * Threads: none inside. One owner at a time calls in (the owning actor, or
 * callers holding their own lock around these short calls).
 */
#ifndef SL_STORAGE_FDCACHE_H
#define SL_STORAGE_FDCACHE_H

#include <stdbool.h>
#include <stdint.h>

#include "runtime/base.h"
#include "runtime/limits.h"

typedef struct sl_fdcache sl_fdcache_t;

typedef struct sl_fdcache_stats {
    uint32_t capacity;
    uint32_t open;   /* fds held, opening or closing (all count against capacity) */
    uint32_t pinned; /* of which pinned */
    uint64_t hits;
    uint64_t misses;
    uint64_t evictions;
} sl_fdcache_stats_t;

/* Creates a cache for up to capacity fds (1..SL_OPEN_FILES_MAX, asserts).
 * Returns 0 with *out owned by the caller, or -ENOMEM. */
int sl_fdcache_create(uint32_t capacity, sl_fdcache_t **out);

/* Frees the cache. It must hold no fd (asserts): drain it first with
 * sl_fdcache_pop_lru and close what comes back. NULL is ignored. */
void sl_fdcache_destroy(sl_fdcache_t *c);

/* Looks up (session, segment). Returns the fd (>= 0) and makes it the most
 * recently used, pinning it once more when pin is true; or SL_ENOTFOUND. */
int sl_fdcache_lookup(sl_fdcache_t *c, uint64_t session, uint64_t segment, bool pin);

/* Adds fd (>= 0, asserts) for (session, segment), pinned once when pin is
 * true. Returns the fd to use (>= 0) and sets *close_fd to an fd the caller
 * must close, or -1:
 *   - the key was absent and the cache had room: returns fd, *close_fd -1;
 *   - the cache was full: the LRU unpinned entry is evicted, *close_fd is
 *     its fd;
 *   - the key was present (another opener won): returns the cached fd
 *     (pinned if asked) and *close_fd is fd.
 * Returns SL_EFULL when the cache is full and every entry is pinned: fd is
 * not taken and *close_fd is -1. Takes fd on success. */
int sl_fdcache_insert(sl_fdcache_t *c, uint64_t session, uint64_t segment, int fd, bool pin,
                      int *close_fd);

/* Reserves room for one fd about to be opened (call after a lookup miss).
 * Returns 0 (reserved: open, then sl_fdcache_insert_reserved or, when the
 * open failed, sl_fdcache_release); SL_EAGAIN with *close_fd set to the
 * least recently used unpinned fd, evicted (the caller closes it, calls
 * sl_fdcache_release when the close completed, and tries again); or
 * SL_EFULL when every fd is pinned (wait for an unpin). */
int sl_fdcache_reserve(sl_fdcache_t *c, int *close_fd);
/* sl_fdcache_insert for an fd opened under a reservation, which it uses
 * up when fd is taken. When the key was present, fd comes back in
 * *close_fd and stays counted until its close (sl_fdcache_release). */
int sl_fdcache_insert_reserved(sl_fdcache_t *c, uint64_t session, uint64_t segment, int fd,
                               bool pin, int *close_fd);
/* An fd counted outside the table is gone: its close completed, or the
 * open a reservation was for failed. */
void sl_fdcache_release(sl_fdcache_t *c);

/* Drops one pin of (session, segment); at zero the fd becomes the most
 * recently used evictable one. The key must be present and pinned
 * (asserts). */
void sl_fdcache_unpin(sl_fdcache_t *c, uint64_t session, uint64_t segment);

/* Removes (session, segment) (a session hibernates or is deleted, a
 * segment is removed). Returns the fd, which the caller now owns and
 * closes through the reactor (it stays counted until
 * sl_fdcache_release); SL_ENOTFOUND; or SL_EAGAIN when it is pinned (retry
 * after its I/O completed). */
int sl_fdcache_remove(sl_fdcache_t *c, uint64_t session, uint64_t segment);

/* Removes the least recently used unpinned entry and returns its fd (the
 * caller owns and closes it), or SL_ENOTFOUND when none is unpinned. For
 * shrinking and for draining at shutdown. */
int sl_fdcache_pop_lru(sl_fdcache_t *c);

void sl_fdcache_stats(const sl_fdcache_t *c, sl_fdcache_stats_t *out);

#endif
