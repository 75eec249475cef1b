/*
 * Tests for runtime/reactor.c against the real actor runtime: every op
 * completion travels reactor -> mailbox -> worker -> test actor, which logs
 * it for the test thread to wait on. Each test builds its own scheduler and
 * reactor and tears them down, so a failure points at one behaviour.
 */
#include "runtime/reactor.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <netinet/in.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "runtime/clock.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #c);                  \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define CHECK_EQ(a, b)                                                                             \
    do {                                                                                           \
        long long a_ = (long long)(a), b_ = (long long)(b);                                        \
        if (a_ != b_) {                                                                            \
            fprintf(stderr, "%s:%d: CHECK_EQ failed: %s == %s (%lld vs %lld)\n", __FILE__,         \
                    __LINE__, #a, #b, a_, b_);                                                     \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define WAIT_MS 3000

/* ---- a test actor that logs completions --------------------------------- */

typedef struct probe {
    sl_actor_t a;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    sl_op_t *done[256];
    uint32_t ndone;
    _Atomic bool destroyed;
} probe_t;

static void probe_behavior(sl_actor_t *self, sl_msg_t *msg)
{
    probe_t *p = (probe_t *)self;
    CHECK_EQ(msg->kind, SL_MSG_KIND_IO);
    CHECK_EQ(msg->mclass, SL_MSG_COMPLETION);
    CHECK(msg->release == NULL);
    pthread_mutex_lock(&p->mu);
    CHECK(p->ndone < SL_ARRAY_LEN(p->done));
    p->done[p->ndone++] = sl_op_from_msg(msg);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

static void probe_destroy(sl_actor_t *self)
{
    atomic_store(&((probe_t *)self)->destroyed, true);
}

static struct timespec deadline_in(uint32_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t ns = (uint64_t)ts.tv_nsec + (uint64_t)ms * SL_NS_PER_MS;
    ts.tv_sec += (time_t)(ns / SL_NS_PER_S);
    ts.tv_nsec = (long)(ns % SL_NS_PER_S);
    return ts;
}

static bool probe_has(probe_t *p, const sl_op_t *op)
{
    for (uint32_t i = 0; i < p->ndone; i++)
        if (p->done[i] == op)
            return true;
    return false;
}

/* Waits until op's completion reached the actor. */
static bool probe_wait_op(probe_t *p, const sl_op_t *op, uint32_t timeout_ms)
{
    struct timespec dl = deadline_in(timeout_ms);
    pthread_mutex_lock(&p->mu);
    int rc = 0;
    while (!probe_has(p, op) && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&p->cv, &p->mu, &dl);
    bool ok = probe_has(p, op);
    pthread_mutex_unlock(&p->mu);
    return ok;
}

/* Waits until at least n completions arrived; returns how many did. */
static uint32_t probe_wait_count(probe_t *p, uint32_t n, uint32_t timeout_ms)
{
    struct timespec dl = deadline_in(timeout_ms);
    pthread_mutex_lock(&p->mu);
    int rc = 0;
    while (p->ndone < n && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&p->cv, &p->mu, &dl);
    uint32_t got = p->ndone;
    pthread_mutex_unlock(&p->mu);
    return got;
}

static probe_t *probe_new(sl_sched_t *s)
{
    probe_t *p = calloc(1, sizeof *p);
    CHECK(p != NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&p->mu, NULL);
    sl_actor_init(&p->a, s, "probe", 256, probe_behavior, probe_destroy);
    return p;
}

/* ---- per-test environment ----------------------------------------------- */

typedef struct env {
    sl_sched_t *s;
    sl_reactor_t *r;
    probe_t *p;
    sl_reactor_config_t cfg;
} env_t;

static sl_reactor_config_t cfg_default(void)
{
    return (sl_reactor_config_t){
        .sq_entries = 256,
        .recv_buffers = 16,
        .recv_buffer_bytes = 4096,
        .lag_probe_ns = 20 * SL_NS_PER_MS,
    };
}

static void env_up(env_t *e, uint32_t workers, sl_reactor_config_t cfg)
{
    memset(e, 0, sizeof *e);
    e->cfg = cfg;
    sl_sched_config_t sc = {.workers = workers, .batch = 16, .runq_capacity = 1024};
    CHECK_EQ(sl_sched_create(&sc, &e->s), 0);
    CHECK_EQ(sl_sched_start(e->s), 0);
    CHECK_EQ(sl_reactor_create(&cfg, 3, &e->r), 0);
    CHECK_EQ(sl_reactor_index(e->r), 3);
    CHECK_EQ(sl_reactor_start(e->r), 0);
    e->p = probe_new(e->s);
}

/* Tests with their own actors destroy the reactor (e->r = NULL) and release
 * those actors first. */
static void env_down(env_t *e)
{
    sl_reactor_destroy(e->r); /* stops and joins the reactor first */
    sl_actor_release(&e->p->a);
    sl_sched_stop(e->s);
    CHECK(atomic_load(&e->p->destroyed));
    sl_sched_destroy(e->s);
    pthread_mutex_destroy(&e->p->mu);
    pthread_cond_destroy(&e->p->cv);
    free(e->p);
}

static void op_init(sl_op_t *op, probe_t *p, sl_op_kind_t kind, int fd)
{
    memset(op, 0, sizeof *op);
    op->owner = p ? &p->a : NULL;
    op->kind = (uint8_t)kind;
    op->fd = fd;
}

static sl_reactor_stats_t stats(env_t *e)
{
    sl_reactor_stats_t st;
    sl_reactor_stats(e->r, &st);
    return st;
}

/* Polls stats until recv_buffers_free == want (returns are drained
 * asynchronously, at the reactor's next iteration). */
static bool wait_bufs_free(env_t *e, uint32_t want)
{
    for (int i = 0; i < 300; i++) {
        if (stats(e).recv_buffers_free == want)
            return true;
        usleep(10 * 1000);
    }
    return false;
}

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    CHECK(d != NULL);
    int n = 0;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

/* ---- tests -------------------------------------------------------------- */

static void test_reactor_nop_completes_to_owner(void)
{
    env_t e;
    env_up(&e, 1, cfg_default());
    sl_op_t op;
    op_init(&op, e.p, SL_OP_NOP, -1);
    op.user = 42;
    sl_reactor_submit(e.r, &op);
    CHECK(probe_wait_op(e.p, &op, WAIT_MS));
    CHECK_EQ(op.res, 0);
    CHECK_EQ(op.user, 42);
    CHECK(op._reactor == e.r);
    sl_reactor_stats_t st = stats(&e);
    CHECK_EQ(st.submitted, 1);
    CHECK_EQ(st.completed, 1);
    CHECK_EQ(st.ops_inflight, 0);
    CHECK_EQ(st.recv_buffers_free, e.cfg.recv_buffers);
    env_down(&e);
}

typedef struct accept_log {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int fds[4];
    int n;
    sl_reactor_t *r;
    bool wrong_reactor;
} accept_log_t;

static void on_accept_cb(sl_reactor_t *r, int fd, void *ctx)
{
    accept_log_t *log = ctx;
    pthread_mutex_lock(&log->mu);
    if (r != log->r)
        log->wrong_reactor = true;
    if (log->n < (int)SL_ARRAY_LEN(log->fds))
        log->fds[log->n++] = fd;
    else
        close(fd);
    pthread_cond_broadcast(&log->cv);
    pthread_mutex_unlock(&log->mu);
}

static int accept_wait(accept_log_t *log, int n, uint32_t timeout_ms)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    uint64_t ns = (uint64_t)dl.tv_nsec + (uint64_t)timeout_ms * SL_NS_PER_MS;
    dl.tv_sec += (time_t)(ns / SL_NS_PER_S);
    dl.tv_nsec = (long)(ns % SL_NS_PER_S);
    pthread_mutex_lock(&log->mu);
    int rc = 0;
    while (log->n < n && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&log->cv, &log->mu, &dl);
    int got = log->n;
    pthread_mutex_unlock(&log->mu);
    return got;
}

static int listen_loopback(struct sockaddr_in *addr)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    memset(addr, 0, sizeof *addr);
    addr->sin_family = AF_INET;
    addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK_EQ(bind(fd, (struct sockaddr *)addr, sizeof *addr), 0);
    CHECK_EQ(listen(fd, 16), 0);
    socklen_t len = sizeof *addr;
    CHECK_EQ(getsockname(fd, (struct sockaddr *)addr, &len), 0);
    return fd;
}

typedef struct client {
    struct sockaddr_in addr;
    int fd;
} client_t;

static void *client_main(void *arg)
{
    client_t *c = arg;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(c->fd >= 0);
    CHECK_EQ(connect(c->fd, (struct sockaddr *)&c->addr, sizeof c->addr), 0);
    return NULL;
}

static int connect_from_thread(const struct sockaddr_in *addr)
{
    client_t c = {.addr = *addr, .fd = -1};
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, client_main, &c), 0);
    pthread_join(t, NULL);
    return c.fd;
}

