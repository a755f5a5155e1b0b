/* test_limits.c - resource limits: a pool under RLIMIT_AS, RLIMIT_FSIZE
 * and RLIMIT_NOFILE works, or its calls fail with documented errors; a
 * limit never kills the calling process or a worker.
 *
 * Every limit is applied with setrlimit in a forked child, never in the
 * test process itself. The child runs the scenario, checks each outcome
 * with CHECK (a message on stderr and a non-zero exit: cmocka's asserts
 * belong to the parent), destroys its pools, checks that its fd count is
 * back where it started, and exits 0. The parent asserts exactly that: exit
 * status 0, no death by a signal (SIGXFSZ, or SIGALRM from the child's own
 * hang guard). Nothing in the child blocks or ignores SIGXFSZ. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "procpool.h"
#include "helpers.h"

#define CHILD_LIMIT_S 40 /* the child's own hang guard */

/* ---- the child's checks ----------------------------------------------------- */

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "test_limits child, line %d: ", __LINE__);                             \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            _exit(1);                                                                              \
        }                                                                                          \
    } while (0)

#define CHECK_RC(actual, expected)                                                                 \
    do {                                                                                           \
        int a_ = (int)(actual), e_ = (int)(expected);                                              \
        CHECK(a_ == e_, "%s returned %d (%s), expected %d (%s)", #actual, a_, pp_err_name(a_), e_, \
              pp_err_name(e_));                                                                    \
    } while (0)

