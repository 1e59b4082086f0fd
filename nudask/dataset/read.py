"""Reading a dataset back: metadata as a DataFrame, one event at a time."""

from __future__ import annotations

import os
from functools import cached_property

import numpy as np
import pandas as pd
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from ..errors import DatasetError, EventIndexError
from ..events import Coo, ViewSpec
from ..records import Manifest
from ..roles import Roles, roles_of
from ..schema import READABLE_VERSIONS, coord_columns, image_columns, schema_info, value_columns, views_of
from ..sparse import to_coo, to_dense


class Dataset:
    """A nudask dataset folder: Parquet parts plus ``_manifest.json``.

    Rows are numbered in the order of the manifest's files, so row ``i`` of
    :attr:`metadata` is event ``i`` of :meth:`image`.
    """

    def __init__(self, path: str | os.PathLike[str]):
        self.path = os.fspath(path)
        self.manifest = Manifest.read(self.path)
        version = self.manifest.schema_version
        if version not in READABLE_VERSIONS:
            raise DatasetError(
                f"dataset '{self.path}' has schema version {version}; this nudask reads versions "
                f"{list(READABLE_VERSIONS)} (preprocess the inputs again with this version)"
            )
        self.files = [os.path.join(self.path, f.name) for f in self.manifest.files]
        rows = [f.rows for f in self.manifest.files]
        self._starts = np.concatenate([[0], np.cumsum(rows, dtype=np.int64)])

    def __len__(self) -> int:
        return int(self._starts[-1])

    def __repr__(self) -> str:
        return f"<nudask.Dataset '{self.path}': {len(self)} events, views {list(self.views)}>"

    @cached_property
    def schema(self):
        if self.files:
            return pq.read_schema(self.files[0])
        raise DatasetError(f"dataset '{self.path}' holds no files")

    @cached_property
    def info(self) -> dict:
        return schema_info(self.schema)

    @cached_property
    def views(self) -> dict[str, ViewSpec]:
        return views_of(self.schema)

    @cached_property
    def roles(self) -> Roles:
        """What the metadata columns mean (recorded by the reader that wrote the dataset)."""
        return roles_of(self.manifest)

    def to_pyarrow(self) -> pads.Dataset:
        """The dataset as a ``pyarrow.dataset.Dataset`` (files in manifest order)."""
        return pads.dataset(self.files, format="parquet")

    @cached_property
    def metadata(self) -> pd.DataFrame:
        """One row per event: ids, source and truth columns (no images)."""
        images = image_columns(self.views)
        cols = [f.name for f in self.schema if f.name not in images]
        if not self.files:
            return pd.DataFrame(columns=cols)
        table = self.to_pyarrow().to_table(columns=cols)
        return table.to_pandas()

    def _row(self, i: int, columns: list[str]):
        n = len(self)
        if not -n <= i < n:
            raise EventIndexError(f"event {i} out of range for a dataset of {n} events")
        i %= n
        k = int(np.searchsorted(self._starts, i, side="right") - 1)
        row = i - int(self._starts[k])
        pf = pq.ParquetFile(self.files[k])
        for g in range(pf.num_row_groups):  # read only the row group holding the event
            size = pf.metadata.row_group(g).num_rows
            if row < size:
                break
            row -= size
        return pf.read_row_group(g, columns=columns).slice(row, 1)

    def coo(self, i: int) -> dict[str, Coo]:
        """Sparse images of event ``i``, every channel, values as stored (dense views too)."""
        cols = [
            c for v in self.views.values() for c in (f"{v.name}_shape", *coord_columns(v), *value_columns(v))
        ]
        table = self._row(i, cols)
        out = {}
        for name, view in self.views.items():
            shape = tuple(table.column(f"{name}_shape")[0].as_py())
            channels = {c: _values(table, f"{name}_{c}") for c in view.channel_names}
            if view.kind == "dense":
                dense = {c: v.reshape(shape) for c, v in channels.items()}
                first = to_coo(next(iter(dense.values())))
                keep = np.ravel_multi_index(first.index, shape) if first.nnz else np.zeros(0, np.int64)
                out[name] = Coo.of(shape, first.index, **{c: d.reshape(-1)[keep] for c, d in dense.items()})
                continue
            index = tuple(_values(table, f"{name}_{a}") for a in view.axes)
            out[name] = Coo.of(shape, index, **channels)
        return out

    def image(self, i: int, channel: str | None = None, dtype=np.float32) -> dict[str, np.ndarray]:
        """Dense images of event ``i`` (row ``i`` of :attr:`metadata`), each at its own size.

        ``channel`` picks a value channel (default: each view's first);
        values are float32 (8-bit codes scaled back), or as stored with ``dtype=None``.
        """
        out = {}
        for name, coo in self.coo(i).items():
            view = self.views[name]
            wanted = channel if channel in coo.channels else None
            scale = self.info["views"][name].get("scale") if wanted in (None, view.channel_names[0]) else None
            values = coo.channels[wanted] if wanted else coo.values
            if scale is not None:
                values = values.astype(np.float32) * np.float32(scale)
            kind = values.dtype if dtype is None else dtype
            out[name] = to_dense(Coo(coo.shape, coo.index, values), dtype=kind)
        return out


def _values(table, column: str) -> np.ndarray:
    return table.column(column)[0].values.to_numpy(zero_copy_only=False)


def open_dataset(path: str | os.PathLike[str]) -> Dataset:
    """Open a dataset written by :func:`nudask.preprocess`."""
    return Dataset(path)
