/*
 * soak.c - the full soak: millions of tiny tasks while a thread SIGKILLs a
 * random worker every few milliseconds.
 *
 *   soak [TASKS [KILL_MS [PROCESSES]]]
 *       TASKS      tasks to run (default 10000000)
 *       KILL_MS    milliseconds between kills (default 3; 0: no kills)
 *       PROCESSES  workers (default 0: one per CPU)
 *
 * Phase 1 runs TASKS tasks with pp_apply_async (result = arg*3+1), keeping a
 * window of futures in flight; every task must succeed with the right
 * result or fail PP_EWORKER; none may be lost (every future completes
 * within 60 s), run twice (each task counts its executions in shared
 * memory), or come back wrong. A kill fails at most the task its worker
 * was running, so failures may not outnumber kills (bar start-up failures,
 * counted apart). Phase 2 maps TASKS items with pp_imap_unordered, where
 * each item is reported on its own: every index exactly once, right or
 * PP_EWORKER. Prints the counts and the throughput; exits 0 when every
 * check holds, 1 otherwise.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "procpool.h"
#include "../tests/proc_util.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* ---- finding and killing workers ------------------------------------------ */

static struct {
    pthread_t th;
    atomic_bool stop;
    _Atomic long kills;
    int interval_ms;
} K;

static void *killer_main(void *arg) {
    (void)arg;
    unsigned seed = (unsigned)getpid() * 2654435761u;
    while (!atomic_load(&K.stop)) {
        sleep_ms(K.interval_ms);
        pid_t w[256];
        int n = ppt_find_workers(w, 256);
        if (n == 0)
            continue;
        seed = seed * 1103515245u + 12345u;
        if (kill(w[(seed >> 16) % (unsigned)n], SIGKILL) == 0)
            atomic_fetch_add(&K.kills, 1);
    }
    return NULL;
}

static int killer_start(int interval_ms) {
    atomic_store(&K.stop, false);
    atomic_store(&K.kills, 0);
    K.interval_ms = interval_ms;
    if (interval_ms <= 0)
        return 0;
    return pthread_create(&K.th, NULL, killer_main, NULL);
}

static long killer_stop(void) {
    if (K.interval_ms > 0) {
        atomic_store(&K.stop, true);
        pthread_join(K.th, NULL);
    }
    return atomic_load(&K.kills);
}

/* ---- tasks ---------------------------------------------------------------- */

struct soak_arg {
    long v;
    _Atomic int *runs; /* runs[v % ring]: executions of task v (shared memory) */
    long ring;
};

static int task_soak(const void *arg, size_t len, pp_buf_t *out) {
    struct soak_arg a;
    if (len != sizeof a)
        return pp_buf_fail(out, "bad len %zu", len);
    memcpy(&a, arg, sizeof a);
    atomic_fetch_add_explicit(&a.runs[a.v % a.ring], 1, memory_order_relaxed);
    long r = a.v * 3 + 1;
    return pp_buf_append(out, &r, sizeof r);
}

static int map_soak(const void *arg, size_t len, pp_buf_t *out) {
    long v;
    if (len != sizeof v)
        return pp_buf_fail(out, "bad len %zu", len);
    memcpy(&v, arg, sizeof v);
    v = v * 3 + 1;
    return pp_buf_append(out, &v, sizeof v);
}

static long parse_arg(const char *s, const char *what, long min) {
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || !end || *end || v < min) {
        fprintf(stderr, "soak: bad %s \"%s\"\n", what, s);
        exit(2);
    }
    return v;
}

/* ---- phase 1: pp_apply_async ---------------------------------------------- */

