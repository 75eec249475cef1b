/*
 * Access control: the keyring, JWT verification (RFC 7515 compact form,
 * RFC 7519 claims, RFC 7518 algorithms HS256 / RS256 / ES256) with
 * OpenSSL 3 libcrypto, the capability patterns, and the audit lines of
 * refusals. See auth.h for the contract.
 *
 * Algorithm confusion is closed by construction: the header's alg picks
 * which list of keys is tried, and each list holds one kind of key. An
 * HS256 token is only ever checked against the configured secrets, never
 * against the bytes of a public key; "none" names no list.
 */
#include "actors/auth.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <msgpack.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include "actors/json.h"
#include "runtime/base.h"
#include "runtime/clock.h"
#include "runtime/limits.h"
#include "runtime/log.h"

#define NS_PER_S 1000000000ull
/* Length of the `sub` claim kept for logs. */
#define NAME_MAX_BYTES 64

typedef struct secret {
    uint8_t *bytes;
    size_t len;
} secret_t;

struct sl_auth {
    secret_t secrets[SL_FLAG_LIST_MAX];
    uint32_t nsecrets;
    EVP_PKEY *rsa[SL_FLAG_LIST_MAX];
    uint32_t nrsa;
    EVP_PKEY *ec[SL_FLAG_LIST_MAX];
    uint32_t nec;
    char *issuer, *audience;
    uint64_t leeway_ns;
    /* Refusals and the audit line budget, written by any connection. */
    _Atomic uint64_t refused_401, refused_403;
    _Atomic uint64_t audit_second;     /* the second the budget is for */
    _Atomic uint32_t audit_lines;      /* lines logged in that second */
    _Atomic uint64_t audit_suppressed; /* lines dropped since the last one logged */
};

/* Patterns are stored one after another as NUL-terminated strings: the
 * pub ones first, then the sub ones. */
struct sl_auth_principal {
    uint64_t expires_ns; /* exp + leeway, wall ns; 0: never */
    bool admin;
    uint32_t npub, nsub;
    char name[NAME_MAX_BYTES + 1];
    size_t pats_len;
    char pats[];
};

/* Copies s (n bytes) into out (cap > 0) for a quoted logfmt value: quotes,
 * backslashes and control bytes become '?', so a token's claims or a
 * request path cannot forge log fields. */
static void log_safe(char *out, size_t cap, const char *s, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 1 < cap; i++) {
        unsigned char ch = (unsigned char)s[i];
        out[o++] = ch < 0x20 || ch == 0x7f || ch == '"' || ch == '\\' ? '?' : (char)ch;
    }
    out[o] = '\0';
}

/* ---- keyring ---- */

static int read_file(const char *path, uint8_t **out, size_t *len, size_t max)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -errno;
    uint8_t *buf = malloc(max + 1);
    if (!buf) {
        fclose(f);
        return -ENOMEM;
    }
    size_t n = fread(buf, 1, max + 1, f);
    int bad = ferror(f);
    fclose(f);
    if (bad || n > max) {
        free(buf);
        return bad ? -EIO : SL_ETOOBIG;
    }
    *out = buf;
    *len = n;
    return 0;
}

static int load_secret(sl_auth_t *a, const char *path, char *err, size_t n)
{
    uint8_t *b = NULL;
    size_t len = 0;
    int rc = read_file(path, &b, &len, SL_AUTH_SECRET_BYTES_MAX + 2);
    if (rc != 0) {
        snprintf(err, n, "--auth-hs256-secret-file %s: %s", path,
                 rc == SL_ETOOBIG ? "longer than 4096 bytes" : strerror(-rc));
        return -1;
    }
    /* An editor's final newline is not part of the secret. */
    if (len && b[len - 1] == '\n')
        len--;
    if (len && b[len - 1] == '\r')
        len--;
    if (len < SL_AUTH_SECRET_BYTES_MIN || len > SL_AUTH_SECRET_BYTES_MAX) {
        snprintf(err, n, "--auth-hs256-secret-file %s: a secret has 32 to 4096 bytes, this one %zu",
                 path, len);
        OPENSSL_cleanse(b, len);
        free(b);
        return -1;
    }
    a->secrets[a->nsecrets++] = (secret_t){b, len};
    return 0;
}

