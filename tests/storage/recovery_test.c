/*
 * Recovery tests: segment scans (clean, torn at every offset of the last
 * record, bit flips in the middle, seq rules, header damage, chunked
 * feeding), truncation of a real file with its log line, and session and
 * data-dir recovery with no manifest, clean and dirty entries, stale and
 * corrupt manifests.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/log.h"
#include "storage/recovery.h"
#include "storage/seqmark.h"

#include "tests/check.h"

#define DMAX 4096u
#define EPOCH 0x5eed5eedull

/* ---- building segments ---------------------------------------------- */

/* Encodes a segment (header + records with the given seqs) into buf;
 * returns its size and the offset of each record in offs (if not NULL). */
static size_t seg_bytes(uint8_t *buf, size_t cap, uint64_t first, uint64_t epoch,
                        const uint64_t *seqs, int n, size_t *offs)
{
    sl_segment_header_encode(
        buf,
        &(sl_segment_header_t){.epoch = epoch, .first_seq = first, .created_ns = 1000 + first});
    size_t len = SL_SEGMENT_HEADER_BYTES;
    for (int i = 0; i < n; i++) {
        char d[32];
        int dl = snprintf(d, sizeof d, "data-%llu", (unsigned long long)seqs[i]);
        sl_record_view_t r = {.seq = seqs[i],
                              .ts_ns = 5000 + seqs[i],
                              .type = (const uint8_t *)"message",
                              .type_len = 7,
                              .data = (const uint8_t *)d,
                              .data_len = (uint32_t)dl};
        if (offs)
            offs[i] = len;
        int rc = sl_record_encode(buf + len, cap - len, &r);
        CHECK(rc > 0);
        len += (size_t)rc;
    }
    return len;
}

static size_t seg_range(uint8_t *buf, size_t cap, uint64_t first, uint64_t last, uint64_t skip,
                        size_t *offs)
{
    uint64_t seqs[256];
    int n = 0;
    for (uint64_t s = first; s <= last; s++)
        if (s != skip)
            seqs[n++] = s;
    return seg_bytes(buf, cap, first, EPOCH, seqs, n, offs);
}

static char root[64];

static void make_root(void)
{
    strcpy(root, "/tmp/sl-recovery-XXXXXX");
    CHECK(mkdtemp(root) != NULL);
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    (void)st;
    (void)flag;
    (void)f;
    return remove(p);
}

static void rm_root(void)
{
    CHECK(nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS) == 0);
}

static void path_of(char *out, size_t cap, const char *id, uint64_t first)
{
    CHECK(sl_segment_path(out, cap, root, id, strlen(id), first) > 0);
}

static void mk_session(const char *id)
{
    char p[256];
    path_of(p, sizeof p, id, 0);
    CHECK(mkdir(p, 0755) == 0);
}

static void put_file(const char *id, uint64_t first, const void *buf, size_t len)
{
    char p[256];
    path_of(p, sizeof p, id, first);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CHECK(fd >= 0);
    CHECK(write(fd, buf, len) == (ssize_t)len);
    close(fd);
}

static int64_t file_size(const char *id, uint64_t first)
{
    char p[256];
    struct stat st;
    path_of(p, sizeof p, id, first);
    return stat(p, &st) == 0 ? (int64_t)st.st_size : -1;
}

/* Runs fn with stderr captured into out. */
static void capture(void (*fn)(void *), void *arg, char *out, size_t cap)
{
    char lp[128];
    snprintf(lp, sizeof lp, "%s/.log", root);
    int saved = dup(2);
    int fd = open(lp, O_RDWR | O_CREAT | O_TRUNC, 0600);
    CHECK(saved >= 0 && fd >= 0);
    dup2(fd, 2);
    fn(arg);
    dup2(saved, 2);
    close(saved);
    ssize_t n = pread(fd, out, cap - 1, 0);
    out[n > 0 ? n : 0] = '\0';
    close(fd);
    unlink(lp);
}

/* ---- scans ------------------------------------------------------------- */

static uint8_t buf[1 << 16];

static void test_recovery_scan_clean_segment(void)
{
    size_t len = seg_range(buf, sizeof buf, 10, 20, 15, NULL);
    sl_recovery_scan_t s;
    sl_recovery_scan_buffer(&s, 10, buf, len, DMAX);
    CHECK(s.done && s.header_ok && s.end == SL_RECOVERY_END_CLEAN);
    CHECK(s.header.epoch == EPOCH && s.header.created_ns == 1010);
    CHECK(s.valid_bytes == len && !sl_recovery_needs_truncate(&s));
    CHECK(s.first_seq == 10 && s.last_seq == 20 && s.events == 10);
    CHECK(s.payload_bytes == 8 * 7 + 2 * 7 - 7 + 7); /* "data-10".."data-20" minus 15 */
    CHECK(s.last_ts_ns == 5020);
}

static void test_recovery_scan_torn_last_record_every_offset(void)
{
    size_t offs[8];
    size_t len = seg_range(buf, sizeof buf, 1, 6, 0, offs);
    for (size_t cut = offs[5]; cut < len; cut++) {
        sl_recovery_scan_t s;
        sl_recovery_scan_buffer(&s, 1, buf, cut, DMAX);
        CHECK(s.end == (cut == offs[5] ? SL_RECOVERY_END_CLEAN : SL_RECOVERY_END_TORN));
        CHECK(s.valid_bytes == offs[5] && s.events == 5 && s.last_seq == 5);
        CHECK(sl_recovery_needs_truncate(&s) == (cut > offs[5]));
    }
}

static void test_recovery_scan_bit_flip_in_middle_keeps_prefix(void)
{
    size_t offs[8];
    size_t len = seg_range(buf, sizeof buf, 1, 6, 0, offs);
    for (size_t bit = offs[2] * 8; bit < offs[3] * 8; bit++) {
        buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        sl_recovery_scan_t s;
        sl_recovery_scan_buffer(&s, 1, buf, len, DMAX);
        CHECK(s.end == SL_RECOVERY_END_CORRUPT);
        CHECK(s.valid_bytes == offs[2] && s.events == 2 && s.last_seq == 2);
        CHECK(sl_recovery_needs_truncate(&s));
        buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    }
}

