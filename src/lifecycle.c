/*
 * lifecycle.c - creating, closing, joining, terminating and destroying a
 * pool.
 *
 * DESIGN: the calling thread validates the options, allocates the pool and
 * its process-wide fds (control eventfd, death pipe), then starts the
 * supervisor thread with every signal blocked and waits until that thread
 * has forked the zygote and the workers. close/terminate/join only set
 * flags under pool->lock and kick the supervisor; the supervisor does the
 * work and broadcasts pool->cond when the pool is finished (every task
 * done or cancelled, every callback run, every worker and the zygote
 * reaped). destroy then tears down the fds and mappings; the pool struct
 * itself is reference-counted by its futures (future.c) and freed with the
 * last of them.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define PP__MAX_PROCESSES 4096

static void free_pool(pp_pool_t *p) {
    pp__shm_destroy(p); /* if futures kept it mapped past teardown */
    pp__remote_free(p);
    if (p->workers) {
        for (int i = 0; i < p->nworkers; i++)
            free(p->workers[i].inflight);
        free(p->workers);
    }
    pthread_mutex_destroy(&p->lock);
    pthread_mutex_destroy(&p->cb_lock);
    pthread_cond_destroy(&p->cb_cond);
    pthread_cond_destroy(&p->cond);
    free(p);
}

void pp__pool_unref(pp_pool_t *pool) {
    if (atomic_fetch_sub_explicit(&pool->refs, 1, memory_order_acq_rel) == 1)
        free_pool(pool);
}

/* Release every fd and mapping. The supervisor has exited. */
static void teardown(pp_pool_t *p) {
    pp__registry_remove(p);
    if (p->remote)
        pp__remote_close(p, true); /* no-op if the supervisor already did */
    pthread_mutex_lock(&p->lock);
    p->torn_down = true;
    for (int i = 0; i < p->nworkers; i++) {
        pp__worker_t *w = &p->workers[i];
        pp__chan_destroy(&w->chan);
        pp__close(&w->pidfd);
    }
    pp__close(&p->ctl_evfd);
    pp__close(&p->death_pipe[0]);
    pp__close(&p->death_pipe[1]);
    pp__close(&p->zygote_sock);
    pp__close(&p->zygote_pidfd);
    /* last, under the lock: a waiter still draining, or the MPI hub with a
     * late result, sees torn_down or a NULL trace, never a closed writer */
    pp__trace_close(p);
    pthread_mutex_unlock(&p->lock);
    /* futures holding results in shared memory keep it mapped until the
     * last of them is freed (then free_pool unmaps it) */
    if (atomic_load_explicit(&p->shm_users, memory_order_acquire) == 0)
        pp__shm_destroy(p);
}

static void init_worker_slot(pp__worker_t *w, int index) {
    memset(w, 0, sizeof *w);
    w->index = index;
    w->pidfd = -1;
    w->chan.ctrl_fd = w->chan.task_fd = w->chan.task_ro_fd = -1;
    w->chan.sock = w->chan.peer_sock = w->chan.evfd = -1;
}

static int wait_finished_and_join(pp_pool_t *p) {
    pthread_mutex_lock(&p->lock);
    while (!p->finished)
        pthread_cond_wait(&p->cond, &p->lock);
    bool mine = !p->thread_joined;
    p->thread_joined = true;
    pthread_mutex_unlock(&p->lock);
    if (mine) {
        pthread_join(p->supervisor, NULL);
        if (p->cb_started)
            pthread_join(p->cb_thread, NULL);
        pthread_mutex_lock(&p->lock);
        p->supervisor_exited = true;
        pthread_cond_broadcast(&p->cond);
        pthread_mutex_unlock(&p->lock);
    } else {
        pthread_mutex_lock(&p->lock);
        while (!p->supervisor_exited)
            pthread_cond_wait(&p->cond, &p->lock);
        pthread_mutex_unlock(&p->lock);
    }
    return 0;
}

