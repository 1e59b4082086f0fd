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
    channel ``value``). ``coo_layout`` says how a COO view's coordinates are
    stored (see :mod:`nudask.schema`): ``runs`` along the last axis (what
    nudask writes) or ``pairs``, one coordinate per entry and axis (schema v1
    and v2 datasets).
    """

    name: str
    axes: tuple[str, ...]
    shape: tuple[int, ...]
    dtype: str = "float32"
    vmax: float | None = None  # largest value (saturation), for 8-bit storage
    kind: str = "coo"
    channels: tuple[tuple[str, str], ...] = ()
    coo_layout: str = "runs"

    def __post_init__(self):
        if self.kind not in VIEW_KINDS:
            raise ValueError(f"view '{self.name}': kind must be one of {VIEW_KINDS}, got {self.kind!r}")
        if self.coo_layout not in COO_LAYOUTS:
            raise ValueError(
                f"view '{self.name}': coo_layout must be one of {COO_LAYOUTS}, got {self.coo_layout!r}"
            )
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
COO_LAYOUTS = ("runs", "pairs")


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


@dataclass(frozen=True, eq=False)
class ViewBatch:
    """One view of ``n`` events, columnar (see :class:`EventBatch`).

    ``shapes`` is ``(n, ndim)``; event ``k``'s entries are ``offsets[k]:offsets[k+1]``
    of the flat ``index`` arrays (one per axis; empty for a dense view, whose
    values are every pixel in C order) and of each channel in ``channels``.
    """

    shapes: np.ndarray
    offsets: np.ndarray
    index: tuple[np.ndarray, ...]
    channels: dict[str, np.ndarray]

    def image(self, k: int) -> Coo | np.ndarray:
        """Event ``k``'s image: a :class:`Coo`, or an array for a one-channel dense view."""
        a, b = int(self.offsets[k]), int(self.offsets[k + 1])
        shape = tuple(int(s) for s in self.shapes[k])
        channels = {c: v[a:b] for c, v in self.channels.items()}
        if self.index:
            return Coo.of(shape, tuple(i[a:b] for i in self.index), **channels)
        if len(channels) == 1:
            return next(iter(channels.values())).reshape(shape)
        full = tuple(i.reshape(-1) for i in np.indices(shape))
        return Coo.of(shape, full, **channels)


@dataclass(frozen=True, eq=False)
class EventBatch:
    """Events ``[0, n)`` as columns: what a reader's optional ``read_batch`` gives.

    ``run``, ``subrun``, ``event`` and ``index`` are ``(n,)`` integer arrays;
    ``metadata`` maps each field to an ``(n, *shape)`` array (object, holding
    ``None``, where a value is null); ``images`` maps each view to a
    :class:`ViewBatch`. The Parquet writer turns it into Arrow columns without a
    Python loop per event; :meth:`events` gives the same events one by one.
    """

    run: np.ndarray
    subrun: np.ndarray
    event: np.ndarray
    index: np.ndarray
    metadata: dict[str, np.ndarray]
    images: dict[str, ViewBatch]

    def __len__(self) -> int:
        return len(self.index)

    def events(self):
        """The batch as :class:`Event` values, in order."""
        names = list(self.metadata)
        for k in range(len(self)):
            yield Event(
                EventId(int(self.run[k]), int(self.subrun[k]), int(self.event[k])),
                int(self.index[k]),
                {name: self.metadata[name][k] for name in names},
                {view: vb.image(k) for view, vb in self.images.items()},
            )

    @classmethod
    def from_events(cls, events: list[Event]) -> EventBatch:
        """The columnar form of ``events`` (every view as its COO or dense arrays)."""
        ids = np.array([(e.id.run, e.id.subrun, e.id.event, e.index) for e in events], np.int64)
        ids = ids.reshape(len(events), 4)
        names = list(events[0].metadata) if events else []
        metadata = {}
        for name in names:
            values = [e.metadata[name] for e in events]
            if any(v is None for v in values):
                arr = np.empty(len(values), object)
                arr[:] = values
            else:
                arr = np.asarray(values)
            metadata[name] = arr
        images = {}
        for view in events[0].images if events else ():
            imgs = [e.images[view] for e in events]
            shapes = np.array([img.shape for img in imgs], np.int64)
            if all(isinstance(img, Coo) for img in imgs):
                parts = [img.channels for img in imgs]  # type: ignore[union-attr]
                index = tuple(np.concatenate([img.index[a] for img in imgs]) for a in range(shapes.shape[1]))  # type: ignore[union-attr]
                sizes = [img.nnz for img in imgs]  # type: ignore[union-attr]
                channels = {c: np.concatenate([p[c] for p in parts]) for c in parts[0]}
            else:
                index = ()
                sizes = [int(np.prod(s)) for s in shapes]
                channels = {"value": np.concatenate([np.asarray(img).reshape(-1) for img in imgs])}
            offsets = np.zeros(len(imgs) + 1, np.int64)
            np.cumsum(sizes, out=offsets[1:])
            images[view] = ViewBatch(shapes, offsets, index, channels)
        return cls(ids[:, 0], ids[:, 1], ids[:, 2], ids[:, 3], metadata, images)

    @classmethod
    def concat(cls, batches: list[EventBatch]) -> EventBatch:
        """One batch of ``batches`` in order (same fields and views)."""
        if len(batches) == 1:
            return batches[0]
        first = batches[0]

        def cat(arrays):
            arrays = list(arrays)
            if any(a.dtype == object for a in arrays):
                return np.concatenate([a.astype(object) for a in arrays])
            return np.concatenate(arrays)

        images = {}
        for view, vb in first.images.items():
            parts = [b.images[view] for b in batches]
            shift = np.cumsum([0] + [int(p.offsets[-1]) for p in parts[:-1]])
            offsets = np.concatenate([[0]] + [p.offsets[1:] + s for p, s in zip(parts, shift)])
            images[view] = ViewBatch(
                np.concatenate([p.shapes for p in parts]),
                offsets.astype(np.int64),
                tuple(np.concatenate([p.index[a] for p in parts]) for a in range(len(vb.index))),
                {c: np.concatenate([p.channels[c] for p in parts]) for c in vb.channels},
            )
        run, subrun, event, index = (
            np.concatenate([getattr(b, k) for b in batches]) for k in ("run", "subrun", "event", "index")
        )
        return cls(
            run,
            subrun,
            event,
            index,
            {name: cat(b.metadata[name] for b in batches) for name in first.metadata},
            images,
        )
