/*
 * JSON validation / flattening and base64 for the Durable Streams face.
 * See ds_json.h.
 */
#include "actors/ds_json.h"

typedef struct scan {
    const uint8_t *p;
    size_t n, i;
} scan_t;

static void skip_ws(scan_t *s)
{
    while (s->i < s->n && (s->p[s->i] == ' ' || s->p[s->i] == '\t' || s->p[s->i] == '\n' ||
                           s->p[s->i] == '\r'))
        s->i++;
}

static bool lit(scan_t *s, const char *w, size_t len)
{
    if (s->n - s->i < len)
        return false;
    for (size_t k = 0; k < len; k++)
        if (s->p[s->i + k] != (uint8_t)w[k])
            return false;
    s->i += len;
    return true;
}

static bool is_digit(uint8_t c) { return c >= '0' && c <= '9'; }

static bool number(scan_t *s)
{
    if (s->i < s->n && s->p[s->i] == '-')
        s->i++;
    if (s->i >= s->n)
        return false;
    if (s->p[s->i] == '0') {
        s->i++;
    } else if (is_digit(s->p[s->i])) {
        while (s->i < s->n && is_digit(s->p[s->i]))
            s->i++;
    } else {
        return false;
    }
    if (s->i < s->n && s->p[s->i] == '.') {
        s->i++;
        if (s->i >= s->n || !is_digit(s->p[s->i]))
            return false;
        while (s->i < s->n && is_digit(s->p[s->i]))
            s->i++;
    }
    if (s->i < s->n && (s->p[s->i] == 'e' || s->p[s->i] == 'E')) {
        s->i++;
        if (s->i < s->n && (s->p[s->i] == '+' || s->p[s->i] == '-'))
            s->i++;
        if (s->i >= s->n || !is_digit(s->p[s->i]))
            return false;
        while (s->i < s->n && is_digit(s->p[s->i]))
            s->i++;
    }
    return true;
}

static bool is_hex(uint8_t c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* A string; UTF-8 is passed through (the bytes are stored as sent). */
static bool string(scan_t *s)
{
    s->i++; /* opening quote */
    while (s->i < s->n) {
        uint8_t c = s->p[s->i++];
        if (c == '"')
            return true;
        if (c < 0x20)
            return false;
        if (c == '\\') {
            if (s->i >= s->n)
                return false;
            uint8_t e = s->p[s->i++];
            if (e == 'u') {
                if (s->n - s->i < 4)
                    return false;
                for (int k = 0; k < 4; k++)
                    if (!is_hex(s->p[s->i + (size_t)k]))
                        return false;
                s->i += 4;
            } else if (e != '"' && e != '\\' && e != '/' && e != 'b' && e != 'f' && e != 'n' &&
                       e != 'r' && e != 't') {
                return false;
            }
        }
    }
    return false;
}

static bool value(scan_t *s, int depth);

/* An array or object body after its opening bracket. */
static bool container(scan_t *s, int depth, bool object)
{
    uint8_t close = object ? '}' : ']';
    s->i++;
    skip_ws(s);
    if (s->i < s->n && s->p[s->i] == close) {
        s->i++;
        return true;
    }
    for (;;) {
        skip_ws(s);
        if (object) {
            if (s->i >= s->n || s->p[s->i] != '"' || !string(s))
                return false;
            skip_ws(s);
            if (s->i >= s->n || s->p[s->i] != ':')
                return false;
            s->i++;
            skip_ws(s);
        }
        if (!value(s, depth + 1))
            return false;
        skip_ws(s);
        if (s->i >= s->n)
            return false;
        if (s->p[s->i] == ',') {
            s->i++;
            continue;
        }
        if (s->p[s->i] != close)
            return false;
        s->i++;
        return true;
    }
}

static bool value(scan_t *s, int depth)
{
    if (depth > SL_DS_JSON_DEPTH_MAX || s->i >= s->n)
        return false;
    switch (s->p[s->i]) {
    case '{':
        return container(s, depth, true);
    case '[':
        return container(s, depth, false);
    case '"':
        return string(s);
    case 't':
        return lit(s, "true", 4);
    case 'f':
        return lit(s, "false", 5);
    case 'n':
        return lit(s, "null", 4);
    default:
        return number(s);
    }
}

int sl_ds_json_split(const uint8_t *p, size_t n, sl_ds_span_t *spans, uint32_t cap)
{
    scan_t s = {p, n, 0};
    skip_ws(&s);
    if (s.i >= n)
        return -1;
    if (p[s.i] != '[') {
        size_t start = s.i;
        if (!value(&s, 0))
            return -1;
        size_t end = s.i;
        skip_ws(&s);
        if (s.i != n)
            return -1;
        if (spans && cap > 0)
            spans[0] = (sl_ds_span_t){(uint32_t)start, (uint32_t)(end - start)};
        return 1;
    }
    /* A top-level array: each element is a message. */
    int count = 0;
    s.i++;
    skip_ws(&s);
    if (s.i < n && p[s.i] == ']') {
        s.i++;
    } else {
        for (;;) {
            skip_ws(&s);
            size_t start = s.i;
            if (!value(&s, 1))
                return -1;
            if (spans && (uint32_t)count < cap)
                spans[count] = (sl_ds_span_t){(uint32_t)start, (uint32_t)(s.i - start)};
            if (count == INT32_MAX - 1)
                return -1;
            count++;
            skip_ws(&s);
            if (s.i >= n)
                return -1;
            if (p[s.i] == ',') {
                s.i++;
                continue;
            }
            if (p[s.i] != ']')
                return -1;
            s.i++;
            break;
        }
    }
    skip_ws(&s);
    return s.i == n ? count : -1;
}

size_t sl_ds_b64_len(size_t n) { return (n + 2) / 3 * 4; }

size_t sl_ds_b64_encode(const uint8_t *in, size_t n, char *out)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = tab[v >> 18];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = tab[(v >> 6) & 63];
        out[o++] = tab[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = tab[v >> 18];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = '=';
        out[o++] = '=';
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = tab[v >> 18];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = tab[(v >> 6) & 63];
        out[o++] = '=';
    }
    return o;
}
