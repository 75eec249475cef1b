/*
 * Client connections for sluice-load: one TCP connection speaking HTTP/2
 * cleartext with prior knowledge (nghttp2 client session, many concurrent
 * requests), HTTP/1.1 (http-parser response mode, requests pipelined in
 * order) or msgpack-RPC (requests pipelined, responses matched by msgid;
 * TCP or a unix socket; load_rpc.h says how a request maps onto a call),
 * driven by an sl_load_loop.
 *
 * A request (sl_load_req_t) is caller storage: submit it, receive
 * on_headers once the status is known, on_body for each piece of the
 * (de-chunked) body, and exactly one on_done — success, stream reset, or the
 * connection closing. After on_done the connection no longer references the
 * request.
 *
 * With a TLS context every protocol runs over TLS (net/tls.h on memory
 * BIOs): ALPN offers h2 or http/1.1 to match, RPC offers nothing.
 *
 * Reading can be paused (a stalled reader) or paced to a byte rate (a slow
 * reader); both stop the kernel socket from being drained, so the server
 * sees real TCP backpressure.
 *
 * Single-threaded: every function runs on the loop's thread.
 */
#ifndef SL_TOOLS_LOAD_CONN_H
#define SL_TOOLS_LOAD_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "tools/load/load_loop.h"

typedef enum sl_load_proto {
    SL_LOAD_PROTO_H2 = 0,
    SL_LOAD_PROTO_H1 = 1,
    SL_LOAD_PROTO_RPC = 2,
} sl_load_proto_t;

#define SL_LOAD_PATH_MAX 320
/* Longest access token (--token, a JWT); policy: a usage error. */
#define SL_LOAD_TOKEN_MAX 4096

typedef struct sl_load_conn sl_load_conn_t;
typedef struct sl_load_req sl_load_req_t;

typedef struct sl_load_req_cbs {
    void (*on_headers)(sl_load_req_t *req);
    void (*on_body)(sl_load_req_t *req, const char *data, size_t len);
    /* err: 0 complete; SL_EPROTO reset or malformed; SL_ECLOSED the
     * connection went away first. */
    void (*on_done)(sl_load_req_t *req, int err);
} sl_load_req_cbs_t;

struct sl_load_req {
    const sl_load_req_cbs_t *cbs;
    void *ctx;
    const char *method;    /* static string: "GET", "POST", "PUT"; RPC: the method */
    char path[SL_LOAD_PATH_MAX]; /* unused by RPC */
    const char *body;      /* borrowed until on_done; NULL for none. RPC: the
                            * packed params array, borrowed during submit */
    size_t body_len;
    bool sse;              /* adds Accept: text/event-stream; RPC: a stream */
    int status;            /* set before on_headers */
    /* Private to the connection. */
    sl_load_conn_t *_conn;
    sl_load_req_t *_prev;
    sl_load_req_t *_next;
    int32_t _stream_id;
    size_t _body_off;
    uint64_t _rpc_id;      /* RPC: msgid until answered, then a stream's id */
};

typedef struct sl_load_conn_cfg {
    sl_load_proto_t proto;
    const struct sockaddr *addr; /* borrowed during create */
    socklen_t addr_len;
    const char *authority;       /* Host / :authority; borrowed for life */
    const char *token;           /* access token sent first / with each request; NULL: none;
                                  * borrowed for life */
    int rcvbuf_bytes;            /* SO_RCVBUF; 0 keeps the kernel default */
    size_t recv_bytes;           /* receive buffer size */
    size_t send_bytes;           /* request output buffer size */
    uint32_t h2_stream_window;   /* SETTINGS_INITIAL_WINDOW_SIZE */
    uint32_t h2_conn_window;     /* connection-level receive window */
    struct sl_tls_ctx *tls;      /* TLS client context (net/tls.h), or NULL:
                                  * cleartext; borrowed for life */
    const char *tls_host;        /* server name for SNI and the check; borrowed */
} sl_load_conn_cfg_t;

/* Called once when connected (before any request bytes are sent). */
typedef void (*sl_load_conn_open_cb)(sl_load_conn_t *c, void *ctx);
/* Called once when the connection is finished, after every request got
 * on_done. err: 0 closed by sl_load_conn_close; -errno from connect, recv or
 * send; SL_ECLOSED the peer closed; SL_EPROTO a protocol error. The
 * connection must not be used after this returns. */
typedef void (*sl_load_conn_close_cb)(sl_load_conn_t *c, int err, void *ctx);

/* Starts connecting. Returns owned (freed by the loop after close_cb and
 * its last completion), or NULL with *err = -errno (nothing to clean up). */
sl_load_conn_t *sl_load_conn_create(sl_load_loop_t *loop, const sl_load_conn_cfg_t *cfg,
                                    sl_load_conn_open_cb open_cb,
                                    sl_load_conn_close_cb close_cb, void *ctx, int *err);
/* Queues req (borrowed until its on_done); allowed before the connection
 * is open. Returns 0; SL_EFULL when the output buffer has no room for it
 * (HTTP/1.1: retry after a response); SL_ECLOSED when closing; SL_EPROTO
 * if nghttp2 refused. On failure on_done is not called. */
int sl_load_conn_submit(sl_load_conn_t *c, sl_load_req_t *req);
/* Begins closing: pending requests get on_done(SL_ECLOSED), then close_cb
 * with err 0. Safe to call from any callback; idempotent. abortive sends
 * RST (SO_LINGER 0) instead of FIN. */
void sl_load_conn_close(sl_load_conn_t *c, bool abortive);
/* Stops or resumes reading from the socket. */
void sl_load_conn_set_reading(sl_load_conn_t *c, bool on);
/* Caps reading at bytes_per_s (0 = unlimited). */
void sl_load_conn_set_read_rate(sl_load_conn_t *c, uint64_t bytes_per_s);
/* Requests submitted and not yet done. */
unsigned sl_load_conn_pending(const sl_load_conn_t *c);
bool sl_load_conn_is_open(const sl_load_conn_t *c);
/* Bytes received so far. */
uint64_t sl_load_conn_bytes_in(const sl_load_conn_t *c);

#endif
