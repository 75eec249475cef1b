/*
 * Startup recovery: segment scans, torn-tail truncation, and the rebuild of
 * each session's segment index from the manifest and the files. See
 * recovery.h for the rules; manifest.h for when a file is opened at all.
 * Plain syscalls throughout: this runs before the server accepts
 * connections.
 */
#include "storage/recovery.h"
#include "storage/storage_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/clock.h"
#include "runtime/log.h"
#include "storage/seqmark.h"
#include "storage/session_id.h"

/* ---- scanning one segment ------------------------------------------- */

void sl_recovery_scan_init(sl_recovery_scan_t *s, uint64_t segment, uint64_t file_bytes,
                           uint32_t data_max)
{
    sl_assert(segment >= 1);
    memset(s, 0, sizeof *s);
    s->segment = segment;
    s->file_bytes = file_bytes;
    s->data_max = data_max;
}

static int scan_finish(sl_recovery_scan_t *s, sl_recovery_end_t end)
{
    s->done = true;
    s->end = end;
    return 0;
}

/* A header cut short is torn when what exists matches the magic. */
static int scan_header(sl_recovery_scan_t *s, const uint8_t *p, size_t n, bool eof)
{
    int rc = sl_segment_header_decode(p, n, &s->header);
    if (rc == SL_EAGAIN) {
        size_t k = n < 8 ? n : 8;
        if (memcmp(p, SL_SEGMENT_MAGIC, k) != 0)
            return scan_finish(s, SL_RECOVERY_END_CORRUPT);
        return eof ? scan_finish(s, SL_RECOVERY_END_TORN) : SL_EAGAIN;
    }
    if (rc != 0 || s->header.first_seq != s->segment)
        return scan_finish(s, SL_RECOVERY_END_CORRUPT);
    s->header_ok = true;
    s->valid_bytes = SL_SEGMENT_HEADER_BYTES;
    return 1; /* go on with records */
}

int sl_recovery_scan_feed(sl_recovery_scan_t *s, const void *buf, size_t n)
{
    sl_assert(!s->done);
    sl_assert(s->valid_bytes + n <= s->file_bytes);
    const uint8_t *p = buf;
    bool eof = s->valid_bytes + n == s->file_bytes;
    size_t pos = 0;
    if (!s->header_ok) {
        int rc = scan_header(s, p, n, eof);
        if (rc <= 0)
            return rc;
        pos = SL_SEGMENT_HEADER_BYTES;
    }
    while (pos < n) {
        sl_record_view_t rec;
        int rc = sl_record_decode(p + pos, n - pos, s->data_max, &rec);
        if (rc == SL_EAGAIN)
            return eof ? scan_finish(s, SL_RECOVERY_END_TORN) : SL_EAGAIN;
        if (rc != 0)
            return scan_finish(s, SL_RECOVERY_END_CORRUPT);
        bool in_order = s->events == 0 ? rec.seq == s->segment : rec.seq > s->last_seq;
        if (!in_order)
            return scan_finish(s, SL_RECOVERY_END_CORRUPT);
        if (s->events == 0)
            s->first_seq = rec.seq;
        s->last_seq = rec.seq;
        s->last_ts_ns = rec.ts_ns;
        s->events++;
        s->payload_bytes += rec.data_len;
        s->valid_bytes += rec.size;
        pos += rec.size;
    }
    return eof ? scan_finish(s, SL_RECOVERY_END_CLEAN) : SL_EAGAIN;
}

void sl_recovery_scan_buffer(sl_recovery_scan_t *s, uint64_t segment, const void *buf, size_t n,
                             uint32_t data_max)
{
    sl_recovery_scan_init(s, segment, n, data_max);
    int rc = sl_recovery_scan_feed(s, buf, n);
    sl_assert(rc == 0); /* the whole file was offered */
}

bool sl_recovery_needs_truncate(const sl_recovery_scan_t *s)
{
    return s->valid_bytes < s->file_bytes;
}

/* Reads up to want bytes at off; returns the count (short only at EOF) or
 * -errno. Startup and the offline checker only (a blocking syscall). */
