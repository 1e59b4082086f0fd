"""Toy DUNE supernova cluster NPZ batches, drawn the way online-pointing-utils draws them.

A cluster is a set of trigger primitives (TPs), one per channel crossed: a start
tick, samples over threshold, samples to peak and an ADC peak. Each TP is drawn
as a *pentagon* in time on its channel: the plane threshold (X 60, U and V 70
ADC) at the first and last sample, 60 % of the way to the peak at the
intermediate points, the peak at ``start + samples_to_peak``; overlapping TPs
keep the maximum. Channels are made consecutive and the cluster is centred in
the ``128 x W`` window (rows = ticks, columns = channels), raw ADC float32.

Physics of the toy (so that the picture carries the truth):

- *main tracks* (about 40 %) are the electrons of CC and ES interactions, a
  straight track of about 0.5 cm per MeV (2-9 cm), projected on the plane:
  drift x along the time axis (8 ticks per cm), the plane's pitch direction
  (X: z; U, V: +-35.7 degrees from z in y-z) along the channels (2 per cm).
  The charge per channel rises toward the end of the track (a stopping
  electron), so the head-tail sign shows. CC clusters also carry the nucleus'
  de-excitation blips near the track; ES clusters are clean.
- backgrounds are blips (1-2 channels) and short secondaries (2-4 channels).
- 90 % of main tracks are Marley (supernova) clusters, 35 % of backgrounds.

Every generation of the metadata is written (:mod:`nudask.readers.dune_sn_layout`)
from the same truth; ``cluster_energy`` is the image's ADC sum over the
plane's conversion factor, as in the real files.
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import ConfigError
from ..readers.dune_sn_layout import ADC_PER_MEV, GENERATIONS, PLANES, THRESHOLDS, TICKS, metadata_block

TICKS_PER_CM, CHANNELS_PER_CM = 8.0, 2.0
WIRE_ANGLE = np.deg2rad(35.7)
PITCH = {  # unit pitch direction of each plane in (x, y, z): what the channel number measures
    "U": np.array([0.0, np.sin(WIRE_ANGLE), np.cos(WIRE_ANGLE)]),
    "V": np.array([0.0, -np.sin(WIRE_ANGLE), np.cos(WIRE_ANGLE)]),
    "X": np.array([0.0, 0.0, 1.0]),
}
ELECTRON_MASS = 0.511  # MeV


def pentagon(start: int, sot: int, stopeak: int, peak: float, threshold: float) -> np.ndarray:
    """ADC at ticks ``start .. start + sot`` of one TP (online-pointing-utils' pentagon).

    >>> np.round(pentagon(0, 4, 2, 100.0, 60.0), 6).tolist()
    [60.0, 84.0, 100.0, 84.0, 60.0]
    """
    end, tpeak = start + sot, start + stopeak
    t = np.arange(start, end + 1, dtype=np.float64)
    T = max(end - start, 1)
    rel = min(max((tpeak - start) / T, 0.0), 1.0)
    rise = round(start + 0.5 * rel * T)
    fall = round(start + (rel + 0.5 * (1 - rel)) * T)
    mid = threshold + 0.6 * (peak - threshold)
    # piecewise-linear through (start, thr), (rise, mid), (peak, peak), (fall, mid), (end, thr)
    xs = np.array([start, rise, tpeak, fall, end], np.float64)
    ys = np.array([threshold, mid, peak, mid, threshold])
    xs = np.maximum.accumulate(xs + np.arange(5) * 1e-9)  # strictly increasing for np.interp
    out = np.interp(t, xs, ys)
    out[0] = out[-1] = threshold
    return out


def draw(tps: np.ndarray, plane: str, width: int) -> np.ndarray:
    """Image ``(128, width)`` of TPs ``(channel, start, sot, stopeak, peak)``, centred, max on overlap."""
    img = np.zeros((TICKS, width), np.float32)
    if len(tps) == 0:
        return img
    channels = np.unique(tps[:, 0].astype(np.int64))
    col_of = {c: k for k, c in enumerate(channels)}
    t0 = int(tps[:, 1].min())
    ticks = int((tps[:, 1] + tps[:, 2]).max()) - t0 + 1
    pad_x = max(0, (width - len(channels)) // 2)
    pad_y = max(0, (TICKS - ticks) // 2)
    thr = THRESHOLDS[plane]
    for ch, start, sot, stopeak, peak in tps:
        x = col_of[int(ch)] + pad_x
        if x >= width:
            continue
        values = pentagon(int(start), int(sot), int(stopeak), float(peak), thr)
        y = np.arange(values.size) + int(start) - t0 + pad_y
        ok = (y >= 0) & (y < TICKS)
        np.maximum.at(img[:, x], y[ok], values[ok].astype(np.float32))
    return img


def _unit(rng: np.random.Generator) -> np.ndarray:
    v = rng.normal(size=3)
    return v / np.linalg.norm(v)


def _track_tps(rng, direction: np.ndarray, length_cm: float, plane: str, energy: float) -> list:
    """TPs of a straight stopping track from the origin along ``direction``."""
    steps = np.linspace(0.0, 1.0, 64)
    t = steps * length_cm * direction[0] * TICKS_PER_CM
    c = steps * length_cm * float(direction @ PITCH[plane]) * CHANNELS_PER_CM
    dq = 1.0 + 2.5 * steps**4  # more charge toward the end: the head-tail sign
    chan = np.floor(c + 0.5).astype(np.int64)
    tps = []
    scale = 900.0 * energy / 10.0 / dq.sum() * 64 / max(np.unique(chan).size, 1)
    for ch in np.unique(chan):
        on = chan == ch
        start = int(np.floor(t[on].min()))
        span = int(np.ceil(t[on].max())) - start
        sot = span + int(rng.integers(6, 10))
        peak = THRESHOLDS[plane] + scale * dq[on].sum() / 64 * rng.uniform(0.85, 1.15) + 40
        stopeak = int(np.clip(np.argmax(dq[on]) / max(on.sum(), 1) * span + sot // 3, 1, sot - 1))
        tps.append((ch, start, sot, stopeak, min(peak, 4000.0)))
    return tps


def _blip_tps(rng, plane: str, n_channels: int, first: int = 0, t0: int = 0) -> list:
    tps = []
    for k in range(n_channels):
        sot = int(rng.integers(4, 12))
        tps.append((first + k, t0 + int(rng.integers(0, 4)), sot, int(rng.integers(1, sot)),
                    THRESHOLDS[plane] + rng.uniform(20, 300)))  # fmt: skip
    return tps


def cluster(rng: np.random.Generator, plane: str, width: int, event: int) -> tuple[np.ndarray, dict]:
    """One cluster image and its truth (every column of every generation)."""
    main = rng.random() < 0.4
    es = rng.random() < 0.5
    marley = rng.random() < (0.9 if main else 0.35)
    nu_energy = float(rng.gamma(4.0, 3.5)) + 5.0 if marley else -1.0
    nu_dir = _unit(rng)
    pos = rng.uniform([-360, -600, 0], [360, 600, 1400])
    if main:
        direction = _unit(rng)
        energy = float(
            np.clip(nu_energy * (rng.uniform(0.3, 0.9) if es else 0.85) - (0 if es else 1.5), 2, 60)
        )
        if not marley:
            energy = float(rng.uniform(3, 30))
        length = float(np.clip(energy * 0.5, 2.0, 9.0))
        tps = _track_tps(rng, direction, length, plane, energy)
        if not es:  # CC: de-excitation blips near the track
            span = max(int(t[0]) for t in tps) - min(int(t[0]) for t in tps)
            for _ in range(int(rng.integers(1, 4))):
                tps += _blip_tps(rng, plane, int(rng.integers(1, 3)), int(rng.integers(-3, span + 4)),
                                 int(rng.integers(-30, 30)))  # fmt: skip
    else:
        direction = _unit(rng)
        energy = float(rng.uniform(0.3, 3.0))
        if rng.random() < 0.6:
            tps = _blip_tps(rng, plane, int(rng.integers(1, 3)))
        else:
            tps = _track_tps(rng, direction, float(rng.uniform(0.5, 1.5)), plane, energy)
    img = draw(np.array(tps, np.float64), plane, width)
    total = energy + ELECTRON_MASS
    mom = np.sqrt(max(total**2 - ELECTRON_MASS**2, 0.0)) / 1000.0 * direction  # GeV/c
    truth = {
        "cluster_event": event,
        "is_marley": float(marley),
        "is_main_track": float(main),
        "is_es_interaction": float(es),
        "true_pos_x": pos[0], "true_pos_y": pos[1], "true_pos_z": pos[2],
        "true_dir_x": direction[0], "true_dir_y": direction[1], "true_dir_z": direction[2],
        "true_mom_x": mom[0], "true_mom_y": mom[1], "true_mom_z": mom[2],
        "true_nu_energy": nu_energy,
        "true_particle_energy": energy,
        "cluster_energy": float(img.sum(dtype=np.float64)) / ADC_PER_MEV[plane],
        "plane_id": float(PLANES.index(plane)),
        "match_id": float(event if main else -1),
        "nu_mom_x": max(nu_energy, 0) / 1000 * nu_dir[0],
        "nu_mom_y": max(nu_energy, 0) / 1000 * nu_dir[1],
        "nu_mom_z": max(nu_energy, 0) / 1000 * nu_dir[2],
    }  # fmt: skip
    return img, truth


def _choices(value, allowed: tuple[int, ...], what: str) -> list[int]:
    items = str(value).replace("mixed", ",".join(map(str, allowed))).split(",")
    try:
        out = [int(x) for x in items if x.strip()]
    except ValueError:
        out = []
    if not out or any(x not in allowed for x in out):
        raise ConfigError(
            f"dune_sn simulate: {what}={value!r}; use one of {allowed} or a comma list, or mixed"
        )
    return out


def simulate_dune_sn(
    out: str | os.PathLike,
    *,
    files: int = 3,
    events: int = 200,
    seed: int = 0,
    generation: str | int = 12,
    width: str | int = 16,
    naming: str = "batch",
    planes: str = "UVX",
) -> list[str]:
    """Write ``files`` NPZ files of ``events`` clusters each into folder ``out``.

    File ``k`` is plane ``planes[k % len(planes)]`` (``U, V, X`` in turn by default) of batch
    ``k // len(planes)``; ``planes=X`` writes the collection plane only. ``generation`` and
    ``width`` are one value or a comma list (or ``mixed``: all) cycled over the
    batches. ``naming`` is ``batch`` (``clusters_plane{P}_batch{NNNN}.npz``) or
    ``basename`` (``{basename}_plane{P}.npz``, the 13+ column writer's names).
    """
    gens = _choices(generation, tuple(GENERATIONS), "generation")
    widths = _choices(width, (16, 32), "width")
    if naming not in ("batch", "basename"):
        raise ConfigError(f"dune_sn simulate: naming={naming!r}; use batch or basename")
    chosen = str(planes).upper().replace(",", "")
    if not chosen or any(p not in PLANES for p in chosen) or len(set(chosen)) != len(chosen):
        raise ConfigError(f"dune_sn simulate: planes={planes!r}; use letters of UVX, e.g. X or UVX")
    os.makedirs(out, exist_ok=True)
    paths = []
    for k in range(files):
        batch, plane = divmod(k, len(chosen))
        plane_name = chosen[plane]
        rng = np.random.default_rng([seed, k])
        w, g = widths[batch % len(widths)], gens[batch % len(gens)]
        images = np.empty((events, TICKS, w), np.float32)
        truths = []
        for i in range(events):
            images[i], t = cluster(rng, plane_name, w, batch * 100_000 + i)
            truths.append(t)
        truth = {name: np.array([t[name] for t in truths]) for name in truths[0]} if truths else {}
        meta = metadata_block(truth, g) if truths else np.zeros((0, g), np.float32)
        name = (
            f"clusters_plane{plane_name}_batch{batch:04d}.npz"
            if naming == "batch"
            else f"prod_sn_{batch:04d}_plane{plane_name}.npz"
        )
        path = os.path.join(os.fspath(out), name)
        np.savez(path, images=images, metadata=meta)
        paths.append(path)
    return paths
