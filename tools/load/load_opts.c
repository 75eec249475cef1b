/*
 * Flag table, environment twins, presets and scenario files. See
 * load_opts.h for precedence.
 */
#include "tools/load/load_opts.h"

#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "runtime/base.h"
#include "tools/load/load_event.h"

typedef enum kind { K_U32, K_U64, K_INT, K_DBL, K_STR, K_BOOL, K_ENUM } kind_t;

typedef struct flag {
    const char *name;
    kind_t kind;
    size_t off;
    size_t len;                /* K_STR: buffer size */
    const char *const *names;  /* K_ENUM: value names, index = enum value */
    const char *def;
    const char *help;
} flag_t;

static const char *const proto_names[] = {"h2", "h1", "rpc", NULL};
static const char *const scenario_names[] = {"fanout", "sessions", "churn", "publish",
                                             "slow",   "stall",    NULL};
static const char *const stall_names[] = {"resume", "close", "hold", NULL};
static const char *const progress_names[] = {"auto", "tty", "plain", "off", NULL};
static const char *const from_names[] = {"live", "first", NULL};

#define O(f) offsetof(sl_load_opts_t, f)
#define S(f) sizeof(((sl_load_opts_t *)0)->f)

static const flag_t flags[] = {
    {"target", K_STR, O(target), S(target), NULL, "127.0.0.1:8080", "server HOST:PORT"},
    {"proto", K_ENUM, O(proto), 0, proto_names, "h2",
     "h2 (cleartext, prior knowledge) | h1 | rpc (msgpack-RPC at --rpc-target)"},
    {"rpc-target", K_STR, O(rpc_target), S(rpc_target), NULL, "127.0.0.1:7070",
     "msgpack-RPC HOST:PORT or unix:PATH; with --proto rpc every connection goes here"},
    {"scenario", K_ENUM, O(scenario), 0, scenario_names, "fanout",
     "fanout|sessions|churn|publish|slow|stall (sets the defaults below)"},
    {"publishers", K_U32, O(publishers), 0, NULL, "1", "publisher connections"},
    {"subscribers", K_U32, O(subscribers), 0, NULL, "100", "steady SSE subscribers"},
    {"sessions", K_U32, O(sessions), 0, NULL, "1",
     "sessions; events and subscribers are spread round-robin"},
    {"streams-per-conn", K_U32, O(streams_per_conn), 0, NULL, "1",
     "SSE streams per HTTP/2 connection (h1: 1)"},
    {"rate", K_DBL, O(rate), 0, NULL, "1000", "events/s over all publishers; 0 = max"},
    {"size", K_U32, O(size_bytes), 0, NULL, "64", "event payload bytes (>= 48)"},
    {"duration", K_DBL, O(duration_s), 0, NULL, "10", "seconds of publishing"},
    {"events", K_U64, O(events), 0, NULL, "0", "stop after this many events (0 = no bound)"},
    {"pub-inflight", K_U32, O(pub_inflight), 0, NULL, "64",
     "publish requests outstanding per publisher (h1, rpc: pipelined)"},
    {"pipeline", K_U32, O(pub_inflight), 0, NULL, "64", "the same as --pub-inflight"},
    {"durable", K_BOOL, O(durable), 0, NULL, "0",
     "publishes are acknowledged after fsync (rpc {durable: true}; http ?durable=1)"},
    {"from", K_ENUM, O(from_first), 0, from_names, "first",
     "first: subscribe with ?from=1 (exact counts); live"},
    {"create", K_BOOL, O(create), 0, NULL, "1", "PUT each session before subscribing"},
    {"ds", K_BOOL, O(ds), 0, NULL, "0",
     "Durable Streams face: PUT/POST /v1/stream/{id} (text/plain), SSE reads with live=sse "
     "(offset=-1 with --from first, else offset=now); appends are acknowledged after fsync"},
    {"drain", K_DBL, O(drain_s), 0, NULL, "5", "seconds to wait for deliveries after publishing"},
    {"connect-timeout", K_DBL, O(connect_timeout_s), 0, NULL, "10",
     "seconds to connect and subscribe everyone"},
    {"connect-concurrency", K_U32, O(connect_concurrency), 0, NULL, "256",
     "connections being set up at once"},
    {"churn-rate", K_DBL, O(churn_rate), 0, NULL, "0", "churn subscribers started per second"},
    {"churn-hold", K_DBL, O(churn_hold_s), 0, NULL, "1", "seconds a churn subscriber stays"},
    {"churn-max", K_U32, O(churn_max), 0, NULL, "1000", "churn subscribers alive at once"},
    {"slow-fraction", K_DBL, O(slow_fraction), 0, NULL, "0",
     "fraction of subscriber connections that read slowly"},
    {"slow-rate", K_U64, O(slow_rate), 0, NULL, "8192", "bytes/s a slow connection reads"},
    {"stall-fraction", K_DBL, O(stall_fraction), 0, NULL, "0",
     "fraction of subscriber connections that stop reading"},
    {"stall-after", K_DBL, O(stall_after_s), 0, NULL, "2", "seconds into the run a stall starts"},
    {"stall-for", K_DBL, O(stall_for_s), 0, NULL, "3", "seconds a stall lasts"},
    {"stall-then", K_ENUM, O(stall_then), 0, stall_names, "resume",
     "after a stall: resume | close (vanish, RST) | hold (never read again)"},
    {"rcvbuf", K_U32, O(rcvbuf), 0, NULL, "0", "SO_RCVBUF of subscriber sockets (0 = default)"},
    {"allow-gaps", K_BOOL, O(allow_gaps), 0, NULL, "0",
     "gaps on slow/stalled subscribers are not errors"},
    {"target-pid", K_INT, O(target_pid), 0, NULL, "0",
     "server pid: CPU time and RSS from /proc (0 = none)"},
    {"health", K_BOOL, O(health), 0, NULL, "1", "sample GET /health once a second"},
    {"session-prefix", K_STR, O(session_prefix), S(session_prefix), NULL, "",
     "session id prefix (default load-PID-TIME)"},
    {"json", K_STR, O(json_path), S(json_path), NULL, "", "write the JSON result here"},
    {"plot", K_STR, O(plot_path), S(plot_path), NULL, "",
     "write a .png or .svg plot here (needs gnuplot)"},
    {"token", K_STR, O(token), S(token), NULL, "",
     "access token (JWT): Authorization: Bearer on HTTP, `auth` first on RPC [env SLUICE_TOKEN too]"},
    {"progress", K_ENUM, O(progress), 0, progress_names, "auto", "auto|tty|plain|off"},
    {"tls", K_BOOL, O(tls), 0, NULL, "0",
     "TLS to the target (h2 and h1 by ALPN; rpc too); --target https://HOST:PORT sets it"},
    {"insecure", K_BOOL, O(insecure), 0, NULL, "0", "TLS: accept any server certificate"},
    {"cacert", K_STR, O(cacert), S(cacert), NULL, "", "TLS: trusted CA file (default: system)"},
};

