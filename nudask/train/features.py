"""Feature models: scikit-learn Random Forest and XGBoost on metadata columns, in a run folder.

``model.name: random_forest`` or ``xgboost`` trains on the metadata columns named
in ``features.columns`` (per-event numbers a reader wrote: extracted features,
reconstructed quantities) instead of the images. The events, selection,
labels and split are those of :func:`~nudask.train.data.load_data`, so the
test events are the CNN's. The training and validation events together are
searched over ``features.grid`` with stratified k-fold cross-validation
(``features.folds``); every fit of the search is a task on a Dask cluster
(joblib's Dask backend: ``features.scheduler``, or a local cluster), the best
parameters are refitted on all of them and evaluated on the test split.

The run folder is the CNN's (config, provenance, predictions, metrics, plots,
summary page) with ``model.json`` (XGBoost's own JSON model format) or
``model.skops`` (scikit-learn, in the skops format: loaded back without
pickle, only the types it lists as trusted), ``cv_results.json`` (every grid
point's fold scores) and the feature importances in ``metrics.json`` and
``plots/importances.png``.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ConfigError, DataError
from .config import Config, load_file, make_config
from .data import Data, load_data
from .run import new_run_dir, write_json, write_provenance

FEATURE_MODELS = ("random_forest", "xgboost")
MODEL_FILES = {"random_forest": "model.skops", "xgboost": "model.json"}


def feature_columns(data: Data, columns: list[str] | None) -> list[str]:
    """The configured columns (checked: numeric metadata), or every numeric one but ids and truth."""
    meta = data.meta
    numeric = [c for c in meta.columns if pd.api.types.is_numeric_dtype(meta[c]) and meta[c].ndim == 1]
    if columns:
        bad = [c for c in columns if c not in numeric]
        if bad:
            raise ConfigError(
                f"features.columns: {bad} are not numeric metadata columns of '{data.path}'; "
                f"its numeric columns are {numeric}"
            )
        return list(columns)
    roles = load_roles(data)
    truth = {lab.column for lab in roles.labels.values()}
    for q in (roles.energy, roles.particle_energy):
        if q is not None:
            truth.add(q.column)
    skip = {"event_index", *roles.identity, *truth}
    return [c for c in numeric if c not in skip]


def load_roles(data: Data):
    from ..dataset import open_dataset

    return open_dataset(data.path).roles


def estimator(cfg: Config, kind: str, n_classes: int):
    """A fresh scikit-learn-style estimator for ``model.name`` (one thread: the cluster parallelises)."""
    seed = cfg.train.seed
    if cfg.model.name == "xgboost":
        import xgboost as xgb

        if kind == "regression":
            return xgb.XGBRegressor(n_jobs=1, random_state=seed, tree_method="hist")
        return xgb.XGBClassifier(n_jobs=1, random_state=seed, tree_method="hist", eval_metric="logloss")
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

    if kind == "regression":
        return RandomForestRegressor(n_jobs=1, random_state=seed)
    return RandomForestClassifier(n_jobs=1, random_state=seed)


@contextlib.contextmanager
def dask_backend(address: str | None, client=None):
    """joblib's Dask backend on ``client``, the scheduler at ``address``, or a local cluster."""
    import joblib
    from distributed import Client, LocalCluster

    with contextlib.ExitStack() as stack:
        if client is None:
            if address:
                client = stack.enter_context(Client(address))
            else:
                cluster = stack.enter_context(
                    LocalCluster(
                        n_workers=1,
                        threads_per_worker=os.cpu_count() or 1,
                        processes=False,
                        dashboard_address=None,
                    )
                )
                client = stack.enter_context(Client(cluster))
        stack.enter_context(joblib.parallel_backend("dask", client=client))
        yield client


def save_model(model, name: str, run: Path) -> Path:
    path = run / MODEL_FILES[name]
    tmp = path.with_name(f".tmp-{path.name}")
    if name == "xgboost":
        model.save_model(tmp.with_suffix(".json"))  # xgboost picks the format by the suffix
        tmp = tmp.with_suffix(".json")
    else:
        import skops.io as sio

        sio.dump(model, tmp)
    os.replace(tmp, path)
    return path


def load_model(run: Path, name: str):
    """The saved model of a feature run, without pickle."""
    path = Path(run) / MODEL_FILES[name]
    if name == "xgboost":
        import xgboost as xgb

        objective = json.loads(path.read_text())["learner"]["objective"]["name"]
        model = xgb.XGBRegressor() if objective.startswith("reg:") else xgb.XGBClassifier()
        model.load_model(path)
        return model
    import skops.io as sio

    return sio.load(path, trusted=_trusted(path))


def _trusted(path: Path) -> list[str]:
    """The types in a skops file, if all are scikit-learn / numpy ones (else refuse)."""
    import skops.io as sio

    types = sio.get_untrusted_types(file=path)
    bad = [t for t in types if not t.startswith(("sklearn.", "numpy."))]
    if bad:
        raise DataError(f"'{path}' holds types {bad} that are not scikit-learn's: not loaded")
    return types


def _probabilities(model, X: np.ndarray, data: Data) -> np.ndarray:
    task = data.task
    if task.kind == "regression":
        return np.asarray(model.predict(X), np.float64)
    got = np.asarray(model.predict_proba(X), np.float64)
    prob = np.zeros((X.shape[0], task.n_outputs if task.kind == "classes" else 2))
    prob[:, np.asarray(model.classes_, np.int64)] = got
    return prob[:, 1] if task.kind == "binary" else prob


