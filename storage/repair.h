/*
 * Segment repair: find every damaged byte range of one segment file, keep
 * the intact records around them, and move what is cut into quarantine
 * files instead of throwing it away. Used by startup recovery
 * (recovery.h) and by the offline checker (`sluiced --check`).
 *
 * A plan (sl_repair_plan_*) walks the file once. It accepts a record that
 * decodes (length guard and CRC check, record.h) and is in sequence: the
 * first accepted record's seq is the file's name when nothing before it
 * was damaged, otherwise at least the name; every later one is greater
 * than the last accepted; every one is below seq_limit (the next segment's
 * name: a segment never holds a seq of the next one). At bytes that are
 * not such a record the plan resyncs: it tries every following offset for
 * the next acceptable record. The bytes in between form a damaged range.
 * A correct prefix of a record that runs into the end of the file is a
 * torn tail (an interrupted write), also a range. A damaged header is a
 * range from offset 0; records are then searched from offset 48 on.
 *
 * Why records after damage may be kept: they pass a CRC over seq, time,
 * type and data, and they continue the seq order of the records before
 * the damage and stay below the next segment. Files are only appended
 * and every recovery cuts a tail before appends resume, so no stale
 * record from an earlier write can lie beyond the valid end; the only
 * writer of records past the damage is the session's own journal, in
 * order. Damage in the middle of the written range is therefore damage to
 * bytes that were already written (a media error, a flipped bit, pages
 * lost by a power cut), not an unfinished write, and the records after it
 * are the ones the journal wrote after the damaged one. (A payload that
 * itself embeds a well-formed record could be mistaken for one only when
 * the record holding it is damaged; its seq must still fit the order.)
 *
 * Applying a plan (sl_repair_apply, plain syscalls, startup only):
 * - no damage: nothing;
 * - no record kept: the file is renamed to <name>.quarantine-0;
 * - only a tail cut from a file whose header and first record are intact:
 *   the tail is copied to <name>.quarantine-<offset>, fsynced (file and
 *   folder), and the file truncated and fsynced;
 * - otherwise: every damaged range is copied to its quarantine file and
 *   fsynced, then the folder; the header (rebuilt when it was damaged, with the epoch the
 *   caller knows) and the kept records are written to
 *   <new name>.repair, fsynced and renamed to <new name>, where new name
 *   is the first kept seq (the file's own name unless the first record was
 *   damaged, in which case the old file is unlinked after the rename: each
 *   of its bytes is by then in the new file or in a quarantine file).
 * Then the folder is fsynced. Quarantine files are never read, removed or
 * overwritten by sluice: a name already taken gets a ".1", ".2", ...
 * suffix. A crash in the middle of a repair leaves files the next
 * recovery repairs again to the same result (the cut bytes may then be
 * quarantined twice).
 *
 * Threads: plans are pure over their source; apply runs on the main thread
 * at startup or in the checker.
 */
#ifndef SL_STORAGE_REPAIR_H
#define SL_STORAGE_REPAIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/base.h"
#include "runtime/limits.h"
#include "storage/segment.h"

/* Suffix of a quarantine file: <segment name>.quarantine-<offset>. */
#define SL_REPAIR_QUARANTINE_INFIX ".quarantine-"
/* Suffix of a rewritten segment before its rename. */
#define SL_REPAIR_TMP_SUFFIX ".repair"
/* Names tried for one quarantine file: <segment>.quarantine-<offset>,
 * then the same with ".1", ".2", ... (policy at the bound: the repair
 * fails with -EEXIST and the segment is left as it is). */
#define SL_REPAIR_NAME_TRIES 100u
/* Longest quarantine file name (segment name + infix + 20 digits + ".99"). */
#define SL_REPAIR_NAME_MAX (SL_SEGMENT_NAME_LEN + 12u + 20u + 3u)

typedef struct sl_repair_range {
    uint64_t offset;
    uint64_t bytes;
} sl_repair_range_t;

typedef enum sl_repair_action {
    SL_REPAIR_NONE = 0,   /* intact */
    SL_REPAIR_TRUNCATE,   /* a tail is cut */
    SL_REPAIR_REWRITE,    /* damage before intact records: rewrite */
    SL_REPAIR_QUARANTINE, /* no intact record: the whole file goes */
} sl_repair_action_t;

/* What one segment holds and what a repair cuts. */
typedef struct sl_repair_plan {
    uint64_t segment;   /* the file's name (first_seq it was created with) */
    uint64_t seq_limit; /* accepted seqs lie below this */
    uint64_t file_bytes;
    bool header_ok;
    sl_segment_header_t header; /* valid when header_ok */
    bool torn;                  /* the last range is a torn tail */
    uint64_t first_seq;         /* of the kept records; 0: none */
    uint64_t last_seq;
    uint64_t events;
    uint64_t payload_bytes;
    uint64_t last_ts_ns;
    uint64_t kept_bytes;    /* record bytes kept (no header) */
    uint64_t damaged_bytes; /* sum of the ranges */
    uint32_t damage_count;
    /* Cut ranges in file order. At SL_REPAIR_RANGES_MAX the last range
     * runs to the end of the file (policy: what follows is cut too, into
     * that quarantine file; never lost, only not served). */
    sl_repair_range_t damage[SL_REPAIR_RANGES_MAX];
} sl_repair_plan_t;

/* Plans the repair of the n bytes at buf (borrowed), a segment named
 * segment (>= 1); seq_limit as above (UINT64_MAX: none); data_max as in
 * sl_record_decode. Pure; any thread. */
void sl_repair_plan_buffer(sl_repair_plan_t *p, uint64_t segment, uint64_t seq_limit,
                           const void *buf, size_t n, uint32_t data_max);

/* The same for the file open at fd (borrowed), read with pread in bounded
 * chunks (memory: twice the largest record, at least 1 MiB).
 * Returns 0, -errno from fstat/pread, or -ENOMEM. Startup only. */
int sl_repair_plan_fd(int fd, uint64_t segment, uint64_t seq_limit, uint32_t data_max,
                      sl_repair_plan_t *p);

sl_repair_action_t sl_repair_action(const sl_repair_plan_t *p);
/* "none", "truncate", "rewrite", "quarantine". */
const char *sl_repair_action_name(sl_repair_action_t a);

/* Writes "<segment name>.quarantine-<offset>" into out (cap >=
 * SL_REPAIR_NAME_MAX + 1, asserts). */
void sl_repair_quarantine_name(char *out, size_t cap, uint64_t segment, uint64_t offset);

/* Applies p (borrowed) to its file, open at fd (borrowed, O_RDWR) in the
 * folder dirfd (borrowed), as described above. epoch is written into a
 * rebuilt header (used only when p->header_ok is false; non-zero). id
 * (id_len bytes, borrowed) names the session in the log lines, one per
 * range: msg="segment damage quarantined" session= segment= offset=
 * bytes= file= reason=torn|corrupt. Returns 0 or -errno; on failure the
 * segment file itself is unchanged unless the error came after the
 * rename (then the next start finishes the job). */
int sl_repair_apply(int dirfd, int fd, const sl_repair_plan_t *p, uint64_t epoch, const char *id,
                    size_t id_len);

#endif
