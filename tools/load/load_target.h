/*
 * What sluice-load learns about the server under load: its CPU time and
 * memory from /proc/PID (when --target-pid is given) and the figures its
 * GET /health JSON reports (when it has one).
 */
#ifndef SL_TOOLS_LOAD_TARGET_H
#define SL_TOOLS_LOAD_TARGET_H

#include <stddef.h>
#include <stdint.h>

/* user + system CPU seconds of pid (all its threads). Returns 0, or -errno
 * (-ENOENT once the process is gone), or SL_EPROTO if stat is unreadable. */
int sl_load_target_cpu(int pid, double *cpu_s);
/* Resident set size in bytes. Returns 0 or -errno / SL_EPROTO. */
int sl_load_target_rss(int pid, int64_t *rss_bytes);
/* Open file descriptors of pid. Returns 0 or -errno. */
int sl_load_target_fds(int pid, int64_t *fds);

/* Figures read from a /health body; -1 where the key is absent. */
typedef struct sl_load_health {
    int64_t rss_bytes;
    int64_t open_fds;
    int64_t connections;
    int64_t streams;
    double loop_lag_ms_max; /* the largest of every reactor's value */
} sl_load_health_t;

/* Parses a NUL-terminated JSON body (borrowed) loosely: numbers are found by
 * key anywhere in the text. Returns 0, or SL_EPROTO when no key was found. */
int sl_load_health_parse(const char *json, sl_load_health_t *out);

#endif
