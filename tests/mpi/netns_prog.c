/*
 * netns_prog.c - run by tests/mpi/netns.sh as a 3-rank Open MPI job whose
 * ranks sit in three network namespaces (three "hosts"). Rank 0 runs main();
 * ranks 1 and 2 are procpool node agents.
 *
 * Checks, through the public API only:
 *  - a pool with backend MPI can be created and has workers;
 *  - 64 tasks all succeed, each reporting the network namespace (inode of
 *    /proc/self/ns/net) and OMPI_COMM_WORLD_RANK of the process that ran it;
 *  - the tasks ran in at least 2 distinct namespaces, none of them rank 0's,
 *    and never in rank 0;
 *  - a task that raises SIGSEGV fails with PP_EWORKER while the tasks
 *    submitted around it still succeed;
 *  - a pp_map over 256 items also runs on the agents only.
 *
 * Exit status 0 when every check passes, 1 with a message otherwise.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "procpool.h"

#define NTASKS 64
#define NITEMS 256
#define WAIT_S 30.0 /* per future; netns.sh's own timeout is the backstop */
#define MAXNS 16

typedef struct {
    uint64_t netns; /* inode of /proc/self/ns/net, 0 if unreadable */
    int64_t rank;   /* OMPI_COMM_WORLD_RANK, -1 if unset */
    int64_t pid;
} where_t;

static int failures;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "netns_prog: FAIL: " __VA_ARGS__);                                     \
            fputc('\n', stderr);                                                                   \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

static uint64_t my_netns(void) {
    struct stat st;
    if (stat("/proc/self/ns/net", &st) != 0)
        return 0;
    return (uint64_t)st.st_ino;
}

static int64_t my_rank(void) {
    const char *r = getenv("OMPI_COMM_WORLD_RANK");
    if (!r || !*r)
        return -1;
    char *end;
    long v = strtol(r, &end, 10);
    return *end ? -2 : (int64_t)v;
}

/* Task: where am I? The argument (if any) is milliseconds to sleep first, so
 * that the work lasts long enough to be spread over the agents. */
