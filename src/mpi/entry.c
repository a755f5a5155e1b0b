/*
 * entry.c - the MPI backend's one exported function: the handshake with
 * the core (src/backend.h).
 *
 * DESIGN: the core calls pp_mpi_backend_v1 once, before main(), with the
 * table of its functions. This library and the core share struct layouts
 * (both are built from internal.h), so a core from another build must not
 * use it: the ABI number, the version string and the sizes of the shared
 * structs must all match, else NULL and a reason. After the handshake
 * pp__core never changes; every core call in src/mpi/ goes through it.
 */
#include "mpi_int.h"

#include <stdio.h>
#include <string.h>

const pp__core_api_t *pp__core;

static const pp__mpi_ops_t mpi_ops = {
    .abi = PP__MPI_ABI,
    .start = pp__mpi_start,
    .is_default = pp__mpi_is_default,
    .open = pp__mpi_remote_open,
    .place = pp__mpi_remote_place,
    .room = pp__mpi_remote_room,
    .cancel = pp__mpi_remote_cancel,
    .close = pp__mpi_remote_close,
    .free = pp__mpi_remote_free,
};

__attribute__((visibility("default"))) const pp__mpi_ops_t *
PP__MPI_ENTRY(const pp__core_api_t *core, char *err, size_t errlen) {
    if (!core || core->abi != PP__MPI_ABI || !core->version ||
        strcmp(core->version, PROCPOOL_VERSION_STRING) != 0 ||
        core->size_pool != sizeof(struct pp_pool) || core->size_task != sizeof(pp__task_t) ||
        core->size_future != sizeof(struct pp_future) ||
        core->size_worker != sizeof(pp__worker_t)) {
        if (err && errlen)
            snprintf(err, errlen,
                     "%s is procpool %s (backend ABI %u); the program's libprocpool is %s "
                     "(ABI %u) or another build of it",
                     PP__MPI_SONAME, PROCPOOL_VERSION_STRING, PP__MPI_ABI,
                     core && core->version ? core->version : "?", core ? core->abi : 0u);
        return NULL;
    }
    pp__core = core;
    return &mpi_ops;
}
