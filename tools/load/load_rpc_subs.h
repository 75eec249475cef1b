/*
 * Subscribers of a --proto rpc run: one `subscribe` stream per subscriber,
 * streams_per_conn of them per RPC connection. The rest of the subscriber
 * machinery is shared with the SSE path (load_subs.c): allocation, modes
 * (slow and stalled connections pace or pause the socket the same way),
 * the catch-up test and the result checks all work on the same sub_t.
 * Nothing outside tools/load includes this.
 */
#ifndef SL_TOOLS_LOAD_RPC_SUBS_H
#define SL_TOOLS_LOAD_RPC_SUBS_H

#include "tools/load/load_run_int.h"

/* Starts steady subscriber connections up to --connect-concurrency, like
 * sl_load__subs_start_more. */
void sl_load__rpc_subs_start_more(sl_load_run_t *r);

#endif
