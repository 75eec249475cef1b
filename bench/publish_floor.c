/*
 * The kernel's floor under one acknowledged publish: what a server that
 * does nothing but the publish's I/O spends per request, measured alone.
 *
 * A server thread (pinned to SERVER_CPU) runs one io_uring the way a
 * sluiced reactor does (single issuer, deferred task work): it receives a
 * 64-byte request on a loopback TCP connection, optionally appends 100
 * bytes to a file through the same ring (FILE: a path; on ext4 io_uring
 * hands each buffered write to an io-wq worker, as it does sluiced's
 * journal writes), and sends a 32-byte answer. A client thread (pinned to
 * CLIENT_CPU) sends a request every PERIOD_US microseconds and blocks until
 * its answer comes, like a publisher at 1k events/s with PERIOD_US 1000.
 *
 * There is no parsing, no HTTP, no session, no subscriber: the difference
 * between this and sluiced's CPU per publish is what sluiced adds. The
 * server's CPU is the process's (getrusage: the server thread and any io-wq
 * workers) less the client thread's own; the server's voluntary context
 * switches are the process's less the client's. Prints one JSON line.
 *
 * usage: publish_floor REQUESTS [PERIOD_US [FILE|- [SERVER_CPU [CLIENT_CPU]]]]
 *        (defaults: 1000 us, no file, CPU 1, CPU 0; CPU -1: unpinned)
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define REQ_BYTES 64
#define ANS_BYTES 32
#define REC_BYTES 100

static long requests, period_us = 1000;
static const char *file_path;
static int server_cpu = 1, client_cpu = 0;
static int port;
static double client_cpu_s;
static long client_vcs;

static void die(const char *what, int err)
{
    fprintf(stderr, "publish_floor: %s: %s\n", what, strerror(err));
    exit(2);
}

static void pin(int cpu)
{
    if (cpu < 0)
        return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    int rc = pthread_setaffinity_np(pthread_self(), sizeof set, &set);
    if (rc != 0)
        die("pthread_setaffinity_np", rc);
}

static double thread_cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void full_io(int fd, void *buf, size_t n, int is_read)
{
    size_t done = 0;
    while (done < n) {
        ssize_t r = is_read ? read(fd, (char *)buf + done, n - done)
                            : write(fd, (const char *)buf + done, n - done);
        if (r <= 0)
            die(is_read ? "client read" : "client write", r == 0 ? EPIPE : errno);
        done += (size_t)r;
    }
}

static void *client(void *arg)
{
    (void)arg;
    pin(client_cpu);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0)
        die("connect", errno);
    struct rusage ru0, ru1;
    getrusage(RUSAGE_THREAD, &ru0);
    double c0 = thread_cpu_s();
    char req[REQ_BYTES], ans[ANS_BYTES];
    memset(req, 'p', sizeof req);
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    for (long i = 0; i < requests; i++) {
        if (period_us > 0) {
            next.tv_nsec += period_us * 1000;
            while (next.tv_nsec >= 1000000000L) {
                next.tv_nsec -= 1000000000L;
                next.tv_sec++;
            }
            clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
        }
        full_io(fd, req, sizeof req, 0);
        full_io(fd, ans, sizeof ans, 1);
    }
    client_cpu_s = thread_cpu_s() - c0;
    getrusage(RUSAGE_THREAD, &ru1);
    client_vcs = ru1.ru_nvcsw - ru0.ru_nvcsw;
    close(fd);
    return NULL;
}

static struct io_uring_sqe *sqe_get(struct io_uring *ring)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    if (!sqe)
        die("io_uring_get_sqe", EBUSY);
    return sqe;
}

/* Submits one op and waits for its completion; returns its result. */
static int one_op(struct io_uring *ring)
{
    struct io_uring_cqe *cqe;
    int rc = io_uring_submit_and_wait(ring, 1);
    if (rc < 0)
        die("io_uring_submit_and_wait", -rc);
    rc = io_uring_peek_cqe(ring, &cqe);
    if (rc != 0)
        die("io_uring_peek_cqe", -rc);
    int res = cqe->res;
    io_uring_cqe_seen(ring, cqe);
    return res;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr,
                "usage: publish_floor REQUESTS [PERIOD_US [FILE|- [SERVER_CPU [CLIENT_CPU]]]]\n");
        return 2;
    }
    requests = atol(argv[1]);
    if (argc > 2)
        period_us = atol(argv[2]);
    if (argc > 3 && strcmp(argv[3], "-") != 0)
        file_path = argv[3];
    if (argc > 4)
        server_cpu = atoi(argv[4]);
    if (argc > 5)
        client_cpu = atoi(argv[5]);
    if (requests <= 0 || period_us < 0)
        return fprintf(stderr, "publish_floor: bad arguments\n"), 2;
    pin(server_cpu);

    int lfd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sa;
    if (bind(lfd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(lfd, 1) != 0 ||
        getsockname(lfd, (struct sockaddr *)&sa, &sl) != 0)
        die("listen", errno);
    port = ntohs(sa.sin_port);
    int wfd = -1;
    if (file_path) {
        wfd = open(file_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (wfd < 0)
            die(file_path, errno);
    }

    struct io_uring ring;
    struct io_uring_params p = {.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN};
    int rc = io_uring_queue_init_params(64, &ring, &p);
    if (rc < 0)
        die("io_uring_queue_init_params", -rc);

    pthread_t th;
    rc = pthread_create(&th, NULL, client, NULL);
    if (rc != 0)
        die("pthread_create", rc);
    int cfd = accept(lfd, NULL, NULL);
    if (cfd < 0)
        die("accept", errno);
    setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    struct timespec w0, w1;
    clock_gettime(CLOCK_MONOTONIC, &w0);
    char req[REQ_BYTES], ans[ANS_BYTES], rec[REC_BYTES];
    memset(ans, 'a', sizeof ans);
    memset(rec, 'r', sizeof rec);
    uint64_t off = 0;
    for (long i = 0; i < requests; i++) {
        size_t got = 0;
        while (got < sizeof req) {
            io_uring_prep_recv(sqe_get(&ring), cfd, req + got, sizeof req - got, 0);
            int n = one_op(&ring);
            if (n <= 0)
                die("recv", n == 0 ? EPIPE : -n);
            got += (size_t)n;
        }
        if (wfd >= 0) {
            io_uring_prep_write(sqe_get(&ring), wfd, rec, sizeof rec, off);
            int n = one_op(&ring);
            if (n != (int)sizeof rec)
                die("write", n < 0 ? -n : EIO);
            off += sizeof rec;
        }
        io_uring_prep_send(sqe_get(&ring), cfd, ans, sizeof ans, 0);
        int n = one_op(&ring);
        if (n != (int)sizeof ans)
            die("send", n < 0 ? -n : EIO);
    }
    pthread_join(th, NULL);
    clock_gettime(CLOCK_MONOTONIC, &w1);
    getrusage(RUSAGE_SELF, &ru1);
    double all = (double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) +
                 (double)(ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) +
                 (double)(ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) / 1e6 +
                 (double)(ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec) / 1e6;
    double server = all - client_cpu_s;
    long vcs = (ru1.ru_nvcsw - ru0.ru_nvcsw) - client_vcs;
    double wall = (double)(w1.tv_sec - w0.tv_sec) + (double)(w1.tv_nsec - w0.tv_nsec) / 1e9;
    printf("{\"requests\":%ld,\"period_us\":%ld,\"file\":%s,\"server_cpu_us_per_request\":%.2f,"
           "\"server_vol_cs_per_request\":%.2f,\"client_cpu_us_per_request\":%.2f,"
           "\"wall_s\":%.2f}\n",
           requests, period_us, file_path ? "true" : "false", server / (double)requests * 1e6,
           (double)vcs / (double)requests, client_cpu_s / (double)requests * 1e6, wall);
    io_uring_queue_exit(&ring);
    close(cfd);
    close(lfd);
    if (wfd >= 0) {
        close(wfd);
        unlink(file_path);
    }
    return 0;
}
