/* test_decode.c - the parent's decoders of what a worker or the zygote
 * writes (src/decode.c), called directly: result records in the ring and
 * the worker's encoder, record bodies, memfd checks, a chunk's per-item
 * results and failed-item lists, control-block counters, zygote reports.
 * Each refusal must be -EPROTO, and what is accepted must lie inside the
 * bounds given. Includes the cases that earlier code got wrong: a failed-
 * item entry with a bad index as the very last bytes of a chunk's results,
 * a zygote report naming pid 0 or less, a worker claiming more failed items
 * than it had run. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <string.h>

#include "decode.h"

#define RING 1024u

static unsigned char ring[RING];

/* One record through the worker's encoder at head; returns the new head. */
static uint64_t put(uint64_t head, uint32_t flags, int32_t status, const char *msg,
                    const void *body, uint64_t data_len) {
    pp__res_hdr_t h = {.flags = flags,
                       .seq = 7,
                       .status = status,
                       .data_len = data_len,
                       .msg_len = msg ? (uint32_t)strlen(msg) : 0,
                       .run_ns = 99};
    return pp__enc_res_rec(ring, RING, head, &h, msg, body);
}

static void test_ring_roundtrip(void **state) {
    (void)state;
    memset(ring, 0xee, sizeof ring);
    uint64_t head = put(0, 0, 0, NULL, "hello", 5);
    head = put(head, PP__F_MSG, -3, "it failed", NULL, 0);
    pp__dec_rec_t d;
    assert_int_equal(pp__dec_res_rec(ring, RING, 0, head, &d), 1);
    assert_int_equal(d.skip, 0);
    assert_int_equal(d.h.seq, 7);
    assert_int_equal(d.h.data_len, 5);
    assert_int_equal(d.h.run_ns, 99);
    pp__dec_body_t b;
    assert_int_equal(pp__dec_res_body(&d.h, ring + d.body, 0, &b), 0);
    assert_int_equal(b.where, PP__DEC_INLINE);
    assert_memory_equal(ring + d.body + b.data_off, "hello", 5);
    uint64_t tail = d.h.rec_len;
    assert_int_equal(pp__dec_res_rec(ring, RING, tail, head, &d), 1);
    assert_int_equal(d.h.status, -3);
    assert_int_equal(d.h.msg_len, 9);
    assert_memory_equal(ring + d.body, "it failed", 9);
    tail += d.h.rec_len;
    assert_int_equal(pp__dec_res_rec(ring, RING, tail, head, &d), 0);
}

static void test_ring_pad(void **state) {
    (void)state;
    char data[600];
    memset(data, 'x', sizeof data);
    /* 800 + a 648-byte record straddles the end: a PAD, then the record at 0 */
    uint64_t head = put(800, 0, 0, NULL, data, sizeof data);
    pp__dec_rec_t d;
    assert_int_equal(pp__dec_res_rec(ring, RING, 800, head, &d), 1);
    assert_int_equal(d.skip, RING - 800);
    assert_int_equal(d.off, 0);
    /* the PAD alone published: none yet, but the PAD is consumed */
    assert_int_equal(pp__dec_res_rec(ring, RING, 800, RING, &d), 0);
    assert_int_equal(d.skip, RING - 800);
    /* a PAD that claims more than was published */
    assert_int_equal(pp__dec_res_rec(ring, RING, 800, 808, &d), -EPROTO);
}

