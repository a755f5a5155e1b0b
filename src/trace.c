/*
 * trace.c - the pool's timeline, written as a Chrome trace event file.
 *
 * DESIGN: one writer per trace file per process, shared by every pool of
 * the process that traces into that file (each pool is one process group,
 * "pid" 1, 2, ... in creation order), reference-counted by those pools and
 * finished ("]") when the last of them is torn down. Workers take no part
 * but for two stamps they write in every result record anyway (start_ns,
 * run_ns: see worker.c); the parent turns records into events where it
 * consumes them (pool.c, supervise.c) and only when pool->trace is set, so
 * tracing off costs one branch per record.
 *
 * Events are formatted by hand into one of the writer's two buffers (no
 * printf; bench_trace: with the file on /dev/null, apply_async no-ops run
 * at 98% of their speed untraced). When the buffer passes PP__TRACE_FLUSH
 * bytes, or an event comes PP__TRACE_FLUSH_NS after the last hand-off, it
 * goes to the flusher thread, which write(2)s it while events fill the
 * other: no write is made under pool->lock, and a slow disk stalls the
 * pool only when both buffers are full. Buffers hold whole events, so a
 * parent killed mid-run leaves a file whose events are all complete up to
 * its last line (the JSON array lacks only its "]"). Memory stays bounded
 * however long the run. Task names come from dladdr, or the object's
 * .symtab (static functions), once per function (a small cache).
 *
 * Locking: the writer's lock is innermost. It is taken under pool->lock
 * (drain, supervisor) and never takes another lock itself. A child forked
 * from a tracing process does not write into its parent's writer: every
 * call checks the writer's fork generation (registry.c). The flusher
 * sleeps on the writer's cond; close hands off the last block, waits for
 * it to be written and joins the thread.
 */
#include "tuning.h"
#include "internal.h"
#include "job.h"

#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define PP__TRACE_FLUSH (256u * 1024u) /* write once the buffer holds this much */
#define PP__TRACE_EVENT_MAX 4096u      /* an event's bytes, names escaped and capped */
#define PP__TRACE_NAME_MAX 400u        /* a name's bytes before escaping */
#define PP__TRACE_NAMES 256u           /* symbol name cache (direct-mapped) */

struct pp__trace {
    pthread_mutex_t lock;
    char *path;
    int fd;
    pid_t owner;
    unsigned gen; /* pp__fork_generation() of the owner: a forked child differs */
    int refs;
    int pools;   /* pools numbered so far: the next one is pools + 1 */
    uint64_t t0; /* CLOCK_MONOTONIC when the file was opened: ts 0 */
    uint64_t last_write;
    bool any;    /* an event was written: the next one needs a comma first */
    bool broken; /* a write failed: nothing more is written */
    char *buf;   /* the buffer events are formatted into */
    size_t len;
    /* the flusher thread writes the other buffer, so that no write(2) is
     * made under the pool's lock */
    pthread_t flusher;
    pthread_cond_t cond; /* busy or stop changed */
    bool busy;           /* out holds bytes the flusher has not written yet */
    bool stop;
    bool started;
    const char *out;
    size_t out_len;
    struct {
        uintptr_t fn;
        char name[PP__TRACE_NAME_MAX];
    } names[PP__TRACE_NAMES];
    char (*space)[PP__TRACE_FLUSH + PP__TRACE_EVENT_MAX]; /* two buffers */
    struct pp__trace *next;
};

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static pp__trace_t *g_traces;
static _Atomic bool g_disabled;

void pp__trace_disable(void) { atomic_store(&g_disabled, true); }

/* ------------------------------------------------------------------ */
/* formatting                                                          */
/* ------------------------------------------------------------------ */
static void put(pp__trace_t *t, const char *s) {
    size_t n = strlen(s);
    memcpy(t->buf + t->len, s, n);
    t->len += n;
}

static void put_u64(pp__trace_t *t, uint64_t v) {
    char tmp[24];
    int i = (int)sizeof tmp;
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    memcpy(t->buf + t->len, tmp + i, sizeof tmp - (size_t)i);
    t->len += sizeof tmp - (size_t)i;
}

