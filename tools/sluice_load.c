/*
 * sluice-load: the load-test harness. Parses flags (load_opts), runs one
 * scenario (load_run), prints the table and writes the JSON and plot
 * (load_report). Exit status: 0 ok, 1 errors or gaps, 2 usage, 3 target
 * unreachable.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "runtime/base.h"
#include "tools/load/load_opts.h"
#include "tools/load/load_report.h"
#include "tools/load/load_run.h"

int main(int argc, char **argv)
{
    static sl_load_opts_t opts;
    int rc = sl_load_opts_parse(&opts, argc, argv, stderr);
    if (rc == 1) {
        sl_load_opts_usage(stdout);
        return SL_LOAD_EXIT_OK;
    }
    if (rc < 0)
        return SL_LOAD_EXIT_USAGE;
    sl_load_run_t *run = sl_load_run_create(&opts);
    if (!run) {
        fprintf(stderr, "sluice-load: cannot set up the run: out of memory or io_uring "
                        "unavailable\n");
        return SL_LOAD_EXIT_ERRORS;
    }
    int code = sl_load_run_execute(run);
    const sl_load_result_t *res = sl_load_run_result(run);
    sl_load_report_table(stdout, res);
    if (opts.json_path[0]) {
        int jrc = sl_load_report_json(opts.json_path, res);
        if (jrc < 0)
            fprintf(stderr, "sluice-load: cannot write %s: %s\n", opts.json_path,
                    sl_strerror(jrc));
    }
    if (opts.plot_path[0]) {
        int prc = sl_load_report_plot(opts.plot_path, res);
        if (prc == -ENOENT)
            fprintf(stderr, "sluice-load: gnuplot not found; no plot written\n");
        else if (prc < 0)
            fprintf(stderr, "sluice-load: plot failed: %s\n", sl_strerror(prc));
    }
    sl_load_run_destroy(run);
    return code;
}
