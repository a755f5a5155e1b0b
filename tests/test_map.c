/* test_map.c - the map family: pp_map, pp_map_async, pp_future_progress,
 * pp_imap, pp_imap_unordered, pp_imap_feed and the pp_iter_* functions.
 *
 * Order and completeness for every chunk size, empty and huge inputs, failing
 * items (message, lowest index, other results kept), results of the wrong
 * size (nothing written outside the slot), a worker killed inside a chunk,
 * progress, bad arguments, lazy iterators (ordered, unordered, failures,
 * early free, bounded window under a slow consumer), streaming input through
 * a feed callback (variable-length and large items, feed errors), two threads
 * mapping on one pool, and results of very different sizes.
 *
 * Every pool has 2 workers. The whole file runs in a few seconds. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "procpool.h"
#include "helpers.h"

/* ---- shared state --------------------------------------------------------- */

/* Counters in a MAP_SHARED mapping made before any pool exists, so that
 * every worker (forked after it) increments the parent's copy. */
struct shared_counters {
    atomic_long calls; /* task calls of the counting tasks */
};
static struct shared_counters *shc;

/* ---- item encoding for the int tasks -------------------------------------- */

/* An int item is a value (low 24 bits) plus flags that change what the task
 * does with it. The good result of value v is v*3+1. */
#define V_MASK 0x00ffffff
#define F_FAIL 0x01000000   /* return pp_buf_fail("bad %d", v) */
#define F_SHORT 0x02000000  /* append 3 bytes instead of 4 */
#define F_LONG 0x04000000   /* append 5 bytes instead of 4 */
#define F_CRASH 0x08000000  /* raise(SIGKILL) */
#define F_SLOW 0x10000000   /* sleep 1 ms first */
#define F_SLOW20 0x20000000 /* sleep 20 ms first */

#define CANARY ((int32_t)0x5a5aa5a5)

static int32_t good(int32_t v) { return v * 3 + 1; }

static int task_lin(const void *arg, size_t len, pp_buf_t *out) {
    if (len != sizeof(int32_t))
        return pp_buf_fail(out, "bad len %zu", len);
    int32_t v;
    memcpy(&v, arg, sizeof v);
    v = good(v);
    return pp_buf_append(out, &v, sizeof v);
}

static int task_counting(const void *arg, size_t len, pp_buf_t *out) {
    (void)arg;
    (void)len;
    (void)out;
    atomic_fetch_add(&shc->calls, 1);
    return 0;
}

static int task_ctl(const void *arg, size_t len, pp_buf_t *out) {
    if (len != sizeof(int32_t))
        return pp_buf_fail(out, "bad len %zu", len);
    int32_t raw;
    memcpy(&raw, arg, sizeof raw);
    int32_t v = raw & V_MASK;
    if (raw & F_SLOW)
        usleep(1000);
    if (raw & F_SLOW20)
        ppt_sleep_ms(20);
    if (raw & F_CRASH) {
        /* cmocka's SIGSEGV handler may have been inherited: restore the
         * defaults first, as test_crash.c does, then die. */
        signal(SIGSEGV, SIG_DFL);
        raise(SIGKILL);
    }
    if (raw & F_FAIL) {
        pp_buf_append(out, "xx", 2); /* discarded on failure */
        return pp_buf_fail(out, "bad %d", (int)v);
    }
    int32_t r = good(v);
    if (raw & F_SHORT)
        return pp_buf_append(out, &r, 3);
    if (raw & F_LONG) {
        unsigned char five[5];
        memset(five, 0xee, sizeof five);
        return pp_buf_append(out, five, sizeof five);
    }
    return pp_buf_append(out, &r, sizeof r);
}

/* ---- helpers ---------------------------------------------------------------- */

static int32_t *make_items(size_t n) {
    int32_t *items = malloc(n * sizeof *items + 1);
    assert_non_null(items);
    for (size_t i = 0; i < n; i++)
        items[i] = (int32_t)i;
    return items;
}

/* results with one canary slot before and after: returns the inner array. */
static int32_t *make_results(size_t n) {
    int32_t *buf = malloc((n + 2) * sizeof *buf);
    assert_non_null(buf);
    for (size_t i = 0; i < n + 2; i++)
        buf[i] = CANARY;
    return buf + 1;
}

static void free_results(int32_t *r) {
    if (r)
        free(r - 1);
}

static void check_guards(const int32_t *r, size_t n, const char *what) {
    if (r[-1] != CANARY)
        fail_msg("%s: the guard slot before results[0] was overwritten (0x%08x)", what,
                 (unsigned)r[-1]);
    if (r[n] != CANARY)
        fail_msg("%s: the guard slot after results[%zu] was overwritten (0x%08x)", what, n - 1,
                 (unsigned)r[n]);
}

/* results[i] == good(i) for every i in [0,n) except those with skip[i] set */
static void check_results(const int32_t *r, size_t n, const unsigned char *skip, const char *what) {
    for (size_t i = 0; i < n; i++) {
        if (skip && skip[i])
            continue;
        if (r[i] != good((int32_t)i))
            fail_msg("%s: results[%zu] = %d (0x%08x), expected %d", what, i, r[i], (unsigned)r[i],
                     good((int32_t)i));
    }
    check_guards(r, n, what);
}

static const char *chunk_name(size_t cs, char *buf, size_t size) {
    if (cs == PP_CHUNK_AUTO)
        snprintf(buf, size, "PP_CHUNK_AUTO");
    else
        snprintf(buf, size, "%zu", cs);
    return buf;
}

/* Wait for a map future with a bound, so a hang fails this test clearly
 * instead of tripping the alarm for the whole file. */
static int wait_map(pp_future_t *f, double timeout, const char *what) {
    int rc = pp_future_wait(f, timeout);
    if (rc == -ETIMEDOUT)
        fail_msg("%s: the map future is still pending after %.0f s", what, timeout);
    assert_rc(rc, 0);
    return pp_future_get(f, 0, NULL, NULL);
}

/* ---- pp_map: order and completeness ---------------------------------------- */

static void test_map_every_chunksize(void **state) {
    (void)state;
    pp_pool_t *pool = ppt_pool(2);
    const size_t n = 37;
    int32_t *items = make_items(n);
    size_t sizes[n + 3 + 2];
    size_t ns = 0;
    for (size_t cs = 1; cs <= n + 3; cs++)
        sizes[ns++] = cs;
    sizes[ns++] = 0;
    sizes[ns++] = PP_CHUNK_AUTO;
    for (size_t k = 0; k < ns; k++) {
        char cn[32], what[64];
        snprintf(what, sizeof what, "pp_map n=%zu chunksize=%s", n,
                 chunk_name(sizes[k], cn, sizeof cn));
        int32_t *res = make_results(n);
        int rc = pp_map(pool, task_lin, items, sizeof *items, n, res, sizeof *res, sizes[k]);
        if (rc != 0)
            fail_msg("%s returned %d (%s)", what, rc, pp_err_name(rc));
        check_results(res, n, NULL, what);
        free_results(res);
    }
    free(items);
    ppt_finish(pool);
}

static void test_map_empty(void **state) {
    (void)state;
    pp_pool_t *pool = ppt_pool(2);
    atomic_store(&shc->calls, 0);
    int32_t dummy_in = 5, dummy_out = CANARY;
    /* NULL arrays are fine with count 0 */
    assert_rc(pp_map(pool, task_counting, NULL, 4, 0, NULL, 4, 0), 0);
    assert_rc(pp_map(pool, task_counting, NULL, 4, 0, NULL, 4, PP_CHUNK_AUTO), 0);
    assert_rc(pp_map(pool, task_counting, &dummy_in, 4, 0, &dummy_out, 4, 3), 0);
    assert_int_equal(dummy_out, CANARY);

    pp_future_t *f = NULL;
    assert_rc(pp_map_async(pool, task_counting, NULL, 4, 0, NULL, 4, 0, &f), 0);
    assert_non_null(f);
    assert_rc(pp_future_wait(f, 10), 0);
    const void *d = NULL;
    size_t len = 99;
    assert_rc(pp_future_get(f, 0, &d, &len), 0);
    assert_non_null(d);
    assert_int_equal(len, 0);
    size_t done = 99, total = 99;
    assert_rc(pp_future_progress(f, &done, &total), 0);
    assert_int_equal(done, 0);
    assert_int_equal(total, 0);
    pp_future_free(f);

    pp_iter_t *it = NULL;
    assert_rc(pp_imap(pool, task_counting, NULL, 4, 0, 0, &it), 0);
    assert_non_null(it);
    assert_rc(pp_iter_next(it, 10, NULL, NULL, NULL), 0);
    pp_iter_free(it);
    it = NULL;
    assert_rc(pp_imap_unordered(pool, task_counting, NULL, 4, 0, 0, &it), 0);
    assert_rc(pp_iter_next(it, 10, NULL, NULL, NULL), 0);
    pp_iter_free(it);

    /* a round trip through both workers, so any stray call would have landed */
    int32_t one[4] = {1, 2, 3, 4}, out[4];
    assert_rc(pp_map(pool, task_lin, one, 4, 4, out, 4, 1), 0);
    assert_int_equal(atomic_load(&shc->calls), 0);
    ppt_finish(pool);
}

