/*
 * test_mpi.c - the MPI backend, run by CTest as
 *     PROCPOOL_BACKEND=mpi mpirun -n 3 test_mpi
 * Rank 0 runs these tests; ranks 1 and 2 are node agents (they never reach
 * main). Every pool here is an MPI pool unless a test says otherwise, so
 * each task's environment says which rank ran it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "helpers.h"

#include <signal.h>
#include <stdatomic.h>
#include <sys/stat.h>

#define NITEMS 200000

#if defined(__SANITIZE_THREAD__)
#define PPT_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define PPT_TSAN 1
#endif
#endif
#ifndef PPT_TSAN
#define PPT_TSAN 0
#endif

static int my_rank(void) {
    const char *r = getenv("OMPI_COMM_WORLD_RANK");
    return r ? atoi(r) : -1;
}

/* ---------------------------------------------------------------- */
/* tasks                                                             */
/* ---------------------------------------------------------------- */

typedef struct where {
    int rank;
    int pid;
} where_t;

static int t_where(const void *a, size_t n, pp_buf_t *out) {
    (void)a;
    (void)n;
    where_t w = {my_rank(), (int)getpid()};
    return pp_buf_append(out, &w, sizeof w);
}

static int t_square(const void *a, size_t n, pp_buf_t *out) {
    if (n != sizeof(int64_t))
        return pp_buf_fail(out, "bad length %zu", n);
    int64_t x;
    memcpy(&x, a, sizeof x);
    x *= x;
    return pp_buf_append(out, &x, sizeof x);
}

/* item: an int; result: the int's rank-tagged value (rank * 1e9 + i) */
static int t_tag(const void *a, size_t n, pp_buf_t *out) {
    (void)n;
    int64_t v = (int64_t)my_rank() * 1000000000 + *(const int *)a;
    return pp_buf_append(out, &v, sizeof v);
}

static int t_fail(const void *a, size_t n, pp_buf_t *out) {
    (void)n;
    return pp_buf_fail(out, "refused %d on rank %d", *(const int *)a, my_rank());
}

static int t_crash(const void *a, size_t n, pp_buf_t *out) {
    (void)a;
    (void)n;
    (void)out;
    raise(SIGSEGV);
    return 0;
}

/* items: ints; item 500 crashes its worker, 300 fails */
static int t_map_mixed(const void *a, size_t n, pp_buf_t *out) {
    (void)n;
    int i = *(const int *)a;
    if (i == 500)
        raise(SIGSEGV);
    if (i == 300)
        return pp_buf_fail(out, "item three hundred");
    int64_t v = (int64_t)i * 3;
    return pp_buf_append(out, &v, sizeof v);
}

static int t_sleep_ms(const void *a, size_t n, pp_buf_t *out) {
    (void)n;
    ppt_sleep_ms(*(const int *)a);
    return pp_buf_append(out, a, sizeof(int));
}

/* a result of arg[0] MiB of the byte arg[1] */
static int t_big(const void *a, size_t n, pp_buf_t *out) {
    (void)n;
    const int *p = a;
    size_t len = (size_t)p[0] << 20;
    unsigned char *d = pp_buf_reserve(out, len);
    if (!d)
        return pp_buf_fail(out, "no memory");
    memset(d, p[1], len);
    return 0;
}

/* sum of the argument's bytes */
static int t_sum(const void *a, size_t n, pp_buf_t *out) {
    uint64_t s = 0;
    for (size_t i = 0; i < n; i++)
        s += ((const unsigned char *)a)[i];
    return pp_buf_append(out, &s, sizeof s);
}

static char init_seen[64];
static const char init_word[] = "initialised";
static void init_fn(void *arg) { snprintf(init_seen, sizeof init_seen, "%s", (const char *)arg); }
static int t_init_seen(const void *a, size_t n, pp_buf_t *out) {
    (void)a;
    (void)n;
    return pp_buf_append(out, init_seen, strlen(init_seen) + 1);
}

static pp_pool_t *mpi_pool(int processes) {
    pp_options_t opt;
    pp_options_init(&opt);
    opt.processes = processes;
    pp_pool_t *p = NULL;
    assert_rc(pp_pool_create(&p, &opt), 0);
    return p;
}

