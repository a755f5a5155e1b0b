/* test_queue_epoll.c - a completion queue driven from a plain epoll loop:
 * pp_queue_fd is readable exactly while a done future waits in the queue
 * (level-triggered), every future comes out once with its own result or
 * error, also for 1000+ tasks submitted while the loop runs beside a
 * timerfd, for futures of two pools, and for failed, crashed, timed-out
 * and cancelled tasks. Timings are never pass/fail: waits have generous
 * bounds that only catch a hang. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "procpool.h"
#include "helpers.h"

#define HANG_MS 30000 /* an epoll wait this long means something hangs */

/* ---- tasks ---------------------------------------------------------------- */

struct item {
    long index;
    int fail;
};

/* result: {index, index * index + 7}; a failing item says which it is */
static int task_item(const void *arg, size_t len, pp_buf_t *out) {
    struct item it;
    if (len != sizeof it)
        return pp_buf_fail(out, "bad len %zu", len);
    memcpy(&it, arg, sizeof it);
    if (it.fail)
        return pp_buf_fail(out, "item %ld refused", it.index);
    long r[2] = {it.index, it.index * it.index + 7};
    return pp_buf_append(out, r, sizeof r);
}

static int task_status_5(const void *arg, size_t len, pp_buf_t *out) {
    (void)arg;
    (void)len;
    pp_buf_fail(out, "five it is");
    return 5;
}

static int task_die(const void *arg, size_t len, pp_buf_t *out) {
    (void)arg;
    (void)len;
    (void)out;
    raise(SIGKILL);
    return 0;
}

/* ---- helpers -------------------------------------------------------------- */

static pp_queue_t *new_queue(void) {
    pp_queue_t *q = NULL;
    assert_rc(pp_queue_create(&q), 0);
    assert_non_null(q);
    assert_true(pp_queue_fd(q) >= 0);
    return q;
}

/* An epoll set watching the queue's descriptor for EPOLLIN (level-triggered,
 * data.u32 = 1). */
static int epoll_on_queue(pp_queue_t *q) {
    int ep = epoll_create1(EPOLL_CLOEXEC);
    assert_true(ep >= 0);
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = 1};
    assert_int_equal(epoll_ctl(ep, EPOLL_CTL_ADD, pp_queue_fd(q), &ev), 0);
    return ep;
}

/* 1 when the set reports something readable within ms (0: look once). */
static int readable(int ep, int ms) {
    struct epoll_event ev;
    int n;
    while ((n = epoll_wait(ep, &ev, 1, ms)) < 0 && errno == EINTR) {
    }
    assert_true(n >= 0);
    return n;
}

static pp_future_t *submit_sleep(pp_pool_t *pool, int ms) {
    pp_future_t *f = NULL;
    assert_rc(pp_submit(pool, ppt_task_sleep_ms, &ms, sizeof ms, NULL, &f), 0);
    assert_non_null(f);
    return f;
}

static size_t index_of(pp_future_t *const *fs, size_t n, const pp_future_t *f) {
    for (size_t i = 0; i < n; i++)
        if (fs[i] == f)
            return i;
    return n;
}

/* ---- level-triggered readiness -------------------------------------------- */

