/*
 * cli_args.c - the `procpool` command's option parser, command template
 * (GNU parallel's replacement strings), shell quoting and expansion.
 *
 * The template is the command words joined by single spaces, as GNU
 * parallel does; replacement strings in it are recognised once, at start-up,
 * into a list of segments. A job's command is then either a string for
 * the user's shell -c (each inserted value shell-quoted) or, when the literal text has
 * no shell syntax, an argv for direct exec (values verbatim): the two give
 * the same words, the second without a shell per job.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cli.h"

/* ---------------------------------------------------------------- */
/* helpers                                                           */
/* ---------------------------------------------------------------- */

void die(const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "procpool: %s\n", msg);
    exit(255);
}

void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p)
        die("out of memory");
    return p;
}

void *xrealloc(void *p, size_t n) {
    p = realloc(p, n ? n : 1);
    if (!p)
        die("out of memory");
    return p;
}

char *xstrdup(const char *s) { return xstrndup(s, strlen(s)); }

char *xstrndup(const char *s, size_t n) {
    char *p = xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

void sb_grow(sbuf_t *b, size_t extra) {
    if (b->len + extra + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1)
        cap *= 2;
    b->p = xrealloc(b->p, cap);
    b->cap = cap;
}

void sb_add(sbuf_t *b, const void *data, size_t len) {
    sb_grow(b, len);
    if (len)
        memcpy(b->p + b->len, data, len);
    b->len += len;
    b->p[b->len] = 0;
}

void sb_adds(sbuf_t *b, const char *s) { sb_add(b, s, strlen(s)); }

void sb_addc(sbuf_t *b, char c) { sb_add(b, &c, 1); }

void sb_free(sbuf_t *b) {
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

void sv_push(strvec_t *v, char *s) {
    if (v->n + 1 >= v->cap) {
        v->cap = v->cap ? v->cap * 2 : 8;
        v->v = xrealloc(v->v, v->cap * sizeof *v->v);
    }
    v->v[v->n++] = s;
    v->v[v->n] = NULL;
}

/* ---------------------------------------------------------------- */
/* quoting and modifiers                                             */
/* ---------------------------------------------------------------- */

static bool q_safe(unsigned char c) {
    return isalnum(c) || c == '-' || c == '_' || c == '.' || c == '+' || c == '/';
}

/* GNU parallel's Q(): words of [-_.+a-zA-Z0-9/] stay as they are, the empty
 * string is '', anything else is put in single quotes ('\'' as '"'"'). */
void shell_quote(sbuf_t *out, const char *s, size_t len) {
    if (len == 0) {
        sb_add(out, "''", 2);
        return;
    }
    bool safe = true;
    for (size_t i = 0; i < len && safe; i++)
        safe = q_safe((unsigned char)s[i]);
    if (safe) {
        sb_add(out, s, len);
        return;
    }
    size_t start = out->len;
    sb_addc(out, '\'');
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\'')
            sb_add(out, "'\"'\"'", 5);
        else
            sb_addc(out, s[i]);
    }
    sb_addc(out, '\'');
    /* drop the '' left at either end by a leading or trailing quote */
    if (out->len - start >= 2 && out->p[start] == '\'' && out->p[start + 1] == '\'') {
        memmove(out->p + start, out->p + start + 2, out->len - start - 2);
        out->len -= 2;
        out->p[out->len] = 0;
    }
    if (out->len - start >= 2 && out->p[out->len - 1] == '\'' && out->p[out->len - 2] == '\'') {
        out->len -= 2;
        out->p[out->len] = 0;
    }
}

/* {.}: s:\.[^/.]*$:: */
static size_t noext_len(const char *s, size_t len) {
    for (size_t i = len; i-- > 0;) {
        if (s[i] == '/')
            return len;
        if (s[i] == '.')
            return i;
    }
    return len;
}

