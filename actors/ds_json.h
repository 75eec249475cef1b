/*
 * JSON and base64 helpers of the Durable Streams face (conn_ds.c): the
 * validation and one-level array flattening that JSON-mode appends need
 * (PROTOCOL.md 9.1), and the base64 form of binary data in SSE events.
 * Pure functions; any thread.
 */
#ifndef SL_ACTORS_DS_JSON_H
#define SL_ACTORS_DS_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Nesting depth a JSON-mode append may use (policy: deeper is 400). */
#define SL_DS_JSON_DEPTH_MAX 128

/* One element of a top-level array: bytes [off, off + len) of the text. */
typedef struct sl_ds_span {
    uint32_t off, len;
} sl_ds_span_t;

/* Validates that p (n bytes, borrowed) is exactly one JSON value with
 * optional surrounding whitespace. Returns the number of messages it
 * holds: the element count of a top-level array (flattened one level),
 * else 1; -1 when it is not valid JSON. With spans (cap entries) the
 * messages' byte ranges are stored (whitespace trimmed). */
int sl_ds_json_split(const uint8_t *p, size_t n, sl_ds_span_t *spans, uint32_t cap);

/* Standard base64 (padded) of n bytes into out, which must hold
 * sl_ds_b64_len(n) bytes. Returns the length written. */
size_t sl_ds_b64_len(size_t n);
size_t sl_ds_b64_encode(const uint8_t *in, size_t n, char *out);

#endif
