/*
 * trace_model.h - procpool-trace: the model of a trace, shared by its two
 * halves.
 *
 * DESIGN
 *
 * procpool-trace is two files along one seam: trace_read.c reads the trace
 * (jansson, events, pools, lanes) into a struct model and puts it in order
 * (model_sort); trace_svg.c draws the model as SVG and holds main. Only what
 * crosses that seam is here: the data model (pools, lanes, spans, marks,
 * counter samples, with the hash map and string table it embeds), the
 * reading and sorting entry points, and the few helpers both sides use
 * (prog, xcalloc). The whole program's design is described at the top of
 * trace_svg.c, the reader's at the top of trace_read.c.
 */
#ifndef PROCPOOL_TRACE_MODEL_H
#define PROCPOOL_TRACE_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* the program's name, for messages */
extern const char *prog;

/* calloc, or exit 1 with a message; never NULL, even for no elements */
void *xcalloc(size_t n, size_t size);

/* ------------------------------------------------------------------ */
/* hash maps: (int64, int64) -> index, and interned strings            */
/* ------------------------------------------------------------------ */

struct imap {
    int64_t *keys; /* 2 per slot */
    size_t *vals;  /* index + 1; 0 = empty */
    size_t cap, n;
};

struct strtab {
    char **str;
    size_t n, cap;
    uint32_t *slots; /* index + 1; 0 = empty */
    size_t scap;
};

/* ------------------------------------------------------------------ */
/* the model                                                           */
/* ------------------------------------------------------------------ */

/* outcomes, in order of severity: a busy bar takes its worst */
enum outcome { OC_OK, OC_OTHER, OC_CANCELLED, OC_ETASK, OC_TIMEOUT, OC_EWORKER, OC_N };

enum { SF_JOB = 1, SF_SIGNAL = 2, SF_EXIT = 4 };

struct span {
    double ts, dur;
    uint32_t name;
    int32_t code; /* signal or exit status, as flags say */
    uint8_t oc, flags;
};

enum mark_kind { MK_DEATH, MK_RESPAWN, MK_TIMEOUT, MK_TERMINATE, MK_N };

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

/* read the whole trace into *m (zeroed); 0, or -1 with a message printed */
int read_trace(struct model *m, FILE *in, const char *fname);

/* sort every lane's and pool's events in time, and fill porder (npools
 * entries) with the pools and lorder (nlanes entries) with the lanes in
 * picture order: pools by process_sort_index, then pid; lanes by pool, then
 * thread_sort_index, then tid */
void model_sort(struct model *m, size_t *porder, size_t *lorder);

void model_free(struct model *m);

#endif
