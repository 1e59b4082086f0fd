"""Agreement between annotators: Cohen's and Fleiss' kappa, per-class agreement, consensus.

Ratings are given as a count table ``counts[i, j]``: how many annotators put
event ``i`` in class ``j`` (Fleiss, per-class agreement), or as two label
sequences over the same events (Cohen).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def cohen_kappa(a: Sequence[str], b: Sequence[str]) -> float:
    """Cohen's kappa of two annotators' labels of the same events; NaN if undefined.

    >>> cohen_kappa(["y"] * 25 + ["n"] * 25, ["y"] * 20 + ["n"] * 5 + ["y"] * 10 + ["n"] * 15)
    0.4
    """
    if len(a) != len(b):
        raise ValueError(f"cohen_kappa: {len(a)} labels against {len(b)}")
    if not len(a):
        return float("nan")
    classes, codes = np.unique(np.concatenate([np.asarray(a, str), np.asarray(b, str)]), return_inverse=True)
    x, y = codes[: len(a)], codes[len(a) :]
    observed = float(np.mean(x == y))
    pa = np.bincount(x, minlength=len(classes)) / len(x)
    pb = np.bincount(y, minlength=len(classes)) / len(y)
    expected = float(pa @ pb)
    if expected == 1.0:
        return float("nan")
    return round((observed - expected) / (1 - expected), 12)


def fleiss_kappa(counts: np.ndarray) -> float:
    """Fleiss' kappa of a ``(events, classes)`` count table; events with under two ratings are left out.

    Events may have different numbers of ratings (each event's agreement is
    over its own pairs); with the same number everywhere this is Fleiss (1971).
    NaN if undefined.
    """
    counts = np.asarray(counts, np.float64)
    n = counts.sum(1)
    counts, n = counts[n >= 2], n[n >= 2]
    if not len(counts):
        return float("nan")
    p_event = ((counts * (counts - 1)).sum(1)) / (n * (n - 1))
    share = counts.sum(0) / counts.sum()
    observed, expected = float(p_event.mean()), float((share**2).sum())
    if expected == 1.0:
        return float("nan")
    return (observed - expected) / (1 - expected)


def class_agreement(counts: np.ndarray) -> np.ndarray:
    """Per class: of the pairs of ratings of one event that start with this class, the share that
    end with it too (specific agreement; for two annotators ``2a / (2a + b + c)``). NaN: no pairs.
    """
    counts = np.asarray(counts, np.float64)
    n = counts.sum(1, keepdims=True)
    pairs = (counts * (n - 1)).sum(0)
    agree = (counts * (counts - 1)).sum(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(pairs > 0, agree / pairs, np.nan)


def majority(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per event: the index of the class most annotators chose (-1 when none) and whether it is a tie.

    >>> majority(np.array([[2, 1, 0], [1, 1, 0], [0, 0, 0]]))
    (array([ 0, -1, -1]), array([False,  True, False]))
    """
    counts = np.asarray(counts)
    if counts.shape[1] == 0:
        return np.full(len(counts), -1), np.zeros(len(counts), bool)
    top = counts.max(1)
    tie = (counts == top[:, None]).sum(1) > 1
    tie &= top > 0
    best = np.where((top > 0) & ~tie, counts.argmax(1), -1)
    return best, tie
