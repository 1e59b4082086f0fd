"""Find-Michels: reading the vlen files into Events (and the dataset) vs a plain h5py loop.

    python tests/benchmarks/bench_inss.py XYZE.h5 [--images N] [--chunk 200]

Rows of the table, on the same images, one process, best of --repeat (interleaved):
  h5py loop     for i in range(n): d[i].reshape(-1, 4): the plain loop, reading only
  h5py slices   d[a:b] per chunk of images, reshaped: the fastest plain read
  loop + labels the plain loop over both files (the floor of the reader with labels)
  reader        INSSReader.read over the same chunks (sort, coords, channels, labels)
  preprocess    nudask.preprocess on one local worker (read + Arrow + Parquet + manifest)
The ratios are images/s against each of the two plain reads (target: 0.8x of the loop).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import h5py
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))

from nudask.events import Chunk
from nudask.readers import get_reader
from nudask.readers.inss import label_path_for


def h5py_loop(path: str, n: int, chunk: int) -> int:
    voxels = 0
    with h5py.File(path, "r") as f:
        d = f["data"]
        for i in range(n):
            voxels += d[i].reshape(-1, 4).shape[0]
    return voxels


def h5py_loop_labels(path: str, n: int, chunk: int) -> int:
    voxels = 0
    with h5py.File(path, "r") as f, h5py.File(label_path_for(path), "r") as g:
        d, lab = f["data"], g["labels"]
        for i in range(n):
            xyze, labels = d[i].reshape(-1, 4), lab[i]
            voxels += min(xyze.shape[0], labels.shape[0])
    return voxels


def h5py_slices(path: str, n: int, chunk: int) -> int:
    voxels = 0
    with h5py.File(path, "r") as f:
        d = f["data"]
        for a in range(0, n, chunk):
            for arr in d[a : min(a + chunk, n)]:
                voxels += arr.reshape(-1, 4).shape[0]
    return voxels


def reader_loop(path: str, n: int, chunk: int, labels: str) -> int:
    r = get_reader("inss", labels=labels)
    return sum(
        ev.images["voxels"].nnz
        for a in range(0, n, chunk)
        for ev in r.read(Chunk(path, "inss", a, min(a + chunk, n)))
    )


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("xyze")
    p.add_argument("--images", type=int, default=1000)
    p.add_argument("--chunk", type=int, default=200)
    p.add_argument("--repeat", type=int, default=3)
    a = p.parse_args()
    with h5py.File(a.xyze) as f:
        n = min(a.images, f["data"].shape[0])
    voxels = h5py_loop(a.xyze, n, a.chunk)
    timed = {
        "h5py loop d[i] (xyze only)": lambda: h5py_loop(a.xyze, n, a.chunk),
        "h5py slices d[a:b] (xyze only)": lambda: h5py_slices(a.xyze, n, a.chunk),
        "h5py loop d[i], xyze + labels": lambda: h5py_loop_labels(a.xyze, n, a.chunk),
        "reader, labels=none": lambda: reader_loop(a.xyze, n, a.chunk, "none"),
        "reader, labels=auto": lambda: reader_loop(a.xyze, n, a.chunk, "auto"),
    }
    best = dict.fromkeys(timed, np.inf)
    for _ in range(a.repeat):  # interleaved: the machine's load hits every row alike
        for name, run in timed.items():
            t = time.perf_counter()
            assert run() == voxels
            best[name] = min(best[name], time.perf_counter() - t)
    rows = list(best.items())
    loop, slices = rows[0][1], rows[1][1]
    from distributed import Client, LocalCluster

    import nudask

    with (
        tempfile.TemporaryDirectory() as tmp,
        LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0") as c,
        Client(c) as cl,
    ):
        src = a.xyze
        if n < h5py.File(a.xyze)["data"].shape[0]:  # the first n images only, same layout
            from nudask.readers.inss.simulate import write_vlen

            with h5py.File(a.xyze) as f:
                src = os.path.join(tmp, "bench_xyze_n.h5")
                write_vlen(src, "data", list(f["data"][:n]), np.float32)
        t = time.perf_counter()
        nudask.preprocess(
            src,
            os.path.join(tmp, "ds"),
            events_per_chunk=a.chunk,
            client=cl,
            progress=False,
            reader_options={"labels": "none"},
        )
        rows.append(("preprocess, 1 worker (labels=none)", time.perf_counter() - t))
    with h5py.File(a.xyze) as f:
        per_image_kb = os.path.getsize(a.xyze) / f["data"].shape[0] / 1e3
    print(f"{n} images, {voxels / n:.0f} voxels per image, {per_image_kb:.1f} kB per image on disk")
    print(f"| {'stage':36s} | {'s':>6s} | {'images/s':>9s} | x loop | x slices |")
    print(f"|{'-' * 38}|{'-' * 8}|{'-' * 11}|--------|----------|")
    for name, s in rows:
        print(f"| {name:36s} | {s:6.3f} | {n / s:9.1f} | {loop / s:6.2f} | {slices / s:8.2f} |")


if __name__ == "__main__":
    main()
