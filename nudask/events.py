"""Plain values passed between the layers: hashable, picklable, comparable."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True, order=True)
class EventId:
    """Physics identity of an event: (run, subrun, event)."""

    run: int
    subrun: int
    event: int


@dataclass(frozen=True, order=True)
class Chunk:
    """Events ``[start, stop)`` of one input file, read by the named reader."""

    path: str
    reader: str
    start: int
    stop: int

    def __len__(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class ViewSpec:
    """What one view (plane, projection) of a format looks like.

    ``shape`` is the largest extent along each axis; images of formats with
    variable sizes carry their own shape per event (``Coo.shape``).
    """

    name: str
    axes: tuple[str, ...]
    shape: tuple[int, ...]
    dtype: str = "float32"
    vmax: float | None = None  # largest value (saturation), for 8-bit storage


@dataclass(frozen=True, eq=False)
class Coo:
    """A sparse image: sorted coordinates (one array per axis) and values.

    ``index[k][n]`` is the coordinate along axis ``k`` of the ``n``-th
    non-zero value; entries are in C (row-major) order.
    """

    shape: tuple[int, ...]
    index: tuple[np.ndarray, ...]
    values: np.ndarray

    @property
    def nnz(self) -> int:
        return int(self.values.size)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Coo):
            return NotImplemented
        return (
            self.shape == other.shape
            and len(self.index) == len(other.index)
            and all(np.array_equal(a, b) for a, b in zip(self.index, other.index))
            and np.array_equal(self.values, other.values)
        )

    __hash__ = None  # type: ignore[assignment]  # arrays are mutable


@dataclass(frozen=True, eq=False)
class Event:
    """One event as a reader hands it on: identity, truth and images."""

    id: EventId
    index: int  # row of the event in its source file
    metadata: dict[str, Any] = field(default_factory=dict)
    images: dict[str, Coo] = field(default_factory=dict)
