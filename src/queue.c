/* queue.c - placeholder: pp_wait and completion queues, being written */
#include "internal.h"
#include <errno.h>
int pp_wait(pp_future_t *const *fs, size_t n, int return_when, double timeout) {
    (void)fs, (void)n, (void)return_when, (void)timeout;
    return -ENOSYS;
}
int pp_queue_create(pp_queue_t **q) { (void)q; return -ENOSYS; }
int pp_queue_add(pp_queue_t *q, pp_future_t *f) { (void)q, (void)f; return -ENOSYS; }
int pp_queue_next(pp_queue_t *q, double timeout, pp_future_t **f) { (void)q, (void)timeout, (void)f; return -ENOSYS; }
int pp_queue_fd(const pp_queue_t *q) { (void)q; return -ENOSYS; }
void pp_queue_destroy(pp_queue_t *q) { (void)q; }
