/*
 * SSE encoder tests: exact wire bytes for text, multi-line (LF, CRLF, lone
 * CR), empty data, non-UTF-8 (base64 with the encoding comment), UTF-8
 * validation edge cases and the gap notice.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/sse.h"

#include "tests/check.h"

static void expect_n(uint64_t seq, const char *type, const void *data, size_t n,
                     const char *want, size_t want_len)
{
    size_t cap = sl_sse_encoded_max(strlen(type), n);
    uint8_t *out = malloc(cap);
    size_t got = sl_sse_encode(out, cap, seq, type, strlen(type), data, n);
    CHECK(got == sl_sse_encoded_size(seq, strlen(type), data, n));
    if (got != want_len || memcmp(out, want, got) != 0) {
        fprintf(stderr, "want [%s]\ngot  [%.*s]\n", want, (int)got, (char *)out);
        exit(1);
    }
    free(out);
}

static void expect(uint64_t seq, const char *type, const void *data, size_t n, const char *want)
{
    expect_n(seq, type, data, n, want, strlen(want));
}

static void test_sse_text_lines(void)
{
    expect(1, "message", "hello", 5, "id: 1\nevent: message\ndata: hello\n\n");
    expect(42, "tok", "a\nb", 3, "id: 42\nevent: tok\ndata: a\ndata: b\n\n");
    expect(7, "t", "a\r\nb\rc\n", 7, "id: 7\nevent: t\ndata: a\ndata: b\ndata: c\ndata: \n\n");
    expect(3, "t", "", 0, "id: 3\nevent: t\ndata: \n\n");
    expect(18446744073709551615ull, "x", "\n", 1,
           "id: 18446744073709551615\nevent: x\ndata: \ndata: \n\n");
    /* NUL inside UTF-8 text stays text. */
    const char nul[] = "id: 5\nevent: t\ndata: a\0b\n\n";
    expect_n(5, "t", "a\0b", 3, nul, sizeof nul - 1);
}

static void test_sse_binary_base64(void)
{
    const uint8_t bin[] = {0xff, 0x00, 0x80};
    expect(9, "blob", bin, 3, "id: 9\n: sluice-encoding: base64\nevent: blob\ndata: /wCA\n\n");
    const uint8_t bin2[] = {0xc3}; /* truncated 2-byte sequence */
    expect(10, "b", bin2, 1, "id: 10\n: sluice-encoding: base64\nevent: b\ndata: ww==\n\n");
    const uint8_t bin3[] = {0xc3, 0x28};
    expect(11, "b", bin3, 2, "id: 11\n: sluice-encoding: base64\nevent: b\ndata: wyg=\n\n");
}

static void test_sse_utf8_rules(void)
{
    CHECK(sl_sse_utf8_valid((const uint8_t *)"h\xc3\xa9llo", 6));
    CHECK(sl_sse_utf8_valid((const uint8_t *)"\xf0\x9f\x98\x80", 4));   /* emoji */
    CHECK(!sl_sse_utf8_valid((const uint8_t *)"\xc0\xaf", 2));          /* overlong */
    CHECK(!sl_sse_utf8_valid((const uint8_t *)"\xed\xa0\x80", 3));      /* surrogate */
    CHECK(!sl_sse_utf8_valid((const uint8_t *)"\xf4\x90\x80\x80", 4));  /* > U+10FFFF */
    CHECK(!sl_sse_utf8_valid((const uint8_t *)"\xe2\x82", 2));          /* truncated */
    CHECK(!sl_sse_utf8_valid((const uint8_t *)"\xe0\x80\x80", 3));      /* overlong 3 */
    CHECK(sl_sse_utf8_valid((const uint8_t *)"", 0));
}

static void test_sse_gap(void)
{
    uint8_t out[96];
    size_t n = sl_sse_encode_gap(out, sizeof out, 5, 9);
    const char *want = "event: sluice.gap\ndata: {\"from\":5,\"to\":9}\n\n";
    CHECK(n == strlen(want) && memcmp(out, want, n) == 0);
}

static void test_sse_worst_case_bound(void)
{
    uint8_t data[300];
    memset(data, '\n', sizeof data);
    size_t cap = sl_sse_encoded_max(64, sizeof data);
    uint8_t *out = malloc(cap);
    char type[65];
    memset(type, 'x', 64);
    type[64] = 0;
    size_t n = sl_sse_encode(out, cap, 1, type, 64, data, sizeof data);
    CHECK(n <= cap);
    free(out);
}

/* The bound on one event's SSE form: a binary event of data_max bytes with
 * the longest type and seq fits exactly; text made of line breaks (7x on
 * the wire) does not, even at a fraction of data_max. */
static void test_sse_encoded_bound(void)
{
    enum { MAX = 3000 };
    uint8_t *bin = malloc(MAX);
    for (size_t i = 0; i < MAX; i++)
        bin[i] = (uint8_t)(0x80 | (i & 0x3f)); /* continuation bytes: not UTF-8 */
    size_t bound = sl_sse_encoded_bound(MAX);
    CHECK(sl_sse_encoded_size(UINT64_MAX, 64, bin, MAX) == bound);
    CHECK(sl_sse_encoded_size(UINT64_MAX, 64, bin, MAX - 3) < bound);
    uint8_t *breaks = malloc(MAX);
    memset(breaks, '\n', MAX);
    CHECK(sl_sse_encoded_size(1, 7, breaks, MAX / 4) > bound);
    CHECK(sl_sse_encoded_size(1, 7, breaks, MAX / 8) <= bound);
    memset(breaks, 'a', MAX);
    CHECK(sl_sse_encoded_size(UINT64_MAX, 64, breaks, MAX) < bound);
    free(bin);
    free(breaks);
}

int main(void)
{
    test_sse_text_lines();
    test_sse_binary_base64();
    test_sse_utf8_rules();
    test_sse_gap();
    test_sse_worst_case_bound();
    test_sse_encoded_bound();
    printf("sse_test: ok\n");
    return 0;
}