static void finish(pp_pool_t *p) {
    assert_rc(pp_pool_close(p), 0);
    assert_rc(pp_pool_join(p), 0);
    pp_pool_destroy(p);
}

/* ---------------------------------------------------------------- */
/* tests                                                             */
/* ---------------------------------------------------------------- */

/* Tasks run on the agents (ranks 1 and 2), in processes other than rank 0. */
static void test_runs_on_agents(void **state) {
    (void)state;
    assert_int_equal(my_rank(), 0);
    pp_pool_t *p = mpi_pool(0);
    int size = pp_pool_size(p);
    assert_true(size >= 2); /* each agent starts pp_cpu_count() >= 1 workers */
    enum { N = 64 };
    pp_future_t *f[N];
    for (int i = 0; i < N; i++)
        assert_rc(pp_apply_async(p, t_where, NULL, 0, &f[i]), 0);
    int per_rank[3] = {0};
    for (int i = 0; i < N; i++) {
        const void *d;
        size_t len;
        assert_rc(pp_future_get(f[i], 30, &d, &len), 0);
        assert_int_equal(len, sizeof(where_t));
        where_t w;
        memcpy(&w, d, sizeof w);
        assert_true(w.rank == 1 || w.rank == 2);
        assert_int_not_equal(w.pid, (int)getpid());
        per_rank[w.rank]++;
        pp_future_free(f[i]);
    }
    assert_int_equal(per_rank[0], 0);
    assert_int_equal(per_rank[1] + per_rank[2], N);
    finish(p);
}

/* opt.processes spreads over the agents; pp_pool_size counts them all. */
static void test_size(void **state) {
    (void)state;
    for (int n = 1; n <= 5; n += 2) {
        pp_pool_t *p = mpi_pool(n);
        assert_int_equal(pp_pool_size(p), n);
        void *r;
        size_t len;
        int64_t x = 12;
        assert_rc(pp_apply(p, t_square, &x, sizeof x, &r, &len), 0);
        assert_int_equal(*(int64_t *)r, 144);
        free(r);
        finish(p);
    }
}

/* Results of every size come back intact, args of every size go out. */
static void test_apply_results(void **state) {
    (void)state;
    pp_pool_t *p = mpi_pool(0);
    enum { N = 5000 };
    pp_future_t **f = calloc(N, sizeof *f);
    for (int64_t i = 0; i < N; i++)
        assert_rc(pp_apply_async(p, t_square, &i, sizeof i, &f[i]), 0);
    for (int64_t i = 0; i < N; i++) {
        const void *d;
        size_t len;
        assert_rc(pp_future_get(f[i], 30, &d, &len), 0);
        assert_int_equal(len, 8);
        assert_int_equal(*(const int64_t *)d, i * i);
        pp_future_free(f[i]);
    }
    free(f);
    /* a 3 MiB result and a 5 MiB argument */
    int big[2] = {3, 0xab};
    void *r;
    size_t len;
    assert_rc(pp_apply(p, t_big, big, sizeof big, &r, &len), 0);
    assert_int_equal(len, (size_t)3 << 20);
    assert_int_equal(((unsigned char *)r)[0], 0xab);
    assert_int_equal(((unsigned char *)r)[len - 1], 0xab);
    free(r);
    /* many large results at once (results are batched per agent) */
    enum { NB = 24 };
    pp_future_t *fb[NB];
    for (int i = 0; i < NB; i++) {
        int spec[2] = {8, i};
        assert_rc(pp_apply_async(p, t_big, spec, sizeof spec, &fb[i]), 0);
    }
    for (int i = 0; i < NB; i++) {
        const void *d;
        assert_rc(pp_future_get(fb[i], 60, &d, &len), 0);
        assert_int_equal(len, (size_t)8 << 20);
        assert_int_equal(((const unsigned char *)d)[len / 2], i);
        pp_future_free(fb[i]);
    }
    size_t an = (size_t)5 << 20;
    unsigned char *arg = malloc(an);
    memset(arg, 1, an);
    assert_rc(pp_apply(p, t_sum, arg, an, &r, &len), 0);
    assert_int_equal(*(uint64_t *)r, an);
    free(r);
    free(arg);
    finish(p);
}

