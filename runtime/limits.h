/*
 * Compile-time caps, in one place. Runtime values live in the config struct
 * (actors/config.h) and are validated against these at start. Each cap
 * names the policy applied when it is reached.
 */
#ifndef SL_RUNTIME_LIMITS_H
#define SL_RUNTIME_LIMITS_H

/* Scheduler: messages an actor runs before yielding its worker. */
#define SL_ACTOR_BATCH 64
/* Worker threads: --workers is clamped to 1..this (exit 2 beyond). */
#define SL_WORKERS_MAX 256
/* Reactor threads: --reactors 1..this. */
#define SL_REACTORS_MAX 64

/* Reactor: SQ entries per ring; a drain that fills the SQ submits and
 * continues (no op is ever refused). */
#define SL_REACTOR_SQ_ENTRIES 4096
/* Reactor: provided receive buffers per reactor (power of two) and size.
 * Policy when all are lent out: recvs wait for a buffer to return. */
#define SL_RECV_BUFFERS_DEFAULT 4096
#define SL_RECV_BUFFERS_MAX 32768
#define SL_RECV_BUFFER_BYTES 16384
/* Reactor: ops drained from the request queue per loop iteration before
 * CQEs are reaped again (fairness between submitters and completions). */
#define SL_REACTOR_DRAIN_MAX 1024

/* Output queue: segments per connection (policy: producer stops, resumes
 * when the send completes). */
#define SL_OUTQ_SEGS 1024
/* iovecs per sendmsg (kernel UIO_MAXIOV is 1024). */
#define SL_SEND_IOV_MAX 256

/* Mailboxes: default capacity of NORMAL messages per actor. */
#define SL_MAILBOX_CAPACITY_DEFAULT 1024
/* Control and completion records an actor may have outstanding at once
 * (bounded by construction; see runtime/mailbox.h). */
#define SL_MAILBOX_RESERVED_MAX 16

_Static_assert((SL_RECV_BUFFERS_DEFAULT & (SL_RECV_BUFFERS_DEFAULT - 1)) == 0,
               "recv buffers must be a power of two");
_Static_assert(SL_RECV_BUFFERS_MAX <= 32768, "buffer ids are 15 bits in the ring");
_Static_assert(SL_SEND_IOV_MAX <= 1024, "UIO_MAXIOV");

#endif
