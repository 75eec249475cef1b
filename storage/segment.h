/*
 * Segments: file naming and layout, and the in-memory index of one
 * session's segments that plans every append and every catch-up read.
 *
 * On disk:
 *
 *   <data-dir>/<session id>/00000000000000000001.seg
 *                           00000000000000052311.seg   ...
 *
 * One folder per session, named by the validated id (session_id.h explains
 * why that is safe and why names starting with '.' are reserved). A segment
 * file is named by the seq of its first record, zero-padded to 20 digits so
 * lexical order is numeric order. It starts with a 48-byte header (below)
 * followed by records (record.h) with strictly increasing seqs; the first
 * record's seq equals the file name. Seqs may skip values between records
 * (ephemeral events take seqs from the same counter but are not logged).
 * Every seq in a segment is below the next segment's name.
 *
 * Segment header (little-endian):
 *    0  8  magic "SLUICESG"
 *    8  4  format version (1)
 *   12  4  reserved, 0
 *   16  8  epoch        incarnation id of the session (a session deleted and
 *                       created again under the same id gets a new one)
 *   24  8  first_seq    same as the file name
 *   32  8  created_ns   wall clock when the segment was created
 *   40  4  reserved, 0
 *   44  4  CRC32C of bytes [0, 44)
 * The header makes a file self-describing when the manifest is lost: a
 * directory scan recovers the epoch and the session's creation time.
 *
 * Rolling: a new segment starts when the next record would take the current
 * one past segment_bytes_max (--segment-bytes); a record bigger than that
 * goes alone into its own segment. Files are never rewritten, only appended,
 * and (by recovery, at startup) truncated to their valid prefix.
 *
 * I/O: this module performs none. sl_segment_index_place() says where each
 * record goes (file, offset, whether the file must be created); the caller
 * writes through the reactor and calls sl_segment_index_commit() for each
 * record, in seq order, once its write completed. Only committed records
 * are readable, so a record is never exposed half-written. A catch-up
 * reader (sl_segment_cursor_t) gets read requests from
 * sl_segment_cursor_plan() and hands the bytes read to
 * sl_segment_cursor_consume(). Creating a segment file also requires an
 * fsync of the session folder before records in it are acknowledged as
 * durable (the new directory entry must survive a crash); creating the
 * session folder likewise requires an fsync of the data dir.
 *
 * Retention: sl_segment_index_drop_first() forgets the oldest segment once
 * another follows it and all its records are committed (the last segment,
 * which takes the appends, is never dropped); the caller then deletes the
 * file. A cursor whose position lies in a dropped segment is not an error:
 * its next plan starts again at the oldest retained record at or after
 * next_seq, so the next record it hands out may be later than next_seq.
 * The owner turns that jump into a gap notice, as it does for unlogged
 * seqs. Positions (sl_segment_index_at) shift down by one per drop;
 * segments are named by first_seq, which never changes.
 *
 * Threads: an index belongs to one session actor; nothing here locks.
 */
#ifndef SL_STORAGE_SEGMENT_H
#define SL_STORAGE_SEGMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/base.h"
#include "runtime/limits.h"
#include "storage/record.h"

#define SL_SEGMENT_HEADER_BYTES 48u
#define SL_SEGMENT_VERSION 1u
/* The first 8 bytes of every segment file. */
#define SL_SEGMENT_MAGIC "SLUICESG"
/* File name: 20 digits + ".seg". */
#define SL_SEGMENT_NAME_LEN 24u
#define SL_SEGMENT_SUFFIX ".seg"

typedef struct sl_segment_header {
    uint64_t epoch;
    uint64_t first_seq;
    uint64_t created_ns;
} sl_segment_header_t;

/* Writes the SL_SEGMENT_HEADER_BYTES-byte header of h (borrowed) into buf
 * (borrowed, at least that big). Asserts first_seq >= 1. Any thread. */
void sl_segment_header_encode(void *buf, const sl_segment_header_t *h);

