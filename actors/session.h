/*
 * Session actor: one per live session. It assigns seqs, encodes each event
 * once into the session's ring (SSE wire form), keeps the stats in the
 * directory entry current, and wakes subscribers with a coalesced notify
 * (one wake-up per subscriber per batch, not per event).
 *
 * Messages in (from connection actors):
 *   sl_pub_t   PUBLISH      NORMAL class: a full mailbox refuses it and the
 *                           connection answers 503 + Retry-After (policy).
 *   sl_sub_t   SUBSCRIBE / UNSUBSCRIBE   CONTROL: preallocated in the
 *                           subscriber's stream record, at most one each.
 *   DELETE                  CONTROL, preallocated in the session.
 * Replies go back in the same records (COMPLETION class at the receiver:
 * every record has exactly one outstanding request, so replies are bounded
 * by construction).
 *
 * Subscriber protocol: after a SUBSCRIBE reply with status 0 the connection
 * reads the ring directly from sub->pos (actors/ring.h) whenever it is
 * notified (bit SL_CONN_NOTIFY_DATA) and has room. The ring stays valid
 * until the UNSUBSCRIBE reply. When the session is deleted it sets
 * sub->ended and notifies; the connection ends the stream cleanly once it
 * has sent everything up to the end position, then unsubscribes.
 */
#ifndef SL_ACTORS_SESSION_H
#define SL_ACTORS_SESSION_H

#include <stdatomic.h>

#include "actors/registry.h"
#include "actors/ring.h"
#include "runtime/actor.h"

typedef struct sl_session sl_session_t;
struct sl_server;

enum {
    SL_SESSION_MSG_PUBLISH = SL_MSG_KIND_USER + 32,
    SL_SESSION_MSG_SUBSCRIBE,
    SL_SESSION_MSG_UNSUBSCRIBE,
    SL_SESSION_MSG_DELETE,
    SL_SESSION_MSG_CATCHUP,
    /* replies, received by the connection */
    SL_CONN_MSG_PUBLISHED,
    SL_CONN_MSG_SUBSCRIBED,
    SL_CONN_MSG_UNSUBSCRIBED,
    SL_CONN_MSG_CAUGHT_UP,
};

/* Notify bits a session sets on a subscriber's connection actor: new
 * events to pull (the connection sends them within --fanout-budget). */
#define SL_CONN_NOTIFY_DATA 1ull
/* The connection's own "more input to process" wake-up (answers go out
 * at once, never held by the fan-out budget). */
#define SL_CONN_NOTIFY_WORK 2ull
/* New events that already waited out --fanout-budget at the session (its
 * budget timer woke the subscribers): the connection sends them at once.
 * Holding them for the connection's own budget too would stack the two:
 * phase-locked, the connection's timer fires just before the session's,
 * and every event waits up to two budgets. */
#define SL_CONN_NOTIFY_DUE 4ull

/* The fan-out grid. A session's budget wake-up and a connection's held
 * send fall on the next multiple of --fanout-budget on the monotonic clock
 * (absolute timers, SL_TIMEOUT_ABS): every session of a reactor wakes its
 * subscribers at the same instant, so a connection following many sessions
 * pulls all of them in one run and sends once per budget; and no two
 * timers can drift into a phase where one keeps holding what the other
 * just released. An event waits at most one budget at its session, and a
 * connection sends what that wake-up brings at once (SL_CONN_NOTIFY_DUE). */
static inline uint64_t sl_fanout_next_tick(uint64_t now_ns, uint64_t budget_ns)
{
    return (now_ns / budget_ns + 1) * budget_ns;
}

/* One event inside a publish request. */
typedef struct sl_pub_event {
    uint32_t type_off, type_len; /* into sl_pub_t.buf */
    uint32_t data_off, data_len;
    bool data_str;               /* published as a string (RPC str): kept for RPC readers */
} sl_pub_event_t;

/* A publish request and, when it comes back, its answer. Allocated by the
 * connection (one per request), owned by the session while outstanding. */
