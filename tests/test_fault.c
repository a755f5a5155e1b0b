/* test_fault.c - fault tolerance: task timeouts, parent death, Ctrl-C,
 * untrusted (scribbling) workers, restart storms, respawning under a busy
 * multi-threaded parent (every start method), max_memory_per_child and
 * retries. Every test uses pools of 2 workers, runs under the alarm guard,
 * and checks that no fd and no /dev/shm name is left behind.
 *
 * Timing bounds carry slack for a loaded 2-core CI machine; the measured
 * figures are printed so that a slow path is visible even when it passes. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "procpool.h"
#include "helpers.h"

#define TIMEOUT_S 0.3       /* the task_timeout used by the timeout tests */
#define TIMEOUT_SLACK_S 0.5 /* the spec says 100 ms; CI gets 500 ms */

/* ---- hang guard with a useful message ------------------------------------ */

static const char *volatile g_stage = "start";
#define STAGE(s) (g_stage = (s))

static void on_alarm(int sig) {
    (void)sig;
    const char *s = g_stage;
    static const char pre[] = "\ntest_fault: hang guard fired; stuck in: ";
    ssize_t r = write(2, pre, sizeof pre - 1);
    r = write(2, s, strlen(s));
    r = write(2, "\n", 1);
    (void)r;
    _exit(99);
}

/* ---- /proc helpers -------------------------------------------------------- */

typedef struct {
    pid_t pid;
    unsigned long long start;
    char comm[20];
} pproc_t;

struct pid_id {
    long pid;
    unsigned long long start;
};

static int read_comm(pid_t pid, char *buf, size_t n) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/comm", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t r = read(fd, buf, n - 1);
    close(fd);
    if (r <= 0)
        return -1;
    buf[r] = '\0';
    char *nl = strchr(buf, '\n');
    if (nl)
        *nl = '\0';
    return 0;
}

/* Every descendant of root (children, grandchildren, ...), live or zombie. */
static int descendants(pid_t root, pproc_t *out, int max) {
    pid_t queue[256];
    int qh = 0, qt = 0, n = 0;
    queue[qt++] = root;
    while (qh < qt) {
        pid_t ch[128];
        int k = ppt_children_of(queue[qh++], ch, 128);
        for (int i = 0; i < k && n < max; i++) {
            out[n].pid = ch[i];
            out[n].start = 0;
            out[n].comm[0] = '\0';
            ppt_proc_stat(ch[i], NULL, &out[n].start, NULL);
            read_comm(ch[i], out[n].comm, sizeof out[n].comm);
            n++;
            if (qt < 256)
                queue[qt++] = ch[i];
        }
    }
    return n;
}

/* Gone: no such process, a different process with that pid, or a zombie
 * (its parent is dead or has not reaped it yet: it runs nothing). */
static bool proc_gone(pid_t pid, unsigned long long start) {
    char st = 0;
    unsigned long long s = 0;
    if (ppt_proc_stat(pid, &st, &s, NULL) != 0)
        return true;
    if (start && s != start)
        return true;
    return st == 'Z' || st == 'X';
}

static bool wait_gone(pid_t pid, unsigned long long start, double timeout) {
    double end = ppt_now() + timeout;
    while (!proc_gone(pid, start)) {
        if (ppt_now() > end)
            return false;
        ppt_sleep_ms(2);
    }
    return true;
}

/* /dev/shm names as "\nname1\nname2\n" into buf */
static void shm_list(char *buf, size_t cap) {
    snprintf(buf, cap, "\n");
    DIR *d = opendir("/dev/shm");
    if (!d)
        return;
    size_t used = 1;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || ppt_foreign_shm(e->d_name))
            continue;
        int w = snprintf(buf + used, cap - used, "%s\n", e->d_name);
        if (w < 0 || (size_t)w >= cap - used)
            break;
        used += (size_t)w;
    }
    closedir(d);
}

/* the first name in after that is not in before, or NULL */
static const char *shm_new_name(const char *before, const char *after, char *name, size_t cap) {
    for (const char *p = after; *p && p[1];) {
        const char *q = strchr(p + 1, '\n');
        if (!q)
            break;
        char key[NAME_MAX + 3];
        size_t len = (size_t)(q - p) + 1; /* "\nname\n" */
        if (len >= sizeof key)
            len = sizeof key - 1;
        memcpy(key, p, len);
        key[len] = '\0';
        if (!strstr(before, key)) {
            snprintf(name, cap, "%.*s", (int)(q - p - 1), p + 1);
            return name;
        }
        p = q;
    }
    return NULL;
}

/* ---- per-test leak check (fds, /dev/shm) ---------------------------------- */

static int g_fds_before;
static char g_shm_before[16384];
static int g_test_fds[4] = {-1, -1, -1, -1}; /* pipes a failing test may leave open */
static pid_t g_child = 0;                    /* a child a failing test may leave running */

static void close_test_fds(void) {
    for (int i = 0; i < 4; i++)
        if (g_test_fds[i] >= 0) {
            close(g_test_fds[i]);
            g_test_fds[i] = -1;
        }
}

static int setup_snap(void **state) {
    (void)state;
    g_fds_before = ppt_fd_count();
    shm_list(g_shm_before, sizeof g_shm_before);
    return 0;
}

static int teardown_snap(void **state) {
    (void)state;
    char after[16384], name[NAME_MAX + 1];
    close_test_fds();
    if (g_child > 0) {
        kill(-g_child, SIGKILL);
        kill(g_child, SIGKILL);
        waitpid(g_child, NULL, 0);
        g_child = 0;
    }
    /* a killed child's pools are reaped asynchronously by init: give it a moment */
    for (int i = 0; i < 100 && ppt_fd_count() != g_fds_before; i++)
        ppt_sleep_ms(10);
    int fds = ppt_fd_count();
    if (fds != g_fds_before) {
        fprintf(stderr, "fd count changed across the test: %d before, %d after\n", g_fds_before,
                fds);
        return -1;
    }
    shm_list(after, sizeof after);
    if (shm_new_name(g_shm_before, after, name, sizeof name)) {
        fprintf(stderr, "new name in /dev/shm after the test: %s\n", name);
        return -1;
    }
    return 0;
}

/* ---- tasks ---------------------------------------------------------------- */

static void spin_us(long us) {
    double end = ppt_now() + (double)us / 1e6;
    while (ppt_now() < end) {
    }
}

static int task_triple(const void *arg, size_t len, pp_buf_t *out) {
    if (len != sizeof(long))
        return pp_buf_fail(out, "bad len %zu", len);
    long v;
    memcpy(&v, arg, sizeof v);
    v = v * 3 + 1;
    return pp_buf_append(out, &v, sizeof v);
}

static int task_triple_slow(const void *arg, size_t len, pp_buf_t *out) {
    ppt_sleep_ms(5);
    return task_triple(arg, len, out);
}

static struct pid_id my_id(void) {
    struct pid_id id = {(long)getpid(), 0};
    ppt_proc_stat(getpid(), NULL, &id.start, NULL);
    return id;
}

/* sleeps arg ms (an int), then reports pid and start time */
static int task_whoami(const void *arg, size_t len, pp_buf_t *out) {
    int ms = 0;
    if (len == sizeof ms)
        memcpy(&ms, arg, sizeof ms);
    ppt_sleep_ms(ms);
    struct pid_id id = my_id();
    return pp_buf_append(out, &id, sizeof id);
}

/* The hanging tasks get a pointer (by value) to an _Atomic long in the
 * pool's shared memory and store their pid there first. */
static _Atomic long *arg_slot(const void *arg, size_t len) {
    _Atomic long *slot = NULL;
    if (len == sizeof slot)
        memcpy(&slot, arg, sizeof slot);
    return slot;
}

static int task_spin(const void *arg, size_t len, pp_buf_t *out) {
    (void)out;
    _Atomic long *slot = arg_slot(arg, len);
    if (slot)
        atomic_store(slot, (long)getpid());
    volatile unsigned long x = 0;
    for (;;)
        x++;
    return 0;
}

