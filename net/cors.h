/*
 * Browser origins: which other web origins may read sluice's answers
 * (CORS, --cors-origin) and which may change state through a user's
 * browser at all (the Origin check), plus the headers every response
 * carries so a browser treats its bytes as data, never as a page or a
 * script of another site.
 *
 * The policy is parsed once at start from the flag text; everything here
 * is pure (no I/O, no allocation), so any thread may call it.
 *
 * The rules (README "Browsers: CORS, console"):
 * - An Origin listed in the policy (byte for byte), or
 *   any Origin when the policy is `*`, is granted: its responses carry
 *   Access-Control-Allow-Origin (the origin itself with Vary: Origin, or
 *   `*` for a `*` policy) and Access-Control-Expose-Headers.
 * - A state-changing request (POST, PUT, DELETE, PATCH) whose Origin is
 *   neither the request's own origin (its scheme and Host / :authority)
 *   nor granted is refused (403 forbidden_origin). Requests without an
 *   Origin (curl, SDKs, same-origin GET) are not affected.
 * - Cross-Origin-Resource-Policy is same-origin, or cross-origin when the
 *   policy is `*`: CORP only governs no-cors loads (<script>, <img>), and
 *   it cannot name origins, so for a list it stays same-origin -- listed
 *   origins read through CORS, where the grant is exact.
 */
#ifndef SL_NET_CORS_H
#define SL_NET_CORS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/http.h"
#include "runtime/limits.h"

/* Grant values: 0 refused / no Origin, SL_CORS_ANY for a `*` policy, else
 * 1 + the index of the matching origin in the policy. */
#define SL_CORS_NONE 0u
#define SL_CORS_ANY UINT32_MAX

typedef struct sl_cors {
    bool any;                                  /* the policy is `*` */
    uint32_t count;                            /* listed origins */
    sl_http_str_t origins[SL_CORS_ORIGINS_MAX]; /* borrowed from the flag text */
} sl_cors_t;

/* Parses --cors-origin: empty or NULL (no cross-origin access), `*`, or a
 * comma-separated list of origins `scheme://host[:port]` (scheme http or
 * https, lower case as browsers send them, no path, no trailing slash;
 * spaces around commas are ignored).
 * Borrows text: it must outlive out (flag text lives until exit). Returns
 * 0, or SL_EINVAL / SL_ETOOBIG with one line in err (n bytes); out is
 * unspecified on failure. */
int sl_cors_parse(sl_cors_t *out, const char *text, char *err, size_t n);

/* True when the policy lets no other origin in (empty flag). */
bool sl_cors_empty(const sl_cors_t *p);

/* The grant for a request's Origin (ptr NULL: no header): SL_CORS_NONE,
 * SL_CORS_ANY or 1 + index. p may be NULL (no policy). */
uint32_t sl_cors_grant(const sl_cors_t *p, sl_http_str_t origin);

/* True when origin names the request's own origin: same scheme ("http" /
 * "https", case-insensitive) and the same host and port as host (Host or
 * :authority; default ports 80 / 443 filled in on both sides). False for
 * an absent or malformed value ("null" included). */
bool sl_cors_same_origin(sl_http_str_t origin, sl_http_str_t scheme, sl_http_str_t host);

/* True for methods that change state (POST, PUT, DELETE, PATCH, and any
 * unknown method): what the Origin check applies to. */
bool sl_cors_method_unsafe(sl_http_method_t m);

/* Whether a request may proceed: false for a state-changing request that
 * carries an Origin which is neither its own origin (req->scheme and
 * req->host) nor granted by p (may be NULL). Borrows both. */
bool sl_cors_request_allowed(const sl_cors_t *p, const sl_http_req_t *req);

/* Headers every response carries (security headers, and the CORS ones
 * when grant is not SL_CORS_NONE); at most SL_CORS_HEADERS_MAX written
 * into out. Values point at static strings or into p. Returns the count. */
#define SL_CORS_HEADERS_MAX 5
size_t sl_cors_response_headers(const sl_cors_t *p, uint32_t grant, sl_http_header_t *out);

/* True when every name in a preflight's Access-Control-Request-Headers
 * (comma-separated; absent or empty: true) is one a script may send:
 * content-type, authorization, last-event-id, or a name starting with
 * sluice-, producer- or stream-. Borrows list. */
bool sl_cors_request_headers_allowed(sl_http_str_t list);

/* The extra headers of a preflight answer: allowed methods, the requested
 * headers echoed (when requested.ptr is set; check them first with
 * sl_cors_request_headers_allowed), max age. At most
 * SL_CORS_PREFLIGHT_HEADERS_MAX into out; values borrow requested. Returns
 * the count. */
#define SL_CORS_PREFLIGHT_HEADERS_MAX 3
size_t sl_cors_preflight_headers(sl_http_str_t requested, sl_http_header_t *out);

#endif