/* Scenario presets: flag=value pairs applied before file, env and argv. */
static const char *const presets[][8] = {
    [SL_LOAD_SC_FANOUT] = {"subscribers=100", "sessions=1", "rate=1000", NULL},
    [SL_LOAD_SC_SESSIONS] = {"subscribers=100", "sessions=100", "rate=1000", NULL},
    [SL_LOAD_SC_CHURN] = {"subscribers=10", "rate=200", "churn-rate=50", "churn-hold=1", NULL},
    [SL_LOAD_SC_PUBLISH] = {"subscribers=0", "publishers=4", "rate=0", NULL},
    [SL_LOAD_SC_SLOW] = {"subscribers=100", "rate=1000", "slow-fraction=0.1", NULL},
    [SL_LOAD_SC_STALL] = {"subscribers=100", "rate=1000", "stall-fraction=0.1", NULL},
};

const char *sl_load_scenario_name(sl_load_scenario_t s)
{
    return scenario_names[s];
}

const char *sl_load_proto_name(sl_load_proto_t p)
{
    return proto_names[p];
}

const char *sl_load_opts_target(const sl_load_opts_t *o)
{
    return o->proto == SL_LOAD_PROTO_RPC ? o->rpc_target : o->target;
}

static const flag_t *find_flag(const char *name, size_t len)
{
    for (size_t i = 0; i < SL_ARRAY_LEN(flags); i++) {
        if (strlen(flags[i].name) == len && memcmp(flags[i].name, name, len) == 0)
            return &flags[i];
    }
    return NULL;
}

