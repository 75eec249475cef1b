/*
 * Reference-counted chunks and the bounded output queue (see buf.h).
 *
 * The queue is a ring of (chunk, off, len) segments. Small copies go into a
 * scratch chunk the queue allocates and keeps (with a reference of its own)
 * until it is full or the queue drains: consecutive copies (frame headers,
 * chunk-size lines, status lines) extend one segment, and a copy after a
 * referenced slice costs a segment but no allocation. Referenced slices are
 * never copied.
 *
 * Appending to a shared chunk is safe here because only the owning queue
 * writes its scratch chunk, only past c->len, and every segment anywhere
 * refers to bytes below c->len: no reader ever sees a byte being written.
 */
#include "runtime/buf.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define POOL_POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define POOL_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POOL_POISON(p, n) ((void)(p), (void)(n))
#define POOL_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

/* Capacity bytes of every live chunk. Relaxed: a statistic, no ordering. */
static _Atomic uint64_t chunk_bytes_live;
/* Bytes resting in every thread's pool (see below). */
static _Atomic uint64_t chunk_bytes_pooled;

/*
 * The chunk pool. Fan-out makes and drops the same chunks at a steady
 * beat: every send of a connection takes a scratch chunk for its frame
 * headers and gives it back when the kernel took the bytes, rings take and
 * drop pages, catch-ups take a room-sized chunk per answer. Through malloc
 * that beat costs more than the allocation: a thread arena whose top grows
 * past the trim threshold when a round's chunks come back is trimmed
 * (madvise), and the next round faults the same pages in again.
 *
 * So a chunk whose capacity is a power of two from SL_CHUNK_POOL_MIN_BYTES
 * to SL_CHUNK_POOL_MAX_BYTES goes, when its last reference drops, to a
 * pool of the releasing thread (no lock: only that thread touches it), and
 * the next chunk of that capacity made on that thread is taken from there.
 * Bounds: SL_CHUNK_POOL_SLOTS chunks per capacity and
 * SL_CHUNK_POOL_THREAD_BYTES per thread; at a bound the chunk is freed.
 * A thread's pool is freed when the thread exits (a key destructor) or by
 * sl_chunk_pool_drain(). Pooled bytes are not live: the memory budget and
 * chunk_bytes_live count them out, chunk_bytes_pooled counts them. Under
 * AddressSanitizer a pooled chunk is poisoned, so a use after the last
 * release is still caught.
 */
#define POOL_MIN_SHIFT 10
#define POOL_CLASSES 11 /* 1 KiB .. 1 MiB */
_Static_assert(SL_CHUNK_POOL_MIN_BYTES == 1u << POOL_MIN_SHIFT, "pool classes start at 1 KiB");
_Static_assert(SL_CHUNK_POOL_MAX_BYTES == 1u << (POOL_MIN_SHIFT + POOL_CLASSES - 1),
               "one class per power of two");

typedef struct chunk_pool {
    sl_chunk_t *slot[POOL_CLASSES][SL_CHUNK_POOL_SLOTS];
    uint32_t n[POOL_CLASSES];
    uint64_t bytes;
    bool registered; /* the exit destructor knows this thread's pool */
} chunk_pool_t;

static _Thread_local chunk_pool_t pool;
static pthread_key_t pool_key;
static pthread_once_t pool_once = PTHREAD_ONCE_INIT;
static bool pool_key_ok;

static int pool_class(uint32_t cap)
{
    if (cap < SL_CHUNK_POOL_MIN_BYTES || cap > SL_CHUNK_POOL_MAX_BYTES || (cap & (cap - 1)))
        return -1;
    return __builtin_ctz(cap) - POOL_MIN_SHIFT;
}

static void pool_drain(chunk_pool_t *p)
{
    for (int k = 0; k < POOL_CLASSES; k++) {
        while (p->n[k] > 0) {
            sl_chunk_t *c = p->slot[k][--p->n[k]];
            size_t size = sizeof(*c) + ((size_t)SL_CHUNK_POOL_MIN_BYTES << k);
            POOL_UNPOISON(c, size);
            atomic_fetch_sub_explicit(&chunk_bytes_pooled, size, memory_order_relaxed);
            free(c);
        }
    }
    p->bytes = 0;
}

