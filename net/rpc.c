/*
 * msgpack-RPC framing (see net/rpc.h for the contract).
 *
 * Why a pre-scan instead of msgpack_unpacker: the streaming unpacker grows
 * its input buffer without a bound of ours, allocates `count *
 * sizeof(msgpack_object)` from its zone as soon as it sees an array or map
 * header (a 5-byte header declaring 2^32 elements asks for 96 GiB before a
 * single element has arrived), and has no depth limit below its fixed stack.
 * So the decoder keeps its own input buffer (at most max_message_bytes) and
 * walks the headers of the buffered bytes with a small resumable scanner: it
 * checks every declared length and count against the limits the moment the
 * header is complete, never reads a payload, and only when one whole message
 * is present and every check passed hands exactly those bytes to
 * msgpack_unpack. By then each element is known to exist, so the zone holds
 * at most max_objects msgpack_objects (a map pair is two), and str/bin/ext
 * objects point into the input buffer instead of being copied.
 *
 * Memory bound per decoder, for any input: the struct with its scan stack
 * (max_depth + 1 words), the input buffer (<= max_message_bytes), and while a
 * decoded message is alive its zone (<= sizeof(msgpack_object) * max_objects
 * plus one SL_RPC_ZONE_CHUNK_BYTES chunk). A drained large buffer and a grown
 * zone's extra chunks are freed, so an idle decoder holds the struct and at most
 * SL_RPC_BUF_IDLE_BYTES + SL_RPC_ZONE_CHUNK_BYTES.
 *
 * The scanner resumes where it stopped (scan_pos and the stack of elements
 * still owed per open container), so feeding a message byte by byte costs
 * O(message), not O(message^2).
 */
#include "net/rpc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack/unpack_define.h>

#include "runtime/budget.h"

_Static_assert(SL_RPC_DEPTH_MAX <= MSGPACK_EMBED_STACK_SIZE,
               "msgpack_unpack must be able to hold every accepted depth");

enum hdr_kind { HDR_SCALAR, HDR_RAW, HDR_ARRAY, HDR_MAP };

/* One decoded msgpack header: hdr_len bytes of header, then payload_len
 * bytes of raw payload (str/bin/ext/scalars), or count elements (arrays) /
 * pairs (maps). */
typedef struct hdr {
    enum hdr_kind kind;
    uint32_t hdr_len;
    uint64_t payload_len;
    uint64_t count;
} hdr_t;

struct sl_rpc_decoder {
    sl_rpc_limits_t lim;
    uint8_t *buf;      /* owned; cap bytes; [head, tail) undecoded */
    size_t cap;
    size_t head;
    size_t tail;
    size_t scan_pos;   /* next header, relative to head (may pass tail) */
    uint32_t objects;  /* objects seen in the current message */
    uint32_t depth;    /* entries on stack[]; 0 = message complete */
    int err;           /* sticky failure, 0 while healthy */
    const char *reason;
    bool zone_live;    /* zone initialised */
    msgpack_zone zone;
    uint32_t stack[];  /* elements still owed per open container; [0] = root */
};

void sl_rpc_limits_default(sl_rpc_limits_t *lim)
{
    sl_assert(lim != NULL);
    lim->max_message_bytes = SL_RPC_MESSAGE_BYTES_DEFAULT;
    lim->max_depth = SL_RPC_DEPTH_DEFAULT;
    lim->max_array = SL_RPC_ARRAY_DEFAULT;
    lim->max_map = SL_RPC_MAP_DEFAULT;
    lim->max_str_bytes = SL_RPC_MESSAGE_BYTES_DEFAULT;
    lim->max_objects = SL_RPC_OBJECTS_DEFAULT;
}

static bool limits_valid(const sl_rpc_limits_t *lim)
{
    if (lim->max_message_bytes == 0 || lim->max_message_bytes > SL_RPC_MESSAGE_BYTES_MAX)
        return false;
    if (lim->max_depth < 2 || lim->max_depth > SL_RPC_DEPTH_MAX)
        return false;
    if (lim->max_array == 0 || lim->max_objects == 0)
        return false;
    return true;
}

static void scan_reset(sl_rpc_decoder_t *d)
{
    d->scan_pos = 0;
    d->objects = 0;
    d->depth = 1;
    d->stack[0] = 1; /* the root owes one object */
}