void apply_mod(sbuf_t *out, const char *s, int mod) {
    size_t len = strlen(s);
    switch (mod) {
    case MOD_NOEXT:
        sb_add(out, s, noext_len(s, len));
        return;
    case MOD_BASE:
    case MOD_BASENOEXT: {
        const char *b = strrchr(s, '/');
        b = b ? b + 1 : s;
        size_t bl = strlen(b);
        sb_add(out, b, mod == MOD_BASE ? bl : noext_len(b, bl));
        return;
    }
    case MOD_DIR: { /* Perl's File::Basename::dirname */
        size_t n = len;
        while (n > 1 && s[n - 1] == '/')
            n--;
        if (n == 1 && s[0] == '/') {
            sb_addc(out, '/');
            return;
        }
        while (n > 0 && s[n - 1] != '/')
            n--;
        if (n == 0) {
            sb_addc(out, '.');
            return;
        }
        while (n > 1 && s[n - 1] == '/')
            n--;
        sb_add(out, s, n);
        return;
    }
    default:
        sb_add(out, s, len);
    }
}

/* ---------------------------------------------------------------- */
/* the template                                                      */
/* ---------------------------------------------------------------- */

static void seg_push(tmpl_t *t, seg_t s) {
    t->seg = xrealloc(t->seg, (t->nseg + 1) * sizeof *t->seg);
    t->seg[t->nseg++] = s;
}

static void lit_push(tmpl_t *t, sbuf_t *lit) {
    if (!lit->len)
        return;
    seg_t s = {.kind = SEG_LIT, .lit = xstrndup(lit->p, lit->len), .len = lit->len};
    seg_push(t, s);
    lit->len = 0;
}

/* The shell's reserved words and builtins that have no program of their
 * own: a command starting with one of them goes through /bin/sh. */
static bool shell_word(const char *w, size_t n) {
    static const char *const words[] = {
        "if", "then", "else", "elif", "fi", "case", "esac", "for", "while", "until", "do",
        "done", "in", "function", "select", "time", "!", "{", "}", "[[", "]]", ".", ":",
        "break", "continue", "eval", "exec", "exit", "export", "readonly", "return", "set",
        "shift", "times", "trap", "unset", "cd", "alias", "unalias", "umask", "wait", "read",
        "getopts", "command", "type", "ulimit", "hash", "jobs", "fg", "bg", "local", "source",
        "builtin", "declare", "typeset", "let", "shopt", "pushd", "popd", "dirs", NULL};
    for (int i = 0; words[i]; i++)
        if (strlen(words[i]) == n && memcmp(words[i], w, n) == 0)
            return true;
    return false;
}

/* Parse errors: the entry points (cli_parse_args, tmpl_parse) never exit;
 * the first error's one-line message goes to perr_buf and -1 comes back. */
static char *perr_buf;
static size_t perr_cap;

