/*
 * Watchdog actor. See watchdog.h for the rules, the guard against fd
 * reuse and the cost per tick.
 *
 * The tracked set is two intrusive lists under one mutex: lists[cur] holds
 * the sockets still to probe on the tick in progress, lists[cur ^ 1] the
 * ones probed (and the newly tracked). A tick swaps the roles and probes
 * slice by slice; forget unlinks from whichever list holds the link, so no
 * cursor into a list ever outlives the lock.
 *
 * Tick: TIMEOUT (on reactor r) -> slice -> SLICE message to ourselves (the
 * worker is yielded between slices) -> ... -> last slice -> TIMEOUT. The
 * next deadline is kept on a fixed grid, so a slow sweep does not stretch
 * the interval.
 */
#include "actors/watchdog.h"

#include <errno.h>
#include <linux/sockios.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "runtime/clock.h"
#include "runtime/limits.h"
#include "runtime/log.h"

enum { MSG_SLICE = SL_MSG_KIND_USER, MSG_STOP };

/* tcpi_state values (include/net/tcp_states.h; not in the uapi headers). */
#define TCPS_ESTABLISHED 1

/* A reap, copied out of the lock for its log line. */
typedef struct reap_note {
    char peer[64];
    sl_watchdog_verdict_t why;
    sl_watchdog_probe_t p;
    uint64_t no_progress_ms;
} reap_note_t;

struct sl_watchdog {
    sl_actor_t a;
    sl_watchdog_config_t cfg;
    sl_reactor_t *r;
    bool enabled;
    /* Guarded by lock. */
    pthread_mutex_t lock;
    sl_watchdog_link_t *lists[2];
    uint32_t cur;                /* lists[cur]: to probe on this tick */
    uint64_t ntracked;
    /* Actor state (its own thread only). */
    sl_op_t timer, cancel;
    uint32_t ops_inflight;
    bool slice_queued, stopping, released;
    sl_msg_t slice_msg, stop_msg;
    atomic_bool stop_sent; /* stop_msg is sent at most once */
    uint64_t next_tick_ns, tick_start_ns;
    uint64_t tick_paused, tick_stalled;
    reap_note_t *notes;          /* SL_WATCHDOG_SLICE_PROBES entries */
    _Atomic bool stopped;        /* set by destroy cb; pairs with wait_stopped */
    /* Stats (relaxed atomics: written here, read by the monitor). */
    _Atomic uint64_t st_tracked, st_paused, st_stalled, st_ticks, st_probes, st_errors;
    _Atomic uint64_t st_tick_us_last, st_tick_us_max;
    _Atomic uint64_t st_reaped[3]; /* send_stall, peer_closed, paused */
};

/* ---- rules ------------------------------------------------------------ */

static sl_watchdog_verdict_t progress(sl_watchdog_judge_t *j, const sl_watchdog_probe_t *p,
                                      uint64_t now_ns)
{
    /* The ack that carried the progress arrived last_ack_recv ago at most:
     * dating progress from it (not from this tick) keeps the reap within
     * grace + one interval of the peer's last sign of life. */
    uint64_t at = now_ns;
    uint64_t ago = (uint64_t)p->last_ack_recv_ms * SL_NS_PER_MS;
    if (j->primed && p->bytes_acked != j->acked && ago < now_ns && now_ns - ago > j->progress_ns)
        at = now_ns - ago;
    j->primed = true;
    j->acked = p->bytes_acked;
    j->progress_ns = at;
    j->paused_since_ns = 0;
    return p->sendq == 0 ? SL_WATCHDOG_IDLE : SL_WATCHDOG_LIVE;
}

