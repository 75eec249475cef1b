/*
 * Segment repair: plans over a buffer or a file window, and their
 * application with plain syscalls. See repair.h for the rules.
 */
#include "storage/repair.h"
#include "storage/storage_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/log.h"
#include "storage/record.h"
#include "storage/session_id.h"

/* A file read through a window: the whole file in memory (fd < 0) or a
 * buffer refilled with pread. */
typedef struct source {
    int fd;
    const uint8_t *buf;
    uint64_t end;     /* file size */
    uint64_t win_off; /* file offset of buf[0] */
    size_t win_len;
    uint8_t *win; /* owned, fd sources only */
    size_t win_cap;
    int err;
} source_t;

#define WINDOW_MIN (1u << 20)

/* Points *p at the bytes from off on; returns how many are available (at
 * least min(want, end - off) unless a read failed: then 0 and src->err). */
static size_t src_at(source_t *src, uint64_t off, size_t want, const uint8_t **p)
{
    uint64_t left = src->end - off;
    size_t need = left < want ? (size_t)left : want;
    if (src->fd < 0) {
        *p = src->buf + off;
        return (size_t)left;
    }
    if (off < src->win_off || off + need > src->win_off + src->win_len) {
        size_t n = left < src->win_cap ? (size_t)left : src->win_cap;
        int64_t got = sl_storage__pread_full(src->fd, src->win, n, off);
        if (got < (int64_t)n) {
            src->err = got < 0 ? (int)got : -EIO; /* the file shrank under us */
            src->win_len = 0;
            return 0;
        }
        src->win_off = off;
        src->win_len = n;
    }
    *p = src->win + (off - src->win_off);
    return (size_t)(src->win_off + src->win_len - off);
}

static void add_range(sl_repair_plan_t *p, uint64_t from, uint64_t to)
{
    sl_assert(to > from);
    sl_repair_range_t *last = p->damage_count ? &p->damage[p->damage_count - 1] : NULL;
    if (last && last->offset + last->bytes == from) {
        last->bytes += to - from;
    } else {
        sl_assert(p->damage_count < SL_REPAIR_RANGES_MAX);
        p->damage[p->damage_count++] = (sl_repair_range_t){.offset = from, .bytes = to - from};
    }
    p->damaged_bytes += to - from;
}

/* Whether a decoded record continues the kept sequence. strict: nothing
 * was damaged before it, so the first record must carry the file's name. */
static bool in_order(const sl_repair_plan_t *p, const sl_record_view_t *rec, bool strict)
{
    if (rec->seq >= p->seq_limit)
        return false;
    if (p->events > 0)
        return rec->seq > p->last_seq;
    return strict ? rec->seq == p->segment : rec->seq >= p->segment;
}

static void keep(sl_repair_plan_t *p, const sl_record_view_t *rec)
{
    if (p->events == 0)
        p->first_seq = rec->seq;
    p->last_seq = rec->seq;
    p->last_ts_ns = rec->ts_ns;
    p->events++;
    p->payload_bytes += rec->data_len;
    p->kept_bytes += rec->size;
}

/* Offset of the next acceptable record at or after from, or the end. */
static uint64_t resync(sl_repair_plan_t *p, source_t *src, uint64_t from, size_t rec_max,
                       uint32_t data_max)
{
    for (uint64_t q = from; q + SL_RECORD_PREFIX_BYTES <= src->end; q++) {
        const uint8_t *b = NULL;
        size_t avail = src_at(src, q, rec_max, &b);
        if (src->err)
            return src->end;
        sl_record_view_t rec;
        if (sl_record_decode(b, avail, data_max, &rec) == 0 && in_order(p, &rec, false))
            return q;
    }
    return src->end;
}

/* The header: returns where records start being searched, and adds the
 * header's range when it is damaged. */
