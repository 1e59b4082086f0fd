"""Toy particle trajectories for the MicroBooNE simulator: tracks, showers, projection.

Inside this module lengths are cm and energies MeV (the truth tables use GeV).
A trajectory is a list of straight segments, each with a dE/dx and an owner
(``g4_id`` of a neutrino particle, 0 for cosmic overlay) and a time offset in
ticks (cosmics arrive at random times in the readout window). ``scale``
shrinks every length (ranges, radiation length) so that events still fit the
``small`` geometry; dE/dx per drawn cm is unchanged, so waveform amplitudes
are the same on both geometries and the deposited energy scales with it.
"""

from __future__ import annotations

import numpy as np

from ..readers.wire_geometry import WireGeometry

MIP_DEDX = 2.1  # MeV/cm, minimum ionising in liquid argon
X0_CM = 14.0  # radiation length of liquid argon
E_CRIT = 30.0  # MeV: below it e+- stop branching, photons Compton-scatter
SIN60, COS60 = np.sin(np.pi / 3), 0.5
MASS = {11: 0.511, 13: 105.66, 22: 0.0, 111: 134.98, 211: 139.57, 2112: 939.57, 2212: 938.27}
# particle_table.category codes (formats.md)
PION, MUON, KAON, PROTON, ELECTRON, MICHEL, DELTA, OTHER, PHOTON = range(9)


def wire_coords(points: np.ndarray, geom: WireGeometry) -> np.ndarray:
    """Continuous wire number on planes (u, v, y) of points ``(n, 3)`` -> ``(n, 3)``.

    Induction wires run at +-60 degrees to the vertical; the offset puts the
    corner ``(y=-y_half, z=0)`` at wire 0 so the active volume fits the plane.
    """
    y, z = points[:, 1], points[:, 2]
    off = geom.y_half * SIN60
    along = z * COS60 + off
    u = along + y * SIN60
    v = along - y * SIN60
    return np.stack([u, v, z], axis=1) / geom.wire_pitch_cm


def nearest_wires(points: np.ndarray, geom: WireGeometry) -> np.ndarray:
    """Nearest wire (int32, clipped into each plane) of points ``(n, 3)``."""
    w = np.floor(wire_coords(np.atleast_2d(points), geom))
    return np.clip(w, 0, np.asarray(geom.wires) - 1).astype(np.int32)


def tick_of(x: np.ndarray, geom: WireGeometry) -> np.ndarray:
    """Readout tick of charge released at drift coordinate ``x`` (cm) at trigger time."""
    return geom.trigger_tick + np.asarray(x) / geom.drift_cm_per_tick


def space_charge(points: np.ndarray, geom: WireGeometry) -> np.ndarray:
    """Toy space-charge correction: a smooth shift of up to ~3 cm (scaled), growing with drift."""
    p = np.atleast_2d(points)
    f = np.clip(p[:, 0] / geom.x_max, 0, 1)
    yn, zn = p[:, 1] / geom.y_half, 2 * p[:, 2] / geom.z_max - 1
    s = 3.0 * geom.z_max / 1037.0
    return p + s * np.stack([-0.6 * (1 - yn**2) * f, yn * f, 0.7 * zn * f], axis=1)


def inside(points: np.ndarray, geom: WireGeometry) -> np.ndarray:
    """Mask of points inside the active volume."""
    x, y, z = points[:, 0], points[:, 1], points[:, 2]
    return (x >= 0) & (x <= geom.x_max) & (np.abs(y) <= geom.y_half) & (z >= 0) & (z <= geom.z_max)


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def deflect(d: np.ndarray, theta: float, rng: np.random.Generator) -> np.ndarray:
    """Unit vector at polar angle ``theta`` from ``d``, random azimuth."""
    a = np.array([1.0, 0, 0]) if abs(d[0]) < 0.9 else np.array([0, 1.0, 0])
    e1 = unit(np.cross(d, a))
    e2 = np.cross(d, e1)
    phi = rng.uniform(0, 2 * np.pi)
    return unit(np.cos(theta) * d + np.sin(theta) * (np.cos(phi) * e1 + np.sin(phi) * e2))


def momentum_gev(pdg: int, kinetic: float) -> float:
    m = MASS.get(abs(pdg), 0.0)
    return float(np.sqrt(kinetic**2 + 2 * kinetic * m)) / 1000.0


