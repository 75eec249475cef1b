/*
 * The little JSON the HTTP API needs: decoding one NDJSON batch line
 * ({"type": string?, "data": string}) and escaping strings for output.
 * Not a general parser: anything outside that shape is SL_EINVAL, which
 * the API answers with 400.
 */
#ifndef SL_ACTORS_JSON_H
#define SL_ACTORS_JSON_H

#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

/* Nesting accepted by sl_json_to_msgpack (our own documents are shallow). */
#define SL_JSON_DEPTH_MAX 16

/* Decodes one line (borrowed, len bytes, no newline). The decoded type and
 * data are written to out (cap bytes; decoding never grows a string) as
 * type then data; *type_len is 0 when the line has no "type". Returns 0,
 * SL_EINVAL (malformed, unknown key, non-string value, bad escape, missing
 * data) or SL_ETOOBIG (out too small). */
int sl_json_event_line(const char *line, size_t len, uint8_t *out, size_t cap,
                       uint32_t *type_len, uint32_t *data_off, uint32_t *data_len);

/* Writes s as a JSON string body (no quotes) into out; returns the length
 * or SL_ETOOBIG. Control bytes become \u00XX; bytes >= 0x80 pass through. */
int sl_json_escape(char *out, size_t cap, const char *s, size_t len);

/* Packs one JSON document (borrowed, len bytes) as the equivalent msgpack
 * object: objects as maps, strings as str, integers as int/uint, other
 * numbers as double. Meant for documents sluice renders itself (/health,
 * session stats), so the RPC answers carry exactly the HTTP answers'
 * data. Returns 0, SL_EINVAL (malformed; pk holds a partial object) or
 * -ENOMEM. */
int sl_json_to_msgpack(const char *json, size_t len, msgpack_packer *pk);

#endif