static void test_level_triggered(void **state) {
    (void)state;
    pp_pool_t *pool = ppt_pool(2);
    pp_queue_t *q = new_queue();
    int ep = epoll_on_queue(q);
    pp_future_t *f = (pp_future_t *)&f;

    /* empty: not readable, and nothing is left to deliver */
    assert_int_equal(readable(ep, 0), 0);
    assert_rc(pp_queue_next(q, 0, &f), 0);
    assert_null(f);

    /* one done future: readable, and stays so however often we look */
    pp_future_t *a = submit_sleep(pool, 0);
    assert_rc(pp_queue_add(q, a), 0);
    assert_int_equal(readable(ep, HANG_MS), 1);
    assert_true(pp_future_ready(a));
    assert_int_equal(readable(ep, 0), 1);
    assert_int_equal(readable(ep, 0), 1);
    assert_rc(pp_queue_next(q, 0, &f), 1);
    assert_ptr_equal(f, a);
    /* the last one taken: no longer readable, drained */
    assert_int_equal(readable(ep, 0), 0);
    assert_rc(pp_queue_next(q, 0, &f), 0);
    assert_null(f);
    assert_int_equal(ppt_get_long(a, 0), 0);
    pp_future_free(a);

    /* two done: readable until the second is taken too */
    pp_future_t *b = submit_sleep(pool, 1), *c = submit_sleep(pool, 2);
    assert_rc(pp_queue_add(q, b), 0);
    assert_rc(pp_queue_add(q, c), 0);
    pp_future_t *bc[2] = {b, c};
    assert_rc(pp_wait(bc, 2, PP_ALL_COMPLETED, HANG_MS / 1000.0), 2);
    assert_int_equal(readable(ep, HANG_MS), 1);
    pp_future_t *first = NULL, *second = NULL;
    assert_rc(pp_queue_next(q, 0, &first), 1);
    assert_true(first == b || first == c);
    assert_int_equal(readable(ep, HANG_MS), 1); /* the other one still waits */
    assert_rc(pp_queue_next(q, 0, &second), 1);
    assert_true(second == (first == b ? c : b));
    assert_int_equal(readable(ep, 0), 0);
    assert_rc(pp_queue_next(q, 0, &f), 0);
    assert_int_equal(ppt_get_long(b, 0), 1);
    assert_int_equal(ppt_get_long(c, 0), 2);
    pp_future_free(b);
    pp_future_free(c);

    /* a future done before it is added: readable at once */
    pp_future_t *d = submit_sleep(pool, 3);
    assert_rc(pp_future_wait(d, HANG_MS / 1000.0), 0);
    assert_rc(pp_queue_add(q, d), 0);
    assert_int_equal(readable(ep, 0), 1);
    assert_rc(pp_queue_next(q, 0, &f), 1);
    assert_ptr_equal(f, d);
    assert_int_equal(readable(ep, 0), 0);
    pp_future_free(d);

    /* a pending one: not readable while it runs, readable again once done */
    pp_future_t *e = submit_sleep(pool, 300);
    assert_rc(pp_queue_add(q, e), 0);
    int seen = readable(ep, 0);
    if (!pp_future_ready(e))
        assert_int_equal(seen, 0);
    f = (pp_future_t *)&f;
    int rc = pp_queue_next(q, 0, &f);
    if (rc == -ETIMEDOUT) {
        assert_null(f);
        assert_int_equal(readable(ep, HANG_MS), 1);
        assert_rc(pp_queue_next(q, 0, &f), 1);
    } else {
        assert_rc(rc, 1); /* only on a machine that stalled us for 300 ms */
    }
    assert_ptr_equal(f, e);
    assert_int_equal(readable(ep, 0), 0);
    assert_rc(pp_queue_next(q, 0, &f), 0);
    assert_int_equal(ppt_get_long(e, 0), 300);
    pp_future_free(e);

    /* and a blocking pp_queue_next wakes for the next one */
    pp_future_t *g = submit_sleep(pool, 50);
    assert_rc(pp_queue_add(q, g), 0);
    assert_rc(pp_queue_next(q, HANG_MS / 1000.0, &f), 1);
    assert_ptr_equal(f, g);
    assert_int_equal(readable(ep, 0), 0);
    pp_future_free(g);

    close(ep);
    pp_queue_destroy(q);
    ppt_finish(pool);
}

/* ---- an epoll loop with a timerfd, 1000+ tasks submitted from it --------- */

#define MANY 1500
#define BATCH 100
#define FAIL_EVERY 97

static void check_item(const struct item *it, pp_future_t *f) {
    const void *d = NULL;
    size_t len = 0;
    assert_true(pp_future_ready(f));
    int rc = pp_future_get(f, 0, &d, &len);
    if (it->fail) {
        char want[64];
        snprintf(want, sizeof want, "item %ld refused", it->index);
        assert_rc(rc, PP_ETASK);
        assert_non_null(pp_future_error(f));
        assert_string_equal(pp_future_error(f), want);
        assert_int_equal(pp_future_task_status(f), 1);
    } else {
        long r[2];
        assert_rc(rc, 0);
        assert_int_equal(len, sizeof r);
        memcpy(r, d, sizeof r);
        assert_int_equal(r[0], it->index);
        assert_int_equal(r[1], it->index * it->index + 7);
    }
}