static void test_recovery_scan_seq_rules(void)
{
    sl_recovery_scan_t s;
    /* Gaps are fine (ephemeral seqs), decreases and repeats are not. */
    uint64_t gaps[] = {5, 6, 9, 100};
    size_t len = seg_bytes(buf, sizeof buf, 5, EPOCH, gaps, 4, NULL);
    sl_recovery_scan_buffer(&s, 5, buf, len, DMAX);
    CHECK(s.end == SL_RECOVERY_END_CLEAN && s.events == 4 && s.last_seq == 100);
    size_t offs[4];
    uint64_t repeat[] = {5, 6, 6, 7};
    len = seg_bytes(buf, sizeof buf, 5, EPOCH, repeat, 4, offs);
    sl_recovery_scan_buffer(&s, 5, buf, len, DMAX);
    CHECK(s.end == SL_RECOVERY_END_CORRUPT && s.valid_bytes == offs[2] && s.events == 2);
    /* The first record must carry the seq the file is named after. */
    uint64_t late[] = {6, 7};
    len = seg_bytes(buf, sizeof buf, 5, EPOCH, late, 2, NULL);
    sl_recovery_scan_buffer(&s, 5, buf, len, DMAX);
    CHECK(s.end == SL_RECOVERY_END_CORRUPT && s.valid_bytes == SL_SEGMENT_HEADER_BYTES);
    CHECK(s.events == 0);
    /* A header naming another segment than the file. */
    len = seg_range(buf, sizeof buf, 5, 7, 0, NULL);
    sl_recovery_scan_buffer(&s, 4, buf, len, DMAX);
    CHECK(s.end == SL_RECOVERY_END_CORRUPT && !s.header_ok && s.valid_bytes == 0);
}

static void test_recovery_scan_header_cases(void)
{
    sl_recovery_scan_t s;
    size_t len = seg_range(buf, sizeof buf, 1, 3, 0, NULL);
    sl_recovery_scan_buffer(&s, 1, buf, 0, DMAX); /* created, nothing written */
    CHECK(s.end == SL_RECOVERY_END_TORN && !s.header_ok && s.valid_bytes == 0);
    for (size_t cut = 1; cut < SL_SEGMENT_HEADER_BYTES; cut++) {
        sl_recovery_scan_buffer(&s, 1, buf, cut, DMAX);
        CHECK(s.end == SL_RECOVERY_END_TORN && !s.header_ok);
    }
    sl_recovery_scan_buffer(&s, 1, buf, SL_SEGMENT_HEADER_BYTES, DMAX); /* header only */
    CHECK(s.end == SL_RECOVERY_END_CLEAN && s.header_ok && s.events == 0);
    buf[2] ^= 0x10;
    sl_recovery_scan_buffer(&s, 1, buf, 5, DMAX);
    CHECK(s.end == SL_RECOVERY_END_CORRUPT);
    sl_recovery_scan_buffer(&s, 1, buf, len, DMAX);
    CHECK(s.end == SL_RECOVERY_END_CORRUPT && !s.header_ok && s.valid_bytes == 0);
    buf[2] ^= 0x10;
    buf[30] ^= 0x01; /* inside the header, under its CRC */
    sl_recovery_scan_buffer(&s, 1, buf, len, DMAX);
    CHECK(s.end == SL_RECOVERY_END_CORRUPT && !s.header_ok);
}

static void test_recovery_scan_feed_in_chunks(void)
{
    size_t offs[256];
    size_t len = seg_range(buf, sizeof buf, 1, 200, 0, offs);
    len -= 3; /* torn */
    uint32_t dmax = 16;
    size_t chunk = SL_RECORD_MAX_SIZE(dmax); /* the minimum */
    sl_recovery_scan_t s;
    sl_recovery_scan_init(&s, 1, len, dmax);
    int feeds = 0;
    while (!s.done) {
        CHECK(++feeds < 10000);
        size_t left = len - s.valid_bytes;
        size_t n = left < chunk ? left : chunk;
        int rc = sl_recovery_scan_feed(&s, buf + s.valid_bytes, n);
        CHECK(rc == 0 || rc == SL_EAGAIN);
    }
    CHECK(feeds > 3);
    CHECK(s.end == SL_RECOVERY_END_TORN && s.events == 199 && s.valid_bytes == offs[199]);
}

/* A record of the largest data with a lifecycle trailer is bigger than
 * type + data alone: fed in chunks of the documented minimum, the scan
 * still takes it whole (it stalled when the minimum left the trailer
 * out). */
static void test_recovery_scan_feed_max_record_with_trailer(void)
{
    size_t offs[4];
    uint32_t dmax = 64;
    size_t len = seg_range(buf, sizeof buf, 1, 1, 0, offs); /* header + seq 1 */
    uint8_t data[64], ext[SL_RECORD_EXT_MAX];
    memset(data, 'd', sizeof data);
    memset(ext, 0, sizeof ext); /* unknown TLVs, tag 0: skipped by readers */
    for (size_t i = 0; i + 2 <= sizeof ext; i += 2 + 200) {
        ext[i + 1] = (uint8_t)(i + 202 <= sizeof ext ? 200 : sizeof ext - i - 2);
    }
    sl_record_view_t r = {.seq = 2, .ts_ns = 5, .type = (const uint8_t *)"t", .type_len = 1,
                          .data = data, .data_len = dmax, .ext = ext, .ext_len = sizeof ext};
    int n = sl_record_encode(buf + len, sizeof buf - len, &r);
    CHECK(n > 0 && (size_t)n > SL_RECORD_OVERHEAD + SL_EVENT_TYPE_MAX + dmax);
    CHECK((size_t)n <= SL_RECORD_MAX_SIZE(dmax));
    len += (size_t)n;
    sl_recovery_scan_t s;
    sl_recovery_scan_init(&s, 1, len, dmax);
    int feeds = 0;
    while (!s.done) {
        CHECK(++feeds < 100);
        size_t left = len - s.valid_bytes, chunk = SL_RECORD_MAX_SIZE(dmax);
        int rc = sl_recovery_scan_feed(&s, buf + s.valid_bytes, left < chunk ? left : chunk);
        CHECK(rc == 0 || rc == SL_EAGAIN);
    }
    CHECK(s.end == SL_RECOVERY_END_CLEAN && s.events == 2 && s.last_seq == 2);
    CHECK(s.valid_bytes == len);
}

