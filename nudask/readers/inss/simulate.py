"""Simulated "Find Michels" images: muons, Michel electrons, showers, delta rays, scatters.

A toy detector of 768^3 voxels of 3 mm in liquid argon (the voxel size is an assumption:
the challenge does not state it). Per image:

* 1-4 muons from random points in random directions; about half stop inside the volume,
  with a Bragg rise (dE/dx = 8 r^-0.37 MeV/cm, r the residual range in cm) and multiple
  scattering that grows near the end. A stopping muon decays (probability ``michel_fraction``)
  into a Michel electron: energy from the V-A spectrum (:func:`michel_energy`, no radiative
  corrections), a short wiggly track from the muon's end at 2.1 MeV/cm, and bremsstrahlung
  photons that deposit away from it, labelled shower as in the challenge's truth.
* 0-3 stopping protons (dE/dx = 17 r^-0.42 MeV/cm): Bragg peaks without a Michel.
* 1-3 electromagnetic showers: branching wiggly electron segments around an axis, with a
  longitudinal gamma profile (X0 = 14 cm).
* delta rays along the muons (short tracks of 1-8 MeV) and low-energy scatters (isolated
  0.1-1 MeV deposits near the tracks).

Depositions are binned into voxels (energy summed, the label of the largest contribution),
smeared by 5 %, and voxels under 0.05 MeV are dropped.
"""

from __future__ import annotations

import os

import h5py
import numpy as np

GRID = 768
VOXEL_CM = 0.3
MICHEL_MAX = 52.83  # MeV, the endpoint (m_mu / 2)
SHOWER, TRACK, MICHEL, DELTA, SCATTER = 0, 1, 2, 3, 4
CLASSES = ("shower", "track", "michel", "delta", "scatter")
STEP = 0.5  # voxels per simulation step


def michel_energy(rng: np.random.Generator, n: int) -> np.ndarray:
    """Michel electron energies (MeV): the V-A spectrum x^2 (3 - 2x), x = E / 52.83, by rejection.

    >>> e = michel_energy(np.random.default_rng(0), 20000)
    >>> bool(0 < e.min() and e.max() <= MICHEL_MAX), round(float(e.mean() / MICHEL_MAX), 2)
    (True, 0.7)
    """
    out = np.empty(0)
    while out.size < n:
        x = rng.random(2 * n + 16)
        keep = rng.random(x.size) * 1.0 < x**2 * (3 - 2 * x)  # the density's maximum is 1 (x = 1)
        out = np.concatenate([out, x[keep]])
    return out[:n] * MICHEL_MAX


