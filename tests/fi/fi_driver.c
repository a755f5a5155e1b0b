/*
 * fi_driver.c - the fault-injection sweep: fail every call site the
 * library reaches, one at a time, and judge how each program ends.
 *
 *   fi_driver [options] PROG [SCENARIO:START ...]
 *     --quick        each site fails at its 1st call only (once, then from
 *                    there on), with the first errno of its list
 *     --once-per-site  a site is swept in the first case that reaches it
 *                    only (default: in every case)
 *     --budget S     start no new run after S seconds (coverage is reported)
 *     --timeout S    a run still going after S seconds is a hang (30)
 *     --scope P|C|PC inject in the program's process (P), in the others:
 *                    workers, the fork server (C), or both (PC, default)
 *     --report FILE  one line per site: what was injected there
 *     --only SITE    sweep that site only (file.c:line), to reproduce one
 *     --keep FILE    keep the last failing run's output (stdout and stderr)
 *     --mpi N        ranks for the MPI cases (START mpi: an MPI pool, run
 *                    under `mpirun -n N`, default 2; PROCPOOL_MPI_LIBRARY
 *                    must name the backend library)
 *   Without cases: every scenario of fi_prog under fork, spawn, forkserver.
 *
 * For each case and scope: a clean run lists the sites reached (the
 * library built as procpool_fi logs them, see src/fault_inject.c); each
 * site is then failed at its Nth call (N = 1, 2, 3, 4, 6, 8, 12, ... while
 * the Nth call is reached), once and from the Nth call on, with each errno
 * the call can really return (reads and writes name the kind of file:
 * an eventfd write cannot fail, a pipe's can). From the Nth call on only
 * where the cause can last (see lasting()). A run that reaches sites not seen before
 * adds them, until no new site is reached. Each run must end within the
 * timeout with exit status 0: fi_prog itself checks results, error codes
 * and leftovers. Every other end is a finding, printed as one line; the
 * exit status is 1 when there is any.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- what each call can really fail with ------------------------------- */

typedef struct {
    const char *call;
    int errs[7];
} errlist_t;

static const errlist_t errlists[] = {
    {"malloc", {ENOMEM}},
    {"calloc", {ENOMEM}},
    {"realloc", {ENOMEM}},
    {"strdup", {ENOMEM}},
    {"mmap", {ENOMEM}},
    {"mremap", {ENOMEM, EAGAIN}},
    {"memfd_create", {EMFILE, ENFILE, ENOMEM}},
    {"ftruncate", {EFBIG, EINTR}},
    {"fallocate", {ENOSPC, ENOMEM, EINTR}},
    {"socketpair", {EMFILE, ENFILE, ENOMEM}},
    {"sendmsg", {EAGAIN, EINTR, ENOBUFS, ENOMEM, ETOOMANYREFS, EPIPE, ECONNRESET}},
    {"recvmsg", {EAGAIN, EINTR, ENOMEM, ECONNRESET}},
    {"eventfd", {EMFILE, ENFILE, ENOMEM}},
    {"pipe", {EMFILE, ENFILE}},
    {"pipe2", {EMFILE, ENFILE}},
    {"open", {EMFILE, ENFILE, ENOMEM, EACCES}},
    {"fcntl", {EMFILE, EBUSY}},
    /* a nonblocking eventfd: reading an empty one; writing cannot fail */
    {"read_eventfd", {EAGAIN}},
    {"write_eventfd", {0}},
    {"read_memfd", {EIO}},
    {"write_memfd", {ENOSPC, EFBIG}},
    {"read_pipe", {EAGAIN, EINTR}},
    {"write_pipe", {EAGAIN, EPIPE, EINTR}},
    {"read_socket", {EAGAIN, EINTR, ECONNRESET}},
    {"write_socket", {EAGAIN, EPIPE, ECONNRESET}},
    {"read", {EINTR, EIO}},
    {"write", {EINTR, ENOSPC}},
    {"pread", {EINTR, EIO}},
    {"signalfd", {EMFILE, ENFILE, ENOMEM}},
    {"prctl", {EINVAL, EPERM}},
    {"kill", {EPERM, ESRCH}},
    {"waitid", {EINTR, ECHILD}},
    {"waitpid", {EINTR, ECHILD}},
    /* ECHILD: the program reaped it (waitpid(-1) elsewhere in it) */
    {"waitid_nohang", {ECHILD}},
    {"waitpid_nohang", {ECHILD}},
    {"poll", {EINTR, ENOMEM}},
    {"fork", {EAGAIN, ENOMEM}},
    {"posix_spawn", {EAGAIN, ENOMEM}},
    {"pthread_create", {EAGAIN}},
    {"sched_getaffinity", {EINVAL}},
    {"pidfd_open", {ENOSYS, EMFILE, EPERM}},
    {"pidfd_send_signal", {ENOSYS, EPERM, ESRCH}},
};

