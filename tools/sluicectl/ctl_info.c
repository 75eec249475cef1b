/*
 * The one-call commands: sessions, stat, health, create and rm. Human
 * output is aligned text (a table for sessions, key/value lines for stat
 * and health); --json prints the server's answer converted by ctl_json.
 */
#include "tools/sluicectl/ctl_cmd.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runtime/base.h"
#include "tools/sluicectl/ctl_json.h"
#include "tools/sluicectl/ctl_text.h"

/* ---- rendering values as text ---- */

/* Writes a scalar the way a person reads it; containers as JSON. */
static void show(FILE *f, const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        fputc('-', f);
        break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        fprintf(f, "%.6g", o->via.f64);
        break;
    case MSGPACK_OBJECT_STR:
    case MSGPACK_OBJECT_BIN: {
        const char *s = o->type == MSGPACK_OBJECT_STR ? o->via.str.ptr : o->via.bin.ptr;
        size_t len = o->type == MSGPACK_OBJECT_STR ? o->via.str.size : o->via.bin.size;
        if (sl_ctl_text_utf8_valid(s, len)) {
            sl_ctl_text_escape(f, s, len);
        } else {
            fputs("base64:", f);
            sl_ctl_text_base64(f, s, len);
        }
        break;
    }
    default:
        sl_ctl_json_write(f, o);
    }
}

/* ns since the epoch as UTC ISO-8601 to the second; "-" for 0. */
static void show_time(FILE *f, uint64_t ns)
{
    if (ns == 0) {
        fputc('-', f);
        return;
    }
    time_t t = (time_t)(ns / 1000000000u);
    struct tm tm;
    char buf[32];
    if (!gmtime_r(&t, &tm) || !strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm)) {
        fprintf(f, "%" PRIu64, ns);
        return;
    }
    fputs(buf, f);
}

/* Renders into a malloc'd string (owned by the caller; NULL on ENOMEM). */
static char *render(const msgpack_object *o, bool as_time)
{
    char *s = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&s, &len);
    if (!m)
        return NULL;
    if (as_time && o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        show_time(m, o->via.u64);
    else
        show(m, o);
    fclose(m);
    return s;
}

static bool key_is(const msgpack_object *k, const char *s, size_t *len_out)
{
    if (k->type != MSGPACK_OBJECT_STR)
        return false;
    *len_out = k->via.str.size;
    return s == NULL || (k->via.str.size == strlen(s) && !memcmp(k->via.str.ptr, s, *len_out));
}

/* ---- one call, common to all ---- */

/* Sends the begun request and waits; on a server error prints it. Returns
 * 0 with *resp holding a result (release it), or the exit status. */
static int call_ok(sl_ctl_t *ctl, uint32_t msgid, sl_ctl_msg_t *resp)
{
    int rc = sl_ctl_call(ctl, msgid, resp);
    if (rc != 0)
        return rc;
    if (resp->error) {
        rc = sl_ctl_server_error(resp->error);
        sl_ctl_msg_release(resp);
        return rc;
    }
    return 0;
}

static int no_opts(sl_ctl_t *ctl, void *state, int opt, const char *val)
{
    sl_assert(!"no command options");
    return SL_CTL_EXIT_USAGE;
}

static const struct option plain_opts[] = {SL_CTL_GLOBAL_LONGOPTS, {0}};

/* Parses `CMD [SESSION]` with no options of its own. Returns 0 with
 * *session set (when want_session), 1 for --help, or an exit status. */
static int parse_plain(sl_ctl_t *ctl, int argc, char **argv, const char *usage, bool want_session,
                       const char **session)
{
    int first;
    int rc = sl_ctl_parse(ctl, argc, argv, plain_opts, no_opts, NULL, usage, &first);
    if (rc != 0)
        return rc;
    int want = want_session ? 1 : 0;
    if (argc - first != want)
        return sl_ctl_usage("%s takes %s; see sluicectl %s --help", argv[0],
                            want_session ? "one SESSION" : "no arguments", argv[0]);
    if (want_session)
        *session = argv[first];
    return 0;
}

/* ---- stat ---- */

