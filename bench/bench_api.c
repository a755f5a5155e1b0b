/*
 * bench_api.c - the 0.2 calls (pp_submit with a done-callback, completion
 * queues) against the 0.1 calls doing the same work, each measured in the
 * same run (only ratios from one run are comparable):
 *
 *   a. N no-op tasks on a pool of 2, completion seen by a done-callback:
 *      pp_submit with opts.on_done, fire-and-forget (no future held), vs
 *      pp_apply_async + pp_future_on_done (the callback frees the future),
 *      vs plain pp_apply_async, then pp_future_get + free in order.
 *      Goal: pp_submit+on_done >= 1 M tasks/s, like pp_apply_async.
 *   b. a completion queue: N no-ops submitted, each future pp_queue_add'ed,
 *      then taken out with pp_queue_next and freed:
 *       - done drain: every future done before the drain starts; only the
 *         drain (pp_queue_next + pp_future_free) is timed; goal >= 1 M/s;
 *       - streaming: a consumer thread drains while the main thread submits;
 *         end to end, plus the consumer's own CPU time per future;
 *      each against the same futures drained by pp_future_wait + free in
 *      submission order (the same two ways).
 *   c. an event loop: epoll over a timerfd ticking every 1 ms and
 *      pp_queue_fd, while tasks of about 10 us run; the loop's queue
 *      callback takes the done futures out and submits more (a window of
 *      WINDOW in flight). Lateness of the timer ticks (p50, p99, max)
 *      against the same loop with no pool; tasks/s against the same tasks
 *      by pp_apply_async + pp_future_get with no loop. The same with a pool
 *      of 1 (a CPU left to the loop) is printed for reference.
 *
 * Ends with a summary table. A benchmark never fails: the exit status is 0
 * whatever the timings (a goal not met is a row marked MISSED), and a call
 * that is not there yet (-ENOSYS) or fails makes its rows n/a.
 *
 * BENCH_QUICK=1 (any value but empty or 0) runs small sizes (a few seconds).
 * BENCH_API_ONLY=letters runs those sections alone (e.g. "b", for perf).
 * The full run takes about 30-60 s on 2 CPUs.
 */
#include <procpool.h>

#include "bench_util.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define WORKERS 2
#define RUNS 3             /* rounds of a. and b. at most (median) */
#define SECTION_CAP_S 15.0 /* a. and b.: no new round past this */
#define WAIT_CAP_S 60.0    /* a wait past this: the figure is n/a */
#define TICK_NS 1000000L   /* c.: the timer period */
#define WINDOW 256         /* c.: tasks in flight */
#define TASK_US 10.0       /* c.: work per task */
#define GOAL_RATE 1e6

static int quick;

static int noop(const void *arg, size_t len, pp_buf_t *out) {
    (void)arg;
    (void)len;
    (void)out;
    return 0;
}

static void say_err(const char *what, long i, int rc) {
    if (i >= 0)
        printf("  %s (#%ld) failed: %s (%s)\n", what, i, pp_strerror(rc), pp_err_name(rc));
    else
        printf("  %s failed: %s (%s)\n", what, pp_strerror(rc), pp_err_name(rc));
}

static double med_or_na(double *v, int n) { return n > 0 ? median(v, (size_t)n) : -1; }

