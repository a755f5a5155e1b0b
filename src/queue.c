/*
 * queue.c - waiting for several futures: pp_wait and completion queues.
 *
 * DESIGN: both hang off pp__future_complete (future.c), which runs once
 * per future, usually under its pool's lock.
 *
 * pp_wait spins briefly draining the futures' pools (as pp_future_wait
 * does), then sleeps on one process-wide futex word, pp__wait_seq. A
 * completer bumps it and wakes it only while some pp_wait sleeps
 * (pp__wait_sleepers), so futures nobody waits for this way pay one load
 * of a read-mostly word. The sleeper registers, reads the word, checks
 * its futures again, then sleeps on the value it read: a completion after
 * the check changes the word and the sleep returns at once. Sleeps are
 * also cut in slices, so a lost wake-up can cost a slice, never a hang.
 *
 * A queue holds each future it was given in one of two lists: pending
 * (not done) or done (in completion order). The future's PP__FS_Q state
 * bit decides who moves it from one to the other, like the callback's
 * bits: pp_queue_add sets f->queue, then the bit; completion sets DONE;
 * whichever of the two comes second sees the other's bit and delivers.
 * Delivering twice is harmless (the second finds it done), so a bit left
 * from an earlier queue does no harm. A completion that finds the bit set
 * sets DONE and delivers under qlock in one step, so a thread that sees
 * the future done and then looks in the queue finds it there. All queue state is guarded by one
 * leaf mutex, qlock: it is taken under a pool's lock (by completion) and
 * no pool lock is ever taken under it, so the order is fixed. The
 * eventfd counts nothing: it is made readable when the done list becomes
 * non-empty and read empty when it becomes empty (level-triggered).
 */
#include "tuning.h"
#include "internal.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

_Atomic uint32_t pp__wait_seq;
_Atomic uint32_t pp__wait_sleepers;

static bool is_done(const pp_future_t *f) {
    return atomic_load_explicit(&f->state, memory_order_acquire) & PP__FS_DONE;
}

static uint64_t limit_ns(double timeout) {
    if (timeout < 0 || timeout > 1e9)
        return UINT64_MAX;
    return (uint64_t)(timeout * 1e9);
}

/* ---------------------------------------------------------------- */
/* pp_wait                                                           */
/* ---------------------------------------------------------------- */

/* Does the condition hold? *ndone: the futures done. */
static bool wait_holds(pp_future_t *const *fs, size_t n, int mode, int *ndone) {
    size_t done = 0;
    bool failed = false;
    for (size_t i = 0; i < n; i++) {
        if (is_done(fs[i])) {
            done++;
            failed |= fs[i]->err != 0;
        }
    }
    *ndone = done > INT32_MAX ? INT32_MAX : (int)done;
    if (mode == PP_FIRST_COMPLETED)
        return done > 0;
    if (mode == PP_FIRST_EXCEPTION)
        return failed || done == n;
    return done == n;
}

/* Collect what the futures' pools have finished (each pool once in a row). */
static void drain_pools(pp_future_t *const *fs, size_t n) {
    pp_pool_t *last = NULL;
    for (size_t i = 0; i < n; i++) {
        if (!is_done(fs[i]) && fs[i]->pool != last) {
            last = fs[i]->pool;
            pp__drain(last, false);
        }
    }
}

