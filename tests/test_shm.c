/* test_shm.c - zero-copy shared memory: pp_shm_alloc memory is at
 * the same address in the parent and in every worker (replacements and the
 * fork server's workers included), writes by workers are visible to the
 * parent once the future completes, free and reuse give zero-filled memory,
 * exhaustion is a clean ENOMEM, pp_map and pp_apply read and write shared
 * memory in place, nothing is left in /dev/shm or /proc/self/maps after
 * destroy, the parent's memory at creation is readable by tasks under fork,
 * and pp_mutex_t survives a holder killed while holding it.
 *
 * Every pool here is created with an initializer that restores the default
 * action of the crash signals: cmocka installs its own SIGSEGV handler around
 * each test, and a worker that faulted on an unmapped "shared" address must
 * die (and fail its future with PP_EWORKER), not jump back into the runner. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "procpool.h"
#include "helpers.h"
#include "proc_util.h"

#define KiB ((size_t)1024)
#define MiB (1024 * KiB)

/* ---- helpers -------------------------------------------------------------- */

static void reset_crash_signals(void *arg) {
    (void)arg;
    static const int sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGSYS};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        signal(sigs[i], SIG_DFL);
}

/* SPAWN may not be offered by this build: then the SPAWN tests are skipped */
static void skip_unless_spawn(void) {
    pp_options_t opt;
    pp_options_init(&opt);
    opt.processes = 1;
    opt.start_method = PP_START_SPAWN;
    pp_pool_t *pool = NULL;
    fflush(stdout);
    fflush(stderr);
    int rc = pp_pool_create(&pool, &opt);
    if (rc == -ENOTSUP) {
        printf("[ INFO     ] PP_START_SPAWN: -ENOTSUP in this build; skipped\n");
        skip();
    }
    if (rc != 0)
        fail_msg("pp_pool_create(PP_START_SPAWN) returned %d (%s)", rc, pp_err_name(rc));
    pp_pool_destroy(pool);
}

static pp_pool_t *shm_pool(int processes, pp_start_t start, size_t shm_size) {
    pp_options_t opt;
    pp_options_init(&opt);
    opt.processes = processes;
    opt.start_method = start;
    opt.shm_size = shm_size;
    opt.initializer = reset_crash_signals;
    pp_pool_t *pool = NULL;
    fflush(stdout);
    fflush(stderr);
    int rc = pp_pool_create(&pool, &opt);
    if (rc != 0 || pool == NULL)
        fail_msg("pp_pool_create(processes=%d, start=%d, shm_size=%zu) returned %d (%s)", processes,
                 (int)start, shm_size, rc, pp_err_name(rc));
    return pool;
}

/* pp_shm_alloc that fails the test on NULL */
static void *must_alloc(pp_pool_t *pool, size_t size) {
    errno = 0;
    void *p = pp_shm_alloc(pool, size);
    if (!p)
        fail_msg("pp_shm_alloc(%zu) returned NULL, errno %d (%s)", size, errno, strerror(errno));
    return p;
}

static void must_free(pp_pool_t *pool, void *p) { assert_rc(pp_shm_free(pool, p), 0); }

/* pp_apply_async + get: the task's long result (or fail with its message) */
static long run_long(pp_pool_t *pool, pp_task_fn fn, const void *arg, size_t len) {
    pp_future_t *f = NULL;
    assert_rc(pp_apply_async(pool, fn, arg, len, &f), 0);
    long v = ppt_get_long(f, 20.0);
    pp_future_free(f);
    return v;
}

static int ret_long(pp_buf_t *out, long v) { return pp_buf_append(out, &v, sizeof v); }

static uintptr_t get_ptr_arg(const void *arg, size_t len) {
    uintptr_t v = 0;
    if (len == sizeof v)
        memcpy(&v, arg, sizeof v);
    return v;
}

static int is_zero(const void *p, size_t n) {
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        if (c[i])
            return 0;
    return 1;
}

/* first non-zero offset, or (size_t)-1 */
static size_t first_nonzero(const void *p, size_t n) {
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        if (c[i])
            return i;
    return (size_t)-1;
}

/* ---- pattern blocks: a header telling the task what to expect -------------- */

struct pat_hdr {
    uint64_t self; /* the block's address, as the parent sees it */
    uint64_t len;  /* bytes of data after the header */
    uint64_t seed;
    uint64_t pad;
};

static unsigned char pat_byte(uint64_t seed, size_t i) {
    return (unsigned char)((i * 131u + seed * 7u + (i >> 9)) & 0xffu);
}

static struct pat_hdr *make_pattern(pp_pool_t *pool, size_t len, uint64_t seed) {
    struct pat_hdr *h = must_alloc(pool, sizeof *h + len);
    h->self = (uint64_t)(uintptr_t)h;
    h->len = len;
    h->seed = seed;
    unsigned char *d = (unsigned char *)(h + 1);
    for (size_t i = 0; i < len; i++)
        d[i] = pat_byte(seed, i);
    return h;
}

/* In a worker: does the block at p hold what the parent wrote? NULL if so,
 * else a description written into msg. */
static const char *check_pattern(uintptr_t p, char *msg, size_t msgsize) {
    const struct pat_hdr *h = (const struct pat_hdr *)p;
    if (h->self != (uint64_t)p) {
        snprintf(msg, msgsize, "block at %#lx has self %#llx (pid %d)", (unsigned long)p,
                 (unsigned long long)h->self, (int)getpid());
        return msg;
    }
    const unsigned char *d = (const unsigned char *)(h + 1);
    for (size_t i = 0; i < h->len; i++)
        if (d[i] != pat_byte(h->seed, i)) {
            snprintf(msg, msgsize, "block at %#lx byte %zu is %u, expected %u (pid %d)",
                     (unsigned long)p, i, d[i], pat_byte(h->seed, i), (int)getpid());
            return msg;
        }
    return NULL;
}

/* ---- tasks ------------------------------------------------------------------ */

/* arg: the pointer value of a pattern block. Result: getpid(). */
static int task_check_block(const void *arg, size_t len, pp_buf_t *out) {
    uintptr_t p = get_ptr_arg(arg, len);
    if (!p)
        return pp_buf_fail(out, "bad arg len %zu", len);
    char msg[256];
    if (check_pattern(p, msg, sizeof msg))
        return pp_buf_fail(out, "%s", msg);
    return ret_long(out, (long)getpid());
}

/* A meeting point: `target` tasks wait for each other, so they must be on
 * `target` different workers; each checks every block in blocks[]. */
struct meet {
    _Atomic long arrived;
    long target;
    uint64_t blocks[4];
};

/* Result: getpid(), negated when the partner did not arrive within 2 s
 * (both tasks were queued on one worker, which the pool may do while a
 * worker is being replaced: the caller then tries again). */
