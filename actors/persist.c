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

#include "actors/registry.h"
#include "actors/session.h"
#include "runtime/clock.h"
#include "runtime/log.h"
#include "storage/journal.h"
#include "storage/manifest.h"
#include "storage/recovery.h"
#include "storage/syncer.h"

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
    /* From now on the files change: no entry may stay marked clean. */
    return sl_persist_write_manifest(srv, false);
}

typedef struct mf_item {
    sl_entry_t *e;
    sl_segment_t *segs;
    uint32_t nsegs;
    bool failed; /* segment list unknown: never marked clean */
} mf_item_t;

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
            size += sl_manifest_entry_size(it->e->id_len, it->nsegs);
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
