"""Plain values passed between the layers: hashable, picklable, comparable."""

from __future__ import annotations

from collections.abc import Mapping
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
    """What one view (plane, projection, voxel grid) of a format looks like.

    ``shape`` is the largest extent along each axis; images whose size varies
    carry their own shape per event (``Coo.shape``). ``kind`` says how the
    view is stored: ``coo`` (the non-zero entries) or ``dense`` (every pixel).
    ``channels`` names the value channels that share one set of coordinates,
    with their dtypes; the first is the view's ``dtype`` (default: one
    channel ``value``).
    """

    name: str
    axes: tuple[str, ...]
    shape: tuple[int, ...]
    dtype: str = "float32"
    vmax: float | None = None  # largest value (saturation), for 8-bit storage
    kind: str = "coo"
    channels: tuple[tuple[str, str], ...] = ()

    def __post_init__(self):
        if self.kind not in VIEW_KINDS:
            raise ValueError(f"view '{self.name}': kind must be one of {VIEW_KINDS}, got {self.kind!r}")
        if len(self.axes) != len(self.shape):
            raise ValueError(f"view '{self.name}': {len(self.axes)} axes but a {len(self.shape)}-D shape")
        channels = tuple((str(c), str(t)) for c, t in self.channels) or (("value", self.dtype),)
        object.__setattr__(self, "channels", channels)
        object.__setattr__(self, "dtype", channels[0][1])
        object.__setattr__(self, "axes", tuple(self.axes))
        object.__setattr__(self, "shape", tuple(int(n) for n in self.shape))

    @property
    def channel_names(self) -> tuple[str, ...]:
        return tuple(c for c, _ in self.channels)


VIEW_KINDS = ("coo", "dense")


@dataclass(frozen=True, eq=False)
class Coo:
    """A sparse image: sorted coordinates (one array per axis) and values.

    ``index[k][n]`` is the coordinate along axis ``k`` of the ``n``-th
    entry; entries are in C (row-major) order. ``channels`` holds every
    value channel by name (``energy``, ``label``, ...), all aligned with
    ``index``; ``values`` is the first.

    >>> c = Coo.of((4,), (np.array([1, 3]),), energy=np.array([2.0, 5.0]), label=np.array([0, 2]))
    >>> list(c.channels), c.nnz
    (['energy', 'label'], 2)
    """

    shape: tuple[int, ...]
    index: tuple[np.ndarray, ...]
    values: np.ndarray
    channels: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self):
        if not self.channels:
            object.__setattr__(self, "channels", {"value": self.values})
        elif next(iter(self.channels.values())) is not self.values:
            raise ValueError("Coo.values must be the first of its channels")

    @classmethod
    def of(cls, shape: tuple[int, ...], index: tuple[np.ndarray, ...], **channels: np.ndarray) -> Coo:
        """A Coo with named channels, the first being ``values``."""
        return cls(tuple(shape), tuple(index), next(iter(channels.values())), dict(channels))

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
            and len(self.channels) == len(other.channels)
            and all(np.array_equal(a, b) for a, b in zip(self.channels.values(), other.channels.values()))
        )

    __hash__ = None  # type: ignore[assignment]  # arrays are mutable


@dataclass(frozen=True, eq=False)
class Event:
    """One event as a reader hands it on: identity, truth and images."""

    id: EventId
    index: int  # row of the event in its source file
    metadata: dict[str, Any] = field(default_factory=dict)
    images: Mapping[str, Coo | np.ndarray] = field(default_factory=dict)  # a dense view may give an array
