/*
 * sys.c - thin wrappers over the Linux primitives the pool is built on.
 *
 * DESIGN: futexes (shared ones for the rings, private ones for futures),
 * memfds, pidfds (with kill() on an unreaped child as the fallback when
 * pidfd_send_signal is refused) and SCM_RIGHTS fd passing. A memfd is a
 * file: it is never grown past RLIMIT_FSIZE (that would raise SIGXFSZ and
 * kill the process); the helpers fail -EFBIG instead. Every fd is created CLOEXEC
 * atomically, so a concurrent fork+exec elsewhere in the program never
 * inherits one. Helpers preserve errno for their callers where they return
 * a status, and never allocate, so the worker and zygote may use them right
 * after fork.
 */
#include "procpool.h"
#include "sys.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

bool (*pp__test_alloc_fail)(const char *site);

uint64_t pp__now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Returns 0 when woken (or the word changed), -ETIMEDOUT, -EINTR. */
int pp__futex_wait(_Atomic uint32_t *addr, uint32_t val, int64_t timeout_ns, bool shared) {
    struct timespec ts, *tp = NULL;
    if (timeout_ns >= 0) {
        ts.tv_sec = timeout_ns / 1000000000;
        ts.tv_nsec = timeout_ns % 1000000000;
        tp = &ts;
    }
    int op = shared ? FUTEX_WAIT : (FUTEX_WAIT | FUTEX_PRIVATE_FLAG);
    int saved = errno;
    long r = syscall(SYS_futex, (uint32_t *)addr, op, val, tp, NULL, 0);
    int ret = 0;
    if (r < 0) {
        if (errno == ETIMEDOUT)
            ret = -ETIMEDOUT;
        else if (errno == EINTR)
            ret = -EINTR;
    }
    errno = saved;
    return ret;
}

void pp__futex_wake(_Atomic uint32_t *addr, int n, bool shared) {
    int op = shared ? FUTEX_WAKE : (FUTEX_WAKE | FUTEX_PRIVATE_FLAG);
    int saved = errno;
    syscall(SYS_futex, (uint32_t *)addr, op, n, NULL, NULL, 0);
    errno = saved;
}

/* The file size limit (RLIMIT_FSIZE) in bytes, UINT64_MAX for none. It
 * applies to memfds too, and growing a file past it (ftruncate, write,
 * fallocate) raises SIGXFSZ, whose default action kills the process: the
 * library checks first and fails -EFBIG instead. */
