"""CONNIE event extraction: nudask's vectorised recipe vs the seed's OpenCV recipe, one core.

    python tests/benchmarks/bench_connie_extract.py [--rows 1022] [--cols 420] [--events 80]

Simulates one full-size calibrated image (1022 x 420 electrons, ``--events`` particles), then
runs on the same image, side by side: the OpenCV-style baseline (GaussianBlur, threshold,
morphologyEx open, dilate, erode, findContours, then per contour boundingRect, crop and
features in numpy: the seed's script) and :func:`nudask.readers.connie.extract.extract_events`
(scipy.ndimage labelled reductions over all events at once). Prints one table; target >= 2x.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

from nudask.readers.connie.extract import EV_PER_ELECTRON, Recipe, extract_events
from nudask.readers.connie.simulate import simulate_amplifier

DEFAULT = Recipe()


def opencv_recipe(image: np.ndarray, r: Recipe = DEFAULT) -> list[dict]:
    """The seed's way: OpenCV filters and contours, then a Python loop over the contours."""
    import cv2

    img = image.astype(np.float32).copy()
    f = r.frame
    img[:f], img[-f:], img[:, :f], img[:, -f:] = 0, 0, 0, 0
    img[img < r.clip] = 0
    blur = cv2.GaussianBlur(img, (3, 3), 0)
    binary = (blur > r.threshold).astype(np.uint8)
    kernel = np.ones((3, 3), np.uint8)
    binary = cv2.morphologyEx(binary, cv2.MORPH_OPEN, kernel)
    binary = cv2.dilate(binary, kernel)
    binary = cv2.erode(binary, kernel)
    contours, _ = cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    out = []
    rows, cols = img.shape
    for c in contours:
        x, y, w, h = cv2.boundingRect(c)
        mask = np.zeros((h, w), np.uint8)
        cv2.drawContours(mask, [c - [x, y]], -1, 1, thickness=-1)
        sel = mask.astype(bool)
        pix = img[y : y + h, x : x + w][sel]
        yy, xx = np.nonzero(sel)
        q = pix.sum()
        mx, my = (pix * xx).sum() / max(q, 1e-9), (pix * yy).sum() / max(q, 1e-9)
        cov = np.cov(np.stack([xx, yy]), aweights=np.maximum(pix, 1e-9)) if pix.size > 1 else np.zeros((2, 2))
        ev = np.linalg.eigvalsh(cov)
        y0, y1 = max(y - r.pad, 0), min(y + h + r.pad, rows)
        x0, x1 = max(x - r.pad, 0), min(x + w + r.pad, cols)
        out.append({
            "crop": image[y0:y1, x0:x1].copy(), "charge": q, "energy": q * EV_PER_ELECTRON,
            "n_pixels": int(sel.sum()), "x_bary": x + mx, "y_bary": y + my,
            "length": 2 * np.sqrt(max(ev[-1], 0)), "width": 2 * np.sqrt(max(ev[0], 0)),
            "max_pixel": pix.max() if pix.size else 0.0,
        })  # fmt: skip
    return out


def timed(fn, image, repeat):
    best = np.inf
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn(image)
        best = min(best, time.perf_counter() - t)
    return best, result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1022)
    p.add_argument("--cols", type=int, default=420)
    p.add_argument("--events", type=int, default=80)
    p.add_argument("--repeat", type=int, default=5)
    a = p.parse_args()
    import cv2

    cv2.setNumThreads(1)
    rng = np.random.default_rng(0)
    electrons, truth = simulate_amplifier(rng, a.rows, a.cols, a.events, dark=0.08)
    image = (electrons + rng.normal(0, 0.15, electrons.shape)).astype(np.float32)
    t_cv, cv_events = timed(opencv_recipe, image, a.repeat)
    t_nd, nd_events = timed(extract_events, image, a.repeat)
    occupancy = float((image > 0.64).mean())
    print(f"image {a.rows} x {a.cols} e-, {len(truth)} particles, {occupancy:.2%} of pixels above 0.64 e-")
    print(f"{'recipe':<34}{'events':>8}{'ms/image':>10}{'images/s':>10}{'ratio':>7}")
    for name, t, n in (("OpenCV contours + loop (seed)", t_cv, len(cv_events)),
                       ("nudask scipy.ndimage, vectorised", t_nd, len(nd_events))):  # fmt: skip
        print(f"{name:<34}{n:>8}{t * 1e3:>10.1f}{1 / t:>10.1f}{t_cv / t:>7.2f}")


if __name__ == "__main__":
    main()
