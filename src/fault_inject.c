/*
 * fault_inject.c - the wrappers behind fault_inject.h: fail one call site
 * at its Nth call, log every site a process reaches.
 *
 * DESIGN: linked only into the test library procpool_fi, whose other
 * sources are compiled with `-include fault_inject.h`; this file is not,
 * so the calls below reach libc. Configuration comes from the environment,
 * read once per process image (a constructor):
 *   PP_FI_LOG=path      append "R scope site call" the first time a process
 *                       reaches a site, "I scope site call n errno" when it
 *                       injects (scope: P for the program's own process, C
 *                       for every other: workers, the fork server, MPI
 *                       agents and their workers)
 *   PP_FI_SITE=file:line  the site to fail (file is the source's base name)
 *   PP_FI_NTH=n         its nth call fails (1-based; counted per process)
 *   PP_FI_MODE=once|persist   only that call, or every call from then on
 *   PP_FI_ERRNO=e       the errno the failed call reports
 *   PP_FI_SCOPE=parent|child  which processes inject (default parent)
 * The program's own process is the first one whose constructor runs (it
 * writes its pid into PP_FI_ROOT_PID, so exec'd workers know they are
 * not), and under an MPI launcher only rank 0's.
 *
 * Races: sites are counted in a lock-free table (a compare-and-swap claims
 * a slot; counts are atomic adds), so threads and forked children never
 * wait on a lock another thread held at fork. A forked child starts its
 * counts afresh: a call notices that getpid() changed and clears them
 * before the child has threads of its own. Logging uses open/write/close
 * on a stack buffer: no allocation, no stdio, safe right after fork.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define SITES 2048

typedef struct {
    _Atomic(const char *) file;
    _Atomic int line;
    _Atomic unsigned calls;
    _Atomic int logged;
} site_t;

static site_t sites[SITES];
static _Atomic pid_t table_pid;

static struct {
    bool on;
    const char *log;
    char target[256]; /* "file.c" of PP_FI_SITE */
    int target_line;
    unsigned nth;
    bool persist;
    int err;
    bool child_scope;
    pid_t root;
} cfg;

static const char *base_name(const char *f) {
    const char *s = strrchr(f, '/');
    return s ? s + 1 : f;
}

static char *put_str(char *p, char *end, const char *s) {
    while (*s && p < end)
        *p++ = *s++;
    return p;
}

static char *put_num(char *p, char *end, long v) {
    char tmp[24];
    int n = 0;
    unsigned long u = v < 0 ? (unsigned long)-v : (unsigned long)v;
    do
        tmp[n++] = (char)('0' + u % 10);
    while ((u /= 10) && n < (int)sizeof tmp);
    if (v < 0 && p < end)
        *p++ = '-';
    while (n && p < end)
        *p++ = tmp[--n];
    return p;
}

__attribute__((constructor)) static void fi_init(void) {
    const char *log = getenv("PP_FI_LOG");
    const char *site = getenv("PP_FI_SITE");
    cfg.log = log && *log ? log : NULL;
    if (site && *site) {
        const char *colon = strrchr(site, ':');
        size_t n = colon ? (size_t)(colon - site) : 0;
        if (colon && n < sizeof cfg.target) {
            memcpy(cfg.target, site, n);
            cfg.target[n] = '\0';
            cfg.target_line = atoi(colon + 1);
            const char *s;
            cfg.nth = (s = getenv("PP_FI_NTH")) ? (unsigned)strtoul(s, NULL, 10) : 1u;
            cfg.persist = (s = getenv("PP_FI_MODE")) && strcmp(s, "persist") == 0;
            cfg.err = (s = getenv("PP_FI_ERRNO")) ? atoi(s) : ENOMEM;
            cfg.child_scope = (s = getenv("PP_FI_SCOPE")) && strcmp(s, "child") == 0;
            cfg.on = cfg.nth > 0 && cfg.err > 0;
        }
    }
    /* The first image to run this is the program; it names its pid in the
     * environment, for its exec'd descendants (other pids: not the program)
     * and for another copy of this file in the same process (the MPI
     * backend's: the same pid). Under an MPI launcher only rank 0 is. */
    const char *rank = getenv("OMPI_COMM_WORLD_RANK");
    const char *root = getenv("PP_FI_ROOT_PID");
    if (root)
        cfg.root = (pid_t)atoi(root);
    else if (!(rank && strcmp(rank, "0") != 0)) {
        char buf[24], *e = put_num(buf, buf + sizeof buf - 1, (long)getpid());
        *e = '\0';
        cfg.root = getpid();
        setenv("PP_FI_ROOT_PID", buf, 1);
    } else
        cfg.root = -1;
}

