#!/bin/sh
# cli_test.sh - tests of the `procpool` command against GNU parallel's
# documented behaviour (expected outputs written from its manual and
# tutorial, not from running it).
#
#   sh tests/cli_test.sh path/to/procpool [path/to/cli_refuse.so]
#
# Registered with CTest as test_cli. Runs in well under a minute.
P=${1:-procpool}
REFUSE=${2:-} # an LD_PRELOAD shim: memfd_create refuses the --pipe buffer
T=$(mktemp -d "${TMPDIR:-/tmp}/pp_cli_test.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT INT TERM
cd "$T" || exit 1
fails=0
n=0
nl='
'

ok() { n=$((n + 1)); }
bad() {
    n=$((n + 1)); fails=$((fails + 1))
    printf 'FAIL %s\n' "$1"
}
# check NAME EXPECTED ACTUAL
check() {
    if [ "$2" = "$3" ]; then ok; else
        bad "$1"
        printf '  expected: [%s]\n  actual:   [%s]\n' "$2" "$3"
    fi
}
# GNU parallel, when installed: the checks of section 8 run each command under
# it too and expect the same (procpool's own check runs either way).
G=$(command -v parallel 2>/dev/null)
if [ -n "$G" ] && "$G" --version 2>/dev/null | head -1 | grep -q '^GNU parallel'; then :; else
    G=
    echo "cli_test: notice: GNU parallel is not installed; comparisons with it are skipped"
fi
# same NAME EXPECTED SNIPPET: the shell snippet, in which $X is the command
# (procpool, then GNU parallel), prints EXPECTED on stdout under both.
# mine: the same check of procpool alone. GNU parallel takes a second or
# more to start on a loaded machine, so each fix has a few side-by-side
# checks (same) and the rest of its checks run on procpool only (mine).
same() {
    check "$1" "$2" "$(X=$P; eval "$3")"
    if [ -n "$G" ]; then check "$1 [GNU parallel]" "$2" "$(X="$G"; eval "$3")"; fi
}
mine() { check "$1" "$2" "$(X=$P; eval "$3")"; }
# no_proc PATTERN: no process whose command line contains PATTERN
no_proc() {
    for p in /proc/[0-9]*; do
        c=$( (tr '\0' ' ' < "$p/cmdline") 2>/dev/null) || continue
        case "$c" in *"$1"*) return 1 ;; esac
    done
    return 0
}

# ---- 1. inputs ------------------------------------------------------------
check ":::" "a${nl}b${nl}c" "$($P -k echo ::: a b c)"
check "::: cross product (first group outermost)" "a 1${nl}a 2${nl}b 1${nl}b 2" \
    "$($P -k echo ::: a b ::: 1 2)"
printf 'f1\nf2\n' > in.txt
check "::::" "f1${nl}f2" "$($P -k echo :::: in.txt)"
check ":::: with :::" "f1 x${nl}f1 y${nl}f2 x${nl}f2 y" "$($P -k echo :::: in.txt ::: x y)"
check "-a" "f1${nl}f2" "$($P -k -a in.txt echo)"
check "stdin lines" "x${nl}y" "$(printf 'x\ny\n' | $P -k echo)"
check "-0 stdin" "a b${nl}c" "$(printf 'a b\0c\0' | $P -0 -k echo)"
check "-N 2" "a b${nl}c d${nl}e" "$($P -k -N2 echo ::: a b c d e)"
check "-j1 runs one at a time" "1${nl}1${nl}1" "$($P -j1 -k echo {%} ::: a b c)"
check "-j 50% accepted" "a" "$($P -j 50% echo ::: a)"
check "-j 0 accepted" "a${nl}b" "$($P -j0 -k echo ::: a b)"
check "-j +1 accepted" "a" "$($P -j +1 echo ::: a)"
check "no inputs: no jobs" "" "$($P echo ::: 2>&1)"

# ---- 2. replacement strings (GNU parallel's manual, OPTIONS) ---------------
check "{}" "x-foo.jpg" "$($P echo x-{} ::: foo.jpg)"
check "{.}" "foo${nl}subdir/foo${nl}sub.dir/foo${nl}sub.dir/bar" \
    "$($P -k echo {.} ::: foo.jpg subdir/foo.jpg sub.dir/foo.jpg sub.dir/bar)"
check "{/}" "foo.jpg${nl}foo.jpg${nl}bar" "$($P -k echo {/} ::: foo.jpg subdir/foo.jpg sub.dir/bar)"
check "{//}" ".${nl}subdir${nl}sub.dir/x" "$($P -k echo {//} ::: foo.jpg subdir/foo.jpg sub.dir/x/bar)"
check "{/.}" "foo${nl}foo${nl}bar" "$($P -k echo {/.} ::: foo.jpg subdir/foo.jpg sub.dir/bar)"
check "{#}" "1 a${nl}2 b${nl}3 c" "$($P -k echo {#} {} ::: a b c)"
check "{%} within 1..j" "ok" "$($P -j2 echo {%} ::: a b c d e f | sort -u | tr -d '\n' | sed 's/^12$/ok/;s/^1$/ok/;s/^2$/ok/')"
check "{1} {2}" "b a" "$($P echo {2} {1} ::: a ::: b)"
check "{1.} {2/}" "x.tar y.c" "$($P echo {1.} {2/} ::: x.tar.gz ::: d/y.c)"
check "{-1}" "c" "$($P -N3 echo {-1} ::: a b c)"
check "appended when no replacement string" "pre a 1" "$($P echo pre ::: a ::: 1)"
check "{foo} is text" "{foo} a" "$($P echo {foo} ::: a)"
check "-I" "pre-a-post" "$($P -I XX echo pre-XX-post ::: a)"
check "quoting: spaces kept" "a  b" "$($P echo ::: 'a  b')"
check "quoting: no expansion" '$HOME|*|`x`|it'"'"'s' \
    "$($P -k echo ::: '$HOME' '*' '`x`' "it's" | paste -sd'|')"
check "quoting in a shell command" 'A  B|$X' "$($P 'printf %s {} | tr a-z A-Z' ::: 'a  b|$x')"
check "dry-run quotes as GNU parallel (Q)" "echo 'a b'${nl}echo 'it'\"'\"'s'${nl}echo plain/x.y" \
    "$($P --dry-run -k echo ::: 'a b' "it's" plain/x.y)"
check "no command: inputs are commands" "hi${nl}there" "$($P -k ::: 'echo hi' 'echo there')"
check "--shell expands" "$HOME x" "$($P --shell echo '$HOME' ::: x)"
check "--no-shell does not" '$HOME x' "$($P --no-shell echo '$HOME' ::: x)"
check "shell builtins go through sh" "ok 1" "$($P 'cd / && echo ok' ::: 1)"
check "exit builtin" "1" "$($P exit ::: 1; echo $?)"
check "command not found: 127 in the joblog" "127" \
    "$($P --joblog jl0 no-such-command-xyz ::: 1 2>/dev/null; cut -f7 jl0 | tail -1)"

# ---- 3. output -------------------------------------------------------------
check "-k keeps input order" "0.3${nl}0.1${nl}0.2" "$($P -k -j3 'sleep {}; echo {}' ::: 0.3 0.1 0.2)"
check "completion order without -k" "0.1${nl}0.2${nl}0.4" "$($P -j3 'sleep {}; echo {}' ::: 0.4 0.1 0.2)"
out=$($P -j2 'for i in 1 2 3; do echo {}$i; sleep 0.05; done' ::: a b | tr -d '\n')
case "$out" in a1a2a3b1b2b3|b1b2b3a1a2a3) ok ;; *) bad "grouped output: $out" ;; esac
check "--tag" "a	foo-a${nl}b	foo-b" "$($P -k --tag echo foo-{} ::: a b)"
check "--tag, two sources" "a 1	a 1" "$($P --tag echo ::: a ::: 1)"
$P 'echo out{}; echo err{} >&2' ::: 1 > o.txt 2> e.txt
check "stdout and stderr kept apart" "out1|err1" "$(cat o.txt)|$(cat e.txt)"
check "-v prints the command" "echo a${nl}a" "$($P -v echo ::: a)"
out=$($P --line-buffer -j2 'echo {}1; sleep 0.3; echo {}2' ::: a b | tr -d '\n')
case "$out" in a1b1a2b2|b1a1a2b2|a1b1b2a2|b1a1b2a2) ok ;; *) bad "--line-buffer: $out" ;; esac
check "-u" "a" "$($P -u echo ::: a)"

