"""A dataset made ready for training: checked, labelled, selected, split; batch sources per split.

Only the metadata columns are read up front (a few numbers per event); the
images are streamed by :class:`~nudask.train.stream.BatchSource`.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow.dataset as pads

from .. import selection
from ..dataset import open_dataset
from ..dataset.manifest import MANIFEST
from ..errors import DataError
from ..records import Manifest
from ..schema import READABLE_VERSIONS, coo_columns, coord_columns, image_columns, schema_info, value_columns
from . import labels as task_labels
from . import split as splits
from . import targets
from .balance import class_counts, class_weights
from .config import Config, ConfigError
from .prepare import ViewPrep, default_factor
from .shard import WHOLE, Shard
from .stream import BatchSource, Layout


def manifest_sha256(path: str) -> str:
    with open(os.path.join(path, MANIFEST), "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


@dataclass
class Data:
    """Everything known about the events before any image is read."""

    path: str
    cfg: Config
    fmt: str
    task: targets.Task
    meta: pd.DataFrame
    truth: pd.DataFrame
    y: np.ndarray
    keep: np.ndarray
    split: np.ndarray
    layout: Layout
    preps: dict[str, ViewPrep]
    columns: dict[str, list[str]]
    centres: dict[str, np.ndarray] = field(default_factory=dict)
    views: dict = field(default_factory=dict)
    manifest: Manifest | None = None
    checksum: str = ""

    def rows(self, name: str) -> np.ndarray:
        """Global rows of the selected events of split ``name``, in storage order."""
        return np.flatnonzero(self.keep & (self.split == splits.code(name)))

    def source(
        self,
        name: str,
        *,
        shuffle: bool | None = None,
        densify: str | None = None,
        batch_size: int | None = None,
        shard: Shard = WHOLE,
        drop_remainder: bool = False,
    ) -> BatchSource:
        """The batches of split ``name``; ``shard``: one rank's part of each global batch."""
        i, train = self.cfg.input, name == "train"
        weights = None
        if train and self.cfg.task.balance == "class_weights":
            cw = class_weights(self.y[self.rows("train")].astype(np.int64), self.task.n_classes)
            weights = np.where(self.y >= 0, cw[np.clip(self.y, 0, None).astype(np.int64)], 0.0)
        return BatchSource(
            self.layout,
            self.rows(name),
            self.preps,
            self.columns,
            self.y,
            batch_size=batch_size or i.batch_size,
            buffer_events=i.buffer_events,
            shuffle=train if shuffle is None else shuffle,
            seed=self.cfg.train.seed,
            balance=self.cfg.task.balance if train else "none",
            weights=weights,
            centres=self.centres,
            densify=densify or i.densify,
            capacity=i.device_capacity,
            prefetch=i.max_queue_size + i.workers,
            y_dtype=np.int32 if self.task.kind == "classes" else np.float32,
            flip_probability=i.flip_probability if train else 0.0,
            repeat=i.augment_repeat if train else 1,
            augment=tuple(i.augment or ()) if train else (),
            shard=shard,
            drop_remainder=drop_remainder,
        )

    def record(self) -> dict:
        """What a run folder records of its data (dataset.json)."""
        return {
            "path": self.path,
            "manifest_sha256": self.checksum,
            "format": self.fmt,
            "reader": self.manifest.reader if self.manifest else None,
            "reader_options": self.manifest.reader_options if self.manifest else None,
            "schema_version": self.manifest.schema_version if self.manifest else None,
            "nudask_version": self.manifest.nudask_version if self.manifest else None,
            "files": len(self.layout.files),
            "task": {"name": self.task.name, "kind": self.task.kind, "classes": list(self.task.classes)},
            "views": {
                v: {
                    "input_shape": list(p.out_shape),
                    "window": list(p.window),
                    "crop": p.crop,
                    "downsample": list(p.down),
                    "scale": p.scale,
                    "factor": p.factor,
                }
                for v, p in self.preps.items()
            },
            "split": self.summary(),
        }

    def summary(self) -> dict:
        """Events per split (and per class), for the run folder and the report."""
        out: dict = {"events": int(self.layout.n_rows), "selected": int(self.keep.sum())}
        for name in splits.NAMES:
            rows = self.rows(name)
            entry: dict = {"events": int(rows.size)}
            if not self.task.numeric:
                counts = class_counts(self.y[rows].astype(np.int64), self.task.n_classes)
                entry["classes"] = dict(zip(self.task.classes, counts.tolist()))
            out[name] = entry
        return out


