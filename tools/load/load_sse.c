/*
 * SSE stream parser. See load_sse.h for the rules followed.
 */
#include "tools/load/load_sse.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/base.h"

int sl_load_sse_init(sl_load_sse_t *p, size_t limit_bytes, sl_load_sse_event_cb cb, void *ctx)
{
    sl_assert(limit_bytes > 0);
    memset(p, 0, sizeof(*p));
    p->cb = cb;
    p->ctx = ctx;
    p->limit_bytes = limit_bytes;
    /* One byte over the limit so the joining LF always fits. */
    p->line = malloc(limit_bytes);
    p->data = malloc(limit_bytes + 1);
    if (!p->line || !p->data) {
        sl_load_sse_deinit(p);
        return -ENOMEM;
    }
    return 0;
}

void sl_load_sse_deinit(sl_load_sse_t *p)
{
    free(p->line);
    free(p->data);
    p->line = NULL;
    p->data = NULL;
}

static void dispatch(sl_load_sse_t *p)
{
    if (p->has_data) {
        sl_load_sse_event_t ev = {
            .id = p->id, .id_len = p->id_len, .id_in_block = p->id_in_block,
            .type = p->type_len ? p->type : "message",
            .type_len = p->type_len ? p->type_len : 7,
            .data = p->data,
            /* The spec strips the single trailing LF added after the last
             * data line. */
            .data_len = p->data_len ? p->data_len - 1 : 0,
        };
        p->cb(&ev, p->ctx);
    }
    p->has_data = false;
    p->data_len = 0;
    p->type_len = 0;
    p->id_in_block = false;
}

static int field(sl_load_sse_t *p, const char *name, size_t name_len, const char *val,
                 size_t val_len)
{
    if (name_len == 4 && memcmp(name, "data", 4) == 0) {
        if (p->data_len + val_len + 1 > p->limit_bytes + 1)
            return SL_ETOOBIG;
        memcpy(p->data + p->data_len, val, val_len);
        p->data_len += val_len;
        p->data[p->data_len++] = '\n';
        p->has_data = true;
    } else if (name_len == 5 && memcmp(name, "event", 5) == 0) {
        /* Over-long types are truncated: the harness only compares them. */
        size_t n = val_len < SL_LOAD_SSE_TYPE_MAX ? val_len : SL_LOAD_SSE_TYPE_MAX;
        memcpy(p->type, val, n);
        p->type_len = n;
    } else if (name_len == 2 && memcmp(name, "id", 2) == 0) {
        if (memchr(val, '\0', val_len) != NULL)
            return 0;
        size_t n = val_len < SL_LOAD_SSE_ID_MAX ? val_len : SL_LOAD_SSE_ID_MAX;
        memcpy(p->id, val, n);
        p->id_len = n;
        p->id_in_block = true;
    }
    /* retry and unknown fields are ignored, as the spec says. */
    return 0;
}

static int line(sl_load_sse_t *p, const char *s, size_t n)
{
    if (n == 0) {
        dispatch(p);
        return 0;
    }
    if (s[0] == ':') {
        p->comments++;
        return 0;
    }
    const char *colon = memchr(s, ':', n);
    if (!colon)
        return field(p, s, n, "", 0);
    size_t name_len = (size_t)(colon - s);
    const char *val = colon + 1;
    size_t val_len = n - name_len - 1;
    if (val_len && val[0] == ' ') {
        val++;
        val_len--;
    }
    return field(p, s, name_len, val, val_len);
}

/* Consumes a UTF-8 BOM at the very start of the stream, possibly split over
 * chunks. Returns how many bytes of buf it ate. */
static size_t skip_bom(sl_load_sse_t *p, const char *buf, size_t len)
{
    static const unsigned char bom[3] = {0xEF, 0xBB, 0xBF};
    size_t i = 0;
    while (!p->bom_done && i < len) {
        if ((unsigned char)buf[i] != bom[p->bom_seen]) {
            /* Not a BOM after all: the bytes matched so far are content. */
            sl_assert(p->bom_seen == 0 || p->bom_seen < 3);
            memcpy(p->line, bom, p->bom_seen);
            p->line_len = p->bom_seen;
            p->bom_done = true;
            break;
        }
        p->bom_seen++;
        i++;
        if (p->bom_seen == 3) {
            p->bom_done = true;
        }
    }
    return i;
}

static const char *find_eol(const char *s, const char *end)
{
    for (; s < end; s++) {
        if (*s == '\n' || *s == '\r')
            return s;
    }
    return NULL;
}

int sl_load_sse_feed(sl_load_sse_t *p, const char *buf, size_t len)
{
    const char *s = buf + skip_bom(p, buf, len);
    const char *end = buf + len;
    if (p->after_cr && s < end) {
        if (*s == '\n')
            s++;
        p->after_cr = false;
    }
    while (s < end) {
        const char *eol = find_eol(s, end);
        if (!eol) {
            size_t n = (size_t)(end - s);
            if (p->line_len + n > p->limit_bytes)
                return SL_ETOOBIG;
            memcpy(p->line + p->line_len, s, n);
            p->line_len += n;
            return 0;
        }
        int rc;
        if (p->line_len) {
            size_t n = (size_t)(eol - s);
            if (p->line_len + n > p->limit_bytes)
                return SL_ETOOBIG;
            memcpy(p->line + p->line_len, s, n);
            rc = line(p, p->line, p->line_len + n);
            p->line_len = 0;
        } else {
            rc = line(p, s, (size_t)(eol - s));
        }
        if (rc < 0)
            return rc;
        s = eol + 1;
        if (*eol == '\r') {
            if (s == end)
                p->after_cr = true;
            else if (*s == '\n')
                s++;
        }
    }
    return 0;
}
