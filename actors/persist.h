/*
 * Startup recovery and manifests (see persist.c). Main thread only.
 */
#ifndef SL_ACTORS_PERSIST_H
#define SL_ACTORS_PERSIST_H

#include <stdbool.h>

#include "actors/server.h"

/* Opens the data dir, recovers every session into the registry and
 * rewrites the manifest dirty. Returns 0 or a negative error (logged). */
int sl_persist_startup(sl_server_t *srv);
/* Writes the manifest; entries of sessions not running are marked clean
 * when clean is true. Returns 0 or a negative error (logged). */
int sl_persist_write_manifest(sl_server_t *srv, bool clean);
/* Final manifest, closes the data dir and the fd cache. */
void sl_persist_shutdown(sl_server_t *srv);

#endif