/* Run body in a forked child and fail the test unless it exits 0. */
static void run_in_child(void (*body)(void)) {
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* the defaults: a library that raises SIGXFSZ kills this process */
        signal(SIGXFSZ, SIG_DFL);
        signal(SIGALRM, SIG_DFL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        alarm(CHILD_LIMIT_S);
        body();
        fflush(stdout);
        fflush(stderr);
        _exit(0);
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    if (WIFSIGNALED(st))
        fail_msg("the child was killed by signal %d (%s)%s", WTERMSIG(st), strsignal(WTERMSIG(st)),
                 WTERMSIG(st) == SIGALRM ? ": it hung" : "");
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail_msg("the child failed (exit status %d; its message is above)", WEXITSTATUS(st));
}

static void set_limit(int resource, rlim_t cur) {
    struct rlimit rl;
    CHECK(getrlimit(resource, &rl) == 0, "getrlimit: %s", strerror(errno));
    rl.rlim_cur = cur;
    CHECK(setrlimit(resource, &rl) == 0, "setrlimit(%d, %llu): %s", resource,
          (unsigned long long)cur, strerror(errno));
}

static pp_pool_t *child_pool(int processes, pp_start_t method, size_t shm_size) {
    pp_options_t o;
    pp_options_init(&o);
    o.processes = processes;
    o.start_method = method;
    o.shm_size = shm_size;
    pp_pool_t *pool = NULL;
    fflush(stdout);
    fflush(stderr);
    int rc = pp_pool_create(&pool, &o);
    CHECK(rc == 0 && pool,
          "pp_pool_create(processes %d, start method %d, shm_size %zu) returned %d (%s)", processes,
          (int)method, shm_size, rc, pp_err_name(rc));
    return pool;
}

static void child_finish(pp_pool_t *pool) {
    CHECK_RC(pp_pool_close(pool), 0);
    CHECK_RC(pp_pool_join(pool), 0);
    pp_pool_destroy(pool);
}

/* ---- tasks ---------------------------------------------------------------- */

/* The argument's length and byte sum, as two longs. */
static int task_sum(const void *arg, size_t len, pp_buf_t *out) {
    const unsigned char *p = arg;
    long r[2] = {(long)len, 0};
    for (size_t i = 0; i < len; i++)
        r[1] += p[i];
    return pp_buf_append(out, r, sizeof r);
}

static int task_pid(const void *arg, size_t len, pp_buf_t *out) {
    (void)arg;
    (void)len;
    long pid = (long)getpid();
    return pp_buf_append(out, &pid, sizeof pid);
}

/* A result of *(size_t *)arg bytes; ignores a failure to grow it, as
 * careless tasks do (the library must not hand back a short result). */
static int task_result_careless(const void *arg, size_t len, pp_buf_t *out) {
    size_t n;
    if (len != sizeof n)
        return pp_buf_fail(out, "bad length %zu", len);
    memcpy(&n, arg, sizeof n);
    unsigned char *p = pp_buf_reserve(out, n);
    if (p)
        memset(p, 0x5a, n);
    return 0;
}

/* The same, but checking, as the documentation asks. */
static int task_result_careful(const void *arg, size_t len, pp_buf_t *out) {
    size_t n;
    if (len != sizeof n)
        return pp_buf_fail(out, "bad length %zu", len);
    memcpy(&n, arg, sizeof n);
    unsigned char *p = pp_buf_reserve(out, n);
    if (!p)
        return pp_buf_fail(out, "pp_buf_reserve(%zu): %s", n, strerror(errno));
    memset(p, 0x5a, n);
    return 0;
}

/* A map item's result as large as the item says (a size_t). */
static int task_item_result(const void *arg, size_t len, pp_buf_t *out) {
    return task_result_careless(arg, len, out);
}

/* Apply task_sum to len bytes of value c; checks the answer. */
static int apply_sum(pp_pool_t *pool, size_t len, unsigned char c) {
    unsigned char *a = malloc(len ? len : 1);
    CHECK(a, "malloc(%zu)", len);
    memset(a, c, len);
    void *res = NULL;
    size_t n = 0;
    int rc = pp_apply(pool, task_sum, a, len, &res, &n);
    free(a);
    if (rc == 0) {
        long r[2];
        CHECK(n == sizeof r, "task_sum gave %zu bytes", n);
        memcpy(r, res, sizeof r);
        CHECK(r[0] == (long)len && r[1] == (long)len * c, "task_sum of %zu bytes of %d: %ld %ld",
              len, c, r[0], r[1]);
    }
    free(res);
    return rc;
}

static size_t vm_bytes(void) {
    FILE *fp = fopen("/proc/self/statm", "re");
    CHECK(fp, "/proc/self/statm: %s", strerror(errno));
    unsigned long pages = 0;
    CHECK(fscanf(fp, "%lu", &pages) == 1, "/proc/self/statm unreadable");
    fclose(fp);
    return (size_t)pages * (size_t)sysconf(_SC_PAGESIZE);
}

/* ---- item 8: RLIMIT_AS below twice the RAM ---------------------------------- */

static void body_as(void) {
    int fds0 = ppt_fd_count();
    /* 1 GiB of address space to spare: far below the default range of twice
     * the RAM on any machine these tests run on */
    set_limit(RLIMIT_AS, (rlim_t)(vm_bytes() + ((size_t)1 << 30)));
    pp_pool_t *pool = child_pool(2, PP_START_FORK, 0); /* the default range */
    CHECK_RC(apply_sum(pool, 100, 3), 0);
    CHECK_RC(apply_sum(pool, 200000, 5), 0); /* an argument by memfd */
    /* the range is there and usable, at the same address in the workers */
    unsigned char *sh = pp_shm_alloc(pool, (size_t)1 << 20);
    CHECK(sh, "pp_shm_alloc(1 MiB): %s", strerror(errno));
    memset(sh, 7, (size_t)1 << 20);
    void *res = NULL;
    size_t n = 0;
    CHECK_RC(pp_apply(pool, task_sum, sh, (size_t)1 << 20, &res, &n), 0);
    long r[2];
    CHECK(n == sizeof r, "%zu bytes", n);
    memcpy(r, res, sizeof r);
    free(res);
    CHECK(r[1] == 7L << 20, "sum %ld", r[1]);
    CHECK_RC(pp_shm_free(pool, sh), 0);
    /* ... and it fits the limit: 2 GiB cannot be in it */
    errno = 0;
    CHECK(pp_shm_alloc(pool, (size_t)2 << 30) == NULL && errno == ENOMEM,
          "a 2 GiB block in a range under a 1 GiB limit");
    long items[1000], out[1000];
    for (int i = 0; i < 1000; i++)
        items[i] = i;
    CHECK_RC(pp_map(pool, ppt_task_double, items, sizeof(long), 1000, out, sizeof(long), 0), 0);
    for (int i = 0; i < 1000; i++)
        CHECK(out[i] == 2L * i, "out[%d] = %ld", i, out[i]);
    child_finish(pool);
    /* an explicit range the limit cannot hold is still refused, cleanly */
    pp_options_t o;
    pp_options_init(&o);
    o.processes = 1;
    o.shm_size = (size_t)4 << 30;
    pool = (pp_pool_t *)&o;
    CHECK_RC(pp_pool_create(&pool, &o), -ENOMEM);
    CHECK(pool == NULL, "pool not NULL after a failed create");
    CHECK(ppt_fd_count() == fds0, "%d fds before, %d after", fds0, ppt_fd_count());
}

static void test_as_default_range(void **state) {
    (void)state;
#ifdef PPT_SANITIZER
    (void)body_as;
    skip(); /* the sanitizers reserve terabytes of shadow address space */
#else
    run_in_child(body_as);
#endif
}

/* ---- item 7: RLIMIT_FSIZE (memfds are files) ---------------------------------- */

#define FSIZE_LIMIT ((size_t)1 << 20) /* ulimit -f 1024 */

static long worker_pid(pp_pool_t *pool) {
    void *res = NULL;
    size_t n = 0;
    CHECK_RC(pp_apply(pool, task_pid, NULL, 0, &res, &n), 0);
    long pid;
    CHECK(n == sizeof pid, "%zu bytes", n);
    memcpy(&pid, res, sizeof pid);
    free(res);
    return pid;
}

/* A task whose result needs n bytes; returns its future (done). */
static pp_future_t *result_of(pp_pool_t *pool, pp_task_fn fn, size_t n) {
    pp_future_t *f = NULL;
    CHECK_RC(pp_apply_async(pool, fn, &n, sizeof n, &f), 0);
    CHECK_RC(pp_future_wait(f, 30), 0);
    return f;
}

static void fsize_pool(pp_start_t method) {
    pp_pool_t *pool = child_pool(1, method, 0); /* the default range, clamped to the limit */
    long pid = worker_pid(pool);
    CHECK_RC(apply_sum(pool, 100, 1), 0);
    CHECK_RC(apply_sum(pool, 512 * 1024, 2), 0); /* a memfd argument under the limit */
    /* an argument that no memfd may hold: an error, not SIGXFSZ */
    CHECK_RC(apply_sum(pool, 4 * FSIZE_LIMIT, 3), -EFBIG);
    unsigned char *big = calloc(1, 4 * FSIZE_LIMIT);
    CHECK(big, "calloc");
    pp_future_t *f = (pp_future_t *)big;
    CHECK_RC(pp_apply_async(pool, task_sum, big, 4 * FSIZE_LIMIT, &f), -EFBIG);
    CHECK(f == NULL, "*future not NULL after an error");
    /* results: under the limit they arrive; over it the task fails, the
     * worker lives */
    f = result_of(pool, task_result_careful, 512 * 1024);
    const void *d = NULL;
    size_t n = 0;
    CHECK_RC(pp_future_get(f, 0, &d, &n), 0);
    CHECK(n == 512 * 1024 && ((const unsigned char *)d)[n - 1] == 0x5a, "a 512 KiB result: %zu", n);
    pp_future_free(f);
    f = result_of(pool, task_result_careful, 8 * FSIZE_LIMIT);
    CHECK_RC(pp_future_get(f, 0, &d, &n), PP_ETASK);
    CHECK(pp_future_error(f) && strstr(pp_future_error(f), strerror(EFBIG)),
          "careful task's message: %s", pp_future_error(f) ? pp_future_error(f) : "(none)");
    pp_future_free(f);
    f = result_of(pool, task_result_careless, 8 * FSIZE_LIMIT);
    CHECK_RC(pp_future_get(f, 0, &d, &n), PP_ETASK);
    CHECK_RC(pp_future_task_status(f), -EFBIG);
    CHECK(pp_future_error(f) && strstr(pp_future_error(f), "RLIMIT_FSIZE"),
          "careless task's message: %s", pp_future_error(f) ? pp_future_error(f) : "(none)");
    pp_future_free(f);
    CHECK(worker_pid(pool) == pid, "the worker was replaced: it died");
    /* maps: items no memfd can carry fail, the map ends */
    size_t *items = (size_t *)big;
    CHECK_RC(pp_map(pool, task_sum, big, 2 * FSIZE_LIMIT, 2, NULL, 0, 1), -EFBIG);
    pp_iter_t *it = NULL;
    CHECK_RC(pp_imap(pool, task_sum, big, 2 * FSIZE_LIMIT, 2, 1, &it), 0);
    size_t idx = 99;
    for (size_t i = 0; i < 2; i++) {
        CHECK_RC(pp_iter_next(it, 30, &idx, &d, &n), -EFBIG);
        CHECK(idx == i, "item %zu reported as %zu", i, idx);
    }
    CHECK_RC(pp_iter_next(it, 30, &idx, &d, &n), 0);
    pp_iter_free(it);
    /* ... and so do items whose results no memfd can carry */
    items[0] = 100;
    items[1] = 8 * FSIZE_LIMIT;
    items[2] = 200;
    CHECK_RC(pp_imap(pool, task_item_result, items, sizeof(size_t), 3, 3, &it), 0);
    for (size_t i = 0; i < 3; i++) {
        int rc = pp_iter_next(it, 30, &idx, &d, &n);
        CHECK(idx == i, "item %zu reported as %zu", i, idx);
        if (i == 1) {
            CHECK_RC(rc, PP_ETASK);
            CHECK(pp_iter_error(it) && strstr(pp_iter_error(it), "RLIMIT_FSIZE"),
                  "item 1's message: %s", pp_iter_error(it) ? pp_iter_error(it) : "(none)");
        } else {
            CHECK_RC(rc, 1);
            CHECK(n == items[i], "item %zu: %zu bytes", i, n);
        }
    }
    CHECK_RC(pp_iter_next(it, 30, &idx, &d, &n), 0);
    pp_iter_free(it);
    free(big);
    CHECK(worker_pid(pool) == pid, "the worker was replaced: it died");
    child_finish(pool);
}

static void body_fsize(void) {
    int fds0 = ppt_fd_count();
    set_limit(RLIMIT_FSIZE, (rlim_t)FSIZE_LIMIT);
    fsize_pool(PP_START_FORK);
    fsize_pool(PP_START_FORKSERVER);
    fsize_pool(PP_START_SPAWN);
    /* an explicit range over the limit: refused */
    pp_options_t o;
    pp_options_init(&o);
    o.processes = 1;
    o.shm_size = 64 * FSIZE_LIMIT;
    pp_pool_t *pool = (pp_pool_t *)&o;
    CHECK_RC(pp_pool_create(&pool, &o), -EFBIG);
    CHECK(pool == NULL, "pool not NULL after a failed create");
    /* a limit so low that a worker's rings cannot be made */
    set_limit(RLIMIT_FSIZE, 64 * 1024);
    o.shm_size = 0;
    pool = (pp_pool_t *)&o;
    CHECK_RC(pp_pool_create(&pool, &o), -EFBIG);
    CHECK(pool == NULL, "pool not NULL after a failed create");
    CHECK(ppt_fd_count() == fds0, "%d fds before, %d after", fds0, ppt_fd_count());
}

static void test_fsize(void **state) {
    (void)state;
    run_in_child(body_fsize);
}

/* ---- item 9: a backlog costs memory, not descriptors ------------------------ */

#define NOFILE_LIMIT 256
#define BACKLOG 600            /* large arguments queued: more than the fd limit */
#define ARG_BYTES (100 * 1024) /* over the 64 KiB that travel inline */

/* task_sum, but the first task (its argument starts with 1) takes a second,
 * so that the rest queue up behind it */
static int task_sum_slow_first(const void *arg, size_t len, pp_buf_t *out) {
    if (len && ((const unsigned char *)arg)[0] == 1)
        ppt_sleep_ms(1000);
    return task_sum(arg, len, out);
}

static void body_nofile(void) {
    int fds0 = ppt_fd_count();
    set_limit(RLIMIT_NOFILE, NOFILE_LIMIT);
    pp_pool_t *pool = child_pool(1, PP_START_FORK, 0);
    int fds_pool = ppt_fd_count();
    unsigned char *a = malloc(ARG_BYTES);
    pp_future_t **f = calloc(BACKLOG, sizeof *f);
    CHECK(a && f, "malloc");
    for (int i = 0; i < BACKLOG; i++) {
        memset(a, i == 0 ? 1 : 2 + i % 200, ARG_BYTES);
        int rc = pp_apply_async(pool, task_sum_slow_first, a, ARG_BYTES, &f[i]);
        CHECK(rc == 0, "submission %d of %d returned %d (%s)", i, BACKLOG, rc, pp_err_name(rc));
    }
    /* while the backlog waits, it holds no descriptor of the program's */
    int held = ppt_fd_count() - fds_pool;
    CHECK(held <= 40, "%d fds held while %d large arguments wait", held, BACKLOG);
    int extra[64];
    for (int i = 0; i < 64; i++) {
        extra[i] = open("/dev/null", O_RDONLY | O_CLOEXEC);
        CHECK(extra[i] >= 0, "open #%d with a backlog queued: %s", i, strerror(errno));
    }
    for (int i = 0; i < 64; i++)
        close(extra[i]);
    for (int i = 0; i < BACKLOG; i++) {
        const void *d = NULL;
        size_t n = 0;
        int rc = pp_future_get(f[i], 30, &d, &n);
        CHECK(rc == 0, "task %d: %d (%s) %s", i, rc, pp_err_name(rc),
              pp_future_error(f[i]) ? pp_future_error(f[i]) : "");
        long r[2];
        CHECK(n == sizeof r, "task %d: %zu bytes", i, n);
        memcpy(r, d, sizeof r);
        long c = i == 0 ? 1 : 2 + i % 200;
        CHECK(r[0] == ARG_BYTES && r[1] == c * ARG_BYTES, "task %d: %ld %ld", i, r[0], r[1]);
        pp_future_free(f[i]);
    }
    free(f);
    free(a);

    /* descriptors used up by the program itself: a large argument fails
     * with -EMFILE (documented), at submission or through its future; small
     * ones still run; nothing hangs */
    int *mine = malloc(sizeof(int) * NOFILE_LIMIT);
    int nmine = 0;
    CHECK(mine, "malloc");
    for (;;) {
        int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            CHECK(errno == EMFILE, "open: %s", strerror(errno));
            break;
        }
        mine[nmine++] = fd;
    }
    CHECK_RC(apply_sum(pool, 100, 4), 0);
    CHECK_RC(apply_sum(pool, ARG_BYTES, 4), -EMFILE);
    pp_future_t *g = NULL;
    unsigned char *b = calloc(1, ARG_BYTES);
    CHECK(b, "calloc");
    int rc = pp_apply_async(pool, task_sum, b, ARG_BYTES, &g);
    if (rc == 0) {
        CHECK_RC(pp_future_get(g, 30, NULL, NULL), -EMFILE);
        CHECK(pp_future_error(g) != NULL, "no message");
        pp_future_free(g);
    } else {
        CHECK_RC(rc, -EMFILE);
    }
    free(b);
    /* a result that comes back as a memfd (a chunk's results over 64 KiB)
     * cannot be received either: the item fails -EMFILE; the worker broke
     * no rule and is not killed */
    long pid = worker_pid(pool);
    size_t rsize = ARG_BYTES;
    pp_iter_t *it = NULL;
    CHECK_RC(pp_imap(pool, task_result_careful, &rsize, sizeof rsize, 1, 1, &it), 0);
    size_t idx = 99;
    CHECK_RC(pp_iter_next(it, 30, &idx, NULL, NULL), -EMFILE);
    CHECK(idx == 0 && pp_iter_error(it), "index %zu, message %s", idx,
          pp_iter_error(it) ? pp_iter_error(it) : "(none)");
    CHECK_RC(pp_iter_next(it, 30, &idx, NULL, NULL), 0);
    pp_iter_free(it);
    CHECK(worker_pid(pool) == pid, "the worker was killed for the parent's lack of descriptors");
    while (nmine)
        close(mine[--nmine]);
    free(mine);
    CHECK_RC(apply_sum(pool, ARG_BYTES, 5), 0);
    child_finish(pool);
    CHECK(ppt_fd_count() == fds0, "%d fds before, %d after", fds0, ppt_fd_count());
}