static const int *errs_of(const char *call) {
    for (size_t i = 0; i < sizeof errlists / sizeof *errlists; i++)
        if (strcmp(errlists[i].call, call) == 0)
            return errlists[i].errs;
    static const int none[] = {0};
    return none;
}

/* ---- sites ---------------------------------------------------------------- */

typedef struct {
    char site[96]; /* file.c:line */
    char call[32];
    char scope; /* 'P' or 'C' */
    unsigned runs, injected, findings, max_n;
    unsigned errs_done; /* bitmask over errs_of(call) */
} site_t;

static site_t *sites, *all; /* this case's sites; every case's, for the report */
static size_t nsites, capsites, nall, capall;
static bool per_case = true;

static site_t *grow(site_t **tab, size_t *n, size_t *cap) {
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 256;
        *tab = realloc(*tab, *cap * sizeof **tab);
        if (!*tab) {
            perror("fi_driver");
            exit(2);
        }
    }
    site_t *s = &(*tab)[(*n)++];
    memset(s, 0, sizeof *s);
    return s;
}

/* Adds a case's counts to the report's table. */
static void merge_case(void) {
    for (size_t i = 0; i < nsites; i++) {
        site_t *a = NULL;
        for (size_t k = 0; k < nall && !a; k++)
            if (all[k].scope == sites[i].scope && strcmp(all[k].site, sites[i].site) == 0)
                a = &all[k];
        if (!a) {
            a = grow(&all, &nall, &capall);
            memcpy(a->site, sites[i].site, sizeof a->site);
            memcpy(a->call, sites[i].call, sizeof a->call);
            a->scope = sites[i].scope;
        }
        a->runs += sites[i].runs;
        a->injected += sites[i].injected;
        a->findings += sites[i].findings;
        a->errs_done |= sites[i].errs_done;
        if (sites[i].max_n > a->max_n)
            a->max_n = sites[i].max_n;
    }
}

static site_t *find_site(const char *site, char scope) {
    for (size_t i = 0; i < nsites; i++)
        if (sites[i].scope == scope && strcmp(sites[i].site, site) == 0)
            return &sites[i];
    return NULL;
}

/* ---- options ---------------------------------------------------------------- */

static bool quick;
static double budget = 0, run_timeout = 30;
static const char *scopes = "PC", *report, *prog, *only, *keep;
static int mpi_n = 2;
static struct timespec t0;
static char logpath[256], outpath[256];
static unsigned total_runs, total_findings, skipped_budget;

static double elapsed(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0.tv_sec) + (double)(t.tv_nsec - t0.tv_nsec) / 1e9;
}

/* ---- one run ---------------------------------------------------------------- */

typedef struct {
    const char *scenario, *start;
    const char *site; /* NULL: a clean run */
    unsigned n;
    int err;
    bool persist;
    char scope;
} run_t;

typedef enum { OUT_OK, OUT_FAIL, OUT_CRASH, OUT_HANG } outcome_t;

static outcome_t run_once(const run_t *r, int *status_out) {
    unlink(logpath);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fi_driver: fork");
        exit(2);
    }
    if (pid == 0) {
        setpgid(0, 0);
        int out = open(outpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (out >= 0) {
            dup2(out, 1);
            dup2(out, 2);
        }
        unsetenv("PP_FI_ROOT_PID");
        setenv("PP_FI_LOG", logpath, 1);
        char buf[32];
        if (r->site) {
            setenv("PP_FI_SITE", r->site, 1);
            snprintf(buf, sizeof buf, "%u", r->n);
            setenv("PP_FI_NTH", buf, 1);
            snprintf(buf, sizeof buf, "%d", r->err);
            setenv("PP_FI_ERRNO", buf, 1);
            setenv("PP_FI_MODE", r->persist ? "persist" : "once", 1);
            setenv("PP_FI_SCOPE", r->scope == 'P' ? "parent" : "child", 1);
        }
        if (strcmp(r->start, "mpi") == 0) {
            /* rank 0 is the program (the P scope); the agents and their
             * workers are the C scope. PROCPOOL_MPI_LIBRARY names the backend. */
            snprintf(buf, sizeof buf, "%d", mpi_n);
            setenv("PROCPOOL_BACKEND", "mpi", 1);
            setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
            setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
            execlp("mpirun", "mpirun", "--oversubscribe", "--bind-to", "none", "-n", buf, prog,
                   r->scenario, r->start, (char *)NULL);
        } else {
            execl(prog, prog, r->scenario, r->start, (char *)NULL);
        }
        _exit(127);
    }
    setpgid(pid, pid);
    double until = elapsed() + run_timeout;
    int st = 0;
    outcome_t o = OUT_HANG;
    for (;;) {
        pid_t w = waitpid(pid, &st, WNOHANG);
        if (w == pid) {
            o = WIFEXITED(st) && WEXITSTATUS(st) == 0 ? OUT_OK
                : WIFSIGNALED(st)                     ? OUT_CRASH
                                                      : OUT_FAIL;
            break;
        }
        if (elapsed() > until) {
            kill(-pid, SIGKILL);
            waitpid(pid, &st, 0);
            break;
        }
        struct timespec ts = {0, 2 * 1000000};
        nanosleep(&ts, NULL);
    }
    kill(-pid, SIGKILL); /* strays of a crashed or hung run */
    *status_out = st;
    total_runs++;
    return o;
}

