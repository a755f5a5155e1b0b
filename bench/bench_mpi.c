/*
 * bench_mpi.c - procpool's MPI backend figures, each against an anchor
 * measured in the same run (only ratios from one run are comparable):
 *
 *   1. tiny tasks: pp_map of x+1 over 2 000 000 int32 items with
 *      PP_CHUNK_AUTO on an MPI pool of 2 agent ranks (mpirun -n 3): tasks/s
 *        vs mpi4py.futures.MPIPoolExecutor.map of the same function on 2
 *        worker ranks (bench/py_mpi.py), chunksize=1 and chunksize=10000,
 *        compared with the better of the two: goal >= 10x;
 *        vs a raw Open MPI task farm written here (rank 0 sends one task per
 *        message to 2 worker ranks, a few in flight each; workers send the
 *        result back): goal >= 0.5x.
 *      Default processes (each agent runs pp_cpu_count() workers); the same
 *      with processes = 2 (as many workers as the anchors) is a reference
 *      row. A child checks that its pool is really an MPI pool (pp_shm_alloc
 *      fails with ENOTSUP) and every result.
 *   2. CPU-bound: 64 items of ~20 ms of arithmetic via pp_map (chunksize 1)
 *      on the MPI pool vs the same 64 items run serially:
 *      goal >= 90% of the ideal speedup, ideal = min(pp_pool_size, CPUs
 *      the agents can use); every rank runs on this machine, so the CPUs
 *      are pp_cpu_count() here.
 *
 * The program with no arguments is the driver: it re-executes itself
 * (/proc/self/exe) under mpirun in one of the modes below, reads each
 * child's "key value" lines through popen and prints a summary table. Each
 * figure is the median of 3 runs made inside one mpirun job. A benchmark
 * never fails: the exit status is 0 even when a goal is missed (MISSED) or a
 * figure could not be measured (n/a). The whole run takes well under 60 s.
 *
 *   bench_mpi                           the driver (run from the source
 *                                       directory, as `make bench` does)
 *   --procpool-tiny N RUNS PROCS        under PROCPOOL_BACKEND=mpi mpirun:
 *                                       figure 1 in rank 0
 *   --procpool-cpu ITERS ITEMS RUNS SUM under PROCPOOL_BACKEND=mpi mpirun:
 *                                       figure 2 in rank 0
 *   --farm N RUNS INFLIGHT              under plain mpirun: the raw farm (the
 *                                       only mode that calls MPI itself)
 *
 * Environment: PP_BENCH_PY_MPI=path overrides bench/py_mpi.py;
 * PP_BENCH_PYTHON_MPI=interpreter picks the Python with mpi4py (else
 * python3, then /usr/bin/python3, the one Debian's python3-mpi4py is for).
 * The driver sets (unless already set) the OMPI_* variables that mpirun
 * needs to run as root, oversubscribed, with the ob1 PML on one machine;
 * PROCPOOL_MPIEXEC (a compile-time string, default "mpirun") is the
 * launcher. Each mpirun job runs under timeout(1), so a hung job costs at
 * most 30-40 s and shows as "timed out".
 */
#include <procpool.h>

#include "bench_util.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if defined(__has_include)
#if __has_include(<mpi.h>)
#include <mpi.h>
#define BENCH_HAVE_MPI_H 1
#endif
#endif

#ifndef PROCPOOL_MPIEXEC
#define PROCPOOL_MPIEXEC "mpirun"
#endif

#define NP 3 /* mpirun -n 3: rank 0 and 2 agents (workers) */
#define RUNS 3
#define TINY_ITEMS 2000000u
#define FARM_TASKS 300000u
#define FARM_INFLIGHT 4
#define CPU_ITEMS 64
#define CPU_ITEM_MS 20.0
#define PY_CHUNK1_ITEMS 4000
#define PY_BIG_ITEMS 2000000
#define PY_BIG_CHUNK 10000
#define FIGURE_CAP_S 6.0 /* a figure whose first run took this long runs once */

/* ------------------------------------------------------------------------ */
/* tasks (in the program, so that the agents can name them)                */
/* ------------------------------------------------------------------------ */

