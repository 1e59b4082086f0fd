"""Benchmark of the training input: nudask's Parquet stream against the model and the seed-000 way.

Full-geometry MicroBooNE events (2400/2400/3456 wires x 6400 ticks; half inclusive BNB,
half nue CC) are simulated, preprocessed, and the dataset replicated ``--copies`` times
(part files copied, so it holds several times more events than the shuffle buffer).
Inputs are 512 x 512 crops (wires x 6-tick bins) of the three planes u, v, y around the
true vertex, batches of ``--batch`` events. Measures:

pipeline      the stream alone (no model): ``--workers`` threads making batches in order, as
              Keras' PyDataset enqueuer does: batches/s, events/s and 512 x 512 planes/s;
train         the small CNN (jobs/train_nue_cc.yaml's, on 512 x 512 inputs) trained from
              the stream (``--train-workers`` threads), from the same events preloaded as
              numpy arrays, and with the COO shipped to the model and densified there
              (``input.densify: device``), fits of the three interleaved ``--repeats`` times:
              steps/s (median step of a fit, median over fits) and ratios of fits made side by
              side; targets pipeline >= 2x training, stream >= 0.9x preloaded;
devices       the small CNN on 2 logical CPU devices (train.devices: 2, MirroredStrategy) against
              one device, each device one core (one intra-op thread), the same per-device batch:
              the speed-up against the ideal 2x (target >= 0.8x), beside a CPU control task (two
              single-threaded matrix-product processes against one: what the machine gives now);
              fresh processes, interleaved ``--repeats`` times (``--devices-only``: this alone);
seed 000      the pickled pandas DataFrame of scipy.sparse COO planes (the seed's .pkl), loaded
              whole and densified per batch, against nudask's stream, each in a fresh process:
              time to first batch, peak memory (RSS growth), events/s over one epoch.

Run from the repository root (about 5 minutes on 2 cores; about 3 GB of memory)::

    .venv/bin/python tests/benchmarks/bench_train.py
    .venv/bin/python tests/benchmarks/bench_train.py --events 48 --keep /tmp/nudask-bench-train --markdown
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

CROP = 512
VIEWS = ("u", "v", "y")


def _status(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


def rss() -> int:
    """Resident memory now."""
    return _status("VmRSS")


def peak_rss() -> int:
    """Peak resident memory of this process image (``VmHWM``; unlike ``ru_maxrss`` not inherited)."""
    return _status("VmHWM")


# -- data ------------------------------------------------------------------------------------------
def build(folder: str, events: int, copies: int) -> str:
    """Simulated full-geometry files -> dataset -> a copy replicated ``copies`` times."""
    from nudask.simulate import simulate_microboone

    raw = os.path.join(folder, "raw")
    os.makedirs(raw, exist_ok=True)
    files = []
    for k, sample in enumerate(("bnb", "nue")):
        path = os.path.join(raw, f"{sample}_WithWire_{events // 2:03d}.h5")
        if not os.path.exists(path):
            t = time.perf_counter()
            simulate_microboone(path, n_events=events // 2, seed=50 + k, sample=sample, subrun=k + 1)
            print(f"simulated {events // 2} {sample} events in {time.perf_counter() - t:.0f} s", flush=True)
        files.append(path)
    base = os.path.join(folder, f"bench_{events}.parquet")
    if not os.path.exists(os.path.join(base, "_manifest.json")):
        from distributed import Client, LocalCluster

        from nudask import preprocess

        t = time.perf_counter()
        with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0") as c, Client(c) as cl:
            preprocess(files, base, client=cl, progress=False, events_per_chunk=24)  # nudask's row groups
        print(f"preprocessed in {time.perf_counter() - t:.0f} s", flush=True)
    big = os.path.join(folder, f"bench_{events}_x{copies}.parquet")
    if not os.path.exists(os.path.join(big, "_manifest.json")):
        os.makedirs(big, exist_ok=True)
        manifest = json.load(open(os.path.join(base, "_manifest.json")))
        entries = []
        for c in range(copies):
            for f in manifest["files"]:
                name = f"copy{c:02d}-{f['name']}"
                shutil.copyfile(os.path.join(base, f["name"]), os.path.join(big, name))
                entries.append({**f, "name": name})
        manifest.update(files=entries, events=manifest["events"] * copies)
        json.dump(manifest, open(os.path.join(big, "_manifest.json"), "w"))
    return big


SMALL_CNN = {"name": "small_cnn", "filters": [16, 32], "pool": [4, 4], "dense": 64, "dropout": 0.3}


def config(
    path: str,
    batch: int,
    workers: int,
    densify: str = "host",
    capacity: int = 16384,
    queue: int = 4,
    model: dict | None = None,
):
    from nudask.train.config import make_config

    return make_config(
        {
            "data": path,
            "task": {"target": "nue_cc"},
            "split": {"test": 0.1, "validation": 0.0},
            "input": {
                "views": list(VIEWS),
                "crop": "vertex",
                "crop_size": [CROP, CROP],
                "batch_size": batch,
                "buffer_events": 64,
                "workers": workers,
                "max_queue_size": queue,
                "densify": densify,
                "device_capacity": capacity,
            },
            "model": model or SMALL_CNN,
            "train": {"epochs": 1, "verbose": 0},
        }
    )


# -- measures ----------------------------------------------------------------------------------------
def pipeline(path: str, batch: int, workers: int, epochs: int) -> dict:
    from nudask.train.data import load_data

    data = load_data(config(path, batch, workers))
    src = data.source("train")

    def run(threads: int, first_epoch: int) -> tuple[float, int]:
        n, t = 0, time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            for e in range(first_epoch, first_epoch + epochs):
                src.set_epoch(e)  # a fresh epoch: every window read and decoded again
                for _x, y in pool.map(src.batch, range(len(src))):
                    n += len(y)
        return time.perf_counter() - t, n

    from nudask.train import stream

    run(workers, 100)  # warm-up: buffers allocated, files cached
    dt, n = run(workers, 0)
    dt1, _ = run(1, 10)
    batches = epochs * len(src)
    times: dict[str, list[float]] = {"unchecked": [], "first": [], "steady": []}

    def timed(kind: str, epoch: int) -> None:
        stream.VERIFY_PAGES = kind != "unchecked"
        if kind == "first":
            src.layout.verified.clear()  # an epoch whose every page is checked (a process's first)
        else:
            run(1, epoch + 5)  # steady: the pages of these epochs' windows checked already
        times[kind].append(run(1, epoch)[0])

    kinds = ["unchecked", "first", "steady"]
    for k in range(5):  # verification off, on for every page, on for pages seen: interleaved,
        for kind in kinds[k % 3 :] + kinds[: k % 3]:  # in a rotating order, one thread
            timed(kind, 200 + 10 * k + kinds.index(kind))
    stream.VERIFY_PAGES = True
    unchecked, first, steady = (times[k] for k in kinds)
    return {
        "checksum_ratio": float(np.median(unchecked) / np.median(steady)),
        "checksum_ratio_first_epoch": float(np.median(unchecked) / np.median(first)),
        "batches_s": batches / dt,
        "events_s": n / dt,
        "planes_s": 3 * n / dt,
        "batches_s_1thread": batches / dt1,
        "events": int(data.rows("train").size),
    }


class StepTimer:
    def __init__(self):
        import keras

        class T(keras.callbacks.Callback):
            def __init__(s):
                super().__init__()
                s.times = []

            def on_train_batch_end(s, batch, logs=None):
                s.times.append(time.perf_counter())

        self.cb = T()

    def steps(self, skip: int = 2) -> list[float]:
        """Durations of the steps after the first ``skip`` (tracing, warm-up)."""
        return np.diff(self.cb.times[skip:]).tolist()


def training(path: str, batch: int, workers: int, steps: int, repeats: int) -> dict:
    """Steps/s of the small CNN fed three ways; fits of the three interleaved, median of ``repeats``."""
    import statistics

    import keras

    from nudask.train.data import load_data
    from nudask.train.feed import EpochSync, stream
    from nudask.train.models import build_model, compile_model

    cfg = config(path, batch, workers)
    data = load_data(cfg)
    keras.utils.set_random_seed(0)

    def model_for(c, d, **kw):
        return compile_model(build_model(c.model, d.task, d.preps, **kw), d.task, c.train)

    # preloaded: the same kind of batches made once, held as numpy arrays before training starts
    src = data.source("train")
    n_pre = min(len(src), steps + 1) * batch
    parts = [src.batch(i) for i in range(n_pre // batch)]
    x = {k: np.concatenate([b[0][k] for b in parts]) for k in parts[0][0]}
    y = np.concatenate([b[1] for b in parts])
    nnz = max(int((parts[0][0][v] != 0).sum(axis=(1, 2, 3)).max()) for v in VIEWS)
    del parts
    capacity = int(-(-nnz * 1.5 // 1024) * 1024)
    cfg_d = config(path, batch, workers, "device", capacity)
    data_d = load_data(cfg_d)
    s_host, s_dev = stream(data.source("train"), cfg.input), stream(data_d.source("train"), cfg_d.input)
    models = {
        "stream": model_for(cfg, data),
        "preloaded": model_for(cfg, data),
        "device": model_for(cfg_d, data_d, densify="device", capacity=capacity),
    }

    def fit(kind: str, epoch: int) -> list[float]:
        timer = StepTimer()
        if kind == "preloaded":
            models[kind].fit(x, y, batch_size=batch, epochs=1, callbacks=[timer.cb], verbose=0, shuffle=True)
        else:
            s = s_host if kind == "stream" else s_dev
            models[kind].fit(
                s,
                epochs=epoch + 1,
                initial_epoch=epoch,
                steps_per_epoch=min(steps, len(s)),
                callbacks=[EpochSync(s), timer.cb],
                verbose=0,
            )
        return timer.steps()

    per_fit: dict[str, list[float]] = {k: [] for k in models}
    for r in range(repeats):
        for kind in models:
            per_fit[kind].append(1 / statistics.median(fit(kind, r)))
    # rates: the median step of each fit (robust to stalls a shared machine adds to some steps),
    # then the median over fits; ratios: median of the ratios of fits made side by side
    out = {k: statistics.median(v) for k, v in per_fit.items()}
    for a, b in (("stream", "preloaded"), ("device", "stream")):
        out[f"{a}/{b}"] = statistics.median(x / y for x, y in zip(per_fit[a], per_fit[b]))
    out.update(
        capacity=capacity,
        dropped=s_dev.source.dropped,
        fits={k: [round(x, 3) for x in v] for k, v in per_fit.items()},
    )
    return out


# -- two logical devices ------------------------------------------------------------------------------
def child_devices(n: int, steps: int, batch: int) -> dict:
    """Events/s of the small CNN (3 views of 128 x 128) on ``n`` logical CPU devices, one core each."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)  # one core per device
    tf.config.threading.set_inter_op_parallelism_threads(n)  # the devices' ops side by side
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n)
    import keras

    from nudask.train.config import Model, Train
    from nudask.train.distribute import Placement
    from nudask.train.models import build_model, compile_model
    from nudask.train.prepare import ViewPrep
    from nudask.train.targets import Task

    names = [d.name for d in tf.config.list_logical_devices("CPU")]
    place = Placement("tensorflow", names, strategy=tf.distribute.MirroredStrategy(names) if n > 1 else None)
    preps = {v: ViewPrep(v, (128, 128), (128, 128)) for v in VIEWS}
    task = Task("nue_cc", "binary", ("rest", "nue_cc"))
    with place.scope():
        keras.utils.set_random_seed(0)
        model = build_model(Model(filters=[16, 32], pool=[4, 4], dense=64, dropout=0.0), task, preps)
        compile_model(model, task, Train())
    g = batch * n  # the global batch: ``batch`` per device
    rng = np.random.default_rng(0)
    x = {v: rng.random((g * steps, 128, 128, 1), dtype=np.float32) for v in VIEWS}
    y = rng.integers(0, 2, (g * steps, 1)).astype(np.float32)
    timer = StepTimer()
    model.fit(x, y, batch_size=g, epochs=1, shuffle=False, verbose=0, callbacks=[timer.cb])
    import statistics

    return {"events_s": g / statistics.median(timer.steps())}


