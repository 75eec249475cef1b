/*
 * Actor runtime tests: exactly-once ordered delivery through the scheduler
 * under multi-producer load, the full policy of each message class, notify
 * coalescing, batch-then-yield fairness, ping-pong scheduling edges and
 * reference-counted teardown. The scheduler tests run under TSan in CI.
 */
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/actor.h"
#include "runtime/clock.h"

#include "tests/check.h"

typedef struct tmsg {
    sl_msg_t h;
    uint32_t producer;
    uint32_t n;
} tmsg_t;

static sl_sched_t *new_sched(uint32_t workers)
{
    sl_sched_t *s = NULL;
    sl_sched_config_t cfg = {.workers = workers, .batch = 64, .runq_capacity = 64};
    CHECK(sl_sched_create(&cfg, &s) == 0);
    return s;
}

/* Waits (bounded) until *v reaches want. */
static void wait_for(_Atomic uint64_t *v, uint64_t want, double seconds)
{
    uint64_t deadline = sl_clock_now_ns() + (uint64_t)(seconds * 1e9);
    while (atomic_load(v) < want) {
        CHECK(sl_clock_now_ns() < deadline);
        usleep(1000);
    }
}

/* ---- multi-producer stress through a real actor ---- */

#define PRODUCERS 4
#define PER_PRODUCER 1000000u
#define INLINE_PER_PRODUCER 100000u

typedef struct counter_actor {
    sl_actor_t a;
    uint32_t next[PRODUCERS];
    _Atomic uint64_t total;
    _Atomic uint64_t errors;
} counter_actor_t;

static void counter_behavior(sl_actor_t *self, sl_msg_t *m)
{
    counter_actor_t *c = (counter_actor_t *)self;
    tmsg_t *t = (tmsg_t *)(void *)m;
    if (t->producer >= PRODUCERS || t->n != c->next[t->producer])
        atomic_fetch_add(&c->errors, 1);
    else
        c->next[t->producer]++;
    atomic_fetch_add_explicit(&c->total, 1, memory_order_release);
}

typedef struct prod_arg {
    counter_actor_t *c;
    tmsg_t *msgs;
    uint32_t id;
    uint64_t refused;
} prod_arg_t;

static void *producer_main(void *p)
{
    prod_arg_t *pa = p;
    for (uint32_t i = 0; i < PER_PRODUCER; i++) {
        tmsg_t *m = &pa->msgs[i];
        m->producer = pa->id;
        m->n = i;
        while (sl_actor_send(&pa->c->a, &m->h) == SL_EFULL) {
            pa->refused++; /* policy under test: the sender waits and retries */
            sched_yield();
        }
    }
    return NULL;
}

static void *inline_producer_main(void *p)
{
    prod_arg_t *pa = p;
    for (uint32_t i = 0; i < INLINE_PER_PRODUCER; i++) {
        tmsg_t *m = &pa->msgs[i];
        m->producer = pa->id;
        m->n = i;
        while (sl_actor_send(&pa->c->a, &m->h) == SL_EFULL) {
            pa->refused++;
            sched_yield();
        }
    }
    return NULL;
}

static void test_actor_mpsc_stress_exactly_once_in_order(void)
{
    sl_sched_t *s = new_sched(2);
    CHECK(sl_sched_start(s) == 0);
    static counter_actor_t c;
    sl_actor_init(&c.a, s, "counter", 256, counter_behavior, NULL);
    pthread_t th[PRODUCERS];
    prod_arg_t args[PRODUCERS];
    for (uint32_t p = 0; p < PRODUCERS; p++) {
        args[p] = (prod_arg_t){&c, calloc(PER_PRODUCER, sizeof(tmsg_t)), p, 0};
        CHECK(args[p].msgs != NULL);
        CHECK(pthread_create(&th[p], NULL, producer_main, &args[p]) == 0);
    }
    for (int p = 0; p < PRODUCERS; p++)
        pthread_join(th[p], NULL);
    wait_for(&c.total, (uint64_t)PRODUCERS * PER_PRODUCER, 240);
    sl_sched_stop(s);
    CHECK(atomic_load(&c.errors) == 0);
    CHECK(atomic_load(&c.total) == (uint64_t)PRODUCERS * PER_PRODUCER);
    for (int p = 0; p < PRODUCERS; p++) {
        CHECK(c.next[p] == PER_PRODUCER);
        free(args[p].msgs);
    }
    sl_sched_stats_t st;
    sl_sched_stats(s, &st);
    CHECK(st.messages == (uint64_t)PRODUCERS * PER_PRODUCER);
    CHECK(st.mailbox_depth_max <= 256);
    sl_actor_release(&c.a);
    CHECK(sl_actor_depth(&c.a) == 0);
    sl_sched_destroy(s);
}

