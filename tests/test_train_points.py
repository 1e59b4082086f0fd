"""Point-set batches: variable-size COO sets padded, masked, with neighbours, in epoch order."""

from __future__ import annotations

import os

import numpy as np
import pytest

import nudask
from nudask.errors import ConfigError
from nudask.readers.inss.simulate import write_files
from nudask.train.points import PointSet, PointSetBatches, knn


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    out = tmp_path_factory.mktemp("pts")
    xyze = write_files(str(out), images=6, seed=4)[0]
    return nudask.preprocess(
        xyze, out / "ds", events_per_chunk=2, row_group_events=2, progress=False, client=None
    )


def test_config_is_checked():
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['neigbours'\]"):
        PointSet.from_dict({"view": "voxels", "neigbours": [4]})
    with pytest.raises(ConfigError, match="one positive entry per scale"):
        PointSet.from_dict({"view": "voxels", "neighbours": [4, 4], "dilation": [1]})
    spec = PointSet.from_dict({"view": "voxels", "neighbours": [4], "target": "label"})
    assert PointSet.from_dict(spec.to_dict()) == spec


def test_batches_pad_mask_and_keep_every_point(ds):
    files = [os.path.join(ds.path, p.name) for p in ds.manifest.files]
    spec = PointSet(
        view="voxels", target="label", max_points=8000, neighbours=(4, 3), dilation=(1, 2), batch_size=4
    )
    batches = PointSetBatches(files, np.arange(6), spec, shuffle=False)
    assert len(batches) == 2
    inputs, target, weight = batches.batch(0)
    assert inputs["xyz"].shape == (4, 8000, 3) and inputs["knn1"].shape == (4, 8000, 3)
    for j in range(4):
        vox = ds.coo(j)["voxels"]
        n = vox.nnz
        assert inputs["mask"][j].sum() == n and np.all(weight[j, n:] == 0)
        np.testing.assert_array_equal(target[j, :n], vox.channels["label"])
        np.testing.assert_allclose(inputs["features"][j, :n, 0], np.log1p(vox.channels["energy"]), rtol=1e-6)
        xyz = np.stack(vox.index, axis=1).astype(np.float32)
        np.testing.assert_allclose(inputs["xyz"][j, :n], xyz - xyz.mean(axis=0), atol=1e-3)
        np.testing.assert_array_equal(inputs["knn0"][j, :n], knn(xyz, 4))
        assert np.all(inputs["knn0"][j, n:, 0] == np.arange(n, 8000))  # padding sees itself only
    assert batches.batch(1)[0]["xyz"].shape == (2, 8000, 3)


def test_shuffled_epochs_cover_the_rows_and_crop_big_sets(ds):
    files = [os.path.join(ds.path, p.name) for p in ds.manifest.files]
    spec = PointSet(
        view="voxels", target="label", max_points=300, batch_size=1, class_weights=(1, 1, 5, 1, 1)
    )
    batches = PointSetBatches(files, np.arange(1, 6), spec, seed=3)
    seen = [sorted(batches.plan.order.tolist())]
    batches.set_epoch(1)
    seen.append(sorted(batches.plan.order.tolist()))
    assert seen == [[1, 2, 3, 4, 5]] * 2
    inputs, target, weight = batches.batch(0)
    assert inputs["mask"].sum() == 300  # every simulated image has more voxels than that
    assert np.all(weight[target == 2] == 5) and np.all(weight[(target != 2)] == 1)
    with pytest.raises(ConfigError, match="no columns"):
        PointSetBatches(files, np.arange(2), PointSet(view="voxels", target="nothing"))


def test_big_sets_are_cut_to_a_compact_region_after_deriving_features(ds):
    files = [os.path.join(ds.path, p.name) for p in ds.manifest.files]
    spec = PointSet(view="voxels", target="label", max_points=300, batch_size=1)

    def derive(xyz, channels):  # the set's size, and each point's place in the whole set
        return np.stack([np.full(len(xyz), len(xyz)), np.arange(len(xyz))], axis=1).astype(np.float32)

    batches = PointSetBatches(files, np.arange(1, 2), spec, seed=3, derive=derive)
    inputs, _, _ = batches.batch(0)
    vox = ds.coo(1)["voxels"]
    full = np.stack(vox.index, axis=1).astype(np.float32)
    extra = inputs["features"][0, :300, 1:]  # after the energy channel
    assert np.all(extra[:, 0] == len(full))  # derived on the whole set, before the cut
    kept = extra[:, 1].astype(int)
    assert np.all(np.diff(kept) > 0)
    dropped = np.setdiff1d(np.arange(len(full)), kept)
    d = np.linalg.norm(full[kept][:, None, :] - full[None, :, :], axis=2)  # (kept, all)
    # some kept point is the centre: every kept point is nearer to it than any dropped one
    assert np.any(d[:, kept].max(axis=1) <= d[:, dropped].min(axis=1))
