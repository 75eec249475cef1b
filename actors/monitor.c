/*
 * Monitor actor. See monitor.h.
 *
 * Tick: TIMEOUT -> READ /proc/self/statm (through the reactor) -> sample
 * -> render JSON + Prometheus -> publish -> TIMEOUT. The open-fd count
 * comes from fstatat("/proc/self/fd"), whose st_size is the number of open
 * descriptors on Linux >= 6.2: one O(1) syscall on the monitor's own tick,
 * never on a request path. Older kernels report 0 and we count entries.
 */
#include "actors/auth.h"
#include "actors/monitor.h"
#include "actors/run.h"
#include "actors/sessops.h"
#include "actors/registry.h"
#include "actors/watchdog.h"
#include "storage/fdcache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/clock.h"
#include "runtime/log.h"
#include "storage/syncer.h"

#define LAG_WINDOWS 40 /* windows kept for the "max" figures (40 x 0.25 s = 10 s) */
#define RENDER_BYTES_MAX (64 * 1024)

enum { MSG_STOP = SL_MSG_KIND_USER };

typedef struct window_max {
    uint64_t v[LAG_WINDOWS];
    uint32_t i;
} window_max_t;

typedef struct reactor_view {
    sl_reactor_stats_t st;
    uint64_t lag_recent_ns, lag_max_ns;
    window_max_t win;
    sl_sched_stats_t sched; /* the scheduler it hosts (thread-per-core) */
} reactor_view_t;

struct sl_monitor {
    sl_actor_t a;
    sl_server_t *srv;
    sl_op_t timer;
    sl_op_t read;
    int statm_fd;
    char statm[256];
    bool stopping;
    uint32_t ops_inflight;
    bool released;
    _Atomic bool stopped; /* set by destroy; pairs with wait_stopped */
    bool busy_now;
    _Atomic bool busy;
    reactor_view_t reactors[SL_REACTORS_MAX];
    sl_sched_stats_t sched;
    uint64_t sched_lag_recent_ns, sched_lag_max_ns;
    window_max_t sched_win;
    uint64_t rss_bytes;
    uint64_t open_fds;
    sl_msg_t stop_msg;
    atomic_bool stop_sent; /* the record is sent at most once */
    pthread_mutex_t pub_lock; /* guards the two published pointers */
    sl_chunk_t *health;
    sl_chunk_t *metrics;
    sl_chunk_t *catalogue; /* /debug/figures, rendered once at create */
};

static uint64_t window_push(window_max_t *w, uint64_t v)
{
    w->v[w->i++ % LAG_WINDOWS] = v;
    uint64_t m = 0;
    for (int i = 0; i < LAG_WINDOWS; i++)
        m = w->v[i] > m ? w->v[i] : m;
    return m;
}

static uint64_t count_fds(void)
{
    struct stat st;
    if (fstatat(AT_FDCWD, "/proc/self/fd", &st, 0) == 0 && st.st_size > 0)
        return (uint64_t)st.st_size;
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return 0;
    uint64_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n > 0 ? n - 1 : 0; /* minus the DIR's own fd */
}

/* Sums the schedulers (one per reactor, or the one worker pool) into
 * m->sched: counts add up, high-water marks take the maximum. */
static void sched_sample(sl_monitor_t *m)
{
    sl_server_t *srv = m->srv;
    sl_sched_stats_t *a = &m->sched;
    memset(a, 0, sizeof *a);
    for (uint32_t i = 0; i < srv->nscheds; i++) {
        sl_sched_stats_t one;
        sl_sched_stats(srv->scheds[i], &one);
        if (srv->nscheds == srv->nreactors && srv->cfg.workers == 0)
            m->reactors[i].sched = one;
        a->workers += one.workers;
        a->runs += one.runs;
        a->messages += one.messages;
        a->lag_ns_max = one.lag_ns_max > a->lag_ns_max ? one.lag_ns_max : a->lag_ns_max;
        a->lag_ns_recent =
            one.lag_ns_recent > a->lag_ns_recent ? one.lag_ns_recent : a->lag_ns_recent;
        a->mailbox_depth_max = one.mailbox_depth_max > a->mailbox_depth_max
                                   ? one.mailbox_depth_max
                                   : a->mailbox_depth_max;
        for (int k = 0; k < SL_MSG_CLASS_COUNT; k++)
            a->refused[k] += one.refused[k];
        a->notify_coalesced += one.notify_coalesced;
        a->actors_live += one.actors_live;
        a->runq_stalls += one.runq_stalls;
    }
}

static void sample(sl_monitor_t *m)
{
    sl_server_t *srv = m->srv;
    uint64_t busy_lag = srv->cfg.busy_lag_ns;
    bool busy = false;
    for (uint32_t i = 0; i < srv->nreactors; i++) {
        reactor_view_t *v = &m->reactors[i];
        sl_reactor_stats(srv->reactors[i], &v->st);
        v->lag_recent_ns = v->st.loop_lag_ns_max;
        v->lag_max_ns = window_push(&v->win, v->lag_recent_ns);
        busy |= v->lag_recent_ns > busy_lag;
    }
    sched_sample(m);
    m->sched_lag_recent_ns = m->sched.lag_ns_max;
    m->sched_lag_max_ns = window_push(&m->sched_win, m->sched_lag_recent_ns);
    busy |= m->sched_lag_recent_ns > busy_lag;
    m->open_fds = count_fds();
    uint64_t conns = atomic_load_explicit(&srv->counters.connections_open, memory_order_relaxed);
    busy |= conns * 10 >= (uint64_t)srv->cfg.max_connections * 9;
    busy |= srv->fd_limit && m->open_fds * 10 >= srv->fd_limit * 9;
    busy |= sl_budget_over(); /* new publishes and subscriptions are refused */
    busy |= sl_run_busy(srv); /* a run is active: busy, not wedged */
    m->busy_now = busy;
    atomic_store_explicit(&m->busy, busy, memory_order_relaxed);
}

#define CTR(name) atomic_load_explicit(&srv->counters.name, memory_order_relaxed)
#define MS(ns) ((double)(ns) / 1e6)

/* Text being rendered: a chunk's data or a caller's buffer. */
typedef struct out {
    char *p;
    uint32_t len, cap; /* len == cap: cut short */
} out_t;

