/*
 * Access control: JWT verification (HS256, RS256, ES256; expiry, not
 * before, leeway, issuer, audience, key rotation), the attacks a verifier
 * must refuse (alg none, an HS256 token keyed with the RSA public key's
 * bytes, an RS256 token against an EC key, DER instead of raw ES256
 * signatures, crit headers, non-canonical base64url), and the one
 * decision, sl_auth_allow, as a table. Keys are generated here with
 * OpenSSL and written to temporary files, as an operator would pass them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include "actors/auth.h"
#include "runtime/base.h"
#include "runtime/clock.h"
#include "runtime/limits.h"

#include "tests/base64.h"
#include "tests/check.h"

#define SECRET "0123456789abcdef0123456789abcdef-test-secret"
#define SECRET2 "another-secret-for-rotation-0123456789abcdef"

static char dir[] = "/tmp/sluice-auth-test-XXXXXX";
static char rsa_pem_path[256], ec_pem_path[256], sec_path[256], sec2_path[256];
static EVP_PKEY *rsa_key, *ec_key, *rsa_other;
static char rsa_pub_pem[4096];
static uint64_t now_ns;

/* base64url of in into out, NUL-terminated. */
static void b64url(const uint8_t *in, size_t n, char *out)
{
    out[sl_test_base64(in, n, out, true)] = '\0';
}

typedef enum how { HS, HS_PEM, RS, RS_OTHER, ES, ES_DER, NONE } how_t;

/* header.claims.signature, signed as how says. */
static void make(char *out, const char *header, const char *claims, how_t how, const char *secret)
{
    char h[512], c[2048];
    b64url((const uint8_t *)header, strlen(header), h);
    b64url((const uint8_t *)claims, strlen(claims), c);
    int n = sprintf(out, "%s.%s", h, c);
    uint8_t sig[1024];
    size_t sig_len = 0;
    if (how == HS || how == HS_PEM) {
        const char *k = how == HS ? secret : rsa_pub_pem;
        unsigned ml = 0;
        HMAC(EVP_sha256(), k, (int)strlen(k), (const uint8_t *)out, (size_t)n, sig, &ml);
        sig_len = ml;
    } else if (how != NONE) {
        EVP_PKEY *k = how == RS ? rsa_key : how == RS_OTHER ? rsa_other : ec_key;
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        uint8_t der[1024];
        size_t dl = sizeof der;
        CHECK(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, k) == 1);
        CHECK(EVP_DigestSign(md, der, &dl, (const uint8_t *)out, (size_t)n) == 1);
        EVP_MD_CTX_free(md);
        if (how == ES) { /* DER ECDSA-Sig-Value -> raw r || s */
            const uint8_t *p = der;
            ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)dl);
            CHECK(es != NULL);
            BN_bn2binpad(ECDSA_SIG_get0_r(es), sig, 32);
            BN_bn2binpad(ECDSA_SIG_get0_s(es), sig + 32, 32);
            ECDSA_SIG_free(es);
            sig_len = 64;
        } else {
            memcpy(sig, der, dl);
            sig_len = dl;
        }
    }
    char s[1500];
    b64url(sig, sig_len, s);
    sprintf(out + n, ".%s", s);
}

static void write_file(const char *path, const char *data)
{
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    fputs(data, f);
    fclose(f);
}

static void write_pub(const char *path, EVP_PKEY *k, char *copy, size_t cap)
{
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    CHECK(PEM_write_PUBKEY(f, k) == 1);
    fclose(f);
    if (copy) {
        f = fopen(path, "r");
        size_t n = fread(copy, 1, cap - 1, f);
        copy[n] = '\0';
        fclose(f);
    }
}

