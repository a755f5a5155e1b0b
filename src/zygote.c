/*
 * zygote.c - the fork server from which replacement workers are forked.
 *
 * DESIGN: the zygote is forked once at pool creation, from the supervisor
 * thread before it does anything else, so it is a one-thread copy of the
 * parent as it was then, holding no lock any other thread had. It keeps
 * only its socket to the parent and the death pipe; everything else of the
 * library it closes (registry.c). It loops in poll() on:
 *   - its socket: SPAWN {slot} with the new channel's four fds attached.
 *     It forks, the child becomes pp__worker_main(); the zygote answers
 *     SPAWNED {slot, pid} with a pidfd of the child attached (opened before
 *     the child can be reaped, so it can never name a recycled pid);
 *   - its socket: KILL {pid, signal}, sent when the supervisor cannot
 *     signal a worker through its pidfd (pidfd_send_signal refused by a
 *     seccomp profile, or no pidfd). The zygote signals the pid only while
 *     it is still its own unreaped child (waitid WNOWAIT), so a pid it has
 *     already reaped, which may name a stranger by now, is never hit;
 *   - a signalfd for SIGCHLD: it reaps its children and reports
 *     DIED {pid, code, status}, since only a parent can read an exit status;
 *   - the death pipe: EOF means the pool's process is gone, so it exits,
 *     and its children follow by PR_SET_PDEATHSIG.
 * EOF on its socket (the pool is shutting down) also ends it.
 * Workers forked here are grandchildren of the pool's process: the
 * supervisor watches them through their pidfds and learns how they died
 * from the zygote's DIED message.
 */
#include "internal.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* Reports are never dropped: the supervisor always reads its socket, so
 * blocking here cannot deadlock, and a lost SPAWNED or DIED would leave a
 * slot that nothing ever settles. EOF or an error means the pool is gone. */
static void report(int sock, const pp__zmsg_t *m, const int *fds, int nfds) {
    if (pp__send_fds_flags(sock, m, sizeof *m, fds, nfds, 0) < 0)
        _exit(0);
}

/* KILL: signal our child pid, but only while it is ours: waitid with
 * WNOWAIT finds it running or as a zombie and reaps nothing; once this
 * process has reaped it (and reported DIED) the pid may name a stranger
 * and is left alone. Only this one thread reaps, so nothing changes in
 * between. */
static void kill_child(pid_t pid, int sig) {
    siginfo_t info;
    memset(&info, 0, sizeof info);
    if (pid <= 0 || (sig != SIGTERM && sig != SIGKILL))
        return;
    if (waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG | WNOWAIT) == 0)
        kill(pid, sig);
}

__attribute__((noreturn)) static void zygote_main(int sock, int death_rd, pid_t parent,
                                                  const pp_options_t *opt) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    pp__child_reset_signals();
    if (getppid() != parent)
        _exit(0);
    __fpurge(stdout);
    __fpurge(stderr);
    pp__child_set_name("procpool-zygote");
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, NULL);
    int sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sfd < 0)
        _exit(122);
    pid_t self = getpid();

    for (;;) {
        struct pollfd p[3] = {{.fd = sock, .events = POLLIN},
                              {.fd = sfd, .events = POLLIN},
                              {.fd = death_rd, .events = POLLIN}};
        if (poll(p, 3, -1) < 0) {
            if (errno == EINTR)
                continue;
            _exit(123);
        }
        if (p[2].revents)
            _exit(0);
        if (p[1].revents) {
            struct signalfd_siginfo si;
            while (read(sfd, &si, sizeof si) > 0) {
            }
            siginfo_t info;
            for (;;) {
                memset(&info, 0, sizeof info);
                if (waitid(P_ALL, 0, &info, WEXITED | WNOHANG) < 0 || info.si_pid == 0)
                    break;
                pp__zmsg_t m = {.type = PP__Z_DIED,
                                .pid = info.si_pid,
                                .code = info.si_code,
                                .status = info.si_status};
                report(sock, &m, NULL, 0);
            }
        }
        if (p[0].revents) {
            pp__zmsg_t m;
            int fds[4], n = 0;
            ssize_t r = pp__recv_fds(sock, &m, sizeof m, fds, 4, &n, 0);
            if (r == 0 || (r < 0 && r != -EAGAIN))
                _exit(0);
            if (r == (ssize_t)sizeof m && m.type == PP__Z_KILL) {
                for (int i = 0; i < n; i++)
                    close(fds[i]);
                kill_child(m.pid, m.status);
                continue;
            }
            if (r != (ssize_t)sizeof m || m.type != PP__Z_SPAWN || n != 4) {
                for (int i = 0; i < n; i++)
                    close(fds[i]);
                continue;
            }
            pid_t pid = fork();
            int fork_errno = errno; /* the closes below may change errno */
            if (pid == 0) {
                close(sock);
                close(sfd);
                pp__boot_t b = {.ctrl_fd = fds[0],
                                .task_ro_fd = fds[1],
                                .sock = fds[2],
                                .evfd = fds[3],
                                .death_rd = death_rd,
                                .parent_pid = self,
                                .initializer = opt->initializer,
                                .initarg = opt->initarg,
                                .max_tasks = opt->max_tasks_per_child,
                                .task_timeout = opt->task_timeout > 0,
                                .max_memory = opt->max_memory_per_child,
                                .arena = (void *)(uintptr_t)m.arena,
                                .arena_size = (size_t)m.arena_size};
                pp__worker_main(&b);
            }
            for (int i = 0; i < 4; i++)
                close(fds[i]);
            pp__zmsg_t a = {.slot = m.slot};
            if (pid < 0) {
                a.type = PP__Z_FAILED;
                a.err = -fork_errno;
                report(sock, &a, NULL, 0);
                continue;
            }
            a.type = PP__Z_SPAWNED;
            a.pid = pid;
            int pfd = pp__pidfd_open(pid);
            report(sock, &a, &pfd, pfd >= 0 ? 1 : 0);
            if (pfd >= 0)
                close(pfd);
        }
    }
}