static uint64_t plan_header(sl_repair_plan_t *p, source_t *src, bool *done)
{
    const uint8_t *b = NULL;
    size_t avail = src_at(src, 0, SL_SEGMENT_HEADER_BYTES, &b);
    *done = false;
    if (src->err)
        return 0;
    int rc = sl_segment_header_decode(b, avail, &p->header);
    if (rc == 0 && p->header.first_seq == p->segment) {
        p->header_ok = true;
        return SL_SEGMENT_HEADER_BYTES;
    }
    if (src->end < SL_SEGMENT_HEADER_BYTES) { /* cut short: nothing to keep */
        size_t k = avail < 8 ? avail : 8;
        p->torn = memcmp(b, SL_SEGMENT_MAGIC, k) == 0;
        if (src->end > 0)
            add_range(p, 0, src->end);
        *done = true;
        return 0;
    }
    return SL_SEGMENT_HEADER_BYTES;
}

static int plan(sl_repair_plan_t *p, source_t *src, uint32_t data_max)
{
    size_t rec_max = SL_RECORD_MAX_SIZE(data_max);
    bool done;
    uint64_t pos = plan_header(p, src, &done);
    if (done || src->err)
        return src->err;
    if (!p->header_ok) { /* damaged header: find the first record */
        uint64_t q = resync(p, src, pos, rec_max, data_max);
        add_range(p, 0, q);
        pos = q;
    }
    while (pos < src->end && !src->err) {
        const uint8_t *b = NULL;
        size_t avail = src_at(src, pos, rec_max, &b);
        if (src->err)
            break;
        sl_record_view_t rec;
        int rc = sl_record_decode(b, avail, data_max, &rec);
        if (rc == 0 && in_order(p, &rec, p->damage_count == 0)) {
            keep(p, &rec);
            pos += rec.size;
            continue;
        }
        if (rc == SL_EAGAIN) { /* a correct prefix up to the end of file */
            add_range(p, pos, src->end);
            p->torn = true;
            break;
        }
        uint64_t q = resync(p, src, pos + 1, rec_max, data_max);
        if (p->damage_count == SL_REPAIR_RANGES_MAX - 1 &&
            p->damage[p->damage_count - 1].offset + p->damage[p->damage_count - 1].bytes != pos)
            q = src->end; /* the bound: the rest is one last range */
        add_range(p, pos, q);
        pos = q;
    }
    return src->err;
}

static void plan_init(sl_repair_plan_t *p, uint64_t segment, uint64_t seq_limit, uint64_t bytes)
{
    sl_assert(segment >= 1);
    memset(p, 0, sizeof *p);
    p->segment = segment;
    p->seq_limit = seq_limit;
    p->file_bytes = bytes;
}

void sl_repair_plan_buffer(sl_repair_plan_t *p, uint64_t segment, uint64_t seq_limit,
                           const void *buf, size_t n, uint32_t data_max)
{
    plan_init(p, segment, seq_limit, n);
    source_t src = {.fd = -1, .buf = buf, .end = n};
    int rc = plan(p, &src, data_max);
    sl_assert(rc == 0); /* memory cannot fail to read */
}

int sl_repair_plan_fd(int fd, uint64_t segment, uint64_t seq_limit, uint32_t data_max,
                      sl_repair_plan_t *p)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return -errno;
    plan_init(p, segment, seq_limit, (uint64_t)st.st_size);
    size_t cap = 2 * SL_RECORD_MAX_SIZE(data_max);
    if (cap < WINDOW_MIN)
        cap = WINDOW_MIN;
    source_t src = {.fd = fd, .end = p->file_bytes, .win_cap = cap};
    src.win = malloc(cap);
    if (!src.win)
        return -ENOMEM;
    int rc = plan(p, &src, data_max);
    free(src.win);
    return rc;
}

sl_repair_action_t sl_repair_action(const sl_repair_plan_t *p)
{
    if (p->events == 0) /* nothing to keep, not even from a clean header */
        return SL_REPAIR_QUARANTINE;
    if (p->damage_count == 0)
        return SL_REPAIR_NONE;
    const sl_repair_range_t *d = &p->damage[0];
    if (p->damage_count == 1 && p->header_ok && d->offset + d->bytes == p->file_bytes)
        return SL_REPAIR_TRUNCATE;
    return SL_REPAIR_REWRITE;
}

const char *sl_repair_action_name(sl_repair_action_t a)
{
    switch (a) {
    case SL_REPAIR_NONE:
        return "none";
    case SL_REPAIR_TRUNCATE:
        return "truncate";
    case SL_REPAIR_REWRITE:
        return "rewrite";
    case SL_REPAIR_QUARANTINE:
        return "quarantine";
    }
    return "?";
}