/* Key/value lines of a map, nested maps as dotted keys; width aligns. */
static void show_map_lines(const msgpack_object *m, const char *prefix, int width)
{
    for (uint32_t i = 0; i < m->via.map.size; i++) {
        const msgpack_object *k = &m->via.map.ptr[i].key;
        const msgpack_object *v = &m->via.map.ptr[i].val;
        char *ks = render(k, false);
        char name[256];
        snprintf(name, sizeof(name), "%s%s%s", prefix, *prefix ? "." : "", ks ? ks : "?");
        free(ks);
        if (v->type == MSGPACK_OBJECT_MAP) {
            show_map_lines(v, name, width);
            continue;
        }
        printf("%-*s  ", width, name);
        show(stdout, v);
        size_t kl;
        if (key_is(k, NULL, &kl) && kl > 3 && !memcmp(k->via.str.ptr + kl - 3, "_ns", 3) &&
            v->type == MSGPACK_OBJECT_POSITIVE_INTEGER && v->via.u64 > 0) {
            fputs(" (", stdout);
            show_time(stdout, v->via.u64);
            fputc(')', stdout);
        }
        putchar('\n');
    }
}

static const char stat_usage[] =
    "usage: sluicectl stat SESSION\n"
    "Prints a session's stats (events, bytes, first_seq, last_seq, subscribers,\n"
    "created_ns, last_activity_ns), one 'key value' line each; *_ns times also in UTC.\n"
    "Exit 4 when the session does not exist.\n";

int sl_ctl_cmd_stat(sl_ctl_t *ctl, int argc, char **argv)
{
    const char *session = NULL;
    int rc = parse_plain(ctl, argc, argv, stat_usage, true, &session);
    if (rc != 0)
        return rc == 1 ? SL_CTL_EXIT_OK : rc;
    if ((rc = sl_ctl_open(ctl)) != 0)
        return rc;
    uint32_t msgid;
    msgpack_packer *pk = sl_ctl_rpc_begin(ctl->rpc, "session", 1, &msgid);
    sl_ctl_pack_str(pk, session, strlen(session));
    sl_ctl_msg_t resp;
    if ((rc = call_ok(ctl, msgid, &resp)) != 0)
        return rc;
    if (ctl->json || resp.result->type != MSGPACK_OBJECT_MAP) {
        sl_ctl_json_write(stdout, resp.result);
        putchar('\n');
    } else {
        show_map_lines(resp.result, "", 16);
    }
    sl_ctl_msg_release(&resp);
    return SL_CTL_EXIT_OK;
}

/* ---- create, rm ---- */

static int simple_call(sl_ctl_t *ctl, int argc, char **argv, const char *usage, const char *method,
                       const char *done)
{
    const char *session = NULL;
    int rc = parse_plain(ctl, argc, argv, usage, true, &session);
    if (rc != 0)
        return rc == 1 ? SL_CTL_EXIT_OK : rc;
    if ((rc = sl_ctl_open(ctl)) != 0)
        return rc;
    uint32_t msgid;
    msgpack_packer *pk = sl_ctl_rpc_begin(ctl->rpc, method, 1, &msgid);
    sl_ctl_pack_str(pk, session, strlen(session));
    sl_ctl_msg_t resp;
    if ((rc = call_ok(ctl, msgid, &resp)) != 0)
        return rc;
    if (ctl->json) {
        sl_ctl_json_write(stdout, resp.result);
        putchar('\n');
    } else {
        printf("%s %s\n", done, session);
    }
    sl_ctl_msg_release(&resp);
    return SL_CTL_EXIT_OK;
}

static const char create_usage[] =
    "usage: sluicectl create SESSION\n"
    "Creates a session (idempotent: an existing one is left as it is).\n";

int sl_ctl_cmd_create(sl_ctl_t *ctl, int argc, char **argv)
{
    return simple_call(ctl, argc, argv, create_usage, "create", "created");
}

static const char close_usage[] =
    "usage: sluicectl close SESSION\n"
    "Closes a session for good: subscribers get the terminal sluice.closed event and\n"
    "their streams end; later publishes are refused (closed). Closing again is fine.\n"
    "Exit 4 when the session does not exist.\n";

int sl_ctl_cmd_close(sl_ctl_t *ctl, int argc, char **argv)
{
    return simple_call(ctl, argc, argv, close_usage, "close", "closed");
}

static const char rm_usage[] = "usage: sluicectl rm SESSION\n"
                               "Deletes a session and its events; its subscribers' streams end.\n"
                               "Exit 4 when the session does not exist.\n";

int sl_ctl_cmd_rm(sl_ctl_t *ctl, int argc, char **argv)
{
    return simple_call(ctl, argc, argv, rm_usage, "delete", "deleted");
}