/* ---- per-class full policy ---- */

typedef struct log_actor {
    sl_actor_t a;
    _Atomic uint64_t seen;
    _Atomic uint64_t seen_control;
    _Atomic uint64_t seen_io;
    _Atomic uint64_t notify_msgs;
    _Atomic uint64_t notify_bits;
    _Atomic int destroyed;
} log_actor_t;

static void log_behavior(sl_actor_t *self, sl_msg_t *m)
{
    log_actor_t *l = (log_actor_t *)self;
    if (m->kind == SL_MSG_KIND_NOTIFY) {
        atomic_fetch_add(&l->notify_msgs, 1);
        atomic_fetch_or(&l->notify_bits, sl_actor_take_notify(self));
    } else if (m->mclass == SL_MSG_CONTROL) {
        atomic_fetch_add(&l->seen_control, 1);
    } else if (m->mclass == SL_MSG_COMPLETION) {
        atomic_fetch_add(&l->seen_io, 1);
    }
    sl_msg_release(m);
    atomic_fetch_add_explicit(&l->seen, 1, memory_order_release);
}

static void log_destroy(sl_actor_t *self)
{
    atomic_fetch_add(&((log_actor_t *)self)->destroyed, 1);
}

static void test_actor_full_policy_per_class(void)
{
    sl_sched_t *s = new_sched(1); /* not started: nothing drains */
    static log_actor_t l;
    sl_actor_init(&l.a, s, "log", 8, log_behavior, log_destroy);
    static tmsg_t normal[9], ctl[4], io[4];
    for (int i = 0; i < 8; i++)
        CHECK(sl_actor_send(&l.a, &normal[i].h) == 0);
    CHECK(sl_actor_send(&l.a, &normal[8].h) == SL_EFULL); /* NORMAL: refused */
    for (int i = 0; i < 4; i++) {
        ctl[i].h.mclass = SL_MSG_CONTROL;
        io[i].h.mclass = SL_MSG_COMPLETION;
        CHECK(sl_actor_send(&l.a, &ctl[i].h) == 0); /* reserved: accepted */
        CHECK(sl_actor_send(&l.a, &io[i].h) == 0);
    }
    /* Notify coalesces: 100 signals, one message, all bits. */
    for (int i = 0; i < 100; i++)
        sl_actor_notify(&l.a, 1ull << (i % 40));
    CHECK(sl_actor_depth(&l.a) == 8 + 8 + 1);
    sl_sched_stats_t st;
    sl_sched_stats(s, &st);
    CHECK(st.refused[SL_MSG_NORMAL] == 1);
    CHECK(st.refused[SL_MSG_CONTROL] == 0);
    CHECK(st.notify_coalesced == 99);
    CHECK(sl_sched_start(s) == 0);
    wait_for(&l.seen, 17, 10);
    CHECK(atomic_load(&l.seen_control) == 4);
    CHECK(atomic_load(&l.seen_io) == 4);
    CHECK(atomic_load(&l.notify_msgs) == 1);
    CHECK(atomic_load(&l.notify_bits) == (1ull << 40) - 1);
    /* After the notify was taken, the next signal sends a new message. */
    sl_actor_notify(&l.a, 4);
    wait_for(&l.seen, 18, 10);
    CHECK(atomic_load(&l.notify_msgs) == 2);
    /* Room again: NORMAL accepted. */
    CHECK(sl_actor_send(&l.a, &normal[8].h) == 0);
    wait_for(&l.seen, 19, 10);
    CHECK(atomic_load(&l.destroyed) == 0);
    sl_actor_release(&l.a);
    /* The scheduler's reference goes when the run ends; wait for it. */
    uint64_t deadline = sl_clock_now_ns() + 10 * 1000000000ull;
    while (atomic_load(&l.destroyed) == 0)
        CHECK(sl_clock_now_ns() < deadline);
    CHECK(atomic_load(&l.destroyed) == 1);
    sl_sched_stop(s);
    sl_sched_destroy(s);
}

