/*
 * Liveness and abuse queries of an HTTP connection, protocol-neutral: the
 * connection actor asks whether a request head is still arriving (header
 * timeout), sends HTTP/2 PINGs and learns why a connection was ended for
 * abuse. The HTTP/2 accounting itself lives in http2.c, next to the
 * nghttp2 callbacks that see the frames.
 */
#include "net/net_int.h"

#include <stdio.h>
#include <string.h>

sl_http_abuse_t sl_http_conn_abuse(const sl_http_conn_t *conn)
{
    if (conn->proto != SL_HTTP_PROTO_H2)
        return SL_HTTP_ABUSE_NONE;
    return (sl_http_abuse_t)conn->h2.abuse;
}

const char *sl_http_abuse_name(sl_http_abuse_t a)
{
    switch (a) {
    case SL_HTTP_ABUSE_RESET_FLOOD: return "rapid_reset";
    case SL_HTTP_ABUSE_CONTROL_FLOOD: return "control_flood";
    case SL_HTTP_ABUSE_CONTINUATION_FLOOD: return "continuation_flood";
    case SL_HTTP_ABUSE_ACK_FLOOD: return "ack_flood";
    case SL_HTTP_ABUSE_NONE: break;
    }
    return "none";
}

bool sl_http_conn_head_pending(const sl_http_conn_t *conn)
{
    if (conn->dead)
        return false;
    switch (conn->proto) {
    case SL_HTTP_PROTO_AUTO: return conn->sniff_len > 0;
    case SL_HTTP_PROTO_HTTP1: return conn->h1.in_head;
    case SL_HTTP_PROTO_H2: return conn->h2.heads_pending > 0;
    }
    return false;
}

bool sl_http_conn_body_pending(const sl_http_conn_t *conn)
{
    if (conn->dead)
        return false;
    switch (conn->proto) {
    case SL_HTTP_PROTO_AUTO: return false;
    case SL_HTTP_PROTO_HTTP1: return conn->h1.in_body;
    case SL_HTTP_PROTO_H2: return sl_http__h2_body_pending(conn);
    }
    return false;
}

int sl_http_conn_timeout(sl_http_conn_t *conn)
{
    /* Only where the 408 is the next thing the peer reads: HTTP/1.x with
     * no response in progress or buffered. */
    if (conn->proto != SL_HTTP_PROTO_HTTP1 || conn->h1.cur != H1_IDLE ||
        conn->h1.out.bytes_pending != 0)
        return SL_ENOTFOUND;
    /* The headers every response carries (no request: no CORS grant);
     * bounded: SL_CORS_HEADERS_MAX short values plus the fixed head. */
    char resp[1024];
    size_t len = (size_t)snprintf(resp, sizeof(resp), "HTTP/1.1 408 Request Timeout\r\n"
                                                      "connection: close\r\ncontent-length: 0\r\n");
    sl_http_header_t std[SL_HTTP__STD_HEADERS_MAX];
    size_t nstd = sl_http__std_headers(conn, SL_CORS_NONE, std);
    for (size_t i = 0; i < nstd && len < sizeof(resp); i++)
        len += (size_t)snprintf(resp + len, sizeof(resp) - len, "%.*s: %.*s\r\n",
                                (int)std[i].name_len, std[i].name, (int)std[i].value_len,
                                std[i].value);
    sl_assert(len + 2 < sizeof(resp));
    memcpy(resp + len, "\r\n", 2);
    int rc = sl_outq_append_copy(conn->outq, resp, len + 2);
    if (rc == 0)
        conn->dead = true;
    return rc;
}

int sl_http_conn_ping(sl_http_conn_t *conn)
{
    if (conn->proto != SL_HTTP_PROTO_H2)
        return SL_ENOTFOUND;
    if (conn->dead || conn->h2.fatal)
        return SL_ECLOSED;
    return sl_http__h2_ping(conn);
}

uint64_t sl_http_conn_pings_acked(const sl_http_conn_t *conn)
{
    return conn->proto == SL_HTTP_PROTO_H2 ? conn->h2.pings_acked : 0;
}

uint64_t sl_http_conn_pending_bytes(const sl_http_conn_t *conn)
{
    if (conn->proto == SL_HTTP_PROTO_H2)
        return conn->h2.pending_bytes;
    if (conn->proto == SL_HTTP_PROTO_HTTP1)
        return conn->h1.out.bytes_pending;
    return 0;
}
