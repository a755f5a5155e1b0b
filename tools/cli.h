/*
 * cli.h - shared declarations of the `procpool` command (the tools/ sources).
 *
 * The command is a client of the public API only: it includes "procpool.h"
 * and links the library. Nothing here reaches into src/.
 *
 * Parts:
 *   cli_args.c  option parsing (with cli_optable.h: option names, and
 *               cli_values.h: value parsers), the command template (replacement strings),
 *               shell quoting, command expansion
 *   cli_job.c   the worker side: a task that spawns one job, captures its
 *               stdout/stderr, enforces the timeout, kills its process group
 *   procpool.c  main: inputs, the pool, results, output, joblog, halt, signals
 */
#ifndef PROCPOOL_CLI_H
#define PROCPOOL_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "procpool.h"

/* ---------------------------------------------------------------- */
/* small growable buffers                                            */
/* ---------------------------------------------------------------- */

typedef struct {
    char *p;
    size_t len, cap;
} sbuf_t;

void sb_grow(sbuf_t *b, size_t extra);
void sb_add(sbuf_t *b, const void *data, size_t len);
void sb_adds(sbuf_t *b, const char *s);
void sb_addc(sbuf_t *b, char c);
void sb_free(sbuf_t *b);

typedef struct {
    char **v;
    size_t n, cap;
} strvec_t;

void sv_push(strvec_t *v, char *s); /* takes ownership of s */

void *xmalloc(size_t n);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

/* Print "procpool: <message>" and exit 255. */
__attribute__((noreturn, format(printf, 1, 2))) void die(const char *fmt, ...);

/* ---------------------------------------------------------------- */
/* the command template                                              */
/* ---------------------------------------------------------------- */

enum seg_kind { SEG_LIT, SEG_ARG, SEG_SEQ, SEG_SLOT, SEG_SPACE, SEG_PERL, SEG_PLUS };
enum seg_mod {
    MOD_NONE,
    MOD_NOEXT,
    MOD_BASE,
    MOD_DIR,
    MOD_BASENOEXT,
    /* --plus: {..} {...} {/..} {/...} {+.} {+..} {+...} {+/} */
    MOD_NOEXT2,
    MOD_NOEXT3,
    MOD_BASENOEXT2,
    MOD_BASENOEXT3,
    MOD_EXT,
    MOD_EXT2,
    MOD_EXT3,
    MOD_PDIR,
    MOD_LAST = MOD_PDIR
};
/* SEG_PLUS: --plus's {##} (the number of jobs), {0#} and {0%} (zero-padded) */
enum plus_kind { PLUS_TOTAL, PLUS_SEQ0, PLUS_SLOT0 };

/* Set by the parent before the workers start (--plus): the number of jobs
 * (0: not known) and of job slots. */
extern uint64_t tmpl_total_jobs;
extern int tmpl_nslots;

typedef struct {
    int kind;  /* enum seg_kind; SEG_SPACE: a word break (unquoted white space) */
    int pos;   /* SEG_ARG: 0 = every argument ({}), k > 0 the k-th, k < 0 from the end */
    int mod;   /* SEG_ARG: enum seg_mod */
    char *lit; /* SEG_LIT; SEG_PERL: the Perl expression */
    size_t len;
    int perl; /* SEG_PERL: the expression's number (0, 1, ...) */
} seg_t;

typedef struct {
    seg_t *seg;
    size_t nseg;
    bool has_rs;      /* a replacement string occurs (else the arguments are appended) */
    bool needs_shell; /* the literal text has shell syntax */
    bool raw;         /* no command: the arguments are themselves commands (not quoted) */
    int max_pos;      /* highest positive position used by {N} */
    bool quoted;      /* -q: every word is one word, quoted as a whole for the shell */
    bool context;     /* -X: a word with {} is repeated for each argument */
    size_t nperl;     /* SEG_PERL segments ({= =}), numbered in order */
    size_t nperl_all; /* of them, those with no position: one value per argument */
} tmpl_t;

/* Replacement strings named by --header (each a position: names[k] is
 * {k+1}); set before tmpl_parse and cleared after (NULL: none). */
extern const strvec_t *tmpl_names;

/* ---------------------------------------------------------------- */
/* options                                                           */
/* ---------------------------------------------------------------- */

