/*
 * bench_util.h - small helpers shared by the benchmarks (static inline only).
 */
#ifndef PP_BENCH_UTIL_H
#define PP_BENCH_UTIL_H

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Seconds on the monotonic clock. */
static inline double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median of v[0..n), n > 0 (sorts v). */
static inline double median(double *v, size_t n) {
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Find an anchor script: $env if set, else bench/<name> from the source
 * root, else next to the binary (<build>/../bench, or its own folder).
 * Returns 0 with path filled, or -1. */
static inline int bench_find_script(const char *argv0, const char *env, const char *name,
                                    char *path, size_t size) {
    const char *e = getenv(env);
    if (e && *e) {
        snprintf(path, size, "%s", e);
        return access(path, R_OK) == 0 ? 0 : -1;
    }
    snprintf(path, size, "bench/%s", name);
    if (access(path, R_OK) == 0)
        return 0;
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) {
        snprintf(exe, sizeof exe, "%s", argv0);
        n = (ssize_t)strlen(exe);
    }
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (!slash)
        return -1;
    *slash = '\0';
    const char *rel[] = {"/../bench/", "/../../bench/", "/"};
    for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) {
        snprintf(path, size, "%s%s%s", exe, rel[i], name);
        if (access(path, R_OK) == 0)
            return 0;
    }
    return -1;
}

#endif
