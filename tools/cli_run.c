/*
 * cli_run.c - the `procpool` command's parent-side extras of running and
 * output: --number-of-cpus/-cores/-threads/-sockets, the start gates
 * (--delay, --load, --memfree), and --results/--files (each job's output
 * in files), and --trace (the jobs' timeline).
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

/* ---------------------------------------------------------------- */
/* --number-of-*                                                     */
/* ---------------------------------------------------------------- */

/* Read one whole number from a file; -1 when there is none. */
static long read_num(const char *path) {
    FILE *f = fopen(path, "re");
    long v = -1;
    if (f) {
        if (fscanf(f, "%ld", &v) != 1)
            v = -1;
        fclose(f);
    }
    return v;
}

int cli_print_count(int what) {
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (ncpu < 1)
        ncpu = 1;
    long count = ncpu;
    if (what != COUNT_THREADS) {
        /* distinct packages (sockets), or distinct (package, core) pairs */
        long *seen = calloc((size_t)ncpu * 2 + 2, sizeof *seen);
        long n = 0;
        if (!seen)
            die("out of memory");
        for (long c = 0; c < 4096 && n < ncpu; c++) {
            char path[128];
            snprintf(path, sizeof path,
                     "/sys/devices/system/cpu/cpu%ld/topology/physical_package_id", c);
            long pkg = read_num(path);
            if (pkg < 0)
                continue;
            snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%ld/topology/core_id", c);
            long core = what == COUNT_SOCKETS ? 0 : read_num(path);
            bool dup = false;
            for (long i = 0; i < n && !dup; i++)
                dup = seen[2 * i] == pkg && seen[2 * i + 1] == core;
            if (!dup) {
                seen[2 * n] = pkg;
                seen[2 * n + 1] = core;
                n++;
            }
        }
        free(seen);
        if (n > 0)
            count = n;
        else if (what == COUNT_SOCKETS)
            count = 1;
    }
    printf("%ld\n", count);
    return 0;
}

/* ---------------------------------------------------------------- */
/* --results, --files                                                */
/* ---------------------------------------------------------------- */

/* mkdir -p the directories of path (not its last part). */
static int make_dirs(char *path) {
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        int rc = mkdir(path, 0777);
        *p = '/';
        if (rc < 0 && errno != EEXIST)
            return -1;
    }
    return 0;
}

static int write_file(const char *path, const char *data, size_t len) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0)
        return -1;
    while (len) {
        ssize_t w = write(fd, data, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            close(fd);
            return -1;
        }
        data += w;
        len -= (size_t)w;
    }
    return close(fd);
}

/* A value as one path component, as GNU parallel writes it: \ as \\, / as \_. */
static void add_component(sbuf_t *p, const char *v) {
    for (; *v; v++) {
        if (*v == '\\')
            sb_add(p, "\\\\", 2);
        else if (*v == '/')
            sb_add(p, "\\_", 2);
        else
            sb_addc(p, *v);
    }
    if (!p->len || p->p[p->len - 1] == '/')
        sb_add(p, "", 0);
}

/* A job's stdout, stderr and sequence number into the files base + names[i]
 * (directories made as needed), stopping at the first failure; *path is
 * left naming the file that failed. 0, or -1 with errno set. */
static int write_results(sbuf_t *path, const sbuf_t *base, const char *const names[3],
                         const sbuf_t *out, const sbuf_t *err, const char *seqs, size_t nseq) {
    const char *data[3] = {out->p, err->p, seqs};
    size_t len[3] = {out->len, err->len, nseq};
    for (int i = 0; i < 3; i++) {
        path->len = 0;
        sb_add(path, base->p, base->len);
        sb_adds(path, names[i]);
        if (make_dirs(path->p) < 0 || write_file(path->p, data[i] ? data[i] : "", len[i]) < 0)
            return -1;
    }
    return 0;
}

