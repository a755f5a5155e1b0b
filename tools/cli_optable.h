/*
 * cli_optable.h - the `procpool` command's option names: the option ids,
 * the long names (every name GNU parallel gives each option, and GNU
 * parallel's other options, for abbreviations), the short letters, and
 * find_long(), which matches a long option the way Getopt::Long does.
 *
 * Static tables and functions, included once by cli_args.c (which defines
 * perr() before it): the parser stays in one translation unit, which the
 * fuzzing harness links alone.
 */
#ifndef PROCPOOL_CLI_OPTABLE_H
#define PROCPOOL_CLI_OPTABLE_H

enum {
    OPT_JOBS = 1,
    OPT_KEEP,
    OPT_NOKEEP,
    OPT_TAG,
    OPT_LB,
    OPT_UNGROUP,
    OPT_GROUP,
    OPT_VERBOSE,
    OPT_TIMEOUT,
    OPT_RETRIES,
    OPT_HALT,
    OPT_DRY,
    OPT_JOBLOG,
    OPT_RESUME,
    OPT_RESUME_FAILED,
    OPT_SHELL,
    OPT_NOSHELL,
    OPT_PIPE,
    OPT_PIPEPART,
    OPT_BLOCK,
    OPT_RECEND,
    OPT_RECSTART,
    OPT_MAXREP,
    OPT_MAXARGS,
    OPT_BAR,
    OPT_ETA,
    OPT_REPLACE,
    OPT_NULL,
    OPT_DELIM,
    OPT_ARGFILE,
    OPT_HELP,
    OPT_VERSION,
    OPT_QUOTE,
    OPT_WILLCITE,
    OPT_RETIRED_G,
    OPT_VERBOSE_ERR,
    OPT_REPLACE_OPT,
    /* input sources and their shape (cli_input.c) */
    OPT_COLSEP,
    OPT_HEADER,
    OPT_CTX,
    OPT_MULTI,
    OPT_XARGS,
    OPT_MAXLINES_L,
    OPT_MAXLINES,
    OPT_MAXCHARS,
    OPT_NORUN,
    OPT_LINK,
    OPT_EOF,
    OPT_ARGSEP,
    OPT_ARGFILESEP,
    OPT_SHUF,
    /* output and running */
    OPT_RESULTS,
    OPT_FILES,
    OPT_TAGSTRING,
    OPT_PROGRESS,
    OPT_DELAY,
    OPT_LOAD,
    OPT_MEMFREE,
    OPT_NICE,
    OPT_PLUS,
    OPT_RETRY_FAILED,
    OPT_ROUNDROBIN,
    OPT_TEE,
    OPT_FIFO,
    OPT_CAT,
    OPT_TMPDIR,
    OPT_SHELLQUOTE,
    OPT_NCPUS,
    OPT_NCORES,
    OPT_NTHREADS,
    OPT_NSOCKETS,
    OPT_REMOTE,
    OPT_TRACE,
};

/* ARG_OPTIONAL: Getopt::Long's ":s": --opt=V, -oV, or the next word unless
 * that looks like an option ("-x", "--x", "--"); else no value. */
enum { ARG_NONE, ARG_NEEDED, ARG_OPTIONAL, ARG_OPTNUM };
/* ARG_OPTNUM: Getopt::Long's ":i": as ARG_OPTIONAL, but the next word only
 * when it is a number. */

typedef struct {
    const char *name;
    int id;
    int arg; /* ARG_NONE, ARG_NEEDED, ARG_OPTIONAL */
} opt_t;

/* The options procpool takes, under every name GNU parallel 20221122 gives
 * them ("name|alias|..."; one letter: also -X), and procpool's own
 * --shell/--no-shell. */
