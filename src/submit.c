/*
 * submit.c - the per-task calls of API 0.2: pp_submit with its options,
 * pp_apply_msg, pp_future_cancel and pp_future_running, and the pool's
 * statistics.
 *
 * DESIGN: pp_submit is pp_apply_async (pool.c) with three things set on
 * the task before it can finish: its done-callback (so completion always
 * queues it for the callback thread; it never runs in the submitter), its
 * own timeout and its own retries (carried in the task's pp__task_t to the
 * supervisor, which reads them when the task times out or its worker
 * dies). A NULL future drops the user's reference at once.
 *
 * Cancel, under the pool lock, looks where the task is (f->where, kept
 * by pool.c): a pending task is unlinked from the queue; a task sent
 * ahead to a worker's ring is taken back by one CAS on its claim word
 * (internal.h), FRESH -> CANCEL, racing the worker's FRESH -> RUN: exactly
 * one wins, so a task is run or cancelled, never both and never neither.
 * A record taken back stays in the ring; the worker skips it and answers
 * with an empty result, which drain discards (its s->f is NULL). Tasks
 * placed on an MPI agent are not taken back.
 *
 * Statistics are relaxed atomic counters bumped where things happen:
 * submission (pool.c, map.c), completion (future.c, map.c), deaths,
 * respawns and timeouts (supervise.c).
 */
#include "internal.h"
#include "job.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void pp_task_opts_init(pp_task_opts_t *o) {
    if (!o)
        return;
    memset(o, 0, sizeof *o);
    o->timeout = 0;
    o->retries = -1;
}

int pp_submit(pp_pool_t *pool, pp_task_fn fn, const void *arg, size_t arg_len,
              const pp_task_opts_t *opts, pp_future_t **future) {
    if (future)
        *future = NULL;
    pp_task_opts_t def;
    if (!opts) {
        pp_task_opts_init(&def);
        opts = &def;
    }
    if (!pool || !fn || (!arg && arg_len) || isnan(opts->timeout) || opts->retries < -1)
        return -EINVAL;
    if (pool->remote && (opts->timeout != 0 || opts->retries != -1))
        return -ENOTSUP; /* an MPI agent runs every task with the pool's settings */
    pp__task_t t = {.fn = fn, .arg_len = arg_len, .argfd = -1, .retries = opts->retries};
    if (opts->timeout > 0)
        t.timeout_ns = opts->timeout >= 1e9      ? INT64_MAX / 2
                       : opts->timeout * 1e9 < 1 ? 1
                                                 : (int64_t)(opts->timeout * 1e9);
    else if (opts->timeout < 0)
        t.timeout_ns = -1;
    return pp__submit_cb(pool, &t, arg, opts->on_done, opts->userdata, future);
}

int pp_apply_msg(pp_pool_t *pool, pp_task_fn fn, const void *arg, size_t arg_len, void **result,
                 size_t *result_len, char **msg) {
    if (msg)
        *msg = NULL;
    if (result)
        *result = NULL;
    if (result_len)
        *result_len = 0;
    if (!result || !result_len)
        return -EINVAL;
    pp_future_t *f;
    int r = pp_apply_async(pool, fn, arg, arg_len, &f);
    if (r < 0)
        return r;
    pp_future_wait(f, -1);
    r = f->err;
    if (r == 0 && f->data_kind == PP__DATA_MALLOC) { /* take the block: no copy */
        *result = f->data;
        *result_len = f->len;
        f->data_kind = PP__DATA_NONE;
        f->data = NULL;
    } else if (r == 0) {
        void *p = malloc(f->len ? f->len : 1);
        if (!p) {
            r = -ENOMEM;
        } else {
            if (f->len)
                memcpy(p, f->data ? f->data : (void *)f->small, f->len);
            *result = p;
            *result_len = f->len;
        }
    } else if (msg) {
        const char *e = pp_future_error(f);
        *msg = e ? strdup(e) : NULL;
    }
    pp_future_free(f);
    return r;
}

static bool done(const pp_future_t *f) {
    return atomic_load_explicit(&f->state, memory_order_acquire) & PP__FS_DONE;
}

/* The ring slot of f when it is in one (pool lock held), else NULL. */
static pp__task_t *ring_slot(pp_pool_t *pool, const pp_future_t *f, pp__worker_t **wp) {
    if (f->where != PP__AT_RING || f->wi < 0 || f->wi >= pool->nworkers || pool->torn_down)
        return NULL;
    pp__worker_t *w = &pool->workers[f->wi];
    if (!w->chan.ctrl || f->wseq < w->seq_done || f->wseq >= w->seq_next)
        return NULL;
    pp__task_t *s = &w->inflight[f->wseq % PP__INFLIGHT_MAX];
    if (s->f != f || s->seq != f->wseq)
        return NULL;
    *wp = w;
    return s;
}

