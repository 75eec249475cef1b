/*
 * The flag table of sluiced. Each entry names its bound and default; the
 * policy at each bound is documented in config.h and README.
 */
#include "actors/config.h"
#include "actors/run.h"
#include "actors/auth.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <stdlib.h>

#include "actors/server.h"
#include "net/http.h"
#include "net/rpc.h"
#include "net/tls.h"
#include "runtime/budget.h"
#include "runtime/base.h"
#include "runtime/limits.h"

#define SEC 1000000000ull
#define MIB (1ull << 20)

#ifndef SLUICE_VERSION
#define SLUICE_VERSION "0.1.0"
#endif

static const char summary[] =
    "sluiced: durable event sessions streamed over HTTP/2 and HTTP/1.1 server-sent events.";

/* The env twin of a list flag holds several values, comma-separated:
 * split them in place of the one item (copies live until exit). */
static int split_list(sl_flag_list_t *l, char *err, size_t n)
{
    sl_flag_list_t out = {0};
    for (uint32_t i = 0; i < l->count; i++) {
        char *copy = strdup(l->items[i]), *save = NULL;
        if (!copy) {
            snprintf(err, n, "out of memory");
            return -1;
        }
        for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            if (out.count >= SL_FLAG_LIST_MAX) {
                snprintf(err, n, "at most %d listen addresses per flag", SL_FLAG_LIST_MAX);
                return -1;
            }
            out.items[out.count++] = t;
        }
    }
    *l = out;
    return 0;
}

/* The global bound (README "Bounds and their policies"): per-connection
 * caps multiply by --max-connections. When that product fits the memory
 * limit nothing more is needed; when it does not, the budget's admission
 * is what bounds memory (new publishes and subscriptions refused at the
 * limit, catch-up reads clamped), and start says so once. */
static int config_check_budget(sl_config_t *c, char *err, size_t n)
{
    if (c->memory_limit == 0)
        c->memory_limit = sl_budget_default_limit("/sys/fs/cgroup");
    /* One live session's ring and log buffers plus one event in flight
     * must fit, or the first busy session alone would hold the server
     * over its limit. */
    uint64_t one_session = c->session_ring_bytes + 2 * c->journal_buffer_bytes + c->max_event_bytes;
    if (c->memory_limit != 0 && one_session >= c->memory_limit) {
        snprintf(err, n, "--memory-limit (%llu) must exceed --session-ring-bytes + 2 x "
                 "--journal-buffer-bytes + --max-event-bytes (%llu)",
                 (unsigned long long)c->memory_limit, (unsigned long long)one_session);
        return -1;
    }
    sl_http_config_t hc;
    sl_http_config_default(&hc);
    uint64_t held = hc.mem_max_bytes;
    if (c->max_body_bytes > held)
        held = c->max_body_bytes;
    if (c->max_rpc_message_bytes > held)
        held = c->max_rpc_message_bytes;
    uint64_t per_conn = c->max_conn_output_bytes + hc.conn_buffer_bytes + held;
    c->conn_worst_bytes = per_conn * c->max_connections; /* both bounded: no overflow */
    return 0;
}

/* Relations between the liveness flags (README "Peers and liveness"). */
static int config_check_liveness(const sl_config_t *c, char *err, size_t n)
{
    if (c->watchdog_interval_ns != 0 && c->watchdog_interval_ns < SEC / 100) {
        snprintf(err, n, "--watchdog-interval: expected 0 (off) or at least 0.01 s");
        return -1;
    }
    if (c->watchdog_interval_ns != 0 && c->dead_peer_grace_ns < c->watchdog_interval_ns) {
        snprintf(err, n, "--dead-peer-grace must be at least --watchdog-interval");
        return -1;
    }
    if (c->tcp_user_timeout_ns != 0 && c->paused_peer_limit_ns != 0 &&
        c->tcp_user_timeout_ns < c->paused_peer_limit_ns) {
        snprintf(err, n, "--tcp-user-timeout must be at least --paused-peer-limit (the kernel "
                         "aborts paused peers at it)");
        return -1;
    }
    return 0;
}

/* --rpc-socket-mode, and every unix:PATH of --rpc-listen: a path another
 * live server answers on is refused here (exit 2) rather than unlinked
 * from under it; a stale socket file is replaced at bind. */
