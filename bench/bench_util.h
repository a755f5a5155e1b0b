/*
 * bench_util.h - small helpers shared by the benchmarks (static inline only):
 * timing, the load average and a pool at start, the anchor scripts, the
 * CPU-bound task, the summary table that every benchmark ends with and the
 * CSV files that bench/plots.gp draws. Each benchmark gets its own copy of
 * all of it, the task included (a task must live in the program that runs
 * it).
 */
#ifndef PP_BENCH_UTIL_H
#define PP_BENCH_UTIL_H

#include <procpool.h>

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Seconds on the monotonic clock. */
static inline double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median of v[0..n), n > 0 (sorts v). */
static inline double median(double *v, size_t n) {
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Find an anchor script: $env if set, else bench/<name> from the source
 * root, else next to the binary (<build>/../bench, or its own folder).
 * Returns 0 with path filled, or -1. */
static inline int bench_find_script(const char *argv0, const char *env, const char *name,
                                    char *path, size_t size) {
    const char *e = getenv(env);
    if (e && *e) {
        snprintf(path, size, "%s", e);
        return access(path, R_OK) == 0 ? 0 : -1;
    }
    snprintf(path, size, "bench/%s", name);
    if (access(path, R_OK) == 0)
        return 0;
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) {
        snprintf(exe, sizeof exe, "%s", argv0);
        n = (ssize_t)strlen(exe);
    }
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (!slash)
        return -1;
    *slash = '\0';
    const char *rel[] = {"/../bench/", "/../../bench/", "/"};
    for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) {
        snprintf(path, size, "%s%s%s", exe, rel[i], name);
        if (access(path, R_OK) == 0)
            return 0;
    }
    return -1;
}

/* Runs cmd (a python3 command line) for reading its output, stdout flushed
 * first; NULL after printing why it could not. */
static inline FILE *bench_popen_python(const char *cmd) {
    fflush(stdout);
    FILE *p = popen(cmd, "r");
    if (!p)
        printf("  could not run python3: %s\n", strerror(errno));
    return p;
}

/* ------------------------------------------------------------------------ */
/* start-up                                                                 */
/* ------------------------------------------------------------------------ */

/* Prints the load average at start (a line, nothing when /proc/loadavg
 * cannot be read): other work on the machine skews every figure. */
static inline void bench_print_load(void) {
    FILE *la = fopen("/proc/loadavg", "r");
    char load[64];
    if (la && fgets(load, sizeof load, la))
        printf("load average at start: %s(other work on the machine skews every figure)\n", load);
    if (la)
        fclose(la);
}

/* A pool of `processes` workers (other options default), or NULL after
 * printing why pp_pool_create failed. */
static inline pp_pool_t *bench_make_pool(int processes) {
    pp_options_t opt;
    pp_options_init(&opt);
    opt.processes = processes;
    pp_pool_t *pool = NULL;
    int rc = pp_pool_create(&pool, &opt);
    if (rc < 0) {
        printf("  pp_pool_create(processes=%d) failed: %s (%s)\n", processes, pp_strerror(rc),
               pp_err_name(rc));
        return NULL;
    }
    return pool;
}

/* ------------------------------------------------------------------------ */
/* a CPU-bound task                                                         */
/* ------------------------------------------------------------------------ */

/* Arithmetic the compiler cannot fold: an LCG chain of `iters` steps. */
static inline uint64_t spin_work(uint64_t seed, uint64_t iters) {
    uint64_t x = seed | 1;
    for (uint64_t i = 0; i < iters; i++)
        x = x * 6364136223846793005ull + 1442695040888963407ull + (x >> 29);
    return x;
}

/* spin_work steps that take about ms milliseconds here: grow the loop until
 * one timing (best of 3) takes >= 20 ms, then scale. */
static inline uint64_t spin_calibrate(double ms) {
    uint64_t iters = 1000000;
    for (int k = 0; k < 12; k++) {
        double best = -1;
        for (int rep = 0; rep < 3; rep++) {
            double t0 = now();
            volatile uint64_t sink = spin_work(12345 + (uint64_t)rep, iters);
            (void)sink;
            double dt = now() - t0;
            if (best < 0 || dt < best)
                best = dt;
        }
        if (best >= 0.02 || k == 11)
            return (uint64_t)((double)iters * (ms * 1e-3) / best);
        iters *= 2;
    }
    return iters;
}

