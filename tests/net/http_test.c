/*
 * Tests for the protocol-neutral parts of net/http: sniffing, the JSON
 * error body, percent-decoding, query parameters, reason phrases and
 * configuration validation.
 */
#include "net/http.h"

#include "tests/net/net_test_util.h"

static sl_http_sniff_t sniff_str(const char *s)
{
    return sl_http_sniff((const uint8_t *)s, strlen(s));
}

static void test_http_sniff(void)
{
    CHECK(sniff_str("") == SL_HTTP_SNIFF_NEED_MORE);
    CHECK(sniff_str("G") == SL_HTTP_SNIFF_NEED_MORE);
    CHECK(sniff_str("GET") == SL_HTTP_SNIFF_NEED_MORE);
    CHECK(sniff_str("GET ") == SL_HTTP_SNIFF_HTTP1);
    CHECK(sniff_str("M-SEARCH * HTTP/1.1") == SL_HTTP_SNIFF_HTTP1);
    CHECK(sniff_str("PRI") == SL_HTTP_SNIFF_NEED_MORE);
    CHECK(sniff_str("PRI * HTTP/2.0\r") == SL_HTTP_SNIFF_NEED_MORE);
    CHECK(sniff_str("PRI * HTTP/2.0\r\n") == SL_HTTP_SNIFF_H2);
    CHECK(sniff_str("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") == SL_HTTP_SNIFF_H2);
    /* Not the preface: an HTTP/1 request with method PRI. */
    CHECK(sniff_str("PRI * HTTP/1.1\r\n") == SL_HTTP_SNIFF_HTTP1);
    const uint8_t tls[] = {0x16, 0x03, 0x01, 0x02, 0x00};
    CHECK(sl_http_sniff(tls, 1) == SL_HTTP_SNIFF_NEED_MORE);
    CHECK(sl_http_sniff(tls, sizeof(tls)) == SL_HTTP_SNIFF_TLS);
    const uint8_t bad[] = {0x16, 0x01};
    CHECK(sl_http_sniff(bad, 2) == SL_HTTP_SNIFF_GARBAGE);
    CHECK(sniff_str("get /") == SL_HTTP_SNIFF_GARBAGE);
    CHECK(sniff_str(" GET") == SL_HTTP_SNIFF_GARBAGE);
    CHECK(sniff_str("\x01\x02\x03") == SL_HTTP_SNIFF_GARBAGE);
    CHECK(sniff_str("AAAAAAAAAAAAAAAAAAAA") == SL_HTTP_SNIFF_NEED_MORE);
    CHECK(sniff_str("AAAAAAAAAAAAAAAAAAAAA") == SL_HTTP_SNIFF_GARBAGE);
}

static void test_http_error_json(void)
{
    char buf[128];
    int n = sl_http_error_json(buf, sizeof(buf), "not_found", "no such session");
    CHECK(n > 0);
    CHECK(strcmp(buf, "{\"error\":\"not_found\",\"message\":\"no such session\"}") == 0);
    CHECK_EQ_INT(n, strlen(buf));
    n = sl_http_error_json(buf, sizeof(buf), "bad_request", "say \"hi\"\\\n\x01");
    CHECK(strcmp(buf, "{\"error\":\"bad_request\",\"message\":\"say \\\"hi\\\"\\\\\\u000a\\u0001\"}") ==
          0);
    char small[20];
    CHECK_EQ_INT(sl_http_error_json(small, sizeof(small), "bad_request", "x"), SL_ETOOBIG);
    CHECK(small[0] == '\0');
    /* Exactly fitting (with the NUL) works; one byte less does not. */
    const char *want = "{\"error\":\"a\",\"message\":\"b\"}";
    size_t wl = strlen(want);
    char fit[64];
    CHECK_EQ_INT(sl_http_error_json(fit, wl + 1, "a", "b"), wl);
    CHECK_EQ_INT(sl_http_error_json(fit, wl, "a", "b"), SL_ETOOBIG);
}

