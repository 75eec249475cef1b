/*
 * Fault points (fault.h): the SLUICE_FAULTS list is parsed once into a
 * small fixed table; each query counts its point's hits.
 */
#include "runtime/fault.h"

#ifndef NDEBUG
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/limits.h"
#include "runtime/log.h"

typedef struct fault_point {
    char name[SL_FAULT_NAME_MAX + 1];
    unsigned long nth; /* 0: every time */
    _Atomic unsigned long hits;
} fault_point_t;

static fault_point_t points[SL_FAULT_POINTS_MAX];
static unsigned npoints;
static pthread_once_t parsed = PTHREAD_ONCE_INIT;

static void parse(void)
{
    const char *spec = getenv("SLUICE_FAULTS");
    while (spec && *spec && npoints < SL_FAULT_POINTS_MAX) {
        size_t n = strcspn(spec, ",");
        size_t name_len = strcspn(spec, ":,");
        fault_point_t *p = &points[npoints];
        if (name_len > 0 && name_len <= SL_FAULT_NAME_MAX) {
            memcpy(p->name, spec, name_len);
            p->name[name_len] = '\0';
            p->nth = name_len < n ? strtoul(spec + name_len + 1, NULL, 10) : 0;
            npoints++;
        }
        spec += n + (spec[n] == ',');
    }
    if (npoints)
        sl_warn("fault points armed", "spec=\"%s\"", getenv("SLUICE_FAULTS"));
}

bool sl_fault(const char *name)
{
    pthread_once(&parsed, parse);
    for (unsigned i = 0; i < npoints; i++) {
        fault_point_t *p = &points[i];
        if (strcmp(p->name, name) != 0)
            continue;
        unsigned long hit = atomic_fetch_add_explicit(&p->hits, 1, memory_order_relaxed) + 1;
        return p->nth == 0 || hit == p->nth;
    }
    return false;
}
#endif
