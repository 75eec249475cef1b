/*
 * The msgpack subset sluice-load speaks on RPC connections: a reader that
 * walks a complete message in place (no allocation, no copies: strings and
 * bins are borrowed pointers), a measurer that finds where the first
 * message in a byte stream ends (or that it has not arrived yet), and a
 * writer that packs into caller storage. Hand-written rather than
 * msgpack-c's unpacker because the load generator decodes one notification
 * per delivered event and must stay cheaper than the server it measures.
 *
 * Every length is checked against the bytes present before it is used, so
 * any input is safe; measuring is iterative (a counter of objects still
 * owed), so nesting depth costs no stack. Pure functions on caller memory;
 * any thread.
 */
#ifndef SL_TOOLS_LOAD_RPC_WIRE_H
#define SL_TOOLS_LOAD_RPC_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Finds the end of the first msgpack object in p[0..n) (borrowed).
 * Returns 0 with *len its size in bytes; SL_EAGAIN when the bytes end
 * before it does; SL_ETOOBIG when it is (or is declared) larger than
 * max_bytes; SL_EPROTO for the never-used byte 0xc1. */
int sl_load_mp_measure(const char *p, size_t n, size_t max_bytes, size_t *len);

/* A cursor over one complete object (typically a measured message). */
typedef struct sl_load_mp {
    const uint8_t *p;
    const uint8_t *end;
} sl_load_mp_t;

/* Each reader consumes one object of its type and returns 0, or SL_EPROTO
 * (wrong type or truncated) leaving the cursor where it was. */
int sl_load_mp_array(sl_load_mp_t *r, uint32_t *count);
int sl_load_mp_map(sl_load_mp_t *r, uint32_t *count);
/* A non-negative integer (any unsigned width, or a signed one >= 0). */
int sl_load_mp_uint(sl_load_mp_t *r, uint64_t *v);
/* Any integer or float, as a double. */
int sl_load_mp_number(sl_load_mp_t *r, double *v);
/* A str or bin; *s borrows the message. */
int sl_load_mp_bytes(sl_load_mp_t *r, const char **s, uint32_t *len);
/* Consumes a nil and returns true; false (nothing consumed) otherwise. */
bool sl_load_mp_nil(sl_load_mp_t *r);
/* Skips one object of any type, containers included. */
int sl_load_mp_skip(sl_load_mp_t *r);
/* True when the next object is a map or an array. */
bool sl_load_mp_is_container(const sl_load_mp_t *r);

/* A writer into caller storage. A pack that does not fit sets overflow
 * and writes nothing more; check overflow once at the end. */
typedef struct sl_load_mpw {
    char *p;
    size_t len;
    size_t cap;
    bool overflow;
} sl_load_mpw_t;

void sl_load_mpw_init(sl_load_mpw_t *w, char *buf, size_t cap);
void sl_load_mpw_array(sl_load_mpw_t *w, uint32_t count);
void sl_load_mpw_map(sl_load_mpw_t *w, uint32_t count);
void sl_load_mpw_uint(sl_load_mpw_t *w, uint64_t v);
void sl_load_mpw_bool(sl_load_mpw_t *w, bool v);
void sl_load_mpw_str(sl_load_mpw_t *w, const char *s, size_t len);
/* A bin header for len bytes the caller writes next (sl_load_mpw_raw, or
 * in place after reserving them with sl_load_mpw_reserve). */
void sl_load_mpw_bin_head(sl_load_mpw_t *w, size_t len);
void sl_load_mpw_raw(sl_load_mpw_t *w, const void *data, size_t len);
/* Reserves len bytes; returns where they start, or NULL on overflow. */
char *sl_load_mpw_reserve(sl_load_mpw_t *w, size_t len);

#endif
