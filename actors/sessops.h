/*
 * Session operations: the one neutral layer every face translates.
 *
 * The HTTP API (conn_api.c), msgpack-RPC (conn_rpc.c), the Durable Streams
 * face (conn_ds.c) and runs (run.c) all create, delete, close, look up and
 * publish through these functions, which speak sl_entry_t, sl_pub_t and
 * SL_E* codes only: no status lines, no msgpack. Each face maps the codes
 * to its own wire form (API.md lists the HTTP and RPC mapping):
 *
 *   SL_EINVAL     400 bad_request       SL_ENOTFOUND  404 not_found
 *   SL_ECONFLICT  409 conflict          SL_EENDED     409 closed
 *   SL_EFENCED    403 fenced            SL_EGAP       409 producer_gap
 *   SL_EFULL      503 overloaded (too many sessions)
 *   SL_EAGAIN     503 overloaded + Retry-After (a full session mailbox)
 *   SL_ECLOSED    503 overloaded + Retry-After (the session is going away)
 *
 * Threads: any worker (the functions only touch the registry, atomics and
 * mailboxes).
 */
#ifndef SL_ACTORS_SESSOPS_H
#define SL_ACTORS_SESSOPS_H

#include <stdbool.h>
#include <stddef.h>

#include "actors/registry.h"
#include "actors/session.h"

struct sl_server;

/* Returns a new reference to the live session id, or NULL when there is
 * none (never created, deleted, or expired: an expired session is deleted
 * here on the spot, exactly like sl_sessops_delete). */
sl_entry_t *sl_sessops_lookup(struct sl_server *srv, const char *id, size_t len);

/* Creates session id with attrs (borrowed; NULL: none), or finds it.
 * Idempotent: an existing session with the same attributes is returned
 * with *created false. Returns 0 with *out a new reference, or:
 *   SL_ECONFLICT  it exists with other attributes;
 *   SL_ENOTFOUND  attrs names a fork parent that does not exist (or was
 *                 deleted), or a fork seq beyond the parent's last seq;
 *   SL_EFULL      --max-sessions reached;
 *   -ENOMEM.
 * A new session with attributes starts its session actor at once, which
 * writes the attributes into its folder before any record. A fork counts
 * in its parent's e->forks until the fork is deleted. */
int sl_sessops_create(struct sl_server *srv, const char *id, size_t len,
                      const sl_session_attrs_t *attrs, sl_entry_t **out, bool *created);

/* Deletes session id: removes it from the registry, ends its streams
 * cleanly and forgets its events. A session that forks still read stays
 * readable to them (soft delete) and its files go with the last fork.
 * Returns 0 or SL_ENOTFOUND. */
int sl_sessops_delete(struct sl_server *srv, const char *id, size_t len);

/* True when attrs (borrowed) equal e's create-time attributes. */
bool sl_sessops_attrs_match(const sl_entry_t *e, const sl_session_attrs_t *attrs);

/* Sends publish p (takes it) to session id on behalf of reply_to, which
 * receives it back as SL_CONN_MSG_PUBLISHED with the answer filled in
 * (sl_pub_t "answer" fields; a reference to reply_to is held meanwhile and
 * dropped by the receiver: sl_actor_release(reply_to) after the answer).
 * p->nevents may be 0 with p->close: close without an event. create:
 * make the session when it does not exist (native publish), else
 * SL_ENOTFOUND. Returns 0 (answer later) or, with p freed: SL_ENOTFOUND,
 * SL_EFULL, SL_ECLOSED, SL_EAGAIN (mailbox full; counted in
 * publish_refused). */
int sl_sessops_publish(struct sl_server *srv, sl_actor_t *reply_to, const char *id, size_t len,
                       sl_pub_t *p, bool create);

/* Allocates a publish request for nevents events and buf_bytes of types and
 * data, zeroed. Returns owned (free()), or NULL. */
sl_pub_t *sl_sessops_pub_alloc(uint32_t nevents, size_t buf_bytes);

/* Writes e's stats as one JSON object (API.md; with the v1.1 `closed`,
 * `ttl_s`, `expires_at_ns` and, for a Durable Streams stream,
 * `content_type`). Returns the length, or 0 when cap is too small. */
size_t sl_sessops_stats_json(const sl_entry_t *e, char *out, size_t cap);

/* Lifecycle helpers every face needs. */
/* True once e is closed for good; *last_seq (may be NULL) is then its last
 * seq. */
bool sl_sessops_closed(const sl_entry_t *e, uint64_t *last_seq);
/* Marks activity for the sliding TTL (publish, subscribe, read). */
void sl_sessops_touch(sl_entry_t *e);
/* Validates a producer id (API.md: 1..SL_PRODUCER_ID_MAX of
 * [A-Za-z0-9._:-]). */
bool sl_sessops_producer_id_valid(const char *s, size_t n);

/* Deletes expired sessions nobody touches (a lookup deletes them too):
 * looks at up to SL_SWEEP_ENTRIES_PER_TICK entries from where the last
 * call stopped. Called on the monitor's tick (--monitor-interval).
 * Returns how many it deleted. */
uint32_t sl_sessops_sweep(struct sl_server *srv);

/* Parses an RFC 3339 date-time ("2026-12-07T10:00:00Z", fractional
 * seconds and a numeric offset allowed) into wall-clock ns since the
 * epoch. Returns 0 or SL_EINVAL. */
int sl_sessops_parse_rfc3339(const char *s, size_t n, uint64_t *ns);
/* Parses a TTL in whole or fractional seconds (> 0, at most ten years).
 * Returns 0 or SL_EINVAL. */
int sl_sessops_parse_ttl(const char *s, size_t n, uint64_t *ns);

#endif
