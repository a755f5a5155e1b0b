#!/bin/sh
# man_check.sh - check that the man pages document the whole public C API.
#
# usage: man_check.sh MANDIR HEADER [LIBRARY.so]
#
#   MANDIR      the man tree, holding man3/ (e.g. man/)
#   HEADER      the public header (e.g. include/procpool.h)
#   LIBRARY.so  optional: the shared library, whose exported pp_* functions
#               must be documented too
#
# Checks, one output line per problem, exit status 1 if there is any:
#   (a) every function the header declares with PP_EXTERN has
#       MANDIR/man3/<name>.3 (a page or a .so stub);
#   (b) every pp_* function LIBRARY.so exports (nm -D, type T) has one too;
#   (c) every .so stub is that one line and points at an existing real page
#       (a path relative to MANDIR, as man(1) resolves it);
#   (d) every real page renders without a warning under
#       groff -man -ww -z -Tutf8 (skipped, with a notice, without groff);
#   (e) the NAME section of a page names every function whose stub points
#       to it, and every function that has the page under its own name;
#   (f) the SYNOPSIS of the page a function leads to shows "<name>(".
# Exit status: 0 all documented, 1 problems found, 2 bad usage.
set -eu

me=man_check

usage() {
    echo "usage: $0 MANDIR HEADER [LIBRARY.so]" >&2
    exit 2
}

