/*
 * msgpack-RPC framing: the byte-level decoder for what an RPC client sends
 * and the encoders for what sluice sends back (responses, error responses,
 * the per-event and gap notifications).
 *
 * Wire form (msgpack-RPC): request [0, msgid, method, params], response
 * [1, msgid, error, result], notification [2, method, params]. msgid is a
 * uint32, method a str or bin, params an array, error nil or
 * [code_string, message].
 *
 * The decoder is a bounded incremental parser. It never trusts a declared
 * length: every header is checked against the limits (message bytes, depth,
 * array and map counts, str/bin/ext bytes, total objects) before anything is
 * allocated for it, so arbitrary input costs at most
 *     sizeof(decoder) + max_message_bytes (input buffer)
 *     + sizeof(msgpack_object) * max_objects + one zone chunk (objects)
 * per decoder, and only while a message is being decoded (see rpc.c).
 *
 * The event notification is split for fan-out: the session actor encodes
 * the per-event tail (session, seq, type, data) once into a shared chunk;
 * each subscriber adds a tiny prefix (array headers, "event", its
 * subscription id) so prefix + body is one valid notification and the
 * payload is referenced, not copied.
 *
 * Threads: a decoder belongs to one connection actor (no locking); the
 * encoders are pure functions, callable from any thread.
 */
#ifndef SL_NET_RPC_H
#define SL_NET_RPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "runtime/base.h"
#include "runtime/buf.h"

/* Defaults and hard caps for sl_rpc_limits_t (validated by
 * sl_rpc_decoder_create; policy at every limit: the message is refused with
 * SL_ETOOBIG and the caller closes the connection with a logged reason). */
#define SL_RPC_MESSAGE_BYTES_DEFAULT (2u << 20) /* --max-rpc-message-bytes */
#define SL_RPC_MESSAGE_BYTES_MAX (64u << 20)
#define SL_RPC_DEPTH_DEFAULT 16
/* msgpack_unpack keeps its container stack in a fixed array of
 * MSGPACK_EMBED_STACK_SIZE (32) frames; deeper input fails inside it. */
#define SL_RPC_DEPTH_MAX 32
#define SL_RPC_ARRAY_DEFAULT 65536u
#define SL_RPC_MAP_DEFAULT 1024u
#define SL_RPC_OBJECTS_DEFAULT (1u << 18)
/* Input buffer: first allocation, and the size above which a drained buffer
 * is freed so idle connections hold no input memory. */
#define SL_RPC_BUF_START_BYTES 4096u
#define SL_RPC_BUF_IDLE_BYTES 16384u
/* msgpack zone chunk; chunks a large message added are freed before the
 * next message is decoded. */
#define SL_RPC_ZONE_CHUNK_BYTES 4096u
/* Prefix of an event notification: fixarray(3), 2, "event" (6 bytes),
 * fixarray(5), uint64 subscription id (at most 9 bytes). */
#define SL_RPC_EVENT_PREFIX_MAX 18
/* A gap notification: [2, "gap", [uint64, uint64, uint64]]. */
#define SL_RPC_GAP_MAX (1 + 1 + 4 + 1 + 3 * 9)

_Static_assert(SL_RPC_DEPTH_DEFAULT <= SL_RPC_DEPTH_MAX, "depth default within cap");
_Static_assert(SL_RPC_MESSAGE_BYTES_DEFAULT <= SL_RPC_MESSAGE_BYTES_MAX,
               "message bytes default within cap");

typedef struct sl_rpc_limits {
    uint32_t max_message_bytes; /* whole message, 1..SL_RPC_MESSAGE_BYTES_MAX */
    uint32_t max_depth;         /* nested arrays/maps, root = 1; 2..SL_RPC_DEPTH_MAX */
    uint32_t max_array;         /* elements in one array */
    uint32_t max_map;           /* pairs in one map */
    uint32_t max_str_bytes;     /* one str, bin or ext payload */
    uint32_t max_objects;       /* objects in one message (bounds the zone) */
} sl_rpc_limits_t;

