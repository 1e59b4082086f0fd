"""Class balancing of the training rows: resampling per epoch, or class weights.

Seeds 001 and 003 train on balanced sets; undersampling keeps as many events
of each class as the rarest has, oversampling repeats events of the rarer
classes up to the commonest's count (a new draw every epoch, so
undersampling sees all events over the epochs). Class weights keep every
event once and weight the loss by ``n / (k * n_class)``.
"""

from __future__ import annotations

import numpy as np


def class_counts(y: np.ndarray, n_classes: int) -> np.ndarray:
    """Events per class.

    >>> class_counts(np.array([0, 1, 1, 3]), 4).tolist()
    [1, 2, 0, 1]
    """
    return np.bincount(np.asarray(y, np.int64), minlength=n_classes)


def resample(rows: np.ndarray, y: np.ndarray, mode: str, rng: np.random.Generator) -> np.ndarray:
    """Rows after under- or oversampling to equal class counts (classes present only).

    >>> rows, y = np.arange(6), np.array([0, 0, 0, 0, 1, 1])
    >>> np.bincount(y[resample(rows, y, "undersample", np.random.default_rng(0))]).tolist()
    [2, 2]
    >>> np.bincount(y[resample(rows, y, "oversample", np.random.default_rng(0))]).tolist()
    [4, 4]
    """
    y = np.asarray(y, np.int64)
    present = np.unique(y)
    groups = [rows[y == c] for c in present]
    sizes = [g.size for g in groups]
    out = []
    if mode == "undersample":
        n = min(sizes)
        out = [rng.choice(g, n, replace=False) for g in groups]
    elif mode == "oversample":
        n = max(sizes)
        out = [np.concatenate([g, rng.choice(g, n - g.size, replace=True)]) for g in groups]
    else:
        raise ValueError(f"unknown resampling mode {mode!r}")
    return np.sort(np.concatenate(out))


def class_weights(y: np.ndarray, n_classes: int) -> np.ndarray:
    """Weight per class, ``n / (k * n_class)`` over the ``k`` classes present (0 for absent ones).

    >>> class_weights(np.array([0, 0, 0, 1]), 2).tolist()
    [0.6666666666666666, 2.0]
    """
    counts = class_counts(y, n_classes)
    k = int((counts > 0).sum())
    with np.errstate(divide="ignore"):
        w = np.where(counts > 0, counts.sum() / (k * np.maximum(counts, 1)), 0.0)
    return w
