/*
 * Tests of sluice-load's latency histogram (tools/load/load_hist.c) on
 * synthetic input whose percentiles are known exactly.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "tools/load/load_hist.h"

static int failures;

#define CHECK(cond)                                                              \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
            failures++;                                                          \
        }                                                                        \
    } while (0)

/* |got - want| within 1/64 of want: the documented precision. */
static int close_to(uint64_t got, uint64_t want)
{
    double d = fabs((double)got - (double)want);
    return d <= (double)want / 64.0 + 1.0;
}

static void test_load_hist_slots_are_exact_below_128_and_contiguous(void)
{
    for (uint64_t v = 0; v < 128; v++) {
        CHECK(sl_load_hist_index(v) == v);
        CHECK(sl_load_hist_lowest((unsigned)v) == v);
        CHECK(sl_load_hist_highest((unsigned)v) == v);
    }
    /* Every slot starts right after the previous one ends. */
    for (unsigned i = 1; i < SL_LOAD_HIST_SLOTS; i++)
        CHECK(sl_load_hist_lowest(i) == sl_load_hist_highest(i - 1) + 1);
    CHECK(sl_load_hist_index(UINT64_MAX) == SL_LOAD_HIST_SLOTS - 1);
    CHECK(sl_load_hist_highest(SL_LOAD_HIST_SLOTS - 1) == UINT64_MAX);
}

static void test_load_hist_value_lies_in_its_slot(void)
{
    uint64_t v = 1;
    for (int i = 0; i < 2000; i++) {
        unsigned idx = sl_load_hist_index(v);
        CHECK(sl_load_hist_lowest(idx) <= v);
        CHECK(sl_load_hist_highest(idx) >= v);
        /* Slot width is at most 1/64 of its lowest value (above 127). */
        if (v >= 128)
            CHECK(sl_load_hist_highest(idx) - sl_load_hist_lowest(idx) + 1 <=
                  sl_load_hist_lowest(idx) / 64);
        v = v * 1.0137 + 3;
        if (v > (UINT64_MAX >> 2))
            break;
    }
}

static void test_load_hist_uniform_percentiles(sl_load_hist_t *h)
{
    sl_load_hist_init(h);
    for (uint64_t v = 1; v <= 1000000; v++)
        sl_load_hist_record(h, v);
    CHECK(h->total_count == 1000000);
    CHECK(h->min == 1);
    CHECK(h->max == 1000000);
    CHECK(close_to(sl_load_hist_percentile(h, 50), 500000));
    CHECK(close_to(sl_load_hist_percentile(h, 90), 900000));
    CHECK(close_to(sl_load_hist_percentile(h, 99), 990000));
    CHECK(close_to(sl_load_hist_percentile(h, 99.9), 999000));
    CHECK(sl_load_hist_percentile(h, 100) == 1000000);
    CHECK(sl_load_hist_percentile(h, 0) == 1);
    CHECK(fabs(sl_load_hist_mean(h) - 500000.5) < 1e-6);
    /* Never below the true value: the slot's highest equivalent is used. */
    CHECK(sl_load_hist_percentile(h, 50) >= 500000);
}

static void test_load_hist_bimodal_ranks(sl_load_hist_t *h)
{
    /* 990 values of 1 ms and 10 of 100 ms: p99 is 1 ms (rank 990),
     * p99.9 is 100 ms (rank 999). */
    sl_load_hist_init(h);
    sl_load_hist_record_n(h, 1000000, 990);
    for (int i = 0; i < 10; i++)
        sl_load_hist_record(h, 100000000);
    CHECK(close_to(sl_load_hist_percentile(h, 50), 1000000));
    CHECK(close_to(sl_load_hist_percentile(h, 99), 1000000));
    CHECK(sl_load_hist_percentile(h, 99.1) == 100000000);
    CHECK(sl_load_hist_percentile(h, 99.9) == 100000000);
    CHECK(sl_load_hist_percentile(h, 99) < 1000000 + 1000000 / 64 + 1);
}

static void test_load_hist_single_value_is_exact(sl_load_hist_t *h)
{
    /* Clamping to min/max makes a constant input exact at every rank. */
    sl_load_hist_init(h);
    sl_load_hist_record_n(h, 123456789, 7);
    CHECK(sl_load_hist_percentile(h, 1) == 123456789);
    CHECK(sl_load_hist_percentile(h, 50) == 123456789);
    CHECK(sl_load_hist_percentile(h, 99.99) == 123456789);
}

static void test_load_hist_empty_and_merge(sl_load_hist_t *a, sl_load_hist_t *b)
{
    sl_load_hist_init(a);
    sl_load_hist_init(b);
    CHECK(sl_load_hist_percentile(a, 99) == 0);
    CHECK(sl_load_hist_mean(a) == 0);
    for (uint64_t v = 1; v <= 500; v++)
        sl_load_hist_record(a, v);
    for (uint64_t v = 501; v <= 1000; v++)
        sl_load_hist_record(b, v);
    sl_load_hist_merge(a, b);
    CHECK(a->total_count == 1000);
    CHECK(a->min == 1 && a->max == 1000);
    CHECK(close_to(sl_load_hist_percentile(a, 75), 750));
    sl_load_hist_init(b);
    sl_load_hist_merge(a, b); /* merging an empty one changes nothing */
    CHECK(a->total_count == 1000 && a->min == 1);
}

int main(void)
{
    /* Histograms are ~30 KiB each: on the heap, not the stack. */
    sl_load_hist_t *a = malloc(sizeof(*a));
    sl_load_hist_t *b = malloc(sizeof(*b));
    if (!a || !b)
        return 1;
    test_load_hist_slots_are_exact_below_128_and_contiguous();
    test_load_hist_value_lies_in_its_slot();
    test_load_hist_uniform_percentiles(a);
    test_load_hist_bimodal_ranks(a);
    test_load_hist_single_value_is_exact(a);
    test_load_hist_empty_and_merge(a, b);
    free(a);
    free(b);
    if (failures) {
        fprintf(stderr, "load_hist_test: %d checks failed\n", failures);
        return 1;
    }
    printf("load_hist_test: ok\n");
    return 0;
}
