/*
 * wire.h - what crosses between the parent and a worker (or the zygote):
 * the layout of the shared control block, of task and result records in
 * the rings, of the claim words, of the boot message a worker starts from,
 * and of the zygote's messages.
 *
 * DESIGN: everything here is written by one process and read by another,
 * so it holds only fixed-size layouts (an address in a record is a number,
 * meaningful only inside the pool's shared memory or, for functions,
 * decoded by fnaddr.c). Nothing in it refers to the parent's pool or to
 * the worker's loop: wire.h is the header both sides share, and decode.c
 * checks every field the other side wrote.
 */
#ifndef PP_WIRE_H
#define PP_WIRE_H

#include "procpool.h"
#include "sys.h"

#define PP__TASK_RING (256u * 1024u)
#define PP__RES_RING (256u * 1024u)
#define PP__CTRL_SIZE 8192u /* the control block's page, then the claim words' page */
#define PP__CLAIM_OFF 4096u /* PP__INFLIGHT_MAX claim words (uint32) start here */
#define PP__INLINE_MAX (PP__TASK_RING / 4) /* larger args/results go by memfd */

enum { PP__REC_TASK = 0x7a5c0001u, PP__REC_PAD = 0x7a5c0002u, PP__REC_RES = 0x7a5c0003u };
enum {
    PP__F_MEMFD = 1u,
    PP__F_MSG = 2u,
    PP__F_CHUNK = 4u,
    PP__F_VAR = 8u,
    PP__F_REF = 16u,
    PP__F_RESREF = 32u,
    PP__F_ARENA = 64u
};
/* PP__F_ARENA (result): the data is in the worker's arena in shared memory;
 * the record's body is its u64 byte offset from the arena's first data page. */
/* PP__F_REF: the argument (or a chunk's items) is not in the record but at
 * address `addr`, inside the pool's shared memory (same address in every
 * process). PP__F_RESREF: a map chunk's results are written in place at
 * res_addr (res_size bytes each); the chunk's result record then lists only
 * the items that failed, each as a u64 index + pp__item_hdr_t + message. */
/* PP__F_CHUNK: the argument is nitems items of item_size bytes each;
 * PP__F_CHUNK|PP__F_VAR: nitems items, each [u64 len][bytes, padded to 8].
 * A chunk's result data is, per item, a pp__item_hdr_t, the message and the
 * data (each padded to 8). */
typedef struct pp__item_hdr {
    int32_t status;
    uint32_t msg_len;
    uint64_t data_len;
} pp__item_hdr_t;

/* Control block at the start of the ctrl+result memfd. Fields written by
 * one side only, each on its own cache line. */
#define PP__LINE(type, name)                                                                       \
    type name;                                                                                     \
    char name##_pad[PP__CACHELINE - sizeof(type)]
typedef struct pp__ctrl {
    /* written by the parent; the worker spins on task_head */
    PP__LINE(_Atomic uint64_t, task_head);       /* bytes of task ring published */
    PP__LINE(_Atomic uint32_t, wake_seq);        /* futex word the worker sleeps on */
    PP__LINE(_Atomic uint32_t, stop);            /* 1: exit once the ring is empty */
    PP__LINE(_Atomic uint64_t, res_tail);        /* bytes of result ring consumed */
    PP__LINE(_Atomic uint32_t, parent_sleeping); /* parent asks for an eventfd write */
    /* written by the worker */
    PP__LINE(_Atomic uint32_t, worker_sleeping);
    PP__LINE(_Atomic uint64_t, tasks_started); /* how many task records it began */
    PP__LINE(_Atomic uint64_t, task_start_ns); /* CLOCK_MONOTONIC when the latest began */
    PP__LINE(_Atomic uint64_t, item_index);    /* item of the running chunk */
    PP__LINE(_Atomic uint64_t, chunk_fails);   /* items of the running chunk that failed */
    PP__LINE(_Atomic uint64_t, arena_off);     /* arena run the worker is building (pages) */
    PP__LINE(_Atomic uint64_t, arena_pages);
    PP__LINE(_Atomic uint64_t, res_head); /* bytes of result ring published */
    PP__LINE(_Atomic uint32_t, booted);   /* start-up and the initializer are done */
} pp__ctrl_t;
_Static_assert(sizeof(pp__ctrl_t) <= PP__CLAIM_OFF, "the control block outgrew its page");

