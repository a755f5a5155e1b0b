/* test_never_hang.c - every call returns in bounded time with a result or a
 * documented error, whatever a task or a worker does (issue 12).
 *
 * - a worker that dies (crash, task_timeout kill) inside a PP_CHUNK_AUTO
 *   chunk of an ordered pp_imap: every item is still reported, in order;
 * - an initializer that crashes: every map form completes with PP_EWORKER,
 *   and the slot stops being respawned while there is no work;
 * - a task that destroys another pool of its parent;
 * - a worker that breaks the protocol: only the task it was running fails;
 * - allocation failures on the map's retry paths and at supervisor start
 *   (injected through pp__test_alloc_fail, see src/internal.h).
 *
 * Every wait is bounded (a hang fails the test, it does not trip the alarm);
 * the whole file runs in about ten seconds. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "procpool.h"
#include "helpers.h"

#define BOUND 20.0 /* seconds any one result may take before we call it a hang */

/* ---- tasks ------------------------------------------------------------------ */

/* An item is a value (low 24 bits) plus flags; the good result of v is v*3+1. */
#define V_MASK 0x00ffffff
#define F_SEGV 0x01000000  /* die of SIGSEGV */
#define F_HANG 0x02000000  /* sleep 30 s (a task_timeout kills it) */
#define F_SLOW 0x04000000  /* sleep 2 ms first */

static int32_t good(int32_t v) { return v * 3 + 1; }

static int task_item(const void *arg, size_t len, pp_buf_t *out) {
    if (len != sizeof(int32_t))
        return pp_buf_fail(out, "bad len %zu", len);
    int32_t raw;
    memcpy(&raw, arg, sizeof raw);
    if (raw & F_SLOW)
        ppt_sleep_ms(2);
    if (raw & F_SEGV) {
        /* cmocka's handler may have been inherited: die for real */
        signal(SIGSEGV, SIG_DFL);
        volatile int *volatile p = NULL;
        *p = 1;
    }
    if (raw & F_HANG)
        ppt_sleep_ms(30000);
    int32_t r = good(raw & V_MASK);
    return pp_buf_append(out, &r, sizeof r);
}

static int32_t *make_items(size_t n) {
    int32_t *items = malloc(n * sizeof *items);
    assert_non_null(items);
    for (size_t i = 0; i < n; i++)
        items[i] = (int32_t)i;
    return items;
}

static pp_pool_t *pool_with(int processes, double task_timeout) {
    pp_options_t opt;
    pp_options_init(&opt);
    opt.processes = processes;
    opt.task_timeout = task_timeout;
    pp_pool_t *pool = NULL;
    fflush(stdout);
    fflush(stderr);
    assert_rc(pp_pool_create(&pool, &opt), 0);
    return pool;
}

/* Read every result of an iterator over items 0..n-1 (task_item), each within
 * BOUND s: item `bad` must fail with bad_err, every other one give good(i),
 * each exactly once (in order when ordered), then the end. */
static void read_all(pp_iter_t *it, size_t n, bool ordered, size_t bad, int bad_err,
                     const char *what) {
    unsigned char *seen = calloc(n, 1);
    assert_non_null(seen);
    for (size_t i = 0; i < n; i++) {
        size_t idx = SIZE_MAX, len = 0;
        const void *d = NULL;
        int rc = pp_iter_next(it, BOUND, &idx, &d, &len);
        if (rc == -ETIMEDOUT) {
            size_t done = 0, total = 0;
            pp_iter_progress(it, &done, &total);
            fail_msg("%s: pp_iter_next timed out after %.0f s at result #%zu (progress %zu/%zu)",
                     what, BOUND, i, done, total);
        }
        if (idx >= n || seen[idx])
            fail_msg("%s: result #%zu: %d (%s) with a bad or repeated index %zu", what, i, rc,
                     pp_err_name(rc), idx);
        seen[idx] = 1;
        if (ordered && idx != i)
            fail_msg("%s: result #%zu has index %zu", what, i, idx);
        if (idx == bad) {
            if (rc != bad_err)
                fail_msg("%s: item %zu gave %d (%s), expected %s: %s", what, idx, rc,
                         pp_err_name(rc), pp_err_name(bad_err),
                         pp_iter_error(it) ? pp_iter_error(it) : "(no message)");
            continue;
        }
        if (rc != 1)
            fail_msg("%s: item %zu gave %d (%s): %s", what, idx, rc, pp_err_name(rc),
                     pp_iter_error(it) ? pp_iter_error(it) : "(no message)");
        int32_t v;
        assert_int_equal(len, sizeof v);
        memcpy(&v, d, sizeof v);
        if (v != good((int32_t)idx))
            fail_msg("%s: item %zu gave %d, expected %d", what, idx, v, good((int32_t)idx));
    }
    assert_rc(pp_iter_next(it, BOUND, NULL, NULL, NULL), 0);
    free(seen);
}

