"""Reading a dataset back: metadata as a DataFrame, one event at a time."""

from __future__ import annotations

import os
import warnings
from contextlib import contextmanager
from functools import cached_property

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from ..errors import DatasetError, EventIndexError, NudaskError
from ..events import Coo, ViewSpec
from ..records import Manifest
from ..roles import Roles, roles_of
from ..schema import READABLE_VERSIONS, coord_columns, image_columns, schema_info, value_columns, views_of
from ..sparse import from_runs, to_coo, to_dense
from .write import footer_sha256

MISSING = ("raise", "skip")
# what pyarrow raises for a damaged file: checksum mismatch, bad thrift, short reads
READ_ERRORS = (OSError, pa.ArrowException, ValueError, KeyError, IndexError, EOFError)


def damaged(dataset: str, file: str, err: BaseException | str) -> DatasetError:
    why = f"{type(err).__name__}: {err}" if isinstance(err, BaseException) else err
    return DatasetError(
        f"part '{file}' of dataset '{dataset}' is damaged ({why}); run nudask verify {dataset} "
        "to list the bad parts, then nudask preprocess again (same command) to rewrite them"
    )


class Dataset:
    """A nudask dataset folder: Parquet parts plus ``_manifest.json``.

    Rows are numbered in the order of the manifest's files, so row ``i`` of
    :attr:`metadata` is event ``i`` of :meth:`image`.
    """

    def __init__(self, path: str | os.PathLike[str], *, missing: str = "raise"):
        if missing not in MISSING:
            raise ValueError(f"missing must be one of {MISSING}, got {missing!r}")
        self.path = os.fspath(path)
        self.manifest = Manifest.read(self.path)
        version = self.manifest.schema_version
        if version not in READABLE_VERSIONS:
            raise DatasetError(
                f"dataset '{self.path}' has schema version {version}; this nudask reads versions "
                f"{list(READABLE_VERSIONS)} (preprocess the inputs again with this version)"
            )
        bad = {}
        for part in self.manifest.files:
            file = os.path.join(self.path, part.name)
            size = os.path.getsize(file) if os.path.isfile(file) else None
            if size != part.bytes:
                bad[part.name] = (
                    "missing" if size is None else f"{size} bytes, the manifest says {part.bytes}"
                )
        if bad and missing == "raise":
            raise DatasetError(
                f"dataset '{self.path}' has {len(bad)} missing or damaged part(s): "
                + "; ".join(f"{n} ({why})" for n, why in bad.items())
                + f"; run nudask verify {self.path}, then nudask preprocess again (same command) "
                "to rewrite them, or open_dataset(path, missing='skip') to read the rest"
            )
        if bad:
            warnings.warn(
                f"dataset '{self.path}': skipping {len(bad)} missing or damaged part(s): {sorted(bad)}",
                stacklevel=3,
            )
            self.manifest.files = [f for f in self.manifest.files if f.name not in bad]
        self.files = [os.path.join(self.path, f.name) for f in self.manifest.files]
        self._checked: set[int] = set()
        rows = [f.rows for f in self.manifest.files]
        self._starts = np.concatenate([[0], np.cumsum(rows, dtype=np.int64)])

    def __len__(self) -> int:
        return int(self._starts[-1])

    def __repr__(self) -> str:
        return f"<nudask.Dataset '{self.path}': {len(self)} events, views {list(self.views)}>"

    @contextmanager
    def _reading(self, k: int):
        """Errors of reading part ``k`` as one DatasetError naming it."""
        try:
            yield
        except NudaskError:
            raise
        except READ_ERRORS as err:
            raise damaged(self.path, self.files[k], err) from None

    def _parquet(self, k: int) -> pq.ParquetFile:
        """Part ``k``, its footer checked against the manifest, its pages against their checksums."""
        file, part = self.files[k], self.manifest.files[k]
        with self._reading(k):
            if k not in self._checked and part.footer_sha256 is not None:
                if footer_sha256(file) != part.footer_sha256:
                    raise damaged(self.path, file, "its footer differs from the one written")
                self._checked.add(k)
            return pq.ParquetFile(file, page_checksum_verification=True)

    @cached_property
    def schema(self):
        if self.files:
            with self._reading(0):
                return self._parquet(0).schema_arrow
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
        checked = pads.ParquetFragmentScanOptions(page_checksum_verification=True)
        return pads.dataset(self.files, format=pads.ParquetFileFormat(default_fragment_scan_options=checked))

    @cached_property
    def metadata(self) -> pd.DataFrame:
        """One row per event: ids, source and truth columns (no images)."""
        images = image_columns(self.views)
        cols = [f.name for f in self.schema if f.name not in images]
        if not self.files:
            return pd.DataFrame(columns=cols)
        tables = []
        for k in range(len(self.files)):  # file by file, so that an error names its part
            with self._reading(k):
                tables.append(self._parquet(k).read(columns=cols, use_threads=False))
        return pa.concat_tables(tables).to_pandas()

    def _row(self, i: int, columns: list[str]):
        n = len(self)
        if not -n <= i < n:
            raise EventIndexError(f"event {i} out of range for a dataset of {n} events")
        i %= n
        k = int(np.searchsorted(self._starts, i, side="right") - 1)
        row = i - int(self._starts[k])
        pf = self._parquet(k)
        with self._reading(k):
            for g in range(pf.num_row_groups):  # read only the row group holding the event
                size = pf.metadata.row_group(g).num_rows
                if row < size:
                    break
                row -= size
            table = pf.read_row_group(g, columns=columns).slice(row, 1)
            if table.num_rows != 1:
                raise ValueError(f"row group {g} holds fewer rows than its metadata says")
            return k, table

    def coo(self, i: int) -> dict[str, Coo]:
        """Sparse images of event ``i``, every channel, values as stored (dense views too)."""
        cols = [
            c for v in self.views.values() for c in (f"{v.name}_shape", *coord_columns(v), *value_columns(v))
        ]
        k, table = self._row(i, cols)
        with self._reading(k):
            return self._coo(table)

    def _coo(self, table) -> dict[str, Coo]:
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
            index = tuple(_values(table, c) for c in coord_columns(view))
            if view.coo_layout == "runs":
                index = from_runs(index[:-1], index[-1])
            sizes = {a.size for a in (*index, *channels.values())}
            if len(sizes) > 1:  # READ_ERRORS: reported as a damaged part
                raise ValueError(f"view '{name}' has {sorted(sizes)} coordinates and values, not one count")
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


def open_dataset(path: str | os.PathLike[str], *, missing: str = "raise") -> Dataset:
    """Open a dataset written by :func:`nudask.preprocess`.

    Every part the manifest lists must be there at its recorded size, else a
    :class:`DatasetError` names them; ``missing="skip"`` reads the others (with a warning).
    Parts are checked (footer hash, page checksums) as they are read.
    """
    return Dataset(path, missing=missing)
