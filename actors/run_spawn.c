/*
 * The spawner thread: everything about runs that blocks, kept off the
 * reactors (run_int.h lists the jobs).
 *
 * Spawning: clone(CLONE_VM | CLONE_VFORK | CLONE_PIDFD) on a stack of our
 * own, as posix_spawn does it: no page tables are copied however large
 * sluiced is, and the thread resumes when the child has exec'd (or
 * failed to: the child leaves exec's errno in the shared memory). The
 * child, before exec: default signal dispositions, setsid (its own session
 * and process group), PR_SET_PDEATHSIG(SIGKILL) bound to this long-lived
 * thread, its cgroup (when any), the three pipes as 0/1/2, every other fd
 * closed (close_range), the run's own folder as working directory, an
 * empty signal mask, and an environment built here: PATH, HOME,
 * SLUICE_RUN_ID, SLUICE_SESSION and what the runner declares.
 *
 * Housekeeping, every SL_RUN_REAP_INTERVAL_NS: sluiced is a child
 * subreaper, so processes a run's child left behind come back to it when
 * their parent dies. The thread reaps every dead child that is not some
 * run's direct child (those are collected by their run with
 * waitid(P_PIDFD), never here: no waitpid(-1) can steal their status) and
 * counts children and zombies for /health.
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "actors/run_int.h"
#include "actors/server.h"
#include "storage/session_id.h"
#include "runtime/clock.h"
#include "runtime/log.h"

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif

#define ENV_MAX (SL_RUNNER_ENV_MAX + 8)
#define ARGV_MAX (1 + SL_RUNNER_ARGS_MAX + SL_RUN_ARGS_MAX + 1)

/* What the child needs between clone and exec; it only reads it (and
 * writes err), and the thread waits meanwhile (CLONE_VFORK). */
typedef struct child_ctx {
    const char *path;
    char *const *argv;
    char *const *envp;
    const char *cwd;
    int in_fd, out_fd, err_fd;
    int cg_fd;   /* cgroup.procs of the run's cgroup, or -1 */
    int fail_fd; /* -1, or (fork path) where the child writes a failure's errno */
    pid_t ppid;
    int err; /* exec's errno (or a setup step's), 0 when exec ran */
} child_ctx_t;

/* The kernel's struct sigaction for rt_sigaction (the child makes raw
 * system calls only: see child_main). */
typedef struct kernel_sigaction {
    void *handler;
    unsigned long flags;
    void *restorer;
    uint64_t mask;
} kernel_sigaction_t;

/* Runs in the child on its own stack, sharing our memory and our thread's
 * TLS while this thread is suspended (CLONE_VM | CLONE_VFORK): raw system
 * calls only -- no allocation, no locks, and no libc wrapper a sanitizer
 * intercepts (its per-thread state is ours) -- and not instrumented. */
__attribute__((no_sanitize("address", "thread"))) static int child_main(void *arg)
{
    child_ctx_t *c = arg;
    kernel_sigaction_t dfl = {.handler = SIG_DFL};
    for (long s = 1; s < NSIG; s++) /* SIGPIPE is ignored in sluiced; not in the child */
        syscall(SYS_rt_sigaction, s, &dfl, NULL, sizeof dfl.mask);
    long rc = syscall(SYS_setsid);
    if (rc >= 0)
        rc = syscall(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    if (rc >= 0 && syscall(SYS_getppid) != c->ppid) /* sluiced already died */
        syscall(SYS_exit_group, 127);
    if (rc >= 0 && c->cg_fd >= 0) {
        char b[16], t[16];
        int n = 0;
        unsigned long v = (unsigned long)syscall(SYS_getpid);
        do
            t[n++] = (char)('0' + v % 10);
        while ((v /= 10) > 0);
        for (int i = 0; i < n; i++)
            b[i] = t[n - 1 - i];
        rc = syscall(SYS_write, c->cg_fd, b, n) == n ? 0 : -1;
    }
    const int from[3] = {c->in_fd, c->out_fd, c->err_fd};
    for (int fd = 0; fd < 3 && rc >= 0; fd++) /* dup3 refuses equal fds: clear CLOEXEC then */
        rc = from[fd] == fd ? syscall(SYS_fcntl, fd, F_SETFD, 0)
                            : syscall(SYS_dup3, from[fd], fd, 0);
    if (rc >= 0) {
        /* Every other fd closes at exec (marked, not closed now, so that
         * fail_fd stays usable until then). */
        syscall(SYS_close_range, 3u, ~0u, 4u /* CLOSE_RANGE_CLOEXEC */);
        rc = syscall(SYS_chdir, c->cwd);
    }
    if (rc >= 0) {
        uint64_t none = 0;
        syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, NULL, sizeof none);
        syscall(SYS_execve, c->path, c->argv, c->envp);
    }
    c->err = errno ? errno : EINVAL;
    if (c->fail_fd >= 0)
        syscall(SYS_write, c->fail_fd, &c->err, sizeof c->err);
    syscall(SYS_exit_group, 127);
    return 127;
}

