/*
 * The subscriber side of a run: steady SSE subscribers (normal, slow or
 * stalled connections), churn subscribers that come and go, and the
 * per-subscriber bookkeeping that turns every received event into a
 * latency sample and an order check.
 *
 * Order is checked by the SSE id: a subscriber that started at seq 1 must
 * see 1, 2, 3, … with nothing skipped (a gap) or repeated (out of order).
 * Latency is receive time minus the intended send time carried in the
 * payload (load_event.h).
 */
#include "tools/load/load_run_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/base.h"
#include "runtime/clock.h"
#include "tools/load/load_event.h"

void sl_load__session_path(const sl_load_run_t *r, uint32_t s, const char *suffix, char *out)
{
    int n = snprintf(out, SL_LOAD_PATH_MAX, r->o->ds ? "/v1/stream/%s-%u%s" : "/v1/sessions/%s-%u%s",
                     r->o->session_prefix, s, suffix);
    sl_assert(n > 0 && n < SL_LOAD_PATH_MAX);
}

/* Longest Durable Streams SSE event a reader takes (policy beyond: the
 * stream is an error, as for any over-long event). */
#define SL_LOAD_DS_EVENT_BYTES_MAX ((size_t)2 << 20)

static bool lagging(const sub_t *s)
{
    return s->mode == SL_LOAD_MODE_SLOW || s->mode == SL_LOAD_MODE_STALL;
}

static void check_id(sub_t *s, const sl_load_sse_event_t *ev)
{
    uint64_t id;
    if (!ev->id_in_block || sl_load_parse_u64(ev->id, ev->id_len, &id) < 0)
        return;
    uint64_t want;
    if (s->have_id)
        want = s->last_id + 1;
    else if (s->run->o->from_first && s->mode != SL_LOAD_MODE_CHURN)
        want = 1;
    else
        want = id; /* a live subscription starts wherever the stream is */
    if (id > want)
        s->gaps += id - want;
    if (id < want) {
        s->out_of_order++;
        return;
    }
    s->last_id = id;
    s->have_id = true;
}

static void record(sub_t *s, const char *data, size_t len);

/* Durable Streams SSE: a data event holds the appends since the last
 * control event, back to back (each --size bytes, text/plain); a control
 * event's id: is the offset reached ("0000000000000000_" and the seq), so
 * a jump beyond what was received is a gap. */
static void on_ds_event(sub_t *s, const sl_load_sse_event_t *ev)
{
    size_t size = s->run->o->size_bytes;
    if (ev->type_len == 4 && memcmp(ev->type, "data", 4) == 0) {
        for (size_t off = 0; off + size <= ev->data_len; off += size) {
            s->received++;
            s->ds_since++;
            record(s, ev->data + off, size);
        }
        if (ev->data_len % size)
            s->bad++;
        return;
    }
    uint64_t seq;
    if (!ev->id_in_block || ev->id_len != 33 || sl_load_parse_u64(ev->id + 17, 16, &seq) < 0)
        return;
    if (s->have_id && seq > s->last_id + s->ds_since)
        s->gaps += seq - s->last_id - s->ds_since;
    if (s->have_id && seq < s->last_id + s->ds_since)
        s->out_of_order++;
    s->last_id = seq;
    s->have_id = true;
    s->ds_since = 0;
}

static void on_event(const sl_load_sse_event_t *ev, void *ctx)
{
    sub_t *s = ctx;
    sl_load_run_t *r = s->run;
    if (r->o->ds) {
        on_ds_event(s, ev);
        return;
    }
    if (ev->type_len == 10 && memcmp(ev->type, "sluice.gap", 10) == 0) {
        /* The server says what this reader missed; the next id continues
         * after it. */
        s->gap_events++;
        uint64_t id;
        if (ev->id_in_block && sl_load_parse_u64(ev->id, ev->id_len, &id) == 0 &&
            (!s->have_id || id > s->last_id)) {
            s->last_id = id;
            s->have_id = true;
        }
        return;
    }
    s->received++;
    check_id(s, ev);
    record(s, ev->data, ev->data_len);
}

