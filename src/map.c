/*
 * map.c - the map family: pp_map and pp_map_async, and the jobs (chunking,
 * sending, collecting) behind pp_imap, pp_imap_unordered and pp_imap_feed,
 * whose iterators are in iter.c.
 *
 * DESIGN: a map is a *job*: a source of items (the caller's array, or
 * chunks built from a feed callback) that the dispatcher (pool.c, under
 * pool->lock) turns into chunks lazily, whenever a worker has room and the
 * job's window allows. A chunk travels as one task record holding its items
 * (fixed-size items straight from the caller's array; fed items packed as
 * [u64 len][bytes]) and comes back as one result record holding, per item,
 * a status, a message or the data (worker.c: run_chunk). Chunks are capped
 * so that their items and (for pp_map) their results fit inline in the
 * rings: a large map streams through the rings with no system call. A
 * chunk too large for the rings travels in a memfd (made when it is sent);
 * one that cannot be put in a memfd (over RLIMIT_FSIZE; no descriptor or
 * memory left while none of the pool's memfds is out) fails its items
 * with that error instead of waiting forever.
 *
 * Sizes: chunksize 0 is Python's rule; PP_CHUNK_AUTO starts with one item
 * per chunk, then aims at PP__AUTO_TARGET_NS of work per chunk from the smoothed
 * time per item, and near the end caps chunks at a share of what is left so
 * that the workers finish together.
 *
 * Results: every length and index of a chunk's results is checked by
 * decode.c (pp__dec_item, pp__dec_fail) before it is used; a chunk that
 * fails a check fails PP_EPROTO. pp_map copies each item's result into the
 * caller's array (checking its size) and remembers the lowest failing
 * index. Iterators
 * keep finished chunks (a copy of the ring bytes, or the worker's sealed
 * memfd mapping) until read; the window (chunks sent + chunks held) is
 * WINDOW_PER_WORKER per worker, so a slow consumer stops the feeding; items
 * sent again after a death pass the window (an ordered iterator holding a
 * full window behind them would wait for them forever).
 *
 * Deaths: the worker publishes the index of the item it is running; the
 * supervisor fails that item alone and sends the chunk's other items again
 * as new chunks (the retry list). Nothing is dropped for lack of memory:
 * items that cannot be queued again fail -ENOMEM, and an iterator that
 * cannot hold a failure stops with -ENOMEM (reported once, at the end). Cancelling (freeing the future or the
 * iterator early, terminate) drops chunks not yet sent; results of chunks
 * still running are discarded when they come back.
 *
 * Lifetime: a job holds a reference on its pool struct and is freed when
 * its user (future or iterator) and every chunk in flight have let go; all
 * of its state is guarded by pool->lock. The map future counts once in
 * pool->inflight_total until every item is done, and each chunk in flight
 * once more, so pp_pool_join waits for them; while joining, iterators'
 * windows are lifted so that join never waits on an unread iterator.
 */
#include "tuning.h"
#include "decode.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "job.h"

/* ---------------------------------------------------------------- */
/* job lifetime and lists (pool lock held)                           */
/* ---------------------------------------------------------------- */

void pp__chunk_res_free(pp__chunk_res_t *r) {
    if (!r)
        return;
    free(r->buf);
    if (r->map)
        munmap(r->map, r->map_len);
    free(r->msg_all);
    free(r);
}

static void free_ranges(pp__range_t *r) {
    while (r) {
        pp__range_t *n = r->next;
        free(r->blob);
        free(r);
        r = n;
    }
}

void pp__job_unref(pp__job_t *j) {
    if (--j->refs > 0)
        return;
    free_ranges(j->retry);
    free_ranges(j->fed_head);
    for (pp__chunk_res_t *r = j->res_head; r;) {
        pp__chunk_res_t *n = r->next;
        pp__chunk_res_free(r);
        r = n;
    }
    pp__chunk_res_free(j->cur_res);
    free(j->fail_msg);
    free(j->last_err);
    free(j->end_msg);
    free(j->stash);
    free(j);
}

void pp__job_list_add(pp_pool_t *pool, pp__job_t *j) {
    if (j->listed || j->cancelled || j->finished)
        return;
    j->listed = true;
    j->next_job = NULL;
    pp__job_t **p = &pool->jobs;
    while (*p)
        p = &(*p)->next_job;
    *p = j;
}

