/*
 * The manifest: one small file per data dir that lets startup learn every
 * session without opening the sessions' files.
 *
 * File: <data-dir>/.manifest (a reserved name, see session_id.h), replaced
 * atomically: write <data-dir>/.manifest.tmp, fsync it, rename it over
 * .manifest, fsync the data dir. A reader therefore sees the old or the new
 * file, never a mix. Format (little-endian):
 *
 *   header, 32 bytes:
 *      0  8  magic "SLUICEMF"
 *      8  4  version (1)
 *     12  4  entry count
 *     16  8  body bytes (everything after the header)
 *     24  4  CRC32C of the body
 *     28  4  CRC32C of bytes [0, 28)
 *   entries, back to back, each:
 *      0  1  id_len, then id_len bytes of id (a valid session id)
 *      then epoch, first_seq, last_seq, events, bytes, created_ns,
 *      last_activity_ns (u64 each), flags (u32), segment count (u32),
 *      then per segment: first_seq, last_seq, bytes, events, payload_bytes
 *      (u64 each, SL_MANIFEST_SEGMENT_BYTES), in seq order.
 * The whole body has one CRC: a manifest is trusted entirely or not at all.
 *
 * Entry fields: first_seq, last_seq, events and bytes are the session's
 * stats as the API reports them (last_seq is the seq counter, which also
 * counts ephemeral events; bytes counts payload bytes). epoch is the
 * incarnation id. The segment list describes the log on disk and must only
 * cover synced bytes.
 *
 * Startup (recovery.h) and the clean flag:
 * - An entry with SL_MANIFEST_ENTRY_CLEAN is trusted as is: its folder is
 *   not even listed. The flag is set only when the session's log was fully
 *   written and synced and no write can follow before the manifest is
 *   rewritten — in practice the manifest written at clean shutdown. The
 *   server must therefore rewrite the manifest with every entry dirty after
 *   recovery, before it accepts a write; otherwise a crash after restart
 *   would trust stale clean entries.
 * - A dirty entry: the session's folder is listed and each segment's size
 *   compared (stat, no open) with the entry; only segments whose size
 *   differs, or that the entry does not know, are opened and scanned, and a
 *   torn tail in the last one is truncated. After a crash that is usually
 *   just the last segment. One more read: the first segment's 48-byte
 *   header, whose epoch tells whether the entry is stale (written before
 *   the session was deleted and created again); a stale entry is ignored
 *   and the folder treated as unknown.
 * - A folder with no entry is scanned entirely; an entry with no folder is
 *   dropped (the session was deleted).
 * - A missing manifest (first start) or a corrupt one (bad CRC, bad
 *   structure, too big) is treated as empty: every session folder is
 *   scanned. Slower, never wrong.
 *
 * At run time the server writes the manifest through the reactor (OPENAT
 * the temp file, WRITE, FSYNC, CLOSE, rename, FSYNC the data dir); this
 * module provides the bytes (sl_manifest_writer_t) and, for startup and
 * shutdown only, plain-syscall load and store.
 *
 * Threads: the writer and reader are pure and may run on any thread (one
 * thread per writer or reader object); load and store run on the main
 * thread at startup and shutdown.
 */
#ifndef SL_STORAGE_MANIFEST_H
#define SL_STORAGE_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/base.h"
#include "runtime/limits.h"
#include "storage/segment.h"

#define SL_MANIFEST_NAME ".manifest"
#define SL_MANIFEST_TMP_NAME ".manifest.tmp"
#define SL_MANIFEST_MAGIC "SLUICEMF"
#define SL_MANIFEST_VERSION 2u /* 2 adds entry extensions; 1 is still read */
#define SL_MANIFEST_HEADER_BYTES 32u
/* Fixed part of an entry (id_len byte, 7 u64, 2 u32), without id and
 * segments. */
#define SL_MANIFEST_ENTRY_FIXED 65u
#define SL_MANIFEST_SEGMENT_BYTES 40u

/* Entry flags. */
#define SL_MANIFEST_ENTRY_CLEAN 0x1u
/* The entry ends with an extension: u32 length, then that many bytes the
 * server keeps for the session (its lifecycle: attributes, closure,
 * producers; opaque here), at most SL_MANIFEST_EXT_MAX. */
#define SL_MANIFEST_ENTRY_EXT 0x2u
#define SL_MANIFEST_EXT_MAX (1u << 20)

