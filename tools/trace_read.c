/*
 * trace_read.c - procpool-trace: read a trace file (Chrome trace event JSON,
 * array format; docs/tracing.md) into the model of trace_model.h, and put
 * the model in picture order.
 *
 * DESIGN
 *
 * This is the input half of procpool-trace; trace_svg.c draws what it reads.
 * The file is read line by line (getline) and every event line is parsed on
 * its own by jansson (json_loadb), after its framing is taken off: the
 * opening "[", a closing "]", a trailing ",". So a trace cut short after a
 * complete line reads as it is, and memory holds the model, never the JSON
 * text. A line holding several events is parsed as one array; a line that
 * is not JSON is skipped and counted (read_trace reports it); a file that
 * does not start with "[", or holds nothing but such lines, is refused.
 * Pools (pid) and lanes (pid, tid) are found through open-addressing hash
 * maps; span names are interned. A ts or dur of TIME_MAX or more is taken
 * for garbage and its event ignored. Events may come in any order:
 * model_sort sorts them in time and orders pools and lanes for the picture
 * (qsort, whose comparators see the model through file-scope pointers, so
 * it is not reentrant). Allocation failure exits with a message (oom).
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include <jansson.h>

#include "trace_model.h"

#define TIME_MAX 1e15 /* us: a ts or dur past this is not a time */

const char *prog = "procpool-trace";

/* ------------------------------------------------------------------ */
/* memory                                                              */
/* ------------------------------------------------------------------ */

static void oom(void) {
    fprintf(stderr, "%s: out of memory\n", prog);
    exit(1);
}

void *xcalloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        oom();
    return p;
}

static char *xstrdup(const char *s) {
    char *p = strdup(s);
    if (!p)
        oom();
    return p;
}

/* a dynamic array grows by half again, at least to 16 */
static void *grow(void *arr, size_t *cap, size_t elem) {
    size_t ncap = *cap < 16 ? 16 : *cap + *cap / 2;
    if (ncap > SIZE_MAX / elem)
        oom();
    void *p = realloc(arr, ncap * elem);
    if (!p)
        oom();
    *cap = ncap;
    return p;
}

#define RESERVE1(arr, n, cap)                                                                      \
    do {                                                                                           \
        if ((n) == (cap))                                                                          \
            (arr) = grow((arr), &(cap), sizeof *(arr));                                            \
    } while (0)

/* ------------------------------------------------------------------ */
/* hash maps: (int64, int64) -> index, and interned strings            */
/* ------------------------------------------------------------------ */

static uint64_t mix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static size_t imap_slot(const struct imap *m, int64_t a, int64_t b) {
    size_t mask = m->cap - 1;
    size_t i = (size_t)mix64((uint64_t)a * 0x9e3779b97f4a7c15ULL ^ (uint64_t)b) & mask;
    while (m->vals[i] && (m->keys[2 * i] != a || m->keys[2 * i + 1] != b))
        i = (i + 1) & mask;
    return i;
}

/* the index stored for (a, b), or SIZE_MAX */
static size_t imap_get(const struct imap *m, int64_t a, int64_t b) {
    if (!m->cap)
        return SIZE_MAX;
    size_t i = imap_slot(m, a, b);
    return m->vals[i] ? m->vals[i] - 1 : SIZE_MAX;
}

static void imap_put(struct imap *m, int64_t a, int64_t b, size_t idx) {
    if ((m->n + 1) * 2 > m->cap) {
        struct imap big = {0};
        big.cap = m->cap ? m->cap * 2 : 64;
        big.keys = xcalloc(big.cap * 2, sizeof *big.keys);
        big.vals = xcalloc(big.cap, sizeof *big.vals);
        for (size_t i = 0; i < m->cap; i++) {
            if (!m->vals[i])
                continue;
            size_t j = imap_slot(&big, m->keys[2 * i], m->keys[2 * i + 1]);
            big.keys[2 * j] = m->keys[2 * i];
            big.keys[2 * j + 1] = m->keys[2 * i + 1];
            big.vals[j] = m->vals[i];
        }
        big.n = m->n;
        free(m->keys);
        free(m->vals);
        *m = big;
    }
    size_t i = imap_slot(m, a, b);
    if (!m->vals[i])
        m->n++;
    m->keys[2 * i] = a;
    m->keys[2 * i + 1] = b;
    m->vals[i] = idx + 1;
}

static void imap_free(struct imap *m) {
    free(m->keys);
    free(m->vals);
}

static uint64_t strhash(const char *s, size_t len) {
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 0x100000001b3ULL;
    return h;
}

