/*
 * The run driver: control connection (session PUTs, /health), publishers
 * on an open-loop schedule, phase changes, once-a-second samples and the
 * progress line. Subscribers live in load_subs.c.
 *
 * Publishing is open-loop: publisher j's k-th event is due at
 *   run_start + offset_j + k * interval
 * whether or not earlier ones were answered. When the publisher's window
 * (--pub-inflight) is full, due events wait and keep their intended time,
 * so server stalls show up as latency rather than as a lower send rate.
 */
#include "tools/load/load_run_int.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "net/tls.h"
#include "runtime/base.h"
#include "runtime/clock.h"
#include "tools/load/load_event.h"
#include "tools/load/load_rpc.h"
#include "tools/load/load_rpc_subs.h"

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void on_alarm(int sig)
{
    static const char msg[] = "sluice-load: hard deadline passed, exiting\n";
    (void)sig;
    ssize_t w = write(2, msg, sizeof(msg) - 1);
    (void)w;
    _exit(SL_LOAD_EXIT_ERRORS);
}

static uint64_t secs(double s)
{
    return (uint64_t)(s * 1e9);
}

/* ---- publishers ---- */

static void on_pub_done(sl_load_req_t *req, int err)
{
    pubreq_t *pr = req->ctx;
    pub_t *p = pr->pub;
    sl_load_run_t *r = p->run;
    /* Durable Streams answers an append 204 No Content. */
    if (err == 0 && (req->status == 200 || (r->o->ds && req->status == 204))) {
        r->acked[pr->session]++;
        r->published++;
    } else {
        r->result.publish_errors++;
    }
    p->inflight--;
    pr->next_free = p->free;
    p->free = pr;
}

static const sl_load_req_cbs_t pub_cbs = {.on_done = on_pub_done};

/* A publish request's body buffer: the payload, or with RPC the params
 * around it. */
static size_t pub_body_bytes(const sl_load_opts_t *o)
{
    return o->size_bytes + (o->proto == SL_LOAD_PROTO_RPC ? SL_LOAD_RPC_PUBLISH_OVERHEAD : 0);
}

/* Fills pr's request with ev: a POST of the payload, or an RPC publish
 * whose data is the payload. Returns 0 or SL_ETOOBIG. */
static int pub_fill(sl_load_run_t *r, pubreq_t *pr, const sl_load_event_t *ev)
{
    const sl_load_opts_t *o = r->o;
    char *payload = pr->body;
    size_t len = o->size_bytes;
    if (o->proto == SL_LOAD_PROTO_RPC) {
        char sid[128];
        size_t off;
        int n = sl_load_rpc_session_id(o, pr->session, sid, sizeof(sid));
        int plen = n < 0 ? n
                         : sl_load_rpc_encode_publish(pr->body, pub_body_bytes(o), sid,
                                                      (size_t)n, o->size_bytes, o->durable, &off);
        if (plen < 0)
            return SL_ETOOBIG;
        payload = pr->body + off;
        len = (size_t)plen;
    } else {
        sl_load__session_path(r, pr->session,
                              o->ds ? "" : o->durable ? "/events?durable=1" : "/events",
                              pr->req.path);
    }
    if (sl_load_event_format(payload, o->size_bytes, ev) < 0)
        return SL_ETOOBIG;
    pr->req.body = pr->body;
    pr->req.body_len = len;
    return 0;
}

/* Sends one event due at intended. Returns 0, or SL_EFULL to wait. */
static int pub_issue(pub_t *p, uint64_t intended, uint64_t now)
{
    sl_load_run_t *r = p->run;
    const sl_load_opts_t *o = r->o;
    pubreq_t *pr = p->free;
    sl_assert(pr != NULL);
    pr->session = (uint32_t)((p->index + p->issued * o->publishers) % o->sessions);
    pr->intended_ns = intended;
    sl_load_event_t ev = {.intended_ns = intended, .publisher = p->index, .n = p->issued,
                          .send_delay_ns = now > intended ? now - intended : 0};
    if (pub_fill(r, pr, &ev) < 0)
        return SL_ETOOBIG;
    int rc = sl_load_conn_submit(p->conn, &pr->req);
    if (rc < 0)
        return rc;
    p->free = pr->next_free;
    p->inflight++;
    p->issued++;
    sl_load_hist_record(&r->send_lag, now > intended ? now - intended : 0);
    return 0;
}