static void accept_log_init(accept_log_t *log, sl_reactor_t *r)
{
    memset(log, 0, sizeof *log);
    pthread_mutex_init(&log->mu, NULL);
    pthread_cond_init(&log->cv, NULL);
    log->r = r;
}

static void test_reactor_accept(void)
{
    env_t e;
    env_up(&e, 1, cfg_default());
    accept_log_t log;
    accept_log_init(&log, e.r);
    struct sockaddr_in addr;
    int lfd = listen_loopback(&addr);
    CHECK_EQ(sl_reactor_listen(e.r, lfd, on_accept_cb, &log), 0);

    int c1 = connect_from_thread(&addr);
    CHECK_EQ(accept_wait(&log, 1, WAIT_MS), 1);
    CHECK(!log.wrong_reactor);
    /* The accepted fd is the server end of c1's connection. */
    struct sockaddr_in peer, local;
    socklen_t len = sizeof peer;
    CHECK_EQ(getpeername(log.fds[0], (struct sockaddr *)&peer, &len), 0);
    len = sizeof local;
    CHECK_EQ(getsockname(c1, (struct sockaddr *)&local, &len), 0);
    CHECK_EQ(peer.sin_port, local.sin_port);
    CHECK(fcntl(log.fds[0], F_GETFD) & FD_CLOEXEC);

    int c2 = connect_from_thread(&addr); /* multishot: no re-arm needed */
    CHECK_EQ(accept_wait(&log, 2, WAIT_MS), 2);
    CHECK_EQ(stats(&e).accepted, 2);

    /* After unlisten, connections stay in the backlog, never accepted. */
    sl_reactor_unlisten(e.r);
    sl_reactor_unlisten(e.r); /* idempotent */
    usleep(50 * 1000);
    int c3 = connect_from_thread(&addr);
    CHECK_EQ(accept_wait(&log, 3, 300), 2);
    sl_reactor_stats_t st = stats(&e);
    CHECK_EQ(st.accepted, 2);
    CHECK_EQ(st.accept_errors, 0);
    close(c1);
    close(c2);
    close(c3);
    close(log.fds[0]);
    close(log.fds[1]);
    env_down(&e);
    close(lfd);
    pthread_mutex_destroy(&log.mu);
    pthread_cond_destroy(&log.cv);
}

/* With no descriptor left (RLIMIT_NOFILE), the multishot accept fails with
 * EMFILE; the reactor must back off rather than spin, and accept the
 * waiting connection once descriptors are available again. */
static void test_reactor_accept_emfile_backs_off(void)
{
    env_t e;
    env_up(&e, 1, cfg_default());
    accept_log_t log;
    accept_log_init(&log, e.r);
    struct sockaddr_in addr;
    int lfd = listen_loopback(&addr);
    int cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(cfd >= 0);
    struct rlimit saved, low;
    CHECK_EQ(getrlimit(RLIMIT_NOFILE, &saved), 0);
    int lowest_free = dup(0);
    CHECK(lowest_free >= 0);
    close(lowest_free);
    low = saved;
    low.rlim_cur = (rlim_t)lowest_free; /* no descriptor can be allocated */
    CHECK_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);

    CHECK_EQ(sl_reactor_listen(e.r, lfd, on_accept_cb, &log), 0);
    CHECK_EQ(connect(cfd, (struct sockaddr *)&addr, sizeof addr), 0);
    usleep(500 * 1000);
    sl_reactor_stats_t st = stats(&e);
    CHECK_EQ(setrlimit(RLIMIT_NOFILE, &saved), 0);
    CHECK_EQ(st.accepted, 0);
    /* ~5 tries in 500 ms at a 100 ms backoff; a spin would be thousands. */
    CHECK(st.accept_errors >= 2);
    CHECK(st.accept_errors <= 12);

    CHECK_EQ(accept_wait(&log, 1, WAIT_MS), 1);
    CHECK_EQ(stats(&e).accepted, 1);
    close(log.fds[0]);
    close(cfd);
    env_down(&e);
    close(lfd);
    pthread_mutex_destroy(&log.mu);
    pthread_cond_destroy(&log.cv);
}

