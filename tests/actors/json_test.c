/*
 * JSON to msgpack conversion (the RPC answers built from the HTTP ones):
 * every JSON type maps to the expected msgpack object, escapes decode,
 * big integers keep their value, and malformed or too deep input fails.
 */
#include <stdio.h>
#include <string.h>

#include <msgpack.h>

#include "actors/json.h"
#include "runtime/base.h"

#include "tests/check.h"

typedef struct conv {
    msgpack_sbuffer sb;
    msgpack_unpacked up;
    int rc;
} conv_t;

static void convert(conv_t *c, const char *json)
{
    msgpack_sbuffer_init(&c->sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &c->sb, msgpack_sbuffer_write);
    c->rc = sl_json_to_msgpack(json, strlen(json), &pk);
    msgpack_unpacked_init(&c->up);
    if (c->rc == 0)
        CHECK(msgpack_unpack_next(&c->up, c->sb.data, c->sb.size, NULL) == MSGPACK_UNPACK_SUCCESS);
}

static void done(conv_t *c)
{
    msgpack_unpacked_destroy(&c->up);
    msgpack_sbuffer_destroy(&c->sb);
}

static const msgpack_object *map_get(const msgpack_object *m, const char *key)
{
    CHECK(m->type == MSGPACK_OBJECT_MAP);
    for (uint32_t i = 0; i < m->via.map.size; i++) {
        const msgpack_object *k = &m->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == strlen(key) &&
            memcmp(k->via.str.ptr, key, k->via.str.size) == 0)
            return &m->via.map.ptr[i].val;
    }
    return NULL;
}

static void test_json_types(void)
{
    conv_t c;
    convert(&c, " {\"u\":18446744073709551615,\"i\":-5,\"d\":0.25,\"t\":true,\"f\":false,"
                "\"n\":null,\"s\":\"a\\\"b\\\\c\\n\\u00e9\\ud83d\\ude00\",\"a\":[1,[],{},\"x\"],"
                "\"e\":{}} ");
    CHECK(c.rc == 0);
    const msgpack_object *o = &c.up.data;
    CHECK(o->type == MSGPACK_OBJECT_MAP && o->via.map.size == 9);
    CHECK(map_get(o, "u")->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
          map_get(o, "u")->via.u64 == UINT64_MAX);
    CHECK(map_get(o, "i")->type == MSGPACK_OBJECT_NEGATIVE_INTEGER && map_get(o, "i")->via.i64 == -5);
    CHECK(map_get(o, "d")->type == MSGPACK_OBJECT_FLOAT64 && map_get(o, "d")->via.f64 == 0.25);
    CHECK(map_get(o, "t")->type == MSGPACK_OBJECT_BOOLEAN && map_get(o, "t")->via.boolean);
    CHECK(map_get(o, "f")->type == MSGPACK_OBJECT_BOOLEAN && !map_get(o, "f")->via.boolean);
    CHECK(map_get(o, "n")->type == MSGPACK_OBJECT_NIL);
    const msgpack_object *s = map_get(o, "s");
    const char want[] = "a\"b\\c\n\xc3\xa9\xf0\x9f\x98\x80";
    CHECK(s->type == MSGPACK_OBJECT_STR && s->via.str.size == sizeof want - 1 &&
          memcmp(s->via.str.ptr, want, sizeof want - 1) == 0);
    const msgpack_object *a = map_get(o, "a");
    CHECK(a->type == MSGPACK_OBJECT_ARRAY && a->via.array.size == 4);
    CHECK(a->via.array.ptr[1].type == MSGPACK_OBJECT_ARRAY && a->via.array.ptr[1].via.array.size == 0);
    CHECK(a->via.array.ptr[2].type == MSGPACK_OBJECT_MAP && a->via.array.ptr[2].via.map.size == 0);
    CHECK(map_get(o, "e")->type == MSGPACK_OBJECT_MAP && map_get(o, "e")->via.map.size == 0);
    done(&c);
}

static void test_json_long_string(void)
{
    static char doc[4000];
    size_t o = (size_t)sprintf(doc, "[\"");
    for (int i = 0; i < 1000; i++)
        doc[o++] = (char)('a' + i % 26);
    strcpy(doc + o, "\"]");
    conv_t c;
    convert(&c, doc);
    CHECK(c.rc == 0);
    CHECK(c.up.data.via.array.ptr[0].via.str.size == 1000);
    done(&c);
}

static void test_json_malformed(void)
{
    const char *bad[] = {"",        "{",        "[1,]",        "{\"a\"}",       "{\"a\":}",
                         "tru",     "\"abc",    "[1 2]",       "{} {}",         "-",
                         "[\"\\x\"]", "99999999999999999999999", "[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]"};
    for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++) {
        conv_t c;
        convert(&c, bad[i]);
        if (c.rc == 0)
            fprintf(stderr, "accepted: %s\n", bad[i]);
        CHECK(c.rc != 0);
        done(&c);
    }
}

int main(void)
{
    test_json_types();
    test_json_long_string();
    test_json_malformed();
    printf("json_test: ok\n");
    return 0;
}