static uint64_t pub_due(const pub_t *p)
{
    return p->run->run_start + p->offset_ns + (uint64_t)((double)p->issued * p->interval_ns);
}

/* Events publisher p should have sent by the end of the run and did not. */
static uint64_t pub_behind(const pub_t *p)
{
    const sl_load_run_t *r = p->run;
    if (p->interval_ns <= 0)
        return 0;
    uint64_t elapsed = r->run_end - r->run_start;
    if (elapsed <= p->offset_ns)
        return 0;
    uint64_t due = (uint64_t)((double)(elapsed - p->offset_ns - 1) / p->interval_ns) + 1;
    const sl_load_opts_t *o = r->o;
    if (o->events) {
        uint64_t quota = o->events / o->publishers + (p->index < o->events % o->publishers);
        if (due > quota)
            due = quota;
    }
    return due > p->issued ? due - p->issued : 0;
}

static void pub_pump(pub_t *p, uint64_t now)
{
    sl_load_run_t *r = p->run;
    /* Bounded by the window: each pass takes a free request or stops. */
    while (p->open && p->free && p->issued < p->quota) {
        uint64_t due = now;
        if (p->interval_ns > 0) {
            due = pub_due(p);
            if (due >= r->run_end) {
                p->quota = p->issued;
                break;
            }
            if (due > now)
                break;
        }
        int rc = pub_issue(p, due, now);
        if (rc == SL_EFULL)
            break;
        if (rc < 0) {
            r->result.publish_errors++;
            p->quota = p->issued;
            break;
        }
    }
}

static void on_pub_open(sl_load_conn_t *c, void *ctx)
{
    pub_t *p = ctx;
    p->open = true;
}

static void on_pub_close(sl_load_conn_t *c, int err, void *ctx)
{
    pub_t *p = ctx;
    if (p->run->phase != PHASE_DONE)
        p->run->result.conn_errors++;
    if (!p->open)
        p->failed = true;
    p->open = false;
    p->conn = NULL;
}

static int pubs_alloc(sl_load_run_t *r)
{
    const sl_load_opts_t *o = r->o;
    r->pubs = calloc(o->publishers, sizeof(*r->pubs));
    if (!r->pubs)
        return -ENOMEM;
    double interval = o->rate > 0 ? 1e9 * o->publishers / o->rate : 0;
    for (uint32_t j = 0; j < o->publishers; j++) {
        pub_t *p = &r->pubs[j];
        p->run = r;
        p->index = j;
        p->interval_ns = interval;
        p->offset_ns = (uint64_t)(interval * j / o->publishers);
        p->quota = UINT64_MAX;
        if (o->events)
            p->quota = o->events / o->publishers + (j < o->events % o->publishers);
        p->reqs = calloc(o->pub_inflight, sizeof(*p->reqs));
        if (!p->reqs)
            return -ENOMEM;
        for (uint32_t k = 0; k < o->pub_inflight; k++) {
            pubreq_t *pr = &p->reqs[k];
            pr->pub = p;
            pr->req.cbs = &pub_cbs;
            pr->req.ctx = pr;
            pr->req.method = o->proto == SL_LOAD_PROTO_RPC ? "publish" : "POST";
            pr->body = malloc(pub_body_bytes(o));
            if (!pr->body)
                return -ENOMEM;
            pr->next_free = p->free;
            p->free = pr;
        }
    }
    return 0;
}

static void pubs_free(sl_load_run_t *r)
{
    for (uint32_t j = 0; r->pubs && j < r->o->publishers; j++) {
        for (uint32_t k = 0; r->pubs[j].reqs && k < r->o->pub_inflight; k++)
            free(r->pubs[j].reqs[k].body);
        free(r->pubs[j].reqs);
    }
    free(r->pubs);
}

static bool pubs_idle(const sl_load_run_t *r)
{
    for (uint32_t j = 0; j < r->o->publishers; j++) {
        if (r->pubs[j].inflight)
            return false;
    }
    return true;
}

