"""Image preparation on COO entries: crop, downsample, scale, densify (pure numpy, no I/O).

A batch's entries of one view arrive as flat arrays ``(image, row, col, value)``
(:func:`gather`); :func:`place` crops each image to its window (fixed, around
the vertex or around the charge centroid), sums blocks of pixels
(downsampling) and scales the values, all vectorised over the whole batch;
:func:`densify` writes them into a dense ``(batch, rows, cols)`` buffer that
is reused (only the pixels written last time are zeroed again), and
:func:`pad_coo` instead packs them as fixed-size COO for densifying on the
device.

Dense views (every pixel stored, each event at its own size) are pasted image by
image instead (:func:`paste`): the window is cut out of the image or the image
padded into it, then downsampled and scaled the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ViewPrep:
    """How one view becomes a model input.

    ``window`` is the crop in stored pixels (the whole view without a crop),
    ``down`` the downsampling block; the input is ``out_shape``.
    ``code_scale`` turns 8-bit codes into values; ``factor`` scales values
    (after ``log1p`` with ``scale="log"``).
    """

    name: str
    shape: tuple[int, int]
    window: tuple[int, int]
    crop: str = "none"
    origin: tuple[int, int] = (0, 0)
    down: tuple[int, int] = (1, 1)
    scale: str = "linear"
    factor: float = 1.0
    code_scale: float | None = None
    dense: bool = False

    @property
    def out_shape(self) -> tuple[int, int]:
        return (-(-self.window[0] // self.down[0]), -(-self.window[1] // self.down[1]))


def default_factor(scale: str, vmax: float | None, dtype: str) -> float:
    """Scale factor mapping a view's value range to about [0, 1].

    >>> default_factor("linear", 100.0, "float32"), default_factor("linear", None, "|u1")
    (0.01, 0.00392156862745098)
    """
    top = vmax if vmax is not None else (255.0 if np.dtype(dtype) == np.uint8 else None)
    if top is None:
        return 1.0
    return 1.0 / (np.log1p(top) if scale == "log" else top)


def segments(offsets: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and length of list rows ``rows`` in the flat values, given the list offsets.

    >>> [a.tolist() for a in segments(np.array([0, 2, 2, 5]), np.array([2, 0]))]
    [[2, 0], [3, 2]]
    """
    starts = offsets[rows].astype(np.int64)
    return starts, offsets[rows + 1].astype(np.int64) - starts


def narrow(starts: np.ndarray, lens: np.ndarray, first: np.ndarray, lo: np.ndarray, hi: np.ndarray):
    """The part of each segment whose first coordinate is in ``[lo, hi)`` (entries are in C order).

    A crop's rows are one run of each image's sorted entries: two binary searches per image
    instead of touching every entry.

    >>> first = np.array([0, 1, 1, 5, 2, 3, 9])
    >>> starts, lens = narrow(np.array([0, 4]), np.array([4, 3]), first, np.array([1, 3]), np.array([2, 9]))
    >>> starts.tolist(), lens.tolist()
    ([1, 5], [2, 1])
    """
    out_s, out_l = starts.copy(), lens.copy()
    for k in range(starts.size):
        a, b = np.searchsorted(first[starts[k] : starts[k] + lens[k]], (lo[k], hi[k]))
        out_s[k] += a
        out_l[k] = b - a
    return out_s, out_l


def gather(starts: np.ndarray, lens: np.ndarray, *columns: np.ndarray):
    """Entries of segments ``(starts, lens)``: image number per entry, then each column's values.

    >>> col = np.arange(5) * 10
    >>> [a.tolist() for a in gather(*segments(np.array([0, 2, 2, 5]), np.array([2, 0])), col)]
    [[0, 0, 0, 1, 1], [20, 30, 40, 0, 10]]
    """
    total = int(lens.sum())
    image = np.repeat(np.arange(starts.size, dtype=np.int32), lens)
    idx = np.repeat(starts - (np.cumsum(lens) - lens), lens)
    idx += np.arange(total, dtype=np.int64)
    return (image, *(np.take(c, idx) for c in columns))