static int load_public_key(sl_auth_t *a, const char *path, char *err, size_t n)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, n, "--auth-public-key-file %s: %s", path, strerror(errno));
        return -1;
    }
    EVP_PKEY *k = PEM_read_PUBKEY(f, NULL, NULL, NULL);
    fclose(f);
    if (!k) {
        snprintf(err, n, "--auth-public-key-file %s: not a PEM public key (BEGIN PUBLIC KEY)",
                 path);
        return -1;
    }
    if (EVP_PKEY_is_a(k, "RSA") && EVP_PKEY_get_bits(k) >= 2048) {
        a->rsa[a->nrsa++] = k;
        return 0;
    }
    char group[64] = "";
    if (EVP_PKEY_is_a(k, "EC") &&
        EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group,
                                       NULL) == 1 &&
        strcmp(group, "prime256v1") == 0) {
        a->ec[a->nec++] = k;
        return 0;
    }
    snprintf(err, n, "--auth-public-key-file %s: expected an RSA key of >= 2048 bits or an EC "
             "P-256 key", path);
    EVP_PKEY_free(k);
    return -1;
}

/* OpenSSL 3 fetches algorithms and sets up its providers on first use
 * (millions of instructions): done here, at start, rather than on a
 * reactor thread in the middle of the first client's request. */
static void warm_up(const sl_auth_t *a)
{
    static const uint8_t probe[1] = {0};
    uint8_t mac[EVP_MAX_MD_SIZE];
    unsigned mac_len = 0;
    if (a->nsecrets)
        HMAC(EVP_sha256(), a->secrets[0].bytes, (int)a->secrets[0].len, probe, sizeof probe, mac,
             &mac_len);
    EVP_PKEY *keys[] = {a->nrsa ? a->rsa[0] : NULL, a->nec ? a->ec[0] : NULL};
    for (size_t i = 0; i < SL_ARRAY_LEN(keys); i++) {
        EVP_MD_CTX *md = keys[i] ? EVP_MD_CTX_new() : NULL;
        if (md)
            EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, keys[i]);
        EVP_MD_CTX_free(md);
    }
}

int sl_auth_create(const sl_auth_config_t *cfg, sl_auth_t **out, char *err, size_t n)
{
    sl_auth_t *a = calloc(1, sizeof *a);
    if (!a) {
        snprintf(err, n, "out of memory");
        return -1;
    }
    a->leeway_ns = cfg->leeway_ns;
    int rc = 0;
    for (uint32_t i = 0; rc == 0 && cfg->hs256_secret_files && i < cfg->hs256_secret_files->count; i++)
        rc = load_secret(a, cfg->hs256_secret_files->items[i], err, n);
    for (uint32_t i = 0; rc == 0 && cfg->public_key_files && i < cfg->public_key_files->count; i++)
        rc = load_public_key(a, cfg->public_key_files->items[i], err, n);
    if (rc == 0 && cfg->issuer && !(a->issuer = strdup(cfg->issuer)))
        rc = -1;
    if (rc == 0 && cfg->audience && !(a->audience = strdup(cfg->audience)))
        rc = -1;
    if (rc != 0) {
        sl_auth_destroy(a);
        return -1;
    }
    warm_up(a);
    *out = a;
    return 0;
}

void sl_auth_destroy(sl_auth_t *a)
{
    if (!a)
        return;
    for (uint32_t i = 0; i < a->nsecrets; i++) {
        OPENSSL_cleanse(a->secrets[i].bytes, a->secrets[i].len);
        free(a->secrets[i].bytes);
    }
    for (uint32_t i = 0; i < a->nrsa; i++)
        EVP_PKEY_free(a->rsa[i]);
    for (uint32_t i = 0; i < a->nec; i++)
        EVP_PKEY_free(a->ec[i]);
    free(a->issuer);
    free(a->audience);
    free(a);
}

bool sl_auth_enabled(const sl_auth_t *a)
{
    return a && (a->nsecrets || a->nrsa || a->nec);
}

/* ---- base64url (RFC 4648 section 5, no padding, as JWS uses it) ---- */

static int b64url_value(unsigned char ch)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    if (ch == '-')
        return 62;
    if (ch == '_')
        return 63;
    return -1;
}