int pp_wait(pp_future_t *const *fs, size_t n, int return_when, double timeout) {
    if ((n && !fs) || isnan(timeout) ||
        (return_when != PP_FIRST_COMPLETED && return_when != PP_FIRST_EXCEPTION &&
         return_when != PP_ALL_COMPLETED))
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!fs[i])
            return -EINVAL;
    if (n == 0)
        return 0; /* nothing to wait for: every condition holds */
    int ndone;
    if (wait_holds(fs, n, return_when, &ndone))
        return ndone;
    uint64_t start = pp__now_ns(), limit = limit_ns(timeout);
    do { /* spin a little, collecting results ourselves (once when polling) */
        drain_pools(fs, n);
        if (wait_holds(fs, n, return_when, &ndone))
            return ndone;
        for (int i = 0; i < 32; i++)
            pp__cpu_relax();
    } while (timeout != 0 && pp__now_ns() - start < PP__SPIN_NS);
    for (;;) {
        uint64_t el = pp__now_ns() - start;
        if (el >= limit)
            return -ETIMEDOUT;
        atomic_fetch_add_explicit(&pp__wait_sleepers, 1, memory_order_seq_cst);
        uint32_t seq = atomic_load_explicit(&pp__wait_seq, memory_order_seq_cst);
        bool holds = wait_holds(fs, n, return_when, &ndone);
        if (!holds) {
            uint64_t left = limit == UINT64_MAX ? PP__QUEUE_SLICE_NS : limit - el;
            pp__futex_wait(&pp__wait_seq, seq,
                           (int64_t)(left < PP__QUEUE_SLICE_NS ? left : PP__QUEUE_SLICE_NS), false);
        }
        atomic_fetch_sub_explicit(&pp__wait_sleepers, 1, memory_order_relaxed);
        if (holds || wait_holds(fs, n, return_when, &ndone))
            return ndone;
    }
}

/* ---------------------------------------------------------------- */
/* completion queues                                                 */
/* ---------------------------------------------------------------- */

struct pp_queue {
    int evfd;
    pp_future_t *pend;                  /* added, not done (unordered) */
    pp_future_t *done_head, *done_tail; /* done, in completion order */
    size_t npend, ndone;
    int sleepers;
    pthread_cond_t cond;
};

static pthread_mutex_t qlock = PTHREAD_MUTEX_INITIALIZER;

static void unlink_locked(pp_queue_t *q, pp_future_t *f) {
    if (f->q_prev)
        f->q_prev->q_next = f->q_next;
    else if (f->q_done)
        q->done_head = f->q_next;
    else
        q->pend = f->q_next;
    if (f->q_next)
        f->q_next->q_prev = f->q_prev;
    else if (f->q_done)
        q->done_tail = f->q_prev;
    f->q_prev = f->q_next = NULL;
    if (f->q_done)
        q->ndone--;
    else
        q->npend--;
}

static void set_readable(pp_queue_t *q, bool on) {
    uint64_t v = 1;
    ssize_t r = on ? write(q->evfd, &v, sizeof v) : read(q->evfd, &v, sizeof v);
    (void)r; /* a full counter is readable already; an empty one is not readable */
}

static void deliver_locked(pp_future_t *f) {
    pp_queue_t *q = f->queue;
    if (q && !f->q_done) {
        unlink_locked(q, f);
        f->q_done = true;
        f->q_prev = q->done_tail;
        if (q->done_tail)
            q->done_tail->q_next = f;
        else
            q->done_head = f;
        q->done_tail = f;
        if (++q->ndone == 1)
            set_readable(q, true);
        if (q->sleepers)
            pthread_cond_signal(&q->cond);
    }
}

void pp__queue_deliver(pp_future_t *f) {
    pthread_mutex_lock(&qlock);
    deliver_locked(f);
    pthread_mutex_unlock(&qlock);
}

uint32_t pp__queue_done(pp_future_t *f) {
    pthread_mutex_lock(&qlock);
    uint32_t old = atomic_fetch_or_explicit(&f->state, PP__FS_DONE, memory_order_acq_rel);
    deliver_locked(f);
    pthread_mutex_unlock(&qlock);
    return old;
}

void pp__queue_detach(pp_future_t *f) {
    pthread_mutex_lock(&qlock);
    pp_queue_t *q = f->queue;
    if (q) {
        bool was_done = f->q_done;
        unlink_locked(q, f);
        f->queue = NULL;
        f->q_done = false;
        if (was_done && q->ndone == 0)
            set_readable(q, false);
        if (q->sleepers) /* it may have been the last one a waiter waited for */
            pthread_cond_broadcast(&q->cond);
    }
    pthread_mutex_unlock(&qlock);
}

