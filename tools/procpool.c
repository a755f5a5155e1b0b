/*
 * procpool.c - the `procpool` command: GNU parallel's interface on the
 * procpool library.
 *
 * The parent reads the inputs (::: words, :::: files, stdin lines, --pipe
 * blocks, --pipe-part ranges), turns each job into a record (job_hdr_t and
 * its arguments) and streams them through pp_imap_feed, ordered for -k and
 * unordered otherwise: memory stays bounded however long the input is. Each
 * record runs as one pool task in a worker (cli_job.c), which expands the
 * command, starts the job and captures its output. The parent prints each
 * job's output in one piece when its result arrives, so output is grouped
 * and never interleaved, and writes the joblog, applies --halt, draws
 * --bar/--eta and counts failures for the exit status.
 *
 * Signals: SIGINT/SIGTERM/SIGHUP are blocked in every thread and taken by a
 * signal thread. SIGINT/SIGTERM terminate the pool (each worker's SIGTERM
 * handler kills its job's process group) and exit 255, as GNU parallel;
 * SIGHUP starts no new job and lets the running ones finish.
 *
 * Memory is bounded in every output mode: a job's output past
 * CLI_SPILL_AT bytes goes to a temporary file (cli_out.c), --line-buffer
 * keeps only a partial line, and a failed write of the output (EPIPE, a
 * full disk) ends the run. Other temporary files: --files, --cat, --fifo
 * and the copy of a piped stdin that --tee and --round-robin read
 * (cli_run.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

static cli_opts_t opts;

/* ---------------------------------------------------------------- */
/* help                                                              */
/* ---------------------------------------------------------------- */

static void cli_version(void) {
    printf("procpool %s\n"
           "A job runner with GNU parallel's interface, built on the procpool library.\n"
           "Copyright (c) 2026 the procpool authors. MIT licence.\n",
           pp_version_string());
}

static void cli_usage(void) {
    fputs("Usage: procpool [OPTIONS] COMMAND [ARG...] ::: A B C [::: X Y ...] [:::: FILE]\n"
          "       procpool [OPTIONS] COMMAND [ARG...] < LINES\n"
          "       procpool [OPTIONS] --pipe COMMAND < DATA\n"
          "Run COMMAND once for each input (or combination of inputs), several at a time.\n"
          "\n"
          "Inputs:\n"
          "  ::: A B C           the arguments A, B, C; several groups: every combination\n"
          "  :::: FILE           one argument per line of FILE ('-' is stdin)\n"
          "  -a, --arg-file FILE the same as :::: FILE\n"
          "  (none)              one argument per line of stdin\n"
          "  -0, --null          inputs end with NUL instead of newline; -d C: with C\n"
          "  -N, -n N            N arguments per job ({1}..{N}); with --pipe: N records\n"
          "                      per job; -N0: a job per input, given none of it\n"
          "  :::+ B, ::::+ F     read along with the source before (to the shorter one)\n"
          "  --link              every source read along (the shorter ones wrap)\n"
          "  -C, --colsep RE     split each input into columns {1} {2} ... (POSIX ERE)\n"
          "  --header :          the first input of each source names it ({name});\n"
          "                      --pipe, --pipe-part: the first line goes before each block\n"
          "  -m, -X, --xargs     as many arguments per job as the line takes (-s N chars);\n"
          "                      -X repeats the word with {}; --xargs does not spread\n"
          "  -L N, -l [N]        N lines per job (-L as -X, -l as -m; -L 0: none given)\n"
          "  -r                  no job for an input of white space only\n"
          "  -E STR              the input ends at the line STR\n"
          "  --arg-sep S, --arg-file-sep S  use S instead of ::: and ::::\n"
          "  --shuf              run the jobs in a random order\n"
          "  --retry-failed      run the failed commands of --joblog FILE again\n"
          "Replacement strings (no replacement string: the arguments are appended):\n"
          "  {}  argument        {.}  without extension     {/}  basename     {//} dirname\n"
          "  {/.} basename without extension    {#} job number    {%} job slot\n"
          "  {N} {N.} {N/} {N//} {N/.}  the N-th input source (or argument with -N)\n"
          "  -I STR              use STR instead of {}\n"
          "  --replace, -i [STR] the same; the value is optional (none: {})\n"
          "  {= perl =}, {=N perl =}  $_ after the Perl expression ran on the argument\n"
          "  --plus              also {..} {...} {/..} {/...} {+.} {+..} {+...} {+/} {##}\n"
          "                      {0#} {0%}; by perl: {:N:M} {#RE} {%RE} {/RE/S} {^RE} ...\n"
          "  -q, --quote         each command word stays one word (no shell syntax)\n"
          "Running:\n"
          "  -j, --jobs N        N jobs at a time; N% of the CPUs; +N/-N CPUs plus/minus N;\n"
          "                      0 as many as possible (default: the CPU count)\n"
          "  --shell, --no-shell always / never run through the shell (default: only when\n"
          "                      the command has shell syntax). The shell: $PARALLEL_SHELL,\n"
          "                      else the shell procpool runs under, else $SHELL, /bin/sh\n"
          "  --timeout DURATION  TERM, then KILL, a job's process group after DURATION:\n"
          "                      seconds, or with units s, m, h, d (1m30s, 1.4m, 2h); 0: no\n"
          "                      timeout\n"
          "  --retries N         run a failing job up to N times\n"
          "  --halt WHEN,WHAT=N  WHEN: now|soon; WHAT: fail|success|done; N or N%\n"
          "  --dry-run           print the commands, run nothing\n"
          "  --delay DURATION    start the jobs at least DURATION apart\n"
          "  --load N[%], --memfree SIZE  start a job only below that load average /\n"
          "                      with that much memory available\n"
          "  --nice N            run the jobs at niceness N\n"
          "  --joblog FILE       log every job (Seq Host Starttime JobRuntime Send Receive\n"
          "                      Exitval Signal Command, tab-separated); +FILE appends,\n"
          "                      - writes to stdout\n"
          "  --trace FILE        write the jobs' timeline to FILE (Chrome trace JSON, for\n"
          "                      Perfetto or procpool-trace): a lane per job slot, a span\n"
          "                      per job (each attempt) with its exit, signal, outcome\n"
          "  --resume            skip the jobs already in the joblog\n"
          "  --resume-failed     also run again the jobs the joblog has as failed\n"
          "Output:\n"
          "  (default)           each job's stdout, then its stderr, printed when it ends\n"
          "  -k, --keep-order    print in input order\n"
          "  --tag               prefix each line with the arguments and a TAB\n"
          "  --tagstring STR     prefix each line with STR (replacement strings) and a TAB\n"
          "  --results DIR       each job's output in DIR/1/ARG/{stdout,stderr,seq}, or in\n"
          "                      NAME, NAME.err, NAME.seq for a NAME with {}\n"
          "  --files             print the names of files that hold each job's stdout\n"
          "  --tmpdir DIR        where temporary files go (default $TMPDIR, /tmp)\n"
          "  --progress          progress on stderr\n"
          "  --line-buffer       print whole lines as they come (with -k: in job order,\n"
          "                      only the oldest job streaming)\n"
          "  -u, --ungroup       no capture: jobs write straight to stdout/stderr\n"
          "  -v                  print each command on stdout, before its output\n"
          "  -t, --verbose       print each command on stderr as it starts\n"
          "  --bar, --eta        progress on stderr (--bar: only when it is a terminal)\n"
          "Blocks:\n"
          "  --pipe              cut stdin into blocks, one per job's stdin\n"
          "  --block SIZE        block size (default 1M): k, m, g are 1000, 1000^2, 1000^3;\n"
          "                      K, M, G (or ki, mi, gi) 1024, 1024^2, 1024^3. --pipe-part:\n"
          "                      -N: N parts per job slot (default -10)\n"
          "  --recend STR        record end (default \\n); --recstart STR record start\n"
          "  --pipe-part -a FILE like --pipe over FILE, read by the jobs' workers\n"
          "  --tee               with ::: inputs: each job gets all of stdin\n"
          "  --round-robin       the blocks shared out among one job per slot\n"
          "  --cat, --fifo       {} is a file (a fifo) that holds the block\n"
          "Other: -h, --help; -V, --version; --group (the default); --no-keep-order;\n"
          "       --will-cite (accepted, no effect); --shellquote (print the inputs\n"
          "       quoted); --number-of-cpus, -cores, -threads, -sockets\n"
          "Options are read from ~/.parallel/config and $PARALLEL first. Remote\n"
          "  execution (-S, --sshlogin, --env, ...) is not supported.\n"
          "Long options: any of GNU parallel's names (--jl, --linebuffer, --blocksize,\n"
          "  --dr, --keeporder, ...), any case, abbreviated to any prefix that is not\n"
          "  ambiguous among all of GNU parallel's options\n"
          "Exit status: the number of failed jobs (101 for more than 100), 255 on errors\n"
          "and on SIGINT/SIGTERM (which kill the jobs), 141 when stdout is closed.\n"
          "SIGHUP: start no new job, let the running ones finish.\n",
          stdout);
}

