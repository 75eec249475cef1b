/*
 * Access control (API.md "Access control (v1.1)"): JSON Web Tokens (RFC
 * 7519) signed HS256, RS256 or ES256, verified against the operator's keys
 * (--auth-hs256-secret-file, --auth-public-key-file, each repeatable so
 * keys can rotate), and the one decision every front end asks:
 * sl_auth_allow, "may principal P do action A on session S".
 *
 * A keyring is loaded once at start and read-only afterwards: any thread
 * may verify against it at the same time. A principal is the verified
 * token's capabilities; the connection that verified it owns it and keeps
 * it for the connection (HTTP: while the same token comes again) or until
 * the RPC client sends another `auth`, so a token is verified once per
 * connection, not per request or per event.
 *
 * With no key configured the keyring is "open": every caller is admin.
 * Startup refuses that on a listener that is not loopback or a unix
 * socket unless --allow-anonymous (sl_auth_check_listeners).
 */
#ifndef SL_ACTORS_AUTH_H
#define SL_ACTORS_AUTH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/flags.h"

typedef struct sl_auth sl_auth_t;
typedef struct sl_auth_principal sl_auth_principal_t;

/* What is asked. PUB: publish, create, delete (and the other writes of
 * API.md). SUB: subscribe, stats, reads. ADMIN: /metrics, the /debug pages,
 * /console, the full /health. LIST: ask for the list of sessions (any
 * valid token; each id in it is then filtered with SUB). */
typedef enum sl_auth_action {
    SL_AUTH_PUB = 1,
    SL_AUTH_SUB,
    SL_AUTH_ADMIN,
    SL_AUTH_LIST,
} sl_auth_action_t;

/* The answer of sl_auth_allow and sl_auth_verify. */
typedef enum sl_auth_verdict {
    SL_AUTH_OK = 0,
    SL_AUTH_UNAUTHORIZED = 401, /* missing, malformed, expired or unverifiable token */
    SL_AUTH_FORBIDDEN = 403,    /* a valid token without the capability */
} sl_auth_verdict_t;

/* What the keyring is loaded from (borrowed during sl_auth_create). */
typedef struct sl_auth_config {
    const sl_flag_list_t *hs256_secret_files; /* each: the secret's bytes (>= 32) */
    const sl_flag_list_t *public_key_files;   /* each: PEM public key, RSA >= 2048 or EC P-256 */
    const char *issuer;                       /* NULL: iss not checked */
    const char *audience;                     /* NULL: aud not checked */
    uint64_t leeway_ns;                       /* clock skew allowed on exp and nbf */
} sl_auth_config_t;

/* Loads the keys. Returns 0 and *out (owned; sl_auth_destroy), or -1
 * with one line in err (n bytes) naming the file and what is wrong
 * (unreadable, too short, not a PEM public key, unsupported key type or
 * curve); nothing is left allocated then. No keys at all is valid: an
 * open keyring. Start-up thread. */
int sl_auth_create(const sl_auth_config_t *cfg, sl_auth_t **out, char *err, size_t n);
void sl_auth_destroy(sl_auth_t *a);

/* True when at least one key is configured (tokens are required). NULL
 * is an open keyring. Any thread. */
bool sl_auth_enabled(const sl_auth_t *a);

/* Verifies token (borrowed, len bytes, the compact JWS form) at wall
 * clock now_wall_ns. Returns SL_AUTH_OK with *out (returns owned;
 * sl_auth_principal_free), or SL_AUTH_UNAUTHORIZED with *why set to a
 * static reason ("expired", "bad signature", ...) and *out NULL. The
 * algorithm named in the header picks the key kind: HS256 only against
 * secrets, RS256 only against RSA keys, ES256 only against P-256 keys;
 * "none" and anything else is refused. Any thread. */
sl_auth_verdict_t sl_auth_verify(const sl_auth_t *a, const char *token, size_t len,
                                 uint64_t now_wall_ns, sl_auth_principal_t **out,
                                 const char **why);
void sl_auth_principal_free(sl_auth_principal_t *p);

/* The one decision. p is the caller's principal (borrowed; NULL when the
 * caller presented no valid token), id/id_len the session (ignored for
 * ADMIN and LIST). Open keyring: SL_AUTH_OK. Otherwise: no principal or
 * one whose token expired at now_wall_ns: SL_AUTH_UNAUTHORIZED; an admin
 * principal, LIST, or a matching pub/sub pattern: SL_AUTH_OK; else
 * SL_AUTH_FORBIDDEN.
 * Pure; any thread. */
sl_auth_verdict_t sl_auth_allow(const sl_auth_t *a, const sl_auth_principal_t *p,
                                sl_auth_action_t action, const char *id, size_t id_len,
                                uint64_t now_wall_ns);

/* When the principal's token stops being accepted (exp + leeway, wall
 * ns), or 0 when it never does (no exp claim, or p NULL). */
uint64_t sl_auth_principal_expires_ns(const sl_auth_principal_t *p);
/* The token's `sub` claim for logs ("-" when absent). */
const char *sl_auth_principal_name(const sl_auth_principal_t *p);

/* Pattern rule of API.md: exact id, prefix followed by '*', or "*".
 * Exposed for the unit test. Pure. */
bool sl_auth_pattern_match(const char *pat, size_t pat_len, const char *id, size_t id_len);

/* Start-up check of protected mode: with an open keyring, every listener
 * address (HTTP HOST:PORT, RPC HOST:PORT or unix:PATH) must be loopback or
 * a unix socket, unless allow_anonymous (then one warning is logged per
 * such address). Returns 0, or -1 with the message for exit 2 in err. */
int sl_auth_check_listeners(const sl_auth_t *a, const char *http_listen,
                            const sl_flag_list_t *rpc_listen, bool allow_anonymous, char *err,
                            size_t n);

/* Refused requests: counted, and one logfmt line each, at most
 * SL_AUTH_AUDIT_LINES_PER_S per second (the lines dropped are counted in
 * the next line's suppressed=). status is 401 or 403; the strings are
 * borrowed. Any thread. */
void sl_auth_audit(sl_auth_t *a, int status, const char *peer, const char *what,
                   const sl_auth_principal_t *p, const char *why);
/* The counters of refusals so far (relaxed). */
uint64_t sl_auth_refused(const sl_auth_t *a, int status);

#endif