static void setup(void)
{
    CHECK(mkdtemp(dir) != NULL);
    rsa_key = EVP_RSA_gen(2048);
    rsa_other = EVP_RSA_gen(2048);
    ec_key = EVP_EC_gen("P-256");
    CHECK(rsa_key && rsa_other && ec_key);
    snprintf(rsa_pem_path, sizeof rsa_pem_path, "%s/rsa.pem", dir);
    snprintf(ec_pem_path, sizeof ec_pem_path, "%s/ec.pem", dir);
    snprintf(sec_path, sizeof sec_path, "%s/secret", dir);
    snprintf(sec2_path, sizeof sec2_path, "%s/secret2", dir);
    write_pub(rsa_pem_path, rsa_key, rsa_pub_pem, sizeof rsa_pub_pem);
    write_pub(ec_pem_path, ec_key, NULL, 0);
    write_file(sec_path, SECRET "\n"); /* the final newline is not part of it */
    write_file(sec2_path, SECRET2);
    now_ns = sl_clock_wall_ns();
}

static sl_auth_t *keyring(const char *iss, const char *aud)
{
    sl_flag_list_t secrets = {{sec_path, sec2_path}, 2};
    sl_flag_list_t keys = {{rsa_pem_path, ec_pem_path}, 2};
    sl_auth_config_t cfg = {&secrets, &keys, iss, aud, 60ull * 1000000000ull};
    sl_auth_t *a = NULL;
    char err[256];
    int rc = sl_auth_create(&cfg, &a, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "%s\n", err);
    CHECK(rc == 0 && sl_auth_enabled(a));
    return a;
}

static sl_auth_verdict_t verify(sl_auth_t *a, const char *tok, sl_auth_principal_t **p)
{
    const char *why = NULL;
    sl_auth_verdict_t v = sl_auth_verify(a, tok, strlen(tok), now_ns, p, &why);
    CHECK((v == SL_AUTH_OK) == (*p != NULL));
    CHECK(v == SL_AUTH_OK || why != NULL);
    return v;
}

/* One row: a token built from header, claims and signing, and what
 * verification must say. */
typedef struct vrow {
    const char *name;
    const char *header;
    const char *claims; /* %ld: now in seconds, with an offset */
    long offset_s;
    how_t how;
    const char *secret;
    sl_auth_verdict_t want;
} vrow_t;

