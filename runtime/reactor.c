/*
 * The io_uring reactor: one ring, one thread, all the process's I/O.
 *
 * One loop iteration (reactor_tick): drain the request queue (at most
 * SL_REACTOR_DRAIN_MAX ops) and the buffer-return queue, turn ops into SQEs,
 * then make exactly one io_uring_enter that submits everything and either
 * collects completions (busy) or blocks for at least one (idle), and finally
 * reap every CQE with a single switch on the user_data tag
 * (runtime/reactor_int.h). Completions go back to their owner actors as the
 * op's embedded COMPLETION message.
 *
 * Cross-thread traffic reaches the reactor through two lock-free queues:
 * - requests: Vyukov's intrusive MPSC list threaded through op->msg._next
 *   (an op is never in a mailbox and in this queue at the same time), so a
 *   submit never allocates and never fails;
 * - returned receive buffers: a bounded ring of buffer ids with one slot per
 *   buffer, so it cannot overflow (each id is returned once per loan).
 * Producers wake the reactor only when it announced that it is about to
 * sleep (a Dekker pair of seq_cst operations on `sleeping` and the queue
 * heads), so a busy reactor costs submitters no syscall.
 *
 * Ring setup: SINGLE_ISSUER + DEFER_TASKRUN where the kernel has them,
 * falling back step by step on -EINVAL. The ring is created disabled and
 * enabled by the reactor thread so that thread is the single issuer.
 */
#include "runtime/reactor.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "runtime/clock.h"
#include "runtime/limits.h"
#include "runtime/log.h"
#include "runtime/reactor_int.h"

/* op->_state: only for catching double submits; the reactor owns the op
 * between QUEUED and IDLE. */
enum { OP_IDLE = 0, OP_QUEUED = 1, OP_KERNEL = 2, OP_PARKED = 3 };

/* Private kinds of records that travel the request queue. */
enum { OP_LISTEN = SL_OP_KIND_COUNT, OP_UNLISTEN };

/* io_uring_getevents_arg.min_wait_usec (the old `pad`) is honoured. */
#ifndef IORING_FEAT_MIN_TIMEOUT
#define IORING_FEAT_MIN_TIMEOUT (1U << 15)
#endif

/* Provided-buffer group id; each reactor has its own ring, so one group. */
#define BUF_GROUP 0

_Static_assert(sizeof(struct __kernel_timespec) == 2 * sizeof(uint64_t), "timespec fits _ts/_ts2");
_Static_assert(offsetof(sl_op_t, _ts2) == offsetof(sl_op_t, _ts) + sizeof(uint64_t),
               "_ts/_ts2 are contiguous");
_Static_assert(offsetof(sl_op_t, msg) == 0, "msg is first in sl_op_t");

typedef enum { LS_IDLE = 0, LS_ARMED, LS_BACKOFF, LS_STOPPED } listen_state_t;

typedef struct listener {
    sl_op_t ctl; /* carries OP_LISTEN through the request queue */
    int fd;
    sl_accept_cb cb;
    void *ctx;
    listen_state_t state; /* reactor thread only once announced */
    struct __kernel_timespec backoff_ts;
} listener_t;

typedef struct retq_cell {
    _Atomic uint32_t seq; /* Vyukov sequence: pos free, pos+1 full */
    uint16_t id;
} retq_cell_t;

/* Stats: written by the reactor thread only (plain load+store, relaxed),
 * read by anyone; lag_max is also reset by the reader. */
typedef struct rstats {
    _Atomic uint64_t lag_max;
    _Atomic uint64_t lag_recent;
    _Atomic uint64_t iterations;
    _Atomic uint64_t submitted;
    _Atomic uint64_t completed;
    _Atomic uint64_t enter_calls;
    _Atomic uint64_t accepted;
    _Atomic uint64_t accept_errors;
    _Atomic uint64_t recv_starved;
    _Atomic uint32_t bufs_free;
    _Atomic uint32_t inflight;
} rstats_t;

struct sl_reactor {
    struct sl_sched *sched; /* inline scheduler hosted on this thread, or NULL */
    /* Written by submitting threads. */
    alignas(SL_CACHELINE) _Atomic(sl_msg_t *) req_head;
    alignas(SL_CACHELINE) _Atomic uint32_t ret_enq;
    alignas(SL_CACHELINE) _Atomic uint32_t sleeping; /* reactor sets, a waker clears */
    _Atomic uint64_t wakeups;
    _Atomic uint32_t unlisten_queued; /* unlisten_op is in the request queue */
    _Atomic uint32_t nlisteners;      /* slots claimed by sl_reactor_listen */
    _Atomic bool stop;

    /* Reactor thread only (or the creating thread before start); the
     * stub's link is also written by a producer that finds it at the head. */
    alignas(SL_CACHELINE) struct io_uring ring;
    sl_msg_t *req_tail;
    sl_msg_t req_stub;
    _Atomic uint32_t ret_deq; /* reactor writes; stats read it */
    sl_op_t *parked_head;     /* recvs waiting for a buffer, FIFO via msg._next */
    sl_op_t *parked_tail;
    _Atomic uint32_t parked_count; /* read by buf_return to decide a wake */
    uint64_t efd_value;            /* eventfd read target */
    struct __kernel_timespec probe_ts;
    uint64_t probe_due_ns;
    uint64_t round_start_ns;       /* when the last io_uring_enter returned */
    sl_op_t unlisten_op;
    /* Listeners whose OP_LISTEN the reactor has processed. A slot in
     * `listeners` is claimed and filled by the caller of sl_reactor_listen,
     * so the reactor reads only the ones published through the queue. */
    listener_t *active[SL_REACTOR_LISTEN_MAX];
    uint32_t nactive;
    listener_t listeners[SL_REACTOR_LISTEN_MAX];

    alignas(SL_CACHELINE) rstats_t st;

