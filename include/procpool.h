/*
 * procpool.h - a process pool for C, modelled on Python's multiprocessing.Pool.
 *
 * This is the library's one public header. Every function documents what it
 * does and every error it returns. Conventions:
 *
 *  - Functions that can fail return 0 (or a count) on success and a negative
 *    error code on failure: -errno for OS-level causes, or one of the PP_E*
 *    codes below, which live in a reserved negative range that no errno uses.
 *    pp_strerror() turns any code into a sentence, pp_err_name() into its
 *    symbol name. Each function's comment lists every code it can return,
 *    with its cause; a code not listed there is a bug.
 *  - Timeouts are relative, in seconds, as double: < 0 waits forever, 0 polls.
 *  - Destroy/free functions accept NULL and are then no-ops.
 *  - Every pool and future function may be called from any thread of the
 *    parent process.
 *
 * Copyright (c) 2026 the procpool authors. MIT licence.
 */
#ifndef PROCPOOL_H
#define PROCPOOL_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(PP_BUILDING_LIBRARY) && defined(__GNUC__)
#define PP_EXTERN __attribute__((visibility("default")))
#else
#define PP_EXTERN
#endif

#if defined(__GNUC__)
#define PP_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define PP_PRINTF(f, a)
#endif

/*
 * The version of this header. pp_version() and pp_version_string() give the
 * version of the library actually loaded, which may differ (an older
 * libprocpool.so.0 found at run time):
 *     if (pp_version() >> 8 != (PROCPOOL_VERSION_MAJOR << 8 | PROCPOOL_VERSION_MINOR))
 *         fprintf(stderr, "built with procpool %s, running %s\n",
 *                 PROCPOOL_VERSION_STRING, pp_version_string());
 * Before 1.0 a minor release may change the API; patch releases do not.
 */
#define PROCPOOL_VERSION_MAJOR 0
#define PROCPOOL_VERSION_MINOR 2
#define PROCPOOL_VERSION_PATCH 0
#define PROCPOOL_VERSION_STRING "0.2.0"
#define PROCPOOL_VERSION_NUMBER                                                                    \
    (PROCPOOL_VERSION_MAJOR << 16 | PROCPOOL_VERSION_MINOR << 8 | PROCPOOL_VERSION_PATCH)

/*
 * pp_version - the loaded library's version as MAJOR << 16 | MINOR << 8 |
 * PATCH (0.2.0 is 0x000200), to compare with PROCPOOL_VERSION_NUMBER.
 * Never fails.
 */
PP_EXTERN unsigned pp_version(void);

/*
 * pp_version_string - the loaded library's version as text, e.g. "0.2.0".
 * Never returns NULL; the string is static.
 */
PP_EXTERN const char *pp_version_string(void);

/* ------------------------------------------------------------------------ */
/* Errors                                                                   */
/* ------------------------------------------------------------------------ */

/*
 * The library's own error codes, as one X-macro table:
 * XX(name, value, sentence). Values sit at -20000 and below, far away from
 * every -errno value.
 */
#define PP_ERRNO_MAP(XX)                                                                           \
    XX(ECLOSED, -20001, "the pool is closed or terminated")                                        \
    XX(ETASK, -20002, "the task function reported a failure")                                      \
    XX(EWORKER, -20003, "the worker process died while running the task")                          \
    XX(ETASKTIMEOUT, -20004, "the task ran past the pool's task timeout")                          \
    XX(ECANCELED, -20005, "the task was cancelled before it ran")                                  \
    XX(EPROTO, -20006, "a worker broke the shared-memory protocol and was killed")                 \
    XX(ENOAGENTS, -20007,                                                                          \
       "no MPI agents: not started by mpirun with PROCPOOL_BACKEND=mpi, "                          \
       "or procpool was built without MPI")

typedef enum {
#define PP__ERR_ENUM(name, val, msg) PP_##name = (val),
    PP_ERRNO_MAP(PP__ERR_ENUM)
#undef PP__ERR_ENUM
} pp_errno_t;

/*
 * pp_strerror - a human-readable sentence for an error code.
 * Accepts PP_E* codes and negative errno values (e.g. -ETIMEDOUT); 0 gives
 * "success". Every code any function of this header documents has a
 * sentence of its own (-EOWNERDEAD, -EFBIG, -EMFILE, ... included); any
 * other value gives "unknown error". Never returns NULL; the string is
 * static and thread-safe.
 */
PP_EXTERN const char *pp_strerror(int err);

/*
 * pp_err_name - the symbolic name of an error code: "PP_ECLOSED",
 * "ETIMEDOUT", "EINVAL", ... ; 0 gives "OK". Knows every code this header
 * documents; any other value gives "UNKNOWN". The errno EPROTO
 * ("EPROTO") and the library's PP_EPROTO ("PP_EPROTO") are different
 * codes. Never returns NULL; the string is static.
 */
PP_EXTERN const char *pp_err_name(int err);

/* ------------------------------------------------------------------------ */
/* Tasks                                                                    */
/* ------------------------------------------------------------------------ */

/* A task's output, owned by the library. Only valid inside the task call. */
typedef struct pp_buf pp_buf_t;

/*
 * A task function. Runs in a worker process, reads arg[0..arg_len) and
 * writes its result to out. Returns 0 on success; any other value makes the
 * task fail with PP_ETASK, and that value is the task's status
 * (pp_future_task_status()). Under the fork start method any function of
 * the program may be a task; no registration is needed.
 */
typedef int (*pp_task_fn)(const void *arg, size_t arg_len, pp_buf_t *out);

/*
 * pp_buf_append - append len bytes to the task's result.
 * Returns 0, -EINVAL (out NULL, or data NULL with len > 0), -ENOMEM (no
 * memory for the result), -EFBIG (a result over 64 KiB that does not fit
 * the worker's arena in shared memory travels in a memfd, a file: it
 * cannot grow past the RLIMIT_FSIZE limit), or -EMFILE, -ENFILE (that
 * memfd could not be made: no descriptor free in the worker, or in the
 * system).
 * A result may be any size from 0 bytes up to what memory allows.
 * When the result could not grow (-ENOMEM, -EFBIG, -EMFILE, -ENFILE) the
 * task fails even if it returns 0, since its result would be incomplete:
 * PP_ETASK, with that error as pp_future_task_status() and a message
 * saying so.
 */