static void test_nofile_backlog(void **state) {
    (void)state;
    run_in_child(body_nofile);
}

/* ---- RLIMIT_NOFILE 64, the program holding descriptors of its own ---------- */

#define NOFILE_SMALL 64
#define NOFILE_HELD 20 /* the program's own descriptors, open all along */

/* Dies by the signal its argument names (a long). */
static int task_die(const void *arg, size_t len, pp_buf_t *out) {
    (void)out;
    long sig = SIGKILL;
    if (len == sizeof sig)
        memcpy(&sig, arg, sizeof sig);
    raise((int)sig);
    return 0;
}

/* Dies of SIGKILL a moment (300 ms) after it starts. */
static int task_die_later(const void *arg, size_t len, pp_buf_t *out) {
    (void)arg, (void)len, (void)out;
    ppt_sleep_ms(300);
    raise(SIGKILL);
    return 0;
}

/* Children of this process still there (zombies included). */
static int children_left(void) {
    pid_t kids[64];
    return ppt_children_of(getpid(), kids, 64);
}

/* v doubled by a task of pool, checked; what: the case, for the message. */
static void expect_double(pp_pool_t *pool, long v, const char *what) {
    long r = 0;
    void *res = NULL;
    size_t len = 0;
    int rc = pp_apply(pool, ppt_task_double, &v, sizeof v, &res, &len);
    CHECK(rc == 0 && len == sizeof r, "%s: %d (%s)", what, rc, pp_err_name(rc));
    if (rc == 0)
        memcpy(&r, res, sizeof r);
    CHECK(r == 2 * v, "%s: %ld, expected %ld", what, r, 2 * v);
    free(res);
}

