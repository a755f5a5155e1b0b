/* test_steal.c - a task runs at most once, and exactly once unless its
 * worker died while running it: however records sent ahead into a worker's
 * ring are taken back and given to another worker (work-stealing), and
 * whatever happens to workers meanwhile.
 *
 * Every task increments its own counter (one byte per task, in the pool's
 * shared memory, with an atomic) and returns a value derived from its index.
 * The mix makes records wait behind a busy worker: mostly no-ops, now and
 * then a task that spins for a few milliseconds, on 2 and 3 workers. At the
 * end, after the pool is joined (nothing can run any more):
 *  - every task that succeeded ran exactly once (counter 1, right result);
 *  - a task that failed PP_EWORKER ran at most once (counter 0 or 1), and
 *    only a task whose worker was killed may fail;
 *  - no counter is above 1, and every future completed.
 *
 * Parts: pp_apply_async (2 workers); pp_apply_async with tasks that
 * SIGKILL themselves, before or after counting (3 workers); pp_apply_async
 * while a thread SIGKILLs random workers (3 workers); pp_map with
 * PP_CHUNK_AUTO and slow items (2 workers), then with killing items and
 * results in shared memory (written in place, so the items of a chunk that
 * ran before its worker died are not run again).
 *
 * About 10 million tasks in all; PPT_STEAL_TASKS=N sets the total (the parts
 * keep their shares), and builds with a sanitizer default to 500 000.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "procpool.h"
#include "helpers.h"
#include "proc_util.h"

#ifdef PPT_SANITIZER
#define DEFAULT_TASKS 500000UL
#else
#define DEFAULT_TASKS 10000000UL
#endif

#define BOUND 60.0      /* seconds one result may take before we call it a hang */
#define BATCH 65536     /* futures outstanding at once, at most */
#define SLOW_EVERY 1500 /* about one task in this many spins SLOW_US */
#define SLOW_US 2000
#define KILL_PARTS 100 /* the parts with kills: about one task in n / KILL_PARTS dies */

/* One task in this many kills its worker: about KILL_PARTS deaths per part,
 * whatever its size. */
static unsigned kill_every(size_t n) {
    size_t k = n / KILL_PARTS;
    return k < 100 ? 100 : k > 100000 ? 100000 : (unsigned)k;
}

/* ---- the task ---------------------------------------------------------------- */

#define F_SLOW 1u        /* spin SLOW_US first */
#define F_KILL_BEFORE 2u /* SIGKILL itself before counting */
#define F_KILL_AFTER 4u  /* SIGKILL itself after counting */

struct item {
    _Atomic unsigned char *count; /* the counters, in the pool's shared memory */
    uint32_t idx;
    uint32_t flags;
};

static uint64_t good(uint32_t idx) { return (uint64_t)idx * 2654435761u + 7; }

static void spin_us(long us) {
    double end = ppt_now() + (double)us * 1e-6;
    while (ppt_now() < end) {
    }
}

static void die(void) {
    signal(SIGKILL, SIG_DFL);
    raise(SIGKILL);
}

static int task_count(const void *arg, size_t len, pp_buf_t *out) {
    struct item it;
    if (len != sizeof it)
        return pp_buf_fail(out, "bad len %zu", len);
    memcpy(&it, arg, sizeof it);
    if (it.flags & F_SLOW)
        spin_us(SLOW_US);
    if (it.flags & F_KILL_BEFORE)
        die();
    atomic_fetch_add_explicit(&it.count[it.idx], 1, memory_order_relaxed);
    if (it.flags & F_KILL_AFTER)
        die();
    uint64_t r = good(it.idx);
    return pp_buf_append(out, &r, sizeof r);
}

/* ---- bookkeeping --------------------------------------------------------------- */

enum { ST_PENDING = 0, ST_OK, ST_EWORKER };

struct run {
    pp_pool_t *pool;
    _Atomic unsigned char *count; /* n counters in shared memory */
    unsigned char *status;        /* ST_* per task, ours */
    uint32_t *flags;              /* what each task was asked to do */
    size_t n;
    uint64_t rng;
};

static size_t total_tasks(void) {
    const char *e = getenv("PPT_STEAL_TASKS");
    if (e && *e) {
        char *end;
        unsigned long long v = strtoull(e, &end, 10);
        if (*end == '\0' && v >= 1000)
            return (size_t)v;
        fprintf(stderr, "test_steal: PPT_STEAL_TASKS=%s ignored (want an integer >= 1000)\n", e);
    }
    return DEFAULT_TASKS;
}

