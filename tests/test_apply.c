/* test_apply.c - pp_apply / pp_apply_async round trips, argument copying,
 * argument validation, result and argument sizes, pp_buf_*, many threads. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "procpool.h"
#include "helpers.h"

/* Expected byte j of the result for (index, size): depends on all three so
 * that a shifted, truncated or swapped buffer is noticed. */
static inline uint8_t pattern_byte(uint64_t index, uint64_t size, uint64_t j) {
    uint64_t x = j * 2654435761u + (j >> 12) * 40503u + index * 977u + size * 131u;
    return (uint8_t)(x ^ (x >> 8) ^ (x >> 19));
}

static void fill_pattern(uint8_t *p, uint64_t index, uint64_t size) {
    for (uint64_t j = 0; j < size; j++)
        p[j] = pattern_byte(index, size, j);
}

struct pat_arg {
    uint64_t index;
    uint64_t size;
};

/* ---- tasks ---------------------------------------------------------------- */

static int task_pattern(const void *arg, size_t len, pp_buf_t *out) {
    struct pat_arg a;
    if (len != sizeof a)
        return pp_buf_fail(out, "bad len %zu", len);
    memcpy(&a, arg, sizeof a);
    if (a.size == 0)
        return 0;
    uint8_t *p = pp_buf_reserve(out, a.size);
    if (!p)
        return pp_buf_fail(out, "pp_buf_reserve(%llu) failed: errno %d", (unsigned long long)a.size,
                           errno);
    fill_pattern(p, a.index, a.size);
    return 0;
}

static int task_echo(const void *arg, size_t len, pp_buf_t *out) {
    return pp_buf_append(out, arg, len);
}

/* returns arg_len and whether arg was NULL */
static int task_arginfo(const void *arg, size_t len, pp_buf_t *out) {
    uint64_t info[2] = {len, arg == NULL};
    return pp_buf_append(out, info, sizeof info);
}

/* builds the result with many small appends: count records of 13 bytes */
static int task_many_appends(const void *arg, size_t len, pp_buf_t *out) {
    uint32_t count;
    if (len != sizeof count)
        return pp_buf_fail(out, "bad len");
    memcpy(&count, arg, sizeof count);
    for (uint32_t i = 0; i < count; i++) {
        uint8_t rec[13];
        for (int k = 0; k < 13; k++)
            rec[k] = (uint8_t)(i * 13 + (uint32_t)k);
        int rc = pp_buf_append(out, rec, sizeof rec);
        if (rc)
            return pp_buf_fail(out, "append %u failed: %d", i, rc);
        if (i % 1000 == 999) {
            /* mix in reserve */
            uint8_t *p = pp_buf_reserve(out, 3);
            if (!p)
                return pp_buf_fail(out, "reserve failed");
            p[0] = 'R';
            p[1] = (uint8_t)i;
            p[2] = (uint8_t)(i >> 8);
        }
    }
    return 0;
}

/* checks the pp_buf_* argument validation inside a worker; returns codes */
static int task_buf_invalid(const void *arg, size_t len, pp_buf_t *out) {
    (void)arg;
    (void)len;
    int32_t codes[4];
    codes[0] = pp_buf_append(NULL, "x", 1);
    codes[1] = pp_buf_append(out, NULL, 5);
    errno = 0;
    void *p = pp_buf_reserve(NULL, 4);
    codes[2] = (p == NULL) ? -errno : 12345;
    codes[3] = pp_buf_append(out, NULL, 0);
    return pp_buf_append(out, codes, sizeof codes);
}

/* ---- tests ---------------------------------------------------------------- */

static void test_apply_round_trip(void **state) {
    (void)state;
    pp_pool_t *pool = ppt_pool(2);
    for (long i = -5; i < 50; i++) {
        void *r = NULL;
        size_t n = 0;
        assert_rc(pp_apply(pool, ppt_task_double, &i, sizeof i, &r, &n), 0);
        assert_non_null(r);
        assert_int_equal(n, sizeof(long));
        long v;
        memcpy(&v, r, sizeof v);
        assert_int_equal(v, 2 * i);
        free(r);
    }
    ppt_finish(pool);
}

