/*
 * Address ranges (CIDR) given on the command line, matched against a peer's
 * address. Used by --per-ip-exempt: the addresses --max-connections-per-ip
 * does not count (a reverse proxy carries every client through one
 * address, so counting it would cap the whole service at the limit).
 *
 * Text: comma-separated items, each an IPv4 or IPv6 address with an
 * optional /prefix (a bare address is /32 or /128), or one of the words
 *   loopback   127.0.0.0/8 and ::1
 *   none       nothing (also the empty text)
 * Spaces around items are allowed. IPv4 ranges also match the IPv4-mapped
 * IPv6 form (::ffff:a.b.c.d), which is how the accept path sees every IPv4
 * peer. At most SL_CIDR_LIST_MAX ranges (policy at the bound: the flag is
 * refused at start, exit 2).
 *
 * Parsed once at start; matching is pure (no I/O, no allocation).
 */
#ifndef SL_NET_CIDR_H
#define SL_NET_CIDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/limits.h"

typedef struct sl_cidr {
    uint8_t addr[16]; /* IPv6 form; IPv4 as ::ffff:a.b.c.d */
    uint8_t bits;     /* prefix length over the 16 bytes (IPv4 /n: 96 + n) */
} sl_cidr_t;

typedef struct sl_cidr_list {
    uint32_t n;
    sl_cidr_t items[SL_CIDR_LIST_MAX];
} sl_cidr_list_t;

/* Parses text into out. Returns 0, or -1 with a message naming the bad
 * item in err (n bytes). */
int sl_cidr_parse(sl_cidr_list_t *out, const char *text, char *err, size_t n);

/* Whether addr (16 bytes, IPv6 form) is inside any range of the list. */
bool sl_cidr_match(const sl_cidr_list_t *list, const uint8_t addr[16]);

#endif
