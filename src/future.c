/*
 * future.c - futures: the parent's handle on one submitted task.
 *
 * DESIGN: a future lives in the parent's heap and is shared by two owners,
 * counted in refs: the user (until pp_future_free) and the pool (until the
 * task completed and its callback, if any, has run). Its state word holds
 * two bits, DONE and CB: completion does fetch_or(DONE), registration
 * fetch_or(CB), and whichever of the two comes second sees the other's bit
 * and is the one that runs (or queues) the callback, so it runs exactly
 * once. The state word is also the private futex that sleeping waiters wait
 * on; the completer wakes only when the waiters count is non-zero.
 *
 * A waiter does not need the supervisor to hand it its result: it drains
 * the result rings itself (pp__drain) while spinning, and sleeps only when
 * nothing arrives. Every future holds a reference on its pool's struct, so
 * f->pool stays valid for as long as f exists, even after
 * pp_pool_destroy(); the pool's resources are released by destroy, only
 * the small struct lingers until its last future is freed.
 *
 * Result memory: results up to PP__SMALL_RESULT bytes live inside the
 * future, others in a malloc'd block or a read-only mapping of the worker's
 * sealed memfd; they stay valid until pp_future_free.
 */
#include "tuning.h"
#include "internal.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

pp_future_t *pp__future_new(pp_pool_t *pool) {
    pp_future_t *f = malloc(sizeof *f);
    if (!f)
        return NULL;
    atomic_init(&f->state, 0);
    atomic_init(&f->waiters, 0);
    atomic_init(&f->refs, 2);
    f->err = 0;
    f->task_status = 0;
    f->data_kind = PP__DATA_NONE;
    f->msg = NULL;
    f->data = NULL;
    f->len = 0;
    f->map_len = 0;
    f->arena = NULL;
    f->cb = NULL;
    f->cb_arg = NULL;
    f->pool = pool;
    f->job = NULL;
    f->is_map = false;
    f->run_ns = 0;
    f->start_ns = 0;
    f->lost_k = -1;
    f->lost_fails = 0;
    f->remote_id = 0;
    atomic_init(&f->prog_done, 0);
    atomic_init(&f->prog_total, 1);
    f->next = NULL;
    f->where = PP__AT_NONE;
    f->node = NULL;
    f->wi = -1;
    f->wseq = 0;
    f->queue = NULL;
    f->q_prev = f->q_next = NULL;
    f->q_done = false;
    atomic_fetch_add_explicit(&pool->refs, 1, memory_order_relaxed);
    return f;
}

static void release_data(pp_future_t *f) {
    if (f->data_kind == PP__DATA_MALLOC)
        free(f->data);
    else if (f->data_kind == PP__DATA_MMAP && f->map_len)
        munmap(f->data, f->map_len);
    else if (f->data_kind == PP__DATA_ARENA)
        pp__arena_release(f->pool, f->arena, f->data, f->len);
    f->data_kind = PP__DATA_NONE;
    f->data = NULL;
}

void pp__future_unref(pp_future_t *f) {
    if (atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) != 1)
        return;
    release_data(f);
    free(f->msg);
    pp_pool_t *pool = f->pool;
    free(f);
    pp__pool_unref(pool);
}

void pp__future_complete(pp_future_t *f, int err, int task_status, char *msg) {
    f->err = err;
    f->task_status = task_status;
    f->msg = msg;
    if (err) {
        release_data(f);
        f->len = 0;
    }
    f->where = PP__AT_NONE;
    f->node = NULL;
    if (!f->is_map) /* a map counts its items (map.c) */
        pp__stat_done(f->pool, err, 1);
    uint32_t old;
    if (atomic_load_explicit(&f->state, memory_order_acquire) & PP__FS_Q) {
        /* in a queue: done and delivered in one step, so whoever sees it
         * done finds it in the queue too */
        old = pp__queue_done(f);
    } else {
        old = atomic_fetch_or_explicit(&f->state, PP__FS_DONE, memory_order_acq_rel);
        if (old & PP__FS_Q)
            pp__queue_deliver(f); /* added meanwhile */
    }
    if (atomic_load_explicit(&f->waiters, memory_order_seq_cst))
        pp__futex_wake(&f->state, INT32_MAX, false);
    if (atomic_load_explicit(&pp__wait_sleepers, memory_order_seq_cst)) {
        atomic_fetch_add_explicit(&pp__wait_seq, 1, memory_order_seq_cst);
        pp__futex_wake(&pp__wait_seq, INT32_MAX, false);
    }
    if (old & PP__FS_CB)
        pp__queue_callback(f->pool, f); /* the callback queue takes over the pool's ref */
    else
        pp__future_unref(f);
}

