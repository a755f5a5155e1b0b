/*
 * fi_prog.c - the programs the fault-injection sweep runs (tests/fi/fi_driver.c).
 *
 *   fi_prog SCENARIO START     (START: fork, spawn or forkserver; mpi for an
 *                               MPI pool, under mpirun)
 *
 * Each scenario uses the pool the way a program would and judges every
 * outcome: a call either does its work (results are checked value by
 * value) or fails with one of the codes its documentation names. After the
 * pool is destroyed nothing may be left: no descriptor, no process of the
 * pool (the program makes its own process group, which workers and the
 * fork server share), no unreaped child, no thread, no mapping of the
 * library's memfds.
 *
 * Exit status: 0 all well; 2 a wrong result; 3 an undocumented error code;
 * 4 something left behind; 5 a misuse of this program. Each finding is a
 * line on stderr starting "FI:". A hang or a crash is the driver's to see.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "procpool.h"
#include "proc_util.h"

static int verdict;

static void finding(int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("FI: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    if (!verdict || code < verdict)
        verdict = code;
}

/* ---- documented codes ----------------------------------------------------- */

/* The codes as include/procpool.h documents them, for the calls made here
 * with valid arguments (no -EINVAL, no PP_ECLOSED). */
/* pp_pool_create; SPAWN's exec adds -ENOEXEC, -E2BIG, -ETXTBSY; an MPI pool
 * PP_ENOAGENTS, -ETIMEDOUT, -EIO */
static const int create_codes[] = {-ENOMEM,      -EFBIG,     -EMFILE, -ENFILE,  -EAGAIN, -ECHILD,
                                   -ENOSYS,      -ENOENT,    -EACCES, -ENOEXEC, -E2BIG,  -ETXTBSY,
                                   PP_ENOAGENTS, -ETIMEDOUT, -EIO,    0};
/* submissions: pp_apply_async, pp_map_async, pp_imap*, before anything runs */
static const int submit_codes[] = {-ENOMEM, -EFBIG, 0};
/* a task's outcome (pp_future_get, pp_apply, pp_map, pp_iter_next); an MPI
 * pool adds -EOVERFLOW and -EIO */
static const int result_codes[] = {PP_ETASK, PP_EWORKER, PP_ETASKTIMEOUT, PP_ECANCELED, PP_EPROTO,
                                   -ENOMEM,  -EMFILE,    -ENFILE,         -EFBIG,       -EOVERFLOW,
                                   -EIO,     0};

static bool documented(const int *set, int rc) {
    for (; *set; set++)
        if (*set == rc)
            return true;
    return false;
}

/* true when rc is a documented failure of call; a finding otherwise */
static bool check_code(const char *call, const int *set, int rc) {
    if (documented(set, rc))
        return true;
    finding(3, "UNDOC %s returned %d (%s: %s)", call, rc, pp_err_name(rc), pp_strerror(rc));
    return false;
}

/* ---- tasks ---------------------------------------------------------------- */

#define F_SEGV 0x40000000u
#define F_HANG 0x20000000u
#define F_BIG 0x10000000u /* a result of 200 KiB (a memfd) */
#define V_MASK 0x00ffffffu

static uint32_t good(uint32_t v) { return v * 7u + 3u; }

static int task(const void *arg, size_t len, pp_buf_t *out) {
    uint32_t x;
    if (len < sizeof x)
        return pp_buf_fail(out, "short argument");
    memcpy(&x, arg, sizeof x);
    if (x & F_SEGV) {
        signal(SIGSEGV, SIG_DFL);
        raise(SIGSEGV);
    }
    if (x & F_HANG)
        for (;;)
            pause();
    uint32_t r = good(x & V_MASK);
    if (x & F_BIG) {
        unsigned char *p = pp_buf_reserve(out, 200 * 1024);
        if (!p)
            return 1;
        memset(p, (int)(r & 0xff), 200 * 1024);
        memcpy(p, &r, sizeof r);
        return 0;
    }
    return pp_buf_append(out, &r, sizeof r) == 0 ? 0 : 1;
}

/* A result: right, or a documented failure. */
static void check_result(const char *what, uint32_t x, int rc, const void *data, size_t len) {
    if (rc) {
        check_code(what, result_codes, rc);
        return;
    }
    size_t want = (x & F_BIG) ? 200 * 1024 : sizeof(uint32_t);
    uint32_t r;
    if (!data || len != want) {
        finding(2, "WRONG %s of %#x: %zu bytes, not %zu", what, x, len, want);
        return;
    }
    memcpy(&r, data, sizeof r);
    if (r != good(x & V_MASK))
        finding(2, "WRONG %s of %#x: %u, not %u", what, x, r, good(x & V_MASK));
}

/* ---- what a pool may leave behind --------------------------------------- */

