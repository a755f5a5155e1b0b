/*
 * trace_svg.c - procpool-trace: turn a procpool trace file (Chrome trace
 * event JSON, array format; docs/tracing.md) into one self-contained SVG.
 *
 * DESIGN
 *
 * Input. The file is read line by line (getline) and every event line is
 * parsed on its own by jansson (json_loadb), after its framing is taken off:
 * the opening "[", a closing "]", a trailing ",". So a trace cut short after
 * a complete line reads as it is, and memory holds the model, never the JSON
 * text. A line holding several events (a compact "[{..},{..}]" file) is
 * parsed as one array. A line that is not JSON is skipped with a warning
 * (a last line cut in the middle is expected); a file with nothing but such
 * lines, or one that does not start with "[", is refused (exit 1, nothing
 * written). Unknown phases, names and args are ignored; missing args take
 * defaults; events may come in any ts order (everything is sorted before
 * drawing).
 *
 * Model. Pools (pid) and lanes (pid, tid) are found through open-addressing
 * hash maps; a lane holds its spans (ts, dur, interned name, outcome) and
 * its instant marks, a pool its `queue` counter samples and its `terminate`
 * marks. Span names are interned, so a million tasks of a few functions
 * cost a few strings. About 40 bytes per span: a million spans take some
 * 40 MB. jansson parses about a million event lines in 4 s of CPU.
 *
 * Output. A fixed-width picture (1200 px, -w): title and totals, a time axis
 * in us, ms or s with 1-2-5 ticks, one header row per pool (process_name)
 * and one row per lane (thread_name; sorted by thread_sort_index, then tid),
 * spans coloured by outcome, marks for death, respawn and timeout, a dashed
 * line for terminate (across its pool; across all with "s":"g"), then the
 * queue counters as step curves per pool, then a legend. Up to DETAIL_MAX
 * spans each span is a rect with a <title> tooltip; above that, spans
 * narrower than a pixel are merged, per lane and pixel column, into busy
 * bars coloured by their worst outcome (touching bars of one colour into
 * one rect), and wider spans are drawn without tooltips: a lane then costs
 * at most about one element per pixel column, so the size is bounded by
 * lanes x width, not by the event count. Instant marks keep one per kind
 * and pixel, with tooltips up to MARK_TIPS_MAX.
 * Counters likewise keep one point per pixel column (the column's maximum).
 * Colours come from a <style> block; text uses the generic sans-serif font:
 * no script, no external reference.
 *
 * Limits. A ts or dur of 1e15 us (about 30 years) or more is taken for
 * garbage and its event ignored; thousands of lanes make a tall picture
 * (rows shrink to 3 px and lose their labels, but every lane is drawn);
 * long names are cut to fit, by code point. Only the `queue` counter is
 * drawn.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#ifndef PROCPOOL_TRACE_VERSION
#define PROCPOOL_TRACE_VERSION "unknown"
#endif

#define DETAIL_MAX 20000 /* spans drawn one by one, with tooltips */
#define MARK_TIPS_MAX 20000
#define TIME_MAX 1e15 /* us: a ts or dur past this is not a time */

static const char *prog = "procpool-trace";

/* ------------------------------------------------------------------ */
/* memory                                                              */
/* ------------------------------------------------------------------ */

static void oom(void)
{
    fprintf(stderr, "%s: out of memory\n", prog);
    exit(1);
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        oom();
    return p;
}

static char *xstrdup(const char *s)
{
    char *p = strdup(s);
    if (!p)
        oom();
    return p;
}

/* a dynamic array grows by half again, at least to 16 */
static void *grow(void *arr, size_t *cap, size_t elem)
{
    size_t ncap = *cap < 16 ? 16 : *cap + *cap / 2;
    if (ncap > SIZE_MAX / elem)
        oom();
    void *p = realloc(arr, ncap * elem);
    if (!p)
        oom();
    *cap = ncap;
    return p;
}

#define RESERVE1(arr, n, cap)                                                  \
    do {                                                                       \
        if ((n) == (cap))                                                      \
            (arr) = grow((arr), &(cap), sizeof *(arr));                        \
    } while (0)

/* ------------------------------------------------------------------ */
/* hash maps: (int64, int64) -> index, and interned strings            */
/* ------------------------------------------------------------------ */

struct imap {
    int64_t *keys; /* 2 per slot */
    size_t *vals;  /* index + 1; 0 = empty */
    size_t cap, n;
};

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static size_t imap_slot(const struct imap *m, int64_t a, int64_t b)
{
    size_t mask = m->cap - 1;
    size_t i = (size_t)mix64((uint64_t)a * 0x9e3779b97f4a7c15ULL ^ (uint64_t)b) & mask;
    while (m->vals[i] && (m->keys[2 * i] != a || m->keys[2 * i + 1] != b))
        i = (i + 1) & mask;
    return i;
}

