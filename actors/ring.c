/*
 * Event ring. See ring.h.
 */
#include "actors/ring.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

typedef struct page {
    sl_chunk_t *chunk;
    uint64_t base;      /* stream position of byte 0 */
    uint64_t first_seq; /* seq of event 0 */
    uint32_t len;       /* published bytes */
    uint32_t nevents;   /* published events */
    uint32_t cap_events; /* offsets[] length: page bytes / 32, 16..SL_RING_PAGE_EVENTS */
    uint32_t offsets[];
} page_t;

struct sl_ring {
    pthread_mutex_t lock; /* guards everything below except `reserved` */
    page_t *pages[SL_RING_PAGES_MAX];
    uint64_t first_page; /* page number of the oldest kept page */
    uint64_t npages;     /* kept pages: first_page .. first_page+npages-1 */
    uint64_t bytes;      /* capacity of kept pages */
    uint64_t bytes_max;
    uint32_t page_bytes;
    uint32_t next_page_bytes; /* grows from SL_RING_FIRST_PAGE_BYTES to page_bytes */
    uint64_t next_seq;
    uint64_t tail_pos;
    uint64_t visible_pos; /* readers stop here (<= tail_pos) */
    uint64_t visible_seq; /* last seq readers may see */
    bool auto_visible;    /* commit also publishes */
    uint64_t first_seq;  /* oldest seq kept */
    page_t *reserved;    /* writer only: page holding the reservation */
};

static page_t *page_at(sl_ring_t *r, uint64_t page_no)
{
    return r->pages[page_no % SL_RING_PAGES_MAX];
}

int sl_ring_create(uint64_t bytes_max, uint32_t page_bytes, uint64_t first_seq, sl_ring_t **out)
{
    if (page_bytes < 256 || bytes_max < page_bytes || first_seq == 0)
        return SL_EINVAL;
    sl_ring_t *r = calloc(1, sizeof *r);
    if (!r)
        return -ENOMEM;
    pthread_mutex_init(&r->lock, NULL);
    r->bytes_max = bytes_max;
    r->page_bytes = page_bytes;
    /* Small first pages: a session with a handful of events (thousands of
     * such sessions are normal) holds kilobytes, not a full page. */
    r->next_page_bytes = page_bytes < SL_RING_FIRST_PAGE_BYTES ? page_bytes : SL_RING_FIRST_PAGE_BYTES;
    r->next_seq = r->first_seq = first_seq;
    r->visible_seq = first_seq - 1;
    r->auto_visible = true;
    *out = r;
    return 0;
}

static void page_free(page_t *p)
{
    sl_chunk_release(p->chunk);
    free(p);
}

void sl_ring_destroy(sl_ring_t *r)
{
    if (!r)
        return;
    for (uint64_t i = 0; i < r->npages; i++)
        page_free(page_at(r, r->first_page + i));
    pthread_mutex_destroy(&r->lock);
    free(r);
}

/* Drops the oldest page. Caller holds the lock. */
static void evict_one(sl_ring_t *r)
{
    page_t *p = page_at(r, r->first_page);
    r->pages[r->first_page % SL_RING_PAGES_MAX] = NULL;
    r->first_page++;
    r->npages--;
    r->bytes -= p->chunk->cap;
    r->first_seq = p->first_seq + p->nevents;
    page_free(p);
}

static page_t *tail_page(sl_ring_t *r)
{
    return r->npages ? page_at(r, r->first_page + r->npages - 1) : NULL;
}