/* Decodes in (len bytes) into out (cap bytes). Returns the decoded length,
 * or -1 on a byte outside the alphabet, a length that cannot be unpadded
 * base64 (len % 4 == 1), non-zero trailing bits, or too small a buffer. */
static long b64url_decode(const char *in, size_t len, uint8_t *out, size_t cap)
{
    if (len % 4 == 1 || len / 4 * 3 + 2 > cap + 2)
        return -1;
    size_t o = 0;
    uint32_t acc = 0;
    unsigned bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64url_value((unsigned char)in[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o >= cap)
                return -1;
            out[o++] = (uint8_t)(acc >> bits);
        }
    }
    if (bits && (acc & ((1u << bits) - 1)) != 0)
        return -1; /* a canonical encoding leaves the spare bits zero */
    return (long)o;
}

/* ---- JSON parts as msgpack objects ---- */

typedef struct doc {
    msgpack_sbuffer sb;
    msgpack_unpacked up;
} doc_t;

/* Decodes one base64url JSON object part into d (doc_free after). */
static bool doc_parse(doc_t *d, const char *part, size_t len)
{
    msgpack_sbuffer_init(&d->sb);
    msgpack_unpacked_init(&d->up);
    uint8_t json[SL_AUTH_PART_BYTES_MAX];
    long jn = b64url_decode(part, len, json, sizeof json);
    if (jn <= 0)
        return false;
    msgpack_packer pk;
    msgpack_packer_init(&pk, &d->sb, msgpack_sbuffer_write);
    if (sl_json_to_msgpack((const char *)json, (size_t)jn, &pk) != 0)
        return false;
    return msgpack_unpack_next(&d->up, d->sb.data, d->sb.size, NULL) == MSGPACK_UNPACK_SUCCESS &&
           d->up.data.type == MSGPACK_OBJECT_MAP;
}

static void doc_free(doc_t *d)
{
    msgpack_unpacked_destroy(&d->up);
    msgpack_sbuffer_destroy(&d->sb);
}

static bool obj_str_is(const msgpack_object *o, const char *s)
{
    size_t n = strlen(s);
    return o->type == MSGPACK_OBJECT_STR && o->via.str.size == n &&
           memcmp(o->via.str.ptr, s, n) == 0;
}

static const msgpack_object *map_get(const msgpack_object *m, const char *key)
{
    if (m->type != MSGPACK_OBJECT_MAP)
        return NULL;
    for (uint32_t i = 0; i < m->via.map.size; i++)
        if (obj_str_is(&m->via.map.ptr[i].key, key))
            return &m->via.map.ptr[i].val;
    return NULL;
}

/* A NumericDate (seconds since the epoch, maybe fractional) as wall ns,
 * saturating; false when o is not a number or is negative. */
static bool numeric_date_ns(const msgpack_object *o, uint64_t *ns)
{
    double s;
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        s = (double)o->via.u64;
    else if (o->type == MSGPACK_OBJECT_FLOAT64 || o->type == MSGPACK_OBJECT_FLOAT32)
        s = o->via.f64;
    else
        return false;
    if (!(s >= 0))
        return false;
    *ns = s >= 1.8e10 ? UINT64_MAX : (uint64_t)(s * 1e9);
    return true;
}

/* ---- signatures ---- */

typedef enum alg { ALG_HS256, ALG_RS256, ALG_ES256, ALG_BAD } alg_t;

static alg_t header_alg(const msgpack_object *hdr)
{
    /* "crit" names extensions the verifier must understand (RFC 7515
     * 4.1.11); sluice understands none. */
    if (map_get(hdr, "crit"))
        return ALG_BAD;
    const msgpack_object *alg = map_get(hdr, "alg");
    if (!alg)
        return ALG_BAD;
    if (obj_str_is(alg, "HS256"))
        return ALG_HS256;
    if (obj_str_is(alg, "RS256"))
        return ALG_RS256;
    if (obj_str_is(alg, "ES256"))
        return ALG_ES256;
    return ALG_BAD; /* "none" included */
}

