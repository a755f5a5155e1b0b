/*
 * pool.c - the pool's public calls, submission and dispatch, and draining
 * results into futures.
 *
 * DESIGN: one mutex, pool->lock, guards the pool's dispatch state (pending
 * queue, each worker's in-flight ring, lifecycle flags) and the consumer
 * side of every result ring. A submitting thread copies the argument
 * straight into the ring of the least-loaded worker that has room (and a
 * live process: a slot still waiting for the zygote takes nothing) and
 * publishes it (a futex wake only if that worker sleeps); when no worker
 * has room the task waits in a FIFO pending queue, which every drain
 * refills from. A worker is given at most "depth" tasks ahead, sized from
 * the smoothed task time so that about a millisecond of work is queued on
 * each worker: short tasks stream with no hand-off gap, long ones are not
 * stuck behind a busy worker while another idles.
 *
 * Draining: any parent thread that wants results (a waiter spinning in
 * pp_future_wait, a submitter short of room, the supervisor after an
 * eventfd wake) takes the lock, copies out each result record (validated
 * by decode.c), completes its future, and frees ring space. Large args and results travel
 * as sealed memfds over the worker's socket. A large argument that has to
 * wait in the pending queue waits in memory: its memfd is made only when
 * it is sent (at most MEMFD_MAX out per worker), so a backlog costs memory,
 * never the program's descriptors.
 *
 * Lifecycle requests (close, join, terminate) are carried out by the
 * supervisor thread (supervise.c); callers wait on pool->cond.
 */
#include "tuning.h"
#include "internal.h"
#include "decode.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define MEMFD_MAX 32u /* large arguments out per worker (their fds sit in its socket) */

void pp_options_init(pp_options_t *opt) {
    if (!opt)
        return;
    memset(opt, 0, sizeof *opt);
    opt->start_method = PP_START_FORK;
}

int pp__worker_depth(const pp_pool_t *pool) {
    uint64_t avg = atomic_load_explicit(&pool->avg_ns, memory_order_relaxed);
    if (avg == 0)
        return 4;
    uint64_t d = PP__DEPTH_TARGET_NS / avg;
    /* one queued behind the running task while tasks are short enough that
     * a hand-off gap would show (stealing takes it back if the running one
     * runs long); longer tasks wait in the shared queue for the first
     * worker free, in order */
    if (d < 2)
        d = avg <= 2 * PP__DEPTH_TARGET_NS ? 2 : 1;
    if (d > PP__INFLIGHT_MAX)
        d = PP__INFLIGHT_MAX;
    return (int)d;
}

/* Under spawn a function must lie in an object the worker loads too. */
bool pp__fn_ok(const pp_pool_t *pool, pp_task_fn fn) {
    uint64_t k, o;
    return (pool->opt.start_method != PP_START_SPAWN && !pool->remote) ||
           pp__addr_encode((const void *)(uintptr_t)fn, &k, &o);
}

void pp__pool_wake_supervisor(pp_pool_t *pool) {
    uint64_t one = 1;
    ssize_t r = write(pool->ctl_evfd, &one, sizeof one);
    (void)r;
}

/* ---------------------------------------------------------------- */
/* dispatch                                                          */
/* ---------------------------------------------------------------- */

/* Only a slot with a live process takes work: one still waiting for the
 * zygote to fork its process (STARTING) may wait forever (a stopped
 * zygote), while the tasks would sit in its ring and other workers idle. */
static bool can_take(const pp_pool_t *pool, const pp__worker_t *w, int depth) {
    if (w->state != PP__W_READY || w->broken || w->stalled)
        return false;
    if (w->seq_next - w->seq_done >= (uint64_t)depth)
        return false;
    if (pool->opt.max_tasks_per_child && w->dispatched >= pool->opt.max_tasks_per_child)
        return false;
    return true;
}

/* Large arguments of this pool whose memfds are out (sent, not done). */
static unsigned memfds_out(const pp_pool_t *pool) {
    unsigned n = 0;
    for (int i = 0; i < pool->nworkers; i++)
        n += pool->workers[i].memfd_inflight;
    return n;
}

/* Could a large argument be sent now? Lock held. */
static bool memfd_room(const pp_pool_t *pool) {
    int depth = pp__worker_depth(pool);
    for (int i = 0; i < pool->nworkers; i++) {
        const pp__worker_t *w = &pool->workers[i];
        if (can_take(pool, w, depth) && w->memfd_inflight < MEMFD_MAX &&
            pp__chan_task_room(&w->chan, 0, true))
            return true;
    }
    return false;
}