/* Reads the log: adds the sites reached (in the scopes swept); returns
 * whether the injection happened. */
static bool read_log(const run_t *r) {
    FILE *f = fopen(logpath, "re");
    if (!f)
        return false;
    char line[256];
    bool injected = false;
    while (fgets(line, sizeof line, f)) {
        char kind, scope, site[96], call[32];
        if (sscanf(line, "%c %c %95s %31s", &kind, &scope, site, call) != 4)
            continue;
        if (kind == 'I') {
            injected = true;
            continue;
        }
        if (!strchr(scopes, scope) || find_site(site, scope))
            continue;
        site_t *s = grow(&sites, &nsites, &capsites);
        snprintf(s->site, sizeof s->site, "%s", site);
        snprintf(s->call, sizeof s->call, "%s", call);
        s->scope = scope;
    }
    fclose(f);
    (void)r;
    return injected;
}

static void print_output(void) {
    FILE *f = fopen(outpath, "re");
    if (!f)
        return;
    char line[512];
    int shown = 0;
    while (fgets(line, sizeof line, f) && shown < 6) {
        if (strncmp(line, "FI: ", 4) == 0 || strstr(line, "ERROR") || strstr(line, "Sanitizer") ||
            strstr(line, "procpool")) {
            printf("      %s", line);
            shown++;
        }
    }
    fclose(f);
}