static int task_inc(const void *arg, size_t len, pp_buf_t *out) {
    (void)len;
    int32_t v;
    memcpy(&v, arg, sizeof v);
    v = v + 1;
    return pp_buf_append(out, &v, sizeof v);
}

static void cpu_items_fill(struct cpu_item *it, int n, uint64_t iters) {
    for (int i = 0; i < n; i++) {
        it[i].seed = (uint64_t)i * 7919 + 1;
        it[i].iters = iters;
    }
}

/* order-dependent checksum of the results, so the driver can check them */
static uint64_t cpu_sum(const uint64_t *r, int n) {
    uint64_t s = 0;
    for (int i = 0; i < n; i++)
        s = s * 1099511628211ull + r[i];
    return s;
}

/* ------------------------------------------------------------------------ */
/* child modes: print "key value" lines for the driver; other lines are     */
/* notes the driver echoes                                                  */
/* ------------------------------------------------------------------------ */

static pp_pool_t *mpi_pool(int processes) {
    pp_options_t opt;
    pp_options_init(&opt);
    opt.processes = processes;
    opt.backend = PP_BACKEND_MPI;
    pp_pool_t *pool = NULL;
    fflush(stdout);
    int rc = pp_pool_create(&pool, &opt);
    if (rc != 0) {
        printf("pp_pool_create (MPI backend): %s (%s)\n", pp_strerror(rc), pp_err_name(rc));
        return NULL;
    }
    /* an MPI pool refuses shared memory (ENOTSUP): a check that the pool
     * really runs on the agents */
    void *probe = pp_shm_alloc(pool, 64);
    if (probe || errno != ENOTSUP) {
        printf("the pool is not an MPI pool (pp_shm_alloc: %s): no figures\n",
               probe ? "succeeded" : strerror(errno));
        pp_shm_free(pool, probe);
        pp_pool_destroy(pool);
        return NULL;
    }
    printf("pool_size %d\n", pp_pool_size(pool));
    printf("  MPI pool of %d workers (pp_pool_size)\n", pp_pool_size(pool));
    return pool;
}

/* tasks/s of one pp_map run; -1 on error or wrong results */
static double tiny_run(pp_pool_t *pool, const int32_t *items, int32_t *res, size_t n) {
    memset(res, 0, n * sizeof *res);
    double t0 = now();
    int rc = pp_map(pool, task_inc, items, sizeof *items, n, res, sizeof *res, PP_CHUNK_AUTO);
    double dt = now() - t0;
    if (rc != 0) {
        printf("pp_map: %s (%s)\n", pp_strerror(rc), pp_err_name(rc));
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (res[i] != items[i] + 1) {
            printf("pp_map: WRONG RESULT at %zu: %d, expected %d\n", i, res[i], items[i] + 1);
            return -1;
        }
    }
    return (double)n / dt;
}