int64_t sl_storage__pread_full(int fd, uint8_t *buf, size_t want, uint64_t off)
{
    size_t got = 0;
    while (got < want) {
        ssize_t n = pread(fd, buf + got, want - got, (off_t)(off + got));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            break;
        got += (size_t)n;
    }
    return (int64_t)got;
}

int sl_recovery_scan_fd(int fd, uint64_t segment, uint32_t data_max, sl_recovery_scan_t *s)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return -errno;
    sl_recovery_scan_init(s, segment, (uint64_t)st.st_size, data_max);
    size_t cap = SL_RECORD_MAX_SIZE(data_max);
    if (cap < SL_RECOVERY_READ_BYTES)
        cap = SL_RECOVERY_READ_BYTES;
    if (cap > s->file_bytes)
        cap = (size_t)s->file_bytes;
    uint8_t *buf = malloc(cap ? cap : 1);
    if (!buf)
        return -ENOMEM;
    int rc = 0;
    while (!s->done) {
        uint64_t left = s->file_bytes - s->valid_bytes;
        size_t want = left < cap ? (size_t)left : cap;
        int64_t got = sl_storage__pread_full(fd, buf, want, s->valid_bytes);
        if (got < 0) {
            rc = (int)got;
            break;
        }
        if ((size_t)got < want) /* the file shrank: its end is here */
            s->file_bytes = s->valid_bytes + (uint64_t)got;
        uint64_t before = s->valid_bytes;
        if (sl_recovery_scan_feed(s, buf, (size_t)got) == SL_EAGAIN)
            sl_assert(s->valid_bytes > before); /* cap holds any record */
    }
    free(buf);
    return rc;
}

static const char *end_reason(sl_recovery_end_t end)
{
    return end == SL_RECOVERY_END_TORN      ? "torn"
           : end == SL_RECOVERY_END_CORRUPT ? "corrupt"
                                            : "clean";
}

int sl_recovery_truncate(int fd, const char *id, size_t id_len, const char *name,
                         const sl_recovery_scan_t *s)
{
    if (ftruncate(fd, (off_t)s->valid_bytes) != 0)
        return -errno;
    if (fsync(fd) != 0)
        return -errno;
    char qid[2 * SL_SESSION_ID_MAX + 8];
    sl_log(s->end == SL_RECOVERY_END_CORRUPT ? SL_LOG_ERROR : SL_LOG_WARN, "truncated torn tail",
           "session=%s segment=%s offset=%llu dropped_bytes=%llu reason=%s",
           sl_log_quote(qid, sizeof qid, id, (unsigned)id_len), name,
           (unsigned long long)s->valid_bytes, (unsigned long long)(s->file_bytes - s->valid_bytes),
           end_reason(s->end));
    return 0;
}

/* ---- one session ----------------------------------------------------- */

typedef struct session_ctx {
    const char *id;
    size_t id_len;
    int dirfd;                        /* the session folder */
    const sl_manifest_entry_t *entry; /* NULL: none, or found stale */
    uint32_t entry_i;                 /* merge position in entry's segments */
    uint32_t data_max;
    uint64_t epoch_hint;       /* from any intact header, for rebuilt ones */
    uint64_t tail_seq;         /* last seq before a damaged tail ... */
    uint64_t tail_records_max; /* ... and how many records it may have held */
    const sl_recovery_opts_t *opts;
    sl_recovery_session_t *out;
} session_ctx_t;

