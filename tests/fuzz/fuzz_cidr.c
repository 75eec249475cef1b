/*
 * net/cidr.h: --per-ip-exempt text and the match of a peer address. The
 * first 16 bytes (zero-padded) are the peer, in the accept path's IPv6
 * form; the rest is the flag's text (cut at the first NUL).
 *
 * Checks besides the sanitizers: a success holds at most SL_CIDR_LIST_MAX
 * ranges, each with a prefix of at most 128 bits and no bit set past it,
 * each range's own address inside it, and sl_cidr_match equal to a
 * bit-by-bit reference; a refusal says why.
 */
#include <string.h>

#include "net/cidr.h"

#include "tests/fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool bit(const uint8_t *a, unsigned i)
{
    return (a[i / 8] >> (7 - i % 8)) & 1;
}

static bool ref_in(const sl_cidr_t *c, const uint8_t *addr)
{
    for (unsigned i = 0; i < c->bits; i++)
        if (bit(c->addr, i) != bit(addr, i))
            return false;
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t peer[16] = {0};
    size_t head = size < 16 ? size : 16;
    memcpy(peer, data, head);
    data += head, size -= head;
    char *text = malloc(size + 1);
    FZ_CHECK(text != NULL);
    memcpy(text, data, size);
    text[size] = '\0';
    sl_cidr_list_t l;
    char err[256];
    err[0] = '\0';
    if (sl_cidr_parse(&l, text, err, sizeof err) != 0) {
        FZ_CHECK(err[0] != '\0' && memchr(err, '\0', sizeof err) != NULL);
        free(text);
        return 0;
    }
    FZ_CHECK(l.n <= SL_CIDR_LIST_MAX);
    bool want = false;
    for (uint32_t k = 0; k < l.n; k++) {
        const sl_cidr_t *c = &l.items[k];
        FZ_CHECK(c->bits <= 128);
        for (unsigned i = c->bits; i < 128; i++)
            FZ_CHECK(!bit(c->addr, i));
        sl_cidr_list_t one = {.n = 1, .items = {*c}};
        FZ_CHECK(sl_cidr_match(&one, c->addr));
        want = want || ref_in(c, peer);
    }
    FZ_CHECK(sl_cidr_match(&l, peer) == want);
    free(text);
    return 0;
}
