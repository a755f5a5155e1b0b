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

enum seg_kind { SEG_LIT, SEG_ARG, SEG_SEQ, SEG_SLOT, SEG_SPACE };
enum seg_mod { MOD_NONE, MOD_NOEXT, MOD_BASE, MOD_DIR, MOD_BASENOEXT };

typedef struct {
    int kind;    /* enum seg_kind; SEG_SPACE: a word break (unquoted white space) */
    int pos;     /* SEG_ARG: 0 = every argument ({}), k > 0 the k-th, k < 0 from the end */
    int mod;     /* SEG_ARG: enum seg_mod */
    char *lit;   /* SEG_LIT */
    size_t len;
} seg_t;

typedef struct {
    seg_t *seg;
    size_t nseg;
    bool has_rs;      /* a replacement string occurs (else the arguments are appended) */
    bool needs_shell; /* the literal text has shell syntax */
    bool raw;         /* no command: the arguments are themselves commands (not quoted) */
    int max_pos;      /* highest positive position used by {N} */
} tmpl_t;

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
} input_src_t;

typedef struct {
    /* -j */
    int jobs;              /* resolved worker count request; 0 = as many as possible */
    bool jobs_set;
    bool keep_order;       /* -k */
    bool tag;              /* --tag */
    bool line_buffer;      /* --line-buffer */
    bool ungroup;          /* -u */
    bool group;            /* --group (the default, said explicitly) */
    bool verbose;          /* -v: each command on stdout, before its output */
    bool verbose_err;      /* -t, --verbose: each command on stderr, as it starts */
    double timeout;        /* --timeout, 0 = none */
    int retries;           /* --retries; attempts = max(1, retries) */
    int halt_when;         /* enum halt_when */
    int halt_what;         /* enum halt_what */
    double halt_n;         /* count, or percent when halt_pct */
    bool halt_pct;
    bool dry_run;
    char *joblog;
    bool resume, resume_failed;
    int shell;             /* enum shell_mode */
    bool pipe;             /* --pipe */
    bool pipe_part;        /* --pipe-part */
    size_t block;          /* --block: bytes */
    long block_parts;      /* --block -N (and --pipe-part's default, 10): N parts per job
                              slot, block is set from the file's size */
    bool block_set;
    char *recend, *recstart;
    size_t recend_len, recstart_len;
    long max_args;         /* -N / -n: arguments (or --pipe records) per job; 0 = unset */
    bool zero_args;        /* -N0: one input per job, which it is not given */
    bool bar, eta;
    char *replace;         /* -I */
    char delim;            /* input record separator: '\n', or '\0' with -0 */
    bool delim_set;
    char *delim_str;       /* -d of more than one character (else NULL) */
    size_t delim_len;
    char *jobs_file;       /* -j FILE: the number of jobs, read again as jobs end */
    /* inputs, in command-line order */
    input_src_t *src;
    size_t nsrc;
    strvec_t arg_files;    /* -a FILE (also the --pipe-part file) */
    /* the command words */
    strvec_t cmd;
    tmpl_t tmpl;
} cli_opts_t;

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

/* Parse the template text (the command words joined by spaces): 0, or -1
 * with a message in err (t is then empty). Free with tmpl_free. */
int tmpl_parse(tmpl_t *t, const char *text, const char *replace, bool raw, char *err,
               size_t errlen);
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
void tmpl_expand_shell(const tmpl_t *t, sbuf_t *cmd, char *const *args, size_t nargs,
                       uint64_t seq, int slot);
size_t tmpl_expand_words(const tmpl_t *t, sbuf_t *words, char *const *args, size_t nargs,
                         uint64_t seq, int slot);

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
    uint64_t idx; /* the job's place in the feed (the iterator's index) */
    uint32_t nargs;
    uint32_t kind;
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
    int32_t triggered; /* this job's end met the --halt condition */
    uint32_t out_spill_len, err_spill_len; /* a stream spilled to a file (see cli_out.c):
                                              its path's length; the path follows cmd */
} job_res_t;

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
} cli_shared_t;

/* Everything a worker needs; set before pp_pool_create, inherited by fork. */
typedef struct {
    const cli_opts_t *o;
    cli_shared_t *sh;
    int nslots;
    bool want_cmd;   /* return the command text (joblog, -v, errors) */
    int part_fd;     /* --pipe-part: the -a file; --pipe: stdin when it is a file */
    const char *shell; /* the shell that runs commands: a path (cli_find_shell) */
    const char *spill_dir; /* where output over CLI_SPILL_AT bytes goes; NULL: none */
} cli_worker_cfg_t;

extern cli_worker_cfg_t g_wcfg;

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
    int fd;        /* -1: nothing spilled */
    bool bol;      /* --tag: the next byte starts a line */
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
    char *pat;   /* recend then recstart */
    size_t plen, rel;
} recsep_t;
void recsep_init(recsep_t *s, const char *recend, size_t rel, const char *recstart,
                 size_t rsl);
/* The last boundary b with 1 <= b <= hi, and b + (plen - rel) <= len; 0: none. */
size_t rec_last(const recsep_t *s, const char *d, size_t len, size_t hi);
/* The first boundary b >= from (b >= 1, b + (plen - rel) <= len); 0: none,
 * and *resume (when not NULL) is where a search with more data may go on. */
size_t rec_next(const recsep_t *s, const char *d, size_t len, size_t from, size_t *resume);
/* --pipe-part, as GNU parallel cuts a file: the first boundary whose
 * pattern starts at pos or later in the file fd (size bytes); size: none. */
uint64_t part_boundary(int fd, uint64_t pos, uint64_t size, const recsep_t *s);

void cli_worker_init(void *arg);                             /* pool initializer */
int cli_job_task(const void *arg, size_t len, pp_buf_t *out); /* the task */

#endif /* PROCPOOL_CLI_H */
