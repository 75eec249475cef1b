/*
 * Compile-time caps, in one place. Runtime values live in the config struct
 * (actors/config.h) and are validated against these at start. Each cap
 * names the policy applied when it is reached.
 */
#ifndef SL_RUNTIME_LIMITS_H
#define SL_RUNTIME_LIMITS_H

/* Scheduler: messages an actor runs before yielding its worker. */
#define SL_ACTOR_BATCH 64
/* Worker threads: --workers is clamped to 1..this (exit 2 beyond). */
#define SL_WORKERS_MAX 256
/* Reactor threads: --reactors 1..this. */
#define SL_REACTORS_MAX 64

/* Reactor: SQ entries per ring; a drain that fills the SQ submits and
 * continues (no op is ever refused). */
#define SL_REACTOR_SQ_ENTRIES 4096
/* Reactor: provided receive buffers per reactor (power of two) and size.
 * Policy when all are lent out: recvs wait for a buffer to return. */
#define SL_RECV_BUFFERS_DEFAULT 4096
#define SL_RECV_BUFFERS_MAX 32768
#define SL_RECV_BUFFER_BYTES 16384
/* Reactor: ops drained from the request queue per loop iteration before
 * CQEs are reaped again (fairness between submitters and completions). */
#define SL_REACTOR_DRAIN_MAX 1024
/* Reactor: largest provided receive buffer (config is validated against it). */
#define SL_RECV_BUFFER_BYTES_MAX (1u << 20)
/* Reactor: listening sockets per reactor over its lifetime (a slot is not
 * reused after unlisten). Policy: sl_reactor_listen returns SL_EFULL. */
#define SL_REACTOR_LISTEN_MAX 16
/* Actor runs an inline-hosting reactor does per tick before it submits and
 * reaps I/O again (bounds how long I/O waits behind actors). */
#define SL_REACTOR_INLINE_RUNS 256
/* Reactor: completions that end a batched sleep early (see
 * sl_reactor_config_t.batch_wait_ns): this many waiting means the reactor
 * has a full loop turn of work, so waiting longer only adds latency. */
#define SL_REACTOR_BATCH_WAIT_NR 64
/* Reactor: period of the loop-lag probe timer (/health loop_lag_ms_*). The
 * longest busy round is counted as lag as well, so the probe only has to
 * catch a loop that stopped turning; each probe wakes an idle reactor. */
#define SL_REACTOR_LAG_PROBE_NS (100ull * 1000 * 1000)
/* --rpc-listen unix:PATH: how long a socket file that answers is probed
 * again (every SL_RPC_UNIX_PROBE_STEP_NS) before the start is refused. A
 * server killed a moment ago can still answer: the kernel tears its
 * io_uring, and the listening socket with it, down after the process is
 * gone. Policy at the bound: exit 2, "the socket is in use". */
#define SL_RPC_UNIX_PROBE_GRACE_NS (1000ull * 1000 * 1000)
#define SL_RPC_UNIX_PROBE_STEP_NS (50ull * 1000 * 1000)
/* Reactor: longest --reactor-linger (the flag is validated against it). */
#define SL_REACTOR_BATCH_WAIT_NS_MAX 100000000ull
/* Reactor: pause before re-arming an accept that failed for lack of
 * resources (EMFILE, ENFILE, ENOBUFS, ENOMEM, ...). Policy at the fd limit:
 * pending connections wait in the kernel backlog; the reactor never spins. */
#define SL_REACTOR_ACCEPT_BACKOFF_MS 100

/* Output queue: segments per connection (policy: producer stops, resumes
 * when the send completes). */
#define SL_OUTQ_SEGS 1024
/* iovecs per sendmsg (kernel UIO_MAXIOV is 1024). */
#define SL_SEND_IOV_MAX 256
/* Fan-out: longest --fanout-budget (the flag is validated against it). */
#define SL_FANOUT_BUDGET_NS_MAX 1000000000ull
/* Fan-out: stream output a connection holds back for the rest of its
 * --fanout-budget. Policy at the bound: once this much is waiting the
 * connection sends at once (the batch is large enough that waiting would
 * save no syscall worth the latency). */
