/*
 * Server lifecycle. Startup work (sockets, threads, the data directory) uses
 * plain syscalls on the main thread before anything is served; from then on
 * all socket and file I/O goes through the reactors.
 */
#include "actors/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "actors/conn.h"
#include "actors/monitor.h"
#include "actors/persist.h"
#include "actors/registry.h"
#include "actors/run.h"
#include "actors/session.h"
#include "actors/watchdog.h"
#include "runtime/budget.h"
#include "runtime/clock.h"
#include "runtime/log.h"

#define LISTEN_BACKLOG 4096

/* Splits "HOST:PORT" / "[V6]:PORT" into host and port. Returns 0 or -1. */
static int split_addr(const char *addr, char *host, size_t hn, char *port, size_t pn)
{
    const char *colon;
    if (addr[0] == '[') {
        const char *end = strchr(addr, ']');
        if (!end || end[1] != ':')
            return -1;
        snprintf(host, hn, "%.*s", (int)(end - addr - 1), addr + 1);
        colon = end + 1;
    } else {
        colon = strrchr(addr, ':');
        if (!colon)
            return -1;
        snprintf(host, hn, "%.*s", (int)(colon - addr), addr);
    }
    snprintf(port, pn, "%s", colon + 1);
    /* Decimal 0..65535 only: getaddrinfo would wrap larger numbers. */
    if (!port[0] || strlen(port) > 5)
        return -1;
    long v = 0;
    for (const char *p = port; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        v = v * 10 + (*p - '0');
    }
    return v <= 65535 ? 0 : -1;
}

/* SO_REUSEPORT lets any process of this user join a port that is already
 * served (and share its connections). So before the first socket of a port
 * a plain bind checks that nobody holds it: a port in use stays an error,
 * as with a single reactor. */
static int port_free(const struct addrinfo *ai)
{
    const struct sockaddr_in *sa = (const struct sockaddr_in *)(const void *)ai->ai_addr;
    if (sa->sin_port == 0) /* both families keep the port here; 0 picks a free one */
        return 0;
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    int rc = bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 ? 0 : -errno;
    close(fd);
    return rc;
}

static int bind_one(const struct addrinfo *ai, bool reuseport, bool first)
{
    if (reuseport && first) {
        int rc = port_free(ai);
        if (rc != 0)
            return rc;
    }
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (reuseport)
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, LISTEN_BACKLOG) != 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    return fd;
}

static void format_bound(int fd, char *out, size_t n)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    getsockname(fd, (struct sockaddr *)&ss, &len);
    if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof host);
        port = ntohs(s6->sin6_port);
        snprintf(out, n, "[%s]:%d", host, port);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &s4->sin_addr, host, sizeof host);
        port = ntohs(s4->sin_port);
        snprintf(out, n, "%s:%d", host, port);
    }
}

/* One listening socket per reactor (SO_REUSEPORT spreads accepts); the first
 * bind resolves port 0 and the others reuse the port it got. */
static int open_listeners(sl_server_t *srv)
{
    char host[256], port[32];
    if (split_addr(srv->cfg.listen, host, sizeof host, port, sizeof port) != 0) {
        sl_error("bad listen address", "listen=%s hint=HOST:PORT", srv->cfg.listen);
        return SL_EINVAL;
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    for (uint32_t i = 0; i < srv->nreactors; i++) {
        struct addrinfo *res = NULL;
        int gai = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
        if (gai != 0) {
            sl_error("cannot resolve listen address", "listen=%s error=\"%s\"", srv->cfg.listen,
                     gai_strerror(gai));
            return SL_EINVAL;
        }
        int fd = bind_one(res, srv->nreactors > 1, i == 0);
        freeaddrinfo(res);
        if (fd < 0) {
            sl_error("cannot listen", "listen=%s error=\"%s\"", srv->cfg.listen, sl_strerror(fd));
            return fd;
        }
        srv->listen_fds[i] = fd;
        if (i == 0) {
            format_bound(fd, srv->http_addr, sizeof srv->http_addr);
            const char *p = strrchr(srv->http_addr, ':');
            snprintf(port, sizeof port, "%s", p + 1);
        }
    }
    return 0;
}

int sl_server_unix_probe(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path)
        return SL_EINVAL;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    struct stat st;
    if (lstat(path, &st) != 0)
        return errno == ENOENT ? 0 : -errno;
    if (!S_ISSOCK(st.st_mode))
        return -EEXIST;
    /* Non-blocking: a live server whose backlog is full answers EAGAIN at
     * once instead of making us wait. */
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    int rc = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0 ? 0 : errno;
    close(fd);
    if (rc == ECONNREFUSED)
        return 1; /* nobody accepts on it: a stale file */
    /* Answered (or could not be told apart from a live server, e.g.
     * EAGAIN, EACCES): never unlink it. */
    return -EADDRINUSE;
}