/* Put task t (a single task or a chunk) on some worker's ring. Lock held.
 * A large argument (t->big) travels as a memfd: t->argfd when it has one,
 * else one made here from arg, only now that it is sent, so that a queued
 * argument costs memory, not one of the program's descriptors. Returns
 * true when placed; false with *err 0 when no worker has room now, or
 * false with *err < 0 (-EFBIG, -EMFILE, -ENFILE, -ENOMEM) when the
 * argument cannot be put in a memfd: the caller fails the task. A memfd
 * that cannot be made for lack of descriptors or memory while others of
 * this pool are out is only waited for: they come back. */
static bool other_idle(const pp_pool_t *pool, const pp__worker_t *w);

bool pp__place(pp_pool_t *pool, pp__task_t *t, const void *arg, int *err) {
    *err = 0;
    if (pool->remote) {
        bool placed = pp__remote_place(pool, t, arg, err);
        if (placed && t->f) {
            t->f->where = PP__AT_REMOTE;
            t->f->node = NULL;
        }
        return placed;
    }
    int depth = pp__worker_depth(pool);
    bool memfd = t->argfd >= 0 || t->big;
    bool byref = memfd || (t->flags & PP__F_REF);
    pp__worker_t *best = NULL;
    uint64_t best_n = UINT64_MAX;
    for (int i = 0; i < pool->nworkers; i++) {
        pp__worker_t *w = &pool->workers[i];
        if (!can_take(pool, w, depth) || (memfd && w->memfd_inflight >= MEMFD_MAX))
            continue;
        uint64_t n = w->seq_next - w->seq_done;
        if (n < best_n && pp__chan_task_room(&w->chan, t->arg_len, byref)) {
            best = w;
            best_n = n;
            if (n == 0)
                break;
        }
    }
    if (!best)
        return false;
    if (memfd) {
        int fd = t->argfd;
        if (fd < 0) {
            fd = pp__sealed_copy((t->flags & PP__F_CHUNK) ? "procpool-chunk" : "procpool-arg", arg,
                                 t->arg_len);
            if (fd < 0) {
                if (fd == -EFBIG || memfds_out(pool) == 0)
                    *err = fd;
                return false;
            }
        }
        int se = pp__send_fds(best->chan.sock, "a", 1, &fd, 1);
        if (se < 0) {
            if (fd != t->argfd)
                close(fd);
            /* a full socket (-EAGAIN) or a dead worker empties again; the
             * kernel's refusal to carry one more descriptor (ETOOMANYREFS:
             * too many in flight for RLIMIT_NOFILE) or to find memory does
             * not while none of ours is out: the task fails, it must not
             * wait for ever */
            if ((se == -ETOOMANYREFS || se == -ENOBUFS || se == -ENOMEM) && memfds_out(pool) == 0)
                *err = se == -ETOOMANYREFS ? -EMFILE : -ENOMEM;
            return false;
        }
        t->argfd = fd; /* the slot owns it from here */
        best->memfd_inflight++;
    }
    if (best->seq_next == best->seq_done)
        best->progress_ns = pp__now_ns(); /* it had nothing: its wait starts now */
    pp__task_t *s = &best->inflight[best->seq_next % PP__INFLIGHT_MAX];
    *s = *t;
    s->arg = (t->flags & PP__F_REF) ? (void *)arg : NULL;
    s->next = NULL;
    s->seq = best->seq_next;
    s->start_ns = 0;
    s->item_seen = 0;
    uint64_t fn = (uint64_t)(uintptr_t)t->fn, fn_key = 0;
    if (pool->opt.start_method == PP_START_SPAWN)
        pp__addr_encode((const void *)(uintptr_t)t->fn, &fn_key, &fn); /* checked at submission */
    pp__task_hdr_t h = {.flags = t->flags | (memfd ? PP__F_MEMFD : 0),
                        .seq = s->seq,
                        .fn = fn,
                        .fn_key = fn_key,
                        .arg_len = t->arg_len,
                        .nitems = t->n,
                        .item_size = t->item_size,
                        .addr = (t->flags & PP__F_REF) ? (uint64_t)(uintptr_t)arg : 0,
                        .res_addr = (uint64_t)(uintptr_t)t->res_addr,
                        .res_size = t->res_size};
    /* the claim word first: the worker may CAS it as soon as the record is published */
    atomic_store_explicit(pp__claim_at(best->chan.ctrl, s->seq),
                          pp__claim_word(s->seq, PP__CLAIM_FRESH), memory_order_relaxed);
    if (t->f) {
        t->f->where = PP__AT_RING;
        t->f->node = NULL;
        t->f->wi = best->index;
        t->f->wseq = s->seq;
    }
    s->rec_end = pp__chan_push_task(&best->chan, &h, arg, byref);
    s->rec_off = s->rec_end - PP__ALIGN8(sizeof(pp__task_hdr_t) + (byref ? 0 : t->arg_len));
    best->seq_next++;
    best->dispatched++;
    pp__chan_publish(&best->chan);
    /* The supervisor must be watching the clock for a task with a deadline,
     * and while another worker idles: should this one not start the record
     * (stopped, stuck), the supervisor takes it back (pp__steal_locked). */
    if (atomic_load_explicit(&pool->sup_unbounded, memory_order_relaxed) &&
        (pool->opt.task_timeout > 0 || t->timeout_ns > 0 || other_idle(pool, best)) &&
        atomic_exchange_explicit(&pool->sup_unbounded, 0, memory_order_relaxed))
        pp__pool_wake_supervisor(pool);
    return true;
}