static void test_epoll_loop_many(void **state) {
    (void)state;
    static struct item items[MANY];
    static pp_future_t *fs[MANY];
    static int seen[MANY];
    memset(seen, 0, sizeof seen);
    memset(fs, 0, sizeof fs);

    pp_pool_t *pool = ppt_pool(2);
    pp_queue_t *q = new_queue();
    int ep = epoll_on_queue(q);
    int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    assert_true(tfd >= 0);
    struct itimerspec its = {.it_interval = {0, 2000000}, .it_value = {0, 2000000}};
    assert_int_equal(timerfd_settime(tfd, 0, &its, NULL), 0);
    struct epoll_event tev = {.events = EPOLLIN, .data.u32 = 2};
    assert_int_equal(epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &tev), 0);

    size_t submitted = 0, delivered = 0, failed = 0;
    unsigned long long ticks = 0, drains = 0;
    while (delivered < MANY) {
        struct epoll_event ev[4];
        int n = epoll_wait(ep, ev, 4, HANG_MS);
        if (n < 0 && errno == EINTR)
            continue;
        assert_true(n > 0); /* the timer alone ticks every 2 ms */
        for (int k = 0; k < n; k++) {
            if (ev[k].data.u32 == 2) {
                uint64_t expirations;
                assert_int_equal(read(tfd, &expirations, sizeof expirations),
                                 (ssize_t)sizeof expirations);
                ticks += expirations;
                /* work arrives while earlier work is being delivered */
                for (size_t j = 0; j < BATCH && submitted < MANY; j++, submitted++) {
                    items[submitted] = (struct item){(long)submitted, submitted % FAIL_EVERY == 5};
                    assert_rc(pp_submit(pool, task_item, &items[submitted], sizeof(struct item),
                                        NULL, &fs[submitted]),
                              0);
                    assert_rc(pp_queue_add(q, fs[submitted]), 0);
                }
                continue;
            }
            assert_int_equal(ev[k].data.u32, 1);
            drains++;
            pp_future_t *f;
            int rc;
            while ((rc = pp_queue_next(q, 0, &f)) == 1) {
                size_t i = index_of(fs, submitted, f);
                assert_true(i < submitted); /* one of ours, not yet delivered */
                assert_int_equal(seen[i]++, 0);
                check_item(&items[i], f);
                failed += items[i].fail;
                fs[i] = NULL;
                pp_future_free(f);
                delivered++;
            }
            if (rc == 0) /* drained: everything added so far came out */
                assert_int_equal(delivered, submitted);
            else
                assert_rc(rc, -ETIMEDOUT);
        }
    }
    print_message("%d tasks delivered in %llu drains, %llu timer ticks\n", MANY, drains, ticks);
    assert_int_equal(submitted, MANY);
    for (size_t i = 0; i < MANY; i++)
        assert_int_equal(seen[i], 1);
    assert_int_equal(failed, (MANY - 5 + FAIL_EVERY - 1) / FAIL_EVERY);

    /* nothing is left: not readable, drained, and stays so */
    assert_int_equal(epoll_ctl(ep, EPOLL_CTL_DEL, tfd, NULL), 0);
    assert_int_equal(readable(ep, 0), 0);
    pp_future_t *f = (pp_future_t *)&f;
    assert_rc(pp_queue_next(q, 0, &f), 0);
    assert_null(f);
    assert_rc(pp_queue_next(q, -1, &f), 0); /* no limit: still returns at once */

    assert_rc(pp_pool_close(pool), 0);
    assert_rc(pp_pool_join(pool), 0);
    pp_stats_t st;
    assert_rc(pp_pool_stats(pool, &st), 0);
    assert_int_equal(st.submitted, MANY);
    assert_int_equal(st.completed, MANY - failed);
    assert_int_equal(st.failed, failed);
    assert_int_equal(st.cancelled, 0);
    pp_pool_destroy(pool);
    close(tfd);
    close(ep);
    pp_queue_destroy(q);
}

