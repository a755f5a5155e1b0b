/*
 * worker.c - the worker process: take a task from the ring, run it, publish
 * its result.
 *
 * DESIGN: a worker is single-threaded and owns the consumer side of its
 * task ring and the producer side of its result ring (see channel.c). It
 * maps only its own channel: the task ring read-only, the control block and
 * result ring read-write. Idle, it spins for PP__SPIN_NS checking the ring
 * head, then announces worker_sleeping and sleeps on the wake_seq futex, so
 * a busy parent never makes a system call to hand it work. It wakes the
 * parent through the channel's eventfd only when the parent said it sleeps.
 *
 * Once the initializer has returned it sets booted (a death before that is
 * a start-up failure). Before running a task it bumps tasks_started, which
 * tells the parent, should this process die, exactly which task it was
 * running. It dies with
 * its parent: PR_SET_PDEATHSIG, plus a check of the death pipe (EOF when
 * every parent-held write end is gone) whenever a sleep times out.
 * Workers always leave with _exit(): the program's atexit handlers and
 * stdio buffers inherited from the parent belong to the parent.
 */
#include "tuning.h"
#include "decode.h"
#include "worker.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

static struct {
    pp__ctrl_t *ctrl;
    unsigned char *res;
    const unsigned char *task;
    uint64_t tail;     /* task ring bytes consumed */
    uint64_t res_head; /* result ring bytes published */
    uint64_t started;
    int sock, evfd, death_rd;
    pid_t parent;
    bool stamp_items;
    pp_buf_t buf, ibuf, fbuf; /* a task's output; a map item's; a chunk's failures */
    pp__arena_t arena;        /* this slot's result pages in shared memory */
} W;

__attribute__((noreturn)) static void worker_exit(int code) {
    fflush_unlocked(stdout);
    fflush_unlocked(stderr);
    _exit(code);
}

static void check_parent(void) {
    struct pollfd p = {.fd = W.death_rd, .events = POLLIN};
    if (getppid() != W.parent || (W.death_rd >= 0 && poll(&p, 1, 0) > 0))
        worker_exit(0);
}

/* Sleep until the parent bumps wake_seq, unless ready() turns true. */
static void idle_wait(bool (*ready)(void)) {
    uint64_t t0 = pp__now_ns(), el;
    while ((el = pp__now_ns() - t0) < PP__SPIN_NS) {
        for (int i = 0; i < 64; i++) {
            if (ready())
                return;
            pp__cpu_relax();
        }
        /* past a short pure spin, give the CPU away between looks: on a
         * machine with more runnable threads than cores the producer we
         * wait for may need exactly this core */
        if (el > PP__PURE_SPIN_NS)
            sched_yield();
    }
    uint32_t seq = atomic_load_explicit(&W.ctrl->wake_seq, memory_order_acquire);
    atomic_store_explicit(&W.ctrl->worker_sleeping, 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_seq_cst);
    if (!ready()) {
        if (pp__futex_wait(&W.ctrl->wake_seq, seq, PP__IDLE_CHECK_NS, true) == -ETIMEDOUT)
            check_parent();
    }
    atomic_store_explicit(&W.ctrl->worker_sleeping, 0, memory_order_relaxed);
}

static bool task_ready(void) {
    return atomic_load_explicit(&W.ctrl->task_head, memory_order_acquire) != W.tail ||
           atomic_load_explicit(&W.ctrl->stop, memory_order_relaxed);
}

static size_t res_need;
static bool res_room(void) {
    uint64_t tail = atomic_load_explicit(&W.ctrl->res_tail, memory_order_acquire);
    return PP__RES_RING - (size_t)(W.res_head - tail) >= res_need;
}

static void wake_parent(void) {
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&W.ctrl->parent_sleeping, memory_order_relaxed) &&
        atomic_exchange_explicit(&W.ctrl->parent_sleeping, 0, memory_order_relaxed)) {
        uint64_t one = 1;
        ssize_t r = write(W.evfd, &one, sizeof one);
        (void)r;
    }
}

