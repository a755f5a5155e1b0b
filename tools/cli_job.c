/*
 * cli_job.c - the worker side of the `procpool` command.
 *
 * A pool task runs one job: it expands the command for the job's arguments
 * and job slot, starts it in a process group of its own (vfork + exec, so
 * the child can also get PR_SET_PDEATHSIG: a job dies with its worker even
 * when the worker is SIGKILLed), feeds its stdin (--pipe blocks, --pipe-part
 * ranges, else /dev/null), reads its stdout and stderr fully into separate
 * buffers, and returns them with the exit status, signal and times.
 *
 * Timeouts: the task enforces --timeout itself (TERM to the job's process
 * group, KILL 200 ms later) so the job's output so far is kept; the pool's
 * task_timeout (set a little longer) is the backstop. When the pool kills a
 * worker (that backstop, pp_pool_terminate on Ctrl-C, --halt now) it sends
 * SIGTERM first: the handler installed by cli_worker_init takes the running
 * job's whole process group down before the worker _exit()s.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

extern char **environ;

cli_worker_cfg_t g_wcfg;

/* The running job, for the SIGTERM handler. */
static volatile pid_t cur_pid = 0;
static int my_slot = 0;
static int devnull = -1;

static double now_mono(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static double now_real(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void release_slot(void) {
    if (my_slot > 0 && g_wcfg.sh)
        __atomic_store_n(&g_wcfg.sh->slots[my_slot - 1], 0, __ATOMIC_RELEASE);
}

/* SIGTERM in a worker: stop the job's process group, then leave. Only
 * async-signal-safe calls. */
static void on_term(int sig) {
    pid_t pg = cur_pid;
    if (pg > 0) {
        kill(-pg, SIGTERM);
        kill(-pg, SIGCONT);
        struct timespec ms = {0, 1000000};
        for (int i = 0; i < 30; i++) { /* up to 30 ms for a clean exit */
            if (waitpid(pg, NULL, WNOHANG) == pg)
                break;
            nanosleep(&ms, NULL);
        }
        kill(-pg, SIGKILL);
    }
    release_slot();
    _exit(128 + sig);
}

/* The jobs' environment: the worker's, with PARALLEL_SEQ and
 * PARALLEL_JOBSLOT in two fixed entries rewritten for each job (no
 * setenv, no allocation per job). */
static void find_bash_funcs(void);

static char **job_env;
static char env_seq[48] = "PARALLEL_SEQ=", env_slot[48] = "PARALLEL_JOBSLOT=";

static void build_job_env(void) {
    size_t n = 0;
    for (char **e = environ; e && *e; e++)
        n++;
    job_env = xmalloc((n + 3) * sizeof *job_env);
    size_t k = 0;
    for (char **e = environ; e && *e; e++)
        if (strncmp(*e, "PARALLEL_SEQ=", 13) != 0 && strncmp(*e, "PARALLEL_JOBSLOT=", 17) != 0)
            job_env[k++] = *e;
    job_env[k++] = env_seq;
    job_env[k++] = env_slot;
    job_env[k] = NULL;
}

void cli_worker_init(void *arg) {
    (void)arg;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_term;
    sigfillset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL); /* a job that closes its stdin early */
    sigaction(SIGHUP, &sa, NULL);  /* a hang-up: the parent lets the running jobs finish */
    /* claim a job slot ({%}): the first free one, else one whose worker is gone */
    pid_t me = getpid();
    cli_shared_t *sh = g_wcfg.sh;
    for (int pass = 0; pass < 2 && !my_slot; pass++)
        for (int i = 0; i < g_wcfg.nslots && !my_slot; i++) {
            pid_t cur = __atomic_load_n(&sh->slots[i], __ATOMIC_ACQUIRE);
            if (pass == 1 && cur != 0 && kill(cur, 0) < 0 && errno == ESRCH) {
                if (__atomic_compare_exchange_n(&sh->slots[i], &cur, me, false, __ATOMIC_ACQ_REL,
                                                __ATOMIC_ACQUIRE))
                    my_slot = i + 1;
            } else if (pass == 0 && cur == 0) {
                pid_t zero = 0;
                if (__atomic_compare_exchange_n(&sh->slots[i], &zero, me, false, __ATOMIC_ACQ_REL,
                                                __ATOMIC_ACQUIRE))
                    my_slot = i + 1;
            }
        }
    if (!my_slot)
        my_slot = (int)(me % (g_wcfg.nslots > 0 ? g_wcfg.nslots : 1)) + 1;
    devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    build_job_env();
    find_bash_funcs();
}

/* ---------------------------------------------------------------- */
/* PATH lookup, cached for the last name                             */
/* ---------------------------------------------------------------- */

static char *cache_name, *cache_path;

static const char *find_program(const char *name) {
    if (strchr(name, '/'))
        return name;
    if (cache_name && strcmp(cache_name, name) == 0)
        return cache_path;
    const char *path = getenv("PATH");
    if (!path)
        path = "/usr/local/bin:/usr/bin:/bin";
    sbuf_t b = {0};
    const char *found = NULL;
    for (const char *p = path;; p++) {
        const char *e = strchr(p, ':');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        b.len = 0;
        if (n)
            sb_add(&b, p, n);
        else
            sb_addc(&b, '.');
        sb_addc(&b, '/');
        sb_adds(&b, name);
        struct stat st;
        if (access(b.p, X_OK) == 0 && stat(b.p, &st) == 0 && S_ISREG(st.st_mode)) {
            found = b.p;
            break;
        }
        if (!e)
            break;
        p = e;
    }
    if (!found) {
        sb_free(&b);
        return NULL;
    }
    free(cache_name);
    free(cache_path);
    cache_name = xstrdup(name);
    cache_path = b.p;
    return cache_path;
}

/* ---------------------------------------------------------------- */
/* the user's shell                                                  */
/* ---------------------------------------------------------------- */

/* An executable regular file named name in PATH (or name itself when it has
 * a '/'): a malloc'd path, or NULL. */
static char *which(const char *name) {
    struct stat st;
    if (strchr(name, '/'))
        return access(name, X_OK) == 0 && stat(name, &st) == 0 && !S_ISDIR(st.st_mode)
                   ? xstrdup(name)
                   : NULL;
    const char *path = getenv("PATH");
    if (!path)
        path = "/usr/local/bin:/usr/bin:/bin";
    sbuf_t b = {0};
    for (const char *p = path;; p++) {
        const char *e = strchr(p, ':');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        b.len = 0;
        sb_add(&b, n ? p : ".", n ? n : 1);
        sb_addc(&b, '/');
        sb_adds(&b, name);
        if (access(b.p, X_OK) == 0 && stat(b.p, &st) == 0 && !S_ISDIR(st.st_mode))
            return b.p;
        if (!e)
            break;
        p = e;
    }
    sb_free(&b);
    return NULL;
}

/* GNU parallel's list of the shells it recognises in a process's argv[0]. */
static const char *const known_shells[] = {
    "ash",   "bash", "bsd-csh",   "csh",   "dash", "fdsh",  "fish", "fizsh", "ksh",
    "ksh93", "lksh", "mksh",      "pdksh", "posh", "rbash", "rc",   "rush",  "rzsh",
    "sash",  "sh",   "static-sh", "tcsh",  "yash", "zsh",   NULL,
};

/* What may follow a shell's name in argv[0]: nothing (but blanks), or a
 * blank and anything but '(' ("bash -x" yes, "sh (deleted)" no). */
static bool shell_tail_ok(const char *t, char close) {
    if (close) {
        if (*t != close)
            return false;
        t++;
    }
    if (t[0] == ' ' && t[1] && t[1] != '(' && t[1] != ' ')
        return true;
    while (*t == ' ')
        t++;
    return *t == 0;
}

/* The shell argv[0] a0 names (GNU parallel's parent_shell pattern:
 * "bash", "/bin/bash", "-bash", "[bash]", "busybox sh", "-sh (sh)"), or
 * NULL; *dash: it was a login shell's "-name". */
static const char *shell_in_argv0(const char *a0, bool *dash) {
    if (strcmp(a0, "-sh (sh)") == 0) { /* FreeBSD's login sh */
        *dash = false;
        return "sh";
    }
    const char *p = a0;
    char close = 0;
    if (*p == '[') {
        p++;
        close = ']';
    } else if (strncmp(p, "busybox ", 8) == 0) {
        p += 8;
    } else {
        const char *sp = strchr(p, ' ');
        size_t lead = sp ? (size_t)(sp - p) : strlen(p);
        for (size_t i = lead; i-- > 0;)
            if (p[i] == '/') {
                p += i + 1;
                break;
            }
    }
    *dash = *p == '-';
    if (*dash)
        p++;
    for (const char *const *s = known_shells; *s; s++) {
        size_t n = strlen(*s);
        if (strncmp(p, *s, n) == 0 && shell_tail_ok(p + n, close))
            return *s;
    }
    return NULL;
}

/* The nearest process from this one up that is a shell, as a path; NULL
 * when none is, or when the one found is not in PATH (as GNU parallel). */
static char *parent_shell(void) {
    pid_t pid = getpid();
    char file[64], buf[4096];
    for (int depth = 0; pid > 0 && depth < 64; depth++) {
        snprintf(file, sizeof file, "/proc/%d/cmdline", (int)pid);
        int fd = open(file, O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            ssize_t n = read(fd, buf, sizeof buf - 1);
            close(fd);
            buf[n > 0 ? n : 0] = 0; /* argv[0]: up to the first NUL */
            bool dash;
            const char *name = n > 0 ? shell_in_argv0(buf, &dash) : NULL;
            if (name) {
                if (dash && strcmp(name, "sh") == 0) { /* -sh: which shell is it? */
                    char exe[PATH_MAX];
                    snprintf(file, sizeof file, "/proc/%d/exe", (int)pid);
                    ssize_t m = readlink(file, exe, sizeof exe - 1);
                    if (m > 0) {
                        exe[m] = 0;
                        const char *base = strrchr(exe, '/');
                        for (const char *const *s = known_shells; base && *s; s++)
                            if (strcmp(base + 1, *s) == 0)
                                return xstrdup(exe);
                    }
                }
                char *path = which(name);
                if (!path && strcmp(name, "csh") == 0 && dash)
                    path = which("tcsh");
                return path;
            }
        }
        /* the parent: field 4 of /proc/PID/stat, after the ")" of the name */
        snprintf(file, sizeof file, "/proc/%d/stat", (int)pid);
        fd = open(file, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            break;
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        buf[n > 0 ? n : 0] = 0;
        const char *rp = strrchr(buf, ')');
        int ppid = 0;
        if (!rp || sscanf(rp + 1, " %*c %d", &ppid) != 1 || ppid == (int)pid)
            break;
        pid = (pid_t)ppid;
    }
    return NULL;
}

const char *cli_find_shell(char *err, size_t errlen) {
    const char *ps = getenv("PARALLEL_SHELL"), *sh = getenv("SHELL");
    char *found = NULL;
    const char *want = NULL;
    if (ps && *ps)
        want = ps;
    else if ((found = parent_shell()))
        return found;
    else if (sh && *sh)
        want = sh;
    else
        want = "/bin/sh";
    found = which(want);
    if (!found)
        snprintf(err, errlen, "shell '%.200s' not found (from %s)", want,
                 want == ps   ? "$PARALLEL_SHELL"
                 : want == sh ? "$SHELL"
                              : "the default");
    return found;
}

/* With bash, a command word may name a function exported with `export -f`
 * (BASH_FUNC_name%%=... in the environment), and $BASH_ENV runs first: such
 * commands go through the shell, never straight to exec. */
static strvec_t bash_funcs;
static bool bash_env;

static void find_bash_funcs(void) {
    const char *sh = g_wcfg.shell ? g_wcfg.shell : "/bin/sh";
    const char *base = strrchr(sh, '/');
    base = base ? base + 1 : sh;
    bool is_bash = strcmp(base, "bash") == 0 || strcmp(base, "rbash") == 0;
    const char *be = getenv("BASH_ENV");
    bash_env = is_bash && be && *be;
    for (char **e = environ; is_bash && e && *e; e++) {
        if (strncmp(*e, "BASH_FUNC_", 10) != 0)
            continue;
        const char *name = *e + 10, *end = strstr(name, "%%=");
        if (!end)
            end = strstr(name, "()="); /* bash before 4.3 */
        if (end && end > name)
            sv_push(&bash_funcs, xstrndup(name, (size_t)(end - name)));
    }
}

static bool is_bash_func(const char *word) {
    for (size_t i = 0; i < bash_funcs.n; i++)
        if (strcmp(bash_funcs.v[i], word) == 0)
            return true;
    return false;
}

/* ---------------------------------------------------------------- */
/* running one job                                                   */
/* ---------------------------------------------------------------- */

typedef struct {
    sbuf_t out, err;
    int exitval, sig;
    bool timed_out;
    spill_t sp[2]; /* stdout, stderr past CLI_SPILL_AT bytes (cli_out.c) */
} run_t;

static volatile int child_errno;

/* Start argv[0] (a path) in a new process group with stdin/stdout/stderr
 * set; returns the pid or -errno. */
static pid_t start_child(const char *path, char *const *argv, int in, int out, int err) {
    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, &old);
    pid_t parent = getpid();
    child_errno = 0;
    pid_t pid = vfork();
    if (pid == 0) {
        /* the child: only system calls from here to exec */
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = SIG_DFL;
        static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGQUIT, SIGCHLD};
        for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
            sigaction(sigs[i], &sa, NULL);
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0) {
            child_errno = errno;
            _exit(127);
        }
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execve(path, argv, job_env ? job_env : environ);
        child_errno = errno ? errno : ENOEXEC;
        _exit(127);
    }
    int e = errno;
    if (pid > 0) {
        setpgid(pid, pid); /* both sides, so no race (fails harmlessly after exec) */
        cur_pid = pid;
    }
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (pid < 0)
        return -e;
    return pid;
}

