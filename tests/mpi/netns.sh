#!/bin/sh
# tests/mpi/netns.sh PROG [ARGS...] - run PROG as a 3-rank Open MPI job on
# three "hosts" made of network namespaces on this machine.
#
#   hub namespace:  bridge br0
#   host 1 .. 3:    one namespace each, eth0 = 10.213.0.{1,2,3}/24,
#                   a veth pair whose other end is a port of br0
#
# mpirun runs inside host 1 with a hostfile naming the three addresses, one
# slot each, so rank 0 (main) is on host 1 and ranks 1, 2 (the agents) are
# on hosts 2 and 3. Remote daemons are started through an ssh stand-in that
# maps an address to its namespace and runs the command there with a clean
# environment, as ssh would (so PROCPOOL_BACKEND must really be forwarded
# with mpirun -x). Every host gets its own TMPDIR (Open MPI's session
# directories) as separate machines would.
#
# Exit status: PROG's (0 pass, 1 fail), 124 on timeout, 77 when the test
# cannot run here (not root, no iproute2, no mpirun, namespaces refused).
# The namespaces are removed on every exit.
#
# Environment: NETNS_TIMEOUT (seconds, default 60); NETNS_KEEP_LOG=1 keeps
# the temporary directory. PROCPOOL_CPUS and ASAN/UBSAN/LSAN_OPTIONS, when
# set, are passed on to the agents; LSAN_OPTIONS defaults to suppressing
# leaks inside Open MPI's libraries (see below).

# shellcheck disable=SC2016,SC2086,SC2317  # literal agent text, word lists, trap function
set -u

skip() { echo "netns.sh: SKIP: $*" >&2; exit 77; }
die()  { echo "netns.sh: FAIL: $*" >&2; exit 1; }

