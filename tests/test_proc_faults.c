/* test_proc_faults.c - the pool when the process primitives it relies on
 * fail: pidfd_open unavailable (ENOSYS, EMFILE), pidfd_send_signal refused
 * (EPERM), a stopped (SIGSTOP) fork server or workers, a fork server that
 * cannot fork (RLIMIT_NPROC).
 *
 * Each case runs in a forked child of the test process, so that the fault
 * can be made real for the library: a seccomp filter installed in that
 * child (inherited by its threads, the zygote and the workers, across exec
 * too) makes the kernel refuse the system call; a limit set there binds
 * only that child. The child reports through a shared page and its exit
 * status; the parent kills it if it outlives a generous cap, so a hang
 * fails the test (naming the stage it hung in) instead of the whole run.
 *
 * Bounds asserted here carry slack for a loaded 2-core machine: the header
 * documents terminate/destroy/join-after-terminate as under 2 s; the older
 * cases require under 6 s, the stopped-workers backlog cases the documented
 * 2 s itself; all print what they measured. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "procpool.h"
#include "helpers.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif

#if defined(__x86_64__)
#define PPT_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define PPT_AUDIT_ARCH AUDIT_ARCH_AARCH64
#elif defined(__i386__)
#define PPT_AUDIT_ARCH AUDIT_ARCH_I386
#endif

#define CHILD_CAP_S 25.0 /* a case that runs longer than this hung */
#define WAIT_S 15.0      /* bound for each future the cases wait for */
#define BOUND_S 6.0      /* terminate/join/destroy: documented 2 s, slack for CI */

/* ---- the child's report --------------------------------------------------- */

typedef struct {
    char stage[160];
    char msg[1024];
} report_t;

static report_t *g_rep; /* MAP_SHARED: written by the child, read by the test */

static void stage(const char *fmt, ...) PP_PRINTF(1, 2);
static void stage(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_rep->stage, sizeof g_rep->stage, fmt, ap);
    va_end(ap);
}

static __attribute__((noreturn)) void child_fail(int line, const char *fmt, ...) PP_PRINTF(2, 3);
static __attribute__((noreturn)) void child_fail(int line, const char *fmt, ...) {
    char buf[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    snprintf(g_rep->msg, sizeof g_rep->msg, "line %d: %s", line, buf);
    _exit(1);
}

#define CK(cond)                                                                                   \
    do {                                                                                           \
        if (!(cond))                                                                               \
            child_fail(__LINE__, "check failed: %s", #cond);                                       \
    } while (0)

#define CKRC(actual, expected)                                                                     \
    do {                                                                                           \
        int ck_a_ = (int)(actual), ck_e_ = (int)(expected);                                        \
        if (ck_a_ != ck_e_)                                                                        \
            child_fail(__LINE__, "%s returned %d (%s), expected %d (%s)", #actual, ck_a_,          \
                       pp_err_name(ck_a_), ck_e_, pp_err_name(ck_e_));                             \
    } while (0)

/* Run fn(arg) in a child; fail the test if it fails, dies or hangs. */
static void in_child(void (*fn)(const void *), const void *arg, const char *what) {
    memset(g_rep, 0, sizeof *g_rep);
    snprintf(g_rep->stage, sizeof g_rep->stage, "start");
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        fn(arg);
        _exit(0);
    }
    double t0 = ppt_now();
    int st = 0;
    pid_t r;
    while ((r = waitpid(pid, &st, WNOHANG)) == 0 && ppt_now() - t0 < CHILD_CAP_S)
        ppt_sleep_ms(10);
    if (r == 0) {
        kill(pid, SIGKILL); /* its pool's processes follow (PDEATHSIG) */
        waitpid(pid, &st, 0);
        fail_msg("%s: hung for %.0f s in stage: %s", what, CHILD_CAP_S, g_rep->stage);
    }
    printf("    %s: %.2f s\n", what, ppt_now() - t0);
    if (WIFSIGNALED(st))
        fail_msg("%s: killed by signal %d in stage: %s", what, WTERMSIG(st), g_rep->stage);
    if (WEXITSTATUS(st) != 0)
        fail_msg("%s: %s (stage: %s)", what, g_rep->msg, g_rep->stage);
}

/* ---- faults --------------------------------------------------------------- */

enum fault { F_NONE, F_NO_PIDFD, F_PIDFD_EMFILE, F_NO_SIGNAL };

static const char *fault_name(enum fault f) {
    switch (f) {
    case F_NO_PIDFD: return "pidfd_open ENOSYS";
    case F_PIDFD_EMFILE: return "pidfd_open EMFILE";
    case F_NO_SIGNAL: return "pidfd_send_signal EPERM";
    default: return "no fault";
    }
}

/* Make the kernel answer syscall nr with -err in this thread and every
 * thread and process it starts from now on. */
static void refuse_syscall(long nr, int err) {
#ifdef PPT_AUDIT_ARCH
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, PPT_AUDIT_ARCH, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)nr, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ((unsigned)err & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = (unsigned short)(sizeof f / sizeof f[0]), .filter = f};
    CK(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0);
    CK(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0);
#else
    (void)nr;
    (void)err;
    child_fail(__LINE__, "no seccomp architecture constant for this machine");
#endif
}

