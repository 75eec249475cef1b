/*
 * The journal state machine. See journal.h.
 *
 * Inside, work runs in independent pipelines, each owning one op record,
 * so each has at most one op in flight and the owner's next_op loop ends:
 * - ctl:   folder life (mkdir, data-dir fsync, release of cached fds,
 *          rename, rmdir);
 * - write: open/close/WRITE(V) of the oldest filled buffers;
 * - sync:  the fsync rounds;
 * - unl[]: unlinks while removing;
 * - ret, retc: retention: unlink the oldest segment and close its fd, one
 *          segment at a time.
 * A pipeline that needs a segment fd goes through pipe_fd(): close an fd
 * the cache handed back, else look the key up (pinning it), else open it.
 */
#include "storage/journal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/io_uring.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "runtime/budget.h"
#include "runtime/clock.h"
#include "runtime/log.h"
#include "storage/attrs.h"
#include "storage/seqmark.h"
#include "storage/session_id.h"
#include "storage/storage_int.h"

/* Paths relative to the data dir: ".rm-<16 hex>-<id>/<segment name>". */
#define RM_NAME_BYTES (sizeof SL_JOURNAL_REMOVED_PREFIX - 1 + 16 + 1 + SL_SESSION_ID_MAX + 1)
#define PATH_BYTES 192
/* Files beside the segments that a removal unlinks: seqs.reserved, attrs. */
#define RM_EXTRA_FILES 2u
_Static_assert(RM_NAME_BYTES + 1 + SL_SEGMENT_NAME_LEN <= PATH_BYTES,
               "journal paths fit their buffers");

/* fd cache key of the session folder: no segment is named 0. */
#define FOLDER_KEY 0u
#define FILE_MODE 0644
#define DIR_MODE 0755
#define RETRY_NS ((uint64_t)SL_JOURNAL_RETRY_MS * SL_NS_PER_MS)
#define DSYNC_BACKOFF_NS ((uint64_t)SL_JOURNAL_DSYNC_BACKOFF_MS * SL_NS_PER_MS)

/* Record layout offsets (record.h) used to commit written records without
 * decoding them again: the journal encoded them itself. */
#define REC_OFF_SEQ 12u
#define REC_OFF_TS 20u
#define REC_OFF_TYPE_LEN 28u
#define REC_LEN_BASE (SL_RECORD_OVERHEAD - 4u)

enum { SLOT_FREE = 0, SLOT_FILLING, SLOT_WRITING };
enum { STEP_NONE = 0, STEP_OPEN, STEP_CLOSE, STEP_IO };

typedef enum phase {
    PH_MKDIR,       /* create: the folder is to be made */
    PH_MKDIR_SYNC,  /* create: the data dir is to be fsynced */
    PH_READY,       /* appends, writes, syncs, reads */
    PH_RELEASE,     /* closing/removing: cached fds are dropped */
    PH_RENAME,      /* removing: the folder is renamed out of the way */
    PH_RENAME_SYNC, /* removing: the data dir is fsynced */
    PH_UNLINK,      /* removing: segment files are unlinked */
    PH_RMDIR,       /* removing: the folder is unlinked */
    PH_DONE,
} phase_t;

typedef enum jmode { MODE_RUN, MODE_CLOSE, MODE_REMOVE } jmode_t;

/* One write buffer. Slots form a ring in append order: head is the oldest
 * one in use; appends go to the newest. */
typedef struct slot {
    uint8_t *buf; /* slot_cap bytes while in use; freed when the write is done */
    uint8_t *big; /* a record bigger than buf: exact-size allocation */
    uint8_t *mem; /* buf or big */
    uint32_t cap;
    uint32_t len;     /* bytes filled */
    uint32_t rec_off; /* first record (after a segment header) */
    uint8_t state;
    bool create;       /* the write creates the segment file */
    uint64_t segment;  /* first_seq of the file */
    uint64_t file_off; /* file offset of mem[0] */
} slot_t;

/* One op record and what it is doing. */
typedef struct pipe {
    sl_op_t op;
    char path[PATH_BYTES];
    uint8_t step;
    bool busy;         /* op handed out, completion not yet seen */
    bool creating;     /* the open in flight creates its file */
    int fd;            /* pinned fd of key, or -1 */
    int close_fd;      /* fd to close before anything else, or -1 */
    uint64_t key;      /* segment of fd (or of the open in flight) */
    uint64_t retry_at; /* no open before this (monotonic ns), 0: none */
} pipe_t;

struct sl_journal {
    sl_journal_config_t cfg;
    uint32_t slot_cap; /* next write buffer's size: grows with bursts */
    char id[SL_SESSION_ID_MAX + 1];
    uint32_t id_len;
    uint64_t epoch;
    sl_segment_index_t *ix;
    phase_t phase;
    jmode_t mode;
    int status;
    int remove_status;
    bool submitted; /* some op was ever handed out */
    uint32_t mkdir_tries; /* EEXIST retries of the folder's mkdir */

    uint64_t appended_seq;
    uint64_t written_seq;
    uint64_t synced_seq;
    uint64_t want_seq;
    uint64_t tail_end; /* end of the bytes placed in the last segment */

    slot_t slots[SL_JOURNAL_BUFFERS];
    uint32_t head, used;
    struct {
        bool active;
        uint32_t count; /* slots from head */
        uint64_t total, done;
        bool dsync; /* written with RWF_DSYNC: synced when it completes */
    } wr;
    uint64_t dsync_contended_ns; /* appends waited on an RWF_DSYNC write */
    sl_syncer_wait_t fsw;        /* the syncfs an fs round waits on */
    struct iovec iov[SL_JOURNAL_BUFFERS];

    struct {
        bool active;
        bool fs;         /* served by a syncfs (fsw), not by fd */
        bool dir;        /* the folder is still to be fsynced */
        uint32_t i, hi;  /* index positions still to be fsynced */
        uint64_t target; /* written_seq when the round started */
    } round;
    uint32_t sync_lo;     /* oldest segment position with unsynced data */
    bool dir_dirty;       /* a segment file was created since the last round */
    uint64_t dirty_since; /* first write not covered by a round, 0: none */
    uint64_t dirty_next;  /* same, for writes completed during a round */

    pipe_t ctl, w, s;
    /* Extra syncs beside the round (SL_JOURNAL_SYNCS_EXTRA): each fsyncs
     * the newest segment and then makes xs_target[i] durable. */
    pipe_t xs[SL_JOURNAL_SYNCS_EXTRA];
    uint64_t xs_target[SL_JOURNAL_SYNCS_EXTRA];
    pipe_t unl[SL_JOURNAL_UNLINKS_INFLIGHT];
    uint32_t rel_i;    /* release: next key position */
    uint32_t unl_next; /* remove: next key position to unlink */
    /* Segments created for records a failure dropped from the index: their
     * files exist and may be cached, so release and remove visit them. */
    uint64_t orphans[SL_JOURNAL_BUFFERS];
    uint32_t norphans;
    char rm_name[RM_NAME_BYTES];

    /* Retention (sl_journal_set_retention). */
    uint64_t ret_bytes_max;    /* 0: off */
    uint64_t ret_age_ns;       /* 0: off */
    uint64_t ret_unlink;       /* dropped segment whose file is still to be
                                  unlinked, 0: none */
    uint64_t ret_unlink_bytes; /* its bytes (still on disk) */
    uint64_t ret_wait;         /* segment whose drop waits for its fd's pins;
                                  readers start no new read of it, 0: none */
    pipe_t ret;                /* unlinks */
    pipe_t retc;               /* closes the removed segment's cached fd */

    uint32_t readers;
    sl_journal_stats_t st;
};

struct sl_journal_reader {
    sl_journal_t *j;
    pipe_t p;
    sl_segment_cursor_t cur;
    sl_segment_read_t rd; /* the planned read */
    uint8_t *buf;
    uint32_t cap;
    uint32_t n, pos; /* bytes read, bytes handed out or skipped */
    bool planned, have, stopping;
    int status;
    uint64_t short_seg, short_off; /* where the last short read started */
    sl_record_view_t rec;          /* scratch for the consume callback */
};

/* ---- fd cache and op helpers ---------------------------------------- */

static void cache_lock(const sl_journal_t *j)
{
    if (j->cfg.fdcache_lock)
        pthread_mutex_lock(j->cfg.fdcache_lock);
}

static void cache_unlock(const sl_journal_t *j)
{
    if (j->cfg.fdcache_lock)
        pthread_mutex_unlock(j->cfg.fdcache_lock);
}

static void pipe_init(pipe_t *p)
{
    memset(p, 0, sizeof *p);
    p->fd = -1;
    p->close_fd = -1;
}

/* Resets p's op for a new request, keeping what the owner set (owner,
 * user), and marks it handed out. */
static sl_op_t *op_prep(pipe_t *p, sl_op_kind_t kind, int fd, uint8_t step)
{
    sl_op_t *op = &p->op;
    sl_actor_t *owner = op->owner;
    uint64_t user = op->user;
    memset(op, 0, sizeof *op);
    op->owner = owner;
    op->user = user;
    op->kind = (uint8_t)kind;
    op->fd = fd;
    p->step = step;
    p->busy = true;
    return op;
}

static sl_op_t *pipe_close(pipe_t *p)
{
    int fd = p->close_fd;
    p->close_fd = -1;
    return op_prep(p, SL_OP_CLOSE, fd, STEP_CLOSE);
}