/* A unix socket path: a stale socket file left by a killed server is
 * replaced; a live one (another server answers on it) or anything that is
 * not a socket is an error. The file gets mode --rpc-socket-mode before
 * listen(), so no client connects while it still has the umask's mode. */
static int bind_unix(const char *path, uint32_t mode)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int rc = sl_server_unix_probe(path);
    if (rc < 0)
        return rc;
    if (rc == 1 && unlink(path) != 0 && errno != ENOENT)
        return -errno;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || chmod(path, (mode_t)mode) != 0 ||
        listen(fd, LISTEN_BACKLOG) != 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    return fd;
}

static int bind_tcp(const char *addr, bool reuseport, bool first, char *bound, size_t n)
{
    char host[256], port[32];
    if (split_addr(addr, host, sizeof host, port, sizeof port) != 0)
        return SL_EINVAL;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    if (getaddrinfo(host[0] ? host : NULL, port, &hints, &res) != 0)
        return SL_EINVAL;
    int fd = bind_one(res, reuseport, first);
    freeaddrinfo(res);
    if (fd >= 0)
        format_bound(fd, bound, n);
    return fd;
}

/* TCP RPC: one more socket per further reactor on the port the first one
 * got, so SO_REUSEPORT spreads RPC connections as it does HTTP ones (and
 * with them the sessions they start). */
static int bind_tcp_more(sl_server_t *srv, sl_rpc_listener_t *l)
{
    char scratch[128];
    for (uint32_t k = 1; k < srv->nreactors; k++) {
        int fd = bind_tcp(l->addr, true, false, scratch, sizeof scratch);
        if (fd < 0)
            return fd;
        l->more_fds[k] = fd;
    }
    return 0;
}

/* Per --rpc-listen address: a unix socket served by one reactor, or a TCP
 * port served by every reactor (one socket each). */
static int open_rpc_listeners(sl_server_t *srv)
{
    for (uint32_t i = 0; i < srv->cfg.rpc_listen.count; i++) {
        const char *addr = srv->cfg.rpc_listen.items[i];
        sl_rpc_listener_t *l = &srv->rpc[i];
        l->srv = srv;
        l->is_unix = strncmp(addr, "unix:", 5) == 0;
        int fd;
        if (l->is_unix) {
            fd = bind_unix(addr + 5, srv->cfg.rpc_socket_mode);
            snprintf(l->addr, sizeof l->addr, "%s", addr);
        } else {
            fd = bind_tcp(addr, srv->nreactors > 1, true, l->addr, sizeof l->addr);
        }
        if (fd < 0) {
            sl_error("cannot listen for RPC", "rpc_listen=%s error=\"%s\" hint=HOST:PORT|unix:PATH",
                     addr, sl_strerror(fd));
            return fd;
        }
        l->fd = fd;
        srv->nrpc = i + 1;
        if (!l->is_unix && (fd = bind_tcp_more(srv, l)) < 0) {
            sl_error("cannot listen for RPC", "rpc_listen=%s error=\"%s\"", l->addr,
                     sl_strerror(fd));
            return fd;
        }
    }
    return 0;
}

static int ensure_data_dir(const char *dir)
{
    if (mkdir(dir, 0750) != 0 && errno != EEXIST) {
        int err = -errno;
        sl_error("cannot create data dir", "data_dir=%s error=\"%s\"", dir, sl_strerror(err));
        return err;
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || access(dir, W_OK | X_OK) != 0) {
        sl_error("data dir is not a writable directory", "data_dir=%s", dir);
        return SL_EINVAL;
    }
    return 0;
}

static uint64_t raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 0;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    return rl.rlim_cur == RLIM_INFINITY ? 0 : (uint64_t)rl.rlim_cur;
}

