/*
 * The run actor, the table of runs and their figures (see run.h).
 *
 * A run actor lives on one reactor. Its lifetime:
 *   SPAWNING  the spawner thread clones the child and sends spawned_msg;
 *   RUNNING   run.start is published; the pipes are read, stdin written,
 *             the pidfd polled, a SL_RUN_TICK_NS timer checks the
 *             deadlines (wall time, orphan, kill grace, output drain);
 *   EXITING   the child is collected and both pipes reached EOF (or the
 *             drain deadline passed): run.exit is published durably with
 *             close, so the session ends with it; then every op is
 *             cancelled and awaited, the fds closed, the record removed
 *             (by the spawner), and the actor lets go of itself.
 *
 * Ending a run (cancel, orphan, timeout, output limit, shutdown) sends
 * SIGTERM to the whole tree and SIGKILL after the kill grace; whatever
 * ends it, the first reason recorded is the one run.exit names. When the
 * direct child exits, what it left behind in its tree is killed at once:
 * a run never outlives its process.
 *
 * Publishing: one publish in flight per run, built from the stream buffers
 * at send time and consumed only when the session answered, so a full
 * mailbox (SL_EAGAIN) is retried at the next tick without losing a byte,
 * and a stream is read again only once its bytes are in the session.
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "actors/json.h"
#include "actors/run_int.h"
#include "actors/server.h"
#include "actors/sessops.h"
#include "runtime/budget.h"
#include "runtime/clock.h"
#include "runtime/fault.h"
#include "runtime/log.h"
#include "storage/session_id.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

enum {
    MSG_SPAWNED = SL_MSG_KIND_USER + 97,
    MSG_STDIN = SL_MSG_KIND_USER + 98,
};
#define NOTIFY_CANCEL 1ull
#define NOTIFY_SHUTDOWN 2ull
#define NOTIFY_KICK 4ull

/* What a publish carries (queued descriptors; the bytes are gathered when
 * it is sent). */
enum { PUB_START = 0, PUB_OUT = 1, PUB_ERR = 2, PUB_EXIT = 3 };

static const char *const reason_names[SL_RUN__R_COUNT] = {
    "none",         "exit",         "cancelled",       "orphaned",
    "timeout",      "output_limit", "server_shutdown", "server_crash",
    "spawn_failed",
};

const char *sl_run__reason_name(int reason)
{
    return reason >= 0 && reason < SL_RUN__R_COUNT ? reason_names[reason] : "none";
}

static void add(_Atomic uint64_t *v, uint64_t d)
{
    atomic_fetch_add_explicit(v, d, memory_order_relaxed);
}

sl_run_req_t *sl_run_req_alloc(size_t data_bytes)
{
    return calloc(1, sizeof(sl_run_req_t) + data_bytes);
}

/* ---- op plumbing ---- */

static void submit(sl_run_t *run, sl_op_t *op)
{
    op->owner = &run->a;
    run->ops_inflight++;
    sl_reactor_submit(run->r, op);
}

/* Where output past --run-max-output-bytes goes while the pipes drain to
 * EOF: one buffer for every run, since nobody reads what lands there. */
static uint8_t discard_sink[SL_RUN_READ_BYTES];

static void arm_read(sl_run_t *run, int s)
{
    sl_run_stream_t *st = &run->out[s];
    if (st->armed || st->eof || st->fd < 0)
        return;
    if (st->discard) {
        st->op.buf = discard_sink;
        st->op.len = sizeof discard_sink;
    } else if (st->waiting || st->len >= SL_RUN_READ_BYTES) {
        return;
    } else {
        st->op.buf = st->buf + st->len;
        st->op.len = SL_RUN_READ_BYTES - st->len;
    }
    st->op.kind = SL_OP_READ;
    st->op.fd = st->fd;
    st->op.offset = (uint64_t)-1; /* a pipe: the current position */
    st->op.user = (uint64_t)s;
    st->armed = true;
    submit(run, &st->op);
}

static void arm_timer(sl_run_t *run)
{
    if (run->timer_armed)
        return;
    run->timer_op.kind = SL_OP_TIMEOUT;
    run->timer_op.timeout_ns = SL_RUN_TICK_NS;
    run->timer_armed = true;
    submit(run, &run->timer_op);
}

static void arm_poll(sl_run_t *run)
{
    run->poll_op.kind = SL_OP_POLL;
    run->poll_op.fd = run->pidfd;
    run->poll_op.flags = POLLIN;
    run->poll_armed = true;
    submit(run, &run->poll_op);
}

static void cancel_op(sl_run_t *run, int slot, sl_op_t *target)
{
    sl_op_t *c = &run->cancel_ops[slot];
    if (c->owner)
        return; /* one cancel per slot in flight; the next tick asks again */
    memset(c, 0, sizeof *c);
    c->kind = SL_OP_CANCEL;
    c->target = target;
    submit(run, c);
}

/* ---- replies to connections ---- */

static void reply(sl_run_req_t *req, int status)
{
    req->status = status;
    if (!req->reply_to) { /* the initial stdin of a start: nobody waits */
        free(req);
        return;
    }
    sl_actor_t *to = req->reply_to;
    req->h.kind = SL_RUN_MSG_REPLY;
    req->h.mclass = SL_MSG_COMPLETION; /* one outstanding request per record */
    int rc = sl_actor_send(to, &req->h);
    sl_assert(rc == 0);
}

/* ---- publishing ---- */

static void queue_pub(sl_run_t *run, int what)
{
    for (uint32_t i = 0; i < run->pq_n; i++)
        if ((int)(uintptr_t)run->pq[i] == what)
            return;
    sl_assert(run->pq_n < SL_ARRAY_LEN(run->pq));
    run->pq[run->pq_n++] = (sl_pub_t *)(uintptr_t)what;
}

static sl_pub_t *pub_json(const char *type, const char *json, size_t n)
{
    size_t tl = strlen(type);
    sl_pub_t *p = sl_sessops_pub_alloc(1, tl + n);
    if (!p)
        return NULL;
    memcpy(p->buf, type, tl);
    memcpy(p->buf + tl, json, n);
    p->events[0] = (sl_pub_event_t){0, (uint32_t)tl, (uint32_t)tl, (uint32_t)n, true};
    return p;
}

