/*
 * The connection actor's record, shared by the conn_*.c files of this
 * folder (conn.c is the I/O engine; the rest are faces and backstops). No
 * other folder includes this.
 *
 * The seam: a connection speaks one wire protocol, chosen at accept by
 * the listener it came from (--listen: HTTP, --rpc-listen: msgpack-RPC)
 * and fixed for its life; TLS is a transport below either (conn_tls.c).
 * The I/O engine (conn.c), the stream and catch-up machinery
 * (conn_sse.c), the publish path (conn_api.c) and the backstops
 * (conn_guard.c) reach the protocol only through c->proto, a
 * sl_conn_proto_ops_t, the way h2o keeps protocols apart from handlers.
 * A new wire protocol implements every hook of that table (none may be
 * NULL), keeps its state behind a pointer of its own in sl_conn_t, and is
 * picked in sl_conn_accept. A new face on an existing protocol (another
 * set of HTTP routes) needs no table: it routes in conn_http.c and uses
 * the shared helpers below (sl_conn__subscribe_ex, sl_conn__send_publish).
 */
#ifndef SL_ACTORS_CONN_INT_H
#define SL_ACTORS_CONN_INT_H

#include <netinet/in.h>
#include <sys/uio.h>

#include "actors/auth.h"
#include "actors/conn.h"
#include "actors/conn_ds.h"
#include "actors/registry.h"
#include "actors/session.h"
#include "actors/watchdog.h"
#include "runtime/buf.h"
#include "runtime/limits.h"

typedef enum conn_state {
    SL_CONN__OPEN = 0,  /* serving */
    SL_CONN__DRAINING,  /* finishing in-flight work, then close */
    SL_CONN__CLOSING,   /* cancels submitted; waiting for op completions */
    SL_CONN__CLOSED,    /* close submitted or done */
} sl_conn__state_t;

struct sl_http_conn;
struct sl_http_req;
struct sl_http_str;

/* A peer address as counted by --max-connections-per-ip (conn_guard.c):
 * IPv4 as a v4-mapped IPv6 address, so both spellings count as one. */
typedef struct sl_conn_ip {
    uint8_t addr[16];
    bool counted;                  /* holds one count in the per-IP table */
} sl_conn_ip_t;
struct sl_conn_rpc;
struct sl_conn_proto_ops;

/* Where a stream's subscription record (sl_sub_t, embedded below) is. The
 * record is one message that travels: SUBSCRIBE goes to the session and
 * comes back as SUBSCRIBED, UNSUBSCRIBE goes and comes back as
 * UNSUBSCRIBED. While it is away (SUBSCRIBING, UNSUBSCRIBING) the
 * connection must neither send it again nor free it; a wish to leave that
 * arrives meanwhile is remembered (unsub_wanted) and acted on when the
 * record is home. Transitions (conn_sse.c, each tested):
 *   SUBSCRIBING --SUBSCRIBED ok--> ACTIVE (--> UNSUBSCRIBING if unsub_wanted)
 *   SUBSCRIBING --SUBSCRIBED refused--> DONE (or SUBSCRIBING again: the
 *                session was hibernating, its successor is asked)
 *   ACTIVE --leave (reset, unsubscribe, end, close)--> UNSUBSCRIBING
 *   UNSUBSCRIBING --UNSUBSCRIBED--> DONE
 * Only a DONE record with no catch-up outstanding is freed. */
typedef enum sl_conn__sub_state {
    SL_CONN__SUB_SUBSCRIBING = 0, /* SUBSCRIBE at the session */
    SL_CONN__SUB_ACTIVE,          /* registered; the record is home */
    SL_CONN__SUB_UNSUBSCRIBING,   /* UNSUBSCRIBE at the session */
    SL_CONN__SUB_DONE,            /* not registered; the record is home */
} sl_conn__sub_state_t;

