/*
 * cli_input.c - the `procpool` command's input sources: from the values of
 * ::: groups and the records of :::: files (or stdin) to each job's
 * arguments.
 *
 *   values   -E (a value that ends its source), --header (the first value of
 *            each source names it), -r (skip values of white space only),
 *            -L/-l (a line that ends in a blank goes on on the next)
 *   tuples   every combination of the sources, the last varying fastest;
 *            linked sources (:::+, ::::+, --link) are read side by side;
 *            --colsep splits each value into columns, {1}, {2}, ...
 *   jobs     one tuple (or -N of them) per job; -m, -X, --xargs: as many as
 *            the command line takes (-s), spread over the job slots when
 *            there are few; --shuf: every job, in a random order
 *
 * Also here: the words of $PARALLEL and ~/.parallel/config, which go before
 * the command line's, and --shellquote.
 */
#include <ctype.h>
#include <errno.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

/* ---------------------------------------------------------------- */
/* $PARALLEL and ~/.parallel/config                                  */
/* ---------------------------------------------------------------- */

/* Split s into words as a shell would (white space; '...', "...", \x),
 * appended to v. */
static void split_words(strvec_t *v, const char *s) {
    sbuf_t w = {0};
    bool in = false;
    for (const char *p = s; *p; p++) {
        if (isspace((unsigned char)*p)) {
            if (in)
                sv_push(v, xstrdup(w.p ? w.p : ""));
            in = false;
            w.len = 0;
            continue;
        }
        in = true;
        if (*p == '\'' || *p == '"') {
            char q = *p++;
            sb_add(&w, "", 0);
            for (; *p && *p != q; p++) {
                if (q == '"' && *p == '\\' && p[1])
                    p++;
                sb_addc(&w, *p);
            }
            if (!*p)
                break;
        } else if (*p == '\\' && p[1]) {
            sb_addc(&w, *++p);
        } else {
            sb_addc(&w, *p);
        }
    }
    if (in)
        sv_push(v, xstrdup(w.p ? w.p : ""));
    sb_free(&w);
}

static char **volatile env_argv; /* the command line cli_env_args made (volatile: kept) */

void cli_env_args(int *argc, char ***argv) {
    strvec_t pre = {0};
    const char *home = getenv("HOME");
    if (home && *home) {
        sbuf_t path = {0};
        sb_adds(&path, home);
        sb_adds(&path, "/.parallel/config");
        FILE *f = fopen(path.p, "re");
        if (f) {
            char *line = NULL;
            size_t cap = 0;
            while (getline(&line, &cap, f) > 0) {
                const char *p = line + strspn(line, " \t");
                if (*p != '#')
                    split_words(&pre, p);
            }
            free(line);
            fclose(f);
        }
        sb_free(&path);
    }
    const char *env = getenv("PARALLEL");
    if (env)
        split_words(&pre, env);
    if (!pre.n)
        return;
    char **nv = xmalloc(((size_t)*argc + pre.n + 1) * sizeof *nv);
    nv[0] = (*argv)[0];
    memcpy(nv + 1, pre.v, pre.n * sizeof *nv);
    memcpy(nv + 1 + pre.n, *argv + 1, (size_t)*argc * sizeof *nv); /* with the NULL */
    *argc += (int)pre.n;
    *argv = nv;
    env_argv = nv; /* reachable to the end, not a leak to LeakSanitizer */
    free(pre.v);   /* the words live on in nv, as long as the process */
}

/* ---------------------------------------------------------------- */
/* sources and values                                                */
/* ---------------------------------------------------------------- */

typedef struct {
    FILE *stream;  /* read as the jobs go (one source only) */
    strvec_t vals; /* or loaded */
    bool ended;    /* -E was met */
} src_t;

static const cli_opts_t *opts;
static cli_read_fn read_rec;
static src_t *S;
static size_t ns;
static bool streaming;
static regex_t colre;
static strvec_t names;
static size_t *idx;  /* per source: the value the next tuple takes */
static size_t *unit; /* per source: the first source of its linked unit */
static bool tuples_done;
static strvec_t pending; /* values read ahead, not yet in a job (-m, -X) */
static size_t pend_from;
static bool spread_done; /* -m/-X: the first fill decided how to spread */
static long spread_per;
static strvec_t *shuffled; /* --shuf: every job */
static size_t nshuf, shuf_at;

