/*
 * iter.c - iterators over a map's results (pp_imap, pp_imap_unordered,
 * pp_imap_feed) and streaming input from a feed callback.
 *
 * DESIGN: an iterator is a map job (job.h) whose finished chunks are held
 * until read. pp_iter_next takes the next item from the first held chunk:
 * any chunk for imap_unordered, only the chunk that starts at the next
 * expected index for imap (chunks are kept sorted by their first index, and
 * an item lost with its worker comes back as a one-item chunk of its own).
 * A stopped iterator (terminate) hands out the chunks it
 * holds, in order across the gaps that will never fill, then its error
 * once, then the end.
 * The data it returns points into that chunk, which is freed at the next
 * call. While nothing is ready it spins draining the rings itself, then
 * sleeps on the job's private futex word, which every finished chunk bumps.
 *
 * Streaming input: the feed callback is called only here, in the consumer's
 * thread, never under pool->lock: pp_iter_next tops the window up by
 * packing fed items into chunks ([u64 len][bytes padded to 8], up to the
 * inline limit; an item that does not fit waits for the next chunk), then
 * hands them to the dispatcher. The input is only read as fast as results
 * are consumed, so inputs larger than memory can be mapped.
 */
#include "tuning.h"
#include "job.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static int iter_new(pp_pool_t *pool, pp_task_fn fn, const void *items, size_t item_size,
                    size_t count, size_t chunksize, bool ordered, pp_feed_fn feed, void *ud,
                    pp_iter_t **it) {
    if (it)
        *it = NULL;
    if (!it)
        return -EINVAL;
    pp__job_t *j;
    int r = pp__job_new(pool, PP__JOB_ITER, fn, items, item_size, count, chunksize, &j);
    if (r < 0)
        return r;
    j->ordered = ordered;
    if (feed) {
        j->feed_src = true;
        j->feed = feed;
        j->feed_ud = ud;
    }
    atomic_fetch_add_explicit(&pool->refs, 1, memory_order_relaxed); /* the iterator's */
    pthread_mutex_lock(&pool->lock);
    r = pp__job_start_locked(pool, j);
    if (r < 0) {
        pp__job_unref(j);
        pthread_mutex_unlock(&pool->lock);
        pp__pool_unref(pool);
        return r;
    }
    pthread_mutex_unlock(&pool->lock);
    *it = (pp_iter_t *)j;
    return 0;
}

int pp_imap(pp_pool_t *pool, pp_task_fn fn, const void *items, size_t item_size, size_t count,
            size_t chunksize, pp_iter_t **it) {
    return iter_new(pool, fn, items, item_size, count, chunksize, true, NULL, NULL, it);
}

int pp_imap_unordered(pp_pool_t *pool, pp_task_fn fn, const void *items, size_t item_size,
                      size_t count, size_t chunksize, pp_iter_t **it) {
    return iter_new(pool, fn, items, item_size, count, chunksize, false, NULL, NULL, it);
}

int pp_imap_feed(pp_pool_t *pool, pp_task_fn fn, pp_feed_fn feed, void *userdata, size_t chunksize,
                 int flags, pp_iter_t **it) {
    if (it)
        *it = NULL;
    if (!feed || (flags != PP_ORDERED && flags != PP_UNORDERED))
        return -EINVAL;
    return iter_new(pool, fn, NULL, 0, 0, chunksize ? chunksize : PP_CHUNK_AUTO,
                    flags == PP_ORDERED, feed, userdata, it);
}

/* ---------------------------------------------------------------- */
/* feeding                                                           */
/* ---------------------------------------------------------------- */

static int blob_add(unsigned char **buf, size_t *len, size_t *cap, const void *item, size_t n) {
    size_t need = *len + 8 + PP__ALIGN8(n);
    if (need > *cap) {
        size_t c = *cap ? *cap * 2 : 4096;
        while (c < need)
            c *= 2;
        unsigned char *p = realloc(*buf, c);
        if (!p)
            return -ENOMEM;
        *buf = p;
        *cap = c;
    }
    uint64_t l = n;
    memcpy(*buf + *len, &l, 8);
    if (n)
        memcpy(*buf + *len + 8, item, n);
    memset(*buf + *len + 8 + n, 0, PP__ALIGN8(n) - n);
    *len = need;
    return 0;
}

/* Pack one chunk of fed items. Called without the lock, so the end of the
 * input is only reported through *ended and *err, for the caller to record
 * under the lock (a drain seeing feed_ended too early would finish the job
 * before its last chunk). target: items. */
