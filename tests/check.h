/*
 * Assertions for the C test programs: a failed check prints file, line and
 * the expression (and, for CHECK_EQ, both values) and exits 1, so ctest
 * reports the test as failed with the reason on its output.
 */
#ifndef SL_TESTS_CHECK_H
#define SL_TESTS_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(c)                                                                    \
    do {                                                                            \
        if (!(c)) {                                                                 \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #c); \
            exit(1);                                                                \
        }                                                                           \
    } while (0)

#endif
