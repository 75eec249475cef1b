/*
 * The seq reservation mark: a 32-byte file per session folder that makes
 * the seq counter's high-water mark durable, ephemeral seqs included.
 *
 * Ephemeral events take seqs from the same counter as logged ones but
 * leave no record, so after a crash the log alone cannot tell which seqs
 * were handed out. The session therefore reserves seqs in blocks of
 * SL_SEQ_RESERVE_BLOCK: before it issues a seq above the reserved mark it
 * writes a higher mark to <data-dir>/<id>/seqs.reserved and (unless
 * --fsync never) fsyncs it, and the folder the first time. Recovery
 * resumes the counter above the mark, so no seq is issued twice in one
 * incarnation, whatever the crash. The cost is one small write per block,
 * off the publish path (the next block is reserved when half of the
 * current one is used); a crash skips at most one block of seqs, which a
 * resuming reader sees as a sluice.gap.
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
