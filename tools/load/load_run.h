/*
 * One sluice-load run: sets up the control, publisher and subscriber
 * connections, drives the scenario through its phases (setup, publish,
 * drain), and leaves the results for load_report. A run always stops by
 * itself: every phase has a deadline, and a hard deadline bounds the whole.
 */
#ifndef SL_TOOLS_LOAD_RUN_H
#define SL_TOOLS_LOAD_RUN_H

#include "tools/load/load_opts.h"
#include "tools/load/load_report.h"

typedef struct sl_load_run sl_load_run_t;

/* Exit statuses of sluice-load. */
enum {
    SL_LOAD_EXIT_OK = 0,
    SL_LOAD_EXIT_ERRORS = 1,
    SL_LOAD_EXIT_USAGE = 2,
    SL_LOAD_EXIT_UNREACHABLE = 3,
};

/* Allocates a run for o (borrowed for the run's life). Returns owned, or
 * NULL when memory ran out. */
sl_load_run_t *sl_load_run_create(const sl_load_opts_t *o);
/* Runs the scenario to completion. Returns the exit status, also found in
 * the result. Main thread only; installs SIGINT/SIGTERM handlers that end
 * the run early (and report it). */
int sl_load_run_execute(sl_load_run_t *run);
/* The results; borrowed from run, valid until sl_load_run_destroy. */
const sl_load_result_t *sl_load_run_result(const sl_load_run_t *run);
void sl_load_run_destroy(sl_load_run_t *run);

#endif
