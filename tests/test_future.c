/* test_future.c - futures: get/wait/ready/successful/error/status,
 * done-callbacks, lifetime after the pool. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "procpool.h"
#include "helpers.h"

/* ---- tasks ---------------------------------------------------------------- */

static int task_text(const void *arg, size_t len, pp_buf_t *out) {
    /* echoes "<arg>!" */
    int rc = pp_buf_append(out, arg, len);
    if (rc)
        return rc;
    return pp_buf_append(out, "!", 1);
}

static int task_fail_bad7(const void *arg, size_t len, pp_buf_t *out) {
    (void)arg;
    (void)len;
    /* bytes written before the failure are discarded */
    pp_buf_append(out, "partial", 7);
    return pp_buf_fail(out, "bad %d", 7);
}

static int task_return_42(const void *arg, size_t len, pp_buf_t *out) {
    (void)arg;
    (void)len;
    pp_buf_append(out, "xx", 2);
    return 42;
}

static int task_return_minus1(const void *arg, size_t len, pp_buf_t *out) {
    (void)arg;
    (void)len;
    (void)out;
    return -1;
}

static int task_fail_long_message(const void *arg, size_t len, pp_buf_t *out) {
    (void)arg;
    (void)len;
    char big[3000];
    memset(big, 'm', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    return pp_buf_fail(out, "%s", big);
}

static int task_empty(const void *arg, size_t len, pp_buf_t *out) {
    (void)arg;
    (void)len;
    (void)out;
    return 0;
}

/* i: even -> success with i*i, odd -> failure "odd <i>" */
static int task_even_ok(const void *arg, size_t len, pp_buf_t *out) {
    long v;
    if (len != sizeof v)
        return pp_buf_fail(out, "bad len");
    memcpy(&v, arg, sizeof v);
    if (v % 2)
        return pp_buf_fail(out, "odd %ld", v);
    v *= v;
    return pp_buf_append(out, &v, sizeof v);
}

/* ---- basic get/wait ------------------------------------------------------ */

static void test_apply_async_get(void **state) {
    (void)state;
    pp_pool_t *pool = ppt_pool(2);
    long v = 12;
    pp_future_t *f = NULL;
    assert_rc(pp_apply_async(pool, ppt_task_square, &v, sizeof v, &f), 0);
    assert_non_null(f);
    const void *d = NULL;
    size_t n = 0;
    assert_rc(pp_future_get(f, 30, &d, &n), 0);
    assert_non_null(d);
    assert_int_equal(n, sizeof(long));
    long r;
    memcpy(&r, d, sizeof r);
    assert_int_equal(r, 144);
    assert_int_equal(pp_future_ready(f), 1);
    assert_int_equal(pp_future_successful(f), 1);
    assert_null(pp_future_error(f));
    assert_rc(pp_future_task_status(f), 0);
    /* get again: the same data */
    const void *d2 = NULL;
    size_t n2 = 0;
    assert_rc(pp_future_get(f, 0, &d2, &n2), 0);
    assert_int_equal(n2, n);
    assert_memory_equal(d2, &r, sizeof r);
    pp_future_free(f);

    /* text result */
    assert_rc(pp_apply_async(pool, task_text, "hello", 5, &f), 0);
    assert_rc(pp_future_get(f, 30, &d, &n), 0);
    assert_int_equal(n, 6);
    assert_memory_equal(d, "hello!", 6);
    pp_future_free(f);
    ppt_finish(pool);
}

static void test_get_data_len_null(void **state) {
    (void)state;
    pp_pool_t *pool = ppt_pool(2);
    long v = 3;
    pp_future_t *f = NULL;
    assert_rc(pp_apply_async(pool, ppt_task_square, &v, sizeof v, &f), 0);
    assert_rc(pp_future_get(f, 30, NULL, NULL), 0);
    const void *d = NULL;
    assert_rc(pp_future_get(f, 30, &d, NULL), 0);
    assert_non_null(d);
    assert_int_equal(*(const long *)d, 9);
    size_t n = 0;
    assert_rc(pp_future_get(f, 30, NULL, &n), 0);
    assert_int_equal(n, sizeof(long));
    pp_future_free(f);

    /* failing future with NULL data/len */
    assert_rc(pp_apply_async(pool, task_fail_bad7, NULL, 0, &f), 0);
    assert_rc(pp_future_get(f, 30, NULL, NULL), PP_ETASK);
    pp_future_free(f);
    ppt_finish(pool);
}

static void test_empty_result(void **state) {
    (void)state;
    pp_pool_t *pool = ppt_pool(2);
    pp_future_t *f = NULL;
    assert_rc(pp_apply_async(pool, task_empty, NULL, 0, &f), 0);
    const void *d = NULL;
    size_t n = 99;
    assert_rc(pp_future_get(f, 30, &d, &n), 0);
    assert_non_null(d); /* never NULL on success, even for 0 bytes */
    assert_int_equal(n, 0);
    pp_future_free(f);
    ppt_finish(pool);
}

static void test_wait_timeout_then_done(void **state) {
    (void)state;
    pp_pool_t *pool = ppt_pool(2);
    int ms = 500;
    pp_future_t *f = NULL;
    assert_rc(pp_apply_async(pool, ppt_task_sleep_ms, &ms, sizeof ms, &f), 0);

    assert_rc(pp_future_wait(f, 0), -ETIMEDOUT);
    double t0 = ppt_now();
    assert_rc(pp_future_wait(f, 0.05), -ETIMEDOUT);
    double dt = ppt_now() - t0;
    if (dt < 0.04)
        fail_msg("pp_future_wait(f, 0.05) returned -ETIMEDOUT after only %.4f s", dt);

    /* pending state */
    assert_int_equal(pp_future_ready(f), 0);
    assert_int_equal(pp_future_successful(f), 0); /* pending: not successful, not an error */
    assert_null(pp_future_error(f));
    assert_rc(pp_future_task_status(f), -EINVAL);
    const void *d = (const void *)&d;
    size_t n = 5;
    assert_rc(pp_future_get(f, 0, &d, &n), -ETIMEDOUT);
    assert_null(d);
    assert_int_equal(n, 0);

    /* and it can be waited for again */
    assert_rc(pp_future_wait(f, 30), 0);
    assert_int_equal(pp_future_ready(f), 1);
    assert_int_equal(pp_future_successful(f), 1);
    assert_rc(pp_future_wait(f, 0), 0);
    assert_int_equal(ppt_get_long(f, 0), 500);
    pp_future_free(f);

    /* wait forever (< 0) */
    ms = 50;
    assert_rc(pp_apply_async(pool, ppt_task_sleep_ms, &ms, sizeof ms, &f), 0);
    assert_rc(pp_future_wait(f, -1), 0);
    assert_int_equal(pp_future_ready(f), 1);
    pp_future_free(f);
    ppt_finish(pool);
}

/* ---- failures ------------------------------------------------------------ */

static void test_task_fail_message(void **state) {
    (void)state;
    pp_pool_t *pool = ppt_pool(2);
    pp_future_t *f = NULL;
    assert_rc(pp_apply_async(pool, task_fail_bad7, NULL, 0, &f), 0);
    const void *d = (const void *)&d;
    size_t n = 5;
    assert_rc(pp_future_get(f, 30, &d, &n), PP_ETASK);
    assert_null(d);
    assert_int_equal(n, 0);
    assert_int_equal(pp_future_ready(f), 1);
    assert_int_equal(pp_future_successful(f), 0);
    assert_non_null(pp_future_error(f));
    assert_string_equal(pp_future_error(f), "bad 7");
    assert_rc(pp_future_task_status(f), 1);
    assert_rc(pp_future_wait(f, 0), 0); /* done, even though it failed */
    pp_future_free(f);

    /* pp_apply reports PP_ETASK with NULL result */
    void *r = (void *)&r;
    size_t rn = 9;
    assert_rc(pp_apply(pool, task_fail_bad7, NULL, 0, &r, &rn), PP_ETASK);
    assert_null(r);
    assert_int_equal(rn, 0);
    ppt_finish(pool);
}

static void test_task_return_status(void **state) {
    (void)state;
    pp_pool_t *pool = ppt_pool(2);
    pp_future_t *f = NULL;
    assert_rc(pp_apply_async(pool, task_return_42, NULL, 0, &f), 0);
    const void *d = (const void *)&d;
    size_t n = 5;
    assert_rc(pp_future_get(f, 30, &d, &n), PP_ETASK);
    assert_null(d);
    assert_int_equal(n, 0);
    assert_rc(pp_future_task_status(f), 42);
    assert_int_equal(pp_future_successful(f), 0);
    pp_future_free(f);

    assert_rc(pp_apply_async(pool, task_return_minus1, NULL, 0, &f), 0);
    assert_rc(pp_future_get(f, 30, NULL, NULL), PP_ETASK);
    assert_rc(pp_future_task_status(f), -1);
    pp_future_free(f);
    ppt_finish(pool);
}

static void test_task_fail_message_truncated(void **state) {
    (void)state;
    pp_pool_t *pool = ppt_pool(2);
    pp_future_t *f = NULL;
    assert_rc(pp_apply_async(pool, task_fail_long_message, NULL, 0, &f), 0);
    assert_rc(pp_future_get(f, 30, NULL, NULL), PP_ETASK);
    const char *e = pp_future_error(f);
    assert_non_null(e);
    assert_int_equal(strlen(e), 1023);
    for (size_t i = 0; i < 1023; i++)
        if (e[i] != 'm')
            fail_msg("error message byte %zu is 0x%02x, expected 'm'", i, (unsigned char)e[i]);
    pp_future_free(f);
    ppt_finish(pool);
}

/* ---- callbacks ------------------------------------------------------------ */

struct cb_state {
    atomic_int calls;
    atomic_int successes;
    atomic_int failures;
    atomic_int bad; /* inconsistencies seen inside the callback */
    atomic_long sum;
    _Atomic(pthread_t) thread; /* the thread of the last call (calls may race: the
                                  callback thread, or the caller when already done) */
    atomic_int was_ready;      /* pp_future_ready() inside the callback */
};

static void cb_count(pp_future_t *f, void *ud) {
    struct cb_state *s = ud;
    atomic_store(&s->thread, pthread_self());
    if (pp_future_ready(f) != 1)
        atomic_fetch_add(&s->bad, 1);
    else
        atomic_store(&s->was_ready, 1);
    int ok = pp_future_successful(f);
    if (ok == 1) {
        const void *d = NULL;
        size_t n = 0;
        if (pp_future_get(f, 0, &d, &n) != 0 || n != sizeof(long))
            atomic_fetch_add(&s->bad, 1);
        else
            atomic_fetch_add(&s->sum, *(const long *)d);
        atomic_fetch_add(&s->successes, 1);
    } else if (ok == 0) {
        if (pp_future_error(f) == NULL)
            atomic_fetch_add(&s->bad, 1);
        atomic_fetch_add(&s->failures, 1);
    } else {
        atomic_fetch_add(&s->bad, 1);
    }
    atomic_fetch_add(&s->calls, 1);
}

static void test_on_done_success_and_failure(void **state) {
    (void)state;
    pp_pool_t *pool = ppt_pool(2);
    struct cb_state s = {0};
    enum { N = 100 };
    pp_future_t *f[N];
    long expect_sum = 0;
    for (long i = 0; i < N; i++) {
        assert_rc(pp_apply_async(pool, task_even_ok, &i, sizeof i, &f[i]), 0);
        assert_rc(pp_future_on_done(f[i], cb_count, &s), 0);
        if (i % 2 == 0)
            expect_sum += i * i;
    }
    assert_rc(pp_pool_close(pool), 0);
    assert_rc(pp_pool_join(pool), 0);
    /* join waits for every callback */
    assert_int_equal(atomic_load(&s.calls), N);
    assert_int_equal(atomic_load(&s.successes), N / 2);
    assert_int_equal(atomic_load(&s.failures), N / 2);
    assert_int_equal(atomic_load(&s.bad), 0);
    assert_int_equal(atomic_load(&s.sum), expect_sum);
    for (long i = 0; i < N; i++) {
        /* a second callback is refused */
        assert_rc(pp_future_on_done(f[i], cb_count, &s), -EBUSY);
        if (i % 2) {
            char want[32];
            snprintf(want, sizeof want, "odd %ld", i);
            assert_string_equal(pp_future_error(f[i]), want);
        }
        pp_future_free(f[i]);
    }
    /* exactly once: nothing more was called */
    assert_int_equal(atomic_load(&s.calls), N);
    pp_pool_destroy(pool);
}

static void test_on_done_after_completion_runs_now(void **state) {
    (void)state;
    pp_pool_t *pool = ppt_pool(2);
    struct cb_state s = {0};
    long v = 7;
    pp_future_t *f = NULL;
    assert_rc(pp_apply_async(pool, ppt_task_square, &v, sizeof v, &f), 0);
    assert_rc(pp_future_wait(f, 30), 0);
    atomic_store(&s.thread, (pthread_t)0);
    assert_rc(pp_future_on_done(f, cb_count, &s), 0);
    /* ran at once, in this thread, before on_done returned */
    assert_int_equal(atomic_load(&s.calls), 1);
    assert_true(pthread_equal(atomic_load(&s.thread), pthread_self()));
    assert_int_equal(atomic_load(&s.sum), 49);
    assert_int_equal(atomic_load(&s.bad), 0);
    assert_rc(pp_future_on_done(f, cb_count, &s), -EBUSY);
    assert_int_equal(atomic_load(&s.calls), 1);
    pp_future_free(f);

    /* a failed future too */
    struct cb_state s2 = {0};
    assert_rc(pp_apply_async(pool, task_fail_bad7, NULL, 0, &f), 0);
    assert_rc(pp_future_wait(f, 30), 0);
    assert_rc(pp_future_on_done(f, cb_count, &s2), 0);
    assert_int_equal(atomic_load(&s2.calls), 1);
    assert_int_equal(atomic_load(&s2.failures), 1);
    assert_true(pthread_equal(atomic_load(&s2.thread), pthread_self()));
    pp_future_free(f);
    ppt_finish(pool);
}

static void test_on_done_pending_runs_on_other_thread(void **state) {
    (void)state;
    pp_pool_t *pool = ppt_pool(2);
    struct cb_state s = {0};
    int ms = 200;
    pp_future_t *f = NULL;
    assert_rc(pp_apply_async(pool, ppt_task_sleep_ms, &ms, sizeof ms, &f), 0);
    assert_rc(pp_future_on_done(f, cb_count, &s), 0);
    assert_rc(pp_future_on_done(f, cb_count, &s), -EBUSY); /* twice while pending */
    assert_int_equal(atomic_load(&s.calls), 0);
    /* wait for the callback without get() (which could run it here) */
    for (int i = 0; i < 3000 && atomic_load(&s.calls) == 0; i++)
        ppt_sleep_ms(10);
    assert_int_equal(atomic_load(&s.calls), 1);
    assert_false(pthread_equal(atomic_load(&s.thread), pthread_self()));
    assert_int_equal(atomic_load(&s.was_ready), 1);
    assert_int_equal(atomic_load(&s.sum), 200);
    pp_future_free(f);
    ppt_finish(pool);
}

static atomic_int g_ff_count;
static atomic_long g_ff_sum;
static atomic_int g_ff_bad;

static void cb_fire_and_forget(pp_future_t *f, void *ud) {
    (void)ud;
    const void *d = NULL;
    size_t n = 0;
    if (pp_future_get(f, 0, &d, &n) == 0 && n == sizeof(long))
        atomic_fetch_add(&g_ff_sum, *(const long *)d);
    else
        atomic_fetch_add(&g_ff_bad, 1);
    atomic_fetch_add(&g_ff_count, 1);
    pp_future_free(f); /* last act */
}

static void test_fire_and_forget(void **state) {
    (void)state;
    atomic_store(&g_ff_count, 0);
    atomic_store(&g_ff_sum, 0);
    atomic_store(&g_ff_bad, 0);
    pp_pool_t *pool = ppt_pool(2);
    enum { N = 1000 };
    long expect = 0;
    for (long i = 0; i < N; i++) {
        pp_future_t *f = NULL;
        assert_rc(pp_apply_async(pool, ppt_task_square, &i, sizeof i, &f), 0);
        assert_rc(pp_future_on_done(f, cb_fire_and_forget, NULL), 0);
        /* f may already be freed here */
        expect += i * i;
    }
    assert_rc(pp_pool_close(pool), 0);
    assert_rc(pp_pool_join(pool), 0);
    assert_int_equal(atomic_load(&g_ff_count), N);
    assert_int_equal(atomic_load(&g_ff_bad), 0);
    assert_int_equal(atomic_load(&g_ff_sum), expect);
    pp_pool_destroy(pool);
}

/* ---- lifetime ------------------------------------------------------------- */

static void test_futures_readable_after_destroy(void **state) {
    (void)state;
    pp_pool_t *pool = ppt_pool(2);
    long v = 11;
    pp_future_t *a = NULL, *b = NULL, *c = NULL;
    assert_rc(pp_apply_async(pool, ppt_task_square, &v, sizeof v, &a), 0);
    assert_rc(pp_apply_async(pool, task_text, "abc", 3, &b), 0);
    assert_rc(pp_apply_async(pool, task_fail_bad7, NULL, 0, &c), 0);
    const void *da = NULL;
    size_t na = 0;
    assert_rc(pp_future_get(a, 30, &da, &na), 0); /* fetched before destroy */
    assert_rc(pp_future_wait(b, 30), 0);          /* only waited */
    assert_rc(pp_future_wait(c, 30), 0);
    ppt_finish(pool);

    /* data fetched before destroy still valid */
    assert_int_equal(na, sizeof(long));
    assert_int_equal(*(const long *)da, 121);
    /* and everything can still be read */
    assert_int_equal(ppt_get_long(a, 0), 121);
    const void *db = NULL;
    size_t nb = 0;
    assert_rc(pp_future_get(b, 0, &db, &nb), 0);
    assert_int_equal(nb, 4);
    assert_memory_equal(db, "abc!", 4);
    assert_int_equal(pp_future_ready(b), 1);
    assert_int_equal(pp_future_successful(b), 1);
    assert_rc(pp_future_get(c, 0, NULL, NULL), PP_ETASK);
    assert_string_equal(pp_future_error(c), "bad 7");
    assert_rc(pp_future_task_status(c), 1);
    /* a callback registered now runs at once */
    struct cb_state s = {0};
    assert_rc(pp_future_on_done(b, cb_count, &s), 0);
    assert_int_equal(atomic_load(&s.calls), 1);
    pp_future_free(a);
    pp_future_free(b);
    pp_future_free(c);
}

static void test_free_pending_future(void **state) {
    (void)state;
    pp_pool_t *pool = ppt_pool(2);
    int ms = 300;
    for (int i = 0; i < 4; i++) {
        pp_future_t *f = NULL;
        assert_rc(pp_apply_async(pool, ppt_task_sleep_ms, &ms, sizeof ms, &f), 0);
        pp_future_free(f); /* still pending */
    }
    /* the pool goes on */
    long v = 6;
    void *r = NULL;
    size_t n = 0;
    assert_rc(pp_apply(pool, ppt_task_square, &v, sizeof v, &r, &n), 0);
    assert_int_equal(n, sizeof(long));
    assert_int_equal(*(long *)r, 36);
    free(r);
    ppt_finish(pool);

    /* freeing pending futures then destroying at once is safe too */
    pool = ppt_pool(2);
    for (int i = 0; i < 4; i++) {
        pp_future_t *f = NULL;
        assert_rc(pp_apply_async(pool, ppt_task_sleep_ms, &ms, sizeof ms, &f), 0);
        pp_future_free(f);
    }
    pp_pool_destroy(pool);
    pp_future_free(NULL); /* no-op */
}

/* ---- NULL arguments -------------------------------------------------------- */

static void test_null_arguments(void **state) {
    (void)state;
    assert_rc(pp_future_wait(NULL, 0), -EINVAL);
    assert_rc(pp_future_wait(NULL, -1), -EINVAL);
    assert_int_equal(pp_future_ready(NULL), 0);
    assert_int_equal(pp_future_successful(NULL), 0);
    assert_rc(pp_future_task_status(NULL), -EINVAL);
    assert_null(pp_future_error(NULL));
    const void *d = (const void *)&d;
    size_t n = 5;
    assert_rc(pp_future_get(NULL, 0, &d, &n), -EINVAL);
    assert_null(d);
    assert_int_equal(n, 0);
    assert_rc(pp_future_get(NULL, -1, NULL, NULL), -EINVAL);
    struct cb_state s = {0};
    assert_rc(pp_future_on_done(NULL, cb_count, &s), -EINVAL);
    pp_future_free(NULL);

    pp_pool_t *pool = ppt_pool(2);
    pp_future_t *f = (pp_future_t *)&f;
    long v = 2;
    assert_rc(pp_apply_async(NULL, ppt_task_square, &v, sizeof v, &f), -EINVAL);
    assert_null(f);
    f = (pp_future_t *)&f;
    assert_rc(pp_apply_async(pool, NULL, &v, sizeof v, &f), -EINVAL);
    assert_null(f);
    f = (pp_future_t *)&f;
    assert_rc(pp_apply_async(pool, ppt_task_square, NULL, 8, &f), -EINVAL);
    assert_null(f);
    assert_rc(pp_apply_async(pool, ppt_task_square, &v, sizeof v, NULL), -EINVAL);

    assert_rc(pp_apply_async(pool, ppt_task_square, &v, sizeof v, &f), 0);
    assert_rc(pp_future_on_done(f, NULL, NULL), -EINVAL);
    assert_rc(pp_future_wait(f, 30), 0);
    assert_rc(pp_future_on_done(f, NULL, NULL), -EINVAL);
    /* the refused NULL callback did not use up the slot */
    assert_rc(pp_future_on_done(f, cb_count, &s), 0);
    assert_int_equal(atomic_load(&s.calls), 1);
    pp_future_free(f);
    ppt_finish(pool);
}

int main(void) {
    ppt_hang_guard(60);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_apply_async_get),
        cmocka_unit_test(test_get_data_len_null),
        cmocka_unit_test(test_empty_result),
        cmocka_unit_test(test_wait_timeout_then_done),
        cmocka_unit_test(test_task_fail_message),
        cmocka_unit_test(test_task_return_status),
        cmocka_unit_test(test_task_fail_message_truncated),
        cmocka_unit_test(test_on_done_success_and_failure),
        cmocka_unit_test(test_on_done_after_completion_runs_now),
        cmocka_unit_test(test_on_done_pending_runs_on_other_thread),
        cmocka_unit_test(test_fire_and_forget),
        cmocka_unit_test(test_futures_readable_after_destroy),
        cmocka_unit_test(test_free_pending_future),
        cmocka_unit_test(test_null_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
