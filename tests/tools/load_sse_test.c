/*
 * Tests of sluice-load's SSE parser (tools/load/load_sse.c), its payload
 * codec (load_event.c) and /health parsing (load_target.c). Every stream is
 * also fed in every two-way split and byte by byte, so line endings and
 * fields that straddle chunk boundaries are covered.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/base.h"
#include "tools/load/load_event.h"
#include "tools/load/load_sse.h"
#include "tools/load/load_target.h"

static int failures;

#define CHECK(cond)                                                              \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
            failures++;                                                          \
        }                                                                        \
    } while (0)

/* Dispatched events rendered as "id|in_block|type|data;" for comparison. */
typedef struct seen {
    char text[4096];
    size_t len;
} seen_t;

static void collect(const sl_load_sse_event_t *ev, void *ctx)
{
    seen_t *s = ctx;
    int n = snprintf(s->text + s->len, sizeof(s->text) - s->len, "%.*s|%d|%.*s|%.*s;",
                     (int)ev->id_len, ev->id, ev->id_in_block ? 1 : 0, (int)ev->type_len,
                     ev->type, (int)ev->data_len, ev->data);
    if (n > 0)
        s->len += (size_t)n;
}

/* Parses input fed as chunks of at most step bytes, or split once at
 * split (step 0). Returns what was dispatched. */
static int parse(const char *in, size_t len, size_t split, size_t step, seen_t *out)
{
    sl_load_sse_t p;
    memset(out, 0, sizeof(*out));
    if (sl_load_sse_init(&p, 256, collect, out) < 0)
        return -1;
    int rc = 0;
    if (step) {
        for (size_t i = 0; i < len && rc == 0; i += step)
            rc = sl_load_sse_feed(&p, in + i, len - i < step ? len - i : step);
    } else {
        rc = sl_load_sse_feed(&p, in, split);
        if (rc == 0)
            rc = sl_load_sse_feed(&p, in + split, len - split);
    }
    sl_load_sse_deinit(&p);
    return rc;
}

/* Checks the expected rendering for one-shot, every split and 1-byte feeds. */
static void expect_n(const char *in, size_t len, const char *want)
{
    seen_t got;
    for (size_t split = 0; split <= len; split++) {
        CHECK(parse(in, len, split, 0, &got) == 0);
        if (strcmp(got.text, want) != 0) {
            fprintf(stderr, "split %zu of %s\n  got  %s\n  want %s\n", split, in, got.text, want);
            failures++;
            return;
        }
    }
    CHECK(parse(in, len, 0, 1, &got) == 0);
    CHECK(strcmp(got.text, want) == 0);
}

static void expect(const char *in, const char *want)
{
    expect_n(in, strlen(in), want);
}

static void test_load_sse_sluice_block(void)
{
    expect("id: 7\nevent: message\ndata: hello\n\n", "7|1|message|hello;");
    expect("id: 1\nevent: t\ndata: a\n\nid: 2\nevent: t\ndata: b\n\n", "1|1|t|a;2|1|t|b;");
}

static void test_load_sse_line_endings(void)
{
    const char *want = "3|1|x|a\nb;";
    expect("id: 3\r\nevent: x\r\ndata: a\r\ndata: b\r\n\r\n", want);
    expect("id: 3\revent: x\rdata: a\rdata: b\r\r", want);
    expect("id: 3\nevent: x\r\ndata: a\rdata: b\n\r\n", want);
}

static void test_load_sse_fields(void)
{
    /* Comments ignored; no space after the colon; only one space dropped. */
    expect(": keepalive\n\ndata:x\n\n", "|0|message|x;");
    expect("data:  two\n\n", "|0|message| two;");
    /* A field with no colon has an empty value; empty data still dispatches. */
    expect("data\n\n", "|0|message|;");
    /* No data: nothing dispatched, and the type does not leak onward. */
    expect("event: lost\n\ndata: d\n\n", "|0|message|d;");
    /* The id persists across events; id_in_block says which carried one. */
    expect("id: 9\ndata: a\n\ndata: b\n\n", "9|1|message|a;9|0|message|b;");
    /* An id with NUL is ignored; retry and unknown fields too. */
    static const char nul[] = "id: 4\n\ndata: a\nid: x\0y\nretry: 10\nfoo: bar\n\n";
    expect_n(nul, sizeof(nul) - 1, "4|0|message|a;");
    /* A trailing block without a blank line is not dispatched. */
    expect("data: done\n\ndata: partial\n", "|0|message|done;");
}

