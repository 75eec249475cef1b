/*
 * The server's TLS context: loaded at start from --tls-cert/--tls-key,
 * reloaded on SIGHUP. A reload builds a whole new context and swaps the
 * pointer under tls_lock; connections hold a reference to the context
 * they started with (net/tls.h), so live ones keep working with the old
 * certificate while new ones get the new one, and a failed reload leaves
 * everything as it was.
 */
#include <string.h>

#include "actors/server.h"
#include "net/tls.h"
#include "runtime/log.h"

static bool tls_on(const sl_server_t *srv)
{
    return srv->cfg.tls_cert && *srv->cfg.tls_cert;
}

int sl_server_tls_init(sl_server_t *srv)
{
    pthread_mutex_init(&srv->tls_lock, NULL);
    if (!tls_on(srv))
        return 0;
    char err[512];
    int rc = sl_tls_ctx_create(&srv->tls_ctx, srv->cfg.tls_cert, srv->cfg.tls_key, err, sizeof err);
    if (rc != 0) {
        sl_error("tls setup failed", "error=\"%s\"", err);
        return rc;
    }
    /* Said once: which path records take. The kernel offload itself is
     * not implemented (README "TLS"), so every mode encrypts here. */
    if (strcmp(srv->cfg.tls_ktls, "auto") == 0)
        sl_info(srv->cfg.tls_ktls_kernel
                    ? "ktls available but not implemented, TLS records encrypted in user space"
                    : "ktls unavailable, TLS records encrypted in user space",
                "cert=%s", srv->cfg.tls_cert);
    else
        sl_info("ktls off, TLS records encrypted in user space", "cert=%s", srv->cfg.tls_cert);
    return 0;
}

int sl_server_tls_reload(sl_server_t *srv)
{
    if (!tls_on(srv))
        return SL_ENOTFOUND;
    char err[512];
    sl_tls_ctx_t *fresh = NULL;
    int rc = sl_tls_ctx_create(&fresh, srv->cfg.tls_cert, srv->cfg.tls_key, err, sizeof err);
    if (rc != 0) {
        atomic_fetch_add_explicit(&srv->counters.tls_reload_failures, 1, memory_order_relaxed);
        sl_error("tls reload failed, keeping the current certificate", "error=\"%s\"", err);
        return rc;
    }
    pthread_mutex_lock(&srv->tls_lock);
    sl_tls_ctx_t *old = srv->tls_ctx;
    srv->tls_ctx = fresh;
    pthread_mutex_unlock(&srv->tls_lock);
    sl_tls_ctx_release(old); /* freed when its last connection ends */
    atomic_fetch_add_explicit(&srv->counters.tls_reloads, 1, memory_order_relaxed);
    sl_info("tls reloaded", "cert=%s", srv->cfg.tls_cert);
    return 0;
}

sl_tls_ctx_t *sl_server_tls_acquire(sl_server_t *srv)
{
    pthread_mutex_lock(&srv->tls_lock);
    sl_tls_ctx_t *ctx = srv->tls_ctx;
    if (ctx)
        sl_tls_ctx_retain(ctx);
    pthread_mutex_unlock(&srv->tls_lock);
    return ctx;
}

void sl_server_tls_deinit(sl_server_t *srv)
{
    sl_tls_ctx_release(srv->tls_ctx);
    srv->tls_ctx = NULL;
    pthread_mutex_destroy(&srv->tls_lock);
}
