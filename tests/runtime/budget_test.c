/*
 * Tests for runtime/budget.c: per-kind accounting, the sum and the
 * admission flag against the limit, chunks counted under the kind they
 * were created as (and released from it), concurrent add/sub from several
 * threads netting to zero, and the cgroup limit parsing and default.
 */
#include "runtime/budget.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/buf.h"
#include "runtime/limits.h"
#include "tests/check.h"

static void test_budget_counts_per_kind_and_sum(void)
{
    uint64_t base = sl_budget_used();
    sl_budget_add(SL_BUDGET_HTTP, 1000);
    sl_budget_add(SL_BUDGET_RPC, 24);
    CHECK(sl_budget_held(SL_BUDGET_HTTP) == 1000);
    CHECK(sl_budget_held(SL_BUDGET_RPC) == 24);
    CHECK(sl_budget_used() == base + 1024);
    sl_budget_sub(SL_BUDGET_HTTP, 1000);
    sl_budget_sub(SL_BUDGET_RPC, 24);
    CHECK(sl_budget_used() == base);
    CHECK(strcmp(sl_budget_kind_name(SL_BUDGET_RING), "ring") == 0);
    CHECK(strcmp(sl_budget_kind_name(SL_BUDGET_KINDS), "unknown") == 0);
}

static void test_budget_over_at_limit(void)
{
    sl_budget_set_limit(0);
    sl_budget_add(SL_BUDGET_JOURNAL, 1u << 20);
    CHECK(!sl_budget_over()); /* no limit: never over */
    uint64_t used = sl_budget_used();
    sl_budget_set_limit(used + 1);
    CHECK(!sl_budget_over());
    sl_budget_add(SL_BUDGET_JOURNAL, 1);
    CHECK(sl_budget_over()); /* reaching the limit counts as over */
    CHECK(!sl_budget_over_headroom());
    sl_budget_add(SL_BUDGET_JOURNAL, (used + 1) / 100 * SL_BUDGET_CATCHUP_HEADROOM_PERCENT);
    CHECK(sl_budget_over_headroom()); /* catch-up stops at limit + headroom */
    sl_budget_sub(SL_BUDGET_JOURNAL, (used + 1) / 100 * SL_BUDGET_CATCHUP_HEADROOM_PERCENT);
    CHECK(!sl_budget_over_headroom());
    sl_budget_sub(SL_BUDGET_JOURNAL, 1);
    CHECK(!sl_budget_over());
    sl_budget_sub(SL_BUDGET_JOURNAL, 1u << 20);
    sl_budget_set_limit(0);
}

static void test_budget_chunks_counted_by_kind(void)
{
    uint64_t ring0 = sl_budget_held(SL_BUDGET_RING), other0 = sl_budget_held(SL_BUDGET_OTHER);
    sl_chunk_t *a = sl_chunk_create_as(4096, SL_BUDGET_RING);
    sl_chunk_t *b = sl_chunk_create(100);
    CHECK(a && b);
    CHECK(sl_budget_held(SL_BUDGET_RING) == ring0 + 4096);
    CHECK(sl_budget_held(SL_BUDGET_OTHER) == other0 + 100);
    sl_chunk_retain(a); /* a second holder (an output queue) */
    sl_chunk_release(a);
    CHECK(sl_budget_held(SL_BUDGET_RING) == ring0 + 4096); /* still held */
    sl_chunk_release(a);
    sl_chunk_release(b);
    CHECK(sl_budget_held(SL_BUDGET_RING) == ring0);
    CHECK(sl_budget_held(SL_BUDGET_OTHER) == other0);
}

static void test_budget_outq_copies_count_as_output(void)
{
    uint64_t out0 = sl_budget_held(SL_BUDGET_OUTPUT);
    sl_outq_t q;
    CHECK(sl_outq_init(&q, 16, 1u << 20) == 0);
    CHECK(sl_outq_append_copy(&q, "hello", 5) == 0);
    CHECK(sl_budget_held(SL_BUDGET_OUTPUT) > out0);
    sl_outq_deinit(&q);
    CHECK(sl_budget_held(SL_BUDGET_OUTPUT) == out0);
}

#define THREADS 4
#define ROUNDS 100000

static void *churn(void *arg)
{
    sl_budget_kind_t k = (sl_budget_kind_t)(uintptr_t)arg;
    for (int i = 0; i < ROUNDS; i++) {
        sl_budget_add(k, (uint64_t)(i % 97) + 1);
        sl_budget_sub(k, (uint64_t)(i % 97) + 1);
    }
    return NULL;
}

static void test_budget_concurrent_nets_to_zero(void)
{
    uint64_t base = sl_budget_used();
    pthread_t t[THREADS];
    for (uintptr_t i = 0; i < THREADS; i++)
        CHECK(pthread_create(&t[i], NULL, churn,
                             (void *)(uintptr_t)(i % 2 ? SL_BUDGET_HTTP : SL_BUDGET_CATCHUP)) == 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    CHECK(sl_budget_used() == base);
}

static void test_budget_parse_cgroup_limit(void)
{
    CHECK(sl_budget_parse_cgroup_limit("max\n") == 0);
    CHECK(sl_budget_parse_cgroup_limit("1073741824\n") == 1073741824ull);
    CHECK(sl_budget_parse_cgroup_limit("9223372036854771712\n") == 0); /* v1 "unlimited" */
    CHECK(sl_budget_parse_cgroup_limit("") == 0);
    CHECK(sl_budget_parse_cgroup_limit("12x") == 0);
    CHECK(sl_budget_parse_cgroup_limit(NULL) == 0);
}

/* A fake cgroup root with only a v1 limit: the default is the percent of
 * it (or of RAM when RAM is smaller). */
static void test_budget_default_from_cgroup_v1(void)
{
    char root[] = "/tmp/budget-test-XXXXXX";
    CHECK(mkdtemp(root) != NULL);
    char dir[128], path[160];
    snprintf(dir, sizeof dir, "%s/memory", root);
    CHECK(mkdir(dir, 0700) == 0);
    snprintf(path, sizeof path, "%s/memory.limit_in_bytes", dir);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    fprintf(f, "%llu\n", 256ull << 20);
    fclose(f);
    uint64_t got = sl_budget_default_limit(root);
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    uint64_t ram = (uint64_t)pages * (uint64_t)page;
    uint64_t base = ram < (256ull << 20) ? ram : (256ull << 20);
    CHECK(got == base / 100 * SL_BUDGET_DEFAULT_PERCENT);
    unlink(path);
    rmdir(dir);
    rmdir(root);
    /* No cgroup files at all: the percent of RAM. */
    CHECK(sl_budget_default_limit("/nonexistent-cgroup-root") ==
          ram / 100 * SL_BUDGET_DEFAULT_PERCENT);
}

int main(void)
{
    test_budget_counts_per_kind_and_sum();
    test_budget_over_at_limit();
    test_budget_chunks_counted_by_kind();
    test_budget_outq_copies_count_as_output();
    test_budget_concurrent_nets_to_zero();
    test_budget_parse_cgroup_limit();
    test_budget_default_from_cgroup_v1();
    printf("budget_test: ok\n");
    return 0;
}