int pp_queue_create(pp_queue_t **qp) {
    if (!qp)
        return -EINVAL;
    *qp = NULL;
    pp_queue_t *q = calloc(1, sizeof *q);
    if (!q)
        return -ENOMEM;
    q->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (q->evfd < 0) {
        int err = -errno;
        free(q);
        return err;
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int r = pthread_cond_init(&q->cond, &ca);
    pthread_condattr_destroy(&ca);
    if (r != 0) {
        close(q->evfd);
        free(q);
        return -r;
    }
    *qp = q;
    return 0;
}

int pp_queue_add(pp_queue_t *q, pp_future_t *f) {
    if (!q || !f)
        return -EINVAL;
    pthread_mutex_lock(&qlock);
    if (f->queue) {
        pthread_mutex_unlock(&qlock);
        return -EBUSY;
    }
    f->queue = q;
    f->q_done = false;
    f->q_prev = NULL;
    f->q_next = q->pend;
    if (q->pend)
        q->pend->q_prev = f;
    q->pend = f;
    q->npend++;
    pthread_mutex_unlock(&qlock);
    uint32_t old = atomic_fetch_or_explicit(&f->state, PP__FS_Q, memory_order_acq_rel);
    if (old & PP__FS_DONE)
        pp__queue_deliver(f); /* done already (or completing now): deliver it ourselves */
    return 0;
}

int pp_queue_next(pp_queue_t *q, double timeout, pp_future_t **fp) {
    if (fp)
        *fp = NULL;
    if (!q || !fp || isnan(timeout))
        return -EINVAL;
    uint64_t start = 0, limit = limit_ns(timeout);
    bool drained_once = false;
    pthread_mutex_lock(&qlock);
    for (;;) {
        pp_future_t *f = q->done_head;
        if (f) {
            unlink_locked(q, f);
            f->queue = NULL;
            f->q_done = false;
            /* out of every queue: pp_future_free need not look */
            atomic_fetch_and_explicit(&f->state, ~(uint32_t)PP__FS_Q, memory_order_relaxed);
            if (q->ndone == 0)
                set_readable(q, false);
            pthread_mutex_unlock(&qlock);
            *fp = f;
            return 1;
        }
        if (q->npend == 0) {
            pthread_mutex_unlock(&qlock);
            return 0;
        }
        if (!start) /* the clock only once there is something to wait for */
            start = pp__now_ns();
        uint64_t el = pp__now_ns() - start;
        if ((timeout == 0 && drained_once) || el >= limit) {
            pthread_mutex_unlock(&qlock);
            return -ETIMEDOUT;
        }
        if (!drained_once || el < PP__SPIN_NS) {
            /* collect results ourselves; the pool stays alive while we do
             * (the pending future may be freed meanwhile) */
            pp_pool_t *pool = q->pend->pool;
            atomic_fetch_add_explicit(&pool->refs, 1, memory_order_relaxed);
            pthread_mutex_unlock(&qlock);
            pp__drain(pool, false);
            pp__pool_unref(pool);
            drained_once = true;
            for (int i = 0; i < 32; i++)
                pp__cpu_relax();
            pthread_mutex_lock(&qlock);
            continue;
        }
        uint64_t left = limit == UINT64_MAX ? PP__QUEUE_SLICE_NS : limit - el;
        uint64_t until = pp__now_ns() + (left < PP__QUEUE_SLICE_NS ? left : PP__QUEUE_SLICE_NS);
        struct timespec ts = {(time_t)(until / 1000000000u), (long)(until % 1000000000u)};
        q->sleepers++;
        pthread_cond_timedwait(&q->cond, &qlock, &ts);
        q->sleepers--;
    }
}

int pp_queue_fd(const pp_queue_t *q) { return q ? q->evfd : -EINVAL; }

void pp_queue_destroy(pp_queue_t *q) {
    if (!q)
        return;
    pthread_mutex_lock(&qlock);
    for (int list = 0; list < 2; list++) {
        pp_future_t *f = list ? q->done_head : q->pend;
        while (f) {
            pp_future_t *next = f->q_next;
            f->queue = NULL;
            f->q_done = false;
            f->q_prev = f->q_next = NULL;
            f = next;
        }
    }
    pthread_mutex_unlock(&qlock);
    pthread_cond_destroy(&q->cond);
    close(q->evfd);
    free(q);
}
