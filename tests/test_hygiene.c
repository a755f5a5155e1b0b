/* test_hygiene.c - pools leave nothing behind: no fd, child, zombie, worker
 * process, thread, shared mapping or /dev/shm name survives pp_pool_destroy. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "procpool.h"
#include "helpers.h"

/* ---- tasks ---------------------------------------------------------------- */

struct proc_id {
    long pid;
    unsigned long long start;
};

/* reports the worker's pid and start time; sleeps arg ms first */
static int task_whoami(const void *arg, size_t len, pp_buf_t *out) {
    int ms = 0;
    if (len == sizeof ms)
        memcpy(&ms, arg, sizeof ms);
    ppt_sleep_ms(ms);
    struct proc_id id = {(long)getpid(), 0};
    ppt_proc_stat(getpid(), NULL, &id.start, NULL);
    return pp_buf_append(out, &id, sizeof id);
}

/* ---- snapshots ------------------------------------------------------------ */

enum { MAXFD = 4096, MAXSHM = 512, MAXPROC = 256 };

struct snap {
    int nfd;
    int fds[MAXFD];
    int nmaps; /* lines of /proc/self/maps naming memfd:, /dev/shm or procpool */
    int nshm;
    char shm[MAXSHM][NAME_MAX + 1];
    int threads; /* entries of /proc/self/task */
};

static int is_number(const char *s) {
    if (!*s)
        return 0;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return 0;
    return 1;
}

static void take_snap(struct snap *s) {
    memset(s, 0, sizeof *s);
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    int own = dirfd(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!is_number(e->d_name))
            continue;
        int fd = atoi(e->d_name);
        if (fd != own && s->nfd < MAXFD)
            s->fds[s->nfd++] = fd;
    }
    closedir(d);

    FILE *fp = fopen("/proc/self/maps", "re");
    assert_non_null(fp);
    char line[4096];
    while (fgets(line, sizeof line, fp))
        if (strstr(line, "memfd:") || strstr(line, "/dev/shm") || strstr(line, "procpool"))
            s->nmaps++;
    fclose(fp);

    d = opendir("/dev/shm");
    if (d) {
        while ((e = readdir(d)) != NULL) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || ppt_foreign_shm(e->d_name))
                continue;
            if (s->nshm < MAXSHM)
                snprintf(s->shm[s->nshm++], NAME_MAX + 1, "%s", e->d_name);
        }
        closedir(d);
    }

    d = opendir("/proc/self/task");
    assert_non_null(d);
    while ((e = readdir(d)) != NULL)
        if (is_number(e->d_name))
            s->threads++;
    closedir(d);
}

static int has_fd(const struct snap *s, int fd) {
    for (int i = 0; i < s->nfd; i++)
        if (s->fds[i] == fd)
            return 1;
    return 0;
}

static int has_shm(const struct snap *s, const char *name) {
    for (int i = 0; i < s->nshm; i++)
        if (!strcmp(s->shm[i], name))
            return 1;
    return 0;
}

/* Children of this process, found by scanning /proc/<pid>/stat for our pid as
 * the parent (works whether or not the kernel has /proc/self/task/x/children,
 * and covers children forked by any thread of this process). */
static int list_children(long *pids, int max) {
    int n = 0;
    pid_t me = getpid();
    DIR *d = opendir("/proc");
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!is_number(e->d_name))
            continue;
        pid_t pid = (pid_t)atoi(e->d_name);
        pid_t ppid = 0;
        if (ppt_proc_stat(pid, NULL, NULL, &ppid) == 0 && ppid == me && n < max)
            pids[n++] = pid;
    }
    closedir(d);
    return n;
}

/* The process (pid, start) no longer runs: gone, replaced by another process
 * with the same pid, or a zombie that is not our child. */
static int proc_gone(const struct proc_id *id) {
    char st = 0;
    unsigned long long start = 0;
    pid_t ppid = 0;
    if (ppt_proc_stat((pid_t)id->pid, &st, &start, &ppid) != 0)
        return 1;
    if (id->start && start != id->start)
        return 1;
    if ((st == 'Z' || st == 'X') && ppid != getpid())
        return 1;
    return 0;
}

/* What the library's processes were while the pool lived. */
struct procs {
    int n;
    struct proc_id p[MAXPROC];
};