static void put_i64(pp__trace_t *t, int64_t v) {
    if (v < 0) {
        t->buf[t->len++] = '-';
        put_u64(t, (uint64_t)0 - (uint64_t)v);
    } else {
        put_u64(t, (uint64_t)v);
    }
}

/* ns as microseconds with three decimals */
static void put_us(pp__trace_t *t, uint64_t ns) {
    put_u64(t, ns / 1000u);
    unsigned f = (unsigned)(ns % 1000u);
    char d[4] = {'.', (char)('0' + f / 100), (char)('0' + f / 10 % 10), (char)('0' + f % 10)};
    memcpy(t->buf + t->len, d, 4);
    t->len += 4;
}

/* A JSON string: quotes, backslashes and control bytes escaped, bytes that
 * are not UTF-8 replaced by '?', at most PP__TRACE_NAME_MAX bytes of s. */
static void put_str(pp__trace_t *t, const char *s) {
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strnlen(s, PP__TRACE_NAME_MAX);
    t->buf[t->len++] = '"';
    for (size_t i = 0; i < n;) {
        unsigned char c = p[i];
        if (c == '"' || c == '\\') {
            t->buf[t->len++] = '\\';
            t->buf[t->len++] = (char)c;
            i++;
        } else if (c < 0x20) {
            memcpy(t->buf + t->len, "\\u00", 4);
            t->len += 4;
            t->buf[t->len++] = hex[c >> 4];
            t->buf[t->len++] = hex[c & 15];
            i++;
        } else if (c < 0x80) {
            t->buf[t->len++] = (char)c;
            i++;
        } else {
            size_t k = c >= 0xf0 && c < 0xf5 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 && c < 0xe0 ? 2 : 0;
            bool ok = k && i + k <= n;
            for (size_t j = 1; ok && j < k; j++)
                ok = (p[i + j] & 0xc0) == 0x80;
            if (ok) {
                memcpy(t->buf + t->len, p + i, k);
                t->len += k;
                i += k;
            } else {
                t->buf[t->len++] = '?';
                i++;
            }
        }
    }
    t->buf[t->len++] = '"';
}

/* Write len bytes of p (whole events); a failure ends the trace. Called
 * without the writer's lock. */
static bool write_out(int fd, const char *p, size_t len) {
    int saved = errno;
    size_t off = 0;
    bool ok = true;
    while (off < len && ok) {
        ssize_t r = write(fd, p + off, len - off);
        if (r > 0)
            off += (size_t)r;
        else if (!(r < 0 && errno == EINTR))
            ok = false; /* disk full, say: the file keeps what it has */
    }
    errno = saved;
    return ok;
}

static void *flusher_main(void *arg) {
    pp__trace_t *t = arg;
    pthread_mutex_lock(&t->lock);
    for (;;) {
        while (!t->busy && !t->stop)
            pthread_cond_wait(&t->cond, &t->lock);
        if (!t->busy)
            break;
        const char *p = t->out;
        size_t n = t->out_len;
        pthread_mutex_unlock(&t->lock);
        bool ok = write_out(t->fd, p, n);
        pthread_mutex_lock(&t->lock);
        if (!ok)
            t->broken = true;
        t->busy = false;
        pthread_cond_broadcast(&t->cond);
    }
    pthread_mutex_unlock(&t->lock);
    return NULL;
}

/* Hand what the buffer holds to the flusher and go on in the other buffer
 * (sync: and wait until it is written). Writer's lock held. */
static void flush_locked(pp__trace_t *t, bool sync) {
    while (t->busy)
        pthread_cond_wait(&t->cond, &t->lock);
    if (t->len && !t->broken) {
        if (t->started) {
            t->out = t->buf;
            t->out_len = t->len;
            t->busy = true;
            pthread_cond_broadcast(&t->cond);
            t->buf = t->buf == t->space[0] ? t->space[1] : t->space[0];
        } else if (!write_out(t->fd, t->buf, t->len)) {
            t->broken = true;
        }
    }
    t->len = 0;
    t->last_write = pp__now_ns();
    while (sync && t->busy)
        pthread_cond_wait(&t->cond, &t->lock);
}