static bool pubs_exhausted(const sl_load_run_t *r)
{
    for (uint32_t j = 0; j < r->o->publishers; j++) {
        const pub_t *p = &r->pubs[j];
        if (p->open && p->issued < p->quota)
            return false;
    }
    return true;
}

/* ---- control connection: session PUTs, then /health ---- */

static void on_put_done(sl_load_req_t *req, int err)
{
    ctlreq_t *c = req->ctx;
    sl_load_run_t *r = c->run;
    r->puts_inflight--;
    r->puts_done++;
    /* 404/405/501: the server creates sessions otherwise (on publish or
     * subscribe); the subscribe step will tell. */
    if (err == 0 && req->status != 200 && req->status != 201 && req->status != 204 &&
        req->status != 404 && req->status != 405 && req->status != 501)
        fprintf(stderr, "sluice-load: PUT %s answered %d\n", req->path, req->status);
}

static const sl_load_req_cbs_t put_cbs = {.on_done = on_put_done};

/* Turns a PUT request into an RPC create [session]; params is the
 * caller's buffer of SL_LOAD_RPC_PARAMS_SMALL bytes. */
static int rpc_create_params(sl_load_run_t *r, ctlreq_t *c, char *params)
{
    char sid[128];
    int n = sl_load_rpc_session_id(r->o, r->puts_next, sid, sizeof(sid));
    int len = n < 0 ? n
                    : sl_load_rpc_encode_session(params, SL_LOAD_RPC_PARAMS_SMALL, sid, (size_t)n);
    if (len < 0)
        return len;
    c->req.method = "create";
    c->req.body = params;
    c->req.body_len = (size_t)len;
    return 0;
}

static void puts_pump(sl_load_run_t *r)
{
    for (uint32_t i = 0; i < RUN_PUT_WINDOW && r->ctl_open; i++) {
        ctlreq_t *c = &r->puts[i];
        if (c->req._conn || r->puts_next >= r->o->sessions)
            continue;
        c->run = r;
        c->req.cbs = &put_cbs;
        c->req.ctx = c;
        c->req.method = "PUT";
        /* A Durable Streams stream takes its content type from the PUT:
         * an empty body sends Content-Type text/plain. */
        c->req.body = r->o->ds ? "" : NULL;
        c->req.body_len = 0;
        sl_load__session_path(r, r->puts_next, "", c->req.path);
        char params[SL_LOAD_RPC_PARAMS_SMALL];
        if (r->o->proto == SL_LOAD_PROTO_RPC && rpc_create_params(r, c, params) < 0)
            return;
        int rc = sl_load_conn_submit(r->ctl, &c->req);
        c->req.body = NULL; /* RPC params are copied by the submit */
        if (rc < 0)
            return;
        r->puts_next++;
        r->puts_inflight++;
    }
}

static void on_health_body(sl_load_req_t *req, const char *data, size_t len)
{
    ctlreq_t *c = req->ctx;
    size_t n = len < c->cap - 1 - c->len ? len : c->cap - 1 - c->len;
    memcpy(c->buf + c->len, data, n);
    c->len += n;
}

static void on_health_done(sl_load_req_t *req, int err)
{
    ctlreq_t *c = req->ctx;
    sl_load_run_t *r = c->run;
    r->health_inflight = false;
    c->buf[c->len] = '\0';
    int prc = r->o->proto == SL_LOAD_PROTO_RPC
                  ? sl_load_rpc_health_parse(c->buf, c->len, &r->last_health)
                  : sl_load_health_parse(c->buf, &r->last_health);
    if (err == 0 && req->status == 200 && prc == 0) {
        r->have_health = true;
        sl_load_hist_record(&r->health_time, sl_clock_now_ns() - r->health_sent_ns);
    } else if (err == 0) {
        /* No /health (or not JSON we understand): stop asking. */
        r->result.no_health = true;
    }
}

static const sl_load_req_cbs_t health_cbs = {.on_body = on_health_body,
                                             .on_done = on_health_done};

