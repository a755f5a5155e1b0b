/* test_submit.c - per-task submission (API 0.2): pp_submit with its options
 * (timeout, retries, on_done, fire-and-forget), pp_apply_msg,
 * pp_future_cancel and pp_future_running, and pp_pool_stats.
 *
 * Timings are never a pass/fail criterion: sleeps only make a task slow
 * enough to be seen running or queued, and every wait is bounded by BOUND
 * seconds as a hang guard. The whole file runs in a few seconds. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "procpool.h"
#include "helpers.h"

#define BOUND 20.0 /* seconds any one result may take before we call it a hang */

/* ---- tasks ------------------------------------------------------------------ */

static int task_noop(const void *arg, size_t len, pp_buf_t *out) {
    (void)arg, (void)len, (void)out;
    return 0;
}

static int task_fail(const void *arg, size_t len, pp_buf_t *out) {
    long v = 0;
    if (len == sizeof v)
        memcpy(&v, arg, sizeof v);
    pp_buf_append(out, "partial", 7); /* discarded: the task fails */
    return pp_buf_fail(out, "bad %ld", v);
}

/* A counter in the pool's shared memory and an index into it: the task's
 * visible side effect. */
struct mark {
    _Atomic int *counters;
    long idx;
};

/* counters[idx] += 1; the result is idx. */
static int task_mark(const void *arg, size_t len, pp_buf_t *out) {
    if (len != sizeof(struct mark))
        return pp_buf_fail(out, "bad len %zu", len);
    struct mark m;
    memcpy(&m, arg, sizeof m);
    atomic_fetch_add(&m.counters[m.idx], 1);
    return pp_buf_append(out, &m.idx, sizeof m.idx);
}

/* counters[idx] += 1, then the worker kills itself on the first run only;
 * a later run returns how many runs came before it. */
static int task_crash_first_run(const void *arg, size_t len, pp_buf_t *out) {
    if (len != sizeof(struct mark))
        return pp_buf_fail(out, "bad len %zu", len);
    struct mark m;
    memcpy(&m, arg, sizeof m);
    long before = atomic_fetch_add(&m.counters[m.idx], 1);
    if (before == 0)
        raise(SIGKILL);
    return pp_buf_append(out, &before, sizeof before);
}

/* counters[idx] += 1, then the worker kills itself, every time. */
static int task_crash_always(const void *arg, size_t len, pp_buf_t *out) {
    (void)out;
    if (len != sizeof(struct mark))
        return 1;
    struct mark m;
    memcpy(&m, arg, sizeof m);
    atomic_fetch_add(&m.counters[m.idx], 1);
    raise(SIGKILL);
    return 0;
}

/* ---- helpers ---------------------------------------------------------------- */

/* A long from a result: a future's data carries no alignment promise. */
static long load_long(const void *p) {
    long v;
    memcpy(&v, p, sizeof v);
    return v;
}

static pp_pool_t *pool_opts(int processes, double task_timeout, unsigned retries) {
    pp_options_t opt;
    pp_options_init(&opt);
    opt.processes = processes;
    opt.task_timeout = task_timeout;
    opt.retries = retries;
    pp_pool_t *pool = NULL;
    fflush(stdout);
    fflush(stderr);
    int rc = pp_pool_create(&pool, &opt);
    if (rc != 0 || pool == NULL)
        fail_msg("pp_pool_create(processes=%d, task_timeout=%g, retries=%u) returned %d (%s)",
                 processes, task_timeout, retries, rc, pp_err_name(rc));
    return pool;
}

static _Atomic int *shm_counters(pp_pool_t *pool, size_t n) {
    _Atomic int *c = pp_shm_alloc(pool, n * sizeof *c);
    if (!c)
        fail_msg("pp_shm_alloc(%zu) failed: errno %d", n * sizeof *c, errno);
    return c;
}

/* The future's error, bounded: fails the test on a hang. */
static int get_bounded(pp_future_t *f, const char *what) {
    if (pp_future_wait(f, BOUND) != 0)
        fail_msg("%s: still pending after %.0f s", what, BOUND);
    return pp_future_get(f, 0, NULL, NULL);
}

/* Wait (bounded) until pp_future_running(f) is 1. */
static void wait_running(pp_future_t *f, const char *what) {
    double t0 = ppt_now();
    while (pp_future_running(f) != 1) {
        if (pp_future_ready(f))
            fail_msg("%s: done before it was ever seen running", what);
        if (ppt_now() - t0 > BOUND)
            fail_msg("%s: not running after %.0f s", what, BOUND);
        ppt_sleep_ms(1);
    }
}

static int children_left(void) {
    pid_t kids[64];
    return ppt_children_of(getpid(), kids, 64);
}

/* After pp_pool_destroy: no fd of the pool left and no child of it, zombie
 * or not (fds0, kids0: the counts before the pool was created). */
static void check_nothing_left(int fds0, int kids0, const char *what) {
    for (int i = 0; i < 100 && (ppt_fd_count() != fds0 || children_left() != kids0); i++)
        ppt_sleep_ms(10);
    if (ppt_fd_count() != fds0)
        fail_msg("%s: %d fds before the pool, %d after its destroy", what, fds0, ppt_fd_count());
    if (children_left() != kids0)
        fail_msg("%s: %d children before the pool, %d after its destroy", what, kids0,
                 children_left());
}

/* ======================================================================== */
/* pp_submit: defaults                                                        */
/* ======================================================================== */

static void test_task_opts_init(void **state) {
    (void)state;
    pp_task_opts_t o;
    memset(&o, 0xa5, sizeof o);
    pp_task_opts_init(&o);
    assert_true(o.timeout == 0.0);
    assert_int_equal(o.retries, -1);
    assert_true(o.on_done == NULL);
    assert_null(o.userdata);
    pp_task_opts_init(NULL); /* no-op */
}

static void test_submit_defaults_like_apply_async(void **state) {
    (void)state;
    pp_pool_t *pool = ppt_pool(2);
    pp_task_opts_t o;
    pp_task_opts_init(&o);
    for (int k = 0; k < 2; k++) {
        const pp_task_opts_t *op = k ? &o : NULL;
        long v = 12;
        pp_future_t *f = NULL;
        assert_rc(pp_submit(pool, ppt_task_square, &v, sizeof v, op, &f), 0);
        assert_non_null(f);
        assert_int_equal(ppt_get_long(f, BOUND), 144);
        assert_int_equal(pp_future_successful(f), 1);
        assert_null(pp_future_error(f));
        assert_rc(pp_future_task_status(f), 0);
        /* no callback was set: one may be set now, and it runs at once */
        pp_future_free(f);

        /* a failure reads as with pp_apply_async */
        v = 7;
        assert_rc(pp_submit(pool, task_fail, &v, sizeof v, op, &f), 0);
        assert_rc(get_bounded(f, "failing task"), PP_ETASK);
        assert_string_equal(pp_future_error(f), "bad 7");
        assert_rc(pp_future_task_status(f), 1);
        pp_future_free(f);

        /* no argument at all */
        assert_rc(pp_submit(pool, task_noop, NULL, 0, op, &f), 0);
        const void *d = NULL;
        size_t n = 99;
        assert_rc(pp_future_get(f, BOUND, &d, &n), 0);
        assert_non_null(d);
        assert_int_equal(n, 0);
        pp_future_free(f);
    }

    /* the arguments pp_apply_async refuses, refused the same way */
    long v = 2;
    pp_future_t *f = (pp_future_t *)&f;
    assert_rc(pp_submit(NULL, ppt_task_square, &v, sizeof v, NULL, &f), -EINVAL);
    assert_null(f);
    f = (pp_future_t *)&f;
    assert_rc(pp_submit(pool, NULL, &v, sizeof v, NULL, &f), -EINVAL);
    assert_null(f);
    f = (pp_future_t *)&f;
    assert_rc(pp_submit(pool, ppt_task_square, NULL, 8, NULL, &f), -EINVAL);
    assert_null(f);

    assert_rc(pp_pool_close(pool), 0);
    f = (pp_future_t *)&f;
    assert_rc(pp_submit(pool, ppt_task_square, &v, sizeof v, NULL, &f), PP_ECLOSED);
    assert_null(f);
    assert_rc(pp_submit(pool, ppt_task_square, &v, sizeof v, NULL, NULL), PP_ECLOSED);
    assert_rc(pp_pool_join(pool), 0);
    pp_pool_destroy(pool);
}

