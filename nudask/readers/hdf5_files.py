"""Opening HDF5 inputs with errors that name the file and say what to do."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import h5py

from ..errors import InputError


@contextmanager
def open_h5(path: str) -> Iterator[h5py.File]:
    """Open ``path`` read-only; a missing, empty or non-HDF5 file raises InputError."""
    if not os.path.exists(path):
        raise InputError(path, "no such file", "check the path")
    if os.path.getsize(path) == 0:
        raise InputError(path, "the file is empty (0 bytes)", "re-copy or re-download it")
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise InputError(
            path, f"not a readable HDF5 file ({err})", "it may be truncated or not HDF5 at all"
        ) from None
    with f:
        yield f


def h5_holds(path, present: Sequence[str], absent: Sequence[str] = (), *, unreadable: bool) -> bool:
    """Whether the HDF5 file has the ``present`` names and none of the ``absent`` ones."""
    try:
        with h5py.File(path, "r") as f:
            return all(n in f for n in present) and not any(n in f for n in absent)
    except OSError:
        return unreadable


def require_group(f: h5py.File, path: str, name: str, hint: str = "") -> h5py.Group:
    obj = f.get(name)
    if not isinstance(obj, h5py.Group):
        raise InputError(path, f"no '{name}' table", hint)
    return obj


def require_columns(group: h5py.Group, path: str, columns: Sequence[str], n_rows: int | None = None) -> int:
    """Check ``group`` has 2-D datasets ``columns`` of equal length; return that length."""
    table = group.name.lstrip("/")
    lengths = set()
    for col in columns:
        d = group.get(col)
        if not isinstance(d, h5py.Dataset):
            raise InputError(path, f"table '{table}' lacks column '{col}'")
        if d.ndim != 2:
            raise InputError(path, f"column '{table}/{col}' has shape {d.shape}; expected (N, k)")
        lengths.add(d.shape[0])
    if n_rows is not None:
        lengths.add(n_rows)
    if len(lengths) > 1:
        raise InputError(
            path,
            f"columns of '{table}' have different lengths {sorted(lengths)}",
            "the file is truncated or corrupt",
        )
    return lengths.pop() if lengths else 0


def field_spec(d: h5py.Dataset) -> tuple[str, tuple[int, ...]]:
    """Per-event type of a hep_hpc column: ``(N, 1)`` -> scalar, ``(N, k)`` -> vector."""
    kind = "str" if d.dtype.kind == "S" else d.dtype.newbyteorder("=").str
    return kind, (() if d.shape[1] == 1 else (int(d.shape[1]),))


def column_values(d: h5py.Dataset, start: int, stop: int):
    """Per-event values of rows ``[start, stop)``: 1-D for scalars, 2-D for vectors."""
    a = d[start:stop]
    if a.dtype.kind == "S":
        a = a.astype(str)
    return a[:, 0] if a.shape[1] == 1 else a
