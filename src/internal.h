/*
 * internal.h - the parent's engine: declarations shared by the subsystems
 * that run in the program's own process (pool, dispatch, futures, maps,
 * supervisor, zygote control, shared memory, trace, the MPI hook).
 *
 * DESIGN: the headers follow the process boundary. wire.h holds what
 * crosses it (control block, record layouts, claim words, boot and zygote
 * messages); worker.h the worker's side (task loop, pp_buf_t, arena
 * writes, function naming); sys.h OS helpers for every process; this one
 * the parent's state, which includes all three. Code that runs only in a
 * worker (worker.c, buf.c) and the pure decoders (decode.c) never include
 * it, so the compiler keeps them off the parent's state.
 *
 * The parent owns a pp_pool (pool.c) with one pp__worker per worker slot.
 * Each worker incarnation gets a fresh channel (channel.c): a control
 * block, a task ring written by the parent and a result ring written by the
 * worker, in two memfds that only that worker and the parent map. Futures
 * (future.c) are completed by whichever parent thread drains a result ring
 * (the drain lock); the supervisor thread (supervise.c) handles deaths,
 * respawns via the zygote (zygote.c) and lifecycle; done-callbacks run on
 * a thread of their own. Nothing in this header is exported.
 */
#ifndef PP_INTERNAL_H
#define PP_INTERNAL_H

#include "procpool.h"
#include "sys.h"
#include "wire.h"
#include "worker.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* ------------------------------------------------------------------ */
/* channel.c: the parent's side of one worker's transport (wire.h)     */
/* ------------------------------------------------------------------ */
/* The parent's view of one channel. */
typedef struct pp__chan {
    pp__ctrl_t *ctrl;    /* ctrl + result ring mapping */
    unsigned char *res;  /* result ring */
    unsigned char *task; /* task ring (RW in the parent) */
    size_t ctrl_map_len;
    int ctrl_fd;       /* memfd: ctrl + result ring (closed once the worker has it) */
    int task_fd;       /* memfd: task ring */
    int task_ro_fd;    /* read-only reopen of task_fd, for the worker */
    int sock;          /* parent end of the SEQPACKET pair (memfds travel here) */
    int peer_sock;     /* worker end, closed once the worker has it */
    int evfd;          /* eventfd the worker writes when parent_sleeping */
    uint64_t head;     /* parent's private copy of task_head */
    uint64_t tail;     /* task ring bytes freed (end of last completed record) */
    uint64_t res_tail; /* parent's private copy of res_tail */
} pp__chan_t;

int pp__chan_create(pp__chan_t *c);
void pp__chan_destroy(pp__chan_t *c);
void pp__chan_close_worker_fds(pp__chan_t *c);
/* Room for a task with arg_len bytes inline (or as memfd)? Returns the record size or 0. */
size_t pp__chan_task_room(const pp__chan_t *c, size_t arg_len, bool byref);
/* Write one task record (caller checked room); returns the record end offset. */
uint64_t pp__chan_push_task(pp__chan_t *c, const pp__task_hdr_t *h, const void *arg, bool byref);
void pp__chan_publish(pp__chan_t *c);
/* Copy out the validated next result header; 1 got one, 0 none, <0 protocol error. */
int pp__chan_peek_result(pp__chan_t *c, pp__res_hdr_t *h, const unsigned char **body);
void pp__chan_consume_result(pp__chan_t *c, const pp__res_hdr_t *h);
void pp__chan_release_results(pp__chan_t *c);
bool pp__chan_has_result(const pp__chan_t *c);

typedef struct pp__job pp__job_t;
typedef struct pp__shm pp__shm_t;
typedef struct pp__task pp__task_t;

/* ------------------------------------------------------------------ */
/* future.c                                                            */
/* ------------------------------------------------------------------ */
enum { PP__FS_DONE = 1u, PP__FS_CB = 2u, PP__FS_CLAIM = 4u, PP__FS_Q = 8u };
/* Where a task is, as far as cancel needs to know (pool lock). */
enum { PP__AT_NONE = 0, PP__AT_PENDING, PP__AT_RING, PP__AT_REMOTE };
enum { PP__DATA_NONE = 0, PP__DATA_INLINE, PP__DATA_MALLOC, PP__DATA_MMAP, PP__DATA_ARENA };

#define PP__SMALL_RESULT 48

