/*
 * Little-endian field access for the on-disk formats, shared by the storage
 * modules only (no other folder includes this). Every stored integer is
 * little-endian regardless of the host, and fields are unaligned, so all
 * access goes through these byte-wise functions (compilers turn them into
 * single loads/stores on x86-64).
 */
#ifndef SL_STORAGE_STORAGE_INT_H
#define SL_STORAGE_STORAGE_INT_H

#include <stddef.h>
#include <stdint.h>

/* Reads up to want bytes of fd at off, retrying short reads and EINTR.
 * Returns the count (short only at end of file) or -errno. A blocking
 * syscall: startup recovery and the offline checker only (recovery.c). */
int64_t sl_storage__pread_full(int fd, uint8_t *buf, size_t want, uint64_t off);

static inline void sl_storage__put_le16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static inline uint16_t sl_storage__get_le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static inline void sl_storage__put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static inline void sl_storage__put_le64(uint8_t *p, uint64_t v)
{
    sl_storage__put_le32(p, (uint32_t)v);
    sl_storage__put_le32(p + 4, (uint32_t)(v >> 32));
}

static inline uint32_t sl_storage__get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t sl_storage__get_le64(const uint8_t *p)
{
    return (uint64_t)sl_storage__get_le32(p) | (uint64_t)sl_storage__get_le32(p + 4) << 32;
}

#endif