static void log_segment(sl_log_level_t level, const char *msg, const session_ctx_t *c,
                        const char *name, const char *why)
{
    char qid[2 * SL_SESSION_ID_MAX + 8];
    sl_log(level, msg, "session=%s segment=%s reason=%s",
           sl_log_quote(qid, sizeof qid, c->id, (unsigned)c->id_len), name, why);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Lists the segment files of the folder, sorted. Returns the count (bounded
 * by SL_SEGMENTS_PER_SESSION_MAX; more are logged and ignored) with *out
 * returned owned, or -errno. */
static int64_t list_segments(const session_ctx_t *c, uint64_t **out)
{
    int fd = dup(c->dirfd);
    DIR *d = fd < 0 ? NULL : fdopendir(fd);
    if (!d) {
        int rc = -errno;
        if (fd >= 0)
            close(fd);
        return rc;
    }
    uint64_t *v = NULL, seq;
    size_t n = 0, cap = 0;
    int64_t rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        if (!sl_segment_name_parse(de->d_name, strlen(de->d_name), &seq))
            continue;
        if (n == SL_SEGMENTS_PER_SESSION_MAX) {
            log_segment(SL_LOG_ERROR, "too many segments", c, de->d_name, "ignored");
            break;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            uint64_t *nv = realloc(v, cap * sizeof *v);
            if (!nv)
                rc = -ENOMEM;
            else
                v = nv;
        }
        if (rc == 0)
            v[n++] = seq;
    }
    closedir(d);
    if (rc != 0) {
        free(v);
        return rc;
    }
    if (n > 1)
        qsort(v, n, sizeof *v, cmp_u64);
    *out = v;
    return (int64_t)n;
}

/* The manifest's record of segment first_seq, if it has one. */
static bool entry_segment(session_ctx_t *c, uint64_t first_seq, sl_segment_t *seg)
{
    const sl_manifest_entry_t *e = c->entry;
    while (e && c->entry_i < e->segment_count) {
        sl_manifest_entry_segment(e, c->entry_i, seg);
        if (seg->first_seq >= first_seq)
            return seg->first_seq == first_seq;
        c->entry_i++;
    }
    return false;
}

/* A segment whose size still matches the manifest is taken as is. */
static bool try_trust(session_ctx_t *c, uint64_t first_seq, uint64_t file_bytes)
{
    sl_segment_t seg;
    if (!entry_segment(c, first_seq, &seg) || seg.bytes != file_bytes)
        return false;
    if (sl_segment_index_add(c->out->index, &seg) != 0)
        return false;
    c->out->segments_trusted++;
    return true;
}

static bool repairing(const session_ctx_t *c)
{
    return !c->opts || !c->opts->dry_run;
}

/* The epoch a rebuilt header gets: the session's, else one read from an
 * intact header, else a new one (the session had no readable header). */
static uint64_t repair_epoch(session_ctx_t *c)
{
    if (c->out->epoch == 0)
        c->out->epoch = c->epoch_hint ? c->epoch_hint : (sl_clock_wall_ns() | 1);
    return c->out->epoch;
}

/* Counts what a plan cuts, and applies it when repairing. */
static int repair_segment(session_ctx_t *c, int fd, const sl_repair_plan_t *p)
{
    sl_repair_action_t a = sl_repair_action(p);
    if (a == SL_REPAIR_NONE)
        return 0;
    sl_recovery_session_t *out = c->out;
    /* A torn tail is what a crash leaves, not damage; it is still kept. */
    if (a != SL_REPAIR_TRUNCATE || !p->torn)
        out->segments_damaged++;
    out->damaged_bytes += a == SL_REPAIR_QUARANTINE ? p->file_bytes : p->damaged_bytes;
    if (!repairing(c))
        return 0;
    uint64_t epoch = p->header_ok ? p->header.epoch : repair_epoch(c);
    int rc = sl_repair_apply(c->dirfd, fd, p, epoch, c->id, c->id_len);
    if (rc != 0)
        return rc;
    out->quarantined_bytes += a == SL_REPAIR_QUARANTINE ? p->file_bytes : p->damaged_bytes;
    out->segments_truncated += a == SL_REPAIR_TRUNCATE;
    out->segments_rewritten += a == SL_REPAIR_REWRITE;
    out->segments_removed += a == SL_REPAIR_QUARANTINE;
    return 0;
}

