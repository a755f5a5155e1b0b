/*
 * test_fork.c - a pool and the processes around it: a child made by the
 * user's fork(), a pool created inside a task, callbacks that wait or
 * dawdle, and a killed zygote.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "procpool.h"
#include "helpers.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int echo(const void *arg, size_t len, pp_buf_t *out) { return pp_buf_append(out, arg, len); }

static int twice(const void *arg, size_t len, pp_buf_t *out) {
    (void)len;
    long v = *(const long *)arg * 2;
    return pp_buf_append(out, &v, sizeof v);
}

static int die(const void *arg, size_t len, pp_buf_t *out) {
    (void)arg, (void)len, (void)out;
    signal(SIGKILL, SIG_DFL);
    raise(SIGKILL);
    return 0;
}

/* A child of the user's fork() must not drive the parent's workers. */
static void test_forked_child_cannot_use_pool(void **state) {
    (void)state;
    pp_pool_t *pool = ppt_pool(2);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        void *res = NULL;
        size_t len = 0;
        int rc = pp_apply(pool, echo, "CHILD", 6, &res, &len);
        int ok = rc == PP_ECLOSED && res == NULL;
        pp_future_t *f = NULL;
        ok = ok && pp_apply_async(pool, echo, "CHILD", 6, &f) == PP_ECLOSED && f == NULL;
        ok = ok && pp_pool_close(pool) == PP_ECLOSED;
        pp_pool_destroy(pool); /* must return at once and touch nothing of the parent's */
        _exit(ok ? 0 : 1);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    for (int i = 0; i < 20; i++) {
        void *res;
        size_t len;
        assert_int_equal(pp_apply(pool, echo, "PARENT", 7, &res, &len), 0);
        assert_string_equal(res, "PARENT");
        free(res);
    }
    ppt_finish(pool);
}

/* A task may create and use a pool of its own. */
static int nested(const void *arg, size_t len, pp_buf_t *out) {
    (void)len;
    pp_options_t o;
    pp_options_init(&o);
    o.processes = 1;
    o.start_method = *(const pp_start_t *)arg;
    pp_pool_t *p;
    int rc = pp_pool_create(&p, &o);
    if (rc < 0)
        return pp_buf_fail(out, "create: %s", pp_err_name(rc));
    long v = 21, *r = NULL;
    size_t n = 0;
    rc = pp_apply(p, twice, &v, sizeof v, (void **)&r, &n);
    pp_pool_close(p);
    pp_pool_join(p);
    pp_pool_destroy(p);
    if (rc < 0)
        return pp_buf_fail(out, "apply: %s", pp_err_name(rc));
    rc = pp_buf_append(out, r, n);
    free(r);
    return rc;
}

static void test_pool_inside_a_task(void **state) {
    (void)state;
    pp_start_t methods[2] = {PP_START_FORK, PP_START_FORKSERVER};
    for (int m = 0; m < 2; m++) {
        pp_options_t o;
        pp_options_init(&o);
        o.processes = 2;
        o.start_method = methods[m];
        pp_pool_t *pool;
        assert_int_equal(pp_pool_create(&pool, &o), 0);
        pp_future_t *f;
        assert_int_equal(pp_apply_async(pool, nested, &methods[m], sizeof methods[m], &f), 0);
        const void *d;
        size_t n;
        int rc = pp_future_get(f, 20, &d, &n);
        if (rc != 0)
            fail_msg("method %d: %s: %s", m, pp_err_name(rc), pp_future_error(f));
        assert_int_equal(n, sizeof(long));
        assert_int_equal(*(const long *)d, 42);
        pp_future_free(f);
        ppt_finish(pool);
    }
}

/* A callback may wait for another task of the same pool, even one whose
 * worker dies: callbacks do not run on the thread that notices deaths. */
static pp_pool_t *cb_pool;
static _Atomic int cb_result = -1;

