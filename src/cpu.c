/*
 * cpu.c - pp_cpu_count(): how many CPUs this process may really use.
 *
 * DESIGN: the answer is the minimum of three limits, never below 1:
 *  1. the affinity mask (sched_getaffinity), read into a CPU set sized at
 *     run time (CPU_ALLOC) and grown on EINVAL, so machines with more than
 *     CPU_SETSIZE (1024) CPUs are counted right;
 *  2. the cgroup CPU quota: for cgroup v2 the "0::/path" line of
 *     /proc/self/cgroup names our cgroup, and cpu.max is read there and in
 *     every ancestor up to the root (a parent's quota binds its children),
 *     under /sys/fs/cgroup and, on hybrid systems, /sys/fs/cgroup/unified.
 *     cgroup v1 (cpu.cfs_quota_us / cpu.cfs_period_us) is honoured as well.
 *     The path is walked up even when a directory is missing, which also
 *     covers containers that show the host's path but mount their own
 *     cgroup at the root. ceil(quota / period) is the cap;
 *  3. the PROCPOOL_CPUS environment variable, when it is a positive integer.
 * Parsing lives in pp__cpu_count_from / pp__cpu_max_cap (see cpu.h) so tests
 * can feed it text. System files are read with open/read (O_CLOEXEC), no
 * stdio, no locale, and the only allocation is the CPU set.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "procpool.h"
#include "cpu.h"

#define PP__CPU_PATH_MAX 4096

/* Parse an unsigned decimal at *p (leading blanks skipped); advances *p.
 * Returns 0 and sets *out, or -1 when there is no number or it overflows. */
