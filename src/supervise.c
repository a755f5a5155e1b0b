/*
 * supervise.c - the supervisor thread: starts workers, notices deaths,
 * respawns, and carries out join and terminate. Done-callbacks run on a
 * thread of their own (pp__callback_main, below), never on this one.
 *
 * DESIGN: the thread starts with every signal blocked. Its first act, once
 * its poll set is allocated (if it cannot be, pp_pool_create fails
 * -ENOMEM with nothing started), is to fork the zygote and then (start
 * method fork) the initial workers, or (forkserver) to ask the zygote for
 * them and wait for every answer, so that a fork the zygote could not make
 * fails pp_pool_create with its errno. Doing it here rather than in the
 * thread that called pp_pool_create ties PR_SET_PDEATHSIG to a thread that
 * lives exactly as long as the pool (PDEATHSIG follows the forking
 * *thread*). Replacement workers come from the zygote, never from this
 * multi-threaded process.
 *
 * Then it loops: drain results and refill rings (completed futures with a
 * callback are queued for the callback thread);
 * advance join/terminate; then arm every channel's parent_sleeping flag,
 * re-check the rings, and sleep in poll() on its control eventfd, each
 * channel's eventfd, each worker's pidfd and the zygote's socket.
 *
 * Deaths: a pidfd turning readable (or the zygote's DIED report for its
 * children) means the worker is gone. Where pidfd_open is unavailable or
 * fails, a child of ours is looked at every 50 ms with waitid(P_PID,
 * WNOHANG) instead (that pid only: no SIGCHLD handler, nobody else's
 * child reaped). Its published results are drained first; then
 * tasks_started, clamped to what was really sent (decode.c checks every
 * count, index and time the worker left in its control block, and every
 * zygote report), says whether
 * it was running the task at seq_done: that one fails PP_EWORKER with the
 * exit status or signal, the ones it had not started are requeued at the
 * head of the pending queue (for a worker that broke the protocol: every
 * task after the one whose record broke it), and the slot is refilled
 * from the zygote, with a growing delay if the slot keeps dying before
 * its start-up is done (the worker sets ctrl->booted once the initializer
 * has returned). After EARLY_DEATH_LIMIT such deaths in a row, with no
 * other worker alive past its start-up, start-up is broken: every task
 * and map item waiting for a worker fails PP_EWORKER, and the slot is
 * parked (respawned only while work waits), so no respawn storm goes on.
 *
 * Signals (timeouts, broken workers, terminate) go through the worker's
 * pidfd. Where that fails (no pidfd, or pidfd_send_signal refused by a
 * seccomp profile) pp__worker_signal falls back to kill() on a child of
 * ours, which is safe while it is unreaped, or asks the zygote to signal
 * its own child. Terminate also sets every ring's stop flag.
 *
 * Nothing waits on the zygote without a bound: a zygote child whose pidfd
 * fired is handled (status unknown) if its DIED report has not come within
 * 1 s; a slot waiting for the zygote to fork its process is given no work
 * (pool.c); terminate SIGKILLs the zygote, our unreaped child, 400 ms in if
 * a child of it is still there (PDEATHSIG takes its children), and join,
 * once all work is done, does the same to a zygote that alone has held it
 * up for 1 s.
 */
#include "tuning.h"
#include "internal.h"
#include "decode.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

#define EARLY_DEATH_LIMIT 5 /* this many in a row: start-up is broken */

static __thread const pp_pool_t *current_pool; /* set on a supervisor or callback thread */

bool pp__on_supervisor(const pp_pool_t *pool) { return current_pool == pool; }

/* ---------------------------------------------------------------- */
/* callbacks: their own thread, so user code never runs on the supervisor
 * (a slow or waiting callback must not stop deaths being noticed) */
/* ---------------------------------------------------------------- */

void pp__queue_callback(pp_pool_t *pool, pp_future_t *f) {
    pthread_mutex_lock(&pool->cb_lock);
    f->next = NULL;
    if (pool->cb_tail)
        pool->cb_tail->next = f;
    else
        pool->cb_head = f;
    pool->cb_tail = f;
    pthread_cond_broadcast(&pool->cb_cond);
    pthread_mutex_unlock(&pool->cb_lock);
}

void *pp__callback_main(void *arg) {
    pp_pool_t *pool = arg;
    current_pool = pool;
    prctl(PR_SET_NAME, "procpool-cb");
    pthread_mutex_lock(&pool->cb_lock);
    for (;;) {
        while (!pool->cb_head && !pool->cb_exit)
            pthread_cond_wait(&pool->cb_cond, &pool->cb_lock);
        pp_future_t *f = pool->cb_head;
        if (!f)
            break; /* cb_exit and nothing left */
        pool->cb_head = pool->cb_tail = NULL;
        pool->cb_running = 1;
        pthread_mutex_unlock(&pool->cb_lock);
        while (f) {
            pp_future_t *next = f->next;
            f->cb(f, f->cb_arg);
            pp__future_unref(f); /* the pool's reference, held for the callback */
            f = next;
        }
        pthread_mutex_lock(&pool->cb_lock);
        pool->cb_running = 0;
        pthread_cond_broadcast(&pool->cb_cond);
    }
    pthread_mutex_unlock(&pool->cb_lock);
    return NULL;
}

/* Wait until every queued callback has returned, then let the thread go. */
static void finish_callbacks(pp_pool_t *pool) {
    pthread_mutex_lock(&pool->cb_lock);
    while (pool->cb_started && (pool->cb_head || pool->cb_running))
        pthread_cond_wait(&pool->cb_cond, &pool->cb_lock);
    pool->cb_exit = true;
    pthread_cond_broadcast(&pool->cb_cond);
    pthread_mutex_unlock(&pool->cb_lock);
}

/* ---------------------------------------------------------------- */
/* starting workers                                                  */
/* ---------------------------------------------------------------- */

