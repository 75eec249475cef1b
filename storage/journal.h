/*
 * The journal: one session's durable log, as a state machine its owner
 * actor drives through the reactor.
 *
 * The journal performs no I/O and calls nobody. The owner (the session
 * actor) appends records, asks sl_journal_next_op() for the ops that are
 * due, submits them to its reactor, and hands each completion back to
 * sl_journal_complete(). Everything the journal learns arrives that way, so
 * it needs no thread, no lock of its own and no callback into an actor:
 *
 *   append ──▶ write buffer ──▶ WRITE ──▶ written_seq ──▶ FSYNC ──▶ synced_seq
 *                                (page cache:                (disk: survives
 *                                 survives a process crash)   a power loss)
 *
 * Write buffers: SL_JOURNAL_BUFFERS (2) buffers of buffer_bytes each. Appends
 * encode into the newest one; at most one write is in flight, and it takes
 * every buffer filled so far (a WRITE, or a WRITEV when two buffers for the
 * same file are pending), so appends made while a write runs form the next
 * batch. Copying records into a buffer costs one memcpy of the event and
 * buys one write syscall per batch instead of one per event. When every
 * buffer is taken the append returns SL_EFULL: the owner stops accepting
 * publishes and tries again after the next completion. A record bigger
 * than one buffer gets a buffer of its own size, freed after its write.
 *
 * Files: the session folder <data-dir>/<id>/ holds the segments
 * (segment.h). sl_journal_create() makes the folder (MKDIRAT, then an fsync
 * of the data dir); a segment file is created (OPENAT O_CREAT|O_EXCL) when
 * the first record placed in it is written, with the segment header at the
 * head of that first write. Every open names a path relative to the data
 * dir fd. Segment fds live in the process-wide fd cache (fdcache.h, bound
 * --max-open-files): every write, fsync and catch-up read looks its fd up
 * and pins it for the op, and unpins it when the op completes; a missing fd
 * is opened (OPENAT) and inserted. An fd the cache evicts is closed (CLOSE)
 * by the pipeline that caused the eviction before it goes on. When every
 * cached fd is pinned the opener waits SL_JOURNAL_RETRY_MS and tries again.
 * The session folder's own fd, needed to fsync it, is cached under segment
 * key 0 (no segment is named 0).
 *
 * fsync policies (synced_seq never passes a record that is not on disk):
 * - always: every completed write is followed at once by an fsync round
 *   that covers it; synced_seq follows. Writes that complete while a round
 *   runs share the next round (one fsync in flight), so a slow disk costs
 *   fewer fsyncs, never an unsynced acknowledgement.
 * - batch: group commit. At most one fsync round is in flight and it covers
 *   everything written before it started; what is written meanwhile waits
 *   for the next round. When another journal's round is running too, a round
 *   asks the shared syncer (config syncer) instead: one syncfs then covers
 *   every session waiting at that moment (group commit across sessions) --
 *   unless a durable publish waits on it: then up to fsync_overlap
 *   (at most SL_JOURNAL_SYNCS_EXTRA) extra fdatasyncs of the newest segment run beside
 *   the round (only when every older segment and the folder are synced), each
 *   covering what was written before it started. A round is due when a durable publish waits
 *   (sl_journal_want_sync) or fsync_interval_ns after the first write it
 *   would cover; sl_journal_deadline() tells the owner when to call
 *   next_op again so it can arm a timer.
 * - never: no fsync at all (not even of folders); synced_seq follows
 *   written_seq so durable publishes are answered after their write.
 * A round fsyncs (fdatasync) each segment that received writes since the
 * previous round, then the session folder when a segment file was created
 * since (the new directory entry must survive a crash too), and only then
 * advances synced_seq.
 *
 * Errors: a failed or zero-length write, a failed fsync or a failed open
 * fails the journal: sl_segment_index_fail() (segment.h says why there is
 * no retry), appends return -EIO, sl_journal_status() names the error,
 * written_seq and synced_seq stop. Records already readable stay readable.
 * A short write continues where it stopped. EMFILE/ENFILE/ENOMEM on an
 * open are waits (retry after SL_JOURNAL_RETRY_MS), not failures.
 *
 * Ending: sl_journal_close() writes and syncs what was appended, releases
 * the journal's cached fds (remove + CLOSE) and ends in sl_journal_done().
 * sl_journal_remove() drops what was not written yet, releases the fds,
 * renames the folder to ".rm-<epoch>-<id>" (RENAMEAT; from then on the
 * session is gone for any restart, which ignores '.' names), fsyncs the
 * data dir, unlinks the segment files (UNLINKAT, SL_JOURNAL_UNLINKS_INFLIGHT
 * at a time), the seq reservation mark (storage/seqmark.h) and the folder
 * (which stays, renamed, when it still holds quarantine files: the next
 * start's sweep removes it). What a crash or an unknown file leaves behind
 * is removed at the next start by sl_journal_sweep_removed().
 *
 * Retention (sl_journal_set_retention): per session, a bound on bytes
 * (all segments, headers included, counting appended records not written
 * yet) and on age (the newest record time of the oldest segment, from the
 * ts_ns given to append, against the wall clock). next_op checks both in
 * O(1); when one is exceeded it removes the oldest segment, one at a time:
 * takes its fd out of the fd cache, drops it from the index, and submits
 * CLOSE (when it was cached) and UNLINKAT together; the next sync round
 * fsyncs the folder. Only a closed segment goes: never the last one
 * (appends go there), never one with a write in flight, never under a
 * read (a pinned fd: every next_op tries again, and readers start no new
 * read of it meanwhile), and, unless fsync=never, only once its records
 * are fdatasynced (an unsynced one starts a sync round at once). Policy at
 * the bytes bound: while removals lag behind, append returns SL_EFULL
 * rather than let the files, a removed one not unlinked yet included,
 * pass bytes_max by more than one segment. So a session's files hold at
 * most bytes_max + one segment (or + one record, for a record bigger than
 * a segment), and at most bytes_max (or one segment) once removals caught
 * up. The retained history starts at sl_journal_first_seq(). A segment
 * recovered without its newest record time (the manifest does not keep
 * it) takes the next time known after it (a later recovered segment's, or
 * the first record committed after it): it never expires earlier than it
 * should, and is kept while the session takes no new record. Retention
 * runs only while the journal is open (not closed or removed) and
 * healthy.
 *
 * Catch-up readers (sl_journal_reader_*): one per subscriber that fell
 * behind the in-memory ring. Each plans reads with the segment cursor
 * (segment.h), so it only ever reads committed records, below written_seq;
 * it reads into its own buffer (read_bytes, at least one largest record),
 * then hands the records out one by one through sl_journal_reader_next().
 * A reader asked for a seq older than the retained history starts at the
 * oldest retained record; one whose next read falls in a segment removed
 * meanwhile continues there too (what it had read but not handed out of
 * the removed segment is dropped). Either way its next record is later
 * than asked for: the owner names the lost range in a gap notice.
 *
 * Threads: a journal and its readers belong to the owner actor; every call
 * is made from the thread running it. The fd cache may be shared with
 * other journals on other threads through cfg.fdcache_lock.
 */