/* Adds the kept records of a planned segment to the index. */
static int index_plan(session_ctx_t *c, const char *name, const sl_repair_plan_t *p)
{
    sl_recovery_session_t *out = c->out;
    sl_segment_t seg = {.first_seq = p->first_seq,
                        .last_seq = p->last_seq,
                        .bytes = SL_SEGMENT_HEADER_BYTES + p->kept_bytes,
                        .events = p->events,
                        .payload_bytes = p->payload_bytes,
                        .last_ts_ns = p->last_ts_ns};
    int rc = sl_segment_index_add(out->index, &seg);
    if (rc == SL_ECORRUPT) {
        out->segments_damaged++;
        log_segment(SL_LOG_ERROR, "overlapping segment skipped", c, name, "seq");
        return 0;
    }
    if (rc != 0)
        return rc;
    if (out->epoch == 0 && p->header_ok)
        out->epoch = p->header.epoch;
    if (out->created_ns == 0 && p->header_ok)
        out->created_ns = p->header.created_ns;
    if (p->last_ts_ns > out->last_activity_ns)
        out->last_activity_ns = p->last_ts_ns;
    return 0;
}

/* A damaged (not torn) tail of the last segment held records that were
 * written, so their seqs were handed out; how many is unknown, but each
 * record takes at least SL_RECORD_OVERHEAD + 1 bytes. A torn tail is the
 * one write a crash interrupted: its record was never completely written,
 * so never readable, and its seq is free again. */
static void note_tail(session_ctx_t *c, const sl_repair_plan_t *p)
{
    c->tail_seq = c->tail_records_max = 0;
    if (p->damage_count == 0 || p->torn)
        return;
    const sl_repair_range_t *r = &p->damage[p->damage_count - 1];
    if (r->offset + r->bytes != p->file_bytes)
        return;
    c->tail_seq = p->events ? p->last_seq : p->segment - 1;
    c->tail_records_max = r->bytes / (SL_RECORD_OVERHEAD + 1);
}

/* Plans segment first_seq (seq_limit: the next one's name), reports it,
 * repairs it and indexes what it keeps. */
static int plan_segment(session_ctx_t *c, int fd, uint64_t first_seq, uint64_t seq_limit,
                        const char *name)
{
    sl_repair_plan_t *p = malloc(sizeof *p);
    if (!p)
        return -ENOMEM;
    int rc = sl_repair_plan_fd(fd, first_seq, seq_limit, c->data_max, p);
    if (rc == 0)
        c->out->segments_scanned++;
    if (rc == 0 && p->header_ok && c->out->epoch != 0 && p->header.epoch != c->out->epoch) {
        c->out->segments_damaged++;
        log_segment(SL_LOG_ERROR, "segment of another epoch skipped", c, name, "epoch");
        free(p);
        return 0;
    }
    if (rc == 0 && c->opts && c->opts->segment_cb)
        c->opts->segment_cb(c->id, c->id_len, p, c->opts->ctx);
    if (rc == 0 && seq_limit == UINT64_MAX)
        note_tail(c, p);
    if (rc == 0)
        rc = repair_segment(c, fd, p);
    if (rc == 0 && p->events > 0)
        rc = index_plan(c, name, p);
    free(p);
    return rc;
}