def _unit(rng, n=1):
    v = rng.normal(size=(n, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _path(rng, start, direction, n_steps, sigma):
    """Points of a wiggly path: the direction random-walks with ``sigma`` (per step, array ok)."""
    n_steps = max(int(n_steps), 1)
    kicks = rng.normal(size=(n_steps, 3)) * np.broadcast_to(np.asarray(sigma, float), (n_steps,))[:, None]
    dirs = direction[None, :] + np.cumsum(kicks, axis=0)
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    return start[None, :] + np.cumsum(dirs * STEP, axis=0), dirs[-1]


def _exit_distance(start, direction):
    """Distance (voxels) from ``start`` along ``direction`` to the grid's boundary."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(
            direction > 0, (GRID - 1 - start) / direction, np.where(direction < 0, -start / direction, np.inf)
        )
    return float(np.min(t))


class _Deposits:
    def __init__(self):
        self.points, self.energy, self.label = [], [], []

    def add(self, points, energy, label):
        self.points.append(np.asarray(points, float).reshape(-1, 3))
        self.energy.append(np.broadcast_to(np.asarray(energy, float), (len(self.points[-1]),)))
        self.label.append(np.full(len(self.points[-1]), label, np.int32))


def _michel(rng, dep, start, e_mev):
    """A Michel electron of ``e_mev`` from ``start``: a wiggly track plus brems photons."""
    n_photons = rng.poisson(e_mev / 25.0)
    photon_e = e_mev * rng.uniform(0.05, 0.35, n_photons) if n_photons else np.zeros(0)
    photon_e = photon_e[: max(int(np.searchsorted(np.cumsum(photon_e), 0.6 * e_mev)), 0)]
    e_track = e_mev - photon_e.sum()
    n_steps = e_track / (2.1 * VOXEL_CM * STEP)
    points, _ = _path(rng, start, _unit(rng)[0], n_steps, 0.12)
    dep.add(points, e_track / len(points), MICHEL)
    for e in photon_e:  # converts or scatters some 20 cm away, deposits as a small shower
        where = start + _unit(rng)[0] * rng.exponential(60.0)
        blob = where + rng.normal(0, 1.5, (max(int(e / 0.6), 1), 3))
        dep.add(blob, e / len(blob), SHOWER)


def _muon(rng, dep, michel_fraction):
    start = rng.uniform(40, GRID - 40, 3)
    direction = _unit(rng)[0]
    exit_at = _exit_distance(start, direction)
    stops = rng.random() < 0.5 and exit_at > 60
    length = rng.uniform(60, min(exit_at, 700)) if stops else exit_at
    n = max(int(length / STEP), 2)
    residual_cm = (length - STEP * np.arange(n)) * VOXEL_CM if stops else np.full(n, 1e3)
    sigma = 0.002 + 0.05 / np.sqrt(np.maximum(residual_cm, 0.3))  # scattering grows at the end
    points, _ = _path(rng, start, direction, n, sigma)
    dedx = np.minimum(8.0 * np.maximum(residual_cm, 0.15) ** -0.37, 30.0)
    dedx = np.maximum(dedx, 2.1) * rng.gamma(8.0, 1 / 8.0, n)  # Landau-ish fluctuations
    dep.add(points, dedx * VOXEL_CM * STEP, TRACK)
    for k in rng.integers(0, n, rng.poisson(length / 120)):  # delta rays
        e = rng.uniform(1.0, 8.0)
        delta, _ = _path(rng, points[k], _unit(rng)[0], e / (2.1 * VOXEL_CM * STEP), 0.08)
        dep.add(delta, e / len(delta), DELTA)
    for k in rng.integers(0, n, rng.poisson(length / 40)):  # low-energy scatters near the track
        dep.add(points[k] + rng.normal(0, 12, 3), rng.uniform(0.1, 1.0), SCATTER)
    if stops and rng.random() < michel_fraction:
        _michel(rng, dep, points[-1], float(michel_energy(rng, 1)[0]))


def _proton(rng, dep):
    """A stopping proton: short, straight, heavily ionising, labelled track, no Michel."""
    start = rng.uniform(40, GRID - 40, 3)
    length = rng.uniform(8, 120)
    n = max(int(length / STEP), 2)
    residual_cm = (length - STEP * np.arange(n)) * VOXEL_CM
    points, _ = _path(rng, start, _unit(rng)[0], n, 0.004)
    dedx = np.minimum(17.0 * np.maximum(residual_cm, 0.15) ** -0.42, 45.0) * rng.gamma(8.0, 1 / 8.0, n)
    dep.add(points, dedx * VOXEL_CM * STEP, TRACK)


def _shower(rng, dep):
    e_total = rng.uniform(40, 1000)
    start = rng.uniform(60, GRID - 60, 3)
    axis = _unit(rng)[0]
    x0 = 14.0 / VOXEL_CM
    b = 0.5
    a = b * max(np.log(e_total / 30.0) - 0.5, 0.2) + 1
    n_seg = max(int(e_total / 12), 1)
    depth = rng.gamma(a, 1 / b, n_seg) * x0 * 0.5
    spread = rng.normal(0, 1, (n_seg, 3)) * (3 + 0.15 * depth[:, None])
    seeds = start + depth[:, None] * axis + spread
    e_seg = rng.dirichlet(np.ones(n_seg)) * e_total
    for s, e in zip(seeds, e_seg):
        d = axis + rng.normal(0, 0.5, 3)
        seg, _ = _path(rng, s, d / np.linalg.norm(d), e / (2.1 * VOXEL_CM * STEP), 0.1)
        dep.add(seg, e / len(seg), SHOWER)


def voxelize(rng, dep: _Deposits, threshold: float = 0.05):
    """Voxel x, y, z (int), energy (MeV, smeared) and truth label of the depositions, shuffled."""
    points = np.concatenate(dep.points)
    energy = np.concatenate(dep.energy)
    label = np.concatenate(dep.label)
    ijk = np.floor(points).astype(np.int64)
    inside = np.all((ijk >= 0) & (ijk < GRID), axis=1)
    ijk, energy, label = ijk[inside], energy[inside], label[inside]
    key = (ijk[:, 0] * GRID + ijk[:, 1]) * GRID + ijk[:, 2]
    voxel, inv = np.unique(key, return_inverse=True)
    total = np.bincount(inv, weights=energy, minlength=voxel.size)
    per_label = np.zeros((voxel.size, len(CLASSES)))
    np.add.at(per_label, (inv, label), energy)
    lab = per_label.argmax(axis=1).astype(np.int32)
    total = total * rng.normal(1.0, 0.05, total.size)
    keep = total > threshold
    voxel, total, lab = voxel[keep], total[keep], lab[keep]
    order = rng.permutation(voxel.size)  # the challenge's files are not in voxel order
    voxel, total, lab = voxel[order], total[order], lab[order]
    xyz = np.stack(np.unravel_index(voxel, (GRID,) * 3), axis=1)
    return xyz, total.astype(np.float32), lab


def simulate_image(rng: np.random.Generator, michel_fraction: float = 0.8):
    """One image: ``(xyze (N, 4) float32, labels (N,) int32)``."""
    dep = _Deposits()
    for _ in range(2 + rng.poisson(2.0)):
        _muon(rng, dep, michel_fraction)
    for _ in range(rng.integers(1, 4)):
        _shower(rng, dep)
    for _ in range(rng.poisson(1.5)):
        _proton(rng, dep)
    xyz, energy, label = voxelize(rng, dep)
    xyze = np.concatenate([xyz.astype(np.float32), energy[:, None]], axis=1)
    return xyze, label


def write_files(
    out: str,
    *,
    images: int,
    seed: int,
    prefix: str = "train",
    labels: bool = True,
    solution: bool = True,
    solution_dataset: str = "solution",
    michel_fraction: float = 0.8,
) -> list[str]:
    """Write ``{prefix}_xyze_{images}.h5`` (and ``_label_``, ``_solution_``) into ``out``.

    The layouts are the challenge's: ``data`` (vlen float32, the flattened (N, 4)),
    ``labels`` (vlen int32), and the solution (vlen int32 row indices of the Michel voxels,
    here the truth, so it scores F1 = 1).
    """
    rng = np.random.default_rng(seed)
    xyze, labs = zip(*(simulate_image(rng, michel_fraction) for _ in range(images)))
    os.makedirs(out, exist_ok=True)
    paths = [os.path.join(out, f"{prefix}_xyze_{images}.h5")]
    write_vlen(paths[0], "data", [a.reshape(-1) for a in xyze], np.float32)
    if labels:
        paths.append(os.path.join(out, f"{prefix}_label_{images}.h5"))
        write_vlen(paths[-1], "labels", labs, np.int32)
    if solution:
        paths.append(os.path.join(out, f"{prefix}_solution_{images}.h5"))
        rows = [np.flatnonzero(lab == MICHEL).astype(np.int32) for lab in labs]
        write_vlen(paths[-1], solution_dataset, rows, np.int32)
    return paths


def write_vlen(path: str, name: str, arrays, dtype) -> None:
    """One vlen dataset ``name`` of shape (len(arrays),) (``h5py.vlen_dtype``)."""
    column = np.empty(len(arrays), dtype=object)
    column[:] = [np.asarray(a, dtype) for a in arrays]
    with h5py.File(path, "w") as f:
        f.create_dataset(name, (len(arrays),), dtype=h5py.vlen_dtype(np.dtype(dtype)), data=column)