static void apply_fault(enum fault f) {
    if (f == F_NO_PIDFD || f == F_PIDFD_EMFILE) {
        int e = f == F_NO_PIDFD ? ENOSYS : EMFILE;
        refuse_syscall(SYS_pidfd_open, e);
        errno = 0;
        CK(syscall(SYS_pidfd_open, getpid(), 0) == -1 && errno == e); /* the filter works */
    } else if (f == F_NO_SIGNAL) {
        refuse_syscall(SYS_pidfd_send_signal, EPERM);
        int fd = (int)syscall(SYS_pidfd_open, getpid(), 0);
        CK(fd >= 0);
        errno = 0;
        CK(syscall(SYS_pidfd_send_signal, fd, 0, NULL, 0) == -1 && errno == EPERM);
        close(fd);
    }
}

/* ---- /proc ---------------------------------------------------------------- */

static bool comm_is(pid_t pid, const char *name) {
    char path[64], buf[32];
    snprintf(path, sizeof path, "/proc/%d/comm", (int)pid);
    FILE *fp = fopen(path, "re");
    if (!fp)
        return false;
    bool ok = fgets(buf, sizeof buf, fp) != NULL;
    fclose(fp);
    if (!ok)
        return false;
    buf[strcspn(buf, "\n")] = '\0';
    return strcmp(buf, name) == 0;
}

/* Descendants of root named comm (depth-first), at most max. */
static int find_procs(pid_t root, const char *comm, pid_t *out, int max) {
    pid_t kids[64];
    int nk = ppt_children_of(root, kids, 64), n = 0;
    for (int i = 0; i < nk && n < max; i++) {
        if (comm_is(kids[i], comm))
            out[n++] = kids[i];
        n += find_procs(kids[i], comm, out + n, max - n);
    }
    return n;
}

static int count_children(void) {
    pid_t kids[64];
    return ppt_children_of(getpid(), kids, 64);
}

/* Wait (bounded) until n processes named comm descend from us; returns how many. */
static int wait_procs(const char *comm, pid_t *out, int n) {
    double t0 = ppt_now();
    int got;
    while ((got = find_procs(getpid(), comm, out, n)) < n && ppt_now() - t0 < WAIT_S)
        ppt_sleep_ms(5);
    return got;
}

static void stop_all(const pid_t *p, int n) {
    for (int i = 0; i < n; i++)
        kill(p[i], SIGSTOP);
    /* wait until each is really stopped ('T') */
    for (int i = 0; i < n; i++) {
        double t0 = ppt_now();
        char st = 0;
        while (ppt_proc_stat(p[i], &st, NULL, NULL) == 0 && st != 'T' && st != 't' &&
               ppt_now() - t0 < WAIT_S)
            ppt_sleep_ms(2);
    }
}

/* ---- tasks ---------------------------------------------------------------- */

static int task_triple(const void *arg, size_t len, pp_buf_t *out) {
    long v;
    if (len != sizeof v)
        return pp_buf_fail(out, "bad length %zu", len);
    memcpy(&v, arg, sizeof v);
    v *= 3;
    return pp_buf_append(out, &v, sizeof v);
}

