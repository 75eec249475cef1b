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
    [SL_BUDGET_RING] = "ring",   [SL_BUDGET_CATCHUP] = "catchup", [SL_BUDGET_OUTPUT] = "output",
    [SL_BUDGET_HTTP] = "http",   [SL_BUDGET_RPC] = "rpc",         [SL_BUDGET_JOURNAL] = "journal",
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

/* Relaxed: a statistic. */
static _Atomic uint64_t refused_body;

void sl_budget_count_refused_body(void)
{
    atomic_fetch_add_explicit(&refused_body, 1, memory_order_relaxed);
}

uint64_t sl_budget_refused_body(void)
{
    return atomic_load_explicit(&refused_body, memory_order_relaxed);
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

/* This process's cgroup path for v2 ("0::/a/b") or for the v1 memory
 * controller ("4:memory:/a/b", possibly "4:cpu,memory:/a/b") from
 * /proc/self/cgroup. Returns 0 or -1 (no such line). */
static int cgroup_path(bool v2, char *out, size_t cap)
{
    FILE *f = fopen("/proc/self/cgroup", "re");
    if (f == NULL)
        return -1;
    char line[512];
    int rc = -1;
    while (rc != 0 && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        char *ctl = strchr(line, ':');
        char *path = ctl ? strchr(ctl + 1, ':') : NULL;
        if (path == NULL)
            continue;
        *path++ = '\0';
        ctl++;
        bool match = v2 ? (strcmp(line, "0") == 0 && *ctl == '\0')
                        : (strcmp(ctl, "memory") == 0 || strstr(ctl, "memory") != NULL);
        if (match) {
            snprintf(out, cap, "%s", strcmp(path, "/") == 0 ? "" : path);
            rc = 0;
        }
    }
    fclose(f);
    return rc;
}

/* The smallest limit set on dir/<file> or any ancestor up to the root
 * (a parent's limit bounds its children). 0 when none is set. */
static uint64_t limit_up_tree(const char *root, const char *rel, const char *file)
{
    char path[1024], text[64], cur[512];
    snprintf(cur, sizeof cur, "%s", rel);
    uint64_t best = 0;
    for (;;) {
        snprintf(path, sizeof path, "%s%s/%s", root, cur, file);
        if (read_line(path, text, sizeof text) == 0) {
            uint64_t v = sl_budget_parse_cgroup_limit(text);
            if (v != 0 && (best == 0 || v < best))
                best = v;
        }
        char *slash = strrchr(cur, '/');
        if (cur[0] == '\0' || slash == NULL)
            return best;
        *slash = '\0';
    }
}

static uint64_t cgroup_limit(const char *root)
{
    char rel[512], v1root[256];
    uint64_t v2 = 0, v1 = 0;
    if (cgroup_path(true, rel, sizeof rel) != 0)
        rel[0] = '\0';
    v2 = limit_up_tree(root, rel, "memory.max");
    snprintf(v1root, sizeof v1root, "%s/memory", root);
    if (cgroup_path(false, rel, sizeof rel) != 0)
        rel[0] = '\0';
    v1 = limit_up_tree(v1root, rel, "memory.limit_in_bytes");
    if (v2 == 0 || (v1 != 0 && v1 < v2))
        return v1;
    return v2;
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
