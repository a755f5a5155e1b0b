/*
 * histogram.c - a shared histogram built by many tasks over a large random
 * array in procpool shared memory, checked against a serial count.
 *
 *   histogram [millions [workers]]     defaults: 64 (million values), one worker per CPU
 *
 * The array (uint32 values from a fixed-seed generator, triangular-ish: the
 * sum of two uniform halves) and two 256-bin histograms live in
 * pp_shm_alloc memory, at the same address in the parent and every worker:
 *
 *   - `atomic_bins`: _Atomic long, one atomic_fetch_add per bin per task;
 *   - `locked_bins`: plain longs guarded by a pp_mutex_t (process-shared and
 *     robust), merged under the lock once per task.
 *
 * Items of the pp_map are small slice descriptors (pointers into the shared
 * array plus a range), so the array itself is never copied. Each task counts
 * its slice into a local histogram, then merges it both ways; it also counts
 * itself in an atomic task counter. Exit status 0 when both shared
 * histograms equal the serial one, 1 otherwise.
 */
#include <procpool.h>

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BINS 256

struct shared {
    pp_mutex_t lock;
    long locked_bins[BINS];
    _Atomic long atomic_bins[BINS];
    _Atomic long tasks;
};

struct slice {
    const uint32_t *data;
    struct shared *sh;
    uint64_t begin, end;
};

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void count(const uint32_t *d, uint64_t begin, uint64_t end, long *bins) {
    for (uint64_t i = begin; i < end; i++)
        bins[d[i] >> 24]++;
}

static int task_slice(const void *arg, size_t len, pp_buf_t *out) {
    if (len != sizeof(struct slice))
        return pp_buf_fail(out, "bad item size %zu", len);
    struct slice s;
    memcpy(&s, arg, sizeof s);
    long local[BINS] = {0};
    count(s.data, s.begin, s.end, local);

    for (int b = 0; b < BINS; b++)
        if (local[b])
            atomic_fetch_add_explicit(&s.sh->atomic_bins[b], local[b], memory_order_relaxed);

    int rc = pp_mutex_lock(&s.sh->lock);
    if (rc != 0 && rc != -EOWNERDEAD)
        return pp_buf_fail(out, "pp_mutex_lock: %s", pp_strerror(rc));
    for (int b = 0; b < BINS; b++)
        s.sh->locked_bins[b] += local[b];
    pp_mutex_unlock(&s.sh->lock);

    atomic_fetch_add(&s.sh->tasks, 1);
    uint64_t n = s.end - s.begin;
    return pp_buf_append(out, &n, sizeof n);
}