static void test_submit_invalid_opts(void **state) {
    (void)state;
    pp_pool_t *pool = ppt_pool(1);
    long v = 3;
    pp_task_opts_t o;
    pp_future_t *f;

    pp_task_opts_init(&o);
    o.timeout = NAN;
    f = (pp_future_t *)&f;
    assert_rc(pp_submit(pool, ppt_task_square, &v, sizeof v, &o, &f), -EINVAL);
    assert_null(f);
    assert_rc(pp_submit(pool, ppt_task_square, &v, sizeof v, &o, NULL), -EINVAL);

    pp_task_opts_init(&o);
    o.retries = -2;
    f = (pp_future_t *)&f;
    assert_rc(pp_submit(pool, ppt_task_square, &v, sizeof v, &o, &f), -EINVAL);
    assert_null(f);
    assert_rc(pp_submit(pool, ppt_task_square, &v, sizeof v, &o, NULL), -EINVAL);
    o.retries = INT_MIN;
    assert_rc(pp_submit(pool, ppt_task_square, &v, sizeof v, &o, &f), -EINVAL);

    /* the valid extremes are accepted */
    pp_task_opts_init(&o);
    o.timeout = INFINITY;
    o.retries = 0;
    assert_rc(pp_submit(pool, ppt_task_square, &v, sizeof v, &o, &f), 0);
    assert_int_equal(ppt_get_long(f, BOUND), 9);
    pp_future_free(f);
    o.timeout = -INFINITY;
    o.retries = -1;
    assert_rc(pp_submit(pool, ppt_task_square, &v, sizeof v, &o, &f), 0);
    assert_int_equal(ppt_get_long(f, BOUND), 9);
    pp_future_free(f);
    ppt_finish(pool);
}

/* ======================================================================== */
/* pp_submit: on_done                                                         */
/* ======================================================================== */

enum { CB_THREADS = 4, CB_PER_THREAD = 1500, CB_N = CB_THREADS * CB_PER_THREAD };

struct cb_run {
    atomic_int calls[CB_N];
    pthread_t submitter[CB_N]; /* written before pp_submit: the callback may read it */
    atomic_int bad;            /* inconsistencies seen inside a callback */
    atomic_int in_submitter;   /* callbacks run in the thread that submitted them */
    atomic_int inside;         /* callbacks running now */
    atomic_int overlap;        /* callbacks that found another one running */
    atomic_int nthreads_seen;  /* distinct callback threads (1 expected) */
    _Atomic(pthread_t) cb_thread;
    atomic_int have_cb_thread;
    pthread_t main_thread;
};

struct cb_arg {
    struct cb_run *run;
    long idx;
};

static void note_thread(struct cb_run *r) {
    pthread_t self = pthread_self();
    int expect = 0;
    if (atomic_compare_exchange_strong(&r->have_cb_thread, &expect, 1)) {
        atomic_store(&r->cb_thread, self);
        atomic_store(&r->nthreads_seen, 1);
        atomic_store(&r->have_cb_thread, 2);
        return;
    }
    while (atomic_load(&r->have_cb_thread) != 2) {
    }
    if (!pthread_equal(atomic_load(&r->cb_thread), self))
        atomic_fetch_add(&r->nthreads_seen, 1);
}

/* Task i is ppt_task_square of i: checks the result, the thread, and counts. */
static void cb_square(pp_future_t *f, void *ud) {
    struct cb_arg *a = ud;
    struct cb_run *r = a->run;
    if (atomic_fetch_add(&r->inside, 1) != 0)
        atomic_fetch_add(&r->overlap, 1);
    note_thread(r);
    if (pthread_equal(pthread_self(), r->submitter[a->idx]) ||
        pthread_equal(pthread_self(), r->main_thread))
        atomic_fetch_add(&r->in_submitter, 1);
    const void *d = NULL;
    size_t n = 0;
    if (pp_future_ready(f) != 1 || pp_future_get(f, 0, &d, &n) != 0 || n != sizeof(long) ||
        load_long(d) != a->idx * a->idx)
        atomic_fetch_add(&r->bad, 1);
    atomic_fetch_add(&r->calls[a->idx], 1);
    atomic_fetch_sub(&r->inside, 1);
}

struct submitter {
    pp_pool_t *pool;
    struct cb_run *run;
    struct cb_arg *args;
    pp_future_t **futures;
    long first;
    atomic_int errors;
};

/* Submit tasks first .. first+CB_PER_THREAD-1, each with cb_square; for
 * every other one, wait for it at once in this thread (a waiter that could
 * be tempted to run the callback itself). */
static void *submit_thread(void *p) {
    struct submitter *s = p;
    if (!pthread_equal(pthread_self(), s->run->main_thread))
        setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 19); /* best effort */
    for (long i = s->first; i < s->first + CB_PER_THREAD; i++) {
        s->run->submitter[i] = pthread_self();
        s->args[i] = (struct cb_arg){s->run, i};
        pp_task_opts_t o;
        pp_task_opts_init(&o);
        o.on_done = cb_square;
        o.userdata = &s->args[i];
        int rc =
            pp_submit(s->pool, ppt_task_square, &s->args[i].idx, sizeof(long), &o, &s->futures[i]);
        if (rc != 0) {
            atomic_fetch_add(&s->errors, 1);
            continue;
        }
        if (i % 2 == 0 && pp_future_wait(s->futures[i], BOUND) != 0)
            atomic_fetch_add(&s->errors, 1);
        if (i % 4 == 1 && pp_future_get(s->futures[i], BOUND, NULL, NULL) != 0)
            atomic_fetch_add(&s->errors, 1);
    }
    return NULL;
}

/* Many tiny tasks (many finish before pp_submit returns or before the
 * submitter waits for them), submitted from the main thread and three
 * others: every callback runs exactly once, always on the pool's single
 * callback thread, one at a time, and sees the result. The other threads
 * lower their own priority, so that the pool's threads and workers often
 * preempt them in the middle of pp_submit and finish the task first. */