static int task_meet(const void *arg, size_t len, pp_buf_t *out) {
    uintptr_t p = get_ptr_arg(arg, len);
    if (!p)
        return pp_buf_fail(out, "bad arg len %zu", len);
    struct meet *m = (struct meet *)p;
    char msg[256];
    for (int i = 0; i < 4; i++)
        if (m->blocks[i] && check_pattern((uintptr_t)m->blocks[i], msg, sizeof msg))
            return pp_buf_fail(out, "%s", msg);
    atomic_fetch_add(&m->arrived, 1);
    double end = ppt_now() + 2.0;
    while (atomic_load(&m->arrived) < m->target) {
        if (ppt_now() > end)
            return ret_long(out, -(long)getpid());
        ppt_sleep_ms(1);
    }
    return ret_long(out, (long)getpid());
}

static int task_sigkill(const void *arg, size_t len, pp_buf_t *out) {
    (void)arg;
    (void)len;
    (void)out;
    reset_crash_signals(NULL);
    raise(SIGKILL);
    return 0;
}

/* arg: struct wr. Writes a pattern into [p, p+len). */
struct wr {
    uint64_t p, len, seed;
};

static int task_write(const void *arg, size_t len, pp_buf_t *out) {
    if (len != sizeof(struct wr))
        return pp_buf_fail(out, "bad arg len %zu", len);
    struct wr w;
    memcpy(&w, arg, sizeof w);
    unsigned char *d = (unsigned char *)(uintptr_t)w.p;
    for (size_t i = 0; i < w.len; i++)
        d[i] = pat_byte(w.seed, i);
    return ret_long(out, (long)getpid());
}

/* ---- 1. same address everywhere -------------------------------------------- */

/* Two tasks that wait for each other, so on two different workers, each
 * checking every block of m. Tries up to 5 times. */
static pid_t meet_round(pp_pool_t *pool, struct meet *m, pid_t *pids) {
    for (int attempt = 0; attempt < 5; attempt++) {
        atomic_store(&m->arrived, 0);
        m->target = 2;
        pp_future_t *f[2];
        uintptr_t mp = (uintptr_t)m;
        for (int i = 0; i < 2; i++)
            assert_rc(pp_apply_async(pool, task_meet, &mp, sizeof mp, &f[i]), 0);
        int met = 1;
        for (int i = 0; i < 2; i++) {
            long v = ppt_get_long(f[i], 20.0);
            pp_future_free(f[i]);
            if (v < 0)
                met = 0;
            pids[i] = (pid_t)(v < 0 ? -v : v);
            assert_true(pids[i] > 0);
            assert_int_not_equal(pids[i], getpid());
        }
        if (met && pids[0] != pids[1])
            return pids[0];
        printf("[ INFO     ] two tasks that wait for each other were queued on one worker "
               "(pid %d); trying again\n",
               (int)pids[0]);
    }
    fail_msg("five times, two tasks that wait for each other did not run on two workers");
    return 0;
}

static void same_address(pp_start_t start) {
    ppt_hang_guard(30);
    pp_pool_t *pool = shm_pool(2, start, 0);

    /* allocated right after creation, before any task ran */
    struct pat_hdr *a = make_pattern(pool, 64 * KiB + 3, 1);
    struct meet *m = must_alloc(pool, sizeof *m);
    assert_true(((uintptr_t)m & 63) == 0);
    m->blocks[0] = (uint64_t)(uintptr_t)a;

    /* each worker, by pointer value */
    uintptr_t ap = (uintptr_t)a;
    pid_t first = (pid_t)run_long(pool, task_check_block, &ap, sizeof ap);
    assert_true(first > 0);
    pid_t orig[2];
    meet_round(pool, m, orig);

    /* allocated after the workers started and ran tasks */
    struct pat_hdr *b = make_pattern(pool, 3 * MiB + 17, 2);
    m->blocks[1] = (uint64_t)(uintptr_t)b;
    pid_t again[2];
    meet_round(pool, m, again);
    assert_true((again[0] == orig[0] || again[0] == orig[1]) &&
                (again[1] == orig[0] || again[1] == orig[1]));

    /* a worker is killed and replaced */
    pp_future_t *kf = NULL;
    assert_rc(pp_apply_async(pool, task_sigkill, NULL, 0, &kf), 0);
    assert_rc(pp_future_get(kf, 20.0, NULL, NULL), PP_EWORKER);
    pp_future_free(kf);

    /* allocated after the replacement was (or is being) forked */
    struct pat_hdr *c = make_pattern(pool, 200 * KiB, 3);
    m->blocks[2] = (uint64_t)(uintptr_t)c;
    pid_t now[2];
    meet_round(pool, m, now);
    int fresh = 0;
    for (int i = 0; i < 2; i++)
        if (now[i] != orig[0] && now[i] != orig[1])
            fresh++;
    if (fresh != 1)
        fail_msg("after one worker was killed, expected exactly one new pid among %d %d "
                 "(originals %d %d)",
                 (int)now[0], (int)now[1], (int)orig[0], (int)orig[1]);

    /* and the replacement sees every block by pointer value too */
    for (int round = 0; round < 3; round++)
        meet_round(pool, m, now);

    /* the parent's copy is still intact */
    char msg[256];
    assert_null(check_pattern((uintptr_t)a, msg, sizeof msg));
    assert_null(check_pattern((uintptr_t)b, msg, sizeof msg));
    assert_null(check_pattern((uintptr_t)c, msg, sizeof msg));

    must_free(pool, a);
    must_free(pool, b);
    must_free(pool, c);
    must_free(pool, m);
    ppt_finish(pool);
}

static void test_same_address_fork(void **state) {
    (void)state;
    same_address(PP_START_FORK);
}

static void test_same_address_forkserver(void **state) {
    (void)state;
    same_address(PP_START_FORKSERVER);
}

static void test_same_address_spawn(void **state) {
    (void)state;
    skip_unless_spawn();
    same_address(PP_START_SPAWN);
}

/* ---- 2. writes by workers are visible to the parent -------------------------- */

static void test_worker_writes_visible(void **state) {
    (void)state;
    ppt_hang_guard(30);
    pp_pool_t *pool = shm_pool(2, PP_START_FORK, 0);
    /* run something first so the workers exist before the block does */
    struct pat_hdr *warm = make_pattern(pool, 100, 9);
    uintptr_t wp = (uintptr_t)warm;
    run_long(pool, task_check_block, &wp, sizeof wp);

    enum { SLICES = 16 };
    size_t slice = 512 * KiB + 40; /* not page aligned: neighbours share pages */
    unsigned char *big = must_alloc(pool, SLICES * slice);
    assert_true(is_zero(big, SLICES * slice));
    pp_future_t *f[SLICES];
    for (int i = 0; i < SLICES; i++) {
        struct wr w = {(uint64_t)(uintptr_t)(big + (size_t)i * slice), slice, 100u + (uint64_t)i};
        assert_rc(pp_apply_async(pool, task_write, &w, sizeof w, &f[i]), 0);
    }
    for (int i = 0; i < SLICES; i++) {
        ppt_get_long(f[i], 20.0);
        pp_future_free(f[i]);
        /* once this future is done, slice i is there */
        unsigned char *d = big + (size_t)i * slice;
        for (size_t j = 0; j < slice; j++)
            if (d[j] != pat_byte(100u + (uint64_t)i, j))
                fail_msg("slice %d byte %zu: got %u, expected %u", i, j, d[j],
                         pat_byte(100u + (uint64_t)i, j));
    }

    /* one small write, read right after pp_apply returns */
    long *cell = must_alloc(pool, sizeof(long));
    struct wr w = {(uint64_t)(uintptr_t)cell, sizeof(long), 5};
    void *res = NULL;
    size_t rlen = 0;
    assert_rc(pp_apply(pool, task_write, &w, sizeof w, &res, &rlen), 0);
    free(res);
    unsigned char expect[sizeof(long)];
    for (size_t j = 0; j < sizeof expect; j++)
        expect[j] = pat_byte(5, j);
    assert_memory_equal(cell, expect, sizeof expect);

    must_free(pool, cell);
    must_free(pool, big);
    must_free(pool, warm);
    ppt_finish(pool);
}

