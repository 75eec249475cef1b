/*
 * Runs, inside: the runner table, the run actor's record and the spawner
 * thread's jobs, shared by run.c (actor, table, figures), run_spawn.c
 * (spawner thread) and run_conf.c (runner declarations). No other file
 * includes this.
 */
#ifndef SL_ACTORS_RUN_INT_H
#define SL_ACTORS_RUN_INT_H

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>

#include "actors/registry.h"
#include "actors/run.h"
#include "actors/session.h"
#include "runtime/reactor.h"

struct sl_server;

/* One declared runner (immutable after start). */
typedef struct sl_runner {
    char name[SL_RUNNER_NAME_MAX + 1];
    char *path;
    uint32_t nargs;
    char *args[SL_RUNNER_ARGS_MAX];
    uint32_t nenv;
    char *env[SL_RUNNER_ENV_MAX]; /* "K=V" */
    bool chunk;                   /* chunk mode (else line mode) */
    uint64_t max_output_bytes;
    uint64_t wall_ns;   /* 0: no limit */
    uint64_t orphan_ns; /* 0: never */
    uint64_t kill_grace_ns;
    uint64_t max_stdin_bytes; /* per stdin request and initial stdin */
    uint32_t concurrency;     /* active runs of this runner; 0: --max-runs */
    uint32_t max_args;        /* client args, <= SL_RUN_ARGS_MAX */
    uint64_t memory_max;      /* cgroup memory.max (0: not set) */
    uint64_t pids_max;        /* cgroup pids.max (0: not set) */
    uint32_t active;          /* under runs->lock */
} sl_runner_t;

/* Parses the declarations of cfg into runners (caller storage of
 * SL_RUNNERS_MAX). Returns the count, or -1 with err set. Frees nothing on
 * failure beyond what it allocated (sl_run__runners_free). */
int sl_run__runners_parse(const sl_config_t *cfg, sl_runner_t *runners, char *err, size_t n);
void sl_run__runners_free(sl_runner_t *runners, int count);

typedef enum run_reason {
    SL_RUN__R_NONE = 0,
    SL_RUN__R_EXIT,
    SL_RUN__R_CANCELLED,
    SL_RUN__R_ORPHANED,
    SL_RUN__R_TIMEOUT,
    SL_RUN__R_OUTPUT_LIMIT,
    SL_RUN__R_SHUTDOWN,
    SL_RUN__R_CRASH,
    SL_RUN__R_SPAWN_FAILED, /* counted only: the run never started */
    SL_RUN__R_COUNT,
} sl_run__reason_t;

const char *sl_run__reason_name(int reason);

/* One output pipe of a run. */
typedef struct sl_run_stream {
    sl_op_t op;
    int fd;
    bool armed; /* a read is in flight */
    bool eof;
    bool waiting;      /* a publish of its bytes is outstanding */
    bool discard;      /* past max output: read and drop until EOF */
    uint32_t len;      /* bytes in buf */
    uint32_t consumed; /* bytes the outstanding publish carries */
    const char *type;  /* "run.stdout" / "run.stderr" */
    uint8_t buf[SL_RUN_READ_BYTES];
} sl_run_stream_t;

typedef enum run_state {
    SL_RUN__SPAWNING = 0, /* the spawner has the run */
    SL_RUN__RUNNING,      /* child alive or its output still draining */
    SL_RUN__EXITING,      /* run.exit published (or being), ops winding down */
    SL_RUN__DONE,         /* the actor waits for its last references */
} sl_run__state_t;

typedef struct sl_run sl_run_t;

/* A spawner job. SPAWN refers to its run (a reference held); the others
 * carry copies so that they outlive the run. */
typedef enum { SL_RUN__JOB_SPAWN, SL_RUN__JOB_SIGNAL, SL_RUN__JOB_FINISH } sl_run__job_kind_t;
typedef struct sl_run_job {
    struct sl_run_job *next;
    uint8_t kind;
    int sig;
    int pgid;
    sl_run_t *run; /* SPAWN */
    char id[24];
    char cgroup[PATH_MAX]; /* "" when none */
} sl_run_job_t;

