"""Toy MicroBooNE OpenSamples files, in exactly the layout of formats.md section 1.

Each event is one toy neutrino interaction (``sample="bnb"``: about 70 % numu
CC, 3 % numubar CC, 1.5 % nue CC, 25.5 % NC; ``sample="nue"``: nue CC, 10 %
nuebar) overlaid with through-going cosmic muons at random readout times.
Charge is sampled every 0.4 mm along the trajectories, binned per (wire, tick)
on the three planes and shaped into pulses; ``adc`` is exactly zero outside
regions of interest around them. ``cosmics`` sets the overlay and the pulses:

- ``"real"`` (default): a Poisson mean of 24 muons per readout (``REAL_COSMICS``:
  the surface rate over the window a muon's charge can reach), deconvolved pulses
  of sigma 2.5-4 ticks, bipolar residue on the induction planes, 1 ADC of noise
  inside regions of interest (``REAL_PULSES``). On the full geometry this gives
  the public files' weight: about 1.9 MB per event (bnb and nue), 0.63 % of
  samples non-zero and ~65,000 rendered pixels per event (35,000-115,000). A MIP
  hit peaks at ~80 ADC on the collection plane, ~50 on induction.
- ``"sparse"``: the files of earlier releases, exactly: 1-5 muons, unipolar
  Gaussian pulses of sigma 4-8 ticks, no noise; on the full geometry about
  1.1 MB per event and 0.34 % of samples non-zero (0.05-0.7 % per event).
- an integer: that mean number of muons with the real pulses.

``hit_table`` holds one hit per run of non-zero ticks on a wire (split every
64 ticks; every hit holds a positive peak); ``edep_table`` the energy each
neutrino particle left in each hit.

Quirks the files contain on purpose (real files have them, readers must cope):

- Wire rows of an event are in a shuffled order (``shuffle_wires``), and a
  fixed set of dead wires (``missing_wire_fraction``, same for the whole
  file) has no row at all; dead wires carry no hits either.
- About 15 % of NC events (4 % of ``bnb``) are "invisible": the event_table
  truth is complete but no particle was stored, so the event is absent from
  ``particle_table`` and ``edep_table`` (gaps in their ``seq_cnt``). NC events
  whose only hadrons are neutrons, or whose particles all leave the volume or
  the readout, have particle rows but no edep rows. Rarely (~1 % on ``small``)
  an event has no charge at all: it has wire rows (all zero) but no hits.
- Cosmic hits have no edep rows and cosmics have no particle rows (overlay).
- Particle end positions may lie outside the active volume (exiting tracks);
  their ``*_wire_pos`` are clipped into the planes.
- ``lep_energy`` of NC events is the outgoing neutrino's energy.
- ``nu_vtx_corr`` and ``*_corr`` positions carry a toy space-charge shift;
  the charge itself is drawn at the true positions, and ``nu_vtx_wire_pos``
  (nearest wire: ``floor`` of the wire coordinate) and ``nu_vtx_wire_time``
  (``trigger_tick + x / drift``) project the true vertex.
- ``instance`` groups a shower: every particle of an EM shower carries the
  ``g4_id`` of the shower's first particle; other particles their own id.
  Categories: pi0 and neutrons are "other" (7), shower photons "photon" (8).
- The ``adc`` chunks span neighbouring events (chunk shape ``(chunk_rows,
  ticks)``, the last one zero padded); every dataset is resizable
  (``maxshape=(None, k)``), gzip compressed.
- On the ``small`` geometry all lengths shrink by ``scale`` (0.25) at the
  same dE/dx per cm, so deposited energies shrink by the same factor.
"""

from __future__ import annotations

import os
import pathlib
from dataclasses import dataclass

import h5py
import numpy as np

from ..errors import ConfigError
from ..readers.wire_geometry import MICROBOONE, WireGeometry, get_geometry
from ._h5write import I4, _AdcWriter, _write_table
from ._signal import SPARSE_PULSES, PulseModel, _edeps, _hits, _plane_wire, _waveforms
from ._topology import (
    Trajectories,
    add_final_state,
    inside,
    nearest_wires,
    space_charge,
    tick_of,
)

