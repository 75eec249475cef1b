/*
 * SSE encoder. See sse.h.
 */
#include "net/sse.h"

#include <stdio.h>
#include <string.h>

#include "runtime/base.h"
#include "runtime/limits.h"

const char sl_sse_keepalive[] = ": keepalive\n\n";
_Static_assert(sizeof(sl_sse_keepalive) - 1 == SL_SSE_KEEPALIVE_LEN, "keepalive length");

bool sl_sse_utf8_valid(const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = p[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t need;
        uint32_t cp;
        if (c >= 0xC2 && c <= 0xDF) {
            need = 1;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (i + need >= n)
            return false; /* truncated sequence */
        for (size_t k = 1; k <= need; k++) {
            if ((p[i + k] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (p[i + k] & 0x3F);
        }
        if ((need == 2 && cp < 0x800) || (need == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += need + 1;
    }
    return true;
}

size_t sl_sse_encoded_max(size_t type_len, size_t data_len)
{
    /* id + event + comment lines, then either data lines (worst case every
     * byte a line break: "data: \n" per byte) or base64. */
    size_t lines = 4 + 24 + 8 + type_len + 1 + 26;
    size_t text = 7 * (data_len + 1);
    size_t b64 = 7 + (data_len + 2) / 3 * 4;
    return lines + (text > b64 ? text : b64) + 2;
}

size_t sl_sse_encoded_bound(size_t data_max)
{
    /* "id: " + 20 digits + "\n", the base64 comment, "event: " type "\n",
     * one "data: " line, the blank line. */
    return 25 + 26 + 7 + SL_EVENT_TYPE_MAX + 1 + 6 + (data_max + 2) / 3 * 4 + 1 + 1;
}

size_t sl_sse_encoded_size(uint64_t seq, size_t type_len, const uint8_t *data, size_t data_len)
{
    char idline[32];
    size_t n = (size_t)snprintf(idline, sizeof idline, "id: %llu\n", (unsigned long long)seq);
    n += 7 + type_len + 1 + 1; /* "event: " type "\n" ... final "\n" */
    if (!sl_sse_utf8_valid(data, data_len))
        return n + 26 + 6 + (data_len + 2) / 3 * 4 + 1;
    /* One "data: " line per break (CRLF is one break); break bytes vanish. */
    size_t lines = 1, break_bytes = 0;
    for (size_t i = 0; i < data_len; i++) {
        if (data[i] != '\n' && data[i] != '\r')
            continue;
        break_bytes++;
        if (data[i] == '\r' && i + 1 < data_len && data[i + 1] == '\n') {
            break_bytes++;
            i++;
        }
        lines++;
    }
    return n + lines * 7 + data_len - break_bytes;
}

static size_t put(uint8_t *out, size_t o, const void *s, size_t n)
{
    memcpy(out + o, s, n);
    return o + n;
}

static size_t put_text_data(uint8_t *out, size_t o, const uint8_t *d, size_t n)
{
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        bool end = i == n;
        if (!end && d[i] != '\n' && d[i] != '\r')
            continue;
        o = put(out, o, "data: ", 6);
        o = put(out, o, d + start, i - start);
        out[o++] = '\n';
        if (!end && d[i] == '\r' && i + 1 < n && d[i + 1] == '\n')
            i++; /* CRLF is one break */
        start = i + 1;
    }
    return o;
}

static size_t put_base64(uint8_t *out, size_t o, const uint8_t *d, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    o = put(out, o, "data: ", 6);
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)d[i] << 16 | (uint32_t)d[i + 1] << 8 | d[i + 2];
        out[o++] = (uint8_t)tab[v >> 18];
        out[o++] = (uint8_t)tab[(v >> 12) & 63];
        out[o++] = (uint8_t)tab[(v >> 6) & 63];
        out[o++] = (uint8_t)tab[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)d[i] << 16;
        out[o++] = (uint8_t)tab[v >> 18];
        out[o++] = (uint8_t)tab[(v >> 12) & 63];
        out[o++] = '=';
        out[o++] = '=';
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)d[i] << 16 | (uint32_t)d[i + 1] << 8;
        out[o++] = (uint8_t)tab[v >> 18];
        out[o++] = (uint8_t)tab[(v >> 12) & 63];
        out[o++] = (uint8_t)tab[(v >> 6) & 63];
        out[o++] = '=';
    }
    out[o++] = '\n';
    return o;
}

size_t sl_sse_encode(uint8_t *out, size_t cap, uint64_t seq, const char *type, size_t type_len,
                     const uint8_t *data, size_t data_len)
{
    /* Exact-size buffers (the ring) pay one extra scan to prove the bound. */
    sl_assert(cap >= sl_sse_encoded_max(type_len, data_len) ||
              cap >= sl_sse_encoded_size(seq, type_len, data, data_len));
    char idline[32];
    int n = snprintf(idline, sizeof idline, "id: %llu\n", (unsigned long long)seq);
    size_t o = put(out, 0, idline, (size_t)n);
    bool text = sl_sse_utf8_valid(data, data_len);
    if (!text)
        o = put(out, o, ": sluice-encoding: base64\n", 26);
    o = put(out, o, "event: ", 7);
    o = put(out, o, type, type_len);
    out[o++] = '\n';
    o = text ? put_text_data(out, o, data, data_len) : put_base64(out, o, data, data_len);
    out[o++] = '\n';
    return o;
}

size_t sl_sse_encode_gap(uint8_t *out, size_t cap, uint64_t from, uint64_t to)
{
    sl_assert(cap >= 96);
    int n = snprintf((char *)out, cap, "event: sluice.gap\ndata: {\"from\":%llu,\"to\":%llu}\n\n",
                     (unsigned long long)from, (unsigned long long)to);
    return (size_t)n;
}
