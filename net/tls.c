/*
 * TLS on memory BIOs: see tls.h. Every SSL object here reads from a
 * memory BIO the caller filled with received ciphertext and writes to a
 * memory BIO the caller empties after each call; no call touches a socket,
 * so nothing here can block.
 */
#include "net/tls.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "runtime/limits.h"

#ifndef TCP_ULP
#define TCP_ULP 31
#endif

struct sl_tls_ctx {
    _Atomic uint32_t refs;
    SSL_CTX *ssl_ctx;
};

struct sl_tls_conn {
    SSL *ssl;
    BIO *rbio; /* ciphertext in: owned by ssl */
    BIO *wbio; /* ciphertext out: owned by ssl */
    sl_tls_ctx_t *ctx; /* reference */
    bool rpc;  /* select no ALPN protocol */
    bool dead; /* a fatal error or close_notify: no more input */
};

/* TLS 1.2 suites: forward secrecy (ECDHE) and an AEAD only. TLS 1.3 suites
 * are OpenSSL's three defaults. Both lists put AES-128-GCM first (ample
 * strength, a third fewer AES rounds per record than AES-256: fan-out
 * encrypts every event once per subscriber), and ChaCha20 goes first for
 * a client that prefers it (no AES instructions: SSL_OP_PRIORITIZE_CHACHA). */
static const char tls12_ciphers[] =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
static const char tls13_suites[] =
    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";

/* Server preference: h2, then http/1.1 (wire format). */
static const unsigned char alpn_server[] = "\x02h2\x08http/1.1";

