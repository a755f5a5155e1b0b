/*
 * remote.c - rank 0's side of the MPI backend: a pool whose workers are on
 * the node agents, and the hub thread that talks to them.
 *
 * DESIGN: an MPI pool keeps all of the pool logic (pending queue, map jobs
 * and their chunks, futures, callbacks, lifecycle); only the transport
 * differs. It has no local worker slots; pp__place hands each record to
 * pp__mpi_remote_place, which picks the agent with the fewest records per
 * worker still out (so a faster agent, which returns its records sooner,
 * is given more), gives the record an id (slot index | generation << 32)
 * in the pool's table of records out, and appends it, argument included, to
 * that agent's outgoing batch. Each agent may have at most workers x depth
 * records out, depth sized from the smoothed run time so that about 4 ms of
 * work is queued per worker: tiny tasks travel hundreds to a message,
 * long chunks a couple per worker.
 *
 * The hub thread is the only thread of rank 0 that calls MPI. Each round it
 * sends queued control messages (OPEN, END), takes every non-empty batch
 * (under the pool's lock) and sends it with MPI_Isend, retires finished
 * sends, and receives: OPENED replies wake pp__mpi_remote_open; RESULTS records
 * complete futures or map chunks exactly as a drained result ring does
 * (pp__job_chunk_done / pp__job_chunk_lost with the item a dead worker was
 * running), then refill the batches from the pending queue. It sleeps on
 * the kick word (comm.c): with no timeout when no pool has records out.
 *
 * Locks: hub.lock (registry, control queue) is taken before a pool's lock,
 * never after; the hub holds hub.lock while it works on a pool, and a pool
 * leaves the registry (pp__mpi_remote_close) under hub.lock, so the hub never
 * touches a pool that is being torn down. pp__mpi_remote_place runs under the
 * pool's lock and only bumps the kick word.
 *
 * Work-conserving: while an agent has nothing out and nothing waits here,
 * an agent that has sent no result for a while (2x the average task time,
 * 4 to 50 ms: a long task holds up the records behind it) is sent
 * GIVEBACK; it answers every record its local pool has not started with
 * PP__EGIVENBACK (the claim words decide, as for a local steal), and each
 * such record is sent again: a map chunk's items through its job, a
 * single task from the copy of its argument its slot keeps until its
 * result is in.
 *
 * Faults: task_timeout, max_tasks_per_child, retries and worker deaths are
 * handled by the agents' local pools; what comes back is the outcome
 * (error code, task status, message, the item a chunk's worker died on).
 * Terminate fails every record out with PP_ECANCELED here at once and tells
 * the agents to terminate their pools; their late results are dropped (the
 * ids are gone).
 */
#include "../tuning.h"
#include "mpi_int.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

#define DEPTH_MAX 512u
#define BATCH_SOFT (4u << 20) /* a batch this big goes out before more is added */
#define OPEN_TIMEOUT_S 120

typedef struct rslot {
    pp__task_t t;
    void *argcopy; /* a single task's argument, to send again if it comes back unrun */
    uint32_t gen;
    int32_t agent;
    uint32_t next_free;
    bool used;
} rslot_t;

typedef struct ragent {
    int rank;
    int workers;
    size_t out;           /* records out */
    uint64_t progress_ns; /* its last result, or when it was given work while it had none */
    uint64_t asked_ns;    /* when it was last asked to give back what it has not started */
    pp__wbuf_t batch;     /* records not yet sent */
    bool asked, replied;
    int open_err;
    int64_t clock_off; /* rank 0's clock minus the agent's (traces) */
    uint64_t open_ns;  /* when the pool's OPEN was queued for it */
} ragent_t;

struct pp__remote {
    pp_pool_t *pool;
    uint32_t id;
    int nagents;
    ragent_t *ag;
    rslot_t *slot;
    uint32_t nslots, cap, free_head;
    size_t out; /* records out, all agents */
    int replies_wanted;
    bool registered, closed;
    pp__remote_t *next;
};

typedef struct ctl {
    int dest;
    void *buf;
    size_t len;
    struct ctl *next;
} ctl_t;

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    pp__remote_t *pools;
    ctl_t *ctl_head, *ctl_tail;
    uint32_t next_id;
    bool started, stop;
    pthread_t thread;
} hub = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