sl_watchdog_verdict_t sl_watchdog_judge(const sl_watchdog_config_t *cfg, sl_watchdog_judge_t *j,
                                        const sl_watchdog_probe_t *p, uint64_t now_ns)
{
    if (p->state != TCPS_ESTABLISHED) {
        if (++j->closed_ticks >= SL_WATCHDOG_CLOSED_TICKS)
            return SL_WATCHDOG_REAP_CLOSED;
        return SL_WATCHDOG_LIVE;
    }
    j->closed_ticks = 0;
    if (!j->primed || p->sendq == 0 || p->bytes_acked != j->acked)
        return progress(j, p, now_ns);
    /* Bytes wait and none were acked since progress_ns. Nothing in flight
     * means the peer's window is closed; answered window probes mean a
     * live peer behind it. */
    if (p->unacked == 0 && p->probes <= SL_WATCHDOG_PAUSED_PROBES_MAX) {
        if (j->paused_since_ns == 0)
            j->paused_since_ns = now_ns;
        if (cfg->paused_limit_ns != 0 && now_ns - j->paused_since_ns >= cfg->paused_limit_ns)
            return SL_WATCHDOG_REAP_PAUSED;
        return SL_WATCHDOG_PAUSED;
    }
    j->paused_since_ns = 0;
    if (now_ns - j->progress_ns >= cfg->grace_ns)
        return SL_WATCHDOG_REAP_STALL;
    return SL_WATCHDOG_STALLED;
}

const char *sl_watchdog_verdict_name(sl_watchdog_verdict_t v)
{
    switch (v) {
    case SL_WATCHDOG_IDLE: return "idle";
    case SL_WATCHDOG_LIVE: return "live";
    case SL_WATCHDOG_STALLED: return "stalled";
    case SL_WATCHDOG_PAUSED: return "paused";
    case SL_WATCHDOG_REAP_STALL: return "send_stall";
    case SL_WATCHDOG_REAP_CLOSED: return "peer_closed";
    case SL_WATCHDOG_REAP_PAUSED: return "paused_limit";
    }
    return "unknown";
}

int sl_watchdog_probe_fd(int fd, sl_watchdog_probe_t *out)
{
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    memset(&ti, 0, sizeof ti);
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0)
        return errno == ENOPROTOOPT ? -EOPNOTSUPP : -errno;
    int q = 0;
    if (ioctl(fd, SIOCOUTQ, &q) != 0)
        return -errno;
    memset(out, 0, sizeof *out);
    out->sendq = q > 0 ? (uint32_t)q : 0;
    out->state = ti.tcpi_state;
    out->probes = ti.tcpi_probes;
    out->backoff = ti.tcpi_backoff;
    out->retransmits = ti.tcpi_retransmits;
    out->unacked = ti.tcpi_unacked;
    out->rtt_us = ti.tcpi_rtt;
    out->last_ack_recv_ms = ti.tcpi_last_ack_recv;
    /* Fields newer kernels add are zero when the kernel wrote less. */
    out->bytes_acked = ti.tcpi_bytes_acked;
    out->notsent = ti.tcpi_notsent_bytes;
    if (len >= offsetof(struct tcp_info, tcpi_snd_wnd) + sizeof ti.tcpi_snd_wnd)
        out->snd_wnd = ti.tcpi_snd_wnd;
    return 0;
}

/* ---- the tracked lists (caller holds wd->lock) ----------------------------- */

static void list_push(sl_watchdog_t *wd, sl_watchdog_link_t *l, uint32_t idx)
{
    l->_prev = NULL;
    l->_next = wd->lists[idx];
    if (l->_next)
        l->_next->_prev = l;
    wd->lists[idx] = l;
    l->_list = (uint8_t)(idx + 1);
}

static void list_remove(sl_watchdog_t *wd, sl_watchdog_link_t *l)
{
    if (l->_list == 0)
        return;
    sl_watchdog_link_t **head = &wd->lists[l->_list - 1];
    if (l->_prev)
        l->_prev->_next = l->_next;
    else
        *head = l->_next;
    if (l->_next)
        l->_next->_prev = l->_prev;
    l->_next = l->_prev = NULL;
    l->_list = 0;
}