static void test_auth_verify_table(void)
{
    sl_auth_t *a = keyring(NULL, NULL);
    static const char hs[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    static const char rs[] = "{\"alg\":\"RS256\",\"typ\":\"JWT\"}";
    static const char es[] = "{\"alg\":\"ES256\",\"typ\":\"JWT\"}";
    static const char exp_cl[] = "{\"sub\":\"u1\",\"exp\":%ld,\"sluice\":{\"pub\":[\"a\"]}}";
    const vrow_t rows[] = {
        {"hs256 valid", hs, exp_cl, 300, HS, SECRET, SL_AUTH_OK},
        {"hs256 rotated key", hs, exp_cl, 300, HS, SECRET2, SL_AUTH_OK},
        {"hs256 wrong key", hs, exp_cl, 300, HS, "a-secret-nobody-configured-0123456789", SL_AUTH_UNAUTHORIZED},
        {"hs256 secret with its newline", hs, exp_cl, 300, HS, SECRET "\n", SL_AUTH_UNAUTHORIZED},
        {"expired beyond leeway", hs, exp_cl, -61, HS, SECRET, SL_AUTH_UNAUTHORIZED},
        {"expired within leeway", hs, exp_cl, -30, HS, SECRET, SL_AUTH_OK},
        {"not yet valid", hs, "{\"nbf\":%ld}", 120, HS, SECRET, SL_AUTH_UNAUTHORIZED},
        {"nbf within leeway", hs, "{\"nbf\":%ld}", 30, HS, SECRET, SL_AUTH_OK},
        {"fractional exp", hs, "{\"exp\":%ld.5}", 100, HS, SECRET, SL_AUTH_OK},
        {"exp not a number", hs, "{\"exp\":\"%ld\"}", 100, HS, SECRET, SL_AUTH_UNAUTHORIZED},
        {"rs256 valid", rs, exp_cl, 300, RS, NULL, SL_AUTH_OK},
        {"rs256 unknown key", rs, exp_cl, 300, RS_OTHER, NULL, SL_AUTH_UNAUTHORIZED},
        {"es256 valid", es, exp_cl, 300, ES, NULL, SL_AUTH_OK},
        {"es256 with a DER signature", es, exp_cl, 300, ES_DER, NULL, SL_AUTH_UNAUTHORIZED},
        {"es256-signed token named RS256", rs, exp_cl, 300, ES_DER, NULL, SL_AUTH_UNAUTHORIZED},
        {"rs256-signed token named ES256", es, exp_cl, 300, RS, NULL, SL_AUTH_UNAUTHORIZED},
        {"alg none", "{\"alg\":\"none\"}", exp_cl, 300, NONE, NULL, SL_AUTH_UNAUTHORIZED},
        {"alg None", "{\"alg\":\"None\"}", exp_cl, 300, NONE, NULL, SL_AUTH_UNAUTHORIZED},
        {"alg none with an hmac", "{\"alg\":\"none\"}", exp_cl, 300, HS, SECRET, SL_AUTH_UNAUTHORIZED},
        {"hs256 keyed with the rsa public key", hs, exp_cl, 300, HS_PEM, NULL, SL_AUTH_UNAUTHORIZED},
        {"hs384", "{\"alg\":\"HS384\"}", exp_cl, 300, HS, SECRET, SL_AUTH_UNAUTHORIZED},
        {"no alg", "{\"typ\":\"JWT\"}", exp_cl, 300, HS, SECRET, SL_AUTH_UNAUTHORIZED},
        {"crit header", "{\"alg\":\"HS256\",\"crit\":[\"x\"],\"x\":1}", exp_cl, 300, HS, SECRET, SL_AUTH_UNAUTHORIZED},
        {"header not json", "not json", exp_cl, 300, HS, SECRET, SL_AUTH_UNAUTHORIZED},
        {"claims not an object", hs, "[%ld]", 0, HS, SECRET, SL_AUTH_UNAUTHORIZED},
        {"bad sluice claim", hs, "{\"exp\":%ld,\"sluice\":{\"pub\":\"a\"}}", 300, HS, SECRET, SL_AUTH_UNAUTHORIZED},
        {"star inside a pattern", hs, "{\"exp\":%ld,\"sluice\":{\"sub\":[\"a*b\"]}}", 300, HS, SECRET, SL_AUTH_UNAUTHORIZED},
        {"no sluice claim", hs, "{\"exp\":%ld}", 300, HS, SECRET, SL_AUTH_OK},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(rows); i++) {
        char claims[512], tok[4096];
        snprintf(claims, sizeof claims, rows[i].claims, (long)(now_ns / 1000000000ull) + rows[i].offset_s);
        make(tok, rows[i].header, claims, rows[i].how, rows[i].secret);
        sl_auth_principal_t *p = NULL;
        sl_auth_verdict_t v = verify(a, tok, &p);
        if (v != rows[i].want)
            fprintf(stderr, "row \"%s\": got %d, want %d\n", rows[i].name, v, rows[i].want);
        CHECK(v == rows[i].want);
        sl_auth_principal_free(p);
    }
    sl_auth_destroy(a);
}

static void test_auth_malformed(void)
{
    sl_auth_t *a = keyring(NULL, NULL);
    char good[4096];
    char claims[128];
    snprintf(claims, sizeof claims, "{\"exp\":%ld}", (long)(now_ns / 1000000000ull) + 300);
    make(good, "{\"alg\":\"HS256\"}", claims, HS, SECRET);
    sl_auth_principal_t *p = NULL;
    CHECK(verify(a, good, &p) == SL_AUTH_OK);
    sl_auth_principal_free(p);
    const char *bad[] = {"", "a", "a.b", "a.b.c.d", "..", "e30.e30.", "e30.e30.!!!!"};
    for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++)
        CHECK(verify(a, bad[i], &p) == SL_AUTH_UNAUTHORIZED);
    /* A flipped signature bit, a trailing padding character, a non-zero
     * spare bit in the last base64url character: all refused. */
    char t[4200];
    strcpy(t, good);
    t[strlen(t) - 3] = t[strlen(t) - 3] == 'A' ? 'B' : 'A';
    CHECK(verify(a, t, &p) == SL_AUTH_UNAUTHORIZED);
    snprintf(t, sizeof t, "%s=", good);
    CHECK(verify(a, t, &p) == SL_AUTH_UNAUTHORIZED);
    /* 32 bytes of HMAC = 43 characters, the last one carrying 2 spare
     * bits: a different character decoding to the same bytes. */
    strcpy(t, good);
    char *last = t + strlen(t) - 1;
    *last = (char)(*last == 'A' ? 'B' : *last + 1);
    CHECK(verify(a, t, &p) == SL_AUTH_UNAUTHORIZED);
    /* Oversized token. */
    char *big = malloc(SL_AUTH_TOKEN_BYTES_MAX + 10);
    memset(big, 'a', SL_AUTH_TOKEN_BYTES_MAX + 9);
    big[SL_AUTH_TOKEN_BYTES_MAX + 9] = '\0';
    CHECK(verify(a, big, &p) == SL_AUTH_UNAUTHORIZED);
    free(big);
    sl_auth_destroy(a);
}

