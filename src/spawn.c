/*
 * spawn.c - the spawn start method: workers that are fresh executions of
 * the program.
 *
 * DESIGN: a spawn worker is /proc/self/exe started by posix_spawn from the
 * supervisor thread (exec from a threaded parent is safe: nothing of the
 * parent's heap or locks survives). The environment carries
 * PROCPOOL_WORKER_FD=3; fd 3 is one end of a socketpair on which the parent
 * then sends the boot message and the channel's fds. The library's
 * constructor (pp__spawn_ctor) sees the variable before main() can run,
 * receives the boot message and becomes the worker: main() never runs.
 *
 * Functions travel as (object key, offset) (fnaddr.c), and so do the
 * initializer and an initarg that points into the program's static data.
 * The pool's shared memory is mapped at the parent's address
 * (MAP_FIXED_NOREPLACE) so pointers into it keep their meaning.
 */
#include "internal.h"

#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define BOOT_FD 3
#define ENV_NAME "PROCPOOL_WORKER_FD"

extern char **environ;

/* ---------------------------------------------------------------- */
/* starting a spawn worker (parent, supervisor thread)               */
/* ---------------------------------------------------------------- */

typedef struct boot_msg {
    uint32_t magic;
    int32_t parent_pid;
    uint64_t init_key, init_off; /* initializer; key 0: none */
    uint64_t arg_key, arg_off;   /* initarg: key 0 and off = raw value (NULL or shared memory) */
    uint64_t shm_addr, shm_size;
    uint64_t max_memory;
    uint64_t arena, arena_size;
    uint32_t max_tasks;
    uint32_t task_timeout;
    uint32_t nfds;
} boot_msg_t;

#define BOOT_MAGIC 0x70704254u

/* Can this pool's options cross an exec? Checked at creation. */
int pp__spawn_check(const pp_options_t *opt) {
    uint64_t k, o;
    if (opt->initializer && !pp__addr_encode((const void *)(uintptr_t)opt->initializer, &k, &o))
        return -EINVAL;
    if (opt->initarg && !pp__addr_encode(opt->initarg, &k, &o))
        return -EINVAL; /* not in the program's static data */
    return 0;
}

int pp__spawn_worker(pp_pool_t *pool, pp__worker_t *w) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return -errno;
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&at);
    posix_spawn_file_actions_adddup2(&fa, sv[1], BOOT_FD);
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK);

    size_t n = 0;
    while (environ && environ[n])
        n++;
    char **env = malloc((n + 2) * sizeof *env);
    int err = 0;
    pid_t pid = -1;
    if (!env) {
        err = -ENOMEM;
        goto out;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], ENV_NAME "=", sizeof ENV_NAME) != 0)
            env[k++] = environ[i];
    char var[] = ENV_NAME "=3";
    env[k++] = var;
    env[k] = NULL;
    char *argv[] = {(char *)"procpool-worker", NULL};
    err = -posix_spawn(&pid, "/proc/self/exe", &fa, &at, argv, env);
    free(env);
    if (err)
        goto out;

    boot_msg_t m = {.magic = BOOT_MAGIC,
                    .parent_pid = (int32_t)pool->parent_pid,
                    .max_memory = pool->opt.max_memory_per_child,
                    .arena = (uint64_t)(uintptr_t)w->arena.base,
                    .arena_size = w->arena.size,
                    .max_tasks = pool->opt.max_tasks_per_child,
                    .task_timeout = pool->opt.task_timeout > 0};
    if (pool->opt.initializer)
        pp__addr_encode((const void *)(uintptr_t)pool->opt.initializer, &m.init_key, &m.init_off);
    if (pool->opt.initarg)
        pp__addr_encode(pool->opt.initarg, &m.arg_key, &m.arg_off);
    int fds[6] = {w->chan.ctrl_fd, w->chan.task_ro_fd,  w->chan.peer_sock,
                  w->chan.evfd,    pool->death_pipe[0], pp__shm_fd(pool->shm)};
    m.nfds = fds[5] >= 0 ? 6 : 5;
    if (pool->shm) {
        m.shm_addr = (uint64_t)(uintptr_t)pp__shm_base(pool->shm);
        m.shm_size = pp__shm_size(pool->shm);
    }
    err = pp__start_send_err(pp__send_fds_flags(sv[0], &m, sizeof m, fds, (int)m.nfds, 0));
    if (err < 0) {
        kill(pid, SIGKILL);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
        goto out;
    }
    pp__worker_adopt(w, pid);
out:
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    close(sv[0]);
    close(sv[1]);
    return err;
}

/* ---------------------------------------------------------------- */
/* becoming a worker (the new process, before main)                  */
/* ---------------------------------------------------------------- */

__attribute__((constructor)) static void pp__spawn_ctor(void) {
    const char *v = getenv(ENV_NAME);
    if (!v)
        return;
    int fd = atoi(v);
    unsetenv(ENV_NAME);
    boot_msg_t m;
    int fds[6], n = 0;
    ssize_t r = pp__recv_fds(fd, &m, sizeof m, fds, 6, &n, 0);
    close(fd);
    if (r != (ssize_t)sizeof m || m.magic != BOOT_MAGIC || n < 5)
        _exit(125);
    if (n == 6) {
        /* the pool's shared memory, at the parent's address */
        void *want = (void *)(uintptr_t)m.shm_addr;
        void *p = mmap(want, (size_t)m.shm_size, PROT_READ | PROT_WRITE,
                       MAP_SHARED | MAP_NORESERVE | MAP_FIXED_NOREPLACE, fds[5], 0);
        if (p != want)
            _exit(124); /* that range is taken in this execution */
        close(fds[5]);
    }
    pp__boot_t b = {.ctrl_fd = fds[0],
                    .task_ro_fd = fds[1],
                    .sock = fds[2],
                    .evfd = fds[3],
                    .death_rd = fds[4],
                    .parent_pid = (pid_t)m.parent_pid,
                    .max_tasks = m.max_tasks,
                    .task_timeout = m.task_timeout != 0,
                    .max_memory = (size_t)m.max_memory,
                    .arena = n == 6 ? (void *)(uintptr_t)m.arena : NULL,
                    .arena_size = n == 6 ? (size_t)m.arena_size : 0};
    if (m.init_key) {
        b.initializer = (void (*)(void *))(uintptr_t)pp__addr_decode(m.init_key, m.init_off);
        if (!b.initializer)
            _exit(126); /* the initializer's object differs: a rebuilt program */
    }
    b.initarg = m.arg_key ? pp__addr_decode(m.arg_key, m.arg_off) : (void *)(uintptr_t)m.arg_off;
    pp__worker_main(&b);
}