/* ---------------------------------------------------------------- */
/* work-conserving dispatch                                          */
/* ---------------------------------------------------------------- */

static bool idle_worker(const pp_pool_t *pool, const pp__worker_t *w) {
    return w->state == PP__W_READY && !w->broken && w->chan.ctrl && w->seq_done == w->seq_next &&
           !(pool->opt.max_tasks_per_child && w->dispatched >= pool->opt.max_tasks_per_child);
}

/* Is a worker other than w idle? Lock held. */
static bool other_idle(const pp_pool_t *pool, const pp__worker_t *w) {
    for (int i = 0; i < pool->nworkers; i++)
        if (&pool->workers[i] != w && idle_worker(pool, &pool->workers[i]))
            return true;
    return false;
}

/* Take back v's records from seq_next - 1 down to the first one it has
 * started, each by its claim word, and send them again through the
 * pending queue (in their order, at its head) or, for map chunks, the
 * job's retry list. Returns how many. Lock held. */
static int take_back(pp_pool_t *pool, pp__worker_t *v) {
    int n = 0;
    for (uint64_t seq = v->seq_next; seq-- > v->seq_done;) {
        pp__task_t *s = &v->inflight[seq % PP__INFLIGHT_MAX];
        if (!s->f && !s->job)
            continue; /* cancelled already */
        uint32_t fresh = pp__claim_word(seq, PP__CLAIM_FRESH);
        if (!atomic_compare_exchange_strong_explicit(pp__claim_at(v->chan.ctrl, seq), &fresh,
                                                     pp__claim_word(seq, PP__CLAIM_CANCEL),
                                                     memory_order_seq_cst, memory_order_seq_cst))
            break; /* v claims in order: this one and all before it are its own */
        n++;
        if (v->dispatched) /* v will not run it: max_tasks_per_child counts what it runs */
            v->dispatched--;
        if (s->job) {
            pp__task_t c = *s;
            s->job = NULL;
            s->blob = NULL;
            /* its items go back to the job; the record (and its memfd, if
             * any) stays for v to skip and drain to free */
            pp__job_chunk_lost(pool, &c, -1, 0, NULL, 0);
            continue;
        }
        if (pp__requeue(pool, v, s, s->tries) == 0) {
            /* the queued copy owns the argument's memfd now; v skips the
             * record and closes the copy it receives */
            if (s->argfd >= 0 && v->memfd_inflight)
                v->memfd_inflight--;
            s->argfd = -1;
        } else {
            pool->inflight_total--;
            pp__future_set_fail(s->f, -ENOMEM,
                                "out of memory while moving the task to an idle worker");
            if (pool->inflight_total == 0)
                pthread_cond_broadcast(&pool->cond);
        }
        s->f = NULL;
    }
    return n;
}

