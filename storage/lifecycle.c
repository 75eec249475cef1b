/*
 * Lifecycle trailer codec. See lifecycle.h.
 */
#include "storage/lifecycle.h"

#include <string.h>

#include "runtime/base.h"
#include "storage/storage_int.h"

enum { TAG_CLOSE = 1, TAG_CONTROL = 2, TAG_PRODUCER = 3, TAG_STREAM_SEQ = 4 };

_Static_assert(SL_PRODUCER_ID_MAX + 16 <= 255 && SL_STREAM_SEQ_MAX <= 255, "TLV lengths fit a byte");

size_t sl_lifecycle_ext_encode(const sl_lifecycle_ext_t *x, uint8_t *buf, size_t cap)
{
    sl_assert(cap >= SL_LIFECYCLE_EXT_MAX);
    size_t o = 0;
    if (x->close) {
        buf[o++] = TAG_CLOSE;
        buf[o++] = 0;
    }
    if (x->control) {
        buf[o++] = TAG_CONTROL;
        buf[o++] = 0;
    }
    if (x->has_producer) {
        buf[o++] = TAG_PRODUCER;
        buf[o++] = (uint8_t)(16 + x->producer_id_len);
        sl_storage__put_le64(buf + o, x->producer_epoch);
        sl_storage__put_le64(buf + o + 8, x->producer_seq);
        memcpy(buf + o + 16, x->producer_id, x->producer_id_len);
        o += 16u + x->producer_id_len;
    }
    if (x->stream_seq_len) {
        buf[o++] = TAG_STREAM_SEQ;
        buf[o++] = x->stream_seq_len;
        memcpy(buf + o, x->stream_seq, x->stream_seq_len);
        o += x->stream_seq_len;
    }
    return o;
}

int sl_lifecycle_ext_decode(const uint8_t *buf, size_t n, sl_lifecycle_ext_t *out)
{
    memset(out, 0, sizeof *out);
    size_t o = 0;
    while (o < n) {
        if (n - o < 2 || n - o - 2 < buf[o + 1])
            return SL_ECORRUPT;
        uint8_t tag = buf[o], len = buf[o + 1];
        const uint8_t *v = buf + o + 2;
        switch (tag) {
        case TAG_CLOSE:
            out->close = true;
            break;
        case TAG_CONTROL:
            out->control = true;
            break;
        case TAG_PRODUCER:
            if (len < 17 || len - 16 > SL_PRODUCER_ID_MAX)
                return SL_ECORRUPT;
            out->has_producer = true;
            out->producer_epoch = sl_storage__get_le64(v);
            out->producer_seq = sl_storage__get_le64(v + 8);
            out->producer_id_len = (uint8_t)(len - 16);
            memcpy(out->producer_id, v + 16, out->producer_id_len);
            break;
        case TAG_STREAM_SEQ:
            if (len == 0 || len > SL_STREAM_SEQ_MAX)
                return SL_ECORRUPT;
            out->stream_seq_len = len;
            memcpy(out->stream_seq, v, len);
            break;
        default:
            break;
        }
        o += 2u + len;
    }
    return 0;
}
