/*
 * Runner declarations: `--runner` values and `--runners-file` lines, one
 * form for both:
 *
 *   NAME=PATH [ARG ...] [| OPTION=VALUE ...]
 *
 * Tokens are separated by blanks (no quoting, no shell). Options:
 * mode=line|chunk, max-output=BYTES (k/m/g), wall=SECONDS (0: none),
 * concurrency=N (0: --max-runs), orphan-timeout=SECONDS|never,
 * kill-grace=SECONDS, max-args=N (<= 64), max-stdin=BYTES, env=K=V
 * (repeatable), memory-max=BYTES and pids-max=N (the run's cgroup, where
 * the memory and pids controllers are delegated). Unset options take the --run-* flags' values.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actors/run_int.h"
#include "runtime/clock.h"

#define TOKENS_MAX (SL_RUNNER_ARGS_MAX + SL_RUNNER_ENV_MAX + 16)

static bool name_valid(const char *s, size_t n)
{
    if (n < 1 || n > SL_RUNNER_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

static int parse_seconds(const char *v, uint64_t *out)
{
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (errno || end == v || *end || d < 0 || d > 365.0 * 86400)
        return -1;
    *out = (uint64_t)(d * 1e9);
    return 0;
}

static int parse_bytes(const char *v, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (errno || end == v)
        return -1;
    uint64_t mul = 1;
    if (*end == 'k' || *end == 'K')
        mul = 1024, end++;
    else if (*end == 'm' || *end == 'M')
        mul = 1024 * 1024, end++;
    else if (*end == 'g' || *end == 'G')
        mul = 1024ull * 1024 * 1024, end++;
    if (*end || x > UINT64_MAX / 2 / mul)
        return -1;
    *out = x * mul;
    return 0;
}

static int option(sl_runner_t *r, const char *tok, char *err, size_t n)
{
    const char *eq = strchr(tok, '=');
    if (!eq) {
        snprintf(err, n, "runner %s: option %s: expected KEY=VALUE", r->name, tok);
        return -1;
    }
    size_t kl = (size_t)(eq - tok);
    const char *v = eq + 1;
    uint64_t x = 0;
    int rc = 0;
#define KEY(k) (kl == strlen(k) && memcmp(tok, k, kl) == 0)
    if (KEY("mode")) {
        rc = strcmp(v, "line") == 0    ? (r->chunk = false, 0)
             : strcmp(v, "chunk") == 0 ? (r->chunk = true, 0)
                                       : -1;
    } else if (KEY("max-output")) {
        rc = parse_bytes(v, &r->max_output_bytes);
        rc = rc == 0 && r->max_output_bytes == 0 ? -1 : rc;
    } else if (KEY("max-stdin")) {
        rc = parse_bytes(v, &r->max_stdin_bytes);
    } else if (KEY("wall")) {
        rc = parse_seconds(v, &r->wall_ns);
    } else if (KEY("kill-grace")) {
        rc = parse_seconds(v, &r->kill_grace_ns);
    } else if (KEY("orphan-timeout")) {
        rc = strcmp(v, "never") == 0 ? (r->orphan_ns = 0, 0) : parse_seconds(v, &r->orphan_ns);
    } else if (KEY("concurrency")) {
        rc = parse_bytes(v, &x);
        r->concurrency = (uint32_t)x;
        rc = rc == 0 && x > SL_RUNS_MAX ? -1 : rc;
    } else if (KEY("max-args")) {
        rc = parse_bytes(v, &x);
        r->max_args = (uint32_t)x;
        rc = rc == 0 && x > SL_RUN_ARGS_MAX ? -1 : rc;
    } else if (KEY("memory-max")) {
        rc = parse_bytes(v, &r->memory_max);
    } else if (KEY("pids-max")) {
        rc = parse_bytes(v, &r->pids_max);
    } else if (KEY("env")) {
        if (!strchr(v, '=') || v[0] == '=' || r->nenv >= SL_RUNNER_ENV_MAX)
            rc = -1;
        else if (!(r->env[r->nenv++] = strdup(v)))
            rc = -1;
    } else {
        snprintf(err, n, "runner %s: unknown option %.*s", r->name, (int)kl, tok);
        return -1;
    }
#undef KEY
    if (rc != 0)
        snprintf(err, n, "runner %s: bad value in %s", r->name, tok);
    return rc;
}

static void defaults(sl_runner_t *r, const sl_config_t *cfg)
{
    r->chunk = cfg->run_mode && strcmp(cfg->run_mode, "chunk") == 0;
    r->max_output_bytes = cfg->run_max_output_bytes;
    r->wall_ns = cfg->run_wall_time_ns;
    r->orphan_ns = cfg->run_orphan_timeout_ns;
    r->kill_grace_ns = cfg->run_kill_grace_ns;
    r->max_stdin_bytes = SL_RUN_STDIN_PENDING_BYTES_MAX;
    r->concurrency = 0;
    r->max_args = SL_RUN_ARGS_MAX;
}

/* Parses one declaration (line is modified). */
static int parse_one(const sl_config_t *cfg, char *line, sl_runner_t *r, char *err, size_t n)
{
    char *tok[TOKENS_MAX];
    uint32_t nt = 0;
    for (char *save = NULL, *t = strtok_r(line, " \t\r\n", &save); t;
         t = strtok_r(NULL, " \t\r\n", &save)) {
        if (nt == TOKENS_MAX) {
            snprintf(err, n, "runner declaration has too many words: %.40s", line);
            return -1;
        }
        tok[nt++] = t;
    }
    char *eq = nt ? strchr(tok[0], '=') : NULL;
    if (!eq || !name_valid(tok[0], (size_t)(eq - tok[0])) || eq[1] != '/') {
        snprintf(err, n, "--runner: expected NAME=/ABSOLUTE/PATH [ARGS] [| OPTIONS], got %.80s",
                 nt ? tok[0] : "");
        return -1;
    }
    memset(r, 0, sizeof *r);
    memcpy(r->name, tok[0], (size_t)(eq - tok[0]));
    defaults(r, cfg);
    if (!(r->path = strdup(eq + 1)))
        return -1;
    uint32_t i = 1;
    for (; i < nt && strcmp(tok[i], "|") != 0; i++) {
        if (r->nargs == SL_RUNNER_ARGS_MAX) {
            snprintf(err, n, "runner %s: more than %d arguments", r->name, SL_RUNNER_ARGS_MAX);
            return -1;
        }
        if (!(r->args[r->nargs++] = strdup(tok[i])))
            return -1;
    }
    for (i++; i < nt; i++) {
        if (option(r, tok[i], err, n) != 0)
            return -1;
    }
    return 0;
}