int sl_server_init(sl_server_t *srv, const sl_config_t *cfg)
{
    memset(srv, 0, sizeof *srv);
    srv->cfg = *cfg;
    srv->start_ns = sl_clock_now_ns();
    srv->nreactors = cfg->reactors;
    for (uint32_t i = 0; i < SL_REACTORS_MAX; i++)
        srv->listen_fds[i] = -1;
    for (uint32_t i = 0; i < SL_FLAG_LIST_MAX; i++) {
        srv->rpc[i].fd = -1;
        for (uint32_t k = 0; k < SL_REACTORS_MAX; k++)
            srv->rpc[i].more_fds[k] = -1;
    }
    pthread_mutex_init(&srv->conns_lock, NULL);
    int rc = sl_server_tls_init(srv);
    if (rc != 0)
        return rc;
    srv->fd_limit = raise_fd_limit();
    sl_budget_set_limit(cfg->memory_limit);
    rc = ensure_data_dir(cfg->data_dir);
    if (rc != 0)
        return rc;
    if ((rc = sl_registry_create(cfg->max_sessions, &srv->registry)) != 0)
        return rc;
    /* Incarnation ids: wall-clock based, so they never repeat across
     * restarts, then counted up. */
    atomic_store(&srv->epoch_next, sl_clock_wall_ns());
    sl_registry_set_free(sl_session_entry_free);
    srv->data_dir_fd = -1;
    if ((rc = sl_persist_startup(srv)) != 0)
        return rc;
    sl_sched_config_t sc = {
        .workers = cfg->workers,
        .batch = SL_ACTOR_BATCH,
        /* >= every actor that can exist: connections, sessions, monitor
         * (per scheduler: every actor might live on one reactor). */
        .runq_capacity = cfg->max_connections + cfg->max_sessions + 1024,
    };
    /* --workers 0: thread-per-core, one inline scheduler per reactor;
     * otherwise one worker pool shared by all reactors. */
    srv->nscheds = cfg->workers == 0 ? srv->nreactors : 1;
    for (uint32_t i = 0; i < srv->nscheds; i++) {
        if ((rc = sl_sched_create(&sc, &srv->scheds[i])) != 0)
            return rc;
    }
    srv->sched = srv->scheds[0];
    sl_reactor_config_t rcfg = {
        .sq_entries = SL_REACTOR_SQ_ENTRIES,
        .recv_buffers = cfg->recv_buffers,
        .recv_buffer_bytes = SL_RECV_BUFFER_BYTES,
        .lag_probe_ns = SL_REACTOR_LAG_PROBE_NS,
        .batch_wait_ns = cfg->reactor_linger_ns,
    };
    for (uint32_t i = 0; i < srv->nreactors; i++) {
        if ((rc = sl_reactor_create(&rcfg, i, &srv->reactors[i])) != 0) {
            sl_error("cannot create io_uring reactor", "index=%u error=\"%s\"", i, sl_strerror(rc));
            return rc;
        }
    }
    /* Inline: each reactor runs its own actors between its I/O rounds. */
    for (uint32_t i = 0; cfg->workers == 0 && i < srv->nreactors; i++)
        sl_reactor_host_sched(srv->reactors[i], srv->scheds[i]);
    sl_watchdog_config_t wcfg = {cfg->watchdog_interval_ns, cfg->dead_peer_grace_ns,
                                 cfg->paused_peer_limit_ns};
    if ((rc = sl_watchdog_create(&wcfg, srv->sched, srv->reactors[0], &srv->watchdog)) != 0)
        return rc;
    if ((rc = open_listeners(srv)) != 0)
        return rc;
    if ((rc = sl_run_init(srv)) != 0)
        return rc;
    return open_rpc_listeners(srv);
}

static void on_accept(sl_reactor_t *r, int fd, void *ctx)
{
    sl_conn_accept((sl_server_t *)ctx, r, fd, false);
}

static void on_accept_rpc(sl_reactor_t *r, int fd, void *ctx)
{
    sl_rpc_listener_t *l = ctx;
    sl_conn_accept(l->srv, r, fd, true);
}

