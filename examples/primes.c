/*
 * primes.c - count the primes below N with a segmented sieve of
 * Eratosthenes, serially and with pp_map over the segments.
 *
 *   primes [N] [processes]     (defaults: N = 100000000, processes = CPUs)
 *
 * N is split into segments of SEGMENT numbers; a task sieves one segment
 * (odd numbers only, one byte each, about 128 KiB: it stays in cache) with
 * the base primes below sqrt(N) and returns its count as a uint64_t. The
 * serial run uses the very same function, so the two counts must agree; for
 * powers of ten the count is also checked against the known value of pi(N).
 * Exit status 0 when every check passes, 1 otherwise.
 */
#include <procpool.h>

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SEGMENT (1u << 18) /* numbers per segment (262 144) */

struct segment {
    uint64_t lo, hi; /* count the primes p with lo <= p < hi */
};

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t isqrt64(uint64_t n) {
    uint64_t r = 0;
    for (int shift = 31; shift >= 0; shift--) {
        uint64_t c = r | (1ull << shift);
        if (c * c <= n)
            r = c;
    }
    return r;
}

/* The odd base primes up to `limit`: computed once per process (the parent
 * and each worker compute their own copy on first use, so this works under
 * every start method). */
static uint32_t *base_primes;
static size_t n_base;
static uint64_t base_limit;

static int ensure_base_primes(uint64_t limit) {
    if (base_primes && base_limit >= limit)
        return 0;
    unsigned char *composite = calloc(limit + 1, 1);
    uint32_t *p = malloc(sizeof *p * (limit / 2 + 2));
    if (!composite || !p) {
        free(composite);
        free(p);
        return -ENOMEM;
    }
    size_t n = 0;
    for (uint64_t i = 3; i <= limit; i += 2) {
        if (composite[i])
            continue;
        p[n++] = (uint32_t)i;
        for (uint64_t j = i * i; j <= limit; j += 2 * i)
            composite[j] = 1;
    }
    free(composite);
    free(base_primes);
    base_primes = p;
    n_base = n;
    base_limit = limit;
    return 0;
}

/* the number of primes in [lo, hi), hi - lo <= SEGMENT */
static uint64_t count_segment(uint64_t lo, uint64_t hi) {
    static unsigned char sieve[SEGMENT / 2 + 1];
    if (hi <= lo)
        return 0;
    uint64_t count = 0;
    if (lo <= 2 && hi > 2)
        count++; /* the one even prime */
    /* odd numbers lo' .. hi-1, with lo' = the first odd >= max(lo, 3) */
    uint64_t first = lo < 3 ? 3 : (lo | 1);
    if (first >= hi)
        return count;
    size_t n = (size_t)((hi - first + 1) / 2); /* odds in [first, hi) */
    memset(sieve, 1, n);
    for (size_t k = 0; k < n_base; k++) {
        uint64_t p = base_primes[k];
        if (p * p >= hi)
            break;
        /* the first odd multiple of p that is >= max(first, p*p) */
        uint64_t m = p * p;
        if (m < first) {
            m = (first + p - 1) / p * p;
            if ((m & 1) == 0)
                m += p;
        }
        for (uint64_t j = (m - first) / 2; j < n; j += p)
            sieve[j] = 0;
    }
    for (size_t j = 0; j < n; j++)
        count += sieve[j];
    return count;
}

static int task_segment(const void *arg, size_t len, pp_buf_t *out) {
    if (len != sizeof(struct segment))
        return pp_buf_fail(out, "bad item size %zu", len);
    struct segment s;
    memcpy(&s, arg, sizeof s);
    int rc = ensure_base_primes(isqrt64(s.hi) + 1);
    if (rc != 0)
        return pp_buf_fail(out, "out of memory for the base primes");
    uint64_t c = count_segment(s.lo, s.hi);
    return pp_buf_append(out, &c, sizeof c);
}