/* Called on the supervisor thread, with every signal blocked. */
int pp__zygote_start(pp_pool_t *pool) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return -errno;
    pp_options_t opt = pool->opt;
    pp__fork_lock();
    pid_t pid = fork();
    if (pid == 0) {
        int keep[2] = {sv[1], pool->death_pipe[0]};
        pp__child_forget_all(keep, 2, pool);
        pp__child_reset_registry();
        close(sv[0]);
        zygote_main(sv[1], pool->death_pipe[0], pool->parent_pid, &opt);
    }
    int err = pid < 0 ? -errno : 0;
    close(sv[1]);
    if (err == 0) {
        pool->zygote_pid = pid;
        pool->zygote_sock = sv[0];
        pool->zygote_pidfd = pp__pidfd_open(pid);
        if (pool->zygote_pidfd < 0)
            pool->zygote_pidfd = -1;
    } else {
        close(sv[0]);
    }
    pp__fork_unlock();
    return err;
}

int pp__zygote_request(pp_pool_t *pool, pp__worker_t *w) {
    if (pool->zygote_sock < 0)
        return -ESRCH;
    pp__zmsg_t m = {.type = PP__Z_SPAWN,
                    .slot = w->index,
                    .arena = (uint64_t)(uintptr_t)w->arena.base,
                    .arena_size = w->arena.size};
    int fds[4] = {w->chan.ctrl_fd, w->chan.task_ro_fd, w->chan.peer_sock, w->chan.evfd};
    return pp__send_fds(pool->zygote_sock, &m, sizeof m, fds, 4);
}

/* Ask the zygote to signal its child pid (non-blocking; -EAGAIN when its
 * socket is full, e.g. while it is stopped). */
int pp__zygote_kill(pp_pool_t *pool, pid_t pid, int sig) {
    if (pool->zygote_sock < 0)
        return -ESRCH;
    pp__zmsg_t m = {.type = PP__Z_KILL, .pid = pid, .status = sig};
    return pp__send_fds(pool->zygote_sock, &m, sizeof m, NULL, 0);
}

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

void pp__zygote_stop(pp_pool_t *pool) {
    if (pool->zygote_pid <= 0)
        return;
    pp__fork_lock();
    pp__close(&pool->zygote_sock); /* EOF: the zygote exits */
    pp__fork_unlock();
    siginfo_t info;
    bool gone = false;
    if (pool->zygote_pidfd >= 0) {
        struct pollfd p = {.fd = pool->zygote_pidfd, .events = POLLIN};
        if (poll(&p, 1, 200) <= 0) /* stopped, say: it is our unreaped child */
            pp__signal_child(pool->zygote_pidfd, pool->zygote_pid, SIGKILL);
        memset(&info, 0, sizeof info);
        int r;
        while ((r = waitid((idtype_t)P_PIDFD, (id_t)pool->zygote_pidfd, &info, WEXITED)) < 0 &&
               errno == EINTR)
            ;
        gone = r == 0;
    }
    if (!gone) {
        if (pool->zygote_pidfd < 0)
            kill(pool->zygote_pid, SIGKILL);
        while (waitpid(pool->zygote_pid, NULL, 0) < 0 && errno == EINTR)
            ;
    }
    pp__fork_lock();
    pp__close(&pool->zygote_pidfd);
    pp__fork_unlock();
    pool->zygote_pid = 0;
}