int64_t pp__steal_locked(pp_pool_t *pool, uint64_t now) {
    if (pool->remote || pool->nworkers < 2 || pool->terminating || pool->torn_down ||
        pool->pend_head || pool->jobs)
        return -1; /* work waits to be sent: an idle worker gets that */
    bool idle = false;
    for (int i = 0; i < pool->nworkers && !idle; i++)
        idle = idle_worker(pool, &pool->workers[i]);
    if (!idle)
        return -1;
    uint64_t avg = atomic_load_explicit(&pool->avg_ns, memory_order_relaxed);
    uint64_t min_age = 2 * avg < PP__STEAL_MIN_NS   ? PP__STEAL_MIN_NS
                       : 2 * avg > PP__STEAL_MAX_NS ? PP__STEAL_MAX_NS
                                                    : 2 * avg;
    int64_t next = -1;
    int stolen = 0;
    for (int i = 0; i < pool->nworkers; i++) {
        pp__worker_t *v = &pool->workers[i];
        if (v->state != PP__W_READY || v->broken || !v->chan.ctrl || v->seq_next == v->seq_done)
            continue; /* it holds nothing */
        uint64_t age = now > v->progress_ns ? now - v->progress_ns : 0;
        if (age < min_age) {
            int64_t ms = (int64_t)((min_age - age) / 1000000u) + 1;
            if (next < 0 || ms < next)
                next = ms;
            continue;
        }
        if (take_back(pool, v)) {
            v->stalled = true;
            stolen++;
        }
    }
    if (stolen)
        pp__pool_dispatch_locked(pool);
    return next;
}

/* A pending task whose argument cannot be put in a memfd fails. Lock held. */
static void fail_unsendable(pp_pool_t *pool, pp__task_t *t, int err) {
    char why[200];
    pp__describe_fsize(why, sizeof why, err, t->arg_len);
    pool->inflight_total--;
    pp__future_set_fail(t->f, err,
                        "the task's %zu-byte argument could not be passed to a worker: %s",
                        t->arg_len, why);
    if (pool->inflight_total == 0)
        pthread_cond_broadcast(&pool->cond);
}

/* Move pending tasks onto rings while there is room. Lock held. */
int pp__pool_dispatch_locked(pp_pool_t *pool) {
    int n = 0;
    while (pool->pend_head) {
        pp__task_t *t = pool->pend_head;
        int err;
        bool placed = pp__place(pool, t, t->arg, &err);
        if (!placed && !err)
            break;
        pool->pend_head = t->next;
        if (pool->pend_head)
            pool->pend_head->prev = NULL;
        else
            pool->pend_tail = NULL;
        pool->npending--;
        if (!placed)
            fail_unsendable(pool, t, err);
        free(t);
        n++;
    }
    if (!pool->pend_head && pool->jobs)
        n += pp__jobs_dispatch_locked(pool);
    /* start-up is broken and no worker is left (supervise.c: parked
     * slots): the supervisor respawns one for this work, or fails it */
    if (pool->all_parked && (pool->pend_head || pool->jobs) && !pp__on_supervisor(pool))
        pp__pool_wake_supervisor(pool);
    return n;
}

static void pend_push(pp_pool_t *pool, pp__task_t *t, bool front) {
    t->next = t->prev = NULL;
    if (front) {
        t->next = pool->pend_head;
        if (pool->pend_head)
            pool->pend_head->prev = t;
        pool->pend_head = t;
        if (!pool->pend_tail)
            pool->pend_tail = t;
    } else {
        t->prev = pool->pend_tail;
        if (pool->pend_tail)
            pool->pend_tail->next = t;
        else
            pool->pend_head = t;
        pool->pend_tail = t;
    }
    pool->npending++;
    if (t->f) {
        t->f->where = PP__AT_PENDING;
        t->f->node = t;
    }
}

void pp__pend_unlink(pp_pool_t *pool, pp__task_t *t) {
    if (t->prev)
        t->prev->next = t->next;
    else
        pool->pend_head = t->next;
    if (t->next)
        t->next->prev = t->prev;
    else
        pool->pend_tail = t->prev;
    t->next = t->prev = NULL;
    pool->npending--;
}

/* A pending node for single task (or raw chunk) like tmpl, with its own
 * copy of the argument in memory (or, requeued from a dead worker, its
 * memfd). */
static pp__task_t *pend_new(const pp__task_t *tmpl, const void *arg) {
    size_t len = tmpl->arg_len;
    uint32_t flags = tmpl->flags;
    size_t extra = (tmpl->argfd >= 0 || (flags & PP__F_REF)) ? 0 : len;
    pp__task_t *t = malloc(sizeof *t + extra);
    if (!t)
        return NULL;
    memset(t, 0, sizeof *t);
    t->f = tmpl->f;
    t->fn = tmpl->fn;
    t->arg_len = len;
    t->argfd = tmpl->argfd;
    t->big = tmpl->big;
    t->flags = flags;
    t->n = tmpl->n;
    t->item_size = tmpl->item_size;
    t->res_size = tmpl->res_size;
    t->retries = tmpl->retries;
    t->timeout_ns = tmpl->timeout_ns;
    t->arg = (flags & PP__F_REF) ? (void *)arg : tmpl->argfd >= 0 ? NULL : (void *)(t + 1);
    if (extra)
        memcpy(t->arg, arg, len);
    return t;
}