uint8_t *sl_ring_reserve(sl_ring_t *r, uint32_t len)
{
    page_t *t = tail_page(r);
    if (t && t->nevents < t->cap_events && t->chunk->cap - t->len >= len) {
        r->reserved = t;
        return t->chunk->data + t->len;
    }
    uint32_t cap = len > r->next_page_bytes ? len : r->next_page_bytes;
    uint32_t cap_events = cap / 32;
    cap_events = cap_events < 16 ? 16 : cap_events > SL_RING_PAGE_EVENTS ? SL_RING_PAGE_EVENTS : cap_events;
    page_t *p = calloc(1, sizeof *p + cap_events * sizeof p->offsets[0]);
    if (r->next_page_bytes < r->page_bytes)
        r->next_page_bytes = r->next_page_bytes * 2 < r->page_bytes ? r->next_page_bytes * 2
                                                                    : r->page_bytes;
    sl_chunk_t *c = p ? sl_chunk_create_as(cap, SL_BUDGET_RING) : NULL;
    if (!c) {
        free(p);
        return NULL;
    }
    /* chunk->len covers the whole page from the start: slices are bounded
     * by the published page length instead, and len never changes while
     * readers hold the chunk (no race on it). */
    c->len = cap;
    p->chunk = c;
    p->cap_events = cap_events;
    p->base = r->tail_pos;
    p->first_seq = r->next_seq;
    pthread_mutex_lock(&r->lock);
    /* Keep the bound: evict before adding (never the page being added). */
    while (r->npages > 0 &&
           (r->bytes + cap > r->bytes_max || r->npages >= SL_RING_PAGES_MAX))
        evict_one(r);
    r->pages[(r->first_page + r->npages) % SL_RING_PAGES_MAX] = p;
    if (r->npages == 0)
        r->first_seq = p->first_seq;
    r->npages++;
    r->bytes += cap;
    pthread_mutex_unlock(&r->lock);
    r->reserved = p;
    return c->data;
}

void sl_ring_commit(sl_ring_t *r, uint64_t seq, uint32_t len)
{
    page_t *p = r->reserved;
    sl_assert(p != NULL);
    sl_assert(seq == r->next_seq);
    sl_assert(p->chunk->cap - p->len >= len);
    r->reserved = NULL;
    pthread_mutex_lock(&r->lock);
    p->offsets[p->nevents++] = p->len;
    p->len += len;
    r->next_seq = seq + 1;
    r->tail_pos += len;
    if (r->auto_visible) {
        r->visible_pos = r->tail_pos;
        r->visible_seq = seq;
    }
    pthread_mutex_unlock(&r->lock);
}

/* Index of the kept page containing pos, or -1 when pos is older than the
 * oldest kept byte. pos == tail is "the tail page" (or -2 when empty).
 * Caller holds the lock. */
static int64_t find_page(sl_ring_t *r, uint64_t pos)
{
    if (r->npages == 0)
        return -2;
    page_t *first = page_at(r, r->first_page);
    if (pos < first->base)
        return -1;
    uint64_t lo = 0, hi = r->npages - 1;
    while (lo < hi) { /* last page with base <= pos */
        uint64_t mid = (lo + hi + 1) / 2;
        if (page_at(r, r->first_page + mid)->base <= pos)
            lo = mid;
        else
            hi = mid - 1;
    }
    return (int64_t)lo;
}

int sl_ring_seek(sl_ring_t *r, uint64_t seq, uint64_t *pos)
{
    int rc = 0;
    pthread_mutex_lock(&r->lock);
    if (seq >= r->next_seq) {
        *pos = r->tail_pos;
        rc = SL_EAGAIN;
    } else if (seq < r->first_seq || r->npages == 0) {
        rc = SL_ENOTFOUND;
    } else {
        uint64_t lo = 0, hi = r->npages - 1;
        while (lo < hi) { /* last page whose first_seq <= seq */
            uint64_t mid = (lo + hi + 1) / 2;
            if (page_at(r, r->first_page + mid)->first_seq <= seq)
                lo = mid;
            else
                hi = mid - 1;
        }
        page_t *p = page_at(r, r->first_page + lo);
        *pos = p->base + p->offsets[seq - p->first_seq];
    }
    pthread_mutex_unlock(&r->lock);
    return rc;
}