static void test_reactor_recv_provided_buffer(void)
{
    env_t e;
    env_up(&e, 2, cfg_default());
    uint32_t nbufs = e.cfg.recv_buffers;
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);

    sl_op_t rx;
    op_init(&rx, e.p, SL_OP_RECV, sv[1]);
    sl_reactor_submit(e.r, &rx);
    /* An idle recv holds no buffer. */
    usleep(50 * 1000);
    CHECK_EQ(stats(&e).recv_buffers_free, nbufs);
    CHECK_EQ(write(sv[0], "hello", 5), 5);
    CHECK(probe_wait_op(e.p, &rx, WAIT_MS));
    CHECK_EQ(rx.res, 5);
    CHECK(rx.buf != NULL);
    CHECK(rx.cqe_flags & IORING_CQE_F_BUFFER);
    CHECK(rx.buf_id < nbufs);
    CHECK(memcmp(rx.buf, "hello", 5) == 0);
    CHECK_EQ(stats(&e).recv_buffers_free, nbufs - 1);

    sl_reactor_buf_return(e.r, rx.buf_id);
    CHECK(wait_bufs_free(&e, nbufs));

    /* The returned buffer is lent again: many more recvs than buffers. */
    for (uint32_t i = 0; i < 2 * nbufs; i++) {
        sl_op_t op;
        op_init(&op, e.p, SL_OP_RECV, sv[1]);
        char c = (char)('a' + i % 26);
        sl_reactor_submit(e.r, &op);
        CHECK_EQ(write(sv[0], &c, 1), 1);
        CHECK(probe_wait_op(e.p, &op, WAIT_MS));
        CHECK_EQ(op.res, 1);
        CHECK_EQ(*(char *)op.buf, c);
        sl_reactor_buf_return(e.r, op.buf_id);
        pthread_mutex_lock(&e.p->mu);
        e.p->ndone = 0; /* op's address is reused next round */
        pthread_mutex_unlock(&e.p->mu);
    }
    CHECK(wait_bufs_free(&e, nbufs));
    CHECK_EQ(stats(&e).ops_inflight, 0);
    close(sv[0]);
    close(sv[1]);
    env_down(&e);
}

static void test_reactor_send_sendmsg_roundtrip(void)
{
    env_t e;
    env_up(&e, 2, cfg_default());
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);

    sl_op_t tx, rx;
    char rbuf[16] = {0};
    op_init(&tx, e.p, SL_OP_SEND, sv[0]);
    tx.buf = "ping";
    tx.len = 4;
    op_init(&rx, e.p, SL_OP_RECV, sv[1]);
    rx.buf = rbuf;
    rx.len = sizeof rbuf;
    sl_reactor_submit(e.r, &rx);
    sl_reactor_submit(e.r, &tx);
    CHECK(probe_wait_op(e.p, &tx, WAIT_MS));
    CHECK(probe_wait_op(e.p, &rx, WAIT_MS));
    CHECK_EQ(tx.res, 4);
    CHECK_EQ(rx.res, 4);
    CHECK(rx.buf == rbuf); /* caller buffer: plain recv, no buffer ring */
    CHECK((rx.cqe_flags & IORING_CQE_F_BUFFER) == 0);
    CHECK(memcmp(rbuf, "ping", 4) == 0);

    /* sendmsg gathers several chunks in one call; read back with a
     * provided buffer. */
    struct iovec iov[3] = {{"a", 1}, {"bc", 2}, {"def", 3}};
    sl_op_t mtx, mrx;
    op_init(&mtx, e.p, SL_OP_SENDMSG, sv[1]);
    mtx.iov = iov;
    mtx.iovcnt = 3;
    op_init(&mrx, e.p, SL_OP_RECV, sv[0]);
    sl_reactor_submit(e.r, &mtx);
    CHECK(probe_wait_op(e.p, &mtx, WAIT_MS));
    CHECK_EQ(mtx.res, 6);
    sl_reactor_submit(e.r, &mrx);
    CHECK(probe_wait_op(e.p, &mrx, WAIT_MS));
    CHECK_EQ(mrx.res, 6);
    CHECK(memcmp(mrx.buf, "abcdef", 6) == 0);
    sl_reactor_buf_return(e.r, mrx.buf_id);

    /* MSG_NOSIGNAL: a send to a closed peer is -EPIPE, not SIGPIPE. */
    close(sv[1]);
    sl_op_t dead;
    op_init(&dead, e.p, SL_OP_SEND, sv[0]);
    dead.buf = "x";
    dead.len = 1;
    sl_reactor_submit(e.r, &dead);
    CHECK(probe_wait_op(e.p, &dead, WAIT_MS));
    CHECK_EQ(dead.res, -EPIPE);
    CHECK(wait_bufs_free(&e, e.cfg.recv_buffers));
    close(sv[0]);
    env_down(&e);
}

static void test_reactor_timeout_fires_on_time(void)
{
    env_t e;
    env_up(&e, 1, cfg_default());
    sl_op_t t;
    op_init(&t, e.p, SL_OP_TIMEOUT, -1);
    t.timeout_ns = 50 * SL_NS_PER_MS;
    uint64_t t0 = sl_clock_now_ns();
    sl_reactor_submit(e.r, &t);
    CHECK(probe_wait_op(e.p, &t, WAIT_MS));
    uint64_t took = sl_clock_now_ns() - t0;
    CHECK_EQ(t.res, -ETIME);
    CHECK(took >= 50 * SL_NS_PER_MS);
    CHECK(took < 300 * SL_NS_PER_MS);
    env_down(&e);
}

/* SL_TIMEOUT_ABS: a timeout at an absolute monotonic time fires then, not
 * that long after submission; one already past fires at once. */
static void test_reactor_timeout_absolute(void)
{
    env_t e;
    env_up(&e, 1, cfg_default());
    sl_op_t t;
    op_init(&t, e.p, SL_OP_TIMEOUT, -1);
    uint64_t t0 = sl_clock_now_ns();
    t.flags = SL_TIMEOUT_ABS;
    t.timeout_ns = t0 + 80 * SL_NS_PER_MS;
    sl_reactor_submit(e.r, &t);
    CHECK(probe_wait_op(e.p, &t, WAIT_MS));
    uint64_t at = sl_clock_now_ns();
    CHECK_EQ(t.res, -ETIME);
    CHECK(at >= t0 + 80 * SL_NS_PER_MS);
    CHECK(at < t0 + 330 * SL_NS_PER_MS); /* not 80 ms plus t0's whole value */
    sl_op_t past; /* another op: the probe knows completions by address */
    op_init(&past, e.p, SL_OP_TIMEOUT, -1);
    past.flags = SL_TIMEOUT_ABS;
    past.timeout_ns = sl_clock_now_ns() - SL_NS_PER_S;
    t0 = sl_clock_now_ns();
    sl_reactor_submit(e.r, &past);
    CHECK(probe_wait_op(e.p, &past, WAIT_MS));
    CHECK_EQ(past.res, -ETIME);
    CHECK(sl_clock_now_ns() - t0 < 250 * SL_NS_PER_MS);
    env_down(&e);
}

/* SL_OP_POLL: a pipe polls readable only once a byte is in it, and a
 * pidfd polls readable once its process has exited (how runs learn of
 * their child's exit). */