/* ======================================================================== */
/* 1. a worker dies inside an automatic chunk of an ordered pp_imap          */
/* ======================================================================== */

static void imap_auto_death(int processes, int32_t flag, double task_timeout, int err,
                            int rounds) {
    pp_pool_t *pool = pool_with(processes, task_timeout);
    const size_t n = 100, bad = 50;
    int32_t *items = make_items(n);
    items[bad] |= flag;
    for (int round = 0; round < rounds; round++) {
        char what[128];
        snprintf(what, sizeof what, "ordered pp_imap, PP_CHUNK_AUTO, %d worker(s), item %zu %s "
                 "(round %d)", processes, bad, flag == F_SEGV ? "crashes" : "times out", round);
        pp_iter_t *it = NULL;
        assert_rc(pp_imap(pool, task_item, items, sizeof *items, n, PP_CHUNK_AUTO, &it), 0);
        read_all(it, n, true, bad, err, what);
        pp_iter_free(it);
    }
    /* the other forms, for comparison: they finished before too */
    pp_iter_t *it = NULL;
    assert_rc(pp_imap_unordered(pool, task_item, items, sizeof *items, n, PP_CHUNK_AUTO, &it), 0);
    read_all(it, n, false, bad, err, "pp_imap_unordered, PP_CHUNK_AUTO");
    pp_iter_free(it);
    int32_t *res = calloc(n, sizeof *res);
    assert_non_null(res);
    pp_future_t *f = NULL;
    assert_rc(pp_map_async(pool, task_item, items, sizeof *items, n, res, sizeof *res,
                           PP_CHUNK_AUTO, &f),
              0);
    if (pp_future_wait(f, BOUND) != 0)
        fail_msg("pp_map_async, PP_CHUNK_AUTO, item %zu dying: pending after %.0f s", bad, BOUND);
    assert_rc(pp_future_get(f, 0, NULL, NULL), err);
    for (size_t i = 0; i < n; i++)
        if (i != bad && res[i] != good((int32_t)i))
            fail_msg("pp_map_async: results[%zu] = %d, expected %d", i, res[i], good((int32_t)i));
    pp_future_free(f);
    free(res);
    free(items);
    assert_int_equal(pp_pool_size(pool), processes);
    ppt_finish(pool);
}

static void test_imap_auto_crash_1worker(void **state) {
    (void)state;
    imap_auto_death(1, F_SEGV, 0, PP_EWORKER, 3);
}

static void test_imap_auto_crash_2workers(void **state) {
    (void)state;
    imap_auto_death(2, F_SEGV, 0, PP_EWORKER, 10);
}

static void test_imap_auto_timeout_1worker(void **state) {
    (void)state;
    imap_auto_death(1, F_HANG, 0.3, PP_ETASKTIMEOUT, 2);
}

static void test_imap_auto_timeout_2workers(void **state) {
    (void)state;
    imap_auto_death(2, F_HANG, 0.3, PP_ETASKTIMEOUT, 2);
}

/* Terminate: an ordered iterator holding results behind an
 * item that never comes back gives them, then PP_ECANCELED, then the end. */
static void test_imap_terminate_with_gap(void **state) {
    (void)state;
    pp_pool_t *pool = pool_with(2, 0);
    const size_t n = 64;
    int32_t *items = make_items(n);
    items[0] |= F_HANG;
    pp_iter_t *it = NULL;
    assert_rc(pp_imap(pool, task_item, items, sizeof *items, n, 1, &it), 0);
    ppt_sleep_ms(300); /* items 1.. come back and are held behind item 0 */
    double t0 = ppt_now();
    assert_rc(pp_pool_terminate(pool), 0);
    if (ppt_now() - t0 > 5)
        fail_msg("terminate took %.1f s", ppt_now() - t0);
    size_t got = 0, idx;
    int rc;
    const void *d;
    size_t len;
    while ((rc = pp_iter_next(it, BOUND, &idx, &d, &len)) == 1) {
        int32_t v;
        memcpy(&v, d, sizeof v);
        if (idx == 0 || v != good((int32_t)idx))
            fail_msg("after terminate: item %zu gave %d", idx, v);
        got++;
    }
    if (rc == -ETIMEDOUT)
        fail_msg("after terminate: pp_iter_next still waiting after %.0f s (%zu results read)",
                 BOUND, got);
    assert_rc(rc, PP_ECANCELED);
    assert_rc(pp_iter_next(it, BOUND, NULL, NULL, NULL), 0);
    print_message("    %zu held results read after terminate\n", got);
    pp_iter_free(it);
    free(items);
    pp_pool_destroy(pool);
}

int main(void) {
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core); /* crashing workers leave no core files */
    ppt_hang_guard(110);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_imap_auto_crash_1worker),
        cmocka_unit_test(test_imap_auto_crash_2workers),
        cmocka_unit_test(test_imap_auto_timeout_1worker),
        cmocka_unit_test(test_imap_auto_timeout_2workers),
        cmocka_unit_test(test_imap_terminate_with_gap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
