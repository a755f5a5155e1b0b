/* test_errors.c - pp_strerror / pp_err_name. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
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

/* ---- every code the documentation names is known --------------------------- */

/* The errno values a reader of the documentation may meet, by name. A code
 * the header or a man page documents that is missing here fails the test
 * below: add it here, and to src/error.c if pp_err_name does not know it. */
static const struct {
    int value;
    const char *name;
} errnos[] = {
#define E_(x)                                                                                      \
    { x, #x }
    E_(EINVAL),  E_(ENOMEM),       E_(ETIMEDOUT),  E_(EBUSY),           E_(EDEADLK),
    E_(ENOTSUP), E_(EAGAIN),       E_(EPERM),      E_(ENOENT),          E_(EMFILE),
    E_(ENFILE),  E_(ENOSPC),       E_(ECHILD),     E_(ESRCH),           E_(EINTR),
    E_(EIO),     E_(EPIPE),        E_(EFAULT),     E_(ERANGE),          E_(EOVERFLOW),
    E_(ENOSYS),  E_(EBADF),        E_(ECONNRESET), E_(E2BIG),           E_(ENOEXEC),
    E_(EACCES),  E_(EFBIG),        E_(EOWNERDEAD), E_(ENOTRECOVERABLE), E_(ECANCELED),
    E_(ENOBUFS), E_(ETOOMANYREFS), E_(ENODEV),     E_(ENAMETOOLONG),    E_(ELOOP),
    E_(ETXTBSY), E_(EPROTO),       E_(EISDIR),     E_(EROFS),           E_(ENXIO),
#undef E_
};

static int errno_by_name(const char *name) {
    for (size_t i = 0; i < sizeof errnos / sizeof errnos[0]; i++)
        if (strcmp(errnos[i].name, name) == 0)
            return errnos[i].value;
    return 0;
}

/* pp_err_name and pp_strerror know the code -name (an errno) or name (PP_E*). */
static void check_known(const char *name, const char *where) {
    if (strncmp(name, "PP_E", 4) == 0) {
        int v = 0;
        for (size_t i = 0; i < N_PP_CODES; i++)
            if (strcmp(pp_codes[i].name, name) == 0)
                v = pp_codes[i].value;
        if (v == 0)
            fail_msg("%s documents %s, which PP_ERRNO_MAP does not define", where, name);
        assert_string_equal(pp_err_name(v), name);
        return;
    }
    int e = errno_by_name(name);
    if (e == 0)
        fail_msg("%s documents -%s, which this test's errno table lacks", where, name);
    if (strcmp(pp_err_name(-e), name) != 0)
        fail_msg("%s documents -%s, but pp_err_name(-%s) is \"%s\"", where, name, name,
                 pp_err_name(-e));
    if (strcmp(pp_strerror(-e), "unknown error") == 0)
        fail_msg("%s documents -%s, but pp_strerror does not know it", where, name);
}

/* Every "-EXXX" and "PP_EXXX" in the file (groff's "\-EXXX" too). Returns
 * how many it checked. */
static int check_file(const char *path) {
    FILE *fp = fopen(path, "re");
    if (!fp)
        fail_msg("cannot read %s: %s", path, strerror(errno));
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof line, fp)) {
        for (char *p = line; *p; p++) {
            bool minus = p[0] == '-' && p[1] == 'E';
            bool own = strncmp(p, "PP_E", 4) == 0 && (p == line || !isalnum((unsigned char)p[-1]));
            if (!minus && !own)
                continue;
            char *s = minus ? p + 1 : p, *q = s + (own ? 4 : 1);
            while (isupper((unsigned char)*q) || isdigit((unsigned char)*q))
                q++;
            if (q - s < (own ? 6 : 3) || *q == '_' || islower((unsigned char)*q))
                continue;
            char name[64];
            snprintf(name, sizeof name, "%.*s", (int)(q - s), s);
            p = q - 1;
            if (strcmp(name, "PP_EXTERN") == 0)
                continue; /* the export macro, not a code */
            check_known(name, path);
            n++;
        }
    }
    fclose(fp);
    return n;
}

/* The source tree, from this file's path (tests/test_errors.c). */
static void source_dir(char *buf, size_t n) {
    snprintf(buf, n, "%s", __FILE__);
    char *slash = strrchr(buf, '/');
    if (slash)
        *slash = '\0';
    else
        snprintf(buf, n, ".");
    strncat(buf, "/..", n - strlen(buf) - 1);
}

static void test_documented_codes_known(void **state) {
    (void)state;
    char dir[4096], path[4400];
    source_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/include/procpool.h", dir);
    int n = check_file(path);
    print_message("%d error codes named in the header, all known\n", n);
    assert_true(n > 50); /* the scan found the Errors lists at all */
    snprintf(path, sizeof path, "%s/man/man3", dir);
    DIR *d = opendir(path);
    if (!d)
        fail_msg("cannot read %s: %s", path, strerror(errno));
    struct dirent *e;
    int pages = 0;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len < 3 || strcmp(e->d_name + len - 2, ".3") != 0)
            continue;
        char page[4700];
        snprintf(page, sizeof page, "%s/%s", path, e->d_name);
        n += check_file(page);
        pages++;
    }
    closedir(d);
    assert_true(pages > 10);
}

/* The codes the library returns that pp_err_name once called "UNKNOWN":
 * pp_mutex_lock's -EOWNERDEAD, the memfd limit's -EFBIG, and the rest of
 * the documented errno values. */
static void test_returned_errnos_known(void **state) {
    (void)state;
    assert_string_equal(pp_err_name(-EOWNERDEAD), "EOWNERDEAD");
    assert_string_equal(pp_err_name(EOWNERDEAD), "EOWNERDEAD");
    assert_string_equal(pp_err_name(-EFBIG), "EFBIG");
    assert_string_equal(pp_err_name(-ENOTRECOVERABLE), "ENOTRECOVERABLE");
    const int codes[] = {-EOWNERDEAD, -EFBIG,     -EMFILE, -ENFILE,  -ECHILD, -EAGAIN,
                         -ENOSYS,     -EOVERFLOW, -EIO,    -EDEADLK, -EBUSY,  -EPERM,
                         -ENOTSUP,    -ENOENT,    -EACCES, -ENOEXEC, -E2BIG,  -ENOTRECOVERABLE};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        const char *name = pp_err_name(codes[i]);
        assert_string_not_equal(name, "UNKNOWN");
        const char *s = pp_strerror(codes[i]);
        assert_string_not_equal(s, "unknown error");
        /* each has a sentence of its own */
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(s, pp_strerror(codes[j]));
        for (size_t j = 0; j < N_PP_CODES; j++)
            assert_string_not_equal(s, pp_strerror(pp_codes[j].value));
    }
    /* the errno EPROTO and the library's PP_EPROTO are told apart */
    assert_string_equal(pp_err_name(-EPROTO), "EPROTO");
    assert_string_equal(pp_err_name(PP_EPROTO), "PP_EPROTO");
    assert_string_not_equal(pp_strerror(-EPROTO), pp_strerror(PP_EPROTO));
}

int main(void) {
    ppt_hang_guard(60);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pp_codes_values),
        cmocka_unit_test(test_pp_codes_names),
        cmocka_unit_test(test_pp_codes_sentences),
        cmocka_unit_test(test_errno_names),
        cmocka_unit_test(test_errno_sentences),
        cmocka_unit_test(test_zero),
        cmocka_unit_test(test_unknown),
        cmocka_unit_test(test_static_strings_stable),
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_documented_codes_known),
        cmocka_unit_test(test_returned_errnos_known),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