static void health_poll(sl_load_run_t *r)
{
    if (!r->o->health || r->result.no_health || r->health_inflight || !r->ctl_open)
        return;
    ctlreq_t *c = &r->health;
    c->run = r;
    c->len = 0;
    c->req.cbs = &health_cbs;
    c->req.ctx = c;
    c->req.method = r->o->proto == SL_LOAD_PROTO_RPC ? "health" : "GET";
    c->req.body = NULL; /* RPC: no params */
    snprintf(c->req.path, sizeof(c->req.path), "/health");
    r->health_sent_ns = sl_clock_now_ns();
    if (sl_load_conn_submit(r->ctl, &c->req) == 0)
        r->health_inflight = true;
}

static void on_ctl_open(sl_load_conn_t *c, void *ctx)
{
    sl_load_run_t *r = ctx;
    r->ctl_open = true;
}

static void on_ctl_close(sl_load_conn_t *c, int err, void *ctx)
{
    sl_load_run_t *r = ctx;
    if (!r->ctl_open)
        r->ctl_failed = true;
    else if (r->phase != PHASE_DONE)
        r->result.conn_errors++;
    r->ctl_open = false;
    r->ctl = NULL;
}

/* ---- samples and progress ---- */

static void sample_target(sl_load_run_t *r, sl_load_sample_t *s, double dt)
{
    const sl_load_opts_t *o = r->o;
    s->rss_bytes = r->have_health ? r->last_health.rss_bytes : -1;
    s->fds = r->have_health ? r->last_health.open_fds : -1;
    s->lag_ms = r->have_health ? r->last_health.loop_lag_ms_max : -1;
    s->cpu_pct = -1;
    if (o->target_pid <= 0)
        return;
    double cpu;
    int64_t v;
    if (sl_load_target_cpu(o->target_pid, &cpu) == 0) {
        s->cpu_pct = dt > 0 ? 100.0 * (cpu - r->cpu_last) / dt : 0;
        r->cpu_last = cpu;
    }
    if (sl_load_target_rss(o->target_pid, &v) == 0)
        s->rss_bytes = v;
    if (sl_load_target_fds(o->target_pid, &v) == 0)
        s->fds = v;
}

static void progress(sl_load_run_t *r, const sl_load_sample_t *s, double dt)
{
    if (!r->progress_on)
        return;
    char rss[32] = "-", cpu[32] = "-";
    if (s->rss_bytes >= 0)
        snprintf(rss, sizeof(rss), "%.0fMiB", (double)s->rss_bytes / 1048576.0);
    if (s->cpu_pct >= 0)
        snprintf(cpu, sizeof(cpu), "%.0f%%", s->cpu_pct);
    fprintf(stderr,
            "%s[%6.1fs] %s pub %.0f/s deliv %.0f/s p99 %.3fms max %.3fms live %u err %" PRIu64
            " rss %s cpu %s%s",
            r->progress_tty ? "\r\033[K" : "", s->t_s, r->phase == PHASE_RUN ? "run" : "drain",
            (double)s->published / dt, (double)s->delivered / dt, (double)s->p99_ns / 1e6,
            (double)s->max_ns / 1e6, s->subscribers, s->errors, rss, cpu,
            r->progress_tty ? "" : "\n");
    fflush(stderr);
}

static void take_sample(sl_load_run_t *r, uint64_t now)
{
    if (r->sample_count == r->sample_cap)
        return; /* the series is sized for the whole run; past it, stop */
    sl_load_sample_t *s = &r->samples[r->sample_count];
    double prev_t = r->sample_count ? r->samples[r->sample_count - 1].t_s : 0;
    s->t_s = (double)(now - r->run_start) / 1e9;
    double dt = s->t_s - prev_t > 0.001 ? s->t_s - prev_t : 0.001;
    s->published = r->published - r->last_sample_published;
    s->delivered = r->delivered - r->last_sample_delivered;
    r->last_sample_published = r->published;
    r->last_sample_delivered = r->delivered;
    s->p50_ns = sl_load_hist_percentile(&r->interval, 50);
    s->p90_ns = sl_load_hist_percentile(&r->interval, 90);
    s->p99_ns = sl_load_hist_percentile(&r->interval, 99);
    s->p999_ns = sl_load_hist_percentile(&r->interval, 99.9);
    s->max_ns = r->interval.total_count ? r->interval.max : 0;
    sl_load_hist_init(&r->interval);
    s->errors = r->result.conn_errors + r->result.stream_errors;
    s->subscribers = r->live;
    sample_target(r, s, dt);
    r->sample_count++;
    progress(r, s, dt);
    health_poll(r);
}