static int set_number(const flag_t *f, void *p, const char *v)
{
    char *end;
    errno = 0;
    if (f->kind == K_DBL) {
        double d = strtod(v, &end);
        if (errno || end == v || *end || !(d >= 0))
            return -1;
        *(double *)p = d;
        return 0;
    }
    if (*v == '-' && f->kind != K_INT)
        return -1;
    long long n = strtoll(v, &end, 10);
    if (errno || end == v || *end)
        return -1;
    if (f->kind == K_U32 && (n < 0 || n > UINT32_MAX))
        return -1;
    if (f->kind == K_INT && (n < 0 || n > INT32_MAX))
        return -1;
    if (f->kind == K_U32)
        *(uint32_t *)p = (uint32_t)n;
    else if (f->kind == K_INT)
        *(int *)p = (int)n;
    else
        *(uint64_t *)p = (uint64_t)n;
    return 0;
}

static int set_enum(const flag_t *f, void *p, const char *v)
{
    for (int i = 0; f->names[i]; i++) {
        if (strcmp(f->names[i], v) == 0) {
            if (f->off == O(from_first))
                *(bool *)p = i == 1;
            else
                *(int *)p = i;
            return 0;
        }
    }
    return -1;
}

static int set_flag(sl_load_opts_t *o, const flag_t *f, const char *v)
{
    void *p = (char *)o + f->off;
    switch (f->kind) {
    case K_STR:
        if (strlen(v) >= f->len)
            return -1;
        strcpy(p, v);
        return 0;
    case K_BOOL:
        if (!strcmp(v, "1") || !strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "on"))
            *(bool *)p = true;
        else if (!strcmp(v, "0") || !strcmp(v, "false") || !strcmp(v, "no") ||
                 !strcmp(v, "off"))
            *(bool *)p = false;
        else
            return -1;
        return 0;
    case K_ENUM:
        return set_enum(f, p, v);
    default:
        return set_number(f, p, v);
    }
}

static int apply(sl_load_opts_t *o, const char *name, size_t len, const char *v, const char *src,
                 FILE *err)
{
    const flag_t *f = find_flag(name, len);
    if (!f) {
        fprintf(err, "sluice-load: unknown flag --%.*s (%s); see --help\n", (int)len, name, src);
        return -1;
    }
    if (set_flag(o, f, v) < 0) {
        fprintf(err, "sluice-load: bad value '%s' for --%s (%s)\n", v, f->name, src);
        return -1;
    }
    return 0;
}

static int apply_pair(sl_load_opts_t *o, const char *pair, const char *src, FILE *err)
{
    const char *eq = strchr(pair, '=');
    sl_assert(eq != NULL);
    return apply(o, pair, (size_t)(eq - pair), eq + 1, src, err);
}

static void env_name(const flag_t *f, char *out, size_t n)
{
    size_t k = (size_t)snprintf(out, n, "SLUICE_LOAD_");
    for (const char *s = f->name; *s && k + 1 < n; s++)
        out[k++] = *s == '-' ? '_' : (char)toupper((unsigned char)*s);
    out[k] = '\0';
}

