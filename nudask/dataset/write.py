"""Events -> Arrow table -> one Parquet file, written atomically."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import InputError
from ..events import Event
from ..schema import ID_COLUMNS, views_of


def _list_array(parts: Sequence[np.ndarray], type_: pa.DataType) -> pa.Array:
    offsets = np.zeros(len(parts) + 1, np.int32)
    np.cumsum([p.size for p in parts], out=offsets[1:])
    flat = np.concatenate(parts) if parts else np.zeros(0)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat, type=type_.value_type))


def _column(values: list, type_: pa.DataType) -> pa.Array:
    if pa.types.is_fixed_size_list(type_):
        flat = np.asarray(values).reshape(-1)
        return pa.FixedSizeListArray.from_arrays(pa.array(flat, type=type_.value_type), type_.list_size)
    if pa.types.is_string(type_):
        return pa.array([str(v) for v in values], type=type_)
    return pa.array(np.asarray(values), type=type_)


def events_to_table(events: Sequence[Event], source_file: str, schema: pa.Schema) -> pa.Table:
    """Arrow table of ``events`` in ``schema`` (see :mod:`nudask.schema`)."""
    views = views_of(schema)
    view_cols = {f"{v}_shape" for v in views} | {f"{v}_{a}" for v in views for a in (*views[v].axes, "value")}
    fields = [f.name for f in schema if f.name not in view_cols and f.name not in ID_COLUMNS]
    for ev in events:
        if set(ev.metadata) != set(fields):
            missing, extra = set(fields) - set(ev.metadata), set(ev.metadata) - set(fields)
            raise InputError(
                source_file,
                f"metadata columns differ from the dataset's (missing {sorted(missing)}, "
                f"extra {sorted(extra)})",
                "write files of different layouts to separate datasets",
            )
    cols: dict[str, pa.Array] = {
        "source_file": pa.array([source_file] * len(events), pa.string()),
        "event_index": pa.array([e.index for e in events], pa.int64()),
        "run": pa.array([e.id.run for e in events], pa.int64()),
        "subrun": pa.array([e.id.subrun for e in events], pa.int64()),
        "event": pa.array([e.id.event for e in events], pa.int64()),
    }
    try:
        for name in fields:
            cols[name] = _column([e.metadata[name] for e in events], schema.field(name).type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError) as err:
        raise InputError(source_file, f"metadata do not fit the dataset's schema ({err})") from None
    for name, view in views.items():
        coos = [e.images[name] for e in events]
        cols[f"{name}_shape"] = _column([c.shape for c in coos], schema.field(f"{name}_shape").type)
        for k, axis in enumerate(view.axes):
            col = f"{name}_{axis}"
            cols[col] = _list_array([c.index[k] for c in coos], schema.field(col).type)
        vtype = schema.field(f"{name}_value").type
        values = [c.values for c in coos]
        if pa.types.is_uint8(vtype.value_type) and np.dtype(view.dtype) != np.uint8:
            values = [quantize(v, view.vmax) for v in values]
        cols[f"{name}_value"] = _list_array(values, vtype)
    return pa.table([cols[f.name] for f in schema], schema=schema)


def quantize(values: np.ndarray, vmax: float) -> np.ndarray:
    """8-bit codes of ``values`` in ``[0, vmax]`` (value ~ code * vmax / 255).

    >>> quantize(np.array([0., 50., 100.]), 100.).tolist()
    [0, 127, 255]
    """
    return np.clip(np.rint(values * (255.0 / vmax)), 0, 255).astype(np.uint8)


def parquet_options(schema: pa.Schema, compression: str, level: int | None) -> dict:
    """Encodings that suit sorted COO lists: delta for indices, byte-split for floats."""
    views = views_of(schema)
    encoding = {}
    for name, view in views.items():
        for axis in view.axes:
            encoding[f"{name}_{axis}.list.element"] = "DELTA_BINARY_PACKED"
        if pa.types.is_floating(schema.field(f"{name}_value").type.value_type):
            encoding[f"{name}_value.list.element"] = "BYTE_STREAM_SPLIT"
    plain = {c.split(".")[0] for c in encoding}
    return {
        "compression": compression,
        "compression_level": level,
        "use_dictionary": [f.name for f in schema if f.name not in plain],
        "column_encoding": encoding,
    }


def write_parquet(
    table: pa.Table,
    path: str,
    *,
    row_group_events: int = 16,
    compression: str = "zstd",
    compression_level: int | None = 9,
) -> dict:
    """Write ``table`` to ``path`` atomically; return name, rows, bytes and sha256."""
    folder, name = os.path.split(path)
    tmp = os.path.join(folder, f".{name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        pq.write_table(
            table,
            tmp,
            row_group_size=row_group_events,
            **parquet_options(table.schema, compression, compression_level),
        )
        digest = file_sha256(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return {"name": name, "rows": table.num_rows, "bytes": os.path.getsize(path), "sha256": digest}


def file_sha256(path: str, block: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            h.update(chunk)
    return h.hexdigest()