/* ---- failures come out of the queue with their errors --------------------- */

static void test_failures_delivered(void **state) {
    (void)state;
    pp_options_t opt;
    pp_options_init(&opt);
    opt.processes = 1; /* one worker: the cancelled task is queued behind a sleeper */
    pp_pool_t *pool = NULL;
    fflush(stdout);
    assert_rc(pp_pool_create(&pool, &opt), 0);
    pp_queue_t *q = new_queue();
    int ep = epoll_on_queue(q);

    enum { SLEEPER, CANCELLED, STATUS5, DIES, OVERRUNS, FINE, N };
    pp_future_t *fs[N];
    fs[SLEEPER] = submit_sleep(pool, 1000);
    fs[CANCELLED] = submit_sleep(pool, 0);
    assert_rc(pp_submit(pool, task_status_5, NULL, 0, NULL, &fs[STATUS5]), 0);
    assert_rc(pp_submit(pool, task_die, NULL, 0, NULL, &fs[DIES]), 0);
    pp_task_opts_t to;
    pp_task_opts_init(&to);
    to.timeout = 0.2;
    int long_ms = 20000;
    assert_rc(pp_submit(pool, ppt_task_sleep_ms, &long_ms, sizeof long_ms, &to, &fs[OVERRUNS]), 0);
    fs[FINE] = submit_sleep(pool, 7);
    for (int i = 0; i < N; i++)
        assert_rc(pp_queue_add(q, fs[i]), 0);
    /* the single worker sleeps for a second: the second task has not started */
    assert_int_equal(pp_future_cancel(fs[CANCELLED]), 1);

    int seen[N] = {0};
    size_t delivered = 0;
    for (;;) {
        assert_int_equal(readable(ep, HANG_MS), 1);
        pp_future_t *f;
        int rc;
        while ((rc = pp_queue_next(q, 0, &f)) == 1) {
            size_t i = index_of(fs, N, f);
            assert_true(i < N);
            assert_int_equal(seen[i]++, 0);
            delivered++;
        }
        if (rc == 0)
            break;
        assert_rc(rc, -ETIMEDOUT);
    }
    assert_int_equal(delivered, N);
    for (int i = 0; i < N; i++)
        assert_int_equal(seen[i], 1);

    assert_int_equal(ppt_get_long(fs[SLEEPER], 0), 1000);
    assert_int_equal(ppt_get_long(fs[FINE], 0), 7);
    assert_rc(pp_future_get(fs[CANCELLED], 0, NULL, NULL), PP_ECANCELED);
    assert_rc(pp_future_get(fs[STATUS5], 0, NULL, NULL), PP_ETASK);
    assert_int_equal(pp_future_task_status(fs[STATUS5]), 5);
    assert_string_equal(pp_future_error(fs[STATUS5]), "five it is");
    assert_rc(pp_future_get(fs[DIES], 0, NULL, NULL), PP_EWORKER);
    assert_non_null(pp_future_error(fs[DIES]));
    assert_rc(pp_future_get(fs[OVERRUNS], 0, NULL, NULL), PP_ETASKTIMEOUT);
    assert_non_null(pp_future_error(fs[OVERRUNS]));

    for (int i = 0; i < N; i++)
        pp_future_free(fs[i]);
    close(ep);
    pp_queue_destroy(q);
    ppt_finish(pool);
}

/* ---- one queue, two pools ------------------------------------------------- */

