/*
 * The TLS server endpoint (net/tls) as the connection actor drives it:
 * arbitrary bytes fed in chunks the way recv returns them, the endpoint's
 * output taken after every feed, plaintext (if a handshake ever completes)
 * handed to a callback that touches it. Byte 0 seeds the chunk sizes and
 * whether the endpoint is an RPC one (no ALPN). A throwaway self-signed
 * certificate is made once at start.
 *
 * Checks besides the sanitizers: once feed fails it keeps failing (no
 * input after an error), output is taken whole, and encrypt before an
 * established handshake consumes nothing.
 */
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net/tls.h"
#include "runtime/base.h"

#include "tests/fuzz/fuzz_util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static sl_tls_ctx_t *ctx;

/* Writes a P-256 key and a self-signed certificate for it, loads both. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char dir[] = "/tmp/sl_fuzz_tlsXXXXXX", cert[64], key[64], err[512];
    FZ_CHECK(mkdtemp(dir));
    snprintf(cert, sizeof cert, "%s/c.pem", dir);
    snprintf(key, sizeof key, "%s/k.pem", dir);
    EVP_PKEY *k = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    FZ_CHECK(k && x);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, k);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"fuzz", -1, -1, 0);
    X509_set_issuer_name(x, name);
    FZ_CHECK(X509_sign(x, k, EVP_sha256()) > 0);
    FILE *f = fopen(cert, "w");
    FZ_CHECK(f && PEM_write_X509(f, x) == 1);
    fclose(f);
    f = fopen(key, "w");
    FZ_CHECK(f && PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL) == 1);
    fclose(f);
    X509_free(x);
    EVP_PKEY_free(k);
    FZ_CHECK(sl_tls_ctx_create(&ctx, cert, key, err, sizeof err) == 0);
    unlink(cert);
    unlink(key);
    rmdir(dir);
    return 0;
}

static int on_plain(void *cb_ctx, const uint8_t *data, size_t len)
{
    (void)cb_ctx;
    fz_touch(data, len);
    return 0;
}

static void drain(sl_tls_conn_t *t)
{
    static uint8_t out[1 << 16];
    /* Bounded by what the endpoint holds: each pass takes some of it. */
    while (sl_tls_conn_take_output(t, out, sizeof out) > 0) {
    }
    FZ_CHECK(sl_tls_conn_output_bytes(t) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    fz_rng_t rng = {.s = data[0]};
    sl_tls_conn_t *t = NULL;
    FZ_CHECK(sl_tls_conn_create(&t, ctx, (data[0] & 1) != 0) == 0);
    struct iovec none = {(void *)"x", 1};
    if (!sl_tls_conn_established(t))
        FZ_CHECK(sl_tls_conn_encrypt(t, &none, 1, 1) == 0);
    size_t off = 1;
    bool failed = false;
    while (off < size) {
        size_t n = 1 + fz_next(&rng) % 2048;
        if (n > size - off)
            n = size - off;
        int rc = sl_tls_conn_feed(t, data + off, n, on_plain, NULL);
        FZ_CHECK(!failed || rc < 0); /* no input after an error */
        failed = failed || rc < 0;
        drain(t);
        off += n;
    }
    sl_tls_conn_destroy(t);
    return 0;
}
