"""``nudask`` command line: thin wrappers over the Python API.

Every command reports a :class:`~nudask.errors.NudaskError` as one line,
``nudask COMMAND: error: ...``, and exits 2; anything else is a bug and keeps
its traceback. ``nudask train`` and ``nudask evaluate`` are ``python -m
nudask.train`` and ``python -m nudask.evaluate``, with the same arguments.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from . import __version__
from . import evaluate as evaluate_cli
from .errors import NotFoundError, exit_on_error
from .options import key_value_argument
from .readers import DEFAULT_READER as DEFAULT_FORMAT
from .train import __main__ as train_cli

EPILOG = """examples:
  nudask simulate data/ --files 2 --events 20 -O geometry=small
  nudask preprocess data/bnb_WithWire_*.h5 --out bnb.parquet -O geometry=small
  nudask describe bnb.parquet --plots plots/
  nudask show bnb.parquet --event 0 --out event0.png
  nudask readers
  nudask train --data bnb.parquet --config jobs/train_nue_cc.yaml --set train.epochs=3
  nudask evaluate runs/nue_cc/<stamp>
  nudask label events.parquet --k 2
"""


_key_value = key_value_argument  # the type of -O KEY=VALUE


def _module_command(sub, name: str, help: str, module) -> None:
    """``nudask NAME``: the arguments, summary and examples of ``python -m nudask.NAME``."""
    s = sub.add_parser(
        name,
        help=help,
        description=(module.__doc__ or "").split("\n\n")[0],
        epilog="examples:" + module.EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    module.add_arguments(s)


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
        help="write simulated files in a reader's public layout",
        description="Write simulated input files of a format (any reader with a simulator; "
        "see `nudask readers`), named like the real samples.",
    )
    s.add_argument("out", help="folder to write the files into")
    s.add_argument("--format", default=DEFAULT_FORMAT, help=f"reader name (default {DEFAULT_FORMAT})")
    s.add_argument("--files", type=int, default=1, help="number of files (default 1)")
    s.add_argument("--events", type=int, default=10, help="events per file (default 10)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument(
        "-O",
        "--option",
        action="append",
        type=_key_value,
        default=[],
        metavar="KEY=VALUE",
        help="simulator option of the format, e.g. -O geometry=small -O sample=nue",
    )

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
    s.add_argument(
        "--values",
        choices=("exact", "float16"),
        help="exact: values as read (default); float16: half floats, relative error <= 2^-11 (0.049 %%)",
    )
    s.add_argument("--scheduler", help="address of a running Dask scheduler to use")
    s.add_argument("--workers", type=int, help="workers of the local cluster (default: one per core)")
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
        type=_key_value,  # cluster.parse_cluster_option, without importing distributed
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
    s.add_argument(
        "--tls",
        action="store_true",
        default=None,
        help="scheduler, workers and client talk TLS; without --tls-cert/--tls-key/--tls-ca "
        "with a temporary certificate made for this run",
    )
    s.add_argument("--tls-cert", metavar="PEM", help="certificate for TLS (implies --tls)")
    s.add_argument("--tls-key", metavar="PEM", help="its private key, chmod 600 (omit if in --tls-cert)")
    s.add_argument("--tls-ca", metavar="PEM", help="CA certificate the certificates are checked against")

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

    sub.add_parser(
        "readers",
        help="list the input formats, their file suffixes and -O options",
        description="List the installed readers (built-in and plugins) in the order they are guessed.",
    )

    _module_command(sub, "train", "train a Keras model on a dataset (python -m nudask.train)", train_cli)

    s = sub.add_parser(
        "evaluate",
        help="evaluate a training run on its test split (python -m nudask.evaluate)",
        description=evaluate_cli.DESCRIPTION,
    )
    evaluate_cli.add_arguments(s)

    s = sub.add_parser(
        "label",
        help="label events by hand in a local web app (k annotators per event, QA, consensus export)",
        description="Serve a labelling web app for DATASET (labels in DATASET/_labels.sqlite), "
        "or with --export write the consensus labels as a Parquet table and exit.",
    )
    s.add_argument("dataset")
    s.add_argument("--k", type=int, default=2, help="annotators per event (default 2)")
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine)")
    s.add_argument("--port", type=int, default=8765, help="port (default 8765; 0: any free one)")
    s.add_argument("--role", help="label role whose classes are assigned (default: the dataset's first)")
    s.add_argument("--classes", help="comma-separated classes, for a dataset that declares none")
    s.add_argument("--unit", help="colour-bar unit (default: the dataset's units role)")
    s.add_argument("--export", metavar="OUT.parquet", help="write the consensus table and exit")

    from . import tune as tune_cli

    _module_command(sub, "tune", "hyperparameter search as Dask tasks (python -m nudask.tune)", tune_cli)
    return p


def _simulate(a: argparse.Namespace) -> None:
    from .errors import ConfigError
    from .readers import reader_class

    cls = reader_class(a.format)
    options = dict(a.option)
    unknown = sorted(set(options) - set(cls.simulate_options))
    if unknown:
        known = ", ".join(cls.simulate_options) or "none"
        raise ConfigError(f"simulate --format {a.format}: unknown option(s) {unknown}; its options: {known}")
    os.makedirs(a.out, exist_ok=True)
    try:
        paths = cls.simulate(a.out, files=a.files, events=a.events, seed=a.seed, **options)
    except NotImplementedError as err:
        raise ConfigError(f"simulate: {err}") from None
    for path in paths:
        print(path)


def _preprocess(a: argparse.Namespace) -> None:
    if a.profiles and not os.path.isfile(a.profiles):
        raise NotFoundError(f"no cluster profiles file at '{a.profiles}'")
    from distributed import Client

    from .cluster import local_cluster
    from .pipeline import preprocess

    kwargs = dict(
        reader=a.reader,
        reader_options=dict(a.reader_option),
        events_per_chunk=a.events_per_chunk,
        on_error=a.on_error,
        overwrite=a.overwrite,
        update=a.update,
        eight_bit=a.eight_bit or None,
        values=a.values,
    )
    tls = {k: getattr(a, k) for k in ("tls", "tls_cert", "tls_key", "tls_ca") if getattr(a, k) is not None}
    options = {**dict(a.cluster_option), **tls}
    if a.dry_run:
        from .cluster import DEFAULT_PROFILE, job_script

        print(job_script(a.cluster or DEFAULT_PROFILE, profiles=a.profiles, **options))
        return
    if a.cluster:
        from .cluster import slurm_cluster

        with (
            slurm_cluster(a.cluster, jobs=a.jobs, profiles=a.profiles, **options) as cluster,
            Client(cluster) as client,
        ):
            print(
                f"nudask: SLURM cluster '{a.cluster}' keeping {a.jobs} worker jobs; "
                f"dashboard: {client.dashboard_link}",
                flush=True,
            )
            ds = preprocess(a.inputs, a.out, client=client, **kwargs)
    elif a.scheduler or a.workers or tls:
        from .cluster import tls_security

        cluster = None if a.scheduler else local_cluster(n_workers=a.workers, **tls)
        security = tls_security(**tls, temporary=False) if a.scheduler and tls else None
        with Client(a.scheduler or cluster, security=security) as client:
            print(f"nudask: dashboard: {client.dashboard_link}", flush=True)
            ds = preprocess(a.inputs, a.out, client=client, **kwargs)
        if cluster is not None:
            cluster.close()
    else:
        ds = preprocess(a.inputs, a.out, **kwargs)
    from .describe import format_summary, summarize  # pandas: after the run, not before its first part

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


def _readers(a: argparse.Namespace) -> None:
    from .readers import describe_readers

    print(describe_readers())


def _train(a: argparse.Namespace) -> int:
    return train_cli.run(a, a.command_line)


def _evaluate(a: argparse.Namespace) -> int:
    return evaluate_cli.run(a)


def _label(a: argparse.Namespace) -> None:
    from .label import Labelling, serve

    classes = tuple(c.strip() for c in a.classes.split(",") if c.strip()) if a.classes else None
    app = Labelling(a.dataset, k=a.k, role=a.role, classes=classes or (), unit=a.unit)
    if a.export:
        table = app.export(a.export)
        ties = sum(table.column("tie").to_pylist())
        print(f"nudask label: wrote {a.export}: {table.num_rows} events, {ties} tie(s) to settle")
        return
    serve(app, a.host, a.port)


def _tune(a: argparse.Namespace) -> int:
    from . import tune as tune_cli

    return tune_cli.run(a)


COMMANDS = {
    "simulate": _simulate,
    "preprocess": _preprocess,
    "describe": _describe,
    "show": _show,
    "verify": _verify,
    "readers": _readers,
    "train": _train,
    "evaluate": _evaluate,
    "tune": _tune,
    "label": _label,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    args.command_line = ["nudask", *(sys.argv[1:] if argv is None else argv)]
    try:
        with exit_on_error(f"nudask {args.command}"):
            return COMMANDS[args.command](args) or 0
    except SystemExit as stop:  # a NudaskError, reported on one line: its exit status
        return stop.code if isinstance(stop.code, int) else 1


if __name__ == "__main__":
    sys.exit(main())