class Trajectories:
    """Collects the particles (truth rows) and charge-depositing segments of one event."""

    def __init__(self, rng: np.random.Generator, scale: float = 1.0):
        self.rng, self.scale = rng, scale
        self.particles: list[dict] = []
        self._segs: list[tuple[np.ndarray, np.ndarray, int, float]] = []  # points, dedx, owner, t0

    # -- truth ---------------------------------------------------------------
    def particle(self, pdg, parent, category, kinetic, start, end, sproc, eproc, instance=None) -> int:
        gid = len(self.particles) + 1
        self.particles.append(
            dict(
                g4_id=gid,
                g4_pdg=pdg,
                parent_id=parent,
                category=category,
                instance=gid if instance is None else instance,
                momentum=momentum_gev(pdg, kinetic),
                start=np.asarray(start, float),
                end=np.asarray(end, float),
                start_process=sproc,
                end_process=eproc,
            )
        )
        return gid

    # -- trajectories --------------------------------------------------------
    def polyline(self, start, d, length, p_mev, step=2.0) -> np.ndarray:
        """Points of a multiple-scattered path (direction random walk, ~13.6 MeV/p per X0)."""
        n = max(1, int(np.ceil(length / step)))
        h = length / n
        kick = (13.6 / max(p_mev, 1.0)) * np.sqrt(h / (X0_CM * self.scale)) / np.sqrt(3)
        dirs = unit(d + np.cumsum(self.rng.normal(0, kick, (n, 3)), axis=0))
        return np.vstack([start, start + np.cumsum(dirs * h, axis=0)])

    def deposit(self, pts, dedx, owner, t0=0.0) -> None:
        self._segs.append((pts, np.broadcast_to(np.asarray(dedx, float), (len(pts) - 1,)), owner, t0))

    def track(
        self, pdg, start, d, kinetic, parent=0, category=MUON, sproc=b"primary", eproc=b"hIoni"
    ) -> tuple[int, np.ndarray]:
        """A stopping track of kinetic energy ``kinetic`` with a Bragg peak; returns id and path."""
        heavy = abs(pdg) == 2212
        if heavy:  # proton range-energy: dE/dx = 17 R^-0.42 integrates to R = (0.58 T / 17)^(1/0.58)
            rng_cm = (0.58 * kinetic / 17.0) ** (1 / 0.58)
        else:
            rng_cm = kinetic / MIP_DEDX
        length = max(rng_cm * self.scale, 0.05)
        pts = self.polyline(
            start, d, length, momentum_gev(pdg, kinetic) * 1000, step=float(np.clip(length / 25, 0.2, 2.0))
        )
        seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
        resid = (length - np.cumsum(seg) + seg / 2) / self.scale  # physical residual range
        dedx = 17.0 * resid**-0.42 if heavy else np.maximum(MIP_DEDX, 8.0 * resid**-0.42)
        gid = self.particle(pdg, parent, category, kinetic, start, pts[-1], sproc, eproc)
        self.deposit(pts, dedx, gid)
        return gid, pts

    def shower(self, pdg, start, d, energy, parent=0, sproc=b"primary", category=None) -> int:
        """An EM shower: e+- legs that radiate photons, photons that convert after a gap."""
        rng, stack = self.rng, [(pdg, np.asarray(start, float), d, energy, parent, sproc)]
        root: int | None = None
        while stack:
            pdg_i, p0, di, e, par, proc = stack.pop()
            cat = category if root is None and category is not None else (PHOTON if pdg_i == 22 else ELECTRON)
            if pdg_i == 22:
                gap = rng.exponential(9 / 7 * X0_CM) * self.scale
                p1 = p0 + di * gap
                gid = self.particle(22, par, cat, e, p0, p1, proc, b"conv" if e > E_CRIT else b"compt", root)
                if e > E_CRIT:  # pair production, small opening angle
                    u = rng.uniform(0.15, 0.85)
                    for q, f in ((11, u), (-11, 1 - u)):
                        stack.append((q, p1, deflect(di, 0.511 / (f * e) * 3, rng), f * e, gid, b"conv"))
                else:  # Compton electron takes it all
                    stack.append((11, p1, deflect(di, rng.uniform(0.2, 1.0), rng), e, gid, b"compt"))
            else:
                pts, legs, brems, left = [p0], [], [], e
                while left > E_CRIT:  # legs of ~0.6 X0, each ending with a bremsstrahlung photon
                    leg = min(rng.exponential(0.6 * X0_CM), left / MIP_DEDX)
                    line = self.polyline(pts[-1], di, leg * self.scale, left, step=1.0 * self.scale + 0.2)
                    legs.append(line[1:])
                    di = unit(line[-1] - line[-2])
                    left -= leg * MIP_DEDX
                    k = rng.uniform(0.2, 0.6) * left
                    if k > 1.0:
                        brems.append((line[-1], deflect(di, 0.02, rng), k))
                        left -= k
                    pts = [line[-1]]
                tail = self.polyline(
                    pts[-1],
                    di,
                    max(left / MIP_DEDX * self.scale, 0.05),
                    left + 1,
                    step=0.5 * self.scale + 0.1,
                )
                line = np.vstack([p0, *legs, tail[1:]])
                gid = self.particle(pdg_i, par, cat, e, p0, line[-1], proc, b"eIoni", root)
                self.deposit(line, MIP_DEDX, gid)
                stack += [(22, p, dd, k, gid, b"eBrem") for p, dd, k in brems]
            root = gid if root is None else root
        assert root is not None  # the stack starts with the shower's own particle
        return root

    def michel(self, start, parent) -> int:
        e = 52.8 * self.rng.beta(2.8, 1.2)
        return self.shower(
            -11 if self.rng.random() < 0.5 else 11,
            start,
            deflect(np.array([0, 0, 1.0]), np.arccos(self.rng.uniform(-1, 1)), self.rng),
            e,
            parent,
            b"Decay",
            category=MICHEL,
        )

    def cosmic(self, geom: WireGeometry, whole_window: bool = False) -> None:
        """A through-going cosmic muon (no truth: overlay data) at a random readout time.

        By default it crosses at a time that puts most of its charge inside the readout;
        ``whole_window`` draws the time uniformly over every crossing that reaches it, from
        a drift time before the window opens (charge near the anode only) to its end.
        """
        rng = self.rng
        cos_t = rng.random() ** 0.25  # ~cos^2 zenith flux through a horizontal surface
        phi = rng.uniform(0, 2 * np.pi)
        sin_t = np.sqrt(1 - cos_t**2)
        d = np.array([sin_t * np.cos(phi), -cos_t, sin_t * np.sin(phi)])
        p = rng.uniform([0, -geom.y_half, 0], [geom.x_max, geom.y_half, geom.z_max])
        lo, hi = np.array([0, -geom.y_half, 0]), np.array([geom.x_max, geom.y_half, geom.z_max])
        with np.errstate(divide="ignore", invalid="ignore"):  # slab intersection: extend to the walls
            t1, t2 = (lo - p) / d, (hi - p) / d
        t_in = np.nanmax(np.minimum(t1, t2))
        t_out = np.nanmin(np.maximum(t1, t2))
        drift = geom.x_max / geom.drift_cm_per_tick
        if whole_window:
            t0 = rng.uniform(-geom.trigger_tick - drift, geom.ticks - geom.trigger_tick)
        else:
            t0 = rng.uniform(-geom.trigger_tick - 0.3 * drift, geom.ticks - geom.trigger_tick - 0.7 * drift)
        pts = self.polyline(p + t_in * d, d, t_out - t_in, rng.uniform(2e3, 2e4), step=5.0)
        self.deposit(pts, MIP_DEDX, 0, t0)

    # -- sampling ------------------------------------------------------------
    def samples(self, step: float = 0.04) -> dict[str, np.ndarray]:
        """Charge sample points every ~``step`` cm: position, energy (MeV), dE/dx, owner, t0."""
        if not self._segs:
            z = np.zeros(0)
            return dict(pos=np.zeros((0, 3)), energy=z, dedx=z, owner=z.astype(np.int32), t0=z)
        a = np.concatenate([s[0][:-1] for s in self._segs])
        b = np.concatenate([s[0][1:] for s in self._segs])
        dedx = np.concatenate([s[1] for s in self._segs])
        nseg = [len(s[1]) for s in self._segs]
        owner = np.repeat([s[2] for s in self._segs], nseg).astype(np.int32)
        t0 = np.repeat([s[3] for s in self._segs], nseg)
        length = np.linalg.norm(b - a, axis=1)
        n = np.maximum(1, np.ceil(length / step).astype(np.int64))
        seg = np.repeat(np.arange(len(a)), n)
        first = np.cumsum(n) - n
        frac = (np.arange(seg.size) - first[seg] + 0.5) / n[seg]
        pos = a[seg] + frac[:, None] * (b - a)[seg]
        # Landau-like fluctuation per sample (skewed, mean 1)
        energy = dedx[seg] * (length / n)[seg] * self.rng.gamma(2.0, 0.5, seg.size)
        return dict(pos=pos, energy=energy, dedx=dedx[seg], owner=owner[seg], t0=t0[seg])