static void test_reactor_poll_pipe_and_pidfd(void)
{
    env_t e;
    env_up(&e, 1, cfg_default());
    int p[2];
    CHECK(pipe2(p, O_CLOEXEC) == 0);
    sl_op_t op;
    op_init(&op, e.p, SL_OP_POLL, p[0]);
    op.flags = POLLIN;
    sl_reactor_submit(e.r, &op);
    CHECK(!probe_wait_op(e.p, &op, 100)); /* nothing to read yet */
    CHECK(write(p[1], "x", 1) == 1);
    CHECK(probe_wait_op(e.p, &op, WAIT_MS));
    CHECK(op.res > 0 && (op.res & POLLIN));
    close(p[0]);
    close(p[1]);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        usleep(50000);
        _exit(0);
    }
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    CHECK(pidfd >= 0);
    sl_op_t w;
    op_init(&w, e.p, SL_OP_POLL, pidfd);
    w.flags = POLLIN;
    sl_reactor_submit(e.r, &w);
    CHECK(probe_wait_op(e.p, &w, WAIT_MS));
    CHECK(w.res > 0 && (w.res & POLLIN));
    CHECK(waitpid(pid, NULL, WNOHANG) == pid); /* it had exited */
    close(pidfd);
    env_down(&e);
}

/* Data that arrives within batch_wait_ns of the reactor falling asleep
 * waits for the window's end; data after a quiet spell wakes it at once;
 * nothing is lost either way. */
static void test_reactor_batch_wait(void)
{
    env_t e;
    sl_reactor_config_t cfg = cfg_default();
    cfg.lag_probe_ns = 0; /* no other wake-ups */
    cfg.batch_wait_ns = 90 * SL_NS_PER_MS; /* wide: timing checks on a busy CI */
    env_up(&e, 1, cfg);
    bool batches = sl_reactor_batch_wait_ns(e.r) == cfg.batch_wait_ns;
    if (!batches)
        fprintf(stderr, "kernel without min-wait: only checking delivery\n");
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    char rbuf[8];
    sl_op_t rxs[2]; /* distinct records: the probe finds completions by address */
    for (int round = 0; round < 2; round++) {
        sl_op_t *rxp = &rxs[round];
        op_init(rxp, e.p, SL_OP_RECV, sv[1]);
        rxp->buf = rbuf;
        rxp->len = sizeof rbuf;
        usleep(200 * 1000); /* quiet: the submit's wake-up is not held back */
        sl_reactor_submit(e.r, rxp);
        /* Round 0: the reactor armed the recv and fell asleep just now;
         * round 1: a quiet spell longer than the window. */
        usleep(round == 0 ? 5 * 1000 : 200 * 1000);
        uint64_t t0 = sl_clock_now_ns();
        CHECK_EQ(write(sv[0], "x", 1), 1);
        CHECK(probe_wait_op(e.p, rxp, WAIT_MS));
        uint64_t took = sl_clock_now_ns() - t0;
        CHECK_EQ(rxp->res, 1);
        if (batches && round == 0) /* fell asleep just now: gathered */
            CHECK(took >= 45 * SL_NS_PER_MS);
        if (batches && round == 1) /* asleep for long: at once */
            CHECK(took < 45 * SL_NS_PER_MS);
    }
    close(sv[0]);
    close(sv[1]);
    env_down(&e);
}

static void test_reactor_cancel_pending_timeout(void)
{
    env_t e;
    env_up(&e, 1, cfg_default());
    sl_op_t t, c;
    op_init(&t, e.p, SL_OP_TIMEOUT, -1);
    t.timeout_ns = 10 * SL_NS_PER_S;
    op_init(&c, e.p, SL_OP_CANCEL, -1);
    c.target = &t;
    uint64_t t0 = sl_clock_now_ns();
    sl_reactor_submit(e.r, &t);
    sl_reactor_submit(e.r, &c);
    CHECK(probe_wait_op(e.p, &t, WAIT_MS));
    CHECK(probe_wait_op(e.p, &c, WAIT_MS));
    CHECK(sl_clock_now_ns() - t0 < SL_NS_PER_S);
    CHECK_EQ(t.res, -ECANCELED);
    CHECK_EQ(c.res, 0);

    /* Cancelling an op that is no longer in flight finds nothing. */
    sl_op_t c2;
    op_init(&c2, e.p, SL_OP_CANCEL, -1);
    c2.target = &t;
    sl_reactor_submit(e.r, &c2);
    CHECK(probe_wait_op(e.p, &c2, WAIT_MS));
    CHECK_EQ(c2.res, -ENOENT);
    CHECK_EQ(stats(&e).ops_inflight, 0);
    env_down(&e);
}

static void test_reactor_file_roundtrip(void)
{
    env_t e;
    env_up(&e, 1, cfg_default());
    char dir[] = "/tmp/sl-reactor-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[128];
    snprintf(path, sizeof path, "%s/data", dir);

    sl_op_t open_op;
    op_init(&open_op, e.p, SL_OP_OPENAT, AT_FDCWD);
    open_op.path = path;
    open_op.flags = O_CREAT | O_RDWR | O_TRUNC;
    open_op.mode = 0600;
    sl_reactor_submit(e.r, &open_op);
    CHECK(probe_wait_op(e.p, &open_op, WAIT_MS));
    int fd = open_op.res;
    CHECK(fd >= 0);
    CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC);

    sl_op_t w, wv, fs, rd;
    op_init(&w, e.p, SL_OP_WRITE, fd);
    w.buf = "hello, ";
    w.len = 7;
    w.offset = 0;
    struct iovec iov[2] = {{"wor", 3}, {"ld", 2}};
    op_init(&wv, e.p, SL_OP_WRITEV, fd);
    wv.iov = iov;
    wv.iovcnt = 2;
    wv.offset = 7;
    sl_reactor_submit(e.r, &w);
    sl_reactor_submit(e.r, &wv);
    CHECK(probe_wait_op(e.p, &w, WAIT_MS));
    CHECK(probe_wait_op(e.p, &wv, WAIT_MS));
    CHECK_EQ(w.res, 7);
    CHECK_EQ(wv.res, 5);
    op_init(&fs, e.p, SL_OP_FSYNC, fd);
    sl_reactor_submit(e.r, &fs);
    CHECK(probe_wait_op(e.p, &fs, WAIT_MS));
    CHECK_EQ(fs.res, 0);

    char buf[64] = {0};
    op_init(&rd, e.p, SL_OP_READ, fd);
    rd.buf = buf;
    rd.len = sizeof buf;
    rd.offset = 0;
    sl_reactor_submit(e.r, &rd);
    CHECK(probe_wait_op(e.p, &rd, WAIT_MS));
    CHECK_EQ(rd.res, 12);
    CHECK(memcmp(buf, "hello, world", 12) == 0);

    sl_op_t cl;
    op_init(&cl, e.p, SL_OP_CLOSE, fd);
    sl_reactor_submit(e.r, &cl);
    CHECK(probe_wait_op(e.p, &cl, WAIT_MS));
    CHECK_EQ(cl.res, 0);
    CHECK_EQ(fcntl(fd, F_GETFD), -1);
    CHECK_EQ(errno, EBADF);

    /* Failures come back as -errno. */
    sl_op_t missing;
    op_init(&missing, e.p, SL_OP_OPENAT, AT_FDCWD);
    missing.path = "/nonexistent-dir/sl-reactor/x";
    missing.flags = O_RDONLY;
    sl_reactor_submit(e.r, &missing);
    CHECK(probe_wait_op(e.p, &missing, WAIT_MS));
    CHECK_EQ(missing.res, -ENOENT);

    CHECK_EQ(unlink(path), 0);
    CHECK_EQ(rmdir(dir), 0);
    CHECK_EQ(stats(&e).ops_inflight, 0);
    env_down(&e);
}