enum halt_when { HALT_NEVER, HALT_SOON, HALT_NOW };
enum halt_what { HALT_FAIL, HALT_SUCCESS, HALT_DONE };
enum shell_mode { SHELL_AUTO, SHELL_ALWAYS, SHELL_NEVER };
enum input_kind { IN_ARGS, IN_FILE };

typedef struct {
    int kind;      /* enum input_kind */
    strvec_t args; /* IN_ARGS */
    char *path;    /* IN_FILE ("-" is stdin) */
    bool linked;   /* :::+ / ::::+: read along with the source before it */
} input_src_t;

typedef struct {
    /* -j */
    int jobs; /* resolved worker count request; 0 = as many as possible */
    bool jobs_set;
    bool keep_order;  /* -k */
    bool tag;         /* --tag */
    bool line_buffer; /* --line-buffer */
    bool ungroup;     /* -u */
    bool group;       /* --group (the default, said explicitly) */
    bool verbose;     /* -v: each command on stdout, before its output */
    bool verbose_err; /* -t, --verbose: each command on stderr, as it starts */
    double timeout;   /* --timeout, 0 = none */
    int retries;      /* --retries; attempts = max(1, retries) */
    int halt_when;    /* enum halt_when */
    int halt_what;    /* enum halt_what */
    double halt_n;    /* count, or percent when halt_pct */
    bool halt_pct;
    bool dry_run;
    char *joblog;
    char *trace; /* --trace FILE: the jobs' timeline (docs/tracing.md) */
    bool resume, resume_failed;
    int shell;        /* enum shell_mode */
    bool pipe;        /* --pipe */
    bool pipe_part;   /* --pipe-part */
    size_t block;     /* --block: bytes */
    long block_parts; /* --block -N (and --pipe-part's default, 10): N parts per job
                              slot, block is set from the file's size */
    bool block_set;
    char *recend, *recstart;
    size_t recend_len, recstart_len;
    long max_args;  /* -N / -n: arguments (or --pipe records) per job; 0 = unset */
    bool zero_args; /* -N0: one input per job, which it is not given */
    bool bar, eta;
    char *replace; /* -I */
    char delim;    /* input record separator: '\n', or '\0' with -0 */
    bool delim_set;
    char *delim_str; /* -d of more than one character (else NULL) */
    size_t delim_len;
    char *jobs_file; /* -j FILE: the number of jobs, read again as jobs end */
    /* inputs, in command-line order */
    input_src_t *src;
    size_t nsrc;
    strvec_t arg_files; /* -a FILE (also the --pipe-part file) */
    /* the command words */
    strvec_t cmd;
    tmpl_t tmpl;
    /* input sources, their shape, and more per job (cli_input.c) */
    char *colsep;                /* -C, --colsep: a regular expression (POSIX extended) */
    char *header;                /* --header: the first value of each source names it */
    int multi;                   /* enum multi_mode: -m, -X, --xargs */
    long max_chars;              /* -s: a command line's length limit; 0 = the default */
    long max_lines;              /* -L, -l: input lines per job (a trailing blank continues) */
    bool lines_ctx;              /* -L (not -l): as -X */
    bool quote;                  /* -q: each command word stays one word */
    bool no_run_empty;           /* -r: skip input that is only white space */
    bool link;                   /* --link: every source linked */
    char *eof_str;               /* -E: input ends at a line that is this */
    char *arg_sep, *argfile_sep; /* ::: and :::: by other names */
    bool shuf;                   /* --shuf: the jobs in a random order */
    /* output and running (cli_output.c) */
    char *results;   /* --results DIR (or a file prefix) */
    bool files;      /* --files: print the file names, not the output */
    char *tagstring; /* --tagstring STR (replacement strings expanded) */
    tmpl_t tagtmpl;
    tmpl_t restmpl;    /* --results NAME as a template */
    bool progress;     /* --progress */
    double delay;      /* --delay: seconds between job starts */
    double load;       /* --load: start no job while the load average is this or more */
    size_t memfree;    /* --memfree: bytes of MemAvailable a job start needs */
    int nice;          /* --nice N */
    bool retry_failed; /* --retry-failed (with --joblog) */
    char *tmpdir;      /* --tmpdir */
    bool shellquote;   /* --shellquote: print the inputs quoted, run nothing */
    int print_count;   /* --number-of-cpus/-cores/-threads/-sockets: print and exit */
    bool plus;         /* --plus */
    bool round_robin, tee, fifo, cat; /* --pipe's */
} cli_opts_t;

