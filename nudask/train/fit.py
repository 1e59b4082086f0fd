"""Train a model on a nudask dataset into a run folder; resume a killed run.

:func:`train` makes the run folder, builds the model from the config and
fits it on the streamed training split (validated every epoch), then
evaluates the best model on the test split. :func:`resume` continues a run
from its last checkpoint (an epoch's end, or a step within it): the same
weights and optimizer state, the same data order for the rest (the order
depends only on the seed and the epoch number; a resumed epoch goes on at the
first batch not trained), the history extended, not repeated.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np

from ..errors import ConfigError, DataError, TrainingError
from .config import Config, make_config
from .data import Data, load_data
from .feed import EpochSync, stream
from .models import build_model, compile_model
from .run import (
    BatchTrace,
    Checkpointer,
    load_history,
    load_state,
    new_run_dir,
    run_folder,
    save_model,
    trim_trace,
    write_provenance,
)

RESUMABLE = {
    "train.epochs",
    "train.verbose",
    "train.tensorboard",
    "input.workers",
    "input.use_multiprocessing",
    "input.max_queue_size",
    "train.checkpoint_every_steps",
    "train.trace_batches",
    "data",
}


class StopOnNaN(keras.callbacks.Callback):
    """Stops training with a clear error as soon as the loss is NaN or infinite."""

    def __init__(self, run: Path):
        super().__init__()
        self.run = run
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def _check(self, logs, where: str):
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(float(loss)):
            raise TrainingError(
                f"the training loss became {float(loss)} at epoch {self.epoch + 1}, {where}: lower "
                "train.learning_rate, check input.scale / input.scale_factor (inputs of order 1) and "
                f"the targets; the last good checkpoint is in {self.run / 'checkpoints'}"
            )

    def on_train_batch_end(self, batch, logs=None):
        self._check(logs, f"batch {batch + 1}")

    def on_epoch_end(self, epoch, logs=None):
        self._check(logs, "epoch end")


def _fit(
    model,
    data: Data,
    cfg: Config,
    run: Path,
    *,
    initial_epoch: int,
    history: list,
    state: dict | None,
    extra: Sequence[keras.callbacks.Callback] = (),
    start_step: int = 0,
):
    source = data.source("train")
    steps = min(len(source), cfg.train.steps_per_epoch or len(source))
    train_stream = stream(source, cfg.input, stop=steps)
    has_val = cfg.split.validation > 0
    val_stream = stream(data.source("validation"), cfg.input) if has_val else None
    monitor = cfg.train.monitor or ("val_loss" if has_val else "loss")
    checkpointer = Checkpointer(
        run,
        monitor,
        cfg.train.epochs,
        history,
        state,
        every_steps=cfg.train.checkpoint_every_steps,
        steps=steps,
        start=start_step,
    )
    trace = [BatchTrace(run, source, start_step)] if cfg.train.trace_batches else []
    callbacks: list[keras.callbacks.Callback] = [
        EpochSync(train_stream),
        StopOnNaN(run),
        *trace,
        checkpointer,
    ]
    if cfg.train.early_stopping:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor=monitor,
                patience=cfg.train.early_stopping,
                mode=checkpointer.mode,
                restore_best_weights=cfg.train.restore_best_weights,
            )
        )
    if cfg.train.decay_rate is not None:
        lr0, rate = cfg.train.learning_rate, cfg.train.decay_rate
        callbacks.append(keras.callbacks.LearningRateScheduler(lambda epoch, lr: lr0 * rate**epoch))
    if cfg.train.tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(run / "logs")))
    callbacks += list(extra)
    fit = {"validation_data": val_stream, "callbacks": callbacks, "verbose": cfg.train.verbose}
    if start_step:  # the rest of the interrupted epoch, then the later epochs whole
        keras.utils.set_random_seed(cfg.train.seed + initial_epoch)
        rest = stream(source, cfg.input, start=start_step, stop=steps)
        model.fit(rest, epochs=initial_epoch + 1, initial_epoch=initial_epoch, **fit)
        initial_epoch += 1
    if initial_epoch < cfg.train.epochs and not (start_step and model.stop_training):
        keras.utils.set_random_seed(cfg.train.seed + initial_epoch)
        model.fit(train_stream, epochs=cfg.train.epochs, initial_epoch=initial_epoch, **fit)
    save_model(model, run / "model_last.keras")
    if train_stream.source.dropped or (val_stream and val_stream.source.dropped):
        print(f"nudask.train: {train_stream.source.dropped} pixels beyond input.device_capacity were dropped")


def _check_tools(cfg: Config) -> None:
    if cfg.train.tensorboard and importlib.util.find_spec("tensorboard") is None:
        raise ConfigError("train.tensorboard: true needs the tensorboard package: pip install tensorboard")


def _finish(run: Path, data: Data, evaluate: bool, verbose: int) -> Path:
    if evaluate:
        from .evaluate import evaluate_run

        evaluate_run(run, data=data, verbose=verbose)
    return run


def train(
    cfg: Config,
    *,
    config_path: str | None = None,
    argv: list[str] | None = None,
    evaluate: bool = True,
    callbacks: Sequence[keras.callbacks.Callback] = (),
) -> Path:
    """Train as configured into a new run folder (returned); ``callbacks`` are added to Keras'."""
    from .features import FEATURE_MODELS, train_features

    if cfg.model.name in FEATURE_MODELS:  # scikit-learn / XGBoost on metadata columns
        return train_features(cfg, config_path=config_path, argv=argv, evaluate=evaluate)
    _check_tools(cfg)
    if cfg.train.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    data = load_data(cfg)
    run = new_run_dir(cfg, config_path)
    cfg.data = data.path
    write_provenance(run, cfg, argv or ["nudask.train.train"], data.record())
    keras.utils.set_random_seed(cfg.train.seed)
    model = build_model(
        cfg.model, data.task, data.preps, densify=cfg.input.densify, capacity=cfg.input.device_capacity
    )
    compile_model(model, data.task, cfg.train, axial=cfg.task.axial)
    if cfg.report.samples > 0:
        from .report import write_samples

        write_samples(run, data, cfg.report.samples)
    if cfg.train.verbose:
        print(f"nudask.train: run folder {run}\nnudask.train: {json.dumps(data.summary())}", flush=True)
    _fit(model, data, cfg, run, initial_epoch=0, history=[], state=None, extra=callbacks)
    return _finish(run, data, evaluate, cfg.train.verbose)


