"""Overhead of SLURM workers against LocalCluster workers, on the same node and data.

Two clusters side by side in this process, each of two single-threaded
workers: a LocalCluster (worker processes spawned here) and a SLURMCluster of
the ``local-slurm`` profile (each worker a SLURM job of deploy/slurm-up.sh's
single-node cluster). Measured:

* time from ``scale()`` to all workers ready (``wait_for_workers``), the
  median of ``--scale-repeats`` cycles (scale up, measure, scale to zero);
* ``preprocess`` throughput once the workers are up, events/s, the median of
  ``--repeats`` runs, LocalCluster and SLURM runs interleaved; the ratio
  SLURM / Local has the target >= 0.9.

Inputs are full-geometry MicroBooNE events simulated into a temporary folder.
Needs root on Debian (SLURM is started with deploy/slurm-up.sh if it is not
running, and stopped again after).

Run (about two minutes)::

    .venv/bin/python tests/benchmarks/bench_cluster.py
    .venv/bin/python tests/benchmarks/bench_cluster.py --events 60 --repeats 5 --markdown
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from distributed import Client, LocalCluster

import nudask
from nudask.cluster import slurm_cluster, worker_malloc

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def slurm_is_up() -> bool:
    r = subprocess.run(["scontrol", "ping"], capture_output=True, text=True)
    return "is UP" in r.stdout


def our_jobs(cluster) -> set[str]:
    return {j.job_id for j in list(cluster.workers.values()) if j.job_id}


def scale_to_ready(cluster, client: Client, want: int, **scale) -> float:
    """Seconds from ``scale(...)`` to ``want`` workers connected; then scale back to zero."""
    t0 = time.perf_counter()
    cluster.scale(**scale)
    client.wait_for_workers(want, timeout=180)
    seconds = time.perf_counter() - t0
    cluster.scale(0)
    deadline = time.monotonic() + 120
    while client.scheduler_info(n_workers=-1)["workers"]:
        if time.monotonic() > deadline:
            raise TimeoutError("workers did not leave after scale(0)")
        time.sleep(0.2)
    return seconds


def throughput(files: list[str], out: str, client: Client, events_per_chunk: int) -> float:
    t0 = time.perf_counter()
    ds = nudask.preprocess(
        files, out, client=client, events_per_chunk=events_per_chunk, overwrite=True, progress=False
    )
    return len(ds) / (time.perf_counter() - t0)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=40, help="full-geometry events per file (2 files)")
    p.add_argument("--events-per-chunk", type=int, default=4)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--scale-repeats", type=int, default=3)
    p.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    a = p.parse_args()

    started_slurm = False
    if not slurm_is_up():
        r = subprocess.run([str(DEPLOY / "slurm-up.sh")], capture_output=True, text=True)
        if r.returncode:
            print(f"cannot start SLURM (deploy/slurm-up.sh): {r.stderr[-1500:]}", file=sys.stderr)
            return 2
        started_slurm = True
    tmp = tempfile.mkdtemp(prefix="nudask-bench-cluster-")
    files = [
        str(
            nudask.simulate_microboone(
                os.path.join(tmp, f"bnb_WithWire_{k:02d}.h5"),
                n_events=a.events,
                seed=k,
                subrun=k,
                first_event=1 + k * a.events,
            )
        )
        for k in range(2)
    ]
    n_events = 2 * a.events
    try:
        # both kinds of workers with nudask's malloc settings (SLURM: from the profile)
        with (
            worker_malloc(),
            LocalCluster(
                n_workers=0,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address="127.0.0.1:0",
            ) as local,
            Client(local) as lc,
            slurm_cluster("local-slurm", log_directory=os.path.join(tmp, "logs")) as slurm,
            Client(slurm) as sc,
        ):
            t_local = [scale_to_ready(local, lc, 2, n=2) for _ in range(a.scale_repeats)]
            t_slurm = [scale_to_ready(slurm, sc, 2, jobs=2) for _ in range(a.scale_repeats)]
            local.scale(2)
            slurm.scale(jobs=2)
            lc.wait_for_workers(2, timeout=60)
            sc.wait_for_workers(2, timeout=180)
            for client in (lc, sc):  # warm-up: imports, first-touch of the files
                throughput(files, os.path.join(tmp, "warm"), client, a.events_per_chunk)
            rates: dict[str, list[float]] = {"local": [], "slurm": []}
            for _ in range(a.repeats):
                for name, client in (("local", lc), ("slurm", sc)):
                    rates[name].append(throughput(files, os.path.join(tmp, name), client, a.events_per_chunk))
            jobs_ok = len(our_jobs(slurm)) == 2
            malloc = {
                *lc.run(os.getenv, "MALLOC_ARENA_MAX").values(),
                *sc.run(os.getenv, "MALLOC_ARENA_MAX").values(),
            }
    finally:
        if started_slurm:
            subprocess.run([str(DEPLOY / "slurm-down.sh")], capture_output=True)
    local_rate, slurm_rate = statistics.median(rates["local"]), statistics.median(rates["slurm"])
    ratio = slurm_rate / local_rate
    rows = [
        ("scale() -> 2 workers ready, LocalCluster", statistics.median(t_local), "s", "-", ""),
        (
            "scale() -> 2 workers ready, SLURM jobs",
            statistics.median(t_slurm),
            "s",
            "<= 15",
            statistics.median(t_slurm) <= 15,
        ),
        ("preprocess, LocalCluster 2x1 thread", local_rate, "events/s", "-", ""),
        ("preprocess, SLURM 2 jobs x1 thread", slurm_rate, "events/s", "-", ""),
        ("SLURM / Local throughput", ratio, "ratio", ">= 0.9", ratio >= 0.9),
        ("workers were SLURM jobs", float(jobs_ok), "bool", "1", jobs_ok),
        ("all workers with nudask's malloc settings", float(malloc == {"1"}), "bool", "1", malloc == {"1"}),
    ]
    print(
        f"\n{n_events} full-geometry events, {a.events_per_chunk} per chunk, median of "
        f"{a.repeats} runs (scale: {a.scale_repeats}); runs local {rates['local']}, "
        f"slurm {rates['slurm']}; scale local {t_local}, slurm {t_slurm}\n"
    )
    head = ("measure", "value", "unit", "target", "pass")
    table = [(m, f"{v:.3g}", u, t, "" if ok == "" else ("PASS" if ok else "FAIL")) for m, v, u, t, ok in rows]
    widths = [max(len(str(r[i])) for r in [head, *table]) for i in range(5)]
    sep = " | " if a.markdown else "  "
    for k, r in enumerate([head, *table]):
        print(sep.join(str(c).ljust(w) for c, w in zip(r, widths)).strip())
        if k == 0:
            print(sep.join(("-" * w) for w in widths))
    return 0 if all(ok != False for *_, ok in rows) else 1  # noqa: E712


if __name__ == "__main__":
    sys.exit(main())
