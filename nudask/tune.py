"""``python -m nudask.tune`` (and ``nudask tune``): hyperparameter search, trials as Dask tasks.

::

    python -m nudask.tune --config JOB.yaml --data DATASET --study studies/mt
    python -m nudask.tune --config JOB.yaml --data DATASET --study studies/mt \\
        --cluster slurm-gpu --jobs 4                       # one trial per SLURM GPU worker
    python -m nudask.tune ... --study studies/mt          # again after a kill: the study resumes

The job file is a training job plus a ``tune`` section (see :mod:`nudask.train.tune`).
"""

from __future__ import annotations

import argparse
import os
import sys

from .errors import exit_on_error

EXAMPLES = (__doc__ or "").split("::")[1].split("\n\nThe job")[0]


def add_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    from .options import key_value_argument  # cluster.parse_cluster_option, without distributed

    p.add_argument("--config", required=True, help="job file with a tune section (YAML or JSON)")
    p.add_argument("--data", help="dataset folder (overrides data: in the job file)")
    p.add_argument("--study", required=True, help="study folder (study.db, trials/, index.html)")
    p.add_argument("--trials", type=int, help="trials the study should hold (overrides tune.trials)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a training config value for every trial (repeatable)")  # fmt: skip
    p.add_argument("--scheduler", help="address of a running Dask scheduler")
    p.add_argument("--workers", type=int, help="workers of the local cluster (default: one per core)")
    p.add_argument("--cluster", metavar="PROFILE", help="SLURMCluster profile, e.g. slurm-gpu")
    p.add_argument("--jobs", type=int, default=2, help="SLURM worker jobs (with --cluster; default 2)")
    p.add_argument("--cluster-option", action="append", type=key_value_argument, default=[],
                   metavar="KEY=VALUE", help="override a profile option (repeatable)")  # fmt: skip
    p.add_argument("--profiles", metavar="FILE", help="cluster profiles file")
    return p


def run(a: argparse.Namespace) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from distributed import Client

    from .cluster import local_cluster
    from .train.config import parse_override
    from .train.tune import tune

    overrides = [parse_override(o) for o in a.overrides]

    def go(client) -> dict:
        print(f"nudask.tune: dashboard: {client.dashboard_link}", flush=True)
        return tune(a.config, a.study, data=a.data, overrides=overrides, trials=a.trials, client=client)

    if a.cluster:
        from .cluster import slurm_cluster

        with slurm_cluster(a.cluster, jobs=a.jobs, profiles=a.profiles, **dict(a.cluster_option)) as cluster:
            with Client(cluster) as client:
                client.wait_for_workers(1, timeout=600)
                res = go(client)
    elif a.scheduler:
        with Client(a.scheduler) as client:
            res = go(client)
    else:
        with local_cluster(n_workers=a.workers, threads_per_worker=1) as cluster, Client(cluster) as client:
            res = go(client)
    best = res.get("best")
    where = os.path.join(a.study, "index.html")
    if best:
        print(
            f"nudask.tune: best trial {best['number']}: {res['metric']} {best['value']:.5g} {best['params']}"
        )
    print(f"nudask.tune: summary {where}")
    return 0


def parser(prog: str = "python -m nudask.tune") -> argparse.ArgumentParser:
    return add_arguments(
        argparse.ArgumentParser(
            prog=prog, description=(__doc__ or "").split("\n\n")[0], epilog="examples:" + EXAMPLES,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    with exit_on_error("nudask.tune"):
        return run(args)


if __name__ == "__main__":
    sys.exit(main())