static bool verify_hs256(const sl_auth_t *a, const uint8_t *in, size_t n, const uint8_t *sig,
                         size_t sig_len)
{
    if (sig_len != 32)
        return false;
    bool ok = false;
    for (uint32_t i = 0; i < a->nsecrets; i++) {
        uint8_t mac[EVP_MAX_MD_SIZE];
        unsigned mac_len = 0;
        if (!HMAC(EVP_sha256(), a->secrets[i].bytes, (int)a->secrets[i].len, in, n, mac, &mac_len))
            continue;
        /* Constant time: the comparison must not tell an attacker how many
         * leading bytes of a forged MAC were right. */
        if (mac_len == 32 && CRYPTO_memcmp(mac, sig, 32) == 0)
            ok = true;
    }
    return ok;
}

static bool verify_pkey(EVP_PKEY *k, const uint8_t *in, size_t n, const uint8_t *sig,
                        size_t sig_len)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (!md)
        return false;
    bool ok = EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, k) == 1 &&
              EVP_DigestVerify(md, sig, sig_len, in, n) == 1;
    EVP_MD_CTX_free(md);
    return ok;
}

/* JWS ES256 signatures are r || s, 32 bytes each (RFC 7518 3.4); OpenSSL
 * verifies the DER ECDSA-Sig-Value. Returns the DER length in der (cap
 * >= 80), or 0. */
static size_t es256_to_der(const uint8_t *sig, uint8_t *der, size_t cap)
{
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(sig, 32, NULL), *s = BN_bin2bn(sig + 32, 32, NULL);
    size_t len = 0;
    if (es && r && s && ECDSA_SIG_set0(es, r, s) == 1) {
        r = s = NULL; /* owned by es now */
        int need = i2d_ECDSA_SIG(es, NULL);
        if (need > 0 && (size_t)need <= cap) {
            uint8_t *p = der;
            len = (size_t)i2d_ECDSA_SIG(es, &p);
        }
    }
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(es);
    return len;
}

static bool verify_sig(const sl_auth_t *a, alg_t alg, const uint8_t *in, size_t n,
                       const uint8_t *sig, size_t sig_len)
{
    switch (alg) {
    case ALG_HS256:
        return verify_hs256(a, in, n, sig, sig_len);
    case ALG_RS256:
        for (uint32_t i = 0; i < a->nrsa; i++)
            if (verify_pkey(a->rsa[i], in, n, sig, sig_len))
                return true;
        return false;
    case ALG_ES256: {
        uint8_t der[96];
        size_t dn = sig_len == 64 ? es256_to_der(sig, der, sizeof der) : 0;
        for (uint32_t i = 0; dn && i < a->nec; i++)
            if (verify_pkey(a->ec[i], in, n, der, dn))
                return true;
        return false;
    }
    case ALG_BAD:
        break;
    }
    return false;
}

/* ---- claims ---- */