/* ---- health ---- */

static bool number(const msgpack_object *o, double *out)
{
    if (!o)
        return false;
    switch (o->type) {
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        *out = (double)o->via.u64;
        return true;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        *out = (double)o->via.i64;
        return true;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        *out = o->via.f64;
        return true;
    default:
        return false;
    }
}

/* "k v, k v" over the scalar members of a map; a scalar as itself. */
static void show_flat(const msgpack_object *o)
{
    if (o->type != MSGPACK_OBJECT_MAP) {
        show(stdout, o);
        return;
    }
    int shown = 0;
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object *v = &o->via.map.ptr[i].val;
        if (v->type == MSGPACK_OBJECT_MAP || v->type == MSGPACK_OBJECT_ARRAY)
            continue;
        fputs(shown++ ? ", " : "", stdout);
        show(stdout, &o->via.map.ptr[i].key);
        putchar(' ');
        show(stdout, v);
    }
}

static void health_line(const char *label, const msgpack_object *h, const char *key)
{
    const msgpack_object *v = sl_ctl_map_get(h, key);
    if (!v)
        return;
    printf("%-14s  ", label);
    show_flat(v);
    putchar('\n');
}

/* The largest loop_lag_ms_max over the reactors array; false if none. */
static bool loop_lag(const msgpack_object *h, double *max)
{
    const msgpack_object *rs = sl_ctl_map_get(h, "reactors");
    bool any = false;
    for (uint32_t i = 0; rs && rs->type == MSGPACK_OBJECT_ARRAY && i < rs->via.array.size; i++) {
        double v;
        if (number(sl_ctl_map_get(&rs->via.array.ptr[i], "loop_lag_ms_max"), &v) &&
            (!any || v > *max)) {
            *max = v;
            any = true;
        }
    }
    return any;
}

/* 59s, 3m02s, 1h02m03s, 2d01h02m03s. */
static void show_uptime(double v)
{
    uint64_t s = v > 0 ? (uint64_t)v : 0;
    printf("%-14s  ", "uptime");
    if (s >= 86400)
        printf("%" PRIu64 "d%02" PRIu64 "h%02" PRIu64 "m%02" PRIu64 "s\n", s / 86400, s / 3600 % 24,
               s / 60 % 60, s % 60);
    else if (s >= 3600)
        printf("%" PRIu64 "h%02" PRIu64 "m%02" PRIu64 "s\n", s / 3600, s / 60 % 60, s % 60);
    else if (s >= 60)
        printf("%" PRIu64 "m%02" PRIu64 "s\n", s / 60, s % 60);
    else
        printf("%" PRIu64 "s\n", s);
}

static void health_lines(const msgpack_object *h)
{
    const msgpack_object *busy = sl_ctl_map_get(h, "busy");
    if (busy && busy->type == MSGPACK_OBJECT_BOOLEAN)
        printf("%-14s  %s\n", "status", busy->via.boolean ? "busy" : "ok");
    double v, w;
    if (number(sl_ctl_map_get(h, "uptime_s"), &v))
        show_uptime(v);
    if (number(sl_ctl_map_get(h, "rss_bytes"), &v))
        printf("%-14s  %.1f MiB\n", "rss", v / 1048576.0);
    if (number(sl_ctl_map_get(h, "open_fds"), &v)) {
        printf("%-14s  %.0f", "open fds", v);
        if (number(sl_ctl_map_get(h, "fd_limit"), &w))
            printf(" of %.0f", w);
        putchar('\n');
    }
    health_line("connections", h, "connections");
    health_line("streams", h, "streams");
    health_line("subscribers", h, "subscribers");
    health_line("sessions", h, "sessions");
    health_line("events", h, "events");
    if (loop_lag(h, &v))
        printf("%-14s  %.3f ms\n", "loop lag max", v);
    const msgpack_object *sched = sl_ctl_map_get(h, "scheduler");
    if (number(sl_ctl_map_get(sched, "lag_ms_max"), &v))
        printf("%-14s  %.3f ms\n", "scheduler lag", v);
    health_line("storage", h, "storage");
    health_line("watchdog", h, "watchdog");
}

static const char health_usage[] =
    "usage: sluicectl health\n"
    "Prints the server's health snapshot: status (ok or busy), uptime, memory,\n"
    "file descriptors, connections, sessions, events, loop lag and storage.\n"
    "--json prints the whole map (the same keys as GET /health).\n";

