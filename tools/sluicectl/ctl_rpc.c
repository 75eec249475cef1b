/*
 * Blocking msgpack-RPC client over a non-blocking socket and poll(2): the
 * socket is non-blocking only so that every wait can carry a deadline and
 * be cut short by a signal. See ctl_rpc.h.
 */
#include "tools/sluicectl/ctl_rpc.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "net/tls.h"
#include "runtime/base.h"

/* Ciphertext moved per send or recv call on a TLS connection. */
#define CTL_TLS_IO_BYTES 16384u

struct sl_ctl_rpc {
    int fd;
    sl_tls_conn_t *tls; /* NULL: cleartext */
    uint32_t next_msgid;
    msgpack_unpacker up;
    msgpack_sbuffer out;
    msgpack_packer pk;
    bool has_mask;
    sigset_t mask; /* signal mask during waits */
};

int64_t sl_ctl_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for events on fd until deadline_ms (-1: none), with the signal
 * mask `mask` during the wait when not NULL (ppoll: a signal the caller
 * blocks is taken only here, so it cannot slip in between the caller's
 * check of its flag and the wait). Returns 0 when ready or after a slice
 * of the wait, -ETIMEDOUT, -EINTR, or -errno. */
static int wait_fd(int fd, short events, int64_t deadline_ms, const sigset_t *mask)
{
    struct timespec ts = {.tv_sec = 60};
    if (deadline_ms >= 0) {
        int64_t left = deadline_ms - sl_ctl_now_ms();
        if (left <= 0)
            return -ETIMEDOUT;
        if (left < 60000) {
            ts.tv_sec = left / 1000;
            ts.tv_nsec = left % 1000 * 1000000;
        }
    }
    struct pollfd p = {.fd = fd, .events = events};
    int n = ppoll(&p, 1, &ts, mask);
    if (n < 0)
        return -errno;
    return 0; /* ready, or a slice of the wait passed: the caller retries */
}

static int connect_one(const struct sockaddr *sa, socklen_t len, int64_t deadline_ms, int *fd_out)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (sa->sa_family != AF_UNIX) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    int rc = connect(fd, sa, len) == 0 ? 0 : -errno;
    /* Bounded by the deadline: each pass waits until it or the socket. */
    while (rc == -EINPROGRESS || rc == -EAGAIN) {
        rc = wait_fd(fd, POLLOUT, deadline_ms, NULL);
        if (rc < 0)
            break;
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        if (poll(&p, 1, 0) <= 0) {
            rc = -EINPROGRESS;
            continue;
        }
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
        rc = -soerr;
    }
    if (rc < 0) {
        close(fd);
        return rc;
    }
    *fd_out = fd;
    return 0;
}

static int connect_unix(const char *path, int64_t deadline_ms, int *fd)
{
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof(un.sun_path))
        return SL_EINVAL;
    memcpy(un.sun_path, path, n + 1);
    return connect_one((struct sockaddr *)&un, sizeof(un), deadline_ms, fd);
}

static int connect_tcp(const char *addr, int64_t deadline_ms, int *fd)
{
    char host[256];
    const char *colon = strrchr(addr, ':');
    if (!colon || colon == addr || !colon[1])
        return SL_EINVAL;
    size_t hl = (size_t)(colon - addr);
    if (addr[0] == '[' && hl >= 2 && addr[hl - 1] == ']') {
        addr++;
        hl -= 2;
    }
    if (hl >= sizeof(host))
        return SL_EINVAL;
    memcpy(host, addr, hl);
    host[hl] = '\0';
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    if (getaddrinfo(host, colon + 1, &hints, &ai) != 0 || !ai)
        return SL_EINVAL;
    int rc = -ECONNREFUSED;
    for (struct addrinfo *a = ai; a; a = a->ai_next) {
        rc = connect_one(a->ai_addr, a->ai_addrlen, deadline_ms, fd);
        if (rc == 0 || rc == -ETIMEDOUT || rc == -EINTR)
            break;
    }
    freeaddrinfo(ai);
    return rc;
}