static void list_remove(pp_pool_t *pool, pp__job_t *j) {
    if (!j->listed)
        return;
    for (pp__job_t **p = &pool->jobs; *p; p = &(*p)->next_job) {
        if (*p == j) {
            *p = j->next_job;
            break;
        }
    }
    j->listed = false;
}

void pp__job_wake(pp__job_t *j) {
    atomic_fetch_add_explicit(&j->wake, 1, memory_order_release);
    if (atomic_load_explicit(&j->waiters, memory_order_seq_cst))
        pp__futex_wake(&j->wake, INT32_MAX, false);
}

static void set_progress(pp__job_t *j) {
    pp_pool_t *pool = j->pool;
    if (j->done > j->st_done) {
        pp__stat_add(&pool->st_item_done, j->done - j->st_done);
        j->st_done = j->done;
    }
    if (j->total > j->st_total) {
        pp__stat_add(&pool->st_submitted, j->total - j->st_total);
        j->st_total = j->total;
    }
    atomic_store_explicit(&j->a_done, j->done, memory_order_relaxed);
    atomic_store_explicit(&j->a_total, j->total, memory_order_relaxed);
    if (j->f) {
        atomic_store_explicit(&j->f->prog_done, j->done, memory_order_relaxed);
        atomic_store_explicit(&j->f->prog_total, j->total, memory_order_relaxed);
    }
}

/* No more items will come back: settle the map future / the join count. */
static void maybe_finish(pp_pool_t *pool, pp__job_t *j) {
    bool all_in = j->feed_src ? j->feed_ended : true;
    if (!all_in || j->done < j->total || j->sent || j->finished)
        return;
    j->finished = true;
    if (j->counted) {
        j->counted = false;
        pool->inflight_total--;
        if (pool->inflight_total == 0)
            pthread_cond_broadcast(&pool->cond);
    }
    list_remove(pool, j);
    if (j->kind == PP__JOB_MAP && j->f) {
        pp_future_t *f = j->f;
        j->f = NULL;
        f->job = NULL;
        f->data = f->small;
        f->len = 0;
        f->data_kind = PP__DATA_INLINE;
        char *msg = j->fail_msg;
        j->fail_msg = NULL;
        pp__future_complete(f, j->fail_err, j->fail_err ? j->fail_status : 0, msg);
        pp__job_unref(j); /* the future's hold on the job */
    }
}

void pp__job_cancel_locked(pp_pool_t *pool, pp__job_t *j) {
    if (j->cancelled)
        return;
    j->cancelled = true;
    if (j->total > j->done) /* the items that will not be done */
        pp__stat_add(&pool->st_cancelled, j->total - j->done);
    list_remove(pool, j);
    free_ranges(j->retry);
    j->retry = NULL;
    free_ranges(j->fed_head);
    j->fed_head = j->fed_tail = NULL;
    j->nfed_chunks = 0;
    if (j->counted) {
        j->counted = false;
        pool->inflight_total--;
        if (pool->inflight_total == 0)
            pthread_cond_broadcast(&pool->cond);
    }
}

/* Terminate: every job stops; map futures fail, iterators report it. */
void pp__jobs_cancel_all(pp_pool_t *pool, const char *why) {
    while (pool->jobs) {
        pp__job_t *j = pool->jobs;
        list_remove(pool, j);
        if (j->kind == PP__JOB_MAP && j->f) {
            pp_future_t *f = j->f;
            j->f = NULL;
            f->job = NULL;
            pp__job_cancel_locked(pool, j);
            pp__future_set_fail(f, PP_ECANCELED, "%s", why);
            pp__job_unref(j);
        } else {
            j->abort_err = PP_ECANCELED;
            pp__job_cancel_locked(pool, j);
            pp__job_wake(j);
        }
    }
}

/* ---------------------------------------------------------------- */
/* making chunks (pool lock held)                                    */
/* ---------------------------------------------------------------- */

