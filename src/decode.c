/*
 * decode.c - the parent's decoders of what a worker or the zygote writes.
 *
 * DESIGN: everything a worker writes and the parent reads crosses here
 * before the parent acts on it: result records in the ring, their bodies
 * (inline data, arena runs, memfds), a map chunk's per-item results and
 * failed-item lists, the control block's counters, and the zygote's
 * reports. The worker is not trusted (a task may scribble over its own
 * rings and control block), so each function checks every length, offset,
 * index and kind against bounds the caller gives as plain values, and
 * answers with offsets into the bytes it was given, or -EPROTO.
 *
 * They are pure so that they can be reasoned about alone and fuzzed
 * (tests/fuzz/fuzz_decode.c calls each one on arbitrary bytes and checks
 * that what it accepts lies inside the bounds it was given): no global, no
 * pool, no system call, no allocation. What to do with a decoded value
 * (complete a future, kill a broken worker, free a run) stays with the
 * callers. Where the bytes are shared memory the worker may still write,
 * a header is copied out once and every decision is taken on the copy.
 *
 * The result record's encoder (the worker's side, pp__enc_res_rec) lives
 * here too, beside its decoder, so the two cannot drift apart.
 */
#include "decode.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>

/* ---------------------------------------------------------------- */
/* the result ring                                                   */
/* ---------------------------------------------------------------- */

/* A record is never longer than half the ring, so the record and the PAD
 * before it always fit in an empty ring: a worker waiting for room never
 * waits for more than the ring holds. */
_Static_assert(2 * (sizeof(pp__res_hdr_t) + PP__MSG_MAX + PP__INLINE_MAX + 8) <= PP__RES_RING,
               "a result record can outgrow half the ring");

/* data_len counts only for inline data; callers bound it first. */
uint64_t pp__res_rec_len(uint32_t flags, uint32_t msg_len, uint64_t data_len) {
    uint64_t body = (flags & PP__F_MEMFD) ? 0 : (flags & PP__F_ARENA) ? 8 : data_len;
    return PP__ALIGN8(sizeof(pp__res_hdr_t) + PP__ALIGN8((uint64_t)msg_len) + body);
}

size_t pp__res_rec_need(size_t ring_size, uint64_t head, uint64_t rec_len) {
    size_t off = (size_t)(head % ring_size);
    return (size_t)rec_len + (off + rec_len > ring_size ? ring_size - off : 0);
}

uint64_t pp__enc_res_rec(unsigned char *ring, size_t ring_size, uint64_t head, pp__res_hdr_t *h,
                         const void *msg, const void *body) {
    h->kind = PP__REC_RES;
    h->rec_len = pp__res_rec_len(h->flags, h->msg_len, h->data_len);
    size_t off = (size_t)(head % ring_size);
    if (off + h->rec_len > ring_size) {
        uint32_t pad = PP__REC_PAD;
        memcpy(ring + off, &pad, sizeof pad);
        head += ring_size - off;
        off = 0;
    }
    unsigned char *p = ring + off;
    size_t body_len = (h->flags & PP__F_MEMFD)   ? 0
                      : (h->flags & PP__F_ARENA) ? 8
                                                 : (size_t)h->data_len;
    memcpy(p, h, sizeof *h);
    if (h->msg_len)
        memcpy(p + sizeof *h, msg, h->msg_len);
    if (body_len)
        memcpy(p + sizeof *h + PP__ALIGN8((size_t)h->msg_len), body, body_len);
    return head + h->rec_len;
}