/* One delivered event's payload: latency figures. */
static void record(sub_t *s, const char *data, size_t len)
{
    sl_load_run_t *r = s->run;
    sl_load_event_t e;
    if (sl_load_event_parse(data, len, &e) < 0) {
        s->bad++;
        return;
    }
    uint64_t lat = s->rx_ns > e.intended_ns ? s->rx_ns - e.intended_ns : 0;
    if (lagging(s)) {
        r->delivered_lagging++;
        sl_load_hist_record(&r->latency_lagging, lat);
    } else {
        sl_load_hist_record(&r->latency, lat);
        sl_load_hist_record(&r->interval, lat);
        uint64_t from_send = lat > e.send_delay_ns ? lat - e.send_delay_ns : 0;
        sl_load_hist_record(&r->latency_from_send, from_send);
    }
    r->delivered++;
}

void sl_load__subs_resolve_setup(subconn_t *sc)
{
    if (sc->in_setup) {
        sc->in_setup = false;
        sl_assert(sc->run->connecting > 0);
        sc->run->connecting--;
    }
}

static void on_sub_headers(sl_load_req_t *req)
{
    sub_t *s = req->ctx;
    sl_load_run_t *r = s->run;
    if (s->sc->unresolved && --s->sc->unresolved == 0)
        sl_load__subs_resolve_setup(s->sc);
    if (req->status != 200) {
        if (r->result.subscribe_errors++ < 3)
            fprintf(stderr, "sluice-load: GET %s answered %d\n", req->path, req->status);
        s->state = SUB_ENDED;
        if (s->mode == SL_LOAD_MODE_CHURN && s->sc->conn) {
            /* Counted already; free the slot for the next churner. */
            s->sc->closing_by_us = true;
            sl_load_conn_close(s->sc->conn, false);
        }
        return;
    }
    s->state = SUB_LIVE;
    r->live++;
    uint64_t now = sl_clock_now_ns();
    sl_load_hist_record(&r->subscribe, now - s->start_ns);
    if (s->mode == SL_LOAD_MODE_CHURN) {
        r->result.churn_started++;
        sl_load_loop_timer_set(r->loop, &s->sc->timer,
                               now + (uint64_t)(r->o->churn_hold_s * 1e9));
    }
}

static void on_sub_body(sl_load_req_t *req, const char *data, size_t len)
{
    sub_t *s = req->ctx;
    if (s->state != SUB_LIVE)
        return; /* an error body */
    s->rx_ns = sl_clock_now_ns();
    if (sl_load_sse_feed(&s->sse, data, len) < 0) {
        s->bad++;
        s->run->result.stream_errors++;
        s->state = SUB_ENDED;
        s->run->live--;
        sl_load_conn_close(s->sc->conn, false);
    }
}

void sl_load__sub_done(sub_t *s, int err, const char *what)
{
    sl_load_run_t *r = s->run;
    bool expected = s->sc->closing_by_us || r->phase == PHASE_DONE;
    if (s->state == SUB_PENDING) {
        if (s->sc->unresolved && --s->sc->unresolved == 0)
            sl_load__subs_resolve_setup(s->sc);
        if (!expected && r->result.subscribe_errors++ < 3)
            fprintf(stderr, "sluice-load: %s ended before an answer (%s)\n", what,
                    sl_strerror(err));
    } else if (s->state == SUB_LIVE) {
        r->live--; /* the server ended the stream, or the connection was lost */
        if (!expected)
            r->result.stream_errors++;
    }
    s->state = SUB_ENDED;
}

static void on_sub_done(sl_load_req_t *req, int err)
{
    char what[sizeof req->path + 8];
    snprintf(what, sizeof what, "GET %s", req->path);
    sl_load__sub_done(req->ctx, err, what);
}

static const sl_load_req_cbs_t sub_cbs = {
    .on_headers = on_sub_headers,
    .on_body = on_sub_body,
    .on_done = on_sub_done,
};

