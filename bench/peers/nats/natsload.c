/*
 * natsload: the fan-out row of bench/threads.sh against a core NATS server
 * (text protocol over TCP, no client library). One publisher connection
 * sends RATE events/s of SIZE bytes on one subject, open loop, for DURATION
 * s; SUBS subscriber connections each hold one subscription to it. The
 * payload starts with the CLOCK_MONOTONIC send time, so every delivery
 * gives an end-to-end latency (corrected: from the intended send time).
 * Prints one JSON object with the fields bench/threads.sh reads.
 *
 * usage: natsload HOST PORT RATE SUBS DURATION SIZE [DRAIN]
 * Exit 0 when every subscriber received every published event, else 1.
 *
 * Build: cc -O2 -o natsload natsload.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SUBJECT "ev"
#define BUF_BYTES (1 << 20)
#define HIST_US 1000000 /* latency histogram: 1 us buckets up to 1 s */

typedef struct conn {
    int fd;
    char *buf;
    size_t len;
    uint64_t got;
    int ready; /* PONG seen after SUB */
} conn_t;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t hist[HIST_US + 1];
static uint64_t delivered;

static int dial(const char *host, int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, host, &sa.sin_addr);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        perror("connect");
        exit(3);
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static void send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            perror("send");
            exit(1);
        }
        p += w;
        n -= (size_t)w;
    }
}

/* Consumes complete protocol lines (and MSG payloads) from c->buf. */
static void parse(conn_t *c)
{
    size_t off = 0;
    for (;;) {
        char *line = c->buf + off;
        char *eol = memmem(line, c->len - off, "\r\n", 2);
        if (!eol)
            break;
        size_t ll = (size_t)(eol - line);
        if (ll >= 4 && memcmp(line, "MSG ", 4) == 0) {
            /* MSG <subject> <sid> <bytes> */
            char *sp = memrchr(line, ' ', ll);
            size_t n = strtoul(sp + 1, NULL, 10);
            size_t need = ll + 2 + n + 2;
            if (c->len - off < need)
                break;
            char *payload = eol + 2;
            uint64_t sent = strtoull(payload, NULL, 10), lat = now_ns() - sent;
            uint64_t us = lat / 1000;
            hist[us > HIST_US ? HIST_US : us]++;
            c->got++;
            delivered++;
            off += need;
            continue;
        }
        if (ll == 4 && memcmp(line, "PING", 4) == 0)
            send_all(c->fd, "PONG\r\n", 6);
        else if (ll == 4 && memcmp(line, "PONG", 4) == 0)
            c->ready = 1;
        else if (ll >= 4 && memcmp(line, "-ERR", 4) == 0)
            fprintf(stderr, "natsload: server said %.*s\n", (int)ll, line);
        off += ll + 2;
    }
    memmove(c->buf, c->buf + off, c->len - off);
    c->len -= off;
}

static void on_readable(conn_t *c)
{
    for (;;) {
        if (c->len == BUF_BYTES) {
            fprintf(stderr, "natsload: line longer than the buffer\n");
            exit(1);
        }
        ssize_t r = recv(c->fd, c->buf + c->len, BUF_BYTES - c->len, MSG_DONTWAIT);
        if (r > 0) {
            c->len += (size_t)r;
            parse(c);
            continue;
        }
        if (r < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        fprintf(stderr, "natsload: connection closed\n");
        exit(1);
    }
}

static double pct(double q)
{
    uint64_t want = (uint64_t)(q * (double)delivered), seen = 0;
    for (uint64_t i = 0; i <= HIST_US; i++) {
        seen += hist[i];
        if (seen > want)
            return (double)i * 1000.0;
    }
    return (double)HIST_US * 1000.0;
}

int main(int argc, char **argv)
{
    if (argc < 7) {
        fprintf(stderr, "usage: natsload HOST PORT RATE SUBS DURATION SIZE [DRAIN]\n");
        return 2;
    }
    const char *host = argv[1];
    int port = atoi(argv[2]);
    uint64_t rate = strtoull(argv[3], NULL, 10);
    int subs = atoi(argv[4]);
    double duration = atof(argv[5]), drain = argc > 7 ? atof(argv[7]) : 2.0;
    size_t size = strtoul(argv[6], NULL, 10);
    if (size < 24 || rate == 0 || subs < 1)
        return 2;
    int ep = epoll_create1(0);
    conn_t *cs = calloc((size_t)subs + 1, sizeof *cs);
    static const char hello[] = "CONNECT {\"verbose\":false,\"pedantic\":false}\r\n";
    for (int i = 0; i <= subs; i++) { /* cs[subs] is the publisher */
        cs[i].fd = dial(host, port);
        cs[i].buf = malloc(BUF_BYTES);
        send_all(cs[i].fd, hello, sizeof hello - 1);
        if (i < subs)
            send_all(cs[i].fd, "SUB " SUBJECT " 1\r\nPING\r\n", 15);
        else
            send_all(cs[i].fd, "PING\r\n", 6);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &cs[i]};
        epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev);
    }
    struct epoll_event evs[256];
    int ready = 0;
    uint64_t setup_deadline = now_ns() + 10000000000ull;
    while (ready <= subs && now_ns() < setup_deadline) {
        int n = epoll_wait(ep, evs, 256, 100);
        for (int i = 0; i < n; i++)
            on_readable(evs[i].data.ptr);
        ready = 0;
        for (int i = 0; i <= subs; i++)
            ready += cs[i].ready;
    }
    if (ready <= subs) {
        fprintf(stderr, "natsload: only %d of %d connections ready\n", ready, subs + 1);
        return 1;
    }
    char *frame = malloc(size + 64);
    uint64_t period = 1000000000ull / rate, start = now_ns();
    uint64_t end = start + (uint64_t)(duration * 1e9), published = 0;
    uint64_t drain_end = end + (uint64_t)(drain * 1e9);
    for (;;) {
        uint64_t t = now_ns();
        /* Open loop: every event whose time has come goes now, stamped with
         * its intended send time. */
        while (t < end && start + published * period <= t) {
            uint64_t due = start + published * period;
            int h = snprintf(frame, 64, "PUB " SUBJECT " %zu\r\n", size);
            int p = snprintf(frame + h, 24, "%020llu", (unsigned long long)due);
            memset(frame + h + p, 'x', size - (size_t)p);
            memcpy(frame + h + size, "\r\n", 2);
            send_all(cs[subs].fd, frame, (size_t)h + size + 2);
            published++;
        }
        if (t >= end && (delivered >= published * (uint64_t)subs || t >= drain_end))
            break;
        uint64_t next = t < end ? start + published * period : t + 1000000;
        uint64_t wait_ns = next > t ? next - t : 0;
        struct timespec ts = {.tv_sec = (time_t)(wait_ns / 1000000000ull),
                              .tv_nsec = (long)(wait_ns % 1000000000ull)};
        int n = epoll_pwait2(ep, evs, 256, &ts, NULL); /* ns timeout: sends on time */
        for (int i = 0; i < n; i++)
            on_readable(evs[i].data.ptr);
    }
    double secs = duration;
    printf("{\"published\": %llu, \"delivered\": %llu, \"published_per_s\": %.1f, "
           "\"delivered_per_s\": %.1f, \"latency\": {\"p50_ns\": %.0f, \"p99_ns\": %.0f}}\n",
           (unsigned long long)published, (unsigned long long)delivered,
           (double)published / secs, (double)delivered / secs, pct(0.50), pct(0.99));
    return delivered == published * (uint64_t)subs ? 0 : 1;
}
