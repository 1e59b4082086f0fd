"""Simulated CONNIE files: raw Skipper fpack images, calibrated images, cropped events, hitSumm.

``simulate(out, files=F, events=N, seed=S)`` writes ``F`` raw images of ``N``
particles each (spread over the amplifiers, one per cell of a grid so that
they do not overlap), and beside them:

==================================  ==========================================================
``run{R}_img{K}.fits.fz``            raw: empty primary HDU, one int32 ``CompImageHDU`` (RICE)
                                     per amplifier ``CHID``; ``NSAMP`` samples per pixel
                                     interleaved along the columns; header values as strings
``run{R}_img{K}.truth.csv``          truth: amplifier, class, box (active pixels) per particle
``calibrated/..._ohdu{C}.fits``      one 2-D float32 primary HDU in electrons per amplifier
``events/ev_{R}_{K}_{C}_{J}.fits``   one cropped event per file (box padded by 30), ``LABEL``
``hitSumm_run{R}.root``              the particles' pixels as a ``hitSumm`` tree (uproot)
==================================  ==========================================================

The amplifiers differ in pedestal and gain; the noise per sample is ``noise``
electrons, so a pixel's falls as 1/sqrt(NSAMP); dark current ``dark`` e-/pixel
fills the one-electron peak that gain calibration measures.
"""

from __future__ import annotations

import os

import numpy as np

from .extract import CLASSES, EV_PER_ELECTRON

OPTIONS = {
    "rows": "rows per amplifier (NROW)",
    "cols": "active columns per amplifier",
    "nsamp": "Skipper samples per pixel (NSAMP)",
    "amplifiers": "amplifiers (image HDUs) per file",
    "prescan": "prescan columns (CCDNPRES)",
    "overscan": "overscan columns (CCDNOVER)",
    "noise": "readout noise per sample, electrons",
    "dark": "dark current, electrons per pixel",
    "pad": "pixels around each cropped event",
    "run": "RUNID of the images",
}