/* ---- phases ---- */

typedef bool (*cond_fn)(const sl_load_run_t *r);

/* Steps the loop until cond holds, the deadline passes or a stop signal
 * arrives. Returns true when cond held. */
static bool wait_for(sl_load_run_t *r, cond_fn cond, uint64_t deadline)
{
    for (;;) {
        if (cond(r))
            return true;
        uint64_t now = sl_clock_now_ns();
        if (now >= deadline || stop_requested)
            return false;
        if (r->subscribing && r->o->proto == SL_LOAD_PROTO_RPC)
            sl_load__rpc_subs_start_more(r);
        else if (r->subscribing)
            sl_load__subs_start_more(r);
        uint64_t wake = now + 50 * SL_NS_PER_MS;
        if (sl_load_loop_step(r->loop, wake < deadline ? wake : deadline) < 0)
            return false;
    }
}

static bool ctl_settled(const sl_load_run_t *r)
{
    return r->ctl_open || r->ctl_failed;
}

static bool puts_settled(const sl_load_run_t *r)
{
    if (!r->ctl_open)
        return true;
    sl_load_run_t *m = (sl_load_run_t *)r;
    puts_pump(m);
    return r->puts_done >= r->o->sessions;
}

static bool subs_settled(const sl_load_run_t *r)
{
    return r->next_sc >= r->nscs_steady && r->connecting == 0;
}

static bool pubs_settled(const sl_load_run_t *r)
{
    for (uint32_t j = 0; j < r->o->publishers; j++) {
        if (!r->pubs[j].open && !r->pubs[j].failed && r->pubs[j].conn)
            return false;
    }
    return true;
}

static int setup(sl_load_run_t *r)
{
    int err;
    r->ctl = sl_load_conn_create(r->loop, &r->cfg_ctl, on_ctl_open, on_ctl_close, r, &err);
    if (!r->ctl) {
        snprintf(r->result.verdict, sizeof(r->result.verdict), "cannot connect: %s",
                 sl_strerror(err));
        return SL_LOAD_EXIT_UNREACHABLE;
    }
    wait_for(r, ctl_settled, r->setup_deadline);
    if (!r->ctl_open) {
        snprintf(r->result.verdict, sizeof(r->result.verdict), "could not reach %.200s",
                 sl_load_opts_target(r->o));
        return SL_LOAD_EXIT_UNREACHABLE;
    }
    if (r->o->create && !wait_for(r, puts_settled, r->setup_deadline))
        fprintf(stderr, "sluice-load: creating sessions did not finish in time\n");
    for (uint32_t j = 0; j < r->o->publishers; j++) {
        pub_t *p = &r->pubs[j];
        p->conn = sl_load_conn_create(r->loop, &r->cfg_pub, on_pub_open, on_pub_close, p, &err);
        if (!p->conn)
            p->failed = true;
    }
    r->subscribing = true;
    wait_for(r, subs_settled, r->setup_deadline);
    r->subscribing = false;
    wait_for(r, pubs_settled, r->setup_deadline);
    for (uint32_t j = 0; j < r->o->publishers; j++) {
        if (!r->pubs[j].open) {
            snprintf(r->result.verdict, sizeof(r->result.verdict),
                     "publisher %u could not connect", j);
            return SL_LOAD_EXIT_UNREACHABLE;
        }
    }
    if (r->nsubs_steady && r->live == 0) {
        snprintf(r->result.verdict, sizeof(r->result.verdict), "no subscriber could subscribe");
        return r->result.conn_errors >= r->nscs_steady ? SL_LOAD_EXIT_UNREACHABLE
                                                       : SL_LOAD_EXIT_ERRORS;
    }
    return 0;
}