SAMPLES = {  # (nu_pdg, is_cc, probability)
    "bnb": [
        (14, 1, 0.70),
        (-14, 1, 0.03),
        (12, 1, 0.013),
        (-12, 1, 0.002),
        (14, 0, 0.235),
        (-14, 0, 0.015),
        (12, 0, 0.005),
    ],
    "nue": [(12, 1, 0.90), (-12, 1, 0.10)],
}
INVISIBLE_NC = 0.15
# Cosmic overlay at the real files' density. Sea-level muons cross a horizontal surface at
# ~1 per cm^2 per minute (~170 Hz/m^2): ~4.4 kHz through the TPC's 2.56 x 10.37 m top face.
# A muon's charge reaches the 6400-tick (3.2 ms) readout if it crossed from one full drift
# (4660 ticks, 2.3 ms) before the window opens to its end: 5.5 ms of crossings, ~24 muons.
REAL_COSMICS = 24.0
REAL_PULSES = PulseModel(
    # deconvolved pulses: ~1 us of electronics shaping left after the deconvolution filter,
    # plus longitudinal diffusion (D_L ~ 6 cm^2/s: sigma ~3 ticks after the full 2.3 ms drift)
    sigma0=(3.0, 3.0, 2.5),
    diffusion=0.002,
    bipolar=(0.8, 0.8, 0.0),  # induction planes keep a bipolar residue (~7 % undershoot)
    # noise of 1 ADC (a MIP hit peaks at ~80 ADC on the collection plane, ~50 on induction);
    # regions of interest open at 8 ADC, which noise alone does not reach, and keep a tick
    # either side
    noise_rms=1.0,
    threshold=8.0,
    pad=1,
)
F4, S64 = "f4", "S64"
SCHEMA = {  # table -> (column, dtype, width); event_id is added to every table
    "event_table": [
        ("is_cc", I4, 1),
        ("nu_pdg", I4, 1),
        ("nu_energy", F4, 1),
        ("lep_energy", F4, 1),
        ("nu_dir", F4, 3),
        ("nu_vtx", F4, 3),
        ("nu_vtx_corr", F4, 3),
        ("nu_vtx_wire_pos", I4, 3),
        ("nu_vtx_wire_time", F4, 1),
    ],
    "wire_table": [("tpc", I4, 1), ("local_plane", I4, 1), ("local_wire", F4, 1)],  # + adc
    "hit_table": [
        ("hit_id", I4, 1),
        ("integral", F4, 1),
        ("rms", F4, 1),
        ("tpc", I4, 1),
        ("local_plane", I4, 1),
        ("local_wire", I4, 1),
        ("local_time", F4, 1),
    ],
    "edep_table": [("hit_id", I4, 1), ("g4_id", I4, 1), ("energy", F4, 1), ("energy_fraction", F4, 1)],
    "particle_table": [
        ("g4_id", I4, 1),
        ("g4_pdg", I4, 1),
        ("parent_id", I4, 1),
        ("category", I4, 1),
        ("instance", I4, 1),
        ("momentum", F4, 1),
        ("start_position", F4, 3),
        ("end_position", F4, 3),
        ("start_position_corr", F4, 3),
        ("end_position_corr", F4, 3),
        ("start_wire_pos", I4, 3),
        ("end_wire_pos", I4, 3),
        ("start_wire_time", F4, 1),
        ("end_wire_time", F4, 1),
        ("start_process", S64, 1),
        ("end_process", S64, 1),
    ],
}


