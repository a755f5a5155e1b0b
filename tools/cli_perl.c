/*
 * cli_perl.c - GNU parallel's {= perl expression =} replacement strings.
 *
 * The parent runs one perl co-process for the whole run (so an expression
 * keeps its state from job to job, as in GNU parallel, where one perl
 * evaluates them all) and asks it, for each job, for the values of the
 * template's expressions: $_ is the argument ({=N ... =}: the N-th; {= ... =}:
 * each argument in turn), and the expression's $_ afterwards is the value.
 * The values travel to the worker after the job's arguments (see
 * tmpl_real_args in cli.h), quoted for the shell there unless uq() was
 * called.
 *
 * In the expressions: @arg ($arg[1] is the first argument), seq() and
 * $job->seq() (the job number), total_jobs() (0 when not known yet), Q()
 * (quote for the shell), uq() (insert the value unquoted), skip() (do not
 * run this job), and slot() (always 0: the slot is not known before the
 * job starts in a worker).
 *
 * The protocol (binary safe, lengths before bytes): at start, the number of
 * expressions and each one's code; perl answers "OK\n", or "E <len>\n" and
 * the compile error. Per job: "<seq> <total> <nargs>\n", each argument as
 * "<len>\n<bytes>", then "<n>\n" and n lines "<expr> <argument or 0>";
 * perl answers each with "<q|u|s> <len>\n<bytes>" (s: skip()).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"

static const char perl_script[] =
    "use strict; no strict 'refs'; $| = 1; binmode STDIN; binmode STDOUT;\n"
    "our ($seq, $total, @arg, $uq, $skip);\n"
    "package Job { sub seq { $main::seq } sub slot { 0 } }\n"
    "our $job = bless {}, 'Job';\n"
    "sub seq { $seq } sub total_jobs { $total } sub slot { 0 }\n"
    "sub uq { $uq = 1; return } sub skip { $skip = 1; return }\n"
    "sub Q { my $s = shift; return \"''\" if !defined $s || $s eq '';\n"
    "  return $s if $s =~ m{^[-_.+a-zA-Z0-9/]+$}; $s =~ s/'/'\"'\"'/g; $s = \"'$s'\";\n"
    "  $s =~ s/^''//; $s =~ s/''$//; return $s }\n"
    "sub rd { my $l = <STDIN>; defined $l or exit 0; my $v = ''; my $n = int($l);\n"
    "  while (length($v) < $n) { read(STDIN, $v, $n - length($v), length($v)) or exit 0 } $v }\n"
    "my $n = <STDIN>; my @f;\n"
    "for (1 .. $n) { my $c = rd(); no strict; my $s = eval \"sub { $c\\n; }\";\n"
    "  if (!$s) { my $e = $@; $e =~ s/\\s+$//; print 'E ', length($e), \"\\n\", $e; exit 0 }\n"
    "  push @f, $s }\n"
    "print \"OK\\n\";\n"
    "while (defined(my $h = <STDIN>)) { my $na; ($seq, $total, $na) = split ' ', $h;\n"
    "  @arg = (undef); push @arg, rd() for 1 .. $na;\n"
    "  my $ne = <STDIN>; my $out = '';\n"
    "  for (1 .. $ne) { my ($j, $k) = split ' ', scalar <STDIN>;\n"
    "    local $_ = $k ? $arg[$k] : ''; $uq = 0; $skip = 0; $f[$j]->();\n"
    "    my $v = defined $_ ? $_ : '';\n"
    "    $out .= ($skip ? 's' : $uq ? 'u' : 'q') . ' ' . length($v) . \"\\n\" . $v }\n"
    "  print $out }\n";

static FILE *to_perl, *from_perl;
static pid_t perl_pid;

/* The template's SEG_PERL segments, by number. */
static const seg_t **exprs;

/* Read one "<flag> <len>\n<bytes>" answer; false when perl is gone. */
static bool read_answer(char *flag, sbuf_t *val) {
    char line[64];
    if (!fgets(line, sizeof line, from_perl))
        return false;
    unsigned long long n = 0;
    char f = line[0];
    if (sscanf(line + 1, " %llu", &n) != 1 || n > (1ull << 30))
        return false;
    val->len = 0;
    sb_grow(val, (size_t)n);
    if (n && fread(val->p, 1, (size_t)n, from_perl) != n)
        return false;
    val->len = (size_t)n;
    val->p[n] = 0;
    *flag = f;
    return true;
}

static void put_bytes(const char *s, size_t n) {
    fprintf(to_perl, "%zu\n", n);
    fwrite(s, 1, n, to_perl);
}

