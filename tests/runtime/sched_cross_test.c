/*
 * Thread-per-core scheduling: two reactors, each hosting its own inline
 * scheduler, exchange messages between their actors. Checks that every
 * cross-scheduler send is delivered exactly once and in order, that sends
 * within one scheduler (the host's own, no wake-up) are all delivered, and
 * that no wake-up is lost: the lag probe is off, so a reactor that missed
 * one would sleep forever and the bounded wait would fail. Runs under TSan
 * in CI.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/actor.h"
#include "runtime/clock.h"
#include "runtime/reactor.h"

#include "tests/check.h"

#define CHECK_EQ(a, b)                                                                    \
    do {                                                                                  \
        long long a_ = (long long)(a), b_ = (long long)(b);                               \
        if (a_ != b_) {                                                                   \
            fprintf(stderr, "%s:%d: CHECK_EQ failed: %s == %s (%lld vs %lld)\n", __FILE__, \
                    __LINE__, #a, #b, a_, b_);                                            \
            exit(1);                                                                      \
        }                                                                                 \
    } while (0)

#define SIDES 2
#define BALLS_MAX 64

typedef struct ball {
    sl_msg_t h;
    uint32_t id;
    uint32_t side;  /* the side that must receive it next */
    uint32_t hops;
    uint32_t limit; /* hops before it stops */
} ball_t;

typedef struct bouncer {
    sl_actor_t a;
    uint32_t side;
    struct bouncer *peer;
    struct counter *local;
    sl_reactor_t *want_thread; /* the reactor whose thread must run it */
    uint64_t received;         /* own thread only */
    _Atomic uint64_t received_pub;
    _Atomic uint64_t errors;
    _Atomic uint64_t *done;
} bouncer_t;

typedef struct counter {
    sl_actor_t a;
    sl_reactor_t *want_thread;
    _Atomic uint64_t got;
    _Atomic uint64_t errors;
} counter_t;

static void counter_behavior(sl_actor_t *self, sl_msg_t *m)
{
    counter_t *c = (counter_t *)self;
    if (sl_reactor_self() != c->want_thread)
        atomic_fetch_add(&c->errors, 1);
    atomic_fetch_add(&c->got, 1);
    sl_msg_release(m);
}

static void free_msg(sl_msg_t *m) { free(m); }

static void bouncer_behavior(sl_actor_t *self, sl_msg_t *m)
{
    bouncer_t *b = (bouncer_t *)self;
    ball_t *ball = (ball_t *)(void *)m;
    if (sl_reactor_self() != b->want_thread || ball->side != b->side)
        atomic_fetch_add(&b->errors, 1);
    b->received++;
    atomic_store(&b->received_pub, b->received);
    /* A hand-off to an actor of this same scheduler. */
    sl_msg_t *note = calloc(1, sizeof *note);
    CHECK(note != NULL);
    note->kind = SL_MSG_KIND_USER;
    note->mclass = SL_MSG_NORMAL;
    note->release = free_msg;
    CHECK(sl_actor_send(&b->local->a, note) == 0);
    if (++ball->hops == ball->limit) {
        atomic_fetch_add(b->done, 1);
        return;
    }
    ball->side = b->peer->side;
    /* Mailboxes hold every ball at once (plus the one each side has handled
     * and not yet retired): a send is never refused. */
    CHECK(sl_actor_send(&b->peer->a, &ball->h) == 0);
}

typedef struct env {
    sl_reactor_t *r[SIDES];
    sl_sched_t *s[SIDES];
    bouncer_t b[SIDES];
    counter_t c[SIDES];
    ball_t balls[BALLS_MAX];
    _Atomic uint64_t done;
} env_t;

static void env_up(env_t *e)
{
    memset(e, 0, sizeof *e);
    sl_reactor_config_t rc = {
        .sq_entries = 64, .recv_buffers = 8, .recv_buffer_bytes = 4096, .lag_probe_ns = 0};
    for (int i = 0; i < SIDES; i++) {
        sl_sched_config_t sc = {.workers = 0, .batch = 16, .runq_capacity = 16};
        CHECK_EQ(sl_sched_create(&sc, &e->s[i]), 0);
        CHECK_EQ(sl_reactor_create(&rc, (uint32_t)i, &e->r[i]), 0);
        sl_reactor_host_sched(e->r[i], e->s[i]);
        CHECK(sl_reactor_sched(e->r[i]) == e->s[i]);
        CHECK_EQ(sl_sched_start(e->s[i]), 0);
        sl_actor_init(&e->b[i].a, e->s[i], "bouncer", 2 * BALLS_MAX, bouncer_behavior, NULL);
        sl_actor_init(&e->c[i].a, e->s[i], "counter", 1u << 20, counter_behavior, NULL);
        e->b[i].side = (uint32_t)i;
        e->b[i].peer = &e->b[1 - i];
        e->b[i].local = &e->c[i];
        e->b[i].want_thread = e->r[i];
        e->b[i].done = &e->done;
        e->c[i].want_thread = e->r[i];
    }
    for (int i = 0; i < SIDES; i++)
        CHECK_EQ(sl_reactor_start(e->r[i]), 0);
    CHECK(sl_reactor_self() == NULL); /* the main thread is no reactor */
}