#if defined(__SANITIZE_THREAD__)
/* ThreadSanitizer cannot follow a child that shares our memory and this
 * thread's state: under it the child is forked (which it intercepts) and
 * reports a failure's errno through a close-on-exec pipe. */
static pid_t clone_child(sl_runs_t *runs, child_ctx_t *ctx, int *pidfd)
{
    (void)runs;
    int ep[2];
    if (pipe2(ep, O_CLOEXEC) != 0)
        return -1;
    ctx->fail_fd = ep[1];
    pid_t pid = fork();
    if (pid == 0)
        child_main(ctx); /* does not return */
    close(ep[1]);
    if (pid > 0) {
        int err = 0;
        if (read(ep[0], &err, sizeof err) == (ssize_t)sizeof err)
            ctx->err = err;
        *pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    }
    close(ep[0]);
    return pid;
}
#else
/* The child on its own stack, sharing our memory until it execs: no page
 * table is copied, and exec's errno lands in ctx. */
static pid_t clone_child(sl_runs_t *runs, child_ctx_t *ctx, int *pidfd)
{
    return clone(child_main, (char *)runs->stack + SL_RUN_SPAWN_STACK_BYTES,
                 CLONE_VM | CLONE_VFORK | CLONE_PIDFD | SIGCHLD, ctx, pidfd);
}
#endif

static int write_record(sl_runs_t *runs, const sl_run_t *run)
{
    char path[PATH_MAX + 32], body[PATH_MAX + 512];
    snprintf(path, sizeof path, "%s/%s.run", runs->dir, run->id);
    int n = snprintf(body, sizeof body, "session=%s\nrunner=%s\ncgroup=%s\nstarted_ns=%llu\n",
                     run->session, run->runner->name, run->cgroup,
                     (unsigned long long)run->started_wall_ns);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    /* No fdatasync: the record is for a sluiced that dies while the
     * machine stays up (kill -9, a crash), where the page cache keeps it.
     * When the machine itself goes down, the run's processes go with it;
     * only the session's run.exit is then missing. An fsync here cost
     * more than the rest of a spawn together. */
    int rc = write(fd, body, (size_t)n) == n ? 0 : -EIO;
    close(fd);
    return rc;
}

/* Writes a limit file of the run's cgroup. Best effort: where the
 * controller is not delegated the file does not exist, and the run goes on
 * with the tree bounds alone (logged). */
static void cgroup_limit(const sl_run_t *run, const char *file, uint64_t value)
{
    char path[PATH_MAX + 32], v[32];
    snprintf(path, sizeof path, "%s/%s", run->cgroup, file);
    int n = snprintf(v, sizeof v, "%llu", (unsigned long long)value);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, v, (size_t)n) != n)
        sl_warn("run cgroup limit not applied", "run=%s file=%s error=\"%s\"", run->id, file,
                sl_strerror(-errno));
    if (fd >= 0)
        close(fd);
}

static int make_cgroup(sl_runs_t *runs, sl_run_t *run, int *cg_fd)
{
    *cg_fd = -1;
    run->cgroup[0] = '\0';
    if (!runs->cgroup_base[0])
        return 0;
    char path[PATH_MAX + 32];
    if (snprintf(run->cgroup, sizeof run->cgroup, "%s/%s", runs->cgroup_base, run->id) >=
        (int)sizeof run->cgroup)
        return -ENAMETOOLONG;
    if (mkdir(run->cgroup, 0755) != 0 && errno != EEXIST)
        return -errno;
    if (run->runner->memory_max)
        cgroup_limit(run, "memory.max", run->runner->memory_max);
    if (run->runner->pids_max)
        cgroup_limit(run, "pids.max", run->runner->pids_max);
    snprintf(path, sizeof path, "%s/cgroup.procs", run->cgroup);
    *cg_fd = open(path, O_WRONLY | O_CLOEXEC);
    return *cg_fd < 0 ? -errno : 0;
}