/* Parse argv into opts; --help/--version print and exit 0, errors exit 255. */
static void cli_parse(cli_opts_t *o, int argc, char **argv) {
    char err[1024];
    int rc = cli_parse_args(o, argc, argv, err, sizeof err);
    if (rc == CLI_PARSE_HELP) {
        cli_usage();
        exit(0);
    }
    if (rc == CLI_PARSE_VERSION) {
        cli_version();
        exit(0);
    }
    if (rc < 0)
        die("%s", err);
}

/* ---------------------------------------------------------------- */
/* inputs                                                            */
/* ---------------------------------------------------------------- */

static FILE *open_input(const char *path) {
    if (strcmp(path, "-") == 0)
        return stdin;
    FILE *f = fopen(path, "re");
    if (!f)
        die("cannot open input file '%s': %s", path, strerror(errno));
    return f;
}

/* Next record of f, without its delimiter; NULL at the end. */
static char *read_record(FILE *f) {
    static char *line;
    static size_t cap;
    if (opts.delim_str) { /* -d of several characters: read to its last one, look back */
        sbuf_t rec = {0};
        char last = opts.delim_str[opts.delim_len - 1];
        ssize_t n;
        while ((n = getdelim(&line, &cap, last, f)) > 0) {
            sb_add(&rec, line, (size_t)n);
            if (rec.len >= opts.delim_len &&
                memcmp(rec.p + rec.len - opts.delim_len, opts.delim_str, opts.delim_len) == 0) {
                rec.len -= opts.delim_len;
                rec.p[rec.len] = 0;
                return rec.p;
            }
        }
        if (!rec.p)
            return NULL;
        return rec.p;
    }
    ssize_t n = getdelim(&line, &cap, opts.delim, f);
    if (n < 0)
        return NULL;
    if (n > 0 && line[n - 1] == opts.delim)
        line[--n] = 0;
    return xstrndup(line, (size_t)n);
}

typedef struct {
    uint64_t total; /* jobs, when known */
    bool total_known;
} inputs_t;

static inputs_t inputs;

/* The inputs (cli_input.c): sources, values, tuples, the jobs' arguments. */
static void inputs_open(void) {
    if (opts.pipe || opts.pipe_part)
        return;
    char err[400];
    if (cli_inputs_open(&opts, read_record, open_input, err, sizeof err) < 0)
        die("%s", err);
    if (cli_input_names() && cli_tmpl_reparse(&opts, cli_input_names(), err, sizeof err) < 0)
        die("%s", err);
    uint64_t tuples;
    if (opts.multi == MULTI_NONE && cli_inputs_total(&tuples)) {
        long per = opts.max_args ? opts.max_args : 1;
        inputs.total = (uint64_t)ceil((double)tuples / (double)per);
        inputs.total_known = true;
    }
}

static void free_args(strvec_t *a) {
    for (size_t i = 0; i < a->n; i++)
        free(a->v[i]);
    a->n = 0;
}

/* The next job's arguments (and the values of its {= =}); false at the
 * end. *skip: an expression called skip(). */
static bool next_job_args(strvec_t *args, uint64_t seq, bool *skip) {
    free_args(args);
    char err[400];
    bool more = cli_next_job(args, err, sizeof err);
    if (err[0])
        die("%s", err);
    *skip = more && !cli_perl_values(&opts.tmpl, args, seq, inputs.total_known ? inputs.total : 0);
    return more;
}

/* ---------------------------------------------------------------- */
/* --pipe: stdin in blocks cut on record boundaries                  */
/* ---------------------------------------------------------------- */

#define HDR sizeof(job_hdr_t)

typedef struct {
    sbuf_t buf;      /* HDR bytes of room, then data */
    size_t consumed; /* bytes of the previous block still to drop */
    bool eof;
    /* stdin is a regular file: it is mapped, blocks are cut in the map and
     * sent as byte ranges (JOB_RANGE), and no data passes through here */
    const char *map;
    size_t msize, mpos, boff; /* boff: the last block's offset in the map */
    uint64_t mbase;           /* the map's offset in the file */
    size_t fwd;               /* find_cut: where its forward search goes on */
    bool back_done;           /* find_cut: no boundary within the block */
    long count;               /* find_cut, -N: records counted */
    uint64_t roff;            /* the last block's offset (map: in the file; spool: in the stream) */
    bool rranged;             /* the last block is a range (map, spool), not in piper.buf */
    /* stdin is a pipe: it is read into a ring (the spool: a memfd the
     * workers inherit, mapped twice end to end so that any R bytes of it
     * are contiguous here), stream offset o at o % R; blocks are cut there
     * and sent as ranges of stream offsets (JOB_RANGE with g_wcfg.part_ring
     * set), which the worker splices into the job's stdin. One copy here,
     * none in the worker, against three when blocks travel in the items,
     * and the ring's pages are used again, lap after lap. The ring is
     * free from the oldest block still out (sq) to the data not yet cut;
     * a block that does not fit (a record longer than the room, a job that
     * holds its block for long) is read into piper.buf and travels as an
     * item (spilled), and the data goes back to the ring when it fits. */
    int sfd;                 /* the spool, -1: blocks through piper.buf */
    char *sw;                /* its mapping: 2R bytes, [R, 2R) repeats [0, R) */
    uint64_t sring;          /* R */
    uint64_t sdstart, sdend; /* stream offsets of the data not yet cut */
    uint64_t spop;           /* the ring is populated up to here (first lap) */
    bool spilled;            /* the data not yet cut is in piper.buf */
    struct spool_out {
        size_t idx;
        uint64_t start;
        bool done;
    } * sq; /* fed, in order */
    size_t sq_head, sq_n, sq_cap;
} piper_t;

static piper_t piper = {.sfd = -1};

static recsep_t RS;

