/*
 * fuzz_decode.c - libFuzzer harness for the parent's decoders of what a
 * worker or the zygote writes (src/decode.c).
 *
 * DESIGN: the decoders are pure functions, so the harness calls them
 * straight on the fuzzer's bytes, linked from procpool_static (built with
 * coverage and ASan+UBSan when PROCPOOL_FUZZ is on). Byte 0 picks the
 * decoder (its value modulo 8); the rest is read as the bounds the parent
 * would pass (ring size, tail, head, sizes, limits) and the bytes the
 * worker would have written. Beyond "no crash, no out-of-bounds read",
 * each case checks what the decoder promises:
 *   0  result ring: every record accepted lies inside the ring and the
 *      published part [tail, head), its length is the one the worker's
 *      encoder makes, its body (inline data, arena run) lies inside the
 *      record or the arena; a refusal is -EPROTO; none found means tail
 *      reached head.
 *   1  result record round trip: what pp__enc_res_rec (the worker's
 *      encoder) writes at any head of any ring decodes to the same header,
 *      message and body, and nothing after it.
 *   2  memfd results: accepted only when the claimed size is the file's
 *      size and it is sealed against shrinking and writing.
 *   3  a chunk's per-item results: each item accepted lies inside the
 *      bytes, and a list encoded as the worker does decodes back the same.
 *   4  a chunk's failed-item list: indexes increase and stay below n,
 *      messages lie inside the bytes, the list ends exactly at its end;
 *      round trip as in 3.
 *   5  control-block counters: tasks begun stay in [seq_done, seq_next],
 *      the lost item in [0, n) with at most that many failures before it,
 *      a start time within the window, an arena mark inside the arena.
 *   6  zygote reports: what is accepted has a known type, a slot in range,
 *      a pid > 0, an errno in range.
 *   7  every decoder once on the same bytes (a cheap smoke of all).
 * A broken promise aborts with a message on stderr.
 *
 * Built only with clang and -DPROCPOOL_FUZZ=ON (cmake/ProcpoolFuzz.cmake):
 *   CC=clang cmake -S . -B build-fuzz -DPROCPOOL_FUZZ=ON -DPROCPOOL_TESTS=OFF
 *   cmake --build build-fuzz --target fuzz_decode
 *   build-fuzz/fuzz_decode -max_total_time=60 tests/fuzz/corpus_decode
 */
#include "decode.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_decode: %s:%d: broken promise: %s\n", __FILE__, __LINE__,        \
                    #cond);                                                                        \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* The fuzzer's bytes, read front to back; zeros once they run out. */
typedef struct in {
    const uint8_t *p;
    size_t n;
} in_t;

static uint64_t take(in_t *in, size_t bytes) {
    uint64_t v = 0;
    for (size_t i = 0; i < bytes; i++) {
        uint8_t b = 0;
        if (in->n) {
            b = *in->p++;
            in->n--;
        }
        v |= (uint64_t)b << (8 * i);
    }
    return v;
}

/* Touch every byte of [p, p+n) so that ASan checks the range. */
static volatile unsigned sink;
static void touch(const unsigned char *p, size_t n) {
    unsigned s = 0;
    for (size_t i = 0; i < n; i++)
        s += p[i];
    sink += s;
}

/* A heap copy of exactly n bytes (the rest of the input, then zeros), so
 * that a read past n is ASan's to catch. */
static unsigned char *exact_copy(in_t *in, size_t n) {
    unsigned char *b = malloc(n ? n : 1);
    if (!b)
        abort();
    memset(b, 0, n);
    size_t k = in->n < n ? in->n : n;
    memcpy(b, in->p, k);
    in->p += k;
    in->n -= k;
    return b;
}

/* ---- 0: the result ring --------------------------------------------- */

