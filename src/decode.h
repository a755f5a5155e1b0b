/*
 * decode.h - pure decoders of everything a worker (or the zygote) writes
 * and the parent reads, and the encoder of the result record.
 *
 * DESIGN: the worker is not trusted, so every byte it writes is validated
 * before the parent acts on it: result records in the ring (kind, flags,
 * sizes, the message, inline data), a record's body (inline data, an arena
 * run's offset, a memfd's claimed size against the file's real size and
 * seals), a map chunk's per-item results and its list of failed items, the
 * counters in the control block (tasks begun, the item a chunk died on, how
 * many of its items failed, when the task began, the arena run it was
 * building) and the zygote's reports (SPAWNED, FAILED, DIED).
 *
 * Each decoder here is a pure function: its input is bytes and bounds given
 * as plain values, its output a decoded struct (offsets into the input,
 * never pointers it made) or a negative code, -EPROTO for anything the
 * writer had no right to write (-EINVAL only for a caller's impossible
 * arguments). No globals, no pool, no system call, no allocation: the
 * callers in channel.c, pool.c, map.c, supervise.c and arena.c do the
 * acting, and libFuzzer (tests/fuzz/fuzz_decode.c) calls these directly.
 * A decoder that reads shared memory the worker may still be writing
 * copies each header out once and decides on the copy only.
 */
#ifndef PP_DECODE_H
#define PP_DECODE_H

#include "wire.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define PP__MSG_MAX 1024u    /* the longest message a record or an item carries */
#define PP__ARENA_PAGE 4096u /* an arena's page; runs start on one */

/* ---- the result ring ------------------------------------------------ */

typedef struct pp__dec_rec {
    pp__res_hdr_t h; /* the record's header, copied out and validated */
    uint64_t skip;   /* PAD bytes skipped before it (also when none is found) */
    size_t off;      /* the record's offset in the ring */
    size_t body;     /* its body's offset in the ring: the message, then the data */
} pp__dec_rec_t;

/* The next result record of a ring of ring_size bytes (a multiple of 8)
 * whose consumer is at tail (8-aligned) and whose producer published up to
 * head. 1: a record, which lies in [tail + skip, head) and inside the ring
 * without wrapping; 0: none (tail + skip == head); -EPROTO: a bad head,
 * PAD, kind, flag, size or record length; -EINVAL: a bad ring_size or
 * tail. */
int pp__dec_res_rec(const unsigned char *ring, size_t ring_size, uint64_t tail, uint64_t head,
                    pp__dec_rec_t *out);

/* The record length the worker writes for h's flags and sizes. */
uint64_t pp__res_rec_len(uint32_t flags, uint32_t msg_len, uint64_t data_len);
/* Ring bytes a record of rec_len needs at head: itself, and the PAD to the
 * end when it would straddle it. */
size_t pp__res_rec_need(size_t ring_size, uint64_t head, uint64_t rec_len);
/* The worker's encoder: write h (kind and rec_len set here), its message
 * and its body (inline data, or the 8-byte arena offset; nothing for a
 * memfd) at head, after a PAD when needed; the caller made the room
 * (pp__res_rec_need). Returns the new head. */
uint64_t pp__enc_res_rec(unsigned char *ring, size_t ring_size, uint64_t head, pp__res_hdr_t *h,
                         const void *msg, const void *body);

enum { PP__DEC_INLINE = 0, PP__DEC_ARENA, PP__DEC_MEMFD };
typedef struct pp__dec_body {
    int where;          /* PP__DEC_*: where a successful record's data is */
    size_t data_off;    /* INLINE: the data's offset from the body's start */
    uint64_t arena_off; /* ARENA: the run's byte offset in the arena's data */
} pp__dec_body_t;

/* Where the data of a successful record h (from pp__dec_res_rec) is; body
 * is its body. arena_bytes: the slot's arena data size (0: none). 0, or
 * -EPROTO for an arena run outside the arena. */
int pp__dec_res_body(const pp__res_hdr_t *h, const unsigned char *body, size_t arena_bytes,
                     pp__dec_body_t *out);