static int where(const void *arg, size_t len, pp_buf_t *out) {
    if (len == sizeof(int)) {
        int ms;
        memcpy(&ms, arg, sizeof ms);
        struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    where_t w = {my_netns(), my_rank(), (int64_t)getpid()};
    if (w.netns == 0)
        return pp_buf_fail(out, "stat /proc/self/ns/net: %s", strerror(errno));
    return pp_buf_append(out, &w, sizeof w);
}

/* Task: die the way a buggy task would. */
static int crash(const void *arg, size_t len, pp_buf_t *out) {
    (void)arg, (void)len, (void)out;
    raise(SIGSEGV);
    return 0;
}

/* Map item: the namespace inode of the worker, or 0 if a rank-0 process
 * ran it (which must never happen). */
static int map_where(const void *arg, size_t len, pp_buf_t *out) {
    (void)arg, (void)len;
    uint64_t ns = my_rank() == 0 ? 0 : my_netns();
    return pp_buf_append(out, &ns, sizeof ns);
}

/* Distinct namespaces seen, with a count each. */
static uint64_t seen_ns[MAXNS];
static int seen_n[MAXNS], nseen;

static void note_ns(uint64_t ns) {
    for (int i = 0; i < nseen; i++)
        if (seen_ns[i] == ns) {
            seen_n[i]++;
            return;
        }
    if (nseen < MAXNS) {
        seen_ns[nseen] = ns;
        seen_n[nseen++] = 1;
    }
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    uint64_t self_ns = my_netns();
    int64_t self_rank = my_rank();
    printf("netns_prog: main() in process %d, netns %" PRIu64 ", OMPI_COMM_WORLD_RANK %" PRId64
           "\n",
           (int)getpid(), self_ns, self_rank);
    if (self_ns == 0) {
        fprintf(stderr, "netns_prog: FAIL: cannot stat /proc/self/ns/net\n");
        return 1;
    }
    CHECK(self_rank == 0, "main() runs in rank %" PRId64 ", expected rank 0", self_rank);

    pp_options_t opt;
    pp_options_init(&opt);
    opt.backend = PP_BACKEND_MPI;
    pp_pool_t *pool = NULL;
    int rc = pp_pool_create(&pool, &opt);
    if (rc != 0) {
        fprintf(stderr, "netns_prog: FAIL: pp_pool_create(backend MPI): %s (%s)\n", pp_err_name(rc),
                pp_strerror(rc));
        return 1;
    }
    int size = pp_pool_size(pool);
    printf("netns_prog: MPI pool with %d workers\n", size);
    CHECK(size >= 2, "pp_pool_size is %d, expected at least one worker on each of 2 agents", size);

    /* 64 tasks, with the crashing one submitted in the middle. */
    pp_future_t *f[NTASKS] = {0}, *bad = NULL;
    int ms = 10;
    for (int i = 0; i < NTASKS; i++) {
        if (i == NTASKS / 2) {
            rc = pp_apply_async(pool, crash, NULL, 0, &bad);
            CHECK(rc == 0, "pp_apply_async(crash): %s", pp_err_name(rc));
        }
        rc = pp_apply_async(pool, where, &ms, sizeof ms, &f[i]);
        CHECK(rc == 0, "pp_apply_async(task %d): %s", i, pp_err_name(rc));
    }

    /* Tally, so that a systematic failure gives one line, not 64. */
    int ok = 0, failed = 0, in_ns0 = 0, in_rank0 = 0, in_self = 0;
    int64_t bad_pid = 0, bad_rank = 0;
    for (int i = 0; i < NTASKS; i++) {
        if (!f[i])
            continue;
        const void *d;
        size_t n;
        rc = pp_future_get(f[i], WAIT_S, &d, &n);
        if (rc != 0) {
            if (failed++ < 5)
                fprintf(stderr, "netns_prog: task %d: %s (%s)\n", i, pp_err_name(rc),
                        pp_future_error(f[i]) ? pp_future_error(f[i]) : pp_strerror(rc));
            continue;
        }
        if (n != sizeof(where_t)) {
            if (failed++ < 5)
                fprintf(stderr, "netns_prog: task %d: result of %zu bytes, expected %zu\n", i, n,
                        sizeof(where_t));
            continue;
        }
        where_t w;
        memcpy(&w, d, sizeof w);
        if (w.netns == self_ns)
            in_ns0++, bad_pid = w.pid;
        if (w.rank <= 0)
            in_rank0++, bad_rank = w.rank, bad_pid = w.pid;
        if (w.pid == (int64_t)getpid())
            in_self++;
        note_ns(w.netns);
        ok++;
    }
    CHECK(failed == 0, "%d of %d tasks failed (first ones above)", failed, NTASKS);
    CHECK(in_ns0 == 0, "%d of %d tasks ran in rank 0's network namespace (e.g. pid %" PRId64 ")",
          in_ns0, ok, bad_pid);
    CHECK(in_rank0 == 0,
          "%d of %d tasks ran in a process whose OMPI_COMM_WORLD_RANK is %s "
          "(e.g. pid %" PRId64 ")",
          in_rank0, ok,
          bad_rank == -1  ? "unset"
          : bad_rank == 0 ? "0"
                          : "not a number",
          bad_pid);
    CHECK(in_self == 0, "%d tasks ran in rank 0's own process", in_self);

    if (bad) {
        rc = pp_future_get(bad, WAIT_S, NULL, NULL);
        const char *msg = pp_future_error(bad);
        printf("netns_prog: crashing task: %s: %s\n", pp_err_name(rc), msg ? msg : "(no message)");
        CHECK(rc == PP_EWORKER, "crashing task: got %s, expected PP_EWORKER", pp_err_name(rc));
        CHECK(msg && *msg, "crashing task: no error message");
    }

    printf("netns_prog: %d of %d tasks succeeded, in %d network namespace(s):", ok, NTASKS, nseen);
    for (int i = 0; i < nseen; i++)
        printf(" %" PRIu64 " (%d)", seen_ns[i], seen_n[i]);
    printf("\n");
    CHECK(nseen >= 2, "tasks ran in %d network namespace(s), expected at least 2", nseen);

    /* A map: chunks spread over the agents, never run in rank 0. */
    static int items[NITEMS];
    static uint64_t res[NITEMS];
    rc = pp_map(pool, map_where, items, sizeof items[0], NITEMS, res, sizeof res[0], 8);
    CHECK(rc == 0, "pp_map: %s (%s)", pp_err_name(rc), pp_strerror(rc));
    if (rc == 0) {
        int in_rank0 = 0;
        for (int i = 0; i < NITEMS; i++)
            if (res[i] == 0 || res[i] == self_ns)
                in_rank0++;
        CHECK(in_rank0 == 0, "pp_map: %d of %d items ran in rank 0 or its namespace", in_rank0,
              NITEMS);
    }

    /* A shared-memory block cannot span machines. */
    errno = 0;
    void *p = pp_shm_alloc(pool, 64);
    CHECK(p == NULL && errno == ENOTSUP,
          "pp_shm_alloc on an MPI pool: %p, errno %d, expected "
          "NULL with ENOTSUP",
          p, errno);

    for (int i = 0; i < NTASKS; i++)
        pp_future_free(f[i]);
    pp_future_free(bad);
    pp_pool_close(pool);
    rc = pp_pool_join(pool);
    CHECK(rc == 0, "pp_pool_join: %s", pp_err_name(rc));
    pp_pool_destroy(pool);

    if (failures) {
        fprintf(stderr, "netns_prog: %d check(s) failed\n", failures);
        return 1;
    }
    printf("netns_prog: all checks passed\n");
    return 0;
}