__attribute__((format(printf, 1, 2))) static int perr(const char *fmt, ...) {
    if (perr_buf && perr_cap) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(perr_buf, perr_cap, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* Recognise a replacement string at p; returns its length and fills *s, 0
 * for plain text, -1 for a malformed one. */
static long parse_rs(const char *p, seg_t *s, const char *replace) {
    if (replace && *replace && strncmp(p, replace, strlen(replace)) == 0) {
        *s = (seg_t){.kind = SEG_ARG, .pos = 0, .mod = MOD_NONE};
        return (long)strlen(replace);
    }
    if (*p != '{')
        return 0; /* the first character of -I's string, but not the whole */
    if (p[1] == '=') {
        const char *end = strstr(p + 2, "=}");
        if (!end)
            return perr("malformed replacement string '%.20s': '{=' without '=}'", p);
        return perr("replacement string '%.*s': Perl expressions {= ... =} are not supported",
                    (int)(end + 2 - p > 200 ? 200 : end + 2 - p), p);
    }
    if (p[1] == '#' && p[2] == '}') {
        *s = (seg_t){.kind = SEG_SEQ};
        return 3;
    }
    if (p[1] == '%' && p[2] == '}') {
        *s = (seg_t){.kind = SEG_SLOT};
        return 3;
    }
    const char *q = p + 1;
    int pos = 0;
    bool have_pos = false, neg = false;
    if (*q == '-' && isdigit((unsigned char)q[1])) {
        neg = true;
        q++;
    }
    if (isdigit((unsigned char)*q)) {
        long v = 0;
        while (isdigit((unsigned char)*q)) {
            v = v * 10 + (*q - '0');
            if (v > 1000000)
                return perr("malformed replacement string '%.20s': position too large", p);
            q++;
        }
        have_pos = true;
        pos = neg ? -(int)v : (int)v;
    }
    int mod;
    size_t ml;
    if (q[0] == '}') {
        mod = MOD_NONE, ml = 0;
    } else if (q[0] == '.' && q[1] == '}') {
        mod = MOD_NOEXT, ml = 1;
    } else if (q[0] == '/' && q[1] == '/' && q[2] == '}') {
        mod = MOD_DIR, ml = 2;
    } else if (q[0] == '/' && q[1] == '.' && q[2] == '}') {
        mod = MOD_BASENOEXT, ml = 2;
    } else if (q[0] == '/' && q[1] == '}') {
        mod = MOD_BASE, ml = 1;
    } else {
        return 0; /* {foo}: plain text, as in GNU parallel */
    }
    if (!have_pos && mod == MOD_NONE && replace && *replace)
        return 0; /* with -I the replacement string for {} is another one */
    if (have_pos && pos == 0)
        return perr("malformed replacement string '%.*s': input positions start at 1",
                    (int)(q + ml + 1 - p), p);
    *s = (seg_t){.kind = SEG_ARG, .pos = pos, .mod = mod};
    return (long)(q + ml + 1 - p);
}

void tmpl_free(tmpl_t *t) {
    for (size_t i = 0; i < t->nseg; i++)
        free(t->seg[i].lit);
    free(t->seg);
    memset(t, 0, sizeof *t);
}

int tmpl_parse(tmpl_t *t, const char *text, const char *replace, bool raw, char *err,
               size_t errlen) {
    memset(t, 0, sizeof *t);
    perr_buf = err, perr_cap = errlen;
    t->raw = raw;
    sbuf_t lit = {0};
    bool first_word = true, in_first = false, first_lit_only = true;
    sbuf_t first = {0};
    for (const char *p = text; *p;) {
        if (*p == ' ' || *p == '\t') {
            lit_push(t, &lit);
            if (t->nseg && t->seg[t->nseg - 1].kind != SEG_SPACE)
                seg_push(t, (seg_t){.kind = SEG_SPACE});
            if (in_first)
                first_word = false;
            while (*p == ' ' || *p == '\t')
                p++;
            continue;
        }
        in_first = first_word;
        seg_t s;
        long n = (*p == '{' || (replace && *replace && *p == *replace)) ? parse_rs(p, &s, replace)
                                                                        : 0;
        if (n < 0) {
            sb_free(&first);
            sb_free(&lit);
            tmpl_free(t);
            return -1;
        }
        if (n) {
            lit_push(t, &lit);
            seg_push(t, s);
            t->has_rs = true;
            if (s.kind == SEG_ARG) {
                if (s.pos > t->max_pos)
                    t->max_pos = s.pos;
            }
            if (first_word)
                first_lit_only = false;
            p += n;
            continue;
        }
        if (strchr("|&;<>()$`\\\"'*?[]#~{}!\n", *p))
            t->needs_shell = true;
        if (first_word) {
            if (*p == '=')
                t->needs_shell = true; /* VAR=value cmd */
            sb_addc(&first, *p);
        }
        sb_addc(&lit, *p++);
    }
    lit_push(t, &lit);
    while (t->nseg && t->seg[t->nseg - 1].kind == SEG_SPACE)
        t->nseg--;
    if (first_lit_only && first.len && shell_word(first.p, first.len))
        t->needs_shell = true;
    if (raw)
        t->needs_shell = true;
    sb_free(&first);
    sb_free(&lit);
    return 0;
}

static void put_num(sbuf_t *b, uint64_t v) {
    char tmp[24];
    int n = snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)v);
    sb_add(b, tmp, (size_t)n);
}

/* The argument {pos} stands for; NULL when the job has no such argument
 * (-N3 with two left: {3}), which expands to nothing at all, as in GNU
 * parallel: not to '', so that 'echo {1} {2} {3}' prints "4 5", with no
 * trailing space. */
static const char *arg_at(char *const *args, size_t nargs, int pos) {
    if (pos > 0)
        return (size_t)pos <= nargs ? args[pos - 1] : NULL;
    size_t back = (size_t)(-(long)pos);
    return back <= nargs ? args[nargs - back] : NULL;
}

static void put_value(const tmpl_t *t, sbuf_t *cmd, sbuf_t *tmp, const char *v, int mod) {
    if (t->raw) {
        apply_mod(cmd, v, mod);
        return;
    }
    tmp->len = 0;
    apply_mod(tmp, v, mod);
    shell_quote(cmd, tmp->p ? tmp->p : "", tmp->len);
}

