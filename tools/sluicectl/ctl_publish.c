/*
 * `sluicectl publish`: one event from an argument or from stdin, or one
 * event per stdin line with --lines. Line mode pipelines up to
 * SL_CTL_PIPELINE publishes on the connection and matches the responses by
 * msgid (the server may answer out of order); seqs are still printed in
 * input order, one per line.
 */
#include "tools/sluicectl/ctl_cmd.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/base.h"

typedef struct pub_opts {
    const char *type;
    bool durable;
    bool ephemeral;
    bool as_str;
    bool lines;
    bool close;
    const char *producer; /* "ID:EPOCH:SEQ" as given, or NULL */
    char producer_id[129];
    uint64_t producer_epoch, producer_seq;
} pub_opts_t;

typedef enum slot_state {
    SLOT_PENDING = 0,
    SLOT_DONE,
    SLOT_FAILED,
} slot_state_t;

typedef struct slot {
    uint32_t msgid;
    uint64_t line;
    slot_state_t state;
    uint64_t seq;  /* SLOT_DONE */
    int exit_code; /* SLOT_FAILED */
} slot_t;

/* The publishes in flight, oldest first. Seqs are printed in input order
 * up to the first line that failed; lines after it that were already in
 * flight and succeeded are only counted (late_published). */
typedef struct pipe_state {
    slot_t slots[SL_CTL_PIPELINE];
    uint32_t head;
    uint32_t count;
    int fail_exit; /* exit status of the first failed line, or 0 */
    uint64_t late_published;
} pipe_state_t;

static void pack_publish(sl_ctl_t *ctl, const pub_opts_t *po, const char *session, const char *data,
                         size_t len, uint32_t *msgid)
{
    uint32_t nopts = (uint32_t)(po->durable || po->ephemeral) + po->close + (po->producer != NULL);
    bool opts = nopts > 0;
    msgpack_packer *pk = sl_ctl_rpc_begin(ctl->rpc, "publish", opts ? 4 : 3, msgid);
    sl_ctl_pack_str(pk, session, strlen(session));
    sl_ctl_pack_str(pk, po->type, strlen(po->type));
    if (po->as_str) {
        msgpack_pack_str(pk, len);
        msgpack_pack_str_body(pk, data, len);
    } else {
        msgpack_pack_bin(pk, len);
        msgpack_pack_bin_body(pk, data, len);
    }
    if (!opts)
        return;
    msgpack_pack_map(pk, nopts);
    if (po->durable || po->ephemeral) {
        sl_ctl_pack_str(pk, po->durable ? "durable" : "ephemeral", po->durable ? 7 : 9);
        msgpack_pack_true(pk);
    }
    if (po->close) {
        sl_ctl_pack_str(pk, "close", 5);
        msgpack_pack_true(pk);
    }
    if (po->producer) {
        sl_ctl_pack_str(pk, "producer", 8);
        msgpack_pack_array(pk, 3);
        sl_ctl_pack_str(pk, po->producer_id, strlen(po->producer_id));
        msgpack_pack_uint64(pk, po->producer_epoch);
        msgpack_pack_uint64(pk, po->producer_seq);
    }
}

/* --producer ID:EPOCH:SEQ. Returns 0 or -1. */
static int parse_producer(pub_opts_t *po)
{
    const char *v = po->producer, *c1 = strchr(v, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    if (!c1 || !c2 || c1 == v || (size_t)(c1 - v) >= sizeof po->producer_id)
        return -1;
    memcpy(po->producer_id, v, (size_t)(c1 - v));
    po->producer_id[c1 - v] = 0;
    char *end;
    po->producer_epoch = strtoull(c1 + 1, &end, 10);
    if (end != c2 || c2 == c1 + 1)
        return -1;
    po->producer_seq = strtoull(c2 + 1, &end, 10);
    return *end || !c2[1] ? -1 : 0;
}

static void print_seq(const sl_ctl_t *ctl, uint64_t seq)
{
    printf(ctl->json ? "{\"seq\":%" PRIu64 "}\n" : "%" PRIu64 "\n", seq);
}

/* Reads the whole of stdin into *out (owned by the caller). Returns 0, or
 * SL_ETOOBIG beyond SL_CTL_DATA_BYTES_MAX, or -errno. */
static int read_all(char **out, size_t *len)
{
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap);
    if (!buf)
        return -ENOMEM;
    /* Bounded by SL_CTL_DATA_BYTES_MAX: each pass adds bytes or ends. */
    for (;;) {
        if (n == cap) {
            if (cap >= SL_CTL_DATA_BYTES_MAX) {
                free(buf);
                return SL_ETOOBIG;
            }
            cap *= 2;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                return -ENOMEM;
            }
            buf = nb;
        }
        ssize_t r = read(0, buf + n, cap - n);
        if (r == 0)
            break;
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int err = -errno;
            free(buf);
            return err;
        }
        n += (size_t)r;
    }
    if (n > SL_CTL_DATA_BYTES_MAX) {
        free(buf);
        return SL_ETOOBIG;
    }
    *out = buf;
    *len = n;
    return 0;
}

