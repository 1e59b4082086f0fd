"""GPU training throughput at 3 x 512 x 512: host- against device-densified input, mixed precision
off and on, and whether the input pipeline keeps the GPU busy.

Full-geometry MicroBooNE events at the real files' density (``simulate_microboone``'s default
cosmics) are preprocessed and replicated as in ``bench_train.py``; inputs are 512 x 512 crops of
the three planes around the vertex, ``--batch`` events per step on one GPU. For each of the four
settings (``input.densify: host | device`` x ``train.mixed_precision: false | true``):

model alone   steps/s of ``model.fit`` on one batch already made, repeated (numpy arrays: the
              host-to-device copy of each step is in it, the stream's work is not): the most
              this GPU trains at with this model;
fed           steps/s of ``model.fit`` from nudask's stream (``--workers`` threads making
              batches, as in ``python -m nudask.train``);
busy          fed / model alone: 1.0 when the input keeps the GPU busy, lower when steps wait
              for batches; beside it the GPU's mean utilisation during the fed fit (sampled by
              ``nvidia-smi`` every 100 ms, when present).

Rates are medians of the step times after ``--skip`` warm-up steps; samples/s is steps/s x
``--batch``, compared with CosmicTagger's 280 samples/s per node (larcv3 sparse input,
1280 x 2048 x 3 images: a larger image; the comparison is of order, not like for like). The GPU
is named in the table. Without a GPU the script stops, unless ``--allow-cpu`` (a trial of the
script itself on a small model: its figures say nothing of a GPU).

Run from the repository root on a GPU node (about 10 minutes with the defaults)::

    .venv/bin/python tests/benchmarks/bench_gpu.py --markdown
    .venv/bin/python tests/benchmarks/bench_gpu.py --model small_cnn --events 24 --copies 4 --batch 8 \
        --steps 14 --skip 4 --mixed off --allow-cpu     # a trial of the script on a CPU
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(__file__))

from bench_train import StepTimer, build, config, table

COSMICTAGGER = 280.0  # samples/s per node (anchors.md)
MODELS = {
    "resnet18": {"name": "resnet18", "width": 64, "dense": 128, "dropout": 0.0},
    "small_cnn": {"name": "small_cnn", "filters": [16, 32], "pool": [4, 4], "dense": 64, "dropout": 0.0},
}


def gpu_name() -> str | None:
    """The first GPU's name (nvidia-smi, else TensorFlow's device details); None without one."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return None
    if shutil.which("nvidia-smi"):
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True
        )
        if out.returncode == 0 and out.stdout.strip():
            return f"{out.stdout.strip().splitlines()[0]} (x{len(gpus)} visible, 1 used)"
    return tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU")


