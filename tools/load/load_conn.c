/*
 * Connection plumbing shared by both protocols: socket setup, the connect,
 * recv and send operations, read pacing, and teardown. Teardown follows the
 * loop's rule: shutdown → cancel → wait for every completion → close → free.
 */
#include "tools/load/load_int.h"
#include "tools/load/load_rpc_int.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net/tls.h"
#include "runtime/base.h"
#include "runtime/clock.h"

static void post_recv(sl_load_conn_t *c);
static void flush(sl_load_conn_t *c);

void sl_load__req_link(sl_load_conn_t *c, sl_load_req_t *req)
{
    req->_conn = c;
    req->_next = NULL;
    req->_prev = c->tail;
    if (c->tail)
        c->tail->_next = req;
    else
        c->head = req;
    c->tail = req;
    c->pending++;
}

void sl_load__req_finish(sl_load_conn_t *c, sl_load_req_t *req, int err)
{
    sl_assert(req->_conn == c);
    if (req->_prev)
        req->_prev->_next = req->_next;
    else
        c->head = req->_next;
    if (req->_next)
        req->_next->_prev = req->_prev;
    else
        c->tail = req->_prev;
    c->pending--;
    if (c->h2 && req->_stream_id > 0)
        nghttp2_session_set_stream_user_data(c->h2, req->_stream_id, NULL);
    req->_conn = NULL;
    req->_prev = req->_next = NULL;
    req->cbs->on_done(req, err);
}

static void maybe_free(sl_load_conn_t *c)
{
    if (!c->torn_down || c->connect_op.busy || c->recv_op.busy || c->send_op.busy ||
        c->cancel_op.busy)
        return;
    close(c->fd);
    sl_tls_conn_destroy(c->tls);
    free(c->rbuf);
    free(c->out);
    free(c->sending);
    free(c);
}

static void teardown(sl_load_conn_t *c)
{
    sl_assert(!c->torn_down);
    c->torn_down = true;
    sl_load_loop_timer_cancel(c->loop, &c->read_timer);
    /* Bounded by pending: on_done callbacks cannot add requests now. */
    while (c->head)
        sl_load__req_finish(c, c->head, SL_ECLOSED);
    if (c->h2)
        sl_load__h2_deinit(c);
    sl_load__rpc_deinit(c);
    c->close_cb(c, c->close_err, c->ctx);
    if (c->abortive) {
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    }
    shutdown(c->fd, SHUT_RDWR);
    if (c->connect_op.busy) {
        struct io_uring_sqe *sqe = sl_load_loop_sqe(c->loop, &c->cancel_op);
        io_uring_prep_cancel(sqe, &c->connect_op, 0);
    }
    maybe_free(c);
}

void sl_load__conn_fail(sl_load_conn_t *c, int err)
{
    if (c->close_requested)
        return;
    c->close_requested = true;
    c->close_err = err;
    if (c->dispatch_depth == 0)
        teardown(c);
}

void sl_load_conn_close(sl_load_conn_t *c, bool abortive)
{
    c->abortive = abortive;
    sl_load__conn_fail(c, 0);
}

/* Every completion handler brackets its work with enter/leave so that a
 * close requested from inside a callback tears down only afterwards. */
static bool enter(sl_load_conn_t *c)
{
    if (c->torn_down) {
        maybe_free(c);
        return false;
    }
    c->dispatch_depth++;
    return true;
}

static void leave(sl_load_conn_t *c)
{
    c->dispatch_depth--;
    if (c->dispatch_depth == 0 && c->close_requested && !c->torn_down)
        teardown(c);
}

static void on_connect(sl_load_op_t *op, int res)
{
    sl_load_conn_t *c = sl_container_of(op, sl_load_conn_t, connect_op);
    if (!enter(c))
        return;
    if (res < 0) {
        sl_load__conn_fail(c, res);
    } else {
        c->open = true;
        if (c->open_cb)
            c->open_cb(c, c->ctx);
        flush(c);
        post_recv(c);
    }
    leave(c);
}

/* Plaintext into the protocol (also the TLS feed's callback). */
static int proto_recv(void *ctx, const uint8_t *data, size_t len)
{
    sl_load_conn_t *c = ctx;
    const char *p = (const char *)data;
    return c->proto == SL_LOAD_PROTO_H2    ? sl_load__h2_recv(c, p, len)
           : c->proto == SL_LOAD_PROTO_RPC ? sl_load__rpc_recv(c, p, len)
                                           : sl_load__h1_recv(c, p, len);
}