/* Builds argv and envp (pointers into the runner, the request and env_buf). */
static void build_exec(const sl_run_t *run, const sl_run_req_t *req, const char *cwd, char **argv,
                       char **envp, char *env_buf, size_t env_cap)
{
    const sl_runner_t *rn = run->runner;
    uint32_t a = 0, e = 0;
    argv[a++] = rn->path;
    for (uint32_t i = 0; i < rn->nargs; i++)
        argv[a++] = rn->args[i];
    for (uint32_t i = 0; i < req->nargs; i++)
        argv[a++] = (char *)req->args[i];
    argv[a] = NULL;
    size_t o = 0;
    const char *fixed[4] = {"PATH=/usr/local/bin:/usr/bin:/bin", NULL, NULL, NULL};
    char home[PATH_MAX + 8], rid[48], sess[SL_SESSION_ID_MAX + 24];
    if (snprintf(home, sizeof home, "HOME=%s", cwd) >= (int)sizeof home)
        home[5] = '\0';
    snprintf(rid, sizeof rid, "SLUICE_RUN_ID=%s", run->id);
    snprintf(sess, sizeof sess, "SLUICE_SESSION=%s", run->session);
    fixed[1] = home, fixed[2] = rid, fixed[3] = sess;
    for (int i = 0; i < 4; i++) {
        size_t l = strlen(fixed[i]) + 1;
        sl_assert(o + l <= env_cap);
        memcpy(env_buf + o, fixed[i], l);
        envp[e++] = env_buf + o;
        o += l;
    }
    for (uint32_t i = 0; i < rn->nenv; i++)
        envp[e++] = rn->env[i];
    envp[e] = NULL;
}

/* Clones the child of run. Sets pid, pidfd, stdin_fd, out[].fd; returns 0
 * or -errno (nothing left open, no process left). */
static int spawn(sl_runs_t *runs, sl_run_t *run)
{
    sl_run_req_t *req = run->start_req;
    char cwd[PATH_MAX + 32];
    snprintf(cwd, sizeof cwd, "%s/%s", runs->dir, run->id);
    if (mkdir(cwd, 0700) != 0 && errno != EEXIST)
        return -errno;
    int p_in[2] = {-1, -1}, p_out[2] = {-1, -1}, p_err[2] = {-1, -1}, cg_fd = -1;
    int rc = 0;
    if (pipe2(p_in, O_CLOEXEC) != 0 || pipe2(p_out, O_CLOEXEC) != 0 || pipe2(p_err, O_CLOEXEC) != 0)
        rc = -errno;
    if (rc == 0)
        rc = make_cgroup(runs, run, &cg_fd);
    if (rc == 0)
        rc = write_record(runs, run);
    char *argv[ARGV_MAX], *envp[ENV_MAX];
    char env_buf[PATH_MAX + 256];
    child_ctx_t ctx = {.path = run->runner->path,
                       .argv = argv,
                       .envp = envp,
                       .cwd = cwd,
                       .in_fd = p_in[0],
                       .out_fd = p_out[1],
                       .err_fd = p_err[1],
                       .cg_fd = cg_fd,
                       .fail_fd = -1,
                       .ppid = getpid(),
                       .err = 0};
    int pidfd = -1;
    pid_t pid = -1;
    if (rc == 0) {
        build_exec(run, req, cwd, argv, envp, env_buf, sizeof env_buf);
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, &old);
        runs->spawned_any = true;
        pid = clone_child(runs, &ctx, &pidfd);
        int saved = errno;
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (pid < 0)
            rc = -saved;
        else if (ctx.err) {
            rc = -ctx.err;
            waitpid(pid, NULL, 0); /* it has _exit'ed already (vfork) */
            close(pidfd);
        }
    }
    if (cg_fd >= 0)
        close(cg_fd);
    close(p_in[0]), close(p_out[1]), close(p_err[1]);
    if (rc != 0) {
        close(p_in[1]), close(p_out[0]), close(p_err[0]);
        char rec[PATH_MAX + 32];
        snprintf(rec, sizeof rec, "%s/%s.run", runs->dir, run->id);
        unlink(rec);
        rmdir(cwd);
        if (run->cgroup[0])
            rmdir(run->cgroup);
        return rc;
    }
    run->pid = pid;
    run->pidfd = pidfd;
    run->stdin_fd = p_in[1];
    run->out[0].fd = p_out[0];
    run->out[1].fd = p_err[0];
    sl_run__direct_add(runs, pid);
    return 0;
}

/* ---- process trees ---- */