int cli_results_save(const cli_opts_t *o, char *const *args, size_t nargs, uint64_t seq, int slot,
                     sbuf_t *out, sbuf_t *err, char *msg, size_t msglen) {
    sbuf_t base = {0}, path = {0};
    char seqs[32];
    int n = snprintf(seqs, sizeof seqs, "%llu\n", (unsigned long long)seq);
    size_t nreal = tmpl_real_args(&o->tmpl, nargs);
    const char *outname = NULL;
    int rc = 0;
    if (o->results) {
        tmpl_expand_raw(&o->restmpl, &base, args, nargs, seq, slot);
        bool named = o->restmpl.has_rs && base.len && base.p[base.len - 1] != '/';
        if (named) { /* --results {}.out: the file, .err, .seq */
            static const char *const sfx[3] = {"", ".err", ".seq"};
            rc = write_results(&path, &base, sfx, out, err, seqs, (size_t)n);
            path.len = 0;
            sb_add(&path, base.p, base.len);
        } else { /* DIR/1/a/2/b/{stdout,stderr,seq} */
            if (base.len && base.p[base.len - 1] != '/')
                sb_addc(&base, '/');
            for (size_t k = 0; k < nreal && !o->zero_args; k++) {
                char num[24];
                snprintf(num, sizeof num, "%zu/", k + 1);
                sb_adds(&base, num);
                add_component(&base, args[k]);
                sb_addc(&base, '/');
            }
            static const char *const names[3] = {"stdout", "stderr", "seq"};
            rc = write_results(&path, &base, names, out, err, seqs, (size_t)n);
            path.len = 0;
            sb_add(&path, base.p, base.len);
            sb_adds(&path, "stdout");
        }
        outname = path.p;
        if (rc < 0)
            snprintf(msg, msglen, "--results: cannot write '%s': %s", path.p, strerror(errno));
    } else { /* --files: stdout in a file of its own in the temporary directory */
        const char *dir = o->tmpdir ? o->tmpdir : getenv("TMPDIR");
        sb_adds(&path, dir && *dir ? dir : "/tmp");
        sb_adds(&path, "/parXXXXXX.par");
        int fd = mkstemps(path.p, 4);
        if (fd < 0) {
            rc = -1;
            snprintf(msg, msglen, "--files: cannot make a file in '%s': %s",
                     dir && *dir ? dir : "/tmp", strerror(errno));
        } else {
            close(fd);
            rc = write_file(path.p, out->p ? out->p : "", out->len);
            if (rc < 0)
                snprintf(msg, msglen, "--files: cannot write '%s': %s", path.p, strerror(errno));
        }
        outname = path.p;
    }
    /* the output is in the files (--files alone keeps only stdout, as GNU
     * parallel does); --files prints the name of stdout's */
    out->len = 0;
    err->len = 0;
    if (o->files && rc == 0) {
        sb_adds(out, outname);
        sb_addc(out, '\n');
    }
    sb_free(&base);
    sb_free(&path);
    return rc;
}

/* ---------------------------------------------------------------- */
/* start gates: --delay, --load, --memfree; --nice                   */
/* ---------------------------------------------------------------- */

static double now_mono(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void nap(double s) {
    if (s <= 0)
        return;
    struct timespec ts = {(time_t)s, (long)((s - floor(s)) * 1e9)};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* The 1-minute load average; -1 when unknown. */
static double load1(void) {
    double l[1];
    return getloadavg(l, 1) == 1 ? l[0] : -1;
}

/* MemAvailable in bytes; SIZE_MAX when unknown. */
static size_t mem_available(void) {
    FILE *f = fopen("/proc/meminfo", "re");
    size_t kb = SIZE_MAX;
    if (f) {
        char line[256];
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "MemAvailable: %zu kB", &kb) == 1)
                break;
        fclose(f);
    }
    return kb == SIZE_MAX ? SIZE_MAX : kb * 1024;
}