struct pp_future {
    _Atomic uint32_t state; /* PP__FS_* bits; futex word of waiters */
    _Atomic uint32_t waiters;
    _Atomic int refs; /* user + in-flight/callback */
    int err;
    int task_status;
    int data_kind;
    char *msg;
    void *data;
    size_t len;
    size_t map_len;
    pp__arena_t *arena; /* PP__DATA_ARENA: whose pages data is */
    pp_done_fn cb;
    void *cb_arg;
    pp_pool_t *pool;     /* kept alive by pool->refs until freed */
    pp__job_t *job;      /* map_async: the job feeding this future (pool lock) */
    bool is_map;         /* set at creation: free must cancel the job */
    uint64_t run_ns;     /* how long the worker ran the task (0: unknown) */
    uint64_t start_ns;   /* when the worker began it (its stamp; 0: unknown) */
    int64_t lost_k;      /* a raw chunk whose worker died: the item it was running, */
    uint64_t lost_fails; /* and how many items before it had failed (MPI agents) */
    uint64_t remote_id;  /* MPI agent: the id rank 0 gave the task */
    _Atomic size_t prog_done, prog_total;
    pp_future_t *next; /* callback queue link */
    /* where the task is (pool lock): its pending node, or its worker slot and seq */
    int where;        /* PP__AT_* */
    pp__task_t *node; /* PP__AT_PENDING */
    int wi;           /* PP__AT_RING: worker slot index */
    uint64_t wseq;    /* PP__AT_RING: its sequence number there */
    /* completion queue membership (queue.c's lock) */
    pp_queue_t *queue;
    pp_future_t *q_prev, *q_next;
    bool q_done;
    _Alignas(16) unsigned char small[PP__SMALL_RESULT]; /* aligned as malloc's results are */
};

pp_future_t *pp__future_new(pp_pool_t *pool);
/* Complete f (data ownership moves to f); queue the callback; drop the in-flight ref. */
void pp__future_complete(pp_future_t *f, int err, int task_status, char *msg);
void pp__future_unref(pp_future_t *f);
void pp__future_set_fail(pp_future_t *f, int err, const char *fmt, ...) PP_PRINTF(3, 4);
/* queue.c: f, which has the Q bit, is done: move it to its queue's done list */
void pp__queue_deliver(pp_future_t *f);
/* f has the Q bit: set DONE and deliver it under the queue lock; returns the old state */
uint32_t pp__queue_done(pp_future_t *f);
void pp__queue_detach(pp_future_t *f); /* pp_future_free: take f out of its queue */
extern _Atomic uint32_t pp__wait_seq;  /* bumped per completion while pp_wait sleeps */
extern _Atomic uint32_t pp__wait_sleepers;
static inline void pp__stat_add(_Atomic unsigned long long *c, unsigned long long n) {
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}
/* Count n map items or tasks done with err (0, PP_ECANCELED, other). */
void pp__stat_done(pp_pool_t *pool, int err, unsigned long long n);
/* n map items done (counted by set_progress) failed with err */
void pp__stat_item_bad(pp_pool_t *pool, int err, unsigned long long n);

/* ------------------------------------------------------------------ */
/* pool.c / supervise.c                                                 */
/* ------------------------------------------------------------------ */
enum { PP__W_EMPTY = 0, PP__W_STARTING, PP__W_READY, PP__W_RETIRING, PP__W_DEAD };

/* One task the parent knows about: pending in the pool queue, or in flight
 * on a worker (slot of its in-flight ring). */
typedef struct pp__task {
    pp_future_t *f; /* a single task's future, or NULL for a chunk */
    pp__job_t *job; /* a chunk of this map job */
    size_t lo, n;   /* chunk: items [lo, lo+n) */
    void *blob;     /* chunk of fed items: its packed bytes (owned) */
    uint32_t flags; /* PP__F_CHUNK, PP__F_VAR, PP__F_REF, PP__F_RESREF */
    size_t item_size;
    void *res_addr; /* PP__F_RESREF */
    size_t res_size;
    pp_task_fn fn;
    void *arg; /* pending: malloc'd copy (NULL for memfd args); PP__F_REF: the
                           address in shared memory (not owned), pending or in flight */
    size_t arg_len;
    int argfd;          /* memfd holding a large arg, or -1 */
    bool big;           /* the arg travels as a memfd: argfd, or one made when it is sent */
    uint64_t seq;       /* in flight: per-worker sequence number */
    uint64_t rec_off;   /* in flight: record start in the task ring */
    uint64_t rec_end;   /* in flight: record end */
    uint64_t start_ns;  /* in flight: when the worker began it (0: not seen) */
    unsigned tries;     /* times it already ran on a worker that died (opt.retries) */
    int retries;        /* this task's retries; -1: the pool's opt.retries */
    int64_t timeout_ns; /* this task's timeout: 0 the pool's, < 0 none */
    uint64_t item_seen; /* chunk: item index (+1) whose start start_ns is */
    struct pp__task *next, *prev; /* pending queue links */
} pp__task_t;

