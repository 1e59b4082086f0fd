"""DUNE cluster NPZ batches: the dune_sn reader + Parquet write vs np.load + Parquet write of the same arrays.

    python tests/benchmarks/bench_dune.py [--files 6 --events 1000]

Both sides write the images as COO lists (non-zero pixels only) with zstd; the
reader side is the nudask chunk task (``run_chunk``: ``read_batch``, columnar
Arrow table, Parquet file with nudask's storage settings: zstd 9, page checksums,
sha256, row groups of the reader's 1024), the per-event path beside it (one Event
per cluster, ``events_to_table``), the baseline a hand-written np.load ->
flatnonzero -> pyarrow lists -> one Parquet file (pyarrow's zstd level; or
``--same-level``, nudask's).
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


LEVEL: int | None = None  # the baseline's zstd level: pyarrow's default, or --same-level: nudask's


def baseline(files: list[str], out: str) -> int:
    n = 0
    for k, path in enumerate(files):
        with np.load(path, allow_pickle=False) as f:
            images, meta = f["images"], f["metadata"]
        flat = images.reshape(-1)
        nz = np.flatnonzero(flat != 0)  # the fastest numpy way to the non-zero pixels
        per = images.shape[1] * images.shape[2]
        img, pix = nz // per, nz % per
        counts = np.bincount(img, minlength=len(images))
        offsets = pa.array(np.concatenate([[0], np.cumsum(counts)]).astype(np.int32))
        w = images.shape[2]
        cols = {
            "metadata": pa.FixedSizeListArray.from_arrays(pa.array(meta.reshape(-1)), meta.shape[1]),
            "time": pa.ListArray.from_arrays(offsets, pa.array((pix // w).astype(np.uint8))),
            "channel": pa.ListArray.from_arrays(offsets, pa.array((pix % w).astype(np.uint8))),
            "value": pa.ListArray.from_arrays(offsets, pa.array(flat[nz])),
        }
        pq.write_table(
            pa.table(cols), os.path.join(out, f"b{k}.parquet"), compression="zstd", compression_level=LEVEL
        )
        n += len(images)
    return n


def _nudask(files: list[str], out: str, columnar: bool) -> int:
    from nudask.dataset.write import events_to_table, write_parquet
    from nudask.pipeline import _settings, group_chunks, run_chunk
    from nudask.readers.dune_sn import DuneSNReader
    from nudask.schema import build_schema

    r = DuneSNReader()
    settings, storage = _settings(None, None, None, None, None, r.storage_hints)
    schema = build_schema(r.views(files[0]), r.metadata_fields(files[0]))
    n = 0
    for k, path in enumerate(files):
        for j, task in enumerate(group_chunks(r.chunks(path, settings["events_per_chunk"]), 10**9)):
            if columnar:  # the pipeline's task: read_batch -> batch_to_table -> Parquet
                n += run_chunk(task, reader=r, out=out, schema=schema, storage=storage).part.rows
            else:  # the per-event path: one Event per cluster -> events_to_table
                events = [ev for c in task for ev in r.read(c)]
                table = events_to_table(events, path, schema)
                write_parquet(table, os.path.join(out, f"e{k}-{j}.parquet"), **storage)
                n += len(events)
    return n


def nudask_side(files: list[str], out: str) -> int:
    return _nudask(files, out, columnar=True)


def per_event_side(files: list[str], out: str) -> int:
    return _nudask(files, out, columnar=False)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--files", type=int, default=6)
    p.add_argument("--events", type=int, default=1000)
    p.add_argument("--same-level", action="store_true", help="baseline at nudask's zstd level (9)")
    a = p.parse_args()
    global LEVEL
    LEVEL = 9 if a.same_level else None
    from nudask.simulate.dune_sn import simulate_dune_sn

    with tempfile.TemporaryDirectory() as tmp:
        files = simulate_dune_sn(os.path.join(tmp, "raw"), files=a.files, events=a.events, seed=1)
        os.makedirs(os.path.join(tmp, "out"))
        nnz = np.mean([(np.load(f)["images"] != 0).mean() for f in files])
        rows = []
        sides = (
            ("np.load + Parquet", baseline),
            ("dune_sn reader + Parquet", nudask_side),
            ("  per-event path", per_event_side),
        )
        for name, fn in sides:
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