static const opt_t long_opts[] = {
    {"I", OPT_REPLACE, ARG_NEEDED},
    {"arg-file|argfile|a", OPT_ARGFILE, ARG_NEEDED},
    {"bar", OPT_BAR, ARG_NONE},
    {"block-size|blocksize|block", OPT_BLOCK, ARG_NEEDED},
    {"delimiter|d", OPT_DELIM, ARG_NEEDED},
    {"dry-run|dryrun|dr", OPT_DRY, ARG_NONE},
    {"eta", OPT_ETA, ARG_NONE},
    {"g", OPT_RETIRED_G, ARG_NONE},
    {"group", OPT_GROUP, ARG_NONE},
    {"halt-on-error|haltonerror|halt", OPT_HALT, ARG_NEEDED},
    {"help|h", OPT_HELP, ARG_NONE},
    {"joblog|jl", OPT_JOBLOG, ARG_NEEDED},
    {"jobs|j", OPT_JOBS, ARG_NEEDED},
    {"keep-order|keeporder|k", OPT_KEEP, ARG_NONE},
    {"line-buffer|line-buffered|linebuffer|linebuffered|lb", OPT_LB, ARG_NONE},
    {"max-args|maxargs|n", OPT_MAXARGS, ARG_NEEDED},
    {"max-procs|maxprocs|P", OPT_JOBS, ARG_NEEDED},
    {"max-replace-args|maxreplaceargs|N", OPT_MAXREP, ARG_NEEDED},
    {"no-keep-order|nokeeporder|nok|no-k", OPT_NOKEEP, ARG_NONE},
    {"null|0", OPT_NULL, ARG_NONE},
    {"pipe-part|pipepart", OPT_PIPEPART, ARG_NONE},
    {"pipe|spreadstdin", OPT_PIPE, ARG_NONE},
    {"quote|q", OPT_QUOTE, ARG_NONE},
    {"recend", OPT_RECEND, ARG_NEEDED},
    {"recstart", OPT_RECSTART, ARG_NEEDED},
    {"replace|i", OPT_REPLACE_OPT, ARG_OPTIONAL},
    {"resume-failed|resumefailed", OPT_RESUME_FAILED, ARG_NONE},
    {"resume", OPT_RESUME, ARG_NONE},
    {"retries", OPT_RETRIES, ARG_NEEDED},
    {"tag", OPT_TAG, ARG_NONE},
    {"timeout", OPT_TIMEOUT, ARG_NEEDED},
    {"ungroup|u", OPT_UNGROUP, ARG_NONE},
    {"v", OPT_VERBOSE, ARG_NONE},
    {"verbose|t", OPT_VERBOSE_ERR, ARG_NONE},
    {"version|V", OPT_VERSION, ARG_NONE},
    {"will-cite|willcite|nn|nonotice|no-notice", OPT_WILLCITE, ARG_NONE},
    {"shell", OPT_SHELL, ARG_NONE},
    {"no-shell", OPT_NOSHELL, ARG_NONE},
    {"col-sep|colsep|C", OPT_COLSEP, ARG_NEEDED},
    {"header", OPT_HEADER, ARG_NEEDED},
    {"X", OPT_CTX, ARG_NONE},
    {"m", OPT_MULTI, ARG_NONE},
    {"xargs", OPT_XARGS, ARG_NONE},
    {"L", OPT_MAXLINES_L, ARG_NEEDED},
    {"max-lines|maxlines|l", OPT_MAXLINES, ARG_OPTNUM},
    {"max-chars|maxchars|s", OPT_MAXCHARS, ARG_NEEDED},
    {"no-run-if-empty|norunifempty|r", OPT_NORUN, ARG_NONE},
    {"link|xapply", OPT_LINK, ARG_NONE},
    {"eof|e", OPT_EOF, ARG_OPTIONAL},
    {"E", OPT_EOF, ARG_NEEDED},
    {"arg-sep|argsep", OPT_ARGSEP, ARG_NEEDED},
    {"arg-file-sep|argfilesep", OPT_ARGFILESEP, ARG_NEEDED},
    {"shuf", OPT_SHUF, ARG_NONE},
    {"results|result|res", OPT_RESULTS, ARG_NEEDED},
    {"output-as-files|outputasfiles|files", OPT_FILES, ARG_NONE},
    {"tag-string|tagstring", OPT_TAGSTRING, ARG_NEEDED},
    {"progress", OPT_PROGRESS, ARG_NONE},
    {"delay", OPT_DELAY, ARG_NEEDED},
    {"load", OPT_LOAD, ARG_NEEDED},
    {"memfree", OPT_MEMFREE, ARG_NEEDED},
    {"nice", OPT_NICE, ARG_NEEDED},
    {"plus", OPT_PLUS, ARG_NONE},
    {"retry-failed|retryfailed", OPT_RETRY_FAILED, ARG_NONE},
    {"round-robin|roundrobin|round", OPT_ROUNDROBIN, ARG_NONE},
    {"tee", OPT_TEE, ARG_NONE},
    {"fifo", OPT_FIFO, ARG_NONE},
    {"cat", OPT_CAT, ARG_NONE},
    {"tmpdir|tempdir", OPT_TMPDIR, ARG_NEEDED},
    {"shell-quote|shellquote|shell_quote", OPT_SHELLQUOTE, ARG_NONE},
    {"number-of-cpus|numberofcpus", OPT_NCPUS, ARG_NONE},
    {"number-of-cores|numberofcores", OPT_NCORES, ARG_NONE},
    {"number-of-threads|numberofthreads", OPT_NTHREADS, ARG_NONE},
    {"number-of-sockets|numberofsockets", OPT_NSOCKETS, ARG_NONE},
    {"trace", OPT_TRACE, ARG_NEEDED}, /* procpool's own: the jobs' timeline */
    /* remote execution (clusters use the MPI backend): refused with a message of its own */
    {"sshlogin|S", OPT_REMOTE, ARG_NEEDED},
    {"sshloginfile|slf", OPT_REMOTE, ARG_NEEDED},
    {"env", OPT_REMOTE, ARG_NEEDED},
    {"transfer-file|transferfile|transfer-files|transferfiles|tf", OPT_REMOTE, ARG_NEEDED},
    {"return", OPT_REMOTE, ARG_NEEDED},
    {"basefile|bf", OPT_REMOTE, ARG_NEEDED},
    {"onall", OPT_REMOTE, ARG_NONE},
    {"nonall", OPT_REMOTE, ARG_NONE},
    {"work-dir|workdir|wd", OPT_REMOTE, ARG_NEEDED},
    {"trc", OPT_REMOTE, ARG_NEEDED},
    {"transfer", OPT_REMOTE, ARG_NONE},
    {"cleanup", OPT_REMOTE, ARG_NONE},
    {"controlmaster|M", OPT_REMOTE, ARG_NONE},
    {"ssh", OPT_REMOTE, ARG_NEEDED},
    {NULL, 0, ARG_NONE},
};

