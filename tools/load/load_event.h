/*
 * The payload sluice-load publishes: text any server can carry unchanged,
 *   "t=<intended send time, ns, CLOCK_MONOTONIC> p=<publisher> n=<k>
 *    s=<actual send time - intended, ns> "
 * padded with '.' to the requested size. The intended time comes from the
 * publisher's schedule, not from when the request actually left, so a
 * latency computed as (receive time - t) includes any time the event waited
 * behind a slow server: the measurement is coordinated-omission safe.
 * Publisher and subscribers share one process, hence one monotonic clock.
 * The s= field also gives the latency from the actual send (what a
 * closed-loop tool would report), shown beside the corrected one.
 */
#ifndef SL_TOOLS_LOAD_EVENT_H
#define SL_TOOLS_LOAD_EVENT_H

#include <stddef.h>
#include <stdint.h>

typedef struct sl_load_event {
    uint64_t intended_ns;
    uint32_t publisher;
    uint64_t n;
    uint64_t send_delay_ns; /* actual send time - intended_ns */
} sl_load_event_t;

/* Smallest --size accepted. Headers are ~40 bytes in practice (t= is the
 * monotonic clock, 16 digits for years of uptime); a header that does not
 * fit is refused by format, never truncated. */
#define SL_LOAD_EVENT_MIN_BYTES 48
/* Longest possible header: four u64 fields in decimal plus the keys. */
#define SL_LOAD_EVENT_HEAD_MAX 96

/* Writes ev as a payload of exactly size bytes into out (capacity >= size).
 * Returns size, or SL_ETOOBIG when the header does not fit in size (out
 * is then unspecified). */
int sl_load_event_format(char *out, size_t size, const sl_load_event_t *ev);
/* Parses a payload (borrowed). s= is optional (0 when absent). Returns 0,
 * or SL_EPROTO if the header is missing or malformed (out is then
 * unspecified). */
int sl_load_event_parse(const char *data, size_t len, sl_load_event_t *out);
/* Parses a decimal u64 from s[0..len) entirely. Returns 0 or SL_EPROTO. */
int sl_load_parse_u64(const char *s, size_t len, uint64_t *out);

#endif
