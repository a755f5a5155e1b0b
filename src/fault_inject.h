/*
 * fault_inject.h - the fault-injection build's view of the system calls and
 * allocations the library makes.
 *
 * DESIGN: never part of the shipped library. The test build procpool_fi
 * compiles every library source with `-include fault_inject.h`, so each
 * call below, at each place in src/ that makes it, goes through a wrapper
 * in fault_inject.c instead. The wrapper knows its call site (file and
 * line): a site is a place in the code, not a function. Driven by the
 * environment (see fault_inject.c), one site can be made to fail at its
 * Nth call, or at every call from the Nth on, with an errno that call can
 * really return; every site a process reaches is logged, so a driver
 * (tests/fi/fi_driver.c) can fail each one in turn.
 *
 * The system headers that declare the wrapped calls are included first:
 * their declarations must be seen before the macros exist, and a source's
 * own later #include of them is then a no-op. A function-like macro only
 * expands where the name is followed by '(', so function pointers and
 * struct members named like a call are left alone (write `(p->open)(x)`
 * to call a member named like one).
 */
#ifndef PROCPOOL_FAULT_INJECT_H
#define PROCPOOL_FAULT_INJECT_H

#include <dlfcn.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
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

#define PP__FI_SITE __FILE__, __LINE__

void *pp__fi_malloc(const char *f, int l, size_t n);
void *pp__fi_calloc(const char *f, int l, size_t n, size_t m);
void *pp__fi_realloc(const char *f, int l, void *p, size_t n);
char *pp__fi_strdup(const char *f, int l, const char *s);
void *pp__fi_mmap(const char *f, int l, void *a, size_t n, int prot, int flags, int fd, off_t o);
void *pp__fi_mremap(const char *f, int l, void *a, size_t o, size_t n, int flags, ...);
int pp__fi_ftruncate(const char *f, int l, int fd, off_t n);
int pp__fi_fallocate(const char *f, int l, int fd, int mode, off_t o, off_t n);
int pp__fi_socketpair(const char *f, int l, int d, int t, int p, int sv[2]);
ssize_t pp__fi_sendmsg(const char *f, int l, int fd, const struct msghdr *m, int flags);
ssize_t pp__fi_recvmsg(const char *f, int l, int fd, struct msghdr *m, int flags);
int pp__fi_eventfd(const char *f, int l, unsigned v, int flags);
int pp__fi_pipe(const char *f, int l, int p[2]);
int pp__fi_pipe2(const char *f, int l, int p[2], int flags);
int pp__fi_open(const char *f, int l, const char *path, int flags, ...);
int pp__fi_fcntl(const char *f, int l, int fd, int cmd, ...);
ssize_t pp__fi_read(const char *f, int l, int fd, void *b, size_t n);
ssize_t pp__fi_write(const char *f, int l, int fd, const void *b, size_t n);
ssize_t pp__fi_pread(const char *f, int l, int fd, void *b, size_t n, off_t o);
int pp__fi_signalfd(const char *f, int l, int fd, const sigset_t *m, int flags);
int pp__fi_prctl(const char *f, int l, int op, ...);
int pp__fi_kill(const char *f, int l, pid_t pid, int sig);
int pp__fi_waitid(const char *f, int l, idtype_t t, id_t id, siginfo_t *i, int o);
pid_t pp__fi_waitpid(const char *f, int l, pid_t pid, int *st, int o);
int pp__fi_poll(const char *f, int l, struct pollfd *p, nfds_t n, int t);
pid_t pp__fi_fork(const char *f, int l);
int pp__fi_posix_spawn(const char *f, int l, pid_t *pid, const char *path,
                       const posix_spawn_file_actions_t *fa, const posix_spawnattr_t *at,
                       char *const argv[], char *const envp[]);
int pp__fi_pthread_create(const char *f, int l, pthread_t *t, const pthread_attr_t *a,
                          void *(*fn)(void *), void *arg);
int pp__fi_sched_getaffinity(const char *f, int l, pid_t pid, size_t n, cpu_set_t *s);
long pp__fi_syscall(const char *f, int l, long nr, ...);

#define malloc(n) pp__fi_malloc(PP__FI_SITE, n)
#define calloc(n, m) pp__fi_calloc(PP__FI_SITE, n, m)
#define realloc(p, n) pp__fi_realloc(PP__FI_SITE, p, n)
#define strdup(s) pp__fi_strdup(PP__FI_SITE, s)
#define mmap(...) pp__fi_mmap(PP__FI_SITE, __VA_ARGS__)
#define mremap(...) pp__fi_mremap(PP__FI_SITE, __VA_ARGS__)
#define ftruncate(...) pp__fi_ftruncate(PP__FI_SITE, __VA_ARGS__)
#define fallocate(...) pp__fi_fallocate(PP__FI_SITE, __VA_ARGS__)
#define socketpair(...) pp__fi_socketpair(PP__FI_SITE, __VA_ARGS__)
#define sendmsg(...) pp__fi_sendmsg(PP__FI_SITE, __VA_ARGS__)
#define recvmsg(...) pp__fi_recvmsg(PP__FI_SITE, __VA_ARGS__)
#define eventfd(...) pp__fi_eventfd(PP__FI_SITE, __VA_ARGS__)
#define pipe(...) pp__fi_pipe(PP__FI_SITE, __VA_ARGS__)
#define pipe2(...) pp__fi_pipe2(PP__FI_SITE, __VA_ARGS__)
#define open(...) pp__fi_open(PP__FI_SITE, __VA_ARGS__)
#define fcntl(...) pp__fi_fcntl(PP__FI_SITE, __VA_ARGS__)
#define read(...) pp__fi_read(PP__FI_SITE, __VA_ARGS__)
#define write(...) pp__fi_write(PP__FI_SITE, __VA_ARGS__)
#define pread(...) pp__fi_pread(PP__FI_SITE, __VA_ARGS__)
#define signalfd(...) pp__fi_signalfd(PP__FI_SITE, __VA_ARGS__)
#define prctl(...) pp__fi_prctl(PP__FI_SITE, __VA_ARGS__)
#define kill(...) pp__fi_kill(PP__FI_SITE, __VA_ARGS__)
#define waitid(...) pp__fi_waitid(PP__FI_SITE, __VA_ARGS__)
#define waitpid(...) pp__fi_waitpid(PP__FI_SITE, __VA_ARGS__)
#define poll(...) pp__fi_poll(PP__FI_SITE, __VA_ARGS__)
#define fork() pp__fi_fork(PP__FI_SITE)
#define posix_spawn(...) pp__fi_posix_spawn(PP__FI_SITE, __VA_ARGS__)
#define pthread_create(...) pp__fi_pthread_create(PP__FI_SITE, __VA_ARGS__)
#define sched_getaffinity(...) pp__fi_sched_getaffinity(PP__FI_SITE, __VA_ARGS__)
#define syscall(...) pp__fi_syscall(PP__FI_SITE, __VA_ARGS__)

#endif
