/*
 * sluicectl token: mints an HS256 access token (RFC 7519) for development
 * and tests, from the same secret file sluiced reads with
 * --auth-hs256-secret-file (one final newline is not part of the secret,
 * exactly as the server reads it). Needs no server.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "tools/sluicectl/ctl_cmd.h"

/* Patterns per --pub / --sub list, and the secret's size, as the server
 * bounds them (runtime/limits.h SL_AUTH_PATTERNS_MAX, SL_AUTH_SECRET_*). */
#define TOKEN_PATTERNS_MAX 64
#define TOKEN_SECRET_MIN 32
#define TOKEN_SECRET_MAX 4096
#define TOKEN_CLAIMS_MAX (TOKEN_PATTERNS_MAX * 140 + 512)

typedef struct token_opts {
    const char *secret_file;
    const char *pub[TOKEN_PATTERNS_MAX], *sub[TOKEN_PATTERNS_MAX];
    uint32_t npub, nsub;
    bool admin;
    uint64_t ttl_s;
    const char *subject;
} token_opts_t;

static const char token_usage[] =
    "usage: sluicectl token --secret-file FILE [--pub PATTERN]... [--sub PATTERN]...\n"
    "                       [--admin] [--ttl SECONDS] [--subject NAME]\n"
    "Prints an HS256 access token signed with the secret in FILE (the file given to\n"
    "sluiced --auth-hs256-secret-file). PATTERN: a session id, a prefix followed by\n"
    "'*', or '*'. --pub allows publish/create/delete, --sub subscribe/stats/reads,\n"
    "--admin everything. --ttl: seconds until it expires (default 3600).\n"
    "Then: sluicectl --token TOKEN ... or SLUICE_TOKEN=TOKEN.\n";

static bool pattern_ok(const char *p)
{
    size_t n = strlen(p);
    if (n == 0 || n > 129)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = p[i];
        bool idch = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                    (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-';
        if (!idch && !(ch == '*' && i == n - 1))
            return false;
    }
    return true;
}

static int on_opt(sl_ctl_t *ctl, void *state, int opt, const char *val)
{
    (void)ctl;
    token_opts_t *o = state;
    uint64_t v;
    switch (opt) {
    case 'f':
        o->secret_file = val;
        return 0;
    case 'p':
    case 's':
        if (!pattern_ok(val))
            return sl_ctl_usage("bad pattern '%s': a session id, a prefix and '*', or '*'", val);
        if (o->npub + o->nsub >= TOKEN_PATTERNS_MAX)
            return sl_ctl_usage("at most %d patterns", TOKEN_PATTERNS_MAX);
        if (opt == 'p')
            o->pub[o->npub++] = val;
        else
            o->sub[o->nsub++] = val;
        return 0;
    case 'a':
        o->admin = true;
        return 0;
    case 'l':
        if (sl_ctl_parse_u64(val, &v) != 0 || v == 0 || v > 10ull * 365 * 86400)
            return sl_ctl_usage("bad --ttl '%s': seconds, 1 to ten years", val);
        o->ttl_s = v;
        return 0;
    case 'n':
        if (!pattern_ok(val) || strchr(val, '*'))
            return sl_ctl_usage("bad --subject '%s': [A-Za-z0-9._-], 1-129 bytes", val);
        o->subject = val;
        return 0;
    }
    return sl_ctl_usage("unknown option");
}

static void b64url(const uint8_t *in, size_t n, char *out)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0) |
                     (i + 2 < n ? in[i + 2] : 0);
        out[o++] = a[v >> 18 & 63];
        out[o++] = a[v >> 12 & 63];
        if (i + 1 < n)
            out[o++] = a[v >> 6 & 63];
        if (i + 2 < n)
            out[o++] = a[v & 63];
    }
    out[o] = '\0';
}

static size_t list_json(char *out, const char *name, const char *const *p, uint32_t n)
{
    size_t o = (size_t)sprintf(out, "\"%s\":[", name);
    for (uint32_t i = 0; i < n; i++)
        o += (size_t)sprintf(out + o, "%s\"%s\"", i ? "," : "", p[i]);
    out[o++] = ']';
    out[o] = '\0';
    return o;
}

static int read_secret(const char *path, uint8_t *buf, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return SL_CTL_EXIT_USAGE;
    }
    size_t n = fread(buf, 1, TOKEN_SECRET_MAX + 2, f);
    fclose(f);
    if (n && buf[n - 1] == '\n')
        n--;
    if (n && buf[n - 1] == '\r')
        n--;
    if (n < TOKEN_SECRET_MIN || n > TOKEN_SECRET_MAX)
        return sl_ctl_usage("%s: a secret has 32 to 4096 bytes, this one %zu", path, n);
    *len = n;
    return 0;
}

int sl_ctl_cmd_token(sl_ctl_t *ctl, int argc, char **argv)
{
    static const struct option opts[] = {
        {"secret-file", required_argument, NULL, 'f'}, {"pub", required_argument, NULL, 'p'},
        {"sub", required_argument, NULL, 's'},         {"admin", no_argument, NULL, 'a'},
        {"ttl", required_argument, NULL, 'l'},         {"subject", required_argument, NULL, 'n'},
        SL_CTL_GLOBAL_LONGOPTS,                        {0}};
    token_opts_t o = {.ttl_s = 3600, .subject = "sluicectl"};
    int first;
    int rc = sl_ctl_parse(ctl, argc, argv, opts, on_opt, &o, token_usage, &first);
    if (rc != 0)
        return rc == 1 ? SL_CTL_EXIT_OK : rc;
    if (first != argc)
        return sl_ctl_usage("token takes no operands; see sluicectl token --help");
    if (!o.secret_file)
        return sl_ctl_usage("token needs --secret-file FILE");
    static uint8_t secret[TOKEN_SECRET_MAX + 2];
    size_t slen = 0;
    if ((rc = read_secret(o.secret_file, secret, &slen)) != 0)
        return rc;
    static char claims[TOKEN_CLAIMS_MAX], pubs[TOKEN_CLAIMS_MAX / 2], subs[TOKEN_CLAIMS_MAX / 2];
    list_json(pubs, "pub", o.pub, o.npub);
    list_json(subs, "sub", o.sub, o.nsub);
    long long now = (long long)time(NULL);
    int cn = snprintf(claims, sizeof claims,
                      "{\"sub\":\"%s\",\"iat\":%lld,\"exp\":%lld,\"sluice\":{%s,%s,\"admin\":%s}}",
                      o.subject, now, now + (long long)o.ttl_s, pubs, subs,
                      o.admin ? "true" : "false");
    static const char header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    static char tok[TOKEN_CLAIMS_MAX * 2];
    b64url((const uint8_t *)header, sizeof header - 1, tok);
    size_t n = strlen(tok);
    tok[n++] = '.';
    b64url((const uint8_t *)claims, (size_t)cn, tok + n);
    n += strlen(tok + n);
    uint8_t mac[EVP_MAX_MD_SIZE];
    unsigned mlen = 0;
    if (!HMAC(EVP_sha256(), secret, (int)slen, (const uint8_t *)tok, n, mac, &mlen)) {
        OPENSSL_cleanse(secret, sizeof secret);
        fputs("sluicectl: HMAC failed\n", stderr);
        return SL_CTL_EXIT_SERVER;
    }
    OPENSSL_cleanse(secret, sizeof secret);
    tok[n++] = '.';
    b64url(mac, mlen, tok + n);
    puts(tok);
    return SL_CTL_EXIT_OK;
}