static void write_ready_file(const sl_server_t *srv)
{
    if (!srv->cfg.ready_file)
        return;
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", srv->cfg.ready_file);
    FILE *f = fopen(tmp, "w");
    bool ok = f && fprintf(f, "http=%s\n", srv->http_addr) >= 0;
    for (uint32_t i = 0; ok && i < srv->nrpc; i++)
        ok = fprintf(f, "rpc=%s\n", srv->rpc[i].addr) >= 0;
    if (f && fclose(f) != 0)
        ok = false;
    if (!ok || rename(tmp, srv->cfg.ready_file) != 0)
        sl_error("cannot write ready file", "path=%s error=\"%s\"", srv->cfg.ready_file,
                 strerror(errno));
}

int sl_server_start(sl_server_t *srv)
{
    int rc = 0;
    for (uint32_t i = 0; i < srv->nscheds; i++) {
        if ((rc = sl_sched_start(srv->scheds[i])) != 0)
            return rc;
    }
    if ((rc = sl_monitor_create(srv, &srv->monitor)) != 0)
        return rc;
    for (uint32_t i = 0; i < srv->nreactors; i++) {
        if ((rc = sl_reactor_start(srv->reactors[i])) != 0)
            return rc;
    }
    sl_monitor_start(srv->monitor);
    sl_watchdog_start(srv->watchdog);
    sl_run_start(srv); /* ends what a previous life left running */
    for (uint32_t i = 0; i < srv->nreactors; i++) {
        if ((rc = sl_reactor_listen(srv->reactors[i], srv->listen_fds[i], on_accept, srv)) != 0)
            return rc;
    }
    char rpc[SL_FLAG_LIST_MAX * 130] = "";
    size_t o = 0;
    for (uint32_t i = 0; i < srv->nrpc; i++) {
        sl_rpc_listener_t *l = &srv->rpc[i];
        sl_reactor_t *r = srv->reactors[l->is_unix ? i % srv->nreactors : 0];
        if ((rc = sl_reactor_listen(r, l->fd, on_accept_rpc, l)) != 0)
            return rc;
        for (uint32_t k = 1; !l->is_unix && k < srv->nreactors; k++) {
            if ((rc = sl_reactor_listen(srv->reactors[k], l->more_fds[k], on_accept_rpc, l)) != 0)
                return rc;
        }
        o += (size_t)snprintf(rpc + o, sizeof rpc - o, "%s%s", i ? "," : "", srv->rpc[i].addr);
    }
    sl_info("listening", "http=%s rpc=%s reactors=%u workers=%u data_dir=%s pid=%d",
            srv->http_addr, rpc, srv->nreactors, srv->cfg.workers, srv->cfg.data_dir,
            (int)getpid());
    /* The global bound's policy (config.c): said once, so an operator
     * sees which of the two holds. */
    const sl_config_t *cfg = &srv->cfg;
    sl_info("memory budget", "limit=%llu connections_worst_case=%llu bound=%s",
            (unsigned long long)cfg->memory_limit, (unsigned long long)cfg->conn_worst_bytes,
            cfg->conn_worst_bytes <= cfg->memory_limit ? "per_connection_caps" : "admission");
    write_ready_file(srv);
    return 0;
}

void sl_server_conn_add(sl_server_t *srv, sl_conn_t *c)
{
    pthread_mutex_lock(&srv->conns_lock);
    sl_conn_link(&srv->conns_head, c);
    pthread_mutex_unlock(&srv->conns_lock);
}

void sl_server_conn_remove(sl_server_t *srv, sl_conn_t *c)
{
    pthread_mutex_lock(&srv->conns_lock);
    sl_conn_unlink(&srv->conns_head, c);
    pthread_mutex_unlock(&srv->conns_lock);
}

/* Tells every live connection to drain (graceful) or abort. */
static void signal_conns(sl_server_t *srv, bool abort)
{
    pthread_mutex_lock(&srv->conns_lock);
    for (sl_conn_t *c = srv->conns_head; c; c = sl_conn_next(c))
        sl_conn_request_close(c, abort);
    pthread_mutex_unlock(&srv->conns_lock);
}

static bool wait_counter(_Atomic uint64_t *v, uint64_t deadline_ns)
{
    while (atomic_load(v) > 0) {
        if (sl_clock_now_ns() >= deadline_ns)
            return false;
        usleep(2000);
    }
    return true;
}

static bool wait_conns(sl_server_t *srv, uint64_t deadline_ns)
{
    return wait_counter(&srv->counters.connections_open, deadline_ns);
}