static void waiting_cb(pp_future_t *f, void *ud) {
    (void)ud;
    (void)f;
    pp_future_t *g;
    if (pp_apply_async(cb_pool, die, NULL, 0, &g) != 0) {
        atomic_store(&cb_result, -2);
        return;
    }
    int rc = pp_future_get(g, 20, NULL, NULL);
    pp_future_free(g);
    atomic_store(&cb_result, rc);
}

static void test_callback_waits_on_same_pool(void **state) {
    (void)state;
    cb_pool = ppt_pool(2);
    long v = 1;
    pp_future_t *f;
    assert_int_equal(pp_apply_async(cb_pool, twice, &v, sizeof v, &f), 0);
    assert_int_equal(pp_future_on_done(f, waiting_cb, NULL), 0);
    pp_future_wait(f, 20);
    double t0 = ppt_now();
    while (atomic_load(&cb_result) == -1 && ppt_now() - t0 < 20)
        ppt_sleep_ms(5);
    assert_int_equal(atomic_load(&cb_result), PP_EWORKER);
    pp_future_free(f);
    ppt_finish(cb_pool);
}

/* A slow callback does not hold up other futures or their waiters. */
static void sleepy_cb(pp_future_t *f, void *ud) {
    (void)f, (void)ud;
    ppt_sleep_ms(3000);
}

static void test_slow_callback_does_not_stall_waiters(void **state) {
    (void)state;
    pp_pool_t *pool = ppt_pool(2);
    long v = 3;
    pp_future_t *f;
    assert_int_equal(pp_apply_async(pool, twice, &v, sizeof v, &f), 0);
    assert_int_equal(pp_future_on_done(f, sleepy_cb, NULL), 0);
    pp_future_wait(f, 20);
    ppt_sleep_ms(50); /* the callback is now sleeping */
    double t0 = ppt_now();
    for (int i = 0; i < 5; i++) {
        pp_future_t *g;
        assert_int_equal(pp_apply_async(pool, twice, &v, sizeof v, &g), 0);
        ppt_sleep_ms(2); /* let the waiter stop spinning and sleep */
        assert_int_equal(ppt_get_long(g, 20), 6);
        pp_future_free(g);
    }
    double took = ppt_now() - t0;
    if (took > 1.5)
        fail_msg("5 quick tasks took %.3f s behind a 3 s callback", took);
    pp_future_free(f);
    ppt_finish(pool);
}

/* Killing the zygote does not wedge the pool: deaths are still handled
 * and destroy returns. */
static int getpid_task(const void *arg, size_t len, pp_buf_t *out) {
    (void)arg, (void)len;
    long p = getpid();
    return pp_buf_append(out, &p, sizeof p);
}

static void test_zygote_killed(void **state) {
    (void)state;
    pp_options_t o;
    pp_options_init(&o);
    o.processes = 2;
    o.start_method = PP_START_FORKSERVER;
    pp_pool_t *pool;
    assert_int_equal(pp_pool_create(&pool, &o), 0);
    pp_future_t *f;
    assert_int_equal(pp_apply_async(pool, getpid_task, NULL, 0, &f), 0);
    long wpid = ppt_get_long(f, 20);
    pp_future_free(f);
    pid_t zyg = 0;
    assert_int_equal(ppt_proc_stat((pid_t)wpid, NULL, NULL, &zyg), 0);
    assert_true(zyg != getpid());
    kill(zyg, SIGKILL);
    /* the pool goes on (degraded: replacements come from the parent) */
    for (int i = 0; i < 10; i++) {
        long v = i;
        pp_future_t *g;
        assert_int_equal(pp_apply_async(pool, twice, &v, sizeof v, &g), 0);
        assert_int_equal(ppt_get_long(g, 20), 2 * i);
        pp_future_free(g);
    }
    double t0 = ppt_now();
    pp_pool_destroy(pool);
    assert_true(ppt_now() - t0 < 2.0);
}

int main(void) {
    ppt_hang_guard(120);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forked_child_cannot_use_pool),
        cmocka_unit_test(test_pool_inside_a_task),
        cmocka_unit_test(test_callback_waits_on_same_pool),
        cmocka_unit_test(test_slow_callback_does_not_stall_waiters),
        cmocka_unit_test(test_zygote_killed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
