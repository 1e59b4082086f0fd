"""Charge samples -> shaped waveforms, hits and energy deposits (toy MicroBooNE signal)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._topology import tick_of, wire_coords

# signal: ADC x tick per MeV (u, v, y)
GAIN = np.array([450.0, 450.0, 560.0])
MAX_HIT_TICKS = 64  # long pulses are split into hits of about this many ticks


@dataclass(frozen=True)
class PulseModel:
    """How a deposit becomes samples of the deconvolved waveform on one plane.

    A deposit is a Gaussian pulse along ticks (``sigma0`` at the anode, growing with
    drift by ``diffusion`` ticks^2 per tick). On each plane ``bipolar`` (``a``) turns the
    Gaussian ``g(t)`` into ``g(t) (1 - a t / sigma)``: a leading positive lobe and, for
    ``a`` near 1, a trailing negative one of ~13 % of the peak, with the same net charge.
    That is the residue the deconvolution of an induction wire's bipolar response
    leaves; collection wires see unipolar pulses. The waveform carries ``noise_rms``
    (ADC) of shaped electronics noise and is kept in regions of interest only: ``pad``
    ticks either side of every sample at or beyond +-``threshold``, where the region holds
    a positive sample at or above it. Outside them it is exactly zero.
    """

    sigma0: tuple[float, float, float]
    diffusion: float
    bipolar: tuple[float, float, float] = (0.0, 0.0, 0.0)
    threshold: float = 0.5
    pad: int = 0
    noise_rms: float = 0.0


# the simulator before real-density overlays: wide unipolar pulses cut at 0.5 ADC, no noise
SPARSE_PULSES = PulseModel(sigma0=(5.0, 5.0, 4.0), diffusion=0.0075)


def _waveforms(s: dict, geom, dead: np.ndarray, pulses: PulseModel = SPARSE_PULSES, rng=None):
    """Charge samples -> sparse shaped waveforms, sorted by key = global wire * ticks + tick.

    Also returns each sample's key on each plane (``(3, n)``, -1 where it reads nothing).
    ``rng`` draws the noise of ``pulses`` (unused without noise).
    """
    T = geom.ticks
    nw = np.asarray(geom.wires)
    wire = np.floor(wire_coords(s["pos"], geom)).astype(np.int64).T  # (3, n)
    tick = np.floor(tick_of(s["pos"][:, 0], geom) + s["t0"]).astype(np.int64)
    gw = wire + np.cumsum(np.r_[0, nw[:-1]])[:, None]
    ok = (wire >= 0) & (wire < nw[:, None]) & (tick >= 0) & (tick < T)
    ok &= ~dead[np.where(ok, gw, 0)]
    skeys = np.where(ok, gw * T + tick, -1)
    recomb = 1.147 / (1 + 0.07 * s["dedx"])  # Birks-like, 1 at a MIP: dense ionisation recombines
    q = (s["energy"] * recomb)[None] * GAIN[:, None]
    sigma0 = np.asarray(pulses.sigma0)
    sig2 = sigma0[:, None] ** 2 + pulses.diffusion * s["pos"][None, :, 0] / geom.drift_cm_per_tick
    sig2 = np.broadcast_to(sig2, q.shape)
    key, q, sig2 = skeys[ok], q[ok], sig2[ok]
    order = np.argsort(key, kind="stable")
    key, q, sig2 = key[order], q[order], sig2[order]
    first = np.flatnonzero(np.r_[True, key[1:] != key[:-1]]) if key.size else np.zeros(0, int)
    qsum = np.add.reduceat(q, first) if key.size else np.zeros(0)
    sigma = np.sqrt(np.add.reduceat(q * sig2, first) / qsum) if key.size else np.zeros(0)
    keys, vals = _shape(key[first], qsum, sigma, geom, pulses, rng)
    return keys, vals, skeys


def _shape(keys, q, sigma, geom, pulses: PulseModel, rng):
    """Pulses along ticks for every deposit bin, cut to regions of interest (exact zeros outside).

    Deposits less than two kernel widths apart on a wire form a window; windows are
    grouped by plane and (half-tick quantised) sigma and each group is one ``np.convolve``.
    """
    T = geom.ticks
    if keys.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    # the margin holds the pulse and its region-of-interest padding, so that a window's
    # padding never reaches into the next window's buffer
    K = int(np.ceil(3.5 * sigma.max())) + 1 + pulses.pad
    new = np.r_[True, (np.diff(keys) > 2 * K) | (np.diff(keys // T) != 0)]
    win = np.cumsum(new) - 1
    w0, w1 = keys[new], keys[np.r_[new[1:], True]]
    level = np.maximum(2, np.rint(2 * np.bincount(win, q * sigma) / np.bincount(win, q)))
    plane = np.searchsorted(np.cumsum(geom.wires), w0 // T, side="right")
    bipolar = np.asarray(pulses.bipolar)[plane]
    group = level * 8 + np.unique(bipolar, return_inverse=True)[1].reshape(-1)
    out_k, out_v = [], []
    for g in np.unique(group):
        sel = np.flatnonzero(group == g)
        lev, a = level[sel[0]], bipolar[sel[0]]
        span = w1[sel] - w0[sel] + 1 + 2 * K
        base = np.cumsum(span) - span
        local = np.full(w0.size, -1)
        local[sel] = np.arange(sel.size)
        d = local[win] >= 0
        pos = base[local[win[d]]] + keys[d] - w0[win[d]] + K
        buf = np.bincount(pos, q[d], minlength=int(span.sum()))
        t = np.arange(-K, K + 1) / (lev / 2)
        kern = np.exp(-0.5 * t**2)
        kern = kern / kern.sum()
        if a:  # the derivative term sums to zero: the pulse keeps its charge
            kern = kern * (1 - a * t)
        conv = np.convolve(buf, kern, mode="same")
        if pulses.noise_rms:
            conv += _noise(rng, buf.size, pulses.noise_rms)
        k = np.repeat(w0[sel] - K - base, span) + np.arange(buf.size)
        lo = np.repeat(w0[sel] // T * T, span)
        inside = (k >= lo) & (k < lo + T)
        k, conv = k[inside], conv[inside]
        keep = _regions_of_interest(k, conv, pulses.threshold, pulses.pad, T)
        out_k.append(k[keep])
        out_v.append(conv[keep])
    k, v = np.concatenate(out_k), np.concatenate(out_v).astype(np.float32)
    order = np.argsort(k, kind="stable")
    return k[order], v[order]


def _regions_of_interest(k: np.ndarray, v: np.ndarray, threshold: float, pad: int, T: int) -> np.ndarray:
    """Mask of the samples (increasing keys ``k``, values ``v``) kept in regions of interest."""
    seed = np.abs(v) >= threshold
    if pad == 0:
        return seed & (v > 0)  # a unipolar region: its seeds are its positive samples
    c = np.cumsum(np.r_[0, seed], dtype=np.int64)
    i = np.arange(seed.size)  # a running count of seeds over 2 pad + 1 samples
    roi = c[np.minimum(i + pad + 1, seed.size)] > c[np.maximum(i - pad, 0)]
    kk = k[roi]
    start = np.r_[True, (np.diff(kk) != 1) | (np.diff(kk // T) != 0)]
    if kk.size:  # a negative lobe alone is no region: it needs a positive seed and net charge
        first, region = np.flatnonzero(start), np.cumsum(start) - 1
        vr = v[roi]
        charged = (np.maximum.reduceat(vr, first) >= threshold) & (np.add.reduceat(vr, first) > 0)
        roi[np.flatnonzero(roi)[~charged[region]]] = False
    return roi


def _noise(rng: np.random.Generator, n: int, rms: float) -> np.ndarray:
    """White noise through a 2-tick Gaussian filter (the shaping after deconvolution), ``rms`` ADC."""
    kern = np.exp(-0.5 * (np.arange(-6, 7) / 2.0) ** 2)
    kern *= rms / np.sqrt(np.sum(kern**2))
    return np.convolve(rng.standard_normal(n), kern, mode="same")


def _hits(keys, vals, geom):
    """One hit per run of non-zero ticks on a wire (split every MAX_HIT_TICKS ticks).

    Every run holds a positive peak and net charge; a piece of it without (a negative
    lobe, padding) joins the piece before it, or after it at the start of a run.
    """
    gw, t = np.divmod(keys, geom.ticks)
    run_start = np.diff(keys, prepend=-2) != 1
    run_start[1:] |= np.diff(gw) != 0
    idx = np.arange(keys.size)
    pos = idx - np.maximum.accumulate(np.where(run_start, idx, 0))
    first = np.flatnonzero(run_start | (pos % MAX_HIT_TICKS == 0))
    first = _join_pieces_without_charge(first, run_start, vals)
    last = np.append(first[1:], keys.size)[: first.size] - 1
    n, v = first.size, vals.astype(np.float64)
    hit = np.repeat(np.arange(n), last - first + 1)

    def per_hit(x, ufunc=np.add):
        return ufunc.reduceat(x, first) if n else np.zeros(0)

    integral = per_hit(v)
    mean = per_hit(v * t) / integral
    var = per_hit(v * t * t) / integral - mean**2
    at_max = np.flatnonzero(v == per_hit(v, np.maximum)[hit])
    peak = t[at_max[np.diff(hit[at_max], prepend=-1) != 0]]  # first largest sample of each hit
    plane, wire = _plane_wire(gw[first], geom)
    cols = dict(
        hit_id=np.arange(n),
        integral=integral,
        rms=np.sqrt(np.maximum(var, 0.25)),
        tpc=np.zeros(n),
        local_plane=plane,
        local_wire=wire,
        local_time=peak,
    )
    return cols, keys[first], keys[last]


def _join_pieces_without_charge(first: np.ndarray, run_start: np.ndarray, vals: np.ndarray) -> np.ndarray:
    """Drop piece starts until every piece ``[first[i], first[i + 1])`` has a positive peak and sum."""
    while first.size:
        good = (np.maximum.reduceat(vals, first) > 0) & (np.add.reduceat(vals, first, dtype=np.float64) > 0)
        if good.all():
            return first
        bad = ~good
        starts_run = run_start[first]
        # a bad piece joins the one before it; a bad first piece of a run takes in the next
        drop = bad & ~starts_run
        drop[1:] |= bad[:-1] & starts_run[:-1] & ~starts_run[1:]
        if not drop.any():
            return first  # a whole run without charge cannot be mended here
        first = first[~drop]
    return first


def _edeps(skeys, s, first, last) -> dict[str, np.ndarray]:
    """Energy of every neutrino particle in every hit, from the samples read inside it."""
    nu = (skeys >= 0) & (s["owner"] > 0)[None]
    key = skeys[nu]
    owner = np.broadcast_to(s["owner"], skeys.shape)[nu].astype(np.int64)
    energy = np.broadcast_to(s["energy"], skeys.shape)[nu]
    h = np.searchsorted(first, key, side="right") - 1
    ok = (h >= 0) & (key <= last[np.maximum(h, 0)]) if first.size else np.zeros(key.size, bool)
    combo = h[ok] * (owner.max(initial=0) + 1) + owner[ok]
    uniq, inv = np.unique(combo, return_inverse=True)
    e = np.bincount(inv, energy[ok]) if uniq.size else np.zeros(0)
    hit, g4 = np.divmod(uniq, owner.max(initial=0) + 1)
    total = np.bincount(hit, e)[hit] if uniq.size else np.zeros(0)
    return dict(hit_id=hit, g4_id=g4, energy=e, energy_fraction=e / np.where(total > 0, total, 1))


def _plane_wire(gw: np.ndarray, geom) -> tuple[np.ndarray, np.ndarray]:
    """Global wire index (u wires, then v, then y) -> (local_plane, local_wire)."""
    offsets = np.cumsum((0, *geom.wires))
    plane = np.searchsorted(offsets, gw, side="right") - 1
    return plane.astype(np.int32), (gw - offsets[plane]).astype(np.int32)