/* True when /proc/<pid>/environ holds marker ("SLUICE_RUN_ID=<id>"). */
static bool has_marker(int pid, const char *marker, size_t mlen)
{
    char path[64], buf[16384];
    snprintf(path, sizeof path, "/proc/%d/environ", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, buf, sizeof buf);
    close(fd);
    for (ssize_t i = 0; n > 0 && i < n;) {
        size_t l = strnlen(buf + i, (size_t)(n - i));
        if (l == mlen && memcmp(buf + i, marker, mlen) == 0)
            return true;
        i += (ssize_t)l + 1;
    }
    return false;
}

/* Signals every process carrying run id's marker (members that left the
 * process group, or all of them after a crash). Returns how many. */
static uint32_t signal_marked(const char *id, int sig)
{
    char marker[48];
    int mlen = snprintf(marker, sizeof marker, "SLUICE_RUN_ID=%s", id);
    DIR *d = opendir("/proc");
    if (!d)
        return 0;
    uint32_t count = 0;
    int self = getpid();
    for (struct dirent *de; (de = readdir(d));) {
        int pid = atoi(de->d_name);
        if (pid <= 1 || pid == self)
            continue;
        if (has_marker(pid, marker, (size_t)mlen) && kill(pid, sig) == 0)
            count++;
    }
    closedir(d);
    return count;
}

/* Signals every process of cgroup (cgroup.kill for SIGKILL). */
static void signal_cgroup(const char *cg, int sig)
{
    char path[PATH_MAX + 32];
    if (sig == SIGKILL) {
        snprintf(path, sizeof path, "%s/cgroup.kill", cg);
        int fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd >= 0) {
            if (write(fd, "1", 1) == 1) {
                close(fd);
                return;
            }
            close(fd);
        }
    }
    snprintf(path, sizeof path, "%s/cgroup.procs", cg);
    FILE *f = fopen(path, "re");
    if (!f)
        return;
    int pid;
    while (fscanf(f, "%d", &pid) == 1)
        kill(pid, sig);
    fclose(f);
}

/* The tree: its process group, its cgroup, and, without a cgroup (or
 * after a crash: pgid 0), every process carrying its marker. A cgroup
 * holds members that left the group, so the /proc walk is spared then. */
static void signal_job(sl_runs_t *runs, const sl_run_job_t *j)
{
    if (j->pgid > 1)
        kill(-j->pgid, j->sig);
    if (j->cgroup[0])
        signal_cgroup(j->cgroup, j->sig);
    if (j->cgroup[0] && j->pgid > 1)
        return;
    uint32_t n = signal_marked(j->id, j->sig);
    if (j->sig == SIGKILL && n)
        atomic_fetch_add_explicit(&runs->killed_leftovers, n, memory_order_relaxed);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    remove(path);
    return 0;
}

/* The run's traces: its cgroup (emptied first), folder and record. */
static void finish_job(sl_runs_t *runs, const sl_run_job_t *j)
{
    if (j->cgroup[0]) {
        for (int i = 0; i < 100 && rmdir(j->cgroup) != 0 && errno == EBUSY; i++) {
            signal_cgroup(j->cgroup, SIGKILL);
            usleep(10000);
        }
    }
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/%s", runs->dir, j->id);
    nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    snprintf(path, sizeof path, "%s/%s.run", runs->dir, j->id);
    unlink(path);
}

/* ---- reaping ---- */

static bool is_direct(sl_runs_t *runs, int pid)
{
    bool found = false;
    pthread_mutex_lock(&runs->lock);
    for (uint32_t i = 0; i < runs->srv->cfg.max_runs && !found; i++)
        found = runs->direct_pids[i] == pid;
    pthread_mutex_unlock(&runs->lock);
    return found;
}

void sl_run__direct_add(sl_runs_t *runs, int pid)
{
    pthread_mutex_lock(&runs->lock);
    for (uint32_t i = 0; i < runs->srv->cfg.max_runs; i++) {
        if (runs->direct_pids[i] == 0) {
            runs->direct_pids[i] = pid;
            break;
        }
    }
    pthread_mutex_unlock(&runs->lock);
}

void sl_run__direct_remove(sl_runs_t *runs, int pid)
{
    pthread_mutex_lock(&runs->lock);
    for (uint32_t i = 0; i < runs->srv->cfg.max_runs; i++) {
        if (runs->direct_pids[i] == pid)
            runs->direct_pids[i] = 0;
    }
    pthread_mutex_unlock(&runs->lock);
}