static void env_down(env_t *e)
{
    for (int i = 0; i < SIDES; i++)
        sl_reactor_stop(e->r[i]);
    for (int i = 0; i < SIDES; i++)
        sl_sched_stop(e->s[i]);
    for (int i = 0; i < SIDES; i++) {
        sl_actor_release(&e->b[i].a);
        sl_actor_release(&e->c[i].a);
        CHECK_EQ(atomic_load(&e->c[i].errors), 0);
        CHECK_EQ(atomic_load(&e->b[i].errors), 0);
    }
    for (int i = 0; i < SIDES; i++) {
        sl_reactor_destroy(e->r[i]);
        sl_sched_destroy(e->s[i]);
    }
}

/* Throws `balls` balls, each bouncing `hops` times starting on side 0 (sent
 * from the main thread), and waits (bounded) until all have stopped. */
static void play(env_t *e, uint32_t balls, uint32_t hops)
{
    uint64_t before[SIDES], local_before[SIDES];
    for (int i = 0; i < SIDES; i++) {
        before[i] = atomic_load(&e->b[i].received_pub);
        local_before[i] = atomic_load(&e->c[i].got);
    }
    atomic_store(&e->done, 0);
    for (uint32_t k = 0; k < balls; k++) {
        ball_t *b = &e->balls[k];
        *b = (ball_t){.h = {.kind = SL_MSG_KIND_USER, .mclass = SL_MSG_NORMAL},
                      .id = k, .side = 0, .hops = 0, .limit = hops};
        CHECK(sl_actor_send(&e->b[0].a, &b->h) == 0);
    }
    uint64_t deadline = sl_clock_now_ns() + 120 * SL_NS_PER_S;
    while (atomic_load(&e->done) < balls) {
        CHECK(sl_clock_now_ns() < deadline); /* a lost wake-up stalls here */
        usleep(1000);
    }
    uint64_t want = (uint64_t)balls * hops;
    uint64_t got = 0, local = 0;
    for (int i = 0; i < SIDES; i++) {
        got += atomic_load(&e->b[i].received_pub) - before[i];
        /* Side 0 gets hops (1, 3, 5, ...): ceil(hops / 2) per ball. */
        uint64_t side_want = (uint64_t)balls * (i == 0 ? (hops + 1) / 2 : hops / 2);
        CHECK_EQ(atomic_load(&e->b[i].received_pub) - before[i], side_want);
    }
    for (uint32_t k = 0; k < balls; k++)
        CHECK_EQ(e->balls[k].hops, hops);
    /* Local notes may still be queued behind the last hop: wait for them. */
    while (local < want) {
        CHECK(sl_clock_now_ns() < deadline);
        local = 0;
        for (int i = 0; i < SIDES; i++)
            local += atomic_load(&e->c[i].got) - local_before[i];
        if (local < want)
            usleep(1000);
    }
    CHECK_EQ(got, want);
    CHECK_EQ(local, want);
}

static void test_cross_sched_many_balls(void)
{
    static env_t e;
    env_up(&e);
    play(&e, BALLS_MAX, 4000); /* both hosts busy: mostly no wake-ups */
    usleep(20000);             /* both asleep now */
    play(&e, 1, 3000);         /* one ball: nearly every hop wakes a sleeper */
    usleep(20000);
    play(&e, 3, 2001);         /* odd hop count: the last hop lands on side 0 */
    sl_reactor_stats_t st[SIDES];
    for (int i = 0; i < SIDES; i++)
        sl_reactor_stats(e.r[i], &st[i]);
    printf("sched_cross_test: wakeups %llu + %llu\n", (unsigned long long)st[0].wakeups,
           (unsigned long long)st[1].wakeups);
    env_down(&e);
}

int main(void)
{
    test_cross_sched_many_balls();
    printf("sched_cross_test: ok\n");
    return 0;
}
