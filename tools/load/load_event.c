/*
 * Event payload codec. See load_event.h.
 */
#include "tools/load/load_event.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "runtime/base.h"

int sl_load_event_format(char *out, size_t size, const sl_load_event_t *ev)
{
    char head[SL_LOAD_EVENT_HEAD_MAX];
    int n = snprintf(head, sizeof(head), "t=%" PRIu64 " p=%" PRIu32 " n=%" PRIu64 " s=%" PRIu64 " ",
                     ev->intended_ns, ev->publisher, ev->n, ev->send_delay_ns);
    sl_assert(n > 0 && (size_t)n < sizeof(head));
    if ((size_t)n > size)
        return SL_ETOOBIG;
    memcpy(out, head, (size_t)n);
    memset(out + n, '.', size - (size_t)n);
    return (int)size;
}

int sl_load_parse_u64(const char *s, size_t len, uint64_t *out)
{
    if (len == 0 || len > 20)
        return SL_EPROTO;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned d = (unsigned)(s[i] - '0');
        if (d > 9)
            return SL_EPROTO;
        if (v > (UINT64_MAX - d) / 10)
            return SL_EPROTO;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

/* Reads "<key>=<digits> " at *s; advances *s past the space. */
static int take(const char **s, const char *end, char key, uint64_t *out)
{
    const char *p = *s;
    if (end - p < 3 || p[0] != key || p[1] != '=')
        return SL_EPROTO;
    p += 2;
    const char *sp = memchr(p, ' ', (size_t)(end - p));
    if (!sp)
        return SL_EPROTO;
    int rc = sl_load_parse_u64(p, (size_t)(sp - p), out);
    *s = sp + 1;
    return rc;
}

int sl_load_event_parse(const char *data, size_t len, sl_load_event_t *out)
{
    const char *s = data;
    const char *end = data + len;
    uint64_t t, p, n;
    if (take(&s, end, 't', &t) < 0 || take(&s, end, 'p', &p) < 0 || take(&s, end, 'n', &n) < 0)
        return SL_EPROTO;
    if (p > UINT32_MAX)
        return SL_EPROTO;
    uint64_t d = 0;
    if (s < end && *s == 's' && take(&s, end, 's', &d) < 0)
        return SL_EPROTO;
    out->send_delay_ns = d;
    out->intended_ns = t;
    out->publisher = (uint32_t)p;
    out->n = n;
    return 0;
}