int pp__dec_res_rec(const unsigned char *ring, size_t ring_size, uint64_t tail, uint64_t head,
                    pp__dec_rec_t *out) {
    memset(out, 0, sizeof *out);
    if (ring_size < 8 || ring_size % 8 || (tail & 7u))
        return -EINVAL;
    /* each PAD moves t forward, and never past head: this ends */
    for (;;) {
        uint64_t t = tail + out->skip;
        if (head == t)
            return 0;
        if (head < t || head - t > ring_size || (head & 7u))
            return -EPROTO;
        size_t off = (size_t)(t % ring_size); /* 8-aligned, so 8 bytes remain */
        uint32_t kind;
        memcpy(&kind, ring + off, sizeof kind);
        if (kind == PP__REC_PAD) {
            uint64_t skip = ring_size - off;
            if (skip > head - t)
                return -EPROTO;
            out->skip += skip;
            continue;
        }
        pp__res_hdr_t *h = &out->h;
        if (kind != PP__REC_RES || ring_size - off < sizeof *h)
            return -EPROTO;
        memcpy(h, ring + off, sizeof *h); /* decide on this copy only */
        if (h->kind != PP__REC_RES || h->msg_len > PP__MSG_MAX ||
            (h->flags & ~(uint32_t)(PP__F_MEMFD | PP__F_MSG | PP__F_ARENA)))
            return -EPROTO;
        bool memfd = (h->flags & PP__F_MEMFD) != 0, arena = (h->flags & PP__F_ARENA) != 0;
        if ((memfd && arena) || (!memfd && !arena && h->data_len > PP__INLINE_MAX))
            return -EPROTO;
        if (h->rec_len != pp__res_rec_len(h->flags, h->msg_len, h->data_len) ||
            h->rec_len > ring_size - off || h->rec_len > head - t)
            return -EPROTO;
        out->off = off;
        out->body = off + sizeof *h;
        return 1;
    }
}

int pp__dec_res_body(const pp__res_hdr_t *h, const unsigned char *body, size_t arena_bytes,
                     pp__dec_body_t *out) {
    memset(out, 0, sizeof *out);
    if (h->flags & PP__F_ARENA) { /* written in place in the slot's arena */
        uint64_t off;
        memcpy(&off, body + PP__ALIGN8((size_t)h->msg_len), 8);
        if (pp__dec_arena_run(off, h->data_len, arena_bytes) < 0)
            return -EPROTO;
        out->where = PP__DEC_ARENA;
        out->arena_off = off;
        return 0;
    }
    if (h->flags & PP__F_MEMFD) {
        out->where = PP__DEC_MEMFD;
        return 0;
    }
    out->where = PP__DEC_INLINE;
    out->data_off = PP__ALIGN8((size_t)h->msg_len);
    return 0;
}

int pp__dec_arena_run(uint64_t off, uint64_t len, size_t arena_bytes) {
    if (arena_bytes == 0 || off % PP__ARENA_PAGE || len == 0)
        return -EPROTO;
    return off < arena_bytes && len <= arena_bytes - off ? 0 : -EPROTO;
}

int pp__dec_arena_mark(uint64_t off, uint64_t pages, size_t npages, size_t *p, size_t *n) {
    *p = *n = 0;
    if (pages == 0)
        return 0;
    if (off >= npages || pages > npages - off)
        return -EPROTO;
    *p = (size_t)off;
    *n = (size_t)pages;
    return 1;
}

/* ---------------------------------------------------------------- */
/* a memfd result                                                    */
/* ---------------------------------------------------------------- */

int pp__dec_fd_recv(ssize_t r, int nfds, bool lost) {
    if (r > 0 && nfds == 0 && lost)
        return -EMFILE; /* sent, but this process has no descriptor free */
    return r > 0 && nfds == 1 ? 0 : -EPROTO;
}

int pp__dec_memfd(uint64_t claimed, int64_t real_size, int seals) {
    int need = F_SEAL_SHRINK | F_SEAL_WRITE;
    if (real_size < 0 || (uint64_t)real_size != claimed || claimed > SIZE_MAX || seals < 0 ||
        (seals & need) != need)
        return -EPROTO;
    return 0;
}

/* ---------------------------------------------------------------- */
/* map chunk results                                                 */
/* ---------------------------------------------------------------- */