/* Decodes a header from n bytes at buf (borrowed). Returns 0; SL_EAGAIN
 * when n < SL_SEGMENT_HEADER_BYTES; SL_ECORRUPT for a wrong magic, version,
 * reserved field, CRC or a first_seq of 0. out is unspecified on failure. */
int sl_segment_header_decode(const void *buf, size_t n, sl_segment_header_t *out);

/* Writes the file name of the segment starting at first_seq (>= 1,
 * asserts) into out (cap bytes, NUL-terminated). Returns SL_SEGMENT_NAME_LEN,
 * or SL_EFULL when cap <= SL_SEGMENT_NAME_LEN (out unchanged). */
int sl_segment_name(char *out, size_t cap, uint64_t first_seq);

/* Parses a directory entry name (len bytes, borrowed). True, with
 * *first_seq set, only for exactly 20 digits + ".seg" naming a seq >= 1. */
bool sl_segment_name_parse(const char *name, size_t len, uint64_t *first_seq);

/* Builds "<data_dir>/<id>/<segment name>" into out (cap bytes,
 * NUL-terminated). data_dir NULL gives the path relative to the data dir
 * (for openat on a data-dir fd); first_seq 0 gives the session folder
 * itself. id (id_len bytes, borrowed) is validated here, so no caller can
 * build a path from an unchecked id. Returns the path length; SL_EINVAL for
 * an invalid id; SL_ETOOBIG when the path does not fit (out unspecified). */
int sl_segment_path(char *out, size_t cap, const char *data_dir, const char *id, size_t id_len,
                    uint64_t first_seq);

/* A sparse index entry: a record's seq and its file offset. */
typedef struct sl_segment_sparse {
    uint64_t seq;
    uint64_t offset;
} sl_segment_sparse_t;

/* One segment as the index knows it. Read the public fields; never write
 * them (the index maintains them). */
typedef struct sl_segment {
    uint64_t first_seq;     /* names the file */
    uint64_t last_seq;      /* last readable record; 0 while none */
    uint64_t bytes;         /* readable bytes, header included; 0 while none */
    uint64_t events;        /* readable records */
    uint64_t payload_bytes; /* data bytes of the readable records */
    uint64_t last_ts_ns;    /* newest ts_ns of the readable records; 0 =
                               unknown (see sl_segment_index_commit_ts) */
    uint64_t _placed;       /* end of the bytes placed (written or in flight) */
    uint64_t _scanned;      /* the sparse index covers records below this */
    sl_segment_sparse_t *_sparse;
    uint32_t _sparse_count;
    uint32_t _sparse_cap;
} sl_segment_t;

typedef struct sl_segment_index sl_segment_index_t;

/* Creates an empty index. segment_bytes_max must lie in
 * SL_SEGMENT_BYTES_MIN..SL_SEGMENT_BYTES_MAX and data_max (the
 * --max-event-bytes in force) in 0..SL_EVENT_BYTES_MAX (both assert).
 * Returns 0 with *out owned by the caller, or -ENOMEM. Any thread. */
int sl_segment_index_create(uint64_t segment_bytes_max, uint32_t data_max,
                            sl_segment_index_t **out);
/* Frees the index and its sparse entries. NULL is ignored. */
void sl_segment_index_destroy(sl_segment_index_t *ix);

/* Appends a segment known from the manifest or a recovery scan (only
 * first_seq, last_seq, bytes, events, payload_bytes and last_ts_ns (0 when
 * unknown; a known one is also given to the unknown segments before it,
 * see sl_segment_index_commit_ts) of seg are read;
 * seg is borrowed). Only while nothing is placed (asserts). Returns 0;
 * SL_ECORRUPT when seg is inconsistent (no records, bytes too small, or not
 * after the previous segment); SL_EFULL at SL_SEGMENTS_PER_SESSION_MAX;
 * -ENOMEM. The index is unchanged on failure. */
int sl_segment_index_add(sl_segment_index_t *ix, const sl_segment_t *seg);

uint32_t sl_segment_index_count(const sl_segment_index_t *ix);
/* The i-th segment (asserts i < count), oldest first; valid until the next
 * place, add, fail or drop_first call. */