static void judge(const run_t *r, outcome_t o, int st, site_t *s) {
    if (o == OUT_OK)
        return;
    total_findings++;
    if (s)
        s->findings++;
    const char *what = o == OUT_HANG ? "HANG" : o == OUT_CRASH ? "CRASH" : "FAIL";
    printf("%-5s %s:%s scope %c %s %s n=%u %s %s", what, r->scenario, r->start, r->scope,
           r->site ? r->site : "(clean run)", s ? s->call : "", r->n,
           r->err ? strerrorname_np(r->err) : "", r->persist ? "persist" : "once");
    if (o == OUT_CRASH)
        printf(" signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
    else if (o == OUT_FAIL)
        printf(" exit %d", WEXITSTATUS(st));
    printf("\n");
    print_output();
    fflush(stdout);
    if (keep) {
        char cmd[700];
        snprintf(cmd, sizeof cmd, "cp '%s' '%s'", outpath, keep);
        if (system(cmd) != 0)
            fprintf(stderr, "fi_driver: could not keep the output in %s\n", keep);
    }
}

/* Whether a failure can go on from the Nth call: not where a signal would
 * have to interrupt every call (EINTR), a peer never read (EAGAIN: the
 * stopped-peer tests' case), or a peer stay dead that is alive (EPIPE,
 * ECONNRESET: a real death is the crash tests' case). */
static bool lasting(int err) {
    return err != EINTR && err != EAGAIN && err != EPIPE && err != ECONNRESET;
}

static bool over_budget(void) { return budget > 0 && elapsed() > budget; }

static void sweep_case(const char *scenario, const char *start) {
    if (per_case)
        nsites = 0; /* every case fails every site it reaches */
    for (const char *sc = scopes; *sc; sc++) {
        run_t clean = {scenario, start, NULL, 0, 0, false, *sc};
        int st;
        outcome_t o = run_once(&clean, &st);
        judge(&clean, o, st, NULL);
        read_log(&clean);
        /* the sites this case's runs reached in this scope; the loop sees
         * those its own runs add */
        for (size_t i = 0; i < nsites; i++) {
            if (sites[i].scope != *sc || (only && strcmp(sites[i].site, only) != 0))
                continue;
            const int *errs = errs_of(sites[i].call);
            for (int e = 0; errs[e] && !(quick && e > 0); e++) {
                if (sites[i].errs_done & (1u << e))
                    continue;
                sites[i].errs_done |= 1u << e;
                for (unsigned n = 1; n; n = n < 4 ? n + 1 : n + n / 2) {
                    if (over_budget()) {
                        skipped_budget++;
                        goto next_err;
                    }
                    bool reached = false;
                    int modes = lasting(errs[e]) ? 2 : 1;
                    for (int persist = 0; persist < modes; persist++) {
                        run_t r = {scenario, start, sites[i].site, n, errs[e], persist, *sc};
                        o = run_once(&r, &st);
                        site_t *s = &sites[i]; /* read_log may move the array */
                        bool inj = read_log(&r);
                        s = &sites[i];
                        s->runs++;
                        if (inj) {
                            s->injected++;
                            if (n > s->max_n)
                                s->max_n = n;
                            reached = true;
                        }
                        judge(&r, o, st, s);
                        if (!inj)
                            break; /* not reached: persist cannot be either */
                    }
                    if (!reached || quick || n >= 256)
                        break;
                }
            next_err:;
            }
        }
    }
    if (per_case)
        merge_case();
}

static void write_report(void) {
    FILE *f = report ? fopen(report, "w") : NULL;
    if (report && !f) {
        perror(report);
        return;
    }
    unsigned pairs = 0, reached = 0;
    site_t *sites = all;
    size_t nsites = nall;
    for (size_t i = 0; i < nsites; i++) {
        const int *errs = errs_of(sites[i].call);
        unsigned ne = 0;
        for (int e = 0; errs[e]; e++)
            if (sites[i].errs_done & (1u << e))
                ne++;
        pairs += ne;
        reached += sites[i].injected > 0;
        if (f) {
            fprintf(f, "%c %-24s %-18s errnos", sites[i].scope, sites[i].site, sites[i].call);
            for (int e = 0; errs[e]; e++)
                if (sites[i].errs_done & (1u << e))
                    fprintf(f, " %s", strerrorname_np(errs[e]));
            fprintf(f, "  runs %u injected %u max_n %u findings %u\n", sites[i].runs,
                    sites[i].injected, sites[i].max_n, sites[i].findings);
        }
    }
    if (f)
        fclose(f);
    printf("fi_driver: %zu sites (%u failed at least once), %u site x errno pairs, %u runs, "
           "%u findings, %.0f s%s\n",
           nsites, reached, pairs, total_runs, total_findings, elapsed(),
           skipped_budget ? " (budget reached: some sites not swept)" : "");
}

int main(int argc, char **argv) {
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--quick") == 0)
            quick = true;
        else if (strcmp(argv[i], "--once-per-site") == 0)
            per_case = false;
        else if (strcmp(argv[i], "--budget") == 0 && i + 1 < argc)
            budget = atof(argv[++i]);
        else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc)
            run_timeout = atof(argv[++i]);
        else if (strcmp(argv[i], "--scope") == 0 && i + 1 < argc)
            scopes = argv[++i];
        else if (strcmp(argv[i], "--report") == 0 && i + 1 < argc)
            report = argv[++i];
        else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc)
            only = argv[++i];
        else if (strcmp(argv[i], "--keep") == 0 && i + 1 < argc)
            keep = argv[++i];
        else if (strcmp(argv[i], "--mpi") == 0 && i + 1 < argc)
            mpi_n = atoi(argv[++i]);
        else {
            fprintf(stderr, "fi_driver: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (i >= argc) {
        fprintf(stderr, "usage: fi_driver [--quick] [--budget S] [--timeout S] [--scope P|C|PC] "
                        "[--report FILE] [--mpi N] PROG [SCENARIO:START ...]\n");
        return 2;
    }
    prog = argv[i++];
    clock_gettime(CLOCK_MONOTONIC, &t0);
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(logpath, sizeof logpath, "%s/fi_log.%d", tmp, (int)getpid());
    snprintf(outpath, sizeof outpath, "%s/fi_out.%d", tmp, (int)getpid());
    signal(SIGPIPE, SIG_IGN);

    static const char *const scen[] = {"create", "apply",   "burst",     "map",    "imap_crash",
                                       "feed",   "timeout", "terminate", "destroy"};
    static const char *const starts[] = {"fork", "spawn", "forkserver"};
    if (i < argc) {
        for (; i < argc; i++) {
            char buf[64];
            snprintf(buf, sizeof buf, "%s", argv[i]);
            char *colon = strchr(buf, ':');
            if (!colon) {
                fprintf(stderr, "fi_driver: a case is SCENARIO:START, not %s\n", argv[i]);
                return 2;
            }
            *colon = '\0';
            sweep_case(buf, colon + 1);
        }
    } else {
        for (size_t s = 0; s < sizeof starts / sizeof *starts; s++)
            for (size_t c = 0; c < sizeof scen / sizeof *scen; c++)
                sweep_case(scen[c], starts[s]);
    }
    if (!per_case)
        merge_case();
    write_report();
    unlink(logpath);
    unlink(outpath);
    return total_findings ? 1 : 0;
}
