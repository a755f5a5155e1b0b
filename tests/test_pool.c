/* test_pool.c - pool options, creation, lifecycle, initializer,
 * max_tasks_per_child. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <signal.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "procpool.h"
#include "helpers.h"

/* ---- tasks (run in workers) --------------------------------------------- */

static int task_getpid(const void *arg, size_t len, pp_buf_t *out) {
    (void)arg;
    (void)len;
    long pid = (long)getpid();
    return pp_buf_append(out, &pid, sizeof pid);
}

/* sleeps arg milliseconds (an int), returns its pid */
static int task_sleep_ms(const void *arg, size_t len, pp_buf_t *out) {
    int ms = 0;
    if (len == sizeof ms)
        memcpy(&ms, arg, sizeof ms);
    ppt_sleep_ms(ms);
    long pid = (long)getpid();
    return pp_buf_append(out, &pid, sizeof pid);
}

static volatile int g_init_value; /* set by the initializer, in workers only */
static volatile int g_init_calls; /* times the initializer ran in this process */

static void initializer(void *arg) {
    g_init_value = *(const int *)arg;
    g_init_calls++;
}

struct init_report {
    long pid;
    int value;
    int calls;
};

static int task_init_report(const void *arg, size_t len, pp_buf_t *out) {
    (void)arg;
    (void)len;
    ppt_sleep_ms(5); /* let the other worker take some tasks too */
    struct init_report r = {(long)getpid(), g_init_value, g_init_calls};
    return pp_buf_append(out, &r, sizeof r);
}

/* reports the worker's SIGINT and SIGSEGV dispositions:
 * [0] SIGINT ignored, [1] SIGSEGV default */
static int task_signal_state(const void *arg, size_t len, pp_buf_t *out) {
    (void)arg;
    (void)len;
    struct sigaction sa;
    int r[2] = {-1, -1};
    if (sigaction(SIGINT, NULL, &sa) == 0)
        r[0] = sa.sa_handler == SIG_IGN;
    if (sigaction(SIGSEGV, NULL, &sa) == 0)
        r[1] = !(sa.sa_flags & SA_SIGINFO) && sa.sa_handler == SIG_DFL;
    return pp_buf_append(out, r, sizeof r);
}

/* ---- options -------------------------------------------------------------- */

static void test_options_init_defaults(void **state) {
    (void)state;
    pp_options_t opt;
    memset(&opt, 0xAB, sizeof opt);
    pp_options_init(&opt);
    assert_int_equal(opt.processes, 0);
    assert_null((void *)opt.initializer);
    assert_null(opt.initarg);
    assert_int_equal(opt.max_tasks_per_child, 0);
    assert_true(opt.task_timeout == 0.0);
    assert_int_equal(opt.start_method, PP_START_FORK);
    pp_options_init(NULL); /* no-op, must not crash */
}

static void test_create_null_opt(void **state) {
    (void)state;
    pp_pool_t *pool = (pp_pool_t *)&pool; /* garbage that must be overwritten */
    assert_rc(pp_pool_create(&pool, NULL), 0);
    assert_non_null(pool);
    assert_int_equal(pp_pool_size(pool), pp_cpu_count());
    long v = 21, *r = NULL;
    size_t n = 0;
    assert_rc(pp_apply(pool, ppt_task_double, &v, sizeof v, (void **)&r, &n), 0);
    assert_int_equal(n, sizeof(long));
    assert_int_equal(*r, 42);
    free(r);
    ppt_finish(pool);
}

static void test_create_processes_3(void **state) {
    (void)state;
    pp_pool_t *pool = ppt_pool(3);
    assert_int_equal(pp_pool_size(pool), 3);
    ppt_finish(pool);
}

static void test_create_processes_0_is_cpu_count(void **state) {
    (void)state;
    pp_pool_t *pool = ppt_pool(0);
    assert_int_equal(pp_pool_size(pool), pp_cpu_count());
    ppt_finish(pool);
}

static void check_invalid(const pp_options_t *opt, const char *what) {
    pp_pool_t *pool = (pp_pool_t *)&pool;
    int rc = pp_pool_create(&pool, opt);
    if (rc != -EINVAL)
        fail_msg("pp_pool_create(%s) returned %d (%s), expected -EINVAL", what, rc,
                 pp_err_name(rc));
    if (pool != NULL)
        fail_msg("pp_pool_create(%s) failed but left *pool = %p, expected NULL", what,
                 (void *)pool);
}

