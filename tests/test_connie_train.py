"""CONNIE event classification: the ResNet-18 on event images, feature models, side by side."""

from __future__ import annotations

import glob
import json
import os

import numpy as np
import pytest

import nudask
from nudask.readers.connie.simulate import simulate

JOBS = os.path.join(os.path.dirname(__file__), "..", "jobs")
CHANCE = 1 / 6


@pytest.fixture(scope="module")
def events(tmp_path_factory, client):
    """320 simulated events, ten per amplifier (crops do not reach the neighbours)."""
    out = str(tmp_path_factory.mktemp("connie_train"))
    simulate(out, files=8, events=40, seed=1, nsamp=1)
    files = sorted(glob.glob(os.path.join(out, "events", "*.fits")))
    ds = nudask.preprocess(files, os.path.join(out, "ds"), reader="connie", reader_options={"mode": "events"},
                           events_per_chunk=100, client=client, progress=False)  # fmt: skip
    return ds, out


@pytest.mark.slow
@pytest.mark.long
def test_resnet18_separates_the_classes(events, tmp_path):
    from nudask.train import load, train

    ds, _ = events
    cfg = load(
        os.path.join(JOBS, "train_connie_cnn.yaml"),
        [("data", ds.path), ("input.crop_size", [64, 64]), ("input.downsample", [2, 2]),
         ("model.width", 8), ("model.dense", 32), ("model.batchnorm_momentum", 0.8),
         ("train.learning_rate", 0.003), ("train.epochs", 8), ("train.early_stopping", None),
         ("train.verbose", 0), ("report.event_displays", 2), ("output.runs", str(tmp_path))],
    )  # fmt: skip
    run = train(cfg)
    m = json.loads((run / "metrics.json").read_text())["overall"]
    assert m["events"] == 72 and m["accuracy"] > 3 * CHANCE  # 0.74 when written (chance: 1/6)
    assert (np.diag(m["confusion"]).sum() / np.sum(m["confusion"])) == pytest.approx(m["accuracy"])
    recall = m["recall_per_class"]
    assert recall["muon"] > 0.8 and recall["alpha"] > 0.8


def _feature_run(ds, tmp_path, client, name, grid):
    from nudask.train import load
    from nudask.train.features import train_features

    cfg = load(
        os.path.join(JOBS, "train_connie_xgb.yaml"),
        [("data", ds.path), ("model.name", name), ("features.folds", 3), ("features.grid", grid),
         ("train.verbose", 0), ("report.event_displays", 0), ("output.runs", str(tmp_path))],
    )  # fmt: skip
    return train_features(cfg, client=client)


@pytest.mark.slow
def test_feature_models_search_on_dask_and_reload_without_pickle(events, tmp_path, client):
    from distributed import get_task_stream

    from nudask.train.compare import compare
    from nudask.train.features import evaluate_features

    ds, _ = events
    with get_task_stream(client) as tasks:
        xgb_run = _feature_run(ds, tmp_path, client, "xgboost", {"max_depth": [2, 4], "n_estimators": [30]})
    assert len(tasks.data) >= 2 * 3  # every (grid point, fold) fit ran on the cluster
    rf_run = _feature_run(ds, tmp_path, client, "random_forest", {"n_estimators": [50], "max_depth": [None]})
    for run, model in ((xgb_run, "model.json"), (rf_run, "model.skops")):
        assert (run / model).exists() and not list(run.glob("*.pkl"))
        m = json.loads((run / "metrics.json").read_text())
        assert m["overall"]["events"] == 72 and m["overall"]["accuracy"] > 0.8  # 0.94 / 0.93 when written
        imp = m["feature_importances"]
        assert set(imp) == set(json.loads((run / "dataset.json").read_text())["features"])
        assert sum(imp.values()) == pytest.approx(1, abs=1e-3) and max(imp, key=imp.get) in imp
        assert (run / "plots" / "importances.png").exists() and (run / "plots" / "confusion.png").exists()
        before = (run / "predictions.csv").read_text()
        again = evaluate_features(run)  # the saved model, loaded back (JSON / skops)
        assert (run / "predictions.csv").read_text() == before
        assert again["overall"]["accuracy"] == m["overall"]["accuracy"]
    cv = json.loads((xgb_run / "cv_results.json").read_text())
    assert len(cv["candidates"]) == 2 and all(len(c["folds"]) == 3 for c in cv["candidates"])
    res = compare([xgb_run, rf_run], tmp_path / "cmp")
    assert [r["model"] for r in res["runs"]] == ["xgboost", "random_forest"]
    assert res["test_events"] == 72 and sum(res["per_class_events"].values()) == 72
    assert "| xgboost |" in (tmp_path / "cmp" / "comparison.md").read_text()
