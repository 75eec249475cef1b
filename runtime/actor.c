/*
 * Actors and the work-sharing scheduler.
 *
 * Scheduling rule (Pony's, on a counter): an actor is in the run queue or
 * running exactly when its mailbox depth is > 0. The push that takes depth
 * 0 -> 1 queues the actor; a run pops up to `batch` messages, then retires
 * them from depth; if depth is still > 0 the worker queues the actor again
 * (behind everyone else: fairness), otherwise the next 0 -> 1 push will.
 * While an actor runs its depth is >= 1 (its popped-but-unretired messages),
 * so no producer can queue it a second time: one actor, one thread.
 *
 * The run queue is a bounded MPMC array (runtime/mpmc.h) sized >= the actor
 * population, so a push cannot fail (each actor is queued at most once).
 * Idle workers spin briefly, then sleep on a condition variable; a producer
 * signals only when a sleeper is registered (Dekker pair of seq_cst
 * operations on `sleepers` and the queue), so busy workers cost no syscall.
 */
#include "runtime/actor.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>

#include "runtime/clock.h"
#include "runtime/limits.h"
#include "runtime/mpmc.h"

/* How long an idle worker keeps polling the run queue before it sleeps.
 * While one worker spins, producers skip the wake-up syscall entirely. */
#define SPIN_NS 5000

typedef struct worker {
    pthread_t thread;
    sl_sched_t *sched;
    uint32_t index;
} worker_t;

struct sl_sched {
    sl_mpmc_t runq;
    sl_mpmc_t runq_hi; /* actors marked urgent (sessions): served first */
    uint32_t batch;
    uint32_t nworkers;
    worker_t *workers;
    bool started;
    alignas(SL_CACHELINE) _Atomic uint32_t sleepers;
    _Atomic uint32_t spinning; /* workers polling the queue before sleeping */
    _Atomic bool stopping;
    sl_sched_wake_fn wake_fn; /* inline mode: the host's wake-up */
    void *wake_ctx;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    /* Stats: written by workers and producers, read by the monitor. */
    alignas(SL_CACHELINE) _Atomic uint64_t runs;
    _Atomic uint64_t messages;
    _Atomic uint64_t lag_ns_max;
    _Atomic uint64_t lag_ns_recent;
    _Atomic uint32_t depth_max;
    _Atomic uint64_t refused[SL_MSG_CLASS_COUNT];
    _Atomic uint64_t notify_coalesced;
    _Atomic uint32_t actors_live;
    _Atomic uint64_t runq_stalls;
};

static void store_max64(_Atomic uint64_t *slot, uint64_t v)
{
    uint64_t cur = atomic_load_explicit(slot, memory_order_relaxed);
    while (v > cur && !atomic_compare_exchange_weak_explicit(slot, &cur, v, memory_order_relaxed,
                                                             memory_order_relaxed)) {
    }
}

static void store_max32(_Atomic uint32_t *slot, uint32_t v)
{
    uint32_t cur = atomic_load_explicit(slot, memory_order_relaxed);
    while (v > cur && !atomic_compare_exchange_weak_explicit(slot, &cur, v, memory_order_relaxed,
                                                             memory_order_relaxed)) {
    }
}

/* Puts a runnable actor on the run queue and wakes a sleeper if any. The
 * caller has made a reference available for the queue. */
/* The inline scheduler whose host is the calling thread (set while it runs
 * actors in sl_sched_run_some), or NULL. */
static _Thread_local sl_sched_t *tl_hosting;