static void log_line(char kind, bool root, const char *f, int l, const char *call, long n,
                     int err) {
    if (!cfg.log)
        return;
    int saved = errno;
    char buf[512], *p = buf, *end = buf + sizeof buf - 1;
    *p++ = kind;
    *p++ = ' ';
    *p++ = root ? 'P' : 'C';
    *p++ = ' ';
    p = put_str(p, end, base_name(f));
    p = put_str(p, end, ":");
    p = put_num(p, end, l);
    p = put_str(p, end, " ");
    p = put_str(p, end, call);
    if (kind == 'I') {
        p = put_str(p, end, " ");
        p = put_num(p, end, n);
        p = put_str(p, end, " ");
        p = put_num(p, end, err);
    }
    *p++ = '\n';
    int fd = open(cfg.log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0) {
        ssize_t w = write(fd, buf, (size_t)(p - buf));
        (void)w;
        close(fd);
    }
    errno = saved;
}

static site_t *site_of(const char *f, int l) {
    size_t h = ((uintptr_t)f >> 3) * 31u + (unsigned)l;
    for (size_t i = 0; i < SITES; i++) {
        site_t *s = &sites[(h + i) % SITES];
        const char *cur = atomic_load(&s->file);
        if (cur == NULL) {
            const char *expect = NULL;
            if (atomic_compare_exchange_strong(&s->file, &expect, f)) {
                atomic_store(&s->line, l);
                return s;
            }
            cur = expect;
        }
        if (cur == f) {
            /* a slot claimed a moment ago may not have its line yet */
            int sl;
            while ((sl = atomic_load(&s->line)) == 0)
                ;
            if (sl == l)
                return s;
        }
    }
    return NULL;
}

/* 0: make the call; else the errno to fail it with. */
static int hit(const char *f, int l, const char *call) {
    if (!cfg.log && !cfg.on)
        return 0;
    int saved = errno;
    pid_t me = getpid();
    if (atomic_load(&table_pid) != me) {
        for (size_t i = 0; i < SITES; i++) {
            atomic_store(&sites[i].calls, 0);
            atomic_store(&sites[i].logged, 0);
        }
        atomic_store(&table_pid, me);
    }
    bool root = me == cfg.root;
    site_t *s = site_of(f, l);
    errno = saved;
    if (!s)
        return 0;
    unsigned n = atomic_fetch_add(&s->calls, 1) + 1;
    if (atomic_exchange(&s->logged, 1) == 0)
        log_line('R', root, f, l, call, 0, 0);
    if (!cfg.on || root == cfg.child_scope || l != cfg.target_line ||
        strcmp(base_name(f), cfg.target) != 0)
        return 0;
    if (n == cfg.nth || (cfg.persist && n > cfg.nth)) {
        log_line('I', root, f, l, call, (long)n, cfg.err);
        return cfg.err;
    }
    return 0;
}

#define FAIL_INT(call)                                                                             \
    do {                                                                                           \
        int e_ = hit(f, l, call);                                                                  \
        if (e_) {                                                                                  \
            errno = e_;                                                                            \
            return -1;                                                                             \
        }                                                                                          \
    } while (0)

#define FAIL_PTR(call, bad)                                                                        \
    do {                                                                                           \
        int e_ = hit(f, l, call);                                                                  \
        if (e_) {                                                                                  \
            errno = e_;                                                                            \
            return bad;                                                                            \
        }                                                                                          \
    } while (0)

void *pp__fi_malloc(const char *f, int l, size_t n) {
    FAIL_PTR("malloc", NULL);
    return malloc(n);
}

void *pp__fi_calloc(const char *f, int l, size_t n, size_t m) {
    FAIL_PTR("calloc", NULL);
    return calloc(n, m);
}

void *pp__fi_realloc(const char *f, int l, void *p, size_t n) {
    FAIL_PTR("realloc", NULL);
    return realloc(p, n);
}

char *pp__fi_strdup(const char *f, int l, const char *s) {
    FAIL_PTR("strdup", NULL);
    return strdup(s);
}

