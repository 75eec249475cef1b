/*
 * Connection actor, access control side: finds a request's token,
 * verifies it once per connection (the principal is kept on the
 * connection beside the token's bytes), asks sl_auth_allow, answers
 * refusals (401 + WWW-Authenticate: Bearer / 403, API.md "Access
 * control"), and ends streams whose token expired. Runs on the
 * connection's actor only.
 *
 * With no key configured every entry point returns "allowed" before
 * looking at the request, so an open server pays nothing.
 */
#include <stdlib.h>
#include <string.h>

#include "actors/conn_int.h"
#include "net/http.h"
#include "runtime/clock.h"

static sl_auth_t *keyring(const sl_conn_t *c) { return c->srv->cfg.auth; }

static bool ieq_prefix(const char *s, size_t n, const char *pfx)
{
    size_t k = strlen(pfx);
    if (n < k)
        return false;
    for (size_t i = 0; i < k; i++) {
        char ch = s[i];
        if (ch >= 'A' && ch <= 'Z')
            ch = (char)(ch - 'A' + 'a');
        if (ch != pfx[i])
            return false;
    }
    return true;
}

/* The value of cookie `sluice_token` in one Cookie header, if any. */
static bool cookie_token(const sl_http_header_t *h, sl_http_str_t *out)
{
    const char *p = h->value, *end = h->value + h->value_len;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == ';'))
            p++;
        const char *semi = memchr(p, ';', (size_t)(end - p));
        const char *pair_end = semi ? semi : end;
        if ((size_t)(pair_end - p) > 12 && memcmp(p, "sluice_token=", 13) == 0) {
            out->ptr = p + 13;
            out->len = (size_t)(pair_end - p - 13);
            return true;
        }
        p = pair_end;
    }
    return false;
}

/* Finds the token: Authorization: Bearer, then ?access_token= (decoded
 * into qbuf), then the cookie. Returns 1 found, 0 none, -1 malformed. */
static int find_token(const sl_http_req_t *req, char *qbuf, size_t cap, sl_http_str_t *tok)
{
    const sl_http_header_t *auth = sl_http_req_header(req, "authorization");
    if (auth) {
        if (!ieq_prefix(auth->value, auth->value_len, "bearer "))
            return -1;
        const char *v = auth->value + 7;
        size_t n = auth->value_len - 7;
        while (n && *v == ' ')
            v++, n--;
        while (n && v[n - 1] == ' ')
            n--;
        *tok = (sl_http_str_t){v, n};
        return 1;
    }
    int found = sl_conn__query(req, "access_token", qbuf, cap, tok);
    if (found != 0)
        return found;
    for (uint32_t i = 0; i < req->header_count; i++) {
        const sl_http_header_t *h = &req->headers[i];
        if (h->name_len == 6 && memcmp(h->name, "cookie", 6) == 0 && cookie_token(h, tok))
            return 1;
    }
    return 0;
}

/* The request's principal (borrowed from c), or NULL with *why. */
static const sl_auth_principal_t *request_principal(sl_conn_t *c, const sl_http_req_t *req,
                                                    uint64_t now, const char **why)
{
    char qbuf[SL_AUTH_TOKEN_BYTES_MAX + 1];
    sl_http_str_t tok = {NULL, 0};
    int found = find_token(req, qbuf, sizeof qbuf, &tok);
    if (found <= 0) {
        *why = found < 0 ? "malformed credentials" : "no token";
        return NULL;
    }
    if (c->principal && c->token_len == tok.len && memcmp(c->token, tok.ptr, tok.len) == 0)
        return c->principal; /* verified before on this connection */
    if (sl_conn__auth_set(c, tok.ptr, tok.len, why) != SL_AUTH_OK)
        return NULL;
    return c->principal;
}

static void respond_refusal(sl_conn_t *c, const sl_http_req_t *req, sl_auth_verdict_t v,
                            const sl_auth_principal_t *p, const char *why)
{
    atomic_fetch_add_explicit(&c->srv->counters.responses_4xx, 1, memory_order_relaxed);
    char what[128];
    snprintf(what, sizeof what, "%.*s %.*s", (int)req->method_raw.len, req->method_raw.ptr,
             (int)(req->path.len > 96 ? 96 : req->path.len), req->path.ptr);
    sl_auth_audit(keyring(c), (int)v, c->peer, what, p, why);
    if (v == SL_AUTH_FORBIDDEN) {
        sl_http_respond_error(c->http, req->stream_id, 403, "forbidden",
                              "the token does not grant this", NULL, 0);
        return;
    }
    /* RFC 6750 3: a token was presented but is not acceptable. */
    static const sl_http_header_t plain[] = {SL_HTTP_HEADER_LIT("www-authenticate", "Bearer")};
    static const sl_http_header_t invalid[] = {
        SL_HTTP_HEADER_LIT("www-authenticate", "Bearer error=\"invalid_token\"")};
    bool presented = why && strcmp(why, "no token") != 0;
    char msg[96];
    snprintf(msg, sizeof msg, "a valid token is needed (%s)", why ? why : "expired");
    sl_http_respond_error(c->http, req->stream_id, 401, "unauthorized", msg,
                          presented ? invalid : plain, 1);
}

