/* test_crash.c - workers that die mid-task: the task fails PP_EWORKER with a
 * message naming the signal or exit status, other tasks are unaffected, the
 * pool goes on with the same size. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <signal.h>
#include <sys/resource.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "procpool.h"
#include "helpers.h"

/* ---- tasks ---------------------------------------------------------------- */

/* cmocka installs its own SIGSEGV handler around each test, and a worker
 * forked inside a test may inherit it (a worker that jumped back into the
 * cmocka runner would be a disaster). The crash tasks restore the default
 * action first so that they test the pool, not cmocka. */
static int task_segv_null_write(const void *arg, size_t len, pp_buf_t *out) {
    (void)arg;
    (void)len;
    signal(SIGSEGV, SIG_DFL);
    pp_buf_append(out, "partial", 7);
    volatile int *volatile p = NULL;
    *p = 1;
    return 0;
}

static int task_segv_raise(const void *arg, size_t len, pp_buf_t *out) {
    (void)arg;
    (void)len;
    (void)out;
    signal(SIGSEGV, SIG_DFL);
    raise(SIGSEGV);
    return 0;
}

static int task_sigkill(const void *arg, size_t len, pp_buf_t *out) {
    (void)arg;
    (void)len;
    (void)out;
    raise(SIGKILL);
    return 0;
}

static int task_exit3(const void *arg, size_t len, pp_buf_t *out) {
    (void)arg;
    (void)len;
    (void)out;
    _exit(3);
}

static int task_slow_then_ok(const void *arg, size_t len, pp_buf_t *out) {
    ppt_sleep_ms(20);
    return ppt_task_double(arg, len, out);
}

/* ---- helpers -------------------------------------------------------------- */

static void check_crash_future(pp_future_t *f, const char *what, const char *needle) {
    const void *d = (const void *)&d;
    size_t n = 5;
    int rc = pp_future_get(f, 30, &d, &n);
    if (rc != PP_EWORKER)
        fail_msg("%s: pp_future_get returned %d (%s), expected PP_EWORKER", what, rc,
                 pp_err_name(rc));
    assert_null(d);
    assert_int_equal(n, 0);
    assert_int_equal(pp_future_ready(f), 1);
    assert_int_equal(pp_future_successful(f), 0);
    assert_rc(pp_future_task_status(f), PP_EWORKER);
    const char *e = pp_future_error(f);
    if (!e)
        fail_msg("%s: pp_future_error is NULL", what);
    if (!strstr(e, needle))
        fail_msg("%s: error \"%s\" does not mention \"%s\"", what, e, needle);
}

/* 50 quick tasks, the crash, 50 quick tasks; all quick ones must succeed. */
static void crash_among_others(pp_task_fn crash, const char *what, const char *needle) {
    pp_pool_t *pool = ppt_pool(2);
    enum { N = 50 };
    pp_future_t *before[N], *after[N], *cf = NULL;
    for (long i = 0; i < N; i++)
        assert_rc(pp_apply_async(pool, ppt_task_double, &i, sizeof i, &before[i]), 0);
    assert_rc(pp_apply_async(pool, crash, NULL, 0, &cf), 0);
    for (long i = 0; i < N; i++) {
        long v = 1000 + i;
        assert_rc(pp_apply_async(pool, ppt_task_double, &v, sizeof v, &after[i]), 0);
    }
    check_crash_future(cf, what, needle);
    for (long i = 0; i < N; i++) {
        assert_int_equal(ppt_get_long(before[i], 30), 2 * i);
        assert_int_equal(ppt_get_long(after[i], 30), 2 * (1000 + i));
        pp_future_free(before[i]);
        pp_future_free(after[i]);
    }
    pp_future_free(cf);

    /* the pool goes on, same size */
    assert_int_equal(pp_pool_size(pool), 2);
    for (long i = 0; i < 10; i++) {
        void *r = NULL;
        size_t n = 0;
        assert_rc(pp_apply(pool, ppt_task_double, &i, sizeof i, &r, &n), 0);
        assert_int_equal(n, sizeof(long));
        assert_int_equal(*(long *)r, 2 * i);
        free(r);
    }

    /* pp_apply of a crashing task */
    void *r = (void *)&r;
    size_t n = 3;
    assert_rc(pp_apply(pool, crash, NULL, 0, &r, &n), PP_EWORKER);
    assert_null(r);
    assert_int_equal(n, 0);
    assert_int_equal(pp_pool_size(pool), 2);
    long v = 21;
    r = NULL;
    assert_rc(pp_apply(pool, ppt_task_double, &v, sizeof v, &r, &n), 0);
    assert_int_equal(*(long *)r, 42);
    free(r);
    ppt_finish(pool);
}