static void sleep_us(long us) {
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

static double thread_cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ------------------------------------------------------------------------ */
/* a. completion by done-callback                                           */
/* ------------------------------------------------------------------------ */

/* What the callbacks count; static so that a run given up on (a wait past
 * WAIT_CAP_S) leaves nothing on a stack that late callbacks could touch. */
static struct {
    atomic_long done, failed;
    long target;
    pthread_mutex_t m;
    pthread_cond_t cv;
} cbc = {.m = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void cb_count(pp_future_t *f) {
    if (!pp_future_successful(f))
        atomic_fetch_add(&cbc.failed, 1);
    if (atomic_fetch_add(&cbc.done, 1) + 1 == cbc.target) {
        pthread_mutex_lock(&cbc.m);
        pthread_cond_signal(&cbc.cv);
        pthread_mutex_unlock(&cbc.m);
    }
}

/* pp_submit's callback: the library frees the future after it. */
static void cb_submit(pp_future_t *f, void *ud) {
    (void)ud;
    cb_count(f);
}

/* pp_future_on_done's callback: frees the future as its last act. */
static void cb_free(pp_future_t *f, void *ud) {
    (void)ud;
    cb_count(f);
    pp_future_free(f);
}

static void cbc_reset(long target) {
    atomic_store(&cbc.done, 0);
    atomic_store(&cbc.failed, 0);
    cbc.target = target;
}

/* Wait until the callbacks have counted `target`. 0, or -1 past WAIT_CAP_S. */
static int cbc_wait(long target) {
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += (time_t)WAIT_CAP_S;
    int rc = 0;
    pthread_mutex_lock(&cbc.m);
    while (atomic_load(&cbc.done) < target && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&cbc.cv, &cbc.m, &dl);
    pthread_mutex_unlock(&cbc.m);
    if (atomic_load(&cbc.done) < target) {
        printf("  only %ld of %ld callbacks ran within %.0f s: figure given up\n",
               atomic_load(&cbc.done), target, WAIT_CAP_S);
        return -1;
    }
    if (atomic_load(&cbc.failed)) {
        printf("  %ld of %ld tasks failed\n", atomic_load(&cbc.failed), target);
        return -1;
    }
    return 0;
}

enum { V_ASYNC = 0, V_ASYNC_CB, V_SUBMIT_CB, NV };
static const char *const vname[NV] = {"pp_apply_async, get+free in order",
                                      "pp_apply_async + pp_future_on_done",
                                      "pp_submit, opts.on_done, no future"};

/* One run of n no-ops by variant v. Tasks/s, or -1. */
static double cb_run(pp_pool_t *pool, int v, pp_future_t **fs, long n) {
    double t0 = now();
    if (v == V_ASYNC) {
        long i = 0;
        for (; i < n; i++) {
            int rc = pp_apply_async(pool, noop, NULL, 0, &fs[i]);
            if (rc < 0) {
                say_err("pp_apply_async", i, rc);
                break;
            }
        }
        int bad = i < n;
        for (long k = 0; k < i; k++) {
            int rc = pp_future_get(fs[k], WAIT_CAP_S, NULL, NULL);
            if (rc < 0 && !bad) {
                say_err("pp_future_get", k, rc);
                bad = 1;
            }
            pp_future_free(fs[k]);
        }
        return bad ? -1 : (double)n / (now() - t0);
    }
    cbc_reset(n);
    pp_task_opts_t o;
    pp_task_opts_init(&o);
    o.on_done = cb_submit;
    for (long i = 0; i < n; i++) {
        int rc;
        if (v == V_SUBMIT_CB) {
            rc = pp_submit(pool, noop, NULL, 0, &o, NULL);
            if (rc < 0) {
                say_err("pp_submit", i, rc);
                cbc_wait(i);
                return -1;
            }
        } else {
            pp_future_t *f;
            rc = pp_apply_async(pool, noop, NULL, 0, &f);
            if (rc < 0) {
                say_err("pp_apply_async", i, rc);
                cbc_wait(i);
                return -1;
            }
            rc = pp_future_on_done(f, cb_free, NULL);
            if (rc < 0) {
                say_err("pp_future_on_done", i, rc);
                pp_future_free(f);
                cbc_wait(i);
                return -1;
            }
        }
    }
    if (cbc_wait(n) < 0)
        return -1;
    return (double)n / (now() - t0);
}

/* ------------------------------------------------------------------------ */
/* b. completion queue                                                      */
/* ------------------------------------------------------------------------ */

/* Submit n no-ops into fs (and into q when not NULL). The number submitted. */
static long submit_n(pp_pool_t *pool, pp_queue_t *q, pp_future_t **fs, long n) {
    for (long i = 0; i < n; i++) {
        int rc = pp_apply_async(pool, noop, NULL, 0, &fs[i]);
        if (rc < 0) {
            say_err("pp_apply_async", i, rc);
            return i;
        }
        if (q && (rc = pp_queue_add(q, fs[i])) < 0) {
            say_err("pp_queue_add", i, rc);
            return i + 1;
        }
    }
    return n;
}

/* Wait for fs[0..n) (not timed). 0, or -1 with every future freed. */
static int wait_all(pp_future_t **fs, long n) {
    for (long i = 0; i < n; i++) {
        int rc = pp_future_wait(fs[i], WAIT_CAP_S);
        if (rc < 0) {
            say_err("pp_future_wait", i, rc);
            for (long k = 0; k < n; k++)
                pp_future_free(fs[k]);
            return -1;
        }
    }
    return 0;
}

/* Take futures out of q with pp_queue_next(q, timeout) and free them until
 * `want` came out, the queue is drained or the timeout passed. The number
 * taken out, or -1 on an error or a failed task. */
static long queue_take(pp_queue_t *q, long want, double timeout) {
    long got = 0;
    int bad = 0;
    while (got < want) {
        pp_future_t *f;
        int rc = pp_queue_next(q, timeout, &f);
        if (rc == 1) {
            if (!pp_future_successful(f) && !bad) {
                printf("  a task failed: %s\n", pp_future_error(f) ? pp_future_error(f) : "?");
                bad = 1;
            }
            pp_future_free(f);
            got++;
        } else if (rc == 0 || rc == -ETIMEDOUT) {
            break;
        } else {
            say_err("pp_queue_next", got, rc);
            return -1;
        }
    }
    return bad ? -1 : got;
}

/* Done drain through a queue: futures/s of the drain alone, or -1. */
static double qdrain_done(pp_pool_t *pool, pp_future_t **fs, long n) {
    pp_queue_t *q;
    int rc = pp_queue_create(&q);
    if (rc < 0) {
        say_err("pp_queue_create", -1, rc);
        return -1;
    }
    long s = submit_n(pool, q, fs, n);
    if (wait_all(fs, s) < 0) {
        pp_queue_destroy(q);
        return -1;
    }
    /* blocking takes: a done future may reach the queue a moment after
     * pp_future_wait saw it done (delivered by the callback thread, say) */
    double t0 = now();
    long got = queue_take(q, s, WAIT_CAP_S);
    double dt = now() - t0;
    pp_queue_destroy(q);
    if (got != s) {
        /* which futures came out (and were freed) is not known: the rest
         * are left to the process's end */
        if (got >= 0)
            printf("  pp_queue_next gave %ld of %ld done futures\n", got, s);
        return -1;
    }
    return s == n ? (double)n / dt : -1;
}

/* Done drain by pp_future_wait in submission order: futures/s, or -1. */
static double wdrain_done(pp_pool_t *pool, pp_future_t **fs, long n) {
    long s = submit_n(pool, NULL, fs, n);
    if (wait_all(fs, s) < 0)
        return -1;
    double t0 = now();
    int bad = 0;
    for (long i = 0; i < s; i++) {
        if (pp_future_wait(fs[i], -1) < 0 || !pp_future_successful(fs[i]))
            bad = 1;
        pp_future_free(fs[i]);
    }
    double dt = now() - t0;
    return s == n && !bad ? (double)n / dt : -1;
}

/* The streaming consumer's shared state. */
struct stream {
    pp_queue_t *q; /* queue mode; NULL: pp_future_wait mode */
    pp_future_t **fs;
    long n;
    atomic_long published; /* fs[0..published) submitted (and added) */
    long got;              /* futures taken out and freed; -1 on error */
    double cpu_s;          /* the consumer thread's CPU time */
};

static void *stream_consumer(void *p) {
    struct stream *st = p;
    double c0 = thread_cpu_s();
    long got = 0;
    while (got < st->n) {
        if (st->q) {
            long k = queue_take(st->q, st->n - got, WAIT_CAP_S);
            if (k < 0) {
                got = -1;
                break;
            }
            got += k;
            if (k == 0) /* drained: the submitter is behind */
                sleep_us(20);
        } else {
            long pub = atomic_load_explicit(&st->published, memory_order_acquire);
            if (got == pub) {
                sleep_us(20);
                continue;
            }
            for (; got < pub; got++) {
                int rc = pp_future_wait(st->fs[got], WAIT_CAP_S);
                if (rc < 0 || !pp_future_successful(st->fs[got])) {
                    say_err("pp_future_wait / the task", got, rc < 0 ? rc : PP_ETASK);
                    got = -1;
                    break;
                }
                pp_future_free(st->fs[got]);
            }
            if (got < 0)
                break;
        }
    }
    st->cpu_s = thread_cpu_s() - c0;
    st->got = got;
    return NULL;
}

/* Streaming: a consumer thread drains (through a queue when use_queue)
 * while this thread submits. End-to-end futures/s, or -1; *cpu_us: the
 * consumer's CPU time per future. */
static double stream_run(pp_pool_t *pool, pp_future_t **fs, long n, int use_queue, double *cpu_us) {
    static struct stream st; /* static: a consumer given up on may still run */
    memset(&st, 0, sizeof st);
    st.fs = fs;
    st.n = n;
    if (use_queue) {
        int rc = pp_queue_create(&st.q);
        if (rc < 0) {
            say_err("pp_queue_create", -1, rc);
            return -1;
        }
    }
    pthread_t th;
    double t0 = now();
    if (pthread_create(&th, NULL, stream_consumer, &st) != 0) {
        printf("  pthread_create failed\n");
        pp_queue_destroy(st.q);
        return -1;
    }
    long i = 0;
    for (; i < n; i++) {
        int rc = pp_apply_async(pool, noop, NULL, 0, &fs[i]);
        if (rc < 0) {
            say_err("pp_apply_async", i, rc);
            break;
        }
        if (st.q && (rc = pp_queue_add(st.q, fs[i])) < 0) {
            say_err("pp_queue_add", i, rc);
            break;
        }
        atomic_store_explicit(&st.published, i + 1, memory_order_release);
    }
    if (i < n) {
        /* the consumer would wait for futures that never come */
        printf("  streaming run given up (the consumer thread is left behind)\n");
        pthread_detach(th);
        return -1;
    }
    pthread_join(th, NULL);
    double dt = now() - t0;
    pp_queue_destroy(st.q);
    if (st.got != n)
        return -1;
    *cpu_us = st.cpu_s / (double)n * 1e6;
    return (double)n / dt;
}

/* ------------------------------------------------------------------------ */
/* c. event loop                                                            */
/* ------------------------------------------------------------------------ */

struct loop_res {
    double p50_us, p99_us, max_us; /* lateness of the timer ticks */
    long ticks, overruns;          /* ticks seen; reads that found > 1 expiration */
    double cb_p99_us, cb_max_us;   /* time in the queue callback (drain + resubmit) */
    long cb_calls, preempted;      /* its calls; the loop thread's involuntary switches */
    long cb_slept;                 /* times the loop thread slept inside the callback */
    double wall_s, tasks_s;
    long tasks;
};

struct samples {
    double *v;
    size_t n, cap;
};

static int push(struct samples *s, double x) {
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 4096;
        double *v = realloc(s->v, cap * sizeof *v);
        if (!v)
            return -1;
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = x;
    return 0;
}

static uint64_t task_iters;

struct loop {
    pp_pool_t *pool;
    pp_queue_t *q;
    long ntasks, submitted, done, inflight;
};

/* Keep WINDOW tasks in flight. 0 or -1. */
static int top_up(struct loop *l) {
    while (l->inflight < WINDOW && l->submitted < l->ntasks) {
        struct cpu_item it = {(uint64_t)l->submitted, task_iters};
        pp_future_t *f;
        int rc = pp_apply_async(l->pool, task_cpu, &it, sizeof it, &f);
        if (rc < 0) {
            say_err("pp_apply_async", l->submitted, rc);
            return -1;
        }
        if ((rc = pp_queue_add(l->q, f)) < 0) {
            say_err("pp_queue_add", l->submitted, rc);
            pp_future_free(f);
            return -1;
        }
        l->submitted++;
        l->inflight++;
    }
    return 0;
}

/* The queue callback: take out every done future, check it, free it; then
 * submit more. 0 or -1. */
static int on_queue(struct loop *l) {
    pp_future_t *f;
    int rc;
    while ((rc = pp_queue_next(l->q, 0, &f)) == 1) {
        size_t len = 0;
        int grc = pp_future_get(f, 0, NULL, &len);
        if (grc < 0 || len != sizeof(uint64_t)) {
            say_err("a loop task", l->done, grc < 0 ? grc : PP_ETASK);
            pp_future_free(f);
            return -1;
        }
        pp_future_free(f);
        l->done++;
        l->inflight--;
    }
    if (rc < 0 && rc != -ETIMEDOUT) {
        say_err("pp_queue_next", l->done, rc);
        return -1;
    }
    return top_up(l);
}

/* The loop: ticks until ntasks are done (pool) or idle_ticks were seen (no
 * pool). 0, or -1 with *r undefined. */
static int event_loop(pp_pool_t *pool, long ntasks, long idle_ticks, struct loop_res *r) {
    memset(r, 0, sizeof *r);
    struct loop l = {.pool = pool, .ntasks = ntasks};
    double t_tasks = now(); /* tasks/s counts the first window's submission too */
    struct samples s = {0}, cbt = {0};
    int ret = -1;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (ep < 0 || tfd < 0) {
        printf("  epoll_create1/timerfd_create: %s\n", strerror(errno));
        goto out;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = 0};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev) < 0) {
        printf("  epoll_ctl(timerfd): %s\n", strerror(errno));
        goto out;
    }
    if (pool) {
        int rc = pp_queue_create(&l.q);
        if (rc < 0) {
            say_err("pp_queue_create", -1, rc);
            goto out;
        }
        int qfd = pp_queue_fd(l.q);
        if (qfd < 0) {
            say_err("pp_queue_fd", -1, qfd);
            goto out;
        }
        ev.data.u32 = 1;
        if (epoll_ctl(ep, EPOLL_CTL_ADD, qfd, &ev) < 0) {
            printf("  epoll_ctl(pp_queue_fd): %s\n", strerror(errno));
            goto out;
        }
        if (top_up(&l) < 0)
            goto out;
    }
    struct timespec base;
    clock_gettime(CLOCK_MONOTONIC, &base);
    base.tv_nsec += TICK_NS;
    if (base.tv_nsec >= 1000000000L) {
        base.tv_sec++;
        base.tv_nsec -= 1000000000L;
    }
    struct itimerspec its = {.it_interval = {0, TICK_NS}, .it_value = base};
    if (timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL) < 0) {
        printf("  timerfd_settime: %s\n", strerror(errno));
        goto out;
    }
    double base_s = (double)base.tv_sec + (double)base.tv_nsec * 1e-9;
    uint64_t cum = 0;
    struct rusage ru0, ru1;
    getrusage(RUSAGE_THREAD, &ru0);
    double t0 = now();
    while (pool ? l.done < ntasks : (long)cum < idle_ticks) {
        struct epoll_event evs[4];
        int n = epoll_wait(ep, evs, 4, 1000);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            printf("  epoll_wait: %s\n", strerror(errno));
            goto out;
        }
        if (now() - t0 > WAIT_CAP_S) {
            printf("  the loop ran past %.0f s (%ld of %ld tasks done): given up\n", WAIT_CAP_S,
                   l.done, ntasks);
            goto out;
        }
        for (int k = 0; k < n; k++) {
            if (evs[k].data.u32 == 0) {
                uint64_t exp;
                if (read(tfd, &exp, sizeof exp) != (ssize_t)sizeof exp)
                    continue; /* EAGAIN: nothing expired after all */
                double t = now();
                for (uint64_t j = cum; j < cum + exp; j++)
                    if (push(&s, t - (base_s + (double)j * (double)TICK_NS * 1e-9)) < 0)
                        goto out;
                cum += exp;
                r->overruns += exp > 1;
            } else {
                struct rusage u0, u1;
                getrusage(RUSAGE_THREAD, &u0);
                double c0 = now();
                if (on_queue(&l) < 0 || push(&cbt, now() - c0) < 0)
                    goto out;
                getrusage(RUSAGE_THREAD, &u1);
                r->cb_slept += u1.ru_nvcsw - u0.ru_nvcsw; /* a lock's futex, say */
            }
        }
    }
    r->wall_s = now() - t0;
    getrusage(RUSAGE_THREAD, &ru1);
    r->preempted = ru1.ru_nivcsw - ru0.ru_nivcsw;
    if (cbt.n) {
        qsort(cbt.v, cbt.n, sizeof *cbt.v, cmp_double);
        r->cb_calls = (long)cbt.n;
        r->cb_p99_us = cbt.v[cbt.n * 99 / 100] * 1e6;
        r->cb_max_us = cbt.v[cbt.n - 1] * 1e6;
    }
    if (s.n == 0) {
        printf("  no timer tick was seen\n");
        goto out;
    }
    qsort(s.v, s.n, sizeof *s.v, cmp_double);
    r->ticks = (long)s.n;
    r->p50_us = s.v[s.n / 2] * 1e6;
    r->p99_us = s.v[s.n * 99 / 100] * 1e6;
    r->max_us = s.v[s.n - 1] * 1e6;
    r->tasks = l.done;
    r->tasks_s = pool ? (double)l.done / (now() - t_tasks) : 0;
    ret = 0;