/* Writes len bytes to the socket within the deadline. */
static int send_all(sl_ctl_rpc_t *c, const char *p, size_t len, int64_t deadline_ms)
{
    size_t off = 0;
    /* Bounded by the deadline: each pass sends bytes or waits for room. */
    while (off < len) {
        ssize_t n = send(c->fd, p + off, len - off, MSG_NOSIGNAL);
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (n < 0 && errno != EAGAIN && errno != EINTR)
            return -errno;
        int rc = wait_fd(c->fd, POLLOUT, deadline_ms, c->has_mask ? &c->mask : NULL);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Sends whatever ciphertext the TLS endpoint has made. */
static int send_tls_output(sl_ctl_rpc_t *c, int64_t deadline_ms)
{
    char buf[CTL_TLS_IO_BYTES];
    size_t n;
    /* Bounded by what the endpoint holds: each pass takes some of it. */
    while ((n = sl_tls_conn_take_output(c->tls, (uint8_t *)buf, sizeof buf)) > 0) {
        int rc = send_all(c, buf, n, deadline_ms);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Plaintext from the TLS endpoint into the unpacker. */
static int on_plain(void *ctx, const uint8_t *data, size_t len)
{
    sl_ctl_rpc_t *c = ctx;
    if (!msgpack_unpacker_reserve_buffer(&c->up, len))
        return -ENOMEM;
    memcpy(msgpack_unpacker_buffer(&c->up), data, len);
    msgpack_unpacker_buffer_consumed(&c->up, len);
    return 0;
}

/* Reads once from the socket: into the unpacker, or through TLS. Returns
 * 0 (bytes arrived, possibly no plaintext), or an error of fill. */
static int recv_some(sl_ctl_rpc_t *c, int64_t deadline_ms)
{
    char buf[CTL_TLS_IO_BYTES];
    /* Bounded by the deadline: each pass reads or waits. */
    for (;;) {
        char *p = c->tls ? buf : msgpack_unpacker_buffer(&c->up);
        size_t cap = c->tls ? sizeof buf : msgpack_unpacker_buffer_capacity(&c->up);
        ssize_t n = recv(c->fd, p, cap, 0);
        if (n > 0 && !c->tls) {
            msgpack_unpacker_buffer_consumed(&c->up, (size_t)n);
            return 0;
        }
        if (n > 0) {
            int rc = sl_tls_conn_feed(c->tls, (const uint8_t *)buf, (size_t)n, on_plain, c);
            int out = send_tls_output(c, deadline_ms); /* key updates, alerts */
            return rc < 0 ? rc : out;
        }
        if (n == 0)
            return SL_ECLOSED;
        if (errno != EAGAIN && errno != EINTR)
            return -errno;
        int rc = wait_fd(c->fd, POLLIN, deadline_ms, c->has_mask ? &c->mask : NULL);
        if (rc < 0)
            return rc;
    }
}

static int start_tls(sl_ctl_rpc_t *c, const char *addr, const sl_ctl_tls_t *tls,
                     int64_t deadline_ms)
{
    char err[512], host[256];
    const char *colon = strrchr(addr, ':');
    size_t hl = colon ? (size_t)(colon - addr) : strlen(addr);
    if (hl >= 2 && addr[0] == '[' && addr[hl - 1] == ']')
        addr++, hl -= 2;
    snprintf(host, sizeof host, "%.*s", (int)(hl < sizeof host ? hl : sizeof host - 1), addr);
    sl_tls_ctx_t *ctx = NULL;
    int rc = sl_tls_ctx_create_client(&ctx, tls->cacert, !tls->insecure, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "sluicectl: TLS: %s\n", err);
        return SL_EPROTO;
    }
    rc = sl_tls_conn_create_client(&c->tls, ctx, host, NULL, 0);
    sl_tls_ctx_release(ctx);
    if (rc != 0)
        return rc;
    /* Bounded by the deadline: each pass sends a flight or reads one. */
    while (rc == 0 && !sl_tls_conn_established(c->tls)) {
        rc = send_tls_output(c, deadline_ms);
        if (rc == 0)
            rc = recv_some(c, deadline_ms);
    }
    if (rc == 0)
        rc = send_tls_output(c, deadline_ms); /* the client's Finished */
    if (rc == SL_EPROTO || rc == SL_ECLOSED)
        fprintf(stderr, "sluicectl: TLS handshake with %s failed (certificate not trusted, "
                        "wrong name, or not a TLS port; --cacert, --insecure)\n", addr);
    return rc == SL_ECLOSED ? SL_EPROTO : rc;
}

int sl_ctl_rpc_connect(const char *addr, const sl_ctl_tls_t *tls, int timeout_ms,
                       sl_ctl_rpc_t **out)
{
    int64_t deadline = sl_ctl_now_ms() + timeout_ms;
    int fd = -1;
    int rc = strncmp(addr, "unix:", 5) == 0 ? connect_unix(addr + 5, deadline, &fd)
                                            : connect_tcp(addr, deadline, &fd);
    if (rc < 0)
        return rc;
    sl_ctl_rpc_t *c = calloc(1, sizeof(*c));
    if (!c || !msgpack_unpacker_init(&c->up, SL_CTL_RPC_READ_BYTES)) {
        free(c);
        close(fd);
        return -ENOMEM;
    }
    c->fd = fd;
    c->next_msgid = 1;
    msgpack_sbuffer_init(&c->out);
    msgpack_packer_init(&c->pk, &c->out, msgpack_sbuffer_write);
    if (tls && tls->on && strncmp(addr, "unix:", 5) != 0 &&
        (rc = start_tls(c, addr, tls, deadline)) != 0) {
        sl_ctl_rpc_close(c);
        return rc;
    }
    *out = c;
    return 0;
}

void sl_ctl_rpc_set_wait_mask(sl_ctl_rpc_t *c, const sigset_t *mask)
{
    c->has_mask = true;
    c->mask = *mask;
}

void sl_ctl_rpc_close(sl_ctl_rpc_t *c)
{
    if (!c)
        return;
    close(c->fd);
    sl_tls_conn_destroy(c->tls);
    msgpack_unpacker_destroy(&c->up);
    msgpack_sbuffer_destroy(&c->out);
    free(c);
}

msgpack_packer *sl_ctl_rpc_begin(sl_ctl_rpc_t *c, const char *method, uint32_t nparams,
                                 uint32_t *msgid)
{
    msgpack_sbuffer_clear(&c->out);
    *msgid = c->next_msgid++;
    size_t mlen = strlen(method);
    msgpack_pack_array(&c->pk, 4);
    msgpack_pack_uint32(&c->pk, 0);
    msgpack_pack_uint32(&c->pk, *msgid);
    msgpack_pack_str(&c->pk, mlen);
    msgpack_pack_str_body(&c->pk, method, mlen);
    msgpack_pack_array(&c->pk, nparams);
    return &c->pk;
}

int sl_ctl_rpc_send(sl_ctl_rpc_t *c, int64_t deadline_ms)
{
    int rc = 0;
    if (!c->tls) {
        rc = send_all(c, c->out.data, c->out.size, deadline_ms);
    } else {
        /* Bounded by the request: each pass encrypts a slice of it. */
        for (size_t off = 0; rc == 0 && off < c->out.size;) {
            struct iovec v = {c->out.data + off, c->out.size - off};
            long k = sl_tls_conn_encrypt(c->tls, &v, 1, CTL_TLS_IO_BYTES * 4);
            if (k <= 0)
                return SL_EPROTO;
            off += (size_t)k;
            rc = send_tls_output(c, deadline_ms);
        }
    }
    if (rc == 0)
        msgpack_sbuffer_clear(&c->out);
    return rc;
}

/* Sorts an unpacked root into a response or a notification. */
static int classify(sl_ctl_msg_t *m)
{
    const msgpack_object *o = &m->_unpacked.data;
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size < 3)
        return SL_EPROTO;
    const msgpack_object *a = o->via.array.ptr;
    if (a[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return SL_EPROTO;
    if (a[0].via.u64 == 1 && o->via.array.size == 4) {
        if (a[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER || a[1].via.u64 > UINT32_MAX)
            return SL_EPROTO;
        m->kind = SL_CTL_MSG_RESPONSE;
        m->msgid = (uint32_t)a[1].via.u64;
        m->error = a[2].type == MSGPACK_OBJECT_NIL ? NULL : &a[2];
        m->result = &a[3];
        return 0;
    }
    if (a[0].via.u64 == 2 && o->via.array.size == 3) {
        if (a[1].type == MSGPACK_OBJECT_STR) {
            m->method = a[1].via.str.ptr;
            m->method_len = a[1].via.str.size;
        } else if (a[1].type == MSGPACK_OBJECT_BIN) {
            m->method = a[1].via.bin.ptr;
            m->method_len = a[1].via.bin.size;
        } else {
            return SL_EPROTO;
        }
        if (a[2].type != MSGPACK_OBJECT_ARRAY)
            return SL_EPROTO;
        m->kind = SL_CTL_MSG_NOTIFY;
        m->params = &a[2];
        return 0;
    }
    return SL_EPROTO;
}

/* Reads more bytes into the unpacker. Returns 0, or an error of
 * sl_ctl_rpc_next. */
static int fill(sl_ctl_rpc_t *c, int64_t deadline_ms)
{
    if (msgpack_unpacker_message_size(&c->up) > SL_CTL_RPC_MESSAGE_MAX)
        return SL_ETOOBIG;
    if (!msgpack_unpacker_reserve_buffer(&c->up, SL_CTL_RPC_READ_BYTES))
        return -ENOMEM;
    return recv_some(c, deadline_ms);
}

int sl_ctl_rpc_next(sl_ctl_rpc_t *c, int64_t deadline_ms, sl_ctl_msg_t *msg)
{
    memset(msg, 0, sizeof(*msg));
    msgpack_unpacked_init(&msg->_unpacked);
    int rc = 0;
    /* Bounded by the deadline and the message cap: each pass decodes a
     * message or adds bytes. */
    for (;;) {
        msgpack_unpack_return ur = msgpack_unpacker_next(&c->up, &msg->_unpacked);
        if (ur == MSGPACK_UNPACK_SUCCESS) {
            rc = classify(msg);
            break;
        }
        if (ur != MSGPACK_UNPACK_CONTINUE) {
            rc = ur == MSGPACK_UNPACK_NOMEM_ERROR ? -ENOMEM : SL_EPROTO;
            break;
        }
        rc = fill(c, deadline_ms);
        if (rc < 0)
            break;
    }
    if (rc < 0)
        msgpack_unpacked_destroy(&msg->_unpacked);
    return rc;
}

int sl_ctl_rpc_wait(sl_ctl_rpc_t *c, uint32_t msgid, int64_t deadline_ms, sl_ctl_msg_t *msg)
{
    /* Bounded by the deadline: every pass consumes one message. */
    for (;;) {
        int rc = sl_ctl_rpc_next(c, deadline_ms, msg);
        if (rc < 0)
            return rc;
        if (msg->kind == SL_CTL_MSG_RESPONSE && msg->msgid == msgid)
            return 0;
        sl_ctl_msg_release(msg);
    }
}

void sl_ctl_msg_release(sl_ctl_msg_t *msg)
{
    msgpack_unpacked_destroy(&msg->_unpacked);
}
