"""``python -m nudask.train``: train from a job config, or resume a run.

::

    python -m nudask.train --data nue.parquet --config jobs/train_nue_cc.yaml
    python -m nudask.train --config jobs/train_nue_cc.yaml --set train.epochs=3 --set input.batch_size=16
    python -m nudask.train --resume runs/nue_cc/20261122_143022      # after a kill
    python -m nudask.train --keys                                      # every config key
"""

from __future__ import annotations

import argparse
import os
import sys

from ..errors import ConfigError, exit_on_error

EXAMPLES = (__doc__ or "").split("::")[1]


def add_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The arguments of ``python -m nudask.train`` (and ``nudask train``), added to ``p``."""
    p.add_argument("--config", help="job file, YAML or JSON (default: built-in defaults)")
    p.add_argument("--data", help="dataset folder (overrides data: in the config)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any config value, e.g. --set train.epochs=5 (repeatable)",
    )
    p.add_argument(
        "--resume",
        metavar="RUN",
        help="continue this run folder from its last checkpoint (an epoch's end or a step within)",
    )
    p.add_argument("--no-evaluate", action="store_true", help="skip the test-set evaluation at the end")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.add_argument("--keys", action="store_true", help="print every config key with its default and exit")
    return p


def parser(prog: str = "python -m nudask.train") -> argparse.ArgumentParser:
    return add_arguments(
        argparse.ArgumentParser(
            prog=prog,
            description=(__doc__ or "").split("\n\n")[0],
            epilog="examples:" + EXAMPLES,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
    )


def run(args: argparse.Namespace, command: list[str]) -> int:
    """Do what the parsed ``args`` ask; ``command`` is recorded in the run folder."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from .config import dump, load, parse_override, reference

    if args.keys:
        print(reference())
        return 0
    overrides = [parse_override(o) for o in args.overrides]
    if args.data:
        overrides.append(("data", args.data))
    if args.resume:
        if args.config:
            raise ConfigError("--resume takes the run's own config; drop --config")
        from .fit import resume

        done = resume(args.resume, overrides=overrides, argv=command, evaluate=not args.no_evaluate)
    else:
        cfg = load(args.config, overrides)
        if args.print_config:
            print(dump(cfg), end="")
            return 0
        from .fit import train

        done = train(cfg, config_path=args.config, argv=command, evaluate=not args.no_evaluate)
    print(f"nudask.train: done: {done}" + ("" if args.no_evaluate else f" (report: {done / 'index.html'})"))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    command = ["python", "-m", "nudask.train", *(sys.argv[1:] if argv is None else argv)]
    with exit_on_error("nudask.train"):
        return run(args, command)


if __name__ == "__main__":
    sys.exit(main())