/* Forget what the searches of the last block left (a block was cut). */
static void cut_reset(void) {
    piper.fwd = 0;
    piper.back_done = false;
    piper.count = 0;
}

/* Find the cut: -1 when more data is needed. Each byte is looked at a
 * bounded number of times however the data arrives (piper.fwd, piper.count and
 * piper.back_done carry the searches over from the last call). */
static ssize_t find_cut(const char *d, size_t len) {
    size_t resume;
    if (opts.max_args) { /* -N: exactly N records */
        size_t b = piper.fwd ? piper.fwd : 1;
        for (;;) {
            size_t c = rec_next(&RS, d, len, b, &resume);
            if (!c) {
                piper.fwd = resume;
                break;
            }
            if (++piper.count == opts.max_args)
                return (ssize_t)c;
            b = c + 1;
        }
        return piper.eof ? (ssize_t)len : -1;
    }
    size_t blk = opts.block;
    if (len <= blk && piper.eof)
        return (ssize_t)len;
    size_t lim = len < blk ? len : blk;
    if (!piper.back_done) { /* the last boundary within the block */
        size_t b = rec_last(&RS, d, len, lim);
        if (b)
            return (ssize_t)b;
        piper.back_done = true;
        size_t rsl = RS.plen - RS.rel; /* boundaries a recstart past len hid */
        piper.fwd = lim + rsl > len ? (len >= rsl ? len - rsl + 1 : 1) : lim + 1;
    }
    size_t b = rec_next(&RS, d, len, piper.fwd, &resume); /* else the first after it */
    if (b)
        return (ssize_t)b;
    piper.fwd = resume;
    return piper.eof ? (ssize_t)len : -1;
}

/* How much to read next when have bytes wait uncut: up to the block size
 * and no further (then only the last, partial record is left for the next
 * block); past it in 64k steps while a record is longer than the block. */
static size_t read_want(size_t have) {
    if (opts.max_args)
        return opts.block > (1u << 16) ? opts.block : (1u << 16);
    return have < opts.block ? opts.block - have : (1u << 16);
}