/* the index stored for (a, b), or SIZE_MAX */
static size_t imap_get(const struct imap *m, int64_t a, int64_t b)
{
    if (!m->cap)
        return SIZE_MAX;
    size_t i = imap_slot(m, a, b);
    return m->vals[i] ? m->vals[i] - 1 : SIZE_MAX;
}

static void imap_put(struct imap *m, int64_t a, int64_t b, size_t idx)
{
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

static void imap_free(struct imap *m)
{
    free(m->keys);
    free(m->vals);
}

struct strtab {
    char **str;
    size_t n, cap;
    uint32_t *slots; /* index + 1; 0 = empty */
    size_t scap;
};

static uint64_t strhash(const char *s, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 0x100000001b3ULL;
    return h;
}

static uint32_t intern(struct strtab *t, const char *s)
{
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

static void strtab_free(struct strtab *t)
{
    for (size_t k = 0; k < t->n; k++)
        free(t->str[k]);
    free(t->str);
    free(t->slots);
}

/* ------------------------------------------------------------------ */
/* the model                                                           */
/* ------------------------------------------------------------------ */

/* outcomes, in order of severity: a busy bar takes its worst */
enum outcome { OC_OK, OC_OTHER, OC_CANCELLED, OC_ETASK, OC_TIMEOUT, OC_EWORKER, OC_N };

static const char *const oc_class[OC_N] = {"ok", "other", "cancelled", "etask", "tmo", "eworker"};
static const char *const oc_task_name[OC_N] = {"ok", "no outcome", "cancelled", "PP_ETASK",
                                               "PP_ETASKTIMEOUT", "PP_EWORKER"};
static const char *const oc_job_name[OC_N] = {"ok", "no outcome", "cancelled", "failed",
                                              "timeout", "killed"};

enum { SF_JOB = 1, SF_SIGNAL = 2, SF_EXIT = 4 };

struct span {
    double ts, dur;
    uint32_t name;
    int32_t code; /* signal or exit status, as flags say */
    uint8_t oc, flags;
};

enum mark_kind { MK_DEATH, MK_RESPAWN, MK_TIMEOUT, MK_TERMINATE, MK_N };
static const char *const mk_class[MK_N] = {"death", "respawn", "timeout", "terminate"};

struct mark {
    double ts;
    int64_t wpid; /* worker_pid, or -1 */
    int32_t code;
    uint8_t kind, flags; /* SF_SIGNAL / SF_EXIT */
};

struct sample {
    double ts, queued, inflight; /* NAN: not given */
};

struct lane {
    int64_t pid, tid, sort;
    bool has_sort;
    char *name;
    size_t pool; /* index */
    struct span *spans;
    size_t nspans, capspans;
    struct mark *marks;
    size_t nmarks, capmarks;
};

struct pool {
    int64_t pid, sort;
    bool has_sort;
    char *name;
    struct sample *samples;
    size_t nsamples, capsamples;
    struct mark *terms; /* terminate marks */
    size_t nterms, capterms;
};

struct model {
    struct pool *pools;
    size_t npools, cappools;
    struct lane *lanes;
    size_t nlanes, caplanes;
    struct imap poolmap, lanemap;
    struct strtab names;
    double t0, t1;
    bool have_time;
    size_t ntasks, njobs, nfailed, ncancelled, nmarks_kind[MK_N], nspans;
    size_t nevents, nignored;
    size_t nbad, first_bad, last_bad; /* unparsable lines */
    char bad_msg[200];
    struct mark *gterms; /* terminate marks of global scope ("s":"g") */
    size_t ngterms, capgterms;
};

static void model_free(struct model *m)
{
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

static size_t get_pool(struct model *m, int64_t pid)
{
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

static struct lane *get_lane(struct model *m, int64_t pid, int64_t tid)
{
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

static void see_time(struct model *m, double a, double b)
{
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

static bool num_of(const json_t *j, double *out)
{
    if (!json_is_number(j))
        return false;
    double v = json_number_value(j);
    if (!isfinite(v))
        return false;
    *out = v;
    return true;
}

static int64_t int_of(const json_t *j, int64_t dflt)
{
    if (json_is_integer(j))
        return (int64_t)json_integer_value(j);
    if (json_is_real(j)) {
        double v = json_real_value(j);
        if (v > -9e18 && v < 9e18)
            return (int64_t)v;
    }
    return dflt;
}

static int32_t clamp32(int64_t v)
{
    return v > INT32_MAX ? INT32_MAX : v < INT32_MIN ? INT32_MIN : (int32_t)v;
}

static uint8_t outcome_of(const char *s)
{
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
static uint8_t code_of(const json_t *args, int32_t *code)
{
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

static void take_event(struct model *m, const json_t *ev)
{
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
    default:
        m->nignored++;
        return;
    }
}

/* ------------------------------------------------------------------ */
/* reading                                                             */
/* ------------------------------------------------------------------ */

static bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static void bad_line(struct model *m, size_t lineno, const json_error_t *err)
{
    if (!m->nbad++) {
        m->first_bad = lineno;
        snprintf(m->bad_msg, sizeof m->bad_msg, "%s", err->text);
    }
    m->last_bad = lineno;
}

/* one line of the file; false: not a trace file at all */
static bool feed_line(struct model *m, char *s, size_t len, size_t lineno, bool *started,
                      bool *ended, char **wrap, size_t *wrapcap)
{
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
static int read_trace(struct model *m, FILE *in, const char *fname)
{
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
/* writing                                                             */
/* ------------------------------------------------------------------ */

/* s as XML text, cut after max code points (with an ellipsis); characters
 * XML 1.0 does not allow become '?' */
static void put_esc(FILE *o, const char *s, size_t max)
{
    size_t chars = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p & 0xc0) != 0x80 && chars++ == max) {
            fputs("\xe2\x80\xa6", o);
            return;
        }
        switch (*p) {
        case '<': fputs("&lt;", o); break;
        case '>': fputs("&gt;", o); break;
        case '&': fputs("&amp;", o); break;
        case '"': fputs("&quot;", o); break;
        case '\'': fputs("&apos;", o); break;
        case '\n': fputs("&#10;", o); break;
        case '\t': fputc(' ', o); break;
        default:
            if (*p < 0x20 || *p == 0x7f) {
                fputc('?', o);
            } else if (p[0] == 0xef && p[1] == 0xbf && (p[2] == 0xbe || p[2] == 0xbf)) {
                fputc('?', o); /* U+FFFE, U+FFFF */
                p += 2;
            } else {
                fputc(*p, o);
            }
        }
    }
}

static void fmt_time(char *buf, size_t size, double us)
{
    double a = fabs(us);
    if (a < 1000)
        snprintf(buf, size, "%.3f \xc2\xb5s", us);
    else if (a < 1e6)
        snprintf(buf, size, "%.3f ms", us / 1e3);
    else
        snprintf(buf, size, "%.3f s", us / 1e6);
}

struct layout {
    double x0, pw;   /* the plot's left edge and width */
    double t0, span; /* the time it shows */
    double rowh, headh;
    int width;
};

static double tx(const struct layout *L, double t)
{
    return L->x0 + (t - L->t0) / L->span * L->pw;
}

static const struct model *sort_model; /* for the comparators */

/* qsort, which must not be given a null array even for no elements */
static void sort_n(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *))
{
    if (n > 1)
        qsort(base, n, size, cmp);
}

static int cmp_span(const void *a, const void *b)
{
    const struct span *x = a, *y = b;
    return (x->ts > y->ts) - (x->ts < y->ts);
}

static int cmp_mark(const void *a, const void *b)
{
    const struct mark *x = a, *y = b;
    return (x->ts > y->ts) - (x->ts < y->ts);
}

static int cmp_sample(const void *a, const void *b)
{
    const struct sample *x = a, *y = b;
    return (x->ts > y->ts) - (x->ts < y->ts);
}

static int cmp_i64(int64_t a, int64_t b)
{
    return (a > b) - (a < b);
}

static int cmp_pool_idx(const void *a, const void *b)
{
    const struct pool *x = &sort_model->pools[*(const size_t *)a];
    const struct pool *y = &sort_model->pools[*(const size_t *)b];
    int c = cmp_i64(x->has_sort ? x->sort : x->pid, y->has_sort ? y->sort : y->pid);
    return c ? c : cmp_i64(x->pid, y->pid);
}

static size_t *pool_rank; /* pool index -> its place in the picture */

static int cmp_lane_idx(const void *a, const void *b)
{
    const struct lane *x = &sort_model->lanes[*(const size_t *)a];
    const struct lane *y = &sort_model->lanes[*(const size_t *)b];
    if (x->pool != y->pool)
        return pool_rank[x->pool] < pool_rank[y->pool] ? -1 : 1;
    int c = cmp_i64(x->has_sort ? x->sort : x->tid, y->has_sort ? y->sort : y->tid);
    return c ? c : cmp_i64(x->tid, y->tid);
}

static void span_tip(FILE *o, const struct model *m, const struct lane *l, const struct span *s)
{
    char d[48], t[48];
    fmt_time(d, sizeof d, s->dur);
    fmt_time(t, sizeof t, s->ts);
    fputs("<title>", o);
    put_esc(o, m->names.str[s->name], 300);
    fprintf(o, "&#10;%s, %s", d, (s->flags & SF_JOB ? oc_job_name : oc_task_name)[s->oc]);
    if (s->flags & SF_SIGNAL)
        fprintf(o, " (signal %d)", (int)s->code);
    else if ((s->flags & SF_EXIT) && s->code)
        fprintf(o, " (exit %d)", (int)s->code);
    fprintf(o, "&#10;at %s in ", t);
    if (l->name)
        put_esc(o, l->name, 60);
    else
        fprintf(o, "tid %lld", (long long)l->tid);
    fputs("</title>", o);
}

/* busy bars: spans narrower than a pixel, one column bar per pixel column
 * (the worst outcome of the spans starting in it, widened to whole pixels),
 * and runs of touching column bars of one colour drawn as one rect */
struct busy {
    bool col_open, run_open;
    long col;
    double cx0, cx1, rx0, rx1;
    uint8_t cworst, rworst;
};

static void busy_flush_run(FILE *o, struct busy *b, double y, double h)
{
    if (b->run_open)
        fprintf(o, "<rect class=\"busy %s\" x=\"%.1f\" y=\"%.1f\" width=\"%.2f\" height=\"%.1f\"/>\n",
                oc_class[b->rworst], b->rx0, y, b->rx1 - b->rx0 < 1.0 ? 1.0 : b->rx1 - b->rx0, h);
    b->run_open = false;
}

static void busy_close_col(FILE *o, struct busy *b, double y, double h)
{
    if (!b->col_open)
        return;
    b->col_open = false;
    b->cx1 = ceil(b->cx1);
    if (b->cx1 < b->cx0 + 1)
        b->cx1 = b->cx0 + 1;
    if (b->run_open && b->rworst == b->cworst && b->cx0 <= b->rx1 + 1.0) {
        if (b->cx1 > b->rx1)
            b->rx1 = b->cx1;
        return;
    }
    busy_flush_run(o, b, y, h);
    b->run_open = true;
    b->rx0 = b->cx0;
    b->rx1 = b->cx1;
    b->rworst = b->cworst;
}

static void draw_lane_spans(FILE *o, const struct model *m, const struct layout *L,
                            const struct lane *l, double y, double h, bool detail)
{
    struct busy b = {0};
    for (size_t k = 0; k < l->nspans; k++) {
        const struct span *s = &l->spans[k];
        double x0 = tx(L, s->ts), x1 = tx(L, s->ts + s->dur);
        if (detail || x1 - x0 >= 1.0) {
            busy_close_col(o, &b, y, h);
            busy_flush_run(o, &b, y, h);
            double w = x1 - x0 < 1.0 ? 1.0 : x1 - x0;
            fprintf(o, "<rect class=\"span %s\" x=\"%.1f\" y=\"%.1f\" width=\"%.2f\" height=\"%.1f\"",
                    oc_class[s->oc], x0, y, w, h);
            if (detail) {
                fputc('>', o);
                span_tip(o, m, l, s);
                fputs("</rect>\n", o);
            } else {
                fputs("/>\n", o);
            }
            continue;
        }
        long col = (long)floor(x0);
        if (b.col_open && col == b.col) {
            if (x1 > b.cx1)
                b.cx1 = x1;
            if (s->oc > b.cworst)
                b.cworst = s->oc;
            continue;
        }
        busy_close_col(o, &b, y, h);
        b.col_open = true;
        b.col = col;
        b.cx0 = (double)col; /* whole pixels: touching bars leave no seam */
        b.cx1 = x1;
        b.cworst = s->oc;
    }
    busy_close_col(o, &b, y, h);
    busy_flush_run(o, &b, y, h);
}

static void mark_tip(FILE *o, const struct mark *mk)
{
    char t[48];
    fmt_time(t, sizeof t, mk->ts);
    fprintf(o, "<title>%s at %s", mk_class[mk->kind], t);
    if (mk->wpid >= 0)
        fprintf(o, ", worker pid %lld", (long long)mk->wpid);
    if (mk->flags & SF_SIGNAL)
        fprintf(o, ", signal %d", (int)mk->code);
    else if (mk->flags & SF_EXIT)
        fprintf(o, ", exit %d", (int)mk->code);
    fputs("</title>", o);
}

static void draw_lane_marks(FILE *o, const struct layout *L, const struct lane *l, double y,
                            double h, bool tips)
{
    double last_x[MK_N];
    for (int k = 0; k < MK_N; k++)
        last_x[k] = -1e9;
    for (size_t k = 0; k < l->nmarks; k++) {
        const struct mark *mk = &l->marks[k];
        double x = tx(L, mk->ts);
        if (!tips && x - last_x[mk->kind] < 1.0)
            continue; /* one mark of a kind per pixel */
        last_x[mk->kind] = x;
        fprintf(o, "<path class=\"mark %s\" d=\"M%.1f %.1fv%.1f", mk_class[mk->kind], x, y, h);
        double a = h < 10 ? h / 2 : 5; /* the size of the head */
        switch (mk->kind) {
        case MK_DEATH: /* a triangle pointing down from the top */
            fprintf(o, "M%.1f %.1fh%.1fl%.1f %.1fz", x - a * 0.7, y, a * 1.4, -a * 0.7, a);
            break;
        case MK_RESPAWN: /* a triangle pointing up from the bottom */
            fprintf(o, "M%.1f %.1fh%.1fl%.1f %.1fz", x - a * 0.7, y + h, a * 1.4, -a * 0.7, -a);
            break;
        default: /* a diamond in the middle */
            fprintf(o, "M%.1f %.1fl%.1f %.1fl%.1f %.1fl%.1f %.1fz", x, y + h / 2 - a * 0.8,
                    a * 0.6, a * 0.8, -a * 0.6, a * 0.8, -a * 0.6, -a * 0.8);
            break;
        }
        fputc('"', o);
        if (tips) {
            fputc('>', o);
            mark_tip(o, mk);
            fputs("</path>\n", o);
        } else {
            fputs("/>\n", o);
        }
    }
}

/* one step curve of a pool's counter: at most one point per pixel column,
 * the column's maximum; a missing value keeps the one before */
static void draw_series(FILE *o, const struct layout *L, const struct pool *p, bool inflight,
                        double ybase, double h, double vmax, double tend)
{
    double prev = 0, colmax = 0;
    long col = LONG_MIN;
    bool started = false;
    fprintf(o, "<path class=\"%s\" d=\"", inflight ? "inflight" : "queued");
    for (size_t k = 0; k < p->nsamples; k++) {
        double v = inflight ? p->samples[k].inflight : p->samples[k].queued;
        if (isnan(v))
            v = prev;
        prev = v;
        double x = tx(L, p->samples[k].ts);
        long c = (long)floor(x);
        if (c == col) {
            if (v > colmax) {
                colmax = v;
                /* the column's value rises: redraw its level */
                fprintf(o, "V%.1f", ybase - colmax / vmax * h);
            }
            continue;
        }
        col = c;
        colmax = v;
        double y = ybase - v / vmax * h;
        if (!started) {
            fprintf(o, "M%.1f %.1f", x, y);
            started = true;
        } else {
            fprintf(o, "H%.1fV%.1f", x, y);
        }
    }
    if (started)
        fprintf(o, "H%.1f", tx(L, tend));
    fputs("\"/>\n", o);
}

static const char style[] =
    "<style>\n"
    "text{fill:#222}\n"
    ".title{font-size:15px;font-weight:bold}\n"
    ".sub{fill:#555}\n"
    ".tick{stroke:#e2e2e2;stroke-width:1}\n"
    ".tl{font-size:10px;fill:#555;text-anchor:middle}\n"
    ".tv{font-size:10px;fill:#555}\n"
    ".head{fill:#e8ecf2}\n"
    ".headt{font-weight:bold}\n"
    ".alt{fill:#f6f6f6}\n"
    ".lane{font-size:10px}\n"
    ".ok{fill:#2ca02c}.etask{fill:#ff7f0e}.eworker{fill:#d62728}\n"
    ".tmo{fill:#9467bd}.cancelled{fill:#7f7f7f}.other{fill:#b0b0b0}\n"
    ".busy{shape-rendering:crispEdges}\n"
    ".death{fill:#ff3030;stroke:#700000}\n"
    ".respawn{fill:#3d7bff;stroke:#0a2a80}\n"
    ".timeout{fill:#c9a0ff;stroke:#3b1670}\n"
    ".terminate{stroke:#000;stroke-width:1.5;stroke-dasharray:4 3}\n"
    ".queued{fill:none;stroke:#1f77b4;stroke-width:1.5}\n"
    ".inflight{fill:none;stroke:#8c564b;stroke-width:1.5}\n"
    ".axis{stroke:#888;stroke-width:1}\n"
    "</style>\n";

static void svg_head(FILE *o, int w, double h, const char *fname)
{
    fprintf(o,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%.0f\" "
            "viewBox=\"0 0 %d %.0f\" font-family=\"sans-serif\" font-size=\"11\">\n",
            w, h, w, h);
    fputs("<title>procpool trace: ", o);
    put_esc(o, fname, 200);
    fputs("</title>\n", o);
    fputs(style, o);
    fprintf(o, "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%.0f\" fill=\"#fff\"/>\n", w, h);
    fputs("<text class=\"title\" x=\"10\" y=\"22\">procpool trace: ", o);
    put_esc(o, fname, 120);
    fputs("</text>\n", o);
}

/* ticks: a 1-2-5 step for about eight of them, in a unit for the span */
static void draw_axis(FILE *o, const struct layout *L, double ytop, double ybot)
{
    double raw = L->span / 8, p = pow(10, floor(log10(raw))), f = raw / p;
    double step = (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * p;
    double div = L->span < 2000 ? 1 : L->span < 2e6 ? 1e3 : 1e6;
    const char *unit = div == 1 ? "\xc2\xb5s" : div == 1e3 ? "ms" : "s";
    int dec = (int)-floor(log10(step / div) + 1e-9);
    if (dec < 0)
        dec = 0;
    fprintf(o, "<line class=\"axis\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", L->x0,
            ytop, L->x0 + L->pw, ytop);
    for (double t = ceil(L->t0 / step - 1e-9) * step; t <= L->t0 + L->span * (1 + 1e-9);
         t += step) {
        double x = tx(L, t);
        fprintf(o, "<line class=\"tick\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", x,
                ytop, x, ybot);
        fprintf(o, "<text class=\"tl\" x=\"%.1f\" y=\"%.1f\">%.*f %s</text>\n", x, ytop - 4, dec,
                fabs(t / div) < 1e-12 ? 0.0 : t / div, unit);
    }
}

static void legend_box(FILE *o, double *x, double y, const char *cls, const char *label)
{
    fprintf(o, "<rect class=\"%s\" x=\"%.1f\" y=\"%.1f\" width=\"14\" height=\"10\"/>", cls, *x,
            y - 9);
    fprintf(o, "<text x=\"%.1f\" y=\"%.1f\">%s</text>\n", *x + 18, y, label);
    *x += 26 + 6.2 * (double)strlen(label);
}

static void legend_line(FILE *o, double *x, double y, const char *cls, const char *label)
{
    fprintf(o, "<path class=\"%s\" d=\"M%.1f %.1fh16\"/>", cls, *x, y - 4);
    fprintf(o, "<text x=\"%.1f\" y=\"%.1f\">%s</text>\n", *x + 20, y, label);
    *x += 28 + 6.2 * (double)strlen(label);
}

static void legend_mark(FILE *o, double *x, double y, int kind, const char *label)
{
    struct mark mk = {.kind = (uint8_t)kind};
    struct lane l = {.marks = &mk, .nmarks = 1};
    struct layout L = {.x0 = *x + 6, .pw = 1, .t0 = 0, .span = 1};
    if (kind == MK_TERMINATE)
        fprintf(o, "<line class=\"terminate\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>",
                *x + 6, y - 11, *x + 6, y + 2);
    else
        draw_lane_marks(o, &L, &l, y - 11, 13, false);
    fprintf(o, "<text x=\"%.1f\" y=\"%.1f\">%s</text>\n", *x + 16, y, label);
    *x += 24 + 6.2 * (double)strlen(label);
}

#define COUNTER_H 56.0

/* the picture (write errors show in ferror(o)) */
static void render(FILE *o, struct model *m, const char *fname, int width)
{
    char buf[64];
    if (!m->have_time) {
        svg_head(o, width, 90, fname);
        fprintf(o,
                "<text class=\"sub\" x=\"10\" y=\"44\">no events (%zu pools, %zu lanes named)"
                "</text>\n"
                "<text x=\"%d\" y=\"72\" text-anchor=\"middle\" font-size=\"16\">no events</text>\n"
                "</svg>\n",
                m->npools, m->nlanes, width / 2);
        return;
    }

    /* sort everything in time, and the lanes into pools */
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
    size_t *porder = xcalloc(m->npools, sizeof *porder);
    size_t *lorder = xcalloc(m->nlanes, sizeof *lorder);
    pool_rank = xcalloc(m->npools, sizeof *pool_rank);
    for (size_t i = 0; i < m->npools; i++)
        porder[i] = i;
    sort_n(porder, m->npools, sizeof *porder, cmp_pool_idx);
    for (size_t i = 0; i < m->npools; i++)
        pool_rank[porder[i]] = i;
    for (size_t i = 0; i < m->nlanes; i++)
        lorder[i] = i;
    sort_n(lorder, m->nlanes, sizeof *lorder, cmp_lane_idx);

    struct layout L = {.x0 = 200, .width = width};
    L.pw = width - L.x0 - 32;
    L.t0 = m->t0;
    L.span = m->t1 - m->t0;
    if (L.span <= 0)
        L.span = 1;
    L.rowh = m->nlanes <= 100 ? 18 : m->nlanes <= 400 ? 8 : 3;
    L.headh = m->npools <= 100 ? 20 : 8;
    bool detail = m->nspans <= DETAIL_MAX;
    size_t nmarks = 0;
    for (int k = 0; k < MK_N; k++)
        nmarks += m->nmarks_kind[k];
    bool mtips = nmarks <= MARK_TIPS_MAX;

    size_t ncounters = 0;
    for (size_t i = 0; i < m->npools; i++)
        ncounters += m->pools[i].nsamples > 0;

    double chart_top = 74;
    double chart_h = (double)m->npools * L.headh + (double)m->nlanes * L.rowh;
    double counters_top = chart_top + chart_h + 16;
    double counters_h = ncounters ? 22 + (double)ncounters * (COUNTER_H + 14) : 0;
    double legend_top = counters_top + counters_h + 8;
    double height = legend_top + (detail ? 50 : 66);
    svg_head(o, width, height, fname);

    /* the totals */
    fputs("<text class=\"sub\" x=\"10\" y=\"42\">", o);
    if (m->ntasks || !m->njobs)
        fprintf(o, "%zu tasks", m->ntasks);
    if (m->njobs)
        fprintf(o, "%s%zu jobs", m->ntasks ? ", " : "", m->njobs);
    fprintf(o, ", %zu failed", m->nfailed);
    if (m->ncancelled)
        fprintf(o, ", %zu cancelled", m->ncancelled);
    fprintf(o, "; %zu deaths, %zu respawns, %zu timeouts", m->nmarks_kind[MK_DEATH],
            m->nmarks_kind[MK_RESPAWN], m->nmarks_kind[MK_TIMEOUT]);
    if (m->nmarks_kind[MK_TERMINATE])
        fprintf(o, ", %zu terminated", m->nmarks_kind[MK_TERMINATE]);
    fmt_time(buf, sizeof buf, L.span);
    fprintf(o, "; %zu pools, %zu lanes; %s</text>\n", m->npools, m->nlanes, buf);

    draw_axis(o, &L, chart_top - 8, chart_top + chart_h);

    /* pools and lanes */
    double y = chart_top;
    size_t li = 0;
    for (size_t pi = 0; pi < m->npools; pi++) {
        const struct pool *p = &m->pools[porder[pi]];
        double pool_top = y;
        fprintf(o, "<g class=\"pool\">\n<rect class=\"head\" x=\"0\" y=\"%.1f\" width=\"%d\" "
                   "height=\"%.1f\"/>\n",
                y, width, L.headh - 1);
        if (L.headh >= 12) {
            fprintf(o, "<text class=\"headt\" x=\"6\" y=\"%.1f\">", y + L.headh - 6);
            if (p->name)
                put_esc(o, p->name, 150);
            else
                fprintf(o, "pid %lld", (long long)p->pid);
            fputs("</text>\n", o);
        }
        y += L.headh;
        size_t alt = 0;
        for (; li < m->nlanes && m->lanes[lorder[li]].pool == porder[pi]; li++, alt++) {
            const struct lane *l = &m->lanes[lorder[li]];
            fputs("<g class=\"lane\">", o);
            if (alt % 2)
                fprintf(o, "<rect class=\"alt\" x=\"0\" y=\"%.1f\" width=\"%d\" height=\"%.1f\"/>",
                        y, width, L.rowh);
            if (L.rowh >= 8) {
                fprintf(o, "<text class=\"lane\" x=\"16\" y=\"%.1f\">", y + L.rowh - 5);
                if (l->name)
                    put_esc(o, l->name, 30);
                else
                    fprintf(o, "tid %lld", (long long)l->tid);
                fputs("</text>", o);
            }
            fputc('\n', o);
            double sy = L.rowh >= 8 ? y + 2 : y, sh = L.rowh >= 8 ? L.rowh - 4 : L.rowh - 0.5;
            draw_lane_spans(o, m, &L, l, sy, sh, detail);
            draw_lane_marks(o, &L, l, y + 1, L.rowh - 2, mtips);
            fputs("</g>\n", o);
            y += L.rowh;
        }
        for (size_t k = 0; k < p->nterms; k++) {
            double x = tx(&L, p->terms[k].ts);
            fprintf(o, "<line class=\"terminate\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\">",
                    x, pool_top, x, y);
            mark_tip(o, &p->terms[k]);
            fputs("</line>\n", o);
        }
        fputs("</g>\n", o);
    }

    for (size_t k = 0; k < m->ngterms; k++) { /* across every pool */
        double x = tx(&L, m->gterms[k].ts);
        fprintf(o, "<line class=\"terminate\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\">",
                x, chart_top, x, y);
        mark_tip(o, &m->gterms[k]);
        fputs("</line>\n", o);
    }

    /* counters */
    if (ncounters) {
        double cy = counters_top;
        fprintf(o, "<text class=\"headt\" x=\"6\" y=\"%.1f\">queue</text>\n", cy + 12);
        cy += 22;
        for (size_t pi = 0; pi < m->npools; pi++) {
            const struct pool *p = &m->pools[porder[pi]];
            if (!p->nsamples)
                continue;
            double vmax = 1, mq = 0, mf = 0;
            for (size_t k = 0; k < p->nsamples; k++) {
                if (p->samples[k].queued > mq)
                    mq = p->samples[k].queued;
                if (p->samples[k].inflight > mf)
                    mf = p->samples[k].inflight;
            }
            vmax = mq > vmax ? mq : vmax;
            vmax = mf > vmax ? mf : vmax;
            double base = cy + COUNTER_H;
            fprintf(o, "<g class=\"counter\">\n<text class=\"lane\" x=\"16\" y=\"%.1f\">", cy + 10);
            if (p->name)
                put_esc(o, p->name, 30);
            else
                fprintf(o, "pid %lld", (long long)p->pid);
            fprintf(o, "</text>\n<text class=\"lane\" x=\"16\" y=\"%.1f\">max queued %.0f, "
                       "in flight %.0f</text>\n",
                    cy + 24, mq, mf);
            fprintf(o, "<line class=\"axis\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n",
                    L.x0, base, L.x0 + L.pw, base);
            fprintf(o, "<line class=\"axis\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n",
                    L.x0, cy, L.x0, base);
            fprintf(o, "<text class=\"tv\" x=\"%.1f\" y=\"%.1f\">%.0f</text>\n",
                    L.x0 + 4, cy + 8, vmax);
            draw_series(o, &L, p, false, base, COUNTER_H - 2, vmax, m->t1);
            draw_series(o, &L, p, true, base, COUNTER_H - 2, vmax, m->t1);
            fputs("</g>\n", o);
            cy += COUNTER_H + 14;
        }
    }

    /* the legend */
    double lx = 10, ly = legend_top + 14;
    fputs("<g class=\"legend\">\n", o);
    legend_box(o, &lx, ly, "ok", "ok");
    legend_box(o, &lx, ly, "etask", "PP_ETASK / failed");
    legend_box(o, &lx, ly, "eworker", "PP_EWORKER / killed");
    legend_box(o, &lx, ly, "tmo", "PP_ETASKTIMEOUT / timeout");
    legend_box(o, &lx, ly, "cancelled", "cancelled");
    legend_box(o, &lx, ly, "other", "no outcome");
    lx = 10, ly += 22;
    legend_mark(o, &lx, ly, MK_DEATH, "worker death");
    legend_mark(o, &lx, ly, MK_RESPAWN, "respawn");
    legend_mark(o, &lx, ly, MK_TIMEOUT, "task timeout");
    legend_mark(o, &lx, ly, MK_TERMINATE, "pool terminated");
    legend_line(o, &lx, ly, "queued", "queued");
    legend_line(o, &lx, ly, "inflight", "in flight");
    if (!detail)
        fprintf(o, "<text class=\"sub\" x=\"10\" y=\"%.1f\">%zu spans: spans narrower than a "
                   "pixel are merged into busy bars of their worst outcome; no tooltips</text>\n",
                ly + 20, m->nspans);
    fputs("</g>\n</svg>\n", o);

    free(porder);
    free(lorder);
    free(pool_rank);
    pool_rank = NULL;
}

/* ------------------------------------------------------------------ */
/* main                                                                */
/* ------------------------------------------------------------------ */

static void usage(FILE *o)
{
    fprintf(o,
            "usage: %s [-o OUT.svg] [-w WIDTH] [FILE]\n"
            "Draw a procpool trace file (PROCPOOL_TRACE=FILE, procpool --trace FILE) as one\n"
            "self-contained SVG: a lane per worker or job slot, spans coloured by outcome,\n"
            "deaths, respawns, timeouts, and the queue under it.\n"
            "  FILE           the trace; '-' or none: standard input (may be cut short)\n"
            "  -o, --output OUT  write the SVG to OUT instead of standard output\n"
            "  -w, --width N  the picture's width in pixels (400-20000; default 1200)\n"
            "  -h, --help     this text\n"
            "  -V, --version  the version\n",
            prog);
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"output", required_argument, NULL, 'o'}, {"width", required_argument, NULL, 'w'},
        {"help", no_argument, NULL, 'h'},         {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0}};
    const char *out = NULL;
    int width = 1200, c;

    while ((c = getopt_long(argc, argv, "o:w:hV", longopts, NULL)) != -1) {
        switch (c) {
        case 'o':
            out = optarg;
            break;
        case 'w': {
            char *end;
            errno = 0;
            long v = strtol(optarg, &end, 10);
            if (errno || *end || end == optarg || v < 400 || v > 20000) {
                fprintf(stderr, "%s: -w %s: the width is a number of pixels, 400 to 20000\n",
                        prog, optarg);
                return 2;
            }
            width = (int)v;
            break;
        }
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("%s %s\n", prog, PROCPOOL_TRACE_VERSION);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (argc - optind > 1) {
        fprintf(stderr, "%s: one trace file at a time\n", prog);
        usage(stderr);
        return 2;
    }
    const char *path = optind < argc ? argv[optind] : "-";
    bool is_stdin = !strcmp(path, "-");
    const char *fname = is_stdin ? "(standard input)" : path;

    FILE *in = is_stdin ? stdin : fopen(path, "r");
    if (!in) {
        fprintf(stderr, "%s: %s: %s\n", prog, path, strerror(errno));
        return 1;
    }
    struct model m = {0};
    int rc = read_trace(&m, in, fname);
    if (!is_stdin)
        fclose(in);
    if (rc) {
        model_free(&m);
        return 1;
    }

    FILE *o = stdout;
    if (out && strcmp(out, "-")) {
        o = fopen(out, "w");
        if (!o) {
            fprintf(stderr, "%s: %s: %s\n", prog, out, strerror(errno));
            model_free(&m);
            return 1;
        }
    }
    static char obuf[1 << 16];
    setvbuf(o, obuf, _IOFBF, sizeof obuf);
    const char *base = strrchr(fname, '/');
    render(o, &m, base && base[1] ? base + 1 : fname, width);
    model_free(&m);
    bool bad = ferror(o) != 0;
    if (o == stdout)
        bad |= fflush(o) != 0;
    else
        bad |= fclose(o) != 0;
    if (bad) {
        fprintf(stderr, "%s: %s: cannot write: %s\n", prog, out ? out : "standard output",
                strerror(errno));
        if (o != stdout)
            unlink(out);
        return 1;
    }
    return 0;
}