def stream_columns(view) -> list[str]:
    """The list columns the stream reads for ``view``: COO coordinates as stored (runs or
    pairs) and first channel, or a dense view's first channel (every pixel; its
    ``{view}_shape`` is read beside it)."""
    if view.kind == "dense":
        return value_columns(view)[:1]
    return coo_columns(view)[: len(coord_columns(view)) + 1]


def _check_schema(layout: Layout, path: str, needed: list[str]) -> None:
    for file, md in zip(layout.files, layout.metadata):
        schema = md.schema.to_arrow_schema()
        version = schema_info(schema).get("schema_version")
        if version not in READABLE_VERSIONS:
            raise DataError(
                f"'{file}' has schema version {version}; this nudask reads versions "
                f"{list(READABLE_VERSIONS)}: preprocess the inputs again with this nudask"
            )
        missing = [c for c in needed if c not in schema.names]
        if missing:
            raise DataError(
                f"'{file}' in dataset '{path}' lacks the columns {missing} that training "
                f"needs: preprocess the inputs again (or pick other views / targets)"
            )


def _preps(cfg: Config, views: dict, info: dict) -> dict[str, ViewPrep]:
    i = cfg.input
    names = i.views or list(views)
    unknown = [v for v in names if v not in views]
    if unknown:
        raise ConfigError(f"input.views: {unknown} not in the dataset; its views are {list(views)}")
    out = {}
    for name in names:
        spec = views[name]
        if len(spec.shape) != 2:
            raise DataError(f"view '{name}' has {len(spec.shape)} axes; training takes 2-D views")
        if spec.kind == "dense" and i.densify == "device":
            raise ConfigError(
                f"input.densify: device ships COO pixels to the model; view '{name}' is stored "
                "dense: use densify: host"
            )
        scale = info.get("views", {}).get(name, {}).get("scale")
        rows, cols = spec.shape
        window = (
            (int(i.crop_size[0]), int(i.crop_size[1])) if i.crop != "none" and i.crop_size else (rows, cols)
        )
        factor = (
            i.scale_factor if i.scale_factor is not None else default_factor(i.scale, spec.vmax, spec.dtype)
        )
        out[name] = ViewPrep(
            name,
            (rows, cols),
            window,
            i.crop,
            (int(i.crop_origin[0]), int(i.crop_origin[1])),
            (int(i.downsample[0]), int(i.downsample[1])),
            i.scale,
            float(factor),
            scale,
            spec.kind == "dense",
        )
    if i.augment and i.densify == "device":
        raise ConfigError("input.augment flips and turns dense batches: use densify: host")
    if i.augment and "rot90" in i.augment:
        odd = {v: p.out_shape for v, p in out.items() if p.out_shape[0] != p.out_shape[1]}
        if odd:
            raise ConfigError(
                f"input.augment: rot90 needs square inputs, got {odd}: set input.crop_size: [n, n]"
            )
    if i.densify == "device" and i.scale == "log" and tuple(i.downsample) != (1, 1):
        raise ConfigError(
            "input.densify: device sums downsampled pixels on the device, after "
            "scaling: use scale: linear with downsampling there, or densify: host"
        )
    return out


def _check_classes(data: Data) -> None:
    task = data.task
    if not data.keep.any():
        raise DataError(
            f"the selection keeps none of the {data.layout.n_rows} events "
            f"(task.select={data.cfg.task.select!r}, task.energy_top_fraction="
            f"{data.cfg.task.energy_top_fraction}): loosen it"
        )
    for name in ("train", "test"):
        rows = data.rows(name)
        if rows.size == 0:
            raise DataError(
                f"the {name} split is empty ({int(data.keep.sum())} of {data.layout.n_rows} events "
                f"selected; split.test={data.cfg.split.test}): use more events or loosen task.select"
            )
        if task.numeric:
            continue
        counts = class_counts(data.y[rows].astype(np.int64), task.n_classes)
        empty = [c for c, n in zip(task.classes, counts) if n == 0]
        if (task.kind == "binary" and empty) or (counts > 0).sum() < 2:
            raise DataError(
                f"class {empty} has no events in the {name} split after selection "
                f"({dict(zip(task.classes, counts.tolist()))}): check task.select, "
                f"task.energy_top_fraction and that the dataset holds both kinds of events"
            )
    if data.cfg.split.validation > 0 and data.rows("validation").size == 0:
        raise DataError(
            "the validation split is empty: use more events, or split.validation: 0 "
            "to train without validation"
        )


def _cap(keep: np.ndarray, n: int | None, seed: int) -> np.ndarray:
    """At most ``n`` of the kept events (``task.max_samples``), drawn with the split's seed."""
    rows = np.flatnonzero(keep)
    if n is None or rows.size <= n:
        return keep
    out = np.zeros_like(keep)
    out[np.random.default_rng([seed, 7]).choice(rows, n, replace=False)] = True
    return out


