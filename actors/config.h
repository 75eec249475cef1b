/*
 * sluiced's configuration: every runtime bound and knob, parsed from flags
 * and their SLUICE_* environment twins, validated once at start. Read-only
 * after sl_config_load returns; any thread may read it.
 */
#ifndef SL_ACTORS_CONFIG_H
#define SL_ACTORS_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "net/cidr.h"
#include "net/cors.h"
#include "runtime/flags.h"

typedef struct sl_config {
    const char *listen;            /* HOST:PORT for HTTP */
    sl_flag_list_t rpc_listen;     /* msgpack-RPC: HOST:PORT or unix:PATH each (none: off) */
    const char *rpc_socket_mode_text; /* --rpc-socket-mode as given (octal) */
    uint32_t rpc_socket_mode;      /* unix RPC socket file mode, 0..0777 (default 0660) */
    uint64_t max_rpc_message_bytes; /* policy: close the connection, logged */
    uint32_t rpc_max_inflight;     /* RPC publishes awaiting answers per connection; policy: stop reading */
    const char *data_dir;
    const char *ready_file;        /* NULL: none */
    const char *log_level;
    uint32_t reactors;
    uint32_t workers;
    uint64_t reactor_linger_ns;    /* idle reactors gather completions this long */
    uint64_t shutdown_grace_ns;
    uint32_t max_connections;      /* policy at bound: accept, then close at once; counted */
    uint64_t max_header_bytes;     /* policy: 431 */
    uint64_t max_body_bytes;       /* policy: 413 */
    uint64_t max_event_bytes;      /* policy: 413 / too_large */
    uint64_t max_conn_output_bytes; /* policy: stop producing for that connection */
    uint32_t max_streams;          /* HTTP/2 concurrent streams per connection */
    uint64_t idle_timeout_ns;      /* connection with no request and no stream: closed */
    uint64_t header_timeout_ns;    /* request headers must complete within this */
    uint64_t monitor_interval_ns;
    uint32_t recv_buffers;         /* provided buffers per reactor */
    uint32_t mailbox_capacity;     /* NORMAL messages per actor mailbox */
    uint64_t busy_lag_ns;          /* loop/scheduler lag that reports busy=true */
    uint32_t max_sessions;         /* directory entries; policy: create answers 503 */
    uint32_t max_subs_per_session; /* subscribers of one session; beyond: 503 overloaded */
    uint64_t session_ring_bytes;   /* in-memory SSE bytes per live session; older: catch up */
    uint32_t ring_page_bytes;      /* ring page size (events per page <= 1024) */
    uint64_t sse_keepalive_ns;     /* `: keepalive` on idle SSE streams */
    uint64_t tcp_notsent_lowat;    /* TCP_NOTSENT_LOWAT of client sockets (0: off) */
    uint64_t session_idle_ns;      /* idle sessions hibernate after this (0: never) */
    uint64_t fanout_budget_ns;     /* a subscriber is woken / sent to at most once per budget */
    bool urgent_sessions;          /* session actors run before connection actors */
    uint64_t retention_bytes;      /* per-session log bound (0: off); oldest segments go */
    uint64_t retention_age_ns;     /* segments whose newest event is older go (0: off) */
    const char *fsync;             /* always|batch|never */
    const char *fsync_scope;       /* auto|file|fs */
    uint64_t fsync_interval_ns;    /* batch: longest a write waits for its fsync */
    uint32_t fsync_overlap;        /* extra fdatasyncs beside a session's round */
    uint64_t segment_bytes;        /* segment file roll size */
    uint32_t max_open_files;       /* cached segment fds; opener waits at the bound */
    uint64_t journal_buffer_bytes; /* per-session write buffer (x2); publish 503 when both full */
    /* Peers and liveness (actors/watchdog.h, actors/conn_guard.c). */
    uint64_t watchdog_interval_ns;  /* watchdog tick (0: watchdog off) */
    uint64_t dead_peer_grace_ns;    /* queued output, no bytes acked this long: reaped */
    uint64_t paused_peer_limit_ns;  /* live zero-window peer kept this long (0: forever) */
    uint64_t tcp_user_timeout_ns;   /* TCP_USER_TIMEOUT of client sockets (0: kernel default);
                                     * >= paused_peer_limit_ns when that is set */
    uint64_t h2_ping_interval_ns;   /* PING an HTTP/2 connection with streams silent this long (0: off) */
    uint64_t h2_ping_timeout_ns;    /* unanswered PING with the path clear: closed */
    /* Memory budget and per-client bounds (runtime/budget.h, conn_guard.c). */
    uint64_t memory_limit;          /* global budget; at it new publishes/subscriptions get 503 */
    uint64_t conn_worst_bytes;      /* derived: max_connections x per-connection bounds */
    uint32_t max_connections_per_ip; /* 0: off; excess accepted and closed, counted */
    const char *per_ip_exempt;       /* --per-ip-exempt as given */
    sl_cidr_list_t per_ip_exempt_ranges; /* parsed: not counted per address */
    uint64_t body_timeout_ns;       /* request body / partial RPC message idle this long: closed */
    /* TLS (net/tls.h, actors/server_tls.c): on when a certificate is given. */
    const char *tls_cert;           /* PEM chain, leaf first (NULL: no TLS) */
    const char *tls_key;            /* PEM private key of tls_cert */
    const char *tls_ktls;           /* auto|on|off */
    bool tls_ktls_kernel;           /* derived: the kernel offers kTLS (probed at start) */
    /* Browsers (net/cors.h, README "Browsers: CORS, console"). */
    const char *cors_origin;        /* --cors-origin as given */
    sl_cors_t cors;                 /* parsed; items borrow cors_origin */
    /* Access control (actors/auth.h, README "Access control"). */
    sl_flag_list_t auth_hs256_secret_files; /* HS256 secrets, one per file (repeatable) */
    sl_flag_list_t auth_public_key_files;   /* PEM RSA / EC P-256 public keys (repeatable) */
    const char *auth_issuer;        /* NULL: iss not checked */
    const char *auth_audience;      /* NULL: aud not checked */
    uint64_t auth_leeway_ns;        /* clock skew allowed on exp / nbf */
    bool allow_anonymous;           /* no key and a non-loopback listener: start anyway */
    struct sl_auth *auth;           /* the keyring loaded from the above (process lifetime) */
    /* Durable Streams face (conn_ds.c). */
    const char *ds_prefix;          /* --ds-prefix: URL prefix of streams ("" disables) */
    uint64_t long_poll_timeout_ns;  /* --long-poll-timeout: wait of a live=long-poll read */
    /* Runs (actors/run.h, README "Runs"): defaults of every runner. */
    sl_flag_list_t runners;         /* --runner "NAME=PATH [ARGS] [| OPTIONS]" (repeatable) */
    const char *runners_file;       /* one runner per line, same form (NULL: none) */
    uint32_t max_runs;              /* active runs; beyond: 429 overloaded */
    uint64_t run_kill_grace_ns;     /* SIGTERM to SIGKILL */
    uint64_t run_orphan_timeout_ns; /* no subscriber this long: cancelled (0: never) */
    uint64_t run_wall_time_ns;      /* a run is ended after this (0: no limit) */
    uint64_t run_max_output_bytes;  /* stdout + stderr bytes; beyond: output_limit */
    const char *run_mode;           /* line|chunk */
    const char *run_cgroup;         /* auto|on|off */
} sl_config_t;

/* Fills cfg from defaults, environment and argv. Returns 0, 1 (--help was
 * printed; exit 0), 2 (--version printed; exit 0) or -1 with a one-line
 * message in err (exit 2). */
int sl_config_load(sl_config_t *cfg, int argc, char **argv, char *err, size_t n);

#endif
