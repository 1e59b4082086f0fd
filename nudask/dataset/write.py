"""Events -> Arrow table -> one Parquet file, written atomically."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import InputError, OutputError, output_error
from ..events import Coo, Event, EventBatch, ViewSpec
from ..schema import ID_COLUMNS, coord_columns, image_columns, value_columns, views_of
from ..sparse import to_coo, to_dense


def _list_array(parts: Sequence[np.ndarray], type_: pa.DataType) -> pa.Array:
    offsets = np.zeros(len(parts) + 1, np.int32)
    np.cumsum([p.size for p in parts], out=offsets[1:])
    flat = np.concatenate(parts) if parts else np.zeros(0)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat, type=type_.value_type))


def _column(values: list | np.ndarray, type_: pa.DataType) -> pa.Array:
    if pa.types.is_fixed_size_list(type_):
        flat = np.asarray(values).reshape(-1)
        return pa.FixedSizeListArray.from_arrays(pa.array(flat, type=type_.value_type), type_.list_size)
    if pa.types.is_string(type_):
        return pa.array([str(v) for v in values], type=type_)
    return pa.array(np.asarray(values), type=type_)


def events_to_table(events: Sequence[Event], sources: str | Sequence[str], schema: pa.Schema) -> pa.Table:
    """Arrow table of ``events`` in ``schema`` (see :mod:`nudask.schema`).

    ``sources`` is the input file of each event (or one path for all of them).
    """
    views = views_of(schema)
    if isinstance(sources, str):
        sources = [sources] * len(events)
    view_cols = image_columns(views)
    fields = [f.name for f in schema if f.name not in view_cols and f.name not in ID_COLUMNS]
    for ev, source in zip(events, sources):
        if set(ev.metadata) != set(fields):
            missing, extra = set(fields) - set(ev.metadata), set(ev.metadata) - set(fields)
            raise InputError(
                source,
                f"metadata columns differ from the dataset's (missing {sorted(missing)}, "
                f"extra {sorted(extra)})",
                "write files of different layouts to separate datasets",
            )
    cols: dict[str, pa.Array] = {
        "source_file": pa.array(list(sources), pa.string()),
        "event_index": pa.array([e.index for e in events], pa.int64()),
        "run": pa.array([e.id.run for e in events], pa.int64()),
        "subrun": pa.array([e.id.subrun for e in events], pa.int64()),
        "event": pa.array([e.id.event for e in events], pa.int64()),
    }
    first = sources[0] if len(sources) else ""
    try:
        for name in fields:
            cols[name] = _column([e.metadata[name] for e in events], schema.field(name).type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError) as err:
        raise InputError(first, f"metadata do not fit the dataset's schema ({err})") from None
    for name, view in views.items():
        images = [e.images[name] for e in events]
        for img, source in zip(images, sources):
            shape = img.shape
            if len(shape) != len(view.shape) or any(s > m for s, m in zip(shape, view.shape)):
                raise InputError(
                    source, f"an image of view '{name}' has shape {tuple(shape)}, larger than the "
                    f"{view.shape} the reader declared", "the reader's views() are wrong for this file",
                )  # fmt: skip
        cols[f"{name}_shape"] = _column([img.shape for img in images], schema.field(f"{name}_shape").type)
        if view.kind == "coo":
            coos = [img if isinstance(img, Coo) else to_coo(img) for img in images]
            for k, axis in enumerate(view.axes):
                col = f"{name}_{axis}"
                cols[col] = _list_array([c.index[k] for c in coos], schema.field(col).type)
            channels = [_channels(c.channels, view) for c in coos]
        else:
            channels = [_dense_channels(img, view) for img in images]
        for k, channel in enumerate(view.channel_names):
            col = f"{name}_{channel}"
            vtype = schema.field(col).type
            values = [ch[k] for ch in channels]
            if k == 0 and pa.types.is_uint8(vtype.value_type) and np.dtype(view.dtype) != np.uint8:
                vmax = view.vmax
                assert vmax is not None  # 8-bit codes only for views with a saturation
                values = [quantize(v, vmax) for v in values]
            cols[col] = _list_array(values, vtype)
    return pa.table([cols[f.name] for f in schema], schema=schema)


def batch_to_table(batch: EventBatch, sources: str | Sequence[str], schema: pa.Schema) -> pa.Table:
    """Arrow table of a columnar :class:`~nudask.events.EventBatch`: the same table
    :func:`events_to_table` makes of ``list(batch.events())``, without a loop per event.
    """
    views = views_of(schema)
    n = len(batch)
    if isinstance(sources, str):
        source_col, first = pa.array([sources] * n, pa.string()), sources
    else:
        source_col, first = pa.array(list(sources), pa.string()), (sources[0] if len(sources) else "")
    view_cols = image_columns(views)
    fields = [f.name for f in schema if f.name not in view_cols and f.name not in ID_COLUMNS]
    if set(batch.metadata) != set(fields):
        missing, extra = set(fields) - set(batch.metadata), set(batch.metadata) - set(fields)
        raise InputError(
            first,
            f"metadata columns differ from the dataset's (missing {sorted(missing)}, extra {sorted(extra)})",
            "write files of different layouts to separate datasets",
        )
    cols: dict[str, pa.Array] = {"source_file": source_col}
    for name in ("event_index", "run", "subrun", "event"):
        cols[name] = pa.array(
            np.asarray(getattr(batch, "index" if name == "event_index" else name), np.int64)
        )
    try:
        for name in fields:
            values = batch.metadata[name]
            type_ = schema.field(name).type
            cols[name] = _column(list(values) if pa.types.is_string(type_) else values, type_)
    except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError) as err:
        raise InputError(first, f"metadata do not fit the dataset's schema ({err})") from None
    for name, view in views.items():
        vb = batch.images[name]
        shapes = np.asarray(vb.shapes).reshape(n, -1)
        if shapes.shape[1] != len(view.shape) or (n and np.any(shapes > np.array(view.shape))):
            k = int(np.flatnonzero(np.any(shapes > np.array(view.shape), axis=1))[0]) if n else 0
            raise InputError(
                first, f"an image of view '{name}' has shape {tuple(shapes[k])}, larger than the "
                f"{view.shape} the reader declared", "the reader's views() are wrong for this file",
            )  # fmt: skip
        cols[f"{name}_shape"] = _column(shapes, schema.field(f"{name}_shape").type)
        offsets = pa.array(np.asarray(vb.offsets, np.int32))
        if view.kind == "coo":
            for k, axis in enumerate(view.axes):
                col = f"{name}_{axis}"
                flat = pa.array(vb.index[k], type=schema.field(col).type.value_type)
                cols[col] = pa.ListArray.from_arrays(offsets, flat)
        channels = list(vb.channels.values())[:1] if len(view.channels) == 1 else [
            vb.channels[c] for c in view.channel_names
        ]  # fmt: skip
        if view.kind == "dense" and vb.index:  # COO entries of a dense view: every pixel
            offsets, channels = _densify(vb, shapes, channels, view)
        for k, channel in enumerate(view.channel_names):
            col = f"{name}_{channel}"
            vtype = schema.field(col).type
            values = channels[k]
            if k == 0 and pa.types.is_uint8(vtype.value_type) and np.dtype(view.dtype) != np.uint8:
                assert view.vmax is not None  # 8-bit codes only for views with a saturation
                values = quantize(values, view.vmax)
            cols[col] = pa.ListArray.from_arrays(offsets, pa.array(values, type=vtype.value_type))
    return pa.table([cols[f.name] for f in schema], schema=schema)


def _densify(vb, shapes: np.ndarray, channels: list[np.ndarray], view: ViewSpec):
    """Offsets and flat per-pixel channels of COO entries (``vb``) for a dense view."""
    n = len(shapes)
    sizes = np.prod(shapes, axis=1, dtype=np.int64)
    starts = np.zeros(n + 1, np.int64)
    np.cumsum(sizes, out=starts[1:])
    owner = np.repeat(np.arange(n), np.diff(np.asarray(vb.offsets)))
    lin = np.zeros(owner.size, np.int64)
    for a, coord in enumerate(vb.index):
        lin = lin * shapes[owner, a] + coord
    out = []
    for (_, dtype), values in zip(view.channels, channels):
        dense = np.zeros(int(starts[-1]), np.dtype(dtype))
        dense[starts[owner] + lin] = values
        out.append(dense)
    return pa.array(starts.astype(np.int32)), out


def _channels(channels: dict[str, np.ndarray], view: ViewSpec) -> list[np.ndarray]:
    """The view's channels, in its order; a one-channel view takes the first, whatever its name."""
    if len(view.channels) == 1:
        return [next(iter(channels.values()))]
    return [channels[c] for c in view.channel_names]