/* Walks /proc for our children: reaps dead ones that are no run's direct
 * child, counts the rest. A zombie is counted only when it was seen dead
 * in the previous walk too (its run had a whole period to collect it). */
static void reap(sl_runs_t *runs, int *prev_z, uint32_t *nprev)
{
    DIR *d = opendir("/proc");
    if (!d)
        return;
    int self = getpid();
    uint64_t children = 0, zombies = 0;
    int cur_z[64];
    uint32_t ncur = 0;
    for (struct dirent *de; (de = readdir(d));) {
        int pid = atoi(de->d_name);
        if (pid <= 1)
            continue;
        char path[64], buf[512];
        snprintf(path, sizeof path, "/proc/%d/stat", pid);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (n <= 0)
            continue;
        buf[n] = '\0';
        char *rp = strrchr(buf, ')');
        char state;
        int ppid;
        if (!rp || sscanf(rp + 1, " %c %d", &state, &ppid) != 2 || ppid != self)
            continue;
        if (state != 'Z') {
            children++;
            continue;
        }
        if (!is_direct(runs, pid)) {
            if (waitpid(pid, NULL, WNOHANG) == pid)
                atomic_fetch_add_explicit(&runs->reaped_orphans, 1, memory_order_relaxed);
            continue;
        }
        for (uint32_t i = 0; i < *nprev; i++)
            zombies += prev_z[i] == pid;
        if (ncur < SL_ARRAY_LEN(cur_z))
            cur_z[ncur++] = pid;
    }
    closedir(d);
    memcpy(prev_z, cur_z, ncur * sizeof *cur_z);
    *nprev = ncur;
    atomic_store_explicit(&runs->children, children, memory_order_relaxed);
    atomic_store_explicit(&runs->zombies, zombies, memory_order_relaxed);
}

/* ---- recovery ---- */

static void recover_one(sl_runs_t *runs, const char *name)
{
    char path[PATH_MAX + 300], line[PATH_MAX + 64];
    char session[SL_SESSION_ID_MAX + 1] = "", cgroup[PATH_MAX] = "";
    unsigned long long started = 0;
    snprintf(path, sizeof path, "%s/%s", runs->dir, name);
    FILE *f = fopen(path, "re");
    if (!f)
        return;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        int n = 0;
        if (strncmp(line, "session=", 8) == 0)
            n = snprintf(session, sizeof session, "%s", line + 8) >= (int)sizeof session;
        else if (strncmp(line, "cgroup=", 7) == 0)
            n = snprintf(cgroup, sizeof cgroup, "%s", line + 7) >= (int)sizeof cgroup;
        else if (strncmp(line, "started_ns=", 11) == 0)
            started = strtoull(line + 11, NULL, 10);
        if (n) /* not ours: too long */
            session[0] = cgroup[0] = '\0';
    }
    fclose(f);
    char id[24];
    size_t idl = strlen(name) - 4; /* without ".run" */
    if (idl == 0 || idl >= sizeof id) {
        unlink(path);
        return;
    }
    memcpy(id, name, idl);
    id[idl] = '\0';
    /* Only a cgroup of ours is signalled and removed. */
    if (cgroup[0] && (!strstr(cgroup, "/sluice.runs/r") || strstr(cgroup, "..")))
        cgroup[0] = '\0';
    /* The previous life's tree: its cgroup and every marked process. */
    sl_run_job_t kill_all = {.kind = SL_RUN__JOB_SIGNAL, .sig = SIGKILL, .pgid = 0};
    memcpy(kill_all.id, id, idl + 1);
    snprintf(kill_all.cgroup, sizeof kill_all.cgroup, "%s", cgroup);
    signal_job(runs, &kill_all);
    sl_info("run left by a previous life", "run=%s session=%s cgroup=%s", id, session,
            cgroup[0] ? cgroup : "-");
    if (!sl_session_id_valid(session, strlen(session))) {
        finish_job(runs, &kill_all);
        return;
    }
    sl_run__recover(runs, id, session, strlen(session), cgroup, started);
}

static void recover_all(sl_runs_t *runs)
{
    DIR *d = opendir(runs->dir);
    if (!d)
        return;
    for (struct dirent *de; (de = readdir(d));) {
        size_t l = strlen(de->d_name);
        if (l > 4 && strcmp(de->d_name + l - 4, ".run") == 0)
            recover_one(runs, de->d_name);
    }
    closedir(d);
}

/* ---- the thread ---- */