/* ---------------------------------------------------------------- */
/* the table of records out (pool lock)                              */
/* ---------------------------------------------------------------- */

static rslot_t *slot_new(pp__remote_t *r, uint32_t *idx) {
    if (r->free_head == UINT32_MAX) {
        if (r->nslots == r->cap) {
            uint32_t cap = r->cap ? r->cap * 2 : 256;
            rslot_t *s = realloc(r->slot, (size_t)cap * sizeof *s);
            if (!s)
                return NULL;
            r->slot = s;
            r->cap = cap;
        }
        memset(&r->slot[r->nslots], 0, sizeof *r->slot);
        r->slot[r->nslots].next_free = UINT32_MAX;
        r->free_head = r->nslots++;
    }
    *idx = r->free_head;
    rslot_t *s = &r->slot[*idx];
    r->free_head = s->next_free;
    s->used = true;
    s->gen++;
    return s;
}

static void slot_free(pp__remote_t *r, uint32_t idx) {
    free(r->slot[idx].argcopy);
    r->slot[idx].argcopy = NULL;
    r->slot[idx].used = false;
    r->slot[idx].next_free = r->free_head;
    r->free_head = idx;
}

static uint64_t depth(const pp_pool_t *pool) {
    uint64_t avg = atomic_load_explicit(&pool->avg_ns, memory_order_relaxed);
    uint64_t d = avg ? PP__WINDOW_NS / avg : 64;
    return d < 2 ? 2 : d > DEPTH_MAX ? DEPTH_MAX : d;
}

static ragent_t *pick_agent(pp__remote_t *r, uint64_t d) {
    ragent_t *best = NULL;
    uint64_t best_score = UINT64_MAX;
    for (int i = 0; i < r->nagents; i++) {
        ragent_t *a = &r->ag[i];
        if (a->workers <= 0 || a->out >= (uint64_t)a->workers * d || a->batch.len >= BATCH_SOFT)
            continue;
        uint64_t score = (uint64_t)a->out * 1024u / (uint64_t)a->workers;
        if (score < best_score) {
            best = a;
            best_score = score;
        }
    }
    return best;
}

bool pp__mpi_remote_room(pp_pool_t *pool) {
    pp__remote_t *r = pool->remote;
    return !r->closed && pick_agent(r, depth(pool)) != NULL;
}

/* Returns false when the task cannot be placed now; with *err < 0 (no
 * memory for its slot or its record, and no record of this pool out whose
 * return would free some) it never will, and the caller fails it. */
bool pp__mpi_remote_place(pp_pool_t *pool, pp__task_t *t, const void *arg, int *err) {
    pp__remote_t *r = pool->remote;
    if (r->closed)
        return false;
    ragent_t *a = pick_agent(r, depth(pool));
    if (!a)
        return false;
    uint64_t key = 0, off = 0;
    pp__addr_encode((const void *)(uintptr_t)t->fn, &key, &off); /* checked at submission */
    uint32_t idx;
    rslot_t *s = slot_new(r, &idx);
    /* a single task keeps a copy of its argument: an agent may give it
     * back unrun (work-conserving dispatch), and it is sent again */
    void *copy = s && !t->job && t->arg_len ? malloc(t->arg_len) : NULL;
    if (!s || (!t->job && t->arg_len && !copy)) {
        if (s)
            slot_free(r, idx);
        if (r->out == 0)
            *err = -ENOMEM;
        return false;
    }
    if (copy)
        memcpy(copy, arg, t->arg_len);
    pp__mtask_t m = {.id = (uint64_t)s->gen << 32 | idx,
                     .flags = t->flags & (PP__F_CHUNK | PP__F_VAR),
                     .fn_key = key,
                     .fn_off = off,
                     .arg_len = t->arg_len,
                     .nitems = t->n,
                     .item_size = t->item_size,
                     .res_size = t->res_size};
    bool was_empty = a->batch.len == 0;
    if (!pp__wbuf_record(&a->batch, PP__M_TASKS, r->id, &m, sizeof m, arg, t->arg_len, NULL, 0)) {
        free(copy);
        slot_free(r, idx);
        if (r->out == 0)
            *err = -ENOMEM;
        return false;
    }
    s->t = *t;
    s->t.arg = NULL; /* it travels in the batch */
    s->t.next = NULL;
    s->argcopy = copy;
    s->agent = (int32_t)(a - r->ag);
    if (a->out == 0)
        a->progress_ns = pp__now_ns();
    a->out++;
    r->out++;
    if (was_empty)
        pp__comm_kick();
    return true;
}

