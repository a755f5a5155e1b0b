/* test_soak.c - the short soak run in CI: tiny tasks while a thread SIGKILLs
 * a random worker every 5 ms. Every task must either succeed with the right
 * result or fail PP_EWORKER: none lost (every future completes), none run
 * twice, none wrong. The same under pp_map (1 000 000 items) and
 * pp_imap_unordered, where a kill may fail only the item that was running.
 * The full-size run is bench/soak.c. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

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
#include <unistd.h>

#include "procpool.h"
#include "helpers.h"

#define KILL_EVERY_MS 5
#define APPLY_SECONDS 8.0 /* each phase runs at least this long (and at least its count) */
#define MAP_SECONDS 6.0
#define IMAP_SECONDS 4.0

/* ---- tasks ---------------------------------------------------------------- */

struct soak_arg {
    long v;
    _Atomic int *runs; /* runs[v % ring] counts the task's executions (shared memory) */
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

static pp_pool_t *soak_pool(void) {
    pp_options_t opt;
    pp_options_init(&opt);
    opt.processes = 2;
    pp_pool_t *pool = NULL;
    fflush(stdout);
    fflush(stderr);
    int rc = pp_pool_create(&pool, &opt);
    if (rc != 0)
        fail_msg("pp_pool_create returned %d (%s)", rc, pp_err_name(rc));
    return pool;
}

/* ---- tests ---------------------------------------------------------------- */

/* A continuous stream: at least MIN_TASKS tasks and APPLY_SECONDS of kills.
 * runs[] is a ring: task v counts its executions in runs[v % RING], reset
 * when v is collected, long before v + RING is submitted. */
static void test_soak_apply(void **state) {
    (void)state;
    enum { MIN_TASKS = 200000, WINDOW = 16384, RING = 2 * WINDOW };
    pp_pool_t *pool = soak_pool();
    _Atomic int *runs = pp_shm_alloc(pool, RING * sizeof *runs);
    assert_non_null(runs);
    pp_future_t **win = calloc(WINDOW, sizeof *win);
    assert_non_null(win);
    long ok = 0, failed = 0, storm = 0, wrong = 0, other = 0, lost = 0, dup = 0;
    char first_other[300] = "";

    struct ppt_killer k;
    ppt_killer_start(&k, KILL_EVERY_MS, (unsigned)getpid() * 2654435761u);
    double t0 = ppt_now();
    long submitted = 0;
    for (long i = 0;; i++) {
        long j = i - WINDOW; /* the task to collect now */
        if (j >= submitted)
            break;
        if (j >= 0) {
            pp_future_t *f = win[j % WINDOW];
            const void *d = NULL;
            size_t n = 0;
            int rc = pp_future_get(f, 30, &d, &n);
            int nruns = atomic_load(&runs[j % RING]);
            if (rc == 0) {
                long got = n == sizeof(long) ? *(const long *)d : -1;
                if (got != 3 * j + 1)
                    wrong++;
                else
                    ok++;
                if (nruns != 1)
                    dup++;
            } else if (rc == PP_EWORKER) {
                failed++;
                const char *e = pp_future_error(f);
                if (e && strstr(e, "start-up"))
                    storm++;
                if (nruns > 1)
                    dup++;
            } else if (rc == -ETIMEDOUT) {
                lost++;
            } else {
                if (!other++)
                    snprintf(first_other, sizeof first_other, "task %ld: %s: %s", j,
                             pp_err_name(rc), pp_future_error(f) ? pp_future_error(f) : "");
            }
            atomic_store(&runs[j % RING], 0);
            pp_future_free(f);
        }
        if (i == submitted && (i < MIN_TASKS || ppt_now() - t0 < APPLY_SECONDS)) {
            struct soak_arg a = {i, runs, RING};
            int rc = pp_apply_async(pool, task_soak, &a, sizeof a, &win[i % WINDOW]);
            if (rc != 0)
                fail_msg("pp_apply_async(task %ld) returned %d (%s)", i, rc, pp_err_name(rc));
            submitted++;
        }
    }
    double el = ppt_now() - t0;
    long kills = ppt_killer_stop(&k);
    long N = submitted;
    printf("    soak, apply: %ld tasks in %.2f s (%.0f tasks/s), %ld workers killed: %ld ok, %ld "
           "PP_EWORKER (%ld start-up), %ld wrong, %ld run twice, %ld other errors, %ld lost\n",
           N, el, N / el, kills, ok, failed, storm, wrong, dup, other, lost);
    if (other)
        printf("    first other error: %s\n", first_other);
    free(win);
    assert_int_equal(wrong, 0);
    assert_int_equal(lost, 0);
    assert_int_equal(dup, 0);
    assert_int_equal(other, 0);
    assert_int_equal(ok + failed, N);
    if (kills < 10)
        fail_msg("only %ld workers were killed: the soak tested nothing", kills);
    /* a kill fails at most the one task its worker was running */
    if (failed - storm > kills)
        fail_msg("%ld tasks failed PP_EWORKER (%ld of them start-up) but only %ld workers were "
                 "killed",
                 failed, storm, kills);
    assert_true(ok > N / 2);
    assert_int_equal(pp_pool_size(pool), 2);
    ppt_finish(pool);
}

/* pp_map of 1 000 000 items, again and again for MAP_SECONDS under kills:
 * every result right, or the item failed; a kill fails at most the item
 * its worker was running; the map reports the lowest failing item. */
static void test_soak_map(void **state) {
    (void)state;
    enum { N = 1000000 };
    pp_pool_t *pool = soak_pool();
    long *items = malloc(N * sizeof *items), *res = malloc(N * sizeof *res);
    assert_non_null(items);
    assert_non_null(res);
    for (long i = 0; i < N; i++)
        items[i] = i;
    const struct {
        size_t chunk;
        bool async;
        const char *name;
    } kinds[] = {{1000, false, "pp_map, chunksize 1000"},
                 {PP_CHUNK_AUTO, true, "pp_map_async, PP_CHUNK_AUTO"},
                 {0, true, "pp_map_async, chunksize 0"},
                 {37, false, "pp_map, chunksize 37"}};
    enum { NK = sizeof kinds / sizeof kinds[0] };
    long maps[NK] = {0}, failed_maps[NK] = {0}, failed_items[NK] = {0};
    struct ppt_killer k;
    ppt_killer_start(&k, KILL_EVERY_MS, (unsigned)getpid() * 2654435761u);
    double t0 = ppt_now();
    for (long iter = 0; iter < NK || ppt_now() - t0 < MAP_SECONDS; iter++) {
        int r = (int)(iter % NK);
        memset(res, 0, N * sizeof *res); /* 3i+1 is never 0 */
        long kills0 = atomic_load(&k.kills);
        int rc;
        char msg[512] = "";
        if (kinds[r].async) {
            pp_future_t *f = NULL;
            assert_rc(pp_map_async(pool, map_soak, items, sizeof(long), N, res, sizeof(long),
                                   kinds[r].chunk, &f),
                      0);
            rc = pp_future_get(f, 60, NULL, NULL);
            if (pp_future_error(f))
                snprintf(msg, sizeof msg, "%s", pp_future_error(f));
            pp_future_free(f);
        } else {
            rc = pp_map(pool, map_soak, items, sizeof(long), N, res, sizeof(long), kinds[r].chunk);
        }
        long kills = atomic_load(&k.kills) - kills0 + 1; /* +1: one may land as it starts */
        long notright = 0, first = -1;
        for (long i = 0; i < N; i++)
            if (res[i] != 3 * i + 1) {
                if (first < 0)
                    first = i;
                notright++;
            }
        maps[r]++;
        failed_maps[r] += rc != 0;
        failed_items[r] += notright;
        if (rc == -ETIMEDOUT)
            fail_msg("%s: not done after 60 s", kinds[r].name);
        if (rc != 0 && rc != PP_EWORKER)
            fail_msg("%s returned %d (%s), expected 0 or PP_EWORKER: %s", kinds[r].name, rc,
                     pp_err_name(rc), msg);
        if (rc == 0 && notright)
            fail_msg("%s returned 0 but %ld results are wrong (first: item %ld = %ld)",
                     kinds[r].name, notright, first, res[first]);
        if (rc == PP_EWORKER && !notright)
            fail_msg("%s returned PP_EWORKER but every result is right", kinds[r].name);
        if (notright > kills && !strstr(msg, "start-up"))
            fail_msg("%s: %ld items failed with at most %ld workers killed meanwhile (first: "
                     "item %ld = %ld): %s",
                     kinds[r].name, notright, kills, first, res[first], msg);
        if (kinds[r].async && rc != 0) {
            char want[40];
            snprintf(want, sizeof want, "item %ld:", first);
            if (!strstr(msg, want))
                fail_msg("%s: the lowest failing item is %ld but the message says \"%s\"",
                         kinds[r].name, first, msg);
        }
    }
    double el = ppt_now() - t0;
    long kills = ppt_killer_stop(&k);
    long total = 0;
    for (int r = 0; r < NK; r++)
        total += maps[r];
    printf("    soak, maps of %d items: %ld maps (%.0f items/s) in %.2f s, %ld workers killed\n", N,
           total, (double)total * N / el, el, kills);
    for (int r = 0; r < NK; r++)
        printf("      %-30s %4ld maps, %4ld returned PP_EWORKER, %5ld items failed\n",
               kinds[r].name, maps[r], failed_maps[r], failed_items[r]);
    free(items);
    free(res);
    if (kills < 10)
        fail_msg("only %ld workers were killed: the soak tested nothing", kills);
    assert_int_equal(pp_pool_size(pool), 2);
    ppt_finish(pool);
}

/* pp_imap_unordered, again and again for IMAP_SECONDS under kills: every
 * index reported exactly once, right or PP_EWORKER. */
static void test_soak_imap_unordered(void **state) {
    (void)state;
    enum { N = 200000 };
    pp_pool_t *pool = soak_pool();
    long *items = malloc(N * sizeof *items);
    unsigned char *seen = malloc(N);
    assert_non_null(items);
    assert_non_null(seen);
    for (long i = 0; i < N; i++)
        items[i] = i;
    long ok = 0, failed = 0, storm = 0, wrong = 0, twice = 0, other = 0, bad_index = 0;
    long missing = 0, iters = 0;
    struct ppt_killer k;
    ppt_killer_start(&k, KILL_EVERY_MS, (unsigned)getpid() * 2654435761u);
    double t0 = ppt_now();
    int rc = 0;
    while (iters == 0 || ppt_now() - t0 < IMAP_SECONDS) {
        iters++;
        memset(seen, 0, N);
        pp_iter_t *it = NULL;
        assert_rc(pp_imap_unordered(pool, map_soak, items, sizeof(long), N,
                                    iters % 2 ? 500 : PP_CHUNK_AUTO, &it),
                  0);
        size_t idx = 0;
        const void *d = NULL;
        size_t n = 0;
        while ((rc = pp_iter_next(it, 30, &idx, &d, &n)) != 0) {
            if (rc == -ETIMEDOUT)
                break;
            if (idx >= N) {
                bad_index++;
                continue;
            }
            if (seen[idx]++)
                twice++;
            if (rc == 1) {
                if (n != sizeof(long) || *(const long *)d != 3 * (long)idx + 1)
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
        for (long i = 0; i < N; i++)
            missing += !seen[i];
        if (rc == -ETIMEDOUT)
            break;
    }
    double el = ppt_now() - t0;
    long kills = ppt_killer_stop(&k);
    printf("    soak, pp_imap_unordered: %ld x %d items in %.2f s, %ld workers killed: %ld ok, "
           "%ld PP_EWORKER (%ld start-up), %ld wrong, %ld reported twice, %ld missing, %ld "
           "other\n",
           iters, N, el, kills, ok, failed, storm, wrong, twice, missing, other);
    free(items);
    free(seen);
    if (rc == -ETIMEDOUT)
        fail_msg("pp_iter_next: nothing for 30 s");
    assert_int_equal(wrong, 0);
    assert_int_equal(twice, 0);
    assert_int_equal(missing, 0);
    assert_int_equal(bad_index, 0);
    assert_int_equal(other, 0);
    assert_int_equal(ok + failed, iters * N);
    if (failed - storm > kills)
        fail_msg("%ld items failed but only %ld workers were killed", failed - storm, kills);
    ppt_finish(pool);
}

int main(void) {
    ppt_hang_guard(110);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_soak_apply),
        cmocka_unit_test(test_soak_map),
        cmocka_unit_test(test_soak_imap_unordered),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
