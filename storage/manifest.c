/*
 * Manifest encoding, decoding, and the startup/shutdown file operations.
 * See manifest.h for the format and the recovery rules it supports.
 */
#include "storage/manifest.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/crc32c.h"
#include "storage/session_id.h"
#include "storage/storage_int.h"

/* ---- encoding -------------------------------------------------------- */

size_t sl_manifest_entry_size(uint32_t id_len, uint32_t segment_count)
{
    return SL_MANIFEST_ENTRY_FIXED + (size_t)id_len +
           (size_t)segment_count * SL_MANIFEST_SEGMENT_BYTES;
}

size_t sl_manifest_entry_size_ext(uint32_t id_len, uint32_t segment_count, uint32_t ext_len)
{
    return sl_manifest_entry_size(id_len, segment_count) + (ext_len ? 4u + (size_t)ext_len : 0u);
}

void sl_manifest_writer_init(sl_manifest_writer_t *w, void *buf, size_t cap)
{
    sl_assert(cap >= SL_MANIFEST_HEADER_BYTES);
    w->_buf = buf;
    w->_cap = cap;
    w->_len = SL_MANIFEST_HEADER_BYTES;
    w->_count = 0;
}

static uint8_t *put_u64s(uint8_t *p, const uint64_t *v, int n)
{
    for (int i = 0; i < n; i++, p += 8)
        sl_storage__put_le64(p, v[i]);
    return p;
}

int sl_manifest_writer_add(sl_manifest_writer_t *w, const sl_manifest_entry_t *e,
                           const sl_segment_t *segs)
{
    if (!sl_session_id_valid(e->id, e->id_len))
        return SL_EINVAL;
    if (e->segment_count > SL_SEGMENTS_PER_SESSION_MAX || e->ext_len > SL_MANIFEST_EXT_MAX)
        return SL_ETOOBIG;
    uint32_t ext_len = e->ext ? e->ext_len : 0;
    size_t size = sl_manifest_entry_size_ext(e->id_len, e->segment_count, ext_len);
    if (w->_cap - w->_len < size)
        return SL_EFULL;
    uint8_t *p = w->_buf + w->_len;
    *p++ = (uint8_t)e->id_len;
    memcpy(p, e->id, e->id_len);
    p += e->id_len;
    const uint64_t fixed[7] = {e->epoch, e->first_seq,  e->last_seq,        e->events,
                               e->bytes, e->created_ns, e->last_activity_ns};
    p = put_u64s(p, fixed, 7);
    sl_storage__put_le32(p, (e->flags & ~SL_MANIFEST_ENTRY_EXT) | (ext_len ? SL_MANIFEST_ENTRY_EXT : 0));
    sl_storage__put_le32(p + 4, e->segment_count);
    p += 8;
    for (uint32_t i = 0; i < e->segment_count; i++) {
        const sl_segment_t *s = &segs[i];
        const uint64_t v[5] = {s->first_seq, s->last_seq, s->bytes, s->events, s->payload_bytes};
        p = put_u64s(p, v, 5);
    }
    if (ext_len) {
        sl_storage__put_le32(p, ext_len);
        memcpy(p + 4, e->ext, ext_len);
        p += 4 + ext_len;
    }
    sl_assert((size_t)(p - (w->_buf + w->_len)) == size);
    w->_len += size;
    w->_count++;
    return 0;
}

size_t sl_manifest_writer_finish(sl_manifest_writer_t *w)
{
    uint8_t *h = w->_buf;
    size_t body = w->_len - SL_MANIFEST_HEADER_BYTES;
    memcpy(h, SL_MANIFEST_MAGIC, 8);
    sl_storage__put_le32(h + 8, SL_MANIFEST_VERSION);
    sl_storage__put_le32(h + 12, w->_count);
    sl_storage__put_le64(h + 16, body);
    sl_storage__put_le32(h + 24, sl_crc32c(0, h + SL_MANIFEST_HEADER_BYTES, body));
    sl_storage__put_le32(h + 28, sl_crc32c(0, h, 28));
    return w->_len;
}

/* ---- decoding -------------------------------------------------------- */

int sl_manifest_reader_init(sl_manifest_reader_t *r, const void *buf, size_t n)
{
    const uint8_t *h = buf;
    if (n < SL_MANIFEST_HEADER_BYTES || n > SL_MANIFEST_BYTES_MAX)
        return SL_ECORRUPT;
    if (sl_crc32c(0, h, 28) != sl_storage__get_le32(h + 28))
        return SL_ECORRUPT;
    uint32_t version = sl_storage__get_le32(h + 8);
    if (memcmp(h, SL_MANIFEST_MAGIC, 8) != 0 || version < 1 || version > SL_MANIFEST_VERSION)
        return SL_ECORRUPT;
    uint64_t body = sl_storage__get_le64(h + 16);
    if (body != n - SL_MANIFEST_HEADER_BYTES)
        return SL_ECORRUPT;
    if (sl_crc32c(0, h + SL_MANIFEST_HEADER_BYTES, body) != sl_storage__get_le32(h + 24))
        return SL_ECORRUPT;
    r->_buf = h;
    r->_len = n;
    r->_pos = SL_MANIFEST_HEADER_BYTES;
    r->_left = sl_storage__get_le32(h + 12);
    return 0;
}

uint32_t sl_manifest_reader_count(const sl_manifest_reader_t *r)
{
    return sl_storage__get_le32(r->_buf + 12);
}