static void add_proc(struct procs *ps, long pid, unsigned long long start) {
    for (int i = 0; i < ps->n; i++)
        if (ps->p[i].pid == pid)
            return;
    if (ps->n < MAXPROC)
        ps->p[ps->n++] = (struct proc_id){pid, start};
}

/* Record this process's children (zygote, workers) now. */
static void record_children(struct procs *ps) {
    long pids[MAXPROC];
    int n = list_children(pids, MAXPROC);
    for (int i = 0; i < n; i++) {
        unsigned long long start = 0;
        if (ppt_proc_stat((pid_t)pids[i], NULL, &start, NULL) == 0)
            add_proc(ps, pids[i], start);
    }
}

/* Run a few whoami tasks to learn the workers' pids (also grandchildren
 * forked by a zygote). */
static void record_workers(pp_pool_t *pool, struct procs *ps) {
    enum { N = 8 };
    pp_future_t *f[N];
    int ms = 30;
    for (int i = 0; i < N; i++)
        assert_rc(pp_apply_async(pool, task_whoami, &ms, sizeof ms, &f[i]), 0);
    for (int i = 0; i < N; i++) {
        const void *d = NULL;
        size_t n = 0;
        assert_rc(pp_future_get(f[i], 30, &d, &n), 0);
        assert_int_equal(n, sizeof(struct proc_id));
        struct proc_id id;
        memcpy(&id, d, sizeof id);
        assert_true(id.pid != (long)getpid());
        add_proc(ps, id.pid, id.start);
        pp_future_free(f[i]);
    }
    record_children(ps);
}

/* Right after pp_pool_destroy: no child left, no zombie, no process of the
 * pool still running. */
static void check_processes(const struct procs *ps, const char *what) {
    long kids[MAXPROC];
    int nk = list_children(kids, MAXPROC);
    char st = '?';
    if (nk > 0)
        ppt_proc_stat((pid_t)kids[0], &st, NULL, NULL);
    int status;
    errno = 0;
    pid_t w = waitpid(-1, &status, WNOHANG);
    int err = errno;
    if (nk > 0 || w >= 0) {
        /* clean up so that later tests do not fail for this one's leftovers */
        for (int i = 0; i < nk; i++)
            kill((pid_t)kids[i], SIGKILL);
        while (waitpid(-1, &status, 0) > 0) {
        }
        if (nk > 0)
            fail_msg("%s: %d child process(es) left after destroy, e.g. pid %ld in state %c", what,
                     nk, kids[0], st);
        if (w > 0)
            fail_msg("%s: a zombie child (pid %d) was left after destroy", what, (int)w);
        fail_msg("%s: a child process is still running after destroy", what);
    }
    if (err != ECHILD)
        fail_msg("%s: waitpid(-1, WNOHANG) gave errno %d, expected ECHILD", what, err);

    for (int i = 0; i < ps->n; i++) {
        /* destroy returns once every worker is gone; allow 1 s for a
         * grandchild's exit to be processed by the kernel */
        int gone = 0;
        for (int t = 0; t < 100 && !(gone = proc_gone(&ps->p[i])); t++)
            ppt_sleep_ms(10);
        if (!gone) {
            char st = '?';
            pid_t ppid = 0;
            ppt_proc_stat((pid_t)ps->p[i].pid, &st, NULL, &ppid);
            fail_msg("%s: pool process %ld still exists 1 s after destroy (state %c, parent %d)",
                     what, ps->p[i].pid, st, (int)ppid);
        }
    }
}

/* After destroy (and after freeing the futures): the same fds, mappings,
 * /dev/shm names and threads as before the pool was made. */
