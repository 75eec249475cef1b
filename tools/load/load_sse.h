/*
 * Incremental server-sent-events parser, per the WHATWG HTML "event stream
 * interpretation" rules: lines end in CRLF, LF or a lone CR (also when the
 * CR and LF arrive in different chunks); `:` lines are comments; a field
 * name runs to the first colon and one space after it is dropped; `data`
 * lines accumulate joined by LF; `id` sets the last-event-id buffer (unless
 * the value contains NUL) which persists across events; `event` sets the
 * type for the next dispatch only; a blank line dispatches when data is
 * non-empty. A leading UTF-8 BOM is skipped.
 *
 * Memory is bounded: a line or an event's data longer than the limit given
 * to init is an error (SL_ETOOBIG) and the parser must be discarded.
 * Single-threaded; one parser per stream.
 */
#ifndef SL_TOOLS_LOAD_SSE_H
#define SL_TOOLS_LOAD_SSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SL_LOAD_SSE_ID_MAX 128
#define SL_LOAD_SSE_TYPE_MAX 128

/* One dispatched event. All pointers borrow parser storage valid during the
 * callback only. id is the last-event-id buffer; id_in_block tells whether
 * this event's own block carried an `id:` line. */
typedef struct sl_load_sse_event {
    const char *id;
    size_t id_len;
    bool id_in_block;
    const char *type;
    size_t type_len;
    const char *data;
    size_t data_len;
} sl_load_sse_event_t;

typedef void (*sl_load_sse_event_cb)(const sl_load_sse_event_t *ev, void *ctx);

typedef struct sl_load_sse {
    sl_load_sse_event_cb cb;
    void *ctx;
    size_t limit_bytes;
    char *line; /* partial line carried between chunks */
    size_t line_len;
    char *data;
    size_t data_len;
    bool has_data;
    bool id_in_block;
    bool after_cr;   /* last chunk ended in CR: skip one leading LF */
    bool bom_done;   /* the stream start (and a possible BOM) is behind us */
    uint8_t bom_seen; /* BOM bytes matched so far at stream start */
    size_t id_len;
    size_t type_len;
    uint64_t comments;
    char id[SL_LOAD_SSE_ID_MAX];
    char type[SL_LOAD_SSE_TYPE_MAX];
} sl_load_sse_t;

/* Prepares p (caller storage). limit_bytes bounds one line and one event's
 * data. cb is called for each dispatched event with ctx. Returns 0 or
 * -ENOMEM (p is then left deinit-safe). */
int sl_load_sse_init(sl_load_sse_t *p, size_t limit_bytes, sl_load_sse_event_cb cb, void *ctx);
/* Frees p's buffers. Safe on an init'ed or failed-init parser. */
void sl_load_sse_deinit(sl_load_sse_t *p);
/* Parses len bytes (borrowed). Returns 0, or SL_ETOOBIG when a line or the
 * event data exceeds the limit (the parser is then unusable). */
int sl_load_sse_feed(sl_load_sse_t *p, const char *buf, size_t len);

#endif
