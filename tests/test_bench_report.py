"""make bench's table: the target rows computed from known figures, with their verdicts."""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "benchmarks"))

from bench_report import Measured, render_table, table_rows
from bench_sizing import size_run


def measured(**changes) -> Measured:
    """10 events: floor (b) 10 events/s, nudask 5/s; 200 kB lossless, 70 kB 8-bit, PNG 100 kB."""
    m = Measured(
        density="real",
        n=10,
        file_bytes_per_event=1.9e6,
        seconds={
            "read only": 0.01,
            "libdeflate": 1.0,
            "zlib-ng": 4.0,
            "h5py": 10.0,
            "nudask": 2.0,
            "notebook": 25.0,
            "profile": 2.5,
        },
        extra={
            "h5py": {"nnz": 63, "samples": 10_000},
            "notebook": {"bytes": 1_000_000},
            "libdeflate": {"bytes": 2e9},
            "zlib-ng": {"bytes": 2e9},
        },
        faults={"nudask": 12_000},
        stages={},
        part_bytes={"float32": 2_000_000, "eight_bit": 700_000},
        columns={},
        pixels=650_000,
        # 16 events: nudask's cluster 4 events/s on 1 worker and 6.4 on 2; plain LocalCluster 2 and 3.2
        scale={
            "seconds": {("nudask", 1): 4.0, ("nudask", 2): 2.5, ("dask", 1): 8.0, ("dask", 2): 5.0},
            "control": {("nudask", 1): 2.0, ("nudask", 2): 1.0, ("dask", 1): 2.0, ("dask", 2): 1.6},
        },
        scaling_events=16,
    )
    for k, v in changes.items():
        setattr(m, k, v)
    return m


def cells(rows, measure: str) -> list[str]:
    (row,) = [r for r in rows if r.measure == measure]
    return row.cells


def test_the_target_rows_and_their_verdicts():
    other = {"seconds": 4.0, "bytes": {"float32": 2_200_000, "eight_bit": 700_000, "float16": 1_100_000}}
    rows = table_rows([("real", measured(), False), ("real, other checkout", measured(other=other), True)])
    assert cells(rows, "nudask / inflate-only floor (b)") == ["0.50 FAIL", "0.25 FAIL"]
    assert cells(rows, "plain LocalCluster / nudask's cluster, events/s per worker (1 worker)") == [
        "0.50 FAIL",
        "",
    ]
    ratio = "2 workers / 1 worker, nudask's cluster (pure-CPU control's own ratio)"
    assert cells(rows, ratio) == ["1.60 (control 2.00 x) FAIL", ""]  # the cores gave 2x, nudask 1.6x
    assert cells(rows, "lossless Parquet / notebook 8-bit PNG") == ["2.00 pass", "2.20 FAIL"]
    assert cells(rows, "dense float32 / lossless Parquet") == ["176 pass", "160 pass"]
    # this checkout cannot write float16, the other one can
    assert cells(rows, "`--values float16` Parquet / PNG") == ["n/a (not built)", "1.10 pass"]
    assert cells(rows, "`--eight-bit` Parquet / PNG") == ["0.70 pass", "0.70 pass"]
    assert cells(rows, "  per rendered pixel, float32 (lossless)") == ["3.08", "3.38"]
    table = render_table(["real", "real, other checkout"], rows, markdown=True)
    assert "| nudask / inflate-only floor (b) | x | >= 0.6 | 0.50 FAIL | 0.25 FAIL |" in table
    assert "time to first part" not in table  # not measured in this run: no empty row


def test_the_first_part_rows_come_from_the_run_stages():
    stages = {
        "`nudask preprocess`: first part, from the command's start": 6.25,
        "preprocess(): time to first part, from the call": 4.5,
        "preprocess(): local cluster start (scheduler, workers spawned)": 2.0,
    }
    rows = table_rows([("real", measured(first_part={"this": stages}), False)])
    assert cells(rows, "time to first part, `nudask preprocess`") == ["6.25"]
    assert cells(rows, "time to first part, `preprocess()` from the call") == ["4.50"]
    assert cells(rows, "first part: preprocess(): local cluster start (scheduler, workers spawned)") == [
        "2.00"
    ]


def test_sizing_follows_the_per_core_rate():
    slow = size_run(4.0, 1)  # 1217 tasks of 20 events at 5 s each, 39 waves of 32
    assert (slow.workers, slow.seconds, slow.limit) == (32, 39 * 5.0, "cores")
    assert size_run(8.0, 1).seconds == pytest.approx(slow.seconds / 2)
    narrow = size_run(4.0, 10, filesystem_gbs=2.0)  # 44 GB over 2 GB/s: reading sets it
    assert (narrow.seconds, narrow.limit) == (22.0, "reading")