static uint32_t next_rand(struct run *r) {
    r->rng ^= r->rng << 13;
    r->rng ^= r->rng >> 7;
    r->rng ^= r->rng << 17;
    return (uint32_t)(r->rng >> 16);
}

/* A pool and n zeroed counters in its shared memory; flags drawn with
 * one slow task in slow_every and one killing task in kill_every (0: none). */
static void run_init(struct run *r, int processes, size_t n, unsigned slow_every,
                     unsigned kill_every, uint64_t seed) {
    memset(r, 0, sizeof *r);
    r->pool = ppt_pool(processes);
    r->n = n;
    r->count = pp_shm_alloc(r->pool, n);
    assert_non_null(r->count);
    r->status = calloc(n, 1);
    r->flags = calloc(n, sizeof *r->flags);
    assert_non_null(r->status);
    assert_non_null(r->flags);
    r->rng = seed | 1;
    for (size_t i = 0; i < n; i++) {
        uint32_t x = next_rand(r), f = 0;
        if (slow_every && x % slow_every == 0)
            f |= F_SLOW;
        if (kill_every && (x >> 8) % kill_every == 0)
            f |= (x & 0x10000) ? F_KILL_BEFORE : F_KILL_AFTER;
        r->flags[i] = f;
    }
}

/* Join the pool (nothing runs after this), then check every counter:
 * an OK task ran exactly once, an EWORKER one at most once, and only tasks
 * allowed to fail (killing ones, or any when `any_may_fail`) failed.
 * Returns how many failed. */
static size_t run_check(struct run *r, const char *what, bool any_may_fail) {
    assert_rc(pp_pool_close(r->pool), 0);
    assert_rc(pp_pool_join(r->pool), 0);
    size_t ok = 0, failed = 0, killing = 0;
    for (size_t i = 0; i < r->n; i++) {
        unsigned c = atomic_load(&r->count[i]);
        bool kills = r->flags[i] & (F_KILL_BEFORE | F_KILL_AFTER);
        killing += kills;
        switch (r->status[i]) {
        case ST_OK:
            if (c != 1)
                fail_msg("%s: task %zu succeeded but ran %u times (flags %#x)", what, i, c,
                         r->flags[i]);
            if (kills)
                fail_msg("%s: task %zu should have killed its worker but succeeded", what, i);
            ok++;
            break;
        case ST_EWORKER:
            if (c > 1)
                fail_msg("%s: task %zu failed PP_EWORKER and ran %u times (flags %#x)", what, i, c,
                         r->flags[i]);
            if (!kills && !any_may_fail)
                fail_msg("%s: task %zu failed PP_EWORKER, but it kills nobody (flags %#x)", what, i,
                         r->flags[i]);
            if ((r->flags[i] & F_KILL_AFTER) && c != 1)
                fail_msg("%s: task %zu counted before dying, its counter is %u", what, i, c);
            if ((r->flags[i] & F_KILL_BEFORE) && c != 0)
                fail_msg("%s: task %zu died before counting, its counter is %u", what, i, c);
            failed++;
            break;
        default: fail_msg("%s: task %zu never completed (counter %u)", what, i, c);
        }
    }
    print_message("  %s: %zu tasks, %zu succeeded once each, %zu failed PP_EWORKER "
                  "(%zu asked to kill their worker)\n",
                  what, r->n, ok, failed, killing);
    return failed;
}

/* How many of r's tasks were asked to kill their worker. */
static size_t killing_tasks(const struct run *r) {
    size_t killing = 0;
    for (size_t i = 0; i < r->n; i++)
        killing += (r->flags[i] & (F_KILL_BEFORE | F_KILL_AFTER)) != 0;
    return killing;
}

static void run_free(struct run *r) {
    pp_pool_destroy(r->pool);
    free(r->status);
    free(r->flags);
}

/* ---- pp_apply_async ------------------------------------------------------------- */

/* A batch size from 1 to max, log-uniform: small batches fit in the rings
 * with nothing pending (when the pool steals), large ones keep a backlog,
 * and each batch ends with a tail where workers run dry. */
static size_t batch_size(struct run *r, size_t max) {
    uint32_t x = next_rand(r);
    size_t b = ((size_t)1 << (x % 18)) + (x >> 18) % ((size_t)1 << (x % 18));
    return b < max ? b : max;
}

/* Submit every task of r in batches of up to BATCH futures; record each
 * outcome. */