/* ---- files ------------------------------------------------------------- */

typedef struct trunc_arg {
    int fd;
    sl_recovery_scan_t *s;
    int rc;
} trunc_arg_t;

static void do_truncate(void *p)
{
    trunc_arg_t *a = p;
    a->rc = sl_recovery_truncate(a->fd, "s1", 2, "00000000000000000001.seg", a->s);
}

static void test_recovery_truncate_file_and_log_line(void)
{
    make_root();
    mk_session("s1");
    size_t offs[8];
    size_t len = seg_range(buf, sizeof buf, 1, 6, 0, offs);
    put_file("s1", 1, buf, len - 7);
    char p[256];
    path_of(p, sizeof p, "s1", 1);
    int fd = open(p, O_RDWR);
    CHECK(fd >= 0);
    sl_recovery_scan_t s;
    CHECK(sl_recovery_scan_fd(fd, 1, DMAX, &s) == 0);
    CHECK(s.end == SL_RECOVERY_END_TORN && s.valid_bytes == offs[5] && s.file_bytes == len - 7);
    char log[2048];
    trunc_arg_t a = {.fd = fd, .s = &s};
    capture(do_truncate, &a, log, sizeof log);
    close(fd);
    CHECK(a.rc == 0);
    CHECK(file_size("s1", 1) == (int64_t)offs[5]);
    char want[256];
    snprintf(want, sizeof want,
             "msg=\"truncated torn tail\" session=s1 segment=00000000000000000001.seg "
             "offset=%zu dropped_bytes=%zu reason=torn",
             offs[5], len - 7 - offs[5]);
    CHECK(strstr(log, want) != NULL);
    CHECK(strstr(log, "level=warn") != NULL);
    /* Scanning again finds a clean file. */
    fd = open(p, O_RDONLY);
    CHECK(sl_recovery_scan_fd(fd, 1, DMAX, &s) == 0);
    CHECK(s.end == SL_RECOVERY_END_CLEAN && s.events == 5);
    close(fd);
    rm_root();
}

static void test_recovery_scan_fd_large_file_in_chunks(void)
{
    make_root();
    mk_session("big");
    /* ~1.5 MiB of records: more than one SL_RECOVERY_READ_BYTES chunk. */
    size_t cap = 2u << 20;
    uint8_t *b = malloc(cap);
    CHECK(b != NULL);
    sl_segment_header_encode(b, &(sl_segment_header_t){.epoch = 1, .first_seq = 1});
    size_t len = SL_SEGMENT_HEADER_BYTES;
    static uint8_t data[3000];
    uint64_t n = 0;
    while (len < (3u << 19)) {
        sl_record_view_t r = {.seq = ++n,
                              .type = (const uint8_t *)"m",
                              .type_len = 1,
                              .data = data,
                              .data_len = (uint32_t)(n % 3000)};
        len += (size_t)sl_record_encode(b + len, cap - len, &r);
    }
    put_file("big", 1, b, len);
    char p[256];
    path_of(p, sizeof p, "big", 1);
    int fd = open(p, O_RDONLY);
    sl_recovery_scan_t s;
    CHECK(sl_recovery_scan_fd(fd, 1, DMAX, &s) == 0);
    close(fd);
    CHECK(s.end == SL_RECOVERY_END_CLEAN && s.events == n && s.valid_bytes == len);
    free(b);
    rm_root();
}

/* A maximal event (data_max = the read window) whose record carries a
 * lifecycle trailer, after a small record so it straddles the first
 * window: the startup scan must read it whole (its window was sized
 * without the trailer and the scan asserted instead of progressing). */
static void test_recovery_scan_fd_max_record_with_trailer(void)
{
    make_root();
    mk_session("maxext");
    uint32_t dmax = SL_RECOVERY_READ_BYTES;
    size_t cap = SL_SEGMENT_HEADER_BYTES + 256 + SL_RECORD_MAX_SIZE(dmax);
    uint8_t *b = malloc(cap), *data = calloc(1, dmax), ext[SL_RECORD_EXT_MAX] = {0};
    CHECK(b != NULL && data != NULL);
    for (size_t i = 0; i + 2 <= sizeof ext; i += 2 + 200) /* unknown TLVs: skipped by readers */
        ext[i + 1] = (uint8_t)(i + 202 <= sizeof ext ? 200 : sizeof ext - i - 2);
    sl_segment_header_encode(b, &(sl_segment_header_t){.epoch = 1, .first_seq = 1});
    size_t len = SL_SEGMENT_HEADER_BYTES;
    sl_record_view_t r = {.seq = 1, .type = (const uint8_t *)"m", .type_len = 1, .data = data,
                          .data_len = 10};
    len += (size_t)sl_record_encode(b + len, cap - len, &r);
    r.seq = 2;
    r.data_len = dmax;
    r.ext = ext;
    r.ext_len = sizeof ext;
    int n = sl_record_encode(b + len, cap - len, &r);
    CHECK(n > 0);
    len += (size_t)n;
    put_file("maxext", 1, b, len);
    char p[256];
    path_of(p, sizeof p, "maxext", 1);
    int fd = open(p, O_RDONLY);
    sl_recovery_scan_t s;
    CHECK(sl_recovery_scan_fd(fd, 1, dmax, &s) == 0);
    close(fd);
    CHECK(s.end == SL_RECOVERY_END_CLEAN && s.events == 2 && s.valid_bytes == len);
    free(data);
    free(b);
    rm_root();
}