static void test_http_pct_decode(void)
{
    char out[64];
    CHECK_EQ_INT(sl_http_pct_decode("abc", 3, out, sizeof(out), 0), 3);
    CHECK(strcmp(out, "abc") == 0);
    CHECK_EQ_INT(sl_http_pct_decode("a%2Fb%2e", 8, out, sizeof(out), 0), 4);
    CHECK(strcmp(out, "a/b.") == 0);
    CHECK_EQ_INT(sl_http_pct_decode("a+b", 3, out, sizeof(out), 0), 3);
    CHECK(strcmp(out, "a+b") == 0);
    CHECK_EQ_INT(sl_http_pct_decode("a+b", 3, out, sizeof(out), SL_HTTP_PCT_PLUS_SPACE), 3);
    CHECK(strcmp(out, "a b") == 0);
    /* Decoded once: %25 gives a literal '%'. */
    CHECK_EQ_INT(sl_http_pct_decode("%252F", 5, out, sizeof(out), 0), 3);
    CHECK(strcmp(out, "%2F") == 0);
    /* UTF-8 bytes pass. */
    CHECK_EQ_INT(sl_http_pct_decode("%C3%A9", 6, out, sizeof(out), 0), 2);
    CHECK((unsigned char)out[0] == 0xc3 && (unsigned char)out[1] == 0xa9);
    CHECK_EQ_INT(sl_http_pct_decode("%", 1, out, sizeof(out), 0), SL_EINVAL);
    CHECK_EQ_INT(sl_http_pct_decode("%2", 2, out, sizeof(out), 0), SL_EINVAL);
    CHECK_EQ_INT(sl_http_pct_decode("%zz", 3, out, sizeof(out), 0), SL_EINVAL);
    CHECK_EQ_INT(sl_http_pct_decode("a%00b", 5, out, sizeof(out), 0), SL_EINVAL);
    CHECK_EQ_INT(sl_http_pct_decode("a%0D%0Ab", 8, out, sizeof(out), 0), SL_EINVAL);
    CHECK_EQ_INT(sl_http_pct_decode("a%7f", 4, out, sizeof(out), 0), SL_EINVAL);
    CHECK_EQ_INT(sl_http_pct_decode("a\tb", 3, out, sizeof(out), 0), SL_EINVAL);
    CHECK_EQ_INT(sl_http_pct_decode("abcd", 4, out, 4, 0), SL_ETOOBIG);
    CHECK_EQ_INT(sl_http_pct_decode("abcd", 4, out, 5, 0), 4);
    CHECK_EQ_INT(sl_http_pct_decode("", 0, out, 1, 0), 0);
    CHECK(out[0] == '\0');
}

static void test_http_query_param(void)
{
    sl_http_str_t q = {"from=5&type=a%20b&flag&empty=&from=9", 36};
    sl_http_str_t v;
    CHECK(sl_http_query_param(q, "from", &v) && v.len == 1 && v.ptr[0] == '5');
    CHECK(sl_http_query_param(q, "type", &v) && v.len == 5 && memcmp(v.ptr, "a%20b", 5) == 0);
    CHECK(sl_http_query_param(q, "flag", &v) && v.len == 0);
    CHECK(sl_http_query_param(q, "empty", &v) && v.len == 0);
    CHECK(!sl_http_query_param(q, "fro", &v));
    CHECK(!sl_http_query_param(q, "missing", &v));
    sl_http_str_t none = {NULL, 0};
    CHECK(!sl_http_query_param(none, "a", &v));
}

/* Query values are decoded before interpretation: `?type=a%3Ab` is "a:b",
 * `?ephemeral=%31` is "1", '+' is a space, a bad escape is an error. */