/* Destroys pool and checks that it left no fd (of fds0 before it) and no
 * child. */
static void destroy_leaving_nothing(pp_pool_t *pool, int fds0) {
    pp_pool_destroy(pool);
    CHECK(ppt_fd_count() == fds0, "fds: %d before, %d after", fds0, ppt_fd_count());
    CHECK(children_left() == 0, "%d children left", children_left());
}

/* A pool of `processes` workers (0: the default) under RLIMIT_NOFILE 64:
 * create fails -EMFILE, leaving nothing behind, or the pool works --
 * apply, map, imap with PP_CHUNK_AUTO, a worker's crash and its
 * replacement -- and destroy leaves no fd and no child. Returns whether
 * the pool was made. */
static bool nofile_small_pool(int processes, pp_start_t method) {
    int fds0 = ppt_fd_count();
    pp_options_t o;
    pp_options_init(&o);
    o.processes = processes;
    o.start_method = method;
    pp_pool_t *pool = NULL;
    int rc = pp_pool_create(&pool, &o);
    if (rc != 0) {
        CHECK(rc == -EMFILE,
              "pp_pool_create(processes %d, start method %d) under "
              "RLIMIT_NOFILE %d returned %d (%s), expected 0 or -EMFILE",
              processes, (int)method, NOFILE_SMALL, rc, pp_err_name(rc));
        CHECK(pool == NULL, "a failed create left *pool set");
        CHECK(ppt_fd_count() == fds0, "a failed create left fds: %d before, %d after", fds0,
              ppt_fd_count());
        CHECK(children_left() == 0, "a failed create left %d children", children_left());
        return false;
    }
    CHECK_RC(apply_sum(pool, 100, 3), 0);
    CHECK_RC(apply_sum(pool, ARG_BYTES, 6), 0); /* a memfd argument */

    enum { N = 2000 };
    long *in = malloc(N * sizeof *in), *outv = malloc(N * sizeof *outv);
    CHECK(in && outv, "malloc");
    for (long i = 0; i < N; i++)
        in[i] = i;
    CHECK_RC(pp_map(pool, ppt_task_double, in, sizeof *in, N, outv, sizeof *outv, 0), 0);
    for (long i = 0; i < N; i++)
        CHECK(outv[i] == 2 * i, "map item %ld: %ld", i, outv[i]);

    pp_iter_t *it = NULL;
    CHECK_RC(pp_imap(pool, ppt_task_double, in, sizeof *in, N, PP_CHUNK_AUTO, &it), 0);
    for (long i = 0; i < N; i++) {
        size_t idx = 0, n = 0;
        const void *d = NULL;
        rc = pp_iter_next(it, 30, &idx, &d, &n);
        CHECK(rc == 1, "imap item %ld: %d (%s)", i, rc, pp_err_name(rc));
        long v;
        CHECK(idx == (size_t)i && n == sizeof v, "imap item %ld: index %zu, %zu bytes", i, idx, n);
        memcpy(&v, d, sizeof v);
        CHECK(v == 2 * i, "imap item %ld: %ld", i, v);
    }
    CHECK_RC(pp_iter_next(it, 30, NULL, NULL, NULL), 0);
    pp_iter_free(it);

    /* a crash: that task fails PP_EWORKER (its message naming the
     * signal), a replacement is forked, and the pool goes on */
    long sig = SIGKILL;
    pp_future_t *f = NULL;
    CHECK_RC(pp_apply_async(pool, task_die, &sig, sizeof sig, &f), 0);
    CHECK_RC(pp_future_get(f, 30, NULL, NULL), PP_EWORKER);
    CHECK(pp_future_error(f) && strstr(pp_future_error(f), "SIGKILL"), "message: %s",
          pp_future_error(f) ? pp_future_error(f) : "(none)");
    pp_future_free(f);
    CHECK_RC(apply_sum(pool, 1000, 7), 0);
    CHECK_RC(pp_map(pool, ppt_task_double, in, sizeof *in, N, outv, sizeof *outv, PP_CHUNK_AUTO),
             0);
    CHECK(outv[N - 1] == 2 * (N - 1), "map after the crash: %ld", outv[N - 1]);
    free(in);
    free(outv);

    destroy_leaving_nothing(pool, fds0);
    return true;
}