# ---- 4. job control --------------------------------------------------------
start=$(date +%s)
$P --timeout 0.5 'sleep 97.$$ & sleep 97.$$; echo never' ::: 1 > to.txt 2>/dev/null
rc=$?
check "--timeout: failed job counted" "1" "$rc"
check "--timeout: no output after the kill" "" "$(cat to.txt)"
[ $(( $(date +%s) - start )) -le 3 ] && ok || bad "--timeout took too long"
sleep 0.2
no_proc "sleep 97.$$" && ok || bad "--timeout left a process of the job's group"
 $P --timeout 0.2 --joblog jlt 'sleep 2' ::: 1 2>/dev/null
check "--timeout: joblog Exitval -1, Signal 15" "-1 15" "$(tail -1 jlt | cut -f7,8 | tr '\t' ' ')"
check "--timeout: fast jobs unaffected" "a" "$($P --timeout 5 echo ::: a)"
$P --retries 3 'echo x >> r.txt; exit 1' ::: 1; rc=$?
check "--retries 3: three tries" "3 1" "$(wc -l < r.txt | tr -d ' ') $rc"
$P --retries 3 'echo y >> r2.txt' ::: 1
check "--retries: success once" "1" "$(wc -l < r2.txt | tr -d ' ')"
out=$($P -j1 -k --halt now,fail=1 'echo {}; exit {}' ::: 0 0 3 0 0 2>/dev/null); rc=$?
check "--halt now,fail=1: output" "0${nl}0${nl}3" "$out"
check "--halt now,fail=1: exit status of the failing job" "3" "$rc"
out=$($P -j1 -k --halt soon,fail=1 'echo {}; exit {}' ::: 0 4 0 0 2>/dev/null); rc=$?
check "--halt soon,fail=1" "0${nl}4|4" "$out|$rc"
out=$($P -j1 -k --halt 2 'echo {}; exit {}' ::: 5 0 2>/dev/null); rc=$?
check "--halt 2 (= now,fail=1)" "5|5" "$out|$rc"
out=$($P -j1 -k --halt now,success=1 'echo {}; exit {}' ::: 1 0 1 2>/dev/null); rc=$?
check "--halt now,success=1" "1${nl}0|0" "$out|$rc"
out=$($P -j1 -k --halt soon,done=2 'echo {}' ::: a b c d 2>/dev/null); rc=$?
check "--halt soon,done=2" "a${nl}b|0" "$out|$rc"
out=$($P -j1 -k --halt soon,fail=50% 'echo {}; exit {}' ::: 1 1 0 0 2>/dev/null); rc=$?
check "--halt soon,fail=50%" "1${nl}1|1" "$out|$rc"
check "--dry-run runs nothing" "touch d1${nl}touch d2" "$($P --dry-run -k touch ::: d1 d2)"
[ ! -e d1 ] && ok || bad "--dry-run ran a job"
$P --joblog jl -k 'exit {}' ::: 0 1 2; rc=$?
check "joblog exit status" "2" "$rc"
check "joblog header" "Seq	Host	Starttime	JobRuntime	Send	Receive	Exitval	Signal	Command" \
    "$(head -1 jl)"
check "joblog rows" "1 : 0 0 0 0 exit 0|2 : 0 0 1 0 exit 1|3 : 0 0 2 0 exit 2|" \
    "$(tail -n +2 jl | sort -n | awk -F'\t' '{printf "%s %s %s %s %s %s %s|", $1, $2, $5, $6, $7, $8, $9}')"
check "joblog: 9 tab-separated fields" "9" "$(awk -F'\t' '{print NF}' jl | sort -u)"
tail -n +2 jl | awk -F'\t' '$3 !~ /^[0-9]+\.[0-9][0-9][0-9]$/ || $4 !~ /^ *[0-9]+\.[0-9][0-9][0-9]$/ {bad=1} END {exit bad}' \
    && ok || bad "joblog time formats"
$P --joblog jl --resume 'echo ran {}' ::: 0 1 2 3 > res.txt
check "--resume runs only the new jobs" "ran 3" "$(cat res.txt)"
$P --joblog jl --resume-failed -k 'echo ran {}' ::: 0 1 2 3 > res.txt
check "--resume-failed reruns the failed ones" "ran 1${nl}ran 2" "$(cat res.txt)"
$P --joblog jl --resume-failed 'echo ran {}' ::: 0 1 2 3 > res.txt
check "--resume-failed: nothing left" "" "$(cat res.txt)"

# ---- 5. exit status, errors, signals ---------------------------------------
$P false ::: 1 2 3; check "exit status = failed jobs" "3" "$?"
$P -j4 false ::: $(seq 100); check "100 failed" "100" "$?"
$P -j4 false ::: $(seq 101); check "101 failed -> 101" "101" "$?"
$P 'kill -9 $$' ::: 1; check "killed by a signal counts as failed" "1" "$?"
for args in "--bogus" "-j x" "-j 1.5" "--halt bogus" "--halt now,fail=0" "--timeout -1" \
    "--timeout abc" "--block 0" "--retries -1" "--joblog /no/such/dir/jl" "--pipe-part"; do
    # shellcheck disable=SC2086
    err=$($P $args touch marker ::: 1 2>&1 >/dev/null); rc=$?
    lines=$(printf '%s\n' "$err" | wc -l)
    if [ "$rc" = 255 ] && [ "$lines" = 1 ] && [ ! -e marker ]; then ok; else
        bad "bad option '$args': rc=$rc lines=$lines: $err"; fi
done
check "{3} past the last source is empty" "x" "$($P echo x{3} ::: a ::: b)"
for tmpl in '{=0 1 =}' '{= $_ ' '{0}' '{0.}' '{-0}'; do
    err=$($P echo "$tmpl" touch marker ::: 1 ::: 2 2>&1 >/dev/null); rc=$?
    if [ "$rc" = 255 ] && [ ! -e marker ]; then ok; else bad "bad replacement string '$tmpl': rc=$rc $err"; fi
done
err=$($P echo :::: no-such-file 2>&1); rc=$?
check "missing input file: 255" "255" "$rc"
for sig in INT TERM; do
    $P -j2 'sleep 96.$$ & sleep 96.$$' ::: 1 2 3 > /dev/null 2>&1 &
    pid=$!
    sleep 0.5
    kill -$sig $pid
    wait $pid; rc=$?
    check "SIG$sig exit status (GNU parallel's 255)" "255" "$rc"
    sleep 0.3
    no_proc "sleep 96.$$" && ok || bad "SIG$sig left a job process"
done
ls "${TMPDIR:-/tmp}" > /dev/null

# ---- 6. help, version ------------------------------------------------------
$P --help | grep -q '^Usage: procpool' && ok || bad "--help"
check "--version" "procpool 0.2.0" "$($P --version | head -1)"

# ---- 7. blocks -------------------------------------------------------------
check "--pipe -N3" "3${nl}3${nl}3${nl}1" "$(seq 1 10 | $P --pipe -N3 -k wc -l)"
seq 1 100000 > nums
check "--pipe --block 100k keeps every byte" "same" \
    "$($P --pipe --block 100k -k cat < nums | cmp -s - nums && echo same)"
check "--pipe: blocks cut on records" "100000" \
    "$($P --pipe --block 10k wc -l < nums | awk '{s += $1} END {print s}')"
check "--pipe: several blocks" "yes" \
    "$($P --pipe --block 10k wc -l < nums | awk 'END {print (NR > 5 ? "yes" : "no")}')"
check "--recstart" "2${nl}2${nl}2" "$(printf '>r1\nA\n>r2\nC\n>r3\nG\n' | $P --pipe --recstart '>' -N1 -k wc -l)"
check "--recend" "a;b;|c;" "$(printf 'a;b;c;' | $P --pipe --recend ';' -N2 -k 'cat; echo "|"' | tr -d '\n' | sed 's/|$//')"
check "--pipe-part" "100000" "$($P --pipe-part -a nums --block 100k wc -l | awk '{s += $1} END {print s}')"
check "--pipe-part keeps every byte" "same" \
    "$($P --pipe-part -a nums --block 64k -k cat | cmp -s - nums && echo same)"
check "--pipe {#}" "1${nl}2" "$(printf 'a\nb\n' | $P --pipe -N1 -k echo {#})"

