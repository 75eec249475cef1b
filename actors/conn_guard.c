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
 */
#include <errno.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>

#include "actors/conn_int.h"
#include "net/http.h"
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
    if (c->outq.bytes_pending != 0 || c->send_armed)
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

bool sl_conn__guard_tick(sl_conn_t *c, uint64_t now_ns)
{
    const sl_config_t *cfg = &c->srv->cfg;
    if (c->head_since_ns != 0 && now_ns - c->head_since_ns >= cfg->header_timeout_ns) {
        CTR_ADD(c, closed_header_timeout);
        sl_debug("closing connection: request head too slow", "peer=%s", c->peer);
        return true;
    }
    return ping_tick(c, now_ns);
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
    uint64_t out = c->outq.bytes_pending + (c->http ? sl_http_conn_pending_bytes(c->http) : 0);
    atomic_store_explicit(&c->pub_outq_bytes, out, memory_order_relaxed);
    atomic_store_explicit(&c->pub_lag_events, lag, memory_order_relaxed);
    atomic_store_explicit(&c->pub_streams, c->nstreams, memory_order_relaxed);
    /* 0 while unsniffed, the sl_http_proto_t once known, 255 for RPC. */
    uint8_t proto = c->rpc ? 255 : c->http ? (uint8_t)sl_http_conn_proto(c->http) : 0;
    atomic_store_explicit(&c->pub_proto, proto, memory_order_relaxed);
}