/* An SSE response stream on this connection, following one session. */
typedef struct sl_conn_stream {
    struct sl_conn_stream *next, *prev;
    uint32_t stream_id;
    bool begun;        /* response head queued */
    bool dead;         /* peer reset it / connection closing: no more writes */
    uint8_t sub_state; /* sl_conn__sub_state_t */
    bool unsub_wanted; /* the client asked to stop following (RPC unsubscribe): leave
                          as soon as the record is home; its answer said so, so no
                          end notice follows */
    bool ended;        /* END_STREAM / last chunk queued */
    bool counted;      /* counted in streams_open (SSE) / subscribers */
    bool rpc;          /* the wire form the session encodes for it (catch-up chunks):
                          msgpack-RPC notifications, stream_id being the
                          subscription id; else SSE */
    uint32_t rpc_msgid; /* RPC: the subscribe request, answered on SUBSCRIBED */
    bool reset;        /* send sluice.reset first (Last-Event-ID of an earlier incarnation) */
    sl_entry_t *e;     /* reference */
    sl_actor_t *session; /* reference, until the record is DONE */
    sl_sub_t sub;      /* embedded subscription (holds a conn reference) */
    sl_catchup_t cu;   /* embedded catch-up request (holds a conn reference) */
    bool catching_up;  /* behind the ring: events come from the session's log */
    bool cu_outstanding;
    bool cu_ready;     /* an answer waits for room in the stream */
    uint64_t cu_reserved; /* memory budget counted for the outstanding request */
    uint8_t resubscribes; /* SUBSCRIBE resent after the session hibernated */
    uint64_t next_seq; /* seq of the next event the client will get */
    uint64_t wait_seq; /* `from` beyond the end: start once it exists */
    uint64_t last_write_ns;
    uint64_t auth_expires_ns; /* wall ns its token stops being accepted (0: never) */
} sl_conn_stream_t;

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
    bool timer_cancelling; /* a retime's cancel_timer_op is in flight */
    /* Fan-out budget (--fanout-budget): stream data pulled on a session's
     * wake-up is sent at most once per budget; fanout_op wakes the
     * connection when the held-back data is due. */
    sl_op_t fanout_op;
    bool fanout_armed;
    bool urgent;               /* something queued that is not fan-out
                                  data (an answer, an ack, handshake
                                  records): the next send goes at once */
    uint64_t last_send_ns;     /* when the last send was submitted */
    uint32_t ops_inflight;
    sl_outq_t outq;
    struct iovec *iov;             /* SL_SEND_IOV_MAX, allocated by the first send */
    /* Protocol. */
    const struct sl_conn_proto_ops *proto; /* chosen at accept, never NULL */
    struct sl_http_conn *http;     /* NULL until the first bytes chose one */
    struct sl_conn_rpc *rpc;       /* msgpack-RPC state (RPC listeners), else NULL */
    uint8_t sniff[32];
    uint32_t sniff_len;
    bool proto_failed;             /* close once the error answer is sent */
    uint8_t http_proto;            /* sl_http_proto_t to force (TLS ALPN); 0: sniff */
    /* TLS (conn_tls.c): chosen by the first byte when a certificate is set. */
    struct sl_tls_conn *tls;       /* NULL: cleartext */
    sl_outq_t tls_out;             /* ciphertext for the socket (TLS only) */
    bool tls_decided;              /* the first byte was looked at */
    bool tls_established;          /* handshake done (counted, ALPN applied) */
    bool tls_notified;             /* close_notify queued */
    /* Sessions. */
    sl_conn_stream_t *streams;     /* SSE streams (live or awaiting replies) */
    uint32_t nstreams;
    uint32_t pubs_inflight;        /* publishes awaiting their session's answer */
    /* Timing. */
    uint64_t accepted_ns;
    uint64_t last_activity_ns;
    /* Preallocated control messages; the flags are guarded by conns_lock. */
    sl_msg_t drain_msg, abort_msg;
    bool drain_sent, abort_sent;
    bool counted_open;
    char peer[64];
    /* Liveness (conn_guard.c): watchdog link, backstop timers. */
    sl_watchdog_link_t wd;         /* registered with srv->watchdog while sending */
    sl_msg_t reap_msg;             /* CONTROL, sent by the watchdog at most once */
    uint64_t last_recv_ns;         /* last bytes received */
    uint64_t head_since_ns;        /* a request head began arriving (0: none pending) */
    uint64_t ping_sent_ns;         /* HTTP/2 PING outstanding since (0: none) */
    uint64_t ping_acks;            /* PING ACKs counted when it was sent */
    sl_conn_ip_t ip;               /* peer address counted per IP (ip.counted) */
    /* Figures for /debug/connections, written by this actor (relaxed). */
    _Atomic uint64_t pub_outq_bytes;
    _Atomic uint64_t pub_lag_events;
    _Atomic uint32_t pub_streams;
    _Atomic uint8_t pub_proto;     /* sl_http_proto_t */
    /* Access control (conn_auth.c): the principal of the last token
     * verified on this connection, and that token (HTTP: a request that
     * brings the same bytes is not verified again). */
    sl_auth_principal_t *principal;
    char *token;
    size_t token_len;
    uint64_t auth_expiry_min_ns;   /* earliest stream expiry, wall ns (0: none) */
    struct sl_ds_req *ds_reqs;     /* Durable Streams requests in progress (conn_ds.c) */
};