# ---- 8. the same as GNU parallel, side by side when it is installed ---
# the user's shell: $PARALLEL_SHELL, else the nearest shell process above,
# else $SHELL, else /bin/sh
if command -v bash > /dev/null 2>&1; then
    same "bash: export -f f; then f runs" "f:x${nl}f:y" \
        'bash -c "f() { echo f:\$1; }; export -f f; $X -k f ::: x y; true"'
    same "bash syntax <(...) with PARALLEL_SHELL=bash" "a" \
        'PARALLEL_SHELL=$(command -v bash) $X "cat <(echo {})" ::: a'
    same "a shell above wins over \$SHELL" "$(command -v sh) a" \
        'SHELL=$(command -v bash) sh -c "$X '"'"'echo \$0'"'"' ::: a; true"'
fi
mine "PARALLEL_SHELL runs the commands (\$0)" "/bin/sh a" 'PARALLEL_SHELL=/bin/sh $X "echo \$0" ::: a'
mine "PARALLEL_SHELL that does not exist: 255" "255" \
    'PARALLEL_SHELL=/no/such/shell $X echo ::: a 2>/dev/null; echo $?'
# GNU's other spellings, and abbreviations of long options
same "--jl FILE" "2" '$X --jl jl.b echo ::: a > /dev/null; wc -l < jl.b | tr -d " "'
mine "--linebuffer, --line-buffered" "a${nl}b" '$X --linebuffer echo ::: a; $X --line-buffered echo ::: b'
same "--blocksize" "3" 'seq 3 | $X --pipe --blocksize 1k wc -l | tr -d " "'
mine "--dr, --dryrun" "echo a${nl}echo b" '$X --dr echo ::: a; $X --dryrun echo ::: b'
mine "--keeporder" "0.3${nl}0.1${nl}0.2" '$X --keeporder -j3 "sleep {}; echo {}" ::: 0.3 0.1 0.2'
mine "--group, --will-cite, --no-notice" "a${nl}b" '$X --group --will-cite -k echo ::: a; $X --no-notice echo ::: b'
mine "--no-keep-order undoes -k" "0.1${nl}0.3" '$X -k --no-k -j2 "sleep {}; echo {}" ::: 0.3 0.1'
same "abbreviations: --kee, --verb, --j" "echo a${nl}a" '$X --kee --verb --j 2 echo ::: a 2>&1'
mine "long options in any case" "echo a" '$X --DRY-Run echo ::: a'
mine "--jo is ambiguous: 255, nothing run" "255" '$X --jo 2 touch amb ::: 1 >/dev/null 2>&1; echo $?; ls amb 2>/dev/null'
same "--lin is ambiguous (GNU's --link counts)" "255" '$X --lin echo ::: a >/dev/null 2>&1; echo $?'
mine "-g has been retired: 255" "255" '$X -g echo ::: a 2>/dev/null; echo $?'
mine "--group with --ungroup: 255" "255" '$X --group -u echo ::: a 2>/dev/null; echo $?'
check "the ambiguity error lists the candidates" \
    "procpool: option '--ve' is ambiguous (verbose, version)" "$($P --ve echo ::: a 2>&1)"
check "an option of GNU parallel that procpool lacks says so" \
    "procpool: option '--csv' of GNU parallel is not supported by procpool (see procpool --help)" \
    "$($P --csv echo ::: a 2>&1)"
# durations with GNU's time units
mine "--timeout 1m30s, 1.4m, 1h, 2d, 5S, 1M" "1m30s 1.4m 1h 2d 5S 1M" \
    'for t in 1m30s 1.4m 1h 2d 5S 1M; do $X --timeout $t echo ::: $t; done | paste -sd" " -' 
same "--timeout 1s stops a job" "1" '$X --timeout 1s "sleep 9; echo never" ::: 1 2>/dev/null; echo $?'
mine "--timeout 0 is no timeout" "x 1" '$X --timeout 0 "sleep 0.2; echo x" ::: 1'
same "--timeout 1.4m" "a" '$X --timeout 1.4m echo ::: a'
same "--timeout 1m30 is refused: 255" "255" '$X --timeout 1m30 echo ::: a 2>/dev/null; echo $?'
for t in 1e3 .5 -1 1s2; do
    mine "--timeout $t is refused: 255" "255" '$X --timeout '"$t"' echo ::: a 2>/dev/null; echo $?'
done
# --joblog - (standard output) and +FILE (append)
same "--joblog -: the log on stdout, after each job's output" \
    "Seq	Host	Exitval	Signal	Command${nl}a${nl}1	:	0	0	echo a${nl}b${nl}2	:	0	0	echo b" \
    '$X -j1 -k --joblog - echo ::: a b | cut -f1,2,7,8,9'
mine "--joblog - --dry-run: no log" "echo a" '$X --joblog - --dry-run echo ::: a'
same "--joblog +FILE appends" "1	echo a${nl}1	echo b" \
    'rm -f jlp; $X --joblog jlp echo ::: a > /dev/null; $X --joblog +jlp echo ::: b > /dev/null; cut -f1,9 jlp | grep -v ^Seq'
rm -f jln; $P --joblog +jln echo ::: a > /dev/null; $P --joblog +jln echo ::: b > /dev/null
check "--joblog +FILE: one header, on a new file too" "1 1" \
    "$(grep -c ^Seq jln) $(head -1 jln | grep -c ^Seq)"
check "--joblog +FILE: two runs, two lines" "3" "$(wc -l < jln | tr -d ' ')"
# -N0: a job per input, given none of it
same "-N0: one job per input, no arguments" "foo${nl}foo${nl}foo" '$X -k -N0 echo foo ::: 1 2 3'
mine "-n0 too" "foo${nl}foo" '$X -k -n0 echo foo ::: 1 2'
mine "-N0: a job per combination" "4" '$X -N0 echo foo ::: 1 2 ::: a b | wc -l | tr -d " "'
mine "-N0: a job per stdin line" "bar${nl}bar" 'printf "x\ny\n" | $X -k -N0 echo bar'
same "-N0: {} is nothing at all, {#} the job number" "[a][b][1][a][b][2]" \
    '$X -k -N0 printf "[%s]" a {} b {#} ::: x y'
mine "-N0 --tag: an empty tag" "	foo" '$X -N0 --tag echo foo ::: 1'
check "-N0 --dry-run" "echo foo${nl}echo foo" "$($P -k -N0 --dry-run echo foo ::: 1 2)"
# an argument a job does not have ({3} of -N3 with two left) is nothing
same "-N3 {1} {2} {3} with two left: no trailing space" "1 2 3|${nl}4 5|" \
    '$X -k -N3 echo {1} {2} {3} ::: 1 2 3 4 5 | sed "s/\$/|/"'
mine "-N3 appended, two left: no trailing space" "1 2 3|${nl}4 5|" \
    '$X -k -N3 echo ::: 1 2 3 4 5 | sed "s/\$/|/"'
same "a missing {N} is no argument at all" "[1][x3y][3][4][xy]" \
    '$X -k -N3 printf "[%s]" {1} x{3}y {3} ::: 1 2 3 4 5'
mine "an empty argument stays an argument" "[][x]" '$X printf "[%s]" {1} {2} ::: "" ::: x'
check "{-3} of two arguments is nothing (GNU parallel wraps around)" "echo 1 2 3${nl}echo  4 5" \
    "$($P -k -N3 --dry-run echo {-3} {-2} {-1} ::: 1 2 3 4 5)"
# -t/--verbose on stderr (-v on stdout); --replace/-i take an optional value
same "-t: the command on stderr" "echo a" '$X -t echo ::: a 2>&1 >/dev/null'
mine "--verbose: the command on stderr, not stdout" "a" '$X --verbose echo ::: a 2>/dev/null'
mine "-v: the command on stdout" "echo a${nl}a" '$X -v echo ::: a 2>/dev/null'
mine "--dry-run -t: on stdout and stderr" "echo a|echo a" \
    'o=$($X --dry-run -t echo ::: a 2>e.t); echo "$o|$(cat e.t)"'
same "--replace before an option has no value: {}" "a" '$X --replace -k echo {} ::: a'
mine "-i before --: {}" "a" '$X -i -- echo {} ::: a'
mine "--replace=XX, -iXX, --replace=" "x${nl}y${nl}z" \
    '$X --replace=XX echo XX ::: x; $X -iYY echo YY ::: y; $X --replace= echo {} ::: z'
mine "-i takes the next word when it is no option" "x" '$X -i - echo - ::: x'
check "--bar: nothing when stderr is not a terminal (GNU: zenity format)" "" \
    "$($P --bar echo ::: a 2>&1 >/dev/null)"
