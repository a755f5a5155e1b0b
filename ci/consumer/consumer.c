/* consumer.c - proves an installed procpool can be found, linked and run. */
#include <stdio.h>
#include <stdlib.h>
#include "procpool.h"

static int twice(const void *arg, size_t len, pp_buf_t *out) {
    int v = len == sizeof v ? 2 * *(const int *)arg : -1;
    return pp_buf_append(out, &v, sizeof v);
}

int main(void) {
    pp_pool_t *pool;
    pp_options_t opt;
    void *res = NULL;
    size_t len = 0;
    int x = 21, rc;

    pp_options_init(&opt);
    opt.processes = 2;
    rc = pp_pool_create(&pool, &opt);
    if (rc != 0) {
        fprintf(stderr, "consumer: pp_pool_create: %s\n", pp_strerror(rc));
        return 1;
    }
    rc = pp_apply(pool, twice, &x, sizeof x, &res, &len);
    if (rc != 0 || len != sizeof(int) || *(int *)res != 42) {
        fprintf(stderr, "consumer: pp_apply: %s (%s)\n", pp_strerror(rc), pp_err_name(rc));
        pp_pool_destroy(pool);
        return 1;
    }
    if (pp_version() != PROCPOOL_VERSION_NUMBER) {
        fprintf(stderr, "consumer: built with procpool %s, loaded %s\n", PROCPOOL_VERSION_STRING,
                pp_version_string());
        free(res);
        pp_pool_destroy(pool);
        return 1;
    }
    printf("consumer: procpool %s, %d cpus, twice(%d) = %d\n", pp_version_string(), pp_cpu_count(),
           x, *(int *)res);
    free(res);
    pp_pool_close(pool);
    pp_pool_join(pool);
    pp_pool_destroy(pool);
    return 0;
}
