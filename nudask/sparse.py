"""Dense <-> COO conversions, and COO entries <-> runs along the last axis (pure, no I/O).

Coordinates are stored in the smallest unsigned integer type that holds the
axis extent and kept in C order, which is what makes them compress well.
Rendered wire images hold their charge in runs of consecutive time bins, so
the dataset stores each run once (its leading coordinates, first coordinate
along the last axis, length) instead of every entry's coordinates.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .events import Coo


def index_dtype(extent: int) -> np.dtype:
    """Smallest unsigned integer type for coordinates ``0 .. extent-1``.

    >>> index_dtype(100), index_dtype(3456), index_dtype(70000)
    (dtype('uint8'), dtype('uint16'), dtype('uint32'))
    """
    for dt in (np.uint8, np.uint16, np.uint32):
        if extent - 1 <= np.iinfo(dt).max:
            return np.dtype(dt)
    return np.dtype(np.uint64)


def to_coo(image: np.ndarray, max_shape: Sequence[int] | None = None) -> Coo:
    """Sparse copy of a dense image: its non-zero entries in C order.

    >>> c = to_coo(np.array([[0, 2], [3, 0]], dtype=np.float32))
    >>> [i.tolist() for i in c.index], c.values.tolist()
    ([[0, 1], [1, 0]], [2.0, 3.0])
    """
    extents = max_shape if max_shape is not None else image.shape
    flat = np.flatnonzero(image)
    coords = np.unravel_index(flat, image.shape)
    index = tuple(c.astype(index_dtype(n)) for c, n in zip(coords, extents))
    return Coo(tuple(int(s) for s in image.shape), index, image.ravel()[flat])


def to_dense(
    coo: Coo, out: np.ndarray | None = None, dtype=np.float32, channel: str | None = None
) -> np.ndarray:
    """Dense image of ``coo`` (its first channel, or ``channel``); fills ``out`` (zeroed first).

    >>> c = to_coo(np.eye(3, dtype=np.float32))
    >>> to_dense(c).tolist() == np.eye(3).tolist()
    True
    """
    if out is None:
        out = np.zeros(coo.shape, dtype=dtype)
    else:
        if out.shape != coo.shape:
            raise ValueError(f"buffer shape {out.shape} != image shape {coo.shape}")
        out.fill(0)
    if coo.nnz:
        flat = np.ravel_multi_index(coo.index, coo.shape)
        out.reshape(-1)[flat] = coo.values if channel is None else coo.channels[channel]
    return out


def segment_sum_coo(keys: np.ndarray, values: np.ndarray, shape: tuple[int, ...], dtype=np.float32) -> Coo:
    """Sum ``values`` sharing a flat C-order key into a COO of ``shape``.

    Sums are taken in float64 and rounded once, so the result does not depend
    on the order of the inputs.

    >>> c = segment_sum_coo(np.array([5, 1, 5]), np.array([1., 2., 4.]), (2, 3))
    >>> [i.tolist() for i in c.index], c.values.tolist()
    ([[0, 1], [1, 2]], [2.0, 5.0])
    """
    if keys.size == 0:
        return empty_coo(shape, dtype)
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    starts = np.flatnonzero(np.diff(keys, prepend=keys[0] - 1))
    sums = np.add.reduceat(values[order].astype(np.float64), starts)
    coords = np.unravel_index(keys[starts], shape)
    index = tuple(c.astype(index_dtype(n)) for c, n in zip(coords, shape))
    return Coo(shape, index, sums.astype(dtype))


def empty_coo(shape: tuple[int, ...], dtype=np.float32) -> Coo:
    index = tuple(np.zeros(0, index_dtype(n)) for n in shape)
    return Coo(tuple(shape), index, np.zeros(0, dtype))


def select(coo: Coo, keep: np.ndarray) -> Coo:
    """The entries of ``coo`` where the boolean mask ``keep`` is true (every channel)."""
    return Coo.of(
        coo.shape, tuple(i[keep] for i in coo.index), **{k: v[keep] for k, v in coo.channels.items()}
    )


def to_runs(
    index: tuple[np.ndarray, ...], offsets: np.ndarray | None = None, length_dtype=np.uint32
) -> tuple[tuple[np.ndarray, ...], np.ndarray, np.ndarray]:
    """Maximal runs of consecutive entries along the last axis of C-ordered coordinates.

    ``index`` holds one coordinate array per axis (entries sorted in C order);
    ``offsets`` (optional, list offsets of several images laid end to end) end a
    run at every image boundary. Returns the runs' coordinates (leading axes as
    they are, the last axis at the run's first entry), their lengths, and the
    run offsets of each image (``[0, n_runs]`` without ``offsets``).

    >>> runs, lengths, run_offsets = to_runs((np.array([0, 0, 0, 2]), np.array([3, 4, 6, 6])))
    >>> [r.tolist() for r in runs], lengths.tolist(), run_offsets.tolist()
    ([[0, 0, 2], [3, 6, 6]], [2, 1, 1], [0, 3])
    """
    *lead, last = index
    n = last.size
    starts = np.ones(n, bool)
    if n > 1:
        follows = last[1:].astype(np.int64) == last[:-1].astype(np.int64) + 1
        for a in lead:
            follows &= a[1:] == a[:-1]
        starts[1:] = ~follows
    offsets = np.array([0, n], np.int64) if offsets is None else np.asarray(offsets, np.int64)
    starts[offsets[(offsets > 0) & (offsets < n)]] = True  # no run crosses from one image to the next
    first = np.flatnonzero(starts)
    lengths = np.diff(np.append(first, n)).astype(length_dtype)
    run_offsets = np.searchsorted(first, offsets, side="left").astype(np.int64)
    return tuple(a[first] for a in index), lengths, run_offsets


def from_runs(runs: tuple[np.ndarray, ...], lengths: np.ndarray) -> tuple[np.ndarray, ...]:
    """The entries' coordinates of runs (the inverse of :func:`to_runs`), in the runs' dtypes.

    >>> [a.tolist() for a in from_runs((np.array([0, 0, 2]), np.array([3, 6, 6])), np.array([2, 1, 1]))]
    [[0, 0, 0, 2], [3, 4, 6, 6]]
    """
    *lead, first = runs
    lengths = np.asarray(lengths, np.int64)
    total = int(lengths.sum())
    # position of each entry inside its run: 0, 1, ... restarting at every run
    step = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    last = (np.repeat(first.astype(np.int64), lengths) + step).astype(first.dtype, copy=False)
    return (*(np.repeat(a, lengths) for a in lead), last)


def entry_offsets(lengths: np.ndarray, run_offsets: np.ndarray) -> np.ndarray:
    """List offsets of the entries of images whose runs have list offsets ``run_offsets``.

    >>> entry_offsets(np.array([2, 1, 4]), np.array([0, 2, 3])).tolist()
    [0, 3, 7]
    """
    ends = np.zeros(len(lengths) + 1, np.int64)
    np.cumsum(lengths, out=ends[1:])
    return ends[np.asarray(run_offsets, np.int64)]