/* ---- 3. free and reuse ------------------------------------------------------ */

static long rss_shmem_kib(void) {
    FILE *fp = fopen("/proc/self/status", "re");
    if (!fp)
        return -1;
    char line[256];
    long v = -1;
    while (fgets(line, sizeof line, fp))
        if (sscanf(line, "RssShmem: %ld kB", &v) == 1)
            break;
    fclose(fp);
    return v;
}

static const size_t reuse_sizes[] = {1, 63, 64, 4095, 4096, 64 * KiB, MiB, 256 * MiB};
#define NSIZES (sizeof reuse_sizes / sizeof reuse_sizes[0])

static void check_fresh_block(pp_pool_t *pool, void *p, size_t size, const char *when) {
    uintptr_t a = (uintptr_t)p;
    size_t align = size >= 64 * KiB ? 4096 : 64;
    if (a % align)
        fail_msg("%s: pp_shm_alloc(%zu) = %p is not %zu-aligned", when, size, p, align);
    size_t nz = first_nonzero(p, size);
    if (nz != (size_t)-1)
        fail_msg("%s: pp_shm_alloc(%zu) = %p is not zero-filled: byte %zu is %u", when, size, p, nz,
                 ((unsigned char *)p)[nz]);
    assert_int_equal(pp_shm_contains(pool, p, size), 1);
    assert_int_equal(pp_shm_contains(pool, (char *)p + size - 1, 1), 1);
}

static void test_free_and_reuse(void **state) {
    (void)state;
    ppt_hang_guard(30);
    pp_pool_t *pool = shm_pool(2, PP_START_FORK, 0);
    void *p[NSIZES];

    for (int round = 0; round < 3; round++) {
        for (size_t i = 0; i < NSIZES; i++) {
            p[i] = must_alloc(pool, reuse_sizes[i]);
            check_fresh_block(pool, p[i], reuse_sizes[i], round ? "after reuse" : "first");
            memset(p[i], 0xA5, reuse_sizes[i]);
        }
        /* no two blocks overlap: each still holds its own bytes */
        for (size_t i = 0; i < NSIZES; i++)
            for (size_t j = i + 1; j < NSIZES; j++) {
                uintptr_t a0 = (uintptr_t)p[i], a1 = a0 + reuse_sizes[i];
                uintptr_t b0 = (uintptr_t)p[j], b1 = b0 + reuse_sizes[j];
                if (a0 < b1 && b0 < a1)
                    fail_msg("blocks of %zu and %zu bytes overlap: %p and %p", reuse_sizes[i],
                             reuse_sizes[j], p[i], p[j]);
            }
        /* free in a mixed order */
        for (size_t k = 0; k < NSIZES; k++) {
            size_t i = (k * 3 + (size_t)round) % NSIZES;
            must_free(pool, p[i]);
        }
    }

    /* many small blocks sharing pages: freeing one must not clear a live
     * neighbour, and reallocating gives zeroes again */
    enum { NSMALL = 200 };
    unsigned char *s[NSMALL];
    for (int i = 0; i < NSMALL; i++) {
        s[i] = must_alloc(pool, 63);
        memset(s[i], 0xFF, 63);
    }
    for (int i = 0; i < NSMALL; i += 2)
        must_free(pool, s[i]);
    for (int i = 1; i < NSMALL; i += 2)
        for (int j = 0; j < 63; j++)
            if (s[i][j] != 0xFF)
                fail_msg("freeing a neighbour changed live block %d byte %d to %u", i, j, s[i][j]);
    for (int i = 0; i < NSMALL; i += 2) {
        s[i] = must_alloc(pool, 63);
        check_fresh_block(pool, s[i], 63, "small after reuse");
        memset(s[i], 0xEE, 63);
    }
    for (int i = 0; i < NSMALL; i++)
        must_free(pool, s[i]);

    /* freed pages go back to the system */
    long before = rss_shmem_kib();
    unsigned char *huge = must_alloc(pool, 256 * MiB);
    memset(huge, 1, 256 * MiB);
    long during = rss_shmem_kib();
    must_free(pool, huge);
    long after = rss_shmem_kib();
    if (before >= 0 && during >= 0 && after >= 0) {
        if (during - before < 200 * 1024)
            fail_msg("RssShmem did not grow by a written 256 MiB block: %ld -> %ld kB", before,
                     during);
        if (during - after < 200 * 1024)
            fail_msg("pp_shm_free of 256 MiB did not give the pages back: RssShmem %ld kB "
                     "before alloc, %ld written, %ld after free",
                     before, during, after);
    }

    /* double free and stale pointers */
    assert_rc(pp_shm_free(pool, huge), -EINVAL);
    ppt_finish(pool);
}

/* a range that must be reused: 20 x 48 MiB in a 64 MiB pool */
static void test_reuse_small_range(void **state) {
    (void)state;
    ppt_hang_guard(30);
    pp_pool_t *pool = shm_pool(2, PP_START_FORK, 64 * MiB);
    for (int i = 0; i < 20; i++) {
        unsigned char *p = must_alloc(pool, 48 * MiB);
        check_fresh_block(pool, p, 48 * MiB, "48 MiB again in a 64 MiB range");
        memset(p, 0x5A, 48 * MiB);
        must_free(pool, p);
    }
    ppt_finish(pool);
}

/* ---- 4. exhaustion ----------------------------------------------------------- */

