"""The small CNN learns the seeds' tasks on simulated data, clearly better than chance.

These measure the pipeline (labels, crops, streaming, training), not physics: the
simulation is a toy. The figures of bigger runs are in TRAINING.md
(``tests/benchmarks/bench_train.py --accuracy``).
"""

from __future__ import annotations

import json

import pytest
from test_train_data import microboone_dataset, nova_dataset, quick_config

pytest.importorskip("keras")

from nudask.train.fit import train

pytestmark = [
    pytest.mark.slow,
    pytest.mark.long,
    pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy:DeprecationWarning"),
]


def overall(run):
    return json.loads((run / "metrics.json").read_text())["overall"]


def test_nue_cc_vs_rest_on_microboone(tmp_path_factory, tmp_path):
    path = microboone_dataset(tmp_path_factory, n_events=600)  # 600 inclusive + 600 nue CC
    cfg = quick_config(
        path,
        tmp_path,
        input={"crop_size": [48, 48], "batch_size": 32, "buffer_events": 256},
        model={"filters": [16, 32], "dense": 64, "dropout": 0.3},
        split={"validation": 0.1},
        train={"epochs": 12, "learning_rate": 0.001},
        report={"event_displays": 2},
    )
    m = overall(train(cfg))
    print(
        f"nue CC vs rest, {m['events']} test events: accuracy {m['accuracy']:.3f}, "
        f"balanced {m['accuracy_balanced']:.3f}, ROC AUC {m['roc_auc']:.3f}"
    )
    assert m["roc_auc"] > 0.65 and m["accuracy_balanced"] > 0.6  # chance: 0.5


def test_numu_cc_vs_rest_on_nova(tmp_path_factory, tmp_path):
    path = nova_dataset(tmp_path_factory, n_events=3000)
    cfg = quick_config(
        path,
        tmp_path,
        task={"target": "numu_cc", "balance": "class_weights"},
        input={"views": None, "crop": "none", "batch_size": 64, "buffer_events": 1000},
        model={"filters": [16, 32], "pool": [2, 4], "dense": 64, "dropout": 0.3},
        split={"validation": 0.1},
        train={"epochs": 6, "learning_rate": 0.001},
        report={"event_displays": 2},
    )
    m = overall(train(cfg))
    print(
        f"numu CC vs rest, {m['events']} test events: accuracy {m['accuracy']:.3f}, "
        f"balanced {m['accuracy_balanced']:.3f}, ROC AUC {m['roc_auc']:.3f}"
    )
    assert m["roc_auc"] > 0.85 and m["accuracy_balanced"] > 0.65  # chance: 0.5 (majority: ~0.88)