static void apply_all(struct run *r, const char *what) {
    pp_future_t **fs = malloc(BATCH * sizeof *fs);
    assert_non_null(fs);
    for (size_t lo = 0, m; lo < r->n; lo += m) {
        m = batch_size(r, BATCH);
        m = r->n - lo < m ? r->n - lo : m;
        for (size_t k = 0; k < m; k++) {
            struct item it = {r->count, (uint32_t)(lo + k), r->flags[lo + k]};
            int rc = pp_apply_async(r->pool, task_count, &it, sizeof it, &fs[k]);
            if (rc != 0)
                fail_msg("%s: pp_apply_async of task %zu returned %d (%s)", what, lo + k, rc,
                         pp_err_name(rc));
        }
        for (size_t k = 0; k < m; k++) {
            size_t i = lo + k;
            const void *d = NULL;
            size_t len = 0;
            int rc = pp_future_get(fs[k], BOUND, &d, &len);
            if (rc == 0) {
                uint64_t v;
                if (len != sizeof v)
                    fail_msg("%s: task %zu gave %zu bytes", what, i, len);
                memcpy(&v, d, sizeof v);
                if (v != good((uint32_t)i))
                    fail_msg("%s: task %zu gave %llu, expected %llu", what, i,
                             (unsigned long long)v, (unsigned long long)good((uint32_t)i));
                r->status[i] = ST_OK;
            } else if (rc == PP_EWORKER) {
                r->status[i] = ST_EWORKER;
            } else if (rc == -ETIMEDOUT) {
                fail_msg("%s: task %zu not done after %.0f s (a task lost?)", what, i, BOUND);
            } else {
                fail_msg("%s: task %zu failed %d (%s): %s", what, i, rc, pp_err_name(rc),
                         pp_future_error(fs[k]) ? pp_future_error(fs[k]) : "(no message)");
            }
            pp_future_free(fs[k]);
        }
    }
    free(fs);
}

static void test_apply_steal_2workers(void **state) {
    (void)state;
    struct run r;
    size_t n = total_tasks() * 40 / 100;
    run_init(&r, 2, n, SLOW_EVERY, 0, 0x5eed0001);
    apply_all(&r, "pp_apply_async, 2 workers");
    assert_int_equal(run_check(&r, "pp_apply_async, 2 workers", false), 0);
    run_free(&r);
}

static void test_apply_steal_self_kills(void **state) {
    (void)state;
    struct run r;
    size_t n = total_tasks() * 20 / 100;
    run_init(&r, 3, n, SLOW_EVERY, kill_every(n), 0x5eed0002);
    apply_all(&r, "pp_apply_async, 3 workers, self-kills");
    size_t killing = killing_tasks(&r);
    /* every killing task failed (checked per task), and nothing else did */
    assert_int_equal(run_check(&r, "pp_apply_async, 3 workers, self-kills", false), killing);
    run_free(&r);
}

/* ---- a stopped worker while the other idles --------------------------------------- */

/* One of two idle workers stopped (SIGSTOP): every pp_apply_async still
 * completes, from the other. A task placed on the stopped worker (the
 * first idle one in the pool's order) is taken back although nothing
 * completes meanwhile that would make the pool look: placing it while
 * another worker idles keeps the supervisor watching. Each worker in turn. */
static void test_stopped_idle_worker(void **state) {
    (void)state;
    for (int k = 0; k < 2; k++) {
        pp_pool_t *pool = ppt_pool(2);
        pid_t w[2];
        int n = 0;
        double t0 = ppt_now();
        while ((n = ppt_find_workers(w, 2)) < 2 && ppt_now() - t0 < BOUND)
            ppt_sleep_ms(5);
        assert_int_equal(n, 2);
        ppt_sleep_ms(50); /* both started and idle */
        assert_int_equal(kill(w[k], SIGSTOP), 0);
        for (long i = 0; i < 4; i++) {
            long v = i + 3;
            pp_future_t *f = NULL;
            assert_rc(pp_apply_async(pool, ppt_task_square, &v, sizeof v, &f), 0);
            assert_int_equal(ppt_get_long(f, BOUND), v * v);
            pp_future_free(f);
        }
        assert_int_equal(kill(w[k], SIGCONT), 0);
        ppt_finish(pool);
    }
}

/* ---- a thread that SIGKILLs random workers -------------------------------------- */

