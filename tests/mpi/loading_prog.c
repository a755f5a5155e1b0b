/*
 * loading_prog.c - run by tests/mpi/loading.sh, linked with libprocpool.so
 * (not the MPI backend): proves where the backend is loaded and where not.
 *
 *   loading_prog local   a local pool runs a task, and libmpi is not mapped
 *                        into this process (nor is libprocpool_mpi)
 *   loading_prog mpi     (under PROCPOOL_BACKEND=mpi mpirun -n 3) the
 *                        default pool is an MPI pool whose tasks run on the
 *                        agents (ranks 1, 2), never on rank 0, and
 *                        libprocpool_mpi was loaded as a library
 *   loading_prog mpi-linked   the same, for a program that has the backend
 *                        linked in (libprocpool_mpi.a): no library to load
 *
 * Prints "main ran" first (the loading test checks that a failed load
 * stops every rank before main). Exit status 0 when the checks pass.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "procpool.h"

static int where(const void *arg, size_t len, pp_buf_t *out) {
    (void)arg;
    (void)len;
    const char *r = getenv("OMPI_COMM_WORLD_RANK");
    long rank = r ? strtol(r, NULL, 10) : -1;
    return pp_buf_append(out, &rank, sizeof rank);
}

/* 1 when a mapping of this process names lib (e.g. "libmpi"). */
static int mapped(const char *lib) {
    FILE *f = fopen("/proc/self/maps", "r");
    char line[4096];
    int found = 0;
    if (!f)
        return -1;
    while (!found && fgets(line, sizeof line, f))
        found = strstr(line, lib) != NULL;
    fclose(f);
    return found;
}

int main(int argc, char **argv) {
    printf("main ran\n");
    fflush(stdout);
    int linked = argc > 1 && strcmp(argv[1], "mpi-linked") == 0;
    int mpi = linked || (argc > 1 && strcmp(argv[1], "mpi") == 0);
    pp_options_t opt;
    pp_options_init(&opt);
    opt.processes = 2;
    pp_pool_t *pool;
    int rc = pp_pool_create(&pool, &opt);
    if (rc) {
        fprintf(stderr, "loading_prog: pp_pool_create: %s\n", pp_strerror(rc));
        return 1;
    }
    int fail = 0;
    for (int i = 0; i < 8 && !fail; i++) {
        void *res = NULL;
        size_t n = 0;
        rc = pp_apply(pool, where, NULL, 0, &res, &n);
        long rank = rc == 0 && n == sizeof rank ? *(long *)res : -2;
        free(res);
        if (rc || (mpi ? rank < 1 : rank != -1 && rank != 0)) {
            fprintf(stderr, "loading_prog: task %d: %s, ran on rank %ld\n", i, pp_strerror(rc),
                    rank);
            fail = 1;
        }
    }
    pp_pool_destroy(pool);
    if (!mpi && (mapped("libmpi") || mapped("libprocpool_mpi"))) {
        fprintf(stderr, "loading_prog: a local program has libmpi or the backend mapped\n");
        fail = 1;
    }
    if (mpi && !linked && mapped("libprocpool_mpi") != 1) {
        fprintf(stderr, "loading_prog: an MPI program without libprocpool_mpi mapped\n");
        fail = 1;
    }
    printf("loading_prog %s: %s\n", mpi ? "mpi" : "local", fail ? "FAIL" : "ok");
    return fail;
}