/* ---- sessions ---------------------------------------------------------- */

static void quiet_logs(void)
{
    sl_log_set_level(SL_LOG_ERROR + 1);
}
static void loud_logs(void)
{
    sl_log_set_level(SL_LOG_INFO);
}

static void recover(const char *id, const sl_manifest_entry_t *e, sl_recovery_session_t *rs)
{
    quiet_logs();
    CHECK(sl_recovery_session(root, id, strlen(id), e, SL_SEGMENT_BYTES_MIN, DMAX, rs) == 0);
    loud_logs();
}

/* Session s1: segments 1 (1..5), 6 (6..10 without 8), 11 (11..13). */
static size_t three_segments(size_t *offs11)
{
    mk_session("s1");
    size_t len = seg_range(buf, sizeof buf, 1, 5, 0, NULL);
    put_file("s1", 1, buf, len);
    len = seg_range(buf, sizeof buf, 6, 10, 8, NULL);
    put_file("s1", 6, buf, len);
    len = seg_range(buf, sizeof buf, 11, 13, 0, offs11);
    put_file("s1", 11, buf, len);
    return len;
}

/* Reads <segment>.quarantine-<offset> of session id; returns its size or -1. */
static int64_t read_quarantine(const char *id, uint64_t first, uint64_t offset, uint8_t *out,
                               size_t cap)
{
    char p[256], q[SL_REPAIR_NAME_MAX + 1];
    path_of(p, sizeof p, id, 0);
    sl_repair_quarantine_name(q, sizeof q, first, offset);
    size_t n = strlen(p);
    snprintf(p + n, sizeof p - n, "/%s", q);
    int fd = open(p, O_RDONLY);
    if (fd < 0)
        return -1;
    ssize_t got = read(fd, out, cap);
    close(fd);
    return got;
}

static void test_recovery_session_without_manifest_scans_and_truncates(void)
{
    make_root();
    size_t offs[4];
    size_t len = three_segments(offs);
    /* Torn record 14 at the tail of the last segment. */
    uint8_t torn[SL_RECORD_OVERHEAD + 20];
    memcpy(torn, buf + offs[0], sizeof torn);
    uint8_t full[1024];
    memcpy(full, buf, len);
    memcpy(full + len, torn, 20);
    put_file("s1", 11, full, len + 20);
    sl_recovery_session_t rs;
    recover("s1", NULL, &rs);
    CHECK(!rs.entry_used && rs.epoch == EPOCH && rs.created_ns == 1001);
    CHECK(rs.segments_scanned == 3 && rs.segments_trusted == 0);
    CHECK(rs.segments_truncated == 1 && rs.segments_damaged == 0 && rs.segments_removed == 0);
    CHECK(rs.quarantined_bytes == 20);
    uint8_t q[64];
    CHECK(read_quarantine("s1", 11, len, q, sizeof q) == 20 && memcmp(q, torn, 20) == 0);
    CHECK(sl_segment_index_count(rs.index) == 3);
    CHECK(sl_segment_index_last_seq(rs.index) == 13);
    CHECK(sl_segment_index_events(rs.index) == 12);
    CHECK(rs.seq_hwm == 13 && rs.last_activity_ns == 5013);
    CHECK(file_size("s1", 11) == (int64_t)len);
    const sl_segment_t *s = sl_segment_index_at(rs.index, 1);
    CHECK(s->first_seq == 6 && s->last_seq == 10 && s->events == 4);
    CHECK(s->bytes == (uint64_t)file_size("s1", 6));
    sl_segment_index_destroy(rs.index);
    rm_root();
}

static void test_recovery_session_bit_flip_in_middle_segment_resyncs(void)
{
    make_root();
    size_t offs11[4];
    three_segments(offs11);
    size_t offs[8];
    size_t len = seg_range(buf, sizeof buf, 6, 10, 8, offs);
    uint8_t cut[128];
    size_t cut_len = offs[3] - offs[2];
    memcpy(cut, buf + offs[2], cut_len);
    buf[offs[2] + 15] ^= 0x04; /* seq 9's record */
    cut[15] ^= 0x04;
    put_file("s1", 6, buf, len);
    sl_recovery_session_t rs;
    recover("s1", NULL, &rs);
    CHECK(rs.segments_damaged == 1 && rs.segments_rewritten == 1 && rs.segments_truncated == 0);
    CHECK(rs.quarantined_bytes == cut_len);
    /* Seq 10 after the damage is kept; 9 is a hole. */
    CHECK(file_size("s1", 6) == (int64_t)(len - cut_len));
    uint8_t q[128];
    CHECK(read_quarantine("s1", 6, offs[2], q, sizeof q) == (int64_t)cut_len);
    CHECK(memcmp(q, cut, cut_len) == 0);
    CHECK(sl_segment_index_count(rs.index) == 3);
    const sl_segment_t *s = sl_segment_index_at(rs.index, 1);
    CHECK(s->last_seq == 10 && s->events == 3 && s->bytes == len - cut_len);
    CHECK(sl_segment_index_last_seq(rs.index) == 13);
    sl_segment_index_destroy(rs.index);
    /* A second recovery finds nothing left to do. */
    recover("s1", NULL, &rs);
    CHECK(rs.segments_damaged == 0 && sl_segment_index_events(rs.index) == 11);
    sl_segment_index_destroy(rs.index);
    rm_root();
}

static void test_recovery_session_bit_flip_in_last_segment_keeps_later_records(void)
{
    make_root();
    size_t offs[4];
    size_t len = three_segments(offs);
    buf[offs[1] + 20] ^= 0x80; /* seq 12 of the last segment */
    put_file("s1", 11, buf, len);
    sl_recovery_session_t rs;
    recover("s1", NULL, &rs);
    CHECK(rs.segments_rewritten == 1 && rs.segments_truncated == 0);
    CHECK(sl_segment_index_last_seq(rs.index) == 13 && rs.seq_hwm == 13);
    uint64_t kept = len - (offs[2] - offs[1]);
    CHECK(file_size("s1", 11) == (int64_t)kept);
    /* Appends continue right after the last intact record. */
    sl_segment_place_t pl;
    CHECK(sl_segment_index_place(rs.index, 14, 40, &pl) == 0);
    CHECK(pl.segment == 11 && pl.offset == kept && !pl.created);
    sl_segment_index_destroy(rs.index);
    rm_root();
}

