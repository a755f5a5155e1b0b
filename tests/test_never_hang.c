/* test_never_hang.c - every call returns in bounded time with a result or a
 * documented error, whatever a task or a worker does.
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
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "procpool.h"
#include "helpers.h"
#include "internal.h" /* pp__test_alloc_fail */

#define BOUND 20.0 /* seconds any one result may take before we call it a hang */

/* ---- tasks ------------------------------------------------------------------ */

/* An item is a value (low 24 bits) plus flags; the good result of v is v*3+1. */
#define V_MASK 0x00ffffff
#define F_SEGV 0x01000000 /* die of SIGSEGV */
#define F_HANG 0x02000000 /* sleep 30 s (a task_timeout kills it) */
#define F_SLOW 0x04000000 /* sleep 2 ms first */

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
        raise(SIGSEGV);
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

static void imap_auto_death(int processes, int32_t flag, double task_timeout, int err, int rounds) {
    pp_pool_t *pool = pool_with(processes, task_timeout);
    const size_t n = 100, bad = 50;
    int32_t *items = make_items(n);
    items[bad] |= flag;
    for (int round = 0; round < rounds; round++) {
        char what[128];
        snprintf(what, sizeof what,
                 "ordered pp_imap, PP_CHUNK_AUTO, %d worker(s), item %zu %s "
                 "(round %d)",
                 processes, bad, flag == F_SEGV ? "crashes" : "times out", round);
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
    assert_rc(
        pp_map_async(pool, task_item, items, sizeof *items, n, res, sizeof *res, PP_CHUNK_AUTO, &f),
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

/* ======================================================================== */
/* 2. a crashing initializer: every map form fails in bounded time           */
/* ======================================================================== */

static char init_log[64]; /* a file the initializer appends a byte to, then crashes */

static void init_crash(void *arg) {
    (void)arg;
    int fd = open(init_log, O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t r = write(fd, "x", 1);
        (void)r;
        close(fd);
    }
    signal(SIGSEGV, SIG_DFL);
    raise(SIGSEGV);
}

static long init_runs(void) {
    struct stat st;
    return stat(init_log, &st) == 0 ? (long)st.st_size : -1;
}

struct map_thread {
    pp_pool_t *pool;
    int32_t *items, *res;
    size_t n;
    _Atomic int rc, done;
};

static void *map_thread_main(void *arg) {
    struct map_thread *m = arg;
    atomic_store(&m->rc, pp_map(m->pool, task_item, m->items, sizeof *m->items, m->n, m->res,
                                sizeof *m->res, 0));
    atomic_store(&m->done, 1);
    return NULL;
}

/* Every item of the iterator (n of them; for a feed, the items it fed)
 * fails PP_EWORKER with a message naming the initializer, each once, and
 * a feed's input ends with that error too; then the end, within BOUND s. */
static void iter_fails(pp_iter_t *it, size_t n, bool fed, const char *what) {
    double t0 = ppt_now();
    size_t reported = 0, idx, last = 0;
    unsigned char *seen = calloc(n + 1, 1);
    assert_non_null(seen);
    int rc;
    while ((rc = pp_iter_next(it, BOUND, &idx, NULL, NULL)) != 0) {
        if (rc == -ETIMEDOUT || ppt_now() - t0 > BOUND)
            fail_msg("%s: pp_iter_next still going after %.0f s (%zu reported)", what, BOUND,
                     reported);
        if (rc != PP_EWORKER)
            fail_msg("%s: item %zu: pp_iter_next returned %d (%s), expected PP_EWORKER", what, idx,
                     rc, pp_err_name(rc));
        const char *msg = pp_iter_error(it);
        if (!msg || !strstr(msg, "initializer"))
            fail_msg("%s: item %zu: the message \"%s\" does not name the initializer", what, idx,
                     msg ? msg : "(null)");
        if (idx > n || seen[idx]++)
            fail_msg("%s: index %zu out of range or reported twice", what, idx);
        reported++;
        last = idx;
    }
    if (fed) {
        /* the items fed before the end, then the end itself at index "fed" */
        if (reported == 0 || last != reported - 1)
            fail_msg("%s: %zu reports, the last at index %zu: expected the fed items, then the "
                     "end of the input",
                     what, reported, last);
    } else if (reported != n) {
        fail_msg("%s: %zu of %zu items reported", what, reported, n);
    }
    assert_rc(pp_iter_next(it, BOUND, NULL, NULL, NULL), 0);
    free(seen);
}

static int feed_ints(void *u, const void **item, size_t *len) {
    static int32_t v[1000];
    size_t *k = u;
    if (*k >= 1000)
        return 0;
    v[*k] = (int32_t)*k;
    *item = &v[*k];
    *len = sizeof v[0];
    ++*k;
    return 1;
}

static int feed_crash15(void *u, const void **item, size_t *len) {
    static int32_t v[100];
    size_t *k = u;
    if (*k >= 100)
        return 0;
    v[*k] = (int32_t)*k | (*k == 15 ? F_SEGV : 0);
    *item = &v[*k];
    *len = sizeof v[0];
    ++*k;
    return 1;
}

static void initializer_crash(pp_start_t method, bool check_storm) {
    snprintf(init_log, sizeof init_log, "/tmp/pp_never_hang_%d.log", (int)getpid());
    int lfd = open(init_log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(lfd >= 0);
    close(lfd);
    pp_options_t opt;
    pp_options_init(&opt);
    opt.processes = 2;
    opt.initializer = init_crash;
    opt.start_method = method;
    pp_pool_t *pool = NULL;
    fflush(stdout);
    fflush(stderr);
    assert_rc(pp_pool_create(&pool, &opt), 0);
    const size_t n = 1000;
    int32_t *items = make_items(n);
    int32_t *res = calloc(n, sizeof *res);
    assert_non_null(res);

    /* pp_apply: the documented start-up rule (five early deaths, ~1.5 s) */
    void *r = NULL;
    size_t rl = 0;
    double t0 = ppt_now();
    long v = 1;
    assert_rc(pp_apply(pool, task_item, &v, sizeof v, &r, &rl), PP_EWORKER);
    print_message("    pp_apply failed PP_EWORKER after %.2f s, %ld initializer runs\n",
                  ppt_now() - t0, init_runs());

    if (check_storm) {
        /* nothing left to do: the slots must stop being respawned */
        ppt_sleep_ms(300);
        long before = init_runs();
        ppt_sleep_ms(4000);
        long after = init_runs();
        if (after != before)
            fail_msg("workers were still respawned with no work to do: %ld more initializer "
                     "runs in 4 s",
                     after - before);
    }

    /* pp_map_async */
    pp_future_t *f = NULL;
    t0 = ppt_now();
    assert_rc(pp_map_async(pool, task_item, items, sizeof *items, n, res, sizeof *res, 0, &f), 0);
    if (pp_future_wait(f, BOUND) != 0)
        fail_msg("pp_map_async: still pending after %.0f s", BOUND);
    assert_rc(pp_future_get(f, 0, NULL, NULL), PP_EWORKER);
    if (!pp_future_error(f) || !strstr(pp_future_error(f), "initializer"))
        fail_msg("pp_map_async: message \"%s\"",
                 pp_future_error(f) ? pp_future_error(f) : "(null)");
    pp_future_free(f);
    print_message("    pp_map_async failed PP_EWORKER after %.2f s\n", ppt_now() - t0);

    /* pp_map, blocking: run it on a thread so a hang fails the test */
    struct map_thread m = {.pool = pool, .items = items, .res = res, .n = n};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, map_thread_main, &m), 0);
    t0 = ppt_now();
    while (!atomic_load(&m.done) && ppt_now() - t0 < BOUND)
        ppt_sleep_ms(5);
    if (!atomic_load(&m.done))
        fail_msg("pp_map: still blocked after %.0f s", BOUND);
    pthread_join(th, NULL);
    assert_rc(atomic_load(&m.rc), PP_EWORKER);

    /* the iterators */
    pp_iter_t *it = NULL;
    assert_rc(pp_imap(pool, task_item, items, sizeof *items, n, PP_CHUNK_AUTO, &it), 0);
    iter_fails(it, n, false, "pp_imap");
    pp_iter_free(it);
    assert_rc(pp_imap(pool, task_item, items, sizeof *items, n, 1, &it), 0);
    iter_fails(it, n, false, "pp_imap, chunksize 1");
    pp_iter_free(it);
    assert_rc(pp_imap_unordered(pool, task_item, items, sizeof *items, n, 0, &it), 0);
    iter_fails(it, n, false, "pp_imap_unordered");
    pp_iter_free(it);
    size_t k = 0;
    assert_rc(pp_imap_feed(pool, task_item, feed_ints, &k, 0, PP_ORDERED, &it), 0);
    iter_fails(it, n, true, "pp_imap_feed, ordered");
    pp_iter_free(it);
    k = 0;
    assert_rc(pp_imap_feed(pool, task_item, feed_ints, &k, 4, PP_UNORDERED, &it), 0);
    iter_fails(it, n, true, "pp_imap_feed, unordered");
    pp_iter_free(it);

    /* and single tasks still fail, now at once */
    t0 = ppt_now();
    assert_rc(pp_apply(pool, task_item, &v, sizeof v, &r, &rl), PP_EWORKER);
    print_message("    then pp_apply failed after %.2f s; %ld initializer runs in all\n",
                  ppt_now() - t0, init_runs());
    if (check_storm) {
        ppt_sleep_ms(300);
        long before = init_runs();
        ppt_sleep_ms(2000);
        if (init_runs() != before)
            fail_msg("workers respawned with no work to do after the maps");
    }
    t0 = ppt_now();
    ppt_finish(pool);
    if (ppt_now() - t0 > BOUND)
        fail_msg("close + join took %.1f s", ppt_now() - t0);
    free(items);
    free(res);
    unlink(init_log);
}

static void test_initializer_crash_fork(void **state) {
    (void)state;
    initializer_crash(PP_START_FORK, true);
}

static void test_initializer_crash_forkserver(void **state) {
    (void)state;
    initializer_crash(PP_START_FORKSERVER, false);
}

/* The same stop by terminate: an ordered iterator holding results behind an
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

/* ======================================================================== */
/* 10. a task destroys a pool of its parent                                  */
/* ======================================================================== */

/* The pool to destroy comes as the argument: the worker's copy of it (the
 * pool struct existed when the worker was forked). */
static int task_destroy_pool(const void *arg, size_t len, pp_buf_t *out) {
    pp_pool_t *p;
    if (len != sizeof p)
        return pp_buf_fail(out, "bad len %zu", len);
    memcpy(&p, arg, sizeof p);
    signal(SIGSEGV, SIG_DFL);
    signal(SIGBUS, SIG_DFL);
    pp_pool_destroy(p); /* foreign here: only this process's copies go */
    pp_pool_destroy(p); /* twice: still harmless */
    /* the worker's own channel must still work: a result large enough to
     * need its memfd path, then the ring */
    static char big[200 * 1024];
    memset(big, 7, sizeof big);
    if (pp_buf_append(out, big, sizeof big) != 0)
        return pp_buf_fail(out, "append failed");
    return 0;
}

static void destroy_from_task(pp_pool_t *runner, pp_pool_t *target, const char *what) {
    for (int round = 0; round < 3; round++) {
        void *r = NULL;
        size_t rl = 0;
        int rc = pp_apply(runner, task_destroy_pool, &target, sizeof target, &r, &rl);
        if (rc != 0)
            fail_msg("round %d: a task that destroyed %s failed %d (%s)", round, what, rc,
                     pp_err_name(rc));
        assert_int_equal(rl, 200 * 1024);
        assert_int_equal(((char *)r)[rl - 1], 7);
        free(r);
    }
}

static void test_task_destroys_a_pool(void **state) {
    (void)state;
    pp_pool_t *a = pool_with(1, 0);
    pp_pool_t *b = pool_with(1, 0);
    destroy_from_task(b, a, "another pool of the parent (made before its own)");
    destroy_from_task(b, b, "its own pool");
    destroy_from_task(a, a, "its own pool (the first one)");
    /* both pools still work in the parent */
    int32_t x = 5;
    void *r = NULL;
    size_t rl = 0;
    assert_rc(pp_apply(a, task_item, &x, sizeof x, &r, &rl), 0);
    assert_int_equal(*(int32_t *)r, good(5));
    free(r);
    ppt_finish(b);
    ppt_finish(a);
}

/* ======================================================================== */
/* 11. a protocol breach fails the task it hit, not the tasks queued behind  */
/* ======================================================================== */

/* Sends a junk message (no memfd) on the worker's socket to the parent, as
 * a broken worker could: the parent reads it in place of the memfd of the
 * next large result, which breaks the protocol. */
static int task_junk_on_socket(const void *arg, size_t len, pp_buf_t *out) {
    (void)arg;
    (void)len;
    int sent = 0;
    for (int fd = 3; fd < 1024 && !sent; fd++) {
        struct stat st;
        int type = 0;
        socklen_t tl = sizeof type;
        if (fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode) ||
            getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) != 0 || type != SOCK_SEQPACKET)
            continue;
        sent = send(fd, "j", 1, MSG_DONTWAIT | MSG_NOSIGNAL) == 1;
    }
    if (!sent)
        return pp_buf_fail(out, "no SEQPACKET socket found in the worker");
    int32_t r = 1;
    return pp_buf_append(out, &r, sizeof r);
}

