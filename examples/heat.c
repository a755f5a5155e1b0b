/*
 * heat.c - 2-D heat diffusion (a Jacobi 5-point stencil) on an n x n grid
 * of doubles in procpool shared memory, computed in place by pp_map over
 * blocks of rows, and checked bit for bit against the same computation run
 * serially.
 *
 *   heat [n [steps [workers]]]      defaults: 4096 50 (workers: one per CPU)
 *
 * Two grids (double buffering) live in pp_shm_alloc memory, at the same
 * address in the parent and in every worker, so a pointer into them means
 * the same thing everywhere. Each step is one pp_map whose items are block
 * descriptors ({src, dst, n, first row, last row}, 40 bytes each): a worker
 * reads its rows (and the rows on either side) straight from src and writes
 * dst in place; its result is one double, the block's largest change. The
 * grid itself never travels: a pool that copied data would send each block
 * out and its result back, 2 x grid bytes per step, which is printed as the
 * bytes not copied.
 *
 * Boundary: the top edge is held at 100 degrees, the other edges at 0, with
 * a hot square in the middle held at 250. The serial run uses the same row
 * function on ordinary malloc'd grids, so the two results agree exactly.
 * Exit status 0 when they do, 1 otherwise.
 */
#include <procpool.h>

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ALPHA 0.2 /* diffusion number: stable for <= 0.25 */

struct block {
    const double *src;
    double *dst;
    int64_t n;
    int64_t row0, row1; /* interior rows [row0, row1) */
};

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int is_hot(int64_t n, int64_t i, int64_t j) {
    int64_t c = n / 2, h = n / 16;
    return i >= c - h && i < c + h && j >= c - h && j < c + h;
}

/* One step over interior rows [row0, row1): returns the largest change. */
static double step_rows(const double *src, double *dst, int64_t n, int64_t row0, int64_t row1) {
    double maxd = 0.0;
    for (int64_t i = row0; i < row1; i++) {
        const double *up = src + (i - 1) * n, *row = src + i * n, *down = src + (i + 1) * n;
        double *out = dst + i * n;
        out[0] = row[0];
        for (int64_t j = 1; j < n - 1; j++) {
            double v = row[j] + ALPHA * (up[j] + down[j] + row[j - 1] + row[j + 1] - 4.0 * row[j]);
            if (is_hot(n, i, j))
                v = 250.0;
            double d = fabs(v - row[j]);
            if (d > maxd)
                maxd = d;
            out[j] = v;
        }
        out[n - 1] = row[n - 1];
    }
    return maxd;
}

static int task_block(const void *arg, size_t len, pp_buf_t *out) {
    if (len != sizeof(struct block))
        return pp_buf_fail(out, "bad item size %zu", len);
    struct block b;
    memcpy(&b, arg, sizeof b);
    double d = step_rows(b.src, b.dst, b.n, b.row0, b.row1);
    return pp_buf_append(out, &d, sizeof d);
}

static void init_grid(double *g, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++)
            g[i * n + j] = i == 0 ? 100.0 : is_hot(n, i, j) ? 250.0 : 0.0;
}

