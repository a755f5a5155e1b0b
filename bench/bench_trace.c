/*
 * bench_trace.c - what the timeline trace (docs/tracing.md) costs.
 *
 *   1. pp_apply_async no-ops (get + free in order), tracing off vs on, in
 *      alternating rounds on the same machine; each side's best round (the
 *      machine's noise, other programs and a virtual machine's neighbours,
 *      only ever slows a round down).
 *      Goal: on >= 0.90x off (at most 10% slower).
 *      The same written to /dev/null: tracing's own cost, without the file
 *      system's.
 *   2. A work-dominated map (items of about 50 us of arithmetic, AUTO
 *      chunks), off vs on. Goal: on >= 0.97x off (no cost beyond noise).
 * Tracing off costs one branch per record; there is no build without that
 * branch to compare with in the same run, so row 1's "off" figure is the
 * one to compare with bench_api's apply_async figure of the same machine.
 * The trace files go to a temporary directory under /tmp, removed at the
 * end; BENCH_TRACE_FILE names another file (on tmpfs, say, to leave the
 * file system's cost out).
 */
#include "bench_util.h"

#include <stdlib.h>
#include <sys/stat.h>

enum { ROUNDS = 7 };

static int noop(const void *arg, size_t len, pp_buf_t *out) {
    (void)arg;
    (void)len;
    (void)out;
    return 0;
}

static pp_pool_t *make(int processes, const char *trace) {
    pp_options_t opt;
    pp_options_init(&opt);
    opt.processes = processes;
    opt.trace_file = trace;
    pp_pool_t *pool = NULL;
    int rc = pp_pool_create(&pool, &opt);
    if (rc < 0) {
        printf("  pp_pool_create failed: %s\n", pp_strerror(rc));
        return NULL;
    }
    return pool;
}

/* the largest of v[0..n) (sign 1), or the smallest (sign -1) */
static double best(const double *v, int n, int sign) {
    double b = v[0];
    for (int i = 1; i < n; i++)
        if ((v[i] - b) * sign > 0)
            b = v[i];
    return b;
}

/* One measurement on a fresh pool: a figure > 0, or -1. */
typedef double (*measure_fn)(pp_pool_t *pool, void *ctx);

/* ROUNDS of fn with tracing off and on, alternating, each on its own pool
 * of `workers`: off[] and on[]; 0 or -1 (a pool or a run failed). */
static int alternate(int workers, const char *path, measure_fn fn, void *ctx, double *off,
                     double *on) {
    for (int r = 0; r < ROUNDS; r++) {
        for (int side = 0; side < 2; side++) {
            pp_pool_t *pool = make(workers, side ? path : NULL);
            if (!pool)
                return -1;
            double v = fn(pool, ctx);
            pp_pool_close(pool);
            pp_pool_join(pool);
            pp_pool_destroy(pool);
            (side ? on : off)[r] = v;
            if (v <= 0)
                return -1;
        }
    }
    return 0;
}

struct noop_ctx {
    pp_future_t **fs;
    long n;
};

/* n no-ops through pool: tasks/s, or -1 */
static double noops(pp_pool_t *pool, pp_future_t **fs, long n) {
    double t0 = now();
    for (long i = 0; i < n; i++) {
        if (pp_apply_async(pool, noop, NULL, 0, &fs[i]) < 0) {
            for (long k = 0; k < i; k++)
                pp_future_free(fs[k]);
            return -1;
        }
    }
    int bad = 0;
    for (long i = 0; i < n; i++) {
        if (pp_future_get(fs[i], 60, NULL, NULL) < 0)
            bad = 1;
        pp_future_free(fs[i]);
    }
    return bad ? -1 : (double)n / (now() - t0);
}

static double noops_warm(pp_pool_t *pool, void *ctx) {
    struct noop_ctx *c = ctx;
    if (noops(pool, c->fs, c->n / 10) < 0) /* warm up */
        return -1;
    return noops(pool, c->fs, c->n);
}

struct map_ctx {
    const struct cpu_item *items;
    uint64_t *res;
    size_t n;
};

/* one map of the CPU items: seconds, or -1 */
static double cpu_map(pp_pool_t *pool, void *ctx) {
    struct map_ctx *c = ctx;
    double t0 = now();
    int rc = pp_map(pool, task_cpu, c->items, sizeof *c->items, c->n, c->res, sizeof *c->res,
                    PP_CHUNK_AUTO);
    return rc < 0 ? -1 : now() - t0;
}

