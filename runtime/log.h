/*
 * logfmt logging to stderr: `ts=… level=… msg=… key=value …`.
 *
 * A line is formatted into a stack buffer (SL_LOG_LINE_MAX, longer lines are
 * cut and end in `truncated=1`) and written with one write(2) so lines from
 * different threads never interleave. Logging is for events an operator
 * wants to see (start, stop, errors, reaps); nothing logs per request or per
 * event at the default level, so the write stays off the hot path.
 */
#ifndef SL_RUNTIME_LOG_H
#define SL_RUNTIME_LOG_H

#include <stdarg.h>

typedef enum sl_log_level {
    SL_LOG_DEBUG = 0,
    SL_LOG_INFO = 1,
    SL_LOG_WARN = 2,
    SL_LOG_ERROR = 3,
} sl_log_level_t;

#define SL_LOG_LINE_MAX 1024

/* Sets the minimum level written. Main thread, before threads start. */
void sl_log_set_level(sl_log_level_t level);
/* Parses "debug|info|warn|error"; returns 0 or -1. */
int sl_log_parse_level(const char *s, sl_log_level_t *out);
int sl_log_enabled(sl_log_level_t level);

/* Writes one line: msg is the `msg=` value (quoted if it has spaces);
 * fmt/... are appended verbatim and must already be logfmt pairs
 * (`key=%d other=%s`). Use sl_log_quote for untrusted strings. Any thread. */
void sl_log(sl_log_level_t level, const char *msg, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Writes s into out (size n) as a logfmt value: bare when safe, otherwise
 * double-quoted with \" \\ \n \r \t and non-printables escaped as \xNN.
 * Always NUL-terminates; returns out. */
char *sl_log_quote(char *out, unsigned n, const char *s, unsigned len);

#define sl_debug(msg, ...) do { if (sl_log_enabled(SL_LOG_DEBUG)) sl_log(SL_LOG_DEBUG, msg, __VA_ARGS__); } while (0)
#define sl_info(msg, ...) sl_log(SL_LOG_INFO, msg, __VA_ARGS__)
#define sl_warn(msg, ...) sl_log(SL_LOG_WARN, msg, __VA_ARGS__)
#define sl_error(msg, ...) sl_log(SL_LOG_ERROR, msg, __VA_ARGS__)

#endif
