/*
 * sys.h - small OS helpers (sys.c) and the library's common macros, for
 * every process: the parent, the worker, the zygote, the MPI agent.
 *
 * DESIGN: no pool, no worker state: wrappers around system calls (futex,
 * memfd, pidfd, fd passing), descriptions of signals and statuses, and the
 * test hook that fails allocations on error paths.
 */
#ifndef PP_SYS_H
#define PP_SYS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define PP__HIDDEN __attribute__((visibility("hidden")))
#define PP__CACHELINE 64
#define PP__ALIGN8(x) (((x) + 7u) & ~(size_t)7u)

/* ------------------------------------------------------------------ */
/* sys.c: small OS helpers                                              */
/* ------------------------------------------------------------------ */
uint64_t pp__now_ns(void);
int pp__futex_wait(_Atomic uint32_t *addr, uint32_t val, int64_t timeout_ns, bool shared);
void pp__futex_wake(_Atomic uint32_t *addr, int n, bool shared);
static inline void pp__cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}
uint64_t pp__fsize_max(void); /* RLIMIT_FSIZE in bytes; UINT64_MAX: none */
void pp__describe_fsize(char *buf, size_t n, int err, uint64_t size);
int pp__memfd(const char *name, size_t size, bool sealable); /* -EFBIG over RLIMIT_FSIZE */
int pp__reopen_rdonly(int fd);
int pp__memfd_err(int err);
int pp__start_send_err(int err); /* a refused start-up message, as create documents it */
int pp__sealed_copy(const char *name, const void *data, size_t len);
int pp__pidfd_open(pid_t pid);
int pp__pidfd_signal(int pidfd, int sig);
int pp__signal_child(int pidfd, pid_t pid, int sig); /* our own unreaped child only */
int pp__send_fds(int sock, const void *msg, size_t len, const int *fds,
                 int nfds); /* non-blocking */
int pp__send_fds_flags(int sock, const void *msg, size_t len, const int *fds, int nfds, int flags);
ssize_t pp__recv_fds(int sock, void *msg, size_t len, int *fds, int maxfds, int *nfds, int flags);
ssize_t pp__recv_fds_lost(int sock, void *msg, size_t len, int *fds, int maxfds, int *nfds,
                          int flags, bool *lost); /* *lost: fds dropped for want of a descriptor */
const char *pp__signame(int sig);
void pp__describe_status(char *buf, size_t n, pid_t pid, int code, int status, const char *when);
void pp__close(int *fd);
void pp__child_reset_signals(void);
void pp__child_set_name(const char *name); /* after fork: no libc or sanitizer lock */

/* Fault injection for the tests, NULL in programs: when set, the
 * allocations on failure paths ask it first, naming their site
 * ("map.retry", "map.retry_blob", "map.chunk_res", "supervise.poll_set"),
 * and fail as out of memory when it returns true. Never on a fast path. */
extern bool (*pp__test_alloc_fail)(const char *site);
static inline bool pp__alloc_fails(const char *site) {
    return pp__test_alloc_fail && pp__test_alloc_fail(site);
}

#endif
