/*
 * Segment naming, the segment header, and the per-session segment index
 * that plans appends and catch-up reads. See segment.h.
 */
#include "storage/segment.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/crc32c.h"
#include "storage/session_id.h"
#include "storage/storage_int.h"

/* Retention drops segments from the front. Instead of moving the array on
 * every drop, segs slides forward inside the allocation (base); the live
 * entries move back to base only once at least as many were dropped as are
 * live, so a drop costs O(1) amortised and the allocation holds at most
 * twice the per-session cap. */
#define ENTRIES_MAX (2u * SL_SEGMENTS_PER_SESSION_MAX)

struct sl_segment_index {
    sl_segment_t *base; /* the allocation: cap entries */
    sl_segment_t *segs; /* base + off: the oldest retained segment */
    uint32_t off;       /* dropped entries before segs */
    uint32_t count;
    uint32_t cap;
    uint32_t commit_i; /* segment of the oldest uncommitted placement */
    uint32_t data_max;
    uint64_t segment_bytes_max;
    uint64_t stride;     /* bytes between sparse entries */
    uint64_t last_seq;   /* last readable record */
    uint64_t placed_seq; /* last placed record */
    uint64_t events;
    uint64_t payload_bytes;
    uint64_t bytes;        /* readable bytes over all segments, headers included */
    uint64_t placed_bytes; /* the same with the placed, uncommitted records */
    uint64_t damage_skips; /* cursor resyncs past damaged bytes */
    uint64_t damage_skipped_bytes;
    bool failed;
};

/* Smallest possible record: 1-byte type, no data. */
#define RECORD_MIN (SL_RECORD_OVERHEAD + 1u)

/* ---- header and names ---------------------------------------------- */

void sl_segment_header_encode(void *buf, const sl_segment_header_t *h)
{
    sl_assert(h->first_seq >= 1);
    uint8_t *p = buf;
    memset(p, 0, SL_SEGMENT_HEADER_BYTES);
    memcpy(p, SL_SEGMENT_MAGIC, 8);
    sl_storage__put_le32(p + 8, SL_SEGMENT_VERSION);
    sl_storage__put_le64(p + 16, h->epoch);
    sl_storage__put_le64(p + 24, h->first_seq);
    sl_storage__put_le64(p + 32, h->created_ns);
    sl_storage__put_le32(p + 44, sl_crc32c(0, p, 44));
}

int sl_segment_header_decode(const void *buf, size_t n, sl_segment_header_t *out)
{
    const uint8_t *p = buf;
    if (n < SL_SEGMENT_HEADER_BYTES)
        return SL_EAGAIN;
    if (sl_crc32c(0, p, 44) != sl_storage__get_le32(p + 44))
        return SL_ECORRUPT;
    if (memcmp(p, SL_SEGMENT_MAGIC, 8) != 0 || sl_storage__get_le32(p + 8) != SL_SEGMENT_VERSION ||
        sl_storage__get_le32(p + 12) != 0 || sl_storage__get_le32(p + 40) != 0)
        return SL_ECORRUPT;
    out->epoch = sl_storage__get_le64(p + 16);
    out->first_seq = sl_storage__get_le64(p + 24);
    out->created_ns = sl_storage__get_le64(p + 32);
    return out->first_seq == 0 ? SL_ECORRUPT : 0;
}

int sl_segment_name(char *out, size_t cap, uint64_t first_seq)
{
    sl_assert(first_seq >= 1);
    if (cap <= SL_SEGMENT_NAME_LEN)
        return SL_EFULL;
    snprintf(out, cap, "%020llu" SL_SEGMENT_SUFFIX, (unsigned long long)first_seq);
    return (int)SL_SEGMENT_NAME_LEN;
}