/* Send sig to worker w. Pool lock held, so w cannot be reaped meanwhile
 * (reaping and emptying the slot happen together under the lock). Through
 * its pidfd when that works; else (no pidfd, or pidfd_send_signal refused)
 * a child of ours by pid, which cannot have been reused while unreaped; a
 * zygote child through the zygote, which checks that it has not reaped it
 * yet. Never a bare pid that may name a stranger. */
void pp__worker_signal(pp_pool_t *pool, pp__worker_t *w, int sig) {
    if (w->state == PP__W_EMPTY || w->pid <= 0)
        return;
    if (pp__pidfd_signal(w->pidfd, sig) == 0)
        return;
    if (w->from_zygote)
        pp__zygote_kill(pool, w->pid, sig);
    else
        pp__signal_child(-1, w->pid, sig);
}

void pp__worker_adopt(pp__worker_t *w, pid_t pid) {
    w->pid = pid;
    w->pidfd = pp__pidfd_open(pid);
    if (w->pidfd < 0)
        w->pidfd = -1;
    w->from_zygote = false;
    w->state = PP__W_READY;
}

static int fork_worker(pp_pool_t *pool, pp__worker_t *w) {
    pid_t pid = fork();
    if (pid == 0) {
        pp__chan_t *c = &w->chan;
        int keep[5] = {c->ctrl_fd, c->task_ro_fd, c->peer_sock, c->evfd, pool->death_pipe[0]};
        pp__boot_t b = {.ctrl_fd = c->ctrl_fd,
                        .task_ro_fd = c->task_ro_fd,
                        .sock = c->peer_sock,
                        .evfd = c->evfd,
                        .death_rd = pool->death_pipe[0],
                        .parent_pid = pool->parent_pid,
                        .initializer = pool->opt.initializer,
                        .initarg = pool->opt.initarg,
                        .max_tasks = pool->opt.max_tasks_per_child,
                        .task_timeout = pool->opt.task_timeout > 0,
                        .max_memory = pool->opt.max_memory_per_child,
                        .arena = w->arena.base,
                        .arena_size = w->arena.size};
        pp__child_forget_all(keep, 5, pool);
        pp__child_reset_registry();
        pp__worker_main(&b);
    }
    if (pid < 0)
        return -errno;
    pp__worker_adopt(w, pid);
    return 0;
}

/* Slot w has a process (pid known): a trace names it, and marks a replacement. */
static void worker_started(pp_pool_t *pool, pp__worker_t *w) {
    if (pool->trace)
        pp__trace_instant(pool, w->index, w->incarnations ? "respawn" : "start", w->pid, NULL, NULL,
                          0);
    w->incarnations++;
}

/* Give slot w a fresh channel and a process. Pool lock held (or pool not
 * yet shared). direct: fork from this thread instead of the zygote. */
static int start_worker(pp_pool_t *pool, pp__worker_t *w, bool direct) {
    pp__fork_lock();
    int err = pp__chan_create(&w->chan);
    if (err < 0) {
        pp__fork_unlock();
        return err;
    }
    w->seq_next = w->seq_done = 0;
    w->dispatched = w->completed = 0;
    w->memfd_inflight = 0;
    w->broken = w->exited = w->have_status = w->timed_out = false;
    w->kill_at = 0;
    w->timeout_ns = 0;
    w->timeout_own = false;
    w->pid = 0;
    w->born_ns = pp__now_ns();
    w->progress_ns = w->born_ns;
    w->stalled = false;
    w->state = PP__W_STARTING;
    if (pool->opt.start_method == PP_START_SPAWN) {
        err = pp__spawn_worker(pool, w); /* a fresh exec, from any thread */
    } else if (!direct && pool->zygote_sock >= 0) {
        err = pp__zygote_request(pool, w); /* -EAGAIN: its socket is full, try later */
        if (err == 0)
            w->from_zygote = true;
    } else {
        /* start-up (fork start method), or the zygote is gone: fork here */
        err = fork_worker(pool, w);
    }
    if (err == 0) {
        pp__chan_close_worker_fds(&w->chan);
        if (w->pid > 0)
            worker_started(pool, w);
    } else {
        pp__chan_destroy(&w->chan);
        w->state = PP__W_EMPTY;
    }
    pp__fork_unlock();
    return err;
}

/* ---------------------------------------------------------------- */
/* deaths                                                            */
/* ---------------------------------------------------------------- */

static void cancel_pending(pp_pool_t *pool) {
    pp__jobs_cancel_all(pool, "the pool was terminated before the task ran");
    while (pool->pend_head) {
        pp__task_t *t = pool->pend_head;
        pool->pend_head = t->next;
        pool->npending--;
        pp__close(&t->argfd);
        pool->inflight_total--;
        pp__future_set_fail(t->f, PP_ECANCELED, "the pool was terminated before the task ran");
        free(t);
    }
    pool->pend_tail = NULL;
}

static void fail_pending(pp_pool_t *pool, int err, const char *why) {
    while (pool->pend_head) {
        pp__task_t *t = pool->pend_head;
        pool->pend_head = t->next;
        pool->npending--;
        pp__close(&t->argfd);
        pool->inflight_total--;
        pp__future_set_fail(t->f, err, "%s", why);
        free(t);
    }
    pool->pend_tail = NULL;
}

/* A slot whose workers keep dying at start-up is *parked*: it is respawned
 * only while work waits for a worker. When every slot is parked no worker
 * is left to take new work, so submitters kick the supervisor
 * (pool->all_parked, read by pp__pool_dispatch_locked). Pool lock held. */
static bool parked(const pp__worker_t *w) {
    return w->state == PP__W_EMPTY && w->early_deaths >= EARLY_DEATH_LIMIT;
}

/* Is a worker of another slot alive past its start-up? Then start-up works
 * (w's deaths had another cause, a killer outside, say) and the work that
 * waits will run there. */
