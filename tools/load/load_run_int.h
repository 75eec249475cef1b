/*
 * State of a run shared by load_run.c (phases, control, publishers) and
 * load_subs.c (subscribers). Nothing outside tools/load includes this.
 */
#ifndef SL_TOOLS_LOAD_RUN_INT_H
#define SL_TOOLS_LOAD_RUN_INT_H

#include "tools/load/load_conn.h"
#include "tools/load/load_hist.h"
#include "tools/load/load_run.h"
#include "tools/load/load_sse.h"
#include "tools/load/load_target.h"

typedef enum phase {
    PHASE_SETUP = 0,
    PHASE_RUN,
    PHASE_DRAIN,
    PHASE_DONE,
} phase_t;

typedef enum sub_state {
    SUB_IDLE = 0,
    SUB_PENDING, /* request sent, no status yet */
    SUB_LIVE,    /* 200 received, streaming */
    SUB_ENDED,
} sub_state_t;

typedef struct subconn subconn_t;

typedef struct sub {
    sl_load_run_t *run;
    subconn_t *sc;
    sl_load_req_t req;
    sl_load_sse_t sse;
    uint32_t index;
    uint32_t session;
    sl_load_sub_mode_t mode;
    sub_state_t state;
    bool have_id;
    uint64_t start_ns;
    uint64_t rx_ns;
    uint64_t received;
    uint64_t gaps;
    uint64_t out_of_order;
    uint64_t bad;
    uint64_t gap_events;
    uint64_t last_id;
    uint64_t ds_since;        /* --ds: appends received since the last control event */
} sub_t;

struct subconn {
    sl_load_run_t *run;
    sl_load_conn_t *conn;
    sl_load_sub_mode_t mode;
    uint32_t first;           /* its streams: run->subs[first .. first + count) */
    uint32_t count;
    uint32_t unresolved;      /* streams without a status yet */
    bool in_setup;            /* counted in run->connecting */
    bool closing_by_us;
    bool churn_free;
    sl_load_timer_t timer;    /* stall stages or churn hold */
    int stage;
};

typedef struct pub pub_t;

typedef struct pubreq {
    sl_load_req_t req;
    pub_t *pub;
    struct pubreq *next_free;
    uint32_t session;
    uint64_t intended_ns;
    char *body;
} pubreq_t;

struct pub {
    sl_load_run_t *run;
    sl_load_conn_t *conn;
    uint32_t index;
    uint64_t issued;
    uint64_t quota;           /* events this publisher may send */
    uint64_t offset_ns;       /* its phase within the schedule */
    double interval_ns;       /* between its events; 0 = as fast as acks allow */
    uint32_t inflight;
    bool open;
    bool failed;
    pubreq_t *reqs;
    pubreq_t *free;
};

typedef struct ctlreq {
    sl_load_req_t req;
    sl_load_run_t *run;
    char *buf;                /* response body (health) */
    size_t len;
    size_t cap;
} ctlreq_t;

#define RUN_HEALTH_BODY_MAX 65536
#define RUN_PUT_WINDOW 16

struct sl_load_run {
    const sl_load_opts_t *o;
    struct sl_tls_ctx *tls;       /* --tls: the client context, else NULL */
    sl_load_loop_t *loop;
    sl_load_conn_cfg_t cfg_sub;
    sl_load_conn_cfg_t cfg_pub;
    sl_load_conn_cfg_t cfg_ctl;
    phase_t phase;
    uint64_t t0;
    uint64_t setup_deadline;
    uint64_t run_start;
    uint64_t run_end;
    uint64_t drain_deadline;
    uint64_t drain_end;
    uint64_t hard_deadline;
    /* subscribers: steady ones first, then churn slots */
    sub_t *subs;
    uint32_t nsubs;
    uint32_t nsubs_steady;
    subconn_t *scs;
    uint32_t nscs;
    uint32_t nscs_steady;
    uint32_t next_sc;
    bool subscribing;         /* setup: steady connections are being started */
    uint32_t connecting;
    uint32_t live;
    uint32_t *churn_free;
    uint32_t churn_free_len;
    uint64_t next_churn_ns;
    uint64_t churn_launched;
    uint32_t subs_failed;     /* subscribers whose checks failed */
    size_t sse_limit;
    /* publishers */
    pub_t *pubs;
    uint64_t *acked;          /* per session */
    /* control connection: PUTs, then /health */
    sl_load_conn_t *ctl;
    bool ctl_open;
    bool ctl_failed;
    ctlreq_t puts[RUN_PUT_WINDOW];
    uint32_t puts_next;
    uint32_t puts_inflight;
    uint32_t puts_done;
    ctlreq_t health;
    bool health_inflight;
    uint64_t health_sent_ns;    /* when the /health in flight was asked */
    sl_load_hist_t health_time; /* /health answer times during the run */
    sl_load_health_t last_health;
    bool have_health;
    /* measurements */
    sl_load_hist_t latency;
    sl_load_hist_t latency_from_send;
    sl_load_hist_t latency_lagging;
    sl_load_hist_t interval;
    sl_load_hist_t send_lag;
    sl_load_hist_t subscribe;
    uint64_t delivered;
    uint64_t delivered_lagging;
    uint64_t published;
    uint64_t last_sample_published;
    uint64_t last_sample_delivered;
    uint64_t next_sample_ns;
    double cpu_start;
    double cpu_last;
    sl_load_sample_t *samples;
    size_t sample_count;
    size_t sample_cap;
    sl_load_sub_result_t *sub_results;
    sl_load_result_t result;
    bool progress_tty;
    bool progress_on;
};

/* load_subs.c */
int sl_load__subs_alloc(sl_load_run_t *r);
/* Shared by the SSE and RPC subscribers (load_subs.c): a connection in
 * setup has all its subscriptions answered; a subscription ended (what
 * names it in the first errors printed); a subscriber connection closed. */
void sl_load__subs_resolve_setup(subconn_t *sc);
void sl_load__sub_done(sub_t *s, int err, const char *what);
void sl_load__sc_closed(subconn_t *sc);
void sl_load__subs_free(sl_load_run_t *r);
/* Starts steady subscriber connections up to the concurrency bound. */
void sl_load__subs_start_more(sl_load_run_t *r);
/* Arms the stall timers at the start of publishing. */
void sl_load__subs_arm_stalls(sl_load_run_t *r);
/* Starts churn subscribers due by now. */
void sl_load__subs_churn(sl_load_run_t *r, uint64_t now);
/* True when every live steady normal subscriber has all acked events. */
bool sl_load__subs_caught_up(const sl_load_run_t *r);
/* Closes every subscriber connection. */
void sl_load__subs_close_all(sl_load_run_t *r);
/* Fills r->sub_results and the order counters of r->result. */
void sl_load__subs_collect(sl_load_run_t *r);
/* Builds the SSE path for session s into out (SL_LOAD_PATH_MAX). */
void sl_load__session_path(const sl_load_run_t *r, uint32_t s, const char *suffix, char *out);

#endif
