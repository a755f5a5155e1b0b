/*
 * registry.c - the process-wide list of live pools, and fork hygiene.
 *
 * DESIGN: a child forked by the library (a zygote or a worker) inherits
 * every fd and mapping of every pool in the process, not just its own.
 * Keeping them would let a worker of pool A scribble over pool B's rings and
 * keep B's death pipe open (so B's workers would never see their parent
 * die). So every fd and channel a pool creates or drops is changed under the
 * fork lock, every library fork happens with the fork lock held, and the
 * child walks this list to close and unmap everything except what it was
 * told to keep. The child never touches the lock itself: the forking thread
 * held it, so the list is consistent in the child's copy. Each pool it
 * walked is marked forgotten in the child's copy, so that a task calling
 * pp_pool_destroy on it later does not close or unmap a second time what
 * by then is the worker's own.
 */
#include "internal.h"

#include <sys/mman.h>
#include <unistd.h>

static pthread_mutex_t fork_mu = PTHREAD_MUTEX_INITIALIZER;
static pp_pool_t *pools;

/* Bumped in the child of every fork(): a pool whose generation differs
 * was made by an ancestor and is not ours to drive. */
static _Atomic unsigned fork_gen;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void on_fork_child(void) { atomic_fetch_add_explicit(&fork_gen, 1, memory_order_relaxed); }
static void register_atfork(void) { pthread_atfork(NULL, NULL, on_fork_child); }

unsigned pp__fork_generation(void) {
    pthread_once(&atfork_once, register_atfork); /* once per process, never per pool */
    return atomic_load_explicit(&fork_gen, memory_order_relaxed);
}

bool pp__pool_foreign(const pp_pool_t *pool) {
    return pool->fork_gen != atomic_load_explicit(&fork_gen, memory_order_relaxed);
}

/* In the child of a user's fork(): drop our copies of the pool's fds and
 * mappings, touching no lock, thread or process (none of them is ours).
 * Only once: in a worker or zygote they were dropped right after the fork
 * (pp__child_forget_all), and by now their fd numbers and addresses may
 * belong to the worker's own channel. */
void pp__pool_forget_foreign(pp_pool_t *pool) {
    if (pool->forgotten)
        return;
    int none = -1;
    pp_pool_t *saved = pool->reg_next;
    pool->reg_next = NULL;
    pp_pool_t *list = pools;
    pools = pool;
    pp__child_forget_all(&none, 0, NULL);
    pools = list;
    pool->reg_next = saved;
}

void pp__fork_lock(void) { pthread_mutex_lock(&fork_mu); }
void pp__fork_unlock(void) { pthread_mutex_unlock(&fork_mu); }

void pp__registry_add(pp_pool_t *pool) {
    pp__fork_lock();
    pool->reg_next = pools;
    pools = pool;
    pp__fork_unlock();
}

void pp__registry_remove(pp_pool_t *pool) {
    pp__fork_lock();
    for (pp_pool_t **p = &pools; *p; p = &(*p)->reg_next) {
        if (*p == pool) {
            *p = pool->reg_next;
            break;
        }
    }
    pool->reg_next = NULL;
    pp__fork_unlock();
}

static void drop(int fd, const int *keep, int nkeep) {
    if (fd < 0)
        return;
    for (int i = 0; i < nkeep; i++)
        if (keep[i] == fd)
            return;
    close(fd);
}

void pp__child_forget_all(const int *keep, int nkeep, const pp_pool_t *own) {
    for (pp_pool_t *p = pools; p; p = p->reg_next) {
        p->forgotten = true; /* this process's copy: never again (pp__pool_forget_foreign) */
        drop(p->ctl_evfd, keep, nkeep);
        drop(p->death_pipe[0], keep, nkeep);
        drop(p->death_pipe[1], keep, nkeep);
        drop(p->zygote_sock, keep, nkeep);
        drop(p->zygote_pidfd, keep, nkeep);
        if (p == own)
            drop(pp__shm_fd(p->shm), keep, nkeep); /* keep its mapping: that is the point */
        else
            pp__shm_forget(p->shm, keep, nkeep);
        if (!p->workers)
            continue;
        for (int i = 0; i < p->nworkers; i++) {
            pp__worker_t *w = &p->workers[i];
            pp__chan_t *c = &w->chan;
            drop(w->pidfd, keep, nkeep);
            drop(c->ctrl_fd, keep, nkeep);
            drop(c->task_fd, keep, nkeep);
            drop(c->task_ro_fd, keep, nkeep);
            drop(c->sock, keep, nkeep);
            drop(c->peer_sock, keep, nkeep);
            drop(c->evfd, keep, nkeep);
            if (c->ctrl)
                munmap(c->ctrl, c->ctrl_map_len);
            if (c->task)
                munmap(c->task, PP__TASK_RING);
        }
    }
}

void pp__child_reset_registry(void) {
    /* this child owns no pool: a pool it creates (a task may) starts afresh */
    pools = NULL;
    pthread_mutex_init(&fork_mu, NULL);
}