static int config_check_rpc_unix(sl_config_t *c, char *err, size_t n)
{
    const char *m = c->rpc_socket_mode_text;
    char *end = NULL;
    unsigned long mode = m && *m ? strtoul(m, &end, 8) : 01000;
    if (!end || *end || mode > 0777) {
        snprintf(err, n, "--rpc-socket-mode: expected an octal file mode in 0..0777, got '%s'",
                 m ? m : "");
        return -1;
    }
    c->rpc_socket_mode = (uint32_t)mode;
    for (uint32_t i = 0; i < c->rpc_listen.count; i++) {
        const char *addr = c->rpc_listen.items[i];
        if (strncmp(addr, "unix:", 5) != 0)
            continue;
        int rc = sl_server_unix_probe(addr + 5);
        for (uint64_t waited = 0; rc == -EADDRINUSE && waited < SL_RPC_UNIX_PROBE_GRACE_NS;
             waited += SL_RPC_UNIX_PROBE_STEP_NS) {
            struct timespec step = {0, (long)SL_RPC_UNIX_PROBE_STEP_NS};
            nanosleep(&step, NULL);
            rc = sl_server_unix_probe(addr + 5);
        }
        if (rc == -EADDRINUSE) {
            snprintf(err, n, "--rpc-listen %s: the socket is in use (another server answers on "
                             "it); stop it or choose another path", addr);
            return -1;
        }
        if (rc == -EEXIST) {
            snprintf(err, n, "--rpc-listen %s: the path exists and is not a socket", addr);
            return -1;
        }
        if (rc == SL_EINVAL) {
            snprintf(err, n, "--rpc-listen %s: the path is too long for a unix socket", addr);
            return -1;
        }
    }
    return 0;
}

/* --tls-cert / --tls-key load and match (exit 2 at start, not at the
 * first handshake), and --tls-ktls against what the kernel offers. */
static int config_check_tls(sl_config_t *c, char *err, size_t n)
{
    bool cert = c->tls_cert && *c->tls_cert, key = c->tls_key && *c->tls_key;
    if (!cert && !key && strcmp(c->tls_ktls, "on") == 0) {
        snprintf(err, n, "--tls-ktls on needs --tls-cert and --tls-key");
        return -1;
    }
    if (!cert && !key)
        return 0;
    if (!cert || !key) {
        snprintf(err, n, "--tls-cert and --tls-key go together");
        return -1;
    }
    sl_tls_ctx_t *ctx = NULL;
    if (sl_tls_ctx_create(&ctx, c->tls_cert, c->tls_key, err, n) != 0)
        return -1;
    sl_tls_ctx_release(ctx);
    c->tls_ktls_kernel = sl_tls_ktls_probe() == 1;
    if (strcmp(c->tls_ktls, "on") == 0) {
        snprintf(err, n, c->tls_ktls_kernel
                             ? "--tls-ktls on: the kernel offers kTLS but this build does not "
                               "implement the offload yet (use auto or off)"
                             : "--tls-ktls on: the kernel has no kTLS (setsockopt TCP_ULP \"tls\" "
                               "fails with ENOENT: CONFIG_TLS is not set)");
        return -1;
    }
    return 0;
}

/* ceil(quota / period) from one cgroup v2 cpu.max file ("max 100000" or
 * "200000 100000"); 0 when absent or unlimited. */
static long cpu_max_cores(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char q[32] = "";
    long period = 0, quota = 0;
    if (fscanf(f, "%31s %ld", q, &period) == 2 && strcmp(q, "max") != 0)
        quota = strtol(q, NULL, 10);
    fclose(f);
    return quota > 0 && period > 0 ? (quota + period - 1) / period : 0;
}

/* The tightest CPU quota, as cores, on this process's cgroup v2 path and
 * its ancestors, or the v1 cfs files; 0 when there is none. */