/* A flipped byte in the header or in the first record of the newest
 * segment used to delete the whole file. */
static void test_recovery_session_damaged_header_or_first_record_keeps_rest(void)
{
    for (int where = 0; where < 2; where++) {
        make_root();
        size_t offs[4];
        size_t len = three_segments(offs);
        size_t at = where == 0 ? 20 : offs[0] + 14;
        buf[at] ^= 0x10;
        put_file("s1", 11, buf, len);
        sl_recovery_session_t rs;
        recover("s1", NULL, &rs);
        CHECK(rs.segments_rewritten == 1 && rs.segments_removed == 0);
        CHECK(rs.seq_hwm == 13 && sl_segment_index_last_seq(rs.index) == 13);
        if (where == 0) {
            /* Only the header is cut; a new one with the session's epoch. */
            CHECK(rs.quarantined_bytes == SL_SEGMENT_HEADER_BYTES);
            CHECK(file_size("s1", 11) == (int64_t)len && sl_segment_index_events(rs.index) == 12);
            uint8_t q[64];
            CHECK(read_quarantine("s1", 11, 0, q, sizeof q) == SL_SEGMENT_HEADER_BYTES);
        } else {
            /* Record 11 is cut: the segment is now named 12. */
            CHECK(rs.quarantined_bytes == offs[1] - offs[0]);
            CHECK(file_size("s1", 11) == -1 && file_size("s1", 12) > 0);
            CHECK(sl_segment_index_at(rs.index, 2)->first_seq == 12);
            CHECK(sl_segment_index_events(rs.index) == 11);
        }
        sl_segment_index_destroy(rs.index);
        recover("s1", NULL, &rs); /* stable */
        CHECK(rs.segments_damaged == 0 && rs.epoch == EPOCH);
        sl_segment_index_destroy(rs.index);
        rm_root();
    }
}

static void test_recovery_plan_resync_and_torn_tail(void)
{
    size_t offs[16];
    size_t len = seg_range(buf, sizeof buf, 1, 10, 0, offs);
    sl_repair_plan_t p;
    sl_repair_plan_buffer(&p, 1, UINT64_MAX, buf, len, DMAX);
    CHECK(p.damage_count == 0 && p.events == 10 && sl_repair_action(&p) == SL_REPAIR_NONE);
    /* Torn tail: a prefix of record 10. */
    sl_repair_plan_buffer(&p, 1, UINT64_MAX, buf, len - 3, DMAX);
    CHECK(p.torn && p.damage_count == 1 && p.damage[0].offset == offs[9]);
    CHECK(p.events == 9 && sl_repair_action(&p) == SL_REPAIR_TRUNCATE);
    /* Two damaged records: 3 and 7; the rest is kept. */
    buf[offs[2] + 30] ^= 1;
    buf[offs[6] + 2] ^= 1;
    sl_repair_plan_buffer(&p, 1, UINT64_MAX, buf, len, DMAX);
    CHECK(!p.torn && p.damage_count == 2 && p.events == 8 && p.last_seq == 10);
    CHECK(p.damage[0].offset == offs[2] && p.damage[0].bytes == offs[3] - offs[2]);
    CHECK(p.damage[1].offset == offs[6] && p.damage[1].bytes == offs[7] - offs[6]);
    CHECK(sl_repair_action(&p) == SL_REPAIR_REWRITE);
    /* Records at or past the next segment's name are not this segment's. */
    sl_repair_plan_buffer(&p, 1, 9, buf, len, DMAX);
    CHECK(p.last_seq == 8 && p.damage[p.damage_count - 1].offset == offs[8]);
    /* Nothing intact: the whole file goes to quarantine. */
    memset(buf + SL_SEGMENT_HEADER_BYTES, 0xee, len - SL_SEGMENT_HEADER_BYTES);
    sl_repair_plan_buffer(&p, 1, UINT64_MAX, buf, len, DMAX);
    CHECK(p.events == 0 && sl_repair_action(&p) == SL_REPAIR_QUARANTINE);
}

static void test_recovery_session_empty_last_segment_removed(void)
{
    make_root();
    mk_session("s2");
    size_t offs[8];
    size_t len = seg_range(buf, sizeof buf, 1, 5, 0, offs);
    put_file("s2", 1, buf, len - 4); /* torn, then a roll happened */
    len = seg_range(buf, sizeof buf, 6, 6, 0, NULL);
    put_file("s2", 6, buf, 20); /* torn header */
    sl_recovery_session_t rs;
    recover("s2", NULL, &rs);
    CHECK(rs.segments_removed == 1 && file_size("s2", 6) == -1);
    uint8_t q[64];
    CHECK(read_quarantine("s2", 6, 0, q, sizeof q) == 20); /* moved, not removed */
    /* Segment 1 is now the last one: its tail is cut too. */
    CHECK(rs.segments_truncated == 1 && file_size("s2", 1) == (int64_t)offs[4]);
    CHECK(sl_segment_index_count(rs.index) == 1 && sl_segment_index_last_seq(rs.index) == 4);
    CHECK(rs.seq_hwm == 6); /* seq 6 was handed out: never reuse it */
    sl_segment_index_destroy(rs.index);
    rm_root();
}

/* Ephemeral seqs leave no record: the reservation mark bounds them, and
 * only the mark of this incarnation counts. */