static void test_apply_steal_killer_thread(void **state) {
    (void)state;
    struct run r;
    size_t n = total_tasks() * 5 / 100;
    run_init(&r, 3, n, SLOW_EVERY / 4, 0, 0x5eed0003);
    struct ppt_killer k;
    ppt_killer_start(&k, 10, 12345);
    apply_all(&r, "pp_apply_async, 3 workers, killer thread");
    long kills = ppt_killer_stop(&k);
    size_t failed = run_check(&r, "pp_apply_async, 3 workers, killer thread", true);
    print_message("  killer thread: %ld workers killed, %zu tasks failed\n", kills, failed);
    /* a kill fails at most the one task its worker was running */
    if ((long)failed > kills)
        fail_msg("%zu tasks failed PP_EWORKER after only %ld kills", failed, kills);
    run_free(&r);
}

/* ---- pp_map ------------------------------------------------------------------------ */

#define MAP_BATCH ((size_t)1 << 20)

/* pp_map over r's tasks in batches; results in shared memory when in_shm
 * (written in place by the workers) else in ours. */
static void map_all(struct run *r, const char *what, bool in_shm) {
    size_t cap = r->n < MAP_BATCH ? r->n : MAP_BATCH;
    struct item *items = malloc(cap * sizeof *items);
    uint64_t *res = in_shm ? pp_shm_alloc(r->pool, cap * sizeof *res) : malloc(cap * sizeof *res);
    assert_non_null(items);
    assert_non_null(res);
    for (size_t lo = 0, m; lo < r->n; lo += m) {
        m = batch_size(r, cap);
        m = r->n - lo < m ? r->n - lo : m;
        bool kills = false;
        for (size_t k = 0; k < m; k++) {
            items[k] = (struct item){r->count, (uint32_t)(lo + k), r->flags[lo + k]};
            kills |= (r->flags[lo + k] & (F_KILL_BEFORE | F_KILL_AFTER)) != 0;
            res[k] = 0;
        }
        int rc =
            pp_map(r->pool, task_count, items, sizeof *items, m, res, sizeof *res, PP_CHUNK_AUTO);
        if (rc != 0 && !(rc == PP_EWORKER && kills))
            fail_msg("%s: pp_map of tasks %zu..%zu returned %d (%s)", what, lo, lo + m - 1, rc,
                     pp_err_name(rc));
        /* pp_map gives only the first error: a killing item's result stays
         * 0, every other item's is good (good() is never 0 for idx < 2^32) */
        for (size_t k = 0; k < m; k++) {
            size_t i = lo + k;
            bool killing = r->flags[i] & (F_KILL_BEFORE | F_KILL_AFTER);
            if (killing) {
                if (res[k] != 0)
                    fail_msg("%s: item %zu killed its worker but has a result", what, i);
                r->status[i] = ST_EWORKER;
            } else if (res[k] != good((uint32_t)i)) {
                fail_msg("%s: item %zu has result %llu, expected %llu", what, i,
                         (unsigned long long)res[k], (unsigned long long)good((uint32_t)i));
            } else {
                r->status[i] = ST_OK;
            }
        }
    }
    free(items);
    if (in_shm)
        pp_shm_free(r->pool, res);
    else
        free(res);
}

static void test_map_steal(void **state) {
    (void)state;
    struct run r;
    size_t n = total_tasks() * 30 / 100;
    run_init(&r, 2, n, SLOW_EVERY, 0, 0x5eed0004);
    map_all(&r, "pp_map PP_CHUNK_AUTO, 2 workers", false);
    assert_int_equal(run_check(&r, "pp_map PP_CHUNK_AUTO, 2 workers", false), 0);
    run_free(&r);
}

static void test_map_steal_kills_results_in_shm(void **state) {
    (void)state;
    struct run r;
    size_t n = total_tasks() * 5 / 100;
    run_init(&r, 3, n, SLOW_EVERY, kill_every(n), 0x5eed0005);
    map_all(&r, "pp_map PP_CHUNK_AUTO, 3 workers, kills, results in shm", true);
    size_t killing = killing_tasks(&r);
    assert_int_equal(run_check(&r, "pp_map PP_CHUNK_AUTO, 3 workers, kills, results in shm", false),
                     killing);
    run_free(&r);
}

int main(void) {
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core); /* killed workers leave no core files */
    /* generous: 10 million tasks take about a minute on 2 busy cores */
    ppt_hang_guard(280);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stopped_idle_worker),
        cmocka_unit_test(test_apply_steal_2workers),
        cmocka_unit_test(test_apply_steal_self_kills),
        cmocka_unit_test(test_apply_steal_killer_thread),
        cmocka_unit_test(test_map_steal),
        cmocka_unit_test(test_map_steal_kills_results_in_shm),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