void sl_watchdog_link_init(sl_watchdog_t *wd, sl_watchdog_link_t *l, int fd, sl_actor_t *owner,
                           sl_msg_t *reap_msg, const char *peer)
{
    memset(l, 0, sizeof *l);
    l->fd = fd;
    l->owner = owner;
    l->reap_msg = reap_msg;
    l->peer = peer;
    int proto = 0;
    socklen_t len = sizeof proto;
    l->_tcp = wd && wd->enabled && getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &len) == 0 &&
              proto == IPPROTO_TCP;
}

void sl_watchdog__track(sl_watchdog_t *wd, sl_watchdog_link_t *l)
{
    pthread_mutex_lock(&wd->lock);
    if (l->_list == 0 && !l->_forgotten && !l->_reaped && !l->_unprobeable) {
        memset(&l->_judge, 0, sizeof l->_judge);
        list_push(wd, l, wd->cur ^ 1); /* probed from the next tick on */
        wd->ntracked++;
    }
    atomic_store(&l->_tracked, true);
    pthread_mutex_unlock(&wd->lock);
}

void sl_watchdog_forget(sl_watchdog_t *wd, sl_watchdog_link_t *l)
{
    if (!wd)
        return;
    pthread_mutex_lock(&wd->lock);
    if (l->_list != 0) {
        list_remove(wd, l);
        wd->ntracked--;
    }
    l->_forgotten = true;
    atomic_store(&l->_tracked, true); /* the fast path never locks again */
    pthread_mutex_unlock(&wd->lock);
}

int sl_watchdog_probe_link(sl_watchdog_t *wd, sl_watchdog_link_t *l, sl_watchdog_probe_t *out,
                           sl_watchdog_verdict_t *verdict, uint64_t *no_progress_ns)
{
    pthread_mutex_lock(&wd->lock);
    int rc = l->_forgotten ? -EBADF : sl_watchdog_probe_fd(l->fd, out);
    *verdict = (sl_watchdog_verdict_t)atomic_load_explicit(&l->verdict_last, memory_order_relaxed);
    uint64_t now = sl_clock_now_ns();
    bool queued = l->_list != 0 && l->_judge.primed;
    *no_progress_ns = queued && now > l->_judge.progress_ns ? now - l->_judge.progress_ns : 0;
    pthread_mutex_unlock(&wd->lock);
    return rc;
}

/* ---- the sweep ---------------------------------------------------------- */

/* Leaves the tracked set unless the owner sent meanwhile (see the seq_cst
 * note at sl_watchdog_sent). Returns true when it left. */
static bool untrack(sl_watchdog_t *wd, sl_watchdog_link_t *l)
{
    atomic_store(&l->_tracked, false);
    if (atomic_load(&l->_sent)) {
        atomic_store(&l->_tracked, true);
        return false;
    }
    list_remove(wd, l);
    wd->ntracked--;
    memset(&l->_judge, 0, sizeof l->_judge);
    return true;
}

static void reap(sl_watchdog_t *wd, sl_watchdog_link_t *l, sl_watchdog_verdict_t v,
                 const sl_watchdog_probe_t *p, uint64_t now, reap_note_t *note)
{
    /* Completes the owner's in-flight recv (0) and send (-EPIPE) at once;
     * the fd stays open until the owner closes it after forget. */
    shutdown(l->fd, SHUT_RDWR);
    list_remove(wd, l);
    wd->ntracked--;
    l->_reaped = true;
    l->reap_reason = (uint8_t)v;
    snprintf(note->peer, sizeof note->peer, "%s", l->peer ? l->peer : "?");
    note->why = v;
    note->p = *p;
    note->no_progress_ms = l->_judge.primed ? (now - l->_judge.progress_ns) / SL_NS_PER_MS : 0;
    int idx = v == SL_WATCHDOG_REAP_STALL ? 0 : v == SL_WATCHDOG_REAP_CLOSED ? 1 : 2;
    atomic_fetch_add_explicit(&wd->st_reaped[idx], 1, memory_order_relaxed);
    int rc = sl_actor_send(l->owner, l->reap_msg);
    sl_assert(rc == 0); /* CONTROL: never refused */
}

