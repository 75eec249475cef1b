/*
 * A session's in-memory event ring: the SSE byte stream of its recent
 * events, encoded once, shared by every live subscriber.
 *
 * The session (single writer) appends each event's wire bytes to the tail
 * page, a chunk of --ring-page-bytes; a page holds up to
 * SL_RING_PAGE_EVENTS events. Every byte has a global stream position, so
 * a subscriber's progress is one number: the position of the next byte it
 * must send. A reader takes slices (chunk, offset, length) covering many
 * events with one reference per page touched and hands them to its output
 * queue: payload bytes are referenced, never copied per subscriber.
 *
 * Bound and policy: the pages kept never exceed bytes_max (and
 * SL_RING_PAGES_MAX pages). Appending past it evicts the oldest page; a
 * reader whose position is older than the oldest kept byte gets
 * SL_ENOTFOUND and switches to catch-up from the durable log. Chunks
 * already handed to output queues stay alive until sent (their own
 * references), so eviction never invalidates bytes in flight.
 *
 * Concurrency: one writer (the session actor), many readers (connection
 * actors on other workers). Page metadata is guarded by a mutex held for a
 * few loads and reference increments per read -- one acquisition per
 * wake-up of a subscriber, not per event. Event bytes are written before
 * the length that publishes them, under the same mutex, so readers never
 * see a half-written event.
 */
#ifndef SL_ACTORS_RING_H
#define SL_ACTORS_RING_H

#include <stdbool.h>
#include <stdint.h>

#include "runtime/base.h"
#include "runtime/buf.h"

#define SL_RING_PAGE_EVENTS 1024
#define SL_RING_PAGES_MAX 4096
#define SL_RING_FIRST_PAGE_BYTES 2048

typedef struct sl_ring sl_ring_t;

typedef struct sl_ring_slice {
    sl_chunk_t *chunk; /* one reference owned by the caller */
    uint32_t off;
    uint32_t len;
} sl_ring_slice_t;

typedef struct sl_ring_read {
    uint32_t nslices;
    uint64_t end_pos;            /* position after the last byte returned */
    uint64_t events_completed;   /* events whose last byte is in the range */
    uint64_t last_seq_completed; /* seq of the last of them (0 if none) */
} sl_ring_read_t;

/* Creates an empty ring whose first event will have seq first_seq. Returns
 * 0 or -ENOMEM / SL_EINVAL. */
int sl_ring_create(uint64_t bytes_max, uint32_t page_bytes, uint64_t first_seq, sl_ring_t **out);
void sl_ring_destroy(sl_ring_t *r);

/* Writer only. Returns room for an event of exactly len encoded bytes at
 * the tail (a new page when the tail page is full; a page of its own when
 * len > page bytes), or NULL on allocation failure (nothing changed). The
 * bytes are invisible to readers until sl_ring_commit. */
uint8_t *sl_ring_reserve(sl_ring_t *r, uint32_t len);
/* Publishes the reserved event as seq (must be the ring's next seq). May
 * evict old pages to stay within the bound. */
void sl_ring_commit(sl_ring_t *r, uint64_t seq, uint32_t len);

/* Writer only. By default a commit makes the event visible to readers at
 * once. With auto-visible off, readers stop at the end of the last event
 * passed to sl_ring_set_visible (the session makes durable events visible
 * only once their write completed, so no subscriber ever sees an event a
 * crash could take back). Visibility is a prefix: seq must be committed and
 * everything before it becomes visible too. */
void sl_ring_set_auto_visible(sl_ring_t *r, bool on);
void sl_ring_set_visible(sl_ring_t *r, uint64_t seq);
uint64_t sl_ring_visible_seq(sl_ring_t *r);

/* Any thread. Stream position where event seq starts. Returns 0; SL_EAGAIN
 * when seq is not yet in the ring (*pos = the tail position, where the
 * next event will start: seq == next seq, or later); SL_ENOTFOUND when seq
 * was evicted or is older than the ring's first seq. */
int sl_ring_seek(sl_ring_t *r, uint64_t seq, uint64_t *pos);
/* Any thread. Takes slices of the stream from pos, at most max_bytes and
 * max_slices (a slice never spans pages). With whole_events (pos must be
 * at an event start) the range ends at an event boundary: it stops before
 * an event that does not fit, except that a first event larger than
 * max_bytes is returned whole (so a big event can pass a small window).
 * Returns 0 (possibly with no slices: nothing new), or SL_ENOTFOUND when
 * pos was evicted (fell behind: catch up from the log). */
int sl_ring_read(sl_ring_t *r, uint64_t pos, uint64_t max_bytes, bool whole_events,
                 sl_ring_slice_t *out, uint32_t max_slices, sl_ring_read_t *res);
/* Any thread. What a read at pos could take now, without taking it: sets
 * *avail to the visible bytes from pos (0: nothing new) and returns 0, or
 * returns SL_ENOTFOUND as sl_ring_read would. Cheaper than working out how
 * much a reader has room for, so a reader asks this first. */
int sl_ring_readable(sl_ring_t *r, uint64_t pos, uint64_t *avail);
/* One event of a per-event read. */
typedef struct sl_ring_event {
    sl_chunk_t *chunk; /* one reference owned by the caller */
    uint32_t off, len;
    uint64_t seq;
} sl_ring_event_t;

/* Any thread. Takes whole visible events one by one from pos (an event
 * start), at most max_events and max_bytes in all (a first event larger
 * than max_bytes is returned alone), for readers that frame each event
 * themselves (RPC notifications). *nout = events taken, each holding its
 * own chunk reference. Returns 0, or SL_ENOTFOUND when pos was evicted. */
int sl_ring_read_events(sl_ring_t *r, uint64_t pos, uint64_t max_bytes, sl_ring_event_t *out,
                        uint32_t max_events, uint32_t *nout);

/* Any thread: the next seq to be committed, the tail position, the oldest
 * seq still in the ring, and bytes held. */
uint64_t sl_ring_next_seq(sl_ring_t *r);
uint64_t sl_ring_tail_pos(sl_ring_t *r);
uint64_t sl_ring_first_seq(sl_ring_t *r);
uint64_t sl_ring_bytes(sl_ring_t *r);

#endif
