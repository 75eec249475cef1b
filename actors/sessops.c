/*
 * Session operations shared by every face. See sessops.h.
 */
#include "actors/sessops.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actors/conn_ds.h"
#include "actors/server.h"
#include "runtime/clock.h"
#include "runtime/log.h"

static uint64_t load(const _Atomic uint64_t *v)
{
    return atomic_load_explicit(v, memory_order_relaxed);
}

static bool attrs_empty(const sl_session_attrs_t *a)
{
    return !a || (a->ttl_ns == 0 && a->expires_at_ns == 0 && a->content_type_len == 0 &&
                  a->parent_len == 0);
}

bool sl_sessops_attrs_match(const sl_entry_t *e, const sl_session_attrs_t *attrs)
{
    static const sl_session_attrs_t none;
    const sl_session_attrs_t *a = attrs ? attrs : &none, *b = &e->attrs;
    return a->ttl_ns == b->ttl_ns && a->expires_at_ns == b->expires_at_ns &&
           a->content_type_len == b->content_type_len &&
           memcmp(a->content_type, b->content_type, a->content_type_len) == 0 &&
           a->parent_len == b->parent_len && memcmp(a->parent, b->parent, a->parent_len) == 0 &&
           a->fork_seq == b->fork_seq;
}

/* An expired session: past its absolute expiry, or idle longer than its
 * sliding TTL. */
static bool expired(const sl_entry_t *e, uint64_t now_wall)
{
    const sl_session_attrs_t *a = &e->attrs;
    if (a->expires_at_ns && now_wall >= a->expires_at_ns)
        return true;
    if (a->ttl_ns) {
        uint64_t last = load(&e->stats.last_activity_ns);
        uint64_t since = last ? last : load(&e->stats.created_ns);
        if (since && now_wall >= since && now_wall - since >= a->ttl_ns)
            return true;
    }
    return false;
}

static void remove_entry(sl_server_t *srv, sl_entry_t *e)
{
    if (sl_registry_remove(srv->registry, e) == 0) {
        sl_session_delete(srv, e);
        sl_ds_session_removed(srv, e); /* fork bookkeeping (conn_ds.c) */
    }
}

sl_entry_t *sl_sessops_lookup(sl_server_t *srv, const char *id, size_t len)
{
    sl_entry_t *e = sl_registry_get(srv->registry, id, len);
    if (e && (e->attrs.ttl_ns || e->attrs.expires_at_ns) && expired(e, sl_clock_wall_ns())) {
        remove_entry(srv, e);
        atomic_fetch_add_explicit(&srv->counters.sessions_expired, 1, memory_order_relaxed);
        sl_info("session expired", "session=%.*s", (int)len, id);
        sl_entry_release(e);
        return NULL;
    }
    return e;
}

uint32_t sl_sessops_sweep(sl_server_t *srv)
{
    sl_entry_t *page[256];
    uint32_t seen = 0, deleted = 0;
    uint64_t now = sl_clock_wall_ns();
    while (seen < SL_SWEEP_ENTRIES_PER_TICK) {
        bool more = false;
        uint32_t got = sl_registry_list(srv->registry, srv->sweep_after_len ? srv->sweep_after : NULL,
                                        srv->sweep_after_len, 256, page, &more);
        for (uint32_t i = 0; i < got; i++) {
            sl_entry_t *e = page[i];
            if ((e->attrs.ttl_ns || e->attrs.expires_at_ns) && expired(e, now)) {
                remove_entry(srv, e);
                atomic_fetch_add_explicit(&srv->counters.sessions_expired, 1, memory_order_relaxed);
                sl_info("session expired", "session=%s", e->id);
                deleted++;
            }
            if (i + 1 == got) {
                memcpy(srv->sweep_after, e->id, e->id_len);
                srv->sweep_after_len = e->id_len;
            }
            sl_entry_release(e);
        }
        seen += got;
        if (!more) {
            srv->sweep_after_len = 0; /* the next pass starts over */
            break;
        }
    }
    return deleted;
}