static void test_exhaustion(void **state) {
    (void)state;
    ppt_hang_guard(30);
    pp_pool_t *pool = shm_pool(2, PP_START_FORK, 64 * MiB);

    errno = 0;
    void *p = pp_shm_alloc(pool, 65 * MiB);
    if (p != NULL)
        fail_msg("65 MiB from a pool with shm_size 64 MiB gave %p, expected NULL/ENOMEM", p);
    assert_int_equal(errno, ENOMEM);

    errno = 0;
    p = pp_shm_alloc(pool, SIZE_MAX);
    assert_null(p);
    assert_int_equal(errno, ENOMEM);
    errno = 0;
    p = pp_shm_alloc(pool, SIZE_MAX - 4095);
    assert_null(p);
    assert_int_equal(errno, ENOMEM);

    void *a = must_alloc(pool, 32 * MiB);
    check_fresh_block(pool, a, 32 * MiB, "32 MiB of 64");
    errno = 0;
    void *b = pp_shm_alloc(pool, 40 * MiB);
    if (b != NULL)
        fail_msg("40 MiB more after 32 of 64 MiB gave %p, expected NULL/ENOMEM", b);
    assert_int_equal(errno, ENOMEM);

    /* the pool still works after a failed allocation */
    struct pat_hdr *h = make_pattern(pool, 1000, 4);
    uintptr_t hp = (uintptr_t)h;
    assert_true(run_long(pool, task_check_block, &hp, sizeof hp) > 0);

    must_free(pool, h); /* (it would split the range: 40 MiB must be contiguous) */
    must_free(pool, a);
    b = must_alloc(pool, 40 * MiB);
    check_fresh_block(pool, b, 40 * MiB, "40 MiB after freeing 32");
    must_free(pool, b);
    /* and the whole range is one extent again */
    b = must_alloc(pool, 64 * MiB);
    check_fresh_block(pool, b, 64 * MiB, "all 64 MiB after freeing everything");
    must_free(pool, b);
    ppt_finish(pool);
}

/* ---- 5. argument errors, pp_shm_contains ------------------------------------- */

static void test_errors_and_contains(void **state) {
    (void)state;
    ppt_hang_guard(30);
    pp_pool_t *pool = shm_pool(2, PP_START_FORK, 0);
    pp_pool_t *other = shm_pool(2, PP_START_FORK, 0);

    errno = 0;
    assert_null(pp_shm_alloc(NULL, 8));
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_null(pp_shm_alloc(pool, 0));
    assert_int_equal(errno, EINVAL);

    assert_rc(pp_shm_free(pool, NULL), 0);
    long on_stack = 0;
    assert_rc(pp_shm_free(pool, &on_stack), -EINVAL);
    void *heap = malloc(64);
    assert_rc(pp_shm_free(pool, heap), -EINVAL);
    free(heap);

    char *p = must_alloc(pool, 4096);
    char *q = must_alloc(other, 4096);
    assert_rc(pp_shm_free(pool, p + 64), -EINVAL); /* inside a live block */
    assert_rc(pp_shm_free(pool, p + 1), -EINVAL);
    assert_rc(pp_shm_free(pool, q), -EINVAL); /* another pool's block */
    assert_rc(pp_shm_free(NULL, p), -EINVAL);

    assert_int_equal(pp_shm_contains(pool, p, 4096), 1);
    assert_int_equal(pp_shm_contains(pool, p + 100, 8), 1);
    assert_int_equal(pp_shm_contains(pool, &on_stack, sizeof on_stack), 0);
    assert_int_equal(pp_shm_contains(pool, NULL, 8), 0);
    assert_int_equal(pp_shm_contains(pool, q, 8), 0);
    assert_int_equal(pp_shm_contains(other, q, 4096), 1);
    assert_int_equal(pp_shm_contains(other, p, 8), 0);
    assert_int_equal(pp_shm_contains(NULL, p, 8), -EINVAL);
    assert_int_equal(pp_shm_contains(pool, p, SIZE_MAX), 0); /* wraps around */

    /* the two pools' ranges are disjoint */
    assert_true(p != q);

    /* in a child of fork() the pool is not ours */
    fflush(stdout);
    fflush(stderr);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        errno = 0;
        void *c = pp_shm_alloc(pool, 8);
        _exit(c == NULL && errno == ECHILD ? 0 : c == NULL ? 2 : 3);
    }
    int status = 0;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) != 0)
        fail_msg("pp_shm_alloc in a fork() child: expected NULL/ECHILD, got %s",
                 WEXITSTATUS(status) == 2 ? "NULL with another errno" : "a block");

    /* the blocks still work */
    must_free(pool, p);
    must_free(other, q);
    assert_rc(pp_shm_free(pool, p), -EINVAL); /* double free */
    ppt_finish(other);
    ppt_finish(pool);
}

/* ---- 6. allocation from several parent threads -------------------------------- */

struct thr_arg {
    pp_pool_t *pool;
    int id;
    int bad;
};

static void *alloc_thread(void *arg) {
    struct thr_arg *t = arg;
    unsigned seed = (unsigned)t->id * 7919u + 1u;
    void *held[16] = {0};
    size_t held_n[16] = {0};
    for (int it = 0; it < 2000 && !t->bad; it++) {
        int k = it % 16;
        if (held[k]) {
            unsigned char *c = held[k];
            for (size_t j = 0; j < held_n[k]; j++)
                if (c[j] != (unsigned char)t->id) {
                    t->bad = 1; /* someone else wrote into my block */
                    break;
                }
            if (pp_shm_free(t->pool, held[k]) != 0)
                t->bad = 2;
            held[k] = NULL;
        }
        seed = seed * 1103515245u + 12345u;
        size_t n = 1 + (seed >> 8) % 20000;
        unsigned char *c = pp_shm_alloc(t->pool, n);
        if (!c) {
            t->bad = 3;
            break;
        }
        if (!is_zero(c, n))
            t->bad = 4;
        memset(c, t->id, n);
        held[k] = c;
        held_n[k] = n;
    }
    for (int k = 0; k < 16; k++)
        if (held[k] && pp_shm_free(t->pool, held[k]) != 0)
            t->bad = 2;
    return NULL;
}

static void test_alloc_threads(void **state) {
    (void)state;
    ppt_hang_guard(30);
    pp_pool_t *pool = shm_pool(2, PP_START_FORK, 0);
    enum { NT = 4 };
    pthread_t th[NT];
    struct thr_arg ta[NT];
    for (int i = 0; i < NT; i++) {
        ta[i] = (struct thr_arg){pool, i + 1, 0};
        assert_int_equal(pthread_create(&th[i], NULL, alloc_thread, &ta[i]), 0);
    }
    for (int i = 0; i < NT; i++)
        pthread_join(th[i], NULL);
    static const char *why[] = {"", "blocks overlap (a block held another thread's bytes)",
                                "pp_shm_free of a live block failed", "pp_shm_alloc returned NULL",
                                "a block was not zero-filled"};
    for (int i = 0; i < NT; i++)
        if (ta[i].bad)
            fail_msg("thread %d: %s", i, why[ta[i].bad]);
    ppt_finish(pool);
}

/* ---- 7. zero-copy map --------------------------------------------------------- */

static int task_square(const void *arg, size_t len, pp_buf_t *out) {
    if (len != sizeof(double))
        return pp_buf_fail(out, "bad item len %zu", len);
    double x;
    memcpy(&x, arg, sizeof x);
    x = x * x;
    return pp_buf_append(out, &x, sizeof x);
}

static double item_value(size_t i) { return (double)(i % 1000003) * 0.5 - 1234.25; }

