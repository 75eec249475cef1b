/*
 * Mailbox tests: FIFO order, the per-class full policy, and a
 * multi-producer stress that checks exactly-once, per-producer-order
 * delivery (run under TSan in CI).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/mailbox.h"

#include "tests/check.h"

typedef struct tmsg {
    sl_msg_t h;
    uint32_t producer;
    uint32_t n;
} tmsg_t;

static void test_mailbox_fifo(void)
{
    sl_mailbox_t mb;
    sl_mailbox_init(&mb, 8);
    tmsg_t m[5];
    memset(m, 0, sizeof m);
    CHECK(sl_mailbox_pop(&mb) == NULL);
    for (uint32_t i = 0; i < 5; i++) {
        uint32_t before = 99;
        m[i].n = i;
        CHECK(sl_mailbox_push(&mb, &m[i].h, &before) == 0);
        CHECK(before == i);
    }
    for (uint32_t i = 0; i < 5; i++) {
        tmsg_t *got = (tmsg_t *)(void *)sl_mailbox_pop(&mb);
        CHECK(got == &m[i]);
    }
    CHECK(sl_mailbox_pop(&mb) == NULL);
    CHECK(sl_mailbox_retire(&mb, 5) == 0);
    /* A popped message is detached: pushing it again works at once. */
    CHECK(sl_mailbox_push(&mb, &m[0].h, NULL) == 0);
    CHECK(sl_mailbox_pop(&mb) == &m[0].h);
    CHECK(sl_mailbox_pop(&mb) == NULL);
    CHECK(sl_mailbox_retire(&mb, 1) == 0);
}

static void test_mailbox_full_policy_per_class(void)
{
    sl_mailbox_t mb;
    sl_mailbox_init(&mb, 4);
    tmsg_t normal[5], ctl[3], io[3];
    memset(normal, 0, sizeof normal);
    memset(ctl, 0, sizeof ctl);
    memset(io, 0, sizeof io);
    for (int i = 0; i < 4; i++)
        CHECK(sl_mailbox_push(&mb, &normal[i].h, NULL) == 0);
    /* NORMAL at capacity: refused, mailbox unchanged. */
    CHECK(sl_mailbox_push(&mb, &normal[4].h, NULL) == SL_EFULL);
    CHECK(sl_mailbox_depth(&mb) == 4);
    /* CONTROL and COMPLETION use reserved slots: never refused. */
    for (int i = 0; i < 3; i++) {
        ctl[i].h.mclass = SL_MSG_CONTROL;
        io[i].h.mclass = SL_MSG_COMPLETION;
        CHECK(sl_mailbox_push(&mb, &ctl[i].h, NULL) == 0);
        CHECK(sl_mailbox_push(&mb, &io[i].h, NULL) == 0);
    }
    CHECK(sl_mailbox_depth(&mb) == 10);
    /* Still refused until the consumer retires NORMAL-sized room. */
    CHECK(sl_mailbox_push(&mb, &normal[4].h, NULL) == SL_EFULL);
    int popped = 0;
    while (sl_mailbox_pop(&mb))
        popped++;
    CHECK(popped == 10);
    CHECK(sl_mailbox_retire(&mb, 10) == 0);
    uint32_t before = 7;
    CHECK(sl_mailbox_push(&mb, &normal[4].h, &before) == 0);
    CHECK(before == 0);
}

#define PRODUCERS 4
#define PER_PRODUCER 1000000u

typedef struct stress {
    sl_mailbox_t mb;
    tmsg_t *msgs[PRODUCERS];
    _Atomic int started;
} stress_t;

typedef struct prod_arg {
    stress_t *st;
    uint32_t id;
} prod_arg_t;

static void *producer_main(void *p)
{
    prod_arg_t *pa = p;
    atomic_fetch_add(&pa->st->started, 1);
    while (atomic_load(&pa->st->started) < PRODUCERS + 1) {
    }
    for (uint32_t i = 0; i < PER_PRODUCER; i++) {
        tmsg_t *m = &pa->st->msgs[pa->id][i];
        m->producer = pa->id;
        m->n = i;
        /* Bounded mailbox: the documented policy for NORMAL is the
         * sender's; here it is "retry", which exercises EFULL under load. */
        while (sl_mailbox_push(&pa->st->mb, &m->h, NULL) == SL_EFULL) {
        }
    }
    return NULL;
}

static void test_mailbox_mpsc_stress_exactly_once_in_order(void)
{
    static stress_t st;
    sl_mailbox_init(&st.mb, 4096);
    for (int p = 0; p < PRODUCERS; p++) {
        st.msgs[p] = calloc(PER_PRODUCER, sizeof(tmsg_t));
        CHECK(st.msgs[p] != NULL);
    }
    pthread_t th[PRODUCERS];
    prod_arg_t args[PRODUCERS];
    for (uint32_t p = 0; p < PRODUCERS; p++) {
        args[p] = (prod_arg_t){&st, p};
        CHECK(pthread_create(&th[p], NULL, producer_main, &args[p]) == 0);
    }
    atomic_fetch_add(&st.started, 1);
    uint32_t next[PRODUCERS] = {0};
    uint64_t total = 0;
    while (total < (uint64_t)PRODUCERS * PER_PRODUCER) {
        sl_msg_t *m = sl_mailbox_pop(&st.mb);
        if (!m)
            continue;
        tmsg_t *t = (tmsg_t *)(void *)m;
        CHECK(t->producer < PRODUCERS);
        CHECK(t->n == next[t->producer]); /* per-producer order, no dup/loss */
        next[t->producer]++;
        total++;
        if ((total & 63) == 0)
            sl_mailbox_retire(&st.mb, 64);
    }
    for (int p = 0; p < PRODUCERS; p++) {
        pthread_join(th[p], NULL);
        CHECK(next[p] == PER_PRODUCER);
    }
    CHECK(sl_mailbox_pop(&st.mb) == NULL);
    CHECK(sl_mailbox_retire(&st.mb, (uint32_t)(total & 63)) == 0);
    for (int p = 0; p < PRODUCERS; p++)
        free(st.msgs[p]);
}

int main(void)
{
    test_mailbox_fifo();
    test_mailbox_full_policy_per_class();
    test_mailbox_mpsc_stress_exactly_once_in_order();
    printf("mailbox_test: ok\n");
    return 0;
}
