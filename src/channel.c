/*
 * channel.c - the parent's side of the shared-memory transport.
 *
 * DESIGN: each worker incarnation has one channel made of two memfds:
 *   ctrl memfd  = [pp__ctrl_t control block | result ring]   (worker maps RW)
 *   task memfd  = [task ring]                                 (worker maps RO)
 * Both rings are single-producer/single-consumer byte rings of 8-aligned
 * records that never straddle the end: a record that would is preceded by a
 * PAD marker and starts again at offset 0. Producers publish with a release
 * store of the head; consumers read the head with acquire.
 *
 * Wakeups (an eventcount): a consumer that found nothing after spinning sets
 * its "sleeping" flag, re-checks, then sleeps; a producer publishes, issues a
 * full fence and wakes only if the flag is set. The parent's sleeper is the
 * supervisor (it sets parent_sleeping and polls the channel's eventfd); the
 * worker's sleeper waits on the wake_seq futex.
 *
 * Trust: the worker is not trusted. Every header the parent reads from the
 * result ring is copied out first and then checked by pp__dec_res_rec
 * (decode.c: kind, lengths, that it lies inside the published part of the
 * ring; the caller checks the sequence number); any failure is a protocol
 * error and the worker is killed. The worker cannot write the
 * task ring (its mapping comes from a read-only file description), so a
 * task it had not started can be requeued byte-for-byte intact.
 */
#include "internal.h"
#include "decode.h"

#include <errno.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

int pp__chan_create(pp__chan_t *c) {
    int sv[2] = {-1, -1};
    int err;
    memset(c, 0, sizeof *c);
    c->ctrl_fd = c->task_fd = c->task_ro_fd = c->sock = c->peer_sock = c->evfd = -1;
    c->ctrl = MAP_FAILED;
    c->task = MAP_FAILED;

    c->ctrl_map_len = PP__CTRL_SIZE + PP__RES_RING;
    if ((err = c->ctrl_fd = pp__memfd("procpool-ctrl", c->ctrl_map_len, false)) < 0)
        goto fail;
    if ((err = c->task_fd = pp__memfd("procpool-task", PP__TASK_RING, false)) < 0)
        goto fail;
    if ((err = c->task_ro_fd = pp__reopen_rdonly(c->task_fd)) < 0)
        goto fail;
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
        err = -errno;
        goto fail;
    }
    c->sock = sv[0];
    c->peer_sock = sv[1];
    if ((c->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
        err = -errno;
        goto fail;
    }
    c->ctrl = mmap(NULL, c->ctrl_map_len, PROT_READ | PROT_WRITE, MAP_SHARED, c->ctrl_fd, 0);
    if (c->ctrl == MAP_FAILED) {
        err = -errno;
        goto fail;
    }
    c->task = mmap(NULL, PP__TASK_RING, PROT_READ | PROT_WRITE, MAP_SHARED, c->task_fd, 0);
    if (c->task == MAP_FAILED) {
        err = -errno;
        goto fail;
    }
    c->res = (unsigned char *)c->ctrl + PP__CTRL_SIZE;
    return 0;
fail:
    pp__chan_destroy(c);
    return err;
}

void pp__chan_close_worker_fds(pp__chan_t *c) {
    pp__close(&c->ctrl_fd);
    pp__close(&c->task_fd);
    pp__close(&c->task_ro_fd);
    pp__close(&c->peer_sock);
}

void pp__chan_destroy(pp__chan_t *c) {
    if (c->ctrl && c->ctrl != MAP_FAILED)
        munmap(c->ctrl, c->ctrl_map_len);
    if (c->task && c->task != MAP_FAILED)
        munmap(c->task, PP__TASK_RING);
    c->ctrl = NULL;
    c->task = NULL;
    c->res = NULL;
    pp__chan_close_worker_fds(c);
    pp__close(&c->sock);
    pp__close(&c->evfd);
}

/* byref: the argument does not travel in the record (a memfd, or an
 * address in shared memory) */
static size_t task_rec_len(size_t arg_len, bool byref) {
    return PP__ALIGN8(sizeof(pp__task_hdr_t) + (byref ? 0 : arg_len));
}

size_t pp__chan_task_room(const pp__chan_t *c, size_t arg_len, bool byref) {
    size_t need = task_rec_len(arg_len, byref);
    size_t used = (size_t)(c->head - c->tail);
    size_t off = (size_t)(c->head % PP__TASK_RING);
    if (off + need > PP__TASK_RING)
        need += PP__TASK_RING - off; /* the PAD to the end */
    return used + need <= PP__TASK_RING ? need : 0;
}

uint64_t pp__chan_push_task(pp__chan_t *c, const pp__task_hdr_t *hin, const void *arg, bool byref) {
    size_t len = task_rec_len((size_t)hin->arg_len, byref);
    size_t off = (size_t)(c->head % PP__TASK_RING);
    if (off + len > PP__TASK_RING) {
        uint32_t pad = PP__REC_PAD;
        memcpy(c->task + off, &pad, sizeof pad);
        c->head += PP__TASK_RING - off;
        off = 0;
    }
    pp__task_hdr_t h = *hin;
    h.kind = PP__REC_TASK;
    h.rec_len = len;
    memcpy(c->task + off, &h, sizeof h);
    if (!byref && h.arg_len)
        memcpy(c->task + off + sizeof h, arg, (size_t)h.arg_len);
    c->head += len;
    return c->head;
}

/* Make pushed records visible; wake the worker only if it sleeps. */
void pp__chan_publish(pp__chan_t *c) {
    atomic_store_explicit(&c->ctrl->task_head, c->head, memory_order_release);
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&c->ctrl->worker_sleeping, memory_order_relaxed)) {
        atomic_fetch_add_explicit(&c->ctrl->wake_seq, 1, memory_order_release);
        pp__futex_wake(&c->ctrl->wake_seq, 1, true);
    }
}

bool pp__chan_has_result(const pp__chan_t *c) {
    return atomic_load_explicit(&c->ctrl->res_head, memory_order_relaxed) != c->res_tail;
}

/* Hand the consumed part of the result ring back to the worker (once per
 * drained batch, not per record); wake it if it waits for room. */
void pp__chan_release_results(pp__chan_t *c) {
    if (atomic_load_explicit(&c->ctrl->res_tail, memory_order_relaxed) == c->res_tail)
        return;
    atomic_store_explicit(&c->ctrl->res_tail, c->res_tail, memory_order_release);
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&c->ctrl->worker_sleeping, memory_order_relaxed)) {
        atomic_fetch_add_explicit(&c->ctrl->wake_seq, 1, memory_order_release);
        pp__futex_wake(&c->ctrl->wake_seq, 1, true);
    }
}

/* The next result record, its header copied out and validated by
 * pp__dec_res_rec (decode.c); PADs are skipped as they are found. */
int pp__chan_peek_result(pp__chan_t *c, pp__res_hdr_t *h, const unsigned char **body) {
    for (;;) {
        uint64_t head = atomic_load_explicit(&c->ctrl->res_head, memory_order_acquire);
        pp__dec_rec_t d;
        int r = pp__dec_res_rec(c->res, PP__RES_RING, c->res_tail, head, &d);
        c->res_tail += d.skip;
        if (r < 0)
            return -EPROTO;
        if (r == 0) {
            if (d.skip)
                continue; /* look again past the PAD: more may be published by now */
            return 0;
        }
        *h = d.h;
        *body = c->res + d.body;
        return 1;
    }
}

void pp__chan_consume_result(pp__chan_t *c, const pp__res_hdr_t *h) { c->res_tail += h->rec_len; }