static size_t chunk_len(pp_pool_t *pool, pp__job_t *j) {
    size_t left = j->count - j->next;
    size_t n = j->chunk;
    if (j->autochunk) {
        n = j->item_ns ? (size_t)(PP__AUTO_TARGET_NS / j->item_ns) : 1;
        size_t share = (left + 2 * (size_t)pool->size - 1) / (2 * (size_t)pool->size);
        if (n > share)
            n = share;
    }
    /* items and results must fit inline in the rings, unless they stay in
     * shared memory */
    size_t per_in = j->item_size ? j->item_size : 1;
    size_t cap = j->items_ref ? SIZE_MAX : CHUNK_BYTES / per_in;
    if (j->kind == PP__JOB_MAP && !j->results_ref) {
        /* fixed-size results come back packed; size 0 uses per-item headers */
        size_t per_out = j->result_size ? j->result_size : sizeof(pp__item_hdr_t);
        size_t cap2 = CHUNK_BYTES / per_out;
        if (cap2 < cap)
            cap = cap2;
    }
    if (n > cap)
        n = cap;
    if (n < 1)
        n = 1;
    if (n > left)
        n = left;
    return n;
}

/* May j send another chunk? Items to send again (their worker died) always
 * may: they were inside the window when first sent, and an ordered
 * iterator whose window is full of chunks held behind them could otherwise
 * never read past the gap they leave (a deadlock). */
static bool window_open(pp_pool_t *pool, pp__job_t *j) {
    if (j->retry)
        return true;
    if (j->kind == PP__JOB_ITER && !pool->joining)
        return j->sent + j->held < j->window;
    return j->sent < j->window;
}

/* Is there a worker that could take a record now? */
static bool some_room(pp_pool_t *pool, size_t arg_len, bool memfd) {
    if (pool->remote)
        return pp__remote_room(pool);
    int depth = pp__worker_depth(pool);
    for (int i = 0; i < pool->nworkers; i++) {
        pp__worker_t *w = &pool->workers[i];
        if (w->state != PP__W_READY || w->broken) /* as can_take() in pool.c */
            continue;
        if (w->seq_next - w->seq_done >= (uint64_t)depth)
            continue;
        if (pool->opt.max_tasks_per_child && w->dispatched >= pool->opt.max_tasks_per_child)
            continue;
        if (pp__chan_task_room(&w->chan, arg_len, memfd))
            return true;
    }
    return false;
}

static void take_range(pp__job_t *j, pp__range_t *r, size_t n);
static void fail_items(pp_pool_t *pool, pp__job_t *j, size_t lo, size_t n, int err,
                       const char *why);

/* Send one chunk of j if possible. */
static bool send_one(pp_pool_t *pool, pp__job_t *j) {
    pp__range_t *r = NULL;
    size_t lo, n, len;
    const void *arg;
    void *blob = NULL;
    if (j->retry) {
        r = j->retry;
        lo = r->lo;
        n = r->n;
        blob = r->blob;
        len = blob ? r->blob_len : n * j->item_size;
    } else if (j->feed_src) {
        if (!j->fed_head)
            return false;
        r = j->fed_head;
        lo = r->lo;
        n = r->n;
        blob = r->blob;
        len = r->blob_len;
    } else {
        if (j->next >= j->count)
            return false;
        lo = j->next;
        n = chunk_len(pool, j);
        len = n * j->item_size;
    }
    arg = blob ? blob : (const void *)(j->items ? j->items + lo * j->item_size : NULL);
    bool ref = !blob && j->items_ref && len;
    bool memfd = !ref && len > CHUNK_BYTES && !pool->remote; /* MPI: in the message */
    if (!some_room(pool, len, memfd || ref))
        return false;
    pp__task_t t = {.job = j,
                    .fn = j->fn,
                    .lo = lo,
                    .n = n,
                    .arg_len = len,
                    .argfd = -1,
                    .big = memfd,
                    .flags = PP__F_CHUNK | (j->feed_src ? PP__F_VAR : 0) | (ref ? PP__F_REF : 0),
                    .item_size = j->feed_src ? 0 : j->item_size,
                    .blob = blob};
    if (j->kind == PP__JOB_MAP) {
        t.res_size = j->result_size; /* results come back packed, or in place: */
        if (j->results_ref) {
            t.flags |= PP__F_RESREF;
            t.res_addr = j->results + lo * j->result_size;
        }
    }
    int err;
    if (!pp__place(pool, &t, arg, &err)) {
        if (!err)
            return false;
        /* its items cannot be put in a memfd (over RLIMIT_FSIZE, or no
         * descriptor or memory left): they fail rather than wait forever */
        char why[200], m[300];
        pp__describe_fsize(why, sizeof why, err, len);
        snprintf(m, sizeof m, "the items could not be passed to a worker: %s", why);
        take_range(j, r, n);
        free(blob);
        fail_items(pool, j, lo, n, err, m);
        maybe_finish(pool, j);
        return true;
    }
    /* placed: the slot owns the blob and the fd now */
    take_range(j, r, n);
    j->sent++;
    j->refs++;
    pool->inflight_total++;
    return true;
}