int pp_future_cancel(pp_future_t *f) {
    if (!f || done(f))
        return 0;
    pp_pool_t *pool = f->pool;
    if (pp__pool_foreign(pool))
        return 0; /* a child of fork(): the pool is our parent's */
    if (f->is_map)
        return pp__future_cancel_job(f) ? 1 : 0;
    int r = 0;
    pthread_mutex_lock(&pool->lock);
    if (!done(f)) {
        pp__worker_t *w = NULL;
        pp__task_t *s;
        if (f->where == PP__AT_PENDING && f->node) {
            pp__task_t *t = f->node;
            pp__pend_unlink(pool, t);
            pp__close(&t->argfd);
            free(t);
            r = 1;
        } else if ((s = ring_slot(pool, f, &w)) != NULL) {
            uint32_t fresh = pp__claim_word(s->seq, PP__CLAIM_FRESH);
            if (atomic_compare_exchange_strong_explicit(pp__claim_at(w->chan.ctrl, s->seq), &fresh,
                                                        pp__claim_word(s->seq, PP__CLAIM_CANCEL),
                                                        memory_order_seq_cst,
                                                        memory_order_seq_cst)) {
                s->f = NULL;       /* the record stays: the worker skips it, drain frees it */
                if (w->dispatched) /* max_tasks_per_child counts what it runs */
                    w->dispatched--;
                r = 1;
            }
        }
        if (r) {
            pool->inflight_total--;
            pp__future_set_fail(f, PP_ECANCELED, "the task was cancelled before it started");
            if (pool->inflight_total == 0)
                pthread_cond_broadcast(&pool->cond);
        }
    }
    pthread_mutex_unlock(&pool->lock);
    return r;
}

int pp_future_running(const pp_future_t *f) {
    if (!f || done(f))
        return 0;
    pp_pool_t *pool = f->pool;
    if (pp__pool_foreign(pool))
        return 0;
    int r = 0;
    pthread_mutex_lock(&pool->lock);
    if (done(f)) {
        r = 0;
    } else if (f->is_map) {
        r = f->job && (f->job->sent || f->job->done); /* a chunk is out, or some are done */
    } else if (f->where == PP__AT_REMOTE) {
        r = 1; /* on an MPI agent: running as far as rank 0 can tell */
    } else {
        pp__worker_t *w = NULL;
        const pp__task_t *s = ring_slot(pool, f, &w);
        r = s && atomic_load_explicit(pp__claim_at(w->chan.ctrl, s->seq), memory_order_acquire) ==
                     pp__claim_word(s->seq, PP__CLAIM_RUN);
    }
    pthread_mutex_unlock(&pool->lock);
    return r;
}

/* ---------------------------------------------------------------- */
/* statistics                                                        */
/* ---------------------------------------------------------------- */

void pp__stat_done(pp_pool_t *pool, int err, unsigned long long n) {
    pp__stat_add(err == 0              ? &pool->st_completed
                 : err == PP_ECANCELED ? &pool->st_cancelled
                                       : &pool->st_failed,
                 n);
}

void pp__stat_item_bad(pp_pool_t *pool, int err, unsigned long long n) {
    pp__stat_add(&pool->st_item_bad, n);
    pp__stat_add(err == PP_ECANCELED ? &pool->st_cancelled : &pool->st_failed, n);
}

static unsigned long long get(_Atomic unsigned long long *c) {
    return atomic_load_explicit(c, memory_order_relaxed);
}

int pp_pool_stats(pp_pool_t *pool, pp_stats_t *st) {
    if (!pool || !st)
        return -EINVAL;
    memset(st, 0, sizeof *st);
    st->submitted = get(&pool->st_submitted);
    unsigned long long items = get(&pool->st_item_done), bad = get(&pool->st_item_bad);
    st->completed = get(&pool->st_completed) + (items > bad ? items - bad : 0);
    st->failed = get(&pool->st_failed);
    st->cancelled = get(&pool->st_cancelled);
    st->worker_deaths = get(&pool->st_deaths);
    st->respawns = get(&pool->st_respawns);
    st->timeouts = get(&pool->st_timeouts);
    if (pp__pool_foreign(pool))
        return 0;
    pthread_mutex_lock(&pool->lock);
    st->queued = pool->npending;
    for (const pp__job_t *j = pool->jobs; j; j = j->next_job) /* map items not yet sent */
        st->queued += j->feed_src ? j->nfed_chunks : j->count - j->next;
    if (pool->remote) {
        st->workers = pool->finished ? 0 : pool->size;
    } else if (!pool->torn_down) {
        for (int i = 0; i < pool->nworkers; i++) {
            const pp__worker_t *w = &pool->workers[i];
            st->workers += w->state != PP__W_EMPTY && w->pid > 0 && !w->exited;
        }
    }
    pthread_mutex_unlock(&pool->lock);
    return 0;
}