static bool blank(const char *s) {
    for (; *s; s++)
        if (!isspace((unsigned char)*s))
            return false;
    return true;
}

/* The next value of source k (NULL at its end): -E, -r and -L's
 * continuation applied. */
static char *next_value(size_t k) {
    src_t *s = &S[k];
    for (;;) {
        if (s->ended || !s->stream)
            return NULL;
        char *r = read_rec(s->stream);
        if (!r)
            return NULL;
        while (opts->max_lines && *r && (r[strlen(r) - 1] == ' ' || r[strlen(r) - 1] == '\t')) {
            char *more = read_rec(s->stream);
            if (!more)
                break;
            size_t a = strlen(r), b = strlen(more);
            r = xrealloc(r, a + b + 1);
            memcpy(r + a, more, b + 1);
            free(more);
        }
        if (opts->eof_str && strcmp(r, opts->eof_str) == 0) {
            free(r);
            s->ended = true;
            return NULL;
        }
        if (opts->no_run_empty && blank(r)) {
            free(r);
            continue;
        }
        return r;
    }
}

/* Split v on --colsep into cols (each column trimmed of blanks, as GNU
 * parallel does); without --colsep, v is the one column. */
static void split_cols(strvec_t *cols, const char *v) {
    if (!opts->colsep) {
        sv_push(cols, xstrdup(v));
        return;
    }
    const char *p = v;
    for (;;) {
        regmatch_t m;
        int flags = p == v ? 0 : REG_NOTBOL;
        bool hit = regexec(&colre, p, 1, &m, flags) == 0 && m.rm_eo > 0;
        size_t len = hit ? (size_t)m.rm_so : strlen(p);
        const char *a = p, *b = p + len;
        while (a < b && (*a == ' ' || *a == '\t'))
            a++;
        while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
            b--;
        sv_push(cols, xstrndup(a, (size_t)(b - a)));
        if (!hit)
            return;
        p += m.rm_eo;
    }
}

int cli_inputs_open(const cli_opts_t *o, cli_read_fn rd, cli_open_fn op, char *err, size_t errlen) {
    opts = o;
    read_rec = rd;
    if (o->colsep && regcomp(&colre, o->colsep, REG_EXTENDED) != 0) {
        snprintf(err, errlen, "--colsep: '%.100s' is not a regular expression", o->colsep);
        return -1;
    }
    ns = o->nsrc ? o->nsrc : 1;
    S = calloc(ns, sizeof *S);
    idx = calloc(ns, sizeof *idx);
    unit = calloc(ns, sizeof *unit);
    if (!S || !idx || !unit)
        die("out of memory");
    streaming = !o->shuf && (o->nsrc == 0 || (o->nsrc == 1 && o->src[0].kind == IN_FILE));
    if (o->retry_failed) { /* the joblog's commands, by job number */
        streaming = false;
        if (cli_retry_commands(o->joblog, &S[0].vals, err, errlen) < 0)
            return -1;
        tuples_done = !S[0].vals.n;
        return 0;
    }
    for (size_t k = 0; k < ns; k++) {
        unit[k] = k > 0 && o->nsrc && o->src[k].linked ? unit[k - 1] : k;
        if (o->nsrc && o->src[k].kind == IN_ARGS) {
            for (size_t i = 0; i < o->src[k].args.n; i++) {
                const char *v = o->src[k].args.v[i];
                if (o->eof_str && strcmp(v, o->eof_str) == 0)
                    break;
                if (!(o->no_run_empty && blank(v)))
                    sv_push(&S[k].vals, xstrdup(v));
            }
            continue;
        }
        S[k].stream = op(o->nsrc ? o->src[k].path : "-");
        if (streaming)
            continue;
        char *r;
        while ((r = next_value(k)))
            sv_push(&S[k].vals, r);
        if (S[k].stream != stdin)
            fclose(S[k].stream);
        S[k].stream = NULL;
    }
    /* --header: the first value of each source names its columns */
    if (o->header) {
        for (size_t k = 0; k < ns; k++) {
            char *h = NULL;
            if (streaming) {
                h = next_value(k);
            } else if (S[k].vals.n) {
                h = S[k].vals.v[0];
                memmove(S[k].vals.v, S[k].vals.v + 1, S[k].vals.n * sizeof *S[k].vals.v);
                S[k].vals.n--;
            }
            split_cols(&names, h ? h : "");
            free(h);
        }
    }
    tuples_done = false;
    if (!streaming)
        for (size_t k = 0; k < ns; k++)
            if (!S[k].vals.n)
                tuples_done = true; /* a source with no values: no combination */
    return 0;
}