PP_EXTERN int pp_buf_append(pp_buf_t *out, const void *data, size_t len);

/*
 * pp_buf_reserve - make room for len more bytes at the end of the result and
 * return a pointer to them, to be written in place; the result grows by len.
 * The pointer is valid until the next pp_buf_* call on out.
 * Returns NULL (errno set to EINVAL, ENOMEM, EFBIG, EMFILE or ENFILE, as
 * for pp_buf_append) on failure; a failure to grow fails the task as with
 * pp_buf_append.
 */
PP_EXTERN void *pp_buf_reserve(pp_buf_t *out, size_t len);

/*
 * pp_buf_fail - set the task's error message (printf-style; truncated to
 * 1023 bytes) and return a non-zero status for the task to return:
 *     if (bad) return pp_buf_fail(out, "bad input %d", x);
 * The returned status is 1. The message reaches the parent as
 * pp_future_error(). Any result bytes already written are discarded when the
 * task fails.
 */
PP_EXTERN int pp_buf_fail(pp_buf_t *out, const char *fmt, ...) PP_PRINTF(2, 3);

/* ------------------------------------------------------------------------ */
/* Pools                                                                    */
/* ------------------------------------------------------------------------ */

typedef struct pp_pool pp_pool_t;

typedef enum { PP_START_FORK = 0, PP_START_FORKSERVER, PP_START_SPAWN } pp_start_t;

/*
 * Where the workers run. LOCAL: processes on this machine. MPI: on the node
 * agents of an Open MPI job (see pp_pool_create and docs/distributed.md).
 * DEFAULT: MPI when the environment variable PROCPOOL_BACKEND is "mpi",
 * else LOCAL.
 */
typedef enum { PP_BACKEND_DEFAULT = 0, PP_BACKEND_LOCAL, PP_BACKEND_MPI } pp_backend_t;

typedef struct pp_options {
    int processes;                  /* 0: pp_cpu_count() */
    void (*initializer)(void *arg); /* run once in each worker when it starts; may be NULL */
    void *initarg;
    unsigned max_tasks_per_child; /* a worker is replaced after this many tasks; 0: never */
    double task_timeout;     /* seconds a task may run before its worker is killed; 0: no limit */
    pp_start_t start_method; /* PP_START_FORK by default. FORKSERVER: every worker forked from a
                                       fork server made at pool creation (so it sees the parent as it was
                                       then); SPAWN: a fresh exec of the program, main() never runs */
    size_t shm_size;         /* address range reserved for pp_shm_alloc (virtual; pages cost
                                       memory only once written); 0: twice the physical memory, or
                                       under RLIMIT_AS half the address space it leaves free if
                                       that is less, and at most RLIMIT_FSIZE (the range is a
                                       memfd, a file) */
    size_t max_memory_per_child; /* resident bytes: a worker past this after a task is replaced
                                       (the task succeeds); 0: no limit */
    unsigned retries;            /* times a task whose worker died is run again before it fails
                                       PP_EWORKER (not after a timeout); 0: fail at once */
    pp_backend_t backend;   /* PP_BACKEND_DEFAULT: PROCPOOL_BACKEND decides (local unless "mpi") */
    const char *trace_file; /* write the pool's timeline to this file (Chrome trace event
                                       JSON, docs/tracing.md); NULL: the environment variable
                                       PROCPOOL_TRACE names it, if set. Pools of one process that
                                       name the same file share it. (0.2) */
} pp_options_t;

/*
 * pp_options_init - fill *opt with the defaults: processes 0 (one per CPU),
 * no initializer, no task limit, no timeout, PP_START_FORK.
 * opt NULL is a no-op.
 */
PP_EXTERN void pp_options_init(pp_options_t *opt);

/*
 * pp_cpu_count - the number of CPUs this process may use: the CPUs in its
 * affinity mask, capped by the cgroup v2 cpu.max quota (ceil(quota/period))
 * and by the PROCPOOL_CPUS environment variable when it holds a positive
 * integer. Never less than 1.
 */
PP_EXTERN int pp_cpu_count(void);

