/*
 * Internals shared by the connection files of sluice-load (load_conn.c,
 * load_h1.c, load_h2.c). Nothing outside tools/load includes this.
 */
#ifndef SL_TOOLS_LOAD_INT_H
#define SL_TOOLS_LOAD_INT_H

#include <http_parser.h>
#include <nghttp2/nghttp2.h>

#include "tools/load/load_conn.h"

struct sl_load_conn {
    sl_load_loop_t *loop;
    sl_load_proto_t proto;
    int fd;
    sl_load_conn_open_cb open_cb;
    sl_load_conn_close_cb close_cb;
    void *ctx;
    const char *authority;
    const char *token;           /* NULL: none */
    sl_load_op_t connect_op;
    sl_load_op_t recv_op;
    sl_load_op_t send_op;
    sl_load_op_t cancel_op;
    sl_load_timer_t read_timer;
    struct sockaddr_storage addr; /* referenced by the connect SQE */
    socklen_t addr_len;
    char *rbuf;
    size_t rbuf_bytes;
    /* Producers append to out; the kernel sends from sending. The two swap
     * when a send completes, so out can grow while a send is in flight. */
    char *out;
    size_t out_len;
    size_t out_cap;
    char *sending;
    size_t send_len;
    size_t send_off;
    sl_load_req_t *head; /* requests in submission order (h1: response order) */
    sl_load_req_t *tail;
    unsigned pending;
    bool open;
    bool reading;
    bool close_requested;
    bool torn_down;
    bool abortive;
    int close_err;
    int dispatch_depth;
    uint64_t read_rate;
    uint64_t next_read_ns;
    uint64_t bytes_in;
    /* HTTP/2 */
    nghttp2_session *h2;
    const uint8_t *h2_pend; /* nghttp2 output not yet copied into out */
    size_t h2_pend_len;
    bool h2_in_recv; /* inside nghttp2_session_mem_recv: no mem_send now */
    uint32_t h2_stream_window;
    uint32_t h2_conn_window;
    /* HTTP/1.1 */
    http_parser hp;
    /* msgpack-RPC (load_rpc.c); NULL for the other protocols */
    struct sl_load_rpc_conn *rpc;
    /* TLS (net/tls.h); NULL for cleartext. `sending` then holds ciphertext
     * and has room for out_cap bytes of plaintext's records. */
    struct sl_tls_conn *tls;
    size_t sending_cap;
};

/* Links req at the tail of c's request list. */
void sl_load__req_link(sl_load_conn_t *c, sl_load_req_t *req);
/* Unlinks req and calls its on_done(err). */
void sl_load__req_finish(sl_load_conn_t *c, sl_load_req_t *req, int err);
/* Asks for teardown with err (deferred while a completion is dispatched). */
void sl_load__conn_fail(sl_load_conn_t *c, int err);

int sl_load__h1_init(sl_load_conn_t *c);
int sl_load__h1_submit(sl_load_conn_t *c, sl_load_req_t *req);
int sl_load__h1_recv(sl_load_conn_t *c, const char *data, size_t len);
void sl_load__h1_eof(sl_load_conn_t *c);

int sl_load__h2_init(sl_load_conn_t *c);
void sl_load__h2_deinit(sl_load_conn_t *c);
int sl_load__h2_submit(sl_load_conn_t *c, sl_load_req_t *req);
int sl_load__h2_recv(sl_load_conn_t *c, const char *data, size_t len);
/* Moves nghttp2's pending output into c->out while it has room. */
int sl_load__h2_fill(sl_load_conn_t *c);

#endif