def child_control(n: int, seconds: float) -> dict:
    """Matrix products per second of ``n`` single-threaded processes together (the CPU control)."""
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(n) as ex:
        return {"products_s": sum(ex.map(_products, [seconds] * n))}


def _products(seconds: float) -> float:
    os.environ["OMP_NUM_THREADS"] = "1"
    from threadpoolctl import threadpool_limits

    a = np.random.default_rng(0).random((256, 256))
    with threadpool_limits(1):
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            a @ a
            n += 1
    return n / (time.perf_counter() - t0)


def devices(repeats: int, steps: int, batch: int) -> dict:
    """Two logical devices against one, and the control, each in fresh processes, interleaved."""
    import statistics

    runs: dict[str, list[float]] = {"one": [], "two": [], "c1": [], "c2": []}
    for _ in range(repeats):
        runs["one"].append(in_child("devices", "1", str(steps), str(batch))["events_s"])
        runs["c1"].append(in_child("control", "1", "5")["products_s"])
        runs["two"].append(in_child("devices", "2", str(steps), str(batch))["events_s"])
        runs["c2"].append(in_child("control", "2", "5")["products_s"])
    speedup = statistics.median(t / o for t, o in zip(runs["two"], runs["one"]))
    control = statistics.median(t / o for t, o in zip(runs["c2"], runs["c1"]))
    return {
        "one": statistics.median(runs["one"]),
        "two": statistics.median(runs["two"]),
        "speedup": speedup,
        "of_ideal": speedup / 2,
        "control": control,
        "runs": {k: [round(v, 2) for v in vs] for k, vs in runs.items()},
    }