static bool pattern_valid(const char *p, size_t n)
{
    if (n == 0 || n > SL_AUTH_PART_BYTES_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (p[i] == '\0' || (p[i] == '*' && i != n - 1))
            return false; /* '*' only as the last byte */
    return true;
}

/* Counts and sizes one pattern list (NULL: none). False when it is not an
 * array of valid pattern strings. */
static bool patterns_measure(const msgpack_object *arr, uint32_t *count, size_t *bytes)
{
    *count = 0;
    if (!arr)
        return true;
    if (arr->type != MSGPACK_OBJECT_ARRAY)
        return false;
    for (uint32_t i = 0; i < arr->via.array.size; i++) {
        const msgpack_object *o = &arr->via.array.ptr[i];
        if (o->type != MSGPACK_OBJECT_STR || !pattern_valid(o->via.str.ptr, o->via.str.size))
            return false;
        *bytes += o->via.str.size + 1;
    }
    *count = arr->via.array.size;
    return true;
}

static size_t patterns_copy(const msgpack_object *arr, char *out)
{
    size_t o = 0;
    for (uint32_t i = 0; arr && i < arr->via.array.size; i++) {
        const msgpack_object_str *s = &arr->via.array.ptr[i].via.str;
        memcpy(out + o, s->ptr, s->size);
        o += s->size;
        out[o++] = '\0';
    }
    return o;
}

static bool aud_matches(const msgpack_object *aud, const char *want)
{
    if (!aud)
        return false;
    if (aud->type == MSGPACK_OBJECT_STR)
        return obj_str_is(aud, want);
    if (aud->type != MSGPACK_OBJECT_ARRAY)
        return false;
    for (uint32_t i = 0; i < aud->via.array.size; i++)
        if (obj_str_is(&aud->via.array.ptr[i], want))
            return true;
    return false;
}

/* Checks the registered claims (exp, nbf, iss, aud). Returns NULL or the
 * reason; *exp_ns is exp in wall ns (0: absent). */
static const char *check_times(const sl_auth_t *a, const msgpack_object *cl, uint64_t now,
                               uint64_t *exp_ns)
{
    const msgpack_object *o;
    *exp_ns = 0;
    if ((o = map_get(cl, "exp")) != NULL) {
        if (!numeric_date_ns(o, exp_ns))
            return "malformed exp";
        if (*exp_ns == 0)
            *exp_ns = 1;
        if (now >= *exp_ns && now - *exp_ns >= a->leeway_ns)
            return "expired";
    }
    uint64_t nbf;
    if ((o = map_get(cl, "nbf")) != NULL) {
        if (!numeric_date_ns(o, &nbf))
            return "malformed nbf";
        if (nbf > now && nbf - now > a->leeway_ns)
            return "not yet valid";
    }
    if (a->issuer && !((o = map_get(cl, "iss")) && obj_str_is(o, a->issuer)))
        return "wrong issuer";
    if (a->audience && !aud_matches(map_get(cl, "aud"), a->audience))
        return "wrong audience";
    return NULL;
}

/* Builds the principal from checked claims; NULL with *why on a bad
 * `sluice` claim. */
static sl_auth_principal_t *principal_from(const sl_auth_t *a, const msgpack_object *cl,
                                           uint64_t exp_ns, const char **why)
{
    const msgpack_object *caps = map_get(cl, "sluice");
    const msgpack_object *pub = NULL, *sub = NULL, *adm = NULL;
    if (caps && caps->type != MSGPACK_OBJECT_MAP && caps->type != MSGPACK_OBJECT_NIL) {
        *why = "malformed sluice claim";
        return NULL;
    }
    if (caps && caps->type == MSGPACK_OBJECT_MAP) {
        pub = map_get(caps, "pub");
        sub = map_get(caps, "sub");
        adm = map_get(caps, "admin");
    }
    uint32_t npub, nsub;
    size_t bytes = 0;
    if (!patterns_measure(pub, &npub, &bytes) || !patterns_measure(sub, &nsub, &bytes) ||
        (adm && adm->type != MSGPACK_OBJECT_BOOLEAN)) {
        *why = "malformed sluice claim";
        return NULL;
    }
    if (npub + nsub > SL_AUTH_PATTERNS_MAX) {
        *why = "too many patterns";
        return NULL;
    }
    sl_auth_principal_t *p = calloc(1, sizeof *p + bytes + 1);
    if (!p) {
        *why = "out of memory";
        return NULL;
    }
    p->expires_ns = exp_ns ? (exp_ns > UINT64_MAX - a->leeway_ns ? UINT64_MAX : exp_ns + a->leeway_ns)
                           : 0;
    p->admin = adm && adm->via.boolean;
    p->npub = npub;
    p->nsub = nsub;
    p->pats_len = patterns_copy(pub, p->pats);
    p->pats_len += patterns_copy(sub, p->pats + p->pats_len);
    const msgpack_object *name = map_get(cl, "sub");
    if (name && name->type == MSGPACK_OBJECT_STR && name->via.str.size > 0)
        log_safe(p->name, sizeof p->name, name->via.str.ptr, name->via.str.size);
    else
        memcpy(p->name, "-", 2);
    return p;
}

sl_auth_verdict_t sl_auth_verify(const sl_auth_t *a, const char *token, size_t len,
                                 uint64_t now_wall_ns, sl_auth_principal_t **out,
                                 const char **why)
{
    *out = NULL;
    *why = "malformed token";
    if (!sl_auth_enabled(a)) {
        *why = "no key configured";
        return SL_AUTH_UNAUTHORIZED;
    }
    if (len == 0 || len > SL_AUTH_TOKEN_BYTES_MAX) {
        *why = len ? "token too long" : "no token";
        return SL_AUTH_UNAUTHORIZED;
    }
    const char *d1 = memchr(token, '.', len);
    const char *d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - token)) : NULL;
    if (!d1 || !d2 || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - token)))
        return SL_AUTH_UNAUTHORIZED;
    doc_t hdr, cl;
    bool hdr_ok = doc_parse(&hdr, token, (size_t)(d1 - token));
    alg_t alg = hdr_ok ? header_alg(&hdr.up.data) : ALG_BAD;
    doc_free(&hdr);
    if (alg == ALG_BAD) {
        *why = hdr_ok ? "unsupported alg" : "malformed header";
        return SL_AUTH_UNAUTHORIZED;
    }
    uint8_t sig[SL_AUTH_PART_BYTES_MAX];
    const char *s = d2 + 1;
    long sig_len = b64url_decode(s, len - (size_t)(s - token), sig, sizeof sig);
    if (sig_len <= 0 ||
        !verify_sig(a, alg, (const uint8_t *)token, (size_t)(d2 - token), sig, (size_t)sig_len)) {
        *why = "bad signature";
        return SL_AUTH_UNAUTHORIZED;
    }
    /* Only signed claims are read. */
    if (!doc_parse(&cl, d1 + 1, (size_t)(d2 - d1 - 1))) {
        doc_free(&cl);
        *why = "malformed claims";
        return SL_AUTH_UNAUTHORIZED;
    }
    uint64_t exp_ns;
    const char *bad = check_times(a, &cl.up.data, now_wall_ns, &exp_ns);
    if (!bad)
        *out = principal_from(a, &cl.up.data, exp_ns, &bad);
    doc_free(&cl);
    if (!*out) {
        *why = bad;
        return SL_AUTH_UNAUTHORIZED;
    }
    *why = NULL;
    return SL_AUTH_OK;
}

