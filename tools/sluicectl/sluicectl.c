/*
 * sluicectl: the command-line client of sluice's msgpack-RPC interface.
 * Parses the global options, picks the command and returns its exit
 * status (0 ok, 1 server error, 2 usage, 3 connection, 4 not_found).
 */
#include <stdio.h>
#include <string.h>

#include "tools/sluicectl/ctl_cmd.h"

typedef struct command {
    const char *name;
    int (*run)(sl_ctl_t *ctl, int argc, char **argv);
    const char *summary;
} command_t;

static const command_t commands[] = {
    {"publish", sl_ctl_cmd_publish, "SESSION [DATA|-]  publish an event (or one per line)"},
    {"tail", sl_ctl_cmd_tail, "SESSION           follow a session's events"},
    {"sessions", sl_ctl_cmd_sessions, "                  list sessions"},
    {"stat", sl_ctl_cmd_stat, "SESSION           one session's stats"},
    {"health", sl_ctl_cmd_health, "                  the server's health snapshot"},
    {"create", sl_ctl_cmd_create, "SESSION           create a session"},
    {"close", sl_ctl_cmd_close, "SESSION           close a session for good"},
    {"rm", sl_ctl_cmd_rm, "SESSION           delete a session and its events"},
    {"token", sl_ctl_cmd_token, "--secret-file F  mint an HS256 access token (no server)"},
};

static void usage(FILE *f)
{
    fputs("usage: sluicectl [--rpc ADDR] [--json] [--timeout SECONDS] COMMAND [ARGS]\n"
          "Talks to a sluice server over msgpack-RPC (sluiced --rpc-listen).\n\n"
          "Options (also accepted after the command):\n"
          "  --rpc HOST:PORT|unix:PATH  server address [env SLUICE_RPC; default 127.0.0.1:7070];\n"
          "                             tls://HOST:PORT speaks TLS (as --tls does)\n"
          "  --tls                      TLS to a TCP address (sluiced --tls-cert)\n"
          "  --cacert FILE              TLS: trust this CA (default: the system store)\n"
          "  --insecure                 TLS: accept any server certificate\n"
          "  --json                     JSON output [env SLUICE_JSON=1]\n"
          "  --timeout SECONDS          bound on connecting and on each answer\n"
          "                             [env SLUICE_TIMEOUT; default 10]; tail waits for\n"
          "                             events without a bound\n"
          "  --token JWT                access token, sent as `auth [token]` first\n"
          "                             [env SLUICE_TOKEN]\n"
          "  --help                     this text; COMMAND --help for a command's\n\n"
          "Commands:\n",
          f);
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].summary);
    fputs("\nExit status:\n"
          "  0  ok\n"
          "  1  the server answered an error (its code and message are printed on stderr)\n"
          "  2  usage: bad command, option or argument\n"
          "  3  cannot connect, connection lost, or no answer within --timeout\n"
          "  4  the server answered not_found (e.g. stat, tail, rm of an unknown session)\n\n"
          "JSON output converts the server's msgpack faithfully; str and bin values become\n"
          "JSON strings holding the text when the bytes are valid UTF-8, else their standard\n"
          "base64; ext values become {\"ext_type\": N, \"data\": BASE64}.\n",
          f);
}

static const struct option global_opts[] = {SL_CTL_GLOBAL_LONGOPTS, {0}};

int main(int argc, char **argv)
{
    static sl_ctl_t ctl;
    int rc = sl_ctl_env(&ctl);
    if (rc != 0)
        return rc;
    opterr = 0;
    int opt;
    /* '+': stop at the command; its own options are parsed by it. */
    while ((opt = getopt_long(argc, argv, "+:h", global_opts, NULL)) != -1) {
        if (opt == 'h') {
            usage(stdout);
            return SL_CTL_EXIT_OK;
        }
        if (opt == ':' || opt == '?') {
            fprintf(stderr, "sluicectl: %s '%s'; see sluicectl --help\n",
                    opt == ':' ? "missing value for" : "unknown option", argv[optind - 1]);
            return SL_CTL_EXIT_USAGE;
        }
        if ((rc = sl_ctl_global_opt(&ctl, opt, optarg)) != 0)
            return rc;
    }
    if (optind >= argc) {
        usage(stderr);
        return SL_CTL_EXIT_USAGE;
    }
    const char *name = argv[optind];
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(commands[i].name, name) == 0) {
            rc = commands[i].run(&ctl, argc - optind, argv + optind);
            sl_ctl_rpc_close(ctl.rpc);
            if (fflush(stdout) != 0 && rc == SL_CTL_EXIT_OK) {
                perror("sluicectl: cannot write the output");
                rc = SL_CTL_EXIT_SERVER;
            }
            return rc;
        }
    }
    fprintf(stderr, "sluicectl: unknown command '%s'; see sluicectl --help\n", name);
    return SL_CTL_EXIT_USAGE;
}
