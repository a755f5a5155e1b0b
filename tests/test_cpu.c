/* test_cpu.c - pp_cpu_count() and the internal cpu.max / env parser. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <sched.h>
#include <stdlib.h>

#include "procpool.h"
#include "helpers.h"

#if defined(__has_include)
#if __has_include("cpu.h")
#include "cpu.h"
#endif
#endif

/* The internal parser (src/cpu.h). Declared here too so that this file
 * compiles whether or not the header exists; the two declarations must agree.
 *   cpu_max_text: the contents of cgroup v2 cpu.max ("max 100000",
 *                 "150000 100000"), NULL when there is no such file;
 *   affinity:     CPUs in the affinity mask;
 *   env:          the value of PROCPOOL_CPUS, NULL when unset. */
int pp__cpu_count_from(const char *cpu_max_text, int affinity, const char *env);

static int affinity_count(void) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) != 0)
        return -1;
    return CPU_COUNT(&set);
}

/* ---- public pp_cpu_count ------------------------------------------------ */

static void test_count_bounds(void **state) {
    (void)state;
    unsetenv("PROCPOOL_CPUS");
    int n = pp_cpu_count();
    int aff = affinity_count();
    assert_true(aff >= 1);
    assert_true(n >= 1);
    if (n > aff)
        fail_msg("pp_cpu_count() = %d exceeds the affinity mask's %d CPUs", n, aff);
    /* stable from call to call */
    assert_int_equal(pp_cpu_count(), n);
}

static void test_count_env_one(void **state) {
    (void)state;
    assert_int_equal(setenv("PROCPOOL_CPUS", "1", 1), 0);
    int n = pp_cpu_count();
    unsetenv("PROCPOOL_CPUS");
    assert_int_equal(n, 1);
}

static void test_count_env_large_does_not_raise(void **state) {
    (void)state;
    unsetenv("PROCPOOL_CPUS");
    int base = pp_cpu_count();
    assert_int_equal(setenv("PROCPOOL_CPUS", "100000", 1), 0);
    int n = pp_cpu_count();
    unsetenv("PROCPOOL_CPUS");
    /* the variable only caps the count */
    assert_int_equal(n, base);
}

static void test_count_env_garbage_ignored(void **state) {
    (void)state;
    unsetenv("PROCPOOL_CPUS");
    int base = pp_cpu_count();
    const char *garbage[] = {"abc", "0", "-3", "", " ", "zero"};
    for (size_t i = 0; i < sizeof garbage / sizeof garbage[0]; i++) {
        assert_int_equal(setenv("PROCPOOL_CPUS", garbage[i], 1), 0);
        int n = pp_cpu_count();
        if (n != base)
            fail_msg("PROCPOOL_CPUS=\"%s\": pp_cpu_count() = %d, expected it ignored (%d)",
                     garbage[i], n, base);
    }
    unsetenv("PROCPOOL_CPUS");
    /* and after unsetting, back to the base value */
    assert_int_equal(pp_cpu_count(), base);
}

/* ---- the internal parser ------------------------------------------------ */

#define CHECK_FROM(text, aff, env, want)                                                           \
    do {                                                                                           \
        int got_ = pp__cpu_count_from((text), (aff), (env));                                       \
        if (got_ != (want))                                                                        \
            fail_msg("pp__cpu_count_from(%s%s%s, %d, %s%s%s) = %d, expected %d",                   \
                     (text) ? "\"" : "", (text) ? (const char *)(text) : "NULL",                   \
                     (text) ? "\"" : "", (aff), (env) ? "\"" : "",                                 \
                     (env) ? (const char *)(env) : "NULL", (env) ? "\"" : "", got_, (want));       \
    } while (0)

static void test_from_no_quota(void **state) {
    (void)state;
    CHECK_FROM("max 100000", 8, NULL, 8);
    CHECK_FROM("max 100000\n", 8, NULL, 8);
    CHECK_FROM(NULL, 8, NULL, 8);
    CHECK_FROM(NULL, 1, NULL, 1);
    CHECK_FROM("max 100000\n", 3, NULL, 3);
}

