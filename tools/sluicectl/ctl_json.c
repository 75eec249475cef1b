/*
 * msgpack object → JSON text. See ctl_json.h for the type mapping.
 */
#include "tools/sluicectl/ctl_json.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tools/sluicectl/ctl_text.h"

void sl_ctl_json_string(FILE *f, const char *s, size_t len)
{
    fputc('"', f);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            fputc('\\', f);
            fputc(c, f);
        } else if (c == '\n') {
            fputs("\\n", f);
        } else if (c == '\r') {
            fputs("\\r", f);
        } else if (c == '\t') {
            fputs("\\t", f);
        } else if (c < 0x20 || c == 0x7f) {
            fprintf(f, "\\u%04x", c);
        } else {
            fputc(c, f);
        }
    }
    fputc('"', f);
}

void sl_ctl_json_bytes(FILE *f, const char *s, size_t len)
{
    if (sl_ctl_text_utf8_valid(s, len)) {
        sl_ctl_json_string(f, s, len);
        return;
    }
    fputc('"', f);
    sl_ctl_text_base64(f, s, len);
    fputc('"', f);
}

static void write_double(FILE *f, double d)
{
    if (!isfinite(d)) {
        fputs("null", f);
        return;
    }
    /* The shortest of %.15g..%.17g that reads back as the same double
     * (17 digits always do); integral values keep a ".0" so a reader
     * still sees a float. */
    char buf[40];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, sizeof(buf), "%.*g", prec, d);
        if (strtod(buf, NULL) == d)
            break;
    }
    fputs(buf, f);
    if (!strpbrk(buf, ".eE"))
        fputs(".0", f);
}

static void write_key(FILE *f, const msgpack_object *k)
{
    if (k->type == MSGPACK_OBJECT_STR || k->type == MSGPACK_OBJECT_BIN) {
        sl_ctl_json_write(f, k);
        return;
    }
    /* A JSON object key must be a string: render the key, then quote it. */
    char *text = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);
    if (m) {
        sl_ctl_json_write(m, k);
        fclose(m);
    }
    sl_ctl_json_string(f, text ? text : "", text ? len : 0);
    free(text);
}

void sl_ctl_json_write(FILE *f, const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        fputs("null", f);
        break;
    case MSGPACK_OBJECT_BOOLEAN:
        fputs(o->via.boolean ? "true" : "false", f);
        break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        fprintf(f, "%" PRIu64, o->via.u64);
        break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        fprintf(f, "%" PRId64, o->via.i64);
        break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        write_double(f, o->via.f64);
        break;
    case MSGPACK_OBJECT_STR:
        sl_ctl_json_bytes(f, o->via.str.ptr, o->via.str.size);
        break;
    case MSGPACK_OBJECT_BIN:
        sl_ctl_json_bytes(f, o->via.bin.ptr, o->via.bin.size);
        break;
    case MSGPACK_OBJECT_EXT:
        fprintf(f, "{\"ext_type\":%d,\"data\":\"", (int)o->via.ext.type);
        sl_ctl_text_base64(f, o->via.ext.ptr, o->via.ext.size);
        fputs("\"}", f);
        break;
    case MSGPACK_OBJECT_ARRAY:
        fputc('[', f);
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            if (i)
                fputc(',', f);
            sl_ctl_json_write(f, &o->via.array.ptr[i]);
        }
        fputc(']', f);
        break;
    case MSGPACK_OBJECT_MAP:
        fputc('{', f);
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            if (i)
                fputc(',', f);
            write_key(f, &o->via.map.ptr[i].key);
            fputc(':', f);
            sl_ctl_json_write(f, &o->via.map.ptr[i].val);
        }
        fputc('}', f);
        break;
    }
}
