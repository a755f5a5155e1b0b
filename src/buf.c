/*
 * buf.c - pp_buf_t, the growable output of a task, inside a worker.
 *
 * DESIGN: a result starts in a heap buffer that the worker keeps between
 * tasks (no malloc per task). When it grows past PP__INLINE_MAX it moves to
 * a memfd mapping that grows with ftruncate+mremap (never past
 * RLIMIT_FSIZE: growing a file past it raises SIGXFSZ, so the append fails
 * -EFBIG instead, and the task fails even if it ignores that and returns
 * 0, since its result would be incomplete); at the end of the task
 * the memfd is trimmed to size, unmapped and sealed against every change,
 * and travels to the parent by SCM_RIGHTS, where it is mapped read-only and
 * handed out without another copy. Small results are copied once, into the
 * result ring. Only the worker's single thread touches a pp_buf, so there
 * are no races here.
 */
#include "worker.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define HEAP_KEEP (1u << 20) /* a heap buffer larger than this is released after a task */

void pp__buf_init(pp_buf_t *b) {
    memset(b, 0, sizeof *b);
    b->memfd = -1;
}

void pp__buf_external(pp_buf_t *b, void *p, size_t cap) {
    b->data = p;
    b->cap = cap;
    b->len = 0;
    b->ext = true;
}

static void arena_mark(pp_buf_t *b, size_t run, size_t pages) {
    if (b->arena_off_mark) {
        atomic_store_explicit(b->arena_off_mark, run, memory_order_relaxed);
        atomic_store_explicit(b->arena_pages_mark, pages, memory_order_release);
    }
}

/* Leave the arena run (it failed, or the parent now owns it: give == false). */
void pp__buf_drop_arena(pp_buf_t *b, bool give_back) {
    if (!b->in_arena)
        return;
    arena_mark(b, 0, 0);
    if (give_back)
        pp__arena_free(b->arena, b->run, b->run_pages);
    b->in_arena = false;
    b->data = b->heap;
    b->cap = b->heap_cap;
}

/* Grow the result inside the arena; false: no room (the caller falls back). */
static bool grow_arena(pp_buf_t *b, size_t need) {
    size_t want = pp__arena_pages(need < b->cap * 2 ? b->cap * 2 : need);
    if (b->in_arena && pp__arena_extend(b->arena, b->run, b->run_pages, want)) {
        b->run_pages = want;
        b->cap = want * 4096u;
        arena_mark(b, b->run, want);
        return true;
    }
    size_t run = pp__arena_alloc(b->arena, want);
    if (run == SIZE_MAX)
        return false;
    unsigned char *p = b->arena->data + run * 4096u;
    arena_mark(b, run, want); /* before the copy: a death now still frees it */
    if (b->len)
        memcpy(p, b->data, b->len);
    if (b->in_arena)
        pp__arena_free(b->arena, b->run, b->run_pages);
    b->in_arena = true;
    b->run = run;
    b->run_pages = want;
    b->data = p;
    b->cap = want * 4096u;
    return true;
}

void pp__buf_reset(pp_buf_t *b) {
    b->ext = false;
    pp__buf_drop_arena(b, true);
    if (b->memfd >= 0) {
        munmap(b->data, b->cap);
        pp__close(&b->memfd);
    }
    if (b->heap_cap > HEAP_KEEP) {
        free(b->heap);
        b->heap = NULL;
        b->heap_cap = 0;
    }
    b->data = b->heap;
    b->cap = b->heap_cap;
    b->len = 0;
    b->msg_len = 0;
    b->grow_err = 0;
    b->grow_want = 0;
}

static size_t page_round(size_t n) {
    size_t pg = 4096;
    return (n + pg - 1) & ~(pg - 1);
}

/* Only the codes pp_buf_append documents: -EFBIG, -EMFILE, -ENFILE, -ENOMEM. */
static int grow_memfd_(pp_buf_t *b, size_t need);
static int grow_memfd(pp_buf_t *b, size_t need) {
    int r = grow_memfd_(b, need);
    return r < 0 ? pp__memfd_err(r) : r;
}