static void test_create_invalid_options(void **state) {
    (void)state;
    pp_options_t opt;

    pp_options_init(&opt);
    opt.processes = -1;
    check_invalid(&opt, "processes -1");

    pp_options_init(&opt);
    opt.processes = 4097;
    check_invalid(&opt, "processes 4097");

    pp_options_init(&opt);
    opt.processes = 2;
    opt.task_timeout = -1.0;
    check_invalid(&opt, "task_timeout -1");

    pp_options_init(&opt);
    opt.processes = 2;
    opt.task_timeout = (double)NAN;
    check_invalid(&opt, "task_timeout NaN");

    pp_options_init(&opt);
    opt.processes = 2;
    opt.start_method = (pp_start_t)99;
    check_invalid(&opt, "start_method 99");

    pp_options_init(&opt);
    opt.processes = 2;
    opt.start_method = (pp_start_t)-1;
    check_invalid(&opt, "start_method -1");
}

static void test_null_pool_arguments(void **state) {
    (void)state;
    pp_options_t opt;
    pp_options_init(&opt);
    opt.processes = 2;
    assert_rc(pp_pool_create(NULL, &opt), -EINVAL);
    assert_rc(pp_pool_create(NULL, NULL), -EINVAL);
    assert_rc(pp_pool_size(NULL), -EINVAL);
    assert_rc(pp_pool_close(NULL), -EINVAL);
    assert_rc(pp_pool_terminate(NULL), -EINVAL);
    assert_rc(pp_pool_join(NULL), -EINVAL);
    pp_pool_destroy(NULL); /* no-op */
}

static void test_join_before_close(void **state) {
    (void)state;
    pp_pool_t *pool = ppt_pool(2);
    assert_rc(pp_pool_join(pool), -EINVAL);
    /* the pool still works after the refused join */
    long v = 5, *r = NULL;
    size_t n = 0;
    assert_rc(pp_apply(pool, ppt_task_double, &v, sizeof v, (void **)&r, &n), 0);
    assert_int_equal(*r, 10);
    free(r);
    ppt_finish(pool);
}

static void test_close_twice_and_submit_after_close(void **state) {
    (void)state;
    pp_pool_t *pool = ppt_pool(2);
    assert_rc(pp_pool_close(pool), 0);
    assert_rc(pp_pool_close(pool), 0);

    pp_future_t *f = (pp_future_t *)&f;
    long v = 1;
    assert_rc(pp_apply_async(pool, ppt_task_double, &v, sizeof v, &f), PP_ECLOSED);
    assert_null(f);

    void *r = (void *)&r;
    size_t n = 77;
    assert_rc(pp_apply(pool, ppt_task_double, &v, sizeof v, &r, &n), PP_ECLOSED);
    assert_null(r);
    assert_int_equal(n, 0);

    assert_int_equal(pp_pool_size(pool), 2);
    assert_rc(pp_pool_join(pool), 0);
    assert_rc(pp_pool_join(pool), 0); /* joining again is harmless */
    pp_pool_destroy(pool);
}

static void test_close_runs_queued_work(void **state) {
    (void)state;
    pp_pool_t *pool = ppt_pool(2);
    enum { N = 40 };
    pp_future_t *f[N];
    for (long i = 0; i < N; i++) {
        int ms = (i % 4 == 0) ? 20 : 0;
        if (i % 2 == 0)
            assert_rc(pp_apply_async(pool, task_sleep_ms, &ms, sizeof ms, &f[i]), 0);
        else
            assert_rc(pp_apply_async(pool, ppt_task_double, &i, sizeof i, &f[i]), 0);
    }
    assert_rc(pp_pool_close(pool), 0);
    assert_rc(pp_pool_join(pool), 0);
    /* after join every future is done, without waiting */
    for (long i = 0; i < N; i++) {
        assert_int_equal(pp_future_ready(f[i]), 1);
        assert_int_equal(pp_future_successful(f[i]), 1);
        long v = ppt_get_long(f[i], 0);
        if (i % 2 == 1)
            assert_int_equal(v, 2 * i);
        else
            assert_true(v != (long)getpid());
        pp_future_free(f[i]);
    }
    pp_pool_destroy(pool);
}

static void test_terminate_busy_is_fast(void **state) {
    (void)state;
    pp_pool_t *pool = ppt_pool(2);
    enum { N = 6 };
    pp_future_t *f[N];
    int ms = 10000;
    for (int i = 0; i < N; i++)
        assert_rc(pp_apply_async(pool, task_sleep_ms, &ms, sizeof ms, &f[i]), 0);
    ppt_sleep_ms(300); /* let two of them start */
    assert_int_equal(pp_future_ready(f[0]), 0);

    double t0 = ppt_now();
    assert_rc(pp_pool_terminate(pool), 0);
    assert_rc(pp_pool_join(pool), 0);
    double dt = ppt_now() - t0;
    if (dt >= 2.0)
        fail_msg("terminate+join took %.3f s, expected < 2 s", dt);

    assert_rc(pp_pool_terminate(pool), 0); /* idempotent */

    for (int i = 0; i < N; i++) {
        /* already done: polling must answer */
        const void *d = (const void *)&d;
        size_t n = 5;
        assert_rc(pp_future_get(f[i], 0, &d, &n), PP_ECANCELED);
        assert_null(d);
        assert_int_equal(n, 0);
        assert_int_equal(pp_future_ready(f[i]), 1);
        assert_int_equal(pp_future_successful(f[i]), 0);
        assert_rc(pp_future_task_status(f[i]), PP_ECANCELED);
        pp_future_free(f[i]);
    }

    /* submit after terminate */
    pp_future_t *g = (pp_future_t *)&g;
    long v = 3;
    assert_rc(pp_apply_async(pool, ppt_task_double, &v, sizeof v, &g), PP_ECLOSED);
    assert_null(g);
    pp_pool_destroy(pool);
}

