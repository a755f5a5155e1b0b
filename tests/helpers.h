/*
 * helpers.h - small shared helpers for the procpool cmocka tests.
 * Only static inline functions and macros; include after <cmocka.h>.
 */
#ifndef PP_TEST_HELPERS_H
#define PP_TEST_HELPERS_H

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "procpool.h"
#include "proc_util.h"

/* PPT_SANITIZER: built with AddressSanitizer or ThreadSanitizer (gcc or
 * clang); PPT_ASAN: with AddressSanitizer. Tests scale down or expect what
 * a sanitizer changes. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define PPT_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define PPT_SANITIZER 1
#endif
#endif

#if defined(__SANITIZE_ADDRESS__)
#define PPT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PPT_ASAN 1
#endif
#endif

/* Compare two return codes and print their symbolic names on mismatch. */
#define assert_rc(actual, expected)                                                                \
    do {                                                                                           \
        int pp_a_ = (int)(actual), pp_e_ = (int)(expected);                                        \
        if (pp_a_ != pp_e_)                                                                        \
            fail_msg("%s returned %d (%s), expected %d (%s)", #actual, pp_a_, pp_err_name(pp_a_),  \
                     pp_e_, pp_err_name(pp_e_));                                                   \
    } while (0)

/* Seconds on the monotonic clock. */
static inline double ppt_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline void ppt_sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Hang guard: the default SIGALRM action kills the test binary. Workers do
 * not inherit alarms. Also flush stdout so forked workers carry no buffered
 * output. */
static inline void ppt_hang_guard(unsigned seconds) {
    unsetenv("PROCPOOL_CPUS");
    fflush(stdout);
    fflush(stderr);
    alarm(seconds);
}

/* Create a pool with `processes` workers (other options default); fails the
 * test on error. */
static inline pp_pool_t *ppt_pool(int processes) {
    pp_options_t opt;
    pp_options_init(&opt);
    opt.processes = processes;
    pp_pool_t *pool = NULL;
    fflush(stdout);
    fflush(stderr);
    int rc = pp_pool_create(&pool, &opt);
    if (rc != 0 || pool == NULL)
        fail_msg("pp_pool_create(processes=%d) returned %d (%s)", processes, rc, pp_err_name(rc));
    return pool;
}

/* Close, join, destroy; fails the test if close or join fail. */
static inline void ppt_finish(pp_pool_t *pool) {
    assert_rc(pp_pool_close(pool), 0);
    assert_rc(pp_pool_join(pool), 0);
    pp_pool_destroy(pool);
}

/* Wait up to `timeout` s for f and return the result as a long (the task put
 * a long into its result); fails the test on error. */
static inline long ppt_get_long(pp_future_t *f, double timeout) {
    const void *d = NULL;
    size_t n = 99;
    int rc = pp_future_get(f, timeout, &d, &n);
    if (rc != 0)
        fail_msg("pp_future_get returned %d (%s): %s", rc, pp_err_name(rc),
                 pp_future_error(f) ? pp_future_error(f) : "(no message)");
    if (d == NULL || n != sizeof(long))
        fail_msg("pp_future_get gave data %p len %zu, expected a long", d, n);
    long v;
    memcpy(&v, d, sizeof v);
    return v;
}

/* ---- shared tasks (they run in the workers of the binary that names them) */

/* Task: the square of a long argument, as a long; fails on another length. */
static inline int ppt_task_square(const void *arg, size_t len, pp_buf_t *out) {
    if (len != sizeof(long))
        return pp_buf_fail(out, "bad len %zu", len);
    long v;
    memcpy(&v, arg, sizeof v);
    v *= v;
    return pp_buf_append(out, &v, sizeof v);
}

/* Task: twice a long argument, as a long; fails on another length. */
static inline int ppt_task_double(const void *arg, size_t len, pp_buf_t *out) {
    if (len != sizeof(long))
        return pp_buf_fail(out, "bad len %zu", len);
    long v;
    memcpy(&v, arg, sizeof v);
    v *= 2;
    return pp_buf_append(out, &v, sizeof v);
}

/* Task: die of SIGABRT. */
static inline int ppt_task_abort(const void *arg, size_t len, pp_buf_t *out) {
    (void)arg, (void)len, (void)out;
    abort();
}

/* Task: die of SIGSEGV (cmocka's handler may have been inherited by the
 * worker: the default action is put back first, so it dies for real). */
static inline int ppt_task_segv(const void *arg, size_t len, pp_buf_t *out) {
    (void)arg, (void)len, (void)out;
    signal(SIGSEGV, SIG_DFL);
    raise(SIGSEGV);
    return 0;
}

/* Task: sleep for an int argument of ms (0 without one); the result is
 * that ms as a long. */
static inline int ppt_task_sleep_ms(const void *arg, size_t len, pp_buf_t *out) {
    int ms = 0;
    if (len == sizeof ms)
        memcpy(&ms, arg, sizeof ms);
    ppt_sleep_ms(ms);
    long v = ms;
    return pp_buf_append(out, &v, sizeof v);
}

/* ---- a thread that SIGKILLs random workers ---------------------------------- */

struct ppt_killer {
    pthread_t th;
    atomic_bool stop;
    atomic_long kills;
    int interval_ms;
    unsigned seed;
};

/* Every interval_ms, SIGKILL one of the live workers (ppt_find_workers),
 * drawn with an LCG from seed; counts the kills. */
static inline void *ppt_killer_main(void *arg) {
    struct ppt_killer *k = arg;
    while (!atomic_load(&k->stop)) {
        ppt_sleep_ms(k->interval_ms);
        pid_t w[64];
        int n = ppt_find_workers(w, 64);
        if (n == 0)
            continue;
        k->seed = k->seed * 1103515245u + 12345u;
        if (kill(w[(k->seed >> 16) % (unsigned)n], SIGKILL) == 0)
            atomic_fetch_add(&k->kills, 1);
    }
    return NULL;
}

/* Start the killer thread; fails the test if it cannot. */
static inline void ppt_killer_start(struct ppt_killer *k, int interval_ms, unsigned seed) {
    atomic_store(&k->stop, false);
    atomic_store(&k->kills, 0);
    k->interval_ms = interval_ms;
    k->seed = seed;
    assert_int_equal(pthread_create(&k->th, NULL, ppt_killer_main, k), 0);
}

/* Stop and join the killer thread; returns how many workers it killed. */
static inline long ppt_killer_stop(struct ppt_killer *k) {
    atomic_store(&k->stop, true);
    pthread_join(k->th, NULL);
    return atomic_load(&k->kills);
}

#endif /* PP_TEST_HELPERS_H */
