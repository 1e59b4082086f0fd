"""A non-learned baseline: a Michel is a short, low-energy cluster touching the end of a track.

On the raw voxels of one image: the Bragg-peak voxels (energy above ``bragg_mev``) mark where
muons stop. They and their neighbours within ``cut`` voxels are taken out, which cuts a
Michel electron off the muon it starts from; DBSCAN (scikit-learn, ``eps`` voxels,
``min_samples`` 1: connected components) then clusters what is left. A cluster is a Michel
when it is short (``min_voxels``..``max_voxels``), carries ``min_mev``..``max_mev`` and
starts within ``touch`` voxels of a Bragg peak.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree


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

    def predict(self, xyz: np.ndarray, energy: np.ndarray) -> np.ndarray:
        """Boolean mask of the voxels called Michel."""
        from sklearn.cluster import DBSCAN

        out = np.zeros(len(energy), bool)
        bragg = np.flatnonzero(energy > self.bragg_mev)
        if bragg.size == 0 or len(energy) < 2:
            return out
        xyz = np.asarray(xyz, np.float32)
        tree = cKDTree(xyz[bragg])
        dist, _ = tree.query(xyz, k=1)
        rest = np.flatnonzero(dist > self.cut)
        if rest.size == 0:
            return out
        cluster = DBSCAN(eps=self.eps, min_samples=1).fit_predict(xyz[rest])
        n = np.bincount(cluster)
        e = np.bincount(cluster, weights=energy[rest])
        near = np.zeros(n.size, bool)
        close = dist[rest] <= self.touch
        near[np.unique(cluster[close])] = True
        ok = (
            near & (n >= self.min_voxels) & (n <= self.max_voxels) & (e >= self.min_mev) & (e <= self.max_mev)
        )
        out[rest[ok[cluster]]] = True
        return out
