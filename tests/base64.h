/*
 * Base64 for unit tests and fuzz harnesses, which build what the server
 * decodes or must send: token segments (base64url, as JWT writes them)
 * and the expected form of binary SSE data (standard, padded). Header
 * only; nothing in the server links it.
 */
#ifndef SL_TESTS_BASE64_H
#define SL_TESTS_BASE64_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Encodes n bytes of in (borrowed) into out, which has room for
 * 4 * ((n + 2) / 3) bytes; writes no NUL. url: the base64url alphabet
 * without padding (RFC 4648 section 5, RFC 7515); otherwise the standard
 * alphabet padded with '='. Returns the bytes written. */
static inline size_t sl_test_base64(const uint8_t *in, size_t n, char *out, bool url)
{
    const char *tab = url ? "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
                          : "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = tab[(v >> 18) & 63];
        out[o++] = tab[(v >> 12) & 63];
        if (i + 1 < n)
            out[o++] = tab[(v >> 6) & 63];
        else if (!url)
            out[o++] = '=';
        if (i + 2 < n)
            out[o++] = tab[v & 63];
        else if (!url)
            out[o++] = '=';
    }
    return o;
}

#endif
