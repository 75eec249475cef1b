/*
 * sluiced: the server entry point. Parses flags, starts the server, waits
 * for SIGTERM/SIGINT on the main thread (signals are blocked in every other
 * thread), then drains and exits. SIGHUP reloads the TLS certificate and
 * key (actors/server_tls.c) and the wait goes on.
 *
 * Exit codes: 0 clean shutdown, 1 runtime failure (cannot bind, no
 * io_uring, …), 2 bad flags or configuration.
 *
 * `sluiced --check DATA_DIR [--repair]` runs the offline checker instead
 * (storage/check.h; exit 0 clean, 1 damage found, 2 usage).
 */
#include <signal.h>
#include <sys/prctl.h>
#include <stdio.h>
#include <string.h>

#include "actors/config.h"
#include "actors/server.h"
#include "runtime/buf.h"
#include "runtime/log.h"
#include "storage/check.h"

int main(int argc, char **argv)
{
    /* The offline checker runs instead of the server (storage/check.h). */
    if (argc >= 2 && strcmp(argv[1], "--check") == 0)
        return sl_check_main(argc - 2, argv + 2);
    static sl_config_t cfg;
    char err[512];
    int rc = sl_config_load(&cfg, argc, argv, err, sizeof err);
    if (rc == 1 || rc == 2)
        return 0;
    if (rc < 0) {
        fprintf(stderr, "sluiced: %s\n", err);
        return 2;
    }
    sl_log_level_t level = SL_LOG_INFO;
    sl_log_parse_level(cfg.log_level, &level);
    sl_log_set_level(level);

    /* Block before any thread exists so every thread inherits the mask. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP); /* reloads the TLS certificate and key */
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* Runs (actors/run.h): processes a run's child leaves behind come back
     * to us when their parent dies, to be reaped and counted. */
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    static sl_server_t srv;
    if (sl_server_init(&srv, &cfg) != 0 || sl_server_start(&srv) != 0) {
        sl_error("startup failed", "%s", "");
        return 1;
    }
    /* sigwaitinfo, not sigwait: the log names who asked us to stop. */
    siginfo_t si;
    memset(&si, 0, sizeof si);
    int sig;
    for (;;) {
        if ((sig = sigwaitinfo(&set, &si)) < 0)
            continue;
        if (sig != SIGHUP)
            break;
        if (sl_server_tls_reload(&srv) == SL_ENOTFOUND)
            sl_info("SIGHUP ignored: no --tls-cert to reload", "from_pid=%d", (int)si.si_pid);
    }
    sl_info("shutting down", "signal=%s from_pid=%d grace_s=%.3f", sig == SIGTERM ? "TERM" : "INT",
            (int)si.si_pid, (double)cfg.shutdown_grace_ns / 1e9);
    sl_server_shutdown(&srv);
    sl_chunk_pool_drain(); /* chunks the main thread released at shutdown */
    return 0;
}
