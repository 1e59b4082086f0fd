"""Plots (PNG, matplotlib Agg) and the summary page of a run (Markdown and HTML).

Each ``plot_*`` function draws one figure into one file; :func:`write_summary`
links every file of the run folder from ``summary.md`` and ``index.html``.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from .metrics import roc_curve


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_history(history: list[dict], folder: Path) -> list[Path]:
    """loss.png (training and validation loss) and metrics.png (the other logged metrics)."""
    epochs = [h["epoch"] for h in history]
    keys = [k for k in history[0] if k not in ("epoch", "seconds") and not k.startswith("val_")]
    out = []
    for name, wanted in (
        ("loss", ["loss"]),
        ("metrics", [k for k in keys if k not in ("loss", "learning_rate")]),
    ):
        fig, ax = plt.subplots(figsize=(6, 4))
        for k in wanted:
            for prefix, style in (("", "-o"), ("val_", "--s")):
                if prefix + k in history[0]:
                    ax.plot(
                        epochs,
                        [h.get(prefix + k, np.nan) for h in history],
                        style,
                        label=("validation " if prefix else "training ") + k,
                    )
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend()
        out.append(_save(fig, folder / f"{name}.png"))
    return out


def plot_confusion(cm: list[list[int]], classes: list[str], path: Path) -> Path:
    counts = np.asarray(cm, float)
    with np.errstate(invalid="ignore"):
        frac = counts / counts.sum(1, keepdims=True)
    fig, ax = plt.subplots(figsize=(1.2 * len(classes) + 3, 1.1 * len(classes) + 2.5))
    im = ax.imshow(np.nan_to_num(frac), cmap="Blues", vmin=0, vmax=1)
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(
                j,
                i,
                f"{np.nan_to_num(frac[i, j]):.2f}\n({int(counts[i, j])})",
                ha="center",
                va="center",
                color="white" if np.nan_to_num(frac[i, j]) > 0.5 else "black",
                fontsize=9,
            )
    ax.set_xticks(range(len(classes)), classes, rotation=30, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("confusion matrix (fraction of each true class)")
    fig.colorbar(im, ax=ax, fraction=0.046)
    return _save(fig, path)


def plot_roc(y: np.ndarray, prob: np.ndarray, classes: list[str], aucs: dict, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(5.5, 5))
    curves = (
        [(classes[1], y, prob)]
        if prob.ndim == 1
        else [
            (c, (y == k).astype(int), prob[:, k])
            for k, c in enumerate(classes)
            if (y == k).any() and (y != k).any()
        ]
    )
    for name, yy, score in curves:
        fpr, tpr, _ = roc_curve(yy, score)
        ax.plot(fpr, tpr, label=f"{name} (AUC {aucs.get(name, float('nan')):.3f})")
    ax.plot([0, 1], [0, 1], ":", color="grey", label="chance")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title("ROC curve" + ("" if prob.ndim == 1 else "s (one class vs the rest)"))
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_scores(y: np.ndarray, score: np.ndarray, classes: list[str], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6, 4))
    for k, name in enumerate(classes):
        if (y == k).any():
            ax.hist(score[y == k], bins=25, range=(0, 1), histtype="step", lw=2, density=True, label=name)
    ax.axvline(0.5, ls=":", color="grey")
    ax.set_xlabel(f"score ({classes[1]})")
    ax.set_ylabel("events (normalised)")
    ax.legend()
    return _save(fig, path)


def plot_binned(
    bins: list[dict],
    series: dict[str, str],
    ylabel: str,
    title: str,
    path: Path,
    errors: dict[str, list[float]] | None = None,
    xlabel: str = "true energy",
) -> Path:
    """Values of ``bins`` (see :func:`metrics.binned`) against true energy; series key -> label."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    x = np.array([(b["lo"] + b["hi"]) / 2 for b in bins])
    xerr = np.array([(b["hi"] - b["lo"]) / 2 for b in bins])
    for key, label in series.items():
        yv = np.array([b["value"][key] if isinstance(b["value"], dict) else b["value"] for b in bins], float)
        ax.errorbar(x, yv, xerr=xerr, yerr=(errors or {}).get(key), fmt="o", capsize=2, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_groups(groups: dict[str, dict], key: str | None, ylabel: str, title: str, path: Path) -> Path:
    names = list(groups)
    values = [g["value"][key] if key else g["value"] for g in groups.values()]
    fig, ax = plt.subplots(figsize=(1.0 * len(names) + 3, 4))
    bars = ax.bar(range(len(names)), values, color="tab:blue")
    for bar, g in zip(bars, groups.values()):
        ax.annotate(
            f"n={g['events']}",
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
            fontsize=8,
        )
    ax.set_xticks(range(len(names)), names, rotation=20, ha="right")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3, axis="y")
    return _save(fig, path)