static size_t exit_json(const sl_run_t *run, char *out, size_t cap)
{
    char code[16] = "null", sig[16] = "null";
    if (run->exited && run->sig == 0)
        snprintf(code, sizeof code, "%d", run->code);
    if (run->exited && run->sig != 0)
        snprintf(sig, sizeof sig, "%d", run->sig);
    int n = snprintf(out, cap,
                     "{\"code\":%s,\"signal\":%s,\"reason\":\"%s\",\"wall_ms\":%" PRIu64
                     ",\"cpu_ms\":%" PRIu64 ",\"max_rss_kb\":%" PRIu64 "}",
                     code, sig, sl_run__reason_name(run->reason), run->wall_ms, run->cpu_ms,
                     run->max_rss_kb);
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

static sl_pub_t *build_start(sl_run_t *run)
{
    char json[SL_RUN_ARGS_MAX * 64 + 512];
    const char *args = run->args_json ? run->args_json : "[]";
    int n = snprintf(json, sizeof json, "{\"runner\":\"%s\",\"pid\":%d,\"run\":\"%s\",\"args\":%s}",
                     run->runner->name, run->pid, run->id, args);
    if (n <= 0 || (size_t)n >= sizeof json)
        n = snprintf(json, sizeof json,
                     "{\"runner\":\"%s\",\"pid\":%d,\"run\":\"%s\",\"args\":null}",
                     run->runner->name, run->pid, run->id);
    return pub_json("run.start", json, (size_t)n);
}

/* Counts the events of stream s's buffer and the bytes they consume. */
static uint32_t scan_stream(const sl_run_t *run, const sl_run_stream_t *st, uint32_t *consumed)
{
    if (st->len == 0)
        return *consumed = 0, 0;
    if (run->runner->chunk)
        return *consumed = st->len, 1;
    uint32_t events = 0, off = 0;
    for (uint32_t i = 0; i < st->len && events < SL_RUN_EVENTS_PER_PUB; i++) {
        if (st->buf[i] == '\n')
            events++, off = i + 1;
    }
    /* A line as long as the buffer, or the last one at EOF, goes as it is. */
    bool flush = st->eof || st->discard; /* nothing more will complete the last line */
    if (events == 0 && (st->len == SL_RUN_READ_BYTES || flush))
        return *consumed = st->len, 1;
    if (events < SL_RUN_EVENTS_PER_PUB && flush && off < st->len)
        events++, off = st->len;
    *consumed = off;
    return events;
}

static sl_pub_t *build_stream(sl_run_t *run, int s, uint32_t *consumed)
{
    sl_run_stream_t *st = &run->out[s];
    uint32_t events = scan_stream(run, st, consumed);
    if (events == 0)
        return NULL;
    size_t tl = strlen(st->type);
    sl_pub_t *p = sl_sessops_pub_alloc(events, tl + *consumed);
    if (!p)
        return NULL;
    memcpy(p->buf, st->type, tl);
    memcpy(p->buf + tl, st->buf, *consumed);
    uint32_t e = 0, start = 0, n = *consumed;
    if (!run->runner->chunk) {
        for (uint32_t i = 0; i < n; i++) {
            if (st->buf[i] != '\n')
                continue;
            p->events[e++] =
                (sl_pub_event_t){0, (uint32_t)tl, (uint32_t)tl + start, i - start, false};
            start = i + 1;
        }
    }
    if (start < n) /* a chunk, or a last piece without its newline */
        p->events[e++] = (sl_pub_event_t){0, (uint32_t)tl, (uint32_t)tl + start, n - start, false};
    sl_assert(e == events);
    return p;
}

static void pump_pub(sl_run_t *run);

static void finish_if_done(sl_run_t *run);

/* The session answered a publish. */
static void on_published(sl_run_t *run, sl_pub_t *p)
{
    int what = (int)(uintptr_t)run->pq[0];
    int status = p->status;
    /* Bounded: a session that keeps going away is given up on. */
    bool resend = status == SL_ECLOSED && p->first_seq == 0 && run->resends++ < SL_RUN_RESENDS_MAX;
    free(p);
    sl_actor_release(&run->a); /* the publish's reference */
    run->pub_inflight = false;
    if (resend) { /* the session actor hibernated under us: ask its successor */
        pump_pub(run);
        return;
    }
    memmove(run->pq, run->pq + 1, (run->pq_n - 1) * sizeof run->pq[0]);
    run->pq_n--;
    if (what == PUB_OUT || what == PUB_ERR) {
        sl_run_stream_t *st = &run->out[what - PUB_OUT];
        uint32_t c = (uint32_t)st->consumed;
        memmove(st->buf, st->buf + c, st->len - c);
        st->len -= c;
        st->waiting = false;
        uint32_t more;
        if (status == 0 && scan_stream(run, st, &more) > 0) {
            st->waiting = true;
            queue_pub(run, what);
        } else {
            if (status != 0) /* the session takes nothing more: drain to EOF */
                st->discard = true;
            arm_read(run, what - PUB_OUT);
        }
    } else if (what == PUB_EXIT) {
        run->exit_published = true;
    }
    if (status != 0 && status != SL_ECLOSED && what != PUB_EXIT) {
        /* The session is closed or gone: nothing more can be recorded. */
        sl_debug("run publish refused", "run=%s status=\"%s\"", run->id, sl_strerror(status));
        if (run->reason == SL_RUN__R_NONE)
            run->reason = SL_RUN__R_CANCELLED;
        if (!run->term_sent && run->pid > 0) {
            run->term_sent = true;
            sl_run__signal_tree(run, SIGTERM);
            run->kill_at_ns = sl_clock_now_ns() + run->runner->kill_grace_ns;
        }
    }
    pump_pub(run);
    finish_if_done(run);
}

static void pump_pub(sl_run_t *run)
{
    if (run->pub_inflight || run->pq_n == 0 || sl_clock_now_ns() < run->retry_at_ns)
        return;
    int what = (int)(uintptr_t)run->pq[0];
    sl_pub_t *p = NULL;
    uint32_t consumed = 0;
    /* Output waits while the memory budget is over its limit (the child
     * blocks in write meanwhile); run.start and run.exit always go. The
     * fault point plays a session that takes no output (tests). */
    if ((what == PUB_OUT || what == PUB_ERR) && (sl_budget_over() || sl_fault("run_output_busy"))) {
        run->retry_at_ns = sl_clock_now_ns() + SL_RUN_TICK_NS / 4;
        return;
    }
    if (what == PUB_START) {
        p = build_start(run);
    } else if (what == PUB_EXIT) {
        char json[256];
        size_t n = exit_json(run, json, sizeof json);
        if (n > 0 && n < sizeof run->exit_sent_json) {
            pthread_mutex_lock(&run->runs->lock);
            memcpy(run->exit_sent_json, json, n + 1);
            run->exit_sent = true;
            pthread_mutex_unlock(&run->runs->lock);
        }
        p = pub_json("run.exit", json, n);
        if (p) {
            p->durable = true; /* the record goes only once this is on disk */
            p->close = true;   /* and the session ends with it */
        }
    } else {
        p = build_stream(run, what - PUB_OUT, &consumed);
        run->out[what - PUB_OUT].consumed = consumed;
        if (!p && consumed == 0) { /* nothing after all */
            memmove(run->pq, run->pq + 1, (run->pq_n - 1) * sizeof run->pq[0]);
            run->pq_n--;
            run->out[what - PUB_OUT].waiting = false;
            arm_read(run, what - PUB_OUT);
            pump_pub(run);
            return;
        }
    }
    if (!p) { /* out of memory: try again at the next tick */
        run->retry_at_ns = sl_clock_now_ns() + SL_RUN_TICK_NS;
        return;
    }
    int rc = sl_sessops_publish(run->srv, &run->a, run->session, run->session_len, p, false);
    if (rc == 0) {
        run->pub_inflight = true;
        return;
    }
    if (rc == SL_EAGAIN || rc == SL_ECLOSED) { /* full mailbox: backpressure, retry */
        run->retry_at_ns = sl_clock_now_ns() + SL_RUN_TICK_NS / 4;
        return;
    }
    /* The session is gone: drop what was queued. */
    sl_pub_t fake = {.status = rc};
    sl_pub_t *copy = malloc(sizeof *copy);
    if (!copy) {
        run->retry_at_ns = sl_clock_now_ns() + SL_RUN_TICK_NS;
        return;
    }
    *copy = fake;
    sl_actor_retain(&run->a);
    run->pub_inflight = true;
    on_published(run, copy);
}

/* ---- ending ---- */

/* Records reason (the first one wins) and starts ending the tree:
 * SIGTERM now, SIGKILL after the kill grace. */
static void end_run(sl_run_t *run, int reason)
{
    if (run->reason == SL_RUN__R_NONE)
        run->reason = reason;
    if (run->state != SL_RUN__RUNNING || run->exited || run->term_sent)
        return;
    run->term_sent = true;
    sl_run__signal_tree(run, SIGTERM);
    run->kill_at_ns = sl_clock_now_ns() + run->runner->kill_grace_ns;
}

/* The pidfd is readable: collect the child (and its rusage). */
static void on_child_exit(sl_run_t *run)
{
    siginfo_t si;
    struct rusage ru;
    memset(&si, 0, sizeof si);
    memset(&ru, 0, sizeof ru);
    long rc = syscall(SYS_waitid, P_PIDFD, run->pidfd, &si, WEXITED | WNOHANG, &ru);
    if (rc != 0 || si.si_pid == 0) {
        if (rc != 0 && errno == ECHILD) { /* cannot happen: nobody else waits for it */
            sl_warn("run child already collected", "run=%s pid=%d", run->id, run->pid);
        } else {
            arm_poll(run);
            return;
        }
    }
    sl_run__direct_remove(run->runs, run->pid);
    run->exited = true;
    if (si.si_code == CLD_EXITED)
        run->code = si.si_status, run->sig = 0;
    else
        run->code = -1, run->sig = si.si_status ? si.si_status : SIGKILL;
    run->cpu_ms = (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000 +
                  (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000;
    run->max_rss_kb = (uint64_t)ru.ru_maxrss;
    uint64_t now = sl_clock_now_ns();
    run->wall_ms = (now - run->started_ns) / SL_NS_PER_MS;
    add(&run->runs->cpu_ms_total, run->cpu_ms);
    if (run->reason == SL_RUN__R_NONE)
        run->reason = SL_RUN__R_EXIT;
    /* What it left behind dies with it; the pipes get the kill grace to
     * reach EOF (a process that escaped every net could hold them). */
    sl_run__signal_tree(run, SIGKILL);
    run->drain_until_ns = now + run->runner->kill_grace_ns;
    /* stdin: nobody reads it any more */
    if (run->in_armed)
        cancel_op(run, 2, &run->in_op);
}

static void stdin_fail_all(sl_run_t *run)
{
    while (run->in_head) {
        sl_run_req_t *q = run->in_head;
        run->in_head = q->_next;
        run->in_pending -= q->stdin_len;
        reply(q, SL_ECLOSED);
    }
    run->in_tail = NULL;
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

static void table_remove(sl_run_t *run);

/* run.exit is answered: wind down once no op is in flight. */
static void finish_if_done(sl_run_t *run)
{
    if (run->state == SL_RUN__DONE)
        return;
    if (run->state == SL_RUN__RUNNING && run->exited && run->out[0].eof && run->out[1].eof &&
        !run->out[0].waiting && !run->out[1].waiting && !run->pub_inflight && run->pq_n == 0) {
        run->state = SL_RUN__EXITING;
        queue_pub(run, PUB_EXIT);
        pump_pub(run);
        return;
    }
    if (run->state != SL_RUN__EXITING || !run->exit_published)
        return;
    stdin_fail_all(run);
    if (run->in_armed)
        cancel_op(run, 2, &run->in_op);
    if (run->timer_armed)
        cancel_op(run, 0, &run->timer_op);
    if (run->ops_inflight > 0)
        return;
    run->state = SL_RUN__DONE;
    close_fd(&run->pidfd);
    close_fd(&run->stdin_fd);
    close_fd(&run->out[0].fd);
    close_fd(&run->out[1].fd);
    sl_run_job_t *j = calloc(1, sizeof *j);
    if (j) {
        j->kind = SL_RUN__JOB_FINISH;
        memcpy(j->id, run->id, sizeof j->id);
        memcpy(j->cgroup, run->cgroup, sizeof j->cgroup);
        sl_run__job_post(run->runs, j);
    }
    add(&run->runs->by_reason[run->reason], 1);
    sl_info("run ended", "run=%s session=%s reason=%s code=%d signal=%d wall_ms=%" PRIu64, run->id,
            run->session, sl_run__reason_name(run->reason), run->code, run->sig, run->wall_ms);
    table_remove(run);
    sl_actor_release(&run->a); /* its own reference */
}

/* ---- I/O ---- */

static void on_read(sl_run_t *run, int s, int32_t res)
{
    sl_run_stream_t *st = &run->out[s];
    st->armed = false;
    if (res <= 0) {
        st->eof = true; /* EOF, an error, or cancelled at the drain deadline */
        if (st->len > 0 && !st->discard) {
            st->waiting = true;
            queue_pub(run, PUB_OUT + s);
        }
        return;
    }
    uint64_t now = sl_clock_now_ns();
    if (!run->first_output_ns) {
        run->first_output_ns = now;
        add(&run->runs->first_output_ns_total, now - run->started_ns);
        add(&run->runs->first_output_count, 1);
    }
    uint32_t n = (uint32_t)res;
    if (st->discard) { /* past the output limit: drop, drain on */
        arm_read(run, s);
        return;
    }
    uint64_t max = run->runner->max_output_bytes;
    if (run->out_bytes + n > max) {
        n = (uint32_t)(max - run->out_bytes);
        run->out[0].discard = run->out[1].discard = true;
        end_run(run, SL_RUN__R_OUTPUT_LIMIT);
        for (int k = 0; k < 2; k++) /* what is kept goes out; the pipes drain */
            arm_read(run, k);
    }
    run->out_bytes += n;
    st->len += n;
    uint32_t consumed;
    if (scan_stream(run, st, &consumed) > 0) {
        st->waiting = true;
        queue_pub(run, PUB_OUT + s);
    }
    arm_read(run, s);
}

/* Writes the head of the stdin queue. */
static void pump_stdin(sl_run_t *run)
{
    if (run->in_armed || run->stdin_fd < 0 || !run->in_head || run->exited)
        return;
    sl_run_req_t *q = run->in_head;
    if (run->in_off == q->stdin_len) { /* written (or empty) */
        run->in_head = q->_next;
        if (!run->in_head)
            run->in_tail = NULL;
        run->in_pending -= q->stdin_len;
        run->in_off = 0;
        q->written = q->stdin_len;
        if (q->close_stdin) {
            close_fd(&run->stdin_fd);
            run->stdin_closed = true;
        }
        reply(q, 0);
        if (run->stdin_closed)
            stdin_fail_all(run);
        pump_stdin(run);
        return;
    }
    run->in_op.kind = SL_OP_WRITE;
    run->in_op.fd = run->stdin_fd;
    run->in_op.buf = q->stdin_data + run->in_off;
    run->in_op.len = (uint32_t)(q->stdin_len - run->in_off);
    run->in_op.offset = (uint64_t)-1;
    run->in_op.flags = 0;
    run->in_armed = true;
    submit(run, &run->in_op);
}

static void on_stdin_written(sl_run_t *run, int32_t res)
{
    run->in_armed = false;
    if (res < 0) { /* EPIPE: the child closed its stdin; or cancelled */
        close_fd(&run->stdin_fd);
        run->stdin_closed = true;
        stdin_fail_all(run);
        return;
    }
    run->in_off += (size_t)res;
    pump_stdin(run);
}

/* The process is gone and the kill grace has passed since: output the
 * session has still not taken (it refuses it: budget, a full mailbox) is
 * dropped so that run.exit can go. A publish in flight is awaited. */
static void drop_output(sl_run_t *run)
{
    if (run->pub_inflight)
        return;
    uint32_t k = 0;
    for (uint32_t i = 0; i < run->pq_n; i++) {
        int what = (int)(uintptr_t)run->pq[i];
        if (what != PUB_OUT && what != PUB_ERR)
            run->pq[k++] = run->pq[i];
    }
    run->pq_n = k;
    for (int s = 0; s < 2; s++) {
        sl_run_stream_t *st = &run->out[s];
        if (st->len > 0 || st->waiting)
            sl_debug("run output dropped", "run=%s bytes=%u", run->id, st->len);
        st->len = 0;
        st->waiting = false;
        st->discard = true;
        if (!st->armed) /* held back, so never read to its end: it ends here */
            st->eof = true;
    }
}

static void on_tick(sl_run_t *run)
{
    uint64_t now = sl_clock_now_ns();
    const sl_runner_t *rn = run->runner;
    if (run->state == SL_RUN__RUNNING && !run->exited) {
        if (rn->wall_ns && now - run->started_ns >= rn->wall_ns)
            end_run(run, SL_RUN__R_TIMEOUT);
        uint32_t subs =
            run->e ? atomic_load_explicit(&run->e->stats.subscribers, memory_order_relaxed) : 1;
        if (subs > 0 || !rn->orphan_ns)
            run->orphan_since_ns = 0;
        else if (!run->orphan_since_ns)
            run->orphan_since_ns = now;
        else if (now - run->orphan_since_ns >= rn->orphan_ns)
            end_run(run, SL_RUN__R_ORPHANED);
        if (run->kill_at_ns && now >= run->kill_at_ns && !run->kill_sent) {
            run->kill_sent = true;
            sl_run__signal_tree(run, SIGKILL);
        }
    }
    if (run->state == SL_RUN__RUNNING && run->exited && now >= run->drain_until_ns) {
        for (int s = 0; s < 2; s++) {
            if (run->out[s].armed)
                cancel_op(run, 1, &run->out[s].op);
        }
        drop_output(run);
    }
    pump_pub(run);
}

static void on_io(sl_run_t *run, sl_op_t *op)
{
    run->ops_inflight--;
    if (op == &run->out[0].op || op == &run->out[1].op) {
        on_read(run, op == &run->out[0].op ? 0 : 1, op->res);
    } else if (op == &run->poll_op) {
        run->poll_armed = false;
        if (op->res >= 0)
            on_child_exit(run);
    } else if (op == &run->in_op) {
        on_stdin_written(run, op->res);
    } else if (op == &run->timer_op) {
        run->timer_armed = false;
        on_tick(run);
        if (run->state != SL_RUN__DONE && !(run->state == SL_RUN__EXITING && run->exit_published))
            arm_timer(run);
    } else {
        op->owner = NULL; /* a cancel came back */
    }
    pump_pub(run);
    finish_if_done(run);
}

/* ---- spawn result ---- */

static void on_spawned(sl_run_t *run)
{
    sl_run_req_t *req = run->start_req;
    run->start_req = NULL;
    if (run->spawn_err != 0) {
        sl_warn("run could not start", "run=%s runner=%s error=\"%s\"", run->id, run->runner->name,
                sl_strerror(run->spawn_err));
        add(&run->runs->spawn_failed, 1);
        reply(req, run->spawn_err);
        stdin_fail_all(run);
        run->state = SL_RUN__DONE;
        table_remove(run);
        sl_actor_release(&run->a);
        return;
    }
    add(&run->runs->started, 1);
    run->state = SL_RUN__RUNNING;
    pthread_mutex_lock(&run->runs->lock);
    run->pid_visible = run->pid;
    pthread_mutex_unlock(&run->runs->lock);
    sl_info("run started", "run=%s session=%s runner=%s pid=%d", run->id, run->session,
            run->runner->name, run->pid);
    /* The initial stdin becomes the first write; the request goes back. */
    if (req->stdin_len > 0 || req->close_stdin) {
        sl_run_req_t *q = sl_run_req_alloc(req->stdin_len);
        if (q) {
            if (req->stdin_len)
                memcpy(q->data, req->stdin_data, req->stdin_len);
            q->stdin_data = q->data;
            q->stdin_len = req->stdin_len;
            q->close_stdin = req->close_stdin;
            q->_next = run->in_head; /* before stdin that came while spawning */
            run->in_head = q;
            if (!run->in_tail)
                run->in_tail = q;
            run->in_pending += q->stdin_len;
        }
    }
    snprintf(req->run_id, sizeof req->run_id, "%s", run->id);
    req->pid = run->pid;
    reply(req, 0);
    queue_pub(run, PUB_START);
    pump_pub(run);
    arm_poll(run);
    arm_read(run, 0);
    arm_read(run, 1);
    arm_timer(run);
    pump_stdin(run);
    if (run->reason != SL_RUN__R_NONE) { /* cancelled while it was being spawned */
        int r = run->reason;
        run->reason = SL_RUN__R_NONE;
        end_run(run, r);
    }
}

static void on_stdin_req(sl_run_t *run, sl_run_req_t *q)
{
    /* While spawning, stdin waits in the queue: a client may send it
     * before the start is answered (HTTP/2, pipelined RPC). */
    if (run->state > SL_RUN__RUNNING || run->exited || run->stdin_closed) {
        reply(q, SL_ECLOSED);
        return;
    }
    if (run->in_pending + q->stdin_len > SL_RUN_STDIN_PENDING_BYTES_MAX) {
        reply(q, SL_EAGAIN);
        return;
    }
    q->_next = NULL;
    if (run->in_tail)
        run->in_tail->_next = q;
    else
        run->in_head = q;
    run->in_tail = q;
    run->in_pending += q->stdin_len;
    pump_stdin(run);
}

static void behavior(sl_actor_t *self, sl_msg_t *msg)
{
    sl_run_t *run = (sl_run_t *)self;
    switch (msg->kind) {
    case SL_MSG_KIND_IO:
        on_io(run, sl_op_from_msg(msg));
        return;
    case MSG_SPAWNED:
        on_spawned(run);
        return;
    case MSG_STDIN:
        on_stdin_req(run, (sl_run_req_t *)(void *)msg);
        return;
    case SL_CONN_MSG_PUBLISHED:
        on_published(run, (sl_pub_t *)(void *)msg);
        return;
    case SL_MSG_KIND_NOTIFY: {
        uint64_t bits = sl_actor_take_notify(self);
        if (run->state == SL_RUN__SPAWNING) {
            if (run->reason == SL_RUN__R_NONE)
                run->reason = bits & NOTIFY_SHUTDOWN ? SL_RUN__R_SHUTDOWN : SL_RUN__R_CANCELLED;
            return;
        }
        if (bits & NOTIFY_SHUTDOWN)
            end_run(run, SL_RUN__R_SHUTDOWN);
        if (bits & NOTIFY_CANCEL)
            end_run(run, SL_RUN__R_CANCELLED);
        if ((bits & NOTIFY_KICK) && run->recovered) {
            run->state = SL_RUN__EXITING;
            queue_pub(run, PUB_EXIT);
            arm_timer(run);
            pump_pub(run);
        }
        return;
    }
    default:
        sl_msg_release(msg);
        return;
    }
}

static void destroy(sl_actor_t *self)
{
    sl_run_t *run = (sl_run_t *)self;
    sl_runs_t *runs = run->runs;
    if (run->e)
        sl_entry_release(run->e);
    free(run->args_json);
    free(run);
    atomic_fetch_sub_explicit(&runs->live, 1,
                              memory_order_release); /* pairs with shutdown's acquire */
}

/* ---- the table ---- */

static sl_runner_t *find_runner(sl_runs_t *runs, const char *name)
{
    for (int i = 0; i < runs->nrunners; i++)
        if (strcmp(runs->runners[i].name, name) == 0)
            return &runs->runners[i];
    return NULL;
}

/* Under lock: the active run of session id, or NULL. */
static sl_run_t *find_active(sl_runs_t *runs, const char *id, size_t len)
{
    for (uint32_t i = 0; i < runs->srv->cfg.max_runs; i++) {
        sl_run_t *r = runs->active[i];
        if (r && r->session_len == len && memcmp(r->session, id, len) == 0)
            return r;
    }
    return NULL;
}

static void table_remove(sl_run_t *run)
{
    sl_runs_t *runs = run->runs;
    char ej[192];
    size_t n = run->spawn_err == 0 ? exit_json(run, ej, sizeof ej) : 0;
    ej[n] = '\0';
    pthread_mutex_lock(&runs->lock);
    if (!run->recovered) {
        sl_assert(runs->active[run->slot] == run);
        runs->active[run->slot] = NULL;
        runs->nactive--;
        run->runner->active--;
    }
    if (n) {
        uint32_t h = runs->history_next;
        runs->history_next = (h + 1) % SL_RUN_HISTORY_MAX;
        if (runs->history_count < SL_RUN_HISTORY_MAX)
            runs->history_count++;
        snprintf(runs->history[h].session, sizeof runs->history[h].session, "%s", run->session);
        memcpy(runs->history[h].id, run->id, sizeof run->id);
        snprintf(runs->history[h].runner, sizeof runs->history[h].runner, "%s",
                 run->runner ? run->runner->name : "");
        runs->history[h].pid = run->pid;
        runs->history[h].started_wall_ns = run->started_wall_ns;
        memcpy(runs->history[h].exit_json, ej, n + 1);
    }
    pthread_mutex_unlock(&runs->lock);
}

static sl_run_t *run_new(sl_runs_t *runs, sl_reactor_t *r, const char *session, size_t len)
{
    sl_run_t *run = calloc(1, sizeof *run);
    if (!run)
        return NULL;
    run->srv = runs->srv;
    run->runs = runs;
    run->r = r;
    memcpy(run->session, session, len);
    run->session_len = (uint32_t)len;
    run->pidfd = run->stdin_fd = run->out[0].fd = run->out[1].fd = -1;
    run->out[0].type = "run.stdout";
    run->out[1].type = "run.stderr";
    run->spawned_msg = (sl_msg_t){.kind = MSG_SPAWNED, .mclass = SL_MSG_CONTROL};
    uint64_t id = atomic_fetch_add_explicit(&runs->next_id, 1, memory_order_relaxed);
    snprintf(run->id, sizeof run->id, "r%016" PRIx64, id);
    run->started_ns = sl_clock_now_ns();
    run->started_wall_ns = sl_clock_wall_ns();
    sl_actor_init(&run->a, sl_server_sched_of(runs->srv, r), "run", runs->srv->cfg.mailbox_capacity,
                  behavior, destroy);
    atomic_fetch_add_explicit(&runs->live, 1, memory_order_relaxed);
    return run;
}

static sl_reactor_t *pick_reactor(sl_server_t *srv)
{
    sl_reactor_t *r = sl_reactor_self();
    if (r)
        return r;
    uint32_t i = atomic_fetch_add_explicit(&srv->next_reactor, 1, memory_order_relaxed);
    return srv->reactors[i % srv->nreactors];
}

/* The client's args as a JSON array (returns owned), or NULL. */
static char *args_to_json(const sl_run_req_t *req)
{
    size_t cap = 3;
    for (uint32_t i = 0; i < req->nargs; i++)
        cap += strlen(req->args[i]) * 6 + 3;
    char *j = malloc(cap);
    if (!j)
        return NULL;
    size_t o = 0;
    j[o++] = '[';
    for (uint32_t i = 0; i < req->nargs; i++) {
        if (i)
            j[o++] = ',';
        j[o++] = '"';
        int n = sl_json_escape(j + o, cap - o, req->args[i], strlen(req->args[i]));
        if (n < 0) {
            free(j);
            return NULL;
        }
        o += (size_t)n;
        j[o++] = '"';
    }
    j[o++] = ']';
    j[o] = '\0';
    return j;
}

static int start_run(sl_server_t *srv, sl_run_req_t *req)
{
    sl_runs_t *runs = srv->runs;
    sl_runner_t *rn = find_runner(runs, req->runner);
    if (!rn)
        return SL_ENOTFOUND;
    if (req->nargs > rn->max_args || req->stdin_len > rn->max_stdin_bytes)
        return SL_EINVAL;
    if (atomic_load_explicit(&srv->draining, memory_order_relaxed))
        return SL_EFULL;
    sl_entry_t *e = NULL;
    bool created;
    int rc = sl_sessops_create(srv, req->session, req->session_len, NULL, &e, &created);
    if (rc == SL_ECONFLICT) /* a session with attributes: fine for a run */
        rc = (e = sl_sessops_lookup(srv, req->session, req->session_len)) ? 0 : SL_ECLOSED;
    if (rc != 0)
        return rc == SL_EFULL ? SL_EFULL : rc;
    if (sl_sessops_closed(e, NULL)) {
        sl_entry_release(e);
        return SL_EENDED;
    }
    char *args_json = args_to_json(req);
    pthread_mutex_lock(&runs->lock);
    rc = find_active(runs, req->session, req->session_len)  ? SL_ECONFLICT
         : runs->nactive >= srv->cfg.max_runs               ? SL_EFULL
         : rn->concurrency && rn->active >= rn->concurrency ? SL_EFULL
                                                            : 0;
    sl_run_t *run = NULL;
    if (rc == 0 && !(run = run_new(runs, pick_reactor(srv), req->session, req->session_len)))
        rc = -ENOMEM;
    if (rc == 0) {
        uint32_t slot = 0;
        while (runs->active[slot])
            slot++;
        runs->active[slot] = run;
        run->slot = slot;
        runs->nactive++;
        rn->active++;
    }
    pthread_mutex_unlock(&runs->lock);
    if (rc != 0) {
        free(args_json);
        sl_entry_release(e);
        return rc;
    }
    run->runner = rn;
    run->e = e;
    run->args_json = args_json;
    run->start_req = req;
    sl_run_job_t *j = calloc(1, sizeof *j);
    sl_assert(j); /* a few bytes; the run is already in the table */
    j->kind = SL_RUN__JOB_SPAWN;
    j->run = run;
    sl_actor_retain(&run->a); /* the job's; dropped after spawned_msg is sent */
    sl_run__job_post(runs, j);
    return 0;
}

int sl_run_submit(sl_server_t *srv, sl_run_req_t *req)
{
    sl_runs_t *runs = srv->runs;
    int rc;
    if (!runs) {
        rc = SL_ENOTFOUND;
    } else if (req->kind == SL_RUN_REQ_START) {
        rc = start_run(srv, req);
    } else {
        pthread_mutex_lock(&runs->lock);
        sl_run_t *run = find_active(runs, req->session, req->session_len);
        if (run)
            sl_actor_retain(&run->a);
        pthread_mutex_unlock(&runs->lock);
        if (!run) {
            rc = SL_ENOTFOUND;
        } else if (req->stdin_len > run->runner->max_stdin_bytes) {
            rc = SL_EINVAL;
        } else {
            req->h.kind = MSG_STDIN;
            req->h.mclass = SL_MSG_NORMAL;
            rc = sl_actor_send(&run->a, &req->h) == 0 ? 0 : SL_EAGAIN;
        }
        if (run)
            sl_actor_release(&run->a);
    }
    if (rc == 0) {
        sl_actor_retain(req->reply_to);
        return 0;
    }
    free(req);
    return rc;
}

int sl_run_cancel(sl_server_t *srv, const char *id, size_t len, char *run_id)
{
    sl_runs_t *runs = srv->runs;
    if (!runs)
        return SL_ENOTFOUND;
    pthread_mutex_lock(&runs->lock);
    sl_run_t *run = find_active(runs, id, len);
    if (run) {
        memcpy(run_id, run->id, sizeof run->id);
        sl_actor_notify(&run->a, NOTIFY_CANCEL);
    }
    pthread_mutex_unlock(&runs->lock);
    return run ? 0 : SL_ENOTFOUND;
}

size_t sl_run_status_json(sl_server_t *srv, const char *id, size_t len, char *out, size_t cap)
{
    sl_runs_t *runs = srv->runs;
    if (!runs)
        return 0;
    int n = 0;
    pthread_mutex_lock(&runs->lock);
    sl_run_t *run = find_active(runs, id, len);
    if (run && run->exit_sent) {
        /* Winding down after run.exit went to the session: a consumer
         * that read it and asks finds it exited. */
        n = snprintf(out, cap,
                     "{\"run\":\"%s\",\"runner\":\"%s\",\"pid\":%d,\"state\":\"exited\","
                     "\"started_ns\":%" PRIu64 ",\"exit\":%s}",
                     run->id, run->runner ? run->runner->name : "", run->pid,
                     run->started_wall_ns, run->exit_sent_json);
    } else if (run) {
        n = snprintf(out, cap,
                     "{\"run\":\"%s\",\"runner\":\"%s\",\"pid\":%d,\"state\":\"running\","
                     "\"started_ns\":%" PRIu64 "}",
                     run->id, run->runner->name, run->pid_visible, run->started_wall_ns);
    } else {
        for (uint32_t k = 0; k < runs->history_count; k++) {
            uint32_t h = (runs->history_next + SL_RUN_HISTORY_MAX - 1 - k) % SL_RUN_HISTORY_MAX;
            if (strlen(runs->history[h].session) != len ||
                memcmp(runs->history[h].session, id, len) != 0)
                continue;
            n = snprintf(out, cap,
                         "{\"run\":\"%s\",\"runner\":\"%s\",\"pid\":%d,\"state\":\"exited\","
                         "\"started_ns\":%" PRIu64 ",\"exit\":%s}",
                         runs->history[h].id, runs->history[h].runner, runs->history[h].pid,
                         runs->history[h].started_wall_ns, runs->history[h].exit_json);
            break;
        }
    }
    pthread_mutex_unlock(&runs->lock);
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

/* ---- recovery ---- */

void sl_run__recover(sl_runs_t *runs, const char *id, const char *session, size_t session_len,
                     const char *cgroup, uint64_t started_wall_ns)
{
    sl_server_t *srv = runs->srv;
    sl_entry_t *e = sl_sessops_lookup(srv, session, session_len);
    sl_run_t *run = e && !sl_sessops_closed(e, NULL)
                        ? run_new(runs, srv->reactors[0], session, session_len)
                        : NULL;
    if (!run) { /* nothing to tell: the traces go */
        if (e)
            sl_entry_release(e);
        sl_run_job_t *j = calloc(1, sizeof *j);
        if (j) {
            j->kind = SL_RUN__JOB_FINISH;
            snprintf(j->id, sizeof j->id, "%s", id);
            snprintf(j->cgroup, sizeof j->cgroup, "%s", cgroup);
            sl_run__job_post(runs, j);
        }
        return;
    }
    snprintf(run->id, sizeof run->id, "%s", id);
    snprintf(run->cgroup, sizeof run->cgroup, "%s", cgroup);
    run->e = e;
    run->recovered = true;
    run->exited = false;
    run->reason = SL_RUN__R_CRASH;
    run->state = SL_RUN__EXITING;
    run->started_wall_ns = started_wall_ns;
    uint64_t now = sl_clock_wall_ns();
    run->wall_ms =
        started_wall_ns && now > started_wall_ns ? (now - started_wall_ns) / SL_NS_PER_MS : 0;
    sl_actor_notify(&run->a, NOTIFY_KICK);
}

/* ---- lifecycle ---- */

static int cgroup_probe(sl_runs_t *runs)
{
    const char *mode = runs->srv->cfg.run_cgroup;
    runs->cgroup_base[0] = '\0';
    if (mode && strcmp(mode, "off") == 0)
        return 0;
    /* Our cgroup v2 path ("0::/path") and where the v2 hierarchy is mounted. */
    char own[PATH_MAX] = "", mnt[PATH_MAX] = "", line[PATH_MAX + 256];
    FILE *f = fopen("/proc/self/cgroup", "re");
    while (f && fgets(line, sizeof line, f)) {
        if (strncmp(line, "0::", 3) == 0) {
            line[strcspn(line, "\n")] = '\0';
            if (snprintf(own, sizeof own, "%s", strcmp(line + 3, "/") == 0 ? "" : line + 3) >=
                (int)sizeof own)
                own[0] = '\0';
        }
    }
    if (f)
        fclose(f);
    f = fopen("/proc/self/mountinfo", "re");
    while (f && fgets(line, sizeof line, f)) {
        char *sep = strstr(line, " - cgroup2 ");
        if (!sep)
            continue;
        char a[PATH_MAX], b[PATH_MAX];
        if (sscanf(line, "%*s %*s %*s %4095s %4095s", a, b) == 2 && strcmp(a, "/") == 0) {
            snprintf(mnt, sizeof mnt, "%s", b);
            break;
        }
    }
    if (f)
        fclose(f);
    int rc = -ENOENT;
    if (mnt[0]) {
        if (snprintf(runs->cgroup_base, sizeof runs->cgroup_base, "%s%s/sluice.runs", mnt, own) >=
            (int)sizeof runs->cgroup_base - 32)
            rc = -ENAMETOOLONG;
        else
            rc = mkdir(runs->cgroup_base, 0755) == 0 || errno == EEXIST ? 0 : -errno;
        /* Let runs' cgroups have memory and pids limits where the
         * controllers are delegated to us (best effort; else no such files). */
        char ctl[PATH_MAX + 32];
        snprintf(ctl, sizeof ctl, "%s/cgroup.subtree_control", runs->cgroup_base);
        int cfd = rc == 0 ? open(ctl, O_WRONLY | O_CLOEXEC) : -1;
        if (cfd >= 0) {
            if (write(cfd, "+memory +pids", 13) != 13)
                sl_debug("runs cgroup controllers not enabled", "error=\"%s\"",
                         sl_strerror(-errno));
            close(cfd);
        }
        char kill_file[PATH_MAX + 32];
        snprintf(kill_file, sizeof kill_file, "%s/cgroup.kill", runs->cgroup_base);
        if (rc == 0 && access(kill_file, W_OK) != 0)
            rc = -ENOTSUP; /* before 5.14: no cgroup.kill */
    }
    if (rc != 0) {
        runs->cgroup_base[0] = '\0';
        if (mode && strcmp(mode, "on") == 0) {
            sl_error("--run-cgroup on: no writable cgroup v2 hierarchy", "error=\"%s\"",
                     sl_strerror(rc));
            return rc;
        }
    }
    sl_info("runs", "cgroup=%s", runs->cgroup_base[0] ? runs->cgroup_base : "off");
    return 0;
}

int sl_run_init(sl_server_t *srv)
{
    sl_runs_t *runs = calloc(1, sizeof *runs);
    if (!runs)
        return -ENOMEM;
    runs->srv = srv;
    char err[256];
    runs->nrunners = sl_run__runners_parse(&srv->cfg, runs->runners, err, sizeof err);
    runs->active = calloc(srv->cfg.max_runs, sizeof *runs->active);
    runs->direct_pids = calloc(srv->cfg.max_runs, sizeof *runs->direct_pids);
    pthread_mutex_init(&runs->lock, NULL);
    srv->runs = runs;
    if (runs->nrunners < 0) {
        sl_error("bad runner declaration", "error=\"%s\"", err);
        runs->nrunners = 0;
        return SL_EINVAL;
    }
    if (!runs->active || !runs->direct_pids)
        return -ENOMEM;
    atomic_store(&runs->next_id, sl_clock_wall_ns());
    snprintf(runs->dir, sizeof runs->dir, "%s/.runs", srv->cfg.data_dir);
    if (mkdir(runs->dir, 0700) != 0 && errno != EEXIST) {
        int rc = -errno;
        sl_error("cannot create the runs folder", "dir=%s error=\"%s\"", runs->dir,
                 sl_strerror(rc));
        return rc;
    }
    int rc = cgroup_probe(runs);
    if (rc != 0)
        return rc;
    return sl_run__spawner_start(runs);
}

void sl_run_start(sl_server_t *srv)
{
    sl_runs_t *runs = srv->runs;
    if (!runs)
        return;
    pthread_mutex_lock(&runs->lock);
    runs->recover_wanted = true;
    pthread_cond_signal(&runs->cond);
    pthread_mutex_unlock(&runs->lock);
}

void sl_run_shutdown(sl_server_t *srv)
{
    sl_runs_t *runs = srv->runs;
    if (!runs)
        return;
    uint64_t grace = srv->cfg.run_kill_grace_ns;
    pthread_mutex_lock(&runs->lock);
    for (uint32_t i = 0; i < srv->cfg.max_runs; i++) {
        if (runs->active[i]) {
            if (runs->active[i]->runner->kill_grace_ns > grace)
                grace = runs->active[i]->runner->kill_grace_ns;
            sl_actor_notify(&runs->active[i]->a, NOTIFY_SHUTDOWN);
        }
    }
    pthread_mutex_unlock(&runs->lock);
    /* Each run: SIGTERM, SIGKILL after its grace, then its run.exit is
     * written durably. */
    uint64_t deadline = sl_clock_now_ns() + 2 * grace + 5 * SL_NS_PER_S;
    while (atomic_load_explicit(&runs->live, memory_order_acquire) > 0 &&
           sl_clock_now_ns() < deadline)
        usleep(2000);
    uint32_t left = atomic_load(&runs->live);
    if (left)
        sl_warn("runs still ending at shutdown", "live=%u", left);
}

void sl_run_deinit(sl_server_t *srv)
{
    sl_runs_t *runs = srv->runs;
    if (!runs)
        return;
    sl_run__spawner_stop(runs);
    sl_run__runners_free(runs->runners, runs->nrunners);
    pthread_mutex_destroy(&runs->lock);
    free(runs->active);
    free(runs->direct_pids);
    free(runs);
    srv->runs = NULL;
}

/* ---- figures ---- */

#define LD(v) atomic_load_explicit(&runs->v, memory_order_relaxed)

uint64_t sl_run_figure(sl_server_t *srv, uint32_t which)
{
    sl_runs_t *runs = srv->runs;
    if (!runs)
        return 0;
    uint64_t started = LD(started), fo = LD(first_output_count);
    if (which >= SL_RUN_FIG_REASON_EXIT && which <= SL_RUN_FIG_REASON_CRASH)
        return LD(by_reason[SL_RUN__R_EXIT + (which - SL_RUN_FIG_REASON_EXIT)]);
    switch (which) {
    case SL_RUN_FIG_ACTIVE: {
        pthread_mutex_lock(&runs->lock);
        uint32_t active = runs->nactive;
        pthread_mutex_unlock(&runs->lock);
        return active;
    }
    case SL_RUN_FIG_STARTED: return started;
    case SL_RUN_FIG_SPAWN_FAILED: return LD(spawn_failed);
    case SL_RUN_FIG_REAPED_ORPHANS: return LD(reaped_orphans);
    case SL_RUN_FIG_KILLED_LEFTOVERS: return LD(killed_leftovers);
    case SL_RUN_FIG_SPAWN_AVG_NS: return started ? LD(spawn_ns_total) / started : 0;
    case SL_RUN_FIG_FIRST_OUTPUT_AVG_NS: return fo ? LD(first_output_ns_total) / fo : 0;
    case SL_RUN_FIG_CPU_NS: return LD(cpu_ms_total) * 1000000u;
    case SL_RUN_FIG_CGROUP: return runs->cgroup_base[0] != 0;
    case SL_RUN_FIG_CHILDREN: return LD(children);
    case SL_RUN_FIG_ZOMBIES: return LD(zombies);
    }
    return 0;
}

bool sl_run_busy(sl_server_t *srv)
{
    sl_runs_t *runs = srv->runs;
    if (!runs)
        return false;
    pthread_mutex_lock(&runs->lock);
    bool busy = runs->nactive > 0;
    pthread_mutex_unlock(&runs->lock);
    return busy;
}