class Utilisation:
    """The GPU's utilisation (%), sampled by ``nvidia-smi`` while the context is open; None without it."""

    def __enter__(self):
        self.samples: list[float] = []
        self.proc = None
        if shutil.which("nvidia-smi"):
            self.proc = subprocess.Popen(
                [
                    "nvidia-smi",
                    "-i",
                    "0",
                    "--query-gpu=utilization.gpu",
                    "--format=csv,noheader,nounits",
                    "-lms",
                    "100",
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            self.reader = threading.Thread(target=self._read, daemon=True)
            self.reader.start()
        return self

    def _read(self):
        for line in self.proc.stdout:
            try:
                self.samples.append(float(line.strip()))
            except ValueError:
                pass

    def __exit__(self, *exc):
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait()
            self.reader.join(timeout=2)

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.samples) if self.samples else None


def setting(path: str, model: dict, batch: int, workers: int, densify: str, mixed: bool, a) -> dict:
    """Model alone, then fed from the stream, for one (densify, mixed precision)."""
    import keras
    import numpy as np

    from nudask.train.data import load_data
    from nudask.train.feed import EpochSync, stream
    from nudask.train.models import build_model, compile_model

    keras.mixed_precision.set_global_policy("mixed_float16" if mixed else "float32")
    cfg = config(path, batch, workers, densify, a.capacity, queue=2 * workers, model=model)
    data = load_data(cfg)
    keras.utils.set_random_seed(0)
    net = build_model(cfg.model, data.task, data.preps, densify=densify, capacity=a.capacity)
    net = compile_model(net, data.task, cfg.train)
    source = data.source("train")
    x, y = source.batch(0)
    steps = min(a.steps, len(source))

    def rate(timer: StepTimer) -> float:
        return 1 / statistics.median(timer.steps(a.skip))

    alone = StepTimer()
    reps = {k: np.concatenate([v] * steps) for k, v in x.items()}
    net.fit(reps, np.concatenate([y] * steps), batch_size=batch, epochs=1, verbose=0, callbacks=[alone.cb])
    fed = StepTimer()
    s = stream(source, cfg.input)
    with Utilisation() as util:
        net.fit(s, epochs=1, steps_per_epoch=steps, callbacks=[EpochSync(s), fed.cb], verbose=0)
    keras.mixed_precision.set_global_policy("float32")
    return {
        "densify": densify,
        "mixed": mixed,
        "alone": rate(alone),
        "fed": rate(fed),
        "utilisation": util.mean,
        "dropped": source.dropped,
    }


def rows(results: list[dict], batch: int, gpu: str) -> list[tuple]:
    out = [("device", gpu, "", "", "")]
    for r in results:
        name = f"{r['densify']}-densified, mixed precision {'on' if r['mixed'] else 'off'}"
        busy = r["fed"] / r["alone"]
        out += [
            (f"{name}: model alone", r["alone"] * batch, "samples/s", "", ""),
            (f"{name}: fed by the stream", r["fed"] * batch, "samples/s", "", ""),
            (f"{name}: busy (fed / alone)", busy, "x", ">= 0.9", "pass" if busy >= 0.9 else "FAIL"),
            (
                f"{name}: fed / CosmicTagger per node",
                r["fed"] * batch / COSMICTAGGER,
                "x (280 samples/s)",
                "",
                "",
            ),
        ]
        if r["utilisation"] is not None:
            out.append((f"{name}: GPU utilisation, fed", r["utilisation"], "% (nvidia-smi, mean)", "", ""))
        if r["dropped"]:
            out.append((f"{name}: pixels dropped", r["dropped"], "beyond input.device_capacity", "0", "FAIL"))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=48, help="simulated events (half bnb, half nue)")
    p.add_argument("--copies", type=int, default=16, help="replicas of the dataset")
    p.add_argument("--batch", type=int, default=32, help="events per step (one GPU)")
    p.add_argument("--workers", type=int, default=8, help="threads making batches (input.workers)")
    p.add_argument("--model", choices=sorted(MODELS), default="resnet18")
    p.add_argument("--steps", type=int, default=60, help="steps per fit")
    p.add_argument("--skip", type=int, default=10, help="warm-up steps not timed (tracing, autotuning)")
    p.add_argument("--capacity", type=int, default=65536, help="input.device_capacity (pixels per view)")
    p.add_argument("--keep", help="folder for the data (reused when present)")
    p.add_argument(
        "--mixed", choices=("both", "off", "on"), default="both", help="mixed precision (off on a CPU: slow)"
    )
    p.add_argument("--allow-cpu", action="store_true", help="run without a GPU (a trial of the script)")
    p.add_argument("--markdown", action="store_true")
    a = p.parse_args()
    gpu = gpu_name()
    if gpu is None and not a.allow_cpu:
        sys.exit(
            "bench_gpu: TensorFlow sees no GPU here; run it on a GPU node (or --allow-cpu to try the script)"
        )
    folder = a.keep or tempfile.mkdtemp(prefix="nudask-bench-gpu-")
    path = build(folder, a.events, a.copies)
    results = []
    for densify in ("host", "device"):
        for mixed in {"both": (False, True), "off": (False,), "on": (True,)}[a.mixed]:
            r = setting(path, MODELS[a.model], a.batch, a.workers, densify, mixed, a)
            print(json.dumps(r), flush=True)
            results.append(r)
    where = gpu or "CPU (no GPU: a trial of the script, not a GPU figure)"
    print(f"\n{a.model}, 3 x 512 x 512 crops, batch {a.batch}, {a.workers} input threads, real density\n")
    print(table(rows(results, a.batch, where), a.markdown))


if __name__ == "__main__":
    main()