/* Start an event; false: write nothing (a broken file, another process). */
static bool ev_begin(pp__trace_t *t) {
    pthread_mutex_lock(&t->lock);
    if (t->broken || t->gen != pp__fork_generation()) {
        pthread_mutex_unlock(&t->lock);
        return false;
    }
    if (t->any)
        put(t, ",\n");
    t->any = true;
    return true;
}

/* now: the event's time (a span's end, which the worker stamped: no clock
 * is read here), or 0 */
static void ev_end(pp__trace_t *t, uint64_t now) {
    if (t->len >= PP__TRACE_FLUSH || (now > t->last_write + PP__TRACE_FLUSH_NS))
        flush_locked(t, false);
    pthread_mutex_unlock(&t->lock);
}

/* "ph":..,"name":..,"pid":..,"tid":..,"ts":.. */
static void ev_head(pp__trace_t *t, const char *ph, const char *name, int pid, long tid,
                    uint64_t ns) {
    put(t, "{\"ph\":\"");
    put(t, ph);
    put(t, "\",\"name\":");
    put_str(t, name);
    put(t, ",\"pid\":");
    put_u64(t, (uint64_t)pid);
    if (tid >= 0) {
        put(t, ",\"tid\":");
        put_u64(t, (uint64_t)tid);
    }
    if (ns) {
        put(t, ",\"ts\":");
        put_us(t, ns > t->t0 ? ns - t->t0 : 0);
    }
}

/* "key":sval (a JSON string), or "key":ival when sval is NULL */
static void put_arg(pp__trace_t *t, const char *key, const char *sval, long ival) {
    put(t, "\"");
    put(t, key);
    put(t, "\":");
    if (sval)
        put_str(t, sval);
    else
        put_i64(t, ival);
}

static void put_signal(pp__trace_t *t, int sig) {
    const char *abbrev = sigabbrev_np(sig);
    char name[32];
    snprintf(name, sizeof name, "SIG%s", abbrev ? abbrev : "?");
    put_str(t, name);
}

/* ------------------------------------------------------------------ */
/* open / close                                                         */
/* ------------------------------------------------------------------ */
static void meta(pp__trace_t *t, int pid, long tid, const char *what, const char *key,
                 const char *sval, long ival) {
    if (!ev_begin(t))
        return;
    ev_head(t, "M", what, pid, tid, 0);
    put(t, ",\"args\":{");
    put_arg(t, key, sval, ival);
    put(t, "}}");
    ev_end(t, 0);
}