void pp__mpi_remote_cancel(pp_pool_t *pool) {
    pp__remote_t *r = pool->remote;
    for (uint32_t i = 0; i < r->nslots; i++) {
        if (!r->slot[i].used)
            continue;
        pp__task_t s = r->slot[i].t;
        slot_free(r, i);
        if (s.job) {
            pp__job_chunk_lost(pool, &s, -2, PP_ECANCELED,
                               "the pool was terminated before the task finished", 0);
        } else {
            pool->inflight_total--;
            pp__future_set_fail(s.f, PP_ECANCELED,
                                "the pool was terminated before the task finished");
        }
    }
    for (int i = 0; i < r->nagents; i++) {
        pp__wbuf_free(&r->ag[i].batch);
        r->ag[i].out = 0;
    }
    r->out = 0;
    if (pool->inflight_total == 0)
        pthread_cond_broadcast(&pool->cond);
}

/* ---------------------------------------------------------------- */
/* results (hub thread; hub.lock and the pool's lock held)           */
/* ---------------------------------------------------------------- */

static void take_result(pp_pool_t *pool, pp__remote_t *r, int agent, const pp__mres_t *m,
                        const unsigned char *msg, const unsigned char *data) {
    uint32_t idx = (uint32_t)m->id, gen = (uint32_t)(m->id >> 32);
    if (idx >= r->nslots || !r->slot[idx].used || r->slot[idx].gen != gen ||
        r->slot[idx].agent != agent)
        return; /* not ours (any more) */
    pp__task_t s = r->slot[idx].t;
    if (m->err == PP__EGIVENBACK) { /* given back unrun: send it again */
        void *copy = r->slot[idx].argcopy;
        r->slot[idx].argcopy = NULL;
        slot_free(r, idx);
        r->ag[agent].out--;
        r->out--;
        if (s.job) {
            pp__job_chunk_lost(pool, &s, -1, 0, NULL, 0); /* its items go back to the job */
        } else if (pp__pool_requeue_arg(pool, &s, copy) < 0) {
            pool->inflight_total--;
            pp__future_set_fail(s.f, -ENOMEM,
                                "out of memory while moving the task to an idle MPI rank");
        }
        free(copy);
        return;
    }
    slot_free(r, idx);
    r->ag[agent].out--;
    r->out--;
    pp__smooth(pool, m->run_ns);
    if (pool->trace && m->start_ns) {
        int rank = agent + 1;
        pp__trace_span_t sp = {
            .task = &s,
            .lane = rank * 65536 + (int)(m->worker & 0xffff),
            .start_ns = (uint64_t)((int64_t)m->start_ns + r->ag[agent].clock_off),
            .run_ns = m->run_ns,
            .outcome = m->err == 0 ? "ok" : pp_err_name(m->err),
            .result_size = m->err ? 0 : m->data_len,
        };
        pp__trace_span(pool, &sp);
    }
    char *text = NULL;
    if (m->msg_len) {
        text = malloc((size_t)m->msg_len + 1);
        if (text) {
            memcpy(text, msg, m->msg_len);
            text[m->msg_len] = 0;
        }
    }
    if (s.job) {
        if (m->err == 0) {
            pp__view_t v = {.p = data, .len = (size_t)m->data_len};
            pp__job_chunk_done(pool, &s, &v, 0, m->run_ns);
        } else if (m->err == PP_ETASK) { /* the chunk as a whole failed */
            pp__view_t v = {.p = msg, .len = m->msg_len};
            pp__job_chunk_done(pool, &s, &v, m->status ? m->status : 1, m->run_ns);
        } else {
            long k = m->lost_k >= 0 && (uint64_t)m->lost_k < s.n ? (long)m->lost_k : -2;
            if (m->err == PP_ECANCELED)
                k = -2;
            pp__job_chunk_lost(pool, &s, k, m->err, text ? text : pp_strerror(m->err),
                               m->lost_fails);
        }
        free(text);
        return;
    }
    pp_future_t *f = s.f;
    int err = m->err;
    f->run_ns = m->run_ns;
    if (err == 0) {
        size_t len = data ? (size_t)m->data_len : 0; /* no data: an empty result */
        f->len = len;
        if (len <= PP__SMALL_RESULT) {
            if (len)
                memcpy(f->small, data, len);
            f->data = f->small;
            f->data_kind = PP__DATA_INLINE;
        } else if ((f->data = malloc(len)) != NULL) {
            memcpy(f->data, data, len);
            f->data_kind = PP__DATA_MALLOC;
        } else {
            err = -ENOMEM;
            free(text);
            text = strdup("out of memory while receiving the task's result");
        }
    }
    pool->inflight_total--;
    pp__future_complete(f, err, err ? m->status : 0, text);
}