void tmpl_expand_shell(const tmpl_t *t, sbuf_t *cmd, char *const *args, size_t nargs,
                       uint64_t seq, int slot) {
    sbuf_t tmp = {0};
    for (size_t i = 0; i < t->nseg; i++) {
        const seg_t *s = &t->seg[i];
        switch (s->kind) {
        case SEG_LIT:
            sb_add(cmd, s->lit, s->len);
            break;
        case SEG_SPACE:
            sb_addc(cmd, ' ');
            break;
        case SEG_SEQ:
            put_num(cmd, seq);
            break;
        case SEG_SLOT:
            put_num(cmd, (uint64_t)slot);
            break;
        case SEG_ARG:
            if (s->pos == 0) { /* no arguments (-N0): nothing, as in GNU parallel */
                for (size_t k = 0; k < nargs; k++) {
                    if (k)
                        sb_addc(cmd, ' ');
                    put_value(t, cmd, &tmp, args[k], s->mod);
                }
            } else {
                const char *v = arg_at(args, nargs, s->pos);
                if (v)
                    put_value(t, cmd, &tmp, v, s->mod);
            }
            break;
        }
    }
    if (!t->has_rs && nargs) {
        if (t->nseg)
            sb_addc(cmd, ' ');
        for (size_t k = 0; k < nargs; k++) {
            if (k)
                sb_addc(cmd, ' ');
            put_value(t, cmd, &tmp, args[k], MOD_NONE);
        }
    }
    if (!cmd->p)
        sb_add(cmd, "", 0);
    sb_free(&tmp);
}

size_t tmpl_expand_words(const tmpl_t *t, sbuf_t *w, char *const *args, size_t nargs,
                         uint64_t seq, int slot) {
    size_t count = 0;
    bool in_word = false;
#define END_WORD()                                                                                \
    do {                                                                                          \
        if (in_word) {                                                                            \
            sb_addc(w, 0);                                                                        \
            count++;                                                                              \
            in_word = false;                                                                      \
        }                                                                                         \
    } while (0)
    for (size_t i = 0; i < t->nseg; i++) {
        const seg_t *s = &t->seg[i];
        switch (s->kind) {
        case SEG_LIT:
            sb_add(w, s->lit, s->len);
            in_word = true;
            break;
        case SEG_SPACE:
            END_WORD();
            break;
        case SEG_SEQ:
            put_num(w, seq);
            in_word = true;
            break;
        case SEG_SLOT:
            put_num(w, (uint64_t)slot);
            in_word = true;
            break;
        case SEG_ARG:
            if (s->pos == 0) {
                in_word = in_word || nargs > 0; /* no arguments: no word of its own */
                for (size_t k = 0; k < nargs; k++) {
                    if (k) {
                        END_WORD();
                        in_word = true;
                    }
                    apply_mod(w, args[k], s->mod);
                }
            } else {
                const char *v = arg_at(args, nargs, s->pos);
                if (v) { /* none: no word of its own */
                    apply_mod(w, v, s->mod);
                    in_word = true;
                }
            }
            break;
        }
    }
    END_WORD();
    if (!t->has_rs)
        for (size_t k = 0; k < nargs; k++) {
            sb_add(w, args[k], strlen(args[k]) + 1);
            count++;
        }
#undef END_WORD
    return count;
}

/* ---------------------------------------------------------------- */
/* options                                                           */
/* ---------------------------------------------------------------- */

#include "cli_optable.h" /* OPT_*, long_opts, short_opts, find_long */

static bool is_sep(const char *a) {
    return strcmp(a, ":::") == 0 || strcmp(a, "::::") == 0 || strcmp(a, ":::+") == 0 ||
           strcmp(a, "::::+") == 0;
}

#include "cli_values.h" /* parse_long, parse_jobs, parse_block, parse_halt, parse_time, unescape */

static void set_str(char **dst, const char *v) {
    free(*dst);
    *dst = xstrdup(v);
}