/* A task's failure comes back with its message and status. */
static void test_task_failure(void **state) {
    (void)state;
    pp_pool_t *p = mpi_pool(0);
    int v = 42;
    pp_future_t *f;
    assert_rc(pp_apply_async(p, t_fail, &v, sizeof v, &f), 0);
    assert_rc(pp_future_get(f, 30, NULL, NULL), PP_ETASK);
    assert_non_null(strstr(pp_future_error(f), "refused 42 on rank "));
    assert_null(strstr(pp_future_error(f), "rank 0"));
    assert_int_equal(pp_future_task_status(f), 1);
    pp_future_free(f);
    finish(p);
}

/* A crashing task kills a local worker on its agent, not the rank: that
 * task fails PP_EWORKER naming the signal, everything else succeeds, and
 * the pool goes on. */
static void test_crash(void **state) {
    (void)state;
    pp_pool_t *p = mpi_pool(0);
    enum { N = 40 };
    pp_future_t *f[N];
    for (int64_t i = 0; i < N; i++) {
        if (i % 8 == 3)
            assert_rc(pp_apply_async(p, t_crash, NULL, 0, &f[i]), 0);
        else
            assert_rc(pp_apply_async(p, t_square, &i, sizeof i, &f[i]), 0);
    }
    for (int64_t i = 0; i < N; i++) {
        const void *d;
        size_t len;
        int rc = pp_future_get(f[i], 30, &d, &len);
        if (i % 8 == 3) {
            assert_rc(rc, PP_EWORKER);
            assert_non_null(strstr(pp_future_error(f[i]), "SIGSEGV"));
        } else {
            assert_rc(rc, 0);
            assert_int_equal(*(const int64_t *)d, i * i);
        }
        pp_future_free(f[i]);
    }
    void *r;
    size_t len;
    int64_t x = 9;
    assert_rc(pp_apply(p, t_square, &x, sizeof x, &r, &len), 0);
    assert_int_equal(*(int64_t *)r, 81);
    free(r);
    finish(p);
}

/* task_timeout is enforced on the agents: the hanging task fails
 * PP_ETASKTIMEOUT in about the timeout, the others are unaffected. */
static void test_timeout(void **state) {
    (void)state;
    pp_options_t opt;
    pp_options_init(&opt);
    opt.task_timeout = 0.3;
    pp_pool_t *p = NULL;
    assert_rc(pp_pool_create(&p, &opt), 0);
    int longms = 20000, shortms = 10;
    pp_future_t *slow, *fast[8];
    double t0 = ppt_now();
    assert_rc(pp_apply_async(p, t_sleep_ms, &longms, sizeof longms, &slow), 0);
    for (int i = 0; i < 8; i++)
        assert_rc(pp_apply_async(p, t_sleep_ms, &shortms, sizeof shortms, &fast[i]), 0);
    assert_rc(pp_future_get(slow, 30, NULL, NULL), PP_ETASKTIMEOUT);
    double took = ppt_now() - t0;
    assert_true(took >= 0.3 && took < 5);
    assert_non_null(strstr(pp_future_error(slow), "task_timeout"));
    for (int i = 0; i < 8; i++) {
        assert_rc(pp_future_get(fast[i], 30, NULL, NULL), 0);
        pp_future_free(fast[i]);
    }
    pp_future_free(slow);
    finish(p);
}

/* pp_map with automatic chunks: every result right, and both agents did
 * some of the work (chunks are spread over the ranks). */
static void test_map_auto(void **state) {
    (void)state;
    pp_pool_t *p = mpi_pool(0);
    int *in = malloc(NITEMS * sizeof *in);
    int64_t *out = calloc(NITEMS, sizeof *out);
    for (int i = 0; i < NITEMS; i++)
        in[i] = i;
    assert_rc(pp_map(p, t_tag, in, sizeof *in, NITEMS, out, sizeof *out, PP_CHUNK_AUTO), 0);
    size_t per_rank[3] = {0};
    for (int i = 0; i < NITEMS; i++) {
        int64_t rank = out[i] / 1000000000, v = out[i] % 1000000000;
        assert_int_equal(v, i);
        assert_true(rank == 1 || rank == 2);
        per_rank[rank]++;
    }
    assert_true(per_rank[1] > 0 && per_rank[2] > 0);
    /* Python's chunk rule and chunks of one too */
    assert_rc(pp_map(p, t_tag, in, sizeof *in, 5000, out, sizeof *out, 0), 0);
    assert_rc(pp_map(p, t_tag, in, sizeof *in, 500, out, sizeof *out, 1), 0);
    for (int i = 0; i < 500; i++)
        assert_int_equal(out[i] % 1000000000, i);
    free(in);
    free(out);
    finish(p);
}

