/*
 * Startup recovery and the manifest, for the server.
 *
 * Startup (main thread, before accepting; plain syscalls): sweep the
 * folders of deletions a crash interrupted, recover every session folder
 * (storage/recovery.h: a clean manifest entry is trusted without opening a
 * file, a dirty one re-scans only changed segments), register each session
 * as hibernated (no actor, no open file, stats from the manifest/index),
 * then rewrite the manifest with every entry dirty -- from here on the
 * files may change under it. Shutdown: once every session actor has closed
 * its log, write the manifest again with the entries of stopped sessions
 * marked clean, so the next start opens one file instead of every
 * session's.
 */
#include "actors/persist.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "actors/conn_ds.h"
#include "actors/lifecycle.h"
#include "actors/registry.h"
#include "actors/session.h"
#include "actors/sessops.h"
#include "storage/attrs.h"
#include "storage/lifecycle.h"
#include "storage/record.h"
#include "runtime/clock.h"
#include "runtime/log.h"
#include "storage/journal.h"
#include "storage/manifest.h"
#include "storage/recovery.h"
#include "storage/syncer.h"

/* ---- lifecycle at startup ---- */

typedef struct replay {
    sl_entry_t *e;
    uint64_t after;     /* replay records with a greater seq */
    bool closed;
    uint64_t closed_seq;
    bool marker;        /* a close marker record was replayed (not an event) */
    uint64_t records;   /* trailers replayed */
} replay_t;

static void replay_record(replay_t *rp, const sl_record_view_t *rec)
{
    sl_lifecycle_ext_t x;
    if (rec->seq <= rp->after || !rec->ext_len || sl_lifecycle_ext_decode(rec->ext, rec->ext_len, &x) != 0)
        return;
    rp->records++;
    sl_session_life_apply(rp->e, &x, rec->seq);
    if (x.close) {
        rp->closed = true;
        rp->closed_seq = x.control ? rec->seq - 1 : rec->seq;
        rp->marker = x.control;
    }
}

/* Reads one segment's readable records (plain syscalls: startup only) and
 * replays their trailers. A record that does not decode ends the segment
 * (recovery has already cut damage; the readable range is intact). */