    /* Set at create, immutable after. */
    sl_reactor_config_t cfg;
    uint32_t index;
    uint32_t ring_flags;
    bool ring_ok;
    bool min_wait_ok; /* the kernel batches sleeps (IORING_FEAT_MIN_TIMEOUT) */
    bool batch_wait_on; /* cfg.batch_wait_ns > 0 and min_wait_ok */
    uint32_t quick_inflight; /* ops other than recvs and timeouts, not yet posted */
    int efd;
    retq_cell_t *ret;             /* recv_buffers cells */
    struct io_uring_buf_ring *br; /* provided-buffer ring (kernel shared) */
    size_t br_bytes;
    char *bufs; /* recv_buffers x recv_buffer_bytes */
    size_t bufs_bytes;
    pthread_t thread;
    bool started;
    int start_rc;
    sem_t started_sem;
};

/* ---- small helpers ------------------------------------------------------ */

static void stat_add64(_Atomic uint64_t *c, uint64_t n)
{
    /* Single writer: no locked instruction needed. */
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

static void stat_add32(_Atomic uint32_t *c, int32_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + (uint32_t)n,
                          memory_order_relaxed);
}

static void stat_max64(_Atomic uint64_t *c, uint64_t v)
{
    uint64_t cur = atomic_load_explicit(c, memory_order_relaxed);
    /* Bounded: only the stats reader (a reset to 0) can interfere. */
    while (v > cur && !atomic_compare_exchange_weak_explicit(c, &cur, v, memory_order_relaxed,
                                                             memory_order_relaxed)) {
    }
}

static void ts_from_ns(struct __kernel_timespec *ts, uint64_t ns)
{
    ts->tv_sec = (long long)(ns / SL_NS_PER_S);
    ts->tv_nsec = (long long)(ns % SL_NS_PER_S);
}

static char *buf_addr(const sl_reactor_t *r, uint16_t id)
{
    return r->bufs + (size_t)id * r->cfg.recv_buffer_bytes;
}

/* ---- request queue (Vyukov intrusive MPSC) ------------------------------ */

static void reqq_push(sl_reactor_t *r, sl_msg_t *m)
{
    atomic_store_explicit(&m->_next, NULL, memory_order_relaxed);
    /* seq_cst: pairs with the reactor's seq_cst store to `sleeping` and its
     * re-check of req_head in may_sleep() (Dekker). */
    sl_msg_t *prev = atomic_exchange_explicit(&r->req_head, m, memory_order_seq_cst);
    /* release: publishes *m to the reactor's acquire load in reqq_pop. */
    atomic_store_explicit(&prev->_next, m, memory_order_release);
}

static sl_msg_t *reqq_pop(sl_reactor_t *r)
{
    sl_msg_t *tail = r->req_tail;
    sl_msg_t *next = atomic_load_explicit(&tail->_next, memory_order_acquire);
    if (tail == &r->req_stub) {
        if (!next)
            return NULL;
        r->req_tail = next;
        tail = next;
        next = atomic_load_explicit(&next->_next, memory_order_acquire);
    }
    if (next) {
        r->req_tail = next;
        return tail;
    }
    if (tail != atomic_load_explicit(&r->req_head, memory_order_acquire))
        return NULL; /* a push is half done; it will be seen next tick */
    reqq_push(r, &r->req_stub);
    next = atomic_load_explicit(&tail->_next, memory_order_acquire);
    if (!next)
        return NULL;
    r->req_tail = next;
    return tail;
}

static bool reqq_nonempty(sl_reactor_t *r)
{
    /* seq_cst: the reactor's half of the Dekker pair (see reqq_push). */
    return r->req_tail != &r->req_stub ||
           atomic_load_explicit(&r->req_head, memory_order_seq_cst) != &r->req_stub;
}

/* Any thread: wakes the reactor if (and only if) it is about to sleep. */
static void wake_if_sleeping(sl_reactor_t *r)
{
    /* seq_cst load: second half of the submitter's Dekker pair; the
     * exchange makes sure one waker writes per sleep. */
    if (!atomic_load_explicit(&r->sleeping, memory_order_seq_cst))
        return;
    if (!atomic_exchange_explicit(&r->sleeping, 0, memory_order_acq_rel))
        return;
    uint64_t one = 1;
    ssize_t n = write(r->efd, &one, sizeof one);
    sl_assert(n == (ssize_t)sizeof one); /* eventfd cannot overflow at 1/sleep */
    atomic_fetch_add_explicit(&r->wakeups, 1, memory_order_relaxed);
}

/* ---- SQE helpers -------------------------------------------------------- */

static struct io_uring_sqe *get_sqe(sl_reactor_t *r)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
    /* SQ full: submit what is queued and continue (no op is refused). The
     * kernel consumes the whole SQ on submit, so a few tries suffice. */
    for (int i = 0; !sqe && i < 4; i++) {
        io_uring_submit(&r->ring);
        stat_add64(&r->st.enter_calls, 1);
        sqe = io_uring_get_sqe(&r->ring);
    }
    sl_assert(sqe != NULL);
    return sqe;
}

static void prep_internal_cancel(sl_reactor_t *r, uint64_t target_ud)
{
    struct io_uring_sqe *sqe = get_sqe(r);
    io_uring_prep_cancel64(sqe, target_ud, 0);
    io_uring_sqe_set_data64(sqe, sl_reactor__ud(NULL, SL_REACTOR__UD_IGNORE));
}

static void arm_wake(sl_reactor_t *r)
{
    struct io_uring_sqe *sqe = get_sqe(r);
    io_uring_prep_read(sqe, r->efd, &r->efd_value, sizeof r->efd_value, 0);
    io_uring_sqe_set_data64(sqe, sl_reactor__ud(r, SL_REACTOR__UD_WAKE));
}

static void arm_probe(sl_reactor_t *r)
{
    ts_from_ns(&r->probe_ts, r->cfg.lag_probe_ns);
    r->probe_due_ns = sl_clock_now_ns() + r->cfg.lag_probe_ns;
    struct io_uring_sqe *sqe = get_sqe(r);
    io_uring_prep_timeout(sqe, &r->probe_ts, 0, 0);
    io_uring_sqe_set_data64(sqe, sl_reactor__ud(r, SL_REACTOR__UD_PROBE));
}