def _image_centres(files: list[str], preps: dict[str, ViewPrep], cfg: Config) -> dict[str, np.ndarray]:
    """Each image's own centre (``input.crop: centre``); refuses views of mixed sizes without a crop."""
    out = {}
    for v in preps:
        shapes = np.stack(
            pads.dataset(files, format="parquet").to_table(columns=[f"{v}_shape"]).column(0).to_pylist()
        )
        sizes = np.unique(shapes, axis=0)
        if cfg.input.crop == "none" and len(sizes) > 1:
            listed = ", ".join("x".join(map(str, s)) for s in sizes)
            raise ConfigError(
                f"view '{v}' holds images of several sizes ({listed}): name one with input.crop: centre "
                f"and input.crop_size: [rows, cols] (each image padded or cropped about its centre)"
            )
        if cfg.input.crop == "centre":
            out[v] = shapes.astype(np.float64) / 2
    return out


def load_data(cfg: Config, path: str | None = None, *, images: bool = True) -> Data:
    """Open, check and label the dataset of ``cfg`` (or ``path``); ``images=False``: none streamed."""
    path = path or cfg.data
    if not path:
        raise ConfigError("no dataset: pass --data PATH or set data: in the config")
    try:
        ds = open_dataset(path)
    except FileNotFoundError as err:
        raise DataError(str(err)) from None
    except ValueError as err:
        raise DataError(str(err)) from None
    if not ds.files:
        raise DataError(f"dataset '{path}' holds no files")
    layout = Layout.of(ds.files)
    roles = ds.roles
    hand_labels = None
    if cfg.task.labels:
        roles, hand_labels = task_labels.read_labels(cfg.task.labels, roles)
    preps = _preps(cfg, ds.views, ds.info)
    columns = {v: stream_columns(ds.views[v]) for v in preps}
    task = targets.make_task(cfg.task.target, roles)
    needed_meta = [
        c for c in targets.required_columns(task, roles, cfg.input.crop) if c != task_labels.COLUMN
    ]
    shapes = [f"{v}_shape" for v, p in preps.items() if p.dense or p.crop == "centre"]
    _check_schema(layout, path, needed_meta + [c for v in preps for c in columns[v]] + shapes)
    image_cols = image_columns(ds.views)
    read = [c for c in ds.schema.names if c not in image_cols and c != "source_file"]  # small: no images
    if cfg.task.select:  # an unknown column fails before the metadata is read
        selection.parse(cfg.task.select, [*read, *(c for c in targets.TRUTH_COLUMNS if c not in read)])
    meta = pads.dataset(ds.files, format="parquet").to_table(columns=read).to_pandas()
    if len(meta) != layout.n_rows:
        raise DataError(f"dataset '{path}': metadata has {len(meta)} rows, files {layout.n_rows}")
    if hand_labels is not None:
        meta = task_labels.join(meta, hand_labels, roles.identity)
    truth = targets.truth(meta, roles)
    y = targets.labels(truth, task)
    keep = targets.select(
        meta,
        truth,
        y,
        task,
        query=cfg.task.select,
        top_fraction=cfg.task.energy_top_fraction,
        top_classes=cfg.task.energy_top_classes,
    )
    if task.numeric and cfg.task.balance != "none":
        raise ConfigError(f"task.balance: {cfg.task.balance} needs a classification target, not {task.name}")
    code = splits.assign(
        meta["run"],
        meta["subrun"],
        meta["event"],
        test=cfg.split.test,
        validation=cfg.split.validation,
        seed=cfg.split.seed,
    )
    keep = _cap(keep, cfg.task.max_samples, cfg.split.seed)
    if cfg.input.crop == "vertex":
        centres = {v: roles.centres[v].pixels(meta) for v in preps}
    elif images:  # a caller that streams no images (feature models) needs no window
        centres = _image_centres(ds.files, preps, cfg)
    else:
        centres = {}
    if task.kind == "vector" and cfg.input.flip_probability > 0:
        raise ConfigError(
            f"input.flip_probability: a flip mirrors the image but not the vector target "
            f"'{task.name}'; use flips for classification and regression targets only"
        )
    data = Data(
        os.path.abspath(path),
        cfg,
        ds.manifest.reader,
        task,
        meta,
        truth,
        y,
        keep,
        code,
        layout,
        preps,
        columns,
        centres,
        {v: ds.views[v] for v in preps},
        ds.manifest,
        manifest_sha256(path),
    )
    _check_classes(data)
    return data