/* Is [off, off+len) a page-aligned, non-empty run inside arena_bytes?
 * 0 or -EPROTO. */
int pp__dec_arena_run(uint64_t off, uint64_t len, size_t arena_bytes);

/* The arena run a dead worker marked as being built: off and pages, in
 * pages, for an arena of npages. 1: [*p, *p + *n) is to be freed; 0: none
 * marked; -EPROTO: a run outside the arena. */
int pp__dec_arena_mark(uint64_t off, uint64_t pages, size_t npages, size_t *p, size_t *n);

/* ---- a memfd result ------------------------------------------------- */

/* What receiving the memfd gave: r bytes (or -errno), nfds descriptors,
 * lost: the kernel dropped one for want of a free descriptor. 0: one fd;
 * -EMFILE: not the worker's fault; -EPROTO. */
int pp__dec_fd_recv(ssize_t r, int nfds, bool lost);
/* The worker claims claimed bytes; the file has real_size (negative: its
 * size could not be read) and seals (negative: unreadable). 0: sealed
 * against shrinking and writing, and exactly that size; else -EPROTO. */
int pp__dec_memfd(uint64_t claimed, int64_t real_size, int seals);

/* ---- map chunk results ---------------------------------------------- */

typedef struct pp__dec_item {
    pp__item_hdr_t ih;
    size_t body;     /* offset of its message (status != 0) or data */
    size_t body_len; /* msg_len or data_len */
    size_t next;     /* offset of the next item */
} pp__dec_item_t;

/* The item at pos of a chunk's per-item results p[0, len): a header, then
 * the message (a failure) or the data, padded to 8. 0, or -EPROTO. */
int pp__dec_item(const unsigned char *p, size_t len, size_t pos, pp__dec_item_t *out);

/* Fixed-size results: where the list of failed items starts; packed: n
 * results of result_size bytes come first. 0, or -EPROTO (too short). */
int pp__dec_fixed_start(size_t len, uint64_t n, size_t result_size, bool packed, size_t *pos);

typedef struct pp__dec_fail {
    uint64_t k;        /* the item's index in the chunk */
    pp__item_hdr_t ih; /* its status, message length, result length */
    size_t msg;        /* offset of its message (ih.msg_len bytes) */
    size_t next;       /* offset of the next entry */
} pp__dec_fail_t;

/* The failed-item entry at pos of p[0, len) (a u64 index, a header, the
 * message padded to 8) of a chunk of n items, whose entries come in
 * increasing order from min_k on. 1: an entry, with min_k <= k < n;
 * 0: the list ended exactly at len; -EPROTO. */
int pp__dec_fail(const unsigned char *p, size_t len, size_t pos, uint64_t n, uint64_t min_k,
                 pp__dec_fail_t *out);

/* ---- the control block ---------------------------------------------- */

/* How many of the tasks [seq_done, seq_next) the dead worker had begun, by
 * its count raw, clamped to that range; a broken worker's count is not
 * believed: only the task whose record broke it had begun. */
uint64_t pp__dec_started(uint64_t raw, uint64_t seq_done, uint64_t seq_next, bool broken);
/* The item a chunk of n items died on, by item_index: in [0, n), or -1 for
 * n == 0; *fails: how many items before it failed, by chunk_fails, at most
 * that many. */
long pp__dec_lost_item(uint64_t item_index, uint64_t chunk_fails, uint64_t n, uint64_t *fails);
/* When the running task began, by the worker's claim: believed only within
 * window before now, else now. */
uint64_t pp__dec_start_ns(uint64_t claimed, uint64_t now, uint64_t window);

/* ---- the zygote's reports ------------------------------------------- */

/* One message of len bytes from the zygote, for a pool of nslots slots.
 * Returns its type (PP__Z_SPAWNED: slot in range, pid > 0; PP__Z_FAILED:
 * slot in range, err a -errno, -EAGAIN when it is not one; PP__Z_DIED:
 * pid > 0) with *out filled, or -EPROTO (wrong size, a type the zygote
 * does not send, a slot or pid out of range). */
int pp__dec_zmsg(const void *buf, size_t len, int nslots, pp__zmsg_t *out);

#endif
