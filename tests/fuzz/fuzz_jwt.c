/*
 * Token verification (actors/auth.h sl_auth_verify) against a keyring with
 * one HS256 secret. Byte 0 picks the mode:
 * - even: the rest is a raw token (segment splitting, base64url, header
 *   parsing, signature refusal);
 * - odd: the rest is "<header JSON>\0<claims JSON>"; the harness encodes
 *   both and signs them with the keyring's secret, so the claims parser
 *   (exp/nbf/iss/aud, the sluice capabilities) sees arbitrary JSON behind
 *   a valid signature.
 *
 * Checks besides the sanitizers: a verdict is OK or UNAUTHORIZED; OK comes
 * with a principal and no reason, UNAUTHORIZED with a reason and none; a
 * raw token that does not end in a valid signature is never accepted.
 */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "actors/auth.h"
#include "runtime/flags.h"

#include "tests/base64.h"
#include "tests/fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static const char SECRET[] = "fuzz-secret-0123456789abcdef-0123456789";
static sl_auth_t *keyring;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char path[] = "/tmp/sl-fuzz-jwt-XXXXXX";
    int fd = mkstemp(path);
    FZ_CHECK(fd >= 0);
    FZ_CHECK(write(fd, SECRET, sizeof SECRET - 1) == (ssize_t)(sizeof SECRET - 1));
    close(fd);
    sl_flag_list_t secrets = {.items = {path}, .count = 1};
    sl_auth_config_t cfg = {.hs256_secret_files = &secrets, .leeway_ns = 60000000000ull};
    char err[256];
    FZ_CHECK(sl_auth_create(&cfg, &keyring, err, sizeof err) == 0);
    unlink(path);
    return 0;
}

static void check(const char *tok, size_t len, bool signed_by_us)
{
    sl_auth_principal_t *p = NULL;
    const char *why = NULL;
    sl_auth_verdict_t v = sl_auth_verify(keyring, tok, len, 1800000000ull * 1000000000ull, &p, &why);
    FZ_CHECK(v == SL_AUTH_OK || v == SL_AUTH_UNAUTHORIZED);
    if (v == SL_AUTH_OK) {
        FZ_CHECK(p != NULL);
        FZ_CHECK(signed_by_us);
        (void)sl_auth_allow(keyring, p, SL_AUTH_PUB, "s", 1, 1800000000ull * 1000000000ull);
        sl_auth_principal_free(p);
    } else {
        FZ_CHECK(p == NULL);
        FZ_CHECK(why != NULL);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 8192)
        return 0;
    if ((data[0] & 1) == 0) {
        check((const char *)data + 1, size - 1, false);
        return 0;
    }
    const uint8_t *hdr = data + 1, *end = data + size;
    const uint8_t *nul = memchr(hdr, 0, (size_t)(end - hdr));
    size_t hlen = nul ? (size_t)(nul - hdr) : (size_t)(end - hdr);
    const uint8_t *claims = nul ? nul + 1 : end;
    size_t clen = (size_t)(end - claims);
    char *tok = malloc(2 * size + 128);
    FZ_CHECK(tok != NULL);
    size_t n = sl_test_base64(hdr, hlen, tok, true);
    tok[n++] = '.';
    n += sl_test_base64(claims, clen, tok + n, true);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mlen = 0;
    FZ_CHECK(HMAC(EVP_sha256(), SECRET, (int)(sizeof SECRET - 1), (const unsigned char *)tok, n,
                  mac, &mlen) != NULL);
    tok[n++] = '.';
    n += sl_test_base64(mac, mlen, tok + n, true);
    check(tok, n, true);
    free(tok);
    return 0;
}
