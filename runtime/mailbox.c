/*
 * Bounded MPSC mailbox. See mailbox.h for the contract.
 *
 * The list is Dmitry Vyukov's intrusive MPSC queue with a stub node that the
 * consumer re-inserts when it pops the last visible message, so every popped
 * message is detached from the list and can be freed or re-pushed at once.
 * Producers: one exchange on _head, then a release store of the link.
 * Consumer: acquire loads of links; a NULL link behind a newer _head means a
 * producer is between its exchange and its store, and pop reports "nothing
 * yet" rather than spinning (the depth counter keeps the actor scheduled).
 */
#include "runtime/mailbox.h"

void sl_mailbox_init(sl_mailbox_t *mb, uint32_t capacity)
{
    sl_assert(capacity >= 1);
    atomic_store_explicit(&mb->_stub._next, NULL, memory_order_relaxed);
    atomic_store_explicit(&mb->_head, &mb->_stub, memory_order_relaxed);
    atomic_store_explicit(&mb->_depth, 0, memory_order_relaxed);
    mb->_tail = &mb->_stub;
    mb->capacity = capacity;
}

static void link_msg(sl_mailbox_t *mb, sl_msg_t *msg)
{
    atomic_store_explicit(&msg->_next, NULL, memory_order_relaxed);
    /* acq_rel: release publishes msg's contents to the consumer that reads
     * the link below; acquire orders us after the previous producer. */
    sl_msg_t *prev = atomic_exchange_explicit(&mb->_head, msg, memory_order_acq_rel);
    /* Pairs with the acquire load of _next in sl_mailbox_pop. */
    atomic_store_explicit(&prev->_next, msg, memory_order_release);
}

int sl_mailbox_push(sl_mailbox_t *mb, sl_msg_t *msg, uint32_t *depth_before)
{
    uint32_t d;
    if (msg->mclass == SL_MSG_NORMAL) {
        d = atomic_load_explicit(&mb->_depth, memory_order_relaxed);
        do {
            if (d >= mb->capacity)
                return SL_EFULL;
            /* acq_rel pairs with the consumer's fetch_sub in retire, so a
             * producer that sees depth 0 sees the consumer's run finished. */
        } while (!atomic_compare_exchange_weak_explicit(&mb->_depth, &d, d + 1,
                                                        memory_order_acq_rel,
                                                        memory_order_relaxed));
    } else {
        d = atomic_fetch_add_explicit(&mb->_depth, 1, memory_order_acq_rel);
    }
    /* Count first, link second: the consumer may then see depth > 0 with no
     * visible message (it retries), but never a message it has not counted. */
    link_msg(mb, msg);
    if (depth_before)
        *depth_before = d;
    return 0;
}

sl_msg_t *sl_mailbox_pop(sl_mailbox_t *mb)
{
    sl_msg_t *tail = mb->_tail;
    sl_msg_t *next = atomic_load_explicit(&tail->_next, memory_order_acquire);
    if (tail == &mb->_stub) {
        if (next == NULL)
            return NULL;
        mb->_tail = next;
        tail = next;
        next = atomic_load_explicit(&next->_next, memory_order_acquire);
    }
    if (next) {
        mb->_tail = next;
        return tail;
    }
    sl_msg_t *head = atomic_load_explicit(&mb->_head, memory_order_acquire);
    if (tail != head)
        return NULL; /* a producer is mid-push behind tail */
    link_msg(mb, &mb->_stub);
    next = atomic_load_explicit(&tail->_next, memory_order_acquire);
    if (next) {
        mb->_tail = next;
        return tail;
    }
    return NULL;
}

uint32_t sl_mailbox_retire(sl_mailbox_t *mb, uint32_t n)
{
    if (n == 0)
        return atomic_load_explicit(&mb->_depth, memory_order_acquire);
    /* Pairs with the producers' acq_rel increments. */
    uint32_t before = atomic_fetch_sub_explicit(&mb->_depth, n, memory_order_acq_rel);
    sl_assert(before >= n);
    return before - n;
}