/* The range r of j (or, r NULL, the next n items of the array) has been
 * handed on: take it off the job (not its blob). */
static void take_range(pp__job_t *j, pp__range_t *r, size_t n) {
    if (r) {
        if (r == j->retry)
            j->retry = r->next;
        else {
            j->fed_head = r->next;
            if (!j->fed_head)
                j->fed_tail = NULL;
            j->nfed_chunks--;
        }
        free(r); /* not the blob: pp__place copied t (blob pointer) into the slot */
    } else {
        j->next += n;
    }
}

int pp__jobs_dispatch_locked(pp_pool_t *pool) {
    int n = 0;
    bool progress = true;
    while (progress) {
        progress = false;
        for (pp__job_t *j = pool->jobs, *nx; j; j = nx) {
            nx = j->next_job;
            if (!window_open(pool, j))
                continue;
            if (send_one(pool, j)) {
                n++;
                progress = true;
            } else if (!j->retry && (j->feed_src ? !j->fed_head : j->next >= j->count)) {
                list_remove(pool, j); /* nothing left to send for now */
            }
        }
    }
    return n;
}

/* ---------------------------------------------------------------- */
/* chunks coming back (pool lock held)                               */
/* ---------------------------------------------------------------- */

static void note_failure(pp__job_t *j, size_t index, int err, int status, const char *msg,
                         size_t msg_len) {
    pp__stat_item_bad(j->pool, err, 1);
    if (j->fail_err && index >= j->fail_index)
        return;
    free(j->fail_msg);
    char buf[1200];
    if (msg && msg_len)
        snprintf(buf, sizeof buf, "item %zu: %.*s", index, (int)msg_len, msg);
    else
        snprintf(buf, sizeof buf, "item %zu: %s", index, pp_strerror(err));
    j->fail_msg = strdup(buf);
    j->fail_index = index;
    j->fail_err = err;
    j->fail_status = status;
}

/* Insert a finished chunk for the iterator: FIFO, or sorted by lo. */
static void res_insert(pp__job_t *j, pp__chunk_res_t *r) {
    r->next = NULL;
    if (!j->ordered) {
        if (j->res_tail)
            j->res_tail->next = r;
        else
            j->res_head = r;
        j->res_tail = r;
    } else {
        pp__chunk_res_t **p = &j->res_head;
        while (*p && (*p)->lo < r->lo)
            p = &(*p)->next;
        r->next = *p;
        *p = r;
        if (!r->next)
            j->res_tail = r;
    }
    j->held++;
    pp__job_wake(j);
}

static void chunk_gone(pp_pool_t *pool, pp__job_t *j) {
    j->sent--;
    pool->inflight_total--;
    if (pool->inflight_total == 0)
        pthread_cond_broadcast(&pool->cond);
}

/* All n items of [lo, lo+n) fail with err. */
static void fail_items(pp_pool_t *pool, pp__job_t *j, size_t lo, size_t n, int err,
                       const char *why) {
    if (j->kind == PP__JOB_MAP) {
        note_failure(j, lo, err, err, why, why ? strlen(why) : 0);
        if (n > 1)
            pp__stat_item_bad(pool, err, n - 1);
    } else {
        pp__stat_item_bad(pool, err, n);
        pp__chunk_res_t *r = pp__alloc_fails("map.chunk_res") ? NULL : calloc(1, sizeof *r);
        if (r) {
            r->lo = lo;
            r->n = n;
            r->err_all = err;
            r->msg_all = why ? strdup(why) : NULL;
            res_insert(j, r);
        } else if (!j->cancelled) {
            /* not even the failure can be held: the iterator stops, and
             * reports -ENOMEM once after the results it holds */
            j->abort_err = -ENOMEM;
            pp__job_cancel_locked(pool, j);
            pp__job_wake(j);
        }
    }
    j->done += n;
    set_progress(j);
}

/* Start-up is broken (supervise.c): every item of every job that waits to
 * be sent fails err, like the single tasks that wait; a fed input ends
 * there, reporting err in place of the items it would have given. The
 * chunks in flight finish (or die) as usual. */