/* An MPI agent's local pool: every task (and raw chunk) not yet started
 * is done at once with err, unrun (rank 0 asked, for an idle agent: it
 * sends them again). Returns how many. */
int pp__pool_give_back(pp_pool_t *pool, int err) {
    int n = 0;
    pthread_mutex_lock(&pool->lock);
    for (pp__task_t *t = pool->pend_head, *next; t; t = next) {
        next = t->next;
        pp_future_t *f = t->f;
        pp__pend_unlink(pool, t);
        pp__close(&t->argfd);
        free(t);
        pool->inflight_total--;
        pp__future_complete(f, err, err, NULL);
        n++;
    }
    for (int i = 0; i < pool->nworkers && !pool->torn_down; i++) {
        pp__worker_t *w = &pool->workers[i];
        if (!w->chan.ctrl || w->broken)
            continue;
        for (uint64_t seq = w->seq_next; seq-- > w->seq_done;) {
            pp__task_t *s = &w->inflight[seq % PP__INFLIGHT_MAX];
            if (!s->f || s->job)
                continue;
            uint32_t fresh = pp__claim_word(seq, PP__CLAIM_FRESH);
            if (!atomic_compare_exchange_strong_explicit(
                    pp__claim_at(w->chan.ctrl, seq), &fresh, pp__claim_word(seq, PP__CLAIM_CANCEL),
                    memory_order_seq_cst, memory_order_seq_cst))
                break;
            pp_future_t *f = s->f;
            s->f = NULL;
            if (w->dispatched)
                w->dispatched--;
            pool->inflight_total--;
            pp__future_complete(f, err, err, NULL);
            n++;
        }
    }
    if (pool->inflight_total == 0)
        pthread_cond_broadcast(&pool->cond);
    pthread_mutex_unlock(&pool->lock);
    return n;
}

/* Rank 0 of an MPI pool: single task t, whose future is still pending,
 * came back from an agent unrun; queue it again at the head with its
 * argument. Lock held. */
int pp__pool_requeue_arg(pp_pool_t *pool, const pp__task_t *t, const void *arg) {
    pp__task_t tmpl = *t;
    tmpl.flags &= ~(uint32_t)PP__F_REF; /* arg is a copy: the node keeps its own */
    tmpl.argfd = -1;
    pp__task_t *node = pend_new(&tmpl, arg);
    if (!node)
        return -ENOMEM;
    node->tries = t->tries;
    pend_push(pool, node, true);
    return 0;
}

/* Requeue a task a dead worker had not started, at the head of the queue. */
int pp__requeue(pp_pool_t *pool, pp__worker_t *w, pp__task_t *s, unsigned tries) {
    const void *arg = NULL;
    if (s->flags & PP__F_REF)
        arg = s->arg;
    else if (s->argfd < 0)
        arg = w->chan.task + (s->rec_off % PP__TASK_RING) + sizeof(pp__task_hdr_t);
    pp__task_t *t = pend_new(s, arg);
    if (!t)
        return -ENOMEM;
    t->tries = tries;
    pend_push(pool, t, true);
    return 0;
}

int pp_apply_async(pp_pool_t *pool, pp_task_fn fn, const void *arg, size_t arg_len,
                   pp_future_t **future) {
    if (future)
        *future = NULL;
    if (!pool || !fn || !future || (!arg && arg_len))
        return -EINVAL;
    pp__task_t t = {.fn = fn, .arg_len = arg_len, .argfd = -1, .retries = -1};
    return pp__submit(pool, &t, arg, future);
}

int pp__submit(pp_pool_t *pool, const pp__task_t *tmpl, const void *arg, pp_future_t **future) {
    return pp__submit_cb(pool, tmpl, arg, NULL, NULL, future);
}