static void test_two_pools_one_queue(void **state) {
    (void)state;
    enum { PER_POOL = 100 };
    pp_pool_t *p1 = ppt_pool(1), *p2 = ppt_pool(1);
    pp_queue_t *q = new_queue();
    struct item items[2 * PER_POOL];
    pp_future_t *fs[2 * PER_POOL];
    for (int i = 0; i < 2 * PER_POOL; i++) {
        items[i] = (struct item){i, i % 10 == 9};
        assert_rc(pp_submit(i % 2 ? p2 : p1, task_item, &items[i], sizeof items[i], NULL, &fs[i]),
                  0);
        assert_rc(pp_queue_add(q, fs[i]), 0);
    }
    int seen[2 * PER_POOL] = {0};
    pp_future_t *f;
    int rc;
    size_t delivered = 0;
    while ((rc = pp_queue_next(q, HANG_MS / 1000.0, &f)) == 1) {
        size_t i = index_of(fs, 2 * PER_POOL, f);
        assert_true(i < 2 * PER_POOL);
        assert_int_equal(seen[i]++, 0);
        check_item(&items[i], f);
        delivered++;
    }
    assert_rc(rc, 0);
    assert_int_equal(delivered, 2 * PER_POOL);
    for (int i = 0; i < 2 * PER_POOL; i++)
        pp_future_free(fs[i]);
    pp_queue_destroy(q);
    ppt_finish(p1);
    ppt_finish(p2);
}

/* ---- ownership and argument rules ----------------------------------------- */

static void test_queue_rules(void **state) {
    (void)state;
    int fds_before = ppt_count_fds();
    pp_pool_t *pool = ppt_pool(1);
    pp_queue_t *q = new_queue(), *other = new_queue();
    pp_future_t *f = NULL;

    /* a future is in one queue at a time */
    pp_future_t *a = submit_sleep(pool, 0);
    assert_rc(pp_queue_add(q, a), 0);
    assert_rc(pp_queue_add(q, a), -EBUSY);
    assert_rc(pp_queue_add(other, a), -EBUSY);
    assert_rc(pp_queue_next(q, HANG_MS / 1000.0, &f), 1);
    assert_ptr_equal(f, a);
    /* taken out, it may go into another queue: done, it comes out at once */
    assert_rc(pp_queue_add(other, a), 0);
    assert_rc(pp_queue_next(other, 0, &f), 1);
    assert_ptr_equal(f, a);
    assert_rc(pp_queue_next(other, 0, &f), 0);

    /* freeing a future takes it out: the queue drains without it */
    pp_future_t *gone = submit_sleep(pool, 200), *kept = submit_sleep(pool, 0);
    assert_rc(pp_queue_add(q, gone), 0);
    assert_rc(pp_queue_add(q, kept), 0);
    pp_future_free(gone);
    assert_rc(pp_queue_next(q, HANG_MS / 1000.0, &f), 1);
    assert_ptr_equal(f, kept);
    assert_rc(pp_queue_next(q, HANG_MS / 1000.0, &f), 0);
    assert_null(f);

    /* destroying a queue leaves its futures to the caller, still readable */
    pp_future_t *left = submit_sleep(pool, 0);
    assert_rc(pp_queue_add(other, left), 0);
    assert_rc(pp_future_wait(left, HANG_MS / 1000.0), 0);
    pp_queue_destroy(other);
    assert_int_equal(ppt_get_long(left, 0), 0);
    assert_rc(pp_queue_add(q, left), 0); /* no longer in a queue */
    assert_rc(pp_queue_next(q, 0, &f), 1);
    assert_ptr_equal(f, left);

    /* arguments */
    assert_rc(pp_queue_create(NULL), -EINVAL);
    assert_rc(pp_queue_add(NULL, a), -EINVAL);
    assert_rc(pp_queue_add(q, NULL), -EINVAL);
    assert_rc(pp_queue_next(NULL, 0, &f), -EINVAL);
    assert_rc(pp_queue_next(q, 0, NULL), -EINVAL);
    assert_rc(pp_queue_next(q, NAN, &f), -EINVAL);
    assert_rc(pp_queue_fd(NULL), -EINVAL);
    pp_queue_destroy(NULL);

    pp_future_free(a);
    pp_future_free(kept);
    pp_future_free(left);
    pp_queue_destroy(q);
    ppt_finish(pool);
    assert_int_equal(ppt_count_fds(), fds_before); /* the queues' descriptors are gone */
}

int main(void) {
    ppt_hang_guard(100);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_level_triggered),    cmocka_unit_test(test_epoll_loop_many),
        cmocka_unit_test(test_failures_delivered), cmocka_unit_test(test_two_pools_one_queue),
        cmocka_unit_test(test_queue_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
