/*
 * lecture.c - the seed lecture's program, in C.
 *
 * The lecture's Python original cuts the work over 0..400 into four segments
 * of 100, hands each to a multiprocessing.Pool(4) with apply_async, closes
 * and joins the pool, then reads the results. This is the same program on
 * procpool: one pp_apply_async per segment, pp_pool_close, pp_pool_join,
 * pp_future_get.
 *
 * Each task also reports the pid of the worker that ran it and how long it
 * was busy (wall time, and the CPU time its thread really got), so that the
 * program can end with the lecture's "look at your process usage" moment:
 * which process did how much, and how much of the pool's capacity that was.
 *
 * Usage: lecture [processes]      (default 4)
 */
#include <procpool.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define N_ITEMS 400L
#define N_SEGMENTS 4
/* Iterations of heavy()'s loop: sized so that the serial run over all 400
 * items takes about 1.7 s on one core of the reference machine. */
#define HEAVY_ITERS 1000000L

struct span {
    long lo, hi;
};

/* What one task sends back. */
struct seg_result {
    double sum;    /* sum of heavy(i) over the span */
    double busy_s; /* wall time the task ran (CLOCK_MONOTONIC) */
    double cpu_s;  /* CPU time the task's thread got (CLOCK_THREAD_CPUTIME_ID) */
    long pid;      /* the worker process that ran it */
};

static double now(clockid_t clk) {
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/*
 * A CPU-bound numeric body: iterate x <- 1 + c/x, a continued fraction that
 * converges to the positive root of x^2 - x - c = 0. Each step depends on
 * the previous one (a chain of divisions), so the loop cannot be vectorised
 * or skipped, and costs about the same at every optimisation level.
 */
static double heavy(long i) {
    const double c = 1.0 + (double)i / (double)N_ITEMS;
    double x = 1.0;
    for (long j = 0; j < HEAVY_ITERS; j++)
        x = 1.0 + c / x;
    return x;
}

static double segment_sum(const struct span *s) {
    double acc = 0.0;
    for (long i = s->lo; i < s->hi; i++)
        acc += heavy(i);
    return acc;
}

/* The task: runs in a worker process. */
static int work(const void *arg, size_t len, pp_buf_t *out) {
    if (len != sizeof(struct span))
        return pp_buf_fail(out, "expected a struct span (%zu bytes), got %zu bytes",
                           sizeof(struct span), len);
    struct span s;
    memcpy(&s, arg, sizeof s);

    struct seg_result r;
    double t0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_THREAD_CPUTIME_ID);
    r.sum = segment_sum(&s);
    r.cpu_s = now(CLOCK_THREAD_CPUTIME_ID) - c0;
    r.busy_s = now(CLOCK_MONOTONIC) - t0;
    r.pid = (long)getpid();
    return pp_buf_append(out, &r, sizeof r);
}

/* CPU time (user + system) of this process, all its threads, or of its reaped
 * children. */