/*
 * pp_pool_create - start a pool of worker processes.
 * opt NULL uses the defaults. The workers and a single-threaded fork server
 * (the zygote, from which replacement workers are forked) are started before
 * this returns, along with one supervisor thread in the calling process.
 * Under PP_START_FORK (and FORKSERVER) workers see the parent's memory as it
 * was at this call, at no cost: tasks may read any data the parent had
 * before pp_pool_create (copy-on-write: what a task writes there stays in
 * its worker). To share data written later, or to write results in place,
 * use pp_shm_alloc.
 * Start methods: FORK forks the workers from the calling process (through
 * the supervisor thread) and replacements from the zygote; FORKSERVER forks
 * every worker from the zygote; SPAWN starts each worker as a fresh
 * execution of /proc/self/exe in which the library takes over before main()
 * runs. Under SPAWN, task functions and the initializer are sent as their
 * offset in their loaded object, checked by build id (a rebuilt program is
 * a clear task error); they must live in the program or in a library it
 * loaded at start. initarg must then be NULL or point into the program's
 * static data (globals, string literals: the worker sees them as they were
 * at program start). Shared memory is mapped at the same address.
 * Errors, with *pool set to NULL:
 *  -EINVAL  pool NULL; processes < 0 or > 4096; task_timeout < 0 or NaN;
 *           start_method or backend not one of the enum's values; under
 *           SPAWN (or MPI) an initializer or initarg that cannot be named
 *           across an exec (see above).
 *  -ENOMEM  out of memory (in this process, or for a fork).
 *  -EFBIG   shm_size over the RLIMIT_FSIZE limit, or a limit under 260 KiB,
 *           too small for a worker's rings: shared memory is made of
 *           memfds, which are files.
 *  -ENOENT, -EACCES, -EISDIR, -EROFS, -ENOSPC, ...  opt->trace_file could
 *           not be created (open(2)'s error; -ENXIO: a FIFO that nobody
 *           reads, which is never waited for). A PROCPOOL_TRACE file that cannot be opened
 *           only prints a warning: the pool runs without a trace.
 *  -EMFILE, -ENFILE  no descriptor free for the pool's eventfd, pipe,
 *           memfds or sockets (RLIMIT_NOFILE, or the system's limit): a pool
 *           keeps about 3 descriptors per worker plus 6, and needs 4 more
 *           per worker while it starts it.
 *  -EAGAIN  fork, posix_spawn or pthread_create refused for lack of
 *           resources (RLIMIT_NPROC, the system's thread or process limit);
 *           under FORKSERVER also the fork server's fork of each worker,
 *           which create waits for.
 *  -ECHILD  FORKSERVER: the fork server died, or did not answer for 10 s,
 *           while the workers were being started; SPAWN: a new worker
 *           died before it took its start-up message.
 *  -ENOSYS  the kernel (or a seccomp profile) does not provide memfd_create
 *           or eventfd, which the pool is built on.
 *  -ENOENT, -EACCES  /proc is not mounted or not readable (a worker's task
 *           ring is reopened read-only through /proc/self/fd; under SPAWN
 *           /proc/self/exe is executed).
 *  -ENOEXEC, -E2BIG, -ETXTBSY  SPAWN only: the exec of /proc/self/exe
 *           failed (posix_spawn's error).
 *  A seccomp profile that refuses one of these system calls with an errno
 *  of its choice makes create fail with that errno.
 * A resource limit never kills the calling process (no SIGXFSZ: memfds are
 * never grown past RLIMIT_FSIZE).
 * On failure *pool is set to NULL and nothing is left behind.
 * Where pidfd_open is unavailable (Linux before 5.3, a seccomp profile,
 * valgrind) or fails for lack of descriptors, the pool works all the same:
 * worker deaths are then noticed within about 50 ms by waitid() on each
 * worker's pid (the library never installs a SIGCHLD handler and reaps
 * only its own children).
 * A pool belongs to the process that created it: in a child made by fork()
 * every call on it returns PP_ECLOSED, its pending futures stay pending, and
 * pp_pool_destroy only releases the child's copies of its fds and mappings
 * (in a task, where they were released when its worker started, it does
 * nothing). A task may create a pool of its own.
 *
 * The MPI backend: a program started as
 *     PROCPOOL_BACKEND=mpi mpirun -n N ./prog
 * runs main() on rank 0 only; every other rank becomes a node agent before
 * main() would run and never returns into it. A pool with backend MPI (the
 * default under that variable) runs its tasks on the agents: each agent
 * runs a local forked pool with the pool's options, and pp_pool_size counts
 * the workers of all agents (processes 0: each agent starts pp_cpu_count()
 * workers; N > 0: N in all, spread evenly over the agents). Functions,
 * initializer and initarg are named as under SPAWN (same binary on every
 * node). start_method and shm_size apply on the agents; pp_shm_alloc on an
 * MPI pool fails (memory cannot be shared across machines). The program
 * must not call MPI itself under PROCPOOL_BACKEND=mpi (the library owns
 * MPI_Init/MPI_Finalize). On an agent, main() and the program's own
 * constructors never run (as under SPAWN); a pool a task creates is local. Extra error: PP_ENOAGENTS (backend MPI, but the
 * process is not rank 0 of such a job, it has no other ranks, or the
 * library was built without MPI); -EINVAL also covers an initializer or
 * initarg that cannot be named across processes; -ETIMEDOUT (an agent did
 * not answer within 120 s); -EIO (a message to an agent could not be
 * sent); or the error an agent's own local pool creation returned (any of
 * the codes above).
 */
PP_EXTERN int pp_pool_create(pp_pool_t **pool, const pp_options_t *opt);

/*
 * pp_pool_size - the number of worker processes (for an MPI pool: on all
 * agents together), or -EINVAL for NULL.
 */
PP_EXTERN int pp_pool_size(const pp_pool_t *pool);

/*
 * pp_pool_close - accept no more submissions; queued work still runs.
 * Idempotent. Returns 0, -EINVAL (NULL pool) or PP_ECLOSED (called in a
 * child made by fork(): the pool is the parent's).
 */
PP_EXTERN int pp_pool_close(pp_pool_t *pool);

/*
 * pp_pool_terminate - stop now: no more submissions, workers are sent
 * SIGTERM then SIGKILL, and every unfinished future fails with PP_ECANCELED.
 * Returns once every worker and the fork server are gone and reaped.
 * Bound: under 2 s (about 0.5 s: SIGTERM, SIGKILL 200 ms later, and 200 ms
 * after that the fork server is killed if a worker it forked is still
 * there), also with the workers or the fork server stopped (SIGSTOP), with
 * no pidfds or pidfd_send_signal refused -- plus the time the pool's
 * done-callbacks take to return, which it waits for. Idempotent.
 * Returns 0, -EINVAL (NULL pool), -EDEADLK (called from a done-callback:
 * it would wait for itself) or PP_ECLOSED (called in a child made by
 * fork(): the pool is the parent's, and is left alone).
 */
PP_EXTERN int pp_pool_terminate(pp_pool_t *pool);

/*
 * pp_pool_join - wait until all submitted work is done, every done-callback
 * has returned and every worker has exited and been reaped.
 * After pp_pool_terminate it returns within the bound of terminate (under
 * 2 s, plus the done-callbacks' own time), also with the workers or the
 * fork server stopped. After
 * pp_pool_close it waits for the work, however long it takes; once the
 * work is done, a fork server that does not answer for 1 s (stopped) is
 * killed rather than waited for.
 * Returns 0, -EINVAL (NULL pool, or the pool was neither closed nor
 * terminated), -EDEADLK (called from a done-callback of this pool), or
 * PP_ECLOSED (called in a child made by fork()).
 */
PP_EXTERN int pp_pool_join(pp_pool_t *pool);