static uint32_t intern(struct strtab *t, const char *s) {
    size_t len = strlen(s);
    if ((t->n + 1) * 2 > t->scap) {
        size_t ncap = t->scap ? t->scap * 2 : 256;
        uint32_t *ns = xcalloc(ncap, sizeof *ns);
        for (size_t k = 0; k < t->n; k++) {
            size_t i = (size_t)strhash(t->str[k], strlen(t->str[k])) & (ncap - 1);
            while (ns[i])
                i = (i + 1) & (ncap - 1);
            ns[i] = (uint32_t)(k + 1);
        }
        free(t->slots);
        t->slots = ns;
        t->scap = ncap;
    }
    size_t i = (size_t)strhash(s, len) & (t->scap - 1);
    while (t->slots[i]) {
        if (strcmp(t->str[t->slots[i] - 1], s) == 0)
            return t->slots[i] - 1;
        i = (i + 1) & (t->scap - 1);
    }
    if (t->n >= UINT32_MAX - 1)
        oom();
    RESERVE1(t->str, t->n, t->cap);
    t->str[t->n] = xstrdup(s);
    t->slots[i] = (uint32_t)(t->n + 1);
    return (uint32_t)t->n++;
}

static void strtab_free(struct strtab *t) {
    for (size_t k = 0; k < t->n; k++)
        free(t->str[k]);
    free(t->str);
    free(t->slots);
}

/* ------------------------------------------------------------------ */
/* the model                                                           */
/* ------------------------------------------------------------------ */

void model_free(struct model *m) {
    for (size_t i = 0; i < m->nlanes; i++) {
        free(m->lanes[i].name);
        free(m->lanes[i].spans);
        free(m->lanes[i].marks);
    }
    for (size_t i = 0; i < m->npools; i++) {
        free(m->pools[i].name);
        free(m->pools[i].samples);
        free(m->pools[i].terms);
    }
    free(m->lanes);
    free(m->pools);
    free(m->gterms);
    imap_free(&m->poolmap);
    imap_free(&m->lanemap);
    strtab_free(&m->names);
}

static size_t get_pool(struct model *m, int64_t pid) {
    size_t i = imap_get(&m->poolmap, pid, 0);
    if (i != SIZE_MAX)
        return i;
    RESERVE1(m->pools, m->npools, m->cappools);
    struct pool *p = &m->pools[m->npools];
    memset(p, 0, sizeof *p);
    p->pid = pid;
    imap_put(&m->poolmap, pid, 0, m->npools);
    return m->npools++;
}

static struct lane *get_lane(struct model *m, int64_t pid, int64_t tid) {
    size_t i = imap_get(&m->lanemap, pid, tid);
    if (i != SIZE_MAX)
        return &m->lanes[i];
    size_t pool = get_pool(m, pid);
    RESERVE1(m->lanes, m->nlanes, m->caplanes);
    struct lane *l = &m->lanes[m->nlanes];
    memset(l, 0, sizeof *l);
    l->pid = pid;
    l->tid = tid;
    l->pool = pool;
    imap_put(&m->lanemap, pid, tid, m->nlanes++);
    return l;
}

static void see_time(struct model *m, double a, double b) {
    if (!m->have_time) {
        m->t0 = a;
        m->t1 = b;
        m->have_time = true;
        return;
    }
    if (a < m->t0)
        m->t0 = a;
    if (b > m->t1)
        m->t1 = b;
}

static bool num_of(const json_t *j, double *out) {
    if (!json_is_number(j))
        return false;
    double v = json_number_value(j);
    if (!isfinite(v))
        return false;
    *out = v;
    return true;
}

static int64_t int_of(const json_t *j, int64_t dflt) {
    if (json_is_integer(j))
        return (int64_t)json_integer_value(j);
    if (json_is_real(j)) {
        double v = json_real_value(j);
        if (v > -9e18 && v < 9e18)
            return (int64_t)v;
    }
    return dflt;
}

static int32_t clamp32(int64_t v) {
    return v > INT32_MAX ? INT32_MAX : v < INT32_MIN ? INT32_MIN : (int32_t)v;
}

static uint8_t outcome_of(const char *s) {
    if (!s)
        return OC_OTHER;
    if (!strcmp(s, "ok"))
        return OC_OK;
    if (!strcmp(s, "PP_ETASK") || !strcmp(s, "failed"))
        return OC_ETASK;
    if (!strcmp(s, "PP_EWORKER") || !strcmp(s, "killed"))
        return OC_EWORKER;
    if (!strcmp(s, "PP_ETASKTIMEOUT") || !strcmp(s, "timeout"))
        return OC_TIMEOUT;
    if (!strcmp(s, "cancelled"))
        return OC_CANCELLED;
    return OC_OTHER;
}