/* Read up to n bytes of stdin into p: how many (0 at its end, piper.eof set). */
static size_t read_stdin(char *p, size_t n) {
    for (;;) {
        ssize_t got = read(0, p, n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            die("reading stdin: %s", strerror(errno));
        if (got == 0)
            piper.eof = true;
        return (size_t)got;
    }
}

/* --pipe from a pipe: the spool's memfd (the workers inherit it, so it
 * exists before the pool); -1 where memfd_create is refused (every block
 * then travels in its item). */
static int spool_open(void) {
    int fd = memfd_create("procpool-pipe", MFD_CLOEXEC);
    if (fd >= 0)
        piper.sfd = fd;
    return fd;
}

/* Size and map the ring for the window of blocks the workers can hold
 * (4 a worker, and two more: one being cut, one spare), 4 MiB to 1 GiB.
 * 0, or -1 (the spool is given up: blocks travel in their items). */
static int spool_ring(int workers) {
    const uint64_t step = 1u << 21;
    uint64_t r = ((uint64_t)workers * 4 + 2) * (uint64_t)opts.block;
    r = r < (4u << 20) ? (4u << 20) : r > (1u << 30) ? (1u << 30) : r;
    r = (r + step - 1) / step * step;
    if (r > SIZE_MAX / 4 || ftruncate(piper.sfd, (off_t)r) < 0)
        goto fail;
    char *va = mmap(NULL, (size_t)(2 * r), PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (va == MAP_FAILED)
        goto fail;
    if (mmap(va, (size_t)r, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, piper.sfd, 0) ==
            MAP_FAILED ||
        mmap(va + r, (size_t)r, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, piper.sfd, 0) ==
            MAP_FAILED) {
        munmap(va, (size_t)(2 * r));
        goto fail;
    }
    piper.sw = va;
    piper.sring = r;
    return 0;
fail:
    close(piper.sfd);
    piper.sfd = -1;
    return -1;
}

/* Where stream offset off is in the mapping (contiguous for up to R bytes). */
static char *spool_at(uint64_t off) { return piper.sw + off % piper.sring; }

/* The ring is free from here on (up to R bytes on): the start of the oldest
 * block still out, else the data not yet cut. */
static uint64_t spool_low(void) {
    return piper.sq_n && piper.sq[piper.sq_head].start < piper.sdstart
               ? piper.sq[piper.sq_head].start
               : piper.sdstart;
}

/* Fault the ring's pages in up to upto (2 MiB at a time, first lap only)
 * before a read copies into them: read holds the pipe's lock while it
 * copies, and page faults taken there keep the writer waiting on the lock.
 * Best effort (MADV_POPULATE_WRITE is Linux 5.14). */
static void spool_populate(uint64_t upto) {
#ifdef MADV_POPULATE_WRITE
    const uint64_t step = 1u << 21;
    if (upto <= piper.spop || piper.spop >= piper.sring)
        return;
    uint64_t to = (upto + step - 1) / step * step;
    if (to > piper.sring)
        to = piper.sring;
    if (madvise(piper.sw + piper.spop, (size_t)(to - piper.spop), MADV_POPULATE_WRITE) == 0)
        piper.spop = to;
    else
        piper.spop = piper.sring; /* not supported: do not ask again */
#else
    (void)upto;
#endif
}

/* The next block from a pipe, cut in the ring: 1 with *blen bytes at
 * stream offset piper.roff; 0 at the end; -1 when the ring has no room for
 * the next read (the data not yet cut is then in piper.buf: spilled). */
static int spool_block(size_t *blen) {
    for (;;) {
        size_t have = (size_t)(piper.sdend - piper.sdstart);
        bool need_read = !piper.eof && (opts.max_args || have < opts.block);
        ssize_t cut = -1;
        if (have && (!need_read || opts.max_args))
            cut = find_cut(spool_at(piper.sdstart), have);
        if (cut > 0 || (piper.eof && have)) {
            *blen = cut > 0 ? (size_t)cut : have;
            piper.roff = piper.sdstart;
            piper.sdstart += *blen;
            cut_reset();
            return 1;
        }
        if (piper.eof)
            return 0;
        size_t want = read_want(have);
        if (piper.sdend + want - spool_low() > piper.sring) { /* no room: spill */
            sb_grow(&piper.buf, HDR + have + want);
            memcpy(piper.buf.p + HDR, spool_at(piper.sdstart), have);
            piper.buf.len = HDR + have;
            piper.consumed = 0;
            piper.spilled = true;
            return -1;
        }
        spool_populate(piper.sdend + want);
        piper.sdend += read_stdin(spool_at(piper.sdend), want);
    }
}

/* After a spilled block: the rest goes back to the ring if it fits there
 * with room for the next read. */
static void spool_unspill(void) {
    size_t rest = piper.buf.len - HDR - piper.consumed;
    if (piper.sdstart + rest + read_want(rest) - spool_low() > piper.sring)
        return;
    memcpy(spool_at(piper.sdstart), piper.buf.p + HDR + piper.consumed, rest);
    piper.sdend = piper.sdstart + rest;
    piper.buf.len = HDR;
    piper.consumed = 0;
    piper.spilled = false;
}

/* A block of the ring was fed as item idx. */
static void spool_fed(size_t idx) {
    if (piper.sq_n == piper.sq_cap) { /* grow the queue, oldest first */
        size_t cap = piper.sq_cap ? 2 * piper.sq_cap : 64;
        struct spool_out *q = xmalloc(cap * sizeof *q);
        for (size_t i = 0; i < piper.sq_n; i++)
            q[i] = piper.sq[(piper.sq_head + i) % piper.sq_cap];
        free(piper.sq);
        piper.sq = q;
        piper.sq_cap = cap;
        piper.sq_head = 0;
    }
    piper.sq[(piper.sq_head + piper.sq_n++) % piper.sq_cap] =
        (struct spool_out){idx, piper.roff, false};
}

/* Item idx's result is in: its job has ended (retries and reruns come
 * before the one result), so its range is not read again; the ring is
 * free up to the oldest block still out. */
static void spool_done(size_t idx) {
    for (size_t i = 0; i < piper.sq_n; i++) {
        struct spool_out *e = &piper.sq[(piper.sq_head + i) % piper.sq_cap];
        if (e->idx == idx) {
            e->done = true;
            break;
        }
    }
    while (piper.sq_n && piper.sq[piper.sq_head].done) {
        piper.sq_head = (piper.sq_head + 1) % piper.sq_cap;
        piper.sq_n--;
    }
}

/* The next block (data only, at piper.buf.p + HDR; from a map or the spool:
 * *blen bytes at file offset piper.roff); 0 at the end. */
static int next_block(size_t *blen) {
    if (piper.map) {
        if (piper.mpos >= piper.msize)
            return 0;
        cut_reset();
        ssize_t cut =
            find_cut(piper.map + piper.mpos, piper.msize - piper.mpos); /* piper.eof is set */
        if (cut <= 0)
            cut = (ssize_t)(piper.msize - piper.mpos);
        *blen = (size_t)cut;
        piper.boff = piper.mpos;
        piper.roff = piper.mbase + piper.boff;
        piper.rranged = true;
        piper.mpos += (size_t)cut;
        return 1;
    }
    if (piper.sfd >= 0 && piper.spilled && piper.consumed) {
        piper.sdstart += piper.consumed; /* the spilled block just cut */
        spool_unspill();
    }
    if (piper.sfd >= 0 && !piper.spilled) {
        int r = spool_block(blen);
        piper.rranged = r > 0;
        if (r >= 0)
            return r;
    }
    piper.rranged = false;
    if (piper.consumed) {
        size_t rest = piper.buf.len - HDR - piper.consumed;
        memmove(piper.buf.p + HDR, piper.buf.p + HDR + piper.consumed, rest);
        piper.buf.len = HDR + rest;
        piper.consumed = 0;
    }
    if (piper.buf.len < HDR) {
        sb_grow(&piper.buf, HDR);
        piper.buf.len = HDR;
    }
    for (;;) {
        size_t have = piper.buf.len - HDR;
        bool need_read = !piper.eof && (opts.max_args ? true : have < opts.block);
        ssize_t cut = -1;
        if (have && !need_read)
            cut = find_cut(piper.buf.p + HDR, have);
        else if (have && opts.max_args)
            cut = find_cut(piper.buf.p + HDR, have);
        if (cut > 0) {
            *blen = (size_t)cut;
            piper.consumed = (size_t)cut;
            cut_reset();
            return 1;
        }
        if (piper.eof) {
            if (!have)
                return 0;
            *blen = have;
            piper.consumed = have;
            cut_reset();
            return 1;
        }
        size_t want = read_want(have);
        sb_grow(&piper.buf, want);
        piper.buf.len += read_stdin(piper.buf.p + piper.buf.len,
                                    opts.max_args ? piper.buf.cap - piper.buf.len - 1 : want);
    }
}

/* --pipe with a regular file on stdin: map it (from the current offset) and
 * return a descriptor of it for the workers; -1 to read stdin as a stream. */
static int pipe_map_stdin(void) {
    struct stat st;
    if (fstat(0, &st) < 0 || !S_ISREG(st.st_mode))
        return -1;
    off_t pos = lseek(0, 0, SEEK_CUR);
    if (pos < 0 || pos >= st.st_size)
        return -1;
    size_t size = (size_t)(st.st_size - pos);
    off_t base = pos & ~(off_t)(sysconf(_SC_PAGESIZE) - 1);
    void *m = mmap(NULL, size + (size_t)(pos - base), PROT_READ, MAP_PRIVATE, 0, base);
    if (m == MAP_FAILED)
        return -1;
    int fd = fcntl(0, F_DUPFD_CLOEXEC, 3);
    if (fd < 0) {
        munmap(m, size + (size_t)(pos - base));
        return -1;
    }
    madvise(m, size + (size_t)(pos - base), MADV_SEQUENTIAL);
    piper.map = (const char *)m + (pos - base);
    piper.msize = size;
    piper.mbase = (uint64_t)pos;
    piper.eof = true;
    return fd;
}

/* ---------------------------------------------------------------- */
/* the joblog and --resume                                           */
/* ---------------------------------------------------------------- */

static FILE *joblog;
static uint8_t *resume_done; /* by seq */
static size_t resume_n;

/* --joblog FILE (written anew), +FILE (appended to), - (standard output,
 * between the jobs' output, as GNU parallel does). */
static void joblog_open(void) {
    if (!opts.joblog)
        return;
    const char *path = opts.joblog;
    bool plus = path[0] == '+';
    if (plus)
        path++;
    if (!*path)
        die("--joblog: '+' needs a file name");
    bool to_stdout = !plus && strcmp(path, "-") == 0;
    bool append = plus || opts.resume || opts.resume_failed;
    if ((opts.resume || opts.resume_failed) && !to_stdout) {
        FILE *f = fopen(path, "re");
        if (f) {
            char *line = NULL;
            size_t cap = 0;
            while (getline(&line, &cap, f) > 0) {
                char *fields[9] = {0};
                char *p = line;
                int nf = 0;
                while (nf < 9) {
                    fields[nf++] = p;
                    char *t = strchr(p, '\t');
                    if (!t)
                        break;
                    *t = 0;
                    p = t + 1;
                }
                char *end;
                unsigned long long seq = strtoull(fields[0], &end, 10);
                if (end == fields[0] || *end || nf < 8)
                    continue; /* the header, or a torn line */
                bool ok = atoi(fields[6]) == 0 && atoi(fields[7]) == 0;
                if (opts.resume_failed && !ok)
                    continue;
                if (seq >= resume_n) {
                    size_t n = resume_n ? resume_n : 1024;
                    while (n <= seq)
                        n *= 2;
                    resume_done = xrealloc(resume_done, n);
                    memset(resume_done + resume_n, 0, n - resume_n);
                    resume_n = n;
                }
                resume_done[seq] = 1;
            }
            free(line);
            fclose(f);
        }
    }
    if (opts.dry_run)
        return; /* --dry-run reads the log for --resume, writes nothing to it */
    joblog = to_stdout ? stdout : fopen(path, append ? "ae" : "we");
    if (!joblog)
        die("cannot open joblog '%s': %s", path, strerror(errno));
    /* the header, unless appending to a log that has lines (GNU parallel
     * writes none with +FILE even to a new file: a deliberate difference) */
    if (to_stdout || ftell(joblog) == 0) {
        fputs("Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand\n",
              joblog);
        fflush(joblog);
    }
}

static bool resume_skip(uint64_t seq) { return seq < resume_n && resume_done[seq]; }

static void joblog_write(uint64_t seq, double start, double runtime, int exitval, int sig,
                         const char *cmd, size_t cmd_len) {
    if (!joblog)
        return;
    fprintf(joblog, "%llu\t:\t%.3f\t%10.3f\t0\t0\t%d\t%d\t", (unsigned long long)seq, start,
            runtime, exitval, sig);
    for (size_t i = 0; i < cmd_len; i++) /* one line per job */
        fputc(cmd[i] == '\n' ? ' ' : cmd[i], joblog);
    fputc('\n', joblog);
    fflush(joblog);
}

/* ---------------------------------------------------------------- */
/* the feed                                                          */
/* ---------------------------------------------------------------- */

static uint64_t next_seq = 1;
static uint64_t *fed_seq; /* iterator index -> seq */
static size_t fed_n, fed_cap;
static strvec_t cur_args;
static sbuf_t item;
static uint64_t part_size, part_off; /* --pipe-part: the sizes of all files; where in */
static uint64_t part_total;          /* (the parts there will be, about) */
static int part_fd = -1;             /* the current file (part_cur) the next part starts */
static cli_part_t *parts;            /* --pipe-part: the files, split in turn */
static uint64_t *part_sizes;
static uint32_t nparts, part_cur;

/* --pipe-part: the next part, [*off, *end) of file *file; false at the end.
 * As GNU parallel, a part ends at the first boundary at least --block
 * bytes on (each file is read once, linearly); parts never span files. */
static bool part_next(uint64_t *off, uint64_t *end, uint32_t *file) {
    while (part_cur < nparts && part_off >= part_sizes[part_cur])
        if (++part_cur < nparts)
            part_off = parts[part_cur].header_len;
    if (part_cur >= nparts)
        return false;
    *file = part_cur;
    *off = part_off;
    *end = part_boundary(parts[part_cur].fd, part_off + opts.block, part_sizes[part_cur], &RS);
    part_off = *end;
    return true;
}
static int tee_fd = -1; /* --tee: stdin, as a file */
static uint64_t tee_size;
static cli_shared_t *shared;

static void remember_seq(uint64_t seq) {
    if (fed_n == fed_cap) {
        fed_cap = fed_cap ? fed_cap * 2 : 1024;
        fed_seq = xrealloc(fed_seq, fed_cap * sizeof *fed_seq);
    }
    fed_seq[fed_n++] = seq;
}

static int feed(void *ud, const void **out, size_t *len) {
    (void)ud;
    for (;;) {
        if (__atomic_load_n(&shared->halted, __ATOMIC_ACQUIRE))
            return 0;
        job_hdr_t h;
        memset(&h, 0, sizeof h);
        h.seq = next_seq++;
        h.idx = fed_n;
        if (opts.pipe) {
            size_t blen;
            if (!next_block(&blen))
                return 0;
            if (resume_skip(h.seq))
                continue;
            if (piper.rranged) {
                h.kind = JOB_RANGE;
                h.part_off = piper.roff;
                h.part_end = h.part_off + blen;
                if (piper.sfd >= 0)
                    spool_fed(fed_n);
                item.len = 0;
                sb_add(&item, &h, sizeof h);
                *out = item.p;
                *len = item.len;
            } else {
                h.kind = JOB_BLOCK;
                h.data_len = blen;
                memcpy(piper.buf.p, &h, sizeof h);
                *out = piper.buf.p;
                *len = HDR + blen;
            }
        } else if (opts.pipe_part) {
            if (!part_next(&h.part_off, &h.part_end, &h.part_file))
                return 0;
            h.kind = JOB_RANGE;
            if (resume_skip(h.seq))
                continue;
            item.len = 0;
            sb_add(&item, &h, sizeof h);
            *out = item.p;
            *len = item.len;
        } else {
            bool skip;
            if (!next_job_args(&cur_args, h.seq, &skip))
                return 0;
            if (skip || resume_skip(h.seq))
                continue;
            h.kind = JOB_ARGS;
            if (tee_fd >= 0) { /* --tee: every job reads all of stdin */
                h.kind = JOB_RANGE;
                h.part_off = 0;
                h.part_end = tee_size;
            }
            h.nargs = opts.zero_args ? 0 : (uint32_t)cur_args.n;
            item.len = 0;
            sb_add(&item, &h, sizeof h);
            for (size_t i = 0; i < h.nargs; i++)
                sb_add(&item, cur_args.v[i], strlen(cur_args.v[i]) + 1);
            *out = item.p;
            *len = item.len;
        }
        remember_seq(h.seq);
        return 1;
    }
}

/* ---------------------------------------------------------------- */
/* output                                                            */
/* ---------------------------------------------------------------- */

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static pp_pool_t *the_pool;

/* End the run now: the jobs are killed (the workers' SIGTERM handlers take
 * their process groups down), the spill files removed. */
__attribute__((noreturn)) static void stop_run(int status) {
    pthread_mutex_lock(&pool_lock);
    if (the_pool)
        pp_pool_terminate(the_pool);
    cli_spill_dir_remove();
    cli_trace_close(); /* the jobs that ended are in it: a complete trace */
    _exit(status);
}

/* The output cannot be written: the reader went away (EPIPE: quietly, 141,
 * as GNU parallel dies of SIGPIPE), or a full disk or another error (a
 * message, 255). */
__attribute__((noreturn)) static void output_failed(int err) {
    if (err != EPIPE) {
        char line[300];
        int m =
            snprintf(line, sizeof line, "procpool: cannot write the output: %s\n", strerror(err));
        if (write(2, line, (size_t)m) < 0) {
            /* nowhere to say it */
        }
    }
    stop_run(err == EPIPE ? 141 : 255);
}

static void write_all(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            output_failed(w < 0 ? errno : EIO);
        p += w;
        n -= (size_t)w;
    }
}

/* A job's output that went on to a spill file (cli_out.c). */
static void print_spill(int fd, const char *path, size_t plen) {
    int rc = spill_copy(fd, path, plen);
    if (rc < 0)
        output_failed(-rc);
    if (rc > 0)
        die("reading a job's spilled output: %s", strerror(rc & 0xffff));
}

/* ---------------------------------------------------------------- */
/* progress                                                          */
/* ---------------------------------------------------------------- */

static double mono(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static double t_start, last_draw;
static uint64_t n_done, n_failed, n_ok;
static int n_workers;

static void draw_progress(bool final) {
    if (opts.progress) {
        static double last;
        double t = mono();
        if (final || t - last >= 0.1) {
            uint64_t running = fed_n > n_done ? fed_n - n_done : 0;
            if (running > (uint64_t)n_workers)
                running = (uint64_t)n_workers;
            cli_progress(last == 0, final, final ? 0 : running, n_done,
                         n_done ? (t - t_start) / (double)n_done : 0.0, n_workers);
            last = t;
        }
    }
    if (!opts.bar && !opts.eta)
        return;
    double now = mono();
    if (!final && now - last_draw < 0.1)
        return;
    last_draw = now;
    double el = now - t_start;
    double rate = el > 0 ? (double)n_done / el : 0;
    char line[256];
    if (inputs.total_known || opts.pipe_part) {
        uint64_t total = opts.pipe_part ? part_total : inputs.total;
        uint64_t left = total > n_done ? total - n_done : 0;
        double eta = rate > 0 ? (double)left / rate : 0;
        if (opts.bar) {
            int pct = total ? (int)(100.0 * (double)n_done / (double)total) : 100;
            int w = 30, fill = total ? (int)(w * (double)n_done / (double)total) : w;
            char bar[64];
            for (int i = 0; i < w; i++)
                bar[i] = i < fill ? '#' : ' ';
            bar[w] = 0;
            snprintf(line, sizeof line, "\r%3d%% [%s] %llu/%llu %.1f jobs/s ETA %.0fs ", pct, bar,
                     (unsigned long long)n_done, (unsigned long long)total, rate, eta);
        } else {
            snprintf(line, sizeof line, "\rETA: %.0fs Left: %llu AVG: %.2fs  local:%d/%llu ", eta,
                     (unsigned long long)left, n_done ? el / (double)n_done : 0.0, n_workers,
                     (unsigned long long)n_done);
        }
    } else {
        snprintf(line, sizeof line, "\r%llu done, %.1f jobs/s ", (unsigned long long)n_done, rate);
    }
    if (opts.bar && !isatty(2))
        return; /* no bar at all for a file or a pipe (GNU's zenity format: not here) */
    fputs(line, stderr);
    if (final)
        fputc('\n', stderr);
    fflush(stderr);
}

/* ---------------------------------------------------------------- */
/* signals                                                           */
/* ---------------------------------------------------------------- */

static sigset_t sigs;
/* The signal that ends the run (SIGINT, SIGTERM), 0 before one came: set by
 * signal_thread (it takes the signals with sigwait, not in a handler), read
 * by the main thread, which then prints no more results. */
static atomic_int signalled;

static atomic_int hup; /* SIGHUP came: no new job starts (set by the signal thread) */

/* SIGHUP: as GNU parallel, start no new job, let the running ones finish
 * and print their output. SIGINT, SIGTERM: kill the jobs, exit 255 (GNU
 * parallel's status for them). */
static void *signal_thread(void *arg) {
    (void)arg;
    for (;;) {
        int sig = 0;
        while (sigwait(&sigs, &sig) != 0)
            ;
        if (sig == SIGHUP) {
            if (atomic_load(&hup) || !shared)
                continue;
            atomic_store(&hup, 1);
            __atomic_store_n(&shared->halted, 1, __ATOMIC_RELEASE);
            char line[300];
            int m = snprintf(line, sizeof line,
                             "procpool: SIGHUP received. No new jobs will be started.\n"
                             "procpool: Waiting for these %d jobs to finish. Send SIGTERM to "
                             "stop now.\n",
                             __atomic_load_n(&shared->running, __ATOMIC_ACQUIRE));
            if (write(2, line, (size_t)m) < 0) {
                /* nowhere to say it */
            }
            continue;
        }
        atomic_store(&signalled, sig);
        if (shared)
            __atomic_store_n(&shared->halted, 1, __ATOMIC_RELEASE);
        stop_run(255);
    }
}

/* ---------------------------------------------------------------- */
/* main                                                              */
/* ---------------------------------------------------------------- */

/* --halt now: kill every running job (the workers' SIGTERM handlers take
 * their process groups down); results already done are still printed. */
static void halt_now(pp_pool_t *pool, bool *halting, int *status, bool *killed) {
    *halting = true;
    *status = shared->halt_status;
    *killed = true;
    pthread_mutex_lock(&pool_lock);
    pp_pool_terminate(pool);
    pthread_mutex_unlock(&pool_lock);
}

/* -j FILE: the number of jobs in the file, as -j takes it (0: as many as
 * possible, here the workers there are); -1 when it cannot be read. Read
 * again only when the file changed (its modification time; one read while
 * the file was being written, or within 50 ms of its change, is not
 * trusted to have seen the last write). */
static int jobs_from_file(bool must) {
    static struct timespec seen;
    static int last = -1;
    struct stat st;
    if (stat(opts.jobs_file, &st) < 0) {
        if (must)
            die("-j: '%s' is not N, N%%, +N or -N, nor a file: %s", opts.jobs_file,
                strerror(errno));
        return last;
    }
    if (last >= 0 && st.st_mtim.tv_sec == seen.tv_sec && st.st_mtim.tv_nsec == seen.tv_nsec)
        return last;
    FILE *f = fopen(opts.jobs_file, "re");
    char buf[128] = "";
    if (f) {
        if (!fgets(buf, sizeof buf, f))
            buf[0] = 0;
        fclose(f);
    }
    buf[strcspn(buf, " \t\r\n")] = 0;
    int n;
    char err[300];
    if (cli_parse_jobs(buf, &n, err, sizeof err) < 0) {
        if (must)
            die("-j %s: %s", opts.jobs_file, err);
        return last; /* a file being written: keep the last value, read it again next time */
    }
    /* Trust the modification time only once it is past the file system's
     * timestamp granularity: a write in the same tick as the one read here
     * (truncate, then write) would leave the time unchanged. */
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    double age =
        (double)(now.tv_sec - st.st_mtim.tv_sec) + (double)(now.tv_nsec - st.st_mtim.tv_nsec) / 1e9;
    if (age > 0.05)
        seen = st.st_mtim;
    else
        seen = (struct timespec){0};
    return last = n;
}

/* How many of want workers the descriptors allow: the pool keeps a few
 * and 3 a worker in this process, and the run needs a few more (results
 * that come back in a memfd, spill files, the joblog). */
static int fit_workers(int want) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY)
        return want;
    long limit = rl.rlim_cur > 1u << 20 ? 1L << 20 : (long)rl.rlim_cur;
    if (limit > 4L * CLI_MAX_SLOTS + 64)
        return want; /* plenty */
    long open_now = 0;
    for (int fd = 0; fd < limit; fd++)
        open_now += fcntl(fd, F_GETFD) >= 0;
    long fit = (limit - open_now - 7 - 6) / 3;
    return fit < want ? (int)(fit > 0 ? fit : 0) : want;
}

