#!/usr/bin/env bash
# ci/readme.sh CLONE - runs every command of CLONE/README.md as written: its
# ```sh blocks, in order, as one bash script (set -euxo pipefail) started in
# CLONE, after saving its first ```c block as CLONE/example.c (the README
# says it is saved so). ```cmake and ```text blocks are not commands.
#
# The script runs with HOME set to a scratch directory (so "$HOME/.local"
# is a scratch prefix) and, as root, with the variables that let mpirun run
# as root and oversubscribe a small machine. Debian packages the README
# installs are removed again on every exit. Exit status: the script's.
set -uo pipefail
clone=$(cd "${1:?usage: ci/readme.sh CLONE}" && pwd)
tmp=$(mktemp -d)
cleanup() {
    for p in procpool libprocpool-mpi-dev libprocpool-mpi0 libprocpool-dev libprocpool0; do
        if dpkg -s "$p" >/dev/null 2>&1; then dpkg -r "$p" >/dev/null 2>&1 || true; fi
    done
    rm -rf "$tmp"
}
trap cleanup EXIT

awk -v c="$clone/example.c" -v s="$tmp/readme_commands.sh" '
    /^```/ { if (inb) { if (lang == "c") cdone = 1; inb = 0; next }
             lang = substr($0, 4); inb = 1
             tofile = (lang == "sh") ? s : (lang == "c" && !cdone) ? c : ""
             if (lang == "sh") print "# ---- README block at line " NR > s
             next }
    inb && tofile != "" { print > tofile }
' "$clone/README.md"
[ -s "$clone/example.c" ] || { echo "readme: no \`\`\`c block in README.md" >&2; exit 1; }
[ -s "$tmp/readme_commands.sh" ] || { echo "readme: no \`\`\`sh block in README.md" >&2; exit 1; }
n=$(grep -c '^# ---- README block' "$tmp/readme_commands.sh")
echo "readme: $n sh blocks, $(grep -vc '^#' "$tmp/readme_commands.sh") lines; example.c saved"

mkdir -p "$tmp/home"
export HOME="$tmp/home"
if [ "$(id -u)" = 0 ]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
export OMPI_MCA_rmaps_base_oversubscribe=1
cd "$clone" || exit 1
bash -euxo pipefail "$tmp/readme_commands.sh"
rc=$?
echo "readme: the README's commands exited $rc"
exit $rc
