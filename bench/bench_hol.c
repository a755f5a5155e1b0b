/*
 * bench_hol.c - head-of-line blocking: tasks sent ahead into a busy worker's
 * ring must not wait behind a long task while another worker idles. Each
 * figure against anchors measured in the same run (only ratios from one run
 * are comparable). Every task busy-waits on the clock (CPU in use, as real
 * work, and the same wall time in C and Python).
 *
 *   a. 2 workers; one 2 s task, then 1000 tasks of 1 ms submitted right
 *      after it with pp_apply_async; the figure is the time from the first
 *      submission until every short task is done (done-callbacks stamp
 *      them), against the ideal, 1000 x the short task's cost measured here
 *      (the free worker runs them all), and against
 *      multiprocessing.Pool(2).apply_async on the same tasks
 *      (bench/py_hol.py). Goal: <= 1.05x ideal (Python: about 1.3x).
 *      For reference on a shared machine, a baseline: the same short tasks
 *      on a pool of one worker while a forked process spins (the long
 *      task's CPU use without the head-of-line), which the other machine
 *      load slows as much.
 *      Map variants, the slow one the first item of 1001:
 *       - pp_map_async, PP_CHUNK_AUTO: until 1000 items are done
 *         (pp_future_progress), against the same ideal;
 *       - pp_imap_unordered, chunks of 10, so that the slow item's chunk
 *         also holds 9 short ones: until every item of the other 99 chunks
 *         is in, against 990 x the short cost, and against Python's
 *         Pool.imap_unordered(chunksize=10).
 *      The pool is terminated once the figure is taken (not waiting out
 *      the long task).
 *   b. latency: 2 workers, tasks of 100 us (95%) and 50 ms (5%), drawn
 *      from a seeded generator (the same sequence in C and Python),
 *      submitted one at a time at a steady rate that keeps the workers
 *      about 70% busy (not all at once). Latency from just before the
 *      submission to the done-callback (pp_submit's on_done); p50, p99,
 *      p99.9 of all tasks and of the short ones, against a mutex+condvar
 *      pthread pool of 2 threads written here (stamped when the task
 *      returns) and Python's Pool(2).apply_async with a callback.
 *      Goals: p99 <= the pthread pool's, and <= 1/10 of Python's.
 *
 * Ends with a summary table. A benchmark never fails: the exit status is 0
 * whatever the timings (a goal not met is a row marked MISSED), and a figure
 * that could not be measured is n/a. Without python3 the Python rows are
 * skipped with a notice.
 *
 * With PROCPOOL_BENCH_CSV_DIR set (the bench target sets it), b's
 * percentiles also go to latency.csv there (bench_util.h), for
 * bench/plots.gp.
 *
 * BENCH_QUICK=1 (any value but empty or 0): a 0.5 s long task, 250 short
 * ones, one run, 500 tasks for b (a few seconds). The full run takes about
 * 40 s.
 *
 * Usage: bench_hol   (run from the source directory, as `make bench` does,
 *                     or anywhere: py_hol.py is also looked for next to the
 *                     binary's ../bench; PP_BENCH_PY_HOL=path overrides)
 */
#include <procpool.h>

#include "bench_util.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#define WORKERS 2
#define LONG_MS 2000.0
#define SHORT_MS 1.0
#define N_SHORT 1000
#define RUNS 3     /* a.: apply_async runs (median) */
#define MAP_RUNS 2 /* a.: runs of each map variant */
#define CHUNK 10   /* a.: the pp_imap_unordered chunk size */
#define LAT_N 3000 /* b.: tasks */
#define LAT_SHORT_US 100.0
#define LAT_LONG_US 50000.0
#define LAT_LONG_PCT 5 /* of 100 */
#define LAT_BUSY 0.70  /* b.: the workers' share of time busy */
#define LAT_SEED 20261201ull
#define WAIT_CAP_S 30.0 /* a figure whose wait runs past this is n/a */

static int quick;

/* ------------------------------------------------------------------------ */
/* the task: busy-wait on the clock                                         */
/* ------------------------------------------------------------------------ */

static void spin_until(double end) {
    while (now() < end) {
    }
}

/* arg: a double, microseconds to spin */
static int task_spin(const void *arg, size_t len, pp_buf_t *out) {
    (void)out;
    double us;
    if (len != sizeof us)
        return pp_buf_fail(out, "bad argument length %zu", len);
    memcpy(&us, arg, sizeof us);
    spin_until(now() + us * 1e-6);
    return 0;
}

/* What one short task costs here, in seconds: the median of 50 runs of
 * its body in this process (the spin plus the clock reads around it). */
static double short_cost_s(double ms) {
    double v[50];
    for (int i = 0; i < 50; i++) {
        double t0 = now();
        spin_until(t0 + ms * 1e-3);
        v[i] = now() - t0;
    }
    return median(v, 50);
}

/* A fresh pool of WORKERS, warmed up with short tasks so that both workers
 * run and the pool's estimate of task time is the short task's. */