uint64_t pp__fsize_max(void) {
    struct rlimit rl;
    int saved = errno;
    uint64_t r = UINT64_MAX;
    if (getrlimit(RLIMIT_FSIZE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        r = (uint64_t)rl.rlim_cur;
    errno = saved;
    return r;
}

/* "a memfd of N bytes is over the file size limit (RLIMIT_FSIZE, M bytes)"
 * for -EFBIG, else the error's sentence. */
void pp__describe_fsize(char *buf, size_t n, int err, uint64_t size) {
    if (err == -EFBIG)
        snprintf(buf, n,
                 "a memfd of %llu bytes is over the file size limit (RLIMIT_FSIZE, %llu bytes)",
                 (unsigned long long)size, (unsigned long long)pp__fsize_max());
    else
        snprintf(buf, n, "%s", pp_strerror(err));
}

int pp__memfd(const char *name, size_t size, bool sealable) {
    unsigned flags = MFD_CLOEXEC | (sealable ? MFD_ALLOW_SEALING : 0u);
    if (size > pp__fsize_max())
        return -EFBIG;
    int fd = (int)syscall(SYS_memfd_create, name, flags);
    if (fd < 0)
        return -errno;
    int r = 0;
    while (size && (r = ftruncate(fd, (off_t)size)) < 0 && errno == EINTR)
        ;
    if (r < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

/* A start-up message (a SPAWN request to the zygote, a spawned worker's
 * boot message) its socket refused, as a code pp_pool_create documents:
 * the other end gone is that process's death (-ECHILD); too many
 * descriptors in flight (ETOOMANYREFS, counted against RLIMIT_NOFILE) is
 * -EMFILE; no buffer memory is -ENOMEM. Others pass. */
int pp__start_send_err(int err) {
    if (err == -EPIPE || err == -ECONNRESET || err == -ECONNREFUSED || err == -ENOTCONN)
        return -ECHILD;
    if (err == -ETOOMANYREFS)
        return -EMFILE;
    if (err == -ENOBUFS)
        return -ENOMEM;
    return err;
}

/* The errors a memfd made for one task can fail with, as the header
 * documents them: -EFBIG (RLIMIT_FSIZE), -EMFILE, -ENFILE (no descriptor),
 * and -ENOMEM for everything else (memory, or a kernel that refuses to
 * make or seal one after the pool's own memfds were made). */
int pp__memfd_err(int err) {
    if (err == -EFBIG || err == -EMFILE || err == -ENFILE || err == -ENOMEM)
        return err;
    return -ENOMEM;
}

/* A memfd holding a copy of data[0..len), sealed against every change, so
 * a worker that receives it can neither alter nor truncate it. On failure
 * -EFBIG (over RLIMIT_FSIZE), -EMFILE, -ENFILE or -ENOMEM (pp__memfd_err). */
int pp__sealed_copy(const char *name, const void *data, size_t len) {
    if (len > pp__fsize_max())
        return -EFBIG;
    int fd = pp__memfd(name, 0, true);
    if (fd < 0)
        return pp__memfd_err(fd);
    const char *p = data;
    while (len) {
        ssize_t w = write(fd, p, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            close(fd);
            return pp__memfd_err(-e);
        }
        p += w;
        len -= (size_t)w;
    }
    if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0) {
        int e = errno;
        close(fd);
        return pp__memfd_err(-e);
    }
    return fd;
}

/* A second, read-only open file description of fd: a mapping made from it
 * can never be made writable (no VM_MAYWRITE). */
int pp__reopen_rdonly(int fd) {
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    int r = open(path, O_RDONLY | O_CLOEXEC);
    return r < 0 ? -errno : r;
}

int pp__pidfd_open(pid_t pid) {
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);
    return fd < 0 ? -errno : fd;
}

int pp__pidfd_signal(int pidfd, int sig) {
    if (pidfd < 0)
        return -EBADF;
    long r = syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
    return r < 0 ? -errno : 0;
}

/* Signal a child of this process that has not been reaped: through its
 * pidfd when there is one, else by pid -- also when pidfd_send_signal is
 * refused (EPERM under some seccomp profiles) or missing. The pid of an
 * unreaped child cannot be reused, so kill() cannot hit a stranger; the
 * caller guarantees that nobody has reaped it. */
int pp__signal_child(int pidfd, pid_t pid, int sig) {
    int r = pp__pidfd_signal(pidfd, sig);
    if (r == 0 || pid <= 0)
        return r;
    int saved = errno;
    r = kill(pid, sig) < 0 ? -errno : 0;
    errno = saved;
    return r;
}

int pp__send_fds_flags(int sock, const void *msg, size_t len, const int *fds, int nfds, int flags) {
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int) * 8)];
    } u;
    struct iovec iov = {.iov_base = (void *)msg, .iov_len = len};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    if (nfds > 8)
        return -EINVAL;
    if (nfds > 0) {
        memset(&u, 0, sizeof u);
        mh.msg_control = u.buf;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
    }
    for (;;) {
        ssize_t r = sendmsg(sock, &mh, MSG_NOSIGNAL | flags);
        if (r >= 0)
            return 0;
        if (errno != EINTR)
            return -errno;
    }
}

int pp__send_fds(int sock, const void *msg, size_t len, const int *fds, int nfds) {
    return pp__send_fds_flags(sock, msg, len, fds, nfds, MSG_DONTWAIT);
}

ssize_t pp__recv_fds(int sock, void *msg, size_t len, int *fds, int maxfds, int *nfds, int flags) {
    return pp__recv_fds_lost(sock, msg, len, fds, maxfds, nfds, flags, NULL);
}