/* Teardown order: a recv pending on a socket is cancelled by CANCEL_FD, the
 * socket closed by CLOSE; the owner sees every completion, no op stays in
 * flight, no buffer is held and no descriptor leaks. */
static void test_reactor_cancel_on_close(void)
{
    env_t e;
    env_up(&e, 2, cfg_default());
    int baseline = count_fds();
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    CHECK_EQ(count_fds(), baseline + 2);

    sl_op_t rx, cancel, cl;
    op_init(&rx, e.p, SL_OP_RECV, sv[0]);
    op_init(&cancel, e.p, SL_OP_CANCEL_FD, sv[0]);
    op_init(&cl, e.p, SL_OP_CLOSE, sv[0]);
    sl_reactor_submit(e.r, &rx);
    usleep(20 * 1000); /* let the recv reach the kernel and wait there */
    sl_reactor_submit(e.r, &cancel);
    sl_reactor_submit(e.r, &cl);
    CHECK(probe_wait_op(e.p, &rx, WAIT_MS));
    CHECK(probe_wait_op(e.p, &cancel, WAIT_MS));
    CHECK(probe_wait_op(e.p, &cl, WAIT_MS));
    CHECK_EQ(rx.res, -ECANCELED);
    CHECK(rx.buf == NULL);
    CHECK_EQ(cancel.res, 1);
    CHECK_EQ(cl.res, 0);
    close(sv[1]);
    CHECK_EQ(count_fds(), baseline);
    sl_reactor_stats_t st = stats(&e);
    CHECK_EQ(st.ops_inflight, 0);
    CHECK_EQ(st.recv_buffers_free, e.cfg.recv_buffers);

    /* Nothing left on the fd: CANCEL_FD reports -ENOENT. */
    int sv2[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv2), 0);
    sl_op_t none;
    op_init(&none, e.p, SL_OP_CANCEL_FD, sv2[0]);
    sl_reactor_submit(e.r, &none);
    CHECK(probe_wait_op(e.p, &none, WAIT_MS));
    CHECK_EQ(none.res, -ENOENT);
    close(sv2[0]);
    close(sv2[1]);
    env_down(&e);
}

static int op_index(sl_op_t *ops, uint32_t n, const sl_op_t *op)
{
    for (uint32_t i = 0; i < n; i++)
        if (&ops[i] == op)
            return (int)i;
    return -1;
}

/* op is one of rx[0..2]; socket i carried the byte '0' + i. */
static void check_recv_byte(sl_op_t *rx, const sl_op_t *op)
{
    int i = op_index(rx, 3, op);
    CHECK(i >= 0);
    CHECK_EQ(op->res, 1);
    CHECK(op->buf != NULL);
    CHECK_EQ(*(const char *)op->buf, '0' + i);
}

static bool wait_starved(env_t *e, uint64_t want)
{
    for (int i = 0; i < 300; i++) {
        if (stats(e).recv_starved >= want)
            return true;
        usleep(10 * 1000);
    }
    return false;
}

/* With 2 buffers and 3 recvs whose data has arrived, one recv waits
 * (parked, invisible to its owner) until a buffer comes back. */
static void test_reactor_buffer_starvation(void)
{
    env_t e;
    sl_reactor_config_t cfg = cfg_default();
    cfg.recv_buffers = 2;
    cfg.lag_probe_ns = 0; /* only a buffer return may wake the reactor */
    env_up(&e, 2, cfg);
    int sv[3][2];
    sl_op_t rx[3];
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv[i]), 0);
        op_init(&rx[i], e.p, SL_OP_RECV, sv[i][1]);
        sl_reactor_submit(e.r, &rx[i]);
    }
    for (int i = 0; i < 3; i++) {
        char c = (char)('0' + i);
        CHECK_EQ(write(sv[i][0], &c, 1), 1);
    }
    CHECK_EQ(probe_wait_count(e.p, 2, WAIT_MS), 2);
    CHECK(wait_starved(&e, 1));
    CHECK_EQ(probe_wait_count(e.p, 3, 200), 2); /* still parked */
    sl_reactor_stats_t st = stats(&e);
    CHECK_EQ(st.recv_buffers_free, 0);
    CHECK_EQ(st.ops_inflight, 1);

    /* Check the data before any buffer goes back (it is then re-lent). */
    for (int k = 0; k < 2; k++)
        check_recv_byte(rx, e.p->done[k]);
    CHECK(e.p->done[0]->buf_id != e.p->done[1]->buf_id);
    /* Return one buffer: the parked recv is re-armed and completes. */
    sl_op_t *first = e.p->done[0];
    sl_reactor_buf_return(e.r, first->buf_id);
    CHECK_EQ(probe_wait_count(e.p, 3, WAIT_MS), 3);
    check_recv_byte(rx, e.p->done[2]);
    CHECK_EQ(e.p->done[2]->buf_id, first->buf_id);
    sl_reactor_buf_return(e.r, e.p->done[1]->buf_id);
    sl_reactor_buf_return(e.r, e.p->done[2]->buf_id);
    CHECK(wait_bufs_free(&e, 2));
    CHECK_EQ(stats(&e).ops_inflight, 0);
    for (int i = 0; i < 3; i++) {
        close(sv[i][0]);
        close(sv[i][1]);
    }
    env_down(&e);
}