int pp__trace_open(pp_pool_t *pool) {
    const char *path = pool->opt.trace_file;
    bool from_env = false;
    if (!path || !*path) {
        path = getenv("PROCPOOL_TRACE");
        from_env = true;
    }
    if (!path || !*path || atomic_load(&g_disabled))
        return 0;
    pthread_mutex_lock(&g_lock);
    pp__trace_t *t = g_traces;
    pid_t me = getpid();
    while (t && !(t->owner == me && strcmp(t->path, path) == 0))
        t = t->next;
    int err = 0;
    if (!t) {
        t = calloc(1, sizeof *t);
        if (t)
            t->space = malloc(2 * sizeof *t->space);
        char *copy = t && t->space ? strdup(path) : NULL;
        /* O_NONBLOCK: a FIFO without a reader fails (ENXIO) instead of
         * blocking pool creation, and one whose reader stops fails a write
         * (EAGAIN: the trace ends) instead of holding the flusher, and with
         * it the pool, forever. Regular files write blocking as usual. */
        int fd =
            copy ? open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NONBLOCK, 0644) : -1;
        struct stat sb;
        if (fd >= 0 && fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode))
            fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
        if (fd < 0) {
            err = copy ? -errno : -ENOMEM;
            free(copy);
            if (t)
                free(t->space);
            free(t);
            pthread_mutex_unlock(&g_lock);
            if (from_env) {
                /* an environment variable does not make pool creation fail */
                fprintf(stderr, "procpool: PROCPOOL_TRACE=%s: %s; not tracing\n", path,
                        pp_strerror(err));
                return 0;
            }
            return err;
        }
        pthread_mutex_init(&t->lock, NULL);
        pthread_cond_init(&t->cond, NULL);
        t->path = copy;
        t->fd = fd;
        t->owner = me;
        t->gen = pp__fork_generation();
        t->buf = t->space[0];
        t->t0 = t->last_write = pp__now_ns();
        put(t, "[\n");
        /* without the thread (none could be made) writes are made inline */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        t->started = pthread_create(&t->flusher, NULL, flusher_main, t) == 0;
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        t->next = g_traces;
        g_traces = t;
    }
    t->refs++;
    pthread_mutex_lock(&t->lock);
    int id = ++t->pools;
    pthread_mutex_unlock(&t->lock);
    pthread_mutex_unlock(&g_lock);

    pool->trace = t;
    pool->trace_pid = id;
    char name[160];
    if (pool->opt.backend == PP_BACKEND_MPI)
        snprintf(name, sizeof name, "pool %d (MPI)", id);
    else
        snprintf(name, sizeof name, "pool %d (pid %d, %d workers)", id, (int)me, pool->nworkers);
    meta(t, id, -1, "process_name", "name", name, 0);
    meta(t, id, -1, "process_sort_index", "sort_index", NULL, id);
    for (int i = 0; i < pool->nworkers; i++) {
        snprintf(name, sizeof name, "worker %d", i);
        pp__trace_lane(pool, i, name);
    }
    return 0;
}

void pp__trace_close(pp_pool_t *pool) {
    pp__trace_t *t = pool->trace;
    if (!t)
        return;
    pool->trace = NULL;
    pthread_mutex_lock(&g_lock);
    if (--t->refs > 0) {
        if (t->gen == pp__fork_generation()) {
            pthread_mutex_lock(&t->lock);
            flush_locked(t, true); /* what this pool wrote is on disk when destroy returns */
            pthread_mutex_unlock(&t->lock);
        }
        pthread_mutex_unlock(&g_lock);
        return;
    }
    for (pp__trace_t **pp = &g_traces; *pp; pp = &(*pp)->next) {
        if (*pp == t) {
            *pp = t->next;
            break;
        }
    }
    pthread_mutex_unlock(&g_lock);
    if (t->gen != pp__fork_generation()) {
        /* a forked child's copy: no flusher here, its lock in any state */
        close(t->fd);
        free(t->space);
        free(t->path);
        free(t);
        return;
    }
    pthread_mutex_lock(&t->lock);
    put(t, "\n]\n");
    flush_locked(t, true);
    t->stop = true;
    pthread_cond_broadcast(&t->cond);
    pthread_mutex_unlock(&t->lock);
    if (t->started)
        pthread_join(t->flusher, NULL);
    close(t->fd);
    pthread_cond_destroy(&t->cond);
    pthread_mutex_destroy(&t->lock);
    free(t->space);
    free(t->path);
    free(t);
}

/* ------------------------------------------------------------------ */
/* events                                                               */
/* ------------------------------------------------------------------ */
/* The name of the function at addr in the ELF file path (loaded at base)
 * from its full symbol table (.symtab: static functions too; gone if the
 * file was stripped). Every offset is checked against the file's size. */