/* ---- batch-then-yield fairness ---- */

typedef struct fair_actor {
    sl_actor_t a;
    _Atomic uint64_t *clock; /* shared message counter */
    _Atomic uint64_t handled;
    _Atomic uint64_t first_at;
} fair_actor_t;

static void fair_behavior(sl_actor_t *self, sl_msg_t *m)
{
    fair_actor_t *f = (fair_actor_t *)self;
    uint64_t t = atomic_fetch_add(f->clock, 1);
    if (atomic_fetch_add(&f->handled, 1) == 0)
        atomic_store(&f->first_at, t);
    sl_msg_release(m);
}

static void test_actor_batch_then_yield(void)
{
    sl_sched_t *s = new_sched(1);
    static _Atomic uint64_t clock;
    static fair_actor_t busy, quiet;
    busy.clock = quiet.clock = &clock;
    sl_actor_init(&busy.a, s, "busy", 20000, fair_behavior, NULL);
    sl_actor_init(&quiet.a, s, "quiet", 8, fair_behavior, NULL);
    static tmsg_t flood[10000], one;
    for (int i = 0; i < 10000; i++)
        CHECK(sl_actor_send(&busy.a, &flood[i].h) == 0);
    CHECK(sl_actor_send(&quiet.a, &one.h) == 0);
    CHECK(sl_sched_start(s) == 0);
    wait_for(&busy.handled, 10000, 10);
    wait_for(&quiet.handled, 1, 10);
    /* quiet was queued second: it runs after busy's first batch of 64. */
    CHECK(atomic_load(&quiet.first_at) == 64);
    sl_sched_stop(s);
    sl_actor_release(&busy.a);
    sl_actor_release(&quiet.a);
    sl_sched_destroy(s);
}

/* ---- ping-pong: the 0 -> 1 scheduling edge, 200k times ---- */

#define PINGS 100000u

typedef struct pp_actor {
    sl_actor_t a;
    struct pp_actor *peer;
    tmsg_t ball;
    _Atomic uint64_t hits;
} pp_actor_t;

static void pp_behavior(sl_actor_t *self, sl_msg_t *m)
{
    pp_actor_t *p = (pp_actor_t *)self;
    tmsg_t *t = (tmsg_t *)(void *)m;
    uint64_t h = atomic_fetch_add(&p->hits, 1) + 1;
    if (t->n < 2 * PINGS) {
        t->n++;
        CHECK(sl_actor_send(&p->peer->a, m) == 0);
    }
    (void)h;
}

static void test_actor_ping_pong(void)
{
    sl_sched_t *s = new_sched(2);
    static pp_actor_t a, b;
    sl_actor_init(&a.a, s, "ping", 4, pp_behavior, NULL);
    sl_actor_init(&b.a, s, "pong", 4, pp_behavior, NULL);
    a.peer = &b;
    b.peer = &a;
    CHECK(sl_sched_start(s) == 0);
    a.ball.n = 1;
    CHECK(sl_actor_send(&a.a, &a.ball.h) == 0);
    wait_for(&b.hits, PINGS, 60);
    wait_for(&a.hits, PINGS, 60);
    sl_sched_stop(s);
    CHECK(atomic_load(&a.hits) + atomic_load(&b.hits) == 2 * PINGS);
    sl_actor_release(&a.a);
    sl_actor_release(&b.a);
    sl_sched_destroy(s);
}

/* ---- inline mode: no workers, a host thread runs the actors ---- */

typedef struct host {
    sl_sched_t *s;
    _Atomic uint64_t wakes;
    _Atomic int stop;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool signalled;
} host_t;

static void host_wake(void *ctx)
{
    host_t *h = ctx;
    atomic_fetch_add(&h->wakes, 1);
    pthread_mutex_lock(&h->lock);
    h->signalled = true;
    pthread_cond_signal(&h->cond);
    pthread_mutex_unlock(&h->lock);
}

/* The host loop a reactor runs: actors, then sleep only when none is
 * runnable (re-checked under the lock the wake takes). */
static void *host_main(void *p)
{
    host_t *h = p;
    while (!atomic_load(&h->stop)) {
        if (sl_sched_run_some(h->s, 16) > 0)
            continue;
        pthread_mutex_lock(&h->lock);
        while (!h->signalled && !sl_sched_has_ready(h->s) && !atomic_load(&h->stop))
            pthread_cond_wait(&h->cond, &h->lock);
        h->signalled = false;
        pthread_mutex_unlock(&h->lock);
    }
    return NULL;
}

