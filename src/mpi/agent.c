/*
 * agent.c - a node agent: every MPI rank but 0, from the core's
 * constructor (src/backend.c, then pp__mpi_start in comm.c) to _exit;
 * main() never runs here.
 *
 * DESIGN: the agent is a thin relay in front of ordinary local pools. For
 * each OPEN from rank 0 it creates a local pool (backend LOCAL) with the
 * options rank 0 sent: workers, start method, initializer and initarg
 * (named by build id and offset, as under the spawn start method),
 * task_timeout, max_tasks_per_child, retries, max_memory_per_child. A TASKS
 * message is a batch of records; each becomes one submission to that local
 * pool: a single task through the normal path, a map chunk as a "raw
 * chunk" (pp__submit with PP__F_CHUNK and no map job here), which a local
 * worker runs exactly as it would run a chunk of a local pp_map, producing
 * the same per-item result bytes that rank 0's map job then consumes. So a
 * task that crashes kills a local worker process, never this rank (a dead
 * rank would end the whole MPI job); the local supervisor notices, and the
 * outcome (PP_EWORKER with the signal, PP_ETASKTIMEOUT, and for a chunk
 * the item that was running) travels back like any result.
 *
 * Threads: the agent's own thread (the one that ran the constructor) is the
 * only one that calls MPI. Completions arrive on the local pools' callback
 * threads, which append a result record to the pool's outgoing batch under
 * ag.lock and kick the agent's thread; results go back in batches as they
 * finish, never held for a whole message of tasks. The agent thread never
 * holds ag.lock while it submits or destroys a pool (callbacks need it).
 */
#include "mpi_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RESULTS_MAX ((size_t)64 << 20) /* a batch of results this big is closed */

typedef struct ready {
    void *buf;
    size_t len;
    struct ready *next;
} ready_t;

typedef struct apool {
    uint32_t id;
    pp_pool_t *pool;
    pp__wbuf_t out; /* results not yet sent (ag.lock) */
    ready_t *full;  /* closed batches, oldest first (ag.lock) */
    size_t busy;    /* tasks submitted, result not yet queued (ag.lock) */
    struct apool *next;
} apool_t;

/* Results that found no memory even to be queued as a failure: their ids,
 * kept here (no allocation) for the communication thread to send, from
 * its stack, as -ENOMEM. Past LOST_MAX they are only logged. */
#define LOST_MAX 256

static struct {
    pthread_mutex_t lock;
    apool_t *pools;
    struct {
        uint32_t pool;
        uint64_t id;
    } lost[LOST_MAX];
    size_t nlost;
} ag = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* ---------------------------------------------------------------- */
/* results                                                           */
/* ---------------------------------------------------------------- */

/* Queue one result record for rank 0 (any thread). */
static void queue_result(apool_t *ap, pp__mres_t *m, const char *msg, const void *data) {
    m->msg_len = msg ? (uint32_t)strnlen(msg, 1024) : 0;
    if (m->data_len > PP__MPI_MAX_MSG - 65536) {
        m->err = -EOVERFLOW;
        m->status = -EOVERFLOW;
        m->data_len = 0;
        msg = "the result is too large for one MPI message (1 GiB)";
        m->msg_len = (uint32_t)strlen(msg);
    }
    pthread_mutex_lock(&ag.lock);
    size_t need = PP__ALIGN8(sizeof *m) + PP__ALIGN8(m->msg_len) + PP__ALIGN8(m->data_len);
    if (ap->out.len && ap->out.len + need > RESULTS_MAX) {
        /* close this batch: messages stay far below MPI's int count */
        ready_t *r = malloc(sizeof *r), **tail = &ap->full;
        if (r) {
            r->buf = pp__wbuf_take(&ap->out, &r->len);
            r->next = NULL;
            while (*tail)
                tail = &(*tail)->next;
            *tail = r;
        }
    }
    bool was_empty = ap->out.len == 0;
    if (!pp__wbuf_record(&ap->out, PP__M_RESULTS, ap->id, m, sizeof *m, msg, m->msg_len, data,
                         (size_t)m->data_len)) {
        /* no memory for the data: send the failure alone */
        m->err = -ENOMEM;
        m->status = -ENOMEM;
        m->data_len = 0;
        m->msg_len = 0;
        if (!pp__wbuf_record(&ap->out, PP__M_RESULTS, ap->id, m, sizeof *m, NULL, 0, NULL, 0)) {
            if (ag.nlost < LOST_MAX) {
                ag.lost[ag.nlost].pool = ap->id;
                ag.lost[ag.nlost++].id = m->id;
                was_empty = true; /* kick the communication thread */
            } else {
                fprintf(stderr, "procpool agent %d: out of memory, a result is lost\n",
                        pp__mpi.rank);
            }
        }
    }
    ap->busy--;
    pthread_mutex_unlock(&ag.lock);
    if (was_empty)
        pp__comm_kick();
}

