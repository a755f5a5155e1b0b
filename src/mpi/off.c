/*
 * off.c - the MPI backend's hooks when procpool is built without MPI
 * (-DPROCPOOL_MPI=OFF, or Open MPI not found): an MPI pool cannot be
 * created (PP_ENOAGENTS), so the other hooks are never reached.
 */
#include "../internal.h"

#include <stdlib.h>
#include <string.h>

bool pp__mpi_default(void) {
    const char *b = getenv("PROCPOOL_BACKEND");
    return b && strcmp(b, "mpi") == 0;
}

int pp__remote_open(pp_pool_t *pool) {
    (void)pool;
    return PP_ENOAGENTS;
}

bool pp__remote_place(pp_pool_t *pool, pp__task_t *t, const void *arg) {
    (void)pool;
    (void)t;
    (void)arg;
    return false;
}

bool pp__remote_room(pp_pool_t *pool) {
    (void)pool;
    return false;
}

void pp__remote_cancel(pp_pool_t *pool) { (void)pool; }

void pp__remote_close(pp_pool_t *pool, bool terminate) {
    (void)pool;
    (void)terminate;
}

void pp__remote_free(pp_pool_t *pool) { (void)pool; }
