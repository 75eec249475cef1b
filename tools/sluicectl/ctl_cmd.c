/*
 * What every sluicectl command shares: global options and their
 * environment twins, option parsing, connecting, one request/response
 * round trip, and turning failures into messages and exit statuses.
 */
#include "tools/sluicectl/ctl_cmd.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/base.h"
#include "tools/sluicectl/ctl_json.h"

int sl_ctl_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("sluicectl: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return SL_CTL_EXIT_USAGE;
}

static int set_timeout(sl_ctl_t *ctl, const char *v, const char *src)
{
    char *end;
    errno = 0;
    double s = strtod(v, &end);
    if (errno || end == v || *end || !(s > 0) || s > SL_CTL_TIMEOUT_MAX_S)
        return sl_ctl_usage("bad timeout '%s' (%s): seconds, more than 0, at most 86400", v, src);
    ctl->timeout_ms = s * 1000 < 1 ? 1 : (int)(s * 1000);
    return 0;
}

static int set_addr(sl_ctl_t *ctl, const char *v, const char *src)
{
    if (strncmp(v, "tls://", 6) == 0) { /* TLS to HOST:PORT */
        ctl->tls.on = true;
        v += 6;
    }
    if (!*v || strlen(v) >= sizeof(ctl->addr))
        return sl_ctl_usage("bad RPC address '%s' (%s): [tls://]HOST:PORT or unix:PATH", v, src);
    strcpy(ctl->addr, v);
    return 0;
}

int sl_ctl_env(sl_ctl_t *ctl)
{
    memset(ctl, 0, sizeof(*ctl));
    strcpy(ctl->addr, "127.0.0.1:7070");
    ctl->timeout_ms = 10000;
    const char *v = getenv("SLUICE_RPC");
    if (v && *v && set_addr(ctl, v, "SLUICE_RPC") != 0)
        return SL_CTL_EXIT_USAGE;
    v = getenv("SLUICE_TIMEOUT");
    if (v && *v && set_timeout(ctl, v, "SLUICE_TIMEOUT") != 0)
        return SL_CTL_EXIT_USAGE;
    v = getenv("SLUICE_TOKEN");
    ctl->token = v && *v ? v : NULL;
    v = getenv("SLUICE_JSON");
    if (v && *v) {
        if (!strcmp(v, "1") || !strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "on"))
            ctl->json = true;
        else if (strcmp(v, "0") && strcmp(v, "false") && strcmp(v, "no") && strcmp(v, "off"))
            return sl_ctl_usage("bad SLUICE_JSON '%s': 1/0, true/false, yes/no, on/off", v);
    }
    return 0;
}

int sl_ctl_global_opt(sl_ctl_t *ctl, int opt, const char *val)
{
    switch (opt) {
    case 'r':
        return set_addr(ctl, val, "--rpc");
    case 'j':
        ctl->json = true;
        return 0;
    case 't':
        return set_timeout(ctl, val, "--timeout");
    case SL_CTL_OPT_TLS:
        ctl->tls.on = true;
        return 0;
    case SL_CTL_OPT_INSECURE:
        ctl->tls.on = ctl->tls.insecure = true;
        return 0;
    case SL_CTL_OPT_CACERT:
        if (!*val || strlen(val) >= sizeof(ctl->cacert))
            return sl_ctl_usage("bad --cacert '%s'", val);
        strcpy(ctl->cacert, val);
        ctl->tls.cacert = ctl->cacert;
        ctl->tls.on = true;
        return 0;
    case 'k':
        ctl->token = *val ? val : NULL;
        return 0;
    default:
        sl_assert(!"not a global option");
    }
    return 0;
}

int sl_ctl_parse(sl_ctl_t *ctl, int argc, char **argv, const struct option *opts,
                 sl_ctl_opt_cb on_opt, void *state, const char *usage, int *first_arg)
{
    opterr = 0;
    optind = 0; /* GNU: start afresh on this argv */
    int opt;
    /* Bounded by argc: getopt consumes at least one argument per pass. */
    while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        int rc = 0;
        if (opt == 'h') {
            fputs(usage, stdout);
            return 1;
        } else if (opt == ':') {
            rc = sl_ctl_usage("%s needs a value; see sluicectl %s --help", argv[optind - 1],
                              argv[0]);
        } else if (opt == '?') {
            rc = sl_ctl_usage("unknown option '%s'; see sluicectl %s --help", argv[optind - 1],
                              argv[0]);
        } else if (opt == 'r' || opt == 'j' || opt == 't' || opt == 'k' || opt >= SL_CTL_OPT_TLS) {
            rc = sl_ctl_global_opt(ctl, opt, optarg);
        } else {
            rc = on_opt(ctl, state, opt, optarg);
        }
        if (rc != 0)
            return rc;
    }
    *first_arg = optind;
    return 0;
}

