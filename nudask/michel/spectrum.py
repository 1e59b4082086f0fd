"""The Michel spectrum: a toy Monte Carlo of muon decay at rest against labelled Michel clusters.

Toy MC (:func:`toy_spectrum`): the electron energy of mu -> e nu nu at rest from the tree-level
V-A Michel spectrum with rho = 3/4, the electron mass neglected: ``dN/dx = 2 x^2 (3 - 2 x)``,
``x = E / E_max``, ``E_max = (m_mu^2 + m_e^2) / (2 m_mu) = 52.83 MeV``. **No radiative
corrections** (they soften the spectrum by a few per cent near the endpoint, well below the
detector effects here). Sampled by inverting the CDF ``2 x^3 - x^4`` on a fine grid, then a
Gaussian detector smearing ``sigma / E = stochastic / sqrt(E / MeV) (+) constant`` and a
threshold on the smeared energy. A million decays by default: the curve is smooth.

Labelled clusters (:func:`labelled_clusters`): in every image of a dataset, the voxels of
the Michel label are grouped by connectivity (26-neighbourhood: voxels within sqrt(3) of each
other belong together, one scipy cKDTree and one connected-components pass per dataset part,
images kept apart by offsetting their coordinates); a cluster's energy is the sum of its
voxels' energies; clusters under the threshold are dropped, as in the toy.

:func:`compare` bins both, normalises the toy to the number of clusters, and gives a
chi-square per degree of freedom (Poisson errors of the clusters) and the two-sample
Kolmogorov-Smirnov distance; :func:`spectrum_plot` overlays them in one PNG (and a JSON of the
numbers). The differences expected (docs, TRAINING.md): energy that leaks out of the cluster
(bremsstrahlung photons labelled shower, voxels under the voxel threshold), clusters split
by gaps, and electrons that leave the volume, all of which move clusters to lower energies.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from ..schema import coord_columns
from ..sparse import from_runs
from . import MICHEL

MUON_MEV = 105.6584
ELECTRON_MEV = 0.51100
E_MAX = (MUON_MEV**2 + ELECTRON_MEV**2) / (2 * MUON_MEV)  # 52.83 MeV


def michel_pdf(x: np.ndarray) -> np.ndarray:
    """Tree-level V-A density of x = E / E_max on [0, 1] (rho = 3/4, m_e neglected).

    >>> round(float(np.trapezoid(michel_pdf(np.linspace(0, 1, 100001)), dx=1e-5)), 6)
    1.0
    """
    x = np.asarray(x, float)
    return np.where((x >= 0) & (x <= 1), 2 * x**2 * (3 - 2 * x), 0.0)


@dataclass(frozen=True)
class Detector:
    stochastic: float = 0.02  # sigma / E at 1 MeV, falls as 1 / sqrt(E)
    constant: float = 0.05  # sigma / E added in quadrature (the simulator smears voxels by 5 %)
    threshold: float = 2.0  # MeV: clusters (and toy decays) below are dropped

    def sigma(self, e: np.ndarray) -> np.ndarray:
        e = np.maximum(np.asarray(e, float), 1e-6)
        return e * np.hypot(self.stochastic / np.sqrt(e), self.constant)


def toy_spectrum(n: int, *, seed: int = 0, detector: Detector = Detector()) -> dict[str, np.ndarray]:
    """``n`` decays at rest: ``true`` energies (MeV) and the ``smeared`` ones above threshold."""
    if n < 1:
        raise ConfigError(f"the toy needs at least one decay (got {n})")
    rng = np.random.default_rng(seed)
    grid = np.linspace(0.0, 1.0, 20001)
    cdf = 2 * grid**3 - grid**4
    true = np.interp(rng.random(n), cdf, grid) * E_MAX
    smeared = true + rng.normal(size=n) * detector.sigma(true)
    return {"true": true, "smeared": smeared[smeared >= detector.threshold]}


def cluster_energies(
    image: np.ndarray, xyz: np.ndarray, energy: np.ndarray, grid: int = 1 << 12
) -> tuple[np.ndarray, np.ndarray]:
    """Connected clusters of voxels (26-neighbourhood) per image: their energy and image.

    ``image`` (N,) says which image each voxel belongs to; images never touch (their x is
    offset by ``2 * grid`` each). Returns ``(energies, image_of_cluster)``.

    >>> xyz = np.array([[0, 0, 0], [1, 1, 1], [5, 5, 5], [0, 0, 0]])
    >>> e, img = cluster_energies(np.array([0, 0, 0, 1]), xyz, np.array([1.0, 2.0, 4.0, 8.0]))
    >>> sorted(e.tolist()), sorted(img.tolist())
    ([3.0, 4.0, 8.0], [0, 0, 1])
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    n = len(energy)
    if n == 0:
        return np.zeros(0), np.zeros(0, np.int64)
    pts = np.asarray(xyz, np.float64).copy()
    pts[:, 0] += np.asarray(image, np.float64) * 2 * grid
    pairs = cKDTree(pts).query_pairs(r=1.75, output_type="ndarray")  # sqrt(3) = 1.73: corners touch
    adj = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    k, comp = connected_components(adj, directed=False)
    e = np.bincount(comp, weights=energy, minlength=k)
    img = np.zeros(k, np.int64)
    img[comp] = image
    return e, img