/* signal, else exit, from args into *code; the flag that says which */
static uint8_t code_of(const json_t *args, int32_t *code) {
    const json_t *j = json_object_get(args, "signal");
    if (json_is_number(j)) {
        *code = clamp32(int_of(j, 0));
        return SF_SIGNAL;
    }
    j = json_object_get(args, "exit");
    if (json_is_number(j)) {
        *code = clamp32(int_of(j, 0));
        return SF_EXIT;
    }
    *code = 0;
    return 0;
}

static void take_event(struct model *m, const json_t *ev) {
    const char *ph = json_string_value(json_object_get(ev, "ph"));
    if (!ph || !ph[0] || ph[1]) {
        m->nignored++;
        return;
    }
    const char *name = json_string_value(json_object_get(ev, "name"));
    const json_t *args = json_object_get(ev, "args"); /* NULL unless an object */
    if (!json_is_object(args))
        args = NULL;
    int64_t pid = int_of(json_object_get(ev, "pid"), 0);
    int64_t tid = int_of(json_object_get(ev, "tid"), 0);
    double ts = 0;
    /* beyond about 30 years of microseconds a time is garbage, and would
     * take the scale (and the arithmetic) with it */
    bool has_ts = num_of(json_object_get(ev, "ts"), &ts) && fabs(ts) < TIME_MAX;

    switch (ph[0]) {
    case 'M': {
        const char *val = json_string_value(json_object_get(args, "name"));
        if (!name) {
            m->nignored++;
            return;
        }
        if (!strcmp(name, "process_name") && val) {
            size_t pix = get_pool(m, pid);
            struct pool *p = &m->pools[pix];
            free(p->name);
            p->name = xstrdup(val);
        } else if (!strcmp(name, "thread_name") && val) {
            struct lane *l = get_lane(m, pid, tid);
            free(l->name);
            l->name = xstrdup(val);
        } else if (!strcmp(name, "thread_sort_index")) {
            const json_t *si = json_object_get(args, "sort_index");
            if (json_is_number(si)) {
                struct lane *l = get_lane(m, pid, tid);
                l->sort = int_of(si, 0);
                l->has_sort = true;
            }
        } else if (!strcmp(name, "process_sort_index")) {
            const json_t *si = json_object_get(args, "sort_index");
            if (json_is_number(si)) {
                size_t pix = get_pool(m, pid);
                struct pool *p = &m->pools[pix];
                p->sort = int_of(si, 0);
                p->has_sort = true;
            }
        } else {
            m->nignored++;
        }
        return;
    }
    case 'X': {
        if (!has_ts) {
            m->nignored++;
            return;
        }
        double dur = 0;
        if (!num_of(json_object_get(ev, "dur"), &dur) || dur < 0)
            dur = 0;
        if (dur >= TIME_MAX) {
            m->nignored++;
            return;
        }
        struct lane *l = get_lane(m, pid, tid);
        RESERVE1(l->spans, l->nspans, l->capspans);
        struct span *s = &l->spans[l->nspans++];
        s->ts = ts;
        s->dur = dur;
        s->name = intern(&m->names, name ? name : "?");
        s->oc = outcome_of(json_string_value(json_object_get(args, "outcome")));
        const char *cat = json_string_value(json_object_get(ev, "cat"));
        s->flags = (cat && !strcmp(cat, "job")) ? SF_JOB : 0;
        s->flags |= code_of(args, &s->code);
        if (s->flags & SF_JOB)
            m->njobs++;
        else
            m->ntasks++;
        if (s->oc == OC_CANCELLED)
            m->ncancelled++;
        else if (s->oc >= OC_ETASK)
            m->nfailed++;
        m->nspans++;
        see_time(m, ts, ts + dur);
        return;
    }
    case 'i':
    case 'I': {
        int kind;
        if (!name || !has_ts) {
            m->nignored++;
            return;
        }
        if (!strcmp(name, "death"))
            kind = MK_DEATH;
        else if (!strcmp(name, "respawn"))
            kind = MK_RESPAWN;
        else if (!strcmp(name, "timeout"))
            kind = MK_TIMEOUT;
        else if (!strcmp(name, "terminate"))
            kind = MK_TERMINATE;
        else {
            m->nignored++;
            return;
        }
        struct mark mk = {.ts = ts, .kind = (uint8_t)kind, .wpid = -1};
        const json_t *wp = json_object_get(args, "worker_pid");
        if (json_is_number(wp))
            mk.wpid = int_of(wp, -1);
        mk.flags = code_of(args, &mk.code);
        const char *scope = json_string_value(json_object_get(ev, "s"));
        if (kind == MK_TERMINATE && scope && !strcmp(scope, "g")) {
            RESERVE1(m->gterms, m->ngterms, m->capgterms);
            m->gterms[m->ngterms++] = mk;
        } else if (kind == MK_TERMINATE) {
            size_t pix = get_pool(m, pid);
            struct pool *p = &m->pools[pix];
            RESERVE1(p->terms, p->nterms, p->capterms);
            p->terms[p->nterms++] = mk;
        } else {
            struct lane *l = get_lane(m, pid, tid);
            RESERVE1(l->marks, l->nmarks, l->capmarks);
            l->marks[l->nmarks++] = mk;
        }
        m->nmarks_kind[kind]++;
        see_time(m, ts, ts);
        return;
    }
    case 'C': {
        if (!name || strcmp(name, "queue") || !has_ts) {
            m->nignored++;
            return;
        }
        size_t pix = get_pool(m, pid);
        struct pool *p = &m->pools[pix];
        RESERVE1(p->samples, p->nsamples, p->capsamples);
        struct sample *s = &p->samples[p->nsamples++];
        s->ts = ts;
        if (!num_of(json_object_get(args, "queued"), &s->queued))
            s->queued = NAN;
        if (!num_of(json_object_get(args, "in_flight"), &s->inflight))
            s->inflight = NAN;
        see_time(m, ts, ts);
        return;
    }
    default: m->nignored++; return;
    }
}

