/*
 * Clocks. Monotonic time for every duration and deadline; wall time only for
 * event timestamps and logs.
 */
#ifndef SL_RUNTIME_CLOCK_H
#define SL_RUNTIME_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Monotonic nanoseconds (CLOCK_MONOTONIC; vDSO, no syscall). Any thread. */
static inline uint64_t sl_clock_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Wall-clock nanoseconds since the epoch (CLOCK_REALTIME). Any thread. */
static inline uint64_t sl_clock_wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

#define SL_NS_PER_MS 1000000ull
#define SL_NS_PER_S 1000000000ull

#endif