static void test_submit_on_done_thread(void **state) {
    (void)state;
    pp_pool_t *pool = ppt_pool(2);
    struct cb_run *run = calloc(1, sizeof *run);
    struct cb_arg *args = calloc(CB_N, sizeof *args);
    pp_future_t **futures = calloc(CB_N, sizeof *futures);
    assert_non_null(run);
    assert_non_null(args);
    assert_non_null(futures);
    run->main_thread = pthread_self();

    struct submitter subs[CB_THREADS];
    pthread_t th[CB_THREADS];
    for (int t = 0; t < CB_THREADS; t++) {
        subs[t] = (struct submitter){.pool = pool,
                                     .run = run,
                                     .args = args,
                                     .futures = futures,
                                     .first = (long)t * CB_PER_THREAD};
        atomic_init(&subs[t].errors, 0);
    }
    /* thread 0's share is submitted by this (the main) thread */
    for (int t = 1; t < CB_THREADS; t++)
        assert_int_equal(pthread_create(&th[t], NULL, submit_thread, &subs[t]), 0);
    submit_thread(&subs[0]);
    for (int t = 1; t < CB_THREADS; t++)
        pthread_join(th[t], NULL);
    for (int t = 0; t < CB_THREADS; t++)
        assert_int_equal(atomic_load(&subs[t].errors), 0);

    /* join returns once every callback has */
    assert_rc(pp_pool_close(pool), 0);
    assert_rc(pp_pool_join(pool), 0);
    for (long i = 0; i < CB_N; i++) {
        if (atomic_load(&run->calls[i]) != 1)
            fail_msg("task %ld: its on_done ran %d times", i, atomic_load(&run->calls[i]));
        assert_int_equal(pp_future_successful(futures[i]), 1);
        /* the callback slot is taken by the one set at submission */
        assert_rc(pp_future_on_done(futures[i], cb_square, &args[i]), -EBUSY);
        pp_future_free(futures[i]);
    }
    assert_int_equal(atomic_load(&run->bad), 0);
    if (atomic_load(&run->in_submitter) != 0)
        fail_msg("%d callbacks ran in the submitting (or main) thread",
                 atomic_load(&run->in_submitter));
    assert_int_equal(atomic_load(&run->overlap), 0);
    assert_int_equal(atomic_load(&run->nthreads_seen), 1);
    /* nothing ran again after the futures were freed */
    for (long i = 0; i < CB_N; i++)
        assert_int_equal(atomic_load(&run->calls[i]), 1);
    pp_pool_destroy(pool);
    free(futures);
    free(args);
    free(run);
}

/* A task that is done before pp_submit returns (the worker is idle and the
 * task does nothing): its callback still waits for the callback thread,
 * even when the submitter then reads the future. One at a time, so the
 * task has every chance to be done before the submitter looks. */
static void test_submit_on_done_already_done(void **state) {
    (void)state;
    pp_pool_t *pool = ppt_pool(1);
    struct cb_run *run = calloc(1, sizeof *run);
    struct cb_arg *args = calloc(200, sizeof *args);
    assert_non_null(run);
    assert_non_null(args);
    run->main_thread = pthread_self();
    for (long i = 0; i < 200; i++) {
        run->submitter[i] = pthread_self();
        args[i] = (struct cb_arg){run, i};
        pp_task_opts_t o;
        pp_task_opts_init(&o);
        o.on_done = cb_square;
        o.userdata = &args[i];
        pp_future_t *f = NULL;
        assert_rc(pp_submit(pool, ppt_task_square, &args[i].idx, sizeof(long), &o, &f), 0);
        if (i % 2)
            ppt_sleep_ms(1); /* let it finish before we touch the future */
        assert_int_equal(ppt_get_long(f, BOUND), i * i);
        /* freeing it at once: the callback still runs, once */
        pp_future_free(f);
    }
    assert_rc(pp_pool_close(pool), 0);
    assert_rc(pp_pool_join(pool), 0);
    for (long i = 0; i < 200; i++)
        assert_int_equal(atomic_load(&run->calls[i]), 1);
    assert_int_equal(atomic_load(&run->bad), 0);
    assert_int_equal(atomic_load(&run->in_submitter), 0);
    pp_pool_destroy(pool);
    free(args);
    free(run);
}

/* ---- fire-and-forget -------------------------------------------------------- */

struct ff_run {
    atomic_int calls;
    atomic_int successes;
    atomic_int failures;
    atomic_int cancelled;
    atomic_int bad;
    atomic_long sum;
    atomic_int *per_task; /* calls per task index, when tracked */
    pthread_t main_thread;
};

struct ff_arg {
    struct ff_run *run;
    long idx;
};

/* Counts outcomes; never frees the future (nobody holds it). */
static void cb_ff(pp_future_t *f, void *ud) {
    struct ff_arg *a = ud;
    struct ff_run *r = a->run;
    if (pthread_equal(pthread_self(), r->main_thread) || pp_future_ready(f) != 1)
        atomic_fetch_add(&r->bad, 1);
    const void *d = NULL;
    size_t n = 0;
    int rc = pp_future_get(f, 0, &d, &n);
    if (rc == 0) {
        if (n == sizeof(long))
            atomic_fetch_add(&r->sum, load_long(d));
        else
            atomic_fetch_add(&r->bad, 1);
        atomic_fetch_add(&r->successes, 1);
    } else if (rc == PP_ECANCELED) {
        atomic_fetch_add(&r->cancelled, 1);
    } else {
        if (pp_future_error(f) == NULL)
            atomic_fetch_add(&r->bad, 1);
        atomic_fetch_add(&r->failures, 1);
    }
    if (r->per_task)
        atomic_fetch_add(&r->per_task[a->idx], 1);
    atomic_fetch_add(&r->calls, 1);
}

/* n tasks' arguments {run, i}, and run's per-task counters, zeroed. */
static struct ff_arg *ff_args(struct ff_run *run, long n) {
    struct ff_arg *args = calloc((size_t)n, sizeof *args);
    run->per_task = calloc((size_t)n, sizeof *run->per_task);
    assert_non_null(args);
    assert_non_null(run->per_task);
    for (long i = 0; i < n; i++)
        args[i] = (struct ff_arg){run, i};
    return args;
}

/* Task options whose on_done is cb_ff with a. */
static pp_task_opts_t ff_opts(struct ff_arg *a) {
    pp_task_opts_t o;
    pp_task_opts_init(&o);
    o.on_done = cb_ff;
    o.userdata = a;
    return o;
}

static void test_fire_and_forget_with_callback(void **state) {
    (void)state;
    pp_pool_t *pool = ppt_pool(2);
    enum { N = 1000 };
    struct ff_run run = {.main_thread = pthread_self()};
    struct ff_arg *args = ff_args(&run, N);
    long expect = 0;
    for (long i = 0; i < N; i++) {
        pp_task_opts_t o = ff_opts(&args[i]);
        /* every tenth fails */
        assert_rc(pp_submit(pool, i % 10 == 9 ? task_fail : ppt_task_square, &args[i].idx,
                            sizeof(long), &o, NULL),
                  0);
        if (i % 10 != 9)
            expect += i * i;
    }
    assert_rc(pp_pool_close(pool), 0);
    assert_rc(pp_pool_join(pool), 0);
    assert_int_equal(atomic_load(&run.calls), N);
    assert_int_equal(atomic_load(&run.successes), N - N / 10);
    assert_int_equal(atomic_load(&run.failures), N / 10);
    assert_int_equal(atomic_load(&run.cancelled), 0);
    assert_int_equal(atomic_load(&run.bad), 0);
    assert_int_equal(atomic_load(&run.sum), expect);
    for (long i = 0; i < N; i++)
        assert_int_equal(atomic_load(&run.per_task[i]), 1);
    pp_pool_destroy(pool);
    free(run.per_task);
    free(args);
}

/* No callback, no future: the task runs (its side effect shows) and
 * nothing is left behind (ASan's leak check in CI). */