/* ------------------------------------------------------------------ */
/* reading                                                             */
/* ------------------------------------------------------------------ */

static bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

static void bad_line(struct model *m, size_t lineno, const json_error_t *err) {
    if (!m->nbad++) {
        m->first_bad = lineno;
        snprintf(m->bad_msg, sizeof m->bad_msg, "%s", err->text);
    }
    m->last_bad = lineno;
}

/* one line of the file; false: not a trace file at all */
static bool feed_line(struct model *m, char *s, size_t len, size_t lineno, bool *started,
                      bool *ended, char **wrap, size_t *wrapcap) {
    while (len && is_ws(*s))
        s++, len--;
    while (len && is_ws(s[len - 1]))
        len--;
    if (!len)
        return true;
    if (!*started) {
        if (len >= 3 && !memcmp(s, "\xef\xbb\xbf", 3)) /* a UTF-8 byte order mark */
            s += 3, len -= 3;
        if (!len || *s != '[')
            return false;
        *started = true;
        s++, len--;
    }
    if (*ended) { /* text after the closing bracket */
        m->nignored++;
        return true;
    }
    if (len && s[len - 1] == ']' && (len == 1 || s[0] == '{' || s[0] == ',')) {
        /* the closing bracket (an event line ends with '}') */
        *ended = true;
        len--;
    }
    for (;;) {
        while (len && is_ws(*s))
            s++, len--;
        while (len && is_ws(s[len - 1]))
            len--;
        if (len && s[len - 1] == ',')
            len--;
        else
            break;
    }
    while (len && *s == ',')
        s++, len--;
    if (!len)
        return true;

    json_error_t err;
    if (*s == '{') {
        /* the usual case: one event on the line */
        json_t *ev = json_loadb(s, len, JSON_DISABLE_EOF_CHECK, &err);
        if (ev && (size_t)err.position >= len) {
            take_event(m, ev);
            m->nevents++;
            json_decref(ev);
            return true;
        }
        json_decref(ev);
    }
    /* several events on the line, or something else: parse it as an array */
    if (len + 3 > *wrapcap) {
        free(*wrap);
        *wrapcap = len + 3;
        *wrap = malloc(*wrapcap);
        if (!*wrap)
            oom();
    }
    (*wrap)[0] = '[';
    memcpy(*wrap + 1, s, len);
    (*wrap)[len + 1] = ']';
    json_t *arr = json_loadb(*wrap, len + 2, 0, &err);
    if (!arr) {
        bad_line(m, lineno, &err);
        return true;
    }
    size_t i;
    json_t *ev;
    json_array_foreach(arr, i, ev) {
        if (json_is_object(ev)) {
            take_event(m, ev);
            m->nevents++;
        } else {
            m->nignored++;
        }
    }
    json_decref(arr);
    return true;
}

