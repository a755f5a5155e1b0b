/*
 * as_completed.c - results in the order the tasks finish, as Python's
 *
 *     with ProcessPoolExecutor() as ex:
 *         fs = {ex.submit(nap, ms): ms for ms in durations}
 *         for f in as_completed(fs):
 *             print(fs[f], f.exception() or f.result())
 *
 * In C: submit the tasks with pp_submit, put every future into a completion
 * queue with pp_queue_add, and take them out with pp_queue_next, which
 * hands out each future once, in completion order, and returns 0 when every
 * future added has come out. A failed task comes out like any other: its
 * error code from pp_future_get, its message from pp_future_error.
 *
 * Here a task sleeps for its number of milliseconds and returns ms * ms;
 * one refuses its input (PP_ETASK and a message), and one gets a timeout of
 * its own through pp_task_opts_t and overruns it (PP_ETASKTIMEOUT: its
 * worker is killed and replaced). There is a worker per task, so the
 * sleeps overlap and the tasks finish shortest first.
 *
 *   as_completed
 *
 * Exit status 0 when every task came out once with the right outcome.
 */
#include <procpool.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define NTASKS 8
#define REFUSED 13   /* this duration fails on purpose */
#define OVERRUN 1500 /* this one sleeps past its own 0.3 s timeout */

/* Runs in a worker. */
static int nap(const void *arg, size_t len, pp_buf_t *out) {
    long ms;
    if (len != sizeof ms)
        return pp_buf_fail(out, "argument of %zu bytes, expected a long", len);
    memcpy(&ms, arg, sizeof ms);
    if (ms == REFUSED)
        return pp_buf_fail(out, "%ld ms: an unlucky number, refused", ms);
    struct timespec ts = {ms / 1000, ms % 1000 * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
    long sq = ms * ms;
    return pp_buf_append(out, &sq, sizeof sq);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(void) {
    static const long durations[NTASKS] = {400, REFUSED, 100, OVERRUN, 250, 50, 600, 10};
    pp_future_t *fs[NTASKS];
    int seen[NTASKS] = {0};
    int bad = 0;

    pp_options_t opt;
    pp_options_init(&opt);
    opt.processes = NTASKS; /* the tasks sleep: let them all sleep at once */
    pp_pool_t *pool;
    pp_queue_t *q;
    int rc = pp_pool_create(&pool, &opt);
    if (rc == 0 && (rc = pp_queue_create(&q)) != 0)
        pp_pool_destroy(pool);
    if (rc != 0) {
        fprintf(stderr, "procpool: %s\n", pp_strerror(rc));
        return 1;
    }

    double t0 = now();
    for (int i = 0; i < NTASKS; i++) {
        pp_task_opts_t to;
        pp_task_opts_init(&to);
        if (durations[i] == OVERRUN)
            to.timeout = 0.3; /* this task only */
        rc = pp_submit(pool, nap, &durations[i], sizeof durations[i], &to, &fs[i]);
        if (rc == 0)
            rc = pp_queue_add(q, fs[i]);
        if (rc != 0) {
            fprintf(stderr, "submitting task %d: %s\n", i, pp_strerror(rc));
            return 1;
        }
    }

    /* as_completed: -1 waits as long as it takes (a timeout here gives
     * -ETIMEDOUT when nothing finished in time, as as_completed(timeout=)). */
    pp_future_t *f;
    while ((rc = pp_queue_next(q, -1, &f)) == 1) {
        int i = 0;
        while (i < NTASKS && fs[i] != f) /* a future carries no user pointer */
            i++;
        if (i == NTASKS || seen[i]++) {
            fprintf(stderr, "a future came out twice, or one that was never added\n");
            return 1;
        }
        long ms = durations[i];
        const void *data;
        size_t len;
        int err = pp_future_get(f, 0, &data, &len);
        printf("%6.3f s  task %d (%4ld ms): ", now() - t0, i, ms);
        if (err == 0) {
            long sq;
            memcpy(&sq, data, sizeof sq);
            printf("%ld\n", sq);
            bad |= len != sizeof sq || sq != ms * ms || ms == REFUSED || ms == OVERRUN;
        } else {
            const char *msg = pp_future_error(f);
            printf("%s: %s\n", pp_err_name(err), msg ? msg : pp_strerror(err));
            bad |=
                !(ms == REFUSED && err == PP_ETASK) && !(ms == OVERRUN && err == PP_ETASKTIMEOUT);
        }
        pp_future_free(f);
    }
    if (rc != 0) {
        fprintf(stderr, "pp_queue_next: %s\n", pp_strerror(rc));
        bad = 1;
    }
    for (int i = 0; i < NTASKS; i++)
        bad |= seen[i] != 1;

    pp_queue_destroy(q);
    pp_pool_close(pool);
    pp_pool_join(pool);
    pp_pool_destroy(pool);
    printf("%s\n", bad ? "WRONG: a task did not come out once with its expected outcome"
                       : "every task came out once, in completion order");
    return bad;
}
