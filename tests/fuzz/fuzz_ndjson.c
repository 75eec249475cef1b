/*
 * The JSON the HTTP API reads: NDJSON publish bodies through the batch
 * parser of actors/conn_api.c (sl_conn__parse_batch, which calls
 * sl_json_event_line once per line), single lines, the JSON-to-msgpack
 * packer, and the string escaper.
 *
 * Checks besides the sanitizers: every event of an accepted batch points
 * inside the batch's buffer with a valid type, decoding never grows a
 * line, the escaper's output holds no raw control byte, and an escaped
 * string decodes back to itself through the line parser.
 */
#include <string.h>

#include "actors/conn_int.h"
#include "actors/json.h"
#include "net/http.h"
#include "runtime/base.h"

#include "tests/fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_batch(const uint8_t *data, size_t size)
{
    sl_http_req_t req;
    memset(&req, 0, sizeof req);
    req.body = size ? data : NULL;
    req.body_len = size;
    req.content_length = (int64_t)size;
    int status = 0;
    const char *code = NULL;
    sl_config_t cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.max_event_bytes = 1024;
    sl_pub_t *p = sl_conn__parse_batch(&req, &cfg, &status, &code);
    if (p == NULL) {
        FZ_CHECK(status == 400 || status == 413 || status == 503);
        FZ_CHECK(code != NULL);
        return;
    }
    FZ_CHECK(p->nevents >= 1);
    /* The buffer is sized from the body (sl_conn__pub_alloc(lines, n + 16)). */
    size_t buf_bytes = size + 16;
    for (uint32_t i = 0; i < p->nevents; i++) {
        const sl_pub_event_t *e = &p->events[i];
        FZ_CHECK((size_t)e->type_off + e->type_len <= buf_bytes);
        FZ_CHECK((size_t)e->data_off + e->data_len <= buf_bytes);
        FZ_CHECK(e->data_len <= 1024);
        FZ_CHECK(sl_conn__type_valid((const char *)p->buf + e->type_off, e->type_len));
        fz_touch(p->buf + e->data_off, e->data_len);
    }
    free(p);
}

static void check_line(const uint8_t *data, size_t size)
{
    uint8_t *out = malloc(size + 1);
    FZ_CHECK(out != NULL);
    uint32_t tlen = 0, doff = 0, dlen = 0;
    int rc = sl_json_event_line((const char *)data, size, out, size, &tlen, &doff, &dlen);
    if (rc == 0) {
        FZ_CHECK(doff >= tlen);
        FZ_CHECK((size_t)doff + dlen <= size);
        fz_touch(out, (size_t)doff + dlen);
    } else {
        FZ_CHECK(rc == SL_EINVAL || rc == SL_ETOOBIG);
    }
    free(out);
}

/* Escapes the input as a data string, wraps it in a line and parses it:
 * the data must come back unchanged. */
static void check_escape(const uint8_t *data, size_t size)
{
    size_t cap = size * 6 + 64;
    char *esc = malloc(cap);
    FZ_CHECK(esc != NULL);
    int n = sl_json_escape(esc, cap - 32, (const char *)data, size);
    FZ_CHECK(n >= 0);
    for (int i = 0; i < n; i++)
        FZ_CHECK((uint8_t)esc[i] >= 0x20);
    char *line = malloc((size_t)n + 32);
    FZ_CHECK(line != NULL);
    int ln = snprintf(line, (size_t)n + 32, "{\"data\":\"%.*s\"}", n, esc);
    uint8_t *out = malloc((size_t)ln + 1);
    FZ_CHECK(out != NULL);
    uint32_t tlen, doff, dlen;
    int rc = sl_json_event_line(line, (size_t)ln, out, (size_t)ln, &tlen, &doff, &dlen);
    /* Escaping passes bytes >= 0x80 through, so invalid UTF-8 may be
     * refused; whatever is accepted must be the original bytes. */
    if (rc == 0) {
        FZ_CHECK(tlen == 0);
        FZ_CHECK(dlen == size);
        FZ_CHECK(size == 0 || memcmp(out + doff, data, size) == 0);
    }
    free(out);
    free(line);
    free(esc);
}

static void check_msgpack(const uint8_t *data, size_t size)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    int rc = sl_json_to_msgpack((const char *)data, size, &pk);
    if (rc == 0) {
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        size_t off = 0;
        FZ_CHECK(msgpack_unpack_next(&u, sb.data, sb.size, &off) == MSGPACK_UNPACK_SUCCESS);
        msgpack_unpacked_destroy(&u);
    }
    msgpack_sbuffer_destroy(&sb);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_batch(data, size);
    check_line(data, size);
    if (size <= 4096) {
        check_escape(data, size);
        check_msgpack(data, size);
    }
    return 0;
}