static int task_block(const void *arg, size_t len, pp_buf_t *out) {
    (void)out;
    _Atomic long *slot = arg_slot(arg, len);
    if (slot)
        atomic_store(slot, (long)getpid());
    for (;;)
        pause();
    return 0;
}

/* ignores SIGTERM: only the SIGKILL that follows can stop it */
static int task_stubborn(const void *arg, size_t len, pp_buf_t *out) {
    signal(SIGTERM, SIG_IGN);
    return task_spin(arg, len, out);
}

/* returns if a signal handler runs; dies if a signal kills it */
static int task_pause_once(const void *arg, size_t len, pp_buf_t *out) {
    (void)arg;
    (void)len;
    pause();
    return pp_buf_fail(out, "pause() returned in the worker: a signal handler ran");
}

static int map_hang77(const void *arg, size_t len, pp_buf_t *out) {
    long v;
    if (len != sizeof v)
        return pp_buf_fail(out, "bad len %zu", len);
    memcpy(&v, arg, sizeof v);
    if (v == 77)
        for (;;)
            pause();
    v = v * 3 + 1;
    return pp_buf_append(out, &v, sizeof v);
}

/* ---- small pool helpers --------------------------------------------------- */

static pp_pool_t *mkpool(const pp_options_t *opt) {
    pp_pool_t *pool = NULL;
    fflush(stdout);
    fflush(stderr);
    int rc = pp_pool_create(&pool, opt);
    if (rc != 0 || !pool)
        fail_msg("pp_pool_create(processes=%d, start_method=%d) returned %d (%s)", opt->processes,
                 (int)opt->start_method, rc, pp_err_name(rc));
    return pool;
}

static void opts2(pp_options_t *opt) {
    pp_options_init(opt);
    opt->processes = 2;
}

/* Two concurrent tasks that each sleep ms and report their worker: with two
 * idle workers they land on different ones. No cmocka: usable in children. */
static int run_two(pp_pool_t *pool, int ms, struct pid_id out[2]) {
    pp_future_t *f[2] = {NULL, NULL};
    int rc = 0;
    for (int i = 0; i < 2 && rc == 0; i++)
        rc = pp_apply_async(pool, task_whoami, &ms, sizeof ms, &f[i]);
    for (int i = 0; i < 2 && rc == 0; i++) {
        const void *d = NULL;
        size_t n = 0;
        rc = pp_future_get(f[i], 20, &d, &n);
        if (rc == 0 && n == sizeof out[i])
            memcpy(&out[i], d, sizeof out[i]);
        else if (rc == 0)
            rc = -EBADMSG;
    }
    pp_future_free(f[0]);
    pp_future_free(f[1]);
    return rc;
}

static bool same_id(const struct pid_id *a, const struct pid_id *b) {
    return a->pid == b->pid && a->start == b->start;
}

static const char *err_or(const pp_future_t *f) {
    const char *e = pp_future_error(f);
    return e ? e : "(no message)";
}

/* ========================================================================== */
/* 1. task_timeout                                                             */
/* ========================================================================== */

static void timeout_case(pp_task_fn hang, const char *what) {
    pp_options_t opt;
    opts2(&opt);
    opt.task_timeout = TIMEOUT_S;
    pp_pool_t *pool = mkpool(&opt);
    _Atomic long *slot = pp_shm_alloc(pool, sizeof *slot);
    assert_non_null(slot);

    struct pid_id orig[2];
    STAGE("timeout: the first two tasks");
    assert_rc(run_two(pool, 100, orig), 0);
    assert_false(same_id(&orig[0], &orig[1]));

    enum { NQ = 20 };
    pp_future_t *hf = NULL, *qf[NQ];
    double t0 = ppt_now();
    assert_rc(pp_apply_async(pool, hang, &slot, sizeof slot, &hf), 0);
    for (long i = 0; i < NQ; i++)
        assert_rc(pp_apply_async(pool, task_triple_slow, &i, sizeof i, &qf[i]), 0);

    STAGE("timeout: waiting for the hanging task to time out");
    assert_rc(pp_future_wait(hf, 10), 0);
    double el = ppt_now() - t0;
    const void *d = (const void *)&d;
    size_t n = 7;
    int rc = pp_future_get(hf, 0, &d, &n);
    printf("    %s: failed %s after %.3f s (timeout %.1f s, lateness %+.0f ms): %s\n", what,
           pp_err_name(rc), el, TIMEOUT_S, (el - TIMEOUT_S) * 1e3, err_or(hf));
    if (rc != PP_ETASKTIMEOUT)
        fail_msg("%s: the task returned %d (%s), expected PP_ETASKTIMEOUT: %s", what, rc,
                 pp_err_name(rc), err_or(hf));
    assert_null(d);
    assert_int_equal(n, 0);
    if (el < TIMEOUT_S - 0.002)
        fail_msg("%s: timed out after %.3f s, before the %.1f s deadline", what, el, TIMEOUT_S);
    if (el > TIMEOUT_S + TIMEOUT_SLACK_S)
        fail_msg("%s: timed out after %.3f s; the deadline was %.1f s (allowed lateness %.0f ms)",
                 what, el, TIMEOUT_S, TIMEOUT_SLACK_S * 1e3);
    pp_future_free(hf);

    /* the others submitted at the same time: untouched */
    STAGE("timeout: the tasks submitted alongside");
    for (long i = 0; i < NQ; i++) {
        assert_int_equal(ppt_get_long(qf[i], 20), 3 * i + 1);
        pp_future_free(qf[i]);
    }

    /* the hung worker is gone; the pool has its size; a new worker runs tasks */
    long hung = atomic_load(slot);
    assert_true(hung == orig[0].pid || hung == orig[1].pid);
    const struct pid_id *hid = hung == orig[0].pid ? &orig[0] : &orig[1];
    const struct pid_id *other = hung == orig[0].pid ? &orig[1] : &orig[0];
    STAGE("timeout: the hung worker must be gone");
    if (!wait_gone((pid_t)hid->pid, hid->start, 1.0))
        fail_msg("%s: the timed-out worker %ld is still running 1 s after the failure", what,
                 hid->pid);
    assert_int_equal(pp_pool_size(pool), 2);
    bool saw_new = false;
    STAGE("timeout: tasks after the timeout");
    for (int round = 0; round < 20 && !saw_new; round++) {
        struct pid_id now[2];
        assert_rc(run_two(pool, 60, now), 0);
        for (int i = 0; i < 2; i++) {
            if (same_id(&now[i], hid))
                fail_msg("%s: a task ran in the timed-out worker %ld", what, hid->pid);
            if (!same_id(&now[i], other))
                saw_new = true;
        }
    }
    if (!saw_new)
        fail_msg("%s: no task ran in a replacement worker after the timeout", what);
    STAGE("timeout: finish");
    ppt_finish(pool);
}

/* The commonest case: one runaway task and nothing else happening in the
 * pool (no other result will wake the supervisor). */
static void timeout_alone_case(pp_task_fn hang, const char *what) {
    pp_options_t opt;
    opts2(&opt);
    opt.task_timeout = TIMEOUT_S;
    pp_pool_t *pool = mkpool(&opt);
    pp_future_t *f = NULL;
    STAGE("timeout: a lone hanging task");
    double t0 = ppt_now();
    assert_rc(pp_apply_async(pool, hang, NULL, 0, &f), 0);
    int rc = pp_future_wait(f, TIMEOUT_S + 5);
    double el = ppt_now() - t0;
    if (rc != 0) {
        pp_future_free(f);
        assert_rc(pp_pool_terminate(pool), 0);
        pp_pool_destroy(pool);
        fail_msg("%s, alone in the pool: still running %.1f s after submission with "
                 "task_timeout %.1f s: it never timed out",
                 what, el, TIMEOUT_S);
    }
    rc = pp_future_get(f, 0, NULL, NULL);
    printf("    %s, alone in the pool: %s after %.3f s\n", what, pp_err_name(rc), el);
    assert_rc(rc, PP_ETASKTIMEOUT);
    if (el > TIMEOUT_S + TIMEOUT_SLACK_S)
        fail_msg("%s, alone: timed out after %.3f s (deadline %.1f s)", what, el, TIMEOUT_S);
    pp_future_free(f);
    /* pp_apply too */
    void *r = (void *)&r;
    size_t n = 1;
    assert_rc(pp_apply(pool, hang, NULL, 0, &r, &n), PP_ETASKTIMEOUT);
    assert_null(r);
    assert_int_equal(n, 0);
    long v = 4;
    assert_rc(pp_apply(pool, task_triple, &v, sizeof v, &r, &n), 0);
    assert_int_equal(*(long *)r, 13);
    free(r);
    ppt_finish(pool);
}