/* arg: the address of a counter in the pool's shared memory. Counts itself
 * in, then never returns. */
static int task_hang(const void *arg, size_t len, pp_buf_t *out) {
    (void)out;
    _Atomic long *ctr = NULL;
    if (len == sizeof ctr) {
        memcpy(&ctr, arg, sizeof ctr);
        atomic_fetch_add(ctr, 1);
    }
    for (;;)
        pause();
    return 0;
}

/* ---- the cases ------------------------------------------------------------ */

struct params {
    enum fault fault;
    pp_start_t sm;
    bool stop_workers, stop_zygote;
};

static const char *sm_name(pp_start_t sm) {
    return sm == PP_START_FORK ? "fork" : sm == PP_START_FORKSERVER ? "forkserver" : "spawn";
}

static pp_pool_t *make_pool(pp_start_t sm, int n, double task_timeout) {
    pp_options_t opt;
    pp_options_init(&opt);
    opt.processes = n;
    opt.start_method = sm;
    opt.task_timeout = task_timeout;
    opt.shm_size = 1u << 20;
    pp_pool_t *pool = NULL;
    stage("pp_pool_create");
    CKRC(pp_pool_create(&pool, &opt), 0);
    CK(pool != NULL);
    return pool;
}

static void check_triples(pp_pool_t *pool, int n) {
    for (long i = 0; i < n; i++) {
        void *res = NULL;
        size_t len = 0;
        stage("pp_apply #%ld", i);
        CKRC(pp_apply(pool, task_triple, &i, sizeof i, &res, &len), 0);
        CK(len == sizeof(long));
        long v;
        memcpy(&v, res, sizeof v);
        free(res);
        CK(v == 3 * i);
    }
}

/* After destroy: no process of ours left, the fds as before. */
static void check_clean(int fds_before) {
    stage("checking that nothing is left");
    double t0 = ppt_now();
    while (count_children() > 0 && ppt_now() - t0 < 1.0)
        ppt_sleep_ms(5);
    int kids = count_children();
    if (kids != 0)
        child_fail(__LINE__, "%d child process(es) left after pp_pool_destroy", kids);
    int fds = ppt_fd_count();
    if (fds != fds_before)
        child_fail(__LINE__, "%d fds after pp_pool_destroy, %d before", fds, fds_before);
}

/* Work, a crash that must be reported with its signal, work again, then an
 * orderly close + join. */
static void case_crash(const void *arg) {
    const struct params *p = arg;
    apply_fault(p->fault);
    int fds = ppt_fd_count();
    pp_pool_t *pool = make_pool(p->sm, 2, 0);
    check_triples(pool, 4);

    pp_future_t *f = NULL;
    stage("a crashing task");
    CKRC(pp_apply_async(pool, ppt_task_segv, NULL, 0, &f), 0);
    CKRC(pp_future_wait(f, WAIT_S), 0);
    CKRC(pp_future_get(f, 0, NULL, NULL), PP_EWORKER);
    const char *msg = pp_future_error(f);
    CK(msg != NULL);
    if (!strstr(msg, "SIGSEGV"))
        child_fail(__LINE__, "the crash's message does not name the signal: %s", msg);
    pp_future_free(f);

    check_triples(pool, 8); /* the slot was refilled */

    stage("pp_pool_close + pp_pool_join");
    CKRC(pp_pool_close(pool), 0);
    double t0 = ppt_now();
    CKRC(pp_pool_join(pool), 0);
    CK(ppt_now() - t0 < BOUND_S);
    stage("pp_pool_destroy");
    pp_pool_destroy(pool);
    check_clean(fds);
}

/* A task past task_timeout: its worker must be killed and replaced. */
static void case_timeout(const void *arg) {
    const struct params *p = arg;
    apply_fault(p->fault);
    int fds = ppt_fd_count();
    pp_pool_t *pool = make_pool(p->sm, 2, 0.3);
    pp_future_t *f = NULL;
    stage("a task past its timeout");
    CKRC(pp_apply_async(pool, task_hang, NULL, 0, &f), 0);
    CKRC(pp_future_wait(f, WAIT_S), 0);
    CKRC(pp_future_get(f, 0, NULL, NULL), PP_ETASKTIMEOUT);
    pp_future_free(f);
    check_triples(pool, 4);
    stage("pp_pool_destroy");
    double t0 = ppt_now();
    pp_pool_destroy(pool);
    CK(ppt_now() - t0 < BOUND_S);
    check_clean(fds);
}