static void test_from_quota(void **state) {
    (void)state;
    CHECK_FROM("50000 100000", 8, NULL, 1);
    CHECK_FROM("50000 100000\n", 8, NULL, 1);
    CHECK_FROM("100000 100000", 8, NULL, 1);
    CHECK_FROM("150000 100000", 8, NULL, 2);
    CHECK_FROM("150000 100000\n", 8, NULL, 2);
    CHECK_FROM("200000 100000", 8, NULL, 2);
    CHECK_FROM("250000 100000", 8, NULL, 3);
    CHECK_FROM("250000 100000\n", 8, NULL, 3);
    CHECK_FROM("1000 100000", 8, NULL, 1);    /* ceil(0.01) = 1 */
    CHECK_FROM("800000 100000", 8, NULL, 8);  /* exactly the affinity */
    CHECK_FROM("1600000 100000", 8, NULL, 8); /* quota above affinity: affinity wins */
    CHECK_FROM("300000 50000", 8, NULL, 6);   /* other period */
    CHECK_FROM("250000 100000", 2, NULL, 2);  /* affinity below quota */
}

static void test_from_env(void **state) {
    (void)state;
    CHECK_FROM("max 100000", 8, "2", 2);
    CHECK_FROM(NULL, 8, "2", 2);
    CHECK_FROM(NULL, 8, "1", 1);
    CHECK_FROM(NULL, 8, "8", 8);
    CHECK_FROM(NULL, 8, "64", 8);             /* env only caps */
    CHECK_FROM("250000 100000", 8, "2", 2);   /* env below quota */
    CHECK_FROM("250000 100000", 8, "5", 3);   /* quota below env */
    CHECK_FROM("max 100000", 8, "0", 8);      /* ignored */
    CHECK_FROM("max 100000", 8, "abc", 8);    /* ignored */
    CHECK_FROM("max 100000", 8, "-3", 8);     /* ignored */
    CHECK_FROM("max 100000", 8, "", 8);       /* ignored */
    CHECK_FROM("250000 100000", 8, "abc", 3); /* ignored, quota still applies */
}

static void test_from_never_below_one(void **state) {
    (void)state;
    CHECK_FROM(NULL, 0, NULL, 1);
    CHECK_FROM("max 100000", 0, NULL, 1);
    CHECK_FROM("1 100000", 0, NULL, 1);
    CHECK_FROM(NULL, -5, NULL, 1);
    CHECK_FROM(NULL, 0, "0", 1);
    /* garbage in cpu.max: whatever it decides, 1..affinity */
    const char *bad[] = {"garbage",  "",          "100000",   "max", "0 0",
                         "0 100000", "-5 100000", "100000 0", "x y"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int got = pp__cpu_count_from(bad[i], 8, NULL);
        if (got < 1 || got > 8)
            fail_msg("pp__cpu_count_from(\"%s\", 8, NULL) = %d, expected 1..8", bad[i], got);
    }
}

static void test_count_agrees_with_parser(void **state) {
    (void)state;
    /* With no cgroup file at the usual place, pp_cpu_count() must equal the
     * affinity count (nothing else can cap it). With one, the parser's answer
     * on its text is an upper bound check only (the library may locate the
     * cgroup differently). */
    unsetenv("PROCPOOL_CPUS");
    int aff = affinity_count();
    FILE *fp = fopen("/sys/fs/cgroup/cpu.max", "re");
    if (!fp) {
        assert_int_equal(pp_cpu_count(), pp__cpu_count_from(NULL, aff, NULL));
        return;
    }
    char text[128] = {0};
    size_t n = fread(text, 1, sizeof text - 1, fp);
    fclose(fp);
    text[n] = '\0';
    int from = pp__cpu_count_from(text, aff, NULL);
    int got = pp_cpu_count();
    assert_true(from >= 1 && from <= aff);
    if (got > aff)
        fail_msg("pp_cpu_count() = %d > affinity %d", got, aff);
    if (got != from)
        print_message("note: pp_cpu_count() = %d, parser on /sys/fs/cgroup/cpu.max (\"%s\") = %d\n",
                      got, text, from);
}

int main(void) {
    ppt_hang_guard(60);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_count_bounds),
        cmocka_unit_test(test_count_env_one),
        cmocka_unit_test(test_count_env_large_does_not_raise),
        cmocka_unit_test(test_count_env_garbage_ignored),
        cmocka_unit_test(test_from_no_quota),
        cmocka_unit_test(test_from_quota),
        cmocka_unit_test(test_from_env),
        cmocka_unit_test(test_from_never_below_one),
        cmocka_unit_test(test_count_agrees_with_parser),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