/* The wire protocol of a connection (see the top of this file). Every
 * hook runs on the connection's actor and borrows c; none is NULL. */
typedef struct sl_conn_proto_ops {
    const char *name;          /* "http", "rpc": logs */
    bool tls_alpn;             /* TLS: negotiate ALPN (h2, http/1.1); false selects none */
    /* Connection. */
    /* At accept, before the actor runs: sets up the protocol state.
     * Returns 0, or < 0 (nothing kept; the connection is refused). */
    int (*create)(sl_conn_t *c);
    /* True once the protocol state exists (HTTP: made by the first bytes,
     * which pick the version; RPC: from accept). Until then the header
     * timeout runs from accept. */
    bool (*started)(const sl_conn_t *c);
    /* Feeds received bytes (borrowed). Returns 0, or < 0 when the
     * connection must close after its queued output (an error answer) is
     * flushed. */
    int (*feed)(sl_conn_t *c, const uint8_t *data, size_t len);
    /* False while the protocol holds input back (HTTP/1.x pipelining
     * behind a response, RPC requests waiting for room) or is done
     * reading: the recv is not re-armed. */
    bool (*want_read)(sl_conn_t *c);
    /* Moves pending protocol output into c->outq (stops when it is full). */
    void (*flush)(sl_conn_t *c);
    /* True when the protocol has finished (GOAWAY sent, Connection: close
     * answered) and the connection should close once output drains. */
    bool (*want_close)(sl_conn_t *c);
    /* True when no request is being received or answered and no stream
     * is open: the connection may be closed as idle or drained. */
    bool (*idle)(sl_conn_t *c);
    /* Starts a graceful finish (HTTP/2 GOAWAY; HTTP/1.1 close after the
     * current response; RPC: nothing, the engine closes once idle). */
    void (*drain)(sl_conn_t *c);
    /* Frees the protocol state (actor destroy; safe before started). */
    void (*destroy)(sl_conn_t *c);
    /* True while a request is partly received (HTTP body, RPC message):
     * --body-timeout runs. */
    bool (*partial)(const sl_conn_t *c);
    /* That request stalled past --body-timeout: returns 0 when an answer
     * was queued (the connection closes once it is sent, HTTP 408), < 0
     * when the connection must close now. */
    int (*stalled)(sl_conn_t *c);
    /* What /debug/connections names: 0 unknown yet, a sl_http_proto_t,
     * or SL_CONN_KIND_RPC. */
    uint8_t (*kind)(const sl_conn_t *c);
    /* Publishes. */
    /* Answers a publish its session took or refused. Takes p and the
     * connection reference the request held. */
    void (*published)(sl_conn_t *c, sl_pub_t *p);
    /* Sends p (taken) again to the successor of a session that ended
     * before its turn (p->retries counts the attempts). */
    void (*resend)(sl_conn_t *c, sl_pub_t *p);
    /* Streams (sl_conn_stream_t, conn_sse.c). */
    /* The server gauge of this protocol's open streams. */
    _Atomic uint64_t *(*gauge)(sl_server_counters_t *ctr);
    /* The answer to a stream's subscribe while the client still listens.
     * status 0: the session took it (HTTP: the response head and any
     * sluice.reset; RPC: the subscribe's answer); returns 0, or < 0 when
     * the stream cannot start (handled as a reset by the peer). Otherwise
     * status is the refusal (SL_ENOTFOUND, SL_EFULL, ...) and 0 is
     * returned. RPC is also answered with 0 when its client unsubscribed
     * before the answer came. */
    int (*subscribed)(sl_conn_t *c, sl_conn_stream_t *st, int status);
    /* Bytes the stream may take now (window, buffers; RPC: the output
     * queue less the room kept for answers). */
    size_t (*room)(sl_conn_t *c, sl_conn_stream_t *st);
    /* Writes a caught-up chunk (borrowed; a reference is taken on
     * success) already in the stream's wire form. Returns 0 or SL_EFULL
     * (no room: nothing written). */
    int (*write_chunk)(sl_conn_t *c, sl_conn_stream_t *st, sl_chunk_t *chunk);
    /* One pull of whole events from the subscription's ring up to ring
     * position limit. Returns 1 to pull again, 0 when done for now,
     * SL_ENOTFOUND when the position fell out of the ring (the caller
     * catches up from the log). */
    int (*pull)(sl_conn_t *c, sl_conn_stream_t *st, uint64_t limit);
    /* The session ended the stream. closed: it was closed for good and
     * last_seq is its last event (SSE: event sluice.closed, then the end
     * of the response; RPC: ["closed", [id, last_seq]]); otherwise it was
     * deleted or the server is stopping (the end of the response; RPC:
     * ["end", [id]]). */
    void (*end)(sl_conn_t *c, sl_conn_stream_t *st, bool closed, uint64_t last_seq);
    /* Room a stream needs before a closed-for-good end is written (the
     * pump waits for it); 0: written regardless. */
    uint32_t end_room;
    /* The stream's token expired: writes the notice and the end. Returns
     * false when the stream cannot be told yet (HTTP: not begun; it is
     * ended the same way once it begins). */
    bool (*expired)(sl_conn_t *c, sl_conn_stream_t *st);
    /* Timer tick on a begun stream idle for --sse-keepalive (RPC defines
     * no keepalive: a no-op). */
    void (*keepalive)(sl_conn_t *c, sl_conn_stream_t *st, uint64_t now_ns);
} sl_conn_proto_ops_t;

