/*
 * The msgpack-RPC decoder (net/rpc): arbitrary bytes fed in chunks the way
 * the connection feeds what recv returned, every message decoded and
 * walked. Byte 0 seeds the chunk sizes and picks small limits now and then
 * so each bound is reached with short inputs.
 *
 * Checks besides the sanitizers: feed always makes progress when no
 * message is waiting (the promise in rpc.h), a sticky error stays sticky,
 * a decoded message has the documented shape (params an ARRAY, method
 * bytes readable), and the encoders' output decodes back to what was
 * encoded.
 */
#include <errno.h>
#include <string.h>

#include "net/rpc.h"
#include "runtime/base.h"

#include "tests/fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Reads every byte an object refers to; depth is bounded by the decoder. */
static void walk(const msgpack_object *o, uint32_t depth)
{
    FZ_CHECK(depth <= SL_RPC_DEPTH_MAX + 1);
    switch (o->type) {
    case MSGPACK_OBJECT_STR:
        fz_touch(o->via.str.ptr, o->via.str.size);
        break;
    case MSGPACK_OBJECT_BIN:
        fz_touch(o->via.bin.ptr, o->via.bin.size);
        break;
    case MSGPACK_OBJECT_EXT:
        fz_touch(o->via.ext.ptr, o->via.ext.size);
        break;
    case MSGPACK_OBJECT_ARRAY:
        for (uint32_t i = 0; i < o->via.array.size; i++)
            walk(&o->via.array.ptr[i], depth + 1);
        break;
    case MSGPACK_OBJECT_MAP:
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            walk(&o->via.map.ptr[i].key, depth + 1);
            walk(&o->via.map.ptr[i].val, depth + 1);
        }
        break;
    default:
        break;
    }
}

static void check_msg(const sl_rpc_msg_t *m)
{
    if (m->type == SL_RPC_REQUEST || m->type == SL_RPC_NOTIFICATION) {
        fz_touch(m->method, m->method_len);
        FZ_CHECK(m->params.type == MSGPACK_OBJECT_ARRAY);
        walk(&m->params, 1);
    } else {
        FZ_CHECK(m->type == SL_RPC_RESPONSE);
        walk(&m->error, 1);
        walk(&m->result, 1);
    }
}

/* The error and event encoders with text taken from the input decode to
 * what went in. */
static void check_encoders(const uint8_t *p, size_t n)
{
    char text[64];
    size_t tn = n < sizeof text - 1 ? n : sizeof text - 1;
    memcpy(text, p, tn);
    text[tn] = '\0';
    uint8_t buf[512];
    int len = sl_rpc_error_encode(buf, sizeof buf, 7, "bad_request", text);
    FZ_CHECK(len > 0);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    FZ_CHECK(msgpack_unpack_next(&u, (const char *)buf, (size_t)len, &off) ==
             MSGPACK_UNPACK_SUCCESS);
    FZ_CHECK(off == (size_t)len);
    const msgpack_object *o = &u.data;
    FZ_CHECK(o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size == 4);
    const msgpack_object *err = &o->via.array.ptr[2];
    FZ_CHECK(err->type == MSGPACK_OBJECT_ARRAY && err->via.array.size == 2);
    const msgpack_object *msg = &err->via.array.ptr[1];
    FZ_CHECK(msg->type == MSGPACK_OBJECT_STR && msg->via.str.size == strlen(text));
    FZ_CHECK(memcmp(msg->via.str.ptr, text, strlen(text)) == 0);

    size_t body_len = sl_rpc_event_body_size(3, 42, 7, n, true);
    uint8_t *body = malloc(SL_RPC_EVENT_PREFIX_MAX + body_len);
    FZ_CHECK(body != NULL);
    int pre = sl_rpc_event_prefix_encode(body, 9);
    FZ_CHECK(pre > 0 && pre <= SL_RPC_EVENT_PREFIX_MAX);
    int bl = sl_rpc_event_body_encode(body + pre, body_len, "abc", 3, 42, "message", 7, p, n,
                                      true);
    FZ_CHECK(bl == (int)body_len);
    off = 0;
    FZ_CHECK(msgpack_unpack_next(&u, (const char *)body, (size_t)pre + body_len, &off) ==
             MSGPACK_UNPACK_SUCCESS);
    FZ_CHECK(off == (size_t)pre + body_len);
    o = &u.data;
    FZ_CHECK(o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size == 3);
    const msgpack_object *args = &o->via.array.ptr[2];
    FZ_CHECK(args->type == MSGPACK_OBJECT_ARRAY && args->via.array.size == 5);
    const msgpack_object *d = &args->via.array.ptr[4];
    FZ_CHECK(d->type == MSGPACK_OBJECT_STR && d->via.str.size == n);
    FZ_CHECK(n == 0 || memcmp(d->via.str.ptr, p, n) == 0);
    free(body);
    msgpack_unpacked_destroy(&u);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    fz_rng_t rng = {data[0]};
    data++, size--;
    sl_rpc_limits_t lim;
    sl_rpc_limits_default(&lim);
    lim.max_message_bytes = 1u << 16;
    lim.max_str_bytes = lim.max_message_bytes;
    if (rng.s & 1) {
        lim.max_message_bytes = 256;
        lim.max_depth = 4;
        lim.max_array = 8;
        lim.max_map = 4;
        lim.max_str_bytes = 64;
        lim.max_objects = 32;
    }
    sl_rpc_decoder_t *dec;
    FZ_CHECK(sl_rpc_decoder_create(&lim, &dec) == 0);
    int sticky = 0;
    for (size_t off = 0; off < size && sticky == 0;) {
        size_t n = 1 + fz_next(&rng) % 700;
        n = n > size - off ? size - off : n;
        int took = sl_rpc_decoder_feed(dec, data + off, n);
        if (took < 0)
            break;
        FZ_CHECK((size_t)took <= n);
        off += (size_t)took;
        int rc, msgs = 0;
        sl_rpc_msg_t m;
        while ((rc = sl_rpc_decoder_next(dec, &m)) != 0) {
            msgs++;
            if (rc == 1) {
                check_msg(&m);
            } else if (rc == SL_EINVAL) {
                continue;
            } else {
                FZ_CHECK(rc == SL_ETOOBIG || rc == SL_EPROTO || rc == -ENOMEM);
                FZ_CHECK(sl_rpc_decoder_reason(dec) != NULL);
                FZ_CHECK(sl_rpc_decoder_next(dec, &m) == rc);
                sticky = rc;
                break;
            }
        }
        /* No message was waiting, so the bytes offered must have been taken. */
        FZ_CHECK(took > 0 || msgs > 0 || sticky != 0);
        FZ_CHECK(sl_rpc_decoder_pending(dec) <= lim.max_message_bytes);
    }
    sl_rpc_decoder_destroy(dec);
    check_encoders(data, size < 4096 ? size : 4096);
    return 0;
}
