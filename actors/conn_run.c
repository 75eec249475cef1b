/*
 * The runs faces of a connection (API.md "Runs"): HTTP
 * POST/GET/DELETE /v1/sessions/{id}/run and POST .../run/stdin, and the
 * msgpack-RPC methods run, cancel and stdin. They translate to
 * sl_run_submit / sl_run_cancel / sl_run_status_json and turn the SL_E*
 * codes back into statuses; a request that waits for the spawner or the
 * child's stdin is answered when its record comes back
 * (SL_RUN_MSG_REPLY). Access was checked by the caller (pub for runs and
 * stdin, sub for reading a run's state).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "actors/conn_int.h"
#include "actors/json.h"
#include "actors/run.h"
#include "actors/server.h"
#include "net/http.h"
#include "net/rpc.h"
#include "storage/session_id.h"

static const sl_http_header_t json_hdr[] = {SL_HTTP_HEADER_LIT("content-type", "application/json")};
static const sl_http_header_t retry_hdr[] = {SL_HTTP_HEADER_LIT("retry-after", "1")};

typedef struct answer {
    int status;       /* HTTP status */
    const char *code; /* error code */
    const char *message;
    bool retry; /* Retry-After: 1 */
} answer_t;

static answer_t map_error(int rc, bool stdin_req)
{
    switch (rc) {
    case SL_ENOTFOUND:
        return stdin_req ? (answer_t){409, "conflict", "no run is active on this session", false}
                         : (answer_t){404, "not_found", "no such runner", false};
    case SL_ECONFLICT:
        return (answer_t){409, "conflict", "a run is already active on this session", false};
    case SL_EFULL:
        return (answer_t){429, "overloaded", "too many active runs; retry later", true};
    case SL_EENDED:
        return (answer_t){409, "closed", "the session is closed", false};
    case SL_ECLOSED:
        return (answer_t){409, "conflict", "the run's stdin is closed or the run ended", false};
    case SL_EAGAIN:
        return (answer_t){503, "overloaded", "the run's stdin queue is full; retry", true};
    case SL_EINVAL:
        return stdin_req
                   ? (answer_t){413, "too_large", "stdin beyond the runner's max-stdin", false}
                   : (answer_t){400, "bad_request",
                                "too many args, or stdin beyond the runner's max-stdin", false};
    default:
        return (answer_t){500, "internal", "the run could not be started", false};
    }
}

/* ---- answers ---- */

static void http_error(sl_conn_t *c, uint32_t sid, answer_t a, const char *detail)
{
    char msg[160];
    snprintf(msg, sizeof msg, "%s%s%s", a.message, detail ? ": " : "", detail ? detail : "");
    atomic_fetch_add_explicit(a.status >= 500 ? &c->srv->counters.responses_5xx
                                              : &c->srv->counters.responses_4xx,
                              1, memory_order_relaxed);
    sl_http_respond_error(c->http, sid, a.status, a.code, msg, a.retry ? retry_hdr : NULL,
                          a.retry ? 1 : 0);
}

static void rpc_error(sl_conn_t *c, uint32_t msgid, const char *code, const char *msg)
{
    uint8_t buf[512];
    int n = sl_rpc_error_encode(buf, sizeof buf, msgid, code, msg);
    if (n > 0 && sl_rpc_outq_put(&c->outq, buf, (size_t)n) == 0)
        return;
    c->proto_failed = true; /* the client would wait forever: close instead */
}

static void rpc_json(sl_conn_t *c, uint32_t msgid, const char *json, size_t len)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (sl_json_to_msgpack(json, len, &pk) != 0 ||
        sl_rpc_outq_response_packed(&c->outq, msgid, sb.data, sb.size) != 0)
        rpc_error(c, msgid, "internal", "cannot encode the answer");
    msgpack_sbuffer_destroy(&sb);
}

static void answer_error(sl_conn_t *c, bool rpc, uint32_t id, int rc, bool stdin_req)
{
    answer_t a = map_error(rc, stdin_req);
    const char *detail = rc < 0 && rc > -4096 ? sl_strerror(rc) : NULL;
    if (rpc)
        rpc_error(c, id, a.code, a.message);
    else
        http_error(c, id, a, detail);
}