static void test_ring_refusals(void **state) {
    (void)state;
    pp__dec_rec_t d;
    uint64_t head = put(0, 0, 0, NULL, "abc", 3);
    assert_int_equal(pp__dec_res_rec(ring, RING, 0, head + 4, &d), -EPROTO); /* unaligned head */
    assert_int_equal(pp__dec_res_rec(ring, RING, 0, RING + 8, &d), -EPROTO); /* past the ring */
    assert_int_equal(pp__dec_res_rec(ring, RING, 0, head - 8, &d), -EPROTO); /* record past head */
    assert_int_equal(pp__dec_res_rec(ring, RING, 16, 8, &d), -EPROTO);       /* head behind tail */
    assert_int_equal(pp__dec_res_rec(ring, RING, 4, head, &d), -EINVAL); /* the parent's error */

    pp__res_hdr_t h;
    memcpy(&h, ring, sizeof h);
    pp__res_hdr_t bad = h;
    bad.rec_len += 8;
    memcpy(ring, &bad, sizeof bad);
    assert_int_equal(pp__dec_res_rec(ring, RING, 0, RING, &d), -EPROTO);
    bad = h;
    bad.msg_len = PP__MSG_MAX + 1;
    memcpy(ring, &bad, sizeof bad);
    assert_int_equal(pp__dec_res_rec(ring, RING, 0, RING, &d), -EPROTO);
    bad = h;
    bad.flags = PP__F_MEMFD | PP__F_ARENA;
    memcpy(ring, &bad, sizeof bad);
    assert_int_equal(pp__dec_res_rec(ring, RING, 0, RING, &d), -EPROTO);
    bad = h;
    bad.flags = PP__F_CHUNK;
    memcpy(ring, &bad, sizeof bad);
    assert_int_equal(pp__dec_res_rec(ring, RING, 0, RING, &d), -EPROTO);
    bad = h;
    bad.kind = PP__REC_TASK;
    memcpy(ring, &bad, sizeof bad);
    assert_int_equal(pp__dec_res_rec(ring, RING, 0, RING, &d), -EPROTO);
}

static void test_arena_body(void **state) {
    (void)state;
    uint64_t off = 2 * PP__ARENA_PAGE;
    uint64_t head = put(0, PP__F_ARENA, 0, NULL, &off, 5000);
    pp__dec_rec_t d;
    pp__dec_body_t b;
    assert_int_equal(pp__dec_res_rec(ring, RING, 0, head, &d), 1);
    assert_int_equal(pp__dec_res_body(&d.h, ring + d.body, 4 * PP__ARENA_PAGE, &b), 0);
    assert_int_equal(b.where, PP__DEC_ARENA);
    assert_int_equal(b.arena_off, off);
    /* the run would end past the arena, or there is no arena */
    assert_int_equal(pp__dec_res_body(&d.h, ring + d.body, 3 * PP__ARENA_PAGE, &b), -EPROTO);
    assert_int_equal(pp__dec_res_body(&d.h, ring + d.body, 0, &b), -EPROTO);
    assert_int_equal(pp__dec_arena_run(100, 5, 1 << 20), -EPROTO);  /* not on a page */
    assert_int_equal(pp__dec_arena_run(4096, 0, 1 << 20), -EPROTO); /* empty */
    assert_int_equal(pp__dec_arena_run(0, 1 << 20, 1 << 20), 0);

    size_t p, n;
    assert_int_equal(pp__dec_arena_mark(3, 2, 10, &p, &n), 1);
    assert_int_equal(p, 3);
    assert_int_equal(n, 2);
    assert_int_equal(pp__dec_arena_mark(3, 0, 10, &p, &n), 0);
    assert_int_equal(pp__dec_arena_mark(9, 2, 10, &p, &n), -EPROTO);
    assert_int_equal(pp__dec_arena_mark(UINT64_MAX, 2, 10, &p, &n), -EPROTO);
    assert_int_equal(n, 0);
}

static void test_memfd(void **state) {
    (void)state;
    int sealed = F_SEAL_SHRINK | F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SEAL;
    assert_int_equal(pp__dec_memfd(1 << 20, 1 << 20, sealed), 0);
    assert_int_equal(pp__dec_memfd(1 << 20, (1 << 20) + 1, sealed), -EPROTO);
    assert_int_equal(pp__dec_memfd(1 << 20, -1, sealed), -EPROTO);
    assert_int_equal(pp__dec_memfd(1 << 20, 1 << 20, F_SEAL_SHRINK), -EPROTO);
    assert_int_equal(pp__dec_memfd(1 << 20, 1 << 20, -1), -EPROTO);
    assert_int_equal(pp__dec_fd_recv(1, 1, false), 0);
    assert_int_equal(pp__dec_fd_recv(1, 0, true), -EMFILE);
    assert_int_equal(pp__dec_fd_recv(1, 0, false), -EPROTO);
    assert_int_equal(pp__dec_fd_recv(0, 0, false), -EPROTO);
    assert_int_equal(pp__dec_fd_recv(-EAGAIN, 0, false), -EPROTO);
}