static bool booted_elsewhere(const pp_pool_t *pool, const pp__worker_t *w) {
    for (int i = 0; i < pool->nworkers; i++) {
        const pp__worker_t *o = &pool->workers[i];
        if (o != w && o->state != PP__W_EMPTY && !o->exited && !o->broken && o->chan.ctrl &&
            atomic_load_explicit(&o->chan.ctrl->booted, memory_order_acquire))
            return true;
    }
    return false;
}

static void note_parked(pp_pool_t *pool) {
    int n = 0;
    for (int i = 0; i < pool->nworkers; i++)
        n += parked(&pool->workers[i]);
    pool->all_parked = pool->nworkers > 0 && n == pool->nworkers;
}

/* Worker w is gone (status known or not). Pool lock held. */
/* The trace: the span of the record w was running when it died, and the
 * death (or retirement). Before handle_death changes the records. */
static void trace_death(pp_pool_t *pool, pp__worker_t *w, uint64_t started, const char *why) {
    bool retired = w->have_status && w->wait_code == CLD_EXITED && w->wait_status == 0;
    if (w->seq_done < started && w->seq_done < w->seq_next && w->chan.ctrl) {
        const pp__task_t *s = &w->inflight[w->seq_done % PP__INFLIGHT_MAX];
        uint64_t now = pp__now_ns();
        uint64_t t0 = s->start_ns;
        if (!t0)
            t0 = pp__dec_start_ns(
                atomic_load_explicit(&w->chan.ctrl->task_start_ns, memory_order_relaxed), now,
                now - w->born_ns);
        bool killed = w->have_status && w->wait_code != CLD_EXITED;
        pp__trace_span_t sp = {
            .task = s,
            .lane = w->index,
            .worker_pid = w->pid,
            .start_ns = t0 ? t0 : now,
            .run_ns = t0 && t0 < now ? now - t0 : 0,
            .outcome = pool->terminating ? "cancelled"
                       : w->timed_out    ? "PP_ETASKTIMEOUT"
                       : w->broken       ? "PP_EPROTO"
                                         : "PP_EWORKER",
            .sig = killed ? w->wait_status : 0,
        };
        if (s->f || s->job)
            pp__trace_span(pool, &sp);
    }
    if (!retired || !(pool->joining || pool->terminating || pool->closed))
        pp__trace_death(pool, w, !retired, retired ? NULL : why);
}

static void handle_death(pp_pool_t *pool, pp__worker_t *w) {
    char why[256];
    if (!w->broken)
        pp__drain_worker(pool, w);
    uint64_t raw_started = atomic_load_explicit(&w->chan.ctrl->tasks_started, memory_order_acquire);
    /* Clamped to the tasks really sent. A broken worker's count is not
     * believed: the breach was found in the record of the task at
     * seq_done, the task it was running as far as we can know; nothing it
     * wrote after that is trusted (it also ran ahead before it was
     * killed), so the tasks after it are sent again, as after a crash. */
    uint64_t started = pp__dec_started(raw_started, w->seq_done, w->seq_next, w->broken);
    if (w->broken)
        snprintf(why, sizeof why,
                 "worker process %d broke the shared-memory protocol and was killed", (int)w->pid);
    else if (w->pid < 0)
        snprintf(why, sizeof why, "the fork server could not fork a worker process: %s (%s)",
                 pp_strerror(w->spawn_err), pp_err_name(w->spawn_err));
    else
        pp__describe_status(why, sizeof why, w->pid, w->have_status ? w->wait_code : 0,
                            w->wait_status,
                            raw_started ? "while running the task" : "before it took any task");
    /* early: died before its start-up was done (a crashing initializer,
     * say); a worker killed later, idle or not, is not a start-up failure */
    bool booted = atomic_load_explicit(&w->chan.ctrl->booted, memory_order_acquire) != 0;
    /* a worker that retired (exit 0: max_tasks_per_child, max memory, stop) did not die */
    if (!(w->have_status && w->wait_code == CLD_EXITED && w->wait_status == 0))
        pp__stat_add(&pool->st_deaths, 1);
    bool early = !booted && w->completed == 0 && raw_started == 0 && !w->timed_out &&
                 pp__now_ns() - w->born_ns < PP__EARLY_DEATH_NS &&
                 !(w->have_status && w->wait_code == CLD_EXITED && w->wait_status == 0);
    char tmo[200]; /* the running task's timeout, when it ran past it */
    tmo[0] = 0;
    if (w->timed_out)
        snprintf(tmo, sizeof tmo, "the task ran past %s of %g s; worker process %d was killed",
                 w->timeout_own ? "its own timeout" : "the pool's task_timeout",
                 (double)w->timeout_ns / 1e9, (int)w->pid);
    if (pool->trace)
        trace_death(pool, w, started, why);
    for (uint64_t seq = w->seq_done; seq < w->seq_next; seq++) {
        pp__task_t *s = &w->inflight[seq % PP__INFLIGHT_MAX];
        if (!s->job && !s->f) { /* cancelled in the ring: nothing to tell */
            pp__close(&s->argfd);
            continue;
        }
        if (s->job) {
            pp__task_t c = *s;
            s->job = NULL;
            s->blob = NULL;
            pp__close(&s->argfd);
            if (pool->terminating) {
                pp__job_chunk_lost(pool, &c, -2, PP_ECANCELED,
                                   "the pool was terminated before the task finished", 0);
            } else if (seq < started && seq == w->seq_done) {
                uint64_t fails;
                long k = pp__dec_lost_item(
                    atomic_load_explicit(&w->chan.ctrl->item_index, memory_order_relaxed),
                    atomic_load_explicit(&w->chan.ctrl->chunk_fails, memory_order_relaxed), c.n,
                    &fails);
                pp__job_chunk_lost(pool, &c, k,
                                   w->timed_out ? PP_ETASKTIMEOUT
                                   : w->broken  ? PP_EPROTO
                                                : PP_EWORKER,
                                   w->timed_out ? tmo : why, fails);
            } else {
                pp__job_chunk_lost(pool, &c, -1, 0, NULL, 0);
            }
            continue;
        }
        if (!pool->terminating && (s->flags & PP__F_CHUNK) && seq < started && seq == w->seq_done) {
            /* a raw chunk (an MPI agent's): rank 0's map job decides what to
             * rerun, so it learns the item that was running; no retry here */
            uint64_t fails;
            s->f->lost_k = pp__dec_lost_item(
                atomic_load_explicit(&w->chan.ctrl->item_index, memory_order_relaxed),
                atomic_load_explicit(&w->chan.ctrl->chunk_fails, memory_order_relaxed), s->n,
                &fails);
            s->f->lost_fails = fails;
            pp__close(&s->argfd);
            pool->inflight_total--;
            if (w->timed_out)
                pp__future_set_fail(s->f, PP_ETASKTIMEOUT, "%s", tmo);
            else
                pp__future_set_fail(s->f, w->broken ? PP_EPROTO : PP_EWORKER, "%s", why);
        } else if (pool->terminating) {
            pp__close(&s->argfd);
            pool->inflight_total--;
            pp__future_set_fail(s->f, PP_ECANCELED,
                                "the pool was terminated before the task finished");
        } else if (seq < started && w->timed_out && seq == w->seq_done) {
            pp__close(&s->argfd);
            pool->inflight_total--;
            pp__future_set_fail(s->f, PP_ETASKTIMEOUT, "%s", tmo);
        } else if (seq < started &&
                   (w->broken ||
                    s->tries >= (s->retries >= 0 ? (unsigned)s->retries : pool->opt.retries) ||
                    pp__requeue(pool, w, s, s->tries + 1) < 0)) {
            pp__close(&s->argfd);
            pool->inflight_total--;
            pp__future_set_fail(s->f, w->broken ? PP_EPROTO : PP_EWORKER, "%s", why);
        } else if (seq < started) {
            /* run again (opt.retries): requeued above */
        } else if (pp__requeue(pool, w, s, s->tries) < 0) {
            pp__close(&s->argfd);
            pool->inflight_total--;
            pp__future_set_fail(s->f, -ENOMEM, "out of memory while requeueing the task");
        }
        s->f = NULL;
        s->argfd = -1;
    }
    pp__arena_reclaim(w); /* the result run it was building, if any */
    pp__fork_lock();
    pp__chan_destroy(&w->chan);
    pp__close(&w->pidfd);
    pp__fork_unlock();
    w->state = PP__W_EMPTY;
    w->pid = 0;
    /* its large arguments are closed or went back to the queue with their
     * tasks: none is out to come back from this slot (a count left here
     * made a memfd that could not be made wait for ever) */
    w->memfd_inflight = 0;
    uint64_t now = pp__now_ns();
    if (early) {
        w->early_deaths++;
        unsigned shift = w->early_deaths > 6 ? 6 : w->early_deaths - 1;
        w->respawn_at = now + (100000000ull << shift);
    } else {
        w->early_deaths = 0;
        w->respawn_at = now;
    }
    if (w->early_deaths >= EARLY_DEATH_LIMIT && (pool->pend_head || pool->jobs) &&
        !booted_elsewhere(pool, w)) {
        /* start-up is broken (no live worker got through it either):
         * fail what waits for a worker, single tasks and maps alike */
        char storm[512];
        snprintf(storm, sizeof storm,
                 "workers keep dying at start-up (%u times in a row; last: %s): "
                 "the initializer or start-up failed",
                 w->early_deaths, why);
        fail_pending(pool, PP_EWORKER, storm);
        pp__jobs_fail_unsent(pool, PP_EWORKER, storm);
    }
    note_parked(pool);
    if (pool->inflight_total == 0)
        pthread_cond_broadcast(&pool->cond);
}