static void pool_exit(void *arg)
{
    chunk_pool_t *p = arg;
    pool_drain(p);
    /* A chunk released later in this thread's exit registers again, and
     * the destructor runs once more for it. */
    p->registered = false;
}

static void pool_key_init(void)
{
    pool_key_ok = pthread_key_create(&pool_key, pool_exit) == 0;
}

void sl_chunk_pool_drain(void)
{
    pool_drain(&pool);
}

uint64_t sl_chunk_bytes_pooled(void)
{
    return atomic_load_explicit(&chunk_bytes_pooled, memory_order_relaxed);
}

/* Takes a chunk of capacity cap from this thread's pool, or NULL. */
static sl_chunk_t *pool_get(uint32_t cap)
{
    int k = pool_class(cap);
    if (k < 0 || pool.n[k] == 0)
        return NULL;
    sl_chunk_t *c = pool.slot[k][--pool.n[k]];
    size_t size = sizeof(*c) + (size_t)cap;
    POOL_UNPOISON(c, size);
    pool.bytes -= size;
    atomic_fetch_sub_explicit(&chunk_bytes_pooled, size, memory_order_relaxed);
    return c;
}

/* Keeps a dead chunk in this thread's pool; false when it is not poolable
 * or a bound is reached (the caller frees it). */
static bool pool_put(sl_chunk_t *c)
{
    int k = pool_class(c->cap);
    size_t size = sizeof(*c) + (size_t)c->cap;
    if (k < 0 || pool.n[k] == SL_CHUNK_POOL_SLOTS ||
        pool.bytes + size > SL_CHUNK_POOL_THREAD_BYTES)
        return false;
    if (!pool.registered) {
        pthread_once(&pool_once, pool_key_init);
        if (!pool_key_ok || pthread_setspecific(pool_key, &pool) != 0)
            return false;
        pool.registered = true;
    }
    pool.slot[k][pool.n[k]++] = c;
    pool.bytes += size;
    atomic_fetch_add_explicit(&chunk_bytes_pooled, size, memory_order_relaxed);
    POOL_POISON(c, size);
    return true;
}

sl_chunk_t *sl_chunk_create_as(uint32_t cap, sl_budget_kind_t kind)
{
    sl_assert(kind < SL_BUDGET_KINDS);
    sl_chunk_t *c = pool_get(cap);
    if (c == NULL && (c = malloc(sizeof(*c) + (size_t)cap)) == NULL)
        return NULL;
    atomic_init(&c->_refs, 1);
    c->len = 0;
    c->cap = cap;
    c->_budget = (uint32_t)kind;
    atomic_fetch_add_explicit(&chunk_bytes_live, cap, memory_order_relaxed);
    sl_budget_add(kind, cap);
    return c;
}

sl_chunk_t *sl_chunk_create(uint32_t cap)
{
    return sl_chunk_create_as(cap, SL_BUDGET_OTHER);
}

sl_chunk_t *sl_chunk_from_copy(const void *data, size_t len)
{
    if (len > UINT32_MAX)
        return NULL;
    sl_chunk_t *c = sl_chunk_create((uint32_t)len);
    if (c == NULL)
        return NULL;
    if (len > 0)
        memcpy(c->data, data, len);
    c->len = (uint32_t)len;
    return c;
}

void sl_chunk_retain(sl_chunk_t *c)
{
    /* Relaxed: taking a reference needs no ordering, the caller already
     * holds one (the classic refcount argument). */
    uint32_t old = atomic_fetch_add_explicit(&c->_refs, 1, memory_order_relaxed);
    sl_assert(old > 0);
}