#ifndef SL_STORAGE_JOURNAL_H
#define SL_STORAGE_JOURNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/base.h"
#include "runtime/limits.h"
#include "runtime/reactor.h"
#include "storage/fdcache.h"
#include "storage/record.h"
#include "storage/segment.h"
#include "storage/syncer.h"

/* Prefix of a removed session's folder while its files are unlinked. */
#define SL_JOURNAL_REMOVED_PREFIX ".rm-"

typedef enum sl_journal_fsync {
    SL_JOURNAL_FSYNC_NEVER = 0,
    SL_JOURNAL_FSYNC_BATCH = 1,
    SL_JOURNAL_FSYNC_ALWAYS = 2,
} sl_journal_fsync_t;

/* Which sync a round makes: its own files' fdatasyncs, or a syncfs of
 * the file system that serves every session waiting at that moment. */
typedef enum sl_journal_fsync_scope {
    SL_JOURNAL_SCOPE_AUTO = 0, /* syncfs when another journal's round runs */
    SL_JOURNAL_SCOPE_FILE,     /* always the journal's own files */
    SL_JOURNAL_SCOPE_FS,       /* always syncfs (needs a syncer) */
} sl_journal_fsync_scope_t;

typedef struct sl_journal_config {
    int data_dir_fd;               /* borrowed: O_RDONLY|O_DIRECTORY fd of
                                      --data-dir; every path is relative to
                                      it and it is fsynced after a folder is
                                      created or renamed */
    sl_fdcache_t *fdcache;         /* borrowed; may be shared by journals */
    pthread_mutex_t *fdcache_lock; /* borrowed; NULL when one thread uses the
                                      cache, else held around every call */
    uint64_t segment_bytes_max;    /* --segment-bytes */
    uint32_t data_max;             /* --max-event-bytes */
    uint32_t buffer_bytes;         /* each write buffer; SL_JOURNAL_BUFFER_BYTES_* */
    uint32_t read_bytes;           /* reader buffer; 0 = default; raised to
                                      the largest record */
    sl_journal_fsync_t fsync;
    uint64_t fsync_interval_ns; /* batch: longest a write waits for its
                                   fsync when nobody asks for it */
    uint32_t fsync_overlap;     /* extra fdatasyncs beside a running round
                                   (0..SL_JOURNAL_SYNCS_EXTRA; 0: one sync in
                                   flight) */
    /* Group commit across sessions (storage/syncer.h), all optional: */
    sl_syncer_t *syncer;          /* borrowed; NULL: every round fsyncs its
                                     own files */
    _Atomic uint32_t *rounds_active; /* borrowed, shared: sync rounds of all
                                        journals running now */
    sl_journal_fsync_scope_t fsync_scope;
    void (*sync_wake)(void *ctx); /* called on the syncer thread when a
                                     syncfs this journal waits on is done:
                                     the owner then calls next_op */
    void *sync_wake_ctx;
    uint64_t mkdir_wait_ns;     /* a create that finds its folder (a deleted
                                   incarnation still being removed) retries
                                   the mkdir every SL_JOURNAL_RETRY_MS this
                                   long before failing; 0: fail at once */
} sl_journal_config_t;