static pp__range_t *feed_chunk(pp__job_t *j, size_t target, size_t lo, bool *ended, int *err) {
    unsigned char *buf = NULL;
    size_t len = 0, cap = 0, n = 0;
    if (j->stash) {
        if (blob_add(&buf, &len, &cap, j->stash, j->stash_len) < 0)
            goto oom;
        free(j->stash);
        j->stash = NULL;
        n = 1;
    }
    while (n < target && !*ended) {
        const void *item = NULL;
        size_t ilen = 0;
        int r = j->feed(j->feed_ud, &item, &ilen);
        if (r <= 0) {
            *ended = true;
            *err = r;
            break;
        }
        if (!item && ilen)
            ilen = 0;
        if (n && len + 8 + PP__ALIGN8(ilen) > CHUNK_BYTES) {
            j->stash = malloc(ilen ? ilen : 1); /* starts the next chunk */
            if (!j->stash)
                goto oom;
            memcpy(j->stash, item, ilen);
            j->stash_len = ilen;
            break;
        }
        if (blob_add(&buf, &len, &cap, item, ilen) < 0)
            goto oom;
        n++;
        if (len >= CHUNK_BYTES)
            break;
    }
    if (n == 0) {
        free(buf);
        return NULL;
    }
    pp__range_t *r = calloc(1, sizeof *r);
    if (!r)
        goto oom;
    r->lo = lo;
    r->n = n;
    r->blob = buf;
    r->blob_len = len;
    return r;
oom:
    free(buf);
    *ended = true;
    *err = -ENOMEM;
    return NULL;
}

/* Keep the window full of fed chunks. Lock held on entry and exit; the
 * feed itself is called with the lock released. */
static void top_up(pp_pool_t *pool, pp__job_t *j) {
    while (!j->feed_ended && !j->cancelled &&
           (pool->joining || j->sent + j->held + j->nfed_chunks < j->window)) {
        size_t target = j->chunk;
        if (j->autochunk)
            target = j->item_ns ? (size_t)(PP__AUTO_TARGET_NS / j->item_ns) : 1;
        if (target < 1)
            target = 1;
        size_t lo = j->fed; /* the stashed item, if any, comes first */
        bool ended = false;
        int err = 0;
        pthread_mutex_unlock(&pool->lock);
        pp__range_t *r = feed_chunk(j, target, lo, &ended, &err);
        pthread_mutex_lock(&pool->lock);
        if (r) {
            j->fed += r->n;
            j->total = j->fed;
            atomic_store_explicit(&j->a_total, j->total, memory_order_relaxed);
        }
        if (ended && !j->feed_ended) { /* (the library may have ended it meanwhile) */
            j->feed_ended = true;
            j->feed_err = err;
        }
        if (!r)
            break;
        if (j->cancelled || j->feed_stopped) {
            /* stopped while we fed: start-up is broken, these items fail
             * like the ones queued before them */
            if (!j->cancelled)
                pp__job_fail_items(pool, j, r->lo, r->n, j->feed_err, j->end_msg);
            free(r->blob);
            free(r);
            break;
        }
        if (j->fed_tail)
            j->fed_tail->next = r;
        else
            j->fed_head = r;
        j->fed_tail = r;
        j->nfed_chunks++;
        pp__job_list_add(pool, j);
        pp__pool_dispatch_locked(pool);
    }
}

/* ---------------------------------------------------------------- */
/* reading                                                           */
/* ---------------------------------------------------------------- */

static void set_err(pp__job_t *j, const char *msg, size_t len) {
    free(j->last_err);
    j->last_err = malloc(len + 1);
    if (j->last_err) {
        memcpy(j->last_err, msg, len);
        j->last_err[len] = 0;
    }
}

/* The next ready item, if any: 1 (or an item's error), 0 if none ready. */
static int take(pp_pool_t *pool, pp__job_t *j, size_t *index, const void **data, size_t *len) {
    pp__chunk_res_t *r = j->res_head;
    if (!r)
        return 0;
    if (j->ordered && r->lo + r->pos != j->next_out) {
        if (!j->cancelled)
            return 0;
        /* stopped (terminate): the items before r will
         * never come back, so hand out what is held, still in order */
        j->next_out = r->lo + r->pos;
    }
    size_t i = r->lo + r->pos;
    int ret = 1;
    if (r->err_all) {
        ret = r->err_all;
        const char *m = r->msg_all ? r->msg_all : pp_strerror(ret);
        set_err(j, m, strlen(m));
    } else {
        pp__item_hdr_t ih;
        memcpy(&ih, r->cur, sizeof ih); /* checked in this very copy when the chunk came back */
        const unsigned char *body = r->cur + sizeof ih;
        if (ih.status) {
            ret = PP_ETASK;
            if (ih.msg_len)
                set_err(j, (const char *)body, ih.msg_len);
            else
                set_err(j, "the task failed", 15);
            r->cur = body + PP__ALIGN8(ih.msg_len);
        } else {
            if (data)
                *data = body;
            if (len)
                *len = (size_t)ih.data_len;
            r->cur = body + PP__ALIGN8((size_t)ih.data_len);
        }
    }
    if (index)
        *index = i;
    r->pos++;
    j->reported++;
    if (j->ordered)
        j->next_out++;
    if (r->pos == r->n) {
        /* read out: keep it until the next call (data points into it) */
        j->res_head = r->next;
        if (!j->res_head)
            j->res_tail = NULL;
        j->held--;
        j->cur_res = r;
        pp__job_list_add(pool, j);
        pp__pool_dispatch_locked(pool);
    }
    return ret;
}