/*
 * pp_pool_destroy - terminate the pool if it is still running, reap every
 * process and free it. Leaves no child, zombie, fd or mapping behind.
 * Returns within the bound of pp_pool_terminate: under 2 s, plus the
 * done-callbacks' own time, also with the workers or the fork server
 * stopped (at once after a finished join or terminate). From a
 * done-callback it does nothing (it would wait for itself).
 * Futures of the pool stay readable and must still be freed with
 * pp_future_free. NULL is a no-op. Must not be called from a done-callback.
 */
PP_EXTERN void pp_pool_destroy(pp_pool_t *pool);

/* ------------------------------------------------------------------------ */
/* Single tasks and futures                                                 */
/* ------------------------------------------------------------------------ */

typedef struct pp_future pp_future_t;
typedef void (*pp_done_fn)(pp_future_t *f, void *userdata);

/*
 * pp_apply - run fn(arg) in a worker and wait for it.
 * arg[0..arg_len) is copied before the call returns. On success returns 0
 * and sets *result to a malloc'd copy of the result (the caller frees it;
 * non-NULL even for 0 bytes) and *result_len to its size. On failure
 * *result is NULL and *result_len 0, and the return value is one of:
 *  -EINVAL  pool, fn, result or result_len NULL; arg NULL with arg_len > 0;
 *           under SPAWN or MPI, fn outside the program's loaded objects.
 *  PP_ECLOSED  the pool is closed or terminated (or is the parent's, in a
 *           child made by fork()).
 *  PP_ETASK, PP_EWORKER, PP_ETASKTIMEOUT, PP_ECANCELED, PP_EPROTO  the
 *           task failed, as pp_future_get reports (PP_EWORKER also when
 *           workers keep dying at start-up; PP_EPROTO: the worker broke
 *           the shared-memory protocol while running it and was killed).
 *  -ENOMEM  out of memory: for the submission, to receive the result, or
 *           for the caller's copy of it.
 *  -EFBIG, -EMFILE, -ENFILE  a large argument or result could not travel
 *           in its memfd (see pp_apply_async and pp_future_get).
 *  -EOVERFLOW, -EIO  MPI pools only (see pp_apply_async).
 * pp_apply does not give the task's message; pp_apply_msg does.
 */
PP_EXTERN int pp_apply(pp_pool_t *pool, pp_task_fn fn, const void *arg, size_t arg_len,
                       void **result, size_t *result_len);

/*
 * pp_apply_async - submit fn(arg) and return at once with a future.
 * arg[0..arg_len) is copied before the call returns (any size). Returns 0 and
 * sets *future, which the caller frees with pp_future_free; or -EINVAL (pool,
 * fn or future NULL; arg NULL with arg_len > 0; under SPAWN or MPI, fn outside
 * the program's loaded objects), PP_ECLOSED, -ENOMEM, -EFBIG (an argument
 * over 64 KiB travels to the worker in a memfd, a file: one larger than
 * the RLIMIT_FSIZE limit cannot), or -EOVERFLOW (an MPI pool and an
 * argument over 1 GiB - 8 MiB, more than one message carries), and sets
 * *future to NULL. PP_ECLOSED also in a child made by fork() (the pool is
 * the parent's).
 * A large argument holds a descriptor (its memfd) only from when it is
 * sent to a worker until its task is done, a few per worker: work queued
 * behind busy workers waits in memory, so a backlog of any length leaves
 * the program's descriptors alone. If its memfd cannot be made when it is
 * to be sent (no descriptor left: -EMFILE, -ENFILE; no memory: -ENOMEM),
 * or the worker's socket refuses to carry it (too many descriptors in
 * flight, ETOOMANYREFS, is reported as -EMFILE; no buffer memory as
 * -ENOMEM), and none of the pool's memfds is out to come back, the task
 * fails with that error (reported by its future). On an MPI pool a result over that size fails
 * the task with -EOVERFLOW, and a task also fails -EIO when its message
 * could not be sent.
 */
PP_EXTERN int pp_apply_async(pp_pool_t *pool, pp_task_fn fn, const void *arg, size_t arg_len,
                             pp_future_t **future);

/*
 * pp_future_wait - wait until the future is done (succeeded or failed).
 * Returns 0 when done, -ETIMEDOUT if it is still pending after timeout
 * seconds (it can be waited for again), -EINVAL (f NULL, or timeout NaN).
 */
PP_EXTERN int pp_future_wait(pp_future_t *f, double timeout);

/* pp_future_ready - 1 when done (succeeded or failed); 0 while pending or
 * for NULL. Never an error code. */
PP_EXTERN int pp_future_ready(const pp_future_t *f);

/*
 * pp_future_successful - 1 when done and succeeded; 0 otherwise (failed,
 * still pending, or NULL). Never an error code.
 */
PP_EXTERN int pp_future_successful(const pp_future_t *f);

/*
 * pp_future_get - wait like pp_future_wait, then give the result.
 * Returns 0 and sets *data and *len to the result (owned by the future, valid
 * until pp_future_free; never NULL on success, even for 0 bytes). Otherwise
 * sets *data NULL and *len 0 and returns -ETIMEDOUT (still pending),
 * -EINVAL (f NULL, or timeout NaN) or the task's error:
 *  PP_ETASK  the task returned non-zero, or its result could not grow or
 *           be handed over (pp_future_task_status has the cause).
 *  PP_EWORKER  its worker died while running it (after opt.retries runs),
 *           or workers kept dying at start-up, or no worker could be
 *           started (no descriptor, memory or process left), and it
 *           could not be run.
 *  PP_ETASKTIMEOUT  it ran past its timeout; its worker was killed.
 *  PP_ECANCELED  the pool was terminated or destroyed before it ran or
 *           before it ended.
 *  PP_EPROTO  its worker broke the shared-memory protocol and was killed.
 *  -ENOMEM  out of memory to receive its result, to queue it again after
 *           its worker died before starting it, or to send its large
 *           argument (see pp_apply_async).
 *  -EMFILE, -ENFILE, -EFBIG  a large argument could not be sent (see
 *           pp_apply_async); -EMFILE also: a result over 64 KiB that came
 *           back as a memfd could not be received, no descriptor being free.
 *  For a map future, the lowest-index failing item's error, from the same
 *  list (see pp_map). On an MPI pool also -EOVERFLOW and -EIO (see
 *  pp_apply_async).
 * data and len may be NULL when not wanted.
 */