static int open_pidfd(pid_t pid) {
#ifdef SYS_pidfd_open
    return (int)syscall(SYS_pidfd_open, pid, 0);
#else
    (void)pid;
    return -1;
#endif
}

static void set_nonblock(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

/* --tag: the job's arguments and a TAB, put before every line. */
static sbuf_t cur_tag;

/* Append src[0..n) to dst with the tag before every line; *bol: the
 * stream is at the start of a line (a line that goes out in pieces is
 * tagged once). */
static void add_tagged(sbuf_t *dst, const char *src, size_t n, bool *bol) {
    size_t i = 0;
    while (i < n) {
        const char *nl = memchr(src + i, '\n', n - i);
        size_t e = nl ? (size_t)(nl - src) + 1 : n;
        if (*bol)
            sb_add(dst, cur_tag.p, cur_tag.len);
        sb_add(dst, src + i, e - i);
        *bol = nl != NULL;
        i = e;
    }
}

/* The output could not be written (the reader went away, a full disk):
 * the run stops. The parent learns it from shared->out_error and ends as GNU
 * parallel does; here the job is stopped (run_once sends the signal). */
static volatile int out_dead;

static void out_broken(int err) {
    if (out_dead)
        return;
    out_dead = err ? err : EIO;
    int zero = 0;
    __atomic_compare_exchange_n(&g_wcfg.sh->out_error, &zero, out_dead, false, __ATOMIC_ACQ_REL,
                                __ATOMIC_ACQUIRE);
    __atomic_store_n(&g_wcfg.sh->halted, 1, __ATOMIC_RELEASE);
}

static void write_fd(int fd, const char *p, size_t n) {
    while (n && !out_dead) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            out_broken(w < 0 ? errno : EIO);
            break;
        }
        p += w;
        n -= (size_t)w;
    }
}

