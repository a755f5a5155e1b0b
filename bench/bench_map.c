/*
 * bench_map.c - procpool's map figures, each against an anchor measured in
 * the same run (only ratios from one run are comparable):
 *
 *   a. pp_map of a trivial int function (x*3+1) over 10 000 000 ints,
 *      default chunks, 2 workers: items/s
 *        vs multiprocessing.Pool(2).map over 1 000 000 ints, default chunks
 *        (bench/py_map.py): goal >= 10x; and absolute goal >= 20 M items/s.
 *   b. the same with chunksize 1 over 200 000 ints: items/s
 *        vs Pool.map(chunksize=1) over 20 000 ints: goal >= 50x.
 *   c. CPU-bound: 64 items of ~15 ms of arithmetic on 2 workers
 *        vs the same loop run serially in this process: goal speedup >= 1.9x.
 *   d. skewed: 4000 items of ~50 us where a cluster at the front (indices
 *      0..99) take 100x longer (~5 ms): PP_CHUNK_AUTO vs chunksize 0
 *      (Python's rule, ceil(n / (4 * workers)) = 500, which puts the whole
 *      cluster into one chunk): goal: AUTO finishes >= 1.3x sooner.
 *      (With 0..39 only, the cluster is too small a share of the work for any
 *      chunking to matter by 1.3x: Python's rule is then within ~12% of ideal.)
 *   e. for the plots, no goal: pp_map(x*3+1) items/s by chunk size, 1 to
 *      262 144 (powers of 4), each the best of two runs over enough items for
 *      about a quarter of a second (map_chunks.csv).
 *   f. for the plots, no goal: speed-up of a CPU-bound map (chunksize 1,
 *      items of ~0.64 s of arithmetic in all) on 1 .. 2 x pp_cpu_count()
 *      workers against the same loop run serially here (speedup.csv; the
 *      ideal is min(workers, CPUs)); stopped after 10 s.
 *
 * With PROCPOOL_BENCH_CSV_DIR set (the bench target sets it), e and f and
 * nothing else go to CSV files there, for bench/plots.gp.
 *
 * Ends with a summary table. A benchmark never fails: the exit status is 0
 * even when a goal is missed (the row then says MISSED) or a figure could not
 * be measured (n/a). The whole run takes well under 60 s (e and f: about 10).
 *
 * Usage: bench_map   (run from the source directory, as `make bench` does,
 *                     or anywhere: py_map.py is also looked for next to the
 *                     binary's ../bench; PP_BENCH_PY_MAP=path overrides)
 */
#include <procpool.h>

#include "bench_util.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define WORKERS 2
#define A_ITEMS 10000000u
#define B_ITEMS 200000u
#define RUNS 3
#define C_ITEMS 64
#define C_ITEM_MS 15.0
#define D_ITEMS 4000
#define D_LIGHT_US 50.0
#define D_HEAVY_FACTOR 100
#define D_HEAVY_FIRST 0
#define D_HEAVY_LAST 99
#define PY_DEFAULT_ITEMS 1000000
#define PY_CHUNK1_ITEMS 20000
#define FIGURE_CAP_S 6.0 /* a figure whose first run took this long runs once */
#define E_CHUNK_MAX 262144u
#define E_POINT_S 0.25    /* seconds of one chunk size's measured run */
#define F_SERIAL_MS 640.0 /* serial work of the speed-up map, in all */
#define F_CAP_S 10.0      /* the speed-up sweep stops after this long */

/* ------------------------------------------------------------------------ */
/* helpers                                                                  */
/* ------------------------------------------------------------------------ */

/* CPU seconds used by this process (every thread, not the workers) */
static double cpu_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static pp_pool_t *make_pool(int n) {
    pp_options_t opt;
    pp_options_init(&opt);
    opt.processes = n;
    pp_pool_t *pool = NULL;
    fflush(stdout);
    int rc = pp_pool_create(&pool, &opt);
    if (rc != 0) {
        printf("  pp_pool_create: %s\n", pp_strerror(rc));
        return NULL;
    }
    return pool;
}