static void test_timeout_alone_spinning(void **state) {
    (void)state;
    timeout_alone_case(task_spin, "spinning task");
}

static void test_timeout_alone_blocked(void **state) {
    (void)state;
    timeout_alone_case(task_block, "task blocked in pause()");
}

static void test_timeout_spinning(void **state) {
    (void)state;
    timeout_case(task_spin, "spinning task");
}

static void test_timeout_blocked(void **state) {
    (void)state;
    timeout_case(task_block, "task blocked in pause()");
}

static void test_timeout_ignores_sigterm(void **state) {
    (void)state;
    timeout_case(task_stubborn, "spinning task that ignores SIGTERM");
}

static void test_timeout_in_map(void **state) {
    (void)state;
    pp_options_t opt;
    opts2(&opt);
    opt.task_timeout = TIMEOUT_S;
    pp_pool_t *pool = mkpool(&opt);
    enum { N = 200 };
    static long items[N], res[N];
    for (long i = 0; i < N; i++) {
        items[i] = i;
        res[i] = -1;
    }
    /* pp_map_async first, with a bounded wait, so that a map that never
     * times out fails this test instead of hanging the suite */
    STAGE("timeout in pp_map_async");
    pp_future_t *mf = NULL;
    double t0 = ppt_now();
    assert_rc(pp_map_async(pool, map_hang77, items, sizeof(long), N, res, sizeof(long), 10, &mf),
              0);
    int rc = pp_future_wait(mf, TIMEOUT_S + 5);
    double el = ppt_now() - t0;
    if (rc != 0) {
        size_t done = 0, total = 0;
        pp_future_progress(mf, &done, &total);
        pp_future_free(mf);
        assert_rc(pp_pool_terminate(pool), 0);
        pp_pool_destroy(pool);
        fail_msg("pp_map_async with item 77 hanging (task_timeout %.1f s): not done after %.1f s, "
                 "%zu of %zu items done: the hanging item never timed out",
                 TIMEOUT_S, el, done, total);
    }
    rc = pp_future_get(mf, 0, NULL, NULL);
    printf("    pp_map_async with item 77 hanging: %s after %.3f s: %s\n", pp_err_name(rc), el,
           err_or(mf));
    assert_rc(rc, PP_ETASKTIMEOUT);
    const char *e = pp_future_error(mf);
    if (!e || !strstr(e, "item 77"))
        fail_msg("pp_map_async error \"%s\" does not name item 77", e ? e : "(null)");
    for (long i = 0; i < N; i++)
        if (i != 77 && res[i] != 3 * i + 1)
            fail_msg("pp_map_async: result %ld is %ld, expected %ld", i, res[i], 3 * i + 1);
    pp_future_free(mf);
    if (el > TIMEOUT_S + TIMEOUT_SLACK_S + 0.5)
        fail_msg("pp_map_async took %.3f s with a %.1f s task timeout", el, TIMEOUT_S);

    STAGE("timeout in pp_map");
    for (long i = 0; i < N; i++)
        res[i] = -1;
    t0 = ppt_now();
    rc = pp_map(pool, map_hang77, items, sizeof(long), N, res, sizeof(long), 7);
    el = ppt_now() - t0;
    printf("    pp_map with item 77 hanging: %s after %.3f s\n", pp_err_name(rc), el);
    assert_rc(rc, PP_ETASKTIMEOUT);
    for (long i = 0; i < N; i++)
        if (i != 77 && res[i] != 3 * i + 1)
            fail_msg("pp_map: result %ld is %ld, expected %ld", i, res[i], 3 * i + 1);

    /* the pool goes on */
    STAGE("map after the timeout");
    for (long i = 0; i < N; i++)
        items[i] = i == 77 ? 78 : i;
    assert_rc(pp_map(pool, map_hang77, items, sizeof(long), N, res, sizeof(long), 10), 0);
    assert_int_equal(res[77], 3 * 78 + 1);
    assert_int_equal(pp_pool_size(pool), 2);
    ppt_finish(pool);
}

/* ========================================================================== */
/* 2. parent death and 3. Ctrl-C: a child process owns the pool               */
/* ========================================================================== */

struct child_report {
    int create_rc; /* pp_pool_create's return value */
    int n;
    struct pid_id workers[2];
    pproc_t procs[16];
};

static __attribute__((noreturn)) void child_fail(const char *why, int rc, int code) {
    dprintf(1, "    child %d: %s: %d (%s)\n", (int)getpid(), why, rc, pp_err_name(rc));
    _exit(code);
}

/* In the child: create the pool, learn the worker pids from two tasks, start
 * one long task (so one worker is busy and one idle), then report every
 * descendant. Returns the long task's future. */
static pp_future_t *child_pool_and_report(pp_pool_t **poolp, pp_start_t sm, pp_task_fn longtask,
                                          int fd) {
    pp_options_t opt;
    opts2(&opt);
    opt.start_method = sm;
    pp_pool_t *pool = NULL;
    struct child_report rep;
    memset(&rep, 0, sizeof rep);
    int rc = rep.create_rc = pp_pool_create(&pool, &opt);
    if (rc != 0) {
        if (write(fd, &rep, sizeof rep) != (ssize_t)sizeof rep)
            child_fail("write report", -errno, 13);
        child_fail("pp_pool_create", rc, 10);
    }
    if ((rc = run_two(pool, 100, rep.workers)) != 0)
        child_fail("run_two", rc, 11);
    pp_future_t *f = NULL;
    if ((rc = pp_apply_async(pool, longtask, NULL, 0, &f)) != 0)
        child_fail("pp_apply_async", rc, 12);
    ppt_sleep_ms(100); /* let it start */
    /* both workers up (a spawn worker may still be booting on a loaded box) */
    double t0 = ppt_now();
    for (;;) {
        rep.n = descendants(getpid(), rep.procs, 16);
        int nw = 0;
        for (int i = 0; i < rep.n; i++)
            nw += !strcmp(rep.procs[i].comm, "procpool-worker");
        if (nw >= 2 || ppt_now() - t0 > 3)
            break;
        ppt_sleep_ms(10);
    }
    if (ppt_now() - t0 > 0.2)
        dprintf(1, "    child: waited %.2f s for both workers to show up\n", ppt_now() - t0);
    if (write(fd, &rep, sizeof rep) != (ssize_t)sizeof rep)
        child_fail("write report", -errno, 13);
    *poolp = pool;
    return f;
}