void pp__jobs_fail_unsent(pp_pool_t *pool, int err, const char *why) {
    while (pool->jobs) {
        pp__job_t *j = pool->jobs;
        list_remove(pool, j);
        if (j->cancelled || j->finished)
            continue;
        /* detached first: a failure that cannot be held cancels the job,
         * which frees its lists */
        pp__range_t *retry = j->retry, *fed = j->fed_head;
        j->retry = j->fed_head = j->fed_tail = NULL;
        j->nfed_chunks = 0;
        for (pp__range_t *r = retry, *n; r; r = n) {
            n = r->next;
            fail_items(pool, j, r->lo, r->n, err, why);
            free(r->blob);
            free(r);
        }
        for (pp__range_t *r = fed, *n; r; r = n) {
            n = r->next;
            fail_items(pool, j, r->lo, r->n, err, why);
            free(r->blob);
            free(r);
        }
        if (!j->feed_src && j->next < j->count) {
            fail_items(pool, j, j->next, j->count - j->next, err, why);
            j->next = j->count;
        }
        if (j->feed_src && !j->feed_ended) {
            j->feed_ended = true;
            j->feed_stopped = true;
            j->feed_err = err;
            free(j->end_msg);
            j->end_msg = strdup(why);
        }
        pp__job_wake(j);
        maybe_finish(pool, j); /* last: a map's job may be freed with its future */
    }
}

void pp__job_fail_items(pp_pool_t *pool, pp__job_t *j, size_t lo, size_t n, int err,
                        const char *why) {
    fail_items(pool, j, lo, n, err, why);
}