/* sl_conn_proto_ops_t.kind of a msgpack-RPC connection. */
#define SL_CONN_KIND_RPC 255

/* The two protocols, in conn_proto.c. */
extern const sl_conn_proto_ops_t sl_conn__http_ops;
extern const sl_conn_proto_ops_t sl_conn__rpc_ops;

/* HTTP (HTTP/1.1 and HTTP/2 through net/http), in conn_http.c: the
 * connection hooks of sl_conn__http_ops, as documented there. */
int sl_conn__http_create(sl_conn_t *c);
bool sl_conn__http_started(const sl_conn_t *c);
int sl_conn__http_feed(sl_conn_t *c, const uint8_t *data, size_t len);
bool sl_conn__http_want_read(sl_conn_t *c);
void sl_conn__http_flush(sl_conn_t *c);
bool sl_conn__http_want_close(sl_conn_t *c);
bool sl_conn__http_idle(sl_conn_t *c);
void sl_conn__http_drain(sl_conn_t *c);
void sl_conn__http_destroy(sl_conn_t *c);
bool sl_conn__http_partial(const sl_conn_t *c);
int sl_conn__http_stalled(sl_conn_t *c);
uint8_t sl_conn__http_kind(const sl_conn_t *c);
/* The publish hooks of sl_conn__http_ops, in conn_api.c. */
void sl_conn__http_published(sl_conn_t *c, sl_pub_t *p);
void sl_conn__http_resend(sl_conn_t *c, sl_pub_t *p);
/* The stream hooks of sl_conn__http_ops (SSE), in conn_sse.c. */
int sl_conn__sse_subscribed(sl_conn_t *c, sl_conn_stream_t *st, int status);
size_t sl_conn__sse_room(sl_conn_t *c, sl_conn_stream_t *st);
int sl_conn__sse_write_chunk(sl_conn_t *c, sl_conn_stream_t *st, sl_chunk_t *chunk);
int sl_conn__sse_pull(sl_conn_t *c, sl_conn_stream_t *st, uint64_t limit);
void sl_conn__sse_end(sl_conn_t *c, sl_conn_stream_t *st, bool closed, uint64_t last_seq);
/* The most an SSE stream's sluice.closed event takes. */
#define SL_CONN_SSE_CLOSED_BYTES 64u
bool sl_conn__sse_expired(sl_conn_t *c, sl_conn_stream_t *st);
void sl_conn__sse_keepalive(sl_conn_t *c, sl_conn_stream_t *st, uint64_t now_ns);