void sl_conn__run_reply(sl_conn_t *c, sl_msg_t *m)
{
    sl_run_req_t *req = (sl_run_req_t *)(void *)m;
    bool live = c->state < SL_CONN__CLOSING && (req->rpc ? c->rpc != NULL : c->http != NULL);
    if (live && req->status != 0) {
        answer_error(c, req->rpc, req->stream_id, req->status, req->kind == SL_RUN_REQ_STDIN);
    } else if (live) {
        char body[128];
        int n =
            req->kind == SL_RUN_REQ_START
                ? snprintf(body, sizeof body, "{\"run\":\"%s\",\"pid\":%d}", req->run_id, req->pid)
                : snprintf(body, sizeof body, "{\"written\":%" PRIu64 ",\"closed\":%s}",
                           req->written, req->close_stdin ? "true" : "false");
        if (req->rpc)
            rpc_json(c, req->stream_id, body, (size_t)n);
        else
            sl_http_respond(c->http, req->stream_id, req->kind == SL_RUN_REQ_START ? 201 : 200,
                            json_hdr, 1, body, (size_t)n);
    }
    free(req);
    sl_actor_release(&c->a); /* the request's reference */
}

/* ---- parameters (HTTP bodies arrive as JSON, packed to msgpack first) ---- */

/* The parts of a start request, borrowed from a msgpack object. */
typedef struct start_params {
    const char *runner;
    size_t runner_len;
    const msgpack_object *args; /* array or NULL */
    const char *stdin_data;
    size_t stdin_len;
    bool close_stdin;
} start_params_t;

/* Reads {"stdin": str|bin, "close_stdin": bool} and, with want_runner,
 * {"runner": str, "args": [str]}. Returns NULL or what is wrong. */
static const char *read_map(const msgpack_object *o, start_params_t *sp, bool want_runner)
{
    if (o->type != MSGPACK_OBJECT_MAP)
        return "expected an object";
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object *k = &o->via.map.ptr[i].key, *v = &o->via.map.ptr[i].val;
        if (want_runner && sl_rpc_obj_is(k, "runner")) {
            if (!sl_rpc_obj_bytes(v, &sp->runner, &sp->runner_len))
                return "runner must be a string";
        } else if (want_runner && sl_rpc_obj_is(k, "args")) {
            if (v->type != MSGPACK_OBJECT_ARRAY)
                return "args must be an array of strings";
            sp->args = v;
        } else if (sl_rpc_obj_is(k, "stdin")) {
            if (!sl_rpc_obj_bytes(v, &sp->stdin_data, &sp->stdin_len))
                return "stdin must be a string";
        } else if (sl_rpc_obj_is(k, "close_stdin")) {
            if (v->type != MSGPACK_OBJECT_BOOLEAN)
                return "close_stdin must be a boolean";
            sp->close_stdin = v->via.boolean;
        }
    }
    return NULL;
}

/* Builds the start request (returns owned) or NULL with *why set. */
static sl_run_req_t *make_start(sl_conn_t *c, const char *id, size_t id_len,
                                const start_params_t *sp, const char **why)
{
    if (!sp->runner || sp->runner_len == 0 || sp->runner_len > SL_RUNNER_NAME_MAX) {
        *why = "runner: a runner name is required";
        return NULL;
    }
    uint32_t nargs = sp->args ? sp->args->via.array.size : 0;
    if (nargs > SL_RUN_ARGS_MAX) {
        *why = "at most 64 args";
        return NULL;
    }
    size_t bytes = sp->stdin_len;
    for (uint32_t i = 0; i < nargs; i++) {
        const char *p;
        size_t n;
        if (!sl_rpc_obj_bytes(&sp->args->via.array.ptr[i], &p, &n) || n > SL_RUN_ARG_BYTES_MAX ||
            memchr(p, '\0', n)) {
            *why = "args must be strings of at most 4096 bytes without NUL";
            return NULL;
        }
        bytes += n + 1;
    }
    sl_run_req_t *req = sl_run_req_alloc(bytes);
    if (!req) {
        *why = "out of memory";
        return NULL;
    }
    req->kind = SL_RUN_REQ_START;
    req->reply_to = &c->a;
    memcpy(req->session, id, id_len);
    req->session_len = (uint32_t)id_len;
    memcpy(req->runner, sp->runner, sp->runner_len);
    size_t o = 0;
    for (uint32_t i = 0; i < nargs; i++) {
        const char *p = NULL;
        size_t n = 0;
        sl_rpc_obj_bytes(&sp->args->via.array.ptr[i], &p, &n);
        memcpy(req->data + o, p, n);
        req->data[o + n] = '\0';
        req->args[i] = (const char *)req->data + o;
        o += n + 1;
    }
    req->nargs = nargs;
    req->stdin_data = req->data + o;
    if (sp->stdin_len) /* stdin_data is NULL when absent */
        memcpy(req->stdin_data, sp->stdin_data, sp->stdin_len);
    req->stdin_len = sp->stdin_len;
    req->close_stdin = sp->close_stdin;
    return req;
}