void pp__job_chunk_done(pp_pool_t *pool, pp__task_t *s, pp__view_t *v, int status,
                        uint64_t run_ns) {
    pp__job_t *j = s->job;
    chunk_gone(pool, j);
    free(s->blob);
    if (j->cancelled) {
        pp__job_unref(j);
        return;
    }
    if (s->n) {
        uint64_t per = run_ns / s->n;
        j->item_ns = j->item_ns ? (j->item_ns * 3 + per) / 4 : (per ? per : 1);
    }
    if (status != 0) {
        char m[1100];
        snprintf(m, sizeof m, "the worker could not run the chunk: %.*s", (int)v->len,
                 v->len ? (const char *)v->p : "unknown error");
        fail_items(pool, j, s->lo, s->n, PP_EPROTO, m);
        goto out;
    }
    if ((s->flags & PP__F_RESREF) || (j->kind == PP__JOB_MAP && j->result_size)) {
        /* fixed-size results: in place (RESREF) or packed at the head of the
         * record; then the items that failed, by index, in order (each entry
         * checked by pp__dec_fail) */
        const char *bad_msg = "malformed chunk results from the worker";
        const unsigned char *packed = (s->flags & PP__F_RESREF) ? NULL : v->p;
        size_t pos;
        size_t copied = 0; /* items [0, copied) of the chunk are stored */
        if (pp__dec_fixed_start(v->len, s->n, j->result_size, packed != NULL, &pos) < 0) {
            fail_items(pool, j, s->lo, s->n, PP_EPROTO, bad_msg);
            goto out;
        }
        pp__dec_fail_t e;
        int r;
        while ((r = pp__dec_fail(v->p, v->len, pos, s->n, copied, &e)) > 0) {
            size_t k = (size_t)e.k;
            if (packed && k > copied) /* the good run before this failure */
                memcpy(j->results + (s->lo + copied) * j->result_size,
                       packed + copied * j->result_size, (k - copied) * j->result_size);
            copied = k + 1;
            if (e.ih.status != 0)
                note_failure(j, s->lo + k, PP_ETASK, e.ih.status, (const char *)v->p + e.msg,
                             e.ih.msg_len);
            else {
                char m[160];
                snprintf(m, sizeof m, "the result has %llu bytes, expected %zu",
                         (unsigned long long)e.ih.data_len, j->result_size);
                note_failure(j, s->lo + k, PP_ETASK, -1, m, strlen(m));
            }
            pos = e.next;
        }
        if (r < 0)
            note_failure(j, s->lo, PP_EPROTO, PP_EPROTO, bad_msg, strlen(bad_msg));
        else if (packed && s->n > copied)
            memcpy(j->results + (s->lo + copied) * j->result_size, packed + copied * j->result_size,
                   (s->n - copied) * j->result_size);
        j->done += s->n;
        set_progress(j);
        goto out;
    }
    /* An iterator keeps the results, and iter.c reads their headers again
     * when it hands them out: the bytes checked must be the bytes kept, so
     * results still in the worker's ring (which it could rewrite between a
     * check and a copy) are copied first. A memfd's are sealed. */
    const unsigned char *start = v->p;
    unsigned char *copy = NULL;
    if (j->kind != PP__JOB_MAP && !v->map) {
        copy = malloc(v->len ? v->len : 1);
        if (!copy) {
            fail_items(pool, j, s->lo, s->n, -ENOMEM, "out of memory holding the results");
            goto out;
        }
        memcpy(copy, v->p, v->len);
        start = copy;
    }
    /* walk the per-item results, each length checked by pp__dec_item */
    size_t pos = 0;
    bool bad = false;
    for (size_t i = 0; i < s->n; i++) {
        pp__dec_item_t it;
        if (pp__dec_item(start, v->len, pos, &it) < 0) {
            bad = true;
            break;
        }
        const unsigned char *body = start + it.body;
        if (j->kind == PP__JOB_MAP) {
            size_t idx = s->lo + i;
            if (it.ih.status != 0) {
                note_failure(j, idx, PP_ETASK, it.ih.status, (const char *)body, it.ih.msg_len);
            } else if (it.ih.data_len != j->result_size) {
                char m[160];
                snprintf(m, sizeof m, "the result has %llu bytes, expected %zu",
                         (unsigned long long)it.ih.data_len, j->result_size);
                note_failure(j, idx, PP_ETASK, -1, m, strlen(m));
            } else if (j->result_size) {
                memcpy(j->results + idx * j->result_size, body, j->result_size);
            }
        }
        pos = it.next;
    }
    if (bad) {
        free(copy);
        fail_items(pool, j, s->lo, s->n, PP_EPROTO, "malformed chunk results from the worker");
        goto out;
    }
    if (j->kind == PP__JOB_MAP) {
        j->done += s->n;
        set_progress(j);
    } else {
        pp__chunk_res_t *r = pp__alloc_fails("map.chunk_res") ? NULL : calloc(1, sizeof *r);
        if (!r) {
            free(copy);
            fail_items(pool, j, s->lo, s->n, -ENOMEM, "out of memory holding the results");
            goto out;
        }
        r->lo = s->lo;
        r->n = s->n;
        size_t used = pos;
        if (v->map) {
            r->map = v->map;
            r->map_len = v->map_len;
            v->map = NULL;
            r->cur = start;
        } else {
            r->buf = copy;
            r->cur = r->buf;
        }
        r->end = r->cur + used;
        j->done += s->n;
        set_progress(j);
        res_insert(j, r);
    }
out:
    maybe_finish(pool, j);
    if (window_open(pool, j))
        pp__job_list_add(pool, j);
    pp__job_unref(j);
}

/* Cut the packed items [from, to) of a fed blob into a new blob. */
static void *sub_blob(const void *blob, size_t blob_len, size_t from, size_t to, size_t *out_len) {
    const unsigned char *b = blob, *p = b, *end = b + blob_len;
    const unsigned char *s = NULL, *e = NULL;
    for (size_t i = 0; i <= to && p <= end; i++) {
        if (i == from)
            s = p;
        if (i == to) {
            e = p;
            break;
        }
        uint64_t l;
        if ((size_t)(end - p) < 8)
            return NULL;
        memcpy(&l, p, 8);
        p += 8 + PP__ALIGN8((size_t)l);
    }
    if (!s || !e || e < s)
        return NULL;
    *out_len = (size_t)(e - s);
    void *n = malloc(*out_len ? *out_len : 1);
    if (n)
        memcpy(n, s, *out_len);
    return n;
}

/* Items [from, to) of chunk s are to be sent again; if that cannot be
 * allocated they fail -ENOMEM (never silently dropped: the job would wait
 * for them forever). */