static void test_map_zero_sized_items_and_results(void **state) {
    (void)state;
    /* items NULL with item_size 0, results NULL with result_size 0: allowed;
     * fn runs count times */
    pp_pool_t *pool = ppt_pool(2);
    atomic_store(&shc->calls, 0);
    assert_rc(pp_map(pool, task_counting, NULL, 0, 25, NULL, 0, 0), 0);
    assert_int_equal(atomic_load(&shc->calls), 25);
    ppt_finish(pool);
}

static void test_map_million(void **state) {
    (void)state;
    pp_pool_t *pool = ppt_pool(2);
    const size_t n = 1000000;
    int32_t *items = make_items(n);
    int32_t *res = make_results(n);
    double t0 = ppt_now();
    int rc = pp_map(pool, task_lin, items, sizeof *items, n, res, sizeof *res, 0);
    double dt = ppt_now() - t0;
    if (rc != 0)
        fail_msg("pp_map over 1e6 items returned %d (%s)", rc, pp_err_name(rc));
    check_results(res, n, NULL, "pp_map 1e6 items, default chunks");
    print_message("1e6 items in %.3f s (%.2f M items/s)\n", dt, n / dt / 1e6);
    free_results(res);
    free(items);
    ppt_finish(pool);
}

/* ---- pp_map: failures ------------------------------------------------------- */

static void test_map_failing_items(void **state) {
    (void)state;
    pp_pool_t *pool = ppt_pool(2);
    const size_t n = 41;
    const size_t pos_sets[4][3] = {
        {0, SIZE_MAX, SIZE_MAX}, {20, SIZE_MAX, SIZE_MAX}, {40, SIZE_MAX, SIZE_MAX}, {0, 20, 40}};
    const size_t chunks[] = {1, 0, 5, 8, PP_CHUNK_AUTO, 100};
    for (size_t s = 0; s < 4; s++) {
        for (size_t c = 0; c < sizeof chunks / sizeof chunks[0]; c++) {
            int32_t *items = make_items(n);
            unsigned char skip[41] = {0};
            for (int k = 0; k < 3; k++) {
                if (pos_sets[s][k] != SIZE_MAX) {
                    items[pos_sets[s][k]] |= F_FAIL;
                    skip[pos_sets[s][k]] = 1;
                }
            }
            char cn[32], what[128];
            snprintf(what, sizeof what, "pp_map, failing at %zd/%zd/%zd, chunksize %s",
                     (ssize_t)pos_sets[s][0], (ssize_t)pos_sets[s][1], (ssize_t)pos_sets[s][2],
                     chunk_name(chunks[c], cn, sizeof cn));
            int32_t *res = make_results(n);
            int rc = pp_map(pool, task_ctl, items, sizeof *items, n, res, sizeof *res, chunks[c]);
            if (rc != PP_ETASK)
                fail_msg("%s returned %d (%s), expected PP_ETASK", what, rc, pp_err_name(rc));
            check_results(res, n, skip, what);
            free_results(res);
            free(items);
        }
    }
    ppt_finish(pool);
}

static void test_map_async_error_message(void **state) {
    (void)state;
    pp_pool_t *pool = ppt_pool(2);
    const size_t n = 64;
    const size_t chunks[] = {1, 0, 4, PP_CHUNK_AUTO};
    for (size_t c = 0; c < sizeof chunks / sizeof chunks[0]; c++) {
        int32_t *items = make_items(n);
        /* 7 is the lowest; 33 fails first in time (7 is slowed down) */
        items[7] |= F_FAIL | F_SLOW20;
        items[33] |= F_FAIL;
        items[50] |= F_FAIL;
        int32_t *res = make_results(n);
        char cn[32], what[96];
        snprintf(what, sizeof what, "pp_map_async chunksize %s",
                 chunk_name(chunks[c], cn, sizeof cn));
        pp_future_t *f = NULL;
        assert_rc(
            pp_map_async(pool, task_ctl, items, sizeof *items, n, res, sizeof *res, chunks[c], &f),
            0);
        assert_non_null(f);
        int rc = wait_map(f, 20, what);
        if (rc != PP_ETASK)
            fail_msg("%s: pp_future_get returned %d (%s), expected PP_ETASK", what, rc,
                     pp_err_name(rc));
        assert_int_equal(pp_future_successful(f), 0);
        const void *d = (const void *)1;
        size_t len = 99;
        assert_rc(pp_future_get(f, 0, &d, &len), PP_ETASK);
        assert_null(d);
        assert_int_equal(len, 0);
        const char *msg = pp_future_error(f);
        if (msg == NULL)
            fail_msg("%s: pp_future_error is NULL", what);
        if (strstr(msg, "bad 7") == NULL || strstr(msg, "item 7") == NULL)
            fail_msg("%s: pp_future_error is \"%s\", expected it to contain \"item 7\" and "
                     "\"bad 7\" (the lowest failing index and its message)",
                     what, msg);
        if (strstr(msg, "bad 33") || strstr(msg, "bad 50"))
            fail_msg("%s: pp_future_error is \"%s\": not the lowest failing item", what, msg);
        size_t done = 0, total = 0;
        assert_rc(pp_future_progress(f, &done, &total), 0);
        assert_int_equal(total, n);
        assert_int_equal(done, n);
        unsigned char skip[64] = {0};
        skip[7] = skip[33] = skip[50] = 1;
        check_results(res, n, skip, what);
        pp_future_free(f);
        free_results(res);
        free(items);
    }
    ppt_finish(pool);
}

static void test_map_wrong_result_size(void **state) {
    (void)state;
    pp_pool_t *pool = ppt_pool(2);
    const size_t n = 24;
    const int32_t flags[] = {F_SHORT, F_LONG};
    const size_t bad_at[] = {0, 9, 23};
    const size_t chunks[] = {1, 8, 0, PP_CHUNK_AUTO};
    for (size_t fl = 0; fl < 2; fl++) {
        for (size_t b = 0; b < 3; b++) {
            for (size_t c = 0; c < sizeof chunks / sizeof chunks[0]; c++) {
                int32_t *items = make_items(n);
                size_t bad = bad_at[b];
                items[bad] |= flags[fl];
                int32_t *res = make_results(n);
                char cn[32], what[128];
                snprintf(what, sizeof what,
                         "pp_map, item %zu gives %d bytes (result_size 4), chunksize %s", bad,
                         flags[fl] == F_SHORT ? 3 : 5, chunk_name(chunks[c], cn, sizeof cn));
                int rc =
                    pp_map(pool, task_ctl, items, sizeof *items, n, res, sizeof *res, chunks[c]);
                if (rc != PP_ETASK)
                    fail_msg("%s returned %d (%s), expected PP_ETASK", what, rc, pp_err_name(rc));
                unsigned char skip[24] = {0};
                skip[bad] = 1;
                /* every other slot right, and the guard slots on either side of
                 * the array untouched */
                check_results(res, n, skip, what);
                /* the neighbours explicitly, with a clearer message */
                if (bad > 0 && res[bad - 1] != good((int32_t)bad - 1))
                    fail_msg("%s: the slot before the bad one was changed", what);
                if (bad + 1 < n && res[bad + 1] != good((int32_t)bad + 1))
                    fail_msg("%s: the slot after the bad one was changed (0x%08x)", what,
                             (unsigned)res[bad + 1]);
                free_results(res);
                free(items);
            }
        }
    }
    /* the message through pp_map_async */
    int32_t *items = make_items(n);
    items[5] |= F_LONG;
    int32_t *res = make_results(n);
    pp_future_t *f = NULL;
    assert_rc(pp_map_async(pool, task_ctl, items, 4, n, res, 4, 4, &f), 0);
    assert_rc(wait_map(f, 20, "wrong size, async"), PP_ETASK);
    const char *msg = pp_future_error(f);
    assert_non_null(msg);
    if (strstr(msg, "item 5") == NULL)
        fail_msg("wrong result size: pp_future_error is \"%s\", expected \"item 5: ...\"", msg);
    print_message("wrong-size message: %s\n", msg);
    pp_future_free(f);
    free_results(res);
    free(items);
    ppt_finish(pool);
}