/* --line-buffer: may this job's lines go out now? Always, but with -k:
 * only the oldest job not yet printed streams; the others keep their lines
 * until they become it (or return them with their result), as in GNU
 * parallel. */
static uint64_t cur_idx;

static bool lb_streaming(void) {
    return !g_wcfg.o->keep_order ||
           __atomic_load_n(&g_wcfg.sh->lb_head, __ATOMIC_ACQUIRE) == cur_idx;
}

/* --line-buffer: write the complete lines of buf (from *done on) to fd,
 * in one write() so that lines of different jobs do not mix. */
static void flush_lines(int fd, sbuf_t *b, size_t *done, bool all, bool *bol) {
    size_t end = b->len;
    if (!all) {
        while (end > *done && b->p[end - 1] != '\n')
            end--;
    }
    if (end > *done && g_wcfg.o->tag) {
        static sbuf_t t;
        t.len = 0;
        add_tagged(&t, b->p + *done, end - *done, bol);
        write_fd(fd, t.p, t.len);
        *done = end;
        return;
    }
    write_fd(fd, b->p + *done, end - *done);
    *done = end;
}

/* --line-buffer, a job that streams: first what it spilled while it waited
 * (-k), then its complete lines; the buffer keeps only the last, partial
 * line, and a line longer than CLI_SPILL_AT goes out in pieces. */
