/*
 * Connection actor, protocol side: feeds bytes to net/http, routes complete
 * requests, answers them. Runs on the connection's actor only.
 *
 * Routes served here answer from data that is already at hand (the
 * monitor's published snapshot), so no request waits on another actor.
 */
#include <string.h>

#include "actors/conn_int.h"
#include "actors/console.h"
#include "actors/monitor.h"
#include "net/cors.h"
#include "net/http.h"
#include "runtime/clock.h"
#include "runtime/log.h"


static void count_status(sl_conn_t *c, int status)
{
    if (status >= 500)
        atomic_fetch_add_explicit(&c->srv->counters.responses_5xx, 1, memory_order_relaxed);
    else if (status >= 400)
        atomic_fetch_add_explicit(&c->srv->counters.responses_4xx, 1, memory_order_relaxed);
}

static void respond_error(sl_conn_t *c, uint32_t sid, int status, const char *code,
                          const char *message, const sl_http_header_t *h, size_t n)
{
    count_status(c, status);
    sl_http_respond_error(c->http, sid, status, code, message, h, n);
}

static bool path_is(const sl_http_req_t *req, const char *p)
{
    size_t n = strlen(p);
    return req->path.len == n && memcmp(req->path.ptr, p, n) == 0;
}

/* GET/HEAD of a snapshot chunk the monitor rendered. */
static void serve_snapshot(sl_conn_t *c, const sl_http_req_t *req, sl_chunk_t *body,
                           const char *ctype)
{
    if (req->method != SL_HTTP_METHOD_GET && req->method != SL_HTTP_METHOD_HEAD) {
        static const sl_http_header_t allow[] = {SL_HTTP_HEADER_LIT("allow", "GET, HEAD")};
        if (body)
            sl_chunk_release(body);
        respond_error(c, req->stream_id, 405, "method_not_allowed",
                      "this resource supports GET and HEAD", allow, 1);
        return;
    }
    if (!body) {
        respond_error(c, req->stream_id, 503, "overloaded", "snapshot not available", NULL, 0);
        return;
    }
    sl_http_header_t h[2] = {
        {"content-type", 12, ctype, strlen(ctype)},
        SL_HTTP_HEADER_LIT("cache-control", "no-store"),
    };
    sl_http_respond(c->http, req->stream_id, 200, h, 2, body->data, body->len);
    sl_chunk_release(body);
}

/* /health: live head + the monitor's snapshot, one copy into the reply. */
static void serve_health(sl_conn_t *c, const sl_http_req_t *req)
{
    sl_chunk_t *snap = sl_monitor_health_json(c->srv->monitor);
    if (!snap || (req->method != SL_HTTP_METHOD_GET && req->method != SL_HTTP_METHOD_HEAD)) {
        serve_snapshot(c, req, snap, "application/json");
        return;
    }
    sl_chunk_t *body = sl_chunk_create(snap->len + SL_HEALTH_HEAD_BYTES);
    if (!body) {
        sl_chunk_release(snap);
        respond_error(c, req->stream_id, 503, "overloaded", "out of memory", NULL, 0);
        return;
    }
    body->len = (uint32_t)sl_monitor_health_head(c->srv, (char *)body->data, SL_HEALTH_HEAD_BYTES);
    memcpy(body->data + body->len, snap->data, snap->len);
    body->len += snap->len;
    sl_chunk_release(snap);
    serve_snapshot(c, req, body, "application/json");
}

/* OPTIONS on the API: a CORS preflight (an Origin and an
 * Access-Control-Request-Method) from a granted origin gets 204 with what
 * may be sent; from any other origin, or asking for a header outside the
 * allowed families, 403. A plain OPTIONS (no Origin) learns the methods.
 * The grant's Access-Control-Allow-Origin is added by net/http. */
