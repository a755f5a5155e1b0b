/*
 * bench_trace.c - what the timeline trace (docs/tracing.md) costs.
 *
 *   1. pp_apply_async no-ops (get + free in order), tracing off vs on, in
 *      alternating rounds on the same machine; each side's median.
 *      Goal: on >= 0.90x off (at most 10% slower).
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

enum { ROUNDS = 5 };

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

/* one map of the CPU items: seconds, or -1 */
static double cpu_map(pp_pool_t *pool, const struct cpu_item *items, uint64_t *res, size_t n) {
    double t0 = now();
    int rc = pp_map(pool, task_cpu, items, sizeof *items, n, res, sizeof *res, PP_CHUNK_AUTO);
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

    /* 1: no-ops */
    long n = 200000;
    pp_future_t **fs = calloc((size_t)n, sizeof *fs);
    double off[ROUNDS], on[ROUNDS];
    int ok = fs != NULL;
    for (int r = 0; r < ROUNDS && ok; r++) {
        for (int side = 0; side < 2 && ok; side++) {
            pp_pool_t *pool = make(workers, side ? path : NULL);
            if (!pool) {
                ok = 0;
                break;
            }
            noops(pool, fs, n / 10); /* warm up */
            double v = noops(pool, fs, n);
            pp_pool_close(pool);
            pp_pool_join(pool);
            pp_pool_destroy(pool);
            (side ? on : off)[r] = v;
            ok = v > 0;
        }
    }
    struct stat sb;
    double mb = stat(path, &sb) == 0 ? (double)sb.st_size / 1e6 : 0;
    char value[64], anchor[64];
    if (ok) {
        double mon = median(on, ROUNDS), moff = median(off, ROUNDS);
        printf("  apply_async no-ops: off %.0f/s, on %.0f/s (trace file %.1f MB for %ld tasks)\n",
               moff, mon, mb, n + n / 10);
        fmt_rate(value, sizeof value, mon);
        fmt_rate(anchor, sizeof anchor, moff);
        add_row("apply_async no-ops/s, trace on vs off", value, anchor, mon / moff,
                ">= 0.90x", mon / moff >= 0.90);
    } else {
        add_row("apply_async no-ops/s, trace on vs off", "n/a", "n/a", 0, ">= 0.90x", 0);
    }
    free(fs);

    /* 2: a work-dominated map */
    size_t items = 20000;
    struct cpu_item *it = calloc(items, sizeof *it);
    uint64_t *res = calloc(items, sizeof *res);
    uint64_t iters = spin_calibrate(0.05);
    ok = it && res;
    for (size_t i = 0; ok && i < items; i++)
        it[i] = (struct cpu_item){.seed = i, .iters = iters};
    for (int r = 0; r < ROUNDS && ok; r++) {
        for (int side = 0; side < 2 && ok; side++) {
            pp_pool_t *pool = make(workers, side ? path : NULL);
            if (!pool) {
                ok = 0;
                break;
            }
            double s = cpu_map(pool, it, res, items);
            pp_pool_close(pool);
            pp_pool_join(pool);
            pp_pool_destroy(pool);
            (side ? on : off)[r] = s;
            ok = s > 0;
        }
    }
    if (ok) {
        double mon = median(on, ROUNDS), moff = median(off, ROUNDS);
        printf("  map of %zu items of ~50 us: off %.3f s, on %.3f s\n", items, moff, mon);
        fmt_ms(value, sizeof value, mon);
        fmt_ms(anchor, sizeof anchor, moff);
        add_row("CPU-bound map time, trace on vs off (speed)", value, anchor, moff / mon,
                ">= 0.97x", moff / mon >= 0.97);
    } else {
        add_row("CPU-bound map time, trace on vs off (speed)", "n/a", "n/a", 0, ">= 0.97x", 0);
    }
    free(it);
    free(res);
    if (!getenv("BENCH_TRACE_FILE"))
        unlink(path); /* ours; a file named by the caller (even /dev/null) is left alone */
    rmdir(dir);
    print_summary();
    return 0;
}
