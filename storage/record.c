/*
 * Record codec. See record.h for the layout and the contract.
 */
#include "storage/record.h"

#include <string.h>

#include "storage/crc32c.h"
#include "storage/storage_int.h"

/* Offsets of the fixed fields. */
enum {
    OFF_LEN = 0,
    OFF_LEN_CRC = 4,
    OFF_CRC = 8,
    OFF_SEQ = 12,
    OFF_TS = 20,
    OFF_TYPE_LEN = 28,
    OFF_TYPE = 29,
};

/* len counts everything after the len field itself. */
#define LEN_BASE (SL_RECORD_OVERHEAD - 4u)

_Static_assert(OFF_TYPE == SL_RECORD_OVERHEAD, "layout and overhead agree");

uint32_t sl_record_size(uint32_t type_len, uint32_t data_len)
{
    sl_assert(type_len <= SL_EVENT_TYPE_MAX);
    sl_assert(data_len <= SL_EVENT_BYTES_MAX);
    return SL_RECORD_OVERHEAD + type_len + data_len;
}

uint32_t sl_record_size_ext(uint32_t type_len, uint32_t data_len, uint32_t ext_len)
{
    sl_assert(ext_len <= SL_RECORD_EXT_MAX);
    return sl_record_size(type_len, data_len) + (ext_len ? ext_len + 2u : 0u);
}

static int check_fields(const sl_record_view_t *rec)
{
    if (rec->seq == 0 || rec->type_len == 0 || rec->type_len > SL_EVENT_TYPE_MAX ||
        (rec->flags & ~SL_RECORD_F_STR) != 0 || (rec->ts_ns & SL_RECORD_TS_EXT) != 0 ||
        rec->ext_len > SL_RECORD_EXT_MAX)
        return SL_EINVAL;
    if (rec->data_len > SL_EVENT_BYTES_MAX)
        return SL_ETOOBIG;
    return 0;
}

/* Writes the header (fields through type) and returns its size. The CRC
 * covers seq..type here plus the data bytes that follow on disk. */
static uint32_t put_header(uint8_t *p, const sl_record_view_t *rec)
{
    uint32_t len = LEN_BASE + rec->type_len + rec->data_len;
    sl_storage__put_le32(p + OFF_LEN, len);
    sl_storage__put_le32(p + OFF_LEN_CRC, sl_crc32c(0, p + OFF_LEN, 4));
    sl_storage__put_le64(p + OFF_SEQ, rec->seq);
    sl_storage__put_le64(p + OFF_TS, rec->ts_ns | (rec->ext_len ? SL_RECORD_TS_EXT : 0));
    p[OFF_TYPE_LEN] = (uint8_t)(rec->type_len | rec->flags);
    memcpy(p + OFF_TYPE, rec->type, rec->type_len);
    uint32_t hdr = OFF_TYPE + rec->type_len;
    uint32_t crc = sl_crc32c(0, p + OFF_SEQ, hdr - OFF_SEQ);
    if (rec->data_len > 0)
        crc = sl_crc32c(crc, rec->data, rec->data_len);
    sl_storage__put_le32(p + OFF_CRC, crc);
    return hdr;
}

int sl_record_encode_header(void *buf, size_t cap, const sl_record_view_t *rec)
{
    int rc = check_fields(rec);
    if (rc != 0)
        return rc;
    if (rec->ext_len) /* the trailer follows the data: encode the whole record */
        return SL_EINVAL;
    if (cap < SL_RECORD_OVERHEAD + rec->type_len)
        return SL_EFULL;
    return (int)put_header(buf, rec);
}