static pp_pool_t *warm_pool(double short_ms) {
    pp_pool_t *pool = bench_make_pool(WORKERS);
    if (!pool)
        return NULL;
    double us = short_ms * 1e3;
    pp_future_t *f[20];
    int n = 0;
    for (; n < 20; n++)
        if (pp_apply_async(pool, task_spin, &us, sizeof us, &f[n]) < 0)
            break;
    for (int i = 0; i < n; i++) {
        pp_future_wait(f[i], WAIT_CAP_S);
        pp_future_free(f[i]);
    }
    return pool;
}

static void end_pool(pp_pool_t *pool) {
    pp_pool_terminate(pool);
    pp_pool_join(pool);
    pp_pool_destroy(pool);
}

/* ------------------------------------------------------------------------ */
/* done-callbacks that stamp the time                                       */
/* ------------------------------------------------------------------------ */

/* Static: a run given up on leaves nothing on a stack for late callbacks. */
static struct {
    double *t; /* completion time of task i */
    atomic_long done, failed;
    long target;
    pthread_mutex_t m;
    pthread_cond_t cv;
} st = {.m = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void stamp_reset(double *t, long target) {
    st.t = t;
    atomic_store(&st.done, 0);
    atomic_store(&st.failed, 0);
    st.target = target;
}

static void cb_stamp(pp_future_t *f, void *ud) {
    double t = now();
    long i = (long)(intptr_t)ud;
    st.t[i] = t;
    if (!pp_future_successful(f))
        atomic_fetch_add(&st.failed, 1);
    pthread_mutex_lock(&st.m);
    if (atomic_fetch_add(&st.done, 1) + 1 == st.target)
        pthread_cond_signal(&st.cv);
    pthread_mutex_unlock(&st.m);
}

/* Wait until every stamp is in; 0, or -1 past WAIT_CAP_S. */
static int stamp_wait(void) {
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += (time_t)WAIT_CAP_S;
    int rc = 0;
    pthread_mutex_lock(&st.m);
    while (atomic_load(&st.done) < st.target && rc == 0)
        rc = pthread_cond_timedwait(&st.cv, &st.m, &dl);
    int ok = atomic_load(&st.done) >= st.target;
    pthread_mutex_unlock(&st.m);
    return ok ? 0 : -1;
}

/* ------------------------------------------------------------------------ */
/* a. head-of-line                                                          */
/* ------------------------------------------------------------------------ */

/* One run: the long task, then n short ones, all pp_apply_async. Seconds
 * from the first submission until the last short task is done, or -1. */
static double hol_apply_run(double long_ms, double short_ms, int n) {
    pp_pool_t *pool = warm_pool(short_ms);
    if (!pool)
        return -1;
    double *t = calloc((size_t)n, sizeof *t);
    pp_future_t **f = calloc((size_t)n, sizeof *f);
    pp_future_t *lf = NULL;
    double res = -1;
    if (!t || !f)
        goto out;
    stamp_reset(t, n);
    double long_us = long_ms * 1e3, short_us = short_ms * 1e3;
    double t0 = now();
    int rc = pp_apply_async(pool, task_spin, &long_us, sizeof long_us, &lf);
    for (int i = 0; i < n && rc == 0; i++) {
        rc = pp_apply_async(pool, task_spin, &short_us, sizeof short_us, &f[i]);
        if (rc == 0)
            rc = pp_future_on_done(f[i], cb_stamp, (void *)(intptr_t)i);
    }
    if (rc < 0) {
        printf("  pp_apply_async/pp_future_on_done failed: %s (%s)\n", pp_strerror(rc),
               pp_err_name(rc));
        goto out;
    }
    if (stamp_wait() < 0) {
        printf("  short tasks not done after %.0f s\n", WAIT_CAP_S);
        goto out;
    }
    if (atomic_load(&st.failed))
        printf("  %ld short tasks failed\n", atomic_load(&st.failed));
    double last = t0, last_early = t0;
    int late = 0;
    for (int i = 0; i < n; i++) {
        if (t[i] > last)
            last = t[i];
        if (t[i] - t0 >= long_ms * 1e-3)
            late++;
        else if (t[i] > last_early)
            last_early = t[i];
    }
    res = last - t0;
    if (late) /* stuck behind the long task, or the free worker was slowed that much */
        printf("  (%d short task%s done only after %.0f ms, the long task's length; the other "
               "%d by %.1f ms)\n",
               late, late == 1 ? "" : "s", long_ms, n - late, (last_early - t0) * 1e3);
out:
    end_pool(pool); /* the long task is not waited for */
    for (int i = 0; f && i < n; i++)
        pp_future_free(f[i]);
    pp_future_free(lf);
    free(f);
    free(t);
    return res;
}

/* The baseline on a shared machine: the n short tasks on a pool of ONE
 * worker while a forked process spins (the long task's CPU use, with no
 * task behind it): what the free worker alone achieves here and now.
 * Seconds until they are done, or -1. */
static double baseline_run(double long_ms, double short_ms, int n) {
    pid_t spinner = fork();
    if (spinner < 0)
        return -1;
    if (spinner == 0) {
        spin_until(now() + long_ms * 1e-3 + 5.0);
        _exit(0);
    }
    pp_pool_t *pool = bench_make_pool(1);
    double res = -1;
    double *t = calloc((size_t)n, sizeof *t);
    pp_future_t **f = calloc((size_t)n, sizeof *f);
    if (!pool || !t || !f)
        goto out;
    double us = short_ms * 1e3;
    for (int i = 0; i < 10; i++) { /* warm-up: the pool's estimate of task time */
        pp_future_t *w;
        if (pp_apply_async(pool, task_spin, &us, sizeof us, &w) == 0) {
            pp_future_wait(w, WAIT_CAP_S);
            pp_future_free(w);
        }
    }
    stamp_reset(t, n);
    double t0 = now();
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        rc = pp_apply_async(pool, task_spin, &us, sizeof us, &f[i]);
        if (rc == 0)
            rc = pp_future_on_done(f[i], cb_stamp, (void *)(intptr_t)i);
    }
    if (rc == 0 && stamp_wait() == 0) {
        double last = t0;
        for (int i = 0; i < n; i++)
            if (t[i] > last)
                last = t[i];
        res = last - t0;
    }
out:
    kill(spinner, SIGKILL);
    waitpid(spinner, NULL, 0);
    if (pool)
        end_pool(pool);
    for (int i = 0; f && i < n; i++)
        pp_future_free(f[i]);
    free(f);
    free(t);
    return res;
}