static void enqueue(sl_sched_t *s, sl_actor_t *a, bool first)
{
    a->_scheduled_ns = sl_clock_now_ns();
    /* Capacity >= actor population and an actor is queued at most once, so
     * the queue is never really full. A push can still see "full" for a
     * moment: a consumer preempted between claiming a cell and freeing it
     * blocks that cell while others lap the array. That stall ends when the
     * consumer runs again, so yield and retry (counted; bounded by the
     * preempted thread's next time slice). */
    sl_mpmc_t *q = a->_urgent || first ? &s->runq_hi : &s->runq;
    while (sl_mpmc_push(q, a) != 0) {
        atomic_fetch_add_explicit(&s->runq_stalls, 1, memory_order_relaxed);
        sched_yield();
    }
    /* A send between two actors of one inline scheduler: the host is this
     * thread, awake, and re-checks has_ready before it sleeps, so no fence
     * and no wake-up call (a local hand-off costs a queue push only). */
    if (s == tl_hosting)
        return;
    /* Dekker with the sleeper's seq_cst increment then re-check of runq (a
     * spinner re-checks too, after its decrement, before it sleeps). */
    atomic_thread_fence(memory_order_seq_cst);
    if (s->wake_fn) { /* inline: the host re-checks has_ready before it sleeps */
        s->wake_fn(s->wake_ctx);
        return;
    }
    if (atomic_load_explicit(&s->spinning, memory_order_seq_cst) == 0 &&
        atomic_load_explicit(&s->sleepers, memory_order_seq_cst) > 0) {
        pthread_mutex_lock(&s->lock);
        pthread_cond_signal(&s->cond);
        pthread_mutex_unlock(&s->lock);
    }
}

static void run_actor(sl_sched_t *s, sl_actor_t *a)
{
    uint64_t now = sl_clock_now_ns();
    uint64_t lag = now > a->_scheduled_ns ? now - a->_scheduled_ns : 0;
    store_max64(&s->lag_ns_max, lag);
    uint64_t recent = atomic_load_explicit(&s->lag_ns_recent, memory_order_relaxed);
    atomic_store_explicit(&s->lag_ns_recent, recent - recent / 8 + lag / 8, memory_order_relaxed);

    /* Each message is retired once the next one is popped, so depth (and
     * the capacity check) counts only the one being handled, never a whole
     * batch, while depth stays >= 1 until the run ends. */
    uint32_t n = 0;
    while (n < s->batch) {
        sl_msg_t *m = sl_mailbox_pop(&a->_mb);
        if (!m)
            break;
        if (n > 0)
            sl_mailbox_retire(&a->_mb, 1);
        if (m == &a->_notify_msg)
            m->_flags = 0; /* detached: may be pushed again */
        a->_behavior(a, m);
        n++;
    }
    atomic_fetch_add_explicit(&s->runs, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->messages, n, memory_order_relaxed);
    uint32_t left = sl_mailbox_retire(&a->_mb, n > 0 ? 1 : 0);
    if (left > 0) {
        if (n == 0)
            sched_yield(); /* a producer is mid-push; let it finish */
        enqueue(s, a, false); /* keeps the scheduler's reference */
    } else {
        sl_actor_release(a); /* the scheduler's reference */
    }
}

/* Urgent actors first: a session that sequences events for a thousand
 * subscribers should not queue behind the wake-ups it just caused. A
 * worker still takes a normal actor after every SL_URGENT_RUN urgent runs,
 * so normal actors are never starved. */
#define SL_URGENT_RUN 8
static _Thread_local uint32_t urgent_streak;

static sl_actor_t *pop_any(sl_sched_t *s)
{
    sl_actor_t *a = NULL;
    if (urgent_streak < SL_URGENT_RUN && (a = sl_mpmc_pop(&s->runq_hi)) != NULL) {
        urgent_streak++;
        return a;
    }
    urgent_streak = 0;
    if ((a = sl_mpmc_pop(&s->runq)) != NULL)
        return a;
    return sl_mpmc_pop(&s->runq_hi);
}

static sl_actor_t *wait_for_work(sl_sched_t *s)
{
    atomic_fetch_add_explicit(&s->spinning, 1, memory_order_seq_cst);
    uint64_t until = sl_clock_now_ns() + SPIN_NS;
    for (uint32_t i = 0;; i++) {
        sl_actor_t *a = pop_any(s);
        if (a) {
            atomic_fetch_sub_explicit(&s->spinning, 1, memory_order_seq_cst);
            return a;
        }
        __builtin_ia32_pause();
        if ((i & 63) == 63 && (sl_clock_now_ns() >= until ||
                               atomic_load_explicit(&s->stopping, memory_order_relaxed)))
            break;
    }
    atomic_fetch_sub_explicit(&s->spinning, 1, memory_order_seq_cst);
    pthread_mutex_lock(&s->lock);
    atomic_fetch_add_explicit(&s->sleepers, 1, memory_order_seq_cst);
    sl_actor_t *a = NULL;
    for (;;) {
        a = pop_any(s);
        if (a || atomic_load_explicit(&s->stopping, memory_order_acquire))
            break;
        pthread_cond_wait(&s->cond, &s->lock);
    }
    atomic_fetch_sub_explicit(&s->sleepers, 1, memory_order_seq_cst);
    pthread_mutex_unlock(&s->lock);
    return a;
}