/* A replacement for w could not even be started (no descriptor, memory or
 * process for it: err). It counts as a death at start-up: retried with the
 * same back-off, and when it keeps failing while no worker of another slot
 * is alive past start-up, what waits for a worker fails -- it would wait
 * for ever. Pool lock held. */
static void start_failed(pp_pool_t *pool, pp__worker_t *w, int err, uint64_t now) {
    w->early_deaths++;
    unsigned shift = w->early_deaths > 6 ? 6 : w->early_deaths - 1;
    w->respawn_at = now + (100000000ull << shift);
    if (w->early_deaths >= EARLY_DEATH_LIMIT && (pool->pend_head || pool->jobs) &&
        !booted_elsewhere(pool, w)) {
        char why[300];
        snprintf(why, sizeof why, "no worker could be started (%u times in a row: %s)",
                 w->early_deaths, pp_strerror(err));
        fail_pending(pool, PP_EWORKER, why);
        pp__jobs_fail_unsent(pool, PP_EWORKER, why);
    }
    note_parked(pool);
}

static pp__worker_t *worker_by_pid(pp_pool_t *pool, pid_t pid) {
    for (int i = 0; i < pool->nworkers; i++)
        if (pool->workers[i].state != PP__W_EMPTY && pool->workers[i].pid == pid)
            return &pool->workers[i];
    return NULL;
}

static void zygote_gone(pp_pool_t *pool) {
    pp__fork_lock();
    pp__close(&pool->zygote_sock);
    pp__fork_unlock();
    /* its children die with it (PDEATHSIG); their status is lost */
    for (int i = 0; i < pool->nworkers; i++) {
        pp__worker_t *w = &pool->workers[i];
        if (w->state != PP__W_EMPTY && w->from_zygote) {
            if ((w->state == PP__W_STARTING && w->pid == 0) || w->exited || w->pidfd < 0) {
                /* nobody will report these any more; one with no pidfd to
                 * watch dies now of its PDEATHSIG, if it has not already */
                handle_death(pool, w);
                continue;
            }
            pp__pidfd_signal(w->pidfd, SIGKILL);
        }
    }
}