static void body_nofile_small(void) {
    int held[NOFILE_HELD];
    for (int i = 0; i < NOFILE_HELD; i++) {
        held[i] = open("/dev/null", O_RDONLY | O_CLOEXEC);
        CHECK(held[i] >= 0, "open: %s", strerror(errno));
    }
    set_limit(RLIMIT_NOFILE, NOFILE_SMALL);
    static const pp_start_t methods[] = {PP_START_FORK, PP_START_FORKSERVER, PP_START_SPAWN};
    for (size_t m = 0; m < sizeof methods / sizeof *methods; m++) {
        nofile_small_pool(0, methods[m]);
        /* 4 workers fit in 64 descriptors: this one must work */
        CHECK(nofile_small_pool(4, methods[m]), "4 workers under RLIMIT_NOFILE %d failed",
              NOFILE_SMALL);
        /* 64 workers cannot: -EMFILE, and nothing left behind */
        CHECK(!nofile_small_pool(64, methods[m]), "64 workers under RLIMIT_NOFILE %d",
              NOFILE_SMALL);
    }
    for (int i = 0; i < NOFILE_HELD; i++)
        close(held[i]);
}

static void test_nofile_small(void **state) {
    (void)state;
    run_in_child(body_nofile_small);
}

/* ---- no descriptor left for a replacement worker ------------------------- */