int pp__submit_cb(pp_pool_t *pool, const pp__task_t *tmpl, const void *arg, pp_done_fn cb,
                  void *userdata, pp_future_t **future) {
    bool forget = future == NULL; /* fire-and-forget: no user reference */
    pp_future_t *dummy;
    if (forget)
        future = &dummy;
    *future = NULL;
    pp_task_fn fn = tmpl->fn;
    size_t arg_len = tmpl->arg_len;
    if (pp__pool_foreign(pool))
        return PP_ECLOSED; /* a child of fork(): the pool is our parent's */
    if (!pp__fn_ok(pool, fn))
        return -EINVAL;
    if (pool->remote && arg_len > PP__REMOTE_MAX_ARG)
        return -EOVERFLOW; /* more than one MPI message can carry */
    /* inside the pool's shared memory: passed by reference, never copied */
    uint32_t flags = tmpl->flags;
    if (arg_len && pp__shm_has(pool, arg, arg_len))
        flags |= PP__F_REF;
    /* a large argument travels as a memfd (an MPI pool copies every
     * argument into its messages) */
    bool big =
        !(flags & PP__F_REF) && !pool->remote && arg_len > PP__INLINE_MAX - sizeof(pp__task_hdr_t);
    if (big && arg_len > pp__fsize_max())
        return -EFBIG; /* no memfd may hold it: it is a file (RLIMIT_FSIZE) */
    pp_future_t *f = pp__future_new(pool);
    if (!f)
        return -ENOMEM;
    if (cb) { /* set before the task can finish: it always runs on the callback thread */
        f->cb = cb;
        f->cb_arg = userdata;
        atomic_store_explicit(&f->state, PP__FS_CLAIM | PP__FS_CB, memory_order_relaxed);
    }
    pp__task_t t = *tmpl;
    t.f = f;
    t.argfd = -1;
    t.flags = flags;
    t.big = big;
    pp__task_t *node = NULL;
    int err = 0;
    if (big) {
        /* copy it outside the lock: straight into a memfd when it can be
         * sent now, else into a queue node, where it waits in memory and
         * holds no descriptor (a backlog must not use up the program's
         * fds); pp__place makes its memfd once it is sent */
        pthread_mutex_lock(&pool->lock);
        bool now = !pool->pend_head && memfd_room(pool);
        pthread_mutex_unlock(&pool->lock);
        if (now)
            t.argfd = pp__sealed_copy("procpool-arg", arg, arg_len); /* if not, queue it */
        if (t.argfd < 0 && !(node = pend_new(&t, arg))) {
            err = -ENOMEM;
            goto fail;
        }
    }
    pthread_mutex_lock(&pool->lock);
    if (pool->closed) {
        pthread_mutex_unlock(&pool->lock);
        err = PP_ECLOSED;
        goto fail;
    }
    pool->inflight_total++;
    if (t.timeout_ns > 0)
        pool->task_timeouts = true;
    if (!node && (pool->pend_head || !pp__place(pool, &t, arg, &err))) {
        if (err == 0 || t.argfd >= 0) {
            /* it waits: its argument in memory, not in a descriptor (a
             * memfd that could not be sent fails later, through the
             * future, like one that could not be made) */
            err = 0;
            pp__close(&t.argfd);
            node = pend_new(&t, arg);
            if (!node)
                err = -ENOMEM;
        }
        if (err < 0) {
            pool->inflight_total--;
            pthread_mutex_unlock(&pool->lock);
            goto fail;
        }
    }
    if (node) {
        pend_push(pool, node, false);
        pp__pool_dispatch_locked(pool);
    }
    size_t backlog = pool->npending;
    pthread_mutex_unlock(&pool->lock);
    pp__stat_add(&pool->st_submitted, 1);
    /* A thread submitting a burst collects results itself now and then (and
     * tells the supervisor, which then stays passive: no eventfd write and
     * no wake-up per result, no fight for the lock). */
    static __thread unsigned burst;
    if (backlog > 4096 || (++burst & 63) == 0) {
        atomic_store_explicit(&pool->burst_ns, pp__now_ns(), memory_order_relaxed);
        pp__drain(pool, false);
    }
    if (forget)
        pp__future_unref(f); /* the user's reference, which nobody holds */
    else
        *future = f;
    return 0;
fail:
    pp__close(&t.argfd);
    free(node);
    atomic_store(&f->refs, 1);
    pp__future_unref(f);
    return err;
}

int pp_apply(pp_pool_t *pool, pp_task_fn fn, const void *arg, size_t arg_len, void **result,
             size_t *result_len) {
    return pp_apply_msg(pool, fn, arg, arg_len, result, result_len, NULL);
}

/* ---------------------------------------------------------------- */
/* draining results                                                  */
/* ---------------------------------------------------------------- */

static void proto_error(pp_pool_t *pool, pp__worker_t *w) {
    if (!w->broken) {
        w->broken = true;
        pp__worker_signal(pool, w, SIGKILL);
    }
}

/* Find the data of a successful record: inline in the ring, a run of the
 * slot's arena, or a sealed memfd that the worker sent first (mapped
 * read-only here). What the worker claims is checked by decode.c. */
