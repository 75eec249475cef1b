/*
 * The Durable Streams face (conn_ds.c): hooks the connection actor calls.
 * All run on the connection's actor.
 */
#ifndef SL_ACTORS_CONN_DS_H
#define SL_ACTORS_CONN_DS_H

#include <stdbool.h>
#include <stdint.h>

#include "actors/registry.h"
#include "actors/server.h"
#include "runtime/actor.h"

struct sl_http_req;
struct sl_pub;

/* True when the request's path is under --ds-prefix (then it is served by
 * sl_conn__ds_request). */
bool sl_conn__ds_path(const sl_conn_t *c, const struct sl_http_req *req);
void sl_conn__ds_request(sl_conn_t *c, const struct sl_http_req *req);
/* A PUBLISHED / SUBSCRIBED / UNSUBSCRIBED / CAUGHT_UP reply: true when it
 * belongs to a Durable Streams request (then it was handled). */
bool sl_conn__ds_msg(sl_conn_t *c, sl_msg_t *m);
/* Room or data may have arrived: live reads move on. */
void sl_conn__ds_pump(sl_conn_t *c);
/* Timer tick: long-poll deadlines, closure of followed streams. */
void sl_conn__ds_tick(sl_conn_t *c, uint64_t now_ns);
/* The timer period the pending long-polls need (p when none is shorter). */
uint64_t sl_conn__ds_period(const sl_conn_t *c, uint64_t p);
/* The peer reset stream_id, or every stream ends (close_all). */
void sl_conn__ds_stream_closed(sl_conn_t *c, uint32_t stream_id);
void sl_conn__ds_close_all(sl_conn_t *c);
/* Frees what is left (destroy; every reply has arrived). */
void sl_conn__ds_free(sl_conn_t *c);

/* The session layer removed e from the registry (deleted or expired):
 * a fork's parent loses a reader, and a soft-deleted parent left with
 * none goes for good (up the chain). Any worker. */
void sl_ds_session_removed(sl_server_t *srv, sl_entry_t *e);
/* Startup, after recovery: counts every fork in its parent's e->forks (the
 * counters are not kept across a restart). Main thread, before serving. */
void sl_ds_recount_forks(sl_server_t *srv);

#endif