void *pp__fi_mmap(const char *f, int l, void *a, size_t n, int prot, int flags, int fd, off_t o) {
    FAIL_PTR("mmap", MAP_FAILED);
    return mmap(a, n, prot, flags, fd, o);
}

void *pp__fi_mremap(const char *f, int l, void *a, size_t o, size_t n, int flags, ...) {
    FAIL_PTR("mremap", MAP_FAILED);
    void *to = NULL;
    if (flags & MREMAP_FIXED) {
        va_list ap;
        va_start(ap, flags);
        to = va_arg(ap, void *);
        va_end(ap);
        return mremap(a, o, n, flags, to);
    }
    return mremap(a, o, n, flags);
}

int pp__fi_ftruncate(const char *f, int l, int fd, off_t n) {
    FAIL_INT("ftruncate");
    return ftruncate(fd, n);
}

int pp__fi_fallocate(const char *f, int l, int fd, int mode, off_t o, off_t n) {
    FAIL_INT("fallocate");
    return fallocate(fd, mode, o, n);
}

int pp__fi_socketpair(const char *f, int l, int d, int t, int p, int sv[2]) {
    FAIL_INT("socketpair");
    return socketpair(d, t, p, sv);
}

ssize_t pp__fi_sendmsg(const char *f, int l, int fd, const struct msghdr *m, int flags) {
    FAIL_INT("sendmsg");
    return sendmsg(fd, m, flags);
}

ssize_t pp__fi_recvmsg(const char *f, int l, int fd, struct msghdr *m, int flags) {
    FAIL_INT("recvmsg");
    return recvmsg(fd, m, flags);
}

int pp__fi_eventfd(const char *f, int l, unsigned v, int flags) {
    FAIL_INT("eventfd");
    return eventfd(v, flags);
}

int pp__fi_pipe(const char *f, int l, int p[2]) {
    FAIL_INT("pipe");
    return pipe(p);
}

int pp__fi_pipe2(const char *f, int l, int p[2], int flags) {
    FAIL_INT("pipe2");
    return pipe2(p, flags);
}

int pp__fi_open(const char *f, int l, const char *path, int flags, ...) {
    FAIL_INT("open");
    mode_t mode = 0;
    if (flags & (O_CREAT | O_TMPFILE)) {
        va_list ap;
        va_start(ap, flags);
        mode = (mode_t)va_arg(ap, int);
        va_end(ap);
    }
    return open(path, flags, mode);
}

int pp__fi_fcntl(const char *f, int l, int fd, int cmd, ...) {
    FAIL_INT("fcntl");
    va_list ap;
    va_start(ap, cmd);
    int r;
    switch (cmd) {
    case F_GETFD:
    case F_GETFL:
    case F_GET_SEALS:
    case F_GETPIPE_SZ: r = fcntl(fd, cmd); break;
    case F_SETLK:
    case F_SETLKW:
    case F_GETLK:
    case F_OFD_SETLK:
    case F_OFD_SETLKW:
    case F_OFD_GETLK: r = fcntl(fd, cmd, va_arg(ap, void *)); break;
    default: r = fcntl(fd, cmd, va_arg(ap, int)); break;
    }
    va_end(ap);
    return r;
}

/* What kind of file fd is, as part of a call's name: a write to an eventfd
 * cannot fail as one to a pipe can. */
static const char *kind_of(int fd, const char *eventfd, const char *memfd, const char *pipe,
                           const char *sock, const char *other) {
    char path[40], target[64];
    int saved = errno;
    char *p = path;
    p = put_str(p, path + sizeof path - 12, "/proc/self/fd/");
    p = put_num(p, path + sizeof path - 1, fd);
    *p = '\0';
    ssize_t n = readlink(path, target, sizeof target - 1);
    errno = saved;
    if (n < 0)
        return other;
    target[n] = '\0';
    if (strstr(target, "eventfd"))
        return eventfd;
    if (strncmp(target, "/memfd:", 7) == 0)
        return memfd;
    if (strncmp(target, "pipe:", 5) == 0)
        return pipe;
    if (strncmp(target, "socket:", 7) == 0)
        return sock;
    return other;
}

ssize_t pp__fi_read(const char *f, int l, int fd, void *b, size_t n) {
    FAIL_INT(kind_of(fd, "read_eventfd", "read_memfd", "read_pipe", "read_socket", "read"));
    return read(fd, b, n);
}

