"""Parquet write time and size of nudask's MicroBooNE parts at several zstd levels.

Each storage (lossless float32, ``--eight-bit``, ``--values float16``) is preprocessed once
from a simulated file, then its first part's table is rewritten by nudask's own Parquet
options at each level; the median of ``--repeats`` writes is reported per event, with the
size. BENCHMARKS.md, "Parquet write: zstd level"::

    .venv/bin/python tests/benchmarks/bench_parquet_level.py /tmp/nb/bnb_WithWire_bench_real_16.h5
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import pyarrow.parquet as pq

STORAGES = {"float32": {}, "eight_bit": {"eight_bit": True}, "float16": {"values": "float16"}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("input", help="a MicroBooNE WithWire file (e.g. one make bench simulated)")
    ap.add_argument("--levels", type=int, nargs="+", default=[9, 6, 3, 1])
    ap.add_argument("--events", type=int, default=8, help="events of the part rewritten (8)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    import nudask
    from nudask.dataset.write import parquet_options

    out = tempfile.mkdtemp(prefix="nudask-level-")
    print("| storage | zstd level | write, ms/event | kB/event |\n|---|---:|---:|---:|")
    for name, options in STORAGES.items():
        ds = nudask.preprocess(
            args.input, os.path.join(out, f"{name}.parquet"), events_per_chunk=args.events, progress=False,
            **options,
        )  # fmt: skip
        table = pq.read_table(ds.files[0])
        for level in args.levels:
            path, seconds = os.path.join(out, f"{name}_{level}.parquet"), []
            for _ in range(args.repeats):
                t = time.perf_counter()
                pq.write_table(
                    table, path, row_group_size=16, write_page_checksum=True,
                    **parquet_options(table.schema, "zstd", level),
                )  # fmt: skip
                seconds.append(time.perf_counter() - t)
            per_event = statistics.median(seconds) / table.num_rows
            size = os.path.getsize(path) / table.num_rows
            print(f"| {name} | {level} | {per_event * 1e3:.1f} | {size / 1e3:.1f} |", flush=True)


if __name__ == "__main__":
    main()