void sl_auth_principal_free(sl_auth_principal_t *p) { free(p); }

uint64_t sl_auth_principal_expires_ns(const sl_auth_principal_t *p)
{
    return p ? p->expires_ns : 0;
}

const char *sl_auth_principal_name(const sl_auth_principal_t *p) { return p ? p->name : "-"; }

/* ---- the decision ---- */

bool sl_auth_pattern_match(const char *pat, size_t pat_len, const char *id, size_t id_len)
{
    if (pat_len > 0 && pat[pat_len - 1] == '*')
        return id_len >= pat_len - 1 && memcmp(pat, id, pat_len - 1) == 0;
    return pat_len == id_len && memcmp(pat, id, id_len) == 0;
}

/* Whether one of count patterns starting at pats matches; *next is set
 * past them. */
static bool any_match(const char *pats, uint32_t count, const char *id, size_t id_len,
                      const char **next)
{
    bool hit = false;
    for (uint32_t i = 0; i < count; i++) {
        size_t n = strlen(pats);
        if (!hit && sl_auth_pattern_match(pats, n, id, id_len))
            hit = true;
        pats += n + 1;
    }
    *next = pats;
    return hit;
}

sl_auth_verdict_t sl_auth_allow(const sl_auth_t *a, const sl_auth_principal_t *p,
                                sl_auth_action_t action, const char *id, size_t id_len,
                                uint64_t now_wall_ns)
{
    if (!sl_auth_enabled(a))
        return SL_AUTH_OK;
    if (!p || (p->expires_ns && now_wall_ns >= p->expires_ns))
        return SL_AUTH_UNAUTHORIZED;
    if (p->admin || action == SL_AUTH_LIST)
        return SL_AUTH_OK;
    if (action == SL_AUTH_ADMIN || !id)
        return SL_AUTH_FORBIDDEN;
    const char *subs;
    bool pub_hit = any_match(p->pats, p->npub, id, id_len, &subs);
    if (action == SL_AUTH_PUB)
        return pub_hit ? SL_AUTH_OK : SL_AUTH_FORBIDDEN;
    const char *end;
    return any_match(subs, p->nsub, id, id_len, &end) ? SL_AUTH_OK : SL_AUTH_FORBIDDEN;
}

/* ---- protected mode ---- */

static bool addr_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
        const uint8_t *b = in6->sin6_addr.s6_addr;
        if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr))
            return true;
        return IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) && b[12] == 127;
    }
    return false;
}