static int replay_segment(sl_server_t *srv, replay_t *rp, const sl_segment_t *seg, uint8_t *buf,
                          size_t cap)
{
    char path[512];
    if (sl_segment_path(path, sizeof path, NULL, rp->e->id, rp->e->id_len, seg->first_seq) < 0)
        return SL_EINVAL;
    int fd = openat(srv->data_dir_fd, path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    uint64_t pos = SL_SEGMENT_HEADER_BYTES, end = seg->bytes;
    size_t len = 0;
    uint32_t data_max = (uint32_t)srv->cfg.max_event_bytes;
    int rc = 0;
    while (pos + len < end) {
        size_t want = cap - len;
        if (want > end - pos - len)
            want = (size_t)(end - pos - len);
        ssize_t got = pread(fd, buf + len, want, (off_t)(pos + len));
        if (got <= 0) {
            rc = got < 0 ? -errno : 0;
            break;
        }
        len += (size_t)got;
        size_t p = 0;
        sl_record_view_t rec;
        int d;
        while (p < len && (d = sl_record_decode(buf + p, len - p, data_max, &rec)) == 0) {
            replay_record(rp, &rec);
            p += rec.size;
        }
        if (p < len && d != SL_EAGAIN)
            break; /* not a record: the readable range ends here */
        memmove(buf, buf + p, len - p);
        pos += p;
        len -= p;
    }
    close(fd);
    return rc;
}

/* Rebuilds what the log says about e's lifecycle after the manifest's
 * snapshot (rp->after): producers, Stream-Seq, closure. */
static int replay_log(sl_server_t *srv, replay_t *rp, const sl_segment_index_t *ix)
{
    size_t cap = SL_RECOVERY_READ_BYTES > SL_RECORD_BYTES_MAX ? SL_RECOVERY_READ_BYTES
                                                               : SL_RECORD_BYTES_MAX;
    uint8_t *buf = NULL;
    int rc = 0;
    for (uint32_t i = 0; rc == 0 && i < sl_segment_index_count(ix); i++) {
        const sl_segment_t *seg = sl_segment_index_at(ix, i);
        if (seg->last_seq <= rp->after || seg->bytes <= SL_SEGMENT_HEADER_BYTES)
            continue;
        if (!buf && !(buf = malloc(cap)))
            return -ENOMEM;
        rc = replay_segment(srv, rp, seg, buf, cap);
    }
    free(buf);
    return rc;
}

/* The session's attributes, closure and producers as of its last record:
 * the manifest's extension (exact for a clean entry), else the attributes
 * file, then the trailers written after the manifest's snapshot. */
static void recover_lifecycle(sl_server_t *srv, sl_entry_t *e, const sl_manifest_entry_t *me,
                              const sl_recovery_session_t *rs, bool clean)
{
    sl_lifecycle_entry_t x = {0};
    if (me && rs->entry_used && me->ext &&
        sl_lifecycle_entry_decode(me->ext, me->ext_len, &x) != 0) {
        sl_warn("manifest lifecycle damaged; rebuilding from the log", "session=%s", e->id);
        memset(&x, 0, sizeof x);
    }
    if (!x.has_attrs) {
        uint8_t buf[SL_ATTRS_BYTES_MAX];
        int n = sl_attrs_load(srv->data_dir_fd, e->id, buf, sizeof buf);
        uint64_t epoch;
        const uint8_t *pl;
        size_t pl_len;
        /* The file belongs to this incarnation; a folder with no segment
         * (created, never published) takes the file's incarnation. */
        if (n > 0 && sl_attrs_decode(buf, (size_t)n, &epoch, &pl, &pl_len) == 0 &&
            (epoch == e->epoch || rs->epoch == 0) &&
            sl_lifecycle_attrs_decode(pl, pl_len, &x.attrs) == 0) {
            x.has_attrs = true;
            e->epoch = epoch;
        }
        else if (n > 0 || (n < 0 && n != -ENOENT))
            sl_error("session attributes unreadable", "session=%s", e->id);
    }
    if (x.has_attrs) {
        e->attrs = x.attrs;
        sl_session_attrs_durable(e);
    }
    if (x.snapshot_len && sl_session_life_load(e, x.snapshot, x.snapshot_len) != 0) {
        sl_warn("producer snapshot damaged; rebuilding from the log", "session=%s", e->id);
        x.snap_seq = 0;
    }
    replay_t rp = {.e = e, .after = x.snapshot_len ? x.snap_seq : 0,
                   .closed = x.closed, .closed_seq = x.closed_seq};
    if (!clean) {
        int rc = replay_log(srv, &rp, rs->index);
        if (rc != 0)
            sl_error("cannot replay lifecycle from the log", "session=%s error=\"%s\"", e->id,
                     sl_strerror(rc));
    }
    if (rp.closed) {
        atomic_store(&e->closed_seq, rp.closed_seq);
        atomic_store(&e->closed, true);
        atomic_store(&e->stats.last_seq, rp.closed_seq);
        if (rp.marker && atomic_load(&e->stats.events) > 0) /* counted from the log */
            atomic_fetch_sub(&e->stats.events, 1);
    }
}

static void on_recovered(const char *id, size_t id_len, const sl_manifest_entry_t *me,
                         sl_recovery_session_t *rs, void *ctx)
{
    sl_server_t *srv = ctx;
    uint64_t epoch = rs->epoch ? rs->epoch : atomic_fetch_add(&srv->epoch_next, 1);
    sl_entry_t *e = NULL;
    bool created;
    if (sl_registry_get_or_create(srv->registry, id, id_len, epoch, &e, &created) != 0 || !created) {
        sl_error("session not registered at startup", "session=%s reason=%s", id,
                 e ? "duplicate" : "max-sessions");
        sl_segment_index_destroy(rs->index);
        if (e)
            sl_entry_release(e);
        return;
    }
    sl_segment_index_t *ix = rs->index;
    sl_session_stats_t *st = &e->stats;
    /* A clean entry's figures are exact (they count ephemeral events too);
     * after a crash the log is the truth. */
    bool clean = me && rs->entry_used && (me->flags & SL_MANIFEST_ENTRY_CLEAN);
    uint64_t events = clean ? me->events : sl_segment_index_events(ix);
    uint64_t bytes = clean ? me->bytes : sl_segment_index_payload_bytes(ix);
    uint64_t first = clean ? me->first_seq : 0;
    if (!first && sl_segment_index_count(ix) > 0 && sl_segment_index_events(ix) > 0)
        first = sl_segment_index_at(ix, 0)->first_seq;
    atomic_store(&st->events, events);
    atomic_store(&st->bytes, bytes);
    atomic_store(&st->first_seq, first);
    atomic_store(&st->last_seq, rs->seq_hwm);
    atomic_store(&st->created_ns, rs->created_ns ? rs->created_ns : sl_clock_wall_ns());
    atomic_store(&st->last_activity_ns, rs->last_activity_ns);
    recover_lifecycle(srv, e, me, rs, clean);
    sl_session_recovered(e, ix);
    sl_entry_release(e);
}

int sl_persist_startup(sl_server_t *srv)
{
    const sl_config_t *cfg = &srv->cfg;
    uint64_t t0 = sl_clock_now_ns();
    srv->data_dir_fd = open(cfg->data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (srv->data_dir_fd < 0) {
        int err = -errno;
        sl_error("cannot open data dir", "data_dir=%s error=\"%s\"", cfg->data_dir, sl_strerror(err));
        return err;
    }
    int rc = sl_fdcache_create(cfg->max_open_files, &srv->fdcache);
    if (rc != 0)
        return rc;
    pthread_mutex_init(&srv->fdcache_lock, NULL);
    if (strcmp(cfg->fsync, "never") != 0 && strcmp(cfg->fsync_scope, "file") != 0 &&
        (rc = sl_syncer_create(&srv->syncer, srv->data_dir_fd)) != 0)
        return rc;
    int swept = sl_journal_sweep_removed(cfg->data_dir);
    sl_recovery_stats_t rs;
    rc = sl_recovery_data_dir(cfg->data_dir, cfg->segment_bytes, (uint32_t)cfg->max_event_bytes,
                              on_recovered, srv, &rs);
    if (rc != 0) {
        sl_error("recovery failed", "data_dir=%s error=\"%s\"", cfg->data_dir, sl_strerror(rc));
        return rc;
    }
    atomic_store(&srv->storage_damaged_segments, rs.segments_damaged);
    atomic_store(&srv->storage_quarantined_bytes, rs.quarantined_bytes);
    sl_info("recovered", "sessions=%u failed=%u manifest=%s segments_scanned=%u "
            "segments_truncated=%u segments_damaged=%u quarantined_bytes=%llu "
            "removed_folders=%d ms=%.1f",
            rs.sessions, rs.sessions_failed,
            rs.manifest_status == 0 ? "loaded" : rs.manifest_status == -ENOENT ? "none" : "corrupt",
            rs.segments_scanned, rs.segments_truncated, rs.segments_damaged,
            (unsigned long long)rs.quarantined_bytes, swept > 0 ? swept : 0,
            (double)(sl_clock_now_ns() - t0) / 1e6);
    sl_ds_recount_forks(srv); /* Durable Streams forks (conn_ds.c) */
    /* From now on the files change: no entry may stay marked clean. */
    return sl_persist_write_manifest(srv, false);
}

typedef struct mf_item {
    sl_entry_t *e;
    sl_segment_t *segs;
    uint32_t nsegs;
    uint8_t *ext;      /* lifecycle extension (owned) */
    size_t ext_len;
    bool failed; /* segment list unknown: never marked clean */
} mf_item_t;

/* The manifest extension of e: attributes, closure, producers as of its
 * last seq (no actor runs when the manifest is written: startup after
 * recovery, shutdown after every log closed). Out of memory the entry is
 * written failed (dirty, no segments: the next start scans and replays). */
static uint8_t *lifecycle_ext(sl_entry_t *e, size_t *len, bool *failed)
{
    sl_lifecycle_entry_t x = {0};
    const sl_session_attrs_t *a = &e->attrs;
    x.has_attrs = a->ttl_ns || a->expires_at_ns || a->content_type_len || a->parent_len;
    if (x.has_attrs)
        x.attrs = *a;
    x.closed = sl_sessops_closed(e, &x.closed_seq);
    uint8_t *snap = sl_session_life_snapshot(e, &x.snapshot_len);
    x.snapshot = snap;
    x.snap_seq = atomic_load(&e->stats.last_seq);
    bool oom;
    uint8_t *b = sl_lifecycle_entry_encode(&x, len, &oom);
    free(snap);
    if (oom)
        *failed = true;
    return b;
}

int sl_persist_write_manifest(sl_server_t *srv, bool clean)
{
    uint32_t count = sl_registry_count(srv->registry);
    mf_item_t *items = calloc(count ? count : 1, sizeof *items);
    if (!items)
        return -ENOMEM;
    bool more = true;
    uint32_t n = 0;
    size_t size = SL_MANIFEST_HEADER_BYTES;
    while (more && n < count) {
        sl_entry_t *page[256];
        uint32_t got = sl_registry_list(srv->registry, n ? items[n - 1].e->id : NULL,
                                        n ? items[n - 1].e->id_len : 0, 256, page, &more);
        for (uint32_t i = 0; i < got; i++) {
            if (n == count) {
                sl_entry_release(page[i]);
                continue;
            }
            mf_item_t *it = &items[n++];
            it->e = page[i];
            /* Failed (damage seen, or no memory): a dirty entry that lists
             * no segment, so the next start scans every file. */
            it->failed = sl_session_segments(it->e, &it->segs, &it->nsegs) != 0;
            it->ext = lifecycle_ext(it->e, &it->ext_len, &it->failed);
            size += sl_manifest_entry_size_ext(it->e->id_len, it->nsegs, (uint32_t)it->ext_len);
        }
        if (got == 0)
            break;
    }
    int rc = -ENOMEM;
    void *buf = malloc(size);
    if (buf) {
        sl_manifest_writer_t w;
        sl_manifest_writer_init(&w, buf, size);
        for (uint32_t i = 0; i < n; i++) {
            sl_entry_t *e = items[i].e;
            sl_session_stats_t *st = &e->stats;
            bool running = __atomic_load_n(&e->session, __ATOMIC_ACQUIRE) != NULL;
            sl_manifest_entry_t me = {
                .id = e->id, .id_len = e->id_len, .epoch = e->epoch,
                .first_seq = atomic_load(&st->first_seq), .last_seq = atomic_load(&st->last_seq),
                .events = atomic_load(&st->events), .bytes = atomic_load(&st->bytes),
                .created_ns = atomic_load(&st->created_ns),
                .last_activity_ns = atomic_load(&st->last_activity_ns),
                .flags = clean && !running && !items[i].failed ? SL_MANIFEST_ENTRY_CLEAN : 0,
                .segment_count = items[i].nsegs,
                .ext = items[i].ext,
                .ext_len = (uint32_t)items[i].ext_len,
            };
            sl_manifest_writer_add(&w, &me, items[i].segs);
        }
        size_t len = sl_manifest_writer_finish(&w);
        rc = sl_manifest_store(srv->cfg.data_dir, buf, len);
        if (rc != 0)
            sl_error("cannot write manifest", "data_dir=%s error=\"%s\"", srv->cfg.data_dir,
                     sl_strerror(rc));
        free(buf);
    }
    for (uint32_t i = 0; i < n; i++) {
        free(items[i].ext);
        free(items[i].segs);
        sl_entry_release(items[i].e);
    }
    free(items);
    return rc;
}

void sl_persist_shutdown(sl_server_t *srv)
{
    /* Reactors and sessions have stopped: what still waits gets one last
     * syncfs, and nothing asks again. */
    sl_syncer_destroy(srv->syncer);
    srv->syncer = NULL;
    if (srv->data_dir_fd >= 0) {
        sl_persist_write_manifest(srv, true);
        close(srv->data_dir_fd);
        srv->data_dir_fd = -1;
    }
    if (srv->fdcache) {
        /* Journals released their fds when they closed; anything left (a
         * session that did not stop in time) is closed here. */
        int fd;
        while ((fd = sl_fdcache_pop_lru(srv->fdcache)) >= 0)
            close(fd);
        sl_fdcache_destroy(srv->fdcache);
        srv->fdcache = NULL;
        pthread_mutex_destroy(&srv->fdcache_lock);
    }
}