/* Terminate with every worker busy in a task that never returns (and,
 * as asked, the workers and the zygote stopped): bounded, every future
 * PP_ECANCELED, join after terminate bounded, nothing left. */
static void case_terminate(const void *arg) {
    const struct params *p = arg;
    apply_fault(p->fault);
    int fds = ppt_fd_count();
    pp_pool_t *pool = make_pool(p->sm, 2, 0);
    _Atomic long *ctr = pp_shm_alloc(pool, sizeof *ctr);
    CK(ctr != NULL);
    pp_future_t *f[4] = {0};
    stage("submitting tasks that never return");
    for (int i = 0; i < 4; i++)
        CKRC(pp_apply_async(pool, task_hang, &ctr, sizeof ctr, &f[i]), 0);
    stage("waiting for both workers to run one");
    double t0 = ppt_now();
    while (atomic_load(ctr) < 2 && ppt_now() - t0 < WAIT_S)
        ppt_sleep_ms(2);
    CK(atomic_load(ctr) == 2);
    if (p->stop_workers) {
        pid_t w[2];
        stage("finding the workers");
        CK(wait_procs("procpool-worker", w, 2) == 2);
        stop_all(w, 2);
    }
    if (p->stop_zygote) {
        pid_t z;
        stage("finding the zygote");
        CK(wait_procs("procpool-zygote", &z, 1) == 1);
        stop_all(&z, 1);
    }
    stage("pp_pool_terminate");
    t0 = ppt_now();
    CKRC(pp_pool_terminate(pool), 0);
    double dt = ppt_now() - t0;
    printf("      terminate took %.3f s\n", dt);
    fflush(stdout);
    if (dt > BOUND_S)
        child_fail(__LINE__, "pp_pool_terminate took %.2f s", dt);
    for (int i = 0; i < 4; i++) {
        CKRC(pp_future_get(f[i], 0, NULL, NULL), PP_ECANCELED);
        pp_future_free(f[i]);
    }
    stage("pp_pool_join after terminate");
    t0 = ppt_now();
    CKRC(pp_pool_join(pool), 0);
    CK(ppt_now() - t0 < BOUND_S);
    stage("pp_pool_destroy after terminate");
    t0 = ppt_now();
    pp_pool_destroy(pool);
    CK(ppt_now() - t0 < BOUND_S);
    check_clean(fds);
}

/* destroy straight away (no terminate first), workers busy and stopped. */
static void case_destroy(const void *arg) {
    const struct params *p = arg;
    apply_fault(p->fault);
    int fds = ppt_fd_count();
    pp_pool_t *pool = make_pool(p->sm, 2, 0);
    _Atomic long *ctr = pp_shm_alloc(pool, sizeof *ctr);
    CK(ctr != NULL);
    pp_future_t *f[2] = {0};
    for (int i = 0; i < 2; i++)
        CKRC(pp_apply_async(pool, task_hang, &ctr, sizeof ctr, &f[i]), 0);
    stage("waiting for both workers to run one");
    double t0 = ppt_now();
    while (atomic_load(ctr) < 2 && ppt_now() - t0 < WAIT_S)
        ppt_sleep_ms(2);
    CK(atomic_load(ctr) == 2);
    pid_t w[3];
    int n = 0;
    if (p->stop_workers) {
        CK(wait_procs("procpool-worker", w, 2) == 2);
        n = 2;
    }
    if (p->stop_zygote) {
        CK(wait_procs("procpool-zygote", w + n, 1) == 1);
        n++;
    }
    stop_all(w, n);
    stage("pp_pool_destroy");
    t0 = ppt_now();
    pp_pool_destroy(pool);
    double dt = ppt_now() - t0;
    printf("      destroy took %.3f s\n", dt);
    fflush(stdout);
    if (dt > BOUND_S)
        child_fail(__LINE__, "pp_pool_destroy took %.2f s", dt);
    for (int i = 0; i < 2; i++) {
        CKRC(pp_future_get(f[i], 0, NULL, NULL), PP_ECANCELED);
        pp_future_free(f[i]);
    }
    check_clean(fds);
}

