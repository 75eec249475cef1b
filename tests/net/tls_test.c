/*
 * Tests for net/tls: two memory-BIO endpoints (a server and a client) shake
 * hands by passing each other's output by hand, with a throwaway
 * self-signed certificate made here. ALPN picks h2 over http/1.1, RPC
 * endpoints pick nothing, a client checks the name, plaintext crosses both ways (small pieces packed
 * into records, large ones whole), garbage and a mismatched key are
 * refused, and a context outlives its release while a connection holds it.
 */
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net/tls.h"
#include "tests/check.h"

static char dir[] = "/tmp/sl_tls_testXXXXXX";
static char cert_path[128], key_path[128], key2_path[128];

static EVP_PKEY *write_key(const char *path)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    CHECK(k);
    FILE *f = fopen(path, "w");
    CHECK(f);
    CHECK(PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL) == 1);
    fclose(f);
    return k;
}

static void make_cert(void)
{
    CHECK(mkdtemp(dir));
    snprintf(cert_path, sizeof cert_path, "%s/cert.pem", dir);
    snprintf(key_path, sizeof key_path, "%s/key.pem", dir);
    snprintf(key2_path, sizeof key2_path, "%s/other.pem", dir);
    EVP_PKEY *k = write_key(key_path);
    EVP_PKEY_free(write_key(key2_path));
    X509 *x = X509_new();
    CHECK(x);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, k);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1,
                               -1, 0);
    X509_set_issuer_name(x, name);
    CHECK(X509_sign(x, k, EVP_sha256()) > 0);
    FILE *f = fopen(cert_path, "w");
    CHECK(f);
    CHECK(PEM_write_X509(f, x) == 1);
    fclose(f);
    X509_free(x);
    EVP_PKEY_free(k);
}

typedef struct sink {
    uint8_t buf[1 << 18];
    size_t len;
} sink_t;

static int collect(void *ctx, const uint8_t *data, size_t len)
{
    sink_t *s = ctx;
    CHECK(s->len + len <= sizeof s->buf);
    memcpy(s->buf + s->len, data, len);
    s->len += len;
    return 0;
}

/* Moves every pending ciphertext byte from a to b. Returns b's feed code. */
static int pass(sl_tls_conn_t *a, sl_tls_conn_t *b, sink_t *plain_b)
{
    static uint8_t wire[1 << 18];
    size_t n = sl_tls_conn_take_output(a, wire, sizeof wire);
    CHECK(sl_tls_conn_output_bytes(a) == 0);
    return sl_tls_conn_feed(b, wire, n, collect, plain_b);
}

static void shake(sl_tls_conn_t *srv, sl_tls_conn_t *cli, sink_t *ps, sink_t *pc)
{
    for (int i = 0; i < 8 && !(sl_tls_conn_established(srv) && sl_tls_conn_established(cli));
         i++) {
        CHECK(pass(cli, srv, ps) == 0);
        CHECK(pass(srv, cli, pc) == 0);
    }
    CHECK(sl_tls_conn_established(srv));
    CHECK(sl_tls_conn_established(cli));
}

static sl_tls_ctx_t *sctx, *cctx;

static void test_tls_handshake_alpn_and_data(void)
{
    static const uint8_t offer[] = "\x08http/1.1\x02h2";
    sl_tls_conn_t *srv, *cli;
    static sink_t ps, pc;
    CHECK(sl_tls_conn_create(&srv, sctx, false) == 0);
    CHECK(sl_tls_conn_create_client(&cli, cctx, "localhost", offer, sizeof offer - 1) == 0);
    CHECK(sl_tls_conn_encrypt(srv, NULL, 0, 100) == 0); /* nothing before the handshake */
    shake(srv, cli, &ps, &pc);
    CHECK(sl_tls_conn_alpn(srv) == SL_TLS_ALPN_H2); /* h2 wins though offered second */
    CHECK(strcmp(sl_tls_conn_version(srv), "TLSv1.3") == 0);
    CHECK(strcmp(sl_tls_conn_cipher(srv), "TLS_AES_128_GCM_SHA256") == 0);
    CHECK(!sl_tls_conn_resumed(srv));
    /* Many small pieces and one large one, client to server. */
    static uint8_t big[100000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)(i * 7);
    struct iovec iov[3] = {{(void *)"data: a\n\n", 9}, {(void *)"data: b\n\n", 9}, {big, sizeof big}};
    CHECK(sl_tls_conn_encrypt(cli, iov, 3, SIZE_MAX) == (long)(18 + sizeof big));
    ps.len = 0;
    CHECK(pass(cli, srv, &ps) == 0);
    CHECK(ps.len == 18 + sizeof big);
    CHECK(memcmp(ps.buf, "data: a\n\ndata: b\n\n", 18) == 0);
    CHECK(memcmp(ps.buf + 18, big, sizeof big) == 0);
    /* bytes_max stops the server's encryption part-way through a piece. */
    CHECK(sl_tls_conn_encrypt(srv, iov, 3, 12) == 12);
    pc.len = 0;
    CHECK(pass(srv, cli, &pc) == 0);
    CHECK(pc.len == 12 && memcmp(pc.buf, "data: a\n\ndat", 12) == 0);
    /* close_notify ends the peer's input. */
    sl_tls_conn_close_notify(cli);
    CHECK(pass(cli, srv, &ps) == SL_ECLOSED);
    sl_tls_conn_destroy(srv);
    sl_tls_conn_destroy(cli);
}

