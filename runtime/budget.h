/*
 * The global memory budget: one process-wide count of the bytes sluice
 * holds that clients can make grow, split by who holds them, against one
 * limit (--memory-limit).
 *
 * Holders add when they allocate and subtract when they free, with relaxed
 * atomics on one cache line per kind (a statistic and an admission hint:
 * no ordering with anything else is needed, and a few bytes of skew
 * between kinds only moves the moment admission flips by as much). The
 * kinds are named by the allocating site, so "ring" also covers ring
 * chunks that an output queue still references after the ring let them go.
 *
 * Policy when the used bytes reach the limit (actors/conn_api.c,
 * actors/conn_rpc.c): new publishes and new subscriptions are refused with
 * 503 overloaded + Retry-After (RPC: ["overloaded", msg]); request bodies
 * do not grow (net/http1.c: 503 and close; net/http2.c: REFUSED_STREAM); existing
 * streams keep flowing, because sending only releases memory; a stream
 * behind the ring reads the log only once its connection's output drained
 * and then at most SL_BUDGET_CATCHUP_OVER_BYTES at a time, so a subscriber
 * that reads still moves while one that does not pins nothing more.
 * /health and
 * /metrics report the limit, the used bytes per kind and busy.
 *
 * Threads: every function may be called from any thread.
 */
#ifndef SL_RUNTIME_BUDGET_H
#define SL_RUNTIME_BUDGET_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "runtime/base.h"

typedef enum sl_budget_kind {
    SL_BUDGET_RING = 0, /* session ring pages (encoded events, shared by subscribers) */
    SL_BUDGET_CATCHUP,  /* chunks a catch-up read from the log fills for one subscriber */
    SL_BUDGET_OUTPUT,   /* bytes copied for sending (frame headers, answers, RPC replies) */
    SL_BUDGET_HTTP,     /* the counted HTTP allocator: nghttp2, headers, request bodies */
    SL_BUDGET_RPC,      /* msgpack-RPC decoder input buffers */
    SL_BUDGET_JOURNAL,  /* journal write buffers and catch-up reader buffers */
    SL_BUDGET_OTHER,    /* every other chunk (health snapshots, ...) */
    SL_BUDGET_KINDS
} sl_budget_kind_t;

/* Per-kind counters, each on its own cache line. Exposed only so the
 * add/sub below inline; use the functions. */
typedef struct sl_budget__slot {
    alignas(SL_CACHELINE) _Atomic uint64_t bytes;
} sl_budget__slot_t;
extern sl_budget__slot_t sl_budget__held[SL_BUDGET_KINDS];

/* Counts n bytes as held by kind. Relaxed: pairs with nothing; readers
 * only sum. */
static inline void sl_budget_add(sl_budget_kind_t kind, uint64_t n)
{
    atomic_fetch_add_explicit(&sl_budget__held[kind].bytes, n, memory_order_relaxed);
}

/* Releases n bytes counted with sl_budget_add under the same kind. */
static inline void sl_budget_sub(sl_budget_kind_t kind, uint64_t n)
{
    atomic_fetch_sub_explicit(&sl_budget__held[kind].bytes, n, memory_order_relaxed);
}

/* Bytes held by one kind now. */
uint64_t sl_budget_held(sl_budget_kind_t kind);
/* Sum over every kind (a racy but never torn snapshot of each counter). */
uint64_t sl_budget_used(void);
/* Short lower-case name of a kind ("ring", ...); never NULL. */
const char *sl_budget_kind_name(sl_budget_kind_t kind);

/* Request bodies refused because the budget was over (the HTTP layer
 * refuses to grow them: 503 on HTTP/1.x, REFUSED_STREAM on HTTP/2). */
void sl_budget_count_refused_body(void);
uint64_t sl_budget_refused_body(void);
/* True when a limit is set and the used bytes reached it plus the
 * catch-up headroom (SL_BUDGET_CATCHUP_HEADROOM_PERCENT of it): no stream
 * starts another catch-up read until memory returns. */
bool sl_budget_over_headroom(void);
/* Sets the limit in bytes (0: no limit; admission never refuses). Called
 * once at start, before serving. */
void sl_budget_set_limit(uint64_t bytes);
uint64_t sl_budget_limit(void);
/* True when a limit is set and the used bytes reached it: new work is
 * refused (the policy above). */
bool sl_budget_over(void);

/* The default limit: SL_BUDGET_DEFAULT_PERCENT of the memory this process
 * may use -- the cgroup v2 memory.max of its cgroup, else the cgroup v1
 * memory.limit_in_bytes, else physical RAM. Returns the bytes, or 0 when
 * none of them can be read (no limit). cgroup_root is "/sys/fs/cgroup" in
 * production (a parameter for tests). */
uint64_t sl_budget_default_limit(const char *cgroup_root);

/* Parses a cgroup limit file's text ("max\n" or a decimal byte count).
 * Returns the bytes, or 0 for "max", an absurd value (v1 reports
 * unlimited as ~2^63) or unparsable text. Pure. */
uint64_t sl_budget_parse_cgroup_limit(const char *text);

#endif