enum multi_mode { MULTI_NONE, MULTI_M, MULTI_X, MULTI_XARGS };
enum print_count { COUNT_NONE, COUNT_CORES, COUNT_THREADS, COUNT_SOCKETS };

/*
 * Parse argv into *o (which it initialises; free with cli_opts_free, also
 * after an error). Never exits and starts nothing: returns 0, CLI_PARSE_HELP
 * or CLI_PARSE_VERSION (--help/--version seen), or -1 with a one-line
 * message (no "procpool: " prefix, no newline) in err[0..errlen).
 */
enum { CLI_PARSE_OK = 0, CLI_PARSE_HELP = 1, CLI_PARSE_VERSION = 2 };
int cli_parse_args(cli_opts_t *o, int argc, char **argv, char *err, size_t errlen);
/* A -j value (N, N%, +N, -N; 0 = as many as possible): 0, or -1 with a
 * message in err. */
int cli_parse_jobs(const char *v, int *jobs, char *err, size_t errlen);
void cli_opts_free(cli_opts_t *o);
/* Parse the command of o again, with the --header names (0, or -1 with err). */
int cli_tmpl_reparse(cli_opts_t *o, const strvec_t *names, char *err, size_t errlen);

/* Parse the template text (the command words joined by spaces): 0, or -1
 * with a message in err (t is then empty). Free with tmpl_free. */
int tmpl_parse(tmpl_t *t, const char *text, const char *replace, bool raw, char *err,
               size_t errlen);
/* -q: each of words[0..n) stays one word (no shell syntax); 0 or -1 as tmpl_parse. */
int tmpl_parse_quoted(tmpl_t *t, char *const *words, size_t n, const char *replace, char *err,
                      size_t errlen);

/*
 * {= perl =}: a job's arguments are followed by the values of its Perl
 * expressions, computed by the parent (cli_perl.c), in the order of the
 * template's SEG_PERL segments: one value for a {=N ... =}, one per
 * argument for a {= ... =}. tmpl_real_args gives how many of nargs are
 * the job's own arguments.
 */
size_t tmpl_real_args(const tmpl_t *t, size_t nargs);
void tmpl_free(tmpl_t *t);

/* Shell-quote s the way GNU parallel does (backslashes; '' for empty). */
void shell_quote(sbuf_t *out, const char *s, size_t len);

/* Apply a modifier ({.} {/} {//} {/.}) to s; writes the result to out (raw). */
void apply_mod(sbuf_t *out, const char *s, int mod);

/*
 * Expand the template for one job: args[0..nargs) are its arguments.
 * Shell form: appended to *cmd (a string for the shell's -c, values quoted).
 * Word form (when words != NULL): NUL-terminated words are appended to
 * *words and their count returned (values verbatim, for direct exec).
 */
void tmpl_expand_shell(const tmpl_t *t, sbuf_t *cmd, char *const *args, size_t nargs, uint64_t seq,
                       int slot);
size_t tmpl_expand_words(const tmpl_t *t, sbuf_t *words, char *const *args, size_t nargs,
                         uint64_t seq, int slot);
/* The template's text with the values in place, unquoted, nothing appended
 * (--tagstring, --results). */
void tmpl_expand_raw(const tmpl_t *t, sbuf_t *out, char *const *args, size_t nargs, uint64_t seq,
                     int slot);

/* ---------------------------------------------------------------- */
/* jobs: what travels to a worker and back                           */
/* ---------------------------------------------------------------- */

/* JOB_RANGE: --pipe over a regular file on stdin: the block is the exact
 * byte range [part_off, part_end) of that file (part_fd), cut by the parent
 * on record boundaries and spliced into the job's stdin by the worker. */
enum job_kind { JOB_ARGS = 0, JOB_BLOCK = 1, JOB_PART = 2, JOB_RANGE = 3 };

/* A task's argument: this header, then nargs NUL-terminated strings, then
 * data_len bytes of stdin block (JOB_BLOCK). */
