/*
 * Session ids: the one rule that lets an id become a folder name.
 *
 * API.md: an id is 1..SL_SESSION_ID_MAX bytes of [A-Za-z0-9._-] and does not
 * start with '.'. That makes every valid id a safe single path component:
 * no '/', no NUL, never "." or "..", never hidden. Names in the data dir that
 * start with '.' are therefore free for the store's own files (the manifest,
 * temporary files, folders of deleted sessions awaiting removal) and can
 * never collide with a session. Every path the storage layer builds from an
 * id re-checks it here first ("ids never reach a file path unvalidated").
 */
#ifndef SL_STORAGE_SESSION_ID_H
#define SL_STORAGE_SESSION_ID_H

#include <stdbool.h>
#include <stddef.h>

/* True when the len bytes at id (borrowed; need not be NUL-terminated) are a
 * valid session id. id may be NULL only when len is 0 (false). Any thread. */
bool sl_session_id_valid(const char *id, size_t len);

#endif
