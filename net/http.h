/*
 * Server side of HTTP, protocol-neutral: one sl_http_conn_t per accepted
 * connection speaks HTTP/1.1 (http-parser) or HTTP/2 (nghttp2), chosen by
 * sniffing the first bytes (or forced, e.g. by TLS ALPN later).
 *
 * The module parses and frames bytes but owns no socket. The connection
 * actor feeds it received bytes (sl_http_conn_feed), gets complete requests
 * through a callback, answers with complete responses (sl_http_respond) or
 * streams (sl_http_stream_*: the SSE path, where payload chunks are
 * referenced, never copied), and moves the framed output into its own
 * sl_outq_t with sl_http_conn_flush, which stops when that queue is full.
 *
 * Bounds (each with its policy): header section bytes and count (431),
 * request body bytes (413), HTTP/2 request bodies buffered per connection
 * (REFUSED_STREAM), concurrent streams (nghttp2 refuses the excess),
 * pending output per stream and per connection (writes return SL_EFULL and
 * sl_http_stream_room reports 0: the caller stops pulling events), HTTP/1.1
 * pipelined input held while a response is in progress (want_read turns
 * false; beyond the cap the connection is closed), and every allocation of
 * the connection (nghttp2 included) through a counted, capped allocator.
 *
 * Threads: a connection is used by one thread at a time (its actor). The
 * callbacks run on that thread, inside sl_http_conn_feed (on_stream_close
 * also inside sl_http_conn_flush); they may call the response functions
 * but must not destroy the connection or feed it.
 *
 * The caller's loop: feed received bytes; after feed, after responding or
 * writing, and after each send completion, call flush, and feed(NULL, 0)
 * when sl_http_conn_has_input; send what the outq holds; recv only while
 * sl_http_conn_want_read; close once sl_http_conn_want_close and the outq
 * drained, or after an error return (flush first).
 *
 * TLS (HTTP/2 by ALPN) can wrap this later without changing it: decrypt
 * into feed, encrypt what flush put into the outq, and force the protocol
 * with cfg.proto.
 */
#ifndef SL_NET_HTTP_H
#define SL_NET_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/base.h"
#include "runtime/buf.h"

typedef struct sl_http_conn sl_http_conn_t;
struct sl_cors; /* net/cors.h */

/* A borrowed byte string; ptr is NULL when the item is absent. Strings the
 * module hands out are also NUL-terminated (ptr[len] == 0). */
typedef struct sl_http_str {
    const char *ptr;
    size_t len;
} sl_http_str_t;

/* One header field. In requests names are lower case. In responses the
 * caller's names must be lower-case tokens and values must not contain CR,
 * LF or NUL (SL_EINVAL otherwise). */
typedef struct sl_http_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
} sl_http_header_t;

/* Initialiser for a header from two string literals. */
#define SL_HTTP_HEADER_LIT(n, v) { (n), sizeof(n) - 1, (v), sizeof(v) - 1 }

typedef enum sl_http_method {
    SL_HTTP_METHOD_OTHER = 0, /* see method_raw */
    SL_HTTP_METHOD_GET,
    SL_HTTP_METHOD_HEAD,
    SL_HTTP_METHOD_POST,
    SL_HTTP_METHOD_PUT,
    SL_HTTP_METHOD_DELETE,
    SL_HTTP_METHOD_OPTIONS,
    SL_HTTP_METHOD_PATCH,
} sl_http_method_t;

typedef enum sl_http_proto {
    SL_HTTP_PROTO_AUTO = 0, /* sniff the first bytes (cleartext port) */
    SL_HTTP_PROTO_HTTP1,
    SL_HTTP_PROTO_H2,
} sl_http_proto_t;

/* A complete request, body included. Everything it points to is borrowed
 * for the duration of the on_request callback only: copy what you keep. */