def add_final_state(
    tr: Trajectories, is_cc: bool, nu_pdg: int, vtx: np.ndarray, nu_dir: np.ndarray, e_nu: float, e_lep: float
) -> None:
    """Primaries (and their daughters) of a toy neutrino interaction; energies in GeV."""
    rng = tr.rng
    w = max(e_nu - e_lep, 0.0) * 1000  # hadronic energy, MeV
    if is_cc:
        lep = int(np.sign(nu_pdg)) * (abs(nu_pdg) - 1)  # 14 -> mu-, -14 -> mu+, 12 -> e-
        ldir = deflect(nu_dir, np.arccos(max(-1.0, 1 - rng.exponential(0.3 / np.sqrt(e_lep)))), rng)
        if abs(lep) == 13:
            decays = lep < 0 or rng.random() < 0.75  # mu- is captured on argon ~25 % of the time
            mu, pts = tr.track(
                lep,
                vtx,
                ldir,
                e_lep * 1000 - MASS[13],
                category=MUON,
                eproc=b"Decay" if decays else b"muMinusCaptureAtRest",
            )
            for _ in range(min(rng.poisson(len(pts) / 60), 4)):  # delta rays along the track
                i = rng.integers(len(pts) - 1)
                tr.track(
                    11,
                    pts[i],
                    deflect(unit(pts[i + 1] - pts[i]), 1.0, rng),
                    rng.uniform(3, 25),
                    parent=mu,
                    category=DELTA,
                    sproc=b"muIoni",
                    eproc=b"eIoni",
                )
            if decays:
                tr.michel(pts[-1], mu)
        else:
            tr.shower(lep, vtx, ldir, e_lep * 1000, category=ELECTRON)
    n_p = min(rng.poisson(0.6 + w / 700), 4)
    n_pi = min(rng.poisson(w / 1000), 3)
    n_n = min(rng.poisson(0.4 + w / 1200), 3)
    pi0 = w > 300 and rng.random() < (0.15 if is_cc else 0.35)
    t_p = rng.exponential(70.0, n_p) + 20
    t_pi = rng.exponential(150.0, n_pi) + 20
    t_pi0 = rng.exponential(200.0) + 30 if pi0 else 0.0
    cost = t_p.sum() + (t_pi + MASS[211]).sum() + (t_pi0 + MASS[111]) * pi0
    f = min(1.0, 0.9 * w / cost) if cost > 0 else 1.0  # keep the hadrons inside the energy budget
    for t in t_p * f:
        d = deflect(nu_dir, np.arccos(rng.uniform(-0.3, 1)), rng)
        tr.track(
            2212,
            vtx,
            d,
            max(t, 5.0),
            category=PROTON,
            eproc=b"protonInelastic" if rng.random() < 0.4 else b"hIoni",
        )
    for t in t_pi * f:
        q = 211 if (is_cc and nu_pdg > 0) or rng.random() < 0.5 else -211
        d = deflect(nu_dir, np.arccos(rng.uniform(-0.5, 1)), rng)
        tr.track(
            q,
            vtx,
            d,
            max(t, 5.0),
            category=PION,
            eproc=b"Decay" if rng.random() < 0.3 else (b"pi+Inelastic" if q > 0 else b"pi-Inelastic"),
        )
    if pi0:  # pi0 -> gamma gamma, boosted from the rest frame; photons convert away from the vertex
        m, e = MASS[111], max(t_pi0 * f, 5.0) + MASS[111]
        d = deflect(nu_dir, np.arccos(rng.uniform(-0.5, 1)), rng)
        beta, gamma = np.sqrt(1 - (m / e) ** 2), e / m
        gid = tr.particle(111, 0, OTHER, e - m, vtx, vtx, b"primary", b"Decay")
        u = deflect(d, np.arccos(rng.uniform(-1, 1)), rng) * m / 2
        for k in (u, -u):
            kpar = k @ d
            p = k + (gamma * (kpar + beta * m / 2) - kpar) * d
            tr.shower(22, vtx, unit(p), gamma * (m / 2 + beta * kpar), parent=gid, sproc=b"Decay")
    for _ in range(n_n):  # neutrons: truth rows, no charge
        t = rng.exponential(50.0) + 5
        d = deflect(nu_dir, np.arccos(rng.uniform(-1, 1)), rng)
        tr.particle(
            2112,
            0,
            OTHER,
            t,
            vtx,
            vtx + d * rng.exponential(60.0) * tr.scale,
            b"primary",
            b"neutronInelastic",
        )