static void test_tls_alpn_http1_and_rpc(void)
{
    static const uint8_t h1[] = "\x08http/1.1";
    static sink_t ps, pc;
    sl_tls_conn_t *srv, *cli;
    CHECK(sl_tls_conn_create(&srv, sctx, false) == 0);
    CHECK(sl_tls_conn_create_client(&cli, cctx, "localhost", h1, sizeof h1 - 1) == 0);
    shake(srv, cli, &ps, &pc);
    CHECK(sl_tls_conn_alpn(srv) == SL_TLS_ALPN_HTTP1);
    sl_tls_conn_destroy(srv);
    sl_tls_conn_destroy(cli);
    static const uint8_t h2[] = "\x02h2";
    CHECK(sl_tls_conn_create(&srv, sctx, true) == 0); /* an RPC endpoint */
    CHECK(sl_tls_conn_create_client(&cli, cctx, "localhost", h2, sizeof h2 - 1) == 0);
    shake(srv, cli, &ps, &pc);
    CHECK(sl_tls_conn_alpn(srv) == SL_TLS_ALPN_NONE);
    sl_tls_conn_destroy(srv);
    sl_tls_conn_destroy(cli);
}

static void test_tls_client_checks_name(void)
{
    static sink_t ps, pc;
    sl_tls_conn_t *srv, *cli;
    CHECK(sl_tls_conn_create(&srv, sctx, false) == 0);
    CHECK(sl_tls_conn_create_client(&cli, cctx, "example.com", NULL, 0) == 0);
    CHECK(pass(cli, srv, &ps) == 0);
    CHECK(pass(srv, cli, &pc) == SL_EPROTO); /* the certificate names localhost */
    CHECK(!sl_tls_conn_established(cli));
    sl_tls_conn_destroy(srv);
    sl_tls_conn_destroy(cli);
}

static void test_tls_garbage_refused(void)
{
    sl_tls_conn_t *srv;
    static sink_t ps;
    CHECK(sl_tls_conn_create(&srv, sctx, false) == 0);
    uint8_t junk[300];
    memset(junk, 0x41, sizeof junk);
    junk[0] = 0x16, junk[1] = 0x03, junk[2] = 0x01, junk[3] = 0x00, junk[4] = 0x40;
    CHECK(sl_tls_conn_feed(srv, junk, sizeof junk, collect, &ps) == SL_EPROTO);
    CHECK(sl_tls_conn_output_bytes(srv) > 0); /* an alert for the peer */
    CHECK(sl_tls_conn_feed(srv, junk, 1, collect, &ps) == SL_ECLOSED);
    CHECK(ps.len == 0);
    sl_tls_conn_destroy(srv);
}

static void test_tls_ctx_errors_and_refcount(void)
{
    char err[512];
    sl_tls_ctx_t *c = NULL;
    CHECK(sl_tls_ctx_create(&c, cert_path, key2_path, err, sizeof err) == SL_EINVAL);
    CHECK(c == NULL && strstr(err, "--tls-key"));
    CHECK(sl_tls_ctx_create(&c, "/nonexistent.pem", key_path, err, sizeof err) == SL_EINVAL);
    CHECK(strstr(err, "--tls-cert") && strstr(err, "No such file"));
    CHECK(sl_tls_ctx_create(&c, key_path, key_path, err, sizeof err) == SL_EINVAL);
    /* A connection keeps its context after the owner let go (a reload). */
    CHECK(sl_tls_ctx_create(&c, cert_path, key_path, err, sizeof err) == 0);
    sl_tls_conn_t *srv, *cli;
    static sink_t ps, pc;
    CHECK(sl_tls_conn_create(&srv, c, false) == 0);
    sl_tls_ctx_release(c);
    CHECK(sl_tls_conn_create_client(&cli, cctx, "localhost", NULL, 0) == 0);
    shake(srv, cli, &ps, &pc);
    CHECK(sl_tls_conn_alpn(srv) == SL_TLS_ALPN_NONE);
    sl_tls_conn_destroy(srv);
    sl_tls_conn_destroy(cli);
}

int main(void)
{
    make_cert();
    char err[512];
    CHECK(sl_tls_ctx_create(&sctx, cert_path, key_path, err, sizeof err) == 0);
    CHECK(sl_tls_ctx_create_client(&cctx, cert_path, true, err, sizeof err) == 0);
    test_tls_handshake_alpn_and_data();
    test_tls_alpn_http1_and_rpc();
    test_tls_client_checks_name();
    test_tls_garbage_refused();
    test_tls_ctx_errors_and_refcount();
    sl_tls_ctx_release(sctx);
    sl_tls_ctx_release(cctx);
    unlink(cert_path);
    unlink(key_path);
    unlink(key2_path);
    rmdir(dir);
    printf("tls_test: ok\n");
    return 0;
}
