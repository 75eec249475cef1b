/*
 * sluice-load's configuration: flags, their SLUICE_LOAD_* environment
 * twins, scenario presets and an optional scenario file of `flag = value`
 * lines. Precedence, lowest first: built-in defaults, the scenario's
 * preset, the scenario file, the environment, the command line.
 */
#ifndef SL_TOOLS_LOAD_OPTS_H
#define SL_TOOLS_LOAD_OPTS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "tools/load/load_conn.h"

typedef enum sl_load_scenario {
    SL_LOAD_SC_FANOUT = 0,  /* P publishers -> 1 session -> N subscribers */
    SL_LOAD_SC_SESSIONS,    /* S sessions, one subscriber each */
    SL_LOAD_SC_CHURN,       /* subscribers come and go at a rate */
    SL_LOAD_SC_PUBLISH,     /* maximum publish rate */
    SL_LOAD_SC_SLOW,        /* a fraction of subscribers read at a capped rate */
    SL_LOAD_SC_STALL,       /* a fraction stop reading for a while */
} sl_load_scenario_t;

typedef enum sl_load_stall_then {
    SL_LOAD_STALL_RESUME = 0,
    SL_LOAD_STALL_CLOSE,    /* vanish: reset the connection */
    SL_LOAD_STALL_HOLD,     /* stay connected, never read again */
} sl_load_stall_then_t;

typedef enum sl_load_progress {
    SL_LOAD_PROGRESS_AUTO = 0,
    SL_LOAD_PROGRESS_TTY,
    SL_LOAD_PROGRESS_PLAIN,
    SL_LOAD_PROGRESS_OFF,
} sl_load_progress_t;

/* Hard caps on what one process is asked to hold; a flag beyond one exits
 * 2 (usage). */
#define SL_LOAD_CONNS_MAX 100000u
#define SL_LOAD_SESSIONS_MAX 100000u
#define SL_LOAD_EVENT_BYTES_MAX (1u << 20)
#define SL_LOAD_INFLIGHT_MAX 4096u
#define SL_LOAD_DURATION_MAX_S 86400.0

typedef struct sl_load_opts {
    char target[256];
    char rpc_target[256];    /* HOST:PORT or unix:PATH, for --proto rpc */
    sl_load_proto_t proto;
    sl_load_scenario_t scenario;
    uint32_t publishers;
    uint32_t subscribers;
    uint32_t sessions;
    uint32_t streams_per_conn;
    double rate;             /* events/s over all publishers; 0 = as fast as acks allow */
    uint32_t size_bytes;
    double duration_s;
    uint64_t events;         /* total events to publish; 0 = no count bound */
    uint32_t pub_inflight;   /* requests outstanding per publisher connection */
    bool durable;            /* publishes wait for fsync (RPC option, HTTP ?durable=1) */
    bool from_first;         /* subscribe with ?from=1 (else live) */
    bool create;             /* PUT each session before subscribing */
    bool ds;                 /* the Durable Streams face: /v1/stream/{id} (--ds) */
    double drain_s;
    double connect_timeout_s;
    uint32_t connect_concurrency;
    double churn_rate;
    double churn_hold_s;
    uint32_t churn_max;
    double slow_fraction;
    uint64_t slow_rate;
    double stall_fraction;
    double stall_after_s;
    double stall_for_s;
    sl_load_stall_then_t stall_then;
    uint32_t rcvbuf;
    bool allow_gaps;
    int target_pid;
    bool health;
    char session_prefix[64];
    char json_path[512];
    char token[SL_LOAD_TOKEN_MAX]; /* "" none: sent on every connection (--token, SLUICE_TOKEN) */
    char plot_path[512];
    sl_load_progress_t progress;
    bool tls;                /* TLS to the target (also: --target https://HOST:PORT) */
    bool insecure;           /* TLS: accept any certificate */
    char cacert[512];        /* TLS: trusted CA file (empty: the system store) */
    /* Derived by sl_load_opts_parse. */
    char tls_host[256];      /* TLS: server name (SNI and certificate check) */
    struct sockaddr_storage addr;
    socklen_t addr_len;
    char authority[300];
} sl_load_opts_t;

/* Fills o from defaults, preset, file, environment and argv (borrowed).
 * Returns 0 to run; 1 when --help was printed (exit 0); -1 on a usage
 * error, already reported on err (exit 2). */
int sl_load_opts_parse(sl_load_opts_t *o, int argc, char **argv, FILE *err);
/* Prints the flag reference to f. */
void sl_load_opts_usage(FILE *f);
const char *sl_load_scenario_name(sl_load_scenario_t s);
const char *sl_load_proto_name(sl_load_proto_t p);
/* The address the run's connections go to: --rpc-target for --proto rpc,
 * else --target. Borrowed from o. */
const char *sl_load_opts_target(const sl_load_opts_t *o);

#endif
