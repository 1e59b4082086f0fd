"""The DUNE direction regressor against the guess from each image's principal axis.

One plane (X, the collection plane: drift x along the ticks, z along the channels)
sees the projection of a track on (x, z); the component along its wires (y) does not
show as a direction. The guess is the charge-weighted principal axis of the image in
centimetres (8 ticks and 2 channels per cm), put in 3-D with no wire component; the
regressor is the CNN of ``jobs/train_dune_dir.json`` trained on the axis
(``task.axial: true``). Both are scored on the same test clusters by the 68 %
containment of the axial angle to the true 3-D direction.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import nudask
from nudask.simulate.dune_sn import CHANNELS_PER_CM, PITCH, TICKS_PER_CM, simulate_dune_sn
from nudask.train.vectors import angles, containment


def principal_axis(image: np.ndarray, pitch: np.ndarray) -> np.ndarray:
    """The 3-D direction of an image's charge-weighted principal axis (no wire component)."""
    r, c = np.nonzero(image)
    w = image[r, c].astype(np.float64)
    pts = np.stack([r / TICKS_PER_CM, c / CHANNELS_PER_CM], 1)
    d = pts - (w[:, None] * pts).sum(0) / w.sum()
    cov = (w[:, None, None] * d[:, :, None] * d[:, None, :]).sum(0)
    u = np.linalg.eigh(cov)[1][:, -1]  # the largest eigenvalue's vector
    return u[0] * np.array([1.0, 0.0, 0.0]) + u[1] * pitch


def test_principal_axis_of_a_drawn_track():
    from nudask.simulate.dune_sn import _track_tps, draw

    rng = np.random.default_rng(0)
    d = np.array([0.3, 0.0, 0.954])
    d /= np.linalg.norm(d)
    img = draw(np.array(_track_tps(rng, d, 8.0, "X", 16.0), np.float64), "X", 32)
    assert angles(d[None], principal_axis(img, PITCH["X"])[None], axial=True)[0] < 8


@pytest.mark.slow
@pytest.mark.long
def test_direction_regressor_beats_the_principal_axis(tmp_path, client):
    from nudask.train.config import load
    from nudask.train.fit import train

    files = simulate_dune_sn(tmp_path / "raw", files=1, events=5000, seed=3, planes="X")
    ds = nudask.preprocess(files, tmp_path / "ds", client=client, progress=False)
    cfg = load(
        "jobs/train_dune_dir.json",
        [("data", ds.path), ("output.runs", str(tmp_path / "runs")), ("task.axial", True),
         ("input.workers", 0), ("report.samples", 0), ("report.event_displays", 0)],
    )  # fmt: skip
    run = train(cfg, config_path="jobs/train_dune_dir.json")
    pred = pd.read_csv(run / "predictions.csv")
    assert len(pred) > 250
    meta = ds.metadata.reset_index(drop=True)
    row = pd.Series(np.arange(len(meta)), index=pd.MultiIndex.from_frame(meta[["run", "subrun", "event"]]))
    rows = row.loc[list(pred[["run", "subrun", "event"]].itertuples(index=False, name=None))].to_numpy()
    true = meta.loc[rows, ["true_dir_x", "true_dir_y", "true_dir_z"]].to_numpy(np.float64)
    np.testing.assert_allclose(pred[["true_0", "true_1", "true_2"]].to_numpy(), true, atol=1e-6)
    guess = np.array([principal_axis(ds.image(int(i))["cluster"], PITCH["X"]) for i in rows])
    cnn = containment(angles(true, pred[["pred_0", "pred_1", "pred_2"]].to_numpy(), axial=True))
    pca = containment(angles(true, guess, axial=True))
    print(f"68 % axial angle: CNN {cnn:.1f} deg, principal axis {pca:.1f} deg ({len(pred)} test clusters)")
    assert cnn < pca - 1.0  # measured: 37.7-42.5 (runs differ) vs 45.1 deg, 373 test clusters
