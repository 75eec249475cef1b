/*
 * io_uring loop and timer heap. See load_loop.h.
 */
#include "tools/load/load_loop.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/base.h"
#include "runtime/clock.h"

/* CQ ring size: completions wait here between steps; the kernel buffers an
 * overflow (IORING_FEAT_NODROP), so this bounds memory, not correctness. */
#define LOOP_CQ_ENTRIES 65536
/* CQEs handled per peek before timers get a turn again. */
#define LOOP_CQE_BATCH 256

struct sl_load_loop {
    struct io_uring ring;
    uint64_t ops_inflight;
    sl_load_timer_t **heap; /* 1-based min-heap on at_ns */
    unsigned heap_len;
    unsigned heap_cap;
};

sl_load_loop_t *sl_load_loop_create(unsigned sq_entries)
{
    sl_load_loop_t *loop = calloc(1, sizeof(*loop));
    if (!loop)
        return NULL;
    /* Completion work runs when the loop asks for it (DEFER_TASKRUN, else
     * COOP_TASKRUN): data arriving on a socket then costs the sending
     * server no interrupt of a client that is busy anyway -- without it,
     * each delivery to a running client kicks its CPU, a cost charged to
     * the server under test, not to the client. Older kernels: plain. */
    static const unsigned flag_sets[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
        IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
        0,
    };
    int rc = -EINVAL;
    for (size_t i = 0; i < sizeof flag_sets / sizeof flag_sets[0]; i++) {
        struct io_uring_params p;
        memset(&p, 0, sizeof(p));
        p.flags = IORING_SETUP_CQSIZE | flag_sets[i];
        p.cq_entries = LOOP_CQ_ENTRIES;
        rc = io_uring_queue_init_params(sq_entries, &loop->ring, &p);
        if (rc != -EINVAL)
            break;
    }
    if (rc < 0) {
        free(loop);
        errno = -rc;
        return NULL;
    }
    return loop;
}

void sl_load_loop_destroy(sl_load_loop_t *loop)
{
    if (!loop)
        return;
    sl_assert(loop->ops_inflight == 0);
    io_uring_queue_exit(&loop->ring);
    free(loop->heap);
    free(loop);
}

struct io_uring_sqe *sl_load_loop_sqe(sl_load_loop_t *loop, sl_load_op_t *op)
{
    sl_assert(!op->busy);
    struct io_uring_sqe *sqe = io_uring_get_sqe(&loop->ring);
    while (!sqe) {
        /* SQ full: hand what we have to the kernel and take a fresh slot. */
        io_uring_submit(&loop->ring);
        sqe = io_uring_get_sqe(&loop->ring);
    }
    io_uring_sqe_set_data(sqe, op);
    op->busy = true;
    loop->ops_inflight++;
    return sqe;
}

uint64_t sl_load_loop_ops_inflight(const sl_load_loop_t *loop)
{
    return loop->ops_inflight;
}

static void heap_swap(sl_load_loop_t *loop, unsigned a, unsigned b)
{
    sl_load_timer_t *t = loop->heap[a];
    loop->heap[a] = loop->heap[b];
    loop->heap[b] = t;
    loop->heap[a]->_heap_index = a;
    loop->heap[b]->_heap_index = b;
}

static void heap_up(sl_load_loop_t *loop, unsigned i)
{
    while (i > 1 && loop->heap[i / 2]->at_ns > loop->heap[i]->at_ns) {
        heap_swap(loop, i, i / 2);
        i /= 2;
    }
}

static void heap_down(sl_load_loop_t *loop, unsigned i)
{
    for (;;) {
        unsigned l = 2 * i, r = l + 1, m = i;
        if (l <= loop->heap_len && loop->heap[l]->at_ns < loop->heap[m]->at_ns)
            m = l;
        if (r <= loop->heap_len && loop->heap[r]->at_ns < loop->heap[m]->at_ns)
            m = r;
        if (m == i)
            return;
        heap_swap(loop, i, m);
        i = m;
    }
}

void sl_load_loop_timer_cancel(sl_load_loop_t *loop, sl_load_timer_t *t)
{
    unsigned i = t->_heap_index;
    if (i == 0)
        return;
    sl_assert(loop->heap[i] == t);
    heap_swap(loop, i, loop->heap_len);
    loop->heap_len--;
    t->_heap_index = 0;
    if (i <= loop->heap_len) {
        heap_up(loop, i);
        heap_down(loop, i);
    }
}

int sl_load_loop_timer_set(sl_load_loop_t *loop, sl_load_timer_t *t, uint64_t at_ns)
{
    sl_assert(t->cb != NULL);
    sl_load_loop_timer_cancel(loop, t);
    if (loop->heap_len + 1 >= loop->heap_cap) {
        unsigned cap = loop->heap_cap ? loop->heap_cap * 2 : 256;
        sl_load_timer_t **h = realloc(loop->heap, cap * sizeof(*h));
        if (!h)
            return -ENOMEM;
        loop->heap = h;
        loop->heap_cap = cap;
    }
    t->at_ns = at_ns;
    loop->heap[++loop->heap_len] = t;
    t->_heap_index = loop->heap_len;
    heap_up(loop, loop->heap_len);
    return 0;
}

static void run_timers(sl_load_loop_t *loop)
{
    uint64_t now = sl_clock_now_ns();
    /* Bounded by the timers due now: a callback that re-arms for a later
     * time does not fire again in this pass. */
    while (loop->heap_len && loop->heap[1]->at_ns <= now) {
        sl_load_timer_t *t = loop->heap[1];
        sl_load_loop_timer_cancel(loop, t);
        t->cb(t);
    }
}

static unsigned reap(sl_load_loop_t *loop)
{
    struct io_uring_cqe *cqes[LOOP_CQE_BATCH];
    unsigned n = io_uring_peek_batch_cqe(&loop->ring, cqes, LOOP_CQE_BATCH);
    for (unsigned i = 0; i < n; i++) {
        sl_load_op_t *op = io_uring_cqe_get_data(cqes[i]);
        int res = cqes[i]->res;
        io_uring_cqe_seen(&loop->ring, cqes[i]);
        if (!op)
            continue;
        sl_assert(op->busy);
        op->busy = false;
        loop->ops_inflight--;
        op->cb(op, res);
    }
    return n;
}

int sl_load_loop_step(sl_load_loop_t *loop, uint64_t wait_until_ns)
{
    if (loop->heap_len && loop->heap[1]->at_ns < wait_until_ns)
        wait_until_ns = loop->heap[1]->at_ns;
    uint64_t now = sl_clock_now_ns();
    struct io_uring_cqe *cqe = NULL;
    int rc;
    if (wait_until_ns <= now) {
        rc = io_uring_submit_and_get_events(&loop->ring);
    } else {
        uint64_t d = wait_until_ns - now;
        struct __kernel_timespec ts = {.tv_sec = (long long)(d / SL_NS_PER_S),
                                       .tv_nsec = (long long)(d % SL_NS_PER_S)};
        rc = io_uring_submit_and_wait_timeout(&loop->ring, &cqe, 1, &ts, NULL);
    }
    if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY)
        return rc;
    /* Bounded: a flood of completions yields to timers after this many. */
    for (int i = 0; i < 64 && reap(loop) == LOOP_CQE_BATCH; i++) {
    }
    run_timers(loop);
    return 0;
}