/* The items of a map run, task_spin's durations in us: the long item then n
 * short ones. NULL when out of memory. */
static double *hol_items(double long_ms, double short_ms, int n) {
    double *items = malloc((size_t)(n + 1) * sizeof *items);
    if (!items)
        return NULL;
    items[0] = long_ms * 1e3;
    for (int i = 1; i <= n; i++)
        items[i] = short_ms * 1e3;
    return items;
}

/* One run of pp_map_async, PP_CHUNK_AUTO, over the long item then n short
 * ones: seconds until n items are done (polled every 200 us), or -1. */
static double hol_map_run(double long_ms, double short_ms, int n) {
    pp_pool_t *pool = warm_pool(short_ms);
    if (!pool)
        return -1;
    double *items = hol_items(long_ms, short_ms, n);
    double res = -1;
    pp_future_t *f = NULL;
    if (!items)
        goto out;
    double t0 = now();
    int rc = pp_map_async(pool, task_spin, items, sizeof *items, (size_t)n + 1, NULL, 0,
                          PP_CHUNK_AUTO, &f);
    if (rc < 0) {
        printf("  pp_map_async failed: %s (%s)\n", pp_strerror(rc), pp_err_name(rc));
        goto out;
    }
    for (;;) {
        size_t done = 0;
        pp_future_progress(f, &done, NULL);
        double t = now();
        if (done >= (size_t)n) {
            res = t - t0;
            break;
        }
        if (t - t0 > WAIT_CAP_S) {
            printf("  map: %zu of %d items done after %.0f s\n", done, n, WAIT_CAP_S);
            break;
        }
        struct timespec ts = {0, 200000};
        nanosleep(&ts, NULL);
    }
out:
    pp_future_free(f); /* cancels the map if the long item still runs */
    end_pool(pool);
    free(items);
    return res;
}

/* One run of pp_imap_unordered, chunks of CHUNK, over the long item then n
 * short ones: seconds until every item outside the long item's chunk is
 * in, or -1. */
static double hol_imap_run(double long_ms, double short_ms, int n) {
    pp_pool_t *pool = warm_pool(short_ms);
    if (!pool)
        return -1;
    double *items = hol_items(long_ms, short_ms, n);
    double res = -1;
    pp_iter_t *it = NULL;
    if (!items)
        goto out;
    double t0 = now();
    int rc = pp_imap_unordered(pool, task_spin, items, sizeof *items, (size_t)n + 1, CHUNK, &it);
    if (rc < 0) {
        printf("  pp_imap_unordered failed: %s (%s)\n", pp_strerror(rc), pp_err_name(rc));
        goto out;
    }
    int want = n + 1 - CHUNK, got = 0;
    while (got < want) {
        size_t idx;
        rc = pp_iter_next(it, WAIT_CAP_S, &idx, NULL, NULL);
        if (rc != 1) {
            printf("  pp_iter_next: %s (%s) after %d of %d items\n", pp_strerror(rc),
                   pp_err_name(rc), got, want);
            break;
        }
        if (idx >= CHUNK)
            got++;
    }
    if (got == want)
        res = now() - t0;
out:
    pp_iter_free(it);
    end_pool(pool);
    free(items);
    return res;
}

/* ------------------------------------------------------------------------ */
/* b. latency: the workload                                                 */
/* ------------------------------------------------------------------------ */