typedef struct sl_http_req {
    uint32_t stream_id;       /* HTTP/2 stream id; HTTP/1.x: 1, 2, 3, ... */
    uint8_t version;          /* 10, 11 or 20 */
    sl_http_method_t method;
    sl_http_str_t method_raw; /* e.g. "GET" */
    sl_http_str_t target;     /* raw request target, e.g. "/a%20b?x=1" */
    sl_http_str_t path;       /* raw path (not percent-decoded), before '?' */
    sl_http_str_t query;      /* raw query after '?' (ptr NULL if none) */
    /* Headers the server needs (first occurrence; ptr NULL if absent). */
    sl_http_str_t host;       /* Host, or :authority for HTTP/2 */
    sl_http_str_t content_type;
    sl_http_str_t accept;
    sl_http_str_t last_event_id;
    sl_http_str_t event_type; /* Sluice-Event-Type */
    sl_http_str_t durable;    /* Sluice-Durable */
    sl_http_str_t origin;     /* Origin */
    /* "https" or "http": HTTP/2's :scheme, else the transport's (cfg.tls). */
    sl_http_str_t scheme;
    int64_t content_length;   /* -1 when absent */
    /* All regular headers in arrival order (pseudo-headers excluded). */
    const sl_http_header_t *headers;
    uint32_t header_count;
    const uint8_t *body;      /* body_len bytes (NULL when empty) */
    size_t body_len;
} sl_http_req_t;

typedef struct sl_http_callbacks {
    /* A complete request (headers and body) arrived. Respond now or later
     * with sl_http_respond / sl_http_stream_begin on req->stream_id. For
     * HTTP/1.x the next pipelined request is not parsed before this one's
     * response has ended. */
    void (*on_request)(void *ctx, sl_http_conn_t *conn, const sl_http_req_t *req);
    /* A stream that was passed to on_request closed before the caller ended
     * its response (HTTP/2 RST_STREAM from the peer, GOAWAY, or a stream
     * error). error_code is the HTTP/2 error code. The stream id is dead
     * afterwards (response calls on it return SL_ENOTFOUND). Not called for
     * HTTP/1.x (the socket closing is the signal) nor by destroy. May be
     * NULL. */
    void (*on_stream_close)(void *ctx, sl_http_conn_t *conn, uint32_t stream_id,
                            uint32_t error_code);
} sl_http_callbacks_t;

/* Defaults (see sl_http_config_default for the reasoning). */
#define SL_HTTP_MAX_HEADER_BYTES_DEFAULT (16u * 1024)
#define SL_HTTP_MAX_HEADER_COUNT_DEFAULT 100u
#define SL_HTTP_MAX_BODY_BYTES_DEFAULT ((uint64_t)(1u << 20) + 64 * 1024)
#define SL_HTTP_MAX_CONCURRENT_STREAMS_DEFAULT 256u
#define SL_HTTP_STREAM_WINDOW_DEFAULT (1u << 20)
#define SL_HTTP_CONN_WINDOW_DEFAULT (16u << 20)
#define SL_HTTP_CONN_BODY_BYTES_DEFAULT ((uint64_t)16 << 20)
#define SL_HTTP_STREAM_BUFFER_BYTES_DEFAULT (256u * 1024)
#define SL_HTTP_STREAM_BUFFER_SEGS_DEFAULT 128u
#define SL_HTTP_CONN_BUFFER_BYTES_DEFAULT ((uint64_t)8 << 20)
#define SL_HTTP_PIPELINE_BYTES_DEFAULT (64u * 1024)
#define SL_HTTP_MEM_MAX_BYTES_DEFAULT ((uint64_t)32 << 20)
/* HTTP/2: bytes a stream may buffer beyond the peer's current window, so
 * a frame is ready the moment a WINDOW_UPDATE arrives (one max frame). */
#define SL_HTTP_H2_WINDOW_SLACK_BYTES 16384u
/* The caller's output queue must hold at least one maximal HTTP/2 DATA
 * frame with room to spare, and enough segments for a frame's slices. */
