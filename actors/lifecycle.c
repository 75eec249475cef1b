/*
 * Producer and Stream-Seq state of a session. See lifecycle.h.
 */
#include "actors/lifecycle.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/base.h"
#include "storage/storage_int.h"

typedef struct producer {
    uint64_t epoch, seq;  /* last accepted */
    uint64_t first, last; /* session seqs of that publish (its answer); 0: unknown */
    uint64_t used;        /* LRU stamp */
    uint8_t id_len;
    char id[SL_PRODUCER_ID_MAX];
} producer_t;

struct sl_lifecycle {
    producer_t *p;
    uint32_t n, cap;
    uint64_t clock;
    uint8_t sseq_len;
    char sseq[SL_STREAM_SEQ_MAX];
};

sl_lifecycle_t *sl_lifecycle_new(void)
{
    return calloc(1, sizeof(sl_lifecycle_t));
}

void sl_lifecycle_free(sl_lifecycle_t *l)
{
    if (!l)
        return;
    free(l->p);
    free(l);
}

bool sl_lifecycle_used(const sl_lifecycle_t *l)
{
    return l && (l->n > 0 || l->sseq_len > 0);
}

static producer_t *find(sl_lifecycle_t *l, const char *id, size_t len)
{
    for (uint32_t i = 0; i < l->n; i++)
        if (l->p[i].id_len == len && memcmp(l->p[i].id, id, len) == 0)
            return &l->p[i];
    return NULL;
}

/* A slot for a new producer: grows the table, or at SL_PRODUCERS_MAX
 * reuses the least recently used one. NULL out of memory. */
static producer_t *add(sl_lifecycle_t *l, const char *id, size_t len)
{
    producer_t *slot;
    if (l->n < l->cap) {
        slot = &l->p[l->n++];
    } else if (l->n < SL_PRODUCERS_MAX) {
        uint32_t cap = l->cap ? l->cap * 2 : 4;
        if (cap > SL_PRODUCERS_MAX)
            cap = SL_PRODUCERS_MAX;
        producer_t *np = realloc(l->p, cap * sizeof *np);
        if (!np)
            return NULL;
        l->p = np;
        l->cap = cap;
        slot = &l->p[l->n++];
    } else {
        slot = &l->p[0];
        for (uint32_t i = 1; i < l->n; i++)
            if (l->p[i].used < slot->used)
                slot = &l->p[i];
    }
    memset(slot, 0, sizeof *slot);
    slot->id_len = (uint8_t)len;
    memcpy(slot->id, id, len);
    return slot;
}

/* Byte-wise order of Stream-Seq values (the protocol compares them as
 * strings). */
static int sseq_cmp(const char *a, size_t an, const char *b, size_t bn)
{
    int c = memcmp(a, b, an < bn ? an : bn);
    return c ? c : (an > bn) - (an < bn);
}

int sl_lifecycle_check(sl_lifecycle_t *l, sl_pub_t *p)
{
    if (p->has_producer) {
        producer_t *pr = find(l, p->producer_id, p->producer_id_len);
        if (pr) {
            pr->used = ++l->clock;
            if (p->producer_epoch < pr->epoch) {
                p->producer_epoch = pr->epoch;
                return SL_EFENCED;
            }
            if (p->producer_epoch > pr->epoch) {
                if (p->producer_seq != 0)
                    return SL_EINVAL;
            } else if (p->producer_seq <= pr->seq) {
                p->duplicate = true;
                if (p->producer_seq == pr->seq && pr->last) {
                    p->dup_known = true;
                    p->first_seq = pr->first;
                    p->last_seq = pr->last;
                }
                p->producer_seq = pr->seq; /* the highest accepted (Durable Streams answers it) */
                return 1;
            } else if (p->producer_seq != pr->seq + 1) {
                p->producer_seq = pr->seq + 1;
                return SL_EGAP;
            }
        } else if (p->producer_seq != 0) {
            /* An unknown producer starts at seq 0. */
            p->producer_seq = 0;
            return SL_EGAP;
        }
    }
    if (p->stream_seq_len &&
        sseq_cmp(p->stream_seq, p->stream_seq_len, l->sseq, l->sseq_len) <= 0 && l->sseq_len)
        return SL_ECONFLICT;
    return 0;
}

static void apply_producer(sl_lifecycle_t *l, const char *id, size_t len, uint64_t epoch,
                           uint64_t seq, uint64_t first, uint64_t last, bool *ok)
{
    producer_t *pr = find(l, id, len);
    if (!pr && !(pr = add(l, id, len))) {
        *ok = false;
        return;
    }
    pr->epoch = epoch;
    pr->seq = seq;
    pr->first = first;
    pr->last = last;
    pr->used = ++l->clock;
}

