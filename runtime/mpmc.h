/*
 * Bounded lock-free multi-producer / multi-consumer queue of pointers
 * (Vyukov's array queue: one sequence word per cell, no ABA). Used for the
 * scheduler's run queue and anywhere a fixed population of items moves
 * between threads. Full is SL_EFULL: callers size it so that it cannot be
 * (each item is in the queue at most once and capacity >= population).
 */
#ifndef SL_RUNTIME_MPMC_H
#define SL_RUNTIME_MPMC_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "runtime/base.h"

typedef struct sl_mpmc_cell {
    _Atomic size_t seq;
    void *data;
} sl_mpmc_cell_t;

typedef struct sl_mpmc {
    sl_mpmc_cell_t *_cells;
    size_t _mask;
    alignas(SL_CACHELINE) _Atomic size_t _enq;
    alignas(SL_CACHELINE) _Atomic size_t _deq;
} sl_mpmc_t;

/* Initialises with capacity rounded up to a power of two (>= 2).
 * Returns 0 or -ENOMEM. */
int sl_mpmc_init(sl_mpmc_t *q, size_t capacity);
void sl_mpmc_deinit(sl_mpmc_t *q);
/* Returns 0 or SL_EFULL (queue unchanged). Any thread. */
int sl_mpmc_push(sl_mpmc_t *q, void *item);
/* Returns the oldest item or NULL if empty. Any thread. */
void *sl_mpmc_pop(sl_mpmc_t *q);
static inline size_t sl_mpmc_capacity(const sl_mpmc_t *q) { return q->_mask + 1; }
/* True when an item was pushed and not yet popped (it may still be being
 * published). seq_cst loads, for a consumer's check before it sleeps. Any
 * thread. */
static inline bool sl_mpmc_maybe_nonempty(sl_mpmc_t *q)
{
    return atomic_load_explicit(&q->_enq, memory_order_seq_cst) !=
           atomic_load_explicit(&q->_deq, memory_order_seq_cst);
}

#endif