static uint64_t next_wake(const sl_load_run_t *r, uint64_t now)
{
    uint64_t wake = now + 100 * SL_NS_PER_MS;
    if (r->next_sample_ns < wake)
        wake = r->next_sample_ns;
    if (r->run_end < wake)
        wake = r->run_end;
    if (r->o->churn_rate > 0 && r->next_churn_ns < wake)
        wake = r->next_churn_ns;
    for (uint32_t j = 0; j < r->o->publishers; j++) {
        const pub_t *p = &r->pubs[j];
        if (p->open && p->free && p->issued < p->quota && p->interval_ns > 0) {
            uint64_t due = pub_due(p);
            if (due < wake)
                wake = due;
        }
    }
    return wake;
}

static bool any_pub_open(const sl_load_run_t *r)
{
    for (uint32_t j = 0; j < r->o->publishers; j++) {
        if (r->pubs[j].open)
            return true;
    }
    return false;
}

static void run_phase(sl_load_run_t *r)
{
    r->phase = PHASE_RUN;
    r->run_start = sl_clock_now_ns();
    r->run_end = r->run_start + secs(r->o->duration_s);
    r->next_sample_ns = r->run_start + SL_NS_PER_S;
    r->next_churn_ns = r->run_start;
    if (r->o->target_pid > 0 && sl_load_target_cpu(r->o->target_pid, &r->cpu_start) == 0)
        r->cpu_last = r->cpu_start;
    else
        r->cpu_start = -1;
    sl_load__subs_arm_stalls(r);
    health_poll(r);
    for (;;) {
        uint64_t now = sl_clock_now_ns();
        if (stop_requested) {
            r->result.interrupted = true;
            break;
        }
        if (now >= r->run_end || pubs_exhausted(r) || !any_pub_open(r))
            break;
        for (uint32_t j = 0; j < r->o->publishers; j++)
            pub_pump(&r->pubs[j], now);
        sl_load__subs_churn(r, now);
        if (now >= r->next_sample_ns) {
            take_sample(r, now);
            r->next_sample_ns += SL_NS_PER_S;
        }
        if (sl_load_loop_step(r->loop, next_wake(r, now)) < 0)
            break;
    }
    r->run_end = sl_clock_now_ns();
}

static void drain_phase(sl_load_run_t *r)
{
    r->phase = PHASE_DRAIN;
    uint64_t deadline = r->run_end + secs(r->o->drain_s);
    bool done = false;
    for (;;) {
        uint64_t now = sl_clock_now_ns();
        done = pubs_idle(r) && sl_load__subs_caught_up(r);
        if (done || now >= deadline || stop_requested || now >= r->hard_deadline)
            break;
        if (now >= r->next_sample_ns) {
            take_sample(r, now);
            r->next_sample_ns += SL_NS_PER_S;
        }
        uint64_t wake = now + 10 * SL_NS_PER_MS;
        if (sl_load_loop_step(r->loop, wake < deadline ? wake : deadline) < 0)
            break;
    }
    r->drain_end = sl_clock_now_ns();
    r->result.drain_timed_out = !done && !stop_requested;
    r->result.interrupted |= stop_requested != 0;
    /* A last, partial sample so the series covers the drain. */
    double last_t = r->sample_count ? r->samples[r->sample_count - 1].t_s : 0;
    if ((double)(r->drain_end - r->run_start) / 1e9 - last_t > 0.1)
        take_sample(r, r->drain_end);
}

static void finish(sl_load_run_t *r)
{
    r->phase = PHASE_DONE;
    if (r->ctl)
        sl_load_conn_close(r->ctl, false);
    for (uint32_t j = 0; j < r->o->publishers; j++) {
        if (r->pubs[j].conn)
            sl_load_conn_close(r->pubs[j].conn, false);
    }
    sl_load__subs_close_all(r);
    uint64_t deadline = sl_clock_now_ns() + 3 * SL_NS_PER_S;
    while (sl_load_loop_ops_inflight(r->loop) > 0 && sl_clock_now_ns() < deadline)
        sl_load_loop_step(r->loop, sl_clock_now_ns() + 50 * SL_NS_PER_MS);
}

/* ---- results ---- */

