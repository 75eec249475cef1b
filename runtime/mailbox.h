/*
 * Bounded multi-producer / single-consumer mailbox of intrusive messages.
 *
 * The queue is Vyukov's intrusive MPSC list with a stub node: a push is one
 * atomic exchange plus one release store, never blocks and never allocates;
 * a popped message is fully detached, so its memory may be released or the
 * same record pushed again at once (the coalesced-notify message relies on
 * this).
 *
 * Bound and policy (DESIGN.md "Threads and actors"): `depth` counts messages
 * pushed and not yet retired by the consumer. Only SL_MSG_NORMAL messages are
 * refused: a NORMAL push fails with SL_EFULL once depth reaches `capacity`,
 * and the sender applies the policy of that message kind (stop reading, answer
 * 503, retry after a wake-up). CONTROL and COMPLETION messages are never
 * refused; they are bounded by construction instead: every control message is
 * a record preallocated by its sender (one close, one notify, one reap per
 * actor) and every completion belongs to an I/O operation record the owner
 * submitted (an actor has a fixed number of op records). So depth can never
 * exceed capacity + SL_MAILBOX_RESERVED_MAX, which is the reserved-slot
 * guarantee expressed without a second counter.
 */
#ifndef SL_RUNTIME_MAILBOX_H
#define SL_RUNTIME_MAILBOX_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>

#include "runtime/base.h"

typedef struct sl_msg sl_msg_t;

/* Frees or recycles a message record. Called by whoever owns the message
 * when it is done with it (see sl_msg_release). */
typedef void (*sl_msg_release_cb)(sl_msg_t *msg);

typedef enum sl_msg_class {
    SL_MSG_NORMAL = 0,     /* counted against capacity; push may fail SL_EFULL */
    SL_MSG_CONTROL = 1,    /* preallocated by its sender; never refused */
    SL_MSG_COMPLETION = 2, /* I/O completion of an owned op; never refused */
    SL_MSG_CLASS_COUNT = 3,
} sl_msg_class_t;

/* Message header; embed it first in every message record. The receiver
 * reads `kind` to dispatch. Fields with a leading '_' belong to the mailbox. */
struct sl_msg {
    _Atomic(sl_msg_t *) _next;
    uint16_t kind;             /* receiver-defined */
    uint8_t mclass;            /* sl_msg_class_t */
    uint8_t _flags;
    uint32_t aux;              /* free for the sender/receiver protocol */
    sl_msg_release_cb release; /* NULL: embedded record, nothing to free */
};

typedef struct sl_mailbox {
    alignas(SL_CACHELINE) _Atomic(sl_msg_t *) _head; /* written by producers */
    alignas(SL_CACHELINE) _Atomic uint32_t _depth;   /* producers (+) and consumer (-) */
    uint32_t capacity;                               /* bound on NORMAL messages */
    alignas(SL_CACHELINE) sl_msg_t *_tail;           /* consumer only */
    sl_msg_t _stub;
} sl_mailbox_t;

/* Initialises an empty mailbox on caller storage. capacity >= 1. */
void sl_mailbox_init(sl_mailbox_t *mb, uint32_t capacity);

/* Pushes msg (borrowed until popped; the receiver then owns it). Any thread.
 * NORMAL messages are refused with SL_EFULL when depth >= capacity, leaving
 * the mailbox unchanged; other classes always succeed. On success returns 0
 * and stores the depth before this push in *depth_before (if non-NULL):
 * 0 means the consumer was idle and must be scheduled by the caller. */
int sl_mailbox_push(sl_mailbox_t *mb, sl_msg_t *msg, uint32_t *depth_before);

/* Pops the oldest message, or NULL if none is visible yet (a push may be
 * half-done: depth > 0 but the link not yet stored; retry later). Consumer
 * thread only. */
sl_msg_t *sl_mailbox_pop(sl_mailbox_t *mb);

/* Retires n popped messages from depth. Consumer only. Returns the depth
 * left: > 0 means more messages are pending (or being pushed) and the
 * consumer must run again; 0 means the next push will see depth_before 0. */
uint32_t sl_mailbox_retire(sl_mailbox_t *mb, uint32_t n);

/* Current depth (relaxed snapshot, for stats). Any thread. */
static inline uint32_t sl_mailbox_depth(const sl_mailbox_t *mb)
{
    return atomic_load_explicit(&mb->_depth, memory_order_relaxed);
}

/* Calls msg->release if set. */
static inline void sl_msg_release(sl_msg_t *msg)
{
    if (msg->release)
        msg->release(msg);
}

#endif
