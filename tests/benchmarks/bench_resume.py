"""Benchmark: rerunning a killed ``nudask preprocess`` against a full run.

Simulates full-geometry MicroBooNE files, times a complete ``nudask preprocess``
(the command users run, local cluster included), then starts it again into a new
folder, kills it with SIGKILL (driver and workers) once half of the chunks are
journaled, and times the rerun of the same command, which must finish only the
missing chunks. Target: rerun / full run <= 0.6. Prints a table.

    .venv/bin/python tests/benchmarks/bench_resume.py [--events 100] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time

from nudask.resume import JOURNAL
from nudask.simulate import simulate_microboone


def journaled(out: str) -> int:
    try:
        with open(os.path.join(out, JOURNAL)) as f:
            return sum(1 for line in f if line.endswith("\n"))
    except FileNotFoundError:
        return 0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=100, help="events per file (2 files)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--events-per-chunk", type=int, default=5)
    a = p.parse_args()
    tmp = tempfile.mkdtemp(prefix="nudask-resume-")
    inputs = [
        str(
            simulate_microboone(
                os.path.join(tmp, f"bnb_WithWire_{k:02d}.h5"), n_events=a.events, seed=k, subrun=k
            )
        )
        for k in range(2)
    ]
    n_chunks = 2 * -(-a.events // a.events_per_chunk)

    def command(out):
        return [
            sys.executable,
            "-m",
            "nudask",
            "preprocess",
            *inputs,
            "--out",
            out,
            "--events-per-chunk",
            str(a.events_per_chunk),
            "--workers",
            str(a.workers),
        ]

    t0 = time.perf_counter()
    subprocess.run(command(os.path.join(tmp, "full")), check=True, capture_output=True)
    full = time.perf_counter() - t0

    out = os.path.join(tmp, "killed")
    proc = subprocess.Popen(
        command(out), start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    while journaled(out) < n_chunks // 2 and proc.poll() is None:
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = journaled(out)
    t0 = time.perf_counter()
    subprocess.run(command(out), check=True, capture_output=True)
    rerun = time.perf_counter() - t0

    rows = [
        ("events (2 files, full geometry)", 2 * a.events, "", "", ""),
        ("chunks / done before the kill", n_chunks, f"{done}", "", ""),
        ("full run (command, cluster start included)", full, "s", "", ""),
        ("rerun after SIGKILL at 50 %", rerun, "s", "", ""),
        ("rerun / full run", rerun / full, "x", "<= 0.6", "pass" if rerun / full <= 0.6 else "FAIL"),
    ]
    print(f"{'measure':46} {'value':>9} {'unit':6} {'target':8} result")
    for name, value, unit, target, result in rows:
        shown = f"{value:9.2f}" if isinstance(value, float) else f"{value:>9}"
        print(f"{name:46} {shown} {unit:6} {target:8} {result}")


if __name__ == "__main__":
    main()