static int count_memfd_maps(void) {
    FILE *f = fopen("/proc/self/maps", "re");
    if (!f)
        return -1;
    char line[512];
    int n = 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, "memfd:procpool"))
            n++;
    fclose(f);
    return n;
}

/* Processes the pool left: any live process of this process group (the
 * program makes its own; workers and the fork server stay in it) but
 * this one, and any zombie child of this one, a while after destroy. A
 * grandchild's zombie is its parent's or init's to reap, not ours. */
static int leftover_processes(void) {
    pid_t me = getpid(), grp = getpgrp();
    int n = 0;
    for (int tries = 0; tries < 50; tries++) {
        n = 0;
        DIR *d = opendir("/proc");
        if (!d)
            return 0;
        struct dirent *e;
        while ((e = readdir(d))) {
            if (e->d_name[0] < '1' || e->d_name[0] > '9')
                continue;
            char path[300], buf[512];
            snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
            FILE *f = fopen(path, "re");
            if (!f)
                continue;
            size_t len = fread(buf, 1, sizeof buf - 1, f);
            fclose(f);
            buf[len] = '\0';
            char *rp = strrchr(buf, ')');
            char state;
            int pid = atoi(buf), ppid, pgrp;
            if (!rp || sscanf(rp + 1, " %c %d %d", &state, &ppid, &pgrp) != 3)
                continue;
            if (pid != me && pgrp == grp && (state != 'Z' || ppid == me))
                n++;
        }
        closedir(d);
        if (!n)
            return 0;
        struct timespec ts = {0, 20 * 1000000};
        nanosleep(&ts, NULL);
    }
    return n;
}

static int fds0;

static void check_nothing_left(void) {
    int fds = ppt_fd_count();
    if (fds != fds0)
        finding(4, "LEAK descriptors: %d before the pool, %d after", fds0, fds);
    int maps = count_memfd_maps();
    if (maps)
        finding(4, "LEAK %d mappings of the library's memfds", maps);
    int kids = leftover_processes();
    if (kids)
        finding(4, "LEAK %d processes after destroy", kids);
    /* threads end just after destroy returns: allow them a moment */
    int threads = 0;
    for (int i = 0; i < 100 && (threads = ppt_count_entries("/proc/self/task")) > 1; i++) {
        struct timespec ts = {0, 10 * 1000000};
        nanosleep(&ts, NULL);
    }
    if (threads != 1)
        finding(4, "LEAK %d threads after destroy", threads - 1);
}

/* ---- scenarios ------------------------------------------------------------ */

static pp_options_t opts;

static pp_pool_t *make_pool(void) {
    pp_pool_t *p = NULL;
    int rc = pp_pool_create(&p, &opts);
    if (rc) {
        check_code("pp_pool_create", create_codes, rc);
        if (p)
            finding(2, "WRONG pp_pool_create failed but set *pool");
        return NULL;
    }
    return p;
}

static void sc_apply(pp_pool_t *p) {
    static const uint32_t xs[] = {1, 2 | F_BIG, 3};
    for (size_t i = 0; i < sizeof xs / sizeof *xs; i++) {
        void *res = NULL;
        size_t len = 0;
        int rc = pp_apply(p, task, &xs[i], sizeof xs[i], &res, &len);
        check_result("pp_apply", xs[i], rc, res, len);
        free(res);
    }
    /* a 200 KiB argument travels in a memfd */
    static unsigned char big[200 * 1024];
    uint32_t x = 77;
    memcpy(big, &x, sizeof x);
    void *res = NULL;
    size_t len = 0;
    int rc = pp_apply(p, task, big, sizeof big, &res, &len);
    check_result("pp_apply(200 KiB)", x, rc, res, len);
    free(res);
}

/* Waits for the future of task x (index i) and judges it; frees it. A
 * task that hangs must not succeed. */
static void await(pp_future_t *f, uint32_t x, int i) {
    if (!f)
        return;
    const void *d;
    size_t len;
    int rc = pp_future_get(f, 60, &d, &len);
    if (rc == -ETIMEDOUT)
        finding(1, "HANG future %d pending after 60 s", i);
    else if ((x & F_HANG) && rc == 0)
        finding(2, "WRONG a hanging task succeeded");
    else
        check_result("pp_future_get", x, rc, d, len);
    pp_future_free(f);
}

#define BURST 200
static void sc_burst(pp_pool_t *p) {
    static unsigned char args[BURST][100 * 1024];
    pp_future_t *f[BURST] = {0};
    uint32_t xs[BURST];
    for (int i = 0; i < BURST; i++) {
        xs[i] = (uint32_t)i | (i % 50 == 7 ? F_BIG : 0);
        memcpy(args[i], &xs[i], sizeof xs[i]);
        size_t len = i % 10 == 3 ? sizeof args[i] : sizeof xs[i];
        int rc = pp_apply_async(p, task, args[i], len, &f[i]);
        if (rc) {
            check_code("pp_apply_async", submit_codes, rc);
            if (f[i])
                finding(2, "WRONG pp_apply_async failed but set *future");
            f[i] = NULL;
        }
    }
    for (int i = 0; i < BURST; i++)
        await(f[i], xs[i], i);
}

