/*
 * Session directory. See registry.h.
 *
 * Layout: a chained hash table for lookups plus an array of entry pointers
 * kept sorted by id for listing (binary search to the cursor, then a
 * straight walk). Insertion into the sorted array is a memmove, O(n), paid
 * on create only; at 100k sessions that is < 1 MB moved per create.
 */
#include "actors/registry.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct sl_registry {
    pthread_rwlock_t lock;
    sl_entry_t **buckets;
    uint32_t nbuckets; /* power of two */
    sl_entry_t **sorted;
    uint32_t count;
    uint32_t max_entries;
};

static void (*free_session_cb)(sl_entry_t *e);

void sl_registry_set_free(void (*free_session)(sl_entry_t *e)) { free_session_cb = free_session; }

static uint64_t hash_id(const char *id, size_t len)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)id[i]) * 1099511628211ull;
    return h;
}

static int cmp_id(const char *a, size_t alen, const char *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    if (c)
        return c;
    return alen < blen ? -1 : alen > blen;
}

int sl_registry_create(uint32_t max_entries, sl_registry_t **out)
{
    sl_registry_t *r = calloc(1, sizeof *r);
    if (!r)
        return -ENOMEM;
    r->nbuckets = 1024;
    while (r->nbuckets < max_entries && r->nbuckets < (1u << 20))
        r->nbuckets <<= 1;
    r->buckets = calloc(r->nbuckets, sizeof *r->buckets);
    r->sorted = calloc(max_entries ? max_entries : 1, sizeof *r->sorted);
    if (!r->buckets || !r->sorted) {
        free(r->buckets);
        free(r->sorted);
        free(r);
        return -ENOMEM;
    }
    r->max_entries = max_entries;
    pthread_rwlock_init(&r->lock, NULL);
    *out = r;
    return 0;
}

void sl_registry_destroy(sl_registry_t *r, void (*free_session)(sl_entry_t *e))
{
    if (!r)
        return;
    if (free_session)
        free_session_cb = free_session;
    for (uint32_t i = 0; i < r->count; i++)
        sl_entry_release(r->sorted[i]);
    pthread_rwlock_destroy(&r->lock);
    free(r->buckets);
    free(r->sorted);
    free(r);
}

void sl_entry_retain(sl_entry_t *e)
{
    atomic_fetch_add_explicit(&e->_refs, 1, memory_order_relaxed);
}

void sl_entry_release(sl_entry_t *e)
{
    /* acq_rel: all uses happen before the free by the last releaser. */
    if (atomic_fetch_sub_explicit(&e->_refs, 1, memory_order_acq_rel) == 1) {
        if (free_session_cb)
            free_session_cb(e);
        pthread_mutex_destroy(&e->lock);
        free(e);
    }
}

static sl_entry_t *find_locked(sl_registry_t *r, const char *id, size_t len)
{
    sl_entry_t *e = r->buckets[hash_id(id, len) & (r->nbuckets - 1)];
    for (; e; e = e->_hnext)
        if (e->id_len == len && memcmp(e->id, id, len) == 0)
            return e;
    return NULL;
}

sl_entry_t *sl_registry_get(sl_registry_t *r, const char *id, size_t len)
{
    pthread_rwlock_rdlock(&r->lock);
    sl_entry_t *e = find_locked(r, id, len);
    if (e)
        sl_entry_retain(e);
    pthread_rwlock_unlock(&r->lock);
    return e;
}

/* First index whose id is > (strict) or >= the given id. */
static uint32_t lower_bound(sl_registry_t *r, const char *id, size_t len, bool strict)
{
    uint32_t lo = 0, hi = r->count;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        int c = cmp_id(r->sorted[mid]->id, r->sorted[mid]->id_len, id, len);
        if (c < 0 || (strict && c == 0))
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int sl_registry_get_or_create(sl_registry_t *r, const char *id, size_t len, uint64_t epoch,
                              sl_entry_t **out, bool *created)
{
    return sl_registry_get_or_create_attrs(r, id, len, epoch, NULL, out, created);
}

int sl_registry_get_or_create_attrs(sl_registry_t *r, const char *id, size_t len, uint64_t epoch,
                                    const sl_session_attrs_t *attrs, sl_entry_t **out,
                                    bool *created)
{
    sl_assert(len >= 1 && len <= SL_SESSION_ID_MAX);
    *created = false;
    if ((*out = sl_registry_get(r, id, len)) != NULL)
        return 0;
    sl_entry_t *e = calloc(1, sizeof *e);
    if (!e)
        return -ENOMEM;
    memcpy(e->id, id, len);
    e->id_len = (uint32_t)len;
    e->epoch = epoch;
    if (attrs)
        e->attrs = *attrs;
    pthread_mutex_init(&e->lock, NULL);
    atomic_store_explicit(&e->_refs, 2, memory_order_relaxed); /* table + caller */
    pthread_rwlock_wrlock(&r->lock);
    sl_entry_t *raced = find_locked(r, id, len);
    if (raced || r->count >= r->max_entries) {
        if (raced)
            sl_entry_retain(raced);
        pthread_rwlock_unlock(&r->lock);
        free(e);
        *out = raced;
        return raced ? 0 : SL_EFULL;
    }
    uint32_t b = (uint32_t)(hash_id(id, len) & (r->nbuckets - 1));
    e->_hnext = r->buckets[b];
    r->buckets[b] = e;
    uint32_t at = lower_bound(r, id, len, false);
    memmove(&r->sorted[at + 1], &r->sorted[at], (r->count - at) * sizeof *r->sorted);
    r->sorted[at] = e;
    r->count++;
    pthread_rwlock_unlock(&r->lock);
    *out = e;
    *created = true;
    return 0;
}

int sl_registry_remove(sl_registry_t *r, sl_entry_t *e)
{
    pthread_rwlock_wrlock(&r->lock);
    if (find_locked(r, e->id, e->id_len) != e) {
        pthread_rwlock_unlock(&r->lock);
        return SL_ENOTFOUND;
    }
    sl_entry_t **pp = &r->buckets[hash_id(e->id, e->id_len) & (r->nbuckets - 1)];
    while (*pp != e)
        pp = &(*pp)->_hnext;
    *pp = e->_hnext;
    uint32_t at = lower_bound(r, e->id, e->id_len, false);
    sl_assert(at < r->count && r->sorted[at] == e);
    memmove(&r->sorted[at], &r->sorted[at + 1], (r->count - at - 1) * sizeof *r->sorted);
    r->count--;
    atomic_store_explicit(&e->deleted, true, memory_order_release);
    pthread_rwlock_unlock(&r->lock);
    sl_entry_release(e); /* the table's reference */
    return 0;
}

uint32_t sl_registry_list(sl_registry_t *r, const char *after, size_t after_len, uint32_t limit,
                          sl_entry_t **out, bool *more)
{
    pthread_rwlock_rdlock(&r->lock);
    uint32_t at = after ? lower_bound(r, after, after_len, true) : 0;
    uint32_t n = 0;
    while (at + n < r->count && n < limit) {
        out[n] = r->sorted[at + n];
        sl_entry_retain(out[n]);
        n++;
    }
    *more = at + n < r->count;
    pthread_rwlock_unlock(&r->lock);
    return n;
}

uint32_t sl_registry_count(sl_registry_t *r)
{
    pthread_rwlock_rdlock(&r->lock);
    uint32_t n = r->count;
    pthread_rwlock_unlock(&r->lock);
    return n;
}