/* GNU parallel's other options: procpool does not take them, but they count
 * when an abbreviation is matched, so that one GNU parallel refuses as
 * ambiguous is refused here too, and one procpool takes today never changes
 * meaning when procpool takes more options. */
static const char *const gnu_only_opts[] = {
    "B",
    "H",
    "T",
    "U",
    "W",
    "Y",
    "basenameextensionreplace|bner",
    "basenamereplace|bnr",
    "bg",
    "bin",
    "block-timeout|blocktimeout|bt",
    "bug",
    "color-failed|colour-failed|colorfailed|colourfailed|color-fail|colour-fail|colorfail|"
    "colourfail|cf",
    "color|colour",
    "compress",
    "csv",
    "ctag-string|ctagstring",
    "ctag",
    "ctrl-c|ctrlc",
    "debug|D",
    "dirnamereplace|dnr",
    "embed",
    "exit|x",
    "extensionreplace|er",
    "fg",
    "filter-hosts|filterhosts|filter-host",
    "filter",
    "gnu",
    "group-by|groupby",
    "hgrp|hostgrp|hostgroup|hostgroups",
    "interactive|p",
    "latest-line|latestline|ll",
    "limit",
    "linkinputsource|xapplyinputsource",
    "max-line-length-allowed|maxlinelengthallowed",
    "memsuspend",
    "min-version|minversion",
    "no-ctrl-c|no-ctrlc|noctrlc",
    "noswap",
    "open-tty|o",
    "parens",
    "plain",
    "process-slot-var|processslotvar",
    "profile|J",
    "recordenv|record-env",
    "regexp|regex",
    "remove-rec-sep|removerecsep|rrs",
    "rpl",
    "rsync-opts|rsyncopts",
    "semaphore-name|semaphorename|id",
    "semaphore-timeout|semaphoretimeout|st",
    "semaphore",
    "seqreplace",
    "session",
    "shard",
    "shebang|hashbang",
    "shell-completion|shellcompletion",
    "show-limits|showlimits",
    "silent",
    "skip-first-line|skipfirstline",
    "slotreplace",
    "sql-and-worker|sqlandworker",
    "sql-master|sqlmaster",
    "sql-worker|sqlworker",
    "sql",
    "ssh-delay|sshdelay",
    "template|tmpl",
    "term-seq|termseq",
    "tmux-pane|tmuxpane",
    "tmux",
    "tollef",
    "total-jobs|totaljobs|total",
    "trim",
    "tty",
    "use-compress-program|compress-program|usecompressprogram|compressprogram",
    "use-cores-instead-of-threads|usecoresinsteadofthreads",
    "use-cpus-instead-of-cores|usecpusinsteadofcores",
    "use-decompress-program|decompress-program|usedecompressprogram|decompressprogram",
    "use-sockets-instead-of-threads|usesocketsinsteadofthreads",
    "wait",
    NULL,
};

