"""``nudask`` command line: thin wrappers over the Python API."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

import yaml

from . import __version__

EPILOG = """examples:
  nudask simulate data/ --files 2 --events 20 --geometry small
  nudask preprocess data/bnb_WithWire_*.h5 --out bnb.parquet -O geometry=small
  nudask describe bnb.parquet --plots plots/
  nudask show bnb.parquet --event 0 --out event0.png
"""


def _key_value(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.replace("-", "_"), yaml.safe_load(value)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="nudask",
        description="Neutrino detector files -> sparse Parquet training data, on Dask.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"nudask {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser(
        "simulate",
        help="write toy detector files in the public layouts",
        description="Write simulated input files, named like the real samples.",
    )
    s.add_argument("out", help="folder to write the files into")
    s.add_argument("--format", choices=("microboone", "nova"), default="microboone")
    s.add_argument("--files", type=int, default=1, help="number of files (default 1)")
    s.add_argument("--events", type=int, default=10, help="events per file (default 10)")
    s.add_argument(
        "--sample",
        choices=("bnb", "nue"),
        default="bnb",
        help="MicroBooNE sample mix: inclusive bnb or nue-CC enriched",
    )
    s.add_argument(
        "--geometry",
        default="microboone",
        help="MicroBooNE geometry: microboone (full) or small (fast tests)",
    )
    s.add_argument("--no-wire", action="store_true", help="write NoWire files (no wire_table)")
    s.add_argument("--seed", type=int, default=0)

    s = sub.add_parser(
        "preprocess",
        help="render and sparsify inputs into a Parquet dataset",
        description="Read, render and sparsify INPUTS on Dask into a dataset at --out.",
    )
    s.add_argument("inputs", nargs="+", help="input files (glob patterns allowed)")
    s.add_argument("--out", required=True, help="dataset folder to write")
    s.add_argument("--reader", help="input format (default: guessed from the first file)")
    s.add_argument(
        "-O",
        "--reader-option",
        action="append",
        type=_key_value,
        default=[],
        metavar="KEY=VALUE",
        help="reader option, e.g. -O geometry=small -O factor=6",
    )
    s.add_argument("--events-per-chunk", type=int, help="events per Dask task (default 20)")
    s.add_argument(
        "--on-error",
        choices=("raise", "skip"),
        help="raise: stop on the first bad input (default); skip: finish the rest",
    )
    s.add_argument("--overwrite", action="store_true", help="replace an existing dataset")
    s.add_argument(
        "--update", action="store_true", help="redo the chunks of inputs changed since the last run"
    )
    s.add_argument("--eight-bit", action="store_true", help="store 8-bit values (lossy, PNG-like)")
    s.add_argument("--scheduler", help="address of a running Dask scheduler to use")
    s.add_argument("--workers", type=int, help="workers of the local cluster (default: one per core)")
    from .cluster import parse_cluster_option

    s.add_argument(
        "--cluster",
        metavar="PROFILE",
        help="run on a SLURMCluster of this profile (slurm-cpu, slurm-cpu-apptainer, "
        "slurm-gpu, local-slurm; see deploy/jobqueue.yaml)",
    )
    s.add_argument(
        "--jobs",
        type=int,
        default=2,
        help="SLURM worker jobs to keep while the run lasts (with --cluster; default 2)",
    )
    s.add_argument(
        "--cluster-option",
        action="append",
        type=parse_cluster_option,
        default=[],
        metavar="KEY=VALUE",
        help="override a profile option, e.g. --cluster-option walltime=08:00:00 --cluster-option queue=long",
    )
    s.add_argument(
        "--profiles",
        metavar="FILE",
        help="cluster profiles file (default: $NUDASK_JOBQUEUE, else nudask's own)",
    )
    s.add_argument(
        "--dry-run",
        action="store_true",
        help="print the worker job script of --cluster (default slurm-cpu) and exit",
    )

    s = sub.add_parser("describe", help="statistics of a dataset (events, truth, storage)")
    s.add_argument("dataset")
    s.add_argument("--plots", metavar="DIR", help="also write PNG charts into DIR")
    s.add_argument("--json", action="store_true", help="print the summary as JSON")
    s.add_argument(
        "--png-sample",
        type=int,
        default=20,
        help="events encoded as PNG to estimate PNG-equivalent size (default 20)",
    )

    s = sub.add_parser("verify", help="check every part of a dataset (size, sha256); exit 1 if any is bad")
    s.add_argument("dataset")

    s = sub.add_parser("show", help="PNG event display of every view of one event")
    s.add_argument("dataset")
    s.add_argument("--event", type=int, default=0, help="row of the event in the dataset")
    s.add_argument("--out", help="PNG path (default event_<N>.png)")
    return p


RUNS = {"bnb": 5000, "nue": 7000}  # distinct event ids across simulated samples


def _simulate(a: argparse.Namespace) -> None:
    from .simulate import simulate_microboone, simulate_nova

    os.makedirs(a.out, exist_ok=True)
    for k in range(a.files):
        seed = a.seed * 1000 + k
        if a.format == "nova":
            path = simulate_nova(os.path.join(a.out, f"neutrino{k + 1}.h5"), n_events=a.events, seed=seed)
        else:
            kind = "NoWire" if a.no_wire else "WithWire"
            path = simulate_microboone(
                os.path.join(a.out, f"{a.sample}_{kind}_{k:02d}.h5"),
                n_events=a.events,
                seed=seed,
                sample=a.sample,
                geometry=a.geometry,
                with_wire=not a.no_wire,
                first_event=1 + k * a.events,
                run=RUNS[a.sample],
                subrun=a.seed * 100 + k,
            )
        print(path)


def _preprocess(a: argparse.Namespace) -> None:
    from distributed import Client

    from .cluster import local_cluster
    from .describe import format_summary, summarize
    from .pipeline import preprocess

    kwargs = dict(
        reader=a.reader,
        reader_options=dict(a.reader_option),
        events_per_chunk=a.events_per_chunk,
        on_error=a.on_error,
        overwrite=a.overwrite,
        update=a.update,
        eight_bit=a.eight_bit or None,
    )
    if a.dry_run:
        from .cluster import DEFAULT_PROFILE, job_script

        print(job_script(a.cluster or DEFAULT_PROFILE, profiles=a.profiles, **dict(a.cluster_option)))
        return
    if a.cluster:
        from .cluster import slurm_cluster

        with (
            slurm_cluster(a.cluster, jobs=a.jobs, profiles=a.profiles, **dict(a.cluster_option)) as cluster,
            Client(cluster) as client,
        ):
            print(
                f"nudask: SLURM cluster '{a.cluster}' keeping {a.jobs} worker jobs; "
                f"dashboard: {client.dashboard_link}",
                flush=True,
            )
            ds = preprocess(a.inputs, a.out, client=client, **kwargs)
    elif a.scheduler or a.workers:
        cluster = None if a.scheduler else local_cluster(n_workers=a.workers)
        with Client(a.scheduler or cluster) as client:
            print(f"nudask: dashboard: {client.dashboard_link}", flush=True)
            ds = preprocess(a.inputs, a.out, client=client, **kwargs)
        if cluster is not None:
            cluster.close()
    else:
        ds = preprocess(a.inputs, a.out, **kwargs)
    print(format_summary(summarize(ds, sample=0)))


def _describe(a: argparse.Namespace) -> None:
    from .dataset import open_dataset
    from .describe import format_summary, plot_summary, summarize

    ds = open_dataset(a.dataset)
    summary = summarize(ds, sample=a.png_sample)
    print(json.dumps(summary, indent=1, default=str) if a.json else format_summary(summary))
    if a.plots:
        for path in plot_summary(ds, summary, a.plots):
            print(f"wrote {path}")


def _show(a: argparse.Namespace) -> None:
    from .dataset import open_dataset
    from .display import show_event

    out = a.out or f"event_{a.event}.png"
    print(f"wrote {show_event(open_dataset(a.dataset), a.event, out)}")


def _verify(a: argparse.Namespace) -> int:
    from .dataset.verify import verify

    bad = verify(a.dataset)
    for failure in bad:
        print(f"{failure.path}: {failure.error}")
    if not bad:
        print(f"nudask verify: {a.dataset}: every part is as written")
    return 1 if bad else 0


COMMANDS = {
    "simulate": _simulate, "preprocess": _preprocess, "describe": _describe, "show": _show,
    "verify": _verify,
}  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from .errors import InputError, NudaskError

    try:
        return COMMANDS[args.command](args) or 0
    except (NudaskError, InputError, ValueError, FileExistsError, FileNotFoundError, IndexError) as err:
        print(f"nudask {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
