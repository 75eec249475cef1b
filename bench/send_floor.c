/*
 * The kernel's floor under fan-out: what one loopback TCP send costs the
 * sending thread, measured alone. CONNS connections; a receiver thread
 * (pinned to RECV_CPU) drains them all with epoll like a client would; the
 * sender (pinned to SEND_CPU) does ROUNDS rounds, one every PERIOD_US, each
 * sending BYTES on every connection -- as one io_uring submission of CONNS
 * sends (how sluiced sends) or CONNS send() calls. Prints the sender's CPU
 * per send (user + system, from getrusage(RUSAGE_THREAD)) as one JSON line.
 *
 * usage: send_floor CONNS BYTES PERIOD_US ROUNDS uring|send [SEND_CPU RECV_CPU]
 * build: cc -O2 -o send_floor bench/send_floor.c -luring -lpthread
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CONNS_MAX 4096

static int nconns, srv_fd[CONNS_MAX], cli_fd[CONNS_MAX];
static atomic_bool done;
static atomic_ulong received;

static void pin(int cpu)
{
    if (cpu < 0)
        return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

static double thread_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_THREAD, &ru);
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
           (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static void *receiver(void *arg)
{
    pin(*(int *)arg);
    int ep = epoll_create1(0);
    for (int i = 0; i < nconns; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = cli_fd[i]};
        epoll_ctl(ep, EPOLL_CTL_ADD, cli_fd[i], &ev);
    }
    static char buf[65536];
    struct epoll_event evs[256];
    while (!atomic_load(&done)) {
        int n = epoll_wait(ep, evs, 256, 100);
        for (int i = 0; i < n; i++) {
            ssize_t r = recv(evs[i].data.fd, buf, sizeof buf, 0);
            if (r > 0)
                atomic_fetch_add(&received, (unsigned long)r);
        }
    }
    close(ep);
    return NULL;
}

static void connect_pairs(void)
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, CONNS_MAX) ||
        getsockname(l, (struct sockaddr *)&a, &al)) {
        perror("listen");
        exit(1);
    }
    for (int i = 0; i < nconns; i++) {
        cli_fd[i] = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(cli_fd[i], (struct sockaddr *)&a, sizeof a) ||
            (srv_fd[i] = accept(l, NULL, NULL)) < 0) {
            perror("connect");
            exit(1);
        }
        int one = 1;
        setsockopt(srv_fd[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    close(l);
}

int main(int argc, char **argv)
{
    if (argc < 6) {
        fprintf(stderr, "usage: %s CONNS BYTES PERIOD_US ROUNDS uring|send [SEND_CPU RECV_CPU]\n",
                argv[0]);
        return 2;
    }
    nconns = atoi(argv[1]);
    int bytes = atoi(argv[2]), period_us = atoi(argv[3]), rounds = atoi(argv[4]);
    int uring = strcmp(argv[5], "uring") == 0;
    int send_cpu = argc > 6 ? atoi(argv[6]) : -1, recv_cpu = argc > 7 ? atoi(argv[7]) : -1;
    if (nconns < 1 || nconns > CONNS_MAX || bytes < 1 || bytes > 65536 || rounds < 1) {
        fprintf(stderr, "send_floor: bad arguments\n");
        return 2;
    }
    connect_pairs();
    pthread_t rt;
    pthread_create(&rt, NULL, receiver, &recv_cpu);
    pin(send_cpu);
    struct io_uring ring;
    if (uring && io_uring_queue_init((unsigned)nconns, &ring, 0)) {
        fprintf(stderr, "send_floor: io_uring_queue_init failed\n");
        return 1;
    }
    char *msg = malloc((size_t)bytes);
    memset(msg, 'x', (size_t)bytes);
    double c0 = thread_cpu_s();
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    for (int r = 0; r < rounds; r++) {
        if (uring) {
            for (int i = 0; i < nconns; i++) {
                struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
                io_uring_prep_send(sqe, srv_fd[i], msg, (size_t)bytes, 0);
            }
            io_uring_submit_and_wait(&ring, (unsigned)nconns);
            struct io_uring_cqe *cqe;
            unsigned head, seen = 0;
            io_uring_for_each_cqe(&ring, head, cqe) seen++;
            io_uring_cq_advance(&ring, seen);
        } else {
            for (int i = 0; i < nconns; i++)
                if (send(srv_fd[i], msg, (size_t)bytes, 0) < 0)
                    perror("send");
        }
        next.tv_nsec += (long)period_us * 1000;
        while (next.tv_nsec >= 1000000000L) {
            next.tv_nsec -= 1000000000L;
            next.tv_sec++;
        }
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
    }
    double cpu = thread_cpu_s() - c0;
    usleep(200000);
    atomic_store(&done, true);
    pthread_join(rt, NULL);
    double sends = (double)rounds * nconns;
    printf("{\"conns\":%d,\"bytes\":%d,\"period_us\":%d,\"rounds\":%d,\"mode\":\"%s\","
           "\"sender_cpu_s\":%.4f,\"us_per_send\":%.3f,\"received_bytes\":%lu}\n",
           nconns, bytes, period_us, rounds, uring ? "uring" : "send", cpu, cpu / sends * 1e6,
           atomic_load(&received));
    if (uring)
        io_uring_queue_exit(&ring);
    free(msg);
    for (int i = 0; i < nconns; i++) {
        close(srv_fd[i]);
        close(cli_fd[i]);
    }
    return 0;
}
