/*
 * Tests for net/cors: parsing --cors-origin, origin grants, the
 * same-origin rule, the Origin check of state-changing requests, the
 * headers every response carries, preflight header families, and (through
 * an HTTP/1.1 connection with no socket) that a granted request's answer
 * carries Access-Control-Allow-Origin while a parse error still carries
 * the security headers.
 */
#include "net/cors.h"

#include "tests/net/net_test_util.h"

static sl_http_str_t S(const char *s)
{
    return (sl_http_str_t){s, s != NULL ? strlen(s) : 0};
}

static void test_cors_parse(void)
{
    sl_cors_t p;
    char err[256];
    CHECK_EQ_INT(sl_cors_parse(&p, "", err, sizeof err), 0);
    CHECK(sl_cors_empty(&p));
    CHECK_EQ_INT(sl_cors_parse(&p, NULL, err, sizeof err), 0);
    CHECK(sl_cors_empty(&p));
    CHECK_EQ_INT(sl_cors_parse(&p, "*", err, sizeof err), 0);
    CHECK(p.any && !sl_cors_empty(&p));
    CHECK_EQ_INT(sl_cors_parse(&p, " https://a.test , http://b.test:8080,http://[::1]:9", err,
                               sizeof err), 0);
    CHECK_EQ_INT(p.count, 3);
    CHECK(p.origins[0].len == 14 && memcmp(p.origins[0].ptr, "https://a.test", 14) == 0);
    CHECK(p.origins[2].len == 14 && memcmp(p.origins[2].ptr, "http://[::1]:9", 14) == 0);
    static const char *bad[] = {"a.test",          "ftp://a.test",     "https://a.test/",
                                "https://a.test/x", "https://",         "https://a.test:0",
                                "https://a.test:99999", "https://a b",  "https://a.test:",
                                "*,https://a.test", "https://[::1",     "https://App.test"};
    for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++) {
        err[0] = '\0';
        CHECK(sl_cors_parse(&p, bad[i], err, sizeof err) == SL_EINVAL);
        CHECK(strstr(err, "--cors-origin") != NULL);
    }
    char many[4096] = "";
    for (int i = 0; i <= SL_CORS_ORIGINS_MAX; i++)
        snprintf(many + strlen(many), sizeof many - strlen(many), "%shttp://h%d.test",
                 i ? "," : "", i);
    CHECK_EQ_INT(sl_cors_parse(&p, many, err, sizeof err), SL_ETOOBIG);
}

static void test_cors_grant(void)
{
    sl_cors_t p;
    char err[256];
    CHECK_EQ_INT(sl_cors_parse(&p, "https://a.test,http://b.test:8080", err, sizeof err), 0);
    CHECK_EQ_INT(sl_cors_grant(&p, S("https://a.test")), 1);
    CHECK_EQ_INT(sl_cors_grant(&p, S("HTTPS://A.TEST")), SL_CORS_NONE); /* browsers send lower case */
    CHECK_EQ_INT(sl_cors_grant(&p, S("http://b.test:8080")), 2);
    CHECK_EQ_INT(sl_cors_grant(&p, S("http://b.test")), SL_CORS_NONE);
    CHECK_EQ_INT(sl_cors_grant(&p, S("https://a.test.evil")), SL_CORS_NONE);
    CHECK_EQ_INT(sl_cors_grant(&p, S("null")), SL_CORS_NONE);
    CHECK_EQ_INT(sl_cors_grant(&p, S(NULL)), SL_CORS_NONE);
    CHECK_EQ_INT(sl_cors_grant(NULL, S("https://a.test")), SL_CORS_NONE);
    CHECK_EQ_INT(sl_cors_parse(&p, "*", err, sizeof err), 0);
    CHECK(sl_cors_grant(&p, S("https://anything.test")) == SL_CORS_ANY);
    CHECK(sl_cors_grant(&p, S(NULL)) == SL_CORS_NONE);
}

static void test_cors_same_origin(void)
{
    CHECK(sl_cors_same_origin(S("http://127.0.0.1:8080"), S("http"), S("127.0.0.1:8080")));
    CHECK(sl_cors_same_origin(S("http://Example.TEST"), S("http"), S("example.test:80")));
    CHECK(sl_cors_same_origin(S("https://example.test"), S("https"), S("example.test")));
    CHECK(sl_cors_same_origin(S("https://example.test:443"), S("https"), S("example.test")));
    CHECK(sl_cors_same_origin(S("http://[::1]:9"), S("http"), S("[::1]:9")));
    /* Scheme, port or host differ. */
    CHECK(!sl_cors_same_origin(S("https://127.0.0.1:8080"), S("http"), S("127.0.0.1:8080")));
    CHECK(!sl_cors_same_origin(S("http://127.0.0.1:8081"), S("http"), S("127.0.0.1:8080")));
    CHECK(!sl_cors_same_origin(S("http://localhost:8080"), S("http"), S("127.0.0.1:8080")));
    CHECK(!sl_cors_same_origin(S("http://example.test"), S("https"), S("example.test")));
    CHECK(!sl_cors_same_origin(S("null"), S("http"), S("example.test")));
    CHECK(!sl_cors_same_origin(S("http://example.test"), S("http"), S(NULL)));
    CHECK(!sl_cors_same_origin(S("http://example.test/"), S("http"), S("example.test")));
}

