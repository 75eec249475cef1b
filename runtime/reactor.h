/*
 * Reactor threads: one io_uring each, single issuer, doing all socket and
 * file I/O of the process.
 *
 * Actors never call read/write/send/open themselves. They fill an sl_op_t
 * record they own and hand it to sl_reactor_submit(); the reactor thread
 * drains its request queue, turns many ops into SQEs, submits them with one
 * io_uring_enter, reaps every CQE, and posts each completion back to the
 * owner actor as the op's embedded message (class COMPLETION, kind
 * SL_MSG_KIND_IO). Because the completion message lives inside the op and an
 * actor owns a fixed number of ops, a completion never needs a mailbox slot
 * that was not reserved, and the reactor never blocks or drops.
 *
 * Wake-ups cost nothing while the reactor is busy: a submitter writes the
 * reactor's eventfd only when the reactor announced it is about to sleep.
 *
 * Receive buffers: SL_OP_RECV with buf == NULL selects a buffer from the
 * reactor's provided-buffer ring (bounded: --recv-buffers x
 * SL_RECV_BUFFER_BYTES per reactor). The completion carries the buffer; the
 * owner gives it back with sl_reactor_buf_return(). An idle connection holds
 * no buffer. When the ring is empty the reactor parks the recv and re-arms it
 * when a buffer returns (policy at the bound: wait, never drop).
 *
 * Op record lifetime: from submit until its completion message is delivered
 * the op (and every buffer/iovec/path it points to) belongs to the reactor
 * and the kernel; the owner must not touch or free it. Teardown is
 * shutdown -> cancel (SL_OP_CANCEL_FD) -> close -> free once every op's
 * completion has arrived.
 */
#ifndef SL_RUNTIME_REACTOR_H
#define SL_RUNTIME_REACTOR_H

#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "runtime/actor.h"
#include "runtime/base.h"

typedef struct sl_reactor sl_reactor_t;

typedef enum sl_op_kind {
    SL_OP_NOP = 0,
    SL_OP_RECV,      /* fd, buf/len or buf==NULL (provided buffer) */
    SL_OP_SEND,      /* fd, buf/len; flags MSG_* (MSG_NOSIGNAL added) */
    SL_OP_SENDMSG,   /* fd, iov/iovcnt (one syscall for many chunks) */
    SL_OP_TIMEOUT,   /* timeout_ns relative, or with flags SL_TIMEOUT_ABS an absolute
                        CLOCK_MONOTONIC time (sl_clock_now_ns); res -ETIME on expiry */
    SL_OP_CANCEL,    /* cancel the op `target`; res 0/-ENOENT/-EALREADY */
    SL_OP_CANCEL_FD, /* cancel every op on fd; res count or -ENOENT */
    SL_OP_SHUTDOWN,  /* shutdown(fd, how=flags) */
    SL_OP_CLOSE,     /* close(fd) */
    SL_OP_OPENAT,    /* dirfd, path, flags, mode; res = new fd */
    SL_OP_READ,      /* fd, buf/len at offset */
    SL_OP_WRITE,     /* fd, buf/len at offset */
    SL_OP_WRITEV,    /* fd, iov/iovcnt at offset */
    SL_OP_FSYNC,     /* fd; flags IORING_FSYNC_DATASYNC for fdatasync */
    SL_OP_MKDIRAT,   /* dirfd in fd, path, mode; res 0 */
    SL_OP_UNLINKAT,  /* dirfd in fd, path; flags 0 or AT_REMOVEDIR; res 0 */
    SL_OP_RENAMEAT,  /* fd/path -> fd2/path2; flags 0 or RENAME_NOREPLACE */
    SL_OP_POLL,      /* one-shot poll of fd for the events in flags (POLLIN, ...);
                        res = the revents. Child exits are watched this way:
                        a pidfd polls readable once its process has exited */
    SL_OP_KIND_COUNT
} sl_op_kind_t;

typedef struct sl_op sl_op_t;

/* SL_OP_TIMEOUT flag: timeout_ns is an absolute sl_clock_now_ns() time.
 * Timers armed for the same instant by many actors then expire together
 * (one hrtimer expiry), whatever moment each was submitted at. */
#define SL_TIMEOUT_ABS 1u

/* An I/O request and, after it completes, its result. Owned by the
 * submitting actor; embed it in the actor's state. `msg` must stay first. */
struct sl_op {
    sl_msg_t msg;             /* completion message; runtime sets kind/class */
    sl_actor_t *owner;        /* receives the completion (borrowed ref) */
    sl_reactor_t *_reactor;
    uint8_t kind;             /* sl_op_kind_t */
    uint8_t _state;
    uint16_t buf_id;          /* provided buffer id (RECV with buf==NULL) */
    int fd;                   /* or dirfd for OPENAT */
    uint32_t flags;           /* MSG_*, open flags, shutdown how, fsync flags,
                                 RWF_* for WRITE/WRITEV */
    uint32_t len;             /* buffer length */
    uint32_t iovcnt;
    void *buf;                /* RECV/SEND/READ/WRITE buffer; for provided-
                                 buffer RECV the reactor stores the chosen one */
    struct iovec *iov;        /* SENDMSG/WRITEV */
    const char *path;         /* OPENAT (borrowed until completion) */
    uint32_t mode;            /* OPENAT */
    int fd2;                  /* RENAMEAT: dirfd of the new path */
    const char *path2;        /* RENAMEAT: new path (borrowed until completion);
                                 path (and fd) name the old one. MKDIRAT and
                                 UNLINKAT use fd and path like OPENAT. */
    uint64_t offset;          /* READ/WRITE/WRITEV */
    uint64_t timeout_ns;      /* TIMEOUT */
    sl_op_t *target;          /* CANCEL */
    struct msghdr _mh;        /* SENDMSG scratch, owned by the reactor */
    uint64_t _ts;             /* internal: kernel timespec storage */
    uint64_t _ts2;
    int32_t res;              /* result: >= 0 success, -errno failure */
    uint32_t cqe_flags;
    uint64_t user;            /* free for the owner */
};

