/*
 * The server: configuration, scheduler, reactors, listeners, the registry
 * of live connections, process-wide counters, and the lifecycle (start,
 * drain on SIGTERM, stop). One per process; created by main.
 */
#ifndef SL_ACTORS_SERVER_H
#define SL_ACTORS_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "actors/config.h"
#include "runtime/actor.h"
#include "runtime/buf.h"
#include "runtime/limits.h"
#include "runtime/reactor.h"

typedef struct sl_conn sl_conn_t;
typedef struct sl_registry sl_registry_t;
typedef struct sl_monitor sl_monitor_t;
typedef struct sl_watchdog sl_watchdog_t;
typedef struct sl_tls_ctx sl_tls_ctx_t;

/* Process-wide counters: relaxed atomics, written by connection actors and
 * reactor callbacks, read by the monitor. */
typedef struct sl_server_counters {
    _Atomic uint64_t connections_open;
    _Atomic uint64_t accepted;
    _Atomic uint64_t rejected_max_connections;
    _Atomic uint64_t requests;
    _Atomic uint64_t streams_open;
    _Atomic uint64_t bytes_in;
    _Atomic uint64_t bytes_out;
    _Atomic uint64_t sends;             /* socket sends submitted */
    _Atomic uint64_t fanout_held;       /* fan-out sends held back by --fanout-budget */
    _Atomic uint64_t protocol_errors;
    _Atomic uint64_t closed_idle;
    _Atomic uint64_t closed_header_timeout;
    _Atomic uint64_t responses_4xx;
    _Atomic uint64_t responses_5xx;
    _Atomic uint64_t sessions_live;     /* session actors running */
    _Atomic uint64_t subscribers;       /* SSE subscriptions open */
    _Atomic uint64_t events_published;
    _Atomic uint64_t events_delivered;  /* events fully handed to a subscriber's stream */
    _Atomic uint64_t events_gapped;     /* events a subscriber was told it missed */
    _Atomic uint64_t events_caught_up;  /* events delivered from the log (catch-up) */
    _Atomic uint64_t publish_refused;   /* publishes answered 503 (full session mailbox) */
    _Atomic uint64_t sessions_expired;  /* sessions deleted by their TTL or expiry */
    _Atomic uint64_t sessions_closed;   /* sessions closed for good */
    _Atomic uint64_t producer_duplicates; /* producer retries answered without appending */
    _Atomic uint64_t producer_fenced;   /* producer publishes refused: stale epoch */
    _Atomic uint64_t rpc_connections;   /* open msgpack-RPC connections (gauge) */
    _Atomic uint64_t rpc_requests;
    _Atomic uint64_t rpc_subscriptions; /* open RPC subscriptions (gauge) */
    _Atomic uint64_t rpc_protocol_errors; /* RPC connections closed for bad framing or limits */
    /* Liveness backstops and abuse (actors/conn_guard.c). */
    _Atomic uint64_t closed_ping_timeout;   /* HTTP/2 PING unanswered with the path clear */
    _Atomic uint64_t h2_rapid_reset;        /* GOAWAY(ENHANCE_YOUR_CALM), per kind */
    _Atomic uint64_t h2_control_flood;
    _Atomic uint64_t h2_continuation_flood;
    _Atomic uint64_t h2_ack_flood;
    /* Memory budget and per-client bounds (runtime/budget.h, conn_guard.c). */
    _Atomic uint64_t budget_refused_publish;   /* publishes answered overloaded at the limit */
    _Atomic uint64_t budget_refused_subscribe; /* subscriptions answered overloaded at it */
    _Atomic uint64_t rejected_per_ip;          /* closed at accept: --max-connections-per-ip */
    _Atomic uint64_t closed_body_timeout;      /* body / partial RPC message stalled */
    /* TLS (actors/conn_tls.c, actors/server_tls.c). */
    _Atomic uint64_t tls_handshakes;           /* completed */
    _Atomic uint64_t tls_resumed;              /* of which resumed a session */
    _Atomic uint64_t tls_handshake_failures;   /* refused or broken before completing */
    _Atomic uint64_t tls_reloads;              /* SIGHUP reloads that took effect */
    _Atomic uint64_t tls_reload_failures;      /* SIGHUP reloads refused (old context kept) */
} sl_server_counters_t;

/* One msgpack-RPC listening socket (--rpc-listen). */
typedef struct sl_rpc_listener {
    struct sl_server *srv;
    int fd;                       /* served by reactor 0 (TCP) or i % reactors */
    int more_fds[SL_REACTORS_MAX]; /* TCP: reactor k's socket on the same port, k >= 1 */
    bool is_unix;
    char addr[128];               /* bound HOST:PORT or unix:PATH */
} sl_rpc_listener_t;