/* ------------------------------------------------------------------------ */
/* tasks                                                                    */
/* ------------------------------------------------------------------------ */

static int task_lin(const void *arg, size_t len, pp_buf_t *out) {
    (void)len;
    int32_t v;
    memcpy(&v, arg, sizeof v);
    v = v * 3 + 1;
    return pp_buf_append(out, &v, sizeof v);
}

/* c: task_cpu over struct cpu_item, from bench_util.h */

/* d: busy for the given number of microseconds (on the clock, so the item
 * costs are exact whatever the CPU) */
static int task_busy_us(const void *arg, size_t len, pp_buf_t *out) {
    (void)len;
    double us;
    memcpy(&us, arg, sizeof us);
    double end = now() + us * 1e-6;
    uint64_t spins = 0;
    while (now() < end)
        spins++;
    uint32_t r = (uint32_t)spins;
    return pp_buf_append(out, &r, sizeof r);
}

/* ------------------------------------------------------------------------ */
/* a, b: trivial items                                                      */
/* ------------------------------------------------------------------------ */

/* items/s of one pp_map run over n items; -1 on error or wrong results */
static double lin_run(pp_pool_t *pool, const int32_t *items, int32_t *res, size_t n, size_t cs) {
    memset(res, 0, n * sizeof *res);
    double t0 = now();
    int rc = pp_map(pool, task_lin, items, sizeof *items, n, res, sizeof *res, cs);
    double dt = now() - t0;
    if (rc != 0) {
        printf("  pp_map: %s (%s)\n", pp_strerror(rc), pp_err_name(rc));
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (res[i] != items[i] * 3 + 1) {
            printf("  pp_map: WRONG RESULT at %zu: %d, expected %d\n", i, res[i], items[i] * 3 + 1);
            return -1;
        }
    }
    return (double)n / dt;
}

/* median items/s of up to RUNS runs (fewer when a run is slow) */
static double lin_figure(pp_pool_t *pool, const int32_t *items, int32_t *res, size_t n, size_t cs,
                         const char *label) {
    double r[RUNS];
    int k = 0;
    for (; k < RUNS; k++) {
        double t0 = now();
        r[k] = lin_run(pool, items, res, n, cs);
        if (r[k] < 0)
            return -1;
        printf("  %s run %d: %12.0f items/s\n", label, k + 1, r[k]);
        if (now() - t0 > FIGURE_CAP_S / RUNS) {
            k++;
            if (k < RUNS)
                printf("  (slow: the remaining runs are skipped)\n");
            break;
        }
    }
    return median(r, (size_t)k);
}

/* ------------------------------------------------------------------------ */
/* the Python anchor                                                        */
/* ------------------------------------------------------------------------ */

struct py_figures {
    double default_ips, chunk1_ips;
    char version[32];
};

/* 0 on success, -1 when python3 or the script is missing, -2 on failure. */
static int run_python(const char *argv0, struct py_figures *py) {
    char script[PATH_MAX + 32];
    py->default_ips = py->chunk1_ips = -1;
    snprintf(py->version, sizeof py->version, "?");
    if (system("command -v python3 >/dev/null 2>&1") != 0) {
        printf("  python3 not found: skipped\n");
        return -1;
    }
    if (bench_find_script(argv0, "PP_BENCH_PY_MAP", "py_map.py", script, sizeof script) < 0) {
        printf("  bench/py_map.py not found (run from the source directory, or set "
               "PP_BENCH_PY_MAP): skipped\n");
        return -1;
    }
    char cmd[PATH_MAX + 128];
    snprintf(cmd, sizeof cmd, "python3 '%s' %d %d %d 2>&1", script, PY_DEFAULT_ITEMS,
             PY_CHUNK1_ITEMS, RUNS);
    FILE *p = bench_popen_python(cmd);
    if (!p)
        return -2;
    char line[512];
    while (fgets(line, sizeof line, p)) {
        double v;
        char s[32];
        if (sscanf(line, "py_map_default_ips %lf", &v) == 1)
            py->default_ips = v;
        else if (sscanf(line, "py_map_chunk1_ips %lf", &v) == 1)
            py->chunk1_ips = v;
        else if (sscanf(line, "py_version %31s", s) == 1)
            snprintf(py->version, sizeof py->version, "%s", s);
        else if (strncmp(line, "py_", 3) != 0)
            printf("  python: %s", line);
    }
    int st = pclose(p);
    if (st != 0 || py->default_ips <= 0 || py->chunk1_ips <= 0) {
        printf("  py_map.py failed (status %d)\n", st);
        return -2;
    }
    return 0;
}