static int task_big(const void *arg, size_t len, pp_buf_t *out) {
    (void)arg;
    (void)len;
    void *p = pp_buf_reserve(out, 100 * 1024); /* past the inline limit: a memfd */
    if (!p)
        return pp_buf_fail(out, "reserve failed");
    memset(p, 1, 100 * 1024);
    return 0;
}

static void test_breach_requeues_unstarted(void **state) {
    (void)state;
    pp_options_t opt;
    pp_options_init(&opt);
    opt.processes = 1;
    opt.shm_size = 16u << 20; /* too small for result arenas: large results go by memfd */
    pp_pool_t *pool = NULL;
    fflush(stdout);
    fflush(stderr);
    assert_rc(pp_pool_create(&pool, &opt), 0);
    enum { N = 400 };
    int failed_total = 0;
    for (int round = 0; round < 3; round++) {
        /* warm up: tiny tasks make the worker's queue deep */
        pp_future_t *f[N];
        for (int32_t i = 0; i < N; i++)
            assert_rc(pp_apply_async(pool, task_item, &i, sizeof i, &f[i]), 0);
        for (int i = 0; i < N; i++) {
            assert_rc(pp_future_wait(f[i], BOUND), 0);
            pp_future_free(f[i]);
        }
        pp_future_t *junk = NULL, *big = NULL;
        assert_rc(pp_apply_async(pool, task_junk_on_socket, NULL, 0, &junk), 0);
        assert_rc(pp_apply_async(pool, task_big, NULL, 0, &big), 0);
        for (int32_t i = 0; i < N; i++)
            assert_rc(pp_apply_async(pool, task_item, &i, sizeof i, &f[i]), 0);
        if (pp_future_wait(junk, BOUND) != 0 || pp_future_wait(big, BOUND) != 0)
            fail_msg("round %d: the breaching tasks are still pending after %.0f s", round, BOUND);
        assert_rc(pp_future_get(junk, 0, NULL, NULL), 0);
        int rc = pp_future_get(big, 0, NULL, NULL);
        if (rc != PP_EPROTO)
            fail_msg("round %d: the task whose result met the junk gave %d (%s), expected "
                     "PP_EPROTO",
                     round, rc, pp_err_name(rc));
        int failed = 0;
        const char *first = NULL;
        for (int i = 0; i < N; i++) {
            const void *d = NULL;
            size_t n = 0;
            rc = pp_future_get(f[i], BOUND, &d, &n);
            if (rc == -ETIMEDOUT)
                fail_msg("round %d: task %d still pending after %.0f s", round, i, BOUND);
            if (rc != 0) {
                failed++;
                if (!first)
                    first = pp_err_name(rc);
            } else if (n != 4 || *(const int32_t *)d != good(i)) {
                fail_msg("round %d: task %d succeeded with a wrong result", round, i);
            }
        }
        failed_total += failed;
        if (failed)
            fail_msg("round %d: %d of the %d tasks queued behind the breach failed (first: %s); "
                     "only the task it hit may fail",
                     round, failed, N, first);
        for (int i = 0; i < N; i++)
            pp_future_free(f[i]);
        pp_future_free(junk);
        pp_future_free(big);
    }
    assert_int_equal(failed_total, 0);
    assert_int_equal(pp_pool_size(pool), 1);
    ppt_finish(pool);
}

