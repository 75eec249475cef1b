/*
 * The seq reservation mark's codec and startup load. See seqmark.h.
 */
#include "storage/seqmark.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "storage/crc32c.h"
#include "storage/storage_int.h"

void sl_seqmark_encode(void *buf, uint64_t epoch, uint64_t reserved)
{
    uint8_t *p = buf;
    memcpy(p, SL_SEQMARK_MAGIC, 8);
    sl_storage__put_le64(p + 8, epoch);
    sl_storage__put_le64(p + 16, reserved);
    sl_storage__put_le32(p + 24, sl_crc32c(0, p, 24));
    sl_storage__put_le32(p + 28, 0);
}

int sl_seqmark_decode(const void *buf, size_t n, uint64_t *epoch, uint64_t *reserved)
{
    const uint8_t *p = buf;
    if (n < SL_SEQMARK_BYTES || memcmp(p, SL_SEQMARK_MAGIC, 8) != 0)
        return SL_ECORRUPT;
    if (sl_storage__get_le32(p + 24) != sl_crc32c(0, p, 24))
        return SL_ECORRUPT;
    *epoch = sl_storage__get_le64(p + 8);
    *reserved = sl_storage__get_le64(p + 16);
    return 0;
}

int sl_seqmark_load(int dirfd, uint64_t *epoch, uint64_t *reserved)
{
    int fd = openat(dirfd, SL_SEQMARK_NAME, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    uint8_t b[SL_SEQMARK_BYTES];
    ssize_t n;
    do
        n = pread(fd, b, sizeof b, 0);
    while (n < 0 && errno == EINTR);
    int rc = n < 0 ? -errno : sl_seqmark_decode(b, (size_t)n, epoch, reserved);
    close(fd);
    return rc;
}
