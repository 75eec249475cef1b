/*
 * Actors and the scheduler that runs them: on --workers threads, or inline
 * on a host thread (a reactor: one scheduler per reactor, thread-per-core).
 *
 * An actor is a struct embedding sl_actor_t (first member by convention),
 * a behaviour function and a bounded mailbox. It is scheduled when a push
 * finds its mailbox empty, runs at most `batch` messages on one worker, and
 * then yields (goes to the back of the run queue if more are pending). One
 * actor runs on at most one thread at a time, so its state needs no lock.
 *
 * Lifetime: an actor is reference counted. Whoever may send to it holds a
 * reference (sl_actor_retain), and the scheduler holds one while the actor
 * is queued or running, so the final sl_actor_release -- which calls the
 * destroy callback -- can only happen with an empty mailbox and the actor
 * not running. An actor that has decided to stop must still release the
 * messages that reach it until its last reference is gone.
 *
 * Coalesced wake-ups: sl_actor_notify() ORs bits into a word and enqueues the
 * actor's single preallocated notify message only on the 0 -> non-zero edge,
 * so a flood of "data available" signals costs one message per batch.
 */
#ifndef SL_RUNTIME_ACTOR_H
#define SL_RUNTIME_ACTOR_H

#include <stdatomic.h>
#include <stdint.h>

#include "runtime/base.h"
#include "runtime/mailbox.h"

typedef struct sl_actor sl_actor_t;
typedef struct sl_sched sl_sched_t;

/* Runs one message. Takes msg: the behaviour must release it
 * (sl_msg_release), keep it, or forward it. Worker thread. */
typedef void (*sl_actor_behavior_cb)(sl_actor_t *self, sl_msg_t *msg);
/* Frees the actor's memory after its last reference is gone. Any thread. */
typedef void (*sl_actor_destroy_cb)(sl_actor_t *self);

/* Message kinds reserved by the runtime (actors use kinds >= 16). */
enum {
    SL_MSG_KIND_NOTIFY = 1, /* coalesced wake-up; take bits with sl_actor_take_notify */
    SL_MSG_KIND_IO = 2,     /* an sl_op_t completion (runtime/reactor.h) */
    SL_MSG_KIND_USER = 16,
};

struct sl_actor {
    sl_mailbox_t _mb;
    sl_actor_behavior_cb _behavior;
    sl_actor_destroy_cb _destroy;
    sl_sched_t *_sched;
    const char *name;                 /* static string, for logs */
    alignas(SL_CACHELINE) _Atomic uint32_t _refs;
    _Atomic uint64_t _notify_bits;    /* senders OR in, behaviour exchanges out */
    sl_msg_t _notify_msg;             /* CONTROL class, embedded */
    uint64_t _scheduled_ns;           /* when last queued (scheduler lag) */
    bool _urgent;                     /* served before normal actors (see sl_actor_set_urgent) */
};

typedef struct sl_sched_config {
    uint32_t workers;        /* worker threads; 0: actors run on a host thread that
                                calls sl_sched_run_some (see sl_sched_set_inline) */
    uint32_t batch;          /* messages per run before yielding, >= 1 */
    uint32_t runq_capacity;  /* >= max live actors; rounded up to a power of two */
} sl_sched_config_t;

typedef struct sl_sched_stats {
    uint32_t workers;
    uint64_t runs;                        /* actor runs */
    uint64_t messages;                    /* messages delivered */
    uint64_t lag_ns_max;                  /* max queue->run delay since last read */
    uint64_t lag_ns_recent;               /* EWMA of queue->run delay */
    uint32_t mailbox_depth_max;           /* high water since last read */
    uint64_t refused[SL_MSG_CLASS_COUNT]; /* SL_EFULL returned, per class */
    uint64_t notify_coalesced;            /* notifies that found bits set */
    uint32_t actors_live;                 /* initialised and not destroyed */
    uint64_t runq_stalls;                 /* run-queue pushes retried (see enqueue) */
} sl_sched_stats_t;

