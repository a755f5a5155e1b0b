/*
 * fnaddr.c - naming a function (or a static address) so that another
 * execution of the same program finds it: the spawn start method and the
 * MPI agents, where a pointer means nothing (ASLR).
 *
 * DESIGN: an address travels as (object key, offset from the object's
 * load address). The key is the first 8 bytes of the object's GNU build id
 * (or a hash of its path when it has none); the receiver finds the loaded
 * object with the same key, so a rebuilt binary or library is a clear
 * error ("no object with build id ..."), never a jump into the wrong code.
 * Encoding runs in the parent (any thread: a small cache under a mutex);
 * decoding runs in the worker or agent (one thread: a one-entry cache).
 * Both walk the loaded objects with dl_iterate_phdr.
 */
#include "worker.h"

#include <elf.h>
#include <link.h>
#include <pthread.h>
#include <string.h>

/* ---------------------------------------------------------------- */
/* object keys                                                       */
/* ---------------------------------------------------------------- */

static uint64_t fnv(const void *p, size_t n) {
    const unsigned char *c = p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ c[i]) * 1099511628211ull;
    return h ? h : 1;
}

static uint64_t object_key(const struct dl_phdr_info *info) {
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_NOTE)
            continue;
        const unsigned char *p = (const unsigned char *)(info->dlpi_addr + ph->p_vaddr);
        const unsigned char *end = p + ph->p_memsz;
        while (p + sizeof(ElfW(Nhdr)) <= end) {
            const ElfW(Nhdr) *nh = (const ElfW(Nhdr) *)(const void *)p;
            size_t name = (nh->n_namesz + 3) & ~3u, desc = (nh->n_descsz + 3) & ~3u;
            const unsigned char *np = p + sizeof *nh;
            if (nh->n_type == NT_GNU_BUILD_ID && nh->n_namesz == 4 && memcmp(np, "GNU", 4) == 0 &&
                nh->n_descsz >= 8) {
                uint64_t k;
                memcpy(&k, np + name, 8);
                return k ? k : 1;
            }
            p = np + name + desc;
        }
    }
    const char *n = info->dlpi_name ? info->dlpi_name : "";
    return fnv(n, strlen(n));
}

struct find {
    uintptr_t addr; /* in: the address to place */
    uint64_t key;   /* in (lookup by key) or out */
    uintptr_t base; /* out */
    bool found;
};

static int find_by_addr(struct dl_phdr_info *info, size_t size, void *arg) {
    (void)size;
    struct find *f = arg;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_LOAD && f->addr >= lo && f->addr - lo < ph->p_memsz) {
            f->key = object_key(info);
            f->base = info->dlpi_addr;
            f->found = true;
            return 1;
        }
    }
    return 0;
}

static int find_by_key(struct dl_phdr_info *info, size_t size, void *arg) {
    (void)size;
    struct find *f = arg;
    if (object_key(info) != f->key)
        return 0;
    f->base = info->dlpi_addr;
    f->found = true;
    return 1;
}

/* Name an address of this process as (key, offset); false if no loaded
 * object contains it. A small cache makes repeated task functions cheap. */
static pthread_mutex_t cache_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
    uintptr_t addr;
    uint64_t key, off;
} cache[64];

bool pp__addr_encode(const void *addr, uint64_t *key, uint64_t *off) {
    uintptr_t a = (uintptr_t)addr;
    size_t slot = (a >> 4) % 64;
    pthread_mutex_lock(&cache_mu);
    if (a && cache[slot].addr == a) {
        *key = cache[slot].key;
        *off = cache[slot].off;
        pthread_mutex_unlock(&cache_mu);
        return true;
    }
    pthread_mutex_unlock(&cache_mu);
    struct find f = {.addr = a};
    if (!a || !dl_iterate_phdr(find_by_addr, &f) || !f.found)
        return false;
    *key = f.key;
    *off = a - f.base;
    pthread_mutex_lock(&cache_mu);
    cache[slot].addr = a;
    cache[slot].key = f.key;
    cache[slot].off = *off;
    pthread_mutex_unlock(&cache_mu);
    return true;
}

/* In a worker: the address named (key, offset), or NULL. */
void *pp__addr_decode(uint64_t key, uint64_t off) {
    static uint64_t last_key;
    static uintptr_t last_base;
    if (key && key == last_key)
        return (void *)(last_base + off);
    struct find f = {.key = key};
    if (!dl_iterate_phdr(find_by_key, &f) || !f.found)
        return NULL;
    last_key = key;
    last_base = f.base;
    return (void *)(f.base + off);
}
