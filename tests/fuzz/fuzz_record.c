/*
 * The storage read side: the record decoder (storage/record) and the
 * recovery scan of a segment file (storage/recovery, sl_recovery_scan_*),
 * both pure functions over buffers.
 *
 * Byte 0 picks the data cap, whether a valid segment header is put in
 * front of the input, and whether the harness repairs the CRCs of the
 * records it walks (so length, seq-order and size logic are reached, not
 * only the CRC checks). The rest is the segment's bytes.
 *
 * Records with an extension trailer are decoded and their lifecycle TLVs
 * (storage/lifecycle.h) parsed too.
 * Checks besides the sanitizers: a decoded record re-encodes to the same
 * bytes; a chunked scan (feeds of the documented minimum size) agrees with
 * the one-buffer scan; the scan's valid prefix is exactly the records the
 * decoder accepts in order; the hardware and software CRC32C agree.
 */
#include <string.h>

#include "storage/crc32c.h"
#include "storage/lifecycle.h"
#include "storage/record.h"
#include "storage/recovery.h"
#include "storage/segment.h"

#include "tests/fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SEGMENT_FIRST 5u

static uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* Rewrites len_crc and crc of every record-shaped span from off on. */
static void repair_crcs(uint8_t *p, size_t n, size_t off)
{
    while (off + SL_RECORD_OVERHEAD <= n) {
        uint32_t len = get_le32(p + off);
        if (len < SL_RECORD_OVERHEAD - 4 || len > n - off - 4)
            return;
        put_le32(p + off + 4, sl_crc32c(0, p + off, 4));
        put_le32(p + off + 8, sl_crc32c(0, p + off + 12, len - 8));
        off += 4 + len;
    }
}

static void check_record(const uint8_t *p, size_t n, uint32_t data_max)
{
    sl_record_view_t rec;
    int rc = sl_record_decode(p, n, data_max, &rec);
    if (rc == SL_EAGAIN) {
        FZ_CHECK(rec.size > n || n < SL_RECORD_PREFIX_BYTES);
        return;
    }
    if (rc != 0) {
        FZ_CHECK(rc == SL_ECORRUPT);
        return;
    }
    FZ_CHECK(rec.size <= n);
    FZ_CHECK(rec.seq >= 1);
    FZ_CHECK(rec.type_len >= 1 && rec.type_len <= SL_EVENT_TYPE_MAX);
    FZ_CHECK(rec.data_len <= data_max);
    FZ_CHECK(rec.size == sl_record_size_ext(rec.type_len, rec.data_len, rec.ext_len));
    FZ_CHECK(rec.ext_len == 0 || (rec.ext >= p && rec.ext + rec.ext_len <= p + n));
    if (rec.ext_len) { /* the lifecycle trailer's TLVs, as recovery reads them */
        sl_lifecycle_ext_t x;
        int lc = sl_lifecycle_ext_decode(rec.ext, rec.ext_len, &x);
        FZ_CHECK(lc == 0 || lc == SL_ECORRUPT);
        FZ_CHECK(lc != 0 || (x.producer_id_len <= SL_PRODUCER_ID_MAX &&
                             x.stream_seq_len <= SL_STREAM_SEQ_MAX));
    }
    FZ_CHECK(rec.type >= p && rec.type + rec.type_len <= p + n);
    FZ_CHECK(rec.data_len == 0 || (rec.data >= p && rec.data + rec.data_len <= p + n));
    uint8_t *again = malloc(rec.size);
    FZ_CHECK(again != NULL);
    FZ_CHECK(sl_record_encode(again, rec.size, &rec) == (int)rec.size);
    FZ_CHECK(memcmp(again, p, rec.size) == 0);
    free(again);
}

/* The scan fed in chunks, each of at least the size that guarantees
 * progress (or the rest of the file). */
static void scan_chunked(sl_recovery_scan_t *s, const uint8_t *p, size_t n, uint32_t data_max,
                         fz_rng_t *rng)
{
    sl_recovery_scan_init(s, SEGMENT_FIRST, n, data_max);
    size_t min = SL_RECORD_MAX_SIZE(data_max);
    for (int guard = 0; guard < 100000; guard++) {
        size_t off = s->valid_bytes, want = min + fz_next(rng) % 64;
        FZ_CHECK(off <= n);
        int rc = sl_recovery_scan_feed(s, p + off, want < n - off ? want : n - off);
        if (rc == 0)
            return;
        FZ_CHECK(rc == SL_EAGAIN);
    }
    FZ_CHECK(!"chunked scan made no progress");
}

static void check_scan(const uint8_t *p, size_t n, uint32_t data_max, fz_rng_t *rng)
{
    sl_recovery_scan_t whole, parts;
    sl_recovery_scan_buffer(&whole, SEGMENT_FIRST, p, n, data_max);
    FZ_CHECK(whole.done);
    FZ_CHECK(whole.valid_bytes <= n);
    FZ_CHECK(sl_recovery_needs_truncate(&whole) == (whole.valid_bytes < n));
    scan_chunked(&parts, p, n, data_max, rng);
    FZ_CHECK(parts.done && parts.end == whole.end);
    FZ_CHECK(parts.valid_bytes == whole.valid_bytes);
    FZ_CHECK(parts.events == whole.events && parts.last_seq == whole.last_seq);
    FZ_CHECK(parts.first_seq == whole.first_seq);
    FZ_CHECK(parts.payload_bytes == whole.payload_bytes);
    if (!whole.header_ok) {
        FZ_CHECK(whole.events == 0 && whole.valid_bytes == 0);
        return;
    }
    /* Walk the valid prefix with the decoder alone. */
    size_t off = SL_SEGMENT_HEADER_BYTES;
    uint64_t events = 0, last = 0;
    while (off < whole.valid_bytes) {
        sl_record_view_t rec;
        FZ_CHECK(sl_record_decode(p + off, n - off, data_max, &rec) == 0);
        FZ_CHECK(events == 0 ? rec.seq == SEGMENT_FIRST : rec.seq > last);
        last = rec.seq;
        events++;
        off += rec.size;
    }
    FZ_CHECK(off == whole.valid_bytes);
    FZ_CHECK(events == whole.events && last == whole.last_seq);
    if (whole.end == SL_RECOVERY_END_CLEAN)
        FZ_CHECK(whole.valid_bytes == n);
    else
        FZ_CHECK(whole.valid_bytes < n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t ctl = data[0];
    data++, size--;
    static const uint32_t caps[] = {0, 16, 300, 4096};
    uint32_t data_max = caps[ctl & 3];
    bool header = ctl & 4, repair = ctl & 8;
    size_t hdr = header ? SL_SEGMENT_HEADER_BYTES : 0;
    uint8_t *buf = malloc(hdr + size + 1);
    FZ_CHECK(buf != NULL);
    if (header) {
        sl_segment_header_t h = {.epoch = 3, .first_seq = SEGMENT_FIRST, .created_ns = 1};
        sl_segment_header_encode(buf, &h);
    }
    if (size > 0)
        memcpy(buf + hdr, data, size);
    size_t n = hdr + size;
    if (repair)
        repair_crcs(buf, n, SL_SEGMENT_HEADER_BYTES);
    if (sl_crc32c_hw_available())
        FZ_CHECK(sl_crc32c_hw(7, buf, n) == sl_crc32c_sw(7, buf, n));
    check_record(buf + hdr, size, data_max);
    check_scan(buf, n, data_max, &(fz_rng_t){ctl});
    free(buf);
    return 0;
}
