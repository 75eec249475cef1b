/*
 * The watchdog actor: finds half-open peers -- clients that vanished
 * without a FIN or RST (power loss, NAT timeout, a cable pulled) -- and
 * reaps them, while never reaping a live client that is merely slow,
 * paused or trickling.
 *
 * What it watches. Only sockets with unacknowledged output: a connection
 * registers itself (sl_watchdog_sent) whenever it hands bytes to the
 * kernel, and the watchdog drops it from the tracked set on the first tick
 * that finds the kernel send queue empty with no send since the tick
 * before. Idle connections cost nothing.
 *
 * Each tick (--watchdog-interval, default 1 s) probes every tracked socket
 * once: ioctl(SIOCOUTQ) (bytes not yet acked by the peer, sent or not) and
 * getsockopt(TCP_INFO) (tcpi_state, tcpi_bytes_acked, tcpi_unacked,
 * tcpi_probes, tcpi_snd_wnd, tcpi_last_ack_recv, ...). The rules
 * (sl_watchdog_judge):
 *
 *   progress  tcpi_bytes_acked advanced, or the send queue is empty: the
 *             peer is alive; the no-progress clock restarts.
 *   send stall  the queue stayed positive with no acked byte for
 *             --dead-peer-grace (default 30 s) and the peer is not paused:
 *             reaped (reason send_stall).
 *   paused    nothing in flight (tcpi_unacked 0) while bytes wait: the
 *             peer's receive window is closed. A live paused peer answers
 *             the kernel's window probes, which resets tcpi_probes to 0; if
 *             more than SL_WATCHDOG_PAUSED_PROBES_MAX probes in a row went
 *             unanswered it is dead, and the send-stall rule applies. A
 *             live paused peer is kept; --paused-peer-limit (default 0:
 *             forever) reaps it after that long paused (reason paused_limit,
 *             counted as reaped_paused).
 *             A stopped (SIGSTOP) client is a paused peer: its kernel acks
 *             until its receive buffer is full, then advertises a zero
 *             window and answers the probes. (An idle HTTP/2 connection
 *             of a stopped client is the PING backstop's: conn_guard.c.)
 *   closed    the socket is not ESTABLISHED on SL_WATCHDOG_CLOSED_TICKS
 *             ticks in a row (the peer sent FIN or RST while we were not
 *             reading): reaped (reason peer_closed). One tick is not
 *             enough: a normal close is the connection's own to handle.
 *
 * Reap: shutdown(fd, SHUT_RDWR) from the watchdog -- which completes the
 * connection's in-flight io_uring recv and send at once -- plus the
 * connection's preallocated CONTROL message; the connection then tears
 * down and releases its subscriptions. One logfmt line names the peer,
 * the reason and the figures.
 *
 * The fd-reuse guard: the connection closes its fd through the reactor.
 * Before it submits that close it calls sl_watchdog_forget, which takes
 * the watchdog lock; every probe and shutdown happens under the same lock
 * and only on links not yet forgotten. So no syscall of the watchdog ever
 * reaches an fd number that was closed (and maybe reused).
 *
 * Cost per tick: two syscalls per tracked socket, 3-6 us together on the
 * project's 2-core machine (measured by tests/actors/watchdog_test.c), in
 * slices of
 * SL_WATCHDOG_SLICE_PROBES with the worker yielded between slices; the lock
 * is held for one slice at most. 10k tracked sockets: 30-60 ms of one
 * worker per tick (3-6 % at the default 1 s interval); 100k: 0.3-0.6 s per
 * tick -- raise --watchdog-interval to 5 s there (and the grace with it).
 * Only sockets with unacked output are tracked: idle connections, and
 * streaming ones whose peer acked everything by the tick, cost nothing.
 *
 * Off, with a log line, when the interval is 0 or the kernel lacks
 * TCP_INFO/SIOCOUTQ; sockets that are not TCP (unix sockets) are never
 * tracked.
 */
#ifndef SL_ACTORS_WATCHDOG_H
#define SL_ACTORS_WATCHDOG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "runtime/actor.h"
#include "runtime/reactor.h"

typedef struct sl_watchdog sl_watchdog_t;