enum { NMAP = 1000000 };

static void check_squares(const double *res, const char *what) {
    for (size_t i = 0; i < NMAP; i++) {
        double x = item_value(i);
        if (res[i] != x * x)
            fail_msg("%s: results[%zu] = %.17g, expected %.17g", what, i, res[i], x * x);
    }
}

static void test_map_in_shm(void **state) {
    (void)state;
    ppt_hang_guard(30);
    pp_pool_t *pool = shm_pool(2, PP_START_FORK, 0);
    size_t bytes = NMAP * sizeof(double);
    double *items = must_alloc(pool, bytes);
    double *results = must_alloc(pool, bytes);
    double *heap_items = malloc(bytes);
    double *heap_results = malloc(bytes);
    assert_non_null(heap_items);
    assert_non_null(heap_results);
    for (size_t i = 0; i < NMAP; i++)
        items[i] = heap_items[i] = item_value(i);

    /* items and results both in shm, distinct arrays */
    assert_rc(pp_map(pool, task_square, items, sizeof(double), NMAP, results, sizeof(double), 0),
              0);
    check_squares(results, "items+results in shm");
    for (size_t i = 0; i < NMAP; i++)
        if (items[i] != item_value(i))
            fail_msg("pp_map changed items[%zu]", i);

    /* results in shm, items on the heap */
    memset(results, 0, bytes);
    assert_rc(
        pp_map(pool, task_square, heap_items, sizeof(double), NMAP, results, sizeof(double), 0), 0);
    check_squares(results, "results in shm, items on the heap");

    /* items in shm, results on the heap */
    memset(heap_results, 0, bytes);
    assert_rc(pp_map(pool, task_square, items, sizeof(double), NMAP, heap_results, sizeof(double),
                     PP_CHUNK_AUTO),
              0);
    check_squares(heap_results, "items in shm, results on the heap");

    /* in place: results are the items */
    assert_rc(pp_map(pool, task_square, items, sizeof(double), NMAP, items, sizeof(double), 0), 0);
    check_squares(items, "in place (results == items)");

    /* async with progress, in place again on a fresh array */
    for (size_t i = 0; i < NMAP; i++)
        results[i] = item_value(i);
    pp_future_t *f = NULL;
    assert_rc(pp_map_async(pool, task_square, results, sizeof(double), NMAP, results,
                           sizeof(double), 1000, &f),
              0);
    assert_rc(pp_future_get(f, 20.0, NULL, NULL), 0);
    size_t done = 0, total = 0;
    assert_rc(pp_future_progress(f, &done, &total), 0);
    assert_int_equal(done, NMAP);
    assert_int_equal(total, NMAP);
    pp_future_free(f);
    check_squares(results, "pp_map_async in place");

    free(heap_items);
    free(heap_results);
    must_free(pool, items);
    must_free(pool, results);
    ppt_finish(pool);
}

/* items == results in shm, and a worker dies in the middle of a chunk: the
 * dying item fails alone (PP_EWORKER), every other item holds its square
 * exactly once -- an item whose result was already written in place must
 * not be run again on its own result */
static int task_square_or_die(const void *arg, size_t len, pp_buf_t *out) {
    if (len != sizeof(double))
        return pp_buf_fail(out, "bad item len %zu", len);
    double x;
    memcpy(&x, arg, sizeof x);
    if (x == 150.0) {
        reset_crash_signals(NULL);
        raise(SIGKILL);
    }
    x = x * x;
    return pp_buf_append(out, &x, sizeof x);
}

static void test_map_in_place_with_crash(void **state) {
    (void)state;
    ppt_hang_guard(30);
    pp_pool_t *pool = shm_pool(2, PP_START_FORK, 0);
    enum { N = 400 };
    double *a = must_alloc(pool, N * sizeof(double));
    for (size_t i = 0; i < N; i++)
        a[i] = (double)i;
    pp_future_t *f = NULL;
    assert_rc(
        pp_map_async(pool, task_square_or_die, a, sizeof(double), N, a, sizeof(double), 100, &f),
        0);
    int rc = pp_future_get(f, 20.0, NULL, NULL);
    if (rc != PP_EWORKER)
        fail_msg("in-place map with a crash: %s (%s), expected PP_EWORKER", pp_err_name(rc),
                 pp_future_error(f) ? pp_future_error(f) : "no message");
    pp_future_free(f);
    int wrong = 0;
    char first[160] = "";
    for (size_t i = 0; i < N; i++) {
        double want = (double)i * (double)i;
        if (i != 150 && a[i] != want && wrong++ == 0)
            snprintf(first, sizeof first, "a[%zu] = %.17g, expected %.17g", i, a[i], want);
    }
    if (wrong)
        fail_msg("in-place map, worker killed at item 150 of chunk 100..199: %d items wrong, "
                 "first: %s (an item run twice on its own result?)",
                 wrong, first);
    must_free(pool, a);
    ppt_finish(pool);
}

/* an item that knows its own address: it must be read where it lies */
struct zc_item {
    uint64_t self;
    double x;
};

static int task_zc_item(const void *arg, size_t len, pp_buf_t *out) {
    if (len != sizeof(struct zc_item))
        return pp_buf_fail(out, "bad item len %zu", len);
    struct zc_item it;
    memcpy(&it, arg, sizeof it);
    if ((uintptr_t)arg != it.self)
        return pp_buf_fail(out, "item was copied: the task got it at %p, it lives at %#llx", arg,
                           (unsigned long long)it.self);
    double r = it.x + 1.0;
    return pp_buf_append(out, &r, sizeof r);
}

static void test_map_items_by_reference(void **state) {
    (void)state;
    ppt_hang_guard(30);
    pp_pool_t *pool = shm_pool(2, PP_START_FORK, 0);
    enum { N = 100000 };
    struct zc_item *items = must_alloc(pool, N * sizeof *items);
    double *res = must_alloc(pool, N * sizeof(double));
    for (size_t i = 0; i < N; i++)
        items[i] = (struct zc_item){(uint64_t)(uintptr_t)&items[i], (double)i};
    pp_future_t *f = NULL;
    assert_rc(pp_map_async(pool, task_zc_item, items, sizeof *items, N, res, sizeof(double), 0, &f),
              0);
    int rc = pp_future_get(f, 20.0, NULL, NULL);
    if (rc != 0)
        fail_msg("pp_map over items in shm: %s: %s", pp_err_name(rc),
                 pp_future_error(f) ? pp_future_error(f) : "(no message)");
    pp_future_free(f);
    for (size_t i = 0; i < N; i++)
        if (res[i] != (double)i + 1.0)
            fail_msg("res[%zu] = %g, expected %g", i, res[i], (double)i + 1.0);

    /* pp_imap reads them in place too */
    pp_iter_t *it = NULL;
    assert_rc(pp_imap(pool, task_zc_item, items, sizeof *items, 1000, 0, &it), 0);
    size_t idx, len, seen = 0;
    const void *d;
    int r;
    while ((r = pp_iter_next(it, 20.0, &idx, &d, &len)) == 1) {
        double v;
        assert_int_equal(len, sizeof v);
        memcpy(&v, d, sizeof v);
        assert_true(v == (double)idx + 1.0);
        seen++;
    }
    if (r != 0)
        fail_msg("pp_imap over items in shm: %s: %s", pp_err_name(r),
                 pp_iter_error(it) ? pp_iter_error(it) : "(no message)");
    assert_int_equal(seen, 1000);
    pp_iter_free(it);

    must_free(pool, items);
    must_free(pool, res);
    ppt_finish(pool);
}