PP_EXTERN int pp_future_get(pp_future_t *f, double timeout, const void **data, size_t *len);

/*
 * pp_future_error - the message of a failed task: the task's pp_buf_fail()
 * text, or the library's description ("worker killed by signal 11
 * (SIGSEGV)", ...). NULL while pending, after success, or for NULL.
 * Valid until pp_future_free.
 */
PP_EXTERN const char *pp_future_error(const pp_future_t *f);

/*
 * pp_future_task_status - once f is done, the task's status:
 *  - 0 when it succeeded;
 *  - with PP_ETASK, the non-zero value the task function returned (any
 *    int the task chose, negative ones included; 1 from pp_buf_fail), or
 *    -ENOMEM, -EFBIG, -EMFILE, -ENFILE when it returned 0 but its result
 *    could not grow (see pp_buf_append), or -1 when the library failed it
 *    (a map item's result of the wrong size, a result the worker could not
 *    hand over);
 *  - for a task that never returned, the future's own error code
 *    (PP_EWORKER, PP_ETASKTIMEOUT, PP_ECANCELED, PP_EPROTO, -EMFILE, ...),
 *    the same value pp_future_get returns;
 *  - for a map future, the status of its lowest-index failing item, as
 *    above.
 * -EINVAL when f is NULL or still pending. Since a task may itself return
 * -EINVAL (-22), check pp_future_ready(f) first when that matters.
 */
PP_EXTERN int pp_future_task_status(const pp_future_t *f);

/*
 * pp_future_on_done - have cb(f, userdata) called once when f is done: on the
 * pool's callback thread (one per pool; callbacks run one at a time, in
 * completion order), or at once in the calling thread if f is already done.
 * At most one callback per future. The callback may read f, submit work,
 * wait for other futures, and call pp_future_free(f) as its last act; it
 * must not join or destroy its own pool (-EDEADLK). If the future is freed
 * while pending, the callback still runs exactly once and must not free it
 * again. Returns 0, -EINVAL (f or cb NULL) or -EBUSY (a callback is
 * already set). To have the callback always on the callback thread, set
 * it at submission: pp_submit's opts.on_done.
 */
PP_EXTERN int pp_future_on_done(pp_future_t *f, pp_done_fn cb, void *userdata);

/*
 * pp_future_free - release the future and its result. Safe on a pending
 * future: the task still runs and its result is discarded. NULL is a no-op.
 */
PP_EXTERN void pp_future_free(pp_future_t *f);

/* ------------------------------------------------------------------------ */
/* Per-task options, cancel, waiting for several futures (0.2)              */
/* ------------------------------------------------------------------------ */

/*
 * Options of one task, for pp_submit. Fill with pp_task_opts_init first,
 * then change what you need: fields added later get their defaults.
 */
typedef struct pp_task_opts {
    double timeout;     /* seconds this task may run: > 0 its own limit; 0 the pool's
                           task_timeout; < 0 no limit even if the pool has one */
    int retries;        /* runs again after its worker dies (0 and up); -1 the pool's
                           opt.retries */
    pp_done_fn on_done; /* NULL or called once when the task is done, always on the pool's
                           callback thread (never in the submitting thread) */
    void *userdata;     /* passed to on_done */
} pp_task_opts_t;

/* pp_task_opts_init - the defaults: the pool's timeout and retries, no
 * callback. NULL is a no-op. */
PP_EXTERN void pp_task_opts_init(pp_task_opts_t *o);

/*
 * pp_submit - pp_apply_async with options that hold for this task only.
 * The done-callback is set before the task can finish, so it always runs
 * on the pool's callback thread (callbacks of one pool run one at a time,
 * in completion order), never in the submitting thread; it may do what a
 * pp_future_on_done callback may. opts NULL: the defaults.
 * future NULL: fire-and-forget. Nobody holds the future; on_done, if any,
 * still runs once (it must not free the future), and the future is freed
 * after it; a task of a pool that is terminated fails PP_ECANCELED and its
 * callback runs all the same. Otherwise *future is set as by
 * pp_apply_async and the caller frees it (the callback then must not).
 * A timeout applies from when a worker starts the task; when it runs past
 * it, its worker is killed and replaced and the task fails
 * PP_ETASKTIMEOUT, as with the pool's task_timeout.
 * Returns 0, or what pp_apply_async returns, and also -EINVAL when opts
 * has a NaN timeout or retries below -1; on an error nothing was
 * submitted and on_done is never called. On an MPI pool a task's own
 * timeout and retries are not supported: -ENOTSUP unless they are the
 * defaults.
 */
PP_EXTERN int pp_submit(pp_pool_t *pool, pp_task_fn fn, const void *arg, size_t arg_len,
                        const pp_task_opts_t *opts, pp_future_t **future);

/*
 * pp_apply_msg - pp_apply that also gives the task's message on failure.
 * Like pp_apply; in addition, when msg is not NULL, *msg is set to NULL on
 * success and, on failure, to a malloc'd copy of the message that
 * pp_future_error would give (the caller frees it; NULL when the failure
 * is the submission's own, such as -EINVAL or PP_ECLOSED, or when no
 * memory was left for the copy).
 */
PP_EXTERN int pp_apply_msg(pp_pool_t *pool, pp_task_fn fn, const void *arg, size_t arg_len,
                           void **result, size_t *result_len, char **msg);

/*
 * pp_future_cancel - stop a task that has not started
 * (concurrent.futures.Future.cancel). Returns 1 when it is cancelled: it
 * will never run, and the future is done at once with PP_ECANCELED (its
 * callback, if any, runs; waiters wake). Returns 0 when a worker has
 * started it or it is done already (or f is NULL): it then ends as it
 * would have. A task queued in the pool, or sent ahead to a worker's ring
 * but not yet started, is cancelled; on an MPI pool only one still queued
 * at rank 0 is.
 * A map future (pp_map_async) is cancelled while it is not done: its
 * chunks not yet started are dropped, chunks already running finish and
 * their results are discarded, and the future is done at once with
 * PP_ECANCELED. (A results array in the pool's shared memory, which
 * workers write in place, may still be written by chunks already running
 * until pp_pool_join returns.)
 */