#define SL_FANOUT_BATCH_BYTES (64u * 1024)
/* Fan-out: how long after a budget tick a connection's held send fires,
 * so the wake-ups its sessions got at that tick are pulled first and go in
 * the same send (actors/session.h, the fan-out grid). Events held by a
 * connection wait at most a budget plus this. */
#define SL_FANOUT_HOLD_LAG_NS (250ull * 1000)

/* Subscriptions: times a connection re-sends SUBSCRIBE when the session
 * actor it reached was hibernating and a successor took over (policy
 * beyond: the subscribe is refused as overloaded, and the client retries). */
#define SL_CONN_RESUBSCRIBES_MAX 3
/* Subscribers of one session: --max-subscribers-per-session default and
 * hard cap (policy: the subscribe is refused, 503 overloaded + Retry-After
 * / RPC "overloaded"). */
#define SL_SESSION_SUBS_DEFAULT 65536
#define SL_SESSION_SUBS_MAX (1u << 20)

/* Fault points (runtime/fault.h, Debug builds only): entries read from
 * SLUICE_FAULTS and the length of a name (policy: the rest is ignored). */
#define SL_FAULT_POINTS_MAX 16
#define SL_FAULT_NAME_MAX 47

/* Publishes and subscribes that reach a session actor while it hibernates
 * or stops, held until it has left the directory entry so that the retry
 * reaches its successor (policy beyond: answered at once, and the
 * requester's bounded retries apply). */
#define SL_SESSION_HELD_MAX 1024

/* Fault point slow_hibernate (Debug builds): how long a hibernating
 * session's log takes to close. */
#define SL_SESSION_SLOW_HIBERNATE_MS 300

/* Catch-up chunk sizing: bytes per event beyond twice its data that an
 * encoded event (SSE or RPC, with id, type and framing) or a gap notice
 * may take. Policy: a chunk sized by it that still proves short only makes
 * the answer partial; the subscriber asks again. */
#define SL_CATCHUP_EVENT_OVERHEAD 256

/* Mailboxes: default capacity of NORMAL messages per actor. */
#define SL_MAILBOX_CAPACITY_DEFAULT 1024
/* Control and completion records an actor may have outstanding at once
 * (bounded by construction; see runtime/mailbox.h). */
#define SL_MAILBOX_RESERVED_MAX 16

/* Names (API.md): session ids are 1..SL_SESSION_ID_MAX bytes, event types
 * 1..SL_EVENT_TYPE_MAX bytes; longer input is rejected (400). */
#define SL_SESSION_ID_MAX 128
#define SL_EVENT_TYPE_MAX 64
/* Session lifecycle (API.md "Session lifecycle"): idempotent producer ids
 * are 1..SL_PRODUCER_ID_MAX bytes; a Durable Streams Stream-Seq value is
 * 1..SL_STREAM_SEQ_MAX bytes; a stream's content type is at most
 * SL_CONTENT_TYPE_MAX bytes. Longer input is rejected (400). Producer
 * epochs and seqs are integers 0..SL_PRODUCER_NUM_MAX (2^53 - 1, exact in
 * a JSON number). A session remembers at most SL_PRODUCERS_MAX producer ids;
 * a new id beyond that forgets the one used least recently (its next
 * publish then counts as a fresh producer: epoch any, seq 0). */
#define SL_PRODUCER_ID_MAX 128
#define SL_STREAM_SEQ_MAX 128
#define SL_CONTENT_TYPE_MAX 255
#define SL_PRODUCER_NUM_MAX ((1ull << 53) - 1)
#define SL_PRODUCERS_MAX 1024
/* Directory entries the expiry sweep looks at per monitor tick (a full
 * pass over N sessions takes N / this many ticks; lookups delete expired
 * sessions at once regardless). */