static int pp__parse_ull(const char **p, unsigned long long *out) {
    const char *s = *p;
    unsigned long long v = 0;

    while (*s == ' ' || *s == '\t')
        s++;
    if (!isdigit((unsigned char)*s))
        return -1;
    while (isdigit((unsigned char)*s)) {
        unsigned d = (unsigned)(*s - '0');
        if (v > (ULLONG_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
        s++;
    }
    *p = s;
    *out = v;
    return 0;
}

static int pp__at_end(const char *s) {
    while (*s != '\0' && isspace((unsigned char)*s))
        s++;
    return *s == '\0';
}

int pp__cpu_max_cap(const char *text) {
    const char *p = text;
    unsigned long long quota, period = 100000, cap;

    if (p == NULL)
        return 0;
    while (*p == ' ' || *p == '\t')
        p++;
    if (strncmp(p, "max", 3) == 0)
        return 0;
    if (pp__parse_ull(&p, &quota) != 0 || quota == 0)
        return 0;
    if (*p == ' ' || *p == '\t') {
        const char *q = p;
        unsigned long long per;
        if (pp__parse_ull(&q, &per) == 0) {
            period = per;
            p = q;
        }
    }
    if (period == 0 || !pp__at_end(p))
        return 0;
    cap = quota / period + (quota % period != 0);
    if (cap > INT_MAX)
        return 0; /* no practical cap */
    return (int)cap;
}

static int pp__env_cap(const char *env) {
    const char *p = env;
    unsigned long long v;

    if (p == NULL)
        return 0;
    while (*p != '\0' && isspace((unsigned char)*p))
        p++;
    if (*p == '+')
        p++;
    if (pp__parse_ull(&p, &v) != 0 || v == 0 || !pp__at_end(p))
        return 0;
    return v > INT_MAX ? 0 : (int)v;
}

static int pp__min_cap(int n, int cap) { return (cap > 0 && cap < n) ? cap : n; }

int pp__cpu_count_from(const char *cpu_max_text, int affinity, const char *env) {
    int n = affinity < 1 ? 1 : affinity;

    n = pp__min_cap(n, pp__cpu_max_cap(cpu_max_text));
    n = pp__min_cap(n, pp__env_cap(env));
    return n < 1 ? 1 : n;
}

/* Read up to cap-1 bytes of a small file into buf, NUL-terminated.
 * Returns the length, or -1 when it cannot be opened or read. */
static ssize_t pp__read_small(const char *path, char *buf, size_t cap) {
    size_t len = 0;
    int fd;

    do
        fd = open(path, O_RDONLY | O_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return -1;
    while (len + 1 < cap) {
        ssize_t r = read(fd, buf + len, cap - 1 - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            close(fd);
            return -1;
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    buf[len] = '\0';
    return (ssize_t)len;
}

static int pp__affinity_count(void) {
    long conf = sysconf(_SC_NPROCESSORS_CONF);
    int ncpu = conf > 1024 ? (int)conf : 1024;

    for (; ncpu <= (1 << 22); ncpu *= 2) {
        cpu_set_t *set = CPU_ALLOC((size_t)ncpu);
        size_t size = CPU_ALLOC_SIZE((size_t)ncpu);
        int count;

        if (set == NULL)
            break;
        CPU_ZERO_S(size, set);
        if (sched_getaffinity(0, size, set) == 0) {
            count = CPU_COUNT_S(size, set);
            CPU_FREE(set);
            return count > 0 ? count : 1;
        }
        CPU_FREE(set);
        if (errno != EINVAL)
            break;
    }
    {
        long onl = sysconf(_SC_NPROCESSORS_ONLN);
        return onl > 0 ? (onl > INT_MAX ? INT_MAX : (int)onl) : 1;
    }
}

/* The cap one cgroup directory sets, 0 for none. v1 dirs hold the CFS
 * files, v2 dirs cpu.max; both are tried, whichever exists answers. */
static int pp__cgroup_dir_cap(const char *dir, int v1) {
    char path[PP__CPU_PATH_MAX + 64];
    char buf[128];

    if (!v1) {
        snprintf(path, sizeof path, "%s/cpu.max", dir);
        if (pp__read_small(path, buf, sizeof buf) <= 0)
            return 0;
        return pp__cpu_max_cap(buf);
    } else {
        char pbuf[64];
        const char *p = buf, *q = pbuf;
        unsigned long long quota, period;

        snprintf(path, sizeof path, "%s/cpu.cfs_quota_us", dir);
        if (pp__read_small(path, buf, sizeof buf) <= 0)
            return 0; /* "-1" (no limit) fails the parse below, as it should */
        snprintf(path, sizeof path, "%s/cpu.cfs_period_us", dir);
        if (pp__read_small(path, pbuf, sizeof pbuf) <= 0)
            return 0;
        if (pp__parse_ull(&p, &quota) != 0 || pp__parse_ull(&q, &period) != 0)
            return 0;
        snprintf(buf, sizeof buf, "%llu %llu", quota, period);
        return pp__cpu_max_cap(buf);
    }
}

/* Walk from root+cg up to root, taking the smallest cap found. */
static int pp__cgroup_walk(const char *root, const char *cg, int v1) {
    char dir[PP__CPU_PATH_MAX];
    int best = 0;
    int n;

    n = snprintf(dir, sizeof dir, "%s%s", root, cg);
    if (n < 0 || (size_t)n >= sizeof dir)
        return 0;
    for (;;) {
        size_t rl = strlen(root);
        size_t len = strlen(dir);
        char *slash;
        int cap;

        while (len > rl && dir[len - 1] == '/')
            dir[--len] = '\0';
        cap = pp__cgroup_dir_cap(dir, v1);
        if (cap > 0 && (best == 0 || cap < best))
            best = cap;
        if (len <= rl)
            break;
        slash = strrchr(dir + rl, '/');
        if (slash == NULL)
            break;
        *slash = '\0';
    }
    return best;
}

/* Does the comma-separated controller list [s, e) name "cpu"? */
static int pp__has_cpu_controller(const char *s, const char *e) {
    while (s < e) {
        const char *c = memchr(s, ',', (size_t)(e - s));
        const char *end = c ? c : e;
        if (end - s == 3 && memcmp(s, "cpu", 3) == 0)
            return 1;
        s = end + 1;
    }
    return 0;
}

static int pp__cgroup_cap(void) {
    char local[8192];
    char cg[PP__CPU_PATH_MAX];
    char *line, *save = NULL;
    int best = 0;

    if (pp__read_small("/proc/self/cgroup", local, sizeof local) <= 0)
        return 0;
    for (line = strtok_r(local, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *c1 = strchr(line, ':');
        char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        int cap = 0;

        if (c2 == NULL || c2[1] != '/')
            continue;
        if ((size_t)snprintf(cg, sizeof cg, "%s", c2 + 1) >= sizeof cg)
            continue;
        if (c1 == line + 1 && line[0] == '0' && c2 == c1 + 1) {
            /* cgroup v2: "0::/path" */
            int a = pp__cgroup_walk("/sys/fs/cgroup", cg, 0);
            int b = pp__cgroup_walk("/sys/fs/cgroup/unified", cg, 0);
            cap = pp__min_cap(a > 0 ? a : INT_MAX, b);
            if (cap == INT_MAX)
                cap = 0;
        } else if (pp__has_cpu_controller(c1 + 1, c2)) {
            /* cgroup v1 "N:cpu,cpuacct:/path" */
            int a = pp__cgroup_walk("/sys/fs/cgroup/cpu,cpuacct", cg, 1);
            int b = pp__cgroup_walk("/sys/fs/cgroup/cpu", cg, 1);
            cap = pp__min_cap(a > 0 ? a : INT_MAX, b);
            if (cap == INT_MAX)
                cap = 0;
        }
        if (cap > 0 && (best == 0 || cap < best))
            best = cap;
    }
    return best;
}

PP_EXTERN int pp_cpu_count(void) {
    int n = pp__affinity_count();
    int cg = pp__cgroup_cap();
    char text[32];

    /* Feed the cgroup cap through the same parser as a "quota period" text,
     * so one code path decides. */
    if (cg > 0)
        snprintf(text, sizeof text, "%d 1", cg);
    return pp__cpu_count_from(cg > 0 ? text : NULL, n, getenv("PROCPOOL_CPUS"));
}