/* Fills the defaults above (max_str_bytes = max_message_bytes). */
void sl_rpc_limits_default(sl_rpc_limits_t *lim);

typedef enum sl_rpc_type {
    SL_RPC_REQUEST = 0,
    SL_RPC_RESPONSE = 1,
    SL_RPC_NOTIFICATION = 2,
} sl_rpc_type_t;

/* One decoded message. Every pointer and msgpack_object in it borrows the
 * decoder's memory: valid until the next call of any sl_rpc_decoder_*
 * function on that decoder. */
typedef struct sl_rpc_msg {
    sl_rpc_type_t type;
    bool has_msgid;      /* request/response: msgid was read (also on SL_EINVAL) */
    uint32_t msgid;
    const char *method;  /* request/notification: not NUL-terminated */
    uint32_t method_len;
    bool method_is_bin;
    msgpack_object params; /* request/notification: always an ARRAY */
    msgpack_object error;  /* response: NIL or anything the peer sent */
    msgpack_object result; /* response */
} sl_rpc_msg_t;

typedef struct sl_rpc_decoder sl_rpc_decoder_t;

/* Creates a decoder with a copy of *lim. Returns 0 and *out (owned; free
 * with sl_rpc_decoder_destroy), SL_EINVAL when a limit is out of range, or
 * -ENOMEM. *out is untouched on failure. Any thread. */
int sl_rpc_decoder_create(const sl_rpc_limits_t *lim, sl_rpc_decoder_t **out);
void sl_rpc_decoder_destroy(sl_rpc_decoder_t *dec);

/* Appends up to n bytes (borrowed; copied) of input. The decoder buffers at
 * most max_message_bytes undecoded bytes, so it may take fewer than n:
 * returns the count taken (0..n), and the caller calls sl_rpc_decoder_next
 * until it returns 0 before feeding the rest. Taking 0 of n > 0 bytes only
 * happens while complete messages are waiting to be decoded. Returns
 * -ENOMEM (nothing taken) when the buffer cannot grow, or the sticky error
 * after sl_rpc_decoder_next failed with SL_ETOOBIG/SL_EPROTO. Invalidates the
 * last decoded message. */
int sl_rpc_decoder_feed(sl_rpc_decoder_t *dec, const uint8_t *p, size_t n);

/* Decodes the next message. Returns
 *   1           *out holds a message (see sl_rpc_msg_t for its lifetime);
 *   0           more bytes are needed;
 *   SL_EINVAL   a complete, well-framed message of the wrong shape (not an
 *               array, wrong length or kind, msgid not a uint32, method not
 *               str/bin, params not an array); it is consumed, out->type and
 *               out->has_msgid/msgid say what could be read, and the
 *               connection may continue (answer bad_request/bad_params);
 *   SL_ETOOBIG  a limit was exceeded (caller closes; see
 *               sl_rpc_decoder_reason);
 *   SL_EPROTO   the bytes are not msgpack (caller closes);
 *   -ENOMEM     the object zone could not grow (caller closes).
 * SL_ETOOBIG, SL_EPROTO and -ENOMEM are sticky: every later call returns
 * them. */
int sl_rpc_decoder_next(sl_rpc_decoder_t *dec, sl_rpc_msg_t *out);

/* A static string naming why the decoder failed ("message_bytes", "depth",
 * "array", "map", "str_bytes", "objects", "invalid_byte", "nomem"), or
 * NULL while it has not. For the caller's log line. */
const char *sl_rpc_decoder_reason(const sl_rpc_decoder_t *dec);
/* Undecoded bytes currently buffered (for tests and /health). */
size_t sl_rpc_decoder_pending(const sl_rpc_decoder_t *dec);
/* Capacity of the input buffer now (0 while idle: it is freed when it
 * drains and was larger than SL_RPC_BUF_IDLE_BYTES). */
size_t sl_rpc_decoder_buffer_bytes(const sl_rpc_decoder_t *dec);

