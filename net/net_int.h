/*
 * Internals of the http module, shared by net/http.c (common parts),
 * net/http1.c (HTTP/1.x on http-parser) and net/http2.c (HTTP/2 on
 * nghttp2). Nothing outside net/ includes this header.
 */
#ifndef SL_NET_NET_INT_H
#define SL_NET_NET_INT_H

#include <http_parser.h>
#include <nghttp2/nghttp2.h>

#include "net/cors.h"
#include "net/http.h"

/* Counted allocator state of one connection. */
typedef struct sl_http__mem {
    uint64_t bytes;     /* live bytes (payload, without the size prefix) */
    uint64_t bytes_max; /* cap: an allocation beyond it fails */
    uint32_t allocs;    /* allocations attempted (failure injection) */
    uint32_t fail_nth;  /* fail the allocation with this ordinal (0: off) */
    bool refused;       /* an allocation failed since the flag was cleared */
} sl_http__mem_t;

/* One header in the store, as offsets (the buffer may move while it grows). */
typedef struct sl_http__hent {
    uint32_t name_off, name_len, value_off, value_len;
} sl_http__hent_t;

/* Span in the store's buffer; valid when set. */
typedef struct sl_http__span {
    uint32_t off, len;
    bool set;
} sl_http__span_t;

/* A request's header section being accumulated: every string is stored
 * NUL-terminated, names lower-cased. Bounded by max_header_bytes (counted:
 * names + values + method + target) and max_header_count. */
typedef struct sl_http__hdrs {
    char *buf;
    uint32_t len, cap;
    sl_http__hent_t *ent;
    uint32_t count, ent_cap;
    uint32_t counted;
    sl_http__span_t method, target, authority, scheme;
    sl_http_header_t *arr; /* built for delivery */
} sl_http__hdrs_t;

enum { H1_IDLE = 0, H1_WAITING, H1_STREAMING };
enum { H1_CB_NONE = 0, H1_CB_URL, H1_CB_FIELD, H1_CB_VALUE };

typedef struct sl_http__h1 {
    http_parser parser;
    sl_http__hdrs_t hdrs;
    uint8_t cb_state;       /* which header piece the parser is inside */
    bool msg_done;          /* on_message_complete ran; parser paused */
    bool req_keep_alive;    /* of the request just parsed */
    uint8_t req_version;    /* 10 or 11 */
    int64_t req_content_length;
    int err_status;         /* answer for a callback-detected error; -1:
                             * the allocator refused */
    uint8_t *body;
    size_t body_len, body_cap;
    uint8_t *backlog;       /* input held while a response is in progress */
    size_t backlog_len, backlog_cap;
    uint32_t next_id;
    /* The response in progress. */
    uint8_t cur;            /* H1_* */
    uint32_t cur_id;
    uint8_t cur_version;    /* 10 or 11 */
    bool cur_head;          /* HEAD: no body bytes */
    bool cur_chunked;
    bool cur_nobody;        /* HEAD, 204, 304: writes are dropped */
    bool close_after;       /* close when the response in progress ended */
    uint32_t cur_cors;      /* its request's origin grant (net/cors.h) */
    bool in_head;           /* a request's header section is being parsed */
    bool in_body;           /* a request's body is being received */
    sl_outq_t out;          /* framed output not yet in the caller's outq */
} sl_http__h1_t;

typedef struct sl_http__h2_stream sl_http__h2_stream_t;

typedef struct sl_http__h2 {
    nghttp2_session *session;
    sl_http__h2_stream_t *streams; /* every live stream (destroy frees) */
    uint64_t body_bytes;           /* request bodies buffered, all streams */
    uint64_t pending_bytes;        /* response payload buffered, all streams */
    bool blocked;                  /* a send callback found the outq full */
    bool fatal;                    /* nghttp2 failed: no more output */
    /* Liveness and abuse accounting (http2.c; bounds SL_H2_* in
     * runtime/limits.h). Windows are one second long. */
    uint32_t heads_pending;        /* request header blocks begun, not complete */
    uint64_t pings_acked;          /* PING ACKs received */
    uint64_t window_start_ns;
    uint32_t rst_in_window;        /* RST_STREAM frames received in the window */
    uint32_t control_in_window;    /* PING / SETTINGS / PRIORITY received in it */
    uint32_t block_frames;         /* CONTINUATIONs of the header block in progress */
    uint64_t block_bytes;          /* bytes of that header block so far */
    uint8_t abuse;                 /* sl_http_abuse_t; set once */
} sl_http__h2_t;

struct sl_http_conn {
    sl_http_config_t cfg;
    sl_http_callbacks_t cbs;
    void *ctx;
    sl_outq_t *outq;            /* borrowed, the caller's */
    sl_http_proto_t proto;
    bool dead;                  /* input refused after an error */
    bool shutdown;
    uint8_t sniff[24];          /* first bytes while the protocol is unknown */
    uint32_t sniff_len;
    sl_http__mem_t mem;
    sl_http__h1_t h1;
    sl_http__h2_t h2;
};

/* Counted allocator (http.c). Return NULL when the cap or the failure
 * injection refuses (and set mem.refused). */
void *sl_http__alloc(sl_http_conn_t *c, size_t size);
void *sl_http__calloc(sl_http_conn_t *c, size_t n, size_t size);
void *sl_http__realloc(sl_http_conn_t *c, void *p, size_t size);
void sl_http__free(sl_http_conn_t *c, void *p);
/* SL_ENOMEM when the counted allocator refused, else -ENOMEM. */
int sl_http__nomem(sl_http_conn_t *c);

