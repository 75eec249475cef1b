/*
 * Connection actor, liveness and abuse backstops: what closes a connection
 * whose peer is gone or hostile when the watchdog (actors/watchdog.h) has
 * nothing to judge.
 *
 * - TCP_USER_TIMEOUT (--tcp-user-timeout, off by default): the kernel
 *   aborts a socket whose sent bytes stay unacked -- or whose peer keeps a
 *   zero window -- that long. Because it also ends live paused peers it is
 *   validated to be no shorter than --paused-peer-limit.
 * - Header timeout (--header-timeout): a request head that began arriving
 *   must complete within it (slowloris sends one byte at a time, which the
 *   idle timer alone would never stop).
 * - HTTP/2 PING (--h2-ping-interval, --h2-ping-timeout): a connection with
 *   open streams that received nothing for the interval gets a PING. Any
 *   bytes received afterwards answer it. Still unanswered after the timeout
 *   AND nothing of ours waits towards the peer (our queue empty, kernel send
 *   queue empty: the peer's TCP took the PING and had room to answer) means
 *   the peer's HTTP/2 layer is not running: closed (closed_ping_timeout).
 *   While bytes wait, the peer is either dead (the watchdog reaps it after
 *   --dead-peer-grace) or paused (kept, or reaped at --paused-peer-limit):
 *   the PING does not overrule those rules.
 * - HTTP/2 floods (net/http2.c): counted here by kind when they end a
 *   connection.
 * - Body timeout (--body-timeout): a request body (HTTP/1.x after its head,
 *   an HTTP/2 stream before END_STREAM) or a partial msgpack-RPC message
 *   that receives nothing for that long while we wait for it closes the
 *   connection (closed_body_timeout); HTTP/1.x gets a 408 first when no
 *   response is in progress. Progress is any byte received, so a slow but
 *   moving upload passes; the per-request and per-connection caps bound
 *   what it can hold meanwhile.
 * - Connections per address (--max-connections-per-ip): counted at accept
 *   in one table for the process; the excess is closed at once
 *   (rejected_per_ip), logged at most once per SL_CONN_PER_IP_LOG_MS.
 *   Addresses in --per-ip-exempt (default: loopback, where a reverse proxy
 *   on this host brings every client from) are not counted.
 * - Memory budget admission (runtime/budget.h): the one place that decides
 *   and counts "new publish / new subscription refused: over budget".
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>

#include "actors/conn_int.h"
#include "net/http.h"
#include "runtime/budget.h"
#include "runtime/clock.h"
#include "runtime/log.h"

#define CTR_ADD(c, name) \
    atomic_fetch_add_explicit(&(c)->srv->counters.name, 1, memory_order_relaxed)

void sl_conn__guard_init(sl_conn_t *c)
{
    const sl_config_t *cfg = &c->srv->cfg;
    if (cfg->tcp_user_timeout_ns) {
        unsigned ms = (unsigned)(cfg->tcp_user_timeout_ns / SL_NS_PER_MS);
        setsockopt(c->fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ms, sizeof ms);
    }
    c->last_recv_ns = c->accepted_ns;
    sl_watchdog_link_init(c->srv->watchdog, &c->wd, c->fd, &c->a, &c->reap_msg, c->peer);
}

void sl_conn__guard_recv(sl_conn_t *c, uint64_t now_ns)
{
    c->last_recv_ns = now_ns;
    if (c->http && sl_http_conn_head_pending(c->http)) {
        if (c->head_since_ns == 0)
            c->head_since_ns = now_ns;
    } else {
        c->head_since_ns = 0;
    }
}

uint64_t sl_conn__guard_period(const sl_conn_t *c, uint64_t period_ns)
{
    /* Every HTTP/2 connection, not only those with streams: a timer armed
     * before the first stream would otherwise delay the first PING by a
     * whole header/idle period. */
    const sl_config_t *cfg = &c->srv->cfg;
    if (cfg->body_timeout_ns < period_ns)
        period_ns = cfg->body_timeout_ns;
    if (cfg->h2_ping_interval_ns == 0 || !c->http ||
        sl_http_conn_proto(c->http) != SL_HTTP_PROTO_H2)
        return period_ns;
    uint64_t p = cfg->h2_ping_interval_ns < cfg->h2_ping_timeout_ns ? cfg->h2_ping_interval_ns
                                                                    : cfg->h2_ping_timeout_ns;
    return p < period_ns ? p : period_ns;
}

/* Nothing of ours waits towards the peer: our queue and the kernel's
 * send queue are empty. The fd is ours and open (state < CLOSING). */
static bool path_clear(const sl_conn_t *c)
{
    if (c->outq.bytes_pending != 0 || c->tls_out.bytes_pending != 0 || c->send_armed)
        return false;
    int q = 0;
    return ioctl(c->fd, SIOCOUTQ, &q) == 0 && q == 0;
}

