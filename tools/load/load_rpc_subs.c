/*
 * RPC subscribers. A subscriber's sub_t keeps the same state as an SSE
 * one: its `subscribe` call is the request (answered = subscribed), and
 * each `event` or `gap` notification of its stream is decoded into the
 * event record the SSE parser produces (id = seq, type, data; a gap as a
 * "sluice.gap" event whose id is the last seq lost) and handed to the
 * consumer the SSE parser would call — the sub's sse.cb, set up by
 * load_subs.c — so order checks, gap accounting and latency are computed
 * by one piece of code for both protocols.
 */
#include "tools/load/load_rpc_subs.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "runtime/base.h"
#include "runtime/clock.h"
#include "tools/load/load_rpc.h"

static void on_sub_headers(sl_load_req_t *req)
{
    sub_t *s = req->ctx;
    sl_load_run_t *r = s->run;
    if (s->sc->unresolved && --s->sc->unresolved == 0)
        sl_load__subs_resolve_setup(s->sc);
    if (req->status != 200) {
        if (r->result.subscribe_errors++ < 3)
            fprintf(stderr, "sluice-load: subscribe to session %u answered status %d\n", s->session,
                    req->status);
        s->state = SUB_ENDED;
        return;
    }
    s->state = SUB_LIVE;
    r->live++;
    sl_load_hist_record(&r->subscribe, sl_clock_now_ns() - s->start_ns);
}

/* Hands a decoded notification to the subscriber's event consumer. */
static void deliver(sub_t *s, const sl_load_rpc_note_t *n)
{
    char id[24];
    int id_len =
        snprintf(id, sizeof(id), "%" PRIu64, n->kind == SL_LOAD_RPC_NOTE_GAP ? n->gap_to : n->seq);
    sl_load_sse_event_t ev = {
        .id = id,
        .id_len = (size_t)id_len,
        .id_in_block = true,
        .type = n->kind == SL_LOAD_RPC_NOTE_GAP ? "sluice.gap" : n->type,
        .type_len = n->kind == SL_LOAD_RPC_NOTE_GAP ? 10 : n->type_len,
        .data = n->data,
        .data_len = n->data_len,
    };
    s->sse.cb(&ev, s->sse.ctx);
}

static void on_sub_body(sl_load_req_t *req, const char *data, size_t len)
{
    sub_t *s = req->ctx;
    if (s->state != SUB_LIVE)
        return;
    s->rx_ns = sl_clock_now_ns();
    sl_load_rpc_note_t n;
    if (sl_load_rpc_parse_note(data, len, &n) < 0) {
        s->bad++; /* not reached: the connection routed it by a valid header */
        return;
    }
    if (n.kind == SL_LOAD_RPC_NOTE_EVENT || n.kind == SL_LOAD_RPC_NOTE_GAP)
        deliver(s, &n);
}

static void on_sub_done(sl_load_req_t *req, int err)
{
    sub_t *s = req->ctx;
    char what[64];
    snprintf(what, sizeof what, "subscribe to session %u", s->session);
    sl_load__sub_done(s, err, what); /* SUB_LIVE: an `end`, or a lost connection */
}

static const sl_load_req_cbs_t sub_cbs = {
    .on_headers = on_sub_headers,
    .on_body = on_sub_body,
    .on_done = on_sub_done,
};

static void on_sc_close(sl_load_conn_t *c, int err, void *ctx)
{
    (void)c;
    (void)err;
    sl_load__sc_closed(ctx);
}

/* Submits sub s's subscribe call on its connection. Returns 0 or < 0. */
static int submit_subscribe(sl_load_run_t *r, sub_t *s, uint64_t now)
{
    char sid[128];
    char params[SL_LOAD_RPC_PARAMS_SMALL];
    int n = sl_load_rpc_session_id(r->o, s->session, sid, sizeof(sid));
    int len = n < 0 ? n
                    : sl_load_rpc_encode_subscribe(params, sizeof(params), sid, (size_t)n,
                                                   r->o->from_first);
    if (len < 0)
        return len;
    s->state = SUB_PENDING;
    s->start_ns = now;
    s->req.cbs = &sub_cbs;
    s->req.ctx = s;
    s->req.method = "subscribe";
    s->req.sse = true;
    s->req.body = params;
    s->req.body_len = (size_t)len;
    int rc = sl_load_conn_submit(s->sc->conn, &s->req);
    s->req.body = NULL; /* copied into the output by the submit */
    return rc;
}

static void start_sc(sl_load_run_t *r, subconn_t *sc)
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
    sc->in_setup = true;
    sc->unresolved = sc->count;
    r->connecting++;
    uint64_t now = sl_clock_now_ns();
    for (uint32_t i = 0; i < sc->count; i++) {
        sub_t *s = &r->subs[sc->first + i];
        if (submit_subscribe(r, s, now) < 0) {
            s->state = SUB_ENDED;
            r->result.subscribe_errors++;
            if (--sc->unresolved == 0)
                sl_load__subs_resolve_setup(sc);
        }
    }
}

void sl_load__rpc_subs_start_more(sl_load_run_t *r)
{
    while (r->next_sc < r->nscs_steady && r->connecting < r->o->connect_concurrency)
        start_sc(r, &r->scs[r->next_sc++]);
}