/* ---- completions -------------------------------------------------------- */

/* Ops whose completion is due at once (a write, a send, a close), as
 * opposed to a recv or a timeout that waits for the outside world. A
 * batched sleep never delays the former: the next step of a reply waits on
 * them. */
static bool op_is_quick(const sl_op_t *op)
{
    return op->kind != SL_OP_RECV && op->kind != SL_OP_TIMEOUT;
}

/* Hands op back to its owner. The op must not be touched afterwards: the
 * owner may reuse or free it as soon as the message is pushed. */
static void post(sl_reactor_t *r, sl_op_t *op, int32_t res, uint32_t cqe_flags)
{
    r->quick_inflight -= op_is_quick(op);
    op->res = res;
    op->cqe_flags = cqe_flags;
    op->_state = OP_IDLE;
    op->msg.kind = SL_MSG_KIND_IO;
    op->msg.mclass = SL_MSG_COMPLETION;
    op->msg.release = NULL;
    stat_add64(&r->st.completed, 1);
    stat_add32(&r->st.inflight, -1);
    /* A peer's bytes go first: requests are answered ahead of fan-out. */
    int rc = op->kind == SL_OP_RECV ? sl_actor_send_input(op->owner, &op->msg)
                                    : sl_actor_send(op->owner, &op->msg);
    sl_assert(rc == 0); /* COMPLETION messages are never refused */
}

static void park(sl_reactor_t *r, sl_op_t *op)
{
    op->_state = OP_PARKED;
    atomic_store_explicit(&op->msg._next, NULL, memory_order_relaxed);
    if (r->parked_tail)
        atomic_store_explicit(&r->parked_tail->msg._next, &op->msg, memory_order_relaxed);
    else
        r->parked_head = op;
    r->parked_tail = op;
    stat_add32(&r->parked_count, 1);
    stat_add64(&r->st.recv_starved, 1);
}

static sl_op_t *parked_next(sl_op_t *op)
{
    return (sl_op_t *)(void *)atomic_load_explicit(&op->msg._next, memory_order_relaxed);
}

/* Unlinks op (found after prev, or first when prev is NULL). */
static void unpark(sl_reactor_t *r, sl_op_t *prev, sl_op_t *op)
{
    sl_op_t *next = parked_next(op);
    if (prev)
        atomic_store_explicit(&prev->msg._next, next ? &next->msg : NULL, memory_order_relaxed);
    else
        r->parked_head = next;
    if (r->parked_tail == op)
        r->parked_tail = prev;
    stat_add32(&r->parked_count, -1);
}

/* SL_OP_CANCEL of a parked recv: the kernel does not know it, so cancel it
 * here. Compares addresses only: the target may be the owner's again. */
static bool cancel_parked(sl_reactor_t *r, sl_op_t *cancel)
{
    sl_op_t *prev = NULL;
    for (sl_op_t *op = r->parked_head; op; prev = op, op = parked_next(op)) {
        if (op != cancel->target)
            continue;
        unpark(r, prev, op);
        post(r, op, -ECANCELED, 0);
        post(r, cancel, 0, 0);
        return true;
    }
    return false;
}

/* SL_OP_CANCEL_FD: parked recvs on fd are cancelled here; returns how many
 * (added to the kernel's count when the cancel completes). */
static uint32_t cancel_parked_fd(sl_reactor_t *r, int fd)
{
    uint32_t n = 0;
    sl_op_t *prev = NULL;
    sl_op_t *op = r->parked_head;
    while (op) {
        sl_op_t *next = parked_next(op);
        if (op->fd == fd) {
            unpark(r, prev, op);
            post(r, op, -ECANCELED, 0);
            n++;
        } else {
            prev = op;
        }
        op = next;
    }
    return n;
}

/* ---- ops to SQEs: the one switch on the op kind ------------------------- */

static void prep_op(struct io_uring_sqe *sqe, sl_op_t *op)
{
    switch ((sl_op_kind_t)op->kind) {
    case SL_OP_NOP:
        io_uring_prep_nop(sqe);
        break;
    case SL_OP_RECV:
        io_uring_prep_recv(sqe, op->fd, op->buf, op->len, (int)op->flags);
        if (!op->buf) {
            sqe->flags |= IOSQE_BUFFER_SELECT;
            sqe->buf_group = BUF_GROUP;
        }
        break;
    case SL_OP_SEND:
        io_uring_prep_send(sqe, op->fd, op->buf, op->len, (int)op->flags | MSG_NOSIGNAL);
        break;
    case SL_OP_SENDMSG:
        memset(&op->_mh, 0, sizeof op->_mh);
        op->_mh.msg_iov = op->iov;
        op->_mh.msg_iovlen = op->iovcnt;
        io_uring_prep_sendmsg(sqe, op->fd, &op->_mh, op->flags | MSG_NOSIGNAL);
        break;
    case SL_OP_TIMEOUT: {
        struct __kernel_timespec *ts = (struct __kernel_timespec *)(void *)&op->_ts;
        ts_from_ns(ts, op->timeout_ns);
        io_uring_prep_timeout(sqe, ts, 0, op->flags & SL_TIMEOUT_ABS ? IORING_TIMEOUT_ABS : 0);
        break;
    }
    case SL_OP_CANCEL:
        io_uring_prep_cancel64(sqe, sl_reactor__ud(op->target, SL_REACTOR__UD_OP), 0);
        break;
    case SL_OP_CANCEL_FD:
        io_uring_prep_cancel_fd(sqe, op->fd, IORING_ASYNC_CANCEL_ALL);
        break;
    case SL_OP_SHUTDOWN:
        io_uring_prep_shutdown(sqe, op->fd, (int)op->flags);
        break;
    case SL_OP_CLOSE:
        io_uring_prep_close(sqe, op->fd);
        break;
    case SL_OP_OPENAT:
        /* O_CLOEXEC always: no descriptor leaks into a child process. */
        io_uring_prep_openat(sqe, op->fd, op->path, (int)op->flags | O_CLOEXEC, op->mode);
        break;
    case SL_OP_READ:
        io_uring_prep_read(sqe, op->fd, op->buf, op->len, op->offset);
        break;
    case SL_OP_WRITE:
        io_uring_prep_write(sqe, op->fd, op->buf, op->len, op->offset);
        sqe->rw_flags = (__kernel_rwf_t)op->flags; /* RWF_DSYNC */
        break;
    case SL_OP_WRITEV:
        io_uring_prep_writev(sqe, op->fd, op->iov, op->iovcnt, op->offset);
        sqe->rw_flags = (__kernel_rwf_t)op->flags;
        break;
    case SL_OP_FSYNC:
        io_uring_prep_fsync(sqe, op->fd, op->flags);
        break;
    case SL_OP_MKDIRAT:
        io_uring_prep_mkdirat(sqe, op->fd, op->path, op->mode);
        break;
    case SL_OP_UNLINKAT:
        io_uring_prep_unlinkat(sqe, op->fd, op->path, (int)op->flags);
        break;
    case SL_OP_RENAMEAT:
        io_uring_prep_renameat(sqe, op->fd, op->path, op->fd2, op->path2, op->flags);
        break;
    case SL_OP_POLL:
        io_uring_prep_poll_add(sqe, op->fd, op->flags);
        break;
    case SL_OP_KIND_COUNT:
        sl_assert(!"bad op kind");
        break;
    }
}

