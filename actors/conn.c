/*
 * Connection actor: the I/O engine. See conn.h. Protocol work lives
 * behind c->proto (conn_int.h, conn_proto.c); this file owns the ops, the
 * output queue, timers and teardown.
 */
#include "actors/conn_int.h"
#include "actors/run.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/clock.h"
#include "runtime/log.h"

enum { MSG_DRAIN = SL_MSG_KIND_USER, MSG_ABORT, MSG_REAP };

/* Largest single sendmsg: bounds the time one send holds the outq head. */
#define SEND_BYTES_MAX (1u << 20)

static void start_close(sl_conn_t *c);

/* Output not yet accepted by the kernel: the protocol's queue plus, on a
 * TLS connection, the ciphertext made from it (conn_tls.c). */
static uint64_t out_pending(const sl_conn_t *c)
{
    return c->outq.bytes_pending + c->tls_out.bytes_pending;
}

static void submit(sl_conn_t *c, sl_op_t *op)
{
    op->owner = &c->a;
    c->ops_inflight++;
    sl_reactor_submit(c->r, op);
}

static void arm_recv(sl_conn_t *c)
{
    if (c->recv_armed || c->state >= SL_CONN__CLOSING || c->proto_failed)
        return;
    /* Input backpressure: a client that does not read its answers is not
     * read from either. */
    if (out_pending(c) > c->outq.bytes_max / 2 || !c->proto->want_read(c))
        return;
    c->recv_op.kind = SL_OP_RECV;
    c->recv_op.fd = c->fd;
    c->recv_op.buf = NULL; /* provided buffer */
    c->recv_op.len = 0;
    c->recv_op.flags = 0;
    c->recv_armed = true;
    submit(c, &c->recv_op);
}

static uint64_t timer_period(const sl_conn_t *c)
{
    const sl_config_t *cfg = &c->srv->cfg;
    uint64_t p = cfg->idle_timeout_ns < cfg->header_timeout_ns ? cfg->idle_timeout_ns
                                                               : cfg->header_timeout_ns;
    if (c->nstreams && cfg->sse_keepalive_ns < p)
        p = cfg->sse_keepalive_ns;
    /* A stream whose token expires within the period ends at most a tick
     * late; the short period holds only for the last stretch before an
     * expiry, so long-lived tokens cost no extra wake-ups. */
    if (c->auth_expiry_min_ns && c->nstreams && 2 * SL_AUTH_EXPIRY_TICK_NS < p &&
        c->auth_expiry_min_ns <= sl_clock_wall_ns() + p)
        p = 2 * SL_AUTH_EXPIRY_TICK_NS;
    p = sl_conn__guard_period(c, p);
    p = sl_conn__ds_period(c, p); /* long-poll deadlines */
    return p / 2 > 0 ? p / 2 : 1;
}

static void arm_timer(sl_conn_t *c)
{
    /* While a retime's cancel is in flight, its completion arms the timer
     * (cancel_timer_op must be idle before it can be used again). */
    if (c->timer_armed || c->timer_cancelling || c->state >= SL_CONN__CLOSING)
        return;
    c->timer_op.kind = SL_OP_TIMEOUT;
    c->timer_op.timeout_ns = timer_period(c);
    c->timer_armed = true;
    submit(c, &c->timer_op);
}

/* Whether stream data pulled on a wake-up of fresh events should wait:
 * only within (3/4 of) --fanout-budget of the last send and while less
 * than SL_FANOUT_BATCH_BYTES are waiting. Then fanout_op sends it just
 * after the next tick of the fan-out grid (actors/session.h), together with
 * whatever arrived by then -- the sessions' wake-ups at that tick come
 * first, and every stream and session of the connection shares the one
 * send. Events that waited out their budget at a session are not held
 * (SL_CONN_NOTIFY_DUE sets urgent). */
static bool fanout_hold(sl_conn_t *c)
{
    uint64_t budget = c->srv->cfg.fanout_budget_ns;
    if (c->urgent || budget == 0 || c->outq.bytes_pending >= SL_FANOUT_BATCH_BYTES)
        return false;
    /* Data due within the last quarter of the budget goes at once: a
     * session's wake-ups come once per budget too, and a timer for the
     * few microseconds between the two would cost more than it saves. */
    uint64_t now = sl_clock_now_ns();
    if (now - c->last_send_ns >= budget - budget / 4)
        return false;
    if (!c->fanout_armed) {
        atomic_fetch_add_explicit(&c->srv->counters.fanout_held, 1, memory_order_relaxed);
        c->fanout_op.kind = SL_OP_TIMEOUT;
        c->fanout_op.flags = SL_TIMEOUT_ABS;
        c->fanout_op.timeout_ns = sl_fanout_next_tick(now, budget) + SL_FANOUT_HOLD_LAG_NS;
        c->fanout_armed = true;
        submit(c, &c->fanout_op);
    }
    return true;
}