typedef struct sl_watchdog_config {
    uint64_t interval_ns;     /* tick; 0: off */
    uint64_t grace_ns;        /* --dead-peer-grace */
    uint64_t paused_limit_ns; /* --paused-peer-limit; 0: paused peers are kept */
} sl_watchdog_config_t;

/* One probe of a socket. */
typedef struct sl_watchdog_probe {
    uint32_t sendq;            /* SIOCOUTQ: bytes in the kernel not acked */
    uint8_t state;             /* tcpi_state (TCP_ESTABLISHED = 1) */
    uint8_t probes;            /* tcpi_probes: unanswered window/keepalive probes */
    uint8_t backoff;           /* tcpi_backoff */
    uint8_t retransmits;       /* tcpi_retransmits */
    uint32_t unacked;          /* tcpi_unacked: segments in flight */
    uint32_t notsent;          /* tcpi_notsent_bytes */
    uint32_t snd_wnd;          /* tcpi_snd_wnd: peer's window (0 when unknown) */
    uint32_t rtt_us;           /* tcpi_rtt */
    uint32_t last_ack_recv_ms; /* tcpi_last_ack_recv */
    uint64_t bytes_acked;      /* tcpi_bytes_acked */
} sl_watchdog_probe_t;

/* What the rules concluded about one socket on one tick. */
typedef enum sl_watchdog_verdict {
    SL_WATCHDOG_IDLE = 0,      /* nothing queued: may leave the tracked set */
    SL_WATCHDOG_LIVE,          /* queued, making progress (or too early to say) */
    SL_WATCHDOG_STALLED,       /* queued, no progress yet within the grace */
    SL_WATCHDOG_PAUSED,        /* live peer with a closed window */
    SL_WATCHDOG_REAP_STALL,
    SL_WATCHDOG_REAP_CLOSED,
    SL_WATCHDOG_REAP_PAUSED,
} sl_watchdog_verdict_t;

/* Per-socket memory of the rules. Zeroed = nothing seen yet. */
typedef struct sl_watchdog_judge {
    bool primed;
    uint8_t closed_ticks;
    uint64_t acked;            /* bytes_acked at the last progress */
    uint64_t progress_ns;      /* when progress was last seen */
    uint64_t paused_since_ns;  /* 0: not paused */
} sl_watchdog_judge_t;

/* Applies the rules above to probe p taken at now_ns, updating j. Pure
 * (no syscall); exported for tests. */
sl_watchdog_verdict_t sl_watchdog_judge(const sl_watchdog_config_t *cfg, sl_watchdog_judge_t *j,
                                        const sl_watchdog_probe_t *p, uint64_t now_ns);
/* "send_stall", "peer_closed", "paused", "live", ...; never NULL. */
const char *sl_watchdog_verdict_name(sl_watchdog_verdict_t v);

/* Probes fd now (two syscalls). Returns 0 or -errno (-EOPNOTSUPP for a
 * socket that is not TCP). The caller guarantees fd is open: see
 * sl_watchdog_probe_link for sockets owned by connections. Any thread. */
int sl_watchdog_probe_fd(int fd, sl_watchdog_probe_t *out);

/* A watched socket, embedded in its owner (the connection). Fields with a
 * leading '_' belong to the watchdog (guarded by its lock unless atomic). */
typedef struct sl_watchdog_link {
    struct sl_watchdog_link *_next, *_prev;
    uint8_t _list;             /* 0 none, 1 to probe this tick, 2 probed */
    bool _forgotten;           /* owner is closing the fd: never touch it */
    bool _reaped;              /* reap sent: not tracked again */
    bool _unprobeable;         /* a probe failed: not tracked again */
    bool _tcp;                 /* TCP socket: can be probed (set once, at init) */
    _Atomic bool _tracked;     /* in a list (hint for the owner's fast path) */
    _Atomic bool _sent;        /* owner handed bytes to the kernel since the last probe */
    int fd;                    /* owner's socket (set by link_init) */
    uint8_t reap_reason;       /* sl_watchdog_verdict_t; read by the owner on reap_msg */
    sl_actor_t *owner;         /* receives reap_msg (borrowed: alive until forget) */
    sl_msg_t *reap_msg;        /* owner's preallocated CONTROL message */
    const char *peer;          /* owner's "HOST:PORT" text, for the log */
    sl_watchdog_judge_t _judge;
    /* Last probe, for /debug/connections ranking (relaxed; watchdog writes). */
    _Atomic uint32_t sendq_last;
    _Atomic uint32_t unacked_last;  /* bytes sent, not acked (sendq - notsent) */
    _Atomic uint8_t verdict_last;
} sl_watchdog_link_t;