int sl_ctl_cmd_health(sl_ctl_t *ctl, int argc, char **argv)
{
    int rc = parse_plain(ctl, argc, argv, health_usage, false, NULL);
    if (rc != 0)
        return rc == 1 ? SL_CTL_EXIT_OK : rc;
    if ((rc = sl_ctl_open(ctl)) != 0)
        return rc;
    uint32_t msgid;
    sl_ctl_rpc_begin(ctl->rpc, "health", 0, &msgid);
    sl_ctl_msg_t resp;
    if ((rc = call_ok(ctl, msgid, &resp)) != 0)
        return rc;
    if (ctl->json || resp.result->type != MSGPACK_OBJECT_MAP) {
        sl_ctl_json_write(stdout, resp.result);
        putchar('\n');
    } else {
        health_lines(resp.result);
    }
    sl_ctl_msg_release(&resp);
    return SL_CTL_EXIT_OK;
}

/* ---- sessions ---- */

typedef struct list_state {
    uint32_t limit;
    bool all;
    const char *cursor;
    msgpack_sbuffer next; /* the cursor to send, packed; empty for none */
    int widths[8];
    uint64_t rows;
} list_state_t;

static const char *const cols[8] = {"ID",   "EVENTS", "BYTES",   "FIRST",
                                    "LAST", "SUBS",   "CREATED", "LAST ACTIVITY"};
static const char *const col_keys[8] = {"id",         "events",          "bytes",
                                        "first_seq",  "last_seq",        "subscribers",
                                        "created_ns", "last_activity_ns"};

/* Id left-aligned, numbers right-aligned, times left-aligned; the last
 * column unpadded. */
static void print_cell(const list_state_t *st, int c, const char *s)
{
    if (c == 0)
        printf("%-*s", st->widths[c], s);
    else if (c == 7)
        printf("  %s", s);
    else
        printf(c == 6 ? "  %-*s" : "  %*s", st->widths[c], s);
}

static void table_page(list_state_t *st, const msgpack_object *list)
{
    uint32_t n = list->via.array.size;
    char **cells = calloc((size_t)n * 8 + 1, sizeof(char *));
    if (!cells)
        return;
    for (int c = 0; st->rows == 0 && c < 8; c++)
        st->widths[c] = (int)strlen(cols[c]);
    for (uint32_t r = 0; r < n; r++) {
        for (int c = 0; c < 8; c++) {
            const msgpack_object *v = sl_ctl_map_get(&list->via.array.ptr[r], col_keys[c]);
            char *s = v ? render(v, c >= 6) : strdup("-");
            cells[r * 8 + c] = s;
            int len = s ? (int)strlen(s) : 0;
            if (len > st->widths[c])
                st->widths[c] = len;
        }
    }
    if (st->rows == 0) {
        for (int c = 0; c < 8; c++)
            print_cell(st, c, cols[c]);
        putchar('\n');
    }
    for (uint32_t r = 0; r < n; r++) {
        for (int c = 0; c < 8; c++) {
            print_cell(st, c, cells[r * 8 + c] ? cells[r * 8 + c] : "?");
            free(cells[r * 8 + c]);
        }
        putchar('\n');
    }
    st->rows += n;
    free(cells);
}

/* Prints one page; remembers its cursor in st->next. Returns true when
 * another page should be fetched. */
static bool list_page(sl_ctl_t *ctl, list_state_t *st, const msgpack_object *res)
{
    const msgpack_object *list = sl_ctl_map_get(res, "sessions");
    const msgpack_object *next = sl_ctl_map_get(res, "next");
    if (next && next->type == MSGPACK_OBJECT_NIL)
        next = NULL;
    if (ctl->json && !st->all) {
        sl_ctl_json_write(stdout, res);
        putchar('\n');
    } else if (ctl->json) {
        for (uint32_t i = 0; list && list->type == MSGPACK_OBJECT_ARRAY && i < list->via.array.size;
             i++) {
            fputs(st->rows++ ? "," : "", stdout);
            sl_ctl_json_write(stdout, &list->via.array.ptr[i]);
        }
    } else if (list && list->type == MSGPACK_OBJECT_ARRAY) {
        table_page(st, list);
    }
    msgpack_sbuffer prev = st->next;
    msgpack_sbuffer_init(&st->next);
    if (next) {
        msgpack_packer pk;
        msgpack_packer_init(&pk, &st->next, msgpack_sbuffer_write);
        msgpack_pack_object(&pk, *next);
    }
    /* A cursor that does not move would loop for ever: stop instead. */
    bool moved = st->next.size != prev.size ||
                 (prev.size && memcmp(st->next.data, prev.data, prev.size) != 0);
    msgpack_sbuffer_destroy(&prev);
    if (next && !st->all && !ctl->json) {
        char *c = render(next, false);
        fprintf(stderr, "sluicectl: more sessions follow: use --all, or --cursor %s\n",
                c ? c : "?");
        free(c);
    }
    return next && st->all && moved;
}