/* Session side, in conn_sse.c / conn_api.c. */
/* Routes /v1/sessions... requests. */
void sl_conn__api_request(sl_conn_t *c, const struct sl_http_req *req);
/* The percent-decoded value of query parameter name, in buf (cap bytes).
 * Returns 1 and *v (pointing into buf), 0 when absent, or -1 when the
 * value is malformed or longer than cap - 1 (the caller answers 400). */
int sl_conn__query(const struct sl_http_req *req, const char *name, char *buf, size_t cap,
                   struct sl_http_str *v);
/* Handles PUBLISHED / SUBSCRIBED / UNSUBSCRIBED replies. */
void sl_conn__session_reply(sl_conn_t *c, sl_msg_t *m);
void sl_conn__session_msg(sl_conn_t *c, sl_msg_t *m);
/* Writes what the followed sessions have for every stream with room. */
void sl_conn__pump_streams(sl_conn_t *c);
/* A peer reset or the connection is closing: stop writing, unsubscribe. */
void sl_conn__stream_closed(sl_conn_t *c, uint32_t stream_id);
/* The client asked to stop following (RPC unsubscribe): nothing more is
 * written for it, but a subscribe still unanswered gets its answer.
 * Returns false when no such stream exists. */
bool sl_conn__stream_leave(sl_conn_t *c, uint32_t stream_id);
void sl_conn__streams_close_all(sl_conn_t *c);
/* Timer tick: keepalive comments on idle streams. */
void sl_conn__streams_tick(sl_conn_t *c, uint64_t now_ns);
/* Frees stream records (destroy). */
void sl_conn__streams_free(sl_conn_t *c);
/* Subscribes stream_id of this connection to e from from_seq (takes the
 * reference to e); failures are answered as HTTP errors. */
void sl_conn__subscribe(sl_conn_t *c, uint32_t stream_id, sl_entry_t *e, uint64_t from_seq,
                        uint64_t wait_seq, bool reset);
/* The same for either front end; failures are the caller's to answer:
 * returns 0, SL_ENOTFOUND (session deleted) or -ENOMEM. */
int sl_conn__subscribe_ex(sl_conn_t *c, uint32_t stream_id, sl_entry_t *e, uint64_t from_seq,
                          uint64_t wait_seq, bool reset, bool rpc, uint32_t rpc_msgid);

/* Shared by the HTTP and RPC front ends, in conn_api.c. */
bool sl_conn__type_valid(const char *t, size_t n);
/* True when the event's SSE form stays within sl_sse_encoded_bound of
 * --max-event-bytes (runtime/limits.h; policy: too_large). Borrows data. */
bool sl_conn__event_sse_fits(const sl_config_t *cfg, size_t type_len, const uint8_t *data,
                             size_t data_len);
size_t sl_conn__stats_json(const sl_entry_t *e, char *out, size_t cap);
sl_pub_t *sl_conn__pub_alloc(uint32_t nevents, size_t buf_bytes);
/* Parses an NDJSON publish body (req->body, borrowed) into a publish
 * request (returns owned; free()) with one event per non-blank line. Returns
 * NULL with *status and *code set when the batch is refused: 400
 * bad_request / invalid_type, 413 too_large (an event's data beyond
 * cfg->max_event_bytes or its SSE form beyond the bound for one event, or
 * more than SL_BATCH_EVENTS_MAX events), 503 overloaded (out of memory).
 * Borrows req and cfg. Pure; any thread. */
sl_pub_t *sl_conn__parse_batch(const struct sl_http_req *req, const sl_config_t *cfg,
                               int *status, const char **code);
/* Sends p (owned) to the session of id, creating the session. Returns 0
 * (answered later by PUBLISHED; counted in pubs_inflight) or, with p
 * freed: SL_EFULL (too many sessions), SL_ECLOSED (session unavailable),
 * SL_EAGAIN (its mailbox is full; counted in publish_refused). */