static void test_arg_copied_at_submission(void **state) {
    (void)state;
    pp_pool_t *pool = ppt_pool(2);
    enum { N = 50 };
    pp_future_t *f[N];
    long buf;
    for (long i = 0; i < N; i++) {
        buf = 1000 + i;
        assert_rc(pp_apply_async(pool, ppt_task_double, &buf, sizeof buf, &f[i]), 0);
        buf = -1; /* reuse the buffer immediately */
    }
    /* a big argument, overwritten right away */
    size_t big = 1 << 20;
    uint8_t *arg = malloc(big);
    assert_non_null(arg);
    fill_pattern(arg, 3, big);
    pp_future_t *g = NULL;
    assert_rc(pp_apply_async(pool, task_echo, arg, big, &g), 0);
    memset(arg, 0, big);
    for (long i = 0; i < N; i++) {
        assert_int_equal(ppt_get_long(f[i], 30), 2 * (1000 + i));
        pp_future_free(f[i]);
    }
    const void *d = NULL;
    size_t n = 0;
    assert_rc(pp_future_get(g, 30, &d, &n), 0);
    assert_int_equal(n, big);
    fill_pattern(arg, 3, big);
    assert_true(memcmp(d, arg, big) == 0);
    pp_future_free(g);
    free(arg);
    ppt_finish(pool);
}

static void test_apply_invalid_arguments(void **state) {
    (void)state;
    pp_pool_t *pool = ppt_pool(2);
    long v = 4;
    void *r;
    size_t n;

    r = (void *)&r;
    n = 7;
    assert_rc(pp_apply(NULL, ppt_task_double, &v, sizeof v, &r, &n), -EINVAL);
    assert_null(r);
    assert_int_equal(n, 0);

    r = (void *)&r;
    n = 7;
    assert_rc(pp_apply(pool, NULL, &v, sizeof v, &r, &n), -EINVAL);
    assert_null(r);
    assert_int_equal(n, 0);

    r = (void *)&r;
    n = 7;
    assert_rc(pp_apply(pool, ppt_task_double, NULL, 8, &r, &n), -EINVAL);
    assert_null(r);
    assert_int_equal(n, 0);

    n = 7;
    assert_rc(pp_apply(pool, ppt_task_double, &v, sizeof v, NULL, &n), -EINVAL);
    assert_int_equal(n, 0);

    r = (void *)&r;
    assert_rc(pp_apply(pool, ppt_task_double, &v, sizeof v, &r, NULL), -EINVAL);
    assert_null(r);

    assert_rc(pp_apply(pool, ppt_task_double, &v, sizeof v, NULL, NULL), -EINVAL);

    /* NULL arg with length 0 is fine */
    r = NULL;
    n = 0;
    assert_rc(pp_apply(pool, task_arginfo, NULL, 0, &r, &n), 0);
    assert_int_equal(n, 2 * sizeof(uint64_t));
    assert_int_equal(((uint64_t *)r)[0], 0);
    free(r);

    /* the pool still works */
    r = NULL;
    assert_rc(pp_apply(pool, ppt_task_double, &v, sizeof v, &r, &n), 0);
    assert_int_equal(*(long *)r, 8);
    free(r);
    ppt_finish(pool);
}

static void check_pattern_result(pp_pool_t *pool, uint64_t index, uint64_t size, int use_async) {
    struct pat_arg a = {index, size};
    void *r = NULL;
    size_t n = 12345;
    pp_future_t *f = NULL;
    const void *d = NULL;
    if (use_async) {
        assert_rc(pp_apply_async(pool, task_pattern, &a, sizeof a, &f), 0);
        int rc = pp_future_get(f, 30, &d, &n);
        if (rc != 0)
            fail_msg("size %llu: pp_future_get returned %d (%s): %s", (unsigned long long)size, rc,
                     pp_err_name(rc), pp_future_error(f) ? pp_future_error(f) : "");
    } else {
        int rc = pp_apply(pool, task_pattern, &a, sizeof a, &r, &n);
        if (rc != 0)
            fail_msg("size %llu: pp_apply returned %d (%s)", (unsigned long long)size, rc,
                     pp_err_name(rc));
        d = r;
    }
    assert_non_null(d);
    if (n != size)
        fail_msg("size %llu: result has %zu bytes", (unsigned long long)size, n);
    if (size) {
        uint8_t *want = malloc(size);
        assert_non_null(want);
        fill_pattern(want, index, size);
        if (memcmp(d, want, size) != 0) {
            size_t j = 0;
            while (((const uint8_t *)d)[j] == want[j])
                j++;
            free(want);
            fail_msg("size %llu: first wrong byte at %zu", (unsigned long long)size, j);
        }
        free(want);
    }
    free(r);
    pp_future_free(f);
}