int sl_rpc_decoder_create(const sl_rpc_limits_t *lim, sl_rpc_decoder_t **out)
{
    sl_assert(lim != NULL);
    sl_assert(out != NULL);
    if (!limits_valid(lim))
        return SL_EINVAL;
    sl_rpc_decoder_t *d = calloc(1, sizeof(*d) + sizeof(uint32_t) * (lim->max_depth + 1));
    if (d == NULL)
        return -ENOMEM;
    d->lim = *lim;
    scan_reset(d);
    *out = d;
    return 0;
}

void sl_rpc_decoder_destroy(sl_rpc_decoder_t *d)
{
    if (d == NULL)
        return;
    if (d->zone_live)
        msgpack_zone_destroy(&d->zone);
    sl_budget_sub(SL_BUDGET_RPC, d->cap);
    free(d->buf);
    free(d);
}

const char *sl_rpc_decoder_reason(const sl_rpc_decoder_t *d)
{
    return d->reason;
}

size_t sl_rpc_decoder_pending(const sl_rpc_decoder_t *d)
{
    return d->tail - d->head;
}

size_t sl_rpc_decoder_buffer_bytes(const sl_rpc_decoder_t *d)
{
    return d->cap;
}

static int fail(sl_rpc_decoder_t *d, int err, const char *reason)
{
    d->err = err;
    d->reason = reason;
    return err;
}

/* Makes room for k more bytes at tail: compacts first (moving the partial
 * message to the front), then grows geometrically, never past
 * max_message_bytes (the caller already capped k to that). */
static int reserve(sl_rpc_decoder_t *d, size_t k)
{
    if (d->tail + k <= d->cap)
        return 0;
    if (d->head > 0) {
        memmove(d->buf, d->buf + d->head, d->tail - d->head);
        d->tail -= d->head;
        d->head = 0;
        if (d->tail + k <= d->cap)
            return 0;
    }
    size_t need = d->tail + k;
    size_t cap = d->cap < SL_RPC_BUF_START_BYTES ? SL_RPC_BUF_START_BYTES : d->cap;
    while (cap < need)
        cap *= 2;
    if (cap > d->lim.max_message_bytes)
        cap = d->lim.max_message_bytes;
    sl_assert(cap >= need);
    uint8_t *nb = realloc(d->buf, cap);
    if (nb == NULL)
        return -ENOMEM;
    sl_budget_add(SL_BUDGET_RPC, cap - d->cap);
    d->buf = nb;
    d->cap = cap;
    return 0;
}

int sl_rpc_decoder_feed(sl_rpc_decoder_t *d, const uint8_t *p, size_t n)
{
    sl_assert(d != NULL);
    sl_assert(p != NULL || n == 0);
    if (d->err != 0)
        return d->err;
    size_t pending = d->tail - d->head;
    sl_assert(pending <= d->lim.max_message_bytes);
    size_t k = d->lim.max_message_bytes - pending;
    if (k > n)
        k = n;
    if (k == 0)
        return 0;
    int r = reserve(d, k);
    if (r < 0)
        return r;
    memcpy(d->buf + d->tail, p, k);
    d->tail += k;
    return (int)k;
}

