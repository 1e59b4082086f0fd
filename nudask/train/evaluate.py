"""Evaluate a run on its test split: predictions, metrics, plots, summary page.

``python -m nudask.evaluate RUN`` (or ``python -m nudask.train.evaluate RUN``)
loads the run's best model (``--model last`` for the last), streams the test
events of the dataset named in the run's config (``--data`` if it moved),
and writes ``predictions.csv``, ``metrics.json``, ``plots/*.png``,
``summary.md`` and ``index.html`` into the run folder.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from . import assess, report
from .config import load as load_config
from .data import Data, load_data
from .run import write_json


def _predict(model, data: Data, verbose: int):
    from .feed import stream

    source = data.source("test", shuffle=False)
    prob = np.asarray(model.predict(stream(source, data.cfg.input), verbose=verbose), np.float64)
    rows = source.plan.order
    return rows, prob[:, 0] if prob.shape[1] == 1 else prob


def evaluate_run(
    run: str | Path,
    *,
    data: Data | None = None,
    model=None,
    which: str = "best",
    data_path: str | None = None,
    verbose: int = 1,
) -> dict:
    """Evaluate the run folder ``run``; returns the metrics (also written to metrics.json)."""
    run = Path(run)
    cfg = load_config(run / "config.yaml")  # checked before TensorFlow loads: bad ones fail fast
    from .features import FEATURE_MODELS, evaluate_features

    if cfg.model.name in FEATURE_MODELS:
        return evaluate_features(run, data=data, data_path=data_path)
    import keras

    from . import models  # noqa: F401  (registers the custom layers for loading)

    data = data or load_data(cfg, data_path)
    recorded = json.loads((run / "dataset.json").read_text()).get("manifest_sha256")
    model = model or keras.models.load_model(run / f"model_{which}.keras")
    rows, prob = _predict(model, data, verbose)
    df = assess.predictions(data, rows, prob)
    df.to_csv(run / "predictions.csv", index=False)
    res = assess.metrics(data, df, prob)
    res["model"] = f"model_{which}.keras"
    res["dataset_matches_run"] = recorded == data.checksum
    write_json(run / "metrics.json", res)
    files = assess.plots(run, data, df, prob, res)
    state = json.loads((run / "checkpoints" / "state.json").read_text())
    info = {
        "title": f"nudask run {run.parent.name}/{run.name}: {data.task.name} ({data.task.kind})",
        "facts": {
            "dataset": data.path,
            "format": data.fmt,
            "model": f"{cfg.model.name}, {res['model']} "
            f"(best epoch {state.get('best_epoch')} of {state.get('epoch')}, {state.get('monitor')})",
            "events (train/validation/test)": "/".join(
                str(data.rows(s).size) for s in ("train", "validation", "test")
            ),
            "dataset unchanged since training": res["dataset_matches_run"],
        },
    }
    files += [
        run / f
        for f in (
            "config.yaml",
            "command.txt",
            "environment.json",
            "dataset.json",
            "history.json",
            "history.csv",
            "model_best.keras",
            "model_last.keras",
            "metrics.json",
            "predictions.csv",
        )
        if (run / f).exists()
    ]
    report.write_summary(run, info, assess.headline(res), files)
    return res


if __name__ == "__main__":  # python -m nudask.train.evaluate: the same as python -m nudask.evaluate
    from nudask.evaluate import main

    sys.exit(main())
