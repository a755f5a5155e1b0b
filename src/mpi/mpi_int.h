/*
 * mpi_int.h - the MPI backend's private declarations: the wire format
 * between rank 0 and the node agents, and the per-process communication
 * state (comm.c) that rank 0's hub (remote.c) and the agent (agent.c)
 * share.
 *
 * Every message is one MPI_BYTE buffer on a duplicate of MPI_COMM_WORLD
 * with one tag, received with MPI_ANY_TAG from a given source, so the
 * messages between two ranks arrive in the order they were sent (MPI's
 * non-overtaking rule): an END never passes the TASKS before it.
 * A message is a pp__mhdr_t followed by `count` records, each padded to 8
 * bytes. Both ends run the same binary (checked by build id when functions
 * are named), so the structs are sent as they are.
 */
#ifndef PP_MPI_INT_H
#define PP_MPI_INT_H

#include "../tuning.h"
#include "../backend.h"

#include <mpi.h>

/* The core's functions, reached through the table the core handed over
 * (entry.c): this library never calls the core by name (backend.h). */
extern const pp__core_api_t *pp__core PP__HIDDEN;
#define pp_options_init (pp__core->options_init)
#define pp_pool_create (pp__core->pool_create)
#define pp_pool_size (pp__core->pool_size)
#define pp_pool_close (pp__core->pool_close)
#define pp_pool_join (pp__core->pool_join)
#define pp_pool_destroy (pp__core->pool_destroy)
#define pp_future_on_done (pp__core->future_on_done)
#define pp_future_free (pp__core->future_free)
#define pp_future_error (pp__core->future_error)
#define pp_strerror (pp__core->strerror)
#define pp__now_ns (pp__core->now_ns)
#define pp__futex_wait (pp__core->futex_wait)
#define pp__futex_wake (pp__core->futex_wake)
#define pp__addr_encode (pp__core->addr_encode)
#define pp__addr_decode (pp__core->addr_decode)
#define pp__future_complete (pp__core->future_complete)
#define pp__future_set_fail (pp__core->future_set_fail)
#define pp__submit (pp__core->submit)
#define pp__pool_dispatch_locked (pp__core->pool_dispatch_locked)
#define pp__pool_wake_supervisor (pp__core->pool_wake_supervisor)
#define pp__smooth (pp__core->smooth)
#define pp__job_chunk_done (pp__core->job_chunk_done)
#define pp__job_chunk_lost (pp__core->job_chunk_lost)
#define pp__pool_give_back (pp__core->pool_give_back)
#define pp__pool_requeue_arg (pp__core->pool_requeue_arg)
#define pp_err_name (pp__core->err_name)
#define pp__trace_span (pp__core->trace_span)
#define pp__trace_lane (pp__core->trace_lane)
#define pp__trace_disable (pp__core->trace_disable)

#define PP__MPI_TAG 0x7070
#define PP__MPI_MAX_MSG ((size_t)1 << 30) /* one message's bytes (MPI counts are int) */

enum {
    PP__M_OPEN = 1, /* rank 0 -> agent: start a local pool (pp__mopen_t) */
    PP__M_OPENED,   /* agent -> rank 0: its worker count or an error (pp__mopened_t) */
    PP__M_TASKS,    /* rank 0 -> agent: pp__mtask_t records, each followed by its argument */
    PP__M_RESULTS,  /* agent -> rank 0: pp__mres_t records, each + message + data */
    PP__M_END,      /* rank 0 -> agent: the pool is finished (count 1: terminate it) */
    PP__M_SHUTDOWN, /* rank 0 -> agent: the program is exiting */
    PP__M_LOST,     /* agent -> rank 0: a TASKS batch of the pool could not be received */
    PP__M_GIVEBACK  /* rank 0 -> agent: answer every record not yet started with
                       PP__EGIVENBACK (another agent idles) */
};
/* The err of a result for a record the agent gave back unrun: rank 0
 * sends it again (never seen by the program). */
#define PP__EGIVENBACK (-29999)

typedef struct pp__mhdr {
    uint32_t type;
    uint32_t pool; /* rank 0's id of the pool */
    uint64_t count;
} pp__mhdr_t;

typedef struct pp__mopen {
    int32_t processes; /* workers on this agent; 0: its pp_cpu_count() */
    uint32_t start_method;
    uint32_t max_tasks;
    uint32_t retries;
    double task_timeout;
    uint64_t max_memory, shm_size;
    uint64_t init_key, init_off; /* key 0: no initializer */
    uint64_t arg_key, arg_off;   /* key 0: initarg NULL */
} pp__mopen_t;

typedef struct pp__mopened {
    int32_t workers;
    int32_t err;
    uint64_t clock_ns; /* the agent's CLOCK_MONOTONIC when it answered (traces align on it) */
    uint64_t boot;     /* pp__mpi_boot_id() of its machine: the same clock as rank 0's when equal */
} pp__mopened_t;