typedef struct sl_journal_stats {
    uint64_t bytes_written;   /* bytes written to segment files (headers too) */
    uint64_t writes;          /* write batches completed */
    uint64_t short_writes;    /* writes the kernel cut short (continued) */
    uint64_t fsyncs;          /* fsyncs completed: segments, folders, data dir */
    uint64_t fsyncs_overlapped; /* of them, extra syncs beside a round */
    uint64_t syncfs_rounds;     /* rounds served by a shared syncfs */
    uint64_t opens;           /* files and folders opened */
    uint64_t closes;          /* fds closed (evicted, released, refused) */
    uint64_t appends_refused; /* SL_EFULL: every write buffer taken */
    uint64_t fd_waits;        /* opens deferred: all cached fds pinned, EMFILE */
    uint64_t reads;           /* catch-up reads completed, all readers */
    uint64_t read_bytes;
    uint64_t records_read; /* records handed out by readers */
    /* Retention: what it removed so far. */
    uint64_t segments_removed;
    uint64_t bytes_removed;         /* file bytes, headers included */
    uint64_t events_removed;        /* records */
    uint64_t payload_bytes_removed; /* data bytes */
    uint64_t retention_waits;       /* removals deferred: the fd was pinned */
    uint64_t retention_refusals;    /* appends refused (SL_EFULL, also in
                                       appends_refused): removals lag */
    uint64_t unlink_errors;         /* files that could not be unlinked
                                       (left for the next start) */
    uint32_t readers;               /* live reader objects */
    uint32_t fds_pinned;            /* cached fds pinned by this journal's
                                       I/O now (the cache's own stats
                                       count all open fds) */
} sl_journal_stats_t;

typedef struct sl_journal sl_journal_t;
typedef struct sl_journal_reader sl_journal_reader_t;

/* Starts the journal of a new session: the first next_op creates
 * <data-dir>/<id>. id (id_len bytes, borrowed) must be a valid session id
 * whose folder does not exist; epoch (non-zero) names this incarnation in
 * segment headers and fd cache keys, so it must differ from every other
 * journal's. cfg is copied (asserts its ranges). Returns 0 with *out owned
 * by the caller; SL_EINVAL for an invalid id; -ENOMEM. Owner thread. */
int sl_journal_create(const sl_journal_config_t *cfg, const char *id, size_t id_len, uint64_t epoch,
                      sl_journal_t **out);

/* Continues a session found at startup: index is the recovered
 * sl_recovery_session_t.index (takes it on success), epoch its epoch (a new
 * non-zero one when recovery knew none). Appends continue after the index's
 * last record; no I/O happens until then. Records already on disk count as
 * written and synced. Same errors as sl_journal_create; on failure index is
 * still the caller's. */
int sl_journal_open_recovered(const sl_journal_config_t *cfg, const char *id, size_t id_len,
                              uint64_t epoch, sl_segment_index_t *index, sl_journal_t **out);