static void start_op(sl_reactor_t *r, sl_op_t *op)
{
    if (op->kind == SL_OP_CANCEL && cancel_parked(r, op))
        return;
    if (op->kind == SL_OP_CANCEL_FD)
        op->_ts2 = cancel_parked_fd(r, op->fd); /* scratch: merged on completion */
    struct io_uring_sqe *sqe = get_sqe(r);
    prep_op(sqe, op);
    io_uring_sqe_set_data64(sqe, sl_reactor__ud(op, SL_REACTOR__UD_OP));
    op->_state = OP_KERNEL;
}

/* CANCEL_FD result per reactor.h: the number cancelled (kernel plus
 * parked), or -ENOENT for none. With IORING_ASYNC_CANCEL_ALL the kernel
 * reports 0 for none on current kernels and -ENOENT on older ones. */
static int32_t cancel_fd_result(int32_t kernel_res, int32_t parked)
{
    if (kernel_res < 0 && kernel_res != -ENOENT)
        return kernel_res;
    int32_t total = (kernel_res > 0 ? kernel_res : 0) + parked;
    return total > 0 ? total : -ENOENT;
}

static void complete_op(sl_reactor_t *r, sl_op_t *op, int32_t res, uint32_t flags)
{
    if (op->kind == SL_OP_RECV && !op->buf) {
        if (res == -ENOBUFS) {
            park(r, op); /* invisible to the owner; re-armed on a return */
            return;
        }
        if (flags & IORING_CQE_F_BUFFER) {
            uint16_t id = (uint16_t)(flags >> IORING_CQE_BUFFER_SHIFT);
            sl_assert(id < r->cfg.recv_buffers);
            op->buf_id = id;
            op->buf = buf_addr(r, id);
            stat_add32(&r->st.bufs_free, -1);
        }
    } else if (op->kind == SL_OP_CANCEL_FD) {
        res = cancel_fd_result(res, (int32_t)op->_ts2);
    }
    post(r, op, res, flags);
}

/* ---- accept ------------------------------------------------------------- */

static void arm_accept(sl_reactor_t *r, listener_t *l)
{
    struct io_uring_sqe *sqe = get_sqe(r);
    io_uring_prep_multishot_accept(sqe, l->fd, NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, sl_reactor__ud(l, SL_REACTOR__UD_ACCEPT));
    l->state = LS_ARMED;
}

static void arm_backoff(sl_reactor_t *r, listener_t *l)
{
    ts_from_ns(&l->backoff_ts, SL_REACTOR_ACCEPT_BACKOFF_MS * SL_NS_PER_MS);
    struct io_uring_sqe *sqe = get_sqe(r);
    io_uring_prep_timeout(sqe, &l->backoff_ts, 0, 0);
    io_uring_sqe_set_data64(sqe, sl_reactor__ud(l, SL_REACTOR__UD_BACKOFF));
    l->state = LS_BACKOFF;
}

/* Errors that say the listening socket itself is unusable (or that the
 * accept was cancelled on purpose): stop instead of retrying. */
static bool accept_error_is_final(int32_t res)
{
    return res == -EBADF || res == -ENOTSOCK || res == -EINVAL || res == -EOPNOTSUPP ||
           res == -ECANCELED;
}

static void on_accept(sl_reactor_t *r, listener_t *l, int32_t res, uint32_t flags)
{
    if (res >= 0) {
        if (l->state == LS_STOPPED) {
            close(res); /* accepted after unlisten: refuse it */
        } else {
            stat_add64(&r->st.accepted, 1);
            l->cb(r, res, l->ctx);
        }
    } else if (res != -ECANCELED) {
        stat_add64(&r->st.accept_errors, 1);
    }
    if ((flags & IORING_CQE_F_MORE) || l->state == LS_STOPPED)
        return;
    if (res >= 0 || res == -ECONNABORTED || res == -EINTR) {
        arm_accept(r, l); /* per-connection or benign: re-arm now */
    } else if (accept_error_is_final(res)) {
        l->state = LS_STOPPED;
        if (res != -ECANCELED)
            sl_warn("reactor accept stopped", "reactor=%u fd=%d err=\"%s\"", r->index, l->fd,
                    sl_strerror(res));
    } else {
        arm_backoff(r, l); /* EMFILE, ENFILE, ENOBUFS, ENOMEM, ...: never spin */
    }
}