#define NMAP 2000
static void sc_map(pp_pool_t *p) {
    static uint32_t in[NMAP], out[NMAP];
    for (uint32_t i = 0; i < NMAP; i++)
        in[i] = i;
    memset(out, 0, sizeof out);
    int rc = pp_map(p, task, in, sizeof *in, NMAP, out, sizeof *out, PP_CHUNK_AUTO);
    if (rc)
        check_code("pp_map", result_codes, rc);
    else
        for (uint32_t i = 0; i < NMAP; i++)
            if (out[i] != good(i)) {
                finding(2, "WRONG pp_map item %u: %u", i, out[i]);
                break;
            }
    pp_future_t *f = NULL;
    memset(out, 0, sizeof out);
    rc = pp_map_async(p, task, in, sizeof *in, NMAP, out, sizeof *out, 64, &f);
    if (rc) {
        check_code("pp_map_async", submit_codes, rc);
        return;
    }
    rc = pp_future_get(f, 60, NULL, NULL);
    if (rc == -ETIMEDOUT)
        finding(1, "HANG map future pending after 60 s");
    else if (rc)
        check_code("pp_map_async result", result_codes, rc);
    else
        for (uint32_t i = 0; i < NMAP; i++)
            if (out[i] != good(i)) {
                finding(2, "WRONG pp_map_async item %u: %u", i, out[i]);
                break;
            }
    pp_future_free(f);
}

/* Drain an iterator. Ordered: indexes increase, one by one, unless the
 * iteration stops early (out of memory even to record a failure): it then
 * gives the results it holds (with gaps), that error once, and ends. */
static void drain(pp_iter_t *it, const uint32_t *in, size_t n, bool ordered, bool fed,
                  const char *what) {
    size_t seen = 0, gaps = 0, next = 0;
    bool stopped = false;
    for (;;) {
        size_t idx = (size_t)-1;
        const void *d = NULL;
        size_t len = 0;
        int rc = pp_iter_next(it, 60, &idx, &d, &len);
        if (rc == 0)
            break;
        if (rc == -ETIMEDOUT) {
            finding(1, "HANG %s: no item for 60 s after %zu", what, seen);
            return;
        }
        if (rc < 0 && !check_code(what, result_codes, rc))
            continue;
        if (idx > n || (idx == n && rc > 0)) {
            finding(2, "WRONG %s: index %zu of %zu", what, idx, n);
            return;
        }
        /* maybe the iteration's stop, or one item's failure (more follow);
         * workers dying at start-up end a fed input with PP_EWORKER */
        if (rc == -ENOMEM || rc == PP_ECANCELED || (fed && rc == PP_EWORKER))
            stopped = true;
        if (ordered && idx < next)
            finding(2, "WRONG %s: index %zu after %zu", what, idx, next - 1);
        else if (ordered && idx > next)
            gaps++;
        next = idx + 1;
        seen++;
        if (rc > 0 && (in[idx] & F_SEGV))
            finding(2, "WRONG %s: the crashing item %zu succeeded", what, idx);
        else if (rc > 0)
            check_result(what, in[idx], 0, d, len);
    }
    if (gaps && !stopped)
        finding(2, "WRONG %s: %zu indexes skipped", what, gaps);
    if (seen != n && !stopped)
        finding(2, "WRONG %s: %zu of %zu items reported", what, seen, n);
}

static void sc_imap_crash(pp_pool_t *p) {
    static uint32_t in[100];
    for (uint32_t i = 0; i < 100; i++)
        in[i] = i | (i == 50 ? F_SEGV : 0);
    pp_iter_t *it = NULL;
    int rc = pp_imap(p, task, in, sizeof *in, 100, PP_CHUNK_AUTO, &it);
    if (rc) {
        check_code("pp_imap", submit_codes, rc);
        return;
    }
    drain(it, in, 100, true, false, "pp_imap(AUTO, crash)");
    pp_iter_free(it);
}

typedef struct {
    uint32_t *in;
    size_t i, n;
} feed_t;

static int feeder(void *ud, const void **item, size_t *len) {
    feed_t *fd = ud;
    if (fd->i == fd->n)
        return 0;
    *item = &fd->in[fd->i++];
    *len = sizeof(uint32_t);
    return 1;
}