/* Creates a scheduler (threads not started). Returns 0, -ENOMEM or SL_EINVAL
 * (bad config); *out unchanged on failure. Main thread. */
int sl_sched_create(const sl_sched_config_t *cfg, sl_sched_t **out);
/* Starts the worker threads. Returns 0 or -errno from pthread_create. */
int sl_sched_start(sl_sched_t *s);
/* Asks the workers to exit once the run queue is empty and joins them.
 * Main thread; call after every actor has been told to stop. */
void sl_sched_stop(sl_sched_t *s);
/* Inline mode (workers == 0; before start): no worker threads. The host
 * thread (a reactor) runs actors with sl_sched_run_some; wake(ctx) is
 * called from another thread after an actor became runnable, so a sleeping
 * host wakes up (the host itself, inside sl_sched_run_some, skips it: it
 * re-checks sl_sched_has_ready before sleeping). Several inline schedulers,
 * one per host thread, may send to each other's actors: a send pushes into
 * the target's mailbox and queues the actor on the target's scheduler. */
typedef void (*sl_sched_wake_fn)(void *ctx);
void sl_sched_set_inline(sl_sched_t *s, sl_sched_wake_fn wake, void *ctx);
/* Runs up to max runnable actors (one batch each) on the calling thread;
 * returns how many ran. Inline host only. */
uint32_t sl_sched_run_some(sl_sched_t *s, uint32_t max);
/* True when an actor may be runnable. Any thread. */
bool sl_sched_has_ready(sl_sched_t *s);
/* Frees the scheduler; workers must be stopped. */
void sl_sched_destroy(sl_sched_t *s);
/* Reads and resets the windowed stats (max values). Any thread. */
void sl_sched_stats(sl_sched_t *s, sl_sched_stats_t *out);

/* Initialises an actor on caller storage with one reference (the caller's).
 * name is borrowed for the actor's lifetime. Any thread. */
void sl_actor_init(sl_actor_t *a, sl_sched_t *s, const char *name,
                   uint32_t mailbox_capacity, sl_actor_behavior_cb behavior,
                   sl_actor_destroy_cb destroy);

void sl_actor_retain(sl_actor_t *a);
/* Drops a reference; the last one calls the destroy callback. */
void sl_actor_release(sl_actor_t *a);

/* Sends msg to a (caller holds a reference to a). Returns 0 (a now owns
 * msg) or SL_EFULL for a NORMAL message at capacity (caller keeps msg and
 * applies its policy; counted in stats). Any thread. */
int sl_actor_send(sl_actor_t *a, sl_msg_t *msg);
/* The same for input from a peer (a receive completing): when this message
 * is what makes a runnable, it is served with the urgent actors, so an
 * answer (GET /health, a publish's ack) does not wait behind a round of
 * fan-out wake-ups that were queued before it. */
int sl_actor_send_input(sl_actor_t *a, sl_msg_t *msg);

/* ORs bits into a's notify word; enqueues the notify message on the
 * 0 -> non-zero edge only. bits != 0. Any thread. */
void sl_actor_notify(sl_actor_t *a, uint64_t bits);
/* Takes and clears the pending notify bits. The actor's own thread, when
 * handling SL_MSG_KIND_NOTIFY. */
uint64_t sl_actor_take_notify(sl_actor_t *self);

/* Marks a freshly initialised actor (before anything is sent to it) as
 * urgent: its runs are taken before normal actors', at most
 * SL_URGENT_RUN in a row per worker. For actors whose latency others wait
 * on (sessions). */
static inline void sl_actor_set_urgent(sl_actor_t *a) { a->_urgent = true; }

/* The scheduler an actor runs on. */
static inline sl_sched_t *sl_actor_sched(sl_actor_t *a) { return a->_sched; }

/* Current mailbox depth (stats). */
static inline uint32_t sl_actor_depth(const sl_actor_t *a) { return sl_mailbox_depth(&a->_mb); }

#endif