void cli_start_gate(const cli_opts_t *o, cli_shared_t *sh) {
    static bool niced;
    if (o->nice && !niced) { /* the worker, and so its jobs: this niceness, as GNU parallel */
        niced = true;
        if (setpriority(PRIO_PROCESS, 0, o->nice) < 0)
            fprintf(stderr, "procpool: --nice %d: %s\n", o->nice, strerror(errno));
    }
    while ((o->load > 0 || o->memfree) && !__atomic_load_n(&sh->halted, __ATOMIC_ACQUIRE)) {
        double l = o->load > 0 ? load1() : -1;
        size_t m = o->memfree ? mem_available() : SIZE_MAX;
        if ((o->load <= 0 || l < o->load) && (!o->memfree || m >= o->memfree))
            break;
        nap(0.1 + 0.05 * (double)(getpid() % 7)); /* the workers do not poll in step */
    }
    if (o->delay > 0) {
        /* the start times, one delay apart: take the next free one */
        uint64_t step = (uint64_t)(o->delay * 1e9);
        for (;;) {
            uint64_t now = (uint64_t)(now_mono() * 1e9);
            uint64_t next = __atomic_load_n(&sh->next_start, __ATOMIC_ACQUIRE);
            uint64_t at = next > now ? next : now;
            if (__atomic_compare_exchange_n(&sh->next_start, &next, at + step, false,
                                            __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
                nap((double)(at - now) / 1e9);
                break;
            }
        }
    }
}

/* ---------------------------------------------------------------- */
/* --progress                                                        */
/* ---------------------------------------------------------------- */

void cli_progress(bool first, bool final, uint64_t running, uint64_t done, double avg, int jobs) {
    if (first)
        fprintf(stderr,
                "\nComputers / CPU cores / Max jobs to run\n1:local / %d / %d\n\n"
                "Computer:jobs running/jobs completed/%%of started jobs/Average seconds to "
                "complete\n",
                pp_cpu_count(), jobs);
    fprintf(stderr, "\rlocal:%llu/%llu/100%%/%.1fs %s", (unsigned long long)running,
            (unsigned long long)done, avg, final ? "\n" : "");
    fflush(stderr);
}

/* ---------------------------------------------------------------- */
/* --retry-failed                                                    */
/* ---------------------------------------------------------------- */

int cli_retry_commands(const char *joblog, strvec_t *cmds, char *err, size_t errlen) {
    const char *path = joblog[0] == '+' ? joblog + 1 : joblog;
    FILE *f = fopen(path, "re");
    if (!f) {
        snprintf(err, errlen, "--retry-failed: cannot read the joblog '%s': %s", path,
                 strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) > 0) {
        if (line[n - 1] == '\n')
            line[--n] = 0;
        char *p = line, *end;
        unsigned long long seq = strtoull(p, &end, 10);
        if (end == p || *end != '\t' || seq == 0 || seq > 100000000)
            continue;                                   /* the header, or a torn line */
        for (int field = 1; field <= 8 && p; field++) { /* to Command, the 9th */
            p = strchr(p, '\t');
            if (p)
                p++;
        }
        if (!p)
            continue;
        while (cmds->n < seq)
            sv_push(cmds, xstrdup(""));
        free(cmds->v[seq - 1]); /* the last line of a job counts */
        cmds->v[seq - 1] = xstrdup(p);
    }
    free(line);
    fclose(f);
    return 0;
}

/* ---------------------------------------------------------------- */
/* --pipe: --tee, --round-robin, --cat, --fifo                       */
/* ---------------------------------------------------------------- */

static const char *tmp_dir(const cli_opts_t *o) {
    const char *d = o->tmpdir ? o->tmpdir : getenv("TMPDIR");
    return d && *d ? d : "/tmp";
}

/* Copy stdin into a temporary file (unlinked at once) that becomes fd 0,
 * unless it is a regular file already. */
static int spool_stdin(const cli_opts_t *o, char *err, size_t errlen) {
    struct stat st;
    if (fstat(0, &st) == 0 && S_ISREG(st.st_mode))
        return 0;
    char path[4200];
    snprintf(path, sizeof path, "%s/parXXXXXX", tmp_dir(o));
    int fd = mkstemp(path);
    if (fd < 0) {
        snprintf(err, errlen, "cannot make a temporary file in '%s': %s", tmp_dir(o),
                 strerror(errno));
        return -1;
    }
    unlink(path);
    char buf[1 << 16];
    for (;;) {
        ssize_t n = read(0, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(err, errlen, "reading stdin: %s", strerror(errno));
            return -1;
        }
        if (n == 0)
            break;
        for (ssize_t at = 0; at < n;) {
            ssize_t w = write(fd, buf + at, (size_t)(n - at));
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0) {
                snprintf(err, errlen, "writing a temporary file in '%s': %s", tmp_dir(o),
                         strerror(errno));
                return -1;
            }
            at += w;
        }
    }
    if (lseek(fd, 0, SEEK_SET) < 0 || dup2(fd, 0) < 0) {
        snprintf(err, errlen, "stdin: %s", strerror(errno));
        return -1;
    }
    close(fd);
    return 0;
}

