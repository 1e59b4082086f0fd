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
from ..schema import (
    FLOAT16_MAX,
    ID_COLUMNS,
    coord_columns,
    image_columns,
    run_length_column,
    value_columns,
    views_of,
)
from ..sparse import to_coo, to_dense, to_runs


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
            offsets = np.zeros(len(coos) + 1, np.int64)
            np.cumsum([c.nnz for c in coos], out=offsets[1:])
            index = tuple(_concat([c.index[k] for c in coos]) for k in range(len(view.axes)))
            cols.update(coord_arrays(view, schema, offsets, index))
            channels = [_channels(c.channels, view) for c in coos]
        else:
            channels = [_dense_channels(img, view) for img in images]
        for k, channel in enumerate(view.channel_names):
            col = f"{name}_{channel}"
            vtype = schema.field(col).type
            values = [_stored(ch[k], vtype.value_type, view, k, src) for ch, src in zip(channels, sources)]
            cols[col] = _list_array(values, vtype)
    return pa.table([cols[f.name] for f in schema], schema=schema)


def _concat(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def coord_arrays(view: ViewSpec, schema: pa.Schema, offsets: np.ndarray, index: tuple) -> dict[str, pa.Array]:
    """The coordinate columns of a COO view: ``index`` holds the entries of several images end
    to end (image ``k``'s are ``offsets[k]:offsets[k+1]``), stored as the view's ``coo_layout``."""
    columns = coord_columns(view)
    if view.coo_layout == "runs":
        length = schema.field(run_length_column(view)).type.value_type.to_pandas_dtype()
        runs, lengths, offsets = to_runs(index, offsets, length)
        flat = [*runs, lengths]
    else:
        flat = list(index)
    list_offsets = pa.array(np.asarray(offsets, np.int32))
    return {
        col: pa.ListArray.from_arrays(list_offsets, pa.array(a, type=schema.field(col).type.value_type))
        for col, a in zip(columns, flat)
    }


def _stored(values: np.ndarray, type_: pa.DataType, view: ViewSpec, k: int, source: str) -> np.ndarray:
    """Values of channel ``k`` as the column stores them: 8-bit codes, half floats or as they are."""
    if k == 0 and pa.types.is_uint8(type_) and np.dtype(view.dtype) != np.uint8:
        assert view.vmax is not None  # 8-bit codes only for views with a saturation
        return quantize(values, view.vmax)
    if pa.types.is_float16(type_) and values.dtype != np.float16:
        return to_float16(values, f"view '{view.name}' channel '{view.channel_names[k]}'", source)
    return values


def to_float16(values: np.ndarray, what: str, source: str) -> np.ndarray:
    """``values`` rounded to the nearest half float; a finite value beyond its range is an error.

    >>> to_float16(np.array([10.0, 99.99], np.float32), "u", "f.h5").tolist()
    [10.0, 100.0]
    """
    big = np.isfinite(values) & (np.abs(values) > FLOAT16_MAX)
    if big.any():
        raise InputError(
            source, f"{what} holds {float(np.abs(values[big]).max()):g}, beyond float16's {FLOAT16_MAX:g}",
            "preprocess without --values float16 (values: exact)",
        )  # fmt: skip
    return values.astype(np.float16)


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
            cols.update(coord_arrays(view, schema, np.asarray(vb.offsets, np.int64), tuple(vb.index)))
        channels = list(vb.channels.values())[:1] if len(view.channels) == 1 else [
            vb.channels[c] for c in view.channel_names
        ]  # fmt: skip
        if view.kind == "dense" and vb.index:  # COO entries of a dense view: every pixel
            offsets, channels = _densify(vb, shapes, channels, view)
        for k, channel in enumerate(view.channel_names):
            col = f"{name}_{channel}"
            vtype = schema.field(col).type
            values = _stored(channels[k], vtype.value_type, view, k, first)
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
    """Encodings chosen by measurement on full-size wire-plane images (BENCHMARKS.md).

    Leading coordinates of runs (or every coordinate of pairs): delta, as they rise
    slowly. Run starts and lengths: byte-stream split (starts jump from wire to
    wire, which delta codes badly). Float32/64 values: byte-stream split; float16
    values: plain (DuckDB cannot read byte-stream-split float16). Everything else,
    8-bit codes and integer channels included: dictionary.
    """
    views = views_of(schema)
    encoding = {}
    for view in views.values():
        coords = coord_columns(view)
        split = coords[len(view.axes) - 1 :] if view.coo_layout == "runs" else []
        for col in coords:
            encoding[f"{col}.list.element"] = "BYTE_STREAM_SPLIT" if col in split else "DELTA_BINARY_PACKED"
        for col in value_columns(view):
            type_ = schema.field(col).type.value_type
            if pa.types.is_float16(type_):
                encoding[f"{col}.list.element"] = "PLAIN"
            elif pa.types.is_floating(type_):
                encoding[f"{col}.list.element"] = "BYTE_STREAM_SPLIT"
    return {
        "compression": compression,
        "compression_level": level,
        # leaf paths: a list column's dictionary is asked for by its element's path
        "use_dictionary": [p for p in _leaf_paths(schema) if p not in encoding],
        "column_encoding": encoding,
    }


def _leaf_paths(schema: pa.Schema) -> list[str]:
    nested = (pa.types.is_list, pa.types.is_fixed_size_list)
    return [f"{f.name}.list.element" if any(t(f.type) for t in nested) else f.name for f in schema]


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
