/*
 * sluice-load's msgpack-RPC client side: the third protocol of an
 * sl_load_conn (SL_LOAD_PROTO_RPC, next to HTTP/2 and HTTP/1.1), plus the
 * encoders and decoders of the calls a run makes (publish, subscribe,
 * create, health) and of the notifications it reads (event, gap, end).
 *
 * How an sl_load_req_t maps onto RPC (see load_conn.h):
 *   - method is the RPC method, body the packed params array (copied into
 *     the output at submit, so it is borrowed only during the call); path
 *     is unused. The connection numbers requests and matches each response
 *     to its request by msgid (responses may come out of order).
 *   - status is set from the response's error: 200 when nil; otherwise
 *     400 (bad_request, bad_params, invalid_session_id, invalid_type), 404
 *     (not_found), 413 (too_large), 501 (unknown_method), 503
 *     (overloaded), 500 (anything else). on_headers follows.
 *   - a plain call: on_body receives the result object (or, on error, the
 *     error object) as msgpack bytes, then on_done(0).
 *   - a stream (req->sse set; `subscribe`): the result is the subscription
 *     id; the request stays pending, and every notification whose first
 *     param is that id (`event`, `gap`) is passed whole, as one msgpack
 *     message, to on_body. An `end` notification finishes it (on_done 0);
 *     so does the connection closing (SL_ECLOSED). A stream answered with
 *     an error is finished after its on_headers like a plain call.
 * Notifications for unknown ids, and of other methods, are ignored.
 */
#ifndef SL_TOOLS_LOAD_RPC_H
#define SL_TOOLS_LOAD_RPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tools/load/load_opts.h"
#include "tools/load/load_target.h"

/* Largest message a connection accepts from the server: the largest event
 * sluice-load publishes plus the notification's own fields. Policy: the
 * connection fails (SL_EPROTO). */
#define SL_LOAD_RPC_MESSAGE_MAX ((size_t)SL_LOAD_EVENT_BYTES_MAX + 65536)
/* Params of a publish besides the data: array, session id (< 256 bytes),
 * type, bin header and the options map. */
#define SL_LOAD_RPC_PUBLISH_OVERHEAD 320
/* Room for the params of subscribe, create and health. */
#define SL_LOAD_RPC_PARAMS_SMALL 320
/* The type sluice-load publishes with. */
#define SL_LOAD_RPC_EVENT_TYPE "message"

typedef enum sl_load_rpc_note_kind {
    SL_LOAD_RPC_NOTE_OTHER = 0,
    SL_LOAD_RPC_NOTE_EVENT,
    SL_LOAD_RPC_NOTE_GAP,
    SL_LOAD_RPC_NOTE_END,
} sl_load_rpc_note_kind_t;

/* A decoded notification; pointers borrow the message. */
typedef struct sl_load_rpc_note {
    sl_load_rpc_note_kind_t kind;
    uint64_t sub_id;
    uint64_t seq;     /* EVENT */
    const char *type; /* EVENT */
    uint32_t type_len;
    const char *data; /* EVENT */
    uint32_t data_len;
    uint64_t gap_from; /* GAP */
    uint64_t gap_to;
} sl_load_rpc_note_t;

/* Writes session s's id ("PREFIX-s") into out. Returns its length, or
 * SL_ETOOBIG when it does not fit in cap (out then holds nothing usable). */
int sl_load_rpc_session_id(const sl_load_opts_t *o, uint32_t s, char *out, size_t cap);
/* Packs publish params [session, type, data(bin), {"durable": true}?]
 * into out, leaving the data_len bytes of data for the caller to write at
 * out + *data_off. Returns the params' length, or SL_ETOOBIG. */
int sl_load_rpc_encode_publish(char *out, size_t cap, const char *session, size_t session_len,
                               size_t data_len, bool durable, size_t *data_off);
/* Packs subscribe params [session, 1] (from_first) or [session, "live"]. */
int sl_load_rpc_encode_subscribe(char *out, size_t cap, const char *session, size_t session_len,
                                 bool from_first);
/* Packs [session] (create). */
int sl_load_rpc_encode_session(char *out, size_t cap, const char *session, size_t session_len);
/* Decodes a notification message (borrowed, one complete message).
 * Returns 0, or SL_EPROTO when it is not [2, method, params] with params
 * of the documented shape for event, gap or end. */
int sl_load_rpc_parse_note(const char *msg, size_t len, sl_load_rpc_note_t *out);
/* Reads the health map (msgpack bytes, borrowed) into out: rss_bytes,
 * open_fds, connections, streams at the top level, and the largest
 * reactors[].loop_lag_ms_max. Returns 0, or SL_EPROTO when it is not a
 * map holding any of them. */
int sl_load_rpc_health_parse(const char *msg, size_t len, sl_load_health_t *out);

#endif