static void send_some(sl_conn_t *c)
{
    if (c->send_armed || c->state >= SL_CONN__CLOSING)
        return;
    /* Held plaintext is encrypted when the budget is spent, so a held
     * batch becomes full TLS records rather than one record per event. */
    if (c->outq.bytes_pending != 0 && fanout_hold(c))
        return;
    /* TLS: the socket sends ciphertext, made from the outq as it drains. */
    sl_outq_t *q = c->tls ? &c->tls_out : &c->outq;
    if (c->tls && sl_conn__tls_encrypt(c) != 0)
        c->proto_failed = true;
    if (q->bytes_pending == 0)
        return;
    if (!c->iov && !(c->iov = malloc(SL_SEND_IOV_MAX * sizeof *c->iov))) {
        start_close(c); /* out of memory: this connection cannot send */
        return;
    }
    uint32_t n = sl_outq_iov(q, c->iov, SL_SEND_IOV_MAX, SEND_BYTES_MAX);
    sl_assert(n > 0);
    size_t bytes = 0;
    for (uint32_t i = 0; i < n; i++)
        bytes += c->iov[i].iov_len;
    /* What made the send urgent is in it once it takes everything queued. */
    if (bytes == q->bytes_pending && (!c->tls || c->outq.bytes_pending == 0))
        c->urgent = false;
    c->send_op.kind = SL_OP_SENDMSG;
    c->send_op.fd = c->fd;
    c->send_op.iov = c->iov;
    c->send_op.iovcnt = n;
    c->send_op.flags = 0;
    c->send_armed = true;
    c->last_send_ns = sl_clock_now_ns();
    atomic_fetch_add_explicit(&c->srv->counters.sends, 1, memory_order_relaxed);
    submit(c, &c->send_op);
    sl_watchdog_sent(c->srv->watchdog, &c->wd); /* unacked output: watch the peer */
}

/* The timer's period follows the smallest interval in force (idle and
 * header timeouts, --sse-keepalive once a stream is open, the HTTP/2 PING
 * backstop once the protocol is known). When that shrinks below what the
 * armed timer waits for -- the first stream of a connection accepted with
 * the idle period -- the timer is cancelled; its completion runs the tick
 * and re-arms with the new period, so the first keepalive is not late. */
static void retime(sl_conn_t *c)
{
    if (!c->timer_armed || c->timer_cancelling || c->state >= SL_CONN__CLOSING ||
        timer_period(c) >= c->timer_op.timeout_ns)
        return;
    c->timer_cancelling = true;
    c->cancel_timer_op.kind = SL_OP_CANCEL;
    c->cancel_timer_op.target = &c->timer_op;
    submit(c, &c->cancel_timer_op);
}

void sl_conn__pump(sl_conn_t *c)
{
    if (c->state >= SL_CONN__CLOSING)
        return;
    retime(c);
    bool proto = c->proto->started(c);
    if (proto)
        c->proto->flush(c);
    send_some(c);
    bool done = c->proto_failed || c->proto->want_close(c) ||
                (c->state == SL_CONN__DRAINING && (!proto || c->proto->idle(c)));
    if (done && c->tls && !c->proto_failed && c->outq.bytes_pending == 0 && !c->tls_notified) {
        sl_conn__tls_close_notify(c); /* a clean end the peer can tell from a cut */
        send_some(c);
    }
    if (done && out_pending(c) == 0 && !c->send_armed)
        start_close(c);
    else
        arm_recv(c);
    sl_conn__guard_publish(c);
}