#define SL_SWEEP_ENTRIES_PER_TICK 1024
/* The longest session TTL accepted (ten years, in seconds); longer: 400. */
#define SL_TTL_MAX_S (10ull * 366 * 24 * 3600)
/* Event data: --max-event-bytes default and hard cap (policy: publish
 * rejected with too_large / 413). */
#define SL_EVENT_BYTES_DEFAULT (1u << 20)
#define SL_EVENT_BYTES_MAX (16u << 20)
/* Events in one batch publish (an NDJSON body; RPC publish_batch). Policy:
 * the whole batch is refused (413 too_large / RPC too_large), nothing is
 * appended. Blank NDJSON lines are not events and do not count. */
#define SL_BATCH_EVENTS_MAX 10000
/* SSE encoding of one event: at most what a maximal binary event costs
 * (base64: 4/3 of --max-event-bytes, plus its id, event and comment lines;
 * sl_sse_encoded_bound in net/sse.h). Text whose line breaks would expand
 * beyond it (each break starts a new "data: " line, up to 7x) is refused
 * with too_large / 413, so the session ring holds at most
 * max(--session-ring-bytes, one such encoding). */

/* Storage: --segment-bytes default and range. A segment rolls when the next
 * record would cross the bound; a record larger than the bound goes alone
 * into its own segment. */
#define SL_SEGMENT_BYTES_DEFAULT (64ull << 20)
#define SL_SEGMENT_BYTES_MIN (64ull << 10)
#define SL_SEGMENT_BYTES_MAX (4ull << 30)
/* Segments per session (policy: the append is refused with SL_EFULL until
 * retention removes old segments). */
#define SL_SEGMENTS_PER_SESSION_MAX 65536
/* Damaged byte ranges one segment repair tracks (storage/repair.h). Policy
 * at the bound: the last range runs to the end of the file, so everything
 * after it goes to quarantine as well (kept, not served). */
#define SL_REPAIR_RANGES_MAX 64
/* Seqs a session reserves durably at a time before issuing them
 * (storage/seqmark.h): one small write and fsync per this many seqs, and
 * after a crash the counter resumes above the reservation, so at most this
 * many seqs are skipped (never reused). */
#define SL_SEQ_RESERVE_BLOCK 4096u
/* Sparse offset index per segment: at most this many (seq, offset) entries,
 * spaced at least SL_SEGMENT_SPARSE_STRIDE_MIN bytes apart (policy at the
 * bound: entries stop; a catch-up read starts at the last entry and skips
 * forward). */
#define SL_SEGMENT_SPARSE_MAX 1024
#define SL_SEGMENT_SPARSE_STRIDE_MIN 4096
/* Open segment files: --max-open-files default and hard cap (policy: the
 * LRU unpinned fd is closed; when every fd is pinned the opener waits). */
#define SL_OPEN_FILES_DEFAULT 1024
#define SL_OPEN_FILES_MAX (1u << 20)
/* Journal (storage/journal.h): write buffers per session journal, each
 * buffer_bytes big (policy when every buffer is full: the append returns
 * SL_EFULL and the session stops accepting publishes until a write
 * completes). A record bigger than one buffer gets a buffer of its own size
 * (at most SL_JOURNAL_BUFFERS of them, freed after their write). */
#define SL_JOURNAL_BUFFERS 2
/* A session's first write buffer; it doubles each time one fills, up to
 * --journal-buffer-bytes. */
#define SL_JOURNAL_SLOT_BYTES_START (8u << 10)
#define SL_JOURNAL_BUFFER_BYTES_DEFAULT (256u << 10)
#define SL_JOURNAL_BUFFER_BYTES_MIN (4u << 10)
#define SL_JOURNAL_BUFFER_BYTES_MAX (16u << 20)
/* Journal catch-up reader buffer default (raised to the largest record the
 * --max-event-bytes in force allows, so one read always holds a record). */
