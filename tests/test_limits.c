/* test_limits.c - resource limits: a pool under RLIMIT_AS, RLIMIT_FSIZE
 * and RLIMIT_NOFILE works, or its calls fail with documented errors; a
 * limit never kills the calling process or a worker (issue 12, items 7-9).
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

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define PPT_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define PPT_SANITIZER 1
#endif
#endif

#define CHILD_LIMIT_S 40 /* the child's own hang guard */

/* ---- the child's checks ----------------------------------------------------- */

#define CHECK(cond, ...)                                                        \
    do {                                                                        \
        if (!(cond)) {                                                          \
            fprintf(stderr, "test_limits child, line %d: ", __LINE__);          \
            fprintf(stderr, __VA_ARGS__);                                       \
            fputc('\n', stderr);                                                \
            _exit(1);                                                           \
        }                                                                       \
    } while (0)

#define CHECK_RC(actual, expected)                                              \
    do {                                                                        \
        int a_ = (int)(actual), e_ = (int)(expected);                           \
        CHECK(a_ == e_, "%s returned %d (%s), expected %d (%s)", #actual, a_,   \
              pp_err_name(a_), e_, pp_err_name(e_));                            \
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
    CHECK(rc == 0 && pool, "pp_pool_create(processes %d, start method %d, shm_size %zu) returned %d (%s)",
          processes, (int)method, shm_size, rc, pp_err_name(rc));
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

static int task_double(const void *arg, size_t len, pp_buf_t *out) {
    long v;
    if (len != sizeof v)
        return pp_buf_fail(out, "bad length %zu", len);
    memcpy(&v, arg, sizeof v);
    v *= 2;
    return pp_buf_append(out, &v, sizeof v);
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
    CHECK_RC(pp_map(pool, task_double, items, sizeof(long), 1000, out, sizeof(long), 0), 0);
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
    skip(); /* the sanitizers reserve terabytes of shadow address space */
#else
    run_in_child(body_as);
#endif
}

int main(void) {
    ppt_hang_guard(100);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_as_default_range),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