int sl_record_encode(void *buf, size_t cap, const sl_record_view_t *rec)
{
    int rc = check_fields(rec);
    if (rc != 0)
        return rc;
    uint32_t size = sl_record_size_ext(rec->type_len, rec->data_len, rec->ext_len);
    if (cap < size)
        return SL_EFULL;
    uint8_t *p = buf;
    if (rec->ext_len == 0) {
        uint32_t hdr = put_header(p, rec);
        if (rec->data_len > 0)
            memcpy(p + hdr, rec->data, rec->data_len);
        return (int)size;
    }
    /* Lay data, trailer and count out first, then let put_header compute
     * the CRC over all of them as "data". */
    uint32_t hdr = OFF_TYPE + rec->type_len;
    if (rec->data_len > 0)
        memmove(p + hdr, rec->data, rec->data_len);
    memcpy(p + hdr + rec->data_len, rec->ext, rec->ext_len);
    sl_storage__put_le16(p + hdr + rec->data_len + rec->ext_len, (uint16_t)rec->ext_len);
    sl_record_view_t whole = *rec;
    whole.data = p + hdr;
    whole.data_len = rec->data_len + rec->ext_len + 2;
    put_header(p, &whole);
    return (int)size;
}

static bool len_in_range(uint32_t len, uint32_t data_max)
{
    return len >= LEN_BASE + 1 && len <= LEN_BASE + SL_EVENT_TYPE_MAX + data_max + SL_RECORD_EXT_MAX + 2;
}

int sl_record_decode(const void *buf, size_t n, uint32_t data_max, sl_record_view_t *out)
{
    sl_assert(data_max <= SL_EVENT_BYTES_MAX);
    const uint8_t *p = buf;
    out->size = SL_RECORD_PREFIX_BYTES;
    /* A length outside the limits is damage even before its guard arrived. */
    if (n >= 4 && !len_in_range(sl_storage__get_le32(p + OFF_LEN), data_max))
        return SL_ECORRUPT;
    if (n < SL_RECORD_PREFIX_BYTES)
        return SL_EAGAIN;
    uint32_t len = sl_storage__get_le32(p + OFF_LEN);
    if (sl_crc32c(0, p + OFF_LEN, 4) != sl_storage__get_le32(p + OFF_LEN_CRC))
        return SL_ECORRUPT;
    out->size = 4 + len;
    if (n < out->size)
        return SL_EAGAIN;
    if (sl_crc32c(0, p + OFF_SEQ, out->size - OFF_SEQ) != sl_storage__get_le32(p + OFF_CRC))
        return SL_ECORRUPT;
    /* The CRC matched, so what follows can only fail for bytes written by
     * something other than this encoder; still never trust them. */
    out->seq = sl_storage__get_le64(p + OFF_SEQ);
    out->ts_ns = sl_storage__get_le64(p + OFF_TS);
    out->type_len = p[OFF_TYPE_LEN] & SL_RECORD_TYPE_LEN_MASK;
    out->flags = (uint8_t)(p[OFF_TYPE_LEN] & SL_RECORD_F_STR);
    if (out->seq == 0 || out->type_len == 0 || out->type_len > SL_EVENT_TYPE_MAX)
        return SL_ECORRUPT;
    if (LEN_BASE + out->type_len > len)
        return SL_ECORRUPT;
    out->data_len = len - LEN_BASE - out->type_len;
    out->type = p + OFF_TYPE;
    out->data = p + OFF_TYPE + out->type_len;
    out->ext = NULL;
    out->ext_len = 0;
    if (out->ts_ns & SL_RECORD_TS_EXT) {
        out->ts_ns &= ~SL_RECORD_TS_EXT;
        if (out->data_len < 2)
            return SL_ECORRUPT;
        uint32_t e = sl_storage__get_le16(out->data + out->data_len - 2);
        if (e == 0 || e > SL_RECORD_EXT_MAX || e + 2 > out->data_len)
            return SL_ECORRUPT;
        out->data_len -= e + 2;
        out->ext = out->data + out->data_len;
        out->ext_len = e;
    }
    if (out->data_len > data_max)
        return SL_ECORRUPT;
    return 0;
}