static void serve_preflight(sl_conn_t *c, const sl_http_req_t *req)
{
    const sl_cors_t *cors = &c->srv->cfg.cors;
    const sl_http_header_t *want = sl_http_req_header(req, "access-control-request-headers");
    sl_http_str_t asked = want ? (sl_http_str_t){want->value, want->value_len}
                               : (sl_http_str_t){NULL, 0};
    if (req->origin.ptr == NULL) {
        static const sl_http_header_t allow[] = {
            SL_HTTP_HEADER_LIT("allow", "GET, HEAD, POST, PUT, DELETE, OPTIONS")};
        sl_http_respond(c->http, req->stream_id, 204, allow, 1, NULL, 0);
    } else if (sl_cors_grant(cors, req->origin) == SL_CORS_NONE) {
        respond_error(c, req->stream_id, 403, "forbidden_origin",
                      "this origin may not call the API from a browser (--cors-origin)", NULL, 0);
    } else if (!sl_cors_request_headers_allowed(asked)) {
        respond_error(c, req->stream_id, 403, "forbidden_origin",
                      "a requested header is not allowed cross-origin", NULL, 0);
    } else {
        sl_http_header_t h[SL_CORS_PREFLIGHT_HEADERS_MAX];
        size_t n = sl_cors_preflight_headers(asked, h);
        sl_http_respond(c->http, req->stream_id, 204, h, n, NULL, 0);
    }
}

/* /health for a caller without admin rights while keys are configured:
 * only that the server is up (API.md "Access control"), nothing about
 * its sessions, peers or resources. */
static void serve_health_anonymous(sl_conn_t *c, const sl_http_req_t *req)
{
    sl_chunk_t *body = sl_chunk_create(96);
    if (!body) {
        respond_error(c, req->stream_id, 503, "overloaded", "out of memory", NULL, 0);
        return;
    }
    int n = snprintf((char *)body->data, 96, "{\"status\":\"ok\",\"uptime_s\":%.3f}\n",
                     (double)(sl_clock_now_ns() - c->srv->start_ns) / 1e9);
    body->len = n > 0 && n < 96 ? (uint32_t)n : 0;
    serve_snapshot(c, req, body, "application/json");
}

static void on_request(void *ctx, sl_http_conn_t *conn, const sl_http_req_t *req)
{
    sl_conn_t *c = ctx;
    (void)conn;
    atomic_fetch_add_explicit(&c->srv->counters.requests, 1, memory_order_relaxed);
    /* Query values are percent-decoded before they are interpreted (API.md
     * "Query values"); a malformed escape anywhere is refused here once,
     * so no route reads a raw value by mistake. */
    if (!sl_http_query_valid(req->query)) {
        respond_error(c, req->stream_id, 400, "bad_request",
                      "malformed percent escape in the query", NULL, 0);
    } else if (!sl_cors_request_allowed(&c->srv->cfg.cors, req)) {
        /* A page of another origin must not publish or delete through a
         * user's browser (net/cors.h); clients without Origin pass. */
        respond_error(c, req->stream_id, 403, "forbidden_origin",
                      "state-changing request from another origin (--cors-origin)", NULL, 0);
    } else if (req->method == SL_HTTP_METHOD_OPTIONS && req->path.len >= 4 &&
               memcmp(req->path.ptr, "/v1/", 4) == 0) {
        serve_preflight(c, req);
    } else if (path_is(req, "/health")) {
        if (sl_conn__auth_peek(c, req, SL_AUTH_ADMIN) == SL_AUTH_OK)
            serve_health(c, req);
        else
            serve_health_anonymous(c, req);
    } else if (path_is(req, "/metrics")) {
        if (sl_conn__auth_http(c, req, SL_AUTH_ADMIN, NULL, 0))
            serve_snapshot(c, req, sl_monitor_metrics_text(c->srv->monitor),
                           "text/plain; version=0.0.4; charset=utf-8");
    } else if (sl_console_path(req->path)) {
        if (sl_conn__auth_http(c, req, SL_AUTH_ADMIN, NULL, 0))
            sl_console_serve(c->http, req);
    } else if (req->path.len >= 7 && memcmp(req->path.ptr, "/debug/", 7) == 0) {
        if (!sl_conn__auth_http(c, req, SL_AUTH_ADMIN, NULL, 0))
            return;
        if (path_is(req, "/debug/connections"))
            sl_conn__debug_connections(c, req);
        else
            respond_error(c, req->stream_id, 404, "not_found", "no such resource", NULL, 0);
    } else if (req->path.len >= 12 && memcmp(req->path.ptr, "/v1/sessions", 12) == 0) {
        sl_conn__api_request(c, req);
    } else if (sl_conn__ds_path(c, req)) {
        sl_conn__ds_request(c, req); /* Durable Streams (conn_ds.c) */
    } else {
        respond_error(c, req->stream_id, 404, "not_found", "no such resource", NULL, 0);
    }
}

