/*
 * Request and message helpers of the http module: the header store both
 * protocols fill while a header section arrives, turning it into an
 * sl_http_req_t, and the small text utilities the server needs (JSON error
 * bodies, percent-decoding, query parameters, reason phrases).
 */
#include "net/net_int.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* A store larger than this is freed between requests instead of kept, so
 * idle keep-alive connections hold little memory. */
#define HDRS_KEEP_BYTES 2048

void sl_http__hdrs_reset(sl_http_conn_t *c, sl_http__hdrs_t *h)
{
    sl_http__free(c, h->arr);
    h->arr = NULL;
    if (h->cap > HDRS_KEEP_BYTES) {
        sl_http__free(c, h->buf);
        h->buf = NULL;
        h->cap = 0;
        sl_http__free(c, h->ent);
        h->ent = NULL;
        h->ent_cap = 0;
    }
    h->len = 0;
    h->count = 0;
    h->counted = 0;
    h->method = h->target = h->authority = h->scheme = (sl_http__span_t){0, 0, false};
}

void sl_http__hdrs_free(sl_http_conn_t *c, sl_http__hdrs_t *h)
{
    sl_http__free(c, h->arr);
    sl_http__free(c, h->buf);
    sl_http__free(c, h->ent);
    memset(h, 0, sizeof(*h));
}

static int hdrs_reserve(sl_http_conn_t *c, sl_http__hdrs_t *h, size_t more)
{
    if (more > UINT32_MAX - h->len)
        return SL_ETOOBIG;
    size_t need = h->len + more;
    if (need <= h->cap)
        return 0;
    size_t cap = h->cap < 256 ? 256 : h->cap;
    while (cap < need)
        cap *= 2;
    char *p = sl_http__realloc(c, h->buf, cap);
    if (p == NULL)
        return SL_ENOMEM;
    h->buf = p;
    h->cap = (uint32_t)cap;
    return 0;
}

int sl_http__hdrs_put(sl_http_conn_t *c, sl_http__hdrs_t *h, const char *p, size_t n,
                      bool lower, bool counted)
{
    if (counted) {
        if (n > c->cfg.max_header_bytes - h->counted)
            return SL_ETOOBIG;
        h->counted += (uint32_t)n;
    }
    /* The buffer holds counted bytes plus terminators, the method and a
     * copy of path and query: bounded by a small multiple of the limit. */
    int rc = hdrs_reserve(c, h, n);
    if (rc != 0)
        return rc;
    char *dst = h->buf + h->len;
    if (lower) {
        for (size_t i = 0; i < n; i++) {
            char ch = p[i];
            dst[i] = (ch >= 'A' && ch <= 'Z') ? (char)(ch + ('a' - 'A')) : ch;
        }
    } else if (n > 0) {
        memcpy(dst, p, n);
    }
    h->len += (uint32_t)n;
    return 0;
}

int sl_http__hdrs_put_span(sl_http_conn_t *c, sl_http__hdrs_t *h, sl_http__span_t *span,
                           const char *p, size_t n, bool counted)
{
    uint32_t off = h->len;
    int rc = sl_http__hdrs_put(c, h, p, n, false, counted);
    if (rc == 0)
        rc = sl_http__hdrs_put(c, h, "", 1, false, false);
    if (rc == 0)
        *span = (sl_http__span_t){off, (uint32_t)n, true};
    return rc;
}

int sl_http__hdrs_begin_entry(sl_http_conn_t *c, sl_http__hdrs_t *h)
{
    if (h->count >= c->cfg.max_header_count)
        return SL_ETOOBIG;
    if (h->count == h->ent_cap) {
        uint32_t cap = h->ent_cap == 0 ? 16 : h->ent_cap * 2;
        sl_http__hent_t *e = sl_http__realloc(c, h->ent, cap * sizeof(*e));
        if (e == NULL)
            return SL_ENOMEM;
        h->ent = e;
        h->ent_cap = cap;
    }
    h->ent[h->count] = (sl_http__hent_t){h->len, 0, h->len, 0};
    h->count++;
    return 0;
}

