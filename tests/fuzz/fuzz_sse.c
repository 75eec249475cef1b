/*
 * SSE encode -> parse round trip: net/sse's encoder against a reference
 * parser written from the WHATWG HTML "Server-sent events" parsing rules
 * (not from sse.c), so a disagreement between the two is a finding.
 *
 * Input: byte 0 is the type length (types the API accepts; an invalid one
 * falls back to "message"), bytes 1..8 the seq, then the type, then the
 * data. The reference parser splits lines on CRLF, lone LF and lone CR,
 * ignores comments (but notes `: sluice-encoding: base64`), splits
 * "field: value" at the first colon dropping one leading space, appends
 * data values with LF, and dispatches on a blank line with the trailing LF
 * removed (an empty data buffer dispatches nothing). Exactly one event
 * must come out, with id = seq, event = type and data = the input with
 * its line breaks as LF, or the base64 of the input when it is not UTF-8
 * (API.md), and nothing after it.
 */
#include <string.h>

#include "actors/conn_int.h"
#include "net/sse.h"

#include "tests/base64.h"
#include "tests/fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct sse_event {
    uint8_t *data; /* the data buffer, grown as lines arrive */
    size_t data_len, data_cap;
    char type[80];
    size_t type_len;
    char id[32];
    size_t id_len;
    bool id_set;
    bool base64;
    int dispatched;
    uint8_t *got; /* data of the dispatched event */
    size_t got_len;
} sse_event_t;

static void buf_add(sse_event_t *ev, const uint8_t *p, size_t n)
{
    if (ev->data_len + n > ev->data_cap) {
        ev->data_cap = (ev->data_len + n) * 2 + 16;
        ev->data = realloc(ev->data, ev->data_cap);
        FZ_CHECK(ev->data != NULL);
    }
    if (n > 0)
        memcpy(ev->data + ev->data_len, p, n);
    ev->data_len += n;
}

static void dispatch(sse_event_t *ev)
{
    if (ev->data_len == 0) {
        ev->type_len = 0; /* WHATWG: empty data buffer, nothing dispatched */
        return;
    }
    ev->data_len--; /* the trailing LF */
    ev->dispatched++;
    free(ev->got);
    ev->got = malloc(ev->data_len + 1);
    FZ_CHECK(ev->got != NULL);
    memcpy(ev->got, ev->data, ev->data_len);
    ev->got_len = ev->data_len;
    ev->data_len = 0;
}

static void field(sse_event_t *ev, const uint8_t *line, size_t n)
{
    if (n == 0) {
        dispatch(ev);
        return;
    }
    if (line[0] == ':') {
        static const char b64[] = ": sluice-encoding: base64";
        if (n == sizeof b64 - 1 && memcmp(line, b64, n) == 0)
            ev->base64 = true;
        return;
    }
    const uint8_t *colon = memchr(line, ':', n);
    size_t name_len = colon ? (size_t)(colon - line) : n;
    const uint8_t *v = colon ? colon + 1 : line + n;
    size_t vn = colon ? n - name_len - 1 : 0;
    if (vn > 0 && v[0] == ' ')
        v++, vn--;
    if (name_len == 4 && memcmp(line, "data", 4) == 0) {
        buf_add(ev, v, vn);
        buf_add(ev, (const uint8_t *)"\n", 1);
    } else if (name_len == 5 && memcmp(line, "event", 5) == 0) {
        FZ_CHECK(vn < sizeof ev->type);
        memcpy(ev->type, v, vn);
        ev->type_len = vn;
    } else if (name_len == 2 && memcmp(line, "id", 2) == 0) {
        if (memchr(v, '\0', vn) == NULL) {
            FZ_CHECK(vn < sizeof ev->id);
            memcpy(ev->id, v, vn);
            ev->id_len = vn;
            ev->id_set = true;
        }
    }
    /* retry and unknown fields: ignored */
}