static int child_tiny(size_t n, int runs, int processes) {
    int32_t *items = malloc(n * sizeof *items);
    int32_t *res = malloc(n * sizeof *res);
    if (!items || !res) {
        printf("out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < n; i++)
        items[i] = (int32_t)(i & 0x0fffffff);
    pp_pool_t *pool = mpi_pool(processes);
    if (!pool)
        return 1;
    int ok = tiny_run(pool, items, res, n < 100000 ? n : 100000) > 0; /* warm-up */
    double r[RUNS];
    int k = 0;
    for (; ok && k < runs && k < RUNS; k++) {
        double t0 = now();
        r[k] = tiny_run(pool, items, res, n);
        if (r[k] < 0) {
            ok = 0;
            break;
        }
        printf("  pp_map AUTO run %d: %12.0f tasks/s\n", k + 1, r[k]);
        if (now() - t0 > FIGURE_CAP_S / RUNS) {
            k++;
            if (k < runs)
                printf("  (slow: the remaining runs are skipped)\n");
            break;
        }
    }
    if (ok && k > 0)
        printf("tasks_per_s %.1f\n", median(r, (size_t)k));
    pp_pool_destroy(pool);
    free(items);
    free(res);
    return ok ? 0 : 1;
}

static int child_cpu(uint64_t iters, int n, int runs, uint64_t want_sum) {
    struct cpu_item *items = calloc((size_t)n, sizeof *items);
    uint64_t *res = calloc((size_t)n, sizeof *res);
    if (!items || !res) {
        printf("out of memory\n");
        return 1;
    }
    cpu_items_fill(items, n, iters);
    /* a note: one item in rank 0 while the agents wait for work (if they
     * spin, this is slower than in the driver) */
    double t0 = now();
    volatile uint64_t sink = spin_work(items[0].seed, items[0].iters);
    (void)sink;
    printf("rank0_item_s %.6f\n", now() - t0);
    pp_pool_t *pool = mpi_pool(0);
    if (!pool)
        return 1;
    double r[RUNS];
    int k = 0, ok = 1;
    for (; k < runs && k < RUNS; k++) {
        memset(res, 0, (size_t)n * sizeof *res);
        t0 = now();
        int rc = pp_map(pool, task_cpu, items, sizeof *items, (size_t)n, res, sizeof *res, 1);
        r[k] = now() - t0;
        if (rc != 0) {
            printf("pp_map: %s (%s)\n", pp_strerror(rc), pp_err_name(rc));
            ok = 0;
            break;
        }
        if (cpu_sum(res, n) != want_sum) {
            printf("pp_map: WRONG RESULTS\n");
            ok = 0;
            break;
        }
        printf("  pp_map run %d: %8.1f ms\n", k + 1, r[k] * 1e3);
    }
    if (ok && k > 0)
        printf("pool_s %.6f\n", median(r, (size_t)k));
    pp_pool_destroy(pool);
    free(items);
    free(res);
    return ok ? 0 : 1;
}

#ifdef BENCH_HAVE_MPI_H
enum { TAG_TASK = 1, TAG_RESULT = 2, TAG_STOP = 3 };

/* rank 0 of the farm: n tasks, `inflight` per worker at a time; tasks/s */
static double farm_run(int workers, const int32_t *items, int32_t *res, int n, int inflight) {
    int next = 0, done = 0;
    memset(res, 0, (size_t)n * sizeof *res);
    double t0 = MPI_Wtime();
    for (int k = 0; k < inflight; k++)
        for (int w = 1; w <= workers && next < n; w++, next++) {
            int32_t msg[2] = {next, items[next]};
            MPI_Send(msg, 2, MPI_INT32_T, w, TAG_TASK, MPI_COMM_WORLD);
        }
    while (done < n) {
        int32_t msg[2];
        MPI_Status st;
        MPI_Recv(msg, 2, MPI_INT32_T, MPI_ANY_SOURCE, TAG_RESULT, MPI_COMM_WORLD, &st);
        res[msg[0]] = msg[1];
        done++;
        if (next < n) {
            int32_t task[2] = {next, items[next]};
            MPI_Send(task, 2, MPI_INT32_T, st.MPI_SOURCE, TAG_TASK, MPI_COMM_WORLD);
            next++;
        }
    }
    double dt = MPI_Wtime() - t0;
    for (int i = 0; i < n; i++) {
        if (res[i] != items[i] + 1) {
            printf("farm: WRONG RESULT at %d\n", i);
            return -1;
        }
    }
    return (double)n / dt;
}

static int child_farm(int n, int runs, int inflight, int *argc, char ***argv) {
    MPI_Init(argc, argv);
    int rank, size, ok = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (rank != 0) {
        for (;;) {
            int32_t msg[2];
            MPI_Status st;
            MPI_Recv(msg, 2, MPI_INT32_T, 0, MPI_ANY_TAG, MPI_COMM_WORLD, &st);
            if (st.MPI_TAG == TAG_STOP)
                break;
            msg[1] = msg[1] + 1; /* the task */
            MPI_Send(msg, 2, MPI_INT32_T, 0, TAG_RESULT, MPI_COMM_WORLD);
        }
    } else if (size < 2) {
        printf("farm: needs at least 2 ranks\n");
        ok = 0;
    } else {
        int32_t *items = malloc((size_t)n * sizeof *items);
        int32_t *res = calloc((size_t)n, sizeof *res);
        if (!items || !res) {
            printf("out of memory\n");
            MPI_Abort(MPI_COMM_WORLD, 1);
        }
        for (int i = 0; i < n; i++)
            items[i] = i & 0x0fffffff;
        printf("farm_workers %d\n", size - 1);
        ok = farm_run(size - 1, items, res, n < 20000 ? n : 20000, inflight) > 0; /* warm-up */
        double r[RUNS];
        int k = 0;
        for (; ok && k < runs && k < RUNS; k++) {
            r[k] = farm_run(size - 1, items, res, n, inflight);
            if (r[k] < 0) {
                ok = 0;
                break;
            }
            printf("  farm run %d: %12.0f tasks/s\n", k + 1, r[k]);
        }
        if (ok && k > 0)
            printf("tasks_per_s %.1f\n", median(r, (size_t)k));
        fflush(stdout);
        for (int w = 1; w < size; w++)
            MPI_Send(NULL, 0, MPI_INT32_T, w, TAG_STOP, MPI_COMM_WORLD);
        free(items);
        free(res);
    }
    MPI_Finalize();
    return ok ? 0 : 1;
}
#else
static int child_farm(int n, int runs, int inflight, int *argc, char ***argv) {
    (void)n, (void)runs, (void)inflight, (void)argc, (void)argv;
    printf("farm: bench_mpi was built without mpi.h\n");
    return 1;
}
#endif

/* ------------------------------------------------------------------------ */
/* the driver: run a child, collect its "key value" lines                   */
/* ------------------------------------------------------------------------ */

#define MAX_KV 16

struct kv {
    int n;
    char key[MAX_KV][40];
    char str[MAX_KV][40];
};

/* the value of key as a string, or NULL */
static const char *kv_str(const struct kv *kv, const char *key) {
    for (int i = 0; i < kv->n; i++)
        if (strcmp(kv->key[i], key) == 0)
            return kv->str[i];
    return NULL;
}

/* the value of key as a number, or -1 */
static double kv_get(const struct kv *kv, const char *key) {
    const char *s = kv_str(kv, key);
    char *end;
    double v = s ? strtod(s, &end) : -1;
    return s && end != s && *end == '\0' ? v : -1;
}

/* runs cmd (stderr joined); lines "key value" (lowercase key, one value)
 * are stored, the others echoed (indented with "  | " unless the child
 * indented them itself); returns the exit status (0: success) or -1 */
static int run_child(const char *cmd, struct kv *kv) {
    kv->n = 0;
    fflush(stdout);
    FILE *p = popen(cmd, "r");
    if (!p) {
        printf("  popen: %s\n", strerror(errno));
        return -1;
    }
    char line[1024];
    while (fgets(line, sizeof line, p)) {
        char key[40], val[40], rest[8];
        int n = sscanf(line, "%39[a-z0-9_] %39s %7s", key, val, rest);
        if (n == 2 && kv->n < MAX_KV) {
            snprintf(kv->key[kv->n], sizeof kv->key[0], "%s", key);
            snprintf(kv->str[kv->n], sizeof kv->str[0], "%s", val);
            kv->n++;
        } else {
            printf("%s%s", strncmp(line, "  ", 2) == 0 ? "" : "  | ", line);
        }
    }
    int st = pclose(p);
    if (st == -1)
        return -1;
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    return 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

static char timeout_cmd[32]; /* "timeout -k 3 " when there is one */

/* the command line of an mpirun job: prefix (env), NP ranks, program */
static void mpi_cmd(char *buf, size_t size, int limit_s, const char *env, const char *prog) {
    if (timeout_cmd[0])
        snprintf(buf, size, "%s%s %d '%s' -n %d %s 2>&1", env, timeout_cmd, limit_s,
                 PROCPOOL_MPIEXEC, NP, prog);
    else
        snprintf(buf, size, "%s'%s' -n %d %s 2>&1", env, PROCPOOL_MPIEXEC, NP, prog);
}

static const char *status_word(int rc) { return rc == 124 || rc == 137 ? " (timed out)" : ""; }

/* figure 1 in an mpirun job: tasks/s, or -1 */
static double tiny_figure(const char *exe, int processes) {
    char prog[PATH_MAX + 128], cmd[2 * PATH_MAX + 256];
    struct kv kv;
    snprintf(prog, sizeof prog, "'%s' --procpool-tiny %u %d %d", exe, TINY_ITEMS, RUNS, processes);
    mpi_cmd(cmd, sizeof cmd, 30, "PROCPOOL_BACKEND=mpi ", prog);
    int rc = run_child(cmd, &kv);
    double ips = kv_get(&kv, "tasks_per_s");
    if (rc != 0 || ips <= 0) {
        printf("  procpool MPI run failed (status %d%s)\n", rc, status_word(rc));
        return -1;
    }
    return ips;
}

/* a Python that imports mpi4py.futures, or -1 */
static int find_python_mpi(char *py, size_t size) {
    const char *env = getenv("PP_BENCH_PYTHON_MPI");
    const char *cands[] = {env && *env ? env : NULL, "python3", "/usr/bin/python3"};
    char cmd[PATH_MAX + 96];
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < sizeof cands / sizeof cands[0]; i++) {
            if (!cands[i])
                continue;
            snprintf(cmd, sizeof cmd, "'%s' -c 'import mpi4py.futures' >/dev/null 2>&1", cands[i]);
            if (system(cmd) == 0) {
                snprintf(py, size, "%s", cands[i]);
                return 0;
            }
        }
        if (pass == 1 || geteuid() != 0 || system("command -v apt-get >/dev/null 2>&1") != 0)
            break;
        /* root with apt: install Debian's python3-mpi4py (update the lists
         * first when they are empty) */
        printf("  mpi4py not found: installing python3-mpi4py with apt-get\n");
        fflush(stdout);
        int rc = system("export DEBIAN_FRONTEND=noninteractive; "
                        "if [ -z \"$(ls /var/lib/apt/lists 2>/dev/null | grep -v -e '^lock$' "
                        "-e '^partial$' -e '^auxfiles$')\" ]; then apt-get update -qq; fi; "
                        "apt-get install -y -qq python3-mpi4py >/dev/null 2>&1 || "
                        "{ apt-get update -qq && apt-get install -y -qq python3-mpi4py "
                        ">/dev/null 2>&1; }");
        if (rc != 0)
            printf("  apt-get install python3-mpi4py failed\n");
    }
    return -1;
}

/* ------------------------------------------------------------------------ */
/* summary                                                                  */
/* ------------------------------------------------------------------------ */

/* ------------------------------------------------------------------------ */

static int driver(const char *argv0) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    double t_start = now();
    /* procpool children get PROCPOOL_BACKEND=mpi on their command line; the
     * farm and mpi4py must not see it */
    unsetenv("PROCPOOL_BACKEND");
    if (geteuid() == 0) {
        setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 0);
        setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 0);
    }
    setenv("OMPI_MCA_rmaps_base_oversubscribe", "1", 0);
    setenv("OMPI_MCA_pml", "ob1", 0);
    if (system("command -v timeout >/dev/null 2>&1") == 0)
        snprintf(timeout_cmd, sizeof timeout_cmd, "timeout -k 3");

    int cpus = pp_cpu_count();
    printf("bench_mpi: procpool %s, MPI backend, mpirun -n %d (rank 0 + %d agents), all on this "
           "machine; %d CPUs usable (pp_cpu_count), %ld online\n",
           PROCPOOL_VERSION_STRING, NP, NP - 1, cpus, sysconf(_SC_NPROCESSORS_ONLN));
    bench_print_load();

    char exe[PATH_MAX];
    ssize_t en = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (en <= 0) {
        printf("cannot read /proc/self/exe: %s\n", strerror(errno));
        return 0;
    }
    exe[en] = '\0';
    char mpiexec_probe[PATH_MAX + 64];
    snprintf(mpiexec_probe, sizeof mpiexec_probe, "command -v '%s' >/dev/null 2>&1",
             PROCPOOL_MPIEXEC);
    int have_mpirun = system(mpiexec_probe) == 0;
    if (!have_mpirun)
        printf("%s not found: every row is n/a\n", PROCPOOL_MPIEXEC);
    printf("\n");

    char prog[3 * PATH_MAX], cmd[4 * PATH_MAX];
    struct kv kv;
    int rc;

    /* ---- 1: procpool, tiny tasks ---- */
    printf("1. pp_map(x+1) over %u int32 items, PP_CHUNK_AUTO, MPI pool on %d agents, default "
           "processes (each agent: pp_cpu_count() workers) (median of %d)\n",
           TINY_ITEMS, NP - 1, RUNS);
    double tiny_ips = have_mpirun ? tiny_figure(exe, 0) : -1;
    printf("\n");
    printf("1. reference: the same with processes = %d (one worker per agent, as many worker "
           "processes as the anchors have)\n",
           NP - 1);
    double tiny1_ips = have_mpirun ? tiny_figure(exe, NP - 1) : -1;
    printf("\n");

    /* ---- 1: the raw Open MPI farm ---- */
    printf("1. anchor: raw Open MPI task farm, %u tasks of x+1, one per message, %d in flight "
           "per worker, %d worker ranks (median of %d)\n",
           FARM_TASKS, FARM_INFLIGHT, NP - 1, RUNS);
    double farm_ips = -1;