static void check_body(const pp__dec_rec_t *d, const unsigned char *ring, size_t arena_bytes) {
    const pp__res_hdr_t *h = &d->h;
    if (h->status != 0) {
        touch(ring + d->body, h->msg_len); /* the message the parent copies */
        return;
    }
    pp__dec_body_t b;
    int r = pp__dec_res_body(h, ring + d->body, arena_bytes, &b);
    CHECK(r == 0 || r == -EPROTO);
    if (r < 0) {
        CHECK(h->flags & PP__F_ARENA);
        return;
    }
    size_t body_room = (size_t)h->rec_len - sizeof *h;
    switch (b.where) {
    case PP__DEC_INLINE:
        CHECK(!(h->flags & (PP__F_ARENA | PP__F_MEMFD)));
        CHECK(b.data_off >= h->msg_len && b.data_off <= body_room &&
              h->data_len <= body_room - b.data_off);
        touch(ring + d->body + b.data_off, (size_t)h->data_len);
        break;
    case PP__DEC_ARENA:
        CHECK(h->flags & PP__F_ARENA);
        CHECK(b.arena_off % PP__ARENA_PAGE == 0 && h->data_len > 0);
        CHECK(b.arena_off < arena_bytes && h->data_len <= arena_bytes - b.arena_off);
        break;
    case PP__DEC_MEMFD: CHECK(h->flags & PP__F_MEMFD); break;
    default: CHECK(!"unknown place");
    }
}

static void fuzz_ring(in_t *in) {
    size_t ring_size = 8 * (1 + (size_t)(take(in, 2) % 1024)); /* 8 B .. 8 KiB */
    uint64_t tail = take(in, 1) & 0x80 ? take(in, 8) & ~(uint64_t)7 : 8 * take(in, 2);
    uint64_t head = take(in, 1) & 0x80 ? take(in, 8) : tail + take(in, 2);
    size_t arena_bytes = (size_t)take(in, 3) * 64;
    unsigned char *ring = exact_copy(in, ring_size);
    for (int i = 0; i < 64; i++) {
        pp__dec_rec_t d;
        int r = pp__dec_res_rec(ring, ring_size, tail, head, &d);
        CHECK(r == 1 || r == 0 || r == -EPROTO);
        CHECK(d.skip % 8 == 0);
        if (r <= 0) {
            if (r == 0)
                CHECK(tail + d.skip == head);
            break;
        }
        uint64_t t = tail + d.skip;
        const pp__res_hdr_t *h = &d.h;
        CHECK(h->kind == PP__REC_RES && h->msg_len <= PP__MSG_MAX);
        CHECK(d.off == t % ring_size && d.body == d.off + sizeof *h);
        CHECK(h->rec_len % 8 == 0 && h->rec_len >= sizeof *h + h->msg_len);
        CHECK(h->rec_len <= ring_size - d.off && h->rec_len <= head - t);
        CHECK(!((h->flags & PP__F_ARENA) && (h->flags & PP__F_MEMFD)));
        CHECK(h->rec_len == pp__res_rec_len(h->flags, h->msg_len, h->data_len));
        check_body(&d, ring, arena_bytes);
        tail = t + h->rec_len; /* consumed, as the parent does */
    }
    free(ring);
}

/* ---- 1: encode, then decode ------------------------------------------ */