int cli_perl_start(const tmpl_t *t, char *err, size_t errlen) {
    if (!t->nperl)
        return 0;
    exprs = xmalloc(t->nperl * sizeof *exprs);
    for (size_t i = 0; i < t->nseg; i++)
        if (t->seg[i].kind == SEG_PERL)
            exprs[t->seg[i].perl] = &t->seg[i];
    int in[2], out[2], ex[2]; /* close-on-exec: no job inherits them */
    if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 || pipe2(ex, O_CLOEXEC) < 0) {
        snprintf(err, errlen, "{= =}: pipe: %s", strerror(errno));
        return -1;
    }
    perl_pid = fork();
    if (perl_pid < 0) {
        snprintf(err, errlen, "{= =}: fork: %s", strerror(errno));
        return -1;
    }
    if (perl_pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(ex[0]);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execlp("perl", "perl", "-e", perl_script, (char *)NULL);
        int e = errno;
        if (write(ex[1], &e, sizeof e) < 0)
            _exit(127);
        _exit(127);
    }
    close(in[0]), close(out[1]), close(ex[1]);
    int e = 0;
    ssize_t got = read(ex[0], &e, sizeof e);
    close(ex[0]);
    if (got == (ssize_t)sizeof e) {
        waitpid(perl_pid, NULL, 0);
        snprintf(err, errlen, "{= =} (Perl expressions) need perl, which cannot be run: %s%s",
                 strerror(e), e == ENOENT ? " (install perl, or leave {= =} out)" : "");
        return -1;
    }
    to_perl = fdopen(in[1], "w");
    from_perl = fdopen(out[0], "r");
    if (!to_perl || !from_perl)
        die("out of memory");
    fprintf(to_perl, "%zu\n", t->nperl);
    for (size_t j = 0; j < t->nperl; j++)
        put_bytes(exprs[j]->lit, exprs[j]->len);
    fflush(to_perl);
    char line[64];
    if (!fgets(line, sizeof line, from_perl)) {
        snprintf(err, errlen, "{= =}: perl ended at start");
        return -1;
    }
    if (strcmp(line, "OK\n") != 0) { /* "E <len>\n<the compile error>" */
        char msg[400] = "";
        unsigned long long n = 0;
        if (sscanf(line, "E %llu", &n) == 1) {
            size_t r = fread(msg, 1, n < sizeof msg - 1 ? (size_t)n : sizeof msg - 1, from_perl);
            msg[r] = 0;
        }
        snprintf(err, errlen, "{= =}: a Perl expression does not compile: %.300s", msg);
        return -1;
    }
    return 0;
}

bool cli_perl_values(const tmpl_t *t, strvec_t *args, uint64_t seq, uint64_t total) {
    if (!t->nperl)
        return true;
    size_t nreal = args->n;
    fprintf(to_perl, "%llu %llu %zu\n", (unsigned long long)seq, (unsigned long long)total, nreal);
    for (size_t k = 0; k < nreal; k++)
        put_bytes(args->v[k], strlen(args->v[k]));
    size_t nev = 0;
    for (size_t j = 0; j < t->nperl; j++)
        nev += exprs[j]->pos == 0 ? nreal : 1;
    fprintf(to_perl, "%zu\n", nev);
    for (size_t j = 0; j < t->nperl; j++) {
        int pos = exprs[j]->pos;
        if (pos == 0) {
            for (size_t k = 0; k < nreal; k++)
                fprintf(to_perl, "%zu %zu\n", j, k + 1);
        } else {
            size_t back = (size_t)(pos < 0 ? -(long)pos : pos);
            size_t at = back > nreal ? 0 : pos > 0 ? back : nreal - back + 1;
            fprintf(to_perl, "%zu %zu\n", j, at);
        }
    }
    if (fflush(to_perl) != 0)
        die("{= =}: perl went away");
    bool skip = false;
    sbuf_t v = {0};
    for (size_t i = 0; i < nev; i++) {
        char flag;
        if (!read_answer(&flag, &v))
            die("{= =}: perl went away");
        skip = skip || flag == 's';
        char *s = xmalloc(v.len + 2);
        s[0] = flag == 'u' ? 'u' : 'q';
        memcpy(s + 1, v.p, v.len + 1);
        sv_push(args, s);
    }
    sb_free(&v);
    return !skip;
}

void cli_perl_stop(void) {
    if (!perl_pid)
        return;
    fclose(to_perl);
    fclose(from_perl);
    waitpid(perl_pid, NULL, 0);
    perl_pid = 0;
}
