/*
 * The reactor's io_uring user_data encoding, in one place.
 *
 * Every SQE the reactor submits carries a 64-bit user_data that says what
 * its CQE belongs to. Caller ops (sl_op_t) travel as their plain pointer,
 * tag 0, so SL_OP_CANCEL can name a target op by its address with
 * io_uring_prep_cancel64. The reactor's own records (listeners, the wake-up
 * read, the lag probe, internal cancels) are at least 8-byte aligned, which
 * leaves the low three bits for a tag. Only runtime/reactor.c includes this.
 */
#ifndef SL_RUNTIME_REACTOR_INT_H
#define SL_RUNTIME_REACTOR_INT_H

#include <stdint.h>

#include "runtime/base.h"

typedef enum sl_reactor__tag {
    SL_REACTOR__UD_OP = 0,      /* sl_op_t *: a caller's op */
    SL_REACTOR__UD_ACCEPT = 1,  /* listener record: its multishot accept */
    SL_REACTOR__UD_BACKOFF = 2, /* listener record: its re-arm timeout */
    SL_REACTOR__UD_WAKE = 3,    /* reactor: eventfd read (wake-up) */
    SL_REACTOR__UD_PROBE = 4,   /* reactor: loop-lag probe timeout */
    SL_REACTOR__UD_IGNORE = 5,  /* internal cancel whose result is unused */
} sl_reactor__tag_t;

#define SL_REACTOR__UD_TAG_MASK 7ull

static inline uint64_t sl_reactor__ud(const void *p, sl_reactor__tag_t tag)
{
    uint64_t v = (uint64_t)(uintptr_t)p;
    sl_assert((v & SL_REACTOR__UD_TAG_MASK) == 0); /* records are 8-aligned */
    return v | (uint64_t)tag;
}

static inline sl_reactor__tag_t sl_reactor__ud_tag(uint64_t ud)
{
    return (sl_reactor__tag_t)(ud & SL_REACTOR__UD_TAG_MASK);
}

static inline void *sl_reactor__ud_ptr(uint64_t ud)
{
    return (void *)(uintptr_t)(ud & ~SL_REACTOR__UD_TAG_MASK);
}

#endif