const sl_segment_t *sl_segment_index_at(const sl_segment_index_t *ix, uint32_t i);
/* Seq of the last readable record, 0 when none. */
uint64_t sl_segment_index_last_seq(const sl_segment_index_t *ix);
/* Readable records and their data bytes over all segments (kept
 * incrementally, never recounted). */
uint64_t sl_segment_index_events(const sl_segment_index_t *ix);
uint64_t sl_segment_index_payload_bytes(const sl_segment_index_t *ix);
/* The stride between sparse index entries, in bytes. */
uint64_t sl_segment_index_sparse_stride(const sl_segment_index_t *ix);
/* Readable bytes over all segments, segment headers included (what the
 * files hold once every write completed); kept incrementally. */
uint64_t sl_segment_index_bytes(const sl_segment_index_t *ix);
/* The same plus the records placed but not committed yet (and the headers
 * of segments created for them): what the files will hold once every write
 * in flight completed. Retention bounds this. */
uint64_t sl_segment_index_placed_bytes(const sl_segment_index_t *ix);
/* Seq of the oldest readable record (the first segment's first_seq once it
 * holds a readable record), 0 when none. */
uint64_t sl_segment_index_first_seq(const sl_segment_index_t *ix);

/* Where one record goes. */
typedef struct sl_segment_place {
    uint64_t segment; /* first_seq of the target segment (names the file) */
    uint64_t offset;  /* file offset of the record */
    uint32_t index;   /* position of the segment in the index */
    bool created;     /* the record opens a new segment: create the file
                         (O_CREAT|O_EXCL) and write its header at offset 0
                         in the same or an earlier write */
} sl_segment_place_t;

/* Places the record with this seq (greater than every seq placed before,
 * asserts) and encoded size (asserts it is a possible record size) at the
 * tail, rolling to a new segment at the size bound. Returns 0 with *out
 * set; SL_EFULL when a new segment is needed but the session already has
 * SL_SEGMENTS_PER_SESSION_MAX; -ENOMEM; SL_ECLOSED after
 * sl_segment_index_fail(). The index is unchanged on failure. */
int sl_segment_index_place(sl_segment_index_t *ix, uint64_t seq, uint32_t size,
                           sl_segment_place_t *out);

/* Marks the oldest placed, not yet committed record readable: call it in
 * seq order once the write carrying the record completed. seq, size and
 * data_len must be the placed record's (asserts). Returns its file offset. */
uint64_t sl_segment_index_commit(sl_segment_index_t *ix, uint64_t seq, uint32_t size,
                                 uint32_t data_len);

/* sl_segment_index_commit that also records the record's ts_ns: the
 * segment's last_ts_ns keeps the newest. ts_ns 0 records nothing. Segments
 * before this one whose last_ts_ns is unknown (added without it) take
 * ts_ns -- as sl_segment_index_add does with a known one: as long as the
 * wall clock does not step back, a later record's time bounds theirs from
 * above, so age retention drops them no earlier than it should (only
 * later). */
uint64_t sl_segment_index_commit_ts(sl_segment_index_t *ix, uint64_t seq, uint32_t size,
                                    uint32_t data_len, uint64_t ts_ns);

/* A write failed: forgets every placed, uncommitted record (segments that
 * were created for them and hold no readable record leave the index) and
 * refuses further placements with SL_ECLOSED. Readable records stay
 * readable. Why no retry: the file tail past the readable end now holds an
 * unknown prefix of the failed write, and appending after it, or over it
 * with different records, could leave stale but valid records that recovery
 * would accept. The session's log stays read-only until the next start,
 * whose recovery truncates the tail to its valid prefix. */
void sl_segment_index_fail(sl_segment_index_t *ix);

/* True when the first segment may be dropped: another segment follows it
 * and every record placed in it is committed (readable). */
bool sl_segment_index_can_drop_first(const sl_segment_index_t *ix);

/* Retention: forgets the first segment and returns in *out (not touched on
 * failure) its first_seq, last_seq, bytes, events, payload_bytes and
 * last_ts_ns (no sparse entries). The totals (events, payload_bytes, bytes)
 * drop by its share; last_seq does not change. Deleting the file (after
 * its fd is closed) is the caller's. Returns 0, or SL_EAGAIN when
 * sl_segment_index_can_drop_first() is false (the index is unchanged).
 * O(1) amortised. */
