/*
 * backend.c - the core's side of the MPI backend: finds libprocpool_mpi
 * when a program asks for MPI, and forwards the pool's pp__remote_* calls
 * to it.
 *
 * DESIGN: the constructor below runs before main(). Unless the environment
 * says PROCPOOL_BACKEND=mpi and mpirun (or srun, or any PMI launcher)
 * started this process, it does nothing, and libmpi is never loaded. When
 * both hold, it takes the backend from where it is:
 *   1. linked into the program (a static link with libprocpool_mpi.a and
 *      -u pp_mpi_backend_v1: the weak reference below resolves);
 *   2. $PROCPOOL_MPI_LIBRARY, a path (tests, unusual layouts);
 *   3. libprocpool_mpi.so.0 beside the object that holds this code
 *      (libprocpool.so, or a static program), then in ../lib of it;
 *   4. the dynamic linker's own search (LD_LIBRARY_PATH, ld.so.cache);
 *   5. the library directory this build was configured to install into.
 * and starts it: MPI_Init, and on ranks other than 0 the node agent, which
 * never returns. A backend that cannot be found or does not match this
 * core is a clear message and exit status 1 in every rank (rank 0 prints
 * it), never a crash and never N copies of main() each thinking it is the
 * only one. Without a launcher, MPI pools fail PP_ENOAGENTS, as they do
 * when the backend was not built.
 *
 * Races: none. The constructor runs single-threaded before main(); after
 * it, `ops` never changes.
 */
#include "backend.h"

#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef PP_INSTALL_LIBDIR
#define PP_INSTALL_LIBDIR ""
#endif

/* Defined only when libprocpool_mpi.a is linked into the program. */
extern const pp__mpi_ops_t *PP__MPI_ENTRY(const pp__core_api_t *core, char *err, size_t errlen)
    __attribute__((weak));

static const pp__mpi_ops_t *ops; /* the started backend, or NULL */
static bool default_mpi;         /* PROCPOOL_BACKEND=mpi at start-up */

static const pp__core_api_t core_api = {
    .abi = PP__MPI_ABI,
    .size_pool = sizeof(struct pp_pool),
    .size_task = sizeof(pp__task_t),
    .size_future = sizeof(struct pp_future),
    .size_worker = sizeof(pp__worker_t),
    .version = PROCPOOL_VERSION_STRING,
    .options_init = pp_options_init,
    .pool_create = pp_pool_create,
    .pool_size = pp_pool_size,
    .pool_close = pp_pool_close,
    .pool_join = pp_pool_join,
    .pool_destroy = pp_pool_destroy,
    .future_on_done = pp_future_on_done,
    .future_free = pp_future_free,
    .future_error = pp_future_error,
    .strerror = pp_strerror,
    .now_ns = pp__now_ns,
    .futex_wait = pp__futex_wait,
    .futex_wake = pp__futex_wake,
    .addr_encode = pp__addr_encode,
    .addr_decode = pp__addr_decode,
    .future_complete = pp__future_complete,
    .future_set_fail = pp__future_set_fail,
    .submit = pp__submit,
    .pool_give_back = pp__pool_give_back,
    .pool_requeue_arg = pp__pool_requeue_arg,
    .pool_dispatch_locked = pp__pool_dispatch_locked,
    .pool_wake_supervisor = pp__pool_wake_supervisor,
    .smooth = pp__smooth,
    .job_chunk_done = pp__job_chunk_done,
    .job_chunk_lost = pp__job_chunk_lost,
    .err_name = pp_err_name,
    .trace_span = pp__trace_span,
    .trace_lane = pp__trace_lane,
    .trace_disable = pp__trace_disable,
};

static bool launched_by_mpi(void) {
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_RANK") ||
           getenv("PMI_SIZE");
}

/* This process's rank as the launcher says it (before MPI_Init), 0 if unknown. */
static long launcher_rank(void) {
    static const char *vars[] = {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK"};
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++) {
        const char *v = getenv(vars[i]);
        if (v && *v)
            return strtol(v, NULL, 10);
    }
    return 0;
}

/* dlopen path and look up the entry; NULL with why[] filled on failure. */
static pp__mpi_entry_fn try_open(const char *path, char *why, size_t n) {
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *e = dlerror();
        snprintf(why, n, "%s", e ? e : path);
        return NULL;
    }
    pp__mpi_entry_fn fn = (pp__mpi_entry_fn)dlsym(h, PP__MPI_ENTRY_NAME);
    if (!fn) {
        snprintf(why, n, "%s: no %s in it", path, PP__MPI_ENTRY_NAME);
        dlclose(h);
    }
    return fn; /* the handle stays open for the life of the process */
}

