/*
 * shm.c - shared memory at the same address in the parent and every
 * worker, and a robust process-shared mutex.
 *
 * DESIGN: pp_pool_create reserves one large range (opt.shm_size, default
 * twice the physical memory, or less under RLIMIT_AS or RLIMIT_FSIZE)
 * backed by an anonymous memfd, mapped
 * MAP_SHARED|MAP_NORESERVE before the zygote and any worker is forked, so
 * every process of the pool inherits it at the same address; pages cost
 * memory only once written. Nothing has a name in /dev/shm, so nothing can
 * leak when a process is killed. Children of other pools unmap it
 * (registry.c).
 *
 * The allocator lives in the parent only (workers never allocate): a
 * sorted array of free extents, first fit, blocks of 64-byte granules
 * (page-aligned from 64 KiB up), and a sorted array of live blocks for
 * pp_shm_free. Free memory is kept zero: freeing punches the whole pages of
 * the coalesced free extent out of the memfd (FALLOC_FL_PUNCH_HOLE, which
 * also returns them to the system) and clears the rest of the block, so an
 * allocation never needs clearing. One mutex guards it.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#define GRANULE 64u
#define PAGE 4096u
#define BIG (64u * 1024u)
#define MAX_RESERVE ((size_t)1 << 40)

typedef struct ext {
    size_t off, len;
} ext_t;

struct pp__shm {
    pthread_mutex_t lock;
    unsigned char *base;
    size_t size;
    int fd;
    ext_t *free_; /* sorted by off, coalesced */
    size_t nfree, capfree;
    ext_t *used; /* sorted by off */
    size_t nused, capused;
};

/* Bytes of address space this process maps now (VmSize), or 0. */
static size_t mapped_now(void) {
    int saved = errno;
    size_t r = 0;
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        char buf[128];
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (n > 0) {
            buf[n] = 0;
            r = (size_t)strtoull(buf, NULL, 10) * (size_t)sysconf(_SC_PAGESIZE);
        }
    }
    errno = saved;
    return r;
}

/* The default range: twice the RAM, but never more than the limits allow.
 * Under RLIMIT_AS (which MAP_NORESERVE does not escape) it takes half of
 * the address space still free, leaving the rest to the program, thread
 * stacks and malloc arenas. RLIMIT_DATA does not apply: the mapping is
 * shared. RLIMIT_FSIZE caps it: the memfd behind it is a file. */
static size_t default_reserve(void) {
    long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
    size_t r = (pages > 0 && psz > 0) ? (size_t)pages * (size_t)psz * 2 : ((size_t)16 << 30);
    if (r > MAX_RESERVE)
        r = MAX_RESERVE;
    struct rlimit as;
    if (getrlimit(RLIMIT_AS, &as) == 0 && as.rlim_cur != RLIM_INFINITY) {
        size_t used = mapped_now();
        size_t spare = (size_t)as.rlim_cur > used ? ((size_t)as.rlim_cur - used) / 2 : 0;
        if (r > spare)
            r = spare;
    }
    if (r > pp__fsize_max()) /* the memfd is a file: RLIMIT_FSIZE bounds it */
        r = (size_t)pp__fsize_max();
    r &= ~(size_t)(PAGE - 1);
    return r ? r : PAGE;
}

int pp__shm_create(pp_pool_t *pool) {
    size_t size = pool->opt.shm_size ? pool->opt.shm_size : default_reserve();
    size = (size + PAGE - 1) & ~(size_t)(PAGE - 1);
    pp__shm_t *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->fd = -1;
    int err = s->fd = pp__memfd("procpool-shm", size, false);
    if (err < 0)
        goto fail;
    s->base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, s->fd, 0);
    if (s->base == MAP_FAILED) {
        err = -errno;
        s->base = NULL;
        goto fail;
    }
    s->size = size;
    s->free_ = malloc(sizeof *s->free_ * 16);
    if (!s->free_) {
        err = -ENOMEM;
        goto fail;
    }
    s->capfree = 16;
    s->nfree = 1;
    s->free_[0] = (ext_t){0, size};
    pthread_mutex_init(&s->lock, NULL);
    pool->shm = s;
    return 0;
fail:
    if (s->base)
        munmap(s->base, size);
    pp__close(&s->fd);
    free(s->free_);
    free(s);
    return err;
}

