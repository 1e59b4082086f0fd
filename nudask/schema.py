"""The one Arrow schema of a nudask dataset (the reference for its layout).

One row per event. Columns, in order:

=============================  =====================================================
``source_file``                input file path (string)
``event_index``                row of the event in its source file (int64)
``run, subrun, event``         event identity (int64)
metadata columns               truth by their source names; scalars as they are,
                               vectors as fixed-size lists, byte strings as strings
``{view}_shape``               image shape of the event's view (sizes may vary per
                               event), fixed-size list of int32
``{view}_{axis}``              COO views only: one entry per *run* of consecutive
                               entries along the last axis, runs in C order. For
                               every axis but the last, the run's coordinate (e.g.
                               ``u_wire``); for the last axis, the run's first
                               coordinate (``u_time``). Lists of the smallest
                               unsigned int that holds the largest extent
``{view}_{last}_length``       COO views only: the run's length (``u_time_length``),
                               a list aligned with the run columns; entry ``j`` of
                               run ``r`` sits at ``u_time[r] + j`` along the last axis
``{view}_{channel}``           values of each channel (``u_value``; ``voxels_energy``,
                               ``voxels_label``): a list per event, one value per
                               entry, entries in C order (the runs' entries one after
                               the other) or every pixel in C order (dense); uint8 in
                               8-bit mode (first channel), where value = code *
                               ``scale``; float16 with ``values="float16"``
=============================  =====================================================

The file metadata key ``nudask`` holds JSON: ``schema_version``, the views
(kind, axes, largest shape, channels and dtypes, 8-bit scale, ``coo_layout``),
how values are stored (``values``) and the nudask version.

Every COO view is written as runs (``coo_layout: runs``): measured on every
simulated format (BENCHMARKS.md), runs are smaller than one coordinate per
entry and axis, about 3x for full-size wire images and 13 % for 3-D voxels,
and an image of isolated points pays only a length column of ones. Versions
1 and 2 stored one coordinate per entry and axis (``{view}_{axis}`` aligned
with the values, ``coo_layout: pairs``, no length column); version 1 (COO
only, one ``value`` channel) has the same columns for the views it could
hold. :func:`views_of` reads all three; :func:`nudask.sparse.from_runs`
turns runs back into every entry's coordinates.

``values="float16"`` stores every floating value channel (but 8-bit codes)
as IEEE half floats, rounded to nearest: a relative error of at most
:data:`FLOAT16_RELATIVE_ERROR` (2^-11, 0.049 %) for magnitudes from 2^-14
(6.1e-5) to 65504; values beyond 65504 are refused.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace

import numpy as np
import pyarrow as pa

from . import __version__
from .errors import InputError
from .events import ViewSpec
from .readers.base import FieldSpec
from .sparse import index_dtype

SCHEMA_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)
VALUE_STORAGE = ("exact", "float16")  # how floating value channels are written (``values=``)
FLOAT16_RELATIVE_ERROR = 2.0**-11  # half the spacing of float16's 11-bit significand
FLOAT16_MAX = 65504.0
META_KEY = b"nudask"
ID_COLUMNS = ("source_file", "event_index", "run", "subrun", "event")


def field_type(spec: FieldSpec) -> pa.DataType:
    kind, shape = spec
    t = pa.string() if kind == "str" else pa.from_numpy_dtype(kind)
    return pa.list_(t, shape[0]) if shape else t


def coord_columns(view: ViewSpec) -> list[str]:
    """Coordinate columns of a view as stored (none for a dense view): one per axis, then
    the run lengths for ``coo_layout: runs``."""
    if view.kind != "coo":
        return []
    axes = [f"{view.name}_{axis}" for axis in view.axes]
    return [*axes, run_length_column(view)] if view.coo_layout == "runs" else axes


def run_length_column(view: ViewSpec) -> str:
    """The run lengths' column of a COO view stored as runs (``u_time_length``)."""
    return f"{view.name}_{view.axes[-1]}_length"


def value_columns(view: ViewSpec) -> list[str]:
    return [f"{view.name}_{channel}" for channel in view.channel_names]


def coo_columns(view: ViewSpec) -> list[str]:
    """The image columns of a view besides its shape: coordinates, then value channels."""
    return coord_columns(view) + value_columns(view)


def image_columns(views: dict[str, ViewSpec]) -> set[str]:
    """Every column that holds images (shapes, coordinates, values) of ``views``."""
    return {c for v in views.values() for c in (f"{v.name}_shape", *coo_columns(v))}


def value_type(view: ViewSpec, eight_bit: bool, channel: int = 0, values: str = "exact") -> pa.DataType:
    if channel == 0 and eight_bit and view.vmax is not None:
        return pa.uint8()
    dtype = np.dtype(view.channels[channel][1])
    if values == "float16" and dtype.kind == "f":
        return pa.float16()
    return pa.from_numpy_dtype(dtype)


