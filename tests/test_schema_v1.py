"""Datasets written with schema v1 (before named channels, dense views and roles) still work.

``tests/data/v1_microboone`` was written by nudask 0.1 at schema version 1 (small geometry,
6 events, two parts); ``v1_microboone_images.npz`` holds the images that version read back.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

import nudask
from nudask.describe import summarize

DATA = Path(__file__).parent / "data"


@pytest.fixture
def v1(tmp_path):
    return nudask.open_dataset(shutil.copytree(DATA / "v1_microboone", tmp_path / "v1"))


def test_v1_opens_with_the_same_pixels(v1):
    assert v1.manifest.schema_version == 1 and len(v1) == 6
    expected = np.load(DATA / "v1_microboone_images.npz")
    for k in range(len(v1)):
        for view, image in v1.image(k).items():
            np.testing.assert_array_equal(image, expected[f"{k}_{view}"])
    assert {p.chunks[0].reader for p in v1.manifest.files} == {"microboone"}


def test_v1_roles_come_from_its_reader(v1):
    assert v1.roles.energy is not None and "flavour" in v1.roles.labels
    s = summarize(v1, sample=2)
    assert sum(s["counts"]["flavour"].values()) == 6 and s["energy"]["all"]["n"] == 6


def test_v1_trains(v1, tmp_path):
    from nudask.train.config import make_config
    from nudask.train.data import load_data

    cfg = make_config(
        {
            "data": v1.path,
            "task": {"target": "energy"},
            "input": {"batch_size": 2, "crop": "none", "views": ["y"]},
            "split": {"test": 0.34, "validation": 0.0, "seed": 1},
            "output": {"runs": str(tmp_path)},
        }
    )
    data = load_data(cfg)
    x, y = data.source("train").batch(0)[:2]
    assert x["y"].shape[0] == y.shape[0] == 2 and x["y"].max() > 0