bool sl_segment_name_parse(const char *name, size_t len, uint64_t *first_seq)
{
    if (len != SL_SEGMENT_NAME_LEN || memcmp(name + 20, SL_SEGMENT_SUFFIX, 4) != 0)
        return false;
    uint64_t v = 0;
    for (int i = 0; i < 20; i++) {
        if (name[i] < '0' || name[i] > '9')
            return false;
        uint64_t d = (uint64_t)(name[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false; /* 20 digits can exceed a u64 */
        v = v * 10 + d;
    }
    if (v == 0)
        return false;
    *first_seq = v;
    return true;
}

int sl_segment_path(char *out, size_t cap, const char *data_dir, const char *id, size_t id_len,
                    uint64_t first_seq)
{
    if (!sl_session_id_valid(id, id_len))
        return SL_EINVAL;
    char name[SL_SEGMENT_NAME_LEN + 1] = "";
    if (first_seq != 0)
        sl_segment_name(name, sizeof name, first_seq);
    int n = snprintf(out, cap, "%s%s%.*s%s%s", data_dir ? data_dir : "", data_dir ? "/" : "",
                     (int)id_len, id, first_seq ? "/" : "", name);
    if (n < 0 || (size_t)n >= cap)
        return SL_ETOOBIG;
    return n;
}

/* ---- index: lifetime and queries ------------------------------------- */

int sl_segment_index_create(uint64_t segment_bytes_max, uint32_t data_max, sl_segment_index_t **out)
{
    sl_assert(segment_bytes_max >= SL_SEGMENT_BYTES_MIN);
    sl_assert(segment_bytes_max <= SL_SEGMENT_BYTES_MAX);
    sl_assert(data_max <= SL_EVENT_BYTES_MAX);
    sl_segment_index_t *ix = calloc(1, sizeof *ix);
    if (!ix)
        return -ENOMEM;
    ix->segment_bytes_max = segment_bytes_max;
    ix->data_max = data_max;
    ix->stride = segment_bytes_max / SL_SEGMENT_SPARSE_MAX;
    if (ix->stride < SL_SEGMENT_SPARSE_STRIDE_MIN)
        ix->stride = SL_SEGMENT_SPARSE_STRIDE_MIN;
    *out = ix;
    return 0;
}

void sl_segment_index_destroy(sl_segment_index_t *ix)
{
    if (!ix)
        return;
    for (uint32_t i = 0; i < ix->count; i++)
        free(ix->segs[i]._sparse);
    free(ix->base);
    free(ix);
}

uint32_t sl_segment_index_count(const sl_segment_index_t *ix)
{
    return ix->count;
}

const sl_segment_t *sl_segment_index_at(const sl_segment_index_t *ix, uint32_t i)
{
    sl_assert(i < ix->count);
    return &ix->segs[i];
}

uint64_t sl_segment_index_last_seq(const sl_segment_index_t *ix)
{
    return ix->last_seq;
}
uint64_t sl_segment_index_events(const sl_segment_index_t *ix)
{
    return ix->events;
}
uint64_t sl_segment_index_payload_bytes(const sl_segment_index_t *ix)
{
    return ix->payload_bytes;
}
uint64_t sl_segment_index_sparse_stride(const sl_segment_index_t *ix)
{
    return ix->stride;
}
uint64_t sl_segment_index_bytes(const sl_segment_index_t *ix)
{
    return ix->bytes;
}
uint64_t sl_segment_index_placed_bytes(const sl_segment_index_t *ix)
{
    return ix->placed_bytes;
}

uint64_t sl_segment_index_first_seq(const sl_segment_index_t *ix)
{
    /* Commits run in seq order: an unreadable first segment means nothing
     * is readable yet. */
    return ix->count && ix->segs[0].events ? ix->segs[0].first_seq : 0;
}

/* Returns 0, SL_EFULL at the per-session cap, or -ENOMEM; makes room for
 * one more segment. */
static int reserve_segment(sl_segment_index_t *ix)
{
    if (ix->off + ix->count < ix->cap)
        return 0;
    if (ix->count >= SL_SEGMENTS_PER_SESSION_MAX)
        return SL_EFULL;
    if (ix->off > 0 && ix->off >= ix->count) {
        /* Paid for by the off drops since the last move. */
        memmove(ix->base, ix->segs, (size_t)ix->count * sizeof *ix->segs);
        ix->segs = ix->base;
        ix->off = 0;
        return 0;
    }
    /* Here off < count < SL_SEGMENTS_PER_SESSION_MAX, so ENTRIES_MAX has
     * room for one more. */
    uint32_t cap = ix->cap ? ix->cap * 2 : 4;
    if (cap > ENTRIES_MAX)
        cap = ENTRIES_MAX;
    sl_segment_t *base = realloc(ix->base, (size_t)cap * sizeof *base);
    if (!base)
        return -ENOMEM;
    ix->base = base;
    ix->segs = base + ix->off;
    ix->cap = cap;
    return 0;
}

static bool add_consistent(const sl_segment_index_t *ix, const sl_segment_t *seg)
{
    if (seg->events == 0 || seg->first_seq == 0 || seg->last_seq < seg->first_seq)
        return false;
    if (seg->last_seq - seg->first_seq < seg->events - 1)
        return false; /* more records than seqs in the range */
    if (seg->bytes < SL_SEGMENT_HEADER_BYTES + seg->events * RECORD_MIN)
        return false;
    if (seg->payload_bytes > seg->bytes)
        return false;
    return ix->count == 0 || seg->first_seq > ix->segs[ix->count - 1].last_seq;
}

/* Segments whose newest record time is unknown (added without one) take
 * ts, the time of a later record (committed, or of a segment added after
 * them): with a wall clock that does not step back that bounds their own
 * records' times from above, so age retention removes them no earlier than
 * it should. Unknown times thus only ever form a run at the tail, and each
 * segment is filled in at most once: O(1) amortised. */
static void stamp_unknown_before(sl_segment_index_t *ix, uint32_t i, uint64_t ts_ns)
{
    while (i > 0 && ix->segs[i - 1].last_ts_ns == 0) {
        i--;
        ix->segs[i].last_ts_ns = ts_ns;
    }
}

int sl_segment_index_add(sl_segment_index_t *ix, const sl_segment_t *seg)
{
    sl_assert(ix->placed_seq == ix->last_seq); /* nothing in flight */
    if (!add_consistent(ix, seg))
        return SL_ECORRUPT;
    int rc = reserve_segment(ix);
    if (rc != 0)
        return rc;
    sl_segment_t *s = &ix->segs[ix->count];
    memset(s, 0, sizeof *s);
    s->first_seq = seg->first_seq;
    s->last_seq = seg->last_seq;
    s->bytes = seg->bytes;
    s->events = seg->events;
    s->payload_bytes = seg->payload_bytes;
    s->last_ts_ns = seg->last_ts_ns;
    s->_placed = seg->bytes;
    s->_scanned = SL_SEGMENT_HEADER_BYTES;
    if (seg->last_ts_ns != 0)
        stamp_unknown_before(ix, ix->count, seg->last_ts_ns);
    ix->commit_i = ix->count++;
    ix->last_seq = ix->placed_seq = seg->last_seq;
    ix->events += seg->events;
    ix->payload_bytes += seg->payload_bytes;
    ix->bytes += seg->bytes;
    ix->placed_bytes += seg->bytes;
    return 0;
}

/* ---- appends ------------------------------------------------------- */

static uint64_t committed_end(const sl_segment_t *s)
{
    return s->bytes ? s->bytes : SL_SEGMENT_HEADER_BYTES;
}

static uint32_t record_max(const sl_segment_index_t *ix)
{
    return (uint32_t)SL_RECORD_MAX_SIZE(ix->data_max);
}

int sl_segment_index_place(sl_segment_index_t *ix, uint64_t seq, uint32_t size,
                           sl_segment_place_t *out)
{
    sl_assert(seq > ix->placed_seq);
    sl_assert(size >= RECORD_MIN);
    sl_assert(size <= record_max(ix));
    if (ix->failed)
        return SL_ECLOSED;
    sl_segment_t *s = ix->count ? &ix->segs[ix->count - 1] : NULL;
    bool roll =
        !s || (s->_placed > SL_SEGMENT_HEADER_BYTES && s->_placed + size > ix->segment_bytes_max);
    if (roll) {
        int rc = reserve_segment(ix);
        if (rc != 0)
            return rc;
        s = &ix->segs[ix->count++];
        memset(s, 0, sizeof *s);
        s->first_seq = seq;
        s->_placed = s->_scanned = SL_SEGMENT_HEADER_BYTES;
        ix->placed_bytes += SL_SEGMENT_HEADER_BYTES;
    }
    out->segment = s->first_seq;
    out->offset = s->_placed;
    out->index = ix->count - 1;
    out->created = roll;
    s->_placed += size;
    ix->placed_bytes += size;
    ix->placed_seq = seq;
    return 0;
}

uint64_t sl_segment_index_commit(sl_segment_index_t *ix, uint64_t seq, uint32_t size,
                                 uint32_t data_len)
{
    return sl_segment_index_commit_ts(ix, seq, size, data_len, 0);
}

uint64_t sl_segment_index_commit_ts(sl_segment_index_t *ix, uint64_t seq, uint32_t size,
                                    uint32_t data_len, uint64_t ts_ns)
{
    sl_assert(seq > ix->last_seq);
    sl_assert(seq <= ix->placed_seq);
    sl_assert(size >= RECORD_MIN + data_len);
    uint32_t i = ix->commit_i;
    while (committed_end(&ix->segs[i]) == ix->segs[i]._placed) {
        i++;
        sl_assert(i < ix->count);
    }
    sl_segment_t *s = &ix->segs[i];
    uint64_t off = committed_end(s);
    sl_assert(off + size <= s->_placed);
    sl_assert(s->events > 0 || seq == s->first_seq);
    ix->bytes += off + size - s->bytes; /* s->bytes is 0 before the first record */
    s->bytes = off + size;
    s->last_seq = seq;
    s->events++;
    s->payload_bytes += data_len;
    if (ts_ns > s->last_ts_ns)
        s->last_ts_ns = ts_ns;
    if (ts_ns != 0)
        stamp_unknown_before(ix, i, ts_ns);
    ix->commit_i = i;
    ix->last_seq = seq;
    ix->events++;
    ix->payload_bytes += data_len;
    sl_segment_index_note(ix, i, seq, off, size);
    return off;
}

void sl_segment_index_fail(sl_segment_index_t *ix)
{
    for (uint32_t i = ix->commit_i; i < ix->count; i++) {
        ix->placed_bytes -= ix->segs[i]._placed - committed_end(&ix->segs[i]);
        ix->segs[i]._placed = committed_end(&ix->segs[i]);
    }
    while (ix->count > 0 && ix->segs[ix->count - 1].events == 0) {
        ix->placed_bytes -= ix->segs[ix->count - 1]._placed; /* its header */
        free(ix->segs[ix->count - 1]._sparse);
        ix->count--;
    }
    if (ix->commit_i >= ix->count)
        ix->commit_i = ix->count ? ix->count - 1 : 0;
    ix->placed_seq = ix->last_seq;
    ix->failed = true;
}

/* ---- retention ------------------------------------------------------- */

bool sl_segment_index_can_drop_first(const sl_segment_index_t *ix)
{
    if (ix->count < 2)
        return false; /* the last segment takes the appends: never dropped */
    const sl_segment_t *s = &ix->segs[0];
    return s->events > 0 && committed_end(s) == s->_placed;
}

int sl_segment_index_drop_first(sl_segment_index_t *ix, sl_segment_t *out)
{
    if (!sl_segment_index_can_drop_first(ix))
        return SL_EAGAIN;
    sl_segment_t *s = &ix->segs[0];
    *out = *s;
    free(s->_sparse);
    out->_sparse = NULL;
    out->_sparse_count = out->_sparse_cap = 0;
    ix->events -= s->events;
    ix->payload_bytes -= s->payload_bytes;
    ix->bytes -= s->bytes;
    ix->placed_bytes -= s->bytes; /* all of it is committed */
    ix->segs++;
    ix->off++;
    ix->count--;
    if (ix->commit_i > 0)
        ix->commit_i--; /* 0 pointed at the dropped one, all committed: the
                           next commit would have moved on anyway */
    return 0;
}

bool sl_segment_index_dropped(const sl_segment_index_t *ix, uint64_t segment)
{
    return ix->count == 0 || segment < ix->segs[0].first_seq;
}

/* ---- sparse index ---------------------------------------------------- */

static bool sparse_grow(sl_segment_t *s)
{
    if (s->_sparse_count < s->_sparse_cap)
        return true;
    uint32_t cap = s->_sparse_cap ? s->_sparse_cap * 2 : 8;
    if (cap > SL_SEGMENT_SPARSE_MAX)
        cap = SL_SEGMENT_SPARSE_MAX;
    sl_segment_sparse_t *e = realloc(s->_sparse, (size_t)cap * sizeof *e);
    if (!e)
        return false;
    s->_sparse = e;
    s->_sparse_cap = cap;
    return true;
}

void sl_segment_index_note(sl_segment_index_t *ix, uint32_t i, uint64_t seq, uint64_t offset,
                           uint32_t size)
{
    sl_assert(i < ix->count);
    sl_segment_t *s = &ix->segs[i];
    if (offset != s->_scanned)
        return; /* not contiguous with what is covered: a hole would lie */
    s->_scanned = offset + size;
    uint64_t last =
        s->_sparse_count ? s->_sparse[s->_sparse_count - 1].offset : SL_SEGMENT_HEADER_BYTES;
    if (offset - last < ix->stride || s->_sparse_count >= SL_SEGMENT_SPARSE_MAX)
        return;
    if (!sparse_grow(s))
        return;
    s->_sparse[s->_sparse_count++] = (sl_segment_sparse_t){.seq = seq, .offset = offset};
}

/* Offset of the last sparse entry at or before seq, else the first record. */
static uint64_t sparse_offset(const sl_segment_t *s, uint64_t seq)
{
    uint32_t lo = 0, hi = s->_sparse_count;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (s->_sparse[mid].seq <= seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo ? s->_sparse[lo - 1].offset : SL_SEGMENT_HEADER_BYTES;
}

/* ---- catch-up cursor ------------------------------------------------- */

/* Position of the last segment whose first_seq <= seq (0 if none). */
static uint32_t segment_for(const sl_segment_index_t *ix, uint64_t seq)
{
    uint32_t lo = 0, hi = ix->count;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (ix->segs[mid].first_seq <= seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo ? lo - 1 : 0;
}

static uint32_t segment_exact(const sl_segment_index_t *ix, uint64_t first_seq)
{
    uint32_t i = segment_for(ix, first_seq);
    sl_assert(i < ix->count);
    sl_assert(ix->segs[i].first_seq == first_seq);
    return i;
}

void sl_segment_cursor_init(sl_segment_cursor_t *c, uint64_t from_seq)
{
    c->next_seq = from_seq ? from_seq : 1;
    c->_segment = 0;
    c->_offset = 0;
}

/* Places an unplaced cursor at the first readable record >= next_seq.
 * Returns the segment position or -1 when there is none yet. */
static int64_t cursor_place(sl_segment_cursor_t *c, const sl_segment_index_t *ix)
{
    if (ix->count == 0 || c->next_seq > ix->last_seq)
        return -1;
    uint32_t i = segment_for(ix, c->next_seq);
    /* Seqs between segments may be unlogged: move on to the segment that
     * holds the next logged one. */
    while (i < ix->count && (ix->segs[i].events == 0 || ix->segs[i].last_seq < c->next_seq))
        i++;
    if (i == ix->count)
        return -1;
    c->_segment = ix->segs[i].first_seq;
    c->_offset = sparse_offset(&ix->segs[i], c->next_seq);
    return i;
}

uint64_t sl_segment_index_damage_skips(const sl_segment_index_t *ix)
{
    return ix->damage_skips;
}

int sl_segment_cursor_plan(sl_segment_cursor_t *c, const sl_segment_index_t *ix, uint32_t buf_cap,
                           sl_segment_read_t *out)
{
    sl_assert(buf_cap >= record_max(ix));
    if (c->_segment != 0 && sl_segment_index_dropped(ix, c->_segment))
        c->_segment = 0; /* start again at the oldest retained record >= next_seq */
    int64_t i;
    if (c->_segment == 0) {
        i = cursor_place(c, ix);
        if (i < 0)
            return SL_EAGAIN;
    } else {
        i = segment_exact(ix, c->_segment);
        if (c->_offset >= ix->segs[i].bytes) {
            if (i + 1 >= ix->count || ix->segs[i + 1].events == 0)
                return SL_EAGAIN;
            i++;
            c->_segment = ix->segs[i].first_seq;
            c->_offset = SL_SEGMENT_HEADER_BYTES;
        }
    }
    uint64_t avail = ix->segs[i].bytes - c->_offset;
    out->segment = c->_segment;
    out->offset = c->_offset;
    out->len = avail < buf_cap ? (uint32_t)avail : buf_cap;
    return 0;
}

/* Whether rec at file offset off can be the next record of segment s
 * after seq floor. */
static bool in_segment(const sl_segment_t *s, const sl_record_view_t *rec, uint64_t off,
                       uint64_t floor)
{
    return off + rec->size <= s->bytes && rec->seq > floor && rec->seq >= s->first_seq &&
           rec->seq <= s->last_seq;
}

/* Damaged bytes at pos of buf (n bytes read at file offset base): the
 * position of the next record that continues the order, n when none is
 * in buf (*cut: a candidate runs past the buffer, read again from the
 * returned position). */
static size_t cursor_resync(const sl_segment_index_t *ix, const sl_segment_t *s, uint64_t base,
                            const uint8_t *p, size_t n, size_t pos, uint64_t floor, bool *cut)
{
    *cut = false;
    for (size_t q = pos + 1; q < n && base + q < s->bytes; q++) {
        sl_record_view_t rec;
        int rc = sl_record_decode(p + q, n - q, ix->data_max, &rec);
        if (rc == SL_EAGAIN && base + n < s->bytes) {
            *cut = true;
            return q;
        }
        if (rc == 0 && in_segment(s, &rec, base + q, floor))
            return q;
    }
    return n;
}

int sl_segment_cursor_consume(sl_segment_cursor_t *c, sl_segment_index_t *ix,
                              const sl_segment_read_t *rd, const void *buf, size_t n,
                              sl_segment_record_cb cb, void *ctx)
{
    sl_assert(rd->segment == c->_segment);
    sl_assert(rd->offset == c->_offset);
    sl_assert(n <= rd->len);
    if (sl_segment_index_dropped(ix, rd->segment)) {
        c->_segment = 0; /* the bounds to check buf against are gone */
        return 0;
    }
    uint32_t i = segment_exact(ix, rd->segment);
    const sl_segment_t *s = &ix->segs[i];
    const uint8_t *p = buf;
    uint64_t prev = 0; /* last seq seen in buf */
    int delivered = 0;
    for (size_t pos = 0; pos < n;) {
        uint64_t off = rd->offset + pos;
        if (off >= s->bytes)
            break;
        sl_record_view_t rec;
        int rc = sl_record_decode(p + pos, n - pos, ix->data_max, &rec);
        if (rc == SL_EAGAIN && off + (n - pos) < s->bytes)
            break; /* cut off by the buffer end: read it again next time */
        if (rc != 0 || !in_segment(s, &rec, off, prev)) {
            /* Damaged bytes inside the readable range: skip to the next
             * record that continues the order. The seqs jumped over become
             * a gap for the owner, never an error to retry. */
            bool cut;
            uint64_t floor = prev > c->next_seq - 1 ? prev : c->next_seq - 1;
            size_t q = cursor_resync(ix, s, rd->offset, p, n, pos, floor, &cut);
            ix->damage_skips++;
            ix->damage_skipped_bytes += q - pos;
            pos = q;
            c->_offset = rd->offset + q;
            if (cut || q < n)
                continue;
            if (rd->offset + n >= s->bytes && c->next_seq <= s->last_seq)
                c->next_seq = s->last_seq + 1; /* the rest of the segment is lost */
            break;
        }
        prev = rec.seq;
        sl_segment_index_note(ix, i, rec.seq, off, rec.size);
        pos += rec.size;
        c->_offset = off + rec.size;
        if (rec.seq < c->next_seq)
            continue;
        c->next_seq = rec.seq + 1;
        delivered++;
        if (cb(&rec, ctx) != 0)
            break;
    }
    return delivered;
}
