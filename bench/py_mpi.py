#!/usr/bin/env python3
"""mpi4py anchor for bench_mpi: MPIPoolExecutor.map of a trivial function.

Run under mpirun, rank 0 being the client and the other ranks the workers:
    mpirun -n 3 python3 -m mpi4py.futures py_mpi.py [chunk1_items] [big_items] [big_chunk] [runs]
    (defaults 4000, 2000000, 10000 and 3)

Prints machine-readable lines, one figure each, "key value":
    py_version 3.11.2
    mpi4py_version 3.1.4
    py_mpi_workers 2
    py_mpi_chunk1_items N
    py_mpi_chunk1_ips X      executor.map(f, range(N), chunksize=1): items per
                             second (median of runs)
    py_mpi_big_items M
    py_mpi_big_chunk C
    py_mpi_big_ips Y         executor.map(f, range(M), chunksize=C): items/s
Any other line is a human-readable note (each run's figure).
"""
import platform
import statistics
import sys
import time

import mpi4py
from mpi4py import MPI
from mpi4py.futures import MPIPoolExecutor


def f(x):
    return x + 1


def rate(ex, n, chunksize):
    t0 = time.perf_counter()
    out = list(ex.map(f, range(n), chunksize=chunksize))
    dt = time.perf_counter() - t0
    if len(out) != n or out[0] != 1 or out[-1] != n:
        raise SystemExit("py_mpi.py: wrong results")
    return n / dt


def figure(ex, n, chunksize, runs, label):
    r = []
    for k in range(runs):
        r.append(rate(ex, n, chunksize))
        print(f"  {label} run {k + 1}: {r[-1]:12.0f} items/s", flush=True)
    return statistics.median(r)


def main():
    n_chunk1 = int(sys.argv[1]) if len(sys.argv) > 1 else 4000
    n_big = int(sys.argv[2]) if len(sys.argv) > 2 else 2000000
    big_chunk = int(sys.argv[3]) if len(sys.argv) > 3 else 10000
    runs = int(sys.argv[4]) if len(sys.argv) > 4 else 3
    print(f"py_version {platform.python_version()}")
    print(f"mpi4py_version {mpi4py.__version__}", flush=True)

    with MPIPoolExecutor() as ex:
        # warm up: every worker has started and run a task
        list(ex.map(f, range(1000), chunksize=1))
        workers = getattr(ex, "num_workers", MPI.COMM_WORLD.Get_size() - 1)
        print(f"py_mpi_workers {workers}", flush=True)
        ips = figure(ex, n_chunk1, 1, runs, "chunksize=1")
        print(f"py_mpi_chunk1_items {n_chunk1}")
        print(f"py_mpi_chunk1_ips {ips:.1f}", flush=True)
        ips = figure(ex, n_big, big_chunk, runs, f"chunksize={big_chunk}")
        print(f"py_mpi_big_items {n_big}")
        print(f"py_mpi_big_chunk {big_chunk}")
        print(f"py_mpi_big_ips {ips:.1f}", flush=True)


if __name__ == "__main__":
    main()