/* ======================================================================== */
/* 12. allocation failures on the retry paths and at supervisor start        */
/* ======================================================================== */

/* The library asks pp__test_alloc_fail (src/internal.h) before the
 * allocations on its failure paths; this one fails every allocation of the
 * sites listed in fail_sites ("a,b,c"). */
static char fail_sites[128];
static _Atomic long injected;

static bool inject(const char *site) {
    size_t n = strlen(site);
    for (const char *p = fail_sites; (p = strstr(p, site)) != NULL; p += n)
        if ((p == fail_sites || p[-1] == ',') && (p[n] == ',' || p[n] == '\0')) {
            atomic_fetch_add(&injected, 1);
            return true;
        }
    return false;
}

static void inject_on(const char *sites) {
    snprintf(fail_sites, sizeof fail_sites, "%s", sites);
    atomic_store(&injected, 0);
    pp__test_alloc_fail = inject;
}

static void inject_off(void) {
    pp__test_alloc_fail = NULL;
    fail_sites[0] = '\0';
}

/* pp_map_async, chunks of 10, item 15 crashes: items 10..14 and 16..19 (and
 * the chunks queued behind) must be sent again, and that fails. */
static void test_enomem_map_retry(void **state) {
    (void)state;
    pp_pool_t *pool = pool_with(1, 0);
    const size_t n = 100;
    int32_t *items = make_items(n);
    items[15] |= F_SEGV;
    int32_t *res = calloc(n, sizeof *res);
    assert_non_null(res);
    inject_on("map.retry");
    pp_future_t *f = NULL;
    assert_rc(pp_map_async(pool, task_item, items, sizeof *items, n, res, sizeof *res, 10, &f), 0);
    int w = pp_future_wait(f, BOUND);
    inject_off();
    if (w != 0) {
        size_t done = 0, total = 0;
        pp_future_progress(f, &done, &total);
        fail_msg("a map whose resend could not be allocated is still pending after %.0f s "
                 "(progress %zu/%zu, %ld allocations failed)",
                 BOUND, done, total, atomic_load(&injected));
    }
    assert_true(atomic_load(&injected) > 0);
    assert_rc(pp_future_get(f, 0, NULL, NULL), -ENOMEM);
    const char *msg = pp_future_error(f);
    if (!msg || !strstr(msg, "item 10"))
        fail_msg("message \"%s\", expected item 10", msg ? msg : "(null)");
    /* items before the crash were done; later chunks queued on the dead
     * worker had to be sent again too, and failed the same way */
    for (size_t i = 0; i < n; i++)
        if ((i < 10 || i >= 20) && res[i] != good((int32_t)i) && (i < 10 || res[i] != 0))
            fail_msg("results[%zu] = %d, expected %d", i, res[i], good((int32_t)i));
    pp_future_free(f);
    free(res);
    free(items);
    ppt_finish(pool);
}