static void openssl_reason(char *err, size_t n, const char *what, const char *file)
{
    unsigned long e = ERR_peek_last_error();
    char buf[256] = "";
    if (e)
        ERR_error_string_n(e, buf, sizeof buf);
    snprintf(err, n, "%s %s%s%s", what, file, *buf ? ": " : "", buf);
    ERR_clear_error();
}

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    (void)arg;
    const sl_tls_conn_t *t = SSL_get_app_data(ssl);
    if (!t || t->rpc)
        return SSL_TLSEXT_ERR_NOACK;
    unsigned char *sel = NULL;
    if (SSL_select_next_proto(&sel, outlen, alpn_server, sizeof alpn_server - 1, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK; /* no overlap: go on without ALPN */
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

/* A file we can open, of sane size: a clearer message than OpenSSL's. */
static int check_file(const char *path, const char *what, char *err, size_t n)
{
    struct stat st;
    if (!path || !*path) {
        snprintf(err, n, "%s: no file given", what);
        return SL_EINVAL;
    }
    if (stat(path, &st) != 0 || access(path, R_OK) != 0) {
        snprintf(err, n, "%s %s: %s", what, path, strerror(errno));
        return SL_EINVAL;
    }
    if (!S_ISREG(st.st_mode) || st.st_size > (off_t)SL_TLS_PEM_FILE_BYTES_MAX) {
        snprintf(err, n, "%s %s: not a regular file of at most %u bytes", what, path,
                 SL_TLS_PEM_FILE_BYTES_MAX);
        return SL_EINVAL;
    }
    return 0;
}

static int ctx_policy(SSL_CTX *s)
{
    if (!SSL_CTX_set_min_proto_version(s, TLS1_2_VERSION) ||
        !SSL_CTX_set_max_proto_version(s, TLS1_3_VERSION) ||
        !SSL_CTX_set_cipher_list(s, tls12_ciphers) ||
        !SSL_CTX_set_ciphersuites(s, tls13_suites))
        return -1;
    /* No compression (CRIME), no renegotiation (a cheap CPU sink for a
     * client), our cipher order, and a short-lived buffer per idle
     * connection instead of 2 x 16 KiB held for ever. */
    SSL_CTX_set_options(s, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                               SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_PRIORITIZE_CHACHA);
    SSL_CTX_set_mode(s, SSL_MODE_RELEASE_BUFFERS);
    return 0;
}

static int ctx_wrap(sl_tls_ctx_t **out, SSL_CTX *s)
{
    sl_tls_ctx_t *ctx = calloc(1, sizeof *ctx);
    if (!ctx) {
        SSL_CTX_free(s);
        return -ENOMEM;
    }
    atomic_init(&ctx->refs, 1);
    ctx->ssl_ctx = s;
    *out = ctx;
    return 0;
}

int sl_tls_ctx_create(sl_tls_ctx_t **out, const char *cert_file, const char *key_file,
                      char *err, size_t n)
{
    int rc = check_file(cert_file, "--tls-cert", err, n);
    if (rc == 0)
        rc = check_file(key_file, "--tls-key", err, n);
    if (rc != 0)
        return rc;
    ERR_clear_error();
    SSL_CTX *s = SSL_CTX_new(TLS_server_method());
    if (!s)
        return -ENOMEM;
    if (ctx_policy(s) != 0) {
        openssl_reason(err, n, "TLS policy", "");
        SSL_CTX_free(s);
        return SL_EINVAL;
    }
    if (SSL_CTX_use_certificate_chain_file(s, cert_file) != 1) {
        openssl_reason(err, n, "--tls-cert: no usable PEM certificate chain in", cert_file);
        SSL_CTX_free(s);
        return SL_EINVAL;
    }
    if (SSL_CTX_use_PrivateKey_file(s, key_file, SSL_FILETYPE_PEM) != 1) {
        openssl_reason(err, n, "--tls-key: no usable PEM private key (or it does not match "
                               "--tls-cert) in", key_file);
        SSL_CTX_free(s);
        return SL_EINVAL;
    }
    if (SSL_CTX_check_private_key(s) != 1) {
        openssl_reason(err, n, "--tls-key: the key does not match the certificate of --tls-cert",
                       "");
        SSL_CTX_free(s);
        return SL_EINVAL;
    }
    /* Resumption: a server-side cache for TLS 1.2 session ids, stateless
     * tickets (keys per context) for TLS 1.3 and TLS 1.2 clients that ask. */
    static const unsigned char sid_ctx[] = "sluice";
    SSL_CTX_set_session_id_context(s, sid_ctx, sizeof sid_ctx - 1);
    SSL_CTX_set_session_cache_mode(s, SSL_SESS_CACHE_SERVER);
    SSL_CTX_sess_set_cache_size(s, SL_TLS_SESSION_CACHE_MAX);
    SSL_CTX_set_timeout(s, SL_TLS_SESSION_TIMEOUT_S);
    SSL_CTX_set_num_tickets(s, SL_TLS_TICKETS_PER_HANDSHAKE);
    SSL_CTX_set_alpn_select_cb(s, alpn_select, NULL);
    return ctx_wrap(out, s);
}

int sl_tls_ctx_create_client(sl_tls_ctx_t **out, const char *ca_file, bool verify, char *err,
                             size_t n)
{
    ERR_clear_error();
    SSL_CTX *s = SSL_CTX_new(TLS_client_method());
    if (!s)
        return -ENOMEM;
    int ok = ca_file ? SSL_CTX_load_verify_locations(s, ca_file, NULL)
                     : SSL_CTX_set_default_verify_paths(s);
    if (ctx_policy(s) != 0 || ok != 1) {
        openssl_reason(err, n, "CA file", ca_file ? ca_file : "(system store)");
        SSL_CTX_free(s);
        return SL_EINVAL;
    }
    SSL_CTX_set_verify(s, verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    return ctx_wrap(out, s);
}

void sl_tls_ctx_retain(sl_tls_ctx_t *ctx)
{
    /* Relaxed: a new reference comes from one the caller already holds. */
    atomic_fetch_add_explicit(&ctx->refs, 1, memory_order_relaxed);
}

void sl_tls_ctx_release(sl_tls_ctx_t *ctx)
{
    if (!ctx)
        return;
    /* acq_rel: every user's writes happen before the free (pairs with the
     * release of each earlier drop). */
    if (atomic_fetch_sub_explicit(&ctx->refs, 1, memory_order_acq_rel) == 1) {
        SSL_CTX_free(ctx->ssl_ctx);
        free(ctx);
    }
}

static int conn_new(sl_tls_conn_t **out, sl_tls_ctx_t *ctx, bool rpc)
{
    sl_tls_conn_t *t = calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;
    t->ssl = SSL_new(ctx->ssl_ctx);
    t->rbio = BIO_new(BIO_s_mem());
    t->wbio = BIO_new(BIO_s_mem());
    if (!t->ssl || !t->rbio || !t->wbio) {
        SSL_free(t->ssl);
        BIO_free(t->rbio);
        BIO_free(t->wbio);
        free(t);
        ERR_clear_error();
        return -ENOMEM;
    }
    /* An empty read BIO means "wait for more", not end of file. */
    BIO_set_mem_eof_return(t->rbio, -1);
    SSL_set_bio(t->ssl, t->rbio, t->wbio);
    SSL_set_app_data(t->ssl, t);
    t->rpc = rpc;
    t->ctx = ctx;
    sl_tls_ctx_retain(ctx);
    *out = t;
    return 0;
}

int sl_tls_conn_create(sl_tls_conn_t **out, sl_tls_ctx_t *ctx, bool rpc)
{
    sl_tls_conn_t *t;
    int rc = conn_new(&t, ctx, rpc);
    if (rc != 0)
        return rc;
    SSL_set_accept_state(t->ssl);
    *out = t;
    return 0;
}

int sl_tls_conn_create_client(sl_tls_conn_t **out, sl_tls_ctx_t *ctx, const char *host,
                              const uint8_t *alpn, size_t alpn_len)
{
    sl_tls_conn_t *t;
    int rc = conn_new(&t, ctx, false);
    if (rc != 0)
        return rc;
    SSL_set_connect_state(t->ssl);
    bool bad = host && (!SSL_set_tlsext_host_name(t->ssl, host) || !SSL_set1_host(t->ssl, host));
    if (bad || (alpn_len && SSL_set_alpn_protos(t->ssl, alpn, (unsigned)alpn_len) != 0)) {
        sl_tls_conn_destroy(t);
        return -ENOMEM;
    }
    SSL_do_handshake(t->ssl); /* the ClientHello, into the write BIO */
    ERR_clear_error();
    *out = t;
    return 0;
}

void sl_tls_conn_destroy(sl_tls_conn_t *t)
{
    if (!t)
        return;
    SSL_free(t->ssl); /* frees both BIOs */
    sl_tls_ctx_release(t->ctx);
    free(t);
}

/* One SSL_read's outcome as our error space: 1 more may follow, 0 the read
 * BIO is empty, < 0 fatal. */
static int read_status(sl_tls_conn_t *t, int r)
{
    int e = SSL_get_error(t->ssl, r);
    ERR_clear_error();
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return 0;
    t->dead = true;
    return e == SSL_ERROR_ZERO_RETURN ? SL_ECLOSED : SL_EPROTO;
}

int sl_tls_conn_feed(sl_tls_conn_t *t, const uint8_t *data, size_t len, sl_tls_plain_cb cb,
                     void *cb_ctx)
{
    if (t->dead)
        return SL_ECLOSED;
    if (len > 0 && BIO_write(t->rbio, data, (int)len) != (int)len) {
        t->dead = true;
        ERR_clear_error();
        return -ENOMEM;
    }
    uint8_t plain[SL_TLS_PLAIN_RECORD_BYTES];
    /* Bounded by the input: each round consumes at least one record of it
     * or stops. */
    for (;;) {
        ERR_clear_error();
        int r = SSL_read(t->ssl, plain, (int)sizeof plain);
        if (r <= 0)
            return read_status(t, r);
        int rc = cb(cb_ctx, plain, (size_t)r);
        if (rc < 0)
            return rc;
    }
}

static int write_record(sl_tls_conn_t *t, const void *p, size_t n)
{
    ERR_clear_error();
    int r = SSL_write(t->ssl, p, (int)n);
    if (r == (int)n)
        return 0;
    ERR_clear_error();
    t->dead = true;
    return SL_EPROTO;
}

long sl_tls_conn_encrypt(sl_tls_conn_t *t, const struct iovec *iov, uint32_t iovcnt,
                         size_t bytes_max)
{
    if (!SSL_is_init_finished(t->ssl))
        return 0;
    if (t->dead)
        return SL_EPROTO;
    /* Small pieces (one SSE event each) are packed into full records: one
     * record header, one MAC and one cipher call per 16 KiB, not per event.
     * A piece of a whole record or more goes straight from its buffer. */
    uint8_t stage[SL_TLS_PLAIN_RECORD_BYTES];
    size_t staged = 0, done = 0;
    for (uint32_t i = 0; i < iovcnt && done + staged < bytes_max; i++) {
        const uint8_t *p = iov[i].iov_base;
        size_t n = iov[i].iov_len;
        if (n > bytes_max - done - staged)
            n = bytes_max - done - staged;
        while (n > 0) {
            if (staged == 0 && n >= sizeof stage) {
                size_t k = n - n % sizeof stage;
                if (write_record(t, p, k) != 0)
                    return SL_EPROTO;
                done += k, p += k, n -= k;
                continue;
            }
            size_t k = sizeof stage - staged < n ? sizeof stage - staged : n;
            memcpy(stage + staged, p, k);
            staged += k, p += k, n -= k;
            if (staged == sizeof stage) {
                if (write_record(t, stage, staged) != 0)
                    return SL_EPROTO;
                done += staged;
                staged = 0;
            }
        }
    }
    if (staged && write_record(t, stage, staged) != 0)
        return SL_EPROTO;
    return (long)(done + staged);
}

size_t sl_tls_conn_output_bytes(const sl_tls_conn_t *t) { return BIO_ctrl_pending(t->wbio); }

size_t sl_tls_conn_take_output(sl_tls_conn_t *t, uint8_t *buf, size_t cap)
{
    size_t pending = BIO_ctrl_pending(t->wbio);
    if (cap > pending)
        cap = pending;
    if (cap == 0)
        return 0;
    int r = BIO_read(t->wbio, buf, (int)cap);
    return r > 0 ? (size_t)r : 0;
}

void sl_tls_conn_close_notify(sl_tls_conn_t *t)
{
    if (SSL_is_init_finished(t->ssl) && !t->dead)
        SSL_shutdown(t->ssl);
    ERR_clear_error();
    t->dead = true;
}

bool sl_tls_conn_established(const sl_tls_conn_t *t) { return SSL_is_init_finished(t->ssl); }

sl_tls_alpn_t sl_tls_conn_alpn(const sl_tls_conn_t *t)
{
    const unsigned char *p = NULL;
    unsigned int n = 0;
    SSL_get0_alpn_selected(t->ssl, &p, &n);
    if (n == 2 && memcmp(p, "h2", 2) == 0)
        return SL_TLS_ALPN_H2;
    if (n == 8 && memcmp(p, "http/1.1", 8) == 0)
        return SL_TLS_ALPN_HTTP1;
    return SL_TLS_ALPN_NONE;
}

bool sl_tls_conn_resumed(const sl_tls_conn_t *t) { return SSL_session_reused(t->ssl) == 1; }

const char *sl_tls_conn_version(const sl_tls_conn_t *t)
{
    return SSL_is_init_finished(t->ssl) ? SSL_get_version(t->ssl) : "";
}

const char *sl_tls_conn_cipher(const sl_tls_conn_t *t)
{
    const char *n = SSL_is_init_finished(t->ssl) ? SSL_get_cipher_name(t->ssl) : NULL;
    return n ? n : "";
}

int sl_tls_ktls_probe(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    /* Linux looks the ULP up by name first (ENOENT when CONFIG_TLS is not
     * set and no module loads), then refuses an unconnected socket. */
    int rc = setsockopt(fd, SOL_TCP, TCP_ULP, "tls", 3);
    int e = errno;
    close(fd);
    return rc == 0 || e != ENOENT ? 1 : 0;
}