void pp__shm_destroy(pp_pool_t *pool) {
    pp__shm_t *s = pool->shm;
    if (!s)
        return;
    pool->shm = NULL;
    munmap(s->base, s->size);
    pp__close(&s->fd);
    free(s->free_);
    free(s->used);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

/* For fork hygiene: what a child of another pool must drop. */
void pp__shm_forget(pp__shm_t *s, const int *keep, int nkeep) {
    (void)keep, (void)nkeep;
    if (!s)
        return;
    if (s->base)
        munmap(s->base, s->size);
    if (s->fd >= 0)
        close(s->fd);
}

int pp__shm_fd(const pp__shm_t *s) { return s ? s->fd : -1; }
void *pp__shm_base(const pp__shm_t *s) { return s ? s->base : NULL; }
size_t pp__shm_size(const pp__shm_t *s) { return s ? s->size : 0; }

bool pp__shm_has(const pp_pool_t *pool, const void *p, size_t len) {
    const pp__shm_t *s = pool->shm;
    if (!s || !p)
        return false;
    uintptr_t a = (uintptr_t)p, b = (uintptr_t)s->base;
    return a >= b && a - b <= s->size && len <= s->size - (a - b);
}

static int grow(ext_t **a, size_t *cap, size_t need) {
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap * 2 : 16;
    while (c < need)
        c *= 2;
    ext_t *n = realloc(*a, c * sizeof *n);
    if (!n)
        return -ENOMEM;
    *a = n;
    *cap = c;
    return 0;
}

/* Where a block at off is (or would go) in the sorted live-block array. */
static size_t used_index(const pp__shm_t *s, size_t off) {
    size_t lo = 0, hi = s->nused;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (s->used[mid].off < off)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

void *pp_shm_alloc(pp_pool_t *pool, size_t size) {
    if (!pool || size == 0) {
        errno = EINVAL;
        return NULL;
    }
    if (pp__pool_foreign(pool)) {
        errno = ECHILD;
        return NULL;
    }
    if (pool->remote) {
        errno = ENOTSUP; /* the workers are on other machines */
        return NULL;
    }
    pp__shm_t *s = pool->shm;
    if (!s || size > s->size) {
        errno = ENOMEM;
        return NULL;
    }
    size_t align = size >= BIG ? PAGE : GRANULE;
    size_t len = (size + align - 1) & ~(align - 1);
    pthread_mutex_lock(&s->lock);
    void *ret = NULL;
    if (grow(&s->used, &s->capused, s->nused + 1) < 0 ||
        grow(&s->free_, &s->capfree, s->nfree + 1) < 0)
        goto out;
    for (size_t i = 0; i < s->nfree; i++) {
        ext_t *e = &s->free_[i];
        size_t start = (e->off + align - 1) & ~(align - 1);
        if (start - e->off > e->len || e->len - (start - e->off) < len)
            continue;
        size_t head = start - e->off, tail = e->len - head - len;
        /* split the extent into [head][block][tail] */
        if (head && tail) {
            memmove(&s->free_[i + 2], &s->free_[i + 1], (s->nfree - i - 1) * sizeof *e);
            s->free_[i] = (ext_t){e->off, head};
            s->free_[i + 1] = (ext_t){start + len, tail};
            s->nfree++;
        } else if (head) {
            e->len = head;
        } else if (tail) {
            e->off = start + len;
            e->len = tail;
        } else {
            memmove(&s->free_[i], &s->free_[i + 1], (s->nfree - i - 1) * sizeof *e);
            s->nfree--;
        }
        /* record the block, sorted */
        size_t lo = used_index(s, start);
        memmove(&s->used[lo + 1], &s->used[lo], (s->nused - lo) * sizeof *s->used);
        s->used[lo] = (ext_t){start, len};
        s->nused++;
        ret = s->base + start;
        break;
    }
out:
    pthread_mutex_unlock(&s->lock);
    if (!ret)
        errno = ENOMEM;
    return ret;
}

/* Zero [off, off+len) of the memfd: punch the whole pages, clear the edges. */
static void clear_range(pp__shm_t *s, size_t off, size_t len, size_t ext_off, size_t ext_len) {
    /* pages wholly inside the coalesced free extent can go back to the system */
    size_t p0 = (ext_off + PAGE - 1) & ~(size_t)(PAGE - 1);
    size_t p1 = (ext_off + ext_len) & ~(size_t)(PAGE - 1);
    size_t end = off + len;
    if (p1 > p0) {
        size_t a = off > p0 ? off & ~(size_t)(PAGE - 1) : p0;
        if (a < p0)
            a = p0;
        size_t b = (end + PAGE - 1) & ~(size_t)(PAGE - 1);
        if (b > p1)
            b = p1;
        if (b > a && fallocate(s->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)a,
                               (off_t)(b - a)) == 0) {
            if (off < a)
                memset(s->base + off, 0, a - off);
            if (end > b)
                memset(s->base + b, 0, end - b);
            return;
        }
    }
    memset(s->base + off, 0, len);
}

int pp_shm_free(pp_pool_t *pool, void *p) {
    if (!p)
        return 0;
    if (!pool || !pool->shm || !pp__shm_has(pool, p, 1))
        return -EINVAL;
    pp__shm_t *s = pool->shm;
    size_t off = (size_t)((unsigned char *)p - s->base);
    pthread_mutex_lock(&s->lock);
    size_t lo = used_index(s, off);
    if (lo == s->nused || s->used[lo].off != off) {
        pthread_mutex_unlock(&s->lock);
        return -EINVAL;
    }
    if (grow(&s->free_, &s->capfree, s->nfree + 1) < 0) {
        pthread_mutex_unlock(&s->lock);
        return -ENOMEM;
    }
    size_t len = s->used[lo].len;
    memmove(&s->used[lo], &s->used[lo + 1], (s->nused - lo - 1) * sizeof *s->used);
    s->nused--;
    /* insert into the free list and coalesce with its neighbours */
    size_t i = 0;
    while (i < s->nfree && s->free_[i].off < off)
        i++;
    memmove(&s->free_[i + 1], &s->free_[i], (s->nfree - i) * sizeof *s->free_);
    s->free_[i] = (ext_t){off, len};
    s->nfree++;
    if (i + 1 < s->nfree && s->free_[i].off + s->free_[i].len == s->free_[i + 1].off) {
        s->free_[i].len += s->free_[i + 1].len;
        memmove(&s->free_[i + 1], &s->free_[i + 2], (s->nfree - i - 2) * sizeof *s->free_);
        s->nfree--;
    }
    if (i > 0 && s->free_[i - 1].off + s->free_[i - 1].len == s->free_[i].off) {
        s->free_[i - 1].len += s->free_[i].len;
        memmove(&s->free_[i], &s->free_[i + 1], (s->nfree - i - 1) * sizeof *s->free_);
        s->nfree--;
        i--;
    }
    clear_range(s, off, len, s->free_[i].off, s->free_[i].len);
    pthread_mutex_unlock(&s->lock);
    return 0;
}

int pp_shm_contains(const pp_pool_t *pool, const void *p, size_t len) {
    if (!pool)
        return -EINVAL;
    return pp__shm_has(pool, p, len) ? 1 : 0;
}

/* ---------------------------------------------------------------- */
/* robust process-shared mutex                                       */
/* ---------------------------------------------------------------- */

_Static_assert(sizeof(pthread_mutex_t) <= sizeof(pp_mutex_t), "pp_mutex_t too small");

int pp_mutex_init(pp_mutex_t *m) {
    if (!m)
        return -EINVAL;
    pthread_mutexattr_t a;
    int r = pthread_mutexattr_init(&a);
    if (r)
        return -r;
    r = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    if (!r)
        r = pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    if (!r)
        r = pthread_mutex_init((pthread_mutex_t *)(void *)m, &a);
    pthread_mutexattr_destroy(&a);
    return -r;
}

int pp_mutex_lock(pp_mutex_t *m) {
    if (!m)
        return -EINVAL;
    pthread_mutex_t *mu = (pthread_mutex_t *)(void *)m;
    int r = pthread_mutex_lock(mu);
    if (r == EOWNERDEAD) {
        pthread_mutex_consistent(mu);
        return -EOWNERDEAD;
    }
    return -r;
}

int pp_mutex_unlock(pp_mutex_t *m) {
    if (!m)
        return -EINVAL;
    return -pthread_mutex_unlock((pthread_mutex_t *)(void *)m);
}

void pp_mutex_destroy(pp_mutex_t *m) {
    if (m)
        pthread_mutex_destroy((pthread_mutex_t *)(void *)m);
}