/* True when every address HOST:PORT resolves to is loopback ("unix:" is
 * local by nature). An empty host or one that does not resolve is not. */
static bool listen_is_local(const char *addr)
{
    if (strncmp(addr, "unix:", 5) == 0)
        return true;
    char host[256];
    const char *colon = strrchr(addr, ':');
    size_t hn = colon ? (size_t)(colon - addr) : strlen(addr);
    if (hn >= sizeof host)
        return false;
    memcpy(host, addr, hn);
    host[hn] = '\0';
    char *h = host;
    if (hn >= 2 && host[0] == '[' && host[hn - 1] == ']') {
        host[hn - 1] = '\0';
        h = host + 1;
    }
    if (!*h)
        return false;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    if (getaddrinfo(h, NULL, &hints, &res) != 0)
        return false;
    bool local = res != NULL;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next)
        local = local && addr_loopback(ai->ai_addr);
    freeaddrinfo(res);
    return local;
}

static int check_one(const char *flag, const char *addr, bool allow_anonymous, char *err, size_t n)
{
    if (listen_is_local(addr))
        return 0;
    if (allow_anonymous) {
        sl_warn("anonymous access on a non-loopback listener: every client is admin",
                "listener=%s flag=--%s hint=\"add --auth-hs256-secret-file or "
                "--auth-public-key-file\"", addr, flag);
        return 0;
    }
    snprintf(err, n, "--%s %s is not loopback and no key is configured: anyone could publish "
             "and read; add --auth-hs256-secret-file FILE or --auth-public-key-file FILE, or pass "
             "--allow-anonymous to serve without access control", flag, addr);
    return -1;
}

int sl_auth_check_listeners(const sl_auth_t *a, const char *http_listen,
                            const sl_flag_list_t *rpc_listen, bool allow_anonymous, char *err,
                            size_t n)
{
    if (sl_auth_enabled(a))
        return 0;
    if (http_listen && check_one("listen", http_listen, allow_anonymous, err, n) != 0)
        return -1;
    for (uint32_t i = 0; rpc_listen && i < rpc_listen->count; i++)
        if (check_one("rpc-listen", rpc_listen->items[i], allow_anonymous, err, n) != 0)
            return -1;
    return 0;
}

/* ---- audit ---- */

void sl_auth_audit(sl_auth_t *a, int status, const char *peer, const char *what,
                   const sl_auth_principal_t *p, const char *why)
{
    if (!a)
        return;
    atomic_fetch_add_explicit(status == 403 ? &a->refused_403 : &a->refused_401, 1,
                              memory_order_relaxed);
    /* A budget of lines per wall second: a client hammering with bad
     * tokens must not turn the log into the bottleneck. Relaxed: the
     * budget is approximate by design (a racing second may log a line or
     * two more). */
    uint64_t sec = sl_clock_now_ns() / NS_PER_S;
    uint64_t cur = atomic_load_explicit(&a->audit_second, memory_order_relaxed);
    if (cur != sec &&
        atomic_compare_exchange_strong_explicit(&a->audit_second, &cur, sec, memory_order_relaxed,
                                                memory_order_relaxed))
        atomic_store_explicit(&a->audit_lines, 0, memory_order_relaxed);
    if (atomic_fetch_add_explicit(&a->audit_lines, 1, memory_order_relaxed) >=
        SL_AUTH_AUDIT_LINES_PER_S) {
        atomic_fetch_add_explicit(&a->audit_suppressed, 1, memory_order_relaxed);
        return;
    }
    uint64_t dropped = atomic_exchange_explicit(&a->audit_suppressed, 0, memory_order_relaxed);
    char req[160];
    what = what ? what : "-";
    log_safe(req, sizeof req, what, strlen(what));
    sl_warn("access refused", "status=%d peer=%s request=\"%s\" principal=\"%s\" reason=\"%s\" "
            "suppressed=%llu", status, peer ? peer : "-", req, sl_auth_principal_name(p),
            why ? why : "-", (unsigned long long)dropped);
}

uint64_t sl_auth_refused(const sl_auth_t *a, int status)
{
    if (!a)
        return 0;
    return atomic_load_explicit(status == 403 ? &a->refused_403 : &a->refused_401,
                                memory_order_relaxed);
}