/* A parked recv is cancelled by CANCEL_FD like one in the kernel. */
static void test_reactor_cancel_fd_parked_recv(void)
{
    env_t e;
    sl_reactor_config_t cfg = cfg_default();
    cfg.recv_buffers = 1;
    cfg.lag_probe_ns = 0;
    env_up(&e, 1, cfg);
    int a[2], b[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, a), 0);
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, b), 0);
    sl_op_t ra, rb;
    op_init(&ra, e.p, SL_OP_RECV, a[1]);
    op_init(&rb, e.p, SL_OP_RECV, b[1]);
    sl_reactor_submit(e.r, &ra);
    sl_reactor_submit(e.r, &rb);
    CHECK_EQ(write(a[0], "x", 1), 1);
    CHECK_EQ(write(b[0], "y", 1), 1);
    CHECK_EQ(probe_wait_count(e.p, 1, WAIT_MS), 1);
    CHECK(wait_starved(&e, 1));
    sl_op_t *got = e.p->done[0];
    sl_op_t *parked = got == &ra ? &rb : &ra;

    sl_op_t cancel;
    op_init(&cancel, e.p, SL_OP_CANCEL_FD, parked->fd);
    sl_reactor_submit(e.r, &cancel);
    CHECK(probe_wait_op(e.p, parked, WAIT_MS));
    CHECK(probe_wait_op(e.p, &cancel, WAIT_MS));
    CHECK_EQ(parked->res, -ECANCELED);
    CHECK(parked->buf == NULL);
    CHECK_EQ(cancel.res, 1);
    sl_reactor_buf_return(e.r, got->buf_id);
    CHECK(wait_bufs_free(&e, 1));
    CHECK_EQ(stats(&e).ops_inflight, 0);
    close(a[0]);
    close(a[1]);
    close(b[0]);
    close(b[1]);
    env_down(&e);
}

/* ---- ping-pong between two actors (also measures syscalls per op) ------ */

typedef struct pinger {
    sl_actor_t a;
    sl_reactor_t *r;
    bool echo;
    sl_op_t tx, rx;
    char out, in;
    uint32_t rounds, rounds_max;
    sem_t *done;
} pinger_t;

static void pinger_send(pinger_t *p)
{
    p->tx.kind = SL_OP_SEND;
    p->tx.buf = &p->out;
    p->tx.len = 1;
    sl_reactor_submit(p->r, &p->tx);
}

/* The echo side receives into provided buffers and returns them from its
 * worker thread, so buffer returns race with the reactor's drain. */
static void pinger_recv(pinger_t *p)
{
    p->rx.kind = SL_OP_RECV;
    p->rx.buf = p->echo ? NULL : &p->in;
    p->rx.len = 1;
    sl_reactor_submit(p->r, &p->rx);
}

static void pinger_behavior(sl_actor_t *self, sl_msg_t *msg)
{
    pinger_t *p = (pinger_t *)self;
    sl_op_t *op = sl_op_from_msg(msg);
    CHECK_EQ(op->res, 1);
    if (op == &p->tx) {
        if (p->echo && p->rounds == p->rounds_max)
            sem_post(p->done); /* echoed everything: no recv left pending */
        else
            pinger_recv(p);
        return;
    }
    CHECK(op == &p->rx);
    if (p->echo) {
        p->rounds++;
        CHECK(p->rx.buf != NULL);
        p->out = *(const char *)p->rx.buf;
        sl_reactor_buf_return(p->r, p->rx.buf_id);
        pinger_send(p);
        return;
    }
    CHECK_EQ(p->in, (char)p->rounds);
    if (++p->rounds == p->rounds_max) {
        sem_post(p->done);
        return;
    }
    p->out = (char)p->rounds;
    pinger_send(p);
}

static void pinger_init(pinger_t *p, env_t *e, int fd, bool echo, uint32_t rounds, sem_t *done)
{
    memset(p, 0, sizeof *p);
    sl_actor_init(&p->a, e->s, echo ? "echo" : "ping", 16, pinger_behavior, NULL);
    p->r = e->r;
    p->echo = echo;
    p->rounds_max = rounds;
    p->done = done;
    p->tx.owner = p->rx.owner = &p->a;
    p->tx.fd = p->rx.fd = fd;
}

/* `pairs` ping/echo actor pairs, each over its own socketpair, bounce one
 * byte `rounds` times. Prints what a round trip costs in reactor syscalls. */
static void pingpong(uint32_t pairs, uint32_t rounds)
{
    env_t e;
    sl_reactor_config_t cfg = cfg_default();
    cfg.lag_probe_ns = 0; /* no periodic timer to hide a lost wake-up */
    env_up(&e, 2, cfg);
    enum { PAIRS_MAX = 16 };
    CHECK(pairs <= PAIRS_MAX);
    int sv[PAIRS_MAX][2];
    pinger_t *ping = calloc(pairs, sizeof *ping);
    pinger_t *echo = calloc(pairs, sizeof *echo);
    CHECK(ping && echo);
    sem_t done;
    sem_init(&done, 0, 0);
    for (uint32_t i = 0; i < pairs; i++) {
        CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv[i]), 0);
        pinger_init(&ping[i], &e, sv[i][0], false, rounds, &done);
        pinger_init(&echo[i], &e, sv[i][1], true, rounds, &done);
    }
    sl_reactor_stats_t before = stats(&e);
    uint64_t t0 = sl_clock_now_ns();
    for (uint32_t i = 0; i < pairs; i++) {
        pinger_recv(&echo[i]);
        pinger_send(&ping[i]);
    }
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 30;
    for (uint32_t i = 0; i < 2 * pairs; i++)
        CHECK_EQ(sem_timedwait(&done, &dl), 0);
    uint64_t took = sl_clock_now_ns() - t0;
    sl_reactor_stats_t after = stats(&e);
    for (uint32_t i = 0; i < pairs; i++) {
        CHECK_EQ(ping[i].rounds, rounds);
        CHECK_EQ(echo[i].rounds, rounds);
    }
    CHECK_EQ(after.ops_inflight, 0);
    CHECK(wait_bufs_free(&e, e.cfg.recv_buffers));
    uint64_t ops = 4ull * pairs * rounds;
    CHECK_EQ(after.completed - before.completed, ops);
    fprintf(stderr,
            "  pingpong pairs=%u: %llu ops in %.1f ms: %.3f io_uring_enter/op, "
            "%.3f eventfd wakeups/op, %.3f loop iterations/op\n",
            pairs, (unsigned long long)ops, (double)took / 1e6,
            (double)(after.enter_calls - before.enter_calls) / (double)ops,
            (double)(after.wakeups - before.wakeups) / (double)ops,
            (double)(after.iterations - before.iterations) / (double)ops);
    sl_reactor_destroy(e.r);
    e.r = NULL;
    for (uint32_t i = 0; i < pairs; i++) {
        sl_actor_release(&ping[i].a);
        sl_actor_release(&echo[i].a);
        close(sv[i][0]);
        close(sv[i][1]);
    }
    env_down(&e); /* joins the workers: the actors' storage is free now */
    sem_destroy(&done);
    free(ping);
    free(echo);
}

static void test_reactor_pingpong(void)
{
    pingpong(1, 2000);
    pingpong(16, 500);
}

/* Several threads submit bursts at once while the reactor goes to sleep and
 * wakes: no op is lost (a lost wake-up would stall a burst), none doubled. */
typedef struct counter {
    sl_actor_t a;
    sem_t sem;
    _Atomic uint32_t n;
} counter_t;

