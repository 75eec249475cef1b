/*
 * CRC32C (Castagnoli, reflected polynomial 0x82F63B78): the checksum every
 * stored record, segment header and manifest carries.
 *
 * Two implementations with identical results: the SSE4.2 `crc32`
 * instruction, chosen at run time when the CPU has it, and a slicing-by-8
 * table walk everywhere else. The choice is made once (first call) and is
 * read with one acquire load afterwards, so every thread may call in.
 *
 * Convention: the value passed in and returned is the finished CRC (pre- and
 * post-inversion happen inside), so checksums extend across pieces:
 * sl_crc32c(sl_crc32c(0, a, na), b, nb) == sl_crc32c(0, a||b, na + nb).
 * Start a fresh checksum with crc = 0.
 */
#ifndef SL_STORAGE_CRC32C_H
#define SL_STORAGE_CRC32C_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Extends crc over len bytes of buf (borrowed) with the fastest available
 * implementation. Never fails. Any thread. */
uint32_t sl_crc32c(uint32_t crc, const void *buf, size_t len);

/* The table-driven implementation (always available). Any thread. */
uint32_t sl_crc32c_sw(uint32_t crc, const void *buf, size_t len);

/* True when the CPU has the SSE4.2 crc32 instruction. Any thread. */
bool sl_crc32c_hw_available(void);

/* The instruction-based implementation. Calling it when
 * sl_crc32c_hw_available() is false is a programmer error (asserts). */
uint32_t sl_crc32c_hw(uint32_t crc, const void *buf, size_t len);

#endif