def simulate_microboone(
    path: str | os.PathLike,
    *,
    n_events: int = 10,
    seed: int = 0,
    sample: str = "bnb",
    geometry: str | WireGeometry = "microboone",
    with_wire: bool = True,
    first_event: int = 1,
    run: int = 5000,
    subrun: int | None = None,
    compression_level: int = 6,
    chunk_rows: int = 1000,
    missing_wire_fraction: float = 0.002,
    shuffle_wires: bool = True,
    cosmics: str | int = "real",
) -> pathlib.Path:
    """Write a toy MicroBooNE OpenSamples file (WithWire, or NoWire with ``with_wire=False``).

    Parameters
    ----------
    path : str or PathLike
        Output file; overwritten atomically (written next to it, then renamed).
    n_events : int
        Number of events (>= 1).
    seed : int
        Seed; event ``k`` depends only on ``seed``, ``k`` and the options, not on ``n_events``.
    sample : {"bnb", "nue"}
        Inclusive BNB mix or the nue-CC enriched sample.
    geometry : str or WireGeometry
        ``"microboone"`` (2400/2400/3456 wires x 6400 ticks) or ``"small"`` for tests.
    with_wire : bool
        Write ``wire_table`` (WithWire); NoWire files hold the same events without it.
    first_event, run, subrun : int
        Event numbers are ``first_event, first_event + 1, ...``; ``subrun`` defaults to
        ``1 + seed % 1000``.
    compression_level : int
        gzip level of every dataset.
    chunk_rows : int
        Rows per HDF5 chunk of every column; ``adc`` chunks are ``(chunk_rows, ticks)``.
    missing_wire_fraction : float
        Fraction of dead wires (no wire_table row, no hits), the same in every event.
    shuffle_wires : bool
        Shuffle the wire rows of each event.
    cosmics : {"real", "sparse"} or int
        Cosmic overlay and pulse shapes. ``"real"``: a Poisson mean of ``REAL_COSMICS`` (24)
        muons per readout over the whole visible window (scaled to the geometry's window),
        narrow bipolar/unipolar pulses in padded regions of interest with noise: the public
        files' density. ``"sparse"``: 1-5 muons and wide unipolar pulses, exactly the files
        of earlier releases (about half as dense). An integer: that Poisson mean with the
        real pulse shapes.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    if sample not in SAMPLES:
        raise ConfigError(f"unknown sample {sample!r}; use one of {sorted(SAMPLES)}")
    if n_events < 1 or chunk_rows < 1:
        raise ConfigError(f"n_events and chunk_rows must be >= 1, got {n_events}, {chunk_rows}")
    if not 0 <= missing_wire_fraction < 1:
        raise ConfigError(f"missing_wire_fraction must be in [0, 1), got {missing_wire_fraction}")
    geom = get_geometry(geometry)
    overlay = _Overlay.of(cosmics, geom)
    subrun = 1 + seed % 1000 if subrun is None else subrun
    ids = np.array([[run, subrun, first_event + k] for k in range(n_events)], np.int32)
    dead = np.zeros(geom.n_wires, bool)
    n_dead = round(missing_wire_fraction * geom.n_wires)
    dead[np.random.default_rng([seed, 0]).choice(geom.n_wires, n_dead, replace=False)] = True
    live = np.flatnonzero(~dead)
    scale = min(1.0, (geom.z_max / 1037.0) ** 0.6)  # 1 on microboone, 0.25 on small
    rows: dict[str, list] = {t: [] for t in SCHEMA}
    path = pathlib.Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with h5py.File(tmp, "w") as f:
            adc = None
            if with_wire:
                adc = f.create_group("wire_table").create_dataset(
                    "adc",
                    shape=(n_events * live.size, geom.ticks),
                    maxshape=(None, geom.ticks),
                    dtype=F4,
                    chunks=(chunk_rows, geom.ticks),
                    compression="gzip",
                    compression_opts=compression_level,
                )
            with _AdcWriter(adc, compression_level) as writer:
                for k in range(n_events):
                    rng = np.random.default_rng([seed, 1, k])
                    keys, vals = _event(k, rng, sample, geom, scale, dead, rows, overlay)
                    if adc is not None:
                        order = rng.permutation(live) if shuffle_wires else live
                        row_of = np.full(geom.n_wires, -1, np.int64)
                        row_of[order] = np.arange(order.size)
                        gw, tick = np.divmod(keys, geom.ticks)
                        writer.add_event(row_of[gw], tick, vals, order.size)
                        plane, wire = _plane_wire(order, geom)
                        rows["wire_table"].append(
                            (k, dict(tpc=np.zeros_like(plane), local_plane=plane, local_wire=wire))
                        )
            for name, parts in rows.items():
                if name != "wire_table" or with_wire:
                    _write_table(
                        f.require_group(name), SCHEMA[name], parts, ids, chunk_rows, compression_level
                    )
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _event(k, rng, sample, geom, scale, dead, rows, overlay) -> tuple[np.ndarray, np.ndarray]:
    """Simulate event ``k`` into ``rows``; return its sparse waveforms (wire*ticks+tick, adc)."""
    mix = SAMPLES[sample]
    nu_pdg, is_cc, _ = mix[rng.choice(len(mix), p=[m[2] for m in mix])]
    e_nu = min(0.1 + rng.gamma(2.6, 0.5), 6.0)
    if is_cc and abs(nu_pdg) == 14:
        e_nu = max(e_nu, 0.25)  # above the muon production threshold
    m_lep = 0.10566 if is_cc and abs(nu_pdg) == 14 else 0.000511 * is_cc
    e_lep = max(e_nu * (1 - rng.beta(1.2, 3.0)), m_lep + 0.02)
    nu_dir = np.array([*rng.normal(0, 0.005, 2), 1.0])
    nu_dir /= np.linalg.norm(nu_dir)
    vtx = rng.uniform([0, -geom.y_half, 0], [geom.x_max, geom.y_half, geom.z_max])
    vtx = vtx.astype(np.float32).astype(np.float64)  # truth derived from the stored value
    tr = Trajectories(rng, scale)
    if is_cc or rng.random() >= INVISIBLE_NC:
        add_final_state(tr, bool(is_cc), nu_pdg, vtx, nu_dir, e_nu, e_lep)
    for _ in range(overlay.count(rng)):
        tr.cosmic(geom, whole_window=not overlay.sparse)
    rows["event_table"].append(
        (
            k,
            dict(
                is_cc=is_cc,
                nu_pdg=nu_pdg,
                nu_energy=e_nu,
                lep_energy=e_lep,
                nu_dir=nu_dir,
                nu_vtx=vtx,
                nu_vtx_corr=space_charge(vtx, geom),
                nu_vtx_wire_pos=nearest_wires(vtx, geom),
                nu_vtx_wire_time=tick_of(vtx[0], geom),
            ),
        )
    )
    if tr.particles:
        rows["particle_table"].append((k, _particle_columns(tr.particles, geom)))
    s = tr.samples()
    s = {c: v[inside(s["pos"], geom)] for c, v in s.items()}
    keys, vals, sample_keys = _waveforms(s, geom, dead, overlay.pulses, rng)
    hits, first, last = _hits(keys, vals, geom)
    rows["hit_table"].append((k, hits))
    rows["edep_table"].append((k, _edeps(sample_keys, s, first, last)))
    return keys, vals


@dataclass(frozen=True)
class _Overlay:
    """Cosmic muons per readout and the pulse shapes of one ``cosmics=`` choice."""

    sparse: bool
    mean: float
    pulses: PulseModel

    @classmethod
    def of(cls, cosmics: str | int, geom: WireGeometry) -> _Overlay:
        if cosmics == "sparse":
            return cls(True, 3.0, SPARSE_PULSES)
        if cosmics == "real":
            # the rate per readout grows with the visible window: readout plus one drift
            window = geom.ticks + geom.x_max / geom.drift_cm_per_tick
            full = MICROBOONE.ticks + MICROBOONE.x_max / MICROBOONE.drift_cm_per_tick
            return cls(False, REAL_COSMICS * window / full, REAL_PULSES)
        if isinstance(cosmics, (int, np.integer)) and not isinstance(cosmics, bool) and cosmics >= 0:
            return cls(False, float(cosmics), REAL_PULSES)
        raise ConfigError(
            f"cosmics must be 'real', 'sparse' or a mean number of muons per readout (an integer >= 0), "
            f"got {cosmics!r}"
        )

    def count(self, rng: np.random.Generator) -> int:
        return int(rng.integers(1, 6)) if self.sparse else int(rng.poisson(self.mean))


def _particle_columns(parts: list[dict], geom) -> dict[str, np.ndarray]:
    col = {
        c: np.array([p[c] for p in parts])
        for c in (
            "g4_id",
            "g4_pdg",
            "parent_id",
            "category",
            "instance",
            "momentum",
            "start_process",
            "end_process",
        )
    }
    for end in ("start", "end"):
        pos = np.stack([p[end] for p in parts])
        col.update(
            {
                f"{end}_position": pos,
                f"{end}_position_corr": space_charge(pos, geom),
                f"{end}_wire_pos": nearest_wires(pos, geom),
                f"{end}_wire_time": tick_of(pos[:, 0], geom),
            }
        )
    return col