static int key_path(const sl_journal_t *j, uint64_t key, char *out)
{
    int n = sl_segment_path(out, PATH_BYTES, NULL, j->id, j->id_len, key);
    sl_assert(n > 0); /* the id was validated at create; the size is static */
    return n;
}

typedef enum { FD_READY, FD_OP, FD_WAIT } fd_step_t;

/* Gets p a pinned fd for key. FD_READY: p->fd is it. FD_OP: *op (an open,
 * or a close that must come first) is to be submitted. FD_WAIT: retry at
 * p->retry_at. */
static fd_step_t pipe_fd(sl_journal_t *j, pipe_t *p, uint64_t key, bool create, uint64_t now,
                         sl_op_t **op)
{
    if (p->close_fd >= 0) {
        *op = pipe_close(p);
        return FD_OP;
    }
    if (p->fd >= 0) {
        sl_assert(p->key == key);
        return FD_READY;
    }
    if (p->retry_at > now)
        return FD_WAIT;
    p->retry_at = 0;
    p->key = key;
    cache_lock(j);
    int fd = sl_fdcache_lookup(j->cfg.fdcache, j->epoch, key, true);
    int evicted = -1, rc = fd >= 0 ? 0 : sl_fdcache_reserve(j->cfg.fdcache, &evicted);
    cache_unlock(j);
    if (fd >= 0) {
        p->fd = fd;
        j->st.fds_pinned++;
        return FD_READY;
    }
    if (rc == SL_EAGAIN) { /* at the bound: close the least recently used first */
        p->close_fd = evicted;
        *op = pipe_close(p);
        return FD_OP;
    }
    if (rc == SL_EFULL) { /* every fd is busy: wait, never exceed the bound */
        p->retry_at = now + RETRY_NS;
        j->st.fd_waits++;
        return FD_WAIT;
    }
    key_path(j, key, p->path);
    *op = op_prep(p, SL_OP_OPENAT, j->cfg.data_dir_fd, STEP_OPEN);
    (*op)->path = p->path;
    if (key == FOLDER_KEY)
        (*op)->flags = O_RDONLY | O_DIRECTORY;
    else
        (*op)->flags = O_RDWR | (create ? O_CREAT | O_EXCL : 0);
    (*op)->mode = FILE_MODE;
    p->creating = create && key != FOLDER_KEY;
    return FD_OP;
}

static bool open_error_is_wait(int32_t res)
{
    return res == -EMFILE || res == -ENFILE || res == -ENOMEM;
}

/* An open of p->key completed with res. Returns 0 (p->fd pinned, or a
 * retry scheduled) or the error that fails p's user. */
static int pipe_opened(sl_journal_t *j, pipe_t *p, int32_t res)
{
    if (res < 0) {
        cache_lock(j);
        sl_fdcache_release(j->cfg.fdcache); /* the reservation */
        cache_unlock(j);
        if (!open_error_is_wait(res))
            return res;
        p->retry_at = sl_clock_now_ns() + RETRY_NS;
        j->st.fd_waits++;
        return 0;
    }
    j->st.opens++;
    int close_fd = -1;
    cache_lock(j);
    int fd = sl_fdcache_insert_reserved(j->cfg.fdcache, j->epoch, p->key, res, true, &close_fd);
    cache_unlock(j);
    if (fd == SL_EFULL) {
        /* Every cached fd is pinned: never exceed the bound, wait. */
        p->close_fd = res;
        p->retry_at = sl_clock_now_ns() + RETRY_NS;
        j->st.fd_waits++;
        return 0;
    }
    p->fd = fd;
    p->close_fd = close_fd;
    j->st.fds_pinned++;
    return 0;
}

static void pipe_unpin(sl_journal_t *j, pipe_t *p)
{
    if (p->fd < 0)
        return;
    cache_lock(j);
    sl_fdcache_unpin(j->cfg.fdcache, j->epoch, p->key);
    cache_unlock(j);
    p->fd = -1;
    j->st.fds_pinned--;
}

/* ---- lifetime --------------------------------------------------------- */

static void check_config(const sl_journal_config_t *c)
{
    sl_assert(c->data_dir_fd >= 0);
    sl_assert(c->fdcache != NULL);
    sl_assert(c->segment_bytes_max >= SL_SEGMENT_BYTES_MIN);
    sl_assert(c->segment_bytes_max <= SL_SEGMENT_BYTES_MAX);
    sl_assert(c->data_max <= SL_EVENT_BYTES_MAX);
    sl_assert(c->buffer_bytes >= SL_JOURNAL_BUFFER_BYTES_MIN);
    sl_assert(c->buffer_bytes <= SL_JOURNAL_BUFFER_BYTES_MAX);
    sl_assert(c->fsync == SL_JOURNAL_FSYNC_NEVER || c->fsync == SL_JOURNAL_FSYNC_BATCH ||
              c->fsync == SL_JOURNAL_FSYNC_ALWAYS);
    sl_assert(c->fsync_overlap <= SL_JOURNAL_SYNCS_EXTRA);
}

static int journal_new(const sl_journal_config_t *cfg, const char *id, size_t id_len,
                       uint64_t epoch, sl_journal_t **out)
{
    check_config(cfg);
    sl_assert(epoch != 0);
    if (!sl_session_id_valid(id, id_len))
        return SL_EINVAL;
    sl_journal_t *j = calloc(1, sizeof *j);
    if (!j)
        return -ENOMEM;
    j->cfg = *cfg;
    if (j->cfg.read_bytes == 0)
        j->cfg.read_bytes = SL_JOURNAL_READ_BYTES_DEFAULT;
    memcpy(j->id, id, id_len);
    j->id_len = (uint32_t)id_len;
    j->epoch = epoch;
    j->slot_cap = cfg->buffer_bytes < SL_JOURNAL_SLOT_BYTES_START ? cfg->buffer_bytes
                                                                  : SL_JOURNAL_SLOT_BYTES_START;
    pipe_init(&j->ctl);
    pipe_init(&j->w);
    pipe_init(&j->s);
    for (uint32_t i = 0; i < SL_JOURNAL_SYNCS_EXTRA; i++)
        pipe_init(&j->xs[i]);
    pipe_init(&j->ret);
    pipe_init(&j->retc);
    for (uint32_t i = 0; i < SL_JOURNAL_UNLINKS_INFLIGHT; i++)
        pipe_init(&j->unl[i]);
    *out = j;
    return 0;
}

int sl_journal_create(const sl_journal_config_t *cfg, const char *id, size_t id_len, uint64_t epoch,
                      sl_journal_t **out)
{
    sl_journal_t *j;
    int rc = journal_new(cfg, id, id_len, epoch, &j);
    if (rc != 0)
        return rc;
    rc = sl_segment_index_create(cfg->segment_bytes_max, cfg->data_max, &j->ix);
    if (rc != 0) {
        free(j);
        return rc;
    }
    j->phase = PH_MKDIR;
    *out = j;
    return 0;
}

int sl_journal_open_recovered(const sl_journal_config_t *cfg, const char *id, size_t id_len,
                              uint64_t epoch, sl_segment_index_t *index, sl_journal_t **out)
{
    sl_assert(index != NULL);
    sl_journal_t *j;
    int rc = journal_new(cfg, id, id_len, epoch, &j);
    if (rc != 0)
        return rc;
    j->ix = index;
    j->phase = PH_READY;
    uint32_t n = sl_segment_index_count(index);
    uint64_t last = sl_segment_index_last_seq(index);
    j->appended_seq = j->written_seq = j->synced_seq = last;
    if (n > 0) {
        const sl_segment_t *tail = sl_segment_index_at(index, n - 1);
        j->tail_end = tail->bytes;
        j->sync_lo = n - 1;
    }
    *out = j;
    return 0;
}

/* A write buffer lives only while it holds records: an idle session costs
 * no buffer memory, which matters with thousands of live sessions. */
static void slot_release(slot_t *s)
{
    if (s->mem)
        sl_budget_sub(SL_BUDGET_JOURNAL, s->cap);
    free(s->big);
    s->big = NULL;
    free(s->buf);
    s->buf = NULL;
    s->mem = NULL;
    s->state = SLOT_FREE;
    s->len = 0;
}

void sl_journal_destroy(sl_journal_t *j)
{
    if (!j)
        return;
    sl_assert(sl_journal_inflight(j) == 0);
    sl_assert(j->readers == 0);
    sl_assert(j->phase == PH_DONE || !j->submitted);
    for (uint32_t i = 0; i < SL_JOURNAL_BUFFERS; i++) {
        slot_release(&j->slots[i]);
        free(j->slots[i].buf);
    }
    sl_segment_index_destroy(j->ix);
    free(j);
}

/* ---- failure ------------------------------------------------------------ */

static slot_t *slot_at(sl_journal_t *j, uint32_t k)
{
    return &j->slots[(j->head + k) % SL_JOURNAL_BUFFERS];
}

/* Drops the write in progress (if its op is not in flight) and every
 * buffered record. */
static void write_abort(sl_journal_t *j)
{
    if (j->w.busy)
        return;
    pipe_unpin(j, &j->w);
    j->w.retry_at = 0;
    j->wr.active = false;
    while (j->used > 0) {
        slot_release(slot_at(j, 0));
        j->head = (j->head + 1) % SL_JOURNAL_BUFFERS;
        j->used--;
    }
}

static bool fs_queued(const sl_journal_t *j)
{
    return atomic_load_explicit(&j->fsw.state, memory_order_acquire) == SL_SYNCER_QUEUED;
}

