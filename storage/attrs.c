/*
 * Session attributes file. See attrs.h.
 */
#include "storage/attrs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "runtime/base.h"
#include "runtime/limits.h"
#include "storage/crc32c.h"
#include "storage/storage_int.h"

#define MAGIC "SLUICEAT"

size_t sl_attrs_encode(void *buf, size_t cap, uint64_t epoch, const void *payload, size_t len)
{
    sl_assert(len <= SL_ATTRS_PAYLOAD_MAX && cap >= SL_ATTRS_HEADER_BYTES + len);
    uint8_t *p = buf;
    memcpy(p, MAGIC, 8);
    sl_storage__put_le64(p + 8, epoch);
    sl_storage__put_le32(p + 16, (uint32_t)len);
    memcpy(p + SL_ATTRS_HEADER_BYTES, payload, len);
    uint32_t crc = sl_crc32c(0, p, 20);
    crc = sl_crc32c(crc, p + SL_ATTRS_HEADER_BYTES, len);
    sl_storage__put_le32(p + 20, crc);
    return SL_ATTRS_HEADER_BYTES + len;
}

int sl_attrs_decode(const void *buf, size_t n, uint64_t *epoch, const uint8_t **payload,
                    size_t *len)
{
    const uint8_t *p = buf;
    if (n < SL_ATTRS_HEADER_BYTES || memcmp(p, MAGIC, 8) != 0)
        return SL_ECORRUPT;
    uint32_t l = sl_storage__get_le32(p + 16);
    if (l > SL_ATTRS_PAYLOAD_MAX || n != SL_ATTRS_HEADER_BYTES + l)
        return SL_ECORRUPT;
    uint32_t crc = sl_crc32c(0, p, 20);
    crc = sl_crc32c(crc, p + SL_ATTRS_HEADER_BYTES, l);
    if (crc != sl_storage__get_le32(p + 20))
        return SL_ECORRUPT;
    *epoch = sl_storage__get_le64(p + 8);
    *payload = p + SL_ATTRS_HEADER_BYTES;
    *len = l;
    return 0;
}

int sl_attrs_load(int dirfd, const char *id, uint8_t *buf, size_t cap)
{
    char path[SL_SESSION_ID_MAX + sizeof "/" SL_ATTRS_NAME];
    snprintf(path, sizeof path, "%s/%s", id, SL_ATTRS_NAME);
    int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int64_t n = sl_storage__pread_full(fd, buf, cap, 0);
    close(fd);
    return n < 0 ? (int)n : (int)n;
}
