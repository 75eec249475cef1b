/*
 * The RPC protocol hooks of an sl_load_conn, called by load_conn.c the way
 * it calls load_h1.c and load_h2.c. Nothing outside tools/load includes
 * this.
 */
#ifndef SL_TOOLS_LOAD_RPC_INT_H
#define SL_TOOLS_LOAD_RPC_INT_H

#include "tools/load/load_int.h"

/* Allocates c->rpc. Returns 0 or SL_ENOMEM. */
int sl_load__rpc_init(sl_load_conn_t *c);
/* Frees c->rpc (NULL is fine); every request must be finished. */
void sl_load__rpc_deinit(sl_load_conn_t *c);
/* Frames req into c->out and links it. Returns 0; SL_EFULL when the
 * output buffer has no room (retry after a response); SL_ETOOBIG when the
 * method name is too long for this client. */
int sl_load__rpc_submit(sl_load_conn_t *c, sl_load_req_t *req);
/* Decodes the received bytes (borrowed) and dispatches every complete
 * message. Returns 0, or SL_EPROTO for bytes that are not msgpack-RPC or
 * a message above SL_LOAD_RPC_MESSAGE_MAX. */
int sl_load__rpc_recv(sl_load_conn_t *c, const char *data, size_t len);

#endif