static int set_opt(cli_opts_t *o, int id, const char *name, const char *v) {
    switch (id) {
    case OPT_JOBS:
        free(o->jobs_file);
        o->jobs_file = NULL;
        if (parse_jobs(v, &o->jobs) < 0) {
            /* -j FILE: the value is read from the file (by the command, at
             * start and again as jobs end); an error if there is none */
            if (!*v)
                return -1;
            o->jobs_file = xstrdup(v);
            o->jobs = 1;
        }
        o->jobs_set = true;
        break;
    case OPT_KEEP: o->keep_order = true; break;
    case OPT_NOKEEP: o->keep_order = false; break;
    case OPT_GROUP: o->group = true; break;
    case OPT_WILLCITE: break; /* GNU parallel's citation notice: procpool has none */
    case OPT_RETIRED_G: return perr("-g has been retired; use --group");
    case OPT_TAG: o->tag = true; break;
    case OPT_LB: o->line_buffer = true; break;
    case OPT_UNGROUP: o->ungroup = true; break;
    case OPT_VERBOSE: o->verbose = true; break;
    case OPT_VERBOSE_ERR: o->verbose_err = true; break;
    case OPT_REPLACE_OPT: /* --replace, -i: no value (or an empty one) is {} */
        free(o->replace);
        o->replace = *v ? xstrdup(v) : NULL;
        break;
    case OPT_TIMEOUT: return parse_time(name, v, &o->timeout); /* 0: none, as in GNU */
    case OPT_RETRIES: {
        long r;
        if (parse_long(name, v, 0, 1000000, &r) < 0)
            return -1;
        o->retries = (int)r;
        break;
    }
    case OPT_HALT: return parse_halt(o, v);
    case OPT_DRY: o->dry_run = true; break;
    case OPT_JOBLOG:
        if (!*v)
            return perr("--joblog: empty file name");
        set_str(&o->joblog, v);
        break;
    case OPT_RESUME: o->resume = true; break;
    case OPT_RESUME_FAILED: o->resume_failed = true; break;
    case OPT_SHELL: o->shell = SHELL_ALWAYS; break;
    case OPT_NOSHELL: o->shell = SHELL_NEVER; break;
    case OPT_PIPE: o->pipe = true; break;
    case OPT_PIPEPART: o->pipe_part = true; break;
    case OPT_BLOCK:
        o->block_set = true;
        return parse_block(name, v, &o->block, &o->block_parts);
    case OPT_RECEND:
        free(o->recend);
        o->recend = unescape(v, &o->recend_len);
        break;
    case OPT_RECSTART:
        free(o->recstart);
        o->recstart = unescape(v, &o->recstart_len);
        break;
    case OPT_MAXREP:
    case OPT_MAXARGS: {
        /* -N0: a job per input, given none of it (GNU parallel); with
         * --pipe it is no -N at all, as there */
        long n;
        if (parse_long(name, v, 0, 100000000, &n) < 0)
            return -1;
        o->zero_args = n == 0;
        o->max_args = n;
        return 0;
    }
    case OPT_BAR: o->bar = true; break;
    case OPT_ETA: o->eta = true; break;
    case OPT_REPLACE:
        if (!*v)
            return perr("-I: empty replacement string");
        set_str(&o->replace, v);
        break;
    case OPT_NULL:
        o->delim = 0;
        o->delim_set = true;
        break;
    case OPT_DELIM: {
        size_t n;
        char *d = unescape(v, &n);
        free(o->delim_str);
        o->delim_str = NULL;
        o->delim_len = n;
        if (n == 0) {
            free(d);
            return perr("-d: the delimiter is empty");
        }
        o->delim = d[0];
        o->delim_set = true;
        if (n > 1) /* several characters, e.g. '\r\n' */
            o->delim_str = d;
        else
            free(d);
        break;
    }
    case OPT_ARGFILE: sv_push(&o->arg_files, xstrdup(v)); break;
    case OPT_HELP: return CLI_PARSE_HELP;
    case OPT_VERSION: return CLI_PARSE_VERSION;
    case OPT_QUOTE:
        return perr("-q/--quote is not supported; quote the command for the shell instead");
    }
    return 0;
}

static void sv_free(strvec_t *v) {
    for (size_t i = 0; i < v->n; i++)
        free(v->v[i]);
    free(v->v);
    memset(v, 0, sizeof *v);
}

void cli_opts_free(cli_opts_t *o) {
    free(o->joblog);
    free(o->recend);
    free(o->recstart);
    free(o->replace);
    free(o->delim_str);
    free(o->jobs_file);
    for (size_t k = 0; k < o->nsrc; k++) {
        sv_free(&o->src[k].args);
        free(o->src[k].path);
    }
    free(o->src);
    sv_free(&o->arg_files);
    sv_free(&o->cmd);
    tmpl_free(&o->tmpl);
    memset(o, 0, sizeof *o);
}

