"""Point-set batches: variable-size sets of points (a COO view's entries), padded and masked.

A generic mode of the training stream for per-point tasks (segmentation of 3-D voxels):
each event's entries of one COO ``view`` are one set; a batch is ``batch_size`` sets padded
to ``max_points`` (a set above it is cut to the region around a random point in training,
:func:`crop`) with a mask, plus
the indices of each point's nearest neighbours (``neighbours`` k per scale, every
``dilation``-th of the nearest ``k * dilation``; searched on the host with scipy's cKDTree,
so the model only gathers). Rows come in the epoch order of :func:`~.stream.plan_epoch`
(row-group windows, shuffled), read with :class:`~.stream.Window`: memory stays bounded.

Configured by a mapping (a job config's ``points:`` section), e.g.::

    points:
      view: voxels
      features: [energy]     # channels fed per point (log1p of them with log_features)
      target: label          # the per-point class channel (none for inference)
      max_points: 6144
      neighbours: [16, 16]
      dilation: [1, 3]
      batch_size: 2

The batch is ``(inputs, target, weight)``: inputs ``xyz`` (B, P, 3) coordinates minus the
set's mean, ``features`` (B, P, F), ``mask`` (B, P), ``knn0``... (B, P, k) int32; the
target (B, P) int32 and the weight (B, P) float32 (0 on padding, optional class weights).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
from scipy.spatial import cKDTree

from ..errors import ConfigError
from ..schema import coord_columns, views_of
from .stream import Layout, Window, WindowCache, plan_epoch


@dataclass(frozen=True)
class PointSet:
    view: str
    features: tuple[str, ...] = ("energy",)
    log_features: tuple[str, ...] = ("energy",)
    target: str | None = None
    max_points: int = 4096
    neighbours: tuple[int, ...] = (16,)
    dilation: tuple[int, ...] = (1,)
    batch_size: int = 4
    buffer_events: int = 64
    class_weights: tuple[float, ...] = ()

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PointSet:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"points: unknown key(s) {unknown}; known: {', '.join(sorted(known))}")
        if "view" not in d:
            raise ConfigError("points: needs 'view' (the COO view whose entries are the points)")
        values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        spec = cls(**values)
        if len(spec.neighbours) != len(spec.dilation) or min(spec.neighbours, default=1) < 1:
            raise ConfigError("points: neighbours and dilation need one positive entry per scale")
        if spec.max_points < 1 or spec.batch_size < 1:
            raise ConfigError("points: max_points and batch_size must be positive")
        return spec

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @property
    def channels(self) -> list[str]:
        wanted = [*self.features, *([self.target] if self.target else [])]
        return list(dict.fromkeys(wanted))


def knn(xyz: np.ndarray, k: int, dilation: int = 1) -> np.ndarray:
    """Indices (n, k) of every ``dilation``-th of the ``k * dilation`` nearest points (self first).

    >>> knn(np.array([[0, 0, 0], [1, 0, 0], [5, 0, 0]], float), 2).tolist()
    [[0, 1], [1, 0], [2, 1]]
    """
    n = len(xyz)
    want = k * dilation
    if n == 0:
        return np.zeros((0, k), np.int32)
    _, idx = cKDTree(xyz).query(xyz, k=min(want, n))
    idx = np.asarray(idx).reshape(n, -1)
    if idx.shape[1] < want:  # fewer points than neighbours: repeat the point itself
        idx = np.concatenate([idx, np.repeat(idx[:, :1], want - idx.shape[1], axis=1)], axis=1)
    return idx[:, ::dilation][:, :k].astype(np.int32)


def set_inputs(
    xyz: np.ndarray,
    channels: dict[str, np.ndarray],
    spec: PointSet,
    size: int | None = None,
    extra: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Model inputs of one set, padded to ``size`` (default: the set's own size).

    ``extra`` (n, E): per-point features computed by the caller, appended to the channels.
    """
    n = len(xyz)
    size = n if size is None else size
    n_extra = 0 if extra is None else extra.shape[1]
    out: dict[str, np.ndarray] = {
        "xyz": np.zeros((size, 3), np.float32),
        "features": np.zeros((size, len(spec.features) + n_extra), np.float32),
        "mask": np.zeros(size, np.float32),
    }
    xyz = np.asarray(xyz, np.float32)
    if n:
        out["xyz"][:n] = xyz - xyz.mean(axis=0)
    for j, name in enumerate(spec.features):
        values = np.asarray(channels[name], np.float32)
        out["features"][:n, j] = np.log1p(np.maximum(values, 0)) if name in spec.log_features else values
    if n_extra:
        out["features"][:n, len(spec.features) :] = extra
    out["mask"][:n] = 1
    for s, (k, dil) in enumerate(zip(spec.neighbours, spec.dilation)):
        idx = np.tile(np.arange(size, dtype=np.int32)[:, None], (1, k))  # padding: itself
        idx[:n] = knn(xyz, k, dil)
        out[f"knn{s}"] = idx
    return out


