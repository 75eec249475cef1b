/*
 * Server-sent events wire encoding (WHATWG HTML "Server-sent events").
 *
 * An event is encoded once, by the session that sequenced it, into the
 * exact bytes every SSE subscriber receives:
 *
 *     id: <seq>\n
 *     event: <type>\n
 *     data: <line 1>\n
 *     data: <line 2>\n
 *     \n
 *
 * Line breaks in data (\r\n, lone \r, lone \n) end a data line, so a
 * standard client reassembles the data with \n. Data that is not valid
 * UTF-8 is sent base64 (standard alphabet, padded, one data line) after a
 * comment line `: sluice-encoding: base64`. UTF-8 containing NUL counts as
 * text (a client passes NUL through).
 */
#ifndef SL_NET_SSE_H
#define SL_NET_SSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* True when p[0..n) is well-formed UTF-8 (no overlongs, no surrogates, no
 * code points above U+10FFFF). */
bool sl_sse_utf8_valid(const uint8_t *p, size_t n);

/* Upper bound of sl_sse_encode's output for these sizes. */
size_t sl_sse_encoded_max(size_t type_len, size_t data_len);

/* The largest encoding sluice accepts for an event of at most data_max
 * bytes (runtime/limits.h, "SSE encoding of one event"): that of a binary
 * event of data_max bytes (base64) with the longest type and seq. Pure. */
size_t sl_sse_encoded_bound(size_t data_max);

/* Exact size sl_sse_encode will produce for this event. Pure. */
size_t sl_sse_encoded_size(uint64_t seq, size_t type_len, const uint8_t *data, size_t data_len);

/* Encodes one event into out (cap >= sl_sse_encoded_max, or exactly
 * sl_sse_encoded_size). Borrows
 * every input. Returns the bytes written. Any thread. */
size_t sl_sse_encode(uint8_t *out, size_t cap, uint64_t seq, const char *type, size_t type_len,
                     const uint8_t *data, size_t data_len);

/* Encodes the explicit gap notice: `event: sluice.gap` with
 * data {"from":A,"to":B} (no id line: the stream's last id is unchanged).
 * Returns bytes written (cap >= 96). */
size_t sl_sse_encode_gap(uint8_t *out, size_t cap, uint64_t from, uint64_t to);

/* `: keepalive\n\n`, the idle-stream comment. */
extern const char sl_sse_keepalive[];
#define SL_SSE_KEEPALIVE_LEN 13

#endif