def train_features(
    cfg: Config,
    *,
    config_path: str | None = None,
    argv: list[str] | None = None,
    evaluate: bool = True,
    client=None,
) -> Path:
    """Grid-search, fit and save a feature model into a new run folder (returned)."""
    from sklearn.model_selection import GridSearchCV, KFold, StratifiedKFold

    data = load_data(cfg, images=False)
    cols = feature_columns(data, cfg.features.columns)
    if not cols:
        raise ConfigError(
            f"features.columns: dataset '{data.path}' has no numeric metadata column to learn from"
        )
    run = new_run_dir(cfg, config_path)
    cfg.data = data.path
    record = {**data.record(), "features": cols}
    write_provenance(run, cfg, argv or ["nudask.train.train"], record)
    X = data.meta[cols].to_numpy(np.float64)
    fit_rows = np.sort(np.concatenate([data.rows("train"), data.rows("validation")]))
    y = data.y[fit_rows]
    y = y.astype(np.float64 if data.task.kind == "regression" else np.int64)
    f = cfg.features
    split = (KFold if data.task.kind == "regression" else StratifiedKFold)(
        f.folds, shuffle=True, random_state=cfg.train.seed
    )
    grid = {k: list(v) for k, v in (f.grid or {}).items()}
    scoring = (
        f.scoring if data.task.kind != "regression" or f.scoring != "accuracy" else "neg_mean_squared_error"
    )
    search = GridSearchCV(
        estimator(cfg, data.task.kind, data.task.n_outputs), grid or {}, cv=split, scoring=scoring, n_jobs=-1
    )
    if cfg.train.verbose:
        print(f"nudask.train: run folder {run}\nnudask.train: {json.dumps(data.summary())}", flush=True)
    try:
        with dask_backend(f.scheduler, client):
            search.fit(X[fit_rows], y)
    except ValueError as err:  # e.g. more folds than events of a class
        raise DataError(f"the grid search on '{data.path}' failed: {err}") from None
    save_model(search.best_estimator_, cfg.model.name, run)
    cv = search.cv_results_
    write_json(
        run / "cv_results.json",
        {
            "scoring": scoring,
            "folds": f.folds,
            "best_params": search.best_params_,
            "best_score": float(search.best_score_),
            "candidates": [
                {
                    "params": cv["params"][k],
                    "mean": float(cv["mean_test_score"][k]),
                    "std": float(cv["std_test_score"][k]),
                    "folds": [float(cv[f"split{j}_test_score"][k]) for j in range(f.folds)],
                }
                for k in range(len(cv["params"]))
            ],
        },
    )
    write_json(
        run / "checkpoints" / "state.json",
        {"epoch": 1, "epochs": 1, "monitor": scoring, "best": float(search.best_score_), "best_epoch": 1},
    )
    if evaluate:
        evaluate_features(run, data=data, model=search.best_estimator_)
    return run


def evaluate_features(
    run: str | Path, *, data: Data | None = None, model=None, data_path: str | None = None
) -> dict:
    """Predict the test split with a feature run's model; metrics, importances, plots, summary."""
    from . import assess, report

    run = Path(run)
    cfg = make_config(load_file(run / "config.yaml"))
    data = data or load_data(cfg, data_path, images=False)
    cols = json.loads((run / "dataset.json").read_text())["features"]
    model = model if model is not None else load_model(run, cfg.model.name)
    rows = data.rows("test")
    prob = _probabilities(model, data.meta[cols].to_numpy(np.float64)[rows], data)
    df = assess.predictions(data, rows, prob)
    df.to_csv(run / "predictions.csv", index=False)
    res = assess.metrics(data, df, prob)
    res["model"] = MODEL_FILES[cfg.model.name]
    res["dataset_matches_run"] = (
        json.loads((run / "dataset.json").read_text())["manifest_sha256"] == data.checksum
    )
    importance = np.asarray(model.feature_importances_, np.float64)
    res["feature_importances"] = dict(sorted(zip(cols, importance.round(6).tolist()), key=lambda kv: -kv[1]))
    cvr = json.loads((run / "cv_results.json").read_text())
    res["cross_validation"] = {k: cvr[k] for k in ("scoring", "folds", "best_params", "best_score")}
    write_json(run / "metrics.json", res)
    files = assess.plots(run, data, df, prob, res)
    files.append(report.plot_importances(res["feature_importances"], run / "plots" / "importances.png"))
    info = {
        "title": f"nudask run {run.parent.name}/{run.name}: {data.task.name} ({data.task.kind})",
        "facts": {
            "dataset": data.path,
            "format": data.fmt,
            "model": f"{cfg.model.name} on {len(cols)} features, {res['model']} "
            f"(best of the grid by {cvr['folds']}-fold {cvr['scoring']}: {cvr['best_params']}, "
            f"{cvr['best_score']:.4f})",
            "events (train + validation / test)": f"{data.rows('train').size + data.rows('validation').size}"
            f"/{rows.size}",
            "dataset unchanged since training": res["dataset_matches_run"],
        },
    }
    files += [
        run / n
        for n in (
            "config.yaml",
            "command.txt",
            "environment.json",
            "dataset.json",
            "cv_results.json",
            MODEL_FILES[cfg.model.name],
            "metrics.json",
            "predictions.csv",
        )
        if (run / n).exists()
    ]
    report.write_summary(run, info, assess.headline(res), files)
    return res