void sl_chunk_release(sl_chunk_t *c)
{
    /* acq_rel: the release half publishes this holder's accesses, the
     * acquire half (for the last holder) sees every other holder's, so the
     * free happens after all of them. (A release decrement plus an acquire
     * fence would do, but ThreadSanitizer does not model fences; on x86 the
     * locked decrement costs the same either way.) */
    uint32_t old = atomic_fetch_sub_explicit(&c->_refs, 1, memory_order_acq_rel);
    sl_assert(old > 0);
    if (old != 1)
        return;
    atomic_fetch_sub_explicit(&chunk_bytes_live, c->cap, memory_order_relaxed);
    sl_budget_sub((sl_budget_kind_t)c->_budget, c->cap);
    if (!pool_put(c))
        free(c);
}

uint64_t sl_chunk_bytes_live(void)
{
    return atomic_load_explicit(&chunk_bytes_live, memory_order_relaxed);
}

int sl_outq_init(sl_outq_t *q, uint32_t seg_capacity, uint64_t bytes_max)
{
    sl_assert(q != NULL);
    sl_assert(seg_capacity > 0);
    memset(q, 0, sizeof(*q));
    /* The segment ring is allocated by the first append: an idle
     * connection that never sent anything holds none. */
    q->_seg_capacity = seg_capacity;
    q->bytes_max = bytes_max;
    q->copy_chunk_bytes = SL_OUTQ_COPY_CHUNK_BYTES;
    return 0;
}

static sl_outq_seg_t *seg_at(const sl_outq_t *q, uint32_t i)
{
    return &q->_segs[(q->_head + i) % q->_seg_capacity];
}

static sl_outq_seg_t *tail_seg(const sl_outq_t *q)
{
    return q->_count == 0 ? NULL : seg_at(q, q->_count - 1);
}

void sl_outq_deinit(sl_outq_t *q)
{
    if (q->_segs == NULL)
        return;
    for (uint32_t i = 0; i < q->_count; i++)
        sl_chunk_release(seg_at(q, i)->chunk);
    if (q->_scratch != NULL)
        sl_chunk_release(q->_scratch);
    q->_scratch = NULL;
    free(q->_segs);
    q->_segs = NULL;
    q->_count = 0;
    q->bytes_pending = 0;
}

static int ensure_segs(sl_outq_t *q)
{
    if (q->_segs == NULL && (q->_segs = calloc(q->_seg_capacity, sizeof(q->_segs[0]))) == NULL)
        return -ENOMEM;
    return 0;
}

static bool fits_bytes(const sl_outq_t *q, size_t len)
{
    return len <= q->bytes_max && q->bytes_pending <= q->bytes_max - len;
}

static void push_seg(sl_outq_t *q, sl_chunk_t *c, uint32_t off, uint32_t len)
{
    sl_assert(q->_count < q->_seg_capacity);
    sl_outq_seg_t *s = seg_at(q, q->_count);
    s->chunk = c;
    s->off = off;
    s->len = len;
    q->_count++;
    q->bytes_pending += len;
}

/* Drops the queue's own reference to its scratch chunk (the segments keep
 * theirs), so an idle queue holds no memory. */
static void drop_scratch(sl_outq_t *q)
{
    if (q->_scratch != NULL) {
        sl_chunk_release(q->_scratch);
        q->_scratch = NULL;
    }
}

/* Copies into a chunk of its own: large copies, or no scratch room. */
static int append_own_chunk(sl_outq_t *q, const void *data, uint32_t len)
{
    bool scratch = len < q->copy_chunk_bytes;
    sl_chunk_t *c = sl_chunk_create_as(scratch ? q->copy_chunk_bytes : len, SL_BUDGET_OUTPUT);
    if (c == NULL)
        return -ENOMEM;
    memcpy(c->data, data, len);
    c->len = len;
    push_seg(q, c, 0, len);
    if (scratch) {
        drop_scratch(q);
        sl_chunk_retain(c);
        q->_scratch = c;
    }
    return 0;
}

