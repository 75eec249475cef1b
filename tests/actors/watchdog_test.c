/*
 * Tests for actors/watchdog.c: the rules on synthetic probes, the probes on
 * real loopback sockets (a zero-window peer, a unix socket), the actor
 * against the real scheduler and reactor (reaping closed peers over several
 * slices, never touching an fd after forget), and the cost of one probe.
 *
 * Half-open peers cannot be made on loopback (the kernel always acks);
 * tests/integration/test_watchdog_faults.py makes them with network
 * namespaces and nft.
 */
#include "actors/watchdog.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "runtime/clock.h"
#include "runtime/limits.h"
#include "runtime/log.h"
#include "tests/check.h"

#define CHECK_EQ(a, b)                                                                             \
    do {                                                                                           \
        long long a_ = (long long)(a), b_ = (long long)(b);                                        \
        if (a_ != b_) {                                                                            \
            fprintf(stderr, "%s:%d: CHECK_EQ failed: %s == %s (%lld vs %lld)\n", __FILE__,         \
                    __LINE__, #a, #b, a_, b_);                                                     \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

#define MS SL_NS_PER_MS
#define S SL_NS_PER_S

static const sl_watchdog_config_t CFG = {.interval_ns = 1 * S, .grace_ns = 30 * S,
                                         .paused_limit_ns = 0};

static sl_watchdog_probe_t busy(uint64_t acked)
{
    return (sl_watchdog_probe_t){.sendq = 50000, .state = 1, .unacked = 10, .bytes_acked = acked};
}

/* ---- the rules ------------------------------------------------------------ */

static void test_watchdog_judge_progress_and_stall(void)
{
    sl_watchdog_judge_t j = {0};
    sl_watchdog_probe_t p = busy(1000);
    uint64_t t = 100 * S;
    CHECK_EQ(sl_watchdog_judge(&CFG, &j, &p, t), SL_WATCHDOG_LIVE); /* first sight: primed */
    p.bytes_acked = 5000;
    CHECK_EQ(sl_watchdog_judge(&CFG, &j, &p, t + 1 * S), SL_WATCHDOG_LIVE);
    /* No acked byte from here on, bytes in flight: stalled, then reaped at
     * exactly the grace after the last progress. */
    CHECK_EQ(sl_watchdog_judge(&CFG, &j, &p, t + 2 * S), SL_WATCHDOG_STALLED);
    CHECK_EQ(sl_watchdog_judge(&CFG, &j, &p, t + 30 * S), SL_WATCHDOG_STALLED);
    CHECK_EQ(sl_watchdog_judge(&CFG, &j, &p, t + 31 * S - 1), SL_WATCHDOG_STALLED);
    CHECK_EQ(sl_watchdog_judge(&CFG, &j, &p, t + 31 * S), SL_WATCHDOG_REAP_STALL);
    /* An empty queue is progress too (nothing owed) and reads idle. */
    sl_watchdog_judge_t k = {0};
    p.sendq = 0;
    CHECK_EQ(sl_watchdog_judge(&CFG, &k, &p, t), SL_WATCHDOG_IDLE);
    CHECK_EQ(sl_watchdog_judge(&CFG, &k, &p, t + 100 * S), SL_WATCHDOG_IDLE);
}

static void test_watchdog_judge_trickle_is_never_reaped(void)
{
    /* A slow reader whose acks advance a little every 10 s, 15 minutes. */
    sl_watchdog_judge_t j = {0};
    sl_watchdog_probe_t p = busy(0);
    for (uint64_t s = 0; s < 900; s++) {
        p.bytes_acked = (s / 10) * 1024;
        sl_watchdog_verdict_t v = sl_watchdog_judge(&CFG, &j, &p, s * S);
        CHECK(v == SL_WATCHDOG_LIVE || v == SL_WATCHDOG_STALLED);
    }
}

static void test_watchdog_judge_paused_peer(void)
{
    /* Live zero-window peer: nothing in flight, probes answered (0/1). */
    sl_watchdog_judge_t j = {0};
    sl_watchdog_probe_t p = busy(7000);
    p.unacked = 0;
    p.snd_wnd = 0;
    CHECK_EQ(sl_watchdog_judge(&CFG, &j, &p, 0), SL_WATCHDOG_LIVE);
    for (uint64_t s = 1; s < 3600; s += 7) {
        p.probes = (uint8_t)(s % 2);
        CHECK_EQ(sl_watchdog_judge(&CFG, &j, &p, s * S), SL_WATCHDOG_PAUSED);
    }
    /* With a limit it is reaped after that long paused, not before. */
    sl_watchdog_config_t lim = CFG;
    lim.paused_limit_ns = 300 * S;
    sl_watchdog_judge_t k = {0};
    p.probes = 0;
    CHECK_EQ(sl_watchdog_judge(&lim, &k, &p, 0), SL_WATCHDOG_LIVE);
    CHECK_EQ(sl_watchdog_judge(&lim, &k, &p, 1 * S), SL_WATCHDOG_PAUSED); /* paused since 1 s */
    CHECK_EQ(sl_watchdog_judge(&lim, &k, &p, 300 * S), SL_WATCHDOG_PAUSED);
    CHECK_EQ(sl_watchdog_judge(&lim, &k, &p, 301 * S), SL_WATCHDOG_REAP_PAUSED);
    /* The window opening again (progress) restarts the paused clock. */
    sl_watchdog_judge_t m = {0};
    CHECK_EQ(sl_watchdog_judge(&lim, &m, &p, 0), SL_WATCHDOG_LIVE);
    CHECK_EQ(sl_watchdog_judge(&lim, &m, &p, 200 * S), SL_WATCHDOG_PAUSED);
    p.bytes_acked += 100;
    CHECK_EQ(sl_watchdog_judge(&lim, &m, &p, 250 * S), SL_WATCHDOG_LIVE);
    CHECK_EQ(sl_watchdog_judge(&lim, &m, &p, 260 * S), SL_WATCHDOG_PAUSED);
    CHECK_EQ(sl_watchdog_judge(&lim, &m, &p, 500 * S), SL_WATCHDOG_PAUSED);
}

static void test_watchdog_judge_dead_behind_zero_window(void)
{
    /* A paused peer that died: its window probes go unanswered. */
    sl_watchdog_judge_t j = {0};
    sl_watchdog_probe_t p = busy(7000);
    p.unacked = 0;
    CHECK_EQ(sl_watchdog_judge(&CFG, &j, &p, 0), SL_WATCHDOG_LIVE);
    CHECK_EQ(sl_watchdog_judge(&CFG, &j, &p, 100 * S), SL_WATCHDOG_PAUSED);
    p.probes = SL_WATCHDOG_PAUSED_PROBES_MAX + 1;
    CHECK_EQ(sl_watchdog_judge(&CFG, &j, &p, 101 * S), SL_WATCHDOG_REAP_STALL);
    /* ... but not before the grace since its last progress. */
    sl_watchdog_judge_t k = {0};
    CHECK_EQ(sl_watchdog_judge(&CFG, &k, &p, 0), SL_WATCHDOG_LIVE);
    CHECK_EQ(sl_watchdog_judge(&CFG, &k, &p, 5 * S), SL_WATCHDOG_STALLED);
    CHECK_EQ(sl_watchdog_judge(&CFG, &k, &p, 30 * S), SL_WATCHDOG_REAP_STALL);
}

static void test_watchdog_judge_closed_needs_two_ticks(void)
{
    sl_watchdog_judge_t j = {0};
    sl_watchdog_probe_t p = busy(10);
    CHECK_EQ(sl_watchdog_judge(&CFG, &j, &p, 0), SL_WATCHDOG_LIVE);
    p.state = 8; /* CLOSE_WAIT */
    CHECK_EQ(sl_watchdog_judge(&CFG, &j, &p, 1 * S), SL_WATCHDOG_LIVE);
    p.state = 1; /* a blip resets the count */
    CHECK_EQ(sl_watchdog_judge(&CFG, &j, &p, 2 * S), SL_WATCHDOG_STALLED);
    p.state = 7; /* CLOSE */
    CHECK_EQ(sl_watchdog_judge(&CFG, &j, &p, 3 * S), SL_WATCHDOG_LIVE);
    CHECK_EQ(sl_watchdog_judge(&CFG, &j, &p, 4 * S), SL_WATCHDOG_REAP_CLOSED);
}

static void test_watchdog_judge_dates_progress_from_last_ack(void)
{
    /* Progress seen at t=10 s whose ack arrived 900 ms earlier: the grace
     * counts from 9.1 s, so the reap comes at 39.1 s, not 40 s. */
    sl_watchdog_judge_t j = {0};
    sl_watchdog_probe_t p = busy(0);
    CHECK_EQ(sl_watchdog_judge(&CFG, &j, &p, 9 * S), SL_WATCHDOG_LIVE);
    p.bytes_acked = 100;
    p.last_ack_recv_ms = 900;
    CHECK_EQ(sl_watchdog_judge(&CFG, &j, &p, 10 * S), SL_WATCHDOG_LIVE);
    CHECK_EQ(j.progress_ns, 9100 * MS);
    CHECK_EQ(sl_watchdog_judge(&CFG, &j, &p, 39100 * MS - 1), SL_WATCHDOG_STALLED);
    CHECK_EQ(sl_watchdog_judge(&CFG, &j, &p, 39100 * MS), SL_WATCHDOG_REAP_STALL);
}

/* ---- real sockets ------------------------------------------------------------ */

static int listener(uint16_t *port)
{
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(l >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    CHECK_EQ(bind(l, (struct sockaddr *)&a, sizeof a), 0);
    CHECK_EQ(listen(l, 4096), 0);
    CHECK_EQ(getsockname(l, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return l;
}

/* A connected loopback pair: *srv is the accepted side. rcvbuf > 0 sets the
 * client's receive buffer before connecting (a small window). */
static void tcp_pair(int l, uint16_t port, int rcvbuf, int *cli, int *srv)
{
    *cli = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(*cli >= 0);
    if (rcvbuf > 0)
        setsockopt(*cli, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK_EQ(connect(*cli, (struct sockaddr *)&a, sizeof a), 0);
    *srv = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    CHECK(*srv >= 0);
}

/* Writes until the kernel refuses more; returns the bytes written. */
static size_t fill(int fd)
{
    static char buf[65536];
    int fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    size_t total = 0;
    for (int i = 0; i < 10000; i++) {
        ssize_t n = send(fd, buf, sizeof buf, MSG_NOSIGNAL);
        if (n <= 0)
            break;
        total += (size_t)n;
    }
    fcntl(fd, F_SETFL, fl);
    return total;
}

static void test_watchdog_probe_zero_window_is_paused(void)
{
    uint16_t port;
    int l = listener(&port), cli, srv;
    tcp_pair(l, port, 4096, &cli, &srv);
    CHECK(fill(srv) > 0);
    /* The client reads nothing: once in-flight bytes are acked its window
     * is 0, bytes wait, nothing is in flight, probes are answered. */
    sl_watchdog_probe_t p;
    sl_watchdog_judge_t j = {0};
    sl_watchdog_verdict_t v = SL_WATCHDOG_LIVE;
    uint64_t t0 = sl_clock_now_ns();
    for (int i = 0; i < 100 && v != SL_WATCHDOG_PAUSED; i++) {
        usleep(20000);
        CHECK_EQ(sl_watchdog_probe_fd(srv, &p), 0);
        v = sl_watchdog_judge(&CFG, &j, &p, sl_clock_now_ns());
    }
    printf("  zero window after %.0f ms: sendq=%u unacked=%u snd_wnd=%u probes=%u\n",
           (double)(sl_clock_now_ns() - t0) / 1e6, p.sendq, p.unacked, p.snd_wnd, p.probes);
    CHECK_EQ(v, SL_WATCHDOG_PAUSED);
    CHECK(p.sendq > 0);
    CHECK_EQ(p.unacked, 0);
    CHECK_EQ(p.state, 1);
    /* Reading it all: progress, then an empty queue. */
    static char buf[65536];
    for (int i = 0; i < 1000; i++) {
        CHECK_EQ(sl_watchdog_probe_fd(srv, &p), 0);
        if (p.sendq == 0)
            break;
        CHECK(recv(cli, buf, sizeof buf, 0) > 0);
    }
    CHECK_EQ(p.sendq, 0);
    CHECK_EQ(sl_watchdog_judge(&CFG, &j, &p, sl_clock_now_ns()), SL_WATCHDOG_IDLE);
    close(cli);
    close(srv);
    close(l);
}

static void test_watchdog_probe_unix_socket_unsupported(void)
{
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    sl_watchdog_probe_t p;
    CHECK_EQ(sl_watchdog_probe_fd(sv[0], &p), -EOPNOTSUPP);
    close(sv[0]);
    close(sv[1]);
}

/* ---- the actor ---------------------------------------------------------------- */

typedef struct owner {
    sl_actor_t a;
    _Atomic uint32_t reaps;
    _Atomic uint32_t reaps_closed;
    _Atomic bool destroyed;
} owner_t;

typedef struct watched {
    sl_watchdog_link_t link;
    sl_msg_t reap_msg;
    int cli, srv;
} watched_t;

static void owner_behavior(sl_actor_t *self, sl_msg_t *msg)
{
    owner_t *o = (owner_t *)self;
    watched_t *w = sl_container_of(msg, watched_t, reap_msg);
    CHECK_EQ(msg->mclass, SL_MSG_CONTROL);
    if (w->link.reap_reason == SL_WATCHDOG_REAP_CLOSED)
        atomic_fetch_add(&o->reaps_closed, 1);
    atomic_fetch_add(&o->reaps, 1);
}

static void owner_destroy(sl_actor_t *self) { atomic_store(&((owner_t *)self)->destroyed, true); }

typedef struct env {
    sl_sched_t *s;
    sl_reactor_t *r;
    sl_watchdog_t *wd;
    owner_t owner;
} env_t;

static void env_up(env_t *e, uint64_t interval_ns)
{
    memset(e, 0, sizeof *e);
    sl_sched_config_t sc = {.workers = 2, .batch = 16, .runq_capacity = 1024};
    CHECK_EQ(sl_sched_create(&sc, &e->s), 0);
    CHECK_EQ(sl_sched_start(e->s), 0);
    sl_reactor_config_t rc = {.sq_entries = 256, .recv_buffers = 16, .recv_buffer_bytes = 4096,
                              .lag_probe_ns = 20 * MS};
    CHECK_EQ(sl_reactor_create(&rc, 0, &e->r), 0);
    CHECK_EQ(sl_reactor_start(e->r), 0);
    sl_watchdog_config_t wc = {.interval_ns = interval_ns, .grace_ns = 10 * S, .paused_limit_ns = 0};
    CHECK_EQ(sl_watchdog_create(&wc, e->s, e->r, &e->wd), 0);
    CHECK(sl_watchdog_enabled(e->wd));
    sl_actor_init(&e->owner.a, e->s, "owner", 16, owner_behavior, owner_destroy);
    sl_watchdog_start(e->wd);
}

static void env_down(env_t *e)
{
    sl_watchdog_stop(e->wd);
    CHECK_EQ(sl_watchdog_wait_stopped(e->wd, 5 * S), 0);
    sl_actor_release(&e->owner.a);
    sl_reactor_destroy(e->r);
    sl_sched_stop(e->s);
    CHECK(atomic_load(&e->owner.destroyed));
    sl_sched_destroy(e->s);
    sl_watchdog_destroy(e->wd);
}

static void watch(env_t *e, watched_t *w)
{
    w->reap_msg = (sl_msg_t){.kind = SL_MSG_KIND_USER, .mclass = SL_MSG_CONTROL};
    sl_watchdog_link_init(e->wd, &w->link, w->srv, &e->owner.a, &w->reap_msg, "test");
    CHECK(w->link._tcp);
    sl_watchdog_sent(e->wd, &w->link);
}

static uint64_t ticks(env_t *e)
{
    sl_watchdog_stats_t st;
    sl_watchdog_stats(e->wd, &st);
    return st.ticks;
}

static void wait_ticks(env_t *e, uint64_t n)
{
    uint64_t want = ticks(e) + n;
    for (int i = 0; i < 2000 && ticks(e) < want; i++)
        usleep(5000);
    CHECK(ticks(e) >= want);
}

/* Many sockets whose peers closed: reaped on the second tick, across
 * several slices, each with its own message; every fd was shut down. */
static void test_watchdog_actor_reaps_closed_peers_in_slices(void)
{
    enum { N = SL_WATCHDOG_SLICE_PROBES * 2 + 100 };
    env_t e;
    env_up(&e, 20 * MS);
    uint16_t port;
    int l = listener(&port);
    watched_t *w = calloc(N, sizeof *w);
    CHECK(w != NULL);
    for (int i = 0; i < N; i++) {
        tcp_pair(l, port, 0, &w[i].cli, &w[i].srv);
        watch(&e, &w[i]);
        close(w[i].cli); /* FIN: the server side goes CLOSE_WAIT */
    }
    for (int i = 0; i < 2000 && atomic_load(&e.owner.reaps) < N; i++)
        usleep(5000);
    CHECK_EQ(atomic_load(&e.owner.reaps), N);
    CHECK_EQ(atomic_load(&e.owner.reaps_closed), N);
    sl_watchdog_stats_t st;
    sl_watchdog_stats(e.wd, &st);
    CHECK_EQ(st.reaped_peer_closed, N);
    CHECK_EQ(st.reaped_send_stall, 0);
    printf("  %d closed peers reaped; tick_ms_max %.2f\n", N, st.tick_ms_max);
    for (int i = 0; i < N; i++) {
        char b;
        CHECK_EQ(send(w[i].srv, &b, 1, MSG_NOSIGNAL), -1); /* shut down for writing */
        CHECK_EQ(errno, EPIPE);
        sl_watchdog_forget(e.wd, &w[i].link);
        close(w[i].srv);
    }
    wait_ticks(&e, 2);
    sl_watchdog_stats(e.wd, &st);
    CHECK_EQ(st.tracked, 0);
    free(w);
    close(l);
    env_down(&e);
}

/* After forget the fd number may be reused at once; the watchdog must not
 * probe, judge or shut down the new socket through the old link. */
static void test_watchdog_forget_guards_fd_reuse(void)
{
    env_t e;
    env_up(&e, 10 * MS);
    uint16_t port;
    int l = listener(&port);
    watched_t w;
    tcp_pair(l, port, 0, &w.cli, &w.srv);
    watch(&e, &w);
    wait_ticks(&e, 2); /* tracked and probed */
    int old_fd = w.srv;
    sl_watchdog_sent(e.wd, &w.link); /* tracked at the moment of forget */
    sl_watchdog_forget(e.wd, &w.link);
    close(w.srv);
    close(w.cli);
    /* A new connection whose peer closed, on the same fd number: a stale
     * probe through the old link would reap it within two ticks. */
    int cli2, srv2;
    tcp_pair(l, port, 0, &cli2, &srv2);
    if (srv2 != old_fd) { /* the client took the number: swap roles */
        CHECK_EQ(cli2, old_fd);
        int t = cli2;
        cli2 = srv2;
        srv2 = t;
    }
    close(cli2);
    wait_ticks(&e, 10);
    CHECK_EQ(atomic_load(&e.owner.reaps), 0);
    char b = 'x';
    CHECK_EQ(send(srv2, &b, 1, MSG_NOSIGNAL), 1); /* not shut down */
    close(srv2);
    close(l);
    env_down(&e);
}

/* ---- cost ------------------------------------------------------------------------ */

static void test_watchdog_probe_cost(void)
{
    /* SL_WATCHDOG_PROBE_SOCKETS measures a larger sweep by hand. */
    const char *env = getenv("SL_WATCHDOG_PROBE_SOCKETS");
    const int N = env && atoi(env) > 0 ? atoi(env) : 3000;
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < 2 * (rlim_t)N + 64) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur < 2 * (rlim_t)N + 64) {
        printf("  skipped: RLIMIT_NOFILE %llu too low\n", (unsigned long long)rl.rlim_cur);
        return;
    }
    uint16_t port;
    int l = listener(&port);
    int *cli = calloc(N, sizeof *cli), *srv = calloc(N, sizeof *srv);
    CHECK(cli && srv);
    for (int i = 0; i < N; i++) {
        tcp_pair(l, port, 0, &cli[i], &srv[i]);
        CHECK_EQ(send(srv[i], "x", 1, 0), 1);
    }
    sl_watchdog_probe_t p;
    double best = 1e18;
    for (int round = 0; round < 5; round++) {
        uint64_t t0 = sl_clock_now_ns();
        for (int i = 0; i < N; i++)
            CHECK_EQ(sl_watchdog_probe_fd(srv[i], &p), 0);
        double per = (double)(sl_clock_now_ns() - t0) / N;
        best = per < best ? per : best;
    }
    printf("  probe (SIOCOUTQ + TCP_INFO) over %d sockets: %.2f us per socket, a sweep %.1f ms; "
           "at that rate 10k: %.1f ms, 100k: %.0f ms\n", N, best / 1e3, best * N / 1e6,
           best * 1e4 / 1e6, best * 1e5 / 1e6);
    CHECK(best < 100e3); /* generous: sanitizer builds on a busy machine */
    for (int i = 0; i < N; i++) {
        close(cli[i]);
        close(srv[i]);
    }
    free(cli);
    free(srv);
    close(l);
}

int main(void)
{
    sl_log_set_level(SL_LOG_ERROR); /* a reap line per socket is noise here */
    test_watchdog_judge_progress_and_stall();
    test_watchdog_judge_trickle_is_never_reaped();
    test_watchdog_judge_paused_peer();
    test_watchdog_judge_dead_behind_zero_window();
    test_watchdog_judge_closed_needs_two_ticks();
    test_watchdog_judge_dates_progress_from_last_ack();
    test_watchdog_probe_zero_window_is_paused();
    test_watchdog_probe_unix_socket_unsupported();
    test_watchdog_actor_reaps_closed_peers_in_slices();
    test_watchdog_forget_guards_fd_reuse();
    test_watchdog_probe_cost();
    printf("watchdog_test: ok\n");
    return 0;
}