static int add(const sl_config_t *cfg, const char *decl, sl_runner_t *runners, int *count,
               char *err, size_t n)
{
    char line[SL_RUNNER_LINE_MAX];
    if (strlen(decl) >= sizeof line) {
        snprintf(err, n, "runner declaration longer than %d bytes", SL_RUNNER_LINE_MAX);
        return -1;
    }
    if (*count == SL_RUNNERS_MAX) {
        snprintf(err, n, "more than %d runners", SL_RUNNERS_MAX);
        return -1;
    }
    strcpy(line, decl);
    sl_runner_t *r = &runners[*count];
    int rc = parse_one(cfg, line, r, err, n);
    (*count)++; /* freed with the rest, even when half parsed */
    if (rc != 0)
        return -1;
    for (int k = 0; k < *count - 1; k++) {
        if (strcmp(runners[k].name, r->name) == 0) {
            snprintf(err, n, "runner %s declared twice", r->name);
            return -1;
        }
    }
    return 0;
}

static bool blank_or_comment(const char *s)
{
    s += strspn(s, " \t\r\n");
    return *s == '\0' || *s == '#';
}

int sl_run__runners_parse(const sl_config_t *cfg, sl_runner_t *runners, char *err, size_t n)
{
    int count = 0;
    for (uint32_t i = 0; i < cfg->runners.count; i++) {
        if (add(cfg, cfg->runners.items[i], runners, &count, err, n) != 0)
            goto fail;
    }
    if (cfg->runners_file && *cfg->runners_file) {
        FILE *f = fopen(cfg->runners_file, "re");
        if (!f) {
            snprintf(err, n, "--runners-file %s: %s", cfg->runners_file, strerror(errno));
            goto fail;
        }
        char line[SL_RUNNER_LINE_MAX];
        int rc = 0;
        while (rc == 0 && fgets(line, sizeof line, f)) {
            if (!blank_or_comment(line))
                rc = add(cfg, line, runners, &count, err, n);
        }
        fclose(f);
        if (rc != 0)
            goto fail;
    }
    return count;
fail:
    sl_run__runners_free(runners, count);
    return -1;
}

void sl_run__runners_free(sl_runner_t *runners, int count)
{
    for (int i = 0; i < count; i++) {
        free(runners[i].path);
        for (uint32_t k = 0; k < runners[i].nargs; k++)
            free(runners[i].args[k]);
        for (uint32_t k = 0; k < runners[i].nenv; k++)
            free(runners[i].env[k]);
        memset(&runners[i], 0, sizeof runners[i]);
    }
}

int sl_run_config_check(const sl_config_t *cfg, char *err, size_t n)
{
    sl_runner_t *tmp = calloc(SL_RUNNERS_MAX, sizeof *tmp);
    if (!tmp) {
        snprintf(err, n, "out of memory");
        return -1;
    }
    int count = sl_run__runners_parse(cfg, tmp, err, n);
    if (count > 0)
        sl_run__runners_free(tmp, count);
    free(tmp);
    return count < 0 ? -1 : 0;
}