int sl_http__hdrs_add(sl_http_conn_t *c, sl_http__hdrs_t *h, const char *name, size_t nlen,
                      const char *value, size_t vlen)
{
    int rc = sl_http__hdrs_begin_entry(c, h);
    if (rc != 0)
        return rc;
    rc = sl_http__hdrs_put(c, h, name, nlen, true, true);
    if (rc == 0)
        rc = sl_http__hdrs_put(c, h, "", 1, false, false);
    sl_http__hent_t *e = &h->ent[h->count - 1];
    if (rc == 0) {
        e->name_len = (uint32_t)nlen;
        e->value_off = h->len;
        rc = sl_http__hdrs_put(c, h, value, vlen, false, true);
    }
    if (rc == 0)
        rc = sl_http__hdrs_put(c, h, "", 1, false, false);
    if (rc == 0)
        e->value_len = (uint32_t)vlen;
    return rc;
}

sl_http_method_t sl_http__method_of(const char *s, size_t n)
{
    static const struct {
        const char *name;
        sl_http_method_t m;
    } table[] = {
        {"GET", SL_HTTP_METHOD_GET},       {"HEAD", SL_HTTP_METHOD_HEAD},
        {"POST", SL_HTTP_METHOD_POST},     {"PUT", SL_HTTP_METHOD_PUT},
        {"DELETE", SL_HTTP_METHOD_DELETE}, {"OPTIONS", SL_HTTP_METHOD_OPTIONS},
        {"PATCH", SL_HTTP_METHOD_PATCH},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(table); i++) {
        if (strlen(table[i].name) == n && memcmp(table[i].name, s, n) == 0)
            return table[i].m;
    }
    return SL_HTTP_METHOD_OTHER;
}

static sl_http_str_t span_str(const sl_http__hdrs_t *h, sl_http__span_t s)
{
    if (!s.set)
        return (sl_http_str_t){NULL, 0};
    return (sl_http_str_t){h->buf + s.off, s.len};
}

/* Splits the target into path and query with http-parser's URL parser
 * (origin form "/p?q", absolute form "http://h/p?q", or "*"), copying
 * both NUL-terminated into the store. */
static int split_target(sl_http_conn_t *c, sl_http__hdrs_t *h, sl_http__span_t *path,
                        sl_http__span_t *query)
{
    if (!h->target.set || h->target.len == 0)
        return SL_EINVAL;
    uint32_t poff = h->target.off, plen = h->target.len, qoff = 0, qlen = 0;
    bool has_query = false;
    if (!(plen == 1 && h->buf[poff] == '*')) {
        struct http_parser_url u;
        http_parser_url_init(&u);
        if (http_parser_parse_url(h->buf + poff, plen, 0, &u) != 0)
            return SL_EINVAL;
        if ((u.field_set & (1 << UF_PATH)) == 0)
            return SL_EINVAL;
        has_query = (u.field_set & (1 << UF_QUERY)) != 0;
        qoff = poff + u.field_data[UF_QUERY].off;
        qlen = u.field_data[UF_QUERY].len;
        poff += u.field_data[UF_PATH].off;
        plen = u.field_data[UF_PATH].len;
    }
    /* Copies, because neither piece ends in a NUL inside the target. The
     * offsets stay valid across the buffer growing. */
    path->off = h->len;
    path->len = plen;
    path->set = true;
    int rc = hdrs_reserve(c, h, (size_t)plen + qlen + 2);
    if (rc != 0)
        return rc;
    memmove(h->buf + h->len, h->buf + poff, plen);
    h->buf[h->len + plen] = '\0';
    h->len += plen + 1;
    if (has_query) {
        query->off = h->len;
        query->len = qlen;
        query->set = true;
        memmove(h->buf + h->len, h->buf + qoff, qlen);
        h->buf[h->len + qlen] = '\0';
        h->len += qlen + 1;
    }
    return 0;
}