static sl_http_req_t req_of(sl_http_method_t m, const char *origin, const char *host)
{
    sl_http_req_t r;
    memset(&r, 0, sizeof r);
    r.method = m;
    r.origin = S(origin);
    r.host = S(host);
    r.scheme = S("http");
    return r;
}

static void test_cors_request_allowed(void)
{
    sl_cors_t none, list;
    char err[256];
    CHECK_EQ_INT(sl_cors_parse(&none, "", err, sizeof err), 0);
    CHECK_EQ_INT(sl_cors_parse(&list, "https://app.test", err, sizeof err), 0);
    sl_http_req_t r = req_of(SL_HTTP_METHOD_POST, NULL, "h:1");
    CHECK(sl_cors_request_allowed(&none, &r)); /* no Origin: curl, SDKs */
    r = req_of(SL_HTTP_METHOD_POST, "http://h:1", "h:1");
    CHECK(sl_cors_request_allowed(&none, &r)); /* same origin */
    r = req_of(SL_HTTP_METHOD_POST, "https://evil.test", "h:1");
    CHECK(!sl_cors_request_allowed(&none, &r));
    CHECK(!sl_cors_request_allowed(NULL, &r));
    CHECK(!sl_cors_request_allowed(&list, &r));
    r = req_of(SL_HTTP_METHOD_DELETE, "https://app.test", "h:1");
    CHECK(sl_cors_request_allowed(&list, &r));
    CHECK(!sl_cors_request_allowed(&none, &r));
    static const sl_http_method_t unsafe[] = {SL_HTTP_METHOD_POST, SL_HTTP_METHOD_PUT,
                                              SL_HTTP_METHOD_DELETE, SL_HTTP_METHOD_PATCH,
                                              SL_HTTP_METHOD_OTHER};
    for (size_t i = 0; i < SL_ARRAY_LEN(unsafe); i++) {
        r = req_of(unsafe[i], "null", "h:1");
        CHECK(!sl_cors_request_allowed(&list, &r));
    }
    static const sl_http_method_t safe[] = {SL_HTTP_METHOD_GET, SL_HTTP_METHOD_HEAD,
                                            SL_HTTP_METHOD_OPTIONS};
    for (size_t i = 0; i < SL_ARRAY_LEN(safe); i++) {
        r = req_of(safe[i], "https://evil.test", "h:1");
        CHECK(sl_cors_request_allowed(&none, &r));
    }
}

static const sl_http_header_t *find(const sl_http_header_t *h, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (h[i].name_len == strlen(name) && memcmp(h[i].name, name, h[i].name_len) == 0)
            return &h[i];
    return NULL;
}

static bool value_is(const sl_http_header_t *h, const char *v)
{
    return h != NULL && h->value_len == strlen(v) && memcmp(h->value, v, h->value_len) == 0;
}

static void test_cors_response_headers(void)
{
    sl_cors_t none, list, any;
    char err[256];
    CHECK_EQ_INT(sl_cors_parse(&none, "", err, sizeof err), 0);
    CHECK_EQ_INT(sl_cors_parse(&list, "https://a.test,https://b.test", err, sizeof err), 0);
    CHECK_EQ_INT(sl_cors_parse(&any, "*", err, sizeof err), 0);
    sl_http_header_t h[SL_CORS_HEADERS_MAX];
    size_t n = sl_cors_response_headers(NULL, SL_CORS_NONE, h);
    CHECK_EQ_INT(n, 2);
    CHECK(value_is(find(h, n, "x-content-type-options"), "nosniff"));
    CHECK(value_is(find(h, n, "cross-origin-resource-policy"), "same-origin"));
    CHECK_EQ_INT(sl_cors_response_headers(&none, SL_CORS_NONE, h), 2);
    n = sl_cors_response_headers(&list, SL_CORS_NONE, h);
    CHECK_EQ_INT(n, 3);
    CHECK(value_is(find(h, n, "vary"), "origin"));
    CHECK(find(h, n, "access-control-allow-origin") == NULL);
    n = sl_cors_response_headers(&list, 2, h);
    CHECK_EQ_INT(n, 5);
    CHECK(value_is(find(h, n, "access-control-allow-origin"), "https://b.test"));
    CHECK(value_is(find(h, n, "cross-origin-resource-policy"), "same-origin"));
    const sl_http_header_t *ex = find(h, n, "access-control-expose-headers");
    CHECK(ex != NULL && memmem(ex->value, ex->value_len, "retry-after", 11) != NULL);
    n = sl_cors_response_headers(&any, SL_CORS_ANY, h);
    CHECK_EQ_INT(n, 4);
    CHECK(value_is(find(h, n, "access-control-allow-origin"), "*"));
    CHECK(value_is(find(h, n, "cross-origin-resource-policy"), "cross-origin"));
    CHECK(find(h, n, "vary") == NULL);
}