/* Returns true when the connection must close for an unanswered PING. */
static bool ping_tick(sl_conn_t *c, uint64_t now_ns)
{
    const sl_config_t *cfg = &c->srv->cfg;
    if (cfg->h2_ping_interval_ns == 0 || !c->http ||
        sl_http_conn_proto(c->http) != SL_HTTP_PROTO_H2)
        return false;
    if (c->ping_sent_ns != 0) {
        if (c->last_recv_ns > c->ping_sent_ns || sl_http_conn_pings_acked(c->http) != c->ping_acks) {
            c->ping_sent_ns = 0; /* answered (any frame counts) */
            return false;
        }
        if (now_ns - c->ping_sent_ns < cfg->h2_ping_timeout_ns || !path_clear(c))
            return false;
        CTR_ADD(c, closed_ping_timeout);
        sl_info("closing connection: PING unanswered", "peer=%s waited_ms=%llu streams=%u", c->peer,
                (unsigned long long)((now_ns - c->ping_sent_ns) / SL_NS_PER_MS), c->nstreams);
        return true;
    }
    if (c->nstreams > 0 && now_ns - c->last_recv_ns >= cfg->h2_ping_interval_ns &&
        sl_http_conn_ping(c->http) == 0) {
        c->ping_sent_ns = now_ns;
        c->ping_acks = sl_http_conn_pings_acked(c->http);
    }
    return false;
}

/* Returns true when the connection must close now for a stalled body;
 * sets proto_failed instead when a 408 was queued (closed once flushed). */
static bool body_tick(sl_conn_t *c, uint64_t now_ns)
{
    const sl_config_t *cfg = &c->srv->cfg;
    /* Only while we wait for the peer: a connection we stopped reading
     * (backpressure, requests in flight) is not the peer's stall. */
    if (!c->recv_armed || now_ns - c->last_recv_ns < cfg->body_timeout_ns)
        return false;
    if (!c->proto->partial(c))
        return false;
    CTR_ADD(c, closed_body_timeout);
    sl_debug("closing connection: request body stalled", "peer=%s proto=%s", c->peer,
             c->proto->name);
    if (c->proto->stalled(c) == 0) {
        c->proto_failed = true;
        return false;
    }
    return true;
}

bool sl_conn__guard_tick(sl_conn_t *c, uint64_t now_ns)
{
    const sl_config_t *cfg = &c->srv->cfg;
    if (c->head_since_ns != 0 && now_ns - c->head_since_ns >= cfg->header_timeout_ns) {
        CTR_ADD(c, closed_header_timeout);
        sl_debug("closing connection: request head too slow", "peer=%s", c->peer);
        return true;
    }
    if (body_tick(c, now_ns))
        return true;
    return ping_tick(c, now_ns);
}

/* ---- memory budget admission ---- */

bool sl_conn__budget_refused(sl_conn_t *c, bool publish)
{
    if (!sl_budget_over())
        return false;
    if (publish)
        CTR_ADD(c, budget_refused_publish);
    else
        CTR_ADD(c, budget_refused_subscribe);
    return true;
}

void sl_conn__budget_respond(sl_conn_t *c, uint32_t stream_id)
{
    static const sl_http_header_t ra[] = {
        SL_HTTP_HEADER_LIT("retry-after", SL_BUDGET_RETRY_AFTER)};
    CTR_ADD(c, responses_5xx);
    sl_http_respond_error(c->http, stream_id, 503, "overloaded", SL_CONN_BUDGET_MESSAGE, ra, 1);
}

/* ---- connections per address ---- */

typedef struct ip_entry {
    struct ip_entry *next;
    uint8_t addr[16];
    uint32_t count;
} ip_entry_t;

/* One table per process (one server per process). The mutex is held for a
 * chain walk at accept and at close: the accept path, never the data path. */
static struct {
    pthread_mutex_t lock;
    ip_entry_t *buckets[SL_CONN_PER_IP_BUCKETS];
    uint64_t last_log_ns;
    uint64_t refused_since_log;
} ip_table = {.lock = PTHREAD_MUTEX_INITIALIZER};

static uint32_t ip_hash(const uint8_t *a)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (int i = 0; i < 16; i++)
        h = (h ^ a[i]) * 16777619u;
    return h & (SL_CONN_PER_IP_BUCKETS - 1);
}

/* Fills addr with the peer's address (IPv4 v4-mapped). False for unix
 * sockets and failures: such peers are not counted. */
static bool peer_addr(int fd, uint8_t addr[16])
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getpeername(fd, (struct sockaddr *)&ss, &len) != 0)
        return false;
    if (ss.ss_family == AF_INET6) {
        memcpy(addr, &((struct sockaddr_in6 *)&ss)->sin6_addr, 16);
        return true;
    }
    if (ss.ss_family != AF_INET)
        return false;
    memset(addr, 0, 10);
    addr[10] = addr[11] = 0xff;
    memcpy(addr + 12, &((struct sockaddr_in *)&ss)->sin_addr, 4);
    return true;
}