static void test_fire_and_forget_no_callback(void **state) {
    (void)state;
    pp_pool_t *pool = ppt_pool(2);
    enum { N = 2000 };
    _Atomic int *counters = shm_counters(pool, N);
    for (long i = 0; i < N; i++) {
        struct mark m = {counters, i};
        assert_rc(pp_submit(pool, i % 3 ? task_mark : task_fail, &m, sizeof m, NULL, NULL), 0);
    }
    /* and with options but still no callback */
    pp_task_opts_t o;
    pp_task_opts_init(&o);
    o.timeout = 10;
    o.retries = 1;
    long v = 5;
    for (int i = 0; i < 50; i++)
        assert_rc(pp_submit(pool, ppt_task_square, &v, sizeof v, &o, NULL), 0);
    assert_rc(pp_pool_close(pool), 0);
    assert_rc(pp_pool_join(pool), 0);
    for (long i = 0; i < N; i++)
        if (atomic_load(&counters[i]) != (i % 3 ? 1 : 0))
            fail_msg("task %ld ran %d times", i, atomic_load(&counters[i]));
    pp_pool_destroy(pool);
}

/* Fire-and-forget under pp_pool_terminate with many tasks queued: every
 * callback runs once, with a result or PP_ECANCELED; join and destroy
 * return; nothing is left behind. */
static void test_fire_and_forget_terminate(void **state) {
    (void)state;
    int fds0 = ppt_fd_count(), kids0 = children_left();
    pp_pool_t *pool = ppt_pool(2);
    enum { N = 600 };
    struct ff_run run = {.main_thread = pthread_self()};
    struct ff_arg *args = ff_args(&run, N);
    for (long i = 0; i < N; i++) {
        pp_task_opts_t o = ff_opts(&args[i]);
        /* a few short ones finish; the rest (14 s of work) cannot before terminate */
        int ms = i < 20 ? 5 : 50;
        assert_rc(pp_submit(pool, ppt_task_sleep_ms, &ms, sizeof ms, &o, NULL), 0);
    }
    ppt_sleep_ms(100); /* some have run, some run now, most are queued */
    double t0 = ppt_now();
    assert_rc(pp_pool_terminate(pool), 0);
    /* after terminate, a submission is refused and has no callback */
    struct ff_arg late = {&run, 0};
    pp_task_opts_t o = ff_opts(&late);
    int ms = 1;
    assert_rc(pp_submit(pool, ppt_task_sleep_ms, &ms, sizeof ms, &o, NULL), PP_ECLOSED);
    assert_rc(pp_pool_join(pool), 0);
    pp_pool_destroy(pool);
    if (ppt_now() - t0 > BOUND)
        fail_msg("terminate + join + destroy took %.1f s", ppt_now() - t0);
    assert_int_equal(atomic_load(&run.calls), N);
    for (long i = 0; i < N; i++)
        if (atomic_load(&run.per_task[i]) != 1)
            fail_msg("task %ld: its callback ran %d times", i, atomic_load(&run.per_task[i]));
    assert_int_equal(atomic_load(&run.failures), 0);
    assert_int_equal(atomic_load(&run.bad), 0);
    assert_int_equal(atomic_load(&run.successes) + atomic_load(&run.cancelled), N);
    assert_true(atomic_load(&run.cancelled) > 0);
    check_nothing_left(fds0, kids0, "fire-and-forget under terminate");
    free(run.per_task);
    free(args);
}

/* ======================================================================== */
/* per-task timeout                                                           */
/* ======================================================================== */

/* The pool has no timeout; the task's own 0.2 s ends a 5 s sleep. */
static void test_timeout_own_limit(void **state) {
    (void)state;
    pp_pool_t *pool = pool_opts(1, 0, 0);
    pp_task_opts_t o;
    pp_task_opts_init(&o);
    o.timeout = 0.2;
    int ms = 5000;
    pp_future_t *f = NULL;
    assert_rc(pp_submit(pool, ppt_task_sleep_ms, &ms, sizeof ms, &o, &f), 0);
    assert_rc(get_bounded(f, "task with its own 0.2 s timeout"), PP_ETASKTIMEOUT);
    assert_rc(pp_future_task_status(f), PP_ETASKTIMEOUT);
    assert_non_null(pp_future_error(f));
    pp_future_free(f);
    /* the pool goes on with a fresh worker */
    long v = 9;
    assert_rc(pp_submit(pool, ppt_task_square, &v, sizeof v, NULL, &f), 0);
    assert_int_equal(ppt_get_long(f, BOUND), 81);
    pp_future_free(f);
    /* and a timeout a task stays under changes nothing */
    ms = 20;
    assert_rc(pp_submit(pool, ppt_task_sleep_ms, &ms, sizeof ms, &o, &f), 0);
    assert_int_equal(ppt_get_long(f, BOUND), 20);
    pp_future_free(f);
    assert_int_equal(pp_pool_size(pool), 1);
    ppt_finish(pool);
}

/* The pool's timeout is 0.2 s: a task with no limit (< 0) or a longer one
 * of its own outlives it; a task with the defaults (or 0) does not. All at
 * once, on four workers. */
static void test_timeout_overrides_pool(void **state) {
    (void)state;
    pp_pool_t *pool = pool_opts(4, 0.2, 0);
    pp_task_opts_t unlimited, longer, deflt, zero;
    pp_task_opts_init(&unlimited);
    unlimited.timeout = -1;
    pp_task_opts_init(&longer);
    longer.timeout = 5;
    pp_task_opts_init(&deflt);
    pp_task_opts_init(&zero);
    zero.timeout = 0;
    int ms600 = 600, ms500 = 500, ms5000 = 5000;
    pp_future_t *fu = NULL, *fl = NULL, *fd = NULL, *fz = NULL;
    assert_rc(pp_submit(pool, ppt_task_sleep_ms, &ms600, sizeof(int), &unlimited, &fu), 0);
    assert_rc(pp_submit(pool, ppt_task_sleep_ms, &ms500, sizeof(int), &longer, &fl), 0);
    assert_rc(pp_submit(pool, ppt_task_sleep_ms, &ms5000, sizeof(int), &deflt, &fd), 0);
    assert_rc(pp_submit(pool, ppt_task_sleep_ms, &ms5000, sizeof(int), &zero, &fz), 0);
    assert_rc(get_bounded(fd, "defaults under the pool's 0.2 s"), PP_ETASKTIMEOUT);
    assert_rc(get_bounded(fz, "timeout 0 under the pool's 0.2 s"), PP_ETASKTIMEOUT);
    assert_int_equal(ppt_get_long(fu, BOUND), 600);
    assert_int_equal(ppt_get_long(fl, BOUND), 500);
    pp_future_free(fu);
    pp_future_free(fl);
    pp_future_free(fd);
    pp_future_free(fz);
    /* pp_apply_async keeps the pool's timeout */
    pp_future_t *f = NULL;
    assert_rc(pp_apply_async(pool, ppt_task_sleep_ms, &ms5000, sizeof(int), &f), 0);
    assert_rc(get_bounded(f, "pp_apply_async under the pool's 0.2 s"), PP_ETASKTIMEOUT);
    pp_future_free(f);
    ppt_finish(pool);
}

/* ======================================================================== */
/* per-task retries                                                           */
/* ======================================================================== */

