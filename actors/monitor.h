/*
 * The monitor actor: every --monitor-interval it samples the process (RSS
 * from /proc/self/statm read through the reactor, open fds, reactor and
 * scheduler stats, server counters), renders /health JSON and /metrics text
 * once, from one table of figures (monitor.c), and publishes both as
 * immutable chunks. Serving /health is then
 * O(1): take a reference to the latest chunk and send it; no request ever
 * waits on another actor.
 */
#ifndef SL_ACTORS_MONITOR_H
#define SL_ACTORS_MONITOR_H

#include "actors/server.h"
#include "runtime/buf.h"

/* Creates the monitor and renders a first snapshot synchronously (so
 * /health answers from the first connection). Returns 0 or -ENOMEM. */
int sl_monitor_create(sl_server_t *srv, sl_monitor_t **out);
/* Arms the periodic tick. Worker or main thread. */
void sl_monitor_start(sl_monitor_t *m);
/* Stops ticking; the actor frees itself once its last op completes.
 * sl_monitor_wait_stopped blocks (main thread, bounded by timeout_ns)
 * until then; returns 0 or -ETIMEDOUT. */
void sl_monitor_stop(sl_monitor_t *m);
int sl_monitor_wait_stopped(sl_monitor_t *m, uint64_t timeout_ns);
/* Latest rendered snapshot. Returns owned references (release them).
 * The health chunk is the JSON object's members after its live head: the
 * caller writes `{"uptime_s":…,"connections":…,"streams":…,` and then the
 * chunk (sl_monitor_health_head does the first part).
 * Any thread; never blocks on an actor (a mutex held for a pointer swap). */
sl_chunk_t *sl_monitor_health_json(sl_monitor_t *m);
sl_chunk_t *sl_monitor_metrics_text(sl_monitor_t *m);
/* GET /debug/figures: the table of figures as JSON (each /health path with
 * its /metrics family, labels, type and help; arrays marked), or NULL out
 * of memory. The same contract. */
sl_chunk_t *sl_monitor_figures_json(sl_monitor_t *m);
/* Writes the live head of the /health object into buf (cap >= 128).
 * Returns its length. Any thread. */
size_t sl_monitor_health_head(sl_server_t *srv, char *buf, size_t cap);
/* Room the head needs (uptime, counts, the TLS object). */
#define SL_HEALTH_HEAD_BYTES 400
/* True when the latest snapshot said busy. */
bool sl_monitor_busy(sl_monitor_t *m);

#endif