static uint64_t be(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

/* Sets h to a header of hdr_len bytes whose length/count field is the
 * big-endian len_bytes after the type byte. Returns 0 if not all there. */
static int sized(hdr_t *h, enum hdr_kind kind, const uint8_t *p, size_t avail, unsigned len_bytes,
                 unsigned extra)
{
    h->kind = kind;
    h->hdr_len = 1 + len_bytes + extra;
    if (avail < h->hdr_len)
        return 0;
    uint64_t v = be(p + 1, len_bytes);
    if (kind == HDR_ARRAY || kind == HDR_MAP)
        h->count = v;
    else
        h->payload_len = v;
    return 1;
}

/* A header with no length field (nil, bool, ints, floats, fixext): hdr_len
 * bytes of type (and ext type), then payload_len fixed bytes (<= 16). */
static int fixed(hdr_t *h, unsigned hdr_len, uint64_t payload_len, size_t avail)
{
    h->kind = HDR_SCALAR;
    h->hdr_len = hdr_len;
    h->payload_len = payload_len;
    return avail >= hdr_len ? 1 : 0;
}

/* Parses the header at p (avail >= 1 bytes). Returns 1, 0 when the header
 * is not complete yet, or SL_EPROTO for the never-used byte 0xc1. */
static int parse_hdr(const uint8_t *p, size_t avail, hdr_t *h)
{
    uint8_t b = p[0];
    memset(h, 0, sizeof(*h));
    if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3)
        return fixed(h, 1, 0, avail);
    if (b <= 0x8f) {
        h->kind = HDR_MAP, h->hdr_len = 1, h->count = b & 0x0f;
        return 1;
    }
    if (b <= 0x9f) {
        h->kind = HDR_ARRAY, h->hdr_len = 1, h->count = b & 0x0f;
        return 1;
    }
    if (b <= 0xbf) {
        h->kind = HDR_RAW, h->hdr_len = 1, h->payload_len = b & 0x1f;
        return 1;
    }
    switch (b) {
    case 0xc4: case 0xd9: return sized(h, HDR_RAW, p, avail, 1, 0);
    case 0xc5: case 0xda: return sized(h, HDR_RAW, p, avail, 2, 0);
    case 0xc6: case 0xdb: return sized(h, HDR_RAW, p, avail, 4, 0);
    case 0xc7: return sized(h, HDR_RAW, p, avail, 1, 1); /* ext: + type byte */
    case 0xc8: return sized(h, HDR_RAW, p, avail, 2, 1);
    case 0xc9: return sized(h, HDR_RAW, p, avail, 4, 1);
    case 0xca: return fixed(h, 1, 4, avail);
    case 0xcb: return fixed(h, 1, 8, avail);
    case 0xcc: case 0xd0: return fixed(h, 1, 1, avail);
    case 0xcd: case 0xd1: return fixed(h, 1, 2, avail);
    case 0xce: case 0xd2: return fixed(h, 1, 4, avail);
    case 0xcf: case 0xd3: return fixed(h, 1, 8, avail);
    case 0xd4: return fixed(h, 2, 1, avail); /* fixext: type byte + data */
    case 0xd5: return fixed(h, 2, 2, avail);
    case 0xd6: return fixed(h, 2, 4, avail);
    case 0xd7: return fixed(h, 2, 8, avail);
    case 0xd8: return fixed(h, 2, 16, avail);
    case 0xdc: return sized(h, HDR_ARRAY, p, avail, 2, 0);
    case 0xdd: return sized(h, HDR_ARRAY, p, avail, 4, 0);
    case 0xde: return sized(h, HDR_MAP, p, avail, 2, 0);
    case 0xdf: return sized(h, HDR_MAP, p, avail, 4, 0);
    default: return SL_EPROTO; /* 0xc1 */
    }
}

/* Checks one complete header against the limits before anything is
 * allocated or waited for on its behalf. Returns 0 or the sticky error. */
static int check_hdr(sl_rpc_decoder_t *d, const hdr_t *h)
{
    const sl_rpc_limits_t *l = &d->lim;
    if (h->kind == HDR_RAW && h->payload_len > l->max_str_bytes)
        return fail(d, SL_ETOOBIG, "str_bytes");
    if (h->kind == HDR_ARRAY && h->count > l->max_array)
        return fail(d, SL_ETOOBIG, "array");
    if (h->kind == HDR_MAP && h->count > l->max_map)
        return fail(d, SL_ETOOBIG, "map");
    bool container = h->kind == HDR_ARRAY || h->kind == HDR_MAP;
    /* stack holds the root slot plus one entry per open container, so this
     * container sits at nesting level depth. */
    if (container && d->depth > l->max_depth)
        return fail(d, SL_ETOOBIG, "depth");
    if (++d->objects > l->max_objects)
        return fail(d, SL_ETOOBIG, "objects");
    /* Every element takes at least one byte, so a count larger than the
     * bytes left can never fit either. */
    uint64_t elems = h->kind == HDR_MAP ? 2 * h->count : h->count;
    uint64_t end = (uint64_t)d->scan_pos + h->hdr_len + h->payload_len + elems;
    if (end > l->max_message_bytes)
        return fail(d, SL_ETOOBIG, "message_bytes");
    return 0;
}

/* Accounts one checked object: it pays one element of the innermost open
 * container, opens its own elements, and closes every container it
 * completed. */
