/*
 * bench_core.c - procpool's core figures, each against an anchor measured in
 * the same run (only ratios from one run are comparable):
 *
 *   a. pp_apply round trip of a no-op (pools of 1 and 2 workers)
 *      vs a futex ping-pong between two processes (sleeping waiter);
 *      a spin-then-futex ping-pong is printed for reference.
 *   b. 200 000 independent no-op pp_apply_async tasks on a pool of 2
 *      vs a mutex+condvar pthread pool of 2 threads on the same tasks.
 *   c. if python3 is found: the same two figures against
 *      multiprocessing.Pool(2) (bench/py_pool.py).
 *
 * Ends with a summary table. A benchmark never fails: the exit status is 0
 * even when a goal is missed (the row then says MISSED) or a figure could not
 * be measured (the row says n/a).
 *
 * Usage: bench_core      (run from the source directory, as `make bench` does,
 *                         or anywhere: py_pool.py is also looked for next to
 *                         the binary's ../bench; PP_BENCH_PY=path overrides)
 */
#include <procpool.h>

#include "bench_util.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PINGPONG_ROUNDS 20000
#define APPLY_CALLS 20000
#define APPLY_WARMUP 500
#define ASYNC_TASKS 200000
#define RUNS 3
#define PY_APPLY_CALLS 2000
#define PY_ASYNC_TASKS 100000
#define FIGURE_TIME_CAP_S 5.0 /* a loop of round trips stops early past this */
#define SPIN_NS 20000         /* spin-then-futex: spin this long before sleeping */

/* ------------------------------------------------------------------------ */
/* helpers                                                                  */
/* ------------------------------------------------------------------------ */

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static void futex_wait(atomic_uint *w, unsigned expected) {
    /* non-private: the word lives in a MAP_SHARED page seen by two processes */
    syscall(SYS_futex, (uint32_t *)w, FUTEX_WAIT, expected, NULL, NULL, 0);
}

static void futex_wake(atomic_uint *w) {
    syscall(SYS_futex, (uint32_t *)w, FUTEX_WAKE, 1, NULL, NULL, 0);
}

static int noop(const void *arg, size_t len, pp_buf_t *out) {
    (void)arg;
    (void)len;
    (void)out;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* a. anchors: ping-pong between two processes over one shared futex word    */
/* ------------------------------------------------------------------------ */

enum { PP_IDLE = 0, PING = 1, PONG = 2, QUIT = 3 };
#define SLEEPER 0x80000000u /* spin-then-futex: a waiter is (about to be) asleep */

/* Sleeping waiter: every wait goes straight to FUTEX_WAIT. */
static unsigned sleep_wait(atomic_uint *w, unsigned want) {
    unsigned v;
    while ((v = atomic_load(w)) != want && v != QUIT)
        futex_wait(w, v);
    return v;
}

static void sleep_post(atomic_uint *w, unsigned v) {
    atomic_store(w, v);
    futex_wake(w);
}

/* Spin-then-futex: spin up to SPIN_NS with pause, then announce a sleeper
 * with the SLEEPER bit and sleep; the poster wakes only when the bit was set
 * (an eventcount in one word: no system call while both sides are awake). */
static unsigned spin_wait(atomic_uint *w, unsigned want) {
    unsigned v;
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (unsigned i = 1;; i++) {
        v = atomic_load_explicit(w, memory_order_acquire) & ~SLEEPER;
        if (v == want || v == QUIT)
            return v;
        cpu_relax();
        if (i % 64 == 0) {
            clock_gettime(CLOCK_MONOTONIC, &t);
            if ((t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec) > SPIN_NS)
                break;
        }
    }
    for (;;) {
        v = atomic_load(w);
        /* the other side may have set SLEEPER on our value: ignore it */
        if ((v & ~SLEEPER) == want || (v & ~SLEEPER) == QUIT)
            return v & ~SLEEPER;
        if (!(v & SLEEPER)) {
            if (!atomic_compare_exchange_weak(w, &v, v | SLEEPER))
                continue;
            v |= SLEEPER;
        }
        futex_wait(w, v);
    }
}

static void spin_post(atomic_uint *w, unsigned v) {
    if (atomic_exchange(w, v) & SLEEPER)
        futex_wake(w);
}

/* The n-th CPU (0-based) of this process's affinity mask, or -1. */
static int nth_cpu(const cpu_set_t *mask, int n) {
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, mask) && n-- == 0)
            return c;
    return -1;
}

