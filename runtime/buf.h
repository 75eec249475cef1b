/*
 * Reference-counted immutable chunks and the bounded output queue.
 *
 * A chunk is a byte block with an atomic reference count (starts at 1, h2o
 * style). The session actor encodes an event once into a chunk; every
 * subscriber's output queue references a slice of it instead of copying, and
 * the last release frees it. Chunks are immutable once shared: only the
 * creator, while it holds the only reference, may append to one.
 *
 * sl_outq_t is a connection's pending output: a fixed-capacity ring of
 * segments (owned copies or referenced slices) with a byte bound. It hands
 * the reactor one iovec array for many segments (one sendmsg for many
 * events) and consumes what the kernel accepted.
 */
#ifndef SL_RUNTIME_BUF_H
#define SL_RUNTIME_BUF_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "runtime/base.h"
#include "runtime/budget.h"

typedef struct sl_chunk {
    _Atomic uint32_t _refs;
    uint32_t len;   /* bytes used */
    uint32_t cap;   /* bytes available in data[] */
    uint32_t _budget; /* sl_budget_kind_t its capacity is counted under */
    uint8_t data[];
} sl_chunk_t;

/* Returns an owned chunk with capacity cap and len 0, or NULL on allocation
 * failure. Any thread. */
sl_chunk_t *sl_chunk_create(uint32_t cap);
/* The same, counting the capacity in the memory budget under kind
 * (sl_chunk_create counts under SL_BUDGET_OTHER). */
sl_chunk_t *sl_chunk_create_as(uint32_t cap, sl_budget_kind_t kind);
/* Returns an owned chunk holding a copy of len bytes (cap == len), or NULL
 * on allocation failure or len > UINT32_MAX. Any thread. */
sl_chunk_t *sl_chunk_from_copy(const void *data, size_t len);
void sl_chunk_retain(sl_chunk_t *c);
/* Drops a reference; frees at zero. */
void sl_chunk_release(sl_chunk_t *c);
/* Global count of live chunk bytes (capacity of every live chunk; for
 * /health). Any thread. */
uint64_t sl_chunk_bytes_live(void);

/* Dead chunks whose capacity is a power of two in [SL_CHUNK_POOL_MIN_BYTES,
 * SL_CHUNK_POOL_MAX_BYTES] rest in a pool of the thread that released them
 * and are reused by the next chunk of that capacity made there (buf.c says
 * why). Bounds per thread: SL_CHUNK_POOL_SLOTS chunks per capacity and
 * SL_CHUNK_POOL_THREAD_BYTES in all; beyond them a dead chunk is freed. */
#define SL_CHUNK_POOL_MIN_BYTES 1024u
#define SL_CHUNK_POOL_MAX_BYTES (1024u * 1024u)
#define SL_CHUNK_POOL_SLOTS 256u
#define SL_CHUNK_POOL_THREAD_BYTES (8ull * 1024 * 1024)
/* Bytes resting in all threads' pools (header included). Any thread. */
uint64_t sl_chunk_bytes_pooled(void);
/* Frees the calling thread's pool (threads' pools are freed at their exit;
 * main calls this before it returns). */
void sl_chunk_pool_drain(void);
/* Current reference count (for assertions and tests; racy by nature when
 * other threads hold references). */
static inline uint32_t sl_chunk_refs(const sl_chunk_t *c)
{
    return atomic_load_explicit(&((sl_chunk_t *)c)->_refs, memory_order_acquire);
}

typedef struct sl_outq_seg {
    sl_chunk_t *chunk; /* referenced (one reference held by the queue) */
    uint32_t off;
    uint32_t len;
} sl_outq_seg_t;

typedef struct sl_outq {
    sl_outq_seg_t *_segs;  /* ring of seg_capacity entries */
    uint32_t _seg_capacity;
    uint32_t _head;        /* first pending segment */
    uint32_t _count;       /* segments pending */
    uint64_t bytes_pending;
    uint64_t bytes_max;    /* byte bound (policy: producers stop at it) */
    uint32_t copy_chunk_bytes; /* size of chunks allocated for copies */
    sl_chunk_t *_scratch;  /* chunk small copies are appended to (one extra
                            * reference held; dropped when the queue empties) */
} sl_outq_t;

/* Default size of the scratch chunks sl_outq_append_copy allocates; a copy
 * larger than this gets a chunk of its own size. */
#define SL_OUTQ_COPY_CHUNK_BYTES 16384u

/* Initialises on caller storage with room for seg_capacity segments and a
 * byte bound; copy_chunk_bytes starts at SL_OUTQ_COPY_CHUNK_BYTES and may be
 * changed by the owner. Allocates nothing: the segment ring comes with the
 * first append (an idle connection's queue costs only this struct).
 * Returns 0. */
int sl_outq_init(sl_outq_t *q, uint32_t seg_capacity, uint64_t bytes_max);
/* Releases every referenced chunk and the ring. */
void sl_outq_deinit(sl_outq_t *q);

/* Copies len bytes to the tail. Small copies go into the queue's scratch
 * chunk (the tail segment grows when it ends there; no allocation while the
 * chunk has room); a copy of copy_chunk_bytes or more gets a chunk of its
 * own size. Only the queue writes its scratch chunk, and only past the
 * bytes any segment (here or in a queue it was transferred to) refers to.
 * Returns 0, SL_EFULL (segments or byte bound; nothing appended) or
 * -ENOMEM. */
int sl_outq_append_copy(sl_outq_t *q, const void *data, size_t len);
/* Appends a referenced slice (retains chunk; the caller keeps its own
 * reference). A slice that continues the tail segment of the same chunk
 * extends it instead of taking a new slot. Returns 0 or SL_EFULL (nothing
 * appended). */
int sl_outq_append_ref(sl_outq_t *q, sl_chunk_t *chunk, uint32_t off, uint32_t len);
/* Room left under the byte bound. */
static inline uint64_t sl_outq_room(const sl_outq_t *q)
{
    return q->bytes_pending >= q->bytes_max ? 0 : q->bytes_max - q->bytes_pending;
}
/* Fills up to iov_max iovecs from the head, at most bytes_max bytes.
 * Returns the number filled. The memory stays valid until consumed. */
uint32_t sl_outq_iov(const sl_outq_t *q, struct iovec *iov, uint32_t iov_max, size_t bytes_max);
/* Drops n bytes from the head (what the kernel accepted). n <= pending. */
void sl_outq_consume(sl_outq_t *q, size_t n);

/* Segment slots left in the ring (an append may need one more slot). */
static inline uint32_t sl_outq_segs_free(const sl_outq_t *q)
{
    return q->_seg_capacity - q->_count;
}
/* Bytes held by the first segs pending segments (all of them if fewer). */
size_t sl_outq_head_bytes(const sl_outq_t *q, uint32_t segs);
/* Segments the first bytes pending bytes span (a partial one counts). */
uint32_t sl_outq_segs_for(const sl_outq_t *q, size_t bytes);
/* Moves up to bytes_max bytes from the head of src to the tail of dst as
 * referenced slices (no payload copy; a segment may be split). Stops early
 * when dst reaches its segment or byte bound. Returns the bytes moved; both
 * queues stay consistent on every path. Same thread as both queues. */
size_t sl_outq_transfer(sl_outq_t *dst, sl_outq_t *src, size_t bytes_max);

#endif
