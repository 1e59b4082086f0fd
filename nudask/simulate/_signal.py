"""Charge samples -> shaped waveforms, hits and energy deposits (toy MicroBooNE signal)."""

from __future__ import annotations

import numpy as np

from ._topology import tick_of, wire_coords

# signal: ADC x tick per MeV (u, v, y), pulse sigma (ticks) at the anode, diffusion per drift tick
GAIN = np.array([450.0, 450.0, 560.0])
SIGMA0 = np.array([5.0, 5.0, 4.0])
DIFFUSION = 0.0075
THRESHOLD = 0.5  # ADC: below it a sample is zero (outside every region of interest)
MAX_HIT_TICKS = 64  # long pulses are split into hits of at most this many ticks


def _waveforms(s: dict, geom, dead: np.ndarray):
    """Charge samples -> sparse shaped waveforms, sorted by key = global wire * ticks + tick.

    Also returns each sample's key on each plane (``(3, n)``, -1 where it reads nothing).
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
    sig2 = SIGMA0[:, None] ** 2 + DIFFUSION * s["pos"][None, :, 0] / geom.drift_cm_per_tick
    sig2 = np.broadcast_to(sig2, q.shape)
    key, q, sig2 = skeys[ok], q[ok], sig2[ok]
    order = np.argsort(key, kind="stable")
    key, q, sig2 = key[order], q[order], sig2[order]
    first = np.flatnonzero(np.r_[True, key[1:] != key[:-1]]) if key.size else np.zeros(0, int)
    qsum = np.add.reduceat(q, first) if key.size else np.zeros(0)
    sigma = np.sqrt(np.add.reduceat(q * sig2, first) / qsum) if key.size else np.zeros(0)
    keys, vals = _shape(key[first], qsum, sigma, T)
    return keys, vals, skeys


def _shape(keys, q, sigma, T):
    """Gaussian pulse along ticks for every deposit bin, thresholded to exact zeros.

    Deposits less than two kernel widths apart on a wire form a window; windows are
    grouped by their (half-tick quantised) sigma and each group is one ``np.convolve``.
    """
    if keys.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    K = int(np.ceil(3.5 * sigma.max())) + 1
    new = np.r_[True, (np.diff(keys) > 2 * K) | (np.diff(keys // T) != 0)]
    win = np.cumsum(new) - 1
    w0, w1 = keys[new], keys[np.r_[new[1:], True]]
    level = np.maximum(2, np.rint(2 * np.bincount(win, q * sigma) / np.bincount(win, q)))
    out_k, out_v = [], []
    for lev in np.unique(level):
        sel = np.flatnonzero(level == lev)
        span = w1[sel] - w0[sel] + 1 + 2 * K
        base = np.cumsum(span) - span
        local = np.full(w0.size, -1)
        local[sel] = np.arange(sel.size)
        d = local[win] >= 0
        pos = base[local[win[d]]] + keys[d] - w0[win[d]] + K
        buf = np.bincount(pos, q[d], minlength=int(span.sum()))
        kern = np.exp(-0.5 * (np.arange(-K, K + 1) / (lev / 2)) ** 2)
        conv = np.convolve(buf, kern / kern.sum(), mode="same")
        k = np.repeat(w0[sel] - K - base, span) + np.arange(buf.size)
        lo = np.repeat(w0[sel] // T * T, span)
        keep = (conv >= THRESHOLD) & (k >= lo) & (k < lo + T)
        out_k.append(k[keep])
        out_v.append(conv[keep])
    k, v = np.concatenate(out_k), np.concatenate(out_v).astype(np.float32)
    order = np.argsort(k, kind="stable")
    return k[order], v[order]


def _hits(keys, vals, geom):
    """One hit per run of non-zero ticks on a wire (split every MAX_HIT_TICKS ticks)."""
    gw, t = np.divmod(keys, geom.ticks)
    run_start = np.diff(keys, prepend=-2) != 1
    run_start[1:] |= np.diff(gw) != 0
    idx = np.arange(keys.size)
    pos = idx - np.maximum.accumulate(np.where(run_start, idx, 0))
    first = np.flatnonzero(run_start | (pos % MAX_HIT_TICKS == 0))
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