def resume(
    run: str | Path,
    *,
    overrides: Sequence[tuple[str, object]] = (),
    argv: list[str] | None = None,
    evaluate: bool = True,
    callbacks: Sequence[keras.callbacks.Callback] = (),
) -> Path:
    """Continue the run folder ``run`` from its last checkpoint (an epoch's end or a step within)."""
    from .config import load_file

    run = run_folder(run)
    refused = [k for k, _ in overrides if k not in RESUMABLE]
    if refused:
        raise ConfigError(
            f"--resume keeps the run's settings; cannot change {refused} "
            f"(allowed: {', '.join(sorted(RESUMABLE))})"
        )
    cfg = make_config(load_file(run / "config.yaml"), overrides)
    _check_tools(cfg)
    state = load_state(run)
    data = load_data(cfg)
    recorded = json.loads((run / "dataset.json").read_text())["manifest_sha256"]
    if recorded != data.checksum:
        raise DataError(
            f"dataset '{data.path}' changed since the run started (manifest checksum "
            f"{data.checksum[:12]} != {recorded[:12]}): start a new run"
        )
    write_provenance(run, cfg, argv or ["nudask.train.resume", str(run)], data.record())
    done, step = int(state["epoch"]), int(state.get("step", 0))
    if done >= cfg.train.epochs:
        print(f"nudask.train: {run} finished all {cfg.train.epochs} epochs; nothing to train")
        return _finish(run, data, evaluate and not (run / "metrics.json").exists(), cfg.train.verbose)
    from . import models  # noqa: F401  (custom layers)

    model = keras.models.load_model(run / "checkpoints" / state["checkpoint"])
    trim_trace(run, done, step)  # steps traced after the checkpoint are trained again
    if cfg.train.verbose:
        where = f", step {step} of epoch {done + 1}" if step else ""
        print(f"nudask.train: resuming {run} after epoch {done} of {cfg.train.epochs}{where}", flush=True)
    _fit(
        model,
        data,
        cfg,
        run,
        initial_epoch=done,
        history=load_history(run, done),
        state=state,
        extra=callbacks,
        start_step=step,
    )
    return _finish(run, data, evaluate, cfg.train.verbose)
