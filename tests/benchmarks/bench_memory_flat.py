"""Memory of a long preprocessing run: RSS of the driver and of each worker, sampled as it goes.

    python tests/benchmarks/bench_memory_flat.py INPUT --out DATASET [--every 10] [-- PREPROCESS ARGS]

Runs ``nudask preprocess INPUT --out DATASET ARGS`` and samples, every ``--every`` seconds,
the resident memory of the driver and of every process under it (the workers), with the
number of chunks finished (lines of the run's ``_journal.jsonl``). Prints the samples and a
summary: peak RSS per process in the first and the last fifth of the run (flat memory: the
two are alike however many images the file holds).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import psutil


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("input")
    p.add_argument("--out", required=True)
    p.add_argument("--every", type=float, default=10.0)
    a, rest = p.parse_known_args()
    rest = [r for r in rest if r != "--"]
    cmd = [sys.executable, "-m", "nudask", "preprocess", a.input, "--out", a.out, *rest]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    driver = psutil.Process(proc.pid)
    journal = os.path.join(a.out, "_journal.jsonl")
    samples = []
    t0 = time.perf_counter()
    while proc.poll() is None:
        try:
            kids = driver.children(recursive=True)
            rss_driver = driver.memory_info().rss / 2**20
            rss_workers = sorted((k.memory_info().rss / 2**20 for k in kids), reverse=True)
        except psutil.Error:
            break
        done = sum(1 for _ in open(journal)) if os.path.exists(journal) else 0
        samples.append((time.perf_counter() - t0, done, rss_driver, rss_workers[:4]))
        print(f"{samples[-1][0]:7.0f} s  chunks {done:5d}  driver {rss_driver:6.0f} MiB  "
              f"workers {' '.join(f'{r:6.0f}' for r in rss_workers[:4])} MiB", flush=True)  # fmt: skip
        time.sleep(a.every)
    print(f"exit code {proc.wait()} after {time.perf_counter() - t0:.0f} s")
    if len(samples) >= 5:
        fifth = max(len(samples) // 5, 1)
        for name, part in (("first fifth", samples[:fifth]), ("last fifth", samples[-fifth:])):
            workers = max((max(s[3], default=0) for s in part), default=0)
            print(f"{name}: driver peak {max(s[2] for s in part):.0f} MiB, worker peak {workers:.0f} MiB")


if __name__ == "__main__":
    main()
