/*
 * The connection's wire protocols, one table each (sl_conn_proto_ops_t,
 * conn_int.h): HTTP/1.1 and HTTP/2 through net/http with SSE streams, and
 * msgpack-RPC through net/rpc. sl_conn_accept picks one by listener; the
 * rest of the connection code calls through c->proto and never asks which
 * protocol it is serving.
 */
#include "actors/conn_int.h"
#include "actors/server.h"

/* ---- HTTP ---- */

static _Atomic uint64_t *http_gauge(sl_server_counters_t *ctr) { return &ctr->streams_open; }

const sl_conn_proto_ops_t sl_conn__http_ops = {
    .name = "http",
    .tls_alpn = true,
    .create = sl_conn__http_create,
    .started = sl_conn__http_started,
    .feed = sl_conn__http_feed,
    .want_read = sl_conn__http_want_read,
    .flush = sl_conn__http_flush,
    .want_close = sl_conn__http_want_close,
    .idle = sl_conn__http_idle,
    .drain = sl_conn__http_drain,
    .destroy = sl_conn__http_destroy,
    .partial = sl_conn__http_partial,
    .stalled = sl_conn__http_stalled,
    .kind = sl_conn__http_kind,
    .published = sl_conn__http_published,
    .resend = sl_conn__http_resend,
    .gauge = http_gauge,
    .subscribed = sl_conn__sse_subscribed,
    .room = sl_conn__sse_room,
    .write_chunk = sl_conn__sse_write_chunk,
    .pull = sl_conn__sse_pull,
    .end = sl_conn__sse_end,
    .end_room = SL_CONN_SSE_CLOSED_BYTES,
    .expired = sl_conn__sse_expired,
    .keepalive = sl_conn__sse_keepalive,
};

/* ---- msgpack-RPC: the table's shape over conn_rpc.c ---- */

/* The state is made at accept: RPC has one version and no sniffing. */
static bool rpc_started(const sl_conn_t *c) { return c->rpc != NULL; }

/* RPC ends by return codes and c->proto_failed; it has no goodbye frame. */
static bool rpc_want_close(sl_conn_t *c)
{
    (void)c;
    return false;
}

/* Draining: requests in flight are answered, then the connection is
 * idle and the engine closes it. */
static void rpc_drain(sl_conn_t *c) { (void)c; }

/* No answer exists for half a message: the connection closes now. */
static int rpc_stalled(sl_conn_t *c)
{
    (void)c;
    return SL_EPROTO;
}

static uint8_t rpc_kind(const sl_conn_t *c)
{
    (void)c;
    return SL_CONN_KIND_RPC;
}

static _Atomic uint64_t *rpc_gauge(sl_server_counters_t *ctr) { return &ctr->rpc_subscriptions; }

static int rpc_subscribed(sl_conn_t *c, sl_conn_stream_t *st, int status)
{
    sl_conn__rpc_subscribed(c, st, status);
    return 0;
}

static size_t rpc_room(sl_conn_t *c, sl_conn_stream_t *st)
{
    (void)st; /* subscriptions share the connection's output queue */
    return (size_t)sl_conn__rpc_room(c);
}

static int rpc_write_chunk(sl_conn_t *c, sl_conn_stream_t *st, sl_chunk_t *chunk)
{
    (void)st; /* the chunk's notifications carry the subscription id */
    return sl_conn__rpc_write_chunk(c, chunk);
}

static void rpc_end(sl_conn_t *c, sl_conn_stream_t *st, bool closed, uint64_t last_seq)
{
    if (closed)
        sl_conn__rpc_closed(c, st, last_seq);
    else
        sl_conn__rpc_end(c, st);
}

static bool rpc_expired(sl_conn_t *c, sl_conn_stream_t *st)
{
    sl_conn__rpc_expired(c, st); /* told at once, begun or not */
    return true;
}

static void rpc_keepalive(sl_conn_t *c, sl_conn_stream_t *st, uint64_t now_ns)
{
    (void)c, (void)st, (void)now_ns; /* msgpack-RPC defines no keepalive notification */
}

const sl_conn_proto_ops_t sl_conn__rpc_ops = {
    .name = "rpc",
    .tls_alpn = false,
    .create = sl_conn__rpc_create,
    .started = rpc_started,
    .feed = sl_conn__rpc_feed,
    .want_read = sl_conn__rpc_want_read,
    .flush = sl_conn__rpc_flush,
    .want_close = rpc_want_close,
    .idle = sl_conn__rpc_idle,
    .drain = rpc_drain,
    .destroy = sl_conn__rpc_destroy,
    .partial = sl_conn__rpc_partial,
    .stalled = rpc_stalled,
    .kind = rpc_kind,
    .published = sl_conn__rpc_published,
    .resend = sl_conn__rpc_resend,
    .gauge = rpc_gauge,
    .subscribed = rpc_subscribed,
    .room = rpc_room,
    .write_chunk = rpc_write_chunk,
    .pull = sl_conn__rpc_pull,
    .end = rpc_end,
    .end_room = 0, /* written at once, like the end notice */
    .expired = rpc_expired,
    .keepalive = rpc_keepalive,
};