static void test_retries_own(void **state) {
    (void)state;
    /* the pool does not retry; the task's own retries=1 survives one death */
    pp_pool_t *pool = pool_opts(2, 0, 0);
    _Atomic int *runs = shm_counters(pool, 4);
    pp_task_opts_t o;
    pp_task_opts_init(&o);
    o.retries = 1;
    struct mark m = {runs, 0};
    pp_future_t *f = NULL;
    assert_rc(pp_submit(pool, task_crash_first_run, &m, sizeof m, &o, &f), 0);
    assert_int_equal(ppt_get_long(f, BOUND), 1); /* the second run saw one before it */
    assert_int_equal(atomic_load(&runs[0]), 2);
    pp_future_free(f);

    /* the same task with the pool's setting (0) fails at the first death */
    m.idx = 1;
    assert_rc(pp_submit(pool, task_crash_first_run, &m, sizeof m, NULL, &f), 0);
    assert_rc(get_bounded(f, "crash, pool retries 0"), PP_EWORKER);
    assert_int_equal(atomic_load(&runs[1]), 1);
    pp_future_free(f);
    ppt_finish(pool);

    /* the pool retries twice; the task's own retries=0 fails at once */
    pool = pool_opts(2, 0, 2);
    runs = shm_counters(pool, 4);
    pp_task_opts_init(&o);
    o.retries = 0;
    m = (struct mark){runs, 0};
    assert_rc(pp_submit(pool, task_crash_always, &m, sizeof m, &o, &f), 0);
    assert_rc(get_bounded(f, "crash, retries 0 under pool retries 2"), PP_EWORKER);
    assert_int_equal(atomic_load(&runs[0]), 1);
    assert_rc(pp_future_task_status(f), PP_EWORKER);
    assert_non_null(pp_future_error(f));
    pp_future_free(f);

    /* retries -1 is the pool's 2: three runs in all, then PP_EWORKER */
    pp_task_opts_init(&o);
    m.idx = 1;
    assert_rc(pp_submit(pool, task_crash_always, &m, sizeof m, &o, &f), 0);
    assert_rc(get_bounded(f, "crash, pool retries 2"), PP_EWORKER);
    assert_int_equal(atomic_load(&runs[1]), 3);
    pp_future_free(f);

    /* and the pool goes on */
    long v = 4;
    assert_rc(pp_submit(pool, ppt_task_square, &v, sizeof v, &o, &f), 0);
    assert_int_equal(ppt_get_long(f, BOUND), 16);
    pp_future_free(f);
    assert_int_equal(pp_pool_size(pool), 2);
    ppt_finish(pool);
}

/* The callback of a task that is retried, or that times out, runs once,
 * with the final outcome. */
struct outcome {
    atomic_int calls;
    atomic_int err;
    atomic_long value;
};

static void cb_outcome(pp_future_t *f, void *ud) {
    struct outcome *o = ud;
    const void *d = NULL;
    size_t n = 0;
    int rc = pp_future_get(f, 0, &d, &n);
    atomic_store(&o->err, rc);
    if (rc == 0 && n == sizeof(long))
        atomic_store(&o->value, load_long(d));
    atomic_fetch_add(&o->calls, 1);
}

static void test_on_done_once_across_retry_and_timeout(void **state) {
    (void)state;
    pp_pool_t *pool = pool_opts(2, 0, 0);
    _Atomic int *runs = shm_counters(pool, 2);
    struct outcome retried = {0}, timed = {0}, failed = {0};
    pp_task_opts_t o;
    pp_task_opts_init(&o);
    o.retries = 1;
    o.on_done = cb_outcome;
    o.userdata = &retried;
    struct mark m = {runs, 0};
    assert_rc(pp_submit(pool, task_crash_first_run, &m, sizeof m, &o, NULL), 0);

    pp_task_opts_init(&o);
    o.timeout = 0.2;
    o.on_done = cb_outcome;
    o.userdata = &timed;
    int ms = 5000;
    assert_rc(pp_submit(pool, ppt_task_sleep_ms, &ms, sizeof ms, &o, NULL), 0);

    pp_task_opts_init(&o);
    o.retries = 0;
    o.on_done = cb_outcome;
    o.userdata = &failed;
    m.idx = 1;
    assert_rc(pp_submit(pool, task_crash_first_run, &m, sizeof m, &o, NULL), 0);

    assert_rc(pp_pool_close(pool), 0);
    assert_rc(pp_pool_join(pool), 0);
    assert_int_equal(atomic_load(&retried.calls), 1);
    assert_rc(atomic_load(&retried.err), 0);
    assert_int_equal(atomic_load(&retried.value), 1);
    assert_int_equal(atomic_load(&runs[0]), 2);
    assert_int_equal(atomic_load(&timed.calls), 1);
    assert_rc(atomic_load(&timed.err), PP_ETASKTIMEOUT);
    assert_int_equal(atomic_load(&failed.calls), 1);
    assert_rc(atomic_load(&failed.err), PP_EWORKER);
    assert_int_equal(atomic_load(&runs[1]), 1);
    pp_pool_destroy(pool);
}

/* A callback may submit work: here each callback submits the next link of
 * a chain (fire-and-forget, with the same callback) until the chain is
 * long enough. Callbacks never nest, each runs once, and join returns
 * after the last. */
enum { CHAIN = 300, CHAINS = 3 };
struct chain {
    pp_pool_t *pool;
    atomic_int links[CHAINS];
    atomic_int calls[CHAINS][CHAIN];
    atomic_int inside;
    atomic_int nested;
    atomic_int errors;
    long ids[CHAINS];
};

static struct chain *g_chain;

static void cb_chain(pp_future_t *f, void *ud) {
    long *id = ud;
    struct chain *c = g_chain;
    if (atomic_fetch_add(&c->inside, 1) != 0)
        atomic_fetch_add(&c->nested, 1);
    const void *d = NULL;
    size_t n = 0;
    int link = atomic_fetch_add(&c->links[*id], 1);
    if (link >= CHAIN || pp_future_get(f, 0, &d, &n) != 0 || n != sizeof(long) ||
        load_long(d) != (long)link * link)
        atomic_fetch_add(&c->errors, 1);
    else
        atomic_fetch_add(&c->calls[*id][link], 1);
    if (link + 1 < CHAIN) {
        long next = link + 1;
        pp_task_opts_t o;
        pp_task_opts_init(&o);
        o.on_done = cb_chain;
        o.userdata = id;
        if (pp_submit(c->pool, ppt_task_square, &next, sizeof next, &o, NULL) != 0)
            atomic_fetch_add(&c->errors, 1);
    }
    atomic_fetch_sub(&c->inside, 1);
}

static void test_submit_from_callback(void **state) {
    (void)state;
    struct chain *c = calloc(1, sizeof *c);
    assert_non_null(c);
    g_chain = c;
    c->pool = ppt_pool(2);
    for (long k = 0; k < CHAINS; k++) {
        c->ids[k] = k;
        pp_task_opts_t o;
        pp_task_opts_init(&o);
        o.on_done = cb_chain;
        o.userdata = &c->ids[k];
        long first = 0;
        assert_rc(pp_submit(c->pool, ppt_task_square, &first, sizeof first, &o, NULL), 0);
    }
    /* the chains end by themselves; wait for them before closing */
    double t0 = ppt_now();
    for (long k = 0; k < CHAINS; k++)
        while (atomic_load(&c->links[k]) < CHAIN) {
            if (ppt_now() - t0 > BOUND)
                fail_msg("chain %ld stopped at link %d", k, atomic_load(&c->links[k]));
            ppt_sleep_ms(1);
        }
    assert_rc(pp_pool_close(c->pool), 0);
    assert_rc(pp_pool_join(c->pool), 0);
    assert_int_equal(atomic_load(&c->errors), 0);
    assert_int_equal(atomic_load(&c->nested), 0);
    for (long k = 0; k < CHAINS; k++) {
        assert_int_equal(atomic_load(&c->links[k]), CHAIN);
        for (int i = 0; i < CHAIN; i++)
            assert_int_equal(atomic_load(&c->calls[k][i]), 1);
    }
    pp_pool_destroy(c->pool);
    free(c);
}

