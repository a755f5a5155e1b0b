/* test_queue.c - waiting for several futures (API 0.2): pp_wait in each
 * mode, and completion queues (pp_queue_*): completion order, exactly-once
 * delivery, timeouts, the descriptor, futures freed while in a queue, and
 * many threads adding while one takes out.
 *
 * Sleeps only make a task slow enough to still run, or finish later than
 * another, by a wide margin; timings are never a pass/fail criterion and
 * every wait is bounded by BOUND seconds as a hang guard. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#include "procpool.h"
#include "helpers.h"

#define BOUND 20.0 /* seconds any one result may take before we call it a hang */

/* ---- tasks ------------------------------------------------------------------ */

/* sleeps arg ms, then fails with "failed after <ms>" */
static int task_sleep_fail(const void *arg, size_t len, pp_buf_t *out) {
    int ms = 0;
    if (len == sizeof ms)
        memcpy(&ms, arg, sizeof ms);
    ppt_sleep_ms(ms);
    return pp_buf_fail(out, "failed after %d", ms);
}

/* result: 2 * i + 1, so that a result names its task */
static int task_odd(const void *arg, size_t len, pp_buf_t *out) {
    if (len != sizeof(long))
        return pp_buf_fail(out, "bad len %zu", len);
    long v;
    memcpy(&v, arg, sizeof v);
    v = 2 * v + 1;
    return pp_buf_append(out, &v, sizeof v);
}

/* ---- helpers ---------------------------------------------------------------- */

/* A long from a result: a future's data carries no alignment promise. */
static long load_long(const void *p) {
    long v;
    memcpy(&v, p, sizeof v);
    return v;
}

static pp_future_t *sleeper(pp_pool_t *pool, int ms) {
    pp_future_t *f = NULL;
    assert_rc(pp_apply_async(pool, ppt_task_sleep_ms, &ms, sizeof ms, &f), 0);
    return f;
}

static pp_future_t *failer(pp_pool_t *pool, int ms) {
    pp_future_t *f = NULL;
    assert_rc(pp_apply_async(pool, task_sleep_fail, &ms, sizeof ms, &f), 0);
    return f;
}

static int count_ready(pp_future_t *const *fs, size_t n) {
    int k = 0;
    for (size_t i = 0; i < n; i++)
        k += pp_future_ready(fs[i]);
    return k;
}

static void free_all(pp_future_t **fs, size_t n) {
    for (size_t i = 0; i < n; i++)
        pp_future_free(fs[i]);
}

/* Is fd readable right now? */
static int readable(int fd) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int r = poll(&p, 1, 0);
    return r == 1 && (p.revents & POLLIN);
}

static int children_left(void) {
    pid_t kids[64];
    return ppt_children_of(getpid(), kids, 64);
}

/* ======================================================================== */
/* pp_wait                                                                    */
/* ======================================================================== */

static void test_wait_first_completed(void **state) {
    (void)state;
    pp_pool_t *pool = ppt_pool(3);
    pp_future_t *fs[3] = {sleeper(pool, 1500), sleeper(pool, 30), sleeper(pool, 1500)};
    int r = pp_wait(fs, 3, PP_FIRST_COMPLETED, BOUND);
    if (r < 1)
        fail_msg("pp_wait(FIRST_COMPLETED) returned %d (%s)", r, pp_err_name(r));
    assert_true(r <= 3);
    assert_int_equal(pp_future_ready(fs[1]), 1);
    assert_int_equal(ppt_get_long(fs[1], 0), 30);
    /* the condition still holds: at once, even polling */
    r = pp_wait(fs, 3, PP_FIRST_COMPLETED, 0);
    assert_true(r >= 1 && r <= 3);
    /* one future alone */
    assert_int_equal(pp_wait(&fs[1], 1, PP_FIRST_COMPLETED, 0), 1);
    /* and all of them, in the end */
    assert_int_equal(pp_wait(fs, 3, PP_ALL_COMPLETED, BOUND), 3);
    assert_int_equal(count_ready(fs, 3), 3);
    free_all(fs, 3);
    ppt_finish(pool);
}

