/*
 * msgpack → JSON for sluicectl's --json output. The conversion is
 * faithful for everything sluice sends (maps, arrays, integers, floats,
 * booleans, nil, UTF-8 strings); the two msgpack types JSON lacks are
 * mapped, and the mapping is documented in --help:
 *   - str and bin: a JSON string when the bytes are valid UTF-8, else the
 *     standard base64 of the bytes as a JSON string;
 *   - ext: {"ext_type": N, "data": "<base64>"};
 *   - a map key that is not a string: its JSON text, as a string;
 *   - a float that is NaN or infinite: null.
 * Nesting is bounded by what msgpack-c unpacks (its own fixed stack).
 * Single-threaded use of one FILE.
 */
#ifndef SL_TOOLS_CTL_JSON_H
#define SL_TOOLS_CTL_JSON_H

#include <stddef.h>
#include <stdio.h>

#include <msgpack.h>

/* Writes o (borrowed) as compact JSON to f, no trailing newline. */
void sl_ctl_json_write(FILE *f, const msgpack_object *o);
/* Writes s[0..len) (borrowed) as a JSON string literal, escaping quotes,
 * backslashes and control characters. The bytes must be valid UTF-8. */
void sl_ctl_json_string(FILE *f, const char *s, size_t len);
/* Writes bytes as sl_ctl_json_write writes a str/bin: a JSON string of
 * the text, or of its base64 when the bytes are not valid UTF-8. */
void sl_ctl_json_bytes(FILE *f, const char *s, size_t len);

#endif