static void test_destroy_without_close_is_fast(void **state) {
    (void)state;
    pp_pool_t *pool = ppt_pool(2);
    enum { N = 5 };
    pp_future_t *f[N];
    int ms = 10000;
    for (int i = 0; i < N; i++)
        assert_rc(pp_apply_async(pool, task_sleep_ms, &ms, sizeof ms, &f[i]), 0);
    ppt_sleep_ms(300);
    double t0 = ppt_now();
    pp_pool_destroy(pool);
    double dt = ppt_now() - t0;
    if (dt >= 2.0)
        fail_msg("destroy with busy workers took %.3f s, expected < 2 s", dt);
    /* futures outlive the pool and report the cancellation */
    for (int i = 0; i < N; i++) {
        assert_int_equal(pp_future_ready(f[i]), 1);
        assert_rc(pp_future_get(f[i], 0, NULL, NULL), PP_ECANCELED);
        pp_future_free(f[i]);
    }
}

static void test_destroy_idle_pool(void **state) {
    (void)state;
    /* destroy straight after create, nothing submitted */
    pp_pool_t *pool = ppt_pool(2);
    double t0 = ppt_now();
    pp_pool_destroy(pool);
    assert_true(ppt_now() - t0 < 2.0);
}

static void test_initializer_runs_once_per_worker(void **state) {
    (void)state;
    g_init_value = 0;
    g_init_calls = 0;
    int initarg = 1234;
    pp_options_t opt;
    pp_options_init(&opt);
    opt.processes = 2;
    opt.initializer = initializer;
    opt.initarg = &initarg;
    pp_pool_t *pool = NULL;
    assert_rc(pp_pool_create(&pool, &opt), 0);

    enum { N = 40 };
    pp_future_t *f[N];
    for (int i = 0; i < N; i++)
        assert_rc(pp_apply_async(pool, task_init_report, NULL, 0, &f[i]), 0);
    long pids[N];
    int npids = 0;
    for (int i = 0; i < N; i++) {
        const void *d = NULL;
        size_t n = 0;
        assert_rc(pp_future_get(f[i], 30, &d, &n), 0);
        assert_int_equal(n, sizeof(struct init_report));
        struct init_report r;
        memcpy(&r, d, sizeof r);
        assert_true(r.pid != (long)getpid());
        if (r.value != 1234)
            fail_msg("task %d in worker %ld saw init value %d, expected 1234", i, r.pid, r.value);
        if (r.calls != 1)
            fail_msg("initializer ran %d times in worker %ld, expected once", r.calls, r.pid);
        int seen = 0;
        for (int k = 0; k < npids; k++)
            seen |= pids[k] == r.pid;
        if (!seen)
            pids[npids++] = r.pid;
        pp_future_free(f[i]);
    }
    assert_true(npids >= 1 && npids <= 2);
    /* the initializer never ran in the parent */
    assert_int_equal(g_init_value, 0);
    assert_int_equal(g_init_calls, 0);
    ppt_finish(pool);
}

static void test_max_tasks_per_child(void **state) {
    (void)state;
    pp_options_t opt;
    pp_options_init(&opt);
    opt.processes = 1;
    opt.max_tasks_per_child = 2;
    pp_pool_t *pool = NULL;
    assert_rc(pp_pool_create(&pool, &opt), 0);
    assert_int_equal(pp_pool_size(pool), 1);

    enum { N = 10 };
    pp_future_t *f[N];
    for (int i = 0; i < N; i++)
        assert_rc(pp_apply_async(pool, task_getpid, NULL, 0, &f[i]), 0);
    long pids[N];
    int distinct = 0;
    for (int i = 0; i < N; i++) {
        long pid = ppt_get_long(f[i], 30);
        assert_true(pid != (long)getpid());
        int seen = 0;
        for (int k = 0; k < distinct; k++)
            seen |= pids[k] == pid;
        if (!seen)
            pids[distinct++] = pid;
        pp_future_free(f[i]);
    }
    if (distinct < 5)
        fail_msg("10 tasks with max_tasks_per_child=2 ran in %d distinct workers, expected >= 5",
                 distinct);
    assert_int_equal(pp_pool_size(pool), 1);
    ppt_finish(pool);
}