/* ---- 8. a large pp_apply argument in shm, by reference ------------------------- */

static long sum_bytes(const unsigned char *d, size_t n) {
    uint64_t s = 0;
    for (size_t i = 0; i < n; i++)
        s = s * 31u + d[i];
    return (long)(s >> 1);
}

/* the first 8 bytes hold the address the parent passed */
static int task_big_arg(const void *arg, size_t len, pp_buf_t *out) {
    if (len < 16)
        return pp_buf_fail(out, "bad arg len %zu", len);
    uint64_t self;
    memcpy(&self, arg, sizeof self);
    if ((uintptr_t)arg != self)
        return pp_buf_fail(out,
                           "arg of %zu bytes was copied: the task got %p, the parent passed "
                           "%#llx",
                           len, arg, (unsigned long long)self);
    return ret_long(out, sum_bytes(arg, len));
}

static void test_apply_big_arg_by_reference(void **state) {
    (void)state;
    ppt_hang_guard(30);
    pp_pool_t *pool = shm_pool(2, PP_START_FORK, 0);
    size_t n = 16 * MiB;
    unsigned char *buf = must_alloc(pool, n);
    for (size_t i = 8; i < n; i++)
        buf[i] = pat_byte(77, i);
    uint64_t self = (uint64_t)(uintptr_t)buf;
    memcpy(buf, &self, sizeof self);
    long want = sum_bytes(buf, n);

    /* pp_apply */
    void *res = NULL;
    size_t rlen = 0;
    int rc = pp_apply(pool, task_big_arg, buf, n, &res, &rlen);
    if (rc != 0) {
        /* pp_apply loses the message: say what pp_apply_async says */
        pp_future_t *f = NULL;
        assert_rc(pp_apply_async(pool, task_big_arg, buf, n, &f), 0);
        pp_future_wait(f, 20.0);
        fail_msg("pp_apply with a 16 MiB arg in shm returned %s: %s", pp_err_name(rc),
                 pp_future_error(f) ? pp_future_error(f) : "(no message)");
    }
    assert_int_equal(rlen, sizeof(long));
    long got;
    memcpy(&got, res, sizeof got);
    free(res);
    assert_int_equal(got, want);

    /* pp_apply_async, several at once, one starting inside the block */
    unsigned char *mid = buf + 4 * MiB;
    uint64_t mself = (uint64_t)(uintptr_t)mid;
    memcpy(mid, &mself, sizeof mself);
    long want_mid = sum_bytes(mid, MiB);
    want = sum_bytes(buf, n); /* the first header was not touched */
    pp_future_t *f[4];
    for (int i = 0; i < 4; i++)
        assert_rc(i % 2 ? pp_apply_async(pool, task_big_arg, mid, MiB, &f[i])
                        : pp_apply_async(pool, task_big_arg, buf, n, &f[i]),
                  0);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(ppt_get_long(f[i], 20.0), i % 2 ? want_mid : want);
        pp_future_free(f[i]);
    }
    must_free(pool, buf);
    ppt_finish(pool);
}

/* ---- 9. nothing left behind ------------------------------------------------------ */

static int count_shm_maps(void) {
    FILE *fp = fopen("/proc/self/maps", "re");
    assert_non_null(fp);
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof line, fp))
        if (strstr(line, "memfd:") || strstr(line, "procpool") || strstr(line, "/dev/shm"))
            n++;
    fclose(fp);
    return n;
}

/* the /proc/self/maps line covering addr, or "" */
static int mapped_at(uintptr_t addr, char *line, size_t size) {
    FILE *fp = fopen("/proc/self/maps", "re");
    assert_non_null(fp);
    int found = 0;
    while (fgets(line, (int)size, fp)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && addr >= lo && addr < hi) {
            found = 1;
            break;
        }
    }
    fclose(fp);
    if (!found)
        line[0] = '\0';
    return found;
}

static void nothing_left(pp_start_t start) {
    ppt_hang_guard(30);
    int maps0 = count_shm_maps();
    int shm0 = ppt_count_entries("/dev/shm");
    int fd0 = ppt_count_entries("/proc/self/fd");

    pp_pool_t *pool = shm_pool(2, start, 0);
    struct pat_hdr *a = make_pattern(pool, 4 * MiB, 11);
    unsigned char *big = must_alloc(pool, 64 * MiB);
    memset(big, 3, 64 * MiB);
    uintptr_t ap = (uintptr_t)a;
    assert_true(run_long(pool, task_check_block, &ap, sizeof ap) > 0);
    if (ppt_count_entries("/dev/shm") != shm0)
        fail_msg("/dev/shm had %d entries before the pool, %d while it lives", shm0,
                 ppt_count_entries("/dev/shm"));
    char line[4096];
    assert_true(mapped_at((uintptr_t)big, line, sizeof line));
    /* freed or not: destroy takes everything */
    must_free(pool, a);
    ppt_finish(pool);

    int maps1 = count_shm_maps();
    if (maps1 != maps0)
        fail_msg("/proc/self/maps lines naming memfd:/procpool: %d before create, %d after destroy",
                 maps0, maps1);
    if (mapped_at((uintptr_t)big, line, sizeof line) && !strstr(line, "[heap]"))
        fail_msg("the shared range is still mapped after destroy: %s", line);
    assert_int_equal(ppt_count_entries("/dev/shm"), shm0);
    int fd1 = ppt_count_entries("/proc/self/fd");
    if (fd1 != fd0)
        fail_msg("open fds: %d before create, %d after destroy", fd0, fd1);
}

static void test_nothing_left_fork(void **state) {
    (void)state;
    nothing_left(PP_START_FORK);
}

static void test_nothing_left_forkserver(void **state) {
    (void)state;
    nothing_left(PP_START_FORKSERVER);
}

static void test_nothing_left_spawn(void **state) {
    (void)state;
    skip_unless_spawn();
    nothing_left(PP_START_SPAWN);
}

/* ---- 10. the parent's memory at creation time ----------------------------------- */

enum { NGLOBAL = 100000 };
static long g_parent_data[NGLOBAL];

static long g_value(size_t i) { return (long)(i * i % 1000003u) - 7; }

/* written by a task in its own worker (every worker starts with 0) */
static int g_wrote_here;

/* reads every element (but the two this worker already overwrote), then
 * writes two: returns the sum of the elements as the parent set them */