void sl_repair_quarantine_name(char *out, size_t cap, uint64_t segment, uint64_t offset)
{
    sl_assert(cap > SL_REPAIR_NAME_MAX);
    char name[SL_SEGMENT_NAME_LEN + 1];
    sl_segment_name(name, sizeof name, segment);
    snprintf(out, cap, "%s" SL_REPAIR_QUARANTINE_INFIX "%llu", name, (unsigned long long)offset);
}

/* ---- applying -------------------------------------------------------- */

static int write_all(int fd, const uint8_t *buf, size_t n, uint64_t off)
{
    while (n > 0) {
        ssize_t w = pwrite(fd, buf, n, (off_t)off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        buf += w;
        n -= (size_t)w;
        off += (uint64_t)w;
    }
    return 0;
}

/* Copies len bytes at from in src_fd to dst_fd at to, in chunks. */
static int copy_range(int src_fd, uint64_t from, int dst_fd, uint64_t to, uint64_t len)
{
    size_t cap = WINDOW_MIN;
    uint8_t *buf = malloc(cap);
    if (!buf)
        return -ENOMEM;
    int rc = 0;
    while (rc == 0 && len > 0) {
        size_t n = len < cap ? (size_t)len : cap;
        int64_t got = sl_storage__pread_full(src_fd, buf, n, from);
        if (got != (int64_t)n)
            rc = got < 0 ? (int)got : -EIO;
        else
            rc = write_all(dst_fd, buf, n, to);
        from += n;
        to += n;
        len -= n;
    }
    free(buf);
    return rc;
}

static void log_range(const sl_repair_plan_t *p, const sl_repair_range_t *r, const char *file,
                      const char *id, size_t id_len)
{
    char qid[2 * SL_SESSION_ID_MAX + 8], name[SL_SEGMENT_NAME_LEN + 1];
    sl_segment_name(name, sizeof name, p->segment);
    bool tail = r->offset + r->bytes == p->file_bytes && p->torn;
    sl_error("segment damage quarantined",
             "session=%s segment=%s offset=%llu bytes=%llu file=%s reason=%s",
             sl_log_quote(qid, sizeof qid, id, (unsigned)id_len), name,
             (unsigned long long)r->offset, (unsigned long long)r->bytes, file,
             tail ? "torn" : "corrupt");
}

/* The k-th candidate name of a quarantine file: the plain name, then
 * ".1", ".2", ... -- a file quarantined earlier (an older incident at the
 * same offset, or a repair a crash interrupted) is never overwritten. */
static void quarantine_candidate(char *out, size_t cap, uint64_t segment, uint64_t offset,
                                 uint32_t k)
{
    sl_repair_quarantine_name(out, cap, segment, offset);
    if (k > 0) {
        size_t n = strlen(out);
        snprintf(out + n, cap - n, ".%u", k);
    }
}

/* Creates a new quarantine file (O_EXCL); returns its fd with its name in
 * q, or -errno. */
static int quarantine_create(int dirfd, uint64_t segment, uint64_t offset, char *q, size_t cap)
{
    for (uint32_t k = 0; k < SL_REPAIR_NAME_TRIES; k++) {
        quarantine_candidate(q, cap, segment, offset, k);
        int qfd = openat(dirfd, q, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (qfd >= 0 || errno != EEXIST)
            return qfd >= 0 ? qfd : -errno;
    }
    return -EEXIST;
}

/* Copies one range into its own quarantine file and fsyncs it. */
static int quarantine_range(int dirfd, int fd, const sl_repair_plan_t *p,
                            const sl_repair_range_t *r, const char *id, size_t id_len)
{
    char q[SL_REPAIR_NAME_MAX + 1];
    int qfd = quarantine_create(dirfd, p->segment, r->offset, q, sizeof q);
    if (qfd < 0)
        return qfd;
    int rc = copy_range(fd, r->offset, qfd, 0, r->bytes);
    if (rc == 0 && fsync(qfd) != 0)
        rc = -errno;
    close(qfd);
    if (rc == 0)
        log_range(p, r, q, id, id_len);
    return rc;
}

/* Writes the header and the kept records into a new file and renames it
 * to the name of its first record. */
static int rewrite(int dirfd, int fd, const sl_repair_plan_t *p, uint64_t epoch)
{
    char name[SL_SEGMENT_NAME_LEN + 1], tmp[SL_SEGMENT_NAME_LEN + 16];
    sl_segment_name(name, sizeof name, p->first_seq);
    snprintf(tmp, sizeof tmp, "%s" SL_REPAIR_TMP_SUFFIX, name);
    int nfd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (nfd < 0)
        return -errno;
    uint8_t h[SL_SEGMENT_HEADER_BYTES];
    sl_segment_header_t hd = {.epoch = p->header_ok ? p->header.epoch : epoch,
                              .first_seq = p->first_seq,
                              .created_ns = p->header_ok ? p->header.created_ns : p->last_ts_ns};
    sl_segment_header_encode(h, &hd);
    int rc = write_all(nfd, h, sizeof h, 0);
    uint64_t at = SL_SEGMENT_HEADER_BYTES, pos = SL_SEGMENT_HEADER_BYTES;
    for (uint32_t i = 0; rc == 0 && i <= p->damage_count; i++) {
        uint64_t end = i < p->damage_count ? p->damage[i].offset : p->file_bytes;
        if (end > pos) {
            rc = copy_range(fd, pos, nfd, at, end - pos);
            at += end - pos;
        }
        if (i < p->damage_count && p->damage[i].offset + p->damage[i].bytes > pos)
            pos = p->damage[i].offset + p->damage[i].bytes;
    }
    sl_assert(rc != 0 || at == SL_SEGMENT_HEADER_BYTES + p->kept_bytes);
    if (rc == 0 && fsync(nfd) != 0)
        rc = -errno;
    close(nfd);
    if (rc == 0 && renameat(dirfd, tmp, dirfd, name) != 0)
        rc = -errno;
    if (rc == 0 && p->first_seq != p->segment) {
        char old[SL_SEGMENT_NAME_LEN + 1];
        sl_segment_name(old, sizeof old, p->segment);
        if (unlinkat(dirfd, old, 0) != 0)
            rc = -errno;
    }
    return rc;
}

int sl_repair_apply(int dirfd, int fd, const sl_repair_plan_t *p, uint64_t epoch, const char *id,
                    size_t id_len)
{
    sl_repair_action_t a = sl_repair_action(p);
    int rc = 0;
    if (a == SL_REPAIR_NONE)
        return 0;
    if (a == SL_REPAIR_QUARANTINE) {
        char name[SL_SEGMENT_NAME_LEN + 1], q[SL_REPAIR_NAME_MAX + 1];
        sl_segment_name(name, sizeof name, p->segment);
        rc = -EEXIST;
        for (uint32_t k = 0; k < SL_REPAIR_NAME_TRIES && rc == -EEXIST; k++) {
            quarantine_candidate(q, sizeof q, p->segment, 0, k);
            rc = renameat2(dirfd, name, dirfd, q, RENAME_NOREPLACE) == 0 ? 0 : -errno;
        }
        if (rc != 0)
            return rc;
        log_range(p, &(sl_repair_range_t){.offset = 0, .bytes = p->file_bytes}, q, id, id_len);
    } else {
        for (uint32_t i = 0; rc == 0 && i < p->damage_count; i++)
            rc = quarantine_range(dirfd, fd, p, &p->damage[i], id, id_len);
        /* The quarantine files' names must be durable before the segment
         * loses the bytes they hold. */
        if (rc == 0 && fsync(dirfd) != 0)
            rc = -errno;
        if (rc == 0 && a == SL_REPAIR_TRUNCATE) {
            if (ftruncate(fd, (off_t)p->damage[0].offset) != 0 || fsync(fd) != 0)
                rc = -errno;
        } else if (rc == 0) {
            sl_assert(p->header_ok || epoch != 0);
            rc = rewrite(dirfd, fd, p, epoch);
        }
    }
    if (rc == 0 && fsync(dirfd) != 0)
        rc = -errno;
    return rc;
}
