/*
 * msgpack reader, measurer and writer. See load_rpc_wire.h. Format:
 * https://github.com/msgpack/msgpack/blob/master/spec.md
 */
#include "tools/load/load_rpc_wire.h"

#include <string.h>

#include "runtime/base.h"

typedef enum kind {
    K_NIL,
    K_BOOL,
    K_UINT,
    K_INT,
    K_FLOAT,
    K_STR,
    K_BIN,
    K_ARRAY,
    K_MAP,
    K_EXT,
} kind_t;

/* One object's header: what it is, how many bytes the header takes, the
 * payload bytes after it (str, bin, ext, and the value bytes of numbers
 * are counted in the header), and the objects it contains. */
typedef struct head {
    kind_t kind;
    uint32_t head_len;
    uint64_t payload;
    uint64_t children;
    uint64_t u; /* K_UINT, K_BOOL; length for str/bin/ext; count for containers */
    int64_t i;  /* K_INT */
    double d;   /* K_FLOAT */
} head_t;

static uint64_t be(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned k = 0; k < n; k++)
        v = v << 8 | p[k];
    return v;
}

/* Sizes of the fixed-layout types 0xc0..0xdf: header bytes (including any
 * length field and the value), length-field bytes, and kind. */
typedef struct layout {
    uint8_t head;
    uint8_t lenbytes;
    kind_t kind;
} layout_t;

static const layout_t layouts[32] = {
    [0x00] = {1, 0, K_NIL},   [0x02] = {1, 0, K_BOOL},  [0x03] = {1, 0, K_BOOL},
    [0x04] = {2, 1, K_BIN},   [0x05] = {3, 2, K_BIN},   [0x06] = {5, 4, K_BIN},
    [0x07] = {3, 1, K_EXT},   [0x08] = {4, 2, K_EXT},   [0x09] = {6, 4, K_EXT},
    [0x0a] = {5, 0, K_FLOAT}, [0x0b] = {9, 0, K_FLOAT}, [0x0c] = {2, 0, K_UINT},
    [0x0d] = {3, 0, K_UINT},  [0x0e] = {5, 0, K_UINT},  [0x0f] = {9, 0, K_UINT},
    [0x10] = {2, 0, K_INT},   [0x11] = {3, 0, K_INT},   [0x12] = {5, 0, K_INT},
    [0x13] = {9, 0, K_INT},   [0x14] = {3, 0, K_EXT},   [0x15] = {4, 0, K_EXT},
    [0x16] = {6, 0, K_EXT},   [0x17] = {10, 0, K_EXT},  [0x18] = {18, 0, K_EXT},
    [0x19] = {2, 1, K_STR},   [0x1a] = {3, 2, K_STR},   [0x1b] = {5, 4, K_STR},
    [0x1c] = {3, 2, K_ARRAY}, [0x1d] = {5, 4, K_ARRAY}, [0x1e] = {3, 2, K_MAP},
    [0x1f] = {5, 4, K_MAP},
};

static void fixed_value(const uint8_t *p, head_t *h)
{
    uint8_t b = p[0];
    unsigned n = h->head_len - 1;
    if (h->kind == K_BOOL) {
        h->u = b == 0xc3;
    } else if (h->kind == K_UINT) {
        h->u = be(p + 1, n);
    } else if (h->kind == K_INT) {
        uint64_t raw = be(p + 1, n);
        unsigned shift = 64 - 8 * n; /* sign-extend from n bytes */
        h->i = (int64_t)(raw << shift) >> shift;
    } else if (h->kind == K_FLOAT && b == 0xca) {
        uint32_t bits = (uint32_t)be(p + 1, 4);
        float f;
        memcpy(&f, &bits, 4);
        h->d = f;
    } else if (h->kind == K_FLOAT) {
        uint64_t bits = be(p + 1, 8);
        memcpy(&h->d, &bits, 8);
    }
}

/* Reads the header at p[0..avail). Returns 0, SL_EAGAIN (header cut
 * short) or SL_EPROTO (0xc1). */