static void pin_to(int cpu) {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    sched_setaffinity(0, sizeof one, &one);
}

/*
 * Round trip between this process and a forked child through one word of a
 * shared anonymous page: the parent posts PING and waits for PONG. Returns
 * the median round trip in microseconds, or -1 on failure (or when
 * cross_cpu is asked for and fewer than two CPUs are usable).
 * cross_cpu: pin parent and child to two different CPUs. Unpinned, the
 * scheduler's sync wake-up tends to put both on one CPU, and a sleeping
 * hand-off is then just two context switches.
 */
static double pingpong_us(int spinning, int cross_cpu, int rounds) {
    cpu_set_t saved;
    int cpu_a = -1, cpu_b = -1;
    if (cross_cpu) {
        if (sched_getaffinity(0, sizeof saved, &saved) < 0)
            return -1;
        cpu_a = nth_cpu(&saved, 0);
        cpu_b = nth_cpu(&saved, 1);
        if (cpu_b < 0)
            return -1;
    }
    atomic_uint *w = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    double *rt = malloc(sizeof *rt * (size_t)rounds);
    if (w == MAP_FAILED || !rt) {
        perror("bench_core: ping-pong setup");
        if (w != MAP_FAILED)
            munmap(w, 4096);
        free(rt);
        return -1;
    }
    unsigned (*wait_for)(atomic_uint *, unsigned) = spinning ? spin_wait : sleep_wait;
    void (*post)(atomic_uint *, unsigned) = spinning ? spin_post : sleep_post;
    atomic_store(w, PP_IDLE);

    pid_t pid = fork();
    if (pid < 0) {
        perror("bench_core: fork");
        munmap(w, 4096);
        free(rt);
        return -1;
    }
    if (pid == 0) {
        if (cross_cpu)
            pin_to(cpu_b);
        while (wait_for(w, PING) != QUIT)
            post(w, PONG);
        _exit(0);
    }
    if (cross_cpu)
        pin_to(cpu_a);
    int n = 0;
    for (int i = 0; i < rounds; i++) {
        double t0 = now();
        post(w, PING);
        wait_for(w, PONG);
        rt[n++] = now() - t0;
    }
    post(w, QUIT);
    waitpid(pid, NULL, 0);
    if (cross_cpu)
        sched_setaffinity(0, sizeof saved, &saved);
    double med = median(rt, (size_t)n) * 1e6;
    munmap(w, 4096);
    free(rt);
    return med;
}

/* ------------------------------------------------------------------------ */
/* a. procpool: sequential pp_apply round trips                             */
/* ------------------------------------------------------------------------ */

/* Median pp_apply round trip of a no-op in µs; -1 on failure. */
static double apply_rtt_us(int processes, int *calls_done) {
    *calls_done = 0;
    pp_pool_t *pool = bench_make_pool(processes);
    if (!pool)
        return -1;
    double *rt = malloc(sizeof *rt * APPLY_CALLS);
    if (!rt) {
        pp_pool_destroy(pool);
        return -1;
    }
    double res = -1;
    void *out;
    size_t out_len;
    for (int i = 0; i < APPLY_WARMUP; i++) {
        int rc = pp_apply(pool, noop, NULL, 0, &out, &out_len);
        if (rc < 0) {
            printf("  pp_apply (warm-up call %d) failed: %s (%s)\n", i, pp_strerror(rc),
                   pp_err_name(rc));
            goto done;
        }
        free(out);
    }
    int n = 0;
    double start = now();
    for (int i = 0; i < APPLY_CALLS; i++) {
        double t0 = now();
        int rc = pp_apply(pool, noop, NULL, 0, &out, &out_len);
        double t1 = now();
        if (rc < 0) {
            printf("  pp_apply (call %d) failed: %s (%s)\n", i, pp_strerror(rc), pp_err_name(rc));
            goto done;
        }
        if (out_len != 0)
            printf("  pp_apply: a no-op returned %zu bytes (expected 0)\n", out_len);
        free(out);
        rt[n++] = t1 - t0;
        if (t1 - start > FIGURE_TIME_CAP_S) {
            printf("  (stopped after %d calls: over %.0f s)\n", n, FIGURE_TIME_CAP_S);
            break;
        }
    }
    *calls_done = n;
    res = median(rt, (size_t)n) * 1e6;
done:
    free(rt);
    pp_pool_destroy(pool);
    return res;
}

