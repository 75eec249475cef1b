/*
 * Tests for storage/journal.c against a real reactor and actor runtime. A
 * driver actor owns the journal the way a session actor would: it appends
 * records produced by a deterministic generator, submits whatever next_op
 * returns, feeds completions back, arms a timer at the journal's deadline,
 * drives catch-up readers and checks every record they hand out byte for
 * byte. The test thread sends the driver one command at a time and waits
 * until a condition over the driver's state holds; the driver then copies
 * what the test checks into a snapshot. Files are verified independently
 * with storage/recovery and the record codec once the journal is closed.
 */
#include "storage/journal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "runtime/actor.h"
#include "runtime/clock.h"
#include "runtime/log.h"
#include "runtime/reactor.h"
#include "storage/recovery.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #c);                  \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define CHECK_EQ(a, b)                                                                             \
    do {                                                                                           \
        long long a_ = (long long)(a), b_ = (long long)(b);                                        \
        if (a_ != b_) {                                                                            \
            fprintf(stderr, "%s:%d: CHECK_EQ failed: %s == %s (%lld vs %lld)\n", __FILE__,         \
                    __LINE__, #a, #b, a_, b_);                                                     \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define SEG (64u << 10)
#define DMAX (16u << 10)
#define EPOCH 0x00c0ffee12345678ull
#define ID "sess-1"
#define WAIT_MS 20000
#define READERS_MAX 8
#define TAG_JOURNAL 1u
#define TAG_READER 2u
#define MSG_CMD (SL_MSG_KIND_USER + 1)

/* ---- the record generator ------------------------------------------------ */

/* Every seq with seq % 7 == 3 is skipped (an ephemeral event): the log has
 * gaps. Every 997th record is bigger than a small write buffer. */
static bool logged(uint64_t seq)
{
    return seq % 7 != 3;
}

static uint64_t next_logged(uint64_t seq)
{
    while (!logged(seq))
        seq++;
    return seq;
}

static uint64_t count_logged(uint64_t first, uint64_t last)
{
    uint64_t n = 0;
    for (uint64_t s = first; s <= last; s++)
        n += logged(s);
    return n;
}

/* The seq of the n-th logged record (1-based). */
static uint64_t nth_logged(uint64_t n)
{
    uint64_t s = 0;
    while (n > 0)
        n -= logged(++s);
    return s;
}

typedef struct gen_rec {
    char type[16];
    uint32_t type_len;
    uint8_t data[DMAX];
    uint32_t data_len;
    uint64_t ts_ns;
} gen_rec_t;

/* Records from recent_from on carry wall-clock times from recent_base
 * (age retention must keep them); older ones carry times near the epoch
 * (long expired). Set by the test thread while the driver is idle; the
 * command message orders the writes before the driver's reads. */
static uint64_t recent_from = UINT64_MAX;
static uint64_t recent_base;

static void gen(uint64_t seq, gen_rec_t *g)
{
    g->type_len = (uint32_t)snprintf(g->type, sizeof g->type, "ev%u", (unsigned)(seq % 13));
    g->data_len = seq % 997 == 0 ? 9000u : (uint32_t)((seq * 2654435761u) % 301u);
    for (uint32_t i = 0; i < g->data_len; i++)
        g->data[i] = (uint8_t)(seq * 31u + i * 7u);
    g->ts_ns = (seq >= recent_from ? recent_base : 1000000ull) + seq * 17ull;
}

static void check_rec(const sl_record_view_t *rec, uint64_t seq)
{
    static gen_rec_t g; /* one checker at a time: the driver's thread */
    gen(seq, &g);
    CHECK_EQ(rec->seq, seq);
    CHECK_EQ(rec->ts_ns, g.ts_ns);
    CHECK_EQ(rec->type_len, g.type_len);
    CHECK(memcmp(rec->type, g.type, g.type_len) == 0);
    CHECK_EQ(rec->data_len, g.data_len);
    CHECK(g.data_len == 0 || memcmp(rec->data, g.data, g.data_len) == 0);
}

/* ---- durability trace ------------------------------------------------------ */

/* Follows the journal's ops as the kernel sees them and checks, at every
 * step, that synced_seq never covers a record unless (1) an fdatasync of
 * its segment was submitted after the write carrying it completed and has
 * completed, (2) when the record's segment file was created by the
 * journal, an fsync of the session folder submitted after the creation
 * has completed, and (3) the data dir was fsynced after the folder was
 * made. It knows nothing of the journal's internals: only op kinds, fds,
 * flags, paths and results. */
#define TRACE_SEGS 256
#define TRACE_WRITES 8192
#define TRACE_FDS 4096

typedef struct trace_seg {
    uint64_t seg;
    uint64_t wlast;      /* last seq of completed writes */
    uint64_t covered;    /* seqs <= this are fdatasynced */
    uint64_t mark;       /* wlast when the fsync in flight was submitted */
    uint64_t create_gen; /* 0: not created by the journal */
} trace_seg_t;

typedef struct trace {
    trace_seg_t segs[TRACE_SEGS];
    uint32_t nsegs;
    struct {
        uint32_t seg; /* index in segs */
        uint64_t lo, hi;
    } writes[TRACE_WRITES];
    uint32_t nwrites;
    int32_t fd_seg[TRACE_FDS]; /* fd -> segs index + 1; -1 folder; 0 unknown */
    uint64_t gen;              /* creations so far */
    uint64_t dir_mark, dir_covered;
    bool mkdir_done, datadir_synced;
    uint64_t datadir_mark;
    int data_dir_fd;
} trace_t;

static uint32_t trace_seg(trace_t *t, uint64_t seg)
{
    for (uint32_t i = 0; i < t->nsegs; i++)
        if (t->segs[i].seg == seg)
            return i;
    CHECK(t->nsegs < TRACE_SEGS);
    t->segs[t->nsegs] = (trace_seg_t){.seg = seg};
    return t->nsegs++;
}

/* The segment a relative path "<id>/<20 digits>.seg" names, or 0. */
static uint64_t path_seg(const char *path)
{
    const char *slash = strrchr(path, '/');
    uint64_t seg;
    if (!slash || !sl_segment_name_parse(slash + 1, strlen(slash + 1), &seg))
        return 0;
    return seg;
}

/* An op is about to be submitted. */
static void trace_submit(trace_t *t, const sl_op_t *op)
{
    if (op->kind != SL_OP_FSYNC)
        return;
    if (op->fd == t->data_dir_fd) {
        t->datadir_mark = t->mkdir_done;
        return;
    }
    CHECK(op->fd >= 0 && op->fd < TRACE_FDS);
    int32_t s = t->fd_seg[op->fd];
    CHECK(s != 0);
    if (s < 0) {
        t->dir_mark = t->gen; /* covers every creation completed so far */
    } else {
        CHECK_EQ(op->flags, IORING_FSYNC_DATASYNC);
        t->segs[s - 1].mark = t->segs[s - 1].wlast;
    }
}

/* An op completed; written_before/after bracket sl_journal_complete. */
static void trace_complete(trace_t *t, const sl_op_t *op, uint64_t written_before,
                           uint64_t written_after)
{
    bool fd_ok = op->fd >= 0 && op->fd < TRACE_FDS;
    switch (op->kind) {
    case SL_OP_MKDIRAT:
        t->mkdir_done = op->res == 0;
        break;
    case SL_OP_OPENAT:
        if (op->res < 0)
            break;
        CHECK(op->res < TRACE_FDS);
        if (op->flags & O_DIRECTORY) {
            t->fd_seg[op->res] = -1;
        } else {
            uint32_t i = trace_seg(t, path_seg(op->path));
            t->fd_seg[op->res] = (int32_t)i + 1;
            if (op->flags & O_CREAT)
                t->segs[i].create_gen = ++t->gen;
        }
        break;
    case SL_OP_CLOSE:
        if (fd_ok)
            t->fd_seg[op->fd] = 0;
        break;
    case SL_OP_WRITE:
    case SL_OP_WRITEV:
        if (written_after > written_before) {
            CHECK(fd_ok && t->fd_seg[op->fd] > 0);
            uint32_t i = (uint32_t)t->fd_seg[op->fd] - 1;
            CHECK(t->nwrites < TRACE_WRITES);
            t->writes[t->nwrites].seg = i;
            t->writes[t->nwrites].lo = written_before + 1;
            t->writes[t->nwrites].hi = written_after;
            t->nwrites++;
            /* RWF_DSYNC makes this write's records durable -- and only
             * them: the segment counts as covered only when everything
             * written to it before was covered already. */
            if ((op->flags & RWF_DSYNC) && t->segs[i].covered >= t->segs[i].wlast)
                t->segs[i].covered = written_after;
            t->segs[i].wlast = written_after;
        }
        break;
    case SL_OP_FSYNC:
        if (op->res != 0)
            break;
        if (op->fd == t->data_dir_fd) {
            t->datadir_synced |= t->datadir_mark;
        } else if (t->fd_seg[op->fd] < 0) {
            if (t->dir_mark > t->dir_covered)
                t->dir_covered = t->dir_mark;
        } else {
            trace_seg_t *sg = &t->segs[t->fd_seg[op->fd] - 1];
            if (sg->mark > sg->covered)
                sg->covered = sg->mark;
        }
        break;
    default:
        break;
    }
}

/* synced_seq may not reach any record that is not durable yet. */
static void trace_check(const trace_t *t, uint64_t synced)
{
    if (synced == 0)
        return;
    CHECK(!t->mkdir_done || t->datadir_synced);
    for (uint32_t k = 0; k < t->nwrites; k++) {
        const trace_seg_t *sg = &t->segs[t->writes[k].seg];
        bool data = t->writes[k].hi <= sg->covered;
        bool entry = sg->create_gen == 0 || sg->create_gen <= t->dir_covered;
        if (!data || !entry)
            CHECK(synced < t->writes[k].lo);
    }
}

/* ---- the driver actor -------------------------------------------------- */

typedef struct rdr {
    sl_journal_reader_t *r;
    uint64_t expect; /* next seq expected (before skipping unlogged ones) */
    uint64_t got;    /* records checked */
    bool gaps_ok;    /* retention may remove records before they are read */
    uint64_t gaps;   /* jumps over logged records */
    uint64_t lost;   /* logged records jumped over */
    uint64_t first;  /* seq of the first record handed out, 0: none */
    uint32_t budget; /* records taken per turn (0: all), like an output bound */
    int status;
    uint64_t next_seq; /* the reader's own position */
} rdr_t;

typedef struct snap {
    uint64_t written, synced, appended;
    int status;
    uint32_t inflight;
    bool done;
    sl_journal_stats_t st;
    sl_fdcache_stats_t cache;
    rdr_t rd[READERS_MAX];
    uint64_t efull, appends;
    int append_err;
    uint64_t disk_max; /* most bytes the session folder held at a pump */
    uint64_t first_seq;
    uint32_t segments;
    uint64_t ix_bytes, ix_events, ix_payload;
} snap_t;

typedef struct drv drv_t;
typedef void (*act_fn)(drv_t *d, void *arg);
typedef bool (*until_fn)(drv_t *d);

struct drv {
    sl_actor_t a;
    sl_reactor_t *reactor;
    sl_fdcache_t *cache;
    sl_journal_config_t cfg;
    sl_journal_t *j;
    rdr_t rd[READERS_MAX];
    sl_op_t timer;
    bool timer_armed;
    bool tick; /* a reader stopped at its budget: run again soon */
    /* feeder: appends seqs feed_next..feed_end that are logged */
    uint64_t feed_next, feed_end;
    bool durable; /* ask for a sync of everything appended */
    uint64_t efull, appends;
    int append_err;
    uint32_t inflight_max;
    trace_t *trace; /* NULL under fsync=never, which promises nothing */
    int watch_dfd;  /* >= 0: measure the session folder at every pump */
    uint64_t disk_max;
    /* age retention probe (act_age_probe) */
    bool track_drops;
    uint32_t last_count;
    uint64_t first_drop_wall; /* wall ns of the first removal seen, 0: none */
    uint64_t probe_deadline, probe_mono, probe_wall, probe_ts, probe_age;
    /* command protocol */
    sl_msg_t cmd;
    act_fn act;
    void *arg;
    until_fn until;
    bool waiting;
    sem_t done;
    snap_t snap;
};

static void feed(drv_t *d)
{
    static gen_rec_t g;
    while (d->j && d->feed_next <= d->feed_end) {
        uint64_t seq = d->feed_next;
        if (!logged(seq)) {
            d->feed_next++;
            continue;
        }
        gen(seq, &g);
        int rc = sl_journal_append(d->j, seq, g.ts_ns, g.type, g.type_len, g.data, g.data_len);
        if (rc == SL_EFULL) {
            d->efull++;
            break; /* the publisher waits for a completion */
        }
        if (rc != 0) {
            d->append_err = rc;
            d->feed_end = 0;
            break;
        }
        d->appends++;
        d->feed_next++;
    }
    if (d->j && d->durable)
        sl_journal_want_sync(d->j, sl_journal_appended_seq(d->j));
}

static void submit(drv_t *d, sl_op_t *op, uint64_t user)
{
    if (d->trace && user == TAG_JOURNAL)
        trace_submit(d->trace, op);
    op->owner = &d->a;
    op->user = user;
    sl_reactor_submit(d->reactor, op);
}

static void pump_reader(drv_t *d, uint32_t i, uint64_t now)
{
    rdr_t *r = &d->rd[i];
    for (int guard = 0; r->r && guard < 1000; guard++) {
        sl_record_view_t rec;
        uint32_t taken = 0;
        int rc;
        while ((r->budget == 0 || taken < r->budget) &&
               (rc = sl_journal_reader_next(r->r, &rec)) == 1) {
            uint64_t want = next_logged(r->expect);
            if (rec.seq != want) {
                /* Only retention may make a reader jump, and only forward
                 * to a logged record. */
                CHECK(r->gaps_ok);
                CHECK(rec.seq > want);
                CHECK(logged(rec.seq));
                r->gaps++;
                r->lost += count_logged(want, rec.seq - 1);
                want = rec.seq;
            }
            check_rec(&rec, want);
            if (r->first == 0)
                r->first = rec.seq;
            r->expect = want + 1;
            r->got++;
            taken++;
        }
        if (r->budget && taken == r->budget) {
            d->tick = true;
            return;
        }
        sl_op_t *op = sl_journal_reader_next_op(r->r, now);
        if (!op)
            break;
        submit(d, op, TAG_READER | (uint64_t)i << 8);
    }
    if (r->r) {
        r->status = sl_journal_reader_status(r->r);
        r->next_seq = sl_journal_reader_next_seq(r->r);
    }
}

static void arm_timer(drv_t *d, uint64_t now)
{
    uint64_t dl = d->j ? sl_journal_deadline(d->j) : 0;
    uint64_t age = d->j ? sl_journal_retention_deadline(d->j) : 0;
    if (age && (!dl || age < dl))
        dl = age;
    for (uint32_t i = 0; i < READERS_MAX; i++) {
        uint64_t r = d->rd[i].r ? sl_journal_reader_deadline(d->rd[i].r) : 0;
        if (r && (!dl || r < dl))
            dl = r;
    }
    if (d->tick)
        dl = now;
    d->tick = false;
    if (!dl || d->timer_armed)
        return;
    memset(&d->timer, 0, sizeof d->timer);
    d->timer.kind = SL_OP_TIMEOUT;
    /* One timer, never cancelled: a far deadline (age retention) must not
     * hide an earlier one that comes up later, so wake at least every
     * 50 ms. */
    d->timer.timeout_ns = dl > now ? dl - now : 1000;
    if (d->timer.timeout_ns > 50 * SL_NS_PER_MS)
        d->timer.timeout_ns = 50 * SL_NS_PER_MS;
    d->timer_armed = true;
    submit(d, &d->timer, 0);
}

/* Bytes of the segment files in the session folder, read from the disk. */
static uint64_t folder_bytes(int dfd, uint32_t *files)
{
    int fd = openat(dfd, ID, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    *files = 0;
    if (fd < 0)
        return 0;
    DIR *dir = fdopendir(fd);
    CHECK(dir != NULL);
    uint64_t bytes = 0;
    struct dirent *de;
    while ((de = readdir(dir)) != NULL) {
        uint64_t seg;
        struct stat st;
        if (!sl_segment_name_parse(de->d_name, strlen(de->d_name), &seg))
            continue;
        if (fstatat(dirfd(dir), de->d_name, &st, 0) != 0)
            continue; /* unlinked meanwhile */
        bytes += (uint64_t)st.st_size;
        (*files)++;
    }
    closedir(dir);
    return bytes;
}

static void pump(drv_t *d)
{
    uint64_t now = sl_clock_now_ns();
    if (d->j) {
        feed(d);
        sl_op_t *op;
        for (int guard = 0; guard < 64 && (op = sl_journal_next_op(d->j, now)); guard++)
            submit(d, op, TAG_JOURNAL);
        uint32_t n = sl_journal_inflight(d->j);
        CHECK(n <= 5 + SL_JOURNAL_UNLINKS_INFLIGHT);
        if (n > d->inflight_max)
            d->inflight_max = n;
        CHECK(sl_journal_synced_seq(d->j) <= sl_journal_written_seq(d->j));
        CHECK(sl_journal_written_seq(d->j) <= sl_journal_appended_seq(d->j));
    }
    for (uint32_t i = 0; i < READERS_MAX; i++)
        pump_reader(d, i, now);
    arm_timer(d, now);
    if (d->track_drops && d->j) {
        uint32_t n = sl_segment_index_count(sl_journal_index(d->j));
        if (n < d->last_count && d->first_drop_wall == 0)
            d->first_drop_wall = sl_clock_wall_ns();
        d->last_count = n;
    }
    if (d->watch_dfd >= 0) {
        uint32_t files;
        uint64_t b = folder_bytes(d->watch_dfd, &files);
        if (b > d->disk_max)
            d->disk_max = b;
    }
}

static void take_snap(drv_t *d)
{
    snap_t *s = &d->snap;
    memset(s, 0, sizeof *s);
    if (d->j) {
        s->written = sl_journal_written_seq(d->j);
        s->synced = sl_journal_synced_seq(d->j);
        s->appended = sl_journal_appended_seq(d->j);
        s->status = sl_journal_status(d->j);
        s->inflight = sl_journal_inflight(d->j);
        s->done = sl_journal_done(d->j);
        sl_journal_stats(d->j, &s->st);
        const sl_segment_index_t *ix = sl_journal_index(d->j);
        s->first_seq = sl_journal_first_seq(d->j);
        s->segments = sl_segment_index_count(ix);
        s->ix_bytes = sl_segment_index_bytes(ix);
        s->ix_events = sl_segment_index_events(ix);
        s->ix_payload = sl_segment_index_payload_bytes(ix);
    }
    s->disk_max = d->disk_max;
    sl_fdcache_stats(d->cache, &s->cache);
    memcpy(s->rd, d->rd, sizeof s->rd);
    s->efull = d->efull;
    s->appends = d->appends;
    s->append_err = d->append_err;
}

static void on_io(drv_t *d, sl_op_t *op)
{
    if (op == &d->timer) {
        d->timer_armed = false;
    } else if (op->user == TAG_JOURNAL) {
        CHECK(sl_journal_owns_op(d->j, op));
        uint64_t before = sl_journal_written_seq(d->j);
        sl_op_t copy = *op; /* the journal may reuse op at once */
        sl_journal_complete(d->j, op);
        if (d->trace) {
            trace_complete(d->trace, &copy, before, sl_journal_written_seq(d->j));
            trace_check(d->trace, sl_journal_synced_seq(d->j));
        }
    } else {
        CHECK_EQ(op->user & 0xff, TAG_READER);
        rdr_t *r = &d->rd[op->user >> 8];
        CHECK(sl_journal_reader_owns_op(r->r, op));
        if (d->trace) /* readers open and close fds the writer then shares */
            trace_complete(d->trace, op, 0, 0);
        sl_journal_reader_complete(r->r, op);
    }
}

static void drv_behavior(sl_actor_t *self, sl_msg_t *m)
{
    drv_t *d = (drv_t *)self;
    if (m->kind == SL_MSG_KIND_IO) {
        on_io(d, sl_op_from_msg(m));
    } else if (m->kind == SL_MSG_KIND_NOTIFY) {
        sl_actor_take_notify(self); /* the syncer finished a syncfs */
    } else {
        CHECK_EQ(m->kind, MSG_CMD);
        d->act(d, d->arg);
        d->waiting = true;
    }
    pump(d);
    if (d->waiting && d->until(d)) {
        take_snap(d);
        d->waiting = false;
        sem_post(&d->done);
    }
}

static void drv_destroy(sl_actor_t *self)
{
    (void)self;
}

/* Runs act on the driver, then waits until `until` holds there. */
static void drv_run(drv_t *d, act_fn act, void *arg, until_fn until)
{
    d->act = act;
    d->arg = arg;
    d->until = until;
    d->cmd = (sl_msg_t){.kind = MSG_CMD, .mclass = SL_MSG_CONTROL};
    CHECK_EQ(sl_actor_send(&d->a, &d->cmd), 0);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += WAIT_MS / 1000;
    int rc;
    while ((rc = sem_timedwait(&d->done, &ts)) != 0 && errno == EINTR) {
    }
    if (rc != 0) {
        fprintf(stderr, "driver condition not reached within %d ms\n", WAIT_MS);
        abort();
    }
}

/* ---- environment ----------------------------------------------------------- */

typedef struct env {
    int fds_before; /* open fds of the process before the test */
    sl_sched_t *sched;
    sl_reactor_t *reactor;
    drv_t *d;
    char dir[64];
    int dfd;
} env_t;

static sl_journal_config_t cfg_base(int dfd, sl_fdcache_t *cache, sl_journal_fsync_t fsync)
{
    return (sl_journal_config_t){
        .data_dir_fd = dfd,
        .fdcache = cache,
        .fdcache_lock = NULL, /* one actor uses the cache */
        .segment_bytes_max = SEG,
        .data_max = DMAX,
        .buffer_bytes = 16u << 10,
        .read_bytes = 0,
        .fsync = fsync,
        .fsync_interval_ns = 5 * SL_NS_PER_MS,
    };
}

static int count_fds(void)
{
    DIR *dir = opendir("/proc/self/fd");
    CHECK(dir != NULL);
    int n = 0;
    while (readdir(dir) != NULL)
        n++;
    closedir(dir);
    return n;
}

static void env_up(env_t *e, sl_journal_fsync_t fsync, uint32_t cache_cap)
{
    memset(e, 0, sizeof *e);
    e->fds_before = count_fds();
    snprintf(e->dir, sizeof e->dir, "/tmp/sl-journal-XXXXXX");
    CHECK(mkdtemp(e->dir) != NULL);
    e->dfd = open(e->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    CHECK(e->dfd >= 0);
    sl_sched_config_t sc = {.workers = 2, .batch = 16, .runq_capacity = 64};
    CHECK_EQ(sl_sched_create(&sc, &e->sched), 0);
    CHECK_EQ(sl_sched_start(e->sched), 0);
    sl_reactor_config_t rc = {
        .sq_entries = 64, .recv_buffers = 4, .recv_buffer_bytes = 4096, .lag_probe_ns = 0};
    CHECK_EQ(sl_reactor_create(&rc, 0, &e->reactor), 0);
    CHECK_EQ(sl_reactor_start(e->reactor), 0);
    drv_t *d = calloc(1, sizeof *d);
    CHECK(d != NULL);
    d->reactor = e->reactor;
    d->feed_next = 1; /* nothing to feed until told */
    d->watch_dfd = -1;
    CHECK_EQ(sl_fdcache_create(cache_cap, &d->cache), 0);
    d->cfg = cfg_base(e->dfd, d->cache, fsync);
    sem_init(&d->done, 0, 0);
    if (fsync != SL_JOURNAL_FSYNC_NEVER) {
        d->trace = calloc(1, sizeof *d->trace);
        CHECK(d->trace != NULL);
        d->trace->data_dir_fd = e->dfd;
    }
    sl_actor_init(&d->a, e->sched, "journal-driver", 64, drv_behavior, drv_destroy);
    e->d = d;
}

static void rm_tree(const char *path)
{
    DIR *dir = opendir(path);
    if (!dir)
        return;
    struct dirent *de;
    while ((de = readdir(dir)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        char sub[512];
        snprintf(sub, sizeof sub, "%s/%s", path, de->d_name);
        struct stat st;
        if (lstat(sub, &st) == 0 && S_ISDIR(st.st_mode))
            rm_tree(sub);
        else
            unlink(sub);
    }
    closedir(dir);
    rmdir(path);
}

static void env_down(env_t *e)
{
    drv_t *d = e->d;
    CHECK(d->j == NULL);            /* every test ends its journal */
    sl_reactor_destroy(e->reactor); /* an armed timer is abandoned here */
    sl_actor_release(&d->a);
    sl_sched_stop(e->sched);
    sl_sched_destroy(e->sched);
    sl_fdcache_stats_t cs;
    sl_fdcache_stats(d->cache, &cs);
    CHECK_EQ(cs.open, 0); /* the journal released every fd it cached */
    sl_fdcache_destroy(d->cache);
    sem_destroy(&d->done);
    free(d->trace);
    free(d);
    close(e->dfd);
    rm_tree(e->dir);
    /* Every fd the journal opened, evicted or refused was closed. */
    CHECK_EQ(count_fds(), e->fds_before);
}

/* ---- driver commands and conditions ---------------------------------------- */

static void act_create(drv_t *d, void *arg)
{
    const char *id = arg ? arg : ID;
    CHECK_EQ(sl_journal_create(&d->cfg, id, strlen(id), EPOCH, &d->j), 0);
}

static void act_feed(drv_t *d, void *arg)
{
    const uint64_t *range = arg;
    d->feed_next = range[0];
    d->feed_end = range[1];
}

/* Stops every reader and destroys those that are idle; returns true when
 * none is left. */
static bool drop_readers(drv_t *d)
{
    bool all = true;
    for (uint32_t i = 0; i < READERS_MAX; i++) {
        rdr_t *r = &d->rd[i];
        if (!r->r)
            continue;
        sl_journal_reader_stop(r->r);
        if (sl_journal_reader_idle(r->r)) {
            sl_journal_reader_destroy(r->r);
            r->r = NULL;
        } else {
            all = false;
        }
    }
    return all;
}

static void act_close(drv_t *d, void *arg)
{
    (void)arg;
    drop_readers(d);
    sl_journal_close(d->j);
}

static void act_remove(drv_t *d, void *arg)
{
    (void)arg;
    sl_journal_remove(d->j);
}

static void act_destroy(drv_t *d, void *arg)
{
    (void)arg;
    for (uint32_t i = 0; i < READERS_MAX; i++) {
        sl_journal_reader_destroy(d->rd[i].r);
        d->rd[i].r = NULL;
    }
    CHECK(sl_journal_done(d->j));
    sl_journal_destroy(d->j);
    d->j = NULL;
}

static bool until_now(drv_t *d)
{
    (void)d;
    return true;
}

static void act_noop(drv_t *d, void *arg)
{
    (void)d;
    (void)arg;
}

static bool until_idle(drv_t *d)
{
    return sl_journal_inflight(d->j) == 0;
}

/* Everything fed is written and (per policy) synced, nothing in flight. */
static bool until_fed(drv_t *d)
{
    sl_journal_t *j = d->j;
    return d->feed_next > d->feed_end && sl_journal_written_seq(j) == sl_journal_appended_seq(j) &&
           sl_journal_synced_seq(j) == sl_journal_written_seq(j) && sl_journal_inflight(j) == 0;
}

static bool until_written(drv_t *d)
{
    sl_journal_t *j = d->j;
    return d->feed_next > d->feed_end && sl_journal_written_seq(j) == sl_journal_appended_seq(j) &&
           sl_journal_inflight(j) == 0;
}

/* Readers must be gone before a close can finish: drop those that became
 * idle, and let the journal move on. */
static bool until_done(drv_t *d)
{
    bool had = false;
    for (uint32_t i = 0; i < READERS_MAX; i++)
        had |= d->rd[i].r != NULL;
    if (had) {
        if (!drop_readers(d))
            return false;
        pump(d);
    }
    return sl_journal_done(d->j);
}

static bool until_failed(drv_t *d)
{
    return sl_journal_status(d->j) != 0 && d->append_err != 0 && sl_journal_inflight(d->j) == 0;
}

/* Every reader with an object has reached the end and is idle. */
static bool until_readers(drv_t *d)
{
    for (uint32_t i = 0; i < READERS_MAX; i++) {
        rdr_t *r = &d->rd[i];
        if (!r->r)
            continue;
        if (r->status != SL_EAGAIN || !sl_journal_reader_idle(r->r))
            return false;
    }
    return true;
}

typedef struct reader_spec {
    uint64_t from;
    uint32_t budget;
} reader_spec_t;

static void act_readers(drv_t *d, void *arg)
{
    const reader_spec_t *spec = arg;
    for (uint32_t i = 0; spec[i].from != UINT64_MAX; i++) {
        CHECK(i < READERS_MAX);
        rdr_t *r = &d->rd[i];
        CHECK(r->r == NULL);
        memset(r, 0, sizeof *r);
        CHECK_EQ(sl_journal_reader_create(d->j, spec[i].from, &r->r), 0);
        r->expect = spec[i].from ? spec[i].from : 1;
        r->budget = spec[i].budget;
    }
}

static void end_journal(env_t *e)
{
    drv_run(e->d, act_close, NULL, until_done);
    drv_run(e->d, act_destroy, NULL, until_now);
}

/* ---- verifying the files --------------------------------------------------- */

static int64_t read_file(int dfd, const char *path, uint8_t **out)
{
    int fd = openat(dfd, path, O_RDONLY | O_CLOEXEC);
    CHECK(fd >= 0);
    struct stat st;
    CHECK_EQ(fstat(fd, &st), 0);
    uint8_t *buf = malloc((size_t)st.st_size + 1);
    CHECK(buf != NULL);
    CHECK_EQ(pread(fd, buf, (size_t)st.st_size, 0), st.st_size);
    close(fd);
    *out = buf;
    return st.st_size;
}

/* Scans one segment file: header, every record decodes (CRC), first seq
 * equals the name; checks each record against the generator in order. */
static uint64_t verify_segment(env_t *e, const char *id, const sl_segment_t *seg, uint64_t *expect)
{
    char path[256];
    CHECK(sl_segment_path(path, sizeof path, NULL, id, strlen(id), seg->first_seq) > 0);
    int fd = openat(e->dfd, path, O_RDONLY | O_CLOEXEC);
    CHECK(fd >= 0);
    sl_recovery_scan_t scan;
    CHECK_EQ(sl_recovery_scan_fd(fd, seg->first_seq, DMAX, &scan), 0);
    close(fd);
    CHECK(scan.header_ok);
    CHECK_EQ(scan.end, SL_RECOVERY_END_CLEAN);
    CHECK_EQ(scan.valid_bytes, scan.file_bytes);
    CHECK_EQ(scan.header.epoch, EPOCH);
    CHECK_EQ(scan.header.first_seq, seg->first_seq);
    uint8_t *buf;
    int64_t n = read_file(e->dfd, path, &buf);
    uint64_t records = 0;
    for (int64_t pos = SL_SEGMENT_HEADER_BYTES; pos < n;) {
        sl_record_view_t rec;
        CHECK_EQ(sl_record_decode(buf + pos, (size_t)(n - pos), DMAX, &rec), 0);
        *expect = next_logged(*expect);
        check_rec(&rec, *expect);
        (*expect)++;
        pos += rec.size;
        records++;
    }
    free(buf);
    CHECK_EQ(records, scan.events);
    return (uint64_t)n;
}

/* Recovers the session from its files and checks that it holds exactly the
 * logged seqs 1..last, in order, every CRC right. Returns the bytes on disk
 * and the segment count in *segs. */
static uint64_t verify_files(env_t *e, const char *id, uint64_t last, uint32_t *segs)
{
    sl_recovery_session_t rs;
    CHECK_EQ(sl_recovery_session(e->dir, id, strlen(id), NULL, SEG, DMAX, &rs), 0);
    CHECK_EQ(rs.segments_truncated, 0);
    CHECK_EQ(rs.segments_removed, 0);
    CHECK_EQ(rs.segments_damaged, 0);
    CHECK_EQ(rs.epoch, EPOCH);
    CHECK_EQ(sl_segment_index_last_seq(rs.index), last);
    CHECK_EQ(sl_segment_index_events(rs.index), count_logged(1, last));
    uint64_t expect = 1, bytes = 0;
    uint32_t n = sl_segment_index_count(rs.index);
    for (uint32_t i = 0; i < n; i++)
        bytes += verify_segment(e, id, sl_segment_index_at(rs.index, i), &expect);
    CHECK_EQ(next_logged(expect), next_logged(last + 1));
    sl_segment_index_destroy(rs.index);
    if (segs)
        *segs = n;
    return bytes;
}

/* ---- tests ---------------------------------------------------------------------- */

/* 10,000 records over many segment rolls with the given policy; checks
 * progress, stats and the files. */
static void run_policy(sl_journal_fsync_t policy)
{
    env_t e;
    env_up(&e, policy, 64);
    drv_t *d = e.d;
    drv_run(d, act_create, NULL, until_idle);
    uint64_t last = nth_logged(10000);
    uint64_t range[2] = {1, last};
    drv_run(d, act_feed, range, until_fed);
    CHECK_EQ(d->snap.appends, 10000);
    CHECK_EQ(d->snap.status, 0);
    CHECK_EQ(d->snap.written, last);
    CHECK_EQ(d->snap.synced, last);
    const sl_journal_stats_t *st = &d->snap.st;
    CHECK(st->writes > 0);
    if (policy == SL_JOURNAL_FSYNC_NEVER)
        CHECK_EQ(st->fsyncs, 0);
    else
        CHECK(st->fsyncs >= 2); /* data dir after mkdir, then segments */
    CHECK_EQ(st->fds_pinned, 0);
    if (policy == SL_JOURNAL_FSYNC_ALWAYS)
        CHECK(d->inflight_max >= 2); /* the next write overlapped a sync round */
    uint64_t written = st->bytes_written;
    fprintf(stderr,
            "  fsync=%d: writes=%llu fsyncs=%llu opens=%llu closes=%llu refused=%llu "
            "inflight_max=%u\n",
            (int)policy, (unsigned long long)st->writes, (unsigned long long)st->fsyncs,
            (unsigned long long)st->opens, (unsigned long long)st->closes,
            (unsigned long long)st->appends_refused, d->inflight_max);
    end_journal(&e);
    uint32_t segs;
    uint64_t bytes = verify_files(&e, ID, last, &segs);
    CHECK(segs >= 20); /* ~1.9 MB in 64 KiB segments */
    CHECK_EQ(bytes, written);
    env_down(&e);
}

static void test_journal_fsync_always(void)
{
    run_policy(SL_JOURNAL_FSYNC_ALWAYS);
}

/* A stream of appends under fsync=always in one big segment, with up to
 * OVERLAP extra syncs: with some, syncs of the newest segment overlap the
 * running round (the trace checks on every completion that synced_seq
 * never passes what an fsync covered); with none (the default), one sync is
 * in flight at a time. Either way every record ends synced. */
static void run_overlap(uint32_t overlap)
{
    env_t e;
    env_up(&e, SL_JOURNAL_FSYNC_ALWAYS, 64);
    drv_t *d = e.d;
    d->cfg.segment_bytes_max = 64u << 20;
    d->cfg.fsync_overlap = overlap;
    drv_run(d, act_create, NULL, until_idle);
    uint64_t last = nth_logged(10000);
    uint64_t range[2] = {1, last};
    drv_run(d, act_feed, range, until_fed);
    CHECK_EQ(d->snap.status, 0);
    CHECK_EQ(d->snap.synced, last);
    const sl_journal_stats_t *st = &d->snap.st;
    if (overlap)
        CHECK(st->fsyncs_overlapped > 0);
    else
        CHECK_EQ(st->fsyncs_overlapped, 0);
    CHECK_EQ(st->fds_pinned, 0);
    fprintf(stderr, "  overlap %u: writes=%llu fsyncs=%llu overlapped=%llu\n", overlap,
            (unsigned long long)st->writes, (unsigned long long)st->fsyncs,
            (unsigned long long)st->fsyncs_overlapped);
    end_journal(&e);
    verify_files(&e, ID, last, NULL);
    env_down(&e);
}

static void test_journal_overlapping_syncs(void)
{
    run_overlap(SL_JOURNAL_SYNCS_EXTRA);
}

static void test_journal_one_sync_in_flight(void)
{
    run_overlap(0);
}

static void test_journal_fsync_batch(void)
{
    run_policy(SL_JOURNAL_FSYNC_BATCH);
}

static void test_journal_fsync_never(void)
{
    run_policy(SL_JOURNAL_FSYNC_NEVER);
}

static bool until_synced_to_written(drv_t *d)
{
    return until_written(d) && sl_journal_synced_seq(d->j) == sl_journal_written_seq(d->j);
}

static void act_durable(drv_t *d, void *arg)
{
    d->durable = arg != NULL;
}

static void drv_sync_wake(void *ctx)
{
    drv_t *d = ctx;
    sl_actor_notify(&d->a, 1);
}

/* Group commit across journals: with fsync scope "fs" every round is one
 * syncfs on the shared syncer thread (no fdatasync of a segment at all),
 * durable appends are all synced in the end, and the files are whole. */
static void test_journal_syncfs_rounds(void)
{
    env_t e;
    env_up(&e, SL_JOURNAL_FSYNC_ALWAYS, 64);
    drv_t *d = e.d;
    sl_syncer_t *syncer = NULL;
    CHECK_EQ(sl_syncer_create(&syncer, e.dfd), 0);
    _Atomic uint32_t rounds = 0;
    d->cfg.syncer = syncer;
    d->cfg.rounds_active = &rounds;
    d->cfg.fsync_scope = SL_JOURNAL_SCOPE_FS;
    d->cfg.sync_wake = drv_sync_wake;
    d->cfg.sync_wake_ctx = d;
    free(d->trace); /* the trace knows fdatasyncs by fd, not a file system's sync */
    d->trace = NULL;
    drv_run(d, act_create, NULL, until_idle);
    uint64_t last = nth_logged(5000);
    uint64_t range[2] = {1, last};
    drv_run(d, act_feed, range, until_fed);
    drv_run(d, act_durable, d, until_synced_to_written);
    CHECK_EQ(d->snap.status, 0);
    CHECK_EQ(d->snap.synced, last);
    const sl_journal_stats_t *st = &d->snap.st;
    CHECK(st->syncfs_rounds > 0);
    CHECK(sl_syncer_syncs(syncer) > 0);
    CHECK(sl_syncer_syncs(syncer) <= st->syncfs_rounds); /* one syncfs may serve several */
    CHECK_EQ(st->fsyncs_overlapped, 0);
    fprintf(stderr, "  syncfs: writes=%llu rounds=%llu syncfs=%llu\n",
            (unsigned long long)st->writes, (unsigned long long)st->syncfs_rounds,
            (unsigned long long)sl_syncer_syncs(syncer));
    end_journal(&e);
    CHECK_EQ(atomic_load(&rounds), 0);
    verify_files(&e, ID, last, NULL);
    sl_syncer_destroy(syncer);
    env_down(&e);
}

/* Group commit: without a durable waiter the fsync waits for the interval
 * (the timer at sl_journal_deadline runs it); with one it starts at once. */
static void test_journal_batch_interval(void)
{
    env_t e;
    env_up(&e, SL_JOURNAL_FSYNC_BATCH, 8);
    drv_t *d = e.d;
    d->cfg.fsync_interval_ns = 300 * SL_NS_PER_MS;
    drv_run(d, act_create, NULL, until_idle);
    uint64_t r1[2] = {1, 20};
    drv_run(d, act_feed, r1, until_written);
    uint64_t t_written = sl_clock_now_ns();
    CHECK_EQ(d->snap.written, 20);
    CHECK(d->snap.synced < 20); /* nothing asked for it yet */
    drv_run(d, act_noop, NULL, until_synced_to_written);
    uint64_t waited = sl_clock_now_ns() - t_written;
    CHECK(waited >= 200 * SL_NS_PER_MS);
    CHECK(waited < 5 * SL_NS_PER_S);
    CHECK_EQ(d->snap.synced, 20);

    /* A durable waiter starts the round without waiting the interval. */
    drv_run(d, act_durable, d, until_now);
    uint64_t r2[2] = {21, 40};
    uint64_t t0 = sl_clock_now_ns();
    drv_run(d, act_feed, r2, until_synced_to_written);
    CHECK(sl_clock_now_ns() - t0 < 250 * SL_NS_PER_MS);
    CHECK_EQ(d->snap.synced, 40);
    end_journal(&e);
    verify_files(&e, ID, 40, NULL);
    env_down(&e);
}

/* Small buffers: appends made in one turn stop at SL_EFULL exactly when
 * both buffers are taken; the two buffers go out as one WRITEV; a record
 * bigger than a buffer gets its own; appends resume after the write. */
static void act_fill(drv_t *d, void *arg)
{
    (void)arg;
    static uint8_t data[10000];
    memset(data, 'z', sizeof data);
    uint32_t n = 0;
    int rc;
    for (uint64_t seq = 1; (rc = sl_journal_append(d->j, seq, seq, "x", 1, data, 470)) == 0; seq++)
        n++;
    CHECK_EQ(rc, SL_EFULL);
    /* 500-byte records: (4096 - 48 header) / 500 = 8, then 4096 / 500 = 8 */
    CHECK_EQ(n, 16);
    CHECK_EQ(sl_journal_append(d->j, 17, 17, "x", 1, data, 470), SL_EFULL);
    CHECK_EQ(sl_journal_append(d->j, 17, 17, "", 0, data, 1), SL_EINVAL);
    CHECK_EQ(sl_journal_append(d->j, 17, 17, "x", 1, data, DMAX + 1), SL_ETOOBIG);
    d->appends = n;
}

static void act_big(drv_t *d, void *arg)
{
    (void)arg;
    static uint8_t data[10000];
    memset(data, 'b', sizeof data);
    CHECK_EQ(sl_journal_append(d->j, 100, 100, "big", 3, data, sizeof data), 0);
    CHECK_EQ(sl_journal_append(d->j, 101, 101, "x", 1, data, 10), 0);
}

static void test_journal_full_buffers(void)
{
    env_t e;
    env_up(&e, SL_JOURNAL_FSYNC_NEVER, 8);
    drv_t *d = e.d;
    d->cfg.buffer_bytes = 4096;
    drv_run(d, act_create, NULL, until_idle);
    drv_run(d, act_fill, NULL, until_idle);
    CHECK_EQ(d->snap.written, 16);
    CHECK_EQ(d->snap.st.appends_refused, 2);
    CHECK_EQ(d->snap.st.writes, 1); /* both buffers, one WRITEV */
    CHECK_EQ(d->snap.st.bytes_written, SL_SEGMENT_HEADER_BYTES + 16 * 500);
    drv_run(d, act_big, NULL, until_idle);
    CHECK_EQ(d->snap.written, 101);
    CHECK_EQ(d->snap.st.bytes_written, SL_SEGMENT_HEADER_BYTES + 16 * 500 + 10032 + 40);
    end_journal(&e);
    sl_recovery_session_t rs;
    CHECK_EQ(sl_recovery_session(e.dir, ID, strlen(ID), NULL, SEG, DMAX, &rs), 0);
    CHECK_EQ(sl_segment_index_events(rs.index), 18);
    CHECK_EQ(sl_segment_index_last_seq(rs.index), 101);
    CHECK_EQ(sl_segment_index_payload_bytes(rs.index), 16 * 470 + 10000 + 10);
    sl_segment_index_destroy(rs.index);
    env_down(&e);
}

/* Writes a session, closes it, recovers it, and opens the recovered
 * journal in the driver. */
static void act_open_recovered(drv_t *d, void *arg)
{
    sl_recovery_session_t *rs = arg;
    CHECK_EQ(sl_journal_open_recovered(&d->cfg, ID, strlen(ID), rs->epoch, rs->index, &d->j), 0);
}

static void write_and_reopen(env_t *e, uint64_t last)
{
    drv_run(e->d, act_create, NULL, until_idle);
    uint64_t range[2] = {1, last};
    drv_run(e->d, act_feed, range, until_fed);
    end_journal(e);
    sl_recovery_session_t rs;
    CHECK_EQ(sl_recovery_session(e->dir, ID, strlen(ID), NULL, SEG, DMAX, &rs), 0);
    CHECK_EQ(sl_segment_index_last_seq(rs.index), last);
    drv_run(e->d, act_open_recovered, &rs, until_now);
}

/* Catch-up readers over a recovered log with a 2-fd cache: from the start,
 * the middle, a skipped seq, a segment's first seq, the seq just before a
 * segment, past the end; some take few records per turn. Every record is
 * checked byte for byte and every reader ends exactly at the last one. */
static void test_journal_reader_catchup(void)
{
    env_t e;
    env_up(&e, SL_JOURNAL_FSYNC_BATCH, 2);
    drv_t *d = e.d;
    uint64_t last = nth_logged(10000);
    write_and_reopen(&e, last);
    const sl_segment_index_t *ix = sl_journal_index(d->j); /* read-only, driver idle */
    CHECK(sl_segment_index_count(ix) > 6);
    uint64_t seg5 = sl_segment_index_at(ix, 5)->first_seq;
    uint64_t gap = 5000;
    while (logged(gap))
        gap++;
    reader_spec_t spec[] = {{0, 0},        {5000, 0},     {gap, 3},  {seg5, 0},
                            {seg5 - 1, 7}, {last + 1, 0}, {1, 1000}, {UINT64_MAX, 0}};
    drv_run(d, act_readers, spec, until_readers);
    for (uint32_t i = 0; spec[i].from != UINT64_MAX; i++) {
        const rdr_t *r = &d->snap.rd[i];
        uint64_t from = spec[i].from ? spec[i].from : 1;
        CHECK_EQ(r->status, SL_EAGAIN);
        CHECK_EQ(r->got, from > last ? 0 : count_logged(from, last));
        CHECK_EQ(r->next_seq, from > last ? from : last + 1);
    }
    const sl_journal_stats_t *st = &d->snap.st;
    CHECK_EQ(st->readers, 7);
    CHECK(st->reads > 0);
    CHECK_EQ(st->records_read, count_logged(1, last) * 2 + count_logged(5000, last) +
                                   count_logged(gap, last) + count_logged(seg5, last) +
                                   count_logged(seg5 - 1, last));
    fprintf(stderr, "  catch-up: reads=%llu fd_waits=%llu evictions=%llu closes=%llu\n",
            (unsigned long long)st->reads, (unsigned long long)st->fd_waits,
            (unsigned long long)d->snap.cache.evictions, (unsigned long long)st->closes);
    CHECK(d->snap.cache.evictions > 0); /* 2 fds for ~30 segments */
    CHECK(d->snap.cache.open <= 2);
    end_journal(&e);
    env_down(&e);
}

/* Readers follow a log while it grows: they catch up (SL_EAGAIN), more is
 * appended to the recovered journal, and they continue across the old and
 * new records, never beyond written_seq. The files then hold both. */
static bool until_fed_and_read(drv_t *d)
{
    if (!until_fed(d))
        return false;
    for (uint32_t i = 0; i < READERS_MAX; i++) {
        rdr_t *r = &d->rd[i];
        if (r->r && (r->status != SL_EAGAIN || next_logged(r->expect) <= d->feed_end))
            return false;
    }
    return true;
}

static void test_journal_recovered_append_and_live_readers(void)
{
    env_t e;
    env_up(&e, SL_JOURNAL_FSYNC_ALWAYS, 4);
    drv_t *d = e.d;
    write_and_reopen(&e, 3000);
    CHECK_EQ(sl_journal_written_seq(d->j), 3000); /* driver idle: safe to read */
    reader_spec_t spec[] = {{1, 0}, {2990, 2}, {UINT64_MAX, 0}};
    drv_run(d, act_readers, spec, until_readers);
    CHECK_EQ(d->snap.rd[0].got, count_logged(1, 3000));
    uint64_t range[2] = {3001, 6000};
    drv_run(d, act_feed, range, until_fed_and_read);
    CHECK_EQ(d->snap.written, 6000);
    CHECK_EQ(d->snap.rd[0].got, count_logged(1, 6000));
    CHECK_EQ(d->snap.rd[1].got, count_logged(2990, 6000));
    fprintf(stderr, "  live: writes=%llu reads=%llu fd_waits=%llu evictions=%llu closes=%llu\n",
            (unsigned long long)d->snap.st.writes, (unsigned long long)d->snap.st.reads,
            (unsigned long long)d->snap.st.fd_waits, (unsigned long long)d->snap.cache.evictions,
            (unsigned long long)d->snap.st.closes);
    end_journal(&e);
    verify_files(&e, ID, 6000, NULL);
    env_down(&e);
}

/* A write error (RLIMIT_FSIZE: a short write, then EFBIG) fails the
 * journal: appends return -EIO, written_seq stops at the last whole
 * batch, readers still read what was committed, close releases the fds,
 * and recovery keeps a valid prefix. */
static void test_journal_write_error_fails(void)
{
    env_t e;
    env_up(&e, SL_JOURNAL_FSYNC_BATCH, 8);
    drv_t *d = e.d;
    d->cfg.segment_bytes_max = 1u << 20;
    drv_run(d, act_create, NULL, until_idle);
    struct rlimit old, lim;
    CHECK_EQ(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = 100u << 10;
    signal(SIGXFSZ, SIG_IGN);
    CHECK_EQ(setrlimit(RLIMIT_FSIZE, &lim), 0);
    uint64_t range[2] = {1, 5000};
    drv_run(d, act_feed, range, until_failed);
    CHECK_EQ(setrlimit(RLIMIT_FSIZE, &old), 0);
    CHECK_EQ(d->snap.status, -EFBIG);
    CHECK_EQ(d->snap.append_err, -EIO);
    CHECK(d->snap.written > 0);
    CHECK(d->snap.written < d->snap.appended);
    CHECK(d->snap.st.short_writes >= 1);
    CHECK(d->snap.st.bytes_written <= 100u << 10);
    uint64_t written = d->snap.written;
    reader_spec_t spec[] = {{1, 0}, {UINT64_MAX, 0}};
    drv_run(d, act_readers, spec, until_readers);
    CHECK_EQ(d->snap.rd[0].got, count_logged(1, written));
    end_journal(&e);
    sl_recovery_session_t rs;
    CHECK_EQ(sl_recovery_session(e.dir, ID, strlen(ID), NULL, 1u << 20, DMAX, &rs), 0);
    uint64_t rlast = sl_segment_index_last_seq(rs.index);
    CHECK(rlast >= written);
    CHECK_EQ(sl_segment_index_events(rs.index), count_logged(1, rlast));
    sl_segment_index_destroy(rs.index);
    env_down(&e);
}

static bool dir_is_empty(const char *path)
{
    DIR *dir = opendir(path);
    CHECK(dir != NULL);
    struct dirent *de;
    int n = 0;
    while ((de = readdir(dir)) != NULL)
        n += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
    closedir(dir);
    return n == 0;
}

/* Remove renames the folder away, unlinks every segment and the folder:
 * the data dir ends empty. Works on a live journal with appends pending,
 * and on one removed before its folder was made. */
static bool until_removed(drv_t *d)
{
    return sl_journal_done(d->j);
}

static void act_create_remove(drv_t *d, void *arg)
{
    act_create(d, arg);
    sl_journal_remove(d->j);
}

static void test_journal_remove(void)
{
    env_t e;
    env_up(&e, SL_JOURNAL_FSYNC_BATCH, 4);
    drv_t *d = e.d;
    drv_run(d, act_create, NULL, until_idle);
    uint64_t range[2] = {1, 4000};
    drv_run(d, act_feed, range, until_written);
    struct stat st;
    CHECK_EQ(fstatat(e.dfd, ID, &st, 0), 0);
    uint64_t more[2] = {4001, 4100};
    drv_run(d, act_feed, more, until_now); /* appends still buffered */
    drv_run(d, act_remove, NULL, until_removed);
    CHECK_EQ(d->snap.status, 0);
    CHECK_EQ(sl_journal_remove_status(d->j), 0);
    CHECK(d->snap.st.closes > 0);
    CHECK_EQ(d->snap.cache.open, 0);
    CHECK_EQ(sl_journal_append(d->j, 5000, 1, "x", 1, "", 0), SL_ECLOSED);
    drv_run(d, act_destroy, NULL, until_now);
    CHECK(dir_is_empty(e.dir));

    /* Removed before the first next_op: no folder, no op at all. */
    drv_run(d, act_create_remove, "sess-2", until_removed);
    CHECK_EQ(d->snap.st.opens, 0);
    CHECK_EQ(d->snap.st.fsyncs, 0);
    drv_run(d, act_destroy, NULL, until_now);
    CHECK(dir_is_empty(e.dir));
    env_down(&e);
}

/* A create whose folder exists fails the journal (-EEXIST); close still
 * ends cleanly and the folder is left alone. */
static void test_journal_create_exists(void)
{
    env_t e;
    env_up(&e, SL_JOURNAL_FSYNC_ALWAYS, 4);
    drv_t *d = e.d;
    CHECK_EQ(mkdirat(e.dfd, ID, 0755), 0);
    drv_run(d, act_create, NULL, until_idle);
    CHECK_EQ(d->snap.status, -EEXIST);
    uint64_t range[2] = {1, 10};
    drv_run(d, act_feed, range, until_idle);
    CHECK_EQ(d->snap.append_err, -EIO);
    end_journal(&e);
    struct stat st;
    CHECK_EQ(fstatat(e.dfd, ID, &st, 0), 0);
    env_down(&e);
}

/* With mkdir_wait_ns, a create whose folder exists waits for it to go (a
 * deleted incarnation's removal still running) and then proceeds. */
static void test_journal_create_waits_for_old_folder(void)
{
    env_t e;
    env_up(&e, SL_JOURNAL_FSYNC_ALWAYS, 4);
    drv_t *d = e.d;
    d->cfg.mkdir_wait_ns = 2 * SL_NS_PER_S;
    CHECK_EQ(mkdirat(e.dfd, ID, 0755), 0);
    drv_run(d, act_create, NULL, until_now);
    nanosleep(&(struct timespec){0, 50 * 1000 * 1000}, NULL);
    CHECK_EQ(unlinkat(e.dfd, ID, AT_REMOVEDIR), 0); /* the old one is gone */
    uint64_t range[2] = {1, 10};
    drv_run(d, act_feed, range, until_idle);
    CHECK_EQ(d->snap.status, 0);
    CHECK_EQ(d->snap.append_err, 0);
    end_journal(&e);
    env_down(&e);
}

/* The startup sweep removes what an unfinished remove left, nothing else. */
static void test_journal_sweep_removed(void)
{
    char dir[] = "/tmp/sl-journal-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    CHECK(dfd >= 0);
    CHECK_EQ(mkdirat(dfd, ".rm-0000000000000001-a", 0755), 0);
    for (int i = 0; i < 3; i++) {
        char p[128];
        snprintf(p, sizeof p, ".rm-0000000000000001-a/%020d.seg", i + 1);
        int fd = openat(dfd, p, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
        CHECK(fd >= 0);
        close(fd);
    }
    CHECK_EQ(mkdirat(dfd, ".rm-0000000000000002-b", 0755), 0);
    CHECK_EQ(mkdirat(dfd, "keep", 0755), 0);
    int fd = openat(dfd, ".manifest", O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
    CHECK(fd >= 0);
    close(fd);
    CHECK_EQ(sl_journal_sweep_removed(dir), 2);
    struct stat st;
    CHECK(fstatat(dfd, ".rm-0000000000000001-a", &st, 0) != 0);
    CHECK(fstatat(dfd, ".rm-0000000000000002-b", &st, 0) != 0);
    CHECK_EQ(fstatat(dfd, "keep", &st, 0), 0);
    CHECK_EQ(fstatat(dfd, ".manifest", &st, 0), 0);
    CHECK_EQ(sl_journal_sweep_removed(dir), 0);
    CHECK_EQ(sl_journal_sweep_removed("/nonexistent/sl-journal"), -ENOENT);
    close(dfd);
    rm_tree(dir);
}

/* ---- retention ---------------------------------------------------------------- */

typedef struct retention {
    uint64_t bytes_max, age_ns;
} retention_t;

static void act_retention(drv_t *d, void *arg)
{
    const retention_t *rt = arg;
    sl_journal_set_retention(d->j, rt->bytes_max, rt->age_ns);
}

/* A reader for the retention tests: gaps_ok lets retention make it jump. */
typedef struct gap_reader_spec {
    uint64_t from;
    uint32_t budget;
    bool gaps_ok;
} gap_reader_spec_t;

/* Adds readers in the free slots, lowest first. */
static void act_more_readers(drv_t *d, void *arg)
{
    const gap_reader_spec_t *spec = arg;
    uint32_t i = 0;
    for (uint32_t k = 0; spec[k].from != UINT64_MAX; k++) {
        while (i < READERS_MAX && d->rd[i].r)
            i++;
        CHECK(i < READERS_MAX);
        rdr_t *r = &d->rd[i];
        memset(r, 0, sizeof *r);
        CHECK_EQ(sl_journal_reader_create(d->j, spec[k].from, &r->r), 0);
        r->expect = spec[k].from ? spec[k].from : 1;
        r->budget = spec[k].budget;
        r->gaps_ok = spec[k].gaps_ok;
    }
}

/* No fd of a removed segment is left in the cache (driver thread: the
 * cache has no lock in these tests). */
static void act_check_cache(drv_t *d, void *arg)
{
    (void)arg;
    uint64_t first = sl_journal_first_seq(d->j);
    for (uint64_t k = 1; k < first; k++)
        CHECK_EQ(sl_fdcache_lookup(d->cache, EPOCH, k, false), SL_ENOTFOUND);
}

/* Sets an age bound that the oldest segment passes *arg ns from now, and
 * notes what the journal then expects: the segment's newest record time,
 * the bound, and the deadline the journal asks for. */
static void act_age_probe(drv_t *d, void *arg)
{
    const uint64_t *ahead_ns = arg;
    d->track_drops = true;
    d->last_count = sl_segment_index_count(sl_journal_index(d->j));
    d->first_drop_wall = 0;
    d->probe_ts = sl_segment_index_at(sl_journal_index(d->j), 0)->last_ts_ns;
    d->probe_age = sl_clock_wall_ns() - d->probe_ts + *ahead_ns;
    sl_journal_set_retention(d->j, 0, d->probe_age);
    d->probe_mono = sl_clock_now_ns();
    d->probe_wall = sl_clock_wall_ns();
    d->probe_deadline = sl_journal_retention_deadline(d->j);
}

static bool until_segments_1(drv_t *d)
{
    return sl_segment_index_count(sl_journal_index(d->j)) == 1 && sl_journal_inflight(d->j) == 0;
}

/* The folder holds exactly the index's segment files; returns their bytes. */
static uint64_t check_folder_matches(env_t *e, const snap_t *s, const sl_journal_t *j)
{
    const sl_segment_index_t *ix = sl_journal_index(j); /* driver idle */
    uint32_t files;
    uint64_t bytes = folder_bytes(e->dfd, &files);
    CHECK_EQ(files, s->segments);
    CHECK_EQ(bytes, s->ix_bytes);
    for (uint32_t i = 0; i < s->segments; i++) {
        char path[256];
        struct stat st;
        uint64_t first = sl_segment_index_at(ix, i)->first_seq;
        CHECK(sl_segment_path(path, sizeof path, NULL, ID, strlen(ID), first) > 0);
        CHECK_EQ(fstatat(e->dfd, path, &st, 0), 0);
        CHECK_EQ(st.st_size, sl_segment_index_at(ix, i)->bytes);
    }
    return bytes;
}

/* After close: recovery finds exactly the retained records first..last,
 * every one intact, and nothing damaged. */
static void verify_retained(env_t *e, uint64_t first, uint64_t last)
{
    sl_recovery_session_t rs;
    CHECK_EQ(sl_recovery_session(e->dir, ID, strlen(ID), NULL, SEG, DMAX, &rs), 0);
    CHECK_EQ(rs.segments_truncated, 0);
    CHECK_EQ(rs.segments_removed, 0);
    CHECK_EQ(rs.segments_damaged, 0);
    CHECK_EQ(sl_segment_index_first_seq(rs.index), first);
    CHECK_EQ(sl_segment_index_last_seq(rs.index), last);
    CHECK_EQ(sl_segment_index_events(rs.index), count_logged(first, last));
    uint64_t expect = first;
    for (uint32_t i = 0; i < sl_segment_index_count(rs.index); i++)
        verify_segment(e, ID, sl_segment_index_at(rs.index, i), &expect);
    CHECK_EQ(next_logged(expect), next_logged(last + 1));
    sl_segment_index_destroy(rs.index);
}

static uint64_t payload_of(uint64_t first, uint64_t last)
{
    static gen_rec_t g;
    uint64_t n = 0;
    for (uint64_t s = first; s <= last; s++) {
        if (logged(s)) {
            gen(s, &g);
            n += g.data_len;
        }
    }
    return n;
}

/* Retention by bytes (3 segments of 64 KiB) over 10,000 records: the
 * oldest files are unlinked as the log grows, the folder never holds more
 * than the bound plus one segment, a reader that lags across removals
 * keeps going (jumping forward, never failing), a reader from seq 1 starts
 * at the oldest retained record, the stats add up exactly, no fd of a
 * removed segment stays cached, and what is left recovers cleanly. */
static void run_retention_bytes(sl_journal_fsync_t policy)
{
    env_t e;
    env_up(&e, policy, 4);
    drv_t *d = e.d;
    uint64_t bound = 3 * (uint64_t)SEG;
    retention_t rt = {.bytes_max = bound, .age_ns = 0};
    drv_run(d, act_create, NULL, until_idle);
    drv_run(d, act_retention, &rt, until_now);
    gap_reader_spec_t slow[] = {{1, 2, true}, {UINT64_MAX, 0, false}};
    drv_run(d, act_more_readers, slow, until_now);
    d->watch_dfd = e.dfd;
    uint64_t last = nth_logged(10000);
    uint64_t range[2] = {1, last};
    drv_run(d, act_feed, range, until_fed_and_read);
    d->watch_dfd = -1;
    const snap_t *s = &d->snap;
    const sl_journal_stats_t *st = &s->st;
    fprintf(stderr,
            "  retention fsync=%d: removed=%llu waits=%llu segments=%u disk_max=%llu "
            "slow reader gaps=%llu lost=%llu\n",
            (int)policy, (unsigned long long)st->segments_removed,
            (unsigned long long)st->retention_waits, s->segments, (unsigned long long)s->disk_max,
            (unsigned long long)s->rd[0].gaps, (unsigned long long)s->rd[0].lost);
    CHECK_EQ(s->status, 0);
    CHECK_EQ(s->written, last);
    /* Removed and retained add up to everything written. */
    CHECK(st->segments_removed >= 20);
    CHECK_EQ(st->bytes_removed + s->ix_bytes, st->bytes_written);
    CHECK_EQ(st->events_removed + s->ix_events, 10000);
    CHECK_EQ(st->payload_bytes_removed + s->ix_payload, payload_of(1, last));
    CHECK_EQ(st->unlink_errors, 0);
    CHECK(s->first_seq > 1);
    CHECK_EQ(s->ix_events, count_logged(s->first_seq, last));
    CHECK(s->segments >= 2);
    CHECK(s->ix_bytes <= bound);
    CHECK(s->disk_max <= bound + SEG);
    uint64_t bytes = check_folder_matches(&e, s, d->j);
    CHECK(bytes <= bound);
    /* The slow reader went on across removals: it lost records to them but
     * never stopped, and read up to the end. */
    const rdr_t *slow_r = &s->rd[0];
    CHECK_EQ(slow_r->status, SL_EAGAIN);
    CHECK(slow_r->gaps >= 1);
    CHECK_EQ(slow_r->first, 1);
    CHECK_EQ(slow_r->got + slow_r->lost, 10000);
    CHECK_EQ(slow_r->expect, last + 1);

    /* A reader from 1 starts at the oldest retained record: its first
     * record is later than asked, which the owner names in a gap. */
    uint64_t first = s->first_seq;
    gap_reader_spec_t fresh[] = {{1, 0, true}, {first, 0, false}, {UINT64_MAX, 0, false}};
    drv_run(d, act_more_readers, fresh, until_readers);
    CHECK_EQ(s->rd[1].first, first);
    CHECK_EQ(s->rd[1].gaps, 1);
    CHECK_EQ(s->rd[1].lost, count_logged(1, first - 1));
    CHECK_EQ(s->rd[1].got, count_logged(first, last));
    CHECK_EQ(s->rd[2].got, count_logged(first, last));
    CHECK_EQ(s->rd[2].gaps, 0);
    drv_run(d, act_check_cache, NULL, until_now);
    end_journal(&e);
    verify_retained(&e, first, last);
    env_down(&e);
}

static void test_journal_retention_bytes(void)
{
    run_retention_bytes(SL_JOURNAL_FSYNC_NEVER);
}

static void test_journal_retention_bytes_synced(void)
{
    run_retention_bytes(SL_JOURNAL_FSYNC_BATCH);
}

/* Retention by age with injected record times: records stamped near the
 * epoch expire at once, except in the last segment, which is never
 * removed; records stamped now are kept under a 1 h bound; a short bound
 * then removes them when it passes, by the journal's deadline alone (no
 * append, no completion), and again never the last segment. */
static void test_journal_retention_age(void)
{
    env_t e;
    env_up(&e, SL_JOURNAL_FSYNC_ALWAYS, 4);
    drv_t *d = e.d;
    retention_t hour = {.bytes_max = 0, .age_ns = 3600 * SL_NS_PER_S};
    drv_run(d, act_create, NULL, until_idle);
    drv_run(d, act_retention, &hour, until_now);
    uint64_t old_last = nth_logged(3000);
    uint64_t r1[2] = {1, old_last};
    drv_run(d, act_feed, r1, until_fed);
    drv_run(d, act_noop, NULL, until_segments_1);
    CHECK_EQ(d->snap.segments, 1);
    CHECK(d->snap.st.segments_removed >= 5);
    CHECK_EQ(d->snap.st.bytes_removed + d->snap.ix_bytes, d->snap.st.bytes_written);
    uint64_t kept_first = d->snap.first_seq;
    CHECK(kept_first > 1);
    CHECK_EQ(check_folder_matches(&e, &d->snap, d->j), d->snap.ix_bytes);

    /* Recent records: nothing goes, even the segment that holds both old
     * and new records (its newest record counts). */
    recent_from = old_last + 1;
    recent_base = sl_clock_wall_ns();
    uint64_t new_last = nth_logged(6000);
    uint64_t removed = d->snap.st.segments_removed;
    uint64_t r2[2] = {old_last + 1, new_last};
    drv_run(d, act_feed, r2, until_fed);
    CHECK_EQ(d->snap.st.segments_removed, removed);
    CHECK_EQ(d->snap.first_seq, kept_first);
    CHECK(d->snap.segments >= 5);

    /* A bound the oldest segment passes 300 ms from now: nothing goes
     * before, and the journal's deadline names that moment. */
    uint64_t ahead = 300 * SL_NS_PER_MS;
    drv_run(d, act_age_probe, &ahead, until_now);
    CHECK(d->probe_ts >= recent_base);
    uint64_t expiry = d->probe_ts + d->probe_age;
    CHECK(d->probe_wall < expiry);
    CHECK(d->probe_deadline > d->probe_mono);
    uint64_t left = d->probe_deadline - d->probe_mono;
    CHECK(left <= expiry - d->probe_wall + SL_NS_PER_MS);
    CHECK(left + SL_NS_PER_MS >= expiry - d->probe_wall);
    drv_run(d, act_noop, NULL, until_segments_1);
    CHECK(d->first_drop_wall >= expiry);
    CHECK(sl_clock_wall_ns() - expiry < 5 * SL_NS_PER_S);
    d->track_drops = false; /* driver idle */
    CHECK_EQ(d->snap.segments, 1);
    CHECK(d->snap.st.segments_removed > removed);
    CHECK_EQ(d->snap.st.events_removed + d->snap.ix_events, 6000);
    CHECK_EQ(d->snap.written, new_last);
    uint64_t first = d->snap.first_seq;
    CHECK(first > kept_first);
    gap_reader_spec_t from1[] = {{1, 0, true}, {UINT64_MAX, 0, false}};
    drv_run(d, act_more_readers, from1, until_readers);
    CHECK_EQ(d->snap.rd[0].first, first);
    CHECK_EQ(d->snap.rd[0].got, count_logged(first, new_last));
    drv_run(d, act_check_cache, NULL, until_now);
    end_journal(&e);
    verify_retained(&e, first, new_last);
    recent_from = UINT64_MAX;
    env_down(&e);
}

/* A recovered log: bytes and age retention apply at once (its segments
 * are on disk and synced, and the scan found their newest record times);
 * a record committed later keeps its segment young. */
static void test_journal_retention_recovered(void)
{
    env_t e;
    env_up(&e, SL_JOURNAL_FSYNC_BATCH, 4);
    drv_t *d = e.d;
    uint64_t last = nth_logged(6000);
    write_and_reopen(&e, last);
    uint32_t n0 = sl_segment_index_count(sl_journal_index(d->j)); /* driver idle */
    CHECK(n0 >= 12);
    retention_t age = {.bytes_max = 0, .age_ns = 1};
    drv_run(d, act_retention, &age, until_idle);
    /* A scanned segment knows its newest record time (recovery reads it),
     * so every segment but the last is past a 1 ns age at once. */
    CHECK_EQ(d->snap.st.segments_removed, n0 - 1);
    retention_t bytes = {.bytes_max = 6 * (uint64_t)SEG, .age_ns = 0};
    drv_run(d, act_retention, &bytes, until_idle);
    CHECK(d->snap.st.segments_removed >= n0 - 6);
    CHECK(d->snap.ix_bytes <= 6 * (uint64_t)SEG);
    CHECK_EQ(d->snap.segments, n0 - d->snap.st.segments_removed);
    check_folder_matches(&e, &d->snap, d->j);
    /* One record stamped now makes every recovered segment that old. */
    recent_from = last + 1;
    recent_base = sl_clock_wall_ns();
    drv_run(d, act_retention, &age, until_now);
    uint64_t r[2] = {last + 1, last + 1};
    drv_run(d, act_feed, r, until_fed);
    drv_run(d, act_noop, NULL, until_segments_1);
    CHECK_EQ(d->snap.segments, 1);
    CHECK_EQ(d->snap.written, last + 1);
    check_folder_matches(&e, &d->snap, d->j);
    uint64_t first = d->snap.first_seq;
    drv_run(d, act_check_cache, NULL, until_now);
    end_journal(&e);
    verify_retained(&e, first, last + 1);
    recent_from = UINT64_MAX;
    env_down(&e);
}

/* ---- retention against readers, step by step --------------------------------- */

/* The test thread owns the journal and performs each op itself with plain
 * syscalls, in an order it picks, to pin down the races between a reader
 * and the removal of the segment it is about to open or read. */
static void exec_op(sl_op_t *op)
{
    long r;
    switch (op->kind) {
    case SL_OP_OPENAT:
        r = openat(op->fd, op->path, (int)op->flags | O_CLOEXEC, (mode_t)op->mode);
        break;
    case SL_OP_READ:
        r = pread(op->fd, op->buf, op->len, (off_t)op->offset);
        break;
    case SL_OP_WRITE:
        r = pwrite(op->fd, op->buf, op->len, (off_t)op->offset);
        break;
    case SL_OP_WRITEV:
        r = pwritev(op->fd, op->iov, (int)op->iovcnt, (off_t)op->offset);
        break;
    case SL_OP_FSYNC:
        r = (op->flags & IORING_FSYNC_DATASYNC) ? fdatasync(op->fd) : fsync(op->fd);
        break;
    case SL_OP_CLOSE:
        r = close(op->fd);
        break;
    case SL_OP_MKDIRAT:
        r = mkdirat(op->fd, op->path, (mode_t)op->mode);
        break;
    case SL_OP_UNLINKAT:
        r = unlinkat(op->fd, op->path, (int)op->flags);
        break;
    default:
        CHECK(!"unexpected op kind");
        return;
    }
    op->res = r < 0 ? -errno : (int32_t)r;
}

/* Runs the journal's ops until it has none due now. */
static void drive_sync(sl_journal_t *j)
{
    for (int guard = 0; guard < 100000; guard++) {
        sl_op_t *op = sl_journal_next_op(j, sl_clock_now_ns());
        if (!op)
            return;
        exec_op(op);
        sl_journal_complete(j, op);
    }
    CHECK(!"journal ops did not settle");
}

static void append_sync(sl_journal_t *j, uint64_t from, uint64_t to)
{
    static gen_rec_t g;
    for (uint64_t seq = from; seq <= to; seq++) {
        if (!logged(seq))
            continue;
        gen(seq, &g);
        int rc;
        for (int guard = 0; (rc = sl_journal_append(j, seq, g.ts_ns, g.type, g.type_len, g.data,
                                                    g.data_len)) == SL_EFULL;
             guard++) {
            CHECK(guard < 100);
            drive_sync(j);
        }
        CHECK_EQ(rc, 0);
    }
    drive_sync(j);
}

typedef struct step_reader {
    sl_journal_reader_t *r;
    uint64_t first, last, got;
} step_reader_t;

/* Takes what the reader has read, checking each record and that seqs grow
 * (jumps are retention's). */
static void step_take(step_reader_t *sr)
{
    sl_record_view_t rec;
    while (sl_journal_reader_next(sr->r, &rec) == 1) {
        CHECK(rec.seq > sr->last);
        CHECK(logged(rec.seq));
        check_rec(&rec, rec.seq);
        if (sr->first == 0)
            sr->first = rec.seq;
        sr->last = rec.seq;
        sr->got++;
    }
}

/* Reads to the end, waiting out retry deadlines. */
static void step_read_all(step_reader_t *sr)
{
    for (int guard = 0; guard < 100000; guard++) {
        step_take(sr);
        sl_op_t *op = sl_journal_reader_next_op(sr->r, sl_clock_now_ns());
        if (op) {
            exec_op(op);
            sl_journal_reader_complete(sr->r, op);
            continue;
        }
        if (sl_journal_reader_status(sr->r) != 0)
            break;
        uint64_t dl = sl_journal_reader_deadline(sr->r);
        CHECK(dl != 0); /* reading, no op, no deadline: stuck */
        uint64_t now = sl_clock_now_ns();
        if (dl > now)
            nanosleep(&(struct timespec){0, (long)(dl - now)}, NULL);
    }
    CHECK_EQ(sl_journal_reader_status(sr->r), SL_EAGAIN);
}

static void step_reader_end(step_reader_t *sr)
{
    sl_journal_reader_stop(sr->r);
    for (int guard = 0; guard < 10 && !sl_journal_reader_idle(sr->r); guard++) {
        sl_op_t *op = sl_journal_reader_next_op(sr->r, sl_clock_now_ns());
        CHECK(op != NULL);
        exec_op(op);
        sl_journal_reader_complete(sr->r, op);
    }
    sl_journal_reader_destroy(sr->r);
    sr->r = NULL;
}

/* Drops exactly the oldest segment: a bytes bound just below what is kept. */
static void retain_all_but_first(sl_journal_t *j)
{
    const sl_segment_index_t *ix = sl_journal_index(j);
    uint64_t bound = sl_segment_index_placed_bytes(ix) - sl_segment_index_at(ix, 0)->bytes;
    sl_journal_set_retention(j, bound, 0);
}

static bool segment_file_exists(int dfd, uint64_t seg)
{
    char path[256];
    CHECK(sl_segment_path(path, sizeof path, NULL, ID, strlen(ID), seg) > 0);
    struct stat st;
    return fstatat(dfd, path, &st, 0) == 0;
}

/* A log of ~8 segments owned by the test thread, with a 2-fd cache so
 * that the oldest segments' fds are evicted. */
typedef struct race {
    int fds_before;
    char dir[32];
    int dfd;
    sl_fdcache_t *cache;
    sl_journal_t *j;
    const sl_segment_index_t *ix;
    uint64_t last;
} race_t;

static void race_up(race_t *x)
{
    memset(x, 0, sizeof *x);
    x->fds_before = count_fds();
    snprintf(x->dir, sizeof x->dir, "/tmp/sl-journal-XXXXXX");
    CHECK(mkdtemp(x->dir) != NULL);
    x->dfd = open(x->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    CHECK(x->dfd >= 0);
    CHECK_EQ(sl_fdcache_create(2, &x->cache), 0);
    sl_journal_config_t cfg = cfg_base(x->dfd, x->cache, SL_JOURNAL_FSYNC_NEVER);
    CHECK_EQ(sl_journal_create(&cfg, ID, strlen(ID), EPOCH, &x->j), 0);
    drive_sync(x->j);
    x->last = nth_logged(3000);
    append_sync(x->j, 1, x->last);
    CHECK_EQ(sl_journal_written_seq(x->j), x->last);
    x->ix = sl_journal_index(x->j);
    CHECK(sl_segment_index_count(x->ix) >= 7);
}

/* Closes the journal; no fd is left cached, pinned or open. */
static void race_down(race_t *x)
{
    sl_journal_close(x->j);
    drive_sync(x->j);
    CHECK(sl_journal_done(x->j));
    sl_journal_stats_t st;
    sl_journal_stats(x->j, &st);
    CHECK_EQ(st.fds_pinned, 0);
    CHECK_EQ(st.unlink_errors, 0);
    sl_journal_destroy(x->j);
    sl_fdcache_stats_t cs;
    sl_fdcache_stats(x->cache, &cs);
    CHECK_EQ(cs.open, 0);
    sl_fdcache_destroy(x->cache);
    close(x->dfd);
    rm_tree(x->dir);
    CHECK_EQ(count_fds(), x->fds_before);
}

/* A reader's open is in flight when its segment is removed. The open ran
 * before the unlink (it succeeds) or after it (ENOENT): either way the
 * reader goes on at the oldest retained record without an error, and the
 * fd it got is closed, never cached under the removed segment. */
static void test_journal_retention_open_races(void)
{
    race_t x;
    race_up(&x);
    for (int after_unlink = 0; after_unlink < 2; after_unlink++) {
        uint64_t seg = sl_segment_index_at(x.ix, 0)->first_seq;
        step_reader_t r = {0};
        CHECK_EQ(sl_journal_reader_create(x.j, 1, &r.r), 0);
        sl_op_t *op = sl_journal_reader_next_op(r.r, sl_clock_now_ns());
        if (op != NULL && op->kind == SL_OP_CLOSE) {
            /* The cache is at its bound (2 fds): the least recently used
             * is closed before the open, never after it. */
            exec_op(op);
            sl_journal_reader_complete(r.r, op);
            op = sl_journal_reader_next_op(r.r, sl_clock_now_ns());
        }
        CHECK(op != NULL && op->kind == SL_OP_OPENAT);
        CHECK_EQ(path_seg(op->path), seg);
        if (!after_unlink)
            exec_op(op);
        retain_all_but_first(x.j);
        drive_sync(x.j);
        CHECK(!segment_file_exists(x.dfd, seg));
        CHECK(sl_journal_first_seq(x.j) > seg);
        if (after_unlink)
            exec_op(op);
        CHECK(after_unlink ? op->res == -ENOENT : op->res >= 0);
        sl_journal_reader_complete(r.r, op);
        CHECK_EQ(sl_journal_reader_status(r.r), 0);
        CHECK_EQ(sl_fdcache_lookup(x.cache, EPOCH, seg, false), SL_ENOTFOUND);
        step_read_all(&r);
        CHECK_EQ(r.first, sl_journal_first_seq(x.j));
        CHECK_EQ(r.last, x.last);
        CHECK_EQ(r.got, count_logged(r.first, x.last));
        step_reader_end(&r);
    }
    sl_journal_stats_t st;
    sl_journal_stats(x.j, &st);
    CHECK_EQ(st.segments_removed, 2);
    race_down(&x);
}

/* Opens the reader's fd and returns its READ op, not yet performed. */
static sl_op_t *step_to_read(step_reader_t *r)
{
    for (int guard = 0; guard < 4; guard++) {
        sl_op_t *op = sl_journal_reader_next_op(r->r, sl_clock_now_ns());
        CHECK(op != NULL);
        if (op->kind == SL_OP_READ)
            return op;
        exec_op(op); /* the open, or the close of the fd its insert evicted */
        sl_journal_reader_complete(r->r, op);
    }
    CHECK(!"no read planned");
    return NULL;
}

/* A read in flight pins the fd: the removal waits for it, and a new reader
 * of that segment holds off instead of pinning it again. Once the read
 * completed the segment goes; the first reader drops what it read of it
 * and goes on at the new oldest record (the jump the owner reports as a
 * gap); the held-off one plans again rather than open a file that is gone. */
static void test_journal_retention_waits_for_reads(void)
{
    race_t x;
    race_up(&x);
    uint64_t seg = sl_segment_index_at(x.ix, 0)->first_seq;
    uint64_t seg_next = sl_segment_index_at(x.ix, 1)->first_seq;
    step_reader_t r1 = {0}, r2 = {0};
    CHECK_EQ(sl_journal_reader_create(x.j, seg, &r1.r), 0);
    sl_op_t *read = step_to_read(&r1);
    retain_all_but_first(x.j);
    drive_sync(x.j);
    sl_journal_stats_t st;
    sl_journal_stats(x.j, &st);
    CHECK_EQ(st.segments_removed, 0);
    CHECK_EQ(st.retention_waits, 1);
    CHECK(segment_file_exists(x.dfd, seg));
    CHECK(sl_journal_deadline(x.j) != 0); /* the retry is due soon */
    CHECK_EQ(sl_journal_reader_create(x.j, seg, &r2.r), 0);
    CHECK(sl_journal_reader_next_op(r2.r, sl_clock_now_ns()) == NULL);
    CHECK_EQ(sl_journal_reader_status(r2.r), 0);
    CHECK(sl_journal_reader_deadline(r2.r) != 0);
    exec_op(read);
    sl_journal_reader_complete(r1.r, read);
    sl_record_view_t rec;
    CHECK_EQ(sl_journal_reader_next(r1.r, &rec), 1);
    CHECK_EQ(rec.seq, seg);
    r1.first = r1.last = seg;
    r1.got = 1;
    drive_sync(x.j); /* unpinned: the segment goes now */
    sl_journal_stats(x.j, &st);
    CHECK_EQ(st.segments_removed, 1);
    CHECK(!segment_file_exists(x.dfd, seg));
    CHECK_EQ(sl_journal_first_seq(x.j), seg_next);
    CHECK_EQ(sl_fdcache_lookup(x.cache, EPOCH, seg, false), SL_ENOTFOUND);
    step_read_all(&r1);
    CHECK_EQ(r1.got, 1 + count_logged(seg_next, x.last));
    CHECK_EQ(r1.last, x.last);
    uint64_t dl = sl_journal_reader_deadline(r2.r);
    uint64_t now = sl_clock_now_ns();
    if (dl > now)
        nanosleep(&(struct timespec){0, (long)(dl - now)}, NULL);
    sl_op_t *op = sl_journal_reader_next_op(r2.r, sl_clock_now_ns());
    if (op != NULL && op->kind == SL_OP_CLOSE) { /* at the 2-fd bound: close first */
        exec_op(op);
        sl_journal_reader_complete(r2.r, op);
        op = sl_journal_reader_next_op(r2.r, sl_clock_now_ns());
    }
    CHECK(op != NULL && op->kind == SL_OP_OPENAT);
    CHECK_EQ(path_seg(op->path), seg_next);
    exec_op(op);
    sl_journal_reader_complete(r2.r, op);
    step_read_all(&r2);
    CHECK_EQ(r2.first, seg_next);
    CHECK_EQ(r2.got, count_logged(seg_next, x.last));
    step_reader_end(&r1);
    step_reader_end(&r2);
    race_down(&x);
}

/* Appends one record of data_len bytes of 'r' at seq, driving the journal
 * while its buffers are taken; returns the append's final result. */
static int append_one(sl_journal_t *j, uint64_t seq, uint32_t data_len)
{
    static uint8_t data[200u << 10];
    memset(data, 'r', data_len);
    int rc = SL_EFULL;
    for (int guard = 0; guard < 100 && rc == SL_EFULL; guard++) {
        rc = sl_journal_append(j, seq, sl_clock_wall_ns(), "r", 1, data, data_len);
        sl_journal_stats_t st;
        sl_journal_stats(j, &st);
        if (rc == SL_EFULL && st.retention_refusals > 0)
            return rc; /* retention, not the buffers: the caller decides */
        drive_sync(j);
    }
    return rc;
}

/* The policy at the bytes bound, step by step. A read pins the oldest
 * segment: appends are refused (SL_EFULL, retention_refusals) once the
 * files would pass the bound by more than a segment, and taken again once
 * the read completed and the segment went. A record bigger than a segment
 * is taken while the files are within the bound (refusing it would wait
 * for a removal that is not due), and removals then bring them back. */
static void test_journal_retention_refuses_appends(void)
{
    race_t x;
    memset(&x, 0, sizeof x);
    x.fds_before = count_fds();
    snprintf(x.dir, sizeof x.dir, "/tmp/sl-journal-XXXXXX");
    CHECK(mkdtemp(x.dir) != NULL);
    x.dfd = open(x.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    CHECK(x.dfd >= 0);
    CHECK_EQ(sl_fdcache_create(4, &x.cache), 0);
    sl_journal_config_t cfg = cfg_base(x.dfd, x.cache, SL_JOURNAL_FSYNC_NEVER);
    cfg.data_max = 256u << 10;
    CHECK_EQ(sl_journal_create(&cfg, ID, strlen(ID), EPOCH, &x.j), 0);
    x.ix = sl_journal_index(x.j);
    drive_sync(x.j);
    uint64_t bound = 3 * (uint64_t)SEG;
    sl_journal_set_retention(x.j, bound, 0);
    uint64_t seq = 1;
    while (sl_segment_index_count(x.ix) < 4 && seq < 100000)
        CHECK_EQ(append_one(x.j, seq++, 1000), 0);
    uint64_t seg = sl_segment_index_at(x.ix, 0)->first_seq;
    step_reader_t r = {0};
    CHECK_EQ(sl_journal_reader_create(x.j, seg, &r.r), 0);
    sl_op_t *read = step_to_read(&r);
    int rc = 0;
    for (int guard = 0; guard < 1000 && rc == 0; guard++)
        rc = append_one(x.j, seq++, 1000);
    seq--;
    CHECK_EQ(rc, SL_EFULL);
    sl_journal_stats_t st;
    sl_journal_stats(x.j, &st);
    CHECK(st.retention_refusals >= 1);
    CHECK(st.retention_waits >= 1);
    uint32_t files;
    CHECK(folder_bytes(x.dfd, &files) <= bound + SEG);
    CHECK(sl_segment_index_placed_bytes(x.ix) + 1000 + 2 * SL_RECORD_OVERHEAD > bound);
    exec_op(read);
    sl_journal_reader_complete(r.r, read);
    drive_sync(x.j); /* unpinned: removals catch up */
    CHECK(sl_segment_index_placed_bytes(x.ix) <= bound);
    CHECK_EQ(append_one(x.j, seq++, 1000), 0);
    step_reader_end(&r);

    /* Within the bound, a record bigger than a segment is taken. */
    while (sl_segment_index_placed_bytes(x.ix) + 2000 < bound)
        CHECK_EQ(append_one(x.j, seq++, 1000), 0);
    uint64_t big = seq++;
    CHECK_EQ(append_one(x.j, big, 200u << 10), 0);
    CHECK_EQ(sl_journal_written_seq(x.j), big);
    CHECK_EQ(sl_journal_first_seq(x.j), big); /* all before it went */
    CHECK_EQ(sl_segment_index_count(x.ix), 1);
    CHECK_EQ(append_one(x.j, seq, 10), 0);
    CHECK_EQ(sl_journal_first_seq(x.j), seq); /* then the big one went */
    CHECK_EQ(folder_bytes(x.dfd, &files), sl_segment_index_bytes(x.ix));
    CHECK_EQ(files, 1);
    race_down(&x);
}

/* Argument checks that need no I/O. */
static void test_journal_arguments(void)
{
    sl_fdcache_t *c;
    CHECK_EQ(sl_fdcache_create(4, &c), 0);
    sl_journal_config_t cfg = cfg_base(0, c, SL_JOURNAL_FSYNC_BATCH);
    sl_journal_t *j = NULL;
    CHECK_EQ(sl_journal_create(&cfg, ".hidden", 7, EPOCH, &j), SL_EINVAL);
    CHECK_EQ(sl_journal_create(&cfg, "a/b", 3, EPOCH, &j), SL_EINVAL);
    CHECK(j == NULL);
    CHECK_EQ(sl_journal_create(&cfg, "ok", 2, EPOCH, &j), 0);
    CHECK_EQ(sl_journal_append(j, 1, 1, "t", 1, "d", 1), 0);
    CHECK_EQ(sl_journal_appended_seq(j), 1);
    CHECK_EQ(sl_journal_written_seq(j), 0);
    CHECK_EQ(sl_journal_deadline(j), 0);
    sl_journal_reader_t *r;
    CHECK_EQ(sl_journal_reader_create(j, 1, &r), 0);
    CHECK(sl_journal_reader_next_op(r, 0) == NULL); /* nothing written yet */
    CHECK_EQ(sl_journal_reader_status(r), SL_EAGAIN);
    sl_journal_reader_destroy(r);
    sl_journal_destroy(j); /* no op was ever handed out */
    sl_fdcache_destroy(c);
}

int main(void)
{
    struct {
        const char *name;
        void (*fn)(void);
    } tests[] = {
#define T(f) {#f, f}
        T(test_journal_arguments),
        T(test_journal_fsync_always),
        T(test_journal_fsync_batch),
        T(test_journal_overlapping_syncs),
        T(test_journal_one_sync_in_flight),
        T(test_journal_syncfs_rounds),
        T(test_journal_fsync_never),
        T(test_journal_batch_interval),
        T(test_journal_full_buffers),
        T(test_journal_reader_catchup),
        T(test_journal_recovered_append_and_live_readers),
        T(test_journal_write_error_fails),
        T(test_journal_remove),
        T(test_journal_create_exists),
        T(test_journal_create_waits_for_old_folder),
        T(test_journal_sweep_removed),
        T(test_journal_retention_bytes),
        T(test_journal_retention_bytes_synced),
        T(test_journal_retention_age),
        T(test_journal_retention_recovered),
        T(test_journal_retention_open_races),
        T(test_journal_retention_waits_for_reads),
        T(test_journal_retention_refuses_appends),
#undef T
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(tests); i++) {
        uint64_t t0 = sl_clock_now_ns();
        tests[i].fn();
        fprintf(stderr, "ok %s (%.0f ms)\n", tests[i].name, (double)(sl_clock_now_ns() - t0) / 1e6);
    }
    return 0;
}