static int send_fd_blocking(int fd) {
    for (;;) {
        int r = pp__send_fds(W.sock, "r", 1, &fd, 1);
        if (r != -EAGAIN)
            return r;
        struct pollfd p = {.fd = W.sock, .events = POLLOUT};
        poll(&p, 1, 100);
        check_parent();
    }
}

static void publish(uint64_t seq, int status, uint64_t start_ns, uint64_t run_ns) {
    pp_buf_t *b = &W.buf;
    pp__res_hdr_t h = {
        .kind = PP__REC_RES, .seq = seq, .status = status, .run_ns = run_ns, .start_ns = start_ns};
    const char *msg = b->msg;
    uint64_t arena_off = 0;
    if (status != 0) {
        h.msg_len = (uint32_t)b->msg_len;
        if (h.msg_len)
            h.flags |= PP__F_MSG;
    } else if (b->in_arena && b->len) {
        /* the result is already in shared memory: keep its pages, send the offset */
        size_t keep = pp__arena_pages(b->len);
        if (keep < b->run_pages)
            pp__arena_free(b->arena, b->run + keep, b->run_pages - keep);
        arena_off = (uint64_t)b->run * 4096u;
        h.flags |= PP__F_ARENA;
        h.data_len = b->len;
        pp__buf_drop_arena(b, false); /* the parent owns the run once this is published */
    } else if (b->memfd >= 0) {
        int fd = pp__buf_seal(b);
        if (fd >= 0 && send_fd_blocking(fd) == 0) {
            h.flags |= PP__F_MEMFD;
            h.data_len = b->len;
        } else {
            int e = fd < 0 ? fd : -EIO;
            snprintf(b->msg, sizeof b->msg, "the worker could not hand over a %zu-byte result: %s",
                     b->len, pp_strerror(e));
            h.status = status = -1;
            h.msg_len = (uint32_t)strlen(b->msg);
            h.flags |= PP__F_MSG;
        }
        if (fd >= 0)
            close(fd);
    } else {
        h.data_len = b->len;
    }
    /* the record (pp__enc_res_rec, beside its decoder in decode.c): header,
     * message, then the inline data or the arena offset; after a failure
     * data_len is 0, so no data goes with the message */
    bool arena = (h.flags & PP__F_ARENA) != 0;
    h.rec_len = pp__res_rec_len(h.flags, h.msg_len, h.data_len);
    res_need = pp__res_rec_need(PP__RES_RING, W.res_head, h.rec_len);
    while (!res_room())
        idle_wait(res_room);
    W.res_head = pp__enc_res_rec(W.res, PP__RES_RING, W.res_head, &h, msg,
                                 arena ? (const void *)&arena_off : (const void *)b->data);
    atomic_store_explicit(&W.ctrl->res_head, W.res_head, memory_order_release);
    wake_parent();
}

static int map_channel(const pp__boot_t *b) {
    void *c =
        mmap(NULL, PP__CTRL_SIZE + PP__RES_RING, PROT_READ | PROT_WRITE, MAP_SHARED, b->ctrl_fd, 0);
    if (c == MAP_FAILED)
        return -1;
    void *t = mmap(NULL, PP__TASK_RING, PROT_READ, MAP_SHARED, b->task_ro_fd, 0);
    if (t == MAP_FAILED)
        return -1;
    W.ctrl = c;
    W.res = (unsigned char *)c + PP__CTRL_SIZE;
    W.task = t;
    W.tail = 0;
    W.res_head = atomic_load_explicit(&W.ctrl->res_head, memory_order_relaxed);
    close(b->ctrl_fd);
    close(b->task_ro_fd);
    return 0;
}

/* Map a large argument that came as a memfd; returns NULL on failure. */
static const void *map_arg(size_t len, void **map, size_t *map_len) {
    int fd = -1, n = 0;
    char c;
    *map = NULL;
    *map_len = 0;
    for (;;) {
        ssize_t r = pp__recv_fds(W.sock, &c, 1, &fd, 1, &n, 0);
        if (r > 0)
            break;
        if (r == 0)
            worker_exit(0);
        /* the argument's message is still queued: a later task would take
         * it for its own. Die; the task fails or runs again as after a
         * crash, and a replacement starts with a fresh socket. */
        worker_exit(122);
    }
    if (n != 1)
        return NULL;
    struct stat st;
    if (fstat(fd, &st) < 0 || (size_t)st.st_size < len) {
        close(fd);
        return NULL;
    }
    void *p = len ? mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0) : NULL;
    close(fd);
    if (p == MAP_FAILED)
        return NULL;
    *map = p;
    *map_len = len;
    return p;
}

