/*
 * Flag parsing. See flags.h.
 */
#include "runtime/flags.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static int parse_u64(const char *s, uint64_t *out)
{
    if (!s || !*s || *s == '-' || !isdigit((unsigned char)*s))
        return -1;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return -1;
    *out = v;
    return 0;
}

static int parse_seconds(const char *s, uint64_t *ns)
{
    if (!s || !*s || !(isdigit((unsigned char)*s) || *s == '.'))
        return -1;
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (errno || *end || v < 0 || v > 1e9)
        return -1;
    *ns = (uint64_t)(v * 1e9 + 0.5);
    return 0;
}

static int parse_bytes(const char *s, uint64_t *out)
{
    if (!s || !*s || !isdigit((unsigned char)*s))
        return -1;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno)
        return -1;
    uint64_t mul = 1;
    switch (tolower((unsigned char)*end)) {
    case '\0': break;
    case 'k': mul = 1ull << 10; end++; break;
    case 'm': mul = 1ull << 20; end++; break;
    case 'g': mul = 1ull << 30; end++; break;
    default: return -1;
    }
    if (*end == 'i' || *end == 'I')
        end++;
    if (*end == 'b' || *end == 'B')
        end++;
    if (*end || v > UINT64_MAX / mul)
        return -1;
    *out = v * mul;
    return 0;
}

static int parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) { *out = true; return 0; }
        if (strcasecmp(s, no[i]) == 0) { *out = false; return 0; }
    }
    return -1;
}

static int in_choices(const char *choices, const char *v)
{
    size_t n = strlen(v);
    const char *p = choices;
    while (*p) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && strncmp(p, v, n) == 0)
            return 1;
        if (!bar)
            break;
        p = bar + 1;
    }
    return 0;
}

static const char *expect_text(const sl_flag_t *f, char *buf, size_t n)
{
    switch (f->kind) {
    case SL_FLAG_U64:
    case SL_FLAG_U32:
        snprintf(buf, n, "an integer in %" PRIu64 "..%" PRIu64, f->min, f->max);
        break;
    case SL_FLAG_SECONDS:
        snprintf(buf, n, "seconds in %g..%g", (double)f->min / 1e9, (double)f->max / 1e9);
        break;
    case SL_FLAG_BYTES:
        snprintf(buf, n, "a byte count (suffix k/m/g) in %" PRIu64 "..%" PRIu64, f->min, f->max);
        break;
    case SL_FLAG_BOOL: snprintf(buf, n, "true or false"); break;
    case SL_FLAG_ENUM: snprintf(buf, n, "one of %s", f->choices); break;
    default: snprintf(buf, n, "a value"); break;
    }
    return buf;
}

/* Stores one textual value into f's target. Returns 0 or -1 (bad value). */
static int apply(const sl_flag_t *f, const char *v)
{
    uint64_t u = 0;
    switch (f->kind) {
    case SL_FLAG_STRING:
        *(const char **)f->target = v;
        return 0;
    case SL_FLAG_LIST: {
        sl_flag_list_t *l = f->target;
        if (l->count >= SL_FLAG_LIST_MAX)
            return -1;
        l->items[l->count++] = v;
        return 0;
    }
    case SL_FLAG_ENUM:
        if (!in_choices(f->choices, v))
            return -1;
        *(const char **)f->target = v;
        return 0;
    case SL_FLAG_BOOL:
        return parse_bool(v, (bool *)f->target);
    case SL_FLAG_U64:
    case SL_FLAG_U32:
        if (parse_u64(v, &u) || u < f->min || u > f->max)
            return -1;
        if (f->kind == SL_FLAG_U32)
            *(uint32_t *)f->target = (uint32_t)u;
        else
            *(uint64_t *)f->target = u;
        return 0;
    case SL_FLAG_SECONDS:
        if (parse_seconds(v, &u) || u < f->min || u > f->max)
            return -1;
        *(uint64_t *)f->target = u;
        return 0;
    case SL_FLAG_BYTES:
        if (parse_bytes(v, &u) || u < f->min || u > f->max)
            return -1;
        *(uint64_t *)f->target = u;
        return 0;
    }
    return -1;
}

static void env_name(const char *prefix, const char *name, char *out, size_t n)
{
    size_t o = (size_t)snprintf(out, n, "%s", prefix);
    for (const char *p = name; *p && o + 1 < n; p++)
        out[o++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
    out[o < n ? o : n - 1] = '\0';
}

static const sl_flag_t *find(const sl_flag_t *flags, size_t nflags, const char *name, size_t len)
{
    for (size_t i = 0; i < nflags; i++)
        if (strlen(flags[i].name) == len && strncmp(flags[i].name, name, len) == 0)
            return &flags[i];
    return NULL;
}

static int bad_value(const sl_flag_t *f, const char *src, const char *v, char *err, size_t n)
{
    char exp[160];
    snprintf(err, n, "%s --%s: expected %s, got \"%s\"", src, f->name,
             expect_text(f, exp, sizeof exp), v);
    return -1;
}

static int apply_defaults_and_env(const sl_flag_t *flags, size_t nflags, const char *prefix,
                                  char *err, size_t n)
{
    for (size_t i = 0; i < nflags; i++) {
        const sl_flag_t *f = &flags[i];
        if (f->def && f->kind != SL_FLAG_LIST && apply(f, f->def) != 0)
            return bad_value(f, "default", f->def, err, n);
        char ename[96];
        env_name(prefix, f->name, ename, sizeof ename);
        const char *ev = getenv(ename);
        if (ev && apply(f, ev) != 0)
            return bad_value(f, ename, ev, err, n);
    }
    return 0;
}

int sl_flags_parse(const sl_flag_t *flags, size_t nflags, int argc, char **argv,
                   const char *env_prefix, char *err, size_t n)
{
    if (apply_defaults_and_env(flags, nflags, env_prefix, err, n) != 0)
        return -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
            return 1;
        if (strcmp(a, "--version") == 0)
            return 2;
        if (strncmp(a, "--", 2) != 0) {
            snprintf(err, n, "unexpected argument \"%s\" (flags start with --; see --help)", a);
            return -1;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const sl_flag_t *f = find(flags, nflags, name, len);
        if (!f) {
            snprintf(err, n, "unknown flag \"%.*s\" (see --help)", (int)(len + 2), a);
            return -1;
        }
        const char *v = eq ? eq + 1 : NULL;
        if (!v && f->kind == SL_FLAG_BOOL && (i + 1 >= argc || strncmp(argv[i + 1], "--", 2) == 0))
            v = "true";
        if (!v) {
            if (i + 1 >= argc) {
                snprintf(err, n, "flag --%s needs a value", f->name);
                return -1;
            }
            v = argv[++i];
        }
        if (apply(f, v) != 0)
            return bad_value(f, "flag", v, err, n);
    }
    return 0;
}

void sl_flags_usage(FILE *out, const char *prog, const char *summary, const sl_flag_t *flags,
                    size_t nflags, const char *prefix)
{
    fprintf(out, "usage: %s [flags]\n\n%s\n\nflags (each has an environment twin):\n", prog,
            summary);
    for (size_t i = 0; i < nflags; i++) {
        const sl_flag_t *f = &flags[i];
        char ename[96];
        env_name(prefix, f->name, ename, sizeof ename);
        fprintf(out, "  --%-24s %s\n  %-26s env %s, default %s\n", f->name, f->help, "", ename,
                f->def ? f->def : "(none)");
    }
    fprintf(out, "\nexit codes: 0 clean shutdown, 1 runtime failure, 2 bad flags or config\n");
}
