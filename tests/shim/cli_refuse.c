/*
 * cli_refuse.c - an LD_PRELOAD shim for tests/cli_test.sh: memfd_create
 * refuses the procpool command's buffer of a piped stdin ("procpool-pipe")
 * with ENOSYS, as a kernel without memfd would, so that --pipe takes its
 * other path (blocks copied into the tasks' arguments). Every other
 * memfd_create, the library's own, goes through.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

int memfd_create(const char *name, unsigned int flags);

int memfd_create(const char *name, unsigned int flags) {
    if (strncmp(name, "procpool-pipe", 13) == 0) {
        errno = ENOSYS;
        return -1;
    }
    return (int)syscall(SYS_memfd_create, name, flags);
}
