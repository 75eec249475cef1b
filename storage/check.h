/*
 * The offline checker behind `sluiced --check DATA_DIR [--repair]`: lists
 * every session's segments with their record counts and seq ranges, every
 * damaged byte range (file, offset, bytes) and what a repair does to it
 * (storage/repair.h), like redis-check-aof or kafka-dump-log. Without
 * repair it changes no file; with it, it applies exactly what startup
 * recovery would (quarantine, never delete). Every segment is scanned,
 * also those a clean manifest entry vouches for. Run it on a data dir no
 * server uses.
 *
 * Output, one logfmt line each, on out:
 *   segment session=<id> file=<name> records=N first_seq=A last_seq=B
 *           bytes=F damaged_bytes=D action=none|truncate|rewrite|quarantine
 *   damage session=<id> file=<name> offset=O bytes=B reason=torn|corrupt
 *   session session=<id> segments=N records=M seq_hwm=H damaged_segments=K
 *   summary sessions=N failed=F segments_damaged=K damaged_bytes=D
 *           quarantined_bytes=Q repair=no|yes
 * Main thread, plain syscalls.
 */
#ifndef SL_STORAGE_CHECK_H
#define SL_STORAGE_CHECK_H

#include <stdbool.h>
#include <stdio.h>

/* Checks (and with repair, repairs) data_dir, writing the report to out
 * (borrowed). Returns 0 when nothing is damaged or everything found was
 * repaired, 1 when damage was found and not repaired (or a session could
 * not be checked), or -errno when data_dir cannot be listed. */
int sl_check_data_dir(const char *data_dir, bool repair, FILE *out);

/* `sluiced --check` entry: argv holds DATA_DIR and optionally --repair
 * (argc counts them). Returns the exit code: 0 clean (or repaired), 1
 * damage found, 2 usage or an unreadable data dir. */
int sl_check_main(int argc, char **argv);

#endif