static void check_snap(const struct snap *before, const char *what) {
    static struct snap after_buf; /* large; static so failure paths need no free */
    struct snap *after = &after_buf;
    /* threads and /dev/shm may take a moment to settle */
    for (int t = 0; t < 50; t++) {
        take_snap(after);
        int shm_new = 0;
        for (int i = 0; i < after->nshm; i++)
            shm_new |= !has_shm(before, after->shm[i]);
        if (after->threads <= before->threads && !shm_new)
            break;
        ppt_sleep_ms(20);
    }
    for (int i = 0; i < after->nfd; i++) {
        if (!has_fd(before, after->fds[i])) {
            char path[64], target[PATH_MAX] = "?";
            snprintf(path, sizeof path, "/proc/self/fd/%d", after->fds[i]);
            ssize_t n = readlink(path, target, sizeof target - 1);
            if (n >= 0)
                target[n] = '\0';
            fail_msg("%s: fd %d (%s) leaked", what, after->fds[i], target);
        }
    }
    for (int i = 0; i < before->nfd; i++)
        if (!has_fd(after, before->fds[i]))
            fail_msg("%s: fd %d that existed before the pool was closed by it", what,
                     before->fds[i]);
    if (after->nmaps != before->nmaps)
        fail_msg("%s: %d shared mappings (memfd:, /dev/shm, procpool) before, %d after", what,
                 before->nmaps, after->nmaps);
    for (int i = 0; i < after->nshm; i++)
        if (!has_shm(before, after->shm[i]))
            fail_msg("%s: /dev/shm/%s left behind", what, after->shm[i]);
    if (after->threads != before->threads)
        fail_msg("%s: %d threads before the pool, %d after destroy", what, before->threads,
                 after->threads);
}

static struct snap *snap_new(void) {
    struct snap *s = malloc(sizeof *s);
    assert_non_null(s);
    take_snap(s);
    return s;
}

/* ---- scenarios ------------------------------------------------------------ */

static void test_close_join_destroy(void **state) {
    (void)state;
    struct snap *before = snap_new();
    struct procs ps = {0};
    pp_pool_t *pool = ppt_pool(2);
    record_workers(pool, &ps);
    enum { N = 20 };
    pp_future_t *f[N];
    for (long i = 0; i < N; i++)
        assert_rc(pp_apply_async(pool, ppt_task_double, &i, sizeof i, &f[i]), 0);
    assert_rc(pp_pool_close(pool), 0);
    assert_rc(pp_pool_join(pool), 0);
    pp_pool_destroy(pool);
    check_processes(&ps, "close+join+destroy");
    for (long i = 0; i < N; i++) {
        assert_int_equal(ppt_get_long(f[i], 0), 2 * i);
        pp_future_free(f[i]);
    }
    check_snap(before, "close+join+destroy");
    free(before);
}

static void test_destroy_running(void **state) {
    (void)state;
    struct snap *before = snap_new();
    struct procs ps = {0};
    pp_pool_t *pool = ppt_pool(2);
    record_workers(pool, &ps);
    enum { N = 5 };
    pp_future_t *f[N];
    int ms = 10000;
    for (int i = 0; i < N; i++)
        assert_rc(pp_apply_async(pool, task_whoami, &ms, sizeof ms, &f[i]), 0);
    ppt_sleep_ms(200);
    record_children(&ps);
    double t0 = ppt_now();
    pp_pool_destroy(pool);
    double dt = ppt_now() - t0;
    if (dt >= 2.0)
        fail_msg("destroy with running tasks took %.3f s, expected < 2 s", dt);
    check_processes(&ps, "destroy with running tasks");
    for (int i = 0; i < N; i++) {
        assert_rc(pp_future_get(f[i], 0, NULL, NULL), PP_ECANCELED);
        pp_future_free(f[i]);
    }
    check_snap(before, "destroy with running tasks");
    free(before);
}

static void test_terminate(void **state) {
    (void)state;
    struct snap *before = snap_new();
    struct procs ps = {0};
    pp_pool_t *pool = ppt_pool(2);
    record_workers(pool, &ps);
    enum { N = 4 };
    pp_future_t *f[N];
    int ms = 10000;
    for (int i = 0; i < N; i++)
        assert_rc(pp_apply_async(pool, task_whoami, &ms, sizeof ms, &f[i]), 0);
    ppt_sleep_ms(200);
    record_children(&ps);
    double t0 = ppt_now();
    assert_rc(pp_pool_terminate(pool), 0);
    assert_rc(pp_pool_join(pool), 0);
    if (ppt_now() - t0 >= 2.0)
        fail_msg("terminate+join took %.3f s, expected < 2 s", ppt_now() - t0);
    pp_pool_destroy(pool);
    check_processes(&ps, "terminate");
    for (int i = 0; i < N; i++) {
        assert_rc(pp_future_get(f[i], 0, NULL, NULL), PP_ECANCELED);
        pp_future_free(f[i]);
    }
    check_snap(before, "terminate");
    free(before);
}

