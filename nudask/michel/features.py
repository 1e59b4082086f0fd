"""Geometric per-voxel inputs of the Michel network, computed on the host for a whole image.

A Michel electron is recognised by where it is (at the end of a stopping muon) and by the
cluster it belongs to (short, a few tens of MeV), both beyond the reach of a few layers of
16 nearest neighbours. So each voxel also gets, besides its energy, the baseline's view
(:meth:`~.baseline.Baseline.clusters`) and its local shape:

========================  ==============================================================
``bragg_distance``        voxels to the nearest Bragg-peak voxel (capped)
``cluster_voxels``        size of its cluster after the Bragg cut (0: inside the cut)
``cluster_mev``           energy of that cluster
``cluster_touch``         the cluster's closest approach to a Bragg peak
``cluster_extent``        the diagonal of the cluster's bounding box
``density``               voxels within 3 voxels
``linearity``             (l1 - l2) / l1 of the covariance of the 16 nearest voxels
``neighbour_mev``         mean energy of the 16 nearest voxels
``neighbour_reach``       distance to the 16th nearest voxel
========================  ==============================================================

Every value but ``linearity`` goes in as ``log1p``. Computing them costs about 50 ms per
image of 3,500 voxels (one core), a few times less than the network on CPU.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from .baseline import FAR, Baseline

NAMES = (
    "bragg_distance",
    "cluster_voxels",
    "cluster_mev",
    "cluster_touch",
    "cluster_extent",
    "density",
    "linearity",
    "neighbour_mev",
    "neighbour_reach",
)
NEIGHBOURS = 16


def voxel_features(xyz: np.ndarray, energy: np.ndarray, baseline: Baseline | None = None) -> np.ndarray:
    """The (n, len(NAMES)) float32 features of one image's voxels.

    >>> xyz = np.array([[0, 0, 0], [1, 0, 0], [2, 0, 0], [9, 0, 0]], np.float32)
    >>> f = voxel_features(xyz, np.array([5.0, 0.5, 0.5, 0.5], np.float32))
    >>> np.expm1(f[:, NAMES.index("cluster_voxels")]).round().tolist()  # the peak and its cut: 0
    [0.0, 0.0, 0.0, 1.0]
    """
    xyz = np.asarray(xyz, np.float32)
    energy = np.asarray(energy, np.float64)
    n = len(energy)
    out = np.zeros((n, len(NAMES)), np.float32)
    if n == 0:
        return out
    c = (baseline or Baseline()).clusters(xyz, energy)
    size, mev, touch, extent = (np.zeros(n) for _ in range(4))
    if c.rest.size:
        k = c.count
        touch_of = np.full(k, FAR)
        np.minimum.at(touch_of, c.label, c.bragg_distance[c.rest])
        lo = np.full((k, 3), np.inf)
        hi = np.full((k, 3), -np.inf)
        np.minimum.at(lo, c.label, xyz[c.rest])
        np.maximum.at(hi, c.label, xyz[c.rest])
        size[c.rest] = np.bincount(c.label)[c.label]
        mev[c.rest] = np.bincount(c.label, weights=energy[c.rest])[c.label]
        touch[c.rest] = touch_of[c.label]
        extent[c.rest] = np.linalg.norm(hi - lo, axis=1)[c.label]
    tree = cKDTree(xyz)
    density = tree.query_ball_point(xyz, 3.0, return_length=True)
    k = min(NEIGHBOURS, n)
    dist, idx = tree.query(xyz, k=k)
    dist, idx = np.asarray(dist).reshape(n, k), np.asarray(idx).reshape(n, k)
    local = xyz[idx] - xyz[idx].mean(axis=1, keepdims=True)
    eig = np.linalg.eigvalsh(np.einsum("nki,nkj->nij", local, local) / k)  # ascending
    linearity = (eig[:, 2] - eig[:, 1]) / (eig[:, 2] + 1e-6)
    columns = {
        "bragg_distance": c.bragg_distance,
        "cluster_voxels": size,
        "cluster_mev": mev,
        "cluster_touch": touch,
        "cluster_extent": extent,
        "density": density,
        "neighbour_mev": energy[idx].mean(axis=1),
        "neighbour_reach": dist[:, -1],
    }
    for j, name in enumerate(NAMES):
        out[:, j] = linearity if name == "linearity" else np.log1p(columns[name])
    return out