ssize_t pp__fi_write(const char *f, int l, int fd, const void *b, size_t n) {
    FAIL_INT(kind_of(fd, "write_eventfd", "write_memfd", "write_pipe", "write_socket", "write"));
    return write(fd, b, n);
}

ssize_t pp__fi_pread(const char *f, int l, int fd, void *b, size_t n, off_t o) {
    FAIL_INT("pread");
    return pread(fd, b, n, o);
}

int pp__fi_signalfd(const char *f, int l, int fd, const sigset_t *m, int flags) {
    FAIL_INT("signalfd");
    return signalfd(fd, m, flags);
}

int pp__fi_prctl(const char *f, int l, int op, ...) {
    FAIL_INT("prctl");
    va_list ap;
    va_start(ap, op);
    unsigned long a2 = va_arg(ap, unsigned long), a3 = va_arg(ap, unsigned long);
    unsigned long a4 = va_arg(ap, unsigned long), a5 = va_arg(ap, unsigned long);
    va_end(ap);
    return prctl(op, a2, a3, a4, a5);
}

int pp__fi_kill(const char *f, int l, pid_t pid, int sig) {
    FAIL_INT("kill");
    return kill(pid, sig);
}

/* A wait that does not block cannot be interrupted: its own name. ECHILD
 * is made real: another part of the program reaped the child first (a
 * waitpid(-1) of its own), so it is reaped here before the call fails. */
int pp__fi_waitid(const char *f, int l, idtype_t t, id_t id, siginfo_t *i, int o) {
    int e = hit(f, l, o & WNOHANG ? "waitid_nohang" : "waitid");
    if (e == ECHILD) {
        siginfo_t stolen;
        memset(&stolen, 0, sizeof stolen);
        int r = waitid(t, id, &stolen, o & ~WNOWAIT);
        if (r < 0 || stolen.si_pid == 0) { /* nothing to steal (yet) */
            if (r == 0 && i)
                *i = stolen;
            return r;
        }
    }
    if (e) {
        errno = e;
        return -1;
    }
    return waitid(t, id, i, o);
}

pid_t pp__fi_waitpid(const char *f, int l, pid_t pid, int *st, int o) {
    int e = hit(f, l, o & WNOHANG ? "waitpid_nohang" : "waitpid");
    if (e == ECHILD) {
        pid_t r = waitpid(pid, NULL, o);
        if (r <= 0)
            return r;
    }
    if (e) {
        errno = e;
        return -1;
    }
    return waitpid(pid, st, o);
}

int pp__fi_poll(const char *f, int l, struct pollfd *p, nfds_t n, int t) {
    FAIL_INT("poll");
    return poll(p, n, t);
}

pid_t pp__fi_fork(const char *f, int l) {
    FAIL_INT("fork");
    return fork();
}

int pp__fi_posix_spawn(const char *f, int l, pid_t *pid, const char *path,
                       const posix_spawn_file_actions_t *fa, const posix_spawnattr_t *at,
                       char *const argv[], char *const envp[]) {
    int e = hit(f, l, "posix_spawn");
    if (e)
        return e;
    return posix_spawn(pid, path, fa, at, argv, envp);
}

int pp__fi_pthread_create(const char *f, int l, pthread_t *t, const pthread_attr_t *a,
                          void *(*fn)(void *), void *arg) {
    int e = hit(f, l, "pthread_create");
    if (e)
        return e;
    return pthread_create(t, a, fn, arg);
}

int pp__fi_sched_getaffinity(const char *f, int l, pid_t pid, size_t n, cpu_set_t *s) {
    FAIL_INT("sched_getaffinity");
    return sched_getaffinity(pid, n, s);
}

long pp__fi_syscall(const char *f, int l, long nr, ...) {
    va_list ap;
    va_start(ap, nr);
    long a[6];
    for (int i = 0; i < 6; i++)
        a[i] = va_arg(ap, long);
    va_end(ap);
    const char *call = nr == SYS_pidfd_open          ? "pidfd_open"
                       : nr == SYS_pidfd_send_signal ? "pidfd_send_signal"
                       : nr == SYS_memfd_create      ? "memfd_create"
                                                     : NULL;
    if (call)
        FAIL_INT(call);
    return syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
}