static void put_mark(const char *id, uint64_t epoch, uint64_t reserved)
{
    char p[256];
    path_of(p, sizeof p, id, 0);
    size_t n = strlen(p);
    snprintf(p + n, sizeof p - n, "/%s", SL_SEQMARK_NAME);
    uint8_t b[SL_SEQMARK_BYTES];
    sl_seqmark_encode(b, epoch, reserved);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CHECK(fd >= 0 && write(fd, b, sizeof b) == (ssize_t)sizeof b);
    close(fd);
}

static void test_recovery_session_seq_mark_raises_hwm(void)
{
    uint8_t b[SL_SEQMARK_BYTES];
    uint64_t e, r;
    sl_seqmark_encode(b, 7, 4100);
    CHECK(sl_seqmark_decode(b, sizeof b, &e, &r) == 0 && e == 7 && r == 4100);
    b[17] ^= 1;
    CHECK(sl_seqmark_decode(b, sizeof b, &e, &r) == SL_ECORRUPT);
    CHECK(sl_seqmark_decode(b, 10, &e, &r) == SL_ECORRUPT);
    make_root();
    size_t offs[4];
    three_segments(offs);
    put_mark("s1", EPOCH, 4108);
    sl_recovery_session_t rs;
    recover("s1", NULL, &rs);
    CHECK(rs.seq_reserved == 4108 && rs.seq_hwm == 4108);
    CHECK(sl_segment_index_last_seq(rs.index) == 13);
    sl_segment_index_destroy(rs.index);
    put_mark("s1", EPOCH + 1, 9000); /* a deleted incarnation's */
    recover("s1", NULL, &rs);
    CHECK(rs.seq_reserved == 0 && rs.seq_hwm == 13);
    sl_segment_index_destroy(rs.index);
    /* Only ephemeral events so far: no segment, the mark gives the epoch. */
    mk_session("s3");
    put_mark("s3", 99, 4096);
    recover("s3", NULL, &rs);
    CHECK(rs.epoch == 99 && rs.seq_hwm == 4096 && sl_segment_index_count(rs.index) == 0);
    sl_segment_index_destroy(rs.index);
    rm_root();
}

/* A second incident at the same offset gets its own quarantine file: no
 * earlier one is overwritten. */
static void test_recovery_quarantine_never_overwritten(void)
{
    make_root();
    size_t offs[4];
    size_t len = three_segments(offs);
    buf[offs[1] + 20] ^= 0x80; /* seq 12 */
    put_file("s1", 11, buf, len);
    sl_recovery_session_t rs;
    recover("s1", NULL, &rs);
    sl_segment_index_destroy(rs.index);
    uint8_t first[128], again[128];
    int64_t n1 = read_quarantine("s1", 11, offs[1], first, sizeof first);
    CHECK(n1 == (int64_t)(offs[2] - offs[1]));
    /* Seq 13 now sits at that offset; damage it too. */
    char p[256];
    path_of(p, sizeof p, "s1", 11);
    int fd = open(p, O_RDWR);
    uint8_t b;
    CHECK(pread(fd, &b, 1, (off_t)offs[1] + 20) == 1);
    b ^= 0x80;
    CHECK(pwrite(fd, &b, 1, (off_t)offs[1] + 20) == 1);
    close(fd);
    recover("s1", NULL, &rs);
    CHECK(rs.segments_damaged == 1 && sl_segment_index_last_seq(rs.index) == 11);
    sl_segment_index_destroy(rs.index);
    CHECK(read_quarantine("s1", 11, offs[1], again, sizeof again) == n1);
    CHECK(memcmp(first, again, (size_t)n1) == 0); /* the first one is intact */
    char q[512], name[SL_REPAIR_NAME_MAX + 1];
    sl_repair_quarantine_name(name, sizeof name, 11, offs[1]);
    path_of(p, sizeof p, "s1", 0);
    snprintf(q, sizeof q, "%s/%s.1", p, name);
    struct stat st;
    CHECK(stat(q, &st) == 0 && st.st_size > 0);
    rm_root();
}

/* A damaged (not torn) last record was written, so its seq may have been
 * read: the counter resumes above it. A torn one was never whole. */
static void test_recovery_session_damaged_last_record_seq_not_reused(void)
{
    make_root();
    size_t offs[4];
    size_t len = three_segments(offs);
    buf[len - 2] ^= 0x01; /* inside seq 13's data */
    put_file("s1", 11, buf, len);
    sl_recovery_session_t rs;
    recover("s1", NULL, &rs);
    CHECK(sl_segment_index_last_seq(rs.index) == 12 && rs.seq_hwm >= 13);
    sl_segment_index_destroy(rs.index);
    rm_root();
    make_root();
    len = three_segments(offs);
    put_file("s1", 11, buf, len - 2); /* torn seq 13 */
    recover("s1", NULL, &rs);
    CHECK(sl_segment_index_last_seq(rs.index) == 12 && rs.seq_hwm == 12);
    sl_segment_index_destroy(rs.index);
    rm_root();
}

/* A manifest entry for s1 built from a recovered index. */
static size_t manifest_for(uint8_t *mbuf, size_t cap, const char *id, const sl_segment_index_t *ix,
                           uint64_t epoch, uint32_t flags, uint64_t last_seq)
{
    uint32_t n = sl_segment_index_count(ix);
    sl_segment_t segs[16];
    for (uint32_t i = 0; i < n; i++)
        segs[i] = *sl_segment_index_at(ix, i);
    sl_manifest_entry_t e = {.id = id,
                             .id_len = (uint32_t)strlen(id),
                             .epoch = epoch,
                             .first_seq = 1,
                             .last_seq = last_seq,
                             .events = sl_segment_index_events(ix),
                             .created_ns = 77,
                             .last_activity_ns = 88,
                             .flags = flags,
                             .segment_count = n};
    sl_manifest_writer_t w;
    sl_manifest_writer_init(&w, mbuf, cap);
    CHECK(sl_manifest_writer_add(&w, &e, segs) == 0);
    return sl_manifest_writer_finish(&w);
}