typedef struct pp__worker {
    int state;
    int index;
    pid_t pid;
    int pidfd;
    bool from_zygote;
    bool exited;             /* pidfd fired or zygote reported */
    uint64_t exited_ns;      /* when a zygote child's pidfd fired (its DIED report is due) */
    bool broken;             /* broke the protocol: killed, being replaced */
    bool timed_out;          /* killed for running past task_timeout */
    uint64_t kill_at;        /* timed out: SIGKILL at this time if still alive */
    uint64_t timeout_ns;     /* timed out: the limit it ran past */
    bool timeout_own;        /* that limit was the task's own (pp_submit) */
    unsigned memfd_inflight; /* large args whose fd sits in the socket */
    bool have_status;
    int wait_code, wait_status; /* siginfo si_code / si_status */
    int spawn_err;              /* pid -1: the zygote's fork failed with this -errno */
    uint64_t born_ns;
    unsigned dispatched; /* tasks given to this incarnation */
    unsigned completed;
    pp__chan_t chan;
    uint64_t seq_next, seq_done; /* in-flight tasks are [seq_done, seq_next) */
    pp__task_t *inflight;        /* ring of PP__INFLIGHT_MAX */
    unsigned early_deaths;       /* consecutive deaths before any task finished */
    pp__arena_t arena;           /* this slot's result pages in shared memory (all incarnations) */
    uint64_t respawn_at;         /* throttle: not before this time */
    uint64_t progress_ns;        /* when it last finished a record, or got one while empty */
    bool stalled;                /* records were taken back from it: none are given to it until
                              it finishes one */
    unsigned incarnations;       /* processes this slot has had (a trace marks respawns) */
} pp__worker_t;

typedef struct pp__remote pp__remote_t;
typedef struct pp__trace pp__trace_t;

struct pp_pool {
    pp_options_t opt;
    int nworkers;         /* local worker slots (0 for an MPI pool) */
    int size;             /* workers in all: pp_pool_size */
    pp__remote_t *remote; /* MPI pools: the backend (src/mpi/remote.c); else NULL */
    pp__worker_t *workers;

    pthread_mutex_t lock; /* everything below, and consuming the result rings */
    pthread_cond_t cond;  /* lifecycle changes (supervisor -> callers) */

    pp__task_t *pend_head, *pend_tail;
    pp__job_t *jobs; /* map jobs with chunks still to send */
    size_t npending;
    size_t inflight_total; /* futures not yet completed (pending + in flight) */

    bool closed, terminating, joining, finished, thread_joined, torn_down;
    bool all_parked; /* every slot keeps dying at start-up: no worker is left */
    bool supervisor_exited;

    pthread_t supervisor;
    int ctl_evfd;                   /* kicks the supervisor */
    _Atomic uint32_t drainers;      /* threads spinning in pp_future_wait, draining results */
    _Atomic uint32_t sup_passive;   /* supervisor left the channels unarmed for them */
    _Atomic uint32_t sup_unbounded; /* supervisor sleeps with no deadline to watch */
    _Atomic uint64_t burst_ns;      /* a thread was submitting a burst (and draining) then */
    int death_pipe[2];              /* workers and zygote hold [0]; parent holds [1] */
    pid_t zygote_pid;
    int zygote_pidfd;
    int zygote_sock;
    pid_t parent_pid;
    unsigned fork_gen; /* pp__fork_generation() at creation */
    bool forgotten;    /* (a child's copy) its fds and mappings are dropped already */
    int create_err;
    bool created;

    /* callbacks to run on the supervisor thread */
    pthread_mutex_t cb_lock; /* the callback queue and its thread */
    pthread_cond_t cb_cond;
    pp_future_t *cb_head, *cb_tail;
    int cb_running;
    bool cb_exit, cb_started;
    pthread_t cb_thread;