/* Counts events of p that end within (from, to] (page-relative). */
static void count_completed(const page_t *p, uint32_t from, uint32_t to, sl_ring_read_t *res)
{
    /* Event i ends where event i+1 starts (the last ends at p->len). */
    uint32_t lo = 0, hi = p->nevents; /* first event whose end > from */
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        uint32_t end = mid + 1 < p->nevents ? p->offsets[mid + 1] : p->len;
        if (end > from)
            hi = mid;
        else
            lo = mid + 1;
    }
    for (uint32_t i = lo; i < p->nevents; i++) {
        uint32_t end = i + 1 < p->nevents ? p->offsets[i + 1] : p->len;
        if (end > to)
            break;
        res->events_completed++;
        res->last_seq_completed = p->first_seq + i;
    }
}

/* End (page-relative) of the first event ending after from, and of the
 * last event ending at or before lim (0 when none). */
static uint32_t event_end_after(const page_t *p, uint32_t from)
{
    uint32_t lo = 0, hi = p->nevents;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        uint32_t end = mid + 1 < p->nevents ? p->offsets[mid + 1] : p->len;
        if (end > from)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo + 1 < p->nevents ? p->offsets[lo + 1] : p->len;
}

static uint32_t event_end(const page_t *p, uint32_t i)
{
    return i + 1 < p->nevents ? p->offsets[i + 1] : p->len;
}

static uint32_t event_end_within(const page_t *p, uint32_t from, uint32_t lim)
{
    uint32_t lo = 0, hi = p->nevents; /* first event whose end > lim */
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (event_end(p, mid) > lim)
            hi = mid;
        else
            lo = mid + 1;
    }
    if (lo == 0)
        return 0;
    uint32_t end = event_end(p, lo - 1);
    return end > from ? end : 0;
}

int sl_ring_readable(sl_ring_t *r, uint64_t pos, uint64_t *avail)
{
    pthread_mutex_lock(&r->lock);
    int64_t idx = find_page(r, pos);
    int rc = idx == -1 || pos > r->tail_pos ? SL_ENOTFOUND : 0;
    *avail = rc == 0 && pos < r->visible_pos ? r->visible_pos - pos : 0;
    pthread_mutex_unlock(&r->lock);
    return rc;
}

int sl_ring_read(sl_ring_t *r, uint64_t pos, uint64_t max_bytes, bool whole_events,
                 sl_ring_slice_t *out, uint32_t max_slices, sl_ring_read_t *res)
{
    *res = (sl_ring_read_t){.end_pos = pos};
    pthread_mutex_lock(&r->lock);
    int64_t idx = find_page(r, pos);
    if (idx == -1 || pos > r->tail_pos) {
        pthread_mutex_unlock(&r->lock);
        return SL_ENOTFOUND;
    }
    max_bytes = pos >= r->visible_pos ? 0 : (r->visible_pos - pos < max_bytes ? r->visible_pos - pos : max_bytes);
    for (uint64_t i = idx < 0 ? r->npages : (uint64_t)idx;
         i < r->npages && res->nslices < max_slices && max_bytes > 0; i++) {
        page_t *p = page_at(r, r->first_page + i);
        uint32_t from = (uint32_t)(pos - p->base);
        if (from >= p->len)
            continue;
        uint32_t n = p->len - from;
        bool clamped = false;
        if (n > max_bytes) {
            n = (uint32_t)max_bytes;
            clamped = true;
        }
        if (whole_events && clamped) {
            uint32_t end = event_end_within(p, from, from + n);
            if (end == 0 && res->nslices > 0)
                break; /* the next event does not fit: stop before it */
            n = (end ? end : event_end_after(p, from)) - from;
        }
        sl_chunk_retain(p->chunk);
        out[res->nslices++] = (sl_ring_slice_t){p->chunk, from, n};
        count_completed(p, from, from + n, res);
        pos += n;
        max_bytes = n >= max_bytes ? 0 : max_bytes - n;
        if (clamped)
            break;
    }
    res->end_pos = pos;
    pthread_mutex_unlock(&r->lock);
    return 0;
}

