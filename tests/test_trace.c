/*
 * test_trace.c - the timeline trace (opt.trace_file, PROCPOOL_TRACE).
 *
 * Each test runs a pool with tracing on, destroys it (or kills the process
 * that owns it) and parses the file with jansson: valid JSON, every task
 * once with its outcome, spans of one lane in order and never overlapping,
 * deaths and respawns in the lane of the slot, terminate, counters.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "helpers.h"

static char g_dir[64];

static int setup(void **state) {
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/pp_trace_XXXXXX");
    if (!mkdtemp(g_dir))
        return -1;
    unsetenv("PROCPOOL_TRACE");
    return 0;
}

static int teardown(void **state) {
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void path_of(char *buf, size_t n, const char *name) {
    snprintf(buf, n, "%s/%s", g_dir, name);
}

static int task_fail(const void *arg, size_t len, pp_buf_t *out) {
    (void)arg;
    (void)len;
    return pp_buf_fail(out, "no good");
}

static int task_crash(const void *arg, size_t len, pp_buf_t *out) {
    (void)arg;
    (void)len;
    (void)out;
    raise(SIGSEGV);
    return 0;
}

static int item_double(const void *arg, size_t len, pp_buf_t *out) {
    (void)len;
    int v = *(const int *)arg * 2;
    return pp_buf_append(out, &v, sizeof v);
}

/* Read a trace file: complete (it must end in "]") or cut short (then "]"
 * is appended, after any trailing comma). */
static json_t *load_trace(const char *path, bool complete) {
    FILE *f = fopen(path, "r");
    if (!f)
        fail_msg("cannot open %s: %s", path, strerror(errno));
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *text = malloc((size_t)n + 3);
    assert_non_null(text);
    assert_int_equal(fread(text, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    text[n] = 0;
    assert_true(n >= 2);
    assert_int_equal(text[0], '[');
    if (complete) {
        assert_string_equal(text + n - 2, "]\n");
    } else {
        assert_null(strstr(text, "\n]"));
        while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == ','))
            n--;
        /* cut only at the end of an event */
        assert_true(n == 1 || text[n - 1] == '}');
        text[n++] = ']';
        text[n] = 0;
    }
    json_error_t e;
    json_t *root = json_loads(text, 0, &e);
    if (!root)
        fail_msg("%s is not JSON: line %d: %s", path, e.line, e.text);
    free(text);
    assert_true(json_is_array(root));
    return root;
}

static const char *str_of(json_t *ev, const char *key) {
    return json_string_value(json_object_get(ev, key));
}

static const char *arg_str(json_t *ev, const char *key) {
    return json_string_value(json_object_get(json_object_get(ev, "args"), key));
}

static json_int_t arg_int(json_t *ev, const char *key) {
    return json_integer_value(json_object_get(json_object_get(ev, "args"), key));
}

static double num_of(json_t *ev, const char *key) {
    return json_number_value(json_object_get(ev, key));
}

/* Spans of one lane come in order of time and never overlap; every event
 * has the fields its phase needs. Returns the number of X events. */
static int check_lanes(json_t *root) {
    double end[8][64];
    for (int p = 0; p < 8; p++)
        for (int l = 0; l < 64; l++)
            end[p][l] = -1;
    size_t i;
    json_t *ev;
    int spans = 0;
    json_array_foreach(root, i, ev) {
        const char *ph = str_of(ev, "ph");
        assert_non_null(ph);
        assert_non_null(str_of(ev, "name"));
        json_int_t pid = json_integer_value(json_object_get(ev, "pid"));
        assert_true(pid >= 1 && pid < 8);
        if (strcmp(ph, "M") == 0)
            continue;
        double ts = num_of(ev, "ts");
        assert_true(ts >= 0);
        if (strcmp(ph, "X") != 0)
            continue;
        json_int_t tid = json_integer_value(json_object_get(ev, "tid"));
        assert_true(tid >= 0 && tid < 64);
        double dur = num_of(ev, "dur");
        assert_true(dur >= 0);
        if (ts < end[pid][tid])
            fail_msg("lane %d/%d: a span at %.3f starts before the previous ended (%.3f)", (int)pid,
                     (int)tid, ts, end[pid][tid]);
        end[pid][tid] = ts + dur;
        assert_non_null(arg_str(ev, "outcome"));
        spans++;
    }
    return spans;
}