static void counter_behavior(sl_actor_t *self, sl_msg_t *msg)
{
    counter_t *c = (counter_t *)self;
    CHECK_EQ(sl_op_from_msg(msg)->res, 0);
    atomic_fetch_add(&c->n, 1);
    sem_post(&c->sem);
}

typedef struct submitter {
    env_t *e;
    counter_t c;
    sl_op_t ops[32];
} submitter_t;

static void *submitter_main(void *arg)
{
    submitter_t *t = arg;
    for (int burst = 0; burst < 50; burst++) {
        for (uint32_t i = 0; i < SL_ARRAY_LEN(t->ops); i++) {
            op_init(&t->ops[i], NULL, SL_OP_NOP, -1);
            t->ops[i].owner = &t->c.a;
            sl_reactor_submit(t->e->r, &t->ops[i]);
        }
        struct timespec dl;
        clock_gettime(CLOCK_REALTIME, &dl);
        dl.tv_sec += 10;
        for (uint32_t i = 0; i < SL_ARRAY_LEN(t->ops); i++)
            CHECK_EQ(sem_timedwait(&t->c.sem, &dl), 0);
        if (burst % 8 == 0)
            usleep(2000); /* let the reactor fall asleep now and then */
    }
    return NULL;
}

static void test_reactor_concurrent_submitters(void)
{
    env_t e;
    sl_reactor_config_t cfg = cfg_default();
    cfg.lag_probe_ns = 0; /* no periodic timer to hide a lost wake-up */
    env_up(&e, 2, cfg);
    enum { THREADS = 3 };
    submitter_t *t = calloc(THREADS, sizeof *t);
    CHECK(t != NULL);
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++) {
        t[i].e = &e;
        sem_init(&t[i].c.sem, 0, 0);
        sl_actor_init(&t[i].c.a, e.s, "counter", 64, counter_behavior, NULL);
    }
    for (int i = 0; i < THREADS; i++)
        CHECK_EQ(pthread_create(&th[i], NULL, submitter_main, &t[i]), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    sl_reactor_stats_t st = stats(&e);
    CHECK_EQ(st.submitted, THREADS * 50 * 32);
    CHECK_EQ(st.completed, THREADS * 50 * 32);
    CHECK_EQ(st.ops_inflight, 0);
    sl_reactor_destroy(e.r);
    e.r = NULL;
    for (int i = 0; i < THREADS; i++) {
        CHECK_EQ(atomic_load(&t[i].c.n), 50 * 32);
        sl_actor_release(&t[i].c.a);
    }
    env_down(&e);
    for (int i = 0; i < THREADS; i++)
        sem_destroy(&t[i].c.sem);
    free(t);
}

/* More ops than SQ entries (and CQ entries) in one drain: the reactor
 * submits when the SQ fills and continues; every op completes once. */
static void test_reactor_sq_full_submits_and_continues(void)
{
    env_t e;
    sl_reactor_config_t cfg = cfg_default();
    cfg.sq_entries = 8;
    env_up(&e, 1, cfg);
    enum { N = 200 };
    sl_op_t *ops = calloc(N, sizeof *ops);
    CHECK(ops != NULL);
    for (uint32_t i = 0; i < N; i++) {
        op_init(&ops[i], e.p, SL_OP_NOP, -1);
        sl_reactor_submit(e.r, &ops[i]);
    }
    CHECK_EQ(probe_wait_count(e.p, N, WAIT_MS), N);
    for (uint32_t i = 0; i < N; i++) {
        CHECK(probe_has(e.p, &ops[i]));
        CHECK_EQ(ops[i].res, 0);
    }
    sl_reactor_stats_t st = stats(&e);
    CHECK_EQ(st.submitted, N);
    CHECK_EQ(st.completed, N);
    CHECK_EQ(st.ops_inflight, 0);
    env_down(&e);
    free(ops);
}

static void test_reactor_lag_probe_and_config(void)
{
    env_t e;
    sl_reactor_config_t cfg = cfg_default();
    cfg.lag_probe_ns = 5 * SL_NS_PER_MS;
    env_up(&e, 1, cfg);
    sl_reactor_stats_t st0 = stats(&e);
    usleep(200 * 1000);
    sl_reactor_stats_t st = stats(&e);
    /* The probe wakes an idle reactor every 5 ms (~40 times here). */
    CHECK(st.iterations - st0.iterations >= 10);
    CHECK(st.iterations - st0.iterations <= 200);
    CHECK(st.loop_lag_ns_max < 100 * SL_NS_PER_MS);
    CHECK(st.loop_lag_ns_recent <= st.loop_lag_ns_max || st.loop_lag_ns_recent < SL_NS_PER_MS);
    env_down(&e);

    /* Bad configs are refused; nothing is created. */
    sl_reactor_t *r = NULL;
    sl_reactor_config_t bad = cfg_default();
    bad.sq_entries = 100;
    CHECK_EQ(sl_reactor_create(&bad, 0, &r), SL_EINVAL);
    bad = cfg_default();
    bad.recv_buffers = 3;
    CHECK_EQ(sl_reactor_create(&bad, 0, &r), SL_EINVAL);
    bad = cfg_default();
    bad.recv_buffer_bytes = 0;
    CHECK_EQ(sl_reactor_create(&bad, 0, &r), SL_EINVAL);
    CHECK(r == NULL);
}

/* ---- directory ops: MKDIRAT, UNLINKAT, RENAMEAT -------------------------- */

/* Submits op and waits for its completion; returns op->res. */
static int32_t run_op(env_t *e, sl_op_t *op)
{
    sl_reactor_submit(e->r, op);
    CHECK(probe_wait_op(e->p, op, WAIT_MS));
    return op->res;
}