static int task_read_global(const void *arg, size_t len, pp_buf_t *out) {
    (void)arg;
    (void)len;
    long s = 0;
    for (size_t i = 0; i < NGLOBAL; i++) {
        if (g_wrote_here && (i == 0 || i == NGLOBAL - 1)) {
            s += g_value(i);
            continue;
        }
        if (i == 7 && g_parent_data[7] != g_value(7))
            return pp_buf_fail(out,
                               "g[7] = %ld: the worker sees a change the parent made after "
                               "pp_pool_create (expected %ld)",
                               g_parent_data[7], g_value(7));
        if (g_parent_data[i] != g_value(i))
            return pp_buf_fail(out, "g[%zu] = %ld, expected %ld", i, g_parent_data[i], g_value(i));
        s += g_parent_data[i];
    }
    /* a worker's write stays in the worker */
    g_parent_data[0] = -999;
    g_parent_data[NGLOBAL - 1] = 424242;
    g_wrote_here = 1;
    return ret_long(out, s);
}

static void parent_memory(pp_start_t start) {
    ppt_hang_guard(30);
    long want = 0;
    for (size_t i = 0; i < NGLOBAL; i++) {
        g_parent_data[i] = g_value(i);
        want += g_parent_data[i];
    }
    g_wrote_here = 0;
    pp_pool_t *pool = shm_pool(2, start, 0);
    g_parent_data[7] = 1; /* after creation: workers keep the old value */
    for (int i = 0; i < 6; i++)
        assert_int_equal(run_long(pool, task_read_global, NULL, 0), want);
    /* a replacement worker sees the memory as it was at creation too */
    pp_future_t *kf = NULL;
    assert_rc(pp_apply_async(pool, task_sigkill, NULL, 0, &kf), 0);
    assert_rc(pp_future_get(kf, 20.0, NULL, NULL), PP_EWORKER);
    pp_future_free(kf);
    for (int i = 0; i < 6; i++)
        assert_int_equal(run_long(pool, task_read_global, NULL, 0), want);
    /* the parent's copy is unchanged by the workers' writes */
    assert_int_equal(g_parent_data[0], g_value(0));
    assert_int_equal(g_parent_data[NGLOBAL - 1], g_value(NGLOBAL - 1));
    assert_int_equal(g_parent_data[7], 1);
    ppt_finish(pool);
}

static void test_parent_memory_fork(void **state) {
    (void)state;
    parent_memory(PP_START_FORK);
}

static void test_parent_memory_forkserver(void **state) {
    (void)state;
    parent_memory(PP_START_FORKSERVER);
}

/* ---- 11. robust mutex ---------------------------------------------------------- */

struct locked {
    pp_mutex_t m;
    long counter;
    _Atomic long acount;
};

static int task_lock_and_die(const void *arg, size_t len, pp_buf_t *out) {
    uintptr_t p = get_ptr_arg(arg, len);
    if (!p)
        return pp_buf_fail(out, "bad arg len %zu", len);
    struct locked *l = (struct locked *)p;
    reset_crash_signals(NULL);
    int rc = pp_mutex_lock(&l->m);
    if (rc != 0)
        return pp_buf_fail(out, "pp_mutex_lock in the task returned %d (%s)", rc, pp_err_name(rc));
    l->counter = -1; /* half-done update */
    raise(SIGKILL);
    return 0;
}

/* locks, reports the lock's return code, unlocks */
static int task_lock_report(const void *arg, size_t len, pp_buf_t *out) {
    uintptr_t p = get_ptr_arg(arg, len);
    if (!p)
        return pp_buf_fail(out, "bad arg len %zu", len);
    struct locked *l = (struct locked *)p;
    int rc = pp_mutex_lock(&l->m);
    if (rc == 0 || rc == -EOWNERDEAD) {
        if (rc == -EOWNERDEAD)
            l->counter = 0; /* repair */
        int u = pp_mutex_unlock(&l->m);
        if (u != 0)
            return pp_buf_fail(out, "pp_mutex_unlock after lock %d returned %d (%s)", rc, u,
                               pp_err_name(u));
    }
    return ret_long(out, rc);
}

static int task_locked_incr(const void *arg, size_t len, pp_buf_t *out) {
    uintptr_t p = get_ptr_arg(arg, len);
    if (!p)
        return pp_buf_fail(out, "bad arg len %zu", len);
    struct locked *l = (struct locked *)p;
    int rc = pp_mutex_lock(&l->m);
    if (rc != 0)
        return pp_buf_fail(out, "pp_mutex_lock returned %d (%s)", rc, pp_err_name(rc));
    long v = *(volatile long *)&l->counter;
    for (volatile int spin = 0; spin < 50; spin++) {
    }
    *(volatile long *)&l->counter = v + 1;
    rc = pp_mutex_unlock(&l->m);
    if (rc != 0)
        return pp_buf_fail(out, "pp_mutex_unlock returned %d (%s)", rc, pp_err_name(rc));
    return ret_long(out, 0);
}

static int task_atomic_incr(const void *arg, size_t len, pp_buf_t *out) {
    uintptr_t p = get_ptr_arg(arg, len);
    if (!p)
        return pp_buf_fail(out, "bad arg len %zu", len);
    struct locked *l = (struct locked *)p;
    atomic_fetch_add(&l->acount, 1);
    return ret_long(out, 0);
}

static void test_mutex_holder_killed(void **state) {
    (void)state;
    ppt_hang_guard(30);
    pp_pool_t *pool = shm_pool(2, PP_START_FORK, 0);

    assert_rc(pp_mutex_init(NULL), -EINVAL);
    assert_rc(pp_mutex_lock(NULL), -EINVAL);
    assert_rc(pp_mutex_unlock(NULL), -EINVAL);
    pp_mutex_destroy(NULL);

    struct locked *l = must_alloc(pool, sizeof *l);
    assert_rc(pp_mutex_init(&l->m), 0);
    assert_rc(pp_mutex_unlock(&l->m), -EPERM); /* not the holder */
    assert_rc(pp_mutex_lock(&l->m), 0);
    assert_rc(pp_mutex_unlock(&l->m), 0);
    uintptr_t lp = (uintptr_t)l;

    /* a task takes the lock and dies: the parent recovers it */
    pp_future_t *f = NULL;
    assert_rc(pp_apply_async(pool, task_lock_and_die, &lp, sizeof lp, &f), 0);
    int rc = pp_future_get(f, 20.0, NULL, NULL);
    if (rc != PP_EWORKER)
        fail_msg("the lock-and-die task: %s (%s), expected PP_EWORKER", pp_err_name(rc),
                 pp_future_error(f) ? pp_future_error(f) : "no message");
    pp_future_free(f);
    assert_int_equal(l->counter, -1);
    assert_rc(pp_mutex_lock(&l->m), -EOWNERDEAD);
    l->counter = 0; /* repair */
    assert_rc(pp_mutex_unlock(&l->m), 0);
    assert_rc(pp_mutex_lock(&l->m), 0);
    assert_rc(pp_mutex_unlock(&l->m), 0);

    /* again, and this time another task recovers it */
    assert_rc(pp_apply_async(pool, task_lock_and_die, &lp, sizeof lp, &f), 0);
    assert_rc(pp_future_get(f, 20.0, NULL, NULL), PP_EWORKER);
    pp_future_free(f);
    assert_int_equal(run_long(pool, task_lock_report, &lp, sizeof lp), -EOWNERDEAD);
    assert_int_equal(l->counter, 0);
    assert_int_equal(run_long(pool, task_lock_report, &lp, sizeof lp), 0);
    assert_rc(pp_mutex_lock(&l->m), 0);
    assert_rc(pp_mutex_unlock(&l->m), 0);

    pp_mutex_destroy(&l->m);
    must_free(pool, l);
    ppt_finish(pool);
}

