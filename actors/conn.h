/*
 * Connection actor: one per accepted socket. It owns the socket's I/O
 * records (one recv, one send, one timer, the teardown ops), the protocol
 * state (HTTP/1.1 or HTTP/2, chosen from the first bytes), and a bounded
 * output queue (--max-conn-output-bytes). It never blocks: input arrives as
 * recv completions, output leaves as one sendmsg at a time carrying many
 * queued segments.
 *
 * Backpressure: while the output queue is above half its bound the actor
 * stops re-arming its recv, so a client that pipelines requests but does
 * not read responses is slowed by TCP, not by our memory.
 *
 * Teardown: cancel every op on the fd -> wait for their completions ->
 * close through the reactor -> leave the registry -> drop the last
 * reference (the destroy callback frees the record).
 */
#ifndef SL_ACTORS_CONN_H
#define SL_ACTORS_CONN_H

#include <stdbool.h>

#include "actors/server.h"
#include "runtime/reactor.h"

/* Accept callback body: creates the actor for fd and arms its first recv.
 * rpc: the socket came from an --rpc-listen listener (msgpack-RPC), else
 * HTTP. Takes fd (closes it when over --max-connections or out of memory).
 * Reactor thread. */
void sl_conn_accept(sl_server_t *srv, sl_reactor_t *r, int fd, bool rpc);

/* Asks the connection to finish (graceful: complete in-flight responses,
 * GOAWAY, then close) or to abort now. At most one of each is delivered;
 * later calls are no-ops. Caller holds srv->conns_lock (which keeps c
 * alive). */
void sl_conn_request_close(sl_conn_t *c, bool abort);

/* Registry list helpers (caller holds srv->conns_lock). */
void sl_conn_link(sl_conn_t **head, sl_conn_t *c);
void sl_conn_unlink(sl_conn_t **head, sl_conn_t *c);
sl_conn_t *sl_conn_next(sl_conn_t *c);

#endif