/* read exactly n bytes within timeout seconds */
static int read_full(int fd, void *buf, size_t n, double timeout) {
    size_t got = 0;
    double end = ppt_now() + timeout;
    while (got < n) {
        int ms = (int)((end - ppt_now()) * 1e3);
        if (ms <= 0)
            return -ETIMEDOUT;
        struct pollfd p = {fd, POLLIN, 0};
        int r = poll(&p, 1, ms);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            continue;
        ssize_t k = read(fd, (char *)buf + got, n - got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return k == 0 ? -EPIPE : -errno;
        got += (size_t)k;
    }
    return 0;
}

/* waitpid with a timeout; returns the pid or 0 on timeout */
static pid_t waitpid_timeout(pid_t pid, int *status, double timeout) {
    double end = ppt_now() + timeout;
    for (;;) {
        pid_t r = waitpid(pid, status, WNOHANG);
        if (r != 0)
            return r;
        if (ppt_now() > end)
            return 0;
        ppt_sleep_ms(2);
    }
}

static void check_report(const struct child_report *rep, const char *what) {
    int nworkers = 0, nzygote = 0;
    for (int i = 0; i < rep->n; i++) {
        if (!strcmp(rep->procs[i].comm, "procpool-worker"))
            nworkers++;
        else if (!strcmp(rep->procs[i].comm, "procpool-zygote"))
            nzygote++;
    }
    printf("    %s: child's pool has %d processes (%d workers, %d zygote)\n", what, rep->n,
           nworkers, nzygote);
    if (nworkers != 2)
        fail_msg("%s: expected 2 worker processes among the child's descendants, saw %d", what,
                 nworkers);
    for (int w = 0; w < 2; w++) {
        bool found = false;
        for (int i = 0; i < rep->n; i++)
            found |= rep->procs[i].pid == rep->workers[w].pid;
        if (!found)
            fail_msg("%s: worker %ld (from a task) is not among the descendants", what,
                     rep->workers[w].pid);
    }
}

/* all of the reported processes gone within `within` s of t0 */
static void check_all_gone(const struct child_report *rep, double t0, double within,
                           const char *what) {
    for (;;) {
        int alive = -1;
        for (int i = 0; i < rep->n && alive < 0; i++)
            if (!proc_gone(rep->procs[i].pid, rep->procs[i].start))
                alive = i;
        double el = ppt_now() - t0;
        if (alive < 0) {
            printf("    %s: every pool process gone %.0f ms after the signal\n", what, el * 1e3);
            return;
        }
        if (el > within) {
            char st = '?';
            ppt_proc_stat(rep->procs[alive].pid, &st, NULL, NULL);
            /* don't leave it behind for the other tests */
            for (int i = 0; i < rep->n; i++)
                if (!proc_gone(rep->procs[i].pid, rep->procs[i].start))
                    kill(rep->procs[i].pid, SIGKILL);
            fail_msg("%s: process %d (%s, state %c) still alive %.2f s after its parent died", what,
                     (int)rep->procs[alive].pid, rep->procs[alive].comm, st, el);
        }
        ppt_sleep_ms(2);
    }
}

static void parent_death_case(pp_start_t sm, const char *what) {
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    fflush(stdout);
    fflush(stderr);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        alarm(30);
        close(p[0]);
        pp_pool_t *pool = NULL;
        child_pool_and_report(&pool, sm, task_block, p[1]);
        for (;;)
            pause();
    }
    g_child = child;
    close(p[1]);
    struct child_report rep;
    STAGE("parent death: the child's report");
    int rc = read_full(p[0], &rep, sizeof rep, 20);
    close(p[0]);
    if (rc != 0) {
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
        g_child = 0;
        fail_msg("%s: no report from the child (%d)", what, rc);
    }
    if (rep.create_rc == -ENOTSUP && sm == PP_START_SPAWN) {
        waitpid(child, NULL, 0);
        g_child = 0;
        printf("    %s: SKIPPED: pp_pool_create returned -ENOTSUP\n", what);
        return;
    }
    if (rep.create_rc != 0) {
        waitpid(child, NULL, 0);
        g_child = 0;
        fail_msg("%s: pp_pool_create in the child returned %d (%s)", what, rep.create_rc,
                 pp_err_name(rep.create_rc));
    }
    check_report(&rep, what);

    STAGE("parent death: SIGKILL the pool's owner");
    double t0 = ppt_now();
    assert_int_equal(kill(child, SIGKILL), 0);
    int st = 0;
    assert_int_equal(waitpid(child, &st, 0), child);
    g_child = 0;
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    check_all_gone(&rep, t0, 1.0, what);
}

static void test_parent_death_fork(void **state) {
    (void)state;
    parent_death_case(PP_START_FORK, "parent SIGKILLed (fork)");
}

static void test_parent_death_forkserver(void **state) {
    (void)state;
    parent_death_case(PP_START_FORKSERVER, "parent SIGKILLed (forkserver)");
}

static void test_parent_death_spawn(void **state) {
    (void)state;
    parent_death_case(PP_START_SPAWN, "parent SIGKILLed (spawn)");
}

static volatile sig_atomic_t g_sigint_seen;
static void on_sigint(int sig) {
    (void)sig;
    g_sigint_seen = 1;
}

/* Ctrl-C: SIGINT to the child's whole process group. handle = 0: default
 * action, the child dies; 1: a handler sets a flag and the child calls
 * pp_pool_terminate. Nothing may appear on the child's (and so the
 * workers') stderr. */
static void ctrlc_case(pp_start_t sm, int handle, const char *what) {
    int rep_pipe[2], err_pipe[2];
    assert_int_equal(pipe2(rep_pipe, O_CLOEXEC), 0);
    assert_int_equal(pipe2(err_pipe, O_CLOEXEC), 0);
    g_test_fds[0] = rep_pipe[0];
    g_test_fds[1] = err_pipe[0];
    fflush(stdout);
    fflush(stderr);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        alarm(30);
        setpgid(0, 0);
        dup2(err_pipe[1], 2); /* not CLOEXEC: the workers inherit it */
        close(err_pipe[0]);
        close(err_pipe[1]);
        close(rep_pipe[0]);
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = handle ? on_sigint : SIG_DFL; /* no SA_RESTART */
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, NULL);
        sigset_t un;
        sigemptyset(&un);
        sigaddset(&un, SIGINT);
        sigprocmask(SIG_UNBLOCK, &un, NULL);
        pp_pool_t *pool = NULL;
        pp_future_t *f = child_pool_and_report(&pool, sm, task_pause_once, rep_pipe[1]);
        if (!handle) {
            pp_future_wait(f, -1);
            child_fail("the long task finished before SIGINT", pp_future_get(f, 0, NULL, NULL), 20);
        }
        while (!g_sigint_seen)
            pp_future_wait(f, 0.01);
        /* workers ignore SIGINT: the task is still running 200 ms later */
        ppt_sleep_ms(200);
        if (pp_future_ready(f) == 1) {
            dprintf(1, "    child: after SIGINT the task is done: %s\n", err_or(f));
            child_fail("the long task ended on SIGINT", pp_future_get(f, 0, NULL, NULL), 21);
        }
        pproc_t now[16];
        int n = descendants(getpid(), now, 16);
        if (n < 3)
            child_fail("pool processes died on SIGINT; left", n, 22);
        double t0 = ppt_now();
        int rc = pp_pool_terminate(pool);
        double dt = ppt_now() - t0;
        if (rc != 0)
            child_fail("pp_pool_terminate", rc, 23);
        rc = pp_future_get(f, 5, NULL, NULL);
        if (rc != PP_ECANCELED)
            child_fail("the long task after terminate", rc, 24);
        pp_future_free(f);
        pp_pool_destroy(pool);
        if (write(rep_pipe[1], &dt, sizeof dt) != (ssize_t)sizeof dt)
            _exit(25);
        _exit(0);
    }
    g_child = child;
    setpgid(child, child); /* either side may win the race; both ask the same */
    close(rep_pipe[1]);
    close(err_pipe[1]);

    struct child_report rep;
    STAGE("ctrl-c: the child's report");
    int rc = read_full(rep_pipe[0], &rep, sizeof rep, 20);
    if (rc != 0) {
        kill(-child, SIGKILL);
        waitpid(child, NULL, 0);
        g_child = 0;
        fail_msg("%s: no report from the child (%d)", what, rc);
    }
    if (rep.create_rc != 0) {
        waitpid(child, NULL, 0);
        g_child = 0;
        fail_msg("%s: pp_pool_create in the child returned %d (%s)", what, rep.create_rc,
                 pp_err_name(rep.create_rc));
    }
    check_report(&rep, what);
    assert_int_equal(getpgid(child), child);

    STAGE("ctrl-c: SIGINT to the process group");
    double t0 = ppt_now();
    assert_int_equal(kill(-child, SIGINT), 0);
    int st = 0;
    pid_t r = waitpid_timeout(child, &st, 10);
    if (r == child)
        g_child = 0;
    if (r != child) {
        kill(-child, SIGKILL);
        waitpid(child, NULL, 0);
        g_child = 0;
        fail_msg("%s: the child did not exit within 10 s of SIGINT", what);
    }
    double dt = -1;
    if (handle) {
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            fail_msg("%s: child ended with status 0x%x (exit %d, signal %d), expected exit 0", what,
                     st, WIFEXITED(st) ? WEXITSTATUS(st) : -1, WIFSIGNALED(st) ? WTERMSIG(st) : 0);
        assert_rc(read_full(rep_pipe[0], &dt, sizeof dt, 1), 0);
        printf("    %s: pp_pool_terminate took %.0f ms\n", what, dt * 1e3);
        if (dt >= 1.0)
            fail_msg("%s: pp_pool_terminate took %.3f s", what, dt);
    } else {
        if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGINT)
            fail_msg("%s: child ended with status 0x%x, expected death by SIGINT", what, st);
    }
    close(rep_pipe[0]);
    g_test_fds[0] = -1;
    check_all_gone(&rep, t0, handle ? 1.5 : 1.0, what);

    /* stderr: EOF once every holder (child, zygote, workers) is gone */
    STAGE("ctrl-c: the child's stderr");
    char buf[4096];
    size_t got = 0;
    double end = ppt_now() + 5;
    bool eof = false;
    while (!eof && ppt_now() < end) {
        struct pollfd p = {err_pipe[0], POLLIN, 0};
        if (poll(&p, 1, 100) <= 0)
            continue;
        ssize_t k = read(err_pipe[0], buf + got, sizeof buf - 1 - got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            eof = true;
        else
            got += (size_t)k;
        if (got == sizeof buf - 1)
            break;
    }
    close(err_pipe[0]);
    g_test_fds[1] = -1;
    buf[got] = '\0';
    if (got)
        fail_msg("%s: the pool wrote to stderr: \"%s\"", what, buf);
    if (!eof)
        fail_msg("%s: the child's stderr is still open 5 s after SIGINT (a process holds it)",
                 what);
}