static void test_map_crash_in_chunk(void **state) {
    (void)state;
    pp_pool_t *pool = ppt_pool(2);
    const size_t n = 64;
    const size_t crash = 13; /* the middle of chunk 1 (items 8..15) with chunksize 8 */

    /* async first, with a bound, so a hang is reported as such */
    int32_t *items = make_items(n);
    items[crash] |= F_CRASH;
    int32_t *res = make_results(n);
    pp_future_t *f = NULL;
    assert_rc(pp_map_async(pool, task_ctl, items, sizeof *items, n, res, sizeof *res, 8, &f), 0);
    int rc = wait_map(f, 30, "crash in chunk, async");
    if (rc != PP_EWORKER)
        fail_msg("map with a crashing item: pp_future_get returned %d (%s), expected PP_EWORKER",
                 rc, pp_err_name(rc));
    const char *msg = pp_future_error(f);
    assert_non_null(msg);
    if (strstr(msg, "item 13") == NULL || strstr(msg, "SIGKILL") == NULL)
        fail_msg("crash: pp_future_error is \"%s\", expected \"item 13\" and \"SIGKILL\"", msg);
    print_message("crash message: %s\n", msg);
    unsigned char skip[64] = {0};
    skip[crash] = 1;
    check_results(res, n, skip, "pp_map_async with item 13 crashing, chunksize 8");
    pp_future_free(f);
    free_results(res);

    /* then pp_map, several chunk sizes */
    const size_t chunks[] = {8, 1, 0, 64, PP_CHUNK_AUTO};
    for (size_t c = 0; c < sizeof chunks / sizeof chunks[0]; c++) {
        char cn[32], what[96];
        snprintf(what, sizeof what, "pp_map with item 13 crashing, chunksize %s",
                 chunk_name(chunks[c], cn, sizeof cn));
        res = make_results(n);
        rc = pp_map(pool, task_ctl, items, sizeof *items, n, res, sizeof *res, chunks[c]);
        if (rc != PP_EWORKER)
            fail_msg("%s returned %d (%s), expected PP_EWORKER", what, rc, pp_err_name(rc));
        check_results(res, n, skip, what);
        free_results(res);
    }
    free(items);

    /* the pool goes on at full size */
    assert_int_equal(pp_pool_size(pool), 2);
    items = make_items(n);
    res = make_results(n);
    assert_rc(pp_map(pool, task_lin, items, 4, n, res, 4, 0), 0);
    check_results(res, n, NULL, "pp_map after the crashes");
    free_results(res);
    free(items);
    ppt_finish(pool);
}

/* ---- progress ------------------------------------------------------------------ */

static void test_map_async_progress(void **state) {
    (void)state;
    pp_pool_t *pool = ppt_pool(2);
    const size_t n = 300;
    int32_t *items = make_items(n);
    for (size_t i = 0; i < n; i++)
        items[i] |= F_SLOW; /* ~150 ms on 2 workers */
    int32_t *res = make_results(n);
    pp_future_t *f = NULL;
    assert_rc(pp_map_async(pool, task_ctl, items, 4, n, res, 4, 4, &f), 0);
    size_t last = 0, polls = 0, distinct = 0;
    double t0 = ppt_now();
    for (;;) {
        int ready = pp_future_ready(f);
        size_t done = SIZE_MAX, total = SIZE_MAX;
        assert_rc(pp_future_progress(f, &done, &total), 0);
        polls++;
        if (total != n)
            fail_msg("pp_future_progress: total %zu, expected %zu", total, n);
        if (done > total)
            fail_msg("pp_future_progress: done %zu > total %zu", done, total);
        if (done < last)
            fail_msg("pp_future_progress: done went back from %zu to %zu", last, done);
        if (done != last)
            distinct++;
        last = done;
        if (ready == 1) {
            /* done reaches total once the future is done */
            assert_rc(pp_future_progress(f, &done, &total), 0);
            assert_int_equal(done, n);
            assert_int_equal(total, n);
            break;
        }
        if (ppt_now() - t0 > 20)
            fail_msg("map of %zu 1-ms items still not done after 20 s (done %zu)", n, done);
        usleep(200);
    }
    print_message("progress: %zu polls, %zu distinct values\n", polls, distinct);
    assert_rc(pp_future_get(f, 0, NULL, NULL), 0);
    check_results(res, n, NULL, "pp_map_async with progress polling");
    /* NULL out-parameters are fine */
    assert_rc(pp_future_progress(f, NULL, NULL), 0);
    assert_rc(pp_future_progress(NULL, NULL, NULL), -EINVAL);
    pp_future_free(f);

    /* a single task: 0 or 1 of 1 */
    int32_t one = 3;
    assert_rc(pp_apply_async(pool, task_lin, &one, 4, &f), 0);
    size_t done = 9, total = 9;
    assert_rc(pp_future_progress(f, &done, &total), 0);
    assert_int_equal(total, 1);
    assert_true(done <= 1);
    assert_rc(pp_future_wait(f, 10), 0);
    assert_rc(pp_future_progress(f, &done, &total), 0);
    assert_int_equal(done, 1);
    assert_int_equal(total, 1);
    pp_future_free(f);

    free_results(res);
    free(items);
    ppt_finish(pool);
}

static void test_map_async_free_cancels(void **state) {
    (void)state;
    /* freeing a pending map future: afterwards the library touches neither
     * items nor results, and the pool stays usable */
    pp_pool_t *pool = ppt_pool(2);
    const size_t n = 400;
    int32_t *items = make_items(n);
    for (size_t i = 0; i < n; i++)
        items[i] |= F_SLOW;
    int32_t *res = make_results(n);
    pp_future_t *f = NULL;
    assert_rc(pp_map_async(pool, task_ctl, items, 4, n, res, 4, 2, &f), 0);
    ppt_sleep_ms(30);
    pp_future_free(f);
    free(items); /* no longer read by the library (ASan would notice) */
    int32_t *snap = malloc((n + 2) * sizeof *snap);
    assert_non_null(snap);
    memcpy(snap, res - 1, (n + 2) * sizeof *snap);
    ppt_sleep_ms(150);
    if (memcmp(snap, res - 1, (n + 2) * sizeof *snap) != 0)
        fail_msg("results changed after pp_future_free of the pending map future");
    free(snap);
    free_results(res);

    int32_t v = 4;
    void *r = NULL;
    size_t rl = 0;
    assert_rc(pp_apply(pool, task_lin, &v, 4, &r, &rl), 0);
    assert_int_equal(rl, 4);
    free(r);
    double t0 = ppt_now();
    ppt_finish(pool);
    assert_true(ppt_now() - t0 < 10);
}

/* ---- arguments and closed pools ------------------------------------------------ */

static int feed_never(void *u, const void **item, size_t *len) {
    (void)u;
    (void)item;
    (void)len;
    return 0;
}