bool sl_lifecycle_commit(sl_lifecycle_t *l, const sl_pub_t *p, uint64_t first, uint64_t last)
{
    bool ok = true;
    if (p->has_producer)
        apply_producer(l, p->producer_id, p->producer_id_len, p->producer_epoch, p->producer_seq,
                       first, last, &ok);
    if (p->stream_seq_len) {
        memcpy(l->sseq, p->stream_seq, p->stream_seq_len);
        l->sseq_len = p->stream_seq_len;
    }
    return ok;
}

void sl_lifecycle_apply(sl_lifecycle_t *l, const sl_lifecycle_ext_t *x, uint64_t seq)
{
    bool ok = true;
    if (x->has_producer)
        apply_producer(l, x->producer_id, x->producer_id_len, x->producer_epoch, x->producer_seq,
                       0, seq, &ok);
    if (x->stream_seq_len) {
        memcpy(l->sseq, x->stream_seq, x->stream_seq_len);
        l->sseq_len = x->stream_seq_len;
    }
}

/* Snapshot layout (LE): u32 count, u8 sseq_len, sseq, then per producer:
 * u8 id_len, id, epoch, seq, first, last (u64 each). */
uint8_t *sl_lifecycle_snapshot(const sl_lifecycle_t *l, size_t *len)
{
    *len = 0;
    if (!sl_lifecycle_used(l))
        return NULL;
    size_t n = 5 + l->sseq_len;
    for (uint32_t i = 0; i < l->n; i++)
        n += 1 + l->p[i].id_len + 32;
    uint8_t *b = malloc(n);
    if (!b)
        return NULL;
    size_t o = 0;
    sl_storage__put_le32(b, l->n);
    b[4] = l->sseq_len;
    memcpy(b + 5, l->sseq, l->sseq_len);
    o = 5 + l->sseq_len;
    for (uint32_t i = 0; i < l->n; i++) {
        const producer_t *pr = &l->p[i];
        b[o++] = pr->id_len;
        memcpy(b + o, pr->id, pr->id_len);
        o += pr->id_len;
        sl_storage__put_le64(b + o, pr->epoch);
        sl_storage__put_le64(b + o + 8, pr->seq);
        sl_storage__put_le64(b + o + 16, pr->first);
        sl_storage__put_le64(b + o + 24, pr->last);
        o += 32;
    }
    *len = o;
    return b;
}

int sl_lifecycle_load(sl_lifecycle_t *l, const uint8_t *b, size_t len)
{
    if (len < 5)
        return SL_ECORRUPT;
    uint32_t count = sl_storage__get_le32(b);
    uint8_t sl = b[4];
    if (count > SL_PRODUCERS_MAX || sl > SL_STREAM_SEQ_MAX || len < 5u + sl)
        return SL_ECORRUPT;
    size_t o = 5u + sl;
    producer_t *ps = count ? calloc(count, sizeof *ps) : NULL;
    if (count && !ps)
        return -ENOMEM;
    for (uint32_t i = 0; i < count; i++) {
        if (o >= len || b[o] == 0 || b[o] > SL_PRODUCER_ID_MAX || len - o - 1 < (size_t)b[o] + 32) {
            free(ps);
            return SL_ECORRUPT;
        }
        ps[i].id_len = b[o++];
        memcpy(ps[i].id, b + o, ps[i].id_len);
        o += ps[i].id_len;
        ps[i].epoch = sl_storage__get_le64(b + o);
        ps[i].seq = sl_storage__get_le64(b + o + 8);
        ps[i].first = sl_storage__get_le64(b + o + 16);
        ps[i].last = sl_storage__get_le64(b + o + 24);
        ps[i].used = i + 1;
        o += 32;
    }
    free(l->p);
    l->p = ps;
    l->n = l->cap = count;
    l->clock = count;
    l->sseq_len = sl;
    memcpy(l->sseq, b + 5, sl);
    return 0;
}

/* ---- attributes and the manifest extension ---- */

enum { A_TTL = 1, A_EXPIRES, A_CTYPE, A_PARENT, A_PARENT_EPOCH, A_FORK_SEQ };
enum { E_ATTRS = 1, E_CLOSED, E_SNAPSHOT, E_SNAP_SEQ };

static size_t put_tlv16(uint8_t *b, uint8_t tag, const void *v, size_t n)
{
    b[0] = tag;
    b[1] = (uint8_t)n;
    b[2] = (uint8_t)(n >> 8);
    memcpy(b + 3, v, n);
    return 3 + n;
}

static size_t put_u64_tlv16(uint8_t *b, uint8_t tag, uint64_t v)
{
    uint8_t le[8];
    sl_storage__put_le64(le, v);
    return put_tlv16(b, tag, le, 8);
}

