/*
 * comm.c - the MPI backend's start-up, shutdown and message plumbing.
 *
 * DESIGN: the library owns MPI. Under PROCPOOL_BACKEND=mpi, in a process
 * that mpirun (or srun) started, the core's constructor (src/backend.c)
 * loads this library before main() and calls pp__mpi_start: it calls
 * MPI_Init_thread (MPI_THREAD_SERIALIZED: from then on exactly one
 * thread per process calls MPI at a time) and then either returns to let
 * rank 0 run main(), or turns the process into a node agent (agent.c) that
 * never returns. Rank 0 calls MPI only from its hub thread (remote.c) and,
 * after that thread has stopped, from the atexit handler that tells the
 * agents to shut down and calls MPI_Finalize. A process forked by rank 0 or
 * by an agent (a worker, a user's child) never calls MPI: the atexit
 * handler checks the pid.
 *
 * MPI offers no file descriptor to sleep on, so a communication thread
 * polls: while messages flow it loops; when a round finds nothing it spins
 * 50 microseconds, then sleeps on a futex word ("kick") with a timeout
 * that doubles up to a bound while a message may arrive (200 us while work
 * is out or was lately, 2 ms on an agent idle for 100 ms), and with no
 * timeout when none can (rank 0 with no work out). Producers (a thread
 * placing tasks, a callback finishing one) bump the word and wake the
 * thread only when it sleeps. The word is read before each round looks for
 * work, so a kick that lands after the look makes the sleep return at once.
 */
#include "../tuning.h"
#include "mpi_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

pp__comm_t pp__mpi = {.comm = MPI_COMM_NULL};
bool pp__mpi_on;

/* MPI by default only in the process that owns MPI: rank 0 itself, not an
 * agent, and not a worker or other child forked from either (a task that
 * makes a pool of its own gets a local one). */
bool pp__mpi_is_default(void) {
    return !pp__mpi_on || (pp__mpi.rank == 0 && getpid() == pp__mpi.pid);
}

/* ---------------------------------------------------------------- */
/* message buffers                                                   */
/* ---------------------------------------------------------------- */

unsigned char *pp__wbuf_grow(pp__wbuf_t *b, uint32_t type, uint32_t pool, size_t n) {
    size_t need = (b->len ? b->len : sizeof(pp__mhdr_t)) + n;
    if (need > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < need)
            cap *= 2;
        unsigned char *p = realloc(b->p, cap);
        if (!p)
            return NULL;
        b->p = p;
        b->cap = cap;
    }
    if (!b->len) {
        pp__mhdr_t h = {.type = type, .pool = pool, .count = 0};
        memcpy(b->p, &h, sizeof h);
        b->len = sizeof h;
        b->count = 0;
    }
    return b->p + b->len;
}

bool pp__wbuf_record(pp__wbuf_t *b, uint32_t type, uint32_t pool, const void *head, size_t head_len,
                     const void *a, size_t a_len, const void *c, size_t c_len) {
    size_t n = PP__ALIGN8(head_len) + PP__ALIGN8(a_len) + PP__ALIGN8(c_len);
    unsigned char *p = pp__wbuf_grow(b, type, pool, n);
    if (!p)
        return false;
    memset(p, 0, n);
    memcpy(p, head, head_len);
    p += PP__ALIGN8(head_len);
    if (a_len)
        memcpy(p, a, a_len);
    p += PP__ALIGN8(a_len);
    if (c_len)
        memcpy(p, c, c_len);
    b->len += n;
    b->count++;
    return true;
}

void *pp__wbuf_take(pp__wbuf_t *b, size_t *len) {
    pp__mhdr_t h;
    memcpy(&h, b->p, sizeof h);
    h.count = b->count;
    memcpy(b->p, &h, sizeof h);
    void *p = b->p;
    *len = b->len;
    memset(b, 0, sizeof *b);
    return p;
}

void pp__wbuf_free(pp__wbuf_t *b) {
    free(b->p);
    memset(b, 0, sizeof *b);
}

/* ---------------------------------------------------------------- */
/* sending and receiving (the communication thread only)             */
/* ---------------------------------------------------------------- */

int pp__comm_send(int dest, void *buf, size_t len) {
    pp__comm_t *c = &pp__mpi;
    if (len > PP__MPI_MAX_MSG)
        return -EOVERFLOW;
    if (c->nsends == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 16;
        struct pp__send *s = realloc(c->sends, cap * sizeof *s);
        if (!s)
            return -ENOMEM;
        c->sends = s;
        c->cap = cap;
    }
    struct pp__send *s = &c->sends[c->nsends];
    if (MPI_Isend(buf, (int)len, MPI_BYTE, dest, PP__MPI_TAG, c->comm, &s->req) != MPI_SUCCESS)
        return -EIO;
    s->buf = buf;
    c->nsends++;
    return 0;
}

void pp__comm_send_now(int dest, const void *buf, size_t len) {
    MPI_Send(buf, (int)len, MPI_BYTE, dest, PP__MPI_TAG, pp__mpi.comm);
}

int pp__comm_test_sends(void) {
    pp__comm_t *c = &pp__mpi;
    int done = 0;
    for (size_t i = 0; i < c->nsends;) {
        int flag = 0;
        MPI_Test(&c->sends[i].req, &flag, MPI_STATUS_IGNORE);
        if (!flag) {
            i++;
            continue;
        }
        free(c->sends[i].buf);
        c->sends[i] = c->sends[--c->nsends];
        done++;
    }
    return done;
}