/* Every end of a round (finished or abandoned) goes through here. */
static void round_end(sl_journal_t *j)
{
    if (j->round.active && j->cfg.rounds_active)
        atomic_fetch_sub_explicit(j->cfg.rounds_active, 1, memory_order_relaxed);
    j->round.active = false;
    j->round.fs = false;
}

static void sync_abort(sl_journal_t *j)
{
    if (j->s.busy || fs_queued(j))
        return; /* a syncfs still holds fsw: its completion ends the round */
    pipe_unpin(j, &j->s);
    j->s.retry_at = 0;
    round_end(j);
}

static void journal_fail(sl_journal_t *j, int err)
{
    if (j->status != 0)
        return;
    j->status = err;
    /* The index forgets the segments created for unwritten records; keep
     * their names so their fds are released and their files removed. */
    uint32_t n = sl_segment_index_count(j->ix);
    while (n > 0 && sl_segment_index_at(j->ix, n - 1)->events == 0) {
        sl_assert(j->norphans < SL_ARRAY_LEN(j->orphans));
        j->orphans[j->norphans++] = sl_segment_index_at(j->ix, n - 1)->first_seq;
        n--;
    }
    sl_segment_index_fail(j->ix);
    sl_error("journal failed", "session=%.*s written_seq=%llu err=\"%s\"", (int)j->id_len, j->id,
             (unsigned long long)j->written_seq, sl_strerror(err));
    write_abort(j);
    sync_abort(j);
}

/* ---- appends ------------------------------------------------------------ */

/* Mirrors sl_segment_index_place's rule (segment.h): a new segment starts
 * when there is none, or when the record would take a segment that holds
 * records past the bound. Known before placing, because a placement cannot
 * be undone and the record needs a buffer first. */
static bool predict_roll(const sl_journal_t *j, uint32_t size)
{
    if (sl_segment_index_count(j->ix) == 0)
        return true;
    return j->tail_end > SL_SEGMENT_HEADER_BYTES && j->tail_end + size > j->cfg.segment_bytes_max;
}

/* The slot the next record of size bytes goes to: the newest one when it
 * is still filling, holds the same file and has room; else a fresh slot
 * (*fresh), with memory for need bytes. */
static int slot_for(sl_journal_t *j, uint32_t size, bool roll, slot_t **out, bool *fresh)
{
    if (!roll && j->used > 0) {
        slot_t *t = slot_at(j, j->used - 1);
        if (t->state == SLOT_FILLING && t->cap - t->len >= size) {
            *out = t;
            *fresh = false;
            return 0;
        }
        /* A full buffer: this session writes in bursts, so the next
         * buffers are larger (up to buffer_bytes). */
        if (t->state == SLOT_FILLING && j->slot_cap < j->cfg.buffer_bytes)
            j->slot_cap =
                j->slot_cap * 2 < j->cfg.buffer_bytes ? j->slot_cap * 2 : j->cfg.buffer_bytes;
    }
    if (j->used == SL_JOURNAL_BUFFERS)
        return SL_EFULL;
    uint32_t need = size + (roll ? SL_SEGMENT_HEADER_BYTES : 0);
    slot_t *s = slot_at(j, j->used);
    sl_assert(s->state == SLOT_FREE);
    if (need > j->cfg.buffer_bytes) {
        s->big = malloc(need);
        if (!s->big)
            return -ENOMEM;
        s->mem = s->big;
        s->cap = need;
        sl_budget_add(SL_BUDGET_JOURNAL, need);
    } else {
        uint32_t cap = need > j->slot_cap ? need : j->slot_cap;
        sl_assert(!s->buf);
        if (!(s->buf = malloc(cap)))
            return -ENOMEM;
        s->mem = s->buf;
        s->cap = cap;
        sl_budget_add(SL_BUDGET_JOURNAL, cap);
    }
    *out = s;
    *fresh = true;
    return 0;
}

/* Starts a fresh slot at the placed record; a new segment begins with its
 * header at file offset 0. */
static void slot_start(sl_journal_t *j, slot_t *s, const sl_segment_place_t *pl)
{
    s->state = SLOT_FILLING;
    s->segment = pl->segment;
    s->create = pl->created;
    s->len = 0;
    s->file_off = pl->offset;
    if (pl->created) {
        sl_segment_header_t h = {
            .epoch = j->epoch, .first_seq = pl->segment, .created_ns = sl_clock_wall_ns()};
        sl_segment_header_encode(s->mem, &h);
        s->len = SL_SEGMENT_HEADER_BYTES;
        s->file_off = 0;
    }
    s->rec_off = s->len;
    j->used++;
}

/* Policy at the bytes bound: when removals lag behind the appends (the
 * oldest segment waits for its write, its fsync or a reader's pin), an
 * append waits rather than let the files -- including a removed segment
 * not unlinked yet -- pass bytes_max by more than one segment. Only while
 * a removal is under way or due, so that one always comes to make room;
 * never when one segment is left (nothing to remove). */
static bool retention_full(const sl_journal_t *j, uint32_t size)
{
    if (j->ret_bytes_max == 0 || sl_segment_index_count(j->ix) < 2)
        return false;
    uint64_t placed = sl_segment_index_placed_bytes(j->ix);
    if (placed <= j->ret_bytes_max && j->ret_unlink == 0)
        return false;
    uint64_t will = placed + j->ret_unlink_bytes + SL_SEGMENT_HEADER_BYTES + size;
    return will > j->ret_bytes_max + j->cfg.segment_bytes_max;
}

int sl_journal_append(sl_journal_t *j, uint64_t seq, uint64_t ts_ns, const void *type,
                      uint32_t type_len, const void *data, uint32_t data_len)
{
    return sl_journal_append_flags(j, seq, ts_ns, type, type_len, 0, data, data_len);
}

int sl_journal_append_flags(sl_journal_t *j, uint64_t seq, uint64_t ts_ns, const void *type,
                            uint32_t type_len, uint8_t flags, const void *data,
                            uint32_t data_len)
{
    return sl_journal_append_ext(j, seq, ts_ns, type, type_len, flags, data, data_len, NULL, 0);
}

int sl_journal_append_ext(sl_journal_t *j, uint64_t seq, uint64_t ts_ns, const void *type,
                          uint32_t type_len, uint8_t flags, const void *data, uint32_t data_len,
                          const void *ext, uint32_t ext_len)
{
    if (ext_len > SL_RECORD_EXT_MAX)
        return SL_EINVAL;
    if (j->status != 0)
        return -EIO;
    if (j->mode != MODE_RUN)
        return SL_ECLOSED;
    if (type_len == 0 || type_len > SL_EVENT_TYPE_MAX)
        return SL_EINVAL;
    if (data_len > j->cfg.data_max)
        return SL_ETOOBIG;
    sl_assert(seq > j->appended_seq);
    uint32_t size = sl_record_size_ext(type_len, data_len, ext_len);
    if (retention_full(j, size)) {
        j->st.appends_refused++;
        j->st.retention_refusals++;
        return SL_EFULL;
    }
    bool roll = predict_roll(j, size);
    slot_t *s;
    bool fresh;
    int rc = slot_for(j, size, roll, &s, &fresh);
    if (rc != 0) {
        if (rc == SL_EFULL)
            j->st.appends_refused++;
        return rc;
    }
    sl_segment_place_t pl;
    rc = sl_segment_index_place(j->ix, seq, size, &pl);
    if (rc != 0) {
        if (fresh)
            slot_release(s);
        return rc == SL_ECLOSED ? -EIO : rc;
    }
    sl_assert(pl.created == roll);
    if (fresh)
        slot_start(j, s, &pl);
    sl_assert(s->file_off + s->len == pl.offset);
    sl_record_view_t rec = {.seq = seq,
                            .ts_ns = ts_ns,
                            .type = type,
                            .type_len = type_len,
                            .flags = flags,
                            .data = data,
                            .data_len = data_len,
                            .ext = ext,
                            .ext_len = ext_len};
    int n = sl_record_encode(s->mem + s->len, s->cap - s->len, &rec);
    sl_assert(n == (int)size);
    s->len += size;
    j->appended_seq = seq;
    j->tail_end = pl.offset + size;
    return 0;
}

void sl_journal_want_sync(sl_journal_t *j, uint64_t seq)
{
    if (seq > j->want_seq)
        j->want_seq = seq;
}

/* ---- the write pipeline -------------------------------------------------- */

static bool xs_busy(const sl_journal_t *j)
{
    for (uint32_t i = 0; i < SL_JOURNAL_SYNCS_EXTRA; i++)
        if (j->xs[i].busy)
            return true;
    return false;
}

/* A durable publish waits on the batch being selected and nothing else
 * is unsynced (no earlier write, no new file whose folder entry needs its
 * own fsync, no round running): the write carries RWF_DSYNC and is synced
 * when it completes -- one io_uring op instead of a write then an fsync,
 * which halves the round trips a durable answer waits for. */
static bool write_can_dsync(sl_journal_t *j)
{
    /* Publishes that arrived during the last RWF_DSYNC write waited for
     * it to end before their own write could start: while they keep
     * coming, plain writes (done at once) and overlapping syncs serve
     * them better (see xsync_next). */
    if (j->dsync_contended_ns && sl_clock_now_ns() - j->dsync_contended_ns < DSYNC_BACKOFF_NS)
        return false;
    if (j->cfg.fsync == SL_JOURNAL_FSYNC_NEVER || j->phase != PH_READY || j->round.active ||
        j->s.busy || j->dir_dirty || j->synced_seq != j->written_seq || xs_busy(j))
        return false;
    for (uint32_t k = 0; k < j->wr.count; k++)
        if (slot_at(j, k)->create)
            return false;
    return j->cfg.fsync == SL_JOURNAL_FSYNC_ALWAYS || j->want_seq > j->synced_seq;
}