#define SL_HTTP_OUTQ_MIN_BYTES (64u * 1024)
#define SL_HTTP_OUTQ_MIN_SEGS 64u

typedef struct sl_http_config {
    sl_http_proto_t proto;
    uint32_t max_header_bytes;   /* names + values + target; beyond: 431 */
    uint32_t max_header_count;   /* beyond: 431 */
    uint64_t max_body_bytes;     /* per request; beyond: 413 */
    /* HTTP/2 receive side. */
    uint32_t max_concurrent_streams;
    uint32_t stream_window_bytes; /* SETTINGS_INITIAL_WINDOW_SIZE */
    uint32_t conn_window_bytes;   /* connection receive window */
    uint64_t conn_body_bytes_max; /* request bodies buffered across streams */
    /* Output buffered inside the connection, beyond the caller's outq. */
    uint32_t stream_buffer_bytes; /* per stream (HTTP/1.x: per connection) */
    uint32_t stream_buffer_segs;  /* slices per stream */
    uint64_t conn_buffer_bytes;   /* sum over HTTP/2 streams */
    uint32_t pipeline_bytes_max;  /* HTTP/1.x input held during a response */
    uint64_t mem_max_bytes;       /* counted allocator cap (nghttp2 + ours) */
    uint32_t mem_fail_nth;        /* failure injection: the Nth allocation
                                   * fails (0: off; tests only) */
    /* Browser origins (net/cors.h), borrowed: must outlive the connection;
     * NULL: no cross-origin access. Every response carries the security
     * headers, and the CORS ones when its request's Origin is granted. */
    const struct sl_cors *cors;
    bool tls;                     /* bytes arrive through TLS: scheme https */
} sl_http_config_t;

/* Fills cfg with the defaults. Any thread. */
void sl_http_config_default(sl_http_config_t *cfg);

/* What the first bytes of a connection are. */
typedef enum sl_http_sniff {
    SL_HTTP_SNIFF_NEED_MORE = 0,
    SL_HTTP_SNIFF_H2,      /* starts with the HTTP/2 preface request line */
    SL_HTTP_SNIFF_HTTP1,   /* starts with a method token and a space */
    SL_HTTP_SNIFF_TLS,     /* a TLS handshake record (0x16 0x03) */
    SL_HTTP_SNIFF_GARBAGE,
} sl_http_sniff_t;

/* Classifies the first n bytes of a connection. Borrows p. Pure. */
sl_http_sniff_t sl_http_sniff(const uint8_t *p, size_t n);

/* Creates a connection. Borrows cfg (copied), cbs (copied) and outq (must
 * outlive the connection; bytes_max >= SL_HTTP_OUTQ_MIN_BYTES and
 * SL_HTTP_OUTQ_MIN_SEGS segments or more). For SL_HTTP_PROTO_H2 the server
 * SETTINGS are queued at once (flush to send them). Returns 0 and *out, or
 * SL_EINVAL (bad config), -ENOMEM / SL_ENOMEM; *out is untouched on
 * failure. */
int sl_http_conn_create(sl_http_conn_t **out, const sl_http_config_t *cfg,
                        const sl_http_callbacks_t *cbs, void *ctx, sl_outq_t *outq);
/* Frees the connection and everything it holds (pending output, partial
 * requests). Calls no callback. The outq keeps what was already flushed. */
void sl_http_conn_destroy(sl_http_conn_t *conn);

