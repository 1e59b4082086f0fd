"""INSS 2025 "Find Michels": 3-D voxel images in HDF5 variable-length arrays (formats.md section 5).

The xyze file has a dataset ``data`` with one vlen float32 array per image, the flattened
``(N, 4)`` = voxel x, y, z (indices in a 768^3 grid) and energy (MeV). The label file has a
dataset ``labels`` with one vlen int32 array per image, aligned with the voxels: 0 shower,
1 track, 2 Michel electron, 3 delta ray, 4 low-energy scatter. The label file is found by
name (``*_xyze_*`` -> ``*_label_*``) or given with ``-O labels=PATH``; challenge files have
none, and then the ``label`` channel is absent.

One event per image, view ``voxels`` (axes x, y, z; COO, never dense) with the channels
``energy``, ``label`` (with labels; 0 is a label, kept) and ``row``: the voxel's row in the
original file, which a solution file refers to whatever the order in storage (voxels are
stored sorted by x, y, z). Images are read in chunks (``d[start:stop]``): a 1M-image file is
never read whole.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any, ClassVar

import h5py
import numpy as np

from ...errors import InputError
from ...events import Chunk, Coo, Event, EventId, ViewSpec
from ...roles import Label, Quantity, Roles, Title
from ..base import FieldSpec, Reader
from ..hdf5_files import h5_holds, open_h5
from .simulate import CLASSES, GRID, MICHEL

DATA, LABELS = "data", "labels"
FIELDS: dict[str, FieldSpec] = {
    "n_voxels": ("<i8", ()),
    "total_energy": ("<f4", ()),
    "n_michel": ("<i4", ()),  # -1 without labels
    "michel_energy": ("<f4", ()),  # NaN without labels
    "has_michel": ("<i4", ()),  # -1 without labels
}


def label_path_for(path: str) -> str | None:
    """The label file paired with ``path`` by name, if it exists.

    >>> label_path_for("/nonexistent/train_xyze_1e4.h5") is None
    True
    """
    folder, base = os.path.split(path)
    if "_xyze_" not in base:
        return None
    candidate = os.path.join(folder, base.replace("_xyze_", "_label_", 1))
    return candidate if os.path.exists(candidate) else None


def _vlen(f: h5py.File, path: str, name: str, kind: str) -> h5py.Dataset:
    d = f.get(name)
    if not isinstance(d, h5py.Dataset):
        raise InputError(path, f"no '{name}' dataset", f"is it a Find-Michels {kind} file?")
    base = h5py.check_vlen_dtype(d.dtype)
    if d.ndim != 1 or base is None or base.kind not in "fiu":
        raise InputError(
            path,
            f"'{name}' has shape {d.shape} and dtype {d.dtype}; "
            "expected one variable-length numeric array per image",
        )
    return d


class INSSReader(Reader):
    name = "inss"
    suffixes = (".h5", ".hdf5")
    description = "INSS 2025 Find-Michels 3-D voxels (vlen xyze + label HDF5), view voxels of 768^3"
    OPTIONS: ClassVar[dict[str, str]] = {
        "labels": "label file: 'auto' (the *_label_* file named like the *_xyze_* one, if any), "
        "a path, or 'none'",
        "grid": "voxels per axis of the grid",
    }
    simulate_options: ClassVar[dict[str, str]] = {
        "prefix": "file names {prefix}_xyze_{events}.h5 (default train; the file index is appended "
        "when --files > 1)",
        "labels": "write the label file too (default true; false: challenge-like files)",
        "solution_dataset": "dataset name in the example solution file (default solution)",
        "michel_fraction": "probability that a stopping muon gives a Michel electron (default 0.8)",
    }

    def __init__(self, *, labels: str = "auto", grid: int = GRID):
        self.labels = str(labels)
        self.grid = int(grid)

    def options(self) -> dict[str, Any]:
        return {"labels": self.labels, "grid": self.grid}

    @classmethod
    def simulate(cls, out: str, *, files: int, events: int, seed: int, **options: Any) -> list[str]:
        from .simulate import write_files

        prefix = str(options.get("prefix", "train"))
        paths = []
        for k in range(files):
            paths += write_files(
                out,
                images=events,
                seed=seed * 1000 + k,
                prefix=prefix if files == 1 else f"{prefix}{k}",
                labels=bool(options.get("labels", True)),
                solution_dataset=str(options.get("solution_dataset", "solution")),
                michel_fraction=float(options.get("michel_fraction", 0.8)),
            )
        return paths

    @classmethod
    def guess_can_open(cls, path) -> bool:
        return super().guess_can_open(path) and h5_holds(
            path, [DATA], ["event_table", "cvnmap"], unreadable=False
        )

    def roles(self) -> Roles:
        return Roles(
            energy=Quantity("total_energy", "MeV"),
            particle_energy=Quantity("michel_energy", "MeV"),
            labels={"michel": Label(("no Michel", "Michel"), column="has_michel")},
            title=(
                Title("n_voxels", "{:d} voxels"),
                Title("total_energy", "E {:.0f} MeV"),
                Title("n_michel", "{:d} Michel voxels"),
            ),
        )

    # -- the files -----------------------------------------------------------
    def label_file(self, path: str) -> str | None:
        if self.labels == "none":
            return None
        if self.labels == "auto":
            return label_path_for(os.fspath(path))
        if not os.path.exists(self.labels):
            raise InputError(
                self.labels, "no such label file (-O labels=PATH)", "check the path, or use labels=auto"
            )
        return self.labels

    def views(self, path: str) -> dict[str, ViewSpec]:
        channels = [("energy", "float32")]
        if self.label_file(path) is not None:
            channels.append(("label", "int32"))
        channels.append(("row", "int32"))
        return {"voxels": ViewSpec("voxels", ("x", "y", "z"), (self.grid,) * 3, channels=tuple(channels))}

    def metadata_fields(self, path: str) -> dict[str, FieldSpec]:
        return dict(FIELDS)

    def event_weights(self, path: str) -> np.ndarray:
        with open_h5(path) as f:
            n = _vlen(f, path, DATA, "xyze").shape[0]
        labels = self.label_file(path)
        if labels is not None:
            with open_h5(labels) as f:
                m = _vlen(f, labels, LABELS, "label").shape[0]
            if m != n:
                raise InputError(
                    labels,
                    f"the label file has {m} images but '{path}' has {n}",
                    "pair each xyze file with its own label file (-O labels=PATH), or labels=none",
                )
        if n == 0:
            raise InputError(path, "the file holds no images", "is it an empty or partial copy?")
        return np.ones(n)  # images cost about the same; sizing them would read the whole file

    def read(self, chunk: Chunk) -> Iterator[Event]:
        """The chunk's images, sorted into C order all at once (:func:`_c_order`).

        The images' voxels are concatenated, sorted by (image, x, y, z) with one sort of
        packed 64-bit keys and cut back into images at their offsets; channels and metadata
        come from whole-chunk arrays (``np.take``, ``np.add.reduceat``), so the Python work
        per image is a few slices.
        """
        path, start, stop = chunk.path, chunk.start, chunk.stop
        labels_path = self.label_file(path)
        data = _read_rows(path, DATA, "xyze", start, stop)
        g, n_img = self.grid, stop - start
        sizes = np.fromiter((a.size for a in data), np.int64, n_img)
        bad = np.flatnonzero(sizes % 4)
        if bad.size:
            k = int(bad[0])
            raise InputError(
                path, f"image {start + k} has {sizes[k]} values, not a multiple of 4 (x, y, z, E)"
            )
        lengths = sizes // 4
        offsets = np.zeros(n_img + 1, np.int64)
        np.cumsum(lengths, out=offsets[1:])
        flat = np.concatenate(list(data)) if n_img else np.zeros(0, np.float32)
        xyze = flat.reshape(-1, 4)
        ijk = xyze[:, :3].astype(np.int64)
        if ijk.size and (ijk.view(np.uint64) >= g).any():  # one pass: negatives wrap to huge
            outside = np.flatnonzero(((ijk < 0) | (ijk >= g)).any(axis=1))[0]
            k = int(np.searchsorted(offsets, outside, side="right") - 1)
            raise InputError(path, f"image {start + k} has voxel indices outside 0..{g - 1}", "set -O grid=N")
        if ijk.size and not np.array_equal(ijk, xyze[:, :3]):  # truncation hid fractions, -0.5 among them
            outside = np.flatnonzero((ijk != xyze[:, :3]).any(axis=1))[0]
            k = int(np.searchsorted(offsets, outside, side="right") - 1)
            raise InputError(
                path, f"image {start + k} has voxel indices that are not whole numbers "
                f"({xyze[outside, :3].tolist()})", "x, y, z are indices in the grid, not positions",
            )  # fmt: skip
        order, row = _c_order(ijk, lengths, offsets, g)
        voxels = np.take(xyze, order, axis=0)  # np.take: ~10x faster than xyze[order] on rows
        coords = voxels[:, :3].T.astype(np.uint16)
        energy = np.ascontiguousarray(voxels[:, 3])
        e32 = xyze[:, 3]
        total = _per_image(e32, offsets, np.float64)
        lab = sorted_lab = None
        n_michel = michel_e = None
        if labels_path is not None:
            labels = _read_rows(labels_path, LABELS, "label", start, stop)
            got = np.fromiter((a.size for a in labels), np.int64, n_img)
            if not np.array_equal(got, lengths):
                k = int(np.flatnonzero(got != lengths)[0])
                raise InputError(
                    labels_path,
                    f"image {start + k} has {got[k]} labels for {lengths[k]} voxels in '{path}'",
                    "the label file does not belong to this xyze file",
                )
            lab = (
                np.concatenate(list(labels)).astype(np.int32, copy=False) if n_img else np.zeros(0, np.int32)
            )
            sorted_lab = np.take(lab, order)
            michel = lab == MICHEL
            n_michel = _per_image(michel.astype(np.int64), offsets)
            michel_e = _per_image(np.where(michel, e32, np.float32(0)), offsets, np.float64)
        shape = (g,) * 3
        for k in range(n_img):
            a, b = int(offsets[k]), int(offsets[k + 1])
            channels: dict[str, np.ndarray] = {"energy": energy[a:b]}
            meta: dict[str, Any] = {
                "n_voxels": np.int64(b - a),
                "total_energy": np.float32(total[k]),
                "n_michel": np.int32(-1),
                "michel_energy": np.float32(np.nan),
                "has_michel": np.int32(-1),
            }
            if sorted_lab is not None and n_michel is not None and michel_e is not None:
                channels["label"] = sorted_lab[a:b]
                meta["n_michel"] = np.int32(n_michel[k])
                meta["michel_energy"] = np.float32(michel_e[k])
                meta["has_michel"] = np.int32(n_michel[k] > 0)
            channels["row"] = row[a:b]
            index = (coords[0, a:b], coords[1, a:b], coords[2, a:b])
            yield Event(
                EventId(0, 0, start + k), start + k, meta, {"voxels": Coo.of(shape, index, **channels)}
            )


ROW_BITS, KEY_BITS = 20, 30  # voxels per image < 2^20; (x * g + y) * g + z < 2^30 (g <= 1024)


def _c_order(
    ijk: np.ndarray, lengths: np.ndarray, offsets: np.ndarray, g: int
) -> tuple[np.ndarray, np.ndarray]:
    """Indices that put every image's voxels in C (x, y, z) order (images kept in turn), and
    each one's row in its own image (int32); ``ijk`` (n, 3) int64 voxel indices.

    One ``np.sort`` (not ``argsort``: about 1.7x faster) of packed int64 keys
    ``image << 50 | xyz << 20 | row``, built in three passes (a matrix product, then two
    additions in place: each pass over the chunk's voxels costs about as much as reading
    them), the row decoded from the low bits; chunks or images too big to pack (over 8,192
    images, 2^20 voxels or a grid over 1024) take an argsort of ``image * g^3 + xyz``.
    """
    n_img, n = len(lengths), len(ijk)
    start = np.repeat(offsets[:-1], lengths)  # each voxel's image's first voxel
    if n_img <= 1 << (63 - ROW_BITS - KEY_BITS) and g <= 1024 and (lengths.max(initial=0) < 1 << ROW_BITS):
        key = ijk @ np.array([g * g << ROW_BITS, g << ROW_BITS, 1 << ROW_BITS], np.int64)
        key += np.repeat((np.arange(n_img, dtype=np.int64) << (ROW_BITS + KEY_BITS)) - offsets[:-1], lengths)
        key += np.arange(n, dtype=np.int64)  # with the image's first voxel taken off: the row
        key.sort()
        row = key & ((1 << ROW_BITS) - 1)
        return start + row, row.astype(np.int32)  # the sort keeps the images in turn
    image = np.repeat(np.arange(n_img, dtype=np.int64), lengths)
    order = np.argsort(image * g**3 + (ijk[:, 0] * g + ijk[:, 1]) * g + ijk[:, 2], kind="stable")
    return order, (order - start).astype(np.int32)


def _per_image(values: np.ndarray, offsets: np.ndarray, dtype=None) -> np.ndarray:
    """Sums of ``values`` over each image's slice ``offsets[k]:offsets[k + 1]`` (empty ones 0),
    accumulated in ``dtype`` (default: the values')."""
    sums = np.zeros(len(offsets) - 1, dtype or values.dtype)
    full = offsets[1:] > offsets[:-1]
    if values.size:
        sums[full] = np.add.reduceat(values, offsets[:-1][full], dtype=sums.dtype)
    return sums


def _read_rows(path: str, name: str, kind: str, start: int, stop: int) -> np.ndarray:
    with open_h5(path) as f:
        d = _vlen(f, path, name, kind)
        if stop > d.shape[0]:
            raise InputError(path, f"'{name}' has {d.shape[0]} images; images {start}-{stop} were asked for")
        try:
            return d[start:stop]
        except (OSError, RuntimeError) as err:
            raise InputError(
                path, f"cannot read images {start}-{stop} ({err})", "the file may be truncated or corrupt"
            ) from None


__all__ = ["CLASSES", "INSSReader", "label_path_for"]