static input_src_t *add_src(cli_opts_t *o) {
    o->src = xrealloc(o->src, (o->nsrc + 1) * sizeof *o->src);
    input_src_t *s = &o->src[o->nsrc++];
    memset(s, 0, sizeof *s);
    return s;
}

/* A word an optional value does not take: "--", or "-" and more. */
static bool option_like(const char *a) { return strcmp(a, "--") == 0 || (a[0] == '-' && a[1]); }

static int parse_args(cli_opts_t *o, int argc, char **argv) {
    int i = 1;
    /* options */
    while (i < argc) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        }
        if (a[0] != '-' || a[1] == 0 || is_sep(a))
            break;
        if (a[1] == '-') {
            const char *name = a + 2;
            const char *eq = strchr(name, '=');
            size_t nl = eq ? (size_t)(eq - name) : strlen(name);
            const opt_t *op = find_long(name, nl);
            if (!op)
                return -1;
            const char *v = NULL;
            if (op->arg == ARG_OPTIONAL) {
                v = eq ? eq + 1 : i + 1 < argc && !option_like(argv[i + 1]) ? argv[++i] : "";
            } else if (op->arg) {
                if (eq)
                    v = eq + 1;
                else if (i + 1 < argc)
                    v = argv[++i];
                else
                    return perr("option '--%.*s' needs a value", (int)strcspn(op->name, "|"),
                                op->name);
            } else if (eq) {
                return perr("option '--%.*s' takes no value", (int)strcspn(op->name, "|"),
                            op->name);
            }
            char oname[64]; /* as typed, for messages */
            snprintf(oname, sizeof oname, "--%.*s", (int)(nl > 60 ? 60 : nl), name);
            int rc = set_opt(o, op->id, oname, v);
            if (rc != 0)
                return rc;
            i++;
            continue;
        }
        /* a bundle of short options: -kv, -j4, -j 4 */
        for (const char *c = a + 1; *c; c++) {
            int k = 0;
            while (short_opts[k].c && short_opts[k].c != *c)
                k++;
            if (!short_opts[k].c) {
                if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f)
                    return perr("unknown option '-\\x%02x' (see procpool --help)",
                                (unsigned char)*c);
                return perr("unknown option '-%c' (see procpool --help)", *c);
            }
            char oname[4] = {'-', *c, 0, 0};
            int rc;
            if (short_opts[k].arg) {
                const char *v;
                if (c[1])
                    v = c + 1;
                else if (short_opts[k].arg == ARG_OPTIONAL)
                    v = i + 1 < argc && !option_like(argv[i + 1]) ? argv[++i] : "";
                else if (i + 1 < argc)
                    v = argv[++i];
                else
                    return perr("option '-%c' needs a value", *c);
                rc = set_opt(o, short_opts[k].id, oname, v);
                if (rc != 0)
                    return rc;
                break;
            }
            rc = set_opt(o, short_opts[k].id, oname, NULL);
            if (rc != 0)
                return rc;
        }
        i++;
    }
    /* the command */
    while (i < argc && !is_sep(argv[i]))
        sv_push(&o->cmd, xstrdup(argv[i++]));
    /* input sources */
    while (i < argc) {
        const char *sep = argv[i++];
        if (sep[strlen(sep) - 1] == '+')
            return perr("'%s' (--link) is not supported", sep);
        bool file = strcmp(sep, "::::") == 0;
        if (file) {
            if (i >= argc || is_sep(argv[i]))
                return perr("'::::' needs at least one file name");
            while (i < argc && !is_sep(argv[i])) {
                input_src_t *s = add_src(o);
                s->kind = IN_FILE;
                s->path = xstrdup(argv[i++]);
            }
        } else {
            input_src_t *s = add_src(o);
            s->kind = IN_ARGS;
            while (i < argc && !is_sep(argv[i]))
                sv_push(&s->args, xstrdup(argv[i++]));
        }
    }
    /* consistency */
    if (o->pipe && o->pipe_part)
        return perr("--pipe and --pipe-part exclude each other");
    if (o->pipe_part) {
        /* the file to split: -a FILE or :::: FILE; ::: groups are ignored
         * (GNU parallel uses them only with --tee) */
        size_t files = o->arg_files.n;
        for (size_t k = 0; k < o->nsrc; k++)
            files += o->src[k].kind == IN_FILE;
        if (files != 1)
            return perr("--pipe-part needs exactly one file to split (-a FILE or :::: FILE)");
        for (size_t k = 0; k < o->nsrc; k++)
            if (o->src[k].kind == IN_FILE) {
                sv_push(&o->arg_files, o->src[k].path);
                memmove(o->src + k, o->src + k + 1, (o->nsrc - k - 1) * sizeof *o->src);
                o->nsrc--;
                break;
            }
    } else {
        for (size_t k = 0; k < o->arg_files.n; k++) { /* -a FILE is :::: FILE, first */
            add_src(o);
            memmove(o->src + k + 1, o->src + k, (o->nsrc - 1 - k) * sizeof *o->src);
            o->src[k] = (input_src_t){.kind = IN_FILE, .path = xstrdup(o->arg_files.v[k])};
        }
    }
    if (o->block_parts && !o->pipe_part)
        return perr("--block -%ld (parts per job slot) needs --pipe-part", o->block_parts);
    if (o->pipe_part && !o->block_set)
        o->block_parts = 10; /* GNU parallel's default: 10 parts per job slot */
    if (o->pipe && o->nsrc)
        return perr("--pipe reads its data from stdin and takes no ::: or :::: inputs");
    if ((o->resume || o->resume_failed) && !o->joblog)
        return perr("--resume and --resume-failed need --joblog FILE");
    if (o->group && (o->ungroup || o->line_buffer))
        return perr("--group cannot be combined with %s", o->ungroup ? "--ungroup" : "--line-buffer");
    if (o->ungroup && (o->tag || o->line_buffer))
        return perr("-u/--ungroup cannot be combined with --tag or --line-buffer");
    if (!o->recend && !o->recstart) {
        o->recend = xstrdup("\n");
        o->recend_len = 1;
    } else if (!o->recend) {
        o->recend = xstrdup("");
    }
    if (!o->recstart)
        o->recstart = xstrdup("");
    /* the template */
    bool raw = o->cmd.n == 0;
    if (raw && (o->pipe || o->pipe_part))
        return perr("--pipe needs a command");
    sbuf_t text = {0};
    for (size_t k = 0; k < o->cmd.n; k++) {
        if (k)
            sb_addc(&text, ' ');
        sb_adds(&text, o->cmd.v[k]);
    }
    if (raw)
        sb_adds(&text, o->replace ? o->replace : "{}");
    else if (!text.len) {
        sb_free(&text);
        return perr("empty command");
    }
    int rc = tmpl_parse(&o->tmpl, text.p, o->replace, raw, perr_buf, perr_cap);
    sb_free(&text);
    if (rc < 0)
        return -1;
    if (o->shell == SHELL_ALWAYS)
        o->tmpl.needs_shell = true;
    if (o->shell == SHELL_NEVER && o->tmpl.raw)
        return perr("--no-shell needs a command (the inputs would be shell commands)");
    if (o->shell == SHELL_NEVER)
        o->tmpl.needs_shell = false;
    /* {N} past the last input gives the empty string, as in GNU parallel */
    if (o->pipe || o->pipe_part) {
        for (size_t k = 0; k < o->tmpl.nseg; k++)
            if (o->tmpl.seg[k].kind == SEG_ARG)
                return perr("--pipe: replacement strings for arguments ({}, {1}, ...) have no "
                            "argument to take; use {#} or {%%}");
    }
    if (!o->jobs_set)
        o->jobs = pp_cpu_count();
    return 0;
}

int cli_parse_jobs(const char *v, int *jobs, char *err, size_t errlen) {
    perr_buf = err, perr_cap = errlen;
    int rc = parse_jobs(v, jobs);
    perr_buf = NULL, perr_cap = 0;
    return rc;
}

int cli_parse_args(cli_opts_t *o, int argc, char **argv, char *err, size_t errlen) {
    memset(o, 0, sizeof *o);
    o->delim = '\n';
    o->block = 1024 * 1024;
    if (err && errlen)
        err[0] = 0;
    perr_buf = err, perr_cap = errlen;
    int rc = parse_args(o, argc, argv);
    perr_buf = NULL, perr_cap = 0;
    return rc;
}
