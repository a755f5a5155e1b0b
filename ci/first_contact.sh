#!/usr/bin/env bash
# ci/first_contact.sh - what a stranger meets first, checked the way a
# stranger would meet it. Run by .ci/run as root after `make test` (so
# cmocka, Open MPI and clang are installed and can be hidden again).
#   1. a fresh clone, cmocka, Open MPI and pkg-config hidden
#      (../shared/tools/without-packages): `make demo` builds and runs, the
#      tests are skipped with a notice and the MPI backend is left out;
#   2. every build type x gcc/clang x Open MPI present/absent builds with no
#      warning and no -Werror (ci/matrix.sh);
#   3. every command of README.md runs as written in a fresh clone (ci/readme.sh);
#   4. an install into a scratch prefix: the command, and consumers built
#      with pkg-config (shared, static, static with the MPI backend) and with
#      find_package, run with no LD_LIBRARY_PATH; a local consumer does not
#      need or map libmpi (ldd); an MPI consumer loads the installed backend;
#   5. a FetchContent consumer builds the library only, without -Werror.
# Each check prints "first-contact: ok ..." or stops the run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
src=$PWD
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ok() { echo "first-contact: ok   $*"; }
die() { echo "first-contact: FAIL $*" >&2; exit 1; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
unset LD_LIBRARY_PATH

# the packages a fresh machine of this kind does not have
hidden=()
for p in libcmocka-dev libcmocka0 libopenmpi-dev openmpi-bin libopenmpi3 mpi-default-dev \
         mpi-default-bin pkg-config pkgconf; do
    dpkg -s "$p" >/dev/null 2>&1 && hidden+=("$p")
done
hide=$src/../shared/tools/without-packages
demo=(make demo)
if [ -x "$hide" ] && [ "$(id -u)" = 0 ] && [ ${#hidden[@]} -gt 0 ]; then
    demo=("$hide" "${hidden[@]}" -- make demo)
else
    echo "first-contact: cannot hide packages here (needs root and ../shared/tools/without-packages);"
    echo "first-contact: make demo runs with what is installed"
    hidden=()
fi

echo "== 1. make demo in a fresh clone without ${hidden[*]}"
git clone -q "$src" "$tmp/fresh"
(cd "$tmp/fresh" && "${demo[@]}") > "$tmp/demo.log" 2>&1 \
    || { tail -40 "$tmp/demo.log"; die "make demo in a fresh clone"; }
if [ ${#hidden[@]} -gt 0 ]; then
    grep -q 'tests skipped: cmocka not found' "$tmp/demo.log" || { cat "$tmp/demo.log"; die "no notice that the tests were skipped"; }
    grep -q 'MPI backend OFF' "$tmp/demo.log" || die "the MPI backend was not left out"
fi
grep -qi 'total' "$tmp/demo.log" || { tail -20 "$tmp/demo.log"; die "the lecture example printed nothing"; }
if grep -qi 'warning:' "$tmp/demo.log"; then grep -i -A3 'warning:' "$tmp/demo.log"; die "make demo warned"; fi
ok "make demo: built, lecture ran, tests skipped with a notice, MPI left out"
rm -rf "$tmp/fresh"

echo "== 2. build matrix"
ci/matrix.sh "$tmp/matrix"
ok "build matrix"

echo "== 3. the README's commands, as written, in a fresh clone"
git clone -q "$src" "$tmp/readme"
ci/readme.sh "$tmp/readme" || die "a README command failed"
ok "README commands"
rm -rf "$tmp/readme"

echo "== 4. install into a scratch prefix; nothing on LD_LIBRARY_PATH"
prefix=$tmp/prefix
cmake -S . -B "$tmp/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPROCPOOL_TESTS=OFF \
      -DPROCPOOL_BENCH=OFF -DPROCPOOL_EXAMPLES=OFF > "$tmp/build.log" 2>&1 || { cat "$tmp/build.log"; die configure; }
cmake --build "$tmp/build" -j2 >> "$tmp/build.log" 2>&1 || { tail -30 "$tmp/build.log"; die build; }
cmake --install "$tmp/build" --prefix "$prefix" > /dev/null
"$prefix/bin/procpool" --version | grep -q '^procpool 0\.' || die "the installed command does not start"
[ "$("$prefix/bin/procpool" echo ::: hello)" = hello ] || die "the installed command does not run a job"
ok "installed command runs from $prefix"
MANPATH=$prefix/share/man man -w pp_apply_async >/dev/null || die "man pp_apply_async: no page"
ok "man pages installed"
pcdir=$(dirname "$(find "$prefix" -name procpool.pc -print -quit)")
libdir=$(dirname "$pcdir")
export PKG_CONFIG_PATH=$pcdir
c=ci/consumer/consumer.c
# shellcheck disable=SC2046
cc -o "$tmp/c_shared" "$c" $(pkg-config --cflags --libs procpool)
"$tmp/c_shared" || die "pkg-config consumer (shared)"
ldd "$tmp/c_shared" > "$tmp/ldd"
grep -q "$libdir/libprocpool.so.0" "$tmp/ldd" || { cat "$tmp/ldd"; die "consumer did not find libprocpool.so.0 in $libdir"; }
if grep -q libmpi "$tmp/ldd"; then cat "$tmp/ldd"; die "a local consumer needs libmpi"; fi
ok "pkg-config consumer (shared) runs; ldd: $(grep -c '=>' "$tmp/ldd") libraries, libprocpool from the prefix, no libmpi"
# shellcheck disable=SC2046
cc -o "$tmp/c_static" "$c" $(pkg-config --cflags --libs procpool-static)
if readelf -d "$tmp/c_static" | grep -q 'NEEDED.*libprocpool'; then die "static consumer needs libprocpool.so"; fi
"$tmp/c_static" || die "pkg-config consumer (static)"
ok "pkg-config consumer (static) runs"
if [ -e "$libdir/libprocpool_mpi.so.0" ]; then
    # shellcheck disable=SC2046
    cc -o "$tmp/mpi_shared" tests/mpi/loading_prog.c $(pkg-config --cflags --libs procpool)
    PROCPOOL_BACKEND=mpi timeout 120 mpirun -n 3 "$tmp/mpi_shared" mpi || die "MPI consumer (shared: backend loaded from the prefix)"
    ok "MPI consumer linked with libprocpool.so loads $libdir/libprocpool_mpi.so.0 under mpirun"
    # shellcheck disable=SC2046
    cc -o "$tmp/mpi_static" tests/mpi/loading_prog.c $(pkg-config --cflags --libs procpool-mpi-static)
    if readelf -d "$tmp/mpi_static" | grep -q 'NEEDED.*libprocpool'; then die "static MPI consumer needs libprocpool*.so"; fi
    PROCPOOL_BACKEND=mpi timeout 120 mpirun -n 3 "$tmp/mpi_static" mpi-linked || die "MPI consumer (static)"
    ok "MPI consumer linked statically with the backend runs under mpirun"
fi
cmake -S ci/consumer -B "$tmp/cmake-consumer" -DCMAKE_PREFIX_PATH="$prefix" > /dev/null
cmake --build "$tmp/cmake-consumer" -j2 > /dev/null
"$tmp/cmake-consumer/consumer" && "$tmp/cmake-consumer/consumer_static" || die "find_package consumer"
ok "find_package(procpool 0.2) consumers run"
unset PKG_CONFIG_PATH

echo "== 5. FetchContent consumer"
cmake -S ci/fetchcontent -B "$tmp/fc" -DPROCPOOL_SOURCE="$src" -DCMAKE_BUILD_TYPE=Release > "$tmp/fc.log" 2>&1 \
    || { cat "$tmp/fc.log"; die "FetchContent configure"; }
cmake --build "$tmp/fc" -j2 >> "$tmp/fc.log" 2>&1 || { tail -30 "$tmp/fc.log"; die "FetchContent build"; }
"$tmp/fc/consumer" && "$tmp/fc/consumer_static" || die "FetchContent consumers"
for t in lecture procpool bench_core test_apply demo; do
    [ ! -e "$tmp/fc/_deps/procpool-build/$t" ] || die "FetchContent built $t"
done
if grep -rq -- '-Werror' "$tmp/fc/_deps/procpool-build" --include=flags.make; then die "FetchContent build uses -Werror"; fi
if grep -qi 'warning:' "$tmp/fc.log"; then grep -i -A3 'warning:' "$tmp/fc.log"; die "FetchContent build warned"; fi
ok "FetchContent: library only ($(find "$tmp/fc/_deps/procpool-build" -maxdepth 1 -name 'libprocpool*' | wc -l) library files), no -Werror, consumers run"

echo "first-contact: all passed"