/* One message from the zygote. Pool lock held. */
static void zygote_message(pp_pool_t *pool) {
    pp__zmsg_t raw, m;
    int fd = -1, n = 0;
    ssize_t r = pp__recv_fds(pool->zygote_sock, &raw, sizeof raw, &fd, 1, &n, MSG_DONTWAIT);
    if (r == -EAGAIN)
        return;
    if (r <= 0) {
        zygote_gone(pool);
        return;
    }
    /* checked by pp__dec_zmsg: a malformed report is dropped; only
     * SPAWNED keeps the descriptor (the child's pidfd) */
    int type = pp__dec_zmsg(&raw, (size_t)r, pool->nworkers, &m);
    if (type != PP__Z_SPAWNED && n) {
        close(fd);
        n = 0;
    }
    if (type == PP__Z_SPAWNED || type == PP__Z_FAILED) {
        pp__worker_t *w = &pool->workers[m.slot];
        if (w->state != PP__W_STARTING || !w->from_zygote || w->pid != 0) {
            if (n)
                close(fd);
            return;
        }
        if (type == PP__Z_FAILED) {
            w->pid = -1;
            w->spawn_err = m.err;
            if (!pool->created && !pool->create_err)
                pool->create_err = w->spawn_err; /* pp_pool_create fails with it */
            handle_death(pool, w);
            return;
        }
        w->pid = m.pid;
        pp__fork_lock();
        w->pidfd = n ? fd : -1;
        pp__fork_unlock();
        w->state = PP__W_READY;
        worker_started(pool, w);
        if (pool->terminating)
            pp__worker_signal(pool, w, SIGKILL);
    } else if (type == PP__Z_DIED) {
        pp__worker_t *w = worker_by_pid(pool, m.pid);
        if (w && w->from_zygote) {
            w->have_status = true;
            w->wait_code = m.code;
            w->wait_status = m.status;
            handle_death(pool, w);
        }
    }
}

/* w's pidfd is readable: it has exited. Pool lock held. */
static void pidfd_ready(pp_pool_t *pool, pp__worker_t *w) {
    if (w->from_zygote) {
        w->exited = true; /* the zygote's DIED report carries the status */
        w->exited_ns = pp__now_ns();
        if (pool->zygote_sock < 0)
            handle_death(pool, w);
        return;
    }
    siginfo_t info;
    memset(&info, 0, sizeof info);
    int r;
    while ((r = waitid((idtype_t)P_PIDFD, (id_t)w->pidfd, &info, WEXITED)) < 0 && errno == EINTR)
        ;
    if (r < 0 && errno == EINVAL) /* Linux 5.3 has pidfds but no P_PIDFD */
        while ((r = waitid(P_PID, (id_t)w->pid, &info, WEXITED)) < 0 && errno == EINTR)
            ;
    if (r == 0) {
        w->have_status = true;
        w->wait_code = info.si_code;
        w->wait_status = info.si_status;
    }
    handle_death(pool, w);
}

/* A zygote child whose pidfd fired waits for the zygote's DIED report,
 * which carries its status; a stopped or stuck zygote must not keep the
 * death unhandled, so after PP__ZYGOTE_WAIT_NS it is handled with the status
 * unknown (a late report then matches no worker and is dropped). Returns
 * the poll timeout (ms) this needs, or -1. Pool lock held. */
static int64_t check_died_reports(pp_pool_t *pool, uint64_t now) {
    int64_t next = -1;
    for (int i = 0; i < pool->nworkers; i++) {
        pp__worker_t *w = &pool->workers[i];
        if (w->state == PP__W_EMPTY || !w->from_zygote || !w->exited)
            continue;
        uint64_t waited = now > w->exited_ns ? now - w->exited_ns : 0;
        if (waited >= PP__ZYGOTE_WAIT_NS) {
            handle_death(pool, w);
            continue;
        }
        int64_t ms = (int64_t)((PP__ZYGOTE_WAIT_NS - waited) / 1000000u) + 1;
        if (next < 0 || ms < next)
            next = ms;
    }
    return next;
}

/* Is every slot still not empty waiting on the zygote alone (an answer to
 * SPAWN, a DIED report for a child it cannot be watched without)? */
static bool only_zygote_pending(pp_pool_t *pool) {
    bool any = false;
    for (int i = 0; i < pool->nworkers; i++) {
        pp__worker_t *w = &pool->workers[i];
        if (w->state == PP__W_EMPTY)
            continue;
        if (!w->from_zygote || (w->pid > 0 && w->pidfd >= 0 && !w->exited))
            return false;
        any = true;
    }
    return any;
}

/* SIGKILL the zygote, our unreaped child (reaped in pp__zygote_stop): its
 * children die of their PDEATHSIG, EOF on its socket settles their slots
 * (zygote_gone). For shutdowns the zygote holds up (stopped, say). */
static void kill_zygote(pp_pool_t *pool) {
    if (pool->zygote_pid > 0 && pool->zygote_sock >= 0)
        pp__signal_child(pool->zygote_pidfd, pool->zygote_pid, SIGKILL);
}

/* Children of ours with no pidfd to poll (pidfd_open missing: kernels
 * before 5.3, seccomp profiles, valgrind; or out of descriptors): look
 * with waitid(P_PID, WNOHANG), which reaps that pid only, never anyone
 * else's child. ECHILD: someone else reaped it (status unknown). Zygote
 * children need nothing: the zygote reports their deaths. Returns the
 * poll timeout (ms) this needs, or -1. Pool lock held. */
static int64_t check_pidless(pp_pool_t *pool) {
    int64_t next = -1;
    for (int i = 0; i < pool->nworkers; i++) {
        pp__worker_t *w = &pool->workers[i];
        if (w->state == PP__W_EMPTY || w->from_zygote || w->pidfd >= 0 || w->pid <= 0)
            continue;
        siginfo_t info;
        memset(&info, 0, sizeof info);
        int r = waitid(P_PID, (id_t)w->pid, &info, WEXITED | WNOHANG);
        if (r == 0 && info.si_pid == 0) {
            next = PP__PIDLESS_POLL_MS; /* still running */
            continue;
        }
        if (r == 0) {
            w->have_status = true;
            w->wait_code = info.si_code;
            w->wait_status = info.si_status;
        }
        handle_death(pool, w);
    }
    return next;
}

