/*
 * Liveness and abuse queries of an HTTP connection, protocol-neutral: the
 * connection actor asks whether a request head is still arriving (header
 * timeout), sends HTTP/2 PINGs and learns why a connection was ended for
 * abuse. The HTTP/2 accounting itself lives in http2.c, next to the
 * nghttp2 callbacks that see the frames.
 */
#include "net/net_int.h"

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
    static const char resp[] = "HTTP/1.1 408 Request Timeout\r\nconnection: close\r\n"
                               "content-length: 0\r\n\r\n";
    /* Only where the 408 is the next thing the peer reads: HTTP/1.x with
     * no response in progress or buffered. */
    if (conn->proto != SL_HTTP_PROTO_HTTP1 || conn->h1.cur != H1_IDLE ||
        conn->h1.out.bytes_pending != 0)
        return SL_ENOTFOUND;
    int rc = sl_outq_append_copy(conn->outq, resp, sizeof(resp) - 1);
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