def device_rows(d: dict, batch: int) -> list[tuple]:
    ok = "pass" if d["of_ideal"] >= 0.8 else "FAIL"
    return [
        ("small CNN, 1 device (1 core)", d["one"], f"events/s (batch {batch}, 3 x 128x128)", "", ""),
        (
            "small CNN, 2 logical devices (1 core each)",
            d["two"],
            f"events/s (global batch {2 * batch})",
            "",
            "",
        ),
        ("2 devices / 1 device", d["speedup"], "x (paired, fresh processes)", "", ""),
        ("... of the ideal 2x", d["of_ideal"], "x", ">= 0.8", ok),
        (
            "CPU control: 2 processes / 1",
            d["control"],
            "x (matrix products; the machine's 2 cores now)",
            "",
            "",
        ),
    ]


# -- the seed-000 way ---------------------------------------------------------------------------------
def write_pickle(path: str, pkl: str) -> None:
    """The seed's format: a pandas DataFrame, one row per event, a scipy.sparse COO matrix per plane."""
    import pandas as pd
    import scipy.sparse as sp

    from nudask.dataset import open_dataset

    ds = open_dataset(path)
    meta = ds.metadata
    rows = []
    for i in range(len(ds)):
        coo = ds.coo(i)
        rows.append({v: sp.coo_matrix((coo[v].values, coo[v].index), shape=coo[v].shape) for v in VIEWS})
    df = pd.concat([meta.reset_index(drop=True), pd.DataFrame(rows)], axis=1)
    with open(pkl, "wb") as f:
        pickle.dump(df, f, protocol=pickle.HIGHEST_PROTOCOL)