static void account(sl_rpc_decoder_t *d, const hdr_t *h)
{
    sl_assert(d->depth > 0);
    sl_assert(d->stack[d->depth - 1] > 0);
    d->stack[d->depth - 1]--;
    uint64_t elems = h->kind == HDR_MAP ? 2 * h->count : h->count;
    if (elems > 0) {
        sl_assert(d->depth <= d->lim.max_depth);
        d->stack[d->depth++] = (uint32_t)elems;
    }
    while (d->depth > 0 && d->stack[d->depth - 1] == 0)
        d->depth--;
    d->scan_pos += h->hdr_len + h->payload_len;
}

/* Advances the scan over buffered bytes. Returns 1 when one whole message
 * of scan_pos bytes is buffered, 0 when more bytes are needed, or the
 * sticky error. */
static int scan(sl_rpc_decoder_t *d)
{
    const uint8_t *base = d->buf + d->head;
    size_t pending = d->tail - d->head;
    for (;;) {
        if (d->scan_pos > pending)
            return 0; /* inside a payload that has not fully arrived */
        if (d->depth == 0)
            return 1;
        if (d->scan_pos >= d->lim.max_message_bytes)
            return fail(d, SL_ETOOBIG, "message_bytes");
        if (d->scan_pos == pending)
            return 0;
        hdr_t h;
        int r = parse_hdr(base + d->scan_pos, pending - d->scan_pos, &h);
        /* An incomplete header that cannot end inside the bound would wait
         * forever: the buffer never holds more than max_message_bytes. */
        if (r == 0 && d->scan_pos + h.hdr_len > d->lim.max_message_bytes)
            return fail(d, SL_ETOOBIG, "message_bytes");
        if (r == 0)
            return 0;
        if (r < 0)
            return fail(d, SL_EPROTO, "invalid_byte");
        r = check_hdr(d, &h);
        if (r < 0)
            return r;
        account(d, &h);
    }
}

/* Frees what the previous message borrowed. msgpack_zone_clear frees every
 * chunk but the first (SL_RPC_ZONE_CHUNK_BYTES), so a zone that grew for a
 * large message shrinks back here. */
static void release_message(sl_rpc_decoder_t *d)
{
    if (d->zone_live)
        msgpack_zone_clear(&d->zone);
}

static bool is_raw(const msgpack_object *o)
{
    return o->type == MSGPACK_OBJECT_STR || o->type == MSGPACK_OBJECT_BIN;
}

static void set_method(sl_rpc_msg_t *out, const msgpack_object *m)
{
    /* str and bin share the layout {size, ptr} in msgpack_object_union. */
    out->method_is_bin = m->type == MSGPACK_OBJECT_BIN;
    out->method = out->method_is_bin ? m->via.bin.ptr : m->via.str.ptr;
    out->method_len = out->method_is_bin ? m->via.bin.size : m->via.str.size;
}

/* Maps a decoded root object onto *out. Returns 1 or SL_EINVAL (with the
 * type and msgid filled in when they could be read). */
