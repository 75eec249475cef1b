/*
 * NDJSON event lines and string escaping. See json.h.
 */
#include "actors/json.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/base.h"

typedef struct cur {
    const char *p, *end;
} cur_t;

static void skip_ws(cur_t *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\r' || *c->p == '\n'))
        c->p++;
}

static int hex4(const char *p, uint32_t *v)
{
    *v = 0;
    for (int i = 0; i < 4; i++) {
        char ch = p[i];
        uint32_t d;
        if (ch >= '0' && ch <= '9') d = (uint32_t)(ch - '0');
        else if (ch >= 'a' && ch <= 'f') d = (uint32_t)(ch - 'a' + 10);
        else if (ch >= 'A' && ch <= 'F') d = (uint32_t)(ch - 'A' + 10);
        else return -1;
        *v = *v << 4 | d;
    }
    return 0;
}

static size_t put_utf8(uint8_t *o, uint32_t cp)
{
    if (cp < 0x80) { o[0] = (uint8_t)cp; return 1; }
    if (cp < 0x800) { o[0] = (uint8_t)(0xC0 | cp >> 6); o[1] = (uint8_t)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (uint8_t)(0xE0 | cp >> 12); o[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (uint8_t)(0x80 | (cp & 0x3F)); return 3;
    }
    o[0] = (uint8_t)(0xF0 | cp >> 18); o[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F)); o[3] = (uint8_t)(0x80 | (cp & 0x3F)); return 4;
}

/* \uXXXX (and a following low surrogate) at c->p (after the 'u'). */
static int unicode_escape(cur_t *c, uint32_t *cp)
{
    if (c->end - c->p < 4 || hex4(c->p, cp) != 0)
        return SL_EINVAL;
    c->p += 4;
    if (*cp >= 0xDC00 && *cp <= 0xDFFF)
        return SL_EINVAL;
    if (*cp >= 0xD800 && *cp <= 0xDBFF) {
        uint32_t lo;
        if (c->end - c->p < 6 || c->p[0] != '\\' || c->p[1] != 'u' || hex4(c->p + 2, &lo) != 0 ||
            lo < 0xDC00 || lo > 0xDFFF)
            return SL_EINVAL;
        c->p += 6;
        *cp = 0x10000 + ((*cp - 0xD800) << 10) + (lo - 0xDC00);
    }
    return 0;
}

/* Decodes a string at c->p (on the opening quote) into out[*o..cap). */
static int string(cur_t *c, uint8_t *out, size_t cap, size_t *o)
{
    if (c->p >= c->end || *c->p != '"')
        return SL_EINVAL;
    c->p++;
    while (c->p < c->end) {
        unsigned char ch = (unsigned char)*c->p++;
        if (ch == '"')
            return 0;
        if (ch < 0x20)
            return SL_EINVAL;
        if (*o + 4 > cap)
            return SL_ETOOBIG;
        if (ch != '\\') {
            out[(*o)++] = ch;
            continue;
        }
        if (c->p >= c->end)
            return SL_EINVAL;
        char e = *c->p++;
        static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
        const char *k = strchr(from, e);
        if (e && k) {
            out[(*o)++] = (uint8_t)to[k - from];
        } else if (e == 'u') {
            uint32_t cp;
            int rc = unicode_escape(c, &cp);
            if (rc)
                return rc;
            *o += put_utf8(out + *o, cp);
        } else {
            return SL_EINVAL;
        }
    }
    return SL_EINVAL; /* unterminated */
}

static bool key_is(const char *p, size_t n, const char *k)
{
    return n == strlen(k) && memcmp(p, k, n) == 0;
}

