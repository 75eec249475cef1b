/*
 * The seq reservation mark: a 32-byte file per session folder that makes
 * the seq counter's high-water mark durable, ephemeral seqs included.
 *
 * Ephemeral events take seqs from the same counter as logged ones but
 * leave no record, so after a crash the log alone cannot tell which seqs
 * were handed out. A logged seq needs no mark: its record is visible to
 * readers only once written, so the log itself bounds it. Before a
 * session issues an ephemeral seq above its mark, it reserves a block of
 * SL_SEQ_RESERVE_BLOCK seqs: it writes the new mark to
 * <data-dir>/<id>/seqs.reserved and (unless --fsync never) fsyncs it, and
 * the folder once per session actor. From then on it keeps the mark half
 * a block ahead of the counter, so a steady publisher does not wait for
 * it. Recovery resumes the counter above the mark, so no seq is issued
 * twice in one incarnation. The cost is one small write per block, and a
 * crash skips at most one block of seqs (a resuming reader sees a
 * sluice.gap), only in sessions that published ephemeral events. A clean
 * shutdown skips nothing: the manifest's counter is exact.
 *
 * Format (little-endian): magic "SLUICESR" (8), epoch (8), reserved seq
 * (8), CRC32C of bytes [0, 24) (4), zero (4). The file is overwritten in
 * place; a torn or damaged mark is ignored (the log and the manifest
 * still bound the counter) and logged.
 *
 * This module has the codec (pure, any thread) and the startup load
 * (plain syscalls). The session actor writes the file through its
 * reactor.
 */
#ifndef SL_STORAGE_SEQMARK_H
#define SL_STORAGE_SEQMARK_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/base.h"
#include "runtime/limits.h"

#define SL_SEQMARK_NAME "seqs.reserved"
#define SL_SEQMARK_MAGIC "SLUICESR"
#define SL_SEQMARK_BYTES 32u

/* Encodes the mark (epoch, reserved) into buf (SL_SEQMARK_BYTES). */
void sl_seqmark_encode(void *buf, uint64_t epoch, uint64_t reserved);

/* Decodes n bytes at buf (borrowed). Returns 0 with *epoch and *reserved
 * set, or SL_ECORRUPT (short, wrong magic, CRC). */
int sl_seqmark_decode(const void *buf, size_t n, uint64_t *epoch, uint64_t *reserved);

/* Startup only: reads the mark in the session folder open at dirfd
 * (borrowed). Returns 0 with the fields set, -ENOENT when there is none,
 * SL_ECORRUPT, or -errno. */
int sl_seqmark_load(int dirfd, uint64_t *epoch, uint64_t *reserved);

#endif