/* Claim words: one per in-flight record (index seq % PP__INFLIGHT_MAX),
 * in the control block's memfd, which both sides map read-write. The
 * parent writes FRESH for a record before publishing it; the worker CASes
 * FRESH -> RUN before it starts the record, the parent FRESH -> CANCEL to
 * take back a record not started (pp_future_cancel). One CAS wins: a task
 * is either run or cancelled, never both. The low two bits are the state,
 * the rest the record's sequence number (mod 2^30), so a word left from an
 * older record never matches. */
enum { PP__CLAIM_FRESH = 0u, PP__CLAIM_RUN = 1u, PP__CLAIM_CANCEL = 2u };
static inline uint32_t pp__claim_word(uint64_t seq, uint32_t state) {
    return (uint32_t)(seq << 2) | state;
}
#define PP__INFLIGHT_MAX 1024u
_Static_assert(PP__CLAIM_OFF + PP__INFLIGHT_MAX * 4u <= PP__CTRL_SIZE, "claim words");
static inline _Atomic uint32_t *pp__claim_at(pp__ctrl_t *ctrl, uint64_t seq) {
    return (_Atomic uint32_t *)((unsigned char *)ctrl + PP__CLAIM_OFF) + seq % PP__INFLIGHT_MAX;
}

typedef struct pp__task_hdr {
    uint32_t kind;
    uint32_t flags;
    uint64_t seq;
    uint64_t fn;
    uint64_t arg_len;
    uint64_t rec_len; /* whole record, 8-aligned */
    uint64_t nitems;  /* chunks only */
    uint64_t item_size;
    uint64_t fn_key;   /* spawn: fn is an offset in the object with this key */
    uint64_t addr;     /* PP__F_REF */
    uint64_t res_addr; /* PP__F_RESREF */
    uint64_t res_size;
} pp__task_hdr_t;

typedef struct pp__res_hdr {
    uint32_t kind;
    uint32_t flags;
    uint64_t seq;
    int32_t status;
    uint32_t msg_len;
    uint64_t data_len;
    uint64_t rec_len;
    uint64_t run_ns;
    uint64_t start_ns; /* CLOCK_MONOTONIC when the worker began the record (0: skipped) */
} pp__res_hdr_t;

/* The boot message: what a worker starts from (worker.c; sent over a
 * socket under spawn, copied across fork otherwise). */
typedef struct pp__boot {
    int ctrl_fd, task_ro_fd, sock, evfd, death_rd;
    pid_t parent_pid; /* the process whose death ends us */
    void (*initializer)(void *);
    void *initarg;
    unsigned max_tasks;
    bool task_timeout; /* the pool has one: stamp every map item's start */
    size_t max_memory; /* resident bytes after which the worker retires */
    void *arena;       /* the slot's arena in shared memory, or NULL */
    size_t arena_size;
} pp__boot_t;

/* The zygote's messages (zygote.c): SPAWN and KILL from the parent,
 * SPAWNED, FAILED and DIED from the zygote. */
typedef struct pp__zmsg {
    uint32_t type;
    int32_t slot;
    int32_t pid;
    int32_t code, status, err;
    uint64_t arena, arena_size; /* SPAWN: the slot's arena */
} pp__zmsg_t;
enum { PP__Z_SPAWN = 1, PP__Z_SPAWNED, PP__Z_FAILED, PP__Z_DIED, PP__Z_KILL };

#endif