static void fuzz_roundtrip(in_t *in) {
    size_t ring_size = 8 * (16 + (size_t)(take(in, 2) % 2048)); /* 128 B .. 16 KiB */
    uint64_t head = 8 * take(in, 3);
    pp__res_hdr_t h = {.seq = take(in, 8), .status = (int32_t)take(in, 4), .run_ns = take(in, 8)};
    unsigned how = (unsigned)take(in, 1) % 3;
    uint64_t arena_off = 0;
    if (how == 1) {
        h.flags = PP__F_ARENA;
        arena_off = PP__ARENA_PAGE * take(in, 2);
        h.data_len = 1 + take(in, 3);
    } else if (how == 2) {
        h.flags = PP__F_MEMFD;
        h.data_len = take(in, 8);
    }
    h.msg_len = (uint32_t)(take(in, 2) % (PP__MSG_MAX + 1));
    if (h.msg_len)
        h.flags |= PP__F_MSG;
    if (sizeof h + PP__ALIGN8((size_t)h.msg_len) + 8 > ring_size)
        return; /* it would never fit */
    size_t room = ring_size - sizeof h - PP__ALIGN8((size_t)h.msg_len) - 8;
    if (how == 0)
        h.data_len = take(in, 2) % (room + 1);
    unsigned char *msg = exact_copy(in, h.msg_len);
    unsigned char *data = exact_copy(in, how == 0 ? (size_t)h.data_len : 0);
    unsigned char *ring = calloc(1, ring_size);
    if (!ring)
        abort();

    uint64_t rec_len = pp__res_rec_len(h.flags, h.msg_len, h.data_len);
    CHECK(rec_len <= ring_size);
    size_t need = pp__res_rec_need(ring_size, head, rec_len);
    CHECK(need >= rec_len && (need == rec_len || need < 2 * rec_len));
    if (need > ring_size)
        goto out; /* no room even in an empty ring (the real ring is large enough) */
    pp__res_hdr_t enc = h;
    uint64_t end = pp__enc_res_rec(ring, ring_size, head, &enc, msg,
                                   how == 1 ? (const void *)&arena_off : data);
    CHECK(end == head + need && enc.rec_len == rec_len);

    pp__dec_rec_t d;
    CHECK(pp__dec_res_rec(ring, ring_size, head, end, &d) == 1);
    CHECK(head + d.skip + d.h.rec_len == end);
    CHECK(d.h.kind == PP__REC_RES && d.h.flags == h.flags && d.h.seq == h.seq &&
          d.h.status == h.status && d.h.msg_len == h.msg_len && d.h.data_len == h.data_len &&
          d.h.run_ns == h.run_ns && d.h.rec_len == rec_len);
    CHECK(memcmp(ring + d.body, msg, h.msg_len) == 0);
    pp__dec_body_t b;
    size_t arena_bytes = (size_t)arena_off + (size_t)h.data_len + PP__ARENA_PAGE;
    CHECK(pp__dec_res_body(&d.h, ring + d.body, arena_bytes, &b) == 0);
    CHECK(b.where == (how == 0 ? PP__DEC_INLINE : how == 1 ? PP__DEC_ARENA : PP__DEC_MEMFD));
    if (how == 0)
        CHECK(memcmp(ring + d.body + b.data_off, data, (size_t)h.data_len) == 0);
    if (how == 1)
        CHECK(b.arena_off == arena_off);
    pp__dec_rec_t after;
    CHECK(pp__dec_res_rec(ring, ring_size, end, end, &after) == 0 && after.skip == 0);
out:
    free(ring);
    free(data);
    free(msg);
}

/* ---- 2: memfd results ------------------------------------------------- */

static void fuzz_memfd(in_t *in) {
    uint64_t claimed = take(in, 8);
    int64_t real = (int64_t)take(in, 8);
    if (take(in, 1) & 1)
        real = (int64_t)claimed; /* often the sizes agree: then the seals decide */
    int seals = (int)take(in, 4);
    int r = pp__dec_memfd(claimed, real, seals);
    CHECK(r == 0 || r == -EPROTO);
    if (r == 0)
        CHECK(real >= 0 && (uint64_t)real == claimed && seals >= 0 && (seals & F_SEAL_SHRINK) &&
              (seals & F_SEAL_WRITE));
    ssize_t got = (ssize_t)(int8_t)take(in, 1);
    int nfds = (int)(take(in, 1) % 3);
    bool lost = take(in, 1) & 1;
    r = pp__dec_fd_recv(got, nfds, lost);
    CHECK(r == 0 || r == -EPROTO || r == -EMFILE);
    if (r == 0)
        CHECK(got > 0 && nfds == 1);
    if (r == -EMFILE)
        CHECK(got > 0 && nfds == 0 && lost);
}

/* ---- 3: per-item results ---------------------------------------------- */

static void walk_items(const unsigned char *p, size_t len, size_t n) {
    size_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        pp__dec_item_t it;
        int r = pp__dec_item(p, len, pos, &it);
        CHECK(r == 0 || r == -EPROTO);
        if (r < 0)
            return;
        CHECK(it.ih.msg_len <= PP__MSG_MAX);
        CHECK(it.body == pos + sizeof it.ih && it.body <= len);
        CHECK(it.body_len == (it.ih.status ? it.ih.msg_len : it.ih.data_len));
        CHECK(it.body_len <= len - it.body);
        CHECK(it.next > pos && it.next <= len && (it.next - pos) % 8 == 0);
        touch(p + it.body, it.body_len);
        pos = it.next;
    }
}