void pp__future_set_fail(pp_future_t *f, int err, const char *fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    pp__future_complete(f, err, err, strdup(buf));
}

static bool is_done(const pp_future_t *f) {
    return atomic_load_explicit(&f->state, memory_order_acquire) & PP__FS_DONE;
}

int pp_future_wait(pp_future_t *f, double timeout) {
    if (!f || isnan(timeout))
        return -EINVAL;
    if (is_done(f))
        return 0;
    if (timeout == 0) {
        pp__drain(f->pool, false);
        return is_done(f) ? 0 : -ETIMEDOUT;
    }
    uint64_t start = pp__now_ns();
    uint64_t limit = UINT64_MAX;
    if (timeout > 0)
        limit = timeout > 1e9 ? UINT64_MAX : (uint64_t)(timeout * 1e9);
    /* spin, draining results ourselves; meanwhile the supervisor need not be woken per result */
    pp_pool_t *pool = f->pool;
    atomic_fetch_add_explicit(&pool->drainers, 1, memory_order_seq_cst);
    bool done = false;
    while (pp__now_ns() - start < PP__SPIN_NS) {
        pp__drain(pool, false);
        if ((done = is_done(f)))
            break;
        for (int i = 0; i < 32; i++)
            pp__cpu_relax();
    }
    if (atomic_fetch_sub_explicit(&pool->drainers, 1, memory_order_seq_cst) == 1 &&
        atomic_load_explicit(&pool->sup_passive, memory_order_seq_cst))
        pp__pool_wake_supervisor(pool); /* nobody drains now: it must arm the channels */
    if (done)
        return 0;
    for (;;) {
        uint64_t el = pp__now_ns() - start;
        if (el >= limit)
            return -ETIMEDOUT;
        atomic_fetch_add_explicit(&f->waiters, 1, memory_order_seq_cst);
        uint32_t st = atomic_load_explicit(&f->state, memory_order_seq_cst);
        if (!(st & PP__FS_DONE)) {
            /* the supervisor drains while we sleep */
            int64_t left = limit == UINT64_MAX ? -1 : (int64_t)(limit - el);
            pp__futex_wait(&f->state, st, left, false);
        }
        atomic_fetch_sub_explicit(&f->waiters, 1, memory_order_relaxed);
        if (is_done(f))
            return 0;
    }
}

/* Boolean calls answer 1 or 0 only (the contract): a NULL or pending
 * future is "not ready" / "not successful", never a truthy -EINVAL. */
int pp_future_ready(const pp_future_t *f) { return f && is_done(f) ? 1 : 0; }

int pp_future_successful(const pp_future_t *f) { return f && is_done(f) && f->err == 0 ? 1 : 0; }

int pp_future_get(pp_future_t *f, double timeout, const void **data, size_t *len) {
    if (data)
        *data = NULL;
    if (len)
        *len = 0;
    if (!f)
        return -EINVAL;
    int r = pp_future_wait(f, timeout);
    if (r < 0)
        return r;
    if (f->err)
        return f->err;
    if (data)
        *data = f->data ? f->data : (const void *)f->small;
    if (len)
        *len = f->len;
    return 0;
}

const char *pp_future_error(const pp_future_t *f) {
    if (!f || !is_done(f) || f->err == 0)
        return NULL;
    return f->msg ? f->msg : pp_strerror(f->err);
}

int pp_future_task_status(const pp_future_t *f) {
    if (!f || !is_done(f))
        return -EINVAL;
    return f->task_status;
}

int pp_future_on_done(pp_future_t *f, pp_done_fn cb, void *userdata) {
    if (!f || !cb)
        return -EINVAL;
    /* claim the one callback slot before writing it */
    if (atomic_fetch_or_explicit(&f->state, PP__FS_CLAIM, memory_order_acq_rel) & PP__FS_CLAIM)
        return -EBUSY;
    f->cb = cb;
    f->cb_arg = userdata;
    /* the pool's reference stands in for the callback until it has run */
    uint32_t old = atomic_fetch_or_explicit(&f->state, PP__FS_CB, memory_order_acq_rel);
    if (old & PP__FS_DONE)
        cb(f, userdata); /* done already: at once, in the caller */
    return 0;
}

void pp_future_free(pp_future_t *f) {
    if (!f)
        return;
    if (atomic_load_explicit(&f->state, memory_order_acquire) & PP__FS_Q)
        pp__queue_detach(f);
    if (f->is_map && !(atomic_load_explicit(&f->state, memory_order_acquire) & PP__FS_DONE))
        pp__future_cancel_job(f); /* a map still running: stop it first */
    pp__future_unref(f);
}
