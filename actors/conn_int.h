/*
 * The connection actor's record, shared by conn.c (I/O engine) and
 * conn_http.c (protocol glue and request routing). No other folder
 * includes this.
 */
#ifndef SL_ACTORS_CONN_INT_H
#define SL_ACTORS_CONN_INT_H

#include <netinet/in.h>
#include <sys/uio.h>

#include "actors/conn.h"
#include "runtime/buf.h"
#include "runtime/limits.h"

typedef enum conn_state {
    SL_CONN__OPEN = 0,  /* serving */
    SL_CONN__DRAINING,  /* finishing in-flight work, then close */
    SL_CONN__CLOSING,   /* cancels submitted; waiting for op completions */
    SL_CONN__CLOSED,    /* close submitted or done */
} sl_conn__state_t;

struct sl_http_conn;

struct sl_conn {
    sl_actor_t a;
    sl_server_t *srv;
    sl_reactor_t *r;
    sl_conn_t *reg_next, *reg_prev; /* registry, under srv->conns_lock */
    int fd;
    sl_conn__state_t state;
    /* I/O records; each is in flight at most once. */
    sl_op_t recv_op, send_op, timer_op, cancel_op, cancel_timer_op, close_op;
    bool recv_armed, send_armed, timer_armed;
    uint32_t ops_inflight;
    sl_outq_t outq;
    struct iovec iov[SL_SEND_IOV_MAX];
    /* Protocol. */
    struct sl_http_conn *http;     /* NULL until the first bytes chose one */
    uint8_t sniff[32];
    uint32_t sniff_len;
    bool proto_failed;             /* close once the error answer is sent */
    /* Timing. */
    uint64_t accepted_ns;
    uint64_t last_activity_ns;
    /* Preallocated control messages; the flags are guarded by conns_lock. */
    sl_msg_t drain_msg, abort_msg;
    bool drain_sent, abort_sent;
    bool counted_open;
    char peer[64];
};

/* Protocol glue, in conn_http.c. All run on the connection's actor. */
/* Feeds received bytes. Returns 0, or < 0 when the connection must close
 * after its queued output (an error answer) is flushed. */
int sl_conn__proto_feed(sl_conn_t *c, const uint8_t *data, size_t len);
/* False while the protocol holds input back (HTTP/1.x pipelining behind a
 * response) or is done reading: the recv is not re-armed. */
bool sl_conn__proto_want_read(sl_conn_t *c);
/* Moves pending protocol output into c->outq (stops when it is full). */
void sl_conn__proto_flush(sl_conn_t *c);
/* True when the protocol has finished (GOAWAY sent, Connection: close
 * answered, error) and the connection should close once output drains. */
bool sl_conn__proto_want_close(sl_conn_t *c);
/* True when no request is being received or answered and no stream is
 * open: the connection may be closed as idle. */
bool sl_conn__proto_idle(sl_conn_t *c);
/* Starts a graceful finish (HTTP/2 GOAWAY; HTTP/1.1 close after the
 * current response). */
void sl_conn__proto_drain(sl_conn_t *c);
void sl_conn__proto_destroy(sl_conn_t *c);

/* I/O engine entry points the glue may call. */
void sl_conn__pump(sl_conn_t *c); /* flush protocol output and send */

#endif
