/*
 * The session directory: every known session (live or hibernated) by id,
 * with its incrementally maintained stats, and an id-ordered index for
 * paged listing. Listing and stats never open a file and never wait on a
 * session actor: stats are relaxed atomics the session updates as it goes.
 *
 * Concurrency: a reader-writer lock guards the table. Lookups (per request,
 * not per event) take it shared; create and delete take it exclusive.
 * Entries are reference counted: a lookup returns a reference, so a
 * session deleted meanwhile stays valid (and marked deleted) for its
 * holders.
 *
 * Bound: --max-sessions entries (policy: creating one more fails with
 * SL_EFULL, answered 503 overloaded).
 */
#ifndef SL_ACTORS_REGISTRY_H
#define SL_ACTORS_REGISTRY_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "runtime/base.h"
#include "runtime/limits.h"

typedef struct sl_registry sl_registry_t;

/* Stats of one session, readable by any thread at any time. */
typedef struct sl_session_stats {
    _Atomic uint64_t events;     /* events appended (durable + ephemeral) */
    _Atomic uint64_t bytes;      /* payload bytes */
    _Atomic uint64_t first_seq;  /* 0 when empty */
    _Atomic uint64_t last_seq;   /* 0 when empty */
    _Atomic uint32_t subscribers;
    _Atomic uint64_t created_ns; /* wall clock */
    _Atomic uint64_t last_activity_ns;
} sl_session_stats_t;

/* Create-time attributes of a session (API.md "Session lifecycle", and the
 * Durable Streams face). Immutable once the session exists: a create that
 * names different ones is refused (SL_ECONFLICT). Durable: kept in the
 * manifest and in the session folder's attributes file, written before
 * the session's first record (storage/attrs.h). */
typedef struct sl_session_attrs {
    uint64_t ttl_ns;          /* sliding TTL from the last publish or subscribe; 0: none */
    uint64_t expires_at_ns;   /* absolute wall-clock expiry; 0: none */
    uint8_t content_type_len; /* Durable Streams content type; 0: none (native session) */
    char content_type[SL_CONTENT_TYPE_MAX + 1];
    /* Fork (Durable Streams): seqs 1..fork_seq are the parent's, read from
     * the parent's log; this session's own seqs start at fork_seq + 1. */
    uint8_t parent_len;       /* 0: not a fork */
    char parent[SL_SESSION_ID_MAX + 1];
    uint64_t parent_epoch;
    uint64_t fork_seq;
} sl_session_attrs_t;

/* A directory entry. The session actor (actors/session.h) hangs off it. */
typedef struct sl_entry {
    char id[SL_SESSION_ID_MAX + 1];
    uint32_t id_len;
    uint64_t epoch;              /* incarnation: new on every create */
    sl_session_stats_t stats;
    _Atomic bool deleted;
    sl_session_attrs_t attrs;    /* set before the entry is published, then read-only */
    _Atomic bool closed;         /* closed for good (API.md); set by the session actor */
    _Atomic uint64_t closed_seq; /* last_seq when it closed (valid once closed) */
    _Atomic uint32_t forks;      /* live forks reading this session's log */
    _Atomic uint32_t _refs;
    pthread_mutex_t lock;        /* guards session (start / exit / acquire) */
    void *session;               /* the session actor, NULL when not running */
    void *persist;               /* the session module's durable state (segments) */
    _Atomic bool persist_stale;  /* persist's segment list may be out of date: the
                                    manifest must not call this session clean */
    struct sl_entry *_hnext;     /* hash chain */
} sl_entry_t;

/* Creates an empty registry bounded to max_entries. Returns 0 or -ENOMEM. */
int sl_registry_create(uint32_t max_entries, sl_registry_t **out);
/* Frees the registry; drops its references to every entry. */
void sl_registry_destroy(sl_registry_t *r, void (*free_session)(sl_entry_t *e));

/* Returns a new reference to the entry for id, or NULL. Any thread. */
sl_entry_t *sl_registry_get(sl_registry_t *r, const char *id, size_t len);
/* Returns a reference to the entry for id, creating it when absent (with a
 * fresh epoch; *created tells which). Returns 0, SL_EFULL at the bound or
 * -ENOMEM. The id must be valid (callers validate first). */
int sl_registry_get_or_create(sl_registry_t *r, const char *id, size_t len, uint64_t epoch,
                              sl_entry_t **out, bool *created);
/* The same, setting a new entry's attributes (attrs borrowed; NULL: none)
 * before any other thread can see it. An existing entry is returned as it
 * is: the caller compares attributes. */
int sl_registry_get_or_create_attrs(sl_registry_t *r, const char *id, size_t len, uint64_t epoch,
                                    const sl_session_attrs_t *attrs, sl_entry_t **out,
                                    bool *created);
/* Removes e from the table (marks it deleted). Returns 0 or SL_ENOTFOUND
 * when it is no longer the entry for its id. Holders keep their refs. */
int sl_registry_remove(sl_registry_t *r, sl_entry_t *e);

void sl_entry_retain(sl_entry_t *e);
/* Drops a reference; the last one calls free_cb (given at create time
 * through sl_registry_set_free) and frees the entry. */
void sl_entry_release(sl_entry_t *e);
void sl_registry_set_free(void (*free_session)(sl_entry_t *e));

/* Lists up to limit entries with id > after (NULL: from the start), in id
 * order, as new references stored in out. Returns the number listed and
 * sets *more when entries remain after the last. Any thread. */
uint32_t sl_registry_list(sl_registry_t *r, const char *after, size_t after_len, uint32_t limit,
                          sl_entry_t **out, bool *more);
uint32_t sl_registry_count(sl_registry_t *r);

#endif
