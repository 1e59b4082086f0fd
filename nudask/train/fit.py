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

import contextlib
import dataclasses
import importlib.util
import json
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import keras
import numpy as np

from ..errors import ConfigError, DataError, TrainingError
from .config import Config, make_config
from .data import Data, load_data
from .distribute import Placement, place, scaled_learning_rate
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
from .shard import Shard
from .stream import BatchSource

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
    # the placement: a resume on another number of replicas keeps the run's global batch and rate
    "train.cluster",
    "train.devices",
    "train.worker_timeout",
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


@dataclasses.dataclass(frozen=True)
class Schedule:
    """What a run keeps whatever it resumes on: its global batch and the replicas it started on.

    The learning rate was scaled for ``replicas`` (``train.learning_rate_scaling``); a resume on
    another number of replicas splits the same global batch among its own, so the steps, the
    order and the rate go on as if nothing had changed.
    """

    global_batch: int
    replicas: int

    @classmethod
    def new(cls, cfg: Config, placement: Placement) -> Schedule:
        return cls(placement.global_batch(cfg.input.batch_size), placement.replicas)

    @classmethod
    def of_run(cls, run: Path, state: dict, cfg: Config, placement: Placement) -> Schedule:
        """The run's schedule (from its state; a run older than that: from its environment.json),
        once seen to be one this placement's replicas can share equally."""
        recorded = json.loads((run / "environment.json").read_text()).get("placement", {})
        replicas = int(state.get("learning_rate_replicas", recorded.get("replicas", 1)))
        schedule = cls(int(state.get("global_batch", cfg.input.batch_size * replicas)), replicas)
        if schedule.global_batch % placement.replicas:
            raise ConfigError(
                f"run '{run}' trains on global batches of {schedule.global_batch} events, which "
                f"{placement.replicas} replicas cannot share equally: resume on a number of replicas "
                f"(train.devices x workers) that divides {schedule.global_batch}"
            )
        return schedule

    def record(self) -> dict:
        """What state.json and environment.json keep of it."""
        return {"global_batch": self.global_batch, "learning_rate_replicas": self.replicas}

    def learning_rate(self, cfg: Config) -> float:
        return scaled_learning_rate(cfg.train.learning_rate, self.replicas, cfg.train.learning_rate_scaling)

    def drop_remainder(self, placement: Placement) -> bool:
        """A partial last batch is left out where either the run or this placement has several
        replicas (each needs an equal part; a run started on one keeps it while on one)."""
        return self.replicas > 1 or placement.replicas > 1


def _sources(
    data: Data, cfg: Config, placement: Placement, schedule: Schedule
) -> tuple[BatchSource, BatchSource | None]:
    """This worker's sources of the training and validation splits (None without validation).

    Each holds the run's global batches, of which this worker takes its rank's slice; on
    several replicas only full batches (each replica an equal part: a partial last batch is
    left out, a different one every epoch for the training split).
    """
    batch = schedule.global_batch
    shard, many = Shard(placement.rank, placement.workers), schedule.drop_remainder(placement)

    def of(split: str) -> BatchSource:
        source = data.source(split, batch_size=batch, shard=shard, drop_remainder=many)
        if len(source) == 0:
            raise DataError(
                f"the {split} split holds {source.n_events} events, fewer than one global batch of "
                f"{batch} (input.batch_size x {schedule.replicas} replicas): lower input.batch_size"
            )
        return source

    return of("train"), of("validation") if cfg.split.validation > 0 else None


def _fit(
    model,
    data: Data,
    cfg: Config,
    run: Path,
    placement: Placement,
    schedule: Schedule,
    *,
    initial_epoch: int,
    history: list,
    state: dict | None,
    extra: Sequence[keras.callbacks.Callback] = (),
    start_step: int = 0,
):
    source, val_source = _sources(data, cfg, placement, schedule)
    many = placement.replicas > 1
    steps = min(len(source), cfg.train.steps_per_epoch or len(source))
    train_stream = stream(source, cfg.input, stop=steps, copies=many)
    has_val = val_source is not None
    val_stream = stream(val_source, cfg.input, copies=many) if val_source is not None else None
    placement.prepare(model)
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
        keep=schedule.record(),
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
        lr0 = schedule.learning_rate(cfg)
        rate = cfg.train.decay_rate
        callbacks.append(keras.callbacks.LearningRateScheduler(lambda epoch, lr: lr0 * rate**epoch))
    if cfg.train.tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(run / "logs")))
    callbacks += list(extra)
    fit = {
        "validation_data": placement.feed(val_stream) if has_val else None,
        "callbacks": callbacks,
        # the stream shuffles by (seed, epoch) itself; Keras reshuffling the batch indices
        # would make the order hang on Python's random state, the same on every rank only by luck
        "shuffle": False,
        "verbose": cfg.train.verbose if placement.chief else 0,
    }
    try:
        if start_step:  # the rest of the interrupted epoch, then the later epochs whole
            keras.utils.set_random_seed(cfg.train.seed + initial_epoch)
            rest = stream(source, cfg.input, start=start_step, stop=steps, copies=many)
            model.fit(placement.feed(rest), epochs=initial_epoch + 1, initial_epoch=initial_epoch, **fit)
            initial_epoch += 1
        if initial_epoch < cfg.train.epochs and not (start_step and model.stop_training):
            keras.utils.set_random_seed(cfg.train.seed + initial_epoch)
            model.fit(
                placement.feed(train_stream), epochs=cfg.train.epochs, initial_epoch=initial_epoch, **fit
            )
    except Exception as err:
        if placement.workers > 1 and _collective_failure(err):
            raise placement.failure(err) from None
        raise
    save_model(model, run / "model_last.keras")
    if train_stream.source.dropped or (val_stream and val_stream.source.dropped):
        print(f"nudask.train: {train_stream.source.dropped} pixels beyond input.device_capacity were dropped")


