/*
 * Recovery: find the intact records of segment files, move what is cut
 * to quarantine, and rebuild each session's segment index at startup.
 *
 * Everything that touches files here runs at startup only, before the
 * server accepts connections, and uses plain syscalls (opendir, pread,
 * pwrite, ftruncate, rename, fsync): there is no reactor traffic yet to block, and
 * recovery must finish before any session is served anyway. The scan
 * itself (sl_recovery_scan_*, and repair.h's plans) is pure and works on
 * buffers.
 *
 * Rules (recovery never destroys bytes):
 * - Each segment the manifest does not vouch for is planned by
 *   storage/repair.h: its intact records are every record that decodes and
 *   continues the seq order (strictly increasing, the first one named by
 *   the file, all below the next segment's name), also after a damaged
 *   range: the plan resyncs at the next such record. Seqs may skip values
 *   (ephemeral events share the counter but are not logged), so "in order"
 *   means strictly increasing, not +1. Why records after damage can be
 *   trusted (they are what the session's own journal wrote, in order,
 *   after the damaged record: the damage hit bytes already written) is
 *   argued in repair.h.
 * - What is cut goes to quarantine files beside the segment
 *   (<segment>.quarantine-<offset>, exactly the cut bytes, fsynced before
 *   the segment changes); recovery never unlinks them. A torn or damaged
 *   tail is copied there and the segment truncated to its last intact
 *   record; damage before intact records makes the segment rewritten
 *   without it (renamed to its first intact seq when the first record was
 *   the damaged one); a segment with no intact record is renamed to
 *   <segment>.quarantine-0. The same holds for every segment, the last one
 *   included: appends continue after the last intact record of the last
 *   segment, in a file that now ends there.
 * - A damaged range between intact records is a hole in the seqs: catch-up
 *   readers receive it as a sluice.gap (from the last intact seq + 1 to
 *   the next intact seq - 1), never as an error to retry.
 * - Log lines: msg="segment damage quarantined" with session, segment,
 *   offset, bytes, file and reason=torn|corrupt, at error level. Counts go
 *   into sl_recovery_session_t and /health (storage.damaged_segments,
 *   storage.quarantined_bytes).
 * - A segment whose intact header names another epoch is left alone and
 *   skipped (it belongs to a deleted incarnation).
 * - Damage that appears after a clean shutdown is not seen here (a clean
 *   entry is trusted without opening a file); catch-up reads skip it at
 *   run time the same way (segment.h, sl_segment_cursor_consume), and
 *   `sluiced --check --repair` (check.h) cuts it offline.
 * The seq counter resumes above every seq that may have been handed out:
 * the manifest's counter, the last intact record, every segment's name,
 * the session's seq reservation mark (storage/seqmark.h), and, when the
 * last segment ends in damage (not a torn write), as many seqs past the
 * last intact record (or the mark) as records could fit in the damaged
 * bytes: they were written, so their seqs may have been read; skipping
 * them costs a gap, reusing one would renumber an event.
 * How much is scanned depends on the manifest; manifest.h has the rules.
 */
#ifndef SL_STORAGE_RECOVERY_H
#define SL_STORAGE_RECOVERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/base.h"
#include "storage/manifest.h"
#include "storage/repair.h"
#include "storage/segment.h"

/* Startup scans read segments in chunks of this many bytes, or of the
 * largest possible record when that is bigger (bounded memory, and every
 * chunk can hold any record whole). */
#define SL_RECOVERY_READ_BYTES (1u << 20)

/* How the scanned bytes ended. */
typedef enum sl_recovery_end {
    SL_RECOVERY_END_CLEAN = 0, /* right after a valid record (or the header) */
    SL_RECOVERY_END_TORN,      /* inside a record (or the header) whose bytes
                                  so far are right: an interrupted write */
    SL_RECOVERY_END_CORRUPT,   /* at bytes that fail a check: damage */
} sl_recovery_end_t;

/* State and result of scanning one segment. */
typedef struct sl_recovery_scan {
    uint64_t segment;    /* first_seq from the file name */
    uint64_t file_bytes; /* size of the file being scanned */
    uint32_t data_max;
    bool done;
    bool header_ok;
    sl_recovery_end_t end;      /* valid once done */
    sl_segment_header_t header; /* valid when header_ok */
    uint64_t valid_bytes;       /* length of the valid prefix so far */
    uint64_t first_seq;         /* first record's seq (0: none) */
    uint64_t last_seq;          /* last valid record's seq (0: none) */
    uint64_t events;            /* valid records */
    uint64_t payload_bytes;     /* their data bytes */
    uint64_t last_ts_ns;        /* ts of the last valid record */
} sl_recovery_scan_t;

/* Starts a scan of the segment named by segment (>= 1) whose file holds
 * file_bytes bytes; data_max as in sl_record_decode. */
void sl_recovery_scan_init(sl_recovery_scan_t *s, uint64_t segment, uint64_t file_bytes,
                           uint32_t data_max);

/* Feeds the n bytes of the file that start at offset s->valid_bytes (buf
 * borrowed for the call). Returns 0 once the scan is done (see s->end), or
 * SL_EAGAIN when more bytes are needed: feed again from the new
 * s->valid_bytes. Progress is guaranteed when every feed offers at least
 * SL_RECORD_MAX_SIZE(data_max) bytes (record.h), or the rest of
 * the file. */
int sl_recovery_scan_feed(sl_recovery_scan_t *s, const void *buf, size_t n);

/* Scans a whole segment held in memory (n bytes at buf, borrowed): init
 * plus one feed. */
void sl_recovery_scan_buffer(sl_recovery_scan_t *s, uint64_t segment, const void *buf, size_t n,
                             uint32_t data_max);