static void unlisten_all(sl_reactor_t *r)
{
    for (uint32_t i = 0; i < r->nactive; i++) {
        listener_t *l = r->active[i];
        if (l->state == LS_ARMED)
            prep_internal_cancel(r, sl_reactor__ud(l, SL_REACTOR__UD_ACCEPT));
        else if (l->state == LS_BACKOFF)
            prep_internal_cancel(r, sl_reactor__ud(l, SL_REACTOR__UD_BACKOFF));
        l->state = LS_STOPPED;
    }
}

/* ---- the loop ----------------------------------------------------------- */

static void on_probe(sl_reactor_t *r)
{
    uint64_t now = sl_clock_now_ns();
    uint64_t late = now > r->probe_due_ns ? now - r->probe_due_ns : 0;
    atomic_store_explicit(&r->st.lag_recent, late, memory_order_relaxed);
    stat_max64(&r->st.lag_max, late);
    if (!atomic_load_explicit(&r->stop, memory_order_relaxed))
        arm_probe(r);
}

static void dispatch(sl_reactor_t *r, const struct io_uring_cqe *cqe)
{
    uint64_t ud = io_uring_cqe_get_data64(cqe);
    void *p = sl_reactor__ud_ptr(ud);
    switch (sl_reactor__ud_tag(ud)) {
    case SL_REACTOR__UD_OP:
        complete_op(r, p, cqe->res, cqe->flags);
        break;
    case SL_REACTOR__UD_ACCEPT:
        on_accept(r, p, cqe->res, cqe->flags);
        break;
    case SL_REACTOR__UD_BACKOFF: {
        listener_t *l = p;
        if (l->state == LS_BACKOFF)
            arm_accept(r, l);
        break;
    }
    case SL_REACTOR__UD_WAKE:
        if (!atomic_load_explicit(&r->stop, memory_order_relaxed))
            arm_wake(r);
        break;
    case SL_REACTOR__UD_PROBE:
        on_probe(r);
        break;
    case SL_REACTOR__UD_IGNORE:
        break;
    default:
        sl_assert(!"bad user_data tag");
        break;
    }
}

static void reap(sl_reactor_t *r)
{
    unsigned head;
    unsigned n = 0;
    struct io_uring_cqe *cqe;
    io_uring_for_each_cqe(&r->ring, head, cqe)
    {
        dispatch(r, cqe);
        n++;
    }
    io_uring_cq_advance(&r->ring, n);
}

static void handle_ctl(sl_reactor_t *r, sl_op_t *op)
{
    if (op->kind == OP_LISTEN) {
        listener_t *l = sl_container_of(op, listener_t, ctl);
        sl_assert(r->nactive < SL_REACTOR_LISTEN_MAX);
        r->active[r->nactive++] = l;
        arm_accept(r, l);
        return;
    }
    sl_assert(op->kind == OP_UNLISTEN);
    /* release: unlisten_op is detached; a later unlisten may push it again
     * (pairs with the exchange in sl_reactor_unlisten). */
    atomic_store_explicit(&r->unlisten_queued, 0, memory_order_release);
    unlisten_all(r);
}

static uint32_t drain_requests(sl_reactor_t *r)
{
    uint32_t n = 0;
    while (n < SL_REACTOR_DRAIN_MAX) {
        sl_msg_t *m = reqq_pop(r);
        if (!m)
            break;
        n++;
        sl_op_t *op = sl_op_from_msg(m);
        if (op->kind >= SL_OP_KIND_COUNT) {
            handle_ctl(r, op);
            continue;
        }
        stat_add64(&r->st.submitted, 1);
        stat_add32(&r->st.inflight, 1);
        r->quick_inflight += op_is_quick(op);
        start_op(r, op);
    }
    return n;
}

/* Moves returned buffer ids into the kernel's buffer ring. */
static void drain_returns(sl_reactor_t *r)
{
    uint32_t cap = r->cfg.recv_buffers;
    int mask = io_uring_buf_ring_mask(cap);
    uint32_t deq = atomic_load_explicit(&r->ret_deq, memory_order_relaxed);
    uint32_t n = 0;
    while (n < cap) {
        retq_cell_t *c = &r->ret[(deq + n) & (cap - 1)];
        /* acquire: pairs with the returner's release store of seq. */
        if (atomic_load_explicit(&c->seq, memory_order_acquire) != deq + n + 1)
            break;
        uint16_t id = c->id;
        /* release: frees the cell before the id can be lent out again. */
        atomic_store_explicit(&c->seq, deq + n + cap, memory_order_release);
        io_uring_buf_ring_add(r->br, buf_addr(r, id), r->cfg.recv_buffer_bytes, id, mask, (int)n);
        n++;
    }
    if (n == 0)
        return;
    io_uring_buf_ring_advance(r->br, (int)n);
    stat_add32(&r->st.bufs_free, (int32_t)n);
    /* Stats count a returned id as free before and after this drain: bump
     * the ring count first, then the dequeue position (both relaxed). */
    atomic_store_explicit(&r->ret_deq, deq + n, memory_order_relaxed);
}

/* Re-arms parked recvs, one per buffer now in the ring. */
static void resume_parked(sl_reactor_t *r)
{
    uint32_t budget = atomic_load_explicit(&r->st.bufs_free, memory_order_relaxed);
    while (r->parked_head && budget > 0) {
        sl_op_t *op = r->parked_head;
        unpark(r, NULL, op);
        start_op(r, op);
        budget--;
    }
}

/* Announces sleep, then re-checks every source of work (Dekker with the
 * producers); returns false if something arrived meanwhile. */