static bool is_dir_at(int dirfd, const char *path)
{
    struct stat st;
    return fstatat(dirfd, path, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
}

static bool exists_at(int dirfd, const char *path)
{
    struct stat st;
    return fstatat(dirfd, path, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

/* MKDIRAT creates a folder relative to a directory fd with the given mode
 * (umask applies); a second one reports -EEXIST, a missing parent -ENOENT. */
static void test_reactor_mkdirat(void)
{
    env_t e;
    env_up(&e, 1, cfg_default());
    char dir[] = "/tmp/sl-reactor-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    CHECK(dfd >= 0);

    sl_op_t op;
    op_init(&op, e.p, SL_OP_MKDIRAT, dfd);
    op.path = "sess";
    op.mode = 0700;
    CHECK_EQ(run_op(&e, &op), 0);
    CHECK(is_dir_at(dfd, "sess"));
    struct stat st;
    CHECK_EQ(fstatat(dfd, "sess", &st, 0), 0);
    CHECK_EQ(st.st_mode & 0777, 0700);

    sl_op_t again;
    op_init(&again, e.p, SL_OP_MKDIRAT, dfd);
    again.path = "sess";
    again.mode = 0700;
    CHECK_EQ(run_op(&e, &again), -EEXIST);

    sl_op_t orphan;
    op_init(&orphan, e.p, SL_OP_MKDIRAT, dfd);
    orphan.path = "missing/child";
    orphan.mode = 0700;
    CHECK_EQ(run_op(&e, &orphan), -ENOENT);

    CHECK_EQ(unlinkat(dfd, "sess", AT_REMOVEDIR), 0);
    close(dfd);
    CHECK_EQ(rmdir(dir), 0);
    CHECK_EQ(stats(&e).ops_inflight, 0);
    env_down(&e);
}

/* UNLINKAT removes a file (flags 0) and an empty folder (AT_REMOVEDIR); a
 * folder that still holds a file reports -ENOTEMPTY, a missing name
 * -ENOENT, and a folder without AT_REMOVEDIR -EISDIR. */
static void test_reactor_unlinkat(void)
{
    env_t e;
    env_up(&e, 1, cfg_default());
    char dir[] = "/tmp/sl-reactor-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    CHECK(dfd >= 0);
    CHECK_EQ(mkdirat(dfd, "d", 0700), 0);
    int fd = openat(dfd, "d/f", O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    CHECK(fd >= 0);
    close(fd);

    sl_op_t busy;
    op_init(&busy, e.p, SL_OP_UNLINKAT, dfd);
    busy.path = "d";
    busy.flags = AT_REMOVEDIR;
    CHECK_EQ(run_op(&e, &busy), -ENOTEMPTY);

    sl_op_t nodir;
    op_init(&nodir, e.p, SL_OP_UNLINKAT, dfd);
    nodir.path = "d";
    CHECK_EQ(run_op(&e, &nodir), -EISDIR);

    sl_op_t file;
    op_init(&file, e.p, SL_OP_UNLINKAT, dfd);
    file.path = "d/f";
    CHECK_EQ(run_op(&e, &file), 0);
    CHECK(!exists_at(dfd, "d/f"));

    sl_op_t gone;
    op_init(&gone, e.p, SL_OP_UNLINKAT, dfd);
    gone.path = "d/f";
    CHECK_EQ(run_op(&e, &gone), -ENOENT);

    sl_op_t rm;
    op_init(&rm, e.p, SL_OP_UNLINKAT, dfd);
    rm.path = "d";
    rm.flags = AT_REMOVEDIR;
    CHECK_EQ(run_op(&e, &rm), 0);
    CHECK(!exists_at(dfd, "d"));

    close(dfd);
    CHECK_EQ(rmdir(dir), 0);
    CHECK_EQ(stats(&e).ops_inflight, 0);
    env_down(&e);
}

/* RENAMEAT moves a folder (with its content) between two directory fds;
 * RENAME_NOREPLACE refuses an existing target with -EEXIST and leaves both
 * names alone; a missing source reports -ENOENT. */
static void test_reactor_renameat(void)
{
    env_t e;
    env_up(&e, 1, cfg_default());
    char dir[] = "/tmp/sl-reactor-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    CHECK(dfd >= 0);
    CHECK_EQ(mkdirat(dfd, "a", 0700), 0);
    CHECK_EQ(mkdirat(dfd, "other", 0700), 0);
    int ofd = openat(dfd, "other", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    CHECK(ofd >= 0);
    int fd = openat(dfd, "a/f", O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    CHECK(fd >= 0);
    CHECK_EQ(write(fd, "xyz", 3), 3);
    close(fd);

    sl_op_t mv;
    op_init(&mv, e.p, SL_OP_RENAMEAT, dfd);
    mv.path = "a";
    mv.fd2 = ofd;
    mv.path2 = ".a-moved";
    CHECK_EQ(run_op(&e, &mv), 0);
    CHECK(!exists_at(dfd, "a"));
    CHECK(is_dir_at(ofd, ".a-moved"));
    struct stat st;
    CHECK_EQ(fstatat(ofd, ".a-moved/f", &st, 0), 0);
    CHECK_EQ(st.st_size, 3);

    CHECK_EQ(mkdirat(dfd, "b", 0700), 0);
    sl_op_t clash;
    op_init(&clash, e.p, SL_OP_RENAMEAT, ofd);
    clash.path = ".a-moved";
    clash.fd2 = dfd;
    clash.path2 = "b";
    clash.flags = RENAME_NOREPLACE;
    CHECK_EQ(run_op(&e, &clash), -EEXIST);
    CHECK(is_dir_at(ofd, ".a-moved"));
    CHECK(is_dir_at(dfd, "b"));

    sl_op_t missing;
    op_init(&missing, e.p, SL_OP_RENAMEAT, dfd);
    missing.path = "nope";
    missing.fd2 = dfd;
    missing.path2 = "nope2";
    CHECK_EQ(run_op(&e, &missing), -ENOENT);

    CHECK_EQ(unlinkat(ofd, ".a-moved/f", 0), 0);
    CHECK_EQ(unlinkat(ofd, ".a-moved", AT_REMOVEDIR), 0);
    CHECK_EQ(unlinkat(dfd, "b", AT_REMOVEDIR), 0);
    close(ofd);
    CHECK_EQ(unlinkat(dfd, "other", AT_REMOVEDIR), 0);
    close(dfd);
    CHECK_EQ(rmdir(dir), 0);
    CHECK_EQ(stats(&e).ops_inflight, 0);
    env_down(&e);
}

int main(void)
{
    struct {
        const char *name;
        void (*fn)(void);
    } tests[] = {
#define T(f) {#f, f}
        T(test_reactor_nop_completes_to_owner),
        T(test_reactor_accept),
        T(test_reactor_accept_emfile_backs_off),
        T(test_reactor_recv_provided_buffer),
        T(test_reactor_send_sendmsg_roundtrip),
        T(test_reactor_timeout_fires_on_time),
        T(test_reactor_timeout_absolute),
        T(test_reactor_cancel_pending_timeout),
        T(test_reactor_batch_wait),
        T(test_reactor_file_roundtrip),
        T(test_reactor_cancel_on_close),
        T(test_reactor_buffer_starvation),
        T(test_reactor_cancel_fd_parked_recv),
        T(test_reactor_pingpong),
        T(test_reactor_sq_full_submits_and_continues),
        T(test_reactor_concurrent_submitters),
        T(test_reactor_lag_probe_and_config),
        T(test_reactor_mkdirat),
        T(test_reactor_unlinkat),
        T(test_reactor_renameat),
        T(test_reactor_poll_pipe_and_pidfd),
#undef T
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(tests); i++) {
        uint64_t t0 = sl_clock_now_ns();
        tests[i].fn();
        fprintf(stderr, "ok %s (%.0f ms)\n", tests[i].name, (double)(sl_clock_now_ns() - t0) / 1e6);
    }
    return 0;
}
