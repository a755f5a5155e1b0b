/*
 * backend.h - the seam between the core library and the MPI backend, which
 * is a library of its own (libprocpool_mpi.so, built from src/mpi/).
 *
 * DESIGN: a program that only uses local pools must not load libmpi, so the
 * core never links the backend. The core's loader (backend.c) finds the
 * backend only when a program asks for MPI (PROCPOOL_BACKEND=mpi in a
 * process that mpirun started): either linked into a static program (the
 * weak symbol PP__MPI_ENTRY resolves) or with dlopen. The backend is given
 * a table of the core functions it calls (pp__core_api_t) and returns the
 * operations the pool calls on it (pp__mpi_ops_t). It never calls the core
 * by name, so it has no undefined symbols but libc's and libmpi's, and the
 * same libprocpool_mpi.so serves a program linked with libprocpool.so or
 * with libprocpool.a.
 *
 * Both sides are built from one source tree: the backend sees the core's
 * structs (internal.h) and uses them as they are. The handshake checks the
 * ABI number, the version and the sizes of the shared structs, so a backend
 * from another build is refused with a message, never used.
 */
#ifndef PP_BACKEND_H
#define PP_BACKEND_H

#include "internal.h"

#define PP__MPI_ABI 4u
#define PP__MPI_ENTRY pp_mpi_backend_v1
#define PP__MPI_ENTRY_NAME "pp_mpi_backend_v1"
#define PP__MPI_SONAME "libprocpool_mpi.so.0"

/* What the backend may call in the core. */
typedef struct pp__core_api {
    uint32_t abi;
    uint32_t size_pool, size_task, size_future, size_worker;
    const char *version;
    /* public calls (the agent runs a local pool) */
    void (*options_init)(pp_options_t *opt);
    int (*pool_create)(pp_pool_t **pool, const pp_options_t *opt);
    int (*pool_size)(const pp_pool_t *pool);
    int (*pool_close)(pp_pool_t *pool);
    int (*pool_join)(pp_pool_t *pool);
    void (*pool_destroy)(pp_pool_t *pool);
    int (*future_on_done)(pp_future_t *f, pp_done_fn cb, void *userdata);
    void (*future_free)(pp_future_t *f);
    const char *(*future_error)(const pp_future_t *f);
    const char *(*strerror)(int err);
    /* internal calls */
    uint64_t (*now_ns)(void);
    int (*futex_wait)(_Atomic uint32_t *addr, uint32_t val, int64_t timeout_ns, bool shared);
    void (*futex_wake)(_Atomic uint32_t *addr, int n, bool shared);
    bool (*addr_encode)(const void *addr, uint64_t *key, uint64_t *off);
    void *(*addr_decode)(uint64_t key, uint64_t off);
    void (*future_complete)(pp_future_t *f, int err, int task_status, char *msg);
    void (*future_set_fail)(pp_future_t *f, int err, const char *fmt, ...) PP_PRINTF(3, 4);
    int (*submit)(pp_pool_t *pool, const pp__task_t *t, const void *arg, pp_future_t **future);
    int (*pool_dispatch_locked)(pp_pool_t *pool);
    void (*pool_wake_supervisor)(pp_pool_t *pool);
    void (*smooth)(pp_pool_t *pool, uint64_t ns);
    void (*job_chunk_done)(pp_pool_t *pool, pp__task_t *s, pp__view_t *v, int status,
                           uint64_t run_ns);
    void (*job_chunk_lost)(pp_pool_t *pool, pp__task_t *s, long k, int err, const char *why,
                           uint64_t fails);
    int (*pool_give_back)(pp_pool_t *pool, int err);
    int (*pool_requeue_arg)(pp_pool_t *pool, const pp__task_t *t, const void *arg);
    const char *(*err_name)(int err);
    /* the timeline (trace.c): rank 0 traces remote workers; agents never trace */
    void (*trace_span)(pp_pool_t *pool, const pp__trace_span_t *sp);
    void (*trace_lane)(pp_pool_t *pool, int lane, const char *name);
    void (*trace_disable)(void);
} pp__core_api_t;

/* What the core calls in the backend (rank 0's side, as in internal.h's
 * pp__remote_* list, plus start-up). */
typedef struct pp__mpi_ops {
    uint32_t abi;
    /* Before main(): MPI_Init; on a rank other than 0 this runs the node
     * agent and never returns. 0, or -1 when MPI could not start (MPI pools
     * then fail PP_ENOAGENTS). */
    int (*start)(void);
    bool (*is_default)(void);
    int (*open)(pp_pool_t *pool);
    bool (*place)(pp_pool_t *pool, pp__task_t *t, const void *arg, int *err);
    bool (*room)(pp_pool_t *pool);
    void (*cancel)(pp_pool_t *pool);
    void (*close)(pp_pool_t *pool, bool terminate);
    void (*free)(pp_pool_t *pool);
} pp__mpi_ops_t;

/* The backend's one exported function. NULL, with a reason written to err,
 * when core does not match the backend's build. */
typedef const pp__mpi_ops_t *(*pp__mpi_entry_fn)(const pp__core_api_t *core, char *err,
                                                 size_t errlen);

#endif