/* ======================================================================== */
/* pp_apply_msg                                                               */
/* ======================================================================== */

static void test_apply_msg(void **state) {
    (void)state;
    pp_pool_t *pool = ppt_pool(2);
    long v = 11;
    void *res = (void *)&res;
    size_t len = 99;
    char *msg = (char *)&msg;

    /* success */
    assert_rc(pp_apply_msg(pool, ppt_task_square, &v, sizeof v, &res, &len, &msg), 0);
    assert_null(msg);
    assert_non_null(res);
    assert_int_equal(len, sizeof(long));
    assert_int_equal(*(long *)res, 121);
    free(res);

    /* empty result: non-NULL all the same */
    res = NULL;
    msg = (char *)&msg;
    assert_rc(pp_apply_msg(pool, task_noop, NULL, 0, &res, &len, &msg), 0);
    assert_non_null(res);
    assert_int_equal(len, 0);
    assert_null(msg);
    free(res);

    /* msg NULL: like pp_apply */
    assert_rc(pp_apply_msg(pool, ppt_task_square, &v, sizeof v, &res, &len, NULL), 0);
    assert_int_equal(*(long *)res, 121);
    free(res);

    /* the task fails: its pp_buf_fail message */
    v = 7;
    res = (void *)&res;
    len = 99;
    msg = NULL;
    assert_rc(pp_apply_msg(pool, task_fail, &v, sizeof v, &res, &len, &msg), PP_ETASK);
    assert_null(res);
    assert_int_equal(len, 0);
    assert_non_null(msg);
    assert_string_equal(msg, "bad 7");
    free(msg);
    assert_rc(pp_apply_msg(pool, task_fail, &v, sizeof v, &res, &len, NULL), PP_ETASK);
    assert_null(res);

    /* the worker crashes: the library's message names the signal */
    res = (void *)&res;
    len = 99;
    msg = NULL;
    assert_rc(pp_apply_msg(pool, ppt_task_segv, NULL, 0, &res, &len, &msg), PP_EWORKER);
    assert_null(res);
    assert_int_equal(len, 0);
    assert_non_null(msg);
    if (!strstr(msg, "SIGSEGV"))
        fail_msg("crash message does not name the signal: \"%s\"", msg);
    free(msg);

    /* bad arguments: the submission's own failure, no message */
    msg = (char *)&msg;
    assert_rc(pp_apply_msg(NULL, ppt_task_square, &v, sizeof v, &res, &len, &msg), -EINVAL);
    assert_null(msg);
    msg = (char *)&msg;
    assert_rc(pp_apply_msg(pool, NULL, &v, sizeof v, &res, &len, &msg), -EINVAL);
    assert_null(msg);
    msg = (char *)&msg;
    assert_rc(pp_apply_msg(pool, ppt_task_square, NULL, 8, &res, &len, &msg), -EINVAL);
    assert_null(msg);
    msg = (char *)&msg;
    assert_rc(pp_apply_msg(pool, ppt_task_square, &v, sizeof v, NULL, &len, &msg), -EINVAL);
    assert_null(msg);
    msg = (char *)&msg;
    assert_rc(pp_apply_msg(pool, ppt_task_square, &v, sizeof v, &res, NULL, &msg), -EINVAL);
    assert_null(msg);

    /* a closed pool: PP_ECLOSED, no message */
    assert_rc(pp_pool_close(pool), 0);
    msg = (char *)&msg;
    res = (void *)&res;
    assert_rc(pp_apply_msg(pool, ppt_task_square, &v, sizeof v, &res, &len, &msg), PP_ECLOSED);
    assert_null(msg);
    assert_null(res);
    assert_rc(pp_pool_join(pool), 0);
    pp_pool_destroy(pool);
}

/* ======================================================================== */
/* pp_future_cancel, pp_future_running                                        */
/* ======================================================================== */

static atomic_int g_cancel_cb_calls;
static atomic_int g_cancel_cb_err;

static void cb_cancel(pp_future_t *f, void *ud) {
    (void)ud;
    atomic_store(&g_cancel_cb_err, pp_future_get(f, 0, NULL, NULL));
    atomic_fetch_add(&g_cancel_cb_calls, 1);
}

static void test_cancel_queued_running_done(void **state) {
    (void)state;
    atomic_store(&g_cancel_cb_calls, 0);
    atomic_store(&g_cancel_cb_err, 0);
    pp_pool_t *pool = ppt_pool(1);
    enum { NQ = 20 };
    _Atomic int *runs = shm_counters(pool, NQ + 2);

    /* the one worker is busy */
    int ms = 400;
    pp_future_t *busy = NULL;
    assert_rc(pp_apply_async(pool, ppt_task_sleep_ms, &ms, sizeof ms, &busy), 0);
    wait_running(busy, "the busy task");

    /* tasks queued behind it (some possibly sent ahead to its ring) */
    pp_future_t *q[NQ];
    for (long i = 0; i < NQ; i++) {
        struct mark m = {runs, i};
        pp_task_opts_t o;
        pp_task_opts_init(&o);
        if (i == 0) {
            o.on_done = cb_cancel;
        }
        assert_rc(pp_submit(pool, task_mark, &m, sizeof m, &o, &q[i]), 0);
    }
    for (long i = 0; i < NQ; i++)
        assert_int_equal(pp_future_running(q[i]), 0);
    /* cancel every other one, the first included */
    for (long i = 0; i < NQ; i += 2) {
        assert_int_equal(pp_future_cancel(q[i]), 1);
        /* done at once, with PP_ECANCELED */
        assert_int_equal(pp_future_ready(q[i]), 1);
        assert_int_equal(pp_future_successful(q[i]), 0);
        assert_int_equal(pp_future_running(q[i]), 0);
        assert_rc(pp_future_wait(q[i], 0), 0);
        assert_rc(pp_future_get(q[i], 0, NULL, NULL), PP_ECANCELED);
        assert_rc(pp_future_task_status(q[i]), PP_ECANCELED);
        assert_non_null(pp_future_error(q[i]));
        /* a second cancel: done already */
        assert_int_equal(pp_future_cancel(q[i]), 0);
    }
    /* the running task cannot be cancelled and ends normally */
    assert_int_equal(pp_future_running(busy), 1);
    assert_int_equal(pp_future_cancel(busy), 0);
    assert_int_equal(ppt_get_long(busy, BOUND), 400);
    assert_int_equal(pp_future_running(busy), 0);
    /* a done one cannot be either */
    assert_int_equal(pp_future_cancel(busy), 0);
    assert_int_equal(ppt_get_long(busy, 0), 400);
    pp_future_free(busy);

    /* the others run */
    for (long i = 1; i < NQ; i += 2)
        assert_int_equal(ppt_get_long(q[i], BOUND), i);
    assert_rc(pp_pool_close(pool), 0);
    assert_rc(pp_pool_join(pool), 0);
    /* the cancelled ones never ran, even later */
    for (long i = 0; i < NQ; i++)
        if (atomic_load(&runs[i]) != (i % 2 ? 1 : 0))
            fail_msg("task %ld (%s) ran %d times", i, i % 2 ? "not cancelled" : "cancelled",
                     atomic_load(&runs[i]));
    /* the cancelled task's callback ran, once, seeing PP_ECANCELED */
    assert_int_equal(atomic_load(&g_cancel_cb_calls), 1);
    assert_rc(atomic_load(&g_cancel_cb_err), PP_ECANCELED);
    for (long i = 0; i < NQ; i++)
        pp_future_free(q[i]);
    pp_pool_destroy(pool);

    assert_int_equal(pp_future_cancel(NULL), 0);
    assert_int_equal(pp_future_running(NULL), 0);
}