int cli_pipe_setup(cli_opts_t *o, int *tee_fd, uint64_t *tee_size, char *err, size_t errlen) {
    *tee_fd = -1;
    if (!o->pipe || !(o->tee || o->round_robin))
        return 0;
    if (spool_stdin(o, err, errlen) < 0)
        return -1;
    struct stat st;
    off_t pos = lseek(0, 0, SEEK_CUR);
    if (fstat(0, &st) < 0 || pos < 0) {
        snprintf(err, errlen, "stdin: %s", strerror(errno));
        return -1;
    }
    o->pipe = false;
    if (o->tee) { /* each job (one per input) reads all of stdin */
        *tee_fd = fcntl(0, F_DUPFD_CLOEXEC, 3);
        *tee_size = (uint64_t)st.st_size;
        return *tee_fd < 0 ? -1 : 0;
    }
    /* --round-robin: the blocks shared out among (at most) one job per job
     * slot, each job given all of its share at once: --pipe-part over stdin,
     * with as many parts as there are blocks, but no more than the slots */
    uint64_t size = (uint64_t)(st.st_size - pos), blk = o->block ? o->block : 1;
    uint64_t parts = (size + blk - 1) / blk;
    if (o->jobs > 0 && parts > (uint64_t)o->jobs)
        parts = (uint64_t)o->jobs;
    if (parts == 0)
        parts = 1;
    o->pipe_part = true;
    sv_push(&o->arg_files, xstrdup("/proc/self/fd/0"));
    o->block_parts = 0;
    o->block = (size_t)(size / parts + 1);
    return 0;
}

int cli_cat_make(const cli_opts_t *o, const char *data, size_t len, int fd, uint64_t off,
                 uint64_t end, char *path, size_t cap, pid_t *writer, char *msg, size_t msglen) {
    *writer = 0;
    snprintf(path, cap, "%s/parXXXXXX", tmp_dir(o));
    int out = mkstemp(path);
    if (out < 0) {
        snprintf(msg, msglen, "cannot make a temporary file in '%s': %s", tmp_dir(o),
                 strerror(errno));
        return -1;
    }
    if (o->fifo) { /* a fifo by that name; a writer process fills it as the job reads */
        close(out);
        unlink(path);
        if (mkfifo(path, 0600) < 0) {
            snprintf(msg, msglen, "cannot make a fifo '%s': %s", path, strerror(errno));
            return -1;
        }
        pid_t pid = fork();
        if (pid < 0) {
            unlink(path);
            snprintf(msg, msglen, "fork: %s", strerror(errno));
            return -1;
        }
        if (pid > 0) {
            *writer = pid;
            return 0;
        }
        signal(SIGPIPE, SIG_DFL);
        out = open(path, O_WRONLY | O_CLOEXEC); /* waits for the job to open it */
        if (out < 0)
            _exit(1);
    }
    char buf[1 << 16];
    bool ok = true;
    while (ok && (data ? len > 0 : off < end)) {
        size_t n;
        const char *from;
        if (data) {
            from = data;
            n = len;
        } else {
            size_t want = end - off < sizeof buf ? (size_t)(end - off) : sizeof buf;
            ssize_t r = fd == g_wcfg.part_fd ? part_pread(buf, want, off)
                                             : pread(fd, buf, want, (off_t)off);
            if (r <= 0) {
                ok = false;
                break;
            }
            from = buf;
            n = (size_t)r;
        }
        ssize_t w = write(out, from, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            ok = false;
            break;
        }
        if (data)
            data += w, len -= (size_t)w;
        else
            off += (uint64_t)w;
    }
    if (o->fifo)
        _exit(ok ? 0 : 1);
    if (close(out) < 0 || !ok) {
        unlink(path);
        snprintf(msg, msglen, "writing '%s': %s", path, strerror(errno ? errno : EIO));
        return -1;
    }
    return 0;
}