static int dry_run(void) {
    int nslots = opts.jobs > 0 ? opts.jobs : 1;
    tmpl_total_jobs = inputs.total_known ? inputs.total : 0;
    tmpl_nslots = nslots;
    sbuf_t cmd = {0};
    job_hdr_t h;
    (void)h;
    for (;;) {
        uint64_t seq = next_seq++;
        bool skip = false;
        if (opts.pipe) {
            size_t blen;
            if (!next_block(&blen))
                break;
        } else if (opts.pipe_part) {
            uint64_t off, end;
            uint32_t file;
            if (!part_next(&off, &end, &file))
                break;
        } else if (!next_job_args(&cur_args, seq, &skip)) {
            break;
        }
        if (skip || resume_skip(seq))
            continue;
        cmd.len = 0;
        tmpl_expand_shell(&opts.tmpl, &cmd, cur_args.v,
                          (opts.pipe || opts.pipe_part || opts.zero_args) ? 0 : cur_args.n, seq,
                          (int)((seq - 1) % (uint64_t)nslots) + 1);
        sb_addc(&cmd, '\n');
        if (opts.verbose_err) /* as GNU parallel: -t prints it on stderr too */
            write_all(2, cmd.p, cmd.len);
        write_all(1, cmd.p, cmd.len);
    }
    sb_free(&cmd);
    return 0;
}