static void test_cors_preflight(void)
{
    CHECK(sl_cors_request_headers_allowed(S(NULL)));
    CHECK(sl_cors_request_headers_allowed(S("")));
    CHECK(sl_cors_request_headers_allowed(S("content-type,Sluice-Event-Type, producer-id , "
                                            "stream-seq,last-event-id,authorization")));
    CHECK(!sl_cors_request_headers_allowed(S("content-type,x-other")));
    CHECK(!sl_cors_request_headers_allowed(S("sluice-")));
    CHECK(!sl_cors_request_headers_allowed(S("cookie")));
    sl_http_header_t h[SL_CORS_PREFLIGHT_HEADERS_MAX];
    size_t n = sl_cors_preflight_headers(S("content-type"), h);
    CHECK_EQ_INT(n, 3);
    CHECK(value_is(find(h, n, "access-control-allow-methods"), "GET, HEAD, POST, PUT, DELETE"));
    CHECK(value_is(find(h, n, "access-control-allow-headers"), "content-type"));
    CHECK(value_is(find(h, n, "access-control-max-age"), SL_CORS_MAX_AGE_S));
    n = sl_cors_preflight_headers(S(NULL), h);
    CHECK_EQ_INT(n, 2);
    CHECK(find(h, n, "access-control-allow-headers") == NULL);
}

static void respond_ok(void *ctx, sl_http_conn_t *conn, const sl_http_req_t *req)
{
    CHECK_EQ_INT(sl_http_respond(conn, req->stream_id, 200, NULL, 0, "ok", 2), 0);
}

/* Feeds one HTTP/1.1 exchange through a connection with policy p and
 * returns the response bytes in out. */
static void exchange(const sl_cors_t *p, const char *in, tbuf_t *out)
{
    sl_outq_t q;
    CHECK(sl_outq_init(&q, SL_OUTQ_SEGS, 256 * 1024) == 0);
    sl_http_config_t cfg;
    sl_http_config_default(&cfg);
    cfg.cors = p;
    sl_http_callbacks_t cbs = {respond_ok, NULL};
    sl_http_conn_t *conn = NULL;
    CHECK(sl_http_conn_create(&conn, &cfg, &cbs, NULL, &q) == 0);
    (void)sl_http_conn_feed(conn, (const uint8_t *)in, strlen(in));
    CHECK_EQ_INT(sl_http_conn_flush(conn), 0);
    tbuf_clear(out);
    drain_outq(&q, out);
    sl_http_conn_destroy(conn);
    sl_outq_deinit(&q);
}

static void test_cors_http1_responses(void)
{
    sl_cors_t p;
    char err[256];
    CHECK_EQ_INT(sl_cors_parse(&p, "https://a.test", err, sizeof err), 0);
    tbuf_t out = {0};
    exchange(&p, "GET /x HTTP/1.1\r\nHost: h\r\nOrigin: https://a.test\r\n\r\n", &out);
    CHECK(strstr(out.p, "\r\naccess-control-allow-origin: https://a.test\r\n") != NULL);
    CHECK(strstr(out.p, "\r\nvary: origin\r\n") != NULL);
    CHECK(strstr(out.p, "\r\nx-content-type-options: nosniff\r\n") != NULL);
    exchange(&p, "GET /x HTTP/1.1\r\nHost: h\r\nOrigin: https://b.test\r\n\r\n", &out);
    CHECK(strncmp(out.p, "HTTP/1.1 200 OK\r\n", 17) == 0);
    CHECK(strstr(out.p, "access-control-allow-origin") == NULL);
    /* A request that never parsed: its 400 still carries the headers. */
    exchange(&p, "GET /x HTTP/1.1\r\nBad Header\r\n\r\n", &out);
    CHECK(strncmp(out.p, "HTTP/1.1 400 Bad Request\r\n", 26) == 0);
    CHECK(strstr(out.p, "\r\nx-content-type-options: nosniff\r\n") != NULL);
    CHECK(strstr(out.p, "\r\ncross-origin-resource-policy: same-origin\r\n") != NULL);
    tbuf_free(&out);
}

int main(void)
{
    test_cors_parse();
    test_cors_grant();
    test_cors_same_origin();
    test_cors_request_allowed();
    test_cors_response_headers();
    test_cors_preflight();
    test_cors_http1_responses();
    printf("cors_test: ok\n");
    return 0;
}