/* Takes the oldest filled slot, and the next ones that continue it in the
 * same file, for one write. */
static bool write_select(sl_journal_t *j)
{
    if (j->used == 0)
        return false;
    slot_t *s = slot_at(j, 0);
    sl_assert(s->state == SLOT_FILLING);
    sl_assert(s->len > s->rec_off);
    s->state = SLOT_WRITING;
    j->wr.count = 1;
    j->wr.total = s->len;
    j->wr.done = 0;
    for (uint32_t k = 1; k < j->used; k++) {
        slot_t *prev = slot_at(j, k - 1);
        slot_t *n = slot_at(j, k);
        if (n->segment != s->segment || n->create || n->file_off != prev->file_off + prev->len)
            break;
        n->state = SLOT_WRITING;
        j->wr.count++;
        j->wr.total += n->len;
    }
    j->wr.active = true;
    j->wr.dsync = write_can_dsync(j);
    return true;
}

/* The rest of the selected slots, from wr.done on: WRITE for one piece,
 * WRITEV for several (no copy). */
static sl_op_t *write_prep(sl_journal_t *j)
{
    uint64_t skip = j->wr.done;
    uint32_t n = 0;
    for (uint32_t k = 0; k < j->wr.count; k++) {
        slot_t *s = slot_at(j, k);
        if (skip >= s->len) {
            skip -= s->len;
            continue;
        }
        j->iov[n].iov_base = s->mem + skip;
        j->iov[n].iov_len = s->len - skip;
        n++;
        skip = 0;
    }
    sl_assert(n > 0);
    uint64_t off = slot_at(j, 0)->file_off + j->wr.done;
    sl_op_t *op;
    if (n == 1) {
        op = op_prep(&j->w, SL_OP_WRITE, j->w.fd, STEP_IO);
        op->buf = j->iov[0].iov_base;
        op->len = (uint32_t)j->iov[0].iov_len;
    } else {
        op = op_prep(&j->w, SL_OP_WRITEV, j->w.fd, STEP_IO);
        op->iov = j->iov;
        op->iovcnt = n;
    }
    op->offset = off;
    op->flags = j->wr.dsync ? RWF_DSYNC : 0;
    return op;
}

/* Writes may start while the data dir's fsync after the mkdir is still
 * running: a write only has to survive a process crash (page cache), and
 * no sync round -- the only thing that advances synced_seq -- starts
 * before that fsync completed (sync_due). So a fresh session's first
 * publish does not wait for a directory fsync. */
static bool writes_allowed(const sl_journal_t *j)
{
    return (j->phase == PH_READY || j->phase == PH_MKDIR_SYNC) && j->status == 0 &&
           j->mode != MODE_REMOVE;
}

static sl_op_t *write_next(sl_journal_t *j, uint64_t now)
{
    pipe_t *p = &j->w;
    if (p->busy)
        return NULL;
    if (!j->wr.active && (!writes_allowed(j) || !write_select(j)))
        return p->close_fd >= 0 ? pipe_close(p) : NULL;
    slot_t *first = slot_at(j, 0);
    sl_op_t *op = NULL;
    switch (pipe_fd(j, p, first->segment, first->create, now, &op)) {
    case FD_OP:
        return op;
    case FD_WAIT:
        return NULL;
    case FD_READY:
        break;
    }
    return write_prep(j);
}

/* Marks every record of s readable, in seq order (segment.h's commit). */
static void commit_slot(sl_journal_t *j, const slot_t *s)
{
    const uint8_t *p = s->mem + s->rec_off;
    const uint8_t *end = s->mem + s->len;
    while (p < end) {
        uint32_t len = sl_storage__get_le32(p);
        uint64_t seq = sl_storage__get_le64(p + REC_OFF_SEQ);
        uint64_t ts = sl_storage__get_le64(p + REC_OFF_TS);
        uint32_t data_len = len - REC_LEN_BASE - (p[REC_OFF_TYPE_LEN] & SL_RECORD_TYPE_LEN_MASK);
        if (ts & SL_RECORD_TS_EXT) { /* the trailer is not payload */
            ts &= ~SL_RECORD_TS_EXT;
            data_len -= sl_storage__get_le16(p + len + 4 - 2) + 2u;
        }
        sl_segment_index_commit_ts(j->ix, seq, len + 4, data_len, ts);
        j->written_seq = seq;
        p += len + 4;
    }
}

/* The whole batch reached the page cache. */
static void write_finish(sl_journal_t *j)
{
    j->st.writes++;
    pipe_unpin(j, &j->w);
    for (uint32_t k = 0; k < j->wr.count; k++) {
        commit_slot(j, slot_at(j, 0));
        slot_release(slot_at(j, 0));
        j->head = (j->head + 1) % SL_JOURNAL_BUFFERS;
        j->used--;
    }
    j->wr.active = false;
    if (j->wr.dsync && j->used > 0)
        j->dsync_contended_ns = sl_clock_now_ns();
    if (j->cfg.fsync == SL_JOURNAL_FSYNC_NEVER) {
        j->synced_seq = j->written_seq;
        return;
    }
    if (j->wr.dsync && !j->round.active && j->synced_seq <= j->written_seq) {
        j->synced_seq = j->written_seq; /* RWF_DSYNC: on disk already */
        j->st.fsyncs++;
        return;
    }
    uint64_t now = sl_clock_now_ns();
    if (j->round.active) {
        if (j->dirty_next == 0)
            j->dirty_next = now;
    } else if (j->dirty_since == 0) {
        j->dirty_since = now;
    }
}

static void write_io_done(sl_journal_t *j, int32_t res)
{
    if (res <= 0) {
        pipe_unpin(j, &j->w);
        journal_fail(j, res < 0 ? res : -EIO); /* 0 bytes: no progress is possible */
        return;
    }
    j->wr.done += (uint64_t)res;
    j->st.bytes_written += (uint64_t)res;
    if (j->wr.done < j->wr.total)
        j->st.short_writes++; /* next_op continues from wr.done */
    else
        write_finish(j);
}

static void write_complete(sl_journal_t *j, int32_t res)
{
    pipe_t *p = &j->w;
    bool wanted = j->status == 0 && j->mode != MODE_REMOVE;
    if (p->step == STEP_CLOSE) {
        j->st.closes++;
    } else if (p->step == STEP_OPEN) {
        int rc = pipe_opened(j, p, res);
        if (rc != 0 && wanted)
            journal_fail(j, rc);
        if (res >= 0 && p->creating && j->wr.active) {
            slot_at(j, 0)->create = false; /* exists now, even if not cached */
            j->dir_dirty = true;
        }
    } else if (wanted) {
        write_io_done(j, res);
    }
    if (j->status != 0 || j->mode == MODE_REMOVE)
        write_abort(j); /* the records are not wanted any more */
}

/* ---- the sync pipeline --------------------------------------------------- */

static bool sync_due(const sl_journal_t *j, uint64_t now)
{
    if (j->cfg.fsync == SL_JOURNAL_FSYNC_NEVER || j->status != 0 || j->mode == MODE_REMOVE ||
        j->phase == PH_MKDIR || j->phase == PH_MKDIR_SYNC)
        return false;
    if (j->written_seq <= j->synced_seq)
        return false;
    if (j->cfg.fsync == SL_JOURNAL_FSYNC_ALWAYS || j->mode == MODE_CLOSE ||
        j->want_seq > j->synced_seq)
        return true;
    return now >= j->dirty_since + j->cfg.fsync_interval_ns;
}

/* Covers everything written so far: segments sync_lo..(the one holding
 * written_seq), then the folder when a file was created since last time. */
static void round_start(sl_journal_t *j)
{
    uint32_t hi = sl_segment_index_count(j->ix);
    sl_assert(hi > 0);
    hi--;
    while (hi > 0 && sl_segment_index_at(j->ix, hi)->first_seq > j->written_seq)
        hi--;
    sl_assert(j->sync_lo <= hi);
    j->round.active = true;
    j->round.fs = false;
    if (j->cfg.rounds_active)
        atomic_fetch_add_explicit(j->cfg.rounds_active, 1, memory_order_relaxed);
    j->round.target = j->written_seq;
    j->round.i = j->sync_lo;
    j->round.hi = hi;
    j->round.dir = j->dir_dirty;
    j->dir_dirty = false;
    j->dirty_since = 0;
}

static void round_finish(sl_journal_t *j)
{
    if (j->round.target > j->synced_seq)
        j->synced_seq = j->round.target;
    /* The last segment synced may receive more writes: start there. */
    j->sync_lo = j->round.hi;
    round_end(j);
    j->dirty_since = j->dirty_next;
    j->dirty_next = 0;
}

/* A round that started while another journal's round ran asks for a
 * syncfs: waiting sessions then share one sync of the file system. */
static bool round_uses_fs(const sl_journal_t *j)
{
    if (!j->cfg.syncer || j->cfg.fsync_scope == SL_JOURNAL_SCOPE_FILE)
        return false;
    if (j->cfg.fsync_scope == SL_JOURNAL_SCOPE_FS)
        return true;
    return j->cfg.rounds_active &&
           atomic_load_explicit(j->cfg.rounds_active, memory_order_relaxed) > 1;
}

