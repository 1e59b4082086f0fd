"""Bytes on disk per event and per column: COO layouts and value storages against the notebook's PNGs.

Full-geometry MicroBooNE events are simulated, read by nudask's reader and, with
``--overlay K``, summed K at a time (clipped at the saturation) into denser events:
the simulator's events are sparser than the real samples (about 77,000 rendered
pixels per event), and overlaying reaches that density without another simulator.
Each storage is written as one Parquet file (zstd 9, row groups of 16 events) with
nudask's writer and encodings; the bytes are the column chunks' compressed sizes
from the file metadata. The PNG is the notebook's last step on the same images
(``bench_preprocess.notebook``): 8-bit grey, ``image * 255 / saturation``
truncated, transposed, one PNG per plane.

Run from the repository root (about a minute on 2 cores, 2 GB of memory)::

    .venv/bin/python tests/benchmarks/bench_storage.py --events 12 --overlay 3
    .venv/bin/python tests/benchmarks/bench_storage.py --events 2 --overlay 1   # a quick check
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import os
import tempfile
import time

import numpy as np
import pyarrow.parquet as pq
from PIL import Image

from nudask.dataset.write import events_to_table, write_parquet
from nudask.events import Event
from nudask.readers import get_reader
from nudask.schema import build_schema, coord_columns, value_columns
from nudask.simulate import simulate_microboone
from nudask.sparse import from_runs, to_coo, to_dense

STORAGES = {  # name: (coo_layout, build_schema options)
    "pairs, float32 (schema v2's layout)": ("pairs", {}),
    "runs, float32 (lossless)": ("runs", {}),
    "runs, --values float16": ("runs", {"values": "float16"}),
    "runs, --eight-bit": ("runs", {"eight_bit": True}),
}


def overlaid(events: list[Event], views: dict, k: int) -> list[Event]:
    """Events of ``k`` events each: their images summed, clipped at each view's saturation."""
    out = []
    for first in range(0, len(events) - k + 1, k):
        group = events[first : first + k]
        images = {}
        for name, view in views.items():
            dense = np.zeros(group[0].images[name].shape, np.float32)
            for ev in group:
                dense += to_dense(ev.images[name])
            np.minimum(dense, view.vmax, out=dense)
            images[name] = to_coo(dense, view.shape)
        out.append(Event(group[0].id, group[0].index, group[0].metadata, images))
    return out


def png_bytes(events: list[Event], views: dict) -> float:
    """Mean bytes per event of the notebook's 8-bit PNGs (one per plane)."""
    total = 0
    for ev in events:
        for name, coo in ev.images.items():
            grey = (to_dense(coo) * (255 / views[name].vmax)).astype(np.uint8)
            buf = io.BytesIO()
            Image.fromarray(grey.T).save(buf, format="png")  # as displayed: time up, wire across
            total += buf.tell()
    return total / len(events)


def column_bytes(path: str) -> dict[str, int]:
    md = pq.ParquetFile(path).metadata
    out: dict[str, int] = {}
    for g in range(md.num_row_groups):
        for c in range(md.num_columns):
            col = md.row_group(g).column(c)
            name = col.path_in_schema.split(".")[0]
            out[name] = out.get(name, 0) + col.total_compressed_size
    return out


def read_seconds(path: str, specs: dict, repeats: int = 5) -> float:
    """Best time to read every event's coordinates and values into flat numpy arrays, with
    runs turned back into every entry's coordinates (what the training stream's windows do)."""
    columns = [c for v in specs.values() for c in (*coord_columns(v), value_columns(v)[0])]
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        table = pq.read_table(path, columns=columns, use_threads=False)
        for v in specs.values():
            flat = [table.column(c).combine_chunks().flatten().to_numpy() for c in coord_columns(v)]
            if v.coo_layout == "runs":
                flat = list(from_runs(tuple(flat[:-1]), flat[-1]))
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=12, help="events to simulate")
    ap.add_argument("--overlay", type=int, default=3, help="simulated events summed into one")
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        path = str(
            simulate_microboone(os.path.join(tmp, "bnb_WithWire_00.h5"), n_events=args.events, seed=args.seed)
        )
        reader = get_reader("microboone")
        views, fields = reader.views(path), reader.metadata_fields(path)
        events = [e for chunk in reader.chunks(path, args.events) for e in reader.read(chunk)]
        events = overlaid(events, views, args.overlay)
        n = len(events)
        pixels = np.mean([sum(c.nnz for c in e.images.values()) for e in events])
        rendered = sum(np.prod(v.shape) for v in views.values())
        dense = rendered * 4
        png = png_bytes(events, views)
        print(
            f"{n} events ({args.events} simulated, {args.overlay} overlaid per event): "
            f"{pixels:,.0f} non-zero rendered pixels/event ({100 * pixels / rendered:.2f} % of "
            f"{rendered:,}); dense float32 {dense / 1e6:.2f} MB/event; notebook PNG {png / 1e3:.1f} kB/event"
        )
        totals = {}
        for label, (layout, options) in STORAGES.items():
            specs = {k: dataclasses.replace(v, coo_layout=layout) for k, v in views.items()}
            schema = build_schema(specs, fields, **options)
            file = os.path.join(tmp, "part.parquet")
            info = write_parquet(events_to_table(events, path, schema), file)
            sizes = column_bytes(file)
            totals[label] = info["bytes"] / n
            ms = 1e3 * read_seconds(file, specs) / n
            print(f"\n{label}: {info['bytes'] / n / 1e3:.1f} kB/event; read back in {ms:.1f} ms/event")
            for view in views:
                mine = {c: b for c, b in sizes.items() if c.startswith(f"{view}_") and c != f"{view}_shape"}
                parts = ", ".join(f"{c} {b / n / 1e3:.1f}" for c, b in sorted(mine.items()))
                per_view = sum(e.images[view].nnz for e in events)
                print(f"  {view}: {parts} (kB/event; {8 * sum(mine.values()) / per_view:.1f} bits/pixel)")
            images = sum(b for c, b in sizes.items() if any(c.startswith(f"{v}_") for v in views))
            print(f"  metadata columns and footer: {(info['bytes'] - images) / n / 1e3:.1f}")
        lossless = totals["runs, float32 (lossless)"]
        print("\ntargets:")
        for what, value, target in (
            ("lossless Parquet / PNG", lossless / png, "<= 2.1"),
            ("dense float32 / lossless Parquet", dense / lossless, ">= 140"),
            ("--values float16 Parquet / PNG", totals["runs, --values float16"] / png, "<= 1.2"),
            ("--eight-bit Parquet / PNG", totals["runs, --eight-bit"] / png, "<= 0.75"),
            (
                "(schema v2 layout) lossless Parquet / PNG",
                totals["pairs, float32 (schema v2's layout)"] / png,
                "",
            ),
        ):
            print(f"  {what}: {value:.2f} {target}")


if __name__ == "__main__":
    main()