/* ---- tests ---------------------------------------------------------------- */

/* Under AddressSanitizer a NULL write is caught by ASan's own SEGV handler
 * (it ignores our SIG_DFL), which reports and exits with status 1: the
 * worker still dies, but not by SIGSEGV. */
static void test_segv_null_write(void **state) {
    (void)state;
#ifdef PPT_ASAN
    crash_among_others(task_segv_null_write, "NULL write (ASan)", "");
#else
    crash_among_others(task_segv_null_write, "NULL write", "SIGSEGV");
#endif
}

static void test_segv_raise(void **state) {
    (void)state;
    crash_among_others(task_segv_raise, "raise(SIGSEGV)", "SIGSEGV");
}

static void test_abort(void **state) {
    (void)state;
    crash_among_others(ppt_task_abort, "abort()", "SIGABRT");
}

static void test_sigkill(void **state) {
    (void)state;
    crash_among_others(task_sigkill, "raise(SIGKILL)", "SIGKILL");
}

static void test_exit3(void **state) {
    (void)state;
    crash_among_others(task_exit3, "_exit(3)", "3");
}

static void test_exit3_message(void **state) {
    (void)state;
    pp_pool_t *pool = ppt_pool(2);
    pp_future_t *f = NULL;
    assert_rc(pp_apply_async(pool, task_exit3, NULL, 0, &f), 0);
    check_crash_future(f, "_exit(3)", "3");
    /* the message should be about an exit, not a signal */
    const char *e = pp_future_error(f);
    assert_null(strstr(e, "SIG"));
    pp_future_free(f);
    ppt_finish(pool);
}

static void test_one_worker_requeue(void **state) {
    (void)state;
    pp_options_t opt;
    pp_options_init(&opt);
    opt.processes = 1;
    pp_pool_t *pool = NULL;
    assert_rc(pp_pool_create(&pool, &opt), 0);

    pp_future_t *cf = NULL, *ok[3];
    assert_rc(pp_apply_async(pool, task_segv_raise, NULL, 0, &cf), 0);
    for (long i = 0; i < 3; i++)
        assert_rc(pp_apply_async(pool, task_slow_then_ok, &i, sizeof i, &ok[i]), 0);
    check_crash_future(cf, "1 worker, raise(SIGSEGV)", "SIGSEGV");
    for (long i = 0; i < 3; i++) {
        assert_int_equal(ppt_get_long(ok[i], 30), 2 * i);
        pp_future_free(ok[i]);
    }
    pp_future_free(cf);

    /* the same with the other deaths, in one run */
    pp_task_fn crashes[] = {ppt_task_abort, task_sigkill, task_exit3};
    const char *needles[] = {"SIGABRT", "SIGKILL", "3"};
    for (int c = 0; c < 3; c++) {
        assert_rc(pp_apply_async(pool, crashes[c], NULL, 0, &cf), 0);
        for (long i = 0; i < 3; i++) {
            long v = 100 * c + i;
            assert_rc(pp_apply_async(pool, ppt_task_double, &v, sizeof v, &ok[i]), 0);
        }
        check_crash_future(cf, "1 worker", needles[c]);
        for (long i = 0; i < 3; i++) {
            assert_int_equal(ppt_get_long(ok[i], 30), 2 * (100 * c + i));
            pp_future_free(ok[i]);
        }
        pp_future_free(cf);
    }
    assert_int_equal(pp_pool_size(pool), 1);
    ppt_finish(pool);
}

static void test_crash_with_callback(void **state) {
    (void)state;
    /* a crash also completes the future for close+join: join must not hang */
    pp_pool_t *pool = ppt_pool(2);
    pp_future_t *f = NULL;
    assert_rc(pp_apply_async(pool, ppt_task_abort, NULL, 0, &f), 0);
    assert_rc(pp_pool_close(pool), 0);
    assert_rc(pp_pool_join(pool), 0);
    assert_int_equal(pp_future_ready(f), 1);
    assert_rc(pp_future_get(f, 0, NULL, NULL), PP_EWORKER);
    pp_future_free(f);
    pp_pool_destroy(pool);
}

int main(void) {
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core); /* crashing workers leave no core files */
    ppt_hang_guard(60);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_segv_null_write),
        cmocka_unit_test(test_segv_raise),
        cmocka_unit_test(test_abort),
        cmocka_unit_test(test_sigkill),
        cmocka_unit_test(test_exit3),
        cmocka_unit_test(test_exit3_message),
        cmocka_unit_test(test_one_worker_requeue),
        cmocka_unit_test(test_crash_with_callback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