static void test_http_query_get_decodes(void)
{
    sl_http_str_t q = {"ty%70e=a%3Ab&eph=%31&sp=a+b&bad=%zz&flag&from=9&from=5", 54};
    char out[16];
    CHECK_EQ_INT(sl_http_query_get(q, "type", out, sizeof out), 3);
    CHECK(strcmp(out, "a:b") == 0);
    CHECK_EQ_INT(sl_http_query_get(q, "eph", out, sizeof out), 1);
    CHECK(strcmp(out, "1") == 0);
    CHECK_EQ_INT(sl_http_query_get(q, "sp", out, sizeof out), 3);
    CHECK(strcmp(out, "a b") == 0);
    CHECK_EQ_INT(sl_http_query_get(q, "bad", out, sizeof out), SL_EINVAL);
    CHECK_EQ_INT(sl_http_query_get(q, "flag", out, sizeof out), 0);
    CHECK_EQ_INT(sl_http_query_get(q, "from", out, sizeof out), 1);
    CHECK(strcmp(out, "9") == 0);
    CHECK_EQ_INT(sl_http_query_get(q, "typ", out, sizeof out), SL_ENOTFOUND);
    CHECK_EQ_INT(sl_http_query_get(q, "type", out, 3), SL_ETOOBIG);
    sl_http_str_t none = {NULL, 0};
    CHECK_EQ_INT(sl_http_query_get(none, "a", out, sizeof out), SL_ENOTFOUND);
    CHECK(sl_http_query_valid(none));
    CHECK(!sl_http_query_valid(q));
    sl_http_str_t good = {"a=%41&b+c=d", 11};
    CHECK(sl_http_query_valid(good));
    CHECK_EQ_INT(sl_http_query_get(good, "b c", out, sizeof out), 1);
    sl_http_str_t trunc = {"a=%4", 4};
    CHECK(!sl_http_query_valid(trunc));
}

static void test_http_status_reason(void)
{
    CHECK(strcmp(sl_http_status_reason(200), "OK") == 0);
    CHECK(strcmp(sl_http_status_reason(431), "Request Header Fields Too Large") == 0);
    CHECK(strcmp(sl_http_status_reason(299), "Unknown") == 0);
    CHECK(strcmp(sl_http_status_reason(42), "Unknown") == 0);
}

static void on_request_unused(void *ctx, sl_http_conn_t *conn, const sl_http_req_t *req)
{
    CHECK(!"no request expected");
}

static void test_http_config_validation(void)
{
    sl_outq_t q;
    CHECK(sl_outq_init(&q, SL_OUTQ_SEGS, 1 << 20) == 0);
    sl_http_callbacks_t cbs = {on_request_unused, NULL};
    sl_http_config_t cfg;
    sl_http_conn_t *conn = NULL;
    sl_http_config_default(&cfg);
    CHECK(sl_http_conn_create(&conn, &cfg, &cbs, NULL, &q) == 0);
    CHECK(sl_http_conn_proto(conn) == SL_HTTP_PROTO_AUTO);
    sl_http_conn_destroy(conn);
    conn = NULL;
    cfg.max_body_bytes = cfg.conn_body_bytes_max + 1;
    CHECK(sl_http_conn_create(&conn, &cfg, &cbs, NULL, &q) == SL_EINVAL);
    CHECK(conn == NULL);
    sl_http_config_default(&cfg);
    cfg.stream_window_bytes = (1u << 31);
    CHECK(sl_http_conn_create(&conn, &cfg, &cbs, NULL, &q) == SL_EINVAL);
    /* The outq must hold a full DATA frame. */
    sl_http_config_default(&cfg);
    sl_outq_t small;
    CHECK(sl_outq_init(&small, SL_OUTQ_SEGS, 16 * 1024) == 0);
    CHECK(sl_http_conn_create(&conn, &cfg, &cbs, NULL, &small) == SL_EINVAL);
    sl_outq_deinit(&small);
    sl_outq_deinit(&q);
}

int main(void)
{
    test_http_sniff();
    test_http_error_json();
    test_http_pct_decode();
    test_http_query_param();
    test_http_query_get_decodes();
    test_http_status_reason();
    test_http_config_validation();
    printf("http_test: ok\n");
    return 0;
}