/* pi(10^k) for k = 0..12 */
static const uint64_t pi_pow10[] = {
    0,      4,       25,       168,       1229,          9592,          78498,
    664579, 5761455, 50847534, 455052511, 4118054813ull, 37607912018ull};

static int usage(const char *argv0) {
    fprintf(stderr, "usage: %s [N (>= 2, <= 1e13)] [processes]\n", argv0);
    return 2;
}

int main(int argc, char **argv) {
    uint64_t N = 100000000ull;
    int processes = 0;
    if (argc > 1) {
        char *end;
        errno = 0;
        double d = strtod(argv[1], &end); /* accepts 1e8 as well as 100000000 */
        if (errno || *end || d < 2 || d > 1e13)
            return usage(argv[0]);
        N = (uint64_t)d;
    }
    if (argc > 2) {
        processes = atoi(argv[2]);
        if (processes < 0)
            return usage(argv[0]);
    }

    size_t nseg = (size_t)((N + SEGMENT - 1) / SEGMENT);
    struct segment *segs = malloc(sizeof *segs * nseg);
    uint64_t *counts = malloc(sizeof *counts * nseg);
    if (!segs || !counts) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < nseg; i++) {
        segs[i].lo = (uint64_t)i * SEGMENT;
        segs[i].hi = segs[i].lo + SEGMENT < N ? segs[i].lo + SEGMENT : N;
    }

    printf("primes below %" PRIu64 ": %zu segments of %u numbers\n", N, nseg, SEGMENT);

    /* serial, with the same function as the tasks (base primes included) */
    double t0 = now();
    uint64_t serial = 0;
    if (ensure_base_primes(isqrt64(N) + 1) != 0) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < nseg; i++)
        serial += count_segment(segs[i].lo, segs[i].hi);
    double t_serial = now() - t0;

    /* the pool: workers are started outside the timed part, as a program
     * that keeps a pool around would */
    pp_options_t opt;
    pp_options_init(&opt);
    opt.processes = processes;
    pp_pool_t *pool = NULL;
    fflush(stdout);
    int rc = pp_pool_create(&pool, &opt);
    if (rc != 0) {
        fprintf(stderr, "pp_pool_create: %s\n", pp_strerror(rc));
        return 1;
    }
    t0 = now();
    rc = pp_map(pool, task_segment, segs, sizeof *segs, nseg, counts, sizeof *counts, 0);
    double t_pool = now() - t0;
    if (rc != 0) {
        fprintf(stderr, "pp_map: %s (%s)\n", pp_strerror(rc), pp_err_name(rc));
        pp_pool_destroy(pool);
        return 1;
    }
    uint64_t pooled = 0;
    for (size_t i = 0; i < nseg; i++)
        pooled += counts[i];
    int workers = pp_pool_size(pool);
    pp_pool_close(pool);
    pp_pool_join(pool);
    pp_pool_destroy(pool);

    printf("serial:            %8.3f s\n", t_serial);
    printf("pool (%d workers): %8.3f s\n", workers, t_pool);
    printf("speedup:           %8.2fx\n", t_pool > 0 ? t_serial / t_pool : 0.0);
    printf("count:             %" PRIu64 " (serial), %" PRIu64 " (pool)\n", serial, pooled);

    int ok = serial == pooled;
    if (!ok)
        printf("MISMATCH: the serial and pool counts differ\n");
    uint64_t p10 = 1;
    for (size_t k = 0; k < sizeof pi_pow10 / sizeof pi_pow10[0]; k++, p10 *= 10) {
        if (p10 == N) {
            if (pooled == pi_pow10[k])
                printf("pi(10^%zu) = %" PRIu64 ": correct\n", k, pi_pow10[k]);
            else {
                printf("WRONG: pi(10^%zu) is %" PRIu64 "\n", k, pi_pow10[k]);
                ok = 0;
            }
        }
    }
    free(segs);
    free(counts);
    free(base_primes);
    return ok ? 0 : 1;
}