PP_EXTERN int pp_future_cancel(pp_future_t *f);

/* pp_future_running - 1 while a worker is running the task (started, not
 * done; for a map future, while it is not done and has started); 0
 * otherwise (queued, done, or NULL). Never an error code. */
PP_EXTERN int pp_future_running(const pp_future_t *f);

/* return_when of pp_wait (concurrent.futures.wait) */
enum { PP_FIRST_COMPLETED = 1, PP_FIRST_EXCEPTION = 2, PP_ALL_COMPLETED = 3 };

/*
 * pp_wait - wait for several futures, of any pools, until one is done
 * (PP_FIRST_COMPLETED), one has failed or all are done
 * (PP_FIRST_EXCEPTION: failed means any error, cancelled included), or all
 * are done (PP_ALL_COMPLETED). Returns the number of fs[0..n) done when it
 * returns (the condition holds; n == 0 returns 0 at once), -ETIMEDOUT if
 * it does not hold after timeout seconds (< 0: no limit; 0: look once),
 * or -EINVAL (fs NULL with n > 0, a NULL entry, a bad return_when, a NaN
 * timeout). Use pp_future_ready to see which are done.
 */
PP_EXTERN int pp_wait(pp_future_t *const *fs, size_t n, int return_when, double timeout);

/*
 * A completion queue: futures come out in the order they finish (the
 * as_completed pattern), and its descriptor lets an event loop (epoll,
 * poll, select, libuv's uv_poll_t, GLib's g_unix_fd_add) wait for the
 * pool without a thread. One queue may hold futures of several pools; a
 * future is in at most one queue at a time. Every call may be made from
 * any thread.
 */
typedef struct pp_queue pp_queue_t;

/* pp_queue_create - a new, empty queue. Returns 0 and sets *q; -EINVAL (q
 * NULL), -ENOMEM, -EMFILE or -ENFILE (its eventfd). */
PP_EXTERN int pp_queue_create(pp_queue_t **q);

/*
 * pp_queue_add - deliver f through q once it is done (at once if it is
 * done already). The future stays the caller's: q does not free it, and
 * freeing it takes it out of q. Returns 0, -EINVAL (q or f NULL) or
 * -EBUSY (f is in a queue already and not yet taken out).
 */
PP_EXTERN int pp_queue_add(pp_queue_t *q, pp_future_t *f);

/*
 * pp_queue_next - take the next done future, in completion order.
 * Returns 1 and sets *f to it (it is out of the queue; still the caller's
 * to free); 0 with *f NULL when nothing added is left undelivered (the
 * queue is drained); -ETIMEDOUT with *f NULL when futures are still
 * running after timeout seconds (< 0: no limit; 0: look once); -EINVAL (q
 * or f NULL, timeout NaN).
 */
PP_EXTERN int pp_queue_next(pp_queue_t *q, double timeout, pp_future_t **f);

/*
 * pp_queue_fd - a descriptor that is readable while a done future waits
 * in q (level-triggered: it stays readable until pp_queue_next has taken
 * the last one). Only for poll/epoll/select: do not read, write or close
 * it. Valid until pp_queue_destroy. -EINVAL for NULL.
 */
PP_EXTERN int pp_queue_fd(const pp_queue_t *q);

/* pp_queue_destroy - free q. Futures still in it leave it and stay the
 * caller's to free. NULL is a no-op. */
PP_EXTERN void pp_queue_destroy(pp_queue_t *q);

/* What a pool has done so far (pp_pool_stats). */
typedef struct pp_stats {
    unsigned long long submitted;     /* tasks and map items submitted */
    unsigned long long completed;     /* of which done and succeeded */
    unsigned long long failed;        /* done with an error other than PP_ECANCELED */
    unsigned long long cancelled;     /* done with PP_ECANCELED (cancel, terminate) */
    unsigned long long worker_deaths; /* worker processes that ended other than by retiring */
    unsigned long long respawns;      /* worker processes started after the first ones */
    unsigned long long timeouts;      /* workers killed for a task past its timeout */
    size_t queued; /* tasks and map items submitted, not yet sent to a worker (a fed
                      iterator's by the chunk) */
    int workers;   /* live worker processes (MPI pools: remote workers) */
} pp_stats_t;

/*
 * pp_pool_stats - fill *st with the pool's counts so far. Counts are
 * consistent with each other only approximately while work runs (each
 * is read once). Returns 0, or -EINVAL (pool or st NULL).
 */
PP_EXTERN int pp_pool_stats(pp_pool_t *pool, pp_stats_t *st);

/* ------------------------------------------------------------------------ */
/* Map family                                                               */
/* ------------------------------------------------------------------------ */

/*
 * Chunk sizes. A chunk of items travels to a worker as one message and its
 * results come back as one message. chunksize 0 picks Python's rule:
 * ceil(count / (4 * processes)). PP_CHUNK_AUTO sizes chunks by measured
 * task time instead: small chunks first, then chunks that take about two
 * milliseconds each, shrinking again near the end of the input so that
 * uneven workloads finish together.
 */
#define PP_CHUNK_AUTO ((size_t)-1)