void sl_load__sc_closed(subconn_t *sc)
{
    sl_load_run_t *r = sc->run;
    if (!sc->closing_by_us && r->phase != PHASE_DONE)
        r->result.conn_errors++;
    sl_load__subs_resolve_setup(sc);
    sc->conn = NULL;
}

static void on_sc_close(sl_load_conn_t *c, int err, void *ctx)
{
    subconn_t *sc = ctx;
    sl_load_run_t *r = sc->run;
    (void)c;
    (void)err;
    sl_load__sc_closed(sc);
    if (sc->mode == SL_LOAD_MODE_CHURN) {
        if (sc->closing_by_us)
            r->result.churn_completed++;
        sc->churn_free = true;
        r->churn_free[r->churn_free_len++] = (uint32_t)(sc - r->scs);
    }
}

static void start_sc(sl_load_run_t *r, subconn_t *sc, bool setup)
{
    int err;
    sc->closing_by_us = false;
    sc->conn = sl_load_conn_create(r->loop, &r->cfg_sub, NULL, on_sc_close, sc, &err);
    if (!sc->conn) {
        r->result.conn_errors++;
        return;
    }
    if (sc->mode == SL_LOAD_MODE_SLOW)
        sl_load_conn_set_read_rate(sc->conn, r->o->slow_rate);
    /* Steady connections count against --connect-concurrency until every
     * stream has its status; churners never hold up the setup phase. */
    sc->in_setup = setup;
    sc->unresolved = sc->count;
    if (setup)
        r->connecting++;
    uint64_t now = sl_clock_now_ns();
    bool first = r->o->from_first && sc->mode != SL_LOAD_MODE_CHURN;
    const char *suffix = r->o->ds ? (first ? "?offset=-1&live=sse" : "?offset=now&live=sse")
                                  : first ? "/events?from=1" : "/events";
    for (uint32_t i = 0; i < sc->count; i++) {
        sub_t *s = &r->subs[sc->first + i];
        s->state = SUB_PENDING;
        s->start_ns = now;
        s->req.cbs = &sub_cbs;
        s->req.ctx = s;
        s->req.method = "GET";
        s->req.sse = true;
        s->req.body = NULL;
        sl_load__session_path(r, s->session, suffix, s->req.path);
        if (sl_load_conn_submit(sc->conn, &s->req) < 0) {
            s->state = SUB_ENDED;
            r->result.subscribe_errors++;
            if (--sc->unresolved == 0)
                sl_load__subs_resolve_setup(sc);
        }
    }
}

void sl_load__subs_start_more(sl_load_run_t *r)
{
    while (r->next_sc < r->nscs_steady && r->connecting < r->o->connect_concurrency)
        start_sc(r, &r->scs[r->next_sc++], true);
}

static void on_sc_timer(sl_load_timer_t *t)
{
    subconn_t *sc = sl_container_of(t, subconn_t, timer);
    sl_load_run_t *r = sc->run;
    if (!sc->conn || r->phase == PHASE_DONE)
        return;
    if (sc->mode == SL_LOAD_MODE_CHURN) {
        sc->closing_by_us = true;
        sl_load_conn_close(sc->conn, false);
        return;
    }
    sl_assert(sc->mode == SL_LOAD_MODE_STALL);
    if (sc->stage == 0) {
        sc->stage = 1;
        sl_load_conn_set_reading(sc->conn, false);
        sl_load_loop_timer_set(r->loop, &sc->timer,
                               t->at_ns + (uint64_t)(r->o->stall_for_s * 1e9));
        return;
    }
    sc->stage = 2;
    switch (r->o->stall_then) {
    case SL_LOAD_STALL_RESUME:
        sl_load_conn_set_reading(sc->conn, true);
        break;
    case SL_LOAD_STALL_CLOSE:
        sc->closing_by_us = true;
        sl_load_conn_close(sc->conn, true);
        break;
    case SL_LOAD_STALL_HOLD:
        break;
    }
}