struct cpu_item {
    uint64_t seed, iters;
};

/* Runs in a worker: spin_work over one struct cpu_item; the result is the
 * uint64_t it ends on. */
static inline int task_cpu(const void *arg, size_t len, pp_buf_t *out) {
    (void)len;
    struct cpu_item it;
    memcpy(&it, arg, sizeof it);
    uint64_t r = spin_work(it.seed, it.iters);
    return pp_buf_append(out, &r, sizeof r);
}

/* ------------------------------------------------------------------------ */
/* the summary table                                                        */
/* ------------------------------------------------------------------------ */

/* What a row's "met?" column says. */
enum bench_met {
    BENCH_MISSED = 0, /* "MISSED": a goal not met (counted) */
    BENCH_MET = 1,    /* "yes" */
    BENCH_REF = -1,   /* "-": a reference row without a goal */
    BENCH_NA = -2     /* "n/a": could not be measured */
};

struct bench_row {
    const char *figure, *goal, *met;
    char value[32], anchor[128], ratio[16];
};

struct bench_table {
    struct bench_row rows[24];
    int nrows, nmet, nmissed, nna;
};

/* The program's one table. */
static inline struct bench_table *bench_table(void) {
    static struct bench_table table;
    return &table;
}

/* ratio <= 0: "n/a"; huge ones in e-notation, small ones with 2 significant
 * digits, the rest with 2 decimals. */
static inline void bench_fmt_ratio(char *buf, size_t size, double ratio) {
    if (ratio <= 0)
        snprintf(buf, size, "n/a");
    else if (ratio >= 1e5)
        snprintf(buf, size, "%.1ex", ratio);
    else if (ratio < 0.1)
        snprintf(buf, size, "%.2gx", ratio);
    else
        snprintf(buf, size, "%.2fx", ratio);
}

/* A row whose met? column is `met` whatever the ratio (ratio <= 0 shows n/a
 * in the ratio column only). figure and goal are kept, not copied. */
static inline void add_row_met(const char *figure, const char *value, const char *anchor,
                               double ratio, const char *goal, enum bench_met met) {
    struct bench_table *t = bench_table();
    if (t->nrows == (int)(sizeof t->rows / sizeof t->rows[0])) {
        fprintf(stderr, "bench: summary table full, row \"%s\" left out\n", figure);
        return;
    }
    struct bench_row *r = &t->rows[t->nrows++];
    r->figure = figure;
    r->goal = goal;
    snprintf(r->value, sizeof r->value, "%s", value);
    snprintf(r->anchor, sizeof r->anchor, "%s", anchor);
    bench_fmt_ratio(r->ratio, sizeof r->ratio, ratio);
    switch (met) {
    case BENCH_MET:
        r->met = "yes";
        t->nmet++;
        break;
    case BENCH_REF: r->met = "-"; break;
    case BENCH_NA:
        r->met = "n/a";
        t->nna++;
        break;
    default: r->met = "MISSED"; t->nmissed++;
    }
}

/* A row judged by its ratio: ratio <= 0: n/a (could not be measured); else
 * ok < 0: a reference row without a goal; ok: met; else MISSED. */
static inline void add_row(const char *figure, const char *value, const char *anchor, double ratio,
                           const char *goal, int ok) {
    add_row_met(figure, value, anchor, ratio, goal,
                ratio <= 0 ? BENCH_NA
                : ok < 0   ? BENCH_REF
                : ok       ? BENCH_MET
                           : BENCH_MISSED);
}

static inline int bench_max(int a, int b) { return a > b ? a : b; }

/* Prints the table (figure | procpool | anchor | ratio | goal | met?, each
 * column as wide as its widest cell), a blank line, and the verdict: how
 * many goals were MISSED, or that all measured goals were met. */
