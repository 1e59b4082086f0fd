"""One task of ``runner.sbatch``: the Dask scheduler, the client, or a worker (SLURMRunner).

Every task of the allocation runs this file. dask-jobqueue's SLURMRunner
reads ``SLURM_PROCID``: task 0 serves as the scheduler and task 1 as the
client, the others as single-threaded workers; all but the client stay inside
``with SLURMRunner(...)`` until the client leaves it. The client runs the
nudask command line given after ``--`` against this cluster (``--scheduler``).

usage (from runner.sbatch): python runner.py --scheduler-file F -- preprocess IN... --out OUT
"""

from __future__ import annotations

import argparse
import os
import sys

from distributed import Client

from nudask import cli
from nudask.cluster import DASHBOARD_ADDRESS, import_jobqueue, submit_host_address


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scheduler-file", required=True, help="JSON file all tasks can read")
    p.add_argument("--wait", type=float, default=300, help="seconds to wait for the workers")
    p.add_argument("command", nargs=argparse.REMAINDER, help="nudask command line")
    a = p.parse_args(argv)
    command = a.command[1:] if a.command[:1] == ["--"] else a.command
    if not command:
        p.error("no nudask command given after --")
    slurm_runner = import_jobqueue().slurm.SLURMRunner
    # every task listens on its own node's default-route address only (not on all
    # interfaces), the dashboard on the scheduler node's loopback (tunnel to it)
    host = submit_host_address()
    worker = {"nthreads": 1, "local_directory": os.environ.get("TMPDIR", "/tmp"), "host": host}
    if os.environ.get("SLURM_MEM_PER_CPU"):  # MB; else Dask's default share of the node
        cpus = int(os.environ.get("SLURM_CPUS_PER_TASK", "1"))
        worker["memory_limit"] = f"{int(os.environ['SLURM_MEM_PER_CPU']) * cpus}MiB"
    with slurm_runner(
        scheduler_file=a.scheduler_file,
        scheduler_options={"host": host, "dashboard_address": DASHBOARD_ADDRESS},
        worker_options=worker,
    ) as runner:
        # only the client task gets here
        with Client(runner) as client:
            client.wait_for_workers(runner.n_workers, timeout=a.wait)
            print(
                f"nudask-runner: {runner.n_workers} workers; dashboard: {client.dashboard_link}", flush=True
            )
            return cli.main([*command, "--scheduler", client.scheduler.address])


if __name__ == "__main__":
    sys.exit(main())
