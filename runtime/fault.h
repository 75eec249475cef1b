/*
 * Named fault points, for tests that must make a rare failure happen on
 * purpose (an allocation refused at one exact place, say) in the real
 * binary. A Debug build reads SLUICE_FAULTS once, at the first query:
 * a comma-separated list of `name` (fail every time) or `name:N` (fail
 * only the Nth time the point is reached). Release builds (NDEBUG) compile
 * every point to `false`, so production code pays nothing and cannot be
 * made to fail from its environment.
 */
#ifndef SL_RUNTIME_FAULT_H
#define SL_RUNTIME_FAULT_H

#include <stdbool.h>

#ifdef NDEBUG
#define sl_fault(name) false
#else
/* True when the fault point `name` (a string literal) must fail now.
 * Any thread; the per-point count is atomic. */
bool sl_fault(const char *name);
#endif

#endif
