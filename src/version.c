/*
 * version.c - the version of the library actually loaded, to compare with
 * the PROCPOOL_VERSION_* macros of the header a program was built with.
 */
#include "internal.h"

unsigned pp_version(void) {
    return (unsigned)PROCPOOL_VERSION_MAJOR << 16 | (unsigned)PROCPOOL_VERSION_MINOR << 8 |
           (unsigned)PROCPOOL_VERSION_PATCH;
}

const char *pp_version_string(void) { return PROCPOOL_VERSION_STRING; }
