"""Dense <-> COO conversions (pure, no I/O).

Coordinates are stored in the smallest unsigned integer type that holds the
axis extent and kept in C order, which is what makes them compress well.
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