int sl_conn__send_publish(sl_conn_t *c, uint32_t sid, const char *id, size_t id_len, sl_pub_t *p);
const char *sl_conn__publish_error_text(int rc);
/* A sessions page as JSON (malloc'd; *len set), or NULL out of memory. */
char *sl_conn__list_json(sl_conn_t *c, const char *cursor, size_t clen, uint64_t limit,
                         size_t *len);

/* msgpack-RPC protocol, in conn_rpc.c. */
int sl_conn__rpc_create(sl_conn_t *c);
void sl_conn__rpc_destroy(sl_conn_t *c);
int sl_conn__rpc_feed(sl_conn_t *c, const uint8_t *data, size_t len);
void sl_conn__rpc_flush(sl_conn_t *c);
bool sl_conn__rpc_want_read(sl_conn_t *c);
bool sl_conn__rpc_idle(sl_conn_t *c);
void sl_conn__rpc_published(sl_conn_t *c, sl_pub_t *p);
void sl_conn__rpc_resend(sl_conn_t *c, sl_pub_t *p);
/* RPC subscriptions: the subscribe answer, room for notifications, a
 * caught-up chunk, the end notice, and one pull from the ring (1: pull
 * again, 0: done for now, SL_ENOTFOUND: fell out of the ring). */
void sl_conn__rpc_subscribed(sl_conn_t *c, sl_conn_stream_t *st, int status);
uint64_t sl_conn__rpc_room(const sl_conn_t *c);
int sl_conn__rpc_write_chunk(sl_conn_t *c, sl_chunk_t *chunk);
void sl_conn__rpc_end(sl_conn_t *c, sl_conn_stream_t *st);
/* ["closed", [subscription_id, last_seq]]: the session closed for good. */
void sl_conn__rpc_closed(sl_conn_t *c, sl_conn_stream_t *st, uint64_t last_seq);
int sl_conn__rpc_pull(sl_conn_t *c, sl_conn_stream_t *st, uint64_t limit);

/* Liveness and abuse backstops, in conn_guard.c. All on the actor. */
/* At accept: TCP_USER_TIMEOUT, the watchdog link, the reap message. */
void sl_conn__guard_init(sl_conn_t *c);
/* After received bytes were fed: header-timeout bookkeeping. */
void sl_conn__guard_recv(sl_conn_t *c, uint64_t now_ns);
/* Timer tick: header timeout, HTTP/2 PING. Returns true when the
 * connection must close (counted and logged here). */
bool sl_conn__guard_tick(sl_conn_t *c, uint64_t now_ns);
/* The timer period, shortened for the PING backstop where it applies. */
uint64_t sl_conn__guard_period(const sl_conn_t *c, uint64_t period_ns);
/* A protocol error ended the connection: counts abuse kinds. */
void sl_conn__guard_proto_error(sl_conn_t *c);
/* At accept, before the connection exists: counts fd's peer address in
 * the per-IP table (fills *ip). Returns 0, or SL_EFULL when the address
 * already has --max-connections-per-ip connections (nothing counted; the
 * caller closes fd; counted and logged here, rate-limited) or -ENOMEM.
 * Unix-socket peers and --max-connections-per-ip 0 are not counted. Any
 * reactor thread. */
int sl_conn__ip_admit(sl_server_t *srv, int fd, sl_conn_ip_t *ip);
/* Drops the count sl_conn__ip_admit took (no-op when none). Any thread. */
void sl_conn__ip_release(const sl_conn_ip_t *ip);
/* Budget admission of a new publish (publish true) or subscription: true
 * when the memory budget is over its limit -- the caller refuses the
 * request as overloaded; counted here. */
bool sl_conn__budget_refused(sl_conn_t *c, bool publish);
/* The HTTP answer to such a refusal: 503 overloaded + Retry-After. */
void sl_conn__budget_respond(sl_conn_t *c, uint32_t stream_id);
/* What the RPC error names. */
#define SL_CONN_BUDGET_MESSAGE "server memory budget is full; retry later"
/* RPC: a partial message waits in the decoder (the body timeout runs). */
bool sl_conn__rpc_partial(const sl_conn_t *c);
/* Refreshes the figures /debug/connections reads. */
void sl_conn__guard_publish(sl_conn_t *c);
/* GET /debug/connections, in conn_debug.c. */
void sl_conn__debug_connections(sl_conn_t *c, const struct sl_http_req *req);