static bool may_sleep(sl_reactor_t *r)
{
    atomic_store_explicit(&r->sleeping, 1, memory_order_seq_cst);
    bool work = reqq_nonempty(r) || atomic_load_explicit(&r->stop, memory_order_seq_cst) ||
                (r->sched && sl_sched_has_ready(r->sched)); /* Dekker with enqueue's wake */
    if (!work && r->parked_head)
        work = atomic_load_explicit(&r->ret_enq, memory_order_seq_cst) !=
               atomic_load_explicit(&r->ret_deq, memory_order_relaxed);
    if (work)
        atomic_store_explicit(&r->sleeping, 0, memory_order_relaxed);
    return !work;
}

/* The idle sleep with batching (cfg.batch_wait_ns): submits what is
 * queued; then, with only recvs and timeouts outstanding (nothing of ours
 * due), waits for SL_REACTOR_BATCH_WAIT_NR completions, or for the first
 * one after batch_wait_ns has passed. The price: a peer that waits on our
 * answers (a window-limited upload, a request-response chain) is held up
 * to batch_wait_ns per round trip, so this is off by default. At a steady low rate (a
 * publish every millisecond) the reactor wakes once per batch_wait_ns for
 * all that arrived, instead of once per arrival; after a longer quiet spell
 * the first arrival wakes it at once. The far general timeout is only
 * there so the kernel turns an empty min-wait into a plain sleep rather
 * than a wake-up. */
static int wait_batched(sl_reactor_t *r)
{
    if (io_uring_sq_ready(&r->ring) > 0) {
        int rc = io_uring_submit(&r->ring);
        stat_add64(&r->st.enter_calls, 1);
        if (rc < 0 || io_uring_cq_ready(&r->ring) > 0)
            return rc; /* some completed inline: reap them first */
    }
    if (r->quick_inflight > 0) /* a reply's next step is due: no batching */
        return io_uring_submit_and_wait(&r->ring, 1);
    struct __kernel_timespec far = {.tv_sec = 3600, .tv_nsec = 0};
    struct io_uring_getevents_arg arg = {
        .sigmask = 0,
        .sigmask_sz = _NSIG / 8,
        .pad = (uint32_t)(r->cfg.batch_wait_ns / 1000), /* min_wait_usec */
        .ts = (uint64_t)(uintptr_t)&far,
    };
    long rc = syscall(__NR_io_uring_enter, r->ring.ring_fd, 0, SL_REACTOR_BATCH_WAIT_NR,
                      IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG, &arg, sizeof arg);
    return rc < 0 ? -errno : (int)rc;
}

static void reactor_tick(sl_reactor_t *r)
{
    stat_add64(&r->st.iterations, 1);
    if (r->sched) /* actors first: their ops are submitted in this tick */
        sl_sched_run_some(r->sched, SL_REACTOR_INLINE_RUNS);
    uint32_t drained = drain_requests(r);
    drain_returns(r);
    if (r->parked_head)
        resume_parked(r);
    bool wait = drained < SL_REACTOR_DRAIN_MAX && io_uring_cq_ready(&r->ring) == 0 &&
                (!r->sched || !sl_sched_has_ready(r->sched)) && may_sleep(r);
    /* A completion that arrived during this round waited for all of it:
     * the round's length is loop lag as much as a late probe is. */
    if (r->round_start_ns)
        stat_max64(&r->st.lag_max, sl_clock_now_ns() - r->round_start_ns);
    int rc = !wait                ? io_uring_submit_and_get_events(&r->ring)
             : r->batch_wait_on ? wait_batched(r)
                                : io_uring_submit_and_wait(&r->ring, 1);
    stat_add64(&r->st.enter_calls, 1);
    if (wait) /* relaxed: a stale 1 costs at most one spurious eventfd write */
        atomic_store_explicit(&r->sleeping, 0, memory_order_relaxed);
    if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY && rc != -ETIME)
        sl_error("reactor enter failed", "reactor=%u err=\"%s\"", r->index, sl_strerror(rc));
    r->round_start_ns = sl_clock_now_ns();
    reap(r);
}

/* liburing 2.3 declares io_uring_enable_rings but does not export it. */
static int enable_ring(sl_reactor_t *r)
{
    long rc =
        syscall(__NR_io_uring_register, r->ring.ring_fd, IORING_REGISTER_ENABLE_RINGS, NULL, 0);
    return rc < 0 ? -errno : 0;
}

/* The reactor whose thread this is (NULL on other threads). */
static _Thread_local sl_reactor_t *tl_self;

sl_reactor_t *sl_reactor_self(void) { return tl_self; }

struct sl_sched *sl_reactor_sched(const sl_reactor_t *r) { return r->sched; }

static void *reactor_main(void *arg)
{
    sl_reactor_t *r = arg;
    tl_self = r;
    char name[16];
    snprintf(name, sizeof name, "sl-reactor-%u", r->index % 1000);
    pthread_setname_np(pthread_self(), name);
    /* Enabling on this thread makes it the ring's single issuer. */
    int rc = (r->ring_flags & IORING_SETUP_R_DISABLED) ? enable_ring(r) : 0;
    r->start_rc = rc;
    sem_post(&r->started_sem);
    if (rc < 0)
        return NULL;
    io_uring_register_ring_fd(&r->ring); /* optional: saves an fd lookup per enter */
    arm_wake(r);
    if (r->cfg.lag_probe_ns > 0)
        arm_probe(r);
    while (!atomic_load_explicit(&r->stop, memory_order_acquire))
        reactor_tick(r);
    /* The registration belongs to this thread; drop it here, not in
     * io_uring_queue_exit on another thread. */
    io_uring_unregister_ring_fd(&r->ring);
    return NULL;
}

static void inline_wake(void *ctx) { wake_if_sleeping(ctx); }

void sl_reactor_host_sched(sl_reactor_t *r, struct sl_sched *s)
{
    r->sched = s;
    sl_sched_set_inline(s, inline_wake, r);
}

/* ---- setup and teardown ------------------------------------------------- */