static int count(json_t *root, const char *ph, const char *name, const char *outcome) {
    size_t i;
    json_t *ev;
    int n = 0;
    json_array_foreach(root, i, ev) {
        if (strcmp(str_of(ev, "ph"), ph) != 0)
            continue;
        if (name && strcmp(str_of(ev, "name"), name) != 0)
            continue;
        if (outcome && (!arg_str(ev, "outcome") || strcmp(arg_str(ev, "outcome"), outcome) != 0))
            continue;
        n++;
    }
    return n;
}

static json_t *find(json_t *root, const char *ph, const char *name, int nth) {
    size_t i;
    json_t *ev;
    json_array_foreach(root, i, ev) {
        if (strcmp(str_of(ev, "ph"), ph) == 0 && strcmp(str_of(ev, "name"), name) == 0 &&
            nth-- == 0)
            return ev;
    }
    return NULL;
}

static pp_pool_t *traced_pool(int processes, const char *file, double timeout) {
    pp_options_t opt;
    pp_options_init(&opt);
    opt.processes = processes;
    opt.trace_file = file;
    opt.task_timeout = timeout;
    pp_pool_t *pool = NULL;
    fflush(stdout);
    assert_rc(pp_pool_create(&pool, &opt), 0);
    return pool;
}

/* Tasks of every outcome, a map, a crash: each appears once. */
static void test_outcomes(void **state) {
    (void)state;
    ppt_hang_guard(60);
    char path[128];
    path_of(path, sizeof path, "run.json");
    pp_pool_t *pool = traced_pool(2, path, 0);
    enum { N = 300 };
    pp_future_t *f[N];
    for (long i = 0; i < N; i++)
        assert_rc(pp_apply_async(pool, ppt_task_square, &i, sizeof i, &f[i]), 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(ppt_get_long(f[i], 30), (long)i * i);
        pp_future_free(f[i]);
    }
    void *d = NULL;
    size_t n;
    assert_rc(pp_apply(pool, task_fail, NULL, 0, &d, &n), PP_ETASK);
    assert_rc(pp_apply(pool, task_crash, NULL, 0, &d, &n), PP_EWORKER);
    int items[1000], out[1000];
    for (int i = 0; i < 1000; i++)
        items[i] = i;
    assert_rc(pp_map(pool, item_double, items, sizeof *items, 1000, out, sizeof *out, 100), 0);
    assert_int_equal(out[999], 1998);
    long one = 3;
    assert_int_equal(
        ppt_get_long((pp_apply_async(pool, ppt_task_square, &one, sizeof one, &f[0]), f[0]), 30),
        9); /* the replacement worker runs tasks */
    pp_future_free(f[0]);
    ppt_finish(pool);

    json_t *root = load_trace(path, true);
    check_lanes(root);
    json_t *pn = find(root, "M", "process_name", 0);
    assert_non_null(pn);
    assert_non_null(strstr(arg_str(pn, "name"), "pool 1 ("));
    assert_non_null(find(root, "M", "thread_name", 1));
    /* every task once: N + 1 squares, one failure, one crash; 10 chunks */
    size_t i;
    json_t *ev;
    int ok = 0, etask = 0, eworker = 0, chunks = 0, items_seen = 0;
    const char *square_name = NULL;
    json_array_foreach(root, i, ev) {
        if (strcmp(str_of(ev, "ph"), "X") != 0)
            continue;
        const char *cat = str_of(ev, "cat"), *o = arg_str(ev, "outcome");
        if (strcmp(cat, "chunk") == 0) {
            assert_string_equal(o, "ok");
            chunks++;
            items_seen += (int)arg_int(ev, "items");
            assert_int_equal(arg_int(ev, "first_item") % 100, 0);
            continue;
        }
        assert_string_equal(cat, "task");
        if (strcmp(o, "ok") == 0) {
            ok++;
            assert_int_equal(arg_int(ev, "arg_size"), sizeof(long));
            assert_int_equal(arg_int(ev, "result_size"), sizeof(long));
            /* one function, one name */
            if (!square_name)
                square_name = str_of(ev, "name");
            assert_string_equal(str_of(ev, "name"), square_name);
        } else if (strcmp(o, "PP_ETASK") == 0) {
            etask++;
        } else if (strcmp(o, "PP_EWORKER") == 0) {
            eworker++;
            assert_string_equal(arg_str(ev, "signal"), "SIGSEGV");
        } else {
            fail_msg("unexpected outcome %s", o);
        }
        if (strcmp(o, "ok") != 0)
            assert_true(arg_int(ev, "worker_pid") > 0);
    }
    /* every lane's first worker is named by a start event */
    assert_non_null(find(root, "i", "start", 1));
    assert_true(arg_int(find(root, "i", "start", 0), "worker_pid") > 0);
    assert_int_equal(ok, N + 1);
    /* a static function, named from the program's symbol table */
    assert_string_equal(square_name, "ppt_task_square");
    assert_int_equal(etask, 1);
    assert_int_equal(eworker, 1);
    assert_int_equal(chunks, 10);
    assert_int_equal(items_seen, 1000);
    /* the death and the respawn, in the lane of the crashed task */
    json_t *crash = NULL;
    json_array_foreach(root, i, ev) {
        if (strcmp(str_of(ev, "ph"), "X") == 0 && strcmp(arg_str(ev, "outcome"), "PP_EWORKER") == 0)
            crash = ev;
    }
    json_t *death = find(root, "i", "death", 0), *respawn = find(root, "i", "respawn", 0);
    assert_non_null(death);
    assert_non_null(respawn);
    assert_null(find(root, "i", "death", 1));
    json_int_t lane = json_integer_value(json_object_get(crash, "tid"));
    assert_int_equal(json_integer_value(json_object_get(death, "tid")), lane);
    assert_int_equal(json_integer_value(json_object_get(respawn, "tid")), lane);
    assert_int_equal(arg_int(death, "worker_pid"), arg_int(crash, "worker_pid"));
    assert_string_equal(arg_str(death, "signal"), "SIGSEGV");
    assert_true(arg_int(respawn, "worker_pid") != arg_int(death, "worker_pid"));
    assert_true(num_of(respawn, "ts") >= num_of(death, "ts"));
    assert_true(num_of(death, "ts") >= num_of(crash, "ts"));
    assert_true(count(root, "C", "queue", NULL) >= 1);
    json_decref(root);
}