static void test_wait_first_exception(void **state) {
    (void)state;
    /* a failure ends the wait while the others still run */
    pp_pool_t *pool = ppt_pool(3);
    pp_future_t *fs[3] = {sleeper(pool, 3000), failer(pool, 50), sleeper(pool, 3000)};
    int r = pp_wait(fs, 3, PP_FIRST_EXCEPTION, BOUND);
    if (r < 1)
        fail_msg("pp_wait(FIRST_EXCEPTION) returned %d (%s)", r, pp_err_name(r));
    assert_int_equal(pp_future_ready(fs[1]), 1);
    assert_rc(pp_future_get(fs[1], 0, NULL, NULL), PP_ETASK);
    assert_string_equal(pp_future_error(fs[1]), "failed after 50");
    /* the 3 s sleepers had 2.9 s to go: they still run */
    assert_int_equal(pp_future_ready(fs[0]), 0);
    assert_int_equal(pp_future_ready(fs[2]), 0);
    assert_int_equal(r, 1);
    /* the sleepers end with PP_ECANCELED on terminate */
    assert_rc(pp_pool_terminate(pool), 0);
    assert_rc(pp_future_get(fs[0], BOUND, NULL, NULL), PP_ECANCELED);
    free_all(fs, 3);
    pp_pool_destroy(pool);

    /* when everything succeeds it waits for all */
    pool = ppt_pool(3);
    pp_future_t *ok[3] = {sleeper(pool, 10), sleeper(pool, 100), sleeper(pool, 300)};
    assert_int_equal(pp_wait(ok, 3, PP_FIRST_EXCEPTION, BOUND), 3);
    assert_int_equal(count_ready(ok, 3), 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(pp_future_successful(ok[i]), 1);
    free_all(ok, 3);

    /* a cancelled future counts as failed */
    pp_future_t *busy[3] = {sleeper(pool, 500), sleeper(pool, 500), sleeper(pool, 500)};
    pp_future_t *mix[2] = {busy[0], sleeper(pool, 500)}; /* mix[1] queued behind them */
    assert_int_equal(pp_future_cancel(mix[1]), 1);
    assert_int_equal(pp_wait(mix, 2, PP_FIRST_EXCEPTION, 0), 1);
    assert_int_equal(pp_wait(mix, 2, PP_FIRST_EXCEPTION, BOUND), 1);
    pp_future_free(mix[1]);
    free_all(busy, 3);
    ppt_finish(pool);
}

static void test_wait_all_completed(void **state) {
    (void)state;
    pp_pool_t *pool = ppt_pool(3);
    /* failures do not end ALL_COMPLETED early */
    pp_future_t *fs[5] = {sleeper(pool, 200), failer(pool, 10), sleeper(pool, 20),
                          failer(pool, 100), sleeper(pool, 50)};
    assert_int_equal(pp_wait(fs, 5, PP_ALL_COMPLETED, BOUND), 5);
    assert_int_equal(count_ready(fs, 5), 5);
    assert_int_equal(ppt_get_long(fs[0], 0), 200);
    assert_rc(pp_future_get(fs[1], 0, NULL, NULL), PP_ETASK);
    assert_rc(pp_future_get(fs[3], 0, NULL, NULL), PP_ETASK);
    /* all done already: every mode gives n at once */
    assert_int_equal(pp_wait(fs, 5, PP_ALL_COMPLETED, 0), 5);
    assert_int_equal(pp_wait(fs, 5, PP_FIRST_COMPLETED, 0), 5);
    assert_int_equal(pp_wait(fs, 5, PP_FIRST_EXCEPTION, 0), 5);
    /* the same future twice */
    pp_future_t *twice[2] = {fs[0], fs[0]};
    assert_int_equal(pp_wait(twice, 2, PP_ALL_COMPLETED, 0), 2);
    free_all(fs, 5);
    ppt_finish(pool);
}

static void test_wait_timeouts(void **state) {
    (void)state;
    pp_pool_t *pool = ppt_pool(2);
    pp_future_t *fs[2] = {sleeper(pool, 800), sleeper(pool, 800)};
    assert_rc(pp_wait(fs, 2, PP_ALL_COMPLETED, 0), -ETIMEDOUT);
    assert_rc(pp_wait(fs, 2, PP_FIRST_COMPLETED, 0), -ETIMEDOUT);
    assert_rc(pp_wait(fs, 2, PP_FIRST_EXCEPTION, 0), -ETIMEDOUT);
    double t0 = ppt_now();
    assert_rc(pp_wait(fs, 2, PP_FIRST_COMPLETED, 0.05), -ETIMEDOUT);
    double dt = ppt_now() - t0;
    if (dt < 0.04)
        fail_msg("pp_wait(..., 0.05) returned -ETIMEDOUT after only %.4f s", dt);
    assert_rc(pp_wait(fs, 2, PP_ALL_COMPLETED, 0.05), -ETIMEDOUT);
    assert_rc(pp_wait(fs, 2, PP_FIRST_EXCEPTION, 0.05), -ETIMEDOUT);
    /* nothing was consumed: they can be waited for again */
    assert_int_equal(pp_wait(fs, 2, PP_ALL_COMPLETED, BOUND), 2);
    assert_int_equal(ppt_get_long(fs[0], 0), 800);
    assert_int_equal(ppt_get_long(fs[1], 0), 800);
    free_all(fs, 2);

    /* one done, one still running: ALL_COMPLETED times out, FIRST_* does not */
    pp_future_t *mix[2] = {sleeper(pool, 0), sleeper(pool, 800)};
    assert_rc(pp_future_wait(mix[0], BOUND), 0);
    assert_rc(pp_wait(mix, 2, PP_ALL_COMPLETED, 0.02), -ETIMEDOUT);
    assert_int_equal(pp_wait(mix, 2, PP_FIRST_COMPLETED, 0), 1);
    assert_rc(pp_wait(mix, 2, PP_FIRST_EXCEPTION, 0), -ETIMEDOUT);
    /* no limit (< 0) */
    assert_int_equal(pp_wait(mix, 2, PP_ALL_COMPLETED, -1), 2);
    free_all(mix, 2);
    ppt_finish(pool);
}

static void test_wait_edge_cases(void **state) {
    (void)state;
    /* n == 0: 0 at once in every mode, fs NULL or not (a finite timeout,
     * so that a wrong -ETIMEDOUT fails here rather than hang) */
    pp_future_t *none[1] = {NULL};
    for (int mode = PP_FIRST_COMPLETED; mode <= PP_ALL_COMPLETED; mode++) {
        assert_rc(pp_wait(NULL, 0, mode, 0), 0);
        assert_rc(pp_wait(NULL, 0, mode, 0.2), 0);
        assert_rc(pp_wait(none, 0, mode, 0.2), 0);
    }

    pp_pool_t *pool = ppt_pool(1);
    pp_future_t *f = sleeper(pool, 0);
    pp_future_t *fs[2] = {f, NULL};
    assert_rc(pp_wait(NULL, 1, PP_ALL_COMPLETED, 0), -EINVAL);
    assert_rc(pp_wait(fs, 2, PP_ALL_COMPLETED, 0), -EINVAL); /* a NULL entry */
    assert_rc(pp_wait(fs, 2, PP_FIRST_COMPLETED, -1), -EINVAL);
    assert_rc(pp_wait(fs, 1, 0, 0), -EINVAL); /* bad return_when */
    assert_rc(pp_wait(fs, 1, 4, 0), -EINVAL);
    assert_rc(pp_wait(fs, 1, -1, 0), -EINVAL);
    assert_rc(pp_wait(fs, 1, PP_ALL_COMPLETED, NAN), -EINVAL); /* NaN timeout */
    assert_int_equal(pp_wait(fs, 1, PP_ALL_COMPLETED, BOUND), 1);
    pp_future_free(f);
    ppt_finish(pool);
}

/* Futures of two pools in one call; one pool's futures are done after the
 * other pool has been destroyed. */
static void test_wait_two_pools(void **state) {
    (void)state;
    pp_pool_t *a = ppt_pool(1), *b = ppt_pool(1);
    pp_future_t *fs[3] = {sleeper(a, 1000), sleeper(b, 20), sleeper(a, 10)};
    /* fs[2] waits behind fs[0] on pool a: the first done is b's */
    int r = pp_wait(fs, 3, PP_FIRST_COMPLETED, BOUND);
    assert_true(r >= 1);
    assert_int_equal(pp_future_ready(fs[1]), 1);
    assert_int_equal(pp_future_ready(fs[2]), 0);
    assert_int_equal(pp_wait(fs, 3, PP_ALL_COMPLETED, BOUND), 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(pp_future_successful(fs[i]), 1);
    free_all(fs, 3);

    /* a failure in one pool ends FIRST_EXCEPTION over both */
    pp_future_t *g[2] = {sleeper(a, 2000), failer(b, 20)};
    assert_int_equal(pp_wait(g, 2, PP_FIRST_EXCEPTION, BOUND), 1);
    assert_int_equal(pp_future_ready(g[0]), 0);
    pp_pool_destroy(a); /* g[0] fails PP_ECANCELED */
    assert_int_equal(pp_wait(g, 2, PP_ALL_COMPLETED, BOUND), 2);
    assert_rc(pp_future_get(g[0], 0, NULL, NULL), PP_ECANCELED);
    free_all(g, 2);
    ppt_finish(b);
}

/* Several threads waiting for overlapping sets at once. */
struct wait_job {
    pp_future_t **fs;
    size_t n;
    int mode;
    int rc;
};

static void *wait_thread(void *p) {
    struct wait_job *j = p;
    j->rc = pp_wait(j->fs, j->n, j->mode, BOUND);
    return NULL;
}

static void test_wait_many_threads(void **state) {
    (void)state;
    pp_pool_t *pool = ppt_pool(2);
    enum { NF = 40, NT = 6 };
    pp_future_t *fs[NF];
    for (int i = 0; i < NF; i++)
        fs[i] = sleeper(pool, (i * 7) % 20);
    struct wait_job jobs[NT];
    pthread_t th[NT];
    for (int t = 0; t < NT; t++) {
        jobs[t] = (struct wait_job){
            .fs = fs + t * 5, .n = NF - (size_t)t * 5, .mode = t % 3 + 1, .rc = -1};
        assert_int_equal(pthread_create(&th[t], NULL, wait_thread, &jobs[t]), 0);
    }
    for (int t = 0; t < NT; t++) {
        pthread_join(th[t], NULL);
        if (jobs[t].rc < 1)
            fail_msg("thread %d (mode %d): pp_wait returned %d (%s)", t, jobs[t].mode, jobs[t].rc,
                     pp_err_name(jobs[t].rc));
        if (jobs[t].mode != PP_FIRST_COMPLETED)
            assert_int_equal(jobs[t].rc, (int)jobs[t].n);
    }
    free_all(fs, NF);
    ppt_finish(pool);
}

/* Cancelling a queued task wakes a pp_wait and a pp_queue_next waiting
 * for it in other threads, while the task ahead of it still runs. */
struct waiter {
    pp_future_t *f;
    pp_queue_t *q;
    atomic_int started;
    int rc;
    pp_future_t *got;
};

static void *wait_one_thread(void *p) {
    struct waiter *w = p;
    atomic_store(&w->started, 1);
    w->rc = pp_wait(&w->f, 1, PP_FIRST_COMPLETED, BOUND);
    return NULL;
}

static void *queue_one_thread(void *p) {
    struct waiter *w = p;
    atomic_store(&w->started, 1);
    w->rc = pp_queue_next(w->q, BOUND, &w->got);
    return NULL;
}

static void test_cancel_wakes_wait_and_queue(void **state) {
    (void)state;
    pp_pool_t *pool = ppt_pool(1);
    pp_future_t *busy = sleeper(pool, 1500);
    pp_future_t *a = sleeper(pool, 10), *b = sleeper(pool, 10);
    pp_queue_t *q = NULL;
    assert_rc(pp_queue_create(&q), 0);
    assert_rc(pp_queue_add(q, b), 0);
    struct waiter wa = {.f = a, .rc = -1}, wb = {.q = q, .rc = -1};
    pthread_t ta, tb;
    assert_int_equal(pthread_create(&ta, NULL, wait_one_thread, &wa), 0);
    assert_int_equal(pthread_create(&tb, NULL, queue_one_thread, &wb), 0);
    while (!atomic_load(&wa.started) || !atomic_load(&wb.started))
        ppt_sleep_ms(1);
    ppt_sleep_ms(30); /* both asleep by now, most likely */
    assert_int_equal(pp_future_cancel(a), 1);
    assert_int_equal(pp_future_cancel(b), 1);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    assert_int_equal(wa.rc, 1);
    assert_rc(wb.rc, 1);
    assert_ptr_equal(wb.got, b);
    assert_rc(pp_future_get(a, 0, NULL, NULL), PP_ECANCELED);
    assert_rc(pp_future_get(b, 0, NULL, NULL), PP_ECANCELED);
    /* woken by the cancels, not by the end of the task ahead */
    assert_int_equal(pp_future_ready(busy), 0);
    assert_rc(pp_queue_next(q, 0, &wb.got), 0);
    pp_queue_destroy(q);
    pp_future_free(a);
    pp_future_free(b);
    assert_rc(pp_pool_terminate(pool), 0);
    pp_future_free(busy);
    ppt_finish(pool);
}

/* ======================================================================== */
/* completion queues                                                          */
/* ======================================================================== */

static void test_queue_args(void **state) {
    (void)state;
    assert_rc(pp_queue_create(NULL), -EINVAL);
    pp_queue_t *q = NULL;
    assert_rc(pp_queue_create(&q), 0);
    assert_non_null(q);
    pp_future_t *f = (pp_future_t *)&f;
    assert_rc(pp_queue_add(NULL, f), -EINVAL);
    assert_rc(pp_queue_add(q, NULL), -EINVAL);
    assert_rc(pp_queue_next(NULL, 0, &f), -EINVAL);
    assert_null(f);
    assert_rc(pp_queue_next(q, 0, NULL), -EINVAL);
    f = (pp_future_t *)&f;
    assert_rc(pp_queue_next(q, NAN, &f), -EINVAL);
    assert_null(f);
    assert_rc(pp_queue_fd(NULL), -EINVAL);
    assert_true(pp_queue_fd(q) >= 0);
    /* empty: drained at once, whatever the timeout */
    f = (pp_future_t *)&f;
    assert_rc(pp_queue_next(q, 0, &f), 0);
    assert_null(f);
    assert_rc(pp_queue_next(q, -1, &f), 0);
    assert_null(f);
    assert_int_equal(readable(pp_queue_fd(q)), 0);
    pp_queue_destroy(q);
    pp_queue_destroy(NULL);
}

/* Futures come out in completion order, each once; then 0. */
static void test_queue_completion_order(void **state) {
    (void)state;
    pp_pool_t *pool = ppt_pool(3);
    pp_queue_t *q = NULL;
    assert_rc(pp_queue_create(&q), 0);
    pp_future_t *slow = sleeper(pool, 700), *mid = sleeper(pool, 250), *fast = failer(pool, 10);
    assert_rc(pp_queue_add(q, slow), 0);
    assert_rc(pp_queue_add(q, mid), 0);
    assert_rc(pp_queue_add(q, fast), 0);
    pp_future_t *want[3] = {fast, mid, slow}, *got = NULL;
    for (int i = 0; i < 3; i++) {
        got = NULL;
        assert_rc(pp_queue_next(q, BOUND, &got), 1);
        if (got != want[i])
            fail_msg("pp_queue_next #%d gave the future of the %s task", i,
                     got == fast   ? "fast"
                     : got == mid  ? "mid"
                     : got == slow ? "slow"
                                   : "unknown");
        assert_int_equal(pp_future_ready(got), 1);
    }
    got = (pp_future_t *)&got;
    assert_rc(pp_queue_next(q, BOUND, &got), 0);
    assert_null(got);
    assert_rc(pp_queue_next(q, 0, &got), 0);
    assert_rc(pp_future_get(fast, 0, NULL, NULL), PP_ETASK);
    assert_int_equal(ppt_get_long(mid, 0), 250);
    assert_int_equal(ppt_get_long(slow, 0), 700);
    /* the queue did not free them; a taken-out future may be added again */
    assert_rc(pp_queue_add(q, mid), 0);
    assert_rc(pp_queue_next(q, 0, &got), 1);
    assert_ptr_equal(got, mid);
    assert_rc(pp_queue_next(q, 0, &got), 0);
    pp_future_free(slow);
    pp_future_free(mid);
    pp_future_free(fast);
    pp_queue_destroy(q);
    ppt_finish(pool);
}

static void test_queue_timeout_pending(void **state) {
    (void)state;
    pp_pool_t *pool = ppt_pool(1);
    pp_queue_t *q = NULL;
    assert_rc(pp_queue_create(&q), 0);
    pp_future_t *f = sleeper(pool, 500), *got = (pp_future_t *)&got;
    assert_rc(pp_queue_add(q, f), 0);
    assert_rc(pp_queue_next(q, 0, &got), -ETIMEDOUT);
    assert_null(got);
    got = (pp_future_t *)&got;
    double t0 = ppt_now();
    assert_rc(pp_queue_next(q, 0.05, &got), -ETIMEDOUT);
    double dt = ppt_now() - t0;
    if (dt < 0.04)
        fail_msg("pp_queue_next(q, 0.05) returned -ETIMEDOUT after only %.4f s", dt);
    assert_null(got);
    assert_int_equal(readable(pp_queue_fd(q)), 0);
    /* still in the queue: it comes out when done */
    assert_rc(pp_queue_next(q, BOUND, &got), 1);
    assert_ptr_equal(got, f);
    assert_int_equal(ppt_get_long(f, 0), 500);
    assert_rc(pp_queue_next(q, 0, &got), 0);
    pp_future_free(f);

    /* no limit (< 0) */
    f = sleeper(pool, 30);
    assert_rc(pp_queue_add(q, f), 0);
    assert_rc(pp_queue_next(q, -1, &got), 1);
    assert_ptr_equal(got, f);
    pp_future_free(f);
    pp_queue_destroy(q);
    ppt_finish(pool);
}

/* A done future is delivered at once; the descriptor is level-triggered. */
static void test_queue_done_future_and_fd(void **state) {
    (void)state;
    pp_pool_t *pool = ppt_pool(2);
    pp_queue_t *q = NULL;
    assert_rc(pp_queue_create(&q), 0);
    int fd = pp_queue_fd(q);
    assert_true(fd >= 0);
    assert_int_equal(pp_queue_fd(q), fd);
    pp_future_t *a = sleeper(pool, 0), *b = failer(pool, 0), *got = NULL;
    assert_rc(pp_future_wait(a, BOUND), 0);
    assert_rc(pp_future_wait(b, BOUND), 0);
    assert_int_equal(readable(fd), 0);
    assert_rc(pp_queue_add(q, a), 0);
    assert_int_equal(readable(fd), 1);
    assert_rc(pp_queue_add(q, b), 0);
    /* level-triggered: readable until the last is taken */
    assert_int_equal(readable(fd), 1);
    assert_rc(pp_queue_next(q, 0, &got), 1);
    assert_ptr_equal(got, a);
    assert_int_equal(readable(fd), 1);
    assert_int_equal(readable(fd), 1);
    assert_rc(pp_queue_next(q, 0, &got), 1);
    assert_ptr_equal(got, b);
    assert_int_equal(readable(fd), 0);
    assert_rc(pp_queue_next(q, 0, &got), 0);

    /* an event loop: poll the descriptor, then take without waiting */
    pp_future_t *fs[4];
    for (int i = 0; i < 4; i++) {
        fs[i] = sleeper(pool, 20 * i);
        assert_rc(pp_queue_add(q, fs[i]), 0);
    }
    int seen = 0;
    double t0 = ppt_now();
    while (seen < 4) {
        if (ppt_now() - t0 > BOUND)
            fail_msg("event loop: %d of 4 after %.0f s", seen, BOUND);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = poll(&p, 1, 100);
        assert_true(r >= 0);
        if (r == 0)
            continue;
        /* readable: something is there to take at once */
        assert_rc(pp_queue_next(q, 0, &got), 1);
        assert_int_equal(pp_future_ready(got), 1);
        seen++;
    }
    assert_int_equal(readable(fd), 0);
    assert_rc(pp_queue_next(q, 0, &got), 0);
    free_all(fs, 4);
    pp_future_free(a);
    pp_future_free(b);
    pp_queue_destroy(q);
    ppt_finish(pool);
}

static void test_queue_ebusy(void **state) {
    (void)state;
    pp_pool_t *pool = ppt_pool(1);
    pp_queue_t *q1 = NULL, *q2 = NULL;
    assert_rc(pp_queue_create(&q1), 0);
    assert_rc(pp_queue_create(&q2), 0);
    pp_future_t *f = sleeper(pool, 200), *got = NULL;
    assert_rc(pp_queue_add(q1, f), 0);
    assert_rc(pp_queue_add(q1, f), -EBUSY);
    assert_rc(pp_queue_add(q2, f), -EBUSY);
    /* still -EBUSY once done but not taken out */
    assert_rc(pp_future_wait(f, BOUND), 0);
    assert_rc(pp_queue_add(q2, f), -EBUSY);
    /* (not 0: right after pp_future_wait is test_queue_next_after_wait's case) */
    assert_rc(pp_queue_next(q1, BOUND, &got), 1);
    assert_ptr_equal(got, f);
    /* delivered once only, despite the refused adds */
    assert_rc(pp_queue_next(q1, 0, &got), 0);
    assert_rc(pp_queue_next(q2, 0, &got), 0);
    /* taken out: it may join another queue, and comes out at once */
    assert_rc(pp_queue_add(q2, f), 0);
    assert_rc(pp_queue_next(q2, 0, &got), 1);
    assert_ptr_equal(got, f);
    assert_rc(pp_queue_next(q1, 0, &got), 0);
    pp_future_free(f);
    pp_queue_destroy(q1);
    pp_queue_destroy(q2);
    ppt_finish(pool);
}

/* A future seen done (pp_future_wait returned) is in the queue's done
 * list: pp_queue_next(q, 0) gives it, never -ETIMEDOUT, and the
 * descriptor is readable. 2000 times, since the order inside completion
 * is what is checked. */
static void test_queue_next_after_wait(void **state) {
    (void)state;
    pp_pool_t *pool = ppt_pool(1);
    pp_queue_t *q = NULL;
    assert_rc(pp_queue_create(&q), 0);
    enum { ROUNDS = 2000 };
    int late_fd = 0, late_next = 0;
    for (int i = 0; i < ROUNDS; i++) {
        pp_future_t *f = sleeper(pool, 0), *got = NULL;
        assert_rc(pp_queue_add(q, f), 0);
        assert_rc(pp_future_wait(f, BOUND), 0);
        late_fd += !readable(pp_queue_fd(q));
        int r = pp_queue_next(q, 0, &got);
        if (r != 1) {
            late_next++;
            assert_rc(r, -ETIMEDOUT);
            assert_rc(pp_queue_next(q, BOUND, &got), 1);
        }
        assert_ptr_equal(got, f);
        assert_rc(pp_queue_next(q, 0, &got), 0);
        pp_future_free(f);
    }
    pp_queue_destroy(q);
    ppt_finish(pool);
    if (late_next || late_fd)
        fail_msg("of %d futures done (pp_future_wait returned 0): pp_queue_next(q, 0) gave "
                 "-ETIMEDOUT for %d, the descriptor was not readable for %d",
                 ROUNDS, late_next, late_fd);
}

/* Freeing a future takes it out of its queue: pending or done. */
static void test_queue_free_future_inside(void **state) {
    (void)state;
    pp_pool_t *pool = ppt_pool(2);
    pp_queue_t *q = NULL;
    assert_rc(pp_queue_create(&q), 0);
    pp_future_t *pend = sleeper(pool, 400), *done = sleeper(pool, 0), *got = NULL;
    assert_rc(pp_future_wait(done, BOUND), 0);
    pp_future_t *keep = sleeper(pool, 0);
    assert_rc(pp_future_wait(keep, BOUND), 0);
    assert_rc(pp_queue_add(q, pend), 0);
    assert_rc(pp_queue_add(q, done), 0);
    assert_rc(pp_queue_add(q, keep), 0);
    pp_future_free(pend); /* pending */
    pp_future_free(done); /* done, not yet taken out */
    assert_int_equal(readable(pp_queue_fd(q)), 1);
    assert_rc(pp_queue_next(q, 0, &got), 1);
    assert_ptr_equal(got, keep);
    /* the freed ones are gone: drained, not pending */
    assert_int_equal(readable(pp_queue_fd(q)), 0);
    assert_rc(pp_queue_next(q, 0, &got), 0);
    assert_rc(pp_queue_next(q, BOUND, &got), 0);
    assert_null(got);
    pp_future_free(keep);

    /* the last done future freed: the descriptor is no longer readable */
    pp_future_t *d2 = sleeper(pool, 0);
    assert_rc(pp_future_wait(d2, BOUND), 0);
    assert_rc(pp_queue_add(q, d2), 0);
    assert_int_equal(readable(pp_queue_fd(q)), 1);
    pp_future_free(d2);
    assert_int_equal(readable(pp_queue_fd(q)), 0);
    assert_rc(pp_queue_next(q, 0, &got), 0);

    /* a freed pending future's task still ends; nothing comes out for it */
    pp_future_t *p2 = sleeper(pool, 50);
    assert_rc(pp_queue_add(q, p2), 0);
    pp_future_free(p2);
    ppt_sleep_ms(100);
    assert_rc(pp_queue_next(q, 0, &got), 0);
    pp_queue_destroy(q);
    ppt_finish(pool);
}

/* A queue destroyed with futures in it: they stay usable, freeable, and
 * may join another queue. */
static void test_queue_destroy_with_futures(void **state) {
    (void)state;
    int fds0 = ppt_fd_count(), kids0 = children_left();
    pp_pool_t *pool = ppt_pool(2);
    int fds_pool = ppt_fd_count();
    pp_queue_t *q = NULL;
    assert_rc(pp_queue_create(&q), 0);
    pp_future_t *pend = sleeper(pool, 300), *done = sleeper(pool, 5);
    assert_rc(pp_future_wait(done, BOUND), 0);
    assert_rc(pp_queue_add(q, pend), 0);
    assert_rc(pp_queue_add(q, done), 0);
    pp_queue_destroy(q);
    assert_int_equal(ppt_fd_count(), fds_pool); /* its descriptor is closed */
    assert_int_equal(ppt_get_long(done, 0), 5);
    assert_int_equal(ppt_get_long(pend, BOUND), 300);
    /* no longer in a queue */
    pp_queue_t *q2 = NULL;
    pp_future_t *got = NULL;
    assert_rc(pp_queue_create(&q2), 0);
    assert_rc(pp_queue_add(q2, pend), 0);
    assert_rc(pp_queue_add(q2, done), 0);
    assert_rc(pp_queue_next(q2, 0, &got), 1);
    assert_rc(pp_queue_next(q2, 0, &got), 1);
    assert_rc(pp_queue_next(q2, 0, &got), 0);
    pp_queue_destroy(q2);

    /* destroyed while a future is pending, then freed after it ends */
    pp_queue_t *q3 = NULL;
    assert_rc(pp_queue_create(&q3), 0);
    pp_future_t *p3 = sleeper(pool, 100);
    assert_rc(pp_queue_add(q3, p3), 0);
    pp_queue_destroy(q3);
    assert_int_equal(ppt_get_long(p3, BOUND), 100);
    pp_future_free(p3);

    pp_future_free(pend);
    pp_future_free(done);
    ppt_finish(pool);
    for (int i = 0; i < 100 && (ppt_fd_count() != fds0 || children_left() != kids0); i++)
        ppt_sleep_ms(10);
    assert_int_equal(ppt_fd_count(), fds0);
    assert_int_equal(children_left(), kids0);
}

/* A queue holding futures of two pools, and futures that outlive their
 * pool (terminated: PP_ECANCELED). */
static void test_queue_two_pools(void **state) {
    (void)state;
    pp_pool_t *a = ppt_pool(1), *b = ppt_pool(1);
    pp_queue_t *q = NULL;
    assert_rc(pp_queue_create(&q), 0);
    pp_future_t *fa = sleeper(a, 3000), *fb = sleeper(b, 10), *got = NULL;
    assert_rc(pp_queue_add(q, fa), 0);
    assert_rc(pp_queue_add(q, fb), 0);
    assert_rc(pp_queue_next(q, BOUND, &got), 1);
    assert_ptr_equal(got, fb);
    assert_rc(pp_pool_terminate(a), 0);
    assert_rc(pp_queue_next(q, BOUND, &got), 1);
    assert_ptr_equal(got, fa);
    assert_rc(pp_future_get(fa, 0, NULL, NULL), PP_ECANCELED);
    assert_rc(pp_queue_next(q, BOUND, &got), 0);
    pp_pool_destroy(a);
    pp_future_free(fa);
    pp_future_free(fb);
    pp_queue_destroy(q);
    ppt_finish(b);
}

/* ---- many threads ----------------------------------------------------------- */

enum { PRODUCERS = 8, PER_PRODUCER = 2000, TOTAL = PRODUCERS * PER_PRODUCER };

struct stress {
    pp_pool_t *pool;
    pp_queue_t *q;
    long args[TOTAL];
    atomic_int cb_calls[TOTAL];
    atomic_int cb_bad;
    unsigned char seen[TOTAL]; /* consumer only */
    atomic_int producers_done;
    atomic_int errors;
    int consumer_bad;
    int consumer_got;
};

struct producer {
    struct stress *s;
    long first;
};

static struct stress *g_stress;

static void cb_stress(pp_future_t *f, void *ud) {
    const long *arg = ud;
    struct stress *s = g_stress;
    const void *d = NULL;
    size_t n = 0;
    if (pp_future_get(f, 0, &d, &n) != 0 || n != sizeof(long) || load_long(d) != 2 * *arg + 1)
        atomic_fetch_add(&s->cb_bad, 1);
    atomic_fetch_add(&s->cb_calls[*arg], 1);
}

static void *producer_thread(void *p) {
    struct producer *pr = p;
    struct stress *s = pr->s;
    for (long i = pr->first; i < pr->first + PER_PRODUCER; i++) {
        s->args[i] = i;
        pp_task_opts_t o;
        pp_task_opts_init(&o);
        o.on_done = cb_stress;
        o.userdata = &s->args[i];
        pp_future_t *f = NULL;
        int rc = pp_submit(s->pool, task_odd, &s->args[i], sizeof(long), &o, &f);
        if (rc != 0) {
            atomic_fetch_add(&s->errors, 1);
            continue;
        }
        rc = pp_queue_add(s->q, f);
        if (rc != 0)
            atomic_fetch_add(&s->errors, 1);
    }
    atomic_fetch_add(&s->producers_done, 1);
    return NULL;
}

static void *consumer_thread(void *p) {
    struct stress *s = p;
    double t0 = ppt_now();
    while (s->consumer_got < TOTAL) {
        pp_future_t *f = NULL;
        int done_before = atomic_load(&s->producers_done);
        int rc = pp_queue_next(s->q, 0.5, &f);
        if (rc == 1) {
            const void *d = NULL;
            size_t n = 0;
            long v = -1;
            if (pp_future_get(f, 0, &d, &n) == 0 && n == sizeof v)
                memcpy(&v, d, sizeof v);
            long i = (v - 1) / 2;
            if (v < 1 || v % 2 == 0 || i >= TOTAL || s->seen[i])
                s->consumer_bad++;
            else
                s->seen[i] = 1;
            s->consumer_got++;
            pp_future_free(f);
        } else if (rc == 0) {
            /* drained: the producers may just not have added more yet */
            if (done_before == PRODUCERS)
                break;
            sched_yield();
        } else if (rc != -ETIMEDOUT) {
            s->consumer_bad++;
            break;
        }
        if (ppt_now() - t0 > 40)
            break;
    }
    return NULL;
}

static void test_queue_many_producers(void **state) {
    (void)state;
    struct stress *s = calloc(1, sizeof *s);
    assert_non_null(s);
    g_stress = s;
    s->pool = ppt_pool(2);
    assert_rc(pp_queue_create(&s->q), 0);
    double t0 = ppt_now();
    pthread_t cons, prod[PRODUCERS];
    struct producer pr[PRODUCERS];
    assert_int_equal(pthread_create(&cons, NULL, consumer_thread, s), 0);
    for (int t = 0; t < PRODUCERS; t++) {
        pr[t] = (struct producer){s, (long)t * PER_PRODUCER};
        assert_int_equal(pthread_create(&prod[t], NULL, producer_thread, &pr[t]), 0);
    }
    for (int t = 0; t < PRODUCERS; t++)
        pthread_join(prod[t], NULL);
    pthread_join(cons, NULL);
    assert_int_equal(atomic_load(&s->errors), 0);
    assert_int_equal(s->consumer_bad, 0);
    if (s->consumer_got != TOTAL)
        fail_msg("the consumer took %d futures out of %d", s->consumer_got, TOTAL);
    for (long i = 0; i < TOTAL; i++)
        if (!s->seen[i])
            fail_msg("task %ld's future never came out", i);
    pp_future_t *got = (pp_future_t *)&got;
    assert_rc(pp_queue_next(s->q, 0, &got), 0);
    assert_null(got);
    assert_rc(pp_pool_close(s->pool), 0);
    assert_rc(pp_pool_join(s->pool), 0);
    for (long i = 0; i < TOTAL; i++)
        if (atomic_load(&s->cb_calls[i]) != 1)
            fail_msg("task %ld: callback ran %d times", i, atomic_load(&s->cb_calls[i]));
    assert_int_equal(atomic_load(&s->cb_bad), 0);
    print_message("%d futures through one queue from %d threads in %.2f s\n", TOTAL, PRODUCERS,
                  ppt_now() - t0);
    pp_pool_destroy(s->pool);
    pp_queue_destroy(s->q);
    free(s);
}

int main(void) {
    ppt_hang_guard(90);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wait_first_completed),
        cmocka_unit_test(test_wait_first_exception),
        cmocka_unit_test(test_wait_all_completed),
        cmocka_unit_test(test_wait_timeouts),
        cmocka_unit_test(test_wait_edge_cases),
        cmocka_unit_test(test_wait_two_pools),
        cmocka_unit_test(test_wait_many_threads),
        cmocka_unit_test(test_cancel_wakes_wait_and_queue),
        cmocka_unit_test(test_queue_args),
        cmocka_unit_test(test_queue_completion_order),
        cmocka_unit_test(test_queue_timeout_pending),
        cmocka_unit_test(test_queue_done_future_and_fd),
        cmocka_unit_test(test_queue_ebusy),
        cmocka_unit_test(test_queue_next_after_wait),
        cmocka_unit_test(test_queue_free_future_inside),
        cmocka_unit_test(test_queue_destroy_with_futures),
        cmocka_unit_test(test_queue_two_pools),
        cmocka_unit_test(test_queue_many_producers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