/* Failures inside map chunks: the crashing item fails PP_EWORKER, the
 * refusing one PP_ETASK with its message, every other item is right. */
static void test_map_failures(void **state) {
    (void)state;
    pp_pool_t *p = mpi_pool(0);
    enum { N = 2000 };
    int in[N];
    for (int i = 0; i < N; i++)
        in[i] = i;
    pp_iter_t *it;
    assert_rc(pp_imap_unordered(p, t_map_mixed, in, sizeof *in, N, 50, &it), 0);
    int seen = 0, crashed = 0, refused = 0;
    for (;;) {
        size_t idx, len;
        const void *d;
        int rc = pp_iter_next(it, 30, &idx, &d, &len);
        if (rc == 0)
            break;
        seen++;
        if (idx == 500) {
            assert_rc(rc, PP_EWORKER);
            crashed++;
        } else if (idx == 300) {
            assert_rc(rc, PP_ETASK);
            assert_non_null(strstr(pp_iter_error(it), "item three hundred"));
            refused++;
        } else {
            assert_rc(rc, 1);
            assert_int_equal(*(const int64_t *)d, (int64_t)idx * 3);
        }
    }
    assert_int_equal(seen, N);
    assert_int_equal(crashed, 1);
    assert_int_equal(refused, 1);
    pp_iter_free(it);
    /* pp_map reports the lowest failing item */
    int64_t *out = calloc(N, sizeof *out);
    pp_future_t *f;
    assert_rc(pp_map_async(p, t_map_mixed, in, sizeof *in, N, out, sizeof *out, 64, &f), 0);
    assert_rc(pp_future_get(f, 30, NULL, NULL), PP_ETASK);
    assert_non_null(strstr(pp_future_error(f), "item 300"));
    assert_int_equal(out[1999], 1999 * 3);
    pp_future_free(f);
    free(out);
    finish(p);
}

/* imap (ordered) with results of varying size */
static void test_imap_ordered(void **state) {
    (void)state;
    pp_pool_t *p = mpi_pool(0);
    enum { N = 3000 };
    int64_t in[N];
    for (int i = 0; i < N; i++)
        in[i] = i;
    pp_iter_t *it;
    assert_rc(pp_imap(p, t_square, in, sizeof *in, N, PP_CHUNK_AUTO, &it), 0);
    for (int i = 0; i < N; i++) {
        size_t idx, len;
        const void *d;
        assert_rc(pp_iter_next(it, 30, &idx, &d, &len), 1);
        assert_int_equal(idx, i);
        assert_int_equal(*(const int64_t *)d, (int64_t)i * i);
    }
    assert_rc(pp_iter_next(it, 30, NULL, NULL, NULL), 0);
    pp_iter_free(it);
    finish(p);
}

static _Atomic int cb_count;
static void count_cb(pp_future_t *f, void *ud) {
    (void)ud;
    if (pp_future_successful(f) == 1)
        atomic_fetch_add(&cb_count, 1);
}

/* Done-callbacks run once per future, also for remote tasks. */
static void test_callbacks(void **state) {
    (void)state;
    pp_pool_t *p = mpi_pool(0);
    enum { N = 1000 };
    pp_future_t *f[N];
    atomic_store(&cb_count, 0);
    for (int64_t i = 0; i < N; i++) {
        assert_rc(pp_apply_async(p, t_square, &i, sizeof i, &f[i]), 0);
        assert_rc(pp_future_on_done(f[i], count_cb, NULL), 0);
    }
    finish(p); /* join waits for every callback */
    assert_int_equal(atomic_load(&cb_count), N);
    for (int i = 0; i < N; i++)
        pp_future_free(f[i]);
}