int sl_sessops_create(sl_server_t *srv, const char *id, size_t len, const sl_session_attrs_t *attrs,
                      sl_entry_t **out, bool *created)
{
    *out = NULL;
    *created = false;
    /* An expired one is gone before the create looks. */
    sl_entry_t *old = sl_sessops_lookup(srv, id, len);
    if (old) {
        if (!sl_sessops_attrs_match(old, attrs)) {
            sl_entry_release(old);
            return SL_ECONFLICT;
        }
        *out = old;
        return 0;
    }
    sl_entry_t *parent = NULL;
    if (attrs && attrs->parent_len) {
        parent = sl_sessops_lookup(srv, attrs->parent, attrs->parent_len);
        if (!parent || attrs->fork_seq > load(&parent->stats.last_seq)) {
            if (parent)
                sl_entry_release(parent);
            return SL_ENOTFOUND;
        }
    }
    uint64_t epoch = atomic_fetch_add(&srv->epoch_next, 1);
    sl_entry_t *e;
    bool made;
    int rc = sl_registry_get_or_create_attrs(srv->registry, id, len, epoch, attrs_empty(attrs) ? NULL : attrs,
                                             &e, &made);
    if (rc != 0) {
        if (parent)
            sl_entry_release(parent);
        return rc == -ENOMEM ? -ENOMEM : SL_EFULL;
    }
    if (!made && !sl_sessops_attrs_match(e, attrs)) {
        /* Lost a race against another create with other attributes. */
        if (parent)
            sl_entry_release(parent);
        sl_entry_release(e);
        return SL_ECONFLICT;
    }
    if (made) {
        atomic_store(&e->stats.created_ns, sl_clock_wall_ns());
        if (parent) {
            e->attrs.parent_epoch = parent->epoch;
            atomic_fetch_add(&parent->forks, 1);
            /* The fork's own seqs continue the parent's. */
            atomic_store(&e->stats.last_seq, attrs->fork_seq);
        }
        if (!attrs_empty(attrs)) {
            /* Start the actor now: it writes the attributes down. */
            sl_actor_t *s = sl_session_acquire(srv, e);
            if (s)
                sl_actor_release(s);
        }
    }
    if (parent)
        sl_entry_release(parent);
    *out = e;
    *created = made;
    return 0;
}

int sl_sessops_delete(sl_server_t *srv, const char *id, size_t len)
{
    sl_entry_t *e = sl_registry_get(srv->registry, id, len);
    if (!e)
        return SL_ENOTFOUND;
    remove_entry(srv, e);
    sl_entry_release(e);
    return 0;
}

sl_pub_t *sl_sessops_pub_alloc(uint32_t nevents, size_t buf_bytes)
{
    size_t size = sizeof(sl_pub_t) + nevents * sizeof(sl_pub_event_t) + buf_bytes;
    sl_pub_t *p = calloc(1, size);
    if (!p)
        return NULL;
    p->events = (sl_pub_event_t *)(p + 1);
    p->buf = (uint8_t *)(p->events + nevents);
    p->nevents = nevents;
    return p;
}

int sl_sessops_publish(sl_server_t *srv, sl_actor_t *reply_to, const char *id, size_t len,
                       sl_pub_t *p, bool create)
{
    sl_entry_t *e = NULL;
    int rc;
    if (create) {
        bool created;
        rc = sl_sessops_create(srv, id, len, NULL, &e, &created);
        if (rc == SL_ECONFLICT) /* a publish does not care about attributes */
            rc = (e = sl_sessops_lookup(srv, id, len)) ? 0 : SL_ECLOSED;
    } else {
        e = sl_sessops_lookup(srv, id, len);
        rc = e ? 0 : SL_ENOTFOUND;
    }
    if (rc != 0) {
        free(p);
        return rc == SL_ENOTFOUND ? SL_ENOTFOUND : rc == SL_ECLOSED ? SL_ECLOSED : SL_EFULL;
    }
    sl_actor_t *s = sl_session_acquire(srv, e);
    sl_entry_release(e);
    if (!s) {
        free(p);
        return SL_ECLOSED;
    }
    p->h.kind = SL_SESSION_MSG_PUBLISH;
    p->h.mclass = SL_MSG_NORMAL;
    p->reply_to = reply_to;
    if (p->id_len == 0) {
        memcpy(p->id, id, len);
        p->id_len = (uint32_t)len;
    }
    sl_actor_retain(reply_to);
    rc = 0;
    if (sl_actor_send(s, &p->h) == SL_EFULL) {
        /* Policy at a full session mailbox: explicit overload answer. */
        sl_actor_release(reply_to);
        free(p);
        atomic_fetch_add_explicit(&srv->counters.publish_refused, 1, memory_order_relaxed);
        rc = SL_EAGAIN;
    }
    sl_actor_release(s);
    return rc;
}

bool sl_sessops_closed(const sl_entry_t *e, uint64_t *last_seq)
{
    if (!atomic_load_explicit(&e->closed, memory_order_acquire))
        return false;
    if (last_seq)
        *last_seq = load(&e->closed_seq);
    return true;
}

void sl_sessops_touch(sl_entry_t *e)
{
    if (e->attrs.ttl_ns)
        atomic_store_explicit(&e->stats.last_activity_ns, sl_clock_wall_ns(), memory_order_relaxed);
}

bool sl_sessops_producer_id_valid(const char *s, size_t n)
{
    if (n == 0 || n > SL_PRODUCER_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                  ch == '.' || ch == '_' || ch == ':' || ch == '-';
        if (!ok)
            return false;
    }
    return true;
}