void sl_load_opts_usage(FILE *f)
{
    fprintf(f,
            "usage: sluice-load [flags]\n"
            "Loads a server speaking sluice's publish/subscribe subset (POST and SSE GET on\n"
            "/v1/sessions/{id}/events) over HTTP/2 cleartext or HTTP/1.1, or its msgpack-RPC\n"
            "calls (publish, subscribe with event/gap notifications, create, health), then\n"
            "reports deliveries/s, end-to-end latency, gaps and the server's CPU and memory.\n\n"
            "  --config FILE  scenario file: one 'flag = value' per line, # comments\n"
            "                 [env SLUICE_LOAD_CONFIG]\n"
            "  --help         this text\n");
    for (size_t i = 0; i < SL_ARRAY_LEN(flags); i++) {
        char env[64];
        env_name(&flags[i], env, sizeof(env));
        fprintf(f, "  --%-20s %s [default %s; env %s]\n", flags[i].name, flags[i].help,
                *flags[i].def ? flags[i].def : "none", env);
    }
    fprintf(f, "\nScenario presets (applied before --config, env and flags):\n");
    for (size_t s = 0; s < SL_ARRAY_LEN(presets); s++) {
        fprintf(f, "  %-9s", scenario_names[s]);
        for (int i = 0; presets[s][i]; i++)
            fprintf(f, " %s", presets[s][i]);
        fputc('\n', f);
    }
    fprintf(f, "\nExit status: 0 ok; 1 the run saw errors, gaps or missing events; 2 usage;\n"
               "3 could not reach the target.\n");
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

/* Scenario file lines: `name = value`, `name value` or `--name=value`. */
static int apply_file(sl_load_opts_t *o, const char *path, FILE *err)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(err, "sluice-load: cannot read --config %s: %s\n", path, strerror(errno));
        return -1;
    }
    char line[1024];
    int rc = 0;
    while (rc == 0 && fgets(line, sizeof(line), f)) {
        char *s = trim(line);
        if (*s == '#' || *s == '\0')
            continue;
        while (*s == '-')
            s++;
        size_t k = strcspn(s, "= \t");
        char *v = s + k;
        if (*v)
            *v++ = '\0';
        v = trim(v);
        if (*v == '=')
            v = trim(v + 1);
        rc = apply(o, s, strlen(s), v, path, err);
    }
    fclose(f);
    return rc;
}

/* Finds `--NAME VALUE` or `--NAME=VALUE` at argv[*i]; advances *i. */
static int arg_pair(int argc, char **argv, int *i, const char **name, size_t *len,
                    const char **val, FILE *err)
{
    const char *a = argv[*i];
    if (strncmp(a, "--", 2) != 0) {
        fprintf(err, "sluice-load: unexpected argument '%s'; see --help\n", a);
        return -1;
    }
    a += 2;
    const char *eq = strchr(a, '=');
    *name = a;
    if (eq) {
        *len = (size_t)(eq - a);
        *val = eq + 1;
        return 0;
    }
    *len = strlen(a);
    const flag_t *f = find_flag(a, *len);
    if (f && f->kind == K_BOOL) {
        *val = "1"; /* a bare boolean flag turns it on */
        return 0;
    }
    if (*i + 1 >= argc) {
        fprintf(err, "sluice-load: --%s needs a value\n", a);
        return -1;
    }
    *val = argv[++*i];
    return 0;
}

/* Finds the scenario and config file first: they decide the base. */
static int pre_scan(int argc, char **argv, const char **scenario, const char **config,
                    FILE *err)
{
    *scenario = getenv("SLUICE_LOAD_SCENARIO");
    *config = getenv("SLUICE_LOAD_CONFIG");
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
            return 1;
        const char *name, *val;
        size_t len;
        if (arg_pair(argc, argv, &i, &name, &len, &val, err) < 0)
            return -1;
        if (len == 8 && !memcmp(name, "scenario", 8))
            *scenario = val;
        else if (len == 6 && !memcmp(name, "config", 6))
            *config = val;
    }
    return 0;
}