const strvec_t *cli_input_names(void) { return names.n ? &names : NULL; }

/* The length of source k's linked unit: the longest (--link) or the
 * shortest (:::+) of its sources. */
static size_t unit_len(size_t u) {
    size_t len = 0;
    bool first = true;
    for (size_t k = u; k < ns && unit[k] == u; k++) {
        size_t n = S[k].vals.n;
        if (first || (opts->link ? n > len : n < len))
            len = n;
        first = false;
    }
    return len;
}

bool cli_inputs_total(uint64_t *jobs_tuples) {
    if (streaming)
        return false;
    double prod = 1;
    for (size_t k = 0; k < ns; k++)
        if (unit[k] == k)
            prod *= (double)unit_len(k);
    *jobs_tuples = (uint64_t)prod;
    return true;
}

/* The next tuple's columns appended to args; false at the end. */
static bool next_tuple(strvec_t *args) {
    if (tuples_done)
        return false;
    if (streaming) {
        char *r = next_value(0);
        if (!r) {
            tuples_done = true;
            return false;
        }
        split_cols(args, r);
        free(r);
        return true;
    }
    for (size_t k = 0; k < ns; k++) {
        size_t n = S[k].vals.n;
        split_cols(args, S[k].vals.v[idx[unit[k]] % n]); /* --link: the shorter wrap */
    }
    /* the last unit varies fastest */
    size_t k = ns;
    while (k-- > 0) {
        if (unit[k] != k)
            continue;
        if (++idx[k] < unit_len(k))
            break;
        idx[k] = 0;
        if (k == 0)
            tuples_done = true;
    }
    return true;
}

/* ---------------------------------------------------------------- */
/* jobs                                                              */
/* ---------------------------------------------------------------- */

/* The longest command line -m, -X and --xargs make: -s, else the length
 * Linux allows one argument (the command given to the shell). */
static size_t max_chars(void) {
    return opts->max_chars > 0 ? (size_t)opts->max_chars : 131072 - 4096;
}

/* The length of the command with args[0..n) ({= =} values taken as empty). */
static size_t line_len(char *const *args, size_t n) {
    static sbuf_t cmd;
    static char **tmp;
    static size_t cap;
    const tmpl_t *t = &opts->tmpl;
    size_t all = n + (t->nperl - t->nperl_all) + t->nperl_all * n;
    if (all + 1 > cap) {
        cap = (all + 1) * 2;
        tmp = xrealloc(tmp, cap * sizeof *tmp);
    }
    memcpy(tmp, args, n * sizeof *tmp);
    for (size_t i = n; i < all; i++)
        tmp[i] = "q";
    cmd.len = 0;
    tmpl_expand_shell(t, &cmd, tmp, all, 1, 1);
    return cmd.len;
}

/* Have at least n values pending (fewer at the end of the input). */
static void fill(size_t n) {
    while (pending.n - pend_from < n) {
        strvec_t t = {0};
        if (!next_tuple(&t))
            break;
        for (size_t i = 0; i < t.n; i++)
            sv_push(&pending, t.v[i]);
        free(t.v);
    }
}