/* True when bytes follow the valid prefix. */
bool sl_recovery_needs_truncate(const sl_recovery_scan_t *s);

/* Startup only: scans the segment open at fd (borrowed) with pread in
 * bounded chunks. Returns 0 with *s filled, -errno from fstat/pread, or
 * -ENOMEM for the read buffer. */
int sl_recovery_scan_fd(int fd, uint64_t segment, uint32_t data_max, sl_recovery_scan_t *s);

/* Startup only: truncates the segment open at fd (borrowed, writable) to
 * s->valid_bytes, fsyncs it, and logs one line at warn (torn) or error
 * (corrupt) level:
 *   msg="truncated torn tail" session=<id> segment=<name> offset=<valid>
 *   dropped_bytes=<n> reason=torn|corrupt
 * id (id_len bytes) and name are borrowed. Returns 0 or -errno. */
int sl_recovery_truncate(int fd, const char *id, size_t id_len, const char *name,
                         const sl_recovery_scan_t *s);

/* What startup learned about one session. */
typedef struct sl_recovery_session {
    sl_segment_index_t *index; /* returns owned: the caller destroys it */
    uint64_t epoch;            /* 0 when unknown (no entry, no segment) */
    uint64_t created_ns;       /* 0 when unknown */
    uint64_t last_activity_ns;
    uint64_t seq_hwm;          /* highest seq known used: the next is seq_hwm + 1 */
    uint32_t segments_trusted; /* taken from the manifest without opening */
    uint32_t segments_scanned;
    uint32_t segments_truncated; /* a tail cut (to quarantine) */
    uint32_t segments_rewritten; /* damage before intact records cut */
    uint32_t segments_removed;   /* no intact record: moved to quarantine */
    uint32_t segments_damaged;   /* found damaged (repaired or not), or skipped */
    uint64_t damaged_bytes;      /* bytes found damaged */
    uint64_t quarantined_bytes;  /* bytes moved to quarantine files */
    uint64_t seq_reserved;       /* the seq reservation mark (0: none) */
    bool entry_used;           /* the manifest entry matched the files (false
                                  when there was none or it was stale: its
                                  epoch differs from the segments') */
} sl_recovery_session_t;

/* Options for recovery and for the offline checker. */
typedef struct sl_recovery_opts {
    bool dry_run;      /* plan and report, change no file */
    bool ignore_clean; /* scan every segment, even under a clean entry */
    /* Called for each planned segment (p borrowed for the call), before
     * its repair; NULL for none. */
    void (*segment_cb)(const char *id, size_t id_len, const sl_repair_plan_t *p, void *ctx);
    void *ctx;
} sl_recovery_opts_t;

/* Startup only: rebuilds the session id (id_len bytes, borrowed; must be
 * valid, asserts) under data_dir following manifest.h's rules. entry
 * (borrowed, may be NULL) is its manifest entry. segment_bytes_max and
 * data_max configure the index. Returns 0 with *out filled; -errno when
 * the folder cannot be listed or a file cannot be opened, read or
 * truncated; -ENOMEM. On failure nothing is owned by the caller. */
int sl_recovery_session(const char *data_dir, const char *id, size_t id_len,
                        const sl_manifest_entry_t *entry, uint64_t segment_bytes_max,
                        uint32_t data_max, sl_recovery_session_t *out);
/* The same with opts (borrowed; NULL: repair, trust clean entries). */
int sl_recovery_session_opts(const char *data_dir, const char *id, size_t id_len,
                             const sl_manifest_entry_t *entry, uint64_t segment_bytes_max,
                             uint32_t data_max, const sl_recovery_opts_t *opts,
                             sl_recovery_session_t *out);

/* Called once per recovered session. Takes rs->index. id is borrowed and
 * NUL-terminated. entry is the session's manifest entry (borrowed for the
 * call; NULL when the manifest did not know the session or its entry was
 * stale) for the API stats that only the manifest keeps. */
typedef void (*sl_recovery_session_cb)(const char *id, size_t id_len,
                                       const sl_manifest_entry_t *entry, sl_recovery_session_t *rs,
                                       void *ctx);

/* Totals of a data-dir recovery. */
typedef struct sl_recovery_stats {
    int manifest_status;      /* 0 loaded, -ENOENT none, SL_ECORRUPT, -errno */
    uint32_t sessions;        /* passed to cb */
    uint32_t sessions_failed; /* folder could not be recovered (logged, skipped) */
    uint32_t entries_dropped; /* manifest entries with no folder */
    uint32_t names_ignored;   /* entries that are neither reserved nor valid ids */
    uint32_t segments_scanned;
    uint32_t segments_truncated;
    uint32_t segments_damaged;
    uint64_t damaged_bytes;
    uint64_t quarantined_bytes;
} sl_recovery_stats_t;

/* Startup only: loads the manifest of data_dir, lists data_dir, and calls
 * cb for each session folder (in directory order). Reserved names (leading
 * '.') are skipped; other invalid names are logged and skipped. A session
 * whose recovery fails is logged and skipped (its files are left alone).
 * Returns 0 with *stats filled, -errno when data_dir cannot be listed, or
 * -ENOMEM. */
int sl_recovery_data_dir(const char *data_dir, uint64_t segment_bytes_max, uint32_t data_max,
                         sl_recovery_session_cb cb, void *ctx, sl_recovery_stats_t *stats);
/* The same with opts (borrowed; NULL as above). */
int sl_recovery_data_dir_opts(const char *data_dir, uint64_t segment_bytes_max, uint32_t data_max,
                              const sl_recovery_opts_t *opts, sl_recovery_session_cb cb, void *ctx,
                              sl_recovery_stats_t *stats);

#endif