int sl_ctl_fail(const sl_ctl_t *ctl, int rc, const char *what)
{
    const char *why;
    char buf[64];
    switch (rc) {
    case -ETIMEDOUT:
        snprintf(buf, sizeof(buf), "no answer within %.3g s", ctl->timeout_ms / 1000.0);
        why = buf;
        break;
    case SL_ECLOSED:
        why = "the server closed the connection";
        break;
    case SL_EPROTO:
        why = "the server sent something that is not msgpack-RPC";
        break;
    case SL_ETOOBIG:
        why = "the server sent a message larger than 64 MiB";
        break;
    case -EINTR:
        why = "interrupted";
        break;
    default:
        why = sl_strerror(rc);
    }
    fprintf(stderr, "sluicectl: %s %s: %s\n", what, ctl->addr, why);
    return SL_CTL_EXIT_CONN;
}

/* auth [token]: every later request on the connection runs under it. */
static int authenticate(sl_ctl_t *ctl)
{
    uint32_t msgid;
    msgpack_packer *pk = sl_ctl_rpc_begin(ctl->rpc, "auth", 1, &msgid);
    sl_ctl_pack_str(pk, ctl->token, strlen(ctl->token));
    sl_ctl_msg_t resp;
    int rc = sl_ctl_call(ctl, msgid, &resp);
    if (rc != 0)
        return rc;
    if (resp.error)
        rc = sl_ctl_server_error(resp.error);
    sl_ctl_msg_release(&resp);
    return rc;
}

int sl_ctl_open(sl_ctl_t *ctl)
{
    int rc = sl_ctl_rpc_connect(ctl->addr, &ctl->tls, ctl->timeout_ms, &ctl->rpc);
    if (rc == SL_EINVAL)
        return sl_ctl_usage("bad RPC address '%s': HOST:PORT (resolvable) or unix:PATH", ctl->addr);
    if (rc < 0)
        return sl_ctl_fail(ctl, rc, "cannot connect to");
    return ctl->token ? authenticate(ctl) : 0;
}

int64_t sl_ctl_deadline(const sl_ctl_t *ctl)
{
    return sl_ctl_now_ms() + ctl->timeout_ms;
}

int sl_ctl_call(sl_ctl_t *ctl, uint32_t msgid, sl_ctl_msg_t *resp)
{
    int64_t deadline = sl_ctl_deadline(ctl);
    int rc = sl_ctl_rpc_send(ctl->rpc, deadline);
    if (rc < 0)
        return sl_ctl_fail(ctl, rc, "lost the connection to");
    rc = sl_ctl_rpc_wait(ctl->rpc, msgid, deadline, resp);
    if (rc < 0)
        return sl_ctl_fail(ctl, rc, "no reply from");
    return 0;
}

static bool is_text(const msgpack_object *o, const char **s, size_t *len)
{
    if (o->type == MSGPACK_OBJECT_STR) {
        *s = o->via.str.ptr;
        *len = o->via.str.size;
        return true;
    }
    if (o->type == MSGPACK_OBJECT_BIN) {
        *s = o->via.bin.ptr;
        *len = o->via.bin.size;
        return true;
    }
    return false;
}

int sl_ctl_server_error(const msgpack_object *err)
{
    const char *code = NULL, *msg = NULL;
    size_t code_len = 0, msg_len = 0;
    if (err->type == MSGPACK_OBJECT_ARRAY && err->via.array.size >= 1)
        is_text(&err->via.array.ptr[0], &code, &code_len);
    if (err->type == MSGPACK_OBJECT_ARRAY && err->via.array.size >= 2)
        is_text(&err->via.array.ptr[1], &msg, &msg_len);
    fputs("sluicectl: server error: ", stderr);
    if (code) {
        fprintf(stderr, "%.*s", (int)code_len, code);
        if (msg)
            fprintf(stderr, ": %.*s", (int)msg_len, msg);
    } else {
        sl_ctl_json_write(stderr, err); /* not [code, message]: show it whole */
    }
    fputc('\n', stderr);
    bool not_found = code && code_len == 9 && memcmp(code, "not_found", 9) == 0;
    return not_found ? SL_CTL_EXIT_NOT_FOUND : SL_CTL_EXIT_SERVER;
}

int sl_ctl_parse_u64(const char *s, uint64_t *out)
{
    if (*s < '0' || *s > '9')
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return -1;
    *out = v;
    return 0;
}

const msgpack_object *sl_ctl_map_get(const msgpack_object *o, const char *key)
{
    if (!o || o->type != MSGPACK_OBJECT_MAP)
        return NULL;
    size_t klen = strlen(key);
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const char *s;
        size_t len;
        if (is_text(&o->via.map.ptr[i].key, &s, &len) && len == klen && !memcmp(s, key, len))
            return &o->via.map.ptr[i].val;
    }
    return NULL;
}

void sl_ctl_pack_str(msgpack_packer *pk, const char *s, size_t len)
{
    msgpack_pack_str(pk, len);
    msgpack_pack_str_body(pk, s, len);
}