static void test_auth_issuer_audience(void)
{
    sl_auth_t *a = keyring("https://issuer.example", "sluice");
    struct {
        const char *claims;
        sl_auth_verdict_t want;
    } rows[] = {
        {"{\"iss\":\"https://issuer.example\",\"aud\":\"sluice\"}", SL_AUTH_OK},
        {"{\"iss\":\"https://issuer.example\",\"aud\":[\"x\",\"sluice\"]}", SL_AUTH_OK},
        {"{\"iss\":\"https://issuer.example\",\"aud\":[\"x\"]}", SL_AUTH_UNAUTHORIZED},
        {"{\"iss\":\"https://other.example\",\"aud\":\"sluice\"}", SL_AUTH_UNAUTHORIZED},
        {"{\"aud\":\"sluice\"}", SL_AUTH_UNAUTHORIZED},
        {"{\"iss\":\"https://issuer.example\"}", SL_AUTH_UNAUTHORIZED},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(rows); i++) {
        char tok[4096];
        make(tok, "{\"alg\":\"HS256\"}", rows[i].claims, HS, SECRET);
        sl_auth_principal_t *p = NULL;
        CHECK(verify(a, tok, &p) == rows[i].want);
        sl_auth_principal_free(p);
    }
    sl_auth_destroy(a);
}

static void test_auth_keys_refused(void)
{
    char err[256], path[300];
    sl_auth_t *a = NULL;
    snprintf(path, sizeof path, "%s/short", dir);
    write_file(path, "too-short\n");
    sl_flag_list_t l = {{path}, 1};
    sl_auth_config_t cfg = {&l, NULL, NULL, NULL, 0};
    CHECK(sl_auth_create(&cfg, &a, err, sizeof err) == -1 && strstr(err, "32 to 4096"));
    sl_flag_list_t k = {{sec_path}, 1}; /* a secret is not a PEM key */
    sl_auth_config_t cfg2 = {NULL, &k, NULL, NULL, 0};
    CHECK(sl_auth_create(&cfg2, &a, err, sizeof err) == -1 && strstr(err, "PEM"));
    snprintf(path, sizeof path, "%s/p384.pem", dir);
    EVP_PKEY *p384 = EVP_EC_gen("P-384");
    write_pub(path, p384, NULL, 0);
    EVP_PKEY_free(p384);
    sl_flag_list_t k2 = {{path}, 1};
    sl_auth_config_t cfg3 = {NULL, &k2, NULL, NULL, 0};
    CHECK(sl_auth_create(&cfg3, &a, err, sizeof err) == -1 && strstr(err, "P-256"));
    sl_flag_list_t missing = {{"/nonexistent/secret"}, 1};
    sl_auth_config_t cfg4 = {&missing, NULL, NULL, NULL, 0};
    CHECK(sl_auth_create(&cfg4, &a, err, sizeof err) == -1);
    /* No key: an open keyring, every caller allowed. */
    sl_auth_config_t none = {NULL, NULL, NULL, NULL, 0};
    CHECK(sl_auth_create(&none, &a, err, sizeof err) == 0 && !sl_auth_enabled(a));
    CHECK(sl_auth_allow(a, NULL, SL_AUTH_ADMIN, NULL, 0, now_ns) == SL_AUTH_OK);
    CHECK(sl_auth_allow(NULL, NULL, SL_AUTH_PUB, "x", 1, now_ns) == SL_AUTH_OK);
    sl_auth_destroy(a);
}