/* An ordered iterator: the resend fails, and so does recording the failure
 * (the one-item chunk for the crashed item, the failed ranges): it must
 * still end, with -ENOMEM, after the results it holds. */
static void iter_enomem(const char *sites, bool fed, const char *what) {
    pp_pool_t *pool = pool_with(1, 0);
    const size_t n = 100;
    int32_t *items = make_items(n);
    items[15] |= F_SEGV;
    pp_iter_t *it = NULL;
    inject_on(sites);
    size_t k = 0;
    if (fed) /* feed_crash15 feeds the same 100 items, item 15 crashing */
        assert_rc(pp_imap_feed(pool, task_item, feed_crash15, &k, 10, PP_ORDERED, &it), 0);
    else
        assert_rc(pp_imap(pool, task_item, items, sizeof *items, n, 10, &it), 0);
    double t0 = ppt_now();
    size_t got = 0, idx;
    int rc;
    bool enomem = false;
    while ((rc = pp_iter_next(it, BOUND, &idx, NULL, NULL)) != 0) {
        if (rc == -ETIMEDOUT || ppt_now() - t0 > BOUND)
            fail_msg("%s: still going after %.0f s (%zu results)", what, BOUND, got);
        if (rc == -ENOMEM)
            enomem = true;
        else if (rc != 1 && !(rc == PP_EWORKER && idx == 15))
            fail_msg("%s: item %zu: %d (%s)", what, idx, rc, pp_err_name(rc));
        got++;
    }
    if (!enomem)
        fail_msg("%s: no -ENOMEM reported", what);
    inject_off();
    assert_true(atomic_load(&injected) > 0);
    pp_iter_free(it);
    free(items);
    ppt_finish(pool);
}

