/*
 * The group-commit thread. See syncer.h.
 */
#include "storage/syncer.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "runtime/base.h"
#include "runtime/fault.h"
#include "runtime/log.h"

struct sl_syncer {
    int fd;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    sl_syncer_wait_t *head, *tail; /* queued, not yet taken by a syncfs */
    bool stopping, stopped;
    _Atomic uint64_t syncs;
};

static void complete(sl_syncer_wait_t *w, int result)
{
    void (*wake)(void *) = w->wake;
    void *ctx = w->ctx;
    w->result = result;
    /* After this store the owner may reuse or free the record: read
     * everything needed first. */
    atomic_store_explicit(&w->state, SL_SYNCER_DONE, memory_order_release);
    if (wake)
        wake(ctx);
}

static void *syncer_main(void *arg)
{
    sl_syncer_t *s = arg;
    pthread_mutex_lock(&s->lock);
    for (;;) {
        while (!s->head && !s->stopping)
            pthread_cond_wait(&s->cond, &s->lock);
        if (!s->head)
            break; /* stopping with nothing queued */
        /* A generation: everything queued before this syncfs starts. */
        sl_syncer_wait_t *gen = s->head;
        s->head = s->tail = NULL;
        pthread_mutex_unlock(&s->lock);
        int rc = sl_fault("syncfs") ? -EIO : syncfs(s->fd) == 0 ? 0 : -errno;
        atomic_fetch_add_explicit(&s->syncs, 1, memory_order_relaxed);
        if (rc != 0)
            sl_error("syncfs failed", "error=\"%s\"", sl_strerror(rc));
        while (gen) {
            sl_syncer_wait_t *next = gen->next;
            complete(gen, rc);
            gen = next;
        }
        pthread_mutex_lock(&s->lock);
    }
    s->stopped = true;
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

int sl_syncer_create(sl_syncer_t **out, int fd)
{
    sl_syncer_t *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->fd = fd;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    int rc = pthread_create(&s->thread, NULL, syncer_main, s);
    if (rc != 0) {
        pthread_cond_destroy(&s->cond);
        pthread_mutex_destroy(&s->lock);
        free(s);
        return -rc;
    }
    pthread_setname_np(s->thread, "sl-syncer");
    *out = s;
    return 0;
}

void sl_syncer_stop(sl_syncer_t *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->lock);
    bool join = !s->stopping;
    s->stopping = true;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
    if (join)
        pthread_join(s->thread, NULL);
}

void sl_syncer_destroy(sl_syncer_t *s)
{
    if (!s)
        return;
    sl_syncer_stop(s);
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

void sl_syncer_request(sl_syncer_t *s, sl_syncer_wait_t *w)
{
    w->next = NULL;
    w->result = 0;
    atomic_store_explicit(&w->state, SL_SYNCER_QUEUED, memory_order_relaxed);
    pthread_mutex_lock(&s->lock);
    if (s->stopped) {
        pthread_mutex_unlock(&s->lock);
        complete(w, -ECANCELED);
        return;
    }
    if (s->tail)
        s->tail->next = w;
    else
        s->head = w;
    s->tail = w;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

uint64_t sl_syncer_syncs(const sl_syncer_t *s)
{
    return s ? atomic_load_explicit(&s->syncs, memory_order_relaxed) : 0;
}