static bool elf_symbol(const char *path, uintptr_t addr, uintptr_t base, char *out, size_t n) {
    int saved = errno;
    bool found = false;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    void *map = MAP_FAILED;
    if (fd < 0 || fstat(fd, &sb) < 0 || (size_t)sb.st_size < sizeof(Elf64_Ehdr))
        goto out;
    size_t size = (size_t)sb.st_size;
    map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED)
        goto out;
    const unsigned char *f = map;
    const Elf64_Ehdr *eh = map;
    if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_ident[EI_CLASS] != ELFCLASS64 ||
        eh->e_shentsize != sizeof(Elf64_Shdr) || eh->e_shoff > size ||
        (size - eh->e_shoff) / sizeof(Elf64_Shdr) < eh->e_shnum)
        goto out;
    const Elf64_Shdr *sh = (const Elf64_Shdr *)(f + eh->e_shoff);
    uint64_t want = eh->e_type == ET_EXEC ? addr : addr - base;
    for (unsigned i = 0; i < eh->e_shnum && !found; i++) {
        if (sh[i].sh_type != SHT_SYMTAB || sh[i].sh_link >= eh->e_shnum || sh[i].sh_offset > size ||
            sh[i].sh_size > size - sh[i].sh_offset)
            continue;
        const Elf64_Shdr *str = &sh[sh[i].sh_link];
        if (str->sh_offset > size || str->sh_size > size - str->sh_offset)
            continue;
        const Elf64_Sym *sym = (const Elf64_Sym *)(f + sh[i].sh_offset);
        size_t nsym = sh[i].sh_size / sizeof(Elf64_Sym);
        const char *names = (const char *)(f + str->sh_offset);
        for (size_t k = 0; k < nsym; k++) {
            if (ELF64_ST_TYPE(sym[k].st_info) != STT_FUNC || sym[k].st_value != want ||
                sym[k].st_name >= str->sh_size)
                continue;
            size_t len = strnlen(names + sym[k].st_name, str->sh_size - sym[k].st_name);
            if (len == 0 || len == str->sh_size - sym[k].st_name)
                continue;
            snprintf(out, n, "%.*s", (int)len, names + sym[k].st_name);
            found = true;
            break;
        }
    }
out:
    if (map != MAP_FAILED)
        munmap(map, (size_t)sb.st_size);
    if (fd >= 0)
        close(fd);
    errno = saved;
    return found;
}

/* The task function's name: its exported symbol, else its name in the
 * object's symbol table, else object+offset (addr2line reads that). Looked
 * up once per function (a cache). Writer's lock held. */
static const char *fn_name(pp__trace_t *t, pp_task_fn fn) {
    uintptr_t a = (uintptr_t)fn;
    unsigned i = (unsigned)((a >> 4) ^ (a >> 12)) % PP__TRACE_NAMES;
    if (t->names[i].fn == a && a)
        return t->names[i].name;
    Dl_info info = {0};
    char *name = t->names[i].name;
    bool known = fn && dladdr((void *)a, &info) && info.dli_fname && info.dli_fbase;
    if (!fn) {
        snprintf(name, PP__TRACE_NAME_MAX, "(none)");
    } else if (known && info.dli_sname && info.dli_saddr == (void *)a) {
        snprintf(name, PP__TRACE_NAME_MAX, "%s", info.dli_sname);
    } else if (known && elf_symbol(info.dli_fname[0] == '/' ? info.dli_fname : "/proc/self/exe", a,
                                   (uintptr_t)info.dli_fbase, name, PP__TRACE_NAME_MAX)) {
        /* a static function, or a program not linked with -rdynamic */
    } else if (known) {
        const char *base = strrchr(info.dli_fname, '/');
        snprintf(name, PP__TRACE_NAME_MAX, "%s+0x%lx", base ? base + 1 : info.dli_fname,
                 (unsigned long)(a - (uintptr_t)info.dli_fbase));
    } else {
        snprintf(name, PP__TRACE_NAME_MAX, "0x%lx", (unsigned long)a);
    }
    t->names[i].fn = a;
    return name;
}

static void counter_locked(pp_pool_t *pool, pp__trace_t *t, uint64_t now) {
    pool->trace_counter_ns = now;
    put(t, ",\n");
    ev_head(t, "C", "queue", pool->trace_pid, -1, now);
    put(t, ",\"args\":{\"queued\":");
    put_u64(t, pool->npending);
    put(t, ",\"in_flight\":");
    put_u64(t, pool->inflight_total);
    put(t, "}}");
}