static void first_entry(const uint8_t *mbuf, size_t n, sl_manifest_entry_t *e)
{
    sl_manifest_reader_t r;
    CHECK(sl_manifest_reader_init(&r, mbuf, n) == 0);
    CHECK(sl_manifest_reader_next(&r, e) == 1);
}

static void test_recovery_session_clean_entry_opens_no_file(void)
{
    make_root();
    size_t offs[4];
    three_segments(offs);
    sl_recovery_session_t rs;
    recover("s1", NULL, &rs);
    uint8_t mbuf[1024];
    size_t n = manifest_for(mbuf, sizeof mbuf, "s1", rs.index, EPOCH, SL_MANIFEST_ENTRY_CLEAN, 15);
    sl_segment_index_destroy(rs.index);
    sl_manifest_entry_t e;
    first_entry(mbuf, n, &e);
    /* Remove the folder entirely: a clean entry must not need it. */
    rm_root();
    make_root();
    recover("s1", &e, &rs);
    CHECK(rs.entry_used && rs.segments_trusted == 3 && rs.segments_scanned == 0);
    CHECK(sl_segment_index_count(rs.index) == 3 && sl_segment_index_last_seq(rs.index) == 13);
    CHECK(rs.seq_hwm == 15 && rs.created_ns == 77 && rs.epoch == EPOCH);
    sl_segment_index_destroy(rs.index);
    rm_root();
}

static void test_recovery_session_dirty_entry_scans_only_changed(void)
{
    make_root();
    size_t offs[4];
    size_t len11 = three_segments(offs);
    /* The manifest was written when segment 11 held only seq 11. */
    put_file("s1", 11, buf, offs[1]);
    sl_recovery_session_t rs;
    recover("s1", NULL, &rs);
    uint8_t mbuf[1024];
    size_t n = manifest_for(mbuf, sizeof mbuf, "s1", rs.index, EPOCH, 0, 11);
    sl_segment_index_destroy(rs.index);
    /* Since then: seqs 12 and 13 and a torn 14 reached segment 11. */
    seg_range(buf, sizeof buf, 11, 13, 0, NULL);
    memcpy(buf + len11, buf + offs[0], 10);
    put_file("s1", 11, buf, len11 + 10);
    /* Same-size garbage in segment 6 proves it is not read. */
    int64_t sz6 = file_size("s1", 6);
    uint8_t junk[4096];
    memset(junk, 0xee, sizeof junk);
    put_file("s1", 6, junk, (size_t)sz6);
    sl_manifest_entry_t e;
    first_entry(mbuf, n, &e);
    recover("s1", &e, &rs);
    CHECK(rs.entry_used);
    CHECK(rs.segments_trusted == 2 && rs.segments_scanned == 1);
    CHECK(rs.segments_truncated == 1 && rs.segments_damaged == 0);
    CHECK(sl_segment_index_last_seq(rs.index) == 13 && sl_segment_index_events(rs.index) == 12);
    CHECK(file_size("s1", 11) == (int64_t)len11);
    CHECK(rs.seq_hwm == 13);
    sl_segment_index_destroy(rs.index);
    rm_root();
}

static void test_recovery_session_stale_entry_ignored(void)
{
    make_root();
    size_t offs[4];
    three_segments(offs);
    sl_recovery_session_t rs;
    recover("s1", NULL, &rs);
    uint8_t mbuf[1024];
    /* An entry of an earlier incarnation (other epoch, higher seqs). */
    size_t n = manifest_for(mbuf, sizeof mbuf, "s1", rs.index, EPOCH + 1, 0, 1000);
    sl_segment_index_destroy(rs.index);
    sl_manifest_entry_t e;
    first_entry(mbuf, n, &e);
    recover("s1", &e, &rs);
    CHECK(!rs.entry_used && rs.epoch == EPOCH);
    CHECK(rs.segments_scanned == 3 && rs.segments_trusted == 0);
    CHECK(rs.seq_hwm == 13 && rs.created_ns == 1001);
    sl_segment_index_destroy(rs.index);
    rm_root();
}

/* ---- the data dir -------------------------------------------------------- */

typedef struct seen {
    char id[8][32];
    uint64_t last_seq[8];
    uint64_t events[8];
    uint32_t segments[8];
    bool had_entry[8];
    int count;
} seen_t;

static void on_session(const char *id, size_t id_len, const sl_manifest_entry_t *e,
                       sl_recovery_session_t *rs, void *ctx)
{
    seen_t *s = ctx;
    CHECK(s->count < 8 && id_len < 32 && strlen(id) == id_len);
    int i = s->count++;
    strcpy(s->id[i], id);
    s->last_seq[i] = sl_segment_index_last_seq(rs->index);
    s->events[i] = sl_segment_index_events(rs->index);
    s->segments[i] = sl_segment_index_count(rs->index);
    s->had_entry[i] = e != NULL;
    sl_segment_index_destroy(rs->index);
}

static int find_seen(const seen_t *s, const char *id)
{
    for (int i = 0; i < s->count; i++)
        if (strcmp(s->id[i], id) == 0)
            return i;
    return -1;
}

static void populate_data_dir(void)
{
    mk_session("alpha");
    size_t len = seg_range(buf, sizeof buf, 1, 30, 0, NULL);
    put_file("alpha", 1, buf, len);
    len = seg_range(buf, sizeof buf, 31, 40, 0, NULL);
    put_file("alpha", 31, buf, len);
    mk_session("beta");
    len = seg_range(buf, sizeof buf, 1, 3, 0, NULL);
    put_file("beta", 1, buf, len - 1);
    mk_session("gamma"); /* created, nothing published */
    char p[256];
    snprintf(p, sizeof p, "%s/.trash-1-old", root);
    CHECK(mkdir(p, 0755) == 0);
    snprintf(p, sizeof p, "%s/bad name", root);
    CHECK(mkdir(p, 0755) == 0);
    snprintf(p, sizeof p, "%s/stray.txt", root);
    int fd = open(p, O_WRONLY | O_CREAT, 0644);
    CHECK(fd >= 0);
    close(fd);
}