#ifdef BENCH_HAVE_MPI_H
    const int farm_built = 1;
#else
    const int farm_built = 0;
#endif
    if (!farm_built) {
        printf("  skipped: bench_mpi was built without mpi.h (link it with MPI::MPI_C)\n");
    } else if (have_mpirun) {
        snprintf(prog, sizeof prog, "'%s' --farm %u %d %d", exe, FARM_TASKS, RUNS, FARM_INFLIGHT);
        mpi_cmd(cmd, sizeof cmd, 30, "", prog);
        rc = run_child(cmd, &kv);
        farm_ips = kv_get(&kv, "tasks_per_s");
        if (rc != 0 || farm_ips <= 0) {
            printf("  farm failed (status %d%s)\n", rc, status_word(rc));
            farm_ips = -1;
        }
    }
    printf("\n");

    /* ---- 1: mpi4py.futures ---- */
    printf("1. anchor: mpi4py.futures.MPIPoolExecutor.map(x+1) on %d worker ranks: "
           "chunksize=1 over %d ints, chunksize=%d over %d ints (median of %d)\n",
           NP - 1, PY_CHUNK1_ITEMS, PY_BIG_CHUNK, PY_BIG_ITEMS, RUNS);
    double py_c1 = -1, py_big = -1;
    char py[PATH_MAX], script[PATH_MAX + 32];
    int py_rc = -1; /* -1: skipped, -2: failed */
    if (!have_mpirun) {
        printf("  skipped (no %s)\n", PROCPOOL_MPIEXEC);
    } else if (bench_find_script(argv0, "PP_BENCH_PY_MPI", "py_mpi.py", script, sizeof script) <
               0) {
        printf("  bench/py_mpi.py not found (run from the source directory, or set "
               "PP_BENCH_PY_MPI): skipped\n");
    } else if (find_python_mpi(py, sizeof py) < 0) {
        printf("  no python3 with mpi4py (apt-get install python3-mpi4py): skipped\n");
    } else {
        snprintf(prog, sizeof prog, "'%s' -m mpi4py.futures '%s' %d %d %d %d", py, script,
                 PY_CHUNK1_ITEMS, PY_BIG_ITEMS, PY_BIG_CHUNK, RUNS);
        mpi_cmd(cmd, sizeof cmd, 40, "", prog);
        printf("  %s -m mpi4py.futures %s\n", py, script);
        rc = run_child(cmd, &kv);
        py_c1 = kv_get(&kv, "py_mpi_chunk1_ips");
        py_big = kv_get(&kv, "py_mpi_big_ips");
        if (rc != 0 || py_c1 <= 0 || py_big <= 0) {
            printf("  py_mpi.py failed (status %d%s)\n", rc, status_word(rc));
            py_rc = -2;
        } else {
            py_rc = 0;
            const char *pv = kv_str(&kv, "py_version"), *mv = kv_str(&kv, "mpi4py_version");
            printf("  Python %s, mpi4py %s, %d workers\n", pv ? pv : "?", mv ? mv : "?",
                   (int)kv_get(&kv, "py_mpi_workers"));
            printf("  chunksize=1     %12.0f items/s\n", py_c1);
            printf("  chunksize=%-5d %12.0f items/s\n", PY_BIG_CHUNK, py_big);
        }
    }
    double py_best = py_c1 > py_big ? py_c1 : py_big;
    char py_best_what[32];
    snprintf(py_best_what, sizeof py_best_what, "chunksize=%d", py_c1 > py_big ? 1 : PY_BIG_CHUNK);
    if (py_rc == 0)
        printf("  the better one: %s\n", py_best_what);
    printf("\n");

    /* ---- 2: CPU-bound ---- */
    /* the per-item loop, calibrated to ~CPU_ITEM_MS here */
    uint64_t iters = spin_calibrate(CPU_ITEM_MS);
    printf("2. CPU-bound: %d items of ~%.0f ms (%llu LCG steps each): serial here (no MPI job "
           "running) vs pp_map chunksize 1 on the MPI pool, default processes (median of %d)\n",
           CPU_ITEMS, CPU_ITEM_MS, (unsigned long long)iters, RUNS);
    struct cpu_item citems[CPU_ITEMS];
    uint64_t cres[CPU_ITEMS];
    cpu_items_fill(citems, CPU_ITEMS, iters);
    double ser[RUNS];
    for (int r = 0; r < RUNS; r++) {
        double t0 = now();
        for (int i = 0; i < CPU_ITEMS; i++)
            cres[i] = spin_work(citems[i].seed, citems[i].iters);
        ser[r] = now() - t0;
    }
    double cpu_serial = median(ser, RUNS);
    uint64_t sum = cpu_sum(cres, CPU_ITEMS);
    printf("  serial:        %8.1f ms\n", cpu_serial * 1e3);
    double cpu_pool = -1, rank0_item = -1;
    int cpu_size = -1;
    if (have_mpirun) {
        snprintf(prog, sizeof prog, "'%s' --procpool-cpu %llu %d %d %llu", exe,
                 (unsigned long long)iters, CPU_ITEMS, RUNS, (unsigned long long)sum);
        mpi_cmd(cmd, sizeof cmd, 40, "PROCPOOL_BACKEND=mpi ", prog);
        rc = run_child(cmd, &kv);
        cpu_pool = kv_get(&kv, "pool_s");
        cpu_size = (int)kv_get(&kv, "pool_size");
        rank0_item = kv_get(&kv, "rank0_item_s");
        if (rc != 0 || cpu_pool <= 0) {
            printf("  procpool MPI run failed (status %d%s)\n", rc, status_word(rc));
            cpu_pool = -1;
        }
    }
    double speedup = cpu_pool > 0 ? cpu_serial / cpu_pool : -1;
    int ideal = cpu_size > 0 ? (cpu_size < cpus ? cpu_size : cpus) : -1;
    double efficiency = speedup > 0 && ideal > 0 ? speedup / ideal : -1;
    if (cpu_pool > 0)
        printf("  MPI pool:      %8.1f ms  -> speedup %.2fx\n", cpu_pool * 1e3, speedup);
    if (ideal > 0)
        printf("  ideal speedup = min(pp_pool_size %d, CPUs the agents can use %d "
               "[pp_cpu_count() here: every rank runs on this machine]) = %d\n",
               cpu_size, cpus, ideal);
    if (rank0_item > 0)
        printf("  (one item in rank 0 while the agents wait: %.1f ms; serial here: %.1f ms per "
               "item)\n",
               rank0_item * 1e3, cpu_serial / CPU_ITEMS * 1e3);
    printf("\n");

    /* ---- summary ---- */
    char v[32], a[128], t[32];
    double ratio;

    fmt_rate(v, sizeof v, tiny_ips);
    fmt_rate(t, sizeof t, py_best);
    snprintf(a, sizeof a, "mpi4py %s%s%s", py_rc == 0 ? py_best_what : "", py_rc == 0 ? " " : "",
             t);
    ratio = tiny_ips > 0 && py_rc == 0 ? tiny_ips / py_best : -1;
    add_row("tiny tasks, 2 agents, AUTO", v, a, ratio, ">= 10x", ratio >= 10.0);

    fmt_rate(t, sizeof t, farm_ips);
    snprintf(a, sizeof a, "raw MPI farm %s", t);
    ratio = tiny_ips > 0 && farm_ips > 0 ? tiny_ips / farm_ips : -1;
    add_row("tiny tasks, 2 agents, AUTO", v, a, ratio, ">= 0.5x", ratio >= 0.5);

    fmt_rate(v, sizeof v, tiny1_ips);
    fmt_rate(t, sizeof t, tiny_ips);
    snprintf(a, sizeof a, "default processes %s", t);
    ratio = tiny1_ips > 0 && tiny_ips > 0 ? tiny1_ips / tiny_ips : -1;
    add_row("tiny tasks, processes = 2", v, a, ratio, "(ref.)", -1);

    fmt_rate(v, sizeof v, py_c1);
    fmt_rate(t, sizeof t, py_big);
    snprintf(a, sizeof a, "mpi4py chunksize=%d %s", PY_BIG_CHUNK, t);
    ratio = py_c1 > 0 && py_big > 0 ? py_c1 / py_big : -1;
    add_row("mpi4py chunksize=1", v, a, ratio, "(ref.)", -1);

    fmt_ms(v, sizeof v, cpu_pool);
    fmt_ms(t, sizeof t, cpu_serial);
    snprintf(a, sizeof a, "serial %s", t);
    add_row("CPU-bound 64 x 20 ms, speedup", v, a, speedup, "(ref.)", -1);

    snprintf(v, sizeof v, speedup > 0 ? "%.2fx" : "n/a", speedup);
    if (ideal > 0)
        snprintf(a, sizeof a, "ideal %dx = min(size %d, %d CPUs)", ideal, cpu_size, cpus);
    else
        snprintf(a, sizeof a, "ideal n/a");
    add_row("CPU-bound, share of ideal", v, a, efficiency, ">= 0.90x", efficiency >= 0.9);

    printf("summary (ratio: procpool over anchor, higher is better)\n");
    print_summary();
    if (py_rc != 0)
        printf("(the mpi4py rows are n/a: %s)\n",
               py_rc == -1 ? "mpi4py, python3 or bench/py_mpi.py not found" : "py_mpi.py failed");
    printf("bench_mpi took %.1f s\n", now() - t_start);
    return 0;
}