/* Both workers die (their tasks fail PP_EWORKER) while not one descriptor
 * can be made (RLIMIT_NOFILE 3), so no replacement can even be given its
 * channel. Work submitted
 * then must not wait for ever: once the starts have failed as often as a
 * crashing initializer may fail, it fails PP_EWORKER, in seconds, with a
 * message naming the cause. With descriptors free again the pool
 * recovers: the next task runs. */
static void body_respawn_impossible(void) {
    int fds0 = ppt_fd_count();
    pp_pool_t *pool = child_pool(2, PP_START_FORK, 0);
    int rc;
    pp_future_t *die[2] = {NULL, NULL};
    for (int i = 0; i < 2; i++) {
        rc = pp_apply_async(pool, task_die_later, NULL, 0, &die[i]);
        CHECK(rc == 0, "pp_apply_async: %d", rc);
    }
    /* no descriptor can be made from here on (the workers die 300 ms in):
     * the limit is below every descriptor number but stdin, stdout and
     * stderr, so even the numbers a dead worker's channel frees stay
     * unusable; what is open stays open */
    struct rlimit old;
    getrlimit(RLIMIT_NOFILE, &old);
    set_limit(RLIMIT_NOFILE, 3);
    for (int i = 0; i < 2; i++) {
        rc = pp_future_get(die[i], 20, NULL, NULL);
        CHECK(rc == PP_EWORKER, "a killed task: %d (%s), expected PP_EWORKER", rc, pp_err_name(rc));
        pp_future_free(die[i]);
    }
    long v = 21;
    void *res = NULL;
    size_t len = 0;
    double t0 = ppt_now();
    rc = pp_apply(pool, ppt_task_double, &v, sizeof v, &res, &len);
    double took = ppt_now() - t0;
    CHECK(rc == PP_EWORKER, "a task with no worker to run it: %d (%s), expected PP_EWORKER", rc,
          pp_err_name(rc));
    CHECK(took < 15, "a task with no worker to run it failed after %.1f s", took);
    free(res);
    pp_future_t *f = NULL;
    CHECK(pp_apply_async(pool, ppt_task_double, &v, sizeof v, &f) == 0, "pp_apply_async");
    CHECK(pp_future_get(f, 20, NULL, NULL) == PP_EWORKER, "a second task: expected PP_EWORKER");
    const char *msg = pp_future_error(f);
    CHECK(msg && strstr(msg, "no worker could be started") && strstr(msg, "open files"),
          "the message: %s", msg ? msg : "(none)");
    pp_future_free(f);
    /* descriptors again: the pool recovers */
    set_limit(RLIMIT_NOFILE, old.rlim_cur);
    expect_double(pool, v, "after recovery");
    destroy_leaving_nothing(pool, fds0);
}