typedef struct sl_pub {
    sl_msg_t h;
    sl_actor_t *reply_to;  /* reference held while outstanding */
    uint32_t stream_id;
    bool durable;
    bool ephemeral;
    bool aux_batch;        /* requester's: answer in batch form */
    uint32_t *rpc_msgids;  /* requester's: RPC publishes coalesced into this one,
                              one msgid per event (in buf), else NULL */
    uint8_t retries;       /* requester's: resends after SL_ECLOSED */
    uint32_t id_len;       /* requester's: the session id, for resends */
    char id[SL_SESSION_ID_MAX + 1];
    uint32_t nevents;      /* 0 only with close: close without an event */
    sl_pub_event_t *events;
    uint8_t *buf;          /* types and data of every event */
    /* Lifecycle (API.md "Session lifecycle"). */
    bool close;            /* close the session for good after these events,
                              in the same log write (atomic with them) */
    bool has_producer;     /* idempotent producer: the fields below are set */
    uint8_t producer_id_len;
    char producer_id[SL_PRODUCER_ID_MAX + 1];
    uint64_t producer_epoch, producer_seq;
    uint8_t stream_seq_len; /* Durable Streams Stream-Seq (writer coordination); 0: none */
    char stream_seq[SL_STREAM_SEQ_MAX + 1];
    /* answer */
    int status;            /* 0, SL_ECLOSED (session deleted), SL_EENDED (closed
                              for good: last_seq is its last seq), SL_EFENCED
                              (producer_epoch holds the current epoch), SL_EGAP
                              (producer_seq holds the expected seq), SL_EINVAL (a
                              new epoch not starting at seq 0), SL_ECONFLICT
                              (Stream-Seq not above the last one), -ENOMEM, -EIO */
    uint64_t first_seq, last_seq;
    bool closed;           /* the session is closed after this publish */
    bool duplicate;        /* producer retry: nothing appended; first_seq/last_seq
                              are the original answer when dup_known */
    bool dup_known;
    bool _gated;           /* session's: lifecycle checks done (a parked publish
                              is not checked twice) */
    struct sl_pub *_next;  /* session: queue of publishes awaiting their write */
} sl_pub_t;

/* A subscription, embedded in the subscriber's stream record. */
typedef struct sl_sub {
    sl_msg_t h;            /* SUBSCRIBE / UNSUBSCRIBE and their replies */
    sl_actor_t *conn;      /* notified on new data (reference held) */
    uint32_t stream_id;
    bool rpc;              /* read the msgpack-RPC ring instead of the SSE ring */
    uint64_t from_seq;     /* first seq wanted; 0 = live only */
    /* answer to SUBSCRIBE (status 0: the fields below are valid) */
    int status;            /* 0, SL_ENOTFOUND (deleted), SL_ECLOSED (actor ending),
                              SL_EFULL (subscriber cap), -ENOMEM */
    sl_ring_t *ring;       /* valid until the UNSUBSCRIBE reply */
    uint64_t pos;          /* connection: next stream byte to send */
    uint64_t start_seq;    /* the first seq the client will get */
    bool catch_up;         /* start_seq is older than the ring: catch up first */
    _Atomic bool ended;    /* session deleted: end after end_pos */
    _Atomic uint64_t end_pos;
    uint32_t _index;       /* session: slot in its subscriber table */
    struct sl_sub *_held_next; /* session: held while it hibernates */
} sl_sub_t;

/* A subscriber behind the ring asks for the events from from_seq, encoded
 * for its stream, at most max_bytes (one event may exceed it). Embedded in
 * the subscriber's stream record; one outstanding at a time. The answer
 * comes back in the same record. Events no longer held anywhere (ephemeral
 * ones, or beyond retention) are named by sluice.gap notices in the chunk.
 */
