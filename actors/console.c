/*
 * The console's HTTP face: maps /console paths onto the embedded assets
 * and answers with headers that keep the page to itself (see console.h).
 */
#include "actors/console.h"

#include <string.h>

#include "runtime/base.h"

/* Self only: scripts, styles and fetch/EventSource to this origin; no
 * inline code, no plugins, no framing, no form posts, no base rewrites. */
#define CONSOLE_CSP                                                                        \
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "       \
    "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

bool sl_console_path(sl_http_str_t path)
{
    return (path.len == 8 && memcmp(path.ptr, "/console", 8) == 0) ||
           (path.len >= 9 && memcmp(path.ptr, "/console/", 9) == 0);
}

const sl_console_asset_t *sl_console_find(sl_http_str_t path)
{
    static const char index[] = "/console/index.html";
    if (path.len == 8 || path.len == 9) { /* "/console" or "/console/" */
        path.ptr = index;
        path.len = sizeof(index) - 1;
    }
    for (unsigned i = 0; i < sl_console_asset_count; i++) {
        const sl_console_asset_t *a = &sl_console_assets[i];
        if (strlen(a->path) == path.len && memcmp(a->path, path.ptr, path.len) == 0)
            return a;
    }
    return NULL;
}

void sl_console_serve(sl_http_conn_t *http, const sl_http_req_t *req)
{
    if (req->method != SL_HTTP_METHOD_GET && req->method != SL_HTTP_METHOD_HEAD) {
        static const sl_http_header_t allow[] = {SL_HTTP_HEADER_LIT("allow", "GET, HEAD")};
        sl_http_respond_error(http, req->stream_id, 405, "method_not_allowed",
                              "this resource supports GET and HEAD", allow, 1);
        return;
    }
    const sl_console_asset_t *a = sl_console_find(req->path);
    if (a == NULL) {
        sl_http_respond_error(http, req->stream_id, 404, "not_found", "no such resource", NULL, 0);
        return;
    }
    sl_http_header_t h[] = {
        {"content-type", 12, a->content_type, strlen(a->content_type)},
        SL_HTTP_HEADER_LIT("cache-control", "no-store"),
        SL_HTTP_HEADER_LIT("content-security-policy", CONSOLE_CSP),
        SL_HTTP_HEADER_LIT("referrer-policy", "no-referrer"),
        SL_HTTP_HEADER_LIT("x-frame-options", "DENY"),
    };
    sl_http_respond(http, req->stream_id, 200, h, SL_ARRAY_LEN(h), a->data, a->len);
}