#define SL_JOURNAL_READ_BYTES_DEFAULT (64u << 10)
/* fsync=batch: default group-commit interval (--fsync-interval-ms). */
#define SL_JOURNAL_FSYNC_INTERVAL_MS_DEFAULT 5
/* Journal: most extra fdatasyncs of a session's newest segment that may run
 * beside its sync round when durable publishes wait on writes the round
 * does not cover (--fsync-overlap, default 0: one sync in flight per
 * session). Policy at the bound: later writes wait for the next round or
 * the next free extra sync. */
#define SL_JOURNAL_SYNCS_EXTRA 3
/* Journal: how long a session writes without RWF_DSYNC after appends had
 * to wait on an RWF_DSYNC write (a lone durable publish is one op; a
 * stream of them is served by plain writes and overlapping syncs). */
#define SL_JOURNAL_DSYNC_BACKOFF_MS 100
/* Journal removal: unlinks in flight at once per session. */
#define SL_JOURNAL_UNLINKS_INFLIGHT 4
/* Journal: pause before retrying an open refused for lack of descriptors
 * (every cached fd pinned, or EMFILE/ENFILE). Policy: wait, never exceed. */
#define SL_JOURNAL_RETRY_MS 10
/* Longest a new session incarnation waits for the deleted one's folder to
 * be removed (its mkdir sees EEXIST meanwhile); then its log fails. */
#define SL_JOURNAL_MKDIR_WAIT_MS 5000
/* Manifest file size accepted at startup (larger: treated as corrupt, the
 * data dir is scanned instead). */
#define SL_MANIFEST_BYTES_MAX (256ull << 20)

/* Watchdog (actors/watchdog.h). Probes (one SIOCOUTQ ioctl + one TCP_INFO
 * getsockopt) per slice of a tick; the actor yields its worker between
 * slices so a tick over 100k tracked sockets never holds a worker for the
 * whole sweep (policy: the sweep continues in the next run, the tick ends
 * when every tracked socket was probed once). */
#define SL_WATCHDOG_SLICE_PROBES 512
/* A zero-window peer whose window probes went unanswered this many times
 * in a row is treated as dead, not paused (a live one answers every probe,
 * which resets the kernel's count to 0). */
#define SL_WATCHDOG_PAUSED_PROBES_MAX 1
/* Ticks a socket must be seen outside ESTABLISHED before it is reaped as
 * closed by its peer (the connection's own read usually wins first). */
#define SL_WATCHDOG_CLOSED_TICKS 2
/* /debug/connections: rows per answer (?limit= is clamped to 1..this). */
#define SL_DEBUG_CONNS_LIMIT_DEFAULT 20
#define SL_DEBUG_CONNS_LIMIT_MAX 1000

/* HTTP/2 abuse bounds (net/http2.c), each per connection. Policy at every
 * one: GOAWAY(ENHANCE_YOUR_CALM), then close once it is flushed.
 * RST_STREAM frames from the client per second (rapid reset, CVE-2023-44487;
 * a browser cancelling a page's requests stays far below). */
#define SL_H2_RST_PER_S_MAX 100
/* PING, SETTINGS and PRIORITY frames from the client per second (floods
 * that cost us a frame or a tree update each). */
#define SL_H2_CONTROL_PER_S_MAX 200
/* CONTINUATION frames after one HEADERS frame (the CVE-2024-27316 family;
 * a legitimate block of --max-header-bytes needs 1-2 at the default frame
 * size). Below nghttp2's own default (8, in the versions that have one) so
 * the count is ours and named. The block's bytes are bounded too, by twice
 * --max-header-bytes. */
#define SL_H2_CONTINUATIONS_MAX 6
/* SETTINGS ACK + PING ACK frames nghttp2 may hold unsent for a peer that
 * does not read (nghttp2_option_set_max_outbound_ack). */