static void on_done(pp_future_t *f, void *ud) {
    apool_t *ap = ud;
    pp__mres_t m = {.id = f->remote_id,
                    .err = f->err,
                    .status = f->err ? f->task_status : 0,
                    .run_ns = f->run_ns,
                    .start_ns = f->start_ns,
                    .worker = f->wi >= 0 ? (uint32_t)f->wi : 0,
                    .lost_k = f->lost_k,
                    .lost_fails = f->lost_fails};
    const void *data = NULL;
    if (f->err == 0) {
        data = f->data ? f->data : (const void *)f->small;
        m.data_len = f->len;
    }
    queue_result(ap, &m, f->err ? pp_future_error(f) : NULL, data);
    pp_future_free(f);
}

/* A record that could not be submitted (already counted busy). */
static void fail_now(apool_t *ap, uint64_t id, int err, const char *msg) {
    pp__mres_t m = {.id = id, .err = err, .status = err == PP_ETASK ? -1 : err, .lost_k = -1};
    queue_result(ap, &m, msg, NULL);
}

/* ---------------------------------------------------------------- */
/* messages from rank 0                                              */
/* ---------------------------------------------------------------- */

static apool_t *find(uint32_t id) {
    apool_t *ap = ag.pools;
    while (ap && ap->id != id)
        ap = ap->next;
    return ap;
}

/* The answer to an OPEN: rank 0's pp_pool_create waits for it. Small, so
 * when it cannot be queued (no memory) it goes by a blocking send from the
 * stack instead: an unanswered OPEN would hold create for its timeout. */
static void reply_opened(uint32_t id, int workers, int err) {
    struct opened_msg {
        pp__mhdr_t h;
        pp__mopened_t o;
    } m = {{.type = PP__M_OPENED, .pool = id, .count = 1},
           {.workers = workers, .err = err, .clock_ns = pp__now_ns(), .boot = pp__mpi_boot_id()}};
    struct opened_msg *msg = malloc(sizeof *msg);
    if (msg) {
        *msg = m;
        if (pp__comm_send(0, msg, sizeof *msg) == 0)
            return;
        free(msg);
    }
    pp__comm_send_now(0, &m, sizeof m);
}

static void do_open(uint32_t id, const unsigned char *p, const unsigned char *end) {
    pp__mopen_t o;
    if ((size_t)(end - p) < sizeof o)
        return;
    memcpy(&o, p, sizeof o);
    pp_options_t opt;
    pp_options_init(&opt);
    opt.backend = PP_BACKEND_LOCAL;
    opt.processes = o.processes;
    opt.start_method = (pp_start_t)o.start_method;
    opt.max_tasks_per_child = o.max_tasks;
    opt.retries = o.retries;
    opt.task_timeout = o.task_timeout;
    opt.max_memory_per_child = (size_t)o.max_memory;
    opt.shm_size = (size_t)o.shm_size;
    int err = 0;
    if (o.init_key &&
        !(opt.initializer = (void (*)(void *))(uintptr_t)pp__addr_decode(o.init_key, o.init_off)))
        err = -EINVAL; /* not the same binary */
    if (o.arg_key && !(opt.initarg = pp__addr_decode(o.arg_key, o.arg_off)))
        err = -EINVAL;
    apool_t *ap = calloc(1, sizeof *ap);
    if (!ap)
        err = -ENOMEM;
    if (!err)
        err = pp_pool_create(&ap->pool, &opt);
    if (err) {
        free(ap);
        reply_opened(id, 0, err);
        return;
    }
    ap->id = id;
    pthread_mutex_lock(&ag.lock);
    ap->next = ag.pools;
    ag.pools = ap;
    pthread_mutex_unlock(&ag.lock);
    reply_opened(id, pp_pool_size(ap->pool), 0);
}

