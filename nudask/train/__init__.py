"""Training on nudask datasets with Keras 3: streaming input, models, run folders, reports.

::

    python -m nudask.train --data nue.parquet --config jobs/train_nue_cc.yaml
    python -m nudask.train --resume runs/nue_cc/20261122_143022
    python -m nudask.evaluate runs/nue_cc/20261122_143022

Modules, one job each: :mod:`~nudask.train.config` (job files, overrides),
:mod:`~nudask.train.split` (event-hash split), :mod:`~nudask.train.targets`
(labels and selections from truth), :mod:`~nudask.train.balance`,
:mod:`~nudask.train.prepare` (crop, downsample, scale, densify),
:mod:`~nudask.train.stream` (row groups, shuffle buffer, batches),
:mod:`~nudask.train.shard` (which events a rank and a batch worker take),
:mod:`~nudask.train.data` (a dataset made ready), :mod:`~nudask.train.feed`
(the Keras ``PyDataset``), :mod:`~nudask.train.iterate` (numpy batches and a
random-access form, no framework), :mod:`~nudask.train.torch_data` (a torch
``IterableDataset``), :mod:`~nudask.train.models`,
:mod:`~nudask.train.run` (run folder, checkpoints), :mod:`~nudask.train.fit`,
:mod:`~nudask.train.metrics`, :mod:`~nudask.train.report`,
:mod:`~nudask.train.evaluate`. Importing this package does not import Keras:
only ``feed``, ``models``, ``run``, ``fit`` and what runs a model do; torch is
imported only when a ``TorchStream`` is made.
"""

from __future__ import annotations

from importlib import import_module

_LAZY = {
    "train": "nudask.train.fit",
    "resume": "nudask.train.fit",
    "evaluate_run": "nudask.train.evaluate",
    "load": "nudask.train.config",
    "make_config": "nudask.train.config",
    "load_data": "nudask.train.data",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'nudask.train' has no attribute {name!r}")
