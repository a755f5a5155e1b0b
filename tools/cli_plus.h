/*
 * cli_plus.h - GNU parallel's --plus replacement strings: {..} {...}
 * {/..} {/...} {+.} {+..} {+...} {+/} (modifiers of an argument, also with
 * a position: {2..}) and {##} {0#} {0%} (the number of jobs, the job number
 * and slot zero-padded to the width of the largest).
 *
 * Static functions, included once by cli_args.c (which defines perr() and
 * the static tmpl_plus before it): the parser stays in one translation
 * unit, which the fuzzing harness links alone.
 */
#ifndef PROCPOOL_CLI_PLUS_H
#define PROCPOOL_CLI_PLUS_H

uint64_t tmpl_total_jobs;
int tmpl_nslots = 1;

/* The modifier at q (after the position, if any) up to and with its '}':
 * its length and *mod, or 0. Only with --plus. */
static size_t plus_mod(const char *q, int *mod) {
    static const struct {
        const char *text;
        int mod;
    } mods[] = {{"...}", MOD_NOEXT3},     {"..}", MOD_NOEXT2}, {"/...}", MOD_BASENOEXT3},
                {"/..}", MOD_BASENOEXT2}, {"+...}", MOD_EXT3}, {"+..}", MOD_EXT2},
                {"+.}", MOD_EXT},         {"+/}", MOD_PDIR}};
    if (!tmpl_plus)
        return 0;
    for (size_t i = 0; i < sizeof mods / sizeof *mods; i++) {
        size_t n = strlen(mods[i].text);
        if (strncmp(q, mods[i].text, n) == 0) {
            *mod = mods[i].mod;
            return n;
        }
    }
    return 0;
}

/* GNU parallel's --plus strings that are Perl: {:-STR} {:N} {:N:M} {#RE}
 * {%RE} {/RE/STR} {^RE} {^^RE} {,RE} {,,RE}, made {= =} with GNU
 * parallel's own code for them (the text goes into the code as it is). */
static long parse_plus_perl(const char *p, seg_t *s) {
    const char *close = strchr(p, '}');
    if (!close || close - p > 4000)
        return 0;
    const char *b = p + 1;
    size_t n = (size_t)(close - b);
    char code[4200];
    int len = -1;
    if (n > 2 && b[0] == ':' && b[1] == '-') {
        len = snprintf(code, sizeof code, "$_ ||= %.*s", (int)n - 2, b + 2);
    } else if (n > 1 && b[0] == ':' && isdigit((unsigned char)b[1])) {
        size_t d = strspn(b + 1, "0123456789");
        if (1 + d == n) {
            len = snprintf(code, sizeof code, "substr($_,0,%.*s) = \"\"", (int)d, b + 1);
        } else if (b[1 + d] == ':' && 2 + d < n && strspn(b + 2 + d, "0123456789") == n - 2 - d) {
            len = snprintf(code, sizeof code, "$_ = substr($_,%.*s,%.*s);", (int)d, b + 1,
                           (int)(n - 2 - d), b + 2 + d);
        }
    } else if (n > 1 && b[0] == '#' && b[1] != '#') {
        len = snprintf(code, sizeof code, "s/^%.*s//;", (int)n - 1, b + 1);
    } else if (n > 1 && b[0] == '%') {
        len = snprintf(code, sizeof code, "s/%.*s$//;", (int)n - 1, b + 1);
    } else if (n > 2 && b[0] == '/' && b[1] != '/' && memchr(b + 2, '/', n - 2)) {
        const char *mid = memchr(b + 2, '/', n - 2);
        len = snprintf(code, sizeof code, "s/%.*s/%.*s/;", (int)(mid - b - 1), b + 1,
                       (int)(close - mid - 1), mid + 1);
    } else if (n > 2 && b[0] == '^' && b[1] == '^') {
        len = snprintf(code, sizeof code, "s/(%.*s)/uc($1)/eg;", (int)n - 2, b + 2);
    } else if (n > 1 && b[0] == '^') {
        len = snprintf(code, sizeof code, "s/^(%.*s)/uc($1)/e;", (int)n - 1, b + 1);
    } else if (n > 2 && b[0] == ',' && b[1] == ',') {
        len = snprintf(code, sizeof code, "s/(%.*s)/lc($1)/eg;", (int)n - 2, b + 2);
    } else if (n > 1 && b[0] == ',') {
        len = snprintf(code, sizeof code, "s/^(%.*s)/lc($1)/e;", (int)n - 1, b + 1);
    }
    if (len < 0 || (size_t)len >= sizeof code)
        return 0;
    *s = (seg_t){.kind = SEG_PERL, .lit = xstrndup(code, (size_t)len), .len = (size_t)len};
    return (long)(close + 1 - p);
}