static void on_recv(sl_conn_t *c, sl_op_t *op)
{
    c->recv_armed = false;
    if (op->res <= 0) {
        /* 0: orderly close by the peer; < 0: reset, cancel, error. The
         * reactor sets buf only when the kernel consumed a buffer. */
        if (op->buf)
            sl_reactor_buf_return(c->r, op->buf_id);
        start_close(c);
        return;
    }
    c->last_activity_ns = sl_clock_now_ns();
    atomic_fetch_add_explicit(&c->srv->counters.bytes_in, (uint64_t)op->res, memory_order_relaxed);
    uint64_t queued = c->outq.bytes_pending + (c->tls ? c->tls_out.bytes_pending : 0);
    int rc = 0;
    if (c->state < SL_CONN__CLOSING) {
        const uint8_t *in = op->buf;
        size_t n = (size_t)op->res;
        /* With a certificate, the first byte picks TLS or cleartext. */
        rc = sl_conn__tls_sniff(c, in[0]) ? sl_conn__tls_feed(c, in, n)
                                          : c->proto->feed(c, in, n);
    }
    sl_reactor_buf_return(c->r, op->buf_id);
    sl_conn__guard_recv(c, c->last_activity_ns);
    if (rc < 0)
        c->proto_failed = true;
    /* Whatever the input made the protocol answer (a response, a SETTINGS
     * or PING ack, handshake records) goes at once; input that only opened
     * flow-control room (WINDOW_UPDATE) lets stream data keep its budget. */
    if (c->proto->started(c))
        c->proto->flush(c);
    if (c->outq.bytes_pending + (c->tls ? c->tls_out.bytes_pending : 0) > queued || rc < 0)
        c->urgent = true;
    if (c->nstreams)
        sl_conn__pump_streams(c); /* WINDOW_UPDATE may have opened room */
    sl_conn__pump(c);
}

static void on_send(sl_conn_t *c, sl_op_t *op)
{
    c->send_armed = false;
    if (op->res < 0) {
        start_close(c);
        return;
    }
    sl_outq_consume(c->tls ? &c->tls_out : &c->outq, (size_t)op->res);
    atomic_fetch_add_explicit(&c->srv->counters.bytes_out, (uint64_t)op->res, memory_order_relaxed);
    c->last_activity_ns = sl_clock_now_ns();
    if (c->nstreams) {
        c->proto->flush(c); /* frees stream buffer room ... */
        sl_conn__pump_streams(c); /* ... which the streams fill again */
    }
    sl_conn__pump(c);
}

static void on_timer(sl_conn_t *c)
{
    c->timer_armed = false;
    c->urgent = true; /* keepalives, a PING: on time */
    if (c->state >= SL_CONN__CLOSING)
        return;
    const sl_config_t *cfg = &c->srv->cfg;
    uint64_t now = sl_clock_now_ns();
    bool started = c->proto->started(c);
    bool idle = !started || c->proto->idle(c);
    /* Before the first request (a TLS handshake included) the header
     * timeout runs from accept. */
    if ((!started || sl_conn__tls_handshaking(c)) &&
        now - c->accepted_ns >= cfg->header_timeout_ns) {
        atomic_fetch_add_explicit(&c->srv->counters.closed_header_timeout, 1, memory_order_relaxed);
        start_close(c);
        return;
    }
    if (idle && out_pending(c) == 0 && now - c->last_activity_ns >= cfg->idle_timeout_ns) {
        atomic_fetch_add_explicit(&c->srv->counters.closed_idle, 1, memory_order_relaxed);
        start_close(c);
        return;
    }
    if (sl_conn__guard_tick(c, now)) { /* header timeout, unanswered PING */
        start_close(c);
        return;
    }
    if (c->nstreams) {
        sl_conn__streams_tick(c, now);
        sl_conn__pump_streams(c); /* a catch-up the memory budget held back */
    }
    sl_conn__pump(c); /* keepalives, a PING */
    arm_timer(c);
}

/* Teardown, step 1: cancel everything on the fd (and the timer). The close
 * itself is submitted once every op has completed (step 2, below). */
static void start_close(sl_conn_t *c)
{
    if (c->state >= SL_CONN__CLOSING)
        return;
    c->state = SL_CONN__CLOSING;
    sl_conn__streams_close_all(c);
    if (c->recv_armed || c->send_armed) {
        c->cancel_op.kind = SL_OP_CANCEL_FD;
        c->cancel_op.fd = c->fd;
        submit(c, &c->cancel_op);
    }
    if (c->timer_armed && !c->timer_cancelling) { /* else a retime's cancel is on its way */
        c->cancel_timer_op.kind = SL_OP_CANCEL;
        c->cancel_timer_op.target = &c->timer_op;
        submit(c, &c->cancel_timer_op);
    }
}

static void finish(sl_conn_t *c)
{
    sl_server_t *srv = c->srv;
    sl_server_conn_remove(srv, c);
    sl_conn__ip_release(&c->ip);
    c->ip.counted = false;
    if (c->counted_open)
        atomic_fetch_sub_explicit(&srv->counters.connections_open, 1, memory_order_relaxed);
    sl_actor_release(&c->a); /* our own reference; destroy frees */
}