int main(void) {
    char dir[] = "/tmp/pp_bench_trace_XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    char path[64];
    snprintf(path, sizeof path, "%s/run.json", dir);
    if (getenv("BENCH_TRACE_FILE")) /* e.g. on tmpfs, to leave the file system out */
        snprintf(path, sizeof path, "%s", getenv("BENCH_TRACE_FILE"));
    int workers = pp_cpu_count();
    bench_print_load();
    printf("bench_trace: %d workers, %d rounds each way, alternating\n", workers, ROUNDS);
    double off[ROUNDS], on[ROUNDS];
    char value[64], anchor[64];

    /* 1: no-ops */
    struct noop_ctx nc = {.n = 100000};
    nc.fs = calloc((size_t)nc.n, sizeof *nc.fs);
    if (nc.fs && alternate(workers, path, noops_warm, &nc, off, on) == 0) {
        struct stat sb;
        double mb = stat(path, &sb) == 0 ? (double)sb.st_size / 1e6 : 0;
        double mon = best(on, ROUNDS, 1), moff = best(off, ROUNDS, 1);
        printf("  apply_async no-ops: off %.0f/s, on %.0f/s (trace file %.1f MB for %ld tasks)\n",
               moff, mon, mb, nc.n + nc.n / 10);
        fmt_rate(value, sizeof value, mon);
        fmt_rate(anchor, sizeof anchor, moff);
        add_row("apply_async no-ops/s, trace on vs off", value, anchor, mon / moff, ">= 0.90x",
                mon / moff >= 0.90);
    } else {
        add_row("apply_async no-ops/s, trace on vs off", "n/a", "n/a", 0, ">= 0.90x", 0);
    }
    /* 1b: the same, the trace written to /dev/null: what tracing costs the
     * parent (formatting, the flusher) without the file system's cost of
     * new page-cache pages, which a virtual machine can make expensive */
    if (nc.fs && alternate(workers, "/dev/null", noops_warm, &nc, off, on) == 0) {
        double mon = best(on, ROUNDS, 1), moff = best(off, ROUNDS, 1);
        printf("  apply_async no-ops, trace to /dev/null: off %.0f/s, on %.0f/s\n", moff, mon);
        fmt_rate(value, sizeof value, mon);
        fmt_rate(anchor, sizeof anchor, moff);
        add_row("apply_async no-ops/s, trace on (to /dev/null) vs off", value, anchor, mon / moff,
                ">= 0.90x", mon / moff >= 0.90);
    } else {
        add_row("apply_async no-ops/s, trace on (to /dev/null) vs off", "n/a", "n/a", 0, ">= 0.90x",
                0);
    }
    free(nc.fs);

    /* 2: a work-dominated map */
    struct map_ctx mc = {.n = 20000};
    struct cpu_item *it = calloc(mc.n, sizeof *it);
    mc.res = calloc(mc.n, sizeof *mc.res);
    uint64_t iters = spin_calibrate(0.05);
    for (size_t i = 0; it && i < mc.n; i++)
        it[i] = (struct cpu_item){.seed = i, .iters = iters};
    mc.items = it;
    if (it && mc.res && alternate(workers, path, cpu_map, &mc, off, on) == 0) {
        double mon = best(on, ROUNDS, -1), moff = best(off, ROUNDS, -1);
        printf("  map of %zu items of ~50 us: off %.3f s, on %.3f s\n", mc.n, moff, mon);
        fmt_ms(value, sizeof value, mon);
        fmt_ms(anchor, sizeof anchor, moff);
        add_row("CPU-bound map time, trace on vs off (speed)", value, anchor, moff / mon,
                ">= 0.97x", moff / mon >= 0.97);
    } else {
        add_row("CPU-bound map time, trace on vs off (speed)", "n/a", "n/a", 0, ">= 0.97x", 0);
    }
    free(it);
    free(mc.res);
    if (!getenv("BENCH_TRACE_FILE"))
        unlink(path); /* ours; a file named by the caller (even /dev/null) is left alone */
    rmdir(dir);
    print_summary();
    return 0;
}