    pp__shm_t *shm;           /* pp_shm_alloc's range (shm.c) */
    _Atomic size_t shm_users; /* futures holding arena pages: keep the range mapped */
    _Atomic uint64_t avg_ns;  /* smoothed task run time */
    _Atomic int refs;         /* handle + every unfreed future */
    bool task_timeouts;       /* a task with its own timeout was submitted (lock) */
    /* pp_pool_stats */
    _Atomic unsigned long long st_submitted, st_completed, st_failed, st_cancelled;
    _Atomic unsigned long long st_deaths, st_respawns, st_timeouts;
    _Atomic unsigned long long st_item_done, st_item_bad; /* map items done; of which failed */
    struct pp_pool *reg_next;  /* registry of live pools (for fork hygiene) */
    pp__trace_t *trace;        /* the timeline file (trace.c), or NULL: tracing off */
    int trace_pid;             /* this pool's process group in it */
    uint64_t trace_counter_ns; /* when the queue counters were last written (trace lock) */
};

/* trace.c: the timeline (docs/tracing.md). Calls other than open/close only
 * where pool->trace is set. */
typedef struct pp__trace_span {
    const pp__task_t *task; /* the record: function, sizes, chunk */
    int lane;               /* worker slot */
    pid_t worker_pid;
    uint64_t start_ns, run_ns;
    const char *outcome; /* "ok", "PP_ETASK", ... */
    size_t result_size;
    int sig; /* PP_EWORKER: the signal that killed the worker, or 0 */
} pp__trace_span_t;
/* Open (or join) the file of opt.trace_file or $PROCPOOL_TRACE; 0 when
 * neither is set or only the environment's could not be opened (a warning). */
int pp__trace_open(pp_pool_t *pool);
void pp__trace_close(pp_pool_t *pool);
void pp__trace_span(pp_pool_t *pool, const pp__trace_span_t *sp);
/* An instant event in lane (-1: the whole pool) with one argument key:
 * sval, or ival when sval is NULL (key NULL: none). */
void pp__trace_instant(pp_pool_t *pool, int lane, const char *name, pid_t worker_pid,
                       const char *key, const char *sval, long ival);
void pp__trace_death(pp_pool_t *pool, const pp__worker_t *w, bool died, const char *why);
/* Name a lane (MPI pools: one per remote worker). */
void pp__trace_lane(pp_pool_t *pool, int lane, const char *name);
/* This process never traces (an MPI agent: rank 0 writes the timeline). */
void pp__trace_disable(void);

/* pool.c */
void pp__pool_unref(pp_pool_t *pool);
void pp__smooth(pp_pool_t *pool, uint64_t ns);
/* Submit a task (t: fn, flags, n, item_size, res_size) with a fresh future;
 * the MPI agent submits raw chunks this way. */
int pp__submit(pp_pool_t *pool, const pp__task_t *t, const void *arg, pp_future_t **future);
/* The same with a done-callback set before the task can finish; future
 * NULL: fire-and-forget (the future is freed once done and called back). */
int pp__submit_cb(pp_pool_t *pool, const pp__task_t *t, const void *arg, pp_done_fn cb,
                  void *userdata, pp_future_t **future);
int pp__pool_dispatch_locked(pp_pool_t *pool);
void pp__pool_wake_supervisor(pp_pool_t *pool);
bool pp__fn_ok(const pp_pool_t *pool, pp_task_fn fn);
int pp__drain(pp_pool_t *pool, bool block);
int pp__drain_worker(pp_pool_t *pool, pp__worker_t *w);
int pp__requeue(pp_pool_t *pool, pp__worker_t *w, pp__task_t *s, unsigned tries);
int pp__worker_depth(const pp_pool_t *pool);
/* Work-conserving dispatch: while a worker idles, take back the records
 * another has not started because a task ahead of them runs long, and
 * send them again. Returns ms until it should look again, or -1. Lock held. */
int64_t pp__steal_locked(pp_pool_t *pool, uint64_t now);
/* MPI: an agent gives back what its local pool has not started; rank 0
 * queues a task that came back again (see pool.c). */
int pp__pool_give_back(pp_pool_t *pool, int err);
int pp__pool_requeue_arg(pp_pool_t *pool, const pp__task_t *t, const void *arg);
/* Take pending node t out of the queue (pp_future_cancel). Lock held. */
void pp__pend_unlink(pp_pool_t *pool, pp__task_t *t);

/* map.c */
/* Result data of one record, wherever it lives. */
typedef struct pp__view {
    const unsigned char *p;
    size_t len;
    void *map; /* a read-only mapping of the worker's memfd, or NULL */
    size_t map_len;
    pp__arena_t *arena; /* p is a run of this arena (to free unless taken) */
} pp__view_t;
int pp__jobs_dispatch_locked(pp_pool_t *pool);
/* A chunk finished (status 0: per-item results in v); steals v->map if it keeps it. */
void pp__job_chunk_done(pp_pool_t *pool, pp__task_t *s, pp__view_t *v, int status, uint64_t run_ns);
/* The worker running chunk s died (err) at item k, or never started it (k == -1),
 * or the whole chunk fails with err (k == -2). fails: items before k that had
 * failed (their reports died with the worker). */
