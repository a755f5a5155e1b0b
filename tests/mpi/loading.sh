#!/bin/sh
# tests/mpi/loading.sh MPIEXEC PROG BACKEND_SO - how the MPI backend
# (libprocpool_mpi.so.0) is found, and what happens when it is not.
# PROG is tests/mpi/loading_prog.c linked with libprocpool.so only.
#   1. ldd PROG names no libmpi and no libprocpool_mpi;
#   2. run alone, PROG's local pool works and libmpi is never mapped;
#   3. under PROCPOOL_BACKEND=mpi mpirun -n 3, libprocpool.so finds the
#      backend beside itself and the tasks run on the agents;
#   4. with the backend missing (PROCPOOL_MPI_LIBRARY names no file) or not
#      a procpool backend (names libprocpool.so itself), every rank exits 1
#      before main() with a message that says so.
set -u
mpiexec=$1 prog=$2 backend=$3
fail() { echo "loading.sh: FAIL: $*" >&2; exit 1; }
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT

ldd "$prog" > "$tmp/ldd" || fail "ldd $prog"
if grep -E 'libmpi|libprocpool_mpi' "$tmp/ldd"; then fail "ldd: $prog needs MPI"; fi
echo "loading.sh: ldd $prog: no libmpi, no libprocpool_mpi"

env -u PROCPOOL_BACKEND timeout 60 "$prog" local || fail "local run"

PROCPOOL_BACKEND=mpi timeout 120 "$mpiexec" -n 3 "$prog" mpi > "$tmp/out" 2>&1 \
    || { cat "$tmp/out"; fail "mpirun -n 3: backend beside libprocpool.so"; }
grep -q 'loading_prog mpi: ok' "$tmp/out" || { cat "$tmp/out"; fail "no result from rank 0"; }
echo "loading.sh: mpirun -n 3: backend loaded beside libprocpool.so ($backend)"

for bad in "$tmp/nonexistent/libprocpool_mpi.so.0" "$(dirname "$prog")/libprocpool.so.0"; do
    rc=0
    PROCPOOL_BACKEND=mpi PROCPOOL_MPI_LIBRARY="$bad" timeout 120 "$mpiexec" -n 3 "$prog" mpi \
        > "$tmp/out" 2>&1 || rc=$?
    [ "$rc" -ne 0 ] || { cat "$tmp/out"; fail "PROCPOOL_MPI_LIBRARY=$bad: exit 0"; }
    [ "$rc" -ne 124 ] || { cat "$tmp/out"; fail "PROCPOOL_MPI_LIBRARY=$bad: hung"; }
    grep -q 'the MPI backend cannot be used' "$tmp/out" \
        || { cat "$tmp/out"; fail "PROCPOOL_MPI_LIBRARY=$bad: no message"; }
    if grep -q 'main ran' "$tmp/out"; then cat "$tmp/out"; fail "main() ran without a backend"; fi
    if grep -qi 'segmentation\|core dumped\|signal' "$tmp/out"; then
        cat "$tmp/out"; fail "PROCPOOL_MPI_LIBRARY=$bad: crashed"
    fi
    echo "loading.sh: PROCPOOL_MPI_LIBRARY=$bad: exit $rc, message:"
    grep 'procpool:' "$tmp/out" | head -1
done
echo "loading.sh: all passed"
