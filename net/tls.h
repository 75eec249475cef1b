/*
 * TLS endpoints on memory BIOs (OpenSSL 3): the server side of TLS 1.2 and
 * 1.3 for one connection, with no socket of its own. The connection actor
 * keeps doing its socket I/O through the reactor; this module only turns
 * received ciphertext into plaintext (sl_tls_conn_feed, which also drives
 * the handshake) and plaintext into ciphertext (sl_tls_conn_encrypt), and
 * hands out the ciphertext it produced (sl_tls_conn_take_output).
 *
 * sl_tls_ctx_t wraps one SSL_CTX (certificate chain, key, protocol and
 * cipher policy, ALPN, session cache and TLS 1.3 tickets). It is
 * reference-counted: a certificate reload makes a new context for new
 * connections while live connections keep the one they started with.
 *
 * Policy: TLS 1.2 and 1.3 only; TLS 1.2 suites are ECDHE with an AEAD
 * (AES-GCM, ChaCha20-Poly1305); TLS 1.3 suites are OpenSSL's defaults.
 * ALPN: "h2" when the client offers it, else "http/1.1" when offered;
 * RPC endpoints select nothing (their clients speak msgpack-RPC).
 *
 * Bounds: input is consumed as it is fed (the read BIO holds at most one
 * partial record, SL_TLS_RECORD_BYTES_MAX); output is taken after every
 * call, so the write BIO never holds more than one call's records. The
 * caller bounds what it encrypts (SL_TLS_CIPHER_QUEUE_BYTES).
 *
 * Threads: a context may be shared by any threads (OpenSSL locks its
 * session cache); a connection is used by one thread at a time.
 */
#ifndef SL_NET_TLS_H
#define SL_NET_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "runtime/base.h"

typedef struct sl_tls_ctx sl_tls_ctx_t;
typedef struct sl_tls_conn sl_tls_conn_t;

/* What ALPN chose for a connection. */
typedef enum sl_tls_alpn {
    SL_TLS_ALPN_NONE = 0, /* the client offered no protocol we speak */
    SL_TLS_ALPN_HTTP1,
    SL_TLS_ALPN_H2,
} sl_tls_alpn_t;

/* Loads a PEM certificate chain (leaf first) and its private key into a
 * new context (refcount 1). Returns 0 and *out (owned), or SL_EINVAL with
 * a one-line reason in err (n bytes): unreadable file, no certificate, a
 * key that does not match the certificate; -ENOMEM. *out is untouched on
 * failure. Any thread; reads files (call it at start or off the reactors). */
int sl_tls_ctx_create(sl_tls_ctx_t **out, const char *cert_file, const char *key_file,
                      char *err, size_t n);
void sl_tls_ctx_retain(sl_tls_ctx_t *ctx);
/* Drops a reference; frees at zero. Any thread. */
void sl_tls_ctx_release(sl_tls_ctx_t *ctx);
/* A client context (tests, sluice-load): trusts the certificates of the
 * PEM file ca_file, or the system's store when NULL; verify false accepts
 * any certificate (--insecure). Returns 0 and *out, SL_EINVAL with a
 * reason in err, or -ENOMEM. */
int sl_tls_ctx_create_client(sl_tls_ctx_t **out, const char *ca_file, bool verify, char *err,
                             size_t n);

/* A server endpoint on ctx (retained). rpc: select no ALPN protocol.
 * Returns 0 and *out (owned) or -ENOMEM; *out untouched on failure. */
int sl_tls_conn_create(sl_tls_conn_t **out, sl_tls_ctx_t *ctx, bool rpc);
/* A client endpoint: sends host as SNI and, when the context verifies,
 * checks the certificate names it (host may be NULL: neither); offers
 * alpn, a wire-format list (may be NULL, alpn_len 0). The ClientHello is
 * pending output on return. Returns 0 and *out or -ENOMEM. */
int sl_tls_conn_create_client(sl_tls_conn_t **out, sl_tls_ctx_t *ctx, const char *host,
                              const uint8_t *alpn, size_t alpn_len);
void sl_tls_conn_destroy(sl_tls_conn_t *t);

/* Called with each piece of decrypted plaintext (borrowed for the call).
 * Returns 0 to go on, < 0 to stop (feed returns that code). */
typedef int (*sl_tls_plain_cb)(void *cb_ctx, const uint8_t *data, size_t len);

/* Consumes len bytes of ciphertext (borrowed): advances the handshake and
 * passes every complete record's plaintext to cb. Produces output (the
 * handshake flights, tickets, alerts): take it afterwards. Returns 0;
 * SL_EPROTO when the peer broke TLS (an alert may be pending: send it,
 * then close); SL_ECLOSED after the peer's close_notify; a callback's
 * negative code; -ENOMEM. On any error the endpoint takes no more input. */
int sl_tls_conn_feed(sl_tls_conn_t *t, const uint8_t *data, size_t len, sl_tls_plain_cb cb,
                     void *cb_ctx);
/* Encrypts up to bytes_max plaintext bytes from iov (borrowed), packing
 * small pieces into full records. Returns the plaintext bytes consumed
 * (>= 0; 0 before the handshake is done), or SL_EPROTO / -ENOMEM. */
long sl_tls_conn_encrypt(sl_tls_conn_t *t, const struct iovec *iov, uint32_t iovcnt,
                         size_t bytes_max);
/* Ciphertext bytes waiting to be taken. */
size_t sl_tls_conn_output_bytes(const sl_tls_conn_t *t);
/* Moves up to cap bytes of ciphertext into buf. Returns the bytes moved. */
size_t sl_tls_conn_take_output(sl_tls_conn_t *t, uint8_t *buf, size_t cap);
/* Queues a close_notify alert (take the output, send it, then close). */
void sl_tls_conn_close_notify(sl_tls_conn_t *t);

bool sl_tls_conn_established(const sl_tls_conn_t *t);
sl_tls_alpn_t sl_tls_conn_alpn(const sl_tls_conn_t *t);
/* True when the handshake resumed an earlier session. */
bool sl_tls_conn_resumed(const sl_tls_conn_t *t);
/* "TLSv1.3", "TLSv1.2", ... ("" before the handshake). */
const char *sl_tls_conn_version(const sl_tls_conn_t *t);
/* The cipher suite's OpenSSL name ("" before the handshake). */
const char *sl_tls_conn_cipher(const sl_tls_conn_t *t);

/* Whether the kernel offers kTLS: sets TCP_ULP "tls" on a fresh TCP
 * socket. Returns 1 (available: the ULP exists; it refuses only because
 * the socket is not connected), 0 (ENOENT: CONFIG_TLS not set), or a
 * -errno from socket(). Any thread; does not block. */
int sl_tls_ktls_probe(void);

#endif