static sl_run_req_t *make_stdin(sl_conn_t *c, const char *id, size_t id_len, const void *data,
                                size_t len, bool close)
{
    sl_run_req_t *req = sl_run_req_alloc(len);
    if (!req)
        return NULL;
    req->kind = SL_RUN_REQ_STDIN;
    req->reply_to = &c->a;
    memcpy(req->session, id, id_len);
    req->session_len = (uint32_t)id_len;
    if (len) /* an empty body has no pointer */
        memcpy(req->data, data, len);
    req->stdin_data = req->data;
    req->stdin_len = len;
    req->close_stdin = close;
    return req;
}

static void submit(sl_conn_t *c, sl_run_req_t *req, bool rpc, uint32_t id)
{
    req->rpc = rpc;
    req->stream_id = id;
    bool stdin_req = req->kind == SL_RUN_REQ_STDIN;
    int rc = sl_run_submit(c->srv, req);
    if (rc != 0)
        answer_error(c, rpc, id, rc, stdin_req);
}

/* ---- HTTP ---- */

static void http_start(sl_conn_t *c, const sl_http_req_t *req, const char *id, size_t id_len)
{
    uint32_t sid = req->stream_id;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    const char *why =
        "the body must be a JSON object {\"runner\": ..., \"args\"?: [...], \"stdin\"?: ...}";
    start_params_t sp = {0};
    sl_run_req_t *r = NULL;
    if (req->body_len > 0 && sl_json_to_msgpack((const char *)req->body, req->body_len, &pk) == 0 &&
        msgpack_unpack_next(&u, sb.data, sb.size, NULL) == MSGPACK_UNPACK_SUCCESS &&
        !(why = read_map(&u.data, &sp, true)))
        r = make_start(c, id, id_len, &sp, &why);
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&sb);
    if (!r)
        return http_error(c, sid, (answer_t){400, "bad_request", why, false}, NULL);
    submit(c, r, false, sid);
}

static bool header_truthy(const sl_http_req_t *req, const char *name)
{
    const sl_http_header_t *h = sl_http_req_header(req, name);
    return h && ((h->value_len == 1 && h->value[0] == '1') ||
                 (h->value_len == 4 && memcmp(h->value, "true", 4) == 0));
}

void sl_conn__run_http(sl_conn_t *c, const sl_http_req_t *req, const char *id, size_t id_len,
                       const char *rest, size_t rest_len)
{
    uint32_t sid = req->stream_id;
    static const sl_http_header_t allow_run = {"allow", 5, "GET, POST, DELETE", 17};
    static const sl_http_header_t allow_stdin = {"allow", 5, "POST", 4};
    if (rest_len == 6 && memcmp(rest, "/stdin", 6) == 0) {
        if (req->method != SL_HTTP_METHOD_POST) {
            atomic_fetch_add_explicit(&c->srv->counters.responses_4xx, 1, memory_order_relaxed);
            sl_http_respond_error(c->http, sid, 405, "method_not_allowed", "POST only",
                                  &allow_stdin, 1);
            return;
        }
        sl_run_req_t *r =
            make_stdin(c, id, id_len, req->body, req->body_len, header_truthy(req, "sluice-close"));
        if (!r)
            return http_error(c, sid, (answer_t){503, "overloaded", "out of memory", true}, NULL);
        return submit(c, r, false, sid);
    }
    if (rest_len != 0)
        return http_error(c, sid, (answer_t){404, "not_found", "no such resource", false}, NULL);
    if (req->method == SL_HTTP_METHOD_POST)
        return http_start(c, req, id, id_len);
    if (req->method == SL_HTTP_METHOD_GET || req->method == SL_HTTP_METHOD_HEAD) {
        char body[1024];
        size_t n = sl_run_status_json(c->srv, id, id_len, body, sizeof body);
        if (n == 0)
            return http_error(c, sid, (answer_t){404, "not_found", "no run on this session", false},
                              NULL);
        sl_http_respond(c->http, sid, 200, json_hdr, 1, body, n);
        return;
    }
    if (req->method == SL_HTTP_METHOD_DELETE) {
        char run_id[24], body[96];
        if (sl_run_cancel(c->srv, id, id_len, run_id) != 0)
            return http_error(c, sid, (answer_t){409, "conflict", "no run is active", false}, NULL);
        int n = snprintf(body, sizeof body, "{\"run\":\"%s\",\"cancelling\":true}", run_id);
        sl_http_respond(c->http, sid, 202, json_hdr, 1, body, (size_t)n);
        return;
    }
    atomic_fetch_add_explicit(&c->srv->counters.responses_4xx, 1, memory_order_relaxed);
    sl_http_respond_error(c->http, sid, 405, "method_not_allowed", "method not allowed here",
                          &allow_run, 1);
}

