/*
 * Runner declarations (actors/run_conf.c): the NAME=PATH [ARGS] [| OPTIONS]
 * form of --runner and --runners-file lines, defaults taken from the
 * flags, options overriding them, and every malformed declaration refused
 * with a message naming it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "actors/run_int.h"

#include "tests/check.h"

#define SEC 1000000000ull

static sl_config_t base_config(void)
{
    sl_config_t cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.run_mode = "line";
    cfg.run_max_output_bytes = 64u << 20;
    cfg.run_wall_time_ns = 3600 * SEC;
    cfg.run_orphan_timeout_ns = 30 * SEC;
    cfg.run_kill_grace_ns = 2 * SEC;
    return cfg;
}

static void test_run_conf_defaults_and_options(void)
{
    sl_config_t cfg = base_config();
    cfg.runners.items[0] = "plain=/bin/echo hello world";
    cfg.runners.items[1] = "tuned=/bin/cat | mode=chunk max-output=16k wall=0.5 "
                           "orphan-timeout=never concurrency=3 max-args=2 env=A=1 env=B=x=y "
                           "memory-max=64m pids-max=100";
    cfg.runners.count = 2;
    sl_runner_t *rs = calloc(SL_RUNNERS_MAX, sizeof *rs);
    char err[256] = "";
    int n = sl_run__runners_parse(&cfg, rs, err, sizeof err);
    CHECK(n == 2);
    CHECK(strcmp(rs[0].name, "plain") == 0 && strcmp(rs[0].path, "/bin/echo") == 0);
    CHECK(rs[0].nargs == 2 && strcmp(rs[0].args[1], "world") == 0);
    CHECK(!rs[0].chunk && rs[0].max_output_bytes == 64u << 20);
    CHECK(rs[0].orphan_ns == 30 * SEC && rs[0].wall_ns == 3600 * SEC);
    CHECK(rs[0].max_args == SL_RUN_ARGS_MAX && rs[0].concurrency == 0);
    CHECK(rs[1].chunk && rs[1].max_output_bytes == 16384 && rs[1].wall_ns == SEC / 2);
    CHECK(rs[1].orphan_ns == 0 && rs[1].concurrency == 3 && rs[1].max_args == 2);
    CHECK(rs[1].nenv == 2 && strcmp(rs[1].env[1], "B=x=y") == 0 && rs[1].nargs == 0);
    CHECK(rs[1].memory_max == 64u << 20 && rs[1].pids_max == 100 && rs[0].memory_max == 0);
    sl_run__runners_free(rs, n);
    free(rs);
}

static void refused(const char *decl, const char *needle)
{
    sl_config_t cfg = base_config();
    cfg.runners.items[0] = decl;
    cfg.runners.count = 1;
    char err[256] = "";
    CHECK(sl_run_config_check(&cfg, err, sizeof err) == -1);
    if (!strstr(err, needle)) {
        fprintf(stderr, "declaration %s: message %s lacks %s\n", decl, err, needle);
        exit(1);
    }
}

static void test_run_conf_refuses_malformed(void)
{
    refused("noequals", "expected NAME=");
    refused("rel=bin/sh", "expected NAME=");
    refused("bad name=/bin/sh", "expected NAME=");
    refused("x=/bin/sh | mode=fast", "bad value");
    refused("x=/bin/sh | max-args=65", "bad value");
    refused("x=/bin/sh | colour=blue", "unknown option");
    refused("x=/bin/sh | env=novalue", "bad value");
    refused("x=/bin/sh | wall=-1", "bad value");
    sl_config_t cfg = base_config();
    cfg.runners.items[0] = "x=/bin/sh";
    cfg.runners.items[1] = "x=/bin/true";
    cfg.runners.count = 2;
    char err[256] = "";
    CHECK(sl_run_config_check(&cfg, err, sizeof err) == -1 && strstr(err, "twice"));
}

static void test_run_conf_file(void)
{
    char path[] = "/tmp/sluice-runners-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    const char *text = "# comment\n\nfile1=/bin/true\n  file2=/bin/false a b | mode=chunk\n";
    CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    close(fd);
    sl_config_t cfg = base_config();
    cfg.runners_file = path;
    sl_runner_t *rs = calloc(SL_RUNNERS_MAX, sizeof *rs);
    char err[256] = "";
    int n = sl_run__runners_parse(&cfg, rs, err, sizeof err);
    CHECK(n == 2 && strcmp(rs[1].name, "file2") == 0 && rs[1].chunk && rs[1].nargs == 2);
    sl_run__runners_free(rs, n);
    free(rs);
    unlink(path);
    cfg.runners_file = "/nonexistent/runners";
    CHECK(sl_run_config_check(&cfg, err, sizeof err) == -1 && strstr(err, "--runners-file"));
}

int main(void)
{
    test_run_conf_defaults_and_options();
    test_run_conf_refuses_malformed();
    test_run_conf_file();
    printf("run_test: ok\n");
    return 0;
}