static void on_stream_close(void *ctx, sl_http_conn_t *conn, uint32_t stream_id,
                            uint32_t error_code)
{
    (void)conn;
    (void)error_code;
    sl_conn__stream_closed((sl_conn_t *)ctx, stream_id);
}

_Static_assert(SL_HTTP_MEM_MAX_BYTES_DEFAULT > SL_HTTP_CONN_BODY_BYTES_DEFAULT,
               "the default allocator cap holds the default body bound and more");

static int ensure_http(sl_conn_t *c)
{
    if (c->http)
        return 0;
    const sl_config_t *cfg = &c->srv->cfg;
    sl_http_config_t hc;
    sl_http_config_default(&hc);
    hc.proto = (sl_http_proto_t)c->http_proto; /* TLS ALPN, else sniffed */
    hc.max_header_bytes = (uint32_t)cfg->max_header_bytes;
    hc.max_body_bytes = cfg->max_body_bytes;
    hc.max_concurrent_streams = cfg->max_streams;
    hc.cors = &cfg->cors;
    hc.tls = c->tls != NULL; /* same-origin checks compare https origins */
    if (hc.conn_body_bytes_max < cfg->max_body_bytes)
        hc.conn_body_bytes_max = cfg->max_body_bytes;
    /* The counted allocator must hold the bodies it is told to accept:
     * keep the default's headroom (nghttp2 state, headers) above them, or
     * a body under --max-body-bytes but over the default cap would end in
     * a refused allocation and a closed connection instead of a publish. */
    uint64_t headroom = SL_HTTP_MEM_MAX_BYTES_DEFAULT - SL_HTTP_CONN_BODY_BYTES_DEFAULT;
    if (hc.mem_max_bytes < hc.conn_body_bytes_max + headroom)
        hc.mem_max_bytes = hc.conn_body_bytes_max + headroom;
    static const sl_http_callbacks_t cbs = {on_request, on_stream_close};
    int rc = sl_http_conn_create(&c->http, &hc, &cbs, c, &c->outq);
    if (rc != 0)
        sl_warn("cannot create HTTP state", "peer=%s error=\"%s\"", c->peer, sl_strerror(rc));
    return rc;
}

int sl_conn__proto_feed(sl_conn_t *c, const uint8_t *data, size_t len)
{
    if (c->rpc)
        return sl_conn__rpc_feed(c, data, len);
    int rc = ensure_http(c);
    if (rc != 0)
        return rc;
    rc = sl_http_conn_feed(c->http, data, len);
    if (rc == SL_EPROTO) {
        atomic_fetch_add_explicit(&c->srv->counters.protocol_errors, 1, memory_order_relaxed);
        sl_debug("protocol error", "peer=%s", c->peer);
        sl_conn__guard_proto_error(c); /* counts HTTP/2 floods by kind */
    }
    return rc;
}

void sl_conn__proto_flush(sl_conn_t *c)
{
    if (c->rpc) {
        sl_conn__rpc_flush(c);
        return;
    }
    /* Held-back pipelined HTTP/1.x input is processed once the previous
     * response is out of the way; bounded by the input that was read. */
    for (int i = 0; i < 64 && sl_http_conn_has_input(c->http); i++) {
        if (sl_http_conn_feed(c->http, NULL, 0) != 0) {
            c->proto_failed = true;
            break;
        }
        if (sl_http_conn_flush(c->http) == SL_EFULL)
            return;
    }
    int rc = sl_http_conn_flush(c->http);
    if (rc != 0 && rc != SL_EFULL)
        c->proto_failed = true;
}

bool sl_conn__proto_want_read(sl_conn_t *c)
{
    if (c->rpc)
        return sl_conn__rpc_want_read(c);
    return !c->http || sl_http_conn_want_read(c->http);
}

bool sl_conn__proto_want_close(sl_conn_t *c)
{
    return c->http && sl_http_conn_want_close(c->http);
}

bool sl_conn__proto_idle(sl_conn_t *c)
{
    if (c->rpc)
        return sl_conn__rpc_idle(c);
    return c->nstreams == 0 && c->pubs_inflight == 0 &&
           (!c->http || !sl_http_conn_has_input(c->http));
}

void sl_conn__proto_drain(sl_conn_t *c)
{
    if (c->http)
        sl_http_conn_shutdown(c->http);
}

void sl_conn__proto_destroy(sl_conn_t *c)
{
    sl_conn__rpc_destroy(c);
    if (c->http)
        sl_http_conn_destroy(c->http);
    c->http = NULL;
}
