/*
 * HTTP/1.1 client side of a connection: requests are written in order
 * (pipelined when several are submitted) and responses are matched to them
 * in that order, parsed by http-parser in response mode, which also undoes
 * chunked transfer coding for SSE bodies and handles bodies delimited by
 * the connection's end.
 */
#include "tools/load/load_int.h"

#include <stdio.h>
#include <string.h>

#include "runtime/base.h"

static sl_load_conn_t *conn_of(http_parser *p)
{
    return (sl_load_conn_t *)p->data;
}

static int on_headers_complete(http_parser *p)
{
    sl_load_conn_t *c = conn_of(p);
    sl_load_req_t *req = c->head;
    if (!req)
        return -1; /* a response nobody asked for */
    if (p->status_code >= 100 && p->status_code < 200)
        return 0; /* interim; the final status follows */
    req->status = (int)p->status_code;
    if (req->cbs->on_headers)
        req->cbs->on_headers(req);
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    sl_load_conn_t *c = conn_of(p);
    sl_load_req_t *req = c->head;
    if (req && req->cbs->on_body)
        req->cbs->on_body(req, at, len);
    return 0;
}

static int on_message_complete(http_parser *p)
{
    sl_load_conn_t *c = conn_of(p);
    sl_load_req_t *req = c->head;
    if (!req || req->status == 0)
        return 0;
    sl_load__req_finish(c, req, 0);
    return 0;
}

static const http_parser_settings settings = {
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

int sl_load__h1_init(sl_load_conn_t *c)
{
    http_parser_init(&c->hp, HTTP_RESPONSE);
    c->hp.data = c;
    return 0;
}

int sl_load__h1_submit(sl_load_conn_t *c, sl_load_req_t *req)
{
    char head[SL_LOAD_PATH_MAX + 256 + SL_LOAD_TOKEN_MAX];
    char auth[SL_LOAD_TOKEN_MAX + 32] = "";
    if (c->token)
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s\r\n", c->token);
    int n;
    if (req->body) {
        n = snprintf(head, sizeof(head),
                     "%s %s HTTP/1.1\r\nHost: %s\r\n%sContent-Type: text/plain\r\n"
                     "Content-Length: %zu\r\n\r\n",
                     req->method, req->path, c->authority, auth, req->body_len);
    } else {
        n = snprintf(head, sizeof(head), "%s %s HTTP/1.1\r\nHost: %s\r\n%s%s%s\r\n", req->method,
                     req->path, c->authority, auth,
                     req->sse ? "Accept: text/event-stream\r\n" : "",
                     strcmp(req->method, "GET") == 0 ? "" : "Content-Length: 0\r\n");
    }
    sl_assert(n > 0 && (size_t)n < sizeof(head));
    size_t body_len = req->body ? req->body_len : 0;
    if (c->out_len + (size_t)n + body_len > c->out_cap)
        return SL_EFULL;
    memcpy(c->out + c->out_len, head, (size_t)n);
    c->out_len += (size_t)n;
    if (body_len) {
        memcpy(c->out + c->out_len, req->body, body_len);
        c->out_len += body_len;
    }
    sl_load__req_link(c, req);
    return 0;
}

int sl_load__h1_recv(sl_load_conn_t *c, const char *data, size_t len)
{
    size_t n = http_parser_execute(&c->hp, &settings, data, len);
    if (c->hp.http_errno != HPE_OK || n != len)
        return SL_EPROTO;
    return 0;
}

void sl_load__h1_eof(sl_load_conn_t *c)
{
    /* Completes a body delimited by the connection's end; errors here only
     * mean the response was cut short, which the close reports anyway. */
    http_parser_execute(&c->hp, &settings, NULL, 0);
}
