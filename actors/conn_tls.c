/*
 * Connection actor, TLS side: when a certificate is configured, the first
 * byte of a connection decides whether it speaks TLS (0x16, a handshake
 * record) or cleartext, on the HTTP port and on TCP RPC listeners alike.
 * A TLS connection decrypts what it receives into the protocol
 * (c->proto->feed) and encrypts what the protocol queued in c->outq
 * into c->tls_out, which is what the socket sends. Runs on the
 * connection's actor only.
 *
 * Memory: c->outq keeps its bound (--max-conn-output-bytes) and its
 * producers pause at it as in cleartext; plaintext moves to ciphertext
 * only while c->tls_out holds less than SL_TLS_CIPHER_QUEUE_BYTES, so a
 * peer that does not read pins at most both bounds.
 */
#include "actors/conn_int.h"

#include <errno.h>

#include "net/http.h"
#include "net/tls.h"
#include "runtime/log.h"

/* The first byte of a TLS connection: a handshake record. */
#define TLS_RECORD_HANDSHAKE 0x16

bool sl_conn__tls_sniff(sl_conn_t *c, uint8_t first)
{
    if (c->tls_decided)
        return c->tls != NULL;
    c->tls_decided = true;
    if (first != TLS_RECORD_HANDSHAKE)
        return false;
    sl_tls_ctx_t *ctx = sl_server_tls_acquire(c->srv);
    if (!ctx)
        return false; /* TLS off: the protocol refuses the bytes itself */
    int rc = sl_tls_conn_create(&c->tls, ctx, !c->proto->tls_alpn);
    sl_tls_ctx_release(ctx); /* the connection holds its own reference */
    if (rc != 0) {
        c->tls = NULL;
        c->proto_failed = true; /* out of memory: nothing to answer with */
        return false;
    }
    sl_outq_init(&c->tls_out, SL_TLS_CIPHER_QUEUE_SEGS,
                 SL_TLS_CIPHER_QUEUE_BYTES + SL_TLS_CIPHER_QUEUE_SLACK_BYTES);
    return true;
}

/* Moves the write BIO's ciphertext into c->tls_out (one chunk per call).
 * What does not fit stays in the BIO, bounded by what one feed or one
 * encrypt produced, and moves on the next call. */
static int take_output(sl_conn_t *c)
{
    size_t n = sl_tls_conn_output_bytes(c->tls);
    uint64_t room = sl_outq_room(&c->tls_out);
    if (n > room)
        n = (size_t)room;
    if (n == 0)
        return 0;
    /* Counted as output in the memory budget, like the plaintext it
     * replaces (which leaves the outq as this arrives). */
    sl_chunk_t *ch = sl_chunk_create_as((uint32_t)n, SL_BUDGET_OUTPUT);
    if (!ch)
        return -ENOMEM;
    ch->len = (uint32_t)sl_tls_conn_take_output(c->tls, ch->data, n);
    int rc = sl_outq_append_ref(&c->tls_out, ch, 0, ch->len);
    sl_chunk_release(ch);
    return rc;
}

/* The handshake just completed: count it and let ALPN fix the protocol. */
static void established(sl_conn_t *c)
{
    if (c->tls_established)
        return;
    c->tls_established = true;
    sl_server_counters_t *ctr = &c->srv->counters;
    atomic_fetch_add_explicit(&ctr->tls_handshakes, 1, memory_order_relaxed);
    if (sl_tls_conn_resumed(c->tls))
        atomic_fetch_add_explicit(&ctr->tls_resumed, 1, memory_order_relaxed);
    sl_tls_alpn_t a = sl_tls_conn_alpn(c->tls);
    c->http_proto = a == SL_TLS_ALPN_H2      ? SL_HTTP_PROTO_H2
                    : a == SL_TLS_ALPN_HTTP1 ? SL_HTTP_PROTO_HTTP1
                                             : SL_HTTP_PROTO_AUTO;
    sl_debug("tls established", "peer=%s version=%s cipher=%s alpn=%s resumed=%d", c->peer,
             sl_tls_conn_version(c->tls), sl_tls_conn_cipher(c->tls),
             a == SL_TLS_ALPN_H2 ? "h2" : a == SL_TLS_ALPN_HTTP1 ? "http/1.1" : "none",
             (int)sl_tls_conn_resumed(c->tls));
}

static int on_plain(void *ctx, const uint8_t *data, size_t len)
{
    sl_conn_t *c = ctx;
    /* The client's Finished and its first request often share one recv:
     * the protocol is fixed before the first plaintext reaches it. */
    established(c);
    return c->proto->feed(c, data, len);
}

int sl_conn__tls_feed(sl_conn_t *c, const uint8_t *data, size_t len)
{
    if (!c->tls)
        return SL_ECLOSED;
    int rc = sl_tls_conn_feed(c->tls, data, len, on_plain, c);
    if (sl_tls_conn_established(c->tls))
        established(c);
    else if (rc == SL_EPROTO) {
        atomic_fetch_add_explicit(&c->srv->counters.tls_handshake_failures, 1,
                                  memory_order_relaxed);
        sl_debug("tls handshake failed", "peer=%s", c->peer);
    }
    int out = take_output(c); /* handshake flights, tickets, an alert */
    return rc < 0 ? rc : out < 0 && out != SL_EFULL ? out : 0;
}

int sl_conn__tls_encrypt(sl_conn_t *c)
{
    struct iovec iov[SL_TLS_ENCRYPT_IOV_MAX];
    take_output(c); /* what an earlier call left in the BIO goes first */
    while (c->outq.bytes_pending > 0 && c->tls_out.bytes_pending < SL_TLS_CIPHER_QUEUE_BYTES) {
        size_t room = SL_TLS_CIPHER_QUEUE_BYTES - (size_t)c->tls_out.bytes_pending;
        uint32_t n = sl_outq_iov(&c->outq, iov, SL_TLS_ENCRYPT_IOV_MAX, room);
        long k = sl_tls_conn_encrypt(c->tls, iov, n, room);
        if (k < 0) {
            /* The session is over (fatal error, close_notify either way):
             * plaintext that can no longer be sent must not hold the
             * connection open. */
            sl_outq_consume(&c->outq, (size_t)c->outq.bytes_pending);
            return (int)k;
        }
        if (k == 0)
            break; /* handshake not done yet */
        sl_outq_consume(&c->outq, (size_t)k);
        int rc = take_output(c);
        if (rc != 0)
            return rc == SL_EFULL ? 0 : rc;
    }
    return 0;
}

bool sl_conn__tls_handshaking(const sl_conn_t *c)
{
    return c->tls && !sl_tls_conn_established(c->tls);
}

void sl_conn__tls_close_notify(sl_conn_t *c)
{
    if (!c->tls || c->tls_notified)
        return;
    c->tls_notified = true;
    sl_tls_conn_close_notify(c->tls);
    take_output(c);
}

void sl_conn__tls_destroy(sl_conn_t *c)
{
    sl_tls_conn_destroy(c->tls);
    c->tls = NULL;
    sl_outq_deinit(&c->tls_out);
}