/* TLS transport, in conn_tls.c. All on the actor. */
/* Looks at the first byte received (once): true when the connection
 * speaks TLS from now on (c->tls set); false for cleartext. */
bool sl_conn__tls_sniff(sl_conn_t *c, uint8_t first);
/* Decrypts received ciphertext into sl_conn__proto_feed and queues what
 * the handshake produced. Returns 0 or < 0 (close after the queued
 * output, which may hold an alert). */
int sl_conn__tls_feed(sl_conn_t *c, const uint8_t *data, size_t len);
/* Encrypts c->outq into c->tls_out while that has room. Returns 0 or < 0
 * (close). */
int sl_conn__tls_encrypt(sl_conn_t *c);
/* True while a TLS handshake is incomplete (the header timeout runs). */
bool sl_conn__tls_handshaking(const sl_conn_t *c);
/* Queues close_notify once (the connection is about to close cleanly). */
void sl_conn__tls_close_notify(sl_conn_t *c);
void sl_conn__tls_destroy(sl_conn_t *c);

/* Access control, in conn_auth.c. All on the actor. */
/* Whether the request may do action on session id (NULL for ADMIN).
 * Takes the token from Authorization: Bearer, ?access_token= or the
 * cookie sluice_token (in that order), verifies it once per connection
 * (c->principal), and asks sl_auth_allow. Returns true when allowed;
 * otherwise the request is answered here (401 unauthorized with
 * WWW-Authenticate: Bearer, or 403 forbidden), counted and audited. With
 * no key configured it returns true at once. The /console page calls it
 * with SL_AUTH_ADMIN. */
bool sl_conn__auth_http(sl_conn_t *c, const struct sl_http_req *req, sl_auth_action_t action,
                        const char *id, size_t id_len);
/* The same decision without answering: the verdict for the request's
 * principal (used where a refusal is not an error, e.g. /health). */
sl_auth_verdict_t sl_conn__auth_peek(sl_conn_t *c, const struct sl_http_req *req,
                                     sl_auth_action_t action);
/* RPC: the verdict for the connection's principal; a refusal is counted
 * and audited (what names the method). */
sl_auth_verdict_t sl_conn__auth_check(sl_conn_t *c, sl_auth_action_t action, const char *id,
                                      size_t id_len, const char *what);
/* RPC `auth`: verifies token (borrowed) and makes it the connection's
 * principal; open RPC subscriptions the new principal may still follow
 * take its expiry. Returns SL_AUTH_OK or SL_AUTH_UNAUTHORIZED with *why
 * (the old principal stays). */
sl_auth_verdict_t sl_conn__auth_set(sl_conn_t *c, const char *token, size_t len, const char **why);
/* Whether a session may appear in the caller's lists (sub rights). */
bool sl_conn__auth_may_list(const sl_conn_t *c, const char *id, size_t id_len, uint64_t now_wall_ns);
/* Frees the principal and token (destroy). */
void sl_conn__auth_free(sl_conn_t *c);
/* Timer tick: streams whose token expired end with sluice.expired (RPC:
 * ["expired", [id]]), and c->auth_expiry_min_ns is recomputed (the
 * timer runs short only while that is near). Returns true while a stream
 * has an expiry ahead. */
bool sl_conn__auth_tick(sl_conn_t *c);
/* RPC: the ["expired", [subscription_id]] notification, in conn_rpc.c. */
void sl_conn__rpc_expired(sl_conn_t *c, sl_conn_stream_t *st);
/* SSE: ends a stream whose token expired, in conn_sse.c. */
void sl_conn__stream_expire(sl_conn_t *c, sl_conn_stream_t *st);

/* Runs (API.md "Runs"), in conn_run.c. */
struct msgpack_object;
void sl_conn__run_http(sl_conn_t *c, const struct sl_http_req *req, const char *id, size_t id_len,
                       const char *rest, size_t rest_len);
bool sl_conn__run_rpc(sl_conn_t *c, const char *method, size_t len, uint32_t msgid,
                      const struct msgpack_object *params);
void sl_conn__run_reply(sl_conn_t *c, sl_msg_t *m);

/* I/O engine entry points the faces may call. */
void sl_conn__pump(sl_conn_t *c); /* flush protocol output and send */

#endif