/* ------------------------------------------------------------------------ */

static int arg_ok(int argc, char **argv, int want) {
    if (argc == want)
        return 1;
    fprintf(stderr, "bench_mpi: %s takes %d arguments\n", argv[1], want - 2);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2)
        return driver(argv[0]);
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (strcmp(argv[1], "--procpool-tiny") == 0) {
        if (!arg_ok(argc, argv, 5))
            return 2;
        return child_tiny(strtoull(argv[2], NULL, 10), atoi(argv[3]), atoi(argv[4]));
    }
    if (strcmp(argv[1], "--procpool-cpu") == 0) {
        if (!arg_ok(argc, argv, 6))
            return 2;
        return child_cpu(strtoull(argv[2], NULL, 10), atoi(argv[3]), atoi(argv[4]),
                         strtoull(argv[5], NULL, 10));
    }
    if (strcmp(argv[1], "--farm") == 0) {
        if (!arg_ok(argc, argv, 5))
            return 2;
        return child_farm(atoi(argv[2]), atoi(argv[3]), atoi(argv[4]), &argc, &argv);
    }
    fprintf(stderr, "usage: bench_mpi   (the driver; the --procpool-tiny, --procpool-cpu and "
                    "--farm modes are for its mpirun children)\n");
    return 2;
}
