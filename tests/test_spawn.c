/*
 * test_spawn.c - the spawn start method: workers are fresh executions of
 * this test program that never run main(); functions and the initializer's
 * static argument cross the exec by build id and offset.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "procpool.h"
#include "helpers.h"
#include "internal.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int main_ran;         /* set first thing in main(): never in a spawn worker */
static int set_in_main_only; /* changed by main() after start: a spawn worker sees 0 */
static const char config[] = "static configuration";
static char init_seen[64];

static void init(void *arg) {
    signal(SIGSEGV, SIG_DFL);
    snprintf(init_seen, sizeof init_seen, "%s", arg ? (const char *)arg : "(null)");
}

static pp_pool_t *spawn_pool(int n, void (*initializer)(void *), void *initarg) {
    pp_options_t o;
    pp_options_init(&o);
    o.processes = n;
    o.start_method = PP_START_SPAWN;
    o.initializer = initializer;
    o.initarg = initarg;
    pp_pool_t *p = NULL;
    fflush(stdout);
    int rc = pp_pool_create(&p, &o);
    if (rc != 0)
        fail_msg("pp_pool_create(SPAWN) returned %s", pp_err_name(rc));
    return p;
}

struct facts {
    int main_ran, later, pid;
    char init[64];
};

static int report(const void *arg, size_t len, pp_buf_t *out) {
    (void)arg, (void)len;
    struct facts f = {main_ran, set_in_main_only, (int)getpid(), {0}};
    memcpy(f.init, init_seen, sizeof f.init);
    return pp_buf_append(out, &f, sizeof f);
}

static int crash(const void *arg, size_t len, pp_buf_t *out) {
    (void)arg, (void)len, (void)out;
    raise(SIGSEGV);
    return 0;
}

static int square(const void *arg, size_t len, pp_buf_t *out) {
    (void)len;
    double x = *(const double *)arg;
    x *= x;
    return pp_buf_append(out, &x, sizeof x);
}

static void test_main_never_runs(void **state) {
    (void)state;
    pp_pool_t *p = spawn_pool(2, init, (void *)config);
    for (int i = 0; i < 4; i++) {
        void *r;
        size_t n;
        assert_int_equal(pp_apply(p, report, NULL, 0, &r, &n), 0);
        struct facts *f = r;
        assert_int_equal(n, sizeof *f);
        assert_int_equal(f->main_ran, 0); /* main() did not run in the worker */
        assert_int_equal(f->later, 0);    /* a fresh process, not a fork */
        assert_int_not_equal(f->pid, getpid());
        assert_string_equal(f->init, config); /* initializer ran with the static argument */
        free(r);
    }
    ppt_finish(p);
}

static void test_crash_and_replacement(void **state) {
    (void)state;
    pp_pool_t *p = spawn_pool(2, init, NULL);
    pp_future_t *f;
    assert_int_equal(pp_apply_async(p, crash, NULL, 0, &f), 0);
    assert_int_equal(pp_future_get(f, 20, NULL, NULL), PP_EWORKER);
    assert_non_null(strstr(pp_future_error(f), "SIGSEGV"));
    pp_future_free(f);
    for (int i = 0; i < 10; i++) {
        void *r;
        size_t n;
        assert_int_equal(pp_apply(p, report, NULL, 0, &r, &n), 0);
        assert_string_equal(((struct facts *)r)->init, "(null)");
        free(r);
    }
    ppt_finish(p);
}

static void test_map_and_shared_memory(void **state) {
    (void)state;
    pp_pool_t *p = spawn_pool(2, NULL, NULL);
    size_t n = 200000;
    double *x = pp_shm_alloc(p, n * sizeof *x);
    assert_non_null(x);
    for (size_t i = 0; i < n; i++)
        x[i] = (double)i;
    assert_int_equal(pp_map(p, square, x, sizeof *x, n, x, sizeof *x, 0), 0);
    for (size_t i = 0; i < n; i++)
        if (x[i] != (double)i * (double)i)
            fail_msg("x[%zu] = %g", i, x[i]);
    double *y = malloc(n * sizeof *y), *z = malloc(n * sizeof *z);
    for (size_t i = 0; i < n; i++)
        y[i] = (double)i;
    assert_int_equal(pp_map(p, square, y, sizeof *y, n, z, sizeof *z, PP_CHUNK_AUTO), 0);
    for (size_t i = 0; i < n; i++)
        assert_true(z[i] == (double)i * (double)i);
    free(y);
    free(z);
    ppt_finish(p);
}

static void test_names_that_cannot_cross(void **state) {
    (void)state;
    /* an initarg on the heap means nothing after an exec */
    pp_options_t o;
    pp_options_init(&o);
    o.processes = 1;
    o.start_method = PP_START_SPAWN;
    o.initializer = init;
    o.initarg = malloc(16);
    pp_pool_t *p = (pp_pool_t *)&o;
    assert_int_equal(pp_pool_create(&p, &o), -EINVAL);
    assert_null(p);
    free(o.initarg);
    /* a "function" outside every loaded object is refused at submission */
    p = spawn_pool(1, NULL, NULL);
    void *heap = malloc(64);
    pp_future_t *f = (pp_future_t *)heap;
    assert_int_equal(pp_apply_async(p, (pp_task_fn)(uintptr_t)heap, NULL, 0, &f), -EINVAL);
    assert_null(f);
    free(heap);
    /* a build id that no loaded object has does not resolve */
    uint64_t key, off;
    assert_true(pp__addr_encode((const void *)(uintptr_t)square, &key, &off));
    assert_ptr_equal(pp__addr_decode(key, off), (void *)(uintptr_t)square);
    assert_null(pp__addr_decode(key ^ 0x5a5a5a5a5a5a5a5aull, off));
    ppt_finish(p);
}

int main(void) {
    main_ran = 1;
    set_in_main_only = 42;
    ppt_hang_guard(120);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_main_never_runs),
        cmocka_unit_test(test_crash_and_replacement),
        cmocka_unit_test(test_map_and_shared_memory),
        cmocka_unit_test(test_names_that_cannot_cross),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