void cli_cat_done(const char *path, pid_t writer) {
    unlink(path);
    if (writer > 0) { /* a job that never opened the fifo leaves its writer waiting */
        kill(writer, SIGKILL);
        while (waitpid(writer, NULL, 0) < 0 && errno == EINTR)
            ;
    }
}

int cli_pipe_header(const cli_opts_t *o, int part_fd, char **hdr, size_t *len, char *err,
                    size_t errlen) {
    sbuf_t h = {0};
    char c;
    uint64_t at = 0;
    for (;;) { /* a byte at a time: what follows the line stays for the blocks */
        ssize_t n = o->pipe_part ? pread(part_fd, &c, 1, (off_t)at) : read(0, &c, 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(err, errlen, "--header: reading the input: %s", strerror(errno));
            sb_free(&h);
            return -1;
        }
        if (n == 0)
            break;
        at++;
        sb_addc(&h, c);
        if (c == '\n')
            break;
        if (h.len >= (1u << 16)) {
            snprintf(err, errlen, "--header: the header line is longer than 64K");
            sb_free(&h);
            return -1;
        }
    }
    *hdr = h.p;
    *len = h.len;
    return 0;
}

/* ---------------------------------------------------------------- */
/* --trace FILE                                                      */
/* ---------------------------------------------------------------- */

/* The parent's main thread adds the events; the signal thread (SIGINT,
 * SIGTERM) and exit close the file: the lock keeps an event whole. */
static pthread_mutex_t tr_lock = PTHREAD_MUTEX_INITIALIZER;
static int tr_fd = -1;
static pid_t tr_owner;   /* the process that opened it (workers inherit the handler) */
static double tr_origin; /* CLOCK_MONOTONIC seconds at the open: ts 0 */
static sbuf_t tr_buf;    /* whole events not yet written */
static size_t tr_flush_at = 64 * 1024;
static bool tr_any; /* an event was added: the next one starts with ",\n" */
static const char *tr_path;