/* The directory of the object this code is in, with "/" at the end; "" if unknown. */
static void own_dir(char *dir, size_t n) {
    Dl_info info;
    dir[0] = '\0';
    if (!dladdr((void *)&core_api, &info) || !info.dli_fname || !strchr(info.dli_fname, '/'))
        return;
    char real[PATH_MAX];
    const char *p = realpath(info.dli_fname, real) ? real : info.dli_fname;
    const char *slash = strrchr(p, '/');
    size_t len = (size_t)(slash - p) + 1;
    if (len < n) {
        memcpy(dir, p, len);
        dir[len] = '\0';
    }
}

static pp__mpi_entry_fn find_backend(char *why, size_t n) {
    if (PP__MPI_ENTRY)
        return PP__MPI_ENTRY;
    char path[PATH_MAX + 64], dir[PATH_MAX];
    pp__mpi_entry_fn fn;
    const char *env = getenv("PROCPOOL_MPI_LIBRARY");
    if (env && *env)
        return try_open(env, why, n); /* asked for this one: no other */
    own_dir(dir, sizeof dir);
    if (dir[0]) {
        snprintf(path, sizeof path, "%s%s", dir, PP__MPI_SONAME);
        if (access(path, F_OK) == 0)
            return try_open(path, why, n);
        snprintf(path, sizeof path, "%s../lib/%s", dir, PP__MPI_SONAME);
        if (access(path, F_OK) == 0)
            return try_open(path, why, n);
    }
    if ((fn = try_open(PP__MPI_SONAME, why, n)))
        return fn;
    if (PP_INSTALL_LIBDIR[0]) {
        snprintf(path, sizeof path, "%s/%s", PP_INSTALL_LIBDIR, PP__MPI_SONAME);
        if (access(path, F_OK) == 0)
            return try_open(path, why, n);
    }
    return NULL;
}

static __attribute__((noreturn)) void backend_missing(const char *why) {
    if (launcher_rank() == 0)
        fprintf(stderr,
                "procpool: PROCPOOL_BACKEND=mpi, but the MPI backend cannot be used: %s\n"
                "procpool: install procpool's MPI part (%s; Debian package libprocpool-mpi0),\n"
                "procpool: set PROCPOOL_MPI_LIBRARY to its path, or unset PROCPOOL_BACKEND.\n",
                why, PP__MPI_SONAME);
    fflush(stderr);
    _exit(1);
}

__attribute__((constructor)) static void pp__backend_ctor(void) {
    const char *b = getenv("PROCPOOL_BACKEND");
    if (!b || strcmp(b, "mpi") != 0 || getenv("PROCPOOL_WORKER_FD"))
        return; /* not asked for, or a spawn worker (spawn.c takes it) */
    default_mpi = true;
    if (!launched_by_mpi())
        return; /* MPI pools will fail PP_ENOAGENTS */
    char why[512] = "not found";
    pp__mpi_entry_fn entry = find_backend(why, sizeof why);
    if (!entry)
        backend_missing(why);
    const pp__mpi_ops_t *o = entry(&core_api, why, sizeof why);
    if (!o)
        backend_missing(why);
    /* programs the tasks start must not take part in this MPI job */
    unsetenv("PROCPOOL_BACKEND");
    ops = o; /* before start(): an agent never comes back from it */
    if (o->start() != 0)
        ops = NULL;
}

bool pp__mpi_default(void) {
    if (!default_mpi)
        return false;
    return !ops || ops->is_default();
}

int pp__remote_open(pp_pool_t *pool) { return ops ? (ops->open)(pool) : PP_ENOAGENTS; }

bool pp__remote_place(pp_pool_t *pool, pp__task_t *t, const void *arg, int *err) {
    return ops && ops->place(pool, t, arg, err);
}

bool pp__remote_room(pp_pool_t *pool) { return ops && ops->room(pool); }

void pp__remote_cancel(pp_pool_t *pool) {
    if (ops)
        ops->cancel(pool);
}

void pp__remote_close(pp_pool_t *pool, bool terminate) {
    if (ops)
        ops->close(pool, terminate);
}

void pp__remote_free(pp_pool_t *pool) {
    if (ops)
        ops->free(pool);
}