def _deposit(rng, kind: str, size: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Points (dy, dx, electrons) of one particle around (0, 0), within ``size`` pixels; diffusion."""
    if kind == "muon":  # long straight thin track, ~80 e-/pixel
        length = rng.uniform(0.7, 0.95) * 2 * size
        t = np.arange(0, length, 0.5) - length / 2
        a = rng.uniform(0, np.pi)
        return t * np.sin(a), t * np.cos(a), np.full(t.size, rng.uniform(30, 50)), 0.35
    if kind == "electron":  # wiggly worm
        n = int(rng.integers(20, 45))
        angle = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0, 0.5, n))
        y, x = np.cumsum(np.sin(angle)), np.cumsum(np.cos(angle))
        y, x = y - y.mean(), x - x.mean()
        scale = min(1.0, 0.9 * size / max(np.abs(y).max(), np.abs(x).max(), 1))
        return y * scale, x * scale, rng.uniform(15, 35, n), 0.6
    if kind == "blob":  # a compact irregular cluster of a few spots
        n = int(rng.integers(3, 7))
        r, a = rng.uniform(0, 2.5, n), rng.uniform(0, 2 * np.pi, n)
        return r * np.sin(a), r * np.cos(a), np.full(n, rng.uniform(150, 400)), 1.1
    if kind == "diffusion_hit":  # small round spot
        return np.zeros(1), np.zeros(1), np.array([rng.uniform(60, 300)]), rng.uniform(0.7, 1.1)
    if kind == "alpha":  # large, bright, round
        return np.zeros(1), np.zeros(1), np.array([rng.uniform(1e5, 3e5)]), rng.uniform(2.5, 3.5)
    # other: a short faint vertical streak (a hot column segment)
    n = int(rng.integers(8, 2 * max(int(size), 5)))
    y = np.arange(n) - n / 2.0
    return y, np.zeros(n), np.full(n, rng.uniform(18, 28)), 0.2


def _render(rng, shape, cy, cx, dy, dx, q, sigma) -> np.ndarray:
    """Electrons per pixel: Poisson electrons per point, each diffused by ``sigma``."""
    counts = rng.poisson(q)
    ys = np.repeat(cy + dy, counts) + rng.normal(0, sigma, counts.sum())
    xs = np.repeat(cx + dx, counts) + rng.normal(0, sigma, counts.sum())
    iy, ix = np.round(ys).astype(np.int64), np.round(xs).astype(np.int64)
    ok = (iy >= 0) & (iy < shape[0]) & (ix >= 0) & (ix < shape[1])
    flat = np.bincount(iy[ok] * shape[1] + ix[ok], minlength=shape[0] * shape[1])
    return flat.reshape(shape)


def simulate_amplifier(rng, rows: int, cols: int, n: int, dark: float):
    """Electrons ``(rows, cols)`` of one amplifier's active area and its particles' truth."""
    grid_r = max(1, int(np.floor(np.sqrt(n * rows / cols))))
    grid_c = -(-n // grid_r)
    while grid_r * grid_c < n:
        grid_r += 1
    ch, cw = rows / grid_r, cols / grid_c
    electrons = rng.poisson(dark, (rows, cols)).astype(np.int64)
    truth = []
    for j, cell in enumerate(rng.permutation(grid_r * grid_c)[:n]):
        kind = CLASSES[int(rng.integers(len(CLASSES)))]
        size = max(min(ch, cw) / 2 - 4, 2.0)
        cy, cx = (cell // grid_c + 0.5) * ch, (cell % grid_c + 0.5) * cw
        dep = _render(rng, (rows, cols), cy, cx, *_deposit(rng, kind, size))
        electrons += dep
        ys, xs = np.nonzero(dep)
        if ys.size == 0:
            continue
        truth.append(
            {"index": j, "label": kind, "y0": int(ys.min()), "y1": int(ys.max()) + 1,
             "x0": int(xs.min()), "x1": int(xs.max()) + 1, "charge": int(dep.sum())}
        )  # fmt: skip
    return electrons, truth


def simulate(
    out: str,
    *,
    files: int = 1,
    events: int = 24,
    seed: int = 0,
    rows: int = 200,
    cols: int = 300,
    nsamp: int = 64,
    amplifiers: int = 4,
    prescan: int = 7,
    overscan: int = 20,
    noise: float = 1.2,
    dark: float = 0.08,
    pad: int = 30,
    run: int = 125,
) -> list[str]:
    """Write the files (see the module doc); returns the raw images' paths."""
    from astropy.io import fits

    from .catalog import write_hitsumm

    os.makedirs(os.path.join(out, "calibrated"), exist_ok=True)
    os.makedirs(os.path.join(out, "events"), exist_ok=True)
    rng = np.random.default_rng(seed)
    ncol = prescan + cols + overscan
    pedestals = rng.uniform(5_000, 20_000, amplifiers)
    gains = rng.uniform(150, 250, amplifiers)
    paths, catalog = [], []
    for k in range(files):
        stem = os.path.join(out, f"run{run:03d}_img{k:03d}")
        primary = fits.PrimaryHDU()
        primary.header["NAMPS"] = str(amplifiers)
        hdus = [primary]
        rows_truth = []
        for a in range(amplifiers):
            chid = a + 1
            n = events // amplifiers + (a < events % amplifiers)
            electrons, truth = simulate_amplifier(rng, rows, cols, n, dark)
            pixels = np.zeros((rows, ncol), np.int64)
            pixels[:, prescan : prescan + cols] = electrons
            drift = 30 * np.sin(np.arange(rows) / 17.0 + a)[:, None, None]
            level = pedestals[a] + drift + gains[a] * pixels[:, :, None]
            samples = level + rng.normal(0, noise * gains[a], (rows, ncol, nsamp))
            raw = np.round(samples).astype(np.int32).reshape(rows, ncol * nsamp)  # interleaved
            header = fits.Header()
            header["CHID"] = chid
            header["RUNID"] = run
            header["IMGID"] = k
            header["NSAMP"], header["NROW"], header["NCOL"] = str(nsamp), str(rows), str(ncol)
            header["CCDNPRES"], header["CCDNOVER"] = str(prescan), str(overscan)
            header["EXPOSURE"] = "3600.0"
            hdus.append(fits.CompImageHDU(raw, header=header, compression_type="RICE_1"))
            cal = (samples.mean(axis=2) - pedestals[a] - drift[:, :, 0]) / gains[a]
            cal = cal[:, prescan : prescan + cols].astype(np.float32)
            cal_header = fits.Header({"RUNID": run, "IMGID": k, "OHDU": chid, "BUNIT": "electron"})
            fits.PrimaryHDU(cal, header=cal_header).writeto(
                os.path.join(out, "calibrated", f"{os.path.basename(stem)}_ohdu{chid}.fits"), overwrite=True
            )
            for t in truth:
                y0, y1 = max(t["y0"] - pad, 0), min(t["y1"] + pad, rows)
                x0, x1 = max(t["x0"] - pad, 0), min(t["x1"] + pad, cols)
                eid = (k * 100 + chid) * 1000 + t["index"]
                h = fits.Header({"RUNID": run, "IMGID": k, "OHDU": chid, "EVENTID": eid, "LABEL": t["label"],
                                 "X0": x0, "Y0": y0, "BUNIT": "electron"})  # fmt: skip
                name = f"ev_{run:03d}_{k:03d}_{chid}_{t['index']:03d}.fits"
                fits.PrimaryHDU(cal[y0:y1, x0:x1], header=h).writeto(os.path.join(out, "events", name))
                box = cal[t["y0"] : t["y1"], t["x0"] : t["x1"]]
                yy, xx = np.nonzero(box > 0.64)
                catalog.append(
                    {"runID": run, "ohdu": chid, "xPix": xx + t["x0"], "yPix": yy + t["y0"],
                     "ePix": box[yy, xx] * EV_PER_ELECTRON / 1000.0, "label": CLASSES.index(t["label"])}
                )  # fmt: skip
                rows_truth.append({"ohdu": chid, **t})
        fits.HDUList(hdus).writeto(stem + ".fits.fz", overwrite=True)
        with open(stem + ".truth.csv", "w") as f:
            f.write("ohdu,index,label,y0,y1,x0,x1,charge\n")
            for t in rows_truth:
                f.write(
                    ",".join(str(t[c]) for c in ("ohdu", "index", "label", "y0", "y1", "x0", "x1", "charge"))
                )
                f.write("\n")
        paths.append(stem + ".fits.fz")
    write_hitsumm(os.path.join(out, f"hitSumm_run{run:03d}.root"), catalog)
    return paths
