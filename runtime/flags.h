/*
 * Command-line flags with environment twins.
 *
 * A program declares a table of sl_flag_t (name, kind, default, help, where
 * to store the value, bounds). sl_flags_parse applies defaults, then the
 * environment (SLUICE_<NAME> with '-' as '_'), then argv (`--name value` or
 * `--name=value`), so a flag beats its env twin. Bad input is reported with
 * the flag's name and the accepted form; the caller exits 2.
 */
#ifndef SL_RUNTIME_FLAGS_H
#define SL_RUNTIME_FLAGS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum sl_flag_kind {
    SL_FLAG_STRING,   /* const char * (borrowed from argv/env/default) */
    SL_FLAG_U64,      /* uint64_t within [min, max] */
    SL_FLAG_U32,      /* uint32_t within [min, max] */
    SL_FLAG_SECONDS,  /* uint64_t nanoseconds; input in seconds, "1", "0.5" */
    SL_FLAG_BYTES,    /* uint64_t; accepts suffixes k, m, g (binary) */
    SL_FLAG_BOOL,     /* bool; "1/0/true/false/yes/no/on/off"; bare flag = true */
    SL_FLAG_ENUM,     /* const char * one of `choices` ("a|b|c") */
    SL_FLAG_LIST,     /* repeatable string: appended to a sl_flag_list_t */
} sl_flag_kind_t;

#define SL_FLAG_LIST_MAX 8

typedef struct sl_flag_list {
    const char *items[SL_FLAG_LIST_MAX];
    uint32_t count;
} sl_flag_list_t;

typedef struct sl_flag {
    const char *name;     /* without leading dashes, e.g. "listen" */
    sl_flag_kind_t kind;
    const char *def;      /* default as text; NULL = unset (strings) */
    const char *help;
    void *target;
    uint64_t min, max;    /* numeric bounds (nanoseconds for SECONDS) */
    const char *choices;  /* ENUM: "a|b|c" */
} sl_flag_t;

/* Parses env then argv into the table's targets. On error writes one line
 * to err_out (size n) and returns -1; returns 1 when --help was asked (help
 * printed to stdout), 2 for --version, 0 otherwise. */
int sl_flags_parse(const sl_flag_t *flags, size_t nflags, int argc, char **argv,
                   const char *env_prefix, char *err_out, size_t n);

/* Prints usage: every flag, its env twin, default and help. */
void sl_flags_usage(FILE *out, const char *prog, const char *summary, const sl_flag_t *flags,
                    size_t nflags, const char *env_prefix);

#endif
