/*
 * Browser origins: the --cors-origin policy, the Origin check for
 * state-changing requests, and the headers every response carries (see
 * net/cors.h for the rules). Pure: no I/O, no allocation.
 */
#include "net/cors.h"

#include <stdio.h>
#include <string.h>

#include "runtime/base.h"

/* Response headers a browser script may read besides the CORS-safelisted
 * ones: what sluice answers with (Retry-After on 429/503, Allow on 405),
 * the v1.1 producer and auth answers, and the Durable Streams face's
 * Stream-* headers. SSE resumption needs none: the event id travels in
 * the body and the browser sends Last-Event-ID itself. */
static const char expose[] =
    "retry-after, allow, www-authenticate, producer-epoch, producer-expected-seq, "
    "stream-next-offset, stream-cursor, stream-up-to-date, stream-closed, producer-seq, "
    "producer-received-seq, etag, stream-sse-data-encoding";

/* One part of an origin or a Host value. */
typedef struct {
    sl_http_str_t scheme; /* ptr NULL for a Host value */
    sl_http_str_t host;   /* brackets kept for IPv6 */
    unsigned port;        /* 0: absent */
} origin_parts_t;

static bool ieq(const char *a, size_t an, const char *b, size_t bn)
{
    if (an != bn)
        return false;
    for (size_t i = 0; i < an; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
        if (x >= 'A' && x <= 'Z')
            x = (unsigned char)(x + 32);
        if (y >= 'A' && y <= 'Z')
            y = (unsigned char)(y + 32);
        if (x != y)
            return false;
    }
    return true;
}

static bool host_byte_ok(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '-' || ch == '.' || ch == '_' || ch == '[' || ch == ']' || ch == ':';
}

/* Splits "host[:port]" (IPv6 in brackets). False when malformed. */
static bool split_authority(const char *p, size_t n, origin_parts_t *o)
{
    if (n == 0 || n > SL_CORS_ORIGIN_BYTES_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!host_byte_ok(p[i]))
            return false;
    const char *close = p[0] == '[' ? memchr(p, ']', n) : NULL;
    if (p[0] == '[' && close == NULL)
        return false;
    const char *from = close != NULL ? close : p;
    const char *colon = memchr(from, ':', n - (size_t)(from - p));
    size_t hlen = colon != NULL ? (size_t)(colon - p) : n;
    if (hlen == 0 || (close == NULL && memchr(p, ']', hlen) != NULL))
        return false;
    o->host = (sl_http_str_t){p, hlen};
    o->port = 0;
    if (colon == NULL)
        return true;
    size_t plen = n - hlen - 1;
    if (plen == 0 || plen > 5)
        return false;
    unsigned port = 0;
    for (size_t i = 0; i < plen; i++) {
        char ch = colon[1 + i];
        if (ch < '0' || ch > '9')
            return false;
        port = port * 10 + (unsigned)(ch - '0');
    }
    if (port == 0 || port > 65535)
        return false;
    o->port = port;
    return true;
}

/* Parses "scheme://host[:port]" with scheme http or https. */
static bool split_origin(const char *p, size_t n, origin_parts_t *o)
{
    const char *sep = NULL;
    for (size_t i = 0; i + 3 <= n; i++)
        if (memcmp(p + i, "://", 3) == 0) {
            sep = p + i;
            break;
        }
    if (sep == NULL)
        return false;
    o->scheme = (sl_http_str_t){p, (size_t)(sep - p)};
    if (!ieq(p, o->scheme.len, "http", 4) && !ieq(p, o->scheme.len, "https", 5))
        return false;
    return split_authority(sep + 3, n - o->scheme.len - 3, o);
}

static unsigned default_port(sl_http_str_t scheme)
{
    return scheme.len == 5 ? 443 : 80;
}

static bool has_upper(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] >= 'A' && p[i] <= 'Z')
            return true;
    return false;
}

static void trim(const char **p, size_t *n)
{
    while (*n > 0 && ((*p)[0] == ' ' || (*p)[0] == '\t')) {
        (*p)++;
        (*n)--;
    }
    while (*n > 0 && ((*p)[*n - 1] == ' ' || (*p)[*n - 1] == '\t'))
        (*n)--;
}

int sl_cors_parse(sl_cors_t *out, const char *text, char *err, size_t n)
{
    memset(out, 0, sizeof(*out));
    const char *p = text != NULL ? text : "";
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
        const char *item = p;
        trim(&item, &len);
        origin_parts_t o;
        if (len == 1 && item[0] == '*') {
            out->any = true;
        } else if (len > 0 && !split_origin(item, len, &o)) {
            snprintf(err, n, "--cors-origin: '%.*s' is not an origin (scheme://host[:port], "
                             "scheme http or https, no path) nor *", (int)(len > 300 ? 300 : len),
                     item);
            return SL_EINVAL;
        } else if (len > 0 && has_upper(item, len)) {
            /* Browsers send origins lower case, and compare the granted
             * one byte for byte: an upper-case entry could never work. */
            snprintf(err, n, "--cors-origin: '%.*s' must be lower case, as browsers send it",
                     (int)len, item);
            return SL_EINVAL;
        } else if (len > 0) {
            if (out->count >= SL_CORS_ORIGINS_MAX) {
                snprintf(err, n, "--cors-origin: at most %d origins", SL_CORS_ORIGINS_MAX);
                return SL_ETOOBIG;
            }
            out->origins[out->count++] = (sl_http_str_t){item, len};
        }
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    if (out->any && out->count > 0) {
        snprintf(err, n, "--cors-origin: * allows every origin; list origins or give *, not both");
        return SL_EINVAL;
    }
    return 0;
}