/* A timeout, then terminate with tasks still running: the file is whole. */
static void test_timeout_terminate(void **state) {
    (void)state;
    ppt_hang_guard(60);
    char path[128];
    path_of(path, sizeof path, "tmo.json");
    pp_pool_t *pool = traced_pool(2, path, 0.3);
    int ms = 5000;
    void *d = NULL;
    size_t n;
    assert_rc(pp_apply(pool, ppt_task_sleep_ms, &ms, sizeof ms, &d, &n), PP_ETASKTIMEOUT);
    pp_future_t *f[4];
    ms = 200;
    for (int i = 0; i < 4; i++)
        assert_rc(pp_apply_async(pool, ppt_task_sleep_ms, &ms, sizeof ms, &f[i]), 0);
    ppt_sleep_ms(50);
    assert_rc(pp_pool_terminate(pool), 0);
    for (int i = 0; i < 4; i++)
        pp_future_free(f[i]);
    pp_pool_destroy(pool);

    json_t *root = load_trace(path, true);
    check_lanes(root);
    assert_int_equal(count(root, "X", NULL, "PP_ETASKTIMEOUT"), 1);
    json_t *t = find(root, "i", "timeout", 0);
    assert_non_null(t);
    assert_int_equal(arg_int(t, "limit_ms"), 300);
    assert_non_null(find(root, "i", "terminate", 0));
    assert_null(find(root, "i", "terminate", 1));
    json_t *X = NULL;
    size_t i;
    json_t *ev;
    json_array_foreach(root, i, ev) {
        if (strcmp(str_of(ev, "ph"), "X") == 0 &&
            strcmp(arg_str(ev, "outcome"), "PP_ETASKTIMEOUT") == 0)
            X = ev;
    }
    assert_true(num_of(X, "dur") >= 250e3); /* µs: it ran about the limit */
    json_decref(root);
}