static const struct {
    char c;
    int id;
    int arg;
} short_opts[] = {
    {'j', OPT_JOBS, ARG_NEEDED},
    {'P', OPT_JOBS, ARG_NEEDED},
    {'k', OPT_KEEP, ARG_NONE},
    {'u', OPT_UNGROUP, ARG_NONE},
    {'v', OPT_VERBOSE, ARG_NONE},
    {'N', OPT_MAXREP, ARG_NEEDED},
    {'n', OPT_MAXARGS, ARG_NEEDED},
    {'I', OPT_REPLACE, ARG_NEEDED},
    {'0', OPT_NULL, ARG_NONE},
    {'d', OPT_DELIM, ARG_NEEDED},
    {'a', OPT_ARGFILE, ARG_NEEDED},
    {'h', OPT_HELP, ARG_NONE},
    {'V', OPT_VERSION, ARG_NONE},
    {'q', OPT_QUOTE, ARG_NONE},
    {'g', OPT_RETIRED_G, ARG_NONE},
    {'t', OPT_VERBOSE_ERR, ARG_NONE},
    {'i', OPT_REPLACE_OPT, ARG_OPTIONAL},
    {'C', OPT_COLSEP, ARG_NEEDED},
    {'X', OPT_CTX, ARG_NONE},
    {'m', OPT_MULTI, ARG_NONE},
    {'L', OPT_MAXLINES_L, ARG_NEEDED},
    {'l', OPT_MAXLINES, ARG_OPTNUM},
    {'s', OPT_MAXCHARS, ARG_NEEDED},
    {'r', OPT_NORUN, ARG_NONE},
    {'E', OPT_EOF, ARG_NEEDED},
    {'e', OPT_EOF, ARG_OPTIONAL},
    {'S', OPT_REMOTE, ARG_NEEDED},
    {'M', OPT_REMOTE, ARG_NONE},
    {0, 0, ARG_NONE},
};

/* Does the spec "name|alias|..." have a name that is nl bytes long and
 * equals name (exact) or begins with it (prefix)? Case does not matter,
 * but for one-letter names (-k and -K differ). */
static int spec_match(const char *spec, const char *name, size_t nl, const char **hit) {
    int best = 0;
    for (const char *p = spec; *p;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        bool same = len == 1 ? nl == 1 && *p == *name : strncasecmp(p, name, nl) == 0;
        if (nl <= len && same) {
            if (len == nl) {
                *hit = p;
                return 2;
            }
            if (!best)
                *hit = p;
            best = 1;
        }
        p += len + (bar != NULL);
    }
    return best;
}