void sl_load__subs_arm_stalls(sl_load_run_t *r)
{
    for (uint32_t i = 0; i < r->nscs_steady; i++) {
        subconn_t *sc = &r->scs[i];
        if (sc->mode == SL_LOAD_MODE_STALL && sc->conn)
            sl_load_loop_timer_set(r->loop, &sc->timer,
                                   r->run_start + (uint64_t)(r->o->stall_after_s * 1e9));
    }
}

void sl_load__subs_churn(sl_load_run_t *r, uint64_t now)
{
    if (r->o->churn_rate <= 0)
        return;
    uint64_t step = (uint64_t)(1e9 / r->o->churn_rate);
    if (step == 0)
        step = 1;
    /* Bounded per tick; a loop that fell behind catches up over ticks. */
    for (int i = 0; i < 1000 && r->next_churn_ns <= now; i++) {
        r->next_churn_ns += step;
        if (r->churn_free_len == 0) {
            r->result.churn_skipped++;
            continue;
        }
        subconn_t *sc = &r->scs[r->churn_free[--r->churn_free_len]];
        sc->churn_free = false;
        sub_t *s = &r->subs[sc->first];
        s->session = (uint32_t)(r->churn_launched++ % r->o->sessions);
        s->have_id = false;
        s->last_id = 0;
        sl_load_sse_deinit(&s->sse);
        if (sl_load_sse_init(&s->sse, r->sse_limit, on_event, s) < 0) {
            r->result.stream_errors++;
            continue;
        }
        start_sc(r, sc, false);
    }
}

/* Bresenham spread: exactly round(n * f) of n indexes, evenly spaced. */
static bool pick(uint32_t i, double f)
{
    return (uint64_t)((i + 1) * f + 1e-9) > (uint64_t)(i * f + 1e-9);
}

static void assign_modes(sl_load_run_t *r)
{
    const sl_load_opts_t *o = r->o;
    double lag = o->slow_fraction + o->stall_fraction;
    uint32_t lag_index = 0;
    for (uint32_t i = 0; i < r->nscs_steady; i++) {
        subconn_t *sc = &r->scs[i];
        sc->mode = SL_LOAD_MODE_NORMAL;
        if (lag > 0 && pick(i, lag)) {
            sc->mode = pick(lag_index, o->slow_fraction / lag) ? SL_LOAD_MODE_SLOW
                                                               : SL_LOAD_MODE_STALL;
            lag_index++;
        }
    }
}

static int init_sub(sl_load_run_t *r, uint32_t index, subconn_t *sc, size_t limit)
{
    sub_t *s = &r->subs[index];
    s->run = r;
    s->sc = sc;
    s->index = index;
    s->mode = sc->mode;
    s->session = index % r->o->sessions;
    return sl_load_sse_init(&s->sse, limit, on_event, s);
}

int sl_load__subs_alloc(sl_load_run_t *r)
{
    const sl_load_opts_t *o = r->o;
    uint32_t per = o->streams_per_conn;
    uint32_t churn = o->churn_rate > 0 ? o->churn_max : 0;
    r->nsubs_steady = o->subscribers;
    r->nsubs = o->subscribers + churn;
    r->nscs_steady = (o->subscribers + per - 1) / per;
    r->nscs = r->nscs_steady + churn;
    r->subs = calloc(r->nsubs ? r->nsubs : 1, sizeof(*r->subs));
    r->scs = calloc(r->nscs ? r->nscs : 1, sizeof(*r->scs));
    r->churn_free = calloc(churn ? churn : 1, sizeof(*r->churn_free));
    if (!r->subs || !r->scs || !r->churn_free)
        return -ENOMEM;
    for (uint32_t i = 0; i < r->nscs; i++) {
        subconn_t *sc = &r->scs[i];
        sc->run = r;
        sc->timer.cb = on_sc_timer;
        sc->first = i < r->nscs_steady ? i * per : r->nsubs_steady + (i - r->nscs_steady);
        sc->count = i < r->nscs_steady ? per : 1;
        if (i < r->nscs_steady && sc->first + sc->count > r->nsubs_steady)
            sc->count = r->nsubs_steady - sc->first;
    }
    assign_modes(r);
    /* A line (or an event) may hold the payload twice over (e.g. base64).
     * A Durable Streams data event holds every append since the last
     * control event: as much as the server read at once (sluiced: up to
     * 1 MiB when a reader is behind or the server is slow). */
    size_t limit = (size_t)o->size_bytes * 2 + 1024;
    if (o->ds && limit < SL_LOAD_DS_EVENT_BYTES_MAX)
        limit = SL_LOAD_DS_EVENT_BYTES_MAX;
    r->sse_limit = limit;
    for (uint32_t i = r->nscs_steady; i < r->nscs; i++) {
        r->scs[i].mode = SL_LOAD_MODE_CHURN;
        r->scs[i].churn_free = true;
        r->churn_free[r->churn_free_len++] = i;
    }
    for (uint32_t i = 0; i < r->nscs; i++) {
        for (uint32_t k = 0; k < r->scs[i].count; k++) {
            if (init_sub(r, r->scs[i].first + k, &r->scs[i], limit) < 0)
                return -ENOMEM;
        }
    }
    return 0;
}