# --block: k = 1000, K = 1024 (m/M, g/G likewise); -N: N parts per job slot
same "--block 1k is 1000 bytes" "1000 1000 1000" \
    'seq 1000 | $X --pipe --block 1k -k wc -c | head -3 | tr -d " " | paste -sd" " -'
mine "--block 1K and 1ki are 1024 bytes" "1024 1024${nl}1024 1024" \
    'for b in 1K 1ki; do seq 1000 | $X --pipe --block $b -k wc -c | head -2 | tr -d " " | paste -sd" " -; done'
mine "--block 0.001m is 1000 bytes" "1000" 'seq 1000 | $X --pipe --block 0.001m -k wc -c | head -1 | tr -d " "'
same "--pipe-part --block -3 -j2: 6 parts, every byte" "6 588895" \
    '$X --pipe-part -a nums --block -3 -j2 wc -c | awk "{s += \$1; n++} END {print n, s}"'
mine "--pipe-part: 10 parts per job slot by default" "20 588895" \
    '$X --pipe-part -a nums -j2 wc -c | awk "{s += \$1; n++} END {print n, s}"'
mine "--block -2 without --pipe-part: 255" "255" 'seq 10 | $X --pipe --block -2 wc -c 2>/dev/null; echo $?'
# -k --line-buffer: job order; only the oldest running job streams
same "-k --line-buffer: output in job order" "31 32 11 12 21 22" \
    '$X -k --lb -j3 "echo {}1; sleep 0.{}; echo {}2" ::: 3 1 2 | paste -sd" " -'
# the oldest job's first line must be out while it runs: it waits (10 s at
# most) for the reader to see that line, and says "late" if it never comes
same "-k --line-buffer: the oldest job streams" "a1 a2 b1" \
    'rm -f go; $X -k --lb -j2 "if [ {} = a ]; then echo a1; i=0; while [ ! -e go ] && [ \$i -lt 200 ]; do sleep 0.05; i=\$((i + 1)); done; [ -e go ] && echo a2 || echo late; else echo b1; fi" ::: a b |
     while read -r l; do echo "$l"; [ "$l" = a1 ] && touch go; done | paste -sd" " -'
mine "-k --line-buffer: the next job streams once it is the oldest" "a1 a2 b1 b2" \
    'rm -f go; $X -k --lb -j2 "if [ {} = a ]; then echo a1; sleep 0.3; echo a2; else echo b1; i=0; while [ ! -e go ] && [ \$i -lt 200 ]; do sleep 0.05; i=\$((i + 1)); done; [ -e go ] && echo b2 || echo late; fi" ::: a b |
     while read -r l; do echo "$l"; [ "$l" = b1 ] && touch go; done | paste -sd" " -'
mine "-k --line-buffer --tag" "a	x1 a	x2 b	y" \
    '$X -k --lb --tag -j2 "if [ {} = a ]; then echo x1; sleep 0.2; echo x2; else echo y; fi" ::: a b | paste -sd" " -'

seq 3000000 > nums3m
ls "${TMPDIR:-/tmp}" | grep '^procpool\.' > spills.before
# ---- 9. output of any size, a lost stdout, signals, descriptors, separators
# the largest resident set of the command and every process under it, in KB
maxrss() { /usr/bin/time -f %M -o rss.t "$@" > /dev/null 2>&1; tail -1 rss.t; }
if [ -x /usr/bin/time ]; then
    for mode in "" --lb "-k --lb"; do
        # shellcheck disable=SC2086
        kb=$(maxrss $P $mode -N0 'yes | head -c 100M' ::: 1)
        [ "${kb:-999999}" -lt 50000 ] && ok || bad "100 MB of output${mode:+ with $mode}: max RSS ${kb} KB"
    done
fi
mine "output past the spill size: every byte, in order" "ok" \
    '$X -N0 "seq 3000000" ::: 1 | cmp -s - nums3m && echo ok'
mine "a spilled stream keeps stdout and stderr apart" "3000000|2000000" \
    '$X -N0 "seq 2000000 >&2; seq 3000000" ::: 1 2>e.big | tail -1 | tr -d "\n"; echo "|$(tail -1 e.big)"'
mine "--tag on spilled output: every line tagged" "2000000" \
    '$X --tag "seq 2000000; true {}" ::: a | grep -c "^a	[0-9]*\$"'
mine "-k --lb: a job that waited streams its spilled lines in order" "1 1 500000 500000" \
    '$X -k --lb -j2 "if [ {} = a ]; then sleep 0.5; echo 1; else seq 500000; fi" ::: a b | sed -n "1p;500001p;2p;\$p" | paste -sd" " -'
same "--lb: an endless job ends when stdout is closed (SIGPIPE's 141)" "y 141" \
    '(timeout 30 $X --lb -N0 yes ::: 1; echo " $?" > rc.t) | head -1 | tr "\n" " "; sleep 0.2; tr -d " " < rc.t'
mine "grouped: a closed stdout ends the run (141)" "141" \
    '(timeout 30 $X -j1 "seq 100000; sleep 0.5" ::: 1 2 3 4 5 6; echo $? > rc.t) | head -1 > /dev/null; sleep 0.2; cat rc.t'
for mode in "" --lb -k; do
    # shellcheck disable=SC2086
    err=$(timeout 30 $P $mode -j1 'echo {}' ::: 1 2 3 2>&1 > /dev/full); rc=$?
    case "$rc:$err" in "255:procpool: cannot write the output: No space left on device") ok ;;
        *) bad "/dev/full${mode:+ with $mode}: rc=$rc: $err" ;; esac
done
ls "${TMPDIR:-/tmp}" | grep '^procpool\.' > spills.after
mine "no spill directory left behind" "" 'comm -13 spills.before spills.after'
# SIGHUP: no new job; the running ones finish and print (GNU parallel: 0)
same "SIGHUP: running jobs finish and print, no new job starts" "out1 out2 |0" \
    'rm -f st.1 st.2; $X -j2 -k "touch st.{}; sleep 1; echo out{}" ::: 1 2 3 4 > hup.o 2>/dev/null & p=$!
     i=0; while { [ ! -e st.1 ] || [ ! -e st.2 ]; } && [ $i -lt 600 ]; do sleep 0.05; i=$((i + 1)); done
     sleep 0.2; kill -HUP $p; wait $p; rc=$?; echo "$(paste -sd" " hup.o) |$rc"'
mine "SIGHUP: the message" "procpool: SIGHUP received. No new jobs will be started." \
    'rm -f st.1; $X -j1 "touch st.1; sleep 0.5" ::: 1 2 2> hup.e & p=$!
     i=0; while [ ! -e st.1 ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i + 1)); done
     kill -HUP $p; wait $p; head -1 hup.e'
# few descriptors: fewer job slots and a warning, never a hang or a refusal
mine "ulimit -n 30, -j6: fewer slots, every job runs" "28 1" \
    '(ulimit -n 30; timeout 60 $X -j6 echo ::: $(seq 28) 2> fd.e | wc -l | tr -d " "; grep -c "Only enough file handles to run [0-9]* jobs in parallel" fd.e) | paste -sd" " -'
mine "ulimit -n 30, -j0: every job runs" "28" \
    '(ulimit -n 30; timeout 60 $X -j0 echo ::: $(seq 28) 2>/dev/null | wc -l | tr -d " ")'
# --pipe-part takes :::: FILE; -d of several characters; --recend ''; -j FILE
same "--pipe-part :::: FILE" "100000" '$X --pipe-part --block 100k wc -l :::: nums | awk "{s += \$1} END {print s}"'
same "--pipe-part :::: FILE ::: args (ignored without --tee)" "6 4" \
    'seq 10 > ten; $X --pipe-part --block 10 -k wc -l :::: ten ::: X Y 2>/dev/null | paste -sd" " -'
# --tag with --line-buffer: a line that goes out in pieces (over 1 MiB) is tagged once
printf 'head -c 3000000 /dev/zero | tr "\\0" x; echo; echo end\n' > big3m.sh
same "--tag --lb: a 3 MB line is tagged once" "3000002 2 5 2" \
    '$X --tag --lb sh big3m.sh ::: a | awk -F"\t" "{print length(\$0), NF}" | paste -sd" " -'
mine "--tag --lb -k: the streaming job and the waiting one" "3000002 2 5 2 3000002 2 5 2" \
    '$X -k --tag --lb sh big3m.sh ::: a b | awk -F"\t" "{print length(\$0), NF}" | paste -sd" " -'