/* Nothing left in flight: wake waiters, and the supervisor (a join may be
 * waiting for this). Pool lock held. */
static void settled(pp_pool_t *pool) {
    if (pool->inflight_total == 0) {
        pthread_cond_broadcast(&pool->cond);
        pp__pool_wake_supervisor(pool);
    }
}

/* A batch that could not be sent: its records fail with err. */
static void fail_batch(pp_pool_t *pool, pp__remote_t *r, int agent, const unsigned char *buf,
                       size_t len, int err) {
    const unsigned char *p = buf + sizeof(pp__mhdr_t), *end = buf + len;
    if (err == 0)
        err = -EIO; /* a failure always fails its records */
    while ((size_t)(end - p) >= sizeof(pp__mtask_t)) {
        pp__mtask_t m;
        memcpy(&m, p, sizeof m);
        p += PP__ALIGN8(sizeof m) + PP__ALIGN8(m.arg_len);
        char why[120];
        snprintf(why, sizeof why, "could not send the task to MPI rank %d: %s", r->ag[agent].rank,
                 pp_strerror(err));
        pp__mres_t res = {
            .id = m.id, .err = err, .status = err, .msg_len = (uint32_t)strlen(why), .lost_k = -1};
        take_result(pool, r, agent, &res, (const unsigned char *)why, NULL);
    }
    settled(pool);
}

static void take_results(int src, const pp__mhdr_t *h, const unsigned char *p,
                         const unsigned char *end) {
    pp__remote_t *r = hub.pools;
    while (r && r->id != h->pool)
        r = r->next;
    if (!r)
        return; /* a pool that has finished */
    int agent = src - 1;
    if (agent < 0 || agent >= r->nagents)
        return;
    pp_pool_t *pool = r->pool;
    pthread_mutex_lock(&pool->lock);
    r->ag[agent].progress_ns = pp__now_ns();
    for (uint64_t i = 0; i < h->count; i++) {
        pp__mres_t m;
        if ((size_t)(end - p) < sizeof m)
            break;
        memcpy(&m, p, sizeof m);
        size_t need = PP__ALIGN8(sizeof m) + PP__ALIGN8(m.msg_len) + PP__ALIGN8(m.data_len);
        if (m.data_len > PP__MPI_MAX_MSG || need > (size_t)(end - p))
            break;
        const unsigned char *msg = p + PP__ALIGN8(sizeof m);
        take_result(pool, r, agent, &m, msg, msg + PP__ALIGN8(m.msg_len));
        p += need;
    }
    if (pool->pend_head || pool->jobs)
        pp__pool_dispatch_locked(pool);
    settled(pool);
    pthread_mutex_unlock(&pool->lock);
}

/* A batch of results from agent src could not be received (no memory for
 * it, for a second): which of the records it settled is unknown, so every
 * record of that pool out to that agent fails -ENOMEM now (a late result
 * for one then matches no slot and is dropped). hub.lock held. */
static void lost_results(int src, uint32_t pool_id) {
    pp__remote_t *r = hub.pools;
    while (r && r->id != pool_id)
        r = r->next;
    int agent = src - 1;
    if (!r || agent < 0 || agent >= r->nagents)
        return;
    pp_pool_t *pool = r->pool;
    static const char why[] = "out of memory to receive the task's result from its MPI rank";
    pthread_mutex_lock(&pool->lock);
    for (uint32_t i = 0; i < r->nslots; i++) {
        if (!r->slot[i].used || r->slot[i].agent != agent)
            continue;
        pp__mres_t res = {.id = (uint64_t)r->slot[i].gen << 32 | i,
                          .err = -ENOMEM,
                          .status = -ENOMEM,
                          .msg_len = sizeof why - 1,
                          .lost_k = -1};
        take_result(pool, r, agent, &res, (const unsigned char *)why, NULL);
    }
    settled(pool);
    pthread_mutex_unlock(&pool->lock);
}