/* Splits p[0..n) into lines; bytes after the last line break are an
 * unfinished line, which a client holds (they must not exist here). */
static size_t parse(sse_event_t *ev, const uint8_t *p, size_t n)
{
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] != '\n' && p[i] != '\r')
            continue;
        field(ev, p + start, i - start);
        if (p[i] == '\r' && i + 1 < n && p[i + 1] == '\n')
            i++;
        start = i + 1;
    }
    return n - start;
}


/* The data a client must see: line breaks (CRLF, CR, LF) become LF. */
static size_t expected_text(const uint8_t *d, size_t n, uint8_t *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (d[i] == '\r') {
            out[o++] = '\n';
            if (i + 1 < n && d[i + 1] == '\n')
                i++;
        } else {
            out[o++] = d[i];
        }
    }
    return o;
}

/* A reference UTF-8 check (RFC 3629 table), against sl_sse_utf8_valid. */
static bool utf8_ok(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n;) {
        uint8_t c = p[i];
        size_t k;
        uint8_t lo = 0x80, hi = 0xBF;
        if (c <= 0x7F) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            k = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            k = 2;
            lo = c == 0xE0 ? 0xA0 : 0x80;
            hi = c == 0xED ? 0x9F : 0xBF;
        } else if (c >= 0xF0 && c <= 0xF4) {
            k = 3;
            lo = c == 0xF0 ? 0x90 : 0x80;
            hi = c == 0xF4 ? 0x8F : 0xBF;
        } else {
            return false;
        }
        if (n - i <= k)
            return false;
        if (p[i + 1] < lo || p[i + 1] > hi)
            return false;
        for (size_t j = 2; j <= k; j++) {
            if (p[i + j] < 0x80 || p[i + j] > 0xBF)
                return false;
        }
        i += k + 1;
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 9)
        return 0;
    size_t tl = data[0] % (SL_EVENT_TYPE_MAX + 1);
    uint64_t seq = 0;
    for (int i = 0; i < 8; i++)
        seq = seq << 8 | data[1 + i];
    data += 9, size -= 9;
    const char *type = "message";
    size_t type_len = 7;
    if (tl <= size && sl_conn__type_valid((const char *)data, tl)) {
        type = (const char *)data;
        type_len = tl;
        data += tl, size -= tl;
    }
    bool text = sl_sse_utf8_valid(data, size);
    FZ_CHECK(text == utf8_ok(data, size));

    size_t cap = sl_sse_encoded_max(type_len, size);
    uint8_t *out = malloc(cap);
    FZ_CHECK(out != NULL);
    size_t n = sl_sse_encode(out, cap, seq, type, type_len, data, size);
    FZ_CHECK(n <= cap);
    FZ_CHECK(n == sl_sse_encoded_size(seq, type_len, data, size));

    sse_event_t ev;
    memset(&ev, 0, sizeof ev);
    FZ_CHECK(parse(&ev, out, n) == 0); /* the event ends with its blank line */
    FZ_CHECK(ev.dispatched == 1);
    FZ_CHECK(ev.data_len == 0);        /* nothing after the blank line */
    FZ_CHECK(ev.type_len == type_len && memcmp(ev.type, type, type_len) == 0);
    char id[32];
    int idn = snprintf(id, sizeof id, "%llu", (unsigned long long)seq);
    FZ_CHECK(ev.id_set && ev.id_len == (size_t)idn && memcmp(ev.id, id, ev.id_len) == 0);
    FZ_CHECK(ev.base64 == !text);
    uint8_t *want = malloc(size / 3 * 4 + 8);
    FZ_CHECK(want != NULL);
    size_t wn = text ? expected_text(data, size, want) : sl_test_base64(data, size, (char *)want, false);
    FZ_CHECK(ev.got_len == wn);
    FZ_CHECK(wn == 0 || memcmp(ev.got, want, wn) == 0);
    free(want);
    free(ev.got);
    free(ev.data);
    free(out);
    return 0;
}