void sl_sched_set_inline(sl_sched_t *s, sl_sched_wake_fn wake, void *ctx)
{
    sl_assert(s->nworkers == 0 && !s->started);
    s->wake_fn = wake;
    s->wake_ctx = ctx;
}

uint32_t sl_sched_run_some(sl_sched_t *s, uint32_t max)
{
    uint32_t n = 0;
    sl_actor_t *a;
    sl_sched_t *outer = tl_hosting; /* NULL unless a host nests (shutdown drain) */
    tl_hosting = s;
    while (n < max && (a = pop_any(s)) != NULL) {
        run_actor(s, a);
        n++;
    }
    tl_hosting = outer;
    return n;
}

bool sl_sched_has_ready(sl_sched_t *s)
{
    return sl_mpmc_maybe_nonempty(&s->runq) || sl_mpmc_maybe_nonempty(&s->runq_hi);
}

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    sl_sched_t *s = w->sched;
    for (;;) {
        sl_actor_t *a = pop_any(s);
        if (!a)
            a = wait_for_work(s);
        if (!a)
            break; /* stopping and nothing queued */
        run_actor(s, a);
    }
    return NULL;
}

int sl_sched_create(const sl_sched_config_t *cfg, sl_sched_t **out)
{
    if (cfg->workers > SL_WORKERS_MAX || cfg->batch < 1 ||
        cfg->runq_capacity < 2)
        return SL_EINVAL;
    sl_sched_t *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->workers = calloc(cfg->workers ? cfg->workers : 1, sizeof *s->workers);
    if (!s->workers || sl_mpmc_init(&s->runq, cfg->runq_capacity) != 0 ||
        sl_mpmc_init(&s->runq_hi, cfg->runq_capacity) != 0) {
        sl_mpmc_deinit(&s->runq); /* the struct is zeroed: safe if never set */
        sl_mpmc_deinit(&s->runq_hi);
        free(s->workers);
        free(s);
        return -ENOMEM;
    }
    s->batch = cfg->batch;
    s->nworkers = cfg->workers;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    *out = s;
    return 0;
}

int sl_sched_start(sl_sched_t *s)
{
    if (s->nworkers == 0 && !s->wake_fn)
        return SL_EINVAL; /* nothing would ever run an actor */
    for (uint32_t i = 0; i < s->nworkers; i++) {
        s->workers[i].sched = s;
        s->workers[i].index = i;
        int rc = pthread_create(&s->workers[i].thread, NULL, worker_main, &s->workers[i]);
        if (rc != 0) {
            s->nworkers = i; /* join the ones that started */
            sl_sched_stop(s);
            return -rc;
        }
    }
    s->started = true;
    return 0;
}

void sl_sched_stop(sl_sched_t *s)
{
    atomic_store_explicit(&s->stopping, true, memory_order_release);
    pthread_mutex_lock(&s->lock);
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
    for (uint32_t i = 0; i < s->nworkers; i++)
        pthread_join(s->workers[i].thread, NULL);
    s->nworkers = 0;
    /* Inline: the host has stopped; finish what is queued here, as the
     * workers would (bounded: stopped actors only wind down). */
    for (int i = 0; s->wake_fn && i < 1000 && sl_sched_run_some(s, 1024) > 0; i++) {
    }
}

void sl_sched_destroy(sl_sched_t *s)
{
    if (!s)
        return;
    sl_mpmc_deinit(&s->runq);
    sl_mpmc_deinit(&s->runq_hi);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->cond);
    free(s->workers);
    free(s);
}

