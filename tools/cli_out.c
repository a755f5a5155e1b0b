/*
 * cli_out.c - a job's output past CLI_SPILL_AT bytes, kept on disk.
 *
 * GNU parallel keeps every job's output in temporary files; procpool keeps
 * it in memory up to CLI_SPILL_AT bytes a stream, then the worker appends
 * the rest to a file in a directory private to the run (made by the
 * parent in $TMPDIR, else /tmp). The job's result names the file; the
 * parent copies it to its stdout or stderr and removes it. The directory
 * goes when the run ends, also on SIGINT, SIGTERM, a failed write or a
 * fatal error (only a SIGKILL leaves it, as with GNU parallel's files).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

static char spill_dir[200];
static pid_t spill_owner;

int cli_spill_dir_make(void) {
    const char *t = getenv("TMPDIR");
    if (!t || !*t)
        t = "/tmp";
    snprintf(spill_dir, sizeof spill_dir, "%.150s/procpool.XXXXXX", t);
    if (!mkdtemp(spill_dir)) {
        spill_dir[0] = 0;
        return -1;
    }
    spill_owner = getpid();
    g_wcfg.spill_dir = spill_dir;
    return 0;
}

void cli_spill_dir_remove(void) {
    if (!spill_dir[0] || getpid() != spill_owner)
        return;
    int dfd = open(spill_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)))
            if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
                unlinkat(dfd, e->d_name, 0);
        closedir(d);
    } else if (dfd >= 0) {
        close(dfd);
    }
    rmdir(spill_dir);
    spill_dir[0] = 0;
}

static int write_full(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int spill_put(spill_t *s, const char *p, size_t n, const sbuf_t *tag) {
    if (s->fd < 0) {
        static unsigned counter;
        if (!g_wcfg.spill_dir)
            return -ENOENT;
        snprintf(s->path, sizeof s->path, "%s/%d.%u", g_wcfg.spill_dir, (int)getpid(), counter++);
        s->fd = open(s->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (s->fd < 0)
            return -errno;
        s->bol = true;
    }
    if (!tag)
        return write_full(s->fd, p, n);
    /* --tag: the tag before each line, the lines written as they are */
    size_t i = 0;
    while (i < n) {
        if (s->bol) {
            int rc = write_full(s->fd, tag->p, tag->len);
            if (rc < 0)
                return rc;
        }
        const char *nl = memchr(p + i, '\n', n - i);
        size_t e = nl ? (size_t)(nl - p) + 1 : n;
        int rc = write_full(s->fd, p + i, e - i);
        if (rc < 0)
            return rc;
        s->bol = nl != NULL;
        i = e;
    }
    return 0;
}

void spill_reset(spill_t *s) {
    if (s->fd < 0)
        return;
    if (ftruncate(s->fd, 0) < 0 || lseek(s->fd, 0, SEEK_SET) < 0)
        spill_drop(s);
    s->bol = true;
}

void spill_close(spill_t *s) {
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
}

void spill_drop(spill_t *s) {
    if (s->fd >= 0)
        close(s->fd);
    if (s->path[0])
        unlink(s->path);
    s->fd = -1;
    s->path[0] = 0;
}

int spill_copy(int fd, const char *path, size_t plen) {
    char p[256];
    snprintf(p, sizeof p, "%.*s", (int)plen, path);
    int in = open(p, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return 1 << 16 | errno;
    unlink(p);
    static char *buf;
    const size_t cap = 1u << 20;
    bool use_sendfile = true;
    int rc = 0;
    for (;;) {
        if (use_sendfile) {
            ssize_t n = sendfile(fd, in, NULL, cap);
            if (n > 0)
                continue;
            if (n == 0)
                break;
            if (errno == EINTR || errno == EAGAIN)
                continue;
            if (errno != EINVAL && errno != ENOSYS) {
                rc = -errno;
                break;
            }
            use_sendfile = false; /* fd takes no sendfile: copy it */
        }
        if (!buf)
            buf = xmalloc(cap);
        ssize_t n = read(in, buf, cap);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = 1 << 16 | errno;
            break;
        }
        if (n == 0)
            break;
        if ((rc = write_full(fd, buf, (size_t)n)) < 0)
            break;
    }
    close(in);
    return rc;
}