/* Task i's duration in us: the same generator as py_hol.py. */
static void lat_workload(double *us, int n) {
    uint64_t x = LAT_SEED;
    for (int i = 0; i < n; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        us[i] = (x >> 33) % 100 < LAT_LONG_PCT ? LAT_LONG_US : LAT_SHORT_US;
    }
}

/* The submission interval that keeps WORKERS busy LAT_BUSY of the time. */
static double lat_interval_s(const double *us, int n) {
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += us[i];
    return sum * 1e-6 / n / (WORKERS * LAT_BUSY);
}

static void sleep_until(double t) {
    double d = t - now();
    if (d <= 0)
        return;
    struct timespec ts = {(time_t)d, (long)((d - (double)(time_t)d) * 1e9)};
    nanosleep(&ts, NULL);
}

struct pct {
    double p50, p99, p999; /* seconds; -1: n/a */
};

static double pct_of(const double *sorted, int n, double q) {
    if (n <= 0)
        return -1;
    int k = (int)ceil(q * n) - 1;
    if (k < 0)
        k = 0;
    if (k >= n)
        k = n - 1;
    return sorted[k];
}

/* Percentiles of lat[i] over the tasks with only_us (0: every task). */
static struct pct percentiles(const double *lat, const double *us, int n, double only_us) {
    double *v = malloc((size_t)n * sizeof *v);
    struct pct p = {-1, -1, -1};
    if (!v)
        return p;
    int m = 0;
    for (int i = 0; i < n; i++)
        if (lat[i] >= 0 && (only_us == 0 || us[i] == only_us))
            v[m++] = lat[i];
    qsort(v, (size_t)m, sizeof *v, cmp_double);
    p.p50 = pct_of(v, m, 0.50);
    p.p99 = pct_of(v, m, 0.99);
    p.p999 = pct_of(v, m, 0.999);
    free(v);
    return p;
}

/* procpool: pp_submit with on_done, fire-and-forget. Fills lat (seconds);
 * 0, or -1. */
static int lat_procpool(const double *us, int n, double interval, double *lat) {
    pp_pool_t *pool = warm_pool(LAT_SHORT_US * 1e-3);
    if (!pool)
        return -1;
    double *sub = malloc((size_t)n * sizeof *sub), *done = malloc((size_t)n * sizeof *done);
    int res = -1;
    if (!sub || !done)
        goto out;
    stamp_reset(done, n);
    pp_task_opts_t o;
    pp_task_opts_init(&o);
    o.on_done = cb_stamp;
    double t0 = now();
    for (int i = 0; i < n; i++) {
        sleep_until(t0 + i * interval);
        o.userdata = (void *)(intptr_t)i;
        sub[i] = now();
        int rc = pp_submit(pool, task_spin, &us[i], sizeof us[i], &o, NULL);
        if (rc < 0) {
            printf("  pp_submit (#%d) failed: %s (%s)\n", i, pp_strerror(rc), pp_err_name(rc));
            st.target = i; /* wait for those submitted */
            stamp_wait();
            goto out;
        }
    }
    if (stamp_wait() < 0) {
        printf("  not every task done after %.0f s\n", WAIT_CAP_S);
        goto out;
    }
    for (int i = 0; i < n; i++)
        lat[i] = done[i] - sub[i];
    res = 0;
out:
    pp_pool_close(pool);
    pp_pool_join(pool);
    pp_pool_destroy(pool);
    free(sub);
    free(done);
    return res;
}

/* ------------------------------------------------------------------------ */
/* b. anchor: a mutex+condvar pthread pool                                  */
/* ------------------------------------------------------------------------ */

struct tp_node {
    struct tp_node *next;
    double us;
    long i;
};

struct tpool {
    pthread_mutex_t m;
    pthread_cond_t work_cv; /* workers wait here for tasks */
    pthread_cond_t done_cv; /* the submitter waits here for the last one */
    struct tp_node *head, *tail;
    int idle, stop;
    long done, target;
    double *done_t;
    pthread_t th[WORKERS];
    int nth;
};

static void *tp_worker(void *p) {
    struct tpool *tp = p;
    for (;;) {
        pthread_mutex_lock(&tp->m);
        while (!tp->head && !tp->stop) {
            tp->idle++;
            pthread_cond_wait(&tp->work_cv, &tp->m);
            tp->idle--;
        }
        struct tp_node *n = tp->head;
        if (!n) {
            pthread_mutex_unlock(&tp->m);
            return NULL;
        }
        tp->head = n->next;
        if (!tp->head)
            tp->tail = NULL;
        pthread_mutex_unlock(&tp->m);

        spin_until(now() + n->us * 1e-6);
        tp->done_t[n->i] = now();
        free(n);
        pthread_mutex_lock(&tp->m);
        if (++tp->done == tp->target)
            pthread_cond_signal(&tp->done_cv);
        pthread_mutex_unlock(&tp->m);
    }
}