#define SL_H2_OUTBOUND_ACK_MAX 100
/* Entries accepted in one SETTINGS frame (nghttp2_option_set_max_settings). */
#define SL_H2_SETTINGS_ENTRIES_MAX 32

/* Global memory budget (runtime/budget.h, --memory-limit). The default
 * limit is this percent of the cgroup's memory.max (v2; v1's
 * memory.limit_in_bytes) or of physical RAM when no cgroup limit is set:
 * the rest is left for what the budget does not count (code, stacks,
 * provided receive buffers, allocator slack, the page cache of our logs).
 * Policy at the limit: new publishes and subscriptions get 503 overloaded
 * with Retry-After: SL_BUDGET_RETRY_AFTER; open streams keep flowing. */
#define SL_BUDGET_DEFAULT_PERCENT 75
#define SL_BUDGET_RETRY_AFTER "1" /* seconds, as the header carries it */
/* Smallest --memory-limit accepted (below it sluice could not even hold
 * one session's ring and a few connections). */
#define SL_BUDGET_LIMIT_MIN (16ull << 20)
/* cgroup v1 reports "no limit" as a value near 2^63: anything at or above
 * this is treated as unlimited. */
#define SL_BUDGET_CGROUP_UNLIMITED (1ull << 60)
/* Largest catch-up read a stream may ask for while the budget is over
 * (instead of its whole output room), and only once its connection's
 * output drained: a reading subscriber still moves, a stalled one pins
 * nothing more (one event larger than this still goes whole). */
#define SL_BUDGET_CATCHUP_OVER_BYTES (64u << 10)
/* Catch-up headroom over the limit, in percent of it: between the limit
 * and limit + headroom only drained connections read the log (above); at
 * the headroom no stream starts a catch-up read until memory returns (it
 * retries on its connection's timer). The worst case is therefore the
 * limit + headroom + one event per catch-up already in flight. */
#define SL_BUDGET_CATCHUP_HEADROOM_PERCENT 10

/* Connections from one address (--max-connections-per-ip; 0: off). Policy
 * beyond: accepted and closed at once, counted (rejected_per_ip), logged at
 * most once per SL_CONN_PER_IP_LOG_MS. The table of addresses has
 * SL_CONN_PER_IP_BUCKETS chains and one entry per address with an open
 * connection (so at most --max-connections entries). */
#define SL_CONN_PER_IP_DEFAULT 256
#define SL_CONN_PER_IP_BUCKETS 4096
#define SL_CONN_PER_IP_LOG_MS 1000

/* Access control (actors/auth.h). A token longer than
 * SL_AUTH_TOKEN_BYTES_MAX, or whose header or claims decode to more than
 * SL_AUTH_PART_BYTES_MAX, or with more than SL_AUTH_PATTERNS_MAX pub plus
 * sub patterns: refused as 401 unauthorized. HS256 secrets hold
 * SL_AUTH_SECRET_BYTES_MIN..MAX bytes (RFC 7518 3.2: at least the hash
 * size); other sizes refuse to start (exit 2). Clock skew allowed on
 * exp/nbf: --auth-leeway, default SL_AUTH_LEEWAY_S_DEFAULT, at most
 * SL_AUTH_LEEWAY_S_MAX. Refused requests are logged at most
 * SL_AUTH_AUDIT_LINES_PER_S lines a second; beyond, counted and named in
 * the next line (suppressed=). Streams whose token expires are ended at
 * most SL_AUTH_EXPIRY_TICK_NS late: the connection timer runs at least
 * that often while a stream's expiry is within its ordinary period. */
