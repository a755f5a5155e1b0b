#!/usr/bin/env python3
"""Python anchor for bench_core: multiprocessing.Pool(2) on no-op tasks.

Usage: py_pool.py [apply_calls] [async_tasks]     (defaults 2000 and 100000)

Prints machine-readable lines, one figure each, "key value":
    py_version 3.11.7
    py_apply_calls N
    py_apply_rtt_us X        median round trip of Pool.apply(noop), microseconds
    py_async_tasks N
    py_async_tps Y           apply_async(noop) x N, then .get() on each: tasks per second
"""
import multiprocessing as mp
import platform
import statistics
import sys
import time


def noop():
    return None


def main():
    n_apply = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    n_async = int(sys.argv[2]) if len(sys.argv) > 2 else 100000
    print(f"py_version {platform.python_version()}", flush=True)

    ctx = mp.get_context("fork")  # the start method procpool's default matches
    with ctx.Pool(2) as pool:
        for _ in range(50):  # warm up: both workers started and hot
            pool.apply(noop)

        rtt = []
        for _ in range(n_apply):
            t0 = time.perf_counter()
            pool.apply(noop)
            rtt.append(time.perf_counter() - t0)
        print(f"py_apply_calls {n_apply}")
        print(f"py_apply_rtt_us {statistics.median(rtt) * 1e6:.3f}", flush=True)

        t0 = time.perf_counter()
        results = [pool.apply_async(noop) for _ in range(n_async)]
        for r in results:
            r.get()
        dt = time.perf_counter() - t0
        print(f"py_async_tasks {n_async}")
        print(f"py_async_tps {n_async / dt:.1f}", flush=True)


if __name__ == "__main__":
    main()