typedef struct {
    uint64_t seq;
    uint64_t data_len;
    uint64_t part_off, part_end; /* JOB_PART: the byte range of the -a file */
    uint64_t idx;                /* the job's place in the feed (the iterator's index) */
    uint32_t nargs;
    uint32_t kind;
    uint32_t part_file; /* JOB_RANGE of --pipe-part: which file (g_wcfg.parts) */
} job_hdr_t;

/* A task's result: stdout bytes, stderr bytes, the command (if asked), then
 * this trailer. */
typedef struct {
    uint64_t out_len, err_len, cmd_len;
    double start;   /* epoch seconds */
    double runtime; /* seconds */
    int32_t exitval;
    int32_t signal;
    int32_t skipped; /* the run was halted before this job started */
    int32_t timed_out;
    int32_t slot;
    int32_t triggered;                     /* this job's end met the --halt condition */
    uint32_t out_spill_len, err_spill_len; /* a stream spilled to a file (see cli_out.c):
                                              its path's length; the path follows cmd */
    uint32_t ntries; /* --trace: this many job_try_t come before the trailer */
} job_res_t;

/* --trace: one attempt of a job (--retries makes several), as the worker
 * saw it; the parent turns each into a span (cli_trace_job). */
typedef struct {
    double t0;  /* CLOCK_MONOTONIC seconds at its start */
    double dur; /* seconds */
    int32_t exitval;
    int32_t signal; /* 0: not killed by a signal */
    int32_t timed_out;
    int32_t pad;
} job_try_t;

/* State shared by the parent and every worker (MAP_SHARED, made before the
 * pool so the workers inherit it). */
#define CLI_MAX_SLOTS 4096
typedef struct {
    volatile int halted;       /* no new job may start */
    int halt_status;           /* the exit status the --halt condition decided */
    uint64_t done, failed, ok; /* jobs ended, counted by the workers for --halt */
    uint64_t total;            /* jobs in all, when known (for N%); else 0 */
    volatile uint64_t lb_head; /* -k --line-buffer: the index of the job that may stream
                                  (the oldest not yet printed); set by the parent */
    volatile int out_error;    /* errno of a failed write of the output (EPIPE: the
                                  reader went away; ENOSPC...): the run stops */
    volatile int running;      /* jobs running now (for the SIGHUP message) */
    volatile int jobs_limit;   /* -j FILE: at most this many jobs run (0: no limit) */
    volatile pid_t slots[CLI_MAX_SLOTS];
    uint64_t next_start; /* --delay: the monotonic time (ns) the next job may start */
} cli_shared_t;

/* --pipe-part: one of the files split, open before the workers start, and
 * its --header line. */
typedef struct {
    int fd;
    char *header;
    size_t header_len;
} cli_part_t;

/* Everything a worker needs; set before pp_pool_create, inherited by fork. */
typedef struct {
    const cli_opts_t *o;
    cli_shared_t *sh;
    int nslots;
    bool want_cmd;         /* return the command text (joblog, -v, errors, --trace) */
    bool trace;            /* --trace: return a job_try_t for each attempt */
    int part_fd;           /* --pipe-part: the -a file; --pipe: stdin when it is a file,
                      * the ring that holds it when it is a pipe */
    uint64_t part_ring;    /* part_fd is a ring of this many bytes (stream offset o
                         * at o % part_ring); 0: a plain file */
    const char *shell;     /* the shell that runs commands: a path (cli_find_shell) */
    const char *spill_dir; /* where output over CLI_SPILL_AT bytes goes; NULL: none */
    char *pipe_header;     /* --pipe --header: the first line, put before every block */
    size_t pipe_header_len;
    cli_part_t *parts; /* --pipe-part: the files; a job's file becomes part_fd and */
    uint32_t nparts;   /* its header pipe_header in the worker before it runs */
} cli_worker_cfg_t;

extern cli_worker_cfg_t g_wcfg;

/* Where stream offset off lies in g_wcfg.part_fd, *n lowered to what lies
 * contiguously there (a ring wraps at its end). */
uint64_t part_pos(uint64_t off, size_t *n);
/* pread of g_wcfg.part_fd at stream offset off (short at a ring's end). */
ssize_t part_pread(void *buf, size_t n, uint64_t off);