/* A hash of this machine's boot id (0 if unknown): processes with the same
 * one read the same CLOCK_MONOTONIC. */
uint64_t pp__mpi_boot_id(void) PP__HIDDEN;

typedef struct pp__mtask {
    uint64_t id;
    uint32_t flags; /* PP__F_CHUNK, PP__F_VAR */
    uint32_t pad;
    uint64_t fn_key, fn_off;
    uint64_t arg_len, nitems, item_size, res_size;
} pp__mtask_t;

typedef struct pp__mres {
    uint64_t id;
    int32_t err;    /* 0, or the PP_E* / -errno the task failed with */
    int32_t status; /* the task's own status (PP_ETASK) */
    uint32_t msg_len;
    uint32_t worker; /* the agent's worker slot that ran it */
    uint64_t data_len;
    uint64_t run_ns;
    uint64_t start_ns;   /* when that worker began it, on the agent's clock (0: it did not) */
    int64_t lost_k;      /* a chunk whose worker died: the item it was running */
    uint64_t lost_fails; /* items before it that had failed */
} pp__mres_t;

/* An outgoing message being built: header first, then records. */
typedef struct pp__wbuf {
    unsigned char *p;
    size_t len, cap;
    uint64_t count;
} pp__wbuf_t;

/* Room for n more bytes (a header is written first when empty); NULL on ENOMEM. */
unsigned char *pp__wbuf_grow(pp__wbuf_t *b, uint32_t type, uint32_t pool, size_t n);
/* Append a record: head then the (padded) parts; false on ENOMEM. */
bool pp__wbuf_record(pp__wbuf_t *b, uint32_t type, uint32_t pool, const void *head, size_t head_len,
                     const void *a, size_t a_len, const void *c, size_t c_len);
/* Take the buffer (count written into its header) for sending; b is empty after. */
void *pp__wbuf_take(pp__wbuf_t *b, size_t *len);
void pp__wbuf_free(pp__wbuf_t *b);

/* comm.c: the one thread of this process that calls MPI. */
typedef struct pp__comm {
    MPI_Comm comm;
    int rank, size;
    pid_t pid;                 /* the process that called MPI_Init */
    _Atomic uint32_t kick;     /* futex word: something to send */
    _Atomic uint32_t sleeping; /* the comm thread waits on kick */
    struct pp__send {
        MPI_Request req;
        void *buf;
    } * sends;
    size_t nsends, cap;
    uint64_t idle_since;
    uint64_t backoff_ns;
    uint64_t nomem_since; /* a waiting message has had no buffer since */
} pp__comm_t;

extern pp__comm_t pp__mpi;
extern bool pp__mpi_on; /* MPI_Init done by the library (rank 0 or agent) */

void pp__comm_kick(void);
/* Isend buf (malloc'd; freed once sent). 0, or -errno with buf still the caller's. */
int pp__comm_send(int dest, void *buf, size_t len);
/* Blocking send of a small message (control, shutdown). */
void pp__comm_send_now(int dest, const void *buf, size_t len);
/* Retire finished sends; returns how many finished. */
int pp__comm_test_sends(void);
/* One waiting message, malloc'd: 1 got it, 0 none. A message that has had
 * no memory to land in for PP__RECV_NOMEM_NS is dropped: -ENOMEM, with
 * *src and its header in *dropped (the rest is lost). */
int pp__comm_recv(void **buf, size_t *len, int *src, pp__mhdr_t *dropped);
/* Nothing happened this round: spin briefly, then sleep on the kick word:
 * with no limit (PP__IDLE_DEEP: no message can come), or for a growing
 * while up to a short (PP__IDLE_SHORT: work is out) or a longer bound
 * (PP__IDLE_LONG: a message may come, nothing is out). Any work resets it
 * (pp__comm_busy). */
enum { PP__IDLE_DEEP, PP__IDLE_SHORT, PP__IDLE_LONG };
void pp__comm_idle(int mode);
void pp__comm_busy(void);

/* comm.c: MPI_Init; on ranks other than 0 never returns (the agent). */
int pp__mpi_start(void);
bool pp__mpi_is_default(void);

/* remote.c: rank 0's side of an MPI pool (pp__mpi_ops_t) */
int pp__mpi_remote_open(pp_pool_t *pool);
bool pp__mpi_remote_place(pp_pool_t *pool, pp__task_t *t, const void *arg, int *err);
bool pp__mpi_remote_room(pp_pool_t *pool);
void pp__mpi_remote_cancel(pp_pool_t *pool);
void pp__mpi_remote_close(pp_pool_t *pool, bool terminate);
void pp__mpi_remote_free(pp_pool_t *pool);

/* agent.c */
__attribute__((noreturn)) void pp__agent_main(void);

/* remote.c: rank 0's hub thread */
void pp__hub_stop(void);

#endif