/* No room for a worker process (RLIMIT_NPROC): create must fail with the
 * errno of the fork that failed, whoever made it (under FORKSERVER the
 * zygote), and leave nothing behind. */
static void case_nproc(const void *arg) {
    const struct params *p = arg;
    stage("becoming an unprivileged user");
    if (geteuid() == 0) { /* root ignores RLIMIT_NPROC: be someone with no processes */
        uid_t uid = (uid_t)(60000 + getpid() % 5000);
        CK(setresgid(uid, uid, uid) == 0);
        CK(setresuid(uid, uid, uid) == 0);
        CK(prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) == 0); /* /proc/self stays readable */
    }
    /* this thread, the pool's callback and supervisor threads and the
     * zygote fit; a worker does not */
    struct rlimit rl = {4, 4};
    CK(setrlimit(RLIMIT_NPROC, &rl) == 0);
    int fds = ppt_fd_count();
    pp_options_t opt;
    pp_options_init(&opt);
    opt.processes = 2;
    opt.start_method = p->sm;
    opt.shm_size = 1u << 20;
    pp_pool_t *pool = (pp_pool_t *)&opt; /* must be set to NULL */
    stage("pp_pool_create under RLIMIT_NPROC");
    int rc = pp_pool_create(&pool, &opt);
    if (rc == 0)
        pp_pool_destroy(pool);
    CKRC(rc, -EAGAIN);
    CK(pool == NULL);
    check_clean(fds);
}

/* The zygote stopped: a crash must still be reported (with an unknown
 * status if the zygote cannot say), work must go on on the workers that
 * are left rather than wait in the ring of a slot whose replacement the
 * zygote never forks, and close + join must still end. */