static sl_auth_principal_t *principal(sl_auth_t *a, const char *caps, long exp_offset_s)
{
    char claims[1024], tok[4096];
    snprintf(claims, sizeof claims, "{\"exp\":%ld,\"sluice\":%s}",
             (long)(now_ns / 1000000000ull) + exp_offset_s, caps);
    make(tok, "{\"alg\":\"HS256\"}", claims, HS, SECRET);
    sl_auth_principal_t *p = NULL;
    CHECK(verify(a, tok, &p) == SL_AUTH_OK);
    return p;
}

/* The decision table: principal x action x session -> verdict. */
static void test_auth_allow_table(void)
{
    sl_auth_t *a = keyring(NULL, NULL);
    sl_auth_principal_t *team = principal(a, "{\"pub\":[\"team-7-*\",\"exact\"],\"sub\":[\"feed\",\"team-*\"]}", 300);
    sl_auth_principal_t *reader = principal(a, "{\"sub\":[\"*\"]}", 300);
    sl_auth_principal_t *admin = principal(a, "{\"admin\":true}", 300);
    sl_auth_principal_t *nothing = principal(a, "{}", 300);
    sl_auth_principal_t *old = principal(a, "{\"admin\":true}", -50); /* within leeway now */
    uint64_t later = now_ns + 11ull * 1000000000ull; /* old is beyond its leeway then */
    struct {
        const sl_auth_principal_t *p;
        sl_auth_action_t act;
        const char *id;
        uint64_t at;
        sl_auth_verdict_t want;
    } rows[] = {
        {NULL, SL_AUTH_SUB, "feed", 0, SL_AUTH_UNAUTHORIZED},
        {NULL, SL_AUTH_ADMIN, NULL, 0, SL_AUTH_UNAUTHORIZED},
        {NULL, SL_AUTH_LIST, NULL, 0, SL_AUTH_UNAUTHORIZED},
        {team, SL_AUTH_PUB, "team-7-a", 0, SL_AUTH_OK},
        {team, SL_AUTH_PUB, "team-7-", 0, SL_AUTH_OK},
        {team, SL_AUTH_PUB, "team-7", 0, SL_AUTH_FORBIDDEN},
        {team, SL_AUTH_PUB, "team-8-a", 0, SL_AUTH_FORBIDDEN},
        {team, SL_AUTH_PUB, "exact", 0, SL_AUTH_OK},
        {team, SL_AUTH_PUB, "exactly", 0, SL_AUTH_FORBIDDEN},
        {team, SL_AUTH_PUB, "exac", 0, SL_AUTH_FORBIDDEN},
        {team, SL_AUTH_PUB, "feed", 0, SL_AUTH_FORBIDDEN}, /* sub does not give pub */
        {team, SL_AUTH_SUB, "feed", 0, SL_AUTH_OK},
        {team, SL_AUTH_SUB, "team-9", 0, SL_AUTH_OK},
        {team, SL_AUTH_SUB, "exact", 0, SL_AUTH_FORBIDDEN}, /* pub does not give sub */
        {team, SL_AUTH_SUB, "feeds", 0, SL_AUTH_FORBIDDEN},
        {team, SL_AUTH_ADMIN, NULL, 0, SL_AUTH_FORBIDDEN},
        {team, SL_AUTH_LIST, NULL, 0, SL_AUTH_OK},
        {reader, SL_AUTH_SUB, "anything", 0, SL_AUTH_OK},
        {reader, SL_AUTH_PUB, "anything", 0, SL_AUTH_FORBIDDEN},
        {admin, SL_AUTH_PUB, "anything", 0, SL_AUTH_OK},
        {admin, SL_AUTH_SUB, "anything", 0, SL_AUTH_OK},
        {admin, SL_AUTH_ADMIN, NULL, 0, SL_AUTH_OK},
        {nothing, SL_AUTH_SUB, "feed", 0, SL_AUTH_FORBIDDEN},
        {nothing, SL_AUTH_ADMIN, NULL, 0, SL_AUTH_FORBIDDEN},
        {old, SL_AUTH_ADMIN, NULL, 0, SL_AUTH_OK},
        {old, SL_AUTH_ADMIN, NULL, 1, SL_AUTH_UNAUTHORIZED}, /* a cached principal expires */
        {team, SL_AUTH_SUB, "feed", 1, SL_AUTH_OK},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(rows); i++) {
        const char *id = rows[i].id;
        sl_auth_verdict_t v = sl_auth_allow(a, rows[i].p, rows[i].act, id, id ? strlen(id) : 0,
                                            rows[i].at ? later : now_ns);
        if (v != rows[i].want)
            fprintf(stderr, "allow row %zu: got %d want %d\n", i, v, rows[i].want);
        CHECK(v == rows[i].want);
    }
    CHECK(sl_auth_principal_expires_ns(old) < later);
    CHECK(sl_auth_principal_expires_ns(NULL) == 0);
    sl_auth_principal_free(team);
    sl_auth_principal_free(reader);
    sl_auth_principal_free(admin);
    sl_auth_principal_free(nothing);
    sl_auth_principal_free(old);
    sl_auth_destroy(a);
}