/* Probes one link; returns true when it was reaped (note filled). */
static bool visit(sl_watchdog_t *wd, sl_watchdog_link_t *l, uint64_t now, reap_note_t *note)
{
    bool sent = atomic_exchange(&l->_sent, false);
    sl_watchdog_probe_t p;
    int rc = sl_watchdog_probe_fd(l->fd, &p);
    atomic_fetch_add_explicit(&wd->st_probes, 1, memory_order_relaxed);
    if (rc != 0) {
        atomic_fetch_add_explicit(&wd->st_errors, 1, memory_order_relaxed);
        l->_unprobeable = true; /* cannot be judged: never tracked again */
        list_remove(wd, l);
        wd->ntracked--;
        return false;
    }
    sl_watchdog_verdict_t v = sl_watchdog_judge(&wd->cfg, &l->_judge, &p, now);
    atomic_store_explicit(&l->sendq_last, p.sendq, memory_order_relaxed);
    atomic_store_explicit(&l->unacked_last, p.sendq > p.notsent ? p.sendq - p.notsent : 0,
                          memory_order_relaxed);
    atomic_store_explicit(&l->verdict_last, (uint8_t)v, memory_order_relaxed);
    switch (v) {
    case SL_WATCHDOG_REAP_STALL:
    case SL_WATCHDOG_REAP_CLOSED:
    case SL_WATCHDOG_REAP_PAUSED:
        reap(wd, l, v, &p, now, note);
        return true;
    case SL_WATCHDOG_IDLE:
        if (!sent && untrack(wd, l))
            return false;
        break;
    case SL_WATCHDOG_PAUSED:
        wd->tick_paused++;
        break;
    case SL_WATCHDOG_STALLED:
        wd->tick_stalled++;
        break;
    case SL_WATCHDOG_LIVE:
        break;
    }
    list_remove(wd, l);
    list_push(wd, l, wd->cur ^ 1);
    return false;
}

static void log_reap(const reap_note_t *n)
{
    const sl_watchdog_probe_t *p = &n->p;
    sl_warn("watchdog reaped peer",
            "peer=%s reason=%s no_progress_ms=%llu sendq=%u unacked=%u notsent=%u snd_wnd=%u "
            "probes=%u backoff=%u retransmits=%u tcp_state=%u last_ack_ms=%u rtt_us=%u "
            "bytes_acked=%llu",
            n->peer, sl_watchdog_verdict_name(n->why), (unsigned long long)n->no_progress_ms,
            p->sendq, p->unacked, p->notsent, p->snd_wnd, p->probes, p->backoff, p->retransmits,
            p->state, p->last_ack_recv_ms, p->rtt_us, (unsigned long long)p->bytes_acked);
}

static void arm_timer(sl_watchdog_t *wd)
{
    uint64_t now = sl_clock_now_ns();
    wd->next_tick_ns += wd->cfg.interval_ns;
    if (wd->next_tick_ns <= now) /* fell behind: restart the grid */
        wd->next_tick_ns = now + wd->cfg.interval_ns;
    wd->timer.kind = SL_OP_TIMEOUT;
    wd->timer.timeout_ns = wd->next_tick_ns - now;
    wd->timer.owner = &wd->a;
    wd->ops_inflight++;
    sl_reactor_submit(wd->r, &wd->timer);
}