static inline void print_summary(void) {
    const struct bench_table *t = bench_table();
    const char *head[6] = {"figure", "procpool", "anchor", "ratio", "goal", "met?"};
    int w[6];
    for (int c = 0; c < 6; c++)
        w[c] = (int)strlen(head[c]);
    for (int i = 0; i < t->nrows; i++) {
        const struct bench_row *r = &t->rows[i];
        const char *cell[6] = {r->figure, r->value, r->anchor, r->ratio, r->goal, r->met};
        for (int c = 0; c < 6; c++)
            w[c] = bench_max(w[c], (int)strlen(cell[c]));
    }
    printf("%-*s | %-*s | %-*s | %-*s | %-*s | %s\n", w[0], head[0], w[1], head[1], w[2], head[2],
           w[3], head[3], w[4], head[4], head[5]);
    for (int c = 0; c < 6; c++) {
        for (int k = 0; k < w[c]; k++)
            putchar('-');
        if (c < 5)
            fputs("-+-", stdout);
    }
    putchar('\n');
    for (int i = 0; i < t->nrows; i++) {
        const struct bench_row *r = &t->rows[i];
        printf("%-*s | %-*s | %-*s | %-*s | %-*s | %s\n", w[0], r->figure, w[1], r->value, w[2],
               r->anchor, w[3], r->ratio, w[4], r->goal, r->met);
    }
    printf("\n");
    if (t->nmissed)
        printf("MISSED: %d goal%s not met (see the rows marked MISSED)\n", t->nmissed,
               t->nmissed == 1 ? "" : "s");
    else if (t->nna && !t->nmet)
        printf("no goal could be measured (every goal row is n/a)\n");
    else if (t->nna)
        printf("all measured goals met (%d figure%s could not be measured: n/a)\n", t->nna,
               t->nna == 1 ? "" : "s");
    else
        printf("all measured goals met\n");
}

/* A rate ("1.23 M/s", "4.5 k/s") or a duration ("12.3 ms"); n/a when <= 0. */
static inline void fmt_rate(char *buf, size_t size, double per_s) {
    if (per_s <= 0)
        snprintf(buf, size, "n/a");
    else if (per_s >= 1e6)
        snprintf(buf, size, "%.2f M/s", per_s / 1e6);
    else
        snprintf(buf, size, "%.1f k/s", per_s / 1e3);
}

static inline void fmt_ms(char *buf, size_t size, double s) {
    if (s <= 0)
        snprintf(buf, size, "n/a");
    else
        snprintf(buf, size, "%.1f ms", s * 1e3);
}

/* ------------------------------------------------------------------------ */
/* figures as CSV (drawn by bench/plots.gp)                                 */
/* ------------------------------------------------------------------------ */

/* Appends one row to $PROCPOOL_BENCH_CSV_DIR/<name>.csv, writing `header`
 * (the column names, comma-separated) first when the file is new or empty;
 * the directory is made when missing. The row is printf's fmt and its
 * arguments, without the newline; a figure that could not be measured is
 * written as NaN (gnuplot leaves it out). Nothing happens when the variable
 * is unset or empty, so a benchmark run by hand writes no file; the bench
 * target sets it to <build>/bench and removes the CSVs of the run before.
 * A file that cannot be written is a line on stderr, never a failure. */
__attribute__((format(printf, 3, 4))) static inline void
bench_csv(const char *name, const char *header, const char *fmt, ...) {
    const char *dir = getenv("PROCPOOL_BENCH_CSV_DIR");
    if (!dir || !*dir)
        return;
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s.csv", dir, name);
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "bench: cannot make %s: %s\n", dir, strerror(errno));
        return;
    }
    FILE *f = fopen(path, "a");
    if (!f) {
        fprintf(stderr, "bench: cannot open %s: %s\n", path, strerror(errno));
        return;
    }
    if (fseek(f, 0, SEEK_END) == 0 && ftell(f) == 0)
        fprintf(f, "%s\n", header);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fputc('\n', f);
    if (fclose(f) != 0)
        fprintf(stderr, "bench: cannot write %s: %s\n", path, strerror(errno));
}

/* v for a CSV field: NaN when v <= 0 (a figure that could not be measured,
 * as the benchmarks keep it), else v. */
static inline double bench_csv_val(double v) { return v > 0 ? v : (double)NAN; }

#endif
