"""The challenge's score: F1 over voxels, pooled over all images, and per image.

A voxel is a (image, row) pair. Pooled: ``tp`` = the rows of a solution that are Michel
voxels in the labels, ``precision = tp / predicted``, ``recall = tp / true``,
``F1 = 2 tp / (predicted + true)``. A row given twice counts once; a row outside its image
is an error. Per image the same, with F1 = 1 for an image with nothing true and nothing
predicted (NaN precision or recall where their denominator is 0).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import h5py
import numpy as np

from ..errors import InputError
from . import MICHEL

READ_IMAGES = 10_000  # images per h5py read: a 1M-image file is never read whole


@dataclass(frozen=True)
class Score:
    tp: int
    predicted: int
    true: int

    @property
    def precision(self) -> float:
        return self.tp / self.predicted if self.predicted else float("nan")

    @property
    def recall(self) -> float:
        return self.tp / self.true if self.true else float("nan")

    @property
    def f1(self) -> float:
        total = self.predicted + self.true
        return 2 * self.tp / total if total else 1.0


def counts(rows: np.ndarray, labels: np.ndarray, *, where: str = "") -> tuple[int, int, int]:
    """``(tp, predicted, true)`` of one image's solution ``rows`` against its ``labels``.

    >>> counts(np.array([3, 1, 1]), np.array([0, 2, 1, 2, 2]))
    (2, 2, 3)
    """
    rows = np.unique(np.asarray(rows, np.int64))
    if rows.size and (rows[0] < 0 or rows[-1] >= labels.size):
        raise InputError(where or "solution", f"rows {rows.min()}..{rows.max()} outside 0..{labels.size - 1}")
    truth = labels == MICHEL
    return int(truth[rows].sum()), int(rows.size), int(truth.sum())


def vlen_dataset(f: h5py.File, path: str, name: str | None) -> h5py.Dataset:
    """The vlen dataset ``name`` of ``f``; without a name, the file's only dataset."""
    if name is None:
        names = [k for k, v in f.items() if isinstance(v, h5py.Dataset)]
        if len(names) != 1:
            raise InputError(path, f"holds datasets {names}", "name the solution's with --dataset NAME")
        name = names[0]
    d = f.get(name)
    if not isinstance(d, h5py.Dataset) or h5py.check_vlen_dtype(d.dtype) is None or d.ndim != 1:
        raise InputError(path, f"no variable-length dataset '{name}'", "check --dataset")
    return d


def score_files(
    solution: str | os.PathLike, labels: str | os.PathLike, *, dataset: str | None = None
) -> tuple[Score, np.ndarray]:
    """Pooled :class:`Score` and per-image ``(tp, predicted, true)`` rows of a solution file."""
    solution, labels = os.fspath(solution), os.fspath(labels)
    for p in (solution, labels):
        if not os.path.exists(p):
            raise InputError(p, "no such file", "check the path")
    with h5py.File(solution, "r") as fs, h5py.File(labels, "r") as fl:
        sol = vlen_dataset(fs, solution, dataset)
        lab = vlen_dataset(fl, labels, "labels")
        n = lab.shape[0]
        if sol.shape[0] != n:
            raise InputError(
                solution, f"has {sol.shape[0]} images but '{labels}' has {n}", "one array per image, in order"
            )
        per_image = np.zeros((n, 3), np.int64)
        for a in range(0, n, READ_IMAGES):
            b = min(a + READ_IMAGES, n)
            for k, (rows, lab_k) in enumerate(zip(sol[a:b], lab[a:b])):
                per_image[a + k] = counts(rows, lab_k, where=f"{solution} image {a + k}")
    tp, pred, true = per_image.sum(axis=0)
    return Score(int(tp), int(pred), int(true)), per_image


def format_report(total: Score, per_image: np.ndarray, *, images: bool = True) -> str:
    lines = [
        f"pooled over {len(per_image)} images: F1 {total.f1:.4f}  precision {total.precision:.4f}  "
        f"recall {total.recall:.4f}  (tp {total.tp}, predicted {total.predicted}, true {total.true})"
    ]
    f1s = np.array([Score(*map(int, r)).f1 for r in per_image])
    lines.append(f"per image: mean F1 {f1s.mean():.4f}, median {np.median(f1s):.4f}")
    if images:
        lines.append("image      tp  predicted   true      F1  precision  recall")
        for i, r in enumerate(per_image):
            s = Score(*map(int, r))
            lines.append(
                f"{i:5d}  {s.tp:6d}  {s.predicted:9d}  {s.true:5d}  {s.f1:6.4f}  "
                f"{s.precision:9.4f}  {s.recall:6.4f}"
            )
    return "\n".join(lines)
