"""Assessing predictions of a test split: the predictions table, metrics, plots, headline.

Shared by every model family (Keras networks in :mod:`~nudask.train.evaluate`, feature
models in :mod:`~nudask.train.features`), so that their reports compare like with like.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..display import display_array
from ..roles import roles_of
from . import metrics as M
from . import report
from .data import Data


def predictions(data: Data, rows: np.ndarray, prob: np.ndarray) -> pd.DataFrame:
    df = data.meta.iloc[rows][["run", "subrun", "event"]].reset_index(drop=True)
    t = data.truth.iloc[rows].reset_index(drop=True)
    df = pd.concat([df, t[["category", "mode", "energy", "lep_energy"]]], axis=1)
    task = data.task
    if task.kind != "vector":
        df["label"] = data.y[rows]
    if task.kind == "binary":
        df["score"] = prob
        df["predicted"] = (prob >= 0.5).astype(int)
    elif task.kind == "classes":
        for k, c in enumerate(task.classes):
            df[f"p_{c}"] = prob[:, k]
        df["predicted"] = prob.argmax(1)
    elif task.kind == "vector":
        from .vectors import angles

        true = np.asarray(data.y[rows], np.float64)
        for k in range(task.dims):
            df[f"true_{k}"], df[f"pred_{k}"] = true[:, k], prob[:, k]
        df["angle"] = angles(true, prob, axial=data.cfg.task.axial)
        df["label"] = df["angle"]  # what a display and the binned plots show
    else:
        df["prediction"] = prob
    return df


def metrics(data: Data, df: pd.DataFrame, prob: np.ndarray) -> dict:
    task, bins = data.task, data.cfg.report.energy_bins
    energy, cat, mode = df["energy"].to_numpy(), df["category"].to_numpy(), df["mode"].to_numpy()
    out: dict = {"task": task.name, "kind": task.kind, "split": "test"}
    pos = energy > 0
    edges = M.energy_edges(energy[pos], bins) if pos.sum() > 1 else np.array([0.0, 1.0])
    if task.kind == "vector":
        from . import vectors

        true = df[[f"true_{k}" for k in range(task.dims)]].to_numpy()
        axial = data.cfg.task.axial
        out["overall"] = vectors.metrics(true, prob, axial)
        a = df["angle"].to_numpy()
        out["vs_energy"] = M.binned(energy[pos], edges, vectors.containment, a[pos])
        out["by_category"] = M.grouped(cat, vectors.containment, a)
        return out
    if task.kind == "regression":
        y, pred = df["label"].to_numpy(float), prob

        def res(a, b):
            r = M.regression(a, b)
            return {"resolution": r["resolution"], "bias": r["bias"]}

        out["overall"] = M.regression(y, pred)
        out["by_category"] = M.grouped(cat, res, y, pred)
        out["vs_energy"] = M.binned(energy, edges, res, y, pred)
    else:
        y = df["label"].to_numpy(np.int64)
        out["overall"] = M.classification(y, prob, list(task.classes))
        correct = (df["predicted"].to_numpy() == y).astype(float)
        out["by_category"] = M.grouped(cat, lambda c: float(c.mean()), correct)
        out["vs_energy"] = M.binned(energy[pos], edges, lambda c: float(c.mean()), correct[pos])
    if (mode != "").any():
        key = "resolution" if task.kind == "regression" else None
        out["by_mode"] = (
            M.grouped(mode, res, y, pred) if key else M.grouped(mode, lambda c: float(c.mean()), correct)
        )
    return out


def displays(data: Data, df: pd.DataFrame, n: int) -> tuple[list[dict], list[str]]:
    source = data.source("test", shuffle=False, densify="host", batch_size=max(n, 1))
    x = source.batch(0)[0]
    images, titles = [], []
    for k in range(min(n, len(df))):
        images.append({v: display_array(x[v][k, ..., 0], data.views[v]) for v in data.preps})
        r = df.iloc[k]
        pred = (
            f"angle {r['angle']:.0f} deg"
            if "angle" in r
            else f"score {r['score']:.2f}"
            if "score" in r
            else f"pred {r['prediction']:.2f}"
            if "prediction" in r
            else f"pred {data.task.classes[int(r['predicted'])]}"
        )
        truth = (
            data.task.classes[int(r["label"])]
            if not data.task.numeric
            else "direction"
            if data.task.kind == "vector"
            else f"{r['label']:.2f}"
        )
        titles.append(
            f"{r['run']}/{r['subrun']}/{r['event']} {r['category']} E={r['energy']:.2f}\ntrue {truth}, {pred}"
        )
    return images, titles


def plots(run: Path, data: Data, df: pd.DataFrame, prob: np.ndarray, res: dict) -> list[Path]:
    plots, task = run / "plots", data.task
    energy = roles_of(data.manifest).energy if data.manifest else None  # the axis names its role
    energy_label = f"true energy, {energy.column} [{energy.unit}]" if energy else "true energy"
    files: list[Path] = []
    history = json.loads((run / "history.json").read_text()) if (run / "history.json").exists() else []
    if history:
        files += report.plot_history(history, plots)
    if task.kind == "vector":
        from .vectors import plot_angles

        files.append(plot_angles(df["angle"].to_numpy(), data.cfg.task.axial, plots / "angles.png"))
        files.append(
            report.plot_binned(
                res["vs_energy"],
                {"angle_68": "68 % containment"},
                "angle (deg)",
                "68 % containment angle against true energy",
                plots / "angle_vs_energy.png",
                xlabel=energy_label,
            )
        )
    elif task.kind == "regression":
        y = df["label"].to_numpy(float)
        files += report.plot_regression(y, prob, task.name.replace("_", " "), plots)
        files.append(
            report.plot_binned(
                res["vs_energy"],
                {"resolution": "resolution", "bias": "bias"},
                "(pred - true) / true",
                "resolution and bias",
                plots / "resolution_vs_energy.png",
                xlabel=energy_label,
            )
        )
        files.append(
            report.plot_groups(
                res["by_category"],
                "resolution",
                "resolution",
                "resolution per interaction category",
                plots / "resolution_by_category.png",
            )
        )
    else:
        y, o = df["label"].to_numpy(np.int64), res["overall"]
        files.append(report.plot_confusion(o["confusion"], list(task.classes), plots / "confusion.png"))
        aucs = {task.classes[1]: o["roc_auc"]} if task.kind == "binary" else o["roc_auc_per_class"]
        files.append(report.plot_roc(y, prob, list(task.classes), aucs, plots / "roc.png"))
        if task.kind == "binary":
            files.append(report.plot_scores(y, prob, list(task.classes), plots / "scores.png"))
        err = [M.error_of_mean(b["value"], b["events"]) for b in res["vs_energy"]]
        files.append(
            report.plot_binned(
                res["vs_energy"],
                {"accuracy": "accuracy"},
                "accuracy",
                "accuracy against true energy",
                plots / "accuracy_vs_energy.png",
                {"accuracy": err},
                xlabel=energy_label,
            )
        )
        files.append(
            report.plot_groups(
                res["by_category"],
                None,
                "accuracy",
                "accuracy per interaction category (CC/NC x flavour)",
                plots / "accuracy_by_category.png",
            )
        )
        if "by_mode" in res:
            files.append(
                report.plot_groups(
                    res["by_mode"],
                    None,
                    "accuracy",
                    "accuracy per interaction mode",
                    plots / "accuracy_by_mode.png",
                )
            )
    if data.cfg.report.event_displays > 0:
        images, titles = displays(data, df, data.cfg.report.event_displays)
        files.append(report.plot_events(images, titles, plots / "events.png"))
    return files


def headline(res: dict) -> dict:
    o = res["overall"]
    keys = (
        ("events", "sign", "angle_68", "angle_median", "angle_68_signed", "angle_68_axial", "mean_cos")
        if res["kind"] == "vector"
        else ("events", "resolution", "bias", "resolution_68", "mae", "rmse")
        if res["kind"] == "regression"
        else (
            "events",
            "accuracy",
            "accuracy_balanced",
            "accuracy_balanced_subset",
            "precision",
            "recall",
            "f1",
            "roc_auc",
            "f1_macro",
            "roc_auc_macro",
        )
    )
    return {k: o[k] for k in keys if k in o}
