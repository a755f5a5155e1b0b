#!/usr/bin/env python3
"""Python anchor for bench_map: multiprocessing.Pool(2).map on a trivial function.

Usage: py_map.py [default_items] [chunk1_items] [runs]
       (defaults 1000000, 20000 and 3)

Prints machine-readable lines, one figure each, "key value":
    py_version 3.11.7
    py_map_default_items N
    py_map_default_ips X     Pool.map(f, range(N)) with Python's default chunksize:
                             items per second (median of runs)
    py_map_chunk1_items M
    py_map_chunk1_ips Y      Pool.map(f, range(M), chunksize=1): items per second
"""
import multiprocessing as mp
import platform
import statistics
import sys
import time


def f(x):
    return x * 3 + 1


def rate(pool, n, chunksize=None):
    data = range(n)
    t0 = time.perf_counter()
    if chunksize is None:
        out = pool.map(f, data)
    else:
        out = pool.map(f, data, chunksize=chunksize)
    dt = time.perf_counter() - t0
    if len(out) != n or out[-1] != f(n - 1):
        raise SystemExit("py_map.py: wrong results")
    return n / dt


def main():
    n_default = int(sys.argv[1]) if len(sys.argv) > 1 else 1000000
    n_chunk1 = int(sys.argv[2]) if len(sys.argv) > 2 else 20000
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    print(f"py_version {platform.python_version()}", flush=True)

    ctx = mp.get_context("fork")  # procpool's default start method
    with ctx.Pool(2) as pool:
        pool.map(f, range(1000))  # warm up: both workers started
        r = [rate(pool, n_default) for _ in range(runs)]
        print(f"py_map_default_items {n_default}")
        print(f"py_map_default_ips {statistics.median(r):.1f}", flush=True)
        r = [rate(pool, n_chunk1, 1) for _ in range(max(1, runs // 2))]
        print(f"py_map_chunk1_items {n_chunk1}")
        print(f"py_map_chunk1_ips {statistics.median(r):.1f}", flush=True)


if __name__ == "__main__":
    main()