/* Agent src answered pool_id's OPEN (err: it failed). hub.lock held. */
static void opened(int src, uint32_t pool_id, int workers, int err, uint64_t clock_ns,
                   uint64_t boot) {
    for (pp__remote_t *r = hub.pools; r; r = r->next) {
        if (r->id != pool_id || src < 1 || src > r->nagents)
            continue;
        ragent_t *a = &r->ag[src - 1];
        if (!a->asked || a->replied)
            return;
        a->replied = true;
        a->workers = err ? 0 : workers;
        a->open_err = err;
        /* the same machine: the same clock. Else the agent read its clock
         * between our OPEN and its answer: take the middle, within half
         * that round trip */
        uint64_t now = pp__now_ns();
        a->clock_off = !clock_ns || (boot && boot == pp__mpi_boot_id())
                           ? 0
                           : (int64_t)(a->open_ns / 2 + now / 2 - clock_ns);
        if (r->pool->trace) {
            for (int i = 0; i < a->workers; i++) {
                char name[64];
                snprintf(name, sizeof name, "rank %d worker %d", src, i);
                pp__trace_lane(r->pool, src * 65536 + i, name);
            }
        }
        r->replies_wanted--;
        pthread_cond_broadcast(&hub.cond);
        return;
    }
}

static void take_opened(int src, const pp__mhdr_t *h, const unsigned char *p,
                        const unsigned char *end) {
    pp__mopened_t o;
    if ((size_t)(end - p) < sizeof o)
        return;
    memcpy(&o, p, sizeof o);
    opened(src, h->pool, o.workers, o.err, o.clock_ns, o.boot);
}

/* A control message could not be sent (no memory to track the send, or
 * MPI refused it). An OPEN is answered here with that error, so that
 * pp_pool_create returns it at once instead of waiting out its timeout.
 * hub.lock held. */
static void ctl_failed(const ctl_t *c, int err) {
    pp__mhdr_t h;
    if (c->len < sizeof h)
        return;
    memcpy(&h, c->buf, sizeof h);
    if (h.type == PP__M_OPEN)
        opened(c->dest, h.pool, 0, err, 0, 0);
}

/* ---------------------------------------------------------------- */
/* the hub thread                                                    */
/* ---------------------------------------------------------------- */

static int ctl_queue(int dest, uint32_t type, uint32_t pool, uint64_t count, const void *body,
                     size_t len);

/* Work-conserving dispatch across ranks: while an agent has nothing out
 * and nothing waits at rank 0, an agent that has returned nothing for a
 * while (a long task ahead of its records) is asked to give back what it
 * has not started. Pool lock and hub.lock held. */
static void ask_back(pp__remote_t *r, uint64_t now) {
    pp_pool_t *pool = r->pool;
    if (r->closed || pool->terminating || pool->pend_head || pool->jobs || r->nagents < 2)
        return; /* work waits here: the idle agent gets that */
    bool idle = false;
    for (int i = 0; i < r->nagents && !idle; i++)
        idle = r->ag[i].workers > 0 && r->ag[i].out == 0;
    if (!idle)
        return;
    uint64_t avg = atomic_load_explicit(&pool->avg_ns, memory_order_relaxed);
    uint64_t min_age = 2 * avg < PP__BACK_MIN_NS   ? PP__BACK_MIN_NS
                       : 2 * avg > PP__BACK_MAX_NS ? PP__BACK_MAX_NS
                                                   : 2 * avg;
    for (int i = 0; i < r->nagents; i++) {
        ragent_t *a = &r->ag[i];
        if (a->out == 0 || now - a->progress_ns < min_age || now - a->asked_ns < min_age)
            continue;
        if (ctl_queue(a->rank, PP__M_GIVEBACK, r->id, 0, NULL, 0) == 0)
            a->asked_ns = now;
    }
}