bool sl_conn__auth_http(sl_conn_t *c, const sl_http_req_t *req, sl_auth_action_t action,
                        const char *id, size_t id_len)
{
    if (!sl_auth_enabled(keyring(c)))
        return true;
    uint64_t now = sl_clock_wall_ns();
    const char *why = NULL;
    const sl_auth_principal_t *p = request_principal(c, req, now, &why);
    sl_auth_verdict_t v = sl_auth_allow(keyring(c), p, action, id, id_len, now);
    if (v == SL_AUTH_OK)
        return true;
    if (p && v == SL_AUTH_UNAUTHORIZED)
        why = "expired";
    respond_refusal(c, req, v, p, why);
    return false;
}

sl_auth_verdict_t sl_conn__auth_peek(sl_conn_t *c, const sl_http_req_t *req,
                                     sl_auth_action_t action)
{
    if (!sl_auth_enabled(keyring(c)))
        return SL_AUTH_OK;
    uint64_t now = sl_clock_wall_ns();
    const char *why = NULL;
    const sl_auth_principal_t *p = request_principal(c, req, now, &why);
    return sl_auth_allow(keyring(c), p, action, NULL, 0, now);
}

sl_auth_verdict_t sl_conn__auth_check(sl_conn_t *c, sl_auth_action_t action, const char *id,
                                      size_t id_len, const char *what)
{
    if (!sl_auth_enabled(keyring(c)))
        return SL_AUTH_OK;
    sl_auth_verdict_t v = sl_auth_allow(keyring(c), c->principal, action, id, id_len,
                                        sl_clock_wall_ns());
    if (v != SL_AUTH_OK)
        sl_auth_audit(keyring(c), (int)v, c->peer, what, c->principal,
                      v == SL_AUTH_FORBIDDEN ? "no capability"
                      : c->principal        ? "expired"
                                            : "no token");
    return v;
}

sl_auth_verdict_t sl_conn__auth_set(sl_conn_t *c, const char *token, size_t len, const char **why)
{
    sl_auth_principal_t *p;
    sl_auth_verdict_t v = sl_auth_verify(keyring(c), token, len, sl_clock_wall_ns(), &p, why);
    if (v != SL_AUTH_OK)
        return v;
    char *copy = malloc(len ? len : 1);
    if (!copy) {
        sl_auth_principal_free(p);
        *why = "out of memory";
        return SL_AUTH_UNAUTHORIZED;
    }
    memcpy(copy, token, len);
    sl_auth_principal_free(c->principal);
    free(c->token);
    c->principal = p;
    c->token = copy;
    c->token_len = len;
    /* A refreshed RPC token carries the subscriptions it still covers. */
    uint64_t now = sl_clock_wall_ns();
    for (sl_conn_stream_t *st = c->streams; c->rpc && st; st = st->next) {
        if (st->e && sl_auth_allow(keyring(c), p, SL_AUTH_SUB, st->e->id, st->e->id_len, now) ==
                         SL_AUTH_OK)
            st->auth_expires_ns = sl_auth_principal_expires_ns(p);
    }
    return SL_AUTH_OK;
}

bool sl_conn__auth_may_list(const sl_conn_t *c, const char *id, size_t id_len, uint64_t now_wall_ns)
{
    return sl_auth_allow(keyring(c), c->principal, SL_AUTH_SUB, id, id_len, now_wall_ns) ==
           SL_AUTH_OK;
}

void sl_conn__auth_free(sl_conn_t *c)
{
    sl_auth_principal_free(c->principal);
    free(c->token);
    c->principal = NULL;
    c->token = NULL;
    c->token_len = 0;
}

bool sl_conn__auth_tick(sl_conn_t *c)
{
    if (!sl_auth_enabled(keyring(c)))
        return false;
    uint64_t now = 0, min = 0;
    for (sl_conn_stream_t *st = c->streams; st; st = st->next) {
        if (!st->auth_expires_ns || st->dead || st->ended)
            continue;
        if (!now)
            now = sl_clock_wall_ns();
        if (now >= st->auth_expires_ns)
            sl_conn__stream_expire(c, st);
        if (!st->ended && (!min || st->auth_expires_ns < min))
            min = st->auth_expires_ns; /* not begun yet: ended on a later tick */
    }
    c->auth_expiry_min_ns = min;
    return min != 0;
}