static void target_totals(sl_load_run_t *r)
{
    sl_load_result_t *res = &r->result;
    res->target_cpu_s = -1;
    double cpu;
    if (r->o->target_pid > 0 && r->cpu_start >= 0 &&
        sl_load_target_cpu(r->o->target_pid, &cpu) == 0)
        res->target_cpu_s = cpu - r->cpu_start;
    res->target_rss_max = -1;
    res->target_rss_end = -1;
    for (size_t i = 0; i < r->sample_count; i++) {
        int64_t v = r->samples[i].rss_bytes;
        if (v > res->target_rss_max)
            res->target_rss_max = v;
        if (v >= 0)
            res->target_rss_end = v;
    }
}

static int verdict(sl_load_run_t *r)
{
    sl_load_result_t *res = &r->result;
    char *v = res->verdict;
    size_t n = sizeof(res->verdict);
    if (res->hard_deadline) {
        snprintf(v, n, "hard deadline reached");
    } else if (res->conn_errors || res->stream_errors || res->subscribe_errors ||
               res->publish_errors) {
        snprintf(v, n, "errors: conn %" PRIu64 " stream %" PRIu64 " subscribe %" PRIu64
                       " publish %" PRIu64,
                 res->conn_errors, res->stream_errors, res->subscribe_errors,
                 res->publish_errors);
    } else if (r->subs_failed) {
        snprintf(v, n, "%u subscribers failed checks (gaps %" PRIu64 ", out-of-order %" PRIu64
                       ", count mismatches %" PRIu64 ")",
                 r->subs_failed, res->gaps, res->out_of_order, res->count_mismatches);
    } else if (res->drain_timed_out) {
        snprintf(v, n, "deliveries still missing when the drain timed out");
    } else if (res->published == 0) {
        snprintf(v, n, "nothing was published");
    } else {
        snprintf(v, n, "ok");
        return SL_LOAD_EXIT_OK;
    }
    return SL_LOAD_EXIT_ERRORS;
}

static void build_result(sl_load_run_t *r, int setup_rc)
{
    sl_load_result_t *res = &r->result;
    res->opts = r->o;
    uint64_t setup_end = r->run_start ? r->run_start : sl_clock_now_ns();
    res->setup_s = (double)(setup_end - r->t0) / 1e9;
    res->run_s = r->run_start ? (double)(r->run_end - r->run_start) / 1e9 : 0;
    res->drain_s = r->run_start ? (double)(r->drain_end - r->run_end) / 1e9 : 0;
    res->published = r->published;
    for (uint32_t j = 0; r->run_start && j < r->o->publishers; j++)
        res->behind_schedule += pub_behind(&r->pubs[j]);
    res->delivered = r->delivered;
    res->delivered_lagging = r->delivered_lagging;
    res->latency = &r->latency;
    res->latency_from_send = &r->latency_from_send;
    res->latency_lagging = &r->latency_lagging;
    res->send_lag = &r->send_lag;
    res->subscribe_latency = &r->subscribe;
    res->health_latency = &r->health_time;
    res->samples = r->samples;
    res->sample_count = r->sample_count;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    res->self_cpu_s = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                      (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    target_totals(r);
    sl_load__subs_collect(r);
    if (setup_rc != 0)
        res->exit_code = setup_rc;
    else
        res->exit_code = verdict(r);
}

static void raise_fd_limit(uint64_t want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= want)
        return;
    rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
    setrlimit(RLIMIT_NOFILE, &rl);
}

static void init_cfgs(sl_load_run_t *r)
{
    const sl_load_opts_t *o = r->o;
    sl_load_conn_cfg_t base = {
        .proto = o->proto,
        .addr = (const struct sockaddr *)&o->addr,
        .addr_len = o->addr_len,
        .authority = o->authority,
        .token = o->token[0] ? o->token : NULL,
        .recv_bytes = 16384,
        .send_bytes = 16384,
        .h2_stream_window = 1u << 20,
        .h2_conn_window = 1u << 26,
        .tls = r->tls,
        .tls_host = o->tls_host,
    };
    r->cfg_ctl = base;
    r->cfg_sub = base;
    r->cfg_sub.rcvbuf_bytes = (int)o->rcvbuf;
    r->cfg_sub.recv_bytes = o->streams_per_conn > 1 ? 65536 : 16384;
    /* RPC subscribe calls are framed into the output buffer at once. */
    if (o->proto == SL_LOAD_PROTO_RPC)
        r->cfg_sub.send_bytes = 16384 + (size_t)o->streams_per_conn * SL_LOAD_RPC_PARAMS_SMALL;
    r->cfg_pub = base;
    /* Room for a full window of requests, so the window, not the buffer,
     * bounds what is outstanding. */
    r->cfg_pub.send_bytes = 16384 + (size_t)o->pub_inflight * (o->size_bytes + 512);
}

