/*
 * cli_run.c - the `procpool` command's parent-side extras of running and
 * output: --number-of-cpus/-cores/-threads/-sockets, the start gates
 * (--delay, --load, --memfree), and --results/--files (each job's output
 * in files).
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

/* ---------------------------------------------------------------- */
/* --number-of-*                                                     */
/* ---------------------------------------------------------------- */

/* Read one whole number from a file; -1 when there is none. */
static long read_num(const char *path) {
    FILE *f = fopen(path, "re");
    long v = -1;
    if (f) {
        if (fscanf(f, "%ld", &v) != 1)
            v = -1;
        fclose(f);
    }
    return v;
}

int cli_print_count(int what) {
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (ncpu < 1)
        ncpu = 1;
    long count = ncpu;
    if (what != COUNT_THREADS) {
        /* distinct packages (sockets), or distinct (package, core) pairs */
        long *seen = calloc((size_t)ncpu * 2 + 2, sizeof *seen);
        long n = 0;
        if (!seen)
            die("out of memory");
        for (long c = 0; c < 4096 && n < ncpu; c++) {
            char path[128];
            snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%ld/topology/physical_package_id", c);
            long pkg = read_num(path);
            if (pkg < 0)
                continue;
            snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%ld/topology/core_id", c);
            long core = what == COUNT_SOCKETS ? 0 : read_num(path);
            bool dup = false;
            for (long i = 0; i < n && !dup; i++)
                dup = seen[2 * i] == pkg && seen[2 * i + 1] == core;
            if (!dup) {
                seen[2 * n] = pkg;
                seen[2 * n + 1] = core;
                n++;
            }
        }
        free(seen);
        if (n > 0)
            count = n;
        else if (what == COUNT_SOCKETS)
            count = 1;
    }
    printf("%ld\n", count);
    return 0;
}
