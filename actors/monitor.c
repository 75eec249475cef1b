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
    busy |= sl_run_busy(srv); /* a run is active */
    m->busy_now = busy;
    atomic_store_explicit(&m->busy, busy, memory_order_relaxed);
}

#define CTR(name) atomic_load_explicit(&srv->counters.name, memory_order_relaxed)
#define MS(ns) ((double)(ns) / 1e6)

/* Appends printf output to chunk c, bounded by its capacity. */
static void put(sl_chunk_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(sl_chunk_t *c, const char *fmt, ...)
{
    if (c->len >= c->cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf((char *)c->data + c->len, c->cap - c->len, fmt, ap);
    va_end(ap);
    if (n > 0)
        c->len = c->len + (uint32_t)n < c->cap ? c->len + (uint32_t)n : c->cap;
}

static void render_json_reactors(sl_monitor_t *m, sl_chunk_t *c)
{
    put(c, "\"reactors\":[");
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
    put(c, "],");
}

/* The memory budget (runtime/budget.h): limit, used, holders by kind. */
static void render_json_budget(sl_monitor_t *m, sl_chunk_t *c)
{
    sl_server_t *srv = m->srv;
    uint64_t limit = sl_budget_limit(), used = sl_budget_used();
    put(c, "\"budget\":{\"limit_bytes\":%" PRIu64 ",\"used_bytes\":%" PRIu64
           ",\"over\":%s,\"refused_publish\":%" PRIu64 ",\"refused_subscribe\":%" PRIu64
           ",\"refused_body\":%" PRIu64
           ",\"connections_worst_case_bytes\":%" PRIu64 ",\"held\":{",
        limit, used, limit && used >= limit ? "true" : "false", CTR(budget_refused_publish),
        CTR(budget_refused_subscribe), sl_budget_refused_body(), srv->cfg.conn_worst_bytes);
    for (int k = 0; k < SL_BUDGET_KINDS; k++)
        put(c, "%s\"%s\":%" PRIu64, k ? "," : "", sl_budget_kind_name((sl_budget_kind_t)k),
            sl_budget_held((sl_budget_kind_t)k));
    put(c, "}},");
}

static void metric(sl_chunk_t *c, const char *name, const char *type, const char *help,
                   double v);

static void render_metrics_budget(sl_monitor_t *m, sl_chunk_t *c)
{
    sl_server_t *srv = m->srv;
    metric(c, "memory_limit_bytes", "gauge", "Global memory budget (--memory-limit).",
           (double)sl_budget_limit());
    metric(c, "memory_used_bytes", "gauge", "Bytes counted against the memory budget.",
           (double)sl_budget_used());
    put(c, "# HELP sluice_memory_held_bytes Budgeted bytes per holder kind.\n"
           "# TYPE sluice_memory_held_bytes gauge\n");
    for (int k = 0; k < SL_BUDGET_KINDS; k++)
        put(c, "sluice_memory_held_bytes{kind=\"%s\"} %" PRIu64 "\n",
            sl_budget_kind_name((sl_budget_kind_t)k), sl_budget_held((sl_budget_kind_t)k));
    put(c, "# HELP sluice_budget_refused_total Requests refused over the memory budget.\n"
           "# TYPE sluice_budget_refused_total counter\n"
           "sluice_budget_refused_total{what=\"publish\"} %" PRIu64 "\n"
           "sluice_budget_refused_total{what=\"subscribe\"} %" PRIu64 "\n"
           "sluice_budget_refused_total{what=\"body\"} %" PRIu64 "\n",
        CTR(budget_refused_publish), CTR(budget_refused_subscribe), sl_budget_refused_body());
    metric(c, "connections_closed_body_timeout_total", "counter",
           "Connections closed for a request body or RPC message that stalled.",
           (double)CTR(closed_body_timeout));
    metric(c, "connections_rejected_per_ip_total", "counter",
           "Connections closed at --max-connections-per-ip.", (double)CTR(rejected_per_ip));
}

/* The watchdog and the backstops (actors/watchdog.h, conn_guard.c); ends
 * the object. */
static void render_json_liveness(sl_monitor_t *m, sl_chunk_t *c)
{
    sl_server_t *srv = m->srv;
    sl_watchdog_stats_t w;
    sl_watchdog_stats(srv->watchdog, &w);
    put(c,
        "\"watchdog\":{\"enabled\":%s,\"interval_ms\":%" PRIu64 ",\"dead_peer_grace_ms\":%" PRIu64
        ",\"paused_peer_limit_ms\":%" PRIu64 ",\"tracked\":%" PRIu64 ",\"paused\":%" PRIu64
        ",\"stalled\":%" PRIu64 ",\"ticks\":%" PRIu64 ",\"probes\":%" PRIu64
        ",\"probe_errors\":%" PRIu64 ",\"tick_ms_last\":%.3f,\"tick_ms_max\":%.3f"
        ",\"reaped_send_stall\":%" PRIu64 ",\"reaped_peer_closed\":%" PRIu64
        ",\"reaped_paused\":%" PRIu64 "},",
        w.enabled ? "true" : "false", w.interval_ms, w.grace_ms, w.paused_limit_ms, w.tracked,
        w.paused, w.stalled, w.ticks, w.probes, w.probe_errors, w.tick_ms_last, w.tick_ms_max,
        w.reaped_send_stall, w.reaped_peer_closed, w.reaped_paused);
    put(c,
        "\"guard\":{\"closed_ping_timeout\":%" PRIu64 ",\"h2_rapid_reset\":%" PRIu64
        ",\"h2_control_flood\":%" PRIu64 ",\"h2_continuation_flood\":%" PRIu64
        ",\"h2_ack_flood\":%" PRIu64 ",\"closed_body_timeout\":%" PRIu64
        ",\"rejected_per_ip\":%" PRIu64 ",\"max_connections_per_ip\":%u}}\n",
        CTR(closed_ping_timeout), CTR(h2_rapid_reset), CTR(h2_control_flood),
        CTR(h2_continuation_flood), CTR(h2_ack_flood), CTR(closed_body_timeout),
        CTR(rejected_per_ip), srv->cfg.max_connections_per_ip);
}

static sl_chunk_t *render_json(sl_monitor_t *m)
{
    sl_server_t *srv = m->srv;
    sl_chunk_t *c = sl_chunk_create(RENDER_BYTES_MAX);
    if (!c)
        return NULL;
    uint32_t total = srv->registry ? sl_registry_count(srv->registry) : 0;
    uint32_t open_files = 0;
    if (srv->fdcache) {
        sl_fdcache_stats_t fs;
        pthread_mutex_lock(&srv->fdcache_lock);
        sl_fdcache_stats(srv->fdcache, &fs);
        pthread_mutex_unlock(&srv->fdcache_lock);
        open_files = fs.open;
    }
    /* The live figures (uptime, connections, streams) are prepended per
     * request by the connection (sl_monitor_health_json's contract), so
     * this body starts inside the object. */
    put(c,
        "\"rss_bytes\":%" PRIu64 ",\"open_fds\":%" PRIu64 ",\"fd_limit\":%" PRIu64
        ",\"sessions\":{\"live\":%" PRIu64 ",\"hibernated\":%" PRIu64 ",\"total\":%u}"
        ",\"subscribers\":%" PRIu64 ",\"busy\":%s,\"snapshot_age_ms_max\":%.0f,",
        m->rss_bytes, m->open_fds, srv->fd_limit, CTR(sessions_live),
        total > CTR(sessions_live) ? total - CTR(sessions_live) : 0, total, CTR(subscribers),
        m->busy_now ? "true" : "false", (double)srv->cfg.monitor_interval_ns / 1e6);
    c->len += (uint32_t)sl_run_health_json(srv, (char *)c->data + c->len, c->cap - c->len);
    render_json_reactors(m, c);
    const sl_sched_stats_t *s = &m->sched;
    put(c,
        "\"scheduler\":{\"workers\":%u,\"lag_ms_max\":%.3f,\"lag_ms_recent\":%.3f,"
        "\"runs\":%" PRIu64 ",\"messages\":%" PRIu64 ",\"actors\":%u},",
        s->workers, MS(m->sched_lag_max_ns), MS(m->sched_lag_recent_ns), s->runs, s->messages,
        s->actors_live);
    put(c,
        "\"mailboxes\":{\"capacity\":%u,\"depth_max\":%u,\"refused_normal\":%" PRIu64
        ",\"refused_control\":%" PRIu64 ",\"refused_completion\":%" PRIu64
        ",\"notify_coalesced\":%" PRIu64 "},",
        srv->cfg.mailbox_capacity, s->mailbox_depth_max, s->refused[SL_MSG_NORMAL],
        s->refused[SL_MSG_CONTROL], s->refused[SL_MSG_COMPLETION], s->notify_coalesced);
    put(c,
        "\"http\":{\"accepted\":%" PRIu64 ",\"rejected_max_connections\":%" PRIu64
        ",\"requests\":%" PRIu64 ",\"protocol_errors\":%" PRIu64 ",\"closed_idle\":%" PRIu64
        ",\"closed_header_timeout\":%" PRIu64 ",\"responses_4xx\":%" PRIu64
        ",\"responses_5xx\":%" PRIu64 ",\"bytes_in\":%" PRIu64 ",\"bytes_out\":%" PRIu64
        ",\"sends\":%" PRIu64 ",\"fanout_held\":%" PRIu64 "},",
        CTR(accepted), CTR(rejected_max_connections), CTR(requests), CTR(protocol_errors),
        CTR(closed_idle), CTR(closed_header_timeout), CTR(responses_4xx), CTR(responses_5xx),
        CTR(bytes_in), CTR(bytes_out), CTR(sends), CTR(fanout_held));
    put(c,
        "\"rpc\":{\"listeners\":%u,\"connections\":%" PRIu64 ",\"requests\":%" PRIu64
        ",\"subscriptions\":%" PRIu64 ",\"protocol_errors\":%" PRIu64 "},",
        srv->nrpc, CTR(rpc_connections), CTR(rpc_requests), CTR(rpc_subscriptions),
        CTR(rpc_protocol_errors));
    put(c,
        "\"events\":{\"published\":%" PRIu64 ",\"delivered\":%" PRIu64
        ",\"caught_up\":%" PRIu64 ",\"gapped\":%" PRIu64 ",\"publish_refused\":%" PRIu64 "},"
        "\"storage\":{\"open_files\":%u,\"max_open_files\":%u,\"bytes_written\":%" PRIu64
        ",\"fsyncs\":%" PRIu64 ",\"syncfs_rounds\":%" PRIu64 ",\"syncfs_calls\":%" PRIu64
        ",\"catchup_reads\":%" PRIu64 ",\"failures\":%" PRIu64
        ",\"damaged_segments\":%" PRIu64 ",\"quarantined_bytes\":%" PRIu64
        ",\"damage_resyncs\":%" PRIu64 ",\"gaps_served\":%" PRIu64 "},"
        "\"memory\":{\"chunk_bytes_live\":%" PRIu64 "},",
        CTR(events_published), CTR(events_delivered), CTR(events_caught_up), CTR(events_gapped),
        CTR(publish_refused), open_files, srv->cfg.max_open_files,
        atomic_load(&srv->journal_bytes_written), atomic_load(&srv->journal_fsyncs),
        atomic_load(&srv->journal_syncfs_rounds), sl_syncer_syncs(srv->syncer),
        atomic_load(&srv->journal_reads), atomic_load(&srv->journal_failures),
        atomic_load(&srv->storage_damaged_segments), atomic_load(&srv->storage_quarantined_bytes),
        atomic_load(&srv->storage_damage_resyncs), atomic_load(&srv->storage_gaps_served),
        sl_chunk_bytes_live());
    render_json_budget(m, c);
    /* Access control (actors/auth.h): requests refused per status. */
    put(c, "\"auth\":{\"enabled\":%s,\"refused_401\":%" PRIu64 ",\"refused_403\":%" PRIu64 "},",
        sl_auth_enabled(srv->cfg.auth) ? "true" : "false", sl_auth_refused(srv->cfg.auth, 401),
        sl_auth_refused(srv->cfg.auth, 403));
    render_json_liveness(m, c);
    return c;
}

static void metric(sl_chunk_t *c, const char *name, const char *type, const char *help,
                   double v)
{
    put(c, "# HELP sluice_%s %s\n# TYPE sluice_%s %s\nsluice_%s %.17g\n", name, help, name, type,
        name, v);
}

static void render_metrics_liveness(sl_monitor_t *m, sl_chunk_t *c)
{
    sl_server_t *srv = m->srv;
    sl_watchdog_stats_t w;
    sl_watchdog_stats(srv->watchdog, &w);
    metric(c, "watchdog_enabled", "gauge", "1 when the half-open peer watchdog runs.", w.enabled);
    metric(c, "watchdog_tracked", "gauge", "Sockets with unacked output the watchdog probes.",
           (double)w.tracked);
    metric(c, "watchdog_paused", "gauge", "Live zero-window peers on the last tick.", (double)w.paused);
    metric(c, "watchdog_stalled", "gauge", "Queued peers without acked progress on the last tick.",
           (double)w.stalled);
    metric(c, "watchdog_tick_seconds_max", "gauge", "Longest watchdog sweep.", w.tick_ms_max / 1e3);
    put(c, "# HELP sluice_watchdog_reaped_total Connections reaped by the watchdog, per reason.\n"
           "# TYPE sluice_watchdog_reaped_total counter\n"
           "sluice_watchdog_reaped_total{reason=\"send_stall\"} %" PRIu64 "\n"
           "sluice_watchdog_reaped_total{reason=\"peer_closed\"} %" PRIu64 "\n"
           "sluice_watchdog_reaped_total{reason=\"paused\"} %" PRIu64 "\n",
        w.reaped_send_stall, w.reaped_peer_closed, w.reaped_paused);
    metric(c, "connections_closed_ping_timeout_total", "counter",
           "HTTP/2 connections closed for an unanswered PING.", (double)CTR(closed_ping_timeout));
    metric(c, "connections_closed_idle_total", "counter", "Connections closed idle.",
           (double)CTR(closed_idle));
    metric(c, "connections_closed_header_timeout_total", "counter",
           "Connections closed for a request head that did not complete in time.",
           (double)CTR(closed_header_timeout));
    put(c, "# HELP sluice_h2_abuse_total HTTP/2 connections ended with ENHANCE_YOUR_CALM, per kind.\n"
           "# TYPE sluice_h2_abuse_total counter\n"
           "sluice_h2_abuse_total{kind=\"rapid_reset\"} %" PRIu64 "\n"
           "sluice_h2_abuse_total{kind=\"control_flood\"} %" PRIu64 "\n"
           "sluice_h2_abuse_total{kind=\"continuation_flood\"} %" PRIu64 "\n"
           "sluice_h2_abuse_total{kind=\"ack_flood\"} %" PRIu64 "\n",
        CTR(h2_rapid_reset), CTR(h2_control_flood), CTR(h2_continuation_flood), CTR(h2_ack_flood));
}

static sl_chunk_t *render_metrics(sl_monitor_t *m)
{
    sl_server_t *srv = m->srv;
    sl_chunk_t *c = sl_chunk_create(RENDER_BYTES_MAX);
    if (!c)
        return NULL;
    metric(c, "uptime_seconds", "gauge", "Seconds since start.",
           (double)(sl_clock_now_ns() - srv->start_ns) / 1e9);
    metric(c, "rss_bytes", "gauge", "Resident set size.", (double)m->rss_bytes);
    metric(c, "open_fds", "gauge", "Open file descriptors.", (double)m->open_fds);
    metric(c, "fd_limit", "gauge", "File descriptor limit.", (double)srv->fd_limit);
    metric(c, "connections", "gauge", "Open client connections.", (double)CTR(connections_open));
    metric(c, "streams", "gauge", "Open response streams.", (double)CTR(streams_open));
    metric(c, "busy", "gauge", "1 when lag or resource use is high.", m->busy_now);
    metric(c, "connections_accepted_total", "counter", "Accepted connections.", (double)CTR(accepted));
    metric(c, "connections_rejected_total", "counter", "Connections closed at --max-connections.",
           (double)CTR(rejected_max_connections));
    metric(c, "http_requests_total", "counter", "Requests received.", (double)CTR(requests));
    metric(c, "protocol_errors_total", "counter", "Connections failed by a protocol error.",
           (double)CTR(protocol_errors));
    metric(c, "rpc_connections", "gauge", "Open msgpack-RPC connections.",
           (double)CTR(rpc_connections));
    metric(c, "rpc_requests_total", "counter", "msgpack-RPC requests received.",
           (double)CTR(rpc_requests));
    metric(c, "tls_handshakes_total", "counter", "TLS handshakes completed.",
           (double)CTR(tls_handshakes));
    metric(c, "tls_resumed_total", "counter", "TLS handshakes that resumed a session.",
           (double)CTR(tls_resumed));
    metric(c, "tls_handshake_failures_total", "counter", "TLS handshakes refused or broken.",
           (double)CTR(tls_handshake_failures));
    metric(c, "tls_reloads_total", "counter", "Certificate reloads (SIGHUP) that took effect.",
           (double)CTR(tls_reloads));
    metric(c, "rpc_subscriptions", "gauge", "Open msgpack-RPC subscriptions.",
           (double)CTR(rpc_subscriptions));
    metric(c, "rpc_protocol_errors_total", "counter",
           "msgpack-RPC connections closed for bad framing or a limit.",
           (double)CTR(rpc_protocol_errors));
    metric(c, "bytes_in_total", "counter", "Bytes received.", (double)CTR(bytes_in));
    metric(c, "bytes_out_total", "counter", "Bytes sent.", (double)CTR(bytes_out));
    metric(c, "sends_total", "counter", "Socket sends submitted (HTTP and msgpack-RPC).",
           (double)CTR(sends));
    metric(c, "fanout_held_total", "counter",
           "Fan-out sends a connection held back to share one send per --fanout-budget.",
           (double)CTR(fanout_held));
    metric(c, "sessions_live", "gauge", "Session actors running.", (double)CTR(sessions_live));
    metric(c, "subscribers", "gauge", "Open SSE subscriptions.", (double)CTR(subscribers));
    metric(c, "events_published_total", "counter", "Events sequenced.", (double)CTR(events_published));
    metric(c, "events_delivered_total", "counter", "Events handed to subscriber streams.",
           (double)CTR(events_delivered));
    metric(c, "events_gapped_total", "counter", "Events subscribers were told they missed.",
           (double)CTR(events_gapped));
    metric(c, "publish_refused_total", "counter", "Publishes answered 503 (busy session).",
           (double)CTR(publish_refused));
    metric(c, "storage_damaged_segments", "gauge", "Segments found damaged at startup.",
           (double)atomic_load(&srv->storage_damaged_segments));
    metric(c, "storage_quarantined_bytes", "gauge", "Bytes recovery moved to quarantine files.",
           (double)atomic_load(&srv->storage_quarantined_bytes));
    metric(c, "storage_damage_resyncs_total", "counter",
           "Catch-up reads that skipped damaged log bytes.",
           (double)atomic_load(&srv->storage_damage_resyncs));
    metric(c, "storage_gaps_served_total", "counter", "sluice.gap notices served by catch-up.",
           (double)atomic_load(&srv->storage_gaps_served));
    render_metrics_liveness(m, c);
    render_metrics_budget(m, c);
    put(c, "# HELP sluice_auth_refused_total Requests refused by access control, per status.\n"
           "# TYPE sluice_auth_refused_total counter\n"
           "sluice_auth_refused_total{status=\"401\"} %" PRIu64 "\n"
           "sluice_auth_refused_total{status=\"403\"} %" PRIu64 "\n",
        sl_auth_refused(srv->cfg.auth, 401), sl_auth_refused(srv->cfg.auth, 403));
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
    metric(c, "scheduler_lag_seconds", "gauge", "Actor queue-to-run delay (max over 10 s).",
           (double)m->sched_lag_max_ns / 1e9);
    metric(c, "scheduler_messages_total", "counter", "Actor messages delivered.",
           (double)m->sched.messages);
    metric(c, "mailbox_depth_max", "gauge", "Deepest mailbox in the last interval.",
           (double)m->sched.mailbox_depth_max);
    put(c, "# HELP sluice_mailbox_refused_total Sends refused by a full mailbox, per class.\n"
           "# TYPE sluice_mailbox_refused_total counter\n"
           "sluice_mailbox_refused_total{class=\"normal\"} %" PRIu64 "\n"
           "sluice_mailbox_refused_total{class=\"control\"} %" PRIu64 "\n"
           "sluice_mailbox_refused_total{class=\"completion\"} %" PRIu64 "\n",
        m->sched.refused[SL_MSG_NORMAL], m->sched.refused[SL_MSG_CONTROL],
        m->sched.refused[SL_MSG_COMPLETION]);
    c->len += (uint32_t)sl_run_metrics_text(srv, (char *)c->data + c->len, c->cap - c->len);
    return c;
}

static void publish(sl_monitor_t *m)
{
    sl_chunk_t *h = render_json(m), *t = render_metrics(m);
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
    bool tls = srv->cfg.tls_cert && *srv->cfg.tls_cert;
    int n = snprintf(buf, cap,
                     "{\"uptime_s\":%.3f,\"connections\":%" PRIu64 ",\"streams\":%" PRIu64 ","
                     "\"tls\":{\"enabled\":%s,\"ktls\":false,\"handshakes\":%" PRIu64
                     ",\"resumed\":%" PRIu64 ",\"handshake_failures\":%" PRIu64
                     ",\"reloads\":%" PRIu64 ",\"reload_failures\":%" PRIu64 "},",
                     (double)(sl_clock_now_ns() - srv->start_ns) / 1e9, CTR(connections_open),
                     CTR(streams_open), tls ? "true" : "false", CTR(tls_handshakes),
                     CTR(tls_resumed), CTR(tls_handshake_failures), CTR(tls_reloads),
                     CTR(tls_reload_failures));
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

sl_chunk_t *sl_monitor_health_json(sl_monitor_t *m) { return take(m, &m->health); }
sl_chunk_t *sl_monitor_metrics_text(sl_monitor_t *m) { return take(m, &m->metrics); }
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
    pthread_mutex_destroy(&m->pub_lock);
    free(m);
    return 0;
}