static int result_view(pp__worker_t *w, const pp__res_hdr_t *h, const unsigned char *body,
                       pp__view_t *v) {
    memset(v, 0, sizeof *v);
    v->len = (size_t)h->data_len;
    pp__dec_body_t d;
    size_t arena_bytes = w->arena.data ? w->arena.npages * (size_t)PP__ARENA_PAGE : 0;
    if (pp__dec_res_body(h, body, arena_bytes, &d) < 0)
        return -EPROTO;
    if (d.where == PP__DEC_ARENA) { /* written in place in the slot's arena */
        v->p = w->arena.data + d.arena_off;
        v->arena = &w->arena;
        return 0;
    }
    if (d.where == PP__DEC_INLINE) {
        v->p = body + d.data_off;
        return 0;
    }
    int fd = -1, n = 0;
    char c;
    bool lost = false;
    ssize_t r = pp__recv_fds_lost(w->chan.sock, &c, 1, &fd, 1, &n, MSG_DONTWAIT, &lost);
    int err = pp__dec_fd_recv(r, n, lost);
    if (err < 0) {
        if (n > 0)
            close(fd);
        return err; /* -EMFILE: sent, but no descriptor was free; not the worker's fault */
    }
    struct stat st;
    int seals = fcntl(fd, F_GET_SEALS);
    int64_t size = fstat(fd, &st) < 0 ? -1 : (int64_t)st.st_size;
    if (pp__dec_memfd(h->data_len, size, seals) < 0) {
        close(fd);
        return -EPROTO;
    }
    if (h->data_len == 0) {
        close(fd);
        v->p = (const unsigned char *)"";
        return 0;
    }
    void *p = mmap(NULL, (size_t)h->data_len, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED)
        return -ENOMEM;
    v->p = p;
    v->map = p;
    v->map_len = (size_t)h->data_len;
    return 0;
}

/* Give f the data of v (taking its mapping, or copying). */
static int take_data(pp_pool_t *pool, pp_future_t *f, pp__view_t *v) {
    f->len = v->len;
    if (v->arena) { /* zero copy: the future points into shared memory */
        f->data = (void *)v->p;
        f->arena = v->arena;
        f->data_kind = PP__DATA_ARENA;
        v->arena = NULL;
        atomic_fetch_add_explicit(&pool->shm_users, 1, memory_order_relaxed);
        return 0;
    }
    if (v->map) {
        f->data = v->map;
        f->map_len = v->map_len;
        f->data_kind = PP__DATA_MMAP;
        v->map = NULL;
        return 0;
    }
    if (v->len <= PP__SMALL_RESULT) {
        memcpy(f->small, v->p, v->len);
        f->data = f->small;
        f->data_kind = PP__DATA_INLINE;
        return 0;
    }
    void *p = malloc(v->len);
    if (!p)
        return -ENOMEM;
    memcpy(p, v->p, v->len);
    f->data = p;
    f->data_kind = PP__DATA_MALLOC;
    return 0;
}

/* What v still holds (take_data or chunk_done took what they keep). */
static void view_release(pp__view_t *v) {
    if (v->map)
        munmap(v->map, v->map_len);
    if (v->arena)
        pp__arena_free(v->arena, (size_t)(v->p - v->arena->data) / 4096u, pp__arena_pages(v->len));
    v->map = NULL;
    v->arena = NULL;
}

static char *copy_msg(const unsigned char *body, uint32_t len) {
    char *m = malloc((size_t)len + 1);
    if (!m)
        return NULL;
    memcpy(m, body, len);
    m[len] = 0;
    return m;
}

void pp__smooth(pp_pool_t *pool, uint64_t ns) {
    uint64_t a = atomic_load_explicit(&pool->avg_ns, memory_order_relaxed);
    if (ns == 0)
        ns = 1;
    a = a ? (a * 7 + ns) / 8 : ns;
    atomic_store_explicit(&pool->avg_ns, a ? a : 1, memory_order_relaxed);
}

/* The trace span of a record that came back (it ran: start_ns is set). */
static void trace_record(pp_pool_t *pool, const pp__worker_t *w, const pp__task_t *s,
                         const pp__res_hdr_t *h, bool skipped, int err) {
    pp__trace_span_t sp = {
        .task = s,
        .lane = w->index,
        .worker_pid = w->pid,
        .start_ns = h->start_ns,
        .run_ns = h->run_ns,
        .outcome = skipped     ? "cancelled"
                   : h->status ? "PP_ETASK"
                   : err       ? pp_err_name(err)
                               : "ok",
        .result_size = h->status ? 0 : h->data_len,
    };
    pp__trace_span(pool, &sp);
}

