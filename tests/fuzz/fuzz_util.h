/*
 * What the libFuzzer harnesses share: a check that aborts (so
 * libFuzzer records the input as a crash) and a tiny deterministic PRNG
 * the harnesses seed from the input's first bytes, so one input always
 * takes the same path.
 */
#ifndef SL_TESTS_FUZZ_UTIL_H
#define SL_TESTS_FUZZ_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* A broken invariant is a finding: print it and abort. */
#define FZ_CHECK(cond)                                                                   \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "%s:%d: fuzz invariant failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                     \
        }                                                                                \
    } while (0)

typedef struct fz_rng {
    uint64_t s;
} fz_rng_t;

static inline uint32_t fz_next(fz_rng_t *r)
{
    /* splitmix64: good enough spread for choosing chunk sizes and modes. */
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return (uint32_t)((z ^ (z >> 31)) >> 32);
}

/* Sums every byte of p[0..n): touching each byte lets ASan see a span that
 * points outside its buffer. */
static inline uint32_t fz_touch(const void *p, size_t n)
{
    const volatile uint8_t *b = p;
    uint32_t sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += b[i];
    return sum;
}

#endif
