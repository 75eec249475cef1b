/*
 * The request-target functions of net/http.h: sl_http_pct_decode (paths and
 * query values), sl_http_query_param and sl_http_sniff. Byte 0 picks the
 * decode flags and the output capacity; the rest is the raw text.
 *
 * Checks besides the sanitizers, policy-neutral so they hold whatever
 * bytes the decoder chooses to refuse: a success fits the capacity, is
 * NUL-terminated, holds no byte that could split a header or a path, and
 * equals a plain reference percent-decoding; input with a malformed escape
 * is refused; a found query value lies inside the query and follows
 * "name=" at a parameter boundary.
 */
#include <string.h>

#include "net/http.h"
#include "runtime/base.h"

#include "tests/fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int hexval(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Reference decoding: returns the length, or -1 for a malformed escape. */
static long ref_decode(const uint8_t *in, size_t n, uint8_t *out, bool plus)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (in[i] == '%') {
            if (i + 2 >= n)
                return -1;
            int hi = hexval(in[i + 1]), lo = hexval(in[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            out[o++] = (uint8_t)(hi << 4 | lo);
            i += 2;
        } else {
            out[o++] = plus && in[i] == '+' ? ' ' : in[i];
        }
    }
    return (long)o;
}

static void check_decode(const uint8_t *in, size_t n, unsigned flags, size_t cap)
{
    char *out = malloc(cap);
    uint8_t *ref = malloc(n + 1);
    FZ_CHECK(out != NULL && ref != NULL);
    int rc = sl_http_pct_decode((const char *)in, n, out, cap, flags);
    long rn = ref_decode(in, n, ref, (flags & SL_HTTP_PCT_PLUS_SPACE) != 0);
    if (rc >= 0) {
        FZ_CHECK((size_t)rc < cap);
        FZ_CHECK(out[rc] == '\0');
        FZ_CHECK(rn == rc);
        FZ_CHECK(memcmp(out, ref, (size_t)rc) == 0);
        for (int i = 0; i < rc; i++) {
            uint8_t c = (uint8_t)out[i];
            FZ_CHECK(c >= 0x20 && c != 0x7f);
        }
    } else {
        FZ_CHECK(rc == SL_EINVAL || rc == SL_ETOOBIG);
        /* Too big only when the decoding cannot fit (or never completes). */
        if (rc == SL_ETOOBIG)
            FZ_CHECK(rn < 0 || (size_t)rn + 1 > cap);
        /* With room for the whole input only bad bytes fail. */
        if (cap > n)
            FZ_CHECK(rc == SL_EINVAL);
    }
    free(ref);
    free(out);
}

static void check_query(const uint8_t *in, size_t n)
{
    /* The name is the text up to the first ';' (or "type"), the query the rest. */
    const uint8_t *semi = memchr(in, ';', n < 16 ? n : 16);
    char name[17] = "type";
    sl_http_str_t q = {(const char *)in, n};
    if (semi != NULL) {
        size_t nl = (size_t)(semi - in);
        memcpy(name, in, nl);
        name[nl] = '\0';
        q.ptr = (const char *)semi + 1;
        q.len = n - nl - 1;
    }
    if (memchr(name, '\0', strlen(name) + 1) != name + strlen(name))
        return;
    sl_http_str_t v;
    if (!sl_http_query_param(q, name, &v))
        return;
    FZ_CHECK(v.ptr != NULL);
    FZ_CHECK(v.ptr >= q.ptr && v.ptr + v.len <= q.ptr + q.len);
    fz_touch(v.ptr, v.len);
    size_t nl = strlen(name);
    /* A value starts right after "name=", or is empty for a bare "name". */
    if (v.len > 0 || (v.ptr > q.ptr && v.ptr[-1] == '=')) {
        FZ_CHECK((size_t)(v.ptr - q.ptr) >= nl + 1);
        FZ_CHECK(v.ptr[-1] == '=');
        FZ_CHECK(memcmp(v.ptr - 1 - nl, name, nl) == 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned flags = data[0] & 1 ? SL_HTTP_PCT_PLUS_SPACE : 0;
    size_t cap = data[0] & 2 ? 1 + data[0] / 4 : size + 1;
    data++, size--;
    check_decode(data, size, flags, cap);
    check_query(data, size);
    (void)sl_http_sniff(data, size);
    return 0;
}