int sl_outq_append_copy(sl_outq_t *q, const void *data, size_t len)
{
    if (len == 0)
        return 0;
    if (!fits_bytes(q, len) || len > UINT32_MAX)
        return SL_EFULL;
    if (ensure_segs(q) != 0)
        return -ENOMEM;
    sl_chunk_t *c = q->_scratch;
    if (c != NULL && c->cap - c->len >= len) {
        sl_outq_seg_t *t = tail_seg(q);
        if (t != NULL && t->chunk == c && t->off + t->len == c->len) {
            t->len += (uint32_t)len;
            q->bytes_pending += len;
        } else {
            if (q->_count == q->_seg_capacity)
                return SL_EFULL;
            sl_chunk_retain(c);
            push_seg(q, c, c->len, (uint32_t)len);
        }
        memcpy(c->data + c->len, data, len);
        c->len += (uint32_t)len;
        return 0;
    }
    if (q->_count == q->_seg_capacity)
        return SL_EFULL;
    return append_own_chunk(q, data, (uint32_t)len);
}

int sl_outq_append_ref(sl_outq_t *q, sl_chunk_t *chunk, uint32_t off, uint32_t len)
{
    sl_assert(chunk != NULL);
    sl_assert(off <= chunk->len);
    sl_assert(len <= chunk->len - off);
    if (len == 0)
        return 0;
    if (!fits_bytes(q, len))
        return SL_EFULL;
    if (ensure_segs(q) != 0)
        return SL_EFULL; /* out of memory: the producer waits, as at the bound */
    sl_outq_seg_t *t = tail_seg(q);
    if (t != NULL && t->chunk == chunk && t->off + t->len == off) {
        /* Contiguous slice of the same chunk (events encoded back to back):
         * one segment, one reference, one iovec. */
        t->len += len;
        q->bytes_pending += len;
        return 0;
    }
    if (q->_count == q->_seg_capacity)
        return SL_EFULL;
    sl_chunk_retain(chunk);
    push_seg(q, chunk, off, len);
    return 0;
}

uint32_t sl_outq_iov(const sl_outq_t *q, struct iovec *iov, uint32_t iov_max, size_t bytes_max)
{
    uint32_t n = 0;
    size_t total = 0;
    for (uint32_t i = 0; i < q->_count && n < iov_max && total < bytes_max; i++) {
        const sl_outq_seg_t *s = seg_at(q, i);
        size_t take = s->len;
        if (take > bytes_max - total)
            take = bytes_max - total;
        iov[n].iov_base = s->chunk->data + s->off;
        iov[n].iov_len = take;
        n++;
        total += take;
    }
    return n;
}

void sl_outq_consume(sl_outq_t *q, size_t n)
{
    sl_assert(n <= q->bytes_pending);
    while (n > 0) {
        sl_assert(q->_count > 0);
        sl_outq_seg_t *s = seg_at(q, 0);
        if (n < s->len) {
            s->off += (uint32_t)n;
            s->len -= (uint32_t)n;
            q->bytes_pending -= n;
            return;
        }
        n -= s->len;
        q->bytes_pending -= s->len;
        sl_chunk_release(s->chunk);
        s->chunk = NULL;
        q->_head = (q->_head + 1) % q->_seg_capacity;
        q->_count--;
    }
    if (q->_count == 0)
        drop_scratch(q);
}

size_t sl_outq_head_bytes(const sl_outq_t *q, uint32_t segs)
{
    size_t total = 0;
    for (uint32_t i = 0; i < q->_count && i < segs; i++)
        total += seg_at(q, i)->len;
    return total;
}

uint32_t sl_outq_segs_for(const sl_outq_t *q, size_t bytes)
{
    uint32_t i = 0;
    size_t total = 0;
    while (total < bytes && i < q->_count)
        total += seg_at(q, i++)->len;
    return i;
}

size_t sl_outq_transfer(sl_outq_t *dst, sl_outq_t *src, size_t bytes_max)
{
    sl_assert(dst != src);
    size_t moved = 0;
    while (moved < bytes_max && src->_count > 0) {
        const sl_outq_seg_t *s = seg_at(src, 0);
        size_t take = s->len;
        if (take > bytes_max - moved)
            take = bytes_max - moved;
        uint64_t room = sl_outq_room(dst);
        if (take > room)
            take = (size_t)room;
        if (take == 0)
            break;
        if (sl_outq_append_ref(dst, s->chunk, s->off, (uint32_t)take) != 0)
            break; /* segment bound of dst */
        sl_outq_consume(src, take);
        moved += take;
    }
    return moved;
}