static void maybe_close_fd(sl_conn_t *c)
{
    if (c->state == SL_CONN__CLOSING && c->ops_inflight == 0) {
        c->state = SL_CONN__CLOSED;
        /* The fd-reuse guard: from here the watchdog never touches fd. */
        sl_watchdog_forget(c->srv->watchdog, &c->wd);
        c->close_op.kind = SL_OP_CLOSE;
        c->close_op.fd = c->fd;
        submit(c, &c->close_op);
    }
}

static void on_io(sl_conn_t *c, sl_op_t *op)
{
    c->ops_inflight--;
    if (op == &c->recv_op)
        on_recv(c, op);
    else if (op == &c->send_op)
        on_send(c, op);
    else if (op == &c->timer_op)
        on_timer(c);
    else if (op == &c->fanout_op) {
        c->fanout_armed = false; /* the budget is spent: what waits goes now */
        if (out_pending(c))      /* (a tick's wake-ups may have sent it) */
            c->urgent = true;
        sl_conn__pump(c);
    }
    else if (op == &c->cancel_timer_op && c->timer_cancelling) {
        c->timer_cancelling = false;
        arm_timer(c); /* a no-op once closing */
    } else if (op == &c->close_op) {
        c->fd = -1;
        finish(c);
        return;
    }
    maybe_close_fd(c);
}

static void behavior(sl_actor_t *self, sl_msg_t *msg)
{
    sl_conn_t *c = (sl_conn_t *)self;
    switch (msg->kind) {
    case SL_MSG_KIND_IO:
        on_io(c, sl_op_from_msg(msg));
        return;
    case MSG_DRAIN:
        if (c->state == SL_CONN__OPEN) {
            c->state = SL_CONN__DRAINING;
            c->urgent = true;
            c->proto->drain(c);
            sl_conn__pump(c);
            maybe_close_fd(c);
        }
        return;
    case MSG_ABORT:
    case MSG_REAP: /* the watchdog shut the socket down; it logged and counted */
        start_close(c);
        maybe_close_fd(c);
        return;
    case SL_MSG_KIND_NOTIFY: {
        uint64_t bits = sl_actor_take_notify(self);
        if (bits & (SL_CONN_NOTIFY_DATA | SL_CONN_NOTIFY_DUE | SL_CONN_NOTIFY_WORK)) {
            sl_conn__pump_streams(c);
            /* Only a fan-out wake-up of fresh events may hold its data
             * back; events that waited out the budget at their session go
             * now (with whatever else is queued). */
            if ((bits & SL_CONN_NOTIFY_WORK) || ((bits & SL_CONN_NOTIFY_DUE) && out_pending(c)))
                c->urgent = true;
            sl_conn__pump(c);
        }
        return;
    }
    case SL_RUN_MSG_REPLY:
        sl_conn__run_reply(c, msg);
        c->urgent = true;
        if (c->state < SL_CONN__CLOSING)
            sl_conn__pump(c);
        return;
    case SL_CONN_MSG_PUBLISHED:
    case SL_CONN_MSG_SUBSCRIBED:
    case SL_CONN_MSG_UNSUBSCRIBED:
    case SL_CONN_MSG_CAUGHT_UP:
        sl_conn__session_reply(c, msg);
        c->urgent = true; /* an answer (publish ack, stream headers) */
        if (c->state < SL_CONN__CLOSING) {
            sl_conn__pump_streams(c);
            sl_conn__pump(c);
        }
        return;
    default:
        sl_msg_release(msg);
        return;
    }
}

static void destroy(sl_actor_t *self)
{
    sl_conn_t *c = (sl_conn_t *)self;
    sl_conn__streams_free(c);
    c->proto->destroy(c);
    sl_conn__tls_destroy(c);
    sl_conn__auth_free(c);
    sl_outq_deinit(&c->outq);
    free(c->iov);
    free(c);
}

static void format_peer(int fd, char *out, size_t n)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    out[0] = '\0';
    if (getpeername(fd, (struct sockaddr *)&ss, &len) != 0)
        return;
    if (ss.ss_family == AF_UNIX) {
        snprintf(out, n, "unix");
        return;
    }
    if (ss.ss_family == AF_INET6) {
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, host, sizeof host);
        port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    } else if (ss.ss_family == AF_INET) {
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, host, sizeof host);
        port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    }
    snprintf(out, n, "%s:%d", host, port);
}