int pp__comm_recv(void **buf, size_t *len, int *src, pp__mhdr_t *dropped) {
    int flag = 0, n = 0;
    MPI_Status st;
    MPI_Iprobe(MPI_ANY_SOURCE, PP__MPI_TAG, pp__mpi.comm, &flag, &st);
    if (!flag)
        return 0;
    MPI_Get_count(&st, MPI_BYTE, &n);
    void *p = malloc(n > 0 ? (size_t)n : 1);
    if (!p) {
        /* no memory now: it stays queued, and is received on a later
         * round; after PP__RECV_NOMEM_NS it is received into its header
         * alone (MPI truncates it, which must not abort the job here) and
         * the caller fails what it would have settled */
        uint64_t now = pp__now_ns();
        if (!pp__mpi.nomem_since)
            pp__mpi.nomem_since = now;
        if (now - pp__mpi.nomem_since < PP__RECV_NOMEM_NS)
            return 0;
        pp__mpi.nomem_since = 0;
        memset(dropped, 0, sizeof *dropped);
        MPI_Comm_set_errhandler(pp__mpi.comm, MPI_ERRORS_RETURN);
        MPI_Recv(dropped, (int)sizeof *dropped, MPI_BYTE, st.MPI_SOURCE, PP__MPI_TAG, pp__mpi.comm,
                 MPI_STATUS_IGNORE);
        MPI_Comm_set_errhandler(pp__mpi.comm, MPI_ERRORS_ARE_FATAL);
        *buf = NULL;
        *len = 0;
        *src = st.MPI_SOURCE;
        return -ENOMEM;
    }
    pp__mpi.nomem_since = 0;
    MPI_Recv(p, n, MPI_BYTE, st.MPI_SOURCE, PP__MPI_TAG, pp__mpi.comm, MPI_STATUS_IGNORE);
    *buf = p;
    *len = (size_t)n;
    *src = st.MPI_SOURCE;
    return 1;
}

/* ---------------------------------------------------------------- */
/* waiting                                                           */
/* ---------------------------------------------------------------- */

void pp__comm_kick(void) {
    atomic_fetch_add_explicit(&pp__mpi.kick, 1, memory_order_seq_cst);
    if (atomic_load_explicit(&pp__mpi.sleeping, memory_order_seq_cst))
        pp__futex_wake(&pp__mpi.kick, 1, false);
}

void pp__comm_busy(void) {
    pp__mpi.idle_since = 0;
    pp__mpi.backoff_ns = 0;
}

/* seen: the kick word as read before this round looked for work. */
static void comm_sleep(uint32_t seen, int64_t timeout_ns) {
    atomic_store_explicit(&pp__mpi.sleeping, 1, memory_order_seq_cst);
    pp__futex_wait(&pp__mpi.kick, seen, timeout_ns, false);
    atomic_store_explicit(&pp__mpi.sleeping, 0, memory_order_relaxed);
}

static _Thread_local uint32_t round_seen;

void pp__comm_idle(int mode) {
    pp__comm_t *c = &pp__mpi;
    uint64_t now = pp__now_ns();
    if (!c->idle_since)
        c->idle_since = now;
    if (now - c->idle_since < PP__SPIN_NS) {
        for (int i = 0; i < 64; i++)
            pp__cpu_relax();
    } else if (mode == PP__IDLE_DEEP) {
        comm_sleep(round_seen, -1);
        pp__comm_busy();
    } else {
        uint64_t max = mode == PP__IDLE_SHORT || now - c->idle_since < PP__LATELY_NS
                           ? PP__BACKOFF_MAX_NS
                           : PP__BACKOFF_LONG_NS;
        c->backoff_ns = c->backoff_ns ? c->backoff_ns * 2 : PP__BACKOFF_MIN_NS;
        if (c->backoff_ns > max)
            c->backoff_ns = max;
        comm_sleep(round_seen, (int64_t)c->backoff_ns);
    }
    round_seen = atomic_load_explicit(&c->kick, memory_order_seq_cst);
}

/* ---------------------------------------------------------------- */
/* start-up and shutdown                                             */
/* ---------------------------------------------------------------- */

static void finalize_rank0(void) {
    if (!pp__mpi_on || getpid() != pp__mpi.pid)
        return; /* a forked child: MPI belongs to its parent */
    pp__hub_stop();
    pp__mhdr_t h = {.type = PP__M_SHUTDOWN};
    for (int r = 1; r < pp__mpi.size; r++)
        pp__comm_send_now(r, &h, sizeof h);
    MPI_Comm_free(&pp__mpi.comm);
    MPI_Finalize();
    pp__mpi_on = false;
}

uint64_t pp__mpi_boot_id(void) {
    static _Atomic uint64_t cached; /* once per process; the file does not change */
    uint64_t id = atomic_load_explicit(&cached, memory_order_relaxed);
    if (id)
        return id;
    char buf[64] = {0};
    int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
    if (fd >= 0)
        close(fd);
    if (n < 16)
        return 0;
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (ssize_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)buf[i]) * 1099511628211ull;
    id = h ? h : 1;
    atomic_store_explicit(&cached, id, memory_order_relaxed);
    return id;
}

/* The core's loader (backend.c) calls this before main(), once it has
 * checked PROCPOOL_BACKEND=mpi and a launcher. */
int pp__mpi_start(void) {
    int provided = 0;
    if (MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, &provided) != MPI_SUCCESS)
        return -1;
    pp__mpi_on = true;
    pp__mpi.pid = getpid();
    MPI_Comm_dup(MPI_COMM_WORLD, &pp__mpi.comm);
    MPI_Comm_rank(pp__mpi.comm, &pp__mpi.rank);
    MPI_Comm_size(pp__mpi.comm, &pp__mpi.size);
    if (pp__mpi.rank != 0)
        pp__agent_main();
    atexit(finalize_rank0);
    return 0;
}