static int read_head(const uint8_t *p, size_t avail, head_t *h)
{
    if (avail == 0)
        return SL_EAGAIN;
    uint8_t b = p[0];
    memset(h, 0, sizeof(*h));
    h->head_len = 1;
    if (b <= 0x7f || b >= 0xe0) {
        h->kind = b <= 0x7f ? K_UINT : K_INT;
        h->u = b;
        h->i = (int8_t)b;
        return 0;
    }
    if (b <= 0x9f) {
        h->kind = b <= 0x8f ? K_MAP : K_ARRAY;
        h->u = b & 0x0f;
        h->children = h->kind == K_MAP ? 2 * h->u : h->u;
        return 0;
    }
    if (b <= 0xbf) {
        h->kind = K_STR;
        h->u = h->payload = b & 0x1f;
        return 0;
    }
    const layout_t *l = &layouts[b - 0xc0];
    if (l->head == 0)
        return SL_EPROTO; /* 0xc1: never used */
    h->kind = l->kind;
    h->head_len = l->head;
    if (avail < h->head_len)
        return SL_EAGAIN;
    if (l->lenbytes) {
        h->u = be(p + 1, l->lenbytes);
        if (h->kind == K_ARRAY || h->kind == K_MAP)
            h->children = h->kind == K_MAP ? 2 * h->u : h->u;
        else
            h->payload = h->u;
    } else if (h->kind == K_EXT) {
        h->payload = h->head_len - 2; /* fixext: type byte, then 1..16 bytes */
        h->head_len = 2;
    } else {
        fixed_value(p, h);
    }
    return 0;
}

int sl_load_mp_measure(const char *s, size_t n, size_t max_bytes, size_t *len)
{
    const uint8_t *p = (const uint8_t *)s;
    size_t off = 0;
    uint64_t owed = 1;
    /* Bounded by max_bytes: every object takes at least one byte, and
     * more owed objects than bytes left is refused. */
    while (owed > 0) {
        head_t h;
        int rc = read_head(p + off, n - off, &h);
        if (rc < 0)
            return rc;
        uint64_t size = h.head_len + h.payload;
        owed = owed - 1 + h.children;
        if (size > max_bytes - off || owed > max_bytes - off - size)
            return SL_ETOOBIG;
        if (size > n - off)
            return SL_EAGAIN;
        off += size;
    }
    *len = off;
    return 0;
}

/* Reads one header that must be complete, payload included. */
static int take(sl_load_mp_t *r, head_t *h)
{
    size_t avail = (size_t)(r->end - r->p);
    int rc = read_head(r->p, avail, h);
    if (rc < 0 || h->payload > avail - h->head_len)
        return SL_EPROTO;
    return 0;
}

int sl_load_mp_array(sl_load_mp_t *r, uint32_t *count)
{
    head_t h;
    if (take(r, &h) < 0 || h.kind != K_ARRAY)
        return SL_EPROTO;
    r->p += h.head_len;
    *count = (uint32_t)h.u;
    return 0;
}

int sl_load_mp_map(sl_load_mp_t *r, uint32_t *count)
{
    head_t h;
    if (take(r, &h) < 0 || h.kind != K_MAP)
        return SL_EPROTO;
    r->p += h.head_len;
    *count = (uint32_t)h.u;
    return 0;
}

int sl_load_mp_uint(sl_load_mp_t *r, uint64_t *v)
{
    head_t h;
    if (take(r, &h) < 0)
        return SL_EPROTO;
    if (h.kind == K_UINT)
        *v = h.u;
    else if (h.kind == K_INT && h.i >= 0)
        *v = (uint64_t)h.i;
    else
        return SL_EPROTO;
    r->p += h.head_len;
    return 0;
}

int sl_load_mp_number(sl_load_mp_t *r, double *v)
{
    head_t h;
    if (take(r, &h) < 0)
        return SL_EPROTO;
    if (h.kind == K_UINT)
        *v = (double)h.u;
    else if (h.kind == K_INT)
        *v = (double)h.i;
    else if (h.kind == K_FLOAT)
        *v = h.d;
    else
        return SL_EPROTO;
    r->p += h.head_len;
    return 0;
}

int sl_load_mp_bytes(sl_load_mp_t *r, const char **s, uint32_t *len)
{
    head_t h;
    if (take(r, &h) < 0 || (h.kind != K_STR && h.kind != K_BIN))
        return SL_EPROTO;
    *s = (const char *)r->p + h.head_len;
    *len = (uint32_t)h.payload;
    r->p += h.head_len + h.payload;
    return 0;
}