static void test_enomem_iter_retry(void **state) {
    (void)state;
    iter_enomem("map.retry", false, "pp_imap, resend not allocated");
    iter_enomem("map.retry,map.chunk_res", false, "pp_imap, resend and failure not allocated");
    iter_enomem("map.retry_blob", true, "pp_imap_feed, resend not allocated");
    iter_enomem("map.retry_blob,map.chunk_res", true,
                "pp_imap_feed, resend and failure not allocated");
}

/* The supervisor's poll set: pp_pool_create fails -ENOMEM, leaving nothing.
 * In a child process, so that a crash shows as a failure of this test. */
static void test_enomem_supervisor_start(void **state) {
    (void)state;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        signal(SIGSEGV, SIG_DFL);
        signal(SIGBUS, SIG_DFL);
        alarm(30);
        int fds = ppt_count_fds();
        inject_on("supervise.poll_set");
        pp_pool_t *pool = (pp_pool_t *)1;
        int rc = pp_pool_create(&pool, NULL);
        inject_off();
        if (rc != -ENOMEM || pool != NULL)
            _exit(10);
        if (ppt_count_fds() != fds)
            _exit(11);
        pid_t kids[8];
        if (ppt_children_of(getpid(), kids, 8) != 0)
            _exit(12);
        /* and the next create works */
        if (pp_pool_create(&pool, NULL) != 0)
            _exit(13);
        pp_pool_destroy(pool);
        _exit(0);
    }
    int st = 0;
    double t0 = ppt_now();
    while (waitpid(pid, &st, WNOHANG) == 0) {
        if (ppt_now() - t0 > 40) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            fail_msg("pp_pool_create with the poll set not allocated: still running after 40 s");
        }
        ppt_sleep_ms(10);
    }
    if (WIFSIGNALED(st))
        fail_msg("pp_pool_create with the poll set not allocated: the process died of signal "
                 "%d",
                 WTERMSIG(st));
    if (WEXITSTATUS(st) != 0)
        fail_msg("pp_pool_create with the poll set not allocated: check %d failed "
                 "(10: not -ENOMEM, 11: fds left, 12: children left, 13: next create)",
                 WEXITSTATUS(st));
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
        cmocka_unit_test(test_initializer_crash_fork),
        cmocka_unit_test(test_initializer_crash_forkserver),
        cmocka_unit_test(test_imap_terminate_with_gap),
        cmocka_unit_test(test_task_destroys_a_pool),
        cmocka_unit_test(test_breach_requeues_unstarted),
        cmocka_unit_test(test_enomem_map_retry),
        cmocka_unit_test(test_enomem_iter_retry),
        cmocka_unit_test(test_enomem_supervisor_start),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