/* Under the lock: the entry for addr, created with count 0 when create. */
static ip_entry_t *ip_find(const uint8_t *addr, bool create)
{
    ip_entry_t **head = &ip_table.buckets[ip_hash(addr)];
    for (ip_entry_t *e = *head; e; e = e->next)
        if (memcmp(e->addr, addr, 16) == 0)
            return e;
    if (!create)
        return NULL;
    ip_entry_t *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    memcpy(e->addr, addr, 16);
    e->next = *head;
    *head = e;
    return e;
}

static void ip_log_refused(sl_server_t *srv, const uint8_t *addr, uint64_t refused)
{
    char host[INET6_ADDRSTRLEN] = "?";
    inet_ntop(AF_INET6, addr, host, sizeof host);
    sl_warn("connections from one address over the limit: closed at accept",
            "addr=%s max_connections_per_ip=%u refused=%llu", host,
            srv->cfg.max_connections_per_ip, (unsigned long long)refused);
}

int sl_conn__ip_admit(sl_server_t *srv, int fd, sl_conn_ip_t *ip)
{
    uint32_t max = srv->cfg.max_connections_per_ip;
    ip->counted = false;
    if (max == 0 || !peer_addr(fd, ip->addr) ||
        sl_cidr_match(&srv->cfg.per_ip_exempt_ranges, ip->addr))
        return 0;
    uint64_t now = sl_clock_now_ns(), log_refused = 0;
    int rc = 0;
    pthread_mutex_lock(&ip_table.lock);
    ip_entry_t *e = ip_find(ip->addr, true);
    if (!e) {
        rc = -ENOMEM;
    } else if (e->count >= max) {
        rc = SL_EFULL;
        ip_table.refused_since_log++;
        if (now - ip_table.last_log_ns >= SL_CONN_PER_IP_LOG_MS * SL_NS_PER_MS) {
            ip_table.last_log_ns = now;
            log_refused = ip_table.refused_since_log;
            ip_table.refused_since_log = 0;
        }
    } else {
        e->count++;
        ip->counted = true;
    }
    pthread_mutex_unlock(&ip_table.lock);
    if (rc == SL_EFULL) {
        atomic_fetch_add_explicit(&srv->counters.rejected_per_ip, 1, memory_order_relaxed);
        if (log_refused)
            ip_log_refused(srv, ip->addr, log_refused);
    }
    return rc;
}

void sl_conn__ip_release(const sl_conn_ip_t *ip)
{
    if (!ip->counted)
        return;
    pthread_mutex_lock(&ip_table.lock);
    ip_entry_t **pp = &ip_table.buckets[ip_hash(ip->addr)];
    while (*pp && memcmp((*pp)->addr, ip->addr, 16) != 0)
        pp = &(*pp)->next;
    ip_entry_t *e = *pp;
    sl_assert(e != NULL && e->count > 0);
    if (--e->count == 0) {
        *pp = e->next;
        free(e);
    }
    pthread_mutex_unlock(&ip_table.lock);
}

void sl_conn__guard_proto_error(sl_conn_t *c)
{
    sl_http_abuse_t a = c->http ? sl_http_conn_abuse(c->http) : SL_HTTP_ABUSE_NONE;
    switch (a) {
    case SL_HTTP_ABUSE_RESET_FLOOD: CTR_ADD(c, h2_rapid_reset); break;
    case SL_HTTP_ABUSE_CONTROL_FLOOD: CTR_ADD(c, h2_control_flood); break;
    case SL_HTTP_ABUSE_CONTINUATION_FLOOD: CTR_ADD(c, h2_continuation_flood); break;
    case SL_HTTP_ABUSE_ACK_FLOOD: CTR_ADD(c, h2_ack_flood); break;
    case SL_HTTP_ABUSE_NONE: return;
    }
    sl_info("closing connection: HTTP/2 abuse", "peer=%s abuse=%s goaway=ENHANCE_YOUR_CALM",
            c->peer, sl_http_abuse_name(a));
}

void sl_conn__guard_publish(sl_conn_t *c)
{
    uint64_t lag = 0;
    for (sl_conn_stream_t *st = c->streams; st; st = st->next) {
        if (!st->begun || !st->e || st->wait_seq)
            continue;
        uint64_t last = atomic_load_explicit(&st->e->stats.last_seq, memory_order_relaxed);
        uint64_t have = st->next_seq ? st->next_seq - 1 : 0;
        if (last > have && last - have > lag)
            lag = last - have;
    }
    uint64_t out = c->outq.bytes_pending + c->tls_out.bytes_pending +
                   (c->http ? sl_http_conn_pending_bytes(c->http) : 0);
    atomic_store_explicit(&c->pub_outq_bytes, out, memory_order_relaxed);
    atomic_store_explicit(&c->pub_lag_events, lag, memory_order_relaxed);
    atomic_store_explicit(&c->pub_streams, c->nstreams, memory_order_relaxed);
    /* 0 while unsniffed, the sl_http_proto_t once known, SL_CONN_KIND_RPC. */
    atomic_store_explicit(&c->pub_proto, c->proto->kind(c), memory_order_relaxed);
}