static int apply_env(sl_load_opts_t *o, FILE *err)
{
    for (size_t i = 0; i < SL_ARRAY_LEN(flags); i++) {
        char env[64];
        env_name(&flags[i], env, sizeof(env));
        const char *v = getenv(env);
        if (v && set_flag(o, &flags[i], v) < 0) {
            fprintf(err, "sluice-load: bad value '%s' in %s\n", v, env);
            return -1;
        }
    }
    return 0;
}

static int apply_argv(sl_load_opts_t *o, int argc, char **argv, FILE *err)
{
    for (int i = 1; i < argc; i++) {
        const char *name, *val;
        size_t len;
        if (arg_pair(argc, argv, &i, &name, &len, &val, err) < 0)
            return -1;
        if (len == 6 && !memcmp(name, "config", 6))
            continue;
        if (apply(o, name, len, val, "command line", err) < 0)
            return -1;
    }
    return 0;
}

/* unix:PATH (--rpc-target only). */
static int resolve_unix(sl_load_opts_t *o, const char *path, FILE *err)
{
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof(un.sun_path)) {
        fprintf(err, "sluice-load: --rpc-target unix:PATH needs a path of 1..%zu bytes\n",
                sizeof(un.sun_path) - 1);
        return -1;
    }
    memcpy(un.sun_path, path, n + 1);
    memcpy(&o->addr, &un, sizeof(un));
    o->addr_len = sizeof(un);
    snprintf(o->authority, sizeof(o->authority), "localhost");
    return 0;
}

static int resolve(sl_load_opts_t *o, FILE *err)
{
    char host[256];
    bool rpc = o->proto == SL_LOAD_PROTO_RPC;
    const char *t = sl_load_opts_target(o);
    const char *flag = rpc ? "--rpc-target" : "--target";
    if (rpc && strncmp(t, "unix:", 5) == 0)
        return resolve_unix(o, t + 5, err);
    if (strncmp(t, "https://", 8) == 0) {
        o->tls = true;
        t += 8;
    } else if (strncmp(t, "http://", 7) == 0) {
        t += 7;
    }
    const char *colon = strrchr(t, ':');
    if (!colon || colon == t || !colon[1]) {
        fprintf(err, "sluice-load: %s must be HOST:PORT%s, got '%s'\n", flag,
                rpc ? " or unix:PATH" : "", t);
        return -1;
    }
    size_t hl = (size_t)(colon - t);
    if (t[0] == '[' && hl >= 2 && t[hl - 1] == ']') {
        t++;
        hl -= 2;
    }
    memcpy(host, t, hl);
    host[hl] = '\0';
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    int rc = getaddrinfo(host, colon + 1, &hints, &ai);
    if (rc != 0 || !ai) {
        fprintf(err, "sluice-load: cannot resolve %s %s: %s\n", flag, t, gai_strerror(rc));
        return -1;
    }
    memcpy(&o->addr, ai->ai_addr, ai->ai_addrlen);
    o->addr_len = ai->ai_addrlen;
    freeaddrinfo(ai);
    snprintf(o->authority, sizeof(o->authority), "%s", t);
    snprintf(o->tls_host, sizeof(o->tls_host), "%s", host);
    return 0;
}

static int check(bool ok, const char *what, FILE *err)
{
    if (!ok)
        fprintf(err, "sluice-load: %s\n", what);
    return ok ? 0 : -1;
}