void sl_manifest_entry_segment(const sl_manifest_entry_t *e, uint32_t i, sl_segment_t *out)
{
    sl_assert(i < e->segment_count);
    const uint8_t *p = e->_segments + (size_t)i * SL_MANIFEST_SEGMENT_BYTES;
    memset(out, 0, sizeof *out);
    out->first_seq = sl_storage__get_le64(p);
    out->last_seq = sl_storage__get_le64(p + 8);
    out->bytes = sl_storage__get_le64(p + 16);
    out->events = sl_storage__get_le64(p + 24);
    out->payload_bytes = sl_storage__get_le64(p + 32);
}

/* Segments must be ordered and disjoint; their contents are checked again
 * when they enter an index. */
static bool segments_ordered(const sl_manifest_entry_t *e)
{
    uint64_t prev_last = 0;
    for (uint32_t i = 0; i < e->segment_count; i++) {
        sl_segment_t s;
        sl_manifest_entry_segment(e, i, &s);
        if (s.first_seq <= prev_last || s.first_seq == 0 || s.last_seq < s.first_seq)
            return false;
        prev_last = s.last_seq;
    }
    return true;
}

int sl_manifest_reader_next(sl_manifest_reader_t *r, sl_manifest_entry_t *e)
{
    if (r->_left == 0)
        return r->_pos == r->_len ? 0 : SL_ECORRUPT;
    size_t rest = r->_len - r->_pos;
    const uint8_t *p = r->_buf + r->_pos;
    if (rest < SL_MANIFEST_ENTRY_FIXED || rest < sl_manifest_entry_size(p[0], 0))
        return SL_ECORRUPT;
    e->id_len = p[0];
    e->id = (const char *)p + 1;
    if (!sl_session_id_valid(e->id, e->id_len))
        return SL_ECORRUPT;
    const uint8_t *f = p + 1 + e->id_len;
    uint64_t *dst[7] = {&e->epoch, &e->first_seq,  &e->last_seq,        &e->events,
                        &e->bytes, &e->created_ns, &e->last_activity_ns};
    for (int i = 0; i < 7; i++)
        *dst[i] = sl_storage__get_le64(f + 8 * i);
    e->flags = sl_storage__get_le32(f + 56);
    e->segment_count = sl_storage__get_le32(f + 60);
    if (e->segment_count > SL_SEGMENTS_PER_SESSION_MAX ||
        rest < sl_manifest_entry_size(e->id_len, e->segment_count))
        return SL_ECORRUPT;
    e->_segments = f + 64;
    if (!segments_ordered(e))
        return SL_ECORRUPT;
    size_t size = sl_manifest_entry_size(e->id_len, e->segment_count);
    e->ext = NULL;
    e->ext_len = 0;
    if (e->flags & SL_MANIFEST_ENTRY_EXT) {
        if (rest < size + 4)
            return SL_ECORRUPT;
        e->ext_len = sl_storage__get_le32(p + size);
        if (e->ext_len == 0 || e->ext_len > SL_MANIFEST_EXT_MAX || rest - size - 4 < e->ext_len)
            return SL_ECORRUPT;
        e->ext = p + size + 4;
        size += 4 + e->ext_len;
    }
    r->_pos += size;
    r->_left--;
    return 1;
}

/* ---- startup / shutdown file operations ------------------------------ */

static int join(char *out, size_t cap, const char *dir, const char *name)
{
    int n = snprintf(out, cap, "%s/%s", dir, name);
    return (n < 0 || (size_t)n >= cap) ? -ENAMETOOLONG : 0;
}

/* Reads exactly len bytes at offset 0; a short file is corruption. */
static int read_all(int fd, uint8_t *buf, size_t len)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = pread(fd, buf + done, len - done, (off_t)done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return SL_ECORRUPT;
        done += (size_t)n;
    }
    return 0;
}

static int load_fd(int fd, void **buf, size_t *len)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return -errno;
    if (st.st_size < (off_t)SL_MANIFEST_HEADER_BYTES ||
        (uint64_t)st.st_size > SL_MANIFEST_BYTES_MAX)
        return SL_ECORRUPT;
    size_t n = (size_t)st.st_size;
    uint8_t *b = malloc(n);
    if (!b)
        return -ENOMEM;
    int rc = read_all(fd, b, n);
    sl_manifest_reader_t r;
    if (rc == 0)
        rc = sl_manifest_reader_init(&r, b, n);
    if (rc != 0) {
        free(b);
        return rc;
    }
    *buf = b;
    *len = n;
    return 0;
}

int sl_manifest_load(const char *data_dir, void **buf, size_t *len)
{
    char path[PATH_MAX];
    int rc = join(path, sizeof path, data_dir, SL_MANIFEST_NAME);
    if (rc != 0)
        return rc;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    rc = load_fd(fd, buf, len);
    close(fd);
    return rc;
}

static int write_all(int fd, const uint8_t *buf, size_t len)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(fd, buf + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        done += (size_t)n;
    }
    return 0;
}

static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) == 0 ? 0 : -errno;
    close(fd);
    return rc;
}

int sl_manifest_store(const char *data_dir, const void *buf, size_t len)
{
    char tmp[PATH_MAX], dst[PATH_MAX];
    int rc = join(tmp, sizeof tmp, data_dir, SL_MANIFEST_TMP_NAME);
    if (rc == 0)
        rc = join(dst, sizeof dst, data_dir, SL_MANIFEST_NAME);
    if (rc != 0)
        return rc;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    rc = write_all(fd, buf, len);
    if (rc == 0 && fsync(fd) != 0)
        rc = -errno;
    if (close(fd) != 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(tmp, dst) != 0)
        rc = -errno;
    if (rc == 0)
        rc = fsync_dir(data_dir);
    return rc;
}