static void test_actor_inline_host_exactly_once(void)
{
    sl_sched_t *s = new_sched(0);
    CHECK(sl_sched_start(s) == SL_EINVAL); /* no workers and no host: refused */
    static host_t h;
    h.s = s;
    pthread_mutex_init(&h.lock, NULL);
    pthread_cond_init(&h.cond, NULL);
    sl_sched_set_inline(s, host_wake, &h);
    CHECK(sl_sched_start(s) == 0);
    static counter_actor_t c;
    sl_actor_init(&c.a, s, "counter", 256, counter_behavior, NULL);
    pthread_t host, th[PRODUCERS];
    CHECK(pthread_create(&host, NULL, host_main, &h) == 0);
    prod_arg_t args[PRODUCERS];
    for (uint32_t p = 0; p < PRODUCERS; p++) {
        args[p] = (prod_arg_t){&c, calloc(INLINE_PER_PRODUCER, sizeof(tmsg_t)), p, 0};
        CHECK(args[p].msgs != NULL);
    }
    /* Reuse the stress producer with a smaller count. */
    for (uint32_t p = 0; p < PRODUCERS; p++)
        CHECK(pthread_create(&th[p], NULL, inline_producer_main, &args[p]) == 0);
    for (int p = 0; p < PRODUCERS; p++)
        pthread_join(th[p], NULL);
    wait_for(&c.total, (uint64_t)PRODUCERS * INLINE_PER_PRODUCER, 120);
    atomic_store(&h.stop, 1);
    host_wake(&h);
    pthread_join(host, NULL);
    sl_sched_stop(s);
    CHECK(atomic_load(&c.errors) == 0);
    for (int p = 0; p < PRODUCERS; p++) {
        CHECK(c.next[p] == INLINE_PER_PRODUCER);
        free(args[p].msgs);
    }
    CHECK(atomic_load(&h.wakes) > 0);
    sl_actor_release(&c.a);
    sl_sched_destroy(s);
    pthread_mutex_destroy(&h.lock);
    pthread_cond_destroy(&h.cond);
}

/* ---- input first ---- */

typedef struct order_actor {
    sl_actor_t a;
    uint32_t id;
} order_actor_t;

static uint32_t order_log[64], order_n;

static void order_behavior(sl_actor_t *self, sl_msg_t *m)
{
    (void)m;
    order_log[order_n++] = ((order_actor_t *)self)->id;
}

/* An actor made runnable by input (sl_actor_send_input) runs before the
 * normal actors queued ahead of it; normal ones keep their order. */
static void test_actor_input_served_first(void)
{
    sl_sched_t *s = new_sched(0);
    static host_t h;
    h.s = s;
    sl_sched_set_inline(s, host_wake, &h);
    CHECK(sl_sched_start(s) == 0);
    enum { N = 6 };
    static order_actor_t act[N];
    static sl_msg_t msg[N];
    for (uint32_t i = 0; i < N; i++) {
        act[i].id = i;
        sl_actor_init(&act[i].a, s, "order", 16, order_behavior, NULL);
        msg[i] = (sl_msg_t){.kind = SL_MSG_KIND_USER, .mclass = SL_MSG_COMPLETION};
    }
    for (uint32_t i = 0; i < N - 1; i++)
        CHECK(sl_actor_send(&act[i].a, &msg[i]) == 0);
    CHECK(sl_actor_send_input(&act[N - 1].a, &msg[N - 1]) == 0);
    order_n = 0;
    while (sl_sched_run_some(s, 1) > 0) {
    }
    CHECK(order_n == N);
    CHECK(order_log[0] == N - 1); /* the input first */
    for (uint32_t i = 1; i < N; i++)
        CHECK(order_log[i] == i - 1);
    sl_sched_stop(s);
    for (uint32_t i = 0; i < N; i++)
        sl_actor_release(&act[i].a);
    sl_sched_destroy(s);
}

int main(void)
{
    test_actor_input_served_first();
    test_actor_inline_host_exactly_once();
    test_actor_full_policy_per_class();
    test_actor_batch_then_yield();
    test_actor_ping_pong();
    test_actor_mpsc_stress_exactly_once_in_order();
    printf("actor_test: ok\n");
    return 0;
}