static void finish_tick(sl_watchdog_t *wd)
{
    uint64_t us = (sl_clock_now_ns() - wd->tick_start_ns) / 1000;
    atomic_store_explicit(&wd->st_tick_us_last, us, memory_order_relaxed);
    if (us > atomic_load_explicit(&wd->st_tick_us_max, memory_order_relaxed))
        atomic_store_explicit(&wd->st_tick_us_max, us, memory_order_relaxed);
    atomic_store_explicit(&wd->st_paused, wd->tick_paused, memory_order_relaxed);
    atomic_store_explicit(&wd->st_stalled, wd->tick_stalled, memory_order_relaxed);
    atomic_fetch_add_explicit(&wd->st_ticks, 1, memory_order_relaxed);
    arm_timer(wd);
}

/* Probes up to one slice of lists[cur]; queues the next slice or ends the
 * tick. */
static void run_slice(sl_watchdog_t *wd)
{
    uint64_t now = sl_clock_now_ns();
    uint32_t nreaped = 0;
    pthread_mutex_lock(&wd->lock);
    for (uint32_t i = 0; i < SL_WATCHDOG_SLICE_PROBES && wd->lists[wd->cur]; i++) {
        if (visit(wd, wd->lists[wd->cur], now, &wd->notes[nreaped]))
            nreaped++;
    }
    bool more = wd->lists[wd->cur] != NULL;
    atomic_store_explicit(&wd->st_tracked, wd->ntracked, memory_order_relaxed);
    pthread_mutex_unlock(&wd->lock);
    for (uint32_t i = 0; i < nreaped; i++)
        log_reap(&wd->notes[i]);
    if (more) {
        wd->slice_queued = true;
        int rc = sl_actor_send(&wd->a, &wd->slice_msg);
        sl_assert(rc == 0);
    } else {
        finish_tick(wd);
    }
}

static void start_tick(sl_watchdog_t *wd)
{
    wd->tick_start_ns = sl_clock_now_ns();
    wd->tick_paused = wd->tick_stalled = 0;
    pthread_mutex_lock(&wd->lock);
    sl_assert(wd->lists[wd->cur] == NULL); /* the previous sweep finished */
    wd->cur ^= 1;
    pthread_mutex_unlock(&wd->lock);
    run_slice(wd);
}

static void maybe_release(sl_watchdog_t *wd)
{
    if (wd->stopping && wd->ops_inflight == 0 && !wd->slice_queued && !wd->released) {
        wd->released = true;
        sl_actor_release(&wd->a); /* our own reference; the destroy cb runs last */
    }
}

static void behavior(sl_actor_t *self, sl_msg_t *msg)
{
    sl_watchdog_t *wd = (sl_watchdog_t *)self;
    switch (msg->kind) {
    case SL_MSG_KIND_IO:
        wd->ops_inflight--;
        if (sl_op_from_msg(msg) == &wd->timer && !wd->stopping)
            start_tick(wd);
        break;
    case MSG_SLICE:
        wd->slice_queued = false;
        if (!wd->stopping)
            run_slice(wd);
        break;
    case MSG_STOP:
        wd->stopping = true;
        if (wd->ops_inflight > 0) { /* the timer: cancel it rather than wait */
            wd->cancel.kind = SL_OP_CANCEL;
            wd->cancel.target = &wd->timer;
            wd->cancel.owner = &wd->a;
            wd->ops_inflight++;
            sl_reactor_submit(wd->r, &wd->cancel);
        }
        break;
    default:
        break;
    }
    maybe_release(wd);
}

static void on_destroy(sl_actor_t *self)
{
    sl_watchdog_t *wd = (sl_watchdog_t *)self;
    atomic_store_explicit(&wd->stopped, true, memory_order_release);
}

/* The kernel must answer both probes on a TCP socket. */
static bool probes_supported(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    sl_watchdog_probe_t p;
    int rc = sl_watchdog_probe_fd(fd, &p);
    close(fd);
    return rc == 0;
}

