/*
 * Durable Streams JSON mode: validation and one-level flattening of
 * appends (PROTOCOL.md 9.1: [a,b] is two messages, [[1,2]] one, [] none,
 * anything not exactly one JSON value refused), the element spans, and
 * the standard base64 of binary SSE data (RFC 4648 test vectors).
 */
#include <stdio.h>
#include <string.h>

#include "actors/ds_json.h"
#include "runtime/base.h"

#include "tests/check.h"

static int split(const char *s, sl_ds_span_t *spans, uint32_t cap)
{
    return sl_ds_json_split((const uint8_t *)s, strlen(s), spans, cap);
}

static void test_counts(void)
{
    CHECK(split("{\"event\": \"created\"}", NULL, 0) == 1);
    CHECK(split("[{\"a\":1}, {\"b\":2}]", NULL, 0) == 2);
    CHECK(split("[[1,2], [3,4]]", NULL, 0) == 2);
    CHECK(split("[[[1,2,3]]]", NULL, 0) == 1);
    CHECK(split(" [ ] ", NULL, 0) == 0);
    CHECK(split("42", NULL, 0) == 1);
    CHECK(split("\"str\\u00e9\\n\"", NULL, 0) == 1);
    CHECK(split("[true,false,null,-0.5e+3,\"x\"]", NULL, 0) == 5);
}

static void test_malformed(void)
{
    const char *bad[] = {"", "   ", "{", "[1,2", "[1,]", "{\"a\"}", "{\"a\":1,}", "01", "1.",
                         "-", "\"unterminated", "\"bad\\q\"", "tru", "[1] [2]", "{} x",
                         "\"ctl\x01\"", "+1", ".5", "[\"\\u12\"]"};
    for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++)
        CHECK(split(bad[i], NULL, 0) == -1);
    char deep[2 * SL_DS_JSON_DEPTH_MAX + 8];
    size_t n = 0;
    for (int i = 0; i < SL_DS_JSON_DEPTH_MAX + 2; i++)
        deep[n++] = '[';
    for (int i = 0; i < SL_DS_JSON_DEPTH_MAX + 2; i++)
        deep[n++] = ']';
    CHECK(sl_ds_json_split((const uint8_t *)deep, n, NULL, 0) == -1);
}

static void test_spans(void)
{
    const char *s = "[ {\"a\":[1, 2]} ,\"x\",3 ]";
    sl_ds_span_t sp[4];
    CHECK(split(s, sp, 4) == 3);
    CHECK(sp[0].len == 12 && memcmp(s + sp[0].off, "{\"a\":[1, 2]}", 12) == 0);
    CHECK(sp[1].len == 3 && memcmp(s + sp[1].off, "\"x\"", 3) == 0);
    CHECK(sp[2].len == 1 && s[sp[2].off] == '3');
    const char *one = "  {\"k\":\"v\"}\n";
    CHECK(split(one, sp, 4) == 1);
    CHECK(sp[0].off == 2 && sp[0].len == 9);
}

static void test_base64(void)
{
    const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    const char *want[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    char out[16];
    for (size_t i = 0; i < SL_ARRAY_LEN(in); i++) {
        size_t n = sl_ds_b64_encode((const uint8_t *)in[i], strlen(in[i]), out);
        CHECK(n == sl_ds_b64_len(strlen(in[i])));
        CHECK(n == strlen(want[i]) && memcmp(out, want[i], n) == 0);
    }
    const uint8_t bin[] = {0, 255, 13, 10, 0x80};
    CHECK(sl_ds_b64_encode(bin, sizeof bin, out) == 8 && memcmp(out, "AP8NCoA=", 8) == 0);
}

int main(void)
{
    test_counts();
    test_malformed();
    test_spans();
    test_base64();
    printf("ds_json_test: ok\n");
    return 0;
}