int pp_iter_next(pp_iter_t *it, double timeout, size_t *index, const void **data, size_t *len) {
    if (index)
        *index = 0;
    if (data)
        *data = NULL;
    if (len)
        *len = 0;
    if (!it || isnan(timeout))
        return -EINVAL;
    pp__job_t *j = &it->job;
    pp_pool_t *pool = j->pool;
    uint64_t start = pp__now_ns();
    uint64_t limit = timeout < 0     ? UINT64_MAX
                     : timeout > 1e9 ? UINT64_MAX
                                     : (uint64_t)(timeout * 1e9);
    pthread_mutex_lock(&pool->lock);
    if (j->cur_res) {
        pp__chunk_res_free(j->cur_res);
        j->cur_res = NULL;
    }
    free(j->last_err);
    j->last_err = NULL;
    for (;;) {
        if (j->feed_src && !j->feed_ended && !j->cancelled) {
            if (pool->closed && pool->finished)
                j->abort_err = PP_ECLOSED;
            else
                top_up(pool, j);
        }
        int r = take(pool, j, index, data, len);
        if (r != 0) {
            if (r == 1 && data && !*data)
                *data = "";
            pthread_mutex_unlock(&pool->lock);
            return r;
        }
        bool all_in = !j->feed_src || j->feed_ended;
        if (all_in && j->reported >= j->total && !j->res_head) {
            if (j->feed_err < 0 && !j->feed_err_told) {
                j->feed_err_told = true;
                if (index)
                    *index = j->fed;
                if (j->end_msg)
                    set_err(j, j->end_msg, strlen(j->end_msg));
                else
                    set_err(j, "the feed reported an error", 26);
                r = j->feed_err;
            }
            pthread_mutex_unlock(&pool->lock);
            return r;
        }
        if ((j->abort_err || (pool->finished && !j->sent && !j->res_head)) && !j->res_head &&
            !j->sent) {
            int e = j->abort_err ? j->abort_err : PP_ECANCELED;
            r = 0;
            if (!j->abort_told) {
                j->abort_told = true;
                if (index)
                    *index = j->ordered ? j->next_out : j->reported;
                set_err(j, pp_strerror(e), strlen(pp_strerror(e)));
                r = e;
            }
            pthread_mutex_unlock(&pool->lock);
            return r;
        }
        uint32_t seq = atomic_load_explicit(&j->wake, memory_order_acquire);
        pthread_mutex_unlock(&pool->lock);

        uint64_t el = pp__now_ns() - start;
        if (el >= limit && limit != UINT64_MAX)
            return -ETIMEDOUT;
        /* spin, draining ourselves; then sleep until a chunk comes back */
        atomic_fetch_add_explicit(&pool->drainers, 1, memory_order_seq_cst);
        uint64_t s0 = pp__now_ns();
        bool moved = false;
        while (pp__now_ns() - s0 < PP__SPIN_NS) {
            pp__drain(pool, false);
            if ((moved = atomic_load_explicit(&j->wake, memory_order_acquire) != seq))
                break;
            for (int i = 0; i < 32; i++)
                pp__cpu_relax();
        }
        if (atomic_fetch_sub_explicit(&pool->drainers, 1, memory_order_seq_cst) == 1 &&
            atomic_load_explicit(&pool->sup_passive, memory_order_seq_cst))
            pp__pool_wake_supervisor(pool);
        if (!moved) {
            el = pp__now_ns() - start;
            int64_t left = limit == UINT64_MAX ? -1 : (int64_t)(limit - el);
            if (left != 0) {
                atomic_fetch_add_explicit(&j->waiters, 1, memory_order_seq_cst);
                if (atomic_load_explicit(&j->wake, memory_order_seq_cst) == seq)
                    pp__futex_wait(&j->wake, seq, left < 0 || left > 100000000 ? 100000000 : left,
                                   false);
                atomic_fetch_sub_explicit(&j->waiters, 1, memory_order_relaxed);
            }
        }
        pthread_mutex_lock(&pool->lock);
    }
}

const char *pp_iter_error(const pp_iter_t *it) { return it ? it->job.last_err : NULL; }

int pp_iter_progress(const pp_iter_t *it, size_t *done, size_t *total) {
    if (!it)
        return -EINVAL;
    if (done)
        *done = atomic_load_explicit(&it->job.a_done, memory_order_relaxed);
    if (total)
        *total = atomic_load_explicit(&it->job.a_total, memory_order_relaxed);
    return 0;
}

void pp_iter_free(pp_iter_t *it) {
    if (!it)
        return;
    pp__job_t *j = &it->job;
    pp_pool_t *pool = j->pool;
    pthread_mutex_lock(&pool->lock);
    pp__job_cancel_locked(pool, j);
    pp__job_take_back_locked(pool, j); /* chunks sent ahead, not started: they will not run */
    pp__job_unref(j);
    pthread_mutex_unlock(&pool->lock);
    pp__pool_unref(pool);
}