seq 1 5 > f5; seq 10 12 > f3; printf 'h\n1\n2\n' > hd1; printf 'H\n3\n4\n' > hd2
same "--pipe-part :::: two files: split in turn, no part spans both" "1 [1,2,3,4] 2 [5] 3 [10,11,12]" \
    '$X --pipe-part --block 6 -k "echo {#} [\$(paste -sd, -)]" :::: f5 f3 | paste -sd" " -'
same "--pipe-part -a twice" "[1,2,3,4] [5] [10,11,12]" \
    '$X --pipe-part --block 6 -k -a f5 -a f3 "echo [\$(paste -sd, -)]" | paste -sd" " -'
same "--pipe-part --header with two files: each file's own" "[h,1,2] [H,3,4]" \
    '$X --pipe-part --header : --block 2 -k "echo [\$(paste -sd, -)]" :::: hd1 hd2 | paste -sd" " -'
same "--pipe-part: three small files are three jobs ({##}; the job slots follow)" "3 3 3" \
    '$X --plus --pipe-part --block 1M -k "echo {##}" :::: f5 f3 hd1 | paste -sd" " -'
mine "--pipe-part: every byte of three files" "300000" \
    '$X --pipe-part --block 50k wc -l :::: nums nums nums | awk "{s += \$1} END {print s}"'
mine "--pipe-part: a file that is not there: 255" "255" \
    '$X --pipe-part --block 6 cat :::: f5 no_such_file 2>/dev/null; echo $?'
same "--pipe-part: parts as GNU parallel cuts them" "6 588895" \
    '$X --pipe-part -a nums --block 100k wc -c | awk "{s += \$1; n++} END {print n, s}"'
same "-d of several characters" "[a] [b] [c]" 'printf "a\r\nb\r\nc\r\n" | $X -d "\r\n" -k echo "[{}]" | paste -sd" " -'
mine "-d --: a record without the delimiter at the end" "[a] [b-c]" 'printf "a--b-c" | $X -d -- -k echo "[{}]" | paste -sd" " -'
same "--recend '' alone: blocks of exactly --block bytes" "5 5 5 5 1" \
    'seq 10 | $X --pipe --recend "" --block 5 -k wc -c | tr -d " " | paste -sd" " -'
# each job lasts long enough for both slots to be taken (a fast one frees its slot first)
same "-j FILE" "1 2" 'echo 2 > jf; $X -j jf -k "sleep 0.3; echo {%}" ::: 1 2 3 4 | sort -u | paste -sd" " -'
# jobs 4-6 start after the file says 1: they never overlap (with -j3 they would)
mine "-j FILE is read again as jobs end" "0" \
    'echo 3 > jf; $X -j jf --joblog jlf "echo 1 > jf; sleep {}" ::: 0.1 0.6 0.6 0.3 0.3 0.3 > /dev/null
     awk -F"\t" "NR > 1 && \$1 > 3 {printf \"%.3f %.3f\\n\", \$3, \$3 + \$4}" jlf | sort -n |
     awk "NR > 1 && \$1 < prev - 0.05 {o++} {prev = \$2} END {print o + 0}"'
mine "-j FILE that is no number: 255" "255" 'echo x > jfx; $X -j jfx echo ::: a 2>/dev/null; echo $?'
# multi-byte separators and a record longer than --block: every byte, one job
head -c 3000000 /dev/zero | tr '\0' x > longrec; printf '</r>\n' >> longrec; cat longrec longrec > long2
same "--recend of several bytes, records longer than --block" "3000005 3000005" \
    '$X --pipe --block 100k --recend "</r>\n" -k wc -c < long2 | tr -d " " | paste -sd" " -'
mine "the same from a pipe" "3000005 3000005" \
    'cat long2 | $X --pipe --block 100k --recend "</r>\n" -k wc -c | tr -d " " | paste -sd" " -'
mine "--recstart of several bytes, records longer than --block" "2999997 3000005 8" \
    'cat long2 | $X --pipe --block 64k --recstart "xxx</r>" -k wc -c | tr -d " " | paste -sd" " -'
mine "--pipe-part with a record longer than --block" "3000005 3000005" \
    '$X --pipe-part -a long2 --block 100k --recend "</r>\n" -k wc -c | tr -d " " | paste -sd" " -'

# ---- 10. more of GNU parallel's options -------------------------------------
# --colsep/-C (a regular expression; columns trimmed) and --header
printf 'a,b\nc , d\n' > cols.csv
printf 'h1,h2\na,b\nc,d\n' > head.csv
same "--colsep: {2}-{1}" "b-a${nl}d-c" '$X -k --colsep , echo {2}-{1} :::: cols.csv'
same "-C: a regular expression, ::: values too" "b${nl}d" "\$X -k -C '[,;]' echo {2} ::: 'a;b' 'c,d'"
same "--colsep: columns appended, several sources" "x y b" '$X -k --colsep , echo ::: x,y ::: a,b | cut -d" " -f1,2,4'
same "--colsep: an empty column stays" "[a][][b]" 'printf "a,,b\n" | $X --colsep , echo "[{1}][{2}][{3}]"'
same "--header : --colsep: {name}" "b a${nl}d c" '$X -k --header : --colsep , echo {h2} {1} :::: head.csv'
same "--header : without --colsep: the source's name" "1${nl}2" '$X -k --header : echo {f} ::: f 1 2'
mine "--header: {name/} and {name.}" "x c.x" '$X --header : echo {p/} {q.} ::: p d/d/x ::: q c.x.y'
same "--header: the header line is no job" "a" 'printf "h\na\n" | $X --header : echo'
# -m, -X, --xargs and -s
same "-m: a job holds many; few are spread over the slots" "1 2 3${nl}4 5" '$X -k -j2 -m echo ::: 1 2 3 4 5'
same "-X: the word with {} repeated" "x1y x2y x3y${nl}x4y x5y" '$X -k -j2 -X echo x{}y ::: 1 2 3 4 5'
same "--xargs: not spread" "1 2 3 4 5" '$X -k -j2 --xargs echo ::: 1 2 3 4 5'
same "-m stdin, -j3" "1 2 3${nl}4 5 6${nl}7" 'seq 7 | $X -k -j3 -m echo'
same "-m -N2" "1 2${nl}3 4${nl}5" '$X -k -j2 -m -N2 echo ::: 1 2 3 4 5'
same "-s 14 -m: lines shorter than 14" "aa bb cc|dd ee" '$X -k -j1 -s 14 -m echo ::: aa bb cc dd ee | paste -sd"|" -'
same "-s 17 -X" "xaa xbb xcc|xdd xee" '$X -k -j1 -s 17 -X echo x{} ::: aa bb cc dd ee | paste -sd"|" -'
same "-s: quoting counts" "'a b' c|'d e'" '$X -k -j1 -s 15 -m --dry-run echo ::: "a b" c "d e" | sed "s/^echo //" | paste -sd"|" -'
same "-s too small for one argument: 255" "255" '$X -j1 -s 5 -m echo ::: aaaaaaa b >/dev/null 2>&1; echo $?'
mine "-m: a long input makes several full lines" "3 1000" \
    'seq 1000 | $X -k -j1 -s 1500 -m echo | awk "{n += NF} END {print NR, n}"'