/*
 * pp_map - run fn on count items of item_size bytes each (the i-th item is
 * items[i*item_size .. (i+1)*item_size)) and wait. Each call must produce
 * exactly result_size bytes, stored at results[i*result_size]; an item
 * whose result has another size fails with PP_ETASK (nothing is written
 * outside its slot). items and results must stay valid until the call
 * returns; items are copied into the workers' shared memory a chunk at a
 * time, so only a bounded window of chunks is in flight however large
 * count is.
 * Returns 0 when every item succeeded; otherwise the error of the
 * lowest-index item that failed (PP_ETASK, PP_EWORKER, PP_ETASKTIMEOUT,
 * PP_ECANCELED, PP_EPROTO, or -EFBIG: a chunk's items over 64 KiB travel
 * in a memfd, a file, and items that need one larger than the RLIMIT_FSIZE
 * limit fail; -EMFILE, -ENFILE, -ENOMEM: that memfd could not be made, as
 * in pp_apply_async, or the chunk's results could not be received, as in
 * pp_future_get; -ENOMEM also: its worker died and it could not be queued
 * to run again); the other items' results are still stored.
 * When a worker dies in the middle of a chunk, the item it was running
 * fails (PP_EWORKER) and the chunk's other items are run again by another
 * worker, those before it included: their results died with the worker.
 * Only when results is in the pool's shared memory (pp_shm_alloc), where
 * workers write them in place, do the items before it keep their results
 * and not run twice. Items must therefore tolerate running again after a
 * crash, as tasks do under opt.retries.
 * When workers keep dying at start-up (a crashing initializer: five
 * deaths of a slot in a row before its start-up was done, and no other
 * worker past it), every item not yet sent fails PP_EWORKER, its message
 * saying so, and the map ends.
 * Errors before anything runs: -EINVAL (pool or fn NULL; under SPAWN or
 * MPI a function outside the program's loaded objects; items NULL with
 * count > 0 and item_size > 0; results NULL with count > 0 and
 * result_size > 0; item_size * count or result_size * count overflowing
 * a size_t), PP_ECLOSED (the pool is closed or terminated, or is the
 * parent's, in a child made by fork()), -ENOMEM. On an MPI pool an item
 * may also fail -EOVERFLOW or -EIO (see pp_apply_async).
 * Use pp_map_async to read the failing item's message.
 */
PP_EXTERN int pp_map(pp_pool_t *pool, pp_task_fn fn, const void *items, size_t item_size,
                     size_t count, void *results, size_t result_size, size_t chunksize);

/*
 * pp_map_async - the same, not blocking. The future is done when every
 * result is stored (or the map failed); items and results must stay valid
 * and untouched until then. pp_future_get gives 0 (data: 0 bytes) or the
 * lowest-index failing item's error; pp_future_error then has that item's
 * message, prefixed with its index ("item 17: ..."). pp_future_progress
 * reports items done. Freeing the future before it is done cancels the
 * map: chunks not yet sent are dropped, results of chunks still running
 * are discarded, and once pp_future_free returns the library touches
 * neither items nor results again; the pool stays usable.
 * Returns 0 and sets *future, or the errors of pp_map before anything runs
 * (and *future NULL), with -EINVAL also for future NULL.
 */
PP_EXTERN int pp_map_async(pp_pool_t *pool, pp_task_fn fn, const void *items, size_t item_size,
                           size_t count, void *results, size_t result_size, size_t chunksize,
                           pp_future_t **future);

/*
 * pp_future_progress - how many items of a map are done (succeeded or
 * failed) and how many there are. For a single task: 0 or 1 of 1. Cheap
 * (two atomic loads): poll it as often as you like. done or total may be
 * NULL. Returns 0 or -EINVAL (f NULL).
 */
PP_EXTERN int pp_future_progress(const pp_future_t *f, size_t *done, size_t *total);

typedef struct pp_iter pp_iter_t;

/*
 * pp_imap / pp_imap_unordered - lazy results: in input order (imap) or as
 * they complete (imap_unordered), read with pp_iter_next. Each result may
 * have any size. Memory is bounded: at most a window of chunks (four per
 * worker) is sent or held; an ordered iterator whose consumer is slower
 * than the workers stops sending rather than buffering everything. items
 * must stay valid until the iterator is freed.
 * Returns 0 and sets *it, or sets *it NULL (when it is not NULL) and
 * returns -EINVAL (pool, fn or it NULL; items NULL with count > 0 and
 * item_size > 0; item_size * count overflowing a size_t; under SPAWN or
 * MPI a function outside the program's loaded objects), PP_ECLOSED (the
 * pool is closed or terminated, or is the parent's, in a child made by
 * fork()) or -ENOMEM.
 */
PP_EXTERN int pp_imap(pp_pool_t *pool, pp_task_fn fn, const void *items, size_t item_size,
                      size_t count, size_t chunksize, pp_iter_t **it);
PP_EXTERN int pp_imap_unordered(pp_pool_t *pool, pp_task_fn fn, const void *items, size_t item_size,
                                size_t count, size_t chunksize, pp_iter_t **it);

/*
 * pp_feed_fn - streaming input for pp_imap_feed. Called to get the next
 * item: set *item and *len (any size; the bytes are copied before the next
 * call) and return 1, or return 0 at the end of the input, or a negative
 * error code to stop feeding (reported by pp_iter_next, see below). It is
 * only ever called from the thread inside pp_imap_feed or pp_iter_next, one
 * call at a time.
 */
typedef int (*pp_feed_fn)(void *userdata, const void **item, size_t *len);

enum { PP_ORDERED = 0, PP_UNORDERED = 1 };

/*
 * pp_imap_feed - like pp_imap over items produced one at a time by feed
 * (lines of a file, records from a socket): inputs that do not fit in
 * memory can be mapped, since only the window of chunks in flight is held.
 * flags: PP_ORDERED or PP_UNORDERED. chunksize 0 means PP_CHUNK_AUTO here
 * (the count is not known in advance). The feed is called again while
 * pp_iter_next waits, to keep the window full.
 * Returns 0 and sets *it, or sets *it NULL (when it is not NULL) and
 * returns -EINVAL (pool, fn, feed or it NULL; flags neither PP_ORDERED nor
 * PP_UNORDERED; under SPAWN or MPI a function outside the program's loaded
 * objects), PP_ECLOSED (as for pp_imap) or -ENOMEM.
 */
PP_EXTERN int pp_imap_feed(pp_pool_t *pool, pp_task_fn fn, pp_feed_fn feed, void *userdata,
                           size_t chunksize, int flags, pp_iter_t **it);