static void do_tasks(uint32_t id, uint64_t count, const unsigned char *p,
                     const unsigned char *end) {
    apool_t *ap = find(id);
    if (!ap)
        return; /* ended meanwhile */
    for (uint64_t i = 0; i < count; i++) {
        pp__mtask_t m;
        if ((size_t)(end - p) < sizeof m)
            return;
        memcpy(&m, p, sizeof m);
        size_t need = PP__ALIGN8(sizeof m) + PP__ALIGN8(m.arg_len);
        if (m.arg_len > PP__MPI_MAX_MSG || need > (size_t)(end - p))
            return;
        const unsigned char *arg = p + PP__ALIGN8(sizeof m);
        p += need;
        pthread_mutex_lock(&ag.lock);
        ap->busy++; /* until its result is queued, whichever way below */
        pthread_mutex_unlock(&ag.lock);
        pp_task_fn fn = (pp_task_fn)(uintptr_t)pp__addr_decode(m.fn_key, m.fn_off);
        if (!fn) {
            char why[160];
            snprintf(why, sizeof why,
                     "no object with build id %016llx on MPI rank %d: every rank must run the "
                     "same binary",
                     (unsigned long long)m.fn_key, pp__mpi.rank);
            fail_now(ap, m.id, PP_ETASK, why);
            continue;
        }
        pp__task_t t = {.fn = fn,
                        .arg_len = (size_t)m.arg_len,
                        .argfd = -1,
                        .retries = -1, /* the agent pool's own setting */
                        .flags = m.flags & (PP__F_CHUNK | PP__F_VAR),
                        .n = (size_t)m.nitems,
                        .item_size = (size_t)m.item_size,
                        .res_size = (size_t)m.res_size};
        pp_future_t *f;
        int err = pp__submit(ap->pool, &t, m.arg_len ? arg : NULL, &f);
        if (err) {
            fail_now(ap, m.id, err, NULL);
            continue;
        }
        f->remote_id = m.id;
        pp_future_on_done(f, on_done, ap);
    }
}

/* Rank 0 has an idle agent: what our local pool has not started goes
 * back (each future completes PP__EGIVENBACK; on_done sends that). */
static void give_back(uint32_t id) {
    pthread_mutex_lock(&ag.lock);
    apool_t *ap = find(id);
    pp_pool_t *pool = ap ? ap->pool : NULL;
    pthread_mutex_unlock(&ag.lock);
    if (pool) /* only this thread ends pools: it stays valid */
        pp__pool_give_back(pool, PP__EGIVENBACK);
}

static void do_end(uint32_t id, bool terminate) {
    pthread_mutex_lock(&ag.lock);
    apool_t **pp = &ag.pools;
    while (*pp && (*pp)->id != id)
        pp = &(*pp)->next;
    apool_t *ap = *pp;
    if (ap)
        *pp = ap->next;
    pthread_mutex_unlock(&ag.lock);
    if (!ap)
        return;
    if (!terminate) {
        pp_pool_close(ap->pool);
        pp_pool_join(ap->pool);
    }
    pp_pool_destroy(ap->pool); /* terminates if still running; callbacks have all run after */
    pp__wbuf_free(&ap->out);   /* rank 0 no longer wants these */
    while (ap->full) {
        ready_t *r = ap->full;
        ap->full = r->next;
        free(r->buf);
        free(r);
    }
    free(ap);
}

/* ---------------------------------------------------------------- */
/* the loop                                                          */
/* ---------------------------------------------------------------- */

/* A batch goes out asynchronously; when that cannot be tracked (no memory
 * for the send's record) it goes by a blocking send instead: rank 0 never
 * blocks on a send to an agent, so this cannot deadlock, and a batch
 * dropped would leave its tasks pending in rank 0 for ever. */
static void send_batch(void *buf, size_t len) {
    if (pp__comm_send(0, buf, len) < 0) {
        pp__comm_send_now(0, buf, len);
        free(buf);
    }
}