# -L, -l, --max-lines
same "-L 2: two lines per job, as -X" "x1 x2${nl}x3 x4${nl}x5" 'seq 5 | $X -k -L2 echo x{}'
same "-l 2: two lines per job, as -m" "x1 2${nl}x3 4${nl}x5" 'seq 5 | $X -k -l 2 echo x{}'
same "-l without a number: 1" "x1${nl}x2" 'seq 2 | $X -k -l echo x{}'
same "--max-lines=2" "x1 2${nl}x3" 'seq 3 | $X -k --max-lines=2 echo x{}'
same "-L1: a trailing blank goes on on the next line" "xa b${nl}xc" 'printf "a \nb\nc\n" | $X -k -L1 echo x{}'
same "-L 0: a job per line, given none of it" "x${nl}x" 'seq 2 | $X -k -L 0 echo x{}'
# -r, -E, --arg-sep, --arg-file-sep
same "-r: white-space-only lines are no jobs" "xa${nl}xb" 'printf "a\n\n  \nb\n" | $X -k -r echo x{}'
same "-r: ::: values too" "xa${nl}xb" "\$X -k -r echo x{} ::: a '' ' ' b"
same "-E: the input ends at the eof string" "a${nl}b" 'printf "a\nb\nSTOP\nc\n" | $X -k -E STOP echo'
same "-E: ::: values too" "a" '$X -k -E b echo ::: a b c'
same "--arg-sep" "a${nl}b" '$X -k --arg-sep ,, echo ,, a b'
same "--arg-file-sep" "f1${nl}f2" '$X -k --arg-file-sep // echo // in.txt'
mine "--arg-sep: ::: is then an argument" "::: a" '$X -k --arg-sep ,, echo ,, ::: a | paste -sd" " -'
# :::+, ::::+, --link
same ":::+: side by side, to the shorter" "a 1${nl}b 2" '$X -k echo ::: a b c :::+ 1 2'
same "--link: the shorter wraps" "a 1${nl}b 2${nl}c 1" '$X -k --link echo ::: a b c ::: 1 2'
same ":::+ within a cross product" "a 1 x${nl}a 2 y${nl}b 1 x${nl}b 2 y" '$X -k echo ::: a b ::: 1 2 :::+ x y'
same "::::+" "f1 a${nl}f2 b" 'printf "a\nb\n" | $X -k echo :::: in.txt ::::+ -'
# --shuf: every job once
mine "--shuf: every job, once" "1 2 3 4 5 6 7 8 9 10" '$X --shuf -j1 echo ::: $(seq 10) | sort -n | paste -sd" " -'
# --shellquote, --number-of-*
same "--shellquote" "'a b'${nl}'it'\"'\"'s'${nl}plain" "\$X -k --shellquote ::: 'a b' \"it's\" plain"
same "--shellquote: stdin" "'x\$y z'" 'echo "x\$y z" | $X --shellquote'
same "--number-of-threads, --number-of-sockets" "$(getconf _NPROCESSORS_ONLN) 1" \
    'echo $($X --number-of-threads) $($X --number-of-sockets)'
same "--number-of-cores: cores, not threads" "yes" \
    'c=$($X --number-of-cores); [ "$c" -ge 1 ] && [ "$c" -le $($X --number-of-threads) ] && echo yes'
mine "--number-of-cpus = --number-of-cores" "yes" '[ $($X --number-of-cpus) = $($X --number-of-cores) ] && echo yes'
# $PARALLEL and ~/.parallel/config: words before the command line's
same "\$PARALLEL: options (and a command)" "x	x${nl}y	y" "PARALLEL=\"--tag -k 'echo'\" \$X ::: x y"
mine "\$PARALLEL: exit status 0 (under ASan: nothing reported as leaked)" "0" \
    'PARALLEL="-k" $X true ::: a; echo $?'
mkdir -p home/.parallel; printf '# a comment\n-k\n--tag\n' > home/.parallel/config
mine "~/.parallel/config" "a	a${nl}b	b" 'HOME=$PWD/home $X echo ::: a b'
# -q: each command word stays one word, quoted as a whole
same "-q: a word with spaces is one word" "echo 'a bc d'${nl}a bc d" "\$X -k -q -v echo 'a b{}' ::: 'c d'"
same "-q: shell syntax is text" "x y" "\$X -q sh -c 'echo \$0' ::: 'x y'"
mine "-q --dry-run" "printf '%s|' 'a;b'" "\$X -q --dry-run printf '%s|' ::: 'a;b'"
# {= perl expression =}
same "{= =}: each argument" "ax bx${nl}cx" "\$X -k -N2 echo '{= \$_.=\"x\" =}' ::: a b c"
same "{=N =}" "B A" "\$X -k echo '{=2 s/b/B/ =}' '{=1 \$_=uc(\$_) =}' ::: a ::: b"
same "{= =}: the value is quoted; uq() not" "echo 'a b'${nl}echo a b" \
    "\$X -k --dry-run echo '{= \$_=\"a b\" =}' ::: 1; \$X -k --dry-run echo '{= \$_=\"a b\";uq() =}' ::: 1"
same "{= =}: seq(), total_jobs(), @arg" "1 2 a${nl}2 2 b" \
    "\$X -k echo '{= \$_=seq() =}' '{= \$_=total_jobs() =}' '{= \$_=\$arg[1] =}' ::: a b"
same "{= =}: skip() skips the job, not its number" "1a${nl}3c" "\$X -k echo '{#}{= \$_ eq \"b\" and skip() =}' ::: a b c"
same "{= =}: state kept from job to job" "a0${nl}b1${nl}c2" "\$X -k -j1 echo '{= \$_ .= \$x++ =}' ::: a b c"
same "{= =}: Q()" "'a'\"'\"'b'" "\$X -k echo '{= \$_=Q(\$_) =}' ::: \"a'b\""
same "{= =} with -X" "yax ybx" "\$X -k -X -j1 echo 'y{= \$_.=\"x\" =}' ::: a b"
same "{= =}: a compile error: 255, nothing run" "255" "\$X echo '{= syntax error ( =}' touch perlx ::: a 2>/dev/null; echo \$?; ls perlx 2>/dev/null"
mine "{= =} without perl: 255 and why" "255 1" \
    "o=\$(PATH=/nonexistent \$X echo '{= =}' ::: a 2>&1); echo \$? \$(echo \"\$o\" | grep -c 'need perl')"
# --tagstring
same "--tagstring: replacement strings" "<a-1>	x a${nl}<b-2>	x b" "\$X -k --tagstring '<{}-{#}>' echo x ::: a b"
same "--tag: the arguments, not the {= =} values" "a	z" "\$X -k --tag echo '{= \$_=\"z\" =}' ::: a"
# --plus
same "--plus: {..} {...} {/..} {+.} {+..} {+/}" "d/e/a.tar d/e/a a.tar x gz.x d/e${nl}b.c b.c b.c c  " \
    "\$X -k --plus echo {..} {...} {/..} {+.} {+..} {+/} ::: d/e/a.tar.gz.x b.c"
same "--plus: {##} {0#} {0%}" "3 1 1${nl}3 2 1${nl}3 3 1" "\$X -j1 --plus -k echo {##} {0#} {0%} ::: a b c"
same "--plus: {:N} {:N:M} {#re} {%re} {/re/s} {^re} {^^re} {,re} {,,re} {:-s}" \
    "xyz:bx:bxyz:abxy:Qbxyz:Abxyz:aBxyz:abxyz:abxyz:abxyz${nl}bA:Bb:ABbA:ABbA:ABbA:ABbA:ABBA:aBbA:AbbA:ABbA${nl}:::::::::def" \
    "\$X -k --plus echo '{:2}:{:1:2}:{#a}:{%z}:{/a/Q}:{^a}:{^^b}:{,A}:{,,B}:{:-def}' ::: abxyz ABbA ''"
mine "--plus: {0#} has the width of the job count" "01${nl}10" "\$X -k --plus echo {0#} ::: \$(seq 10) | sed -n '1p;10p'"
same "without --plus, {..} is text" "{..} a" "\$X echo {..} ::: a"
# --results, --files
same "--results DIR: DIR/1/a/2/b/{stdout,stderr,seq}, nothing printed" \
    "|a 1|e|1${nl}res/1/a/2/1/seq res/1/a/2/1/stderr res/1/a/2/1/stdout res/1/b/2/1/seq" \
    'rm -rf res; o=$($X -k --results res "echo {1} {2}; echo e >&2" ::: a b ::: 1 2>&1); echo "|$(cat res/1/a/2/1/stdout)|$(cat res/1/a/2/1/stderr)|$(cat res/1/a/2/1/seq)$o"; find res -type f | sort | head -4 | paste -sd" " -'
same "--results: / in a value is \\_" "res/1/a\\_b/stdout" 'rm -rf res; $X --results res/ echo ::: a/b; ls res/1/*/stdout'
same "--results NAME{}: the file, .err, .seq" "x|e|1" \
    'rm -rf r2; $X --results r2/{}.out "echo {}; echo e >&2" ::: x; echo "$(cat r2/x.out)|$(cat r2/x.out.err)|$(cat r2/x.out.seq)"'
same "--files: the names of files that hold the output" "a${nl}b" \
    'mkdir -p tf; $X -k --files --tmpdir tf echo ::: a b > names; cat $(cat names); rm -f $(cat names)'