static const unsigned char zero_arg[8];

/* The task returned 0, but its result could not grow (a pp_buf_append or
 * pp_buf_reserve failed, past RLIMIT_FSIZE say): the result would be
 * incomplete, so the task fails, with the errno as its status. */
static int result_lost(pp_buf_t *b) {
    char why[200];
    int st = b->grow_err;
    pp__describe_fsize(why, sizeof why, b->grow_err, b->grow_want);
    pp_buf_fail(b, "the task's result could not grow to %zu bytes: %s", b->grow_want, why);
    b->grow_err = 0;
    return st;
}

/* Resident set size, from a /proc/self/statm kept open (one pread). */
static size_t resident_bytes(void) {
    static int fd = -2;
    if (fd == -2)
        fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    char buf[128];
    ssize_t n = fd >= 0 ? pread(fd, buf, sizeof buf - 1, 0) : -1;
    if (n <= 0)
        return 0;
    buf[n] = 0;
    unsigned long size, res;
    if (sscanf(buf, "%lu %lu", &size, &res) != 2)
        return 0;
    return (size_t)res * (size_t)sysconf(_SC_PAGESIZE);
}

/* The next item of a chunk: fixed-size, or [u64 len][bytes] packed. */
static bool next_item(const pp__task_hdr_t *h, const unsigned char *arg, uint64_t i, size_t *off,
                      const unsigned char **item, size_t *len) {
    if (!(h->flags & PP__F_VAR)) {
        *len = (size_t)h->item_size;
        *item = *len ? arg + i * *len : zero_arg;
        return true;
    }
    uint64_t l;
    if (*off + 8 > h->arg_len)
        return false;
    memcpy(&l, arg + *off, 8);
    if (l > h->arg_len - *off - 8)
        return false;
    *item = arg + *off + 8;
    *len = (size_t)l;
    *off += 8 + PP__ALIGN8((size_t)l);
    return true;
}

static void mark_item(uint64_t i) {
    atomic_store_explicit(&W.ctrl->item_index, i, memory_order_relaxed);
    if (i && W.stamp_items) /* per-item deadlines only matter with a task timeout */
        atomic_store_explicit(&W.ctrl->task_start_ns, pp__now_ns(), memory_order_relaxed);
}

/* Fixed-size results (pp_map): each item writes straight into its slot --
 * in the caller's array in shared memory (PP__F_RESREF), or in a packed
 * area at the head of the chunk's result. Items that fail, or whose result
 * has another size, are listed after it: u64 index, pp__item_hdr_t, message. */
static int run_chunk_fixed(const pp__task_hdr_t *h, const unsigned char *arg, pp_task_fn fn) {
    pp_buf_t *out = &W.buf, *ib = &W.ibuf, *fails = &W.fbuf;
    size_t rs = (size_t)h->res_size, off = 0;
    unsigned char *base;
    fails->len = 0;
    if (h->flags & PP__F_RESREF) {
        base = (unsigned char *)(uintptr_t)h->res_addr;
    } else {
        base = pp_buf_reserve(out, (size_t)h->nitems * rs);
        if (!base && (h->nitems * rs) != 0)
            return pp_buf_fail(out, "out of memory building a chunk's results");
    }
    for (uint64_t i = 0; i < h->nitems; i++) {
        const unsigned char *item;
        size_t len;
        if (!next_item(h, arg, i, &off, &item, &len))
            return pp_buf_fail(out, "malformed chunk");
        mark_item(i);
        ib->len = 0;
        ib->msg_len = 0;
        pp__buf_external(ib, base + i * rs, rs);
        int st = fn(item, len, ib);
        if (st == 0 && ib->ext && ib->len == rs)
            continue;
        atomic_fetch_add_explicit(&W.ctrl->chunk_fails, 1, memory_order_relaxed);
        uint64_t k = i;
        pp__item_hdr_t ih = {.status = st, .data_len = st ? 0 : ib->len};
        ih.msg_len = st ? (uint32_t)ib->msg_len : 0;
        if (pp_buf_append(fails, &k, 8) < 0 || pp_buf_append(fails, &ih, sizeof ih) < 0 ||
            pp_buf_append(fails, ib->msg, ih.msg_len) < 0 ||
            pp_buf_append(fails, zero_arg, PP__ALIGN8(ih.msg_len) - ih.msg_len) < 0)
            return pp_buf_fail(out, "out of memory building a chunk's results");
        pp__buf_reset(ib);
    }
    if (fails->len && pp_buf_append(out, fails->data, fails->len) < 0)
        return pp_buf_fail(out, "out of memory building a chunk's results");
    return 0;
}