def build_schema(
    views: dict[str, ViewSpec],
    fields: dict[str, FieldSpec],
    *,
    eight_bit: bool = False,
    values: str = "exact",
) -> pa.Schema:
    """Schema for events with these views and metadata fields.

    ``values``: ``exact`` keeps the reader's value types; ``float16`` stores floating
    value channels as half floats (see the module's notes for the error).
    """
    if values not in VALUE_STORAGE:
        raise ValueError(f"values must be one of {VALUE_STORAGE}, got {values!r}")
    clash = set(fields) & set(ID_COLUMNS)
    if clash:
        raise ValueError(f"metadata fields {sorted(clash)} clash with nudask's id columns")
    cols = [
        pa.field("source_file", pa.string()),
        pa.field("event_index", pa.int64()),
        pa.field("run", pa.int64()),
        pa.field("subrun", pa.int64()),
        pa.field("event", pa.int64()),
    ]
    cols += [pa.field(name, field_type(spec)) for name, spec in fields.items()]
    info = {}
    for v in views.values():
        overlap = set(v.axes) & set(v.channel_names) | ({"shape"} & (set(v.axes) | set(v.channel_names)))
        if overlap:
            raise ValueError(f"view '{v.name}': names {sorted(overlap)} are both axes and channels")
        cols.append(pa.field(f"{v.name}_shape", pa.list_(pa.int32(), len(v.shape))))
        if v.kind == "coo":
            for axis, extent in zip(v.axes, v.shape):
                cols.append(pa.field(f"{v.name}_{axis}", pa.list_(pa.from_numpy_dtype(index_dtype(extent)))))
            if v.coo_layout == "runs":  # a run is at most the last axis long
                length = pa.from_numpy_dtype(index_dtype(v.shape[-1] + 1))
                cols.append(pa.field(run_length_column(v), pa.list_(length)))
        for k, channel in enumerate(v.channel_names):
            cols.append(pa.field(f"{v.name}_{channel}", pa.list_(value_type(v, eight_bit, k, values))))
        scale = v.vmax / 255 if eight_bit and v.vmax is not None else None
        info[v.name] = {**asdict(v), "scale": scale}
    names = [c.name for c in cols]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"columns {dup} appear twice: rename a metadata field or a view")
    meta = {
        "schema_version": SCHEMA_VERSION, "nudask_version": __version__, "values": values, "views": info,
    }  # fmt: skip
    return pa.schema(cols, metadata={META_KEY: json.dumps(meta).encode()})


def schema_info(schema: pa.Schema) -> dict:
    """The ``nudask`` metadata of a schema (empty dict if it has none)."""
    raw = (schema.metadata or {}).get(META_KEY)
    return json.loads(raw) if raw else {}


def view_spec(v: dict) -> ViewSpec:
    """A :class:`ViewSpec` from its JSON form (schema v1, v2: coordinate pairs; v3: as recorded)."""
    return ViewSpec(
        v["name"], tuple(v["axes"]), tuple(v["shape"]), v["dtype"], v.get("vmax"),
        v.get("kind", "coo"), tuple(tuple(c) for c in v.get("channels", ())), v.get("coo_layout", "pairs"),
    )  # fmt: skip


def views_of(schema: pa.Schema) -> dict[str, ViewSpec]:
    return {name: view_spec(v) for name, v in schema_info(schema).get("views", {}).items()}


def choose_kind(view: ViewSpec, occupancy: float) -> str:
    """``dense`` when every pixel costs fewer bytes than the COO entries at this occupancy.

    A reader whose images are mostly non-zero (raw CCD frames) picks ``dense``
    with it; sparse readouts stay ``coo``.

    >>> v = ViewSpec("f", ("row", "col"), (100, 100), "int32")
    >>> choose_kind(v, 0.9), choose_kind(v, 0.05)
    ('dense', 'coo')
    """
    value = sum(np.dtype(t).itemsize for _, t in view.channels)
    index = sum(index_dtype(n).itemsize for n in view.shape)
    return "dense" if occupancy * (value + index) >= value else "coo"


def merge_views(views: dict[str, ViewSpec], more: dict[str, ViewSpec], path: str) -> dict[str, ViewSpec]:
    """Views covering both: the largest extent per axis; anything else that differs is refused.

    >>> a = {"u": ViewSpec("u", ("wire", "time"), (10, 5))}
    >>> merge_views(a, {"u": ViewSpec("u", ("wire", "time"), (12, 4))}, "b.h5")["u"].shape
    (12, 5)
    """
    if set(views) != set(more):
        raise InputError(
            path, f"its views {sorted(more)} differ from the other inputs' {sorted(views)}",
            "write files of different layouts to separate datasets",
        )  # fmt: skip
    out = {}
    for name, a in views.items():
        b = more[name]
        for what in ("axes", "kind", "channels", "vmax", "coo_layout"):
            if getattr(a, what) != getattr(b, what):
                raise InputError(
                    path, f"view '{name}' has {what} {getattr(b, what)}, the other inputs "
                    f"{getattr(a, what)}", "write files of different layouts to separate datasets",
                )  # fmt: skip
        out[name] = replace(a, shape=tuple(max(x, y) for x, y in zip(a.shape, b.shape)))
    return out


def merge_fields(fields: dict[str, FieldSpec], more: dict[str, FieldSpec], path: str) -> dict[str, FieldSpec]:
    """The same metadata fields in every input, or an error naming what differs."""
    if fields != more:
        missing, extra = sorted(set(fields) - set(more)), sorted(set(more) - set(fields))
        typed = sorted(k for k in set(fields) & set(more) if fields[k] != more[k])
        detail = "; ".join(
            part for part in (
                f"missing {missing}" if missing else "", f"extra {extra}" if extra else "",
                ", ".join(f"'{k}' is {more[k]} not {fields[k]}" for k in typed),
            ) if part
        )  # fmt: skip
        raise InputError(
            path, f"its metadata columns differ from the other inputs' ({detail})",
            "write files of different layouts to separate datasets",
        )  # fmt: skip
    return fields