static double rusage_cpu(int who) {
    struct rusage ru;
    getrusage(who, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
}

static int fail(const char *what, int err) {
    fprintf(stderr, "lecture: %s failed: %s (%s)\n", what, pp_strerror(err), pp_err_name(err));
    return 1;
}

int main(int argc, char **argv) {
    int processes = 4;
    if (argc > 2) {
        fprintf(stderr, "usage: %s [processes]\n", argv[0]);
        return 2;
    }
    if (argc == 2) {
        char *end;
        errno = 0;
        long p = strtol(argv[1], &end, 10);
        if (errno || *end || end == argv[1] || p < 1 || p > 4096) {
            fprintf(stderr, "lecture: processes must be an integer in 1..4096, not '%s'\n",
                    argv[1]);
            return 2;
        }
        processes = (int)p;
    }

    struct span spans[N_SEGMENTS];
    for (int k = 0; k < N_SEGMENTS; k++) {
        spans[k].lo = k * (N_ITEMS / N_SEGMENTS);
        spans[k].hi = (k + 1) * (N_ITEMS / N_SEGMENTS);
    }

    printf("procpool %s lecture: heavy(i) for i in [0, %ld), %d segments, "
           "%d processes (%d CPUs usable)\n\n",
           PROCPOOL_VERSION_STRING, N_ITEMS, N_SEGMENTS, processes, pp_cpu_count());

    /* ---- serial: the same work, in this process ---- */
    double serial[N_SEGMENTS];
    double t0 = now(CLOCK_MONOTONIC);
    for (int k = 0; k < N_SEGMENTS; k++)
        serial[k] = segment_sum(&spans[k]);
    double serial_s = now(CLOCK_MONOTONIC) - t0;

    /* ---- parallel: the lecture's pool ---- */
    pp_options_t opt;
    pp_options_init(&opt);
    opt.processes = processes;

    pp_pool_t *pool = NULL;
    pp_future_t *fut[N_SEGMENTS] = {0};
    int rc, status = 0;

    double self0 = rusage_cpu(RUSAGE_SELF), kids0 = rusage_cpu(RUSAGE_CHILDREN);
    double p0 = now(CLOCK_MONOTONIC);
    rc = pp_pool_create(&pool, &opt);
    if (rc < 0)
        return fail("pp_pool_create", rc);
    double create_s = now(CLOCK_MONOTONIC) - p0;

    for (int k = 0; k < N_SEGMENTS; k++) {
        rc = pp_apply_async(pool, work, &spans[k], sizeof spans[k], &fut[k]);
        if (rc < 0) {
            status = fail("pp_apply_async", rc);
            goto out;
        }
    }
    rc = pp_pool_close(pool);
    if (rc < 0) {
        status = fail("pp_pool_close", rc);
        goto out;
    }
    rc = pp_pool_join(pool);
    if (rc < 0) {
        status = fail("pp_pool_join", rc);
        goto out;
    }
    double pool_s = now(CLOCK_MONOTONIC) - p0;
    /* join has reaped the workers, so their CPU time is in RUSAGE_CHILDREN */
    double self_cpu = rusage_cpu(RUSAGE_SELF) - self0;
    double kids_cpu = rusage_cpu(RUSAGE_CHILDREN) - kids0;

    /* ---- the results ---- */
    struct seg_result res[N_SEGMENTS];
    for (int k = 0; k < N_SEGMENTS; k++) {
        const void *data;
        size_t len;
        rc = pp_future_get(fut[k], -1, &data, &len);
        if (rc < 0) {
            const char *msg = pp_future_error(fut[k]);
            fprintf(stderr, "lecture: segment %d failed: %s (%s)%s%s\n", k, pp_strerror(rc),
                    pp_err_name(rc), msg ? ": " : "", msg ? msg : "");
            status = 1;
            goto out;
        }
        if (len != sizeof res[k]) {
            fprintf(stderr, "lecture: segment %d: result of %zu bytes, expected %zu\n", k, len,
                    sizeof res[k]);
            status = 1;
            goto out;
        }
        memcpy(&res[k], data, sizeof res[k]);
    }

    printf("  segment        result      worker pid   busy (wall)   busy (cpu)   same as serial\n");
    double total = 0.0, serial_total = 0.0;
    for (int k = 0; k < N_SEGMENTS; k++) {
        total += res[k].sum;
        serial_total += serial[k];
        printf("  [%3ld, %3ld)  %12.6f  %11ld  %10.3f s  %9.3f s   %s\n", spans[k].lo, spans[k].hi,
               res[k].sum, res[k].pid, res[k].busy_s, res[k].cpu_s,
               res[k].sum == serial[k] ? "yes" : "NO");
        if (res[k].sum != serial[k])
            status = 1;
    }
    printf("  total       %12.6f  (serial %.6f)\n\n", total, serial_total);

    printf("  serial (this process) %8.3f s\n", serial_s);
    printf("  pool   (%d processes) %8.3f s   (pool start-up %.1f ms, included)\n", processes,
           pool_s, create_s * 1e3);
    int ideal = processes < pp_cpu_count() ? processes : pp_cpu_count();
    if (ideal > N_SEGMENTS)
        ideal = N_SEGMENTS;
    printf("  speedup               %8.2fx   (at best %dx: %d CPUs, %d processes, %d segments)\n\n",
           serial_s / pool_s, ideal, pp_cpu_count(), processes, N_SEGMENTS);

    /* ---- look at your process usage: busy time per worker pid ---- */
    long pids[N_SEGMENTS];
    double busy[N_SEGMENTS], cpu[N_SEGMENTS];
    int tasks[N_SEGMENTS], npids = 0;
    for (int k = 0; k < N_SEGMENTS; k++) {
        int j = 0;
        while (j < npids && pids[j] != res[k].pid)
            j++;
        if (j == npids) {
            pids[j] = res[k].pid;
            busy[j] = cpu[j] = 0.0;
            tasks[j] = 0;
            npids++;
        }
        busy[j] += res[k].busy_s;
        cpu[j] += res[k].cpu_s;
        tasks[j]++;
    }
    printf("  process usage (pool wall time %.3f s x %d workers = %.3f worker-seconds)\n", pool_s,
           processes, pool_s * processes);
    printf("      pid  tasks   busy (wall)  %% of wall   busy (cpu)  %% of capacity\n");
    double busy_total = 0.0, cpu_total = 0.0;
    for (int j = 0; j < npids; j++) {
        busy_total += busy[j];
        cpu_total += cpu[j];
        printf("  %7ld  %5d  %10.3f s  %8.1f%%  %9.3f s  %12.1f%%\n", pids[j], tasks[j], busy[j],
               100.0 * busy[j] / pool_s, cpu[j], 100.0 * busy[j] / (pool_s * processes));
    }
    printf("    total  %5d  %10.3f s  %9s  %9.3f s  %12.1f%%\n", N_SEGMENTS, busy_total, "",
           cpu_total, 100.0 * busy_total / (pool_s * processes));
    printf("  parent %ld (submits, joins; its supervisor thread): %.3f s CPU during the pool run\n",
           (long)getpid(), self_cpu);
    printf("  all reaped pool processes (workers, fork server): %.3f s CPU\n", kids_cpu);
    if (npids < processes && processes > N_SEGMENTS)
        printf("  %d of %d workers ran no task: %d segments cannot keep %d processes busy.\n",
               processes - npids, processes, N_SEGMENTS, processes);
    else if (npids < processes)
        printf("  %d of %d workers ran no task: a worker that finished early took another "
               "segment.\n",
               processes - npids, processes);
    if (cpu_total < 0.9 * busy_total)
        printf("  busy (cpu) < busy (wall): the workers shared %d CPUs and waited for one.\n",
               pp_cpu_count());

out:
    for (int k = 0; k < N_SEGMENTS; k++)
        pp_future_free(fut[k]);
    pp_pool_destroy(pool);
    return status;
}