/* max_tasks_per_child applies on the agents: each task a fresh worker. */
static void test_max_tasks_per_child(void **state) {
    (void)state;
    pp_options_t opt;
    pp_options_init(&opt);
    opt.processes = 2;
    opt.max_tasks_per_child = 1;
    pp_pool_t *p = NULL;
    assert_rc(pp_pool_create(&p, &opt), 0);
    enum { N = 12 };
    int pids[N];
    for (int i = 0; i < N; i++) {
        void *r;
        size_t len;
        assert_rc(pp_apply(p, t_where, NULL, 0, &r, &len), 0);
        pids[i] = ((where_t *)r)->pid;
        free(r);
    }
    for (int i = 0; i < N; i++)
        for (int j = i + 1; j < N; j++)
            assert_int_not_equal(pids[i], pids[j]);
    finish(p);
}

/* The initializer and a static initarg cross to the agents' workers. */
static void test_initializer(void **state) {
    (void)state;
    pp_options_t opt;
    pp_options_init(&opt);
    opt.initializer = init_fn;
    opt.initarg = (void *)init_word;
    pp_pool_t *p = NULL;
    assert_rc(pp_pool_create(&p, &opt), 0);
    void *r;
    size_t len;
    assert_rc(pp_apply(p, t_init_seen, NULL, 0, &r, &len), 0);
    assert_string_equal((char *)r, "initialised");
    free(r);
    finish(p);
    /* a heap initarg cannot be named on another machine */
    char *heap = strdup("x");
    opt.initarg = heap;
    assert_rc(pp_pool_create(&p, &opt), -EINVAL);
    assert_null(p);
    free(heap);
}

/* Shared memory does not cross machines: a clear ENOTSUP. */
static void test_shm_unsupported(void **state) {
    (void)state;
    pp_pool_t *p = mpi_pool(0);
    errno = 0;
    assert_null(pp_shm_alloc(p, 4096));
    assert_int_equal(errno, ENOTSUP);
    finish(p);
}

/* terminate: running and queued remote tasks fail PP_ECANCELED at once. */
static void test_terminate(void **state) {
    (void)state;
    pp_pool_t *p = mpi_pool(0);
    int ms = 10000;
    enum { N = 20 };
    pp_future_t *f[N];
    for (int i = 0; i < N; i++)
        assert_rc(pp_apply_async(p, t_sleep_ms, &ms, sizeof ms, &f[i]), 0);
    ppt_sleep_ms(200);
    double t0 = ppt_now();
    assert_rc(pp_pool_terminate(p), 0);
    assert_true(ppt_now() - t0 < 2);
    for (int i = 0; i < N; i++) {
        assert_rc(pp_future_get(f[i], 0, NULL, NULL), PP_ECANCELED);
        pp_future_free(f[i]);
    }
    pp_pool_destroy(p);
    /* the agents are still fine */
    p = mpi_pool(0);
    int64_t x = 5;
    void *r;
    size_t len;
    assert_rc(pp_apply(p, t_square, &x, sizeof x, &r, &len), 0);
    free(r);
    finish(p);
}

/* A local pool beside the MPI ones (opt.backend = LOCAL): rank 0's own
 * children. */
static void test_local_beside(void **state) {
    (void)state;
    pp_options_t opt;
    pp_options_init(&opt);
    opt.backend = PP_BACKEND_LOCAL;
    opt.processes = 2;
    pp_pool_t *local = NULL;
    assert_rc(pp_pool_create(&local, &opt), 0);
    pp_pool_t *remote = mpi_pool(0);
    void *r;
    size_t len;
    assert_rc(pp_apply(local, t_where, NULL, 0, &r, &len), 0);
    assert_int_equal(((where_t *)r)->rank, 0);
    free(r);
    assert_rc(pp_apply(remote, t_where, NULL, 0, &r, &len), 0);
    assert_int_not_equal(((where_t *)r)->rank, 0);
    free(r);
    finish(remote);
    finish(local);
    opt.backend = (pp_backend_t)7;
    assert_rc(pp_pool_create(&local, &opt), -EINVAL);
}

/* item: a string; result: its length and the rank, as text */
static int t_strlen(const void *a, size_t n, pp_buf_t *out) {
    (void)a;
    char b[64];
    int k = snprintf(b, sizeof b, "%zu@%d", n, my_rank());
    return pp_buf_append(out, b, (size_t)k + 1);
}