/* Drain worker w's results. Lock held. Returns completions. */
int pp__drain_worker(pp_pool_t *pool, pp__worker_t *w) {
    int n = 0;
    if (!w->chan.ctrl || w->broken)
        return 0;
    for (;;) {
        pp__res_hdr_t h;
        const unsigned char *body;
        int r = pp__chan_peek_result(&w->chan, &h, &body);
        if (r == 0)
            break;
        if (r < 0 || h.seq != w->seq_done || w->seq_done >= w->seq_next) {
            proto_error(pool, w);
            break;
        }
        pp__task_t *s = &w->inflight[w->seq_done % PP__INFLIGHT_MAX];
        pp_future_t *f = s->f;
        /* taken back (cancel, steal): the worker skipped it (or, if it ran
         * it all the same, its result is not wanted) */
        bool skipped = !f && !s->job;
        int err = 0;
        char *msg = NULL;
        pp__view_t v = {0};
        if (h.status == 0) {
            err = result_view(w, &h, body, &v);
            if (err == -EPROTO) {
                proto_error(pool, w);
                break;
            }
        }
        pp__chan_consume_result(&w->chan, &h);
        w->chan.tail = s->rec_end;
        if (s->argfd >= 0) {
            pp__close(&s->argfd);
            if (w->memfd_inflight)
                w->memfd_inflight--;
        }
        w->seq_done++;
        if (pool->trace && h.start_ns)
            trace_record(pool, w, s, &h, skipped, err);
        if (skipped) {
            view_release(&v);
            n++;
            continue;
        }
        w->completed++;
        w->early_deaths = 0;
        pp__smooth(pool, h.run_ns);
        if (s->job) {
            pp__task_t done = *s;
            if (h.status != 0) { /* the chunk as a whole failed: v holds its message */
                v.p = body;
                v.len = h.msg_len;
            }
            s->job = NULL;
            s->blob = NULL;
            if (h.status == 0 && err)
                pp__job_chunk_lost(pool, &done, -2, err,
                                   err == -EMFILE ? "the results could not be received: no file "
                                                    "descriptor was free for their memfd"
                                                  : "out of memory while receiving the results",
                                   0);
            else
                pp__job_chunk_done(pool, &done, &v, h.status, h.run_ns);
            view_release(&v); /* chunks never use the arena; a worker that does loses the run */
            n++;
            continue;
        }
        if (h.status == 0) {
            if (!err)
                err = take_data(pool, f, &v);
            view_release(&v);
            if (err)
                msg = strdup(err == -EMFILE ? "the task's result could not be received: no file "
                                              "descriptor was free for its memfd"
                                            : "out of memory while receiving the task's result");
        } else {
            err = PP_ETASK;
            if (h.msg_len)
                msg = copy_msg(body, h.msg_len);
        }
        s->f = NULL;
        pool->inflight_total--;
        f->run_ns = h.run_ns;
        f->start_ns = h.start_ns;
        pp__future_complete(f, err, h.status, msg);
        n++;
    }
    if (n) {
        w->progress_ns = pp__now_ns();
        w->stalled = false;
    }
    pp__chan_release_results(&w->chan);
    return n;
}

int pp__drain(pp_pool_t *pool, bool block) {
    if (pp__pool_foreign(pool))
        return 0; /* the rings belong to our parent's pool */
    if (block)
        pthread_mutex_lock(&pool->lock);
    else if (pthread_mutex_trylock(&pool->lock) != 0)
        return 0;
    int n = 0;
    if (!pool->torn_down) {
        for (int i = 0; i < pool->nworkers; i++) {
            pp__worker_t *w = &pool->workers[i];
            if (w->chan.ctrl && pp__chan_has_result(&w->chan))
                n += pp__drain_worker(pool, w);
        }
        if (n && (pool->pend_head || pool->jobs))
            pp__pool_dispatch_locked(pool);
        if (n && !pool->pend_head && !pool->jobs && pp__steal_locked(pool, pp__now_ns()) >= 0 &&
            atomic_load_explicit(&pool->sup_unbounded, memory_order_relaxed) &&
            atomic_exchange_explicit(&pool->sup_unbounded, 0, memory_order_relaxed))
            pp__pool_wake_supervisor(pool); /* it must look again when a wait grows long */
        if (n && pool->inflight_total == 0)
            pthread_cond_broadcast(&pool->cond);
    }
    pthread_mutex_unlock(&pool->lock);
    return n;
}