static double tr_mono(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Write the buffer (whole events); on an error say so once and stop tracing. */
static void tr_flush(void) {
    const char *p = tr_buf.p;
    size_t n = tr_buf.len;
    while (n && tr_fd >= 0) {
        ssize_t w = write(tr_fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            char line[600];
            int m = snprintf(line, sizeof line, "procpool: Warning: --trace %s: %s\n", tr_path,
                             w < 0 ? strerror(errno) : "short write");
            if (write(2, line, (size_t)m) < 0) {
                /* nowhere to say it */
            }
            close(tr_fd);
            tr_fd = -1;
            break;
        }
        p += w;
        n -= (size_t)w;
    }
    tr_buf.len = 0;
}

/* An event ends: flush past the threshold. */
static void tr_end_event(void) {
    tr_any = true;
    if (tr_buf.len >= tr_flush_at)
        tr_flush();
}

static void tr_begin_event(void) {
    if (tr_any)
        sb_add(&tr_buf, ",\n", 2);
}

int cli_trace_open(const char *path, char *err, size_t errlen) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open trace file '%s': %s", path, strerror(errno));
        return -1;
    }
    const char *knob = getenv("PROCPOOL_CLI_TRACE_BUFFER"); /* tests: flush sooner */
    if (knob && *knob) {
        char *end;
        unsigned long long v = strtoull(knob, &end, 10);
        if (!*end)
            tr_flush_at = (size_t)v;
    }
    tr_origin = tr_mono();
    tr_owner = getpid();
    tr_path = path;
    tr_fd = fd;
    sb_adds(&tr_buf, "[\n");
    tr_flush(); /* a run killed before any event still leaves "[" */
    if (tr_fd < 0) {
        snprintf(err, errlen, "cannot write trace file '%s'", path);
        return -1;
    }
    pthread_mutex_lock(&tr_lock);
    tr_begin_event();
    sb_adds(&tr_buf, "{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":1,"
                     "\"args\":{\"name\":\"procpool jobs\"}}");
    tr_end_event();
    pthread_mutex_unlock(&tr_lock);
    return 0;
}

void cli_trace_lanes(int nslots) {
    pthread_mutex_lock(&tr_lock);
    for (int s = 1; s <= nslots && tr_fd >= 0; s++) {
        char ev[300];
        int m = snprintf(ev, sizeof ev,
                         "{\"ph\":\"M\",\"name\":\"thread_name\",\"pid\":1,\"tid\":%d,"
                         "\"args\":{\"name\":\"slot %d\"}}",
                         s, s);
        tr_begin_event();
        sb_add(&tr_buf, ev, (size_t)m);
        tr_end_event();
        m = snprintf(ev, sizeof ev,
                     "{\"ph\":\"M\",\"name\":\"thread_sort_index\",\"pid\":1,\"tid\":%d,"
                     "\"args\":{\"sort_index\":%d}}",
                     s, s);
        tr_begin_event();
        sb_add(&tr_buf, ev, (size_t)m);
        tr_end_event();
    }
    pthread_mutex_unlock(&tr_lock);
}

/* The length of the valid UTF-8 sequence at p[0..n), or 0 when it is not one
 * (overlong forms, surrogates and code points past U+10FFFF are not). */
static size_t utf8_len(const unsigned char *p, size_t n) {
    unsigned c = p[0];
    size_t len;
    unsigned lo = 0x80, hi = 0xBF; /* the second byte's range */
    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else
        return 0;
    if (n < len || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if ((p[i] & 0xC0) != 0x80)
            return 0;
    return len;
}

/* s[0..n) as a JSON string's contents: quotes and backslashes escaped,
 * control characters as \u00XX, each byte of invalid UTF-8 as U+FFFD. */
static void json_str(sbuf_t *b, const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        unsigned c = p[i];
        if (c == '"' || c == '\\') {
            sb_addc(b, '\\');
            sb_addc(b, (char)c);
            i++;
        } else if (c < 0x20 || c == 0x7f) {
            char e[8];
            snprintf(e, sizeof e, "\\u%04x", c);
            sb_add(b, e, 6);
            i++;
        } else if (c < 0x80) {
            sb_addc(b, (char)c);
            i++;
        } else {
            size_t l = utf8_len(p + i, n - i);
            if (l) {
                sb_add(b, s + i, l);
                i += l;
            } else {
                sb_adds(b, "\\ufffd");
                i++;
            }
        }
    }
}

