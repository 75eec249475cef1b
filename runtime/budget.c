/*
 * The global memory budget (see budget.h): per-kind relaxed counters, the
 * limit, and the default limit read from the cgroup or physical RAM.
 */
#include "runtime/budget.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/limits.h"

sl_budget__slot_t sl_budget__held[SL_BUDGET_KINDS];

/* Written once before serving, read by every admission check. Relaxed: the
 * threads that read it are started after it is set (thread creation
 * orders the store before their loads). */
static _Atomic uint64_t budget_limit;

static const char *const kind_names[SL_BUDGET_KINDS] = {
    [SL_BUDGET_RING] = "ring",       [SL_BUDGET_CATCHUP] = "catchup",
    [SL_BUDGET_OUTPUT] = "output",   [SL_BUDGET_HTTP] = "http",
    [SL_BUDGET_RPC] = "rpc",         [SL_BUDGET_JOURNAL] = "journal",
    [SL_BUDGET_OTHER] = "other",
};

uint64_t sl_budget_held(sl_budget_kind_t kind)
{
    sl_assert(kind < SL_BUDGET_KINDS);
    /* A holder may free on one thread what another counted: the sum is
     * exact, but one kind's counter can be read between the two halves of
     * such a pair. Unsigned wrap shows as a huge value; report 0. */
    uint64_t v = atomic_load_explicit(&sl_budget__held[kind].bytes, memory_order_relaxed);
    return v > (UINT64_MAX >> 1) ? 0 : v;
}

uint64_t sl_budget_used(void)
{
    uint64_t sum = 0;
    for (int k = 0; k < SL_BUDGET_KINDS; k++)
        sum += atomic_load_explicit(&sl_budget__held[k].bytes, memory_order_relaxed);
    return sum > (UINT64_MAX >> 1) ? 0 : sum;
}

const char *sl_budget_kind_name(sl_budget_kind_t kind)
{
    return kind < SL_BUDGET_KINDS ? kind_names[kind] : "unknown";
}

void sl_budget_set_limit(uint64_t bytes)
{
    atomic_store_explicit(&budget_limit, bytes, memory_order_relaxed);
}

uint64_t sl_budget_limit(void)
{
    return atomic_load_explicit(&budget_limit, memory_order_relaxed);
}

bool sl_budget_over(void)
{
    uint64_t lim = sl_budget_limit();
    return lim != 0 && sl_budget_used() >= lim;
}

bool sl_budget_over_headroom(void)
{
    uint64_t lim = sl_budget_limit();
    return lim != 0 && sl_budget_used() >= lim + lim / 100 * SL_BUDGET_CATCHUP_HEADROOM_PERCENT;
}

uint64_t sl_budget_parse_cgroup_limit(const char *text)
{
    if (text == NULL || strncmp(text, "max", 3) == 0)
        return 0;
    char *end = NULL;
    unsigned long long v = strtoull(text, &end, 10);
    if (end == text || (*end != '\0' && *end != '\n'))
        return 0;
    return v >= SL_BUDGET_CGROUP_UNLIMITED ? 0 : (uint64_t)v;
}

/* Reads a small file's first line into buf. Returns 0 or -1. */
static int read_line(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return -1;
    char *ok = fgets(buf, (int)cap, f);
    fclose(f);
    return ok ? 0 : -1;
}

/* The cgroup v2 path of this process ("0::/a/b" in /proc/self/cgroup). */
static int cgroup_v2_path(char *out, size_t cap)
{
    FILE *f = fopen("/proc/self/cgroup", "re");
    if (f == NULL)
        return -1;
    char line[512];
    int rc = -1;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "0::", 3) != 0)
            continue;
        line[strcspn(line, "\n")] = '\0';
        snprintf(out, cap, "%s", line + 3);
        rc = 0;
        break;
    }
    fclose(f);
    return rc;
}

static uint64_t cgroup_limit(const char *root)
{
    char path[1024], rel[512], text[64];
    if (cgroup_v2_path(rel, sizeof rel) == 0) {
        snprintf(path, sizeof path, "%s%s/memory.max", root, strcmp(rel, "/") == 0 ? "" : rel);
        if (read_line(path, text, sizeof text) == 0)
            return sl_budget_parse_cgroup_limit(text);
    }
    /* Inside a container the namespace root is our own cgroup. */
    snprintf(path, sizeof path, "%s/memory.max", root);
    if (read_line(path, text, sizeof text) == 0)
        return sl_budget_parse_cgroup_limit(text);
    snprintf(path, sizeof path, "%s/memory/memory.limit_in_bytes", root);
    if (read_line(path, text, sizeof text) == 0)
        return sl_budget_parse_cgroup_limit(text);
    return 0;
}

uint64_t sl_budget_default_limit(const char *cgroup_root)
{
    uint64_t total = cgroup_limit(cgroup_root);
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    uint64_t ram = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : 0;
    /* A cgroup limit above the machine's RAM bounds nothing. */
    if (total == 0 || (ram != 0 && total > ram))
        total = ram;
    return total / 100 * SL_BUDGET_DEFAULT_PERCENT;
}