static int publish_one(sl_ctl_t *ctl, const pub_opts_t *po, const char *session, const char *data,
                       size_t len)
{
    uint32_t msgid;
    pack_publish(ctl, po, session, data, len, &msgid);
    sl_ctl_msg_t resp;
    int rc = sl_ctl_call(ctl, msgid, &resp);
    if (rc != 0)
        return rc;
    if (resp.error) {
        rc = sl_ctl_server_error(resp.error);
    } else if (resp.result->type == MSGPACK_OBJECT_MAP) {
        /* a producer retry of an older seq: nothing appended */
        puts(ctl->json ? "{\"duplicate\":true}" : "duplicate");
    } else if (resp.result->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
        fprintf(stderr, "sluicectl: publish answered a non-integer seq\n");
        rc = SL_CTL_EXIT_SERVER;
    } else {
        print_seq(ctl, resp.result->via.u64);
    }
    sl_ctl_msg_release(&resp);
    return rc;
}

/* Retires finished slots from the oldest on: prints seqs until the first
 * failure, counts successes after it. */
static void retire(const sl_ctl_t *ctl, pipe_state_t *ps)
{
    while (ps->count && ps->slots[ps->head].state != SLOT_PENDING) {
        const slot_t *s = &ps->slots[ps->head];
        if (s->state == SLOT_FAILED && ps->fail_exit == 0)
            ps->fail_exit = s->exit_code;
        else if (s->state == SLOT_DONE && ps->fail_exit == 0)
            print_seq(ctl, s->seq);
        else if (s->state == SLOT_DONE)
            ps->late_published++;
        ps->head = (ps->head + 1) % SL_CTL_PIPELINE;
        ps->count--;
    }
}

/* Takes one message off the wire; a response fills its slot (an error is
 * reported at once, naming the line). Returns 0, or 3 when the connection
 * failed. */
static int collect(sl_ctl_t *ctl, pipe_state_t *ps)
{
    sl_ctl_msg_t m;
    int rc = sl_ctl_rpc_next(ctl->rpc, sl_ctl_deadline(ctl), &m);
    if (rc < 0)
        return sl_ctl_fail(ctl, rc, "no reply from");
    slot_t *s = NULL;
    for (uint32_t i = 0; m.kind == SL_CTL_MSG_RESPONSE && i < ps->count; i++) {
        slot_t *c = &ps->slots[(ps->head + i) % SL_CTL_PIPELINE];
        if (c->msgid == m.msgid && c->state == SLOT_PENDING)
            s = c;
    }
    if (s && m.error) {
        fprintf(stderr, "sluicectl: line %" PRIu64 ": ", s->line);
        s->exit_code = sl_ctl_server_error(m.error);
        s->state = SLOT_FAILED;
    } else if (s && m.result->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
        fprintf(stderr, "sluicectl: line %" PRIu64 ": publish answered a non-integer seq\n",
                s->line);
        s->exit_code = SL_CTL_EXIT_SERVER;
        s->state = SLOT_FAILED;
    } else if (s) {
        s->seq = m.result->via.u64;
        s->state = SLOT_DONE;
    }
    sl_ctl_msg_release(&m);
    retire(ctl, ps);
    return 0;
}

static int send_line(sl_ctl_t *ctl, const pub_opts_t *po, pipe_state_t *ps, const char *session,
                     const char *data, size_t len, uint64_t line)
{
    int rc = 0;
    /* Bounded: each collect takes a message or fails. */
    while (rc == 0 && ps->count == SL_CTL_PIPELINE)
        rc = collect(ctl, ps);
    if (rc != 0)
        return rc;
    slot_t *s = &ps->slots[(ps->head + ps->count) % SL_CTL_PIPELINE];
    pack_publish(ctl, po, session, data, len, &s->msgid);
    s->line = line;
    s->state = SLOT_PENDING;
    ps->count++;
    rc = sl_ctl_rpc_send(ctl->rpc, sl_ctl_deadline(ctl));
    return rc < 0 ? sl_ctl_fail(ctl, rc, "lost the connection to") : 0;
}

static int publish_lines(sl_ctl_t *ctl, const pub_opts_t *po, const char *session)
{
    static pipe_state_t ps;
    char *line = NULL;
    size_t cap = 0;
    uint64_t n = 0;
    int rc = 0;
    ssize_t len;
    /* Bounded by stdin: one line per pass; no new line after a failure. */
    while (rc == 0 && ps.fail_exit == 0 && (len = getline(&line, &cap, stdin)) >= 0) {
        n++;
        if (len > 0 && line[len - 1] == '\n')
            len--;
        if (len > 0 && line[len - 1] == '\r')
            len--;
        if ((size_t)len > SL_CTL_DATA_BYTES_MAX)
            rc = sl_ctl_usage("line %" PRIu64 " is longer than 64 MiB", n);
        else
            rc = send_line(ctl, po, &ps, session, line, (size_t)len, n);
    }
    free(line);
    /* What is in flight is answered even after a failure, so every seq
     * before the failing line is printed. */
    while (rc == 0 && ps.count)
        rc = collect(ctl, &ps);
    if (rc == 0 && ps.late_published)
        fprintf(stderr,
                "sluicectl: %" PRIu64 " line(s) after the failed one were already in flight "
                "and were published\n",
                ps.late_published);
    return rc ? rc : ps.fail_exit;
}