/* Consumes len received bytes (borrowed). May call on_request. Returns 0;
 * SL_EPROTO when the peer broke the protocol: the answer (HTTP/1.x 400, 413,
 * 431 or 505 with a JSON body and connection: close; HTTP/2 GOAWAY for a
 * bad preface; a 400 for bytes that are no HTTP at all; nothing for a TLS
 * handshake) is queued — flush it, then close. HTTP/2 errors found inside
 * frames are answered by nghttp2 itself: stream errors with RST_STREAM
 * (feed returns 0), connection errors with GOAWAY — feed returns 0 and
 * want_close turns true once flush has produced the GOAWAY;
 * SL_ETOOBIG when pipelined input exceeded pipeline_bytes_max (stop reading
 * when want_read is false to avoid it); SL_ENOMEM / -ENOMEM when the
 * allocator refused; SL_ECLOSED after an earlier error. On any error the
 * connection accepts no more input.
 * Call with len 0 (data may be NULL) to process HTTP/1.x input held back
 * while a response was in progress: after a response ended and after a
 * flush, whenever sl_http_conn_has_input() is true. */
int sl_http_conn_feed(sl_http_conn_t *conn, const uint8_t *data, size_t len);

/* Moves pending protocol output into the outq. Returns 0 when nothing more
 * is pending, SL_EFULL when the outq filled up (call again after the outq
 * drained), SL_ENOMEM / -ENOMEM, or SL_EPROTO on a fatal protocol state
 * (close). */
int sl_http_conn_flush(sl_http_conn_t *conn);

/* Whether more input is wanted now. False while HTTP/1.x input is held
 * back behind a response in progress, after an error, or when the
 * protocol is done reading (GOAWAY, Connection: close). */
bool sl_http_conn_want_read(const sl_http_conn_t *conn);
/* True when HTTP/1.x input is held back and can be processed now with
 * sl_http_conn_feed(conn, NULL, 0). */
bool sl_http_conn_has_input(const sl_http_conn_t *conn);
/* True once the connection should be closed after the outq drains: after
 * an error, GOAWAY (with every stream finished) or Connection: close (with
 * the last response complete), and all output has been flushed. */
bool sl_http_conn_want_close(const sl_http_conn_t *conn);
/* Starts a graceful close: HTTP/2 GOAWAY(NO_ERROR) naming the last stream
 * processed (open streams continue until the caller ends them); HTTP/1.x
 * closes after the response in progress (connection: close if its head is
 * not yet queued). Idempotent. */
void sl_http_conn_shutdown(sl_http_conn_t *conn);

/* The protocol in use (SL_HTTP_PROTO_AUTO until sniffed). */
sl_http_proto_t sl_http_conn_proto(const sl_http_conn_t *conn);
/* Bytes currently allocated for this connection through its counted
 * allocator (nghttp2 state, headers, bodies). */
uint64_t sl_http_conn_mem_bytes(const sl_http_conn_t *conn);
/* The same summed over all live connections. Any thread. */
uint64_t sl_http_mem_bytes_live(void);

/* ---- liveness and abuse (net/http_liveness.c, net/http2.c) ----------- */

/* Why a connection was ended for abusing the protocol (HTTP/2 only): it
 * got GOAWAY(ENHANCE_YOUR_CALM) and feed returned SL_EPROTO. */
typedef enum sl_http_abuse {
    SL_HTTP_ABUSE_NONE = 0,
    SL_HTTP_ABUSE_RESET_FLOOD,        /* > SL_H2_RST_PER_S_MAX RST_STREAM/s (rapid reset) */
    SL_HTTP_ABUSE_CONTROL_FLOOD,      /* > SL_H2_CONTROL_PER_S_MAX PING/SETTINGS/PRIORITY/s */
    SL_HTTP_ABUSE_CONTINUATION_FLOOD, /* header block beyond SL_H2_CONTINUATIONS_MAX frames
                                       * or twice max_header_bytes */
    SL_HTTP_ABUSE_ACK_FLOOD,          /* nghttp2 refused: too many unsent ACKs, etc. */
} sl_http_abuse_t;

/* The abuse that ended the connection, or SL_HTTP_ABUSE_NONE. */
sl_http_abuse_t sl_http_conn_abuse(const sl_http_conn_t *conn);
/* Short name of an abuse kind ("rapid_reset", ...); never NULL. Pure. */
const char *sl_http_abuse_name(sl_http_abuse_t a);
/* True while a request's header section has begun to arrive and is not
 * complete (HTTP/1.x head being parsed, HTTP/2 HEADERS awaiting its
 * CONTINUATIONs, or first bytes not yet enough to pick a protocol): what a
 * header timeout measures (slowloris). */