/* ---------------------------------------------------------------- */
/* task timeouts                                                     */
/* ---------------------------------------------------------------- */

/* Kill workers whose running task is past its deadline; returns the poll
 * timeout (ms) needed to catch the next one, or -1. Pool lock held. */
static int64_t check_timeouts(pp_pool_t *pool, uint64_t now) {
    if (pool->opt.task_timeout <= 0 && !pool->task_timeouts)
        return -1;
    uint64_t pool_limit = pool->opt.task_timeout <= 0 ? 0
                          : pool->opt.task_timeout >= 1e9
                              ? UINT64_MAX / 2
                              : (uint64_t)(pool->opt.task_timeout * 1e9);
    int64_t next = -1;
    for (int i = 0; i < pool->nworkers; i++) {
        pp__worker_t *w = &pool->workers[i];
        if (w->state == PP__W_EMPTY || !w->chan.ctrl || w->seq_done == w->seq_next)
            continue;
        if (w->timed_out) {
            if (w->kill_at && now >= w->kill_at) {
                pp__worker_signal(pool, w, SIGKILL);
                w->kill_at = 0;
            }
            if (w->kill_at)
                next = next < 0 ? PP__TIMEOUT_TICK_MS : next;
            continue;
        }
        uint64_t started = atomic_load_explicit(&w->chan.ctrl->tasks_started, memory_order_acquire);
        int64_t wait_ms = PP__TIMEOUT_TICK_MS;
        if (started > w->seq_done && started <= w->seq_next) {
            pp__task_t *s = &w->inflight[w->seq_done % PP__INFLIGHT_MAX];
            /* its own limit, else the pool's; none: nothing to watch */
            uint64_t limit = s->job              ? pool_limit
                             : s->timeout_ns > 0 ? (uint64_t)s->timeout_ns
                             : s->timeout_ns < 0 ? 0
                                                 : pool_limit;
            if (!limit || (!s->job && !s->f)) {
                if (next < 0 || wait_ms < next)
                    next = wait_ms; /* the next task may have one */
                continue;
            }
            if (s->job || (s->flags & PP__F_CHUNK)) { /* a chunk: every item has its own deadline */
                uint64_t item =
                    atomic_load_explicit(&w->chan.ctrl->item_index, memory_order_relaxed) + 1;
                if (item != s->item_seen) {
                    s->item_seen = item;
                    s->start_ns = 0;
                }
            }
            if (!s->start_ns) {
                /* the worker says when it began; believe it only within reason */
                uint64_t t =
                    atomic_load_explicit(&w->chan.ctrl->task_start_ns, memory_order_relaxed);
                s->start_ns = pp__dec_start_ns(t, now, PP__TIMEOUT_TICK_MS * 4000000ull);
            }
            uint64_t deadline = s->start_ns + limit;
            if (now >= deadline) {
                w->timed_out = true;
                w->timeout_ns = limit;
                if (pool->trace)
                    pp__trace_instant(pool, w->index, "timeout", w->pid, "limit_ms", NULL,
                                      (long)(limit / 1000000u));
                w->timeout_own = !s->job && s->timeout_ns > 0;
                pp__stat_add(&pool->st_timeouts, 1);
                w->kill_at = now + PP__TIMEOUT_KILL_NS;
                pp__worker_signal(pool, w, SIGTERM);
                wait_ms = PP__TIMEOUT_KILL_NS / 1000000u;
            } else if ((deadline - now) / 1000000u < (uint64_t)wait_ms) {
                wait_ms = (int64_t)((deadline - now) / 1000000u) + 1;
            }
        }
        if (next < 0 || wait_ms < next)
            next = wait_ms;
    }
    return next;
}

/* ---------------------------------------------------------------- */
/* the loop                                                          */
/* ---------------------------------------------------------------- */

/* poll() itself failed (ENOMEM: the kernel could not allocate its wait
 * table), and may go on failing: a tick later, mark every descriptor the
 * loop reads without blocking as ready (eventfds and the zygote's socket
 * are nonblocking) and each pidfd whose child has exited (waitid with
 * WNOWAIT looks without reaping; a zygote's child is reported by the
 * zygote). Deaths, results and reports are then handled as after a poll,
 * one tick late, and the loop never spins. Returns the count marked. */
static int poll_by_hand(pp_pool_t *pool, struct pollfd *pfd, size_t n, pp__worker_t **who) {
    struct timespec ts = {0, PP__TIMEOUT_TICK_MS * 1000000L};
    nanosleep(&ts, NULL);
    int marked = 0;
    pthread_mutex_lock(&pool->lock);
    for (size_t i = 0; i < n; i++) {
        pp__worker_t *w = who[i];
        pfd[i].revents = 0;
        if (w && pfd[i].fd == w->pidfd) {
            siginfo_t info;
            memset(&info, 0, sizeof info);
            if (w->from_zygote || w->pid <= 0 ||
                waitid(P_PID, (id_t)w->pid, &info, WEXITED | WNOHANG | WNOWAIT) < 0 ||
                info.si_pid == 0)
                continue;
        }
        pfd[i].revents = POLLIN;
        marked++;
    }
    pthread_mutex_unlock(&pool->lock);
    return marked;
}

/* Start every worker of a new pool. Pool lock held. Under FORKSERVER the
 * zygote forks them: wait for each answer (SPAWNED, or FAILED with its
 * fork's errno) so that create fails with that errno, as it does when the
 * parent's own fork or posix_spawn fails, and returns with every worker
 * born. A full socket (-EAGAIN) is waited out; a zygote that dies, or is
 * silent for PP__ZYGOTE_START_NS, fails create with -ECHILD. */