/* Run every item of a chunk into one result: per item a pp__item_hdr_t,
 * then its message or data, each padded to 8. Returns 0, or non-zero when
 * the output could not be built (out of memory). */
static int run_chunk(const pp__task_hdr_t *h, const unsigned char *arg, pp_task_fn fn) {
    pp_buf_t *b = &W.buf;
    if (h->res_size || (h->flags & PP__F_RESREF))
        return run_chunk_fixed(h, arg, fn);
    size_t off = 0;
    for (uint64_t i = 0; i < h->nitems; i++) {
        const unsigned char *item;
        size_t len;
        if (!next_item(h, arg, i, &off, &item, &len))
            return pp_buf_fail(b, "malformed chunk");
        mark_item(i);
        size_t hpos = b->len;
        if (!pp_buf_reserve(b, sizeof(pp__item_hdr_t)))
            return pp_buf_fail(b, "out of memory building a chunk's results");
        size_t dpos = b->len;
        b->msg_len = 0;
        b->grow_err = 0;
        int st = fn(item, len, b);
        if (st == 0 && b->grow_err)
            st = result_lost(b);
        b->grow_err = 0;
        pp__item_hdr_t ih = {.status = st};
        if (st != 0) {
            b->len = dpos;
            ih.msg_len = (uint32_t)b->msg_len;
            if (pp_buf_append(b, b->msg, b->msg_len) < 0)
                return pp_buf_fail(b, "out of memory building a chunk's results");
        } else {
            ih.data_len = b->len - dpos;
        }
        size_t pad = PP__ALIGN8(b->len) - b->len;
        if (pad && pp_buf_append(b, zero_arg, pad) < 0)
            return pp_buf_fail(b, "out of memory building a chunk's results");
        memcpy(b->data + hpos, &ih, sizeof ih);
    }
    b->msg_len = 0;
    return 0;
}