bool sl_load_mp_nil(sl_load_mp_t *r)
{
    if (r->p < r->end && *r->p == 0xc0) {
        r->p++;
        return true;
    }
    return false;
}

bool sl_load_mp_is_container(const sl_load_mp_t *r)
{
    if (r->p >= r->end)
        return false;
    uint8_t b = *r->p;
    return (b >= 0x80 && b <= 0x9f) || (b >= 0xdc && b <= 0xdf);
}

int sl_load_mp_skip(sl_load_mp_t *r)
{
    size_t len;
    size_t avail = (size_t)(r->end - r->p);
    if (sl_load_mp_measure((const char *)r->p, avail, avail, &len) < 0)
        return SL_EPROTO;
    r->p += len;
    return 0;
}

/* ---- writer ---- */

void sl_load_mpw_init(sl_load_mpw_t *w, char *buf, size_t cap)
{
    w->p = buf;
    w->len = 0;
    w->cap = cap;
    w->overflow = false;
}

char *sl_load_mpw_reserve(sl_load_mpw_t *w, size_t len)
{
    if (w->overflow || len > w->cap - w->len) {
        w->overflow = true;
        return NULL;
    }
    char *at = w->p + w->len;
    w->len += len;
    return at;
}

void sl_load_mpw_raw(sl_load_mpw_t *w, const void *data, size_t len)
{
    char *at = sl_load_mpw_reserve(w, len);
    if (at && len)
        memcpy(at, data, len);
}

/* A type byte followed by an n-byte big-endian value. */
static void put_be(sl_load_mpw_t *w, uint8_t type, uint64_t v, unsigned n)
{
    uint8_t b[9];
    b[0] = type;
    for (unsigned k = 0; k < n; k++)
        b[1 + k] = (uint8_t)(v >> (8 * (n - 1 - k)));
    sl_load_mpw_raw(w, b, 1 + n);
}

/* A length-carrying header: fix form when len fits fix_max, else the 8-,
 * 16- or 32-bit form (types t8 (0 = none), t16, t32). */
static void put_len(sl_load_mpw_t *w, uint8_t fix, uint32_t fix_max, uint8_t t8, uint8_t t16,
                    uint8_t t32, size_t len)
{
    if (fix && len <= fix_max)
        put_be(w, (uint8_t)(fix | len), 0, 0);
    else if (t8 && len <= 0xff)
        put_be(w, t8, len, 1);
    else if (len <= 0xffff)
        put_be(w, t16, len, 2);
    else if (len <= 0xffffffffu)
        put_be(w, t32, len, 4);
    else
        w->overflow = true;
}

void sl_load_mpw_array(sl_load_mpw_t *w, uint32_t count)
{
    put_len(w, 0x90, 15, 0, 0xdc, 0xdd, count);
}

void sl_load_mpw_map(sl_load_mpw_t *w, uint32_t count)
{
    put_len(w, 0x80, 15, 0, 0xde, 0xdf, count);
}

void sl_load_mpw_str(sl_load_mpw_t *w, const char *s, size_t len)
{
    put_len(w, 0xa0, 31, 0xd9, 0xda, 0xdb, len);
    sl_load_mpw_raw(w, s, len);
}

void sl_load_mpw_bin_head(sl_load_mpw_t *w, size_t len)
{
    put_len(w, 0, 0, 0xc4, 0xc5, 0xc6, len);
}

void sl_load_mpw_uint(sl_load_mpw_t *w, uint64_t v)
{
    if (v <= 0x7f)
        put_be(w, (uint8_t)v, 0, 0);
    else if (v <= 0xff)
        put_be(w, 0xcc, v, 1);
    else if (v <= 0xffff)
        put_be(w, 0xcd, v, 2);
    else if (v <= 0xffffffffu)
        put_be(w, 0xce, v, 4);
    else
        put_be(w, 0xcf, v, 8);
}

void sl_load_mpw_bool(sl_load_mpw_t *w, bool v)
{
    put_be(w, v ? 0xc3 : 0xc2, 0, 0);
}