mine "--files: in --tmpdir, named par*.par" "2" 'rm -rf tf; mkdir tf; $X --files --tmpdir tf echo ::: a b | grep -c "^tf/par.*\.par$"'
same "--results --files: the names of the stdout files" "r6/1/1/stdout" 'rm -rf r6; $X --results r6 --files "echo a" ::: 1'
mine "--results x.csv: not supported, 255" "255" '$X --results x.csv echo ::: a 2>/dev/null; echo $?'
# --retry-failed: the joblog's failed commands, run again
same "--retry-failed: only the failed jobs, from the joblog" "1${nl}2|2|2	1${nl}3	2" \
    'rm -f jlr; $X --joblog jlr -k "echo {}; exit {}" ::: 0 1 2 0 > /dev/null; o=$($X -k --retry-failed --joblog jlr); echo "$o|$?|$(tail -n +6 jlr | cut -f1,7 | sort)"'
mine "--retry-failed without --joblog: 255" "255" '$X --retry-failed echo ::: a 2>/dev/null; echo $?'
# --nice, --delay, --load, --memfree, --progress
if [ "$(id -u)" = 0 ] || [ "$(nice)" -le 5 ]; then # a niceness below the current one needs root
    same "--nice 5: the jobs run at niceness 5" "5" '$X --nice 5 "nice; true" ::: 1'
fi
mine "--nice 19" "19" '$X --nice 19 "nice; true" ::: 1'
same "--delay: every job still runs" "a${nl}b${nl}c" '$X -k --delay 0.1 echo ::: a b c'
mine "--delay 1m30x is refused: 255" "255" '$X --delay 1m30x echo ::: a 2>/dev/null; echo $?'
same "--load, --memfree: jobs start while the machine has room" "a${nl}b" '$X -k --load 1000 --memfree 1k echo ::: a b'
mine "--load 5x: 255" "255" '$X --load 5x echo ::: a 2>/dev/null; echo $?'
mine "--memfree x: 255" "255" '$X --memfree x echo ::: a 2>/dev/null; echo $?'
mine "--progress: the last line on stderr" "local:0/3/100%" \
    '$X --progress -j2 true ::: 1 2 3 2>&1 >/dev/null | tr "\r" "\n" | grep . | tail -1 | cut -d/ -f1-3'
# --pipe with --tee, --round-robin, --cat, --fifo
same "--tee: every job gets all of stdin" "1${nl}10${nl}5" 'seq 10 | $X -k --pipe --tee "grep {}" ::: 1 5'
mine "--tee from a file" "10 a${nl}10 b" 'seq 10 > ten; $X -k --pipe --tee "echo \$(wc -l) {}" ::: a b < ten'
same "--round-robin: one job when it is one block" "1000" 'seq 1000 | $X -j3 --pipe --round-robin wc -l'
same "--round-robin: at most one job per slot, every record once" "3 1000" \
    'seq 1000 | $X -j3 --pipe --block 1k --round-robin wc -l | awk "{s += \$1} END {print NR, s}"'
same "--cat: {} is a file with the block" "5${nl}1 2 3 4 5" 'seq 5 | $X --pipe --cat "wc -l < {}; cat {} | paste -sd\" \" -"'
same "--cat: no {}: the file name is appended" "1${nl}2${nl}3" 'seq 3 | $X --pipe -N1 -k --cat cat'
mine "--cat: in --tmpdir, removed after" "tf/par|0" 'rm -rf tf; mkdir tf; o=$(seq 3 | $X --pipe --cat --tmpdir tf "echo {}" | cut -c1-6); echo "$o|$(ls tf | wc -l | tr -d " ")"'
same "--fifo: {} is a fifo with the block" "1 2 3 4 5" 'seq 5 | $X --pipe --fifo "cat {} | paste -sd\" \" -"'
mine "--fifo: a job that never reads it still ends" "ok" 'seq 5 | $X --pipe --fifo "echo ok; true {}"'
mine "--pipe-part --cat" "100000" '$X --pipe-part -a nums --block 100k --cat "wc -l < {}" | awk "{s += \$1} END {print s}"'
mine "--tee without --pipe: 255" "255" '$X --tee echo ::: a 2>/dev/null; echo $?'
printf 'h1,h2\n1,a\n2,b\n3,c\n' > hp.csv
same "--pipe --header: the first line before every block" "h1,h2 1,a h1,h2 2,b h1,h2 3,c" \
    'cat hp.csv | $X --pipe --header : -N1 -k cat | paste -sd" " -'
same "--pipe --header, stdin a file" "3 2" '$X --pipe --header : -N2 -k "wc -l" < hp.csv | paste -sd" " -'
same "--pipe-part --header" "h1,h2 1,a 2,b h1,h2 3,c" '$X --pipe-part -a hp.csv --header : --block 6 -k cat | paste -sd" " -'
# --pipe from a pipe: stdin is read into a memfd and blocks go to the jobs
# as ranges of it, released as the jobs end; without the memfd (refused
# through the shim), blocks travel in the tasks' arguments
mine "--pipe from a pipe, -N2: every byte, in order" "same" \
    'cat nums | $X --pipe -N2 -k cat | cmp -s - nums && echo same'
mine "--pipe from a pipe: records longer than --block" "3000005 3000005" \
    'cat long2 | $X --pipe --block 1k --recend "</r>\n" -k wc -c | tr -d " " | paste -sd" " -'