static void retry_range(pp_pool_t *pool, pp__job_t *j, const pp__task_t *s, size_t from,
                        size_t to) {
    if (from >= to)
        return;
    pp__range_t *r = pp__alloc_fails("map.retry") ? NULL : calloc(1, sizeof *r);
    if (r && s->blob) {
        r->blob = pp__alloc_fails("map.retry_blob")
                      ? NULL
                      : sub_blob(s->blob, s->arg_len, from, to, &r->blob_len);
        if (!r->blob) {
            free(r);
            r = NULL;
        }
    }
    if (!r) {
        fail_items(pool, j, s->lo + from, to - from, -ENOMEM,
                   "out of memory: the item could not be sent again after its worker died");
        return;
    }
    r->lo = s->lo + from;
    r->n = to - from;
    r->next = j->retry;
    j->retry = r;
}

void pp__job_chunk_lost(pp_pool_t *pool, pp__task_t *s, long k, int err, const char *why,
                        uint64_t fails) {
    pp__job_t *j = s->job;
    chunk_gone(pool, j);
    if (!j->cancelled) {
        if (k == -2 || (k >= 0 && err == PP_ECANCELED)) {
            fail_items(pool, j, s->lo, s->n, err, why);
        } else if (k < 0) {
            retry_range(pool, j, s, 0, s->n);
        } else {
            size_t kk = (size_t)k < s->n ? (size_t)k : s->n - 1;
            retry_range(pool, j, s, kk + 1, s->n);
            if (s->flags & PP__F_RESREF) {
                /* results written in place: the items before the crash are done
                 * (running them again could apply an in-place update twice) */
                if (fails && kk) {
                    char m[200];
                    snprintf(m, sizeof m,
                             "%llu of items %zu..%zu failed; their reports were lost with the "
                             "worker",
                             (unsigned long long)fails, s->lo, s->lo + kk - 1);
                    note_failure(j, s->lo, PP_ETASK, -1, m, strlen(m));
                }
                j->done += kk;
                set_progress(j);
            } else {
                retry_range(pool, j, s, 0, kk);
            }
            fail_items(pool, j, s->lo + kk, 1, err, why);
        }
        if (j->retry)
            pp__job_list_add(pool, j);
        maybe_finish(pool, j);
    }
    free(s->blob);
    pp__job_unref(j);
}

/* ---------------------------------------------------------------- */
/* creating jobs                                                     */
/* ---------------------------------------------------------------- */

int pp__job_new(pp_pool_t *pool, int kind, pp_task_fn fn, const void *items, size_t item_size,
                size_t count, size_t chunksize, pp__job_t **out) {
    *out = NULL;
    if (!pool || !fn || (!items && count && item_size))
        return -EINVAL;
    if (item_size && count > SIZE_MAX / item_size)
        return -EINVAL;
    if (pp__pool_foreign(pool))
        return PP_ECLOSED;
    if (!pp__fn_ok(pool, fn))
        return -EINVAL;
    pp__job_t *j = calloc(1, kind == PP__JOB_ITER ? sizeof(struct pp_iter) : sizeof *j);
    if (!j)
        return -ENOMEM;
    j->pool = pool;
    j->kind = kind;
    j->fn = fn;
    j->items = items;
    j->item_size = item_size;
    j->count = count;
    j->total = count;
    j->refs = 1;
    j->autochunk = chunksize == PP_CHUNK_AUTO;
    if (chunksize == 0 || j->autochunk) {
        size_t d = 4 * (size_t)pool->size;
        j->chunk = count / d + (count % d ? 1 : 0);
        if (j->chunk == 0)
            j->chunk = 1;
    } else {
        j->chunk = chunksize;
    }
    j->items_ref = item_size && count && pp__shm_has(pool, items, count * item_size);
    j->window =
        (size_t)pool->size * (kind == PP__JOB_ITER ? WINDOW_PER_WORKER : MAP_WINDOW_PER_WORKER);
    *out = j;
    return 0;
}

/* Make j live in the pool; lock held. */
int pp__job_start_locked(pp_pool_t *pool, pp__job_t *j) {
    if (pool->closed)
        return PP_ECLOSED;
    /* an array job keeps join waiting until its last item is done; a fed
     * one only through its chunks in flight (nobody else calls its feed) */
    j->counted = !j->feed_src;
    if (j->counted)
        pool->inflight_total++;
    set_progress(j);
    pp__job_list_add(pool, j);
    pp__pool_dispatch_locked(pool);
    maybe_finish(pool, j);
    return 0;
}