/* The first name of a spec, for messages: "joblog" of "joblog|jl". */
static void spec_name(char *out, size_t cap, const char *spec) {
    size_t len = strcspn(spec, "|");
    snprintf(out, cap, "%.*s", (int)(len < 60 ? len : 60), spec);
}

/* Collect the names of spec that begin with name[0..nl) into hits. */
static void spec_hits(const char *spec, const char *name, size_t nl, const char **hits, size_t *nh,
                      size_t cap) {
    for (const char *p = spec; *p && *nh < cap;) {
        size_t len = strcspn(p, "|");
        if (nl <= len && (len == 1 ? *p == *name : strncasecmp(p, name, nl) == 0))
            hits[(*nh)++] = p;
        p += len + (p[len] == '|');
    }
}

static int cmp_names(const void *a, const void *b) {
    const char *x = *(const char *const *)a, *y = *(const char *const *)b;
    size_t lx = strcspn(x, "|"), ly = strcspn(y, "|");
    int c = strncmp(x, y, lx < ly ? lx : ly);
    return c ? c : (lx > ly) - (lx < ly);
}

/* The long option name[0..nl) names, as Getopt::Long finds it among all of
 * GNU parallel's: an exact name, else the one option that every name it
 * begins belongs to. NULL with a message when that is none, several, or an
 * option of GNU parallel's that procpool does not take. */
static const opt_t *find_long(const char *name, size_t nl) {
    const opt_t *found = NULL;
    const char *gnu = NULL, *h;
    size_t nopts = 0;
    int shown = (int)(nl > 100 ? 100 : nl);
    char what[64];
    for (int pass = 0; pass < 2 && nl; pass++) { /* 0: exact names, 1: prefixes */
        for (const opt_t *p = long_opts; p->name; p++) {
            int m = spec_match(p->name, name, nl, &h);
            if (m == 2 || (pass == 1 && m == 1)) {
                if (pass == 0)
                    return p;
                if (!found || found->id != p->id)
                    nopts++;
                found = p;
            }
        }
        for (const char *const *g = gnu_only_opts; *g; g++) {
            int m = spec_match(*g, name, nl, &h);
            if (m == 2 || (pass == 1 && m == 1)) {
                if (pass == 0) {
                    perr("option '--%.*s' of GNU parallel is not supported by procpool "
                         "(see procpool --help)",
                         shown, name);
                    return NULL;
                }
                nopts++;
                gnu = *g;
            }
        }
    }
    if (nopts == 0) {
        perr("unknown option '--%.*s' (see procpool --help)", shown, name);
        return NULL;
    }
    if (nopts == 1 && found)
        return found;
    if (nopts == 1) {
        spec_name(what, sizeof what, gnu);
        perr("option '--%s' of GNU parallel is not supported by procpool (see procpool --help)",
             what);
        return NULL;
    }
    const char *hits[512];
    size_t nh = 0;
    for (const opt_t *p = long_opts; p->name; p++)
        spec_hits(p->name, name, nl, hits, &nh, 512);
    for (const char *const *g = gnu_only_opts; *g; g++)
        spec_hits(*g, name, nl, hits, &nh, 512);
    qsort(hits, nh, sizeof *hits, cmp_names);
    char list[700];
    size_t at = 0;
    for (size_t i = 0; i < nh && at < sizeof list - 1; i++) {
        int w = snprintf(list + at, sizeof list - at, "%s%.*s", i ? ", " : "",
                         (int)strcspn(hits[i], "|"), hits[i]);
        if (w < 0 || (size_t)w >= sizeof list - at)
            break;
        at += (size_t)w;
    }
    perr("option '--%.*s' is ambiguous (%s)", shown, name, list);
    return NULL;
}

#endif /* PROCPOOL_CLI_OPTABLE_H */