def _dense_channels(img: Coo | np.ndarray, view: ViewSpec) -> list[np.ndarray]:
    if isinstance(img, Coo):
        return [to_dense(img, dtype=np.dtype(t), channel=c).reshape(-1) for c, t in _named(img, view)]
    return [np.ascontiguousarray(img).reshape(-1)]


def _named(img: Coo, view: ViewSpec) -> list[tuple[str, str]]:
    names = list(img.channels)
    if len(view.channels) == 1:
        return [(names[0], view.dtype)]
    return list(view.channels)


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
    for view in views.values():
        for col in coord_columns(view):
            encoding[f"{col}.list.element"] = "DELTA_BINARY_PACKED"
        for col in value_columns(view):
            if pa.types.is_floating(schema.field(col).type.value_type):
                encoding[f"{col}.list.element"] = "BYTE_STREAM_SPLIT"
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
            write_page_checksum=True,
            **parquet_options(table.schema, compression, compression_level),
        )
        digest, footer = file_sha256(tmp), footer_sha256(tmp)
        os.replace(tmp, path)
    except OutputError:
        raise
    except OSError as err:  # disk full, quota, read-only: one line naming the file
        raise output_error(path, err) from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return {
        "name": name, "rows": table.num_rows, "bytes": os.path.getsize(path), "sha256": digest,
        "footer_sha256": footer,
    }  # fmt: skip


def file_sha256(path: str, block: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            h.update(chunk)
    return h.hexdigest()


def footer_sha256(path: str) -> str:
    """sha256 of a Parquet file's footer (metadata, its length, the magic): cheap to check on open.

    Page checksums cover the data pages; this covers what they do not (schema, offsets).
    """
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        if size < 12:
            raise OSError(f"'{path}' is too short for a Parquet file ({size} bytes)")
        f.seek(size - 8)
        length = int.from_bytes(f.read(4), "little") + 8
        if length > size - 4:
            raise OSError(f"'{path}' has a footer length of {length} bytes, beyond the file")
        f.seek(size - length)
        return hashlib.sha256(f.read(length)).hexdigest()