/* Tells every running session to stop: their streams end cleanly. */
static void stop_sessions(sl_server_t *srv)
{
    enum { PAGE = 256 };
    sl_entry_t *page[PAGE];
    char after[SL_SESSION_ID_MAX + 1] = "";
    size_t after_len = 0;
    bool more = true;
    while (more) {
        uint32_t n = sl_registry_list(srv->registry, after_len ? after : NULL, after_len, PAGE,
                                      page, &more);
        for (uint32_t i = 0; i < n; i++) {
            sl_session_stop(page[i]);
            if (i == n - 1) {
                memcpy(after, page[i]->id, page[i]->id_len);
                after_len = page[i]->id_len;
            }
            sl_entry_release(page[i]);
        }
        if (n == 0)
            break;
    }
}

/* Joins the workers, or (inline) finishes what the stopped reactors left
 * queued, on this thread. A leftover actor of one reactor may still queue
 * an actor of another, so go round until a whole round runs nothing
 * (bounded: stopped actors only wind down). */
static void stop_scheds(sl_server_t *srv)
{
    for (uint32_t i = 0; i < srv->nscheds; i++)
        sl_sched_stop(srv->scheds[i]);
    for (int round = 0; srv->cfg.workers == 0 && round < 1000; round++) {
        uint32_t ran = 0;
        for (uint32_t i = 0; i < srv->nscheds; i++)
            ran += sl_sched_run_some(srv->scheds[i], 1024);
        if (ran == 0)
            break;
    }
}

void sl_server_shutdown(sl_server_t *srv)
{
    uint64_t t0 = sl_clock_now_ns();
    atomic_store(&srv->draining, true);
    for (uint32_t i = 0; i < srv->nreactors; i++)
        sl_reactor_unlisten(srv->reactors[i]);
    sl_run_shutdown(srv); /* runs end (server_shutdown) while sessions still take events */
    stop_sessions(srv); /* ends every SSE stream cleanly */
    signal_conns(srv, false);
    bool clean = wait_conns(srv, t0 + srv->cfg.shutdown_grace_ns);
    if (!clean) {
        sl_warn("shutdown grace expired; closing remaining connections", "open=%llu",
                (unsigned long long)atomic_load(&srv->counters.connections_open));
        signal_conns(srv, true);
        wait_conns(srv, sl_clock_now_ns() + 2 * SL_NS_PER_S);
    }
    if (!wait_counter(&srv->counters.sessions_live, sl_clock_now_ns() + 5 * SL_NS_PER_S))
        sl_warn("sessions still closing their logs at shutdown", "live=%llu",
                (unsigned long long)atomic_load(&srv->counters.sessions_live));
    sl_watchdog_stop(srv->watchdog);
    sl_watchdog_wait_stopped(srv->watchdog, 5 * SL_NS_PER_S);
    sl_monitor_stop(srv->monitor);
    sl_monitor_wait_stopped(srv->monitor, 5 * SL_NS_PER_S);
    for (uint32_t i = 0; i < srv->nreactors; i++)
        sl_reactor_stop(srv->reactors[i]);
    stop_scheds(srv);
    sl_persist_shutdown(srv);
    for (uint32_t i = 0; i < srv->nreactors; i++) {
        sl_reactor_destroy(srv->reactors[i]);
        if (srv->listen_fds[i] >= 0)
            close(srv->listen_fds[i]);
    }
    for (uint32_t i = 0; i < srv->nrpc; i++) {
        if (srv->rpc[i].fd >= 0)
            close(srv->rpc[i].fd);
        for (uint32_t k = 0; k < SL_REACTORS_MAX; k++) {
            if (srv->rpc[i].more_fds[k] >= 0)
                close(srv->rpc[i].more_fds[k]);
        }
        if (srv->rpc[i].is_unix)
            unlink(srv->rpc[i].addr + 5);
    }
    sl_run_deinit(srv);
    sl_registry_destroy(srv->registry, NULL);
    for (uint32_t i = 0; i < srv->nscheds; i++)
        sl_sched_destroy(srv->scheds[i]);
    sl_watchdog_destroy(srv->watchdog); /* no connection can call it now */
    pthread_mutex_destroy(&srv->conns_lock);
    sl_server_tls_deinit(srv);
    sl_info("stopped", "clean=%d shutdown_ms=%.1f", clean, (double)(sl_clock_now_ns() - t0) / 1e6);
}
