/*
 * Results of one sluice-load run and the three ways they are shown: a
 * human table, a JSON file, and a gnuplot plot (throughput, latency
 * percentiles and server RSS over time).
 */
#ifndef SL_TOOLS_LOAD_REPORT_H
#define SL_TOOLS_LOAD_REPORT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "tools/load/load_hist.h"
#include "tools/load/load_opts.h"

/* One second of the run; interval figures unless noted. */
typedef struct sl_load_sample {
    double t_s;            /* end of the interval, seconds since publishing began */
    uint64_t published;    /* publishes acknowledged */
    uint64_t delivered;    /* events received by all subscribers */
    uint64_t p50_ns;
    uint64_t p90_ns;
    uint64_t p99_ns;
    uint64_t p999_ns;
    uint64_t max_ns;
    uint64_t errors;       /* cumulative connection + stream errors */
    uint32_t subscribers;  /* streams open at the end of the interval */
    int64_t rss_bytes;     /* server RSS; -1 unknown */
    int64_t fds;           /* server open fds; -1 unknown */
    double cpu_pct;        /* server CPU over the interval; -1 unknown */
    double lag_ms;         /* server loop lag from /health; -1 unknown */
} sl_load_sample_t;

typedef enum sl_load_sub_mode {
    SL_LOAD_MODE_NORMAL = 0,
    SL_LOAD_MODE_SLOW,
    SL_LOAD_MODE_STALL,
    SL_LOAD_MODE_CHURN,
} sl_load_sub_mode_t;

typedef struct sl_load_sub_result {
    uint32_t index;
    uint32_t session;
    sl_load_sub_mode_t mode;
    bool checked;          /* exact count asserted (normal subscribers) */
    bool ok;
    uint64_t received;
    uint64_t expected;
    uint64_t gaps;         /* events skipped, by SSE id */
    uint64_t out_of_order; /* ids at or below one already seen */
    uint64_t bad;          /* payloads that did not parse */
    uint64_t gap_events;   /* sluice.gap notices */
    uint64_t last_id;
} sl_load_sub_result_t;

typedef struct sl_load_result {
    const sl_load_opts_t *opts;
    double setup_s;         /* connecting and subscribing */
    double run_s;           /* publishing */
    double drain_s;         /* after publishing, until delivered or timed out */
    uint64_t published;     /* acknowledged publishes */
    uint64_t publish_errors;
    uint64_t behind_schedule; /* events due before the end but never sent */
    uint64_t delivered;     /* every event received by any subscriber */
    uint64_t delivered_lagging;
    uint64_t conn_errors;
    uint64_t stream_errors;
    uint64_t subscribe_errors;
    uint64_t gaps;
    uint64_t out_of_order;
    uint64_t bad_payloads;
    uint64_t gap_events;
    uint64_t count_mismatches;
    uint64_t churn_started;
    uint64_t churn_completed;
    uint64_t churn_skipped;
    bool drain_timed_out;
    bool hard_deadline;
    bool interrupted;
    bool no_health;
    const sl_load_hist_t *latency;          /* normal subscribers, from intended time */
    const sl_load_hist_t *latency_from_send; /* the same, from the actual send */
    const sl_load_hist_t *latency_lagging;  /* slow and stalled subscribers */
    const sl_load_hist_t *send_lag;         /* publisher lateness vs schedule */
    const sl_load_hist_t *subscribe_latency;
    const sl_load_hist_t *health_latency; /* GET /health answer times (once a second) */
    double target_cpu_s;    /* over run + drain; -1 unknown */
    int64_t target_rss_max; /* -1 unknown */
    int64_t target_rss_end;
    double self_cpu_s;
    const sl_load_sample_t *samples;
    size_t sample_count;
    const sl_load_sub_result_t *subs;
    size_t sub_count;
    int exit_code;
    char verdict[256];
} sl_load_result_t;

/* Writes the final table to f. */
void sl_load_report_table(FILE *f, const sl_load_result_t *r);
/* Writes the JSON result to path. Returns 0 or -errno. */
int sl_load_report_json(const char *path, const sl_load_result_t *r);
/* Writes path.dat and renders path (.png or .svg) with gnuplot. Returns 0,
 * -ENOENT when gnuplot is not installed, or -errno / SL_EINVAL. */
int sl_load_report_plot(const char *path, const sl_load_result_t *r);

/* Deliveries per second over the publishing and drain phases. */
double sl_load_report_delivery_rate(const sl_load_result_t *r);

#endif