__attribute__((noreturn)) void pp__worker_main(const pp__boot_t *b) {
    W.parent = b->parent_pid;
    W.sock = b->sock;
    W.evfd = b->evfd;
    W.death_rd = b->death_rd;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    pp__child_set_name("procpool-worker");
    pp__child_reset_signals();
    check_parent();
    __fpurge(stdout); /* the parent's unwritten output is the parent's */
    __fpurge(stderr);
    if (map_channel(b) < 0)
        worker_exit(120);
    pp__buf_init(&W.buf);
    pp__buf_init(&W.ibuf);
    pp__buf_init(&W.fbuf);
    pp__arena_init(&W.arena, b->arena, b->arena_size);
    W.buf.arena_off_mark = &W.ctrl->arena_off;
    W.buf.arena_pages_mark = &W.ctrl->arena_pages;
    W.stamp_items = b->task_timeout;
    if (b->initializer)
        b->initializer(b->initarg);
    /* a death from now on is not a start-up failure (supervise.c) */
    atomic_store_explicit(&W.ctrl->booted, 1, memory_order_release);

    unsigned done = 0;
    for (;;) {
        uint64_t head = atomic_load_explicit(&W.ctrl->task_head, memory_order_acquire);
        if (head == W.tail) {
            if (atomic_load_explicit(&W.ctrl->stop, memory_order_acquire))
                worker_exit(0);
            idle_wait(task_ready);
            continue;
        }
        size_t off = (size_t)(W.tail % PP__TASK_RING);
        uint32_t kind;
        memcpy(&kind, W.task + off, sizeof kind);
        if (kind == PP__REC_PAD) {
            W.tail += PP__TASK_RING - off;
            continue;
        }
        pp__task_hdr_t h;
        memcpy(&h, W.task + off, sizeof h);
        if (h.kind != PP__REC_TASK || h.rec_len < sizeof h || h.rec_len > PP__TASK_RING - off)
            worker_exit(121); /* the parent never writes this: give up loudly */
        /* claim it; the parent may have taken it back (pp_future_cancel) */
        uint32_t fresh = pp__claim_word(h.seq, PP__CLAIM_FRESH);
        if (!atomic_compare_exchange_strong_explicit(pp__claim_at(W.ctrl, h.seq), &fresh,
                                                     pp__claim_word(h.seq, PP__CLAIM_RUN),
                                                     memory_order_seq_cst, memory_order_seq_cst) &&
            fresh == pp__claim_word(h.seq, PP__CLAIM_CANCEL)) {
            if (h.flags & PP__F_MEMFD) { /* its argument's fd is next in the socket: take it */
                void *m;
                size_t ml;
                if (map_arg((size_t)h.arg_len, &m, &ml) && m)
                    munmap(m, ml);
            }
            atomic_store_explicit(&W.ctrl->tasks_started, ++W.started, memory_order_release);
            W.tail += h.rec_len;
            pp__buf_reset(&W.buf);
            W.buf.arena = NULL;
            publish(h.seq, 0, 0, 0); /* an empty result: the parent frees the record */
            continue;
        }
        atomic_store_explicit(&W.ctrl->task_start_ns, pp__now_ns(), memory_order_relaxed);
        atomic_store_explicit(&W.ctrl->item_index, 0, memory_order_relaxed);
        atomic_store_explicit(&W.ctrl->chunk_fails, 0, memory_order_relaxed);
        atomic_store_explicit(&W.ctrl->tasks_started, ++W.started, memory_order_release);

        void *map = NULL;
        size_t map_len = 0;
        const void *arg = W.task + off + sizeof h;
        if (h.flags & PP__F_REF)
            arg = (const void *)(uintptr_t)h.addr; /* shared memory: same address here */
        else if (h.flags & PP__F_MEMFD)
            arg = map_arg((size_t)h.arg_len, &map, &map_len);
        pp__buf_reset(&W.buf);
        /* a single task's large result goes straight to shared memory */
        W.buf.arena = (W.arena.data && !(h.flags & PP__F_CHUNK)) ? &W.arena : NULL;
        int status;
        uint64_t t0 = pp__now_ns();
        /* spawn: the function is named by its object's build id and offset */
        pp_task_fn fn = h.fn_key ? (pp_task_fn)(uintptr_t)pp__addr_decode(h.fn_key, h.fn)
                                 : (pp_task_fn)(uintptr_t)h.fn;
        if (!arg && h.arg_len) {
            status = pp_buf_fail(&W.buf, "the worker could not map the task's %llu-byte argument",
                                 (unsigned long long)h.arg_len);
        } else if (!fn) {
            status = pp_buf_fail(&W.buf,
                                 "the task function is not in this program: no loaded object "
                                 "has build id %016llx (was the program rebuilt?)",
                                 (unsigned long long)h.fn_key);
        } else if (h.flags & PP__F_CHUNK) {
            status = run_chunk(&h, arg, fn);
        } else {
            status = fn(arg, (size_t)h.arg_len, &W.buf);
            if (status == 0 && W.buf.grow_err)
                status = result_lost(&W.buf);
        }
        uint64_t run = pp__now_ns() - t0;
        if (map)
            munmap(map, map_len);
        W.tail += h.rec_len;
        publish(h.seq, status, t0, run);
        if (b->max_tasks && ++done >= b->max_tasks)
            worker_exit(0);
        if (b->max_memory && resident_bytes() > b->max_memory)
            worker_exit(0); /* retire: the parent resends what we had not started */
    }
}
