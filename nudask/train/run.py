"""The run folder: provenance, checkpoints and history, the state a resume starts from.

::

    runs/<name>/<YYYYmmdd_HHMMSS>/
      config.yaml  command.txt  environment.json  dataset.json
      history.json  history.csv  model_best.keras  model_last.keras
      checkpoints/epoch_NNNN[_step_SSSSSS].keras  checkpoints/state.json
      metrics.json  predictions.csv  plots/*.png  summary.md  index.html  [logs/ TensorBoard]
      [batches.jsonl: train.trace_batches]

A checkpoint (model and optimizer) is written at every epoch's end and every
``train.checkpoint_every_steps`` steps within it; ``state.json`` records its
position: ``epoch`` epochs done and ``step`` batches of the next. Every file is
written atomically (a temporary beside it, then renamed), and ``state.json``
last, so a run killed at any moment resumes from its last checkpoint.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import keras

from .. import __version__
from ..errors import NotFoundError
from .config import Config, ConfigError, dump

STATE = "checkpoints/state.json"
TRACE = "batches.jsonl"


def new_run_dir(cfg: Config, config_path: str | None = None) -> Path:
    """A fresh timestamped folder ``<output.runs>/<name>/<stamp>``."""
    name = cfg.output.name or (
        Path(config_path).stem.removeprefix("train_") if config_path else cfg.task.target
    )
    stamp = dt.datetime.now().strftime("%Y%m%d_%H%M%S")
    base = Path(cfg.output.runs) / name
    path, k = base / stamp, 1
    while path.exists():
        k += 1
        path = base / f"{stamp}_{k}"
    (path / "checkpoints").mkdir(parents=True)
    (path / "plots").mkdir()
    return path


def write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_json(path: Path, value) -> None:
    write_text(path, json.dumps(value, indent=1, default=_plain) + "\n")


def _plain(x):
    return x.item() if hasattr(x, "item") else str(x)


def _versions(*names: str) -> dict:
    out = {}
    for n in names:
        try:
            out[n] = version(n)
        except PackageNotFoundError:
            pass
    return out


def environment() -> dict:
    """nudask, Python and library versions, the Keras backend and its devices, the host."""
    backend = keras.backend.backend()
    env = {
        "nudask": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "cpus": os.cpu_count(),
        "keras_backend": backend,
        "libraries": _versions(
            "numpy",
            "pyarrow",
            "pandas",
            "keras",
            "tensorflow",
            "tensorflow-cpu",
            "jax",
            "jaxlib",
            "torch",
            "matplotlib",
        ),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "devices": _devices(backend),
    }
    try:
        here = Path(__file__).resolve().parent
        commit = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
        dirty = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--", "."],
            capture_output=True,
            text=True,
            timeout=5,
        )
        if commit.returncode == 0:
            env["git_commit"] = commit.stdout.strip()
            env["git_dirty"] = bool(dirty.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    return env


def _devices(backend: str) -> list[str]:
    try:
        if backend == "tensorflow":
            import tensorflow as tf

            return [f"{d.device_type}:{d.name}" for d in tf.config.list_physical_devices()]
        if backend == "jax":
            import jax

            return [str(d) for d in jax.devices()]
        if backend == "torch":
            import torch

            return ["cuda"] * torch.cuda.device_count() or ["cpu"]
    except Exception as err:  # a broken driver must not stop a run
        return [f"unknown ({err})"]
    return []


def write_provenance(
    run: Path, cfg: Config, argv: list[str], dataset: dict, placement: dict | None = None
) -> None:
    """config.yaml, command.txt (one line per invocation), environment.json (with the devices and
    workers trained on, ``placement``), dataset.json."""
    write_text(run / "config.yaml", dump(cfg))
    line = f"{dt.datetime.now().isoformat(timespec='seconds')}  {' '.join(argv)}\n"
    with open(run / "command.txt", "a") as f:
        f.write(line)
    write_json(run / "environment.json", {**environment(), "placement": placement or {"replicas": 1}})
    write_json(run / "dataset.json", dataset)


def monitor_mode(monitor: str) -> str:
    """``max`` for accuracies and AUCs, ``min`` for losses and errors.

    >>> monitor_mode("val_auc"), monitor_mode("val_loss")
    ('max', 'min')
    """
    return "max" if any(k in monitor for k in ("acc", "auc")) else "min"


def run_folder(run: str | os.PathLike[str]) -> Path:
    """``run`` as a Path, once it is seen to be a run folder (it has its config.yaml)."""
    run = Path(run)
    if not (run / "config.yaml").exists():
        raise NotFoundError(f"'{run}' is not a run folder (no config.yaml)")
    return run


def load_state(run: Path) -> dict:
    path = Path(run) / STATE
    if not path.exists():
        raise NotFoundError(
            f"'{run}' has no {STATE}: not a nudask run folder, or it was "
            "killed before its first checkpoint (start it again)"
        )
    return json.loads(path.read_text())


def load_history(run: Path, epochs: int) -> list[dict]:
    """Recorded epochs ``1..epochs`` (drops any written after the last state)."""
    path = Path(run) / "history.json"
    hist = json.loads(path.read_text()) if path.exists() else []
    return [h for h in hist if h["epoch"] <= epochs]


def save_model(model: keras.Model, path: Path) -> None:
    tmp = path.with_name(f".tmp-{path.name}")
    model.save(tmp)
    os.replace(tmp, path)


def write_history(run: Path, history: list[dict]) -> None:
    write_json(run / "history.json", history)
    keys = list(dict.fromkeys(k for h in history for k in h))
    tmp = run / ".history.csv.tmp"
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(history)
    os.replace(tmp, run / "history.csv")


class Checkpointer(keras.callbacks.Callback):
    """Every epoch: checkpoint, best model, history (JSON, CSV), then the state; every
    ``every_steps`` steps within an epoch of ``steps``: a checkpoint and the state.

    ``start`` is the global step the first epoch's pass begins at (a resumed
    epoch): Keras counts that pass's batches from 0. ``keep`` goes into every state.
    """

    def __init__(
        self,
        run: Path,
        monitor: str,
        epochs: int,
        history: list[dict],
        state: dict | None = None,
        *,
        every_steps: int = 0,
        steps: int | None = None,
        start: int = 0,
        keep: dict | None = None,
    ):
        super().__init__()
        self.run, self.monitor, self.epochs = Path(run), monitor, epochs
        self.mode = monitor_mode(monitor)
        self.history = history
        state = state or {}
        self.best, self.best_epoch = state.get("best"), state.get("best_epoch")
        self.every_steps, self.steps, self.start = every_steps, steps, start
        self.keep = keep or {}  # what the state carries for every resume (the run's global batch)
        self.epoch = 0
        self.t0 = None

    def on_epoch_begin(self, epoch, logs=None):
        self.t0 = dt.datetime.now()
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        done = self.start + batch + 1  # global steps of this epoch trained
        if self.every_steps and done % self.every_steps == 0 and (self.steps is None or done < self.steps):
            self._save(f"epoch_{self.epoch + 1:04d}_step_{done:06d}.keras", self.epoch, done)

    def _save(self, name: str, epochs_done: int, step: int) -> None:
        """Checkpoint ``name``, then the state pointing at it, then the older checkpoints go."""
        save_model(self.model, self.run / "checkpoints" / name)
        write_json(
            self.run / STATE,
            {
                "epoch": epochs_done,
                "step": step,
                "epochs": self.epochs,
                "checkpoint": name,
                "monitor": self.monitor,
                "mode": self.mode,
                "best": self.best,
                "best_epoch": self.best_epoch,
                **self.keep,
            },
        )
        for old in (self.run / "checkpoints").glob("epoch_*.keras"):
            if old.name != name:
                old.unlink()

    def on_epoch_end(self, epoch, logs=None):
        self.start = 0  # the next epoch is trained whole
        logs = {k: float(v) for k, v in (logs or {}).items()}
        seconds = (dt.datetime.now() - self.t0).total_seconds() if self.t0 else None
        self.history.append({"epoch": epoch + 1, **logs, "seconds": seconds})
        name = f"epoch_{epoch + 1:04d}.keras"
        value = logs.get(self.monitor)
        if value is None:
            raise ConfigError(
                f"train.monitor: '{self.monitor}' is not among the logged metrics {sorted(logs)}"
            )
        save_model(self.model, self.run / "checkpoints" / name)
        better = self.best is None or (value > self.best if self.mode == "max" else value < self.best)
        if better:
            self.best, self.best_epoch = value, epoch + 1
            tmp = self.run / ".tmp-model_best.keras"
            shutil.copyfile(self.run / "checkpoints" / name, tmp)
            os.replace(tmp, self.run / "model_best.keras")
        write_history(self.run, self.history)
        self._save(name, epoch + 1, 0)


class BatchTrace(keras.callbacks.Callback):
    """Appends each trained batch's dataset rows to ``batches.jsonl`` (``train.trace_batches``).

    One line per step, ``{"epoch": e, "step": s, "rows": [...]}`` (``e`` from
    0, ``s`` the global batch of the epoch), written once the step is trained,
    so the file is the order the model saw; a resume first drops the lines
    after its checkpoint (:func:`trim_trace`).
    """

    def __init__(self, run: Path, source, start: int = 0):
        super().__init__()
        self.path, self.source, self.start = Path(run) / TRACE, source, start
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        step = self.start + batch
        rows = self.source.batch_rows(step, epoch=self.epoch).tolist()
        with open(self.path, "a") as f:
            f.write(json.dumps({"epoch": self.epoch, "step": step, "rows": rows}) + "\n")

    def on_epoch_end(self, epoch, logs=None):
        self.start = 0


def read_trace(run: Path) -> list[dict]:
    """The lines of a run's ``batches.jsonl`` (none if it has none)."""
    path = Path(run) / TRACE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def trim_trace(run: Path, epoch: int, step: int) -> None:
    """Keeps the traced steps before position (``epoch``, ``step``): those a checkpoint holds."""
    lines = [t for t in read_trace(run) if (t["epoch"], t["step"]) < (epoch, step)]
    if (Path(run) / TRACE).exists():
        write_text(Path(run) / TRACE, "".join(json.dumps(t) + "\n" for t in lines))