/* The syncfs of an fs round is done (syncfs covers the files' data and
 * the folder entries alike): the round ends as a whole. */
static void fs_round_done(sl_journal_t *j)
{
    int res = j->fsw.result;
    atomic_store_explicit(&j->fsw.state, SL_SYNCER_IDLE, memory_order_relaxed);
    if (j->status != 0 || j->mode == MODE_REMOVE) {
        round_end(j); /* nothing of this journal is acknowledged any more */
        return;
    }
    if (res < 0) {
        round_end(j);
        journal_fail(j, res); /* written data may be lost: never ack it */
        return;
    }
    j->st.fsyncs++;
    j->st.syncfs_rounds++;
    round_finish(j);
}

static sl_op_t *sync_next(sl_journal_t *j, uint64_t now)
{
    pipe_t *p = &j->s;
    if (p->busy)
        return NULL;
    if (j->round.active && j->round.fs)
        return NULL; /* the syncer's wake brings the next call */
    if (!j->round.active) {
        if (!sync_due(j, now))
            return p->close_fd >= 0 ? pipe_close(p) : NULL;
        round_start(j);
        if (round_uses_fs(j)) {
            /* Nothing is left to visit by fd: retention's position
             * bookkeeping (first_removable, positions_shift) sees a round
             * past all its segments. */
            j->round.fs = true;
            j->round.i = j->round.hi + 1;
            j->round.dir = false;
            j->fsw.wake = j->cfg.sync_wake;
            j->fsw.ctx = j->cfg.sync_wake_ctx;
            sl_syncer_request(j->cfg.syncer, &j->fsw);
            return NULL;
        }
    }
    bool data = j->round.i <= j->round.hi;
    sl_assert(data || j->round.dir);
    uint64_t key = data ? sl_segment_index_at(j->ix, j->round.i)->first_seq : FOLDER_KEY;
    sl_op_t *op = NULL;
    switch (pipe_fd(j, p, key, false, now, &op)) {
    case FD_OP:
        return op;
    case FD_WAIT:
        return NULL;
    case FD_READY:
        break;
    }
    op = op_prep(p, SL_OP_FSYNC, p->fd, STEP_IO);
    /* fdatasync still persists the size an append changed. */
    op->flags = data ? IORING_FSYNC_DATASYNC : 0;
    return op;
}

static void sync_io_done(sl_journal_t *j, int32_t res)
{
    pipe_unpin(j, &j->s);
    if (res < 0) {
        journal_fail(j, res); /* written data may be lost: never ack it */
        return;
    }
    j->st.fsyncs++;
    if (j->round.i <= j->round.hi)
        j->round.i++;
    else
        j->round.dir = false;
    if (j->round.i > j->round.hi && !j->round.dir)
        round_finish(j);
}

static void sync_complete(sl_journal_t *j, int32_t res)
{
    pipe_t *p = &j->s;
    bool wanted = j->status == 0 && j->mode != MODE_REMOVE;
    if (p->step == STEP_CLOSE) {
        j->st.closes++;
    } else if (p->step == STEP_OPEN) {
        int rc = pipe_opened(j, p, res);
        if (rc != 0 && wanted)
            journal_fail(j, rc);
    } else if (wanted) {
        sync_io_done(j, res);
    } else if (res == 0) {
        j->st.fsyncs++;
    }
    if (j->status != 0 || j->mode == MODE_REMOVE)
        sync_abort(j);
}

/* ---- extra syncs beside the round ---------------------------------------- */

/* Highest seq a sync in flight will make durable. */
static uint64_t sync_inflight_target(const sl_journal_t *j)
{
    uint64_t t = j->round.active ? j->round.target : j->synced_seq;
    for (uint32_t i = 0; i < SL_JOURNAL_SYNCS_EXTRA; i++)
        if (j->xs[i].busy && j->xs_target[i] > t)
            t = j->xs_target[i];
    return t;
}

/* While a round runs, a durable publish waiting on a write the round does
 * not cover would wait for the whole round and then its own: with every
 * older segment synced (the round's own range is just the newest one) and
 * no folder entry to sync, an fdatasync of that segment started now covers
 * it on its own, and the kernel commits it together with the round's. */
static sl_op_t *xsync_next(sl_journal_t *j, uint64_t now)
{
    if (!j->round.active || j->round.fs || j->status != 0 || j->mode != MODE_RUN ||
        j->phase != PH_READY || j->dir_dirty || j->round.dir ||
        j->cfg.fsync == SL_JOURNAL_FSYNC_NEVER)
        return NULL;
    uint32_t last = sl_segment_index_count(j->ix) - 1;
    if (j->sync_lo != last || j->round.hi != last)
        return NULL;
    uint64_t t = sync_inflight_target(j);
    if (j->written_seq <= t || (j->want_seq <= t && j->cfg.fsync != SL_JOURNAL_FSYNC_ALWAYS))
        return NULL;
    for (uint32_t i = 0; i < j->cfg.fsync_overlap; i++) {
        pipe_t *p = &j->xs[i];
        if (p->busy)
            continue;
        /* Only an fd the cache holds (the round's own, normally): an extra
         * sync never opens or closes, so it never holds a pin when idle. */
        uint64_t key = sl_segment_index_at(j->ix, last)->first_seq;
        cache_lock(j);
        int fd = sl_fdcache_lookup(j->cfg.fdcache, j->epoch, key, true);
        cache_unlock(j);
        if (fd < 0)
            return NULL;
        p->fd = fd;
        p->key = key;
        j->st.fds_pinned++;
        j->xs_target[i] = j->written_seq;
        sl_op_t *op = op_prep(p, SL_OP_FSYNC, fd, STEP_IO);
        op->flags = IORING_FSYNC_DATASYNC;
        return op;
    }
    (void)now;
    return NULL;
}

static void xsync_complete(sl_journal_t *j, pipe_t *p, int32_t res)
{
    uint32_t i = (uint32_t)(p - j->xs);
    bool wanted = j->status == 0 && j->mode != MODE_REMOVE;
    pipe_unpin(j, p);
    if (res < 0) {
        if (wanted)
            journal_fail(j, res); /* written data may be lost: never ack it */
        return;
    }
    j->st.fsyncs++;
    j->st.fsyncs_overlapped++;
    if (wanted && j->xs_target[i] > j->synced_seq)
        j->synced_seq = j->xs_target[i];
}

/* ---- the retention pipeline ------------------------------------------------ */

/* Wall-clock ns at which the oldest segment falls out of the age bound, or
 * 0: age retention is off, only one segment exists, or the segment's
 * newest record time is unknown (a recovered segment before any new
 * commit: never expired, see sl_segment_index_commit_ts). */
static uint64_t age_expiry(const sl_journal_t *j)
{
    if (j->ret_age_ns == 0 || sl_segment_index_count(j->ix) < 2)
        return 0;
    uint64_t ts = sl_segment_index_at(j->ix, 0)->last_ts_ns;
    if (ts == 0)
        return 0;
    return ts > UINT64_MAX - j->ret_age_ns ? UINT64_MAX : ts + j->ret_age_ns;
}

/* O(1): the oldest segment lies beyond a bound. Bytes count what was
 * appended, written or not: the files will hold it. */
static bool over_bound(const sl_journal_t *j, uint64_t wall)
{
    if (j->ret_bytes_max != 0 && sl_segment_index_placed_bytes(j->ix) > j->ret_bytes_max)
        return true;
    uint64_t exp = age_expiry(j);
    return exp != 0 && exp <= wall;
}

/* Whether the oldest segment may go now: it is closed (another segment
 * follows, every record committed) and, unless fsync=never, its records
 * are fdatasynced -- synced_seq covers them, or the round in progress is
 * past it and it was closed when the round started (below round.hi) --
 * so synced_seq never covers a record that did not reach the disk, and no
 * round visits a file that is gone. An unsynced one asks for a round at
 * once instead of waiting for the group-commit interval. */
static bool first_removable(sl_journal_t *j)
{
    if (!sl_segment_index_can_drop_first(j->ix))
        return false;
    if (j->cfg.fsync == SL_JOURNAL_FSYNC_NEVER)
        return true;
    if (j->round.active)
        return j->round.i > 0 && j->round.hi > 0;
    uint64_t last = sl_segment_index_at(j->ix, 0)->last_seq;
    if (j->synced_seq >= last)
        return true;
    sl_journal_want_sync(j, last);
    return false;
}

static sl_op_t *ret_unlink(sl_journal_t *j)
{
    sl_op_t *op = op_prep(&j->ret, SL_OP_UNLINKAT, j->cfg.data_dir_fd, STEP_IO);
    key_path(j, j->ret_unlink, j->ret.path);
    op->path = j->ret.path;
    return op;
}

/* Index positions moved down by one. sync_lo stays 0 when it was (the new
 * first segment may hold unsynced data); a round in progress is past
 * position 0 and does not end there (first_removable). */
static void positions_shift(sl_journal_t *j)
{
    if (j->sync_lo > 0)
        j->sync_lo--;
    if (j->round.active) {
        sl_assert(j->round.i > 0);
        sl_assert(j->round.hi > 0);
        j->round.i--;
        j->round.hi--;
    }
}

/* Takes the oldest segment's fd out of the cache and drops the segment
 * from the index; its close (on retc) and unlink (on ret) follow from
 * ret_next. False when the fd is pinned (retry later). */
