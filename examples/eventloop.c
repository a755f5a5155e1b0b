/*
 * eventloop.c - feed a process pool from a libuv event loop, without a
 * thread and without ever blocking the loop.
 *
 *   eventloop [tasks]          (default: 48 tasks)
 *
 * The pattern:
 *
 *   1. create the pool first (before the loop opens its descriptors);
 *   2. submit tasks with pp_submit and put each future into a completion
 *      queue with pp_queue_add;
 *   3. watch pp_queue_fd(q) with a uv_poll_t for UV_READABLE. The
 *      descriptor is readable, level-triggered, while a done future waits
 *      in the queue, so the poll callback takes every waiting future with
 *      pp_queue_next(q, 0, &f) -- timeout 0: it never waits -- until that
 *      returns -ETIMEDOUT (the rest still run) or 0 (every future added has
 *      been delivered);
 *   4. once the queue is drained, close the handles; uv_run returns when
 *      none is left, and the pool is closed, joined and destroyed.
 *
 * Never read, write or close pp_queue_fd's descriptor: it belongs to the
 * queue. A future carries no user pointer, so the program keeps its own
 * table from future to job (a hash map for large batches).
 *
 * A task advances a 64-bit linear congruential generator `steps` times,
 * which keeps a CPU busy for a few milliseconds; the loop checks each
 * answer with the generator's O(log n) jump-ahead. Every seventh task
 * refuses its input on purpose and must fail with PP_ETASK and its message.
 * A 10 ms uv_timer_t ticks alongside; the worst gap between two ticks shows
 * that the loop stayed responsive while the pool worked.
 *
 * Build: cc eventloop.c $(pkg-config --cflags --libs procpool libuv)
 * Exit status 0 when every result is right, 1 otherwise.
 */
#include <procpool.h>
#include <uv.h>

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LCG_MUL 6364136223846793005ull
#define LCG_ADD 1442695040888963407ull
#define TICK_MS 10

struct job {
    uint64_t seed, steps;
    int fail; /* refuse this one on purpose */
};

/* Runs in a worker. */
static int lcg_task(const void *arg, size_t len, pp_buf_t *out) {
    struct job j;
    if (len != sizeof j)
        return pp_buf_fail(out, "argument of %zu bytes, expected %zu", len, sizeof j);
    memcpy(&j, arg, sizeof j);
    if (j.fail)
        return pp_buf_fail(out, "seed %" PRIu64 " refused on purpose", j.seed);
    uint64_t x = j.seed;
    for (uint64_t i = 0; i < j.steps; i++)
        x = x * LCG_MUL + LCG_ADD;
    return pp_buf_append(out, &x, sizeof x);
}

/* The same n steps in O(log n): compose x -> a*x + c with itself. */
static uint64_t lcg_skip(uint64_t x, uint64_t n) {
    uint64_t a = LCG_MUL, c = LCG_ADD, acc_a = 1, acc_c = 0;
    for (; n; n >>= 1) {
        if (n & 1) {
            acc_a *= a;
            acc_c = acc_c * a + c;
        }
        c = c * (a + 1);
        a *= a;
    }
    return acc_a * x + acc_c;
}

struct app {
    pp_pool_t *pool;
    pp_queue_t *q;
    uv_poll_t poll;
    uv_timer_t timer;
    size_t njobs;
    struct job *jobs;
    pp_future_t **futures; /* futures[i] belongs to jobs[i]; NULL once taken */
    size_t delivered, succeeded, failed, wrong;
    uint64_t ticks, last_tick_ns, worst_gap_ns;
};

static size_t job_of(const struct app *a, const pp_future_t *f) {
    for (size_t i = 0; i < a->njobs; i++)
        if (a->futures[i] == f)
            return i;
    return a->njobs;
}

/* One done future: check it against what the job should give. */
static void handle(struct app *a, pp_future_t *f) {
    size_t i = job_of(a, f);
    if (i == a->njobs) {
        fprintf(stderr, "a future that is no job's came out of the queue\n");
        a->wrong++;
        return;
    }
    const struct job *j = &a->jobs[i];
    const void *data;
    size_t len;
    int rc = pp_future_get(f, 0, &data, &len);
    if (rc == 0 && !j->fail && len == sizeof(uint64_t)) {
        uint64_t got;
        memcpy(&got, data, sizeof got);
        int ok = got == lcg_skip(j->seed, j->steps);
        printf("job %2zu: %8" PRIu64 " steps -> %016" PRIx64 "%s\n", i, j->steps, got,
               ok ? "" : "  WRONG");
        a->succeeded += ok;
        a->wrong += !ok;
    } else if (rc == PP_ETASK && j->fail) {
        printf("job %2zu: failed as expected: %s\n", i, pp_future_error(f));
        a->failed++;
    } else {
        printf("job %2zu: unexpected %s (%s)\n", i, pp_err_name(rc),
               pp_future_error(f) ? pp_future_error(f) : pp_strerror(rc));
        a->wrong++;
    }
    a->futures[i] = NULL;
    pp_future_free(f);
    a->delivered++;
}