/* Frees the journal. Only once sl_journal_done() is true, or before any op
 * was taken from next_op, and after every reader was destroyed (asserts).
 * NULL is ignored. */
void sl_journal_destroy(sl_journal_t *j);

/* Encodes one record (type and data borrowed for the call) into the
 * current write buffer. seq must exceed every seq appended before
 * (asserts); gaps are fine. Returns 0; SL_EFULL when every buffer is taken
 * or retention's removals lag behind the bytes bound (retry after the next
 * completion or at sl_journal_deadline()) or the session reached
 * SL_SEGMENTS_PER_SESSION_MAX; SL_EINVAL for a type_len outside
 * 1..SL_EVENT_TYPE_MAX; SL_ETOOBIG for data_len > data_max; -ENOMEM; -EIO
 * once the journal failed; SL_ECLOSED after close or remove. Nothing is
 * appended on failure. */
int sl_journal_append(sl_journal_t *j, uint64_t seq, uint64_t ts_ns, const void *type,
                      uint32_t type_len, const void *data, uint32_t data_len);
/* The same with record flags (SL_RECORD_F_*, storage/record.h). */
int sl_journal_append_flags(sl_journal_t *j, uint64_t seq, uint64_t ts_ns, const void *type,
                            uint32_t type_len, uint8_t flags, const void *data,
                            uint32_t data_len);

/* The same with an extension trailer (record.h; ext borrowed, ext_len <=
 * SL_RECORD_EXT_MAX, 0: none) written in the same record. */
int sl_journal_append_ext(sl_journal_t *j, uint64_t seq, uint64_t ts_ns, const void *type,
                          uint32_t type_len, uint8_t flags, const void *data, uint32_t data_len,
                          const void *ext, uint32_t ext_len);
/* Says a durable publish waits for seq to be synced: under fsync=batch the
 * next round starts at once instead of at the interval. */
void sl_journal_want_sync(sl_journal_t *j, uint64_t seq);

/* Returns the next op to submit, or NULL when none is due now. The op
 * belongs to the journal; the owner sets op->owner (and may set op->user,
 * which the journal never touches), submits it, and passes its completion
 * to sl_journal_complete(). Call it in a loop until NULL after every
 * append batch, every completion and at sl_journal_deadline(). now_ns is
 * sl_clock_now_ns(). */
sl_op_t *sl_journal_next_op(sl_journal_t *j, uint64_t now_ns);

/* True when op is one of the journal's own op records. */
bool sl_journal_owns_op(const sl_journal_t *j, const sl_op_t *op);

/* Consumes the completion of an op returned by next_op (op borrowed;
 * the journal reuses it). Advances written/synced seqs, or fails the
 * journal on an I/O error. */
void sl_journal_complete(sl_journal_t *j, sl_op_t *op);

/* Monotonic ns at which next_op should be called again even without a
 * completion (group-commit interval, an open or retention retry), or 0 for
 * none. Always near (SL_JOURNAL_RETRY_MS, fsync_interval_ns); age
 * retention has sl_journal_retention_deadline(). */
uint64_t sl_journal_deadline(const sl_journal_t *j);

/* Last seq whose record is in the page cache (readable, survives a process
 * crash). */
uint64_t sl_journal_written_seq(const sl_journal_t *j);
/* Last seq whose record is fsynced (survives a power loss). Equals
 * written_seq under fsync=never. */
uint64_t sl_journal_synced_seq(const sl_journal_t *j);
/* Last seq appended (0 for none). */
uint64_t sl_journal_appended_seq(const sl_journal_t *j);
/* True once the session folder exists (made and, unless fsync=never,
 * synced) and the journal runs healthy: files beside the segments (the
 * seq reservation mark) may be written. */
bool sl_journal_ready(const sl_journal_t *j);
/* 0 while healthy, else the error that failed the journal (-errno). */
int sl_journal_status(const sl_journal_t *j);
/* Ops handed out by next_op whose completion has not arrived (readers'
 * ops not included). */
uint32_t sl_journal_inflight(const sl_journal_t *j);
/* The segment index (readable records, per-segment stats) for the
 * manifest and /health; valid until the next append, next_op or
 * completion. */
const sl_segment_index_t *sl_journal_index(const sl_journal_t *j);
void sl_journal_stats(const sl_journal_t *j, sl_journal_stats_t *out);

/* Sets the retention bounds (see above): bytes_max over the session's
 * segments, age_ns for its oldest segment's newest record; 0 turns a bound
 * off (both 0: no retention, the default). Takes effect at the next
 * next_op; call next_op after setting it. Owner thread; any time. */