static int send_results(void) {
    int n = 0;
    pthread_mutex_lock(&ag.lock);
    for (size_t i = 0; i < ag.nlost; i++, n++) {
        struct {
            pp__mhdr_t h;
            pp__mres_t r;
        } msg = {{.type = PP__M_RESULTS, .pool = ag.lost[i].pool, .count = 1},
                 {.id = ag.lost[i].id, .err = -ENOMEM, .status = -ENOMEM, .lost_k = -1}};
        pp__comm_send_now(0, &msg, sizeof msg);
    }
    ag.nlost = 0;
    for (apool_t *ap = ag.pools; ap; ap = ap->next) {
        while (ap->full) {
            ready_t *r = ap->full;
            ap->full = r->next;
            send_batch(r->buf, r->len);
            free(r);
            n++;
        }
        if (!ap->out.len)
            continue;
        size_t len;
        void *buf = pp__wbuf_take(&ap->out, &len);
        send_batch(buf, len);
        n++;
    }
    pthread_mutex_unlock(&ag.lock);
    return n;
}

static bool any_busy(void) {
    pthread_mutex_lock(&ag.lock);
    bool busy = false;
    for (apool_t *ap = ag.pools; ap && !busy; ap = ap->next)
        busy = ap->busy > 0;
    pthread_mutex_unlock(&ag.lock);
    return busy;
}

/* A message from rank 0 had no memory to land in for a second and was
 * dropped but for its header (comm.c). What it asked is known, so each is
 * answered without allocating (a blocking send from the stack): an OPEN
 * fails -ENOMEM; a lost TASKS batch is reported (rank 0 fails every record
 * of that pool it has out here); END and SHUTDOWN need no body. Returns
 * true for SHUTDOWN. */
static bool lost_message(const pp__mhdr_t *h) {
    if (h->type == PP__M_OPEN) {
        struct {
            pp__mhdr_t h;
            pp__mopened_t o;
        } msg = {{.type = PP__M_OPENED, .pool = h->pool, .count = 1},
                 {.workers = 0, .err = -ENOMEM}};
        pp__comm_send_now(0, &msg, sizeof msg);
    } else if (h->type == PP__M_TASKS) {
        pp__mhdr_t m = {.type = PP__M_LOST, .pool = h->pool};
        pp__comm_send_now(0, &m, sizeof m);
    } else if (h->type == PP__M_END) {
        do_end(h->pool, h->count != 0);
    }
    return h->type == PP__M_SHUTDOWN;
}

void pp__agent_main(void) {
    bool shutdown = false;
    pp__trace_disable(); /* PROCPOOL_TRACE reaches the agents too: rank 0 writes the file */
    while (!shutdown) {
        int work = send_results();
        work += pp__comm_test_sends();
        for (int i = 0; i < 64 && !shutdown; i++) {
            void *buf;
            size_t len;
            int src;
            pp__mhdr_t lost;
            int got = pp__comm_recv(&buf, &len, &src, &lost);
            if (got == 0)
                break;
            work++;
            if (got < 0) {
                shutdown = src == 0 && lost_message(&lost);
                continue;
            }
            pp__mhdr_t h;
            if (src == 0 && len >= sizeof h) {
                memcpy(&h, buf, sizeof h);
                const unsigned char *p = (const unsigned char *)buf + sizeof h;
                const unsigned char *end = (const unsigned char *)buf + len;
                if (h.type == PP__M_OPEN)
                    do_open(h.pool, p, end);
                else if (h.type == PP__M_TASKS)
                    do_tasks(h.pool, h.count, p, end);
                else if (h.type == PP__M_END)
                    do_end(h.pool, h.count != 0);
                else if (h.type == PP__M_GIVEBACK)
                    give_back(h.pool);
                else if (h.type == PP__M_SHUTDOWN)
                    shutdown = true;
            }
            free(buf);
        }
        if (work)
            pp__comm_busy();
        else
            pp__comm_idle(any_busy() || pp__mpi.nsends ? PP__IDLE_SHORT : PP__IDLE_LONG);
    }
    /* rank 0 is exiting: stop every pool, finish the sends, leave */
    while (ag.pools)
        do_end(ag.pools->id, true);
    while (pp__mpi.nsends)
        pp__comm_test_sends();
    MPI_Comm_free(&pp__mpi.comm);
    MPI_Finalize();
    fflush(NULL);
    _exit(0);
}
