/*
 * HTTP/2 client side of a connection (nghttp2, prior knowledge). Each
 * request is one stream whose user data is the sl_load_req_t. The receive
 * windows are opened wide (stream and connection) so that flow control does
 * not throttle many SSE streams sharing one connection; the socket's own
 * read pacing is what makes a reader slow.
 */
#include "tools/load/load_int.h"

#include <stdio.h>
#include <string.h>

#include "runtime/base.h"

static sl_load_req_t *req_of(nghttp2_session *s, int32_t stream_id)
{
    return nghttp2_session_get_stream_user_data(s, stream_id);
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *ud)
{
    if (f->hd.type != NGHTTP2_HEADERS || namelen != 7 || memcmp(name, ":status", 7) != 0)
        return 0;
    sl_load_req_t *req = req_of(s, f->hd.stream_id);
    if (!req)
        return 0;
    int st = 0;
    for (size_t i = 0; i < valuelen && i < 3; i++)
        st = st * 10 + (value[i] - '0');
    req->status = st;
    return 0;
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_RESPONSE)
        return 0;
    sl_load_req_t *req = req_of(s, f->hd.stream_id);
    if (req && req->status >= 200 && req->cbs->on_headers)
        req->cbs->on_headers(req);
    return 0;
}

static int on_data(nghttp2_session *s, uint8_t flags, int32_t stream_id, const uint8_t *data,
                   size_t len, void *ud)
{
    sl_load_req_t *req = req_of(s, stream_id);
    if (req && req->cbs->on_body)
        req->cbs->on_body(req, (const char *)data, len);
    return 0;
}

static int on_stream_close(nghttp2_session *s, int32_t stream_id, uint32_t error_code, void *ud)
{
    sl_load_conn_t *c = ud;
    sl_load_req_t *req = req_of(s, stream_id);
    if (req)
        sl_load__req_finish(c, req, error_code == NGHTTP2_NO_ERROR ? 0 : SL_EPROTO);
    return 0;
}

int sl_load__h2_init(sl_load_conn_t *c)
{
    nghttp2_session_callbacks *cbs;
    if (nghttp2_session_callbacks_new(&cbs) != 0)
        return SL_ENOMEM;
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    int rc = nghttp2_session_client_new(&c->h2, cbs, c);
    nghttp2_session_callbacks_del(cbs);
    if (rc != 0) {
        c->h2 = NULL;
        return SL_ENOMEM;
    }
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, c->h2_stream_window},
    };
    rc = nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, iv, SL_ARRAY_LEN(iv));
    if (rc == 0)
        rc = nghttp2_session_set_local_window_size(c->h2, NGHTTP2_FLAG_NONE, 0,
                                                   (int32_t)c->h2_conn_window);
    return rc == 0 ? 0 : SL_EPROTO;
}

void sl_load__h2_deinit(sl_load_conn_t *c)
{
    nghttp2_session_del(c->h2);
    c->h2 = NULL;
    c->h2_pend = NULL;
    c->h2_pend_len = 0;
}

static ssize_t read_body(nghttp2_session *s, int32_t stream_id, uint8_t *buf, size_t len,
                         uint32_t *flags, nghttp2_data_source *src, void *ud)
{
    sl_load_req_t *req = src->ptr;
    size_t left = req->body_len - req->_body_off;
    size_t n = left < len ? left : len;
    if (n) /* an empty body may have no pointer at all */
        memcpy(buf, req->body + req->_body_off, n);
    req->_body_off += n;
    if (req->_body_off == req->body_len)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

#define NV(n, v, vl) {(uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, (vl), NGHTTP2_NV_FLAG_NONE}

int sl_load__h2_submit(sl_load_conn_t *c, sl_load_req_t *req)
{
    char clen[24];
    int clen_len = snprintf(clen, sizeof(clen), "%zu", req->body ? req->body_len : 0);
    nghttp2_nv nva[7] = {
        NV(":method", req->method, strlen(req->method)),
        NV(":scheme", "http", 4),
        NV(":authority", c->authority, strlen(c->authority)),
        NV(":path", req->path, strlen(req->path)),
    };
    size_t nv = 4;
    char auth[SL_LOAD_TOKEN_MAX + 8];
    if (c->token) {
        int an = snprintf(auth, sizeof(auth), "Bearer %s", c->token);
        nghttp2_nv a = NV("authorization", auth, (size_t)an);
        nva[nv++] = a;
    }
    if (req->sse) {
        nghttp2_nv a = NV("accept", "text/event-stream", 17);
        nva[nv++] = a;
    }
    if (req->body) {
        nghttp2_nv ct = NV("content-type", "text/plain", 10);
        nghttp2_nv cl = NV("content-length", clen, (size_t)clen_len);
        nva[nv++] = ct;
        nva[nv++] = cl;
    }
    nghttp2_data_provider prd = {.source.ptr = req, .read_callback = read_body};
    int32_t id = nghttp2_submit_request(c->h2, NULL, nva, nv, req->body ? &prd : NULL, req);
    if (id < 0)
        return SL_EPROTO;
    req->_stream_id = id;
    sl_load__req_link(c, req);
    return 0;
}

int sl_load__h2_recv(sl_load_conn_t *c, const char *data, size_t len)
{
    c->h2_in_recv = true;
    ssize_t n = nghttp2_session_mem_recv(c->h2, (const uint8_t *)data, len);
    c->h2_in_recv = false;
    if (n < 0 || (size_t)n != len)
        return SL_EPROTO;
    return 0;
}

int sl_load__h2_fill(sl_load_conn_t *c)
{
    /* Bounded by out_cap: each pass either copies bytes or stops. */
    while (c->out_len < c->out_cap) {
        if (c->h2_pend_len == 0) {
            const uint8_t *p;
            ssize_t n = nghttp2_session_mem_send(c->h2, &p);
            if (n < 0)
                return SL_EPROTO;
            if (n == 0)
                break;
            c->h2_pend = p;
            c->h2_pend_len = (size_t)n;
        }
        size_t room = c->out_cap - c->out_len;
        size_t k = c->h2_pend_len < room ? c->h2_pend_len : room;
        memcpy(c->out + c->out_len, c->h2_pend, k);
        c->out_len += k;
        c->h2_pend += k;
        c->h2_pend_len -= k;
    }
    return 0;
}