static void run_job(sl_runs_t *runs, sl_run_job_t *j)
{
    if (j->kind == SL_RUN__JOB_SPAWN) {
        sl_run_t *run = j->run;
        uint64_t t0 = sl_clock_now_ns();
        run->spawn_err = spawn(runs, run);
        atomic_fetch_add_explicit(&runs->spawn_ns_total, sl_clock_now_ns() - t0,
                                  memory_order_relaxed);
        /* CONTROL: never refused; the run holds our reference until then. */
        sl_actor_send(&run->a, &run->spawned_msg);
        sl_actor_release(&run->a);
    } else if (j->kind == SL_RUN__JOB_SIGNAL) {
        signal_job(runs, j);
    } else {
        finish_job(runs, j);
    }
    free(j);
}

static void *spawner_main(void *arg)
{
    sl_runs_t *runs = arg;
    int prev_z[64];
    uint32_t nprev = 0;
    uint64_t next_reap = 0;
    pthread_mutex_lock(&runs->lock);
    for (;;) {
        if (runs->recover_wanted) {
            runs->recover_wanted = false;
            pthread_mutex_unlock(&runs->lock);
            recover_all(runs);
            pthread_mutex_lock(&runs->lock);
        }
        sl_run_job_t *j = runs->jobs_head;
        if (j) {
            runs->jobs_head = j->next;
            if (!runs->jobs_head)
                runs->jobs_tail = NULL;
            pthread_mutex_unlock(&runs->lock);
            run_job(runs, j);
            pthread_mutex_lock(&runs->lock);
            continue;
        }
        if (runs->stopping)
            break;
        uint64_t now = sl_clock_now_ns();
        /* Until a process was started here nothing can be our child (an
         * orphan comes to this subreaper only from a run's tree), and a
         * walk opens every process's stat file: an idle server makes none. */
        if (!runs->spawned_any) {
            pthread_cond_wait(&runs->cond, &runs->lock); /* a job, recovery, the stop */
            continue;
        }
        if (now >= next_reap) {
            pthread_mutex_unlock(&runs->lock);
            reap(runs, prev_z, &nprev);
            pthread_mutex_lock(&runs->lock);
            next_reap = now + SL_RUN_REAP_INTERVAL_NS;
            continue;
        }
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t wait = next_reap - now;
        ts.tv_sec += (time_t)(wait / 1000000000ull);
        ts.tv_nsec += (long)(wait % 1000000000ull);
        if (ts.tv_nsec >= 1000000000L)
            ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&runs->cond, &runs->lock, &ts);
    }
    pthread_mutex_unlock(&runs->lock);
    if (runs->spawned_any)
        reap(runs, prev_z, &nprev);
    return NULL;
}

int sl_run__spawner_start(sl_runs_t *runs)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&runs->cond, &ca);
    pthread_condattr_destroy(&ca);
    if (!(runs->stack = malloc(SL_RUN_SPAWN_STACK_BYTES)))
        return -ENOMEM;
    int rc = pthread_create(&runs->thread, NULL, spawner_main, runs);
    if (rc != 0)
        return -rc;
    runs->thread_started = true;
    return 0;
}

void sl_run__spawner_stop(sl_runs_t *runs)
{
    if (runs->thread_started) {
        pthread_mutex_lock(&runs->lock);
        runs->stopping = true;
        pthread_cond_signal(&runs->cond);
        pthread_mutex_unlock(&runs->lock);
        pthread_join(runs->thread, NULL);
        runs->thread_started = false;
    }
    pthread_cond_destroy(&runs->cond);
    free(runs->stack);
    runs->stack = NULL;
}

void sl_run__job_post(sl_runs_t *runs, sl_run_job_t *job)
{
    job->next = NULL;
    pthread_mutex_lock(&runs->lock);
    if (runs->jobs_tail)
        runs->jobs_tail->next = job;
    else
        runs->jobs_head = job;
    runs->jobs_tail = job;
    pthread_cond_signal(&runs->cond);
    pthread_mutex_unlock(&runs->lock);
}

void sl_run__signal_tree(sl_run_t *run, int sig)
{
    sl_run_job_t *j = calloc(1, sizeof *j);
    if (!j) {
        if (run->pid > 0) /* the process group at least */
            kill(-run->pid, sig);
        return;
    }
    j->kind = SL_RUN__JOB_SIGNAL;
    j->sig = sig;
    j->pgid = run->pid;
    memcpy(j->id, run->id, sizeof j->id);
    memcpy(j->cgroup, run->cgroup, sizeof j->cgroup);
    sl_run__job_post(run->runs, j);
}
