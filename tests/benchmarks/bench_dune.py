"""DUNE cluster NPZ batches: the dune_sn reader + Parquet write vs np.load + Parquet write of the same arrays.

    python tests/benchmarks/bench_dune.py [--files 6 --events 1000]

Both sides write the images as COO lists (non-zero pixels only) with zstd; the
reader side is the nudask chunk path (read, events, Arrow table, Parquet file),
the baseline a hand-written np.load -> np.nonzero -> pyarrow lists -> Parquet.
Target: reader at 0.8x or more of the baseline's rate.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))  # this checkout first


def baseline(files: list[str], out: str) -> int:
    n = 0
    for k, path in enumerate(files):
        with np.load(path, allow_pickle=False) as f:
            images, meta = f["images"], f["metadata"]
        flat = images.reshape(len(images), -1)
        img, pix = np.nonzero(flat)
        counts = np.bincount(img, minlength=len(images))
        offsets = pa.array(np.concatenate([[0], np.cumsum(counts)]).astype(np.int32))
        w = images.shape[2]
        cols = {
            "metadata": pa.FixedSizeListArray.from_arrays(pa.array(meta.reshape(-1)), meta.shape[1]),
            "time": pa.ListArray.from_arrays(offsets, pa.array((pix // w).astype(np.uint8))),
            "channel": pa.ListArray.from_arrays(offsets, pa.array((pix % w).astype(np.uint8))),
            "value": pa.ListArray.from_arrays(offsets, pa.array(flat[img, pix])),
        }
        pq.write_table(pa.table(cols), os.path.join(out, f"b{k}.parquet"), compression="zstd")
        n += len(images)
    return n


def nudask_side(files: list[str], out: str) -> int:
    from nudask.dataset.write import events_to_table, write_parquet
    from nudask.readers.dune_sn import DuneSNReader
    from nudask.schema import build_schema

    r = DuneSNReader()
    n = 0
    for k, path in enumerate(files):
        schema = build_schema(r.views(path), r.metadata_fields(path))
        events = [ev for c in r.chunks(path, 10**6) for ev in r.read(c)]
        write_parquet(events_to_table(events, path, schema), os.path.join(out, f"n{k}.parquet"))
        n += len(events)
    return n


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--files", type=int, default=6)
    p.add_argument("--events", type=int, default=1000)
    a = p.parse_args()
    from nudask.simulate.dune_sn import simulate_dune_sn

    with tempfile.TemporaryDirectory() as tmp:
        files = simulate_dune_sn(os.path.join(tmp, "raw"), files=a.files, events=a.events, seed=1)
        os.makedirs(os.path.join(tmp, "out"))
        nnz = np.mean([(np.load(f)["images"] != 0).mean() for f in files])
        rows = []
        for name, fn in (("np.load + Parquet", baseline), ("dune_sn reader + Parquet", nudask_side)):
            best = float("inf")
            for _ in range(3):
                t = time.perf_counter()
                n = fn(files, os.path.join(tmp, "out"))
                best = min(best, time.perf_counter() - t)
            rows.append((name, n / best))
        size = sum(os.path.getsize(f) for f in files) / 1e6
        print(
            f"{a.files} files x {a.events} clusters (128 x 16), {size:.0f} MB, "
            f"{100 * nnz:.1f} % pixels non-zero"
        )
        print(f"{'path':28s} {'clusters/s':>12s} {'ratio':>7s}")
        for name, rate in rows:
            print(f"{name:28s} {rate:12.0f} {rate / rows[0][1]:7.2f}")


if __name__ == "__main__":
    main()
