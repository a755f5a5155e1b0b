/*
 * bench_cli.c - the `procpool` command against xargs -P and GNU parallel.
 *
 *   Jobs of `true N` (N from a list), 2 at a time: jobs/s for procpool,
 *   xargs -P2 -n1, and GNU parallel -j2 (installed from Debian with apt-get
 *   when this runs as root and it is missing); ratios printed. The job
 *   count is sized so that one run of procpool takes about 0.7 s here (a
 *   probe run of 100 jobs first; 300 to 3000 jobs), the same count for
 *   every anchor; GNU parallel, some six times slower, runs a quarter of it
 *   once.
 *   The limit: fork+exec+wait of the same `true N` commands in tight C loops
 *   (posix_spawn + waitpid, two loops in parallel), and procpool's ratio to
 *   it. procpool, xargs and the limit run in 5 rounds, one after the other
 *   in each; ratios are medians of the rounds' ratios.
 *   --pipe wc -l and --pipe-part wc -l over a 100 MB text file: MB/s.
 *   Record splitting: 512 MB of 1 MB records ending in a multi-byte
 *   --recend, --block 16M (16 records a job), from a file and from a pipe:
 *   GB/s (goal >= 1); GNU parallel on 50 MB of the same.
 *   Start-up: `procpool true ::: 1`, median of 21 runs.
 *
 * Otherwise medians of 3 runs (GNU parallel: one run; 3 for start-up) on this
 * machine; only ratios measured in the same run are comparable. Each
 * section prints the seconds it took (the whole run: about a minute on a
 * slow two-core machine). PROCPOOL_CLI (env) overrides the path of the
 * procpool binary; BENCH_CLI_QUICK=1 runs smaller sizes. The jobs/s of the
 * first section also go to cli.csv in $PROCPOOL_BENCH_CSV_DIR when it is
 * set (bench_util.h), for bench/plots.gp.
 */
#include "bench_util.h"

#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef PROCPOOL_CLI_PATH
#define PROCPOOL_CLI_PATH "procpool"
#endif