static void fuzz_items(in_t *in) {
    size_t n = (size_t)take(in, 1);
    if (take(in, 1) & 1) { /* arbitrary bytes */
        size_t len = (size_t)take(in, 2) % 4096;
        unsigned char *p = exact_copy(in, len);
        walk_items(p, len, n);
        free(p);
        return;
    }
    /* a list as the worker writes it (run_chunk): header, message or data, padding */
    n %= 32;
    unsigned char *p = calloc(1, 32 * (16 + 1024 + 8));
    int32_t st[32];
    size_t blen[32], off[32], len = 0;
    if (!p)
        abort();
    for (size_t i = 0; i < n; i++) {
        pp__item_hdr_t ih = {.status = (take(in, 1) & 3) == 0 ? -(int32_t)take(in, 1) : 0};
        size_t body = (size_t)take(in, 2) % (PP__MSG_MAX + 1);
        if (ih.status)
            ih.msg_len = (uint32_t)body;
        else
            ih.data_len = body;
        memcpy(p + len, &ih, sizeof ih);
        for (size_t k = 0; k < body; k++)
            p[len + sizeof ih + k] = (unsigned char)(i + k);
        st[i] = ih.status;
        blen[i] = body;
        off[i] = len + sizeof ih;
        len += sizeof ih + PP__ALIGN8(body);
    }
    size_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        pp__dec_item_t it;
        CHECK(pp__dec_item(p, len, pos, &it) == 0);
        CHECK(it.ih.status == st[i] && it.body == off[i] && it.body_len == blen[i]);
        pos = it.next;
    }
    CHECK(pos == len);
    walk_items(p, len, n);
    free(p);
}

/* ---- 4: failed-item lists --------------------------------------------- */

static void walk_fails(const unsigned char *p, size_t len, uint64_t n, size_t result_size,
                       bool packed) {
    size_t pos;
    int r = pp__dec_fixed_start(len, n, result_size, packed, &pos);
    CHECK(r == 0 || r == -EPROTO);
    if (r < 0) {
        CHECK(packed && result_size && (n > SIZE_MAX / result_size || len < n * result_size));
        return;
    }
    CHECK(pos <= len && (!packed || pos == n * result_size) && (packed || pos == 0));
    uint64_t min_k = 0;
    for (;;) {
        pp__dec_fail_t e;
        r = pp__dec_fail(p, len, pos, n, min_k, &e);
        CHECK(r == 1 || r == 0 || r == -EPROTO);
        if (r == 0)
            CHECK(pos == len);
        if (r <= 0)
            return;
        CHECK(e.k >= min_k && e.k < n && e.ih.msg_len <= PP__MSG_MAX);
        CHECK(e.msg == pos + 24 && e.msg <= len && e.ih.msg_len <= len - e.msg);
        CHECK(e.next > pos && e.next <= len && (e.next - pos) % 8 == 0);
        touch(p + e.msg, e.ih.msg_len);
        min_k = e.k + 1;
        pos = e.next;
    }
}

static void fuzz_fails(in_t *in) {
    uint64_t n = take(in, 1) & 0x80 ? take(in, 8) : take(in, 1);
    size_t result_size = (size_t)(take(in, 1) & 0x80 ? take(in, 8) : take(in, 1));
    bool packed = take(in, 1) & 1;
    if (take(in, 1) & 1) {
        size_t len = (size_t)take(in, 2) % 8192;
        unsigned char *p = exact_copy(in, len);
        walk_fails(p, len, n, result_size, packed);
        free(p);
        return;
    }
    /* a list as the worker writes it (run_chunk_fixed): packed results, then
     * per failure u64 index, header, message padded to 8 */
    n %= 64;
    result_size %= 64;
    size_t head = packed ? (size_t)n * result_size : 0;
    unsigned char *p = calloc(1, head + 64 * (24 + 64));
    uint64_t ks[64];
    size_t nk = 0, len = head;
    if (!p)
        abort();
    for (uint64_t k = 0; k < n; k++) {
        if (!(take(in, 1) & 1))
            continue;
        pp__item_hdr_t ih = {.status = (int32_t)(take(in, 1) | 1)};
        ih.msg_len = (uint32_t)(take(in, 1) % 64);
        memcpy(p + len, &k, 8);
        memcpy(p + len + 8, &ih, sizeof ih);
        memset(p + len + 24, 'm', ih.msg_len);
        len += 24 + PP__ALIGN8((size_t)ih.msg_len);
        ks[nk++] = k;
    }
    size_t pos;
    CHECK(pp__dec_fixed_start(len, n, result_size, packed, &pos) == 0 && pos == head);
    uint64_t min_k = 0;
    for (size_t i = 0; i < nk; i++) {
        pp__dec_fail_t e;
        CHECK(pp__dec_fail(p, len, pos, n, min_k, &e) == 1 && e.k == ks[i]);
        min_k = e.k + 1;
        pos = e.next;
    }
    pp__dec_fail_t e;
    CHECK(pp__dec_fail(p, len, pos, n, min_k, &e) == 0);
    walk_fails(p, len, n, result_size, packed);
    free(p);
}