/* e: items/s of chunks of cs items: a first run over at least 16 chunks
 * (50 000 items or more), then, when that was quick, the best of two over the
 * items that take about E_POINT_S at its pace (at most A_ITEMS), which is the
 * figure (best of two: one run alone is too noisy on a shared machine) */
static double chunk_point(pp_pool_t *pool, const int32_t *items, int32_t *res, size_t cs,
                          size_t *n_out) {
    size_t n = cs * 16 > 50000 ? cs * 16 : 50000;
    if (n > A_ITEMS)
        n = A_ITEMS;
    double ips = lin_run(pool, items, res, n, cs);
    if (ips > 0 && ips * E_POINT_S > (double)n * 1.5) {
        size_t n2 = ips * E_POINT_S > A_ITEMS ? A_ITEMS : (size_t)(ips * E_POINT_S);
        if (n2 > n) {
            n = n2;
            ips = lin_run(pool, items, res, n, cs);
            double again = ips > 0 ? lin_run(pool, items, res, n, cs) : -1;
            ips = again > ips ? again : ips;
        }
    }
    *n_out = n;
    return ips;
}

/* ------------------------------------------------------------------------ */
/* summary                                                                  */
/* ------------------------------------------------------------------------ */

/* ------------------------------------------------------------------------ */

