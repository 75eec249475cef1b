/*
 * CRC32C tests: published vectors (RFC 3720 appendix B.4), the extend
 * property, and bit-for-bit agreement of the instruction and table paths on
 * random data at every alignment.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/crc32c.h"

#include "tests/check.h"

typedef uint32_t (*crc_fn)(uint32_t, const void *, size_t);

static void check_vectors(crc_fn f)
{
    uint8_t b[32];
    CHECK(f(0, "123456789", 9) == 0xE3069283u);
    CHECK(f(0, "", 0) == 0);
    memset(b, 0, sizeof b);
    CHECK(f(0, b, 32) == 0x8A9136AAu);
    memset(b, 0xff, sizeof b);
    CHECK(f(0, b, 32) == 0x62A8AB43u);
    for (int i = 0; i < 32; i++)
        b[i] = (uint8_t)i;
    CHECK(f(0, b, 32) == 0x46DD794Eu);
    for (int i = 0; i < 32; i++)
        b[i] = (uint8_t)(31 - i);
    CHECK(f(0, b, 32) == 0x113FDB5Cu);
}

/* The first calls choose the implementation; racing them must be safe
 * (run under TSan) and every caller must get the right answer. */
static void *first_call(void *arg)
{
    uint32_t *out = arg;
    for (int i = 0; i < 100; i++)
        out[i] = sl_crc32c(0, "123456789", 9);
    return NULL;
}

static void test_crc32c_concurrent_first_use(void)
{
    enum { T = 4 };
    pthread_t th[T];
    static uint32_t res[T][100];
    for (int t = 0; t < T; t++)
        CHECK(pthread_create(&th[t], NULL, first_call, res[t]) == 0);
    for (int t = 0; t < T; t++)
        CHECK(pthread_join(th[t], NULL) == 0);
    for (int t = 0; t < T; t++)
        for (int i = 0; i < 100; i++)
            CHECK(res[t][i] == 0xE3069283u);
}

static void test_crc32c_vectors(void)
{
    check_vectors(sl_crc32c);
    check_vectors(sl_crc32c_sw);
    if (sl_crc32c_hw_available())
        check_vectors(sl_crc32c_hw);
    else
        fprintf(stderr, "skip: hardware crc32c vectors (no SSE4.2 on this CPU)\n");
}

static uint64_t rng_state = 0x1234567887654321ull;
static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void test_crc32c_extend_equals_whole(void)
{
    uint8_t buf[300];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (uint8_t)rng();
    uint32_t whole = sl_crc32c(0, buf, sizeof buf);
    for (size_t cut = 0; cut <= sizeof buf; cut++) {
        uint32_t a = sl_crc32c(0, buf, cut);
        CHECK(sl_crc32c(a, buf + cut, sizeof buf - cut) == whole);
        CHECK(sl_crc32c_sw(sl_crc32c_sw(0, buf, cut), buf + cut, sizeof buf - cut) == whole);
    }
}

static void test_crc32c_hw_matches_sw_random(void)
{
    if (!sl_crc32c_hw_available()) {
        fprintf(stderr, "skip: hardware crc32c comparison (no SSE4.2 on this CPU)\n");
        return;
    }
    enum { MAX = 4096 + 16 };
    uint8_t *buf = malloc(MAX);
    CHECK(buf != NULL);
    for (int round = 0; round < 400; round++) {
        for (size_t i = 0; i < MAX; i++)
            buf[i] = (uint8_t)rng();
        size_t off = (size_t)(rng() % 8);    /* every alignment */
        size_t len = (size_t)(rng() % 4097); /* lengths around every tail */
        uint32_t seed = (uint32_t)rng();
        CHECK(sl_crc32c_hw(seed, buf + off, len) == sl_crc32c_sw(seed, buf + off, len));
        CHECK(sl_crc32c(seed, buf + off, len) == sl_crc32c_sw(seed, buf + off, len));
    }
    for (size_t len = 0; len < 64; len++)
        for (size_t off = 0; off < 8; off++)
            CHECK(sl_crc32c_hw(0, buf + off, len) == sl_crc32c_sw(0, buf + off, len));
    free(buf);
}

static void test_crc32c_detects_single_bit_flips(void)
{
    uint8_t buf[64];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (uint8_t)rng();
    uint32_t good = sl_crc32c(0, buf, sizeof buf);
    for (size_t bit = 0; bit < sizeof buf * 8; bit++) {
        buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        CHECK(sl_crc32c(0, buf, sizeof buf) != good);
        buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    }
}

int main(void)
{
    test_crc32c_concurrent_first_use(); /* must run first */
    test_crc32c_vectors();
    test_crc32c_extend_equals_whole();
    test_crc32c_hw_matches_sw_random();
    test_crc32c_detects_single_bit_flips();
    printf("crc32c_test: ok (hw=%d)\n", sl_crc32c_hw_available());
    return 0;
}