def labelled_clusters(data: str | os.PathLike, *, view: str = "voxels", label: str = "label") -> dict:
    """Energies of the connected clusters of Michel-labelled voxels of a dataset, part by part."""
    import pyarrow.parquet as pq

    from ..dataset import open_dataset

    ds = open_dataset(data)
    spec = ds.views.get(view)
    if spec is None or label not in spec.channel_names or "energy" not in spec.channel_names:
        raise ConfigError(
            f"dataset '{data}' has no view '{view}' with channels energy and {label} "
            "(preprocess the xyze file with its label file)"
        )
    energies, images, offset = [], [], 0
    coords = coord_columns(spec)
    cols = [*coords, f"{view}_energy", f"{view}_{label}"]
    for part in ds.manifest.files:
        table = pq.read_table(os.path.join(ds.path, part.name), columns=cols, use_threads=False)
        lists = [table.column(c).combine_chunks() for c in cols]
        lengths = np.diff(np.asarray(lists[-1].offsets))  # voxels per image
        flat = [np.asarray(a.flatten()) for a in lists]
        if spec.coo_layout == "runs":
            flat = [*from_runs(tuple(flat[: len(coords) - 1]), flat[len(coords) - 1]), *flat[len(coords) :]]
        lab = flat[-1]
        keep = lab == MICHEL
        image = np.repeat(np.arange(len(lengths)), lengths)[keep] + offset
        xyz = np.stack([f[keep] for f in flat[:3]], axis=1)
        e, img = cluster_energies(image, xyz, flat[3][keep].astype(np.float64))
        energies.append(e)
        images.append(img)
        offset += len(lengths)
    return {"energy": np.concatenate(energies), "image": np.concatenate(images), "images": offset}


def compare(clusters: np.ndarray, toy: np.ndarray, *, threshold: float, bins: int = 27) -> dict:
    """Histograms of both (toy scaled to the clusters' count), chi2 / ndf and the KS distance."""
    from scipy.stats import ks_2samp

    clusters = clusters[clusters >= threshold]
    edges = np.linspace(threshold, 1.1 * E_MAX, bins + 1)
    data, _ = np.histogram(np.minimum(clusters, edges[-1]), edges)  # overflow in the last bin
    shape, _ = np.histogram(np.minimum(toy, edges[-1]), edges)
    expected = shape / max(shape.sum(), 1) * data.sum()
    ok = expected > 0
    chi2 = float(np.sum((data[ok] - expected[ok]) ** 2 / np.maximum(data[ok], 1)))
    ndf = int(ok.sum()) - 1
    ks = ks_2samp(clusters, toy) if clusters.size else None
    return {
        "edges": edges.tolist(),
        "clusters": data.tolist(),
        "toy_scaled": expected.tolist(),
        "n_clusters": int(clusters.size),
        "n_toy": int(toy.size),
        "chi2": chi2,
        "ndf": ndf,
        "chi2_per_ndf": chi2 / ndf if ndf > 0 else float("nan"),
        "ks_distance": float(ks.statistic) if ks is not None else float("nan"),
        "ks_pvalue": float(ks.pvalue) if ks is not None else float("nan"),
        "mean_clusters_mev": float(clusters.mean()) if clusters.size else float("nan"),
        "mean_toy_mev": float(toy.mean()),
    }


def spectrum_plot(
    data: str | os.PathLike,
    out: str,
    *,
    toy_events: int = 1_000_000,
    detector: Detector = Detector(),
    seed: int = 0,
) -> str:
    """Overlay the toy MC and the labelled clusters in ``out`` (PNG) + ``out``.json; a summary line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    found = labelled_clusters(data)
    toy = toy_spectrum(toy_events, seed=seed, detector=detector)
    c = compare(found["energy"], toy["smeared"], threshold=detector.threshold)
    edges = np.asarray(c["edges"])
    centres = 0.5 * (edges[1:] + edges[:-1])
    data_h = np.asarray(c["clusters"], float)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.errorbar(
        centres, data_h, yerr=np.sqrt(data_h), fmt="o", ms=4, color="k",
        label=f"labelled Michel clusters ({c['n_clusters']} in {found['images']} images)",
    )  # fmt: skip
    ax.step(edges, np.r_[c["toy_scaled"], c["toy_scaled"][-1]], where="post", color="C0",
            label=f"toy MC, smeared, > {detector.threshold:g} MeV ({toy_events:,} decays)")  # fmt: skip
    x = np.linspace(0, 1, 400)
    width = edges[1] - edges[0]
    ax.plot(x * E_MAX, michel_pdf(x) / E_MAX * width * c["n_clusters"], "--", color="C1",
            label="V-A spectrum, no radiative corrections, no detector")  # fmt: skip
    ax.set_xlabel("energy (MeV)")
    ax.set_ylabel(f"clusters per {width:.1f} MeV")
    ax.set_title(
        f"Michel spectrum: chi2/ndf = {c['chi2']:.0f}/{c['ndf']}, KS D = {c['ks_distance']:.3f}", fontsize=10
    )
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    info = {**c, "detector": detector.__dict__, "toy_events": toy_events, "images": found["images"]}
    with open(os.path.splitext(out)[0] + ".json", "w") as f:
        json.dump(info, f, indent=1)
    return (
        f"{out}: {c['n_clusters']} Michel clusters in {found['images']} images (mean "
        f"{c['mean_clusters_mev']:.1f} MeV) vs toy MC (mean {c['mean_toy_mev']:.1f} MeV): "
        f"chi2/ndf {c['chi2']:.1f}/{c['ndf']}, KS distance {c['ks_distance']:.3f} (p {c['ks_pvalue']:.2g})"
    )