static void *hub_main(void *arg) {
    (void)arg;
    prctl(PR_SET_NAME, "procpool-mpi");
    for (;;) {
        int work = 0;
        pthread_mutex_lock(&hub.lock);
        ctl_t *c = hub.ctl_head;
        hub.ctl_head = hub.ctl_tail = NULL;
        bool stop = hub.stop;
        bool expecting = false;
        while (c) {
            ctl_t *next = c->next;
            int e = pp__comm_send(c->dest, c->buf, c->len);
            if (e < 0) {
                ctl_failed(c, e); /* END: the agent keeps an idle pool */
                free(c->buf);
            }
            free(c);
            c = next;
            work++;
        }
        for (pp__remote_t *r = hub.pools; r; r = r->next) {
            pthread_mutex_lock(&r->pool->lock);
            for (int i = 0; i < r->nagents; i++) {
                ragent_t *a = &r->ag[i];
                if (!a->batch.len)
                    continue;
                size_t len;
                void *buf = pp__wbuf_take(&a->batch, &len);
                int e = pp__comm_send(a->rank, buf, len);
                if (e < 0) {
                    fail_batch(r->pool, r, i, buf, len, e);
                    free(buf);
                }
                work++;
            }
            if (r->out)
                ask_back(r, pp__now_ns());
            if (r->out || r->replies_wanted)
                expecting = true;
            pthread_mutex_unlock(&r->pool->lock);
        }
        pthread_mutex_unlock(&hub.lock);
        work += pp__comm_test_sends();
        for (int i = 0; i < 64; i++) {
            void *buf;
            size_t len;
            int src;
            pp__mhdr_t lost;
            int got = pp__comm_recv(&buf, &len, &src, &lost);
            if (got == 0)
                break;
            work++;
            if (got < 0) {
                pthread_mutex_lock(&hub.lock);
                if (lost.type == PP__M_RESULTS)
                    lost_results(src, lost.pool);
                else if (lost.type == PP__M_OPENED)
                    opened(src, lost.pool, 0, -ENOMEM, 0, 0);
                pthread_mutex_unlock(&hub.lock);
                continue;
            }
            pp__mhdr_t h;
            if (len >= sizeof h) {
                memcpy(&h, buf, sizeof h);
                const unsigned char *p = (const unsigned char *)buf + sizeof h,
                                    *end = (const unsigned char *)buf + len;
                pthread_mutex_lock(&hub.lock);
                if (h.type == PP__M_RESULTS)
                    take_results(src, &h, p, end);
                else if (h.type == PP__M_LOST)
                    lost_results(src, h.pool);
                else if (h.type == PP__M_OPENED)
                    take_opened(src, &h, p, end);
                pthread_mutex_unlock(&hub.lock);
            }
            free(buf);
        }
        if (pp__mpi.nsends)
            expecting = true;
        if (stop && !pp__mpi.nsends && !work)
            break;
        if (work)
            pp__comm_busy();
        else
            pp__comm_idle(expecting || stop ? PP__IDLE_SHORT : PP__IDLE_DEEP);
    }
    return NULL;
}

void pp__hub_stop(void) {
    pthread_mutex_lock(&hub.lock);
    bool started = hub.started;
    hub.stop = true;
    pthread_mutex_unlock(&hub.lock);
    if (!started)
        return;
    pp__comm_kick();
    pthread_join(hub.thread, NULL);
    hub.started = false;
}

/* Queue a control message for the hub (hub.lock held). */
static int ctl_queue(int dest, uint32_t type, uint32_t pool, uint64_t count, const void *body,
                     size_t len) {
    ctl_t *c = malloc(sizeof *c);
    unsigned char *buf = malloc(sizeof(pp__mhdr_t) + len);
    if (!c || !buf) {
        free(c);
        free(buf);
        return -ENOMEM;
    }
    pp__mhdr_t h = {.type = type, .pool = pool, .count = count};
    memcpy(buf, &h, sizeof h);
    if (len)
        memcpy(buf + sizeof h, body, len);
    c->dest = dest;
    c->buf = buf;
    c->len = sizeof h + len;
    c->next = NULL;
    if (hub.ctl_tail)
        hub.ctl_tail->next = c;
    else
        hub.ctl_head = c;
    hub.ctl_tail = c;
    return 0;
}