struct sl_run {
    sl_actor_t a;
    struct sl_server *srv;
    sl_runs_t *runs;
    sl_reactor_t *r;
    sl_runner_t *runner;
    char id[24];
    char session[SL_SESSION_ID_MAX + 1];
    uint32_t session_len;
    sl_entry_t *e; /* reference while the run exists */
    sl_run__state_t state;
    uint32_t slot;  /* index in runs->active */
    bool recovered; /* a record from a previous life: publishes run.exit only */
    /* Spawn: filled by the spawner before it posts spawned_msg. */
    sl_msg_t spawned_msg;    /* CONTROL */
    sl_run_req_t *start_req; /* answered once spawned */
    int spawn_err;
    int pid, pidfd, stdin_fd;
    int pid_visible;       /* pid for other threads, under runs->lock */
    char cgroup[PATH_MAX]; /* "" when none */
    char *args_json;       /* client args as a JSON array (owned) */
    uint64_t started_ns, started_wall_ns;
    uint64_t first_output_ns; /* spawn-to-first-output latency */
    /* I/O. */
    sl_run_stream_t out[2];
    sl_op_t poll_op, timer_op, in_op, cancel_ops[3];
    bool poll_armed, timer_armed, in_armed;
    uint32_t ops_inflight;
    /* stdin requests waiting to be written (FIFO) */
    sl_run_req_t *in_head, *in_tail;
    size_t in_pending, in_off;
    bool stdin_closed;
    /* Publishing: at most one in flight. */
    sl_pub_t *pq[4]; /* queued: start, stdout, stderr, exit */
    uint32_t pq_n;
    bool pub_inflight;
    uint32_t resends;     /* publishes resent after the session actor went away */
    uint64_t retry_at_ns; /* the session's mailbox was full: resend then */
    bool exit_published;  /* run.exit answered (durably) */
    /* run.exit as sent, under runs->lock: from then on GET .../run says
     * "exited", before any consumer can have read run.exit. */
    bool exit_sent;
    char exit_sent_json[192];
    /* Ending. */
    int reason;  /* sl_run__reason_t; first one wins */
    bool exited; /* waitid collected the child */
    int code, sig;
    uint64_t cpu_ms, max_rss_kb, wall_ms;
    uint64_t out_bytes;
    uint64_t kill_at_ns;      /* SIGKILL due (0: none) */
    uint64_t drain_until_ns;  /* after exit: pipes get this long to reach EOF */
    uint64_t orphan_since_ns; /* no subscriber since (0: has one) */
    bool term_sent, kill_sent;
};

/* The process-wide runs state. */
struct sl_runs {
    struct sl_server *srv;
    sl_runner_t runners[SL_RUNNERS_MAX];
    int nrunners;
    char dir[PATH_MAX];         /* <data-dir>/.runs */
    char cgroup_base[PATH_MAX]; /* "" when runs get no cgroup */
    /* Table, under lock. */
    pthread_mutex_t lock;
    sl_run_t **active; /* --max-runs slots */
    uint32_t nactive;
    int *direct_pids; /* direct children not yet collected (--max-runs) */
    struct {
        char session[SL_SESSION_ID_MAX + 1];
        char id[24];
        char runner[SL_RUNNER_NAME_MAX + 1];
        int pid;
        uint64_t started_wall_ns;
        char exit_json[192];
    } history[SL_RUN_HISTORY_MAX];
    uint32_t history_next, history_count;
    _Atomic uint64_t next_id;
    /* Figures (relaxed). */
    _Atomic uint64_t started, spawn_failed, by_reason[SL_RUN__R_COUNT];
    _Atomic uint64_t children, zombies, reaped_orphans, killed_leftovers;
    _Atomic uint64_t spawn_ns_total, first_output_ns_total, first_output_count;
    _Atomic uint64_t cpu_ms_total;
    _Atomic uint32_t live; /* run actors not yet destroyed */
    /* Spawner thread. */
    pthread_t thread;
    bool thread_started;
    bool spawned_any; /* spawner thread only: a process was ever started */
    pthread_cond_t cond; /* jobs queued or stop (under lock) */
    sl_run_job_t *jobs_head, *jobs_tail;
    bool stopping;
    bool recover_wanted; /* sl_run_start: recover old records first */
    void *stack;         /* the child's stack between clone and exec */
};

/* Spawner (run_spawn.c). */
int sl_run__spawner_start(sl_runs_t *runs);
void sl_run__spawner_stop(sl_runs_t *runs);
/* Queues a job (takes it). Any thread. */
void sl_run__job_post(sl_runs_t *runs, sl_run_job_t *job);
/* Queues a signal to run's whole tree (pgid, cgroup, marker). */
void sl_run__signal_tree(sl_run_t *run, int sig);
/* Creates the actor that ends a run of a previous life (reason
 * server_crash) for session (borrowed). Spawner thread, at start. */
void sl_run__recover(sl_runs_t *runs, const char *id, const char *session, size_t session_len,
                     const char *cgroup, uint64_t started_wall_ns);
/* Direct-children bookkeeping (the reaper leaves them to their run). */
void sl_run__direct_add(sl_runs_t *runs, int pid);
void sl_run__direct_remove(sl_runs_t *runs, int pid);

#endif