/* pp_queue_fd is readable: take every future that is done, without waiting. */
static void on_queue_readable(uv_poll_t *h, int status, int events) {
    struct app *a = h->data;
    (void)events;
    if (status < 0) {
        fprintf(stderr, "uv_poll: %s\n", uv_strerror(status));
        a->wrong++;
    } else {
        pp_future_t *f;
        int rc;
        while ((rc = pp_queue_next(a->q, 0, &f)) == 1)
            handle(a, f);
        if (rc == -ETIMEDOUT) /* the others are still running: back to the loop */
            return;
        if (rc != 0) {
            fprintf(stderr, "pp_queue_next: %s\n", pp_strerror(rc));
            a->wrong++;
        }
    }
    /* 0: every future added has been delivered (or an error): stop. */
    uv_close((uv_handle_t *)&a->poll, NULL);
    uv_close((uv_handle_t *)&a->timer, NULL);
}

static void on_tick(uv_timer_t *h) {
    struct app *a = h->data;
    uint64_t now = uv_hrtime();
    if (a->ticks++ > 0 && now - a->last_tick_ns > a->worst_gap_ns)
        a->worst_gap_ns = now - a->last_tick_ns;
    a->last_tick_ns = now;
}

/* Watch the queue and tick the timer until every future is delivered. */
static int run_loop(struct app *a) {
    uv_loop_t loop;
    int fd = pp_queue_fd(a->q);
    if (fd < 0 || uv_loop_init(&loop) != 0)
        return 1;
    if (uv_poll_init(&loop, &a->poll, fd) != 0 || uv_timer_init(&loop, &a->timer) != 0) {
        fprintf(stderr, "cannot watch the queue's descriptor\n");
        return 1;
    }
    a->poll.data = a->timer.data = a;
    uv_poll_start(&a->poll, UV_READABLE, on_queue_readable);
    uv_timer_start(&a->timer, on_tick, TICK_MS, TICK_MS);

    uint64_t t0 = uv_hrtime();
    uv_run(&loop, UV_RUN_DEFAULT); /* returns once both handles are closed */
    printf("%zu of %zu jobs delivered in %.2f s: %zu right, %zu failed on purpose, %zu wrong\n",
           a->delivered, a->njobs, (double)(uv_hrtime() - t0) / 1e9, a->succeeded, a->failed,
           a->wrong);
    printf("timer: %" PRIu64 " ticks of %d ms, worst gap %.1f ms\n", a->ticks, TICK_MS,
           (double)a->worst_gap_ns / 1e6);
    return uv_loop_close(&loop) != 0 || a->wrong > 0 || a->delivered != a->njobs;
}

int main(int argc, char **argv) {
    struct app a = {.njobs = argc > 1 ? strtoul(argv[1], NULL, 10) : 48};
    if (a.njobs == 0 || a.njobs > 100000) {
        fprintf(stderr, "usage: %s [tasks (1..100000)]\n", argv[0]);
        return 2;
    }
    a.jobs = calloc(a.njobs, sizeof *a.jobs);
    a.futures = calloc(a.njobs, sizeof *a.futures);
    if (!a.jobs || !a.futures) {
        perror("calloc");
        return 1;
    }

    /* The pool first, before the loop has descriptors a fork would copy. */
    int rc = pp_pool_create(&a.pool, NULL); /* one worker per CPU */
    if (rc == 0)
        rc = pp_queue_create(&a.q);
    /* Submit everything up front; the queue hands the futures back as they
     * finish. (Submitting from a loop callback works the same way.) */
    for (size_t i = 0; rc == 0 && i < a.njobs; i++) {
        a.jobs[i] =
            (struct job){.seed = i + 1, .steps = 2000000 + 1000000 * (i % 9), .fail = i % 7 == 3};
        rc = pp_submit(a.pool, lcg_task, &a.jobs[i], sizeof a.jobs[i], NULL, &a.futures[i]);
        if (rc == 0)
            rc = pp_queue_add(a.q, a.futures[i]);
    }
    int bad = 1;
    if (rc != 0)
        fprintf(stderr, "procpool: %s\n", pp_strerror(rc));
    else
        bad = run_loop(&a);

    pp_stats_t st;
    if (pp_pool_stats(a.pool, &st) == 0)
        printf("pool: %llu tasks submitted, %llu succeeded, %llu failed\n", st.submitted,
               st.completed, st.failed);
    pp_queue_destroy(a.q);
    if (rc == 0) { /* let the pool finish; pp_pool_destroy alone would terminate it */
        pp_pool_close(a.pool);
        pp_pool_join(a.pool);
    }
    pp_pool_destroy(a.pool);
    for (size_t i = 0; i < a.njobs; i++)
        pp_future_free(a.futures[i]); /* none left unless something went wrong */
    free(a.futures);
    free(a.jobs);
    return bad;
}