static void unregister_locked(pp__remote_t *r, bool terminate) {
    if (!r->registered)
        return;
    pp__remote_t **pp = &hub.pools;
    while (*pp && *pp != r)
        pp = &(*pp)->next;
    if (*pp)
        *pp = r->next;
    r->registered = false;
    for (int i = 0; i < r->nagents; i++)
        if (r->ag[i].asked && r->ag[i].workers > 0)
            ctl_queue(r->ag[i].rank, PP__M_END, r->id, terminate ? 1 : 0, NULL, 0);
    pp__comm_kick();
}

/* ---------------------------------------------------------------- */
/* the pool's hooks                                                  */
/* ---------------------------------------------------------------- */

int pp__mpi_remote_open(pp_pool_t *pool) {
    if (!pp__mpi_on || pp__mpi.rank != 0 || pp__mpi.size < 2 || getpid() != pp__mpi.pid)
        return PP_ENOAGENTS;
    const pp_options_t *opt = &pool->opt;
    pp__remote_t *r = calloc(1, sizeof *r);
    if (!r)
        return -ENOMEM;
    r->pool = pool;
    r->free_head = UINT32_MAX;
    r->nagents = pp__mpi.size - 1;
    r->ag = calloc((size_t)r->nagents, sizeof *r->ag);
    if (!r->ag) {
        free(r);
        return -ENOMEM;
    }
    pp__mopen_t o = {.start_method = (uint32_t)opt->start_method,
                     .max_tasks = opt->max_tasks_per_child,
                     .retries = opt->retries,
                     .task_timeout = opt->task_timeout,
                     .max_memory = opt->max_memory_per_child,
                     .shm_size = opt->shm_size};
    if (opt->initializer)
        pp__addr_encode((const void *)(uintptr_t)opt->initializer, &o.init_key, &o.init_off);
    if (opt->initarg)
        pp__addr_encode(opt->initarg, &o.arg_key, &o.arg_off);

    int err = 0;
    pthread_mutex_lock(&hub.lock);
    if (!hub.started) {
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        hub.stop = false;
        err = -pthread_create(&hub.thread, NULL, hub_main, NULL);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        hub.started = err == 0;
    }
    if (!err) {
        r->id = ++hub.next_id;
        r->next = hub.pools;
        hub.pools = r;
        r->registered = true;
        int n = r->nagents, total = opt->processes;
        for (int i = 0; i < n && !err; i++) {
            r->ag[i].rank = i + 1;
            o.processes = total ? total / n + (i < total % n ? 1 : 0) : 0;
            if (total && o.processes == 0)
                continue; /* fewer workers than agents */
            r->ag[i].open_ns = pp__now_ns();
            err = ctl_queue(i + 1, PP__M_OPEN, r->id, 1, &o, sizeof o);
            if (!err) {
                r->ag[i].asked = true;
                r->replies_wanted++;
            }
        }
        pp__comm_kick();
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += OPEN_TIMEOUT_S;
        while (r->replies_wanted > 0 && !err)
            if (pthread_cond_timedwait(&hub.cond, &hub.lock, &until) == ETIMEDOUT)
                err = -ETIMEDOUT;
        int size = 0;
        for (int i = 0; i < n; i++) {
            if (!err && r->ag[i].open_err)
                err = r->ag[i].open_err;
            size += r->ag[i].workers;
        }
        if (!err && size == 0)
            err = PP_ENOAGENTS;
        if (err)
            unregister_locked(r, true);
        else
            pool->size = size;
    }
    pthread_mutex_unlock(&hub.lock);
    if (err) {
        free(r->ag);
        free(r);
        return err;
    }
    pool->remote = r;
    return 0;
}

void pp__mpi_remote_close(pp_pool_t *pool, bool terminate) {
    pp__remote_t *r = pool->remote;
    if (!r)
        return;
    pthread_mutex_lock(&hub.lock);
    pthread_mutex_lock(&pool->lock);
    r->closed = true;
    pthread_mutex_unlock(&pool->lock);
    unregister_locked(r, terminate);
    pthread_mutex_unlock(&hub.lock);
}

void pp__mpi_remote_free(pp_pool_t *pool) {
    pp__remote_t *r = pool->remote;
    if (!r)
        return;
    for (int i = 0; i < r->nagents; i++)
        pp__wbuf_free(&r->ag[i].batch);
    for (uint32_t i = 0; i < r->nslots; i++)
        free(r->slot[i].argcopy);
    free(r->ag);
    free(r->slot);
    free(r);
    pool->remote = NULL;
}