static void on_recv(sl_load_op_t *op, int res)
{
    sl_load_conn_t *c = sl_container_of(op, sl_load_conn_t, recv_op);
    if (!enter(c))
        return;
    if (res > 0) {
        c->bytes_in += (uint64_t)res;
        if (c->read_rate) {
            uint64_t now = sl_clock_now_ns();
            if (c->next_read_ns < now)
                c->next_read_ns = now;
            c->next_read_ns += (uint64_t)res * SL_NS_PER_S / c->read_rate;
        }
        int rc = c->tls ? sl_tls_conn_feed(c->tls, (const uint8_t *)c->rbuf, (size_t)res,
                                           proto_recv, c)
                        : proto_recv(c, (const uint8_t *)c->rbuf, (size_t)res);
        if (rc == SL_ECLOSED && c->proto == SL_LOAD_PROTO_H1)
            sl_load__h1_eof(c); /* close_notify: the end of an HTTP/1.0-style body */
        if (rc < 0)
            sl_load__conn_fail(c, rc);
        flush(c);
        post_recv(c);
    } else {
        if (res == 0 && c->proto == SL_LOAD_PROTO_H1)
            sl_load__h1_eof(c);
        sl_load__conn_fail(c, res == 0 ? SL_ECLOSED : res);
    }
    leave(c);
}

static void post_send(sl_load_conn_t *c)
{
    struct io_uring_sqe *sqe = sl_load_loop_sqe(c->loop, &c->send_op);
    io_uring_prep_send(sqe, c->fd, c->sending + c->send_off, c->send_len - c->send_off,
                       MSG_NOSIGNAL);
}

static void on_send(sl_load_op_t *op, int res)
{
    sl_load_conn_t *c = sl_container_of(op, sl_load_conn_t, send_op);
    if (!enter(c))
        return;
    if (res < 0) {
        sl_load__conn_fail(c, res);
    } else {
        c->send_off += (size_t)res;
        if (c->send_off < c->send_len) {
            post_send(c);
        } else {
            c->send_len = 0;
            flush(c);
        }
    }
    leave(c);
}

/* TLS: the protocol's output is encrypted (once the handshake is done)
 * and the ciphertext, handshake flights first, is what goes out. */
static void flush_tls(sl_load_conn_t *c)
{
    if (c->out_len) {
        struct iovec v = {c->out, c->out_len};
        long k = sl_tls_conn_encrypt(c->tls, &v, 1, c->out_len);
        if (k < 0) {
            sl_load__conn_fail(c, SL_EPROTO);
            return;
        }
        memmove(c->out, c->out + k, c->out_len - (size_t)k);
        c->out_len -= (size_t)k;
    }
    size_t n = sl_tls_conn_take_output(c->tls, (uint8_t *)c->sending, c->sending_cap);
    if (n == 0)
        return;
    c->send_len = n;
    c->send_off = 0;
    post_send(c);
}

static void flush(sl_load_conn_t *c)
{
    /* nghttp2 forbids mem_send inside its callbacks; on_recv flushes after
     * mem_recv returns. */
    if (!c->open || c->send_op.busy || c->close_requested || c->h2_in_recv)
        return;
    if (c->h2 && sl_load__h2_fill(c) < 0) {
        sl_load__conn_fail(c, SL_EPROTO);
        return;
    }
    if (c->tls) {
        flush_tls(c);
        return;
    }
    if (c->out_len == 0)
        return;
    char *t = c->sending;
    c->sending = c->out;
    c->out = t;
    c->send_len = c->out_len;
    c->send_off = 0;
    c->out_len = 0;
    post_send(c);
}

static void on_read_timer(sl_load_timer_t *t)
{
    sl_load_conn_t *c = sl_container_of(t, sl_load_conn_t, read_timer);
    post_recv(c);
}

static void post_recv(sl_load_conn_t *c)
{
    if (c->recv_op.busy || !c->reading || !c->open || c->close_requested)
        return;
    size_t n = c->rbuf_bytes;
    if (c->read_rate) {
        uint64_t now = sl_clock_now_ns();
        if (c->next_read_ns > now) {
            sl_load_loop_timer_set(c->loop, &c->read_timer, c->next_read_ns);
            return;
        }
        /* At most 50 ms worth per read keeps the pacing smooth. */
        size_t slice = (size_t)(c->read_rate / 20);
        if (slice == 0)
            slice = 1;
        if (slice < n)
            n = slice;
    }
    struct io_uring_sqe *sqe = sl_load_loop_sqe(c->loop, &c->recv_op);
    io_uring_prep_recv(sqe, c->fd, c->rbuf, n, 0);
}

static int open_socket(sl_load_conn_t *c, const sl_load_conn_cfg_t *cfg)
{
    c->fd = socket(cfg->addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return -errno;
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (cfg->rcvbuf_bytes > 0)
        setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &cfg->rcvbuf_bytes, sizeof(int));
    return 0;
}

