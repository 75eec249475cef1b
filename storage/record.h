/*
 * The record codec: how one event is laid out in a segment file.
 *
 * Layout (little-endian, no padding):
 *
 *   off  size  field
 *     0     4  len       bytes after this field (25 + type_len + data_len)
 *     4     4  len_crc   CRC32C of the 4 bytes of len
 *     8     4  crc       CRC32C of bytes [12, 4 + len): seq through data
 *    12     8  seq       >= 1
 *    20     8  ts_ns     wall-clock ns since the epoch (server time)
 *    28     1  type_len  bits 0-6: 1..SL_EVENT_TYPE_MAX; bit 7: SL_RECORD_F_STR
 *    29     t  type
 *  29+t     d  data      d = len - 25 - type_len, 0..data_max
 *
 * Why this shape:
 * - No per-record magic or version. The segment file header (segment.h)
 *   carries magic, format version and epoch once per file; records are never
 *   searched for in the middle of a file (recovery keeps the valid prefix and
 *   stops at the first bad record), so a per-record marker would only cost
 *   bytes on every token-sized event.
 * - len is guarded by its own CRC. Without it a damaged length looks like "a
 *   longer record whose tail has not arrived" (SL_EAGAIN) and a reader would
 *   wait for, or recovery would misreport as a torn write, bytes that never
 *   come. With it, any damage to the first 8 bytes is SL_ECORRUPT at once,
 *   and SL_EAGAIN means exactly "a correct prefix of a record": the shape of
 *   a torn write at the tail of a file.
 * - No data_len field: it would repeat what len already says.
 * - No alignment padding: records are copied out of read buffers, never
 *   overlaid as structs.
 * The minimum record (1-byte type, no data) is SL_RECORD_OVERHEAD + 1 = 30
 * bytes.
 *
 * Extension trailer (session lifecycle): when bit 63 of ts_ns is set (no
 * real clock reaches it before the year 2262, so older records never have
 * it), the record ends with ext bytes followed by their count as a u16:
 *
 *  29+t     d  data      d = len - 25 - type_len - e - 2
 *  29+t+d   e  ext       0 < e <= SL_RECORD_EXT_MAX
 *  ...      2  e
 *
 * The CRC covers it like the rest, so a record and its trailer are written
 * (and survive a crash) as one. The trailer carries what must be durable
 * together with the event: an idempotent producer's (id, epoch, seq), a
 * Durable Streams Stream-Seq, the session's closure (storage/lifecycle.h
 * encodes it). Decoding strips it: data and data_len never include it.
 * Readers that know nothing of trailers (older versions) would see it as
 * part of the data; this version reads both.
 *
 * A record is never exposed half-written: a reader only accepts a record
 * whose length guard and CRC both check, and the segment index (segment.h)
 * only advances its readable end after the write that carried the record
 * completed.
 */
#ifndef SL_STORAGE_RECORD_H
#define SL_STORAGE_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/base.h"
#include "runtime/limits.h"

/* Flags, kept in the top bit of the type_len byte (type_len <= 64, so the
 * bit was always 0 before flags existed: older segments read unchanged). */
#define SL_RECORD_F_STR 0x80u /* data was published as a string (msgpack str) */
/* ts_ns bit: the record ends with an extension trailer. */
#define SL_RECORD_TS_EXT (1ull << 63)
/* Largest extension trailer (its own 2-byte count not included). */
#define SL_RECORD_EXT_MAX 1024u
#define SL_RECORD_TYPE_LEN_MASK 0x7fu
_Static_assert(SL_EVENT_TYPE_MAX <= SL_RECORD_TYPE_LEN_MASK, "type_len leaves the flag bit free");

/* Size of a record with an empty type and no data. */
#define SL_RECORD_OVERHEAD 29u
/* Bytes needed to learn a record's total size (len + len_crc). */
#define SL_RECORD_PREFIX_BYTES 8u
/* Largest record the hard caps allow: every buffer that must hold one whole
 * record (catch-up reads, recovery scans) is at least this big. */
#define SL_RECORD_BYTES_MAX (SL_RECORD_OVERHEAD + SL_EVENT_TYPE_MAX + SL_EVENT_BYTES_MAX + SL_RECORD_EXT_MAX + 2u)

_Static_assert(SL_RECORD_BYTES_MAX < (1u << 31), "record sizes fit an int return value");

/* One record. For encoding the caller fills seq..data_len (size is
 * ignored); decoding fills every field, and type/data then borrow from the
 * decoded buffer (valid while that buffer is). type is not NUL-terminated. */
typedef struct sl_record_view {
    uint64_t seq;
    uint64_t ts_ns;
    const uint8_t *type;
    const uint8_t *data;
    uint32_t type_len;
    uint32_t data_len;
    uint32_t size; /* bytes the whole record occupies */
    uint8_t flags; /* SL_RECORD_F_* (only those bits) */
    const uint8_t *ext; /* extension trailer (NULL when ext_len is 0) */
    uint32_t ext_len;   /* 0..SL_RECORD_EXT_MAX */
} sl_record_view_t;

/* The largest record whose data is at most data_max bytes, trailer
 * included: every buffer that must hold one whole record of a session
 * configured with data_max is at least this big. */
#define SL_RECORD_MAX_SIZE(data_max)                                                          \
    ((size_t)SL_RECORD_OVERHEAD + SL_EVENT_TYPE_MAX + (size_t)(data_max) + SL_RECORD_EXT_MAX + 2u)

/* Total encoded size of a record. Asserts type_len <= SL_EVENT_TYPE_MAX and
 * data_len <= SL_EVENT_BYTES_MAX (callers check limits first). Any thread. */
uint32_t sl_record_size(uint32_t type_len, uint32_t data_len);
/* The same with an extension trailer of ext_len bytes (0: none). */
uint32_t sl_record_size_ext(uint32_t type_len, uint32_t data_len, uint32_t ext_len);

/* Encodes rec (borrowed) into buf (borrowed, cap bytes). Returns the encoded
 * size (> 0) on success; SL_EINVAL when seq is 0 or type_len is outside
 * 1..SL_EVENT_TYPE_MAX; SL_ETOOBIG when data_len > SL_EVENT_BYTES_MAX;
 * SL_EFULL when cap is smaller than the record (flush the buffer and encode
 * again). buf is unchanged on failure. Any thread. */
int sl_record_encode(void *buf, size_t cap, const sl_record_view_t *rec);

/* Encodes everything but the data bytes (the first 29 + type_len bytes,
 * CRC included, computed over rec->data too) so a large payload already in
 * memory can be written with writev(header, data) instead of being copied.
 * Returns the header size or the same errors as sl_record_encode. */
int sl_record_encode_header(void *buf, size_t cap, const sl_record_view_t *rec);

/* Decodes the record at the start of buf (n bytes, borrowed). data_max is
 * the largest data length accepted (<= SL_EVENT_BYTES_MAX; asserts).
 * Returns:
 *   0            out describes the record (out->size bytes were used);
 *   SL_EAGAIN    buf holds a correct prefix of a record (or nothing): more
 *                bytes are needed; out->size is the record's total size when
 *                n >= SL_RECORD_PREFIX_BYTES, else SL_RECORD_PREFIX_BYTES;
 *   SL_ECORRUPT  the bytes cannot be a record: a length guard or CRC
 *                mismatch, a length outside the limits, seq 0, or a
 *                type_len outside 1..SL_EVENT_TYPE_MAX.
 * Other fields of out are unspecified on failure. Any thread. */
int sl_record_decode(const void *buf, size_t n, uint32_t data_max, sl_record_view_t *out);

#endif
