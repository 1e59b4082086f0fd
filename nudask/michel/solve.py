"""Solving a file: Michel voxels of every image as Dask tasks over chunks, into a solution file.

One task per chunk of images (the reader's chunks): it reads the images, runs the predictor
(:class:`BaselinePredictor`, or a trained run's, :mod:`nudask.michel.model`), and writes the
rows of the predicted Michel voxels to ``{out}.parts/`` (an ``.npz`` per chunk, written
under a temporary name and renamed, so a part that exists is complete). Running the same
command again skips the parts already there (resume); at the end the parts are gathered,
in image order, into the solution file: one vlen int32 array per image (dataset name an
option, default ``solution``), and the parts folder is removed.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from ..errors import OutputError
from ..events import Chunk, Coo
from .baseline import Baseline


class Predictor(Protocol):
    def michel_rows(self, voxels: Coo) -> np.ndarray: ...


@dataclass(frozen=True)
class BaselinePredictor:
    baseline: Baseline = field(default_factory=Baseline)

    def michel_rows(self, voxels: Coo) -> np.ndarray:
        xyz = np.stack(voxels.index, axis=1)
        mask = self.baseline.predict(xyz, voxels.channels["energy"])
        return np.sort(voxels.channels["row"][mask]).astype(np.int32)


def part_name(chunk: Chunk) -> str:
    return f"images-{chunk.start:09d}-{chunk.stop:09d}.npz"


def solve_chunk(
    reader, chunk: Chunk, predictor: Predictor, parts: str, view: str = "voxels"
) -> dict[str, Any]:
    """Predict one chunk and write its part; returns counts and seconds."""
    t0 = time.perf_counter()
    rows, lengths = [], []
    for ev in reader.read(chunk):
        r = predictor.michel_rows(ev.images[view])
        rows.append(r)
        lengths.append(r.size)
    final = os.path.join(parts, part_name(chunk))
    tmp = final + ".tmp.npz"
    np.savez(
        tmp, rows=np.concatenate(rows or [np.zeros(0, np.int32)]).astype(np.int32), lengths=np.array(lengths)
    )
    os.replace(tmp, final)
    return {"images": len(lengths), "seconds": time.perf_counter() - t0}


def solve(
    xyze: str,
    out: str,
    predictor: Predictor,
    *,
    reader,
    images_per_chunk: int = 200,
    dataset: str = "solution",
    client=None,
    progress: bool = True,
) -> dict[str, Any]:
    """Write the solution file ``out`` for ``xyze``; returns images, seconds and rates."""
    import dask
    from dask.distributed import wait

    from ..cluster import client_or_local

    out = os.path.abspath(out)
    parts = out + ".parts"
    os.makedirs(parts, exist_ok=True)
    chunks = reader.chunks(xyze, images_per_chunk)
    todo = [c for c in chunks if not os.path.exists(os.path.join(parts, part_name(c)))]
    t0 = time.perf_counter()
    results = []
    if todo:
        with client_or_local(client, verbose=progress) as cl:
            tasks = [dask.delayed(solve_chunk)(reader, c, predictor, parts) for c in todo]
            futures = cl.compute(tasks)
            wait(futures)
            results = cl.gather(futures)
    wall = time.perf_counter() - t0
    write_solution(out, [os.path.join(parts, part_name(c)) for c in chunks], dataset)
    shutil.rmtree(parts, ignore_errors=True)
    n = sum(len(c) for c in chunks)
    busy = sum(r["seconds"] for r in results)
    return {
        "images": n,
        "solved": sum(r["images"] for r in results),
        "wall_s": wall,
        "images_per_s": (sum(r["images"] for r in results) / wall) if results else float("nan"),
        "images_per_core_s": (sum(r["images"] for r in results) / busy) if busy else float("nan"),
    }


def write_solution(out: str, parts: list[str], dataset: str) -> None:
    import h5py

    arrays = []
    for p in parts:
        with np.load(p, allow_pickle=False) as f:
            rows, lengths = f["rows"], f["lengths"]
        arrays += np.split(rows, np.cumsum(lengths)[:-1]) if lengths.size else []
    column = np.empty(len(arrays), dtype=object)
    column[:] = arrays
    tmp = out + ".tmp"
    try:
        with h5py.File(tmp, "w") as f:
            f.create_dataset(dataset, (len(arrays),), dtype=h5py.vlen_dtype(np.dtype(np.int32)), data=column)
        os.replace(tmp, out)
    except OSError as err:
        raise OutputError(
            f"cannot write the solution file '{out}' ({err}); check the folder and free space"
        ) from None