static void test_map_invalid_args(void **state) {
    (void)state;
    pp_pool_t *pool = ppt_pool(2);
    int32_t items[4] = {0, 1, 2, 3}, res[4];
    pp_future_t *f = (pp_future_t *)&items; /* must be reset to NULL on error */
    pp_iter_t *it = (pp_iter_t *)&items;

    assert_rc(pp_map(NULL, task_lin, items, 4, 4, res, 4, 0), -EINVAL);
    assert_rc(pp_map(pool, NULL, items, 4, 4, res, 4, 0), -EINVAL);
    assert_rc(pp_map(pool, task_lin, NULL, 4, 4, res, 4, 0), -EINVAL);
    assert_rc(pp_map(pool, task_lin, items, 4, 4, NULL, 4, 0), -EINVAL);
    assert_rc(pp_map(pool, task_lin, items, SIZE_MAX / 2, 3, res, 4, 0), -EINVAL);
    assert_rc(pp_map(pool, task_lin, items, 2, SIZE_MAX / 2 + 2, res, 0, 0), -EINVAL);

    assert_rc(pp_map_async(NULL, task_lin, items, 4, 4, res, 4, 0, &f), -EINVAL);
    assert_null(f);
    f = (pp_future_t *)&items;
    assert_rc(pp_map_async(pool, NULL, items, 4, 4, res, 4, 0, &f), -EINVAL);
    assert_null(f);
    f = (pp_future_t *)&items;
    assert_rc(pp_map_async(pool, task_lin, NULL, 4, 4, res, 4, 0, &f), -EINVAL);
    assert_null(f);
    f = (pp_future_t *)&items;
    assert_rc(pp_map_async(pool, task_lin, items, 4, 4, NULL, 4, 0, &f), -EINVAL);
    assert_null(f);
    f = (pp_future_t *)&items;
    assert_rc(pp_map_async(pool, task_lin, items, SIZE_MAX / 2, 3, res, 4, 0, &f), -EINVAL);
    assert_null(f);
    assert_rc(pp_map_async(pool, task_lin, items, 4, 4, res, 4, 0, NULL), -EINVAL);

    assert_rc(pp_imap(NULL, task_lin, items, 4, 4, 0, &it), -EINVAL);
    assert_rc(pp_imap(pool, NULL, items, 4, 4, 0, &it), -EINVAL);
    assert_rc(pp_imap(pool, task_lin, NULL, 4, 4, 0, &it), -EINVAL);
    assert_rc(pp_imap(pool, task_lin, items, 4, 4, 0, NULL), -EINVAL);
    assert_rc(pp_imap(pool, task_lin, items, SIZE_MAX / 2, 3, 0, &it), -EINVAL);
    assert_rc(pp_imap_unordered(NULL, task_lin, items, 4, 4, 0, &it), -EINVAL);
    assert_rc(pp_imap_unordered(pool, NULL, items, 4, 4, 0, &it), -EINVAL);
    assert_rc(pp_imap_unordered(pool, task_lin, NULL, 4, 4, 0, &it), -EINVAL);
    assert_rc(pp_imap_unordered(pool, task_lin, items, 4, 4, 0, NULL), -EINVAL);
    assert_rc(pp_imap_unordered(pool, task_lin, items, SIZE_MAX / 2, 3, 0, &it), -EINVAL);

    assert_rc(pp_imap_feed(NULL, task_lin, feed_never, NULL, 0, PP_ORDERED, &it), -EINVAL);
    assert_rc(pp_imap_feed(pool, NULL, feed_never, NULL, 0, PP_ORDERED, &it), -EINVAL);
    assert_rc(pp_imap_feed(pool, task_lin, NULL, NULL, 0, PP_ORDERED, &it), -EINVAL);
    assert_rc(pp_imap_feed(pool, task_lin, feed_never, NULL, 0, PP_ORDERED, NULL), -EINVAL);
    assert_rc(pp_imap_feed(pool, task_lin, feed_never, NULL, 0, 7, &it), -EINVAL);
    assert_rc(pp_imap_feed(pool, task_lin, feed_never, NULL, 0, -1, &it), -EINVAL);

    assert_rc(pp_iter_next(NULL, 0, NULL, NULL, NULL), -EINVAL);
    assert_rc(pp_iter_progress(NULL, NULL, NULL), -EINVAL);
    assert_null(pp_iter_error(NULL));
    pp_iter_free(NULL);
    assert_rc(pp_future_progress(NULL, NULL, NULL), -EINVAL);

    /* the pool still works after all that */
    assert_rc(pp_map(pool, task_lin, items, 4, 4, res, 4, 0), 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(res[i], good(i));
    ppt_finish(pool);
}

static void test_map_after_close(void **state) {
    (void)state;
    int32_t items[4] = {0, 1, 2, 3}, res[4];
    for (int term = 0; term < 2; term++) {
        pp_pool_t *pool = ppt_pool(2);
        if (term)
            assert_rc(pp_pool_terminate(pool), 0);
        else
            assert_rc(pp_pool_close(pool), 0);
        pp_future_t *f = (pp_future_t *)&items;
        pp_iter_t *it = (pp_iter_t *)&items;
        assert_rc(pp_map(pool, task_lin, items, 4, 4, res, 4, 0), PP_ECLOSED);
        assert_rc(pp_map(pool, task_lin, items, 4, 4, res, 4, PP_CHUNK_AUTO), PP_ECLOSED);
        assert_rc(pp_map_async(pool, task_lin, items, 4, 4, res, 4, 0, &f), PP_ECLOSED);
        assert_null(f);
        assert_rc(pp_imap(pool, task_lin, items, 4, 4, 0, &it), PP_ECLOSED);
        assert_null(it);
        it = (pp_iter_t *)&items;
        assert_rc(pp_imap_unordered(pool, task_lin, items, 4, 4, 0, &it), PP_ECLOSED);
        assert_null(it);
        it = (pp_iter_t *)&items;
        assert_rc(pp_imap_feed(pool, task_lin, feed_never, NULL, 0, PP_UNORDERED, &it), PP_ECLOSED);
        assert_null(it);
        assert_rc(pp_pool_join(pool), 0);
        pp_pool_destroy(pool);
    }
}

/* ---- imap --------------------------------------------------------------------- */

static void test_imap_ordered(void **state) {
    (void)state;
    pp_pool_t *pool = ppt_pool(2);
    const size_t n = 1000;
    int32_t *items = make_items(n);
    const size_t chunks[] = {1, 0, 7, PP_CHUNK_AUTO, 2000};
    for (size_t c = 0; c < sizeof chunks / sizeof chunks[0]; c++) {
        char cn[32];
        chunk_name(chunks[c], cn, sizeof cn);
        pp_iter_t *it = NULL;
        assert_rc(pp_imap(pool, task_lin, items, 4, n, chunks[c], &it), 0);
        assert_non_null(it);
        for (size_t i = 0; i < n; i++) {
            size_t idx = SIZE_MAX, len = 99;
            const void *d = NULL;
            int rc = pp_iter_next(it, 20, &idx, &d, &len);
            if (rc != 1)
                fail_msg("pp_imap chunksize %s: pp_iter_next #%zu returned %d (%s), expected 1", cn,
                         i, rc, pp_err_name(rc));
            if (idx != i)
                fail_msg("pp_imap chunksize %s: result #%zu has index %zu", cn, i, idx);
            assert_non_null(d);
            assert_int_equal(len, 4);
            int32_t v;
            memcpy(&v, d, 4);
            if (v != good((int32_t)i))
                fail_msg("pp_imap chunksize %s: item %zu gave %d, expected %d", cn, i, v,
                         good((int32_t)i));
            assert_null(pp_iter_error(it));
        }
        assert_rc(pp_iter_next(it, 20, NULL, NULL, NULL), 0);
        assert_rc(pp_iter_next(it, 0, NULL, NULL, NULL), 0);
        size_t done = 0, total = 0;
        assert_rc(pp_iter_progress(it, &done, &total), 0);
        assert_int_equal(done, n);
        assert_int_equal(total, n);
        pp_iter_free(it);
    }
    free(items);
    ppt_finish(pool);
}

static void test_imap_unordered_each_once(void **state) {
    (void)state;
    pp_pool_t *pool = ppt_pool(2);
    const size_t n = 5000;
    int32_t *items = make_items(n);
    const size_t chunks[] = {1, 0, 3, PP_CHUNK_AUTO};
    unsigned char *seen = malloc(n);
    assert_non_null(seen);
    for (size_t c = 0; c < sizeof chunks / sizeof chunks[0]; c++) {
        char cn[32];
        chunk_name(chunks[c], cn, sizeof cn);
        memset(seen, 0, n);
        pp_iter_t *it = NULL;
        assert_rc(pp_imap_unordered(pool, task_lin, items, 4, n, chunks[c], &it), 0);
        for (size_t i = 0; i < n; i++) {
            size_t idx = SIZE_MAX, len = 99;
            const void *d = NULL;
            int rc = pp_iter_next(it, 20, &idx, &d, &len);
            if (rc != 1)
                fail_msg("pp_imap_unordered chunksize %s: pp_iter_next #%zu returned %d (%s)", cn,
                         i, rc, pp_err_name(rc));
            if (idx >= n)
                fail_msg("pp_imap_unordered chunksize %s: index %zu out of range", cn, idx);
            if (seen[idx])
                fail_msg("pp_imap_unordered chunksize %s: index %zu reported twice", cn, idx);
            seen[idx] = 1;
            assert_int_equal(len, 4);
            int32_t v;
            memcpy(&v, d, 4);
            if (v != good((int32_t)idx))
                fail_msg("pp_imap_unordered chunksize %s: item %zu gave %d", cn, idx, v);
        }
        assert_rc(pp_iter_next(it, 20, NULL, NULL, NULL), 0);
        pp_iter_free(it);
    }
    free(seen);
    free(items);
    ppt_finish(pool);
}

static void test_imap_failures(void **state) {
    (void)state;
    pp_pool_t *pool = ppt_pool(2);
    const size_t n = 100;
    int32_t *items = make_items(n);
    items[0] |= F_FAIL;
    items[50] |= F_FAIL;
    items[99] |= F_FAIL;
    for (int unordered = 0; unordered < 2; unordered++) {
        const size_t chunks[] = {1, 6, 0};
        for (size_t c = 0; c < 3; c++) {
            pp_iter_t *it = NULL;
            if (unordered)
                assert_rc(pp_imap_unordered(pool, task_ctl, items, 4, n, chunks[c], &it), 0);
            else
                assert_rc(pp_imap(pool, task_ctl, items, 4, n, chunks[c], &it), 0);
            unsigned char seen[100] = {0};
            for (size_t i = 0; i < n; i++) {
                size_t idx = SIZE_MAX, len = 99;
                const void *d = NULL;
                int rc = pp_iter_next(it, 20, &idx, &d, &len);
                if (idx >= n)
                    fail_msg(
                        "imap failures (%s, cs %zu): call #%zu returned %d (%s) with index %zu",
                        unordered ? "unordered" : "ordered", chunks[c], i, rc, pp_err_name(rc),
                        idx);
                if (!unordered && idx != i)
                    fail_msg("imap failures (ordered, cs %zu): call #%zu has index %zu", chunks[c],
                             i, idx);
                if (seen[idx])
                    fail_msg("imap failures: index %zu reported twice", idx);
                seen[idx] = 1;
                int should_fail = idx == 0 || idx == 50 || idx == 99;
                if (should_fail) {
                    if (rc != PP_ETASK)
                        fail_msg("imap failures (%s, cs %zu): item %zu returned %d (%s), expected "
                                 "PP_ETASK",
                                 unordered ? "unordered" : "ordered", chunks[c], idx, rc,
                                 pp_err_name(rc));
                    const char *msg = pp_iter_error(it);
                    char want[16];
                    snprintf(want, sizeof want, "bad %zu", idx);
                    if (msg == NULL || strstr(msg, want) == NULL)
                        fail_msg("imap failures: pp_iter_error for item %zu is \"%s\", expected "
                                 "it to contain \"%s\"",
                                 idx, msg ? msg : "(null)", want);
                } else {
                    if (rc != 1)
                        fail_msg("imap failures: item %zu returned %d (%s), expected 1", idx, rc,
                                 pp_err_name(rc));
                    if (pp_iter_error(it) != NULL)
                        fail_msg("pp_iter_error is \"%s\" after a success", pp_iter_error(it));
                    int32_t v;
                    assert_int_equal(len, 4);
                    memcpy(&v, d, 4);
                    assert_int_equal(v, good((int32_t)idx));
                }
            }
            assert_rc(pp_iter_next(it, 20, NULL, NULL, NULL), 0);
            pp_iter_free(it);
        }
    }
    free(items);
    ppt_finish(pool);
}

static void test_iter_timeout(void **state) {
    (void)state;
    pp_pool_t *pool = ppt_pool(2);
    pp_iter_t *it = NULL;
    int32_t slow_items[1];
    slow_items[0] = 7 | F_SLOW20;
    assert_rc(pp_imap(pool, task_ctl, slow_items, 4, 1, 1, &it), 0);
    size_t idx = 99;
    assert_rc(pp_iter_next(it, 0, &idx, NULL, NULL), -ETIMEDOUT);
    assert_rc(pp_iter_next(it, 0.001, &idx, NULL, NULL), -ETIMEDOUT);
    const void *d = NULL;
    size_t len = 0;
    assert_rc(pp_iter_next(it, 10, &idx, &d, &len), 1);
    assert_int_equal(idx, 0);
    int32_t v;
    memcpy(&v, d, 4);
    assert_int_equal(v, good(7));
    assert_rc(pp_iter_next(it, 10, &idx, &d, &len), 0);
    pp_iter_free(it);
    ppt_finish(pool);
}

static void test_iter_early_free(void **state) {
    (void)state;
    pp_pool_t *pool = ppt_pool(2);
    const size_t n = 200000;
    int32_t *items = make_items(n);
    for (int variant = 0; variant < 4; variant++) {
        pp_iter_t *it = NULL;
        switch (variant) {
        case 0: assert_rc(pp_imap(pool, task_lin, items, 4, n, 4, &it), 0); break;
        case 1: assert_rc(pp_imap_unordered(pool, task_lin, items, 4, n, 0, &it), 0); break;
        case 2: assert_rc(pp_imap(pool, task_lin, items, 4, n, PP_CHUNK_AUTO, &it), 0); break;
        default: assert_rc(pp_imap(pool, task_lin, items, 4, n, 1, &it), 0); break;
        }
        int reads = variant == 3 ? 0 : 5;
        for (int i = 0; i < reads; i++) {
            size_t idx;
            const void *d;
            size_t len;
            assert_rc(pp_iter_next(it, 20, &idx, &d, &len), 1);
            if (variant != 1)
                assert_int_equal(idx, (size_t)i);
        }
        double t0 = ppt_now();
        pp_iter_free(it);
        double dt = ppt_now() - t0;
        if (dt > 2)
            fail_msg("early pp_iter_free (variant %d) took %.2f s", variant, dt);

        /* the pool still works */
        int32_t v = 11;
        void *r = NULL;
        size_t rl = 0;
        assert_rc(pp_apply(pool, task_lin, &v, 4, &r, &rl), 0);
        assert_int_equal(rl, 4);
        int32_t got;
        memcpy(&got, r, 4);
        assert_int_equal(got, good(11));
        free(r);
    }
    int32_t *res = make_results(1000);
    assert_rc(pp_map(pool, task_lin, items, 4, 1000, res, 4, 0), 0);
    check_results(res, 1000, NULL, "pp_map after early frees");
    free_results(res);
    free(items);
    double t0 = ppt_now();
    ppt_finish(pool);
    double dt = ppt_now() - t0;
    if (dt > 5)
        fail_msg("close+join after early iterator frees took %.2f s", dt);
}

static void test_imap_slow_consumer_window(void **state) {
    (void)state;
    pp_pool_t *pool = ppt_pool(2);
    const int workers = 2;
    const size_t cs = 4;
    const size_t bound = 4 * workers * cs + cs;
    const size_t n = 4000, reads = 250;
    int32_t *items = make_items(n);
    for (int unordered = 0; unordered < 2; unordered++) {
        pp_iter_t *it = NULL;
        if (unordered)
            assert_rc(pp_imap_unordered(pool, task_lin, items, 4, n, cs, &it), 0);
        else
            assert_rc(pp_imap(pool, task_lin, items, 4, n, cs, &it), 0);
        size_t max_ahead = 0;
        ppt_sleep_ms(50); /* let the workers run ahead as far as they may */
        for (size_t consumed = 0; consumed < reads;) {
            size_t done = 0, total = 0;
            assert_rc(pp_iter_progress(it, &done, &total), 0);
            assert_int_equal(total, n);
            if (done < consumed)
                fail_msg("pp_iter_progress: done %zu < %zu items already read", done, consumed);
            if (done - consumed > max_ahead)
                max_ahead = done - consumed;
            if (done - consumed > bound)
                fail_msg("%s imap, chunksize %zu, slow consumer: %zu items done but only %zu read "
                         "(%zu ahead; bound 4*workers*chunksize+chunksize = %zu)",
                         unordered ? "unordered" : "ordered", cs, done, consumed, done - consumed,
                         bound);
            size_t idx;
            const void *d;
            size_t len;
            assert_rc(pp_iter_next(it, 20, &idx, &d, &len), 1);
            if (!unordered)
                assert_int_equal(idx, consumed);
            int32_t v;
            memcpy(&v, d, 4);
            assert_int_equal(v, good((int32_t)idx));
            consumed++;
            ppt_sleep_ms(2);
        }
        print_message("%s: at most %zu items ahead of the consumer (bound %zu)\n",
                      unordered ? "unordered" : "ordered", max_ahead, bound);
        pp_iter_free(it);
    }
    free(items);
    ppt_finish(pool);
}

/* ---- imap_feed ------------------------------------------------------------------ */

/* item k: "k=<k>;" followed by (k*7)%97 letters; every 13th item is empty */
static size_t feed_item(size_t k, char *buf, size_t size) {
    if (k % 13 == 5)
        return 0;
    int n = snprintf(buf, size, "k=%zu;", k);
    size_t len = (size_t)n;
    size_t extra = (k * 7) % 97;
    for (size_t j = 0; j < extra && len < size; j++)
        buf[len++] = (char)('a' + (k + j) % 26);
    return len;
}

/* the task: "<len>:" then the bytes reversed */
static int task_reverse(const void *arg, size_t len, pp_buf_t *out) {
    char head[32];
    int h = snprintf(head, sizeof head, "%zu:", len);
    char *p = pp_buf_reserve(out, (size_t)h + len);
    if (!p)
        return pp_buf_fail(out, "reserve failed");
    memcpy(p, head, (size_t)h);
    const unsigned char *a = arg;
    for (size_t i = 0; i < len; i++)
        p[h + i] = (char)a[len - 1 - i];
    return 0;
}

/* task_reverse, but an item "CRASH" kills its worker */
static int task_reverse_or_crash(const void *arg, size_t len, pp_buf_t *out) {
    if (len == 5 && memcmp(arg, "CRASH", 5) == 0) {
        signal(SIGSEGV, SIG_DFL);
        raise(SIGKILL);
    }
    return task_reverse(arg, len, out);
}

static size_t expected_reverse(size_t k, char *buf, size_t size) {
    char item[256];
    size_t len = feed_item(k, item, sizeof item);
    int h = snprintf(buf, size, "%zu:", len);
    for (size_t i = 0; i < len; i++)
        buf[h + i] = item[len - 1 - i];
    return (size_t)h + len;
}

struct feed_state {
    size_t next, limit;
    int fail_after;     /* < 0: never; else return -EIO when next == fail_after */
    size_t crash_plus1; /* 0: none; else item crash_plus1-1 is "CRASH" */
    size_t calls;
    pthread_t consumer;
    int wrong_thread;
    atomic_int inside;
    int overlap;
    char buf[256]; /* reused for every item: the library copies it */
};

static int feed_counter(void *u, const void **item, size_t *len) {
    struct feed_state *s = u;
    if (atomic_fetch_add(&s->inside, 1) != 0)
        s->overlap = 1;
    s->calls++;
    if (!pthread_equal(pthread_self(), s->consumer))
        s->wrong_thread = 1;
    int rc;
    if (s->fail_after >= 0 && s->next == (size_t)s->fail_after) {
        rc = -EIO;
    } else if (s->next >= s->limit) {
        rc = 0;
    } else {
        memset(s->buf, '#', sizeof s->buf); /* the previous item must already be copied */
        if (s->crash_plus1 && s->next == s->crash_plus1 - 1) {
            memcpy(s->buf, "CRASH", 5);
            *len = 5;
        } else {
            *len = feed_item(s->next, s->buf, sizeof s->buf);
        }
        *item = s->buf;
        s->next++;
        rc = 1;
    }
    atomic_fetch_sub(&s->inside, 1);
    return rc;
}

static void check_feed_result(size_t idx, const void *d, size_t len, const char *what) {
    char want[300];
    size_t wl = expected_reverse(idx, want, sizeof want);
    if (d == NULL)
        fail_msg("%s: item %zu: data NULL", what, idx);
    if (len != wl || memcmp(d, want, wl) != 0)
        fail_msg("%s: item %zu: got %zu bytes \"%.*s\", expected %zu bytes \"%.*s\"", what, idx,
                 len, (int)len, (const char *)d, wl, (int)wl, want);
}

static void test_feed_ordered_unordered(void **state) {
    (void)state;
    pp_pool_t *pool = ppt_pool(2);
    const size_t n = 3000;
    const size_t chunks[] = {0, 1, 5};
    unsigned char *seen = malloc(n);
    assert_non_null(seen);
    for (int flags = PP_ORDERED; flags <= PP_UNORDERED; flags++) {
        for (size_t c = 0; c < 3; c++) {
            char what[64];
            snprintf(what, sizeof what, "pp_imap_feed %s chunksize %zu",
                     flags == PP_ORDERED ? "ordered" : "unordered", chunks[c]);
            struct feed_state *s = calloc(1, sizeof *s);
            assert_non_null(s);
            s->limit = n;
            s->fail_after = -1;
            s->consumer = pthread_self();
            pp_iter_t *it = NULL;
            assert_rc(pp_imap_feed(pool, task_reverse, feed_counter, s, chunks[c], flags, &it), 0);
            memset(seen, 0, n);
            for (size_t i = 0; i < n; i++) {
                size_t idx = SIZE_MAX, len = 0;
                const void *d = NULL;
                int rc = pp_iter_next(it, 20, &idx, &d, &len);
                if (rc != 1)
                    fail_msg("%s: pp_iter_next #%zu returned %d (%s)", what, i, rc,
                             pp_err_name(rc));
                if (idx >= n || seen[idx])
                    fail_msg("%s: index %zu out of range or seen twice", what, idx);
                seen[idx] = 1;
                if (flags == PP_ORDERED && idx != i)
                    fail_msg("%s: result #%zu has index %zu", what, i, idx);
                check_feed_result(idx, d, len, what);
            }
            int rc = pp_iter_next(it, 20, NULL, NULL, NULL);
            if (rc != 0)
                fail_msg("%s: after %zu results pp_iter_next returned %d (%s), expected 0", what, n,
                         rc, pp_err_name(rc));
            size_t done = 0, total = 0;
            assert_rc(pp_iter_progress(it, &done, &total), 0);
            assert_int_equal(done, n);
            assert_int_equal(total, n);
            if (s->wrong_thread)
                fail_msg("%s: the feed was called from another thread", what);
            if (s->overlap)
                fail_msg("%s: two feed calls overlapped", what);
            pp_iter_free(it);
            free(s);
        }
    }
    free(seen);
    ppt_finish(pool);
}

static void test_feed_error(void **state) {
    (void)state;
    pp_pool_t *pool = ppt_pool(2);
    for (int flags = PP_ORDERED; flags <= PP_UNORDERED; flags++) {
        const size_t chunks[] = {0, 1, 3, 16};
        for (size_t c = 0; c < 4; c++) {
            char what[64];
            snprintf(what, sizeof what, "feed error after 10 (%s, chunksize %zu)",
                     flags == PP_ORDERED ? "ordered" : "unordered", chunks[c]);
            struct feed_state *s = calloc(1, sizeof *s);
            assert_non_null(s);
            s->limit = 1000;
            s->fail_after = 10;
            s->consumer = pthread_self();
            pp_iter_t *it = NULL;
            assert_rc(pp_imap_feed(pool, task_reverse, feed_counter, s, chunks[c], flags, &it), 0);
            unsigned seen = 0;
            for (size_t i = 0; i < 10; i++) {
                size_t idx = SIZE_MAX, len = 0;
                const void *d = NULL;
                int rc = pp_iter_next(it, 20, &idx, &d, &len);
                if (rc != 1)
                    fail_msg("%s: result #%zu: pp_iter_next returned %d (%s) index %zu, expected 1 "
                             "(the 10 items before the feed error come first)",
                             what, i, rc, pp_err_name(rc), idx);
                if (idx >= 10 || (seen & (1u << idx)))
                    fail_msg("%s: bad or repeated index %zu", what, idx);
                seen |= 1u << idx;
                if (flags == PP_ORDERED && idx != i)
                    fail_msg("%s: result #%zu has index %zu", what, i, idx);
                check_feed_result(idx, d, len, what);
            }
            size_t idx = SIZE_MAX;
            int rc = pp_iter_next(it, 20, &idx, NULL, NULL);
            if (rc != -EIO || idx != 10)
                fail_msg("%s: after 10 results pp_iter_next returned %d (%s) with index %zu, "
                         "expected -EIO with index 10",
                         what, rc, pp_err_name(rc), idx);
            rc = pp_iter_next(it, 20, &idx, NULL, NULL);
            if (rc != 0)
                fail_msg("%s: after the feed error pp_iter_next returned %d (%s), expected 0", what,
                         rc, pp_err_name(rc));
            assert_rc(pp_iter_next(it, 0, NULL, NULL, NULL), 0);
            if (s->calls != 11)
                fail_msg("%s: the feed was called %zu times, expected 11 (not again after its "
                         "error)",
                         what, s->calls);
            size_t done = 0, total = 0;
            assert_rc(pp_iter_progress(it, &done, &total), 0);
            assert_int_equal(done, 10);
            assert_int_equal(total, 10);
            pp_iter_free(it);
            free(s);
        }
    }
    ppt_finish(pool);
}

/* ---- a worker killed under an iterator ------------------------------------------ */

static void test_iter_crash(void **state) {
    (void)state;
    /* a worker dies inside a chunk: that item reports PP_EWORKER (message
     * naming the signal), every other item of the chunk and of the input
     * still comes back right, once; for array input and for fed input */
    pp_pool_t *pool = ppt_pool(2);
    const size_t n = 40, crash = 12;
    int32_t *items = make_items(n);
    items[crash] |= F_CRASH;
    for (int variant = 0; variant < 4; variant++) {
        int fed = variant >= 2, unordered = variant & 1;
        char what[64];
        snprintf(what, sizeof what, "crash at %zu under %s %s", crash,
                 fed ? "pp_imap_feed" : "pp_imap", unordered ? "unordered" : "ordered");
        pp_iter_t *it = NULL;
        struct feed_state *s = NULL;
        if (fed) {
            s = calloc(1, sizeof *s);
            assert_non_null(s);
            s->limit = n;
            s->fail_after = -1;
            s->crash_plus1 = crash + 1;
            s->consumer = pthread_self();
            assert_rc(pp_imap_feed(pool, task_reverse_or_crash, feed_counter, s, 5,
                                   unordered ? PP_UNORDERED : PP_ORDERED, &it),
                      0);
        } else if (unordered) {
            assert_rc(pp_imap_unordered(pool, task_ctl, items, 4, n, 5, &it), 0);
        } else {
            assert_rc(pp_imap(pool, task_ctl, items, 4, n, 5, &it), 0);
        }
        unsigned char seen[40] = {0};
        for (size_t i = 0; i < n; i++) {
            size_t idx = SIZE_MAX, len = 0;
            const void *d = NULL;
            int rc = pp_iter_next(it, 20, &idx, &d, &len);
            if (idx >= n || seen[idx])
                fail_msg("%s: call #%zu returned %d (%s) with bad or repeated index %zu", what, i,
                         rc, pp_err_name(rc), idx);
            seen[idx] = 1;
            if (!unordered && idx != i)
                fail_msg("%s: call #%zu has index %zu", what, i, idx);
            if (idx == crash) {
                const char *msg = pp_iter_error(it);
                if (rc != PP_EWORKER || msg == NULL || strstr(msg, "SIGKILL") == NULL)
                    fail_msg("%s: the crashing item gave %d (%s) \"%s\", expected PP_EWORKER "
                             "naming SIGKILL",
                             what, rc, pp_err_name(rc), msg ? msg : "(null)");
                continue;
            }
            if (rc != 1)
                fail_msg("%s: item %zu returned %d (%s): %s", what, idx, rc, pp_err_name(rc),
                         pp_iter_error(it) ? pp_iter_error(it) : "");
            if (fed) {
                check_feed_result(idx, d, len, what);
            } else {
                int32_t v;
                assert_int_equal(len, 4);
                memcpy(&v, d, 4);
                if (v != good((int32_t)idx))
                    fail_msg("%s: item %zu gave %d, expected %d", what, idx, v, good((int32_t)idx));
            }
        }
        assert_rc(pp_iter_next(it, 20, NULL, NULL, NULL), 0);
        pp_iter_free(it);
        free(s);
    }
    free(items);
    assert_int_equal(pp_pool_size(pool), 2);
    ppt_finish(pool);
}

/* ---- large items ---------------------------------------------------------------- */

#define BIG_ITEM (100 * 1024)

static void fill_big(unsigned char *p, size_t k) {
    uint32_t x = (uint32_t)(k * 2654435761u + 1);
    for (size_t j = 0; j < BIG_ITEM; j++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[j] = (unsigned char)x;
    }
}

static uint64_t fnv1a(const void *p, size_t n) {
    const unsigned char *b = p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* result: 8-byte length then the item reversed */
static int task_big_reverse(const void *arg, size_t len, pp_buf_t *out) {
    uint64_t l = len;
    unsigned char *p = pp_buf_reserve(out, sizeof l + len);
    if (!p)
        return pp_buf_fail(out, "reserve %zu failed", len);
    memcpy(p, &l, sizeof l);
    const unsigned char *a = arg;
    for (size_t i = 0; i < len; i++)
        p[sizeof l + i] = a[len - 1 - i];
    return 0;
}

static int task_big_hash(const void *arg, size_t len, pp_buf_t *out) {
    uint64_t h = fnv1a(arg, len) ^ len;
    return pp_buf_append(out, &h, sizeof h);
}

struct big_feed {
    size_t next, limit;
    unsigned char *buf;
};

static int feed_big(void *u, const void **item, size_t *len) {
    struct big_feed *s = u;
    if (s->next >= s->limit)
        return 0;
    fill_big(s->buf, s->next);
    *item = s->buf;
    *len = BIG_ITEM;
    s->next++;
    return 1;
}

static void test_feed_big_items(void **state) {
    (void)state;
    pp_pool_t *pool = ppt_pool(2);
    const size_t n = 40;
    unsigned char *want = malloc(BIG_ITEM);
    assert_non_null(want);
    for (int flags = PP_ORDERED; flags <= PP_UNORDERED; flags++) {
        struct big_feed s = {0, n, malloc(BIG_ITEM)};
        assert_non_null(s.buf);
        pp_iter_t *it = NULL;
        assert_rc(pp_imap_feed(pool, task_big_reverse, feed_big, &s, flags == PP_ORDERED ? 0 : 2,
                               flags, &it),
                  0);
        unsigned char seen[40] = {0};
        for (size_t i = 0; i < n; i++) {
            size_t idx = SIZE_MAX, len = 0;
            const void *d = NULL;
            int rc = pp_iter_next(it, 20, &idx, &d, &len);
            if (rc != 1)
                fail_msg("feed of 100 KB items: pp_iter_next #%zu returned %d (%s): %s", i, rc,
                         pp_err_name(rc), pp_iter_error(it) ? pp_iter_error(it) : "");
            if (idx >= n || seen[idx])
                fail_msg("feed of 100 KB items: bad or repeated index %zu", idx);
            seen[idx] = 1;
            if (flags == PP_ORDERED)
                assert_int_equal(idx, i);
            if (len != 8 + BIG_ITEM)
                fail_msg("feed of 100 KB items: item %zu gave %zu bytes, expected %d", idx, len,
                         8 + BIG_ITEM);
            uint64_t l;
            memcpy(&l, d, 8);
            assert_int_equal(l, BIG_ITEM);
            fill_big(want, idx);
            const unsigned char *r = (const unsigned char *)d + 8;
            for (size_t j = 0; j < BIG_ITEM; j++)
                if (r[j] != want[BIG_ITEM - 1 - j])
                    fail_msg("feed of 100 KB items: item %zu byte %zu differs", idx, j);
        }
        assert_rc(pp_iter_next(it, 20, NULL, NULL, NULL), 0);
        pp_iter_free(it);
        free(s.buf);
    }

    /* pp_map and pp_imap with 100 KB items */
    const size_t m = 30;
    unsigned char *items = malloc(m * BIG_ITEM);
    assert_non_null(items);
    for (size_t k = 0; k < m; k++)
        fill_big(items + k * BIG_ITEM, k);
    uint64_t hashes[30];
    const size_t chunks[] = {0, 1, 4, PP_CHUNK_AUTO};
    for (size_t c = 0; c < 4; c++) {
        memset(hashes, 0, sizeof hashes);
        int rc =
            pp_map(pool, task_big_hash, items, BIG_ITEM, m, hashes, sizeof hashes[0], chunks[c]);
        if (rc != 0)
            fail_msg("pp_map of 100 KB items, chunksize %zu: %d (%s)", chunks[c], rc,
                     pp_err_name(rc));
        for (size_t k = 0; k < m; k++)
            if (hashes[k] != (fnv1a(items + k * BIG_ITEM, BIG_ITEM) ^ BIG_ITEM))
                fail_msg("pp_map of 100 KB items, chunksize %zu: item %zu hash differs", chunks[c],
                         k);
    }
    pp_iter_t *it = NULL;
    assert_rc(pp_imap(pool, task_big_hash, items, BIG_ITEM, m, 0, &it), 0);
    for (size_t k = 0; k < m; k++) {
        size_t idx, len;
        const void *d;
        assert_rc(pp_iter_next(it, 20, &idx, &d, &len), 1);
        assert_int_equal(idx, k);
        assert_int_equal(len, 8);
        uint64_t h;
        memcpy(&h, d, 8);
        assert_true(h == (fnv1a(items + k * BIG_ITEM, BIG_ITEM) ^ BIG_ITEM));
    }
    assert_rc(pp_iter_next(it, 20, NULL, NULL, NULL), 0);
    pp_iter_free(it);
    free(items);
    free(want);
    ppt_finish(pool);
}

/* ---- two threads on one pool -------------------------------------------------- */

struct thread_map {
    pp_pool_t *pool;
    int32_t base;
    size_t n;
    int rc;
    size_t bad; /* first wrong index, or SIZE_MAX */
};

static void *thread_map_main(void *arg) {
    struct thread_map *t = arg;
    int32_t *items = malloc(t->n * sizeof *items);
    int32_t *res = malloc(t->n * sizeof *res);
    t->bad = SIZE_MAX;
    if (!items || !res) {
        t->rc = -ENOMEM;
        free(items);
        free(res);
        return NULL;
    }
    for (size_t i = 0; i < t->n; i++) {
        items[i] = t->base + (int32_t)i;
        res[i] = CANARY;
    }
    t->rc = pp_map(t->pool, task_lin, items, 4, t->n, res, 4, 0);
    for (size_t i = 0; i < t->n; i++) {
        if (res[i] != good(t->base + (int32_t)i)) {
            t->bad = i;
            break;
        }
    }
    free(items);
    free(res);
    return NULL;
}

static void test_map_two_threads(void **state) {
    (void)state;
    pp_pool_t *pool = ppt_pool(2);
    struct thread_map t[2] = {{pool, 0, 100000, -1, 0}, {pool, 1000000, 100000, -1, 0}};
    pthread_t th[2];
    for (int k = 0; k < 2; k++)
        assert_int_equal(pthread_create(&th[k], NULL, thread_map_main, &t[k]), 0);
    for (int k = 0; k < 2; k++)
        pthread_join(th[k], NULL);
    for (int k = 0; k < 2; k++) {
        if (t[k].rc != 0)
            fail_msg("thread %d: pp_map returned %d (%s)", k, t[k].rc, pp_err_name(t[k].rc));
        if (t[k].bad != SIZE_MAX)
            fail_msg("thread %d: result %zu is wrong", k, t[k].bad);
    }
    ppt_finish(pool);
}

/* ---- results of varying sizes -------------------------------------------------- */

struct sized_item {
    uint32_t size, seed;
};

static unsigned char pattern(uint32_t seed, size_t j) {
    return (unsigned char)((seed * 131u + j * 31u + (j >> 8)) & 0xff);
}

static int task_sized(const void *arg, size_t len, pp_buf_t *out) {
    if (len != sizeof(struct sized_item))
        return pp_buf_fail(out, "bad len %zu", len);
    struct sized_item it;
    memcpy(&it, arg, sizeof it);
    if (it.size == 0)
        return 0;
    unsigned char *p = pp_buf_reserve(out, it.size);
    if (!p)
        return pp_buf_fail(out, "reserve %u failed", it.size);
    for (size_t j = 0; j < it.size; j++)
        p[j] = pattern(it.seed, j);
    return 0;
}

static void test_imap_varying_result_sizes(void **state) {
    (void)state;
    pp_pool_t *pool = ppt_pool(2);
    const uint32_t sizes[] = {0, 5000, 200000};
    const size_t n = 36;
    struct sized_item items[36];
    for (size_t k = 0; k < n; k++) {
        items[k].size = sizes[(k * 5 + k / 3) % 3];
        items[k].seed = (uint32_t)k;
    }
    const size_t chunks[] = {1, 4, 0, PP_CHUNK_AUTO};
    for (int unordered = 0; unordered < 2; unordered++) {
        for (size_t c = 0; c < 4; c++) {
            pp_iter_t *it = NULL;
            if (unordered)
                assert_rc(
                    pp_imap_unordered(pool, task_sized, items, sizeof items[0], n, chunks[c], &it),
                    0);
            else
                assert_rc(pp_imap(pool, task_sized, items, sizeof items[0], n, chunks[c], &it), 0);
            unsigned char seen[36] = {0};
            for (size_t i = 0; i < n; i++) {
                size_t idx = SIZE_MAX, len = 99;
                const void *d = NULL;
                int rc = pp_iter_next(it, 20, &idx, &d, &len);
                if (rc != 1)
                    fail_msg("varying sizes: pp_iter_next #%zu returned %d (%s): %s", i, rc,
                             pp_err_name(rc), pp_iter_error(it) ? pp_iter_error(it) : "");
                if (idx >= n || seen[idx])
                    fail_msg("varying sizes: bad or repeated index %zu", idx);
                seen[idx] = 1;
                if (!unordered)
                    assert_int_equal(idx, i);
                if (d == NULL)
                    fail_msg("varying sizes: item %zu: data NULL (len %zu)", idx, len);
                if (len != items[idx].size)
                    fail_msg("varying sizes: item %zu gave %zu bytes, expected %u", idx, len,
                             items[idx].size);
                const unsigned char *b = d;
                for (size_t j = 0; j < len; j++)
                    if (b[j] != pattern(items[idx].seed, j))
                        fail_msg("varying sizes: item %zu byte %zu is %u, expected %u", idx, j,
                                 b[j], pattern(items[idx].seed, j));
            }
            assert_rc(pp_iter_next(it, 20, NULL, NULL, NULL), 0);
            pp_iter_free(it);
        }
    }
    ppt_finish(pool);
}

int main(void) {
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core); /* crashing workers leave no core files */
    shc = mmap(NULL, sizeof *shc, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (shc == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    atomic_init(&shc->calls, 0);
    ppt_hang_guard(120);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_map_every_chunksize),
        cmocka_unit_test(test_map_empty),
        cmocka_unit_test(test_map_zero_sized_items_and_results),
        cmocka_unit_test(test_map_million),
        cmocka_unit_test(test_map_failing_items),
        cmocka_unit_test(test_map_async_error_message),
        cmocka_unit_test(test_map_wrong_result_size),
        cmocka_unit_test(test_map_crash_in_chunk),
        cmocka_unit_test(test_map_async_progress),
        cmocka_unit_test(test_map_async_free_cancels),
        cmocka_unit_test(test_map_invalid_args),
        cmocka_unit_test(test_map_after_close),
        cmocka_unit_test(test_imap_ordered),
        cmocka_unit_test(test_imap_unordered_each_once),
        cmocka_unit_test(test_imap_failures),
        cmocka_unit_test(test_iter_timeout),
        cmocka_unit_test(test_iter_early_free),
        cmocka_unit_test(test_imap_slow_consumer_window),
        cmocka_unit_test(test_feed_ordered_unordered),
        cmocka_unit_test(test_feed_error),
        cmocka_unit_test(test_iter_crash),
        cmocka_unit_test(test_feed_big_items),
        cmocka_unit_test(test_map_two_threads),
        cmocka_unit_test(test_imap_varying_result_sizes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
