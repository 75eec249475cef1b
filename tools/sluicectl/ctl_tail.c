/*
 * `sluicectl tail`: subscribes to a session and prints its events as they
 * arrive, until --count events were printed, the server ends the
 * subscription (an `end` notification: the session was deleted, or the
 * server is shutting down), or SIGINT/SIGTERM — after which it unsubscribes
 * (waiting at most --timeout for the answer) and exits 0. Waiting for
 * events has no deadline; a lost connection is exit 3.
 *
 * Output, one line per event:
 *   human: "SEQ TYPE DATA", DATA as text escaped onto one line (\\ \n \r
 *          \t \xHH) when it is valid UTF-8, else "base64:" and its base64;
 *   --json: {"session":..,"seq":..,"type":..,"data":..,"encoding":..} with
 *          encoding "utf-8" (data is the text) or "base64".
 * A gap (events lost: ephemeral, or beyond retention) is a stderr line,
 * or {"gap":{"from":A,"to":B}} with --json; the end of the subscription is
 * a stderr line, or {"end":true}.
 */
#include "tools/sluicectl/ctl_cmd.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "runtime/base.h"
#include "tools/sluicectl/ctl_json.h"
#include "tools/sluicectl/ctl_text.h"

typedef struct tail_opts {
    bool live;
    uint64_t from;
    uint64_t count;   /* 0 = no bound */
    const char *type; /* only this type; NULL = all */
} tail_opts_t;

typedef struct tail_state {
    uint64_t sub_id;
    uint64_t printed;
    bool ended;
} tail_state_t;

static volatile sig_atomic_t stop_signal;

static void on_stop(int sig)
{
    stop_signal = sig;
}

static bool text_of(const msgpack_object *o, const char **s, size_t *len)
{
    if (o->type == MSGPACK_OBJECT_STR) {
        *s = o->via.str.ptr;
        *len = o->via.str.size;
    } else if (o->type == MSGPACK_OBJECT_BIN) {
        *s = o->via.bin.ptr;
        *len = o->via.bin.size;
    } else {
        return false;
    }
    return true;
}

static void print_event(const sl_ctl_t *ctl, const msgpack_object *p, const char *type,
                        size_t type_len, const char *data, size_t data_len)
{
    bool text = sl_ctl_text_utf8_valid(data, data_len);
    if (ctl->json) {
        fputs("{\"session\":", stdout);
        sl_ctl_json_write(stdout, &p[1]);
        printf(",\"seq\":%" PRIu64 ",\"type\":", p[2].via.u64);
        sl_ctl_json_bytes(stdout, type, type_len);
        fputs(",\"data\":", stdout);
        sl_ctl_json_bytes(stdout, data, data_len);
        printf(",\"encoding\":\"%s\"}\n", text ? "utf-8" : "base64");
        return;
    }
    printf("%" PRIu64 " ", p[2].via.u64);
    sl_ctl_text_escape(stdout, type, type_len);
    putchar(' ');
    if (text) {
        sl_ctl_text_escape(stdout, data, data_len);
    } else {
        fputs("base64:", stdout);
        sl_ctl_text_base64(stdout, data, data_len);
    }
    putchar('\n');
}