static int lat_pthreads(const double *us, int n, double interval, double *lat) {
    struct tpool tp;
    memset(&tp, 0, sizeof tp);
    double *sub = malloc((size_t)n * sizeof *sub);
    tp.done_t = malloc((size_t)n * sizeof *tp.done_t);
    if (!sub || !tp.done_t) {
        free(sub);
        free(tp.done_t);
        return -1;
    }
    tp.target = n;
    pthread_mutex_init(&tp.m, NULL);
    pthread_cond_init(&tp.work_cv, NULL);
    pthread_cond_init(&tp.done_cv, NULL);
    int res = -1;
    for (; tp.nth < WORKERS; tp.nth++)
        if (pthread_create(&tp.th[tp.nth], NULL, tp_worker, &tp))
            break;
    int submitted = 0;
    if (tp.nth == WORKERS) {
        double t0 = now();
        for (; submitted < n; submitted++) {
            sleep_until(t0 + submitted * interval);
            struct tp_node *nd = malloc(sizeof *nd);
            if (!nd)
                break;
            nd->next = NULL;
            nd->us = us[submitted];
            nd->i = submitted;
            sub[submitted] = now();
            pthread_mutex_lock(&tp.m);
            if (tp.tail)
                tp.tail->next = nd;
            else
                tp.head = nd;
            tp.tail = nd;
            if (tp.idle)
                pthread_cond_signal(&tp.work_cv);
            pthread_mutex_unlock(&tp.m);
        }
    }
    pthread_mutex_lock(&tp.m);
    tp.target = submitted;
    while (tp.done < tp.target)
        pthread_cond_wait(&tp.done_cv, &tp.m);
    tp.stop = 1;
    pthread_cond_broadcast(&tp.work_cv);
    pthread_mutex_unlock(&tp.m);
    for (int i = 0; i < tp.nth; i++)
        pthread_join(tp.th[i], NULL);
    if (submitted == n) {
        for (int i = 0; i < n; i++)
            lat[i] = tp.done_t[i] - sub[i];
        res = 0;
    } else {
        printf("  pthread pool: could not start its threads or submit\n");
    }
    pthread_mutex_destroy(&tp.m);
    pthread_cond_destroy(&tp.work_cv);
    pthread_cond_destroy(&tp.done_cv);
    free(sub);
    free(tp.done_t);
    return res;
}

/* ------------------------------------------------------------------------ */
/* Python anchors (bench/py_hol.py)                                         */
/* ------------------------------------------------------------------------ */

struct py_out {
    double hol_s, imap_s; /* a. medians */
    struct pct all, shrt; /* b. */
    char version[32];
};

/* Run py_hol.py with args; 0, -1 when python3 or the script is missing
 * (a notice printed), -2 on failure. */