/* ------------------------------------------------------------------------ */
/* b. procpool: many independent pp_apply_async tasks                       */
/* ------------------------------------------------------------------------ */

/* One run: submit n no-ops, then get and free each. Tasks/s, or -1. */
static double async_run(pp_pool_t *pool, pp_future_t **f, int n) {
    int failed = 0;
    double t0 = now();
    int submitted = 0;
    for (; submitted < n; submitted++) {
        int rc = pp_apply_async(pool, noop, NULL, 0, &f[submitted]);
        if (rc < 0) {
            printf("  pp_apply_async (task %d) failed: %s (%s)\n", submitted, pp_strerror(rc),
                   pp_err_name(rc));
            failed = 1;
            break;
        }
    }
    for (int i = 0; i < submitted; i++) {
        const void *data;
        size_t len;
        int rc = pp_future_get(f[i], -1, &data, &len);
        if (rc < 0 && !failed) {
            const char *msg = pp_future_error(f[i]);
            printf("  pp_future_get (task %d) failed: %s (%s)%s%s\n", i, pp_strerror(rc),
                   pp_err_name(rc), msg ? ": " : "", msg ? msg : "");
            failed = 1;
        }
        pp_future_free(f[i]);
    }
    double dt = now() - t0;
    return failed ? -1 : n / dt;
}

/* ------------------------------------------------------------------------ */
/* b. anchor: a mutex+condvar pthread pool                                  */
/* ------------------------------------------------------------------------ */

struct tp_future {
    atomic_int done;
};

struct tp_node {
    struct tp_node *next;
    void (*fn)(void *);
    void *arg;
    struct tp_future *fut;
};

struct tpool {
    pthread_mutex_t m;
    pthread_cond_t work_cv; /* workers wait here for tasks */
    pthread_cond_t done_cv; /* callers of tp_get wait here */
    struct tp_node *head, *tail;
    int idle; /* workers waiting on work_cv */
    atomic_int done_waiters;
    int stop;
    pthread_t th[2];
    int nth;
};

static void tp_noop(void *arg) { (void)arg; }

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

        n->fn(n->arg);
        struct tp_future *f = n->fut;
        free(n);
        atomic_store(&f->done, 1);
        if (atomic_load(&tp->done_waiters)) {
            pthread_mutex_lock(&tp->m);
            pthread_cond_broadcast(&tp->done_cv);
            pthread_mutex_unlock(&tp->m);
        }
    }
}

static int tp_start(struct tpool *tp, int threads) {
    memset(tp, 0, sizeof *tp);
    pthread_mutex_init(&tp->m, NULL);
    pthread_cond_init(&tp->work_cv, NULL);
    pthread_cond_init(&tp->done_cv, NULL);
    for (; tp->nth < threads; tp->nth++)
        if (pthread_create(&tp->th[tp->nth], NULL, tp_worker, tp))
            return -1;
    return 0;
}

static void tp_stop(struct tpool *tp) {
    pthread_mutex_lock(&tp->m);
    tp->stop = 1;
    pthread_cond_broadcast(&tp->work_cv);
    pthread_mutex_unlock(&tp->m);
    for (int i = 0; i < tp->nth; i++)
        pthread_join(tp->th[i], NULL);
    pthread_mutex_destroy(&tp->m);
    pthread_cond_destroy(&tp->work_cv);
    pthread_cond_destroy(&tp->done_cv);
}

