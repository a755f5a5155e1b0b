/*
 * cli_values.h - the value parsers of the `procpool` command's options:
 * whole numbers, -j, sizes, durations, --halt rules and C-style escapes.
 *
 * Static functions, included once by cli_args.c (which defines perr()
 * before it): the parser stays in one translation unit, which the fuzzing
 * harness links alone. Each returns 0, or -1 with a message set by perr().
 */
#ifndef PROCPOOL_CLI_VALUES_H
#define PROCPOOL_CLI_VALUES_H

/* *out is lo when v is not a number in [lo, hi]. */
static int parse_long(const char *opt, const char *v, long lo, long hi, long *out) {
    char *end;
    *out = lo;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi)
        return perr("%s: '%.100s' is not a whole number from %ld to %ld", opt, v, lo, hi);
    *out = x;
    return 0;
}

static int clamp_slots(double n) {
    return (int)(n < 1 ? 1 : n > CLI_MAX_SLOTS ? CLI_MAX_SLOTS : n);
}

static int parse_jobs(const char *v, int *out) {
    int cpus = pp_cpu_count();
    char *end;
    errno = 0;
    if (!*v)
        return perr("-j: empty value");
    if (v[0] == '+' || v[0] == '-') {
        long d = strtol(v, &end, 10);
        if (errno || *end || end == v + 1)
            return perr("-j: '%.100s' is not N, N%%, +N or -N", v);
        *out = clamp_slots((double)cpus + (double)d); /* no overflow for huge +N */
        return 0;
    }
    double x = strtod(v, &end);
    if (errno || end == v || !(x >= 0) || x > 1e6)
        return perr("-j: '%.100s' is not N, N%%, +N or -N", v);
    if (*end == '%' && end[1] == 0) {
        *out = clamp_slots(floor(cpus * x / 100.0));
        return 0;
    }
    if (*end)
        return perr("-j: '%.100s' is not N, N%%, +N or -N", v);
    if (x != floor(x))
        return perr("-j: '%.100s' is not a whole number", v);
    *out = (int)(x > CLI_MAX_SLOTS ? CLI_MAX_SLOTS : x);
    return 0;
}

/* --block: a size with GNU parallel's prefixes (k, m, g: powers of 1000;
 * K, M, G and ki, mi, gi in any case: powers of 1024; b: bytes), from 1
 * byte to 1G; or -N, N parts per job slot (*parts, for --pipe-part). */
static int parse_block(const char *opt, const char *v, size_t *out, long *parts) {
    if (v[0] == '-') {
        long n;
        if (parse_long(opt, v + 1, 1, 1000000, &n) < 0)
            return perr("%s: '%.100s' is not a size, or -N (N parts per job slot)", opt, v);
        *parts = n;
        return 0;
    }
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || !(x > 0) || !isdigit((unsigned char)v[0]))
        return perr("%s: '%.100s' is not a size (e.g. 512K, 1M, 10m, 1.5G)", opt, v);
    double mul = 1;
    int c = *end;
    bool binary = end[0] && (end[1] == 'i' || end[1] == 'I');
    switch (c) {
    case 0: break;
    case 'k':
    case 'K': mul = (binary || c == 'K') ? 1024.0 : 1e3; break;
    case 'm':
    case 'M': mul = (binary || c == 'M') ? 1024.0 * 1024 : 1e6; break;
    case 'g':
    case 'G': mul = (binary || c == 'G') ? 1024.0 * 1024 * 1024 : 1e9; break;
    case 'b':
    case 'B': binary = false; break;
    default: return perr("%s: '%.100s' is not a size (e.g. 512K, 1M, 10m, 1.5G)", opt, v);
    }
    if (c)
        end += binary ? 2 : 1;
    if (*end)
        return perr("%s: '%.100s' is not a size (e.g. 512K, 1M, 10m, 1.5G)", opt, v);
    x *= mul;
    if (!(x >= 1) || x > 1024.0 * 1024 * 1024)
        return perr("%s: '%.100s' must be from 1 byte to 1G", opt, v);
    *out = (size_t)x;
    *parts = 0;
    return 0;
}

