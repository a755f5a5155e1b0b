#!/usr/bin/env python3
"""Python anchor for bench_hol: multiprocessing.Pool(2) on the same tasks.

Every task busy-waits on the clock for its duration (CPU in use, the same
wall time as the C tasks).

Usage:
  py_hol.py hol LONG_MS SHORT_MS N RUNS CHUNK
      head-of-line: one LONG_MS task, then N tasks of SHORT_MS, all
      apply_async; the time from the first submission until every short task
      is done (callbacks stamp them). Then imap_unordered(chunksize=CHUNK)
      over the long item and the N short ones: the time until every item
      outside the long item's chunk is in. Each RUNS times, on a fresh pool,
      terminated once the figure is taken; medians.
  py_hol.py lat N INTERVAL_S SEED SHORT_US LONG_US LONG_PCT
      latency: N tasks (LONG_PCT% of LONG_US, the rest SHORT_US, drawn by
      the same generator as bench_hol.c) submitted one every INTERVAL_S;
      latency from submission to the apply_async callback.

Prints machine-readable lines, "key value":
    py_version 3.11.7
    py_hol_s X            median seconds until the short tasks are done
    py_imap_s X           median seconds until the other chunks' items are in
    py_lat_p50_s X        (and p99, p999; py_lat_short_*: the SHORT_US tasks)
"""
import math
import multiprocessing as mp
import platform
import statistics
import sys
import threading
import time


def spin(us):
    end = time.perf_counter() + us * 1e-6
    while time.perf_counter() < end:
        pass
    return None


def warm(pool, us):
    for r in [pool.apply_async(spin, (us,)) for _ in range(20)]:
        r.get()


class Stamps:
    """When each of n tasks was done: stamp(i) is task i's callback, which
    notes the time; wait() returns once all n have called back."""

    def __init__(self, n):
        self.done = [0.0] * n
        self.left = n
        self.cv = threading.Condition()

    def stamp(self, i):
        def cb(_):
            self.done[i] = time.perf_counter()
            with self.cv:
                self.left -= 1
                if self.left == 0:
                    self.cv.notify()
        return cb

    def wait(self):
        with self.cv:
            while self.left:
                self.cv.wait()


def hol_apply(ctx, long_ms, short_ms, n):
    with ctx.Pool(2) as pool:
        warm(pool, short_ms * 1e3)
        st = Stamps(n)
        t0 = time.perf_counter()
        pool.apply_async(spin, (long_ms * 1e3,))
        for i in range(n):
            pool.apply_async(spin, (short_ms * 1e3,), callback=st.stamp(i))
        st.wait()
        res = max(st.done) - t0
        pool.terminate()
    return res


def hol_imap(ctx, long_ms, short_ms, n, chunk):
    with ctx.Pool(2) as pool:
        warm(pool, short_ms * 1e3)
        items = [long_ms * 1e3] + [short_ms * 1e3] * n
        want = n + 1 - chunk
        got = 0
        t0 = time.perf_counter()
        # the index comes back with the result, as pp_iter_next gives it
        for idx in pool.imap_unordered(spin_idx, enumerate(items), chunksize=chunk):
            if idx >= chunk:
                got += 1
                if got == want:
                    break
        res = time.perf_counter() - t0
        pool.terminate()
    return res


def spin_idx(a):
    spin(a[1])
    return a[0]


def workload(n, seed, short_us, long_us, long_pct):
    x = seed
    out = []
    for _ in range(n):
        x = (x * 6364136223846793005 + 1442695040888963407) & 0xFFFFFFFFFFFFFFFF
        out.append(long_us if (x >> 33) % 100 < long_pct else short_us)
    return out


def pct(v, q):
    if not v:
        return -1.0
    v = sorted(v)
    k = min(max(math.ceil(q * len(v)) - 1, 0), len(v) - 1)
    return v[k]


def lat(ctx, n, interval, seed, short_us, long_us, long_pct):
    us = workload(n, seed, short_us, long_us, long_pct)
    sub = [0.0] * n
    st = Stamps(n)
    with ctx.Pool(2) as pool:
        warm(pool, short_us)
        t0 = time.perf_counter()
        for i in range(n):
            d = t0 + i * interval - time.perf_counter()
            if d > 0:
                time.sleep(d)
            sub[i] = time.perf_counter()
            pool.apply_async(spin, (us[i],), callback=st.stamp(i))
        st.wait()
    all_lat = [st.done[i] - sub[i] for i in range(n)]
    short = [all_lat[i] for i in range(n) if us[i] == short_us]
    for name, v in (("py_lat", all_lat), ("py_lat_short", short)):
        print(f"{name}_p50_s {pct(v, 0.50):.6f}")
        print(f"{name}_p99_s {pct(v, 0.99):.6f}")
        print(f"{name}_p999_s {pct(v, 0.999):.6f}", flush=True)


def main():
    print(f"py_version {platform.python_version()}", flush=True)
    ctx = mp.get_context("fork")  # the start method procpool's default matches
    mode = sys.argv[1] if len(sys.argv) > 1 else "hol"
    if mode == "hol":
        long_ms = float(sys.argv[2]) if len(sys.argv) > 2 else 2000.0
        short_ms = float(sys.argv[3]) if len(sys.argv) > 3 else 1.0
        n = int(sys.argv[4]) if len(sys.argv) > 4 else 1000
        runs = int(sys.argv[5]) if len(sys.argv) > 5 else 2
        chunk = int(sys.argv[6]) if len(sys.argv) > 6 else 10
        a = [hol_apply(ctx, long_ms, short_ms, n) for _ in range(runs)]
        print(f"py_hol_runs_s {' '.join(f'{x:.4f}' for x in a)}")
        print(f"py_hol_s {statistics.median(a):.6f}", flush=True)
        b = [hol_imap(ctx, long_ms, short_ms, n, chunk) for _ in range(runs)]
        print(f"py_imap_runs_s {' '.join(f'{x:.4f}' for x in b)}")
        print(f"py_imap_s {statistics.median(b):.6f}", flush=True)
    elif mode == "lat":
        n = int(sys.argv[2])
        interval = float(sys.argv[3])
        seed = int(sys.argv[4])
        short_us = float(sys.argv[5])
        long_us = float(sys.argv[6])
        long_pct = int(sys.argv[7])
        lat(ctx, n, interval, seed, short_us, long_us, long_pct)
    else:
        sys.exit(f"py_hol.py: unknown mode {mode!r}")


if __name__ == "__main__":
    main()