/* {##} {0#} {0%}, and the Perl ones: its length and *s, or 0. */
static long parse_plus(const char *p, seg_t *s) {
    if (!tmpl_plus)
        return 0;
    static const struct {
        const char *text;
        int kind;
    } strs[] = {{"{##}", PLUS_TOTAL}, {"{0#}", PLUS_SEQ0}, {"{0%}", PLUS_SLOT0}};
    for (size_t i = 0; i < sizeof strs / sizeof *strs; i++)
        if (strncmp(p, strs[i].text, 4) == 0) {
            *s = (seg_t){.kind = SEG_PLUS, .pos = strs[i].kind};
            return 4;
        }
    return parse_plus_perl(p, s);
}

/* Where the last n extensions of s[0..len) begin ("\.[^/.]+" n times at the
 * end), or len when s does not end with n of them. */
static size_t exts_at(const char *s, size_t len, int n) {
    size_t at = len;
    for (int k = 0; k < n; k++) {
        size_t i = at;
        while (i > 0 && s[i - 1] != '.' && s[i - 1] != '/')
            i--;
        if (i == 0 || s[i - 1] != '.' || i == at)
            return len;
        at = i - 1;
    }
    return at;
}

static void apply_plus_mod(sbuf_t *out, const char *s, int mod) {
    size_t len = strlen(s);
    const char *b = strrchr(s, '/');
    b = b ? b + 1 : s;
    size_t at;
    switch (mod) {
    case MOD_NOEXT2: sb_add(out, s, exts_at(s, len, 2)); return;
    case MOD_NOEXT3: sb_add(out, s, exts_at(s, len, 3)); return;
    case MOD_BASENOEXT2: sb_add(out, b, exts_at(b, strlen(b), 2)); return;
    case MOD_BASENOEXT3: sb_add(out, b, exts_at(b, strlen(b), 3)); return;
    case MOD_EXT: { /* s:.*\.:: or nothing */
        const char *d = strrchr(s, '.');
        if (d)
            sb_adds(out, d + 1);
        return;
    }
    case MOD_EXT2:
    case MOD_EXT3:
        at = exts_at(s, len, mod == MOD_EXT2 ? 2 : 3);
        if (at < len)
            sb_add(out, s + at + 1, len - at - 1);
        return;
    case MOD_PDIR: /* the dirname when there is a '/', else nothing */
        if (b != s)
            apply_mod(out, s, MOD_DIR);
        return;
    default: sb_adds(out, s);
    }
}

static void put_padded(sbuf_t *b, uint64_t v, uint64_t widest) {
    char tmp[24], wide[24];
    int w = snprintf(wide, sizeof wide, "%llu", (unsigned long long)widest);
    int n = snprintf(tmp, sizeof tmp, "%0*llu", w, (unsigned long long)v);
    sb_add(b, tmp, (size_t)n);
}

/* A SEG_PLUS segment's value. */
static void put_plus(sbuf_t *b, int kind, uint64_t seq, int slot) {
    switch (kind) {
    case PLUS_TOTAL: put_padded(b, tmpl_total_jobs, 0); return;
    case PLUS_SEQ0: put_padded(b, seq, tmpl_total_jobs); return;
    default: put_padded(b, (uint64_t)slot, (uint64_t)(tmpl_nslots > 0 ? tmpl_nslots : 1)); return;
    }
}

#endif /* PROCPOOL_CLI_PLUS_H */