typedef struct sl_watchdog_stats {
    bool enabled;
    uint64_t interval_ms, grace_ms, paused_limit_ms;
    uint64_t tracked;          /* sockets in the tracked set now */
    uint64_t paused;           /* judged paused on the last tick */
    uint64_t stalled;          /* queued without progress on the last tick */
    uint64_t ticks;
    uint64_t probes;           /* sockets probed, total */
    uint64_t probe_errors;
    double tick_ms_last, tick_ms_max;
    uint64_t reaped_send_stall, reaped_peer_closed, reaped_paused;
} sl_watchdog_stats_t;

/* Creates the watchdog (disabled when cfg->interval_ns is 0 or the kernel
 * lacks the probes; it logs which). Its timer runs on reactor r. Returns 0
 * or -ENOMEM. Main thread. */
int sl_watchdog_create(const sl_watchdog_config_t *cfg, sl_sched_t *sched, sl_reactor_t *r,
                       sl_watchdog_t **out);
/* Arms the first tick (no-op when disabled). */
void sl_watchdog_start(sl_watchdog_t *wd);
/* Stops ticking (cancels the pending timer). sl_watchdog_wait_stopped
 * waits (main thread, bounded by timeout_ns) until the actor let go of
 * everything; returns 0 or -ETIMEDOUT. Links may still call sent/forget
 * afterwards: they only take the lock. */
void sl_watchdog_stop(sl_watchdog_t *wd);
int sl_watchdog_wait_stopped(sl_watchdog_t *wd, uint64_t timeout_ns);
/* Frees the watchdog once no owner can call it any more (after the
 * scheduler stopped). Main thread. */
void sl_watchdog_destroy(sl_watchdog_t *wd);
bool sl_watchdog_enabled(const sl_watchdog_t *wd);
void sl_watchdog_stats(sl_watchdog_t *wd, sl_watchdog_stats_t *out);

/* Initialises l for the owner's socket fd (borrowed until forget). reap_msg
 * must be a CONTROL message the owner handles by closing; peer is borrowed
 * for as long as the link. The socket is watched only when wd is enabled
 * and fd is TCP. wd may be NULL. Owner's thread. */
void sl_watchdog_link_init(sl_watchdog_t *wd, sl_watchdog_link_t *l, int fd, sl_actor_t *owner,
                           sl_msg_t *reap_msg, const char *peer);

/* Slow path of sl_watchdog_sent (takes the lock). */
void sl_watchdog__track(sl_watchdog_t *wd, sl_watchdog_link_t *l);

/* The owner handed bytes to the kernel (a send was submitted). One atomic
 * store and one load when the socket is tracked already; the lock otherwise
 * (at most once per tick per socket). wd may be NULL. Owner's thread. */
static inline void sl_watchdog_sent(sl_watchdog_t *wd, sl_watchdog_link_t *l)
{
    if (!wd || !l->_tcp)
        return;
    /* seq_cst pair with the watchdog's untrack: it stores _tracked = false
     * and then reloads _sent, so either it sees this store or we see its
     * false and re-track ourselves. */
    atomic_store(&l->_sent, true);
    if (!atomic_load(&l->_tracked))
        sl_watchdog__track(wd, l);
}

/* The owner is about to close its fd: after this returns the watchdog
 * never touches the fd or the link again. Call exactly once, before
 * submitting the close. wd may be NULL. Owner's thread. */
void sl_watchdog_forget(sl_watchdog_t *wd, sl_watchdog_link_t *l);

/* Probes the link's socket unless it was forgotten. Returns 0, -EBADF
 * (forgotten: the fd may be gone) or -errno. For /debug/connections; the
 * caller keeps the owner alive (a reference). Any thread. */
int sl_watchdog_probe_link(sl_watchdog_t *wd, sl_watchdog_link_t *l, sl_watchdog_probe_t *out,
                           sl_watchdog_verdict_t *verdict, uint64_t *no_progress_ns);

#endif
