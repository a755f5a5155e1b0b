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
#include <regex.h>
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

static void apply_plus_mod(sbuf_t *out, const char *s, int mod); /* cli_plus.h */

void apply_mod(sbuf_t *out, const char *s, int mod) {
    size_t len = strlen(s);
    switch (mod) {
    case MOD_NOEXT: sb_add(out, s, noext_len(s, len)); return;
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
    case MOD_NONE: sb_add(out, s, len); return;
    default: apply_plus_mod(out, s, mod);
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
        "if",       "then",  "else",    "elif",    "fi",      "case",     "esac",    "for",
        "while",    "until", "do",      "done",    "in",      "function", "select",  "time",
        "!",        "{",     "}",       "[[",      "]]",      ".",        ":",       "break",
        "continue", "eval",  "exec",    "exit",    "export",  "readonly", "return",  "set",
        "shift",    "times", "trap",    "unset",   "cd",      "alias",    "unalias", "umask",
        "wait",     "read",  "getopts", "command", "type",    "ulimit",   "hash",    "jobs",
        "fg",       "bg",    "local",   "source",  "builtin", "declare",  "typeset", "let",
        "shopt",    "pushd", "popd",    "dirs",    NULL};
    for (int i = 0; words[i]; i++)
        if (strlen(words[i]) == n && memcmp(words[i], w, n) == 0)
            return true;
    return false;
}

static bool tmpl_plus; /* --plus: its replacement strings are recognised */

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

const strvec_t *tmpl_names;

#include "cli_plus.h" /* --plus: plus_mod, parse_plus, apply_plus_mod, put_plus */

/* {name}, {name.}, ... of a --header name: its length and *s, or 0. */
static long parse_name(const char *p, seg_t *s) {
    if (!tmpl_names)
        return 0;
    for (size_t k = 0; k < tmpl_names->n; k++) {
        const char *nm = tmpl_names->v[k];
        size_t nl = strlen(nm);
        if (!nl || strncmp(p + 1, nm, nl) != 0)
            continue;
        static const struct {
            const char *tail;
            int mod;
        } tails[] = {{"}", MOD_NONE},
                     {".}", MOD_NOEXT},
                     {"//}", MOD_DIR},
                     {"/.}", MOD_BASENOEXT},
                     {"/}", MOD_BASE}};
        for (size_t i = 0; i < sizeof tails / sizeof *tails; i++) {
            size_t tl = strlen(tails[i].tail);
            if (strncmp(p + 1 + nl, tails[i].tail, tl) == 0) {
                *s = (seg_t){.kind = SEG_ARG, .pos = (int)k + 1, .mod = tails[i].mod};
                return (long)(1 + nl + tl);
            }
        }
    }
    return 0;
}