static void known_header(sl_http_req_t *req, const sl_http_header_t *hd)
{
    static const struct {
        const char *name;
        size_t off;
    } known[] = {
        {"host", offsetof(sl_http_req_t, host)},
        {"content-type", offsetof(sl_http_req_t, content_type)},
        {"accept", offsetof(sl_http_req_t, accept)},
        {"last-event-id", offsetof(sl_http_req_t, last_event_id)},
        {"sluice-event-type", offsetof(sl_http_req_t, event_type)},
        {"sluice-durable", offsetof(sl_http_req_t, durable)},
        {"origin", offsetof(sl_http_req_t, origin)},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(known); i++) {
        if (strlen(known[i].name) != hd->name_len || memcmp(known[i].name, hd->name, hd->name_len))
            continue;
        sl_http_str_t *dst = (sl_http_str_t *)(void *)((char *)req + known[i].off);
        if (dst->ptr == NULL)
            *dst = (sl_http_str_t){hd->value, hd->value_len};
        return;
    }
}

int sl_http__req_build(sl_http_conn_t *c, sl_http__hdrs_t *h, sl_http_req_t *req)
{
    sl_http__span_t path = {0, 0, false}, query = {0, 0, false};
    int rc = split_target(c, h, &path, &query);
    if (rc != 0)
        return rc;
    if (h->count > 0) {
        h->arr = sl_http__calloc(c, h->count, sizeof(*h->arr));
        if (h->arr == NULL)
            return SL_ENOMEM;
    }
    /* Every append is done: pointers into buf are stable from here. */
    req->method_raw = span_str(h, h->method);
    req->method = sl_http__method_of(req->method_raw.ptr, req->method_raw.len);
    req->target = span_str(h, h->target);
    req->path = span_str(h, path);
    req->query = span_str(h, query);
    req->host = span_str(h, h->authority);
    if (h->scheme.set)
        req->scheme = span_str(h, h->scheme);
    else if (c->cfg.tls)
        req->scheme = (sl_http_str_t){"https", 5};
    else
        req->scheme = (sl_http_str_t){"http", 4};
    for (uint32_t i = 0; i < h->count; i++) {
        const sl_http__hent_t *e = &h->ent[i];
        h->arr[i] = (sl_http_header_t){h->buf + e->name_off, e->name_len, h->buf + e->value_off,
                                       e->value_len};
        known_header(req, &h->arr[i]);
    }
    req->headers = h->arr;
    req->header_count = h->count;
    return 0;
}

const sl_http_header_t *sl_http_req_header(const sl_http_req_t *req, const char *name)
{
    size_t n = strlen(name);
    for (uint32_t i = 0; i < req->header_count; i++) {
        const sl_http_header_t *h = &req->headers[i];
        if (h->name_len == n && memcmp(h->name, name, n) == 0)
            return h;
    }
    return NULL;
}

bool sl_http_query_param(sl_http_str_t query, const char *name, sl_http_str_t *value)
{
    size_t n = strlen(name);
    const char *p = query.ptr, *end = query.ptr + query.len;
    while (p != NULL && p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp != NULL ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(stop - p));
        const char *kend = eq != NULL ? eq : stop;
        if ((size_t)(kend - p) == n && memcmp(p, name, n) == 0) {
            const char *v = eq != NULL ? eq + 1 : stop;
            *value = (sl_http_str_t){v, (size_t)(stop - v)};
            return true;
        }
        p = amp != NULL ? amp + 1 : NULL;
    }
    return false;
}

/* Appends s to buf as JSON string content (no quotes). */
static bool json_escape(char *buf, size_t cap, size_t *len, const char *s)
{
    for (; *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;
        char tmp[8];
        size_t n = 1;
        if (ch == '"' || ch == '\\') {
            tmp[0] = '\\';
            tmp[1] = (char)ch;
            n = 2;
        } else if (ch < 0x20) {
            n = (size_t)snprintf(tmp, sizeof(tmp), "\\u%04x", ch);
        } else {
            tmp[0] = (char)ch;
        }
        if (n >= cap - *len)
            return false;
        memcpy(buf + *len, tmp, n);
        *len += n;
    }
    return true;
}