int pp_map_async(pp_pool_t *pool, pp_task_fn fn, const void *items, size_t item_size, size_t count,
                 void *results, size_t result_size, size_t chunksize, pp_future_t **future) {
    if (future)
        *future = NULL;
    if (!future || (!results && count && result_size))
        return -EINVAL;
    if (result_size && count > SIZE_MAX / result_size)
        return -EINVAL;
    pp__job_t *j;
    int r = pp__job_new(pool, PP__JOB_MAP, fn, items, item_size, count, chunksize, &j);
    if (r < 0)
        return r;
    j->results = results;
    j->result_size = result_size;
    j->results_ref = result_size && count && pp__shm_has(pool, results, count * result_size);
    pp_future_t *f = pp__future_new(pool);
    if (!f) {
        pthread_mutex_lock(&pool->lock);
        pp__job_unref(j);
        pthread_mutex_unlock(&pool->lock);
        return -ENOMEM;
    }
    atomic_store(&f->prog_total, count);
    f->is_map = true;
    pthread_mutex_lock(&pool->lock);
    j->f = f;
    f->job = j;
    j->refs++; /* the future's hold */
    r = pp__job_start_locked(pool, j);
    if (r < 0) {
        j->f = NULL;
        f->job = NULL;
        pp__job_unref(j);
        pp__job_unref(j);
        pthread_mutex_unlock(&pool->lock);
        atomic_store(&f->refs, 1);
        pp__future_unref(f);
        return r;
    }
    pp__job_unref(j); /* creator's reference: the future holds it now */
    pthread_mutex_unlock(&pool->lock);
    *future = f;
    return 0;
}

int pp_map(pp_pool_t *pool, pp_task_fn fn, const void *items, size_t item_size, size_t count,
           void *results, size_t result_size, size_t chunksize) {
    pp_future_t *f;
    int r = pp_map_async(pool, fn, items, item_size, count, results, result_size, chunksize, &f);
    if (r < 0)
        return r;
    pp_future_wait(f, -1);
    r = f->err;
    pp_future_free(f);
    return r;
}

/* Called by pp_future_free on a map future: cancel if still running. */
/* Chunks of cancelled job j sent ahead to workers and not started are
 * taken back (their claim words, internal.h): they will not run. The
 * records stay in the rings for the workers to skip. Lock held. */
void pp__job_take_back_locked(pp_pool_t *pool, pp__job_t *j) {
    for (int i = 0; i < pool->nworkers && !pool->torn_down; i++) {
        pp__worker_t *w = &pool->workers[i];
        if (!w->chan.ctrl || w->broken)
            continue;
        for (uint64_t seq = w->seq_done; seq < w->seq_next; seq++) {
            pp__task_t *s = &w->inflight[seq % PP__INFLIGHT_MAX];
            uint32_t fresh = pp__claim_word(seq, PP__CLAIM_FRESH);
            if (s->job != j ||
                !atomic_compare_exchange_strong_explicit(
                    pp__claim_at(w->chan.ctrl, seq), &fresh, pp__claim_word(seq, PP__CLAIM_CANCEL),
                    memory_order_seq_cst, memory_order_seq_cst))
                continue;
            pp__task_t c = *s;
            s->job = NULL;
            s->blob = NULL;
            if (w->dispatched) /* max_tasks_per_child counts what it runs */
                w->dispatched--;
            pp__job_chunk_lost(pool, &c, -2, PP_ECANCELED, NULL, 0); /* drops its job ref */
        }
    }
}

bool pp__future_cancel_job(pp_future_t *f) {
    bool cancelled = false;
    pp_pool_t *pool = f->pool;
    pthread_mutex_lock(&pool->lock);
    pp__job_t *j = f->job;
    if (j && j->f == f) {
        j->f = NULL;
        f->job = NULL;
        pp__job_cancel_locked(pool, j);
        pp__job_take_back_locked(pool, j);
        pp__future_complete(f, PP_ECANCELED, PP_ECANCELED, NULL);
        pp__job_unref(j);
        cancelled = true;
    }
    pthread_mutex_unlock(&pool->lock);
    return cancelled;
}

int pp_future_progress(const pp_future_t *f, size_t *done, size_t *total) {
    if (!f)
        return -EINVAL;
    size_t t = atomic_load_explicit(&f->prog_total, memory_order_relaxed);
    size_t d = atomic_load_explicit(&f->prog_done, memory_order_relaxed);
    if (atomic_load_explicit(&f->state, memory_order_acquire) & PP__FS_DONE)
        d = t;
    if (done)
        *done = d;
    if (total)
        *total = t;
    return 0;
}
