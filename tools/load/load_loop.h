/*
 * sluice-load's event loop: one io_uring plus a min-heap of timers, driven
 * from one thread. Every submitted operation carries an sl_load_op_t whose
 * callback receives the CQE result; the op's memory (and any buffer its SQE
 * references) must stay valid until that callback runs. The loop is the
 * load tool's own: it does not depend on the server's reactor or actors.
 */
#ifndef SL_TOOLS_LOAD_LOOP_H
#define SL_TOOLS_LOAD_LOOP_H

#include <liburing.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct sl_load_loop sl_load_loop_t;
typedef struct sl_load_op sl_load_op_t;
typedef struct sl_load_timer sl_load_timer_t;

typedef void (*sl_load_op_cb)(sl_load_op_t *op, int res);
typedef void (*sl_load_timer_cb)(sl_load_timer_t *t);

/* One in-flight io_uring operation; embedded by its owner. */
struct sl_load_op {
    sl_load_op_cb cb;
    bool busy;
};

/* A one-shot timer; embedded by its owner, re-armable. */
struct sl_load_timer {
    sl_load_timer_cb cb;
    uint64_t at_ns;
    unsigned _heap_index; /* 0 = not armed; else 1-based heap slot */
};

/* Creates a loop whose ring has sq_entries SQEs (a full SQ is submitted
 * and refilled, never refused). Returns owned, or NULL with errno set. */
sl_load_loop_t *sl_load_loop_create(unsigned sq_entries);
/* Frees the loop. Every op must have completed. */
void sl_load_loop_destroy(sl_load_loop_t *loop);
/* An SQE for op (marked busy; the caller preps the SQE). Never NULL. */
struct io_uring_sqe *sl_load_loop_sqe(sl_load_loop_t *loop, sl_load_op_t *op);
/* Ops whose completion has not been delivered yet. */
uint64_t sl_load_loop_ops_inflight(const sl_load_loop_t *loop);
/* Arms t to fire at at_ns (CLOCK_MONOTONIC); re-arms if already armed.
 * Returns 0 or -ENOMEM. */
int sl_load_loop_timer_set(sl_load_loop_t *loop, sl_load_timer_t *t, uint64_t at_ns);
/* Disarms t; no-op when not armed. */
void sl_load_loop_timer_cancel(sl_load_loop_t *loop, sl_load_timer_t *t);
/* Submits queued SQEs, waits for at least one completion or until
 * wait_until_ns (or the earliest timer), then runs every available
 * completion and every due timer. Returns 0 or -errno from io_uring. */
int sl_load_loop_step(sl_load_loop_t *loop, uint64_t wait_until_ns);

#endif
