"""``python -m nudask.evaluate RUN``: evaluate a training run (see :mod:`nudask.train.evaluate`).

The command line only: it imports the training code (and Keras) when it runs,
so that ``nudask --help`` stays quick.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import exit_on_error

DESCRIPTION = "Evaluate a run on its test split: predictions, metrics, plots, summary page."


def add_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The arguments of ``python -m nudask.evaluate`` (and ``nudask evaluate``), added to ``p``."""
    p.add_argument("run", help="run folder written by python -m nudask.train")
    p.add_argument("--model", choices=("best", "last"), default="best", help="which model (default best)")
    p.add_argument("--data", help="dataset folder, if it moved since training")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def parser(prog: str = "python -m nudask.evaluate") -> argparse.ArgumentParser:
    return add_arguments(argparse.ArgumentParser(prog=prog, description=DESCRIPTION))


def run(args: argparse.Namespace) -> int:
    """Evaluate the run the parsed ``args`` name; print the headline metrics."""
    from .train.assess import headline
    from .train.evaluate import evaluate_run

    res = evaluate_run(args.run, which=args.model, data_path=args.data, verbose=0 if args.quiet else 1)
    print(json.dumps(headline(res), indent=1))
    print(f"report: {Path(args.run) / 'index.html'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    with exit_on_error("nudask.evaluate"):
        return run(args)


if __name__ == "__main__":
    sys.exit(main())