/* ---- msgpack-RPC ---- */

static bool rpc_session(sl_conn_t *c, uint32_t msgid, const msgpack_object_array *a,
                        const char **id, size_t *len)
{
    if (a->size < 1 || !sl_rpc_obj_bytes(&a->ptr[0], id, len)) {
        rpc_error(c, msgid, "bad_params", "expected a session id (str)");
        return false;
    }
    if (!sl_session_id_valid(*id, *len)) {
        rpc_error(c, msgid, "invalid_session_id",
                  "session ids are 1-128 bytes of [A-Za-z0-9._-], not starting with '.'");
        return false;
    }
    return true;
}

static void rpc_run(sl_conn_t *c, uint32_t msgid, const msgpack_object_array *a)
{
    const char *id;
    size_t id_len;
    if (!rpc_session(c, msgid, a, &id, &id_len))
        return;
    start_params_t sp = {0};
    const char *why = NULL;
    if (a->size < 2 || !sl_rpc_obj_bytes(&a->ptr[1], &sp.runner, &sp.runner_len))
        why = "expected [session, runner, args?, opts?]";
    if (!why && a->size >= 3 && a->ptr[2].type != MSGPACK_OBJECT_NIL) {
        if (a->ptr[2].type != MSGPACK_OBJECT_ARRAY)
            why = "args must be an array of strings";
        sp.args = &a->ptr[2];
    }
    if (!why && a->size >= 4 && a->ptr[3].type != MSGPACK_OBJECT_NIL)
        why = read_map(&a->ptr[3], &sp, false);
    sl_run_req_t *r = why ? NULL : make_start(c, id, id_len, &sp, &why);
    if (!r)
        return rpc_error(c, msgid, "bad_params", why);
    submit(c, r, true, msgid);
}

static void rpc_stdin(sl_conn_t *c, uint32_t msgid, const msgpack_object_array *a)
{
    const char *id, *data;
    size_t id_len, len;
    if (!rpc_session(c, msgid, a, &id, &id_len))
        return;
    if (a->size < 2 || !sl_rpc_obj_bytes(&a->ptr[1], &data, &len) ||
        (a->size >= 3 && a->ptr[2].type != MSGPACK_OBJECT_BOOLEAN &&
         a->ptr[2].type != MSGPACK_OBJECT_NIL))
        return rpc_error(c, msgid, "bad_params", "expected [session, data, close?]");
    bool close = a->size >= 3 && a->ptr[2].type == MSGPACK_OBJECT_BOOLEAN && a->ptr[2].via.boolean;
    sl_run_req_t *r = make_stdin(c, id, id_len, data, len, close);
    if (!r)
        return rpc_error(c, msgid, "overloaded", "out of memory");
    submit(c, r, true, msgid);
}

bool sl_conn__run_rpc(sl_conn_t *c, const char *method, size_t len, uint32_t msgid,
                      const msgpack_object *params)
{
    const msgpack_object_array *a = &params->via.array;
    if (len == 3 && memcmp(method, "run", 3) == 0) {
        rpc_run(c, msgid, a);
    } else if (len == 5 && memcmp(method, "stdin", 5) == 0) {
        rpc_stdin(c, msgid, a);
    } else if (len == 6 && memcmp(method, "cancel", 6) == 0) {
        const char *id;
        size_t id_len;
        char run_id[24];
        if (!rpc_session(c, msgid, a, &id, &id_len))
            return true;
        if (sl_run_cancel(c->srv, id, id_len, run_id) != 0) {
            rpc_error(c, msgid, "conflict", "no run is active");
            return true;
        }
        uint8_t buf[16];
        int n = sl_rpc_response_bool(buf, sizeof buf, msgid, true);
        if (sl_rpc_outq_put(&c->outq, buf, (size_t)n) != 0)
            c->proto_failed = true;
    } else {
        return false;
    }
    return true;
}