void pp__job_chunk_lost(pp_pool_t *pool, pp__task_t *s, long k, int err, const char *why,
                        uint64_t fails);
void pp__job_cancel_locked(pp_pool_t *pool, pp__job_t *job);
void pp__jobs_cancel_all(pp_pool_t *pool, const char *why);
void pp__jobs_fail_unsent(pp_pool_t *pool, int err, const char *why);
bool pp__future_cancel_job(pp_future_t *f); /* true: it was running and is now cancelled */
/* place() from pool.c, for chunks */
/* *err < 0: the argument cannot be put in a memfd, the task must fail */
bool pp__place(pp_pool_t *pool, pp__task_t *t, const void *arg, int *err);

/* supervise.c */
bool pp__on_supervisor(
    const pp_pool_t *pool); /* is the caller pool's supervisor or callback thread? */
void pp__worker_signal(pp_pool_t *pool, pp__worker_t *w, int sig); /* lock held */
void *pp__callback_main(void *arg);
void *pp__supervisor_main(void *arg);
void pp__queue_callback(pp_pool_t *pool, pp_future_t *f);

/* registry.c: live pools, so that forked children drop what is not theirs */
void pp__fork_lock(void);
void pp__fork_unlock(void);
void pp__registry_add(pp_pool_t *pool);
void pp__registry_remove(pp_pool_t *pool);
/* In a freshly forked child: close every library fd and unmap every channel
 * except the fds in keep[0..nkeep). Called with the fork lock "held". */
void pp__child_forget_all(const int *keep, int nkeep, const pp_pool_t *own);
void pp__child_reset_registry(void);
unsigned pp__fork_generation(void);
bool pp__pool_foreign(const pp_pool_t *pool); /* created by an ancestor of this process? */
void pp__pool_forget_foreign(pp_pool_t *pool);

/* shm.c */
int pp__shm_create(pp_pool_t *pool);
void pp__shm_destroy(pp_pool_t *pool);
void pp__shm_forget(pp__shm_t *s, const int *keep, int nkeep);
int pp__shm_fd(const pp__shm_t *s);
void *pp__shm_base(const pp__shm_t *s);
size_t pp__shm_size(const pp__shm_t *s);

/* spawn.c (function naming: fnaddr.c, worker.h) */
int pp__spawn_check(const pp_options_t *opt);
int pp__spawn_worker(pp_pool_t *pool, pp__worker_t *w);
/* supervise.c: pid, a child of this process, is now slot w's worker. */
void pp__worker_adopt(pp__worker_t *w, pid_t pid);
bool pp__shm_has(const pp_pool_t *pool, const void *p, size_t len);

/* arena.c (the worker's calls: worker.h) */
void pp__arenas_create(pp_pool_t *pool);
void pp__arena_release(pp_pool_t *pool, pp__arena_t *a, const void *p, size_t len);
void pp__arena_reclaim(pp__worker_t *w);

/* zygote.c (its messages: wire.h) */
int pp__zygote_start(pp_pool_t *pool);
int pp__zygote_request(pp_pool_t *pool, pp__worker_t *w);
int pp__zygote_kill(pp_pool_t *pool, pid_t pid, int sig); /* KILL {pid, status: sig} */
void pp__zygote_stop(pp_pool_t *pool);

/* ------------------------------------------------------------------ */
/* The MPI backend (src/mpi/; stubs in src/mpi/off.c without MPI).      */
/* Rank 0 side, called by the pool with the meaning given.             */
/* ------------------------------------------------------------------ */
#define PP__REMOTE_MAX_ARG                                                                         \
    (((size_t)1 << 30) - ((size_t)8 << 20)) /* an MPI pool's largest argument */
bool pp__mpi_default(void);                 /* PROCPOOL_BACKEND=mpi at start-up */
int pp__remote_open(pp_pool_t *pool);       /* attach agents; sets pool->remote, pool->size */
bool pp__remote_place(pp_pool_t *pool, pp__task_t *t, const void *arg, int *err); /* lock held */
bool pp__remote_room(pp_pool_t *pool);   /* lock held: could a record be placed now? */
void pp__remote_cancel(pp_pool_t *pool); /* lock held: fail everything in flight */
void pp__remote_close(pp_pool_t *pool, bool terminate); /* pool finished; no lock */
void pp__remote_free(pp_pool_t *pool);

#endif