static long cgroup_quota_cores(void)
{
    char rel[600] = "", path[640];
    FILE *f = fopen("/proc/self/cgroup", "r");
    if (f) {
        char line[600];
        while (fgets(line, sizeof line, f))
            if (strncmp(line, "0::", 3) == 0)
                snprintf(rel, sizeof rel, "%s", line + 3);
        fclose(f);
    }
    rel[strcspn(rel, "\n")] = '\0';
    long best = 0;
    for (;;) { /* the process's own cgroup, then each parent up to the root */
        snprintf(path, sizeof path, "/sys/fs/cgroup%s/cpu.max", strcmp(rel, "/") ? rel : "");
        long q = cpu_max_cores(path);
        if (q > 0 && (best == 0 || q < best))
            best = q;
        char *slash = strrchr(rel, '/');
        if (!slash || slash == rel)
            break;
        *slash = '\0';
    }
    if (best == 0) /* namespaced view: the own cgroup is mounted as the root */
        best = cpu_max_cores("/sys/fs/cgroup/cpu.max");
    long quota = -1, period = 0;
    if (best == 0 && (f = fopen("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "r")) != NULL) {
        if (fscanf(f, "%ld", &quota) != 1)
            quota = -1;
        fclose(f);
        if ((f = fopen("/sys/fs/cgroup/cpu/cpu.cfs_period_us", "r")) != NULL) {
            if (fscanf(f, "%ld", &period) != 1)
                period = 0;
            fclose(f);
        }
        if (quota > 0 && period > 0)
            best = (quota + period - 1) / period;
    }
    return best;
}

/* Cores this process may really use: its CPU affinity mask, further
 * limited by a cgroup CPU quota (containers), at least 1. */
static long usable_cores(void)
{
    cpu_set_t set;
    long cores = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set)
                                                              : sysconf(_SC_NPROCESSORS_ONLN);
    long quota = cgroup_quota_cores();
    if (quota > 0 && quota < cores)
        cores = quota;
    return cores < 1 ? 1 : cores;
}

_Static_assert(SL_AUTH_LEEWAY_S_DEFAULT == 60, "the --auth-leeway default in the flag table");

/* The keyring, and protected mode: no key and a listener beyond loopback
 * refuses to start unless --allow-anonymous (actors/auth.h). */
static int config_load_auth(sl_config_t *c, char *err, size_t n)
{
    if (split_list(&c->auth_hs256_secret_files, err, n) != 0 ||
        split_list(&c->auth_public_key_files, err, n) != 0)
        return -1;
    sl_auth_config_t ac = {&c->auth_hs256_secret_files, &c->auth_public_key_files,
                           c->auth_issuer, c->auth_audience, c->auth_leeway_ns};
    if (sl_auth_create(&ac, &c->auth, err, n) != 0)
        return -1;
    if (sl_auth_check_listeners(c->auth, c->listen, &c->rpc_listen, c->allow_anonymous, err,
                                n) != 0) {
        sl_auth_destroy(c->auth);
        c->auth = NULL;
        return -1;
    }
    return 0;
}

int sl_config_load(sl_config_t *c, int argc, char **argv, char *err, size_t n)
{
    memset(c, 0, sizeof *c);
    static char reactors_def[24];
    long cores = usable_cores();
    snprintf(reactors_def, sizeof reactors_def, "%ld",
             cores > SL_REACTORS_MAX ? (long)SL_REACTORS_MAX : cores);
    const sl_flag_t flags[] = {
        {"listen", SL_FLAG_STRING, "127.0.0.1:8080", "HTTP listen address HOST:PORT (port 0 picks a free port)", &c->listen, 0, 0, NULL},
        {"rpc-listen", SL_FLAG_LIST, NULL, "msgpack-RPC listen address HOST:PORT or unix:PATH (repeatable; env: comma-separated; none: RPC off)", &c->rpc_listen, 0, 0, NULL},
        {"rpc-socket-mode", SL_FLAG_STRING, "0660", "file mode (octal) of unix:PATH RPC sockets; who may connect is who may publish", &c->rpc_socket_mode_text, 0, 0, NULL},
        {"max-rpc-message-bytes", SL_FLAG_BYTES, "2m", "largest msgpack-RPC message; a larger one closes the connection", &c->max_rpc_message_bytes, 1024, SL_RPC_MESSAGE_BYTES_MAX, NULL},
        {"rpc-max-inflight", SL_FLAG_U32, "1024", "RPC requests awaiting a session's answer per connection; at the bound the connection is not read (TCP backpressure)", &c->rpc_max_inflight, 1, 65536, NULL},
        {"data-dir", SL_FLAG_STRING, "./sluice-data", "directory for session logs (created if missing)", &c->data_dir, 0, 0, NULL},
        {"ready-file", SL_FLAG_STRING, NULL, "write http=HOST:PORT here once accepting", &c->ready_file, 0, 0, NULL},
        {"log-level", SL_FLAG_ENUM, "info", "debug|info|warn|error", &c->log_level, 0, 0, "debug|info|warn|error"},
        {"reactors", SL_FLAG_U32, reactors_def, "io_uring reactor threads (default: usable cores: CPU affinity, capped by a cgroup CPU quota)", &c->reactors, 1, SL_REACTORS_MAX, NULL},
        {"workers", SL_FLAG_U32, "0", "0: thread-per-core, each reactor runs the actors of its connections and sessions between its I/O rounds; N: a shared pool of N actor threads (for CPU-heavy actor work that would stall a reactor's I/O)", &c->workers, 0, SL_WORKERS_MAX, NULL},
        {"reactor-linger", SL_FLAG_SECONDS, "0", "a reactor that fell asleep less than this ago gathers the peers' data that arrives until then and handles it in one wake-up: fewer wake-ups at steady event rates, but up to this much latency per round trip for peers that wait on answers (0: off; needs Linux 6.12+)", &c->reactor_linger_ns, 0, SL_REACTOR_BATCH_WAIT_NS_MAX, NULL},
        {"shutdown-grace", SL_FLAG_SECONDS, "10", "seconds to finish in-flight work on SIGTERM", &c->shutdown_grace_ns, 0, 3600 * SEC, NULL},
        {"max-connections", SL_FLAG_U32, "10000", "open connections; excess are accepted and closed", &c->max_connections, 1, 1000000, NULL},
        {"max-header-bytes", SL_FLAG_BYTES, "16k", "request header bytes (431 beyond)", &c->max_header_bytes, 1024, 1 * MIB, NULL},
        {"max-body-bytes", SL_FLAG_BYTES, "8m", "request body bytes (413 beyond)", &c->max_body_bytes, 1024, 1024 * MIB, NULL},
        {"max-event-bytes", SL_FLAG_BYTES, "1m", "event data bytes (413 / too_large beyond; at most 16m, the log's record cap)", &c->max_event_bytes, 1, SL_EVENT_BYTES_MAX, NULL},
        {"max-conn-output-bytes", SL_FLAG_BYTES, "4m", "pending output per connection; producers pause at it", &c->max_conn_output_bytes, 64 * 1024, 1024 * MIB, NULL},
        {"max-streams", SL_FLAG_U32, "256", "concurrent HTTP/2 streams per connection", &c->max_streams, 1, 65536, NULL},
        {"idle-timeout", SL_FLAG_SECONDS, "60", "close connections idle this long (no request, no stream)", &c->idle_timeout_ns, SEC / 10, 86400 * SEC, NULL},
        {"header-timeout", SL_FLAG_SECONDS, "10", "a request's headers must arrive within this", &c->header_timeout_ns, SEC / 10, 3600 * SEC, NULL},
        {"monitor-interval", SL_FLAG_SECONDS, "0.25", "resource snapshot refresh period", &c->monitor_interval_ns, SEC / 100, 60 * SEC, NULL},
        {"recv-buffers", SL_FLAG_U32, "1024", "provided 16 KiB receive buffers per reactor (power of two; all get touched in rotation, so this sets RSS)", &c->recv_buffers, 8, SL_RECV_BUFFERS_MAX, NULL},
        {"mailbox-capacity", SL_FLAG_U32, "1024", "messages per actor mailbox (beyond: the kind's policy)", &c->mailbox_capacity, 16, 1 << 20, NULL},
        {"max-subscribers-per-session", SL_FLAG_U32, "65536", "subscribers of one session (beyond: 503 overloaded)", &c->max_subs_per_session, 1, SL_SESSION_SUBS_MAX, NULL},
        {"max-sessions", SL_FLAG_U32, "100000", "sessions in the directory (beyond: 503 overloaded)", &c->max_sessions, 1, 10000000, NULL},
        {"session-ring-bytes", SL_FLAG_BYTES, "4m", "recent SSE bytes kept in memory per live session", &c->session_ring_bytes, 64 * 1024, 1024 * MIB, NULL},
        {"ring-page-bytes", SL_FLAG_U32, "65536", "ring page size in bytes", &c->ring_page_bytes, 4096, 16 * 1024 * 1024, NULL},
        {"sse-keepalive", SL_FLAG_SECONDS, "15", "send `: keepalive` on SSE streams idle this long", &c->sse_keepalive_ns, SEC / 10, 3600 * SEC, NULL},
        {"fsync", SL_FLAG_ENUM, "batch", "always|batch|never: when event logs are fsynced", &c->fsync, 0, 0, "always|batch|never"},
        {"fsync-scope", SL_FLAG_ENUM, "file", "file|auto|fs: what a sync round syncs -- file: the session's own files; auto: one syncfs of the data dir's file system shared by every session waiting while another session's round runs (group commit across sessions; for a data dir on its own file system: syncfs also flushes every other program's dirty data there); fs: always syncfs", &c->fsync_scope, 0, 0, "auto|file|fs"},
        {"fsync-interval", SL_FLAG_SECONDS, "1", "batch: longest written events wait for an fsync nobody asked for (durable publishes sync at once)", &c->fsync_interval_ns, SEC / 10000, 10 * SEC, NULL},
        {"fsync-overlap", SL_FLAG_U32, "0", "extra fdatasyncs of a session's newest segment that may run beside its sync round for durable publishes written after it started (0: one sync in flight per session, what measured fastest here; see bench/RESULTS.md)", &c->fsync_overlap, 0, SL_JOURNAL_SYNCS_EXTRA, NULL},
        {"segment-bytes", SL_FLAG_BYTES, "64m", "segment file size before rolling to a new one", &c->segment_bytes, SL_SEGMENT_BYTES_MIN, SL_SEGMENT_BYTES_MAX, NULL},
        {"max-open-files", SL_FLAG_U32, "1024", "open segment files (LRU); openers wait at the bound", &c->max_open_files, 16, SL_OPEN_FILES_MAX, NULL},
        {"journal-buffer-bytes", SL_FLAG_BYTES, "256k", "per-session log write buffer (two of them)", &c->journal_buffer_bytes, SL_JOURNAL_BUFFER_BYTES_MIN, SL_JOURNAL_BUFFER_BYTES_MAX, NULL},
        {"tcp-notsent-lowat", SL_FLAG_BYTES, "128k", "unsent bytes the kernel may hold per socket (0: kernel default)", &c->tcp_notsent_lowat, 0, 64 * MIB, NULL},
        {"session-idle", SL_FLAG_SECONDS, "30", "hibernate sessions idle this long: ring freed, files closed (0: never)", &c->session_idle_ns, 0, 86400 * SEC, NULL},
        {"fanout-budget", SL_FLAG_SECONDS, "0.005", "latency budget of fan-out: a session wakes its subscribers, and a connection sends stream data, at most once per this unless 64 KiB are waiting; events within it share one wake-up and one send (0: at once)", &c->fanout_budget_ns, 0, SL_FANOUT_BUDGET_NS_MAX, NULL},
        {"retention-bytes", SL_FLAG_BYTES, "0", "per-session log size kept; oldest segments deleted beyond (0: keep all)", &c->retention_bytes, 0, UINT64_MAX / 2, NULL},
        {"retention-age", SL_FLAG_SECONDS, "0", "delete log segments whose newest event is older than this (0: keep all)", &c->retention_age_ns, 0, 3650 * 86400 * SEC, NULL},
        {"urgent-sessions", SL_FLAG_BOOL, "false", "schedule session actors before connection actors (measured slower; see bench/RESULTS.md)", &c->urgent_sessions, 0, 0, NULL},
        {"busy-lag", SL_FLAG_SECONDS, "0.1", "loop or scheduler lag at which /health says busy", &c->busy_lag_ns, SEC / 1000, 60 * SEC, NULL},
        /* Peers and liveness: the rules are in actors/watchdog.h and README. */
        {"watchdog-interval", SL_FLAG_SECONDS, "1", "half-open peer watchdog tick (0: off)", &c->watchdog_interval_ns, 0, 60 * SEC, NULL},
        {"dead-peer-grace", SL_FLAG_SECONDS, "30", "reap a peer that acked none of our queued bytes for this long", &c->dead_peer_grace_ns, SEC / 10, 86400 * SEC, NULL},
        {"paused-peer-limit", SL_FLAG_SECONDS, "0", "reap a live zero-window (paused) peer after this long (0: never)", &c->paused_peer_limit_ns, 0, 30 * 86400 * SEC, NULL},
        {"tcp-user-timeout", SL_FLAG_SECONDS, "0", "TCP_USER_TIMEOUT of client sockets; it aborts paused peers too, so >= --paused-peer-limit (0: kernel default)", &c->tcp_user_timeout_ns, 0, 86400 * SEC, NULL},
        {"h2-ping-interval", SL_FLAG_SECONDS, "30", "PING an HTTP/2 connection with open streams that sent nothing this long (0: off)", &c->h2_ping_interval_ns, 0, 86400 * SEC, NULL},
        {"h2-ping-timeout", SL_FLAG_SECONDS, "30", "close when that PING is unanswered this long with nothing queued towards the peer", &c->h2_ping_timeout_ns, SEC / 10, 86400 * SEC, NULL},
        /* Memory budget and per-client bounds: README "Bounds and their policies". */
        {"memory-limit", SL_FLAG_BYTES, NULL, "global memory budget; at it new publishes and subscriptions get 503 overloaded + Retry-After (default: 75% of the cgroup's memory.max, else of RAM)", &c->memory_limit, SL_BUDGET_LIMIT_MIN, UINT64_MAX / 2, NULL},
        {"max-connections-per-ip", SL_FLAG_U32, "256", "open connections from one address; excess are accepted and closed (0: off)", &c->max_connections_per_ip, 0, 1000000, NULL},
        {"per-ip-exempt", SL_FLAG_STRING, "loopback", "addresses --max-connections-per-ip does not count: comma-separated ADDRESS[/PREFIX] (IPv4 or IPv6), loopback (127.0.0.0/8 and ::1) or none; a reverse proxy carries every client through its one address (default: loopback, a proxy on this host)", &c->per_ip_exempt, 0, 0, NULL},
        {"body-timeout", SL_FLAG_SECONDS, "30", "close a connection whose request body or partial RPC message made no progress this long (HTTP/1.1: 408)", &c->body_timeout_ns, SEC / 10, 3600 * SEC, NULL},
        /* TLS: README "TLS". */
        {"tls-cert", SL_FLAG_STRING, NULL, "PEM certificate chain (leaf first); with --tls-key, the HTTP and RPC listeners also speak TLS (told apart by the first byte); SIGHUP reloads both files", &c->tls_cert, 0, 0, NULL},
        {"tls-key", SL_FLAG_STRING, NULL, "PEM private key of --tls-cert", &c->tls_key, 0, 0, NULL},
        {"tls-ktls", SL_FLAG_ENUM, "auto", "auto|on|off: kernel TLS offload; the offload is not implemented yet, so auto and off encrypt in user space and on refuses to start", &c->tls_ktls, 0, 0, "auto|on|off"},
        /* Browsers: README "Browsers: CORS, console". */
        {"cors-origin", SL_FLAG_STRING, "", "origins whose pages may call the API from a browser: comma-separated scheme://host[:port], or * (empty: none; other origins also cannot POST/PUT/DELETE through a browser: 403 forbidden_origin)", &c->cors_origin, 0, 0, NULL},
        /* Access control: README "Access control". */
        {"auth-hs256-secret-file", SL_FLAG_LIST, NULL, "file holding an HS256 secret (32-4096 bytes; one final newline ignored); tokens are then required (repeatable, for rotation)", &c->auth_hs256_secret_files, 0, 0, NULL},
        {"auth-public-key-file", SL_FLAG_LIST, NULL, "PEM public key (RSA >= 2048 bits for RS256, EC P-256 for ES256); tokens are then required (repeatable, for rotation)", &c->auth_public_key_files, 0, 0, NULL},
        {"auth-issuer", SL_FLAG_STRING, NULL, "tokens must carry this iss claim (default: not checked)", &c->auth_issuer, 0, 0, NULL},
        {"auth-audience", SL_FLAG_STRING, NULL, "tokens must name this in their aud claim (default: not checked)", &c->auth_audience, 0, 0, NULL},
        {"auth-leeway", SL_FLAG_SECONDS, "60", "clock skew allowed on a token's exp and nbf", &c->auth_leeway_ns, 0, SL_AUTH_LEEWAY_S_MAX * SEC, NULL},
        {"allow-anonymous", SL_FLAG_BOOL, "false", "serve a non-loopback --listen/--rpc-listen with no key configured (every client is admin; logged as a warning)", &c->allow_anonymous, 0, 0, NULL},
        /* Durable Streams face (README "Durable Streams"). */
        {"ds-prefix", SL_FLAG_STRING, "/v1/stream", "URL prefix under which sessions are served as Durable Streams (PROTOCOL.md); empty: off", &c->ds_prefix, 0, 0, NULL},
        {"long-poll-timeout", SL_FLAG_SECONDS, "30", "how long a Durable Streams live=long-poll read waits for data before 204", &c->long_poll_timeout_ns, SEC / 100, 3600 * SEC, NULL},
        /* Runs (actors/run.h, README "Runs"). */
        {"runner", SL_FLAG_LIST, NULL, "a runner clients may start by name: \"NAME=PATH [ARGS...] [| OPTION=VALUE...]\" (options: mode, max-output, wall, concurrency, orphan-timeout (seconds or never), kill-grace, max-args, max-stdin, memory-max, pids-max, env=K=V; repeatable)", &c->runners, 0, 0, NULL},
        {"runners-file", SL_FLAG_STRING, NULL, "file of runners, one --runner value per line (# comments)", &c->runners_file, 0, 0, NULL},
        {"max-runs", SL_FLAG_U32, "64", "active runs; beyond: 429 overloaded + Retry-After", &c->max_runs, 1, SL_RUNS_MAX, NULL},
        {"run-kill-grace", SL_FLAG_SECONDS, "2", "a run's process tree gets SIGKILL this long after SIGTERM", &c->run_kill_grace_ns, SEC / 100, 3600 * SEC, NULL},
        {"run-orphan-timeout", SL_FLAG_SECONDS, "30", "a run whose session has no subscriber this long is cancelled (reason orphaned; 0: never)", &c->run_orphan_timeout_ns, 0, 30 * 86400 * SEC, NULL},
        {"run-wall-time", SL_FLAG_SECONDS, "3600", "a run is ended after this long (reason timeout; 0: no limit)", &c->run_wall_time_ns, 0, 365 * 86400 * SEC, NULL},
        {"run-max-output-bytes", SL_FLAG_BYTES, "64m", "stdout + stderr bytes a run may produce; beyond, it ends (reason output_limit)", &c->run_max_output_bytes, 1, UINT64_MAX / 2, NULL},
        {"run-mode", SL_FLAG_ENUM, "line", "line|chunk: a run's output becomes one event per line or per read", &c->run_mode, 0, 0, "line|chunk"},
        {"run-cgroup", SL_FLAG_ENUM, "auto", "auto|on|off: each run in its own cgroup v2 (cgroup.kill) when the hierarchy is writable; off: process group and subreaper only", &c->run_cgroup, 0, 0, "auto|on|off"},
    };
    int rc = sl_flags_parse(flags, SL_ARRAY_LEN(flags), argc, argv, "SLUICE_", err, n);
    if (rc == 1) {
        sl_flags_usage(stdout, "sluiced", summary, flags, SL_ARRAY_LEN(flags), "SLUICE_");
        return 1;
    }
    if (rc == 2) {
        printf("sluiced %s\n", SLUICE_VERSION);
        return 2;
    }
    if (rc < 0)
        return -1;
    if (split_list(&c->rpc_listen, err, n) != 0)
        return -1;
    if (config_check_rpc_unix(c, err, n) != 0)
        return -1;
    if ((c->recv_buffers & (c->recv_buffers - 1)) != 0) {
        snprintf(err, n, "--recv-buffers: expected a power of two, got %u", c->recv_buffers);
        return -1;
    }
    if (c->session_ring_bytes < c->ring_page_bytes) {
        snprintf(err, n, "--session-ring-bytes must be at least --ring-page-bytes");
        return -1;
    }
    if (c->max_event_bytes > c->max_body_bytes) {
        snprintf(err, n, "--max-event-bytes (%llu) must not exceed --max-body-bytes (%llu)",
                 (unsigned long long)c->max_event_bytes, (unsigned long long)c->max_body_bytes);
        return -1;
    }
    if (sl_cors_parse(&c->cors, c->cors_origin, err, n) != 0)
        return -1;
    if (sl_cidr_parse(&c->per_ip_exempt_ranges, c->per_ip_exempt, err, n) != 0) {
        char inner[256];
        snprintf(inner, sizeof inner, "%s", err);
        snprintf(err, n, "--per-ip-exempt: %s", inner);
        return -1;
    }
    if (config_check_budget(c, err, n) != 0)
        return -1;
    if (config_check_tls(c, err, n) != 0)
        return -1;
    if (config_check_liveness(c, err, n) != 0)
        return -1;
    if (sl_run_config_check(c, err, n) != 0)
        return -1;
    return config_load_auth(c, err, n);
}