static void case_zygote_crash(const void *arg) {
    const struct params *p = arg;
    apply_fault(p->fault);
    int fds = ppt_fd_count();
    pp_pool_t *pool = make_pool(p->sm, 2, 0);
    check_triples(pool, 2);
    pid_t z;
    stage("finding the zygote");
    CK(wait_procs("procpool-zygote", &z, 1) == 1);
    stop_all(&z, 1);

    pp_future_t *f = NULL;
    stage("a crashing task, zygote stopped");
    CKRC(pp_apply_async(pool, ppt_task_segv, NULL, 0, &f), 0);
    CKRC(pp_future_wait(f, WAIT_S), 0);
    CKRC(pp_future_get(f, 0, NULL, NULL), PP_EWORKER);
    pp_future_free(f);

    enum { N = 16 };
    pp_future_t *g[N];
    long in[N];
    stage("tasks after the crash, zygote stopped");
    for (int i = 0; i < N; i++) {
        in[i] = i;
        CKRC(pp_apply_async(pool, task_triple, &in[i], sizeof in[i], &g[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        stage("task %d after the crash, zygote stopped", i);
        CKRC(pp_future_wait(g[i], WAIT_S), 0);
        const void *d = NULL;
        size_t n = 0;
        CKRC(pp_future_get(g[i], 0, &d, &n), 0);
        long v;
        CK(n == sizeof v);
        memcpy(&v, d, sizeof v);
        CK(v == 3 * i);
        pp_future_free(g[i]);
    }
    stage("pp_pool_close + pp_pool_join, zygote stopped");
    CKRC(pp_pool_close(pool), 0);
    double t0 = ppt_now();
    CKRC(pp_pool_join(pool), 0);
    double dt = ppt_now() - t0;
    printf("      join took %.3f s\n", dt);
    fflush(stdout);
    CK(dt < BOUND_S);
    stage("pp_pool_destroy");
    pp_pool_destroy(pool);
    check_clean(fds);
}

/* ---- tests ---------------------------------------------------------------- */

static void run_case(void (*fn)(const void *), const struct params *p, const char *what) {
    char name[160];
    snprintf(name, sizeof name, "%s, %s, %s%s%s", what, sm_name(p->sm), fault_name(p->fault),
             p->stop_workers ? ", workers stopped" : "", p->stop_zygote ? ", zygote stopped" : "");
    in_child(fn, p, name);
}

static const pp_start_t g_methods[] = {PP_START_FORK, PP_START_FORKSERVER, PP_START_SPAWN};

/* Item 3: no pidfd_open (kernels before 5.3, seccomp profiles, valgrind;
 * EMFILE when out of descriptors). Deaths must still be seen, with their
 * status, and join/terminate/destroy must return. */
static void test_no_pidfd_crash(void **state) {
    (void)state;
    for (int i = 0; i < 3; i++) {
        struct params p = {.fault = F_NO_PIDFD, .sm = g_methods[i]};
        run_case(case_crash, &p, "crash");
    }
    struct params e = {.fault = F_PIDFD_EMFILE, .sm = PP_START_FORK};
    run_case(case_crash, &e, "crash");
}

static void test_no_pidfd_terminate(void **state) {
    (void)state;
    for (int i = 0; i < 3; i++) {
        struct params p = {.fault = F_NO_PIDFD, .sm = g_methods[i]};
        run_case(case_terminate, &p, "terminate");
        p.stop_workers = true;
        run_case(case_terminate, &p, "terminate");
        run_case(case_destroy, &p, "destroy");
    }
}

static void test_no_pidfd_timeout(void **state) {
    (void)state;
    for (int i = 0; i < 3; i++) {
        struct params p = {.fault = F_NO_PIDFD, .sm = g_methods[i]};
        run_case(case_timeout, &p, "timeout");
    }
}

/* Item 4: pidfd_send_signal refused (EPERM under some seccomp profiles).
 * Terminate, destroy and task timeouts must still reach the workers. */
static void test_signal_refused_terminate(void **state) {
    (void)state;
    for (int i = 0; i < 3; i++) {
        struct params p = {.fault = F_NO_SIGNAL, .sm = g_methods[i]};
        run_case(case_terminate, &p, "terminate");
        p.stop_workers = true;
        run_case(case_terminate, &p, "terminate");
    }
}

static void test_signal_refused_destroy(void **state) {
    (void)state;
    for (int i = 0; i < 3; i++) {
        struct params p = {.fault = F_NO_SIGNAL, .sm = g_methods[i], .stop_workers = true};
        run_case(case_destroy, &p, "destroy");
    }
}

static void test_signal_refused_timeout(void **state) {
    (void)state;
    for (int i = 0; i < 3; i++) {
        struct params p = {.fault = F_NO_SIGNAL, .sm = g_methods[i]};
        run_case(case_timeout, &p, "timeout");
    }
}

/* The harness itself, with no fault: every case passes on a healthy system. */
static void test_no_fault(void **state) {
    (void)state;
    for (int i = 0; i < 3; i++) {
        struct params p = {.fault = F_NONE, .sm = g_methods[i]};
        run_case(case_crash, &p, "crash");
        p.stop_workers = true;
        run_case(case_terminate, &p, "terminate");
    }
}

/* Item 6: a zygote that cannot fork fails create with its errno, as a
 * failed fork does under FORK and SPAWN. */
static void test_nproc_create_fails(void **state) {
    (void)state;
    for (int i = 0; i < 3; i++) {
        struct params p = {.fault = F_NONE, .sm = g_methods[i]};
        run_case(case_nproc, &p, "RLIMIT_NPROC");
    }
}

/* Item 5: a stopped zygote (SIGSTOP). */
static void test_stopped_zygote_crash(void **state) {
    (void)state;
    for (int i = 0; i < 2; i++) {
        struct params p = {.fault = F_NONE, .sm = g_methods[i]};
        run_case(case_zygote_crash, &p, "crash");
    }
}

/* Terminate and destroy with the zygote and every worker stopped, also
 * when pidfds cannot signal or do not exist. */
static void test_stopped_zygote_terminate(void **state) {
    (void)state;
    const enum fault faults[] = {F_NONE, F_NO_SIGNAL, F_NO_PIDFD};
    for (int i = 0; i < 2; i++) {
        for (int k = 0; k < 3; k++) {
            struct params p = {
                .fault = faults[k], .sm = g_methods[i], .stop_workers = true, .stop_zygote = true};
            run_case(case_terminate, &p, "terminate");
            run_case(case_destroy, &p, "destroy");
        }
    }
}

/* ---- every worker stopped mid-task, work queued behind ------------------- */

#define DOC_BOUND_S 2.0      /* the header's bound for terminate, destroy, join after terminate */
#define BIG_ARG (100 * 1024) /* over the 64 KiB that travel inline: a memfd */

enum op { OP_TERMINATE, OP_DESTROY };

struct backlog_params {
    pp_start_t sm;
    bool stop_zygote;
    enum op op;
};

static int task_double_item(const void *arg, size_t len, pp_buf_t *out) {
    return task_triple(arg, len, out);
}

/* The call must have been quick: within the documented bound. */
static void within_bound(double t0, const char *what) {
    double dt = ppt_now() - t0;
    printf("      %s took %.3f s\n", what, dt);
    fflush(stdout);
    if (dt >= DOC_BOUND_S)
        child_fail(__LINE__, "%s took %.2f s, documented bound %.1f s", what, dt, DOC_BOUND_S);
}

/* A process that is still there and not a zombie. */
static bool alive(pid_t pid) {
    char st = 0;
    return ppt_proc_stat(pid, &st, NULL, NULL) == 0 && st != 'Z' && st != 'X';
}

/* Both workers stopped (SIGSTOP) in the middle of a task that never
 * returns, small and large (memfd) arguments, a map and an imap queued
 * behind them, and under FORK/FORKSERVER the zygote stopped too if asked;
 * then terminate (and join after it, and destroy) or destroy straight
 * away, each within the documented 2 s. Every task and item fails
 * PP_ECANCELED, later submissions PP_ECLOSED, and afterwards no worker,
 * no zombie and no descriptor of the pool is left. */
static void case_backlog(const void *arg) {
    const struct backlog_params *p = arg;
    int fds = ppt_fd_count();
    pp_pool_t *pool = make_pool(p->sm, 2, 0);
    _Atomic long *ctr = pp_shm_alloc(pool, sizeof *ctr);
    CK(ctr != NULL);
    enum { NHANG = 2, NSMALL = 6, NBIG = 3, NTASK = NHANG + NSMALL + NBIG, NITEMS = 1000 };
    pp_future_t *f[NTASK] = {0};
    stage("tasks that never return, one per worker");
    for (int i = 0; i < NHANG; i++)
        CKRC(pp_apply_async(pool, task_hang, &ctr, sizeof ctr, &f[i]), 0);
    double t0 = ppt_now();
    while (atomic_load(ctr) < NHANG && ppt_now() - t0 < WAIT_S)
        ppt_sleep_ms(2);
    CK(atomic_load(ctr) == NHANG);

    pid_t w[3];
    stage("finding and stopping the workers");
    CK(wait_procs("procpool-worker", w, 2) == 2);
    int nstop = 2;
    if (p->stop_zygote) {
        stage("finding the zygote");
        CK(wait_procs("procpool-zygote", w + 2, 1) == 1);
        nstop = 3;
    }
    stop_all(w, nstop);

    stage("queueing work behind the stopped workers");
    long small = 7;
    for (int i = NHANG; i < NHANG + NSMALL; i++)
        CKRC(pp_apply_async(pool, task_triple, &small, sizeof small, &f[i]), 0);
    unsigned char *big = calloc(1, BIG_ARG);
    CK(big != NULL);
    for (int i = NHANG + NSMALL; i < NTASK; i++)
        CKRC(pp_apply_async(pool, task_triple, big, BIG_ARG, &f[i]), 0);
    free(big);
    long *items = malloc(NITEMS * sizeof *items), *res = malloc(NITEMS * sizeof *res);
    CK(items && res);
    for (long i = 0; i < NITEMS; i++)
        items[i] = i;
    pp_future_t *mf = NULL;
    CKRC(pp_map_async(pool, task_double_item, items, sizeof *items, NITEMS, res, sizeof *res, 0,
                      &mf),
         0);
    pp_iter_t *it = NULL;
    CKRC(pp_imap(pool, task_double_item, items, sizeof *items, NITEMS, PP_CHUNK_AUTO, &it), 0);

    if (p->op == OP_TERMINATE) {
        stage("pp_pool_terminate");
        t0 = ppt_now();
        CKRC(pp_pool_terminate(pool), 0);
        within_bound(t0, "terminate");
        pp_future_t *g = NULL;
        CKRC(pp_apply_async(pool, task_triple, &small, sizeof small, &g), PP_ECLOSED);
        CK(g == NULL);
        stage("pp_pool_join after terminate");
        t0 = ppt_now();
        CKRC(pp_pool_join(pool), 0);
        within_bound(t0, "join after terminate");
    }
    stage("pp_pool_destroy");
    t0 = ppt_now();
    pp_pool_destroy(pool);
    within_bound(t0, p->op == OP_TERMINATE ? "destroy after terminate" : "destroy");

    stage("reading the futures after destroy");
    for (int i = 0; i < NTASK; i++) {
        CKRC(pp_future_get(f[i], 0, NULL, NULL), PP_ECANCELED);
        CK(pp_future_error(f[i]) != NULL);
        pp_future_free(f[i]);
    }
    CKRC(pp_future_get(mf, 0, NULL, NULL), PP_ECANCELED);
    pp_future_free(mf);
    stage("reading the iterator after destroy");
    int cancelled = 0, rc;
    size_t idx;
    t0 = ppt_now();
    while ((rc = pp_iter_next(it, 0, &idx, NULL, NULL)) == PP_ECANCELED) {
        CK(idx < NITEMS);
        CK(pp_iter_error(it) != NULL);
        CK(++cancelled <= NITEMS + 1);
    }
    CKRC(rc, 0);
    CK(cancelled >= 1);
    within_bound(t0, "reading the cancelled iterator");
    pp_iter_free(it);
    free(items);
    free(res);

    stage("checking that no worker is left");
    t0 = ppt_now();
    for (int i = 0; i < nstop; i++) {
        while (alive(w[i]) && ppt_now() - t0 < DOC_BOUND_S)
            ppt_sleep_ms(5);
        if (alive(w[i]))
            child_fail(__LINE__, "process %d of the pool still runs after destroy", (int)w[i]);
    }
    check_clean(fds);
}

static void run_backlog(const struct backlog_params *p) {
    char name[160];
    snprintf(name, sizeof name, "%s, %s, workers stopped with work queued%s",
             p->op == OP_TERMINATE ? "terminate + join + destroy" : "destroy", sm_name(p->sm),
             p->stop_zygote ? ", zygote stopped" : "");
    in_child(case_backlog, p, name);
}

/* For each start method: terminate (then join, destroy) and destroy
 * alone, with every worker stopped mid-task and work queued; under FORK
 * and FORKSERVER also with the zygote stopped. */
static void test_stopped_workers_backlog(void **state) {
    (void)state;
    for (int i = 0; i < 3; i++) {
        for (int z = 0; z < (g_methods[i] == PP_START_SPAWN ? 1 : 2); z++) {
            struct backlog_params p = {.sm = g_methods[i], .stop_zygote = z, .op = OP_TERMINATE};
            run_backlog(&p);
            p.op = OP_DESTROY;
            run_backlog(&p);
        }
    }
}

static int group_setup(void **state) {
    (void)state;
    g_rep = mmap(NULL, sizeof *g_rep, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    return g_rep == MAP_FAILED ? -1 : 0;
}

int main(int argc, char **argv) {
    ppt_hang_guard(100);
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_fault),
        cmocka_unit_test(test_no_pidfd_crash),
        cmocka_unit_test(test_no_pidfd_terminate),
        cmocka_unit_test(test_no_pidfd_timeout),
        cmocka_unit_test(test_signal_refused_terminate),
        cmocka_unit_test(test_signal_refused_destroy),
        cmocka_unit_test(test_signal_refused_timeout),
        cmocka_unit_test(test_nproc_create_fails),
        cmocka_unit_test(test_stopped_zygote_crash),
        cmocka_unit_test(test_stopped_zygote_terminate),
        cmocka_unit_test(test_stopped_workers_backlog),
    };
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
