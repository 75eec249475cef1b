/*
 * Basics every module includes: the error space, assertions that stay on in
 * release builds, and a few compiler helpers.
 *
 * Error contract (liburing/libuv style): a function returning int returns 0
 * (or a non-negative count) on success; kernel and io_uring failures pass
 * through unchanged as -errno; sluice's own failures are the SL_E* codes
 * below, all below -4096 so they never collide with an errno value.
 */
#ifndef SL_RUNTIME_BASE_H
#define SL_RUNTIME_BASE_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

enum {
    SL_EFULL = -5001,     /* a bounded queue/buffer/table is full; apply its policy */
    SL_EPROTO = -5002,    /* a peer broke the protocol */
    SL_ETOOBIG = -5003,   /* input exceeds a configured limit */
    SL_ECLOSED = -5004,   /* the object is closing or closed */
    SL_ENOMEM = -5005,    /* a counted allocator refused (cap reached) */
    SL_EINVAL = -5006,    /* bad argument from a peer or the command line */
    SL_ECORRUPT = -5007,  /* stored data failed its checksum or framing */
    SL_ENOTFOUND = -5008, /* no such object */
    SL_EAGAIN = -5009,    /* not now; retry after the documented wake-up */
    SL_EENDED = -5010,    /* the session was closed for good (API: 409 closed) */
    SL_EFENCED = -5011,   /* an idempotent producer's epoch is stale (403 fenced) */
    SL_EGAP = -5012,      /* an idempotent producer skipped seqs (409 producer_gap) */
    SL_ECONFLICT = -5013, /* the request contradicts existing state (409 conflict) */
};

/* Names an error code from either space; never returns NULL. Any thread. */
const char *sl_strerror(int err);

/* Programmer-error check. Stays on in release builds; prints the expression,
 * file and line to stderr and aborts. Never use it on bytes a peer sent. */
#define sl_assert(expr)                                                      \
    do {                                                                     \
        if (__builtin_expect(!(expr), 0))                                    \
            sl__assert_fail(#expr, __FILE__, __LINE__, __func__);            \
    } while (0)

_Noreturn void sl__assert_fail(const char *expr, const char *file, int line,
                               const char *func);

#define sl_likely(x) __builtin_expect(!!(x), 1)
#define sl_unlikely(x) __builtin_expect(!!(x), 0)
#define SL_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define SL_CACHELINE 64

/* container_of: from a pointer to a member back to its struct. */
#define sl_container_of(ptr, type, member)                                   \
    ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

#endif