/* ---- 5: the control block's counters ---------------------------------- */

static void fuzz_ctrl(in_t *in) {
    uint64_t done = take(in, 8), next = take(in, 8), raw = take(in, 8);
    if (done > next) {
        uint64_t t = done;
        done = next;
        next = t;
    }
    bool broken = take(in, 1) & 1;
    uint64_t s = pp__dec_started(raw, done, next, broken);
    CHECK(s >= done && s <= next);
    if (broken && done < next)
        CHECK(s == done + 1);
    else if (raw >= done && raw <= next)
        CHECK(s == raw);

    uint64_t idx = take(in, 8), fails_in = take(in, 8),
             n = take(in, 1) & 1 ? take(in, 8) : take(in, 1);
    uint64_t fails;
    long k = pp__dec_lost_item(idx, fails_in, n, &fails);
    if (n == 0)
        CHECK(k == -1 && fails == 0);
    else
        CHECK(k >= 0 && (uint64_t)k < n && fails <= (uint64_t)k && fails <= fails_in);

    uint64_t claimed = take(in, 8), now = take(in, 8), window = take(in, 8);
    uint64_t t = pp__dec_start_ns(claimed, now, window);
    CHECK(t <= now && now - t <= window);

    uint64_t off = take(in, 8), pages = take(in, 8);
    size_t npages = (size_t)take(in, 4);
    size_t p, np;
    int r = pp__dec_arena_mark(off, pages, npages, &p, &np);
    CHECK(r == 1 || r == 0 || r == -EPROTO);
    if (r == 1)
        CHECK(np > 0 && p < npages && np <= npages - p);
    else
        CHECK(p == 0 && np == 0 && (r == 0) == (pages == 0));

    uint64_t len = take(in, 8);
    size_t bytes = (size_t)take(in, 6);
    r = pp__dec_arena_run(off, len, bytes);
    CHECK(r == 0 || r == -EPROTO);
    if (r == 0)
        CHECK(off % PP__ARENA_PAGE == 0 && len > 0 && off < bytes && len <= bytes - off);
}

/* ---- 6: the zygote's reports ------------------------------------------ */

static void fuzz_zmsg(in_t *in) {
    int nslots = (int)(take(in, 1) % 9) - 1; /* -1 .. 7 */
    size_t len = sizeof(pp__zmsg_t) + (take(in, 1) & 1 ? 0 : (size_t)take(in, 1) % 16) -
                 (take(in, 1) & 1 ? 0 : 8);
    unsigned char *buf = exact_copy(in, len);
    pp__zmsg_t m;
    int t = pp__dec_zmsg(buf, len, nslots, &m);
    if (t < 0) {
        CHECK(t == -EPROTO);
    } else {
        CHECK(len == sizeof m);
        CHECK(t == (int)m.type);
        if (t == PP__Z_SPAWNED)
            CHECK(m.slot >= 0 && m.slot < nslots && m.pid > 0);
        else if (t == PP__Z_FAILED)
            CHECK(m.slot >= 0 && m.slot < nslots && m.err < 0 && m.err > -4096);
        else
            CHECK(t == PP__Z_DIED && m.pid > 0);
    }
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1)
        return 0;
    in_t in = {data + 1, size - 1};
    switch (data[0] % 8) {
    case 0: fuzz_ring(&in); break;
    case 1: fuzz_roundtrip(&in); break;
    case 2: fuzz_memfd(&in); break;
    case 3: fuzz_items(&in); break;
    case 4: fuzz_fails(&in); break;
    case 5: fuzz_ctrl(&in); break;
    case 6: fuzz_zmsg(&in); break;
    default: {
        void (*all[])(in_t *) = {fuzz_ring,  fuzz_roundtrip, fuzz_memfd, fuzz_items,
                                 fuzz_fails, fuzz_ctrl,      fuzz_zmsg};
        for (size_t i = 0; i < sizeof all / sizeof *all; i++) {
            in_t again = in;
            all[i](&again);
        }
        break;
    }
    }
    return 0;
}
