/*
 * The offline checker. See check.h.
 */
#include "storage/check.h"

#include <inttypes.h>
#include <string.h>

#include "runtime/base.h"
#include "runtime/limits.h"
#include "runtime/log.h"
#include "storage/recovery.h"

typedef struct check_ctx {
    FILE *out;
    uint32_t damaged;
} check_ctx_t;

static void on_segment(const char *id, size_t id_len, const sl_repair_plan_t *p, void *ctx)
{
    check_ctx_t *c = ctx;
    char name[SL_SEGMENT_NAME_LEN + 1], q[2 * SL_SESSION_ID_MAX + 8];
    sl_segment_name(name, sizeof name, p->segment);
    sl_log_quote(q, sizeof q, id, (unsigned)id_len);
    sl_repair_action_t a = sl_repair_action(p);
    fprintf(c->out,
            "segment session=%s file=%s records=%" PRIu64 " first_seq=%" PRIu64 " last_seq=%" PRIu64
            " bytes=%" PRIu64 " damaged_bytes=%" PRIu64 " action=%s\n",
            q, name, p->events, p->first_seq, p->last_seq, p->file_bytes,
            a == SL_REPAIR_QUARANTINE ? p->file_bytes : p->damaged_bytes, sl_repair_action_name(a));
    for (uint32_t i = 0; i < p->damage_count; i++) {
        const sl_repair_range_t *r = &p->damage[i];
        bool torn = p->torn && r->offset + r->bytes == p->file_bytes;
        fprintf(c->out,
                "damage session=%s file=%s offset=%" PRIu64 " bytes=%" PRIu64 " reason=%s\n", q,
                name, r->offset, r->bytes, torn ? "torn" : "corrupt");
    }
}

static void on_session(const char *id, size_t id_len, const sl_manifest_entry_t *entry,
                       sl_recovery_session_t *rs, void *ctx)
{
    (void)entry;
    check_ctx_t *c = ctx;
    char q[2 * SL_SESSION_ID_MAX + 8];
    sl_log_quote(q, sizeof q, id, (unsigned)id_len);
    fprintf(c->out,
            "session session=%s segments=%u records=%" PRIu64 " seq_hwm=%" PRIu64
            " damaged_segments=%u\n",
            q, sl_segment_index_count(rs->index), sl_segment_index_events(rs->index), rs->seq_hwm,
            rs->segments_damaged);
    sl_segment_index_destroy(rs->index);
}

int sl_check_data_dir(const char *data_dir, bool repair, FILE *out)
{
    check_ctx_t c = {.out = out};
    sl_recovery_opts_t opts = {
        .dry_run = !repair, .ignore_clean = true, .segment_cb = on_segment, .ctx = &c};
    sl_recovery_stats_t st;
    /* The widest bounds: the checker must read whatever any configuration
     * wrote. */
    int rc = sl_recovery_data_dir_opts(data_dir, SL_SEGMENT_BYTES_MAX, SL_EVENT_BYTES_MAX, &opts,
                                       on_session, &c, &st);
    if (rc != 0)
        return rc;
    fprintf(out,
            "summary sessions=%u failed=%u segments_damaged=%u damaged_bytes=%" PRIu64
            " quarantined_bytes=%" PRIu64 " repair=%s\n",
            st.sessions, st.sessions_failed, st.segments_damaged, st.damaged_bytes,
            st.quarantined_bytes, repair ? "yes" : "no");
    if (st.sessions_failed > 0)
        return 1;
    bool found = st.damaged_bytes > 0 || st.segments_damaged > 0;
    return found && !repair ? 1 : 0;
}

static int usage(void)
{
    fprintf(stderr, "usage: sluiced --check DATA_DIR [--repair]\n"
                    "  lists every session's segments and damage; --repair moves damaged\n"
                    "  bytes to quarantine files (never deletes). Exit: 0 clean, 1 damage\n"
                    "  found (without --repair), 2 usage.\n");
    return 2;
}

int sl_check_main(int argc, char **argv)
{
    const char *dir = NULL;
    bool repair = false;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--repair") == 0 && !repair)
            repair = true;
        else if (argv[i][0] != '-' && !dir)
            dir = argv[i];
        else
            return usage();
    }
    if (!dir)
        return usage();
    /* Recovery's own lines (what is cut, and why) go to stderr. */
    sl_log_set_level(SL_LOG_WARN);
    int rc = sl_check_data_dir(dir, repair, stdout);
    if (rc < 0) {
        fprintf(stderr, "sluiced: --check %s: %s\n", dir, sl_strerror(rc));
        return 2;
    }
    return rc;
}