Derive = Callable[[np.ndarray, dict[str, np.ndarray]], np.ndarray]


def crop(xyz: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Indices (sorted) of the ``size`` points nearest a random one: a set too big for the batch
    is cut to a compact region, so every kept point keeps its neighbours (a random subsample
    would thin them, and the network would see sparser sets in training than in inference).

    >>> crop(np.arange(10.0)[:, None] * [1, 0, 0], 3, np.random.default_rng(0)).tolist()
    [7, 8, 9]
    """
    if len(xyz) <= size:
        return np.arange(len(xyz))
    centre = xyz[rng.integers(len(xyz))]
    d2 = np.sum((np.asarray(xyz, np.float32) - centre) ** 2, axis=1)
    return np.sort(np.argpartition(d2, size - 1)[:size])


class PointSetBatches:
    """Batches of padded point sets of ``rows`` of a dataset's Parquet ``files``.

    ``derive(xyz, channels) -> (n, E)``: extra per-point features, computed on each whole set
    before it is cropped (so they describe the set as inference sees it).
    """

    def __init__(
        self,
        files: list[str],
        rows: np.ndarray,
        spec: PointSet,
        *,
        seed: int = 0,
        shuffle: bool = True,
        derive: Derive | None = None,
    ):
        self.spec = spec
        self.derive = derive
        self.layout = Layout.of(files)
        self.rows = np.asarray(rows, np.int64)
        self.seed, self.shuffle = seed, shuffle
        schema = self.layout.metadata[0].schema.to_arrow_schema()
        meta = schema.names
        axes = [
            c for c in meta if c.startswith(f"{spec.view}_") and c[len(spec.view) + 1 :] in ("x", "y", "z")
        ]
        self.coords = axes
        view = views_of(schema).get(spec.view)
        stored = coord_columns(view) if view is not None and len(axes) == 3 else axes  # runs or pairs
        # the window gives every point's coordinates (x, y, z), then the channels
        self.columns = stored + [f"{spec.view}_{c}" for c in spec.channels]
        self.names = axes + [f"{spec.view}_{c}" for c in spec.channels]
        missing = [c for c in self.columns if c not in meta]
        if len(axes) != 3 or missing:
            raise ConfigError(
                f"points: the dataset has no columns {missing or ['3-D coordinates']} of view '{spec.view}'"
            )
        self.cache = WindowCache(2)
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        rng = np.random.default_rng([self.seed, epoch]) if self.shuffle else None
        self.plan = plan_epoch(self.rows, self.layout, self.spec.buffer_events, rng)

    def __len__(self) -> int:
        return -(-len(self.rows) // self.spec.batch_size)

    def _set(self, window: Window, local: int) -> dict[str, np.ndarray]:
        bounds, chunks = window.columns[self.spec.view]
        c = int(np.searchsorted(bounds, local, side="right") - 1)
        offsets, arrays = chunks[c]
        r = local - bounds[c]
        a, b = offsets[r], offsets[r + 1]
        # float16 channels (values="float16") are computed on in float32
        return {
            name: arr[a:b].astype(np.float32) if arr.dtype == np.float16 else arr[a:b]
            for name, arr in zip(self.names, arrays)
        }

    def batch(self, i: int):
        spec, b = self.spec, self.spec.batch_size
        positions = np.arange(i * b, min((i + 1) * b, len(self.plan.order)))
        rng = np.random.default_rng([self.seed, self.epoch, i])
        sets = []
        for pos in positions:
            w = int(self.plan.window[pos])
            groups = self.plan.windows[w]
            window = self.cache.get(
                (self.epoch, w), lambda g=groups: Window(self.layout, g, {spec.view: self.columns})
            )
            local = int(window.local(self.layout, self.plan.order[pos : pos + 1])[0])
            cols = self._set(window, local)
            xyz = np.stack([cols[c] for c in self.coords], axis=1)
            channels = {c: cols[f"{spec.view}_{c}"] for c in spec.channels}
            extra = None if self.derive is None else self.derive(xyz, channels)
            keep = crop(xyz, spec.max_points, rng)
            sets.append(
                (xyz[keep], {c: v[keep] for c, v in channels.items()}, None if extra is None else extra[keep])
            )
        size = spec.max_points
        parts = [set_inputs(xyz, ch, spec, size, extra) for xyz, ch, extra in sets]
        inputs = {k: np.stack([p[k] for p in parts]) for k in parts[0]}
        if not spec.target:
            return inputs
        target = np.zeros((len(sets), size), np.int32)
        for j, (xyz, ch, _) in enumerate(sets):
            target[j, : len(xyz)] = ch[spec.target]
        weight = inputs["mask"].copy()
        if spec.class_weights:
            weight *= np.asarray(spec.class_weights, np.float32)[
                np.clip(target, 0, len(spec.class_weights) - 1)
            ]
        return inputs, target, weight