out:
    if (l.q) {
        /* futures still in flight after a failure: taking them out frees them */
        while (l.inflight > 0) {
            pp_future_t *f;
            if (pp_queue_next(l.q, WAIT_CAP_S, &f) != 1)
                break;
            pp_future_free(f);
            l.inflight--;
        }
        pp_queue_destroy(l.q);
    }
    if (tfd >= 0)
        close(tfd);
    if (ep >= 0)
        close(ep);
    free(s.v);
    free(cbt.v);
    return ret;
}

/* The same tasks by pp_apply_async, all submitted then got in order, no
 * loop: tasks/s, or -1. */
static double cpu_tasks_plain(pp_pool_t *pool, pp_future_t **fs, long n) {
    double t0 = now();
    long i = 0;
    for (; i < n; i++) {
        struct cpu_item it = {(uint64_t)i, task_iters};
        int rc = pp_apply_async(pool, task_cpu, &it, sizeof it, &fs[i]);
        if (rc < 0) {
            say_err("pp_apply_async", i, rc);
            break;
        }
    }
    int bad = i < n;
    for (long k = 0; k < i; k++) {
        if (pp_future_get(fs[k], WAIT_CAP_S, NULL, NULL) < 0)
            bad = 1;
        pp_future_free(fs[k]);
    }
    return bad ? -1 : (double)n / (now() - t0);
}