int pp_pool_create(pp_pool_t **pool, const pp_options_t *opt) {
    pp_options_t def;
    int err;
    if (!pool)
        return -EINVAL;
    *pool = NULL;
    if (!opt) {
        pp_options_init(&def);
        opt = &def;
    }
    if (opt->processes < 0 || opt->processes > PP__MAX_PROCESSES || isnan(opt->task_timeout) ||
        opt->task_timeout < 0 ||
        (opt->start_method != PP_START_FORK && opt->start_method != PP_START_FORKSERVER &&
         opt->start_method != PP_START_SPAWN))
        return -EINVAL;
    pp_backend_t backend = opt->backend;
    if (backend == PP_BACKEND_DEFAULT)
        backend = pp__mpi_default() ? PP_BACKEND_MPI : PP_BACKEND_LOCAL;
    if (backend != PP_BACKEND_LOCAL && backend != PP_BACKEND_MPI)
        return -EINVAL;
    bool remote = backend == PP_BACKEND_MPI;
    if ((opt->start_method == PP_START_SPAWN || remote) && pp__spawn_check(opt) < 0)
        return -EINVAL; /* an initializer or initarg that cannot cross an exec */

    pp_pool_t *p = calloc(1, sizeof *p);
    if (!p)
        return -ENOMEM;
    p->opt = *opt;
    p->opt.backend = backend;
    p->nworkers = remote ? 0 : opt->processes ? opt->processes : pp_cpu_count();
    p->size = p->nworkers;
    p->ctl_evfd = p->death_pipe[0] = p->death_pipe[1] = -1;
    p->zygote_sock = p->zygote_pidfd = -1;
    p->parent_pid = getpid();
    p->fork_gen = pp__fork_generation();
    atomic_init(&p->refs, 1);
    pthread_mutex_init(&p->lock, NULL);
    pthread_mutex_init(&p->cb_lock, NULL);
    pthread_cond_init(&p->cb_cond, NULL);
    pthread_cond_init(&p->cond, NULL);
    p->workers = calloc((size_t)p->nworkers + 1, sizeof *p->workers);
    if (!p->workers) {
        free_pool(p);
        return -ENOMEM;
    }
    for (int i = 0; i < p->nworkers; i++) {
        init_worker_slot(&p->workers[i], i);
        p->workers[i].inflight = calloc(PP__INFLIGHT_MAX, sizeof(pp__task_t));
        if (!p->workers[i].inflight) {
            free_pool(p);
            return -ENOMEM;
        }
    }
    if ((p->ctl_evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0 ||
        pipe2(p->death_pipe, O_CLOEXEC) < 0) {
        err = -errno;
        pp__close(&p->ctl_evfd);
        free_pool(p);
        return err;
    }
    /* the shared range must exist before the zygote and workers are forked;
     * an MPI pool has none, it attaches its agents instead */
    if ((err = pp__trace_open(p)) < 0 ||
        (err = remote ? pp__remote_open(p) : pp__shm_create(p)) < 0) {
        pp__trace_close(p);
        pp__close(&p->ctl_evfd);
        pp__close(&p->death_pipe[0]);
        pp__close(&p->death_pipe[1]);
        free_pool(p);
        return err;
    }
    if (!remote)
        pp__arenas_create(p); /* large results land in shared memory (none if it is small) */
    pp__registry_add(p);

    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    err = -pthread_create(&p->cb_thread, NULL, pp__callback_main, p);
    p->cb_started = err == 0;
    if (!err)
        err = -pthread_create(&p->supervisor, NULL, pp__supervisor_main, p);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err) {
        if (p->cb_started) {
            pthread_mutex_lock(&p->cb_lock);
            p->cb_exit = true;
            pthread_cond_broadcast(&p->cb_cond);
            pthread_mutex_unlock(&p->cb_lock);
            pthread_join(p->cb_thread, NULL);
        }
        teardown(p);
        pp__pool_unref(p);
        return err;
    }
    pthread_mutex_lock(&p->lock);
    while (!p->created)
        pthread_cond_wait(&p->cond, &p->lock);
    err = p->create_err;
    pthread_mutex_unlock(&p->lock);
    if (err) {
        wait_finished_and_join(p);
        teardown(p);
        pp__pool_unref(p);
        return err;
    }
    *pool = p;
    return 0;
}

int pp_pool_size(const pp_pool_t *pool) { return pool ? pool->size : -EINVAL; }

int pp_pool_close(pp_pool_t *pool) {
    if (!pool)
        return -EINVAL;
    if (pp__pool_foreign(pool))
        return PP_ECLOSED;
    pthread_mutex_lock(&pool->lock);
    pool->closed = true;
    pthread_mutex_unlock(&pool->lock);
    return 0;
}

int pp_pool_terminate(pp_pool_t *pool) {
    if (!pool)
        return -EINVAL;
    if (pp__pool_foreign(pool))
        return PP_ECLOSED;
    if (pp__on_supervisor(pool))
        return -EDEADLK;
    pthread_mutex_lock(&pool->lock);
    pool->closed = true;
    if (!pool->terminating && pool->trace)
        pp__trace_instant(pool, -1, "terminate", 0, NULL, NULL, 0);
    pool->terminating = true;
    pthread_mutex_unlock(&pool->lock);
    pp__pool_wake_supervisor(pool);
    pthread_mutex_lock(&pool->lock);
    while (!pool->finished)
        pthread_cond_wait(&pool->cond, &pool->lock);
    pthread_mutex_unlock(&pool->lock);
    return 0;
}

int pp_pool_join(pp_pool_t *pool) {
    if (!pool)
        return -EINVAL;
    if (pp__pool_foreign(pool))
        return PP_ECLOSED;
    pthread_mutex_lock(&pool->lock);
    bool ok = pool->closed;
    pthread_mutex_unlock(&pool->lock);
    if (!ok)
        return -EINVAL;
    if (pp__on_supervisor(pool))
        return -EDEADLK;
    pthread_mutex_lock(&pool->lock);
    pool->joining = true;
    pthread_mutex_unlock(&pool->lock);
    pp__pool_wake_supervisor(pool);
    return wait_finished_and_join(pool);
}

void pp_pool_destroy(pp_pool_t *pool) {
    if (!pool)
        return;
    if (pp__pool_foreign(pool)) {
        pp__pool_forget_foreign(pool);
        return;
    }
    if (pp__on_supervisor(pool))
        return; /* from a callback: cannot wait for ourselves */
    pthread_mutex_lock(&pool->lock);
    bool finished = pool->finished;
    pthread_mutex_unlock(&pool->lock);
    if (!finished)
        pp_pool_terminate(pool);
    wait_finished_and_join(pool);
    teardown(pool);
    pp__pool_unref(pool);
}