#define SL_AUTH_TOKEN_BYTES_MAX 8192
#define SL_AUTH_PART_BYTES_MAX 4096
#define SL_AUTH_PATTERNS_MAX 64
#define SL_AUTH_SECRET_BYTES_MIN 32
#define SL_AUTH_SECRET_BYTES_MAX 4096
#define SL_AUTH_LEEWAY_S_DEFAULT 60
#define SL_AUTH_LEEWAY_S_MAX 600
#define SL_AUTH_AUDIT_LINES_PER_S 10
#define SL_AUTH_EXPIRY_TICK_NS 500000000ull
/* Sessions one filtered list request looks at (GET /v1/sessions, RPC
 * sessions, with keys): beyond, the page ends early with its `next`. */
#define SL_AUTH_LIST_SCAN_MAX 10000

_Static_assert((SL_RECV_BUFFERS_DEFAULT & (SL_RECV_BUFFERS_DEFAULT - 1)) == 0,
               "recv buffers must be a power of two");
_Static_assert(SL_RECV_BUFFERS_MAX <= 32768, "buffer ids are 15 bits in the ring");
_Static_assert(SL_SEND_IOV_MAX <= 1024, "UIO_MAXIOV");
_Static_assert(SL_EVENT_BYTES_DEFAULT <= SL_EVENT_BYTES_MAX, "event bytes default within cap");
_Static_assert(SL_SEGMENT_BYTES_MIN <= SL_SEGMENT_BYTES_DEFAULT, "segment bytes default within range");
_Static_assert(SL_SEGMENT_BYTES_DEFAULT <= SL_SEGMENT_BYTES_MAX, "segment bytes default within range");
_Static_assert(SL_OPEN_FILES_DEFAULT <= SL_OPEN_FILES_MAX, "open files default within cap");
_Static_assert(SL_JOURNAL_BUFFER_BYTES_MIN <= SL_JOURNAL_BUFFER_BYTES_DEFAULT &&
                   SL_JOURNAL_BUFFER_BYTES_DEFAULT <= SL_JOURNAL_BUFFER_BYTES_MAX,
               "journal buffer default within range");
_Static_assert(SL_DEBUG_CONNS_LIMIT_DEFAULT <= SL_DEBUG_CONNS_LIMIT_MAX, "debug rows default within cap");
_Static_assert((SL_CONN_PER_IP_BUCKETS & (SL_CONN_PER_IP_BUCKETS - 1)) == 0,
               "per-ip buckets are masked");
_Static_assert(SL_BUDGET_DEFAULT_PERCENT > 0 && SL_BUDGET_DEFAULT_PERCENT <= 100, "a fraction");
_Static_assert(SL_JOURNAL_BUFFERS >= 2, "double buffering: append while a write is in flight");


/* TLS (net/tls.h). A record carries at most 16 KiB of plaintext; its
 * ciphertext adds at most 2048 bytes (TLS 1.2) plus the 5-byte header. The
 * read BIO holds what one recv brought plus at most one partial record:
 * every complete record is decrypted and fed before the next recv. */
#define SL_TLS_PLAIN_RECORD_BYTES 16384u
#define SL_TLS_RECORD_BYTES_MAX (SL_TLS_PLAIN_RECORD_BYTES + 2048u + 5u)
/* Ciphertext queued per connection, waiting for the socket. Policy:
 * plaintext is encrypted only while less than this is queued, so the
 * plaintext output queue (--max-conn-output-bytes) fills and producers
 * pause as they do in cleartext; recv stops while the sum of both is over
 * half of their bounds. One drain of the write BIO may overshoot by what a
 * single feed produced (a handshake flight, alerts), hence the slack. */
#define SL_TLS_CIPHER_QUEUE_BYTES (256u * 1024)
#define SL_TLS_CIPHER_QUEUE_SLACK_BYTES (64u * 1024)
/* Segments of that queue: each drain of the write BIO appends one chunk.
 * Policy at the bound: the drain waits (SL_EFULL) until a send frees one. */