static bool ret_drop(sl_journal_t *j, uint64_t now)
{
    uint64_t key = sl_segment_index_at(j->ix, 0)->first_seq;
    cache_lock(j);
    int fd = sl_fdcache_remove(j->cfg.fdcache, j->epoch, key);
    cache_unlock(j);
    if (fd == SL_EAGAIN) {
        /* A read holds it (writes and syncs never touch a removable
         * segment): never close under I/O. Every next_op tries again;
         * retry_at only makes sure one comes. */
        j->ret.retry_at = now + RETRY_NS;
        j->ret_wait = key;
        j->st.retention_waits++;
        return false;
    }
    j->ret_wait = 0;
    sl_segment_t seg;
    int rc = sl_segment_index_drop_first(j->ix, &seg);
    sl_assert(rc == 0); /* first_removable checked it */
    positions_shift(j);
    j->st.segments_removed++;
    j->st.bytes_removed += seg.bytes;
    j->st.events_removed += seg.events;
    j->st.payload_bytes_removed += seg.payload_bytes;
    j->ret_unlink = key;
    j->ret_unlink_bytes = seg.bytes;
    j->retc.close_fd = fd >= 0 ? fd : -1;
    return true;
}

/* One segment at a time: its CLOSE and UNLINKAT go out together (the two
 * do not depend on each other), and the next removal starts after both
 * completed. */
static sl_op_t *ret_next(sl_journal_t *j, uint64_t now)
{
    if (!j->retc.busy && j->retc.close_fd >= 0)
        return pipe_close(&j->retc);
    if (j->ret.busy)
        return NULL;
    if (j->ret_unlink != 0)
        return ret_unlink(j);
    if (j->retc.busy || (j->ret_bytes_max == 0 && j->ret_age_ns == 0))
        return NULL; /* ret_wait is 0: set_retention cleared it */
    j->ret.retry_at = 0;
    bool run = j->mode == MODE_RUN && j->phase == PH_READY && j->status == 0;
    uint64_t wall = j->ret_age_ns ? sl_clock_wall_ns() : 0;
    if (!run || !over_bound(j, wall) || !first_removable(j)) {
        j->ret_wait = 0;
        return NULL;
    }
    if (!ret_drop(j, now))
        return NULL;
    return j->retc.close_fd >= 0 ? pipe_close(&j->retc) : ret_unlink(j);
}

static void ret_complete(sl_journal_t *j, int32_t res)
{
    uint64_t key = j->ret_unlink;
    j->ret_unlink = 0;
    j->ret_unlink_bytes = 0;
    if (res == 0 || res == -ENOENT) {
        /* The next sync round fsyncs the folder, making the removal
         * durable; until then a crash may bring the file back, and
         * recovery takes it in again (its records are intact). */
        j->dir_dirty = true;
        return;
    }
    j->st.unlink_errors++;
    sl_warn("segment unlink failed", "session=%.*s segment=%llu err=\"%s\"", (int)j->id_len, j->id,
            (unsigned long long)key, sl_strerror(res));
}

void sl_journal_set_retention(sl_journal_t *j, uint64_t bytes_max, uint64_t age_ns)
{
    j->ret_bytes_max = bytes_max;
    j->ret_age_ns = age_ns;
    j->ret.retry_at = 0; /* look again at the next next_op */
    j->ret_wait = 0;     /* readers need not hold off until then */
}

uint64_t sl_journal_first_seq(const sl_journal_t *j)
{
    return sl_segment_index_first_seq(j->ix);
}

/* ---- closing and removing: the ctl pipeline ------------------------------ */

static uint32_t key_count(const sl_journal_t *j)
{
    return sl_segment_index_count(j->ix) + j->norphans;
}

static uint64_t key_at(const sl_journal_t *j, uint32_t i)
{
    uint32_t n = sl_segment_index_count(j->ix);
    return i < n ? sl_segment_index_at(j->ix, i)->first_seq : j->orphans[i - n];
}

/* Nothing left to write or sync and nobody holds a pin: fds may go. */
static bool quiet(const sl_journal_t *j)
{
    if (j->readers > 0 || j->w.busy || j->s.busy || j->w.close_fd >= 0 || j->s.close_fd >= 0)
        return false;
    for (uint32_t i = 0; i < SL_JOURNAL_SYNCS_EXTRA; i++)
        if (j->xs[i].busy)
            return false;
    /* A removal once started finishes first: its file must be unlinked
     * before the folder is renamed, and its fd closed. */
    if (j->ret.busy || j->retc.busy || j->retc.close_fd >= 0 || j->ret_unlink != 0)
        return false;
    if (j->wr.active || j->round.active)
        return false;
    if (j->mode == MODE_REMOVE || j->status != 0)
        return true;
    bool synced = j->cfg.fsync == SL_JOURNAL_FSYNC_NEVER || j->synced_seq >= j->written_seq;
    return j->used == 0 && synced;
}

/* Takes the journal's next cached fd out of the cache and returns the op
 * closing it; NULL when none is left (*wait: one is pinned; retry). */
static sl_op_t *release_next(sl_journal_t *j, uint64_t now, bool *wait)
{
    uint32_t n = key_count(j) + 1; /* + the folder */
    *wait = false;
    if (j->ctl.retry_at > now) {
        *wait = true;
        return NULL;
    }
    j->ctl.retry_at = 0;
    while (j->rel_i < n) {
        uint64_t key = j->rel_i < n - 1 ? key_at(j, j->rel_i) : FOLDER_KEY;
        cache_lock(j);
        int fd = sl_fdcache_remove(j->cfg.fdcache, j->epoch, key);
        cache_unlock(j);
        if (fd == SL_EAGAIN) {
            j->ctl.retry_at = now + RETRY_NS; /* pinned: only a stray pin */
            *wait = true;
            return NULL;
        }
        j->rel_i++;
        if (fd >= 0)
            return op_prep(&j->ctl, SL_OP_CLOSE, fd, STEP_CLOSE);
    }
    return NULL;
}

static sl_op_t *ctl_prep_path(sl_journal_t *j, sl_op_kind_t kind, const char *path)
{
    sl_op_t *op = op_prep(&j->ctl, kind, j->cfg.data_dir_fd, STEP_IO);
    snprintf(j->ctl.path, PATH_BYTES, "%s", path);
    op->path = j->ctl.path;
    return op;
}

/* An op on the session folder's path. */
static sl_op_t *ctl_prep_folder(sl_journal_t *j, sl_op_kind_t kind)
{
    sl_op_t *op = op_prep(&j->ctl, kind, j->cfg.data_dir_fd, STEP_IO);
    key_path(j, FOLDER_KEY, j->ctl.path);
    op->path = j->ctl.path;
    return op;
}

static sl_op_t *ctl_rename(sl_journal_t *j)
{
    sl_op_t *op = ctl_prep_folder(j, SL_OP_RENAMEAT);
    op->fd2 = j->cfg.data_dir_fd;
    op->path2 = j->rm_name;
    op->flags = RENAME_NOREPLACE;
    return op;
}

/* One phase step; returns an op, or NULL with *again when the phase moved
 * on without one. */
static sl_op_t *ctl_step(sl_journal_t *j, uint64_t now, bool *again)
{
    *again = false;
    bool wait;
    sl_op_t *op;
    switch (j->phase) {
    case PH_MKDIR:
        if (j->ctl.retry_at > now)
            return NULL;
        op = ctl_prep_folder(j, SL_OP_MKDIRAT);
        op->mode = DIR_MODE;
        return op;
    case PH_MKDIR_SYNC:
    case PH_RENAME_SYNC:
        return op_prep(&j->ctl, SL_OP_FSYNC, j->cfg.data_dir_fd, STEP_IO);
    case PH_READY:
        if (j->mode == MODE_RUN || !quiet(j))
            return NULL;
        j->phase = PH_RELEASE;
        j->rel_i = 0;
        *again = true;
        return NULL;
    case PH_RELEASE:
        op = release_next(j, now, &wait);
        if (op || wait)
            return op;
        j->phase = j->mode == MODE_CLOSE ? PH_DONE : PH_RENAME;
        *again = true;
        return NULL;
    case PH_RENAME:
        return ctl_rename(j);
    case PH_UNLINK:
        for (uint32_t i = 0; i < SL_JOURNAL_UNLINKS_INFLIGHT; i++)
            if (j->unl[i].busy)
                return NULL;
        if (j->unl_next < key_count(j) + RM_EXTRA_FILES)
            return NULL;
        j->phase = PH_RMDIR;
        *again = true;
        return NULL;
    case PH_RMDIR:
        op = ctl_prep_path(j, SL_OP_UNLINKAT, j->rm_name);
        op->flags = AT_REMOVEDIR;
        return op;
    case PH_DONE:
        return NULL;
    }
    return NULL;
}

static sl_op_t *ctl_next(sl_journal_t *j, uint64_t now)
{
    if (j->ctl.busy)
        return NULL;
    /* Each phase moves forward at most once per call: bounded. */
    for (int i = 0; i <= PH_DONE; i++) {
        bool again;
        sl_op_t *op = ctl_step(j, now, &again);
        if (op || !again)
            return op;
    }
    return NULL;
}

static void remove_error(sl_journal_t *j, int32_t res, const char *what)
{
    if (j->remove_status == 0)
        j->remove_status = res;
    sl_warn("journal remove incomplete", "session=%.*s step=%s err=\"%s\"", (int)j->id_len, j->id,
            what, sl_strerror(res));
}