bool sl_http_conn_head_pending(const sl_http_conn_t *conn);
/* True while a request's body is being received (HTTP/1.x after its head,
 * an HTTP/2 stream whose header block ended without END_STREAM): what the
 * body timeout measures. */
bool sl_http_conn_body_pending(const sl_http_conn_t *conn);
/* Gives up on a request that stalled: on HTTP/1.x with no response in
 * progress, queues a 408 into the caller's outq and refuses further input.
 * Returns 0; SL_ENOTFOUND where a 408 cannot be the next thing the peer
 * reads (HTTP/2, a response in progress: the caller just closes);
 * SL_EFULL or -ENOMEM from the outq (nothing queued). */
int sl_http_conn_timeout(sl_http_conn_t *conn);
/* Queues an HTTP/2 PING (flush to send it). Returns 0; SL_ENOTFOUND when
 * the connection is not HTTP/2; SL_ECLOSED after an error; SL_ENOMEM. */
int sl_http_conn_ping(sl_http_conn_t *conn);
/* PING ACKs received so far (HTTP/2; 0 otherwise). */
uint64_t sl_http_conn_pings_acked(const sl_http_conn_t *conn);
/* Response bytes buffered inside the connection, not yet moved into the
 * caller's outq (HTTP/2 stream queues, HTTP/1.x framing). */
uint64_t sl_http_conn_pending_bytes(const sl_http_conn_t *conn);

/* Sends a complete response: status, the caller's headers, content-length
 * and the body (copied; borrowed). For HEAD and for 1xx/204/304 no body is
 * sent. Never fails on the output buffer bounds (a complete response is
 * bounded by its producer). Returns 0; SL_ENOTFOUND when the stream is not
 * awaiting a response (unknown, reset by the peer, already answered);
 * SL_EINVAL for bad header bytes or status; SL_ENOMEM / -ENOMEM.
 * Fail-safe: on any failure but SL_ENOTFOUND the request is still ended --
 * a bare 503 (500 for SL_EINVAL) with no header or body, else a stream
 * reset (HTTP/2 RST_STREAM; HTTP/1.x closes the connection after what was
 * queued), else the connection closes (want_close) -- so a caller never
 * needs to act on the code; it is returned for counting. The same holds
 * for sl_http_respond_error and sl_http_stream_begin. */
int sl_http_respond(sl_http_conn_t *conn, uint32_t stream_id, int status,
                    const sl_http_header_t *hdrs, size_t n, const void *body, size_t len);
/* sl_http_respond with content-type application/json and the body
 * {"error":code,"message":message} (see sl_http_error_json); hdrs may add
 * e.g. Allow or Retry-After. */
int sl_http_respond_error(sl_http_conn_t *conn, uint32_t stream_id, int status,
                          const char *code, const char *message,
                          const sl_http_header_t *hdrs, size_t n);

/* Starts a streaming response (no content-length: HTTP/1.1 chunked,
 * HTTP/1.0 body until close, HTTP/2 DATA frames). Errors and the
 * fail-safe answer as respond: on failure the stream is over. */
int sl_http_stream_begin(sl_http_conn_t *conn, uint32_t stream_id, int status,
                         const sl_http_header_t *hdrs, size_t n);
/* Queues len bytes of chunk at off, referenced (retained until sent), not
 * copied. Accepted when len fits in sl_http_stream_room, or always when the
 * stream has nothing pending (so one large event can pass a small window).
 * Returns 0; SL_EFULL (nothing queued: wait for room); SL_ENOTFOUND when
 * the stream is not streaming (unknown, reset, ended, or begin not called);
 * -ENOMEM. */