static void test_ctrlc_default_fork(void **state) {
    (void)state;
    ctrlc_case(PP_START_FORK, 0, "Ctrl-C, default action (fork)");
}

static void test_ctrlc_default_forkserver(void **state) {
    (void)state;
    ctrlc_case(PP_START_FORKSERVER, 0, "Ctrl-C, default action (forkserver)");
}

static void test_ctrlc_handled_terminate(void **state) {
    (void)state;
    ctrlc_case(PP_START_FORK, 1, "Ctrl-C, handled + terminate (fork)");
}

/* ========================================================================== */
/* 4. untrusted worker: scribbles over every shared mapping it can see        */
/* ========================================================================== */

struct scribble_arg {
    _Atomic long *slot; /* [0] its pid, [1] mappings written, [2] read-only ones made writable */
    unsigned long seed;
};

struct tagged_arg {
    long v;
    _Atomic long *slot; /* the task's pid goes here when it starts */
};

static int task_tagged(const void *arg, size_t len, pp_buf_t *out) {
    struct tagged_arg a;
    if (len != sizeof a)
        return pp_buf_fail(out, "bad len %zu", len);
    memcpy(&a, arg, sizeof a);
    atomic_store(a.slot, (long)getpid());
    spin_us(200);
    long r = a.v * 3 + 1;
    return pp_buf_append(out, &r, sizeof r);
}

static int task_scribble(const void *arg, size_t len, pp_buf_t *out) {
    struct scribble_arg a;
    if (len != sizeof a)
        return pp_buf_fail(out, "bad len %zu", len);
    memcpy(&a, arg, sizeof a);
    /* inherited cmocka handlers must not run in a worker */
    signal(SIGSEGV, SIG_DFL);
    signal(SIGBUS, SIG_DFL);
    atomic_store(&a.slot[0], (long)getpid());
    ppt_sleep_ms(10); /* let the other worker get busy */

    struct {
        uintptr_t lo, hi;
        bool w;
    } r[64];
    int nr = 0;
    FILE *fp = fopen("/proc/self/maps", "re");
    if (!fp)
        return pp_buf_fail(out, "cannot read /proc/self/maps");
    char line[512];
    while (nr < 64 && fgets(line, sizeof line, fp)) {
        if (!strstr(line, "memfd:procpool") || strstr(line, "procpool-shm"))
            continue;
        unsigned long lo, hi;
        char perms[8];
        if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) != 3)
            continue;
        r[nr].lo = lo;
        r[nr].hi = hi;
        r[nr].w = perms[1] == 'w';
        nr++;
    }
    fclose(fp);
    uint64_t x = a.seed ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(ppt_now() * 1e9);
    if (!x)
        x = 88172645463325252ull;
    for (int i = 0; i < nr; i++) {
        /* a read-only mapping should stay that way; if it can be made
         * writable, that is a hole: scribble on it too */
        if (!r[i].w) {
            if (mprotect((void *)r[i].lo, r[i].hi - r[i].lo, PROT_READ | PROT_WRITE) != 0)
                continue;
            atomic_fetch_add(&a.slot[2], 1);
        }
        atomic_fetch_add(&a.slot[1], 1);
        for (uint64_t *p = (uint64_t *)r[i].lo; (uintptr_t)p < r[i].hi; p++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *p = x;
        }
    }
    long v = 12345;
    return pp_buf_append(out, &v, sizeof v);
}