static int validate(const sl_reactor_config_t *c)
{
    bool pow2_sq = c->sq_entries > 0 && (c->sq_entries & (c->sq_entries - 1)) == 0;
    bool pow2_bufs = c->recv_buffers > 0 && (c->recv_buffers & (c->recv_buffers - 1)) == 0;
    if (!pow2_sq || c->sq_entries > SL_REACTOR_SQ_ENTRIES)
        return SL_EINVAL;
    if (!pow2_bufs || c->recv_buffers > SL_RECV_BUFFERS_MAX)
        return SL_EINVAL;
    if (c->recv_buffer_bytes == 0 || c->recv_buffer_bytes > SL_RECV_BUFFER_BYTES_MAX)
        return SL_EINVAL;
    if (c->batch_wait_ns > SL_REACTOR_BATCH_WAIT_NS_MAX)
        return SL_EINVAL;
    return 0;
}

static int ring_init(sl_reactor_t *r)
{
    static const uint32_t tries[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SUBMIT_ALL |
            IORING_SETUP_R_DISABLED,
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG |
            IORING_SETUP_SUBMIT_ALL | IORING_SETUP_R_DISABLED,
        IORING_SETUP_COOP_TASKRUN | IORING_SETUP_R_DISABLED,
        0,
    };
    int rc = -EINVAL;
    for (size_t i = 0; i < SL_ARRAY_LEN(tries) && rc == -EINVAL; i++) {
        struct io_uring_params p;
        memset(&p, 0, sizeof p);
        p.flags = tries[i];
        rc = io_uring_queue_init_params(r->cfg.sq_entries, &r->ring, &p);
        if (rc == 0) {
            r->ring_flags = tries[i];
            r->min_wait_ok = (p.features & IORING_FEAT_MIN_TIMEOUT) != 0;
        }
    }
    return rc;
}

/* Maps buffer memory and the provided-buffer ring, registers it, and lends
 * every buffer to the kernel. */