static void ctl_complete(sl_journal_t *j, int32_t res)
{
    if (j->ctl.step == STEP_CLOSE) {
        j->st.closes++;
        return;
    }
    switch (j->phase) {
    case PH_MKDIR:
        if (res == -EEXIST && j->mode == MODE_RUN &&
            (uint64_t)++j->mkdir_tries * RETRY_NS <= j->cfg.mkdir_wait_ns) {
            j->ctl.retry_at = sl_clock_now_ns() + RETRY_NS; /* the old one is leaving */
            break;
        }
        if (res < 0)
            journal_fail(j, res);
        if (res == 0 && j->cfg.fsync != SL_JOURNAL_FSYNC_NEVER)
            j->phase = PH_MKDIR_SYNC;
        else
            j->phase = PH_READY;
        break;
    case PH_MKDIR_SYNC:
        if (res < 0)
            journal_fail(j, res);
        else
            j->st.fsyncs++;
        j->phase = PH_READY;
        break;
    case PH_RENAME:
        if (res == -ENOENT) {
            j->phase = PH_DONE; /* the folder was never made */
        } else if (res < 0) {
            remove_error(j, res, "rename");
            j->phase = PH_DONE;
        } else {
            bool never = j->cfg.fsync == SL_JOURNAL_FSYNC_NEVER;
            j->phase = never ? PH_UNLINK : PH_RENAME_SYNC;
        }
        break;
    case PH_RENAME_SYNC:
        if (res < 0)
            remove_error(j, res, "fsync");
        else
            j->st.fsyncs++;
        j->phase = PH_UNLINK;
        break;
    case PH_RMDIR:
        if (res < 0)
            remove_error(j, res, "rmdir");
        j->phase = PH_DONE;
        break;
    default:
        sl_assert(!"ctl completion in a phase without ctl I/O");
    }
}

static sl_op_t *unlink_next(sl_journal_t *j)
{
    /* The segments, then the seq reservation mark (storage/seqmark.h) and
     * the attributes file (storage/attrs.h); absent ones are fine. */
    if (j->phase != PH_UNLINK || j->unl_next >= key_count(j) + RM_EXTRA_FILES)
        return NULL;
    for (uint32_t i = 0; i < SL_JOURNAL_UNLINKS_INFLIGHT; i++) {
        pipe_t *u = &j->unl[i];
        if (u->busy)
            continue;
        sl_op_t *op = op_prep(u, SL_OP_UNLINKAT, j->cfg.data_dir_fd, STEP_IO);
        char name[SL_SEGMENT_NAME_LEN + 1];
        if (j->unl_next < key_count(j))
            sl_segment_name(name, sizeof name, key_at(j, j->unl_next));
        else
            snprintf(name, sizeof name, "%s",
                     j->unl_next == key_count(j) ? SL_SEQMARK_NAME : SL_ATTRS_NAME);
        j->unl_next++;
        snprintf(u->path, PATH_BYTES, "%s/%s", j->rm_name, name);
        op->path = u->path;
        return op;
    }
    return NULL;
}

/* ---- driving -------------------------------------------------------------- */

sl_op_t *sl_journal_next_op(sl_journal_t *j, uint64_t now_ns)
{
    /* A syncfs that finished ends its round before anything else looks at
     * the journal: closing waits for the round (quiet), so it must see it
     * ended in this same call -- the syncer's wake-up comes only once. */
    if (j->round.active && j->round.fs &&
        atomic_load_explicit(&j->fsw.state, memory_order_acquire) == SL_SYNCER_DONE)
        fs_round_done(j);
    sl_op_t *op = ctl_next(j, now_ns);
    if (!op)
        op = write_next(j, now_ns);
    /* Retention before sync: an unsynced oldest segment asks for a round,
     * which sync_next then starts in the same call. */
    if (!op)
        op = ret_next(j, now_ns);
    if (!op)
        op = sync_next(j, now_ns);
    if (!op)
        op = xsync_next(j, now_ns);
    if (!op)
        op = unlink_next(j);
    if (op)
        j->submitted = true;
    return op;
}

bool sl_journal_owns_op(const sl_journal_t *j, const sl_op_t *op)
{
    if (op == &j->ctl.op || op == &j->w.op || op == &j->s.op || op == &j->ret.op ||
        op == &j->retc.op)
        return true;
    for (uint32_t i = 0; i < SL_JOURNAL_UNLINKS_INFLIGHT; i++)
        if (op == &j->unl[i].op)
            return true;
    for (uint32_t i = 0; i < SL_JOURNAL_SYNCS_EXTRA; i++)
        if (op == &j->xs[i].op)
            return true;
    return false;
}

/* Every fd a journal closes came out of the cache (or was opened under a
 * reservation): it stops counting against the bound once closed. */
static void fd_closed(const sl_journal_t *j, const sl_op_t *op)
{
    if (op->kind != SL_OP_CLOSE)
        return;
    cache_lock(j);
    sl_fdcache_release(j->cfg.fdcache);
    cache_unlock(j);
}

void sl_journal_complete(sl_journal_t *j, sl_op_t *op)
{
    sl_assert(sl_journal_owns_op(j, op));
    pipe_t *p = sl_container_of(op, pipe_t, op);
    sl_assert(p->busy);
    p->busy = false;
    fd_closed(j, op);
    if (p == &j->ctl) {
        ctl_complete(j, op->res);
    } else if (p == &j->w) {
        write_complete(j, op->res);
    } else if (p == &j->s) {
        sync_complete(j, op->res);
    } else if (p == &j->ret) {
        ret_complete(j, op->res);
    } else if (p == &j->retc) {
        j->st.closes++;
    } else if (p >= j->xs && p < j->xs + SL_JOURNAL_SYNCS_EXTRA) {
        xsync_complete(j, p, op->res);
    } else if (op->res < 0 && op->res != -ENOENT) {
        remove_error(j, op->res, "unlink"); /* gone already is fine */
    }
}

static uint64_t earliest(uint64_t a, uint64_t b)
{
    if (a == 0)
        return b;
    if (b == 0)
        return a;
    return a < b ? a : b;
}

/* Once the expiry passed, next_op removes the segment, or a completion or
 * ret.retry_at brings the next_op that does. */
uint64_t sl_journal_retention_deadline(const sl_journal_t *j)
{
    if (j->mode != MODE_RUN || j->status != 0)
        return 0;
    uint64_t exp = age_expiry(j);
    if (exp == 0)
        return 0;
    uint64_t wall = sl_clock_wall_ns();
    if (exp <= wall || exp - wall > UINT64_MAX / 2)
        return 0;
    return sl_clock_now_ns() + (exp - wall);
}

uint64_t sl_journal_deadline(const sl_journal_t *j)
{
    uint64_t dl = 0;
    if (!j->w.busy && j->wr.active)
        dl = earliest(dl, j->w.retry_at);
    if (!j->s.busy && j->round.active)
        dl = earliest(dl, j->s.retry_at);
    if (!j->ctl.busy && (j->phase == PH_RELEASE || j->phase == PH_MKDIR))
        dl = earliest(dl, j->ctl.retry_at);
    if (!j->ret.busy)
        dl = earliest(dl, j->ret.retry_at);
    bool batch = j->cfg.fsync == SL_JOURNAL_FSYNC_BATCH && j->status == 0 && j->mode == MODE_RUN;
    if (batch && !j->round.active && !j->s.busy && j->written_seq > j->synced_seq)
        dl = earliest(dl, j->dirty_since + j->cfg.fsync_interval_ns);
    return dl;
}

uint64_t sl_journal_written_seq(const sl_journal_t *j)
{
    return j->written_seq;
}

uint64_t sl_journal_synced_seq(const sl_journal_t *j)
{
    return j->synced_seq;
}

uint64_t sl_journal_appended_seq(const sl_journal_t *j)
{
    return j->appended_seq;
}

bool sl_journal_ready(const sl_journal_t *j)
{
    return j->phase == PH_READY && j->mode == MODE_RUN && j->status == 0;
}

int sl_journal_status(const sl_journal_t *j)
{
    return j->status;
}

uint32_t sl_journal_inflight(const sl_journal_t *j)
{
    uint32_t n = j->ctl.busy + j->w.busy + j->s.busy + j->ret.busy + j->retc.busy;
    for (uint32_t i = 0; i < SL_JOURNAL_UNLINKS_INFLIGHT; i++)
        n += j->unl[i].busy;
    for (uint32_t i = 0; i < SL_JOURNAL_SYNCS_EXTRA; i++)
        n += j->xs[i].busy;
    n += fs_queued(j); /* the syncer holds fsw */
    return n;
}

const sl_segment_index_t *sl_journal_index(const sl_journal_t *j)
{
    return j->ix;
}

void sl_journal_stats(const sl_journal_t *j, sl_journal_stats_t *out)
{
    *out = j->st;
    out->readers = j->readers;
}

void sl_journal_close(sl_journal_t *j)
{
    if (j->mode == MODE_RUN)
        j->mode = MODE_CLOSE;
}

void sl_journal_remove(sl_journal_t *j)
{
    if (j->mode == MODE_REMOVE)
        return;
    if (j->phase == PH_DONE)
        j->phase = PH_READY; /* closed already: releasing again finds nothing */
    if (j->phase == PH_MKDIR && !j->ctl.busy)
        j->phase = PH_DONE; /* the folder was never asked for */
    j->mode = MODE_REMOVE;
    snprintf(j->rm_name, sizeof j->rm_name, SL_JOURNAL_REMOVED_PREFIX "%016llx-%.*s",
             (unsigned long long)j->epoch, (int)j->id_len, j->id);
    write_abort(j);
    sync_abort(j);
}

