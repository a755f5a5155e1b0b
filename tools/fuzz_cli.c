/*
 * fuzz_cli.c - libFuzzer harness for the `procpool` command's option parser
 * and replacement-string (template) parser and expander.
 *
 * Built only with clang and -DPROCPOOL_FUZZ=ON (target fuzz_cli):
 *   CC=clang cmake -S . -B build-fuzz -DPROCPOOL_FUZZ=ON && cmake --build build-fuzz \
 *       --target fuzz_cli && build-fuzz/fuzz_cli -max_total_time=60 tools/fuzz_corpus
 *
 * Input: the first byte picks what runs, the rest is split on NUL bytes
 * into pieces.
 *   byte 0 bit 0 clear: the pieces are argv[1..] of a command line, given to
 *     cli_parse_args(); a parsed template is then expanded for a few
 *     argument lists (the ::: values when there are any).
 *   byte 0 bit 0 set: piece 0 is a template, piece 1 the -I string (empty:
 *     none), the rest the job's arguments; bit 1 is `raw` (no command), bit
 *     2 parses piece 0 as -q's one word (tmpl_parse_quoted), bit 3 makes it
 *     -X's (context) and gives it --header names ({a}, {name}, {x.y}); the
 *     other bits the job number and slot. tmpl_parse, tmpl_expand_shell,
 *     tmpl_expand_words, tmpl_expand_raw, shell_quote and apply_mod (every
 *     modifier, --plus's too) run on them.
 * Options mode also expands --tagstring's and --results' templates, and
 * parses the command again with --header names (the first ::: values). A
 * template with {= =} is expanded with the arguments standing in for the
 * values perl would add.
 * Neither parser may crash, leak, exit or start anything; the expanders'
 * word counts must match the words they wrote.
 */
#ifdef PROCPOOL_FUZZ_HARNESS /* the command (every tools .c file) gets nothing from here */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* procpool.c's, which the harness does not link: unused by the parser. */
cli_worker_cfg_t g_wcfg;

#define MAX_PIECES 256

static void check_words(const sbuf_t *w, size_t count) {
    size_t zeros = 0;
    for (size_t i = 0; i < w->len; i++)
        zeros += w->p[i] == 0;
    if (zeros != count) {
        fprintf(stderr, "fuzz_cli: tmpl_expand_words returned %zu words but wrote %zu\n", count,
                zeros);
        abort();
    }
}

static void expand(const tmpl_t *t, char *const *args, size_t nargs, uint64_t seq, int slot) {
    sbuf_t cmd = {0}, words = {0}, raw = {0};
    tmpl_expand_shell(t, &cmd, args, nargs, seq, slot);
    if (!cmd.p || strlen(cmd.p) > cmd.len)
        abort();
    size_t n = tmpl_expand_words(t, &words, args, nargs, seq, slot);
    check_words(&words, n);
    tmpl_expand_raw(t, &raw, args, nargs, seq, slot);
    if (!raw.p)
        abort();
    if (tmpl_real_args(t, nargs) > nargs)
        abort();
    sb_free(&cmd);
    sb_free(&words);
    sb_free(&raw);
}

static void run_options(char **pieces, size_t n) {
    char *argv[MAX_PIECES + 2];
    argv[0] = "procpool";
    for (size_t i = 0; i < n; i++)
        argv[i + 1] = pieces[i];
    argv[n + 1] = NULL;
    cli_opts_t o;
    char err[256];
    int rc = cli_parse_args(&o, (int)n + 1, argv, err, sizeof err);
    if (rc != 0 && rc != CLI_PARSE_HELP && rc != CLI_PARSE_VERSION && rc != -1)
        abort();
    if (rc < 0 && !err[0]) {
        fprintf(stderr, "fuzz_cli: an error without a message\n");
        abort();
    }
    if (rc == 0) {
        char *none[1] = {NULL};
        char *two[3] = {"dir/file.tar.gz", "it's a \"test\"", NULL};
        expand(&o.tmpl, none, 0, 1, 1);
        expand(&o.tmpl, two, 2, 18446744073709551615ull, 4096);
        for (size_t k = 0; k < o.nsrc; k++)
            if (o.src[k].kind == IN_ARGS)
                expand(&o.tmpl, o.src[k].args.v, o.src[k].args.n, k + 1, (int)k);
        if (o.tagstring)
            expand(&o.tagtmpl, two, 2, 7, 2);
        if (o.results)
            expand(&o.restmpl, two, 2, 7, 2);
        /* --header: the command again, with names */
        if (o.nsrc && o.src[0].kind == IN_ARGS && o.src[0].args.n) {
            if (cli_tmpl_reparse(&o, &o.src[0].args, err, sizeof err) == 0)
                expand(&o.tmpl, o.src[0].args.v, o.src[0].args.n, 3, 1);
            else if (!err[0])
                abort();
        }
    }
    cli_opts_free(&o);
}

static void run_template(uint8_t flags, char **pieces, size_t n) {
    if (n == 0)
        return;
    const char *text = pieces[0];
    const char *replace = n > 1 && pieces[1][0] ? pieces[1] : NULL;
    char **args = n > 2 ? pieces + 2 : pieces + n; /* pieces[n] is NULL */
    size_t nargs = n > 2 ? n - 2 : 0;
    tmpl_t t;
    char err[256];
    char *names_v[4] = {"a", "name", "x.y", NULL};
    strvec_t names = {names_v, 3, 4};
    if (flags & 8)
        tmpl_names = &names;
    char *word = (char *)text;
    int rc = flags & 4 ? tmpl_parse_quoted(&t, &word, 1, replace, err, sizeof err)
                       : tmpl_parse(&t, text, replace, (flags & 2) != 0, err, sizeof err);
    tmpl_names = NULL;
    if (rc == 0) {
        t.context = (flags & 8) != 0;
        expand(&t, args, nargs, flags >> 2, (int)(flags >> 4));
        tmpl_free(&t);
    } else if (!err[0]) {
        fprintf(stderr, "fuzz_cli: a template error without a message\n");
        abort();
    }
    sbuf_t b = {0};
    for (size_t i = 0; i < nargs; i++) {
        shell_quote(&b, args[i], strlen(args[i]));
        for (int m = MOD_NONE; m <= MOD_LAST; m++)
            apply_mod(&b, args[i], m);
    }
    sb_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1 || size > 65536)
        return 0;
    uint8_t flags = data[0];
    /* a private, NUL-terminated copy, cut into pieces at each NUL */
    char *buf = malloc(size);
    memcpy(buf, data + 1, size - 1);
    buf[size - 1] = 0;
    char *pieces[MAX_PIECES + 1];
    size_t n = 0;
    char *p = buf, *end = buf + size - 1;
    while (n < MAX_PIECES && (p < end || (n == 0 && size > 1))) {
        pieces[n++] = p;
        p += strlen(p) + 1;
    }
    pieces[n] = NULL;
    if (flags & 1)
        run_template(flags, pieces, n);
    else
        run_options(pieces, n);
    free(buf);
    return 0;
}

#else
typedef int fuzz_cli_not_built; /* ISO C wants something in a translation unit */
#endif