static int feed_words(void *ud, const void **item, size_t *len) {
    static char buf[4096];
    int *next = ud;
    if (*next >= 5000)
        return 0;
    size_t n = (size_t)(*next % 3000) + 1; /* items of 1..3000 bytes */
    memset(buf, 'a' + *next % 26, n);
    *item = buf;
    *len = n;
    (*next)++;
    return 1;
}

/* Streaming input of variable-size items crosses to the agents in chunks. */
static void test_imap_feed(void **state) {
    (void)state;
    pp_pool_t *p = mpi_pool(0);
    int next = 0;
    pp_iter_t *it;
    assert_rc(pp_imap_feed(p, t_strlen, feed_words, &next, 0, PP_ORDERED, &it), 0);
    for (int i = 0; i < 5000; i++) {
        size_t idx, len;
        const void *d;
        assert_rc(pp_iter_next(it, 30, &idx, &d, &len), 1);
        assert_int_equal(idx, i);
        size_t n;
        int rank;
        assert_int_equal(sscanf(d, "%zu@%d", &n, &rank), 2);
        assert_int_equal(n, (size_t)(i % 3000) + 1);
        assert_true(rank == 1 || rank == 2);
    }
    assert_rc(pp_iter_next(it, 30, NULL, NULL, NULL), 0);
    pp_iter_free(it);
    finish(p);
}

/* A task that makes a pool of its own gets a local one (on its agent). */
static int t_nested(const void *a, size_t n, pp_buf_t *out) {
    (void)a;
    (void)n;
    pp_options_t opt;
    pp_options_init(&opt);
    opt.processes = 1;
    pp_pool_t *p = NULL;
    int rc = pp_pool_create(&p, &opt);
    if (rc)
        return pp_buf_fail(out, "nested pool: %s", pp_err_name(rc));
    void *r;
    size_t len;
    rc = pp_apply(p, t_where, NULL, 0, &r, &len);
    pp_pool_destroy(p);
    if (rc)
        return pp_buf_fail(out, "nested apply: %s", pp_err_name(rc));
    rc = pp_buf_append(out, r, len);
    free(r);
    return rc;
}

static void test_nested_pool_is_local(void **state) {
    (void)state;
#if PPT_TSAN
    skip(); /* TSan cannot follow a forked worker that starts threads */
#endif
    pp_pool_t *p = mpi_pool(0);
    pp_future_t *f;
    assert_rc(pp_apply_async(p, t_nested, NULL, 0, &f), 0);
    const void *d;
    size_t len;
    int rc = pp_future_get(f, 30, &d, &len);
    if (rc)
        fail_msg("%s: %s", pp_err_name(rc), pp_future_error(f));
    where_t w;
    memcpy(&w, d, sizeof w);
    assert_true(w.rank == 1 || w.rank == 2); /* its workers are on the agent too */
    pp_future_free(f);
    finish(p);
}

/* items: ints; rank 2 is five times slower than rank 1 */
static int t_uneven(const void *a, size_t n, pp_buf_t *out) {
    (void)a;
    (void)n;
    int rank = my_rank();
    ppt_sleep_ms(rank == 2 ? 5 : 1);
    return pp_buf_append(out, &rank, sizeof rank);
}

/* Work spreads by speed: the agent that returns its chunks sooner is sent
 * more of them (automatic chunks and chunks of one alike). */
static void test_faster_agent_gets_more(void **state) {
    (void)state;
    pp_pool_t *p = mpi_pool(2); /* one worker per agent */
    enum { N = 600 };
    int in[N], out[N];
    for (int i = 0; i < N; i++)
        in[i] = i;
    size_t chunks[] = {1, PP_CHUNK_AUTO};
    for (int c = 0; c < 2; c++) {
        assert_rc(pp_map(p, t_uneven, in, sizeof *in, N, out, sizeof *out, chunks[c]), 0);
        int per_rank[3] = {0};
        for (int i = 0; i < N; i++) {
            assert_true(out[i] == 1 || out[i] == 2);
            per_rank[out[i]]++;
        }
        print_message("    chunksize %s: rank 1 (1 ms/item) ran %d items, rank 2 (5 ms/item) %d\n",
                      c ? "AUTO" : "1", per_rank[1], per_rank[2]);
        assert_true(per_rank[1] > 2 * per_rank[2]);
        assert_true(per_rank[2] > 0);
    }
    finish(p);
}

