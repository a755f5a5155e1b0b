/*
 * proc_util.h - reading /proc for the tests and the soak benchmark:
 * a process's state, parent and start time, a process's children, and a
 * pool's live workers.
 * Static inline only; no cmocka, so bench/ may include it too.
 */
#ifndef PP_TEST_PROC_UTIL_H
#define PP_TEST_PROC_UTIL_H

#include <dirent.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

static inline int ppt_is_number(const char *s) {
    if (!*s)
        return 0;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return 0;
    return 1;
}

/* Read a process's state letter and start time (field 22) from
 * /proc/<pid>/stat. Returns 0, or -1 when the process does not exist. */
static inline int ppt_proc_stat(pid_t pid, char *state, unsigned long long *starttime,
                                pid_t *ppid) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *fp = fopen(path, "re");
    if (!fp)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    p += 2; /* field 3: state */
    char st = *p;
    int pp = 0;
    unsigned long long start = 0;
    /* fields after state: ppid(4) ... starttime(22) */
    int field = 3;
    char *save = NULL;
    for (char *tok = strtok_r(p, " ", &save); tok; tok = strtok_r(NULL, " ", &save), field++) {
        if (field == 4)
            pp = atoi(tok);
        if (field == 22) {
            start = strtoull(tok, NULL, 10);
            break;
        }
    }
    if (state)
        *state = st;
    if (starttime)
        *starttime = start;
    if (ppid)
        *ppid = (pid_t)pp;
    return 0;
}

/* The children of pid: /proc/pid/task/ * /children, or a scan of /proc by
 * ppid where that file does not exist (some kernels). Returns how many. */
static inline int ppt_children_of(pid_t pid, pid_t *out, int max) {
    char path[96];
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    if (!d)
        return 0;
    int n = 0;
    bool have_file = false;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!ppt_is_number(e->d_name))
            continue;
        snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)pid, atoi(e->d_name));
        FILE *fp = fopen(path, "re");
        if (!fp)
            continue;
        have_file = true;
        int c;
        while (n < max && fscanf(fp, "%d", &c) == 1)
            out[n++] = c;
        fclose(fp);
    }
    closedir(d);
    if (have_file)
        return n;
    d = opendir("/proc");
    if (!d)
        return 0;
    while ((e = readdir(d)) != NULL && n < max) {
        if (!ppt_is_number(e->d_name))
            continue;
        pid_t p = (pid_t)atoi(e->d_name), pp = 0;
        if (ppt_proc_stat(p, NULL, NULL, &pp) == 0 && pp == pid)
            out[n++] = p;
    }
    closedir(d);
    return n;
}

/* Whether pid is a live pool worker: named procpool-worker (never the
 * fork server or zygote) and neither a zombie nor dead. */
static inline bool ppt_is_live_worker(pid_t pid) {
    char path[64], comm[32];
    snprintf(path, sizeof path, "/proc/%d/comm", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t r = read(fd, comm, sizeof comm - 1);
    close(fd);
    if (r <= 0)
        return false;
    comm[r] = '\0';
    if (strncmp(comm, "procpool-worker", 15) != 0)
        return false;
    char st = 0;
    return ppt_proc_stat(pid, &st, NULL, NULL) == 0 && st != 'Z' && st != 'X';
}

/* The live workers of this process's pools, at most max of them into out:
 * our children and their children (the fork server's or zygote's).
 * Returns how many. */
static inline int ppt_find_workers(pid_t *out, int max) {
    pid_t kids[256], all[1024];
    int n = 0, nk = ppt_children_of(getpid(), kids, 256);
    for (int i = 0; i < nk && n < 1024; i++) {
        all[n++] = kids[i];
        n += ppt_children_of(kids[i], all + n, 1024 - n);
    }
    int m = 0;
    for (int i = 0; i < n && m < max; i++)
        if (ppt_is_live_worker(all[i]))
            out[m++] = all[i];
    return m;
}

/* Entries of a directory but "." and ".."; -1 if it cannot be read. */
static inline int ppt_count_entries(const char *path) {
    DIR *d = opendir(path);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

/* How many fds this process has open (not counting the directory's own). */
static inline int ppt_fd_count(void) {
    int n = ppt_count_entries("/proc/self/fd");
    return n < 0 ? -1 : n - 1;
}

/* A /dev/shm name that another program makes while a test runs (Open MPI's
 * shared-memory transport, when an MPI test runs beside this one): the
 * library itself makes no /dev/shm names (it uses memfds), so the leak
 * checks leave these out. */
static inline bool ppt_foreign_shm(const char *name) {
    return strncmp(name, "vader_segment.", 14) == 0 || strncmp(name, "sm_segment.", 11) == 0;
}

/* The same, by the name some tests use. */
static inline int ppt_count_fds(void) { return ppt_fd_count(); }

#endif /* PP_TEST_PROC_UTIL_H */
