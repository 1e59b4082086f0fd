"""Toy NOvA-like pixel-map files (UCL PHAS0056 layout, formats.md section 2).

``/cvnmap`` is ``(N, 16000)`` uint8, each row a ``(2, 100, 80)`` map: view 0
x-z, view 1 y-z, 100 planes (z) x 80 cells. ``/neutrino/`` holds 16 ``(N, 1)``
datasets. Dtypes: ``evt`` and the codes ``cycle``, ``finalstate``,
``finalstateprong``, ``interaction``, ``parent``, ``particles``,
``rec.training.trainingdata_idx``, ``run``, ``subrun`` uint32; ``subevt``
uint16; ``lepenergy``/``nuenergy`` float32 (GeV); ``vtxx/y/z`` float64 (cm,
far-detector-like coordinates). All gzip compressed.

Choices where the format page is silent (the real meanings are unknown):
``finalstateprong`` is the number of prongs (tracks + showers, uncapped),
``particles`` the number of final-state particles (neutrons included),
``parent`` the PDG code of the neutrino's parent meson (0 for cosmics),
``cycle`` the seed, ``subevt`` a slice number 0-2. Cosmics have
``nuenergy = lepenergy = 0``; NC ``lepenergy`` is the outgoing neutrino's. nutau CC
and "other" events use finalstate 49.

About 88 % of events are numu CC (interaction 0-3). The picture agrees with
the codes: a numu CC event has a long muon track in both views, nue CC an
electron shower, NC hadronic tracks and pi0 showers, a cosmic a steep track.
"""

from __future__ import annotations

import os
import pathlib

import h5py
import numpy as np

from ..errors import ConfigError

PLANES, CELLS = 100, 80
PLANE_CM, CELL_CM = 13.2, 3.97  # one view's plane pitch (views alternate), cell width
X0_CM, E_CRIT = 38.0, 80.0  # scintillator-ish radiation length (cm), critical energy (MeV)
ADC_PER_MEV = 3.0
# interaction code -> probability (0-3 numu CC QE/RES/DIS/other, 4-7 nue CC, 8-11 nutau CC,
# 12 NC nu-e elastic, 13 NC, 14 cosmic, 15 other)
INTERACTIONS = np.array(
    [0.26, 0.30, 0.28, 0.04, 0.008, 0.009, 0.007, 0.001, 0.001, 0.001, 0.001, 0.0, 0.002, 0.07, 0.015, 0.005]
)
U4, U2, F4, F8 = "u4", "u2", "f4", "f8"
COLUMNS = {
    "cycle": U4,
    "evt": U4,
    "finalstate": U4,
    "finalstateprong": U4,
    "interaction": U4,
    "lepenergy": F4,
    "nuenergy": F4,
    "parent": U4,
    "particles": U4,
    "rec.training.trainingdata_idx": U4,
    "run": U4,
    "subevt": U2,
    "subrun": U4,
    "vtxx": F8,
    "vtxy": F8,
    "vtxz": F8,
}


