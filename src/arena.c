/*
 * arena.c - large task results written straight into shared memory.
 *
 * DESIGN: each worker slot owns an arena carved out of the pool's shared
 * range (shm.c) at pool creation: a bitmap of pages, then the pages. A
 * worker whose result outgrows the ring's inline limit allocates a run of
 * pages here (first fit; it is the only one that sets bits) and the task
 * writes the result in place through pp_buf_reserve/append; the result
 * record then carries only the run's offset. The parent hands the future a
 * pointer straight into the arena (zero copy: pp_shm_contains() is true for
 * it; the run's offset and length are checked by pp__dec_arena_run) and clears the run's bits when the future is freed (only the parent
 * clears bits, with atomic and-not, so the two sides never race on a word).
 *
 * A worker that dies while building a result leaves its run marked in the
 * control block (arena_off/arena_pages); the parent frees it. The run is
 * un-marked before the result is published, so a death in between leaks a
 * run rather than freeing one a future holds. When the arena is full the
 * worker falls back to a sealed memfd (buf.c).
 *
 * Futures outlive their pool: while any future holds arena memory, the
 * shared range stays mapped (pool->shm_users); it is unmapped with the pool
 * struct, which the futures keep alive, once the last of them is freed.
 */
#include "internal.h"
#include "decode.h"

#include <errno.h>
#include <string.h>

#define PAGE PP__ARENA_PAGE
#define MIN_ARENA (4u << 20)
#define MAX_ARENA (256u << 20)

/* Carve one arena per slot out of the shared range; none when it is small
 * (the user's pp_shm_alloc space comes first). */
void pp__arenas_create(pp_pool_t *pool) {
    size_t range = pp__shm_size(pool->shm);
    size_t each = range / 16 / (size_t)pool->nworkers;
    if (each > MAX_ARENA)
        each = MAX_ARENA;
    each &= ~(size_t)(PAGE - 1);
    if (each < MIN_ARENA)
        return;
    for (int i = 0; i < pool->nworkers; i++) {
        unsigned char *base = pp_shm_alloc(pool, each);
        if (!base)
            return;
        pp__arena_init(&pool->workers[i].arena, base, each);
    }
}

/* Lay an arena over [base, base+size): the bitmap's pages, then data. */
void pp__arena_init(pp__arena_t *a, void *base, size_t size) {
    size_t pages = size / PAGE;
    size_t words = (pages + 63) / 64;
    size_t hdr_pages = (words * 8 + PAGE - 1) / PAGE;
    memset(a, 0, sizeof *a);
    if (!base || pages <= hdr_pages)
        return;
    a->base = base;
    a->size = size;
    a->bits = (_Atomic uint64_t *)base;
    a->data = (unsigned char *)base + hdr_pages * PAGE;
    a->npages = pages - hdr_pages;
}

/* ---------------------------------------------------------------- */
/* worker side: allocate (set bits)                                  */
/* ---------------------------------------------------------------- */

static bool bit(const pp__arena_t *a, size_t p) {
    return atomic_load_explicit(&a->bits[p / 64], memory_order_acquire) & (1ull << (p % 64));
}

static void set_run(pp__arena_t *a, size_t p, size_t n, bool on) {
    for (size_t i = p; i < p + n; i++) {
        uint64_t m = 1ull << (i % 64);
        if (on)
            atomic_fetch_or_explicit(&a->bits[i / 64], m, memory_order_acq_rel);
        else
            atomic_fetch_and_explicit(&a->bits[i / 64], ~m, memory_order_acq_rel);
    }
}

/* A run of n free pages, marked used; its first page, or SIZE_MAX. */
size_t pp__arena_alloc(pp__arena_t *a, size_t n) {
    if (!a->data || n == 0 || n > a->npages)
        return SIZE_MAX;
    size_t run = 0;
    for (size_t p = 0; p < a->npages; p++) {
        if (p % 64 == 0 && run == 0 && p + 64 <= a->npages &&
            atomic_load_explicit(&a->bits[p / 64], memory_order_acquire) == ~0ull) {
            p += 63; /* a full word: skip it */
            continue;
        }
        run = bit(a, p) ? 0 : run + 1;
        if (run == n) {
            size_t first = p + 1 - n;
            set_run(a, first, n, true);
            return first;
        }
    }
    return SIZE_MAX;
}

/* Grow the run [p, p+n) to m pages in place if the pages after it are free. */
bool pp__arena_extend(pp__arena_t *a, size_t p, size_t n, size_t m) {
    if (p + m > a->npages)
        return false;
    for (size_t i = p + n; i < p + m; i++)
        if (bit(a, i))
            return false;
    set_run(a, p + n, m - n, true);
    return true;
}

/* Either side: give back [p, p+n). */
void pp__arena_free(pp__arena_t *a, size_t p, size_t n) {
    if (a->data && p < a->npages && n <= a->npages - p)
        set_run(a, p, n, false);
}

size_t pp__arena_pages(size_t bytes) { return (bytes + PAGE - 1) / PAGE; }

/* ---------------------------------------------------------------- */
/* parent side                                                       */
/* ---------------------------------------------------------------- */

/* A future's arena data is being released. */
void pp__arena_release(pp_pool_t *pool, pp__arena_t *a, const void *p, size_t len) {
    size_t off = (size_t)((const unsigned char *)p - a->data);
    pp__arena_free(a, off / PAGE, pp__arena_pages(len));
    atomic_fetch_sub_explicit(&pool->shm_users, 1, memory_order_acq_rel);
}

/* The worker in slot w died: free the run it was building, if any (its
 * marks are checked by pp__dec_arena_mark: a run outside the arena is left). */
void pp__arena_reclaim(pp__worker_t *w) {
    if (!w->chan.ctrl || !w->arena.data)
        return;
    uint64_t off = atomic_load_explicit(&w->chan.ctrl->arena_off, memory_order_acquire);
    uint64_t n = atomic_load_explicit(&w->chan.ctrl->arena_pages, memory_order_acquire);
    size_t p, np;
    if (pp__dec_arena_mark(off, n, w->arena.npages, &p, &np) > 0)
        pp__arena_free(&w->arena, p, np);
}