if [ $# -lt 2 ] || [ $# -gt 3 ]; then
    usage
fi
mandir=$1
header=$2
lib=${3-}
man3=$mandir/man3

if [ ! -d "$man3" ]; then
    echo "$me: $man3: no such directory" >&2
    exit 2
fi
if [ ! -f "$header" ] || [ ! -r "$header" ]; then
    echo "$me: $header: cannot read the header" >&2
    exit 2
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/man_check.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT TERM

nproblems=0
problem() {
    printf '%s: %s\n' "$me" "$*"
    nproblems=$((nproblems + 1))
}

# ---------------------------------------------------------------------------
# (a) the functions the header declares with PP_EXTERN.
# A small C scanner: drops comments, string and character literals and
# preprocessor lines (with their continuations), splits the rest into
# declarations at ';', '{' and '}', and from each declaration that has the
# word PP_EXTERN takes the first name pp_[a-z0-9_]+ followed by '(' (the
# declared function: parameters come after it). Prototypes may span lines.
# ---------------------------------------------------------------------------
awk '
function emit(s,    m) {
    if (s !~ /(^|[^A-Za-z0-9_])PP_EXTERN([^A-Za-z0-9_]|$)/)
        return
    if (match(s, /(^|[^A-Za-z0-9_])pp_[a-z0-9_]+[ \t]*\(/)) {
        m = substr(s, RSTART, RLENGTH)
        sub(/^[^p]/, "", m)
        sub(/[ \t]*\($/, "", m)
        print m
    }
}
{ sub(/\r$/, ""); buf = buf $0 "\n" }
END {
    n = length(buf); i = 1; st = "code"; bol = 1; stmt = ""
    while (i <= n) {
        c = substr(buf, i, 1); c2 = substr(buf, i, 2)
        if (st == "code") {
            if (c2 == "/*") { st = "block"; ret = "code"; stmt = stmt " "; i += 2; continue }
            if (c2 == "//") { st = "line"; i += 2; continue }
            if (c == "\"" || c == "\047") { st = "lit"; q = c; bol = 0; stmt = stmt " "; i++; continue }
            if (c == "#" && bol) { st = "pp"; i++; continue }
            if (c == "\n") { bol = 1; stmt = stmt " "; i++; continue }
            if (c == ";" || c == "{" || c == "}") { emit(stmt); stmt = ""; bol = 0; i++; continue }
            if (c != " " && c != "\t" && c != "\f" && c != "\v") bol = 0
            stmt = stmt c; i++; continue
        }
        if (st == "block") {
            if (c2 == "*/") { st = ret; i += 2 } else i++
            continue
        }
        if (st == "line") {
            if (c == "\n") { st = "code"; bol = 1; stmt = stmt " " }
            i++; continue
        }
        if (st == "lit") {
            if (c == "\\") { i += 2; continue }
            if (c == q || c == "\n") st = "code"
            i++; continue
        }
        if (st == "pp") {
            if (c2 == "\\\n") { i += 2; continue }
            if (c2 == "/*") { st = "block"; ret = "pp"; i += 2; continue }
            if (c == "\n") { st = "code"; bol = 1 }
            i++; continue
        }
    }
    emit(stmt)
}' "$header" | sort -u >"$tmp/header"

if [ ! -s "$tmp/header" ]; then
    problem "$header: no PP_EXTERN function declarations found"
fi

# ---------------------------------------------------------------------------
# (b) the pp_* functions the library exports.
# ---------------------------------------------------------------------------
: >"$tmp/lib"
if [ -n "$lib" ]; then
    if [ ! -f "$lib" ] || [ ! -r "$lib" ]; then
        problem "$lib: cannot read the library"
    elif ! command -v nm >/dev/null 2>&1; then
        echo "$me: nm not installed: exported symbols of $lib not checked"
    elif ! nm -D --defined-only "$lib" >"$tmp/nm" 2>"$tmp/nm.err"; then
        problem "$lib: nm -D failed: $(head -n 1 "$tmp/nm.err")"
    else
        awk '$2 == "T" { s = $3; sub(/@.*/, "", s); if (s ~ /^pp_/) print s }' \
            "$tmp/nm" | sort -u >"$tmp/lib"
        if [ ! -s "$tmp/lib" ]; then
            problem "$lib: exports no pp_* function"
        fi
    fi
fi

sort -u "$tmp/header" "$tmp/lib" >"$tmp/functions"

while IFS= read -r fn; do
    [ -f "$man3/$fn.3" ] && continue
    if grep -qx "$fn" "$tmp/header"; then
        from="declared in $header"
    else
        from="exported by $lib"
    fi
    problem "$fn ($from): no page $man3/$fn.3"
done <"$tmp/functions"

# ---------------------------------------------------------------------------
# Sort the files of man3 into real pages and .so stubs. A stub is a file
# whose first line that is neither blank nor a roff comment is ".so PATH".
# ---------------------------------------------------------------------------
: >"$tmp/pages"
: >"$tmp/stubs"     # lines: NAME TARGET-PATH
for f in "$man3"/*.3; do
    [ -e "$f" ] || continue
    base=${f##*/}
    base=${base%.3}
    grep -v -e '^[.'\'']\\"' -e '^[[:space:]]*$' "$f" >"$tmp/body" || true
    first=$(sed -n 1p "$tmp/body")
    if printf '%s\n' "$first" | grep -Eq '^\.so([[:space:]]|$)'; then
        target=$(printf '%s\n' "$first" | sed 's/^\.so[[:space:]]*//; s/[[:space:]]*$//')
        printf '%s %s\n' "$base" "$target" >>"$tmp/stubs"
        if [ "$(wc -l <"$tmp/body")" -gt 1 ]; then
            problem "$f: a .so stub must hold only its .so line"
        fi
    else
        printf '%s\n' "$f" >>"$tmp/pages"
    fi
done

# The file a path in a .so request names: relative to MANDIR, like man(1).
so_path() {
    case $1 in
    /*) printf '%s\n' "$1" ;;
    *) printf '%s\n' "$mandir/$1" ;;
    esac
}

is_stub_file() {
    sed -e '/^[.'\'']\\"/d' -e '/^[[:space:]]*$/d' "$1" | sed -n 1p | grep -Eq '^\.so([[:space:]]|$)'
}

# The words of a page's section $2 (NAME, SYNOPSIS), font escapes removed.
section_text() {
    awk -v want="$2" '
        /^\.SH[ \t]/ {
            t = $0; sub(/^\.SH[ \t]+/, "", t); gsub(/"/, "", t); sub(/[ \t]+$/, "", t)
            on = (t == want); next
        }
        on { print }
    ' "$1" | sed -e 's/\\f\[[^]]*]//g' -e 's/\\f([A-Za-z0-9][A-Za-z0-9]//g' -e 's/\\f[A-Za-z0-9]//g'
}

# ---------------------------------------------------------------------------
# (c) every stub points at an existing real page, and
# (e) that page's NAME section mentions the stub's function.
# ---------------------------------------------------------------------------
nstubs=0
while read -r name target; do
    nstubs=$((nstubs + 1))
    file=$man3/$name.3
    dest=$(so_path "$target")
    if [ -z "$target" ]; then
        problem "$file: .so without a path"
        continue
    fi
    if [ ! -f "$dest" ]; then
        problem "$file: .so $target: no such page ($dest)"
        continue
    fi
    if is_stub_file "$dest"; then
        problem "$file: .so $target: that is a stub too, not a page"
        continue
    fi
    if ! section_text "$dest" NAME | tr -c 'A-Za-z0-9_' '\n' | grep -qx "$name"; then
        problem "$dest: NAME section does not mention $name (whose stub points here)"
    fi
done <"$tmp/stubs"

# (e) a function documented by a real page of its own name is in its NAME.
while IFS= read -r fn; do
    f=$man3/$fn.3
    [ -f "$f" ] || continue
    is_stub_file "$f" && continue
    if ! section_text "$f" NAME | tr -c 'A-Za-z0-9_' '\n' | grep -qx "$fn"; then
        problem "$f: NAME section does not mention $fn"
    fi
done <"$tmp/functions"

# (f) the page a function leads to shows its prototype in the SYNOPSIS.
while IFS= read -r fn; do
    f=$man3/$fn.3
    [ -f "$f" ] || continue
    if is_stub_file "$f"; then
        t=$(awk -v n="$fn" '$1 == n { print $2; exit }' "$tmp/stubs")
        f=$(so_path "$t")
        [ -f "$f" ] || continue
        is_stub_file "$f" && continue
    fi
    if ! section_text "$f" SYNOPSIS | grep -q "$fn("; then
        problem "$f: SYNOPSIS does not show $fn()"
    fi
done <"$tmp/functions"

# ---------------------------------------------------------------------------
# (d) every real page renders without warnings.
# ---------------------------------------------------------------------------
npages=$(wc -l <"$tmp/pages" | tr -d ' ')
if [ "$npages" -eq 0 ]; then
    problem "$man3: no man pages at all"
fi
if command -v groff >/dev/null 2>&1; then
    while IFS= read -r f; do
        if ! groff -man -ww -z -Tutf8 "$f" >/dev/null 2>"$tmp/groff.err"; then
            [ -s "$tmp/groff.err" ] || echo "groff failed" >"$tmp/groff.err"
        fi
        while IFS= read -r line; do
            problem "$f: $line"
        done <"$tmp/groff.err"
    done <"$tmp/pages"
else
    echo "$me: groff not installed: pages not rendered (check (d) skipped)"
fi

nfunctions=$(wc -l <"$tmp/functions" | tr -d ' ')
if [ "$nproblems" -gt 0 ]; then
    echo "$me: $nproblems problem(s) ($nfunctions functions, $npages pages, $nstubs stubs)"
    exit 1
fi
echo "$me: $nfunctions functions, $npages pages, $nstubs stubs, all documented"