int sl_watchdog_create(const sl_watchdog_config_t *cfg, sl_sched_t *sched, sl_reactor_t *r,
                       sl_watchdog_t **out)
{
    sl_watchdog_t *wd = calloc(1, sizeof *wd);
    if (!wd)
        return -ENOMEM;
    wd->notes = calloc(SL_WATCHDOG_SLICE_PROBES, sizeof *wd->notes);
    if (!wd->notes) {
        free(wd);
        return -ENOMEM;
    }
    wd->cfg = *cfg;
    wd->r = r;
    pthread_mutex_init(&wd->lock, NULL);
    wd->slice_msg = (sl_msg_t){.kind = MSG_SLICE, .mclass = SL_MSG_CONTROL};
    wd->stop_msg = (sl_msg_t){.kind = MSG_STOP, .mclass = SL_MSG_CONTROL};
    sl_actor_init(&wd->a, sched, "watchdog", 16, behavior, on_destroy);
    if (cfg->interval_ns == 0) {
        sl_info("watchdog off", "reason=interval_0");
    } else if (!probes_supported()) {
        sl_warn("watchdog off", "reason=\"TCP_INFO or SIOCOUTQ unsupported\"");
    } else {
        wd->enabled = true;
        sl_info("watchdog on", "interval_ms=%llu dead_peer_grace_ms=%llu paused_peer_limit_ms=%llu",
                (unsigned long long)(cfg->interval_ns / SL_NS_PER_MS),
                (unsigned long long)(cfg->grace_ns / SL_NS_PER_MS),
                (unsigned long long)(cfg->paused_limit_ns / SL_NS_PER_MS));
    }
    *out = wd;
    return 0;
}

void sl_watchdog_start(sl_watchdog_t *wd)
{
    if (!wd->enabled)
        return;
    wd->next_tick_ns = sl_clock_now_ns();
    arm_timer(wd);
}

void sl_watchdog_stop(sl_watchdog_t *wd)
{
    /* acq_rel: pairs with itself in a second caller (sends nothing). */
    if (atomic_exchange_explicit(&wd->stop_sent, true, memory_order_acq_rel))
        return;
    int rc = sl_actor_send(&wd->a, &wd->stop_msg);
    sl_assert(rc == 0);
}

int sl_watchdog_wait_stopped(sl_watchdog_t *wd, uint64_t timeout_ns)
{
    uint64_t deadline = sl_clock_now_ns() + timeout_ns;
    while (!atomic_load_explicit(&wd->stopped, memory_order_acquire)) {
        if (sl_clock_now_ns() > deadline)
            return -ETIMEDOUT;
        usleep(1000);
    }
    return 0;
}

void sl_watchdog_destroy(sl_watchdog_t *wd)
{
    if (!wd)
        return;
    pthread_mutex_destroy(&wd->lock);
    free(wd->notes);
    free(wd);
}

bool sl_watchdog_enabled(const sl_watchdog_t *wd) { return wd && wd->enabled; }

#define LD(x) atomic_load_explicit(&wd->x, memory_order_relaxed)

void sl_watchdog_stats(sl_watchdog_t *wd, sl_watchdog_stats_t *out)
{
    memset(out, 0, sizeof *out);
    out->enabled = wd->enabled;
    out->interval_ms = wd->cfg.interval_ns / SL_NS_PER_MS;
    out->grace_ms = wd->cfg.grace_ns / SL_NS_PER_MS;
    out->paused_limit_ms = wd->cfg.paused_limit_ns / SL_NS_PER_MS;
    out->tracked = LD(st_tracked);
    out->paused = LD(st_paused);
    out->stalled = LD(st_stalled);
    out->ticks = LD(st_ticks);
    out->probes = LD(st_probes);
    out->probe_errors = LD(st_errors);
    out->tick_ms_last = (double)LD(st_tick_us_last) / 1000.0;
    out->tick_ms_max = (double)LD(st_tick_us_max) / 1000.0;
    out->reaped_send_stall = LD(st_reaped[0]);
    out->reaped_peer_closed = LD(st_reaped[1]);
    out->reaped_paused = LD(st_reaped[2]);
}