def _collective_failure(err: BaseException) -> bool:
    """A TensorFlow error of a collective whose peer is gone (dead, hanging, unreachable)."""
    import tensorflow as tf

    e = tf.errors
    return isinstance(err, (e.UnavailableError, e.DeadlineExceededError, e.CancelledError, e.AbortedError))


@contextlib.contextmanager
def _scratch(placement: Placement) -> Iterator[Path]:
    """A worker's throw-away run folder: only the chief writes the real one."""
    path = Path(tempfile.mkdtemp(prefix=f"nudask-train-rank{placement.rank}-"))
    (path / "checkpoints").mkdir()
    (path / "plots").mkdir()
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _compiled(model, data: Data, cfg: Config, schedule: Schedule):
    lr = schedule.learning_rate(cfg)
    return compile_model(
        model, data.task, dataclasses.replace(cfg.train, learning_rate=lr), axial=cfg.task.axial
    )


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
    placement = place(cfg.train)  # before the backend starts: its devices, the other workers
    if cfg.train.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    data = load_data(cfg)
    schedule = Schedule.new(cfg, placement)
    with contextlib.ExitStack() as stack:
        run = new_run_dir(cfg, config_path) if placement.chief else stack.enter_context(_scratch(placement))
        cfg.data = data.path
        write_provenance(
            run, cfg, argv or ["nudask.train.train"], data.record(), placement.record() | schedule.record()
        )
        keras.utils.set_random_seed(cfg.train.seed)
        with placement.scope():
            model = build_model(
                cfg.model,
                data.task,
                data.preps,
                densify=cfg.input.densify,
                capacity=cfg.input.device_capacity,
            )
            _compiled(model, data, cfg, schedule)
        if cfg.report.samples > 0 and placement.chief:
            from .report import write_samples

            write_samples(run, data, cfg.report.samples)
        if cfg.train.verbose and placement.chief:
            print(f"nudask.train: run folder {run}\nnudask.train: {json.dumps(data.summary())}", flush=True)
            _say_placement(placement, schedule)
        _fit(
            model,
            data,
            cfg,
            run,
            placement,
            schedule,
            initial_epoch=0,
            history=[],
            state=None,
            extra=callbacks,
        )
        return _finish(run, data, evaluate and placement.chief, cfg.train.verbose)


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
    placement = place(cfg.train)
    state = load_state(run)
    data = load_data(cfg)
    recorded = json.loads((run / "dataset.json").read_text())["manifest_sha256"]
    if recorded != data.checksum:
        raise DataError(
            f"dataset '{data.path}' changed since the run started (manifest checksum "
            f"{data.checksum[:12]} != {recorded[:12]}): start a new run"
        )
    schedule = Schedule.of_run(run, state, cfg, placement)
    done, step = int(state["epoch"]), int(state.get("step", 0))
    if done >= cfg.train.epochs:
        if placement.chief:
            write_provenance(
                run,
                cfg,
                argv or ["nudask.train.resume", str(run)],
                data.record(),
                placement.record() | schedule.record(),
            )
            print(f"nudask.train: {run} finished all {cfg.train.epochs} epochs; nothing to train")
        evaluate = evaluate and placement.chief and not (run / "metrics.json").exists()
        return _finish(run, data, evaluate, cfg.train.verbose)
    from . import models  # noqa: F401  (custom layers)

    with contextlib.ExitStack() as stack:
        out = run if placement.chief else stack.enter_context(_scratch(placement))
        argv = argv or ["nudask.train.resume", str(run)]
        write_provenance(out, cfg, argv, data.record(), placement.record() | schedule.record())
        with placement.scope():
            model = keras.models.load_model(run / "checkpoints" / state["checkpoint"])
        if placement.chief:
            trim_trace(run, done, step)  # steps traced after the checkpoint are trained again
            for cut in (run / "checkpoints").glob(".tmp-*"):  # a save the kill interrupted
                cut.unlink()
        if cfg.train.verbose and placement.chief:
            where = f", step {step} of epoch {done + 1}" if step else ""
            print(f"nudask.train: resuming {run} after epoch {done} of {cfg.train.epochs}{where}", flush=True)
            _say_placement(placement, schedule)
        _fit(
            model,
            data,
            cfg,
            out,
            placement,
            schedule,
            initial_epoch=done,
            history=load_history(run, done),
            state=state,
            extra=callbacks,
            start_step=step,
        )
        return _finish(run, data, evaluate and placement.chief, cfg.train.verbose)


def _say_placement(placement: Placement, schedule: Schedule) -> None:
    if placement.replicas > 1 or schedule.replicas > 1:
        print(
            f"nudask.train: {placement.replicas} replicas: {placement.workers} worker(s) x "
            f"{len(placement.devices)} device(s) ({', '.join(placement.devices)}); global batch "
            f"{schedule.global_batch}, {schedule.global_batch // placement.replicas} per replica",
            flush=True,
        )