/* event params: [subscription_id, session, seq, type, data]. */
static void on_event(const sl_ctl_t *ctl, const tail_opts_t *to, tail_state_t *ts,
                     const msgpack_object *params)
{
    const msgpack_object *p = params->via.array.ptr;
    const char *type, *data;
    size_t type_len, data_len;
    if (params->via.array.size < 5 || p[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
        p[0].via.u64 != ts->sub_id || p[2].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
        !text_of(&p[3], &type, &type_len) || !text_of(&p[4], &data, &data_len))
        return; /* not ours, or not an event we can read: skip it */
    if (to->type && (strlen(to->type) != type_len || memcmp(to->type, type, type_len)))
        return;
    print_event(ctl, p, type, type_len, data, data_len);
    fflush(stdout);
    ts->printed++;
}

/* gap params: [subscription_id, from, to]. */
static void on_gap(const sl_ctl_t *ctl, tail_state_t *ts, const msgpack_object *params)
{
    const msgpack_object *p = params->via.array.ptr;
    if (params->via.array.size < 3 || p[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
        p[0].via.u64 != ts->sub_id || p[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
        p[2].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return;
    if (ctl->json) {
        printf("{\"gap\":{\"from\":%" PRIu64 ",\"to\":%" PRIu64 "}}\n", p[1].via.u64, p[2].via.u64);
        fflush(stdout);
    } else {
        fprintf(stderr,
                "sluicectl: gap: events %" PRIu64 "..%" PRIu64
                " are lost (ephemeral, or beyond retention)\n",
                p[1].via.u64, p[2].via.u64);
    }
}

static void on_notify(const sl_ctl_t *ctl, const tail_opts_t *to, tail_state_t *ts,
                      const sl_ctl_msg_t *m)
{
    if (m->method_len == 5 && !memcmp(m->method, "event", 5)) {
        on_event(ctl, to, ts, m->params);
    } else if (m->method_len == 3 && !memcmp(m->method, "gap", 3)) {
        on_gap(ctl, ts, m->params);
    } else if (m->method_len == 3 && !memcmp(m->method, "end", 3)) {
        const msgpack_object *p = m->params->via.array.ptr;
        if (m->params->via.array.size >= 1 && p[0].type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
            p[0].via.u64 == ts->sub_id)
            ts->ended = true;
    }
}

/* Subscribes. Returns 0 with ts->sub_id set, or the exit status. */
static int subscribe(sl_ctl_t *ctl, const tail_opts_t *to, const char *session, tail_state_t *ts)
{
    uint32_t msgid;
    msgpack_packer *pk = sl_ctl_rpc_begin(ctl->rpc, "subscribe", 2, &msgid);
    sl_ctl_pack_str(pk, session, strlen(session));
    if (to->live)
        sl_ctl_pack_str(pk, "live", 4);
    else
        msgpack_pack_uint64(pk, to->from);
    sl_ctl_msg_t resp;
    int rc = sl_ctl_call(ctl, msgid, &resp);
    if (rc != 0)
        return rc;
    if (resp.error) {
        rc = sl_ctl_server_error(resp.error);
    } else if (resp.result->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
        fprintf(stderr, "sluicectl: subscribe answered a non-integer subscription id\n");
        rc = SL_CTL_EXIT_SERVER;
    } else {
        ts->sub_id = resp.result->via.u64;
    }
    sl_ctl_msg_release(&resp);
    return rc;
}

/* Best effort: the process exits right after, which ends the
 * subscription anyway; the answer is awaited so the server sees a clean
 * unsubscribe rather than a vanished peer. */
static void unsubscribe(sl_ctl_t *ctl, const tail_state_t *ts)
{
    uint32_t msgid;
    msgpack_packer *pk = sl_ctl_rpc_begin(ctl->rpc, "unsubscribe", 1, &msgid);
    msgpack_pack_uint64(pk, ts->sub_id);
    int64_t deadline = sl_ctl_deadline(ctl);
    sl_ctl_msg_t resp;
    if (sl_ctl_rpc_send(ctl->rpc, deadline) == 0 &&
        sl_ctl_rpc_wait(ctl->rpc, msgid, deadline, &resp) == 0)
        sl_ctl_msg_release(&resp);
}

static int follow(sl_ctl_t *ctl, const tail_opts_t *to, tail_state_t *ts)
{
    /* Ends on --count, `end`, a signal or a lost connection; each pass
     * consumes one message. */
    while (!stop_signal && !ts->ended && (to->count == 0 || ts->printed < to->count)) {
        sl_ctl_msg_t m;
        int rc = sl_ctl_rpc_next(ctl->rpc, -1, &m);
        if (rc == -EINTR)
            continue;
        if (rc < 0)
            return sl_ctl_fail(ctl, rc, "lost the connection to");
        if (m.kind == SL_CTL_MSG_NOTIFY)
            on_notify(ctl, to, ts, &m);
        sl_ctl_msg_release(&m);
    }
    if (ts->ended) {
        if (ctl->json)
            puts("{\"end\":true}");
        else
            fprintf(stderr, "sluicectl: the server ended the subscription (the session was "
                            "deleted, or the server is shutting down)\n");
        return SL_CTL_EXIT_OK;
    }
    unsubscribe(ctl, ts);
    return SL_CTL_EXIT_OK;
}

static int tail_opt(sl_ctl_t *ctl, void *state, int opt, const char *val)
{
    tail_opts_t *to = state;
    switch (opt) {
    case 'f':
        to->live = strcmp(val, "live") == 0;
        if (!to->live && (sl_ctl_parse_u64(val, &to->from) < 0 || to->from < 1))
            return sl_ctl_usage("--from takes a seq (1 or more) or 'live', got '%s'", val);
        return 0;
    case 'n':
        if (sl_ctl_parse_u64(val, &to->count) < 0 || to->count < 1)
            return sl_ctl_usage("--count takes a number of events (1 or more), got '%s'", val);
        return 0;
    case 'T':
        to->type = val;
        return 0;
    }
    return SL_CTL_EXIT_USAGE;
}

static const struct option tail_longopts[] = {
    {"from", required_argument, NULL, 'f'},
    {"count", required_argument, NULL, 'n'},
    {"type", required_argument, NULL, 'T'},
    SL_CTL_GLOBAL_LONGOPTS,
    {0},
};

static const char tail_usage[] =
    "usage: sluicectl tail SESSION [--from SEQ|live] [--count N] [--type T]\n"
    "Follows a session and prints its events as they arrive, one line each:\n"
    "  SEQ TYPE DATA\n"
    "DATA is the text, escaped onto one line (\\\\ \\n \\r \\t \\xHH), when it is valid\n"
    "UTF-8; otherwise 'base64:' and its base64. --json prints one object per event:\n"
    "  {\"session\":S,\"seq\":N,\"type\":T,\"data\":D,\"encoding\":\"utf-8\"|\"base64\"}\n"
    "  --from SEQ|live  first seq wanted (1 = everything kept), or live (default)\n"
    "  --count N        stop after N events\n"
    "  --type T         print (and count) only events of type T\n"
    "Lost events (a gap) are reported on stderr ({\"gap\":{\"from\":A,\"to\":B}} with\n"
    "--json). When the server ends the subscription (the session was deleted, or\n"
    "the server is shutting down) the tail ends: exit 0, {\"end\":true} with --json.\n"
    "SIGINT/SIGTERM unsubscribe and exit 0. Exit 4 when the session does not exist.\n";

int sl_ctl_cmd_tail(sl_ctl_t *ctl, int argc, char **argv)
{
    tail_opts_t to = {.live = true};
    int first;
    int rc = sl_ctl_parse(ctl, argc, argv, tail_longopts, tail_opt, &to, tail_usage, &first);
    if (rc != 0)
        return rc == 1 ? SL_CTL_EXIT_OK : rc;
    if (argc - first != 1)
        return sl_ctl_usage("tail takes one SESSION; see sluicectl tail --help");
    /* SIGINT/SIGTERM stay blocked except inside the connection's waits,
     * which they then end with -EINTR (see sl_ctl_rpc_set_wait_mask). */
    struct sigaction sa = {.sa_handler = on_stop};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigset_t stop_set, wait_mask;
    sigemptyset(&stop_set);
    sigaddset(&stop_set, SIGINT);
    sigaddset(&stop_set, SIGTERM);
    sigprocmask(SIG_BLOCK, &stop_set, &wait_mask);
    sigdelset(&wait_mask, SIGINT);
    sigdelset(&wait_mask, SIGTERM);
    tail_state_t ts = {0};
    if ((rc = sl_ctl_open(ctl)) != 0)
        return rc;
    sl_ctl_rpc_set_wait_mask(ctl->rpc, &wait_mask);
    if ((rc = subscribe(ctl, &to, argv[first], &ts)) != 0)
        return stop_signal ? SL_CTL_EXIT_OK : rc;
    return follow(ctl, &to, &ts);
}
