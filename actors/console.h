/*
 * GET /console: a live operator console (sessions, live tails over
 * EventSource, /health charts, the watchdog's worst connections), served
 * from static HTML, JS and CSS compiled into the binary (actors/console/,
 * embedded at build time by tools/embed_assets.cmake). The page talks to
 * the public API from the same origin only; its Content-Security-Policy
 * allows nothing else.
 */
#ifndef SL_ACTORS_CONSOLE_H
#define SL_ACTORS_CONSOLE_H

#include <stdbool.h>
#include <stddef.h>

#include "net/http.h"

/* One embedded file (the generated table). */
typedef struct sl_console_asset {
    const char *path;         /* "/console/index.html" */
    const char *content_type;
    const unsigned char *data; /* len bytes (NUL after them) */
    size_t len;
} sl_console_asset_t;

extern const sl_console_asset_t sl_console_assets[];
extern const unsigned sl_console_asset_count;

/* True when path is the console's: /console, /console/ or /console/NAME. */
bool sl_console_path(sl_http_str_t path);

/* The asset path names (/console and /console/ name index.html), or NULL.
 * Pure. */
const sl_console_asset_t *sl_console_find(sl_http_str_t path);

/* Answers a request for a console path (see sl_console_path): GET/HEAD of
 * an asset 200 with no-store and the CSP, an unknown name 404, any other
 * method 405. Borrows req; runs on the connection's actor. */
void sl_console_serve(sl_http_conn_t *http, const sl_http_req_t *req);

#endif