bool sl_cors_empty(const sl_cors_t *p)
{
    return p == NULL || (!p->any && p->count == 0);
}

uint32_t sl_cors_grant(const sl_cors_t *p, sl_http_str_t origin)
{
    if (p == NULL || origin.ptr == NULL || origin.len == 0)
        return SL_CORS_NONE;
    if (p->any)
        return SL_CORS_ANY;
    /* Exact bytes: the grant echoes the listed origin, which the browser
     * compares with its own serialisation byte for byte. */
    for (uint32_t i = 0; i < p->count; i++)
        if (p->origins[i].len == origin.len &&
            memcmp(p->origins[i].ptr, origin.ptr, origin.len) == 0)
            return i + 1;
    return SL_CORS_NONE;
}

bool sl_cors_same_origin(sl_http_str_t origin, sl_http_str_t scheme, sl_http_str_t host)
{
    if (origin.ptr == NULL || host.ptr == NULL || scheme.ptr == NULL)
        return false;
    origin_parts_t o, h;
    if (!split_origin(origin.ptr, origin.len, &o) || !split_authority(host.ptr, host.len, &h))
        return false;
    if (!ieq(o.scheme.ptr, o.scheme.len, scheme.ptr, scheme.len))
        return false;
    unsigned dp = default_port(o.scheme);
    unsigned op = o.port != 0 ? o.port : dp, hp = h.port != 0 ? h.port : dp;
    return op == hp && ieq(o.host.ptr, o.host.len, h.host.ptr, h.host.len);
}

bool sl_cors_method_unsafe(sl_http_method_t m)
{
    return m != SL_HTTP_METHOD_GET && m != SL_HTTP_METHOD_HEAD && m != SL_HTTP_METHOD_OPTIONS;
}

bool sl_cors_request_allowed(const sl_cors_t *p, const sl_http_req_t *req)
{
    if (!sl_cors_method_unsafe(req->method) || req->origin.ptr == NULL)
        return true;
    if (sl_cors_same_origin(req->origin, req->scheme, req->host))
        return true;
    return sl_cors_grant(p, req->origin) != SL_CORS_NONE;
}

size_t sl_cors_response_headers(const sl_cors_t *p, uint32_t grant, sl_http_header_t *out)
{
    size_t k = 0;
    bool any = p != NULL && p->any;
    out[k++] = (sl_http_header_t)SL_HTTP_HEADER_LIT("x-content-type-options", "nosniff");
    if (any)
        out[k++] = (sl_http_header_t)SL_HTTP_HEADER_LIT("cross-origin-resource-policy",
                                                        "cross-origin");
    else
        out[k++] = (sl_http_header_t)SL_HTTP_HEADER_LIT("cross-origin-resource-policy",
                                                        "same-origin");
    /* With a list, what a response carries depends on the Origin: a cache
     * must keep one copy per origin, whether this one was granted or not. */
    if (p != NULL && p->count > 0)
        out[k++] = (sl_http_header_t)SL_HTTP_HEADER_LIT("vary", "origin");
    if (grant == SL_CORS_NONE || p == NULL)
        return k;
    if (grant == SL_CORS_ANY) {
        out[k++] = (sl_http_header_t)SL_HTTP_HEADER_LIT("access-control-allow-origin", "*");
    } else {
        sl_assert(grant <= p->count);
        const sl_http_str_t *o = &p->origins[grant - 1];
        out[k++] = (sl_http_header_t){"access-control-allow-origin", 27, o->ptr, o->len};
    }
    out[k++] = (sl_http_header_t){"access-control-expose-headers", 29, expose, sizeof(expose) - 1};
    sl_assert(k <= SL_CORS_HEADERS_MAX);
    return k;
}

/* Request header families a script may send cross-origin: prefixes,
 * because each family grows (v1.1 adds Producer-*, Durable Streams
 * Stream-*), and Access-Control-Allow-Headers has no prefix syntax -- so a
 * preflight's list is checked here and echoed when every name fits. */
static bool header_name_allowed(const char *p, size_t n)
{
    static const char *exact[] = {"content-type", "authorization", "last-event-id", "if-none-match"};
    static const char *prefix[] = {"sluice-", "producer-", "stream-"};
    for (size_t i = 0; i < SL_ARRAY_LEN(exact); i++)
        if (ieq(p, n, exact[i], strlen(exact[i])))
            return true;
    for (size_t i = 0; i < SL_ARRAY_LEN(prefix); i++) {
        size_t pl = strlen(prefix[i]);
        if (n > pl && ieq(p, pl, prefix[i], pl))
            return true;
    }
    return false;
}

bool sl_cors_request_headers_allowed(sl_http_str_t list)
{
    const char *p = list.ptr, *end = list.ptr + list.len;
    while (p != NULL && p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *item = p;
        size_t len = (size_t)((comma != NULL ? comma : end) - p);
        trim(&item, &len);
        if (len > 0 && !header_name_allowed(item, len))
            return false;
        p = comma != NULL ? comma + 1 : NULL;
    }
    return true;
}

size_t sl_cors_preflight_headers(sl_http_str_t requested, sl_http_header_t *out)
{
    size_t k = 0;
    out[k++] = (sl_http_header_t)SL_HTTP_HEADER_LIT("access-control-allow-methods",
                                                    "GET, HEAD, POST, PUT, DELETE");
    if (requested.ptr != NULL && requested.len > 0)
        out[k++] = (sl_http_header_t){"access-control-allow-headers", 28, requested.ptr,
                                      requested.len};
    out[k++] = (sl_http_header_t)SL_HTTP_HEADER_LIT("access-control-max-age", SL_CORS_MAX_AGE_S);
    return k;
}
