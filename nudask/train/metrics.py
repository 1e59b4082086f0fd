"""Performance figures in plain numpy: classification and regression, overall and binned.

Accuracy is reported twice, as seed 001 does: on the natural test set and
class-balanced (the mean of the per-class recalls, which is the accuracy on
the test set reweighted to equal class sizes; also on a random class-balanced
subsample).
"""

from __future__ import annotations

import numpy as np


def roc_curve(y: np.ndarray, score: np.ndarray):
    """False and true positive rates at every distinct threshold (descending).

    >>> fpr, tpr, thr = roc_curve(np.array([0, 0, 1, 1]), np.array([.1, .4, .35, .8]))
    >>> fpr.tolist(), tpr.tolist()
    ([0.0, 0.0, 0.5, 0.5, 1.0], [0.0, 0.5, 0.5, 1.0, 1.0])
    """
    order = np.argsort(-score, kind="stable")
    s, t = score[order], y[order].astype(bool)
    last = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]
    tp, fp = np.cumsum(t)[last], np.cumsum(~t)[last]
    P, N = max(t.sum(), 1), max((~t).sum(), 1)
    return np.r_[0.0, fp / N], np.r_[0.0, tp / P], np.r_[np.inf, s[last]]


def roc_auc(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve (NaN with a single class).

    >>> roc_auc(np.array([0, 0, 1, 1]), np.array([.1, .4, .35, .8]))
    0.75
    """
    if len(np.unique(y)) < 2:
        return float("nan")
    fpr, tpr, _ = roc_curve(y, score)
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def confusion(y: np.ndarray, pred: np.ndarray, k: int) -> np.ndarray:
    """Counts ``[true, predicted]``.

    >>> confusion(np.array([0, 1, 1]), np.array([0, 0, 1]), 2).tolist()
    [[1, 0], [1, 1]]
    """
    return np.bincount(y * k + pred, minlength=k * k).reshape(k, k)


def _per_class(cm: np.ndarray) -> dict:
    tp = np.diag(cm).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = tp / cm.sum(0)
        recall = tp / cm.sum(1)
        f1 = 2 * precision * recall / (precision + recall)
    return {"precision": precision, "recall": recall, "f1": f1}


def balanced_subset_accuracy(y: np.ndarray, correct: np.ndarray, seed: int = 0) -> float:
    """Accuracy on a random subsample with as many events of each class as the rarest has."""
    rng = np.random.default_rng(seed)
    present = np.unique(y)
    n = min(int((y == c).sum()) for c in present)
    pick = np.concatenate([rng.choice(np.flatnonzero(y == c), n, replace=False) for c in present])
    return float(correct[pick].mean())


def classification(y: np.ndarray, prob: np.ndarray, classes: list[str]) -> dict:
    """Metrics of class probabilities ``prob`` (``(n,)`` for binary: the positive score)."""
    y = np.asarray(y, np.int64)
    binary = prob.ndim == 1
    pred = (prob >= 0.5).astype(np.int64) if binary else prob.argmax(1)
    k = len(classes)
    cm = confusion(y, pred, k)
    pc = _per_class(cm)
    present = cm.sum(1) > 0
    correct = pred == y
    out = {
        "events": int(y.size),
        "accuracy": float(correct.mean()),
        "accuracy_balanced": float(np.nanmean(pc["recall"][present])),
        "accuracy_balanced_subset": balanced_subset_accuracy(y, correct),
        "confusion": cm.tolist(),
        "classes": list(classes),
    }
    if binary:
        out.update(
            precision=float(pc["precision"][1]),
            recall=float(pc["recall"][1]),
            f1=float(pc["f1"][1]),
            roc_auc=roc_auc(y, prob),
            threshold=0.5,
        )
    else:
        aucs = [roc_auc((y == c).astype(int), prob[:, c]) if present[c] else float("nan") for c in range(k)]
        out.update({f"{m}_per_class": dict(zip(classes, np.round(pc[m], 6).tolist())) for m in pc})
        out.update(
            f1_macro=float(np.nanmean(pc["f1"][present])),
            roc_auc_per_class=dict(zip(classes, aucs)),
            roc_auc_macro=float(np.nanmean(aucs)),
        )
    return out


def regression(y: np.ndarray, pred: np.ndarray) -> dict:
    """Resolution (std of (pred - true) / true), bias (its mean), MAE, RMSE.

    >>> r = regression(np.array([1., 2.]), np.array([1.1, 1.8]))
    >>> round(r["bias"], 3), round(r["resolution"], 3)
    (0.0, 0.1)
    """
    rel = (pred - y) / y
    return {
        "events": int(y.size),
        "resolution": float(rel.std()),
        "bias": float(rel.mean()),
        "resolution_68": float(np.diff(np.percentile(rel, [16, 84]))[0] / 2),
        "mae": float(np.abs(pred - y).mean()),
        "rmse": float(np.sqrt(((pred - y) ** 2).mean())),
    }


def energy_edges(energy: np.ndarray, bins: int) -> np.ndarray:
    """Bin edges at quantiles of ``energy`` (equal events per bin), unique.

    >>> energy_edges(np.arange(10.0), 2).tolist()
    [0.0, 4.5, 9.0]
    """
    return np.unique(np.quantile(energy, np.linspace(0, 1, bins + 1)))


def binned(x: np.ndarray, edges: np.ndarray, fn, *columns) -> list[dict]:
    """``fn(*columns[in bin])`` per bin of ``x``, with the bin's range and count."""
    idx = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, len(edges) - 2)
    out = []
    for b in range(len(edges) - 1):
        sel = idx == b
        value = fn(*(c[sel] for c in columns)) if sel.any() else float("nan")
        out.append(
            {"lo": float(edges[b]), "hi": float(edges[b + 1]), "events": int(sel.sum()), "value": value}
        )
    return out


def grouped(groups: np.ndarray, fn, *columns) -> dict:
    """``fn(*columns[group])`` and the count per distinct group."""
    return {
        str(g): {"events": int((groups == g).sum()), "value": fn(*(c[groups == g] for c in columns))}
        for g in np.unique(groups)
        if str(g)
    }


def error_of_mean(p: float, n: int) -> float:
    """Binomial standard error of an accuracy ``p`` over ``n`` events."""
    return float(np.sqrt(max(p * (1 - p), 0) / n)) if n else float("nan")
