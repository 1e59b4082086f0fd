"""DUNE cluster NPZ batches: the dune_sn reader + Parquet write vs np.load + Parquet write of the same arrays.

    python tests/benchmarks/bench_dune.py [--files 6 --events 1000]
    python tests/benchmarks/bench_dune.py --tune [--trials 4 --epochs 3 --clusters 1500]

Both sides write the images as COO lists (non-zero pixels only) with zstd; the
reader side is the nudask chunk task (``run_chunk``: ``read_batch``, columnar
Arrow table, Parquet file with nudask's storage settings: zstd 9, page checksums,
sha256, row groups of the reader's 1024), the per-event path beside it (one Event
per cluster, ``events_to_table``), the baseline a hand-written np.load ->
flatnonzero -> pyarrow lists -> one Parquet file (pyarrow's zstd level; or
``--same-level``, nudask's).
Target: reader at 0.8x or more of the baseline's rate.

``--tune``: the same study (``jobs/tune_dune_mt.yaml``'s training, N trials that
differ only in the learning rate, all drawn at random from the sampler's seed so
both runs train the same N configs, no pruning, a fixed number of epochs) on a
LocalCluster of 1 and of 2 single-threaded workers, wall time of ``tune()``
side by side. Target: 2 workers in 0.6x or less of 1 worker's time. Then the
default config (learning rate 1e-4) trained once beside the study's best trial
(space ``train.learning_rate: log-uniform 1e-4..1e-2``): its best val_loss.
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


TUNE_JOB = """
task: {target: main_track}
split: {test: 0.2, validation: 0.2}
input: {crop: centre, crop_size: [128, 16], downsample: [2, 1], scale: log, scale_factor: 0.15,
        batch_size: 32, workers: 0}
model: {filters: [8, 16], dense: 32, dropout: 0.2}
train: {epochs: EPOCHS, learning_rate: 0.0001, verbose: 0}
report: {event_displays: 0, samples: 0}
tune:
  trials: TRIALS
  metric: val_loss
  pruner: none
  startup_trials: TRIALS
  seed: 0
  space:
    train.learning_rate: log-uniform 1e-4..1e-2
"""


def tune_side(a) -> None:
    """N equal trials on 1 and on 2 workers; then the default config beside the best trial."""
    import json

    from distributed import Client, LocalCluster

    import nudask
    from nudask.simulate.dune_sn import simulate_dune_sn
    from nudask.train.config import make_config
    from nudask.train.fit import train
    from nudask.train.tune import load_job, tune

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with tempfile.TemporaryDirectory() as tmp:
        files = simulate_dune_sn(os.path.join(tmp, "raw"), files=3, events=a.clusters // 3, seed=1)
        with LocalCluster(n_workers=1, threads_per_worker=1, processes=False) as c, Client(c) as cl:
            ds = nudask.preprocess(files, os.path.join(tmp, "ds"), client=cl, progress=False)
        job = os.path.join(tmp, "tune.yaml")
        with open(job, "w") as f:
            f.write(TUNE_JOB.replace("EPOCHS", str(a.epochs)).replace("TRIALS", str(a.trials)))
        rows, results = [], {}
        for n in (1, 2):
            with (
                LocalCluster(n_workers=n, threads_per_worker=1, dashboard_address="127.0.0.1:0") as c,
                Client(c) as cl,
            ):
                cl.run(lambda: __import__("keras") and None)  # every worker imports Keras before the clock
                t = time.perf_counter()
                res = tune(job, os.path.join(tmp, f"study{n}"), data=ds.path, client=cl, verbose=False)
                rows.append((n, time.perf_counter() - t))
                results[n] = res
        lrs = [
            sorted(round(t["params"]["train.learning_rate"], 8) for t in results[n]["trials"]) for n in (1, 2)
        ]
        assert lrs[0] == lrs[1], f"the two studies trained different configs: {lrs}"
        print(f"{a.trials} trials x {a.epochs} epochs, {len(ds.metadata)} clusters (128 x 16 -> 64 x 16), "
              f"main-track identifier, learning rate from log-uniform 1e-4..1e-2")  # fmt: skip
        print(
            f"{'workers':>8s} {'wall s':>8s} {'s/trial':>8s} {'in trial':>9s} {'overlap':>8s} {'ratio':>7s}"
        )
        for n, s in rows:
            inside = [t["seconds"] or 0.0 for t in results[n]["trials"]]
            print(
                f"{n:8d} {s:8.1f} {s / a.trials:8.1f} {np.mean(inside):9.1f} {sum(inside) / s:8.2f} "
                f"{s / rows[0][1]:7.2f}"
            )
        print("in trial: mean seconds inside a trial's training run; overlap: their sum over the wall time")
        values, _ = load_job(job)
        values["data"] = ds.path
        cfg = make_config(values, [("output.runs", os.path.join(tmp, "default"))])
        run = train(cfg, evaluate=False)
        default = min(h["val_loss"] for h in json.loads((run / "history.json").read_text()))
        best = results[2]["best"]
        print(f"default learning rate 1e-4: best val_loss {default:.4f}")
        lr, verdict = (
            best["params"]["train.learning_rate"],
            "better" if best["value"] < default else "NOT better",
        )
        print(
            f"search best (trial {best['number']}, learning rate {lr:.2e}): "
            f"val_loss {best['value']:.4f} ({verdict})"
        )


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--files", type=int, default=6)
    p.add_argument("--events", type=int, default=1000)
    p.add_argument("--same-level", action="store_true", help="baseline at nudask's zstd level (9)")
    p.add_argument("--tune", action="store_true", help="the search on 1 vs 2 workers instead")
    p.add_argument("--trials", type=int, default=4)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--clusters", type=int, default=1500)
    a = p.parse_args()
    if a.tune:
        return tune_side(a)
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