static bool phase_apply(pp_pool_t *pool, long ntasks) {
    enum { WINDOW = 16384, RING = 2 * WINDOW };
    _Atomic int *runs = pp_shm_alloc(pool, RING * sizeof *runs);
    pp_future_t **win = calloc(WINDOW, sizeof *win);
    if (!runs || !win) {
        fprintf(stderr, "soak: out of memory\n");
        return false;
    }
    long ok = 0, failed = 0, storm = 0, wrong = 0, other = 0, lost = 0, dup = 0;
    char first_bad[400] = "";
    if (killer_start(K.interval_ms) != 0) {
        fprintf(stderr, "soak: cannot start the killer thread\n");
        return false;
    }
    double t0 = now(), next_report = t0 + 5;
    for (long i = 0; i < ntasks + WINDOW; i++) {
        long j = i - WINDOW;
        if (j >= 0 && j < ntasks) {
            pp_future_t *f = win[j % WINDOW];
            const void *d = NULL;
            size_t n = 0;
            int rc = pp_future_get(f, 60, &d, &n);
            int nruns = atomic_load(&runs[j % RING]);
            const char *e = pp_future_error(f);
            if (rc == 0) {
                long got = n == sizeof(long) ? *(const long *)d : -1;
                if (got != 3 * j + 1) {
                    if (!wrong++ && !*first_bad)
                        snprintf(first_bad, sizeof first_bad,
                                 "task %ld: result %ld (%zu bytes), expected %ld", j, got, n,
                                 3 * j + 1);
                } else {
                    ok++;
                }
                if (nruns != 1 && !dup++ && !*first_bad)
                    snprintf(first_bad, sizeof first_bad, "task %ld succeeded after %d runs", j,
                             nruns);
            } else if (rc == PP_EWORKER) {
                failed++;
                if (e && strstr(e, "start-up"))
                    storm++;
                if (nruns > 1 && !dup++ && !*first_bad)
                    snprintf(first_bad, sizeof first_bad, "task %ld failed after %d runs", j,
                             nruns);
            } else if (rc == -ETIMEDOUT) {
                if (!lost++ && !*first_bad)
                    snprintf(first_bad, sizeof first_bad, "task %ld: not done after 60 s", j);
            } else {
                if (!other++ && !*first_bad)
                    snprintf(first_bad, sizeof first_bad, "task %ld: %s: %s", j, pp_err_name(rc),
                             e ? e : "");
            }
            atomic_store(&runs[j % RING], 0);
            pp_future_free(f);
        }
        if (i < ntasks) {
            struct soak_arg a = {i, runs, RING};
            int rc = pp_apply_async(pool, task_soak, &a, sizeof a, &win[i % WINDOW]);
            if (rc != 0) {
                fprintf(stderr, "soak: pp_apply_async(task %ld) returned %s\n", i, pp_err_name(rc));
                killer_stop();
                return false;
            }
        }
        if ((i & 0xffff) == 0 && now() > next_report) {
            printf("  ... %ld of %ld tasks, %ld kills, %.1f s\n", ok + failed, ntasks,
                   atomic_load(&K.kills), now() - t0);
            fflush(stdout);
            next_report += 5;
        }
    }
    double el = now() - t0;
    long kills = killer_stop();
    free(win);
    pp_shm_free(pool, (void *)runs);
    printf("apply: %ld tasks in %.2f s = %.0f tasks/s; %ld workers killed (every %d ms)\n", ntasks,
           el, ntasks / el, kills, K.interval_ms);
    printf("apply: ok %ld, PP_EWORKER %ld (start-up %ld), wrong %ld, run twice %ld, other errors "
           "%ld, lost %ld\n",
           ok, failed, storm, wrong, dup, other, lost);
    bool good =
        !wrong && !dup && !other && !lost && ok + failed == ntasks && failed - storm <= kills;
    if (*first_bad)
        printf("apply: first problem: %s\n", first_bad);
    if (failed - storm > kills)
        printf("apply: FAIL: %ld tasks failed but only %ld workers were killed\n", failed - storm,
               kills);
    if (!good)
        printf("apply: FAIL\n");
    return good;
}

/* ---- phase 2: pp_imap_unordered ------------------------------------------- */

