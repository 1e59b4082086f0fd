"""Benchmark: the CNN input pipeline on CONNIE event images against what ResNet-18 consumes.

Simulated CONNIE events (``--files`` raw images of ``--events`` particles, ten per
amplifier by default, their cropped event FITS preprocessed with ``-O mode=events``:
one dense view per event, each at its own size) feed jobs/train_connie_cnn.yaml's
input (crop centre 64 x 64, log scaling, flips and quarter turns, batches of 32 when
written; the sizes printed are the job's).

pipeline   the stream alone: ``--workers`` threads making training batches in order (as
           Keras' PyDataset enqueuer does), events/s over ``--epochs`` epochs;
resnet18   the job's ResNet-18 (its ``model.width``) training on batches from the stream
           (``train_on_batch``, after two warm-up steps): events/s;
ratio      pipeline / resnet18, target >= 2x; both run side by side in one process.

Run from the repository root (about 2 minutes on 2 cores)::

    .venv/bin/python tests/benchmarks/bench_connie_cnn.py
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.getcwd())

import numpy as np

import nudask
from nudask.readers.connie.simulate import simulate

JOB = os.path.join(os.path.dirname(__file__), "..", "..", "jobs", "train_connie_cnn.yaml")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--files", type=int, default=12)
    p.add_argument("--events", type=int, default=40)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--steps", type=int, default=12, help="ResNet-18 training steps timed")
    args = p.parse_args()
    from distributed import Client, LocalCluster

    from nudask.train import load
    from nudask.train.data import load_data

    with tempfile.TemporaryDirectory() as tmp:
        simulate(tmp, files=args.files, events=args.events, seed=3, nsamp=1)
        files = sorted(glob.glob(os.path.join(tmp, "events", "*.fits")))
        with (
            LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cl,
            Client(cl) as client,
        ):
            opts = {"mode": "events"}
            ds = nudask.preprocess(
                files,
                os.path.join(tmp, "ds"),
                reader="connie",
                reader_options=opts,
                client=client,
                progress=False,
            )
        shapes = np.array([ds.image(i)["event"].shape for i in range(min(len(ds), 200))])
        cfg = load(JOB, [("data", ds.path), ("input.buffer_events", 256)])
        data = load_data(cfg)
        src = data.source("train")
        n_batches = len(src)
        t0 = time.perf_counter()
        made = 0
        for epoch in range(args.epochs):
            src.set_epoch(epoch)
            with ThreadPoolExecutor(args.workers) as pool:
                for x, _y in pool.map(src.batch, range(n_batches)):
                    made += x["event"].shape[0]
        pipe = made / (time.perf_counter() - t0)

        import keras

        from nudask.train.models import build_model, compile_model

        model = compile_model(build_model(cfg.model, data.task, data.preps), data.task, cfg.train)
        batches = [src.batch(i % n_batches) for i in range(args.steps + 2)]
        batches = [({k: v.copy() for k, v in x.items()}, y.copy()) for x, y in batches]
        for x, y in batches[:2]:
            model.train_on_batch(x, y)
        t0 = time.perf_counter()
        used = 0
        for x, y in batches[2:]:
            model.train_on_batch(x, y)
            used += y.shape[0]
        cnn = used / (time.perf_counter() - t0)
        median = np.median(shapes, 0).tolist()
        print(
            f"CONNIE events: {len(ds)} ({data.rows('train').size} training), image sizes "
            f"{shapes.min(0).tolist()} .. {shapes.max(0).tolist()} (median {median}); input "
            f"{' x '.join(map(str, cfg.input.crop_size))}, "
            f"batch {cfg.input.batch_size}, keras {keras.__version__}, {os.cpu_count()} cores"
        )
        print("| measure | events/s |")
        print("| --- | --- |")
        print(f"| pipeline ({args.workers} threads, crop centre + log + flips/turns) | {pipe:.0f} |")
        print(f"| ResNet-18 (width {cfg.model.width}) training step | {cnn:.1f} |")
        print(f"| ratio pipeline / ResNet-18 (target >= 2x) | {pipe / cnn:.0f}x |")


if __name__ == "__main__":
    main()