int main(int argc, char **argv) {
    cli_env_args(&argc, &argv);
    cli_parse(&opts, argc, argv);
    if (opts.print_count)
        return cli_print_count(opts.print_count);
    if (opts.shellquote) {
        inputs_open();
        return cli_shellquote();
    }

    recsep_init(&RS, opts.recend, opts.recend_len, opts.recstart, opts.recstart_len);
    /* everything that can fail is checked before any job starts */
    char pmsg[500];
    if (!opts.dry_run && cli_pipe_setup(&opts, &tee_fd, &tee_size, pmsg, sizeof pmsg) < 0)
        die("%s", pmsg);
    if (tee_fd >= 0)
        part_fd = tee_fd;
    if (opts.pipe_part) {
        if (opts.nsrc) /* GNU parallel uses them only with --tee */
            fputs("procpool: Warning: --pipe-part ignores ::: arguments\n", stderr);
        nparts = (uint32_t)opts.arg_files.n;
        parts = xmalloc(nparts * sizeof *parts);
        part_sizes = xmalloc(nparts * sizeof *part_sizes);
        memset(parts, 0, nparts * sizeof *parts);
        for (uint32_t i = 0; i < nparts; i++) {
            const char *path = opts.arg_files.v[i];
            int fd = open(path, O_RDONLY | O_CLOEXEC);
            struct stat st;
            if (fd < 0 || fstat(fd, &st) < 0)
                die("cannot open '%s': %s", path, strerror(errno));
            if (!S_ISREG(st.st_mode))
                die("--pipe-part: '%s' is not a regular (seekable) file", path);
            parts[i].fd = fd;
            part_sizes[i] = (uint64_t)st.st_size;
            part_size += part_sizes[i];
            if (opts.header && !opts.dry_run && /* each file's own, before each of its parts */
                cli_pipe_header(&opts, fd, &parts[i].header, &parts[i].header_len, pmsg,
                                sizeof pmsg) < 0)
                die("%s: %s", path, pmsg);
        }
        part_fd = parts[0].fd;
        part_off = parts[0].header_len;
        if (opts.block_parts) { /* N parts per job slot, as GNU parallel: 1 + size/slots/N */
            uint64_t slots = opts.jobs > 0 ? (uint64_t)opts.jobs : 256;
            uint64_t b = 1 + part_size / slots / (uint64_t)opts.block_parts;
            opts.block = b > (1u << 30) ? (1u << 30) : (size_t)b;
        }
        for (uint32_t i = 0; i < nparts; i++) /* at most this many: each file its own */
            if (part_sizes[i] > parts[i].header_len)
                part_total += (part_sizes[i] - parts[i].header_len + opts.block - 1) / opts.block;
    }
    if (opts.pipe && opts.header && !opts.dry_run) { /* before every block */
        if (cli_pipe_header(&opts, part_fd, &g_wcfg.pipe_header, &g_wcfg.pipe_header_len, pmsg,
                            sizeof pmsg) < 0)
            die("%s", pmsg);
    }
    if (opts.pipe && !opts.dry_run && (part_fd = pipe_map_stdin()) < 0)
        part_fd = spool_open(); /* the ring is sized once the workers are known */
    inputs_open();
    char perr_msg[500];
    if (cli_perl_start(&opts.tmpl, perr_msg, sizeof perr_msg) < 0)
        die("%s", perr_msg);
    if (!opts.dry_run)
        joblog_open();
    else if (opts.joblog && (opts.resume || opts.resume_failed))
        joblog_open();

    if (opts.trace && !opts.dry_run) { /* --dry-run runs nothing: no trace file */
        char terr[600];
        if (cli_trace_open(opts.trace, terr, sizeof terr) < 0)
            die("%s", terr);
        atexit(cli_trace_close);
    }

    if (opts.dry_run) {
        int rc = dry_run();
        cli_perl_stop();
        return rc;
    }

    /* workers: -j, capped by the number of jobs when it is known */
    if (opts.jobs_file)
        opts.jobs = jobs_from_file(true);
    int workers = opts.jobs;
    uint64_t known = 0;
    bool is_known = false;
    if (inputs.total_known) {
        known = inputs.total, is_known = true;
    } else if (opts.pipe_part) {
        known = part_total, is_known = true;
    }
    if (workers == 0)
        workers = 256;
    if (is_known && known < (uint64_t)workers)
        workers = (int)known;
    if (workers > CLI_MAX_SLOTS)
        workers = CLI_MAX_SLOTS;
    if (is_known && known == 0)
        return 0;
    n_workers = workers;

    shared = mmap(NULL, sizeof *shared, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (shared == MAP_FAILED)
        die("mmap: %s", strerror(errno));
    g_wcfg.o = &opts;
    g_wcfg.sh = shared;
    g_wcfg.nslots = workers;
    g_wcfg.want_cmd = opts.joblog || opts.verbose || opts.verbose_err || opts.timeout > 0 ||
                      opts.halt_when != HALT_NEVER || opts.trace;
    g_wcfg.trace = opts.trace != NULL;
    if (piper.sfd >= 0 && spool_ring(workers) < 0)
        part_fd = -1; /* no ring: every block travels in its item */
    g_wcfg.part_fd = part_fd;
    g_wcfg.part_ring = piper.sfd >= 0 ? piper.sring : 0;
    g_wcfg.parts = parts;
    g_wcfg.nparts = nparts;
    char serr[300];
    if (!(g_wcfg.shell = cli_find_shell(serr, sizeof serr)))
        die("%s", serr);
    shared->total = is_known ? known : 0;
    tmpl_total_jobs = shared->total; /* --plus: {##}, {0#} */
    tmpl_nslots = opts.jobs > 0 ? opts.jobs : workers;

    /* signals go to one thread; SIGPIPE is an error on write */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    pthread_t st;
    if (pthread_create(&st, NULL, signal_thread, NULL) != 0)
        die("cannot start the signal thread");
    pthread_detach(st);

    /* a job's output past CLI_SPILL_AT bytes goes to a file (none with -u;
     * none with --results or --files, which write each job's whole output
     * to files of their own from memory) */
    if (!opts.ungroup && !opts.results && !opts.files && cli_spill_dir_make() == 0)
        atexit(cli_spill_dir_remove);

    /* as many workers as the descriptors allow (GNU parallel lowers the
     * number of job slots too, and warns) */
    int wanted = workers;
    workers = fit_workers(workers);
    pp_options_t po;
    pp_options_init(&po);
    po.initializer = cli_worker_init;
    po.task_timeout = opts.timeout > 0 ? opts.timeout + 5.0 : 0;
    pp_pool_t *pool;
    int rc;
    for (;;) {
        po.processes = workers;
        g_wcfg.nslots = n_workers = workers;
        rc = workers > 0 ? pp_pool_create(&pool, &po) : -EMFILE;
        if ((rc != -EMFILE && rc != -ENFILE) || workers <= 1)
            break;
        workers--;
    }
    if (rc == -EMFILE || rc == -ENFILE) {
        fputs("procpool: Warning: Cannot spawn any jobs.\n"
              "procpool: Warning: Try increasing 'ulimit -n' (try: ulimit -n `ulimit -Hn`)\n",
              stderr);
        exit(255);
    }
    if (rc < 0)
        die("cannot start %d workers: %s", workers, pp_strerror(rc));
    if (workers < wanted)
        fprintf(stderr,
                "procpool: Warning: Only enough file handles to run %d jobs in parallel.\n"
                "procpool: Warning: Try increasing 'ulimit -n' (try: ulimit -n `ulimit -Hn`)\n",
                workers);
    pthread_mutex_lock(&pool_lock);
    the_pool = pool;
    pthread_mutex_unlock(&pool_lock);
    if (opts.trace)
        cli_trace_lanes(workers); /* a lane for each job slot ({%}) */

    t_start = mono();
    pp_iter_t *it;
    rc = pp_imap_feed(pool, cli_job_task, feed, NULL, 0,
                      opts.keep_order ? PP_ORDERED : PP_UNORDERED, &it);
    if (rc < 0)
        die("cannot start the jobs: %s", pp_strerror(rc));

    int halt_status = -1; /* the exit status --halt decided */
    bool halting = false, halt_killed = false;
    double wait = (opts.bar || opts.eta || opts.progress || opts.halt_when == HALT_NOW) ? 0.1 : -1;
    bool lb_order = opts.keep_order && opts.line_buffer;
    size_t printed = SIZE_MAX; /* the index of the result last handled, if any */
    for (;;) {
        /* -k --line-buffer: everything up to the last result is out; the
         * next job may stream now (cli_job.c holds the others' lines back) */
        if (lb_order && printed != SIZE_MAX) {
            __atomic_store_n(&shared->lb_head, (uint64_t)printed + 1, __ATOMIC_RELEASE);
            printed = SIZE_MAX;
        }
        size_t idx;
        const void *data;
        size_t len;
        int r = pp_iter_next(it, wait, &idx, &data, &len);
        if (r == -ETIMEDOUT) {
            draw_progress(false);
            if (__atomic_load_n(&shared->out_error, __ATOMIC_ACQUIRE))
                output_failed(shared->out_error);
            if (opts.halt_when == HALT_NOW && !halt_killed && !atomic_load(&hup) &&
                __atomic_load_n(&shared->halted, __ATOMIC_ACQUIRE))
                halt_now(pool, &halting, &halt_status, &halt_killed);
            continue;
        }
        if (r == 0)
            break;
        if (piper.sfd >= 0 && idx < fed_n)
            spool_done(idx);
        while (atomic_load(&signalled)) /* the signal thread is ending the run: say nothing more */
            pause();
        if (__atomic_load_n(&shared->out_error, __ATOMIC_ACQUIRE))
            output_failed(shared->out_error); /* a worker could not write (--line-buffer) */
        printed = idx;
        uint64_t seq = idx < fed_n ? fed_seq[idx] : 0;
        int exitval, sig;
        double start = 0, runtime = 0;
        const char *cmd = "";
        size_t cmd_len = 0;
        const char *tries = NULL; /* --trace: the job's attempts */
        uint32_t ntries = 0;
        int slot = 0;
        if (r < 0 && halt_killed)
            continue; /* a job --halt now stopped: not reported */
        if (r < 0) {
            const char *msg = pp_iter_error(it);
            if (idx >= fed_n && r != PP_ETASK) /* a feed error */
                die("reading the input: %s", pp_strerror(r));
            char line[1200];
            int m = snprintf(line, sizeof line, "procpool: job %llu: %s\n", (unsigned long long)seq,
                             msg ? msg : pp_strerror(r));
            write_all(2, line, (size_t)m);
            exitval = -1;
            sig = r == PP_ETASKTIMEOUT ? SIGKILL : 0;
        } else {
            job_res_t res;
            if (len < sizeof res)
                die("job %llu: short result", (unsigned long long)seq);
            memcpy(&res, (const char *)data + len - sizeof res, sizeof res);
            if (res.skipped)
                continue; /* halted before it started */
            const char *d = data;
            cmd = d + res.out_len + res.err_len;
            cmd_len = res.cmd_len;
            if (opts.verbose && cmd_len) {
                write_all(1, cmd, cmd_len);
                write_all(1, "\n", 1);
            }
            const char *spill = cmd + cmd_len;
            if (res.out_len)
                write_all(1, d, res.out_len);
            if (res.out_spill_len)
                print_spill(1, spill, res.out_spill_len);
            if (res.err_len)
                write_all(2, d + res.out_len, res.err_len);
            if (res.err_spill_len)
                print_spill(2, spill + res.out_spill_len, res.err_spill_len);
            exitval = res.exitval;
            sig = res.signal;
            if (res.timed_out) {
                char line[400];
                int m = snprintf(line, sizeof line,
                                 "procpool: Warning: This job was killed because it timed out:\n"
                                 "procpool: Warning: %.*s\n",
                                 (int)(cmd_len > 300 ? 300 : cmd_len), cmd);
                write_all(2, line, (size_t)m);
            }
            start = res.start;
            runtime = res.runtime;
            ntries = len - sizeof res >= (size_t)res.ntries * sizeof(job_try_t) ? res.ntries : 0;
            tries = d + len - sizeof res - (size_t)ntries * sizeof(job_try_t);
            slot = res.slot;
        }
        joblog_write(seq, start, runtime, exitval, sig, cmd, cmd_len);
        if (ntries) /* --trace: a span for each attempt (a job the worker could not
                       start, or whose worker died, has none) */
            cli_trace_job(seq, slot, cmd, cmd_len, tries, ntries);
        n_done++;
        if (opts.jobs_file) { /* -j FILE: read again as jobs end, as GNU parallel */
            int j = jobs_from_file(false);
            __atomic_store_n(&shared->jobs_limit, j > 0 && j < workers ? j : 0, __ATOMIC_RELEASE);
        }
        bool failed = exitval != 0 || sig != 0;
        if (failed)
            n_failed++;
        else
            n_ok++;
        draw_progress(false);
        /* --halt: the workers apply the rule (cli_job.c); here its effects */
        bool trig = false;
        if (r >= 0) { /* the trailer sits at any offset: copy it out, never cast */
            job_res_t tr;
            memcpy(&tr, (const char *)data + len - sizeof tr, sizeof tr);
            trig = tr.triggered;
        }
        if (r < 0 && opts.halt_when != HALT_NEVER && !halting) {
            /* a job the library failed (worker died): count it here */
            bool hit = opts.halt_what == HALT_FAIL
                           ? (opts.halt_pct ? (double)n_failed * 100.0 >=
                                                  opts.halt_n * (double)(is_known ? known : n_done)
                                            : (double)n_failed >= opts.halt_n)
                           : false;
            if (hit) {
                __atomic_store_n(&shared->halted, 1, __ATOMIC_RELEASE);
                shared->halt_status = 1;
                trig = true;
            }
        }
        if (trig && !halting) {
            halting = true;
            halt_status = shared->halt_status;
            if (opts.halt_what == HALT_FAIL && cmd_len) {
                char line[300];
                int m = snprintf(line, sizeof line, "procpool: This job failed:\n%.*s\n",
                                 (int)(cmd_len > 250 ? 250 : cmd_len), cmd);
                write_all(2, line, (size_t)m);
            }
            if (opts.halt_when == HALT_SOON) {
                const char *m =
                    "procpool: Starting no more jobs. Waiting for running jobs to finish.\n";
                write_all(2, m, strlen(m));
            }
        }
        if (opts.halt_when == HALT_NOW && !halt_killed &&
            (halting || (!atomic_load(&hup) && __atomic_load_n(&shared->halted, __ATOMIC_ACQUIRE))))
            halt_now(pool, &halting, &halt_status, &halt_killed);
    }
    draw_progress(true);
    pp_iter_free(it);
    pthread_mutex_lock(&pool_lock);
    pp_pool_close(pool);
    pp_pool_join(pool);
    pp_pool_destroy(pool);
    the_pool = NULL;
    pthread_mutex_unlock(&pool_lock);
    cli_perl_stop();
    if (joblog && joblog != stdout)
        fclose(joblog);
    if (halt_status >= 0)
        return halt_status > 255 ? 255 : halt_status;
    return n_failed > 100 ? 101 : (int)n_failed;
}