static bool phase_imap(pp_pool_t *pool, long nitems) {
    enum { PER_ITER = 1000000 };
    long per = nitems < PER_ITER ? nitems : PER_ITER;
    long *items = malloc((size_t)per * sizeof *items);
    unsigned char *seen = malloc((size_t)per);
    if (!items || !seen) {
        fprintf(stderr, "soak: out of memory\n");
        return false;
    }
    for (long i = 0; i < per; i++)
        items[i] = i;
    long ok = 0, failed = 0, storm = 0, wrong = 0, twice = 0, other = 0, missing = 0, done = 0;
    bool stalled = false;
    if (killer_start(K.interval_ms) != 0)
        return false;
    double t0 = now();
    for (long iter = 0; done < nitems && !stalled; iter++) {
        long n_this = nitems - done < per ? nitems - done : per;
        memset(seen, 0, (size_t)n_this);
        pp_iter_t *it = NULL;
        int rc = pp_imap_unordered(pool, map_soak, items, sizeof(long), (size_t)n_this,
                                   iter % 2 ? 1000 : PP_CHUNK_AUTO, &it);
        if (rc != 0) {
            fprintf(stderr, "soak: pp_imap_unordered returned %s\n", pp_err_name(rc));
            killer_stop();
            return false;
        }
        size_t idx = 0, len = 0;
        const void *d = NULL;
        while ((rc = pp_iter_next(it, 60, &idx, &d, &len)) != 0) {
            if (rc == -ETIMEDOUT) {
                stalled = true;
                break;
            }
            if (idx >= (size_t)n_this) {
                other++;
                continue;
            }
            if (seen[idx]++)
                twice++;
            if (rc == 1) {
                if (len != sizeof(long) || *(const long *)d != 3 * (long)idx + 1)
                    wrong++;
                else
                    ok++;
            } else if (rc == PP_EWORKER) {
                failed++;
                const char *e = pp_iter_error(it);
                if (e && strstr(e, "start-up"))
                    storm++;
            } else {
                other++;
            }
        }
        pp_iter_free(it);
        for (long i = 0; i < n_this; i++)
            missing += !seen[i];
        done += n_this;
    }
    double el = now() - t0;
    long kills = killer_stop();
    free(items);
    free(seen);
    printf("imap_unordered: %ld items in %.2f s = %.0f items/s; %ld workers killed\n", nitems, el,
           nitems / el, kills);
    printf("imap_unordered: ok %ld, PP_EWORKER %ld (start-up %ld), wrong %ld, reported twice %ld, "
           "missing %ld, other %ld%s\n",
           ok, failed, storm, wrong, twice, missing, other, stalled ? ", STALLED 60 s" : "");
    bool good = !wrong && !twice && !missing && !other && !stalled && ok + failed == nitems &&
                failed - storm <= kills;
    if (!good)
        printf("imap_unordered: FAIL\n");
    return good;
}

int main(int argc, char **argv) {
    long ntasks = argc > 1 ? parse_arg(argv[1], "task count", 1) : 10000000;
    K.interval_ms = argc > 2 ? (int)parse_arg(argv[2], "kill interval", 0) : 3;
    int processes = argc > 3 ? (int)parse_arg(argv[3], "process count", 0) : 0;
    if (argc > 4) {
        fprintf(stderr, "usage: %s [TASKS [KILL_MS [PROCESSES]]]\n", argv[0]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    pp_options_t opt;
    pp_options_init(&opt);
    opt.processes = processes;
    pp_pool_t *pool = NULL;
    fflush(stdout);
    int rc = pp_pool_create(&pool, &opt);
    if (rc != 0) {
        fprintf(stderr, "soak: pp_pool_create: %s\n", pp_strerror(rc));
        return 1;
    }
    printf("soak: %ld tasks, %d workers, a random worker SIGKILLed every %d ms\n", ntasks,
           pp_pool_size(pool), K.interval_ms);
    fflush(stdout);
    bool good = phase_apply(pool, ntasks);
    good = phase_imap(pool, ntasks) && good;
    double t0 = now();
    pp_pool_close(pool);
    rc = pp_pool_join(pool);
    pp_pool_destroy(pool);
    printf("soak: close + join %s in %.2f s; %s\n", rc ? pp_err_name(rc) : "OK", now() - t0,
           good && rc == 0 ? "PASS" : "FAIL");
    return good && rc == 0 ? 0 : 1;
}