static const char *sig_name(int sig, char *buf, size_t cap) {
    static const struct {
        int sig;
        const char *name;
    } names[] = {
        {SIGHUP, "SIGHUP"},       {SIGINT, "SIGINT"},   {SIGQUIT, "SIGQUIT"}, {SIGILL, "SIGILL"},
        {SIGTRAP, "SIGTRAP"},     {SIGABRT, "SIGABRT"}, {SIGBUS, "SIGBUS"},   {SIGFPE, "SIGFPE"},
        {SIGKILL, "SIGKILL"},     {SIGUSR1, "SIGUSR1"}, {SIGSEGV, "SIGSEGV"}, {SIGUSR2, "SIGUSR2"},
        {SIGPIPE, "SIGPIPE"},     {SIGALRM, "SIGALRM"}, {SIGTERM, "SIGTERM"}, {SIGCHLD, "SIGCHLD"},
        {SIGCONT, "SIGCONT"},     {SIGSTOP, "SIGSTOP"}, {SIGTSTP, "SIGTSTP"}, {SIGTTIN, "SIGTTIN"},
        {SIGTTOU, "SIGTTOU"},     {SIGURG, "SIGURG"},   {SIGXCPU, "SIGXCPU"}, {SIGXFSZ, "SIGXFSZ"},
        {SIGVTALRM, "SIGVTALRM"}, {SIGPROF, "SIGPROF"}, {SIGSYS, "SIGSYS"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i].sig == sig)
            return names[i].name;
    snprintf(buf, cap, "SIG%d", sig);
    return buf;
}

#define TRACE_NAME_MAX 1000 /* bytes of the command line kept in a span's name */

void cli_trace_job(uint64_t seq, int slot, const char *cmd, size_t cmd_len, const void *tries,
                   uint32_t ntries) {
    pthread_mutex_lock(&tr_lock);
    for (uint32_t i = 0; i < ntries && tr_fd >= 0; i++) {
        job_try_t t; /* the records sit at any offset: copy them out */
        memcpy(&t, (const char *)tries + i * sizeof t, sizeof t);
        int sig = t.signal;
        int exitval = t.exitval;
        const char *outcome = "ok";
        if (t.timed_out) { /* as the joblog has it: -1, and the signal that ended it */
            outcome = "timeout";
            exitval = -1;
            if (!sig)
                sig = SIGTERM;
        } else if (sig) {
            outcome = "killed";
        } else if (exitval) {
            outcome = "failed";
        }
        double ts = (t.t0 - tr_origin) * 1e6;
        if (ts < 0)
            ts = 0;
        tr_begin_event();
        sb_adds(&tr_buf, "{\"ph\":\"X\",\"name\":\"");
        size_t n = cmd_len;
        if (n > TRACE_NAME_MAX) { /* cut on a character boundary */
            n = TRACE_NAME_MAX;
            while (n && ((unsigned char)cmd[n] & 0xC0) == 0x80)
                n--;
        }
        json_str(&tr_buf, cmd, n);
        if (n < cmd_len)
            sb_adds(&tr_buf, "...");
        char ev[400], sb[32];
        int m = snprintf(ev, sizeof ev,
                         "\",\"cat\":\"job\",\"pid\":1,\"tid\":%d,\"ts\":%.3f,\"dur\":%.3f,"
                         "\"args\":{\"seq\":%llu,\"exit\":%d,",
                         slot, ts, t.dur * 1e6, (unsigned long long)seq, exitval);
        sb_add(&tr_buf, ev, (size_t)m);
        if (sig) {
            m = snprintf(ev, sizeof ev, "\"signal\":\"%s\",", sig_name(sig, sb, sizeof sb));
            sb_add(&tr_buf, ev, (size_t)m);
        }
        m = snprintf(ev, sizeof ev, "\"outcome\":\"%s\"}}", outcome);
        sb_add(&tr_buf, ev, (size_t)m);
        tr_end_event();
    }
    pthread_mutex_unlock(&tr_lock);
}

void cli_trace_close(void) {
    if (!tr_owner || getpid() != tr_owner)
        return;
    pthread_mutex_lock(&tr_lock);
    if (tr_fd >= 0) {
        sb_adds(&tr_buf, "\n]\n");
        tr_flush();
        if (tr_fd >= 0)
            close(tr_fd);
        tr_fd = -1;
    }
    sb_free(&tr_buf);
    pthread_mutex_unlock(&tr_lock);
}