/*
 * pp_iter_next - the next result.
 * Returns 1 with *index (the item's input position), *data and *len set
 * (valid until the next call on it or pp_iter_free; data is never NULL);
 * 0 when every item has been reported; -ETIMEDOUT when nothing arrived
 * within timeout seconds (call again); -EINVAL (it NULL, or timeout NaN);
 * or one of these, with *index set and pp_iter_error() giving the message:
 *  - an item failed: PP_ETASK, PP_EWORKER, PP_ETASKTIMEOUT, PP_EPROTO,
 *    -ENOMEM, -EFBIG, -EMFILE, -ENFILE as in pp_map, or PP_ECANCELED (its
 *    chunk was running when the pool was terminated); on an MPI pool also
 *    -EOVERFLOW, -EIO. The iteration goes on with the next call. When
 *    workers keep dying at start-up, every item not yet sent fails
 *    PP_EWORKER this way, the message saying so, and a fed input ends as
 *    after a feed error, with PP_EWORKER.
 *  - the iteration was stopped with items not yet run: the pool was
 *    terminated or destroyed (PP_ECANCELED), or there was no memory even
 *    to record an item's failure (-ENOMEM). It gives the results it holds,
 *    then that error once (*index: the next item), then 0.
 *  - pp_imap_feed only: the feed returned a negative code (that code), or
 *    a fed item could not be copied (-ENOMEM), which ends the input: it is
 *    returned once, with *index set to the number of items fed, after the
 *    items before it; or the pool was closed and joined before the feed
 *    ended (PP_ECLOSED, once: the rest of the input is not read).
 * index, data and len may be NULL. One thread at a time.
 */
PP_EXTERN int pp_iter_next(pp_iter_t *it, double timeout, size_t *index, const void **data,
                           size_t *len);

/* pp_iter_error - the message of the failure pp_iter_next just returned, else NULL. */
PP_EXTERN const char *pp_iter_error(const pp_iter_t *it);

/*
 * pp_iter_progress - items done (completed by workers, read or not) and
 * the total: for pp_imap_feed the total is the number fed so far until the
 * feed has ended. Returns 0 or -EINVAL (it NULL).
 */
PP_EXTERN int pp_iter_progress(const pp_iter_t *it, size_t *done, size_t *total);

/*
 * pp_iter_free - release the iterator. Chunks not yet sent are cancelled;
 * the few already sent finish in the workers and their results are
 * dropped; the pool stays usable. NULL is a no-op.
 */
PP_EXTERN void pp_iter_free(pp_iter_t *it);

/* ------------------------------------------------------------------------ */
/* Shared memory: one address space for data                                */
/* ------------------------------------------------------------------------ */

/*
 * pp_shm_alloc - memory that the parent and every worker of the pool
 * (including workers started later and replacements) see at the SAME
 * virtual address, readable and writable by all: a pointer into it means
 * the same thing in every process. Backed by an anonymous memfd reserved at
 * pool creation (nothing in /dev/shm, nothing can leak), aligned to 64
 * bytes (4096 from 64 KiB up), zero-filled. From any parent thread.
 *
 * Zero copy: a pp_apply argument that lies inside a pool's shared memory is
 * passed by reference (keep it unchanged until the task is done), and
 * pp_map/pp_imap items and pp_map results inside it are read and written
 * in place by the workers: chunks carry addresses, not bytes.
 * A single task's result larger than 64 KiB is written by the worker
 * straight into this memory (a per-worker arena taking at most 1/16 of the
 * range) and pp_future_get hands out a pointer into it: zero copies.
 * Lock-free C11 atomics (an _Atomic long with atomic_fetch_add, say) in this
 * memory work across processes as counters; pp_mutex_t guards the rest.
 *
 * Returns NULL with errno set: EINVAL (pool NULL or size 0), ENOMEM (the
 * reserved range has no free extent that large; see shm_size), ECHILD (in a
 * child of fork(): the pool is not ours), ENOTSUP (an MPI pool: its workers
 * are on other machines, so no memory is shared with them).
 */
PP_EXTERN void *pp_shm_alloc(pp_pool_t *pool, size_t size);

/*
 * pp_shm_free - give shared memory back; its pages are returned to the
 * system at once (punched out of the memfd). p NULL is a no-op. Returns 0,
 * -EINVAL if p is not a live pp_shm_alloc block of this pool, or -ENOMEM
 * (the free list could not grow; the block stays allocated). Do not
 * free memory a running task still uses.
 */
PP_EXTERN int pp_shm_free(pp_pool_t *pool, void *p);

/*
 * pp_shm_contains - 1 if [p, p+len) lies inside this pool's shared memory,
 * else 0 (or -EINVAL for a NULL pool).
 */
PP_EXTERN int pp_shm_contains(const pp_pool_t *pool, const void *p, size_t len);

/*
 * pp_mutex_t - a lock for data in shared memory that survives its holder's
 * death: process-shared and robust. Place it inside pp_shm_alloc memory
 * and initialise it once with pp_mutex_init before workers use it.
 * Keep critical sections short.
 */
typedef struct pp_mutex {
    union {
        unsigned char bytes[64];
        long double align_;
    } opaque;
} pp_mutex_t;

/*
 * pp_mutex_init - returns 0, -EINVAL (m NULL) or -ENOTSUP (the C library or
 * the kernel has no robust process-shared mutexes).
 */
PP_EXTERN int pp_mutex_init(pp_mutex_t *m);

/*
 * pp_mutex_lock - take the lock. Returns 0; or -EOWNERDEAD: the previous
 * holder died while holding it, you now hold it, and it has been made
 * consistent again -- repair or discard the data it protects, then unlock
 * as usual; or -EINVAL (m NULL);
 * or -ENOTRECOVERABLE (the lock could not be made consistent: it is
 * unusable, destroy and initialise it again).
 */
PP_EXTERN int pp_mutex_lock(pp_mutex_t *m);

/* pp_mutex_unlock - returns 0, -EPERM (not the holder) or -EINVAL. */
PP_EXTERN int pp_mutex_unlock(pp_mutex_t *m);

/* pp_mutex_destroy - when no process uses it any more. NULL is a no-op. */
PP_EXTERN void pp_mutex_destroy(pp_mutex_t *m);

#ifdef __cplusplus
}
#endif

#endif /* PROCPOOL_H */