/* Receives one message and up to maxfds fds (CLOEXEC). Extra fds are
 * closed. *lost (if not NULL): fds came with it that the kernel could not
 * install here (MSG_CTRUNC: no free descriptor) and has closed. */
ssize_t pp__recv_fds_lost(int sock, void *msg, size_t len, int *fds, int maxfds, int *nfds,
                          int flags, bool *lost) {
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int) * 8)];
    } u;
    struct iovec iov = {.iov_base = msg, .iov_len = len};
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf};
    ssize_t r;
    *nfds = 0;
    do
        r = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | flags);
    while (r < 0 && errno == EINTR);
    if (r < 0)
        return -errno;
    if (lost)
        *lost = (mh.msg_flags & MSG_CTRUNC) != 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        int n = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        int got[8];
        if (n > 8)
            n = 8;
        memcpy(got, CMSG_DATA(c), sizeof(int) * (size_t)n);
        for (int i = 0; i < n; i++) {
            if (*nfds < maxfds)
                fds[(*nfds)++] = got[i];
            else
                close(got[i]);
        }
    }
    return r;
}

/* one case per signal name, kept as a table */
// clang-format off
const char *pp__signame(int sig) {
    switch (sig) {
#define S(x) \
    case x:  \
        return #x;
        S(SIGHUP) S(SIGINT) S(SIGQUIT) S(SIGILL) S(SIGTRAP) S(SIGABRT) S(SIGBUS) S(SIGFPE)
        S(SIGKILL) S(SIGUSR1) S(SIGSEGV) S(SIGUSR2) S(SIGPIPE) S(SIGALRM) S(SIGTERM)
        S(SIGSTKFLT) S(SIGCHLD) S(SIGCONT) S(SIGSTOP) S(SIGTSTP) S(SIGTTIN) S(SIGTTOU)
        S(SIGURG) S(SIGXCPU) S(SIGXFSZ) S(SIGVTALRM) S(SIGPROF) S(SIGWINCH) S(SIGIO)
        S(SIGPWR) S(SIGSYS)
#undef S
    default:
        return "a real-time signal";
    }
}
// clang-format on

/* code/status as in siginfo (CLD_EXITED, CLD_KILLED, CLD_DUMPED); code 0:
 * unknown. when: what it was doing ("while running the task", ...). */
void pp__describe_status(char *buf, size_t n, pid_t pid, int code, int status, const char *when) {
    if (code == CLD_EXITED)
        snprintf(buf, n, "worker process %d exited with status %d %s", (int)pid, status, when);
    else if (code == CLD_KILLED || code == CLD_DUMPED)
        snprintf(buf, n, "worker process %d was killed by signal %d (%s)%s %s", (int)pid, status,
                 pp__signame(status), code == CLD_DUMPED ? ", core dumped" : "", when);
    else
        snprintf(buf, n, "worker process %d died %s (status unknown)", (int)pid, when);
}

void pp__close(int *fd) {
    if (*fd >= 0) {
        int saved = errno;
        close(*fd);
        errno = saved;
        *fd = -1;
    }
}

/* In a child right after fork: default dispositions for the classic
 * signals (SIGINT ignored: the parent decides), then unblock everything.
 * Real-time signals belong to the threading library and are left alone. */
void pp__child_reset_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    for (int s = 1; s < 32; s++) {
        if (s == SIGKILL || s == SIGSTOP)
            continue;
        sa.sa_handler = (s == SIGINT) ? SIG_IGN : SIG_DFL;
        sigaction(s, &sa, NULL);
    }
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
}

/* In a child right after fork: name the process. The system call itself,
 * not prctl(): a sanitizer's prctl takes its thread registry's lock to
 * rename the thread, and a fork that caught another thread holding that
 * lock left the child waiting on it forever (seen under ASan). */
void pp__child_set_name(const char *name) {
    (void)syscall(SYS_prctl, PR_SET_NAME, (unsigned long)name, 0UL, 0UL, 0UL);
}
