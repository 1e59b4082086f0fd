"""CONNIE event extraction from a calibrated image, and the features of an event (pure numpy/scipy).

The recipe (every step a parameter of :class:`Recipe`): mask a frame of
``frame`` pixels, clip values below ``clip`` electrons to 0, blur with a 3 x 3
Gaussian (OpenCV's fixed kernel (1, 2, 1) / 4), threshold at ``threshold``
electrons (10 eV at 3.745 eV per electron), open, dilate and erode with a
3 x 3 square (as shifted numpy passes), label the 8-connected components
(``scipy.ndimage.label``), take their bounding boxes and pad them by ``pad``
pixels. All components are measured at once (one sort, then ``bincount``-like
reductions over the event pixels only), not in a Python loop per contour.

>>> img = np.zeros((40, 40), np.float32); img[18:21, 10:30] = 50.0
>>> events = extract_events(img)
>>> len(events), events[0].box, round(float(events[0].features["charge"]))
(1, (0, 40, 0, 40), 3000)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

EV_PER_ELECTRON = 3.745
CLASSES = ("muon", "electron", "blob", "diffusion_hit", "alpha", "other")
SQUARE = np.ones((3, 3), bool)
#: the features of an event, as metadata columns (all float32 but the pixel counts and box)
FEATURES: dict[str, str] = {
    "charge": "<f4",  # electrons in the event's pixels
    "energy": "<f4",  # eV: charge x 3.745
    "n_pixels": "<i4",
    "x_min": "<i4",
    "x_max": "<i4",
    "y_min": "<i4",
    "y_max": "<i4",
    "x_bary": "<f4",  # charge-weighted barycentre (column, row) in the image
    "y_bary": "<f4",
    "x_width": "<f4",  # charge-weighted standard deviation along x and y
    "y_width": "<f4",
    "length": "<f4",  # 2 x sqrt of the largest eigenvalue of the second moments
    "width": "<f4",  # 2 x sqrt of the smallest
    "elongation": "<f4",  # length / width
    "max_pixel": "<f4",
    "mean_pixel": "<f4",
    "fill": "<f4",  # pixels / box area
}


@dataclass(frozen=True)
class Recipe:
    """The extraction parameters (the reader's ``-O`` options of the same names)."""

    frame: int = 5
    clip: float = 0.64
    blur: bool = True
    threshold: float = 10.0 / EV_PER_ELECTRON  # 2.67 electrons
    open: int = 1  # iterations of each morphology step (0: skip it)
    dilate: int = 1
    erode: int = 1
    pad: int = 30
    min_pixels: int = 1

    def options(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Found:
    """One extracted event: its padded box ``(y0, y1, x0, x1)`` in the image, crop and features."""

    box: tuple[int, int, int, int]
    image: np.ndarray
    features: dict


def _smooth_axis(a: np.ndarray, axis: int, centre: float, side: float) -> np.ndarray:
    """``centre * a + side * (both neighbours)`` along ``axis``, edges reflected (OpenCV's 101)."""
    a = np.moveaxis(a, axis, 0)
    out = a * np.float32(centre)
    out[1:] += np.float32(side) * a[:-1]
    out[:-1] += np.float32(side) * a[1:]
    out[0] += np.float32(side) * a[1]
    out[-1] += np.float32(side) * a[-2]
    return np.moveaxis(out, 0, axis)


def gaussian3(image: np.ndarray) -> np.ndarray:
    """OpenCV's ``GaussianBlur(image, (3, 3), 0)``: its fixed kernel (1, 2, 1) / 4, borders reflected (101).

    >>> spot = np.zeros((5, 5), np.float32); spot[2, 2] = 16
    >>> gaussian3(spot)[1:4, 1:4]
    array([[1., 2., 1.],
           [2., 4., 2.],
           [1., 2., 1.]], dtype=float32)
    """
    k = (0.25, 0.5, 0.25)  # OpenCV's table for a 3-pixel kernel without a sigma
    return _smooth_axis(_smooth_axis(np.asarray(image, np.float32), 0, k[1], k[0]), 1, k[1], k[0])


def dilate(mask: np.ndarray, iterations: int = 1) -> np.ndarray:
    """Binary dilation by a 3 x 3 square, as two 3-pixel passes (row, then column)."""
    for _ in range(iterations):
        out = mask.copy()
        out[1:] |= mask[:-1]
        out[:-1] |= mask[1:]
        mask = out.copy()
        mask[:, 1:] |= out[:, :-1]
        mask[:, :-1] |= out[:, 1:]
    return mask


def erode(mask: np.ndarray, iterations: int = 1) -> np.ndarray:
    """Binary erosion by a 3 x 3 square; outside the image counts as set (as in OpenCV)."""
    for _ in range(iterations):
        out = mask.copy()
        out[1:] &= mask[:-1]
        out[:-1] &= mask[1:]
        mask = out.copy()
        mask[:, 1:] &= out[:, :-1]
        mask[:, :-1] &= out[:, 1:]
    return mask


def event_mask(image: np.ndarray, recipe: Recipe) -> tuple[np.ndarray, np.ndarray]:
    """The clipped image and the mask of event pixels after threshold and morphology."""
    img = np.array(image, np.float32)
    f = recipe.frame
    if f > 0:
        img[:f], img[-f:], img[:, :f], img[:, -f:] = 0, 0, 0, 0
    img[img < recipe.clip] = 0
    smooth = gaussian3(img) if recipe.blur else img
    mask = smooth > recipe.threshold
    if recipe.open:  # opening: erode, then dilate
        mask = dilate(erode(mask, recipe.open), recipe.open)
    if recipe.dilate:
        mask = dilate(mask, recipe.dilate)
    if recipe.erode:
        mask = erode(mask, recipe.erode)
    return img, mask


def measure(img: np.ndarray, labels: np.ndarray, n: int) -> dict[str, np.ndarray]:
    """Every feature of components ``1..n`` of ``labels`` at once (values from ``img``).

    Only the labelled pixels are visited: grouped by component with one sort,
    then summed with ``bincount`` and reduced with ``reduceat``.
    """
    if n == 0:
        return {k: np.zeros(0, t) for k, t in FEATURES.items()}
    flat = labels.ravel()
    sel = np.flatnonzero(flat)
    lab = flat[sel]
    order = np.argsort(lab, kind="stable")
    sel, lab = sel[order], lab[order]
    starts = np.flatnonzero(np.r_[True, lab[1:] != lab[:-1]])
    yy, xx = np.divmod(sel, img.shape[1])
    w = img.ravel()[sel].astype(np.float64)
    xx, yy = xx.astype(np.float64), yy.astype(np.float64)

    def total(v):
        return np.add.reduceat(v, starts)

    q = total(w)
    npix = np.diff(np.r_[starts, lab.size])
    safe = np.where(q > 0, q, 1.0)
    mx, my = total(w * xx) / safe, total(w * yy) / safe
    dx, dy = xx - np.repeat(mx, npix), yy - np.repeat(my, npix)
    sxx, syy, sxy = total(w * dx * dx) / safe, total(w * dy * dy) / safe, total(w * dx * dy) / safe
    sxx, syy = np.maximum(sxx, 0), np.maximum(syy, 0)
    half = np.sqrt(((sxx - syy) / 2) ** 2 + sxy**2)
    big, small = (sxx + syy) / 2 + half, np.maximum((sxx + syy) / 2 - half, 0)
    x0, x1 = np.minimum.reduceat(xx, starts), np.maximum.reduceat(xx, starts)
    y0, y1 = yy[starts], yy[np.r_[starts[1:], lab.size] - 1]  # pixels are in row order per component
    length, width = 2 * np.sqrt(big), 2 * np.sqrt(small)
    out = {
        "charge": q,
        "energy": q * EV_PER_ELECTRON,
        "n_pixels": npix,
        "x_min": x0, "x_max": x1, "y_min": y0, "y_max": y1,
        "x_bary": mx, "y_bary": my,
        "x_width": np.sqrt(sxx), "y_width": np.sqrt(syy),
        "length": length, "width": width,
        "elongation": length / np.maximum(width, 0.5),
        "max_pixel": np.maximum.reduceat(w, starts),
        "mean_pixel": q / np.maximum(npix, 1),
        "fill": npix / ((y1 - y0 + 1) * (x1 - x0 + 1)),
    }  # fmt: skip
    return {k: np.asarray(v).astype(FEATURES[k]) for k, v in out.items()}


def extract_events(image: np.ndarray, recipe: Recipe = Recipe()) -> list[Found]:
    """The events of a calibrated image (electrons), in the order of their first pixel."""
    from scipy import ndimage  # here: guessing any file's reader imports this module

    img, mask = event_mask(image, recipe)
    labels, n = ndimage.label(mask, SQUARE)
    feats = measure(img, labels, n)
    keep = np.flatnonzero(feats["n_pixels"] >= recipe.min_pixels)
    rows, cols = img.shape
    p = recipe.pad
    out = []
    for k in keep:
        y0, y1 = max(int(feats["y_min"][k]) - p, 0), min(int(feats["y_max"][k]) + 1 + p, rows)
        x0, x1 = max(int(feats["x_min"][k]) - p, 0), min(int(feats["x_max"][k]) + 1 + p, cols)
        crop = np.ascontiguousarray(image[y0:y1, x0:x1], dtype=np.float32)
        out.append(Found((y0, y1, x0, x1), crop, {name: v[k] for name, v in feats.items()}))
    return out


def single_event_features(image: np.ndarray, recipe: Recipe = Recipe()) -> dict:
    """Features of a crop that holds one event: the component nearest the crop's centre.

    The frame mask is not applied (a crop's edge is padding, not the sensor's);
    other events the padding caught are left out.
    """
    img, mask = event_mask(image, Recipe(**{**recipe.options(), "frame": 0}))
    if not mask.any():  # nothing above threshold: measure the clipped pixels instead
        mask = img > 0
    from scipy import ndimage

    labels, n = ndimage.label(mask, SQUARE)
    if n == 0:
        return {k: v[0] for k, v in measure(img, np.ones(img.shape, np.int32), 1).items()}
    feats = measure(img, labels, n)
    cy, cx = (img.shape[0] - 1) / 2, (img.shape[1] - 1) / 2
    k = int(np.argmin((feats["y_bary"] - cy) ** 2 + (feats["x_bary"] - cx) ** 2))
    return {name: v[k] for name, v in feats.items()}