[ $# -ge 1 ] || { echo "usage: $0 PROG [ARGS...]" >&2; exit 2; }
prog=$1; shift
case $prog in /*) ;; *) prog=$(pwd)/$prog ;; esac
[ -x "$prog" ] || die "$prog is not an executable file"

[ "$(id -u)" = 0 ] || skip "needs root (network namespaces)"
command -v ip >/dev/null 2>&1 \
    || skip "'ip' not found: install iproute2 (apt-get install -y iproute2)"
command -v mpirun >/dev/null 2>&1 \
    || skip "'mpirun' not found: install openmpi-bin"
command -v timeout >/dev/null 2>&1 || skip "'timeout' not found (coreutils)"

limit=${NETNS_TIMEOUT:-60}
tag=pp$$                      # unique per run: parallel runs do not clash
hub=${tag}hub
hosts="${tag}h1 ${tag}h2 ${tag}h3"
net=10.213.0
tmp=$(mktemp -d "${TMPDIR:-/tmp}/procpool-netns.XXXXXX") || die "mktemp failed"
made=""

cleanup() {
    trap - EXIT INT TERM HUP
    # Kill what is still running in our namespaces (only processes this run
    # started can be there), then remove them; the veths and the bridge go
    # with them.
    for ns in $made; do
        pids=$(ip netns pids "$ns" 2>/dev/null)
        [ -n "$pids" ] && kill -9 $pids 2>/dev/null
    done
    for ns in $made; do ip netns del "$ns" 2>/dev/null; done
    if [ "${NETNS_KEEP_LOG:-0}" = 1 ]; then
        echo "netns.sh: kept $tmp" >&2
    else
        rm -rf "$tmp"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# --- the network ---------------------------------------------------------
if ! ip netns add "$hub" 2>"$tmp/err"; then
    skip "cannot create a network namespace (no CAP_SYS_ADMIN?): $(cat "$tmp/err")"
fi
made=$hub
ip -n "$hub" link add br0 type bridge forward_delay 0 2>"$tmp/err" \
    || skip "cannot create a bridge in a namespace: $(cat "$tmp/err")"
ip -n "$hub" link set br0 up || die "bridge up"
ip -n "$hub" link set lo up || die "hub lo up"

i=0
: >"$tmp/hostfile"
for ns in $hosts; do
    i=$((i + 1))
    ip netns add "$ns" || die "ip netns add $ns"
    made="$made $ns"
    ip -n "$hub" link add "v$i" type veth peer name eth0 netns "$ns" \
        || die "veth for $ns"
    ip -n "$hub" link set "v$i" master br0 up || die "v$i into br0"
    ip -n "$ns" addr add "$net.$i/24" dev eth0 || die "address $net.$i"
    ip -n "$ns" link set eth0 up || die "eth0 up in $ns"
    ip -n "$ns" link set lo up || die "lo up in $ns"
    mkdir -p "$tmp/$ns" || die "mkdir"
    echo "$net.$i slots=1" >>"$tmp/hostfile"
done

# Entering a namespace also needs a private mount of /sys, which some
# containers refuse even where creating one works.
ip netns exec "$hub" true 2>"$tmp/err" \
    || skip "cannot enter a network namespace: $(cat "$tmp/err")"

# Check that host 1 reaches the others through the bridge (when ping exists;
# with STP off and forward_delay 0 the ports forward at once).
h1=${tag}h1
if command -v ping >/dev/null 2>&1; then
    for i in 2 3; do
        ok=0
        for _ in 1 2 3 4 5 6 7 8 9 10; do
            if ip netns exec "$h1" ping -c1 -W1 "$net.$i" >/dev/null 2>&1; then ok=1; break; fi
            sleep 0.2
        done
        [ $ok = 1 ] || die "host 1 cannot reach $net.$i through the bridge"
    done
fi

# --- the ssh stand-in ----------------------------------------------------
# Open MPI calls it as: AGENT [options] HOST COMMAND WORDS...; like ssh, the
# words are joined with spaces and run by a shell on the "remote" host (the
# words are already quoted for that shell by Open MPI).
agent=$tmp/rsh-agent
{
    echo '#!/bin/sh'
    echo 'while [ $# -gt 0 ]; do case $1 in -*) shift ;; *) break ;; esac; done'
    echo '[ $# -ge 2 ] || { echo "rsh-agent: usage: HOST COMMAND..." >&2; exit 255; }'
    echo 'host=$1; shift'
    echo 'case $host in'
    i=0
    for ns in $hosts; do
        i=$((i + 1))
        echo "    $net.$i) ns=$ns ;;"
    done
    echo '    *) echo "rsh-agent: unknown host $host" >&2; exit 255 ;;'
    echo 'esac'
    echo "exec env -i PATH=\"\$PATH\" HOME=\"\${HOME:-/root}\" TMPDIR=\"$tmp/\$ns\" \\"
    echo '    ip netns exec "$ns" sh -c "$*"'
} >"$agent"
chmod +x "$agent" || die "chmod"

# --- the job -------------------------------------------------------------
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1
export OMPI_MCA_plm_rsh_agent="$agent"
export OMPI_MCA_plm_rsh_no_tree_spawn=1
export OMPI_MCA_pml=ob1
export OMPI_MCA_btl=self,tcp
export OMPI_MCA_btl_tcp_if_include=$net.0/24
export OMPI_MCA_oob_tcp_if_include=$net.0/24
export OMPI_MCA_mpi_yield_when_idle=1
export OMPI_MCA_hwloc_base_binding_policy=none   # = --bind-to none: agents see all CPUs
export PROCPOOL_BACKEND=mpi
# Under LeakSanitizer (an ASan build), Open MPI's own allocations that it
# never frees (PMIx, hwloc, op components) would fail every rank at exit.
# Suppress leaks whose stack passes through Open MPI's libraries only, with
# full stacks (those libraries have no frame pointers); a leak in procpool
# is still reported. Harmless for a binary without sanitizers. A caller's
# own LSAN_OPTIONS wins.
if [ -z "${LSAN_OPTIONS:-}" ]; then
    printf 'leak:%s\n' libmpi.so libopen-pal.so libopen-rte.so libpmix.so \
        libhwloc.so libevent mca_ >"$tmp/lsan.supp"
    export LSAN_OPTIONS="suppressions=$tmp/lsan.supp:fast_unwind_on_malloc=0:print_suppressions=0"
fi

# The stand-in gives the remote daemons a clean environment, as ssh would:
# what the agents need must be forwarded explicitly.
fwd="-x PROCPOOL_BACKEND"
for v in PROCPOOL_CPUS ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS; do
    eval "val=\${$v:-}"
    [ -n "$val" ] && fwd="$fwd -x $v"
done

echo "netns.sh: hosts $net.1-3 in namespaces $hosts; mpirun -n 3 $prog $*" >&2
TMPDIR=$tmp/$h1 timeout -k 5 "$limit" \
    ip netns exec "$h1" mpirun -n 3 --hostfile "$tmp/hostfile" $fwd "$prog" "$@"
rc=$?
case $rc in
    0) echo "netns.sh: PASS" >&2 ;;
    124|137) echo "netns.sh: FAIL: timed out after ${limit}s" >&2 ;;
    *) echo "netns.sh: FAIL: mpirun exited with status $rc" >&2 ;;
esac
exit $rc
