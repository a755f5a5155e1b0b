/*
 * worker.h - the worker's side: its task loop (worker.c), a task's output
 * buffer (buf.c), its writes into the slot's arena of shared memory
 * (arena.c) and the decoding of function names sent across an exec
 * (fnaddr.c).
 *
 * DESIGN: code that runs only in a worker process (worker.c, buf.c)
 * includes this, wire.h and sys.h, never internal.h: it cannot touch the
 * parent's pool, futures or dispatch state, which live in the parent (a
 * forked worker's copy of them is dead memory). The parent includes this
 * header too, for the types it shares with the worker (pp__arena_t) and
 * to start workers.
 */
#ifndef PP_WORKER_H
#define PP_WORKER_H

#include "procpool.h"
#include "sys.h"
#include "wire.h"

/* worker.c */
__attribute__((noreturn)) void pp__worker_main(const pp__boot_t *b);

/* arena.c: the worker's calls */
/* A worker slot's page arena in shared memory (arena.c). */
typedef struct pp__arena {
    void *base;
    size_t size;
    _Atomic uint64_t *bits;
    unsigned char *data;
    size_t npages;
} pp__arena_t;
void pp__arena_init(pp__arena_t *a, void *base, size_t size);
size_t pp__arena_alloc(pp__arena_t *a, size_t n);
bool pp__arena_extend(pp__arena_t *a, size_t p, size_t n, size_t m);
void pp__arena_free(pp__arena_t *a, size_t p, size_t n);
size_t pp__arena_pages(size_t bytes);

/* fnaddr.c: a function or static address as (object key, offset), the same
 * in every execution of the program */
bool pp__addr_encode(const void *addr, uint64_t *key, uint64_t *off);
void *pp__addr_decode(uint64_t key, uint64_t off);

/* buf.c: a task's output */
struct pp_buf {
    unsigned char *data; /* heap (reused between tasks), memfd mapping or arena run */
    size_t len, cap;
    unsigned char *heap;
    size_t heap_cap;
    int memfd;          /* -1 while the result lives in the heap */
    bool ext;           /* data is a caller-given slot (a map result in place) */
    pp__arena_t *arena; /* large results go here when set (single tasks) */
    _Atomic uint64_t *arena_off_mark, *arena_pages_mark;
    size_t run, run_pages; /* the arena run data is, when in_arena */
    bool in_arena;
    size_t msg_len;
    int grow_err;     /* the first failure to grow the result in this task, or 0 */
    size_t grow_want; /* the size it failed to grow to */
    char msg[1024];
};
void pp__buf_init(pp_buf_t *b);
void pp__buf_reset(pp_buf_t *b);
void pp__buf_drop_arena(pp_buf_t *b, bool give_back);
/* Write the next result straight into [p, p+cap); it moves to the heap if it grows past. */
void pp__buf_external(pp_buf_t *b, void *p, size_t cap);
/* Turn a memfd-backed result into a sealed fd the parent can map; -errno on failure. */
int pp__buf_seal(pp_buf_t *b);

#endif