#define SL_TLS_CIPHER_QUEUE_SEGS 64u
/* Plaintext slices handed to one encrypt call (more wait for the next). */
#define SL_TLS_ENCRYPT_IOV_MAX 64u
/* Resumable sessions the server-side cache of one context holds (TLS 1.2
 * session ids; TLS 1.3 uses stateless tickets). Policy: OpenSSL evicts the
 * oldest. Tickets sent after a full TLS 1.3 handshake: one per handshake is
 * enough for a client that resumes one connection at a time. */
#define SL_TLS_SESSION_CACHE_MAX 20480
#define SL_TLS_SESSION_TIMEOUT_S 7200
#define SL_TLS_TICKETS_PER_HANDSHAKE 2
/* Largest certificate or key file read at start or reload. */
#define SL_TLS_PEM_FILE_BYTES_MAX (1u << 20)

_Static_assert(SL_TLS_CIPHER_QUEUE_BYTES >= 4 * SL_TLS_RECORD_BYTES_MAX,
               "several records in flight per send");
/* Browsers (net/cors.c): origins --cors-origin may list, and the longest
 * one (scheme, a 253-byte host name and a port). Policy beyond either:
 * the flag is refused at start (exit 2). Preflight answers may be cached
 * by the browser this long (Chrome caps it at 7200 s). */
#define SL_CORS_ORIGINS_MAX 32
#define SL_CORS_ORIGIN_BYTES_MAX 272
#define SL_CORS_MAX_AGE_S "600"
/* Address ranges --per-ip-exempt may list (net/cidr.h). Policy beyond:
 * the flag is refused at start (exit 2). */
#define SL_CIDR_LIST_MAX 64

/* Runs (actors/run.h): processes sluice starts for sessions.
 * Declared runners (--runner and --runners-file lines); more: refused at
 * start (exit 2). A runner's own arguments and environment entries. */
#define SL_RUNNERS_MAX 64
#define SL_RUNNER_NAME_MAX 64
#define SL_RUNNER_ARGS_MAX 32
#define SL_RUNNER_ENV_MAX 32
#define SL_RUNNER_LINE_MAX 4096
/* Arguments a client may append (API.md): at most this many, each at most
 * this long. Policy beyond: 400 bad_request. */
#define SL_RUN_ARGS_MAX 64
#define SL_RUN_ARG_BYTES_MAX 4096
/* Pipe reads: one buffer per output stream per run. Policy when the
 * session cannot take more: the read is not re-armed, so the child blocks
 * in write (backpressure, never buffering). A line longer than the buffer
 * is published in buffer-sized pieces. */
#define SL_RUN_READ_BYTES 65536
/* Events one output publish carries at most (the rest waits in the
 * buffer for the next one). */
#define SL_RUN_EVENTS_PER_PUB 1024
/* stdin bytes queued per run (initial stdin and /run/stdin requests not
 * yet written). Policy beyond: 503 overloaded + Retry-After. */
#define SL_RUN_STDIN_PENDING_BYTES_MAX (1u << 20)
/* Exited runs remembered for GET /v1/sessions/{id}/run (oldest forgotten). */
#define SL_RUN_HISTORY_MAX 256
/* The run actor's tick: deadlines (wall time, kill grace, orphan) and
 * publish retries are checked this often. */
#define SL_RUN_TICK_NS (100ull * 1000 * 1000)
/* The spawner thread's housekeeping period: reaps dead grandchildren and
 * counts children and zombies for /health. */
#define SL_RUN_REAP_INTERVAL_NS (250ull * 1000 * 1000)
/* Stack of the vfork-style child between clone and exec. */
#define SL_RUN_SPAWN_STACK_BYTES (64u * 1024)
/* A run's publishes resent because the session actor went away between
 * lookup and delivery (it hibernated); beyond, the output is given up. */
#define SL_RUN_RESENDS_MAX 64
/* --max-runs bound. */
#define SL_RUNS_MAX 4096
_Static_assert(SL_RUN_EVENTS_PER_PUB <= SL_BATCH_EVENTS_MAX, "one publish is one batch");

#endif
