/*
 * sluicectl's msgpack-RPC client: one blocking connection (TCP or a unix
 * socket), requests framed [0, msgid, method, params], replies read as
 * whole msgpack messages and told apart by kind: responses
 * [1, msgid, error, result] are matched to their request by msgid (the
 * server may answer out of order), notifications [2, method, params] are
 * handed to the caller in arrival order.
 *
 * Every wait has a deadline, and a signal interrupts it (-EINTR), so a
 * command always ends: on its timeout, on a signal, or when the server
 * answers. Memory is bounded: a message larger than SL_CTL_RPC_MESSAGE_MAX
 * fails the connection (SL_ETOOBIG) instead of growing the buffer.
 *
 * Single-threaded: one connection belongs to the thread that opened it.
 */
#ifndef SL_TOOLS_CTL_RPC_H
#define SL_TOOLS_CTL_RPC_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include <msgpack.h>

/* Largest message read from the server. The server's own cap on what it
 * accepts is 64 MiB (SL_RPC_MESSAGE_BYTES_MAX); a reply is never larger
 * than the event it carries plus a few bytes. */
#define SL_CTL_RPC_MESSAGE_MAX (64u << 20)
/* Unpacker buffer: first reservation and growth step. */
#define SL_CTL_RPC_READ_BYTES 65536u

typedef struct sl_ctl_rpc sl_ctl_rpc_t;

/* TLS to a TCP address (net/tls.h on memory BIOs over the same blocking
 * socket): the server's certificate is checked against cacert (NULL: the
 * system store) and the host name, unless insecure. */
typedef struct sl_ctl_tls {
    bool on;
    bool insecure;
    const char *cacert;
} sl_ctl_tls_t;

typedef enum sl_ctl_msg_kind {
    SL_CTL_MSG_RESPONSE = 1,
    SL_CTL_MSG_NOTIFY = 2,
} sl_ctl_msg_kind_t;

/* One message from the server. Every pointer borrows the message's zone:
 * valid until sl_ctl_msg_release. */
typedef struct sl_ctl_msg {
    sl_ctl_msg_kind_t kind;
    uint32_t msgid;               /* RESPONSE */
    const msgpack_object *error;  /* RESPONSE: NULL when the call succeeded */
    const msgpack_object *result; /* RESPONSE: the result (nil on error) */
    const char *method;           /* NOTIFY: not NUL-terminated */
    size_t method_len;
    const msgpack_object *params; /* NOTIFY: always an array */
    msgpack_unpacked _unpacked;
} sl_ctl_msg_t;

/* Connects to addr: "HOST:PORT", "[V6]:PORT" or "unix:PATH", waiting at
 * most timeout_ms, and with tls->on completes a TLS handshake within the
 * same time. Returns 0 with *out owned by the caller; SL_EINVAL for an
 * address of the wrong shape or a host that does not resolve; -errno
 * from socket/connect (-ETIMEDOUT when the deadline passed, -EINTR on a
 * signal); SL_EPROTO when the TLS handshake failed (reason on stderr). */
int sl_ctl_rpc_connect(const char *addr, const sl_ctl_tls_t *tls, int timeout_ms,
                       sl_ctl_rpc_t **out);
/* Waits on c use mask (copied) as the signal mask: the caller blocks the
 * signals it handles and passes the mask without them, so they arrive only
 * during a wait and end it with -EINTR (ppoll). */
void sl_ctl_rpc_set_wait_mask(sl_ctl_rpc_t *c, const sigset_t *mask);
/* Closes and frees c (NULL is fine). */
void sl_ctl_rpc_close(sl_ctl_rpc_t *c);

/* Starts a request: packs [0, msgid, method, array(nparams)] and returns
 * the packer for the caller to pack exactly nparams objects, then
 * sl_ctl_rpc_send. Returns the packer; borrowed until the send. */
msgpack_packer *sl_ctl_rpc_begin(sl_ctl_rpc_t *c, const char *method, uint32_t nparams,
                                 uint32_t *msgid);
/* Writes the request begun last, waiting at most until deadline_ms
 * (sl_ctl_now_ms clock). Returns 0, or -errno (-ETIMEDOUT, -EINTR,
 * -EPIPE/-ECONNRESET when the server went away). */
int sl_ctl_rpc_send(sl_ctl_rpc_t *c, int64_t deadline_ms);
/* Reads the next message, waiting until deadline_ms (-1: no deadline).
 * Returns 0 with *msg filled (release it); -ETIMEDOUT; -EINTR on a signal;
 * SL_ECLOSED when the server closed the connection; SL_EPROTO for a
 * message that is not a response or notification; SL_ETOOBIG for one
 * larger than SL_CTL_RPC_MESSAGE_MAX; -errno from recv. After an error
 * other than -ETIMEDOUT or -EINTR the connection is unusable. */
int sl_ctl_rpc_next(sl_ctl_rpc_t *c, int64_t deadline_ms, sl_ctl_msg_t *msg);
/* Reads until the response to msgid arrives (notifications before it are
 * released unseen). Same returns as sl_ctl_rpc_next. */
int sl_ctl_rpc_wait(sl_ctl_rpc_t *c, uint32_t msgid, int64_t deadline_ms, sl_ctl_msg_t *msg);
/* Frees a message's memory. */
void sl_ctl_msg_release(sl_ctl_msg_t *msg);

/* Milliseconds on CLOCK_MONOTONIC, the clock of every deadline here. */
int64_t sl_ctl_now_ms(void);

#endif