static int grow_memfd_(pp_buf_t *b, size_t need) {
    uint64_t lim = pp__fsize_max(); /* a memfd is a file: never past RLIMIT_FSIZE (SIGXFSZ) */
    if (need > lim)
        return -EFBIG;
    size_t ncap = b->cap * 2;
    if (ncap < need)
        ncap = need;
    if (ncap < (1u << 20))
        ncap = 1u << 20;
    ncap = page_round(ncap);
    if (ncap < need)
        return -ENOMEM;
    if (ncap > lim)
        ncap = (size_t)lim;
    if (b->memfd < 0) {
        int fd = pp__memfd("procpool-result", ncap, true);
        if (fd < 0)
            return fd;
        void *p = mmap(NULL, ncap, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED) {
            int e = -errno;
            close(fd);
            return e;
        }
        if (b->len)
            memcpy(p, b->data, b->len);
        b->memfd = fd;
        b->data = p;
        b->cap = ncap;
        return 0;
    }
    if (ftruncate(b->memfd, (off_t)ncap) < 0)
        return -errno;
    void *p = mremap(b->data, b->cap, ncap, MREMAP_MAYMOVE);
    if (p == MAP_FAILED)
        return -ENOMEM;
    b->data = p;
    b->cap = ncap;
    return 0;
}

static int ensure(pp_buf_t *b, size_t add);

static int ensure_(pp_buf_t *b, size_t add) {
    if (add > SIZE_MAX - b->len)
        return -ENOMEM;
    size_t need = b->len + add;
    if (need <= b->cap)
        return 0;
    if (b->ext) { /* outgrew its slot: carry on in the heap */
        unsigned char *slot = b->data;
        size_t len = b->len;
        b->ext = false;
        b->data = b->heap;
        b->cap = b->heap_cap;
        b->len = 0;
        int r = ensure(b, len + add);
        if (r < 0)
            return r;
        memcpy(b->data, slot, len);
        b->len = len;
        return 0;
    }
    if (b->memfd < 0 && b->arena && need > PP__INLINE_MAX && grow_arena(b, need))
        return 0;
    if (b->in_arena) { /* the arena is full: carry on in a memfd (it copies the bytes) */
        int r = grow_memfd(b, need);
        if (r < 0)
            return r;
        pp__arena_free(b->arena, b->run, b->run_pages);
        arena_mark(b, 0, 0);
        b->in_arena = false;
        return 0;
    }
    if (b->memfd < 0 && need <= PP__INLINE_MAX) {
        size_t ncap = b->heap_cap ? b->heap_cap * 2 : 256;
        while (ncap < need)
            ncap *= 2;
        unsigned char *p = realloc(b->heap, ncap);
        if (!p)
            return -ENOMEM;
        b->heap = b->data = p;
        b->heap_cap = b->cap = ncap;
        return 0;
    }
    return grow_memfd(b, need);
}

/* Make room for add more bytes. The first failure of a task is kept
 * (grow_err): a task that returns 0 after it would hand back a short
 * result, so the worker fails it instead. */
static int ensure(pp_buf_t *b, size_t add) {
    int r = ensure_(b, add);
    if (r < 0 && !b->grow_err) {
        b->grow_err = r;
        b->grow_want = add > SIZE_MAX - b->len ? SIZE_MAX : b->len + add;
    }
    return r;
}

int pp_buf_append(pp_buf_t *out, const void *data, size_t len) {
    if (!out || (!data && len))
        return -EINVAL;
    int r = ensure(out, len);
    if (r < 0)
        return r;
    if (len)
        memcpy(out->data + out->len, data, len);
    out->len += len;
    return 0;
}

void *pp_buf_reserve(pp_buf_t *out, size_t len) {
    if (!out) {
        errno = EINVAL;
        return NULL;
    }
    int r = ensure(out, len ? len : 1);
    if (r < 0) {
        errno = -r;
        return NULL;
    }
    void *p = out->data + out->len;
    out->len += len;
    return p;
}

int pp_buf_fail(pp_buf_t *out, const char *fmt, ...) {
    if (!out)
        return 1;
    if (!fmt) {
        out->msg_len = 0;
        return 1;
    }
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out->msg, sizeof out->msg, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if ((size_t)n >= sizeof out->msg)
        n = (int)sizeof out->msg - 1;
    out->msg_len = (size_t)n;
    return 1;
}

int pp__buf_seal(pp_buf_t *b) {
    if (munmap(b->data, b->cap) < 0 || ftruncate(b->memfd, (off_t)b->len) < 0)
        return -errno;
    b->data = NULL;
    b->cap = 0;
    if (fcntl(b->memfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0)
        return -errno;
    int fd = b->memfd;
    b->memfd = -1;
    b->data = b->heap;
    b->cap = b->heap_cap;
    return fd;
}