sl_load_run_t *sl_load_run_create(const sl_load_opts_t *o)
{
    sl_load_run_t *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->o = o;
    if (o->tls) {
        char err[512];
        int rc = sl_tls_ctx_create_client(&r->tls, o->cacert[0] ? o->cacert : NULL, !o->insecure,
                                          err, sizeof err);
        if (rc != 0) {
            fprintf(stderr, "sluice-load: TLS: %s\n", err);
            free(r);
            return NULL;
        }
    }
    init_cfgs(r);
    sl_load_hist_init(&r->latency);
    sl_load_hist_init(&r->latency_from_send);
    sl_load_hist_init(&r->latency_lagging);
    sl_load_hist_init(&r->interval);
    sl_load_hist_init(&r->send_lag);
    sl_load_hist_init(&r->subscribe);
    sl_load_hist_init(&r->health_time);
    r->sample_cap = (size_t)(o->duration_s + o->drain_s) + 4;
    r->samples = calloc(r->sample_cap, sizeof(*r->samples));
    r->acked = calloc(o->sessions, sizeof(*r->acked));
    r->sub_results = calloc(o->subscribers ? o->subscribers : 1, sizeof(*r->sub_results));
    r->health.buf = malloc(RUN_HEALTH_BODY_MAX);
    r->health.cap = RUN_HEALTH_BODY_MAX;
    if (!r->samples || !r->acked || !r->sub_results || !r->health.buf ||
        sl_load__subs_alloc(r) < 0 || pubs_alloc(r) < 0) {
        sl_load_run_destroy(r);
        return NULL;
    }
    raise_fd_limit((uint64_t)r->nscs + o->publishers + 64);
    r->loop = sl_load_loop_create(4096);
    if (!r->loop) {
        sl_load_run_destroy(r);
        return NULL;
    }
    return r;
}

int sl_load_run_execute(sl_load_run_t *r)
{
    const sl_load_opts_t *o = r->o;
    struct sigaction sa = {.sa_handler = on_stop_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGALRM, on_alarm);
    double bound_s = o->connect_timeout_s + o->duration_s + o->drain_s;
    /* The loop's own deadline; the alarm is the backstop should the loop
     * itself ever wedge. */
    alarm((unsigned)bound_s + 30);
    r->progress_on = o->progress != SL_LOAD_PROGRESS_OFF;
    r->progress_tty = o->progress == SL_LOAD_PROGRESS_TTY ||
                      (o->progress == SL_LOAD_PROGRESS_AUTO && isatty(2));
    r->t0 = sl_clock_now_ns();
    r->setup_deadline = r->t0 + secs(o->connect_timeout_s);
    r->hard_deadline = r->t0 + secs(bound_s + 10);
    int rc = setup(r);
    if (rc == 0) {
        run_phase(r);
        drain_phase(r);
        if (sl_clock_now_ns() >= r->hard_deadline)
            r->result.hard_deadline = true;
    }
    if (r->progress_tty && r->sample_count)
        fputc('\n', stderr);
    finish(r);
    build_result(r, rc);
    alarm(0);
    return r->result.exit_code;
}

const sl_load_result_t *sl_load_run_result(const sl_load_run_t *r)
{
    return &r->result;
}

void sl_load_run_destroy(sl_load_run_t *r)
{
    if (!r)
        return;
    if (r->loop && sl_load_loop_ops_inflight(r->loop) == 0)
        sl_load_loop_destroy(r->loop);
    sl_load__subs_free(r);
    pubs_free(r);
    free(r->samples);
    free(r->acked);
    free(r->sub_results);
    free(r->health.buf);
    if (r->tls)
        sl_tls_ctx_release(r->tls);
    free(r);
}