static bool json_lit(char *buf, size_t cap, size_t *len, const char *s)
{
    size_t n = strlen(s);
    if (n >= cap - *len)
        return false;
    memcpy(buf + *len, s, n);
    *len += n;
    return true;
}

int sl_http_error_json(char *buf, size_t cap, const char *code, const char *message)
{
    sl_assert(buf != NULL && cap > 0);
    size_t len = 0;
    bool ok = json_lit(buf, cap, &len, "{\"error\":\"") && json_escape(buf, cap, &len, code) &&
              json_lit(buf, cap, &len, "\",\"message\":\"") &&
              json_escape(buf, cap, &len, message) && json_lit(buf, cap, &len, "\"}");
    if (!ok || len > INT32_MAX) {
        buf[0] = '\0';
        return SL_ETOOBIG;
    }
    buf[len] = '\0';
    return (int)len;
}

static int hex_val(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Decodes the byte at in[*i] (a '%XX' escape, '+' per flags, or itself)
 * and advances *i past it. Returns the byte, or SL_EINVAL for a malformed
 * escape or a forbidden byte (below 0x20, 0x7f). */
static int pct_next(const char *in, size_t len, size_t *i, unsigned flags)
{
    unsigned char ch = (unsigned char)in[*i];
    if (ch == '%') {
        if (len - *i < 3)
            return SL_EINVAL;
        int hi = hex_val(in[*i + 1]), lo = hex_val(in[*i + 2]);
        if (hi < 0 || lo < 0)
            return SL_EINVAL;
        ch = (unsigned char)(hi * 16 + lo);
        *i += 2;
    } else if (ch == '+' && (flags & SL_HTTP_PCT_PLUS_SPACE)) {
        ch = ' ';
    }
    (*i)++;
    if (ch < 0x20 || ch == 0x7f)
        return SL_EINVAL;
    return ch;
}

int sl_http_pct_decode(const char *in, size_t len, char *out, size_t cap, unsigned flags)
{
    sl_assert(out != NULL && cap > 0);
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        int ch = pct_next(in, len, &i, flags);
        if (ch < 0)
            return ch;
        if (o + 1 >= cap)
            return SL_ETOOBIG;
        out[o++] = (char)ch;
    }
    if (o > INT32_MAX)
        return SL_ETOOBIG;
    out[o] = '\0';
    return (int)o;
}

/* True when in[0..len) percent-decodes (query rules) to exactly name. */
static bool pct_equals(const char *in, size_t len, const char *name)
{
    size_t k = 0;
    for (size_t i = 0; i < len;) {
        int ch = pct_next(in, len, &i, SL_HTTP_PCT_PLUS_SPACE);
        if (ch < 0 || name[k] == '\0' || (char)ch != name[k])
            return false;
        k++;
    }
    return name[k] == '\0';
}

static bool pct_valid(const char *in, size_t len)
{
    for (size_t i = 0; i < len;)
        if (pct_next(in, len, &i, SL_HTTP_PCT_PLUS_SPACE) < 0)
            return false;
    return true;
}

bool sl_http_query_valid(sl_http_str_t query)
{
    return query.ptr == NULL || pct_valid(query.ptr, query.len);
}

int sl_http_query_get(sl_http_str_t query, const char *name, char *out, size_t cap)
{
    sl_assert(out != NULL && cap > 0);
    const char *p = query.ptr, *end = query.ptr + query.len;
    while (p != NULL && p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp != NULL ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(stop - p));
        const char *kend = eq != NULL ? eq : stop;
        if (pct_equals(p, (size_t)(kend - p), name)) {
            const char *v = eq != NULL ? eq + 1 : stop;
            return sl_http_pct_decode(v, (size_t)(stop - v), out, cap, SL_HTTP_PCT_PLUS_SPACE);
        }
        p = amp != NULL ? amp + 1 : NULL;
    }
    return SL_ENOTFOUND;
}

const char *sl_http_status_reason(int status)
{
    if (status < 100 || status > 599)
        return "Unknown";
    const char *s = http_status_str((enum http_status)status);
    return (s == NULL || s[0] == '<') ? "Unknown" : s;
}