# spool_peak PID: the most procpool PID's --pipe buffer held (KiB), sampled until it ends
spool_peak() {
    peak=0
    # (kill -0 would loop on: the shell reaps the job only after this ends)
    while st=$(sed 's/.*) //' /proc/"$1"/stat 2>/dev/null) && [ "${st%% *}" != Z ]; do
        for f in /proc/"$1"/fd/*; do
            case $(readlink "$f" 2>/dev/null) in
            *procpool-pipe*)
                b=$(stat -L -c %b "$f" 2>/dev/null) || b=0
                [ "$((b / 2))" -gt "$peak" ] && peak=$((b / 2)) ;;
            esac
        done
        sleep 0.02
    done
    echo "$peak"
}
yes 0123456789abcdefghijklmnopqrstuvwxyz | head -c 300000000 | $P --pipe --block 1M -j2 wc -c > spool.out &
peak=$(spool_peak $!)
check "--pipe from a pipe: 300 MB in 1 MB blocks, every byte" "300000000" \
    "$(awk '{s += $1} END {print s}' spool.out)"
check "--pipe from a pipe: the buffer holds the blocks in flight, not the stream (KiB: $peak)" "yes" \
    "$([ "$peak" -gt 0 ] && [ "$peak" -le 16384 ] && echo yes)"
seq 1 3000000 > seq3m
mine "--pipe from a pipe: a job holding its block while the rest pass the buffer" "same" \
    'cat seq3m | $X --pipe --block 100k "if [ {#} = 1 ]; then sleep 1; fi; cat" | sort -n | cmp -s - seq3m && echo same'
mine "--pipe from a pipe: the workers share the buffer" "1" \
    'seq 100000 | $X --pipe --block 10k "ls -l /proc/\$PPID/fd/ 2>/dev/null | grep -c procpool-pipe" | sort -u | head -1'
if [ -n "$REFUSE" ]; then
    NOMEMFD="env LD_PRELOAD=$REFUSE ASAN_OPTIONS=verify_asan_link_order=0"
    mine "--pipe without a memfd: every byte, in order" "same" \
        'cat nums | $NOMEMFD $X --pipe --block 10k -k cat | cmp -s - nums && echo same'
    mine "--pipe without a memfd: -N3" "3${nl}3${nl}3${nl}1" 'seq 1 10 | $NOMEMFD $X --pipe -N3 -k wc -l'
    mine "--pipe without a memfd: records longer than --block" "3000005 3000005" \
        'cat long2 | $NOMEMFD $X --pipe --block 1k --recend "</r>\n" -k wc -c | tr -d " " | paste -sd" " -'
    mine "--pipe without a memfd: no buffer made" "0" \
        'seq 100000 | $NOMEMFD $X --pipe --block 10k "ls -l /proc/\$PPID/fd/ 2>/dev/null | grep -c procpool-pipe" | sort -u | head -1'
fi
mine "--pipe --colsep: not supported, 255" "255" 'seq 3 | $X --pipe --colsep , cat 2>/dev/null; echo $?'
# remote execution is refused
mine "-S: not supported, 255, nothing run" "255" '$X -S host touch rem ::: 1 2>/dev/null; echo $?; ls rem 2>/dev/null'
check "--sshlogin says why" "1" "$($P --sshlogin h echo ::: a 2>&1 | grep -c 'remote execution')"
mine "--env: not supported" "255" '$X --env X echo ::: a 2>/dev/null; echo $?'

# ---- --trace FILE: the jobs' timeline (docs/tracing.md) ---------------------
if ! command -v python3 >/dev/null 2>&1; then
    echo "cli_test: notice: python3 is not installed; the --trace checks are skipped"
else
# trace_check.py FILE [cut]: the trace read as JSON (cut: the file lacks
# its "]", which is appended first), its shape checked (metadata, lanes
# 1..N, spans that never overlap in a lane, ts/dur with three decimals);
# prints "lanes=N" and each span as seq:exit:outcome[:signal], in seq order
# (attempts of one job in time order), or what is wrong.
# trace_check.py FILE name EXPECTED: "same" when the one span's name is the
# contents of EXPECTED (less its last newline; bytes that are not UTF-8
# read as U+FFFD).
cat > trace_check.py <<'EOF'
import json, re, sys
raw = open(sys.argv[1], 'rb').read()
mode = sys.argv[2] if len(sys.argv) > 2 else ''
text = raw.decode('utf-8')  # the file must be UTF-8 whatever the commands were
if mode == 'cut':
    if text.rstrip().endswith(']'):
        sys.exit(print('complete, expected cut short') or 0)
    text += ']'
elif not text.endswith('\n]\n'):
    sys.exit(print('no closing ]') or 0)
ev = json.loads(text)
body = text[2:-3] if mode != 'cut' else text[2:-1]
if not text.startswith('[\n') or (body and any(
        '\n' in l or not isinstance(json.loads(l), dict) for l in body.split(',\n'))):
    sys.exit(print('not one event a line') or 0)
meta = {}
for e in ev:
    if e['ph'] == 'M':
        meta[(e['name'], e.get('tid'))] = e['args']
if meta.get(('process_name', None)) != {'name': 'procpool jobs'}:
    sys.exit(print('process_name', meta) or 0)
lanes = sorted(t for (n, t) in meta if n == 'thread_name')
if lanes != list(range(1, len(lanes) + 1)):
    sys.exit(print('lanes', lanes) or 0)
for t in lanes:
    if meta[('thread_name', t)] != {'name': 'slot %d' % t} or \
       meta[('thread_sort_index', t)] != {'sort_index': t}:
        sys.exit(print('lane names', t) or 0)
xs = [e for e in ev if e['ph'] == 'X']
for m in re.finditer(r'"ts":([0-9.]+),"dur":([0-9.]+)', text):
    if not all(re.fullmatch(r'\d+\.\d{3}', g) for g in m.groups()):
        sys.exit(print('ts/dur not in µs with 3 decimals', m.group(0)) or 0)
for e in xs:
    if e['cat'] != 'job' or e['pid'] != 1 or e['tid'] not in lanes or e['ts'] < 0:
        sys.exit(print('bad span', e) or 0)
for t in lanes:
    sp = sorted((e['ts'], e['ts'] + e['dur']) for e in xs if e['tid'] == t)
    for a, b in zip(sp, sp[1:]):
        if b[0] < a[1]:
            sys.exit(print('overlap in lane', t, a, b) or 0)
if mode == 'name':
    want = open(sys.argv[3], 'rb').read().decode('utf-8', 'replace')
    print('same' if len(xs) == 1 and xs[0]['name'] == want[:-1] else
          'differ: %r vs %r' % ([e['name'] for e in xs], want))
    sys.exit(0)
out = []
for e in sorted(xs, key=lambda e: (e['args']['seq'], e['ts'])):
    a = e['args']
    s = '%d:%d:%s' % (a['seq'], a['exit'], a['outcome'])
    if 'signal' in a:
        s += ':' + ('sig' if a['outcome'] == 'timeout' else a['signal'])
    out.append(s)
print('lanes=%d %s' % (len(lanes), ' '.join(out)))
EOF
TC="python3 trace_check.py"
$P -j2 --timeout 2 --trace tr1.json sh -c {} ::: 'exit 0' 'exit 1' 'exit 0' 'exit 3' 'kill -9 $$' \
    'sleep 30' >/dev/null 2>&1
check "--trace: exit, signal, timeout; one span a job, in slots 1..2" \
    "lanes=2 1:0:ok 2:1:failed 3:0:ok 4:3:failed 5:0:killed:SIGKILL 6:-1:timeout:sig" \
    "$($TC tr1.json)"
check "--trace: a span is named by its command line" "sh -c 'kill -9 \$\$'" \
    "$(python3 -c 'import json,sys; print([e["name"] for e in json.load(open("tr1.json")) if e.get("args",{}).get("seq")==5][0])')"
check "--trace --retries 3: a span for each attempt" "lanes=1 1:1:failed 1:1:failed 1:1:failed 2:0:ok" \
    "$($P -j1 --retries 3 --trace tr2.json "sh -c 'exit {}'" ::: 1 0 >/dev/null 2>&1; $TC tr2.json)"
hostile=$(printf 'a"b\\c\nd\te\377f'"'"'g')
$P --dry-run -q printf '%s\n' ::: "$hostile" > tr3.want
check "--trace: quotes, backslash, newline, tab, a byte 0xff: valid JSON, the name kept" "same" \
    "$($P --trace tr3.json -q printf '%s\n' ::: "$hostile" >/dev/null; $TC tr3.json name tr3.want)"
long=$(printf '%2000s' | tr ' ' x)
printf 'echo %.995s...\n' "$long" > tr4.want
check "--trace: a name over 1000 bytes is cut, with ..." "same" \
    "$($P --trace tr4.json echo ::: "$long" >/dev/null; $TC tr4.json name tr4.want)"
check "--trace --pipe: a span a block" "lanes=2 1:0:ok 2:0:ok" \
    "$(seq 10 | $P -j2 --pipe -N5 --trace tr5.json wc -l >/dev/null; $TC tr5.json)"
seq 1000 > tr6.in
check "--trace --pipe-part: a span a part" "yes" \
    "$(n=$($P --pipe-part -a tr6.in --block 1k --trace tr6.json wc -l | wc -l)
       [ "$n" -gt 1 ] && [ "$($TC tr6.json | wc -w)" = $((n + 1)) ] && echo yes)"
check "--trace --halt soon,fail=1: complete" "lanes=1 1:1:failed" \
    "$($P -j1 --halt soon,fail=1 --trace tr7.json "sh -c 'exit {}'" ::: 1 0 >/dev/null 2>&1; $TC tr7.json)"
mine "--trace: nothing to run: a complete trace without spans" "lanes=0 " \
    '$X --trace tr8.json echo ::: ; $TC tr8.json'
mine "--trace: an unwritable file fails first, 255, nothing run" "255 1" \
    '$X --trace nodir/t.json touch ran ::: 1 2>tr9.err; echo $? $(grep -c "trace" tr9.err); ls ran 2>/dev/null'
mine "--dry-run --trace: no trace file" "echo a" '$X --dry-run --trace tr10.json echo ::: a; ls tr10.json 2>/dev/null'
# trace_wait FILE N: until FILE has N spans (at most 10 s)
trace_wait() {
    i=0
    while c=$(grep -c '"cat":"job"' "$1" 2>/dev/null); [ "${c:-0}" -lt "$2" ] &&
        [ $i -lt 500 ]; do
        sleep 0.02; i=$((i + 1))
    done
}
mkdir -p killtmp # a SIGKILLed run leaves its spill directory behind: here, not in $TMPDIR
TMPDIR=$T/killtmp PROCPOOL_CLI_TRACE_BUFFER=0 $P -j2 --trace tr11.json sleep \
    ::: 0.01 0.01 0.01 0.01 3 3 >/dev/null 2>&1 &
pid=$!
trace_wait tr11.json 4
kill -9 $pid
wait $pid 2>/dev/null
check "--trace, SIGKILLed: whole events, the ended jobs in them" "lanes=2 1:0:ok 2:0:ok 3:0:ok 4:0:ok" \
    "$($TC tr11.json cut)"
PROCPOOL_CLI_TRACE_BUFFER=0 $P -j2 --trace tr12.json sleep ::: 0.01 5 >/dev/null 2>&1 &
pid=$!
trace_wait tr12.json 1
kill -TERM $pid
wait $pid
check "--trace, SIGTERM: 255, a complete trace" "255 lanes=2 1:0:ok" "$? $($TC tr12.json)"
fi

echo "cli_test: $((n - fails))/$n passed"
[ "$fails" = 0 ]
