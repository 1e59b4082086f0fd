"""Runs side by side on the same test split: ``python -m nudask.train.compare RUN RUN ... --out DIR``.

Reads each run's ``metrics.json`` and ``predictions.csv`` (a CNN's, a feature
model's: any classification run), checks that they predicted the same test
events (the same event ids) for the same task and classes, and writes
``comparison.json``, ``comparison.md``, ``index.html`` and
``per_class.png`` into ``DIR``: accuracy natural and class-balanced, and the
accuracy (recall) per class of every run, and how often the runs agree.
"""

from __future__ import annotations

import argparse
import html
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError, exit_on_error
from .run import run_folder

ID = ["run", "subrun", "event"]


def _load(run: Path) -> tuple[dict, pd.DataFrame, str]:
    run = run_folder(run)
    if not (run / "metrics.json").exists():
        raise DataError(
            f"run '{run}' has no metrics.json: evaluate it first (python -m nudask.evaluate {run})"
        )
    metrics = json.loads((run / "metrics.json").read_text())
    if metrics.get("kind") == "regression":
        raise DataError(f"run '{run}' is a regression; the comparison is of classifiers")
    import yaml

    name = yaml.safe_load((run / "config.yaml").read_text())["model"]["name"]
    pred = pd.read_csv(run / "predictions.csv").sort_values(ID).reset_index(drop=True)
    return metrics, pred, name


def compare(runs: list[str | Path], out: str | Path) -> dict:
    """Compare classification runs on their (common) test split; returns what comparison.json holds."""
    if len(runs) < 2:
        raise DataError("name at least two run folders to compare")
    loaded = [(Path(r), *_load(Path(r))) for r in runs]
    first_run, first, first_pred, _ = loaded[0]
    for run, m, pred, _ in loaded[1:]:
        if m["task"] != first["task"] or m["overall"]["classes"] != first["overall"]["classes"]:
            raise DataError(
                f"runs '{first_run}' and '{run}' learned different tasks "
                f"({first['task']} {first['overall']['classes']} vs {m['task']} {m['overall']['classes']})"
            )
        if not pred[ID].equals(first_pred[ID]):
            raise DataError(
                f"runs '{first_run}' and '{run}' were tested on different events: use the same "
                "dataset, task.select and split settings"
            )
    classes = first["overall"]["classes"]
    rows = []
    for run, m, pred, name in loaded:
        o = m["overall"]
        recall = o.get("recall_per_class") or {
            c: float(np.mean(pred["predicted"][pred["label"] == k] == k)) for k, c in enumerate(classes)
        }
        rows.append(
            {
                "model": name,
                "run": str(run),
                "events": o["events"],
                "accuracy": o["accuracy"],
                "accuracy_balanced": o["accuracy_balanced"],
                "per_class": {c: recall[c] for c in classes},
            }
        )
    predicted = np.stack([p["predicted"].to_numpy() for _, _, p, _ in loaded])
    result = {
        "task": first["task"],
        "classes": classes,
        "test_events": len(first_pred),
        "per_class_events": {c: int((first_pred["label"] == k).sum()) for k, c in enumerate(classes)},
        "runs": rows,
        "all_agree": float((predicted == predicted[0]).all(axis=0).mean()),
    }
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "comparison.json").write_text(json.dumps(result, indent=1) + "\n")
    head = ["model", "accuracy", "balanced", *classes]
    table = [head] + [
        [r["model"], f"{r['accuracy']:.3f}", f"{r['accuracy_balanced']:.3f}"]
        + [f"{r['per_class'][c]:.3f}" for c in classes]
        for r in rows
    ]
    agree = (
        f"Test events per class: {result['per_class_events']}; all models agree on "
        f"{100 * result['all_agree']:.1f} % of them."
    )
    md = [
        f"# {first['task']}: {len(rows)} models on the same {result['test_events']} test events",
        "",
        "| " + " | ".join(table[0]) + " |",
        "|" + " --- |" * len(head),
        *("| " + " | ".join(t) + " |" for t in table[1:]),
        "",
        agree,
        "",
        "| run | model |",
        "| --- | --- |",
        *(f"| {r['run']} | {r['model']} |" for r in rows),
        "",
        "![per class](per_class.png)",
    ]
    (out / "comparison.md").write_text("\n".join(md) + "\n")
    cells = "".join(
        "<tr>"
        + "".join(f"<{'th' if k == 0 else 'td'}>{html.escape(v)}</{'th' if k == 0 else 'td'}>" for v in t)
        + "</tr>"
        for k, t in enumerate(table)
    )
    (out / "index.html").write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>comparison</title>"
        "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}td,th{padding:2px 10px}</style>"
        f"</head><body><h1>{html.escape(md[0][2:])}</h1><table>{cells}</table>"
        f"<p>{html.escape(agree)}</p>"
        "<img src='per_class.png' style='max-width:100%'></body></html>"
    )
    _plot(rows, classes, out / "per_class.png")
    return result


def _plot(rows: list[dict], classes: list[str], path: Path) -> None:
    from .report import _save, plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    width = 0.8 / len(rows)
    for k, r in enumerate(rows):
        x = np.arange(len(classes)) + (k - (len(rows) - 1) / 2) * width
        ax.bar(x, [r["per_class"][c] for c in classes], width, label=f"{r['model']} ({r['accuracy']:.2f})")
    ax.set_xticks(np.arange(len(classes)), classes, rotation=20)
    ax.set_ylabel("accuracy per class (recall)")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=8)
    _save(fig, path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m nudask.train.compare", description=(__doc__ or "").split("\n")[0]
    )
    p.add_argument("runs", nargs="+", help="run folders (classification, the same test split)")
    p.add_argument("--out", required=True, help="folder for comparison.json / .md, index.html, per_class.png")
    args = p.parse_args(argv)
    with exit_on_error("nudask.train.compare"):
        res = compare(args.runs, args.out)
        for r in res["runs"]:
            print(
                f"{r['model']:>14}  accuracy {r['accuracy']:.3f}  "
                f"balanced {r['accuracy_balanced']:.3f}  {r['run']}"
            )
        print(f"report: {Path(args.out) / 'index.html'}")
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