static int bufs_init(sl_reactor_t *r)
{
    uint32_t n = r->cfg.recv_buffers;
    long page = sysconf(_SC_PAGESIZE);
    r->br_bytes =
        ((size_t)n * sizeof(struct io_uring_buf) + (size_t)page - 1) & ~((size_t)page - 1);
    r->bufs_bytes = (size_t)n * r->cfg.recv_buffer_bytes;
    void *br = mmap(NULL, r->br_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (br == MAP_FAILED)
        return -errno;
    r->br = br;
    void *bufs = mmap(NULL, r->bufs_bytes, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (bufs == MAP_FAILED)
        return -errno;
    r->bufs = bufs;
    struct io_uring_buf_reg reg;
    memset(&reg, 0, sizeof reg);
    reg.ring_addr = (uint64_t)(uintptr_t)r->br;
    reg.ring_entries = n;
    reg.bgid = BUF_GROUP;
    int rc = io_uring_register_buf_ring(&r->ring, &reg, 0);
    if (rc < 0)
        return rc;
    io_uring_buf_ring_init(r->br);
    int mask = io_uring_buf_ring_mask(n);
    for (uint32_t i = 0; i < n; i++)
        io_uring_buf_ring_add(r->br, buf_addr(r, (uint16_t)i), r->cfg.recv_buffer_bytes,
                              (unsigned short)i, mask, (int)i);
    io_uring_buf_ring_advance(r->br, (int)n);
    atomic_store_explicit(&r->st.bufs_free, n, memory_order_relaxed);
    return 0;
}

static void reactor_free(sl_reactor_t *r)
{
    if (r->ring_ok)
        io_uring_queue_exit(&r->ring); /* also drops the buffer ring */
    if (r->bufs)
        munmap(r->bufs, r->bufs_bytes);
    if (r->br)
        munmap(r->br, r->br_bytes);
    if (r->efd >= 0)
        close(r->efd);
    sem_destroy(&r->started_sem);
    free(r->ret);
    free(r);
}

static void init_queues(sl_reactor_t *r)
{
    atomic_store_explicit(&r->req_stub._next, NULL, memory_order_relaxed);
    atomic_store_explicit(&r->req_head, &r->req_stub, memory_order_relaxed);
    r->req_tail = &r->req_stub;
    for (uint32_t i = 0; i < r->cfg.recv_buffers; i++)
        atomic_store_explicit(&r->ret[i].seq, i, memory_order_relaxed);
    r->unlisten_op.kind = OP_UNLISTEN;
    for (uint32_t i = 0; i < SL_REACTOR_LISTEN_MAX; i++)
        r->listeners[i].ctl.kind = OP_LISTEN;
}

int sl_reactor_create(const sl_reactor_config_t *cfg, uint32_t index, sl_reactor_t **out)
{
    int rc = validate(cfg);
    if (rc != 0)
        return rc;
    sl_reactor_t *r = calloc(1, sizeof *r);
    if (!r)
        return -ENOMEM;
    r->cfg = *cfg;
    r->index = index;
    r->efd = -1;
    sem_init(&r->started_sem, 0, 0);
    r->ret = calloc(cfg->recv_buffers, sizeof *r->ret);
    if (!r->ret) {
        reactor_free(r);
        return -ENOMEM;
    }
    init_queues(r);
    /* Blocking eventfd: the armed read then waits in the kernel (io_uring
     * polls it) and can never complete with -EAGAIN. */
    r->efd = eventfd(0, EFD_CLOEXEC);
    rc = r->efd < 0 ? -errno : ring_init(r);
    r->ring_ok = r->efd >= 0 && rc == 0;
    if (rc == 0)
        rc = bufs_init(r);
    if (rc < 0) {
        reactor_free(r);
        return rc;
    }
    r->batch_wait_on = cfg->batch_wait_ns > 0 && r->min_wait_ok;
    *out = r;
    return 0;
}

int sl_reactor_start(sl_reactor_t *r)
{
    sl_assert(!r->started);
    int rc = pthread_create(&r->thread, NULL, reactor_main, r);
    if (rc != 0)
        return -rc;
    sem_wait(&r->started_sem);
    if (r->start_rc < 0) {
        pthread_join(r->thread, NULL);
        return r->start_rc;
    }
    r->started = true;
    return 0;
}

void sl_reactor_stop(sl_reactor_t *r)
{
    if (!r->started)
        return;
    atomic_store_explicit(&r->stop, true, memory_order_seq_cst);
    uint64_t one = 1;
    /* Unconditional: the reactor may be blocked in io_uring_enter. */
    ssize_t n = write(r->efd, &one, sizeof one);
    sl_assert(n == (ssize_t)sizeof one);
    pthread_join(r->thread, NULL);
    r->started = false;
}

void sl_reactor_destroy(sl_reactor_t *r)
{
    if (!r)
        return;
    sl_reactor_stop(r);
    reactor_free(r);
}

/* ---- cross-thread entry points ------------------------------------------ */

void sl_reactor_submit(sl_reactor_t *r, sl_op_t *op)
{
    sl_assert(op->owner != NULL);
    sl_assert(op->kind < SL_OP_KIND_COUNT);
    sl_assert(op->_state == OP_IDLE); /* not already submitted */
    sl_assert(op->kind != SL_OP_CANCEL || op->target != NULL);
    op->_state = OP_QUEUED;
    op->_reactor = r;
    reqq_push(r, &op->msg);
    wake_if_sleeping(r);
}

int sl_reactor_listen(sl_reactor_t *r, int listen_fd, sl_accept_cb cb, void *ctx)
{
    sl_assert(cb != NULL);
    sl_assert(listen_fd >= 0);
    uint32_t i = atomic_load_explicit(&r->nlisteners, memory_order_relaxed);
    do {
        if (i >= SL_REACTOR_LISTEN_MAX)
            return SL_EFULL;
    } while (!atomic_compare_exchange_weak_explicit(&r->nlisteners, &i, i + 1, memory_order_acq_rel,
                                                    memory_order_relaxed));
    listener_t *l = &r->listeners[i];
    l->fd = listen_fd;
    l->cb = cb;
    l->ctx = ctx;
    l->state = LS_IDLE;
    /* The push publishes *l to the reactor (release in reqq_push). */
    reqq_push(r, &l->ctl.msg);
    wake_if_sleeping(r);
    return 0;
}

void sl_reactor_unlisten(sl_reactor_t *r)
{
    /* acq_rel: pairs with the reactor's release store once it has popped
     * unlisten_op, so one record is never in the queue twice. */
    if (atomic_exchange_explicit(&r->unlisten_queued, 1, memory_order_acq_rel))
        return; /* one already queued will cover this call */
    reqq_push(r, &r->unlisten_op.msg);
    wake_if_sleeping(r);
}

void sl_reactor_buf_return(sl_reactor_t *r, uint16_t buf_id)
{
    sl_assert(buf_id < r->cfg.recv_buffers);
    /* seq_cst: Dekker pair with may_sleep's load of ret_enq. */
    uint32_t pos = atomic_fetch_add_explicit(&r->ret_enq, 1, memory_order_seq_cst);
    retq_cell_t *c = &r->ret[pos & (r->cfg.recv_buffers - 1)];
    /* One cell per buffer and one return per loan: the cell is always free
     * (the reactor frees it before re-lending the id it held). A mismatch
     * means a buffer was returned twice. acquire: pairs with drain_returns. */
    sl_assert(atomic_load_explicit(&c->seq, memory_order_acquire) == pos);
    c->id = buf_id;
    atomic_store_explicit(&c->seq, pos + 1, memory_order_release);
    /* A sleeping reactor needs the buffer only if a recv is parked; the
     * seq_cst load of `sleeping` orders this relaxed load after the
     * reactor's park (it stores parked_count before `sleeping`). */
    if (atomic_load_explicit(&r->sleeping, memory_order_seq_cst) &&
        atomic_load_explicit(&r->parked_count, memory_order_relaxed) > 0)
        wake_if_sleeping(r);
}

void sl_reactor_stats(sl_reactor_t *r, sl_reactor_stats_t *out)
{
    rstats_t *s = &r->st;
    out->loop_lag_ns_max = atomic_exchange_explicit(&s->lag_max, 0, memory_order_relaxed);
    out->loop_lag_ns_recent = atomic_load_explicit(&s->lag_recent, memory_order_relaxed);
    out->iterations = atomic_load_explicit(&s->iterations, memory_order_relaxed);
    out->submitted = atomic_load_explicit(&s->submitted, memory_order_relaxed);
    out->completed = atomic_load_explicit(&s->completed, memory_order_relaxed);
    out->enter_calls = atomic_load_explicit(&s->enter_calls, memory_order_relaxed);
    out->wakeups = atomic_load_explicit(&r->wakeups, memory_order_relaxed);
    out->accepted = atomic_load_explicit(&s->accepted, memory_order_relaxed);
    out->accept_errors = atomic_load_explicit(&s->accept_errors, memory_order_relaxed);
    out->recv_starved = atomic_load_explicit(&s->recv_starved, memory_order_relaxed);
    /* Free = not lent to an owner: in the kernel's ring, or returned and
     * waiting for the reactor's next drain (an idle reactor is not woken
     * for a return unless a recv is parked). Racy snapshot, clamped. */
    uint32_t deq = atomic_load_explicit(&r->ret_deq, memory_order_relaxed);
    uint32_t in_ring = atomic_load_explicit(&s->bufs_free, memory_order_relaxed);
    uint32_t waiting = atomic_load_explicit(&r->ret_enq, memory_order_relaxed) - deq;
    uint32_t free_n = in_ring + waiting;
    out->recv_buffers_free = free_n > r->cfg.recv_buffers ? r->cfg.recv_buffers : free_n;
    out->ops_inflight = atomic_load_explicit(&s->inflight, memory_order_relaxed);
}

uint32_t sl_reactor_index(const sl_reactor_t *r)
{
    return r->index;
}

uint64_t sl_reactor_batch_wait_ns(const sl_reactor_t *r)
{
    return r->batch_wait_on ? r->cfg.batch_wait_ns : 0;
}