static void test_crashed_worker(void **state) {
    (void)state;
    struct snap *before = snap_new();
    struct procs ps = {0};
    pp_pool_t *pool = ppt_pool(2);
    record_workers(pool, &ps);
    for (int k = 0; k < 2; k++) {
        pp_future_t *f = NULL;
        assert_rc(pp_apply_async(pool, ppt_task_abort, NULL, 0, &f), 0);
        assert_rc(pp_future_get(f, 30, NULL, NULL), PP_EWORKER);
        pp_future_free(f);
    }
    /* the replacements */
    record_workers(pool, &ps);
    ppt_finish(pool);
    check_processes(&ps, "crashed worker");
    check_snap(before, "crashed worker");
    free(before);
}

static void test_create_destroy_cycles(void **state) {
    (void)state;
    struct snap *before = snap_new();
    struct procs ps = {0};
    for (int c = 0; c < 20; c++) {
        pp_pool_t *pool = ppt_pool(2);
        record_children(&ps);
        long v = c;
        void *r = NULL;
        size_t n = 0;
        assert_rc(pp_apply(pool, ppt_task_double, &v, sizeof v, &r, &n), 0);
        assert_int_equal(*(long *)r, 2 * c);
        free(r);
        if (c % 2)
            ppt_finish(pool);
        else
            pp_pool_destroy(pool);
    }
    check_processes(&ps, "20 create/destroy cycles");
    check_snap(before, "20 create/destroy cycles");
    free(before);
}

static void test_two_pools(void **state) {
    (void)state;
    struct snap *before = snap_new();
    struct procs ps = {0};
    pp_pool_t *a = ppt_pool(2);
    pp_pool_t *b = ppt_pool(2);
    assert_true(a != b);
    record_workers(a, &ps);
    record_workers(b, &ps);

    /* the pools have different workers */
    enum { N = 100 };
    pp_future_t *fa[N], *fb[N];
    for (long i = 0; i < N; i++) {
        long va = i, vb = 10000 + i;
        assert_rc(pp_apply_async(a, ppt_task_double, &va, sizeof va, &fa[i]), 0);
        assert_rc(pp_apply_async(b, ppt_task_double, &vb, sizeof vb, &fb[i]), 0);
    }
    for (long i = 0; i < N; i++) {
        assert_int_equal(ppt_get_long(fa[i], 30), 2 * i);
        assert_int_equal(ppt_get_long(fb[i], 30), 2 * (10000 + i));
        pp_future_free(fa[i]);
        pp_future_free(fb[i]);
    }
    int ms = 0;
    pp_future_t *wa = NULL, *wb = NULL;
    assert_rc(pp_apply_async(a, task_whoami, &ms, sizeof ms, &wa), 0);
    assert_rc(pp_apply_async(b, task_whoami, &ms, sizeof ms, &wb), 0);
    const void *da = NULL, *db = NULL;
    assert_rc(pp_future_get(wa, 30, &da, NULL), 0);
    assert_rc(pp_future_get(wb, 30, &db, NULL), 0);
    assert_true(((const struct proc_id *)da)->pid != ((const struct proc_id *)db)->pid);
    pp_future_free(wa);
    pp_future_free(wb);

    /* destroying one leaves the other working */
    ppt_finish(a);
    for (long i = 0; i < 10; i++) {
        void *r = NULL;
        size_t n = 0;
        assert_rc(pp_apply(b, ppt_task_double, &i, sizeof i, &r, &n), 0);
        assert_int_equal(*(long *)r, 2 * i);
        free(r);
    }
    ppt_finish(b);
    check_processes(&ps, "two pools");
    check_snap(before, "two pools");
    free(before);
}

int main(void) {
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    ppt_hang_guard(60);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_close_join_destroy),
        cmocka_unit_test(test_destroy_running),
        cmocka_unit_test(test_terminate),
        cmocka_unit_test(test_crashed_worker),
        cmocka_unit_test(test_create_destroy_cycles),
        cmocka_unit_test(test_two_pools),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