static void test_untrusted_worker(void **state) {
    (void)state;
    pp_pool_t *pool = ppt_pool(2);
    enum { ROUNDS = 20, N = 100 };
    _Atomic long *slots = pp_shm_alloc(pool, (N + 3) * sizeof *slots);
    assert_non_null(slots);
    int s_ok = 0, s_worker = 0, s_proto = 0, collateral = 0, own_wrong = 0;
    long mappings = 0, made_writable = 0;
    for (int round = 0; round < ROUNDS; round++) {
        for (int i = 0; i < N + 3; i++)
            atomic_store(&slots[i], 0);
        pp_future_t *f[N], *sf = NULL;
        struct scribble_arg sa = {&slots[N], (unsigned long)round * 7919u + 1};
        for (long i = 0; i < N; i++) {
            struct tagged_arg ta = {1000 * round + i, &slots[i]};
            assert_rc(pp_apply_async(pool, task_tagged, &ta, sizeof ta, &f[i]), 0);
            if (i == N / 4)
                assert_rc(pp_apply_async(pool, task_scribble, &sa, sizeof sa, &sf), 0);
        }
        STAGE("untrusted: the scribbling task");
        const void *d = NULL;
        size_t n = 0;
        int rc = pp_future_get(sf, 20, &d, &n);
        if (rc == -ETIMEDOUT)
            fail_msg("round %d: the scribbling task is not done after 20 s (parent hangs)", round);
        if (rc == 0) {
            if (n != sizeof(long) || *(const long *)d != 12345)
                fail_msg("round %d: the scribbling task succeeded with a wrong result", round);
            s_ok++;
        } else if (rc == PP_EWORKER) {
            s_worker++;
        } else if (rc == PP_EPROTO) {
            s_proto++;
        } else {
            fail_msg("round %d: the scribbling task failed %d (%s), expected PP_EWORKER, "
                     "PP_EPROTO or success: %s",
                     round, rc, pp_err_name(rc), err_or(sf));
        }
        long bad = atomic_load(&slots[N]);
        mappings += atomic_load(&slots[N + 1]);
        made_writable += atomic_load(&slots[N + 2]);
        STAGE("untrusted: the other tasks");
        for (long i = 0; i < N; i++) {
            d = NULL;
            rc = pp_future_get(f[i], 20, &d, &n);
            long ran_in = atomic_load(&slots[i]);
            long want = (1000 * round + i) * 3 + 1;
            if (rc == -ETIMEDOUT)
                fail_msg("round %d: task %ld not done after 20 s (parent hangs)", round, i);
            if (rc == 0) {
                long got = n == sizeof(long) ? *(const long *)d : -1;
                if (got != want) {
                    if (ran_in == bad) {
                        /* it ran in the scribbler's own worker, whose ring the
                         * scribbler overwrote while the parent read it */
                        own_wrong++;
                        continue;
                    }
                    fail_msg("round %d: task %ld (worker %ld; scribbler %ld) succeeded with "
                             "%ld (len %zu), expected %ld",
                             round, i, ran_in, bad, got, n, want);
                }
            } else {
                if (rc != PP_EWORKER && rc != PP_EPROTO)
                    fail_msg("round %d: task %ld failed %d (%s): %s", round, i, rc, pp_err_name(rc),
                             err_or(f[i]));
                if (ran_in != 0 && ran_in != bad)
                    fail_msg("round %d: task %ld ran in worker %ld, not the scribbler's (%ld), "
                             "and failed %s: %s",
                             round, i, ran_in, bad, pp_err_name(rc), err_or(f[i]));
                collateral++;
            }
            pp_future_free(f[i]);
        }
        pp_future_free(sf);
        /* the pool goes on */
        STAGE("untrusted: tasks after the round");
        for (long i = 0; i < 4; i++) {
            void *res = NULL;
            size_t rl = 0;
            assert_rc(pp_apply(pool, task_triple, &i, sizeof i, &res, &rl), 0);
            assert_int_equal(rl, sizeof(long));
            assert_int_equal(*(long *)res, 3 * i + 1);
            free(res);
        }
        assert_int_equal(pp_pool_size(pool), 2);
    }
    printf("    scribbler, %d rounds: %ld shared mappings overwritten (%ld read-only ones made "
           "writable); it succeeded %d, PP_EWORKER %d, PP_EPROTO %d; tasks of its own worker that "
           "failed: %d, that succeeded with a wrong value: %d\n",
           ROUNDS, mappings, made_writable, s_ok, s_worker, s_proto, collateral, own_wrong);
    if (mappings < ROUNDS)
        fail_msg("the scribbler found no memfd:procpool mapping to overwrite: test is void");
    if (made_writable)
        fail_msg("a worker made %ld read-only shared mappings (its task ring) writable with "
                 "mprotect",
                 made_writable);
    if (own_wrong)
        fail_msg("%d tasks that ran in the scribbler's worker were reported successful with a "
                 "wrong result",
                 own_wrong);
    STAGE("untrusted: finish");
    ppt_finish(pool);
}

/* ========================================================================== */
/* 5. restart storms                                                           */
/* ========================================================================== */

static _Atomic int *shared_counter(void) {
    /* created before the pool, so every worker (forked from the parent or
     * the zygote) shares it; pp_shm_alloc memory does not exist yet when an
     * initializer runs in the first workers */
    void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(p != MAP_FAILED);
    return (_Atomic int *)p;
}

static void init_crash_always(void *arg) {
    atomic_fetch_add((_Atomic int *)arg, 1);
    signal(SIGSEGV, SIG_DFL);
    raise(SIGSEGV);
}

static void init_crash_first_two(void *arg) {
    if (atomic_fetch_add((_Atomic int *)arg, 1) < 2) {
        signal(SIGSEGV, SIG_DFL);
        raise(SIGSEGV);
    }
}

static void test_restart_storm(void **state) {
    (void)state;
    _Atomic int *starts = shared_counter();
    pp_options_t opt;
    opts2(&opt);
    opt.initializer = init_crash_always;
    opt.initarg = (void *)starts;
    STAGE("restart storm: pp_pool_create with a crashing initializer");
    double t0 = ppt_now();
    pp_pool_t *pool = mkpool(&opt);
    enum { N = 4 };
    pp_future_t *f[N];
    for (long i = 0; i < N; i++)
        assert_rc(pp_apply_async(pool, task_triple, &i, sizeof i, &f[i]), 0);
    STAGE("restart storm: waiting for the pending tasks to fail");
    for (int i = 0; i < N; i++) {
        double left = 10 - (ppt_now() - t0);
        int rc = pp_future_get(f[i], left > 0 ? left : 0, NULL, NULL);
        if (rc == -ETIMEDOUT)
            fail_msg("restart storm: task %d still pending %.1f s after pool creation "
                     "(%d worker starts so far)",
                     i, ppt_now() - t0, atomic_load(starts));
        if (rc != PP_EWORKER)
            fail_msg("restart storm: task %d returned %d (%s), expected PP_EWORKER: %s", i, rc,
                     pp_err_name(rc), err_or(f[i]));
        const char *e = pp_future_error(f[i]);
        if (!e || (!strstr(e, "start-up") && !strstr(e, "initializer")))
            fail_msg("restart storm: message \"%s\" mentions neither start-up nor initializer",
                     e ? e : "(null)");
    }
    double el = ppt_now() - t0;
    int at_fail = atomic_load(starts);
    printf("    restart storm: tasks failed after %.2f s, %d worker starts: %s\n", el, at_fail,
           err_or(f[0]));
    for (int i = 0; i < N; i++)
        pp_future_free(f[i]);
    /* growing delays: five early deaths per slot cost at least 100+200+400+800 ms */
    if (el < 1.0)
        fail_msg("restart storm: tasks failed after only %.2f s: respawns are not throttled "
                 "(%d starts)",
                 el, at_fail);
    if (at_fail > 2 * 8)
        fail_msg("restart storm: %d worker starts before giving up (hot loop?)", at_fail);

    /* no hot loop afterwards either; a task submitted now also fails */
    pp_future_t *late = NULL;
    long v = 5;
    assert_rc(pp_apply_async(pool, task_triple, &v, sizeof v, &late), 0);
    STAGE("restart storm: a task submitted after the storm");
    int rc = pp_future_get(late, 10, NULL, NULL);
    int later = atomic_load(starts);
    printf("    restart storm: a later task: %s after %.2f s; %d starts in all\n", pp_err_name(rc),
           ppt_now() - t0, later);
    if (rc != PP_EWORKER)
        fail_msg("restart storm: a task submitted after the storm returned %d (%s), expected "
                 "PP_EWORKER",
                 rc, pp_err_name(rc));
    pp_future_free(late);
    if (later - at_fail > 4)
        fail_msg("restart storm: %d more worker starts in %.1f s after giving up", later - at_fail,
                 ppt_now() - t0 - el);

    STAGE("restart storm: terminate");
    double t1 = ppt_now();
    assert_rc(pp_pool_terminate(pool), 0);
    pp_pool_destroy(pool);
    double td = ppt_now() - t1;
    if (td > 2.0)
        fail_msg("restart storm: terminate + destroy took %.2f s", td);
    munmap((void *)starts, 4096);
}

static void test_restart_recovers(void **state) {
    (void)state;
    _Atomic int *starts = shared_counter();
    pp_options_t opt;
    opts2(&opt);
    opt.initializer = init_crash_first_two;
    opt.initarg = (void *)starts;
    STAGE("restart recovers: create");
    double t0 = ppt_now();
    pp_pool_t *pool = mkpool(&opt);
    enum { N = 20 };
    pp_future_t *f[N];
    for (long i = 0; i < N; i++)
        assert_rc(pp_apply_async(pool, task_triple, &i, sizeof i, &f[i]), 0);
    STAGE("restart recovers: tasks");
    for (long i = 0; i < N; i++) {
        assert_int_equal(ppt_get_long(f[i], 10), 3 * i + 1);
        pp_future_free(f[i]);
    }
    printf("    initializer crashing in the first 2 workers: %d tasks done after %.2f s, %d "
           "worker starts\n",
           N, ppt_now() - t0, atomic_load(starts));
    /* the second slot comes back too, after its back-off */
    STAGE("restart recovers: both slots working");
    double end = ppt_now() + 5;
    while (atomic_load(starts) < 4 && ppt_now() < end)
        ppt_sleep_ms(10);
    if (atomic_load(starts) < 4)
        fail_msg("only %d worker starts 5 s after creation: a slot was never refilled",
                 atomic_load(starts));
    assert_int_equal(pp_pool_size(pool), 2);
    struct pid_id two[2];
    assert_rc(run_two(pool, 100, two), 0);
    if (same_id(&two[0], &two[1]))
        fail_msg("two concurrent tasks ran in the same worker: one slot is not working");
    ppt_finish(pool);
    munmap((void *)starts, 4096);
}

