/*
 * logfmt writer. See log.h for the contract.
 */
#include "runtime/log.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static _Atomic int min_level = SL_LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void sl_log_set_level(sl_log_level_t level)
{
    atomic_store_explicit(&min_level, (int)level, memory_order_relaxed);
}

int sl_log_enabled(sl_log_level_t level)
{
    return (int)level >= atomic_load_explicit(&min_level, memory_order_relaxed);
}

int sl_log_parse_level(const char *s, sl_log_level_t *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (sl_log_level_t)i;
            return 0;
        }
    }
    return -1;
}

static int needs_quote(const char *s, unsigned len)
{
    if (len == 0)
        return 1;
    for (unsigned i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c >= 0x7f)
            return 1;
    }
    return 0;
}

char *sl_log_quote(char *out, unsigned n, const char *s, unsigned len)
{
    unsigned o = 0;
    if (n == 0)
        return out;
    if (!needs_quote(s, len)) {
        unsigned c = len < n - 1 ? len : n - 1;
        memcpy(out, s, c);
        out[c] = '\0';
        return out;
    }
    if (o + 1 < n)
        out[o++] = '"';
    for (unsigned i = 0; i < len && o + 5 < n; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"': out[o++] = '\\'; out[o++] = '"'; break;
        case '\\': out[o++] = '\\'; out[o++] = '\\'; break;
        case '\n': out[o++] = '\\'; out[o++] = 'n'; break;
        case '\r': out[o++] = '\\'; out[o++] = 'r'; break;
        case '\t': out[o++] = '\\'; out[o++] = 't'; break;
        default:
            if (c < 0x20 || c >= 0x7f)
                o += (unsigned)snprintf(out + o, n - o, "\\x%02x", c);
            else
                out[o++] = (char)c;
        }
    }
    if (o + 1 < n)
        out[o++] = '"';
    out[o < n ? o : n - 1] = '\0';
    return out;
}

void sl_log(sl_log_level_t level, const char *msg, const char *fmt, ...)
{
    if (!sl_log_enabled(level))
        return;
    char line[SL_LOG_LINE_MAX];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    char qmsg[256];
    sl_log_quote(qmsg, sizeof qmsg, msg, (unsigned)strlen(msg));
    int n = snprintf(line, sizeof line,
                     "ts=%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ level=%s msg=%s",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                     tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000, level_names[level], qmsg);
    if (n < 0)
        return;
    if (fmt && fmt[0] && (size_t)n + 1 < sizeof line) {
        line[n++] = ' ';
        va_list ap;
        va_start(ap, fmt);
        int m = vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
        va_end(ap);
        if (m > 0)
            n += m;
    }
    const char trunc[] = " truncated=1";
    if ((size_t)n >= sizeof line - 1) {
        n = (int)(sizeof line - sizeof trunc - 1);
        memcpy(line + n, trunc, sizeof trunc - 1);
        n += (int)sizeof trunc - 1;
    }
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
}
