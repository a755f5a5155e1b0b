/*
 * job.h - a map job, shared by map.c (chunks, pp_map) and iter.c
 * (iterators, streaming input). See map.c for the design. Every field is
 * guarded by pool->lock except the atomics.
 */
#ifndef PP_JOB_H
#define PP_JOB_H

#include "tuning.h"
#include "internal.h"

#define WINDOW_PER_WORKER 4 /* iterator: chunks sent or held, per worker */
#define MAP_WINDOW_PER_WORKER 64
#define CHUNK_BYTES (PP__INLINE_MAX - sizeof(pp__task_hdr_t) - 64)

enum { PP__JOB_MAP = 1, PP__JOB_ITER };

typedef struct pp__range {
    size_t lo, n;
    void *blob; /* fed items, packed; NULL for array jobs */
    size_t blob_len;
    struct pp__range *next;
} pp__range_t;

/* A finished chunk an iterator has not read yet. */
typedef struct pp__chunk_res {
    size_t lo, n, pos;
    unsigned char *buf; /* malloc'd copy of the per-item results, or */
    void *map;          /* the worker's memfd mapping */
    size_t map_len;
    const unsigned char *cur, *end;
    int err_all; /* every item fails with this (chunk lost), or 0 */
    char *msg_all;
    struct pp__chunk_res *next;
} pp__chunk_res_t;

struct pp__job {
    pp_pool_t *pool;
    int kind;
    bool items_ref, results_ref; /* in the pool's shared memory: by address */
    bool ordered, feed_src, cancelled, finished, counted, feed_ended, feed_err_told, listed;
    pp_task_fn fn;
    const unsigned char *items;
    size_t item_size, count;
    unsigned char *results;
    size_t result_size;
    size_t chunk;
    bool autochunk;
    uint64_t item_ns;   /* smoothed time per item */
    size_t next;        /* array: first item not yet handed out */
    pp__range_t *retry; /* ranges to send again */
    pp__range_t *fed_head, *fed_tail;
    size_t nfed_chunks;
    size_t sent, held; /* chunks in flight; finished chunks unread */
    size_t window;
    size_t done, total;
    size_t st_done, st_total; /* what pp_pool_stats has been told of done and total */
    int refs;
    pp__job_t *next_job;
    /* map */
    pp_future_t *f;
    size_t fail_index;
    int fail_err, fail_status;
    char *fail_msg;
    /* iterator */
    pp__chunk_res_t *res_head, *res_tail, *cur_res;
    size_t next_out, reported;
    int abort_err; /* terminated: report once, then end */
    bool abort_told;
    _Atomic uint32_t wake;
    _Atomic uint32_t waiters;
    char *last_err;
    _Atomic size_t a_done, a_total; /* progress for lock-free reading */
    /* feed */
    pp_feed_fn feed;
    void *feed_ud;
    size_t fed; /* items fed so far */
    int feed_err;
    bool feed_stopped; /* the library ended the input (start-up broken) */
    char *end_msg;     /* then feed_err's message */
    void *stash;       /* an item fed that did not fit the last chunk */
    size_t stash_len;
};

struct pp_iter {
    pp__job_t job;
};

void pp__job_unref(pp__job_t *j);
void pp__chunk_res_free(pp__chunk_res_t *r);
void pp__job_list_add(pp_pool_t *pool, pp__job_t *j);
void pp__job_wake(pp__job_t *j);
void pp__job_fail_items(pp_pool_t *pool, pp__job_t *j, size_t lo, size_t n, int err,
                        const char *why);
int pp__job_new(pp_pool_t *pool, int kind, pp_task_fn fn, const void *items, size_t item_size,
                size_t count, size_t chunksize, pp__job_t **out);
int pp__job_start_locked(pp_pool_t *pool, pp__job_t *j);
/* Take back the chunks of cancelled job j that workers have not started. */
void pp__job_take_back_locked(pp_pool_t *pool, pp__job_t *j);

#endif