static struct tp_future *tp_submit(struct tpool *tp, void (*fn)(void *), void *arg) {
    struct tp_node *n = malloc(sizeof *n);
    struct tp_future *f = malloc(sizeof *f);
    if (!n || !f) {
        free(n);
        free(f);
        return NULL;
    }
    atomic_init(&f->done, 0);
    n->next = NULL;
    n->fn = fn;
    n->arg = arg;
    n->fut = f;
    pthread_mutex_lock(&tp->m);
    if (tp->tail)
        tp->tail->next = n;
    else
        tp->head = n;
    tp->tail = n;
    if (tp->idle)
        pthread_cond_signal(&tp->work_cv);
    pthread_mutex_unlock(&tp->m);
    return f;
}

static void tp_get(struct tpool *tp, struct tp_future *f) {
    if (atomic_load(&f->done))
        return;
    pthread_mutex_lock(&tp->m);
    atomic_fetch_add(&tp->done_waiters, 1);
    while (!atomic_load(&f->done))
        pthread_cond_wait(&tp->done_cv, &tp->m);
    atomic_fetch_sub(&tp->done_waiters, 1);
    pthread_mutex_unlock(&tp->m);
}

static double tp_run(struct tpool *tp, struct tp_future **f, int n) {
    double t0 = now();
    for (int i = 0; i < n; i++)
        if (!(f[i] = tp_submit(tp, tp_noop, NULL)))
            return -1; /* out of memory: the bench is over anyway */
    for (int i = 0; i < n; i++) {
        tp_get(tp, f[i]);
        free(f[i]);
    }
    return n / (now() - t0);
}

/* ------------------------------------------------------------------------ */
/* c. anchor: Python's multiprocessing.Pool                                 */
/* ------------------------------------------------------------------------ */

struct py_figures {
    double apply_rtt_us, async_tps;
    char version[32];
};