void sl_journal_set_retention(sl_journal_t *j, uint64_t bytes_max, uint64_t age_ns);

/* Seq of the oldest retained readable record, 0 when none: the session's
 * first_seq. It grows when retention removes a segment. */
uint64_t sl_journal_first_seq(const sl_journal_t *j);

/* Monotonic ns at which the oldest segment passes the age bound, when that
 * is still ahead; else 0 (no age bound, one segment, time unknown, or due
 * now: next_op handles it). Call next_op then, so an idle session sheds
 * expired history too. Kept out of sl_journal_deadline() because it may
 * lie hours ahead: an owner that keeps one timer armed for it would sleep
 * past the short deadlines (group commit, retries) in between. */
uint64_t sl_journal_retention_deadline(const sl_journal_t *j);

/* Stops appends (SL_ECLOSED), then via next_op: writes and syncs what was
 * appended (unless failed), waits for readers to be destroyed, and closes
 * the journal's cached fds. Idempotent. */
void sl_journal_close(sl_journal_t *j);

/* Deletes the session's files: stops appends, drops unwritten records,
 * waits for in-flight ops and readers, then releases fds, renames, syncs
 * and unlinks (see above). Overrides a close in progress. Idempotent. */
void sl_journal_remove(sl_journal_t *j);

/* True when close or remove has finished and nothing is in flight. */
bool sl_journal_done(const sl_journal_t *j);

/* After a remove: 0 when every file and the folder were unlinked, else
 * the first error (the folder, renamed, is left for the next start). */
int sl_journal_remove_status(const sl_journal_t *j);

/* Startup only (plain syscalls): removes every SL_JOURNAL_REMOVED_PREFIX
 * folder left in data_dir by a remove that did not finish, and fsyncs
 * data_dir. Returns how many folders were removed, or -errno when data_dir
 * cannot be listed. Folders that cannot be removed are logged and left. */
int sl_journal_sweep_removed(const char *data_dir);

/* ---- catch-up readers ------------------------------------------------ */

/* Creates a reader of j (borrowed; it must outlive the reader) that
 * delivers records from from_seq on (0 or 1: from the first). Allocates
 * its buffer. Returns 0 with *out owned by the caller; SL_ECLOSED once j is
 * closing or removed; -ENOMEM. */
int sl_journal_reader_create(sl_journal_t *j, uint64_t from_seq, sl_journal_reader_t **out);

/* Next op of the reader (open, close of an evicted fd, or a read), or NULL
 * when none is due: records are waiting in sl_journal_reader_next, an op
 * is in flight, the reader is caught up or failed (see status), or it waits
 * for an fd (see deadline). Same ownership rules as sl_journal_next_op. */
sl_op_t *sl_journal_reader_next_op(sl_journal_reader_t *r, uint64_t now_ns);
bool sl_journal_reader_owns_op(const sl_journal_reader_t *r, const sl_op_t *op);
void sl_journal_reader_complete(sl_journal_reader_t *r, sl_op_t *op);

/* Hands out the next record of the last read. Returns 1 with *out set
 * (type and data borrow the reader's buffer until its next next_op); 0
 * when the read is used up (call next_op); SL_ECORRUPT when the file does
 * not hold what the index says (the reader stops; see status). */
int sl_journal_reader_next(sl_journal_reader_t *r, sl_record_view_t *out);

/* 0 while reading; SL_EAGAIN when caught up (every readable record was
 * handed out: switch to the live ring, or call next_op again after
 * written_seq moved); SL_ECORRUPT, SL_ECLOSED or -errno when it stopped. */
int sl_journal_reader_status(const sl_journal_reader_t *r);
/* First seq not yet handed out. */
uint64_t sl_journal_reader_next_seq(const sl_journal_reader_t *r);
/* Monotonic ns of the next retry when waiting for an fd, else 0. */
uint64_t sl_journal_reader_deadline(const sl_journal_reader_t *r);

/* Winds the reader down: no further reads; next_op only returns the close
 * of an fd it still has to close. Destroy once idle. */
void sl_journal_reader_stop(sl_journal_reader_t *r);
/* True when no op is in flight and no fd waits to be closed. */
bool sl_journal_reader_idle(const sl_journal_reader_t *r);
/* Frees an idle reader (asserts idle). NULL is ignored. */
void sl_journal_reader_destroy(sl_journal_reader_t *r);

#endif
