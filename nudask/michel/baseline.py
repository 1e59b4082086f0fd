"""A non-learned baseline: a Michel is a short, low-energy cluster touching the end of a track.

On the raw voxels of one image: the Bragg-peak voxels (energy above ``bragg_mev``) mark where
muons stop. They and their neighbours within ``cut`` voxels are taken out, which cuts a
Michel electron off the muon it starts from; DBSCAN (scikit-learn, ``eps`` voxels,
``min_samples`` 1: connected components) then clusters what is left. A cluster is a Michel
when it is short (``min_voxels``..``max_voxels``), carries ``min_mev``..``max_mev`` and
starts within ``touch`` voxels of a Bragg peak.

:meth:`Baseline.clusters` is the shared first step: the point network's geometric input
features (:mod:`nudask.michel.features`) describe the same clusters.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

FAR = 200.0  # voxels: "no Bragg peak near" (distances are capped here)


@dataclass(frozen=True)
class Clusters:
    """The baseline's view of one image: distance of every voxel to the nearest Bragg peak,
    the voxels left after the cut (``rest``, indices) and their cluster labels (0..n-1)."""

    bragg_distance: np.ndarray
    rest: np.ndarray
    label: np.ndarray

    @property
    def count(self) -> int:
        return int(self.label.max()) + 1 if self.label.size else 0


@dataclass(frozen=True)
class Baseline:
    bragg_mev: float = 3.0
    cut: float = 2.5
    eps: float = 1.8
    touch: float = 5.0
    min_voxels: int = 4
    max_voxels: int = 200
    min_mev: float = 3.0
    max_mev: float = 70.0

    def clusters(self, xyz: np.ndarray, energy: np.ndarray) -> Clusters:
        from sklearn.cluster import DBSCAN

        xyz = np.asarray(xyz, np.float32)
        bragg = np.flatnonzero(energy > self.bragg_mev)
        if bragg.size == 0 or len(energy) < 2:
            dist = np.full(len(energy), FAR)
        else:
            dist = np.minimum(cKDTree(xyz[bragg]).query(xyz, k=1)[0], FAR)
        rest = np.flatnonzero(dist > self.cut)
        label = (
            DBSCAN(eps=self.eps, min_samples=1).fit_predict(xyz[rest]) if rest.size else np.zeros(0, np.int64)
        )
        return Clusters(dist, rest, label)

    def predict(self, xyz: np.ndarray, energy: np.ndarray) -> np.ndarray:
        """Boolean mask of the voxels called Michel."""
        out = np.zeros(len(energy), bool)
        c = self.clusters(xyz, energy)
        if c.rest.size == 0 or not np.any(c.bragg_distance < FAR):
            return out
        n = np.bincount(c.label)
        e = np.bincount(c.label, weights=energy[c.rest])
        near = np.zeros(n.size, bool)
        near[np.unique(c.label[c.bragg_distance[c.rest] <= self.touch])] = True
        ok = (
            near & (n >= self.min_voxels) & (n <= self.max_voxels) & (e >= self.min_mev) & (e <= self.max_mev)
        )
        out[c.rest[ok[c.label]]] = True
        return out