static void test_items(void **state) {
    (void)state;
    unsigned char b[64] = {0};
    pp__item_hdr_t ok = {.status = 0, .data_len = 3}, bad = {.status = -1, .msg_len = 4};
    memcpy(b, &ok, sizeof ok);
    memcpy(b + 16, "abc", 3);
    memcpy(b + 24, &bad, sizeof bad);
    memcpy(b + 40, "oops", 4);
    pp__dec_item_t it;
    assert_int_equal(pp__dec_item(b, 48, 0, &it), 0);
    assert_int_equal(it.body, 16);
    assert_int_equal(it.body_len, 3);
    assert_int_equal(it.next, 24);
    assert_int_equal(pp__dec_item(b, 48, 24, &it), 0);
    assert_int_equal(it.ih.status, -1);
    assert_int_equal(it.body_len, 4);
    assert_int_equal(it.next, 48);
    assert_int_equal(pp__dec_item(b, 48, 48, &it), -EPROTO); /* nothing left */
    assert_int_equal(pp__dec_item(b, 44, 24, &it), -EPROTO); /* padding cut off */
    ok.data_len = UINT64_MAX;
    memcpy(b, &ok, sizeof ok);
    assert_int_equal(pp__dec_item(b, 48, 0, &it), -EPROTO);
}

/* A failed-item list whose last entry names an index out of range (or one
 * already seen) used to be skipped when it ended exactly at the end of the
 * results, and the chunk was taken as good. */
static void test_fail_list_bad_last_entry(void **state) {
    (void)state;
    unsigned char b[64] = {0};
    uint64_t k = 1;
    pp__item_hdr_t ih = {.status = -1, .msg_len = 2};
    memcpy(b, &k, 8);
    memcpy(b + 8, &ih, sizeof ih);
    memcpy(b + 24, "no", 2);
    pp__dec_fail_t e;
    size_t pos;
    assert_int_equal(pp__dec_fixed_start(32, 4, 0, false, &pos), 0);
    assert_int_equal(pp__dec_fail(b, 32, 0, 4, 0, &e), 1);
    assert_int_equal(e.k, 1);
    assert_int_equal(e.msg, 24);
    assert_int_equal(e.next, 32);
    assert_int_equal(pp__dec_fail(b, 32, 32, 4, 2, &e), 0);

    /* the same entry again, with no message: exactly 24 bytes, at the end */
    ih.msg_len = 0;
    memcpy(b + 32, &k, 8);
    memcpy(b + 40, &ih, sizeof ih);
    assert_int_equal(pp__dec_fail(b, 56, 32, 4, 2, &e), -EPROTO); /* k already seen */
    k = 4;
    memcpy(b + 32, &k, 8);
    assert_int_equal(pp__dec_fail(b, 56, 32, 4, 2, &e), -EPROTO); /* k >= n */
    assert_int_equal(pp__dec_fail(b, 50, 32, 4, 2, &e), -EPROTO); /* cut short */

    /* packed results that the record is too short for */
    assert_int_equal(pp__dec_fixed_start(15, 4, 4, true, &pos), -EPROTO);
    assert_int_equal(pp__dec_fixed_start(16, 4, 4, true, &pos), 0);
    assert_int_equal(pos, 16);
    assert_int_equal(pp__dec_fixed_start(16, UINT64_MAX, 4, true, &pos), -EPROTO);
}

/* The item a chunk died on, and the failures before it the worker claims:
 * never more failures than items it had run before that one. */
