/*
 * sluicectl's commands and what they share: the global options, the
 * connection, option parsing, the exit statuses, and how an RPC failure
 * or a server error becomes a message on stderr and an exit status.
 *
 * Each command is `int sl_ctl_cmd_NAME(sl_ctl_t *ctl, int argc, char **argv)`
 * with argv[0] the command's name; it returns the process exit status.
 * Single-threaded.
 */
#ifndef SL_TOOLS_CTL_CMD_H
#define SL_TOOLS_CTL_CMD_H

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>

#include "tools/sluicectl/ctl_rpc.h"

/* Exit statuses, documented in --help; scripts rely on them. */
enum {
    SL_CTL_EXIT_OK = 0,
    SL_CTL_EXIT_SERVER = 1, /* the server answered an error */
    SL_CTL_EXIT_USAGE = 2,
    SL_CTL_EXIT_CONN = 3,      /* cannot connect, connection lost, timeout */
    SL_CTL_EXIT_NOT_FOUND = 4, /* the server answered not_found */
};

#define SL_CTL_ADDR_MAX 512
/* --timeout bounds: a wait of zero would fail every call; a day is long
 * enough for anything but tail, which waits without a limit anyway. */
#define SL_CTL_TIMEOUT_MAX_S 86400.0
/* Data read for one event (argument or stdin). The server refuses events
 * above --max-event-bytes (default 1 MiB) and messages above its
 * --max-rpc-message-bytes; this only stops sluicectl itself from reading
 * without end. Policy: usage error, nothing is sent. */
#define SL_CTL_DATA_BYTES_MAX (64u << 20)
/* Publishes outstanding at once with --lines (responses are matched by
 * msgid, seqs printed in input order). */
#define SL_CTL_PIPELINE 64
/* sessions --all: pages followed at most (1000 sessions each). */
#define SL_CTL_PAGES_MAX 100000u

/* Long-only global options (values no command uses). */
enum { SL_CTL_OPT_TLS = 0x1001, SL_CTL_OPT_CACERT, SL_CTL_OPT_INSECURE };

typedef struct sl_ctl {
    char addr[SL_CTL_ADDR_MAX];
    sl_ctl_tls_t tls;                /* --tls / tls://, --cacert, --insecure */
    char cacert[SL_CTL_ADDR_MAX];
    bool json;
    int timeout_ms;
    const char *token; /* --token / SLUICE_TOKEN (borrowed: argv or environ); NULL: none */
    sl_ctl_rpc_t *rpc; /* owned; opened by sl_ctl_open */
} sl_ctl_t;

/* Sets ctl's defaults from the environment (SLUICE_RPC, SLUICE_JSON,
 * SLUICE_TIMEOUT, SLUICE_TOKEN). Returns 0, or SL_CTL_EXIT_USAGE after printing why. */
int sl_ctl_env(sl_ctl_t *ctl);
/* Applies one global option (short name 'r', 'j', 't' or 'k', value optarg).
 * Returns 0, or SL_CTL_EXIT_USAGE after printing why. */
int sl_ctl_global_opt(sl_ctl_t *ctl, int opt, const char *val);

/* The global options, to append to a command's own getopt_long table;
 * their short names are 'r', 'j', 't' and 'k' (long-only). */
#define SL_CTL_GLOBAL_LONGOPTS                                                                     \
    {"rpc", required_argument, NULL, 'r'}, {"json", no_argument, NULL, 'j'},                       \
        {"timeout", required_argument, NULL, 't'}, {"tls", no_argument, NULL, SL_CTL_OPT_TLS},     \
        {"cacert", required_argument, NULL, SL_CTL_OPT_CACERT},                                    \
        {"insecure", no_argument, NULL, SL_CTL_OPT_INSECURE},                                      \
        {"token", required_argument, NULL, 'k'},                                               \
    {                                                                                              \
        "help", no_argument, NULL, 'h'                                                             \
    }

/* Parses a command's options (getopt_long, permuted) with its own table
 * `opts` (which must end with SL_CTL_GLOBAL_LONGOPTS and a zero entry);
 * global ones are applied to ctl, each other one passed to on_opt(ctl,
 * cmd_state, opt, optarg). On return *first_arg is the index of the first
 * operand. Returns 0; 1 when --help was asked (usage printed, exit 0); or
 * SL_CTL_EXIT_USAGE after printing why. */
typedef int (*sl_ctl_opt_cb)(sl_ctl_t *ctl, void *state, int opt, const char *val);
int sl_ctl_parse(sl_ctl_t *ctl, int argc, char **argv, const struct option *opts,
                 sl_ctl_opt_cb on_opt, void *state, const char *usage, int *first_arg);

/* Connects ctl->rpc and, with a token, sends `auth [token]` first.
 * Returns 0, or SL_CTL_EXIT_CONN / SL_CTL_EXIT_USAGE (bad address) /
 * SL_CTL_EXIT_SERVER (token refused) after printing why. */
int sl_ctl_open(sl_ctl_t *ctl);
/* The deadline for one reply: now + --timeout. */
int64_t sl_ctl_deadline(const sl_ctl_t *ctl);
/* Sends the request begun with sl_ctl_rpc_begin and waits for its
 * response. Returns 0 with *resp filled (release it) — which may carry a
 * server error — or the exit status after printing why (3). */
int sl_ctl_call(sl_ctl_t *ctl, uint32_t msgid, sl_ctl_msg_t *resp);
/* Prints a transport failure (rc from ctl_rpc) on stderr. Returns 3. */
int sl_ctl_fail(const sl_ctl_t *ctl, int rc, const char *what);
/* Prints a server error object (borrowed; [code, message] or anything
 * else) on stderr. Returns 4 for not_found, else 1. */
int sl_ctl_server_error(const msgpack_object *err);
/* Prints "sluicectl: " and the message on stderr. Returns 2 (usage). */
int sl_ctl_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Parses a decimal u64 (the whole string). Returns 0 or -1. */
int sl_ctl_parse_u64(const char *s, uint64_t *out);

/* Looks up key in map o (borrowed); NULL when o is not a map or has no
 * such key. */
const msgpack_object *sl_ctl_map_get(const msgpack_object *o, const char *key);
/* Packs a str. */
void sl_ctl_pack_str(msgpack_packer *pk, const char *s, size_t len);

int sl_ctl_cmd_publish(sl_ctl_t *ctl, int argc, char **argv);
int sl_ctl_cmd_tail(sl_ctl_t *ctl, int argc, char **argv);
int sl_ctl_cmd_sessions(sl_ctl_t *ctl, int argc, char **argv);
int sl_ctl_cmd_stat(sl_ctl_t *ctl, int argc, char **argv);
int sl_ctl_cmd_health(sl_ctl_t *ctl, int argc, char **argv);
int sl_ctl_cmd_create(sl_ctl_t *ctl, int argc, char **argv);
int sl_ctl_cmd_close(sl_ctl_t *ctl, int argc, char **argv);
int sl_ctl_cmd_rm(sl_ctl_t *ctl, int argc, char **argv);
int sl_ctl_cmd_token(sl_ctl_t *ctl, int argc, char **argv);

#endif