static int pub_opt(sl_ctl_t *ctl, void *state, int opt, const char *val)
{
    pub_opts_t *po = state;
    switch (opt) {
    case 'T':
        po->type = val;
        return 0;
    case 'd':
        po->durable = true;
        return 0;
    case 'e':
        po->ephemeral = true;
        return 0;
    case 's':
        po->as_str = true;
        return 0;
    case 'L':
        po->lines = true;
        return 0;
    case 'C':
        po->close = true;
        return 0;
    case 'P':
        po->producer = val;
        return 0;
    }
    return SL_CTL_EXIT_USAGE;
}

static const struct option pub_longopts[] = {
    {"type", required_argument, NULL, 'T'},
    {"durable", no_argument, NULL, 'd'},
    {"ephemeral", no_argument, NULL, 'e'},
    {"str", no_argument, NULL, 's'},
    {"lines", no_argument, NULL, 'L'},
    {"close", no_argument, NULL, 'C'},
    {"producer", required_argument, NULL, 'P'},
    SL_CTL_GLOBAL_LONGOPTS,
    {0},
};

static const char publish_usage[] =
    "usage: sluicectl publish SESSION [DATA|-] [--type T] [--durable] [--ephemeral]\n"
    "                         [--str] [--lines]\n"
    "                         [--close] [--producer ID:EPOCH:SEQ]\n"
    "Publishes DATA (bytes as given) as one event and prints its seq. Without DATA,\n"
    "or with '-', the event is the whole of stdin; with --lines every stdin line is\n"
    "one event (the line break removed, blank lines included; publishes are\n"
    "pipelined) and the seqs are printed one per line, in input order.\n"
    "The session is created by its first publish.\n"
    "  --type T      event type (default message)\n"
    "  --durable     answer only after the event is synced to disk\n"
    "  --ephemeral   do not log the event (live subscribers only)\n"
    "  --str         send the data as a msgpack str (subscribers then get a str);\n"
    "                the default is bin\n"
    "  --lines       one event per stdin line; at the first line the server refuses,\n"
    "                reading stops, the seqs before it are printed and the error\n"
    "                names the line (lines after it already in flight, at most 63,\n"
    "                may have been published: a count is printed)\n"
    "  --close       close the session for good with this event (atomic)\n"
    "  --producer ID:EPOCH:SEQ\n"
    "                idempotent producer: a retry with the same ID, EPOCH and SEQ\n"
    "                is not appended again (prints the original seq, or\n"
    "                'duplicate' for an older one); a stale EPOCH is refused\n"
    "                (fenced), a skipped SEQ too (producer_gap)\n"
    "Data starting with '-' goes after '--'. --json prints {\"seq\": N} per event.\n";

int sl_ctl_cmd_publish(sl_ctl_t *ctl, int argc, char **argv)
{
    pub_opts_t po = {.type = "message"};
    int first;
    int rc = sl_ctl_parse(ctl, argc, argv, pub_longopts, pub_opt, &po, publish_usage, &first);
    if (rc != 0)
        return rc == 1 ? SL_CTL_EXIT_OK : rc;
    int nargs = argc - first;
    if (nargs < 1 || nargs > 2)
        return sl_ctl_usage("publish takes SESSION [DATA|-]; see sluicectl publish --help");
    const char *session = argv[first];
    const char *data = nargs == 2 ? argv[first + 1] : "-";
    bool from_stdin = strcmp(data, "-") == 0;
    if (po.durable && po.ephemeral)
        return sl_ctl_usage("--durable and --ephemeral exclude each other");
    if (po.producer && parse_producer(&po) != 0)
        return sl_ctl_usage("--producer takes ID:EPOCH:SEQ (integers)");
    if (po.lines && (po.close || po.producer))
        return sl_ctl_usage("--close and --producer publish one event: not with --lines");
    if (po.lines && !from_stdin)
        return sl_ctl_usage("--lines reads stdin: give '-' or no DATA");
    if (!from_stdin && strlen(data) > SL_CTL_DATA_BYTES_MAX)
        return sl_ctl_usage("DATA is longer than 64 MiB");
    char *buf = NULL;
    size_t len = strlen(data);
    if (from_stdin && !po.lines) {
        rc = read_all(&buf, &len);
        if (rc == SL_ETOOBIG)
            return sl_ctl_usage("stdin holds more than 64 MiB; nothing was sent");
        if (rc < 0)
            return sl_ctl_usage("cannot read stdin: %s", sl_strerror(rc));
        data = buf;
    }
    rc = sl_ctl_open(ctl);
    if (rc == 0)
        rc =
            po.lines ? publish_lines(ctl, &po, session) : publish_one(ctl, &po, session, data, len);
    free(buf);
    return rc;
}
