/* submit.c - placeholder: the 0.2 calls, being written */
#include "internal.h"
#include <errno.h>
#include <string.h>
void pp_task_opts_init(pp_task_opts_t *o) {
    if (!o)
        return;
    memset(o, 0, sizeof *o);
    o->retries = -1;
}
int pp_submit(pp_pool_t *pool, pp_task_fn fn, const void *arg, size_t arg_len,
              const pp_task_opts_t *opts, pp_future_t **future) {
    (void)pool, (void)fn, (void)arg, (void)arg_len, (void)opts, (void)future;
    return -ENOSYS;
}
int pp_apply_msg(pp_pool_t *pool, pp_task_fn fn, const void *arg, size_t arg_len, void **result,
                 size_t *result_len, char **msg) {
    (void)pool, (void)fn, (void)arg, (void)arg_len, (void)result, (void)result_len, (void)msg;
    return -ENOSYS;
}
int pp_future_cancel(pp_future_t *f) { (void)f; return 0; }
int pp_future_running(const pp_future_t *f) { (void)f; return 0; }
int pp_pool_stats(pp_pool_t *pool, pp_stats_t *st) { (void)pool, (void)st; return -ENOSYS; }