static int recover_segment(session_ctx_t *c, uint64_t first_seq, uint64_t seq_limit)
{
    char name[SL_SEGMENT_NAME_LEN + 1];
    sl_segment_name(name, sizeof name, first_seq);
    if (first_seq > c->out->seq_hwm)
        c->out->seq_hwm = first_seq; /* that seq was handed out */
    struct stat st;
    if (fstatat(c->dirfd, name, &st, 0) != 0)
        return -errno;
    if (try_trust(c, first_seq, (uint64_t)st.st_size))
        return 0;
    int fd = openat(c->dirfd, name, (repairing(c) ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = plan_segment(c, fd, first_seq, seq_limit, name);
    close(fd);
    return rc;
}

/* Reads the header of segment first_seq; false when it is not intact. */
static bool read_header(const session_ctx_t *c, uint64_t first_seq, sl_segment_header_t *hd)
{
    char name[SL_SEGMENT_NAME_LEN + 1];
    sl_segment_name(name, sizeof name, first_seq);
    int fd = openat(c->dirfd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    uint8_t h[SL_SEGMENT_HEADER_BYTES];
    int64_t n = sl_storage__pread_full(fd, h, sizeof h, 0);
    close(fd);
    return n == (int64_t)sizeof h && sl_segment_header_decode(h, sizeof h, hd) == 0;
}

/* A dirty entry written before the session was deleted and created again
 * names the old epoch; the first intact header tells. Also remembers that
 * epoch for headers a repair rebuilds. */
static void check_epoch(session_ctx_t *c, const uint64_t *seqs, int64_t n)
{
    sl_segment_header_t hd;
    for (int64_t k = 0; k < n && k < 4 && !c->epoch_hint; k++)
        if (read_header(c, seqs[k], &hd))
            c->epoch_hint = hd.epoch;
    if (c->entry && c->epoch_hint && c->epoch_hint != c->entry->epoch) {
        log_segment(SL_LOG_INFO, "stale manifest entry ignored", c, "-", "epoch");
        c->entry = NULL;
    }
}

static void use_entry(sl_recovery_session_t *out, const sl_manifest_entry_t *e)
{
    out->entry_used = true;
    out->epoch = e->epoch;
    out->created_ns = e->created_ns;
    if (e->last_activity_ns > out->last_activity_ns)
        out->last_activity_ns = e->last_activity_ns;
    if (e->last_seq > out->seq_hwm)
        out->seq_hwm = e->last_seq;
}

/* A clean entry is the whole truth: no file is touched. Returns 0, or
 * SL_ECORRUPT when its segments do not form a valid index. */
static int from_clean_entry(sl_recovery_session_t *out, const sl_manifest_entry_t *e)
{
    for (uint32_t i = 0; i < e->segment_count; i++) {
        sl_segment_t seg;
        sl_manifest_entry_segment(e, i, &seg);
        int rc = sl_segment_index_add(out->index, &seg);
        if (rc != 0)
            return rc;
    }
    out->segments_trusted = e->segment_count;
    use_entry(out, e);
    return 0;
}

/* The reservation mark: every seq up to it may have been issued. */
static void use_seqmark(session_ctx_t *c)
{
    uint64_t epoch, reserved;
    int rc = sl_seqmark_load(c->dirfd, &epoch, &reserved);
    if (rc == -ENOENT)
        return;
    if (rc != 0) {
        log_segment(SL_LOG_WARN, "seq reservation mark unreadable", c, SL_SEQMARK_NAME,
                    sl_strerror(rc));
        return;
    }
    if (c->out->epoch == 0)
        c->out->epoch = epoch; /* only ephemeral events so far */
    if (epoch != c->out->epoch)
        return; /* left by a deleted incarnation */
    c->out->seq_reserved = reserved;
    if (reserved > c->out->seq_hwm)
        c->out->seq_hwm = reserved;
}

static int from_files(session_ctx_t *c)
{
    uint64_t *seqs = NULL;
    int64_t n = list_segments(c, &seqs);
    if (n < 0)
        return (int)n;
    check_epoch(c, seqs, n);
    if (c->entry)
        use_entry(c->out, c->entry);
    int rc = 0;
    for (int64_t k = 0; k < n && rc == 0; k++)
        rc = recover_segment(c, seqs[k], k + 1 < n ? seqs[k + 1] : UINT64_MAX);
    free(seqs);
    if (rc == 0)
        use_seqmark(c);
    if (rc == 0 && c->tail_records_max > 0) {
        /* Ephemeral seqs between the tail's records lie below the mark. */
        uint64_t base = c->tail_seq > c->out->seq_reserved ? c->tail_seq : c->out->seq_reserved;
        if (base + c->tail_records_max > c->out->seq_hwm)
            c->out->seq_hwm = base + c->tail_records_max;
    }
    return rc;
}

int sl_recovery_session_opts(const char *data_dir, const char *id, size_t id_len,
                             const sl_manifest_entry_t *entry, uint64_t segment_bytes_max,
                             uint32_t data_max, const sl_recovery_opts_t *opts,
                             sl_recovery_session_t *out)
{
    sl_assert(sl_session_id_valid(id, id_len));
    memset(out, 0, sizeof *out);
    int rc = sl_segment_index_create(segment_bytes_max, data_max, &out->index);
    if (rc != 0)
        return rc;
    bool check_all = opts && opts->ignore_clean;
    if (entry && (entry->flags & SL_MANIFEST_ENTRY_CLEAN) && !check_all) {
        rc = from_clean_entry(out, entry);
        if (rc == 0)
            goto done;
        sl_segment_index_destroy(out->index);
        memset(out, 0, sizeof *out);
        rc = sl_segment_index_create(segment_bytes_max, data_max, &out->index);
        if (rc != 0)
            return rc;
    }
    char path[PATH_MAX];
    rc = sl_segment_path(path, sizeof path, data_dir, id, id_len, 0);
    if (rc < 0)
        goto fail;
    session_ctx_t c = {.id = id,
                       .id_len = id_len,
                       .entry = check_all ? NULL : entry,
                       .data_max = data_max,
                       .opts = opts,
                       .out = out};
    c.dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (c.dirfd < 0) {
        rc = -errno;
        goto fail;
    }
    rc = from_files(&c);
    close(c.dirfd);
    if (rc != 0)
        goto fail;
done:
    if (sl_segment_index_last_seq(out->index) > out->seq_hwm)
        out->seq_hwm = sl_segment_index_last_seq(out->index);
    return 0;
fail:
    sl_segment_index_destroy(out->index);
    out->index = NULL;
    return rc;
}

int sl_recovery_session(const char *data_dir, const char *id, size_t id_len,
                        const sl_manifest_entry_t *entry, uint64_t segment_bytes_max,
                        uint32_t data_max, sl_recovery_session_t *out)
{
    return sl_recovery_session_opts(data_dir, id, id_len, entry, segment_bytes_max, data_max, NULL,
                                    out);
}
/* ---- the data dir ---------------------------------------------------- */

typedef struct entry_table {
    sl_manifest_entry_t *v;
    bool *seen;
    uint32_t count;
} entry_table_t;

static int cmp_entry(const void *a, const void *b)
{
    const sl_manifest_entry_t *x = a, *y = b;
    size_t n = x->id_len < y->id_len ? x->id_len : y->id_len;
    int c = memcmp(x->id, y->id, n);
    return c ? c : (x->id_len > y->id_len) - (x->id_len < y->id_len);
}

/* Decodes every entry of the manifest at buf into t (sorted by id).
 * Returns 0, SL_ECORRUPT, or -ENOMEM; t is empty on failure. */
static int entries_load(entry_table_t *t, const void *buf, size_t len)
{
    sl_manifest_reader_t r;
    int rc = sl_manifest_reader_init(&r, buf, len);
    if (rc != 0)
        return rc;
    uint32_t n = sl_manifest_reader_count(&r);
    /* The count comes from disk: never allocate more than the body could
     * hold. */
    if ((uint64_t)n * SL_MANIFEST_ENTRY_FIXED > len)
        return SL_ECORRUPT;
    t->v = calloc(n ? n : 1, sizeof *t->v);
    t->seen = calloc(n ? n : 1, sizeof *t->seen);
    if (!t->v || !t->seen)
        rc = -ENOMEM;
    for (uint32_t i = 0; rc == 0 && i < n; i++)
        rc = sl_manifest_reader_next(&r, &t->v[i]) == 1 ? 0 : SL_ECORRUPT;
    if (rc == 0 && sl_manifest_reader_next(&r, &(sl_manifest_entry_t){0}) != 0)
        rc = SL_ECORRUPT;
    if (rc != 0) {
        free(t->v);
        free(t->seen);
        memset(t, 0, sizeof *t);
        return rc;
    }
    t->count = n;
    if (n > 1)
        qsort(t->v, n, sizeof *t->v, cmp_entry);
    return 0;
}

static const sl_manifest_entry_t *entries_find(entry_table_t *t, const char *id, size_t len)
{
    sl_manifest_entry_t key = {.id = id, .id_len = (uint32_t)len};
    sl_manifest_entry_t *e =
        t->count ? bsearch(&key, t->v, t->count, sizeof *t->v, cmp_entry) : NULL;
    if (e)
        t->seen[e - t->v] = true;
    return e;
}

static bool is_dir(DIR *d, const struct dirent *de)
{
    if (de->d_type == DT_DIR)
        return true;
    if (de->d_type != DT_UNKNOWN)
        return false;
    struct stat st;
    return fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
}

typedef struct walk {
    const char *data_dir;
    uint64_t segment_bytes_max;
    uint32_t data_max;
    sl_recovery_session_cb cb;
    void *ctx;
    const sl_recovery_opts_t *opts;
    entry_table_t entries;
    sl_recovery_stats_t *stats;
} walk_t;

static void walk_one(walk_t *w, const char *name)
{
    size_t len = strlen(name);
    char q[2 * SL_SESSION_ID_MAX + 8];
    const sl_manifest_entry_t *e = entries_find(&w->entries, name, len);
    sl_recovery_session_t rs;
    int rc = sl_recovery_session_opts(w->data_dir, name, len, e, w->segment_bytes_max, w->data_max,
                                      w->opts, &rs);
    if (rc != 0) {
        w->stats->sessions_failed++;
        sl_error("session recovery failed", "session=%s err=%d error=\"%s\"",
                 sl_log_quote(q, sizeof q, name, (unsigned)len), rc, sl_strerror(rc));
        return;
    }
    w->stats->sessions++;
    w->stats->segments_scanned += rs.segments_scanned;
    w->stats->segments_truncated += rs.segments_truncated;
    w->stats->segments_damaged += rs.segments_damaged;
    w->stats->damaged_bytes += rs.damaged_bytes;
    w->stats->quarantined_bytes += rs.quarantined_bytes;
    w->cb(name, len, rs.entry_used ? e : NULL, &rs, w->ctx);
}

static void log_manifest(const char *data_dir, int status)
{
    if (status == 0)
        return;
    if (status == -ENOENT)
        sl_info("no manifest, scanning data dir", "data_dir=%s", data_dir);
    else
        sl_warn("manifest unusable, scanning data dir", "data_dir=%s err=%d error=\"%s\"", data_dir,
                status, sl_strerror(status));
}

int sl_recovery_data_dir(const char *data_dir, uint64_t segment_bytes_max, uint32_t data_max,
                         sl_recovery_session_cb cb, void *ctx, sl_recovery_stats_t *stats)
{
    return sl_recovery_data_dir_opts(data_dir, segment_bytes_max, data_max, NULL, cb, ctx, stats);
}

int sl_recovery_data_dir_opts(const char *data_dir, uint64_t segment_bytes_max, uint32_t data_max,
                              const sl_recovery_opts_t *opts, sl_recovery_session_cb cb, void *ctx,
                              sl_recovery_stats_t *stats)
{
    memset(stats, 0, sizeof *stats);
    walk_t w = {.data_dir = data_dir,
                .opts = opts,
                .segment_bytes_max = segment_bytes_max,
                .data_max = data_max,
                .cb = cb,
                .ctx = ctx,
                .stats = stats};
    void *mbuf = NULL;
    size_t mlen = 0;
    stats->manifest_status = sl_manifest_load(data_dir, &mbuf, &mlen);
    if (stats->manifest_status == 0)
        stats->manifest_status = entries_load(&w.entries, mbuf, mlen);
    log_manifest(data_dir, stats->manifest_status);
    int rc = 0;
    DIR *d = opendir(data_dir);
    if (!d)
        rc = -errno;
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue; /* reserved for the store's own files */
        if (!sl_session_id_valid(de->d_name, strlen(de->d_name)) || !is_dir(d, de)) {
            char q[2 * 255 + 8];
            stats->names_ignored++;
            sl_warn("unexpected name in data dir", "name=%s",
                    sl_log_quote(q, sizeof q, de->d_name, (unsigned)strlen(de->d_name)));
            continue;
        }
        walk_one(&w, de->d_name);
    }
    if (d)
        closedir(d);
    for (uint32_t i = 0; i < w.entries.count; i++)
        stats->entries_dropped += !w.entries.seen[i];
    free(w.entries.v);
    free(w.entries.seen);
    free(mbuf);
    return rc;
}
