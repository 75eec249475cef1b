/*
 * The session attributes file: <data-dir>/<id>/attrs, written once when a
 * session with create-time attributes (TTL, expiry, Durable Streams
 * content type, fork origin) starts, before any of its publishes is
 * acknowledged, so a crash never leaves acknowledged events without the
 * attributes they were appended under. The manifest carries the same
 * bytes for clean starts; this file is read when the manifest does not
 * vouch for the session.
 *
 * Format (little-endian): magic "SLUICEAT" (8), epoch (8), payload length
 * (4), CRC32C of the 20 bytes before it and the payload (4), payload (the
 * server's encoding of the attributes; opaque here, at most
 * SL_ATTRS_PAYLOAD_MAX). Written whole to a fresh file (O_TRUNC) and
 * fsynced; a torn or damaged file is ignored and logged.
 *
 * Codec: pure, any thread. Load: startup only (plain syscalls).
 */
#ifndef SL_STORAGE_ATTRS_H
#define SL_STORAGE_ATTRS_H

#include <stddef.h>
#include <stdint.h>

#define SL_ATTRS_NAME "attrs"
#define SL_ATTRS_HEADER_BYTES 24u
#define SL_ATTRS_PAYLOAD_MAX 1024u
#define SL_ATTRS_BYTES_MAX (SL_ATTRS_HEADER_BYTES + SL_ATTRS_PAYLOAD_MAX)

/* Encodes into buf (cap >= SL_ATTRS_HEADER_BYTES + len; len <=
 * SL_ATTRS_PAYLOAD_MAX, asserts). Returns the file's size. */
size_t sl_attrs_encode(void *buf, size_t cap, uint64_t epoch, const void *payload, size_t len);
/* Decodes n bytes. Returns 0 with *epoch, *payload (borrowed from buf) and
 * *len set, or SL_ECORRUPT. */
int sl_attrs_decode(const void *buf, size_t n, uint64_t *epoch, const uint8_t **payload,
                    size_t *len);
/* Startup only: reads <id>/attrs under the data dir open at dirfd into buf
 * (cap >= SL_ATTRS_BYTES_MAX). Returns the byte count, -ENOENT, or -errno. */
int sl_attrs_load(int dirfd, const char *id, uint8_t *buf, size_t cap);

#endif