/* {= perl =} and {=N perl =}: its length and *s (the expression in s->lit). */
static long parse_perl(const char *p, seg_t *s) {
    const char *q = p + 2;
    int pos = 0;
    bool neg = *q == '-' && isdigit((unsigned char)q[1]);
    if (neg)
        q++;
    if (isdigit((unsigned char)*q)) {
        long v = 0;
        while (isdigit((unsigned char)*q)) {
            v = v * 10 + (*q++ - '0');
            if (v > 1000000)
                return perr("malformed replacement string '%.20s': position too large", p);
        }
        if (v == 0)
            return perr("malformed replacement string '%.20s': input positions start at 1", p);
        pos = neg ? -(int)v : (int)v;
    } else if (neg) {
        q--;
    }
    const char *end = strstr(q, "=}");
    if (!end)
        return perr("malformed replacement string '%.20s': '{=' without '=}'", p);
    *s = (seg_t){.kind = SEG_PERL,
                 .pos = pos,
                 .lit = xstrndup(q, (size_t)(end - q)),
                 .len = (size_t)(end - q)};
    return (long)(end + 2 - p);
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
    if (p[1] == '=')
        return parse_perl(p, s);
    long named = parse_name(p, s);
    if (named)
        return named;
    long plus = parse_plus(p, s);
    if (plus)
        return plus;
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
    size_t ml, pl = plus_mod(q, &mod);
    if (pl) {
        ml = pl - 1;
    } else if (q[0] == '}') {
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

/* A replacement string s is about to be pushed: what it tells about t. */
static void note_rs(tmpl_t *t, seg_t *s) {
    t->has_rs = true;
    if (s->kind == SEG_ARG && s->pos > t->max_pos)
        t->max_pos = s->pos;
    if (s->kind == SEG_PERL) {
        s->perl = (int)t->nperl++;
        if (s->pos == 0)
            t->nperl_all++;
        if (strstr(s->lit, "uq("))
            t->needs_shell = true; /* an unquoted value is for the shell to split */
    }
}

/* A replacement string at p (one that starts with '{' or the -I string):
 * the text before it becomes a literal segment and it becomes one of its
 * own. Returns the bytes it took: 0 where none starts, -1 (a message in
 * perr) for a malformed one. */
static long take_rs(tmpl_t *t, sbuf_t *lit, const char *p, const char *replace) {
    seg_t s;
    long n = (*p == '{' || (replace && *replace && *p == *replace)) ? parse_rs(p, &s, replace) : 0;
    if (n > 0) {
        lit_push(t, lit);
        note_rs(t, &s);
        seg_push(t, s);
    }
    return n;
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
        long n = take_rs(t, &lit, p, replace);
        if (n < 0) {
            sb_free(&first);
            sb_free(&lit);
            tmpl_free(t);
            return -1;
        }
        if (n) {
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

int tmpl_parse_quoted(tmpl_t *t, char *const *words, size_t n, const char *replace, char *err,
                      size_t errlen) {
    memset(t, 0, sizeof *t);
    perr_buf = err, perr_cap = errlen;
    t->quoted = true;
    sbuf_t lit = {0};
    for (size_t k = 0; k < n; k++) {
        if (k)
            seg_push(t, (seg_t){.kind = SEG_SPACE});
        for (const char *p = words[k]; *p;) {
            long m = take_rs(t, &lit, p, replace);
            if (m < 0) {
                sb_free(&lit);
                tmpl_free(t);
                return -1;
            }
            if (m) {
                p += m;
                continue;
            }
            sb_addc(&lit, *p++);
        }
        lit_push(t, &lit);
    }
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

size_t tmpl_real_args(const tmpl_t *t, size_t nargs) {
    size_t fixed = t->nperl - t->nperl_all;
    if (!t->nperl || nargs < fixed)
        return t->nperl ? 0 : nargs;
    return (nargs - fixed) / (1 + t->nperl_all);
}

/* One job's values, as the expanders see them. */
typedef struct {
    char *const *args; /* the job's own arguments */
    size_t nargs;
    char *const *pv; /* then the values of the {= =} (each begins with 'q' or 'u') */
    size_t npv;
    size_t poff[64]; /* where each SEG_PERL's values begin in pv (the first 64) */
    long only;       /* -X: the one argument a repeated word is for; -1: all */
    uint64_t seq;
    int slot;
    sbuf_t tmp;
} view_t;

static void view_init(view_t *v, const tmpl_t *t, char *const *args, size_t nargs, uint64_t seq,
                      int slot) {
    memset(v, 0, sizeof *v);
    v->nargs = tmpl_real_args(t, nargs);
    v->args = args;
    v->pv = args ? args + v->nargs : NULL;
    v->npv = nargs - v->nargs;
    v->only = -1;
    v->seq = seq;
    v->slot = slot;
    size_t off = 0;
    for (size_t i = 0; i < t->nseg; i++)
        if (t->seg[i].kind == SEG_PERL && t->seg[i].perl < 64) {
            v->poff[t->seg[i].perl] = off;
            off += t->seg[i].pos == 0 ? v->nargs : 1;
        }
}

/* The k-th value of a SEG_PERL segment ("" when there is none). */
static const char *perl_val(const view_t *v, const seg_t *s, size_t k) {
    if (s->perl >= 64)
        return "q";
    size_t i = v->poff[s->perl] + k;
    return i < v->npv && v->pv[i][0] ? v->pv[i] : "q";
}

/* Append value val to out: modified by mod, quoted for the shell when
 * quote (a {= =} value: unless uq() said not to). */
static void put_val(sbuf_t *out, view_t *v, const char *val, int mod, bool quote, bool perl) {
    if (perl) {
        quote = quote && val[0] != 'u';
        val++;
    }
    if (!quote) {
        apply_mod(out, val, perl ? MOD_NONE : mod);
        return;
    }
    v->tmp.len = 0;
    apply_mod(&v->tmp, val, perl ? MOD_NONE : mod);
    shell_quote(out, v->tmp.p ? v->tmp.p : "", v->tmp.len);
}

/* Append segment s. words: the word form (the values of a {} of several
 * arguments are words of their own, *count counts the words ended);
 * returns whether s put something in the current word. */
static bool put_seg(const tmpl_t *t, sbuf_t *out, view_t *v, const seg_t *s, bool quote,
                    size_t *count) {
    switch (s->kind) {
    case SEG_LIT: sb_add(out, s->lit, s->len); return true;
    case SEG_SEQ: put_num(out, v->seq); return true;
    case SEG_SLOT: put_num(out, (uint64_t)v->slot); return true;
    case SEG_PLUS: put_plus(out, s->pos, v->seq, v->slot); return true;
    case SEG_ARG:
    case SEG_PERL: break;
    default: return false;
    }
    bool perl = s->kind == SEG_PERL;
    if (s->pos != 0) {
        const char *val = perl ? perl_val(v, s, 0) : arg_at(v->args, v->nargs, s->pos);
        if (!val)
            return false; /* none: no word of its own */
        put_val(out, v, val, s->mod, quote, perl);
        return true;
    }
    /* every argument (no arguments, -N0: nothing, as in GNU parallel) */
    size_t from = v->only >= 0 ? (size_t)v->only : 0;
    size_t to = v->only >= 0 ? (size_t)v->only + 1 : v->nargs;
    for (size_t k = from; k < to && k < v->nargs; k++) {
        if (k > from) {
            if (count && !t->quoted) {
                sb_addc(out, 0);
                ++*count;
            } else {
                sb_addc(out, ' ');
            }
        }
        put_val(out, v, perl ? perl_val(v, s, k) : v->args[k], s->mod, quote, perl);
    }
    return to > from && from < v->nargs;
}

/* Does the word seg[a..b) hold a {} (or {= =}) of every argument? */
static bool has_all(const tmpl_t *t, size_t a, size_t b) {
    for (size_t i = a; i < b; i++)
        if ((t->seg[i].kind == SEG_ARG || t->seg[i].kind == SEG_PERL) && t->seg[i].pos == 0)
            return true;
    return false;
}

/* The end of the word that begins at segment a. */
static size_t word_end(const tmpl_t *t, size_t a) {
    while (a < t->nseg && t->seg[a].kind != SEG_SPACE)
        a++;
    return a;
}

void tmpl_expand_shell(const tmpl_t *t, sbuf_t *cmd, char *const *args, size_t nargs, uint64_t seq,
                       int slot) {
    view_t v;
    view_init(&v, t, args, nargs, seq, slot);
    sbuf_t word = {0};
    for (size_t a = 0; a < t->nseg;) {
        size_t b = word_end(t, a);
        bool ctx = t->context && v.nargs > 1 && has_all(t, a, b);
        size_t reps = ctx ? v.nargs : 1;
        for (size_t r = 0; r < reps; r++) {
            v.only = ctx ? (long)r : -1;
            if (r)
                sb_addc(cmd, ' ');
            if (t->quoted) { /* -q: the word as a whole, quoted */
                word.len = 0;
                for (size_t i = a; i < b; i++)
                    put_seg(t, &word, &v, &t->seg[i], false, NULL);
                shell_quote(cmd, word.p ? word.p : "", word.len);
            } else {
                for (size_t i = a; i < b; i++)
                    put_seg(t, cmd, &v, &t->seg[i], !t->raw, NULL);
            }
        }
        v.only = -1;
        if (b < t->nseg)
            sb_addc(cmd, ' ');
        a = b + 1;
    }
    if (!t->has_rs && v.nargs) {
        if (t->nseg)
            sb_addc(cmd, ' ');
        for (size_t k = 0; k < v.nargs; k++) {
            if (k)
                sb_addc(cmd, ' ');
            put_val(cmd, &v, args[k], MOD_NONE, !t->raw, false);
        }
    }
    if (!cmd->p)
        sb_add(cmd, "", 0);
    sb_free(&word);
    sb_free(&v.tmp);
}

void tmpl_expand_raw(const tmpl_t *t, sbuf_t *out, char *const *args, size_t nargs, uint64_t seq,
                     int slot) {
    view_t v;
    view_init(&v, t, args, nargs, seq, slot);
    for (size_t i = 0; i < t->nseg; i++) {
        if (t->seg[i].kind == SEG_SPACE)
            sb_addc(out, ' ');
        else
            put_seg(t, out, &v, &t->seg[i], false, NULL);
    }
    if (!out->p)
        sb_add(out, "", 0);
    sb_free(&v.tmp);
}

size_t tmpl_expand_words(const tmpl_t *t, sbuf_t *w, char *const *args, size_t nargs, uint64_t seq,
                         int slot) {
    view_t v;
    view_init(&v, t, args, nargs, seq, slot);
    size_t count = 0;
    for (size_t a = 0; a < t->nseg;) {
        size_t b = word_end(t, a);
        bool ctx = t->context && v.nargs > 1 && has_all(t, a, b);
        size_t reps = ctx ? v.nargs : 1;
        for (size_t r = 0; r < reps; r++) {
            v.only = ctx ? (long)r : -1;
            bool in_word = false;
            for (size_t i = a; i < b; i++)
                in_word |= put_seg(t, w, &v, &t->seg[i], false, &count);
            if (in_word || t->quoted) { /* -q: an empty word stays a word */
                sb_addc(w, 0);
                count++;
            }
        }
        a = b + 1;
    }
    if (!t->has_rs)
        for (size_t k = 0; k < v.nargs; k++) {
            sb_add(w, args[k], strlen(args[k]) + 1);
            count++;
        }
    sb_free(&v.tmp);
    return count;
}

/* ---------------------------------------------------------------- */
/* options                                                           */
/* ---------------------------------------------------------------- */

#include "cli_optable.h" /* OPT_*, long_opts, short_opts, find_long */

/* ::: and :::: (--arg-sep, --arg-file-sep), each also with a '+' (linked) */
static const char *sep_args = ":::", *sep_files = "::::";

static bool sep_is(const char *a, const char *sep) {
    size_t n = strlen(sep);
    return strncmp(a, sep, n) == 0 && (a[n] == 0 || (a[n] == '+' && a[n + 1] == 0));
}

static bool is_sep(const char *a) { return sep_is(a, sep_args) || sep_is(a, sep_files); }

#include "cli_values.h" /* parse_long, parse_jobs, parse_block, parse_halt, parse_time, unescape */

static void set_str(char **dst, const char *v) {
    free(*dst);
    *dst = xstrdup(v);
}

/* A size for --memfree: as --block's, up to 1P. */
static int parse_size(const char *opt, const char *v, size_t *out) {
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || !(x >= 0) || !isdigit((unsigned char)v[0]))
        return perr("%s: '%.100s' is not a size (e.g. 512M, 1G, 2g)", opt, v);
    static const char units[] = "kmgtp";
    const char *u = *end ? strchr(units, tolower((unsigned char)*end)) : NULL;
    bool binary = *end && (isupper((unsigned char)*end) || end[1] == 'i' || end[1] == 'I');
    if (*end && !u && tolower((unsigned char)*end) != 'b')
        return perr("%s: '%.100s' is not a size (e.g. 512M, 1G, 2g)", opt, v);
    if (u)
        for (long k = 0; k <= u - units; k++)
            x *= binary ? 1024.0 : 1000.0;
    if (*end)
        end += (u && (end[1] == 'i' || end[1] == 'I')) ? 2 : 1;
    if (*end || x > 1e15)
        return perr("%s: '%.100s' is not a size (e.g. 512M, 1G, 2g)", opt, v);
    *out = (size_t)x;
    return 0;
}

/* The options of input sources, output and running that GNU parallel has
 * and the first version of procpool did not (set_opt's other cases). */
static int set_opt_more(cli_opts_t *o, int id, const char *name, const char *v) {
    long n;
    switch (id) {
    case OPT_COLSEP: {
        if (!*v)
            return perr("%s: empty column separator", name);
        regex_t re;
        int rc = regcomp(&re, v, REG_EXTENDED);
        if (rc != 0) {
            char msg[200];
            regerror(rc, &re, msg, sizeof msg);
            return perr("%s: '%.100s' is not a regular expression: %s", name, v, msg);
        }
        regfree(&re);
        set_str(&o->colsep, v);
        break;
    }
    case OPT_HEADER: set_str(&o->header, v); break;
    case OPT_CTX: o->multi = MULTI_X; break;
    case OPT_MULTI: o->multi = MULTI_M; break;
    case OPT_XARGS: o->multi = MULTI_XARGS; break;
    case OPT_MAXLINES_L: /* -L N: N lines per job, each word of them put in place of {} (-X) */
    case OPT_MAXLINES:   /* -l [N]: the same, all of them in place of {} (-m) */
        if (id == OPT_MAXLINES && !*v) {
            n = 1;
        } else if (parse_long(name, v, 0, 100000000, &n) < 0) {
            return -1;
        }
        if (id == OPT_MAXLINES && n == 0)
            n = 1;
        o->zero_args = n == 0; /* -L 0: a job per line, given none of it */
        if (n == 0)
            n = 1;
        o->max_lines = n;
        o->lines_ctx = id == OPT_MAXLINES_L;
        break;
    case OPT_MAXCHARS:
        if (parse_long(name, v, 1, 1L << 30, &n) < 0)
            return -1;
        o->max_chars = n;
        break;
    case OPT_NORUN: o->no_run_empty = true; break;
    case OPT_LINK: o->link = true; break;
    case OPT_EOF:
        free(o->eof_str);
        o->eof_str = *v ? xstrdup(v) : NULL;
        break;
    case OPT_ARGSEP:
    case OPT_ARGFILESEP:
        if (!*v)
            return perr("%s: empty separator", name);
        set_str(id == OPT_ARGSEP ? &o->arg_sep : &o->argfile_sep, v);
        if (id == OPT_ARGSEP)
            sep_args = o->arg_sep;
        else
            sep_files = o->argfile_sep;
        break;
    case OPT_SHUF: o->shuf = true; break;
    case OPT_RESULTS:
        if (!*v)
            return perr("%s: empty name", name);
        set_str(&o->results, v);
        break;
    case OPT_FILES: o->files = true; break;
    case OPT_TAGSTRING:
        set_str(&o->tagstring, v);
        o->tag = true;
        break;
    case OPT_PROGRESS: o->progress = true; break;
    case OPT_DELAY: return parse_time(name, v, &o->delay);
    case OPT_LOAD: {
        char *end;
        errno = 0;
        double x = strtod(v, &end);
        if (errno || end == v || !(x > 0) || x > 1e6 || (*end && strcmp(end, "%") != 0))
            return perr("%s: '%.100s' is not a load (N, or N%% of the CPUs)", name, v);
        o->load = *end ? x * pp_cpu_count() / 100.0 : x;
        break;
    }
    case OPT_MEMFREE: return parse_size(name, v, &o->memfree);
    case OPT_NICE:
        if (parse_long(name, v, -20, 19, &n) < 0)
            return -1;
        o->nice = (int)n;
        break;
    case OPT_PLUS:
        o->plus = true;
        tmpl_plus = true;
        break;
    case OPT_RETRY_FAILED: o->retry_failed = true; break;
    case OPT_ROUNDROBIN: o->round_robin = true; break;
    case OPT_TEE: o->tee = true; break;
    case OPT_FIFO: o->fifo = true; break;
    case OPT_CAT: o->cat = true; break;
    case OPT_TMPDIR:
        if (!*v)
            return perr("%s: empty directory name", name);
        set_str(&o->tmpdir, v);
        break;
    case OPT_SHELLQUOTE: o->shellquote = true; break;
    case OPT_NCPUS:
    case OPT_NCORES: o->print_count = COUNT_CORES; break;
    case OPT_NTHREADS: o->print_count = COUNT_THREADS; break;
    case OPT_NSOCKETS: o->print_count = COUNT_SOCKETS; break;
    case OPT_REMOTE:
        return perr("%s: remote execution (--sshlogin, --env, --transfer, ...) is not "
                    "supported; procpool runs jobs on this machine (clusters: the MPI backend)",
                    name);
    }
    return 0;
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
    case OPT_TRACE:
        if (!*v)
            return perr("--trace: empty file name");
        set_str(&o->trace, v);
        break;
    case OPT_RESUME: o->resume = true; break;
    case OPT_RESUME_FAILED: o->resume_failed = true; break;
    case OPT_SHELL: o->shell = SHELL_ALWAYS; break;
    case OPT_NOSHELL: o->shell = SHELL_NEVER; break;
    case OPT_PIPE: o->pipe = true; break;
    case OPT_PIPEPART: o->pipe_part = true; break;
    case OPT_BLOCK: o->block_set = true; return parse_block(name, v, &o->block, &o->block_parts);
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
    case OPT_QUOTE: o->quote = true; break;
    default: return set_opt_more(o, id, name, v);
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
    free(o->colsep);
    free(o->header);
    free(o->eof_str);
    free(o->arg_sep);
    free(o->argfile_sep);
    free(o->results);
    free(o->tagstring);
    free(o->tmpdir);
    tmpl_free(&o->tagtmpl);
    tmpl_free(&o->restmpl);
    sep_args = ":::", sep_files = "::::";
    free(o->joblog);
    free(o->trace);
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

/* Does an optional value of kind arg take the word a? */
static bool takes_word(int arg, const char *a) {
    if (arg == ARG_OPTNUM) {
        const char *p = a + (*a == '-' || *a == '+');
        return *p && strspn(p, "0123456789") == strlen(p);
    }
    return !option_like(a);
}

/* Parse the command words into o->tmpl (and --tagstring into o->tagtmpl),
 * with the --header names in tmpl_names when they are known. */
static int parse_template(cli_opts_t *o) {
    tmpl_free(&o->tmpl);
    tmpl_free(&o->tagtmpl);
    tmpl_plus = o->plus;
    bool raw = o->cmd.n == 0;
    int rc;
    if (o->quote && !raw) {
        rc = tmpl_parse_quoted(&o->tmpl, o->cmd.v, o->cmd.n, o->replace, perr_buf, perr_cap);
    } else {
        sbuf_t text = {0};
        for (size_t k = 0; k < o->cmd.n; k++) {
            if (k)
                sb_addc(&text, ' ');
            sb_adds(&text, o->cmd.v[k]);
        }
        if (raw)
            sb_adds(&text, o->replace ? o->replace : "{}");
        rc = tmpl_parse(&o->tmpl, text.p ? text.p : "", o->replace, raw, perr_buf, perr_cap);
        sb_free(&text);
    }
    if (rc < 0)
        return -1;
    if (o->tmpl.nperl > 64)
        return perr("at most 64 Perl expressions {= =} in a command");
    if (o->shell == SHELL_ALWAYS)
        o->tmpl.needs_shell = true;
    if (o->shell == SHELL_NEVER)
        o->tmpl.needs_shell = false;
    o->tmpl.context = o->multi == MULTI_X || (o->lines_ctx && o->multi == MULTI_NONE);
    if (o->results) {
        tmpl_free(&o->restmpl);
        if (tmpl_parse_quoted(&o->restmpl, &o->results, 1, o->replace, perr_buf, perr_cap) < 0)
            return -1;
    }
    if (o->tagstring) {
        if (tmpl_parse_quoted(&o->tagtmpl, &o->tagstring, 1, o->replace, perr_buf, perr_cap) < 0)
            return -1;
        if (o->tagtmpl.nperl)
            return perr("--tagstring: Perl expressions {= =} are not supported there");
    }
    return 0;
}

int cli_tmpl_reparse(cli_opts_t *o, const strvec_t *names, char *err, size_t errlen) {
    perr_buf = err, perr_cap = errlen;
    tmpl_names = names;
    int rc = parse_template(o);
    tmpl_names = NULL;
    perr_buf = NULL, perr_cap = 0;
    return rc;
}

/* The new options' consistency. */
static int more_checks(cli_opts_t *o) {
    bool piped = o->pipe || o->pipe_part;
    if (o->link)
        for (size_t k = 1; k < o->nsrc; k++)
            o->src[k].linked = true;
    if ((o->round_robin || o->tee || o->fifo || o->cat) && !piped)
        return perr("--%s needs --pipe", o->round_robin ? "round-robin"
                                         : o->tee       ? "tee"
                                         : o->fifo      ? "fifo"
                                                        : "cat");
    if (o->fifo && o->cat)
        return perr("--fifo and --cat exclude each other");
    if (o->header && (o->fifo || o->cat))
        return perr("--header cannot be combined with --cat or --fifo");
    if (o->tee && o->round_robin)
        return perr("--tee and --round-robin exclude each other");
    if ((o->tee || o->round_robin) && o->pipe_part)
        return perr("--tee and --round-robin work with --pipe (not --pipe-part)");
    if ((o->files || o->results) && o->ungroup)
        return perr("--files and --results cannot be combined with -u/--ungroup");
    if (o->results) {
        size_t rl = strlen(o->results);
        static const char *const kinds[] = {".csv", ".tsv", ".json"};
        for (size_t k = 0; k < 3; k++)
            if (rl >= strlen(kinds[k]) && strcmp(o->results + rl - strlen(kinds[k]), kinds[k]) == 0)
                return perr("--results %s: CSV, TSV and JSON results are not supported; "
                            "give a directory",
                            o->results);
    }
    if (o->retry_failed) { /* the commands come from the joblog, the inputs are ignored */
        if (!o->joblog)
            return perr("--retry-failed needs --joblog FILE");
        o->resume_failed = true;
        sv_free(&o->cmd);
        for (size_t k = 0; k < o->nsrc; k++) {
            sv_free(&o->src[k].args);
            free(o->src[k].path);
        }
        o->nsrc = 0;
    }
    if (o->shellquote || o->print_count)
        return 0;
    if (piped && (o->colsep || o->multi != MULTI_NONE || o->shuf || o->eof_str))
        return perr("%s: not supported with --pipe or --pipe-part", o->colsep    ? "--colsep"
                                                                    : o->shuf    ? "--shuf"
                                                                    : o->eof_str ? "-E"
                                                                                 : "-m/-X/--xargs");
    if (o->multi != MULTI_NONE && o->zero_args)
        return perr("-m, -X and --xargs cannot be combined with -N0");
    if (o->max_lines && piped) { /* --pipe -L N: records of N lines */
        if (o->max_lines != 1 || !o->lines_ctx)
            return perr("--pipe: -L N (records of N lines) is supported for N = 1 only");
        o->max_lines = 0;
    }
    if (o->max_lines && !o->max_args && !o->zero_args)
        o->max_args = o->max_lines; /* -L N, -l N: N lines per job */
    return 0;
}

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
            if (op->arg == ARG_OPTIONAL || op->arg == ARG_OPTNUM) {
                v = eq ? eq + 1 : i + 1 < argc && takes_word(op->arg, argv[i + 1]) ? argv[++i] : "";
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
                else if (short_opts[k].arg == ARG_OPTIONAL || short_opts[k].arg == ARG_OPTNUM)
                    v = i + 1 < argc && takes_word(short_opts[k].arg, argv[i + 1]) ? argv[++i] : "";
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
        bool linked = sep[strlen(sep) - 1] == '+' && o->nsrc > 0; /* :::+, ::::+ */
        bool file = sep_is(sep, sep_files);
        if (file) {
            if (i >= argc || is_sep(argv[i]))
                return perr("'%s' needs at least one file name", sep);
            while (i < argc && !is_sep(argv[i])) {
                input_src_t *s = add_src(o);
                s->kind = IN_FILE;
                s->path = xstrdup(argv[i++]);
                s->linked = linked;
                linked = false;
            }
        } else {
            input_src_t *s = add_src(o);
            s->kind = IN_ARGS;
            s->linked = linked;
            while (i < argc && !is_sep(argv[i]))
                sv_push(&s->args, xstrdup(argv[i++]));
        }
    }
    /* consistency */
    if (o->pipe && o->pipe_part)
        return perr("--pipe and --pipe-part exclude each other");
    if (o->pipe_part) {
        /* the files to split, in turn: -a FILE, :::: FILE...; ::: groups
         * are ignored (GNU parallel uses them only with --tee) */
        for (size_t k = 0; k < o->nsrc;)
            if (o->src[k].kind == IN_FILE) {
                sv_push(&o->arg_files, o->src[k].path);
                memmove(o->src + k, o->src + k + 1, (o->nsrc - k - 1) * sizeof *o->src);
                o->nsrc--;
            } else {
                k++;
            }
        if (o->arg_files.n == 0)
            return perr("--pipe-part needs a file to split (-a FILE or :::: FILE)");
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
    if (o->pipe && o->nsrc && !o->tee)
        return perr("--pipe reads its data from stdin and takes no ::: or :::: inputs");
    if (o->tee && !o->nsrc)
        return perr("--tee needs inputs (::: or ::::): a job for each, all given all of stdin");
    if ((o->resume || o->resume_failed) && !o->joblog)
        return perr("--resume and --resume-failed need --joblog FILE");
    if (o->group && (o->ungroup || o->line_buffer))
        return perr("--group cannot be combined with %s",
                    o->ungroup ? "--ungroup" : "--line-buffer");
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
    if (more_checks(o) < 0)
        return -1;
    if (!raw && !o->quote) {
        size_t len = 0;
        for (size_t k = 0; k < o->cmd.n; k++)
            len += strlen(o->cmd.v[k]);
        if (!len)
            return perr("empty command");
    }
    if (parse_template(o) < 0)
        return -1;
    if (o->shell == SHELL_NEVER && o->tmpl.raw)
        return perr("--no-shell needs a command (the inputs would be shell commands)");
    /* {N} past the last input gives the empty string, as in GNU parallel */
    if ((o->pipe || o->pipe_part) && !o->cat && !o->fifo && !o->tee) {
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
    sep_args = ":::", sep_files = "::::";
    tmpl_plus = false;
    int rc = parse_args(o, argc, argv);
    perr_buf = NULL, perr_cap = 0;
    return rc;
}