static void print_loop(const char *what, const struct loop_res *r) {
    printf("  %-34s ticks %5ld  lateness p50 %7.1f us  p99 %8.1f us  max %8.1f us"
           "  overruns %ld",
           what, r->ticks, r->p50_us, r->p99_us, r->max_us, r->overruns);
    if (r->tasks)
        printf("  | %ld tasks in %.2f s: %.1f k tasks/s", r->tasks, r->wall_s, r->tasks_s / 1e3);
    printf("\n    the loop thread was preempted %ld times", r->preempted);
    if (r->cb_calls)
        printf("; queue callback: %ld calls, p99 %.1f us, max %.1f us, slept in it %ld times",
               r->cb_calls, r->cb_p99_us, r->cb_max_us, r->cb_slept);
    printf("\n");
}

/* ------------------------------------------------------------------------ */
/* main                                                                     */
/* ------------------------------------------------------------------------ */

static const char *pass_below(double v, double goal) {
    return v <= 0 ? "n/a" : v >= goal ? "PASS" : "BELOW";
}

static void fmt_us(char *buf, size_t size, double us) {
    if (us > 0)
        snprintf(buf, size, "%.1f us", us);
    else
        snprintf(buf, size, "n/a");
}

static double ratio(double a, double b) { return a > 0 && b > 0 ? a / b : -1; }