typedef struct sl_manifest_entry {
    const char *id; /* not NUL-terminated; borrowed (decode: from the buffer) */
    uint32_t id_len;
    uint64_t epoch;
    uint64_t first_seq;
    uint64_t last_seq;
    uint64_t events;
    uint64_t bytes;
    uint64_t created_ns;
    uint64_t last_activity_ns;
    uint32_t flags; /* SL_MANIFEST_ENTRY_* */
    uint32_t segment_count;
    const uint8_t *ext;       /* with SL_MANIFEST_ENTRY_EXT: the extension (borrowed) */
    uint32_t ext_len;
    const uint8_t *_segments; /* decode: the packed segment list */
} sl_manifest_entry_t;

/* Encoded size of one entry. Any thread. */
size_t sl_manifest_entry_size(uint32_t id_len, uint32_t segment_count);
/* The same for an entry with an extension of ext_len bytes (0: none). */
size_t sl_manifest_entry_size_ext(uint32_t id_len, uint32_t segment_count, uint32_t ext_len);

/* Builds a manifest in a caller buffer. */
typedef struct sl_manifest_writer {
    uint8_t *_buf;
    size_t _cap;
    size_t _len;
    uint32_t _count;
} sl_manifest_writer_t;

/* Starts a manifest in buf (borrowed until finish; cap >=
 * SL_MANIFEST_HEADER_BYTES, asserts). */
void sl_manifest_writer_init(sl_manifest_writer_t *w, void *buf, size_t cap);

/* Appends entry e (borrowed) with its e->segment_count segments from segs
 * (borrowed; only first_seq, last_seq, bytes, events and payload_bytes are
 * stored). Returns 0; SL_EINVAL for an invalid id; SL_ETOOBIG for more than
 * SL_SEGMENTS_PER_SESSION_MAX segments; SL_EFULL when the buffer cannot
 * hold the entry (size the buffer with sl_manifest_entry_size). The writer
 * is unchanged on failure. */
int sl_manifest_writer_add(sl_manifest_writer_t *w, const sl_manifest_entry_t *e,
                           const sl_segment_t *segs);

/* Writes the header and returns the manifest's total size in bytes. */
size_t sl_manifest_writer_finish(sl_manifest_writer_t *w);

/* Iterates the entries of a manifest held in memory. */
typedef struct sl_manifest_reader {
    const uint8_t *_buf;
    size_t _len;
    size_t _pos;
    uint32_t _left;
} sl_manifest_reader_t;

/* Checks the header and the body CRC of the n bytes at buf (borrowed for the
 * reader's life). Returns 0 or SL_ECORRUPT (short, wrong magic, version,
 * length or CRC). */
int sl_manifest_reader_init(sl_manifest_reader_t *r, const void *buf, size_t n);
/* Entry count announced by the header. */
uint32_t sl_manifest_reader_count(const sl_manifest_reader_t *r);

/* Decodes the next entry into e (whose pointers then borrow from the
 * buffer). Returns 1 for an entry, 0 after the last one (the body was
 * consumed exactly), SL_ECORRUPT for a malformed entry, an invalid id, a
 * segment list that is not strictly increasing, or trailing bytes. */
int sl_manifest_reader_next(sl_manifest_reader_t *r, sl_manifest_entry_t *e);

/* Reads segment i (< e->segment_count, asserts) of a decoded entry into
 * out (public fields; private ones zeroed). */
void sl_manifest_entry_segment(const sl_manifest_entry_t *e, uint32_t i, sl_segment_t *out);

/* Startup only (plain syscalls, before the server accepts connections):
 * reads <data_dir>/.manifest and checks it as sl_manifest_reader_init
 * does. Returns 0 with *buf (returns owned; free()) and *len set; -ENOENT
 * when there is none; SL_ECORRUPT when it is damaged or larger than
 * SL_MANIFEST_BYTES_MAX; another -errno when it cannot be read;
 * -ENOMEM. *buf is untouched on failure. */
int sl_manifest_load(const char *data_dir, void **buf, size_t *len);

/* Startup and shutdown only (plain syscalls): atomically replaces
 * <data_dir>/.manifest with the len bytes at buf (borrowed): temp file,
 * fsync, rename, fsync of the data dir. Returns 0 or -errno; on failure the
 * old manifest is intact (a stale temp file may remain; the next store
 * truncates it). */
int sl_manifest_store(const char *data_dir, const void *buf, size_t len);

#endif