def simulate_nova(
    path: str | os.PathLike, *, n_events: int = 100, seed: int = 0, first_event: int = 1, run: int = 12000
) -> pathlib.Path:
    """Write a toy NOvA-like pixel-map file (``neutrino1.h5`` layout).

    Parameters
    ----------
    path : str or PathLike
        Output file; overwritten atomically (written next to it, then renamed).
    n_events : int
        Number of events (>= 1).
    seed : int
        Seed; event ``k`` depends only on ``(seed, k)``.
    first_event, run : int
        ``evt`` numbers are ``first_event, first_event + 1, ...``.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    if n_events < 1:
        raise ConfigError(f"n_events must be >= 1, got {n_events}")
    maps = np.zeros((n_events, 2 * PLANES * CELLS), np.uint8)
    cols: dict[str, list] = {c: [] for c in COLUMNS}
    for k in range(n_events):
        rng = np.random.default_rng([seed, k])
        image, meta = _event(rng)
        maps[k] = image.ravel()
        meta.update(
            cycle=seed,
            evt=first_event + k,
            run=run,
            subrun=seed % 64,
            subevt=rng.integers(0, 3),
            **{"rec.training.trainingdata_idx": k},
        )
        for c in COLUMNS:
            cols[c].append(meta[c])
    path = pathlib.Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with h5py.File(tmp, "w") as f:
            f.create_dataset(
                "cvnmap",
                data=maps,
                chunks=(min(n_events, 256), maps.shape[1]),
                compression="gzip",
                compression_opts=4,
            )
            g = f.create_group("neutrino")
            for c, dtype in COLUMNS.items():
                g.create_dataset(
                    c,
                    data=np.array(cols[c], dtype).reshape(-1, 1),
                    chunks=(min(n_events, 4096), 1),
                    compression="gzip",
                )
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _event(rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """One event: its ``(2, 100, 80)`` map and its truth."""
    code = int(rng.choice(16, p=INTERACTIONS / INTERACTIONS.sum()))
    vtx = rng.uniform([-600, -600, 100], [600, 600, 5500])
    origin = np.array([rng.uniform(5, 20), *np.clip(rng.normal(40, 8, 2), 12, 68)])  # plane, cx, cy
    pts: list[np.ndarray] = []
    dep: list[np.ndarray] = []
    tracks = showers = particles = 0
    e_nu = e_lep = 0.0
    beam = _unit(np.array([0.0, -0.06, 1.0]))  # NuMI dips into the ground a little

    def track(d, length_cm, dedx=2.0):
        n = max(2, int(length_cm / 0.5))
        s = (np.arange(n) + 0.5) * length_cm / n
        wobble = np.cumsum(rng.normal(0, 0.15, (n, 3)), axis=0)  # multiple scattering, cm
        pts.append(s[:, None] * d + wobble)
        dep.append(dedx * length_cm / n * rng.gamma(3.0, 1 / 3, n))

    def shower(d, e_mev, gap_cm=0.0):
        n = max(20, int(e_mev))
        tmax = max(np.log(e_mev / E_CRIT) - 0.5, 0.2)
        t = rng.gamma(1 + 0.5 * tmax, 2.0, n) * X0_CM  # longitudinal profile, b = 0.5
        e1 = _unit(np.cross(d, [1.0, 0, 0]))
        e2 = np.cross(d, e1)
        r = rng.normal(0, 1, (n, 2)) * (1.5 + 0.03 * t)[:, None]  # widening core, cm
        pts.append((gap_cm + t)[:, None] * d + r[:, :1] * e1 + r[:, 1:] * e2)
        dep.append(np.full(n, 0.8 * e_mev / n))

    def hadrons(w_mev, pi0_prob):
        nonlocal tracks, showers, particles
        for _ in range(min(rng.poisson(0.8 + w_mev / 800), 4)):  # protons: short, dense
            track(_cone(beam, 1.2, rng), rng.exponential(15) + 3, dedx=6.0)
            tracks, particles = tracks + 1, particles + 1
        for _ in range(min(rng.poisson(w_mev / 1000), 3)):  # charged pions
            track(_cone(beam, 0.9, rng), rng.exponential(80) + 20)
            tracks, particles = tracks + 1, particles + 1
        if rng.random() < pi0_prob:  # pi0 -> two detached photon showers
            for _ in range(2):
                shower(
                    _cone(beam, 0.6, rng),
                    max(w_mev * rng.uniform(0.1, 0.3), 30),
                    rng.exponential(9 / 7 * X0_CM),
                )
            showers, particles = showers + 2, particles + 1
        particles += min(rng.poisson(0.5), 3)  # neutrons: no picture

    if code == 14:  # cosmic: steep through-going muon from above
        d = _unit(np.array([rng.normal(0, 0.3), -1.0, rng.normal(0, 0.3)]))
        origin = np.array([rng.uniform(10, 90), rng.uniform(5, 75), 79.0])
        vtx[1] = 780.0
        track(d, 400.0)
        tracks, particles, base = 1, 1, 48
    else:
        e_nu = float(np.clip(rng.gamma(6.0, 0.35), 0.5, 10.0))
        e_lep = e_nu * (1 - rng.beta(1.3, 3.0 if code % 4 == 0 else 1.8))
        if code <= 3:
            e_lep = max(e_lep, min(0.25, 0.8 * e_nu))  # a muon that leaves a track
        w = (e_nu - e_lep) * 1000
        if code <= 3:  # numu CC: long muon
            track(_cone(beam, 0.25, rng), (e_lep * 1000 - 105.7) / 2.0)
            tracks, particles = 1, 1
            hadrons(w * (0.3 if code == 0 else 1), 0.05 if code == 0 else 0.25)
        elif code <= 7:  # nue CC: electron shower
            shower(_cone(beam, 0.2, rng), e_lep * 1000)
            showers, particles = 1, 1
            hadrons(w * (0.3 if code == 4 else 1), 0.05 if code == 4 else 0.25)
        elif code == 12:  # nu-e elastic: one very forward electron
            shower(_cone(beam, 0.05, rng), e_lep * 1000)
            showers, particles = 1, 1
        else:  # nutau CC, NC, other: hadronic activity
            e_lep = e_lep if code != 15 else 0.0
            hadrons(w, 0.4)
        base = 32 if code in (12, 13) else (16 if 4 <= code <= 7 else (0 if code <= 3 else 49))
    finalstate = base if base >= 48 else base + 4 * min(tracks, 3) + min(showers, 3)
    image = _draw(
        np.concatenate(pts) if pts else np.zeros((0, 3)),
        np.concatenate(dep) if dep else np.zeros(0),
        origin,
        rng,
    )
    parent = 0 if code == 14 else int(rng.choice([211, 321, 130, 13], p=[0.8, 0.15, 0.02, 0.03]))
    return image, dict(
        interaction=code,
        finalstate=finalstate,
        finalstateprong=tracks + showers,
        particles=particles,
        parent=parent,
        nuenergy=e_nu,
        lepenergy=e_lep,
        vtxx=vtx[0],
        vtxy=vtx[1],
        vtxz=vtx[2],
    )


def _draw(p: np.ndarray, e: np.ndarray, origin: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Bin deposits (cm from the vertex) into the two views; uint8 charge, mostly zero."""
    plane = np.floor(origin[0] + p[:, 2] / PLANE_CM).astype(np.int64)
    image = np.zeros((2, PLANES, CELLS))
    for view in (0, 1):  # view 0: x-z, view 1: y-z
        cell = np.floor(origin[1 + view] + p[:, view] / CELL_CM).astype(np.int64)
        ok = (plane >= 0) & (plane < PLANES) & (cell >= 0) & (cell < CELLS)
        # each view reads every other physical plane: half the charge
        np.add.at(image[view], (plane[ok], cell[ok]), 0.5 * e[ok])
    n_noise = rng.poisson(4)  # a few isolated noise hits
    image[rng.integers(0, 2, n_noise), rng.integers(0, PLANES, n_noise), rng.integers(0, CELLS, n_noise)] += (
        rng.uniform(1, 4, n_noise)
    )
    return np.clip(np.rint(image * ADC_PER_MEV), 0, 255).astype(np.uint8)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _cone(d: np.ndarray, width: float, rng: np.random.Generator) -> np.ndarray:
    """Direction scattered around ``d`` by a Gaussian angle of ``width`` radians."""
    return _unit(d + rng.normal(0, width, 3))