/*
 * Encoders into a caller buffer (buf borrowed, cap bytes). Each returns the
 * number of bytes written, or SL_EFULL when cap is too small (buf contents
 * then unspecified). Pure; any thread.
 */

/* [1, msgid, nil, nil | true/false | uint] */
int sl_rpc_response_nil(uint8_t *buf, size_t cap, uint32_t msgid);
int sl_rpc_response_bool(uint8_t *buf, size_t cap, uint32_t msgid, bool v);
int sl_rpc_response_uint(uint8_t *buf, size_t cap, uint32_t msgid, uint64_t v);
/* [1, msgid, nil, [a, b]] (publish_batch). */
int sl_rpc_response_uint_pair(uint8_t *buf, size_t cap, uint32_t msgid, uint64_t a,
                              uint64_t b);
/* Bytes of the header [1, msgid, nil, before a pre-packed result. */
#define SL_RPC_RESPONSE_HEAD_MAX (1 + 1 + 5 + 1)
/* Writes the response header; the caller appends exactly one msgpack object
 * (the result, e.g. a map packed with msgpack_packer) after it. */
int sl_rpc_response_head(uint8_t *buf, size_t cap, uint32_t msgid);
/* [1, msgid, [code, message], nil]; code and message are NUL-terminated and
 * borrowed. */
int sl_rpc_error_encode(uint8_t *buf, size_t cap, uint32_t msgid, const char *code,
                        const char *message);

/* Exact size of the event body for these lengths. */
size_t sl_rpc_event_body_size(size_t session_len, uint64_t seq, size_t type_len,
                              size_t data_len, bool data_is_str);
/* The shared tail of ["event", [sub, session, seq, type, data]]: session
 * (str), seq (uint), type (str), data (str when data_is_str, else bin).
 * Inputs borrowed. */
int sl_rpc_event_body_encode(uint8_t *buf, size_t cap, const char *session, size_t session_len,
                             uint64_t seq, const char *type, size_t type_len, const void *data,
                             size_t data_len, bool data_is_str);
/* The per-subscriber head: [2, "event", [subscription_id, — followed by a
 * body it forms one notification. Writes at most SL_RPC_EVENT_PREFIX_MAX
 * bytes; returns the count. */
int sl_rpc_event_prefix_encode(uint8_t buf[SL_RPC_EVENT_PREFIX_MAX], uint64_t subscription_id);
/* [2, "gap", [subscription_id, from, to]]; at most SL_RPC_GAP_MAX bytes. */
int sl_rpc_gap_encode(uint8_t buf[SL_RPC_GAP_MAX], uint64_t subscription_id, uint64_t from,
                      uint64_t to);

/*
 * Output-queue forms: each appends one whole message or nothing. Return 0,
 * SL_EFULL (segment or byte bound; nothing appended) or -ENOMEM (nothing
 * appended). Same thread as the queue.
 */

/* Copies bytes (borrowed) as one message: small ones into the queue's
 * scratch chunk, large ones into a chunk of their own. */
int sl_rpc_outq_put(sl_outq_t *q, const void *bytes, size_t len);
/* Response header + pre-packed result (borrowed, copied) as one message. */
int sl_rpc_outq_response_packed(sl_outq_t *q, uint32_t msgid, const void *result,
                                size_t result_len);
/* Event prefix (copied) + a referenced slice [off, off+len) of body, the
 * chunk holding the encoded body (retained by the queue; the caller keeps
 * its reference). */
int sl_rpc_outq_event(sl_outq_t *q, uint64_t subscription_id, sl_chunk_t *body, uint32_t off,
                      uint32_t len);

/* The bytes of a str or bin object (borrowed from o): true with *p and
 * *n set, false for any other type. */
bool sl_rpc_obj_bytes(const msgpack_object *o, const char **p, size_t *n);
/* True when o is a str or bin equal to s. */
bool sl_rpc_obj_is(const msgpack_object *o, const char *s);

#endif