/* 0 on success, -1 when python3 or the script is missing, -2 on failure. */
static int run_python(const char *argv0, struct py_figures *py) {
    char script[PATH_MAX + 32];
    if (system("command -v python3 >/dev/null 2>&1") != 0) {
        printf("  python3 not found: skipped\n");
        return -1;
    }
    if (bench_find_script(argv0, "PP_BENCH_PY", "py_pool.py", script, sizeof script) < 0) {
        printf("  bench/py_pool.py not found (run from the source directory, or set "
               "PP_BENCH_PY): skipped\n");
        return -1;
    }
    char cmd[PATH_MAX + 128];
    snprintf(cmd, sizeof cmd, "python3 '%s' %d %d 2>&1", script, PY_APPLY_CALLS, PY_ASYNC_TASKS);
    fflush(stdout);
    FILE *p = popen(cmd, "r");
    if (!p) {
        printf("  could not run python3: %s\n", strerror(errno));
        return -2;
    }
    char line[512];
    py->apply_rtt_us = py->async_tps = -1;
    snprintf(py->version, sizeof py->version, "?");
    while (fgets(line, sizeof line, p)) {
        double v;
        char s[32];
        if (sscanf(line, "py_apply_rtt_us %lf", &v) == 1)
            py->apply_rtt_us = v;
        else if (sscanf(line, "py_async_tps %lf", &v) == 1)
            py->async_tps = v;
        else if (sscanf(line, "py_version %31s", s) == 1)
            snprintf(py->version, sizeof py->version, "%s", s);
        else if (strncmp(line, "py_", 3) != 0)
            printf("  python: %s", line); /* a traceback or warning: show it */
    }
    int st = pclose(p);
    if (st != 0 || py->apply_rtt_us <= 0 || py->async_tps <= 0) {
        printf("  py_pool.py failed (status %d)\n", st);
        return -2;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* summary                                                                  */
/* ------------------------------------------------------------------------ */

static void fmt_us(char *buf, size_t size, double us) {
    if (us > 0)
        snprintf(buf, size, "%.2f us", us);
    else
        snprintf(buf, size, "n/a");
}

int main(int argc, char **argv) {
    (void)argc;
    setvbuf(stdout, NULL, _IOLBF, 0);
    double t_start = now();
    printf("bench_core: procpool %s, %d CPUs usable (pp_cpu_count), %ld online\n",
           PROCPOOL_VERSION_STRING, pp_cpu_count(), sysconf(_SC_NPROCESSORS_ONLN));
    bench_print_load();
    printf("\n");

    /* ---- a. round trips ---- */
    printf("a. round trip of a no-op (median of %d)\n", APPLY_CALLS);
    double futex_us = pingpong_us(0, 0, PINGPONG_ROUNDS);
    double spin_us = pingpong_us(1, 0, PINGPONG_ROUNDS);
    double futex_x_us = pingpong_us(0, 1, PINGPONG_ROUNDS / 4);
    double spin_x_us = pingpong_us(1, 1, PINGPONG_ROUNDS);
    printf("  anchor: futex ping-pong, sleeping waiter      %10.3f us\n", futex_us);
    printf("  anchor: spin-then-futex ping-pong (%d us spin) %8.3f us\n", SPIN_NS / 1000, spin_us);
    printf("  reference, pinned to two different CPUs: futex %.3f us, spin-then-futex %.3f us\n",
           futex_x_us, spin_x_us);
    int calls1, calls2;
    double apply1_us = apply_rtt_us(1, &calls1);
    printf("  pp_apply, pool of 1                          %10.3f us  (%d calls)\n", apply1_us,
           calls1);
    double apply2_us = apply_rtt_us(2, &calls2);
    printf("  pp_apply, pool of 2                          %10.3f us  (%d calls)\n\n", apply2_us,
           calls2);

    /* ---- b. throughput ---- */
    printf("b. %d independent no-op tasks, submit all then get/free all, 2 workers "
           "(median of %d runs)\n",
           ASYNC_TASKS, RUNS);
    pp_future_t **f = malloc(sizeof *f * ASYNC_TASKS);
    struct tp_future **tf = malloc(sizeof *tf * ASYNC_TASKS);
    if (!f || !tf) {
        printf("out of memory\n");
        return 0;
    }
    double pp_runs[RUNS], tp_runs[RUNS];
    int pp_n = 0, tp_n = 0;
    pp_pool_t *pool = bench_make_pool(2);
    if (pool) {
        for (int r = 0; r < RUNS; r++) {
            double t0 = now();
            double tps = async_run(pool, f, ASYNC_TASKS);
            if (tps < 0)
                break;
            pp_runs[pp_n++] = tps;
            printf("  procpool run %d: %12.0f tasks/s\n", r + 1, tps);
            if (now() - t0 > 2 * FIGURE_TIME_CAP_S / RUNS && r + 1 < RUNS) {
                printf("  (slow: the remaining runs are skipped)\n");
                break;
            }
        }
        pp_pool_destroy(pool);
    }
    struct tpool tp;
    if (tp_start(&tp, 2) == 0) {
        for (int r = 0; r < RUNS; r++) {
            double tps = tp_run(&tp, tf, ASYNC_TASKS);
            if (tps < 0)
                break;
            tp_runs[tp_n++] = tps;
            printf("  pthread pool run %d: %8.0f tasks/s\n", r + 1, tps);
        }
    } else {
        printf("  pthread_create failed\n");
    }
    tp_stop(&tp);
    free(f);
    free(tf);
    double pp_tps = pp_n ? median(pp_runs, (size_t)pp_n) : -1;
    double tp_tps = tp_n ? median(tp_runs, (size_t)tp_n) : -1;
    printf("  procpool pp_apply_async        %12.0f tasks/s\n", pp_tps);
    printf("  anchor: mutex+condvar pthreads %12.0f tasks/s\n\n", tp_tps);

    /* ---- c. Python ---- */
    printf("c. multiprocessing.Pool(2): apply x %d, apply_async x %d\n", PY_APPLY_CALLS,
           PY_ASYNC_TASKS);
    struct py_figures py;
    int py_rc = run_python(argv[0], &py);
    if (py_rc == 0) {
        printf("  Python %s Pool.apply round trip  %10.3f us\n", py.version, py.apply_rtt_us);
        printf("  Python %s Pool.apply_async       %10.0f tasks/s\n", py.version, py.async_tps);
    }
    printf("\n");

    /* ---- apply.csv, for bench/plots.gp ---- */
    const char *hdr = "name,value,unit";
    bench_csv("apply", hdr, "pp_apply 1 worker,%.4f,us", bench_csv_val(apply1_us));
    bench_csv("apply", hdr, "pp_apply 2 workers,%.4f,us", bench_csv_val(apply2_us));
    bench_csv("apply", hdr, "Python Pool.apply,%.4f,us",
              bench_csv_val(py_rc == 0 ? py.apply_rtt_us : -1));
    bench_csv("apply", hdr, "futex ping-pong,%.4f,us", bench_csv_val(futex_us));
    bench_csv("apply", hdr, "spin+futex ping-pong,%.4f,us", bench_csv_val(spin_us));

    /* ---- summary ---- */
    char v[32], a[48];
    double ok;

    fmt_us(v, sizeof v, apply1_us);
    snprintf(a, sizeof a, "futex ping-pong %.2f us", futex_us);
    ok = apply1_us > 0 && futex_us > 0 ? apply1_us / futex_us : -1;
    add_row("pp_apply round trip, 1 worker", v, a, ok, "<= 2x", ok <= 2.0);

    fmt_us(v, sizeof v, apply2_us);
    ok = apply2_us > 0 && futex_us > 0 ? apply2_us / futex_us : -1;
    add_row("pp_apply round trip, 2 workers", v, a, ok, "<= 2x", ok <= 2.0);

    fmt_us(v, sizeof v, apply1_us);
    snprintf(a, sizeof a, "spin+futex ping-pong %.3f us", spin_us);
    ok = apply1_us > 0 && spin_us > 0 ? apply1_us / spin_us : -1;
    add_row("pp_apply 1 worker vs spin ping-pong", v, a, ok, "(ref.)", -1);

    fmt_us(v, sizeof v, apply1_us);
    snprintf(a, sizeof a, "futex, 2 CPUs pinned %.2f us", futex_x_us);
    ok = apply1_us > 0 && futex_x_us > 0 ? apply1_us / futex_x_us : -1;
    add_row("pp_apply 1 worker vs cross-CPU futex", v, a, ok, "(ref.)", -1);

    fmt_rate(v, sizeof v, pp_tps);
    fmt_rate(a, sizeof a, tp_tps);
    memmove(a + 13, a, strlen(a) + 1);
    memcpy(a, "pthread pool ", 13);
    ok = pp_tps > 0 && tp_tps > 0 ? pp_tps / tp_tps : -1;
    add_row("apply_async no-ops, 2 workers", v, a, ok, ">= 1x", ok >= 1.0);

    fmt_rate(v, sizeof v, pp_tps);
    ok = pp_tps > 0 ? pp_tps / 1e6 : -1;
    add_row("apply_async no-ops, absolute", v, "goal 1.00 M/s", ok, ">= 1x", ok >= 1.0);

    if (py_rc != -1) {
        fmt_us(v, sizeof v, apply2_us);
        if (py_rc == 0)
            snprintf(a, sizeof a, "Pool.apply %.1f us", py.apply_rtt_us);
        else
            snprintf(a, sizeof a, "Pool.apply failed");
        ok = py_rc == 0 && apply2_us > 0 ? py.apply_rtt_us / apply2_us : -1;
        add_row("apply round trip vs Python (faster by)", v, a, ok, ">= 20x", ok >= 20.0);

        fmt_rate(v, sizeof v, pp_tps);
        if (py_rc == 0)
            snprintf(a, sizeof a, "Pool.apply_async %.1f k/s", py.async_tps / 1e3);
        else
            snprintf(a, sizeof a, "Pool.apply_async failed");
        ok = py_rc == 0 && pp_tps > 0 ? pp_tps / py.async_tps : -1;
        add_row("apply_async vs Python (faster by)", v, a, ok, ">= 20x", ok >= 20.0);
    }

    printf("summary (ratios are procpool against the anchor measured above; for round\n"
           "trips procpool/anchor, lower is better; for throughput and Python, higher is "
           "better)\n\n");
    if (py_rc == -1)
        add_row_met("vs Python multiprocessing", "-", "skipped (see c. above)", -1, ">= 20x",
                    BENCH_NA);
    print_summary();
    printf("bench_core took %.1f s\n", now() - t_start);
    return 0; /* a benchmark never fails */
}
