/*
 * NDJSON event lines and string escaping. See json.h.
 */
#include "actors/json.h"

#include <stdbool.h>
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