/* "1.234 M/s" / "1.23x" / "0.101 us", or "n/a": for the prose lines, in one
 * of a few rotating buffers (several per printf). */
static const char *m_s(const char *fmt, double x) {
    static char buf[8][32];
    static int k;
    char *b = buf[k++ % 8];
    if (x > 0)
        snprintf(b, sizeof buf[0], fmt, x);
    else
        snprintf(b, sizeof buf[0], "n/a");
    return b;
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *qe = getenv("BENCH_QUICK");
    quick = qe && *qe && strcmp(qe, "0") != 0;
    const long n_cb = quick ? 50000 : 1000000;
    const long n_q = quick ? 50000 : 1000000;
    const long n_loop = quick ? 20000 : 100000;
    const long idle_ticks = quick ? 300 : 1000;
    const int runs = quick ? 1 : RUNS;
    const char *only = getenv("BENCH_API_ONLY"); /* e.g. "b": that section alone (profiling) */
    if (only && !*only)
        only = NULL;

    double t_start = now();
    printf("bench_api: procpool %s (library %s), %d CPUs usable (pp_cpu_count), %ld online%s\n",
           PROCPOOL_VERSION_STRING, pp_version_string(), pp_cpu_count(),
           sysconf(_SC_NPROCESSORS_ONLN), quick ? ", BENCH_QUICK: small sizes" : "");
    bench_print_load();
    printf("\n");

    long nmax = n_cb > n_q ? n_cb : n_q;
    if (n_loop > nmax)
        nmax = n_loop;
    pp_future_t **fs = malloc(sizeof *fs * (size_t)nmax);
    pp_pool_t *pool = fs ? bench_make_pool(WORKERS) : NULL;
    if (!pool) {
        printf("no pool (or out of memory): nothing measured\n");
        return 0;
    }

    /* ---- a. done-callbacks ---- */
    double cb_med[NV] = {-1, -1, -1};
    if (!only || strchr(only, 'a')) {
        printf("a. %ld no-op tasks on a pool of %d, completion seen by a callback "
               "(median of up to %d rounds)\n",
               n_cb, WORKERS, runs);
        double cb_v[NV][RUNS];
        int cb_n[NV] = {0}, cb_dead[NV] = {0};
        for (int v = 0; v < NV; v++) /* warm-up: fault in the allocator's memory */
            if (cb_run(pool, v, fs, n_cb / 10) < 0)
                cb_dead[v] = 1;
        double sec0 = now();
        for (int r = 0; r < runs; r++) {
            for (int v = 0; v < NV; v++) {
                if (cb_dead[v])
                    continue;
                double x = cb_run(pool, v, fs, n_cb);
                if (x < 0) {
                    cb_dead[v] = 1;
                    continue;
                }
                cb_v[v][cb_n[v]++] = x;
                printf("  round %d  %-36s %8.3f M tasks/s\n", r + 1, vname[v], x / 1e6);
            }
            if (now() - sec0 > SECTION_CAP_S && r + 1 < runs) {
                printf("  (past %.0f s: the remaining rounds are skipped)\n", SECTION_CAP_S);
                break;
            }
        }
        for (int v = 0; v < NV; v++)
            cb_med[v] = med_or_na(cb_v[v], cb_n[v]);
        printf("  median: %s %s, %s %s, %s %s\n", vname[V_SUBMIT_CB],
               m_s("%.3f M/s", cb_med[V_SUBMIT_CB] / 1e6), vname[V_ASYNC_CB],
               m_s("%.3f M/s", cb_med[V_ASYNC_CB] / 1e6), vname[V_ASYNC],
               m_s("%.3f M/s", cb_med[V_ASYNC] / 1e6));
        printf("  pp_submit+on_done: %s pp_apply_async, %s pp_apply_async+on_done; goal "
               ">= %.2f M/s: %s\n\n",
               m_s("%.2fx", ratio(cb_med[V_SUBMIT_CB], cb_med[V_ASYNC])),
               m_s("%.2fx", ratio(cb_med[V_SUBMIT_CB], cb_med[V_ASYNC_CB])), GOAL_RATE / 1e6,
               pass_below(cb_med[V_SUBMIT_CB], GOAL_RATE));
    }

    /* ---- b. completion queue ---- */
    double qd_m = -1, wd_m = -1, qs_m = -1, ws_m = -1;
    if (!only || strchr(only, 'b')) {
        printf("b. completion queue: %ld no-op futures through a pp_queue vs pp_future_wait in "
               "submission order (median of up to %d rounds)\n",
               n_q, runs);
        double qd[RUNS], wd[RUNS], qs[RUNS], ws[RUNS], qs_cpu[RUNS], ws_cpu[RUNS];
        int nqd = 0, nwd = 0, nqs = 0, nws = 0;
        int q_dead = 0;
        double sec0 = now();
        for (int r = 0; r < runs; r++) {
            double x, c = 0;
            if (!q_dead) {
                if ((x = qdrain_done(pool, fs, n_q)) > 0) {
                    qd[nqd++] = x;
                    printf("  round %d  done drain, pp_queue_next+free    %8.3f M/s\n", r + 1,
                           x / 1e6);
                } else {
                    q_dead = 1;
                }
            }
            if ((x = wdrain_done(pool, fs, n_q)) > 0) {
                wd[nwd++] = x;
                printf("  round %d  done drain, pp_future_wait+free   %8.3f M/s\n", r + 1, x / 1e6);
            }
            if (!q_dead) {
                if ((x = stream_run(pool, fs, n_q, 1, &c)) > 0) {
                    qs_cpu[nqs] = c;
                    qs[nqs++] = x;
                    printf("  round %d  streaming, pp_queue_next+free     %8.3f M/s end to end, "
                           "consumer CPU %.3f us/future\n",
                           r + 1, x / 1e6, c);
                } else {
                    q_dead = 1;
                }
            }
            if ((x = stream_run(pool, fs, n_q, 0, &c)) > 0) {
                ws_cpu[nws] = c;
                ws[nws++] = x;
                printf("  round %d  streaming, pp_future_wait+free    %8.3f M/s end to end, "
                       "consumer CPU %.3f us/future\n",
                       r + 1, x / 1e6, c);
            }
            if (now() - sec0 > SECTION_CAP_S && r + 1 < runs) {
                printf("  (past %.0f s: the remaining rounds are skipped)\n", SECTION_CAP_S);
                break;
            }
        }
        qd_m = med_or_na(qd, nqd), wd_m = med_or_na(wd, nwd);
        qs_m = med_or_na(qs, nqs), ws_m = med_or_na(ws, nws);
        double qs_c = med_or_na(qs_cpu, nqs), ws_c = med_or_na(ws_cpu, nws);
        printf("  median done drain: queue %s, pp_future_wait %s (%s); goal >= %.2f M/s: %s\n",
               m_s("%.3f M/s", qd_m / 1e6), m_s("%.3f M/s", wd_m / 1e6),
               m_s("%.2fx", ratio(qd_m, wd_m)), GOAL_RATE / 1e6, pass_below(qd_m, GOAL_RATE));
        printf("  median streaming: queue %s, pp_future_wait %s (%s); goal >= %.2f M/s: %s\n",
               m_s("%.3f M/s", qs_m / 1e6), m_s("%.3f M/s", ws_m / 1e6),
               m_s("%.2fx", ratio(qs_m, ws_m)), GOAL_RATE / 1e6, pass_below(qs_m, GOAL_RATE));
        printf("  streaming consumer's CPU: queue %s, pp_future_wait %s per future (a drain "
               "capacity of %s vs %s)\n\n",
               m_s("%.3f us", qs_c), m_s("%.3f us", ws_c),
               m_s("%.2f M/s", qs_c > 0 ? 1 / qs_c : -1),
               m_s("%.2f M/s", ws_c > 0 ? 1 / ws_c : -1));
    }

    /* ---- c. event loop ---- */
    struct loop_res idle = {0}, busy = {0}, busy1 = {0};
    int idle_ok = 0, busy_ok = 0, busy1_ok = 0;
    double plain_tps = -1;
    if (!only || strchr(only, 'c')) {
        /* the fastest of three calibrations: on a shared machine a slow one only
         * means another process had the CPU */
        task_iters = 0;
        for (int k = 0; k < 3; k++) {
            uint64_t it = spin_calibrate(TASK_US * 1e-3);
            if (it > task_iters)
                task_iters = it;
        }
        printf("c. epoll loop, timerfd every %.0f ms + pp_queue_fd; %ld tasks of ~%.0f us "
               "(%llu LCG steps), %d in flight, consumed and resubmitted in the loop\n",
               (double)TICK_NS / 1e6, n_loop, TASK_US, (unsigned long long)task_iters, WINDOW);
        idle_ok = event_loop(NULL, 0, idle_ticks, &idle) == 0;
        if (idle_ok)
            print_loop("anchor: idle loop, no pool", &idle);
        busy_ok = event_loop(pool, n_loop, 0, &busy) == 0;
        if (busy_ok)
            print_loop("loop + pool of 2 (all CPUs busy)", &busy);
        plain_tps = cpu_tasks_plain(pool, fs, n_loop);
        printf("  anchor: the same tasks by pp_apply_async+get, no loop: %.1f k tasks/s "
               "(2 workers at %.0f us a task: at most %.0f k/s)\n",
               plain_tps / 1e3, TASK_US, WORKERS / TASK_US * 1e3);
        pp_pool_destroy(pool);
        pool = bench_make_pool(1);
        busy1_ok = pool && event_loop(pool, n_loop, 0, &busy1) == 0;
        if (busy1_ok)
            print_loop("reference: loop + pool of 1", &busy1);
        printf("\n");
    }
    pp_pool_destroy(pool);
    free(fs);

    /* ---- summary ---- */
    char v[32], a[64], r[32];
    double x;

    fmt_rate(v, sizeof v, cb_med[V_SUBMIT_CB]);
    x = cb_med[V_SUBMIT_CB] / GOAL_RATE;
    add_row("pp_submit+on_done no-ops, absolute", v, "goal 1.00 M/s", x, ">= 1x", x >= 1.0);
    fmt_rate(r, sizeof r, cb_med[V_ASYNC]);
    snprintf(a, sizeof a, "apply_async %s", r);
    add_row("pp_submit+on_done vs apply_async", v, a, ratio(cb_med[V_SUBMIT_CB], cb_med[V_ASYNC]),
            "(ref.)", -1);
    fmt_rate(r, sizeof r, cb_med[V_ASYNC_CB]);
    snprintf(a, sizeof a, "apply_async+on_done %s", r);
    add_row("pp_submit+on_done vs on_done set after", v, a,
            ratio(cb_med[V_SUBMIT_CB], cb_med[V_ASYNC_CB]), "(ref.)", -1);
    fmt_rate(v, sizeof v, cb_med[V_ASYNC]);
    add_row("apply_async no-ops (its goal: bench_core)", v, "1.00 M/s", cb_med[V_ASYNC] / GOAL_RATE,
            "(ref.)", -1);

    fmt_rate(v, sizeof v, qd_m);
    x = qd_m / GOAL_RATE;
    add_row("queue drain of done futures, absolute", v, "goal 1.00 M/s", x, ">= 1x", x >= 1.0);
    fmt_rate(r, sizeof r, wd_m);
    snprintf(a, sizeof a, "future_wait %s", r);
    add_row("queue drain of done futures vs wait", v, a, ratio(qd_m, wd_m), "(ref.)", -1);
    fmt_rate(v, sizeof v, qs_m);
    x = qs_m / GOAL_RATE;
    add_row("queue streaming, end to end, absolute", v, "goal 1.00 M/s", x, ">= 1x", x >= 1.0);
    fmt_rate(r, sizeof r, ws_m);
    snprintf(a, sizeof a, "future_wait %s", r);
    add_row("queue streaming vs wait streaming", v, a, ratio(qs_m, ws_m), "(ref.)", -1);

    double lat[3][2] = {
        {busy.p50_us, idle.p50_us}, {busy.p99_us, idle.p99_us}, {busy.max_us, idle.max_us}};
    static const char *const latname[3] = {"loop tick lateness p50, pool of 2",
                                           "loop tick lateness p99, pool of 2",
                                           "loop tick lateness max, pool of 2"};
    static const char *const latidle[3] = {"idle loop p50 ", "idle loop p99 ", "idle loop max "};
    for (int k = 0; k < 3; k++) {
        double b = busy_ok ? lat[k][0] : -1, i = idle_ok ? lat[k][1] : -1;
        fmt_us(v, sizeof v, b);
        snprintf(a, sizeof a, "%s", latidle[k]);
        fmt_us(a + strlen(a), sizeof a - strlen(a), i);
        add_row(latname[k], v, a, ratio(b, i), "(ref.)", -1);
    }
    if (busy1_ok) {
        fmt_us(v, sizeof v, busy1.p99_us);
        snprintf(a, sizeof a, "idle loop p99 ");
        fmt_us(a + strlen(a), sizeof a - strlen(a), idle_ok ? idle.p99_us : -1);
        add_row("loop tick lateness p99, pool of 1", v, a,
                ratio(busy1.p99_us, idle_ok ? idle.p99_us : -1), "(ref.)", -1);
    }
    fmt_rate(v, sizeof v, busy_ok ? busy.tasks_s : -1);
    fmt_rate(r, sizeof r, plain_tps);
    snprintf(a, sizeof a, "apply_async+get %s", r);
    add_row("10 us tasks through the loop, pool of 2", v, a,
            ratio(busy_ok ? busy.tasks_s : -1, plain_tps), "(ref.)", -1);

    printf("summary (ratios are procpool against the anchor measured above; rates: higher is "
           "better; lateness: lower is better)\n\n");
    print_summary();
    printf("bench_api took %.1f s\n", now() - t_start);
    return 0; /* a benchmark never fails */
}