void pp__trace_span(pp_pool_t *pool, const pp__trace_span_t *sp) {
    pp__trace_t *t = pool->trace;
    if (!ev_begin(t))
        return;
    const pp__task_t *s = sp->task;
    pp_task_fn fn = s->job ? s->job->fn : s->fn;
    bool chunk = s->job || (s->flags & PP__F_CHUNK);
    uint64_t end = sp->start_ns + sp->run_ns;
    ev_head(t, "X", fn_name(t, fn), pool->trace_pid, sp->lane, sp->start_ns);
    put(t, ",\"dur\":");
    put_us(t, sp->run_ns);
    put(t, chunk ? ",\"cat\":\"chunk\",\"args\":{\"outcome\":"
                 : ",\"cat\":\"task\",\"args\":{\"outcome\":");
    put_str(t, sp->outcome);
    if (chunk) {
        put(t, ",\"first_item\":");
        put_u64(t, s->lo);
        put(t, ",\"items\":");
        put_u64(t, s->n);
    } else {
        put(t, ",\"arg_size\":");
        put_u64(t, s->arg_len);
        put(t, ",\"result_size\":");
        put_u64(t, sp->result_size);
    }
    /* a lane's worker is named by its start/respawn event; a failed
     * record's span names it too */
    if (strcmp(sp->outcome, "ok") != 0) {
        put(t, ",\"worker_pid\":");
        put_u64(t, (uint64_t)(sp->worker_pid > 0 ? sp->worker_pid : 0));
    }
    if (sp->sig > 0) {
        put(t, ",\"signal\":");
        put_signal(t, sp->sig);
    }
    put(t, "}}");
    if (end >= pool->trace_counter_ns + PP__TRACE_COUNTER_NS)
        counter_locked(pool, t, end);
    ev_end(t, end);
}

void pp__trace_instant(pp_pool_t *pool, int lane, const char *name, pid_t worker_pid,
                       const char *key, const char *sval, long ival) {
    pp__trace_t *t = pool->trace;
    if (!ev_begin(t))
        return;
    uint64_t now = pp__now_ns();
    ev_head(t, "i", name, pool->trace_pid, lane, now);
    put(t, lane < 0 ? ",\"s\":\"p\",\"args\":{" : ",\"s\":\"t\",\"args\":{");
    if (worker_pid > 0) {
        put(t, "\"worker_pid\":");
        put_u64(t, (uint64_t)worker_pid);
    }
    if (key) {
        if (worker_pid > 0)
            put(t, ",");
        put_arg(t, key, sval, ival);
    }
    put(t, "}}");
    if (now >= pool->trace_counter_ns + PP__TRACE_COUNTER_NS)
        counter_locked(pool, t, now);
    ev_end(t, now);
}

void pp__trace_death(pp_pool_t *pool, const pp__worker_t *w, bool died, const char *why) {
    pp__trace_t *t = pool->trace;
    if (!ev_begin(t))
        return;
    uint64_t now = pp__now_ns();
    ev_head(t, "i", died ? "death" : "retire", pool->trace_pid, w->index, now);
    put(t, ",\"s\":\"t\",\"args\":{\"worker_pid\":");
    put_i64(t, w->pid);
    if (w->have_status && w->wait_code != CLD_EXITED) {
        put(t, ",\"signal\":");
        put_signal(t, w->wait_status);
    } else if (w->have_status) {
        put(t, ",\"exit\":");
        put_i64(t, w->wait_status);
    }
    if (why) {
        put(t, ",\"reason\":");
        put_str(t, why);
    }
    put(t, "}}");
    ev_end(t, now);
}

void pp__trace_lane(pp_pool_t *pool, int lane, const char *name) {
    meta(pool->trace, pool->trace_pid, lane, "thread_name", "name", name, 0);
    meta(pool->trace, pool->trace_pid, lane, "thread_sort_index", "sort_index", NULL, lane);
}