static void check_seen(const seen_t *s)
{
    CHECK(s->count == 3);
    int a = find_seen(s, "alpha"), b = find_seen(s, "beta"), g = find_seen(s, "gamma");
    CHECK(a >= 0 && b >= 0 && g >= 0);
    CHECK(s->last_seq[a] == 40 && s->events[a] == 40 && s->segments[a] == 2);
    CHECK(s->last_seq[b] == 2 && s->events[b] == 2 && s->segments[b] == 1);
    CHECK(s->last_seq[g] == 0 && s->events[g] == 0 && s->segments[g] == 0);
}

static void recover_dir(seen_t *s, sl_recovery_stats_t *st)
{
    memset(s, 0, sizeof *s);
    quiet_logs();
    CHECK(sl_recovery_data_dir(root, SL_SEGMENT_BYTES_MIN, DMAX, on_session, s, st) == 0);
    loud_logs();
}

/* Writes a manifest for alpha, beta, gamma (and a deleted session) from a
 * fresh recovery, with the given entry flags. */
static void write_manifest(uint32_t flags)
{
    static uint8_t mbuf[1 << 14];
    sl_manifest_writer_t w;
    sl_manifest_writer_init(&w, mbuf, sizeof mbuf);
    const char *ids[] = {"alpha", "beta", "deleted", "gamma"};
    for (int i = 0; i < 4; i++) {
        sl_recovery_session_t rs = {0};
        sl_segment_t segs[8];
        uint32_t n = 0;
        if (i != 2) {
            recover(ids[i], NULL, &rs);
            n = sl_segment_index_count(rs.index);
            for (uint32_t k = 0; k < n; k++)
                segs[k] = *sl_segment_index_at(rs.index, k);
        }
        sl_manifest_entry_t e = {.id = ids[i],
                                 .id_len = (uint32_t)strlen(ids[i]),
                                 .epoch = EPOCH,
                                 .flags = flags,
                                 .segment_count = n};
        CHECK(sl_manifest_writer_add(&w, &e, segs) == 0);
        sl_segment_index_destroy(rs.index);
    }
    size_t len = sl_manifest_writer_finish(&w);
    CHECK(sl_manifest_store(root, mbuf, len) == 0);
}

static void test_recovery_data_dir_with_and_without_manifest(void)
{
    make_root();
    populate_data_dir();
    seen_t s;
    sl_recovery_stats_t st;
    /* No manifest: every folder is scanned; reserved and bad names skipped. */
    recover_dir(&s, &st);
    check_seen(&s);
    CHECK(st.manifest_status == -ENOENT);
    CHECK(st.sessions == 3 && st.sessions_failed == 0 && st.names_ignored == 2);
    CHECK(st.segments_scanned == 3 && st.segments_truncated == 1);
    CHECK(!s.had_entry[0] && !s.had_entry[1] && !s.had_entry[2]);
    /* Clean manifest: nothing is scanned; the deleted session is dropped. */
    write_manifest(SL_MANIFEST_ENTRY_CLEAN);
    recover_dir(&s, &st);
    check_seen(&s);
    CHECK(st.manifest_status == 0 && st.segments_scanned == 0 && st.entries_dropped == 1);
    CHECK(s.had_entry[0] && s.had_entry[1] && s.had_entry[2]);
    /* Dirty manifest, unchanged files: folders listed, sizes match, no scan
     * beyond the stale-epoch check. */
    write_manifest(0);
    recover_dir(&s, &st);
    check_seen(&s);
    CHECK(st.manifest_status == 0 && st.segments_scanned == 0);
    /* Corrupt manifest: treated as missing, same result. */
    char p[256];
    snprintf(p, sizeof p, "%s/%s", root, SL_MANIFEST_NAME);
    int fd = open(p, O_RDWR);
    CHECK(fd >= 0);
    uint8_t byte;
    CHECK(pread(fd, &byte, 1, 40) == 1);
    byte ^= 0x20;
    CHECK(pwrite(fd, &byte, 1, 40) == 1);
    close(fd);
    recover_dir(&s, &st);
    check_seen(&s);
    CHECK(st.manifest_status == SL_ECORRUPT && st.segments_scanned == 3);
    CHECK(st.entries_dropped == 0);
    /* A missing data dir is an error, not an empty store. */
    char gone[128];
    snprintf(gone, sizeof gone, "%s/none", root);
    quiet_logs();
    CHECK(sl_recovery_data_dir(gone, SL_SEGMENT_BYTES_MIN, DMAX, on_session, &s, &st) == -ENOENT);
    loud_logs();
    rm_root();
}

int main(void)
{
    test_recovery_scan_clean_segment();
    test_recovery_scan_torn_last_record_every_offset();
    test_recovery_scan_bit_flip_in_middle_keeps_prefix();
    test_recovery_scan_seq_rules();
    test_recovery_scan_header_cases();
    test_recovery_scan_feed_in_chunks();
    test_recovery_scan_feed_max_record_with_trailer();
    test_recovery_truncate_file_and_log_line();
    test_recovery_scan_fd_large_file_in_chunks();
    test_recovery_scan_fd_max_record_with_trailer();
    test_recovery_session_without_manifest_scans_and_truncates();
    test_recovery_plan_resync_and_torn_tail();
    test_recovery_session_bit_flip_in_middle_segment_resyncs();
    test_recovery_session_bit_flip_in_last_segment_keeps_later_records();
    test_recovery_session_damaged_header_or_first_record_keeps_rest();
    test_recovery_session_empty_last_segment_removed();
    test_recovery_session_seq_mark_raises_hwm();
    test_recovery_quarantine_never_overwritten();
    test_recovery_session_damaged_last_record_seq_not_reused();
    test_recovery_session_clean_entry_opens_no_file();
    test_recovery_session_dirty_entry_scans_only_changed();
    test_recovery_session_stale_entry_ignored();
    test_recovery_data_dir_with_and_without_manifest();
    printf("recovery_test: ok\n");
    return 0;
}
