/*
 * What a record's extension trailer (record.h) says about the session's
 * lifecycle: the idempotent producer whose publish the record ends, the
 * Durable Streams Stream-Seq of that publish, and closure.
 *
 * Encoding: back-to-back TLVs, each tag (u8), length (u8), value:
 *   1 CLOSE       len 0: the session is closed for good after this record
 *   2 CONTROL     len 0: the record is not an event (the close marker of a
 *                 close without a final event); readers skip it
 *   3 PRODUCER    len 16 + n: epoch (u64 LE), seq (u64 LE), id (n bytes)
 *   4 STREAM_SEQ  len n: the Stream-Seq value
 * Unknown tags are skipped (a later version may add some); a TLV that runs
 * past the end is damage. Pure; any thread.
 */
#ifndef SL_STORAGE_LIFECYCLE_H
#define SL_STORAGE_LIFECYCLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/limits.h"

/* Record type of the close marker (never a valid client type: '#'). */
#define SL_LIFECYCLE_MARKER_TYPE "#closed"

typedef struct sl_lifecycle_ext {
    bool close;
    bool control;
    bool has_producer;
    uint8_t producer_id_len;
    char producer_id[SL_PRODUCER_ID_MAX];
    uint64_t producer_epoch, producer_seq;
    uint8_t stream_seq_len;
    char stream_seq[SL_STREAM_SEQ_MAX];
} sl_lifecycle_ext_t;

/* The largest encoding. */
#define SL_LIFECYCLE_EXT_MAX (2 + 2 + 2 + 16 + SL_PRODUCER_ID_MAX + 2 + SL_STREAM_SEQ_MAX)

/* Encodes x into buf (cap >= SL_LIFECYCLE_EXT_MAX). Returns the length
 * (0 when x says nothing). */
size_t sl_lifecycle_ext_encode(const sl_lifecycle_ext_t *x, uint8_t *buf, size_t cap);
/* Decodes n bytes. Returns 0 or SL_ECORRUPT. */
int sl_lifecycle_ext_decode(const uint8_t *buf, size_t n, sl_lifecycle_ext_t *out);

#endif