int sl_json_event_line(const char *line, size_t len, uint8_t *out, size_t cap,
                       uint32_t *type_len, uint32_t *data_off, uint32_t *data_len)
{
    cur_t c = {line, line + len};
    bool have_type = false, have_data = false;
    /* Type first in out, then data: decode into scratch positions. Data may
     * precede type in the line, so decode each value into its place at the
     * end of what has been written and move type first at the end. */
    size_t o = 0, t_off = 0, t_len = 0, d_off = 0, d_len = 0;
    skip_ws(&c);
    if (c.p >= c.end || *c.p++ != '{')
        return SL_EINVAL;
    skip_ws(&c);
    if (c.p < c.end && *c.p == '}')
        return SL_EINVAL; /* no data */
    for (;;) {
        skip_ws(&c);
        uint8_t keybuf[16];
        size_t klen = 0;
        int rc = string(&c, keybuf, sizeof keybuf, &klen);
        if (rc)
            return SL_EINVAL;
        skip_ws(&c);
        if (c.p >= c.end || *c.p++ != ':')
            return SL_EINVAL;
        skip_ws(&c);
        bool is_type = key_is((char *)keybuf, klen, "type");
        if ((!is_type && !key_is((char *)keybuf, klen, "data")) || (is_type ? have_type : have_data))
            return SL_EINVAL;
        size_t start = o;
        if ((rc = string(&c, out, cap, &o)) != 0)
            return rc;
        if (is_type) { have_type = true; t_off = start; t_len = o - start; }
        else { have_data = true; d_off = start; d_len = o - start; }
        skip_ws(&c);
        if (c.p < c.end && *c.p == ',') { c.p++; continue; }
        if (c.p < c.end && *c.p == '}') { c.p++; break; }
        return SL_EINVAL;
    }
    skip_ws(&c);
    if (c.p != c.end || !have_data)
        return SL_EINVAL;
    if (have_type && t_off > d_off) {
        /* Rotate so type comes first: [data][type] -> [type][data]. */
        uint8_t tmp[64];
        if (t_len > sizeof tmp)
            return SL_EINVAL; /* types are at most 64 bytes */
        memcpy(tmp, out + t_off, t_len);
        memmove(out + t_len, out + d_off, d_len);
        memcpy(out, tmp, t_len);
        d_off = t_len;
    }
    *type_len = have_type ? (uint32_t)t_len : 0;
    *data_off = (uint32_t)d_off;
    *data_len = (uint32_t)d_len;
    return 0;
}

int sl_json_escape(char *out, size_t cap, const char *s, size_t len)
{
    static const char hexd[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (o + 6 >= cap)
            return SL_ETOOBIG;
        if (ch == '"' || ch == '\\') {
            out[o++] = '\\';
            out[o++] = (char)ch;
        } else if (ch < 0x20) {
            memcpy(out + o, "\\u00", 4);
            out[o + 4] = hexd[ch >> 4];
            out[o + 5] = hexd[ch & 15];
            o += 6;
        } else {
            out[o++] = (char)ch;
        }
    }
    out[o] = '\0';
    return (int)o;
}

/* ---- JSON -> msgpack (RPC answers built from the HTTP answers) ---- */

static int to_msgpack(cur_t *c, msgpack_packer *pk, uint32_t depth);

/* A string value: decoded into a scratch buffer as long as the input
 * (escapes never grow), then packed as str. */
static int pack_string(cur_t *c, msgpack_packer *pk)
{
    const char *q = c->p + 1;
    size_t max = 0;
    while (q + max < c->end && q[max] != '"')
        max += q[max] == '\\' ? 2 : 1;
    uint8_t stackbuf[256];
    uint8_t *buf = max + 4 <= sizeof stackbuf ? stackbuf : malloc(max + 4);
    if (!buf)
        return -ENOMEM;
    size_t o = 0;
    int rc = string(c, buf, max + 4, &o);
    if (rc == 0) {
        msgpack_pack_str(pk, o);
        msgpack_pack_str_body(pk, buf, o);
    }
    if (buf != stackbuf)
        free(buf);
    return rc;
}