static void test_size_of_running_pool(void **state) {
    (void)state;
    pp_pool_t *pool = ppt_pool(2);
    assert_int_equal(pp_pool_size(pool), 2);
    /* workers really are distinct processes */
    enum { N = 8 };
    pp_future_t *f[N];
    int ms = 100;
    for (int i = 0; i < N; i++)
        assert_rc(pp_apply_async(pool, task_sleep_ms, &ms, sizeof ms, &f[i]), 0);
    long first = -1;
    int two = 0;
    for (int i = 0; i < N; i++) {
        long pid = ppt_get_long(f[i], 30);
        assert_true(pid != (long)getpid());
        if (first < 0)
            first = pid;
        else if (pid != first)
            two = 1;
        pp_future_free(f[i]);
    }
    if (!two)
        fail_msg("8 tasks of 100 ms on 2 workers all ran in one process (%ld)", first);
    ppt_finish(pool);
}

static void test_worker_signal_state(void **state) {
    (void)state;
    /* cmocka has its own SIGSEGV handler installed while a test runs; a
     * worker forked now must not keep it (pitfalls: reset dispositions in
     * the child), and workers ignore SIGINT (design: the parent decides). */
    pp_pool_t *pool = ppt_pool(2);
    void *r = NULL;
    size_t n = 0;
    assert_rc(pp_apply(pool, task_signal_state, NULL, 0, &r, &n), 0);
    assert_int_equal(n, 2 * sizeof(int));
    int st[2];
    memcpy(st, r, sizeof st);
    free(r);
    if (st[0] != 1)
        fail_msg("SIGINT is not ignored in the worker");
#ifndef PPT_ASAN
    if (st[1] != 1)
        fail_msg("the worker kept a SIGSEGV handler inherited from the parent (cmocka's)");
#endif
    ppt_finish(pool);
}

static void test_task_timeout(void **state) {
    (void)state;
    pp_options_t opt;
    pp_options_init(&opt);
    opt.processes = 2;
    opt.task_timeout = 0.3;
    pp_pool_t *pool = NULL;
    assert_rc(pp_pool_create(&pool, &opt), 0);
    int ms = 5000;
    pp_future_t *slow = NULL, *quick[10];
    double t0 = ppt_now();
    assert_rc(pp_apply_async(pool, task_sleep_ms, &ms, sizeof ms, &slow), 0);
    for (long i = 0; i < 10; i++)
        assert_rc(pp_apply_async(pool, ppt_task_double, &i, sizeof i, &quick[i]), 0);
    const void *d = (const void *)&d;
    size_t n = 3;
    assert_rc(pp_future_get(slow, 30, &d, &n), PP_ETASKTIMEOUT);
    double dt = ppt_now() - t0;
    assert_null(d);
    assert_int_equal(n, 0);
    if (dt < 0.25 || dt > 4.0)
        fail_msg("a 0.3 s task timeout fired after %.3f s", dt);
    assert_rc(pp_future_task_status(slow), PP_ETASKTIMEOUT);
    assert_non_null(pp_future_error(slow));
    pp_future_free(slow);
    for (long i = 0; i < 10; i++) {
        assert_int_equal(ppt_get_long(quick[i], 30), 2 * i);
        pp_future_free(quick[i]);
    }
    /* the pool goes on with its size */
    assert_int_equal(pp_pool_size(pool), 2);
    long v = 8, *r = NULL;
    assert_rc(pp_apply(pool, ppt_task_double, &v, sizeof v, (void **)&r, &n), 0);
    assert_int_equal(*r, 16);
    free(r);
    ppt_finish(pool);
}

int main(void) {
    ppt_hang_guard(60);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_options_init_defaults),
        cmocka_unit_test(test_create_null_opt),
        cmocka_unit_test(test_create_processes_3),
        cmocka_unit_test(test_create_processes_0_is_cpu_count),
        cmocka_unit_test(test_create_invalid_options),
        cmocka_unit_test(test_null_pool_arguments),
        cmocka_unit_test(test_join_before_close),
        cmocka_unit_test(test_close_twice_and_submit_after_close),
        cmocka_unit_test(test_close_runs_queued_work),
        cmocka_unit_test(test_terminate_busy_is_fast),
        cmocka_unit_test(test_destroy_without_close_is_fast),
        cmocka_unit_test(test_destroy_idle_pool),
        cmocka_unit_test(test_initializer_runs_once_per_worker),
        cmocka_unit_test(test_max_tasks_per_child),
        cmocka_unit_test(test_size_of_running_pool),
        cmocka_unit_test(test_worker_signal_state),
        cmocka_unit_test(test_task_timeout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
