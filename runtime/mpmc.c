/*
 * Vyukov bounded MPMC queue. Each cell's sequence number says whose turn it
 * is: seq == pos means free for the producer claiming pos, seq == pos + 1
 * means filled for the consumer claiming pos. Claims are CAS on the shared
 * positions (relaxed: the cell's seq carries the ordering).
 */
#include "runtime/mpmc.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

int sl_mpmc_init(sl_mpmc_t *q, size_t capacity)
{
    size_t cap = 2;
    while (cap < capacity)
        cap <<= 1;
    q->_cells = calloc(cap, sizeof *q->_cells);
    if (!q->_cells)
        return -ENOMEM;
    for (size_t i = 0; i < cap; i++)
        atomic_store_explicit(&q->_cells[i].seq, i, memory_order_relaxed);
    q->_mask = cap - 1;
    atomic_store_explicit(&q->_enq, 0, memory_order_relaxed);
    atomic_store_explicit(&q->_deq, 0, memory_order_relaxed);
    return 0;
}

void sl_mpmc_deinit(sl_mpmc_t *q)
{
    free(q->_cells);
    q->_cells = NULL;
}

int sl_mpmc_push(sl_mpmc_t *q, void *item)
{
    size_t pos = atomic_load_explicit(&q->_enq, memory_order_relaxed);
    sl_mpmc_cell_t *c;
    for (;;) {
        c = &q->_cells[pos & q->_mask];
        /* Pairs with the consumer's release store of seq. */
        size_t seq = atomic_load_explicit(&c->seq, memory_order_acquire);
        intptr_t diff = (intptr_t)seq - (intptr_t)pos;
        if (diff == 0) {
            if (atomic_compare_exchange_weak_explicit(&q->_enq, &pos, pos + 1,
                                                      memory_order_relaxed,
                                                      memory_order_relaxed))
                break;
        } else if (diff < 0) {
            return SL_EFULL;
        } else {
            pos = atomic_load_explicit(&q->_enq, memory_order_relaxed);
        }
    }
    c->data = item;
    /* Publishes data; pairs with the consumer's acquire load. */
    atomic_store_explicit(&c->seq, pos + 1, memory_order_release);
    return 0;
}

void *sl_mpmc_pop(sl_mpmc_t *q)
{
    size_t pos = atomic_load_explicit(&q->_deq, memory_order_relaxed);
    sl_mpmc_cell_t *c;
    for (;;) {
        c = &q->_cells[pos & q->_mask];
        size_t seq = atomic_load_explicit(&c->seq, memory_order_acquire);
        intptr_t diff = (intptr_t)seq - (intptr_t)(pos + 1);
        if (diff == 0) {
            if (atomic_compare_exchange_weak_explicit(&q->_deq, &pos, pos + 1,
                                                      memory_order_relaxed,
                                                      memory_order_relaxed))
                break;
        } else if (diff < 0) {
            return NULL;
        } else {
            pos = atomic_load_explicit(&q->_deq, memory_order_relaxed);
        }
    }
    void *item = c->data;
    /* Frees the cell for the producer one lap later. */
    atomic_store_explicit(&c->seq, pos + q->_mask + 1, memory_order_release);
    return item;
}