static int validate(sl_load_opts_t *o, FILE *err)
{
    uint64_t conns = (uint64_t)o->subscribers + o->publishers + o->churn_max + 1;
    if (check(o->publishers >= 1, "--publishers must be at least 1", err) ||
        check(o->sessions >= 1 && o->sessions <= SL_LOAD_SESSIONS_MAX,
              "--sessions must be 1..100000", err) ||
        check(conns <= SL_LOAD_CONNS_MAX, "too many connections (cap 100000)", err) ||
        check(o->size_bytes >= SL_LOAD_EVENT_MIN_BYTES && o->size_bytes <= SL_LOAD_EVENT_BYTES_MAX,
              "--size must be 48..1048576", err) ||
        check(o->duration_s > 0 && o->duration_s <= SL_LOAD_DURATION_MAX_S,
              "--duration must be in (0, 86400]", err) ||
        check(o->drain_s <= 600 && o->connect_timeout_s <= 600 && o->connect_timeout_s > 0,
              "--drain and --connect-timeout must be at most 600 s", err) ||
        check(o->pub_inflight >= 1 && o->pub_inflight <= SL_LOAD_INFLIGHT_MAX,
              "--pub-inflight (--pipeline) must be 1..4096", err) ||
        check(o->streams_per_conn >= 1 && (o->proto != SL_LOAD_PROTO_H1 || o->streams_per_conn == 1),
              "--streams-per-conn must be >= 1, and 1 with --proto h1", err) ||
        check(o->proto != SL_LOAD_PROTO_RPC || !o->ds,
              "--ds is the Durable Streams face over HTTP: --proto h2 or h1, not rpc", err) ||
        check(o->proto != SL_LOAD_PROTO_RPC || o->churn_rate == 0,
              "--churn-rate is not supported with --proto rpc (fanout, sessions, publish, slow "
              "and stall are)", err) ||
        check(o->slow_fraction <= 1 && o->stall_fraction <= 1 &&
                  o->slow_fraction + o->stall_fraction <= 1,
              "--slow-fraction and --stall-fraction must add up to at most 1", err) ||
        check(o->slow_rate >= 1, "--slow-rate must be at least 1", err) ||
        check(o->connect_concurrency >= 1, "--connect-concurrency must be at least 1", err) ||
        check(o->rcvbuf <= (1u << 30), "--rcvbuf too large", err))
        return -1;
    if (!o->session_prefix[0])
        snprintf(o->session_prefix, sizeof(o->session_prefix), "load-%d-%lld", (int)getpid(),
                 (long long)time(NULL));
    for (const char *s = o->session_prefix; *s; s++) {
        if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_' && *s != '.')
            return check(false, "--session-prefix must be [A-Za-z0-9._-]", err);
    }
    return resolve(o, err);
}

int sl_load_opts_parse(sl_load_opts_t *o, int argc, char **argv, FILE *err)
{
    memset(o, 0, sizeof(*o));
    for (size_t i = 0; i < SL_ARRAY_LEN(flags); i++)
        sl_assert(set_flag(o, &flags[i], flags[i].def) == 0);
    const char *scenario, *config;
    int rc = pre_scan(argc, argv, &scenario, &config, err);
    if (rc != 0)
        return rc;
    if (scenario && apply(o, "scenario", 8, scenario, "scenario", err) < 0)
        return -1;
    for (int i = 0; presets[o->scenario][i]; i++)
        sl_assert(apply_pair(o, presets[o->scenario][i], "preset", err) == 0);
    if (config) {
        sl_load_scenario_t before = o->scenario;
        if (apply_file(o, config, err) < 0)
            return -1;
        /* The file named another scenario: its preset goes under the file. */
        if (o->scenario != before) {
            for (int i = 0; presets[o->scenario][i]; i++)
                sl_assert(apply_pair(o, presets[o->scenario][i], "preset", err) == 0);
            if (apply_file(o, config, err) < 0)
                return -1;
        }
    }
    if (apply_env(o, err) < 0)
        return -1;
    /* The token's env twin shared with sluicectl, under SLUICE_LOAD_TOKEN. */
    const char *tok = getenv("SLUICE_TOKEN");
    if (!o->token[0] && tok && *tok && apply(o, "token", 5, tok, "SLUICE_TOKEN", err) < 0)
        return -1;
    if (apply_argv(o, argc, argv, err) < 0)
        return -1;
    return validate(o, err);
}