def centroids(n: int, image, r, c, v, shape) -> np.ndarray:
    """Charge-weighted (row, col) per image; the view's centre for an empty image.

    >>> centroids(2, np.array([0, 0]), np.array([1, 3]), np.array([0, 0]), np.array([1., 1.]), (10, 10))
    array([[2., 0.],
           [5., 5.]])
    """
    w = np.abs(v.astype(np.float64))
    q = np.bincount(image, w, minlength=n)
    out = np.empty((n, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        out[:, 0] = np.bincount(image, w * r, minlength=n) / q
        out[:, 1] = np.bincount(image, w * c, minlength=n) / q
    empty = ~(q > 0)
    out[empty] = np.asarray(shape, np.float64) / 2
    return out


def origins(prep: ViewPrep, n: int, centres: np.ndarray | None = None) -> np.ndarray:
    """Top-left corner of each image's window, ``(n, 2)`` int64.

    Windows around a centre are shifted to lie inside the view where they fit; with
    ``crop="centre"`` (``centres``: each image's own centre) they are not, so a
    smaller image is padded with zeros about its centre and a larger one cropped.

    >>> p = ViewPrep("u", (100, 50), (20, 20), crop="vertex")
    >>> origins(p, 2, np.array([[50., 25.], [2., 49.]])).tolist()
    [[40, 15], [0, 30]]
    """
    if prep.crop in ("none", "fixed"):
        corner = (0, 0) if prep.crop == "none" else prep.origin
        return np.tile(np.asarray(corner, np.int64), (n, 1))
    win = np.asarray(prep.window)
    if prep.crop == "centre":  # about each image's own centre: pads (negative corner) or crops
        return np.floor(np.asarray(centres, np.float64) - win / 2).astype(np.int64)
    corners = np.rint(np.asarray(centres, np.float64) - win / 2).astype(np.int64)
    top = np.maximum(np.asarray(prep.shape) - win, 0)
    return np.clip(corners, 0, top)


def centre_origins(prep: ViewPrep, shapes: np.ndarray) -> np.ndarray:
    """Corners centring each image (its own ``(rows, cols)`` in ``shapes``) in the window.

    Negative where the image is smaller than the window (it is padded), positive
    where it is larger (its centre is cut out).

    >>> centre_origins(ViewPrep("e", (9, 9), (4, 4), crop="centre"), np.array([[2, 9], [4, 5]])).tolist()
    [[-1, 2], [0, 0]]
    """
    return (np.asarray(shapes, np.int64) - np.asarray(prep.window, np.int64)) // 2


def dense_origin(prep: ViewPrep, image: np.ndarray, centre: np.ndarray | None = None) -> tuple[int, int]:
    """The window corner of one dense ``image`` (crop none, fixed, vertex, centroid or centre).

    >>> img = np.zeros((6, 6), np.float32); img[5, 5] = 1
    >>> dense_origin(ViewPrep("e", (6, 6), (2, 2), crop="centroid"), img)
    (4, 4)
    """
    if prep.crop in ("none", "fixed"):
        return (0, 0) if prep.crop == "none" else prep.origin
    shape = np.asarray(image.shape, np.int64)
    win = np.asarray(prep.window, np.int64)
    if prep.crop == "centre":
        r, c = (shape - win) // 2
        return int(r), int(c)
    if prep.crop == "centroid":
        w = np.abs(image.astype(np.float64))
        q = w.sum()
        if q > 0:
            centre = np.array([w.sum(1) @ np.arange(shape[0]), w.sum(0) @ np.arange(shape[1])]) / q
        else:
            centre = shape / 2
    corner = np.clip(
        np.rint(np.asarray(centre, np.float64) - win / 2).astype(np.int64), 0, np.maximum(shape - win, 0)
    )
    return int(corner[0]), int(corner[1])


def paste(prep: ViewPrep, out: np.ndarray, image: np.ndarray, corner: tuple[int, int]) -> None:
    """Write the window at ``corner`` of one dense ``image`` into ``out`` (``out_shape``, zeroed).

    Parts of the window outside the image stay zero (padding); then blocks are
    summed (downsampling) and the values scaled as :func:`place` does, except that
    ``log`` keeps the sign (``sign(v) log1p(|v|)``: noise below zero stays finite).

    >>> out = np.zeros((3, 3), np.float32)
    >>> paste(ViewPrep("e", (2, 2), (3, 3), factor=0.5), out, np.array([[2., 4.], [6., 8.]]), (-1, 0))
    >>> out.tolist()
    [[0.0, 0.0, 0.0], [1.0, 2.0, 0.0], [3.0, 4.0, 0.0]]
    """
    (wr, wc), (r0, c0) = prep.window, corner
    rows, cols = image.shape
    a, b = max(r0, 0), min(r0 + wr, rows)
    c, d = max(c0, 0), min(c0 + wc, cols)
    if a >= b or c >= d:
        return
    src = image[a:b, c:d]
    scale = np.float32(prep.code_scale if prep.code_scale is not None else 1.0)
    if prep.down == (1, 1):
        dst = out[a - r0 : b - r0, c - c0 : d - c0]
        np.multiply(src, scale, out=dst, casting="unsafe")
    else:
        (dr, dc), (oh, ow) = prep.down, prep.out_shape
        full = np.zeros((oh * dr, ow * dc), np.float32)
        np.multiply(src, scale, out=full[a - r0 : b - r0, c - c0 : d - c0], casting="unsafe")
        out[...] = full.reshape(oh, dr, ow, dc).sum(axis=(1, 3))
        dst = out
    if prep.scale == "log":  # signed: dense images hold noise below zero (log1p(-1) is -inf)
        sign = np.sign(dst)
        np.abs(dst, out=dst)
        np.log1p(dst, out=dst)
        dst *= sign
    dst *= np.float32(prep.factor)


def place(prep: ViewPrep, image, r, c, v, corner: np.ndarray):
    """Crop, downsample and scale entries: (flat pixel in the batch, value), float32 values.

    With downsampling several entries may share a pixel (they are summed);
    log scaling is then applied after the sum, by :func:`densify`.

    >>> p = ViewPrep("u", (4, 4), (2, 2), crop="fixed", origin=(1, 1))
    >>> flat, val = place(p, np.array([0, 0, 1]), np.array([1, 3, 2]), np.array([1, 1, 2]),
    ...                   np.array([5., 6., 7.]), np.array([[1, 1], [1, 1]]))
    >>> flat.tolist(), val.tolist()
    ([0, 7], [5.0, 7.0])
    """
    corner = corner.astype(np.int32)
    rr = r.astype(np.int32)
    rr -= corner[image, 0]
    cc = c.astype(np.int32)
    cc -= corner[image, 1]
    keep = (rr >= 0) & (rr < prep.window[0])
    keep &= cc >= 0
    keep &= cc < prep.window[1]
    if not keep.all():
        image, rr, cc, v = image[keep], rr[keep], cc[keep], v[keep]
    if prep.down != (1, 1):
        rr //= prep.down[0]
        cc //= prep.down[1]
    h, w = prep.out_shape
    flat = image.astype(np.int64)
    flat *= h
    flat += rr
    flat *= w
    flat += cc
    val = v.astype(np.float32)
    if prep.code_scale is not None:
        val *= np.float32(prep.code_scale)
    if prep.scale == "log" and prep.down == (1, 1):
        np.log1p(val, out=val)
    if not (prep.scale == "log" and prep.down != (1, 1)):
        val *= np.float32(prep.factor)
    return flat, val


def densify(
    prep: ViewPrep, out: np.ndarray, flat: np.ndarray, val: np.ndarray, stale: np.ndarray | None = None
) -> np.ndarray:
    """Write entries into the reused buffer ``out`` (``(n, rows, cols, 1)`` float32).

    ``stale``: the flat pixels written the last time ``out`` was used (zeroed
    first); None zeroes the whole buffer. Returns the pixels written now.

    >>> p = ViewPrep("u", (2, 2), (2, 2))
    >>> buf = np.full((1, 2, 2, 1), 9, np.float32)
    >>> written = densify(p, buf, np.array([3]), np.array([1.5], np.float32))
    >>> buf[..., 0].tolist()
    [[[0.0, 0.0], [0.0, 1.5]]]
    """
    dense = out.reshape(-1)
    if stale is None:
        dense.fill(0)
    else:
        dense[stale] = 0
    if prep.down == (1, 1):
        dense[flat] = val
    else:
        np.add.at(dense, flat, val)
        if prep.scale == "log":
            dense[flat] = np.log1p(dense[flat]) * np.float32(prep.factor)
    return flat


def pad_coo(
    prep: ViewPrep,
    n: int,
    flat: np.ndarray,
    val: np.ndarray,
    capacity: int,
    index_out: np.ndarray,
    value_out: np.ndarray,
) -> int:
    """Pack entries as ``(n, capacity)`` per-image flat indices and values (zero padded).

    Entries beyond ``capacity`` in an image are dropped (the smallest-index
    ones are kept); returns how many were dropped.

    >>> p = ViewPrep("u", (2, 2), (2, 2))
    >>> idx, val = np.empty((2, 2), np.int32), np.empty((2, 2), np.float32)
    >>> pad_coo(p, 2, np.array([1, 2, 3, 4]), np.array([1., 2., 3., 4.], np.float32), 2, idx, val)
    1
    >>> idx.tolist(), val.tolist()
    ([[1, 2], [0, 0]], [[1.0, 2.0], [4.0, 0.0]])
    """
    size = prep.out_shape[0] * prep.out_shape[1]
    image, pixel = np.divmod(flat, size)
    first = np.searchsorted(image, np.arange(n))
    slot = np.arange(flat.size) - first[image]
    ok = slot < capacity
    index_out.fill(0)
    value_out.fill(0)
    index_out[image[ok], slot[ok]] = pixel[ok]
    value_out[image[ok], slot[ok]] = val[ok]
    return int(flat.size - ok.sum())


AUGMENTATIONS = ("flip_rows", "flip_cols", "rot90")


def augment(
    images: list[np.ndarray], ops, rng: np.random.Generator, part: tuple[int, int] | None = None
) -> None:
    """Flip and rotate the events of a batch in place, the same draw for every view of an event.

    ``images`` are ``(n, rows, cols, ...)`` arrays; ``ops`` a subset of
    :data:`AUGMENTATIONS`: ``flip_rows`` / ``flip_cols`` flip half of the events
    (drawn per event) upside down / left to right, ``rot90`` turns each event by
    0, 90, 180 or 270 degrees (square images only). ``part = (offset, total)``:
    the images are events ``offset...`` of a batch of ``total`` (one rank's
    share): the draws are made for all ``total`` and these events take theirs.

    >>> a = np.arange(8.).reshape(2, 2, 2)
    >>> augment([a], ["flip_cols"], np.random.default_rng(0)); a[:, 0].tolist()  # draws 0.64, 0.27
    [[0.0, 1.0], [5.0, 4.0]]
    """
    n = images[0].shape[0]
    offset, total = part or (0, n)
    share = slice(offset, offset + n)
    flips = {op: rng.random(total)[share] < 0.5 for op in ("flip_rows", "flip_cols") if op in ops}
    turns = rng.integers(0, 4, total)[share] if "rot90" in ops else None
    for a in images:
        if "flip_rows" in flips:
            a[flips["flip_rows"]] = a[flips["flip_rows"], ::-1]
        if "flip_cols" in flips:
            a[flips["flip_cols"]] = a[flips["flip_cols"], :, ::-1]
        if turns is not None:
            for q in (1, 2, 3):
                mine = turns == q
                if mine.any():
                    a[mine] = np.rot90(a[mine], q, axes=(1, 2))