/* -m, -X, --xargs: the next job takes as many values as fit in the line. */
static bool next_multi(strvec_t *args, char *err, size_t errlen) {
    size_t cap = opts->max_args > 0 ? (size_t)opts->max_args : SIZE_MAX;
    size_t lim = max_chars();
    fill(1);
    size_t have = pending.n - pend_from;
    if (!have)
        return false;
    char **base = pending.v + pend_from;
    if (line_len(base, 1) >= lim) {
        snprintf(err, errlen, "Command line too long (%zu >= %zu) at input: %.200s",
                 line_len(base, 1), lim, base[0]);
        return false;
    }
    /* the most that fit: double, then halve the step */
    size_t good = 1, step = 1;
    for (;;) {
        size_t want = good + step;
        if (want > cap)
            want = cap;
        if (want <= good)
            break;
        fill(want);
        base = pending.v + pend_from;
        have = pending.n - pend_from;
        if (want > have)
            want = have;
        if (want <= good)
            break;
        if (line_len(base, want) < lim) {
            good = want;
            step *= 2;
        } else if (step > 1) {
            step /= 2;
        } else {
            break;
        }
    }
    /* -m, -X (not --xargs): when the whole input fits in the first lines,
     * spread it evenly over the job slots, as GNU parallel does */
    if (!spread_done && opts->multi != MULTI_XARGS) {
        spread_done = true;
        fill(good + 1);
        have = pending.n - pend_from;
        if (have <= good) {
            long slots = opts->jobs > 0 ? opts->jobs : 1;
            spread_per = (long)((have + (size_t)slots - 1) / (size_t)slots);
        }
    }
    if (spread_per > 0 && (size_t)spread_per < good)
        good = (size_t)spread_per;
    for (size_t i = 0; i < good; i++)
        sv_push(args, pending.v[pend_from + i]);
    pend_from += good;
    if (pend_from > 4096 && pend_from * 2 > pending.n) {
        memmove(pending.v, pending.v + pend_from, (pending.n - pend_from) * sizeof *pending.v);
        pending.n -= pend_from;
        pend_from = 0;
    }
    return true;
}

static bool next_job_plain(strvec_t *args, char *err, size_t errlen) {
    if (opts->multi != MULTI_NONE)
        return next_multi(args, err, errlen);
    long per = opts->max_args ? opts->max_args : 1;
    for (long k = 0; k < per; k++)
        if (!next_tuple(args))
            break;
    return args->n > 0;
}

/* A random number below n (--shuf). */
static size_t rnd(size_t n) {
    static unsigned long long x;
    if (!x)
        x = (unsigned long long)time(NULL) ^ ((unsigned long long)getpid() << 32) ^
            0x9e3779b97f4a7c15ull;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return (size_t)(x % n);
}

bool cli_next_job(strvec_t *args, char *err, size_t errlen) {
    err[0] = 0;
    if (!opts->shuf)
        return next_job_plain(args, err, errlen);
    if (!shuffled) {
        size_t cap = 0;
        shuffled = xmalloc(sizeof *shuffled);
        for (;;) {
            strvec_t a = {0};
            if (!next_job_plain(&a, err, errlen)) {
                free(a.v);
                break;
            }
            if (nshuf == cap) {
                cap = cap ? cap * 2 : 64;
                shuffled = xrealloc(shuffled, cap * sizeof *shuffled);
            }
            shuffled[nshuf++] = a;
        }
        if (err[0])
            return false;
        for (size_t i = nshuf; i > 1; i--) {
            size_t j = rnd(i);
            strvec_t t = shuffled[i - 1];
            shuffled[i - 1] = shuffled[j];
            shuffled[j] = t;
        }
    }
    if (shuf_at >= nshuf)
        return false;
    strvec_t *a = &shuffled[shuf_at++];
    for (size_t i = 0; i < a->n; i++)
        sv_push(args, a->v[i]);
    free(a->v);
    return true;
}

/* ---------------------------------------------------------------- */
/* --shellquote                                                      */
/* ---------------------------------------------------------------- */

int cli_shellquote(void) {
    strvec_t a = {0};
    sbuf_t line = {0};
    char err[300];
    while (cli_next_job(&a, err, sizeof err)) {
        for (size_t i = 0; i < a.n; i++) {
            line.len = 0;
            if (i)
                sb_addc(&line, ' ');
            shell_quote(&line, a.v[i], strlen(a.v[i]));
            fputs(line.p, stdout);
            free(a.v[i]);
        }
        putchar('\n');
        a.n = 0;
    }
    free(a.v);
    sb_free(&line);
    if (err[0])
        die("%s", err);
    return fflush(stdout) == 0 ? 0 : 255;
}