static void test_load_sse_bom(void)
{
    expect("\xEF\xBB\xBF" "data: b\n\n", "|0|message|b;");
}

static void test_load_sse_limit(void)
{
    sl_load_sse_t p;
    seen_t got = {0};
    CHECK(sl_load_sse_init(&p, 16, collect, &got) == 0);
    CHECK(sl_load_sse_feed(&p, "data: 0123456789\n", 17) == 0);
    CHECK(sl_load_sse_feed(&p, "data: 0123456789\n", 17) == SL_ETOOBIG);
    sl_load_sse_deinit(&p);
    CHECK(sl_load_sse_init(&p, 16, collect, &got) == 0);
    CHECK(sl_load_sse_feed(&p, "data: 0123456789abcdef", 22) == SL_ETOOBIG);
    sl_load_sse_deinit(&p);
}

static void test_load_event_roundtrip(void)
{
    char buf[128];
    sl_load_event_t ev = {.intended_ns = 18446744073709551615ull, .publisher = 4294967295u,
                          .n = 18446744073709551615ull, .send_delay_ns = 18446744073709551615ull};
    CHECK(sl_load_event_format(buf, SL_LOAD_EVENT_HEAD_MAX, &ev) == SL_LOAD_EVENT_HEAD_MAX);
    sl_load_event_t back;
    CHECK(sl_load_event_parse(buf, SL_LOAD_EVENT_HEAD_MAX, &back) == 0);
    CHECK(back.intended_ns == ev.intended_ns && back.publisher == ev.publisher &&
          back.n == ev.n && back.send_delay_ns == ev.send_delay_ns);
    /* A header that does not fit is refused, not cut. */
    CHECK(sl_load_event_format(buf, SL_LOAD_EVENT_MIN_BYTES, &ev) == SL_ETOOBIG);
    /* A realistic header (16-digit clock) fits the smallest size. */
    sl_load_event_t real = {.intended_ns = 9999999999999999ull, .publisher = 99, .n = 9999999,
                            .send_delay_ns = 999999};
    CHECK(sl_load_event_format(buf, SL_LOAD_EVENT_MIN_BYTES, &real) == SL_LOAD_EVENT_MIN_BYTES);
    sl_load_event_t small = {.intended_ns = 5, .publisher = 1, .n = 2, .send_delay_ns = 7};
    CHECK(sl_load_event_format(buf, 100, &small) == 100);
    CHECK(memcmp(buf, "t=5 p=1 n=2 s=7 ....", 20) == 0);
    CHECK(buf[99] == '.');
    CHECK(sl_load_event_parse(buf, 100, &back) == 0 && back.intended_ns == 5 && back.n == 2 &&
          back.send_delay_ns == 7);
    /* Without s= (an older payload) the send delay reads as 0. */
    CHECK(sl_load_event_parse("t=5 p=1 n=2 ..", 14, &back) == 0 && back.send_delay_ns == 0);
    CHECK(sl_load_event_parse("t=5 p=1 n=", 10, &back) == SL_EPROTO);
    CHECK(sl_load_event_parse("hello world", 11, &back) == SL_EPROTO);
    CHECK(sl_load_event_parse("t=99999999999999999999 p=1 n=1 ", 31, &back) == SL_EPROTO);
}

static void test_load_health_parse(void)
{
    sl_load_health_t h;
    const char *j = "{\"uptime_s\":3,\"rss_bytes\": 1048576,\"open_fds\":12,\"connections\":5,"
                    "\"streams\":4,\"reactors\":[{\"loop_lag_ms_max\":0.5},"
                    "{\"loop_lag_ms_max\" : 7.25}]}";
    CHECK(sl_load_health_parse(j, &h) == 0);
    CHECK(h.rss_bytes == 1048576 && h.open_fds == 12 && h.connections == 5 && h.streams == 4);
    CHECK(h.loop_lag_ms_max == 7.25);
    CHECK(sl_load_health_parse("{\"ok\":true}", &h) == SL_EPROTO);
    CHECK(h.rss_bytes == -1 && h.loop_lag_ms_max == -1);
}

int main(void)
{
    test_load_sse_sluice_block();
    test_load_sse_line_endings();
    test_load_sse_fields();
    test_load_sse_bom();
    test_load_sse_limit();
    test_load_event_roundtrip();
    test_load_health_parse();
    if (failures) {
        fprintf(stderr, "load_sse_test: %d checks failed\n", failures);
        return 1;
    }
    printf("load_sse_test: ok\n");
    return 0;
}
