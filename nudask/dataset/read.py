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
from ..schema import SCHEMA_VERSION, coo_columns, schema_info, views_of
from ..sparse import to_dense
from .manifest import read_manifest


class Dataset:
    """A nudask dataset folder: Parquet parts plus ``_manifest.json``.

    Rows are numbered in the order of the manifest's files, so row ``i`` of
    :attr:`metadata` is event ``i`` of :meth:`image`.
    """

    def __init__(self, path: str | os.PathLike[str]):
        self.path = os.fspath(path)
        self.manifest = read_manifest(self.path)
        version = self.manifest.get("schema_version")
        if version != SCHEMA_VERSION:
            raise DatasetError(
                f"dataset '{self.path}' has schema version {version}; this nudask reads "
                f"version {SCHEMA_VERSION} (preprocess the inputs again with this version)"
            )
        self.files = [os.path.join(self.path, f["name"]) for f in self.manifest["files"]]
        rows = [f["rows"] for f in self.manifest["files"]]
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

    def to_pyarrow(self) -> pads.Dataset:
        """The dataset as a ``pyarrow.dataset.Dataset`` (files in manifest order)."""
        return pads.dataset(self.files, format="parquet")

    @cached_property
    def metadata(self) -> pd.DataFrame:
        """One row per event: ids, source and truth columns (no images)."""
        image_cols = {f"{v}_shape" for v in self.views}
        image_cols |= {c for v in self.views.values() for c in coo_columns(v)}
        cols = [f.name for f in self.schema if f.name not in image_cols]
        if not self.files:
            return pd.DataFrame(columns=cols)
        table = self.to_pyarrow().to_table(columns=cols)
        return table.to_pandas()

    def coo(self, i: int) -> dict[str, Coo]:
        """Sparse images of event ``i``, values as stored."""
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
        cols = [c for v in self.views.values() for c in (f"{v.name}_shape", *coo_columns(v))]
        table = pf.read_row_group(g, columns=cols).slice(row, 1)
        out = {}
        for name, view in self.views.items():
            shape = tuple(table.column(f"{name}_shape")[0].as_py())
            index = tuple(
                table.column(f"{name}_{a}")[0].values.to_numpy(zero_copy_only=False) for a in view.axes
            )
            values = table.column(f"{name}_value")[0].values.to_numpy(zero_copy_only=False)
            out[name] = Coo(shape, index, values)
        return out

    def image(self, i: int) -> dict[str, np.ndarray]:
        """Dense float32 images of event ``i`` (row ``i`` of :attr:`metadata`)."""
        out = {}
        for name, coo in self.coo(i).items():
            scale = self.info["views"][name].get("scale")
            if scale is not None:
                coo = Coo(coo.shape, coo.index, coo.values.astype(np.float32) * np.float32(scale))
            out[name] = to_dense(coo, dtype=np.float32)
        return out


def open_dataset(path: str | os.PathLike[str]) -> Dataset:
    """Open a dataset written by :func:`nudask.preprocess`."""
    return Dataset(path)
