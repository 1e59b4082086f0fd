"""The one Arrow schema of a nudask dataset (the reference for its layout).

One row per event. Columns, in order:

========================  ==========================================================
``source_file``           input file path (string)
``event_index``           row of the event in its source file (int64)
``run, subrun, event``    event identity (int64)
metadata columns          truth by their source names; scalars as they are, vectors
                          as fixed-size lists, byte strings as strings
``{view}_shape``          image shape of the view, fixed-size list of int32
``{view}_{axis}``         COO coordinate along each axis (e.g. ``u_wire``, ``u_time``):
                          list of the smallest unsigned int that fits, sorted C order
``{view}_value``          COO values: list of float32 (or the source dtype); uint8
                          in 8-bit mode, where value = code * ``scale``
========================  ==========================================================

The file metadata key ``nudask`` holds JSON: ``schema_version``, the views
(axes, shape, dtype, 8-bit scale) and the nudask version. A reader of
another schema version is refused by :func:`nudask.open_dataset`.
"""

from __future__ import annotations

import json
from dataclasses import asdict

import pyarrow as pa

from . import __version__
from .events import ViewSpec
from .readers.base import FieldSpec
from .sparse import index_dtype

SCHEMA_VERSION = 1
META_KEY = b"nudask"
ID_COLUMNS = ("source_file", "event_index", "run", "subrun", "event")


def field_type(spec: FieldSpec) -> pa.DataType:
    kind, shape = spec
    t = pa.string() if kind == "str" else pa.from_numpy_dtype(kind)
    return pa.list_(t, shape[0]) if shape else t


def coo_columns(view: ViewSpec) -> list[str]:
    return [f"{view.name}_{axis}" for axis in view.axes] + [f"{view.name}_value"]


def value_type(view: ViewSpec, eight_bit: bool) -> pa.DataType:
    if eight_bit and view.vmax is not None:
        return pa.uint8()
    return pa.from_numpy_dtype(view.dtype)


def build_schema(
    views: dict[str, ViewSpec], fields: dict[str, FieldSpec], *, eight_bit: bool = False
) -> pa.Schema:
    """Schema for events with these views and metadata fields."""
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
        cols.append(pa.field(f"{v.name}_shape", pa.list_(pa.int32(), len(v.shape))))
        for axis, extent in zip(v.axes, v.shape):
            cols.append(pa.field(f"{v.name}_{axis}", pa.list_(pa.from_numpy_dtype(index_dtype(extent)))))
        cols.append(pa.field(f"{v.name}_value", pa.list_(value_type(v, eight_bit))))
        scale = v.vmax / 255 if eight_bit and v.vmax is not None else None
        info[v.name] = {**asdict(v), "scale": scale}
    meta = {"schema_version": SCHEMA_VERSION, "nudask_version": __version__, "views": info}
    return pa.schema(cols, metadata={META_KEY: json.dumps(meta).encode()})


def schema_info(schema: pa.Schema) -> dict:
    """The ``nudask`` metadata of a schema (empty dict if it has none)."""
    raw = (schema.metadata or {}).get(META_KEY)
    return json.loads(raw) if raw else {}


def views_of(schema: pa.Schema) -> dict[str, ViewSpec]:
    out = {}
    for name, v in schema_info(schema).get("views", {}).items():
        out[name] = ViewSpec(v["name"], tuple(v["axes"]), tuple(v["shape"]), v["dtype"], v.get("vmax"))
    return out