static void sc_feed(pp_pool_t *p) {
    static uint32_t in[300];
    for (uint32_t i = 0; i < 300; i++)
        in[i] = i;
    feed_t fd = {in, 0, 300};
    pp_iter_t *it = NULL;
    int rc = pp_imap_feed(p, task, feeder, &fd, 8, PP_UNORDERED, &it);
    if (rc) {
        check_code("pp_imap_feed", submit_codes, rc);
        return;
    }
    drain(it, in, 300, false, true, "pp_imap_feed");
    pp_iter_free(it);
}

static void sc_timeout(pp_pool_t *p) {
    uint32_t xs[] = {F_HANG, 5};
    pp_future_t *f[2] = {0};
    for (int i = 0; i < 2; i++) {
        int rc = pp_apply_async(p, task, &xs[i], sizeof xs[i], &f[i]);
        if (rc)
            check_code("pp_apply_async", submit_codes, rc);
    }
    for (int i = 0; i < 2; i++)
        await(f[i], xs[i], i);
}

/* Work queued and running (some of it hanging), then terminate (every
 * future done at once: a result or PP_ECANCELED) or destroy straight away
 * (the futures stay the caller's, freed after the pool). */
static void sc_terminate(pp_pool_t *p, bool destroy_only) {
    enum { N = 40 };
    pp_future_t *f[N] = {0};
    uint32_t xs[N];
    for (int i = 0; i < N; i++) {
        xs[i] = (uint32_t)i | (i % 4 == 0 ? F_HANG : 0);
        int rc = pp_apply_async(p, task, &xs[i], sizeof xs[i], &f[i]);
        if (rc)
            check_code("pp_apply_async", submit_codes, rc);
    }
    if (destroy_only)
        pp_pool_destroy(p);
    else {
        int rc = pp_pool_terminate(p);
        if (rc)
            finding(3, "UNDOC pp_pool_terminate returned %d (%s)", rc, pp_err_name(rc));
    }
    for (int i = 0; i < N; i++) {
        if (!f[i])
            continue;
        if (pp_future_ready(f[i]) != 1) {
            finding(1, "HANG future %d still pending after %s", i,
                    destroy_only ? "destroy" : "terminate");
        } else {
            const void *d;
            size_t len;
            int rc = pp_future_get(f[i], 0, &d, &len);
            if ((xs[i] & F_HANG) && rc == 0)
                finding(2, "WRONG a hanging task succeeded");
            else if (!(xs[i] & F_HANG) || rc)
                check_result("pp_future_get", xs[i], rc, d, len);
        }
        pp_future_free(f[i]);
    }
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: fi_prog apply|burst|map|imap_crash|feed|timeout|terminate|"
                        "destroy|create fork|spawn|forkserver|mpi\n");
        return 5;
    }
    const char *sc = argv[1], *start = argv[2];
    setpgid(0, 0); /* leftover_processes() looks in this group */
    signal(SIGPIPE, SIG_IGN);
    pp_options_init(&opts);
    opts.processes = 2;
    if (strcmp(start, "spawn") == 0)
        opts.start_method = PP_START_SPAWN;
    else if (strcmp(start, "forkserver") == 0)
        opts.start_method = PP_START_FORKSERVER;
    else if (strcmp(start, "mpi") == 0)
        opts.backend = PP_BACKEND_MPI;
    else if (strcmp(start, "fork") != 0)
        return 5;
    if (strcmp(sc, "timeout") == 0 || strcmp(sc, "imap_crash") == 0)
        opts.task_timeout = 0.5;
    fds0 = ppt_fd_count();

    pp_pool_t *p = make_pool();
    if (p) {
        bool destroyed = false;
        if (strcmp(sc, "create") == 0)
            ;
        else if (strcmp(sc, "apply") == 0)
            sc_apply(p);
        else if (strcmp(sc, "burst") == 0)
            sc_burst(p);
        else if (strcmp(sc, "map") == 0)
            sc_map(p);
        else if (strcmp(sc, "imap_crash") == 0)
            sc_imap_crash(p);
        else if (strcmp(sc, "feed") == 0)
            sc_feed(p);
        else if (strcmp(sc, "timeout") == 0)
            sc_timeout(p);
        else if (strcmp(sc, "terminate") == 0)
            sc_terminate(p, false);
        else if (strcmp(sc, "destroy") == 0)
            sc_terminate(p, true), destroyed = true;
        else {
            fprintf(stderr, "fi_prog: unknown scenario %s\n", sc);
            return 5;
        }
        if (!destroyed) {
            int rc = pp_pool_close(p);
            if (rc)
                finding(3, "UNDOC pp_pool_close returned %d", rc);
            rc = pp_pool_join(p);
            if (rc)
                finding(3, "UNDOC pp_pool_join returned %d (%s)", rc, pp_err_name(rc));
            pp_pool_destroy(p);
        }
    }
    if (opts.backend != PP_BACKEND_MPI)
        check_nothing_left();
    return verdict;
}