static void test_result_sizes(void **state) {
    (void)state;
    pp_pool_t *pool = ppt_pool(2);
    const uint64_t sizes[] = {0, 1, 4095, 4096, 4097, 65536, 1u << 20, 64u << 20};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        check_pattern_result(pool, k, sizes[k], 0);
        check_pattern_result(pool, k + 100, sizes[k], 1);
    }
    /* several big results in flight at once */
    enum { M = 6 };
    pp_future_t *f[M];
    struct pat_arg a[M];
    for (int i = 0; i < M; i++) {
        a[i].index = 200 + (uint64_t)i;
        a[i].size = (uint64_t)(1u << 20) + (uint64_t)i * 4097;
        assert_rc(pp_apply_async(pool, task_pattern, &a[i], sizeof a[i], &f[i]), 0);
    }
    for (int i = 0; i < M; i++) {
        const void *d = NULL;
        size_t n = 0;
        assert_rc(pp_future_get(f[i], 30, &d, &n), 0);
        assert_int_equal(n, a[i].size);
        uint8_t *want = malloc(n);
        assert_non_null(want);
        fill_pattern(want, a[i].index, n);
        assert_true(memcmp(d, want, n) == 0);
        free(want);
        pp_future_free(f[i]);
    }
    ppt_finish(pool);
}

static void check_echo(pp_pool_t *pool, size_t size, uint64_t index) {
    uint8_t *arg = malloc(size);
    assert_non_null(arg);
    fill_pattern(arg, index, size);
    void *r = NULL;
    size_t n = 0;
    int rc = pp_apply(pool, task_echo, arg, size, &r, &n);
    if (rc != 0)
        fail_msg("echo of %zu bytes: pp_apply returned %d (%s)", size, rc, pp_err_name(rc));
    if (n != size)
        fail_msg("echo of %zu bytes came back with %zu bytes", size, n);
    if (memcmp(r, arg, size) != 0)
        fail_msg("echo of %zu bytes came back different", size);
    free(r);

    /* and through a future, with info about the argument seen */
    pp_future_t *f = NULL;
    assert_rc(pp_apply_async(pool, task_arginfo, arg, size, &f), 0);
    const void *d = NULL;
    assert_rc(pp_future_get(f, 30, &d, &n), 0);
    assert_int_equal(n, 2 * sizeof(uint64_t));
    uint64_t info[2];
    memcpy(info, d, sizeof info);
    assert_int_equal(info[0], size);
    assert_int_equal(info[1], 0);
    pp_future_free(f);
    free(arg);
}

static void test_large_arguments(void **state) {
    (void)state;
    pp_pool_t *pool = ppt_pool(2);
    check_echo(pool, 1, 1);
    check_echo(pool, 4097, 2);
    check_echo(pool, 1u << 20, 3);
    check_echo(pool, 16u << 20, 4);
    ppt_finish(pool);
}

static void test_many_appends(void **state) {
    (void)state;
    pp_pool_t *pool = ppt_pool(2);
    const uint32_t counts[] = {0, 1, 999, 1000, 100000};
    for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
        uint32_t count = counts[c];
        void *r = NULL;
        size_t n = 0;
        assert_rc(pp_apply(pool, task_many_appends, &count, sizeof count, &r, &n), 0);
        size_t want_len = (size_t)count * 13 + (size_t)(count / 1000) * 3;
        assert_int_equal(n, want_len);
        uint8_t *want = malloc(want_len + 1);
        assert_non_null(want);
        size_t pos = 0;
        for (uint32_t i = 0; i < count; i++) {
            for (int k = 0; k < 13; k++)
                want[pos++] = (uint8_t)(i * 13 + (uint32_t)k);
            if (i % 1000 == 999) {
                want[pos++] = 'R';
                want[pos++] = (uint8_t)i;
                want[pos++] = (uint8_t)(i >> 8);
            }
        }
        assert_int_equal(pos, want_len);
        assert_true(memcmp(r, want, want_len) == 0);
        free(want);
        free(r);
    }
    ppt_finish(pool);
}