int main(int argc, char **argv) {
    long millions = argc > 1 ? atol(argv[1]) : 64;
    int workers = argc > 2 ? atoi(argv[2]) : 0;
    if (millions < 1 || millions > 4096 || workers < 0) {
        fprintf(stderr, "usage: histogram [millions (1..4096) [workers]]\n");
        return 2;
    }
    uint64_t n = (uint64_t)millions * 1000000u;

    pp_options_t opt;
    pp_options_init(&opt);
    opt.processes = workers;
    pp_pool_t *pool = NULL;
    fflush(stdout);
    int rc = pp_pool_create(&pool, &opt);
    if (rc != 0) {
        fprintf(stderr, "histogram: pp_pool_create: %s\n", pp_strerror(rc));
        return 1;
    }
    workers = pp_pool_size(pool);

    uint32_t *data = pp_shm_alloc(pool, n * sizeof *data);
    struct shared *sh = pp_shm_alloc(pool, sizeof *sh);
    if (!data || !sh) {
        fprintf(stderr, "histogram: pp_shm_alloc: %s\n", strerror(errno));
        pp_pool_destroy(pool);
        return 1;
    }
    rc = pp_mutex_init(&sh->lock);
    if (rc != 0) {
        fprintf(stderr, "histogram: pp_mutex_init: %s\n", pp_strerror(rc));
        pp_pool_destroy(pool);
        return 1;
    }
    /* pp_shm_alloc memory is zero-filled: the bins start at 0 */

    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (uint64_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data[i] = (uint32_t)((x >> 33) + ((x & 0xffffffffu) >> 1)); /* sum of two halves */
    }

    double t0 = now();
    long serial[BINS] = {0};
    count(data, 0, n, serial);
    double t_serial = now() - t0;

    size_t nslices = (size_t)workers * 64;
    struct slice *items = malloc(nslices * sizeof *items);
    uint64_t *done = malloc(nslices * sizeof *done);
    if (!items || !done) {
        fprintf(stderr, "histogram: out of memory\n");
        return 1;
    }
    for (size_t k = 0; k < nslices; k++)
        items[k] = (struct slice){data, sh, n * k / nslices, n * (k + 1) / nslices};

    /* two passes: the first includes the workers' first touch of the
     * array's pages (each process maps them into its own page tables), the
     * second is warm; the shared histograms are reset in between */
    double t_pass[2] = {0, 0};
    int ok = 1;
    for (int pass = 0; pass < 2 && ok; pass++) {
        for (int b = 0; b < BINS; b++) {
            atomic_store(&sh->atomic_bins[b], 0);
            sh->locked_bins[b] = 0;
        }
        atomic_store(&sh->tasks, 0);
        t0 = now();
        rc = pp_map(pool, task_slice, items, sizeof *items, nslices, done, sizeof *done, 1);
        t_pass[pass] = now() - t0;
        if (rc != 0) {
            fprintf(stderr, "histogram: pp_map: %s\n", pp_strerror(rc));
            pp_pool_destroy(pool);
            return 1;
        }
        uint64_t total = 0;
        for (size_t k = 0; k < nslices; k++)
            total += done[k];
        if (total != n || atomic_load(&sh->tasks) != (long)nslices) {
            printf("histogram: pass %d: %llu values in %ld tasks, expected %llu in %zu\n", pass,
                   (unsigned long long)total, atomic_load(&sh->tasks), (unsigned long long)n,
                   nslices);
            ok = 0;
        }
        for (int b = 0; b < BINS && ok; b++) {
            long a = atomic_load(&sh->atomic_bins[b]), l = sh->locked_bins[b];
            if (a != serial[b] || l != serial[b]) {
                printf("histogram: pass %d: bin %d: serial %ld, atomic %ld, locked %ld\n", pass, b,
                       serial[b], a, l);
                ok = 0;
            }
        }
    }
    double t_pool = t_pass[1];

    long peak = 0;
    int peak_bin = 0;
    for (int b = 0; b < BINS; b++)
        if (serial[b] > peak) {
            peak = serial[b];
            peak_bin = b;
        }

    printf("histogram: %llu random uint32 (%.0f MiB in shared memory), %d bins, %zu tasks on %d "
           "workers\n",
           (unsigned long long)n, (double)(n * sizeof *data) / 1048576.0, BINS, nslices, workers);
    printf("  serial count:  %8.3f s\n", t_serial);
    printf("  pool count:    %8.3f s warm (speedup %.2fx; every task merges into both "
           "histograms); first pass %.3f s (the workers' first touch of the pages)\n",
           t_pool, t_serial / t_pool, t_pass[0]);
    printf("  bytes sent: %zu of slice descriptors instead of %.0f MiB of data\n",
           nslices * sizeof *items, (double)(n * sizeof *data) / 1048576.0);
    printf("  tallest bin: %d with %ld values (%.3f%%); bins 0 and 255: %ld and %ld\n", peak_bin,
           peak, 100.0 * (double)peak / (double)n, serial[0], serial[BINS - 1]);
    printf("  shared histograms (atomic and mutex-guarded) %s the serial count\n",
           ok ? "both equal" : "DIFFER from");

    /* a text plot, 16 rows of 16 bins summed */
    for (int r = 0; r < 16; r++) {
        long s = 0;
        for (int b = r * 16; b < r * 16 + 16; b++)
            s += serial[b];
        int w = (int)(60.0 * (double)s / (double)n * 4.0);
        printf("  %3d-%3d |%.*s\n", r * 16, r * 16 + 15, w > 60 ? 60 : w,
               "############################################################");
    }

    free(items);
    free(done);
    pp_mutex_destroy(&sh->lock);
    pp_shm_free(pool, sh);
    pp_shm_free(pool, data);
    pp_pool_close(pool);
    pp_pool_join(pool);
    pp_pool_destroy(pool);
    return ok ? 0 : 1;
}