/* A waiter blocked on a queued task wakes when it is cancelled. */
struct waiter {
    pp_future_t *f;
    atomic_int started;
    int rc;
};

static void *wait_thread(void *p) {
    struct waiter *w = p;
    atomic_store(&w->started, 1);
    w->rc = pp_future_get(w->f, BOUND, NULL, NULL);
    return NULL;
}

static void test_cancel_wakes_waiter(void **state) {
    (void)state;
    pp_pool_t *pool = ppt_pool(1);
    int ms = 300;
    pp_future_t *busy = NULL, *f = NULL;
    assert_rc(pp_apply_async(pool, ppt_task_sleep_ms, &ms, sizeof ms, &busy), 0);
    wait_running(busy, "the busy task");
    int ms2 = 3000;
    assert_rc(pp_apply_async(pool, ppt_task_sleep_ms, &ms2, sizeof ms2, &f), 0);
    struct waiter w = {.f = f};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, wait_thread, &w), 0);
    while (!atomic_load(&w.started))
        ppt_sleep_ms(1);
    ppt_sleep_ms(20);
    assert_int_equal(pp_future_cancel(f), 1);
    pthread_join(th, NULL);
    assert_rc(w.rc, PP_ECANCELED);
    pp_future_free(f);
    pp_future_free(busy);
    ppt_finish(pool);
}

static void test_running_states(void **state) {
    (void)state;
    pp_pool_t *pool = ppt_pool(1);
    int ms = 400;
    pp_future_t *a = NULL, *b = NULL;
    assert_rc(pp_apply_async(pool, ppt_task_sleep_ms, &ms, sizeof ms, &a), 0);
    int ms_b = 50;
    assert_rc(pp_apply_async(pool, ppt_task_sleep_ms, &ms_b, sizeof ms_b, &b), 0);
    wait_running(a, "the sleeping task");
    /* b waits behind a: not running while a is */
    int rb = pp_future_running(b);
    if (!pp_future_ready(a))
        assert_int_equal(rb, 0);
    /* still running a moment later (it sleeps 400 ms) */
    ppt_sleep_ms(50);
    if (!pp_future_ready(a))
        assert_int_equal(pp_future_running(a), 1);
    assert_int_equal(ppt_get_long(a, BOUND), 400);
    assert_int_equal(pp_future_running(a), 0);
    wait_running(b, "the second task");
    assert_int_equal(ppt_get_long(b, BOUND), 50);
    assert_int_equal(pp_future_running(b), 0);
    /* a failed task is not running either */
    pp_future_t *c = NULL;
    long v = 1;
    assert_rc(pp_apply_async(pool, task_fail, &v, sizeof v, &c), 0);
    assert_rc(get_bounded(c, "failing task"), PP_ETASK);
    assert_int_equal(pp_future_running(c), 0);
    pp_future_free(a);
    pp_future_free(b);
    pp_future_free(c);
    ppt_finish(pool);
}

static unsigned long long g_rng = 0x9e3779b97f4a7c15ull;
static unsigned rnd(void) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (unsigned)(g_rng >> 32);
}

/* Cancel racing the start: each of 10 000 tasks is either cancelled
 * (cancel returned 1, PP_ECANCELED, its counter untouched) or ran (cancel
 * returned 0, success, counter exactly 1): never both, never neither. */
static void test_cancel_race(void **state) {
    (void)state;
    pp_pool_t *pool = ppt_pool(2);
    enum { N = 10000 };
    _Atomic int *runs = shm_counters(pool, N);
    pp_future_t **f = calloc(N, sizeof *f);
    int *crc = calloc(N, sizeof *crc);
    assert_non_null(f);
    assert_non_null(crc);
    double t0 = ppt_now();
    for (long i = 0; i < N; i++) {
        struct mark m = {runs, i};
        assert_rc(pp_submit(pool, task_mark, &m, sizeof m, NULL, &f[i]), 0);
        unsigned r = rnd() % 8;
        if (r >= 4) { /* a tiny random delay: 0 to 50 microseconds */
            double until = ppt_now() + (rnd() % 50) * 1e-6;
            while (ppt_now() < until) {
            }
        } else if (r == 3) {
            sched_yield();
        }
        crc[i] = pp_future_cancel(f[i]);
        if (crc[i] != 0 && crc[i] != 1)
            fail_msg("task %ld: pp_future_cancel returned %d", i, crc[i]);
        /* keep the backlog small, so that cancels hit every stage */
        if (i % 64 == 63 && pp_future_wait(f[i - 32], BOUND) != 0)
            fail_msg("task %ld: pending after %.0f s", i - 32, BOUND);
    }
    assert_rc(pp_pool_close(pool), 0);
    assert_rc(pp_pool_join(pool), 0);
    long cancelled = 0, ran = 0;
    for (long i = 0; i < N; i++) {
        int got = pp_future_get(f[i], 0, NULL, NULL);
        int n = atomic_load(&runs[i]);
        if (crc[i] == 1) {
            if (got != PP_ECANCELED || n != 0)
                fail_msg("task %ld: cancel returned 1, yet the future gave %d (%s) and the task "
                         "ran %d times",
                         i, got, pp_err_name(got), n);
            cancelled++;
        } else {
            if (got != 0 || n != 1)
                fail_msg("task %ld: cancel returned 0, yet the future gave %d (%s) and the task "
                         "ran %d times",
                         i, got, pp_err_name(got), n);
            assert_int_equal(ppt_get_long(f[i], 0), i);
            ran++;
        }
        pp_future_free(f[i]);
    }
    print_message("cancel race: %ld cancelled, %ld ran, %.2f s\n", cancelled, ran, ppt_now() - t0);
    assert_int_equal(cancelled + ran, N);
    pp_pool_destroy(pool);
    free(crc);
    free(f);
}

/* A map of many slow items cancelled while it runs: done at once with
 * PP_ECANCELED, the pool goes on, join returns. */
static void test_cancel_map(void **state) {
    (void)state;
    pp_pool_t *pool = ppt_pool(2);
    enum { N = 200 };
    int *items = malloc(N * sizeof *items);
    long *results = calloc(N, sizeof *results);
    assert_non_null(items);
    assert_non_null(results);
    for (int i = 0; i < N; i++)
        items[i] = 20; /* 200 x 20 ms on 2 workers: 2 s if it ran to the end */
    pp_future_t *f = NULL;
    double t0 = ppt_now();
    assert_rc(pp_map_async(pool, ppt_task_sleep_ms, items, sizeof *items, N, results,
                           sizeof *results, 1, &f),
              0);
    wait_running(f, "the map");
    assert_int_equal(pp_future_cancel(f), 1);
    assert_int_equal(pp_future_ready(f), 1);
    assert_int_equal(pp_future_running(f), 0);
    assert_rc(pp_future_get(f, 0, NULL, NULL), PP_ECANCELED);
    assert_int_equal(pp_future_cancel(f), 0);
    size_t total = 0;
    assert_rc(pp_future_progress(f, NULL, &total), 0);
    assert_int_equal(total, N);
    /* the pool is still usable */
    long v = 6;
    void *res = NULL;
    size_t len = 0;
    assert_rc(pp_apply(pool, ppt_task_square, &v, sizeof v, &res, &len), 0);
    assert_int_equal(*(long *)res, 36);
    free(res);
    assert_rc(pp_pool_close(pool), 0);
    assert_rc(pp_pool_join(pool), 0);
    if (ppt_now() - t0 > BOUND)
        fail_msg("cancelled map: join returned after %.1f s", ppt_now() - t0);
    /* the items not started were dropped: they never wrote a result */
    int written = 0;
    for (int i = 0; i < N; i++)
        written += results[i] != 0;
    if (written >= N)
        fail_msg("cancelled map: all %d items ran", N);
    pp_future_free(f);
    pp_pool_destroy(pool);
    free(results);
    free(items);
}

