/*
 * Tests for net/cidr: parsing --per-ip-exempt (ranges, bare addresses,
 * the loopback and none words, spaces, every kind of bad item, the bound)
 * and matching peers in the accept path's IPv6 form (IPv4 as
 * ::ffff:a.b.c.d) at and around each prefix's edge.
 */
#include "net/cidr.h"

#include <arpa/inet.h>

#include "tests/net/net_test_util.h"

/* A peer address as the accept path holds it. */
static void peer(const char *text, uint8_t out[16])
{
    uint8_t v4[4];
    if (inet_pton(AF_INET, text, v4) == 1) {
        memset(out, 0, 10);
        out[10] = out[11] = 0xff;
        memcpy(out + 12, v4, 4);
        return;
    }
    CHECK_EQ_INT(inet_pton(AF_INET6, text, out), 1);
}

static bool in(const sl_cidr_list_t *l, const char *text)
{
    uint8_t a[16];
    peer(text, a);
    return sl_cidr_match(l, a);
}

static void test_cidr_parse(void)
{
    sl_cidr_list_t l;
    char err[256];
    CHECK_EQ_INT(sl_cidr_parse(&l, "", err, sizeof err), 0);
    CHECK_EQ_INT(l.n, 0);
    CHECK_EQ_INT(sl_cidr_parse(&l, NULL, err, sizeof err), 0);
    CHECK_EQ_INT(l.n, 0);
    CHECK_EQ_INT(sl_cidr_parse(&l, "none", err, sizeof err), 0);
    CHECK_EQ_INT(l.n, 0);
    CHECK_EQ_INT(sl_cidr_parse(&l, "loopback", err, sizeof err), 0);
    CHECK_EQ_INT(l.n, 2);
    CHECK_EQ_INT(sl_cidr_parse(&l, " 10.0.0.0/8 , fd00::/8,192.0.2.7, ::1", err, sizeof err), 0);
    CHECK_EQ_INT(l.n, 4);
    CHECK_EQ_INT(l.items[0].bits, 96 + 8);
    CHECK_EQ_INT(l.items[2].bits, 128); /* a bare IPv4 address is /32 */
    CHECK_EQ_INT(l.items[3].bits, 128);
    static const char *bad[] = {
        "10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0.0/x", "10.0.0.0/-1", "10.0.0.0/1234",
        "10.0.0", "example.com", "10.0.0.0/8,", ",10.0.0.0/8", "10.0.0.0/8,,::1", "loopback6",
        "1.2.3.4 5.6.7.8", "0123456789012345678901234567890123456789012345678901234567890123456789",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        CHECK_EQ_INT(sl_cidr_parse(&l, bad[i], err, sizeof err), -1);
        CHECK(err[0] != '\0');
    }
    /* The bound: SL_CIDR_LIST_MAX ranges parse, one more is refused. */
    char many[SL_CIDR_LIST_MAX * 16 + 16];
    size_t off = 0;
    for (unsigned i = 0; i < SL_CIDR_LIST_MAX; i++)
        off += (size_t)snprintf(many + off, sizeof many - off, "%s10.%u.0.0/16", i ? "," : "", i);
    CHECK_EQ_INT(sl_cidr_parse(&l, many, err, sizeof err), 0);
    CHECK_EQ_INT(l.n, SL_CIDR_LIST_MAX);
    snprintf(many + off, sizeof many - off, ",192.0.2.1");
    CHECK_EQ_INT(sl_cidr_parse(&l, many, err, sizeof err), -1);
    CHECK(strstr(err, "more than") != NULL);
}

static void test_cidr_match(void)
{
    sl_cidr_list_t l;
    char err[256];
    CHECK_EQ_INT(sl_cidr_parse(&l, "loopback", err, sizeof err), 0);
    CHECK(in(&l, "127.0.0.1"));
    CHECK(in(&l, "127.255.255.254"));
    CHECK(in(&l, "::1"));
    CHECK(!in(&l, "128.0.0.1"));
    CHECK(!in(&l, "126.255.255.255"));
    CHECK(!in(&l, "::2"));
    CHECK(!in(&l, "10.0.0.1"));
    /* Host bits past the prefix do not matter; the edges do. */
    CHECK_EQ_INT(sl_cidr_parse(&l, "10.1.2.3/8, 192.168.4.0/22, 2001:db8:8000::/33", err,
                               sizeof err), 0);
    CHECK(in(&l, "10.0.0.0"));
    CHECK(in(&l, "10.255.255.255"));
    CHECK(!in(&l, "11.0.0.0"));
    CHECK(!in(&l, "9.255.255.255"));
    CHECK(in(&l, "192.168.4.0"));
    CHECK(in(&l, "192.168.7.255"));
    CHECK(!in(&l, "192.168.8.0"));
    CHECK(!in(&l, "192.168.3.255"));
    CHECK(in(&l, "2001:db8:8000::1"));
    CHECK(in(&l, "2001:db8:ffff:ffff::"));
    CHECK(!in(&l, "2001:db8:7fff:ffff::"));
    CHECK(!in(&l, "2001:db9::"));
    /* An IPv4 range does not match an IPv6 peer with the same low bytes. */
    CHECK(!in(&l, "::a00:1"));
    /* /0 matches everything of its family (the mapped form is one /96). */
    CHECK_EQ_INT(sl_cidr_parse(&l, "0.0.0.0/0", err, sizeof err), 0);
    CHECK(in(&l, "203.0.113.9"));
    CHECK(!in(&l, "2001:db8::1"));
    CHECK_EQ_INT(sl_cidr_parse(&l, "::/0", err, sizeof err), 0);
    CHECK(in(&l, "2001:db8::1"));
    CHECK(in(&l, "203.0.113.9"));
    CHECK_EQ_INT(sl_cidr_parse(&l, "none", err, sizeof err), 0);
    CHECK(!in(&l, "127.0.0.1"));
}

int main(void)
{
    test_cidr_parse();
    test_cidr_match();
    printf("cidr_test: ok\n");
    return 0;
}