static int start_all(pp_pool_t *pool) {
    bool zygote = pool->opt.start_method == PP_START_FORKSERVER;
    bool direct = pool->opt.start_method == PP_START_FORK;
    uint64_t deadline = pp__now_ns() + PP__ZYGOTE_START_NS;
    int next = 0;
    for (;;) {
        int err = 0;
        while (next < pool->nworkers &&
               (err = start_worker(pool, &pool->workers[next], direct)) == 0)
            next++;
        if (pool->create_err)
            return pool->create_err; /* a FAILED answer */
        if (!zygote)
            return err;
        if (pool->zygote_sock < 0)
            return -ECHILD;
        int asked = 0;
        for (int i = 0; i < next; i++) {
            pp__worker_t *w = &pool->workers[i];
            asked += w->state == PP__W_STARTING && w->from_zygote && w->pid == 0;
        }
        if (err && (err != -EAGAIN || !asked))
            return pp__start_send_err(err);
        if (!asked)
            return 0;
        uint64_t now = pp__now_ns();
        if (now >= deadline)
            return -ECHILD;
        struct pollfd p = {.fd = pool->zygote_sock, .events = POLLIN};
        pthread_mutex_unlock(&pool->lock);
        int r = poll(&p, 1, (int)((deadline - now) / 1000000u) + 1);
        pthread_mutex_lock(&pool->lock);
        if (r > 0) {
            zygote_message(pool);
            deadline = pp__now_ns() + PP__ZYGOTE_START_NS;
        }
    }
}

static bool all_empty(pp_pool_t *pool) {
    for (int i = 0; i < pool->nworkers; i++)
        if (pool->workers[i].state != PP__W_EMPTY)
            return false;
    return true;
}

static void signal_all(pp_pool_t *pool, int sig) {
    for (int i = 0; i < pool->nworkers; i++)
        pp__worker_signal(pool, &pool->workers[i], sig);
}

static void ask_workers_to_stop(pp_pool_t *pool) {
    for (int i = 0; i < pool->nworkers; i++) {
        pp__chan_t *c = &pool->workers[i].chan;
        if (pool->workers[i].state == PP__W_EMPTY || !c->ctrl)
            continue;
        atomic_store_explicit(&c->ctrl->stop, 1, memory_order_release);
        atomic_fetch_add_explicit(&c->ctrl->wake_seq, 1, memory_order_release);
        pp__futex_wake(&c->ctrl->wake_seq, 1, true);
    }
}

static void drain_counter(int fd) {
    uint64_t v;
    ssize_t r = read(fd, &v, sizeof v);
    (void)r;
}

