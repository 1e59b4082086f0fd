"""``python -m nudask.michel {score,solve,baseline,train,spectrum}``: the Find-Michels task."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..errors import NudaskError


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m nudask.michel", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("score", help="F1, precision and recall of a solution file against a label file")
    s.add_argument("solution")
    s.add_argument("labels")
    s.add_argument("--dataset", help="the solution's dataset (default: the file's only one)")
    s.add_argument("--summary", action="store_true", help="pooled and mean figures only, no per-image table")
    s = sub.add_parser("solve", help="find the Michel voxels of every image of an xyze file")
    s.add_argument("run", help="a run folder of python -m nudask.michel train, or 'baseline' (DBSCAN)")
    s.add_argument("xyze")
    s.add_argument("--out", required=True, help="the solution file to write")
    s.add_argument("--dataset", default="solution", help="its dataset name (default solution)")
    s.add_argument("--images-per-chunk", type=int, default=200, help="images per Dask task (default 200)")
    s.add_argument("--workers", type=int, help="local cluster workers (default: one per core)")
    s.add_argument("--scheduler", help="address of a running Dask scheduler (e.g. SLURM GPU workers)")
    s.add_argument("--reader", help="the input format (default: guessed from the file)")
    s = sub.add_parser("train", help="train the point-based per-voxel network on a dataset")
    s.add_argument("--config", required=True, help="YAML job config (see jobs/michel_points.yaml)")
    s.add_argument("--data", required=True, help="a nudask dataset with the voxel labels")
    s.add_argument("--out", required=True, help="the run folder to write")
    s = sub.add_parser("spectrum", help="toy MC Michel spectrum against labelled Michel clusters")
    s.add_argument("data", help="a nudask dataset with the voxel labels")
    s.add_argument(
        "--out", required=True, help="the plot (PNG) to write; a .json beside it holds the numbers"
    )
    s.add_argument("--toy-events", type=int, default=1_000_000, help="decays in the toy MC (default 1e6)")
    s.add_argument("--threshold", type=float, default=2.0, help="cluster threshold in MeV (default 2)")
    s.add_argument("--seed", type=int, default=0)
    return p


def _score(a) -> None:
    from .score import format_report, score_files

    total, per_image = score_files(a.solution, a.labels, dataset=a.dataset)
    print(format_report(total, per_image, images=not a.summary))


def _solve(a) -> None:
    from ..readers import get_reader, guess_reader
    from .solve import BaselinePredictor, solve

    predictor: Any
    if a.run == "baseline":
        predictor = BaselinePredictor()
        reader = get_reader(a.reader or guess_reader(a.xyze))
    else:
        from .model import RunPredictor

        predictor = RunPredictor(a.run)
        reader = get_reader(a.reader or predictor.reader, **predictor.reader_options)
    client = None
    if a.scheduler or a.workers:
        from distributed import Client

        from ..cluster import local_cluster

        client = Client(a.scheduler) if a.scheduler else Client(local_cluster(n_workers=a.workers))
    try:
        info = solve(
            a.xyze,
            a.out,
            predictor,
            reader=reader,
            images_per_chunk=a.images_per_chunk,
            dataset=a.dataset,
            client=client,
        )
    finally:
        if client is not None:
            client.close()
    print(
        f"{a.out}: {info['images']} images ({info['solved']} solved now) in {info['wall_s']:.1f} s, "
        f"{info['images_per_s']:.1f} images/s, {info['images_per_core_s']:.1f} images/s per core"
    )


def _train(a) -> None:
    from .model import train_run

    report = train_run(a.config, a.data, a.out)
    print(report)


def _spectrum(a) -> None:
    from .spectrum import Detector, spectrum_plot

    detector = Detector(threshold=a.threshold)
    print(spectrum_plot(a.data, a.out, toy_events=a.toy_events, detector=detector, seed=a.seed))


def main(argv=None) -> int:
    a = parser().parse_args(argv)
    try:
        {"score": _score, "solve": _solve, "train": _train, "spectrum": _spectrum}[a.command](a)
    except NudaskError as err:
        print(f"python -m nudask.michel {a.command}: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