/* Seconds taken by `sh -c cmd`, or -1 when it failed. */
static double timed(const char *cmd) {
    double t0 = now();
    int st = system(cmd);
    double t = now() - t0;
    if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        return -1;
    return t;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median_of(const char *cmd, int runs) {
    double t[64];
    for (int i = 0; i < runs; i++) {
        t[i] = timed(cmd);
        if (t[i] < 0)
            return -1;
    }
    qsort(t, (size_t)runs, sizeof t[0], cmp_d);
    return t[runs / 2];
}

extern char **environ;

/* Seconds for n runs of `true 1` .. `true n`, inflight at a time: as many
 * loops of posix_spawn + waitpid, each in its own process (one loop alone
 * spawns one job at a time, and so measures less than the machine can do).
 * The same command lines as the jobs procpool and xargs run from the list:
 * with an argument coreutils' true sets up the locale (to answer --help),
 * which costs it about a third more than bare `true` here. */
static double spawn_limit(int n, int inflight) {
    char num[24];
    char *argv[] = {"true", num, NULL};
    const char *path = access("/bin/true", X_OK) == 0 ? "/bin/true" : "/usr/bin/true";
    double t0 = now();
    for (int l = 0; l < inflight; l++) {
        pid_t loop = fork();
        if (loop < 0)
            return -1;
        if (loop == 0) {
            for (int i = l; i < n; i += inflight) {
                pid_t pid;
                int st;
                snprintf(num, sizeof num, "%d", i + 1);
                if (posix_spawn(&pid, path, NULL, NULL, argv, environ) != 0 ||
                    waitpid(pid, &st, 0) != pid)
                    _exit(1);
            }
            _exit(0);
        }
    }
    int st, bad = 0;
    for (int l = 0; l < inflight; l++)
        if (wait(&st) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
            bad = 1;
    return bad ? -1 : now() - t0;
}

/* A file of mb records of 1 MiB, each ending in "</rec>\n". */
static int make_records(const char *path, int mb) {
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    static char rec[1 << 20];
    memset(rec, 'x', sizeof rec);
    for (size_t i = 99; i < sizeof rec; i += 100)
        rec[i] = '\n';
    memcpy(rec + sizeof rec - 7, "</rec>\n", 7);
    for (int i = 0; i < mb; i++)
        if (fwrite(rec, 1, sizeof rec, f) != sizeof rec)
            return fclose(f), -1;
    return fclose(f);
}

static int have(const char *prog) {
    char cmd[256];
    snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", prog);
    return system(cmd) == 0;
}

static double t_section;

/* The seconds since the last section began; starts the next. */
static void section_end(void) {
    double t = now();
    printf("(this section: %.1f s)\n", t - t_section);
    t_section = t;
}

/* Write the numbers 1..n, one a line, to path. */
static int write_list(const char *path, int n) {
    char cmd[400];
    snprintf(cmd, sizeof cmd, "seq %d > %s", n, path);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void) {
    const char *pp = getenv("PROCPOOL_CLI") ? getenv("PROCPOOL_CLI") : PROCPOOL_CLI_PATH;
    int quick = getenv("BENCH_CLI_QUICK") != NULL;
    double t_begin = now();
    t_section = t_begin;
    char cmd[4096];
    if (access(pp, X_OK) != 0 && strchr(pp, '/')) {
        printf("bench_cli: %s not built; skipped\n", pp);
        return 0;
    }
    if (!have("parallel") && geteuid() == 0 && have("apt-get")) {
        printf("bench_cli: installing GNU parallel (apt-get install -y parallel)...\n");
        fflush(stdout);
        if (system("apt-get install -y -qq parallel >/dev/null 2>&1") != 0)
            (void)system("apt-get update -qq >/dev/null 2>&1 && "
                         "apt-get install -y -qq parallel >/dev/null 2>&1");
    }
    int gnu = have("parallel");
    char tmpd[] = "/tmp/bench_cli.XXXXXX";
    if (!mkdtemp(tmpd)) {
        perror("mkdtemp");
        return 1;
    }
    char list[300], glist[300];
    snprintf(list, sizeof list, "%s/list", tmpd);
    snprintf(glist, sizeof glist, "%s/glist", tmpd);

    /* the job count: about 0.7 s (quick: a third of a second) of procpool here */
    int probe = 100;
    if (write_list(list, probe) != 0)
        return 1;
    snprintf(cmd, sizeof cmd, "%s -j2 true < %s", pp, list);
    double t_probe = median_of(cmd, 1);
    int lo = quick ? 200 : 300, hi = quick ? 1000 : 3000;
    int njobs = t_probe > 0 ? (int)(probe / t_probe * (quick ? 0.33 : 0.7)) / 100 * 100 : lo;
    njobs = njobs < lo ? lo : njobs > hi ? hi : njobs;
    int gjobs = njobs / 4;
    if (write_list(list, njobs) != 0 || write_list(glist, gjobs) != 0)
        return 1;

    printf("== %d jobs of `true N`, 2 at a time (median of 5 rounds; GNU parallel: %d jobs, "
           "once)\n",
           njobs, gjobs);
    /* in rounds, procpool, xargs and the limit one after the other, so that
     * a change in the machine's load (it may be shared) hits all three; the
     * ratios are medians of the rounds' ratios */
    char ppcmd[700], xcmd[700];
    snprintf(ppcmd, sizeof ppcmd, "%s -j2 true < %s", pp, list);
    snprintf(xcmd, sizeof xcmd, "xargs -P2 -n1 true < %s", list);
    enum { ROUNDS = 5 };
    double t_pp[ROUNDS], t_x[ROUNDS], t_lim[ROUNDS], r_x[ROUNDS], r_lim[ROUNDS];
    for (int i = 0; i < ROUNDS; i++) {
        t_pp[i] = timed(ppcmd);
        t_x[i] = timed(xcmd);
        t_lim[i] = spawn_limit(njobs, 2);
        if (t_pp[i] <= 0 || t_x[i] <= 0 || t_lim[i] <= 0) {
            printf("bench_cli: a run of `true` jobs failed\n");
            return 1;
        }
        r_x[i] = t_x[i] / t_pp[i];
        r_lim[i] = t_lim[i] / t_pp[i];
    }
    qsort(t_pp, ROUNDS, sizeof t_pp[0], cmp_d);
    qsort(t_x, ROUNDS, sizeof t_x[0], cmp_d);
    qsort(t_lim, ROUNDS, sizeof t_lim[0], cmp_d);
    qsort(r_x, ROUNDS, sizeof r_x[0], cmp_d);
    qsort(r_lim, ROUNDS, sizeof r_lim[0], cmp_d);
    double t_g = -1;
    if (gnu) {
        snprintf(cmd, sizeof cmd, "parallel --will-cite -j2 true < %s", glist);
        t_g = median_of(cmd, 1);
    }
    printf("procpool -j2 true      %8.0f jobs/s\n", njobs / t_pp[ROUNDS / 2]);
    printf("xargs -P2 -n1 true     %8.0f jobs/s   procpool/xargs    = %.2fx\n",
           njobs / t_x[ROUNDS / 2], r_x[ROUNDS / 2]);
    if (t_g > 0)
        printf("parallel -j2 true      %8.0f jobs/s   procpool/parallel = %.2fx\n", gjobs / t_g,
               (t_g / gjobs) / (t_pp[ROUNDS / 2] / njobs));
    else
        printf("parallel               (GNU parallel not installed)\n");
    printf("limit: posix_spawn+wait %8.0f jobs/s   procpool/limit    = %.0f%% (goal >= 90%%)\n",
           njobs / t_lim[ROUNDS / 2], 100.0 * r_lim[ROUNDS / 2]);
    const char *hdr = "tool,jobs_per_s";
    bench_csv("cli", hdr, "procpool -j2,%.1f", njobs / t_pp[ROUNDS / 2]);
    bench_csv("cli", hdr, "xargs -P2 -n1,%.1f", njobs / t_x[ROUNDS / 2]);
    if (t_g > 0)
        bench_csv("cli", hdr, "GNU parallel -j2,%.1f", gjobs / t_g);
    bench_csv("cli", hdr, "posix_spawn+wait (limit),%.1f", njobs / t_lim[ROUNDS / 2]);
    section_end();

    int mb = quick ? 50 : 100;
    char big[300];
    snprintf(big, sizeof big, "%s/big.txt", tmpd);
    snprintf(cmd, sizeof cmd,
             "awk 'BEGIN { s = \"the quick brown fox jumps over the lazy dog 0123456789 "
             "abcdefghij\"; for (i = 0; i < 40000; i++) print i \" \" s }' > %s.1 && "
             "for i in $(seq %d); do cat %s.1; done > %s && rm -f %s.1",
             big, (mb * 1024 * 1024) / (40000 * 80) + 1, big, big, big);
    if (system(cmd) != 0)
        return 1;
    struct stat st;
    stat(big, &st);
    double mbytes = (double)st.st_size / 1e6;
    printf("== --pipe wc -l over a %.0f MB text file (median of 3)\n", mbytes);
    snprintf(cmd, sizeof cmd, "%s --pipe wc -l < %s > /dev/null", pp, big);
    double p1 = median_of(cmd, 3);
    snprintf(cmd, sizeof cmd, "%s --pipe --block 10M wc -l < %s > /dev/null", pp, big);
    double p10 = median_of(cmd, 3);
    snprintf(cmd, sizeof cmd, "%s --pipe-part -a %s --block 10M wc -l > /dev/null", pp, big);
    double pp_part = median_of(cmd, 3);
    snprintf(cmd, sizeof cmd, "cat %s | wc -l > /dev/null", big);
    double cat = median_of(cmd, 3);
    printf("procpool --pipe (1M blocks)        %7.0f MB/s\n", mbytes / p1);
    printf("procpool --pipe --block 10M        %7.0f MB/s\n", mbytes / p10);
    printf("procpool --pipe-part --block 10M   %7.0f MB/s\n", mbytes / pp_part);
    printf("cat | wc -l (one process)          %7.0f MB/s\n", mbytes / cat);
    if (gnu) {
        snprintf(cmd, sizeof cmd, "parallel --will-cite --pipe wc -l < %s > /dev/null", big);
        double g1 = median_of(cmd, 1);
        snprintf(cmd, sizeof cmd,
                 "parallel --will-cite --pipepart -a %s --block 10M wc -l > /dev/null", big);
        double gpart = median_of(cmd, 1);
        printf("parallel --pipe (1M blocks)        %7.0f MB/s   procpool/parallel = %.1fx\n",
               mbytes / g1, g1 / p1);
        printf("parallel --pipepart --block 10M    %7.0f MB/s   procpool/parallel = %.1fx\n",
               mbytes / gpart, gpart / pp_part);
    }
    unlink(big);
    section_end();

    int gb_mb = quick ? 200 : 512;
    char recs[300];
    snprintf(recs, sizeof recs, "%s/records", tmpd);
    if (make_records(recs, gb_mb) != 0)
        return 1;
    double gb = gb_mb * 1048576.0 / 1e9;
    printf("== --pipe --recend '</rec>\\n' --block 16M over %.2f GB of 1 MiB records "
           "(median of 3)\n",
           gb);
    snprintf(cmd, sizeof cmd, "%s --pipe --recend '</rec>\\n' --block 16M wc -c < %s > /dev/null",
             pp, recs);
    double r_file = median_of(cmd, 3);
    snprintf(cmd, sizeof cmd,
             "cat %s | %s --pipe --recend '</rec>\\n' --block 16M wc -c > /dev/null", recs, pp);
    double r_pipe = median_of(cmd, 3);
    printf("procpool, stdin a file             %7.2f GB/s (goal >= 1)\n", gb / r_file);
    printf("procpool, stdin a pipe             %7.2f GB/s (goal >= 1)\n", gb / r_pipe);
    if (gnu) {
        snprintf(cmd, sizeof cmd,
                 "head -c 50M %s | parallel --will-cite --pipe --recend '</rec>\\n' "
                 "--block 16M wc -c > /dev/null 2>&1",
                 recs);
        double g = median_of(cmd, 1);
        printf("parallel, 50 MB from a pipe        %7.0f MB/s   procpool(pipe)/parallel = %.0fx\n",
               52.4288 / g, (gb / r_pipe) / (0.0524288 / g));
    }
    unlink(recs);
    section_end();

    printf("== start-up: `procpool true ::: 1` (median of 21)\n");
    snprintf(cmd, sizeof cmd, "%s true ::: 1", pp);
    double t[21];
    for (int i = 0; i < 21; i++) {
        /* fork+exec directly: system() would add a shell's start-up */
        double t0 = now();
        pid_t pid = fork();
        if (pid == 0) {
            execl(pp, pp, "true", ":::", "1", (char *)NULL);
            _exit(127);
        }
        int status;
        waitpid(pid, &status, 0);
        t[i] = now() - t0;
    }
    qsort(t, 21, sizeof t[0], cmp_d);
    printf("procpool true ::: 1                %7.2f ms\n", t[10] * 1e3);
    if (gnu) {
        snprintf(cmd, sizeof cmd, "parallel --will-cite true ::: 1");
        printf("parallel true ::: 1                %7.2f ms (with sh -c; median of 3)\n",
               median_of(cmd, 3) * 1e3);
    }
    section_end();
    printf("bench_cli: %.0f s in all\n", now() - t_begin);
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpd);
    (void)system(cmd);
    return 0;
}