int main(int argc, char **argv) {
    (void)argc;
    setvbuf(stdout, NULL, _IOLBF, 0);
    double t_start = now();
    printf("bench_map: procpool %s, pools of %d workers; %d CPUs usable (pp_cpu_count), %ld "
           "online\n",
           PROCPOOL_VERSION_STRING, WORKERS, pp_cpu_count(), sysconf(_SC_NPROCESSORS_ONLN));
    bench_print_load();
    printf("\n");

    /* inputs are made before the pool so the workers do not copy them */
    int32_t *items = malloc((size_t)A_ITEMS * sizeof *items);
    int32_t *res = malloc((size_t)A_ITEMS * sizeof *res);
    if (!items || !res) {
        printf("out of memory\n");
        return 0;
    }
    for (size_t i = 0; i < A_ITEMS; i++)
        items[i] = (int32_t)(i & 0x0fffffff);

    /* c: the per-item loop, calibrated to ~C_ITEM_MS in this process */
    uint64_t c_iters = spin_calibrate(C_ITEM_MS);

    pp_pool_t *pool = make_pool(WORKERS);

    /* ---- a ---- */
    printf("a. pp_map(x*3+1) over %u int32 items, default chunks, %d workers (median of %d)\n",
           A_ITEMS, WORKERS, RUNS);
    double a_ips = pool ? lin_figure(pool, items, res, A_ITEMS, 0, "chunksize 0") : -1;
    printf("  reference, PP_CHUNK_AUTO:\n");
    double a_auto_ips = pool ? lin_figure(pool, items, res, A_ITEMS, PP_CHUNK_AUTO, "auto") : -1;
    printf("\n");

    /* ---- b ---- */
    printf("b. pp_map(x*3+1), chunksize 1, %d workers\n", WORKERS);
    size_t b_items = B_ITEMS;
    double b_ips = -1;
    if (pool) {
        /* a probe, so that a slow build does not take minutes here */
        double probe = lin_run(pool, items, res, 20000, 1);
        if (probe > 0 && (double)b_items / probe > FIGURE_CAP_S / RUNS) {
            b_items = (size_t)(probe * FIGURE_CAP_S / RUNS);
            if (b_items < 20000)
                b_items = 20000;
            printf("  (slow: %zu items per run instead of %u)\n", b_items, B_ITEMS);
        }
        if (probe > 0)
            b_ips = lin_figure(pool, items, res, b_items, 1, "chunksize 1");
    }
    printf("  over %zu items\n\n", b_items);

    /* ---- c ---- */
    printf("c. CPU-bound: %d items of ~%.0f ms (%llu LCG steps each), serial vs %d workers "
           "(interleaved, best of 3)\n",
           C_ITEMS, C_ITEM_MS, (unsigned long long)c_iters, WORKERS);
    struct cpu_item citems[C_ITEMS];
    uint64_t cser[C_ITEMS], cpool[C_ITEMS];
    for (int i = 0; i < C_ITEMS; i++) {
        citems[i].seed = (uint64_t)i * 7919 + 1;
        citems[i].iters = c_iters;
    }
    /* serial and pool runs interleaved, best of 3 each, so a burst of other
     * load on the machine hits both sides alike */
    double c_serial = -1, c_pool = -1, c_parent_cpu = -1;
    int c_ok = pool != NULL;
    for (int r = 0; r < 3; r++) {
        double t0 = now();
        for (int i = 0; i < C_ITEMS; i++)
            cser[i] = spin_work(citems[i].seed, citems[i].iters);
        double dt = now() - t0;
        if (c_serial < 0 || dt < c_serial)
            c_serial = dt;
        if (!c_ok)
            continue;
        memset(cpool, 0, sizeof cpool);
        double cpu0 = cpu_seconds();
        t0 = now();
        int rc =
            pp_map(pool, task_cpu, citems, sizeof citems[0], C_ITEMS, cpool, sizeof cpool[0], 0);
        dt = now() - t0;
        double cpu = cpu_seconds() - cpu0;
        if (rc != 0) {
            printf("  pp_map: %s\n", pp_strerror(rc));
            c_ok = 0;
        } else if (memcmp(cser, cpool, sizeof cser) != 0) {
            printf("  pp_map: WRONG RESULTS\n");
            c_ok = 0;
        } else if (c_pool < 0 || dt < c_pool) {
            c_pool = dt;
            c_parent_cpu = cpu;
        }
    }
    printf("  serial:        %8.1f ms\n", c_serial * 1e3);
    if (!c_ok)
        c_pool = -1;
    double c_speedup = c_pool > 0 ? c_serial / c_pool : -1;
    printf("  pool:          %8.1f ms  -> speedup %.2fx\n", c_pool * 1e3, c_speedup);
    printf("  (CPU used by this process, all threads, during that pool run: %.1f ms; on 2 cores\n"
           "   whatever the parent burns while it waits comes out of the workers' share)\n\n",
           c_parent_cpu * 1e3);

    /* ---- d ---- */
    printf("d. skewed: %d items of %.0f us, items %d..%d take %dx longer; chunksize 0 (Python's "
           "rule) vs PP_CHUNK_AUTO (best of 2)\n",
           D_ITEMS, D_LIGHT_US, D_HEAVY_FIRST, D_HEAVY_LAST, D_HEAVY_FACTOR);
    static double ditems[D_ITEMS];
    static uint32_t dres[D_ITEMS];
    double d_serial_est = 0;
    for (int i = 0; i < D_ITEMS; i++) {
        ditems[i] = D_LIGHT_US * (i >= D_HEAVY_FIRST && i <= D_HEAVY_LAST ? D_HEAVY_FACTOR : 1);
        d_serial_est += ditems[i] * 1e-6;
    }
    double d_cs0 = -1, d_auto = -1;
    if (pool) {
        for (int r = 0; r < 2; r++) {
            for (int mode = 0; mode < 2; mode++) {
                size_t cs = mode ? PP_CHUNK_AUTO : 0;
                double t0 = now();
                int rc = pp_map(pool, task_busy_us, ditems, sizeof ditems[0], D_ITEMS, dres,
                                sizeof dres[0], cs);
                double dt = now() - t0;
                if (rc != 0) {
                    printf("  pp_map (%s): %s\n", mode ? "auto" : "chunksize 0", pp_strerror(rc));
                    continue;
                }
                double *best = mode ? &d_auto : &d_cs0;
                if (*best < 0 || dt < *best)
                    *best = dt;
            }
        }
    }
    double d_ratio = d_cs0 > 0 && d_auto > 0 ? d_cs0 / d_auto : -1;
    printf("  serial work %.1f ms, ideal on %d workers %.1f ms\n", d_serial_est * 1e3, WORKERS,
           d_serial_est / WORKERS * 1e3);
    printf("  chunksize 0:   %8.1f ms\n", d_cs0 * 1e3);
    printf("  PP_CHUNK_AUTO: %8.1f ms  -> %.2fx sooner\n\n", d_auto * 1e3, d_ratio);

    /* ---- e ---- */
    printf("e. pp_map(x*3+1) by chunk size, %d workers (for the plots; best of 2 runs of "
           "~%.2f s)\n",
           WORKERS, E_POINT_S);
    for (size_t cs = 1; pool && cs <= E_CHUNK_MAX; cs *= 4) {
        size_t n;
        double ips = chunk_point(pool, items, res, cs, &n);
        if (ips < 0)
            break;
        printf("  chunksize %6zu: %12.0f items/s  (over %zu items)\n", cs, ips, n);
        bench_csv("map_chunks", "chunksize,items_per_s", "%zu,%.0f", cs, ips);
    }
    printf("\n");

    pp_pool_destroy(pool);

    /* ---- f ---- */
    int f_cpus = pp_cpu_count() > 0 ? pp_cpu_count() : 1;
    int f_maxw = 2 * f_cpus;
    int f_n = 8 * f_maxw > 64 ? 8 * f_maxw : 64;
    double f_item_ms = F_SERIAL_MS / f_n;
    printf("f. speed-up of a CPU-bound map: %d items of ~%.1f ms, chunksize 1, 1..%d workers "
           "(2 x %d CPUs) vs serial (for the plots)\n",
           f_n, f_item_ms, f_maxw, f_cpus);
    struct cpu_item *fitems = malloc((size_t)f_n * sizeof *fitems);
    uint64_t *fser = malloc((size_t)f_n * sizeof *fser);
    uint64_t *fres = malloc((size_t)f_n * sizeof *fres);
    if (fitems && fser && fres) {
        uint64_t f_iters = (uint64_t)((double)c_iters * f_item_ms / C_ITEM_MS);
        for (int i = 0; i < f_n; i++) {
            fitems[i].seed = (uint64_t)i * 104729 + 3;
            fitems[i].iters = f_iters ? f_iters : 1;
        }
        double f_start = now(), f_serial = -1;
        for (int r = 0; r < 2; r++) { /* best of 2 */
            double t0 = now();
            for (int i = 0; i < f_n; i++)
                fser[i] = spin_work(fitems[i].seed, fitems[i].iters);
            double dt = now() - t0;
            if (f_serial < 0 || dt < f_serial)
                f_serial = dt;
        }
        printf("  serial:      %8.1f ms\n", f_serial * 1e3);
        for (int w = 1; w <= f_maxw; w++) {
            if (now() - f_start > F_CAP_S) {
                printf("  (over %.0f s: stopped before %d workers)\n", F_CAP_S, w);
                break;
            }
            pp_pool_t *fp = make_pool(w);
            if (!fp)
                break;
            /* every worker up and running before the clock starts */
            int rc =
                pp_map(fp, task_lin, items, sizeof *items, (size_t)(4 * w), res, sizeof *res, 1);
            double t0 = now();
            if (rc == 0)
                rc = pp_map(fp, task_cpu, fitems, sizeof *fitems, (size_t)f_n, fres, sizeof *fres,
                            1);
            double dt = now() - t0;
            pp_pool_destroy(fp);
            if (rc != 0) {
                printf("  pp_map: %s\n", pp_strerror(rc));
                break;
            }
            if (memcmp(fser, fres, (size_t)f_n * sizeof *fres) != 0) {
                printf("  pp_map: WRONG RESULTS\n");
                break;
            }
            int ideal = w < f_cpus ? w : f_cpus;
            printf("  %3d worker%s %8.1f ms  -> speedup %.2fx (ideal %dx)\n", w,
                   w == 1 ? ": " : "s:", dt * 1e3, f_serial / dt, ideal);
            bench_csv("speedup", "workers,seconds,speedup,ideal", "%d,%.6f,%.4f,%d", w, dt,
                      f_serial / dt, ideal);
        }
    } else {
        printf("  out of memory: skipped\n");
    }
    free(fitems);
    free(fser);
    free(fres);
    free(items);
    free(res);
    printf("\n");

    /* ---- Python ---- */
    printf("Python anchor: multiprocessing.Pool(%d).map over %d ints (default chunks) and %d "
           "ints (chunksize=1)\n",
           WORKERS, PY_DEFAULT_ITEMS, PY_CHUNK1_ITEMS);
    struct py_figures py;
    int py_rc = run_python(argv[0], &py);
    if (py_rc == 0) {
        printf("  Python %s Pool.map, default chunks %12.0f items/s\n", py.version, py.default_ips);
        printf("  Python %s Pool.map, chunksize=1    %12.0f items/s\n", py.version, py.chunk1_ips);
    }
    printf("\n");

    /* ---- summary ---- */
    char v[32], a[64], t[32];
    double ratio;

    fmt_rate(v, sizeof v, a_ips);
    fmt_rate(t, sizeof t, py.default_ips);
    snprintf(a, sizeof a, "Python Pool.map %s", t);
    ratio = a_ips > 0 && py.default_ips > 0 ? a_ips / py.default_ips : -1;
    add_row("map 10M ints, default chunks", v, a, ratio, ">= 10x", ratio >= 10.0);

    ratio = a_ips > 0 ? a_ips / 20e6 : -1;
    add_row("map 10M ints, absolute", v, "goal 20.00 M/s", ratio, ">= 1x", ratio >= 1.0);

    fmt_rate(v, sizeof v, a_auto_ips);
    fmt_rate(t, sizeof t, a_ips);
    snprintf(a, sizeof a, "chunksize 0: %s", t);
    ratio = a_auto_ips > 0 && a_ips > 0 ? a_auto_ips / a_ips : -1;
    add_row("map 10M ints, PP_CHUNK_AUTO", v, a, ratio, "(ref.)", -1);

    fmt_rate(v, sizeof v, b_ips);
    fmt_rate(t, sizeof t, py.chunk1_ips);
    snprintf(a, sizeof a, "Python chunksize=1 %s", t);
    ratio = b_ips > 0 && py.chunk1_ips > 0 ? b_ips / py.chunk1_ips : -1;
    add_row("map chunksize 1", v, a, ratio, ">= 50x", ratio >= 50.0);

    fmt_ms(v, sizeof v, c_pool);
    fmt_ms(t, sizeof t, c_serial);
    snprintf(a, sizeof a, "serial %s", t);
    add_row("CPU-bound 64 x 15 ms, 2 workers", v, a, c_speedup, ">= 1.9x", c_speedup >= 1.9);

    fmt_ms(v, sizeof v, d_auto);
    fmt_ms(t, sizeof t, d_cs0);
    snprintf(a, sizeof a, "chunksize 0: %s", t);
    add_row("skewed, PP_CHUNK_AUTO", v, a, d_ratio, ">= 1.3x", d_ratio >= 1.3);

    fmt_ms(v, sizeof v, d_auto);
    fmt_ms(t, sizeof t, d_serial_est / WORKERS);
    snprintf(a, sizeof a, "ideal %s", t);
    ratio = d_auto > 0 ? (d_serial_est / WORKERS) / d_auto : -1;
    add_row("skewed, AUTO vs ideal split", v, a, ratio, "(ref.)", -1);

    printf("summary (ratio: procpool over anchor, higher is better)\n");
    print_summary();
    if (py_rc != 0)
        printf("(the Python rows are n/a: %s)\n",
               py_rc == -1 ? "python3 or bench/py_map.py not found" : "py_map.py failed");
    printf("bench_map took %.1f s\n", now() - t_start);
    return 0;
}
