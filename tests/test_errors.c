/* test_errors.c - pp_strerror / pp_err_name. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "procpool.h"
#include "helpers.h"

struct code {
    int value;
    const char *name;
    const char *sentence;
};

static const struct code pp_codes[] = {
#define XX(name, val, msg) {PP_##name, "PP_" #name, msg},
    PP_ERRNO_MAP(XX)
#undef XX
};
#define N_PP_CODES (sizeof pp_codes / sizeof pp_codes[0])

static void test_pp_codes_values(void **state) {
    (void)state;
    /* The enum must match the documented values and all lie in the reserved
     * range, far from errno values. */
    assert_int_equal(N_PP_CODES, 7);
    assert_rc(PP_ECLOSED, -20001);
    assert_rc(PP_ETASK, -20002);
    assert_rc(PP_EWORKER, -20003);
    assert_rc(PP_ETASKTIMEOUT, -20004);
    assert_rc(PP_ECANCELED, -20005);
    assert_rc(PP_EPROTO, -20006);
    assert_rc(PP_ENOAGENTS, -20007);
}

static void test_pp_codes_names(void **state) {
    (void)state;
    for (size_t i = 0; i < N_PP_CODES; i++) {
        const char *name = pp_err_name(pp_codes[i].value);
        assert_non_null(name);
        assert_string_equal(name, pp_codes[i].name);
    }
    assert_string_equal(pp_err_name(PP_ECLOSED), "PP_ECLOSED");
    assert_string_equal(pp_err_name(PP_ETASK), "PP_ETASK");
    assert_string_equal(pp_err_name(PP_EWORKER), "PP_EWORKER");
    assert_string_equal(pp_err_name(PP_ETASKTIMEOUT), "PP_ETASKTIMEOUT");
    assert_string_equal(pp_err_name(PP_ECANCELED), "PP_ECANCELED");
    assert_string_equal(pp_err_name(PP_EPROTO), "PP_EPROTO");
}

static void test_pp_codes_sentences(void **state) {
    (void)state;
    const char *seen[N_PP_CODES];
    for (size_t i = 0; i < N_PP_CODES; i++) {
        const char *s = pp_strerror(pp_codes[i].value);
        assert_non_null(s);
        assert_true(strlen(s) > 0);
        /* the sentence is the documented one */
        assert_string_equal(s, pp_codes[i].sentence);
        /* and is not just the symbol name or "unknown" */
        assert_string_not_equal(s, pp_codes[i].name);
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(s, seen[j]);
        seen[i] = s;
    }
}

static void test_errno_names(void **state) {
    (void)state;
    assert_string_equal(pp_err_name(-EINVAL), "EINVAL");
    assert_string_equal(pp_err_name(-ENOMEM), "ENOMEM");
    assert_string_equal(pp_err_name(-ETIMEDOUT), "ETIMEDOUT");
}

static void test_errno_sentences(void **state) {
    (void)state;
    const int codes[] = {-EINVAL, -ENOMEM, -ETIMEDOUT};
    const char *s[3];
    for (int i = 0; i < 3; i++) {
        s[i] = pp_strerror(codes[i]);
        assert_non_null(s[i]);
        assert_true(strlen(s[i]) > 0);
    }
    assert_string_not_equal(s[0], s[1]);
    assert_string_not_equal(s[0], s[2]);
    assert_string_not_equal(s[1], s[2]);
    /* errno sentences differ from every library sentence */
    for (int i = 0; i < 3; i++)
        for (size_t j = 0; j < N_PP_CODES; j++)
            assert_string_not_equal(s[i], pp_strerror(pp_codes[j].value));
    /* a negative errno is described like strerror() describes it */
    char buf[256];
    const char *want = strerror_r(ETIMEDOUT, buf, sizeof buf);
    if (strcmp(s[2], want) != 0)
        print_message("note: pp_strerror(-ETIMEDOUT) = \"%s\", strerror = \"%s\"\n", s[2], want);
}

static void test_zero(void **state) {
    (void)state;
    assert_string_equal(pp_err_name(0), "OK");
    const char *s = pp_strerror(0);
    assert_non_null(s);
    assert_true(strlen(s) > 0);
    for (size_t j = 0; j < N_PP_CODES; j++)
        assert_string_not_equal(s, pp_strerror(pp_codes[j].value));
    assert_string_not_equal(s, pp_strerror(-EINVAL));
}

static void test_unknown(void **state) {
    (void)state;
    const int unknown[] = {-20000, -20008, -29999, -123456, -99999999};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        const char *name = pp_err_name(unknown[i]);
        assert_non_null(name);
        assert_string_equal(name, "UNKNOWN");
        const char *s = pp_strerror(unknown[i]);
        assert_non_null(s);
        assert_true(strlen(s) > 0);
        for (size_t j = 0; j < N_PP_CODES; j++)
            assert_string_not_equal(s, pp_strerror(pp_codes[j].value));
    }
    /* positive values are not error codes either */
    assert_non_null(pp_err_name(12345));
    assert_non_null(pp_strerror(12345));
    assert_non_null(pp_err_name(-2147483647 - 1));
    assert_non_null(pp_strerror(-2147483647 - 1));
}

static void test_static_strings_stable(void **state) {
    (void)state;
    /* The strings are static: the same pointer (or at least the same text)
     * on repeated calls, and not overwritten by a later call. */
    const char *a = pp_strerror(PP_ETASK);
    const char *b = pp_strerror(PP_EWORKER);
    assert_string_equal(a, "the task function reported a failure");
    assert_string_equal(b, "the worker process died while running the task");
    assert_string_equal(pp_err_name(PP_ETASK), "PP_ETASK");
}

/* The loaded library's version is the header's, as number and as text. */
static void test_version(void **state) {
    (void)state;
    assert_int_equal(pp_version(), PROCPOOL_VERSION_NUMBER);
    assert_int_equal(pp_version() >> 16, PROCPOOL_VERSION_MAJOR);
    assert_int_equal((pp_version() >> 8) & 0xff, PROCPOOL_VERSION_MINOR);
    assert_int_equal(pp_version() & 0xff, PROCPOOL_VERSION_PATCH);
    assert_string_equal(pp_version_string(), PROCPOOL_VERSION_STRING);
    char want[32];
    snprintf(want, sizeof want, "%d.%d.%d", PROCPOOL_VERSION_MAJOR, PROCPOOL_VERSION_MINOR,
             PROCPOOL_VERSION_PATCH);
    assert_string_equal(pp_version_string(), want);
}

int main(void) {
    ppt_hang_guard(60);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pp_codes_values),   cmocka_unit_test(test_pp_codes_names),
        cmocka_unit_test(test_pp_codes_sentences), cmocka_unit_test(test_errno_names),
        cmocka_unit_test(test_errno_sentences),   cmocka_unit_test(test_zero),
        cmocka_unit_test(test_unknown),           cmocka_unit_test(test_static_strings_stable),
        cmocka_unit_test(test_version),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
