#!/usr/bin/env bash
# ci/matrix.sh - every standard build as a user would configure it: no
# -Werror, no options, each CMAKE_BUILD_TYPE, gcc and clang, Open MPI
# present (everything built) and absent (the library, the command, one
# example). A cell fails on a build error or on any compiler
# warning in its log. Prints one line per cell and a summary.
#
#   ci/matrix.sh [OUTDIR]      (default: a temporary directory, removed)
#
# "MPI absent" hides the Open MPI development packages with
# ../shared/tools/without-packages when it is there and this runs as root;
# otherwise it configures with -DPROCPOOL_MPI=OFF, which builds the same
# files, and says so.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
src=$PWD
out=${1:-}
if [ -z "$out" ]; then out=$(mktemp -d); trap 'rm -rf "$out"' EXIT; fi
mkdir -p "$out"
hide=../shared/tools/without-packages
mpi_pkgs=()
for p in libopenmpi-dev openmpi-bin mpi-default-dev mpi-default-bin; do
    dpkg -s "$p" >/dev/null 2>&1 && mpi_pkgs+=("$p")
done
compilers=(gcc clang)
command -v clang >/dev/null || { echo "matrix: no clang; gcc only" >&2; compilers=(gcc); }
failed=0 cells=0
for cc in "${compilers[@]}"; do
  for type in Debug Release RelWithDebInfo MinSizeRel; do
    for mpi in present absent; do
      cells=$((cells + 1))
      b="$out/$cc-$type-mpi-$mpi"
      run=(env CC="$cc")
      extra=()
      how=""
      if [ "$mpi" = absent ]; then
        if [ -x "$hide" ] && [ "$(id -u)" = 0 ] && [ ${#mpi_pkgs[@]} -gt 0 ]; then
          run=("$hide" "${mpi_pkgs[@]}" -- env CC="$cc")
          how=" (packages hidden)"
        else
          extra=(-DPROCPOOL_MPI=OFF)
          how=" (-DPROCPOOL_MPI=OFF)"
        fi
      fi
      log="$b.log"
      # Open MPI absent changes which files are built, not how: there the
      # library, the command and an example are enough (the rest is the
      # same code with the same flags as in the cell with Open MPI).
      targets=()
      [ "$mpi" = absent ] && targets=(--target procpool procpool_static procpool_cli lecture)
      if "${run[@]}" cmake -S "$src" -B "$b" -DCMAKE_BUILD_TYPE="$type" "${extra[@]}" > "$log" 2>&1 &&
         "${run[@]}" cmake --build "$b" -j2 "${targets[@]}" >> "$log" 2>&1; then
        if grep -qiE 'warning[: ]' "$log"; then
          echo "matrix: FAIL $cc $type MPI $mpi$how: warnings"; grep -iE -A4 'warning[: ]' "$log" | head -40
          failed=$((failed + 1))
        else
          mpi_built=no; [ -e "$b/libprocpool_mpi.so.0" ] && mpi_built=yes
          echo "matrix: ok   $cc $type MPI $mpi$how (backend built: $mpi_built)"
          if [ "$mpi" = present ] && [ ${#mpi_pkgs[@]} -gt 0 ] && [ $mpi_built = no ]; then
            echo "matrix: FAIL the MPI backend was not built with Open MPI present"; failed=$((failed + 1))
          fi
          if [ "$mpi" = absent ] && [ $mpi_built = yes ]; then
            echo "matrix: FAIL the MPI backend was built with Open MPI absent"; failed=$((failed + 1))
          fi
        fi
      else
        echo "matrix: FAIL $cc $type MPI $mpi$how: build failed"; tail -30 "$log"
        failed=$((failed + 1))
      fi
      rm -rf "$b"
    done
  done
done
echo "matrix: $((cells - failed)) passed, $failed failed"
[ "$failed" = 0 ]