int pp__dec_item(const unsigned char *p, size_t len, size_t pos, pp__dec_item_t *out) {
    memset(out, 0, sizeof *out);
    if (pos > len || len - pos < sizeof out->ih)
        return -EPROTO;
    memcpy(&out->ih, p + pos, sizeof out->ih);
    size_t rem = len - pos - sizeof out->ih;
    uint64_t body = out->ih.status ? out->ih.msg_len : out->ih.data_len;
    if (out->ih.msg_len > PP__MSG_MAX || body > rem || PP__ALIGN8((size_t)body) > rem)
        return -EPROTO;
    out->body = pos + sizeof out->ih;
    out->body_len = (size_t)body;
    out->next = out->body + PP__ALIGN8((size_t)body);
    return 0;
}

int pp__dec_fixed_start(size_t len, uint64_t n, size_t result_size, bool packed, size_t *pos) {
    *pos = 0;
    if (!packed)
        return 0;
    if (result_size && n > SIZE_MAX / result_size)
        return -EPROTO;
    size_t bytes = (size_t)n * result_size;
    if (len < bytes)
        return -EPROTO;
    *pos = bytes;
    return 0;
}

int pp__dec_fail(const unsigned char *p, size_t len, size_t pos, uint64_t n, uint64_t min_k,
                 pp__dec_fail_t *out) {
    memset(out, 0, sizeof *out);
    if (pos > len)
        return -EPROTO;
    if (pos == len)
        return 0;
    if (len - pos < 8 + sizeof out->ih)
        return -EPROTO;
    memcpy(&out->k, p + pos, 8);
    memcpy(&out->ih, p + pos + 8, sizeof out->ih);
    size_t rem = len - pos - 8 - sizeof out->ih;
    if (out->k >= n || out->k < min_k || out->ih.msg_len > PP__MSG_MAX ||
        PP__ALIGN8((size_t)out->ih.msg_len) > rem)
        return -EPROTO;
    out->msg = pos + 8 + sizeof out->ih;
    out->next = out->msg + PP__ALIGN8((size_t)out->ih.msg_len);
    return 1;
}

/* ---------------------------------------------------------------- */
/* the control block                                                 */
/* ---------------------------------------------------------------- */

uint64_t pp__dec_started(uint64_t raw, uint64_t seq_done, uint64_t seq_next, bool broken) {
    uint64_t s = raw;
    if (s < seq_done)
        s = seq_done;
    if (s > seq_next)
        s = seq_next;
    if (broken && seq_done < seq_next)
        s = seq_done + 1;
    return s;
}

long pp__dec_lost_item(uint64_t item_index, uint64_t chunk_fails, uint64_t n, uint64_t *fails) {
    *fails = 0;
    if (n == 0)
        return -1;
    uint64_t k = item_index < n ? item_index : n - 1;
    if (k > (uint64_t)LONG_MAX)
        k = (uint64_t)LONG_MAX;
    *fails = chunk_fails < k ? chunk_fails : k;
    return (long)k;
}

uint64_t pp__dec_start_ns(uint64_t claimed, uint64_t now, uint64_t window) {
    return (claimed > now || now - claimed > window) ? now : claimed;
}

/* ---------------------------------------------------------------- */
/* the zygote's reports                                              */
/* ---------------------------------------------------------------- */

int pp__dec_zmsg(const void *buf, size_t len, int nslots, pp__zmsg_t *out) {
    memset(out, 0, sizeof *out);
    if (len != sizeof *out)
        return -EPROTO;
    memcpy(out, buf, sizeof *out);
    bool slot_ok = out->slot >= 0 && out->slot < nslots;
    switch (out->type) {
    case PP__Z_SPAWNED: return slot_ok && out->pid > 0 ? PP__Z_SPAWNED : -EPROTO;
    case PP__Z_FAILED:
        if (!slot_ok)
            return -EPROTO;
        if (!(out->err < 0 && out->err > -4096))
            out->err = -EAGAIN;
        return PP__Z_FAILED;
    case PP__Z_DIED: return out->pid > 0 ? PP__Z_DIED : -EPROTO;
    default: /* SPAWN and KILL go the other way */ return -EPROTO;
    }
}