/* Index (in p) of the event starting at page offset from, or -1. */
static int64_t event_at(const page_t *p, uint32_t from)
{
    uint32_t lo = 0, hi = p->nevents;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (p->offsets[mid] < from)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < p->nevents && p->offsets[lo] == from ? (int64_t)lo : -1;
}

int sl_ring_read_events(sl_ring_t *r, uint64_t pos, uint64_t max_bytes, sl_ring_event_t *out,
                        uint32_t max_events, uint32_t *nout)
{
    *nout = 0;
    pthread_mutex_lock(&r->lock);
    int64_t idx = find_page(r, pos);
    if (idx == -1 || pos > r->tail_pos) {
        pthread_mutex_unlock(&r->lock);
        return SL_ENOTFOUND;
    }
    uint64_t taken = 0;
    for (uint64_t i = idx < 0 ? r->npages : (uint64_t)idx; i < r->npages; i++) {
        page_t *p = page_at(r, r->first_page + i);
        if (pos < p->base || pos - p->base >= p->len)
            continue;
        int64_t ev = event_at(p, (uint32_t)(pos - p->base));
        sl_assert(ev >= 0); /* readers hold event starts only */
        for (uint32_t e = (uint32_t)ev; e < p->nevents && *nout < max_events; e++) {
            uint32_t off = p->offsets[e], len = event_end(p, e) - off;
            if (p->base + off + len > r->visible_pos || (*nout > 0 && taken + len > max_bytes)) {
                pthread_mutex_unlock(&r->lock);
                return 0;
            }
            sl_chunk_retain(p->chunk);
            out[(*nout)++] = (sl_ring_event_t){p->chunk, off, len, p->first_seq + e};
            taken += len;
            pos = p->base + off + len;
        }
        if (*nout >= max_events)
            break;
    }
    pthread_mutex_unlock(&r->lock);
    return 0;
}

void sl_ring_set_auto_visible(sl_ring_t *r, bool on)
{
    pthread_mutex_lock(&r->lock);
    r->auto_visible = on;
    pthread_mutex_unlock(&r->lock);
}

void sl_ring_set_visible(sl_ring_t *r, uint64_t seq)
{
    pthread_mutex_lock(&r->lock);
    sl_assert(seq < r->next_seq);
    if (seq > r->visible_seq) {
        uint64_t pos = r->tail_pos;
        if (seq + 1 < r->next_seq) {
            /* End of event seq = start of seq+1 (always kept: newer than
             * anything visible, and eviction only drops older pages). */
            uint64_t lo = 0, hi = r->npages - 1;
            while (lo < hi) {
                uint64_t mid = (lo + hi + 1) / 2;
                if (page_at(r, r->first_page + mid)->first_seq <= seq + 1)
                    lo = mid;
                else
                    hi = mid - 1;
            }
            page_t *p = page_at(r, r->first_page + lo);
            pos = p->base + p->offsets[seq + 1 - p->first_seq];
        }
        r->visible_pos = pos;
        r->visible_seq = seq;
    }
    pthread_mutex_unlock(&r->lock);
}

uint64_t sl_ring_visible_seq(sl_ring_t *r)
{
    pthread_mutex_lock(&r->lock);
    uint64_t v = r->visible_seq;
    pthread_mutex_unlock(&r->lock);
    return v;
}

#define LOCKED_GET(r, field)                                                 \
    do {                                                                     \
        pthread_mutex_lock(&(r)->lock);                                      \
        uint64_t v_ = (r)->field;                                            \
        pthread_mutex_unlock(&(r)->lock);                                    \
        return v_;                                                           \
    } while (0)

uint64_t sl_ring_next_seq(sl_ring_t *r) { LOCKED_GET(r, next_seq); }
uint64_t sl_ring_tail_pos(sl_ring_t *r) { LOCKED_GET(r, tail_pos); }
uint64_t sl_ring_first_seq(sl_ring_t *r) { LOCKED_GET(r, first_seq); }
uint64_t sl_ring_bytes(sl_ring_t *r) { LOCKED_GET(r, bytes); }