/* ========================================================================== */
/* 6. a parent with 8 busy threads keeps respawning workers                    */
/* ========================================================================== */

static atomic_bool g_stop_threads;
static pthread_mutex_t g_user_mutex = PTHREAD_MUTEX_INITIALIZER;
static _Atomic unsigned long g_thread_loops[8];

/* Under AddressSanitizer this thread does not call malloc: gcc 12's
 * libasan has no fork interceptor (it intercepts only vfork), so its
 * allocator's locks are not taken around fork(), and a zygote forked while
 * this thread is inside ASan's malloc can be born with an allocator lock
 * held for ever; its workers then hang in their first malloc (the likely
 * cause of one ASan CI run where task 0 was never done). glibc's malloc,
 * which the plain build tests here, takes its locks around fork. */
static void *busy_malloc(void *arg) {
    (void)arg;
    while (!atomic_load(&g_stop_threads)) {
#ifdef PPT_ASAN
        for (volatile int i = 0; i < 1000; i++) {
        }
        atomic_fetch_add(&g_thread_loops[0], 1);
        continue;
#endif
        void *p[16];
        for (int i = 0; i < 16; i++)
            p[i] = malloc((size_t)(16 << (i % 12)));
        for (int i = 0; i < 16; i++)
            free(p[i]);
        atomic_fetch_add(&g_thread_loops[0], 1);
    }
    return NULL;
}

static void *busy_stdio(void *arg) {
    FILE *devnull = arg;
    while (!atomic_load(&g_stop_threads)) {
        flockfile(devnull);
        for (int i = 0; i < 50; i++)
            fprintf(devnull, "holding the stdio lock %d\n", i);
        funlockfile(devnull);
        flockfile(stdout); /* stdout's lock too, briefly */
        funlockfile(stdout);
        atomic_fetch_add(&g_thread_loops[1], 1);
    }
    return NULL;
}

static void *busy_mutex(void *arg) {
    (void)arg;
    while (!atomic_load(&g_stop_threads)) {
        pthread_mutex_lock(&g_user_mutex);
        spin_us(500);
        pthread_mutex_unlock(&g_user_mutex);
        atomic_fetch_add(&g_thread_loops[2], 1);
    }
    return NULL;
}

static void *busy_spin(void *arg) {
    int k = (int)(intptr_t)arg;
    while (!atomic_load(&g_stop_threads)) {
        spin_us(200);
        atomic_fetch_add(&g_thread_loops[k], 1);
        sched_yield();
    }
    return NULL;
}

/* what a worker's task does: the heap, stdio (never the user's mutex: a
 * forked child inherits it locked, as POSIX says) */
static int task_heap_stdio(const void *arg, size_t len, pp_buf_t *out) {
    (void)arg;
    (void)len;
    char *p = malloc(1000);
    if (!p)
        return pp_buf_fail(out, "malloc failed");
    snprintf(p, 1000, "worker %d", (int)getpid());
    flockfile(stdout);
    funlockfile(stdout);
    free(p);
    struct pid_id id = my_id();
    return pp_buf_append(out, &id, sizeof id);
}

static void busy_threads_case(pp_start_t sm, const char *what) {
    FILE *devnull = fopen("/dev/null", "we");
    assert_non_null(devnull);
    atomic_store(&g_stop_threads, false);
    pthread_t th[8];
    assert_int_equal(pthread_create(&th[0], NULL, busy_malloc, NULL), 0);
    assert_int_equal(pthread_create(&th[1], NULL, busy_stdio, devnull), 0);
    assert_int_equal(pthread_create(&th[2], NULL, busy_mutex, NULL), 0);
    for (int i = 3; i < 8; i++)
        assert_int_equal(pthread_create(&th[i], NULL, busy_spin, (void *)(intptr_t)i), 0);

    pp_options_t opt;
    opts2(&opt);
    opt.start_method = sm;
    opt.max_tasks_per_child = 1;
    pp_pool_t *pool = NULL;
    fflush(stdout);
    STAGE("8 busy threads: pp_pool_create");
    double t0 = ppt_now();
    int rc = pp_pool_create(&pool, &opt);
    if (rc == -ENOTSUP && sm == PP_START_SPAWN) {
        printf("    %s: SKIPPED: pp_pool_create returned -ENOTSUP (spawn not in this build yet)\n",
               what);
    } else {
        if (rc != 0) {
            atomic_store(&g_stop_threads, true);
            for (int i = 0; i < 8; i++)
                pthread_join(th[i], NULL);
            fclose(devnull);
            fail_msg("%s: pp_pool_create returned %d (%s)", what, rc, pp_err_name(rc));
        }
        enum { N = 200 };
        pp_future_t *f[N];
        struct pid_id ids[N];
        for (int i = 0; i < N; i++)
            assert_rc(pp_apply_async(pool, task_heap_stdio, NULL, 0, &f[i]), 0);
        STAGE("8 busy threads: 200 tasks, one worker each");
        for (int i = 0; i < N; i++) {
            const void *d = NULL;
            size_t n = 0;
            double left = 60 - (ppt_now() - t0);
            rc = pp_future_get(f[i], left > 1 ? left : 1, &d, &n);
            if (rc == -ETIMEDOUT)
                fail_msg("%s: task %d not done after %.0f s: deadlock while respawning?", what, i,
                         ppt_now() - t0);
            if (rc != 0)
                fail_msg("%s: task %d failed %s: %s", what, i, pp_err_name(rc), err_or(f[i]));
            assert_int_equal(n, sizeof ids[i]);
            memcpy(&ids[i], d, sizeof ids[i]);
            pp_future_free(f[i]);
        }
        int distinct = 0;
        for (int i = 0; i < N; i++) {
            bool dup = false;
            for (int j = 0; j < i && !dup; j++)
                dup = same_id(&ids[i], &ids[j]);
            distinct += !dup;
        }
        double el = ppt_now() - t0;
        printf("    %s: %d tasks in %d worker processes in %.2f s\n", what, N, distinct, el);
        if (distinct != N)
            fail_msg("%s: max_tasks_per_child=1 but %d tasks ran in only %d processes", what, N,
                     distinct);
        STAGE("8 busy threads: finish");
        ppt_finish(pool);
    }
    atomic_store(&g_stop_threads, true);
    for (int i = 0; i < 8; i++)
        pthread_join(th[i], NULL);
    fclose(devnull);
    for (int i = 0; i < 8; i++)
        if (atomic_load(&g_thread_loops[i]) == 0)
            fail_msg("%s: busy thread %d never ran", what, i);
}

static void test_busy_threads_fork(void **state) {
    (void)state;
    busy_threads_case(PP_START_FORK, "8 busy threads (fork)");
}

static void test_busy_threads_forkserver(void **state) {
    (void)state;
    busy_threads_case(PP_START_FORKSERVER, "8 busy threads (forkserver)");
}

static void test_busy_threads_spawn(void **state) {
    (void)state;
    busy_threads_case(PP_START_SPAWN, "8 busy threads (spawn)");
}

/* ========================================================================== */
/* 7. max_memory_per_child                                                     */
/* ========================================================================== */

#define HOG_BYTES (64u << 20)