static int list_opt(sl_ctl_t *ctl, void *state, int opt, const char *val)
{
    list_state_t *st = state;
    uint64_t v;
    switch (opt) {
    case 'l':
        if (sl_ctl_parse_u64(val, &v) < 0 || v < 1 || v > 1000)
            return sl_ctl_usage("--limit must be 1..1000, got '%s'", val);
        st->limit = (uint32_t)v;
        return 0;
    case 'a':
        st->all = true;
        return 0;
    case 'c':
        st->cursor = val;
        return 0;
    }
    return SL_CTL_EXIT_USAGE;
}

static const struct option list_opts[] = {
    {"limit", required_argument, NULL, 'l'},
    {"all", no_argument, NULL, 'a'},
    {"cursor", required_argument, NULL, 'c'},
    SL_CTL_GLOBAL_LONGOPTS,
    {0},
};

static const char sessions_usage[] =
    "usage: sluicectl sessions [--limit N] [--all] [--cursor CURSOR]\n"
    "Lists sessions ordered by id: ID, EVENTS, BYTES, FIRST and LAST seq, SUBS\n"
    "(subscribers), CREATED and LAST ACTIVITY (UTC).\n"
    "  --limit N        sessions per page, 1..1000 (server default 100)\n"
    "  --all            follow the cursor to the last page\n"
    "  --cursor CURSOR  start after this cursor (the 'next' of a previous page)\n"
    "--json prints the server's page map {\"sessions\": [...], \"next\": ...};\n"
    "with --all, one map {\"sessions\": [...]} holding every page.\n";

/* Requests the page after st->next (or --cursor). */
static int request_page(sl_ctl_t *ctl, list_state_t *st, bool first, uint32_t *msgid)
{
    bool have_cursor = first ? st->cursor != NULL : st->next.size > 0;
    bool have_limit = st->limit > 0 || have_cursor;
    msgpack_packer *pk = sl_ctl_rpc_begin(ctl->rpc, "sessions",
                                          have_cursor  ? 2
                                          : have_limit ? 1
                                                       : 0,
                                          msgid);
    if (have_limit)
        msgpack_pack_uint32(pk, st->limit ? st->limit : 100);
    if (have_cursor && first)
        sl_ctl_pack_str(pk, st->cursor, strlen(st->cursor));
    else if (have_cursor)
        pk->callback(pk->data, st->next.data, st->next.size);
    return 0;
}

int sl_ctl_cmd_sessions(sl_ctl_t *ctl, int argc, char **argv)
{
    list_state_t st = {0};
    msgpack_sbuffer_init(&st.next);
    int first_arg;
    int rc = sl_ctl_parse(ctl, argc, argv, list_opts, list_opt, &st, sessions_usage, &first_arg);
    if (rc == 0 && first_arg != argc)
        rc = sl_ctl_usage("sessions takes no arguments; see sluicectl sessions --help");
    if (rc == 0)
        rc = sl_ctl_open(ctl);
    if (ctl->json && st.all && rc == 0)
        fputs("{\"sessions\":[", stdout);
    bool more = rc == 0;
    /* Bounded by SL_CTL_PAGES_MAX, and by a cursor that must move. */
    for (uint32_t page = 0; more && page < SL_CTL_PAGES_MAX; page++) {
        uint32_t msgid;
        request_page(ctl, &st, page == 0, &msgid);
        sl_ctl_msg_t resp;
        if ((rc = call_ok(ctl, msgid, &resp)) != 0)
            break;
        more = list_page(ctl, &st, resp.result);
        sl_ctl_msg_release(&resp);
    }
    if (ctl->json && st.all && rc == 0)
        fputs("]}\n", stdout);
    msgpack_sbuffer_destroy(&st.next);
    return rc == 1 ? SL_CTL_EXIT_OK : rc;
}
