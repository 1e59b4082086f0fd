"""The per-voxel Michel classifier: a point network on the sparse voxels (keras.ops only).

Why points and not 2-D projections: a Michel electron is a few tens of voxels at the end of a
muon; projected onto a plane it overlaps the other tracks, and mapping per-pixel predictions
back to voxels loses exactly the voxels that matter. A point network sees each voxel with its
3-D neighbourhood and is never dense (a 768^3 grid is 1.8 GB per image in float32).

The network (DGCNN-like): per-voxel features (log1p energy and, with ``model.geometry``, the
host-computed cluster and shape features of :mod:`nudask.michel.features`), then EdgeConv layers: for each
voxel, a shared MLP over its k neighbours' ``[h_i, h_j - h_i, x_j - x_i]``, max over the
neighbours. The first layer uses the 16 nearest voxels, the next ones every 3rd of the
48 nearest (a wider view along the track); a masked max over the whole set adds the image's
context; a per-voxel head gives the 5 classes. Neighbours are found on the host
(:mod:`nudask.train.points`); the model only gathers.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import numpy as np
import yaml

from ..cluster import keep_to_worker_threads
from ..errors import ConfigError, NotFoundError
from ..train.points import PointSet, PointSetBatches, set_inputs
from . import CLASSES, MICHEL
from .features import NAMES as GEOMETRY
from .features import voxel_features

DEFAULTS: dict[str, Any] = {
    "points": {
        "view": "voxels",
        "features": ["energy"],
        "target": "label",
        "max_points": 6144,
        "neighbours": [16, 16],
        "dilation": [1, 3],
        "batch_size": 2,
        "class_weights": [1.0, 1.0, 4.0, 2.0, 2.0],
    },
    "model": {"width": 32, "geometry": True},
    "train": {"epochs": 3, "learning_rate": 0.003, "validation": 0.2, "seed": 0, "max_images": 0},
}


def load_config(path: str | os.PathLike) -> dict[str, Any]:
    with open(path) as f:
        values = yaml.safe_load(f) or {}
    cfg = {k: dict(v) for k, v in DEFAULTS.items()}
    for section, body in values.items():
        if section not in cfg or not isinstance(body, dict):
            raise ConfigError(f"{path}: unknown section '{section}'; sections: {', '.join(cfg)}")
        unknown = sorted(set(body) - set(cfg[section])) if section != "points" else []
        if unknown:
            raise ConfigError(
                f"{path}: {section}: unknown key(s) {unknown}; known: {', '.join(cfg[section])}"
            )
        cfg[section].update(body)
    PointSet.from_dict(cfg["points"])  # checked early
    return cfg


def n_inputs(spec: PointSet, geometry: bool) -> int:
    return len(spec.features) + (len(GEOMETRY) if geometry else 0)


def derive(geometry: bool):
    """The extra per-voxel features of the points batches (None: the channels only)."""
    if not geometry:
        return None
    return lambda xyz, channels: voxel_features(xyz, channels["energy"])


def build_model(spec: PointSet, width: int = 32, n_classes: int = len(CLASSES), geometry: bool = True):
    import keras
    from keras import ops

    class EdgeConv(keras.layers.Layer):
        def __init__(self, units, **kw):
            super().__init__(**kw)
            self.mlp1 = keras.layers.Dense(units, activation="relu")
            self.mlp2 = keras.layers.Dense(units, activation="relu")

        def call(self, h, xyz, knn):
            shape = ops.shape(knn)
            b, p, k = shape[0], shape[1], shape[2]
            flat = ops.reshape(knn + ops.arange(b, dtype="int32")[:, None, None] * p, (-1,))
            hn = ops.reshape(ops.take(ops.reshape(h, (-1, ops.shape(h)[-1])), flat, axis=0), (b, p, k, -1))
            xn = ops.reshape(ops.take(ops.reshape(xyz, (-1, 3)), flat, axis=0), (b, p, k, 3))
            hi = ops.repeat(h[:, :, None, :], k, axis=2)
            e = ops.concatenate([hi, hn - hi, (xn - xyz[:, :, None, :]) / 8.0], axis=-1)
            return ops.max(self.mlp2(self.mlp1(e)), axis=2)

    xyz = keras.Input((None, 3), name="xyz")
    feat = keras.Input((None, n_inputs(spec, geometry)), name="features")
    mask = keras.Input((None,), name="mask")
    knns = [keras.Input((None, k), dtype="int32", name=f"knn{s}") for s, k in enumerate(spec.neighbours)]
    h = keras.layers.Dense(width, activation="relu")(feat)
    outs = []
    for layer, scale in enumerate([0] + [len(knns) - 1] * 2):
        h = EdgeConv(width if layer == 0 else int(width * 1.5))(h, xyz, knns[scale])
        outs.append(h)
    context = keras.layers.Lambda(
        lambda t: ops.max(t[0] + (t[1][:, :, None] - 1.0) * 1e4, axis=1, keepdims=True)
    )([h, mask])
    context = keras.layers.Lambda(lambda t: ops.repeat(t[0], ops.shape(t[1])[1], axis=1))([context, h])
    z = keras.layers.Concatenate()([*outs, context])
    z = keras.layers.Dense(2 * width, activation="relu")(z)
    out = keras.layers.Dense(n_classes, activation="softmax", name="classes")(z)
    return keras.Model([xyz, feat, mask, *knns], out)


def _feed(batches: PointSetBatches):
    import keras

    class Feed(keras.utils.PyDataset):
        # Batches are built in Python threads (Keras' enqueuer), not on TensorFlow's
        # tf.data threads: those have small stacks, and the KD-trees of the geometric
        # features overflowed them (a segfault in cKDTree's build).
        def __init__(self):
            super().__init__(workers=2, use_multiprocessing=False, max_queue_size=4)

        def __len__(self):
            return len(batches)

        def __getitem__(self, i):
            return batches.batch(i)

        def on_epoch_end(self):
            batches.set_epoch(batches.epoch + 1)

    return Feed()


def predict_set(
    model, spec: PointSet, xyz: np.ndarray, energy: np.ndarray, geometry: bool = True
) -> np.ndarray:
    """Class of every voxel of one image (padded to a multiple of 1024: few retraces)."""
    n = len(xyz)
    size = max(-(-n // 1024) * 1024, 1024)
    extra = voxel_features(xyz, energy) if geometry else None
    inputs = set_inputs(xyz, {"energy": energy}, spec, size, extra)
    probs = model({k: v[None] for k, v in inputs.items()}, training=False)
    return np.asarray(probs)[0, :n].argmax(axis=1)


def train_run(config: str, data: str, out: str) -> str:
    """Train on dataset ``data`` into run folder ``out``; evaluate model and baseline; the report."""
    import keras

    from ..dataset import open_dataset
    from .evaluate import evaluate, format_evaluation

    cfg = load_config(config)
    spec = PointSet.from_dict(cfg["points"])
    ds = open_dataset(data)
    if spec.target not in ds.views[spec.view].channel_names:
        raise ConfigError(
            f"dataset '{data}' has no '{spec.target}' channel in view '{spec.view}' (no label file?)"
        )
    t = cfg["train"]
    keras.utils.set_random_seed(int(t["seed"]))
    n = len(ds) if not t["max_images"] else min(len(ds), int(t["max_images"]))
    order = np.random.default_rng(int(t["seed"])).permutation(n)
    n_val = max(round(n * float(t["validation"])), 1)
    val, train = np.sort(order[:n_val]), np.sort(order[n_val:])
    files = [os.path.join(ds.path, p.name) for p in ds.manifest.files]
    geometry = bool(cfg["model"]["geometry"])
    batches = PointSetBatches(files, train, spec, seed=int(t["seed"]), derive=derive(geometry))
    model = build_model(spec, int(cfg["model"]["width"]), geometry=geometry)
    model.compile(
        optimizer=keras.optimizers.Adam(float(t["learning_rate"])), loss="sparse_categorical_crossentropy"
    )
    os.makedirs(out, exist_ok=True)
    t0 = time.perf_counter()
    history = model.fit(_feed(batches), epochs=int(t["epochs"]), verbose=2)
    train_s = time.perf_counter() - t0
    model.save_weights(os.path.join(out, "model.weights.h5"))
    run = {
        "config": cfg,
        "data": os.path.abspath(data),
        "reader": ds.manifest.reader,
        "reader_options": ds.manifest.reader_options,
        "train_images": int(train.size),
        "validation_rows": val.tolist(),
        "train_seconds": train_s,
        "loss": [float(v) for v in history.history["loss"]],
    }
    with open(os.path.join(out, "run.json"), "w") as f:
        json.dump(run, f, indent=1)
    result = evaluate(ds, val, {"model": RunPredictor(out, model=model), "baseline": None})
    with open(os.path.join(out, "evaluation.json"), "w") as f:
        json.dump(result, f, indent=1)
    text = format_evaluation(result)
    with open(os.path.join(out, "report.md"), "w") as f:
        f.write(text + "\n")
    return text


class RunPredictor:
    """The trained network of a run folder, as a solve predictor (picklable: loads lazily)."""

    def __init__(self, run: str, *, model=None):
        path = os.path.join(run, "run.json")
        if not os.path.isfile(path):
            raise NotFoundError(
                f"no trained run at '{run}' (no run.json); train one with python -m nudask.michel train"
            )
        with open(path) as f:
            info = json.load(f)
        self.run = os.path.abspath(run)
        self.spec = PointSet.from_dict({**info["config"]["points"], "target": None})
        self.width = int(info["config"]["model"]["width"])
        self.geometry = bool(info["config"]["model"].get("geometry", False))  # older runs: none
        self.reader = info["reader"]
        self.reader_options = {k: v for k, v in info["reader_options"].items() if k != "labels"}
        self._model = model

    def __getstate__(self):
        return {**self.__dict__, "_model": None}

    @property
    def model(self):
        if self._model is None:
            keep_to_worker_threads()  # inside a solve task: one core per worker thread
            self._model = build_model(self.spec, self.width, geometry=self.geometry)
            self._model.load_weights(os.path.join(self.run, "model.weights.h5"))
        return self._model

    def classes(self, xyz: np.ndarray, energy: np.ndarray) -> np.ndarray:
        return predict_set(self.model, self.spec, xyz, energy, self.geometry)

    def michel_rows(self, voxels) -> np.ndarray:
        xyz = np.stack(voxels.index, axis=1).astype(np.float32)
        pred = self.classes(xyz, voxels.channels["energy"])
        return np.sort(voxels.channels["row"][pred == MICHEL]).astype(np.int32)