typedef struct sl_reactor_config {
    uint32_t sq_entries;         /* SQ size (power of two) */
    uint32_t recv_buffers;       /* provided buffers (power of two, <= 32768) */
    uint32_t recv_buffer_bytes;  /* size of each provided buffer */
    uint64_t lag_probe_ns;       /* period of the loop-lag probe timer
                                    (SL_REACTOR_LAG_PROBE_NS); the longest
                                    busy round counts as lag too, so a
                                    stall shorter than the period is seen */
    uint64_t batch_wait_ns;      /* 0: an idle reactor wakes at its first completion.
                                    > 0: completions that arrive within this
                                    long after it fell asleep are gathered
                                    until then (or SL_REACTOR_BATCH_WAIT_NR
                                    of them) and handled in one wake-up; one
                                    arriving later wakes it at once. Needs
                                    the kernel's min-wait (6.12+), else 0.
                                    <= SL_REACTOR_BATCH_WAIT_NS_MAX. */
} sl_reactor_config_t;

typedef struct sl_reactor_stats {
    uint64_t loop_lag_ns_max;     /* worst probe lateness or busy round since last read */
    uint64_t loop_lag_ns_recent;  /* lateness of the latest probe */
    uint64_t iterations;
    uint64_t submitted;           /* ops submitted */
    uint64_t completed;           /* completions posted */
    uint64_t enter_calls;         /* io_uring_enter system calls */
    uint64_t wakeups;             /* eventfd writes by submitters */
    uint64_t accepted;
    uint64_t accept_errors;       /* failed accepts (EMFILE, ...); each backs off */
    uint64_t recv_starved;        /* recvs parked for lack of buffers */
    uint32_t recv_buffers_free;
    uint32_t ops_inflight;
} sl_reactor_stats_t;

/* Called on the reactor thread for each accepted connection. Takes fd.
 * Must be quick (create an actor, post it a start message). */
typedef void (*sl_accept_cb)(sl_reactor_t *r, int fd, void *ctx);

/* Creates a reactor (ring, buffer ring, eventfd); thread not started.
 * Returns 0, -errno (io_uring_queue_init etc.), or SL_EINVAL. Main thread. */
int sl_reactor_create(const sl_reactor_config_t *cfg, uint32_t index, sl_reactor_t **out);
/* Starts the reactor thread. */
int sl_reactor_start(sl_reactor_t *r);
struct sl_sched;
/* Makes this reactor's thread the host of an inline scheduler (one with
 * no worker threads): every tick it runs up to SL_REACTOR_INLINE_RUNS
 * runnable actors, and it sleeps only when none is runnable. Before start.
 * Thread-per-core: each reactor hosts its own scheduler, so a hand-off
 * between actors of one reactor is a queue push run in the same loop turn,
 * and a send to another reactor's actor writes that reactor's eventfd only
 * when it is about to sleep (at most once per sleep). */
void sl_reactor_host_sched(sl_reactor_t *r, struct sl_sched *s);
/* The scheduler r hosts, or NULL (actors run on a worker pool). Any thread. */
struct sl_sched *sl_reactor_sched(const sl_reactor_t *r);
/* The reactor whose thread calls this, or NULL on any other thread (main,
 * workers). An actor of an inline scheduler learns its reactor this way. */
sl_reactor_t *sl_reactor_self(void);
/* Adds a multishot accept on listen_fd (borrowed; the caller closes it after
 * sl_reactor_stop). cb runs on the reactor thread. Before or after start. */
int sl_reactor_listen(sl_reactor_t *r, int listen_fd, sl_accept_cb cb, void *ctx);
/* Cancels the multishot accepts (stop accepting). Any thread; async. */
void sl_reactor_unlisten(sl_reactor_t *r);
/* Stops the thread and joins it. In-flight ops are abandoned to the kernel
 * (their owners get no completion), so call at process teardown only. */
void sl_reactor_stop(sl_reactor_t *r);
void sl_reactor_destroy(sl_reactor_t *r);

/* Queues op for submission. Takes op until its completion message reaches
 * op->owner. op->kind and its parameters must be set; owner must not be
 * NULL. Any thread. Never fails: the queue is intrusive and unbounded in
 * principle but bounded in fact by the op records that exist. */
void sl_reactor_submit(sl_reactor_t *r, sl_op_t *op);
/* Gives a provided receive buffer back. Any thread. */
void sl_reactor_buf_return(sl_reactor_t *r, uint16_t buf_id);
/* Reads and resets windowed stats. Any thread (values are relaxed). */
void sl_reactor_stats(sl_reactor_t *r, sl_reactor_stats_t *out);
uint32_t sl_reactor_index(const sl_reactor_t *r);
/* The batch_wait_ns in effect: the configured one, or 0 when the kernel
 * cannot batch sleeps. */
uint64_t sl_reactor_batch_wait_ns(const sl_reactor_t *r);

/* From a delivered completion message back to its op. */
static inline sl_op_t *sl_op_from_msg(sl_msg_t *m) { return (sl_op_t *)(void *)m; }

#endif