/* PROCPOOL_TRACE names the file; two pools share it, one group each. */
static void test_env_two_pools(void **state) {
    (void)state;
    ppt_hang_guard(60);
    char path[128];
    path_of(path, sizeof path, "env.json");
    setenv("PROCPOOL_TRACE", path, 1);
    pp_pool_t *a = ppt_pool(1), *b = ppt_pool(2);
    unsetenv("PROCPOOL_TRACE");
    long v = 4;
    void *d = NULL;
    size_t n;
    assert_rc(pp_apply(a, ppt_task_square, &v, sizeof v, &d, &n), 0);
    free(d);
    assert_rc(pp_apply(b, ppt_task_square, &v, sizeof v, &d, &n), 0);
    free(d);
    ppt_finish(a);
    /* the file is not finished while b is alive, but a's events are on disk */
    json_t *part = load_trace(path, false);
    assert_true(count(part, "X", NULL, "ok") >= 1);
    json_decref(part);
    assert_rc(pp_apply(b, ppt_task_square, &v, sizeof v, &d, &n), 0);
    free(d);
    ppt_finish(b);

    json_t *root = load_trace(path, true);
    check_lanes(root);
    assert_non_null(strstr(arg_str(find(root, "M", "process_name", 0), "name"), "pool 1 "));
    assert_non_null(strstr(arg_str(find(root, "M", "process_name", 1), "name"), "pool 2 "));
    int per[3] = {0};
    size_t i;
    json_t *ev;
    json_array_foreach(root, i, ev) {
        if (strcmp(str_of(ev, "ph"), "X") == 0)
            per[json_integer_value(json_object_get(ev, "pid"))]++;
    }
    assert_int_equal(per[1], 1);
    assert_int_equal(per[2], 2);
    json_decref(root);
}

/* The owner is SIGKILLed mid-run: the file holds whole events. */
static void test_killed_owner(void **state) {
    (void)state;
    ppt_hang_guard(60);
    char path[128];
    path_of(path, sizeof path, "killed.json");
    fflush(stdout);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        alarm(30);
        pp_pool_t *pool = traced_pool(2, path, 0);
        int ms = 1;
        for (int i = 0; i < 400; i++) {
            void *d = NULL;
            size_t n;
            if (pp_apply(pool, ppt_task_sleep_ms, &ms, sizeof ms, &d, &n) != 0)
                _exit(3);
            free(d);
        }
        raise(SIGKILL);
        _exit(4);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    json_t *root = load_trace(path, false);
    check_lanes(root);
    /* at least the events written before the last periodic flush */
    assert_true(count(root, "X", NULL, "ok") >= 50);
    json_decref(root);
}

/* A trace_file that cannot be opened fails pool creation with its errno;
 * PROCPOOL_TRACE that cannot be opened only warns. No option, no file. */
static void test_bad_path(void **state) {
    (void)state;
    ppt_hang_guard(60);
    char path[128];
    path_of(path, sizeof path, "no/such/dir.json");
    pp_options_t opt;
    pp_options_init(&opt);
    opt.processes = 1;
    opt.trace_file = path;
    pp_pool_t *pool = (pp_pool_t *)1;
    int fds = ppt_count_fds();
    assert_rc(pp_pool_create(&pool, &opt), -ENOENT);
    assert_null(pool);
    assert_int_equal(ppt_count_fds(), fds);
    /* a FIFO nobody reads: an error at once, never a blocked create */
    char fifo[128];
    path_of(fifo, sizeof fifo, "fifo");
    assert_int_equal(mkfifo(fifo, 0600), 0);
    opt.trace_file = fifo;
    assert_rc(pp_pool_create(&pool, &opt), -ENXIO);
    assert_null(pool);
    assert_int_equal(ppt_count_fds(), fds);
    unlink(fifo);
    setenv("PROCPOOL_TRACE", path, 1);
    pool = ppt_pool(1);
    unsetenv("PROCPOOL_TRACE");
    ppt_finish(pool);
    struct stat sb;
    assert_int_equal(stat(path, &sb), -1);
    /* off: nothing is written anywhere */
    pool = ppt_pool(1);
    ppt_finish(pool);
    assert_int_equal(ppt_count_entries(g_dir), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_outcomes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout_terminate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_env_two_pools, setup, teardown),
        cmocka_unit_test_setup_teardown(test_killed_owner, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_path, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