void sl_sched_stats(sl_sched_t *s, sl_sched_stats_t *out)
{
    out->workers = s->nworkers;
    out->runs = atomic_load_explicit(&s->runs, memory_order_relaxed);
    out->messages = atomic_load_explicit(&s->messages, memory_order_relaxed);
    out->lag_ns_max = atomic_exchange_explicit(&s->lag_ns_max, 0, memory_order_relaxed);
    out->lag_ns_recent = atomic_load_explicit(&s->lag_ns_recent, memory_order_relaxed);
    out->mailbox_depth_max = atomic_exchange_explicit(&s->depth_max, 0, memory_order_relaxed);
    for (int i = 0; i < SL_MSG_CLASS_COUNT; i++)
        out->refused[i] = atomic_load_explicit(&s->refused[i], memory_order_relaxed);
    out->notify_coalesced = atomic_load_explicit(&s->notify_coalesced, memory_order_relaxed);
    out->actors_live = atomic_load_explicit(&s->actors_live, memory_order_relaxed);
    out->runq_stalls = atomic_load_explicit(&s->runq_stalls, memory_order_relaxed);
}

void sl_actor_init(sl_actor_t *a, sl_sched_t *s, const char *name, uint32_t mailbox_capacity,
                   sl_actor_behavior_cb behavior, sl_actor_destroy_cb destroy)
{
    sl_assert(behavior != NULL);
    sl_mailbox_init(&a->_mb, mailbox_capacity);
    a->_behavior = behavior;
    a->_destroy = destroy;
    a->_sched = s;
    a->name = name;
    a->_scheduled_ns = 0;
    a->_urgent = false;
    atomic_store_explicit(&a->_refs, 1, memory_order_relaxed);
    atomic_store_explicit(&a->_notify_bits, 0, memory_order_relaxed);
    a->_notify_msg.kind = SL_MSG_KIND_NOTIFY;
    a->_notify_msg.mclass = SL_MSG_CONTROL;
    a->_notify_msg._flags = 0;
    a->_notify_msg.release = NULL;
    atomic_fetch_add_explicit(&s->actors_live, 1, memory_order_relaxed);
}

void sl_actor_retain(sl_actor_t *a)
{
    uint32_t before = atomic_fetch_add_explicit(&a->_refs, 1, memory_order_relaxed);
    sl_assert(before > 0);
}

void sl_actor_release(sl_actor_t *a)
{
    /* acq_rel: every use of the actor by this thread happens before the
     * destroy that the last releaser runs. */
    uint32_t before = atomic_fetch_sub_explicit(&a->_refs, 1, memory_order_acq_rel);
    sl_assert(before > 0);
    if (before == 1) {
        sl_sched_t *s = a->_sched;
        sl_assert(sl_mailbox_depth(&a->_mb) == 0);
        atomic_fetch_sub_explicit(&s->actors_live, 1, memory_order_relaxed);
        if (a->_destroy)
            a->_destroy(a);
    }
}

static int send_msg(sl_actor_t *a, sl_msg_t *msg, bool first)
{
    sl_sched_t *s = a->_sched;
    uint32_t before;
    int rc = sl_mailbox_push(&a->_mb, msg, &before);
    if (rc != 0) {
        atomic_fetch_add_explicit(&s->refused[msg->mclass], 1, memory_order_relaxed);
        return rc;
    }
    store_max32(&s->depth_max, before + 1);
    if (before == 0) {
        sl_actor_retain(a); /* the scheduler's reference */
        enqueue(s, a, first);
    }
    return 0;
}

int sl_actor_send(sl_actor_t *a, sl_msg_t *msg) { return send_msg(a, msg, false); }

int sl_actor_send_input(sl_actor_t *a, sl_msg_t *msg) { return send_msg(a, msg, true); }

void sl_actor_notify(sl_actor_t *a, uint64_t bits)
{
    sl_assert(bits != 0);
    /* Pairs with the exchange in sl_actor_take_notify. */
    uint64_t old = atomic_fetch_or_explicit(&a->_notify_bits, bits, memory_order_acq_rel);
    if (old != 0) {
        atomic_fetch_add_explicit(&a->_sched->notify_coalesced, 1, memory_order_relaxed);
        return;
    }
    sl_assert(a->_notify_msg._flags == 0); /* only one notify in flight */
    a->_notify_msg._flags = 1;
    int rc = sl_actor_send(a, &a->_notify_msg);
    sl_assert(rc == 0); /* CONTROL is never refused */
}

uint64_t sl_actor_take_notify(sl_actor_t *self)
{
    return atomic_exchange_explicit(&self->_notify_bits, 0, memory_order_acq_rel);
}