bool sl_journal_done(const sl_journal_t *j)
{
    return j->phase == PH_DONE && sl_journal_inflight(j) == 0;
}

int sl_journal_remove_status(const sl_journal_t *j)
{
    return j->remove_status;
}

/* ---- readers ---------------------------------------------------------------- */

int sl_journal_reader_create(sl_journal_t *j, uint64_t from_seq, sl_journal_reader_t **out)
{
    if (j->mode != MODE_RUN)
        return SL_ECLOSED;
    sl_journal_reader_t *r = calloc(1, sizeof *r);
    if (!r)
        return -ENOMEM;
    uint32_t cap = j->cfg.read_bytes;
    uint32_t rec_max = (uint32_t)SL_RECORD_MAX_SIZE(j->cfg.data_max);
    if (cap < rec_max)
        cap = rec_max; /* the cursor needs one whole record per read */
    r->buf = malloc(cap);
    if (!r->buf) {
        free(r);
        return -ENOMEM;
    }
    r->cap = cap;
    sl_budget_add(SL_BUDGET_JOURNAL, cap);
    r->j = j;
    pipe_init(&r->p);
    sl_segment_cursor_init(&r->cur, from_seq);
    j->readers++;
    *out = r;
    return 0;
}

/* Plans the next read unless one is planned. Returns 0, or the status
 * that stops reading for now (SL_EAGAIN: caught up). */
static int reader_plan(sl_journal_reader_t *r)
{
    if (r->planned)
        return 0;
    int rc = sl_segment_cursor_plan(&r->cur, r->j->ix, r->cap, &r->rd);
    if (rc != 0)
        return rc;
    /* A short read that led to no progress means the file is shorter than
     * the index says: reading again would loop. */
    if (r->rd.segment == r->short_seg && r->rd.offset == r->short_off)
        return SL_ECORRUPT;
    r->planned = true;
    return 0;
}

sl_op_t *sl_journal_reader_next_op(sl_journal_reader_t *r, uint64_t now_ns)
{
    pipe_t *p = &r->p;
    if (p->busy)
        return NULL;
    if (r->stopping || r->j->mode != MODE_RUN) {
        if (!r->stopping && r->status == 0)
            r->status = SL_ECLOSED;
        pipe_unpin(r->j, p);
        return p->close_fd >= 0 ? pipe_close(p) : NULL;
    }
    if (r->have || (r->status != 0 && r->status != SL_EAGAIN))
        return NULL;
    if (r->planned && sl_segment_index_dropped(r->j->ix, r->rd.segment)) {
        /* Retention removed it before the read started (a pinned fd would
         * have kept it): plan again from the oldest retained segment. */
        sl_assert(p->fd < 0);
        r->planned = false;
    }
    int rc = reader_plan(r);
    r->status = rc;
    if (rc != 0)
        return p->close_fd >= 0 ? pipe_close(p) : NULL;
    if (r->rd.segment == r->j->ret_wait && p->fd < 0 && p->close_fd < 0) {
        /* Retention waits for this segment's pins to go: starting another
         * read now could keep it waiting for ever. */
        p->retry_at = now_ns + RETRY_NS;
        return NULL;
    }
    sl_op_t *op = NULL;
    switch (pipe_fd(r->j, p, r->rd.segment, false, now_ns, &op)) {
    case FD_OP:
        return op;
    case FD_WAIT:
        return NULL;
    case FD_READY:
        break;
    }
    op = op_prep(p, SL_OP_READ, p->fd, STEP_IO);
    op->buf = r->buf;
    op->len = r->rd.len;
    op->offset = r->rd.offset;
    return op;
}

bool sl_journal_reader_owns_op(const sl_journal_reader_t *r, const sl_op_t *op)
{
    return op == &r->p.op;
}

static void reader_read_done(sl_journal_reader_t *r, int32_t res)
{
    sl_journal_t *j = r->j;
    pipe_unpin(j, &r->p);
    r->planned = false;
    if (res < 0) {
        r->status = res;
        return;
    }
    j->st.reads++;
    j->st.read_bytes += (uint64_t)res;
    r->n = (uint32_t)res;
    r->pos = 0;
    r->have = true;
    if ((uint32_t)res < r->rd.len) {
        r->short_seg = r->rd.segment;
        r->short_off = r->rd.offset;
    } else {
        r->short_seg = 0;
    }
}

void sl_journal_reader_complete(sl_journal_reader_t *r, sl_op_t *op)
{
    sl_assert(op == &r->p.op);
    sl_assert(r->p.busy);
    r->p.busy = false;
    fd_closed(r->j, op);
    if (r->p.step == STEP_CLOSE) {
        r->j->st.closes++;
    } else if (r->p.step == STEP_OPEN && sl_segment_index_dropped(r->j->ix, r->p.key)) {
        /* Retention removed the segment while it was being opened: the fd
         * must not enter the cache under a key nobody releases. */
        if (op->res >= 0) {
            sl_assert(r->p.close_fd < 0); /* pipe_fd closes before it opens */
            r->j->st.opens++;
            r->p.close_fd = op->res; /* counted until this close completes */
        } else {
            cache_lock(r->j);
            sl_fdcache_release(r->j->cfg.fdcache); /* the reservation */
            cache_unlock(r->j);
        }
        r->planned = false;
    } else if (r->p.step == STEP_OPEN) {
        int rc = pipe_opened(r->j, &r->p, op->res);
        if (rc != 0) {
            r->status = rc;
            r->planned = false;
        }
    } else {
        reader_read_done(r, op->res);
    }
}

static int take_one(const sl_record_view_t *rec, void *ctx)
{
    sl_journal_reader_t *r = ctx;
    r->rec = *rec;
    return 1; /* one record per call: the caller iterates */
}

int sl_journal_reader_next(sl_journal_reader_t *r, sl_record_view_t *out)
{
    if (!r->have)
        return 0;
    if (r->pos < r->n) {
        sl_segment_read_t sub = {
            .segment = r->rd.segment, .offset = r->rd.offset + r->pos, .len = r->rd.len - r->pos};
        int rc = sl_segment_cursor_consume(&r->cur, r->j->ix, &sub, r->buf + r->pos, r->n - r->pos,
                                           take_one, r);
        if (rc < 0) {
            r->status = rc;
            r->have = false;
            return rc;
        }
        if (rc > 0) {
            /* The record's type sits SL_RECORD_OVERHEAD bytes into it. */
            r->pos = (uint32_t)(r->rec.type - SL_RECORD_OVERHEAD - r->buf) + r->rec.size;
            r->j->st.records_read++;
            *out = r->rec;
            return 1;
        }
    }
    r->have = false; /* the rest was skipped or is cut off: read again */
    return 0;
}

int sl_journal_reader_status(const sl_journal_reader_t *r)
{
    return r->status;
}

uint64_t sl_journal_reader_next_seq(const sl_journal_reader_t *r)
{
    return r->cur.next_seq;
}

uint64_t sl_journal_reader_deadline(const sl_journal_reader_t *r)
{
    return r->p.busy || r->stopping ? 0 : r->p.retry_at;
}

void sl_journal_reader_stop(sl_journal_reader_t *r)
{
    r->stopping = true;
    r->have = false;
    if (!r->p.busy)
        pipe_unpin(r->j, &r->p);
}

bool sl_journal_reader_idle(const sl_journal_reader_t *r)
{
    return !r->p.busy && r->p.close_fd < 0 && r->p.fd < 0;
}

void sl_journal_reader_destroy(sl_journal_reader_t *r)
{
    if (!r)
        return;
    sl_assert(sl_journal_reader_idle(r));
    r->j->readers--;
    sl_budget_sub(SL_BUDGET_JOURNAL, r->cap);
    free(r->buf);
    free(r);
}

/* ---- startup sweep ------------------------------------------------------------ */

/* Unlinks the entries of the folder open at fd (taken) and returns 0, or
 * the first error. */
static int empty_folder(int fd)
{
    DIR *d = fdopendir(fd);
    if (!d) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (unlinkat(dirfd(d), de->d_name, 0) != 0 && rc == 0)
            rc = -errno;
    }
    closedir(d);
    return rc;
}

int sl_journal_sweep_removed(const char *data_dir)
{
    DIR *d = opendir(data_dir);
    if (!d)
        return -errno;
    int dfd = dirfd(d);
    int removed = 0;
    size_t plen = sizeof SL_JOURNAL_REMOVED_PREFIX - 1;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, SL_JOURNAL_REMOVED_PREFIX, plen) != 0)
            continue;
        int fd = openat(dfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        int rc = fd < 0 ? -errno : empty_folder(fd);
        if (rc == 0 && unlinkat(dfd, de->d_name, AT_REMOVEDIR) != 0)
            rc = -errno;
        if (rc == 0) {
            removed++;
        } else {
            char q[2 * NAME_MAX];
            sl_log_quote(q, sizeof q, de->d_name, (unsigned)strlen(de->d_name));
            sl_warn("removed session folder left", "folder=%s err=\"%s\"", q, sl_strerror(rc));
        }
    }
    if (removed > 0)
        fsync(dfd);
    closedir(d);
    return removed;
}