size_t sl_sessops_stats_json(const sl_entry_t *e, char *out, size_t cap)
{
    const sl_session_stats_t *s = &e->stats;
    const sl_session_attrs_t *a = &e->attrs;
    uint64_t closed_seq = 0;
    bool closed = sl_sessops_closed(e, &closed_seq);
    int n = snprintf(out, cap,
                     "{\"id\":\"%s\",\"events\":%" PRIu64 ",\"bytes\":%" PRIu64
                     ",\"first_seq\":%" PRIu64 ",\"last_seq\":%" PRIu64 ",\"subscribers\":%" PRIu32
                     ",\"created_ns\":%" PRIu64 ",\"last_activity_ns\":%" PRIu64
                     ",\"epoch\":%" PRIu64 ",\"closed\":%s",
                     e->id, load(&s->events), load(&s->bytes), load(&s->first_seq),
                     load(&s->last_seq), atomic_load_explicit(&s->subscribers, memory_order_relaxed),
                     load(&s->created_ns), load(&s->last_activity_ns), e->epoch,
                     closed ? "true" : "false");
    if (n <= 0 || (size_t)n >= cap)
        return 0;
    size_t o = (size_t)n;
#define ADD(...)                                                   \
    do {                                                           \
        int k_ = snprintf(out + o, cap - o, __VA_ARGS__);          \
        if (k_ <= 0 || (size_t)k_ >= cap - o)                      \
            return 0;                                              \
        o += (size_t)k_;                                           \
    } while (0)
    if (a->ttl_ns)
        ADD(",\"ttl_s\":%" PRIu64, (uint64_t)(a->ttl_ns / SL_NS_PER_S));
    if (a->expires_at_ns)
        ADD(",\"expires_at_ns\":%" PRIu64, a->expires_at_ns);
    if (a->content_type_len) {
        /* Content types are validated token/param characters: no escaping needed
         * beyond quotes and backslashes, which the validation refuses. */
        ADD(",\"content_type\":\"%.*s\"", (int)a->content_type_len, a->content_type);
    }
    if (a->parent_len)
        ADD(",\"forked_from\":\"%.*s\",\"fork_seq\":%" PRIu64, (int)a->parent_len, a->parent,
            a->fork_seq);
    ADD("}");
#undef ADD
    return o;
}

static int digits(const char *s, size_t n, size_t at, size_t count, int *out)
{
    if (at + count > n)
        return -1;
    int v = 0;
    for (size_t i = at; i < at + count; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian; Howard Hinnant's
 * days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

int sl_sessops_parse_rfc3339(const char *s, size_t n, uint64_t *ns)
{
    int y, mo, d, h, mi, se;
    if (digits(s, n, 0, 4, &y) || n < 19 || s[4] != '-' || digits(s, n, 5, 2, &mo) || s[7] != '-' ||
        digits(s, n, 8, 2, &d) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
        digits(s, n, 11, 2, &h) || s[13] != ':' || digits(s, n, 14, 2, &mi) || s[16] != ':' ||
        digits(s, n, 17, 2, &se))
        return SL_EINVAL;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60)
        return SL_EINVAL;
    size_t i = 19;
    uint64_t frac = 0, scale = SL_NS_PER_S;
    if (i < n && s[i] == '.') {
        i++;
        size_t start = i;
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            if (scale > 1) {
                scale /= 10;
                frac += (uint64_t)(s[i] - '0') * scale;
            }
            i++;
        }
        if (i == start)
            return SL_EINVAL;
    }
    int64_t off = 0;
    if (i < n && (s[i] == 'Z' || s[i] == 'z')) {
        i++;
    } else if (i < n && (s[i] == '+' || s[i] == '-')) {
        int oh, om;
        if (digits(s, n, i + 1, 2, &oh) || i + 3 >= n || s[i + 3] != ':' ||
            digits(s, n, i + 4, 2, &om) || oh > 23 || om > 59)
            return SL_EINVAL;
        off = (int64_t)(oh * 60 + om) * 60 * (s[i] == '+' ? 1 : -1);
        i += 6;
    } else {
        return SL_EINVAL;
    }
    if (i != n)
        return SL_EINVAL;
    int64_t secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + (se > 59 ? 59 : se) - off;
    if (secs < 0)
        return SL_EINVAL;
    *ns = (uint64_t)secs * SL_NS_PER_S + frac;
    return 0;
}

int sl_sessops_parse_ttl(const char *s, size_t n, uint64_t *ns)
{
    uint64_t whole = 0, frac = 0, scale = SL_NS_PER_S;
    size_t i = 0;
    if (n == 0 || n > 24)
        return SL_EINVAL;
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++)
        whole = whole * 10 + (uint64_t)(s[i] - '0');
    if (i == 0)
        return SL_EINVAL;
    if (i < n && s[i] == '.') {
        size_t start = ++i;
        for (; i < n && s[i] >= '0' && s[i] <= '9'; i++)
            if (scale > 1) {
                scale /= 10;
                frac += (uint64_t)(s[i] - '0') * scale;
            }
        if (i == start)
            return SL_EINVAL;
    }
    if (i != n || whole > SL_TTL_MAX_S || (whole == 0 && frac == 0))
        return SL_EINVAL;
    *ns = whole * SL_NS_PER_S + frac;
    return 0;
}
