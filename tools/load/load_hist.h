/*
 * Latency histogram with HdrHistogram-style log buckets.
 *
 * Values (nanoseconds, or any u64) fall into buckets whose width doubles
 * every power of two, with 2^(SL_LOAD_HIST_SUB_BITS - 1) linear sub-buckets
 * per power: every recorded value is represented to within 1/64 (≈1.6 %) of
 * itself, and the whole u64 range fits in a fixed array, so recording is
 * O(1), allocation-free and can never fail. Min, max, count and sum are kept
 * exactly. A percentile query returns the highest value equivalent to the
 * bucket that holds the wanted rank (HdrHistogram's convention), clamped to
 * the exact min and max.
 *
 * Single-threaded: a histogram belongs to one thread; merge to combine.
 */
#ifndef SL_TOOLS_LOAD_HIST_H
#define SL_TOOLS_LOAD_HIST_H

#include <stdint.h>

#define SL_LOAD_HIST_SUB_BITS 7
#define SL_LOAD_HIST_SUB_COUNT (1u << SL_LOAD_HIST_SUB_BITS)
#define SL_LOAD_HIST_SUB_HALF (SL_LOAD_HIST_SUB_COUNT / 2)
/* Bucket b covers [64 << b, 128 << b); bucket 0 also covers [0, 64). The top
 * bucket is the one holding 2^63. */
#define SL_LOAD_HIST_BUCKETS (64 - SL_LOAD_HIST_SUB_BITS + 1)
#define SL_LOAD_HIST_SLOTS ((SL_LOAD_HIST_BUCKETS + 1) * SL_LOAD_HIST_SUB_HALF)

typedef struct sl_load_hist {
    uint64_t total_count;
    uint64_t min;
    uint64_t max;
    double sum;
    uint64_t counts[SL_LOAD_HIST_SLOTS];
} sl_load_hist_t;

/* Empties h (caller-provided storage). */
void sl_load_hist_init(sl_load_hist_t *h);
/* Records one value. Never fails. */
void sl_load_hist_record(sl_load_hist_t *h, uint64_t value);
/* Records value count times. */
void sl_load_hist_record_n(sl_load_hist_t *h, uint64_t value, uint64_t count);
/* Adds every count of src to dst. src is borrowed. */
void sl_load_hist_merge(sl_load_hist_t *dst, const sl_load_hist_t *src);
/* The value at percentile pct (0..100): the highest value equivalent to the
 * slot that holds rank ceil(pct/100 * count) (at least rank 1), clamped to
 * [min, max]. pct 100 returns max exactly. 0 for an empty histogram. */
uint64_t sl_load_hist_percentile(const sl_load_hist_t *h, double pct);
/* Arithmetic mean, 0 when empty. */
double sl_load_hist_mean(const sl_load_hist_t *h);

/* Slot arithmetic, exposed for tests and for exporters. */
unsigned sl_load_hist_index(uint64_t value);
uint64_t sl_load_hist_lowest(unsigned index);
uint64_t sl_load_hist_highest(unsigned index);

#endif