void sl_load__subs_free(sl_load_run_t *r)
{
    for (uint32_t i = 0; r->subs && i < r->nsubs; i++)
        sl_load_sse_deinit(&r->subs[i].sse);
    free(r->subs);
    free(r->scs);
    free(r->churn_free);
}

bool sl_load__subs_caught_up(const sl_load_run_t *r)
{
    for (uint32_t i = 0; i < r->nsubs_steady; i++) {
        const sub_t *s = &r->subs[i];
        if (s->state == SUB_LIVE && s->mode == SL_LOAD_MODE_NORMAL &&
            s->received < r->acked[s->session])
            return false;
    }
    return true;
}

void sl_load__subs_close_all(sl_load_run_t *r)
{
    for (uint32_t i = 0; i < r->nscs; i++) {
        subconn_t *sc = &r->scs[i];
        sl_load_loop_timer_cancel(r->loop, &sc->timer);
        if (sc->conn) {
            sc->closing_by_us = true;
            sl_load_conn_close(sc->conn, false);
        }
    }
}

static void collect_one(sl_load_run_t *r, const sub_t *s, sl_load_sub_result_t *out)
{
    const sl_load_opts_t *o = r->o;
    out->index = s->index;
    out->session = s->session;
    out->mode = s->mode;
    out->received = s->received;
    out->expected = r->acked[s->session];
    out->gaps = s->gaps;
    out->out_of_order = s->out_of_order;
    out->bad = s->bad;
    out->gap_events = s->gap_events;
    out->last_id = s->last_id;
    bool order_ok = s->gaps == 0 && s->out_of_order == 0 && s->gap_events == 0;
    if (s->mode == SL_LOAD_MODE_NORMAL) {
        out->checked = true;
        out->ok = order_ok && s->bad == 0 && s->received == out->expected;
        if (s->received != out->expected)
            r->result.count_mismatches++;
    } else {
        /* Slow and stalled readers may legitimately be behind (or gone). */
        out->checked = false;
        out->ok = (order_ok || o->allow_gaps) && s->bad == 0 && s->received <= out->expected;
    }
}

void sl_load__subs_collect(sl_load_run_t *r)
{
    sl_load_result_t *res = &r->result;
    for (uint32_t i = 0; i < r->nsubs; i++) {
        const sub_t *s = &r->subs[i];
        res->gaps += s->gaps;
        res->out_of_order += s->out_of_order;
        res->bad_payloads += s->bad;
        res->gap_events += s->gap_events;
        if (i < r->nsubs_steady) {
            collect_one(r, s, &r->sub_results[i]);
            if (!r->sub_results[i].ok)
                r->subs_failed++;
        } else if (s->gaps || s->out_of_order || s->bad) {
            r->subs_failed++;
        }
    }
    res->subs = r->sub_results;
    res->sub_count = r->nsubs_steady;
}