int sl_http_stream_write_ref(sl_http_conn_t *conn, uint32_t stream_id, sl_chunk_t *chunk,
                             uint32_t off, uint32_t len);
/* The same with len bytes copied from data (borrowed). */
int sl_http_stream_write_copy(sl_http_conn_t *conn, uint32_t stream_id, const void *data,
                              size_t len);
/* Ends the stream cleanly once its pending bytes are sent (HTTP/2
 * END_STREAM, HTTP/1.1 last chunk; never a reset). Returns 0 or
 * SL_ENOTFOUND. */
int sl_http_stream_end(sl_http_conn_t *conn, uint32_t stream_id);
/* Abandons a stream the caller cannot finish (e.g. an internal failure):
 * HTTP/2 RST_STREAM(INTERNAL_ERROR) for that stream only; HTTP/1.x has no
 * such thing, so the connection closes once what is queued is flushed
 * (want_close). Not for normal ends (use sl_http_stream_end). Returns 0 or
 * SL_ENOTFOUND (not a stream passed to on_request and still open). */
int sl_http_stream_reset(sl_http_conn_t *conn, uint32_t stream_id);
/* Payload bytes the stream accepts now: the smallest of its buffer room,
 * the connection's buffer room and, for HTTP/2, the peer's flow-control
 * window plus SL_HTTP_H2_WINDOW_SLACK_BYTES, minus what is pending. 0 for
 * a stream that is not streaming. Grows after sl_http_conn_feed
 * (WINDOW_UPDATE) and sl_http_conn_flush; re-check then. */
size_t sl_http_stream_room(const sl_http_conn_t *conn, uint32_t stream_id);

/* Looks up a request header by lower-case name (first occurrence). Returns
 * a pointer into req or NULL. */
const sl_http_header_t *sl_http_req_header(const sl_http_req_t *req, const char *name);
/* Finds parameter name in a raw query string ("a=1&b=2"). Returns true and
 * the raw (still percent-encoded) value, possibly empty, or false. Callers
 * that interpret values use sl_http_query_get instead. */
bool sl_http_query_param(sl_http_str_t query, const char *name, sl_http_str_t *value);
/* Finds parameter name in a raw query string (names compare after
 * decoding; the first match wins) and percent-decodes its value, '+' being
 * a space (API.md "Query values"), into out (cap bytes, NUL-terminated).
 * Returns the decoded length (0 for "a=" or a bare "a"), SL_ENOTFOUND when
 * absent, SL_EINVAL for a malformed escape or a forbidden byte (see
 * sl_http_pct_decode), SL_ETOOBIG when the value does not fit. out is
 * unspecified on failure. Pure. */
int sl_http_query_get(sl_http_str_t query, const char *name, char *out, size_t cap);
/* True when every name and value of the query percent-decodes (no
 * malformed escape, no forbidden byte); true for an absent query. Pure. */
bool sl_http_query_valid(sl_http_str_t query);

/* Writes {"error":"<code>","message":"<message>"} into buf (cap bytes,
 * NUL-terminated), escaping both strings for JSON. Returns the length
 * without the NUL, or SL_ETOOBIG (buf holds an empty string). */
int sl_http_error_json(char *buf, size_t cap, const char *code, const char *message);

/* sl_http_pct_decode flag: '+' decodes to a space (query strings). */
#define SL_HTTP_PCT_PLUS_SPACE 1u
/* Percent-decodes in[0..len) once into out (cap bytes, NUL-terminated).
 * Rejects a '%' not followed by two hex digits and any decoded byte below
 * 0x20 or equal to 0x7f (NUL, CR, LF: nothing that could split a header or
 * a path). Returns the decoded length, SL_EINVAL (malformed or forbidden
 * byte), or SL_ETOOBIG (out too small). Pure. */
int sl_http_pct_decode(const char *in, size_t len, char *out, size_t cap, unsigned flags);

/* Reason phrase for a status code ("Unknown" if none). */
const char *sl_http_status_reason(int status);

#endif