static int task_hog(const void *arg, size_t len, pp_buf_t *out) {
    (void)arg;
    (void)len;
    char *p = malloc(HOG_BYTES);
    if (!p)
        return pp_buf_fail(out, "malloc(64 MiB) failed");
    for (size_t i = 0; i < HOG_BYTES; i += 4096)
        p[i] = (char)i; /* touched and kept: a leak on purpose */
    struct pid_id id = my_id();
    return pp_buf_append(out, &id, sizeof id);
}

static void memory_case(size_t limit, bool expect_replaced) {
    pp_options_t opt;
    opts2(&opt);
    opt.max_memory_per_child = limit;
    pp_pool_t *pool = mkpool(&opt);
    void *r = NULL;
    size_t n = 0;
    STAGE("max_memory: the 64 MiB task");
    assert_rc(pp_apply(pool, task_hog, NULL, 0, &r, &n), 0);
    assert_int_equal(n, sizeof(struct pid_id));
    struct pid_id hog;
    memcpy(&hog, r, sizeof hog);
    free(r);
    STAGE("max_memory: the tasks after it");
    bool seen = false;
    for (int round = 0; round < 3; round++) {
        struct pid_id two[2];
        assert_rc(run_two(pool, 150, two), 0);
        seen |= same_id(&two[0], &hog) || same_id(&two[1], &hog);
        if (expect_replaced && seen)
            fail_msg("max_memory_per_child=%zu: after a task that left 64 MiB resident, a task "
                     "ran in the same worker %ld",
                     limit, hog.pid);
    }
    if (expect_replaced) {
        if (!wait_gone((pid_t)hog.pid, hog.start, 1.0))
            fail_msg("max_memory_per_child=%zu: worker %ld (64 MiB resident) still alive", limit,
                     hog.pid);
    } else if (!seen) {
        fail_msg("max_memory_per_child=0: the worker %ld that ran the 64 MiB task was replaced",
                 hog.pid);
    }
    assert_int_equal(pp_pool_size(pool), 2);
    ppt_finish(pool);
}

static void test_max_memory(void **state) {
    (void)state;
    memory_case(32u << 20, true);
}

static void test_max_memory_unlimited(void **state) {
    (void)state;
    memory_case(0, false);
}

/* ========================================================================== */
/* 8. retries                                                                  */
/* ========================================================================== */

static _Atomic int *arg_counter(const void *arg, size_t len) {
    _Atomic int *c = NULL;
    if (len == sizeof c)
        memcpy(&c, arg, sizeof c);
    return c;
}

static int task_die_first(const void *arg, size_t len, pp_buf_t *out) {
    _Atomic int *c = arg_counter(arg, len);
    if (!c)
        return pp_buf_fail(out, "bad arg");
    if (atomic_fetch_add(c, 1) == 0)
        raise(SIGKILL);
    long v = 4242;
    return pp_buf_append(out, &v, sizeof v);
}

static int task_die_always(const void *arg, size_t len, pp_buf_t *out) {
    _Atomic int *c = arg_counter(arg, len);
    if (!c)
        return pp_buf_fail(out, "bad arg");
    atomic_fetch_add(c, 1);
    raise(SIGKILL);
    return 0;
}

static int task_count_block(const void *arg, size_t len, pp_buf_t *out) {
    (void)out;
    _Atomic int *c = arg_counter(arg, len);
    if (c)
        atomic_fetch_add(c, 1);
    for (;;)
        pause();
    return 0;
}

static int run_counted(pp_pool_t *pool, pp_task_fn fn, _Atomic int *c, long *value,
                       double timeout) {
    atomic_store(c, 0);
    pp_future_t *f = NULL;
    assert_rc(pp_apply_async(pool, fn, &c, sizeof c, &f), 0);
    const void *d = NULL;
    size_t n = 0;
    int rc = pp_future_get(f, timeout, &d, &n);
    if (rc == 0 && value) {
        assert_int_equal(n, sizeof(long));
        memcpy(value, d, sizeof *value);
    }
    if (rc != 0 && rc != -ETIMEDOUT)
        printf("    (%s: %s)\n", pp_err_name(rc), err_or(f));
    pp_future_free(f);
    return rc;
}

static void test_retries(void **state) {
    (void)state;
    pp_options_t opt;
    opts2(&opt);
    opt.retries = 2;
    pp_pool_t *pool = mkpool(&opt);
    _Atomic int *c = pp_shm_alloc(pool, sizeof *c);
    assert_non_null(c);

    STAGE("retries=2: dies the first time");
    long v = 0;
    int rc = run_counted(pool, task_die_first, c, &v, 20);
    printf("    retries=2, dies on its first run: %s after %d runs\n", pp_err_name(rc),
           atomic_load(c));
    assert_rc(rc, 0);
    assert_int_equal(v, 4242);
    assert_int_equal(atomic_load(c), 2);

    STAGE("retries=2: always dies");
    rc = run_counted(pool, task_die_always, c, NULL, 20);
    printf("    retries=2, always dies: %s after %d runs\n", pp_err_name(rc), atomic_load(c));
    assert_rc(rc, PP_EWORKER);
    assert_int_equal(atomic_load(c), 3);
    assert_int_equal(pp_pool_size(pool), 2);
    ppt_finish(pool);

    /* not after a timeout */
    opt.task_timeout = TIMEOUT_S;
    pool = mkpool(&opt);
    c = pp_shm_alloc(pool, sizeof *c);
    assert_non_null(c);
    STAGE("retries=2: a timed-out task is not run again");
    rc = run_counted(pool, task_count_block, c, NULL, TIMEOUT_S + 5);
    if (rc == -ETIMEDOUT) {
        int runs = atomic_load(c); /* c dies with the pool */
        assert_rc(pp_pool_terminate(pool), 0);
        pp_pool_destroy(pool);
        fail_msg("retries=2, task_timeout %.1f s: a blocked task (alone in the pool) did not time "
                 "out within %.1f s (%d runs)",
                 TIMEOUT_S, TIMEOUT_S + 5, runs);
    }
    ppt_sleep_ms(300); /* a wrongly retried run would have started by now */
    printf("    retries=2, times out: %s after %d runs\n", pp_err_name(rc), atomic_load(c));
    assert_rc(rc, PP_ETASKTIMEOUT);
    assert_int_equal(atomic_load(c), 1);
    ppt_finish(pool);
}

static void test_retries_zero(void **state) {
    (void)state;
    pp_pool_t *pool = ppt_pool(2);
    _Atomic int *c = pp_shm_alloc(pool, sizeof *c);
    assert_non_null(c);
    STAGE("retries=0: always dies");
    int rc = run_counted(pool, task_die_always, c, NULL, 20);
    assert_rc(rc, PP_EWORKER);
    assert_int_equal(atomic_load(c), 1);
    STAGE("retries=0: dies the first time");
    rc = run_counted(pool, task_die_first, c, NULL, 20);
    assert_rc(rc, PP_EWORKER);
    assert_int_equal(atomic_load(c), 1);
    ppt_finish(pool);
}

/* ========================================================================== */

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup_snap, teardown_snap)

int main(void) {
    ppt_hang_guard(110);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);
    const struct CMUnitTest tests[] = {
        T(test_timeout_spinning),
        T(test_timeout_blocked),
        T(test_timeout_ignores_sigterm),
        T(test_timeout_alone_spinning),
        T(test_timeout_alone_blocked),
        T(test_timeout_in_map),
        T(test_parent_death_fork),
        T(test_parent_death_forkserver),
        T(test_parent_death_spawn),
        T(test_ctrlc_default_fork),
        T(test_ctrlc_default_forkserver),
        T(test_ctrlc_handled_terminate),
        T(test_untrusted_worker),
        T(test_restart_storm),
        T(test_restart_recovers),
        T(test_busy_threads_fork),
        T(test_busy_threads_forkserver),
        T(test_busy_threads_spawn),
        T(test_max_memory),
        T(test_max_memory_unlimited),
        T(test_retries),
        T(test_retries_zero),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
