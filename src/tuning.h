/*
 * tuning.h - every timing constant of the library, in one place.
 *
 * DESIGN: these are the pool's tuning knobs: how long a waiter spins before
 * it sleeps, how much work is sent ahead, when records stuck behind a long
 * task are taken back, how long a lifecycle step may take. Each is used by
 * one subsystem (named beside it) but they are read together: the spin
 * lengths of the worker and of the parent's waiters are meant to match, and
 * the send-ahead depth and the stealing thresholds are two halves of one
 * policy. The header has no dependencies; both sides of the process
 * boundary (the worker, the parent, the MPI agent) may include it.
 * Suffixes give the unit: _NS nanoseconds, _MS milliseconds.
 */
#ifndef PP_TUNING_H
#define PP_TUNING_H

/* Spinning before sleeping: worker.c (idle worker), future.c (pp_future_wait),
 * queue.c (pp_queue_next), iter.c (iterators), mpi/comm.c (the hub's loop).
 * One value, so that a waiter and a worker give up the CPU alike. */
#define PP__SPIN_NS 50000u     /* spin this long before sleeping */
#define PP__PURE_SPIN_NS 5000u /* worker.c: of which this long without yielding */

/* worker.c: a sleeping worker checks for its parent's death this often */
#define PP__IDLE_CHECK_NS 250000000

/* pool.c: send-ahead and work stealing */
#define PP__DEPTH_TARGET_NS 1000000u /* about this much expected work queued per worker */
#define PP__STEAL_MIN_NS 500000u     /* records waiting this long behind a running task... */
#define PP__STEAL_MAX_NS 2000000u    /* ...or twice the average task time, up to this */

/* map.c, iter.c: a chunk's worth of work under PP_CHUNK_AUTO */
#define PP__AUTO_TARGET_NS 2000000u

/* queue.c: longest sleep of pp_queue_next before it looks again */
#define PP__QUEUE_SLICE_NS 100000000u

/* supervise.c: lifecycle and deaths */
#define PP__TERM_GRACE_NS 200000000u /* SIGTERM, then SIGKILL after this */
#define PP__EARLY_DEATH_NS                                                                         \
    1000000000u          /* a death this soon after birth, with no task done, is early */
#define PP__PASSIVE_MS 2 /* re-check period while waiters drain for us */
#define PP__ZYGOTE_START_NS 10000000000ull /* create gives up on a zygote silent this long */
#define PP__PIDLESS_POLL_MS 50             /* no pidfd: look for our children's deaths this often */
#define PP__ZYGOTE_WAIT_NS 1000000000u     /* longest wait for the zygote's DIED report or answer */
#define PP__TIMEOUT_TICK_MS 20        /* look at running tasks this often while any is in flight */
#define PP__TIMEOUT_KILL_NS 50000000u /* a timed-out task: SIGTERM, then SIGKILL this much later */

/* trace.c */
#define PP__TRACE_FLUSH_NS                                                                         \
    100000000ull /* hand a buffer to the flusher once the last write is this old */
#define PP__TRACE_COUNTER_NS 1000000ull /* queue counters at most this often */

/* mpi/comm.c: the hub's and the agents' polling back-off */
#define PP__BACKOFF_MIN_NS 10000u
#define PP__BACKOFF_MAX_NS 200000u   /* work is out, or was lately: look this often at least */
#define PP__BACKOFF_LONG_NS 2000000u /* an agent idle for a while */
#define PP__LATELY_NS 100000000u     /* "lately": within this long */
#define PP__RECV_NOMEM_NS 1000000000u

/* mpi/remote.c: work sent ahead to agents, and taken back from busy ones */
#define PP__WINDOW_NS 4000000u    /* work queued per remote worker */
#define PP__BACK_MIN_NS 4000000u  /* records behind a busy agent this long... */
#define PP__BACK_MAX_NS 50000000u /* ...or twice the average task time, up to this */

#endif