/* Started without mpirun (PROCPOOL_BACKEND=mpi still set): there are no
 * agents, which MPI pools report clearly; local pools still work. */
static void test_no_agents(void **state) {
    (void)state;
    pp_pool_t *p = (pp_pool_t *)1;
    assert_rc(pp_pool_create(&p, NULL), PP_ENOAGENTS);
    assert_null(p);
    assert_non_null(strstr(pp_strerror(PP_ENOAGENTS), "mpirun"));
    assert_string_equal(pp_err_name(PP_ENOAGENTS), "PP_ENOAGENTS");
    pp_options_t opt;
    pp_options_init(&opt);
    opt.backend = PP_BACKEND_LOCAL;
    opt.processes = 1;
    assert_rc(pp_pool_create(&p, &opt), 0);
    void *r;
    size_t len;
    assert_rc(pp_apply(p, t_where, NULL, 0, &r, &len), 0);
    free(r);
    finish(p);
}

/* A trace of an MPI pool: one lane per remote worker, grouped by rank
 * (tid = rank x 65536 + worker), each task once, on rank 0's clock. */
static void test_trace_lanes(void **state) {
    (void)state;
    char path[64];
    snprintf(path, sizeof path, "/tmp/pp_mpi_trace_%d.json", (int)getpid());
    pp_options_t opt;
    pp_options_init(&opt);
    opt.trace_file = path;
    double t0 = ppt_now();
    pp_pool_t *p = NULL;
    assert_rc(pp_pool_create(&p, &opt), 0);
    enum { N = 40 };
    pp_future_t *f[N];
    for (int i = 0; i < N; i++)
        assert_rc(pp_apply_async(p, t_where, NULL, 0, &f[i]), 0);
    for (int i = 0; i < N; i++) {
        assert_rc(pp_future_wait(f[i], 30), 0);
        pp_future_free(f[i]);
    }
    finish(p);
    double elapsed_us = (ppt_now() - t0) * 1e6;
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    char line[4096];
    int spans = 0, named = 0, ended = 0;
    while (fgets(line, sizeof line, fp)) {
        if (strcmp(line, "]\n") == 0)
            ended = 1;
        if (strstr(line, "\"name\":\"rank 1 worker 0\"") ||
            strstr(line, "\"name\":\"rank 2 worker 0\""))
            named++;
        if (!strstr(line, "\"ph\":\"X\""))
            continue;
        spans++;
        const char *tid = strstr(line, "\"tid\":"), *ts = strstr(line, "\"ts\":");
        assert_non_null(tid);
        assert_non_null(ts);
        long lane = strtol(tid + 6, NULL, 10);
        assert_true(lane / 65536 == 1 || lane / 65536 == 2);
        double at = strtod(ts + 5, NULL);
        assert_true(at >= 0 && at <= elapsed_us);
        assert_non_null(strstr(line, "\"outcome\":\"ok\""));
    }
    fclose(fp);
    unlink(path);
    assert_int_equal(spans, N);
    assert_int_equal(named, 2);
    assert_true(ended);
}

int main(void) {
    ppt_hang_guard(240);
    if (my_rank() < 0) {
        const struct CMUnitTest alone[] = {cmocka_unit_test(test_no_agents)};
        return cmocka_run_group_tests(alone, NULL, NULL);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_runs_on_agents),
        cmocka_unit_test(test_size),
        cmocka_unit_test(test_apply_results),
        cmocka_unit_test(test_task_failure),
        cmocka_unit_test(test_crash),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_map_auto),
        cmocka_unit_test(test_faster_agent_gets_more),
        cmocka_unit_test(test_map_failures),
        cmocka_unit_test(test_imap_ordered),
        cmocka_unit_test(test_imap_feed),
        cmocka_unit_test(test_callbacks),
        cmocka_unit_test(test_max_tasks_per_child),
        cmocka_unit_test(test_initializer),
        cmocka_unit_test(test_shm_unsupported),
        cmocka_unit_test(test_terminate),
        cmocka_unit_test(test_nested_pool_is_local),
        cmocka_unit_test(test_local_beside),
        cmocka_unit_test(test_trace_lanes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