typedef struct sl_catchup {
    sl_msg_t h;
    sl_actor_t *conn;      /* reply target (the stream's subscription ref) */
    uint64_t from_seq;
    uint32_t max_bytes;
    bool rpc;              /* encode msgpack-RPC notifications for rpc_sub_id, not SSE */
    bool raw;              /* encode sl_raw_event records (Durable Streams reads), not SSE */
    uint64_t raw_limit;    /* raw: read no seq beyond this one (0: no limit) */
    uint64_t raw_last;     /* raw answer: the last seq readable when the read began */
    uint64_t rpc_sub_id;
    const char *session;   /* session's: the id, for RPC bodies (valid while it runs) */
    uint32_t session_len;
    /* answer */
    int status;            /* 0 or SL_ECLOSED (session going away) */
    sl_chunk_t *chunk;     /* owned by the receiver; NULL when empty */
    uint64_t next_seq;     /* first seq not covered by chunk */
    uint64_t events;       /* events in chunk */
    uint64_t gapped;       /* seqs named by gap notices in chunk */
    struct sl_catchup *_next; /* session: waiting for a reader slot */
} sl_catchup_t;

/* A raw catch-up record: this header (copied out with memcpy, unaligned),
 * then type_len bytes of type, then data_len bytes of data. A raw answer
 * covers every seq from from_seq up to raw_last that the log holds; seqs
 * it skips are lost (retention). */
typedef struct sl_raw_event {
    uint64_t seq;
    uint32_t data_len;
    uint8_t type_len;
    uint8_t flags;         /* SL_RECORD_F_* */
    uint8_t _pad[2];
} sl_raw_event_t;
#define SL_RAW_EVENT_BYTES ((uint32_t)sizeof(sl_raw_event_t))

/* Returns a new reference to e's session actor, starting one when none
 * runs; NULL when e was deleted or memory ran out. The caller sends its
 * message and releases the reference. Any worker. */
sl_actor_t *sl_session_acquire(struct sl_server *srv, sl_entry_t *e);
/* Why sl_session_acquire gave no actor: SL_ENOTFOUND when e was deleted,
 * else SL_ECLOSED -- the session exists but could not start (its log did
 * not open; logged): unavailable, retry. */
int sl_session_unavailable(const sl_entry_t *e);
/* Asks e's session to delete itself: end every stream cleanly, forget the
 * events. The caller has removed e from the registry. Any worker. */
void sl_session_delete(struct sl_server *srv, sl_entry_t *e);
/* Asks a running session to stop (server shutdown): streams end, the actor
 * exits once idle. Any thread. */
void sl_session_stop(sl_entry_t *e);

/* Durable state in directory entries (startup, manifest, teardown). */
struct sl_segment_index;
struct sl_segment;
/* Hands a session found at startup its recovered segment index (takes it).
 * Main thread, before serving. */
void sl_session_recovered(sl_entry_t *e, struct sl_segment_index *index);
/* Returns an owned copy (free()) of e's segment list as last saved, for
 * the manifest: 0 with the list and its length set (NULL and 0 when none),
 * SL_EAGAIN when the saved list may be out of date (a save ran out of
 * memory: the session must not be recorded as clean), -ENOMEM, or
 * SL_ECORRUPT (nothing set) once a catch-up read found damage in a
 * segment: the manifest then must not vouch for any of its files, so the
 * next start scans and repairs them.
 * Any thread. */
int sl_session_segments(sl_entry_t *e, struct sl_segment **out, uint32_t *count);
/* Lifecycle state (actors/lifecycle.h) for the manifest and startup.
 * Main thread, while no session actor runs (startup, shutdown). */
/* The producers/Stream-Seq snapshot (returns owned; NULL with *len 0 when
 * none). */
uint8_t *sl_session_life_snapshot(sl_entry_t *e, size_t *len);
/* Loads a snapshot from the manifest. Returns 0, SL_ECORRUPT or -ENOMEM. */
int sl_session_life_load(sl_entry_t *e, const uint8_t *snap, size_t len);
/* Replays one record trailer found in the log (recovery). */
struct sl_lifecycle_ext;
void sl_session_life_apply(sl_entry_t *e, const struct sl_lifecycle_ext *x, uint64_t seq);
/* The attributes of e are on disk (recovered from the manifest or file). */
void sl_session_attrs_durable(sl_entry_t *e);
/* Frees e's durable state; the registry's free hook. */
void sl_session_entry_free(sl_entry_t *e);

#endif