def plot_regression(y: np.ndarray, pred: np.ndarray, label: str, folder: Path) -> list[Path]:
    fig, ax = plt.subplots(figsize=(5.5, 5))
    lim = (min(y.min(), pred.min()), max(y.max(), pred.max()))
    ax.hist2d(y, pred, bins=40, range=[lim, lim], cmap="viridis", cmin=1)
    ax.plot(lim, lim, "r:")
    ax.set_xlabel(f"true {label}")
    ax.set_ylabel(f"predicted {label}")
    first = _save(fig, folder / "pred_vs_true.png")
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.hist((pred - y) / y, bins=50, color="tab:blue")
    ax.set_xlabel("(predicted - true) / true")
    ax.set_ylabel("events")
    return [first, _save(fig, folder / "residuals.png")]


def plot_events(images: list[dict[str, np.ndarray]], titles: list[str], path: Path) -> Path:
    """One row per event, one panel per view (wire/time views drawn time up)."""
    views = list(images[0])
    fig, axes = plt.subplots(
        len(images), len(views), figsize=(3.2 * len(views), 3.0 * len(images)), squeeze=False
    )
    for row, (imgs, title) in enumerate(zip(images, titles)):
        for col, v in enumerate(views):
            ax = axes[row, col]
            ax.imshow(imgs[v], origin="lower", cmap="viridis", aspect="auto", interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(v if col else f"{title}\n{v}", fontsize=8, loc="left")
    return _save(fig, path)


def plot_importances(importances: dict[str, float], path: Path) -> Path:
    """Horizontal bars of a feature model's importances, largest on top."""
    names, values = list(importances)[::-1], list(importances.values())[::-1]
    fig, ax = plt.subplots(figsize=(6, 0.3 * len(names) + 1.2))
    ax.barh(names, values)
    ax.set_xlabel("importance")
    ax.set_title("feature importances")
    return _save(fig, path)


def _fmt(v) -> str:
    return f"{v:.4f}" if isinstance(v, float) else html.escape(json.dumps(v)) if not isinstance(v, str) else v


def write_summary(run: Path, info: dict, headline: dict, files: list[Path]) -> list[Path]:
    """summary.md and index.html: the run's identity, headline metrics and links to every file."""
    rel = [str(Path(f).relative_to(run)) for f in files]
    pngs = [r for r in rel if r.endswith(".png")]
    md = [f"# {info['title']}", ""] + [f"- **{k}**: {v}" for k, v in info["facts"].items()]
    md += ["", "## Test-set metrics", "", "| metric | value |", "| --- | --- |"]
    md += [f"| {k} | {_fmt(v)} |" for k, v in headline.items()]
    md += ["", "## Files", ""] + [f"- [{r}]({r})" for r in rel] + ["", "## Plots", ""]
    md += [f"![{r}]({r})" for r in pngs]
    (run / "summary.md").write_text("\n".join(md) + "\n")
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{_fmt(v)}</td></tr>" for k, v in headline.items())
    facts = "".join(
        f"<li><b>{html.escape(k)}</b>: {html.escape(str(v))}</li>" for k, v in info["facts"].items()
    )
    links = "".join(f'<li><a href="{r}">{r}</a></li>' for r in rel)
    imgs = "".join(
        f'<figure><img src="{r}" style="max-width:100%"><figcaption>{r}</figcaption></figure>' for r in pngs
    )
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(info['title'])}</title>"
        "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}td{padding:2px 12px}"
        "figure{display:inline-block;margin:8px}</style></head><body>"
        f"<h1>{html.escape(info['title'])}</h1><ul>{facts}</ul><h2>Test-set metrics</h2>"
        f"<table>{rows}</table><h2>Files</h2><ul>{links}</ul><h2>Plots</h2>{imgs}</body></html>"
    )
    (run / "index.html").write_text(page)
    return [run / "summary.md", run / "index.html"]


def write_samples(run: Path, data, n: int) -> list[Path]:
    """``samples/sample_N.png``: the first ``n`` training inputs as the model sees them, with labels."""
    folder = run / "samples"
    folder.mkdir(exist_ok=True)
    source = data.source("train", shuffle=False, densify="host", batch_size=max(n, 1))
    x, y = source.batch(0)[:2]
    rows = source.batch_rows(0)
    out = []
    for k in range(min(n, len(rows))):
        label = y[k]
        text = (
            data.task.classes[int(np.ravel(label)[0])]
            if data.task.kind in ("binary", "classes")
            else np.array2string(np.ravel(label), precision=2)
        )
        title = f"row {int(rows[k])}: {data.task.name} = {text}"
        out.append(
            plot_events([{v: x[v][k, ..., 0] for v in data.preps}], [title], folder / f"sample_{k}.png")
        )
    return out
