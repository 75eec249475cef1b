/*
 * /proc sampling and /health parsing. See load_target.h.
 */
#include "tools/load/load_target.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/base.h"

static int read_small(const char *path, char *buf, size_t n)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -errno;
    size_t k = fread(buf, 1, n - 1, f);
    fclose(f);
    buf[k] = '\0';
    return 0;
}

int sl_load_target_cpu(int pid, double *cpu_s)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    int rc = read_small(path, buf, sizeof(buf));
    if (rc < 0)
        return rc;
    /* The command name may hold spaces and parentheses: fields are counted
     * from the last ')'. utime and stime are fields 14 and 15. */
    char *p = strrchr(buf, ')');
    if (!p)
        return SL_EPROTO;
    unsigned long long ut = 0, st = 0;
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return SL_EPROTO;
    long hz = sysconf(_SC_CLK_TCK);
    *cpu_s = (double)(ut + st) / (double)(hz > 0 ? hz : 100);
    return 0;
}

int sl_load_target_rss(int pid, int64_t *rss_bytes)
{
    char path[64], buf[256];
    snprintf(path, sizeof(path), "/proc/%d/statm", pid);
    int rc = read_small(path, buf, sizeof(buf));
    if (rc < 0)
        return rc;
    long long size, res;
    if (sscanf(buf, "%lld %lld", &size, &res) != 2)
        return SL_EPROTO;
    *rss_bytes = res * (int64_t)sysconf(_SC_PAGESIZE);
    return 0;
}

int sl_load_target_fds(int pid, int64_t *fds)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/fd", pid);
    DIR *d = opendir(path);
    if (!d)
        return -errno;
    int64_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] != '.')
            n++;
    }
    closedir(d);
    *fds = n;
    return 0;
}

/* Calls back with each number that follows "key": in json. */
static int each_number(const char *json, const char *key, double *vals, int max)
{
    char pat[64];
    snprintf(pat, sizeof(pat), "\"%s\"", key);
    int n = 0;
    for (const char *p = strstr(json, pat); p && n < max; p = strstr(p + 1, pat)) {
        const char *q = p + strlen(pat);
        while (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r')
            q++;
        if (*q != ':')
            continue;
        char *end;
        double v = strtod(q + 1, &end);
        if (end != q + 1)
            vals[n++] = v;
    }
    return n;
}

static int64_t first_int(const char *json, const char *key, int *found)
{
    double v;
    if (each_number(json, key, &v, 1) != 1)
        return -1;
    (*found)++;
    return (int64_t)v;
}

int sl_load_health_parse(const char *json, sl_load_health_t *out)
{
    int found = 0;
    out->rss_bytes = first_int(json, "rss_bytes", &found);
    out->open_fds = first_int(json, "open_fds", &found);
    out->connections = first_int(json, "connections", &found);
    out->streams = first_int(json, "streams", &found);
    double lags[64];
    int n = each_number(json, "loop_lag_ms_max", lags, (int)SL_ARRAY_LEN(lags));
    out->loop_lag_ms_max = -1;
    for (int i = 0; i < n; i++) {
        if (lags[i] > out->loop_lag_ms_max)
            out->loop_lag_ms_max = lags[i];
    }
    found += n > 0;
    return found ? 0 : SL_EPROTO;
}