void *pp__supervisor_main(void *arg) {
    pp_pool_t *pool = arg;
    current_pool = pool;
    prctl(PR_SET_NAME, "procpool-sup");
    /* the poll set first: without it the pool cannot run, and nothing has
     * been started yet (the loop below finishes at once, never using it) */
    size_t cap = 2 + 2 * (size_t)pool->nworkers;
    struct pollfd *pfd = pp__alloc_fails("supervise.poll_set") ? NULL : calloc(cap, sizeof *pfd);
    pp__worker_t **who = pfd ? calloc(cap, sizeof *who) : NULL;
    int err = !who                                                       ? -ENOMEM
              : pool->opt.start_method == PP_START_SPAWN || pool->remote ? 0
                                                                         : pp__zygote_start(pool);
    pthread_mutex_lock(&pool->lock);
    if (err == 0)
        err = start_all(pool);
    pool->create_err = err;
    pool->created = true;
    if (err) {
        pool->closed = pool->terminating = true;
    }
    pthread_cond_broadcast(&pool->cond);
    pthread_mutex_unlock(&pool->lock);

    bool stopping = false, killed = false;
    int kill_rounds = 0;
    uint64_t term_at = 0, zwait_since = 0;

    for (;;) {
        pthread_mutex_lock(&pool->lock);
        for (int i = 0; i < pool->nworkers; i++) {
            pp__worker_t *w = &pool->workers[i];
            if (w->chan.ctrl && pp__chan_has_result(&w->chan))
                pp__drain_worker(pool, w);
        }
        uint64_t now = pp__now_ns();
        int64_t timeout_ms = check_pidless(pool);
        int64_t died_ms = check_died_reports(pool, now);
        if (died_ms >= 0 && (timeout_ms < 0 || died_ms < timeout_ms))
            timeout_ms = died_ms;
        /* refill empty slots; a parked one only for work, and the first
         * at once when no worker is left to take that work */
        bool work = pool->pend_head || pool->jobs;
        bool kick = work && pool->all_parked;
        for (int i = 0; i < pool->nworkers && !pool->terminating && !stopping; i++) {
            pp__worker_t *w = &pool->workers[i];
            if (w->state != PP__W_EMPTY)
                continue;
            if (parked(w) && !work)
                continue;
            if (parked(w) && kick)
                kick = false;
            else if (w->respawn_at > now) {
                int64_t ms = (int64_t)((w->respawn_at - now) / 1000000u) + 1;
                if (timeout_ms < 0 || ms < timeout_ms)
                    timeout_ms = ms;
                continue;
            }
            int se = start_worker(pool, w, false);
            if (se == 0)
                pp__stat_add(&pool->st_respawns, 1);
            if (se < 0) {
                start_failed(pool, w, se, now);
                int64_t ms = (int64_t)((w->respawn_at - now) / 1000000u) + 1;
                if (timeout_ms < 0 || ms < timeout_ms)
                    timeout_ms = ms;
            }
        }
        note_parked(pool);
        if (pool->pend_head || pool->jobs)
            pp__pool_dispatch_locked(pool);
        int64_t steal_ms = pp__steal_locked(pool, now);
        if (steal_ms >= 0 && (timeout_ms < 0 || steal_ms < timeout_ms))
            timeout_ms = steal_ms;
        int64_t tmo = check_timeouts(pool, now);
        if (tmo >= 0 && (timeout_ms < 0 || tmo < timeout_ms))
            timeout_ms = tmo;

        /* join and terminate */
        if (pool->terminating && !killed) {
            killed = true;
            cancel_pending(pool);
            if (pool->remote)
                pp__remote_cancel(pool);
            ask_workers_to_stop(pool); /* a live worker leaves once its ring is empty */
            signal_all(pool, SIGTERM);
            term_at = now + PP__TERM_GRACE_NS;
        }
        if (killed && !all_empty(pool)) {
            if (now >= term_at) {
                signal_all(pool, SIGKILL);
                /* still there a round later: a zygote child the zygote
                 * cannot reach or report (stopped); its death ends them */
                if (++kill_rounds >= 2)
                    for (int i = 0; i < pool->nworkers; i++)
                        if (pool->workers[i].state != PP__W_EMPTY && pool->workers[i].from_zygote)
                            kill_zygote(pool);
                term_at = now + PP__TERM_GRACE_NS;
            }
            int64_t ms = (int64_t)((term_at - now) / 1000000u) + 1;
            if (timeout_ms < 0 || ms < timeout_ms)
                timeout_ms = ms;
        }
        if (pool->joining && !pool->terminating && !stopping && pool->inflight_total == 0) {
            stopping = true;
            ask_workers_to_stop(pool);
        }
        if (stopping && !killed && only_zygote_pending(pool)) {
            /* all work is done; only a silent zygote holds the join up */
            if (!zwait_since)
                zwait_since = now;
            if (now - zwait_since >= PP__ZYGOTE_WAIT_NS)
                kill_zygote(pool);
            int64_t ms = now - zwait_since >= PP__ZYGOTE_WAIT_NS
                             ? PP__TIMEOUT_TICK_MS
                             : (int64_t)((PP__ZYGOTE_WAIT_NS - (now - zwait_since)) / 1000000u) + 1;
            if (timeout_ms < 0 || ms < timeout_ms)
                timeout_ms = ms;
        } else {
            zwait_since = 0;
        }
        if ((killed || stopping) && all_empty(pool) && pool->inflight_total == 0) {
            pthread_mutex_unlock(&pool->lock);
            pp__zygote_stop(pool);
            if (pool->remote)
                pp__remote_close(pool, killed);
            finish_callbacks(pool);
            pthread_mutex_lock(&pool->lock);
            pool->finished = true;
            pthread_cond_broadcast(&pool->cond);
            pthread_mutex_unlock(&pool->lock);
            break;
        }

        /* build the poll set and arm the channels */
        size_t n = 0;
        pfd[n] = (struct pollfd){.fd = pool->ctl_evfd, .events = POLLIN};
        who[n++] = NULL;
        if (pool->zygote_sock >= 0) {
            pfd[n] = (struct pollfd){.fd = pool->zygote_sock, .events = POLLIN};
            who[n++] = NULL;
        }
        bool ready = false;
        /* While threads spin in pp_future_wait they drain the rings: stay
         * passive (no eventfd write per result) and look again shortly. */
        atomic_store_explicit(&pool->sup_passive, 1, memory_order_seq_cst);
        bool passive = atomic_load_explicit(&pool->drainers, memory_order_seq_cst) > 0 ||
                       now - atomic_load_explicit(&pool->burst_ns, memory_order_relaxed) <
                           (uint64_t)PP__PASSIVE_MS * 1000000u;
        if (!passive)
            atomic_store_explicit(&pool->sup_passive, 0, memory_order_relaxed);
        else if (timeout_ms < 0 || timeout_ms > PP__PASSIVE_MS)
            timeout_ms = PP__PASSIVE_MS;
        for (int i = 0; i < pool->nworkers; i++) {
            pp__worker_t *w = &pool->workers[i];
            if (w->state == PP__W_EMPTY)
                continue;
            if (w->pidfd >= 0 && !w->exited) {
                pfd[n] = (struct pollfd){.fd = w->pidfd, .events = POLLIN};
                who[n++] = w;
            }
            if (w->chan.ctrl && !w->broken) {
                pfd[n] = (struct pollfd){.fd = w->chan.evfd, .events = POLLIN};
                who[n++] = w;
                if (!passive)
                    atomic_store_explicit(&w->chan.ctrl->parent_sleeping, 1, memory_order_relaxed);
            }
        }
        atomic_thread_fence(memory_order_seq_cst);
        for (int i = 0; i < pool->nworkers; i++) {
            pp__worker_t *w = &pool->workers[i];
            if (w->chan.ctrl && !w->broken && pp__chan_has_result(&w->chan))
                ready = true;
        }
        atomic_store_explicit(&pool->sup_unbounded, !ready && timeout_ms < 0, memory_order_relaxed);
        pthread_mutex_unlock(&pool->lock);

        int pr = poll(pfd, n, ready ? 0 : (int)timeout_ms);
        if (pr < 0 && errno != EINTR)
            pr = poll_by_hand(pool, pfd, n, who);
        if (pr <= 0)
            continue;
        pthread_mutex_lock(&pool->lock);
        for (size_t i = 0; i < n; i++) {
            if (!pfd[i].revents)
                continue;
            pp__worker_t *w = who[i];
            if (!w) {
                if (pfd[i].fd == pool->ctl_evfd)
                    drain_counter(pool->ctl_evfd);
                else if (pfd[i].fd == pool->zygote_sock)
                    zygote_message(pool);
            } else if (w->chan.ctrl && pfd[i].fd == w->chan.evfd) {
                drain_counter(w->chan.evfd);
            }
        }
        /* deaths last: an fd number in pfd may have been reused above */
        for (size_t i = 0; i < n; i++) {
            pp__worker_t *w = who[i];
            if (w && pfd[i].revents && pfd[i].fd == w->pidfd && w->state != PP__W_EMPTY &&
                !w->exited)
                pidfd_ready(pool, w);
        }
        pthread_mutex_unlock(&pool->lock);
    }
    free(pfd);
    free(who);
    return NULL;
}