static int pack_number(cur_t *c, msgpack_packer *pk)
{
    const char *s = c->p;
    bool neg = c->p < c->end && *c->p == '-', frac = false;
    if (neg)
        c->p++;
    while (c->p < c->end && ((*c->p >= '0' && *c->p <= '9') || strchr(".eE+-", *c->p))) {
        frac |= *c->p == '.' || *c->p == 'e' || *c->p == 'E';
        c->p++;
    }
    char tmp[64];
    size_t n = (size_t)(c->p - s);
    if (n == 0 || n >= sizeof tmp || (n == 1 && neg))
        return SL_EINVAL;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    char *end;
    errno = 0;
    if (frac) {
        double d = strtod(tmp, &end);
        if (*end)
            return SL_EINVAL;
        msgpack_pack_double(pk, d);
    } else if (neg) {
        long long v = strtoll(tmp, &end, 10);
        if (*end || errno)
            return SL_EINVAL;
        msgpack_pack_int64(pk, v);
    } else {
        unsigned long long v = strtoull(tmp, &end, 10);
        if (*end || errno)
            return SL_EINVAL;
        msgpack_pack_uint64(pk, v);
    }
    return 0;
}

static bool literal(cur_t *c, const char *lit)
{
    size_t n = strlen(lit);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, lit, n) != 0)
        return false;
    c->p += n;
    return true;
}

/* Counts the members of the array/object at c->p (on its opening
 * bracket) without decoding them: msgpack needs the count up front. */
static uint32_t count_members(const cur_t *c)
{
    uint32_t depth = 0, n = 0;
    bool in_str = false, any = false;
    for (const char *p = c->p; p < c->end; p++) {
        char ch = *p;
        if (in_str) {
            if (ch == '\\')
                p++;
            else if (ch == '"')
                in_str = false;
            continue;
        }
        if (ch == '"')
            in_str = true;
        if (ch == '[' || ch == '{') {
            if (depth++ == 1)
                any = true;
            continue;
        }
        if (ch == ']' || ch == '}') {
            if (--depth == 0)
                return any ? n + 1 : 0;
            continue;
        }
        if (depth == 1 && ch == ',')
            n++;
        if (depth == 1 && ch != ' ' && ch != '\n' && ch != '\t' && ch != '\r')
            any = true;
    }
    return 0;
}

static int pack_container(cur_t *c, msgpack_packer *pk, uint32_t depth, bool obj)
{
    uint32_t n = count_members(c);
    char close = obj ? '}' : ']';
    c->p++;
    if (obj)
        msgpack_pack_map(pk, n);
    else
        msgpack_pack_array(pk, n);
    for (uint32_t i = 0; i < n; i++) {
        skip_ws(c);
        if (obj) {
            int rc = pack_string(c, pk);
            skip_ws(c);
            if (rc || c->p >= c->end || *c->p++ != ':')
                return rc ? rc : SL_EINVAL;
        }
        int rc = to_msgpack(c, pk, depth + 1);
        if (rc)
            return rc;
        skip_ws(c);
        if (c->p >= c->end || *c->p != (i + 1 < n ? ',' : close))
            return SL_EINVAL;
        if (i + 1 < n)
            c->p++;
    }
    skip_ws(c);
    if (c->p >= c->end || *c->p++ != close)
        return SL_EINVAL;
    return 0;
}

static int to_msgpack(cur_t *c, msgpack_packer *pk, uint32_t depth)
{
    if (depth > SL_JSON_DEPTH_MAX)
        return SL_EINVAL;
    skip_ws(c);
    if (c->p >= c->end)
        return SL_EINVAL;
    switch (*c->p) {
    case '{':
        return pack_container(c, pk, depth, true);
    case '[':
        return pack_container(c, pk, depth, false);
    case '"':
        return pack_string(c, pk);
    case 't':
        if (!literal(c, "true"))
            return SL_EINVAL;
        msgpack_pack_true(pk);
        return 0;
    case 'f':
        if (!literal(c, "false"))
            return SL_EINVAL;
        msgpack_pack_false(pk);
        return 0;
    case 'n':
        if (!literal(c, "null"))
            return SL_EINVAL;
        msgpack_pack_nil(pk);
        return 0;
    default:
        return pack_number(c, pk);
    }
}

int sl_json_to_msgpack(const char *json, size_t len, msgpack_packer *pk)
{
    cur_t c = {json, json + len};
    int rc = to_msgpack(&c, pk, 1);
    if (rc)
        return rc;
    skip_ws(&c);
    return c.p == c.end ? 0 : SL_EINVAL;
}
