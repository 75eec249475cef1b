/*
 * Runs: processes sluice starts for a session from an operator-declared
 * runner, streams into the session as events, and ends (API.md "Runs").
 *
 * Pieces:
 *   - the run actor (run.c): one per run, bound to a reactor. Its pipes are
 *     read with SL_OP_READ, its stdin written with SL_OP_WRITE, its exit
 *     observed with SL_OP_POLL on the pidfd followed by
 *     waitid(P_PIDFD, WNOHANG) (which also yields the rusage). Output goes
 *     to the session through sl_sessops_publish, one publish in flight at a
 *     time: a pipe is read again only after its last publish was answered,
 *     so a session that cannot take more stops the child in write().
 *   - the spawner thread (run_spawn.c): the blocking work, off the
 *     reactors. It clones the child (CLONE_VM | CLONE_VFORK | CLONE_PIDFD on
 *     its own small stack, the way posix_spawn does it, so no page table is
 *     copied), writes and removes the durable run records, signals process
 *     trees, walks /proc, reaps dead grandchildren (sluiced is a child
 *     subreaper) and counts children and zombies. It lives as long as the
 *     server, which matters: PR_SET_PDEATHSIG fires when the thread that
 *     created the child exits.
 *   - the connection faces (conn_run.c): HTTP and msgpack-RPC.
 *
 * A run's process tree is its process group (setsid) and, where the cgroup
 * v2 hierarchy is writable, its own cgroup (cgroup.kill). Every process of
 * it carries SLUICE_RUN_ID=<run id> in its environment, which the spawner
 * uses to find members that left the group (and, after a crash, all of
 * them).
 *
 * Threads: the functions below are called from connection actors (any
 * reactor or worker) unless they say otherwise.
 */
#ifndef SL_ACTORS_RUN_H
#define SL_ACTORS_RUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "actors/config.h"
#include "runtime/actor.h"
#include "runtime/limits.h"

struct sl_server;
typedef struct sl_runs sl_runs_t;

/* The reply kind a connection receives for a run request. */
enum { SL_RUN_MSG_REPLY = SL_MSG_KIND_USER + 96 };

typedef enum sl_run_req_kind {
    SL_RUN_REQ_START = 0, /* start a run */
    SL_RUN_REQ_STDIN,     /* write to the running child's stdin */
} sl_run_req_kind_t;

/* A connection's request to the runs module; it comes back to reply_to as
 * SL_RUN_MSG_REPLY with status set. Allocated with sl_run_req_alloc. */
typedef struct sl_run_req {
    sl_msg_t h;
    sl_actor_t *reply_to; /* reference held while outstanding */
    uint8_t kind;         /* sl_run_req_kind_t */
    bool rpc;             /* requester's: answer as msgpack-RPC */
    uint32_t stream_id;   /* requester's: HTTP stream, or RPC msgid */
    char session[SL_SESSION_ID_MAX + 1];
    uint32_t session_len;
    char runner[SL_RUNNER_NAME_MAX + 1];
    uint32_t nargs;
    const char *args[SL_RUN_ARGS_MAX]; /* into data */
    uint8_t *stdin_data;               /* into data (START: initial stdin; STDIN: the bytes) */
    size_t stdin_len;
    bool close_stdin; /* close stdin after writing */
    /* answer */
    int status; /* 0, SL_ENOTFOUND (unknown runner / no run), SL_ECONFLICT
                   (a run is active), SL_EFULL (--max-runs or the
                   runner's concurrency), SL_EENDED (session closed),
                   SL_ECLOSED (stdin closed, or the run ended),
                   SL_EAGAIN (stdin queue full), SL_EINVAL, -errno
                   (spawn failed: exec's errno) */
    char run_id[24];
    int pid;
    uint64_t written; /* STDIN: bytes written */
    struct sl_run_req *_next;
    uint8_t data[]; /* args (NUL-terminated) and stdin bytes */
} sl_run_req_t;

/* Allocates a zeroed request with data_bytes of payload room. Returns owned
 * (free()), or NULL. */
sl_run_req_t *sl_run_req_alloc(size_t data_bytes);

/* Config load: parses and checks --runner / --runners-file. Returns 0 or
 * -1 with a one-line message in err (exit 2). Main thread. */
int sl_run_config_check(const sl_config_t *cfg, char *err, size_t n);

/* Server lifecycle (actors/server.c). init: runners, the runs folder
 * <data-dir>/.runs, cgroup probe, the spawner thread. Returns 0 or < 0.
 * start (reactors running): runs left from a previous life are ended: their
 * leftover processes are killed and their sessions get run.exit with
 * reason server_crash. shutdown: every run ends with reason
 * server_shutdown; waits (bounded by the kill grace plus a few seconds)
 * until their exits are published. deinit: stops the spawner. Main thread. */
int sl_run_init(struct sl_server *srv);
void sl_run_start(struct sl_server *srv);
void sl_run_shutdown(struct sl_server *srv);
void sl_run_deinit(struct sl_server *srv);

/* Submits req (takes it on every path): 0 when it will come back as
 * SL_RUN_MSG_REPLY, or a status (req freed) answered at once: see
 * sl_run_req_t.status. */
int sl_run_submit(struct sl_server *srv, sl_run_req_t *req);
/* Cancels the active run of session id: SIGTERM to its tree, SIGKILL after
 * the kill grace. Returns 0 (run id in run_id, 24 bytes) or SL_ENOTFOUND. */
int sl_run_cancel(struct sl_server *srv, const char *id, size_t len, char *run_id);
/* The run of session id (active, else the last exited one remembered) as
 * JSON (API.md). Returns the length, 0 when there is none, or 0 when cap is
 * too small. */
size_t sl_run_status_json(struct sl_server *srv, const char *id, size_t len, char *out, size_t cap);

/* Figures. health: `"runs":{...},"children":N,"zombies":N,` (with the
 * trailing comma) for /health; metrics: Prometheus lines. Return the
 * length written (0 when cap is too small). busy: a run is active. */
/* Figures for /health and /metrics (actors/monitor.c's table): one value
 * per SL_RUN_FIG_*, durations in ns. Any thread. */
enum {
    SL_RUN_FIG_ACTIVE = 0,
    SL_RUN_FIG_STARTED,
    SL_RUN_FIG_SPAWN_FAILED,
    SL_RUN_FIG_REASON_EXIT,      /* .. one per reason, in sl_run__reason order */
    SL_RUN_FIG_REASON_CRASH = SL_RUN_FIG_REASON_EXIT + 6,
    SL_RUN_FIG_REAPED_ORPHANS,
    SL_RUN_FIG_KILLED_LEFTOVERS,
    SL_RUN_FIG_SPAWN_AVG_NS,
    SL_RUN_FIG_FIRST_OUTPUT_AVG_NS,
    SL_RUN_FIG_CPU_NS,
    SL_RUN_FIG_CGROUP,
    SL_RUN_FIG_CHILDREN,
    SL_RUN_FIG_ZOMBIES,
};
uint64_t sl_run_figure(struct sl_server *srv, uint32_t which);
bool sl_run_busy(struct sl_server *srv);

#endif
