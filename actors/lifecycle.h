/*
 * Per-session lifecycle state the session actor consults before it appends
 * (API.md "Session lifecycle"): the idempotent producers it has seen and
 * the last Durable Streams Stream-Seq. Kept in the directory entry across
 * session actors (hibernation), rebuilt at startup from the manifest's
 * snapshot plus the extension trailers (storage/lifecycle.h) of the records
 * written after it, and saved into the manifest as a snapshot.
 *
 * Bounds: at most SL_PRODUCERS_MAX producers per session; a new one beyond
 * that replaces the one used least recently (policy in runtime/limits.h).
 *
 * Threads: the owning session actor; the snapshot functions are called
 * under e->lock by the manifest writer.
 */
#ifndef SL_ACTORS_LIFECYCLE_H
#define SL_ACTORS_LIFECYCLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "actors/registry.h"
#include "actors/session.h"
#include "storage/lifecycle.h"

typedef struct sl_lifecycle sl_lifecycle_t;

sl_lifecycle_t *sl_lifecycle_new(void);
void sl_lifecycle_free(sl_lifecycle_t *l);

/* What to do with publish p (borrowed). Returns:
 *   0             append it;
 *   1             a duplicate: nothing to append; p's answer fields
 *                 (duplicate, dup_known, first_seq, last_seq) are set, and
 *                 producer_seq to the highest seq accepted;
 *   SL_EFENCED    stale epoch (p->producer_epoch set to the current one);
 *   SL_EGAP       seq skipped (p->producer_seq set to the expected one);
 *   SL_EINVAL     a new epoch that does not start at seq 0;
 *   SL_ECONFLICT  Stream-Seq not above the last one. */
int sl_lifecycle_check(sl_lifecycle_t *l, sl_pub_t *p);
/* Records that p was appended as first..last. Returns false out of memory
 * (the producer is then not remembered: a retry would append again). */
bool sl_lifecycle_commit(sl_lifecycle_t *l, const sl_pub_t *p, uint64_t first, uint64_t last);
/* Replays a record's trailer (recovery): x (borrowed) of the record with
 * seq, part of a publish whose first seq is unknown (0). */
void sl_lifecycle_apply(sl_lifecycle_t *l, const sl_lifecycle_ext_t *x, uint64_t seq);

/* Snapshot for the manifest: the bytes (owned, free()) and their length;
 * NULL with *len 0 when there is nothing to keep or out of memory. */
uint8_t *sl_lifecycle_snapshot(const sl_lifecycle_t *l, size_t *len);
/* Loads a snapshot. Returns 0 or SL_ECORRUPT (l unchanged). */
int sl_lifecycle_load(sl_lifecycle_t *l, const uint8_t *buf, size_t len);
/* True when l holds any producer or Stream-Seq. */
bool sl_lifecycle_used(const sl_lifecycle_t *l);

/* Create-time attributes as bytes (the attrs file's payload and part of
 * the manifest entry): TLVs of tag (u8), length (u16 LE), value. */
#define SL_LIFECYCLE_ATTRS_MAX (6 * 3 + 4 * 8 + SL_CONTENT_TYPE_MAX + SL_SESSION_ID_MAX)
size_t sl_lifecycle_attrs_encode(const sl_session_attrs_t *a, uint8_t *buf, size_t cap);
/* Returns 0 or SL_ECORRUPT. */
int sl_lifecycle_attrs_decode(const uint8_t *buf, size_t n, sl_session_attrs_t *a);

/* The manifest entry extension of a session: its attributes, its closure
 * and its producers as of snap_seq (every record up to it included). */
typedef struct sl_lifecycle_entry {
    sl_session_attrs_t attrs;
    bool has_attrs;
    uint64_t closed_seq; /* 0: open (a session closed before any event has 0 and closed) */
    bool closed;
    const uint8_t *snapshot; /* decode: borrowed */
    size_t snapshot_len;
    uint64_t snap_seq;
} sl_lifecycle_entry_t;
/* Encodes x (borrowed; snapshot may be NULL) into a malloc'd buffer.
 * Returns NULL with *len 0 when there is nothing to keep (or out of memory:
 * *oom set). */
uint8_t *sl_lifecycle_entry_encode(const sl_lifecycle_entry_t *x, size_t *len, bool *oom);
/* Returns 0 or SL_ECORRUPT. */
int sl_lifecycle_entry_decode(const uint8_t *buf, size_t n, sl_lifecycle_entry_t *x);

#endif