/* read the whole trace; 0, or -1 with a message printed */
int read_trace(struct model *m, FILE *in, const char *fname) {
    char *line = NULL, *wrap = NULL;
    size_t cap = 0, wrapcap = 0, lineno = 0, last_text = 0;
    bool started = false, ended = false;
    ssize_t n;
    int rc = 0;

    while ((n = getline(&line, &cap, in)) > 0) {
        lineno++;
        for (ssize_t k = 0; k < n; k++)
            if (!is_ws(line[k])) {
                last_text = lineno;
                break;
            }
        if (!feed_line(m, line, (size_t)n, lineno, &started, &ended, &wrap, &wrapcap)) {
            fprintf(stderr,
                    "%s: %s:%zu: not a trace file: it does not start with '[' (a procpool "
                    "trace is Chrome trace event JSON in the array format)\n",
                    prog, fname, lineno);
            rc = -1;
            break;
        }
    }
    if (!rc && ferror(in)) {
        fprintf(stderr, "%s: %s: %s\n", prog, fname, strerror(errno));
        rc = -1;
    }
    free(line);
    free(wrap);
    if (rc)
        return rc;
    if (m->nbad && !m->nevents) {
        fprintf(stderr, "%s: %s:%zu: not JSON: %s\n", prog, fname, m->first_bad, m->bad_msg);
        return -1;
    }
    if (m->nbad == 1 && m->first_bad == last_text)
        fprintf(stderr, "%s: %s:%zu: the last line is cut short; ignored\n", prog, fname,
                m->first_bad);
    else if (m->nbad)
        fprintf(stderr, "%s: %s: %zu lines are not JSON and were skipped (first: line %zu: %s)\n",
                prog, fname, m->nbad, m->first_bad, m->bad_msg);
    return 0;
}

/* ------------------------------------------------------------------ */
/* sorting                                                             */
/* ------------------------------------------------------------------ */

static const struct model *sort_model; /* for the comparators */

/* qsort, which must not be given a null array even for no elements */
static void sort_n(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *)) {
    if (n > 1)
        qsort(base, n, size, cmp);
}

static int cmp_span(const void *a, const void *b) {
    const struct span *x = a, *y = b;
    return (x->ts > y->ts) - (x->ts < y->ts);
}

static int cmp_mark(const void *a, const void *b) {
    const struct mark *x = a, *y = b;
    return (x->ts > y->ts) - (x->ts < y->ts);
}

static int cmp_sample(const void *a, const void *b) {
    const struct sample *x = a, *y = b;
    return (x->ts > y->ts) - (x->ts < y->ts);
}

static int cmp_i64(int64_t a, int64_t b) { return (a > b) - (a < b); }

static int cmp_pool_idx(const void *a, const void *b) {
    const struct pool *x = &sort_model->pools[*(const size_t *)a];
    const struct pool *y = &sort_model->pools[*(const size_t *)b];
    int c = cmp_i64(x->has_sort ? x->sort : x->pid, y->has_sort ? y->sort : y->pid);
    return c ? c : cmp_i64(x->pid, y->pid);
}

static size_t *pool_rank; /* pool index -> its place in the picture */

static int cmp_lane_idx(const void *a, const void *b) {
    const struct lane *x = &sort_model->lanes[*(const size_t *)a];
    const struct lane *y = &sort_model->lanes[*(const size_t *)b];
    if (x->pool != y->pool)
        return pool_rank[x->pool] < pool_rank[y->pool] ? -1 : 1;
    int c = cmp_i64(x->has_sort ? x->sort : x->tid, y->has_sort ? y->sort : y->tid);
    return c ? c : cmp_i64(x->tid, y->tid);
}

void model_sort(struct model *m, size_t *porder, size_t *lorder) {
    sort_model = m;
    for (size_t i = 0; i < m->nlanes; i++) {
        struct lane *l = &m->lanes[i];
        sort_n(l->spans, l->nspans, sizeof *l->spans, cmp_span);
        sort_n(l->marks, l->nmarks, sizeof *l->marks, cmp_mark);
    }
    for (size_t i = 0; i < m->npools; i++) {
        struct pool *p = &m->pools[i];
        sort_n(p->samples, p->nsamples, sizeof *p->samples, cmp_sample);
        sort_n(p->terms, p->nterms, sizeof *p->terms, cmp_mark);
    }
    pool_rank = xcalloc(m->npools, sizeof *pool_rank);
    for (size_t i = 0; i < m->npools; i++)
        porder[i] = i;
    sort_n(porder, m->npools, sizeof *porder, cmp_pool_idx);
    for (size_t i = 0; i < m->npools; i++)
        pool_rank[porder[i]] = i;
    for (size_t i = 0; i < m->nlanes; i++)
        lorder[i] = i;
    sort_n(lorder, m->nlanes, sizeof *lorder, cmp_lane_idx);
    free(pool_rank);
    pool_rank = NULL;
}
