/*
 * CRC32C: slicing-by-8 tables plus the SSE4.2 instruction, dispatched once.
 * See crc32c.h for the contract.
 */
#include "storage/crc32c.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "runtime/base.h"

#define POLY 0x82F63B78u

typedef uint32_t (*crc_fn)(uint32_t crc, const void *buf, size_t len);

/* table[k][b]: CRC of byte b followed by k zero bytes; written once under
 * table_once, read-only afterwards. */
static uint32_t table[8][256];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static void table_build(void)
{
    for (uint32_t b = 0; b < 256; b++) {
        uint32_t c = b;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ POLY : c >> 1;
        table[0][b] = c;
    }
    for (uint32_t b = 0; b < 256; b++)
        for (int k = 1; k < 8; k++)
            table[k][b] = (table[k - 1][b] >> 8) ^ table[0][table[k - 1][b] & 0xff];
}

static uint32_t load_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

uint32_t sl_crc32c_sw(uint32_t crc, const void *buf, size_t len)
{
    pthread_once(&table_once, table_build);
    const uint8_t *p = buf;
    uint32_t c = ~crc;
    while (len >= 8) {
        uint32_t lo = load_le32(p) ^ c;
        uint32_t hi = load_le32(p + 4);
        c = table[7][lo & 0xff] ^ table[6][(lo >> 8) & 0xff] ^ table[5][(lo >> 16) & 0xff] ^
            table[4][lo >> 24] ^ table[3][hi & 0xff] ^ table[2][(hi >> 8) & 0xff] ^
            table[1][(hi >> 16) & 0xff] ^ table[0][hi >> 24];
        p += 8;
        len -= 8;
    }
    while (len--)
        c = (c >> 8) ^ table[0][(c ^ *p++) & 0xff];
    return ~c;
}

#if defined(__x86_64__)

bool sl_crc32c_hw_available(void)
{
    __builtin_cpu_init(); /* needed when called before constructors ran */
    return __builtin_cpu_supports("sse4.2");
}

__attribute__((target("sse4.2"))) static uint32_t crc_hw(uint32_t crc, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    uint64_t c = (uint32_t)~crc;
    /* Head bytes until p is 8-aligned, so the main loop's loads never
     * split a cache line. */
    while (len > 0 && ((uintptr_t)p & 7) != 0) {
        c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
        len--;
    }
    while (len >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = __builtin_ia32_crc32di(c, v);
        p += 8;
        len -= 8;
    }
    while (len--)
        c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
    return ~(uint32_t)c;
}

uint32_t sl_crc32c_hw(uint32_t crc, const void *buf, size_t len)
{
    sl_assert(sl_crc32c_hw_available());
    return crc_hw(crc, buf, len);
}

#else

bool sl_crc32c_hw_available(void)
{
    return false;
}

static uint32_t crc_hw(uint32_t crc, const void *buf, size_t len)
{
    return sl_crc32c_sw(crc, buf, len);
}

uint32_t sl_crc32c_hw(uint32_t crc, const void *buf, size_t len)
{
    sl_assert(sl_crc32c_hw_available());
    return crc_hw(crc, buf, len);
}

#endif

static uint32_t crc_resolve(uint32_t crc, const void *buf, size_t len);

/* The chosen implementation. Starts at crc_resolve, which stores the real
 * one; the release store pairs with the acquire load in sl_crc32c so a
 * caller that sees sl_crc32c_sw also sees the finished tables (they are
 * additionally guarded by pthread_once inside sl_crc32c_sw). */
static _Atomic(crc_fn) crc_impl = crc_resolve;

static uint32_t crc_resolve(uint32_t crc, const void *buf, size_t len)
{
    crc_fn fn = sl_crc32c_hw_available() ? crc_hw : sl_crc32c_sw;
    atomic_store_explicit(&crc_impl, fn, memory_order_release);
    return fn(crc, buf, len);
}

uint32_t sl_crc32c(uint32_t crc, const void *buf, size_t len)
{
    crc_fn fn = atomic_load_explicit(&crc_impl, memory_order_acquire);
    return fn(crc, buf, len);
}