static int shape(const msgpack_object *root, sl_rpc_msg_t *out)
{
    memset(out, 0, sizeof(*out));
    out->params.type = out->error.type = out->result.type = MSGPACK_OBJECT_NIL;
    if (root->type != MSGPACK_OBJECT_ARRAY || root->via.array.size == 0)
        return SL_EINVAL;
    const msgpack_object *e = root->via.array.ptr;
    uint32_t n = root->via.array.size;
    if (e[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER || e[0].via.u64 > SL_RPC_NOTIFICATION)
        return SL_EINVAL;
    out->type = (sl_rpc_type_t)e[0].via.u64;
    if (out->type == SL_RPC_NOTIFICATION) {
        if (n != 3 || !is_raw(&e[1]) || e[2].type != MSGPACK_OBJECT_ARRAY)
            return SL_EINVAL;
        set_method(out, &e[1]);
        out->params = e[2];
        return 1;
    }
    if (n >= 2 && e[1].type == MSGPACK_OBJECT_POSITIVE_INTEGER && e[1].via.u64 <= UINT32_MAX) {
        out->has_msgid = true;
        out->msgid = (uint32_t)e[1].via.u64;
    }
    if (n != 4 || !out->has_msgid)
        return SL_EINVAL;
    if (out->type == SL_RPC_RESPONSE) {
        out->error = e[2];
        out->result = e[3];
        return 1;
    }
    if (!is_raw(&e[2]) || e[3].type != MSGPACK_OBJECT_ARRAY)
        return SL_EINVAL;
    set_method(out, &e[2]);
    out->params = e[3];
    return 1;
}

/* Unpacks the scanned message (scan_pos bytes at head) and consumes it. */
static int take_message(sl_rpc_decoder_t *d, sl_rpc_msg_t *out)
{
    size_t len = d->scan_pos;
    if (!d->zone_live) {
        if (!msgpack_zone_init(&d->zone, SL_RPC_ZONE_CHUNK_BYTES))
            return fail(d, -ENOMEM, "nomem");
        d->zone_live = true;
    }
    msgpack_object root;
    size_t off = 0;
    msgpack_unpack_return r =
        msgpack_unpack((const char *)d->buf + d->head, len, &off, &d->zone, &root);
    if (r == MSGPACK_UNPACK_NOMEM_ERROR)
        return fail(d, -ENOMEM, "nomem");
    /* The scan proved the framing, so anything but one exact object means
     * the two parsers disagree: treat the bytes as broken, never trust them. */
    if (r != MSGPACK_UNPACK_SUCCESS || off != len)
        return fail(d, SL_EPROTO, "invalid_byte");
    d->head += len;
    scan_reset(d);
    return shape(&root, out);
}

int sl_rpc_decoder_next(sl_rpc_decoder_t *d, sl_rpc_msg_t *out)
{
    sl_assert(d != NULL);
    sl_assert(out != NULL);
    if (d->err != 0)
        return d->err;
    release_message(d);
    if (d->head == d->tail) {
        d->head = d->tail = 0;
        if (d->cap > SL_RPC_BUF_IDLE_BYTES) {
            sl_budget_sub(SL_BUDGET_RPC, d->cap);
            free(d->buf);
            d->buf = NULL;
            d->cap = 0;
        }
        return 0;
    }
    int r = scan(d);
    if (r <= 0)
        return r;
    return take_message(d, out);
}

/* ---- encoders ---- */

typedef struct wbuf {
    uint8_t *p;
    size_t len;
    size_t cap;
} wbuf_t;

static int wbuf_write(void *data, const char *src, size_t n)
{
    wbuf_t *w = data;
    if (n > w->cap - w->len)
        return -1;
    memcpy(w->p + w->len, src, n);
    w->len += n;
    return 0;
}

static void packer(msgpack_packer *pk, wbuf_t *w, uint8_t *buf, size_t cap)
{
    sl_assert(buf != NULL || cap == 0);
    w->p = buf;
    w->len = 0;
    w->cap = cap;
    msgpack_packer_init(pk, w, wbuf_write);
}

static int done(const wbuf_t *w, int rc)
{
    if (rc != 0)
        return SL_EFULL;
    sl_assert(w->len <= INT32_MAX);
    return (int)w->len;
}

/* [1, msgid, nil, */
static int pack_head(msgpack_packer *pk, uint32_t msgid)
{
    int rc = msgpack_pack_array(pk, 4);
    rc |= msgpack_pack_uint8(pk, SL_RPC_RESPONSE);
    rc |= msgpack_pack_uint32(pk, msgid);
    rc |= msgpack_pack_nil(pk);
    return rc;
}

int sl_rpc_response_head(uint8_t *buf, size_t cap, uint32_t msgid)
{
    msgpack_packer pk;
    wbuf_t w;
    packer(&pk, &w, buf, cap);
    return done(&w, pack_head(&pk, msgid));
}

int sl_rpc_response_nil(uint8_t *buf, size_t cap, uint32_t msgid)
{
    msgpack_packer pk;
    wbuf_t w;
    packer(&pk, &w, buf, cap);
    int rc = pack_head(&pk, msgid);
    rc |= msgpack_pack_nil(&pk);
    return done(&w, rc);
}

int sl_rpc_response_bool(uint8_t *buf, size_t cap, uint32_t msgid, bool v)
{
    msgpack_packer pk;
    wbuf_t w;
    packer(&pk, &w, buf, cap);
    int rc = pack_head(&pk, msgid);
    rc |= v ? msgpack_pack_true(&pk) : msgpack_pack_false(&pk);
    return done(&w, rc);
}

int sl_rpc_response_uint(uint8_t *buf, size_t cap, uint32_t msgid, uint64_t v)
{
    msgpack_packer pk;
    wbuf_t w;
    packer(&pk, &w, buf, cap);
    int rc = pack_head(&pk, msgid);
    rc |= msgpack_pack_uint64(&pk, v);
    return done(&w, rc);
}

int sl_rpc_response_uint_pair(uint8_t *buf, size_t cap, uint32_t msgid, uint64_t a, uint64_t b)
{
    msgpack_packer pk;
    wbuf_t w;
    packer(&pk, &w, buf, cap);
    int rc = pack_head(&pk, msgid);
    rc |= msgpack_pack_array(&pk, 2);
    rc |= msgpack_pack_uint64(&pk, a);
    rc |= msgpack_pack_uint64(&pk, b);
    return done(&w, rc);
}

int sl_rpc_error_encode(uint8_t *buf, size_t cap, uint32_t msgid, const char *code,
                        const char *message)
{
    sl_assert(code != NULL);
    sl_assert(message != NULL);
    msgpack_packer pk;
    wbuf_t w;
    packer(&pk, &w, buf, cap);
    int rc = msgpack_pack_array(&pk, 4);
    rc |= msgpack_pack_uint8(&pk, SL_RPC_RESPONSE);
    rc |= msgpack_pack_uint32(&pk, msgid);
    rc |= msgpack_pack_array(&pk, 2);
    rc |= msgpack_pack_str_with_body(&pk, code, strlen(code));
    rc |= msgpack_pack_str_with_body(&pk, message, strlen(message));
    rc |= msgpack_pack_nil(&pk);
    return done(&w, rc);
}

static size_t uint_size(uint64_t v)
{
    if (v < 128)
        return 1;
    if (v <= UINT8_MAX)
        return 2;
    if (v <= UINT16_MAX)
        return 3;
    if (v <= UINT32_MAX)
        return 5;
    return 9;
}

static size_t str_size(size_t n)
{
    if (n < 32)
        return 1 + n;
    if (n <= UINT8_MAX)
        return 2 + n;
    if (n <= UINT16_MAX)
        return 3 + n;
    return 5 + n;
}

static size_t bin_size(size_t n)
{
    if (n <= UINT8_MAX)
        return 2 + n;
    if (n <= UINT16_MAX)
        return 3 + n;
    return 5 + n;
}

size_t sl_rpc_event_body_size(size_t session_len, uint64_t seq, size_t type_len, size_t data_len,
                              bool data_is_str)
{
    return str_size(session_len) + uint_size(seq) + str_size(type_len) +
           (data_is_str ? str_size(data_len) : bin_size(data_len));
}

int sl_rpc_event_body_encode(uint8_t *buf, size_t cap, const char *session, size_t session_len,
                             uint64_t seq, const char *type, size_t type_len, const void *data,
                             size_t data_len, bool data_is_str)
{
    sl_assert(session != NULL && type != NULL);
    sl_assert(data != NULL || data_len == 0);
    if (data_len > UINT32_MAX)
        return SL_EFULL;
    msgpack_packer pk;
    wbuf_t w;
    packer(&pk, &w, buf, cap);
    int rc = msgpack_pack_str_with_body(&pk, session, session_len);
    rc |= msgpack_pack_uint64(&pk, seq);
    rc |= msgpack_pack_str_with_body(&pk, type, type_len);
    if (data_is_str)
        rc |= msgpack_pack_str_with_body(&pk, data, data_len);
    else
        rc |= msgpack_pack_bin_with_body(&pk, data, data_len);
    return done(&w, rc);
}

/* [2, "<name>", [sub, — the per-subscriber head of a notification whose
 * params array has params_count elements. */
static int pack_notify_head(msgpack_packer *pk, const char *name, uint32_t params_count,
                            uint64_t subscription_id)
{
    int rc = msgpack_pack_array(pk, 3);
    rc |= msgpack_pack_uint8(pk, SL_RPC_NOTIFICATION);
    rc |= msgpack_pack_str_with_body(pk, name, strlen(name));
    rc |= msgpack_pack_array(pk, params_count);
    rc |= msgpack_pack_uint64(pk, subscription_id);
    return rc;
}

int sl_rpc_event_prefix_encode(uint8_t buf[SL_RPC_EVENT_PREFIX_MAX], uint64_t subscription_id)
{
    msgpack_packer pk;
    wbuf_t w;
    packer(&pk, &w, buf, SL_RPC_EVENT_PREFIX_MAX);
    int r = done(&w, pack_notify_head(&pk, "event", 5, subscription_id));
    sl_assert(r > 0); /* SL_RPC_EVENT_PREFIX_MAX covers the largest id */
    return r;
}

int sl_rpc_gap_encode(uint8_t buf[SL_RPC_GAP_MAX], uint64_t subscription_id, uint64_t from,
                      uint64_t to)
{
    msgpack_packer pk;
    wbuf_t w;
    packer(&pk, &w, buf, SL_RPC_GAP_MAX);
    int rc = pack_notify_head(&pk, "gap", 3, subscription_id);
    rc |= msgpack_pack_uint64(&pk, from);
    rc |= msgpack_pack_uint64(&pk, to);
    int r = done(&w, rc);
    sl_assert(r > 0);
    return r;
}

/* ---- output queue forms ---- */

int sl_rpc_outq_put(sl_outq_t *q, const void *bytes, size_t len)
{
    sl_assert(q != NULL);
    /* sl_outq_append_copy appends all of it or nothing. */
    return sl_outq_append_copy(q, bytes, len);
}

/* Messages up to this size are assembled on the stack and copied once. */
#define RPC_STACK_MSG_BYTES 512

int sl_rpc_outq_response_packed(sl_outq_t *q, uint32_t msgid, const void *result,
                                size_t result_len)
{
    sl_assert(q != NULL);
    sl_assert(result != NULL && result_len > 0);
    uint8_t head[SL_RPC_RESPONSE_HEAD_MAX];
    int hl = sl_rpc_response_head(head, sizeof(head), msgid);
    sl_assert(hl > 0);
    size_t total = (size_t)hl + result_len;
    if (total <= RPC_STACK_MSG_BYTES) {
        uint8_t tmp[RPC_STACK_MSG_BYTES];
        memcpy(tmp, head, (size_t)hl);
        memcpy(tmp + hl, result, result_len);
        return sl_outq_append_copy(q, tmp, total);
    }
    /* One chunk for header and result, so the append is all or nothing. */
    if (total > UINT32_MAX || total > sl_outq_room(q))
        return SL_EFULL;
    sl_chunk_t *c = sl_chunk_create_as((uint32_t)total, SL_BUDGET_OUTPUT);
    if (c == NULL)
        return -ENOMEM;
    memcpy(c->data, head, (size_t)hl);
    memcpy(c->data + hl, result, result_len);
    c->len = (uint32_t)total;
    int r = sl_outq_append_ref(q, c, 0, c->len);
    sl_chunk_release(c);
    return r;
}

int sl_rpc_outq_event(sl_outq_t *q, uint64_t subscription_id, sl_chunk_t *body, uint32_t off,
                      uint32_t len)
{
    sl_assert(q != NULL);
    sl_assert(body != NULL);
    sl_assert(len > 0);
    uint8_t pre[SL_RPC_EVENT_PREFIX_MAX];
    int pl = sl_rpc_event_prefix_encode(pre, subscription_id);
    /* Check both parts fit before appending either: the copy may take a
     * slot, the reference takes at most one more. */
    if (sl_outq_segs_free(q) < 2 || sl_outq_room(q) < (uint64_t)pl + len)
        return SL_EFULL;
    int r = sl_outq_append_copy(q, pre, (size_t)pl);
    if (r < 0)
        return r; /* -ENOMEM: nothing appended */
    r = sl_outq_append_ref(q, body, off, len);
    sl_assert(r == 0); /* room and slots were checked above */
    return 0;
}

bool sl_rpc_obj_bytes(const msgpack_object *o, const char **p, size_t *n)
{
    if (o->type == MSGPACK_OBJECT_STR) {
        *p = o->via.str.ptr, *n = o->via.str.size;
        return true;
    }
    if (o->type == MSGPACK_OBJECT_BIN) {
        *p = o->via.bin.ptr, *n = o->via.bin.size;
        return true;
    }
    return false;
}

bool sl_rpc_obj_is(const msgpack_object *o, const char *s)
{
    const char *p;
    size_t n;
    return sl_rpc_obj_bytes(o, &p, &n) && n == strlen(s) && memcmp(p, s, n) == 0;
}
