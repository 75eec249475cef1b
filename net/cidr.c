/* Address ranges: see net/cidr.h. */
#include "net/cidr.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "runtime/base.h"

/* Longest item text: an IPv6 address with an IPv4 tail and a prefix. */
#define CIDR_ITEM_MAX (INET6_ADDRSTRLEN + 4)

static int add(sl_cidr_list_t *out, const uint8_t addr[16], unsigned bits, char *err, size_t n)
{
    if (out->n >= SL_CIDR_LIST_MAX) {
        snprintf(err, n, "more than %u address ranges", (unsigned)SL_CIDR_LIST_MAX);
        return -1;
    }
    sl_cidr_t *c = &out->items[out->n++];
    memcpy(c->addr, addr, 16);
    c->bits = (uint8_t)bits;
    /* Host bits past the prefix are cleared, so 10.1.2.3/8 is 10.0.0.0/8. */
    for (unsigned i = bits; i < 128; i++)
        c->addr[i / 8] &= (uint8_t) ~(0x80u >> (i % 8));
    return 0;
}

static void v4_mapped(uint8_t out[16], const uint8_t v4[4])
{
    memset(out, 0, 10);
    out[10] = out[11] = 0xff;
    memcpy(out + 12, v4, 4);
}

static int parse_item(sl_cidr_list_t *out, const char *s, size_t len, char *err, size_t n)
{
    if (len == 8 && memcmp(s, "loopback", 8) == 0) {
        static const uint8_t lo4[4] = {127, 0, 0, 0};
        uint8_t a[16];
        v4_mapped(a, lo4);
        if (add(out, a, 96 + 8, err, n) != 0)
            return -1;
        memset(a, 0, 16);
        a[15] = 1;
        return add(out, a, 128, err, n);
    }
    if (len == 4 && memcmp(s, "none", 4) == 0)
        return 0;
    char item[CIDR_ITEM_MAX + 1];
    if (len > CIDR_ITEM_MAX)
        goto bad;
    memcpy(item, s, len);
    item[len] = '\0';
    char *slash = strchr(item, '/');
    long prefix = -1;
    if (slash) {
        *slash = '\0';
        const char *p = slash + 1;
        if (!*p || strlen(p) > 3)
            goto bad;
        prefix = 0;
        for (; *p; p++) {
            if (*p < '0' || *p > '9')
                goto bad;
            prefix = prefix * 10 + (*p - '0');
        }
    }
    uint8_t a[16], v4[4];
    if (inet_pton(AF_INET, item, v4) == 1) {
        if (prefix > 32)
            goto bad;
        v4_mapped(a, v4);
        return add(out, a, 96 + (unsigned)(prefix < 0 ? 32 : prefix), err, n);
    }
    if (inet_pton(AF_INET6, item, a) == 1) {
        if (prefix > 128)
            goto bad;
        return add(out, a, (unsigned)(prefix < 0 ? 128 : prefix), err, n);
    }
bad:
    snprintf(err, n, "expected an address range (ADDRESS[/PREFIX], loopback or none), got \"%.*s\"",
             (int)(len > 64 ? 64 : len), s);
    return -1;
}

int sl_cidr_parse(sl_cidr_list_t *out, const char *text, char *err, size_t n)
{
    sl_assert(out != NULL);
    memset(out, 0, sizeof *out);
    if (!text)
        return 0;
    const char *p = text;
    for (;;) {
        while (*p == ' ')
            p++;
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        while (len > 0 && p[len - 1] == ' ')
            len--;
        if (len == 0) {
            if (end || p != text + strspn(text, " ")) { /* an empty item between commas */
                snprintf(err, n, "empty item in the address range list \"%.64s\"", text);
                return -1;
            }
        } else if (parse_item(out, p, len, err, n) != 0) {
            return -1;
        }
        if (!end)
            return 0;
        p = end + 1;
    }
}

bool sl_cidr_match(const sl_cidr_list_t *list, const uint8_t addr[16])
{
    for (uint32_t k = 0; k < list->n; k++) {
        const sl_cidr_t *c = &list->items[k];
        unsigned full = c->bits / 8, rest = c->bits % 8;
        if (memcmp(c->addr, addr, full) != 0)
            continue;
        if (rest && ((c->addr[full] ^ addr[full]) & (uint8_t)(0xff00u >> rest)) != 0)
            continue;
        return true;
    }
    return false;
}