int sl_segment_index_drop_first(sl_segment_index_t *ix, sl_segment_t *out);

/* True when the segment named segment (a first_seq) lies before the first
 * retained one: it was dropped (or never existed). A reader about to open
 * or read a planned segment checks this first. */
bool sl_segment_index_dropped(const sl_segment_index_t *ix, uint64_t segment);

/* Notes that a record (seq, size bytes) was seen at offset of segment i
 * (from a commit or a catch-up read), extending the sparse index. Only
 * notes that continue the covered prefix of the segment count; others are
 * ignored, as are notes once SL_SEGMENT_SPARSE_MAX entries exist or when an
 * entry cannot be allocated (the index only gets coarser, never wrong). */
void sl_segment_index_note(sl_segment_index_t *ix, uint32_t i, uint64_t seq, uint64_t offset,
                           uint32_t size);

/* Resyncs of catch-up cursors past damaged bytes, since creation. */
uint64_t sl_segment_index_damage_skips(const sl_segment_index_t *ix);

/* A read to perform. */
typedef struct sl_segment_read {
    uint64_t segment; /* first_seq of the segment: names the file */
    uint64_t offset;  /* file offset to read from */
    uint32_t len;     /* bytes to read (> 0) */
} sl_segment_read_t;

/* A catch-up reader's position. Initialise with sl_segment_cursor_init. */
typedef struct sl_segment_cursor {
    uint64_t next_seq; /* first seq not yet delivered */
    uint64_t _segment; /* first_seq of the segment being read; 0 = unplaced */
    uint64_t _offset;  /* next file offset to read in it */
} sl_segment_cursor_t;

void sl_segment_cursor_init(sl_segment_cursor_t *c, uint64_t from_seq);

/* Plans the next read into a buffer of buf_cap bytes, which must hold the
 * largest record the index accepts (SL_RECORD_MAX_SIZE(data_max),
 * record.h; asserts). Returns 0 with *out set, or
 * SL_EAGAIN when no readable record at or after next_seq exists yet (the
 * reader is caught up; plan again after more commits). The first plan
 * starts at the sparse entry at or before next_seq, so it may read a few
 * records that consume() then skips. A next_seq older than the retained
 * history, or a position in a segment dropped since, starts at the oldest
 * retained record. */
int sl_segment_cursor_plan(sl_segment_cursor_t *c, const sl_segment_index_t *ix, uint32_t buf_cap,
                           sl_segment_read_t *out);

/* Called for each record at or after next_seq. rec and its bytes are
 * borrowed for the call. Return 0 to go on, non-zero to stop after this
 * record (e.g. the subscriber's output bound is reached). */
typedef int (*sl_segment_record_cb)(const sl_record_view_t *rec, void *ctx);

/* Consumes the n bytes read for rd (the last plan; asserts it matches the
 * cursor). When rd's segment was dropped since the plan, returns 0 without
 * looking at buf (its bounds are gone) and the next plan starts at the
 * oldest retained record >= next_seq. Otherwise it decodes whole records,
 * skips those below next_seq, hands the others to cb, notes sparse entries,
 * and advances the cursor past what it used (a record cut off by the end
 * of buf is read again by the next plan).
 * Returns the number of records handed to cb. Bytes inside the readable
 * range that do not decode, or records out of seq order (the disk changed
 * under the log: damage found after the manifest vouched for the file),
 * are skipped: the cursor resyncs at the next record that decodes and
 * continues the order (or, when none is left, past the segment), so the
 * seqs jumped over reach the owner as a gap, never as an error to retry.
 * Each skip is counted (sl_segment_index_damage_skips). */
int sl_segment_cursor_consume(sl_segment_cursor_t *c, sl_segment_index_t *ix,
                              const sl_segment_read_t *rd, const void *buf, size_t n,
                              sl_segment_record_cb cb, void *ctx);

#endif