/* A worker dies holding large arguments (memfds) of its tasks; then no
 * descriptor can be made. A new large argument cannot get its memfd, and
 * nothing of the pool is out to come back (the dead worker's memfds went
 * with it): its task must fail -EMFILE at once, not wait for a return that
 * never comes, while the surviving worker goes on running small tasks. */
static void body_memfd_worker_dies(void) {
    int fds0 = ppt_fd_count();
    pp_pool_t *pool = child_pool(2, PP_START_FORK, 0);
    int rc;
    static unsigned char big[100 * 1024];
    pp_future_t *die = NULL, *hold = NULL;
    CHECK(pp_apply_async(pool, task_die_later, big, sizeof big, &die) == 0, "pp_apply_async");
    CHECK(pp_apply_async(pool, task_sum, big, sizeof big, &hold) == 0, "pp_apply_async");
    CHECK(pp_future_get(hold, 20, NULL, NULL) == 0, "a large argument before the limit");
    pp_future_free(hold);
    struct rlimit old;
    getrlimit(RLIMIT_NOFILE, &old);
    set_limit(RLIMIT_NOFILE, 3);
    rc = pp_future_get(die, 20, NULL, NULL);
    CHECK(rc == PP_EWORKER, "the dying task: %d (%s)", rc, pp_err_name(rc));
    pp_future_free(die);
    pp_future_t *f = NULL;
    double t0 = ppt_now();
    rc = pp_apply_async(pool, task_sum, big, sizeof big, &f);
    CHECK(rc == 0, "pp_apply_async of a large argument: %d (%s)", rc, pp_err_name(rc));
    rc = pp_future_get(f, 20, NULL, NULL);
    CHECK(rc == -EMFILE, "a large argument with no descriptor left: %d (%s), expected -EMFILE", rc,
          pp_err_name(rc));
    CHECK(ppt_now() - t0 < 10, "it failed after %.1f s", ppt_now() - t0);
    pp_future_free(f);
    expect_double(pool, 4, "a small task on the surviving worker");
    set_limit(RLIMIT_NOFILE, old.rlim_cur);
    destroy_leaving_nothing(pool, fds0);
}

static void test_memfd_worker_dies(void **state) {
    (void)state;
    run_in_child(body_memfd_worker_dies);
}

static void test_respawn_impossible(void **state) {
    (void)state;
    run_in_child(body_respawn_impossible);
}

int main(void) {
    ppt_hang_guard(100);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_as_default_range),   cmocka_unit_test(test_fsize),
        cmocka_unit_test(test_nofile_backlog),     cmocka_unit_test(test_nofile_small),
        cmocka_unit_test(test_respawn_impossible), cmocka_unit_test(test_memfd_worker_dies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