static void test_lost_item(void **state) {
    (void)state;
    uint64_t fails;
    assert_int_equal(pp__dec_lost_item(3, 2, 10, &fails), 3);
    assert_int_equal(fails, 2);
    assert_int_equal(pp__dec_lost_item(UINT64_MAX, 1000, 10, &fails), 9);
    assert_int_equal(fails, 9);
    assert_int_equal(pp__dec_lost_item(0, 5, 10, &fails), 0);
    assert_int_equal(fails, 0);
    assert_int_equal(pp__dec_lost_item(0, 5, 0, &fails), -1);

    assert_int_equal(pp__dec_started(5, 10, 14, false), 10);
    assert_int_equal(pp__dec_started(12, 10, 14, false), 12);
    assert_int_equal(pp__dec_started(UINT64_MAX, 10, 14, false), 14);
    assert_int_equal(pp__dec_started(14, 10, 14, true), 11);
    assert_int_equal(pp__dec_started(3, 10, 10, true), 10);

    assert_int_equal(pp__dec_start_ns(90, 100, 50), 90);
    assert_int_equal(pp__dec_start_ns(20, 100, 50), 100);  /* too long ago */
    assert_int_equal(pp__dec_start_ns(200, 100, 50), 100); /* in the future */
}

/* Reports from the zygote: a DIED naming pid 0 used to match a slot still
 * waiting for its SPAWNED answer (pid 0 there) and fail it. */
static void test_zygote_reports(void **state) {
    (void)state;
    pp__zmsg_t m = {.type = PP__Z_SPAWNED, .slot = 1, .pid = 1234}, out;
    assert_int_equal(pp__dec_zmsg(&m, sizeof m, 2, &out), PP__Z_SPAWNED);
    assert_int_equal(out.pid, 1234);
    assert_int_equal(pp__dec_zmsg(&m, sizeof m - 1, 2, &out), -EPROTO);
    m.slot = 2;
    assert_int_equal(pp__dec_zmsg(&m, sizeof m, 2, &out), -EPROTO);
    m.slot = -1;
    assert_int_equal(pp__dec_zmsg(&m, sizeof m, 2, &out), -EPROTO);
    m.slot = 0;
    m.pid = 0;
    assert_int_equal(pp__dec_zmsg(&m, sizeof m, 2, &out), -EPROTO);
    m.pid = -1;
    assert_int_equal(pp__dec_zmsg(&m, sizeof m, 2, &out), -EPROTO);

    m = (pp__zmsg_t){.type = PP__Z_DIED, .pid = 0, .code = 1, .status = 3};
    assert_int_equal(pp__dec_zmsg(&m, sizeof m, 2, &out), -EPROTO);
    m.pid = 77;
    assert_int_equal(pp__dec_zmsg(&m, sizeof m, 2, &out), PP__Z_DIED);
    assert_int_equal(out.status, 3);

    m = (pp__zmsg_t){.type = PP__Z_FAILED, .slot = 0, .err = -11};
    assert_int_equal(pp__dec_zmsg(&m, sizeof m, 2, &out), PP__Z_FAILED);
    assert_int_equal(out.err, -11);
    m.err = 5; /* not a -errno */
    assert_int_equal(pp__dec_zmsg(&m, sizeof m, 2, &out), PP__Z_FAILED);
    assert_int_equal(out.err, -EAGAIN);

    m.type = PP__Z_SPAWN; /* the parent's own message, never the zygote's */
    assert_int_equal(pp__dec_zmsg(&m, sizeof m, 2, &out), -EPROTO);
    m.type = PP__Z_KILL;
    assert_int_equal(pp__dec_zmsg(&m, sizeof m, 2, &out), -EPROTO);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ring_roundtrip),
        cmocka_unit_test(test_ring_pad),
        cmocka_unit_test(test_ring_refusals),
        cmocka_unit_test(test_arena_body),
        cmocka_unit_test(test_memfd),
        cmocka_unit_test(test_items),
        cmocka_unit_test(test_fail_list_bad_last_entry),
        cmocka_unit_test(test_lost_item),
        cmocka_unit_test(test_zygote_reports),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
