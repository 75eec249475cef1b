/*
 * Log-bucket histogram. See load_hist.h for the representation.
 */
#include "tools/load/load_hist.h"

#include <string.h>

#include "runtime/base.h"

void sl_load_hist_init(sl_load_hist_t *h)
{
    memset(h, 0, sizeof(*h));
    h->min = UINT64_MAX;
}

/* Bucket b holds values whose top set bit is b + SUB_BITS - 1 (b >= 1), and
 * bucket 0 holds everything below SUB_COUNT; within a bucket the slot is the
 * value shifted right by b. Buckets b >= 1 only use sub-slots in
 * [SUB_HALF, SUB_COUNT), so slot = b * SUB_HALF + (value >> b) is dense. */
unsigned sl_load_hist_index(uint64_t value)
{
    unsigned msb = 63u - (unsigned)__builtin_clzll(value | 1u);
    unsigned bucket = msb < SL_LOAD_HIST_SUB_BITS ? 0 : msb - (SL_LOAD_HIST_SUB_BITS - 1);
    unsigned sub = (unsigned)(value >> bucket);
    return bucket * SL_LOAD_HIST_SUB_HALF + sub;
}

static unsigned bucket_of(unsigned index)
{
    if (index < SL_LOAD_HIST_SUB_COUNT)
        return 0;
    return index / SL_LOAD_HIST_SUB_HALF - 1;
}

uint64_t sl_load_hist_lowest(unsigned index)
{
    sl_assert(index < SL_LOAD_HIST_SLOTS);
    unsigned bucket = bucket_of(index);
    uint64_t sub = index - bucket * SL_LOAD_HIST_SUB_HALF;
    return sub << bucket;
}

uint64_t sl_load_hist_highest(unsigned index)
{
    sl_assert(index < SL_LOAD_HIST_SLOTS);
    unsigned bucket = bucket_of(index);
    uint64_t low = sl_load_hist_lowest(index);
    uint64_t width = (uint64_t)1 << bucket;
    /* The very last slot ends at UINT64_MAX; low + width would wrap. */
    return low + (width - 1);
}

void sl_load_hist_record_n(sl_load_hist_t *h, uint64_t value, uint64_t count)
{
    if (count == 0)
        return;
    h->counts[sl_load_hist_index(value)] += count;
    h->total_count += count;
    h->sum += (double)value * (double)count;
    if (value < h->min)
        h->min = value;
    if (value > h->max)
        h->max = value;
}

void sl_load_hist_record(sl_load_hist_t *h, uint64_t value)
{
    sl_load_hist_record_n(h, value, 1);
}

void sl_load_hist_merge(sl_load_hist_t *dst, const sl_load_hist_t *src)
{
    if (src->total_count == 0)
        return;
    for (unsigned i = 0; i < SL_LOAD_HIST_SLOTS; i++)
        dst->counts[i] += src->counts[i];
    dst->total_count += src->total_count;
    dst->sum += src->sum;
    if (src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
}

uint64_t sl_load_hist_percentile(const sl_load_hist_t *h, double pct)
{
    if (h->total_count == 0)
        return 0;
    if (pct >= 100.0)
        return h->max;
    if (pct < 0.0)
        pct = 0.0;
    /* Rank of the wanted value, 1-based; the epsilon keeps 99.9 % of 1000
     * at rank 999 despite binary rounding. */
    double exact = pct / 100.0 * (double)h->total_count;
    uint64_t rank = (uint64_t)(exact - 1e-9);
    if ((double)rank < exact - 1e-9)
        rank++;
    if (rank == 0)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < SL_LOAD_HIST_SLOTS; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            uint64_t v = sl_load_hist_highest(i);
            if (v > h->max)
                v = h->max;
            if (v < h->min)
                v = h->min;
            return v;
        }
    }
    return h->max;
}

double sl_load_hist_mean(const sl_load_hist_t *h)
{
    return h->total_count ? h->sum / (double)h->total_count : 0.0;
}