size_t sl_lifecycle_attrs_encode(const sl_session_attrs_t *a, uint8_t *b, size_t cap)
{
    sl_assert(cap >= SL_LIFECYCLE_ATTRS_MAX);
    size_t o = 0;
    if (a->ttl_ns)
        o += put_u64_tlv16(b + o, A_TTL, a->ttl_ns);
    if (a->expires_at_ns)
        o += put_u64_tlv16(b + o, A_EXPIRES, a->expires_at_ns);
    if (a->content_type_len)
        o += put_tlv16(b + o, A_CTYPE, a->content_type, a->content_type_len);
    if (a->parent_len) {
        o += put_tlv16(b + o, A_PARENT, a->parent, a->parent_len);
        o += put_u64_tlv16(b + o, A_PARENT_EPOCH, a->parent_epoch);
        o += put_u64_tlv16(b + o, A_FORK_SEQ, a->fork_seq);
    }
    return o;
}

int sl_lifecycle_attrs_decode(const uint8_t *b, size_t n, sl_session_attrs_t *a)
{
    memset(a, 0, sizeof *a);
    size_t o = 0;
    while (o < n) {
        if (n - o < 3)
            return SL_ECORRUPT;
        uint8_t tag = b[o];
        size_t len = (size_t)b[o + 1] | (size_t)b[o + 2] << 8;
        const uint8_t *v = b + o + 3;
        if (n - o - 3 < len)
            return SL_ECORRUPT;
        bool u64 = tag == A_TTL || tag == A_EXPIRES || tag == A_PARENT_EPOCH || tag == A_FORK_SEQ;
        if (u64 && len != 8)
            return SL_ECORRUPT;
        switch (tag) {
        case A_TTL: a->ttl_ns = sl_storage__get_le64(v); break;
        case A_EXPIRES: a->expires_at_ns = sl_storage__get_le64(v); break;
        case A_PARENT_EPOCH: a->parent_epoch = sl_storage__get_le64(v); break;
        case A_FORK_SEQ: a->fork_seq = sl_storage__get_le64(v); break;
        case A_CTYPE:
            if (len > SL_CONTENT_TYPE_MAX)
                return SL_ECORRUPT;
            memcpy(a->content_type, v, len);
            a->content_type_len = (uint8_t)len;
            break;
        case A_PARENT:
            if (len == 0 || len > SL_SESSION_ID_MAX)
                return SL_ECORRUPT;
            memcpy(a->parent, v, len);
            a->parent_len = (uint8_t)len;
            break;
        default:
            break;
        }
        o += 3 + len;
    }
    return 0;
}

static size_t put_tlv32(uint8_t *b, uint8_t tag, const void *v, size_t n)
{
    b[0] = tag;
    sl_storage__put_le32(b + 1, (uint32_t)n);
    if (n)
        memcpy(b + 5, v, n);
    return 5 + n;
}

uint8_t *sl_lifecycle_entry_encode(const sl_lifecycle_entry_t *x, size_t *len, bool *oom)
{
    *len = 0;
    *oom = false;
    if (!x->has_attrs && !x->closed && !x->snapshot_len)
        return NULL;
    uint8_t *b = malloc(4 * 5 + 8 * 3 + SL_LIFECYCLE_ATTRS_MAX + x->snapshot_len);
    if (!b) {
        *oom = true;
        return NULL;
    }
    size_t o = 0;
    uint8_t tmp[SL_LIFECYCLE_ATTRS_MAX], le[8];
    if (x->has_attrs)
        o += put_tlv32(b + o, E_ATTRS, tmp, sl_lifecycle_attrs_encode(&x->attrs, tmp, sizeof tmp));
    if (x->closed) {
        sl_storage__put_le64(le, x->closed_seq);
        o += put_tlv32(b + o, E_CLOSED, le, 8);
    }
    if (x->snapshot_len) {
        o += put_tlv32(b + o, E_SNAPSHOT, x->snapshot, x->snapshot_len);
        sl_storage__put_le64(le, x->snap_seq);
        o += put_tlv32(b + o, E_SNAP_SEQ, le, 8);
    }
    *len = o;
    return b;
}

int sl_lifecycle_entry_decode(const uint8_t *b, size_t n, sl_lifecycle_entry_t *x)
{
    memset(x, 0, sizeof *x);
    size_t o = 0;
    while (o < n) {
        if (n - o < 5)
            return SL_ECORRUPT;
        uint8_t tag = b[o];
        size_t len = sl_storage__get_le32(b + o + 1);
        const uint8_t *v = b + o + 5;
        if (n - o - 5 < len)
            return SL_ECORRUPT;
        if ((tag == E_CLOSED || tag == E_SNAP_SEQ) && len != 8)
            return SL_ECORRUPT;
        switch (tag) {
        case E_ATTRS:
            if (sl_lifecycle_attrs_decode(v, len, &x->attrs) != 0)
                return SL_ECORRUPT;
            x->has_attrs = true;
            break;
        case E_CLOSED:
            x->closed = true;
            x->closed_seq = sl_storage__get_le64(v);
            break;
        case E_SNAPSHOT:
            x->snapshot = v;
            x->snapshot_len = len;
            break;
        case E_SNAP_SEQ:
            x->snap_seq = sl_storage__get_le64(v);
            break;
        default:
            break;
        }
        o += 5 + len;
    }
    return 0;
}