static void lb_stream(int fd, sbuf_t *b, size_t *done, spill_t *sp, bool all) {
    if (sp->fd >= 0) {
        spill_close(sp);
        int rc = spill_copy(fd, sp->path, strlen(sp->path));
        sp->path[0] = 0; /* spill_copy removed it */
        if (rc)
            out_broken(rc < 0 ? -rc : rc & 0xffff);
    }
    flush_lines(fd, b, done, all, &sp->bol); /* where the spill ended, or true */
    if (b->len - *done >= CLI_SPILL_AT)
        flush_lines(fd, b, done, true, &sp->bol);
    if (*done) {
        memmove(b->p, b->p + *done, b->len - *done);
        b->len -= *done;
        *done = 0;
    }
}

/* Grouped output (or -k --line-buffer waiting its turn): past CLI_SPILL_AT
 * bytes in memory, the stream goes on to its spill file (tagged there). */
static void spill_big(spill_t *sp, sbuf_t *b, bool all) {
    if (!g_wcfg.spill_dir || (!all && b->len < CLI_SPILL_AT) || (all && sp->fd < 0))
        return;
    int rc = spill_put(sp, b->p, b->len, g_wcfg.o->tag ? &cur_tag : NULL);
    if (rc < 0)
        out_broken(-rc);
    b->len = 0;
}

/* Stdin source for a job: a block in memory, or a range of the -a file. */
typedef struct {
    const char *data;
    size_t len, pos;
    /* JOB_RANGE */
    bool part;
    uint64_t off, end; /* what to send, after record alignment */
    char *pbuf;
    size_t plen, ppos;
} feed_t;

