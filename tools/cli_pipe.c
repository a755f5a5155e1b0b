/*
 * cli_pipe.c - record boundaries for --pipe and --pipe-part.
 *
 * A boundary is where --recend ends and --recstart begins, so it is found
 * as one pattern, recend followed by recstart. The searches are linear in
 * the bytes they look at: forwards with memmem (glibc's two-way search),
 * backwards with memrchr on the pattern's first byte; the caller keeps
 * where a forward search stopped (*resume), so data that arrives in pieces
 * is looked at once, however long a record is.
 */
#include <string.h>
#include <unistd.h>

#include "cli.h"

void recsep_init(recsep_t *s, const char *recend, size_t rel, const char *recstart, size_t rsl) {
    s->pat = xmalloc(rel + rsl + 1);
    memcpy(s->pat, recend, rel);
    memcpy(s->pat + rel, recstart, rsl);
    s->pat[rel + rsl] = 0;
    s->plen = rel + rsl;
    s->rel = rel;
}

size_t rec_last(const recsep_t *s, const char *d, size_t len, size_t hi) {
    if (s->plen == 0)
        return hi < len ? hi : len;
    if (len < s->plen)
        return 0;
    /* pattern starts st with 1 <= st + rel <= hi and st + plen <= len */
    size_t lo_st = s->rel ? 0 : 1;
    if (hi < s->rel)
        return 0;
    size_t hi_st = hi - s->rel;
    if (hi_st > len - s->plen)
        hi_st = len - s->plen;
    if (hi_st < lo_st)
        return 0;
    size_t n = hi_st + 1; /* candidate starts: [lo_st, n) */
    for (;;) {
        const char *p = memrchr(d + lo_st, (unsigned char)s->pat[0], n - lo_st);
        if (!p)
            return 0;
        size_t st = (size_t)(p - d);
        if (memcmp(p + 1, s->pat + 1, s->plen - 1) == 0)
            return st + s->rel;
        n = st;
        if (n <= lo_st)
            return 0;
    }
}

size_t rec_next(const recsep_t *s, const char *d, size_t len, size_t from, size_t *resume) {
    if (from < 1)
        from = 1;
    if (s->plen == 0) {
        if (from <= len)
            return from;
        if (resume)
            *resume = from;
        return 0;
    }
    size_t st = from >= s->rel ? from - s->rel : 0;
    if (st + s->plen <= len) {
        const char *p = s->plen == 1 ? memchr(d + st, (unsigned char)s->pat[0], len - st)
                                     : memmem(d + st, len - st, s->pat, s->plen);
        if (p)
            return (size_t)(p - d) + s->rel;
    }
    if (resume) { /* the starts not yet tried: from len - plen + 1 on */
        size_t next = len + 1 >= s->plen ? len + 1 - s->plen + s->rel : from;
        *resume = next > from ? next : from;
    }
    return 0;
}

uint64_t part_boundary(int fd, uint64_t pos, uint64_t size, const recsep_t *s) {
    static char *buf;
    const size_t cap = 1u << 20;
    if (pos >= size)
        return size;
    if (s->plen == 0)
        return pos;
    if (!buf)
        buf = xmalloc(cap);
    if (s->plen > cap / 2)
        return size;
    uint64_t w = pos; /* buf[0..have) is the file from w on */
    size_t have = 0;
    for (;;) {
        ssize_t n = pread(fd, buf + have, cap - have, (off_t)(w + have));
        if (n <= 0)
            return size;
        have += (size_t)n;
        const char *p = s->plen == 1 ? memchr(buf, (unsigned char)s->pat[0], have)
                                     : memmem(buf, have, s->pat, s->plen);
        if (p)
            return w + (uint64_t)(p - buf) + s->rel;
        if (have < s->plen)
            continue;
        size_t keep = s->plen - 1; /* a pattern may straddle the windows */
        memmove(buf, buf + have - keep, keep);
        w += have - keep;
        have = keep;
    }
}

uint64_t part_pos(uint64_t off, size_t *n) {
    uint64_t ring = g_wcfg.part_ring;
    if (!ring)
        return off;
    uint64_t pos = off % ring;
    if (*n > ring - pos)
        *n = (size_t)(ring - pos);
    return pos;
}

ssize_t part_pread(void *buf, size_t n, uint64_t off) {
    uint64_t pos = part_pos(off, &n);
    return pread(g_wcfg.part_fd, buf, n, (off_t)pos);
}
