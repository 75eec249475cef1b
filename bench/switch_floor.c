/*
 * The kernel's floor under a publish: what one sleep and wake-up between
 * two threads on the same CPU costs, measured alone. A publish arriving at
 * an idle sluiced costs three (the reactor wakes for the request, sleeps
 * while an io-wq worker -- on the same CPU when the server is pinned --
 * runs the buffered journal write, and wakes again for its completion), so
 * this is the price of each.
 *
 * Two threads pinned to CPU ping-pong ROUNDS times through two eventfds
 * (blocking reads: each hand-off puts one thread to sleep and wakes the
 * other). With PERIOD_US > 0 the first thread sleeps that long before each
 * round, so the CPU goes idle in between the way a server between two
 * publishes does, and each round costs three switches (the wake from idle,
 * and the two hand-offs). Prints the CPU per switch (user + system of the
 * whole process, from getrusage; the sleeps' own CPU included) and the wall
 * time per hand-off as one JSON line.
 *
 * usage: switch_floor ROUNDS [CPU [PERIOD_US]]   (CPU -1: unpinned)
 * build: cc -O2 -o switch_floor bench/switch_floor.c -lpthread
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static int ping_fd, pong_fd, cpu = -1;
static long rounds, period_us;

static void pin(void)
{
    if (cpu < 0)
        return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (pthread_setaffinity_np(pthread_self(), sizeof set, &set) != 0) {
        perror("pthread_setaffinity_np");
        exit(2);
    }
}

static void hand(int to, int from)
{
    uint64_t one = 1, got;
    if (write(to, &one, sizeof one) != sizeof one || read(from, &got, sizeof got) != sizeof got) {
        perror("eventfd");
        exit(2);
    }
}

static void *ponger(void *arg)
{
    (void)arg;
    pin();
    uint64_t got, one = 1;
    for (long i = 0; i < rounds; i++) {
        if (read(ping_fd, &got, sizeof got) != sizeof got ||
            write(pong_fd, &one, sizeof one) != sizeof one) {
            perror("eventfd");
            exit(2);
        }
    }
    return NULL;
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: switch_floor ROUNDS [CPU [PERIOD_US]]\n");
        return 2;
    }
    rounds = atol(argv[1]);
    if (argc > 2)
        cpu = atoi(argv[2]);
    if (argc > 3)
        period_us = atol(argv[3]);
    if (rounds <= 0 || period_us < 0) {
        fprintf(stderr, "switch_floor: ROUNDS must be positive, PERIOD_US not negative\n");
        return 2;
    }
    ping_fd = eventfd(0, EFD_CLOEXEC);
    pong_fd = eventfd(0, EFD_CLOEXEC);
    if (ping_fd < 0 || pong_fd < 0) {
        perror("eventfd");
        return 2;
    }
    pin();
    pthread_t t;
    if (pthread_create(&t, NULL, ponger, NULL) != 0) {
        perror("pthread_create");
        return 2;
    }
    struct timespec a, b;
    double c0 = cpu_s();
    clock_gettime(CLOCK_MONOTONIC, &a);
    struct timespec nap = {.tv_sec = period_us / 1000000, .tv_nsec = (period_us % 1000000) * 1000};
    for (long i = 0; i < rounds; i++) {
        if (period_us > 0)
            nanosleep(&nap, NULL);
        hand(ping_fd, pong_fd);
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    double c1 = cpu_s();
    pthread_join(t, NULL);
    double wall = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
    long switches = (period_us > 0 ? 3 : 2) * rounds;
    printf("{\"rounds\":%ld,\"cpu\":%d,\"period_us\":%ld,\"switches\":%ld,"
           "\"cpu_us_per_switch\":%.3f,\"wall_us_per_handoff\":%.3f}\n",
           rounds, cpu, period_us, switches, (c1 - c0) * 1e6 / (double)switches,
           period_us > 0 ? -1.0 : wall * 1e6 / (double)(2 * rounds));
    return 0;
}