/* Appends printf output to o, bounded by its capacity. */
static void put(out_t *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(out_t *o, const char *fmt, ...)
{
    if (o->len >= o->cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
    va_end(ap);
    if (n > 0)
        o->len = o->len + (uint32_t)n < o->cap ? o->len + (uint32_t)n : o->cap;
}

/* A chunk of RENDER_BYTES_MAX to render into (o), or NULL. */
static sl_chunk_t *render_start(out_t *o)
{
    sl_chunk_t *c = sl_chunk_create(RENDER_BYTES_MAX);
    if (c)
        *o = (out_t){(char *)c->data, 0, c->cap};
    return c;
}

/* ---- The figures: one table drives /health, /metrics and /debug/figures ---- */

/* What one render sees of everything that is not a plain server atomic:
 * sampled once per tick (publish), so /health and /metrics agree. */
typedef struct fig_view {
    uint64_t rss_bytes, open_fds, fd_limit;
    uint64_t sessions_total, sessions_hibernated, busy, snapshot_age_ns;
    uint64_t sched_workers, sched_lag_max_ns, sched_lag_recent_ns, sched_runs, sched_messages,
        sched_actors;
    uint64_t mailbox_capacity, mailbox_depth_max, mailbox_refused[SL_MSG_CLASS_COUNT],
        mailbox_notify_coalesced;
    uint64_t rpc_listeners;
    uint64_t open_files, max_open_files, syncfs_calls, chunk_bytes_live, chunk_bytes_pooled;
    uint64_t budget_limit, budget_used, budget_over, budget_refused_body, conn_worst_bytes;
    uint64_t budget_held[SL_BUDGET_KINDS];
    uint64_t auth_enabled, auth_refused_401, auth_refused_403;
    uint64_t wd_enabled, wd_interval_ns, wd_grace_ns, wd_paused_limit_ns, wd_tracked, wd_paused,
        wd_stalled, wd_ticks, wd_probes, wd_probe_errors, wd_tick_last_ns, wd_tick_max_ns,
        wd_reaped_send_stall, wd_reaped_peer_closed, wd_reaped_paused;
    uint64_t max_connections_per_ip;
} fig_view_t;

typedef enum { FIG_GAUGE, FIG_COUNTER } fig_type_t;

/* How a value (a uint64_t) is written. */
typedef enum {
    UNIT_COUNT,    /* an integer in both */
    UNIT_BOOL,     /* /health true/false, /metrics 1/0 */
    UNIT_MS,       /* ns: /health milliseconds (3 decimals), /metrics seconds */
    UNIT_MS_WHOLE, /* ns: /health whole milliseconds, /metrics seconds */
    UNIT_S,        /* ns: /health seconds (3 decimals), /metrics seconds */
} fig_unit_t;

/* Where a value is read. */
typedef enum {
    SRC_CTR,   /* an _Atomic uint64_t of srv->counters at off */
    SRC_SRV,   /* an _Atomic uint64_t of sl_server_t at off */
    SRC_VIEW,  /* a uint64_t of fig_view_t at off */
    SRC_FN,    /* fn(srv, arg); any thread (live rows run on connection actors) */
    SRC_ARRAY, /* not one number: json and prom write the member and the families */
} fig_src_t;

typedef struct figure {
    const char *health; /* /health path: up to three dot-separated keys */
    const char *metric; /* /metrics family after "sluice_" ([a-z_]; counters end in _total) */
    const char *labels; /* this row's labels within the family (NULL: none) */
    const char *help;   /* the family's HELP, on its first row */
    uint8_t type;       /* fig_type_t */
    uint8_t unit;       /* fig_unit_t */
    uint8_t src;        /* fig_src_t */
    bool live;          /* in the per-request head (sl_monitor_health_head), not the snapshot */
    size_t off;         /* SRC_CTR, SRC_SRV, SRC_VIEW: where */
    uint32_t arg;       /* SRC_FN: passed to fn (one reader serves several rows) */
    uint64_t (*fn)(sl_server_t *srv, uint32_t arg);
    void (*json)(sl_monitor_t *m, out_t *c); /* SRC_ARRAY: the member's value */
    void (*prom)(sl_monitor_t *m, out_t *c); /* SRC_ARRAY: its families */
} figure_t;

#define FIG_CTR(path, name, type_, field, help_, ...)                                           \
    {.health = path, .metric = name, .help = help_, .type = type_, .src = SRC_CTR,              \
     .off = offsetof(sl_server_counters_t, field), __VA_ARGS__}
#define FIG_SRV(path, name, type_, field, help_, ...)                                           \
    {.health = path, .metric = name, .help = help_, .type = type_, .src = SRC_SRV,              \
     .off = offsetof(sl_server_t, field), __VA_ARGS__}
#define FIG_VIEW(path, name, type_, field, help_, ...)                                          \
    {.health = path, .metric = name, .help = help_, .type = type_, .src = SRC_VIEW,             \
     .off = offsetof(fig_view_t, field), __VA_ARGS__}
#define FIG_FN(path, name, type_, fn_, arg_, help_, ...)                                        \
    {.health = path, .metric = name, .help = help_, .type = type_, .src = SRC_FN, .fn = fn_,    \
     .arg = arg_, __VA_ARGS__}
#define C FIG_COUNTER
#define G FIG_GAUGE
#define LIVE .live = true
#define L(s) .labels = s
#define U(u) .unit = u

static uint64_t fig_uptime_ns(sl_server_t *srv, uint32_t arg)
{
    return sl_clock_now_ns() - srv->start_ns;
}
static uint64_t fig_tls_enabled(sl_server_t *srv, uint32_t arg)
{
    return srv->cfg.tls_cert && *srv->cfg.tls_cert;
}
static uint64_t fig_zero(sl_server_t *srv, uint32_t arg) { return 0; } /* kTLS is never used */
static void reactors_json(sl_monitor_t *m, out_t *c);
static void reactors_prom(sl_monitor_t *m, out_t *c);

/* Every figure of /health and /metrics, in /health order. Adding a figure
 * is one row here: it then appears in /health (at its path), in /metrics
 * (with HELP and TYPE) and in /debug/figures. A server counter needs only
 * its field in sl_server_counters_t (FIG_CTR); anything sampled goes
 * through fig_view_t (FIG_VIEW, filled in view_fill) or a function of the
 * server (FIG_FN, whose arg lets one reader serve a module's rows).
 * Rules, checked at start (figures_check): the rows of one /health object
 * are adjacent; the rows of one /metrics family are adjacent and its
 * first row carries the HELP; names match [a-z][a-z0-9_]* and a name ends
 * in _total exactly when it counts. LIVE rows are read per request (any
 * thread) and come first. Arrays (SRC_ARRAY) render themselves: the only
 * /health numbers without a row of their own.
 * tests/integration/test_figures.py holds both ends to this table. */
static const figure_t figures[] = {
    FIG_FN("uptime_s", "uptime_seconds", G, fig_uptime_ns, 0, "Seconds since start.", LIVE,
           U(UNIT_S)),
    FIG_CTR("connections", "connections", G, connections_open, "Open client connections.", LIVE),
    FIG_CTR("streams", "streams", G, streams_open, "Open SSE response streams.", LIVE),
    FIG_FN("tls.enabled", "tls_enabled", G, fig_tls_enabled, 0, "1 when TLS is configured.",
           LIVE, U(UNIT_BOOL)),
    FIG_FN("tls.ktls", "tls_ktls", G, fig_zero, 0, "1 when kernel TLS offload is in use.",
           LIVE, U(UNIT_BOOL)),
    FIG_CTR("tls.handshakes", "tls_handshakes_total", C, tls_handshakes,
            "TLS handshakes completed.", LIVE),
    FIG_CTR("tls.resumed", "tls_resumed_total", C, tls_resumed,
            "TLS handshakes that resumed a session.", LIVE),
    FIG_CTR("tls.handshake_failures", "tls_handshake_failures_total", C, tls_handshake_failures,
            "TLS handshakes refused or broken.", LIVE),
    FIG_CTR("tls.reloads", "tls_reloads_total", C, tls_reloads,
            "Certificate reloads (SIGHUP) that took effect.", LIVE),
    FIG_CTR("tls.reload_failures", "tls_reload_failures_total", C, tls_reload_failures,
            "Certificate reloads refused (the old certificate kept).", LIVE),
    /* The snapshot. */
    FIG_VIEW("rss_bytes", "rss_bytes", G, rss_bytes, "Resident set size."),
    FIG_VIEW("open_fds", "open_fds", G, open_fds, "Open file descriptors."),
    FIG_VIEW("fd_limit", "fd_limit", G, fd_limit, "File descriptor limit."),
    FIG_CTR("sessions.live", "sessions_live", G, sessions_live, "Session actors running."),
    FIG_VIEW("sessions.hibernated", "sessions_hibernated", G, sessions_hibernated,
             "Sessions known but not running (hibernated)."),
    FIG_VIEW("sessions.total", "sessions", G, sessions_total, "Sessions known."),
    FIG_CTR("sessions.expired", "sessions_expired_total", C, sessions_expired,
            "Sessions deleted by their TTL or expiry."),
    FIG_CTR("sessions.closed", "sessions_closed_total", C, sessions_closed,
            "Sessions closed for good."),
    FIG_CTR("subscribers", "subscribers", G, subscribers, "Open subscriptions (SSE and RPC)."),
    FIG_VIEW("busy", "busy", G, busy, "1 when lag or resource use is high.", U(UNIT_BOOL)),
    FIG_VIEW("snapshot_age_ms_max", "snapshot_age_seconds_max", G, snapshot_age_ns,
             "Oldest a /health or /metrics snapshot gets (--monitor-interval).",
             U(UNIT_MS_WHOLE)),
    {.health = "reactors", .src = SRC_ARRAY, .json = reactors_json, .prom = reactors_prom},
    FIG_VIEW("scheduler.workers", "scheduler_workers", G, sched_workers,
             "Worker threads of the actor pool (0: actors run on their reactor)."),
    FIG_VIEW("scheduler.lag_ms_max", "scheduler_lag_seconds", G, sched_lag_max_ns,
             "Actor queue-to-run delay (max over 10 s).", U(UNIT_MS)),
    FIG_VIEW("scheduler.lag_ms_recent", "scheduler_lag_seconds_recent", G, sched_lag_recent_ns,
             "Actor queue-to-run delay (max in the last interval).", U(UNIT_MS)),
    FIG_VIEW("scheduler.runs", "scheduler_runs_total", C, sched_runs, "Actor runs."),
    FIG_VIEW("scheduler.messages", "scheduler_messages_total", C, sched_messages,
             "Actor messages delivered."),
    FIG_VIEW("scheduler.actors", "scheduler_actors", G, sched_actors, "Actors alive."),
    FIG_VIEW("mailboxes.capacity", "mailbox_capacity", G, mailbox_capacity,
             "Messages a mailbox holds (--mailbox-capacity)."),
    FIG_VIEW("mailboxes.depth_max", "mailbox_depth_max", G, mailbox_depth_max,
             "Deepest mailbox in the last interval."),
    FIG_VIEW("mailboxes.refused_normal", "mailbox_refused_total", C,
             mailbox_refused[SL_MSG_NORMAL], "Sends refused by a full mailbox, per class.",
             L("class=\"normal\"")),
    FIG_VIEW("mailboxes.refused_control", "mailbox_refused_total", C,
             mailbox_refused[SL_MSG_CONTROL], NULL, L("class=\"control\"")),
    FIG_VIEW("mailboxes.refused_completion", "mailbox_refused_total", C,
             mailbox_refused[SL_MSG_COMPLETION], NULL, L("class=\"completion\"")),
    FIG_VIEW("mailboxes.notify_coalesced", "mailbox_notify_coalesced_total", C,
             mailbox_notify_coalesced, "Notifications merged into one already pending."),
    FIG_CTR("http.accepted", "connections_accepted_total", C, accepted, "Accepted connections."),
    FIG_CTR("http.rejected_max_connections", "connections_rejected_total", C,
            rejected_max_connections, "Connections closed at --max-connections."),
    FIG_CTR("http.requests", "http_requests_total", C, requests, "Requests received."),
    FIG_CTR("http.protocol_errors", "protocol_errors_total", C, protocol_errors,
            "Connections failed by a protocol error."),
    FIG_CTR("http.closed_idle", "connections_closed_idle_total", C, closed_idle,
            "Connections closed idle."),
    FIG_CTR("http.closed_header_timeout", "connections_closed_header_timeout_total", C,
            closed_header_timeout,
            "Connections closed for a request head that did not complete in time."),
    FIG_CTR("http.responses_4xx", "http_responses_total", C, responses_4xx,
            "Error responses, per status class.", L("class=\"4xx\"")),
    FIG_CTR("http.responses_5xx", "http_responses_total", C, responses_5xx, NULL,
            L("class=\"5xx\"")),
    FIG_CTR("http.bytes_in", "bytes_in_total", C, bytes_in, "Bytes received."),
    FIG_CTR("http.bytes_out", "bytes_out_total", C, bytes_out, "Bytes sent."),
    FIG_CTR("http.sends", "sends_total", C, sends,
            "Socket sends submitted (HTTP and msgpack-RPC)."),
    FIG_CTR("http.fanout_held", "fanout_held_total", C, fanout_held,
            "Fan-out sends a connection held back to share one send per --fanout-budget."),
    FIG_VIEW("rpc.listeners", "rpc_listeners", G, rpc_listeners,
             "msgpack-RPC listening sockets (--rpc-listen)."),
    FIG_CTR("rpc.connections", "rpc_connections", G, rpc_connections,
            "Open msgpack-RPC connections."),
    FIG_CTR("rpc.requests", "rpc_requests_total", C, rpc_requests,
            "msgpack-RPC requests received."),
    FIG_CTR("rpc.subscriptions", "rpc_subscriptions", G, rpc_subscriptions,
            "Open msgpack-RPC subscriptions."),
    FIG_CTR("rpc.protocol_errors", "rpc_protocol_errors_total", C, rpc_protocol_errors,
            "msgpack-RPC connections closed for bad framing or a limit."),
    FIG_CTR("events.published", "events_published_total", C, events_published,
            "Events sequenced."),
    FIG_CTR("events.delivered", "events_delivered_total", C, events_delivered,
            "Events handed to subscriber streams."),
    FIG_CTR("events.caught_up", "events_caught_up_total", C, events_caught_up,
            "Events delivered from the log (catch-up)."),
    FIG_CTR("events.gapped", "events_gapped_total", C, events_gapped,
            "Events subscribers were told they missed."),
    FIG_CTR("events.publish_refused", "publish_refused_total", C, publish_refused,
            "Publishes answered 503 (busy session)."),
    FIG_CTR("producers.duplicates", "producer_duplicates_total", C, producer_duplicates,
            "Idempotent producer retries answered without appending."),
    FIG_CTR("producers.fenced", "producer_fenced_total", C, producer_fenced,
            "Idempotent producer publishes refused for a stale epoch."),
    FIG_VIEW("storage.open_files", "storage_open_files", G, open_files,
             "Log segment files held open."),
    FIG_VIEW("storage.max_open_files", "storage_max_open_files", G, max_open_files,
             "Log segment files held open at most (--max-open-files)."),
    FIG_SRV("storage.bytes_written", "storage_bytes_written_total", C, journal_bytes_written,
            "Bytes written to session logs."),
    FIG_SRV("storage.fsyncs", "storage_fsyncs_total", C, journal_fsyncs,
            "fsync/fdatasync calls on session logs."),
    FIG_SRV("storage.syncfs_rounds", "storage_syncfs_rounds_total", C, journal_syncfs_rounds,
            "Log sync rounds served by a shared syncfs."),
    FIG_SRV("storage.fsyncs_overlapped", "storage_fsyncs_overlapped_total", C,
            journal_fsyncs_overlapped,
            "Of the fsyncs, extra fdatasyncs run beside a session's sync round (--fsync-overlap)."),
    FIG_VIEW("storage.syncfs_calls", "storage_syncfs_calls_total", C, syncfs_calls,
             "syncfs calls made for group commit."),
    FIG_SRV("storage.catchup_reads", "storage_catchup_reads_total", C, journal_reads,
            "Log reads made for catch-up."),
    FIG_SRV("storage.failures", "storage_failures_total", C, journal_failures,
            "Log writes or syncs that failed."),
    FIG_SRV("storage.damaged_segments", "storage_damaged_segments", G, storage_damaged_segments,
            "Segments found damaged at startup."),
    FIG_SRV("storage.quarantined_bytes", "storage_quarantined_bytes", G,
            storage_quarantined_bytes, "Bytes recovery moved to quarantine files."),
    FIG_SRV("storage.damage_resyncs", "storage_damage_resyncs_total", C, storage_damage_resyncs,
            "Catch-up reads that skipped damaged log bytes."),
    FIG_SRV("storage.gaps_served", "storage_gaps_served_total", C, storage_gaps_served,
            "sluice.gap notices served by catch-up."),
    FIG_VIEW("memory.chunk_bytes_live", "memory_chunk_live_bytes", G, chunk_bytes_live,
             "Bytes in live reference-counted chunks."),
    FIG_VIEW("memory.chunk_bytes_pooled", "memory_chunk_pooled_bytes", G, chunk_bytes_pooled,
             "Bytes of dead chunks the threads keep for reuse (bounded per thread)."),
    FIG_VIEW("budget.limit_bytes", "memory_limit_bytes", G, budget_limit,
             "Global memory budget (--memory-limit)."),
    FIG_VIEW("budget.used_bytes", "memory_used_bytes", G, budget_used,
             "Bytes counted against the memory budget."),
    FIG_VIEW("budget.over", "memory_over", G, budget_over,
             "1 while the memory budget is spent (new work is refused).", U(UNIT_BOOL)),
    FIG_CTR("budget.refused_publish", "budget_refused_total", C, budget_refused_publish,
            "Requests refused over the memory budget.", L("what=\"publish\"")),
    FIG_CTR("budget.refused_subscribe", "budget_refused_total", C, budget_refused_subscribe,
            NULL, L("what=\"subscribe\"")),
    FIG_VIEW("budget.refused_body", "budget_refused_total", C, budget_refused_body, NULL,
             L("what=\"body\"")),
    FIG_VIEW("budget.connections_worst_case_bytes", "connections_worst_case_bytes", G,
             conn_worst_bytes, "Memory the open connections could hold at their bounds."),
    FIG_VIEW("budget.held.ring", "memory_held_bytes", G, budget_held[SL_BUDGET_RING],
             "Budgeted bytes per holder kind.", L("kind=\"ring\"")),
    FIG_VIEW("budget.held.catchup", "memory_held_bytes", G, budget_held[SL_BUDGET_CATCHUP], NULL,
             L("kind=\"catchup\"")),
    FIG_VIEW("budget.held.output", "memory_held_bytes", G, budget_held[SL_BUDGET_OUTPUT], NULL,
             L("kind=\"output\"")),
    FIG_VIEW("budget.held.http", "memory_held_bytes", G, budget_held[SL_BUDGET_HTTP], NULL,
             L("kind=\"http\"")),
    FIG_VIEW("budget.held.rpc", "memory_held_bytes", G, budget_held[SL_BUDGET_RPC], NULL,
             L("kind=\"rpc\"")),
    FIG_VIEW("budget.held.journal", "memory_held_bytes", G, budget_held[SL_BUDGET_JOURNAL], NULL,
             L("kind=\"journal\"")),
    FIG_VIEW("budget.held.other", "memory_held_bytes", G, budget_held[SL_BUDGET_OTHER], NULL,
             L("kind=\"other\"")),
    FIG_VIEW("auth.enabled", "auth_enabled", G, auth_enabled,
             "1 when access control is on (keys configured).", U(UNIT_BOOL)),
    FIG_VIEW("auth.refused_401", "auth_refused_total", C, auth_refused_401,
             "Requests refused by access control, per status.", L("status=\"401\"")),
    FIG_VIEW("auth.refused_403", "auth_refused_total", C, auth_refused_403, NULL,
             L("status=\"403\"")),
    FIG_VIEW("watchdog.enabled", "watchdog_enabled", G, wd_enabled,
             "1 when the half-open peer watchdog runs.", U(UNIT_BOOL)),
    FIG_VIEW("watchdog.interval_ms", "watchdog_interval_seconds", G, wd_interval_ns,
             "Watchdog sweep period.", U(UNIT_MS_WHOLE)),
    FIG_VIEW("watchdog.dead_peer_grace_ms", "watchdog_dead_peer_grace_seconds", G, wd_grace_ns,
             "Unacked output a peer may leave before it is reaped.", U(UNIT_MS_WHOLE)),
    FIG_VIEW("watchdog.paused_peer_limit_ms", "watchdog_paused_peer_limit_seconds", G,
             wd_paused_limit_ns, "How long a zero-window peer may stay paused.",
             U(UNIT_MS_WHOLE)),
    FIG_VIEW("watchdog.tracked", "watchdog_tracked", G, wd_tracked,
             "Sockets with unacked output the watchdog probes."),
    FIG_VIEW("watchdog.paused", "watchdog_paused", G, wd_paused,
             "Live zero-window peers on the last tick."),
    FIG_VIEW("watchdog.stalled", "watchdog_stalled", G, wd_stalled,
             "Queued peers without acked progress on the last tick."),
    FIG_VIEW("watchdog.ticks", "watchdog_ticks_total", C, wd_ticks, "Watchdog sweeps."),
    FIG_VIEW("watchdog.probes", "watchdog_probes_total", C, wd_probes, "Sockets probed."),
    FIG_VIEW("watchdog.probe_errors", "watchdog_probe_errors_total", C, wd_probe_errors,
             "Socket probes that failed."),
    FIG_VIEW("watchdog.tick_ms_last", "watchdog_tick_seconds_last", G, wd_tick_last_ns,
             "Last watchdog sweep.", U(UNIT_MS)),
    FIG_VIEW("watchdog.tick_ms_max", "watchdog_tick_seconds_max", G, wd_tick_max_ns,
             "Longest watchdog sweep.", U(UNIT_MS)),
    FIG_VIEW("watchdog.reaped_send_stall", "watchdog_reaped_total", C, wd_reaped_send_stall,
             "Connections reaped by the watchdog, per reason.", L("reason=\"send_stall\"")),
    FIG_VIEW("watchdog.reaped_peer_closed", "watchdog_reaped_total", C, wd_reaped_peer_closed,
             NULL, L("reason=\"peer_closed\"")),
    FIG_VIEW("watchdog.reaped_paused", "watchdog_reaped_total", C, wd_reaped_paused, NULL,
             L("reason=\"paused\"")),
    FIG_CTR("guard.closed_ping_timeout", "connections_closed_ping_timeout_total", C,
            closed_ping_timeout, "HTTP/2 connections closed for an unanswered PING."),
    FIG_CTR("guard.h2_rapid_reset", "h2_abuse_total", C, h2_rapid_reset,
            "HTTP/2 connections ended with ENHANCE_YOUR_CALM, per kind.",
            L("kind=\"rapid_reset\"")),
    FIG_CTR("guard.h2_control_flood", "h2_abuse_total", C, h2_control_flood, NULL,
            L("kind=\"control_flood\"")),
    FIG_CTR("guard.h2_continuation_flood", "h2_abuse_total", C, h2_continuation_flood, NULL,
            L("kind=\"continuation_flood\"")),
    FIG_CTR("guard.h2_ack_flood", "h2_abuse_total", C, h2_ack_flood, NULL,
            L("kind=\"ack_flood\"")),
    FIG_CTR("guard.closed_body_timeout", "connections_closed_body_timeout_total", C,
            closed_body_timeout,
            "Connections closed for a request body or RPC message that stalled."),
    FIG_CTR("guard.rejected_per_ip", "connections_rejected_per_ip_total", C, rejected_per_ip,
            "Connections closed at --max-connections-per-ip."),
    FIG_VIEW("guard.max_connections_per_ip", "max_connections_per_ip", G, max_connections_per_ip,
             "Connections one address may hold (--max-connections-per-ip; 0: no bound)."),    /* Runs (actors/run.h): processes sluice starts for sessions. */
    FIG_FN("runs.active", "runs_active", G, sl_run_figure, SL_RUN_FIG_ACTIVE, "Runs alive now."),
    FIG_FN("runs.started", "runs_started_total", C, sl_run_figure, SL_RUN_FIG_STARTED,
           "Runs started."),
    FIG_FN("runs.spawn_failed", "runs_spawn_failed_total", C, sl_run_figure,
           SL_RUN_FIG_SPAWN_FAILED, "Runs whose program could not be started."),
    FIG_FN("runs.by_reason.exit", "runs_ended_total", C, sl_run_figure,
           SL_RUN_FIG_REASON_EXIT + 0, "Runs ended, per reason.", L("reason=\"exit\"")),
    FIG_FN("runs.by_reason.cancelled", "runs_ended_total", C, sl_run_figure,
           SL_RUN_FIG_REASON_EXIT + 1, NULL, L("reason=\"cancelled\"")),
    FIG_FN("runs.by_reason.orphaned", "runs_ended_total", C, sl_run_figure,
           SL_RUN_FIG_REASON_EXIT + 2, NULL, L("reason=\"orphaned\"")),
    FIG_FN("runs.by_reason.timeout", "runs_ended_total", C, sl_run_figure,
           SL_RUN_FIG_REASON_EXIT + 3, NULL, L("reason=\"timeout\"")),
    FIG_FN("runs.by_reason.output_limit", "runs_ended_total", C, sl_run_figure,
           SL_RUN_FIG_REASON_EXIT + 4, NULL, L("reason=\"output_limit\"")),
    FIG_FN("runs.by_reason.server_shutdown", "runs_ended_total", C, sl_run_figure,
           SL_RUN_FIG_REASON_EXIT + 5, NULL, L("reason=\"server_shutdown\"")),
    FIG_FN("runs.by_reason.server_crash", "runs_ended_total", C, sl_run_figure,
           SL_RUN_FIG_REASON_EXIT + 6, NULL, L("reason=\"server_crash\"")),
    FIG_FN("runs.reaped_orphans", "runs_reaped_orphans_total", C, sl_run_figure,
           SL_RUN_FIG_REAPED_ORPHANS, "Processes that came back to sluiced (subreaper) and were reaped."),
    FIG_FN("runs.killed_leftovers", "runs_killed_leftovers_total", C, sl_run_figure,
           SL_RUN_FIG_KILLED_LEFTOVERS, "Processes of ended runs killed by the cleanup."),
    FIG_FN("runs.spawn_ms_avg", "runs_spawn_seconds_avg", G, sl_run_figure,
           SL_RUN_FIG_SPAWN_AVG_NS, "Mean time to spawn a run.", U(UNIT_MS)),
    FIG_FN("runs.first_output_ms_avg", "runs_first_output_seconds_avg", G, sl_run_figure,
           SL_RUN_FIG_FIRST_OUTPUT_AVG_NS, "Mean time from spawn to a run's first output.",
           U(UNIT_MS)),
    FIG_FN("runs.cpu_ms_total", "runs_cpu_seconds_total", C, sl_run_figure, SL_RUN_FIG_CPU_NS,
           "CPU time of ended runs (their rusage).", U(UNIT_MS_WHOLE)),
    FIG_FN("runs.cgroup", "runs_cgroup", G, sl_run_figure, SL_RUN_FIG_CGROUP,
           "1 when each run gets a cgroup of its own.", U(UNIT_BOOL)),
    FIG_FN("children", "run_children", G, sl_run_figure, SL_RUN_FIG_CHILDREN,
           "Live processes under sluiced (runs and what they started)."),
    FIG_FN("zombies", "run_zombies", G, sl_run_figure, SL_RUN_FIG_ZOMBIES,
           "Exited processes under sluiced not yet reaped (stays 0)."),
};
#undef C
#undef G
#undef LIVE
#undef L
#undef U

_Static_assert(SL_BUDGET_KINDS == 7, "one budget.held row per holder kind");
_Static_assert(SL_MSG_CLASS_COUNT == 3, "one mailboxes.refused row per message class");

static uint64_t fig_read(const figure_t *f, sl_server_t *srv, const fig_view_t *v)
{
    switch ((fig_src_t)f->src) {
    case SRC_CTR:
        return atomic_load_explicit((_Atomic uint64_t *)((char *)&srv->counters + f->off),
                                    memory_order_relaxed);
    case SRC_SRV:
        return atomic_load_explicit((_Atomic uint64_t *)((char *)srv + f->off),
                                    memory_order_relaxed);
    case SRC_VIEW:
        return *(const uint64_t *)(const void *)((const char *)v + f->off);
    case SRC_FN:
        return f->fn(srv, f->arg);
    case SRC_ARRAY:
        break;
    }
    return 0;
}

/* Writes a JSON object from dotted paths: opens and closes the nested
 * objects as the rows move between them (their rows are adjacent). */
typedef struct json_walk {
    out_t *c;
    const char *open[2]; /* the open objects' names (pointers into a path) */
    size_t open_len[2];
    uint32_t depth;
    bool comma; /* a member precedes in the innermost open object */
} json_walk_t;

/* Splits path into at most 3 keys. Returns their count. */
static uint32_t path_split(const char *path, const char **k, size_t *n)
{
    uint32_t i = 0;
    for (const char *p = path;; p++) {
        const char *dot = strchr(p, '.');
        k[i] = p;
        n[i] = dot ? (size_t)(dot - p) : strlen(p);
        i++;
        if (!dot || i == 3)
            return i;
        p = dot;
    }
}

static void walk_close(json_walk_t *w, uint32_t depth)
{
    while (w->depth > depth) {
        put(w->c, "}");
        w->depth--;
        w->comma = true;
    }
}

/* Moves to path's parent objects and writes its key; the value follows. */
static void walk_key(json_walk_t *w, const char *path)
{
    const char *k[3];
    size_t n[3];
    uint32_t parts = path_split(path, k, n), keep = 0;
    while (keep < w->depth && keep + 1 < parts && n[keep] == w->open_len[keep] &&
           memcmp(k[keep], w->open[keep], n[keep]) == 0)
        keep++;
    walk_close(w, keep);
    for (; w->depth + 1 < parts; w->depth++) {
        put(w->c, "%s\"%.*s\":{", w->comma ? "," : "", (int)n[w->depth], k[w->depth]);
        w->open[w->depth] = k[w->depth];
        w->open_len[w->depth] = n[w->depth];
        w->comma = false;
    }
    put(w->c, "%s\"%.*s\":", w->comma ? "," : "", (int)n[parts - 1], k[parts - 1]);
    w->comma = true;
}

static void json_value(out_t *c, const figure_t *f, uint64_t v)
{
    switch ((fig_unit_t)f->unit) {
    case UNIT_COUNT:
        put(c, "%" PRIu64, v);
        return;
    case UNIT_BOOL:
        put(c, "%s", v ? "true" : "false");
        return;
    case UNIT_MS:
        put(c, "%.3f", MS(v));
        return;
    case UNIT_MS_WHOLE:
        put(c, "%.0f", MS(v));
        return;
    case UNIT_S:
        put(c, "%.3f", (double)v / 1e9);
        return;
    }
}

/* The live or the snapshot rows of /health into w. */
static void render_json_rows(sl_monitor_t *m, sl_server_t *srv, const fig_view_t *v,
                             json_walk_t *w, bool live)
{
    for (size_t i = 0; i < SL_ARRAY_LEN(figures); i++) {
        const figure_t *f = &figures[i];
        if (f->live != live)
            continue;
        walk_key(w, f->health);
        if (f->src == SRC_ARRAY)
            f->json(m, w->c);
        else
            json_value(w->c, f, fig_read(f, srv, v));
    }
    walk_close(w, 0);
}

/* One family's HELP and TYPE (on its first row), then the row's sample. */
static void render_prom_row(out_t *c, const figure_t *f, const figure_t *prev, uint64_t v)
{
    if (!prev || strcmp(prev->metric ? prev->metric : "", f->metric) != 0)
        put(c, "# HELP sluice_%s %s\n# TYPE sluice_%s %s\n", f->metric, f->help, f->metric,
            f->type == FIG_COUNTER ? "counter" : "gauge");
    put(c, "sluice_%s", f->metric);
    if (f->labels)
        put(c, "{%s}", f->labels);
    if (f->unit == UNIT_COUNT || f->unit == UNIT_BOOL)
        put(c, " %" PRIu64 "\n", f->unit == UNIT_BOOL ? (uint64_t)(v != 0) : v);
    else
        put(c, " %.17g\n", (double)v / 1e9);
}

/* Checks the table's rules (see figures[]) once, at start: a broken row
 * is a programmer error. */
static void figures_check(void)
{
    bool snapshot = false;
    for (size_t i = 0; i < SL_ARRAY_LEN(figures); i++) {
        const figure_t *f = &figures[i];
        sl_assert(f->health && *f->health);
        sl_assert(!(snapshot && f->live)); /* LIVE rows first */
        snapshot |= !f->live;
        if (f->src == SRC_ARRAY) {
            sl_assert(f->json && f->prom && !f->live);
            continue;
        }
        sl_assert(f->metric && f->metric[0] >= 'a' && f->metric[0] <= 'z');
        sl_assert(strspn(f->metric, "abcdefghijklmnopqrstuvwxyz0123456789_") == strlen(f->metric));
        size_t n = strlen(f->metric);
        bool total = n > 6 && strcmp(f->metric + n - 6, "_total") == 0;
        sl_assert(total == (f->type == FIG_COUNTER));
        bool first = i == 0 || !figures[i - 1].metric || strcmp(figures[i - 1].metric, f->metric);
        sl_assert(!first || f->help); /* the family's first row carries its HELP */
        for (size_t j = 0; first && j < i; j++) /* a family's rows are adjacent */
            sl_assert(!figures[j].metric || strcmp(figures[j].metric, f->metric) != 0);
        /* A /health object's rows are adjacent: once left, never reopened. */
        const char *dot = strchr(f->health, '.');
        size_t pre = dot ? (size_t)(dot - f->health) + 1 : 0;
        bool enters = pre && (i == 0 || strncmp(figures[i - 1].health, f->health, pre) != 0);
        for (size_t j = 0; enters && j < i; j++)
            sl_assert(strncmp(figures[j].health, f->health, pre) != 0);
    }
}

/* ---- What the table does not hold: the per-reactor arrays ---- */

static void reactors_json(sl_monitor_t *m, out_t *c)
{
    put(c, "[");
    for (uint32_t i = 0; i < m->srv->nreactors; i++) {
        reactor_view_t *v = &m->reactors[i];
        put(c,
            "%s{\"index\":%u,\"loop_lag_ms_max\":%.3f,\"loop_lag_ms_recent\":%.3f,"
            "\"ops_inflight\":%u,\"submitted\":%" PRIu64 ",\"completed\":%" PRIu64
            ",\"enter_calls\":%" PRIu64 ",\"wakeups\":%" PRIu64 ",\"accepted\":%" PRIu64
            ",\"recv_buffers_free\":%u,\"recv_starved\":%" PRIu64,
            i ? "," : "", i, MS(v->lag_max_ns), MS(v->lag_recent_ns), v->st.ops_inflight,
            v->st.submitted, v->st.completed, v->st.enter_calls, v->st.wakeups, v->st.accepted,
            v->st.recv_buffers_free, v->st.recv_starved);
        if (m->srv->cfg.workers == 0) /* the actors this reactor runs itself */
            put(c,
                ",\"actors\":%u,\"actor_runs\":%" PRIu64 ",\"actor_messages\":%" PRIu64
                ",\"actor_lag_ms_max\":%.3f",
                v->sched.actors_live, v->sched.runs, v->sched.messages,
                MS(v->sched.lag_ns_max));
        put(c, "}");
    }
    put(c, "]");
}

static void reactors_prom(sl_monitor_t *m, out_t *c)
{
    sl_server_t *srv = m->srv;
    put(c, "# HELP sluice_reactor_loop_lag_seconds Reactor loop lag (max over 10 s).\n"
           "# TYPE sluice_reactor_loop_lag_seconds gauge\n");
    for (uint32_t i = 0; i < srv->nreactors; i++)
        put(c, "sluice_reactor_loop_lag_seconds{reactor=\"%u\"} %.9f\n", i,
            (double)m->reactors[i].lag_max_ns / 1e9);
    put(c, "# HELP sluice_reactor_io_uring_enter_total io_uring_enter calls.\n"
           "# TYPE sluice_reactor_io_uring_enter_total counter\n");
    for (uint32_t i = 0; i < srv->nreactors; i++)
        put(c, "sluice_reactor_io_uring_enter_total{reactor=\"%u\"} %" PRIu64 "\n", i,
            m->reactors[i].st.enter_calls);
}

/* ---- Rendering ---- */

static uint64_t ms_to_ns(double ms) { return ms > 0 ? (uint64_t)(ms * 1e6 + 0.5) : 0; }

static void view_fill_watchdog(sl_server_t *srv, fig_view_t *v)
{
    sl_watchdog_stats_t w;
    sl_watchdog_stats(srv->watchdog, &w);
    v->wd_enabled = w.enabled;
    v->wd_interval_ns = w.interval_ms * SL_NS_PER_MS;
    v->wd_grace_ns = w.grace_ms * SL_NS_PER_MS;
    v->wd_paused_limit_ns = w.paused_limit_ms * SL_NS_PER_MS;
    v->wd_tracked = w.tracked;
    v->wd_paused = w.paused;
    v->wd_stalled = w.stalled;
    v->wd_ticks = w.ticks;
    v->wd_probes = w.probes;
    v->wd_probe_errors = w.probe_errors;
    v->wd_tick_last_ns = ms_to_ns(w.tick_ms_last);
    v->wd_tick_max_ns = ms_to_ns(w.tick_ms_max);
    v->wd_reaped_send_stall = w.reaped_send_stall;
    v->wd_reaped_peer_closed = w.reaped_peer_closed;
    v->wd_reaped_paused = w.reaped_paused;
}

/* Samples what the rows read besides plain server atomics (the monitor's
 * thread, once per tick). */
static void view_fill(sl_monitor_t *m, fig_view_t *v)
{
    sl_server_t *srv = m->srv;
    memset(v, 0, sizeof *v);
    if (srv->fdcache) {
        sl_fdcache_stats_t fs;
        pthread_mutex_lock(&srv->fdcache_lock);
        sl_fdcache_stats(srv->fdcache, &fs);
        pthread_mutex_unlock(&srv->fdcache_lock);
        v->open_files = fs.open;
    }
    v->rss_bytes = m->rss_bytes;
    v->open_fds = m->open_fds;
    v->fd_limit = srv->fd_limit;
    uint64_t live = CTR(sessions_live);
    v->sessions_total = srv->registry ? sl_registry_count(srv->registry) : 0;
    v->sessions_hibernated = v->sessions_total > live ? v->sessions_total - live : 0;
    v->busy = m->busy_now;
    v->snapshot_age_ns = srv->cfg.monitor_interval_ns;
    const sl_sched_stats_t *s = &m->sched;
    v->sched_workers = s->workers;
    v->sched_lag_max_ns = m->sched_lag_max_ns;
    v->sched_lag_recent_ns = m->sched_lag_recent_ns;
    v->sched_runs = s->runs;
    v->sched_messages = s->messages;
    v->sched_actors = s->actors_live;
    v->mailbox_capacity = srv->cfg.mailbox_capacity;
    v->mailbox_depth_max = s->mailbox_depth_max;
    for (int k = 0; k < SL_MSG_CLASS_COUNT; k++)
        v->mailbox_refused[k] = s->refused[k];
    v->mailbox_notify_coalesced = s->notify_coalesced;
    v->rpc_listeners = srv->nrpc;
    v->max_open_files = srv->cfg.max_open_files;
    v->syncfs_calls = sl_syncer_syncs(srv->syncer);
    v->chunk_bytes_live = sl_chunk_bytes_live();
    v->chunk_bytes_pooled = sl_chunk_bytes_pooled();
    v->budget_limit = sl_budget_limit();
    v->budget_used = sl_budget_used();
    v->budget_over = v->budget_limit && v->budget_used >= v->budget_limit;
    v->budget_refused_body = sl_budget_refused_body();
    v->conn_worst_bytes = srv->cfg.conn_worst_bytes;
    for (int k = 0; k < SL_BUDGET_KINDS; k++)
        v->budget_held[k] = sl_budget_held((sl_budget_kind_t)k);
    v->auth_enabled = sl_auth_enabled(srv->cfg.auth);
    v->auth_refused_401 = sl_auth_refused(srv->cfg.auth, 401);
    v->auth_refused_403 = sl_auth_refused(srv->cfg.auth, 403);
    view_fill_watchdog(srv, v);
    v->max_connections_per_ip = srv->cfg.max_connections_per_ip;
}

/* /health after its live head: the snapshot rows, then the object's end
 * (sl_monitor_health_json's contract). */
static sl_chunk_t *render_json(sl_monitor_t *m, const fig_view_t *v)
{
    out_t o;
    sl_chunk_t *c = render_start(&o);
    if (!c)
        return NULL;
    json_walk_t w = {.c = &o};
    render_json_rows(m, m->srv, v, &w, false);
    put(&o, "}\n");
    c->len = o.len;
    return c;
}

static sl_chunk_t *render_metrics(sl_monitor_t *m, const fig_view_t *v)
{
    out_t o;
    sl_chunk_t *c = render_start(&o);
    if (!c)
        return NULL;
    const figure_t *prev = NULL;
    for (size_t i = 0; i < SL_ARRAY_LEN(figures); i++) {
        const figure_t *f = &figures[i];
        if (f->src == SRC_ARRAY)
            f->prom(m, &o);
        else
            render_prom_row(&o, f, prev, fig_read(f, m->srv, v));
        prev = f;
    }
    c->len = o.len;
    return c;
}

/* /debug/figures: the table itself, for operators and tests. */
static sl_chunk_t *render_catalogue(void)
{
    out_t o;
    sl_chunk_t *c = render_start(&o);
    if (!c)
        return NULL;
    put(&o, "{\"figures\":[");
    for (size_t i = 0; i < SL_ARRAY_LEN(figures); i++) {
        const figure_t *f = &figures[i];
        put(&o, "%s{\"health\":\"%s\"", i ? "," : "", f->health);
        if (f->src == SRC_ARRAY) {
            put(&o, ",\"array\":true}");
            continue;
        }
        const char *help = f->help;
        for (size_t j = i; !help; j--) /* a family's HELP sits on its first row */
            help = figures[j - 1].help;
        put(&o, ",\"metric\":\"sluice_%s\",\"type\":\"%s\",\"live\":%s,\"help\":\"%s\"",
            f->metric, f->type == FIG_COUNTER ? "counter" : "gauge", f->live ? "true" : "false",
            help);
        if (f->labels) {
            put(&o, ",\"labels\":\"");
            for (const char *p = f->labels; *p; p++) /* JSON-escape the label quotes */
                put(&o, "%s%c", *p == '"' ? "\\" : "", *p);
            put(&o, "\"");
        }
        put(&o, "}");
    }
    put(&o, "]}\n");
    c->len = o.len;
    return c;
}

static void publish(sl_monitor_t *m)
{
    fig_view_t v;
    view_fill(m, &v);
    sl_chunk_t *h = render_json(m, &v), *t = render_metrics(m, &v);
    pthread_mutex_lock(&m->pub_lock);
    sl_chunk_t *oh = h ? m->health : NULL, *ot = t ? m->metrics : NULL;
    if (h)
        m->health = h;
    if (t)
        m->metrics = t;
    pthread_mutex_unlock(&m->pub_lock);
    if (oh)
        sl_chunk_release(oh);
    if (ot)
        sl_chunk_release(ot);
}

static sl_chunk_t *take(sl_monitor_t *m, sl_chunk_t **slot)
{
    pthread_mutex_lock(&m->pub_lock);
    sl_chunk_t *c = *slot;
    if (c)
        sl_chunk_retain(c);
    pthread_mutex_unlock(&m->pub_lock);
    return c;
}

size_t sl_monitor_health_head(sl_server_t *srv, char *buf, size_t cap)
{
    out_t o = {buf, 0, (uint32_t)cap};
    json_walk_t w = {.c = &o};
    put(&o, "{");
    render_json_rows(NULL, srv, NULL, &w, true);
    put(&o, ",");
    return o.len < cap ? o.len : 0;
}

sl_chunk_t *sl_monitor_health_json(sl_monitor_t *m) { return take(m, &m->health); }
sl_chunk_t *sl_monitor_metrics_text(sl_monitor_t *m) { return take(m, &m->metrics); }
sl_chunk_t *sl_monitor_figures_json(sl_monitor_t *m) { return take(m, &m->catalogue); }
bool sl_monitor_busy(sl_monitor_t *m) { return atomic_load_explicit(&m->busy, memory_order_relaxed); }

static void submit(sl_monitor_t *m, sl_op_t *op)
{
    op->owner = &m->a;
    m->ops_inflight++;
    sl_reactor_submit(m->srv->reactors[0], op);
}

static void arm_timer(sl_monitor_t *m)
{
    m->timer.kind = SL_OP_TIMEOUT;
    m->timer.timeout_ns = m->srv->cfg.monitor_interval_ns;
    submit(m, &m->timer);
}

static void arm_read(sl_monitor_t *m)
{
    m->read.kind = SL_OP_READ;
    m->read.fd = m->statm_fd;
    m->read.buf = m->statm;
    m->read.len = sizeof m->statm - 1;
    m->read.offset = 0;
    submit(m, &m->read);
}

static void on_statm(sl_monitor_t *m, int32_t res)
{
    if (res > 0) {
        m->statm[res] = '\0';
        unsigned long long size = 0, resident = 0;
        if (sscanf(m->statm, "%llu %llu", &size, &resident) == 2)
            m->rss_bytes = resident * (uint64_t)sysconf(_SC_PAGESIZE);
    }
}

/* Stop waits for the in-flight timer (at most one interval) instead of
 * cancelling it: simpler, and bounded by --monitor-interval. */
static void behavior(sl_actor_t *self, sl_msg_t *msg)
{
    sl_monitor_t *m = (sl_monitor_t *)self;
    if (msg->kind == MSG_STOP) {
        m->stopping = true;
    } else if (msg->kind == SL_MSG_KIND_IO) {
        sl_op_t *op = sl_op_from_msg(msg);
        m->ops_inflight--;
        if (!m->stopping) {
            if (op == &m->timer && m->statm_fd >= 0) {
                arm_read(m);
            } else {
                if (op == &m->read)
                    on_statm(m, op->res);
                sample(m);
                publish(m);
                sl_sessops_sweep(m->srv);
                arm_timer(m);
            }
        }
    }
    if (m->stopping && m->ops_inflight == 0 && !m->released) {
        m->released = true;
        sl_actor_release(&m->a); /* our own reference; destroy runs last */
    }
}

/* Runs after the last reference (the scheduler's) is gone: from here the
 * main thread may free the record. */
static void destroy(sl_actor_t *self)
{
    sl_monitor_t *m = (sl_monitor_t *)self;
    atomic_store_explicit(&m->stopped, true, memory_order_release);
}

int sl_monitor_create(sl_server_t *srv, sl_monitor_t **out)
{
    sl_monitor_t *m = calloc(1, sizeof *m);
    if (!m)
        return -ENOMEM;
    m->srv = srv;
    pthread_mutex_init(&m->pub_lock, NULL);
    sl_actor_init(&m->a, srv->sched, "monitor", 16, behavior, destroy);
    /* Opened once at start (not a hot path); re-read at offset 0 per tick. */
    m->statm_fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (m->statm_fd >= 0) {
        ssize_t n = pread(m->statm_fd, m->statm, sizeof m->statm - 1, 0);
        on_statm(m, (int32_t)n);
    }
    m->stop_msg.kind = MSG_STOP;
    m->stop_msg.mclass = SL_MSG_CONTROL;
    figures_check();
    m->catalogue = render_catalogue();
    sample(m);
    publish(m);
    *out = m;
    return 0;
}

void sl_monitor_start(sl_monitor_t *m) { arm_timer(m); }

void sl_monitor_stop(sl_monitor_t *m)
{
    /* acq_rel: pairs with itself in a second caller, which sees the record
     * already queued and sends nothing. */
    if (atomic_exchange_explicit(&m->stop_sent, true, memory_order_acq_rel))
        return;
    int rc = sl_actor_send(&m->a, &m->stop_msg);
    sl_assert(rc == 0);
}

int sl_monitor_wait_stopped(sl_monitor_t *m, uint64_t timeout_ns)
{
    uint64_t deadline = sl_clock_now_ns() + timeout_ns;
    while (!atomic_load_explicit(&m->stopped, memory_order_acquire)) {
        if (sl_clock_now_ns() > deadline)
            return -ETIMEDOUT;
        usleep(1000);
    }
    if (m->statm_fd >= 0)
        close(m->statm_fd);
    if (m->health)
        sl_chunk_release(m->health);
    if (m->metrics)
        sl_chunk_release(m->metrics);
    if (m->catalogue)
        sl_chunk_release(m->catalogue);
    pthread_mutex_destroy(&m->pub_lock);
    free(m);
    return 0;
}