static int parse_halt(cli_opts_t *o, const char *v) {
    if (strcmp(v, "never") == 0 || strcmp(v, "0") == 0) {
        o->halt_when = HALT_NEVER;
        return 0;
    }
    if (strcmp(v, "1") == 0 || strcmp(v, "2") == 0) {
        o->halt_when = v[0] == '1' ? HALT_SOON : HALT_NOW;
        o->halt_what = HALT_FAIL;
        o->halt_n = 1;
        return 0;
    }
    const char *c = strchr(v, ',');
    size_t wl = c ? (size_t)(c - v) : 0;
    int when;
    if (c && wl == 3 && strncmp(v, "now", 3) == 0)
        when = HALT_NOW;
    else if (c && wl == 4 && strncmp(v, "soon", 4) == 0)
        when = HALT_SOON;
    else
        return perr("--halt: '%.100s' is not now|soon,fail|success|done=N[%%]", v);
    const char *w = c + 1;
    const char *eq = strchr(w, '=');
    if (!eq)
        return perr("--halt: '%.100s' is not now|soon,fail|success|done=N[%%]", v);
    size_t kl = (size_t)(eq - w);
    int what;
    if (kl == 4 && strncmp(w, "fail", 4) == 0)
        what = HALT_FAIL;
    else if (kl == 7 && strncmp(w, "success", 7) == 0)
        what = HALT_SUCCESS;
    else if (kl == 4 && strncmp(w, "done", 4) == 0)
        what = HALT_DONE;
    else
        return perr("--halt: '%.100s' is not now|soon,fail|success|done=N[%%]", v);
    char *end;
    errno = 0;
    double n = strtod(eq + 1, &end);
    if (errno || end == eq + 1 || !(n > 0) || n > 1e15)
        return perr("--halt: '%.100s': the count must be a positive number", v);
    bool pct = false;
    if (*end == '%' && end[1] == 0) {
        if (n > 100)
            return perr("--halt: '%.100s': a percentage must be at most 100%%", v);
        pct = true;
    } else if (*end || n != floor(n)) {
        return perr("--halt: '%.100s': the count must be a whole number or a percentage", v);
    }
    o->halt_when = when;
    o->halt_what = what;
    o->halt_pct = pct;
    o->halt_n = n;
    return 0;
}

/* --recend/--recstart/-d take C-style escapes: \n \t \r \0 \\ (any other
 * backslash stays as it is). Returns the bytes (NUL-terminated; they may
 * hold a \0 themselves) and their count in *len. */
static char *unescape(const char *s, size_t *len) {
    sbuf_t b = {0};
    sb_add(&b, "", 0);
    for (; *s; s++) {
        if (*s == '\\' && s[1]) {
            s++;
            switch (*s) {
            case 'n': sb_addc(&b, '\n'); break;
            case 't': sb_addc(&b, '\t'); break;
            case 'r': sb_addc(&b, '\r'); break;
            case '0': sb_addc(&b, 0); break;
            case '\\': sb_addc(&b, '\\'); break;
            default: sb_addc(&b, '\\'); sb_addc(&b, *s);
            }
        } else {
            sb_addc(&b, *s);
        }
    }
    *len = b.len;
    return b.p;
}

/* A duration as GNU parallel writes it: seconds (12, 0.5), or a number and
 * a unit, repeated: s, m, h, d in either case (1m30s, 1.4m, 2h, 1d12h); no
 * sign, no exponent, a digit before any '.'. */
static int parse_time(const char *opt, const char *v, double *out) {
    double total = 0;
    const char *p = v;
    bool units = false;
    while (*p) {
        if (!isdigit((unsigned char)*p))
            goto bad;
        double x = 0;
        while (isdigit((unsigned char)*p))
            x = x * 10 + (*p++ - '0');
        if (*p == '.') {
            p++;
            if (!isdigit((unsigned char)*p))
                goto bad;
            for (double f = 0.1; isdigit((unsigned char)*p); f /= 10)
                x += (*p++ - '0') * f;
        }
        int u = tolower((unsigned char)*p);
        double mul = u == 's' ? 1 : u == 'm' ? 60 : u == 'h' ? 3600 : u == 'd' ? 86400 : 0;
        if (mul)
            p++;
        else if (!*p && !units) /* plain seconds; but 1m30: a number after a unit needs one */
            mul = 1;
        else
            goto bad;
        units = true;
        total += x * mul;
        if (total > 1e8)
            return perr("%s: '%.100s' is too long (at most 1e8 seconds)", opt, v);
    }
    if (p == v)
        goto bad;
    *out = total;
    return 0;
bad:
    return perr("%s: '%.100s' is not a duration: seconds, or with units s, m, h, d "
                "(30, 1.5, 1m30s, 1.4m, 2h)%s",
                opt, v, strchr(v, '%') ? " (N% timeouts are not supported)" : "");
}

#endif /* PROCPOOL_CLI_VALUES_H */