int main(int argc, char **argv) {
    int64_t n = argc > 1 ? atoll(argv[1]) : 4096;
    int steps = argc > 2 ? atoi(argv[2]) : 50;
    int workers = argc > 3 ? atoi(argv[3]) : 0;
    if (n < 3 || n > 65536 || steps < 1 || workers < 0) {
        fprintf(stderr, "usage: heat [n >= 3 [steps >= 1 [workers]]]\n");
        return 2;
    }
    size_t cells = (size_t)n * (size_t)n, bytes = cells * sizeof(double);

    /* serial, on the heap */
    double *sa = malloc(bytes), *sb = malloc(bytes);
    if (!sa || !sb) {
        fprintf(stderr, "heat: out of memory for two %zu-byte grids\n", bytes);
        return 1;
    }
    init_grid(sa, n);
    memcpy(sb, sa, bytes);
    double t0 = now(), serial_delta = 0;
    for (int s = 0; s < steps; s++) {
        serial_delta = step_rows(sa, sb, n, 1, n - 1);
        double *t = sa;
        sa = sb;
        sb = t;
    }
    double t_serial = now() - t0;

    /* pool: two grids in shared memory */
    pp_options_t opt;
    pp_options_init(&opt);
    opt.processes = workers;
    pp_pool_t *pool = NULL;
    fflush(stdout);
    int rc = pp_pool_create(&pool, &opt);
    if (rc != 0) {
        fprintf(stderr, "heat: pp_pool_create: %s\n", pp_strerror(rc));
        return 1;
    }
    workers = pp_pool_size(pool);
    double *ga = pp_shm_alloc(pool, bytes), *gb = pp_shm_alloc(pool, bytes);
    if (!ga || !gb) {
        fprintf(stderr, "heat: pp_shm_alloc(%zu): %s\n", bytes, strerror(errno));
        pp_pool_destroy(pool);
        return 1;
    }
    init_grid(ga, n);
    memcpy(gb, ga, bytes);

    /* blocks of rows: a few per worker so that they finish together */
    int64_t interior = n - 2;
    int64_t nblocks = (int64_t)workers * 8;
    if (nblocks > interior)
        nblocks = interior;
    struct block *blk[2];
    double *maxd = malloc((size_t)nblocks * sizeof *maxd);
    blk[0] = malloc((size_t)nblocks * sizeof(struct block));
    blk[1] = malloc((size_t)nblocks * sizeof(struct block));
    if (!maxd || !blk[0] || !blk[1]) {
        fprintf(stderr, "heat: out of memory\n");
        return 1;
    }
    for (int64_t k = 0; k < nblocks; k++) {
        int64_t r0 = 1 + interior * k / nblocks, r1 = 1 + interior * (k + 1) / nblocks;
        blk[0][k] = (struct block){ga, gb, n, r0, r1}; /* even steps: a -> b */
        blk[1][k] = (struct block){gb, ga, n, r0, r1}; /* odd steps: b -> a */
    }

    t0 = now();
    double pool_delta = 0;
    for (int s = 0; s < steps; s++) {
        rc = pp_map(pool, task_block, blk[s & 1], sizeof(struct block), (size_t)nblocks, maxd,
                    sizeof *maxd, 1);
        if (rc != 0) {
            fprintf(stderr, "heat: pp_map (step %d): %s\n", s, pp_strerror(rc));
            pp_pool_destroy(pool);
            return 1;
        }
        pool_delta = 0;
        for (int64_t k = 0; k < nblocks; k++)
            if (maxd[k] > pool_delta)
                pool_delta = maxd[k];
    }
    double t_pool = now() - t0;
    const double *result = steps % 2 ? gb : ga;

    int same = memcmp(result, sa, bytes) == 0 && pool_delta == serial_delta;
    double centre = result[(n / 2 - n / 16 - 2) * n + n / 2];

    double not_copied = 2.0 * (double)bytes * steps;
    double sent = (double)nblocks * steps * (sizeof(struct block) + sizeof(double));
    printf("heat: %lld x %lld grid (%.0f MiB per grid, 2 grids in shared memory), %d steps, "
           "%d workers, %lld row blocks\n",
           (long long)n, (long long)n, (double)bytes / 1048576.0, steps, workers,
           (long long)nblocks);
    printf("  serial:  %8.3f s\n", t_serial);
    printf("  pool:    %8.3f s\n", t_pool);
    printf("  speedup: %8.2fx on %d workers\n", t_serial / t_pool, workers);
    printf("  bytes not copied: %.2f GiB (grid bytes x steps, out and back, that a copying pool "
           "would have moved)\n",
           not_copied / 1073741824.0);
    printf("  bytes sent instead: %.0f (block descriptors out, one double back per block)\n", sent);
    printf("  largest change in the last step: %.6g; a point near the hot square: %.6f\n",
           pool_delta, centre);
    printf("  pool result %s the serial result\n",
           same ? "is bit-for-bit identical to" : "DIFFERS from");

    free(maxd);
    free(blk[0]);
    free(blk[1]);
    free(sa);
    free(sb);
    pp_shm_free(pool, ga);
    pp_shm_free(pool, gb);
    pp_pool_close(pool);
    pp_pool_join(pool);
    pp_pool_destroy(pool);
    return same ? 0 : 1;
}