typedef struct sl_server {
    sl_config_t cfg;
    sl_sched_t *sched;            /* reactor 0's (inline) or the worker pool */
    sl_sched_t *scheds[SL_REACTORS_MAX]; /* inline: one per reactor; pool: [0] only */
    uint32_t nscheds;
    uint32_t nreactors;
    sl_reactor_t *reactors[SL_REACTORS_MAX];
    int listen_fds[SL_REACTORS_MAX];
    char http_addr[128];          /* bound HOST:PORT, for logs and ready file */
    sl_rpc_listener_t rpc[SL_FLAG_LIST_MAX]; /* --rpc-listen sockets */
    uint32_t nrpc;
    uint64_t start_ns;            /* monotonic */
    uint64_t fd_limit;
    sl_monitor_t *monitor;
    sl_watchdog_t *watchdog;      /* half-open peer reaper (actors/watchdog.h) */
    sl_registry_t *registry;
    sl_server_counters_t counters;
    _Atomic uint64_t epoch_next;  /* incarnation ids for new sessions */
    /* Expiry sweep (sessops.c): where the last pass stopped; the monitor's
     * tick owns it. */
    char sweep_after[SL_SESSION_ID_MAX + 1];
    uint32_t sweep_after_len;
    int data_dir_fd;              /* O_DIRECTORY fd of --data-dir (journals' base) */
    struct sl_fdcache *fdcache;   /* segment fds of every journal (--max-open-files) */
    pthread_mutex_t fdcache_lock; /* held around each short fd cache call */
    struct sl_syncer *syncer;     /* group commit across sessions (syncfs) */
    _Atomic uint32_t rounds_active; /* journal sync rounds running, all sessions */
    _Atomic uint64_t journal_bytes_written;
    _Atomic uint64_t journal_fsyncs;
    _Atomic uint64_t journal_syncfs_rounds; /* rounds a shared syncfs served */
    _Atomic uint64_t journal_fsyncs_overlapped; /* extra syncs beside a round */
    _Atomic uint64_t journal_reads;
    _Atomic uint64_t journal_failures;
    /* Damage (storage/recovery.h): segments found damaged at startup,
     * bytes moved to quarantine, catch-up reads that skipped damaged bytes
     * at run time, and gap notices catch-up served. */
    _Atomic uint64_t storage_damaged_segments;
    _Atomic uint64_t storage_quarantined_bytes;
    _Atomic uint64_t storage_damage_resyncs;
    _Atomic uint64_t storage_gaps_served;
    _Atomic bool draining;        /* SIGTERM seen: finish, accept nothing new */
    pthread_mutex_t conns_lock;   /* guards the registry list (connect/close only) */
    sl_conn_t *conns_head;        /* intrusive list; holds one ref per conn */
    _Atomic uint32_t next_reactor;
    /* TLS (actors/server_tls.c): the context new connections start with;
     * swapped by a reload under tls_lock, which readers hold only to take
     * a reference (once per TLS connection). NULL: TLS off. */
    pthread_mutex_t tls_lock;
    sl_tls_ctx_t *tls_ctx;
    struct sl_runs *runs;         /* child processes streamed into sessions (actors/run.h) */
} sl_server_t;

/* Whether a unix socket path is free to bind: 0 nothing there, 1 a stale
 * socket file (connect() refused: safe to replace), -EADDRINUSE a server
 * answers on it (or it cannot be told apart from one), -EEXIST not a
 * socket, SL_EINVAL path too long, other -errno from lstat/socket. Any
 * thread; connects once, never blocks. */
int sl_server_unix_probe(const char *path);
/* The scheduler of actors bound to reactor r: the one r hosts (thread-per-
 * core, --workers 0) or the shared worker pool. */
static inline sl_sched_t *sl_server_sched_of(const sl_server_t *srv, sl_reactor_t *r)
{
    sl_sched_t *s = sl_reactor_sched(r);
    return s ? s : srv->sched;
}

/* Sets up everything but starts nothing. Returns 0 or a negative error with
 * a logged reason (bad address, bind failure, io_uring unavailable). */
int sl_server_init(sl_server_t *srv, const sl_config_t *cfg);
/* Starts workers, reactors, the monitor and accepting; writes the ready
 * file and logs msg=listening. Returns 0 or a negative error. */
int sl_server_start(sl_server_t *srv);
/* Graceful stop: stop accepting, let connections finish within the grace,
 * then close the rest, stop threads and free everything. */
void sl_server_shutdown(sl_server_t *srv);

/* TLS, in server_tls.c. Loads --tls-cert/--tls-key (when given) and logs
 * the kTLS state once. Returns 0 or SL_EINVAL (logged). Main thread, from
 * sl_server_init. */
int sl_server_tls_init(sl_server_t *srv);
/* Reloads both files into a new context for new connections; live ones
 * keep theirs. On failure logs an error and keeps the old context.
 * Returns 0, SL_ENOTFOUND (TLS off) or SL_EINVAL. Main thread (SIGHUP). */
int sl_server_tls_reload(sl_server_t *srv);
/* The current context with a reference for the caller (release it with
 * sl_tls_ctx_release), or NULL when TLS is off. Any thread. */
sl_tls_ctx_t *sl_server_tls_acquire(sl_server_t *srv);
/* Drops the context (shutdown). */
void sl_server_tls_deinit(sl_server_t *srv);

/* Registry, called by connection actors. */
void sl_server_conn_add(sl_server_t *srv, sl_conn_t *c);
void sl_server_conn_remove(sl_server_t *srv, sl_conn_t *c);

#endif