/* Header store (http.c). Appends return 0, SL_ETOOBIG (a limit: answer
 * 431) or SL_ENOMEM. */
void sl_http__hdrs_reset(sl_http_conn_t *c, sl_http__hdrs_t *h);
void sl_http__hdrs_free(sl_http_conn_t *c, sl_http__hdrs_t *h);
/* Appends p[0..n) plus a NUL and records it in span (not counted). */
int sl_http__hdrs_put_span(sl_http_conn_t *c, sl_http__hdrs_t *h, sl_http__span_t *span,
                           const char *p, size_t n, bool counted);
int sl_http__hdrs_put(sl_http_conn_t *c, sl_http__hdrs_t *h, const char *p, size_t n,
                      bool lower, bool counted);
int sl_http__hdrs_begin_entry(sl_http_conn_t *c, sl_http__hdrs_t *h);
int sl_http__hdrs_add(sl_http_conn_t *c, sl_http__hdrs_t *h, const char *name, size_t nlen,
                      const char *value, size_t vlen);
/* Fills req from the store (strings point into it): path and query from
 * the target, the known headers, the header array. Returns 0, SL_EINVAL
 * (unusable target: answer 400) or SL_ENOMEM. */
int sl_http__req_build(sl_http_conn_t *c, sl_http__hdrs_t *h, sl_http_req_t *req);
sl_http_method_t sl_http__method_of(const char *s, size_t n);

/* Response helpers (http.c). */
/* Headers every response carries (net/cors.h), for a request whose Origin
 * got grant; at most SL_HTTP__STD_HEADERS_MAX into out. Returns the count. */
#define SL_HTTP__STD_HEADERS_MAX SL_CORS_HEADERS_MAX
size_t sl_http__std_headers(const sl_http_conn_t *c, uint32_t grant, sl_http_header_t *out);
/* The grant of a request about to be dispatched. */
uint32_t sl_http__grant(const sl_http_conn_t *c, const sl_http_req_t *req);
int sl_http__check_headers(const sl_http_header_t *hdrs, size_t n);
bool sl_http__status_has_body(int status);
/* Appends to q ignoring its byte bound (complete responses and framing
 * that must stay whole); the segment bound still applies. */
int sl_http__put(sl_outq_t *q, const void *data, size_t len);
int sl_http__put_ref(sl_outq_t *q, sl_chunk_t *chunk, uint32_t off, uint32_t len);

/* HTTP/1.x (http1.c). */
int sl_http__h1_init(sl_http_conn_t *c);
void sl_http__h1_deinit(sl_http_conn_t *c);
int sl_http__h1_feed(sl_http_conn_t *c, const uint8_t *data, size_t len);
int sl_http__h1_flush(sl_http_conn_t *c);
/* Queues an error answer (JSON body, connection: close) outside any
 * request, e.g. for bytes that are not HTTP at all. */
int sl_http__h1_fail(sl_http_conn_t *c, int status);
bool sl_http__h1_want_close(const sl_http_conn_t *c);
bool sl_http__h1_want_read(const sl_http_conn_t *c);
bool sl_http__h1_has_input(const sl_http_conn_t *c);
void sl_http__h1_shutdown(sl_http_conn_t *c);
int sl_http__h1_respond(sl_http_conn_t *c, uint32_t id, int status, const sl_http_header_t *hdrs,
                        size_t n, const void *body, size_t len);
int sl_http__h1_begin(sl_http_conn_t *c, uint32_t id, int status, const sl_http_header_t *hdrs,
                      size_t n);
int sl_http__h1_write(sl_http_conn_t *c, uint32_t id, sl_chunk_t *chunk, const void *data,
                      uint32_t off, size_t len);
int sl_http__h1_end(sl_http_conn_t *c, uint32_t id);
int sl_http__h1_reset(sl_http_conn_t *c, uint32_t id);
size_t sl_http__h1_room(const sl_http_conn_t *c, uint32_t id);

/* HTTP/2 (http2.c). */
int sl_http__h2_init(sl_http_conn_t *c);
void sl_http__h2_deinit(sl_http_conn_t *c);
int sl_http__h2_feed(sl_http_conn_t *c, const uint8_t *data, size_t len);
int sl_http__h2_flush(sl_http_conn_t *c);
bool sl_http__h2_want_close(const sl_http_conn_t *c);
bool sl_http__h2_want_read(const sl_http_conn_t *c);
void sl_http__h2_shutdown(sl_http_conn_t *c);
int sl_http__h2_respond(sl_http_conn_t *c, uint32_t id, int status, const sl_http_header_t *hdrs,
                        size_t n, const void *body, size_t len);
int sl_http__h2_begin(sl_http_conn_t *c, uint32_t id, int status, const sl_http_header_t *hdrs,
                      size_t n);
int sl_http__h2_write(sl_http_conn_t *c, uint32_t id, sl_chunk_t *chunk, const void *data,
                      uint32_t off, size_t len);
int sl_http__h2_end(sl_http_conn_t *c, uint32_t id);
int sl_http__h2_reset(sl_http_conn_t *c, uint32_t id);
size_t sl_http__h2_room(const sl_http_conn_t *c, uint32_t id);
/* Liveness (http2.c), dispatched from http_liveness.c. */
int sl_http__h2_ping(sl_http_conn_t *c);
/* True while a request stream's header block is complete and its body has
 * not ended (the body timeout measures it). */
bool sl_http__h2_body_pending(const sl_http_conn_t *c);

#endif