void sl_conn_accept(sl_server_t *srv, sl_reactor_t *r, int fd, bool rpc)
{
    sl_server_counters_t *ctr = &srv->counters;
    atomic_fetch_add_explicit(&ctr->accepted, 1, memory_order_relaxed);
    /* Every reactor accepts: the seat is taken with one CAS so that two of
     * them never both fill the last one. */
    uint64_t open = atomic_load_explicit(&ctr->connections_open, memory_order_relaxed);
    do {
        if (open >= srv->cfg.max_connections || atomic_load(&srv->draining)) {
            /* Policy at --max-connections: accept and close at once (the
             * client sees a clean close instead of a SYN backlog stall). */
            atomic_fetch_add_explicit(&ctr->rejected_max_connections, 1, memory_order_relaxed);
            close(fd);
            return;
        }
    } while (!atomic_compare_exchange_weak_explicit(&ctr->connections_open, &open, open + 1,
                                                    memory_order_relaxed, memory_order_relaxed));
    /* Policy at --max-connections-per-ip: the same as above, per address
     * (counted and logged inside). */
    sl_conn_ip_t ip;
    if (sl_conn__ip_admit(srv, fd, &ip) != 0) {
        atomic_fetch_sub_explicit(&ctr->connections_open, 1, memory_order_relaxed);
        close(fd);
        return;
    }
    sl_conn_t *c = calloc(1, sizeof *c);
    if (!c || sl_outq_init(&c->outq, SL_OUTQ_SEGS, srv->cfg.max_conn_output_bytes) != 0) {
        sl_conn__ip_release(&ip);
        free(c);
        close(fd);
        atomic_fetch_sub_explicit(&ctr->connections_open, 1, memory_order_relaxed);
        return;
    }
    c->ip = ip;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    /* Keep the backlog of a slow reader in user space, where it is
     * bounded, coalesced and measured, instead of in a growing kernel send
     * buffer: the socket reports writable only while little is unsent. */
    int lowat = (int)srv->cfg.tcp_notsent_lowat;
    if (lowat > 0)
        setsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &lowat, sizeof lowat);
    c->srv = srv;
    c->r = r;
    c->fd = fd;
    /* The listener decides the protocol for the connection's life. */
    c->proto = rpc ? &sl_conn__rpc_ops : &sl_conn__http_ops;
    if (c->proto->create(c) != 0) {
        sl_conn__ip_release(&c->ip);
        sl_outq_deinit(&c->outq);
        free(c);
        close(fd);
        atomic_fetch_sub_explicit(&ctr->connections_open, 1, memory_order_relaxed);
        return;
    }
    c->accepted_ns = c->last_activity_ns = sl_clock_now_ns();
    c->drain_msg = (sl_msg_t){.kind = MSG_DRAIN, .mclass = SL_MSG_CONTROL};
    c->abort_msg = (sl_msg_t){.kind = MSG_ABORT, .mclass = SL_MSG_CONTROL};
    format_peer(fd, c->peer, sizeof c->peer);
    /* Thread-per-core: the actor lives on the reactor that accepted it. */
    sl_actor_init(&c->a, sl_server_sched_of(srv, r), "conn", srv->cfg.mailbox_capacity, behavior, destroy);
    c->reap_msg = (sl_msg_t){.kind = MSG_REAP, .mclass = SL_MSG_CONTROL};
    sl_conn__guard_init(c);
    c->counted_open = true; /* the seat taken above */
    /* No completion can be posted while this reactor thread is inside the
     * accept callback, so the actor cannot run before we return; joining
     * the registry last means no drain message races these writes. */
    arm_recv(c);
    arm_timer(c);
    sl_server_conn_add(srv, c);
}

void sl_conn_request_close(sl_conn_t *c, bool abort)
{
    if (abort && !c->abort_sent) {
        c->abort_sent = true;
        sl_actor_send(&c->a, &c->abort_msg);
    } else if (!abort && !c->drain_sent) {
        c->drain_sent = true;
        sl_actor_send(&c->a, &c->drain_msg);
    }
}

void sl_conn_link(sl_conn_t **head, sl_conn_t *c)
{
    c->reg_prev = NULL;
    c->reg_next = *head;
    if (*head)
        (*head)->reg_prev = c;
    *head = c;
}

void sl_conn_unlink(sl_conn_t **head, sl_conn_t *c)
{
    if (c->reg_prev)
        c->reg_prev->reg_next = c->reg_next;
    else if (*head == c)
        *head = c->reg_next;
    if (c->reg_next)
        c->reg_next->reg_prev = c->reg_prev;
    c->reg_next = c->reg_prev = NULL;
}

sl_conn_t *sl_conn_next(sl_conn_t *c) { return c->reg_next; }