static void test_mutex_counter(void **state) {
    (void)state;
    ppt_hang_guard(30);
    pp_pool_t *pool = shm_pool(2, PP_START_FORK, 0);
    struct locked *l = must_alloc(pool, sizeof *l);
    assert_rc(pp_mutex_init(&l->m), 0);
    uintptr_t lp = (uintptr_t)l;

    enum { NTASKS = 4000, PARENT = 2000 };
    pp_future_t **f = calloc(NTASKS, sizeof *f);
    assert_non_null(f);
    for (int i = 0; i < NTASKS; i++)
        assert_rc(pp_apply_async(pool, task_locked_incr, &lp, sizeof lp, &f[i]), 0);
    /* the parent competes for the lock while the tasks run */
    for (int i = 0; i < PARENT; i++) {
        assert_rc(pp_mutex_lock(&l->m), 0);
        long v = *(volatile long *)&l->counter;
        *(volatile long *)&l->counter = v + 1;
        assert_rc(pp_mutex_unlock(&l->m), 0);
    }
    for (int i = 0; i < NTASKS; i++) {
        ppt_get_long(f[i], 20.0);
        pp_future_free(f[i]);
    }
    free(f);
    assert_int_equal(l->counter, NTASKS + PARENT);
    pp_mutex_destroy(&l->m);
    must_free(pool, l);
    ppt_finish(pool);
}

static void test_atomic_counter(void **state) {
    (void)state;
    ppt_hang_guard(30);
    pp_pool_t *pool = shm_pool(2, PP_START_FORK, 0);
    struct locked *l = must_alloc(pool, sizeof *l);
    atomic_store(&l->acount, 0);
    uintptr_t lp = (uintptr_t)l;

    enum { NTASKS = 10000, PARENT = 5000 };
    uintptr_t *items = malloc(NTASKS * sizeof *items);
    long *res = malloc(NTASKS * sizeof *res);
    assert_non_null(items);
    assert_non_null(res);
    for (int i = 0; i < NTASKS; i++)
        items[i] = lp;
    pp_future_t *f = NULL;
    assert_rc(pp_map_async(pool, task_atomic_incr, items, sizeof *items, NTASKS, res, sizeof(long),
                           1, &f),
              0);
    for (int i = 0; i < PARENT; i++)
        atomic_fetch_add(&l->acount, 1);
    int rc = pp_future_get(f, 20.0, NULL, NULL);
    if (rc != 0)
        fail_msg("map of atomic increments: %s: %s", pp_err_name(rc),
                 pp_future_error(f) ? pp_future_error(f) : "(no message)");
    pp_future_free(f);
    assert_int_equal(atomic_load(&l->acount), NTASKS + PARENT);

    /* and 10 000 single tasks */
    atomic_store(&l->acount, 0);
    pp_future_t **fs = calloc(NTASKS, sizeof *fs);
    assert_non_null(fs);
    for (int i = 0; i < NTASKS; i++)
        assert_rc(pp_apply_async(pool, task_atomic_incr, &lp, sizeof lp, &fs[i]), 0);
    for (int i = 0; i < NTASKS; i++) {
        ppt_get_long(fs[i], 20.0);
        pp_future_free(fs[i]);
    }
    free(fs);
    assert_int_equal(atomic_load(&l->acount), NTASKS);

    free(items);
    free(res);
    must_free(pool, l);
    ppt_finish(pool);
}

/* ---- 12. a result in shm (pp_buf_reserve of a large result) ---------------------- */

static int task_big_result(const void *arg, size_t len, pp_buf_t *out) {
    (void)arg;
    (void)len;
    size_t n = 4 * MiB;
    unsigned char *p = pp_buf_reserve(out, n);
    if (!p)
        return pp_buf_fail(out, "pp_buf_reserve(%zu) failed", n);
    for (size_t i = 0; i < n; i++)
        p[i] = pat_byte(55, i);
    return 0;
}

static void test_big_result(void **state) {
    (void)state;
    ppt_hang_guard(30);
    pp_pool_t *pool = shm_pool(2, PP_START_FORK, 0);
    for (int round = 0; round < 8; round++) {
        pp_future_t *f = NULL;
        assert_rc(pp_apply_async(pool, task_big_result, NULL, 0, &f), 0);
        const void *d = NULL;
        size_t n = 0;
        assert_rc(pp_future_get(f, 20.0, &d, &n), 0);
        assert_int_equal(n, 4 * MiB);
        const unsigned char *c = d;
        for (size_t i = 0; i < n; i++)
            if (c[i] != pat_byte(55, i))
                fail_msg("round %d: result byte %zu is %u, expected %u", round, i, c[i],
                         pat_byte(55, i));
        if (round == 0)
            printf("[ INFO     ] a 4 MiB result %s in the pool's shared memory\n",
                   pp_shm_contains(pool, d, n) == 1 ? "lies" : "does not lie");
        pp_future_free(f);
    }
    ppt_finish(pool);
}

int main(void) {
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core); /* killed workers leave no core files */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_address_fork),
        cmocka_unit_test(test_same_address_forkserver),
        cmocka_unit_test(test_same_address_spawn),
        cmocka_unit_test(test_worker_writes_visible),
        cmocka_unit_test(test_free_and_reuse),
        cmocka_unit_test(test_reuse_small_range),
        cmocka_unit_test(test_exhaustion),
        cmocka_unit_test(test_errors_and_contains),
        cmocka_unit_test(test_alloc_threads),
        cmocka_unit_test(test_map_in_shm),
        cmocka_unit_test(test_map_in_place_with_crash),
        cmocka_unit_test(test_map_items_by_reference),
        cmocka_unit_test(test_apply_big_arg_by_reference),
        cmocka_unit_test(test_nothing_left_fork),
        cmocka_unit_test(test_nothing_left_forkserver),
        cmocka_unit_test(test_nothing_left_spawn),
        cmocka_unit_test(test_parent_memory_fork),
        cmocka_unit_test(test_parent_memory_forkserver),
        cmocka_unit_test(test_mutex_holder_killed),
        cmocka_unit_test(test_mutex_counter),
        cmocka_unit_test(test_atomic_counter),
        cmocka_unit_test(test_big_result),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