static int run_python(const char *argv0, const char *args, struct py_out *py) {
    static int missing; /* say it once */
    if (missing)
        return -1;
    char script[PATH_MAX + 32];
    if (system("command -v python3 >/dev/null 2>&1") != 0) {
        printf("  python3 not found: the Python anchors are skipped\n");
        missing = 1;
        return -1;
    }
    if (bench_find_script(argv0, "PP_BENCH_PY_HOL", "py_hol.py", script, sizeof script) < 0) {
        printf("  bench/py_hol.py not found (run from the source directory, or set "
               "PP_BENCH_PY_HOL): the Python anchors are skipped\n");
        missing = 1;
        return -1;
    }
    char cmd[PATH_MAX + 256];
    snprintf(cmd, sizeof cmd, "python3 '%s' %s 2>&1", script, args);
    FILE *p = bench_popen_python(cmd);
    if (!p)
        return -2;
    char line[512];
    while (fgets(line, sizeof line, p)) {
        double v;
        char s[32];
        if (sscanf(line, "py_hol_s %lf", &v) == 1)
            py->hol_s = v;
        else if (sscanf(line, "py_imap_s %lf", &v) == 1)
            py->imap_s = v;
        else if (sscanf(line, "py_lat_p50_s %lf", &v) == 1)
            py->all.p50 = v;
        else if (sscanf(line, "py_lat_p99_s %lf", &v) == 1)
            py->all.p99 = v;
        else if (sscanf(line, "py_lat_p999_s %lf", &v) == 1)
            py->all.p999 = v;
        else if (sscanf(line, "py_lat_short_p50_s %lf", &v) == 1)
            py->shrt.p50 = v;
        else if (sscanf(line, "py_lat_short_p99_s %lf", &v) == 1)
            py->shrt.p99 = v;
        else if (sscanf(line, "py_lat_short_p999_s %lf", &v) == 1)
            py->shrt.p999 = v;
        else if (sscanf(line, "py_version %31s", s) == 1)
            snprintf(py->version, sizeof py->version, "%s", s);
        else if (strncmp(line, "py_", 3) == 0)
            printf("  python: %s", line); /* a figure for reference */
        else
            printf("  python: %s", line); /* a traceback or warning: show it */
    }
    int status = pclose(p);
    if (status != 0) {
        printf("  py_hol.py failed (status %d)\n", status);
        return -2;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* main                                                                     */
/* ------------------------------------------------------------------------ */

static double med_of(double *v, int n) { return n > 0 ? median(v, (size_t)n) : -1; }

static void print_pct(const char *who, struct pct a, struct pct s) {
    printf("  %-28s all: p50 %8.2f  p99 %8.2f  p99.9 %8.2f ms | 100 us ones: p50 %7.2f  p99 "
           "%7.2f  p99.9 %7.2f ms\n",
           who, a.p50 * 1e3, a.p99 * 1e3, a.p999 * 1e3, s.p50 * 1e3, s.p99 * 1e3, s.p999 * 1e3);
}

int main(int argc, char **argv) {
    (void)argc;
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *qe = getenv("BENCH_QUICK");
    quick = qe && *qe && strcmp(qe, "0") != 0;
    const double long_ms = quick ? 500.0 : LONG_MS;
    const int n_short = quick ? 250 : N_SHORT;
    const int runs = quick ? 1 : RUNS, map_runs = quick ? 1 : MAP_RUNS;
    const int lat_n = quick ? 500 : LAT_N;

    double t_start = now();
    printf("bench_hol: procpool %s (library %s), %d CPUs usable (pp_cpu_count), %ld online%s\n",
           PROCPOOL_VERSION_STRING, pp_version_string(), pp_cpu_count(),
           sysconf(_SC_NPROCESSORS_ONLN), quick ? ", BENCH_QUICK: small sizes" : "");
    bench_print_load();
    printf("\n");

    /* ---- a. head-of-line ---- */
    double cost = short_cost_s(SHORT_MS);
    double ideal = n_short * cost, ideal_imap = (n_short + 1 - CHUNK) * cost;
    printf("a. head-of-line, %d workers: one %.0f ms task, then %d tasks of %.0f ms "
           "(measured cost %.4f ms each)\n",
           WORKERS, long_ms, n_short, SHORT_MS, cost * 1e3);
    printf("   ideal: the free worker runs every short task: %d x %.4f ms = %.1f ms\n", n_short,
           cost * 1e3, ideal * 1e3);
    double v[RUNS > MAP_RUNS ? RUNS : MAP_RUNS];
    int nv = 0;
    for (int r = 0; r < runs; r++) {
        double s = hol_apply_run(long_ms, SHORT_MS, n_short);
        if (s < 0)
            break;
        v[nv++] = s;
        printf("  pp_apply_async run %d: short tasks done after %7.1f ms (%.3fx ideal)\n", r + 1,
               s * 1e3, s / ideal);
    }
    double hol_s = med_of(v, nv);
    nv = 0;
    for (int r = 0; r < runs; r++) {
        double s = baseline_run(long_ms, SHORT_MS, n_short);
        if (s < 0)
            break;
        v[nv++] = s;
        printf("  baseline run %d: the same short tasks on 1 worker beside a spinning process "
               "%7.1f ms (%.3fx ideal)\n",
               r + 1, s * 1e3, s / ideal);
    }
    double base_s = med_of(v, nv);
    nv = 0;
    for (int r = 0; r < map_runs; r++) {
        double s = hol_map_run(long_ms, SHORT_MS, n_short);
        if (s < 0)
            break;
        v[nv++] = s;
        printf("  pp_map_async PP_CHUNK_AUTO run %d: %d items done after %7.1f ms (%.3fx ideal)\n",
               r + 1, n_short, s * 1e3, s / ideal);
    }
    double map_s = med_of(v, nv);
    nv = 0;
    for (int r = 0; r < map_runs; r++) {
        double s = hol_imap_run(long_ms, SHORT_MS, n_short);
        if (s < 0)
            break;
        v[nv++] = s;
        printf("  pp_imap_unordered chunks of %d run %d: the other %d items in after %7.1f ms "
               "(%.3fx ideal %.1f ms)\n",
               CHUNK, r + 1, n_short + 1 - CHUNK, s * 1e3, s / ideal_imap, ideal_imap * 1e3);
    }
    double imap_s = med_of(v, nv);

    struct py_out py;
    memset(&py, 0, sizeof py);
    py.hol_s = py.imap_s = -1;
    py.all = py.shrt = (struct pct){-1, -1, -1};
    snprintf(py.version, sizeof py.version, "?");
    char args[256];
    snprintf(args, sizeof args, "hol %g %g %d %d %d", long_ms, SHORT_MS, n_short, map_runs, CHUNK);
    printf("  multiprocessing.Pool(%d): apply_async and imap_unordered(chunksize=%d), %d runs "
           "each\n",
           WORKERS, CHUNK, map_runs);
    int py_a = run_python(argv[0], args, &py);
    if (py_a == 0) {
        printf("  Python %s Pool.apply_async: short tasks done after %7.1f ms (%.3fx ideal)\n",
               py.version, py.hol_s * 1e3, py.hol_s / ideal);
        printf("  Python %s Pool.imap_unordered(chunksize=%d): the other items in after %7.1f ms "
               "(%.3fx ideal)\n",
               py.version, CHUNK, py.imap_s * 1e3, py.imap_s / ideal_imap);
    }
    printf("\n");

    /* ---- b. latency ---- */
    double *us = malloc((size_t)lat_n * sizeof *us);
    double *lat_pp = malloc((size_t)lat_n * sizeof *lat_pp);
    double *lat_tp = malloc((size_t)lat_n * sizeof *lat_tp);
    struct pct pp_all = {-1, -1, -1}, pp_sh = pp_all, tp_all = pp_all, tp_sh = pp_all;
    int py_b = -1;
    if (us && lat_pp && lat_tp) {
        lat_workload(us, lat_n);
        double interval = lat_interval_s(us, lat_n);
        int nlong = 0;
        for (int i = 0; i < lat_n; i++)
            nlong += us[i] == LAT_LONG_US;
        printf("b. latency, %d workers: %d tasks (%d of %.0f ms, the rest %.0f us; seeded), one "
               "every %.3f ms\n   (a steady rate: the workers %.0f%% busy on average), submit to "
               "done-callback\n",
               WORKERS, lat_n, nlong, LAT_LONG_US / 1e3, LAT_SHORT_US, interval * 1e3,
               LAT_BUSY * 100);
        if (lat_procpool(us, lat_n, interval, lat_pp) == 0) {
            pp_all = percentiles(lat_pp, us, lat_n, 0);
            pp_sh = percentiles(lat_pp, us, lat_n, LAT_SHORT_US);
            print_pct("procpool pp_submit+on_done", pp_all, pp_sh);
        }
        if (lat_pthreads(us, lat_n, interval, lat_tp) == 0) {
            tp_all = percentiles(lat_tp, us, lat_n, 0);
            tp_sh = percentiles(lat_tp, us, lat_n, LAT_SHORT_US);
            print_pct("anchor: mutex+condvar pthreads", tp_all, tp_sh);
        }
        snprintf(args, sizeof args, "lat %d %.9f %llu %g %g %d", lat_n, interval,
                 (unsigned long long)LAT_SEED, LAT_SHORT_US, LAT_LONG_US, LAT_LONG_PCT);
        py_b = run_python(argv[0], args, &py);
        if (py_b == 0)
            print_pct("anchor: Python Pool.apply_async", py.all, py.shrt);
        printf("  (the 50 ms tasks are %d%% of all: the p99 of all tasks cannot be below 50 ms "
               "in any pool,\n   and a short task that arrives while both workers run 50 ms "
               "ones waits for one of them)\n",
               LAT_LONG_PCT);
        /* latency.csv, for bench/plots.gp: all tasks, then the 100 us ones */
        struct pct none = {-1, -1, -1};
        struct pct set[2][3] = {{pp_all, tp_all, py_b == 0 ? py.all : none},
                                {pp_sh, tp_sh, py_b == 0 ? py.shrt : none}};
        for (int k = 0; k < 2; k++) {
            const char *who = k ? " (100 us tasks)" : "";
            const char *hdr = "percentile,procpool_us,pthread_us,python_us";
            const char *fmt = "%s%s,%.1f,%.1f,%.1f";
            bench_csv("latency", hdr, fmt, "p50", who, bench_csv_val(set[k][0].p50 * 1e6),
                      bench_csv_val(set[k][1].p50 * 1e6), bench_csv_val(set[k][2].p50 * 1e6));
            bench_csv("latency", hdr, fmt, "p99", who, bench_csv_val(set[k][0].p99 * 1e6),
                      bench_csv_val(set[k][1].p99 * 1e6), bench_csv_val(set[k][2].p99 * 1e6));
            bench_csv("latency", hdr, fmt, "p99.9", who, bench_csv_val(set[k][0].p999 * 1e6),
                      bench_csv_val(set[k][1].p999 * 1e6), bench_csv_val(set[k][2].p999 * 1e6));
        }
    } else {
        printf("b. out of memory: skipped\n");
    }
    free(us);
    free(lat_pp);
    free(lat_tp);
    printf("\n");

    /* ---- summary ---- */
    char val[32], anc[64];
    double ratio;

    fmt_ms(val, sizeof val, hol_s);
    snprintf(anc, sizeof anc, "ideal %.1f ms", ideal * 1e3);
    ratio = hol_s > 0 ? hol_s / ideal : -1;
    add_row("HOL: apply_async short tasks done", val, anc, ratio, "<= 1.05x", ratio <= 1.05);

    fmt_ms(val, sizeof val, hol_s);
    snprintf(anc, sizeof anc, "1 worker, no long task %.1f ms", base_s * 1e3);
    ratio = hol_s > 0 && base_s > 0 ? hol_s / base_s : -1;
    add_row("HOL: apply_async vs this machine's baseline", val, anc, ratio, "(ref.)", -1);

    if (py_a != -1) {
        fmt_ms(val, sizeof val, py_a == 0 ? py.hol_s : -1);
        ratio = py_a == 0 && py.hol_s > 0 ? py.hol_s / ideal : -1;
        add_row("HOL: Python Pool.apply_async (anchor)", "-", val[0] == 'n' ? "failed" : val, ratio,
                "(ref.)", -1);
        fmt_ms(val, sizeof val, hol_s);
        snprintf(anc, sizeof anc, "Pool.apply_async %.1f ms", py.hol_s * 1e3);
        ratio = py_a == 0 && hol_s > 0 && py.hol_s > 0 ? py.hol_s / hol_s : -1;
        add_row("HOL: apply_async vs Python (faster by)", val, anc, ratio, ">= 1x", ratio >= 1.0);
    }

    fmt_ms(val, sizeof val, map_s);
    snprintf(anc, sizeof anc, "ideal %.1f ms", ideal * 1e3);
    ratio = map_s > 0 ? map_s / ideal : -1;
    add_row("HOL: map_async AUTO, short items done", val, anc, ratio, "<= 1.05x", ratio <= 1.05);

    fmt_ms(val, sizeof val, imap_s);
    snprintf(anc, sizeof anc, "ideal %.1f ms", ideal_imap * 1e3);
    ratio = imap_s > 0 ? imap_s / ideal_imap : -1;
    add_row("HOL: imap_unordered chunks of 10", val, anc, ratio, "<= 1.05x", ratio <= 1.05);

    if (py_a != -1) {
        fmt_ms(val, sizeof val, imap_s);
        if (py_a == 0)
            snprintf(anc, sizeof anc, "Pool.imap_unordered %.1f ms", py.imap_s * 1e3);
        else
            snprintf(anc, sizeof anc, "Pool.imap_unordered failed");
        ratio = py_a == 0 && imap_s > 0 && py.imap_s > 0 ? py.imap_s / imap_s : -1;
        add_row("HOL: imap chunks of 10 vs Python (faster by)", val, anc, ratio, "(ref.)", -1);
    }

    fmt_ms(val, sizeof val, pp_all.p99);
    snprintf(anc, sizeof anc, "pthread pool %.2f ms", tp_all.p99 * 1e3);
    ratio = pp_all.p99 > 0 && tp_all.p99 > 0 ? pp_all.p99 / tp_all.p99 : -1;
    add_row("latency p99, all tasks", val, anc, ratio, "<= 1x", ratio <= 1.0);

    if (py_b != -1) {
        if (py_b == 0)
            snprintf(anc, sizeof anc, "Pool.apply_async %.2f ms", py.all.p99 * 1e3);
        else
            snprintf(anc, sizeof anc, "Pool.apply_async failed");
        ratio = py_b == 0 && pp_all.p99 > 0 && py.all.p99 > 0 ? pp_all.p99 / py.all.p99 : -1;
        add_row("latency p99 vs Python", val, anc, ratio, "<= 0.1x", ratio <= 0.1);
    }

    fmt_ms(val, sizeof val, pp_all.p50);
    snprintf(anc, sizeof anc, "pthread pool %.2f ms", tp_all.p50 * 1e3);
    ratio = pp_all.p50 > 0 && tp_all.p50 > 0 ? pp_all.p50 / tp_all.p50 : -1;
    add_row("latency p50, all tasks", val, anc, ratio, "(ref.)", -1);

    fmt_ms(val, sizeof val, pp_all.p999);
    snprintf(anc, sizeof anc, "pthread pool %.2f ms", tp_all.p999 * 1e3);
    ratio = pp_all.p999 > 0 && tp_all.p999 > 0 ? pp_all.p999 / tp_all.p999 : -1;
    add_row("latency p99.9, all tasks", val, anc, ratio, "(ref.)", -1);

    fmt_ms(val, sizeof val, pp_sh.p99);
    snprintf(anc, sizeof anc, "pthread pool %.2f ms", tp_sh.p99 * 1e3);
    ratio = pp_sh.p99 > 0 && tp_sh.p99 > 0 ? pp_sh.p99 / tp_sh.p99 : -1;
    add_row("latency p99, 100 us tasks", val, anc, ratio, "(ref.)", -1);

    if (py_b == 0) {
        snprintf(anc, sizeof anc, "Pool.apply_async %.2f ms", py.shrt.p99 * 1e3);
        ratio = pp_sh.p99 > 0 && py.shrt.p99 > 0 ? pp_sh.p99 / py.shrt.p99 : -1;
        add_row("latency p99, 100 us tasks vs Python", val, anc, ratio, "(ref.)", -1);
    }

    printf("summary (ratios: procpool / anchor, lower is better, except \"faster by\": "
           "anchor / procpool)\n\n");
    if (py_a == -1)
        add_row_met("vs Python multiprocessing", "-", "skipped (python3 or py_hol.py missing)", -1,
                    "-", BENCH_NA);
    print_summary();
    printf("bench_hol took %.1f s\n", now() - t_start);
    return 0; /* a benchmark never fails */
}