static void test_buf_invalid_arguments(void **state) {
    (void)state;
    pp_pool_t *pool = ppt_pool(2);
    void *r = NULL;
    size_t n = 0;
    assert_rc(pp_apply(pool, task_buf_invalid, NULL, 0, &r, &n), 0);
    assert_int_equal(n, 4 * sizeof(int32_t));
    int32_t codes[4];
    memcpy(codes, r, sizeof codes);
    free(r);
    assert_rc(codes[0], -EINVAL); /* append(NULL, ...) */
    assert_rc(codes[1], -EINVAL); /* append(out, NULL, 5) */
    assert_rc(codes[2], -EINVAL); /* reserve(NULL, 4) -> NULL, errno EINVAL */
    assert_rc(codes[3], 0);       /* append(out, NULL, 0) */
    ppt_finish(pool);
}

/* ---- many submitting threads ---------------------------------------------- */

enum { THREADS = 4, PER_THREAD = 10000 };

struct thread_job {
    pp_pool_t *pool;
    long t;
    int errors;
    char msg[256];
};

static void *submitter(void *p) {
    struct thread_job *job = p;
    pp_future_t **f = calloc(PER_THREAD, sizeof *f);
    if (!f) {
        job->errors++;
        return NULL;
    }
    for (long i = 0; i < PER_THREAD; i++) {
        long arg = job->t * 100000 + i;
        int rc = pp_apply_async(job->pool, ppt_task_double, &arg, sizeof arg, &f[i]);
        if (rc != 0) {
            if (!job->errors++)
                snprintf(job->msg, sizeof job->msg, "submit %ld: %s", i, pp_err_name(rc));
            f[i] = NULL;
        }
    }
    for (long i = 0; i < PER_THREAD; i++) {
        if (!f[i])
            continue;
        const void *d = NULL;
        size_t n = 0;
        int rc = pp_future_get(f[i], 50, &d, &n);
        long want = 2 * (job->t * 100000 + i);
        if (rc != 0 || n != sizeof(long) || *(const long *)d != want) {
            if (!job->errors++)
                snprintf(job->msg, sizeof job->msg, "task %ld: rc %s len %zu value %ld want %ld", i,
                         pp_err_name(rc), n,
                         (rc == 0 && n == sizeof(long)) ? *(const long *)d : -1L, want);
        }
        pp_future_free(f[i]);
    }
    free(f);
    return NULL;
}

static void test_threads_submit(void **state) {
    (void)state;
    pp_pool_t *pool = ppt_pool(2);
    pthread_t th[THREADS];
    struct thread_job jobs[THREADS];
    for (int t = 0; t < THREADS; t++) {
        jobs[t] = (struct thread_job){.pool = pool, .t = t};
        assert_int_equal(pthread_create(&th[t], NULL, submitter, &jobs[t]), 0);
    }
    for (int t = 0; t < THREADS; t++)
        assert_int_equal(pthread_join(th[t], NULL), 0);
    for (int t = 0; t < THREADS; t++)
        if (jobs[t].errors)
            fail_msg("thread %d: %d errors, first: %s", t, jobs[t].errors, jobs[t].msg);
    ppt_finish(pool);
}

int main(void) {
    ppt_hang_guard(60);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_apply_round_trip),
        cmocka_unit_test(test_arg_copied_at_submission),
        cmocka_unit_test(test_apply_invalid_arguments),
        cmocka_unit_test(test_result_sizes),
        cmocka_unit_test(test_large_arguments),
        cmocka_unit_test(test_many_appends),
        cmocka_unit_test(test_buf_invalid_arguments),
        cmocka_unit_test(test_threads_submit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