/*
 * The shell jobs run with, as GNU parallel picks it: $PARALLEL_SHELL, else
 * the nearest ancestor process that is a shell, else $SHELL, else /bin/sh.
 * Returns its path (looked up in PATH when it has no '/'), or NULL with a
 * message in err when that shell cannot be found.
 */
const char *cli_find_shell(char *err, size_t errlen);

/* ---------------------------------------------------------------- */
/* output kept on disk (cli_out.c)                                   */
/* ---------------------------------------------------------------- */

/* A job's stdout or stderr past this many bytes in memory goes on to a
 * temporary file, so a job costs a fixed amount of memory however much it
 * writes. */
#define CLI_SPILL_AT (1u << 20)

typedef struct {
    int fd;         /* -1: nothing spilled */
    bool bol;       /* --tag: the next byte starts a line */
    char path[256]; /* "": no file */
} spill_t;

/* The parent: make the private directory the spill files go in (0, or -1
 * when it cannot be made: then nothing spills); remove it and whatever is
 * in it (only in the process that made it; safe to call twice). */
int cli_spill_dir_make(void);
void cli_spill_dir_remove(void);
/* A worker: append p[0..n) to the spill file (made on first use), with
 * tag (when not NULL) before each line. 0, or -errno. */
int spill_put(spill_t *s, const char *p, size_t n, const sbuf_t *tag);
void spill_reset(spill_t *s); /* empty it (a retry) */
void spill_close(spill_t *s); /* close it, keep the file (the parent prints it) */
void spill_drop(spill_t *s);  /* close and remove it; path becomes "" */
/* Copy the spill file at path to fd, removing the file; 0, or -errno of
 * the failed write (1 << 16 | errno when reading the file failed). */
int spill_copy(int fd, const char *path, size_t plen);

/* --pipe, --pipe-part: where records end (cli_pipe.c). A boundary at b:
 * recend ends at b and recstart begins at b; with both empty every byte
 * position is one. */
typedef struct {
    char *pat; /* recend then recstart */
    size_t plen, rel;
} recsep_t;
void recsep_init(recsep_t *s, const char *recend, size_t rel, const char *recstart, size_t rsl);
/* The last boundary b with 1 <= b <= hi, and b + (plen - rel) <= len; 0: none. */
size_t rec_last(const recsep_t *s, const char *d, size_t len, size_t hi);
/* The first boundary b >= from (b >= 1, b + (plen - rel) <= len); 0: none,
 * and *resume (when not NULL) is where a search with more data may go on. */
size_t rec_next(const recsep_t *s, const char *d, size_t len, size_t from, size_t *resume);
/* --pipe-part, as GNU parallel cuts a file: the first boundary whose
 * pattern starts at pos or later in the file fd (size bytes); size: none. */
uint64_t part_boundary(int fd, uint64_t pos, uint64_t size, const recsep_t *s);

void cli_worker_init(void *arg);                              /* pool initializer */
int cli_job_task(const void *arg, size_t len, pp_buf_t *out); /* the task */

/* ---------------------------------------------------------------- */
/* input sources (cli_input.c)                                       */
/* ---------------------------------------------------------------- */

typedef char *(*cli_read_fn)(FILE *f);          /* the next record, NULL at the end */
typedef FILE *(*cli_open_fn)(const char *path); /* open a :::: file ("-": stdin) */

/* Put the words of ~/.parallel/config, then of $PARALLEL, before argv[1]. */
void cli_env_args(int *argc, char ***argv);
/* Open the inputs of o (reads them all unless one source is streamed, and
 * the --header line): 0, or -1 with a message in err. */
int cli_inputs_open(const cli_opts_t *o, cli_read_fn rd, cli_open_fn op, char *err, size_t errlen);
/* The --header names ({name} is {k+1} for names->v[k]), or NULL. */
const strvec_t *cli_input_names(void);
/* The number of input tuples, when every input is loaded (false: streamed). */
bool cli_inputs_total(uint64_t *tuples);
/* The next job's arguments appended to args: false at the end, or on an
 * error, with its message in err (err[0] is 0 otherwise). */