def child_pickle(pkl: str, batch: int) -> dict:
    import pandas as pd

    base = rss()
    t0 = time.perf_counter()
    df = pd.read_pickle(pkl)  # loaded whole
    order = np.random.default_rng(0).permutation(len(df))
    out = np.zeros((len(VIEWS), batch, CROP, CROP, 1), np.float32)
    first, n = None, 0
    for b in range(0, len(order), batch):
        idx = order[b : b + batch]
        for k, i in enumerate(idx):
            row = df.iloc[i]
            for j, v in enumerate(VIEWS):
                dense = row[v].toarray().astype(np.float32) / 100  # densified per event, as the seed did
                w = int(row["nu_vtx_wire_pos"][j])
                t = int(row["nu_vtx_wire_time"] / 6)
                r0 = int(np.clip(w - CROP // 2, 0, dense.shape[0] - CROP))
                c0 = int(np.clip(t - CROP // 2, 0, max(dense.shape[1] - CROP, 0)))
                crop = dense[r0 : r0 + CROP, c0 : c0 + CROP]
                out[j, k, : crop.shape[0], : crop.shape[1], 0] = crop
        n += len(idx)
        if first is None:
            first = time.perf_counter() - t0
    total = time.perf_counter() - t0
    return {
        "first_batch_s": first,
        "peak_bytes": peak_rss() - base,
        "events_s": n / (total - first) if n > batch else float("nan"),
        "events": n,
    }


def child_nudask(path: str, batch: int, workers: int) -> dict:
    from nudask.train.data import load_data

    base = rss()
    t0 = time.perf_counter()
    data = load_data(config(path, batch, workers, queue=workers))  # as many batches ahead as threads
    src = data.source("train")
    src.rows = np.flatnonzero(data.keep)  # every event, as the pickle
    src.epoch = -1
    src.set_epoch(0)
    src.batch(0)
    first = time.perf_counter() - t0
    n = 0
    with ThreadPoolExecutor(workers) as pool:
        for _x, y in pool.map(src.batch, range(1, len(src))):
            n += len(y)
    total = time.perf_counter() - t0
    return {
        "first_batch_s": first,
        "peak_bytes": peak_rss() - base,
        "events_s": n / (total - first),
        "events": n + batch,
    }


# -- accuracy on simulated data ----------------------------------------------------------------------
def _simulate(job: tuple) -> None:
    from nudask.simulate import simulate_microboone, simulate_nova

    path, kind, n, seed = job
    if kind == "nova":
        simulate_nova(path, n_events=n, seed=seed)
    else:
        simulate_microboone(path, n_events=n, seed=seed, sample=kind, geometry="small", subrun=seed)


def accuracy(folder: str, per_file: int, nova_events: int, epochs: int) -> list[tuple]:
    """The job configs on simulated data: MicroBooNE (small geometry) nue CC, NOvA numu CC."""
    from concurrent.futures import ProcessPoolExecutor

    from distributed import Client, LocalCluster

    from nudask import preprocess
    from nudask.train.config import load
    from nudask.train.fit import train

    os.makedirs(folder, exist_ok=True)
    jobs = [
        (os.path.join(folder, f"{s}_WithWire_{k:02d}.h5"), s, per_file, 200 + 2 * k + (s == "nue"))
        for k in range(3)
        for s in ("bnb", "nue")
    ]
    jobs.append((os.path.join(folder, "neutrino1.h5"), "nova", nova_events, 7))
    with ProcessPoolExecutor(2) as ex:
        list(ex.map(_simulate, [j for j in jobs if not os.path.exists(j[0])]))
    mb, nova = os.path.join(folder, "mb.parquet"), os.path.join(folder, "nova.parquet")
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0") as c, Client(c) as cl:
        preprocess(
            [j[0] for j in jobs[:-1]],
            mb,
            reader="microboone",
            reader_options={"geometry": "small"},
            client=cl,
            progress=False,
        )
        preprocess([jobs[-1][0]], nova, client=cl, progress=False, events_per_chunk=500)
    here = os.path.join(os.path.dirname(__file__), "..", "..", "jobs")
    runs = os.path.join(folder, "runs")
    small = [
        ("input.crop_size", [48, 48]),
        ("input.downsample", [1, 1]),
        ("model.pool", [2, 2]),
        ("task.energy_top_fraction", None),
    ]  # the small geometry: 48 x 48 is its 512 x 512
    rows = []
    tasks = (
        ("nue CC vs rest (MicroBooNE, small geometry)", mb, "train_nue_cc.yaml", small),
        ("numu CC vs rest (NOvA-like), natural mix", nova, "train_numu_cc_nova.yaml", []),
        (
            "numu CC vs rest (NOvA-like), class weights",
            nova,
            "train_numu_cc_nova.yaml",
            [("task.balance", "class_weights")],
        ),
    )
    for name, data, job, extra in tasks:
        cfg = load(
            os.path.join(here, job),
            [("data", data), ("output.runs", runs), ("train.epochs", epochs), ("train.verbose", 0), *extra],
        )
        t = time.perf_counter()
        run = train(cfg)
        m = json.load(open(os.path.join(run, "metrics.json")))["overall"]
        events = json.load(open(os.path.join(run, "dataset.json")))["split"]
        rows.append(
            (
                name,
                f"{events['train']['events']}/{events['validation']['events']}/{m['events']}",
                f"{m['accuracy']:.3f}",
                f"{m['accuracy_balanced']:.3f}",
                f"{m['roc_auc']:.3f}",
                f"{time.perf_counter() - t:.0f} s",
                str(run),
            )
        )
    return rows


def in_child(*args: str) -> dict:
    done = subprocess.run(
        [sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- report -------------------------------------------------------------------------------------------
def table(rows: list[tuple], markdown: bool) -> str:
    head = ("measure", "value", "unit", "target", "pass/fail")
    cells = [head] + [(m, f"{v:,.2f}" if isinstance(v, float) else str(v), u, t, p) for m, v, u, t, p in rows]
    if markdown:
        lines = ["| " + " | ".join(c) + " |" for c in cells]
        lines.insert(1, "|" + "---|" * len(head))
        return "\n".join(lines)
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
    return "\n".join("  ".join(c[i].ljust(widths[i]) for i in range(len(head))) for c in cells)


def main() -> None:
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # a CPU benchmark (bench_gpu.py has the GPU's)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=48, help="simulated events (half bnb, half nue)")
    p.add_argument("--copies", type=int, default=32, help="replicas of the dataset (default 32)")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--workers", type=int, default=2, help="threads making batches (pipeline, seed 000)")
    p.add_argument(
        "--train-workers",
        type=int,
        default=1,
        help="input.workers while training (1 on a 2-core CPU machine leaves the model the cores)",
    )
    p.add_argument("--steps", type=int, default=10, help="training steps per fit (the first 2 not timed)")
    p.add_argument("--repeats", type=int, default=6, help="interleaved fits of each training measure")
    p.add_argument("--keep", help="folder for the data (reused when present)")
    p.add_argument("--markdown", action="store_true")
    p.add_argument("--pipeline-only", action="store_true", help="measure the stream alone (minutes less)")
    p.add_argument(
        "--devices-only", action="store_true", help="measure 2 logical devices against one (no dataset)"
    )
    p.add_argument(
        "--device-steps", type=int, default=12, help="steps per device fit (the first 2 not timed)"
    )
    p.add_argument(
        "--accuracy",
        action="store_true",
        help="instead: train the job configs on simulated data and print the accuracies",
    )
    p.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.accuracy:
        folder = os.path.join(a.keep or tempfile.mkdtemp(prefix="nudask-bench-acc-"), "accuracy")
        rows = accuracy(folder, per_file=500, nova_events=6000, epochs=10)
        head = ("task", "events train/val/test", "accuracy", "balanced accuracy", "ROC AUC", "time", "run")
        cells = [head, *rows]
        print("\n".join("| " + " | ".join(c) + " |" for c in [*cells[:1], ("---",) * len(head), *cells[1:]]))
        return
    if a.child:
        kind, *rest = a.child
        if kind == "devices":
            res = child_devices(int(rest[0]), int(rest[1]), int(rest[2]))
        elif kind == "control":
            res = child_control(int(rest[0]), float(rest[1]))
        elif kind == "pickle":
            res = child_pickle(rest[0], int(rest[1]))
        else:
            res = child_nudask(rest[0], int(rest[1]), int(rest[2]))
        print(json.dumps(res))
        return
    if a.devices_only:
        d = devices(a.repeats, a.device_steps, a.batch)
        print(f"devices: {json.dumps(d)}", flush=True)
        print(table(device_rows(d, a.batch), a.markdown))
        return
    folder = a.keep or tempfile.mkdtemp(prefix="nudask-bench-train-")
    path = build(folder, a.events, a.copies)
    pkl = os.path.join(folder, f"bench_{a.events}_x{a.copies}.pkl")
    if not os.path.exists(pkl):
        write_pickle(path, pkl)
    pipe = pipeline(path, a.batch, a.workers, epochs=2)
    print(f"pipeline: {json.dumps(pipe)}", flush=True)
    if a.pipeline_only:
        return
    tr = training(path, a.batch, a.train_workers, a.steps, a.repeats)
    print(f"training: {json.dumps(tr)}", flush=True)
    dev = devices(a.repeats, a.device_steps, a.batch)
    print(f"devices: {json.dumps(dev)}", flush=True)
    seed = in_child("pickle", pkl, str(a.batch))
    ours = in_child("nudask", path, str(a.batch), str(a.workers))
    from nudask.dataset import open_dataset

    n_events = len(open_dataset(path))
    parquet_bytes = sum(os.path.getsize(f) for f in open_dataset(path).files)
    ok = lambda c: "pass" if c else "FAIL"  # noqa: E731
    rows = [
        ("dataset events (x copies)", n_events, f"events ({a.events} x {a.copies})", "", ""),
        ("pipeline alone", pipe["batches_s"], f"batches/s ({a.batch} events)", "", ""),
        ("pipeline alone", pipe["events_s"], "events/s (3 planes)", "", ""),
        ("pipeline alone", pipe["planes_s"], "512x512 images/s", "", ""),
        ("pipeline, one thread", pipe["batches_s_1thread"], "batches/s", "", ""),
        (
            "pipeline with / without page checksum verification",
            pipe["checksum_ratio"],
            "x (one thread, median of 5 interleaved; pages checked once per process)",
            ">= 0.95",
            ok(pipe["checksum_ratio"] >= 0.95),
        ),
        (
            "... in an epoch that checks every page",
            pipe["checksum_ratio_first_epoch"],
            "x (a process's first epoch)",
            "",
            "",
        ),
        ("small CNN training (stream)", tr["stream"], "batches/s (median step)", "", ""),
        (
            "pipeline / training",
            pipe["batches_s"] / tr["stream"],
            "x",
            ">= 2",
            ok(pipe["batches_s"] >= 2 * tr["stream"]),
        ),
        ("training from preloaded numpy", tr["preloaded"], "batches/s", "", ""),
        (
            "stream / preloaded training",
            tr["stream/preloaded"],
            "x (paired)",
            ">= 0.9",
            ok(tr["stream/preloaded"] >= 0.9),
        ),
        ("training, densified on the device", tr["device"], "batches/s", "", ""),
        ("device / host densify training", tr["device/stream"], "x (paired)", "(measure)", ""),
        *device_rows(dev, a.batch),
        ("seed-000 .pkl: time to first batch", seed["first_batch_s"], "s", "", ""),
        (
            "nudask: time to first batch",
            ours["first_batch_s"],
            "s",
            "< .pkl",
            ok(ours["first_batch_s"] < seed["first_batch_s"]),
        ),
        ("seed-000 .pkl: peak memory", seed["peak_bytes"] / 1e6, "MB", "", ""),
        (
            "seed-000 .pkl: memory per 1000 events",
            seed["peak_bytes"] / seed["events"] * 1000 / 1e6,
            "MB",
            "",
            "grows with the dataset",
        ),
        (
            "nudask: peak memory",
            ours["peak_bytes"] / 1e6,
            "MB",
            "< .pkl",
            ok(ours["peak_bytes"] < seed["peak_bytes"]),
        ),
        ("seed-000 .pkl: throughput", seed["events_s"], "events/s", "", ""),
        (
            "nudask: throughput",
            ours["events_s"],
            "events/s",
            "> .pkl",
            ok(ours["events_s"] > seed["events_s"]),
        ),
        ("seed-000 .pkl: file size", os.path.getsize(pkl) / 1e6, "MB", "", ""),
        ("nudask Parquet: size", parquet_bytes / 1e6, "MB", "", ""),
    ]
    import keras

    print(
        f"\nnudask training benchmark, {platform.node()}, {os.cpu_count()} cores, "
        f"keras {keras.__version__} ({keras.backend.backend()}), batch {a.batch}, {CROP}x{CROP} crops "
        f"of u, v, y around the vertex, {a.workers} worker threads ({a.train_workers} while training); "
        f"device-densify capacity "
        f"{tr['capacity']} pixels/plane ({tr['dropped']} dropped)\n"
    )
    print(table(rows, a.markdown))


if __name__ == "__main__":
    main()
