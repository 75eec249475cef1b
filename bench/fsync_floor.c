/*
 * What one durable append costs the file system, measured alone: N times,
 * write RECORD_BYTES at the end of what was written and fdatasync, in a
 * file laid out one of four ways:
 *
 *   append   the file grows with every write (what sluiced's segments do):
 *            each fdatasync must also persist the new size (the inode)
 *   keep     blocks allocated ahead with FALLOC_FL_KEEP_SIZE: the size
 *            still grows with every write
 *   falloc   blocks allocated ahead and the size set (fallocate): writes
 *            convert unwritten extents, the size does not change
 *   zero     the file written with zeros and synced first: writes only
 *            overwrite data
 *
 * Prints, per mode, the wall time and the CPU (the process's, getrusage)
 * per write+fdatasync as one JSON line. The file is removed at the end.
 *
 * usage: fsync_floor N PATH [RECORD_BYTES] [MODE...]
 *        (defaults: 100-byte records, all four modes)
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static double wall_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static void die(const char *what)
{
    fprintf(stderr, "fsync_floor: %s: %s\n", what, strerror(errno));
    exit(2);
}

static void prepare(int fd, const char *mode, off_t bytes)
{
    if (strcmp(mode, "keep") == 0) {
        if (fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, bytes) != 0)
            die("fallocate");
    } else if (strcmp(mode, "falloc") == 0) {
        if (fallocate(fd, 0, 0, bytes) != 0)
            die("fallocate");
    } else if (strcmp(mode, "zero") == 0) {
        static char zeros[1 << 16];
        for (off_t off = 0; off < bytes; off += (off_t)sizeof zeros)
            if (write(fd, zeros, sizeof zeros) != (ssize_t)sizeof zeros)
                die("write zeros");
    } else if (strcmp(mode, "append") != 0) {
        fprintf(stderr, "fsync_floor: unknown mode %s\n", mode);
        exit(2);
    }
    if (fsync(fd) != 0)
        die("fsync");
}

static void run(const char *mode, long n, const char *path, size_t rec)
{
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        die(path);
    prepare(fd, mode, (off_t)(n * (long)rec) + (1 << 16));
    char *buf = malloc(rec);
    if (!buf)
        die("malloc");
    memset(buf, 'r', rec);
    double w0 = wall_s(), c0 = cpu_s();
    for (long i = 0; i < n; i++) {
        if (pwrite(fd, buf, rec, (off_t)(i * (long)rec)) != (ssize_t)rec)
            die("pwrite");
        if (fdatasync(fd) != 0)
            die("fdatasync");
    }
    double w = wall_s() - w0, c = cpu_s() - c0;
    printf("{\"mode\":\"%s\",\"appends\":%ld,\"record_bytes\":%zu,\"wall_us_per_append\":%.1f,"
           "\"cpu_us_per_append\":%.1f}\n",
           mode, n, rec, w / (double)n * 1e6, c / (double)n * 1e6);
    fflush(stdout);
    free(buf);
    close(fd);
    unlink(path);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: fsync_floor N PATH [RECORD_BYTES] [MODE...]\n");
        return 2;
    }
    long n = atol(argv[1]);
    size_t rec = argc > 3 ? (size_t)atol(argv[3]) : 100;
    if (n <= 0 || rec == 0)
        return fprintf(stderr, "fsync_floor: bad arguments\n"), 2;
    static const char *all[] = {"append", "keep", "falloc", "zero"};
    if (argc > 4) {
        for (int i = 4; i < argc; i++)
            run(argv[i], n, argv[2], rec);
    } else {
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
            run(all[i], n, argv[2], rec);
    }
    return 0;
}