static void test_auth_pattern(void)
{
    CHECK(sl_auth_pattern_match("*", 1, "x", 1));
    CHECK(sl_auth_pattern_match("a*", 2, "a", 1));
    CHECK(!sl_auth_pattern_match("ab*", 3, "a", 1));
    CHECK(sl_auth_pattern_match("ab", 2, "ab", 2));
    CHECK(!sl_auth_pattern_match("ab", 2, "abc", 3));
}

static void test_auth_listeners(void)
{
    char err[512];
    sl_flag_list_t none = {{NULL}, 0};
    sl_flag_list_t unix_only = {{"unix:/tmp/x.sock"}, 1};
    sl_flag_list_t public_rpc = {{"0.0.0.0:0"}, 1};
    CHECK(sl_auth_check_listeners(NULL, "127.0.0.1:0", &none, false, err, sizeof err) == 0);
    CHECK(sl_auth_check_listeners(NULL, "[::1]:0", &unix_only, false, err, sizeof err) == 0);
    CHECK(sl_auth_check_listeners(NULL, "localhost:0", &none, false, err, sizeof err) == 0);
    CHECK(sl_auth_check_listeners(NULL, "0.0.0.0:0", &none, false, err, sizeof err) == -1);
    CHECK(strstr(err, "--allow-anonymous") && strstr(err, "--auth-hs256-secret-file"));
    CHECK(sl_auth_check_listeners(NULL, ":8080", &none, false, err, sizeof err) == -1);
    CHECK(sl_auth_check_listeners(NULL, "127.0.0.1:0", &public_rpc, false, err, sizeof err) == -1);
    CHECK(sl_auth_check_listeners(NULL, "0.0.0.0:0", &none, true, err, sizeof err) == 0);
    sl_auth_t *a = keyring(NULL, NULL);
    CHECK(sl_auth_check_listeners(a, "0.0.0.0:0", &public_rpc, false, err, sizeof err) == 0);
    sl_auth_destroy(a);
}

static void test_auth_audit_counts(void)
{
    sl_auth_t *a = keyring(NULL, NULL);
    for (int i = 0; i < 3 * SL_AUTH_AUDIT_LINES_PER_S; i++) /* logs at most the budget */
        sl_auth_audit(a, 401, "127.0.0.1:1", "GET /x\"y", NULL, "no token");
    sl_auth_audit(a, 403, "127.0.0.1:1", "GET /y", NULL, "no capability");
    CHECK(sl_auth_refused(a, 401) == 3 * SL_AUTH_AUDIT_LINES_PER_S);
    CHECK(sl_auth_refused(a, 403) == 1);
    sl_auth_destroy(a);
}

static void cleanup(void)
{
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
    EVP_PKEY_free(rsa_key);
    EVP_PKEY_free(rsa_other);
    EVP_PKEY_free(ec_key);
}

int main(void)
{
    setup();
    test_auth_pattern();
    test_auth_verify_table();
    test_auth_malformed();
    test_auth_issuer_audience();
    test_auth_keys_refused();
    test_auth_allow_table();
    test_auth_listeners();
    test_auth_audit_counts();
    cleanup();
    printf("auth_test: ok\n");
    return 0;
}