static int init_conn(sl_load_conn_t *c, sl_load_loop_t *loop, const sl_load_conn_cfg_t *cfg)
{
    c->loop = loop;
    c->proto = cfg->proto;
    c->authority = cfg->authority;
    c->token = cfg->token;
    c->connect_op.cb = on_connect;
    c->recv_op.cb = on_recv;
    c->send_op.cb = on_send;
    c->cancel_op.cb = NULL;
    c->read_timer.cb = on_read_timer;
    c->reading = true;
    c->rbuf_bytes = cfg->recv_bytes;
    c->out_cap = cfg->send_bytes;
    c->h2_stream_window = cfg->h2_stream_window;
    c->h2_conn_window = cfg->h2_conn_window;
    sl_assert(cfg->addr_len <= sizeof(c->addr));
    memcpy(&c->addr, cfg->addr, cfg->addr_len);
    c->addr_len = cfg->addr_len;
    /* TLS: ciphertext of a full output buffer (record overhead) plus a
     * handshake flight; what does not fit waits in the BIO. */
    c->sending_cap = cfg->tls ? c->out_cap + c->out_cap / 64 + 8192 : c->out_cap;
    c->rbuf = malloc(c->rbuf_bytes);
    c->out = malloc(c->out_cap);
    c->sending = malloc(c->sending_cap);
    if (!c->rbuf || !c->out || !c->sending)
        return -ENOMEM;
    if (cfg->tls) {
        static const uint8_t h2[] = "\x02h2", h1[] = "\x08http/1.1";
        const uint8_t *alpn = c->proto == SL_LOAD_PROTO_H2 ? h2 : h1;
        size_t alpn_len = c->proto == SL_LOAD_PROTO_H2   ? sizeof h2 - 1
                          : c->proto == SL_LOAD_PROTO_H1 ? sizeof h1 - 1
                                                         : 0;
        if (sl_tls_conn_create_client(&c->tls, cfg->tls, cfg->tls_host, alpn, alpn_len) != 0)
            return -ENOMEM;
    }
    if (c->proto == SL_LOAD_PROTO_RPC)
        return sl_load__rpc_init(c);
    return c->proto == SL_LOAD_PROTO_H2 ? sl_load__h2_init(c) : sl_load__h1_init(c);
}

static void on_cancel_done(sl_load_op_t *op, int res)
{
    sl_load_conn_t *c = sl_container_of(op, sl_load_conn_t, cancel_op);
    maybe_free(c);
}

sl_load_conn_t *sl_load_conn_create(sl_load_loop_t *loop, const sl_load_conn_cfg_t *cfg,
                                    sl_load_conn_open_cb open_cb,
                                    sl_load_conn_close_cb close_cb, void *ctx, int *err)
{
    sl_assert(close_cb != NULL);
    sl_load_conn_t *c = calloc(1, sizeof(*c));
    if (!c) {
        *err = -ENOMEM;
        return NULL;
    }
    c->fd = -1;
    int rc = init_conn(c, loop, cfg);
    if (rc == 0)
        rc = open_socket(c, cfg);
    if (rc < 0) {
        if (c->h2)
            nghttp2_session_del(c->h2);
        sl_load__rpc_deinit(c);
        sl_tls_conn_destroy(c->tls);
        if (c->fd >= 0)
            close(c->fd);
        free(c->rbuf);
        free(c->out);
        free(c->sending);
        free(c);
        *err = rc;
        return NULL;
    }
    c->cancel_op.cb = on_cancel_done;
    c->open_cb = open_cb;
    c->close_cb = close_cb;
    c->ctx = ctx;
    struct io_uring_sqe *sqe = sl_load_loop_sqe(loop, &c->connect_op);
    io_uring_prep_connect(sqe, c->fd, (struct sockaddr *)&c->addr, c->addr_len);
    return c;
}

int sl_load_conn_submit(sl_load_conn_t *c, sl_load_req_t *req)
{
    if (c->close_requested)
        return SL_ECLOSED;
    req->status = 0;
    req->_stream_id = 0;
    req->_body_off = 0;
    int rc = c->proto == SL_LOAD_PROTO_H2    ? sl_load__h2_submit(c, req)
             : c->proto == SL_LOAD_PROTO_RPC ? sl_load__rpc_submit(c, req)
                                             : sl_load__h1_submit(c, req);
    if (rc < 0)
        return rc;
    c->dispatch_depth++;
    flush(c);
    leave(c);
    return 0;
}

void sl_load_conn_set_reading(sl_load_conn_t *c, bool on)
{
    c->reading = on;
    if (on && !c->torn_down)
        post_recv(c);
}

void sl_load_conn_set_read_rate(sl_load_conn_t *c, uint64_t bytes_per_s)
{
    c->read_rate = bytes_per_s;
}

unsigned sl_load_conn_pending(const sl_load_conn_t *c)
{
    return c->pending;
}

bool sl_load_conn_is_open(const sl_load_conn_t *c)
{
    return c->open && !c->close_requested;
}

uint64_t sl_load_conn_bytes_in(const sl_load_conn_t *c)
{
    return c->bytes_in;
}