static int run_once(char *const *argv, const char *path, feed_t *fd_in, run_t *r, double deadline) {
    const cli_opts_t *o = g_wcfg.o;
    int po[2], pe[2], pi[2] = {-1, -1};
    if (pipe2(po, O_CLOEXEC) < 0)
        return -errno;
    if (pipe2(pe, O_CLOEXEC) < 0) {
        close(po[0]), close(po[1]);
        return -errno;
    }
    bool feeding = fd_in != NULL;
    if (feeding && pipe2(pi, O_CLOEXEC) < 0) {
        close(po[0]), close(po[1]), close(pe[0]), close(pe[1]);
        return -errno;
    }
    int in = feeding ? pi[0] : devnull;
    int outfd = o->ungroup ? 1 : po[1], errfd = o->ungroup ? 2 : pe[1];
    pid_t pid = start_child(path, argv, in, outfd, errfd);
    close(po[1]);
    close(pe[1]);
    if (feeding)
        close(pi[0]);
    if (pid < 0) {
        close(po[0]), close(pe[0]);
        if (feeding)
            close(pi[1]);
        return (int)pid;
    }
    /* The job ends when its stdout and stderr are at EOF and it has exited.
     * Without a deadline that is: read to EOF, then one blocking waitpid;
     * a pidfd (in the poll set) is only needed to enforce --timeout. */
    int pidfd = deadline > 0 ? open_pidfd(pid) : -1;
    if (feeding) {
        set_nonblock(pi[1]);
        /* a bigger pipe: the block goes in a few writes, not 64k at a time
         * (best effort: capped by /proc/sys/fs/pipe-max-size) */
        size_t want = fd_in->part ? (size_t)(fd_in->end - fd_in->off) : fd_in->len;
        if (want > 65536)
            (void)fcntl(pi[1], F_SETPIPE_SZ, (int)(want < (1u << 20) ? want : (1u << 20)));
    }
    bool out_open = true, err_open = true, alive = true, in_open = feeding;
    int status = 0;
    bool term_sent = false;
    double kill_at = 0;
    size_t lb_out = 0, lb_err = 0;
    bool nosplice = false;
    bool out_killed = false;
    double out_kill_at = 0;
    while (out_open || err_open || alive) {
        struct pollfd pf[4];
        int n = 0, io = -1, ie = -1, ii = -1, ip = -1;
        if (out_open)
            pf[io = n++] = (struct pollfd){po[0], POLLIN, 0};
        if (err_open)
            pf[ie = n++] = (struct pollfd){pe[0], POLLIN, 0};
        if (in_open)
            pf[ii = n++] = (struct pollfd){pi[1], POLLOUT, 0};
        if (alive && pidfd >= 0)
            pf[ip = n++] = (struct pollfd){pidfd, POLLIN, 0};
        int wait_ms = -1;
        double now = now_mono();
        if (deadline > 0) {
            if (!term_sent && now >= deadline) {
                r->timed_out = true;
                term_sent = true;
                kill(-pid, SIGTERM);
                kill(-pid, SIGCONT);
                kill_at = now + 0.2;
            }
            if (term_sent && kill_at > 0 && now >= kill_at) {
                kill(-pid, SIGKILL);
                kill_at = 0;
            }
            double next = !term_sent ? deadline : kill_at > 0 ? kill_at : now + 0.05;
            wait_ms = (int)((next - now) * 1000) + 1;
        }
        bool lb_held = o->line_buffer && !lb_streaming();
        if (lb_held && (wait_ms < 0 || wait_ms > 50))
            wait_ms = 50;        /* look again soon whether this job may stream */
        if (out_dead && alive) { /* the output is gone: stop the job, as GNU parallel does */
            if (!out_killed) {
                out_killed = true;
                kill(-pid, out_dead == EPIPE ? SIGPIPE : SIGTERM);
                kill(-pid, SIGCONT);
                out_kill_at = now + 0.2;
            } else if (out_kill_at > 0 && now >= out_kill_at) {
                kill(-pid, SIGKILL);
                out_kill_at = 0;
            }
            if (wait_ms < 0 || wait_ms > 50)
                wait_ms = 50;
        }
        if (alive && pidfd < 0 && !out_open && !err_open) {
            /* no pidfd: wait for the exit directly */
            if (waitpid(pid, &status, 0) == pid)
                alive = false;
            continue;
        }
        if (n == 0)
            break;
        int rc = poll(pf, (nfds_t)n, wait_ms);
        if (rc < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (ii >= 0 && pf[ii].revents) {
            if (pf[ii].revents & (POLLERR | POLLHUP)) {
                in_open = false;
            } else if (!fd_in->part) {
                ssize_t w = write(pi[1], fd_in->data + fd_in->pos, fd_in->len - fd_in->pos);
                if (w > 0)
                    fd_in->pos += (size_t)w;
                else if (w < 0 && errno != EAGAIN && errno != EINTR)
                    in_open = false;
                if (fd_in->pos >= fd_in->len)
                    in_open = false;
            } else {
                /* a range of a file: spliced from the page cache into the
                 * pipe, no copy here; pread + write where splice cannot */
                while (fd_in->ppos >= fd_in->plen && !nosplice && in_open) {
                    uint64_t left = fd_in->end - fd_in->off;
                    if (!left) {
                        in_open = false;
                        break;
                    }
                    size_t len = left < (1u << 20) ? (size_t)left : (1u << 20);
                    loff_t off = (loff_t)part_pos(fd_in->off, &len);
                    ssize_t sp = splice(g_wcfg.part_fd, &off, pi[1], NULL, len,
                                        SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
                    if (sp > 0) {
                        fd_in->off += (uint64_t)sp;
                        continue;
                    }
                    if (sp == 0)
                        in_open = false; /* the file is shorter now */
                    else if (errno == EINVAL || errno == ENOSYS)
                        nosplice = true;
                    else if (errno != EAGAIN && errno != EINTR)
                        in_open = false;
                    break;
                }
                if (in_open && !nosplice) {
                    /* spliced what the pipe takes; wait for room */
                } else if (in_open && fd_in->ppos >= fd_in->plen) {
                    uint64_t left = fd_in->end - fd_in->off;
                    size_t want = left < (1u << 18) ? (size_t)left : (1u << 18);
                    ssize_t got = want ? part_pread(fd_in->pbuf, want, fd_in->off) : 0;
                    if (got <= 0) {
                        in_open = false;
                    } else {
                        fd_in->off += (uint64_t)got;
                        fd_in->plen = (size_t)got;
                        fd_in->ppos = 0;
                    }
                }
                if (in_open && (nosplice || fd_in->ppos < fd_in->plen)) { /* --header's too */
                    ssize_t w = write(pi[1], fd_in->pbuf + fd_in->ppos, fd_in->plen - fd_in->ppos);
                    if (w > 0)
                        fd_in->ppos += (size_t)w;
                    else if (w < 0 && errno != EAGAIN && errno != EINTR)
                        in_open = false;
                    if (fd_in->ppos >= fd_in->plen && fd_in->off >= fd_in->end)
                        in_open = false;
                }
            }
            if (!in_open)
                close(pi[1]);
        }
        int fds[2] = {io, ie};
        for (int k = 0; k < 2; k++) {
            if (fds[k] < 0 || !pf[fds[k]].revents)
                continue;
            sbuf_t *b = k == 0 ? &r->out : &r->err;
            int fd = k == 0 ? po[0] : pe[0];
            sb_grow(b, 65536);
            ssize_t got = read(fd, b->p + b->len, b->cap - b->len - 1);
            if (got > 0) {
                b->len += (size_t)got;
            } else if (got == 0 || (errno != EINTR && errno != EAGAIN)) {
                if (k == 0)
                    out_open = false;
                else
                    err_open = false;
            }
        }
        if (out_dead) {
            r->out.len = r->err.len = lb_out = lb_err = 0; /* nowhere to go */
        } else if (o->line_buffer && (!lb_held || lb_streaming())) {
            lb_stream(1, &r->out, &lb_out, &r->sp[0], false);
            lb_stream(2, &r->err, &lb_err, &r->sp[1], false);
        } else if (!o->ungroup) {
            spill_big(&r->sp[0], &r->out, false);
            spill_big(&r->sp[1], &r->err, false);
        }
        if (ip >= 0 && pf[ip].revents) {
            if (waitpid(pid, &status, WNOHANG) == pid)
                alive = false;
        }
    }
    if (in_open)
        close(pi[1]);
    if (alive)
        waitpid(pid, &status, 0);
    if (pidfd >= 0)
        close(pidfd);
    close(po[0]);
    close(pe[0]);
    if (r->timed_out || term_sent)
        kill(-pid, SIGKILL); /* whatever of the group is left */
    cur_pid = 0;
    if (o->line_buffer && lb_streaming()) {
        lb_stream(1, &r->out, &lb_out, &r->sp[0], true);
        lb_stream(2, &r->err, &lb_err, &r->sp[1], true);
        r->out.len = r->err.len = 0; /* already written */
    } /* else (-k, not the oldest): nothing went out; the result carries it all */
    if (out_kill_at > 0)
        kill(-pid, SIGKILL); /* whatever of the group is left */
    if (WIFSIGNALED(status)) {
        r->exitval = 0;
        r->sig = WTERMSIG(status);
    } else {
        r->exitval = WEXITSTATUS(status);
        r->sig = 0;
        if (r->exitval == 127 && child_errno) {
            char msg[512];
            int m = snprintf(msg, sizeof msg, "procpool: %s: %s\n", argv[0], strerror(child_errno));
            sb_add(&r->err, msg, (size_t)m);
        }
    }
    return 0;
}

/* Count the job's end and apply the --halt rule where it is known first: in
 * the worker, before it takes its next job (so -j1 --halt soon,fail=1 starts
 * nothing after the failing job). Returns 1 when this job met the rule. */
static int count_and_halt(bool failed, int exitval, int sig) {
    const cli_opts_t *o = g_wcfg.o;
    cli_shared_t *sh = g_wcfg.sh;
    uint64_t done = __atomic_add_fetch(&sh->done, 1, __ATOMIC_ACQ_REL);
    uint64_t nf = failed ? __atomic_add_fetch(&sh->failed, 1, __ATOMIC_ACQ_REL)
                         : __atomic_load_n(&sh->failed, __ATOMIC_ACQUIRE);
    uint64_t nok = failed ? __atomic_load_n(&sh->ok, __ATOMIC_ACQUIRE)
                          : __atomic_add_fetch(&sh->ok, 1, __ATOMIC_ACQ_REL);
    if (o->halt_when == HALT_NEVER)
        return 0;
    if ((o->halt_what == HALT_FAIL && !failed) || (o->halt_what == HALT_SUCCESS && failed))
        return 0;
    uint64_t cnt = o->halt_what == HALT_FAIL ? nf : o->halt_what == HALT_SUCCESS ? nok : done;
    bool hit;
    if (o->halt_pct) {
        uint64_t base = sh->total ? sh->total : done;
        hit = (double)cnt * 100.0 >= o->halt_n * (double)base;
    } else {
        hit = (double)cnt >= o->halt_n;
    }
    if (!hit)
        return 0;
    int expected = 0;
    if (!__atomic_compare_exchange_n(&sh->halted, &expected, 1, false, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE))
        return 0; /* someone else halted first */
    int st = nf > 100 ? 101 : (int)nf;
    if (o->halt_what == HALT_FAIL)
        st = exitval > 0 ? exitval : sig ? 128 + sig : 1;
    else if (o->halt_what == HALT_SUCCESS)
        st = 0;
    sh->halt_status = st > 255 ? 255 : st;
    return 1;
}

int cli_job_task(const void *arg, size_t len, pp_buf_t *out) {
    const cli_opts_t *o = g_wcfg.o;
    job_hdr_t h;
    if (len < sizeof h)
        return pp_buf_fail(out, "short job record");
    memcpy(&h, arg, sizeof h);
    cur_idx = h.idx;
    if (h.kind == JOB_RANGE && g_wcfg.nparts) { /* --pipe-part: this job's file */
        if (h.part_file >= g_wcfg.nparts)
            return pp_buf_fail(out, "job record names no file");
        const cli_part_t *f = &g_wcfg.parts[h.part_file];
        g_wcfg.part_fd = f->fd; /* this process's copy: one job at a time */
        g_wcfg.pipe_header = f->header;
        g_wcfg.pipe_header_len = f->header_len;
    }
    job_res_t res;
    memset(&res, 0, sizeof res);
    res.slot = my_slot;
    if (__atomic_load_n(&g_wcfg.sh->halted, __ATOMIC_ACQUIRE)) {
        res.skipped = 1;
        return pp_buf_append(out, &res, sizeof res);
    }
    /* the arguments */
    const char *p = (const char *)arg + sizeof h, *end = (const char *)arg + len;
    char *argsv_stack[16];
    char **args = h.nargs <= 16 ? argsv_stack : xmalloc(h.nargs * sizeof *args);
    for (uint32_t i = 0; i < h.nargs; i++) {
        const char *z = memchr(p, 0, (size_t)(end - p));
        if (!z)
            return pp_buf_fail(out, "corrupt job record");
        args[i] = (char *)p;
        p = z + 1;
    }
    /* --cat, --fifo: the block in a file (a fifo) whose name is {} */
    char catpath[4200] = "";
    pid_t cat_writer = 0;
    if ((o->cat || o->fifo) && h.kind != JOB_ARGS && h.nargs == 0) {
        char msg[300];
        int crc;
        if (h.kind == JOB_BLOCK) {
            crc = cli_cat_make(o, p, (size_t)h.data_len, -1, 0, 0, catpath, sizeof catpath,
                               &cat_writer, msg, sizeof msg);
        } else {
            crc = cli_cat_make(o, NULL, 0, g_wcfg.part_fd, h.part_off, h.part_end, catpath,
                               sizeof catpath, &cat_writer, msg, sizeof msg);
        }
        if (crc < 0)
            return pp_buf_fail(out, "%s", msg);
        args[0] = catpath;
        h.nargs = 1;
        h.kind = JOB_ARGS; /* no stdin */
    }
    /* the command */
    static sbuf_t cmd, words;
    cmd.len = 0;
    words.len = 0;
    bool shell = o->tmpl.needs_shell || (bash_env && o->shell != SHELL_NEVER);
    char *argv_stack[64];
    char **argv = argv_stack;
    const char *path = NULL;
    if (!shell) {
        size_t nw = tmpl_expand_words(&o->tmpl, &words, args, h.nargs, h.seq, my_slot);
        if (nw == 0 || !words.p[0]) {
            shell = true;
        } else {
            if (nw + 1 > 64)
                argv = xmalloc((nw + 1) * sizeof *argv);
            char *w = words.p;
            for (size_t i = 0; i < nw; i++) {
                argv[i] = w;
                w += strlen(w) + 1;
            }
            argv[nw] = NULL;
            path = o->shell != SHELL_NEVER && is_bash_func(argv[0]) ? NULL : find_program(argv[0]);
            if (!path && o->shell != SHELL_NEVER)
                shell = true; /* let the shell report it, as it would */
            else if (!path)
                path = argv[0];
        }
    }
    if (shell || g_wcfg.want_cmd)
        tmpl_expand_shell(&o->tmpl, &cmd, args, h.nargs, h.seq, my_slot);
    if (shell) {
        if (argv != argv_stack)
            free(argv);
        argv = argv_stack;
        path = g_wcfg.shell ? g_wcfg.shell : "/bin/sh";
        argv[0] = (char *)path; /* $0 is the shell's path, as in GNU parallel */
        argv[1] = "-c";
        argv[2] = cmd.p;
        argv[3] = NULL;
    }
    /* stdin */
    feed_t feed, *fin = NULL;
    memset(&feed, 0, sizeof feed);
    static char *pbuf;
    static sbuf_t hblock; /* --pipe --header: the header, then the block */
    if (h.kind == JOB_BLOCK && g_wcfg.pipe_header_len) {
        hblock.len = 0;
        sb_add(&hblock, g_wcfg.pipe_header, g_wcfg.pipe_header_len);
        sb_add(&hblock, p, (size_t)h.data_len);
        feed.data = hblock.p;
        feed.len = hblock.len;
        fin = &feed;
    } else if (h.kind == JOB_BLOCK) {
        feed.data = p;
        feed.len = (size_t)h.data_len;
        fin = &feed;
    } else if (h.kind == JOB_RANGE) {
        feed.part = true;
        feed.off = h.part_off;
        feed.end = h.part_end;
        if (!pbuf)
            pbuf = xmalloc(1u << 18);
        feed.pbuf = pbuf;
        fin = &feed;
    }
    char seqs[32], slots[16];
    snprintf(seqs, sizeof seqs, "%llu", (unsigned long long)h.seq);
    snprintf(slots, sizeof slots, "%d", my_slot);
    snprintf(env_seq + 13, sizeof env_seq - 13, "%s", seqs);
    snprintf(env_slot + 17, sizeof env_slot - 17, "%s", slots);

    if (o->tag) {
        cur_tag.len = 0;
        if (o->tagstring) { /* --tagstring: its replacement strings expanded */
            tmpl_expand_raw(&o->tagtmpl, &cur_tag, args, h.nargs, h.seq, my_slot);
        } else {
            for (uint32_t i = 0; i < tmpl_real_args(&o->tmpl, h.nargs); i++) {
                if (i)
                    sb_addc(&cur_tag, ' ');
                sb_adds(&cur_tag, args[i]);
            }
        }
        sb_addc(&cur_tag, '\t');
    }

    cli_start_gate(o, g_wcfg.sh); /* --nice, --load, --memfree, --delay */
    if ((o->load > 0 || o->memfree || o->delay > 0) &&
        __atomic_load_n(&g_wcfg.sh->halted, __ATOMIC_ACQUIRE)) { /* halted while it waited */
        if (catpath[0])
            cli_cat_done(catpath, cat_writer);
        if (args != argsv_stack)
            free(args);
        if (argv != argv_stack)
            free(argv);
        res.skipped = 1;
        return pp_buf_append(out, &res, sizeof res);
    }
    int attempts = o->retries > 1 ? o->retries : 1;
    static run_t r = {.sp = {{.fd = -1}, {.fd = -1}}};
    static sbuf_t tries; /* --trace: job_try_t records */
    tries.len = 0;
    int rc = 0;
    for (;;) { /* -j FILE lowered the number of jobs: wait for a place */
        int run = __atomic_load_n(&g_wcfg.sh->running, __ATOMIC_ACQUIRE);
        int lim = __atomic_load_n(&g_wcfg.sh->jobs_limit, __ATOMIC_ACQUIRE);
        if (lim > 0 && run >= lim) {
            struct timespec ms10 = {0, 10000000};
            nanosleep(&ms10, NULL);
            continue;
        }
        if (__atomic_compare_exchange_n(&g_wcfg.sh->running, &run, run + 1, false, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE))
            break;
    }
    for (int a = 0; a < attempts; a++) {
        spill_drop(&r.sp[0]); /* a try before: its output is not kept */
        spill_drop(&r.sp[1]);
        r.sp[0].bol = r.sp[1].bol = true; /* --lb --tag: each stream starts a line */
        r.out.len = r.err.len = 0;
        r.exitval = r.sig = 0;
        r.timed_out = false;
        feed.pos = 0;
        if (h.kind == JOB_RANGE && a > 0) {
            feed.off = h.part_off;
            feed.plen = feed.ppos = 0;
        }
        if (feed.part && g_wcfg.pipe_header_len) { /* --header: first, from the buffer */
            memcpy(feed.pbuf, g_wcfg.pipe_header, g_wcfg.pipe_header_len);
            feed.plen = g_wcfg.pipe_header_len;
            feed.ppos = 0;
        }
        if (o->verbose_err) { /* -t: the command on stderr as the job starts */
            cmd.p[cmd.len] = '\n';
            write_fd(2, cmd.p, cmd.len + 1);
            cmd.p[cmd.len] = 0;
        }
        res.start = now_real();
        double t0 = now_mono();
        rc = run_once(argv, path, fin, &r, o->timeout > 0 ? t0 + o->timeout : 0);
        res.runtime = now_mono() - t0;
        if (rc < 0)
            break;
        if (g_wcfg.trace) { /* --trace: a span for every attempt */
            job_try_t t = {.t0 = t0,
                           .dur = res.runtime,
                           .exitval = r.exitval,
                           .signal = r.sig,
                           .timed_out = r.timed_out};
            sb_add(&tries, &t, sizeof t);
            res.ntries++;
        }
        if (r.exitval == 0 && r.sig == 0)
            break;
        if (__atomic_load_n(&g_wcfg.sh->halted, __ATOMIC_ACQUIRE))
            break;
    }
    if (catpath[0])
        cli_cat_done(catpath, cat_writer);
    char rmsg[600];
    if (rc >= 0 && (o->results || o->files) &&
        cli_results_save(o, args, h.nargs, h.seq, my_slot, &r.out, &r.err, rmsg, sizeof rmsg) < 0) {
        sb_adds(&r.err, rmsg);
        sb_addc(&r.err, '\n');
    }
    __atomic_sub_fetch(&g_wcfg.sh->running, 1, __ATOMIC_ACQ_REL);
    /* what spilled: the rest follows it into the file, which the parent prints */
    spill_big(&r.sp[0], &r.out, true);
    spill_big(&r.sp[1], &r.err, true);
    spill_close(&r.sp[0]);
    spill_close(&r.sp[1]);
    if (out_dead) { /* the run stops: nothing of this job is printed */
        spill_drop(&r.sp[0]);
        spill_drop(&r.sp[1]);
        r.out.len = r.err.len = 0;
    }
    if (argv != argv_stack)
        free(argv);
    if (args != argsv_stack)
        free(args);
    if (rc < 0)
        return pp_buf_fail(out, "cannot start '%s': %s", path, strerror(-rc));
    if (o->tag && (r.out.len || r.err.len)) {
        static sbuf_t t;
        t.len = 0;
        bool bol_out = true, bol_err = true;
        add_tagged(&t, r.out.p, r.out.len, &bol_out);
        size_t ol = t.len;
        add_tagged(&t, r.err.p, r.err.len, &bol_err);
        r.out.len = 0;
        sb_add(&r.out, t.p, ol);
        r.err.len = 0;
        sb_add(&r.err, t.p + ol, t.len - ol);
    }
    if (!r.timed_out) {
        res.exitval = r.exitval;
        res.signal = r.sig;
    }
    res.triggered = count_and_halt(r.exitval != 0 || r.sig != 0, r.exitval, r.sig);
    res.timed_out = r.timed_out;
    if (r.timed_out) { /* GNU parallel logs a timed-out job as Exitval -1, Signal 15 */
        res.exitval = r.exitval = -1;
        res.signal = r.sig = SIGTERM;
    }
    res.out_len = r.out.len;
    res.err_len = r.err.len;
    res.cmd_len = g_wcfg.want_cmd ? cmd.len : 0;
    res.out_spill_len = (uint32_t)strlen(r.sp[0].path);
    res.err_spill_len = (uint32_t)strlen(r.sp[1].path);
    if ((r.out.len && pp_buf_append(out, r.out.p, r.out.len) < 0) ||
        (r.err.len && pp_buf_append(out, r.err.p, r.err.len) < 0) ||
        (res.cmd_len && pp_buf_append(out, cmd.p, cmd.len) < 0) ||
        (res.out_spill_len && pp_buf_append(out, r.sp[0].path, res.out_spill_len) < 0) ||
        (res.err_spill_len && pp_buf_append(out, r.sp[1].path, res.err_spill_len) < 0) ||
        (res.ntries && pp_buf_append(out, tries.p, tries.len) < 0) ||
        pp_buf_append(out, &res, sizeof res) < 0)
        return pp_buf_fail(out, "out of memory for the job's output");
    r.sp[0].path[0] = r.sp[1].path[0] = 0; /* the parent's now */
    /* keep the worker's buffers from holding on to a huge job's output */
    if (r.out.cap > (8u << 20))
        sb_free(&r.out);
    if (r.err.cap > (8u << 20))
        sb_free(&r.err);
    return 0;
}
