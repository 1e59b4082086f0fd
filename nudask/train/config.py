"""Training configuration: typed sections with defaults, YAML/JSON files, ``key=value`` overrides.

Every value has a default here; a job file sets some of them and the command
line (``--set section.key=value``) any of them. Unknown keys and values of the
wrong type or outside their choices are refused with the list of what is known.
``nudask.train`` documents the keys in TRAINING.md (generated from the same
``help`` texts by :func:`reference`).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from .. import selection
from ..errors import ConfigError
from ..options import parse_key_value
from .prepare import AUGMENTATIONS


def doc(help: str, choices: tuple | None = None) -> dict:
    """Field metadata: what the key means and, for enumerations, its allowed values."""
    return {"help": help, "choices": choices}


@dataclass
class Task:
    target: str = field(
        default="nue_cc",
        metadata=doc(
            "what to learn: a label role of the dataset's reader (flavour, mode, cc, ...: its "
            "classes), LABEL:CLASS (that class vs the rest; nue_cc and numu_cc are short for "
            "flavour:nue_cc, flavour:numu_cc), energy or lepton_fraction (regression), or a "
            "vector role such as direction (a unit vector, cosine loss)",
        ),
    )
    select: str | None = field(
        default=None,
        metadata=doc(
            "events kept: a condition on the metadata columns, e.g. 'nu_energy > 0.5 and is_cc == 1' "
            "(grammar: TRAINING.md; null: all)"
        ),
    )
    energy_top_fraction: float | None = field(
        default=None,
        metadata=doc(
            "keep this most energetic fraction (true neutrino energy) of the events of energy_top_classes"
        ),
    )
    energy_top_classes: list[int] | None = field(
        default=None, metadata=doc("classes the energy cut applies to (null: all)")
    )
    axial: bool = field(
        default=False,
        metadata=doc(
            "vector targets: the sign is ambiguous (head-tail): loss 1 - |cos|, angles folded to [0, 90]"
        ),
    )
    labels: str | None = field(
        default=None,
        metadata=doc(
            "a Parquet table of class labels keyed by event id (run, subrun, event) with a "
            "consensus column, e.g. from nudask label --export: its labels replace the label "
            "role it names (task.target names it); events it does not label are left out (null: the truth)"
        ),
    )
    max_samples: int | None = field(
        default=None, metadata=doc("use at most this many of the selected events (null: all)")
    )
    balance: str = field(
        default="none",
        metadata=doc(
            "training-set balancing: none, undersample, oversample (redrawn every "
            "epoch) or class_weights (sample weights)",
            ("none", "undersample", "oversample", "class_weights"),
        ),
    )


@dataclass
class Split:
    test: float = field(default=0.25, metadata=doc("fraction of all events in the test set"))
    validation: float = field(
        default=0.1, metadata=doc("fraction of the non-test events carved out for validation")
    )
    seed: int = field(default=0, metadata=doc("salt of the (run, subrun, event) hash"))


@dataclass
class Input:
    views: list[str] | None = field(
        default=None, metadata=doc("views to use, one model branch each (null: all)")
    )
    crop: str = field(
        default="none",
        metadata=doc(
            "crop window: none, fixed (at crop_origin), vertex (centred on the "
            "true vertex), centroid (centred on the charge) or centre (each event's image "
            "centred in the window: padded when smaller, its centre cut out when larger)",
            ("none", "fixed", "vertex", "centroid", "centre"),
        ),
    )
    crop_size: list[int] | None = field(
        default=None, metadata=doc("window [rows, cols] in stored pixels (null: whole view)")
    )
    crop_origin: list[int] = field(
        default_factory=lambda: [0, 0], metadata=doc("fixed crop: [row, col] of the window's corner")
    )
    downsample: list[int] = field(
        default_factory=lambda: [1, 1], metadata=doc("sum blocks of [rows, cols] pixels (an int for both)")
    )
    scale: str = field(
        default="linear",
        metadata=doc("value scaling: linear (v * factor) or log (log1p(v) * factor)", ("linear", "log")),
    )
    scale_factor: float | None = field(
        default=None, metadata=doc("factor (null: 1/vmax of the view, 1/255 for 8-bit maps)")
    )
    flip_probability: float = field(
        default=0.0,
        metadata=doc("augmentation: mirror each training image along each axis with this probability"),
    )
    augment_repeat: int = field(
        default=1, metadata=doc("augmentation multiplier: each training event this many times an epoch")
    )
    augment: list[str] | None = field(
        default=None,
        metadata=doc(
            "training-batch augmentation, drawn per event (same draw for every view): flip_rows, "
            "flip_cols (each flips half of the events), rot90 (turns by 0/90/180/270 degrees; "
            "square inputs); null: none"
        ),
    )
    batch_size: int = field(default=32, metadata=doc("events per batch"))
    buffer_events: int = field(
        default=256, metadata=doc("shuffle buffer in events: bounds the stream's memory")
    )
    workers: int = field(
        default=2, metadata=doc("threads preparing batches (or processes, with use_multiprocessing)")
    )
    use_multiprocessing: bool = field(
        default=False, metadata=doc("prepare batches in processes instead of threads")
    )
    max_queue_size: int = field(default=4, metadata=doc("batches prepared ahead"))
    densify: str = field(
        default="host",
        metadata=doc(
            "host: dense batches made in numpy; device: COO shipped to the model and densified by a layer",
            ("host", "device"),
        ),
    )
    device_capacity: int = field(
        default=16384, metadata=doc("densify=device: non-zero pixels kept per image and view")
    )


@dataclass
class Model:
    name: str = field(
        default="small_cnn",
        metadata=doc(
            "small_cnn (the seeds' two conv + max-pool blocks), resnet, resnet18 (resnet with "
            "stages [2, 2, 2, 2]; width 64 is the original ResNet-18), or a feature model on "
            "metadata columns (features.columns): random_forest (scikit-learn) or xgboost",
            ("small_cnn", "resnet", "resnet18", "random_forest", "xgboost"),
        ),
    )
    filters: list[int] = field(
        default_factory=lambda: [16, 32], metadata=doc("small_cnn: filters of each conv block")
    )
    kernel_size: int = field(default=3, metadata=doc("convolution kernel size"))
    pool: list[int] = field(
        default_factory=lambda: [2, 2], metadata=doc("small_cnn: max-pool size after each conv block")
    )
    dense: int = field(default=64, metadata=doc("units of the dense layer before the output"))
    dropout: float = field(default=0.3, metadata=doc("dropout rate"))
    head: str = field(
        default="flatten",
        metadata=doc("how a branch ends: flatten or global (average pooling)", ("flatten", "global")),
    )
    stages: list[int] = field(
        default_factory=lambda: [1, 1, 1],
        metadata=doc("resnet: residual blocks per stage (each stage halves the size)"),
    )
    width: int = field(default=16, metadata=doc("resnet: filters of the first stage (doubled every stage)"))
    batchnorm_momentum: float = field(
        default=0.99,
        metadata=doc("resnet, resnet18: momentum of the batch-norm running statistics (lower for few steps)"),
    )


@dataclass
class Features:
    columns: list[str] | None = field(
        default=None,
        metadata=doc(
            "feature models: the metadata columns they learn from (null: every numeric metadata "
            "column but the event identity and the label and energy role columns)"
        ),
    )
    folds: int = field(default=5, metadata=doc("feature models: stratified k-fold cross-validation folds"))
    grid: dict[str, list] | None = field(
        default=None,
        metadata=doc(
            "feature models: the grid searched, parameter -> values, e.g. {max_depth: [3, 6]} "
            "(estimator parameters of scikit-learn / xgboost; null: the defaults only)"
        ),
    )
    scoring: str = field(
        default="accuracy", metadata=doc("feature models: the grid search's scikit-learn score")
    )
    scheduler: str | None = field(
        default=None,
        metadata=doc(
            "feature models: Dask scheduler address the grid-search fits run on (joblib's Dask "
            "backend); null: a local cluster of this machine's cores"
        ),
    )


@dataclass
class Train:
    epochs: int = field(default=10, metadata=doc("epochs to train"))
    learning_rate: float = field(default=1e-3, metadata=doc("optimizer learning rate"))
    decay_rate: float | None = field(
        default=None, metadata=doc("learning rate times this every epoch (null: constant)")
    )
    optimizer: str = field(default="adam", metadata=doc("adam, sgd or rmsprop", ("adam", "sgd", "rmsprop")))
    loss: str | None = field(default=None, metadata=doc("Keras loss name (null: from the task)"))
    seed: int = field(default=0, metadata=doc("seed of weights, dropout and the data order"))
    early_stopping: int | None = field(
        default=None, metadata=doc("stop after this many epochs without improvement")
    )
    restore_best_weights: bool = field(
        default=False, metadata=doc("early stopping: end with the best epoch's weights (model_last too)")
    )
    monitor: str | None = field(
        default=None, metadata=doc("metric picking the best model (null: val_loss, else loss)")
    )
    steps_per_epoch: int | None = field(
        default=None, metadata=doc("cap on training batches per epoch (each epoch starts at its first)")
    )
    checkpoint_every_steps: int = field(
        default=500,
        metadata=doc(
            "also checkpoint model, optimizer and position every this many steps of an epoch: "
            "--resume continues from that step (0: at epoch ends only)"
        ),
    )
    trace_batches: bool = field(
        default=False,
        metadata=doc(
            "write the dataset rows of every trained batch to batches.jsonl in the run folder "
            "(epoch, step, rows: to check the order a run and its resumes trained in)"
        ),
    )
    mixed_precision: bool = field(default=False, metadata=doc("float16 compute (GPUs)"))
    tensorboard: bool = field(default=False, metadata=doc("write TensorBoard logs into the run folder"))
    verbose: int = field(
        default=1, metadata=doc("Keras progress output: 0 silent, 1 progress bar, 2 one line per epoch")
    )


@dataclass
class Report:
    event_displays: int = field(default=6, metadata=doc("test events drawn with their prediction"))
    energy_bins: int = field(default=8, metadata=doc("bins of true energy in the performance plots"))
    samples: int = field(
        default=0, metadata=doc("training images written to samples/sample_N.png before training")
    )


@dataclass
class Output:
    runs: str = field(default="runs", metadata=doc("folder holding the run folders"))
    name: str | None = field(default=None, metadata=doc("run name (null: the config file's name)"))


@dataclass
class Config:
    data: str | None = field(default=None, metadata=doc("dataset folder written by nudask preprocess"))
    task: Task = field(default_factory=Task)
    split: Split = field(default_factory=Split)
    input: Input = field(default_factory=Input)
    model: Model = field(default_factory=Model)
    features: Features = field(default_factory=Features)
    train: Train = field(default_factory=Train)
    report: Report = field(default_factory=Report)
    output: Output = field(default_factory=Output)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _hints(cls) -> dict:
    return typing.get_type_hints(cls)


def _coerce(value, tp, key: str):
    """``value`` as type ``tp`` (int, float, str, bool, list[...] or Optional of them)."""
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return None if value is None else _coerce(value, args[0], key)
    if value is None:
        raise ConfigError(f"{key}: a value is required (null is not allowed)")
    if typing.get_origin(tp) is dict:  # a parameter grid: names -> lists of plain values
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping of name: [values], got {value!r}")
        out = {}
        for name, values in value.items():
            values = values if isinstance(values, list) else [values]
            if not all(v is None or isinstance(v, (bool, int, float, str)) for v in values):
                raise ConfigError(
                    f"{key}.{name}: expected a list of numbers, strings or null, got {values!r}"
                )
            out[str(name)] = values
        return out
    if typing.get_origin(tp) is list:
        (item,) = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            if item is int and isinstance(value, (int, str)) and key.endswith("downsample"):
                value = [value, value]
            else:
                raise ConfigError(f"{key}: expected a list, got {value!r}")
        return [_coerce(v, item, key) for v in value]
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    try:
        if tp is int:
            if isinstance(value, bool) or float(value) != int(float(value)):
                raise ValueError
            return int(float(value))
        if tp is float and not isinstance(value, bool):
            return float(value)
        if tp is str and isinstance(value, (str, int, float)):
            return str(value)
    except (TypeError, ValueError):
        pass
    raise ConfigError(f"{key}: expected {getattr(tp, '__name__', tp)}, got {value!r}")


def _unknown(key: str, known) -> ConfigError:
    close = difflib.get_close_matches(key.split(".")[-1], list(known), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return ConfigError(f"unknown config key '{key}'{hint}; known keys here: {', '.join(known)}")


def _build(cls, values: dict, prefix: str = ""):
    if not isinstance(values, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a mapping, got {values!r}")
    hints = _hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        if key not in fields:
            raise _unknown(prefix + str(key), list(fields))
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            kwargs[key] = _build(tp, value or {}, f"{prefix}{key}.")
            continue
        value = _coerce(value, tp, prefix + key)
        choices = fields[key].metadata.get("choices")
        if choices and value not in choices:
            raise ConfigError(f"{prefix}{key}: {value!r} is not one of {', '.join(choices)}")
        kwargs[key] = value
    return cls(**kwargs)


def _check(cfg: Config) -> Config:
    s, i = cfg.split, cfg.input
    if not 0 < s.test < 1 or not 0 <= s.validation < 1:
        raise ConfigError(
            f"split: test must be in (0, 1) and validation in [0, 1), "
            f"got test={s.test}, validation={s.validation}"
        )
    for key in ("batch_size", "buffer_events", "max_queue_size", "device_capacity"):
        if getattr(i, key) < 1:
            raise ConfigError(f"input.{key} must be >= 1, got {getattr(i, key)}")
    if i.workers < 0:
        raise ConfigError(f"input.workers must be >= 0, got {i.workers}")
    for key, n in (("crop_size", 2), ("crop_origin", 2), ("downsample", 2)):
        v = getattr(i, key)
        if v is not None and (len(v) != n or min(v) < (0 if key == "crop_origin" else 1)):
            raise ConfigError(f"input.{key} must be [rows, cols] of positive integers, got {v}")
    if i.crop != "none" and i.crop_size is None:
        raise ConfigError(f"input.crop: {i.crop} needs input.crop_size: [rows, cols]")
    if not 0 <= i.flip_probability <= 1 or i.augment_repeat < 1:
        raise ConfigError(
            f"input.flip_probability must be in [0, 1] and input.augment_repeat >= 1, "
            f"got {i.flip_probability} and {i.augment_repeat}"
        )
    if cfg.train.decay_rate is not None and not 0 < cfg.train.decay_rate <= 1:
        raise ConfigError(f"train.decay_rate must be in (0, 1], got {cfg.train.decay_rate}")
    if cfg.task.max_samples is not None and cfg.task.max_samples < 1:
        raise ConfigError(f"task.max_samples must be >= 1, got {cfg.task.max_samples}")
    bad = [a for a in i.augment or () if a not in AUGMENTATIONS]
    if bad:
        raise ConfigError(f"input.augment: {bad} unknown; choose from {', '.join(AUGMENTATIONS)}")
    if cfg.task.select:  # syntax and literals now; the column names once the dataset is open
        selection.parse(cfg.task.select)
    f = cfg.task.energy_top_fraction
    if f is not None and not 0 < f <= 1:
        raise ConfigError(f"task.energy_top_fraction must be in (0, 1], got {f}")
    if not 0 <= cfg.model.dropout < 1:
        raise ConfigError(f"model.dropout must be in [0, 1), got {cfg.model.dropout}")
    if cfg.features.folds < 2:
        raise ConfigError(f"features.folds must be >= 2, got {cfg.features.folds}")
    if cfg.train.checkpoint_every_steps < 0:
        raise ConfigError(
            f"train.checkpoint_every_steps must be >= 0 (0: at epoch ends only), "
            f"got {cfg.train.checkpoint_every_steps}"
        )
    if cfg.train.epochs < 1 or cfg.train.learning_rate <= 0:
        raise ConfigError("train.epochs must be >= 1 and train.learning_rate > 0")
    if cfg.model.name == "small_cnn" and len(cfg.model.pool) != len(cfg.model.filters):
        raise ConfigError(
            f"model.pool needs one size per conv block: {len(cfg.model.filters)} "
            f"filters, {len(cfg.model.pool)} pool sizes"
        )
    return cfg


def _yaml_problem(err: yaml.YAMLError) -> tuple[str, Any]:
    """The one-line problem of a YAML error and its mark (0-based line and column), if any."""
    problem = getattr(err, "problem", None) or (str(err).splitlines() or ["invalid YAML"])[0]
    context = getattr(err, "context", None)
    if context:
        problem = f"{problem} ({context})"
    return " ".join(problem.split()), getattr(err, "problem_mark", None)


def load_file(path: str | os.PathLike) -> dict:
    """The mapping in a YAML or JSON job file; any problem is a one-line :class:`ConfigError`."""
    if os.path.isdir(path):
        raise ConfigError(f"config file '{path}' is a folder; pass a YAML or JSON job file")
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise ConfigError(f"config file '{path}' does not exist") from None
    except UnicodeDecodeError as err:
        raise ConfigError(
            f"config file '{path}' is not UTF-8 text (byte {err.start}); is it a job file?"
        ) from None
    except OSError as err:
        raise ConfigError(f"config file '{path}' cannot be read: {err.strerror or err}") from None
    try:
        data = json.loads(text) if str(path).endswith(".json") else yaml.safe_load(text)
    except json.JSONDecodeError as err:
        raise ConfigError(f"config file '{path}', line {err.lineno}: {err.msg} (invalid JSON)") from None
    except yaml.YAMLError as err:
        problem, mark = _yaml_problem(err)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ConfigError(f"config file '{path}'{where}: {problem} (invalid YAML)") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file '{path}' must hold a mapping of sections, got {type(data).__name__}")
    return data


def parse_override(text: str) -> tuple[str, object]:
    """``section.key=value`` of ``--set`` -> (key, value); the value is read as YAML.

    >>> parse_override("input.crop_size=[64, 64]")
    ('input.crop_size', [64, 64])
    """
    return parse_key_value(text, argument="--set", form="section.key=value")


def apply_overrides(values: dict, overrides: list[tuple[str, object]]) -> dict:
    out = json.loads(json.dumps(values))  # a deep copy of plain data
    for key, value in overrides:
        parts = key.split(".")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"cannot set '{key}': '{part}' is not a section")
        node[parts[-1]] = value
    return out


def make_config(values: dict | None = None, overrides: Sequence[tuple[str, object]] = ()) -> Config:
    """A checked :class:`Config` from a mapping plus ``(key, value)`` overrides."""
    return _check(_build(Config, apply_overrides(values or {}, list(overrides))))


def load(path: str | os.PathLike | None = None, overrides: Sequence[tuple[str, object]] = ()) -> Config:
    """Defaults, then the job file at ``path`` (YAML or JSON), then the overrides."""
    values = load_file(path) if path else {}
    try:
        return make_config(values, overrides)
    except ConfigError as err:
        if not path:
            raise
        raise ConfigError(f"{err} (config file '{path}')") from None


def dump(cfg: Config) -> str:
    """The resolved configuration as YAML (what a run folder keeps)."""
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)


def reference() -> str:
    """A Markdown table of every key, its default and its meaning."""
    rows = ["| key | default | meaning |", "| --- | --- | --- |"]
    for f in dataclasses.fields(Config):
        tp = _hints(Config)[f.name]
        subs = dataclasses.fields(tp) if dataclasses.is_dataclass(tp) else [f]
        for g in subs:
            key = f"{f.name}.{g.name}" if dataclasses.is_dataclass(tp) else g.name
            default = g.default_factory() if g.default_factory is not dataclasses.MISSING else g.default
            rows.append(f"| `{key}` | `{json.dumps(default)}` | {g.metadata['help']} |")
    return "\n".join(rows)