/* ======================================================================== */
/* pp_pool_stats                                                              */
/* ======================================================================== */

static void test_pool_stats(void **state) {
    (void)state;
    pp_stats_t st;
    assert_rc(pp_pool_stats(NULL, &st), -EINVAL);
    pp_pool_t *pool = pool_opts(2, 0, 0);
    assert_rc(pp_pool_stats(pool, NULL), -EINVAL);

    memset(&st, 0xff, sizeof st);
    assert_rc(pp_pool_stats(pool, &st), 0);
    assert_int_equal(st.submitted, 0);
    assert_int_equal(st.completed, 0);
    assert_int_equal(st.failed, 0);
    assert_int_equal(st.cancelled, 0);
    assert_int_equal(st.worker_deaths, 0);
    assert_int_equal(st.timeouts, 0);
    assert_int_equal(st.queued, 0);
    assert_int_equal(st.workers, pp_pool_size(pool));

    enum { NS = 10, NF = 3, NK = 4, NMAP = 20 };
    _Atomic int *runs = shm_counters(pool, NK);
    pp_future_t *fs[NS], *ff[NF], *fk[NK], *busy[2], *crash, *tmo, *map;
    for (long i = 0; i < NS; i++)
        assert_rc(pp_submit(pool, ppt_task_square, &i, sizeof i, NULL, &fs[i]), 0);
    for (long i = 0; i < NF; i++)
        assert_rc(pp_submit(pool, task_fail, &i, sizeof i, NULL, &ff[i]), 0);
    for (int i = 0; i < NS; i++)
        assert_int_equal(ppt_get_long(fs[i], BOUND), (long)i * i);
    for (int i = 0; i < NF; i++)
        assert_rc(get_bounded(ff[i], "failing task"), PP_ETASK);

    /* both workers busy, NK tasks queued behind them and cancelled */
    int ms = 300;
    for (int i = 0; i < 2; i++)
        assert_rc(pp_apply_async(pool, ppt_task_sleep_ms, &ms, sizeof ms, &busy[i]), 0);
    wait_running(busy[0], "busy task 0");
    wait_running(busy[1], "busy task 1");
    for (long i = 0; i < NK; i++) {
        struct mark m = {runs, i};
        assert_rc(pp_submit(pool, task_mark, &m, sizeof m, NULL, &fk[i]), 0);
    }
    assert_rc(pp_pool_stats(pool, &st), 0);
    assert_true(st.queued <= NK);
    for (int i = 0; i < NK; i++)
        assert_int_equal(pp_future_cancel(fk[i]), 1);
    for (int i = 0; i < 2; i++)
        assert_int_equal(ppt_get_long(busy[i], BOUND), 300);

    /* a crash and a timeout */
    assert_rc(pp_submit(pool, ppt_task_segv, NULL, 0, NULL, &crash), 0);
    assert_rc(get_bounded(crash, "crashing task"), PP_EWORKER);
    pp_task_opts_t o;
    pp_task_opts_init(&o);
    o.timeout = 0.2;
    int long_ms = 5000;
    assert_rc(pp_submit(pool, ppt_task_sleep_ms, &long_ms, sizeof long_ms, &o, &tmo), 0);
    assert_rc(get_bounded(tmo, "timed-out task"), PP_ETASKTIMEOUT);

    /* a map: its items count one by one */
    long items[NMAP], results[NMAP];
    for (int i = 0; i < NMAP; i++)
        items[i] = i;
    assert_rc(pp_map_async(pool, ppt_task_square, items, sizeof *items, NMAP, results,
                           sizeof *results, 0, &map),
              0);
    assert_rc(get_bounded(map, "map"), 0);
    for (int i = 0; i < NMAP; i++)
        assert_int_equal(results[i], (long)i * i);

    /* the dead workers are replaced: back to full strength (bounded wait) */
    double t0 = ppt_now();
    for (;;) {
        assert_rc(pp_pool_stats(pool, &st), 0);
        if (st.workers == pp_pool_size(pool))
            break;
        if (ppt_now() - t0 > BOUND)
            fail_msg("stats: %d workers, pool size %d, after %.0f s", st.workers,
                     pp_pool_size(pool), BOUND);
        ppt_sleep_ms(5);
    }

    assert_rc(pp_pool_close(pool), 0);
    assert_rc(pp_pool_join(pool), 0);
    assert_rc(pp_pool_stats(pool, &st), 0);
    const unsigned long long total = NS + NF + NK + 2 + 1 + 1 + NMAP;
    print_message("stats: submitted %llu completed %llu failed %llu cancelled %llu deaths %llu "
                  "respawns %llu timeouts %llu queued %zu workers %d\n",
                  st.submitted, st.completed, st.failed, st.cancelled, st.worker_deaths,
                  st.respawns, st.timeouts, st.queued, st.workers);
    assert_int_equal(st.submitted, total);
    assert_int_equal(st.completed, NS + 2 + NMAP);
    assert_int_equal(st.failed, NF + 2);
    assert_int_equal(st.cancelled, NK);
    assert_true(st.worker_deaths >= 1);
    assert_true(st.respawns >= 1);
    assert_int_equal(st.timeouts, 1);
    assert_int_equal(st.queued, 0);
    for (int i = 0; i < NK; i++)
        assert_int_equal(atomic_load(&runs[i]), 0);

    for (int i = 0; i < NS; i++)
        pp_future_free(fs[i]);
    for (int i = 0; i < NF; i++)
        pp_future_free(ff[i]);
    for (int i = 0; i < NK; i++)
        pp_future_free(fk[i]);
    pp_future_free(busy[0]);
    pp_future_free(busy[1]);
    pp_future_free(crash);
    pp_future_free(tmo);
    pp_future_free(map);
    pp_pool_destroy(pool);
}

int main(void) {
    ppt_hang_guard(90);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_task_opts_init),
        cmocka_unit_test(test_submit_defaults_like_apply_async),
        cmocka_unit_test(test_submit_invalid_opts),
        cmocka_unit_test(test_submit_on_done_thread),
        cmocka_unit_test(test_submit_on_done_already_done),
        cmocka_unit_test(test_fire_and_forget_with_callback),
        cmocka_unit_test(test_fire_and_forget_no_callback),
        cmocka_unit_test(test_fire_and_forget_terminate),
        cmocka_unit_test(test_timeout_own_limit),
        cmocka_unit_test(test_timeout_overrides_pool),
        cmocka_unit_test(test_retries_own),
        cmocka_unit_test(test_on_done_once_across_retry_and_timeout),
        cmocka_unit_test(test_submit_from_callback),
        cmocka_unit_test(test_apply_msg),
        cmocka_unit_test(test_cancel_queued_running_done),
        cmocka_unit_test(test_cancel_wakes_waiter),
        cmocka_unit_test(test_running_states),
        cmocka_unit_test(test_cancel_race),
        cmocka_unit_test(test_cancel_map),
        cmocka_unit_test(test_pool_stats),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