bool cli_next_job(strvec_t *args, char *err, size_t errlen);
/* --shellquote: print each input quoted for the shell; the exit status. */
int cli_shellquote(void);

/* ---------------------------------------------------------------- */
/* {= perl =} (cli_perl.c)                                           */
/* ---------------------------------------------------------------- */

/* Start perl when t has {= =} and compile them: 0, or -1 with err. */
int cli_perl_start(const tmpl_t *t, char *err, size_t errlen);
/* Append the values of t's {= =} for the job with args (see
 * tmpl_real_args); false when an expression called skip(). */
bool cli_perl_values(const tmpl_t *t, strvec_t *args, uint64_t seq, uint64_t total);
void cli_perl_stop(void);

/* ---------------------------------------------------------------- */
/* running and output extras (cli_run.c)                             */
/* ---------------------------------------------------------------- */

/* --number-of-cores/-threads/-sockets (enum print_count): print it; 0. */
int cli_print_count(int what);
/* In the worker, before a job starts: --nice (once), then wait for --load,
 * --memfree and --delay (the starts one delay apart, over all workers). */
void cli_start_gate(const cli_opts_t *o, cli_shared_t *sh);
/* --progress on stderr: first, the header; final, the last line. */
void cli_progress(bool first, bool final, uint64_t running, uint64_t done, double avg, int jobs);
/* --retry-failed: the commands of the joblog, by job number (cmds->v[seq-1];
 * "" for a number it lacks). 0, or -1 with a message in err. */
int cli_retry_commands(const char *joblog, strvec_t *cmds, char *err, size_t errlen);

/* --pipe --tee, --round-robin: stdin (copied to a temporary file unless it
 * is one) becomes: --tee: *tee_fd, all of it for every job (o->pipe is then
 * off, the inputs make the jobs); --round-robin: --pipe-part over it, one
 * part per job slot. 0, or -1 with a message in err. */
int cli_pipe_setup(cli_opts_t *o, int *tee_fd, uint64_t *tee_size, char *err, size_t errlen);
/* --pipe/--pipe-part --header: read the input's first line (fd 0, or
 * part_fd from its start) into *hdr. 0, or -1 with a message in err. */
int cli_pipe_header(const cli_opts_t *o, int part_fd, char **hdr, size_t *len, char *err,
                    size_t errlen);
/* --cat, --fifo (in the worker): a temporary file (--fifo: a fifo, filled by
 * a writer process *writer) at path with the block: data[0..len), or
 * [off, end) of fd. 0, or -1 with a message in msg. */
int cli_cat_make(const cli_opts_t *o, const char *data, size_t len, int fd, uint64_t off,
                 uint64_t end, char *path, size_t cap, pid_t *writer, char *msg, size_t msglen);
/* After the job: remove path, end the writer. */
void cli_cat_done(const char *path, pid_t writer);

/* --results, --files (in the worker, after the job): write the job's
 * output to its files; out then holds what to print (--files: the name of
 * stdout's file), err nothing. 0, or -1 with a message in msg. */
int cli_results_save(const cli_opts_t *o, char *const *args, size_t nargs, uint64_t seq, int slot,
                     sbuf_t *out, sbuf_t *err, char *msg, size_t msglen);

/* --trace FILE (cli_run.c): the jobs' timeline in the Chrome trace event
 * format of docs/tracing.md, written in whole events through a buffer
 * flushed with write(2) past ~64 KiB ($PROCPOOL_CLI_TRACE_BUFFER bytes, for
 * tests) and at exit, so that a killed run leaves a valid prefix.
 * open: create the file (O_TRUNC), write "[", start the clock: 0, or -1
 * with a message in err. lanes: the metadata of pid 1 and of slots 1..n.
 * job: a span for each of job seq's tries[0..ntries) (unaligned records),
 * named by its command cmd[0..cmd_len), in lane slot. close: flush, "]",
 * close (only in the process that opened it; safe to call twice). */
int cli_trace_open(const char *path, char *err, size_t errlen);
void cli_trace_lanes(int nslots);
void cli_trace_job(uint64_t seq, int slot, const char *cmd, size_t cmd_len, const void *tries,
                   uint32_t ntries);
void cli_trace_close(void);

#endif /* PROCPOOL_CLI_H */
